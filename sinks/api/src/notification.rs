//! [`Notification`], the envelope: one per object change, the unit every sink publishes.

use std::sync::Arc;
use std::time::SystemTime;

use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

use crate::{EventType, Origin, ResourceId, Rfc3339Millis, Snapshot};

/// One object change: the envelope published to every sink.
///
/// Serialized as one JSON object (JSON Schema: `sinks/envelope.schema.json`):
/// `type`, `origin`, `time`, `cluster`, `resource`, `namespace`, `name`, `uid`,
/// `resourceVersion`, `object`, `oldObject` (MODIFIED only), `snapshot` (list and
/// resync replays only), `tombstone` and `oldResourceVersion` (on resuming from a
/// checkpoint only) and `patch` (MODIFIED, on routes with diffs).
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
    /// Set on a DELETED that a resumed checkpoint found gone: `object` then holds only
    /// the identity (`kind`, `apiVersion`, and `metadata` `name`, `namespace`, `uid`,
    /// `resourceVersion` as last known), not the object's last state, which kubebridge
    /// never saw.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tombstone: bool,
    /// On a MODIFIED found on resuming from a checkpoint: the resourceVersion the
    /// checkpoint knew (the checkpoint holds no bytes, so there is no `oldObject`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_resource_version: Option<String>,
    /// An RFC 6902 JSON Patch from `old_object` to `object`, on MODIFIED only, for a
    /// route that asks for diffs (`diff: true` / `--diff`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<Arc<RawValue>>,
}

impl Notification {
    /// `uid:resourceVersion:type`: identifies this notification across restarts and
    /// retries, so a consumer can de-duplicate deterministically.
    pub fn id(&self) -> String {
        concat(&[
            &self.uid,
            ":",
            &self.resource_version,
            ":",
            self.event_type.as_str(),
        ])
    }

    /// `namespace/name`, or `name` for cluster-scoped objects: the per-object ordering key.
    pub fn key(&self) -> String {
        match &self.namespace {
            Some(ns) => concat(&[ns, "/", &self.name]),
            None => self.name.clone(),
        }
    }

    /// The bytes of the raw JSON parts (object, old object, patch): nearly all of an
    /// envelope, and what a queued notification pins.
    pub fn raw_json_len(&self) -> usize {
        self.object.get().len()
            + self.old_object.as_ref().map_or(0, |o| o.get().len())
            + self.patch.as_ref().map_or(0, |p| p.get().len())
    }

    /// Enough bytes for the envelope as JSON: its raw JSON parts and room for its fields.
    pub fn json_capacity(&self) -> usize {
        self.raw_json_len() + FIELDS_ROOM
    }

    /// The envelope as one line of JSON, without the trailing newline, in one buffer
    /// sized for it: one grown from serde_json's default 128 bytes would be reallocated
    /// and copied about seven times for a pod, which the broker sinks measured as a
    /// fifth of their CPU per message.
    pub fn to_json(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(self.json_capacity());
        // Serializing plain strings and already-valid raw JSON cannot fail.
        serde_json::to_writer(&mut body, self).expect("a Notification always serializes");
        body
    }
}

/// Room for the envelope's fields around its raw JSON parts.
const FIELDS_ROOM: usize = 1024;

/// `parts` joined, in one allocation of the right size (`format!` costs more than
/// the rest of an id or a key).
fn concat(parts: &[&str]) -> String {
    let mut s = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for part in parts {
        s.push_str(part);
    }
    s
}

fn serialize_time<S: Serializer>(time: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    let time = Rfc3339Millis(*time);
    // The bytes are ASCII digits and separators: they are always a str.
    match time.to_bytes().as_ref().map(|b| std::str::from_utf8(b)) {
        Some(Ok(text)) => s.serialize_str(text),
        _ => s.collect_str(&time),
    }
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
            tombstone: false,
            old_resource_version: None,
            patch: None,
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
        let cluster_scoped = Notification {
            namespace: None,
            ..n
        };
        assert_eq!(cluster_scoped.key(), "cart");
    }

    #[test]
    fn the_json_buffer_is_sized_for_the_whole_envelope() {
        let n = sample();
        let json = n.to_json();
        assert!(
            json.len() <= n.json_capacity(),
            "{} > {}",
            json.len(),
            n.json_capacity()
        );
        assert_eq!(n.raw_json_len(), r#"{"a":2}"#.len() + r#"{"a":1}"#.len());
    }
}
