//! A JSON pointer pattern (RFC 6901, with `*` for any key or array index): which values of
//! an object a redaction rule names.

use std::fmt;

/// One reference token of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// A member name or array index, unescaped (`~1` read as `/`, `~0` as `~`).
    Name(String),
    /// `*`: every member of an object, every element of an array.
    Any,
}

impl Token {
    /// Whether this token selects the member `name` (an object key, or an array index
    /// written in decimal).
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Token::Any => true,
            Token::Name(n) => n == name,
        }
    }
}

/// A parsed pattern such as `/spec/credentials/*` or `/metadata/annotations/a~1b`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    text: String,
    tokens: Vec<Token>,
}

/// Fields a pattern may not reach: the object's identity, which kubebridge reads before
/// transforming and which every envelope repeats.
const IDENTITY: [&[&str]; 6] = [
    &["kind"],
    &["apiVersion"],
    &["metadata", "name"],
    &["metadata", "namespace"],
    &["metadata", "uid"],
    &["metadata", "resourceVersion"],
];

impl PathPattern {
    /// Parses `text`. The error says what is wrong and what would be right, in one line.
    pub fn parse(text: &str) -> Result<PathPattern, String> {
        if text.is_empty() {
            return Err("the empty pointer names the whole object; name a field below it, such as /spec/password".into());
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err(format!(
                "{text:?} is not a JSON pointer: it must start with '/', as in /spec/password"
            ));
        };
        let tokens = rest
            .split('/')
            .map(|raw| unescape(raw).map_err(|e| format!("{text:?} is not a JSON pointer: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let pattern = PathPattern {
            text: text.to_owned(),
            tokens,
        };
        if let Some(field) = IDENTITY.iter().find(|f| pattern.may_reach(f)) {
            return Err(format!(
                "{text:?} would replace the object's identity (/{}), which every notification needs; name a field that is not kind, apiVersion, metadata.name, namespace, uid or resourceVersion",
                field.join("/")
            ));
        }
        Ok(pattern)
    }

    /// The tokens, in order.
    pub fn tokens(&self) -> &[Token] {
        &self.tokens
    }

    /// Whether a value this pattern selects could be `field` or contain it.
    fn may_reach(&self, field: &[&str]) -> bool {
        self.tokens.len() <= field.len()
            && self
                .tokens
                .iter()
                .zip(field)
                .all(|(t, name)| t.matches(name))
    }
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// One reference token, unescaped: `~1` is `/`, `~0` is `~`, any other `~` is an error;
/// a bare `*` is the wildcard.
fn unescape(raw: &str) -> Result<Token, String> {
    if raw == "*" {
        return Ok(Token::Any);
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
            _ => return Err("'~' must be followed by 0 (for ~) or 1 (for /)".into()),
        }
    }
    Ok(Token::Name(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str) -> Token {
        Token::Name(n.into())
    }

    #[test]
    fn parses_tokens_with_rfc6901_escaping_and_wildcards() {
        let p = PathPattern::parse("/metadata/annotations/a~1b~0c/*").expect("valid");
        assert_eq!(
            p.tokens(),
            [
                name("metadata"),
                name("annotations"),
                name("a/b~c"),
                Token::Any
            ]
        );
        assert_eq!(p.to_string(), "/metadata/annotations/a~1b~0c/*");
        // `~01` is `~1` unescaped, not `/`: escapes are read left to right.
        assert_eq!(
            PathPattern::parse("/~01").expect("valid").tokens(),
            [name("~1")]
        );
        // An empty token is a member named "" (RFC 6901), and `**` is a plain name.
        assert_eq!(
            PathPattern::parse("/spec//**").expect("valid").tokens(),
            [name("spec"), name(""), name("**")]
        );
    }

    #[test]
    fn refuses_what_is_not_a_pointer_in_one_line() {
        for bad in ["", "spec/password", "/spec/a~2", "/spec/a~"] {
            let e = PathPattern::parse(bad).expect_err(bad);
            assert!(!e.contains('\n'), "{e}");
        }
        assert!(
            PathPattern::parse("spec")
                .expect_err("relative")
                .contains("start with '/'")
        );
    }

    #[test]
    fn refuses_patterns_that_reach_the_identity_fields() {
        for bad in ["/metadata", "/metadata/*", "/*", "/kind", "/metadata/uid"] {
            let e = PathPattern::parse(bad).expect_err(bad);
            assert!(e.contains("identity"), "{e}");
        }
        for good in ["/metadata/annotations/x", "/*/password", "/metadata/labels"] {
            PathPattern::parse(good).expect(good);
        }
    }
}
