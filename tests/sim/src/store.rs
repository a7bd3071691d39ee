//! The etcd-like versioned store: global resourceVersion, version chains, watch history and broadcast.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kubebridge_apimachinery::with_type_meta;
use serde_json::Value;
use tokio::sync::broadcast;

use crate::resources::Registry;

/// (namespace, name); namespace is "" for cluster-scoped objects.
pub(crate) type ObjKey = (String, String);

/// One stored object version, serialized once at write time.
#[derive(Debug)]
pub(crate) struct StoredObject {
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) resource_version: u64,
    pub(crate) labels: BTreeMap<String, String>,
    /// Selectable non-metadata fields (e.g. spec.nodeName), extracted once at write time.
    pub(crate) fields: Vec<(&'static str, String)>,
    /// The JSON object without kind/apiVersion (typed list items omit them; they are added per request).
    pub(crate) body: Bytes,
}

impl StoredObject {
    /// Builds a stored object of `resource` from a value whose kind/apiVersion are already removed.
    pub(crate) fn from_value(resource: &str, value: &Value) -> StoredObject {
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
            fields: crate::resources::field_values(resource, value),
            body: Bytes::from(serde_json::to_vec(value).expect("a JSON value always serializes")),
        }
    }

    /// A selectable field's value: metadata.name/namespace or one extracted at write time.
    pub(crate) fn field(&self, name: &str) -> Option<&str> {
        match name {
            "metadata.name" => Some(&self.name),
            "metadata.namespace" => Some(&self.namespace),
            _ => self
                .fields
                .iter()
                .find(|(f, _)| *f == name)
                .map(|(_, v)| v.as_str()),
        }
    }

    /// The object as a JSON value (without kind/apiVersion).
    pub(crate) fn to_value(&self) -> Value {
        serde_json::from_slice(&self.body)
            .expect("stored bodies are valid JSON written by this store")
    }

    /// The object's JSON with kind/apiVersion spliced in front, without re-serializing the body.
    pub(crate) fn json_with_type(&self, kind: &str, api_version: &str) -> Vec<u8> {
        std::str::from_utf8(&self.body)
            .ok()
            .and_then(|body| with_type_meta(body, kind, api_version))
            .expect("stored bodies are JSON objects written by this store")
            .into_bytes()
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

/// How long superseded versions stay readable for paginated lists (etcd's default compaction interval).
const LIST_RETENTION: Duration = Duration::from_secs(300);

/// Minimum number of recent commits whose superseded versions stay readable, so a busy server does not
/// hold five minutes of churn in memory.
const LIST_RETENTION_MIN_VERSIONS: usize = 50_000;

/// Capacity of the live-event broadcast; a watcher that falls this far behind is disconnected.
const BROADCAST_CAPACITY: usize = 16_384;

/// All state guarded by the one store lock, so writes, history and watch subscription are atomic together.
pub(crate) struct Store {
    rv: u64,
    /// Every event with rv > compacted is in `history` (the watch cache window).
    compacted: u64,
    /// Snapshots at rv >= list_compacted are exact (the etcd compaction point, for continue tokens and
    /// exact-RV lists); it trails writes by [`LIST_RETENTION`] or [`LIST_RETENTION_MIN_VERSIONS`] commits.
    list_compacted: u64,
    /// Commit times, to advance `list_compacted` like etcd's periodic compaction.
    commits: VecDeque<(u64, Instant)>,
    list_retention_versions: usize,
    history: VecDeque<Arc<Event>>,
    history_cap: usize,
    data: HashMap<String, BTreeMap<ObjKey, Vec<Version>>>,
    /// Deleted keys, purged from `data` once compaction passes the deletion.
    tombstones: VecDeque<(u64, String, ObjKey)>,
    pub(crate) registry: Registry,
    events: broadcast::Sender<Arc<Event>>,
    /// The one RNG for uids, generated names and churn, so a seed reproduces a run.
    pub(crate) rng: fastrand::Rng,
    /// Whether generated pods carry `metadata.managedFields` (`SimConfig::managed_fields`).
    pub(crate) managed_fields: bool,
}

impl Store {
    /// An empty store with the given history window.
    pub(crate) fn new(history_cap: usize, seed: u64) -> Store {
        let (events, _) = broadcast::channel(BROADCAST_CAPACITY);
        Store {
            rv: 0,
            compacted: 0,
            list_compacted: 0,
            commits: VecDeque::new(),
            list_retention_versions: history_cap.max(LIST_RETENTION_MIN_VERSIONS),
            history: VecDeque::new(),
            history_cap: history_cap.max(1),
            data: HashMap::new(),
            tombstones: VecDeque::new(),
            registry: Registry::default(),
            events,
            rng: fastrand::Rng::with_seed(seed),
            managed_fields: false,
        }
    }

    /// The current global resourceVersion.
    pub(crate) fn resource_version(&self) -> u64 {
        self.rv
    }

    /// The watch window floor: watches from resourceVersions older than this get 410.
    pub(crate) fn compacted(&self) -> u64 {
        self.compacted
    }

    /// The list snapshot floor: continue tokens and exact lists older than this get 410.
    pub(crate) fn list_compacted(&self) -> u64 {
        self.list_compacted
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
        let object = Arc::new(StoredObject::from_value(resource, &value));
        let key = (object.namespace.clone(), object.name.clone());
        let compacted = self.list_compacted;
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
        while self.history.len() > self.history_cap {
            if let Some(old) = self.history.pop_front() {
                self.compacted = old.resource_version;
            }
        }
        let now = Instant::now();
        self.commits.push_back((rv, now));
        let mut list_floor = self.list_compacted;
        while let Some(&(old_rv, at)) = self.commits.front() {
            if self.commits.len() <= self.list_retention_versions
                && now.duration_since(at) < LIST_RETENTION
            {
                break;
            }
            list_floor = old_rv;
            self.commits.pop_front();
        }
        if list_floor != self.list_compacted {
            self.list_compacted = list_floor;
            self.purge_tombstones();
        }
        object
    }

    /// Compacts everything up to the current resourceVersion, like `etcdctl compact`.
    /// A restart that loses the watch cache: one commit without an event (the restarted
    /// server's own writes), then everything up to it compacted, so every
    /// resourceVersion a client holds is too old to watch from.
    pub(crate) fn restart(&mut self) {
        self.rv += 1;
        self.compact_all();
    }

    pub(crate) fn compact_all(&mut self) {
        self.compacted = self.rv;
        self.list_compacted = self.rv;
        self.history.clear();
        self.commits.clear();
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
            if *rv > self.list_compacted {
                break;
            }
            let Some((_, resource, key)) = self.tombstones.pop_front() else {
                break;
            };
            if let Some(map) = self.data.get_mut(&resource)
                && let Some(chain) = map.get_mut(&key)
            {
                trim_chain(chain, self.list_compacted);
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
