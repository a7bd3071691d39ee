//! Decode-time object transforms: Secret values and user-named fields replaced by a keyed
//! hash, `metadata.managedFields` removed. They run when an object is decoded, before
//! the cache, a notification, `/cache` or a log can see it, so nothing downstream (the
//! old object of a MODIFIED, a diff, a patch) ever holds the original bytes.
//!
//! Objects stay text: the transform finds the byte ranges to replace by walking only
//! the paths its patterns name (serde's borrowed `RawValue`s give each value's place in
//! the text) and splices the replacements in, so everything else keeps its bytes and
//! its member order, and an object that needs no change is not touched at all.

use std::fmt;
use std::sync::Arc;

use kubebridge_sinks::ResourceId;
use prometheus::IntCounter;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use super::redact::RedactionKey;
use super::redact_path::RedactPath;
use crate::pointer::Segment;

/// The annotation `kubectl apply` writes with the whole last-applied object in it: on a
/// Secret, its data.
const LAST_APPLIED: &str = "kubectl.kubernetes.io~1last-applied-configuration";

/// What the built-in Secret rule redacts on core/v1 Secrets.
fn secret_patterns() -> Vec<RedactPath> {
    [
        "/data/*",
        "/stringData/*",
        &format!("/metadata/annotations/{LAST_APPLIED}"),
    ]
    .into_iter()
    .map(|p| RedactPath::parse(p).expect("the built-in paths are valid"))
    .collect()
}

/// Whether `resource` is core/v1's Secret (any version; another group's `secrets` is not).
fn is_core_secret(resource: &ResourceId) -> bool {
    resource.group.is_empty() && resource.resource == "secrets"
}

/// A user's `redact` rule, resolved: these paths of this resource (any version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedRule {
    /// The API group (`""` for core).
    pub group: String,
    /// The plural resource name.
    pub resource: String,
    /// The paths to redact.
    pub paths: Vec<RedactPath>,
}

/// The transforms of one run, for every informer. The default changes nothing; the
/// secure defaults (Secrets redacted, managedFields stripped) are the configuration's.
#[derive(Clone, Default)]
pub struct Transforms(Option<Arc<Settings>>);

struct Settings {
    strip_managed_fields: bool,
    redact_secrets: bool,
    key: RedactionKey,
    rules: Vec<ResolvedRule>,
}

impl fmt::Debug for Transforms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            None => f.write_str("Transforms(none)"),
            Some(s) => f
                .debug_struct("Transforms")
                .field("strip_managed_fields", &s.strip_managed_fields)
                .field("redact_secrets", &s.redact_secrets)
                .field("key", &s.key)
                .field("rules", &s.rules)
                .finish(),
        }
    }
}

impl Transforms {
    /// Hash with `key` the Secrets' values (when `redact_secrets`) and the paths of
    /// `rules`; remove `metadata.managedFields` when `strip_managed_fields`.
    pub fn new(
        strip_managed_fields: bool,
        redact_secrets: bool,
        key: RedactionKey,
        rules: Vec<ResolvedRule>,
    ) -> Transforms {
        Transforms(Some(Arc::new(Settings {
            strip_managed_fields,
            redact_secrets,
            key,
            rules,
        })))
    }

    /// Whether objects of `resource` have values to hash.
    pub fn redacts(&self, resource: &ResourceId) -> bool {
        let Some(s) = &self.0 else {
            return false;
        };
        (s.redact_secrets && is_core_secret(resource))
            || s.rules
                .iter()
                .any(|r| r.group == resource.group && r.resource == resource.resource)
    }

    /// The transform for objects of `resource`; `redacted` counts the values it hashes.
    pub(crate) fn for_resource(
        &self,
        resource: &ResourceId,
        redacted: impl FnOnce() -> IntCounter,
    ) -> ObjectTransform {
        let Some(s) = &self.0 else {
            return ObjectTransform::none();
        };
        let mut patterns = Vec::new();
        if s.redact_secrets && is_core_secret(resource) {
            patterns.extend(secret_patterns());
        }
        for rule in &s.rules {
            if rule.group == resource.group && rule.resource == resource.resource {
                patterns.extend(rule.paths.iter().cloned());
            }
        }
        let redactor = (!patterns.is_empty()).then(|| Redactor {
            patterns,
            key: s.key.clone(),
            counted: redacted(),
        });
        ObjectTransform {
            strip_managed_fields: s.strip_managed_fields,
            redactor,
        }
    }
}

/// The transform of one informer's objects.
#[derive(Clone)]
pub struct ObjectTransform {
    strip_managed_fields: bool,
    redactor: Option<Redactor>,
}

#[derive(Clone)]
struct Redactor {
    patterns: Vec<RedactPath>,
    key: RedactionKey,
    counted: IntCounter,
}

/// One replacement in an object's text.
struct Edit {
    /// Byte range replaced.
    start: usize,
    end: usize,
    /// What takes its place.
    with: String,
    /// Whether it replaces a redacted value (and so counts).
    redacts: bool,
}

impl ObjectTransform {
    /// Changes nothing.
    pub fn none() -> ObjectTransform {
        ObjectTransform {
            strip_managed_fields: false,
            redactor: None,
        }
    }

    /// Whether `metadata.managedFields` is removed.
    pub fn strips_managed_fields(&self) -> bool {
        self.strip_managed_fields
    }

    /// Whether some of these objects' values are redacted: such objects' text must not
    /// reach a log even when it fails to decode.
    pub fn redacts(&self) -> bool {
        self.redactor.is_some()
    }

    /// The redacted text of `object`, or `None` when it needs no change (it keeps its
    /// bytes). managedFields were already left out by the decode (`list_page`), which
    /// asks [`ObjectTransform::strips_managed_fields`].
    pub fn apply(&self, object: &RawValue) -> Result<Option<String>, serde_json::Error> {
        let Some(r) = &self.redactor else {
            return Ok(None);
        };
        let text = object.get();
        let mut edits = Vec::new();
        let patterns: Vec<&[Segment]> = r.patterns.iter().map(|p| p.pointer().segments()).collect();
        collect(text, object, &patterns, &r.key, &mut edits)?;
        if edits.is_empty() {
            return Ok(None);
        }
        let (out, redacted) = splice(text, edits);
        r.counted.inc_by(redacted);
        Ok(Some(out))
    }
}

/// The edits for the values `patterns` select in `node` (a slice of `text`). A pattern
/// that ends here selects `node` itself; the others go on into its members or elements.
fn collect(
    text: &str,
    node: &RawValue,
    patterns: &[&[Segment]],
    key: &RedactionKey,
    edits: &mut Vec<Edit>,
) -> Result<(), serde_json::Error> {
    let json = node.get();
    if patterns.iter().any(|p| p.is_empty()) {
        let hash = match plain_string(json) {
            // A string without escapes (every base64 value): its characters are its
            // text between the quotes, no parse needed.
            Some(chars) => key.hash(chars.as_bytes()),
            None => key.hash_value(&serde_json::from_str::<Value>(json)?),
        };
        let start = offset(text, json);
        edits.push(Edit {
            start,
            end: start + json.len(),
            // A hash is `hmac-sha256:` and hex digits: nothing to escape.
            with: format!("\"{hash}\""),
            redacts: true,
        });
        return Ok(());
    }
    let mut descend = |name: &str, child: &RawValue| {
        let next: Vec<&[Segment]> = patterns
            .iter()
            .filter(|p| p[0].matches(name))
            .map(|p| &p[1..])
            .collect();
        if next.is_empty() {
            Ok(())
        } else {
            collect(text, child, &next, key, edits)
        }
    };
    match json.as_bytes().first() {
        Some(b'{') => {
            let Members(members) = serde_json::from_str(json)?;
            for (name, child) in members {
                descend(&name, child)?;
            }
        }
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_str(json)?;
            for (index, child) in items.into_iter().enumerate() {
                descend(&index.to_string(), child)?;
            }
        }
        // A scalar has nothing below it: the path does not exist here, which is fine.
        _ => {}
    }
    Ok(())
}

/// The characters of the JSON string `json` when it has no escapes; `None` for any other
/// value.
fn plain_string(json: &str) -> Option<&str> {
    let inner = json.strip_prefix('"')?.strip_suffix('"')?;
    (!inner.contains('\\')).then_some(inner)
}

/// Where `slice` (a subslice of `text`) starts in `text`.
fn offset(text: &str, slice: &str) -> usize {
    slice.as_ptr() as usize - text.as_ptr() as usize
}

/// `text` with `edits` applied, and how many redacted values they replaced. Of edits
/// that overlap (a rule below `/metadata/managedFields` and its removal), the first
/// wins, so a removed member is removed whole.
fn splice(text: &str, mut edits: Vec<Edit>) -> (String, u64) {
    edits.sort_by_key(|e| (e.start, std::cmp::Reverse(e.end)));
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    let mut redacted = 0;
    for e in edits {
        if e.start < at {
            continue;
        }
        out.push_str(&text[at..e.start]);
        out.push_str(&e.with);
        at = e.end;
        redacted += u64::from(e.redacts);
    }
    out.push_str(&text[at..]);
    (out, redacted)
}

/// An object's members in order, every one (a duplicate name too), values unparsed.
struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Members<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Members<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Members<'a>, M::Error> {
                let mut members = Vec::new();
                while let Some(entry) = map.next_entry::<String, &'de RawValue>()? {
                    members.push(entry);
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests;
