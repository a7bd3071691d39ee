//! What a sink queue carries: a notification and, when its informer keeps a checkpoint,
//! the receipt the sink task hands back once the notification is settled.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use kubebridge_sinks::Notification;

/// One queued notification. The receipt is `None` for notifications no checkpoint waits
/// for (resync replays, informers without `--checkpoint`).
#[derive(Debug, Clone)]
pub(crate) struct Queued {
    /// The notification, shared with every other sink of its informer.
    pub note: Arc<Notification>,
    /// Settled by the sink task; see [`Receipt::settle`].
    pub receipt: Option<Receipt>,
}

impl From<Arc<Notification>> for Queued {
    fn from(note: Arc<Notification>) -> Self {
        Queued {
            note,
            receipt: None,
        }
    }
}

impl Queued {
    /// Settles the receipt, if any: the notification was confirmed, refused for good, or
    /// evicted (the last two are logged and counted where they happen).
    pub(crate) fn settle(&self) {
        if let Some(r) = &self.receipt {
            r.settle();
        }
    }
}

/// The notifications one sink of one informer was handed and has not settled, by
/// sequence number. A queue is FIFO and its task settles in order, so this is a deque
/// whose front is almost always what settles next.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    outstanding: Mutex<VecDeque<u64>>,
}

impl Ledger {
    fn lock(&self) -> MutexGuard<'_, VecDeque<u64>> {
        // Every critical section is one push or one removal: a poisoned lock is consistent.
        self.outstanding.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes that the notification numbered `seq` is about to enter the sink's queue, and
    /// returns the receipt that settles it.
    pub(crate) fn issue(self: &Arc<Self>, seq: u64) -> Receipt {
        self.lock().push_back(seq);
        Receipt {
            ledger: self.clone(),
            seq,
        }
    }

    /// The lowest sequence number still outstanding.
    pub(crate) fn oldest(&self) -> Option<u64> {
        self.lock().front().copied()
    }

    /// How many are outstanding.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn settle(&self, seq: u64) {
        let mut outstanding = self.lock();
        if outstanding.front() == Some(&seq) {
            outstanding.pop_front();
        } else if let Some(at) = outstanding.iter().position(|s| *s == seq) {
            outstanding.remove(at);
        }
    }
}

/// Proof that a notification numbered `seq` was handed to one sink; settling it tells its
/// informer's checkpoint that this sink is done with it.
#[derive(Debug, Clone)]
pub(crate) struct Receipt {
    ledger: Arc<Ledger>,
    seq: u64,
}

impl Receipt {
    /// The sink is done with the notification. Settling twice is harmless.
    pub(crate) fn settle(&self) {
        self.ledger.settle(self.seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settles_in_and_out_of_order() {
        let ledger = Arc::new(Ledger::default());
        let r: Vec<Receipt> = (1..=4).map(|s| ledger.issue(s)).collect();
        assert_eq!(ledger.oldest(), Some(1));
        r[1].settle();
        assert_eq!(ledger.oldest(), Some(1), "2 settled, 1 still out");
        r[0].settle();
        r[0].settle();
        assert_eq!(ledger.oldest(), Some(3));
        r[2].settle();
        r[3].settle();
        assert_eq!(ledger.oldest(), None);
        assert_eq!(ledger.len(), 0);
    }
}
