//! A LIST page decoded in one scan: every item's identity, members and `managedFields`
//! are read while the page itself is parsed, and the object the cache keeps is written
//! once from those pieces. A watch event's object is decoded the same way
//! ([`Items::object`], from `wire::decode_event`).
//!
//! Decoding a page item by item (the page parsed into `RawValue` items, each read again
//! for its identity, to the end since a typed LIST's items carry no `kind`, spliced with
//! `kind`/`apiVersion` and validated a third time, then copied into its `Arc`) scanned
//! each item's JSON three to four times. Here every member value is kept as a borrowed
//! `RawValue` of the page (validated by the one scan), and the object is written from
//! them by serde_json's serializer, which copies a `RawValue` verbatim. What is written
//! is validated once more for a LIST page (for memory) and not at all for a watch
//! event (for speed): see [`Writing`].
//!
//! The object keeps its members' values byte for byte and its members in order; only
//! the whitespace between top-level and `metadata` members is dropped (the API server
//! writes none). `kind` and `apiVersion` lead the object when the item has no `kind`;
//! `managedFields` is left out when the transform strips it. A `metadata` member
//! written twice (never by an API server) keeps its last value, as the identity does.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use kubebridge_sinks::ResourceId;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::error::Category;
use serde_json::value::RawValue;

use super::RawObject;
use super::transform::ObjectTransform;
use super::wire::describe;
use crate::kube::api::ApiError;

/// One page of a LIST.
pub(super) struct ListPage {
    /// The page's objects.
    pub(super) objects: Vec<RawObject>,
    /// The list's resourceVersion (the same on every page of one list).
    pub(super) resource_version: String,
    /// The token for the next page; `None` on the last page.
    pub(super) continue_token: Option<String>,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ListMeta {
    #[serde(default)]
    resource_version: String,
    #[serde(default, rename = "continue")]
    continue_token: Option<String>,
}

/// Decodes a LIST page of `resource` fetched from `path`, each object through `transform`.
pub(super) fn decode_page(
    body: &[u8],
    resource: &ResourceId,
    transform: &ObjectTransform,
    path: &str,
) -> Result<ListPage, ApiError> {
    let api_version = resource.api_version();
    let mut items = Items::new(
        &resource.kind,
        &api_version,
        transform,
        Writing::Reused(Vec::new()),
    );
    let mut de = serde_json::Deserializer::from_slice(body);
    let meta = de
        .deserialize_map(PageVisitor { items: &mut items })
        .and_then(|meta| de.end().map(|()| meta))
        .map_err(|e| {
            // A syntax error or an early end is the page's, wherever it is.
            let detail = if items.failed_item && matches!(e.classify(), Category::Data) {
                format!(
                    "a list object without the metadata every object has: {}",
                    describe(&e)
                )
            } else {
                format!("a LIST answer that is not a list: {}", describe(&e))
            };
            ApiError::Decode {
                path: path.to_owned(),
                detail,
            }
        })?;
    Ok(ListPage {
        objects: items.objects,
        resource_version: meta.resource_version,
        continue_token: meta.continue_token.filter(|t| !t.is_empty()),
    })
}

/// Decodes one object on its own (not in a page or an event) the same one-scan way.
pub(super) fn decode_object(
    object: &RawValue,
    resource: &ResourceId,
    transform: &ObjectTransform,
) -> serde_json::Result<RawObject> {
    let api_version = resource.api_version();
    let mut items = Items::new(&resource.kind, &api_version, transform, Writing::Trusted);
    let mut de = serde_json::Deserializer::from_str(object.get());
    let decoded = items.object().deserialize(&mut de)?;
    de.end()?;
    Ok(decoded)
}

/// The continue token of a LIST page, read from its `metadata` alone so that the next
/// page can be asked for before this one is decoded. The API server writes `metadata`
/// before `items`; a page that does not (or that is no list) gets `None`, and its next
/// page is asked for after its decode, which also says what is wrong with it.
pub(super) fn next_page_token(body: &[u8]) -> Option<String> {
    let mut found = None;
    let mut de = serde_json::Deserializer::from_slice(body);
    // The visitor stops (with an error) as soon as it has the metadata or meets the items.
    let _ = de.deserialize_map(TokenVisitor { found: &mut found });
    found.flatten().filter(|t| !t.is_empty())
}

struct TokenVisitor<'a> {
    /// `Some(token)` once the metadata is read.
    found: &'a mut Option<Option<String>>,
}

impl<'de> Visitor<'de> for TokenVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a LIST answer")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            match key.as_ref() {
                "metadata" => {
                    let meta: ListMeta = map.next_value()?;
                    *self.found = Some(meta.continue_token);
                    return Err(de::Error::custom("metadata read"));
                }
                "items" => return Err(de::Error::custom("items before metadata")),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// A member name, borrowed from the page unless it was written with escapes (serde's
/// own `Cow<str>` always copies).
pub(super) struct Key<'de>(pub(super) Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// A member of an object: its name and its value as the page has it.
type Member<'de> = (Cow<'de, str>, &'de RawValue);

/// Buffers reused from item to item.
#[derive(Default)]
struct Scratch<'de> {
    /// The item's top-level members; `None` in place of `metadata`.
    top: Vec<(Cow<'de, str>, Option<&'de RawValue>)>,
    /// The members of its `metadata` that the object keeps.
    metadata: Vec<Member<'de>>,
}

/// The page's items as they are decoded, and what decoding them needs; also what
/// decodes a watch event's object (`wire::decode_event`), the same way in one scan.
pub(super) struct Items<'a, 'de> {
    kind: &'a str,
    api_version: &'a str,
    transform: &'a ObjectTransform,
    objects: Vec<RawObject>,
    scratch: Scratch<'de>,
    /// Whether an item (not the page around it) was what failed.
    failed_item: bool,
    writing: Writing,
}

impl<'a, 'de> Items<'a, 'de> {
    /// Decoding objects of `kind` in `api_version` through `transform`, kept as
    /// `writing` says.
    pub(super) fn new(
        kind: &'a str,
        api_version: &'a str,
        transform: &'a ObjectTransform,
        writing: Writing,
    ) -> Self {
        Items {
            writing,
            kind,
            api_version,
            transform,
            objects: Vec::new(),
            scratch: Scratch::default(),
            failed_item: false,
        }
    }

    /// A seed that decodes one object, in one scan, into the object kubebridge keeps.
    pub(super) fn object(&mut self) -> ItemSeed<'_, 'a, 'de> {
        ItemSeed { items: self }
    }

    /// Whether the last error came from inside an object (not from what holds it).
    pub(super) fn failed_in_object(&self) -> bool {
        self.failed_item
    }
}

struct PageVisitor<'p, 'a, 'de> {
    items: &'p mut Items<'a, 'de>,
}

impl<'de> Visitor<'de> for PageVisitor<'_, '_, 'de> {
    type Value = ListMeta;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a LIST answer")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ListMeta, A::Error> {
        let mut meta = None;
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            match key.as_ref() {
                "metadata" => meta = Some(map.next_value::<ListMeta>()?),
                "items" => map.next_value_seed(ItemsSeed {
                    items: &mut *self.items,
                })?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        meta.ok_or_else(|| de::Error::missing_field("metadata"))
    }
}

/// The `items` array (`null` reads as empty, as Go writes an empty slice).
struct ItemsSeed<'p, 'a, 'de> {
    items: &'p mut Items<'a, 'de>,
}

impl<'de> DeserializeSeed<'de> for ItemsSeed<'_, '_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for ItemsSeed<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of objects")
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if let Some(n) = seq.size_hint() {
            self.items.objects.reserve(n);
        }
        loop {
            let item = ItemSeed {
                items: &mut *self.items,
            };
            match seq.next_element_seed(item) {
                Ok(Some(object)) => self.items.objects.push(object),
                Ok(None) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }
}

/// One item, decoded into the object kubebridge keeps.
pub(super) struct ItemSeed<'p, 'a, 'de> {
    items: &'p mut Items<'a, 'de>,
}

impl<'de> DeserializeSeed<'de> for ItemSeed<'_, '_, 'de> {
    type Value = RawObject;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<RawObject, D::Error> {
        self.items.failed_item = true;
        let object = d.deserialize_map(ItemVisitor {
            items: &mut *self.items,
        })?;
        self.items.failed_item = false;
        Ok(object)
    }
}

struct ItemVisitor<'p, 'a, 'de> {
    items: &'p mut Items<'a, 'de>,
}

/// The identity fields of an item's `metadata`, as the page has them.
#[derive(Default)]
struct IdentityFields<'de> {
    name: Option<&'de RawValue>,
    namespace: Option<&'de RawValue>,
    uid: Option<&'de RawValue>,
    resource_version: Option<&'de RawValue>,
}

impl<'de> Visitor<'de> for ItemVisitor<'_, '_, 'de> {
    type Value = RawObject;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object with metadata")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawObject, A::Error> {
        let items = self.items;
        let strip = items.transform.strips_managed_fields();
        let Scratch { top, metadata } = &mut items.scratch;
        top.clear();
        metadata.clear();
        let (mut has_kind, mut identity) = (false, None);
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            match key.as_ref() {
                "metadata" => {
                    metadata.clear();
                    identity = Some(map.next_value_seed(MetadataSeed { metadata, strip })?);
                    top.retain(|(_, value)| value.is_some());
                    top.push((key, None));
                }
                name => {
                    has_kind |= name == "kind";
                    top.push((key, Some(map.next_value::<&'de RawValue>()?)));
                }
            }
        }
        let identity = identity.ok_or_else(|| de::Error::missing_field("metadata"))?;
        let object = Object {
            type_meta: (!has_kind).then_some((items.kind, items.api_version)),
            top,
            metadata,
        };
        let raw = build(&object, items.transform, &mut items.writing).map_err(de::Error::custom)?;
        identity.into_object(raw).map_err(de::Error::custom)
    }
}

/// How the kept object is made from the pieces the one scan validated.
pub(super) enum Writing {
    /// Written into one buffer, reused from object to object, and read back (validated
    /// again) into an allocation of its exact size. For LIST pages: a LIST allocates
    /// 100 000 long-lived objects back to back, and `to_raw_value`'s transient buffers
    /// (grown from 128 bytes for each object) between them cost 100 MiB more RSS for
    /// 100 000 pods with managedFields kept.
    Reused(Vec<u8>),
    /// `to_raw_value`, which takes its own serializer's output as it is: nothing is
    /// validated twice (25% fewer instructions per object, callgrind). For watch
    /// events: one object at a time replaces another, with no run of long-lived
    /// allocations for transient buffers to sit between.
    Trusted,
}

/// Writes `object` as JSON into the `Arc` that keeps it, after the transform's
/// redaction (which re-reads it: only resources with redaction rules pay for that).
fn build(
    object: &Object<'_, '_>,
    transform: &ObjectTransform,
    writing: &mut Writing,
) -> serde_json::Result<Arc<RawValue>> {
    let raw: Box<RawValue> = match writing {
        Writing::Reused(out) => {
            out.clear();
            serde_json::to_writer(&mut *out, object)?;
            serde_json::from_slice(out)?
        }
        Writing::Trusted => serde_json::value::to_raw_value(object)?,
    };
    // managedFields are already out: only the redaction is left to do.
    match transform.apply(&raw)? {
        Some(text) => Ok(Arc::from(RawValue::from_string(text)?)),
        None => Ok(Arc::from(raw)),
    }
}

impl<'de> IdentityFields<'de> {
    fn into_object(self, raw: Arc<RawValue>) -> serde_json::Result<RawObject> {
        let text = |value: Option<&RawValue>| value.map_or(Ok(String::new()), string);
        let namespace = match self.namespace {
            Some(ns) if ns.get() != "null" => Some(string(ns)?).filter(|ns| !ns.is_empty()),
            _ => None,
        };
        Ok(RawObject {
            namespace,
            name: text(self.name)?,
            uid: text(self.uid)?,
            resource_version: text(self.resource_version)?,
            raw,
        })
    }
}

/// The string `value` holds; without escapes (every name, uid and version the API
/// server writes), its characters are its text between the quotes.
fn string(value: &RawValue) -> serde_json::Result<String> {
    let json = value.get();
    match json.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(plain) if !plain.contains('\\') => Ok(plain.to_owned()),
        _ => serde_json::from_str(json),
    }
}

/// An item's `metadata`: its members (without `managedFields` when `strip`) go to
/// `metadata`, its identity fields are returned.
struct MetadataSeed<'s, 'de> {
    metadata: &'s mut Vec<Member<'de>>,
    strip: bool,
}

impl<'de> DeserializeSeed<'de> for MetadataSeed<'_, 'de> {
    type Value = IdentityFields<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<IdentityFields<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MetadataSeed<'_, 'de> {
    type Value = IdentityFields<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("metadata (an object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<IdentityFields<'de>, A::Error> {
        let mut identity = IdentityFields::default();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            let value = map.next_value::<&'de RawValue>()?;
            match key.as_ref() {
                "name" => identity.name = Some(value),
                "namespace" => identity.namespace = Some(value),
                "uid" => identity.uid = Some(value),
                "resourceVersion" => identity.resource_version = Some(value),
                "managedFields" if self.strip => continue,
                _ => {}
            }
            self.metadata.push((key, value));
        }
        Ok(identity)
    }
}

/// The object kubebridge keeps, as pieces of the page: written by serde_json's compact
/// serializer, which copies each `RawValue` as it is.
struct Object<'s, 'de> {
    /// `kind` and `apiVersion` to put first, for an item without `kind`.
    type_meta: Option<(&'s str, &'s str)>,
    /// The top-level members in order; `None` is `metadata`.
    top: &'s [(Cow<'de, str>, Option<&'de RawValue>)],
    /// The members of `metadata` it keeps.
    metadata: &'s [Member<'de>],
}

impl Serialize for Object<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        if let Some((kind, api_version)) = self.type_meta {
            map.serialize_entry("kind", kind)?;
            map.serialize_entry("apiVersion", api_version)?;
        }
        for (name, value) in self.top {
            match value {
                Some(value) => map.serialize_entry(name.as_ref(), value)?,
                None => map.serialize_entry(name.as_ref(), &Members(self.metadata))?,
            }
        }
        map.end()
    }
}

struct Members<'s, 'de>(&'s [Member<'de>]);

impl Serialize for Members<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (name, value) in self.0 {
            map.serialize_entry(name.as_ref(), value)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests;
