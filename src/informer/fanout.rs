//! The fan-out: hands every notification to each subscriber's queue, in order, with a
//! receipt from that subscriber's ledger when the informer keeps a checkpoint.

use std::sync::Arc;

use kubebridge_sinks::Notification;

use crate::confirm::{Ledger, Queued};
use crate::queue::{QueueSender, Sent};

/// Where a subscriber's notifications go: a sink's bounded queue. Under the `block`
/// policy a full queue makes the processor wait, which stops the reflector reading the
/// watch (backpressure).
pub type Subscriber = QueueSender<Queued>;

/// The subscribers of one informer, each with its checkpoint ledger (if any).
pub(super) struct FanOut {
    name: String,
    subscribers: Vec<(Subscriber, Option<Arc<Ledger>>)>,
}

impl FanOut {
    /// The subscribers of the informer called `name` (for logs).
    pub(super) fn new(name: String, subscribers: Vec<(Subscriber, Option<Arc<Ledger>>)>) -> Self {
        FanOut { name, subscribers }
    }

    /// Whether every subscriber has gone.
    pub(super) fn is_empty(&self) -> bool {
        self.subscribers.is_empty()
    }

    /// Queues `note` for every subscriber, waiting where a queue is full and blocks;
    /// `seq` is its number in the checkpoint's tracking, if it is tracked. A subscriber
    /// whose sink stopped for good is dropped; the others go on.
    pub(super) async fn send(&mut self, note: Arc<Notification>, seq: Option<u64>) {
        let mut i = 0;
        while i < self.subscribers.len() {
            let (subscriber, ledger) = &self.subscribers[i];
            let receipt = seq.zip(ledger.as_ref()).map(|(seq, l)| l.issue(seq));
            let item = Queued {
                note: note.clone(),
                receipt,
            };
            match subscriber.send(item).await {
                Ok(Sent::Queued) => i += 1,
                Ok(Sent::Evicted(evicted)) => {
                    for old in evicted {
                        tracing::warn!(
                            informer = %self.name, object = %old.note.key(), id = %old.note.id(),
                            "sink queue full: dropped the oldest notification (--overflow drop-oldest)"
                        );
                        // Lost, logged and counted: the checkpoint does not wait for it.
                        old.settle();
                    }
                    i += 1;
                }
                Err(_) => {
                    // The sink behind it stopped for good (a closed pipe). Its receipt
                    // stays outstanding: a checkpoint never claims it was delivered.
                    self.subscribers.swap_remove(i);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::tracker::{Change, Known, Tracker};
    use crate::informer::Delta;
    use crate::informer::testing::{obj, processor};
    use crate::queue::{Overflow, queue};

    fn note() -> Arc<Notification> {
        let mut p = processor(true);
        let notes = p.apply(Delta::Added(obj("a", "ua", 1)));
        Arc::new(notes.into_iter().next().expect("ADDED"))
    }

    fn put(t: &Tracker, rv: u64) -> u64 {
        let known = Known {
            uid: "ua".into(),
            resource_version: rv.to_string(),
        };
        t.record(Change::Put("ns/a".into(), known), rv.to_string())
    }

    #[tokio::test]
    async fn evictions_settle_and_a_closed_sink_holds_the_checkpoint_back() {
        let tracker = Tracker::new(None);
        let (evicting, _evicting_rx) = queue(1, Overflow::DropOldest);
        let (closing, closing_rx) = queue(8, Overflow::Block);
        let mut fanout = FanOut::new(
            "pods".into(),
            vec![
                (evicting, Some(tracker.ledger())),
                (closing, Some(tracker.ledger())),
            ],
        );
        for rv in 1..=2 {
            let seq = put(&tracker, rv);
            fanout.send(note(), Some(seq)).await;
            tracker.handed(seq);
        }
        // The second evicted the first (settled as lost); the closing sink holds both.
        drop(closing_rx);
        let seq = put(&tracker, 3);
        fanout.send(note(), Some(seq)).await;
        tracker.handed(seq);
        assert!(!tracker.advance(), "the closed sink never confirmed 1");
        assert_eq!(tracker.unconfirmed(), 3);
    }

    #[tokio::test]
    async fn an_evicted_notification_is_settled_as_lost() {
        let tracker = Tracker::new(None);
        let (evicting, mut rx) = queue(1, Overflow::DropOldest);
        let mut fanout = FanOut::new("pods".into(), vec![(evicting, Some(tracker.ledger()))]);
        for rv in 1..=2 {
            let seq = put(&tracker, rv);
            fanout.send(note(), Some(seq)).await;
            tracker.handed(seq);
        }
        assert!(tracker.advance(), "1 was evicted: nothing to wait for");
        assert_eq!(tracker.confirmed().seq, 1, "2 is still queued");
        rx.try_recv().expect("2").settle();
        tracker.advance();
        assert_eq!(tracker.confirmed().seq, 2);
    }
}
