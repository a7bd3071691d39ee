//! What a message body looks like: the plain envelope, or a CloudEvents 1.0 event.
//!
//! CloudEvents attributes: `specversion` 1.0, `type`
//! `io.kubebridge.<resource>.<group or core>.<added|modified|deleted|sync>`, `source`
//! the cluster identity, `id` [`Notification::id`], `subject` `namespace/name`, `time`
//! the event time and `datacontenttype` `application/json`; the data is always the
//! envelope, so a consumer finds the same fields in every format.

// Only the broker sinks parse URIs and encode bodies; stdout writes plain envelopes.
#![cfg_attr(not(any(feature = "kafka", feature = "nats")), allow(dead_code))]

use serde::Serialize;

use crate::{Notification, Rfc3339Millis};

/// How a notification is laid out in a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// The envelope as JSON, with kubebridge's own headers.
    #[default]
    Envelope,
    /// A structured-mode CloudEvent: one JSON object holding the attributes and, as
    /// `data`, the envelope (content type `application/cloudevents+json`).
    CloudEvents,
    /// A binary-mode CloudEvent: the attributes as headers (`ce_` on Kafka, `ce-` on
    /// NATS, as the protocol bindings spell them) and the envelope as the body.
    CloudEventsBinary,
}

/// The CloudEvents spec version written in every event.
pub const SPEC_VERSION: &str = "1.0";

/// The content type of the envelope, the `data` of every event.
pub const DATA_CONTENT_TYPE: &str = "application/json";

/// The content type of a structured-mode event.
pub const STRUCTURED_CONTENT_TYPE: &str = "application/cloudevents+json";

/// The default `source` when none is configured and the notification names no cluster.
pub const DEFAULT_SOURCE: &str = "kubebridge";

/// `io.kubebridge.<resource>.<group or core>.<added|modified|deleted|sync>`.
pub fn event_type(n: &Notification) -> String {
    let group = if n.resource.group.is_empty() {
        "core"
    } else {
        &n.resource.group
    };
    format!(
        "io.kubebridge.{}.{}.{}",
        n.resource.resource,
        group,
        n.event_type.as_str().to_ascii_lowercase()
    )
}

/// The event's `source`: the configured one, else the notification's cluster, else
/// [`DEFAULT_SOURCE`].
pub(crate) fn source<'a>(configured: Option<&'a str>, n: &'a Notification) -> &'a str {
    configured
        .or(n.cluster.as_deref())
        .unwrap_or(DEFAULT_SOURCE)
}

/// The context attributes other than `datacontenttype` (which each binding maps to its
/// own content-type header), as (name, value) pairs.
pub(crate) fn attributes(n: &Notification, source: &str) -> [(&'static str, String); 6] {
    [
        ("specversion", SPEC_VERSION.to_string()),
        ("id", n.id()),
        ("source", source.to_string()),
        ("type", event_type(n)),
        ("subject", n.key()),
        ("time", Rfc3339Millis(n.time).to_string()),
    ]
}

#[derive(Serialize)]
struct Structured<'a> {
    specversion: &'static str,
    id: String,
    source: &'a str,
    #[serde(rename = "type")]
    event_type: String,
    subject: String,
    time: String,
    datacontenttype: &'static str,
    /// Serialized in place: the same bytes as the envelope on its own, without first
    /// writing it out and scanning it back in as a `RawValue`.
    data: &'a Notification,
}

/// A notification laid out for one message: the body, and the CloudEvents attributes
/// a binary-mode event carries as headers.
pub(crate) struct Encoded {
    /// The message body.
    pub body: Vec<u8>,
    /// Set in binary mode only.
    pub binary_attributes: Option<[(&'static str, String); 6]>,
    /// The content type of the body.
    pub content_type: &'static str,
}

/// Room for a structured CloudEvent's attributes around its `data`.
const ATTRIBUTES_ROOM: usize = 512;

/// `value` as compact JSON into a buffer of `capacity`: the body's one allocation. A
/// body the size of a pod grown from serde_json's default 128 bytes would be
/// reallocated and copied about seven times, which the broker sinks measured as a
/// fifth of their CPU per message.
fn to_vec_sized(value: &impl Serialize, capacity: usize) -> Vec<u8> {
    let mut body = Vec::with_capacity(capacity);
    // Plain strings and already-valid raw JSON into a Vec cannot fail; an empty body
    // would at least be visible rather than a panic in the publishing task.
    if serde_json::to_writer(&mut body, value).is_err() {
        body.clear();
    }
    body
}

/// Lays `n` out as `format` says, with `source` as the CloudEvents source.
pub(crate) fn encode(n: &Notification, format: Format, source: Option<&str>) -> Encoded {
    match format {
        Format::Envelope => Encoded {
            body: n.to_json(),
            binary_attributes: None,
            content_type: DATA_CONTENT_TYPE,
        },
        Format::CloudEventsBinary => Encoded {
            body: n.to_json(),
            binary_attributes: Some(attributes(n, self::source(source, n))),
            content_type: DATA_CONTENT_TYPE,
        },
        Format::CloudEvents => {
            let [_, (_, id), _, (_, event_type), (_, subject), (_, time)] = attributes(n, "");
            let event = Structured {
                specversion: SPEC_VERSION,
                id,
                source: self::source(source, n),
                event_type,
                subject,
                time,
                datacontenttype: DATA_CONTENT_TYPE,
                data: n,
            };
            Encoded {
                body: to_vec_sized(&event, n.json_capacity() + ATTRIBUTES_ROOM),
                binary_attributes: None,
                content_type: STRUCTURED_CONTENT_TYPE,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventType, Origin, ResourceId};
    use serde_json::value::RawValue;
    use std::sync::Arc;

    fn note() -> Notification {
        Notification {
            event_type: EventType::Deleted,
            origin: Origin::Watch,
            time: std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1500),
            cluster: Some("prod".into()),
            resource: Arc::new(ResourceId {
                group: String::new(),
                version: "v1".into(),
                resource: "configmaps".into(),
                kind: "ConfigMap".into(),
            }),
            namespace: Some("ns".into()),
            name: "cm".into(),
            uid: "u1".into(),
            resource_version: "7".into(),
            object: Arc::from(RawValue::from_string(r#"{"k":1}"#.into()).expect("valid")),
            old_object: None,
            snapshot: None,
            tombstone: false,
            old_resource_version: None,
            patch: None,
        }
    }

    #[test]
    fn structured_event() {
        let n = note();
        let e = encode(&n, Format::CloudEvents, None);
        let v: serde_json::Value = serde_json::from_slice(&e.body).expect("json");
        assert_eq!(v["specversion"], "1.0");
        assert_eq!(v["type"], "io.kubebridge.configmaps.core.deleted");
        assert_eq!(v["source"], "prod");
        assert_eq!(v["id"], "u1:7:DELETED");
        assert_eq!(v["subject"], "ns/cm");
        assert_eq!(v["time"], "1970-01-01T00:00:01.500Z");
        assert_eq!(v["datacontenttype"], "application/json");
        let envelope: serde_json::Value = serde_json::from_slice(&n.to_json()).expect("json");
        assert_eq!(v["data"], envelope);
    }

    /// The body is byte for byte the envelope `to_json` writes, however big the
    /// objects (the buffer is sized from them) and whatever the format wraps it in.
    #[test]
    fn bodies_are_the_envelope_byte_for_byte() {
        let big = format!(r#"{{"data":"{}"}}"#, "x".repeat(5000));
        let mut n = note();
        n.event_type = EventType::Modified;
        n.object = Arc::from(RawValue::from_string(big.clone()).expect("valid"));
        n.old_object = Some(Arc::from(RawValue::from_string(big).expect("valid")));
        n.patch = Some(Arc::from(
            RawValue::from_string(r#"[{"op":"replace","path":"/k","value":2}]"#.into())
                .expect("valid"),
        ));
        for n in [note(), n] {
            let envelope = n.to_json();
            assert_eq!(encode(&n, Format::Envelope, None).body, envelope);
            let structured = encode(&n, Format::CloudEvents, None).body;
            let text = String::from_utf8(structured).expect("utf-8");
            let data = format!(
                r#","data":{}}}"#,
                String::from_utf8(envelope).expect("utf-8")
            );
            assert!(text.ends_with(&data), "{text}");
        }
    }

    #[test]
    fn binary_event_and_source_override() {
        let e = encode(&note(), Format::CloudEventsBinary, Some("cluster-a"));
        let attrs = e.binary_attributes.expect("binary");
        assert_eq!(attrs[2], ("source", "cluster-a".to_string()));
        assert_eq!(e.body, note().to_json());
        assert!(
            encode(&note(), Format::Envelope, None)
                .binary_attributes
                .is_none()
        );
    }
}
