//! A JSON pointer with a wildcard: the one path type behind `redact` rules (which values
//! are hashed), `ignoreFields` (which changes are noise) and `fields` (what a route keeps).
//!
//! A pointer is RFC 6901 (`/status/conditions/0/type`, `~1` for `/` and `~0` for `~` in
//! a key) with one addition: a segment that is exactly `*` matches any array index or
//! object key. There is no way to name a key that is literally `*`. An empty segment is
//! a member named `""` (RFC 6901), and `**` is a plain name.

use std::fmt;

/// The most segments a pointer may have: deeper than any Kubernetes object nests, and a
/// bound on the work of matching it (and on the recursion of walking an object by it).
pub const MAX_SEGMENTS: usize = 64;

/// One reference token of a pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// `*`: any array index or object key.
    Any,
    /// A key, or an array index written in decimal, unescaped.
    Key(String),
}

impl Segment {
    /// Whether this segment selects the member `name` (an object key, or an array index
    /// written in decimal).
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Segment::Any => true,
            Segment::Key(k) => k == name,
        }
    }
}

/// A parsed pointer, e.g. `/status/conditions/*/lastHeartbeatTime`; it displays as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointer {
    text: String,
    segments: Vec<Segment>,
}

/// Why a text is not a pointer. Each message is one line that names the text and says
/// what would be right; callers prefix where it was written (`ignoreFields`, a `redact`
/// rule).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PointerError {
    /// `""`: the whole object, which no rule means (redacting or ignoring everything, or
    /// keeping everything, is said better otherwise).
    #[error(
        "the empty JSON pointer names the whole object; name a field below it, such as /status/phase"
    )]
    Empty,
    /// Not written from the object's root.
    #[error("{0:?} is not a JSON pointer: it must start with '/', as in /status/phase")]
    Relative(String),
    /// A `~` not followed by `0` or `1`.
    #[error("{0:?} is not a JSON pointer: '~' must be followed by 0 (for ~) or 1 (for /)")]
    Escape(String),
    /// More than [`MAX_SEGMENTS`] segments.
    #[error("JSON pointer {text:?} has {count} segments, more than the {MAX_SEGMENTS} accepted")]
    TooDeep {
        /// The pointer as written.
        text: String,
        /// How many segments it has.
        count: usize,
    },
}

impl Pointer {
    /// Parses `text`.
    pub fn parse(text: &str) -> Result<Pointer, PointerError> {
        if text.is_empty() {
            return Err(PointerError::Empty);
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err(PointerError::Relative(text.to_owned()));
        };
        // Count before unescaping, so a very deep text costs no allocations.
        let count = rest.split('/').count();
        if count > MAX_SEGMENTS {
            return Err(PointerError::TooDeep {
                text: text.to_owned(),
                count,
            });
        }
        let segments = rest
            .split('/')
            .map(|raw| segment(raw).ok_or_else(|| PointerError::Escape(text.to_owned())))
            .collect::<Result<_, _>>()?;
        Ok(Pointer {
            text: text.to_owned(),
            segments,
        })
    }

    /// The segments, in order (never empty: the empty pointer is refused).
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }
}

impl fmt::Display for Pointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// One reference token: a bare `*` is the wildcard; otherwise unescaped left to right
/// (`~1` is `/`, `~0` is `~`), `None` for a `~` before anything else.
fn segment(raw: &str) -> Option<Segment> {
    if raw == "*" {
        return Some(Segment::Any);
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '~' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('0') => out.push('~'),
            Some('1') => out.push('/'),
            _ => return None,
        }
    }
    Some(Segment::Key(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: &str) -> Segment {
        Segment::Key(n.into())
    }

    #[test]
    fn parses_segments_with_rfc6901_escaping_and_wildcards() {
        let p = Pointer::parse("/metadata/annotations/a~1b~0c/*").expect("valid");
        assert_eq!(
            p.segments(),
            [
                key("metadata"),
                key("annotations"),
                key("a/b~c"),
                Segment::Any
            ]
        );
        assert_eq!(p.to_string(), "/metadata/annotations/a~1b~0c/*");
        // `~01` is `~1` unescaped, not `/`: escapes are read left to right.
        assert_eq!(
            Pointer::parse("/~01").expect("valid").segments(),
            [key("~1")]
        );
        // An empty token is a member named "" (RFC 6901), and `**` is a plain name.
        assert_eq!(
            Pointer::parse("/spec//**").expect("valid").segments(),
            [key("spec"), key(""), key("**")]
        );
        assert!(Segment::Any.matches("0") && Segment::Any.matches("name"));
        assert!(key("0").matches("0") && !key("0").matches("1"));
    }

    #[test]
    fn refuses_what_is_not_a_pointer_in_one_line() {
        for bad in ["", "spec/password", "status", "/spec/a~2", "/spec/a~"] {
            let e = Pointer::parse(bad).expect_err(bad).to_string();
            assert!(!e.contains('\n'), "{e}");
            assert!(e.contains("JSON pointer"), "{e}");
        }
        assert_eq!(Pointer::parse(""), Err(PointerError::Empty));
        let relative = Pointer::parse("spec").expect_err("relative").to_string();
        assert!(relative.contains("\"spec\"") && relative.contains("start with '/'"));
        let escape = Pointer::parse("/a~2").expect_err("escape").to_string();
        assert!(
            escape.contains("\"/a~2\"") && escape.contains("'~'"),
            "{escape}"
        );
    }

    #[test]
    fn too_deep_is_refused() {
        let deep = "/a".repeat(MAX_SEGMENTS + 1);
        let e = Pointer::parse(&deep).expect_err("deep").to_string();
        assert!(e.contains("segments") && !e.contains('\n'), "{e}");
        assert!(Pointer::parse(&"/a".repeat(MAX_SEGMENTS)).is_ok());
    }
}
