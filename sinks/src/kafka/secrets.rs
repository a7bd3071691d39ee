//! Which librdkafka properties hold secrets, and scrubbing their values out of any text
//! (librdkafka's error descriptions quote values back, whole or in part).

/// Words in a property name that make its value a secret: `sasl.password`,
/// `ssl.key.password`, `ssl.keystore.password`, `sasl.oauthbearer.client.secret`,
/// `sasl.jaas.config` (Java-style, the password inside), `sasl.oauthbearer.config`
/// (`principal=... clientSecret=...`), any `*token*` or `*credential*`.
const SECRET_WORDS: &[&str] = &[
    "password",
    "secret",
    "jaas",
    "token",
    "credential",
    "oauthbearer.config",
    "oauthbearer.extensions",
];

/// Properties whose whole value is secret without a telling word: the private key in
/// PEM (`ssl.key.pem`), or as librdkafka's binary `ssl_key`.
const SECRET_KEYS: &[&str] = &["ssl.key.pem", "ssl_key"];

/// The shortest part of a value scrubbed on its own (see [`Scrubber::scrub`]): shorter
/// pieces (`=`, `"`, `a`) would mangle the message without protecting anything.
const MIN_FRAGMENT: usize = 4;

/// Whether the value of the librdkafka property `key` is a secret.
pub(super) fn is_sensitive(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| key.contains(w)) || SECRET_KEYS.contains(&key.as_str())
}

/// The values to keep out of messages: every sensitive property's, found once when
/// the sink is configured.
#[derive(Debug, Clone, Default)]
pub(super) struct Scrubber {
    secrets: Vec<String>,
}

impl Scrubber {
    /// Collects the values of the sensitive ones among `properties`.
    pub fn new<'a>(properties: impl IntoIterator<Item = (&'a str, &'a str)>) -> Scrubber {
        let mut secrets: Vec<String> = properties
            .into_iter()
            .filter(|(k, v)| is_sensitive(k) && !v.is_empty())
            .map(|(_, v)| v.to_string())
            .collect();
        secrets.sort();
        secrets.dedup();
        Scrubber { secrets }
    }

    /// `text` with every sensitive value, and `also` (the value librdkafka just
    /// rejected, whatever its key: `sasl.passwrd` is a typo of a secret), replaced by
    /// `***`, whole and in parts: librdkafka may quote a piece of a value (one
    /// `key="value"` of a JAAS line), so each part between spaces, quotes, `;`, `,`
    /// and `=` of [`MIN_FRAGMENT`] characters or more goes as well.
    pub fn scrub(&self, text: &str, also: Option<&str>) -> String {
        let mut needles: Vec<&str> = Vec::new();
        for value in self.secrets.iter().map(String::as_str).chain(also) {
            if value.is_empty() {
                continue;
            }
            needles.push(value);
            needles.extend(
                value
                    .split(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ';' | ',' | '='))
                    .filter(|f| f.len() >= MIN_FRAGMENT),
            );
        }
        // Longest first, so a whole value goes before the parts it contains.
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        let mut out = text.to_string();
        for n in needles {
            if out.contains(n) {
                out = out.replace(n, "***");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_properties_are_recognised() {
        for key in [
            "sasl.password",
            "SASL.PASSWORD",
            "ssl.key.password",
            "ssl.keystore.password",
            "ssl.key.pem",
            "ssl_key",
            "sasl.jaas.config",
            "sasl.oauthbearer.client.secret",
            "sasl.oauthbearer.config",
            "sasl.oauthbearer.extensions",
            "sasl.oauthbearer.token.endpoint.url",
            "my.credentials",
        ] {
            assert!(is_sensitive(key), "{key}");
        }
        for key in [
            "acks",
            "sasl.username",
            "ssl.key.location",
            "ssl.certificate.pem",
        ] {
            assert!(!is_sensitive(key), "{key}");
        }
    }

    #[test]
    fn scrubs_whole_values_and_their_parts() {
        let s = Scrubber::new([
            ("sasl.password", "hunter2"),
            (
                "sasl.jaas.config",
                "PlainLoginModule required username=\"bob\" password=\"jaas-s3cret\";",
            ),
            ("acks", "all"),
        ]);
        let text = "bad: hunter2 and password=\"jaas-s3cret\" and all";
        let out = s.scrub(text, None);
        assert!(
            !out.contains("hunter2") && !out.contains("jaas-s3cret"),
            "{out}"
        );
        assert!(out.ends_with("and all"), "not sensitive, kept: {out}");
        // The rejected value goes too, whatever its key.
        let out = s.scrub(
            "Invalid value \"typo-pw\" for sasl.passwrd",
            Some("typo-pw"),
        );
        assert_eq!(out, "Invalid value \"***\" for sasl.passwrd");
        assert_eq!(Scrubber::default().scrub("x", Some("")), "x");
    }
}
