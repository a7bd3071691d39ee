//! The etcd-like versioned object store: one global resourceVersion, per-object version chains for exact
//! snapshots, a bounded event history for watch resumption, and the broadcast that feeds live watches.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::broadcast;

use crate::sim::resources::Registry;

/// (namespace, name); namespace is "" for cluster-scoped objects.
pub(crate) type ObjKey = (String, String);

/// One stored object version, serialized once at write time.
#[derive(Debug)]
pub(crate) struct StoredObject {
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) resource_version: u64,
    pub(crate) labels: BTreeMap<String, String>,
    /// The JSON object without kind/apiVersion (typed list items omit them; they are added per request).
    pub(crate) body: Bytes,
}

impl StoredObject {
    /// Builds a stored object from a value whose kind/apiVersion are already removed.
    pub(crate) fn from_value(value: &Value) -> StoredObject {
        let meta = &value["metadata"];
        let labels = meta["labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        StoredObject {
            namespace: meta["namespace"].as_str().unwrap_or_default().to_string(),
            name: meta["name"].as_str().unwrap_or_default().to_string(),
            resource_version: meta["resourceVersion"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
            labels,
            body: Bytes::from(serde_json::to_vec(value).expect("a JSON value always serializes")),
        }
    }

    /// The object as a JSON value (without kind/apiVersion).
    pub(crate) fn to_value(&self) -> Value {
        serde_json::from_slice(&self.body)
            .expect("stored bodies are valid JSON written by this store")
    }

    /// The object's JSON with kind/apiVersion spliced in front, without re-serializing the body.
    pub(crate) fn json_with_type(&self, kind: &str, api_version: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 64);
        out.extend_from_slice(b"{\"apiVersion\":");
        out.extend_from_slice(&serde_json::to_vec(api_version).expect("strings serialize"));
        out.extend_from_slice(b",\"kind\":");
        out.extend_from_slice(&serde_json::to_vec(kind).expect("strings serialize"));
        let rest = &self.body[1..];
        if rest.first() != Some(&b'}') {
            out.push(b',');
        }
        out.extend_from_slice(rest);
        out
    }
}

/// The three kinds of stored change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One committed change, as kept in history and broadcast to watchers.
#[derive(Debug)]
pub(crate) struct Event {
    pub(crate) resource_version: u64,
    pub(crate) resource: Arc<str>,
    pub(crate) event_type: EventType,
    /// The new state (for DELETED: the final state, stamped with the deletion's resourceVersion).
    pub(crate) object: Arc<StoredObject>,
    /// The state before a modification, so selector watches can see objects start or stop matching.
    pub(crate) previous: Option<Arc<StoredObject>>,
}

/// One entry of an object's version chain; None marks a deletion.
#[derive(Debug, Clone)]
struct Version {
    rv: u64,
    object: Option<Arc<StoredObject>>,
}

/// Capacity of the live-event broadcast; a watcher that falls this far behind is disconnected.
const BROADCAST_CAPACITY: usize = 16_384;

/// All state guarded by the one store lock, so writes, history and watch subscription are atomic together.
pub(crate) struct Store {
    rv: u64,
    /// Every event with rv > compacted is in `history`; snapshots at rv >= compacted are exact.
    compacted: u64,
    history: VecDeque<Arc<Event>>,
    history_cap: usize,
    data: HashMap<String, BTreeMap<ObjKey, Vec<Version>>>,
    /// Deleted keys, purged from `data` once compaction passes the deletion.
    tombstones: VecDeque<(u64, String, ObjKey)>,
    pub(crate) registry: Registry,
    events: broadcast::Sender<Arc<Event>>,
    /// The one RNG for uids, generated names and churn, so a seed reproduces a run.
    pub(crate) rng: fastrand::Rng,
}

impl Store {
    /// An empty store with the given history window.
    pub(crate) fn new(history_cap: usize, seed: u64) -> Store {
        let (events, _) = broadcast::channel(BROADCAST_CAPACITY);
        Store {
            rv: 0,
            compacted: 0,
            history: VecDeque::new(),
            history_cap: history_cap.max(1),
            data: HashMap::new(),
            tombstones: VecDeque::new(),
            registry: Registry::default(),
            events,
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// The current global resourceVersion.
    pub(crate) fn resource_version(&self) -> u64 {
        self.rv
    }

    /// The compaction point: resourceVersions older than this are gone.
    pub(crate) fn compacted(&self) -> u64 {
        self.compacted
    }

    /// Subscribes to live events; call under the same lock as reading history so nothing is missed or doubled.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.events.subscribe()
    }

    /// History events after `rv` (caller checked `rv >= compacted`).
    pub(crate) fn history_after(&self, rv: u64) -> Vec<Arc<Event>> {
        let start = self.history.partition_point(|e| e.resource_version <= rv);
        self.history.range(start..).cloned().collect()
    }

    /// The current version of an object.
    pub(crate) fn get(&self, resource: &str, key: &ObjKey) -> Option<Arc<StoredObject>> {
        self.data.get(resource)?.get(key)?.last()?.object.clone()
    }

    /// Visits objects of a resource as of `at`, in (namespace, name) order, starting strictly after `after`,
    /// limited to one namespace when given; the visitor returns false to stop.
    pub(crate) fn scan(
        &self,
        resource: &str,
        namespace: Option<&str>,
        after: Option<&ObjKey>,
        at: u64,
        mut visit: impl FnMut(&ObjKey, &Arc<StoredObject>) -> bool,
    ) {
        use std::ops::Bound;
        let Some(map) = self.data.get(resource) else {
            return;
        };
        let lower = match (after, namespace) {
            (Some(k), _) => Bound::Excluded(k.clone()),
            (None, Some(ns)) => Bound::Included((ns.to_string(), String::new())),
            (None, None) => Bound::Unbounded,
        };
        for (key, chain) in map.range((lower, Bound::Unbounded)) {
            if let Some(ns) = namespace
                && key.0 != ns
            {
                break;
            }
            let version = chain.iter().rev().find(|v| v.rv <= at);
            if let Some(Version {
                object: Some(obj), ..
            }) = version
                && !visit(key, obj)
            {
                break;
            }
        }
    }

    /// Commits a change: stamps the next resourceVersion into `value`, stores it, records and broadcasts the
    /// event. `value` must already lack kind/apiVersion. For deletions `value` is the final state.
    pub(crate) fn commit(
        &mut self,
        resource: &str,
        event_type: EventType,
        mut value: Value,
    ) -> Arc<StoredObject> {
        self.rv += 1;
        let rv = self.rv;
        value["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        let object = Arc::new(StoredObject::from_value(&value));
        let key = (object.namespace.clone(), object.name.clone());
        let compacted = self.compacted;
        let chain = self
            .data
            .entry(resource.to_string())
            .or_default()
            .entry(key.clone())
            .or_default();
        let previous = chain.last().and_then(|v| v.object.clone());
        chain.push(Version {
            rv,
            object: (event_type != EventType::Deleted).then(|| object.clone()),
        });
        trim_chain(chain, compacted);
        if event_type == EventType::Deleted {
            self.tombstones.push_back((rv, resource.to_string(), key));
        }
        let event = Arc::new(Event {
            resource_version: rv,
            resource: Arc::from(resource),
            event_type,
            object: object.clone(),
            previous: if event_type == EventType::Modified {
                previous
            } else {
                None
            },
        });
        self.history.push_back(event.clone());
        // No receivers is fine: nobody is watching.
        let _ = self.events.send(event);
        let mut new_floor = self.compacted;
        while self.history.len() > self.history_cap {
            if let Some(old) = self.history.pop_front() {
                new_floor = old.resource_version;
            }
        }
        if new_floor != self.compacted {
            self.compacted = new_floor;
            self.purge_tombstones();
        }
        object
    }

    /// Compacts everything up to the current resourceVersion, like `etcdctl compact`.
    pub(crate) fn compact_all(&mut self) {
        self.compacted = self.rv;
        self.history.clear();
        let compacted = self.compacted;
        for map in self.data.values_mut() {
            map.retain(|_, chain| {
                trim_chain(chain, compacted);
                chain.iter().any(|v| v.object.is_some())
            });
        }
        self.tombstones.clear();
    }

    /// Drops deleted keys whose deletion is older than the compaction point and that were not recreated.
    fn purge_tombstones(&mut self) {
        while let Some((rv, _, _)) = self.tombstones.front() {
            if *rv > self.compacted {
                break;
            }
            let Some((_, resource, key)) = self.tombstones.pop_front() else {
                break;
            };
            if let Some(map) = self.data.get_mut(&resource)
                && let Some(chain) = map.get_mut(&key)
            {
                trim_chain(chain, self.compacted);
                if chain.iter().all(|v| v.object.is_none()) {
                    map.remove(&key);
                }
            }
        }
    }
}

/// Keeps only the newest version at or below the compaction point plus everything newer.
fn trim_chain(chain: &mut Vec<Version>, compacted: u64) {
    let newer = chain.partition_point(|v| v.rv <= compacted);
    if newer > 1 {
        chain.drain(..newer - 1);
    }
    if chain.len() > 1 && chain[0].rv <= compacted && chain[0].object.is_none() {
        chain.remove(0);
    }
}
