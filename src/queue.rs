//! The bounded queue between informers and a sink: an explicit overflow policy, a depth
//! anyone can read, and closure when either side goes away.
//!
//! tokio's `mpsc` can only block a full sender; `drop-oldest` needs the sender to evict
//! from the front, so this is a small `VecDeque` under a mutex with two `Notify`s.

use std::collections::VecDeque;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// What a sender does when the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Overflow {
    /// Wait for room: the informer stops reading its watch (backpressure). Nothing is
    /// lost and memory stays bounded whatever the outage.
    #[default]
    Block,
    /// Evict the oldest queued item to make room; every eviction is counted.
    DropOldest,
}

struct State<T> {
    items: VecDeque<T>,
    senders: usize,
    receiver_alive: bool,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    not_empty: Notify,
    not_full: Notify,
    capacity: usize,
    overflow: Overflow,
    dropped: AtomicU64,
    /// Items the receiver took and has not yet marked handled ([`QueueReceiver::handled`]):
    /// a sink's batch in flight.
    in_flight: AtomicUsize,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic while holding this lock leaves the deque consistent (every critical
        // section is a single push or pop), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Creates a queue holding at most `capacity` items (at least 1).
pub(crate) fn queue<T>(capacity: usize, overflow: Overflow) -> (QueueSender<T>, QueueReceiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            senders: 1,
            receiver_alive: true,
        }),
        not_empty: Notify::new(),
        not_full: Notify::new(),
        capacity: capacity.max(1),
        overflow,
        dropped: AtomicU64::new(0),
        in_flight: AtomicUsize::new(0),
    });
    (
        QueueSender {
            shared: shared.clone(),
        },
        QueueReceiver { shared },
    )
}

/// The receiving side went away; the item was not queued.
#[derive(Debug, PartialEq, Eq)]
pub struct Closed<T>(pub T);

/// What `send` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Sent<T> {
    /// Queued.
    Queued,
    /// Queued, after evicting this older item (`drop-oldest` on a full queue).
    Evicted(T),
}

/// The sending side; cloneable. The queue closes when every sender is dropped.
pub struct QueueSender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for QueueSender<T> {
    fn clone(&self) -> Self {
        self.shared.lock().senders += 1;
        QueueSender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for QueueSender<T> {
    fn drop(&mut self) {
        let last = {
            let mut state = self.shared.lock();
            state.senders -= 1;
            state.senders == 0
        };
        if last {
            self.shared.not_empty.notify_one();
        }
    }
}

impl<T> QueueSender<T> {
    /// Queues `item`, waiting for room under [`Overflow::Block`] or evicting the oldest
    /// item under [`Overflow::DropOldest`].
    pub async fn send(&self, item: T) -> Result<Sent<T>, Closed<T>> {
        let shared = &self.shared;
        loop {
            let mut notified = pin!(shared.not_full.notified());
            {
                let mut state = shared.lock();
                if !state.receiver_alive {
                    return Err(Closed(item));
                }
                if state.items.len() < shared.capacity {
                    state.items.push_back(item);
                    drop(state);
                    shared.not_empty.notify_one();
                    return Ok(Sent::Queued);
                }
                if shared.overflow == Overflow::DropOldest {
                    let evicted = state.items.pop_front();
                    state.items.push_back(item);
                    drop(state);
                    shared.dropped.fetch_add(1, Ordering::Relaxed);
                    shared.not_empty.notify_one();
                    return Ok(evicted.map_or(Sent::Queued, Sent::Evicted));
                }
                // Register before unlocking so a pop between here and the await wakes us.
                notified.as_mut().enable();
            }
            notified.await;
        }
    }

    /// A gauge on this queue's depth.
    pub(crate) fn gauge(&self) -> QueueGauge<T> {
        QueueGauge {
            shared: self.shared.clone(),
        }
    }

    /// Whether the receiver is gone.
    #[cfg(test)]
    pub(crate) fn is_closed(&self) -> bool {
        !self.shared.lock().receiver_alive
    }
}

/// A read-only view of a queue's depth that keeps it neither open nor alive: for
/// metrics and for counting what shutdown left undelivered.
#[derive(Clone)]
pub(crate) struct QueueGauge<T> {
    shared: Arc<Shared<T>>,
}

impl<T> QueueGauge<T> {
    /// Items queued now.
    pub(crate) fn len(&self) -> usize {
        self.shared.lock().items.len()
    }

    /// Items taken by the receiver and not yet handled: a batch in flight.
    pub(crate) fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::Relaxed)
    }

    /// The queue's capacity.
    pub(crate) fn capacity(&self) -> usize {
        self.shared.capacity
    }

    /// Applies `f` to the oldest queued item, if any.
    pub(crate) fn front<R>(&self, f: impl FnOnce(&T) -> R) -> Option<R> {
        self.shared.lock().items.front().map(f)
    }

    /// Items evicted so far under [`Overflow::DropOldest`].
    pub(crate) fn evicted(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

/// The receiving side. Dropping it makes every `send` fail.
pub(crate) struct QueueReceiver<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Drop for QueueReceiver<T> {
    fn drop(&mut self) {
        self.shared.lock().receiver_alive = false;
        self.shared.not_full.notify_waiters();
    }
}

impl<T> QueueReceiver<T> {
    /// Moves up to `max` items into `buf`, waiting until at least one is there.
    /// Returns 0 once every sender is gone and the queue is empty.
    pub(crate) async fn recv_many(&mut self, buf: &mut Vec<T>, max: usize) -> usize {
        let shared = &self.shared;
        loop {
            let mut notified = pin!(shared.not_empty.notified());
            {
                let mut state = shared.lock();
                if !state.items.is_empty() {
                    let n = state.items.len().min(max.max(1));
                    buf.extend(state.items.drain(..n));
                    self.shared.in_flight.fetch_add(n, Ordering::Relaxed);
                    drop(state);
                    shared.not_full.notify_waiters();
                    return n;
                }
                if state.senders == 0 {
                    return 0;
                }
                notified.as_mut().enable();
            }
            notified.await;
        }
    }

    /// Marks `n` of the items taken as handled (delivered or dropped), so the gauge's
    /// [`QueueGauge::in_flight`] counts only what is still undelivered.
    pub(crate) fn handled(&self, n: usize) {
        let _ = self
            .shared
            .in_flight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(n))
            });
    }

    /// The next item if one is queued now.
    #[cfg(test)]
    pub(crate) fn try_recv(&mut self) -> Option<T> {
        let item = self.shared.lock().items.pop_front();
        if item.is_some() {
            self.shared.not_full.notify_waiters();
        }
        item
    }

    /// Items queued now: the sink's backlog.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shared.lock().items.len()
    }

    /// Items evicted so far under [`Overflow::DropOldest`].
    pub(crate) fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn block_waits_for_room_and_keeps_order() {
        let (tx, mut rx) = queue(2, Overflow::Block);
        tx.send(1).await.expect("room");
        tx.send(2).await.expect("room");
        let tx2 = tx.clone();
        let blocked = tokio::spawn(async move { tx2.send(3).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!blocked.is_finished(), "a full queue blocks the sender");
        let mut buf = Vec::new();
        assert_eq!(rx.recv_many(&mut buf, 10).await, 2);
        assert_eq!(blocked.await.expect("join"), Ok(Sent::Queued));
        drop(tx);
        assert_eq!(rx.recv_many(&mut buf, 10).await, 1);
        assert_eq!(buf, [1, 2, 3]);
        assert_eq!(
            rx.recv_many(&mut buf, 10).await,
            0,
            "closed once every sender is gone"
        );
    }

    #[tokio::test]
    async fn drop_oldest_evicts_and_counts() {
        let (tx, mut rx) = queue(2, Overflow::DropOldest);
        for i in 1..=4 {
            tx.send(i).await.expect("open");
        }
        assert_eq!(rx.len(), 2);
        assert_eq!(rx.dropped(), 2);
        let mut buf = Vec::new();
        rx.recv_many(&mut buf, 10).await;
        assert_eq!(buf, [3, 4]);
    }

    #[tokio::test]
    async fn a_dropped_receiver_closes_the_queue_even_for_blocked_senders() {
        let (tx, rx) = queue(1, Overflow::Block);
        tx.send(1).await.expect("room");
        let tx2 = tx.clone();
        let blocked = tokio::spawn(async move { tx2.send(2).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(rx);
        assert_eq!(blocked.await.expect("join"), Err(Closed(2)));
        assert!(tx.is_closed());
    }
}
