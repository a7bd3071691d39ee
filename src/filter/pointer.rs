//! JSON pointers with a wildcard: the paths `ignoreFields` and `fields` name, and the set
//! of them a route matches against while walking an object.
//!
//! A pointer is RFC 6901 (`/status/conditions/0/type`, `~1` for `/` and `~0` for `~` in
//! a key) with one addition: a segment that is exactly `*` matches any array index or
//! object key. There is no way to name a key that is literally `*`.

use std::collections::BTreeMap;
use std::fmt;

/// One segment of a pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// `*`: any array index or object key.
    Any,
    /// A key, or an array index written as a number (unescaped).
    Key(String),
}

/// A parsed pointer pattern, e.g. `/status/conditions/*/lastHeartbeatTime`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointer {
    text: String,
    segments: Vec<Segment>,
}

/// The most segments a pointer may have: deeper than any Kubernetes object nests, and a
/// bound on the work of matching it.
pub const MAX_SEGMENTS: usize = 64;

impl Pointer {
    /// Parses `text`. The whole document (`""`) is refused: it would ignore or keep
    /// everything, which `--no-suppress` or leaving `fields` out says better.
    pub fn parse(text: &str) -> Result<Pointer, String> {
        let Some(rest) = text.strip_prefix('/') else {
            return Err(format!(
                "{text:?} is not a JSON pointer; write it from the object's root, like /status/phase"
            ));
        };
        let mut segments = Vec::new();
        for raw in rest.split('/') {
            segments.push(if raw == "*" {
                Segment::Any
            } else {
                Segment::Key(unescape(raw).map_err(|e| format!("JSON pointer {text:?}: {e}"))?)
            });
        }
        if segments.len() > MAX_SEGMENTS {
            return Err(format!(
                "JSON pointer {text:?} has {} segments, more than the {MAX_SEGMENTS} accepted",
                segments.len()
            ));
        }
        Ok(Pointer {
            text: text.to_owned(),
            segments,
        })
    }
}

impl fmt::Display for Pointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// RFC 6901: `~1` is `/`, `~0` is `~`, and a `~` before anything else is an error.
fn unescape(raw: &str) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '~' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('0') => out.push('~'),
            Some('1') => out.push('/'),
            _ => return Err("'~' must be followed by 0 (for '~') or 1 (for '/')".into()),
        }
    }
    Ok(out)
}

/// Several pointers as a tree of segments, walked one key at a time alongside an object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathSet {
    /// A pointer ends here: this whole value is matched.
    end: bool,
    /// Children under `*`.
    any: Option<Box<PathSet>>,
    /// Children under a literal key.
    keys: BTreeMap<String, PathSet>,
}

impl PathSet {
    /// The set of `pointers`.
    pub fn new<'a>(pointers: impl IntoIterator<Item = &'a Pointer>) -> PathSet {
        let mut set = PathSet::default();
        for p in pointers {
            let mut node = &mut set;
            for s in &p.segments {
                node = match s {
                    Segment::Any => node.any.get_or_insert_with(Default::default),
                    Segment::Key(k) => node.keys.entry(k.clone()).or_default(),
                };
            }
            node.end = true;
        }
        set
    }

    /// The root of the set, as a cursor.
    pub fn cursor(&self) -> Cursor<'_> {
        Cursor(vec![self])
    }
}

/// Where a walk stands in a [`PathSet`]: every node a path so far can be at (with `*`,
/// a key can lead to several).
#[derive(Debug, Clone)]
pub struct Cursor<'a>(Vec<&'a PathSet>);

impl<'a> Cursor<'a> {
    /// Moves into `key` (an object key, or an array index as decimal).
    pub fn child(&self, key: &str) -> Cursor<'a> {
        let mut next = Vec::new();
        for node in &self.0 {
            if let Some(k) = node.keys.get(key) {
                next.push(k);
            }
            if let Some(any) = &node.any {
                next.push(any);
            }
        }
        Cursor(next)
    }

    /// Whether a pointer ends here: the value here is matched as a whole.
    pub fn matched(&self) -> bool {
        self.0.iter().any(|n| n.end)
    }

    /// The keys a pointer goes on into from here, when all are literal (no `*`).
    pub fn literal_keys(&self) -> Option<Vec<&'a str>> {
        if self.0.iter().any(|n| n.any.is_some()) {
            return None;
        }
        let mut keys: Vec<&'a str> = Vec::new();
        for node in &self.0 {
            for k in node.keys.keys() {
                if !keys.contains(&k.as_str()) {
                    keys.push(k);
                }
            }
        }
        Some(keys)
    }

    /// Whether no pointer goes on below here.
    pub fn leaf(&self) -> bool {
        self.0.iter().all(|n| n.any.is_none() && n.keys.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(pointers: &[&str]) -> PathSet {
        let parsed: Vec<Pointer> = pointers
            .iter()
            .map(|p| Pointer::parse(p).expect("valid"))
            .collect();
        PathSet::new(&parsed)
    }

    fn walk<'a>(set: &'a PathSet, path: &[&str]) -> Cursor<'a> {
        path.iter().fold(set.cursor(), |c, k| c.child(k))
    }

    #[test]
    fn wildcards_match_any_index_or_key() {
        let s = set(&["/status/conditions/*/lastHeartbeatTime"]);
        for index in ["0", "7"] {
            let at = walk(&s, &["status", "conditions", index, "lastHeartbeatTime"]);
            assert!(at.matched(), "{index}");
        }
        assert!(!walk(&s, &["status", "conditions", "0", "type"]).matched());
        assert!(
            walk(&s, &["status", "conditions", "0", "type"])
                .0
                .is_empty()
        );
        let keys = set(&["/metadata/annotations/*"]);
        assert!(walk(&keys, &["metadata", "annotations", "anything"]).matched());
        assert!(!walk(&keys, &["metadata", "annotations"]).matched());
        assert!(!walk(&keys, &["metadata", "annotations"]).leaf());
    }

    #[test]
    fn escapes_follow_rfc_6901() {
        let s = set(&["/metadata/annotations/example.com~1owner", "/a~0b", "/~01"]);
        assert!(walk(&s, &["metadata", "annotations", "example.com/owner"]).matched());
        assert!(walk(&s, &["a~b"]).matched());
        // ~01 is "~1" (the ~0 is decoded first, the 1 stays), not "/".
        assert!(walk(&s, &["~1"]).matched());
        assert!(!walk(&s, &["/"]).matched());
        for bad in ["/a~2", "/a~", "status", ""] {
            assert!(Pointer::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn arrays_by_index_and_overlapping_patterns() {
        let s = set(&["/spec/containers/0/image", "/spec/containers/*/name"]);
        let first = walk(&s, &["spec", "containers", "0"]);
        assert!(!first.matched());
        assert!(first.child("image").matched() && first.child("name").matched());
        let second = walk(&s, &["spec", "containers", "1"]);
        assert!(!second.child("image").matched() && second.child("name").matched());
        assert!(walk(&s, &["spec", "containers", "1", "name"]).leaf());
    }

    #[test]
    fn too_deep_is_refused() {
        let deep = "/a".repeat(MAX_SEGMENTS + 1);
        assert!(
            Pointer::parse(&deep)
                .expect_err("deep")
                .contains("segments")
        );
        assert!(Pointer::parse(&"/a".repeat(MAX_SEGMENTS)).is_ok());
    }
}
