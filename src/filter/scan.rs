//! Splitting JSON that is already known to be valid into its members or elements,
//! without validating it again.
//!
//! Every object a route sees was validated once, when the informer decoded it (a
//! `RawValue`). serde_json can only split text by parsing it, which validates every
//! byte of every member on the way (three quarters of the filter stage's instructions,
//! under callgrind); here a value's end is found by jumping from quote to quote
//! (`memchr`) and counting brackets, a few instructions per byte of structure and
//! almost none per byte of string. Text that turns out not to be JSON after all gives
//! `None`, never a panic, and the callers then take the safe answer (a change).

use std::borrow::Cow;

/// A member's key (unescaped where it holds escapes: Go writes `<`, `>` and `&` as
/// `\u003c`, `\u003e`, `\u0026`, in keys too) and its value's text.
pub(super) type Member<'a> = (Cow<'a, str>, &'a str);

/// The members of the object `text`, in their order.
pub(super) fn members(text: &str) -> Option<Vec<Member<'_>>> {
    let mut out = Vec::with_capacity(16);
    let mut split = Split::object(text)?;
    while let Some(member) = split.next_member()? {
        out.push(member);
    }
    split.finish().then_some(out)
}

/// An object split up to the members a comparison needs.
pub(super) struct Early<'a> {
    /// The members up to and including the last wanted one (all, if one is missing).
    pub(super) members: Vec<Member<'a>>,
    /// The last wanted member's value split into its members, when it is an object:
    /// split while it was scanned, so the comparison that goes down into it does not
    /// scan it a second time.
    pub(super) last: Option<Vec<Member<'a>>>,
    /// The text after the last member split, which the caller may compare as bytes
    /// instead of splitting it.
    pub(super) rest: &'a str,
}

/// The members of the object `text` up to and including the last of `wanted` (in the
/// object's order), or all of them if some wanted key is not there.
pub(super) fn members_until<'a>(text: &'a str, wanted: &[&str]) -> Option<Early<'a>> {
    let mut seen = vec![false; wanted.len()];
    let mut members = Vec::with_capacity(16);
    let mut split = Split::object(text)?;
    let bytes = text.as_bytes();
    while let Some((key, start)) = split.next_key()? {
        if let Some(i) = wanted.iter().position(|w| *w == key) {
            seen[i] = true;
        }
        if seen.iter().all(|s| *s) {
            let (end, last) = if bytes.get(start) == Some(&b'{') {
                let mut inner = Split::object_at(text, start)?;
                let mut split_members = Vec::with_capacity(16);
                while let Some(member) = inner.next_member()? {
                    split_members.push(member);
                }
                (inner.end(), Some(split_members))
            } else {
                (value_end(bytes, start)?, None)
            };
            members.push((key, text.get(start..end)?));
            return Some(Early {
                members,
                last,
                rest: text.get(end..)?,
            });
        }
        let end = value_end(bytes, start)?;
        split.value_ends_at(end);
        members.push((key, text.get(start..end)?));
    }
    split.finish().then_some(Early {
        members,
        last: None,
        rest: text.get(split.at..)?,
    })
}

/// The elements of the array `text`, in their order.
pub(super) fn elements(text: &str) -> Option<Vec<&str>> {
    let bytes = text.as_bytes();
    if bytes.first() != Some(&b'[') {
        return None;
    }
    let mut at = skip_space(bytes, 1);
    let mut out = Vec::new();
    if *bytes.get(at)? == b']' {
        return Some(out);
    }
    loop {
        let end = value_end(bytes, at)?;
        out.push(text.get(at..end)?);
        at = skip_space(bytes, end);
        match bytes.get(at)? {
            b',' => at = skip_space(bytes, at + 1),
            b']' => return Some(out),
            _ => return None,
        }
    }
}

/// A walk through the members of one object.
struct Split<'a> {
    text: &'a str,
    /// Just after the last member read (or the opening brace).
    at: usize,
    /// No member read yet.
    first: bool,
    done: bool,
}

impl<'a> Split<'a> {
    fn object(text: &'a str) -> Option<Split<'a>> {
        Split::object_at(text, 0)
    }

    /// The object that opens at `start` in `text` (and may be followed by more text).
    fn object_at(text: &'a str, start: usize) -> Option<Split<'a>> {
        (text.as_bytes().get(start) == Some(&b'{')).then_some(Split {
            text,
            at: start + 1,
            first: true,
            done: false,
        })
    }

    /// The next member; `Some(None)` at the closing brace, `None` for text that is not
    /// an object.
    fn next_member(&mut self) -> Option<Option<Member<'a>>> {
        let Some((key, start)) = self.next_key()? else {
            return Some(None);
        };
        let end = value_end(self.text.as_bytes(), start)?;
        self.value_ends_at(end);
        Some(Some((key, self.text.get(start..end)?)))
    }

    /// The next member's key and where its value starts; `Some(None)` at the closing
    /// brace. The caller finds the value's end and says where ([`Split::value_ends_at`]).
    fn next_key(&mut self) -> Option<Option<(Cow<'a, str>, usize)>> {
        let bytes = self.text.as_bytes();
        let mut at = skip_space(bytes, self.at);
        match bytes.get(at)? {
            b'}' => {
                self.done = true;
                self.at = at;
                return Some(None);
            }
            b',' if !self.first => at = skip_space(bytes, at + 1),
            b'"' if self.first => {}
            _ => return None,
        }
        let key_end = string_end(bytes, at)?;
        let key = key(self.text.get(at..key_end)?)?;
        at = skip_space(bytes, key_end);
        if *bytes.get(at)? != b':' {
            return None;
        }
        Some(Some((key, skip_space(bytes, at + 1))))
    }

    fn value_ends_at(&mut self, end: usize) {
        self.at = end;
        self.first = false;
    }

    /// Just after the closing brace, once it has been reached.
    fn end(&self) -> usize {
        self.at + 1
    }

    /// Whether the object ended where expected: nothing but space after its brace.
    fn finish(&self) -> bool {
        self.done && skip_space(self.text.as_bytes(), self.end()) == self.text.len()
    }
}

/// A quoted key without its quotes, unescaped only if it holds an escape.
fn key(quoted: &str) -> Option<Cow<'_, str>> {
    let inner = quoted.get(1..quoted.len() - 1)?;
    if inner.contains('\\') {
        serde_json::from_str::<String>(quoted).ok().map(Cow::Owned)
    } else {
        Some(Cow::Borrowed(inner))
    }
}

fn skip_space(bytes: &[u8], mut at: usize) -> usize {
    while matches!(bytes.get(at), Some(b' ' | b'\n' | b'\r' | b'\t')) {
        at += 1;
    }
    at
}

/// Just after the value that starts at `at`.
fn value_end(bytes: &[u8], at: usize) -> Option<usize> {
    match bytes.get(at)? {
        b'"' => string_end(bytes, at),
        b'{' | b'[' => container_end(bytes, at),
        _ => {
            let len = bytes[at..]
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t'))
                .unwrap_or(bytes.len() - at);
            (len > 0).then_some(at + len)
        }
    }
}

/// Just after the string whose opening quote is at `at`.
fn string_end(bytes: &[u8], at: usize) -> Option<usize> {
    let mut from = at + 1;
    loop {
        let found = from + memchr::memchr2(b'"', b'\\', bytes.get(from..)?)?;
        if bytes[found] == b'"' {
            return Some(found + 1);
        }
        // An escape: the next byte is escaped (a quote or a backslash among them).
        from = found + 2;
    }
}

/// Just after the object or array that opens at `at`.
fn container_end(bytes: &[u8], at: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = at;
    while let Some(b) = bytes.get(i) {
        match b {
            b'"' => {
                i = string_end(bytes, i)?;
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::Value;
    use serde_json::value::RawValue;

    use super::*;

    /// What serde_json says the members are: the reference the scanner must match.
    fn reference(text: &str) -> Vec<(String, String)> {
        let map: std::collections::BTreeMap<String, &RawValue> =
            serde_json::from_str(text).expect("object");
        let mut members: Vec<(String, String)> = map
            .into_iter()
            .map(|(k, v)| (k, v.get().to_owned()))
            .collect();
        members.sort();
        members
    }

    fn scanned(text: &str) -> Vec<(String, String)> {
        let mut members: Vec<(String, String)> = members(text)
            .expect("members")
            .into_iter()
            .map(|(k, v)| (k.into_owned(), v.to_owned()))
            .collect();
        members.sort();
        members
    }

    #[test]
    fn splits_objects_with_escapes_nesting_and_space() {
        let text = r#" {"a\u0026b" : "x\"}]" , "n":[1,{"k":"]"}], "e":{}, "s":"\\", "t":true,"z":-1.5e3 } "#;
        assert_eq!(scanned(text.trim()), reference(text.trim()));
        assert_eq!(members("{}").expect("empty"), vec![]);
        assert_eq!(
            elements(r#"[ 1, "a,]", [2], {"b":[]} ]"#).expect("array"),
            ["1", r#""a,]""#, "[2]", r#"{"b":[]}"#]
        );
        assert_eq!(elements("[]").expect("empty"), Vec::<&str>::new());
    }

    #[test]
    fn stops_after_the_wanted_members() {
        let text = r#"{"kind":"Pod","metadata":{"name":"a"},"spec":{"x":1}}"#;
        let early = members_until(text, &["metadata"]).expect("found");
        assert_eq!(early.members.len(), 2);
        assert_eq!(early.members[1].1, r#"{"name":"a"}"#);
        assert_eq!(early.last.expect("split")[0].1, r#""a""#);
        assert_eq!(early.rest, r#","spec":{"x":1}}"#);
        let early = members_until(text, &["status"]).expect("all split");
        assert_eq!(
            (early.members.len(), early.last.is_none(), early.rest),
            (3, true, "}")
        );
        let early = members_until(text, &["kind"]).expect("a scalar last");
        assert_eq!((early.members.len(), early.last.is_none()), (1, true));
        assert!(members_until("{\"a\":1}}", &["b"]).is_none());
    }

    #[test]
    fn text_that_is_not_json_gives_none_not_a_panic() {
        for bad in [
            "",
            "{",
            "{\"a\"",
            "{\"a\":",
            "{\"a\":1",
            "{\"a\" 1}",
            "[1,",
            "{\"a\":1}}",
            "{,}",
            "{\"a\":\"\\",
            "{\"a\":[}",
        ] {
            assert!(members(bad).is_none(), "{bad:?}");
        }
        assert!(elements("[1 2]").is_none());
    }

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            ".*".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(".*", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn splits_like_serde_json(
            members in prop::collection::btree_map(".*", json(), 0..8),
            pretty in any::<bool>(),
        ) {
            let object = Value::Object(members.into_iter().collect());
            let text = if pretty {
                serde_json::to_string_pretty(&object).expect("json")
            } else {
                serde_json::to_string(&object).expect("json")
            };
            prop_assert_eq!(scanned(&text), reference(&text));
        }
    }
}
