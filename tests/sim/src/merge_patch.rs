//! JSON Merge Patch (RFC 7386), used for merge-patch and (simplified) strategic-merge-patch requests.

use serde_json::Value;

/// Applies an RFC 7386 merge patch to `target` and returns the result.
///
/// Objects merge recursively, `null` deletes a key, anything else (arrays included) replaces.
pub fn merge_patch(target: &Value, patch: &Value) -> Value {
    let Value::Object(patch_map) = patch else {
        return patch.clone();
    };
    let mut result = match target {
        Value::Object(m) => m.clone(),
        _ => serde_json::Map::new(),
    };
    for (key, value) in patch_map {
        if value.is_null() {
            result.remove(key);
        } else {
            let merged = merge_patch(result.get(key).unwrap_or(&Value::Null), value);
            result.insert(key.clone(), merged);
        }
    }
    Value::Object(result)
}
