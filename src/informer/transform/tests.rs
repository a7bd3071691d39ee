use super::*;
use crate::informer::redact::KeySource;

fn key() -> RedactionKey {
    RedactionKey::new(b"test-key".to_vec(), KeySource::Env)
}

fn id(group: &str, resource: &str) -> ResourceId {
    ResourceId {
        group: group.into(),
        version: "v1".into(),
        resource: resource.into(),
        kind: String::new(),
    }
}

fn counter() -> IntCounter {
    IntCounter::new("redacted", "test").expect("counter")
}

fn rule(group: &str, resource: &str, paths: &[&str]) -> ResolvedRule {
    ResolvedRule {
        group: group.into(),
        resource: resource.into(),
        paths: paths
            .iter()
            .map(|p| RedactPath::parse(p).expect("valid"))
            .collect(),
    }
}

/// Decodes `text` as the informer does (managedFields left out when `t` strips them,
/// then `t`'s redaction); `None` when that leaves it as it was.
fn apply(t: &ObjectTransform, text: &str) -> Option<String> {
    let raw = RawValue::from_string(text.to_owned()).expect("json");
    let things = ResourceId {
        kind: "Thing".into(),
        ..id("", "things")
    };
    let decoded = crate::informer::RawObject::decode(raw, &things, t).expect("decode");
    // The decode puts kind and apiVersion first in an object without them: not what
    // these tests look at.
    let out = decoded
        .raw
        .get()
        .replacen(r#""kind":"Thing","apiVersion":"v1","#, "", 1);
    (out != text).then_some(out)
}

fn h(v: &str) -> String {
    key().hash(v.as_bytes())
}

#[test]
fn an_object_needing_no_change_is_left_alone() {
    let t = Transforms::new(true, true, key(), vec![]).for_resource(&id("", "pods"), counter);
    assert!(!t.redacts());
    let pod = r#"{"metadata":{"name":"p","annotations":{"a":"b"}},"spec":{"x":1}}"#;
    assert_eq!(apply(&t, pod), None);
    let none = Transforms::default().for_resource(&id("", "secrets"), counter);
    let secret = r#"{"metadata":{"name":"s","managedFields":[]},"data":{"k":"dg=="}}"#;
    assert_eq!(apply(&none, secret), None);
}

#[test]
fn managed_fields_are_removed_wherever_they_sit() {
    let t = Transforms::new(true, false, key(), vec![]).for_resource(&id("", "pods"), counter);
    for (input, output) in [
        (
            r#"{"metadata":{"name":"p","managedFields":[{"manager":"m"}],"uid":"u"}}"#,
            r#"{"metadata":{"name":"p","uid":"u"}}"#,
        ),
        (
            r#"{"metadata":{"name":"p","managedFields":[{"manager":"m"}]},"spec":{}}"#,
            r#"{"metadata":{"name":"p"},"spec":{}}"#,
        ),
        (r#"{"metadata":{"managedFields":[]}}"#, r#"{"metadata":{}}"#),
        (
            "{\"metadata\": {\"name\": \"p\" ,\n  \"managedFields\" : [ {} ] \n}}",
            r#"{"metadata":{"name":"p"}}"#,
        ),
    ] {
        assert_eq!(apply(&t, input).as_deref(), Some(output), "{input}");
    }
    let keep = Transforms::new(false, false, key(), vec![]).for_resource(&id("", "pods"), counter);
    assert_eq!(apply(&keep, r#"{"metadata":{"managedFields":[]}}"#), None);
}

#[test]
fn an_escaped_managed_fields_name_is_still_removed() {
    let t = Transforms::new(true, false, key(), vec![]).for_resource(&id("", "pods"), counter);
    let out = apply(
        &t,
        r#"{"metadata":{"name":"p","managed\u0046ields":[{"manager":"m"}]}}"#,
    )
    .expect("changed");
    assert_eq!(out, r#"{"metadata":{"name":"p"}}"#);
}

#[test]
fn a_secrets_values_and_last_applied_annotation_are_hashed_and_its_keys_kept() {
    let c = counter();
    let t =
        Transforms::new(true, true, key(), vec![]).for_resource(&id("", "secrets"), || c.clone());
    assert!(t.redacts());
    let secret = r#"{"kind":"Secret","metadata":{"name":"s","annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"data\":{\"password\":\"aHVudGVyMg==\"}}","other":"kept"},"managedFields":[{"manager":"kubectl"}]},"data":{"password":"aHVudGVyMg==","user":"YWRtaW4="},"stringData":{"token":"t0k\"en"},"type":"Opaque"}"#;
    let out = apply(&t, secret).expect("changed");
    assert!(!out.contains("aHVudGVyMg"), "{out}");
    assert!(!out.contains("managedFields"), "{out}");
    let v: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["data"]["password"], h("aHVudGVyMg=="));
    assert_eq!(v["data"]["user"], h("YWRtaW4="));
    // stringData is hashed over the string itself, unescaped.
    assert_eq!(v["stringData"]["token"], h("t0k\"en"));
    assert_eq!(v["metadata"]["annotations"]["other"], "kept");
    assert!(
        v["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .is_some_and(|s| s.starts_with("hmac-sha256:"))
    );
    assert_eq!(v["type"], "Opaque");
    // Member order stays as the server wrote it.
    assert!(out.find("\"data\"") < out.find("\"stringData\""));
    assert_eq!(c.get(), 4);
    // Another group's "secrets" is not a core Secret.
    let other = Transforms::new(false, true, key(), vec![])
        .for_resource(&id("example.com", "secrets"), counter);
    assert!(!other.redacts());
}

#[test]
fn user_rules_hash_what_their_paths_select() {
    let rules = vec![rule(
        "example.com",
        "widgets",
        &[
            "/spec/password",
            "/spec/credentials/*",
            "/spec/a~1b/~0c",
            "/spec/list/*/secret",
            "/spec/missing/deeper",
            "/status/x",
        ],
    )];
    let t = Transforms::new(false, true, key(), rules)
        .for_resource(&id("example.com", "widgets"), counter);
    let widget = r#"{"metadata":{"name":"w"},"spec":{"password":"pw","credentials":{"user":"u","nested":{"b":2,"a":[1]}},"a/b":{"~c":7,"d":"kept"},"list":[{"secret":"s0","name":"n0"},{"name":"n1"},{"secret":null}],"status":"a string, not an object"}}"#;
    let out = apply(&t, widget).expect("changed");
    let v: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["spec"]["password"], h("pw"));
    assert_eq!(v["spec"]["credentials"]["user"], h("u"));
    assert_eq!(v["spec"]["credentials"]["nested"], h(r#"{"a":[1],"b":2}"#));
    assert_eq!(v["spec"]["a/b"]["~c"], h("7"));
    assert_eq!(v["spec"]["a/b"]["d"], "kept");
    assert_eq!(v["spec"]["list"][0]["secret"], h("s0"));
    assert_eq!(v["spec"]["list"][0]["name"], "n0");
    assert_eq!(v["spec"]["list"][1], serde_json::json!({"name": "n1"}));
    assert_eq!(v["spec"]["list"][2]["secret"], h("null"));
    // Rules match on group and resource, in any version; other resources are untouched.
    assert!(
        !Transforms::new(
            false,
            true,
            key(),
            vec![rule("example.com", "widgets", &["/spec"])]
        )
        .for_resource(&id("", "pods"), counter)
        .redacts()
    );
}

#[test]
fn array_indexes_and_roots_that_are_not_objects() {
    let rules = vec![rule("", "things", &["/spec/1", "/spec/*/k"])];
    let t = Transforms::new(false, false, key(), rules).for_resource(&id("", "things"), counter);
    let out = apply(&t, r#"{"metadata":{},"spec":[{"k":"a"},"b",{"k":"c"}]}"#).expect("changed");
    let v: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["spec"][0]["k"], h("a"));
    assert_eq!(v["spec"][1], h("b"));
    assert_eq!(v["spec"][2]["k"], h("c"));
    for root in [
        "[1,2]",
        "\"text\"",
        "null",
        r#"{"spec":"flat"}"#,
        r#"{"other":1}"#,
    ] {
        let object: &RawValue = serde_json::from_str(root).expect(root);
        assert_eq!(t.apply(object).expect(root), None, "{root}");
    }
}

#[test]
fn a_rule_inside_managed_fields_gives_way_to_its_removal() {
    let rules = vec![rule("", "things", &["/metadata/managedFields/*/manager"])];
    let t = Transforms::new(true, false, key(), rules).for_resource(&id("", "things"), counter);
    let out = apply(
        &t,
        r#"{"metadata":{"name":"n","managedFields":[{"manager":"m"}]},"spec":1}"#,
    );
    assert_eq!(
        out.as_deref(),
        Some(r#"{"metadata":{"name":"n"},"spec":1}"#)
    );
}
