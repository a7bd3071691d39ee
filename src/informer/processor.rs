//! The processor: applies deltas to the cache, decides what changed, and hands every
//! notification to each subscriber; also replays the cache on resync.

use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};
use std::time::{Duration, SystemTime};

use kubebridge_sinks::{EventType, Notification, Origin, ResourceId, Snapshot};
use tokio::sync::{mpsc, watch};

use super::{RawObject, Store};
use crate::metrics::Metrics;
use crate::queue::{QueueSender, Sent};

/// What the reflector saw, in the order it saw it.
#[derive(Debug)]
pub enum Delta {
    /// A complete list: the initial state (`initial`) or a relist after a gap.
    Replace {
        /// Every object in the list.
        objects: Vec<RawObject>,
        /// Whether this is the first list of this informer.
        initial: bool,
    },
    /// A watch ADDED event.
    Added(RawObject),
    /// A watch MODIFIED event.
    Modified(RawObject),
    /// A watch DELETED event, with the object's final state.
    Deleted(RawObject),
}

/// Where a subscriber's notifications go: a sink's bounded queue. Under the `block`
/// policy a full queue makes the processor wait, which stops the reflector reading the
/// watch (backpressure).
pub type Subscriber = QueueSender<Arc<Notification>>;

/// How the processor behaves.
#[derive(Debug, Clone)]
pub struct ProcessorConfig {
    /// Whether the objects of the initial list are sent as ADDED (origin `list`).
    pub emit_initial: bool,
    /// How often to replay the cache as SYNC notifications; `None` disables resync.
    pub resync: Option<Duration>,
    /// The cluster name stamped on every notification.
    pub cluster: Option<Arc<str>>,
}

/// Applies deltas to the cache and notifies the subscribers.
pub struct Processor {
    name: String,
    resource: Arc<ResourceId>,
    config: ProcessorConfig,
    cache: Arc<RwLock<Store>>,
    subscribers: Vec<Subscriber>,
    synced: watch::Sender<bool>,
    snapshots: u64,
    metrics: Metrics,
}

impl Processor {
    /// A processor for the informer called `name` (used in snapshot ids and logs).
    pub(crate) fn new(
        name: String,
        resource: Arc<ResourceId>,
        config: ProcessorConfig,
        subscribers: Vec<Subscriber>,
        metrics: Metrics,
    ) -> Self {
        Processor {
            name,
            resource,
            config,
            cache: Arc::default(),
            subscribers,
            synced: watch::channel(false).0,
            snapshots: 0,
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

    /// The whole cache as notifications of one snapshot (the lock is held only while
    /// they are built, not while they are sent).
    fn replay_cache(&mut self, event_type: EventType, origin: Origin) -> Vec<Notification> {
        let cache = self.cache.clone();
        let store = cache.read().unwrap_or_else(PoisonError::into_inner);
        self.replay(&store, event_type, origin)
    }

    /// Runs until the reflector closes `deltas`. Subscribers that arrive on
    /// `late_subscribers` first get the current cache replayed as ADDED.
    pub async fn run(
        mut self,
        mut deltas: mpsc::Receiver<Delta>,
        mut late_subscribers: mpsc::Receiver<Subscriber>,
    ) {
        let mut resync = self.config.resync.map(|period| {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            // A slow sink delays the next replay rather than causing a burst of them.
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick
        });
        loop {
            tokio::select! {
                biased;
                delta = deltas.recv() => {
                    let Some(delta) = delta else { break };
                    let initial = matches!(delta, Delta::Replace { initial: true, .. });
                    let notes = self.apply(delta);
                    let (objects, bytes) = {
                        let store = self.store();
                        (store.len(), store.json_bytes())
                    };
                    self.metrics.cache_size(&self.name, objects, bytes);
                    self.dispatch(notes).await;
                    if initial {
                        self.synced.send_replace(true);
                        self.metrics.informer_synced(&self.name, true);
                    }
                }
                Some(subscriber) = late_subscribers.recv() => {
                    let notes = self.replay_cache(EventType::Added, Origin::List);
                    let mut subscribers = vec![subscriber];
                    for n in notes {
                        Self::send_to(&self.name, &mut subscribers, Arc::new(n)).await;
                    }
                    self.subscribers.append(&mut subscribers);
                }
                _ = next_tick(&mut resync), if *self.synced.borrow() => {
                    let notes = self.replay_cache(EventType::Sync, Origin::Resync);
                    tracing::debug!(informer = %self.name, objects = notes.len(), "resync");
                    self.metrics.resynced(&self.name);
                    self.dispatch(notes).await;
                }
            }
            if self.subscribers.is_empty() {
                tracing::debug!(informer = %self.name, "every subscriber has gone; stopping");
                break;
            }
        }
    }

    async fn dispatch(&mut self, notes: Vec<Notification>) {
        for note in notes {
            self.metrics.notification(&self.name, &note);
            Self::send_to(&self.name, &mut self.subscribers, Arc::new(note)).await;
        }
    }

    async fn send_to(name: &str, subscribers: &mut Vec<Subscriber>, note: Arc<Notification>) {
        let mut i = 0;
        while i < subscribers.len() {
            match subscribers[i].send(note.clone()).await {
                Ok(Sent::Queued) => i += 1,
                Ok(Sent::Evicted(old)) => {
                    tracing::warn!(
                        informer = name, object = %old.key(), id = %old.id(),
                        "sink queue full: dropped the oldest notification (--overflow drop-oldest)"
                    );
                    i += 1;
                }
                Err(_) => {
                    // The sink behind it stopped for good (a closed pipe); the others go on.
                    subscribers.swap_remove(i);
                }
            }
        }
    }

    /// Applies one delta to the cache and returns the notifications it causes.
    pub fn apply(&mut self, delta: Delta) -> Vec<Notification> {
        let cache = self.cache.clone();
        let mut store = cache.write().unwrap_or_else(PoisonError::into_inner);
        self.apply_to(&mut store, delta)
    }

    fn apply_to(&mut self, store: &mut Store, delta: Delta) -> Vec<Notification> {
        match delta {
            Delta::Replace {
                objects,
                initial: true,
            } if store.is_empty() => {
                let emit = self.config.emit_initial;
                let total = objects.len() as u64;
                let id = self.next_snapshot_id();
                let mut notes = Vec::with_capacity(if emit { objects.len() } else { 0 });
                for (index, object) in objects.into_iter().enumerate() {
                    if emit {
                        let mut n = self.note(EventType::Added, Origin::List, &object, None);
                        n.snapshot = Some(Snapshot {
                            id: id.clone(),
                            index: index as u64,
                            total,
                        });
                        notes.push(n);
                    }
                    store.insert(object);
                }
                notes
            }
            Delta::Replace { objects, .. } => self.relist(store, objects),
            Delta::Added(object) | Delta::Modified(object) => {
                self.upsert(store, object, Origin::Watch)
            }
            Delta::Deleted(object) => match store.remove(&object.key()) {
                Some(_) => vec![self.note(EventType::Deleted, Origin::Watch, &object, None)],
                None => {
                    // Never seen (it left and re-entered a selector while we were away, or
                    // a replayed event): no consumer knows it, so there is nothing to delete.
                    tracing::debug!(informer = %self.name, key = %object.key(), "delete of an object not in the cache");
                    Vec::new()
                }
            },
        }
    }

    /// ADDED or MODIFIED from the watch: the cache decides which it really is.
    fn upsert(
        &mut self,
        store: &mut Store,
        object: RawObject,
        origin: Origin,
    ) -> Vec<Notification> {
        let key = object.key();
        match store.get(&key) {
            None => {
                let n = self.note(EventType::Added, origin, &object, None);
                store.insert(object);
                vec![n]
            }
            Some(old) if old.uid != object.uid => {
                // A new object under a known name is a delete and an add, never an update.
                let deleted = self.note(EventType::Deleted, origin, old, None);
                let added = self.note(EventType::Added, origin, &object, None);
                store.insert(object);
                vec![deleted, added]
            }
            Some(old) if old.resource_version == object.resource_version => Vec::new(),
            Some(old) => {
                let n = self.note(EventType::Modified, origin, &object, Some(old));
                store.insert(object);
                vec![n]
            }
        }
    }

    /// Reconciles the cache with a fresh list after a gap: what vanished is DELETED with
    /// its last known state, what changed is MODIFIED, what is new is ADDED, all with
    /// origin `relist`; what did not change says nothing.
    fn relist(&mut self, store: &mut Store, objects: Vec<RawObject>) -> Vec<Notification> {
        let mut old = store.take();
        let mut notes = Vec::new();
        let mut fresh = Vec::with_capacity(objects.len());
        for object in objects {
            match old.remove(&object.key()) {
                Some(prev) => {
                    store.insert(prev);
                    notes.extend(self.upsert(store, object, Origin::Relist));
                }
                None => fresh.push(object),
            }
        }
        let mut gone: Vec<RawObject> = old.into_values().collect();
        gone.sort_unstable_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        // Deletes first: a consumer keyed by name sees the old object go before a new one
        // of the same name could arrive.
        let mut out: Vec<Notification> = gone
            .iter()
            .map(|o| self.note(EventType::Deleted, Origin::Relist, o, None))
            .collect();
        out.append(&mut notes);
        for object in fresh {
            out.extend(self.upsert(store, object, Origin::Relist));
        }
        out
    }

    /// The whole cache as notifications of one snapshot.
    fn replay(
        &mut self,
        store: &Store,
        event_type: EventType,
        origin: Origin,
    ) -> Vec<Notification> {
        let id = self.next_snapshot_id();
        let all = store.sorted();
        let total = all.len() as u64;
        let notes: Vec<Notification> = all
            .into_iter()
            .enumerate()
            .map(|(index, o)| {
                let mut n = self.note(event_type, origin, o, None);
                n.snapshot = Some(Snapshot {
                    id: id.clone(),
                    index: index as u64,
                    total,
                });
                n
            })
            .collect();
        notes
    }

    fn next_snapshot_id(&mut self) -> Arc<str> {
        self.snapshots += 1;
        let millis = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        format!("{}@{millis}-{}", self.name, self.snapshots).into()
    }

    fn note(
        &self,
        event_type: EventType,
        origin: Origin,
        object: &RawObject,
        old: Option<&RawObject>,
    ) -> Notification {
        Notification {
            event_type,
            origin,
            time: SystemTime::now(),
            cluster: self.config.cluster.clone(),
            resource: self.resource.clone(),
            namespace: object.namespace.clone(),
            name: object.name.clone(),
            uid: object.uid.clone(),
            resource_version: object.resource_version.clone(),
            object: object.raw.clone(),
            old_object: old.map(|o| o.raw.clone()),
            snapshot: None,
        }
    }
}

/// Waits for the next resync tick, or forever when resync is off.
async fn next_tick(resync: &mut Option<tokio::time::Interval>) {
    match resync {
        Some(tick) => {
            tick.tick().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    fn pods() -> Arc<ResourceId> {
        Arc::new(ResourceId {
            group: String::new(),
            version: "v1".into(),
            resource: "pods".into(),
            kind: "Pod".into(),
        })
    }

    fn obj(name: &str, uid: &str, rv: u32) -> RawObject {
        let text = format!(
            r#"{{"kind":"Pod","apiVersion":"v1","metadata":{{"name":"{name}","namespace":"ns","uid":"{uid}","resourceVersion":"{rv}"}}}}"#
        );
        RawObject::decode(RawValue::from_string(text).expect("json"), &pods()).expect("decode")
    }

    fn processor(emit_initial: bool) -> Processor {
        Processor::new(
            "pods".into(),
            pods(),
            ProcessorConfig {
                emit_initial,
                resync: None,
                cluster: Some("c1".into()),
            },
            Vec::new(),
            Metrics::new(),
        )
    }

    /// `TYPE origin name rv` for each notification, compact enough to compare whole.
    fn summary(notes: &[Notification]) -> Vec<String> {
        notes
            .iter()
            .map(|n| {
                let old = n
                    .old_object
                    .as_ref()
                    .map(|o| format!(" old={}", rv_of(o)))
                    .unwrap_or_default();
                format!(
                    "{} {} {} {}{old}",
                    n.event_type, n.origin, n.name, n.resource_version
                )
            })
            .collect()
    }

    fn rv_of(raw: &RawValue) -> String {
        let v: serde_json::Value = serde_json::from_str(raw.get()).expect("json");
        v["metadata"]["resourceVersion"]
            .as_str()
            .expect("rv")
            .to_owned()
    }

    #[test]
    fn initial_list_is_added_with_a_snapshot_frame() {
        let mut p = processor(true);
        let notes = p.apply(Delta::Replace {
            objects: vec![obj("a", "ua", 1), obj("b", "ub", 2)],
            initial: true,
        });
        assert_eq!(summary(&notes), ["ADDED list a 1", "ADDED list b 2"]);
        let frames: Vec<_> = notes
            .iter()
            .map(|n| n.snapshot.clone().expect("framed"))
            .collect();
        assert_eq!(
            (frames[0].index, frames[1].index, frames[1].total),
            (0, 1, 2)
        );
        assert_eq!(frames[0].id, frames[1].id);
        assert_eq!(notes[0].cluster.as_deref(), Some("c1"));
        assert_eq!(p.store().len(), 2);
    }

    #[test]
    fn skipped_initial_state_still_fills_the_cache() {
        let mut p = processor(false);
        assert!(
            p.apply(Delta::Replace {
                objects: vec![obj("a", "ua", 1)],
                initial: true
            })
            .is_empty()
        );
        let notes = p.apply(Delta::Modified(obj("a", "ua", 5)));
        assert_eq!(summary(&notes), ["MODIFIED watch a 5 old=1"]);
    }

    #[test]
    fn watch_events_carry_the_old_object_and_drop_replays() {
        let mut p = processor(true);
        p.apply(Delta::Replace {
            objects: vec![obj("a", "ua", 1)],
            initial: true,
        });
        let mut notes = p.apply(Delta::Modified(obj("a", "ua", 3)));
        notes.extend(p.apply(Delta::Modified(obj("a", "ua", 3)))); // the same event twice
        notes.extend(p.apply(Delta::Added(obj("b", "ub", 4))));
        notes.extend(p.apply(Delta::Deleted(obj("a", "ua", 5))));
        notes.extend(p.apply(Delta::Deleted(obj("zz", "uz", 6)))); // never seen
        assert_eq!(
            summary(&notes),
            [
                "MODIFIED watch a 3 old=1",
                "ADDED watch b 4",
                "DELETED watch a 5"
            ]
        );
    }

    #[test]
    fn a_new_uid_under_a_known_name_is_delete_then_add() {
        let mut p = processor(true);
        p.apply(Delta::Replace {
            objects: vec![obj("a", "ua", 1)],
            initial: true,
        });
        let notes = p.apply(Delta::Added(obj("a", "ua2", 7)));
        assert_eq!(summary(&notes), ["DELETED watch a 1", "ADDED watch a 7"]);
        assert_eq!(notes[0].uid, "ua");
        assert_eq!(notes[1].uid, "ua2");
    }

    #[test]
    fn relist_reports_exactly_what_changed_during_the_gap() {
        let mut p = processor(true);
        p.apply(Delta::Replace {
            objects: vec![
                obj("gone", "u1", 1),
                obj("same", "u2", 2),
                obj("changed", "u3", 3),
                obj("reborn", "u4", 4),
            ],
            initial: true,
        });
        let notes = p.apply(Delta::Replace {
            objects: vec![
                obj("changed", "u3", 9),
                obj("new", "u5", 10),
                obj("reborn", "u6", 11),
                obj("same", "u2", 2),
            ],
            initial: false,
        });
        assert_eq!(
            summary(&notes),
            [
                "DELETED relist gone 1",
                "MODIFIED relist changed 9 old=3",
                "DELETED relist reborn 4",
                "ADDED relist reborn 11",
                "ADDED relist new 10",
            ]
        );
        // The deleted object carries its last known state.
        assert_eq!(rv_of(&notes[0].object), "1");
        assert_eq!(p.store().len(), 4);
        assert!(p.store().get("ns/gone").is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn resync_replays_the_cache_on_schedule() {
        let (tx, mut rx) = crate::queue::queue(64, crate::queue::Overflow::Block);
        let p = Processor::new(
            "pods".into(),
            pods(),
            ProcessorConfig {
                emit_initial: false,
                resync: Some(Duration::from_secs(30)),
                cluster: None,
            },
            vec![tx],
            Metrics::new(),
        );
        let (delta_tx, delta_rx) = mpsc::channel(8);
        let (_late_tx, late_rx) = mpsc::channel(1);
        let task = tokio::spawn(p.run(delta_rx, late_rx));
        delta_tx
            .send(Delta::Replace {
                objects: vec![obj("b", "ub", 2), obj("a", "ua", 1)],
                initial: true,
            })
            .await
            .expect("send");
        tokio::time::sleep(Duration::from_secs(29)).await;
        assert!(rx.try_recv().is_none(), "nothing before the first period");
        tokio::time::sleep(Duration::from_secs(2)).await;
        let first: Vec<_> = (0..2).map(|_| rx.try_recv().expect("sync")).collect();
        assert_eq!(
            summary(&first.iter().map(|n| (**n).clone()).collect::<Vec<_>>()),
            ["SYNC resync a 1", "SYNC resync b 2"]
        );
        assert_eq!(
            first[1].snapshot.as_ref().map(|s| (s.index, s.total)),
            Some((1, 2))
        );
        tokio::time::sleep(Duration::from_secs(30)).await;
        let second = rx.try_recv().expect("second replay");
        assert_ne!(
            second.snapshot.as_ref().map(|s| s.id.clone()),
            first[0].snapshot.as_ref().map(|s| s.id.clone())
        );
        drop(delta_tx);
        task.await.expect("processor ends when the reflector does");
    }

    #[tokio::test]
    async fn late_subscribers_get_the_cache_replayed_as_added() {
        let (tx, mut rx) = crate::queue::queue(64, crate::queue::Overflow::Block);
        let p = Processor::new(
            "pods".into(),
            pods(),
            ProcessorConfig {
                emit_initial: true,
                resync: None,
                cluster: None,
            },
            vec![tx],
            Metrics::new(),
        );
        let (delta_tx, delta_rx) = mpsc::channel(8);
        let (late_tx, late_rx) = mpsc::channel(1);
        let task = tokio::spawn(p.run(delta_rx, late_rx));
        delta_tx
            .send(Delta::Replace {
                objects: vec![obj("a", "ua", 1)],
                initial: true,
            })
            .await
            .expect("send");
        assert_eq!(rx.recv().await.expect("first").name, "a");
        let (late, mut late_rx) = crate::queue::queue(64, crate::queue::Overflow::Block);
        late_tx.send(late).await.expect("subscribe");
        let replayed = late_rx.recv().await.expect("replayed");
        assert_eq!(
            (replayed.event_type, replayed.origin, replayed.name.as_str()),
            (EventType::Added, Origin::List, "a")
        );
        delta_tx
            .send(Delta::Added(obj("b", "ub", 2)))
            .await
            .expect("send");
        assert_eq!(late_rx.recv().await.expect("live").name, "b");
        assert_eq!(rx.recv().await.expect("live").name, "b");
        drop(delta_tx);
        task.await.expect("join");
    }
}
