//! The processor task of one informer: takes each delta to the [`diff`](super::diff),
//! hands what changed to the [`fan-out`](super::fanout), and replays the cache on the
//! [`resync`](super::resync) schedule.

use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};
use std::time::Duration;

use kubebridge_sinks::{EventType, Notification, ResourceId};
use tokio::sync::{mpsc, watch};

use super::diff::Differ;
use super::fanout::{FanOut, Subscription};
use super::resync::Resync;
use super::{CacheCompression, Delta, Store};
use crate::checkpoint::run::Resume;
use crate::checkpoint::tracker::{Change, Known, Tracker};
use crate::metrics::Metrics;

/// How the processor behaves.
#[derive(Debug, Clone)]
pub struct ProcessorConfig {
    /// Whether the objects of the initial list are sent as ADDED (origin `list`).
    pub emit_initial: bool,
    /// How often to replay the cache as SYNC notifications; `None` disables resync.
    pub resync: Option<Duration>,
    /// The cluster name stamped on every notification.
    pub cluster: Option<Arc<str>>,
    /// How the cache holds objects.
    pub cache_compression: CacheCompression,
}

/// Applies deltas to the cache and notifies the subscribers.
pub struct Processor {
    name: String,
    resync: Option<Duration>,
    cache: Arc<RwLock<Store>>,
    differ: Differ,
    fanout: FanOut,
    /// Confirmation tracking, with `--checkpoint`.
    tracker: Option<Arc<Tracker>>,
    synced: watch::Sender<bool>,
    metrics: Metrics,
}

impl Processor {
    /// A processor for the informer called `name` (used in snapshot ids and logs),
    /// counting what happens in `metrics`, without a checkpoint.
    #[cfg(test)]
    pub(crate) fn new(
        name: String,
        resource: Arc<ResourceId>,
        config: ProcessorConfig,
        subscriptions: Vec<Subscription>,
        metrics: Metrics,
    ) -> Self {
        Self::with_checkpoint(name, resource, config, subscriptions, None, metrics)
    }

    /// A processor whose changes are tracked for a checkpoint (`resume`): each subscriber
    /// gets a ledger, and a resumed index makes the initial list a diff against it.
    pub(crate) fn with_checkpoint(
        name: String,
        resource: Arc<ResourceId>,
        config: ProcessorConfig,
        subscriptions: Vec<Subscription>,
        resume: Option<Resume>,
        metrics: Metrics,
    ) -> Self {
        let (tracker, index) = match resume {
            Some(r) => (Some(r.tracker), r.index),
            None => (None, None),
        };
        let mut differ = Differ::new(name.clone(), resource, config.emit_initial, config.cluster);
        if let Some(index) = index {
            differ.resume_from(index);
        }
        let cache = Store::new(config.cache_compression, metrics.cache_unreadable(&name));
        Processor {
            differ,
            fanout: FanOut::new(name.clone(), subscriptions, tracker.as_deref(), &metrics),
            tracker,
            name,
            resync: config.resync,
            cache: Arc::new(RwLock::new(cache)),
            synced: watch::channel(false).0,
            metrics,
        }
    }

    /// Becomes `true` once the initial list has been handed to every subscriber.
    pub fn synced(&self) -> watch::Receiver<bool> {
        self.synced.subscribe()
    }

    /// The cache.
    pub fn store(&self) -> RwLockReadGuard<'_, Store> {
        self.cache.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cache itself, shared for reading (the `/cache` lister reads it).
    pub fn cache(&self) -> Arc<RwLock<Store>> {
        self.cache.clone()
    }

    /// Applies one delta to the cache and returns the notifications it causes.
    pub fn apply(&mut self, delta: Delta) -> Vec<Notification> {
        let mut store = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        self.differ.apply(&mut store, delta)
    }

    /// The differ, for tests that set it up directly.
    #[cfg(test)]
    pub(crate) fn differ_for_tests(&mut self) -> &mut Differ {
        &mut self.differ
    }

    /// The metrics, for tests that read them.
    #[cfg(test)]
    pub(crate) fn metrics_for_tests(&self) -> &Metrics {
        &self.metrics
    }

    /// The fan-out, for tests that drive it directly.
    #[cfg(test)]
    pub(super) fn fanout_for_test(&mut self) -> &mut FanOut {
        &mut self.fanout
    }

    /// Runs until the reflector closes `deltas`, or until every subscriber has gone.
    pub async fn run(mut self, mut deltas: mpsc::Receiver<Delta>) {
        let mut resync = Resync::new(self.resync);
        loop {
            tokio::select! {
                biased;
                delta = deltas.recv() => {
                    let Some(delta) = delta else { break };
                    self.process(delta).await;
                }
                () = resync.due(), if *self.synced.borrow() => {
                    let notes = {
                        let store = self.cache.read().unwrap_or_else(PoisonError::into_inner);
                        // The lock is held while the notes are built, not while they are sent.
                        self.differ.replay(&store)
                    };
                    tracing::debug!(informer = %self.name, objects = notes.len(), "resync");
                    self.metrics.resynced(&self.name);
                    self.dispatch(notes).await;
                }
            }
            if self.fanout.is_empty() {
                tracing::debug!(informer = %self.name, "every subscriber has gone; stopping");
                break;
            }
        }
    }

    async fn process(&mut self, delta: Delta) {
        let initial = matches!(delta, Delta::Replace { initial: true, .. });
        let notes = self.apply(delta);
        let (objects, bytes, held) = {
            let store = self.store();
            (store.len(), store.json_bytes(), store.held_bytes())
        };
        self.metrics.cache_size(&self.name, objects, bytes, held);
        if initial && notes.is_empty() {
            self.track_silent_list();
        }
        self.dispatch(notes).await;
        if initial {
            self.synced.send_replace(true);
            self.metrics.informer_synced(&self.name, true);
        }
    }

    async fn dispatch(&mut self, notes: Vec<Notification>) {
        for note in notes {
            self.metrics.notification(&self.name, &note);
            let seq = self.tracker.as_ref().and_then(|t| track(t, &note));
            self.fanout.send(Arc::new(note), seq).await;
            if let (Some(tracker), Some(seq)) = (&self.tracker, seq) {
                tracker.handed(seq);
            }
        }
    }

    /// An initial list that notified nothing (`--initial-state skip`, or a resume that
    /// found nothing changed) still moves the checkpoint: to the cache as listed.
    fn track_silent_list(&self) {
        let Some(tracker) = &self.tracker else {
            return;
        };
        let store = self.store();
        let index = store
            .objects()
            .map(|o| {
                let known = Known {
                    uid: o.uid.clone(),
                    resource_version: o.resource_version.clone(),
                };
                (o.key(), known)
            })
            .collect();
        let rv = store
            .objects()
            .map(|o| o.resource_version.as_str())
            .max_by_key(|rv| (rv.len(), *rv))
            .unwrap_or_default()
            .to_owned();
        drop(store);
        let seq = tracker.record(Change::Reset(index), rv);
        tracker.handed(seq);
    }
}

/// Numbers `note`'s change to the index in `tracker`; `None` for a resync replay, which
/// changes nothing.
fn track(tracker: &Tracker, note: &Notification) -> Option<u64> {
    let change = match note.event_type {
        EventType::Sync => return None,
        EventType::Added | EventType::Modified => Change::Put(
            note.key(),
            Known {
                uid: note.uid.clone(),
                resource_version: note.resource_version.clone(),
            },
        ),
        EventType::Deleted => Change::Delete(note.key()),
    };
    Some(tracker.record(change, note.resource_version.clone()))
}
