//! Splitting a sink URI (`scheme://[userinfo@]host:port[,host:port...]/path[?query]`).
//!
//! Hand-written rather than a URL crate because sink URIs are not quite URLs: Kafka
//! takes a comma-separated broker list as the authority, and topic templates put
//! `{placeholders}` in the path, which a URL parser would percent-encode or reject.

// Only the broker sinks parse URIs and encode bodies; stdout writes plain envelopes.
#![cfg_attr(not(any(feature = "kafka", feature = "nats")), allow(dead_code))]

/// A sink URI split into its parts, with nothing interpreted yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SinkUri {
    /// Lower-case scheme, e.g. `kafka`.
    pub scheme: String,
    /// `user:password` or `token`, percent-decoded, if the URI had one.
    pub userinfo: Option<UserInfo>,
    /// `host:port` entries of the authority, as written.
    pub hosts: Vec<String>,
    /// The path without its leading `/`; empty if there was none.
    pub path: String,
    /// `key=value` pairs of the query, percent-decoded, in order.
    pub query: Vec<(String, String)>,
}

/// Credentials written in the authority of a URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UserInfo {
    /// `user:password@`.
    UserPassword(String, String),
    /// `token@`: a single secret without a colon.
    Token(String),
}

/// Splits `uri`; the error says what part is malformed.
pub(crate) fn parse(uri: &str) -> Result<SinkUri, String> {
    // A malformed scheme is not echoed: without its `://` where expected, it may be
    // the start of the credentials.
    let (scheme, rest) = match split_scheme(uri) {
        ("", _) => return Err("not a URI; write SCHEME://HOST:PORT/...".to_string()),
        (scheme, rest) => (scheme.trim_end_matches("://"), rest),
    };
    let scheme = scheme.to_ascii_lowercase();
    let (userinfo, rest) = split_userinfo(rest);
    let userinfo = userinfo.map(parse_userinfo).transpose()?;
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, parse_query(q)?),
        None => (rest, Vec::new()),
    };
    let (authority, path) = match rest.split_once('/') {
        Some((a, p)) => (a, p.to_string()),
        None => (rest, String::new()),
    };
    let hostlist = authority;
    let mut hosts = Vec::new();
    for host in hostlist.split(',') {
        let host = host.trim();
        if host.is_empty() {
            return Err("empty host; write HOST:PORT[,HOST:PORT...]".to_string());
        }
        let Some((name, port)) = host.rsplit_once(':') else {
            return Err(format!("\"{host}\" has no port; write {host}:PORT"));
        };
        if name.is_empty() || port.parse::<u16>().is_err() {
            return Err(format!("\"{host}\" is not HOST:PORT"));
        }
        hosts.push(host.to_string());
    }
    Ok(SinkUri {
        scheme,
        userinfo,
        hosts,
        path,
        query,
    })
}

fn parse_userinfo(u: &str) -> Result<UserInfo, String> {
    match u.split_once(':') {
        Some((user, pass)) => Ok(UserInfo::UserPassword(
            percent_decode(user)?,
            percent_decode(pass)?,
        )),
        None if u.is_empty() => Err("empty credentials before '@'".to_string()),
        None => Ok(UserInfo::Token(percent_decode(u)?)),
    }
}

fn parse_query(q: &str) -> Result<Vec<(String, String)>, String> {
    q.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            Ok((percent_decode(k)?, percent_decode(v)?))
        })
        .collect()
}

/// Decodes `%XX` escapes, so a password can hold `@`, `:` or `/`.
///
/// Stricter than `percent_decode_str` alone, which passes a malformed escape through
/// as text: a `%` not followed by two hex digits is more likely a typo in a secret than
/// a literal `%`, and would otherwise surface only as a failed login.
pub(crate) fn percent_decode(s: &str) -> Result<String, String> {
    let malformed = s.match_indices('%').any(|(i, _)| {
        !s.as_bytes()
            .get(i + 1..i + 3)
            .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    });
    if malformed {
        return Err("bad %-escape; write %XX with two hex digits".to_string());
    }
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .map_err(|_| "%-escapes do not decode to UTF-8".to_string())
}

/// `uri` with the password (or token) replaced by `***`, for messages and logs.
///
/// Works on any text, not only on URIs that parse: whatever stands between the scheme
/// (when there is a well-formed one) and the LAST `@` is credentials, so a password
/// holding `?`, `#`, `/`, `@` or `://`, a missing or mistyped scheme (`u:pw@h:1/p`,
/// `nats:/u:pw@h:1`) and a URI broken elsewhere are all masked. Only the user name
/// before the first `:` stays visible.
pub fn redact(uri: &str) -> String {
    let (scheme, rest) = split_scheme(uri);
    match split_userinfo(rest) {
        (Some(userinfo), after) => {
            let masked = match userinfo.split_once(':') {
                Some((user, _)) => format!("{user}:***"),
                None => "***".to_string(),
            };
            format!("{scheme}{masked}@{after}")
        }
        (None, _) => uri.to_string(),
    }
}

/// Splits `SCHEME://` off `uri` when the text before the first `://` is a scheme as
/// RFC 3986 spells it (a letter, then letters, digits, `+`, `-`, `.`); otherwise the
/// `://` belongs to something else (a password) and there is no scheme.
fn split_scheme(uri: &str) -> (&str, &str) {
    match uri.find("://") {
        Some(at)
            if uri[..at].starts_with(|c: char| c.is_ascii_alphabetic())
                && uri[..at]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) =>
        {
            uri.split_at(at + 3)
        }
        _ => ("", uri),
    }
}

/// Splits what follows `SCHEME://` into the userinfo, if any, and the rest. The userinfo
/// ends at the LAST `@`: hosts, Kafka topics and NATS prefixes hold none, while a password
/// or token may hold a raw `/`, `?` or `@` (base64 tokens do), which must neither end the
/// userinfo early nor leave the secret outside what is masked.
fn split_userinfo(rest: &str) -> (Option<&str>, &str) {
    match rest.rsplit_once('@') {
        Some((userinfo, after)) => (Some(userinfo), after),
        None => (None, rest),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_every_part() {
        let u =
            parse("nats://al%40x:p%3Aw@h1:4222,h2:4223/pre.fix?stream=S&tls=true").expect("valid");
        assert_eq!(u.scheme, "nats");
        assert_eq!(
            u.userinfo,
            Some(UserInfo::UserPassword("al@x".into(), "p:w".into()))
        );
        assert_eq!(u.hosts, ["h1:4222", "h2:4223"]);
        assert_eq!(u.path, "pre.fix");
        assert_eq!(
            u.query,
            [
                ("stream".to_string(), "S".to_string()),
                ("tls".to_string(), "true".to_string())
            ]
        );
    }

    #[test]
    fn keeps_placeholders_in_the_path() {
        let u = parse("kafka://h:9092/k8s.{group}.{resource}").expect("valid");
        assert_eq!(u.path, "k8s.{group}.{resource}");
        assert_eq!(u.userinfo, None);
    }

    #[test]
    fn token_and_errors() {
        let u = parse("nats://s3cret@h:1/p").expect("valid");
        assert_eq!(u.userinfo, Some(UserInfo::Token("s3cret".into())));
        assert!(parse("kafka:h:1/t").is_err());
        assert!(
            parse("kafka://h/t")
                .expect_err("no port")
                .contains("no port")
        );
        assert!(parse("kafka://h:99999/t").is_err());
        assert!(parse("kafka://h:1,/t").is_err());
    }

    #[test]
    fn percent_escapes() {
        assert_eq!(
            percent_decode("p%40ss%3Aw%2Frd").as_deref(),
            Ok("p@ss:w/rd")
        );
        assert_eq!(percent_decode("caf%C3%A9").as_deref(), Ok("café"));
        assert_eq!(percent_decode("plain").as_deref(), Ok("plain"));
        for bad in ["%", "a%4", "%zz", "%4g"] {
            assert!(
                percent_decode(bad).expect_err(bad).contains("bad %-escape"),
                "{bad}"
            );
        }
        assert!(
            percent_decode("%FF")
                .expect_err("not UTF-8")
                .contains("UTF-8")
        );
        assert!(parse("nats://u:p%zz@h:1/p").is_err());
    }

    #[test]
    fn redacts_secrets() {
        assert_eq!(redact("nats://u:pw@h:1/p"), "nats://u:***@h:1/p");
        assert_eq!(redact("nats://tok@h:1/p"), "nats://***@h:1/p");
        assert_eq!(redact("kafka://h:1/t"), "kafka://h:1/t");
        // A raw `/`, `?` or `@` inside the secret does not move it outside the mask.
        assert_eq!(redact("nats://u:pa/ss@h:1/p"), "nats://u:***@h:1/p");
        assert_eq!(redact("nats://u:pa?ss@h:1/p"), "nats://u:***@h:1/p");
        assert_eq!(redact("nats://to/k?e@n@h:1/p"), "nats://***@h:1/p");
        assert_eq!(redact("nats://u:pa#ss@h:1/p"), "nats://u:***@h:1/p");
        assert_eq!(redact("nats://u:p@s:s@h:1/p"), "nats://u:***@h:1/p");
        let parsed = parse("nats://u:pa/ss@h:1/p").expect("parses");
        assert_eq!(parsed.hosts, ["h:1"]);
        assert_eq!(parsed.path, "p");
    }

    /// Secrets in text that is not a valid URI are masked all the same: a missing or
    /// mistyped scheme, a `://` inside the password, a broken port.
    #[test]
    fn redacts_secrets_in_uris_that_do_not_parse() {
        let cases = [
            ("u:pa?ss@h:4222/p", "u:***@h:4222/p"),
            ("nats:/u:pa?ss@h:4222/p", "nats:***@h:4222/p"),
            ("nats:u:pa?ss@h:4222/p", "nats:***@h:4222/p"),
            ("u:pa://ss@h:1/p", "u:***@h:1/p"),
            ("nats://u:pa://ss@h:1/p", "nats://u:***@h:1/p"),
            ("nats://u:pa?ss@h:notaport/p", "nats://u:***@h:notaport/p"),
            ("1nats://u:pa?ss@h:1/p", "1nats:***@h:1/p"),
            ("tok/en?x#y@h:1", "***@h:1"),
        ];
        for (uri, masked) in cases {
            assert_eq!(redact(uri), masked, "{uri}");
            assert!(!redact(uri).contains("pa"), "{uri}");
        }
        // The parser's own errors never quote the credentials either.
        for uri in [
            "nats://u:pa?ss@h:notaport/p",
            "nats://u:pa?ss@h/p",
            "nats://u:pa%zzss@h:1/p",
            "nats://u:pa?ss@:1/p",
            "u:pa?ss@h:1/p",
            "u:pa://ss@h:1/p",
        ] {
            let e = parse(uri).expect_err(uri);
            assert!(!e.contains("pa"), "{uri}: {e}");
        }
    }
}
