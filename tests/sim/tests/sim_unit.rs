//! Unit tests for the simulator's continue tokens and merge patch.
#![allow(clippy::unwrap_used)] // Tests may panic on unexpected values; that is their failure mode.

use kubebridge_sim::{ContinueToken, merge_patch};
use serde_json::json;

#[test]
fn continue_token_round_trip_and_format() {
    let t = ContinueToken {
        resource_version: 42,
        last_key: "shop/web-1".to_string(),
    };
    let enc = t.encode();
    assert_eq!(ContinueToken::decode(&enc), Some(t));
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(&enc)
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(
        v,
        json!({"v": "meta.k8s.io/v1", "rv": 42, "start": "shop/web-1\u{0}"})
    );
    assert_eq!(ContinueToken::decode("not-base64!"), None);
    assert_eq!(ContinueToken::decode("e30="), None, "{{}} is not a token");
}

#[test]
fn merge_patch_rfc7386() {
    // The examples from RFC 7386 section 3.
    let target = json!({"title": "Goodbye!", "author": {"givenName": "John", "familyName": "Doe"}, "tags": ["example", "sample"], "content": "This will be unchanged"});
    let patch = json!({"title": "Hello!", "phoneNumber": "+01-123-456-7890", "author": {"familyName": null}, "tags": ["example"]});
    assert_eq!(
        merge_patch(&target, &patch),
        json!({"title": "Hello!", "author": {"givenName": "John"}, "tags": ["example"], "content": "This will be unchanged", "phoneNumber": "+01-123-456-7890"})
    );
    assert_eq!(
        merge_patch(&json!({"a": "b"}), &json!({"a": "c"})),
        json!({"a": "c"})
    );
    assert_eq!(
        merge_patch(&json!({"a": "b"}), &json!({"a": null})),
        json!({})
    );
    assert_eq!(
        merge_patch(&json!({"a": [{"b": "c"}]}), &json!({"a": [1]})),
        json!({"a": [1]})
    );
    assert_eq!(
        merge_patch(&json!(["a", "b"]), &json!({"a": "b"})),
        json!({"a": "b"})
    );
    assert_eq!(
        merge_patch(&json!({"e": null}), &json!({"a": 1})),
        json!({"e": null, "a": 1})
    );
    assert_eq!(
        merge_patch(&json!({}), &json!({"a": {"bb": {"ccc": null}}})),
        json!({"a": {"bb": {}}})
    );
    assert_eq!(merge_patch(&json!({"a": "b"}), &json!(["c"])), json!(["c"]));
}
