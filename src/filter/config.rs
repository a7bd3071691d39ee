//! What a route says about filtering, as data: the config file's keys and the command
//! line's flags both fill a [`FilterConfig`], checked by compiling it.

use std::fmt;

use kubebridge_sinks::EventType;

use crate::pointer::Pointer;

/// Whether published MODIFIED notifications carry `oldObject`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OldObject {
    /// The previous state, as always (projected like the object).
    #[default]
    Full,
    /// Left out: with `diff`, the patch says what changed in about half the bytes.
    None,
}

/// A route's filters and transforms. The default publishes every type, suppresses
/// MODIFIED notifications that change only `metadata.resourceVersion` and
/// `metadata.managedFields`, and changes nothing in what it publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterConfig {
    /// Event types to publish; empty publishes all.
    pub types: Vec<EventType>,
    /// A CEL expression; a notification for which it is false is not published.
    pub filter: Option<String>,
    /// Whether MODIFIED notifications that change only ignored fields are suppressed.
    pub suppress: bool,
    /// JSON pointers (with `*`) whose changes do not count, beyond resourceVersion and
    /// managedFields.
    pub ignore_fields: Vec<String>,
    /// JSON pointers (with `*`) to keep in published objects; empty keeps everything.
    pub fields: Vec<String>,
    /// Add an RFC 6902 `patch` to MODIFIED notifications.
    pub diff: bool,
    /// Whether `oldObject` is published.
    pub old_object: OldObject,
}

impl Default for FilterConfig {
    fn default() -> Self {
        FilterConfig {
            types: Vec::new(),
            filter: None,
            suppress: true,
            ignore_fields: Vec::new(),
            fields: Vec::new(),
            diff: false,
            old_object: OldObject::Full,
        }
    }
}

/// The fields every route ignores when deciding whether a MODIFIED changed anything:
/// bookkeeping the API server rewrites on every write.
pub(crate) const ALWAYS_IGNORED: [&str; 2] =
    ["/metadata/resourceVersion", "/metadata/managedFields"];

/// `added,deleted` (any case, comma-separated or repeated) as event types. An unknown
/// one is an error listing the valid ones.
pub fn parse_types<S: AsRef<str>>(values: &[S]) -> Result<Vec<EventType>, String> {
    let mut types = Vec::new();
    for value in values {
        for name in value.as_ref().split(',') {
            let t = match name.trim().to_ascii_uppercase().as_str() {
                "ADDED" => EventType::Added,
                "MODIFIED" => EventType::Modified,
                "DELETED" => EventType::Deleted,
                "SYNC" => EventType::Sync,
                _ => {
                    return Err(format!(
                        "unknown event type {:?}; the types are ADDED, MODIFIED, DELETED and SYNC",
                        name.trim()
                    ));
                }
            };
            if !types.contains(&t) {
                types.push(t);
            }
        }
    }
    Ok(types)
}

impl FilterConfig {
    /// Checks every part (CEL compiles, pointers parse) without building anything that
    /// runs; the error is one line naming the key.
    pub fn validate(&self) -> Result<(), String> {
        super::Filters::compile("", self).map(drop)
    }

    /// Whether this route changes nothing: every notification passes as it is.
    pub fn is_default(&self) -> bool {
        *self == FilterConfig::default()
    }

    pub(crate) fn pointers(what: &str, texts: &[String]) -> Result<Vec<Pointer>, String> {
        texts
            .iter()
            .map(|t| Pointer::parse(t).map_err(|e| format!("{what}: {e}")))
            .collect()
    }
}

impl fmt::Display for FilterConfig {
    /// `types ADDED,DELETED; filter 'EXPR'; unchanged MODIFIED suppressed (ignoring …);
    /// fields /c; diff; no oldObject`: what check-config prints for a route.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.types.is_empty() {
            parts.push("all types".into());
        } else {
            let names: Vec<&str> = self.types.iter().map(|t| t.as_str()).collect();
            parts.push(format!("types {}", names.join(",")));
        }
        if let Some(expr) = &self.filter {
            parts.push(format!("filter '{expr}'"));
        }
        if self.suppress {
            let mut ignored: Vec<&str> = ALWAYS_IGNORED.to_vec();
            ignored.extend(self.ignore_fields.iter().map(String::as_str));
            parts.push(format!(
                "unchanged MODIFIED suppressed (ignoring {})",
                ignored.join(", ")
            ));
        } else {
            parts.push("no suppression".into());
        }
        if !self.fields.is_empty() {
            parts.push(format!("fields {}", self.fields.join(", ")));
        }
        if self.diff {
            parts.push("diff".into());
        }
        if self.old_object == OldObject::None {
            parts.push("no oldObject".into());
        }
        f.write_str(&parts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_case_insensitive_and_unknown_ones_listed() {
        assert_eq!(
            parse_types(&["added,Deleted", "SYNC", "added"]),
            Ok(vec![EventType::Added, EventType::Deleted, EventType::Sync])
        );
        let e = parse_types(&["added,updated"]).expect_err("unknown");
        assert!(
            e.contains("\"updated\"") && e.contains("ADDED, MODIFIED, DELETED and SYNC"),
            "{e}"
        );
    }
}
