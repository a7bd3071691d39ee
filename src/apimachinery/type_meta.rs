//! Type metadata for raw objects: `kind` and `apiVersion` spliced into an object's JSON text.

/// `object` (a JSON object's text) with `"kind"` and `"apiVersion"` added as its first
/// members, without parsing or re-serializing the rest: the API server omits them from the
/// items of typed lists, and a consumer of one object needs them. `None` when `object`
/// is not a JSON object. The caller makes sure `object` has no `kind` of its own.
pub fn with_type_meta(object: &str, kind: &str, api_version: &str) -> Option<String> {
    let rest = object.trim_start().strip_prefix('{')?.trim_start();
    let kind = serde_json::to_string(kind).ok()?;
    let api_version = serde_json::to_string(api_version).ok()?;
    let sep = if rest.starts_with('}') { "" } else { "," };
    let mut out = String::with_capacity(object.len() + kind.len() + api_version.len() + 24);
    out.push_str("{\"kind\":");
    out.push_str(&kind);
    out.push_str(",\"apiVersion\":");
    out.push_str(&api_version);
    out.push_str(sep);
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_kind_and_api_version_in_front() {
        assert_eq!(
            with_type_meta(r#"{"metadata":{"name":"a"}}"#, "Pod", "v1").as_deref(),
            Some(r#"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"a"}}"#)
        );
        assert_eq!(
            with_type_meta(" { } ", "Deployment", "apps/v1").as_deref(),
            Some(r#"{"kind":"Deployment","apiVersion":"apps/v1"} "#)
        );
    }

    #[test]
    fn refuses_what_is_not_an_object() {
        assert_eq!(with_type_meta("[1]", "Pod", "v1"), None);
        assert_eq!(with_type_meta("", "Pod", "v1"), None);
    }
}
