//! The redaction key and the keyed hash that replaces a redacted value: consumers see
//! that a value changed, and which keys exist, never the value (a plain SHA-256 of a
//! low-entropy password is brute-forced in seconds; an HMAC without the key is not).

use std::fmt;
use std::sync::{Arc, OnceLock};

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// What every redacted value starts with.
pub const PREFIX: &str = "hmac-sha256:";

/// Where the key came from, for `check-config` and the start-up log (never the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `--redaction-key-file` or the file's `redactionKeyFile`.
    File(std::path::PathBuf),
    /// The `KUBEBRIDGE_REDACTION_KEY` environment variable.
    Env,
    /// Neither: random, drawn once per process from the OS.
    Random,
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::File(path) => write!(f, "from file {}", path.display()),
            KeySource::Env => write!(f, "from the environment ({KEY_ENV})"),
            KeySource::Random => f.write_str(
                "random per process (hashes change across restarts; set --redaction-key-file or KUBEBRIDGE_REDACTION_KEY)",
            ),
        }
    }
}

/// The environment variable holding the key's bytes.
pub const KEY_ENV: &str = "KUBEBRIDGE_REDACTION_KEY";

/// The HMAC key. Its `Debug` never shows the bytes.
#[derive(Clone)]
pub struct RedactionKey {
    bytes: Arc<[u8]>,
    /// The HMAC with the key already absorbed, cloned for each value (the key's two
    /// padded blocks are hashed once, not per value).
    mac: Hmac<Sha256>,
    source: KeySource,
}

impl fmt::Debug for RedactionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedactionKey({})", self.source)
    }
}

impl PartialEq for RedactionKey {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes && self.source == other.source
    }
}

impl RedactionKey {
    /// A key of these bytes, which came from `source`.
    pub fn new(bytes: Vec<u8>, source: KeySource) -> RedactionKey {
        RedactionKey {
            mac: Hmac::<Sha256>::new_from_slice(&bytes).expect("HMAC takes a key of any length"),
            bytes: bytes.into(),
            source,
        }
    }

    /// The process's random key: 32 bytes from the OS, drawn once, so two `watch` runs
    /// in one process hash alike.
    pub fn random() -> RedactionKey {
        static KEY: OnceLock<Arc<[u8]>> = OnceLock::new();
        let bytes = KEY.get_or_init(|| {
            let mut bytes = [0u8; 32];
            // Without an OS random source there is no safe key: better to stop than to
            // hash with a guessable one.
            getrandom::fill(&mut bytes).expect("the OS random number generator is available");
            bytes.into()
        });
        RedactionKey::new(bytes.to_vec(), KeySource::Random)
    }

    /// Reads the key from `path`: its contents with trailing newlines trimmed. The error
    /// names the file and never its contents.
    pub fn from_file(path: &std::path::Path, flag: &str) -> Result<RedactionKey, String> {
        let mut bytes = std::fs::read(path)
            .map_err(|e| format!("{flag} {}: cannot read it: {e}", path.display()))?;
        while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            bytes.pop();
        }
        if bytes.is_empty() {
            return Err(format!(
                "{flag} {}: the file is empty; put the redaction key (any bytes, 32 or more recommended) in it",
                path.display()
            ));
        }
        Ok(RedactionKey::new(bytes, KeySource::File(path.to_owned())))
    }

    /// Where the key came from.
    pub fn source(&self) -> &KeySource {
        &self.source
    }

    /// `hmac-sha256:<hex>` of `bytes`.
    pub fn hash(&self, bytes: &[u8]) -> String {
        let mut mac = self.mac.clone();
        mac.update(bytes);
        let digest = mac.finalize().into_bytes();
        let mut out = String::with_capacity(PREFIX.len() + 64);
        out.push_str(PREFIX);
        out.push_str(&hex::encode(digest));
        out
    }

    /// The hash of a JSON value: a string's own characters (a Secret's `data` value is
    /// its base64 text), anything else as canonical JSON (members sorted by name, no
    /// whitespace), so the same value hashes the same however the server wrote it.
    pub fn hash_value(&self, value: &Value) -> String {
        match value {
            Value::String(s) => self.hash(s.as_bytes()),
            other => self.hash(canonical(other).as_bytes()),
        }
    }
}

/// `value` as JSON with every object's members sorted by name and no whitespace.
pub fn canonical(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> RedactionKey {
        RedactionKey::new(k.as_bytes().to_vec(), KeySource::Env)
    }

    #[test]
    fn hashes_are_rfc4231_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            key("Jefe").hash(b"what do ya want for nothing?"),
            "hmac-sha256:5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_ne!(key("a").hash(b"x"), key("b").hash(b"x"));
    }

    #[test]
    fn values_hash_canonically() {
        let k = key("k");
        let a: Value = serde_json::from_str(r#"{"b":1,"a":[true,null,"s"]}"#).expect("json");
        let b: Value = serde_json::from_str(r#"{ "a": [true, null, "s"], "b": 1 }"#).expect("json");
        assert_eq!(canonical(&a), r#"{"a":[true,null,"s"],"b":1}"#);
        assert_eq!(k.hash_value(&a), k.hash_value(&b));
        assert_eq!(k.hash_value(&Value::from("x")), k.hash(b"x"));
        assert_eq!(k.hash_value(&Value::from(5)), k.hash(b"5"));
    }

    #[test]
    fn a_key_file_is_trimmed_and_an_empty_one_refused_without_its_contents() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("key");
        std::fs::write(&path, "s3cret\n").expect("write");
        let k = RedactionKey::from_file(&path, "--redaction-key-file").expect("key");
        assert_eq!(k.hash(b"v"), key("s3cret").hash(b"v"));
        assert!(!format!("{k:?}").contains("s3cret"));
        std::fs::write(&path, "\n").expect("write");
        let e = RedactionKey::from_file(&path, "--redaction-key-file").expect_err("empty");
        assert!(e.contains("empty") && e.contains("key"), "{e}");
        let e = RedactionKey::from_file(&dir.path().join("nope"), "--redaction-key-file")
            .expect_err("missing");
        assert!(e.contains("cannot read"), "{e}");
    }

    #[test]
    fn the_random_key_is_drawn_once_per_process() {
        assert_eq!(
            RedactionKey::random().hash(b"x"),
            RedactionKey::random().hash(b"x")
        );
    }
}
