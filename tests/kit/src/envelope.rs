//! The check that a notification matches the published envelope schema.

use std::sync::LazyLock;

use serde_json::Value;

/// sinks/envelope.schema.json, compiled once per test binary.
static VALIDATOR: LazyLock<jsonschema::Validator> = LazyLock::new(|| {
    let text = include_str!("../../../sinks/envelope.schema.json");
    let schema: Value = serde_json::from_str(text).expect("the schema is JSON");
    jsonschema::validator_for(&schema).expect("the schema is a valid JSON Schema")
});

/// Fails the test unless `n` matches the published JSON Schema of the envelope
/// (sinks/envelope.schema.json). The harness calls it on every notification it reads.
pub fn assert_envelope(n: &Value) {
    let errors: Vec<String> = VALIDATOR
        .iter_errors(n)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "notification does not match the schema: {errors:?}\n{n}"
    );
}

/// Parses one line of kubebridge's stdout as a notification and checks it against the
/// schema.
pub fn parse_notification(line: &str) -> Value {
    let n = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    assert_envelope(&n);
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn valid() -> Value {
        json!({
            "type": "ADDED", "origin": "list", "time": "2026-01-02T03:04:05.678Z",
            "resource": {"group": "", "version": "v1", "resource": "pods", "kind": "Pod"},
            "namespace": "shop", "name": "a", "uid": "u", "resourceVersion": "1",
            "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}}
        })
    }

    #[test]
    fn a_conforming_notification_passes() {
        assert_envelope(&valid());
    }

    #[test]
    #[should_panic(expected = "does not match the schema")]
    fn an_unknown_type_fails() {
        let mut n = valid();
        n["type"] = json!("BOGUS");
        assert_envelope(&n);
    }

    #[test]
    fn a_modified_may_carry_a_patch_and_drop_its_old_object() {
        let mut n = valid();
        n["type"] = json!("MODIFIED");
        n["patch"] = json!([{"op": "replace", "path": "/status/phase", "value": "Failed"}]);
        assert_envelope(&n);
    }

    #[test]
    #[should_panic(expected = "does not match the schema")]
    fn a_patch_outside_modified_fails() {
        let mut n = valid();
        n["patch"] = json!([{"op": "replace", "path": "/a", "value": 1}]);
        assert_envelope(&n);
    }

    #[test]
    #[should_panic(expected = "does not match the schema")]
    fn a_missing_field_fails() {
        let mut n = valid();
        n.as_object_mut().unwrap().remove("uid");
        assert_envelope(&n);
    }

    fn resumed(event_type: &str) -> Value {
        let mut n = valid();
        n["type"] = json!(event_type);
        n["origin"] = json!("relist");
        n
    }

    #[test]
    fn a_resumed_modified_and_tombstone_pass() {
        let mut modified = resumed("MODIFIED");
        modified["oldResourceVersion"] = json!("1");
        assert_envelope(&modified);
        let mut tombstone = resumed("DELETED");
        tombstone["tombstone"] = json!(true);
        assert_envelope(&tombstone);
    }

    #[test]
    fn checkpoint_fields_only_where_they_belong() {
        let fails = |n: &Value| VALIDATOR.iter_errors(n).next().is_some();
        let mut watch = resumed("MODIFIED");
        watch["origin"] = json!("watch");
        watch["oldResourceVersion"] = json!("1");
        assert!(fails(&watch), "a watch MODIFIED carries oldObject");
        let mut both = resumed("MODIFIED");
        both["oldResourceVersion"] = json!("1");
        both["oldObject"] = json!({});
        assert!(fails(&both), "one or the other");
        let mut added = resumed("ADDED");
        added["tombstone"] = json!(true);
        assert!(fails(&added), "a tombstone is a DELETED");
        let mut false_tombstone = resumed("DELETED");
        false_tombstone["tombstone"] = json!(false);
        assert!(fails(&false_tombstone), "absent, not false");
        let mut deleted = resumed("DELETED");
        deleted["oldResourceVersion"] = json!("1");
        assert!(fails(&deleted), "oldResourceVersion is for MODIFIED");
    }
}
