//! Kubernetes name syntax: DNS-1123 labels and subdomains, label keys and values, with the API server's wording.

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

/// Longest DNS-1123 label (a namespace name, a label value, a label key's name part).
const LABEL_MAX: usize = 63;
/// Longest DNS-1123 subdomain (most object names, a label key's prefix).
const SUBDOMAIN_MAX: usize = 253;

/// One dot-free part of a DNS-1123 name: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`.
fn is_label_part(p: &str) -> bool {
    !p.is_empty()
        && p.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && !p.starts_with('-')
        && !p.ends_with('-')
}

/// Whether `name` is a DNS-1123 label, the syntax of a namespace name.
pub fn is_dns1123_label(name: &str) -> bool {
    dns1123_label_error(name).is_none()
}

/// Why `name` is not a DNS-1123 label (a namespace name), worded like the API server's
/// field error (`Invalid value: "x": ...`); `None` when it is one.
pub fn dns1123_label_error(name: &str) -> Option<String> {
    name_error(name, LABEL_MAX, is_label_part(name), LABEL_MSG)
}

/// Why `name` is not a DNS-1123 subdomain (the name of most objects), worded like the
/// API server's field error; `None` when it is one.
pub fn dns1123_subdomain_error(name: &str) -> Option<String> {
    let ok = name.split('.').all(is_label_part);
    name_error(name, SUBDOMAIN_MAX, ok, SUBDOMAIN_MSG)
}

fn name_error(name: &str, max: usize, ok: bool, syntax: &str) -> Option<String> {
    if name.len() > max {
        return Some(format!(
            "Invalid value: \"{name}\": must be no more than {max} characters"
        ));
    }
    (!ok).then(|| format!("Invalid value: \"{name}\": {syntax}"))
}

/// A label value's syntax: empty, or up to 63 alphanumerics, `-`, `_`, `.`, starting and
/// ending with an alphanumeric.
fn is_label_value(value: &str) -> bool {
    value.len() <= LABEL_MAX
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && value.starts_with(|c: char| c.is_ascii_alphanumeric())
        && value.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// Why `key` is not a label key (`[prefix/]name`, the prefix a DNS subdomain); `None` when it is one.
pub fn label_key_error(key: &str) -> Option<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let name_ok = !name.is_empty() && is_label_value(name);
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= SUBDOMAIN_MAX
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.'))
    });
    (!(name_ok && prefix_ok)).then(|| {
        format!(
            "invalid label key {key:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        )
    })
}

/// Why `value` is not a label value; `None` when it is one.
pub fn label_value_error(value: &str) -> Option<String> {
    (!value.is_empty() && !is_label_value(value)).then(|| {
        format!(
            "invalid label value: {value:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        for good in ["a", "ns-0", "kube-system", "0abc", &"a".repeat(63)] {
            assert!(is_dns1123_label(good), "{good}");
        }
        for bad in ["", "-a", "a-", "A", "a.b", "a_b", &"a".repeat(64)] {
            assert!(!is_dns1123_label(bad), "{bad}");
        }
        assert!(
            dns1123_label_error(&"a".repeat(64))
                .is_some_and(|e| e.contains("no more than 63 characters"))
        );
    }

    #[test]
    fn dns_subdomains() {
        assert_eq!(dns1123_subdomain_error("web-1.example.com"), None);
        assert!(dns1123_subdomain_error("a..b").is_some_and(|e| e.contains("RFC 1123 subdomain")));
        assert!(dns1123_subdomain_error(&"a".repeat(254)).is_some());
    }

    #[test]
    fn label_keys_and_values() {
        assert_eq!(label_key_error("app.kubernetes.io/name"), None);
        assert_eq!(label_key_error("app"), None);
        assert!(label_key_error("Bad_Prefix/x").is_some());
        assert!(label_key_error("-x").is_some());
        assert_eq!(label_value_error(""), None);
        assert_eq!(label_value_error("v1.2_3"), None);
        assert!(label_value_error("-v").is_some());
        assert!(label_value_error(&"v".repeat(64)).is_some());
    }
}
