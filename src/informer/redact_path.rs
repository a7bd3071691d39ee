//! A `redact` rule's path: a [`Pointer`] that may not reach the object's identity.

use std::fmt;

use crate::pointer::{Pointer, PointerError, Segment};

/// Fields a redaction path may not reach: the object's identity, which kubebridge reads
/// before transforming and which every envelope repeats.
const IDENTITY: [&[&str]; 6] = [
    &["kind"],
    &["apiVersion"],
    &["metadata", "name"],
    &["metadata", "namespace"],
    &["metadata", "uid"],
    &["metadata", "resourceVersion"],
];

/// Which values of an object a redaction rule hashes, such as `/spec/credentials/*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedactPath(Pointer);

/// Why a text is not a redaction path; one line, naming the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedactPathError {
    /// Not a JSON pointer at all.
    #[error(transparent)]
    Pointer(#[from] PointerError),
    /// A pointer that selects (or contains) one of the identity fields.
    #[error(
        "{text:?} would replace the object's identity ({field}), which every notification needs; name a field that is not kind, apiVersion, metadata.name, namespace, uid or resourceVersion"
    )]
    Identity {
        /// The path as written.
        text: String,
        /// The identity field it reaches, as a pointer.
        field: String,
    },
}

impl RedactPath {
    /// Parses `text` as a [`Pointer`] and refuses it when a value it selects could be an
    /// identity field or contain one.
    pub fn parse(text: &str) -> Result<RedactPath, RedactPathError> {
        let pointer = Pointer::parse(text)?;
        if let Some(field) = IDENTITY.iter().find(|f| may_reach(pointer.segments(), f)) {
            return Err(RedactPathError::Identity {
                text: text.to_owned(),
                field: format!("/{}", field.join("/")),
            });
        }
        Ok(RedactPath(pointer))
    }

    /// The pointer.
    pub(crate) fn pointer(&self) -> &Pointer {
        &self.0
    }
}

impl fmt::Display for RedactPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Whether a value `segments` selects could be `field` or contain it.
fn may_reach(segments: &[Segment], field: &[&str]) -> bool {
    segments.len() <= field.len() && segments.iter().zip(field).all(|(s, name)| s.matches(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_paths_that_reach_the_identity_fields() {
        for bad in ["/metadata", "/metadata/*", "/*", "/kind", "/metadata/uid"] {
            let e = RedactPath::parse(bad).expect_err(bad).to_string();
            assert!(e.contains("identity") && !e.contains('\n'), "{e}");
        }
        for good in ["/metadata/annotations/x", "/*/password", "/metadata/labels"] {
            assert_eq!(RedactPath::parse(good).expect(good).to_string(), good);
        }
    }

    #[test]
    fn what_is_not_a_pointer_keeps_the_pointers_message() {
        let e = RedactPath::parse("spec/password").expect_err("relative");
        assert_eq!(
            e,
            RedactPathError::Pointer(PointerError::Relative("spec/password".into()))
        );
        assert!(e.to_string().contains("start with '/'"));
    }
}
