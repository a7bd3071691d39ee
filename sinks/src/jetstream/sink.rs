//! The JetStream sink itself: ensuring the stream, pipelined publishes, ordered acks.

use std::collections::VecDeque;
use std::sync::Arc;

use async_nats::jetstream::context::{PublishAckFuture, PublishErrorKind};
use async_trait::async_trait;

use super::config::{stream_config, stream_from_query};
use super::encoding::jetstream_message_for;
use crate::nats_client::NatsOptions;
use crate::nats_client::connection;
use crate::nats_client::message::Subjects;
use crate::uri;
use crate::{Notification, PublishError, Sink, SinkConfigError, SinkError};

/// How many publishes of a batch may await their acknowledgement at once.
///
/// Below async-nats's own limit of pending acks (5000), which would otherwise block a
/// publish while this sink holds every earlier ack future.
pub const MAX_IN_FLIGHT: usize = 1024;

/// Publishes each notification to a JetStream stream and counts it delivered on the
/// stream's acknowledgement (the message is stored, or was a duplicate of a stored one).
pub struct JetStreamSink {
    context: async_nats::jetstream::Context,
    subjects: Subjects,
    options: NatsOptions,
    /// The stream to create if missing; `None` once it is known to exist.
    ensure_stream: Option<String>,
    label: String,
}

impl JetStreamSink {
    /// Builds a sink from `jetstream://...` and starts connecting in the background.
    pub async fn new(uri: &str, options: NatsOptions) -> Result<JetStreamSink, SinkConfigError> {
        let connection =
            connection::connect("jetstream", "jetstream", uri, &options, &["stream"]).await?;
        let ensure_stream = stream_from_query(&connection.query)
            .map_err(|problem| SinkConfigError::new("jetstream", uri, problem))?;
        let context = async_nats::jetstream::ContextBuilder::new()
            .timeout(options.timeout)
            .build(connection.client);
        Ok(JetStreamSink {
            context,
            subjects: connection.subjects,
            options,
            ensure_stream,
            label: uri::redact(uri),
        })
    }

    async fn ensure_stream(&mut self) -> Result<(), SinkError> {
        let Some(name) = &self.ensure_stream else {
            return Ok(());
        };
        let config = stream_config(name, self.subjects.prefix());
        match self.context.get_or_create_stream(config).await {
            Ok(_) => {
                self.ensure_stream = None;
                Ok(())
            }
            Err(e) => Err(SinkError::retryable(
                format!(
                    "jetstream sink {}: cannot find or create stream {name}",
                    self.label
                ),
                e,
            )),
        }
    }

    fn classify(&self, err: async_nats::jetstream::context::PublishError) -> SinkError {
        let message = format!("jetstream sink {}: {err}", self.label);
        match err.kind() {
            PublishErrorKind::MaxPayloadExceeded => SinkError::permanent(message, err),
            PublishErrorKind::StreamNotFound => SinkError::retryable(
                format!(
                    "{message}; create a stream for {}.> or add ?stream=NAME",
                    self.subjects.prefix()
                ),
                err,
            ),
            _ => SinkError::retryable(message, err),
        }
    }
}

#[async_trait]
impl Sink for JetStreamSink {
    fn kind(&self) -> &'static str {
        "jetstream"
    }

    async fn publish(&mut self, batch: &[Arc<Notification>]) -> Result<(), PublishError> {
        self.ensure_stream()
            .await
            .map_err(PublishError::none_delivered)?;
        let mut pending: VecDeque<PublishAckFuture> = VecDeque::with_capacity(MAX_IN_FLIGHT);
        let mut confirmed = 0usize;
        let mut next = 0usize;
        while confirmed < batch.len() {
            // Keep the window full while there is more to send.
            if next < batch.len() && pending.len() < MAX_IN_FLIGHT {
                let n = &batch[next];
                let subject = self.subjects.subject_for(n);
                let (body, headers) = jetstream_message_for(
                    n,
                    self.options.format,
                    self.options.cloudevents_source.as_deref(),
                );
                match self
                    .context
                    .publish_with_headers(subject, headers, body)
                    .await
                {
                    Ok(ack) => {
                        pending.push_back(ack);
                        next += 1;
                        continue;
                    }
                    Err(e) => {
                        let error = self.classify(e);
                        // Count what was already sent and acknowledged before it.
                        while let Some(ack) = pending.pop_front() {
                            if ack.await.is_err() {
                                break;
                            }
                            confirmed += 1;
                        }
                        return Err(PublishError {
                            delivered: confirmed,
                            error,
                        });
                    }
                }
            }
            let Some(ack) = pending.pop_front() else {
                break;
            };
            match ack.await {
                Ok(_ack) => confirmed += 1,
                Err(e) => {
                    return Err(PublishError {
                        delivered: confirmed,
                        error: self.classify(e),
                    });
                }
            }
        }
        Ok(())
    }

    async fn close(&mut self) -> Result<(), SinkError> {
        // Every publish awaited its acknowledgement, so there is nothing to deliver;
        // flush only what a cancelled publish may have left in the client's buffer.
        let label = format!("jetstream sink {}", self.label);
        connection::flush(&self.context.client(), self.options.timeout, &label).await
    }
}
