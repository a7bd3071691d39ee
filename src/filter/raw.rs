//! Comparing and projecting objects as raw JSON, one level at a time: only the objects
//! and arrays on the way to a named path are split into their members, and everything
//! else is compared or copied as bytes, so no tree of the object is ever built.
//!
//! Byte equality stands for value equality because the API server writes objects
//! canonically (Go's encoding/json: struct fields in declaration order, map keys sorted,
//! no spaces). Two spellings of one value would compare as different, which publishes a
//! change rather than hiding one: the safe side.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::path_set::Cursor;

/// An object key: borrowed from the text, or unescaped when it holds escapes (Go
/// writes `<`, `>` and `&` as `\u003c`, `\u003e`, `\u0026`, in keys too).
struct Key<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// The members of a JSON object in their order, values as raw spans.
struct Entries<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> serde::Deserialize<'de> for Entries<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((Key(key), value)) = map.next_entry::<Key<'de>, &'de RawValue>()? {
                    entries.push((key, value));
                }
                Ok(Entries(entries))
            }
        }
        d.deserialize_map(V)
    }
}

/// One level of a JSON value: its members, its elements, or a scalar.
enum Level<'a> {
    Object(Vec<(Cow<'a, str>, &'a RawValue)>),
    Array(Vec<&'a RawValue>),
    Scalar,
}

/// Splits `raw` one level; `None` only for text that is not JSON (never, for decoded
/// objects), and the caller then takes the safe answer.
fn level(raw: &RawValue) -> Option<Level<'_>> {
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'{') => serde_json::from_str::<Entries<'_>>(text)
            .ok()
            .map(|e| Level::Object(e.0)),
        Some(b'[') => serde_json::from_str::<Vec<&RawValue>>(text)
            .ok()
            .map(Level::Array),
        _ => Some(Level::Scalar),
    }
}

/// The members of an object up to and including the last of `wanted` (in the object's
/// order), and the text after that member: what is not wanted after it need not be
/// split, only compared as bytes. `None` unless every wanted key is there.
fn members_until<'a>(text: &'a str, wanted: &[&str]) -> Option<(Members<'a>, &'a str)> {
    struct Until<'w, 'a> {
        wanted: &'w [&'w str],
        found: &'w mut Option<Members<'a>>,
    }
    impl<'de> Visitor<'de> for Until<'_, 'de> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut members = Vec::new();
            let mut seen = vec![false; self.wanted.len()];
            while let Some((Key(key), value)) = map.next_entry::<Key<'de>, &'de RawValue>()? {
                if let Some(i) = self.wanted.iter().position(|w| *w == key) {
                    seen[i] = true;
                }
                members.push((key, value));
                if seen.iter().all(|s| *s) {
                    // Stop here: the caller compares the rest as bytes. (The
                    // deserializer then reports the unread rest as an error; ignored.)
                    *self.found = Some(members);
                    return Ok(());
                }
            }
            Ok(())
        }
    }
    if wanted.is_empty() {
        return None;
    }
    let mut found = None;
    let mut de = serde_json::Deserializer::from_str(text);
    let _ = serde::Deserializer::deserialize_map(
        &mut de,
        Until {
            wanted,
            found: &mut found,
        },
    );
    let members = found?;
    let last = members.last()?.1.get();
    // The last value is a slice of `text`: the rest starts where it ends.
    let end = last.as_ptr() as usize - text.as_ptr() as usize + last.len();
    Some((members, text.get(end..)?))
}

type Members<'a> = Vec<(Cow<'a, str>, &'a RawValue)>;

/// Whether two objects' members are equal once every path `at` matches is left out.
fn members_equal(a: &Members<'_>, b: &Members<'_>, at: &Cursor<'_>) -> bool {
    let mut compared = 0;
    for (key, va) in a {
        let below = at.child(key.as_ref());
        if below.matched() {
            continue;
        }
        match b.iter().find(|(k, _)| k == key) {
            Some((_, vb)) => {
                compared += 1;
                if !equal_ignoring(va, vb, &below) {
                    return false;
                }
            }
            None => return false,
        }
    }
    // Every key of b not ignored must have been one of a's.
    let unignored_b = b
        .iter()
        .filter(|(k, _)| !at.child(k.as_ref()).matched())
        .count();
    unignored_b == compared
}

/// Whether `a` and `b` are equal once every path `at` matches is left out of both.
pub fn equal_ignoring(a: &RawValue, b: &RawValue, at: &Cursor<'_>) -> bool {
    if at.matched() {
        return true;
    }
    if a.get() == b.get() {
        return true;
    }
    if at.leaf() {
        return false;
    }
    // Objects whose named members all come early (metadata, in the API server's
    // order): split only up to them, and compare what follows as bytes.
    if let Some(wanted) = at.literal_keys()
        && let Some((ma, rest_a)) = members_until(a.get(), &wanted)
        && let Some((mb, rest_b)) = members_until(b.get(), &wanted)
    {
        return rest_a == rest_b && members_equal(&ma, &mb, at);
    }
    match (level(a), level(b)) {
        (Some(Level::Object(a)), Some(Level::Object(b))) => members_equal(&a, &b, at),
        (Some(Level::Array(a)), Some(Level::Array(b))) => {
            let mut index = String::new();
            for i in 0..a.len().max(b.len()) {
                index.clear();
                index.push_str(&i.to_string());
                let below = at.child(&index);
                if below.matched() {
                    continue;
                }
                match (a.get(i), b.get(i)) {
                    (Some(va), Some(vb)) if equal_ignoring(va, vb, &below) => {}
                    _ => return false,
                }
            }
            true
        }
        _ => false,
    }
}

/// The parts of `raw` that `at` matches, in their places; `None` when nothing matches.
/// Array elements keep their order, without the elements that matched nothing.
pub fn project(raw: &RawValue, at: &Cursor<'_>, out: &mut String) -> bool {
    if at.matched() {
        out.push_str(raw.get());
        return true;
    }
    if at.leaf() {
        return false;
    }
    let start = out.len();
    let kept = match level(raw) {
        Some(Level::Object(entries)) => {
            out.push('{');
            let mut any = false;
            for (key, value) in entries {
                let mark = out.len();
                if any {
                    out.push(',');
                }
                push_key(out, &key);
                if project(value, &at.child(&key), out) {
                    any = true;
                } else {
                    out.truncate(mark);
                }
            }
            out.push('}');
            any
        }
        Some(Level::Array(items)) => {
            out.push('[');
            let mut any = false;
            for (i, value) in items.into_iter().enumerate() {
                let mark = out.len();
                if any {
                    out.push(',');
                }
                if project(value, &at.child(&i.to_string()), out) {
                    any = true;
                } else {
                    out.truncate(mark);
                }
            }
            out.push(']');
            any
        }
        Some(Level::Scalar) | None => false,
    };
    if !kept {
        out.truncate(start);
    }
    kept
}

fn push_key(out: &mut String, key: &str) {
    // Serializing a str cannot fail.
    out.push_str(&serde_json::to_string(key).unwrap_or_default());
    out.push(':');
}

/// `raw` projected onto `at`: only the matched paths; `{}` when none is there.
pub fn projected(raw: &RawValue, at: &Cursor<'_>) -> Box<RawValue> {
    let mut out = String::with_capacity(raw.get().len() / 4);
    if !project(raw, at, &mut out) {
        out = "{}".into();
    }
    RawValue::from_string(out).unwrap_or_else(|_| raw.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::path_set::PathSet;
    use crate::pointer::Pointer;

    fn raw(v: serde_json::Value) -> Box<RawValue> {
        RawValue::from_string(v.to_string()).expect("json")
    }

    fn paths(pointers: &[&str]) -> PathSet {
        let parsed: Vec<Pointer> = pointers
            .iter()
            .map(|p| Pointer::parse(p).expect("ok"))
            .collect();
        PathSet::new(&parsed)
    }

    #[test]
    fn equality_ignores_only_the_named_paths() {
        use serde_json::json;
        let ignore = paths(&[
            "/metadata/resourceVersion",
            "/metadata/managedFields",
            "/status/conditions/*/lastHeartbeatTime",
        ]);
        let at = ignore.cursor();
        let a = raw(
            json!({"metadata": {"name": "n", "resourceVersion": "1", "managedFields": [{"m": 1}]},
                            "status": {"conditions": [{"type": "Ready", "lastHeartbeatTime": "t1"}]}}),
        );
        let b = raw(json!({"metadata": {"name": "n", "resourceVersion": "2"},
                            "status": {"conditions": [{"type": "Ready", "lastHeartbeatTime": "t2"}]}}));
        assert!(equal_ignoring(&a, &b, &at));
        let c = raw(json!({"metadata": {"name": "n", "resourceVersion": "3"},
                            "status": {"conditions": [{"type": "NotReady", "lastHeartbeatTime": "t2"}]}}));
        assert!(!equal_ignoring(&a, &c, &at));
        let extra = raw(
            json!({"metadata": {"name": "n", "resourceVersion": "2", "labels": {}},
                            "status": {"conditions": [{"type": "Ready", "lastHeartbeatTime": "t2"}]}}),
        );
        assert!(!equal_ignoring(&b, &extra, &at) && !equal_ignoring(&extra, &b, &at));
        let longer = raw(json!({"metadata": {"name": "n"},
                            "status": {"conditions": [{"type": "Ready"}, {"type": "X"}]}}));
        assert!(!equal_ignoring(&b, &longer, &at));
    }

    #[test]
    fn projection_keeps_paths_in_place() {
        use serde_json::json;
        let keep = paths(&["/metadata/name", "/spec/containers/*/image", "/status"]);
        let object = raw(json!({"kind": "Pod", "metadata": {"name": "a", "uid": "u"},
            "spec": {"containers": [{"name": "c", "image": "i1"}, {"name": "d"}, {"image": "i3"}]},
            "status": {"phase": "Running"}}));
        let p = projected(&object, &keep.cursor());
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(p.get()).expect("json"),
            json!({"metadata": {"name": "a"}, "spec": {"containers": [{"image": "i1"}, {"image": "i3"}]},
                   "status": {"phase": "Running"}})
        );
        // Go escapes '&' in keys too: such a key is still matched and kept.
        let escaped =
            RawValue::from_string(r#"{"metadata":{"name":"a"},"status":{"a\u0026b":1}}"#.into())
                .expect("json");
        assert_eq!(
            projected(&escaped, &paths(&["/status/a&b"]).cursor()).get(),
            r#"{"status":{"a&b":1}}"#
        );
        let none = projected(&raw(json!({"kind": "Pod"})), &keep.cursor());
        assert_eq!(none.get(), "{}");
    }
}
