//! The envelope: one notification per object change, the unit every sink publishes.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

/// What happened to the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventType {
    /// The object appeared (created, or first seen by this informer).
    Added,
    /// The object changed; the notification carries the previous state as `oldObject`.
    Modified,
    /// The object is gone; the notification carries its last known state.
    Deleted,
    /// A periodic replay of an unchanged cached object (resync).
    Sync,
}

impl EventType {
    /// The upper-case name used in the envelope and in message ids.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
            EventType::Sync => "SYNC",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How kubebridge learned of the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// The initial LIST (or the initial events of a watch-list): the state at start-up.
    List,
    /// A WATCH event: a change as it happened.
    Watch,
    /// Reconciliation after a gap (410 Gone, relist): the difference between the cache
    /// and the fresh list, so no change is lost while the watch was down.
    Relist,
    /// A periodic replay of the cache, with no request to the API server.
    Resync,
}

impl Origin {
    /// The lower-case name used in the envelope.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::List => "list",
            Origin::Watch => "watch",
            Origin::Relist => "relist",
            Origin::Resync => "resync",
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The resource an object belongs to: its group, version, plural resource name and kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct ResourceId {
    /// API group; empty for the core group (pods, configmaps, ...).
    pub group: String,
    /// API version within the group, e.g. `v1`.
    pub version: String,
    /// Plural resource name, e.g. `deployments`.
    pub resource: String,
    /// Kind, e.g. `Deployment`.
    pub kind: String,
}

impl ResourceId {
    /// `apiVersion` as written in objects: `v1` for the core group, `group/version` otherwise.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

impl fmt::Display for ResourceId {
    /// kubectl's fully qualified form: `pods` for the core group, `deployments.apps` otherwise.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            f.write_str(&self.resource)
        } else {
            write!(f, "{}.{}", self.resource, self.group)
        }
    }
}

/// Frames a complete picture of the cache (the initial list or a resync replay), so that
/// a consumer that lost its own state can mark and sweep.
///
/// Every notification of one snapshot carries the same `id` and the snapshot's `total`;
/// `index` runs from 0 to `total - 1`. A consumer marks every object it sees with the
/// snapshot id and, once it has counted `total` notifications of that id (they may arrive
/// on different partitions, so count rather than wait for the last index), deletes what
/// it holds for that resource that was not marked. An empty cache produces no snapshot
/// notifications, so there is nothing to sweep against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    /// Unique per informer and replay, e.g. `pods@1732350000123-3`.
    pub id: Arc<str>,
    /// Position of this notification within the snapshot, from 0.
    pub index: u64,
    /// Number of notifications in the snapshot.
    pub total: u64,
}

/// One object change: the envelope published to every sink.
///
/// Serialized as one JSON object (see the README and `tests/envelope.schema.json`):
/// `type`, `origin`, `time`, `cluster`, `resource`, `namespace`, `name`, `uid`,
/// `resourceVersion`, `object`, `oldObject` (MODIFIED only) and `snapshot` (list and
/// resync replays only).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// What happened.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// How it was learned.
    pub origin: Origin,
    /// When kubebridge observed the change (UTC, RFC 3339 with milliseconds).
    #[serde(serialize_with = "serialize_time")]
    pub time: SystemTime,
    /// Name of the cluster, from `--cluster-name` or the kubeconfig's cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<Arc<str>>,
    /// The object's resource.
    pub resource: Arc<ResourceId>,
    /// The object's namespace; absent for cluster-scoped objects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The object's name.
    pub name: String,
    /// The object's uid: a new uid under the same name is a different object.
    pub uid: String,
    /// The object's resourceVersion in this notification.
    pub resource_version: String,
    /// The object as the API server sent it (for DELETED, its last known state).
    pub object: Arc<RawValue>,
    /// The previous state, on MODIFIED only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_object: Option<Arc<RawValue>>,
    /// The frame of a full replay, on list and resync notifications only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Snapshot>,
}

impl Notification {
    /// `uid:resourceVersion:type`: identifies this notification across restarts and
    /// retries, so a consumer can de-duplicate deterministically.
    pub fn id(&self) -> String {
        format!("{}:{}:{}", self.uid, self.resource_version, self.event_type)
    }

    /// `namespace/name`, or `name` for cluster-scoped objects: the per-object ordering key.
    pub fn key(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }

    /// The envelope as one line of JSON, without the trailing newline.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing plain strings and already-valid raw JSON cannot fail.
        serde_json::to_vec(self).expect("a Notification always serializes")
    }
}

fn serialize_time<S: Serializer>(time: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_millis(*time))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Notification {
        Notification {
            event_type: EventType::Modified,
            origin: Origin::Watch,
            time: SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123),
            cluster: Some("prod".into()),
            resource: Arc::new(ResourceId {
                group: "apps".into(),
                version: "v1".into(),
                resource: "deployments".into(),
                kind: "Deployment".into(),
            }),
            namespace: Some("shop".into()),
            name: "cart".into(),
            uid: "u1".into(),
            resource_version: "42".into(),
            object: Arc::from(RawValue::from_string(r#"{"a":2}"#.into()).expect("valid")),
            old_object: Some(Arc::from(
                RawValue::from_string(r#"{"a":1}"#.into()).expect("valid"),
            )),
            snapshot: None,
        }
    }

    #[test]
    fn envelope_has_the_documented_shape() {
        let json: serde_json::Value = serde_json::from_slice(&sample().to_json()).expect("json");
        assert_eq!(
            json,
            serde_json::json!({
                "type": "MODIFIED", "origin": "watch", "time": "2023-11-14T22:13:20.123Z",
                "cluster": "prod",
                "resource": {"group": "apps", "version": "v1", "resource": "deployments", "kind": "Deployment"},
                "namespace": "shop", "name": "cart", "uid": "u1", "resourceVersion": "42",
                "object": {"a": 2}, "oldObject": {"a": 1}
            })
        );
    }

    #[test]
    fn id_and_key() {
        let n = sample();
        assert_eq!(n.id(), "u1:42:MODIFIED");
        assert_eq!(n.key(), "shop/cart");
        assert_eq!(n.resource.to_string(), "deployments.apps");
        assert_eq!(n.resource.api_version(), "apps/v1");
    }
}
