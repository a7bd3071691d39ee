//! The bounded queue between informers and a sink: bounded by a count and by a byte
//! budget, an explicit overflow policy, a depth anyone can read, and closure when either
//! side goes away.
//!
//! tokio's `mpsc` can only block a full sender; `drop-oldest` needs the sender to evict
//! from the front, so this is a small `VecDeque` under a mutex with two `Notify`s.
//!
//! The byte budget is what bounds memory: a count alone lets 10 000 queued updates of a
//! large object pin 10 000 old versions of it. An item larger than the whole budget is
//! still accepted into an empty queue, so nothing can wait for room that never comes.

use std::collections::VecDeque;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
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

/// How much a queue may hold.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits<T> {
    /// Items, at least 1.
    pub capacity: usize,
    /// The sum of `weigh` over the queued items, at least 1.
    pub max_bytes: usize,
    /// An item's bytes.
    pub weigh: fn(&T) -> usize,
}

impl<T> Limits<T> {
    /// `capacity` items, whatever their size.
    #[cfg(test)]
    pub(crate) fn count(capacity: usize) -> Limits<T> {
        Limits {
            capacity,
            max_bytes: usize::MAX,
            weigh: |_| 0,
        }
    }
}

struct State<T> {
    items: VecDeque<T>,
    /// The sum of the queued items' weights.
    bytes: usize,
    senders: usize,
    receiver_alive: bool,
}

impl<T> State<T> {
    /// Whether an item of `weight` bytes may join: within both bounds, or the queue is
    /// empty (an item over the whole budget passes alone rather than never).
    fn fits(&self, limits: &Limits<T>, weight: usize) -> bool {
        self.items.is_empty()
            || (self.items.len() < limits.capacity
                && self.bytes.saturating_add(weight) <= limits.max_bytes)
    }

    fn push(&mut self, item: T, weight: usize) {
        self.bytes = self.bytes.saturating_add(weight);
        self.items.push_back(item);
    }

    fn pop(&mut self, weigh: fn(&T) -> usize) -> Option<T> {
        let item = self.items.pop_front()?;
        self.bytes = self.bytes.saturating_sub(weigh(&item));
        Some(item)
    }
}

struct Shared<T> {
    state: Mutex<State<T>>,
    not_empty: Notify,
    not_full: Notify,
    limits: Limits<T>,
    overflow: Overflow,
    dropped: AtomicU64,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic while holding this lock leaves the deque consistent (every critical
        // section is a single push or pop), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Creates a queue holding at most `capacity` items (at least 1), whatever their size.
#[cfg(test)]
pub(crate) fn queue<T>(capacity: usize, overflow: Overflow) -> (QueueSender<T>, QueueReceiver<T>) {
    bounded(Limits::count(capacity), overflow)
}

/// Creates a queue within `limits`.
pub(crate) fn bounded<T>(
    limits: Limits<T>,
    overflow: Overflow,
) -> (QueueSender<T>, QueueReceiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            bytes: 0,
            senders: 1,
            receiver_alive: true,
        }),
        not_empty: Notify::new(),
        not_full: Notify::new(),
        limits: Limits {
            capacity: limits.capacity.max(1),
            max_bytes: limits.max_bytes.max(1),
            weigh: limits.weigh,
        },
        overflow,
        dropped: AtomicU64::new(0),
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
    /// Queued, after evicting these older items, oldest first (`drop-oldest` on a full
    /// queue: one for the count, as many as the byte budget needs).
    Evicted(Vec<T>),
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
    /// Queues `item`, waiting for room (in count and bytes) under [`Overflow::Block`] or
    /// evicting the oldest items until it fits under [`Overflow::DropOldest`].
    pub async fn send(&self, item: T) -> Result<Sent<T>, Closed<T>> {
        let shared = &self.shared;
        let limits = &shared.limits;
        let weight = (limits.weigh)(&item);
        loop {
            let mut notified = pin!(shared.not_full.notified());
            {
                let mut state = shared.lock();
                if !state.receiver_alive {
                    return Err(Closed(item));
                }
                if state.fits(limits, weight) {
                    state.push(item, weight);
                    drop(state);
                    shared.not_empty.notify_one();
                    return Ok(Sent::Queued);
                }
                if shared.overflow == Overflow::DropOldest {
                    let mut evicted = Vec::new();
                    while !state.fits(limits, weight) {
                        evicted.extend(state.pop(limits.weigh));
                    }
                    state.push(item, weight);
                    drop(state);
                    shared
                        .dropped
                        .fetch_add(evicted.len() as u64, Ordering::Relaxed);
                    shared.not_empty.notify_one();
                    return Ok(Sent::Evicted(evicted));
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

    /// The queue's capacity.
    pub(crate) fn capacity(&self) -> usize {
        self.shared.limits.capacity
    }

    /// Bytes queued now (the sum of the items' weights).
    pub(crate) fn bytes(&self) -> usize {
        self.shared.lock().bytes
    }

    /// The queue's byte budget.
    pub(crate) fn max_bytes(&self) -> usize {
        self.shared.limits.max_bytes
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
    /// Moves up to `max` items into `buf`, waiting until at least one is there. What it
    /// takes is within the byte budget too, since the queue never holds more (but for a
    /// lone oversized item): a sink's batch in flight is bounded like its queue. Returns 0
    /// once every sender is gone and the queue is empty.
    pub(crate) async fn recv_many(&mut self, buf: &mut Vec<T>, max: usize) -> usize {
        let shared = &self.shared;
        loop {
            let mut notified = pin!(shared.not_empty.notified());
            {
                let mut state = shared.lock();
                if !state.items.is_empty() {
                    let n = state.items.len().min(max.max(1));
                    for _ in 0..n {
                        buf.extend(state.pop(shared.limits.weigh));
                    }
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

    /// The next item if one is queued now.
    #[cfg(test)]
    pub(crate) fn try_recv(&mut self) -> Option<T> {
        let item = self.shared.lock().pop(self.shared.limits.weigh);
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

    /// An item of a given size: (id, bytes).
    type Blob = (u32, usize);

    fn by_bytes(capacity: usize, max_bytes: usize) -> Limits<Blob> {
        Limits {
            capacity,
            max_bytes,
            weigh: |b| b.1,
        }
    }

    fn ids(items: &[Blob]) -> Vec<u32> {
        items.iter().map(|b| b.0).collect()
    }

    #[tokio::test]
    async fn block_waits_for_bytes_while_the_count_has_room() {
        let (tx, mut rx) = bounded(by_bytes(10, 100), Overflow::Block);
        let gauge = tx.gauge();
        tx.send((1, 60)).await.expect("room");
        tx.send((2, 30)).await.expect("room");
        assert_eq!(gauge.bytes(), 90);
        let tx2 = tx.clone();
        let blocked = tokio::spawn(async move { tx2.send((3, 20)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !blocked.is_finished(),
            "90 + 20 bytes is over the budget of 100"
        );
        assert_eq!(rx.try_recv(), Some((1, 60)));
        assert_eq!(blocked.await.expect("join"), Ok(Sent::Queued));
        assert_eq!(gauge.bytes(), 50);
        let mut buf = Vec::new();
        rx.recv_many(&mut buf, 10).await;
        assert_eq!(ids(&buf), [2, 3]);
        assert_eq!(gauge.bytes(), 0);
    }

    #[tokio::test]
    async fn drop_oldest_evicts_until_the_bytes_fit() {
        let (tx, mut rx) = bounded(by_bytes(10, 100), Overflow::DropOldest);
        let gauge = tx.gauge();
        for id in 1..=3 {
            tx.send((id, 30)).await.expect("open");
        }
        // 90 queued; 70 more needs two 30-byte evictions, oldest first.
        match tx.send((4, 70)).await.expect("open") {
            Sent::Evicted(old) => assert_eq!(ids(&old), [1, 2]),
            Sent::Queued => panic!("over the budget: something must go"),
        }
        assert_eq!(rx.dropped(), 2);
        assert_eq!(gauge.evicted(), 2);
        assert_eq!(gauge.bytes(), 100);
        let mut buf = Vec::new();
        rx.recv_many(&mut buf, 10).await;
        assert_eq!(ids(&buf), [3, 4]);
    }

    #[tokio::test]
    async fn an_item_over_the_whole_budget_passes_alone() {
        // Into an empty queue at once, under either policy.
        for overflow in [Overflow::Block, Overflow::DropOldest] {
            let (tx, mut rx) = bounded(by_bytes(10, 100), overflow);
            assert_eq!(tx.send((1, 500)).await, Ok(Sent::Queued), "{overflow:?}");
            assert_eq!(rx.try_recv(), Some((1, 500)));
        }
        // Blocking: it waits for the queue to empty, then passes; nothing deadlocks.
        let (tx, mut rx) = bounded(by_bytes(10, 100), Overflow::Block);
        tx.send((1, 10)).await.expect("room");
        let tx2 = tx.clone();
        let big = tokio::spawn(async move { tx2.send((2, 500)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!big.is_finished(), "waits while anything is queued");
        let mut buf = Vec::new();
        rx.recv_many(&mut buf, 10).await;
        assert_eq!(big.await.expect("join"), Ok(Sent::Queued));
        // Nothing joins it while it is over the budget.
        let tx3 = tx.clone();
        let small = tokio::spawn(async move { tx3.send((3, 1)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!small.is_finished());
        rx.recv_many(&mut buf, 10).await;
        assert_eq!(small.await.expect("join"), Ok(Sent::Queued));
        rx.recv_many(&mut buf, 10).await;
        assert_eq!(ids(&buf), [1, 2, 3]);
        // Drop-oldest: it evicts everything queued to pass.
        let (tx, _rx) = bounded(by_bytes(10, 100), Overflow::DropOldest);
        tx.send((1, 10)).await.expect("room");
        tx.send((2, 10)).await.expect("room");
        match tx.send((3, 500)).await.expect("open") {
            Sent::Evicted(old) => assert_eq!(ids(&old), [1, 2]),
            Sent::Queued => panic!("must evict"),
        }
    }

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
        assert_eq!(rx.dropped(), 2, "one eviction per item over the count");
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
