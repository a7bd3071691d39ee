//! The headers of every broker message, in one place for Kafka, NATS and JetStream.
//!
//! kubebridge's own headers, and a CloudEvent's attributes in binary mode.

use std::borrow::Cow;

use crate::Notification;
use crate::cloudevents::{Encoded, Format};

/// Which protocol binding of CloudEvents a message follows: it decides how binary-mode
/// attribute headers are spelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Binding {
    /// `ce_` + attribute name (the Kafka protocol binding).
    #[cfg_attr(not(feature = "kafka"), allow(dead_code))]
    Kafka,
    /// `ce-` + attribute name (the NATS protocol binding).
    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    Nats,
}

impl Binding {
    fn attribute_prefix(self) -> &'static str {
        match self {
            Binding::Kafka => "ce_",
            Binding::Nats => "ce-",
        }
    }
}

/// One message header: its name and value.
pub(crate) type Header<'a> = (Cow<'static, str>, Cow<'a, str>);

/// The headers of the message for `n`, whose body is `encoded` in `format`:
///
/// - `type`, `origin`, `resource` (`group/version/resource`) and `kubebridge-id`
///   ([`Notification::id`]), always;
/// - in CloudEvents binary mode, every context attribute but `datacontenttype`, named
///   as `binding` spells it;
/// - `content-type` for the CloudEvents formats only: plain envelopes carry none, as
///   before CloudEvents existed here, while CloudEvents consumers need it to tell
///   structured from binary mode.
pub(crate) fn headers<'a>(
    n: &'a Notification,
    encoded: &'a Encoded,
    format: Format,
    binding: Binding,
) -> Vec<Header<'a>> {
    let r = &n.resource;
    let resource = concat(&[&r.group, "/", &r.version, "/", &r.resource]);
    let mut headers: Vec<Header<'a>> = Vec::with_capacity(12);
    headers.push(("type".into(), n.event_type.as_str().into()));
    headers.push(("origin".into(), n.origin.as_str().into()));
    headers.push(("resource".into(), resource.into()));
    headers.push(("kubebridge-id".into(), n.id().into()));
    if let Some(attributes) = &encoded.binary_attributes {
        let prefix = binding.attribute_prefix();
        for (name, value) in attributes {
            headers.push((format!("{prefix}{name}").into(), value.as_str().into()));
        }
    }
    if format != Format::Envelope {
        headers.push(("content-type".into(), encoded.content_type.into()));
    }
    headers
}

/// `parts` joined, in one allocation of the right size.
fn concat(parts: &[&str]) -> String {
    let mut s = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for part in parts {
        s.push_str(part);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloudevents::encode;
    use crate::{EventType, Origin, ResourceId};
    use serde_json::value::RawValue;
    use std::sync::Arc;

    fn note() -> Notification {
        Notification {
            event_type: EventType::Added,
            origin: Origin::List,
            time: std::time::SystemTime::UNIX_EPOCH,
            cluster: Some("prod".into()),
            resource: Arc::new(ResourceId {
                group: "apps".into(),
                version: "v1".into(),
                resource: "deployments".into(),
                kind: "Deployment".into(),
            }),
            namespace: Some("ns".into()),
            name: "web".into(),
            uid: "u1".into(),
            resource_version: "9".into(),
            object: Arc::from(RawValue::from_string("{}".into()).expect("valid")),
            old_object: None,
            snapshot: None,
            tombstone: false,
            old_resource_version: None,
            patch: None,
        }
    }

    fn names_and_values(headers: &[Header<'_>]) -> Vec<(String, String)> {
        headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const OWN: [(&str, &str); 4] = [
        ("type", "ADDED"),
        ("origin", "list"),
        ("resource", "apps/v1/deployments"),
        ("kubebridge-id", "u1:9:ADDED"),
    ];

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn envelope_carries_only_kubebridges_own() {
        let n = note();
        let e = encode(&n, Format::Envelope, None);
        for binding in [Binding::Kafka, Binding::Nats] {
            let h = headers(&n, &e, Format::Envelope, binding);
            assert_eq!(names_and_values(&h), pairs(&OWN));
        }
    }

    #[test]
    fn binary_mode_spells_attributes_per_binding() {
        let n = note();
        let e = encode(&n, Format::CloudEventsBinary, Some("src"));
        let attributes = [
            ("specversion", "1.0"),
            ("id", "u1:9:ADDED"),
            ("source", "src"),
            ("type", "io.kubebridge.deployments.apps.added"),
            ("subject", "ns/web"),
            ("time", "1970-01-01T00:00:00.000Z"),
        ];
        for (binding, prefix) in [(Binding::Kafka, "ce_"), (Binding::Nats, "ce-")] {
            let mut want = pairs(&OWN);
            want.extend(
                attributes
                    .iter()
                    .map(|(k, v)| (format!("{prefix}{k}"), v.to_string())),
            );
            want.push(("content-type".into(), "application/json".into()));
            let h = headers(&n, &e, Format::CloudEventsBinary, binding);
            assert_eq!(names_and_values(&h), want);
        }
    }

    #[test]
    fn structured_mode_adds_its_content_type() {
        let n = note();
        let e = encode(&n, Format::CloudEvents, None);
        let mut want = pairs(&OWN);
        want.push(("content-type".into(), "application/cloudevents+json".into()));
        let h = headers(&n, &e, Format::CloudEvents, Binding::Nats);
        assert_eq!(names_and_values(&h), want);
    }
}
