//! The checkpoint format: a 4-byte magic, a 2-byte version, then one zstd frame (with its
//! content checksum) of JSON holding whose checkpoint it is and the index, one
//! `[key, uid, resourceVersion]` triple per object, sorted by key.
//!
//! Versioned in the clear, so an incompatible file is recognised without decompressing
//! it; checksummed, so a truncated or damaged one is refused rather than half-read.

use serde::{Deserialize, Serialize};

use super::tracker::{Confirmed, Known};

/// The bytes every checkpoint starts with.
const MAGIC: &[u8; 4] = b"KBCK";
/// The version this build writes and reads.
pub const VERSION: u16 = 1;
/// zstd level 3 (zstd's default): 100 000 entries compress in tens of milliseconds;
/// higher levels cost far more time for a few percent.
const LEVEL: i32 = 3;
/// The largest checkpoint decompressed (about 5 million objects): a corrupt length
/// cannot make a start-up allocate without bound.
const MAX_DECODED: usize = 1 << 30;

/// One informer's checkpoint, as written.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// The cluster: the uid of its kube-system namespace.
    pub cluster: String,
    /// The informer: its resource, scope and selectors (see `identity`).
    pub informer: String,
    /// When it was written (Unix milliseconds).
    pub written_at_ms: u64,
    /// The confirmed point.
    pub confirmed: Confirmed,
}

/// The JSON inside the frame.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Body {
    cluster: String,
    informer: String,
    written_at_ms: u64,
    resource_version: String,
    seq: u64,
    objects: Vec<(String, String, String)>,
}

/// Why bytes are not a checkpoint this build can use.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormatError {
    /// Not a kubebridge checkpoint, or cut short before its header ends.
    #[error("not a kubebridge checkpoint (no KBCK header)")]
    NotACheckpoint,
    /// Written by a kubebridge with another format.
    #[error("checkpoint format version {found}; this kubebridge reads version {VERSION}")]
    Version {
        /// The version it says it is.
        found: u16,
    },
    /// Truncated or damaged after the header.
    #[error("checkpoint is truncated or corrupt: {0}")]
    Corrupt(String),
}

impl FormatError {
    /// The `outcome` label of `kubebridge_checkpoint_resumes_total` for this error.
    pub(crate) fn outcome(&self) -> &'static str {
        match self {
            FormatError::Version { .. } => "wrong_version",
            FormatError::NotACheckpoint | FormatError::Corrupt(_) => "corrupt",
        }
    }
}

impl Checkpoint {
    /// The bytes to store.
    pub fn encode(&self) -> Vec<u8> {
        let mut objects: Vec<(String, String, String)> = self
            .confirmed
            .index
            .iter()
            .map(|(k, v)| (k.clone(), v.uid.clone(), v.resource_version.clone()))
            .collect();
        objects.sort_unstable();
        let body = Body {
            cluster: self.cluster.clone(),
            informer: self.informer.clone(),
            written_at_ms: self.written_at_ms,
            resource_version: self.confirmed.resource_version.clone(),
            seq: self.confirmed.seq,
            objects,
        };
        // Serializing strings and integers cannot fail.
        let json = serde_json::to_vec(&body).expect("a checkpoint body always serializes");
        let mut out = Vec::with_capacity(json.len() / 4 + 6);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        let mut encoder = zstd::stream::Encoder::new(out, LEVEL).expect("level 3 is valid");
        // Into a Vec: writing cannot fail.
        let _ = encoder.include_checksum(true);
        std::io::Write::write_all(&mut encoder, &json).expect("writing to a Vec");
        encoder.finish().expect("writing to a Vec")
    }

    /// The checkpoint in `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Checkpoint, FormatError> {
        let Some(rest) = bytes.strip_prefix(MAGIC) else {
            return Err(FormatError::NotACheckpoint);
        };
        let (Some(version), Some(frame)) = (rest.get(..2), rest.get(2..)) else {
            return Err(FormatError::NotACheckpoint);
        };
        let found = u16::from_le_bytes([version[0], version[1]]);
        if found != VERSION {
            return Err(FormatError::Version { found });
        }
        let json = decompress(frame)?;
        let body: Body =
            serde_json::from_slice(&json).map_err(|e| FormatError::Corrupt(e.to_string()))?;
        let index = body
            .objects
            .into_iter()
            .map(|(key, uid, resource_version)| {
                (
                    key,
                    Known {
                        uid,
                        resource_version,
                    },
                )
            })
            .collect();
        Ok(Checkpoint {
            cluster: body.cluster,
            informer: body.informer,
            written_at_ms: body.written_at_ms,
            confirmed: Confirmed {
                index,
                resource_version: body.resource_version,
                seq: body.seq,
            },
        })
    }
}

/// Decompresses one whole frame, refusing one cut short, damaged, or over
/// [`MAX_DECODED`].
fn decompress(frame: &[u8]) -> Result<Vec<u8>, FormatError> {
    use std::io::Read;
    let corrupt = |e: std::io::Error| FormatError::Corrupt(e.to_string());
    let decoder = zstd::stream::Decoder::new(frame).map_err(corrupt)?;
    let mut json = Vec::new();
    decoder
        .take(MAX_DECODED as u64 + 1)
        .read_to_end(&mut json)
        .map_err(corrupt)?;
    if json.len() > MAX_DECODED {
        return Err(FormatError::Corrupt(format!(
            "over {MAX_DECODED} bytes decompressed"
        )));
    }
    Ok(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample(objects: usize) -> Checkpoint {
        let mut confirmed = Confirmed {
            resource_version: "99".into(),
            seq: 7,
            ..Confirmed::default()
        };
        for i in 0..objects {
            confirmed.index.insert(
                format!("ns/pod-{i}"),
                Known {
                    uid: format!("uid-{i}"),
                    resource_version: (i + 10).to_string(),
                },
            );
        }
        Checkpoint {
            cluster: "c-uid".into(),
            informer: "pods|ns|-|-".into(),
            written_at_ms: 1_700_000_000_000,
            confirmed,
        }
    }

    #[test]
    fn round_trips() {
        let c = sample(50);
        assert_eq!(Checkpoint::decode(&c.encode()), Ok(c));
    }

    #[test]
    fn refuses_what_it_cannot_trust() {
        let bytes = sample(2000).encode();
        assert_eq!(
            Checkpoint::decode(b"{\"json\": true}"),
            Err(FormatError::NotACheckpoint)
        );
        assert_eq!(Checkpoint::decode(b"KBC"), Err(FormatError::NotACheckpoint));
        let mut v2 = bytes.clone();
        v2[4] = 2;
        assert_eq!(
            Checkpoint::decode(&v2),
            Err(FormatError::Version { found: 2 })
        );
        assert_eq!(
            Checkpoint::decode(&v2).expect_err("v2").outcome(),
            "wrong_version"
        );
        for cut in [6, 20, bytes.len() / 2, bytes.len() - 1] {
            let err = Checkpoint::decode(&bytes[..cut]).expect_err("truncated");
            assert!(matches!(err, FormatError::Corrupt(_)), "{cut}: {err:?}");
        }
        let mut flipped = bytes.clone();
        let mid = bytes.len() / 2;
        flipped[mid] ^= 0x55;
        assert!(Checkpoint::decode(&flipped).is_err(), "a flipped byte");
    }
}
