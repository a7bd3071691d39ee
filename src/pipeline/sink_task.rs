//! One sink's task: takes batches from its bounded queue, publishes them, retries
//! what failed, and reports what it delivered.

use std::sync::Arc;
use std::time::Duration;

use kubebridge_sinks::kafka::ProducerReplaced;
use kubebridge_sinks::{Notification, PublishError, Sink, SinkError};
use tokio::task::JoinHandle;

use crate::confirm::Queued;
use crate::informer::backoff::Backoff;
use crate::metrics::{Metrics, SinkMetrics, SinkView};
use crate::queue::{Limits, Overflow, QueueReceiver, QueueSender, bounded};

/// Most notifications handed to a sink in one `publish` call: large enough to amortise
/// a write or a flush, small enough that a retry repeats little. A batch is also within
/// the queue's byte budget (see `QueueReceiver::recv_many`).
pub(crate) const MAX_BATCH: usize = 512;

/// The bytes a queued notification pins: the raw JSON of its object, old object and
/// patch (a route's diff). Objects are `Arc`s shared with the informer's cache and with
/// the neighbouring updates, so this counts conservatively: the memory the queue really
/// holds is at most this.
pub(crate) fn notification_bytes(q: &Queued) -> usize {
    q.note.raw_json_len()
}

/// A sink queue's bounds: `capacity` notifications and `max_bytes` of them (see
/// [`notification_bytes`]), and what a full queue does.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueueBounds {
    /// `--queue-capacity`.
    pub capacity: usize,
    /// `--queue-bytes`.
    pub max_bytes: usize,
    /// `--overflow`.
    pub overflow: Overflow,
}

/// A sink's queue, as the informers see it.
pub type SinkQueue = QueueSender<Queued>;

/// How a sink task ended.
#[derive(Debug)]
pub enum SinkOutcome {
    /// The supervisor gave up on it (`--once` with a stalled sink, or a lost lease).
    Abandoned,
    /// Its queue closed and everything in it was handled.
    Drained {
        /// Notifications the sink confirmed.
        delivered: u64,
        /// Notifications dropped after a permanent error (each one logged).
        dropped: u64,
        /// Notifications evicted from the full queue under `drop-oldest` (each one logged).
        evicted: u64,
    },
    /// The destination went away for good (a closed pipe); the queue was abandoned.
    Closed,
    /// Closing the sink failed after the queue drained.
    Failed(SinkError),
}

/// A running sink: its queue, its task, and the view its supervisor reads.
pub(crate) struct SinkHandle {
    /// Where the informers send.
    pub queue: SinkQueue,
    /// The task; aborting it abandons what is queued and in flight.
    pub task: JoinHandle<SinkOutcome>,
    /// Its name, backlog and health.
    pub view: SinkView,
}

/// Starts a task for `sink`, called `name` in logs and metrics, with a queue `bounds`.
pub(crate) fn spawn_sink(
    name: String,
    sink: Box<dyn Sink>,
    bounds: QueueBounds,
    metrics: &Metrics,
) -> SinkHandle {
    let limits = Limits {
        capacity: bounds.capacity,
        max_bytes: bounds.max_bytes,
        weigh: notification_bytes,
    };
    let (queue, rx) = bounded(limits, bounds.overflow);
    let metrics = metrics.sink_started(&name, queue.gauge());
    let view = metrics.view();
    SinkHandle {
        queue,
        task: tokio::spawn(run(name, sink, rx, metrics)),
        view,
    }
}

async fn run(
    name: String,
    mut sink: Box<dyn Sink>,
    mut queue: QueueReceiver<Queued>,
    metrics: SinkMetrics,
) -> SinkOutcome {
    let mut taken = Vec::with_capacity(MAX_BATCH);
    let mut batch: Vec<Arc<Notification>> = Vec::with_capacity(MAX_BATCH);
    let mut delivered = 0u64;
    let mut dropped = 0u64;
    // Capped at 5 s: a broker that comes back should see traffic again within seconds,
    // and one attempt every few seconds is no load on one that is down.
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    while queue.recv_many(&mut taken, MAX_BATCH).await > 0 {
        // The sink publishes the notifications; their receipts are settled here, as the
        // destination confirms (or refuses for good) each one, in order.
        batch.extend(taken.iter().map(|q| q.note.clone()));
        let settle = |range: std::ops::Range<usize>| taken[range].iter().for_each(Queued::settle);
        metrics.taken(&batch);
        let mut start = 0;
        while start < batch.len() {
            metrics.publish_started(batch[start].time);
            match sink.publish(&batch[start..]).await {
                Ok(()) => {
                    metrics.delivered(&batch[start..]);
                    settle(start..batch.len());
                    delivered += (batch.len() - start) as u64;
                    backoff.reset();
                    break;
                }
                Err(PublishError {
                    delivered: n,
                    error,
                }) => {
                    // A sink that claims more than it was given is clamped, not trusted.
                    let n = n.min(batch.len() - start);
                    metrics.delivered(&batch[start..start + n]);
                    settle(start..start + n);
                    delivered += n as u64;
                    start += n;
                    if let Some(next) = batch.get(start) {
                        metrics.publish_started(next.time);
                    }
                    match error {
                        SinkError::Closed => return SinkOutcome::Closed,
                        SinkError::Retryable { .. } => {
                            metrics.publish_failed(true);
                            if let Some(replaced) = std::error::Error::source(&error)
                                .and_then(|s| s.downcast_ref::<ProducerReplaced>())
                            {
                                metrics.resending(replaced.unconfirmed);
                            }
                            let delay = backoff.next_delay();
                            tracing::warn!(sink = %name, error = %error, retry_in = ?delay, "publish failed; retrying");
                            tokio::time::sleep(delay).await;
                        }
                        SinkError::Permanent { .. } => {
                            metrics.publish_failed(false);
                            if let Some(n) = batch.get(start) {
                                metrics.refused();
                                tracing::error!(
                                    sink = %name, error = %error, resource = %n.resource,
                                    object = %n.key(), id = %n.id(),
                                    "dropping a notification the sink refused for good"
                                );
                                dropped += 1;
                                // Refused for good, logged and counted: the checkpoint
                                // does not wait for it.
                                settle(start..start + 1);
                            }
                            start += 1;
                        }
                    }
                }
            }
        }
        metrics.batch_done();
        batch.clear();
        taken.clear();
    }
    match sink.close().await {
        Ok(()) => SinkOutcome::Drained {
            delivered,
            dropped,
            evicted: queue.dropped(),
        },
        Err(SinkError::Closed) => SinkOutcome::Closed,
        Err(e) => SinkOutcome::Failed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use kubebridge_sinks::{EventType, Origin, ResourceId};
    use serde_json::value::RawValue;
    use std::sync::Mutex;
    use std::time::SystemTime;

    fn bounds(capacity: usize) -> QueueBounds {
        QueueBounds {
            capacity,
            max_bytes: usize::MAX,
            overflow: Overflow::Block,
        }
    }

    fn note(name: &str) -> Arc<Notification> {
        Arc::new(Notification {
            event_type: EventType::Added,
            origin: Origin::Watch,
            time: SystemTime::UNIX_EPOCH,
            cluster: None,
            resource: Arc::new(ResourceId {
                group: String::new(),
                version: "v1".into(),
                resource: "pods".into(),
                kind: "Pod".into(),
            }),
            namespace: Some("ns".into()),
            name: name.into(),
            uid: name.into(),
            resource_version: "1".into(),
            object: Arc::from(RawValue::from_string("{}".into()).expect("json")),
            old_object: None,
            snapshot: None,
            tombstone: false,
            old_resource_version: None,
            patch: None,
        })
    }

    #[test]
    fn a_notification_weighs_its_object_old_object_and_patch() {
        let raw = |s: &str| Arc::from(RawValue::from_string(s.into()).expect("json"));
        let mut n = Notification::clone(&note("a"));
        n.object = raw(r#"{"a":1}"#);
        n.old_object = Some(raw(r#"{"a":0,"b":2}"#));
        n.patch = Some(raw(r#"[{"op":"remove","path":"/b"}]"#));
        let q = Queued {
            note: Arc::new(n),
            receipt: None,
        };
        assert_eq!(notification_bytes(&q), 7 + 13 + 29);
    }

    /// A sink that fails in scripted ways and records what it confirmed.
    struct Scripted {
        script: Vec<Result<usize, SinkError>>,
        confirmed: Arc<Mutex<Vec<String>>>,
    }

    #[async_trait]
    impl Sink for Scripted {
        fn kind(&self) -> &'static str {
            "scripted"
        }
        async fn publish(&mut self, batch: &[Arc<Notification>]) -> Result<(), PublishError> {
            let step = if self.script.is_empty() {
                Ok(batch.len())
            } else {
                self.script.remove(0)
            };
            let mut confirmed = self.confirmed.lock().expect("lock");
            match step {
                Ok(n) if n >= batch.len() => {
                    confirmed.extend(batch.iter().map(|n| n.name.clone()));
                    Ok(())
                }
                Ok(n) => {
                    confirmed.extend(batch[..n].iter().map(|n| n.name.clone()));
                    Err(PublishError {
                        delivered: n,
                        error: SinkError::Retryable {
                            message: "partial".into(),
                            source: None,
                        },
                    })
                }
                Err(error) => Err(PublishError {
                    delivered: 0,
                    error,
                }),
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_from_the_first_unconfirmed_and_drops_permanent_failures() {
        let confirmed = Arc::new(Mutex::new(Vec::new()));
        let sink = Scripted {
            script: vec![
                Ok(1),
                Err(SinkError::Retryable {
                    message: "down".into(),
                    source: None,
                }),
                Err(SinkError::Permanent {
                    message: "too large".into(),
                    source: None,
                }),
            ],
            confirmed: confirmed.clone(),
        };
        let SinkHandle {
            queue: tx, task, ..
        } = spawn_sink("test".into(), Box::new(sink), bounds(8), &Metrics::new());
        for name in ["a", "b", "c", "d"] {
            tx.send(note(name).into()).await.expect("send");
        }
        drop(tx);
        let outcome = task.await.expect("join");
        assert!(
            matches!(
                outcome,
                SinkOutcome::Drained {
                    delivered: 3,
                    dropped: 1,
                    evicted: 0
                }
            ),
            "{outcome:?}"
        );
        // "a" confirmed; "b" retried, then refused for good; "c" and "d" delivered in order.
        assert_eq!(*confirmed.lock().expect("lock"), ["a", "c", "d"]);
    }

    #[tokio::test]
    async fn a_closed_destination_ends_the_task() {
        let sink = Scripted {
            script: vec![Err(SinkError::Closed)],
            confirmed: Arc::default(),
        };
        let SinkHandle {
            queue: tx, task, ..
        } = spawn_sink("test".into(), Box::new(sink), bounds(8), &Metrics::new());
        tx.send(note("a").into()).await.expect("send");
        assert!(matches!(task.await.expect("join"), SinkOutcome::Closed));
        assert!(tx.is_closed());
    }

    #[tokio::test(start_paused = true)]
    async fn a_replaced_producer_counts_what_it_sends_again() {
        let replaced = ProducerReplaced {
            reason: "UNKNOWN_PRODUCER_ID".into(),
            unconfirmed: 2,
        };
        let sink = Scripted {
            script: vec![Err(SinkError::retryable("producer replaced", replaced))],
            confirmed: Arc::default(),
        };
        let metrics = Metrics::new();
        let SinkHandle {
            queue: tx, task, ..
        } = spawn_sink("k".into(), Box::new(sink), bounds(8), &metrics);
        tx.send(note("a").into()).await.expect("send");
        tx.send(note("b").into()).await.expect("send");
        drop(tx);
        task.await.expect("join");
        let text = metrics.render();
        assert!(
            text.contains("kubebridge_sink_resent_total{sink=\"k\"} 2"),
            "{text}"
        );
    }
}
