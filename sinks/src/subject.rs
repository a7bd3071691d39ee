//! Destination names built from a notification: Kafka topics and NATS subjects.
//!
//! A template is literal text with `{group}`, `{version}`, `{resource}`, `{kind}`,
//! `{namespace}` and (for NATS subjects) `{name}` placeholders. `{group}` is `core` for
//! the core API group and `{namespace}` is `_` for cluster-scoped objects, so no token
//! is ever empty.

use crate::Notification;

/// One placeholder a template may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    Group,
    Version,
    Resource,
    Kind,
    Namespace,
    Name,
}

impl Field {
    fn parse(name: &str) -> Option<Field> {
        Some(match name {
            "group" => Field::Group,
            "version" => Field::Version,
            "resource" => Field::Resource,
            "kind" => Field::Kind,
            "namespace" => Field::Namespace,
            "name" => Field::Name,
            _ => return None,
        })
    }

    fn value(self, n: &Notification) -> &str {
        match self {
            Field::Group if n.resource.group.is_empty() => "core",
            Field::Group => &n.resource.group,
            Field::Version => &n.resource.version,
            Field::Resource => &n.resource.resource,
            Field::Kind => &n.resource.kind,
            Field::Namespace => n.namespace.as_deref().unwrap_or("_"),
            Field::Name => &n.name,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Field(Field),
}

/// A parsed template; [`Template::render`] fills it in for one notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parses `text`, accepting only the placeholders in `allowed`.
    pub(crate) fn parse(text: &str, allowed: &[Field]) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_string()));
            }
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("unclosed '{{' in \"{text}\""))?;
            let name = &rest[open + 1..open + close];
            let field = Field::parse(name)
                .filter(|f| allowed.contains(f))
                .ok_or_else(|| {
                    let names: Vec<String> = allowed
                        .iter()
                        .map(|f| format!("{{{}}}", name_of(*f)))
                        .collect();
                    format!("unknown placeholder {{{name}}}; use {}", names.join(", "))
                })?;
            parts.push(Part::Field(field));
            rest = &rest[open + close + 1..];
        }
        if rest.contains('}') {
            return Err(format!("unmatched '}}' in \"{text}\""));
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        Ok(Template { parts })
    }

    /// The literal text of the template with every placeholder replaced by `with`,
    /// to validate literals with the same rules as rendered names.
    pub(crate) fn sample(&self, with: &str) -> String {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Literal(s) => s.as_str(),
                Part::Field(_) => with,
            })
            .collect()
    }

    /// Fills the template for `n`, passing each placeholder's value through `clean`
    /// (literals are validated once, at parse time, by the caller).
    #[cfg_attr(not(feature = "kafka"), allow(dead_code))]
    pub(crate) fn render(&self, n: &Notification, clean: impl Fn(&str, &mut String)) -> String {
        let mut out = String::with_capacity(64);
        self.render_into(n, clean, &mut out);
        out
    }

    /// [`Template::render`], appended to `out`.
    pub(crate) fn render_into(
        &self,
        n: &Notification,
        clean: impl Fn(&str, &mut String),
        out: &mut String,
    ) {
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Field(f) => clean(f.value(n), out),
            }
        }
    }
}

fn name_of(f: Field) -> &'static str {
    match f {
        Field::Group => "group",
        Field::Version => "version",
        Field::Resource => "resource",
        Field::Kind => "kind",
        Field::Namespace => "namespace",
        Field::Name => "name",
    }
}

/// Placeholders a Kafka topic may use: not `{name}`, which would make a topic per object.
#[cfg(feature = "kafka")]
pub(crate) const TOPIC_FIELDS: &[Field] = &[
    Field::Group,
    Field::Version,
    Field::Resource,
    Field::Kind,
    Field::Namespace,
];

/// Placeholders a NATS subject may use.
#[cfg(feature = "nats")]
pub(crate) const SUBJECT_FIELDS: &[Field] = &[
    Field::Group,
    Field::Version,
    Field::Resource,
    Field::Kind,
    Field::Namespace,
    Field::Name,
];

/// The default NATS subject after the prefix.
#[cfg(feature = "nats")]
pub(crate) const DEFAULT_SUBJECT: &str = "{group}.{version}.{resource}.{namespace}.{name}";

/// Appends `value` as one NATS subject token: `.` would split it, `*` and `>` are
/// wildcards and whitespace ends a subject in the protocol, so each becomes `_`; an
/// empty value becomes `_` because an empty token is invalid.
#[cfg(feature = "nats")]
pub(crate) fn nats_token(value: &str, out: &mut String) {
    if value.is_empty() {
        out.push('_');
        return;
    }
    // Nearly every Kubernetes name is plain ASCII with nothing to replace: copy it whole
    // (a control character, ASCII whitespace among them, sends it the slow way).
    if value
        .bytes()
        .all(|b| b.is_ascii_graphic() && !matches!(b, b'.' | b'*' | b'>'))
    {
        out.push_str(value);
        return;
    }
    out.extend(value.chars().map(|c| match c {
        '.' | '*' | '>' => '_',
        c if c.is_whitespace() || c.is_control() => '_',
        c => c,
    }));
}

/// Appends `value` to a Kafka topic name: Kafka allows only `[a-zA-Z0-9._-]`, so
/// anything else becomes `_`.
#[cfg(feature = "kafka")]
pub(crate) fn kafka_topic_part(value: &str, out: &mut String) {
    if value.is_empty() {
        out.push('_');
        return;
    }
    if value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        out.push_str(value);
        return;
    }
    out.extend(value.chars().map(|c| {
        if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
            c
        } else {
            '_'
        }
    }));
}

/// Checks a literal NATS subject (prefix, or a template with placeholders filled):
/// dot-separated, non-empty tokens without wildcards or whitespace.
#[cfg(feature = "nats")]
pub(crate) fn check_nats_subject(subject: &str) -> Result<(), String> {
    for token in subject.split('.') {
        if token.is_empty() {
            return Err(format!("\"{subject}\" has an empty token"));
        }
        if token
            .chars()
            .any(|c| c == '*' || c == '>' || c.is_whitespace() || c.is_control())
        {
            return Err(format!(
                "\"{subject}\" has a wildcard or whitespace in token \"{token}\""
            ));
        }
    }
    Ok(())
}

/// Checks a Kafka topic (with placeholders filled): 1 to 249 characters of
/// `[a-zA-Z0-9._-]`, and not `.` or `..`.
#[cfg(feature = "kafka")]
pub(crate) fn check_kafka_topic(topic: &str) -> Result<(), String> {
    if topic.is_empty() || topic.len() > 249 || topic == "." || topic == ".." {
        return Err(format!("\"{topic}\" is not a valid topic name"));
    }
    if let Some(c) = topic
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "topic \"{topic}\" has '{c}'; Kafka allows only letters, digits, '.', '_' and '-'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventType, Origin, ResourceId};
    use serde_json::value::RawValue;
    use std::sync::Arc;

    fn note(group: &str, ns: Option<&str>, name: &str) -> Notification {
        Notification {
            event_type: EventType::Added,
            origin: Origin::Watch,
            time: std::time::SystemTime::UNIX_EPOCH,
            cluster: None,
            resource: Arc::new(ResourceId {
                group: group.into(),
                version: "v1".into(),
                resource: "pods".into(),
                kind: "Pod".into(),
            }),
            namespace: ns.map(String::from),
            name: name.into(),
            uid: "u".into(),
            resource_version: "1".into(),
            object: Arc::from(RawValue::from_string("{}".into()).expect("valid")),
            old_object: None,
            snapshot: None,
            tombstone: false,
            old_resource_version: None,
            patch: None,
        }
    }

    #[cfg(feature = "nats")]
    #[test]
    fn default_subject_sanitises_tokens() {
        let t = Template::parse(DEFAULT_SUBJECT, SUBJECT_FIELDS).expect("valid");
        let s = t.render(&note("", None, "a.b *>c"), nats_token);
        assert_eq!(s, "core.v1.pods._.a_b___c");
        let s = t.render(&note("apps.k8s.io", Some("ns"), ""), nats_token);
        assert_eq!(s, "apps_k8s_io.v1.pods.ns._");
    }

    /// Plain names take the fast path, anything else is cleaned character by character;
    /// both give what the rules say.
    #[test]
    fn tokens_with_and_without_anything_to_replace() {
        let clean = |f: fn(&str, &mut String), value: &str| {
            let mut out = String::from(">");
            f(value, &mut out);
            out
        };
        #[cfg(feature = "nats")]
        for (value, want) in [
            ("web-7d4b9c-x2x9z", ">web-7d4b9c-x2x9z"),
            ("", ">_"),
            ("a.b*c>d", ">a_b_c_d"),
            ("tab\there\nnl", ">tab_here_nl"),
            ("del\u{7f}", ">del_"),
            ("caf\u{e9}.x", ">caf\u{e9}_x"),
            ("nb\u{a0}sp", ">nb_sp"),
        ] {
            assert_eq!(clean(nats_token, value), want, "{value:?}");
        }
        #[cfg(feature = "kafka")]
        for (value, want) in [
            ("apps.k8s.io_v1-x", ">apps.k8s.io_v1-x"),
            ("", ">_"),
            ("a/b c", ">a_b_c"),
            ("caf\u{e9}", ">caf_"),
        ] {
            assert_eq!(clean(kafka_topic_part, value), want, "{value:?}");
        }
    }

    #[cfg(feature = "kafka")]
    #[test]
    fn topic_template() {
        let t = Template::parse("k8s-{group}-{kind}", TOPIC_FIELDS).expect("valid");
        assert_eq!(
            t.render(&note("", Some("x"), "n"), kafka_topic_part),
            "k8s-core-Pod"
        );
        assert!(
            Template::parse("t-{name}", TOPIC_FIELDS)
                .expect_err("name not allowed")
                .contains("unknown placeholder {name}")
        );
        assert!(Template::parse("t-{group", TOPIC_FIELDS).is_err());
        assert!(check_kafka_topic("a/b").is_err());
        assert!(check_kafka_topic("ok.topic_1-x").is_ok());
    }

    #[cfg(feature = "nats")]
    #[test]
    fn checks_subjects() {
        assert!(check_nats_subject("a.b").is_ok());
        assert!(check_nats_subject("a..b").is_err());
        assert!(check_nats_subject("a.*").is_err());
        assert!(check_nats_subject("a b").is_err());
    }
}
