//! The label and field selector parser and matcher, as the simulator and the `/cache` lister use them.
#![allow(clippy::unwrap_used)] // Tests may panic on unexpected values; that is their failure mode.

use std::collections::BTreeMap;

use kubebridge_apimachinery::{FieldSelector, LabelSelector};

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
