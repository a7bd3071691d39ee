//! Unit tests for the simulator's selector parser/matcher, continue tokens and merge patch.
#![allow(clippy::unwrap_used)] // Tests may panic on unexpected values; that is their failure mode.

use std::collections::BTreeMap;

use kubebridge::sim::{ContinueToken, FieldSelector, LabelSelector, merge_patch};
use serde_json::json;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn label_selector_operators() {
    let l = labels(&[
        ("app", "web"),
        ("tier", "backend"),
        ("example.com/team", "a"),
    ]);
    let m = |s: &str| LabelSelector::parse(s).unwrap().matches(&l);
    assert!(m(""));
    assert!(m("app=web"));
    assert!(m("app==web"));
    assert!(!m("app!=web"));
    assert!(m("app!=api"));
    assert!(m("missing!=x"), "!= matches objects without the key");
    assert!(m("app in (api, web)"));
    assert!(!m("app notin (api,web)"));
    assert!(m("app notin (api)"));
    assert!(m("missing notin (api)"));
    assert!(!m("missing in (api)"));
    assert!(m("tier"));
    assert!(!m("missing"));
    assert!(m("!missing"));
    assert!(!m("!app"));
    assert!(m("app=web,tier=backend"));
    assert!(!m("app=web,tier=frontend"));
    assert!(m("example.com/team=a"));
    assert!(m(" app = web , tier in (backend) "));
}

#[test]
fn label_selector_rejects_garbage() {
    for bad in [
        "app=(x",
        "=web",
        "app in web",
        "app=we b!",
        "app in (a",
        "a,,b",
        "app > 3",
        "-bad=x",
    ] {
        assert!(
            LabelSelector::parse(bad).is_err(),
            "{bad:?} should not parse"
        );
    }
}

#[test]
fn field_selector() {
    let obj = |ns: &'static str, name: &'static str| {
        move |f: &str| match f {
            "metadata.name" => Some(name),
            "metadata.namespace" => Some(ns),
            _ => None,
        }
    };
    let f = FieldSelector::parse("metadata.name=web-1,metadata.namespace!=kube-system").unwrap();
    assert!(f.matches(obj("shop", "web-1")));
    assert!(!f.matches(obj("kube-system", "web-1")));
    assert!(!f.matches(obj("shop", "web-2")));
    assert!(
        FieldSelector::parse("metadata.name==x")
            .unwrap()
            .matches(obj("", "x"))
    );
    assert!(FieldSelector::parse("").unwrap().is_empty());
    // A missing field counts as "", as for unscheduled pods and spec.nodeName=.
    assert!(
        FieldSelector::parse("spec.nodeName=")
            .unwrap()
            .matches(obj("a", "b"))
    );
    let supported = ["metadata.name", "metadata.namespace"];
    let err = FieldSelector::parse("spec.nodeName=n1")
        .unwrap()
        .check_supported(&supported)
        .unwrap_err();
    assert_eq!(err.to_string(), "field label not supported: spec.nodeName");
    assert!(FieldSelector::parse("metadata.name").is_err());
}

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
