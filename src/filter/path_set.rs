//! The set of pointers a route's `ignoreFields` or `fields` name, as a tree walked one
//! key at a time alongside an object (the pointers themselves are [`crate::pointer`]).

use std::collections::BTreeMap;

use crate::pointer::{Pointer, Segment};

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
            for s in p.segments() {
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
}
