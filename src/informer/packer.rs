//! The compressed cache's codec: zstd with a dictionary trained on the first objects of
//! one informer. Objects of one kind share nearly all their keys and many of their
//! values, so a dictionary trained on a thousand of them lets each object compress to a
//! fraction of what it would alone.

use std::io;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use serde_json::value::RawValue;
use zstd::bulk::{Compressor, Decompressor};
use zstd::zstd_safe::CParameter;

/// The dictionary is trained once the cache holds this many objects...
pub const TRAIN_AFTER: usize = 1_000;
/// ...or at the end of a smaller initial list of at least this many (fewer is too few
/// to learn from, and too few to be worth compressing).
pub const MIN_SAMPLES: usize = 32;
/// The dictionary's size bound: large enough to hold an object kind's common text, small
/// next to the cache it serves.
pub const DICTIONARY_BYTES: usize = 112 * 1024;
/// zstd level 3 (its default): with a dictionary, higher levels gain little on objects
/// of a few KB and cost more per change.
const LEVEL: i32 = 3;

/// A compressor and decompressor sharing one dictionary (or none, when training failed).
pub(crate) struct Packer {
    compressor: Compressor<'static>,
    /// Reads happen under the cache's read lock, from several tasks at once.
    decompressor: Mutex<Decompressor<'static>>,
    dictionary_bytes: usize,
}

impl std::fmt::Debug for Packer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packer")
            .field("dictionary_bytes", &self.dictionary_bytes)
            .finish_non_exhaustive()
    }
}

impl Packer {
    /// A packer with a dictionary trained on `samples`; without a dictionary if zstd
    /// cannot train one from them (too few, too alike), which still compresses, less.
    pub(crate) fn train(samples: &[&[u8]]) -> io::Result<Packer> {
        let started = Instant::now();
        let dictionary = match zstd::dict::from_samples(samples, DICTIONARY_BYTES) {
            Ok(dictionary) => dictionary,
            Err(e) => {
                tracing::warn!(samples = samples.len(), error = %e, "could not train a cache dictionary; compressing without one");
                Vec::new()
            }
        };
        tracing::debug!(
            samples = samples.len(),
            dictionary = dictionary.len(),
            ms = started.elapsed().as_millis() as u64,
            "trained the cache dictionary"
        );
        Packer::with_dictionary(&dictionary)
    }

    /// A packer using `dictionary` (empty: none).
    pub(crate) fn with_dictionary(dictionary: &[u8]) -> io::Result<Packer> {
        let mut compressor = Compressor::with_dictionary(LEVEL, dictionary)?;
        // A checksum so a damaged entry is an error, never different JSON; no dictionary
        // id, since a cache only ever has the one dictionary.
        compressor.set_parameter(CParameter::ChecksumFlag(true))?;
        compressor.set_parameter(CParameter::DictIdFlag(false))?;
        Ok(Packer {
            compressor,
            decompressor: Mutex::new(Decompressor::with_dictionary(dictionary)?),
            dictionary_bytes: dictionary.len(),
        })
    }

    /// Size of the dictionary.
    pub(crate) fn dictionary_bytes(&self) -> usize {
        self.dictionary_bytes
    }

    /// `json` compressed, in an allocation of exactly its size.
    pub(crate) fn pack(&mut self, json: &[u8]) -> io::Result<Box<[u8]>> {
        Ok(self.compressor.compress(json)?.into_boxed_slice())
    }

    /// The JSON `packed` holds (`json_len` bytes), checked: a damaged entry is an error.
    pub(crate) fn unpack(&self, packed: &[u8], json_len: usize) -> io::Result<Box<RawValue>> {
        let bytes = self
            .decompressor
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .decompress(packed, json_len)?;
        let text = String::from_utf8(bytes).map_err(io::Error::other)?;
        RawValue::from_string(text).map_err(io::Error::other)
    }
}
