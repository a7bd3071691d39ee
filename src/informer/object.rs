//! An object as kubebridge keeps it: identity fields plus the raw JSON, never a tree.

use std::sync::Arc;

use kubebridge_sinks::ResourceId;
use serde_json::value::RawValue;

use super::transform::ObjectTransform;

/// One Kubernetes object: the few metadata fields kubebridge needs, and the object's
/// JSON bytes exactly as the API server sent them (shared, never copied, between the
/// cache and the notifications that carry it).
#[derive(Debug, Clone)]
pub struct RawObject {
    /// `metadata.namespace`; `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.uid`.
    pub uid: String,
    /// `metadata.resourceVersion`.
    pub resource_version: String,
    /// The whole object.
    pub raw: Arc<RawValue>,
}

impl RawObject {
    /// Reads the identity fields of `raw` and applies `transform` (redaction,
    /// managedFields stripping), so that nothing after the decode ever holds the
    /// original bytes. Items of a LIST of built-in types come without `kind` and
    /// `apiVersion` (the API server omits them from typed list items); they are added so
    /// every notification's object is self-describing. The same one-scan decode as a
    /// LIST page's items and a watch event's object (`list_page`).
    pub fn decode(
        raw: Box<RawValue>,
        resource: &ResourceId,
        transform: &ObjectTransform,
    ) -> Result<RawObject, serde_json::Error> {
        super::list_page::decode_object(&raw, resource, transform)
    }

    /// `namespace/name`, or `name` for cluster-scoped objects: the cache key.
    pub fn key(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pods() -> ResourceId {
        ResourceId {
            group: String::new(),
            version: "v1".into(),
            resource: "pods".into(),
            kind: "Pod".into(),
        }
    }

    #[test]
    fn decodes_identity_and_adds_type_meta_to_list_items() {
        let raw = RawValue::from_string(
            r#"{"metadata":{"name":"a","namespace":"ns","uid":"u","resourceVersion":"7"},"spec":{}}"#.into(),
        )
        .expect("json");
        let o = RawObject::decode(raw, &pods(), &ObjectTransform::none()).expect("decode");
        assert_eq!(
            (
                o.key().as_str(),
                o.uid.as_str(),
                o.resource_version.as_str()
            ),
            ("ns/a", "u", "7")
        );
        assert_eq!(
            o.raw.get(),
            r#"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"a","namespace":"ns","uid":"u","resourceVersion":"7"},"spec":{}}"#
        );
    }

    #[test]
    fn keeps_objects_that_have_type_meta_byte_for_byte() {
        let text = r#"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"a","uid":"u","resourceVersion":"7"}}"#;
        let o = RawObject::decode(
            RawValue::from_string(text.into()).expect("json"),
            &pods(),
            &ObjectTransform::none(),
        )
        .expect("decode");
        assert_eq!(o.raw.get(), text);
        assert_eq!(o.key(), "a");
    }

    #[test]
    fn rejects_objects_without_metadata() {
        let raw = RawValue::from_string(r#"{"kind":"Pod"}"#.into()).expect("json");
        assert!(RawObject::decode(raw, &pods(), &ObjectTransform::none()).is_err());
    }
}
