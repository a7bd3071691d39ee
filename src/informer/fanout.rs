//! The fan-out: hands every notification to each subscriber's queue, in order.

use std::sync::Arc;

use kubebridge_sinks::Notification;

use crate::queue::{QueueSender, Sent};

/// Where a subscriber's notifications go: a sink's bounded queue. Under the `block`
/// policy a full queue makes the processor wait, which stops the reflector reading the
/// watch (backpressure).
pub type Subscriber = QueueSender<Arc<Notification>>;

/// The subscribers of one informer.
pub(super) struct FanOut {
    name: String,
    subscribers: Vec<Subscriber>,
}

impl FanOut {
    /// The subscribers of the informer called `name` (for logs).
    pub(super) fn new(name: String, subscribers: Vec<Subscriber>) -> Self {
        FanOut { name, subscribers }
    }

    /// Whether every subscriber has gone.
    pub(super) fn is_empty(&self) -> bool {
        self.subscribers.is_empty()
    }

    /// Queues `note` for every subscriber, waiting where a queue is full and blocks. A
    /// subscriber whose sink stopped for good is dropped; the others go on.
    pub(super) async fn send(&mut self, note: Arc<Notification>) {
        let mut i = 0;
        while i < self.subscribers.len() {
            match self.subscribers[i].send(note.clone()).await {
                Ok(Sent::Queued) => i += 1,
                Ok(Sent::Evicted(evicted)) => {
                    for old in evicted {
                        tracing::warn!(
                            informer = %self.name, object = %old.key(), id = %old.id(),
                            "sink queue full: dropped the oldest notification (--overflow drop-oldest)"
                        );
                    }
                    i += 1;
                }
                Err(_) => {
                    // The sink behind it stopped for good (a closed pipe).
                    self.subscribers.swap_remove(i);
                }
            }
        }
    }
}
