//! The JetStream sink: `jetstream://[user:pass@|token@]HOST:PORT/PREFIX[?stream=NAME]`.
//!
//! Connection, subjects and headers are those of the core NATS sink (see
//! [`crate::nats`]). Each message also carries `Nats-Msg-Id` = [`Notification::id`],
//! so the stream's duplicate window (2 minutes by default) drops the copies a retry
//! publishes again. A batch is pipelined: up to [`MAX_IN_FLIGHT`] publishes are sent
//! before the oldest acknowledgement is awaited, and acknowledgements are awaited in
//! order, so one slow round trip is not paid per message.
//!
//! With `?stream=NAME`, the sink makes sure, before its first publish, that the stream
//! exists, creating it if not with subjects `PREFIX.>` and the server's defaults
//! (file storage, unlimited retention, 2-minute duplicate window). An existing stream is
//! used as it is. Without `stream=`, a stream must already capture the subjects, or
//! every publish fails (retryably, so creating the stream later fixes it).

use std::collections::VecDeque;
use std::sync::Arc;

use async_nats::jetstream::context::{PublishAckFuture, PublishErrorKind};
use async_trait::async_trait;

use crate::nats::{self, NatsOptions};
use crate::subject::Template;
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
    prefix: String,
    subject: Template,
    options: NatsOptions,
    /// The stream to create if missing; `None` once it is known to exist.
    ensure_stream: Option<String>,
    label: String,
}

impl JetStreamSink {
    /// Builds a sink from `jetstream://...` and starts connecting in the background.
    pub async fn new(uri: &str, options: NatsOptions) -> Result<JetStreamSink, SinkConfigError> {
        let setup = nats::setup("jetstream", "jetstream", uri, &options, &["stream"]).await?;
        let mut ensure_stream = None;
        for (k, v) in &setup.query {
            if k == "stream" {
                if v.is_empty()
                    || v.chars()
                        .any(|c| matches!(c, '.' | '*' | '>' | '/' | '\\') || c.is_whitespace())
                {
                    return Err(SinkConfigError::new(
                        "jetstream",
                        uri,
                        format!(
                            "stream name \"{v}\" is not valid; use letters, digits, '-' and '_'"
                        ),
                    ));
                }
                ensure_stream = Some(v.clone());
            }
        }
        let context = async_nats::jetstream::ContextBuilder::new()
            .timeout(options.timeout)
            .build(setup.client);
        Ok(JetStreamSink {
            context,
            prefix: setup.prefix,
            subject: setup.subject,
            options,
            ensure_stream,
            label: uri::redact(uri),
        })
    }

    async fn ensure_stream(&mut self) -> Result<(), SinkError> {
        let Some(name) = &self.ensure_stream else {
            return Ok(());
        };
        let config = async_nats::jetstream::stream::Config {
            name: name.clone(),
            subjects: vec![format!("{}.>", self.prefix)],
            ..Default::default()
        };
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
                    self.prefix
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
                let subject = nats::subject_for(&self.prefix, &self.subject, n);
                let (body, mut headers) = nats::message_for(
                    n,
                    self.options.format,
                    self.options.cloudevents_source.as_deref(),
                );
                headers.insert(async_nats::header::NATS_MESSAGE_ID, n.id().as_str());
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
        let client = self.context.client();
        match tokio::time::timeout(self.options.timeout, client.flush()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(SinkError::retryable(
                format!("jetstream sink {}: flush failed", self.label),
                e,
            )),
            Err(e) => Err(SinkError::retryable(
                format!("jetstream sink {}: flush timed out", self.label),
                e,
            )),
        }
    }
}
