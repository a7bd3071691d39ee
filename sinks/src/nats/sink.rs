//! The core NATS sink itself: publishing a batch, then flushing it.

use std::sync::Arc;

use async_trait::async_trait;

use crate::nats_client::NatsOptions;
use crate::nats_client::connection;
use crate::nats_client::message::{Subjects, message_for};
use crate::uri;
use crate::{Notification, PublishError, Sink, SinkConfigError, SinkError};

/// Publishes each notification as one core NATS message; see the module documentation
/// for what a confirmation means.
pub struct NatsSink {
    client: async_nats::Client,
    subjects: Subjects,
    options: NatsOptions,
    label: String,
}

impl NatsSink {
    /// Builds a sink from `nats://[user:pass@|token@]HOST:PORT/PREFIX[?tls=true]` and
    /// starts connecting in the background.
    pub async fn new(uri: &str, options: NatsOptions) -> Result<NatsSink, SinkConfigError> {
        let connection = connection::connect("nats", "nats", uri, &options, &[]).await?;
        Ok(NatsSink {
            client: connection.client,
            subjects: connection.subjects,
            options,
            label: uri::redact(uri),
        })
    }
}

/// Classifies a client-side core publish failure.
fn classify_publish(label: &str, err: async_nats::PublishError) -> SinkError {
    let message = format!("nats sink {label}: {err}");
    match err.kind() {
        async_nats::client::PublishErrorKind::MaxPayloadExceeded
        | async_nats::client::PublishErrorKind::InvalidSubject => {
            SinkError::permanent(message, err)
        }
        async_nats::client::PublishErrorKind::Send => SinkError::retryable(message, err),
    }
}

#[async_trait]
impl Sink for NatsSink {
    fn kind(&self) -> &'static str {
        "nats"
    }

    async fn publish(&mut self, batch: &[Arc<Notification>]) -> Result<(), PublishError> {
        for (i, n) in batch.iter().enumerate() {
            let subject = self.subjects.subject_for(n);
            let (body, headers) = message_for(
                n,
                self.options.format,
                self.options.cloudevents_source.as_deref(),
            );
            if let Err(e) = self
                .client
                .publish_with_headers(subject, headers, body)
                .await
            {
                let error = classify_publish(&self.label, e);
                // Those before it are only buffered so far; flush them to count them.
                let delivered = match self.flush().await {
                    Ok(()) => i,
                    Err(_) => 0,
                };
                return Err(PublishError { delivered, error });
            }
        }
        self.flush().await.map_err(PublishError::none_delivered)
    }

    async fn close(&mut self) -> Result<(), SinkError> {
        self.flush().await
    }
}

impl NatsSink {
    /// Waits until everything published so far is written to the server.
    async fn flush(&self) -> Result<(), SinkError> {
        let label = format!("nats sink {}", self.label);
        connection::flush(&self.client, self.options.timeout, &label).await
    }
}
