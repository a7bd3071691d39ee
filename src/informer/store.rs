//! The cache: the last known state of every object an informer has seen, by key.
//!
//! Plain (`--cache-compression none`), it holds each object's JSON as the `Arc` the
//! notifications share. Compressed (`zstd`), it holds each object zstd-compressed with a
//! dictionary trained on the informer's first objects (see [`packer`](super::packer)),
//! and decompresses only when the old bytes are needed: a MODIFIED's `oldObject`, the last
//! state of what a relist found gone, a resync replay, `/cache`. The identity fields stay
//! uncompressed in both: the diff and the checkpoint read them on every change.

use std::collections::HashMap;
use std::sync::Arc;

use prometheus::IntCounter;
use serde_json::value::RawValue;

use super::RawObject;
use super::packer::{MIN_SAMPLES, Packer, TRAIN_AFTER};

/// How the cache holds objects (`--cache-compression`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheCompression {
    /// Each object's JSON as received, shared with the notifications.
    #[default]
    None,
    /// zstd with a per-informer dictionary.
    Zstd,
}

impl CacheCompression {
    /// The flag's and the config file's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheCompression::None => "none",
            CacheCompression::Zstd => "zstd",
        }
    }
}

/// One cached object: its identity, and its JSON, plain or compressed.
#[derive(Debug)]
pub struct Entry {
    /// `metadata.namespace`; `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.uid`.
    pub uid: String,
    /// `metadata.resourceVersion`.
    pub resource_version: String,
    body: Body,
}

#[derive(Debug)]
enum Body {
    Plain(Arc<RawValue>),
    Packed { bytes: Box<[u8]>, json_len: u32 },
}

impl Entry {
    /// `namespace/name`, or `name` for cluster-scoped objects: the cache key.
    pub fn key(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }

    fn json_len(&self) -> usize {
        match &self.body {
            Body::Plain(raw) => raw.get().len(),
            Body::Packed { json_len, .. } => *json_len as usize,
        }
    }

    fn held_len(&self) -> usize {
        match &self.body {
            Body::Plain(raw) => raw.get().len(),
            Body::Packed { bytes, .. } => bytes.len(),
        }
    }
}

/// A cached object whose compressed JSON could not be read back (counted in
/// `kubebridge_cache_unreadable_total` and logged where it happened).
#[derive(Debug, thiserror::Error)]
#[error("cached object {key} could not be decompressed ({reason})")]
pub struct Unreadable {
    /// The object's cache key.
    pub key: String,
    reason: String,
}

/// Objects by `namespace/name`.
#[derive(Debug)]
pub struct Store {
    objects: HashMap<String, Entry>,
    json_bytes: usize,
    held_bytes: usize,
    compression: CacheCompression,
    /// Once trained (zstd only).
    packer: Option<Packer>,
    unreadable: IntCounter,
}

impl Default for Store {
    fn default() -> Self {
        let counter = IntCounter::new("cache_unreadable", "unregistered").expect("a valid name");
        Store::new(CacheCompression::None, counter)
    }
}

impl Store {
    /// An empty cache holding objects as `compression` says, counting entries it could
    /// not read back in `unreadable`.
    pub fn new(compression: CacheCompression, unreadable: IntCounter) -> Store {
        Store {
            objects: HashMap::new(),
            json_bytes: 0,
            held_bytes: 0,
            compression,
            packer: None,
            unreadable,
        }
    }

    /// The object under `key`, if cached.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.objects.get(key)
    }

    /// The JSON of `entry` (one of this cache's): the shared `Arc` if held plain,
    /// decompressed otherwise. An entry that cannot be read is counted and logged.
    pub fn raw(&self, entry: &Entry) -> Result<Arc<RawValue>, Unreadable> {
        let (bytes, json_len) = match &entry.body {
            Body::Plain(raw) => return Ok(raw.clone()),
            Body::Packed { bytes, json_len } => (bytes, *json_len as usize),
        };
        let result = match &self.packer {
            Some(packer) => packer.unpack(bytes, json_len).map(Arc::from),
            None => Err(std::io::Error::other("no dictionary")),
        };
        result.map_err(|e| {
            self.unreadable.inc();
            let key = entry.key();
            tracing::error!(%key, error = %e, "a cached object could not be decompressed; its old state is treated as unknown");
            Unreadable {
                key,
                reason: e.to_string(),
            }
        })
    }

    /// Caches `object`, returning what it replaced.
    pub fn insert(&mut self, object: RawObject) -> Option<Entry> {
        let key = object.key();
        let body = self.body(object.raw);
        let entry = Entry {
            namespace: object.namespace,
            name: object.name,
            uid: object.uid,
            resource_version: object.resource_version,
            body,
        };
        let old = self.restore(key, entry);
        if self.untrained() && self.objects.len() >= TRAIN_AFTER {
            self.train();
        }
        old
    }

    /// Puts back an entry taken with [`Store::take`], returning what it replaced.
    pub fn restore(&mut self, key: String, entry: Entry) -> Option<Entry> {
        self.json_bytes += entry.json_len();
        self.held_bytes += entry.held_len();
        let old = self.objects.insert(key, entry);
        if let Some(old) = &old {
            self.forget(old);
        }
        old
    }

    /// The initial list is in: a compressed cache trains its dictionary now if it has
    /// not yet and holds enough objects to learn from.
    pub fn listed(&mut self) {
        if self.untrained() && self.objects.len() >= MIN_SAMPLES {
            self.train();
        }
    }

    /// Removes and returns the object under `key`.
    pub fn remove(&mut self, key: &str) -> Option<Entry> {
        let old = self.objects.remove(key);
        if let Some(old) = &old {
            self.forget(old);
        }
        old
    }

    fn untrained(&self) -> bool {
        self.compression == CacheCompression::Zstd && self.packer.is_none()
    }

    fn forget(&mut self, entry: &Entry) {
        self.json_bytes -= entry.json_len();
        self.held_bytes -= entry.held_len();
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

    /// What the cached objects' JSON takes as held: compressed sizes plus the
    /// dictionary, or the JSON itself when plain.
    pub fn held_bytes(&self) -> usize {
        self.held_bytes + self.packer.as_ref().map_or(0, Packer::dictionary_bytes)
    }

    /// The heap the cache owns, counted allocation by allocation (the map's slots, keys,
    /// identity strings, the JSON or compressed bytes, the dictionary; not the
    /// allocator's own overhead): O(n), for benchmarks.
    pub fn heap_bytes(&self) -> usize {
        let slot = std::mem::size_of::<(String, Entry)>() + 1;
        let arc_counts = 2 * std::mem::size_of::<usize>();
        let owned: usize = self
            .objects
            .iter()
            .map(|(key, e)| {
                let strings = key.capacity()
                    + e.namespace.as_ref().map_or(0, String::capacity)
                    + e.name.capacity()
                    + e.uid.capacity()
                    + e.resource_version.capacity();
                let body = match &e.body {
                    Body::Plain(raw) => raw.get().len() + arc_counts,
                    Body::Packed { bytes, .. } => bytes.len(),
                };
                strings + body
            })
            .sum();
        self.objects.capacity() * slot
            + owned
            + self.packer.as_ref().map_or(0, Packer::dictionary_bytes)
    }

    /// Every cached object, in no particular order: for a caller that takes what it
    /// needs (an `Arc` of each object's JSON, say) and sorts after releasing the lock.
    pub fn objects(&self) -> impl Iterator<Item = &Entry> {
        self.objects.values()
    }

    /// Every cached object, ordered by key so replays are deterministic.
    pub fn sorted(&self) -> Vec<&Entry> {
        let mut all: Vec<&Entry> = self.objects.values().collect();
        all.sort_unstable_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        all
    }

    /// Empties the cache, returning everything it held (the dictionary stays).
    pub fn take(&mut self) -> HashMap<String, Entry> {
        self.json_bytes = 0;
        self.held_bytes = 0;
        std::mem::take(&mut self.objects)
    }

    /// How `raw` is held: plain until the dictionary is trained (or always, uncompressed).
    fn body(&mut self, raw: Arc<RawValue>) -> Body {
        match &mut self.packer {
            Some(packer) => packed(packer, raw),
            None => Body::Plain(raw),
        }
    }

    /// Trains the dictionary on the objects held so far (all plain until now) and
    /// compresses them with it.
    fn train(&mut self) {
        let samples: Vec<&[u8]> = self
            .objects
            .values()
            .take(TRAIN_AFTER)
            .filter_map(|e| match &e.body {
                Body::Plain(raw) => Some(raw.get().as_bytes()),
                Body::Packed { .. } => None,
            })
            .collect();
        let packer = match Packer::train(&samples) {
            Ok(packer) => packer,
            Err(e) => {
                // zstd could not even allocate a context: stay plain, and say so once.
                tracing::warn!(error = %e, "could not set up cache compression; caching plain");
                self.compression = CacheCompression::None;
                return;
            }
        };
        let packer = self.packer.insert(packer);
        // Each body in place: no key is copied, no entry moved or hashed again.
        for entry in self.objects.values_mut() {
            if let Body::Plain(raw) = &entry.body {
                let plain = entry.held_len();
                entry.body = packed(packer, raw.clone());
                self.held_bytes = self.held_bytes - plain + entry.held_len();
            }
        }
    }

    /// Damages the compressed bytes of the entry under `key`, as a memory fault would.
    #[cfg(test)]
    pub(crate) fn damage(&mut self, key: &str) {
        if let Some(Entry {
            body: Body::Packed { bytes, .. },
            ..
        }) = self.objects.get_mut(key)
        {
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0xff;
        }
    }

    /// Whether the entry under `key` is held compressed.
    #[cfg(test)]
    pub(crate) fn is_packed(&self, key: &str) -> bool {
        matches!(
            self.objects.get(key).map(|e| &e.body),
            Some(Body::Packed { .. })
        )
    }
}

/// `raw` compressed with `packer`; plain where it cannot be.
fn packed(packer: &mut Packer, raw: Arc<RawValue>) -> Body {
    let json = raw.get();
    match (packer.pack(json.as_bytes()), u32::try_from(json.len())) {
        (Ok(bytes), Ok(json_len)) => Body::Packed { bytes, json_len },
        (Err(e), _) => {
            tracing::warn!(error = %e, "could not compress an object; caching it plain");
            Body::Plain(raw)
        }
        // Over 4 GiB: no API server sends that; kept plain rather than refused.
        (_, Err(_)) => Body::Plain(raw),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::informer::packer::{MIN_SAMPLES, TRAIN_AFTER};
    use crate::informer::testing::{pod, pod_text};

    fn zstd_store() -> (Store, IntCounter) {
        let counter = IntCounter::new("unreadable", "test").expect("counter");
        (Store::new(CacheCompression::Zstd, counter.clone()), counter)
    }

    fn key(i: usize) -> String {
        pod(i, 1).key()
    }

    #[test]
    fn plain_cache_hands_out_the_shared_json() {
        let mut store = Store::default();
        let object = pod(1, 1);
        let arc = object.raw.clone();
        store.insert(object);
        let entry = store.get(&key(1)).expect("cached");
        assert!(Arc::ptr_eq(&store.raw(entry).expect("plain"), &arc));
        assert_eq!(store.held_bytes(), store.json_bytes());
    }

    #[test]
    fn dictionary_is_trained_after_the_first_objects_and_earlier_ones_stay_readable() {
        let (mut store, unreadable) = zstd_store();
        for i in 0..TRAIN_AFTER - 1 {
            store.insert(pod(i, 1));
        }
        assert!(!store.is_packed(&key(0)), "plain until trained");
        store.insert(pod(TRAIN_AFTER - 1, 1));
        store.insert(pod(TRAIN_AFTER, 1));
        for i in [0, 1, TRAIN_AFTER / 2, TRAIN_AFTER - 1, TRAIN_AFTER] {
            assert!(store.is_packed(&key(i)), "object {i} compressed");
            let entry = store.get(&key(i)).expect("cached");
            assert_eq!(store.raw(entry).expect("readable").get(), pod_text(i, 1));
        }
        let json: usize = (0..=TRAIN_AFTER).map(|i| pod_text(i, 1).len()).sum();
        assert_eq!(store.json_bytes(), json);
        // The dictionary is counted: what is held is still a fraction of the JSON.
        assert!(
            store.held_bytes() * 2 < json,
            "held {} of {json}",
            store.held_bytes()
        );
        assert_eq!(unreadable.get(), 0);
    }

    #[test]
    fn a_small_initial_list_trains_when_listed_and_a_tiny_one_stays_plain() {
        let (mut store, _) = zstd_store();
        for i in 0..MIN_SAMPLES - 1 {
            store.insert(pod(i, 1));
        }
        store.listed();
        assert!(!store.is_packed(&key(0)));
        store.insert(pod(MIN_SAMPLES, 1));
        store.listed();
        assert!(store.is_packed(&key(0)));
        // Replacing, removing and taking keep the byte counts exact.
        store.insert(pod(0, 2));
        store.remove(&key(1));
        let entry = store.get(&key(0)).expect("cached");
        assert_eq!(store.raw(entry).expect("readable").get(), pod_text(0, 2));
        let json: usize = (0..=MIN_SAMPLES)
            .filter(|i| *i != 1 && *i != MIN_SAMPLES - 1)
            .map(|i| pod_text(i, if i == 0 { 2 } else { 1 }).len())
            .sum();
        assert_eq!(store.json_bytes(), json);
        let taken = store.take();
        assert_eq!((store.json_bytes(), store.len()), (0, 0));
        for (key, entry) in taken {
            store.restore(key, entry);
        }
        assert_eq!(store.json_bytes(), json);
    }

    #[test]
    fn tiny_objects_compress_and_read_back_with_or_without_a_dictionary() {
        let (mut store, unreadable) = zstd_store();
        let tiny = |i: usize| crate::informer::testing::obj(&format!("p{i}"), &format!("u{i}"), 1);
        for i in 0..MIN_SAMPLES {
            store.insert(tiny(i));
        }
        store.listed();
        assert!(store.is_packed("ns/p0"));
        for i in 0..MIN_SAMPLES {
            let entry = store.get(&format!("ns/p{i}")).expect("cached");
            assert_eq!(store.raw(entry).expect("readable").get(), tiny(i).raw.get());
        }
        assert_eq!(unreadable.get(), 0);
    }

    #[test]
    fn a_damaged_entry_is_an_error_counted_never_other_json() {
        let (mut store, unreadable) = zstd_store();
        for i in 0..MIN_SAMPLES {
            store.insert(pod(i, 1));
        }
        store.listed();
        store.damage(&key(3));
        let entry = store.get(&key(3)).expect("cached");
        let err = store.raw(entry).expect_err("damaged");
        assert_eq!(err.key, key(3));
        assert_eq!(unreadable.get(), 1);
        let other = store.get(&key(4)).expect("cached");
        assert_eq!(store.raw(other).expect("intact").get(), pod_text(4, 1));
    }
}
