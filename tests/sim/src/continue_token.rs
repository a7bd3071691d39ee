//! List continue tokens in the apiserver's format: base64 of `{"v":"meta.k8s.io/v1","rv":N,"start":"KEY\u0000"}`.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use serde::{Deserialize, Serialize};

/// A decoded continue token: the snapshot revision of the first page and the key to resume after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContinueToken {
    /// resourceVersion of the snapshot every page of this list is served from.
    pub resource_version: u64,
    /// The `namespace/name` key of the last item served; the next page starts strictly after it.
    pub last_key: String,
}

#[derive(Serialize, Deserialize)]
struct Wire {
    v: String,
    rv: u64,
    start: String,
}

impl ContinueToken {
    /// Encodes like the real server: the start key is the last key plus a NUL so it sorts just after it.
    pub fn encode(&self) -> String {
        let wire = Wire {
            v: "meta.k8s.io/v1".to_string(),
            rv: self.resource_version,
            start: format!("{}\u{0}", self.last_key),
        };
        let json = serde_json::to_vec(&wire).expect("serializing a plain struct cannot fail");
        STANDARD.encode(json)
    }

    /// Decodes a token; None when it is not one this server issued (the caller answers 400).
    pub fn decode(token: &str) -> Option<ContinueToken> {
        let bytes = STANDARD
            .decode(token)
            .or_else(|_| URL_SAFE.decode(token))
            .ok()?;
        let wire: Wire = serde_json::from_slice(&bytes).ok()?;
        if wire.v != "meta.k8s.io/v1" || wire.rv == 0 {
            return None;
        }
        let last_key = wire.start.strip_suffix('\u{0}')?.to_string();
        Some(ContinueToken {
            resource_version: wire.rv,
            last_key,
        })
    }
}
