//! Comparing and projecting objects as raw JSON, one level at a time: only the objects
//! and arrays on the way to a named path are split into their members, and everything
//! else is compared or copied as bytes, so no tree of the object is ever built.
//!
//! Byte equality stands for value equality because the API server writes objects
//! canonically (Go's encoding/json: struct fields in declaration order, map keys sorted,
//! no spaces). Two spellings of one value would compare as different, which publishes a
//! change rather than hiding one: the safe side.

use serde_json::value::RawValue;

use super::path_set::Cursor;
use super::scan::{self, Member};

/// One level of a JSON value: its members, its elements, or a scalar.
enum Level<'a> {
    Object(Vec<Member<'a>>),
    Array(Vec<&'a str>),
    Scalar,
}

/// Splits `text` one level; `None` only for text that is not JSON (never, for decoded
/// objects), and the caller then takes the safe answer.
fn level(text: &str) -> Option<Level<'_>> {
    match text.as_bytes().first() {
        Some(b'{') => scan::members(text).map(Level::Object),
        Some(b'[') => scan::elements(text).map(Level::Array),
        _ => Some(Level::Scalar),
    }
}

type Members<'a> = Vec<Member<'a>>;

/// Whether two objects' members are equal once every path `at` matches is left out.
/// `split` holds, for one key, both values already split into their members.
fn members_equal(
    a: &Members<'_>,
    b: &Members<'_>,
    at: &Cursor<'_>,
    split: Option<(&str, &Members<'_>, &Members<'_>)>,
) -> bool {
    let mut compared = 0;
    for (key, va) in a {
        let below = at.child(key.as_ref());
        if below.matched() {
            continue;
        }
        match b.iter().find(|(k, _)| k == key) {
            Some((_, vb)) => {
                compared += 1;
                let equal = match split {
                    Some((k, sa, sb)) if k == key => {
                        va == vb || (!below.leaf() && members_equal(sa, sb, &below, None))
                    }
                    _ => equal_text(va, vb, &below),
                };
                if !equal {
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
    equal_text(a.get(), b.get(), at)
}

/// [`equal_ignoring`] on text known to be JSON.
fn equal_text(a: &str, b: &str, at: &Cursor<'_>) -> bool {
    if at.matched() {
        return true;
    }
    if a == b {
        return true;
    }
    if at.leaf() {
        return false;
    }
    // Objects whose named members all come early (metadata, in the API server's
    // order): split only up to them, and compare what follows as bytes when that is
    // the same in both (where it is not, split both whole below).
    if let Some(wanted) = at.literal_keys()
        && let Some(ea) = scan::members_until(a, &wanted)
        && let Some(eb) = scan::members_until(b, &wanted)
        && ea.rest == eb.rest
    {
        let split = match (&ea.last, &eb.last, ea.members.last(), eb.members.last()) {
            (Some(sa), Some(sb), Some((ka, _)), Some((kb, _))) if ka == kb => {
                Some((ka.as_ref(), sa, sb))
            }
            _ => None,
        };
        return members_equal(&ea.members, &eb.members, at, split);
    }
    match (level(a), level(b)) {
        (Some(Level::Object(a)), Some(Level::Object(b))) => members_equal(&a, &b, at, None),
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
                    (Some(va), Some(vb)) if equal_text(va, vb, &below) => {}
                    _ => return false,
                }
            }
            true
        }
        _ => false,
    }
}

/// The parts of `raw` (text known to be JSON) that `at` matches, in their places;
/// `None` when nothing matches. Array elements keep their order, without the elements
/// that matched nothing.
fn project(raw: &str, at: &Cursor<'_>, out: &mut String) -> bool {
    if at.matched() {
        out.push_str(raw);
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
    if !project(raw.get(), at, &mut out) {
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

    fn pod(rv: u32, fields: u32, heartbeat: u32, label: u32, spec: u32) -> Box<RawValue> {
        use serde_json::json;
        raw(json!({"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": "a&b", "labels": {"app": label.to_string(), "x<y": "z"},
                         "resourceVersion": rv.to_string(),
                         "managedFields": [{"manager": "kubelet", "n": fields}]},
            "spec": {"containers": [{"name": "c", "args": ["--x=\"}]", spec.to_string()]}]},
            "status": {"conditions": [{"type": "Ready", "lastHeartbeatTime": heartbeat.to_string()},
                                      {"type": "Scheduled", "lastHeartbeatTime": "0"}]}}))
    }

    proptest::proptest! {
        /// Only changes outside the ignored paths count, whichever fields change together.
        #[test]
        fn a_change_counts_exactly_when_it_is_outside_the_ignored_paths(
            changed in proptest::collection::vec(proptest::bool::ANY, 5),
        ) {
            let ignore = paths(&[
                "/metadata/resourceVersion",
                "/metadata/managedFields",
                "/status/conditions/*/lastHeartbeatTime",
            ]);
            let step = |i: usize| u32::from(changed[i]);
            let a = pod(1, 1, 1, 1, 1);
            let b = pod(1 + step(0), 1 + step(1), 1 + step(2), 1 + step(3), 1 + step(4));
            let outside = changed[3] || changed[4];
            proptest::prop_assert_eq!(equal_ignoring(&a, &b, &ignore.cursor()), !outside);
            proptest::prop_assert_eq!(equal_ignoring(&b, &a, &ignore.cursor()), !outside);
        }
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
