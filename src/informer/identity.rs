//! An object's identity (whether it has a `kind`, and its `metadata`) read from JSON
//! that is already known to be valid, without scanning the rest of the object.
//!
//! Every object reaches [`RawObject::decode`](super::RawObject::decode) as a `RawValue`
//! that serde_json has already validated end to end. Reading its identity with a plain
//! derive would scan the whole object a second time (`spec` and `status` are most of a
//! pod); the API server writes `kind` and `metadata` first, so this reader stops as soon
//! as it has both. An object without `kind` (items of a typed LIST) is read to the end,
//! since only the end proves there is none.

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

/// The metadata fields kubebridge keeps.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Metadata<'a> {
    #[serde(default)]
    pub(super) name: String,
    #[serde(default)]
    pub(super) namespace: Option<String>,
    #[serde(default)]
    pub(super) uid: String,
    #[serde(default)]
    pub(super) resource_version: String,
    /// Found here, as a slice of the object's text, so that stripping it needs no
    /// second parse.
    #[serde(borrow, default)]
    pub(super) managed_fields: Option<&'a RawValue>,
}

/// What [`read`] found.
pub(super) struct Identity<'a> {
    /// Whether the object has a top-level `kind`.
    pub(super) has_kind: bool,
    pub(super) metadata: Metadata<'a>,
}

/// The message of the error that stops the scan early; never seen by a caller.
const STOP: &str = "identity read; the rest need not be scanned";

/// Reads the identity of `json`, an object serde_json has already validated.
pub(super) fn read(json: &str) -> Result<Identity<'_>, serde_json::Error> {
    let mut found = None;
    let mut de = serde_json::Deserializer::from_str(json);
    match de.deserialize_map(IdentityVisitor { found: &mut found }) {
        Ok(identity) => {
            de.end()?;
            Ok(identity)
        }
        // Stopped on purpose with both fields read.
        Err(e) => found.ok_or(e),
    }
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum Key {
    Kind,
    Metadata,
    #[serde(other)]
    Other,
}

struct IdentityVisitor<'a, 'de> {
    found: &'a mut Option<Identity<'de>>,
}

impl<'de> Visitor<'de> for IdentityVisitor<'_, 'de> {
    type Value = Identity<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object with metadata")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Identity<'de>, A::Error> {
        let mut has_kind = false;
        let mut metadata = None;
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Kind => {
                    map.next_value::<IgnoredAny>()?;
                    has_kind = true;
                }
                Key::Metadata => metadata = Some(map.next_value::<Metadata<'de>>()?),
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            if has_kind && metadata.is_some() {
                // Both read: stop here. serde only lets a visitor end a map early with
                // an error, so the result leaves through `found`.
                *self.found = metadata.map(|metadata| Identity { has_kind, metadata });
                return Err(de::Error::custom(STOP));
            }
        }
        let metadata = metadata.ok_or_else(|| de::Error::missing_field("metadata"))?;
        Ok(Identity { has_kind, metadata })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kind_and_metadata_in_any_order() {
        for json in [
            r#"{"kind":"Pod","metadata":{"name":"a","namespace":"n","uid":"u","resourceVersion":"7"},"spec":{}}"#,
            r#"{"spec":{},"metadata":{"name":"a","namespace":"n","uid":"u","resourceVersion":"7"},"kind":"Pod"}"#,
        ] {
            let id = read(json).expect("identity");
            assert!(id.has_kind, "{json}");
            let m = id.metadata;
            assert_eq!(
                (m.name.as_str(), m.namespace.as_deref(), m.uid.as_str()),
                ("a", Some("n"), "u")
            );
            assert_eq!(m.resource_version, "7");
        }
    }

    #[test]
    fn an_object_without_kind_is_read_to_the_end() {
        let id = read(r#"{"metadata":{"name":"a"},"spec":{"x":[1,2]}}"#).expect("identity");
        assert!(!id.has_kind);
        assert_eq!(id.metadata.name, "a");
    }

    #[test]
    fn an_object_without_metadata_is_an_error() {
        assert!(read(r#"{"kind":"Pod","spec":{}}"#).is_err());
        assert!(read(r#"[1]"#).is_err());
        assert!(read(r#"{"kind":"Pod","metadata":"x"}"#).is_err());
    }
}
