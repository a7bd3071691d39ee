//! The Kafka sink itself: publishing a batch, awaiting delivery reports, classifying.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, Producer as _};

use super::config::{KafkaConfig, Producer};
use super::encoding::Message;
use super::{KafkaOptions, ProducerReplaced};
use crate::uri;
use crate::{Notification, PublishError, Sink, SinkConfigError, SinkError};

/// Publishes each notification as one Kafka message and counts it delivered on its
/// delivery report.
pub struct KafkaSink {
    producer: Producer,
    config: KafkaConfig,
    options: KafkaOptions,
    /// The URI with secrets masked, for error messages.
    label: String,
}

/// Why a delivery report was not a success.
enum Failure {
    /// librdkafka reported an error for this message or refused to take it.
    Kafka(KafkaError),
    /// The report never came: the producer dropped it.
    Dropped,
    /// The producer's error callback said it cannot go on (a fatal error).
    Broken(String),
}

impl KafkaSink {
    /// Builds a sink from `kafka://HOST:PORT[,HOST:PORT...]/TOPIC`.
    ///
    /// Does not wait for the brokers: librdkafka connects in the background and
    /// retries, so a broker that is down at start-up only delays the first delivery.
    /// A malformed URI, topic template or librdkafka property is an error.
    pub fn new(uri: &str, options: KafkaOptions) -> Result<KafkaSink, SinkConfigError> {
        let config = KafkaConfig::new(uri, &options)?;
        let producer = config.first_producer(uri)?;
        Ok(KafkaSink {
            producer,
            config,
            options,
            label: uri::redact(uri),
        })
    }

    /// Awaits one delivery report, or the producer breaking, whichever comes first: a
    /// report may never come from a producer that cannot go on.
    async fn await_delivery(&self, future: DeliveryFuture) -> Result<(), Failure> {
        let health = self.producer.health.clone();
        tokio::select! {
            biased;
            report = future => match report {
                Ok(Ok(_delivery)) => {
                    health.delivered();
                    Ok(())
                }
                Ok(Err((err, _message))) => Err(Failure::Kafka(err)),
                Err(_canceled) => Err(Failure::Dropped),
            },
            () = health.wait_broken() => Err(Failure::Broken(health.broken().unwrap_or_default())),
        }
    }

    /// What `publish` returns after `failure`, `confirmed` of `len` being confirmed.
    async fn failed(&mut self, failure: Failure, confirmed: usize, len: usize) -> PublishError {
        let unconfirmed = len - confirmed;
        let error = match failure {
            Failure::Kafka(err) => self.classify(err, unconfirmed).await,
            Failure::Dropped => SinkError::Retryable {
                message: format!("kafka sink {}: the delivery report was dropped", self.label),
                source: None,
            },
            Failure::Broken(reason) => self.replace(reason, unconfirmed).await,
        };
        PublishError {
            delivered: confirmed,
            error,
        }
    }

    /// Classifies a failed delivery or enqueue. When the producer cannot go on (a fatal
    /// error, or the broker no longer knows its id or sequence), replaces it first.
    async fn classify(&mut self, err: KafkaError, unconfirmed: usize) -> SinkError {
        let code = err.rdkafka_error_code();
        let fatal = self.producer.producer.client().fatal_error();
        if fatal.is_none() && !code.is_some_and(loses_producer_state) {
            let message = format!("kafka sink {}: {err}", self.label);
            return if code.is_some_and(is_permanent) {
                SinkError::permanent(message, err)
            } else {
                SinkError::retryable(message, err)
            };
        }
        // A delivery report after a fatal error only says "fatal"; the cause decides
        // whether the message itself is at fault (e.g. not authorized).
        let (cause, reason) = match fatal {
            Some((cause, reason)) => (
                Some(cause),
                format!("fatal producer error {cause:?}: {reason}"),
            ),
            None => (code, format!("{err}")),
        };
        let replaced = self.replace(reason, unconfirmed).await;
        if cause.is_some_and(is_permanent) {
            SinkError::permanent(format!("{replaced}"), err)
        } else {
            replaced
        }
    }

    /// Replaces the producer with a new one (a new producer id, fresh sequence
    /// numbers), and says so in a retryable error whose cause is [`ProducerReplaced`].
    /// The old producer's unconfirmed messages are purged with it: the caller re-sends
    /// them.
    async fn replace(&mut self, reason: String, unconfirmed: usize) -> SinkError {
        let new = match self.config.producer() {
            Ok(new) => new,
            Err(e) => {
                return SinkError::retryable(
                    format!(
                        "kafka sink {}: the producer cannot go on ({reason}) and a new one cannot be created: {e}",
                        self.label
                    ),
                    e,
                );
            }
        };
        let old = std::mem::replace(&mut self.producer, new);
        // Dropping purges and briefly flushes, which blocks.
        let _ = tokio::task::spawn_blocking(move || drop(old)).await;
        let replaced = ProducerReplaced {
            reason,
            unconfirmed,
        };
        SinkError::Retryable {
            message: format!("kafka sink {}: {replaced}", self.label),
            source: Some(Box::new(replaced)),
        }
    }
}

/// Errors that will recur however often the same message is retried. Everything else
/// (queue full, broker down, leader changes, timeouts, unknown topic that may yet be
/// created) is worth retrying.
fn is_permanent(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidMessageSize
            | RDKafkaErrorCode::InvalidRecord
            | RDKafkaErrorCode::InvalidTopic
            | RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::ClusterAuthorizationFailed
            | RDKafkaErrorCode::TransactionalIdAuthorizationFailed
            | RDKafkaErrorCode::InvalidArgument
    )
}

/// Errors that mean the broker no longer has this producer's state (its id, epoch or
/// sequence numbers), as after a restart without its data: the idempotent producer
/// cannot continue its sequence, but a new producer can start one.
fn loses_producer_state(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::Fatal
            | RDKafkaErrorCode::UnknownProducerId
            | RDKafkaErrorCode::OutOfOrderSequenceNumber
            | RDKafkaErrorCode::InvalidProducerEpoch
            | RDKafkaErrorCode::InvalidProducerIdMapping
    )
}

#[async_trait]
impl Sink for KafkaSink {
    fn kind(&self) -> &'static str {
        "kafka"
    }

    /// Enqueues the whole batch (librdkafka batches and pipelines it), then awaits the
    /// delivery reports in order. When librdkafka's buffer is full, waits for the
    /// oldest report to free room instead of failing.
    async fn publish(&mut self, batch: &[Arc<Notification>]) -> Result<(), PublishError> {
        if let Some(reason) = self.producer.health.broken() {
            // It broke between batches: start this one on a new producer.
            return Err(self.failed(Failure::Broken(reason), 0, batch.len()).await);
        }
        let mut pending: VecDeque<DeliveryFuture> = VecDeque::with_capacity(batch.len());
        let mut confirmed = 0usize;

        // Awaits the oldest report; on failure, returns what to.
        macro_rules! confirm_oldest {
            () => {
                if let Some(future) = pending.pop_front() {
                    match self.await_delivery(future).await {
                        Ok(()) => confirmed += 1,
                        Err(failure) => {
                            return Err(self.failed(failure, confirmed, batch.len()).await);
                        }
                    }
                }
            };
        }

        for n in batch {
            let mut message = Message::new(n, &self.config.topic, &self.options);
            let mut record = message.record();
            loop {
                match self.producer.producer.send_result(record) {
                    Ok(future) => {
                        pending.push_back(future);
                        break;
                    }
                    Err((err, back))
                        if err.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull)
                            && !pending.is_empty() =>
                    {
                        // Room frees up as reports arrive; wait for ours in order, then
                        // send the record librdkafka handed back.
                        record = back;
                        confirm_oldest!();
                    }
                    Err((err, _record)) => {
                        // Report accurately how many before this one made it.
                        while !pending.is_empty() {
                            confirm_oldest!();
                        }
                        return Err(self
                            .failed(Failure::Kafka(err), confirmed, batch.len())
                            .await);
                    }
                }
            }
        }
        while !pending.is_empty() {
            confirm_oldest!();
        }
        Ok(())
    }

    async fn close(&mut self) -> Result<(), SinkError> {
        // publish awaits every report, so nothing is normally buffered; flush anyway
        // in case a publish was cancelled mid-batch. A broken producer would only hold
        // the flush for its whole timeout: nothing in it will be delivered.
        if let Some(reason) = self.producer.health.broken() {
            return Err(SinkError::Retryable {
                message: format!("kafka sink {}: not flushed: {reason}", self.label),
                source: None,
            });
        }
        let producer = self.producer.producer.clone();
        let label = self.label.clone();
        tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(30)))
            .await
            .map_err(|e| SinkError::retryable(format!("kafka sink {label}: flush failed"), e))?
            .map_err(|e| SinkError::retryable(format!("kafka sink {label}: flush failed"), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn builds_without_a_broker() {
        let options = KafkaOptions {
            properties: vec![("linger.ms".into(), "1".into())],
            ..KafkaOptions::default()
        };
        let sink = KafkaSink::new(
            "kafka://127.0.0.1:1,127.0.0.1:2/k8s.{group}.{resource}",
            options,
        )
        .expect("valid");
        assert_eq!(sink.kind(), "kafka");
    }

    #[test]
    fn permanent_errors_are_those_a_retry_cannot_fix() {
        assert!(is_permanent(RDKafkaErrorCode::MessageSizeTooLarge));
        assert!(is_permanent(RDKafkaErrorCode::TopicAuthorizationFailed));
        assert!(!is_permanent(RDKafkaErrorCode::QueueFull));
        assert!(!is_permanent(RDKafkaErrorCode::UnknownTopicOrPartition));
        assert!(!is_permanent(RDKafkaErrorCode::BrokerTransportFailure));
    }

    #[test]
    fn lost_producer_state_is_recognised_and_transport_errors_are_not() {
        for code in [
            RDKafkaErrorCode::Fatal,
            RDKafkaErrorCode::UnknownProducerId,
            RDKafkaErrorCode::OutOfOrderSequenceNumber,
            RDKafkaErrorCode::InvalidProducerEpoch,
        ] {
            assert!(loses_producer_state(code), "{code:?}");
            assert!(!is_permanent(code), "{code:?}: a new producer can deliver");
        }
        assert!(!loses_producer_state(
            RDKafkaErrorCode::BrokerTransportFailure
        ));
        assert!(!loses_producer_state(RDKafkaErrorCode::QueueFull));
    }

    fn note() -> Notification {
        Notification {
            event_type: crate::EventType::Added,
            origin: crate::Origin::Watch,
            time: std::time::SystemTime::UNIX_EPOCH,
            cluster: None,
            resource: Arc::new(crate::ResourceId {
                group: String::new(),
                version: "v1".into(),
                resource: "configmaps".into(),
                kind: "ConfigMap".into(),
            }),
            namespace: Some("ns".into()),
            name: "a".into(),
            uid: "u1".into(),
            resource_version: "1".into(),
            object: Arc::from(serde_json::value::RawValue::from_string("{}".into()).expect("json")),
            old_object: None,
            snapshot: None,
            tombstone: false,
            old_resource_version: None,
            patch: None,
        }
    }

    #[tokio::test]
    async fn a_broken_producer_is_replaced_before_the_next_batch() {
        let mut sink =
            KafkaSink::new("kafka://127.0.0.1:1/t", KafkaOptions::default()).expect("valid");
        let old = sink.producer.health.clone();
        old.set_broken("fatal producer error: test".into());
        let batch = [Arc::new(note())];
        let err = sink.publish(&batch).await.expect_err("reported");
        assert_eq!(err.delivered, 0);
        assert!(err.error.is_retryable(), "{err}");
        let replaced = std::error::Error::source(&err.error)
            .and_then(|s| s.downcast_ref::<ProducerReplaced>())
            .expect("the cause says the producer was replaced");
        assert_eq!(replaced.unconfirmed, 1);
        assert!(replaced.reason.contains("test"), "{replaced}");
        assert!(sink.producer.health.broken().is_none(), "a new producer");
        assert!(!Arc::ptr_eq(&old, &sink.producer.health));
    }
}
