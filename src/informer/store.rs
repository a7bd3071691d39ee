//! The cache: the last known state of every object an informer has seen, by key.

use std::collections::HashMap;

use super::RawObject;

/// Objects by `namespace/name`. Holds raw JSON, so its memory is about the size of the
/// objects' JSON plus a small fixed cost per object.
#[derive(Debug, Default)]
pub struct Store {
    objects: HashMap<String, RawObject>,
    json_bytes: usize,
}

impl Store {
    /// The object under `key`, if cached.
    pub fn get(&self, key: &str) -> Option<&RawObject> {
        self.objects.get(key)
    }

    /// Caches `object`, returning what it replaced.
    pub fn insert(&mut self, object: RawObject) -> Option<RawObject> {
        self.json_bytes += object.json_len();
        let old = self.objects.insert(object.key(), object);
        if let Some(old) = &old {
            self.json_bytes -= old.json_len();
        }
        old
    }

    /// Removes and returns the object under `key`.
    pub fn remove(&mut self, key: &str) -> Option<RawObject> {
        let old = self.objects.remove(key);
        if let Some(old) = &old {
            self.json_bytes -= old.json_len();
        }
        old
    }

    /// Number of cached objects.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// Total size of the cached objects' JSON.
    pub fn json_bytes(&self) -> usize {
        self.json_bytes
    }

    /// Every cached object, in no particular order: for a caller that takes what it
    /// needs (an `Arc` of each object's JSON, say) and sorts after releasing the lock.
    pub fn objects(&self) -> impl Iterator<Item = &RawObject> {
        self.objects.values()
    }

    /// Every cached object, ordered by key so replays are deterministic.
    pub fn sorted(&self) -> Vec<&RawObject> {
        let mut all: Vec<&RawObject> = self.objects.values().collect();
        all.sort_unstable_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        all
    }

    /// Empties the cache, returning everything it held.
    pub fn take(&mut self) -> HashMap<String, RawObject> {
        self.json_bytes = 0;
        std::mem::take(&mut self.objects)
    }
}
