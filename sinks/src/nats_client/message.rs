//! One NATS message for a notification (subject, body, headers), core and JetStream.

use std::borrow::Cow;

use async_nats::HeaderMap;
use async_nats::header::{HeaderName, IntoHeaderName};

use crate::Notification;
use crate::cloudevents::{self, Format};
use crate::headers::{self, Binding};
use crate::subject::{self, Template};

/// Where a notification's message goes: `PREFIX.` + the rendered subject template.
#[derive(Debug, Clone)]
pub(crate) struct Subjects {
    prefix: String,
    template: Template,
}

impl Subjects {
    /// Checks the URI's `prefix` and the subject template (`None`: the default
    /// `{group}.{version}.{resource}.{namespace}.{name}`).
    pub fn new(prefix: String, template: Option<&str>) -> Result<Subjects, String> {
        subject::check_nats_subject(&prefix).map_err(|e| format!("prefix {e}"))?;
        let text = template.unwrap_or(subject::DEFAULT_SUBJECT);
        let template = Template::parse(text, subject::SUBJECT_FIELDS)
            .map_err(|e| format!("subject template: {e}"))?;
        subject::check_nats_subject(&template.sample("x"))
            .map_err(|e| format!("subject template {e}"))?;
        Ok(Subjects { prefix, template })
    }

    /// The prefix every subject starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The full subject for `n`.
    pub fn subject_for(&self, n: &Notification) -> String {
        let mut s = String::with_capacity(self.prefix.len() + 96);
        s.push_str(&self.prefix);
        s.push('.');
        self.template.render_into(n, subject::nats_token, &mut s);
        s
    }
}

/// The body and headers of the message for `n`.
pub(crate) fn message_for(
    n: &Notification,
    format: Format,
    source: Option<&str>,
) -> (bytes::Bytes, HeaderMap) {
    let encoded = cloudevents::encode(n, format, source);
    let mut map = HeaderMap::new();
    for (name, value) in headers::headers(n, &encoded, format, Binding::Nats) {
        // Fixed names and computed values move in as they are: a `&str` would be
        // checked and copied into a new allocation for every header of every message.
        let name = match name {
            Cow::Borrowed(name) => HeaderName::from_static(name),
            Cow::Owned(name) => name.into_header_name(),
        };
        match value {
            Cow::Borrowed(value) => map.insert(name, value),
            Cow::Owned(value) => map.insert(name, value),
        }
    }
    (encoded.body.into(), map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventType, Origin, ResourceId};
    use serde_json::value::RawValue;
    use std::sync::Arc;

    fn note() -> Notification {
        Notification {
            event_type: EventType::Sync,
            origin: Origin::Resync,
            time: std::time::SystemTime::UNIX_EPOCH,
            cluster: None,
            resource: Arc::new(ResourceId {
                group: String::new(),
                version: "v1".into(),
                resource: "pods".into(),
                kind: "Pod".into(),
            }),
            namespace: Some("ns".into()),
            name: "a.b".into(),
            uid: "u".into(),
            resource_version: "3".into(),
            object: Arc::from(RawValue::from_string("{}".into()).expect("valid")),
            old_object: None,
            snapshot: None,
            tombstone: false,
            old_resource_version: None,
            patch: None,
        }
    }

    #[test]
    fn subjects() {
        let s = Subjects::new("k8s.prod".into(), None).expect("valid");
        assert_eq!(s.subject_for(&note()), "k8s.prod.core.v1.pods.ns.a_b");
        let s = Subjects::new("p".into(), Some("{kind}.{name}")).expect("valid");
        assert_eq!(s.subject_for(&note()), "p.Pod.a_b");
        assert!(
            Subjects::new("a.*".into(), None)
                .expect_err("wildcard")
                .starts_with("prefix ")
        );
        assert!(
            Subjects::new("p".into(), Some("{uid}"))
                .expect_err("no such field")
                .starts_with("subject template: unknown placeholder")
        );
        assert!(Subjects::new("p".into(), Some("a..{name}")).is_err());
    }

    #[test]
    fn message_carries_the_shared_headers() {
        let (body, headers) = message_for(&note(), Format::Envelope, None);
        assert_eq!(body.as_ref(), note().to_json().as_slice());
        let get = |k: &str| headers.get(k).map(|v| v.as_str().to_string());
        assert_eq!(get("type").as_deref(), Some("SYNC"));
        assert_eq!(get("origin").as_deref(), Some("resync"));
        assert_eq!(get("resource").as_deref(), Some("/v1/pods"));
        assert_eq!(get("kubebridge-id").as_deref(), Some("u:3:SYNC"));
        assert_eq!(get("content-type"), None);
    }
}
