//! The Kafka sink itself: publishing a batch, awaiting delivery reports, classifying.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, Producer};

use super::KafkaOptions;
use super::config::KafkaConfig;
use super::encoding::Message;
use crate::uri;
use crate::{Notification, PublishError, Sink, SinkConfigError, SinkError};

/// Publishes each notification as one Kafka message and counts it delivered on its
/// delivery report.
pub struct KafkaSink {
    producer: FutureProducer,
    config: KafkaConfig,
    options: KafkaOptions,
    /// The URI with secrets masked, for error messages.
    label: String,
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

    /// Classifies a failed delivery or enqueue, and replaces the producer if librdkafka
    /// says it can no longer produce (an idempotence fatal error), so a retry can work.
    fn classify(&mut self, err: KafkaError) -> SinkError {
        let mut code = err.rdkafka_error_code();
        let mut message = format!("kafka sink {}: {err}", self.label);
        if code == Some(RDKafkaErrorCode::Fatal) {
            // The delivery report only says "fatal"; the cause decides whether a
            // fresh producer can do better (e.g. not after an authorization failure).
            if let Some((cause, reason)) = self.producer.client().fatal_error() {
                message = format!(
                    "kafka sink {}: fatal producer error {cause:?}: {reason}; producer recreated",
                    self.label
                );
                code = Some(cause);
            }
            if let Ok(producer) = self.config.producer() {
                self.producer = producer;
            }
        }
        if code.is_some_and(is_permanent) {
            SinkError::permanent(message, err)
        } else {
            SinkError::retryable(message, err)
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

/// Awaits one delivery report: `Ok` once the broker has the message.
async fn await_delivery(future: DeliveryFuture) -> Result<(), Result<KafkaError, String>> {
    match future.await {
        Ok(Ok(_delivery)) => Ok(()),
        Ok(Err((err, _message))) => Err(Ok(err)),
        // The producer dropped the report: it is being replaced or shut down.
        Err(_canceled) => Err(Err("the delivery report was dropped".to_string())),
    }
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
        let mut pending: VecDeque<DeliveryFuture> = VecDeque::with_capacity(batch.len());
        let mut confirmed = 0usize;

        // Awaits the oldest report; on failure, what to return.
        macro_rules! confirm_oldest {
            () => {
                if let Some(future) = pending.pop_front() {
                    match await_delivery(future).await {
                        Ok(()) => confirmed += 1,
                        Err(err) => {
                            let error = match err {
                                Ok(kafka) => self.classify(kafka),
                                Err(message) => SinkError::Retryable {
                                    message: format!("kafka sink {}: {message}", self.label),
                                    source: None,
                                },
                            };
                            return Err(PublishError {
                                delivered: confirmed,
                                error,
                            });
                        }
                    }
                }
            };
        }

        for n in batch {
            let message = Message::new(n, &self.config.topic, &self.options);
            loop {
                match self.producer.send_result(message.record()) {
                    Ok(future) => {
                        pending.push_back(future);
                        break;
                    }
                    Err((err, _record))
                        if err.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull)
                            && !pending.is_empty() =>
                    {
                        // Room frees up as reports arrive; wait for ours in order.
                        confirm_oldest!();
                    }
                    Err((err, _record)) => {
                        // Report accurately how many before this one made it.
                        while !pending.is_empty() {
                            confirm_oldest!();
                        }
                        return Err(PublishError {
                            delivered: confirmed,
                            error: self.classify(err),
                        });
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
        // in case a publish was cancelled mid-batch.
        let producer = self.producer.clone();
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
}
