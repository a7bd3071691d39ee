//! The diff: compares each delta with the cache, updates it, and says which notifications
//! the change causes.

use std::sync::Arc;
use std::time::SystemTime;

use kubebridge_sinks::{EventType, Notification, Origin, ResourceId, Snapshot};

use serde_json::value::RawValue;

use super::store::Entry;
use super::{Delta, RawObject, Store};
use crate::checkpoint::tracker::{Index, Known};

/// Turns deltas into notifications against a [`Store`], and stamps every notification
/// of one informer (its resource, its cluster, its snapshot ids).
pub(crate) struct Differ {
    name: String,
    resource: Arc<ResourceId>,
    emit_initial: bool,
    cluster: Option<Arc<str>>,
    snapshots: u64,
    /// A checkpoint's index to diff the initial list against, instead of notifying it
    /// all (taken by that list).
    resume: Option<Index>,
}

impl Differ {
    /// A differ for the informer called `name` (used in snapshot ids and logs); with
    /// `emit_initial`, the initial list is notified as ADDED.
    pub(super) fn new(
        name: String,
        resource: Arc<ResourceId>,
        emit_initial: bool,
        cluster: Option<Arc<str>>,
    ) -> Self {
        Differ {
            name,
            resource,
            emit_initial,
            cluster,
            snapshots: 0,
            resume: None,
        }
    }

    /// Diffs the initial list against `index` (a checkpoint's) instead of notifying it.
    pub(crate) fn resume_from(&mut self, index: Index) {
        self.resume = Some(index);
    }

    /// Applies one delta to `store` and returns the notifications it causes.
    pub(super) fn apply(&mut self, store: &mut Store, delta: Delta) -> Vec<Notification> {
        match delta {
            Delta::Replace {
                objects,
                initial: true,
            } if store.is_empty() && self.resume.is_some() => {
                let known = self.resume.take().unwrap_or_default();
                let notes = self.resumed(store, objects, known);
                store.listed();
                notes
            }
            Delta::Replace {
                objects,
                initial: true,
            } if store.is_empty() => {
                let notes = if self.emit_initial {
                    let objects = objects.iter().map(|o| (o, o.raw.clone()));
                    self.snapshot(objects, EventType::Added, Origin::List)
                } else {
                    Vec::new()
                };
                for object in objects {
                    store.insert(object);
                }
                store.listed();
                notes
            }
            Delta::Replace { objects, .. } => self.relist(store, objects),
            Delta::Added(object) | Delta::Modified(object) => {
                self.upsert(store, object, Origin::Watch)
            }
            Delta::Deleted(object) => match store.remove(&object.key()) {
                Some(_) => vec![self.fresh(EventType::Deleted, Origin::Watch, &object)],
                None => {
                    // Never seen (it left and re-entered a selector while we were away, or
                    // a replayed event): no consumer knows it, so there is nothing to delete.
                    tracing::debug!(informer = %self.name, key = %object.key(), "delete of an object not in the cache");
                    Vec::new()
                }
            },
        }
    }

    /// `objects` as the notifications of one snapshot: each carries the snapshot's id,
    /// its index and the total.
    fn snapshot<'a, O: Identity + 'a>(
        &mut self,
        objects: impl ExactSizeIterator<Item = (&'a O, Arc<RawValue>)>,
        event_type: EventType,
        origin: Origin,
    ) -> Vec<Notification> {
        let id = self.next_snapshot_id();
        let total = objects.len() as u64;
        objects
            .enumerate()
            .map(|(index, (o, raw))| {
                let mut n = self.note(event_type, origin, o, raw, None);
                n.snapshot = Some(Snapshot {
                    id: id.clone(),
                    index: index as u64,
                    total,
                });
                n
            })
            .collect()
    }

    /// The cache as one snapshot of SYNC notifications, ordered by key. An object whose
    /// compressed state cannot be read is left out of the replay (counted and logged by
    /// the store); it is back in the next one once a change or a relist replaces it.
    pub(super) fn replay(&mut self, store: &Store) -> Vec<Notification> {
        let readable: Vec<(&Entry, Arc<RawValue>)> = store
            .sorted()
            .into_iter()
            .filter_map(|e| store.raw(e).ok().map(|raw| (e, raw)))
            .collect();
        self.snapshot(readable.into_iter(), EventType::Sync, Origin::Resync)
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
                let n = self.fresh(EventType::Added, origin, &object);
                store.insert(object);
                vec![n]
            }
            Some(old) if old.uid != object.uid => {
                // A new object under a known name is a delete and an add, never an update.
                let deleted = self.last_state(store, old, origin);
                let added = self.fresh(EventType::Added, origin, &object);
                store.insert(object);
                vec![deleted, added]
            }
            Some(old) if old.resource_version == object.resource_version => Vec::new(),
            Some(old) => {
                // An old state that cannot be read is unknown, as after a resume: the
                // MODIFIED carries `oldResourceVersion` instead of `oldObject`.
                let (old_object, old_rv) = match store.raw(old) {
                    Ok(raw) => (Some(raw), None),
                    Err(_) => (None, Some(old.resource_version.clone())),
                };
                let raw = object.raw.clone();
                let mut n = self.note(EventType::Modified, origin, &object, raw, old_object);
                n.old_resource_version = old_rv;
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
            let key = object.key();
            match old.remove(&key) {
                Some(prev) => {
                    store.restore(key, prev);
                    notes.extend(self.upsert(store, object, Origin::Relist));
                }
                None => fresh.push(object),
            }
        }
        let mut gone: Vec<Entry> = old.into_values().collect();
        gone.sort_unstable_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        // Deletes first: a consumer keyed by name sees the old object go before a new one
        // of the same name could arrive.
        let mut out: Vec<Notification> = gone
            .iter()
            .map(|o| self.last_state(store, o, Origin::Relist))
            .collect();
        out.append(&mut notes);
        for object in fresh {
            out.extend(self.upsert(store, object, Origin::Relist));
        }
        out
    }

    /// The initial list against a checkpoint's index: ADDED for what is new, MODIFIED
    /// (with `oldResourceVersion`, no `oldObject`) for what changed, a DELETED tombstone
    /// for what went away, DELETED + ADDED for a new uid, nothing for what did not
    /// change; all with origin `relist`, the deletes of vanished objects first.
    fn resumed(
        &mut self,
        store: &mut Store,
        objects: Vec<RawObject>,
        mut known: Index,
    ) -> Vec<Notification> {
        let mut changed = Vec::new();
        for object in objects {
            let key = object.key();
            match known.remove(&key) {
                None => changed.push(self.fresh(EventType::Added, Origin::Relist, &object)),
                Some(k) if k.uid != object.uid => {
                    changed.push(self.tombstone(&key, &k, Origin::Relist));
                    changed.push(self.fresh(EventType::Added, Origin::Relist, &object));
                }
                Some(k) if k.resource_version == object.resource_version => {}
                Some(k) => {
                    let mut n = self.fresh(EventType::Modified, Origin::Relist, &object);
                    n.old_resource_version = Some(k.resource_version);
                    changed.push(n);
                }
            }
            store.insert(object);
        }
        let mut gone: Vec<(String, Known)> = known.into_iter().collect();
        gone.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut out: Vec<Notification> = gone
            .iter()
            .map(|(key, k)| self.tombstone(key, k, Origin::Relist))
            .collect();
        out.append(&mut changed);
        out
    }

    /// A DELETED carrying the last cached state of `entry`; a tombstone if that state
    /// cannot be read (counted and logged by the store).
    fn last_state(&self, store: &Store, entry: &Entry, origin: Origin) -> Notification {
        match store.raw(entry) {
            Ok(raw) => self.note(EventType::Deleted, origin, entry, raw, None),
            Err(unreadable) => {
                let known = Known {
                    uid: entry.uid.clone(),
                    resource_version: entry.resource_version.clone(),
                };
                self.tombstone(&unreadable.key, &known, origin)
            }
        }
    }

    /// A DELETED for an object known only by its identity (from a checkpoint, or whose
    /// cached state could not be read), marked as a tombstone so a consumer does not take
    /// it for the object's last state.
    fn tombstone(&self, key: &str, known: &Known, origin: Origin) -> Notification {
        let (namespace, name) = match key.split_once('/') {
            Some((ns, name)) => (Some(ns.to_owned()), name.to_owned()),
            None => (None, key.to_owned()),
        };
        let mut metadata = serde_json::Map::new();
        metadata.insert("name".into(), name.clone().into());
        if let Some(ns) = &namespace {
            metadata.insert("namespace".into(), ns.clone().into());
        }
        metadata.insert("uid".into(), known.uid.clone().into());
        metadata.insert(
            "resourceVersion".into(),
            known.resource_version.clone().into(),
        );
        let identity = serde_json::json!({
            "apiVersion": self.resource.api_version(),
            "kind": self.resource.kind,
            "metadata": metadata,
        });
        // A JSON value always serializes, and its text is valid raw JSON.
        let raw = serde_json::value::to_raw_value(&identity).expect("a JSON value serializes");
        Notification {
            event_type: EventType::Deleted,
            origin,
            time: SystemTime::now(),
            cluster: self.cluster.clone(),
            resource: self.resource.clone(),
            namespace,
            name,
            uid: known.uid.clone(),
            resource_version: known.resource_version.clone(),
            object: Arc::from(raw),
            old_object: None,
            snapshot: None,
            tombstone: true,
            old_resource_version: None,
            patch: None,
        }
    }

    fn next_snapshot_id(&mut self) -> Arc<str> {
        self.snapshots += 1;
        let millis = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        format!("{}@{millis}-{}", self.name, self.snapshots).into()
    }

    /// A notification carrying `object` as decoded (its own `Arc`, never re-read).
    fn fresh(&self, event_type: EventType, origin: Origin, object: &RawObject) -> Notification {
        self.note(event_type, origin, object, object.raw.clone(), None)
    }

    fn note(
        &self,
        event_type: EventType,
        origin: Origin,
        object: &impl Identity,
        raw: Arc<RawValue>,
        old: Option<Arc<RawValue>>,
    ) -> Notification {
        let (namespace, name, uid, resource_version) = object.identity();
        Notification {
            event_type,
            origin,
            time: SystemTime::now(),
            cluster: self.cluster.clone(),
            resource: self.resource.clone(),
            namespace: namespace.clone(),
            name: name.to_owned(),
            uid: uid.to_owned(),
            resource_version: resource_version.to_owned(),
            object: raw,
            old_object: old,
            snapshot: None,
            tombstone: false,
            old_resource_version: None,
            patch: None,
        }
    }
}

/// What a notification copies from an object, fresh from the API server or cached:
/// namespace, name, uid, resourceVersion.
trait Identity {
    fn identity(&self) -> (&Option<String>, &str, &str, &str);
}

impl Identity for RawObject {
    fn identity(&self) -> (&Option<String>, &str, &str, &str) {
        (
            &self.namespace,
            &self.name,
            &self.uid,
            &self.resource_version,
        )
    }
}

impl Identity for Entry {
    fn identity(&self) -> (&Option<String>, &str, &str, &str) {
        (
            &self.namespace,
            &self.name,
            &self.uid,
            &self.resource_version,
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::informer::Delta;
    use crate::informer::testing::{obj, processor, rv_of, summary};

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
    fn a_resumed_list_notifies_only_the_difference_from_the_checkpoint() {
        use crate::checkpoint::tracker::{Index, Known};
        let known = |uid: &str, rv: u64| Known {
            uid: uid.into(),
            resource_version: rv.to_string(),
        };
        let index: Index = [
            ("ns/gone", known("u1", 1)),
            ("ns/same", known("u2", 2)),
            ("ns/changed", known("u3", 3)),
            ("ns/reborn", known("u4", 4)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let mut p = processor(true);
        p.differ_for_tests().resume_from(index);
        let notes = p.apply(Delta::Replace {
            objects: vec![
                obj("changed", "u3", 9),
                obj("new", "u5", 10),
                obj("reborn", "u6", 11),
                obj("same", "u2", 2),
            ],
            initial: true,
        });
        assert_eq!(
            summary(&notes),
            [
                "DELETED relist gone 1",
                "MODIFIED relist changed 9",
                "ADDED relist new 10",
                "DELETED relist reborn 4",
                "ADDED relist reborn 11",
            ]
        );
        let gone = &notes[0];
        assert!(gone.tombstone && gone.snapshot.is_none());
        assert_eq!(gone.uid, "u1");
        let object: serde_json::Value = serde_json::from_str(gone.object.get()).expect("json");
        assert_eq!(
            object,
            serde_json::json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "gone", "namespace": "ns", "uid": "u1", "resourceVersion": "1"}})
        );
        assert_eq!(notes[1].old_resource_version.as_deref(), Some("3"));
        assert!(notes[1].old_object.is_none());
        assert!(
            notes[3].tombstone,
            "the replaced object is known only by its identity"
        );
        assert!(!notes[4].tombstone);
        assert_eq!(p.store().len(), 4);
        // From then on, the watch as usual.
        let more = p.apply(Delta::Modified(obj("same", "u2", 12)));
        assert_eq!(summary(&more), ["MODIFIED watch same 12 old=2"]);
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

    mod compressed {
        use serde_json::value::RawValue;

        use crate::informer::testing::{pod, pod_text, processor_with};
        use crate::informer::{CacheCompression, Delta, Processor, RawObject};

        fn with_uid(i: usize, rv: u32, uid: &str) -> RawObject {
            let text = pod_text(i, rv).replacen("\"uid\":\"3f0c", &format!("\"uid\":\"{uid}"), 1);
            let raw = RawValue::from_string(text).expect("json");
            RawObject::decode(
                raw,
                &crate::informer::testing::pods(),
                &crate::informer::transform::ObjectTransform::none(),
            )
            .expect("decode")
        }

        /// type, origin, name, rv, object, oldObject, oldResourceVersion, tombstone.
        fn run(p: &mut Processor, delta: Delta) -> Vec<String> {
            p.apply(delta)
                .iter()
                .map(|n| {
                    format!(
                        "{} {} {} {} {} {:?} {:?} {}",
                        n.event_type,
                        n.origin,
                        n.name,
                        n.resource_version,
                        n.object.get(),
                        n.old_object.as_ref().map(|o| o.get()),
                        n.old_resource_version,
                        n.tombstone
                    )
                })
                .collect()
        }

        fn scenario(compression: CacheCompression) -> Vec<String> {
            let mut p = processor_with(true, compression);
            let mut out = run(
                &mut p,
                Delta::Replace {
                    objects: (0..40).map(|i| pod(i, 1)).collect(),
                    initial: true,
                },
            );
            out.extend(run(&mut p, Delta::Modified(pod(3, 2))));
            out.extend(run(&mut p, Delta::Modified(with_uid(6, 3, "ffff"))));
            out.extend(run(
                &mut p,
                Delta::Replace {
                    objects: (0..40).filter(|i| *i != 5).map(|i| pod(i, 1)).collect(),
                    initial: false,
                },
            ));
            let cache = p.cache();
            let store = cache.read().expect("lock");
            let replay = p.differ_for_tests().replay(&store);
            out.extend(
                replay
                    .iter()
                    .map(|n| format!("{} {}", n.name, n.object.get())),
            );
            out
        }

        #[test]
        fn notifications_are_the_same_with_and_without_compression() {
            let plain = scenario(CacheCompression::None);
            assert!(plain.len() > 80, "{}", plain.len());
            assert_eq!(scenario(CacheCompression::Zstd), plain);
        }

        #[test]
        fn an_unreadable_old_state_is_treated_as_unknown() {
            let mut p = processor_with(false, CacheCompression::Zstd);
            p.apply(Delta::Replace {
                objects: (0..40).map(|i| pod(i, 1)).collect(),
                initial: true,
            });
            {
                let cache = p.cache();
                let mut store = cache.write().expect("lock");
                for i in [3, 5, 6, 7] {
                    store.damage(&pod(i, 1).key());
                }
            }
            // MODIFIED: no oldObject, but the old resourceVersion.
            let notes = p.apply(Delta::Modified(pod(3, 2)));
            assert_eq!(notes.len(), 1);
            assert!(notes[0].old_object.is_none());
            assert_eq!(notes[0].old_resource_version.as_deref(), Some("1"));
            // A new uid under a damaged name: a tombstone, then the ADDED.
            let notes = p.apply(Delta::Modified(with_uid(6, 3, "ffff")));
            assert_eq!(
                notes
                    .iter()
                    .map(|n| (n.event_type.to_string(), n.tombstone))
                    .collect::<Vec<_>>(),
                [("DELETED".to_owned(), true), ("ADDED".to_owned(), false)]
            );
            // Gone at a relist: a tombstone.
            let notes = p.apply(Delta::Replace {
                objects: (0..40).filter(|i| *i != 5).map(|i| pod(i, 1)).collect(),
                initial: false,
            });
            let gone: Vec<_> = notes.iter().filter(|n| n.name == "web-5").collect();
            assert_eq!(gone.len(), 1);
            assert!(gone[0].tombstone);
            // A resync leaves out what it cannot read (web-7), and frames the rest.
            let store = p.cache();
            let store = store.read().expect("lock");
            let replay = p.differ_for_tests().replay(&store);
            assert_eq!(replay.len(), 38);
            assert!(replay.iter().all(|n| n.name != "web-7"));
            assert_eq!(replay[0].snapshot.as_ref().map(|s| s.total), Some(38));
            let unreadable = p.metrics_for_tests().render();
            assert!(
                unreadable.contains("kubebridge_cache_unreadable_total{resource=\"pods\"} 4"),
                "{unreadable}"
            );
        }
    }
}
