//! What the API server sends a reflector on a watch: events, decoded only as far as the
//! reflector needs (objects stay raw JSON). LIST pages: [`list_page`](super::list_page).

use std::collections::BTreeMap;

use std::fmt;

use kubebridge_sinks::ResourceId;
use serde::Deserialize;
use serde::de::{Deserializer as _, IgnoredAny, MapAccess, Visitor};
use serde_json::error::Category;
use serde_json::value::RawValue;

use super::RawObject;
use super::list_page::{Items, Key, Writing, decode_object};
use super::transform::ObjectTransform;
use crate::kube::api::{self, ApiError};

/// The annotation on the bookmark that ends a watch-list's initial events.
const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

/// One event of a watch.
pub(super) enum WatchEvent {
    /// `ADDED`.
    Added(RawObject),
    /// `MODIFIED`.
    Modified(RawObject),
    /// `DELETED`, with the object's final state.
    Deleted(RawObject),
    /// `BOOKMARK`: the watch has seen everything up to `resource_version`.
    Bookmark {
        /// The bookmark's resourceVersion, if it has one.
        resource_version: Option<String>,
        /// Whether it ends a watch-list's initial events.
        ends_initial_events: bool,
    },
    /// An event type this version of kubebridge does not know; ignored.
    Unknown(String),
}

impl WatchEvent {
    /// The resourceVersion the watch has reached after this event, if it says.
    pub(super) fn resource_version(&self) -> Option<&str> {
        match self {
            WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => {
                Some(&o.resource_version)
            }
            WatchEvent::Bookmark {
                resource_version, ..
            } => resource_version.as_deref(),
            WatchEvent::Unknown(_) => None,
        }
    }
}

#[derive(Deserialize)]
struct Bookmark {
    metadata: BookmarkMeta,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BookmarkMeta {
    #[serde(default)]
    resource_version: String,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// Why a watch line is not an event.
pub(super) enum BadLine {
    /// An `ERROR` event: the server ends the watch with this.
    Status(ApiError),
    /// Not a watch event kubebridge can use: not JSON, not an event, or an object
    /// without metadata. Says where it went wrong, never what the line holds.
    Malformed(String),
}

/// Decodes one line of a watch of `resource` at `path`, its object through `transform`.
/// An `ERROR` event is returned as the error it carries, so that every way a watch can
/// fail reaches the caller one way.
pub(super) fn decode_event(
    line: &[u8],
    resource: &ResourceId,
    transform: &ObjectTransform,
    path: &str,
) -> Result<WatchEvent, BadLine> {
    let malformed =
        |what: &str, e: serde_json::Error| BadLine::Malformed(format!("{what}: {}", describe(&e)));
    let no_metadata = "an object without the metadata every object has";
    let api_version = resource.api_version();
    let mut objects = Items::new(&resource.kind, &api_version, transform, Writing::Trusted);
    let mut de = serde_json::Deserializer::from_slice(line);
    let (kind, object) = de
        .deserialize_map(EventVisitor {
            objects: &mut objects,
        })
        .and_then(|event| de.end().map(|()| event))
        .map_err(|e| {
            // A syntax error or an early end is the line's, wherever it is.
            let inside = objects.failed_in_object() && matches!(e.classify(), Category::Data);
            malformed(
                if inside {
                    no_metadata
                } else {
                    "not a watch event"
                },
                e,
            )
        })?;
    let object = object.ok_or_else(|| {
        malformed(
            "not a watch event",
            serde::de::Error::missing_field("object"),
        )
    })?;
    let decoded = |object: EventObject<'_>| match object {
        EventObject::Decoded(o) => Ok(o),
        // `object` came before `type` (no API server writes that): decoded on its own.
        EventObject::Raw(raw) => {
            decode_object(raw, resource, transform).map_err(|e| malformed(no_metadata, e))
        }
    };
    Ok(match kind.as_str() {
        "ADDED" => WatchEvent::Added(decoded(object)?),
        "MODIFIED" => WatchEvent::Modified(decoded(object)?),
        "DELETED" => WatchEvent::Deleted(decoded(object)?),
        "BOOKMARK" => {
            let bookmark: Bookmark = serde_json::from_str(object.text())
                .map_err(|e| malformed("a bookmark without metadata", e))?;
            let meta = bookmark.metadata;
            WatchEvent::Bookmark {
                ends_initial_events: meta
                    .annotations
                    .get(INITIAL_EVENTS_END)
                    .is_some_and(|v| v == "true"),
                resource_version: Some(meta.resource_version).filter(|rv| !rv.is_empty()),
            }
        }
        "ERROR" => {
            return Err(BadLine::Status(api::status_from_event(path, object.text())));
        }
        _ => WatchEvent::Unknown(kind),
    })
}

/// A watch event's object: an object of the watched resource, decoded while the line is
/// read (one scan), or, for bookmarks, errors and anything unknown, its text.
enum EventObject<'de> {
    Decoded(RawObject),
    Raw(&'de RawValue),
}

impl EventObject<'_> {
    /// The text of an object that was not decoded (a decoded one is no bookmark or
    /// error: its event type said so).
    fn text(&self) -> &str {
        match self {
            EventObject::Raw(raw) => raw.get(),
            EventObject::Decoded(o) => o.raw.get(),
        }
    }
}

/// Reads `type`, then `object` as what `type` says it is: the API server writes `type`
/// first, so an object of the resource is decoded as the line is read.
struct EventVisitor<'p, 'a, 'de> {
    objects: &'p mut Items<'a, 'de>,
}

impl<'de> Visitor<'de> for EventVisitor<'_, '_, 'de> {
    type Value = (String, Option<EventObject<'de>>);

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a watch event")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut kind, mut object) = (None::<String>, None);
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            match key.as_ref() {
                "type" => kind = Some(map.next_value()?),
                "object" => {
                    object = Some(match kind.as_deref() {
                        Some("ADDED" | "MODIFIED" | "DELETED") => {
                            EventObject::Decoded(map.next_value_seed(self.objects.object())?)
                        }
                        _ => EventObject::Raw(map.next_value::<&'de RawValue>()?),
                    });
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let kind = kind.ok_or_else(|| serde::de::Error::missing_field("type"))?;
        Ok((kind, object))
    }
}

/// Where a JSON decode failed, without quoting the input: serde's own messages can
/// quote a value (`invalid type: string "..."`), and the value may be a Secret's.
pub(super) fn describe(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Io => "unreadable",
        Category::Syntax => "not valid JSON",
        Category::Data => "not the expected shape",
        Category::Eof => "ends early",
    };
    format!("{what} at line {} column {}", e.line(), e.column())
}

/// How much of a bad line a log may show, in characters.
const PREFIX_CHARS: usize = 120;

/// The start of a bad watch line of `resource`, for a log: at most [`PREFIX_CHARS`]
/// characters (escaped, so a control character cannot forge a log line), and nothing
/// at all if the line may belong to a Secret, or to a resource whose `transform`
/// redacts values, whose data must not reach a log.
pub(super) fn log_prefix(
    line: &[u8],
    resource: &ResourceId,
    transform: &ObjectTransform,
) -> Option<String> {
    let secret = |bytes: &[u8]| bytes.windows(6).any(|w| w == b"Secret");
    if resource.kind == "Secret" || transform.redacts() || secret(line) {
        return None;
    }
    // Enough bytes for the characters wanted even if each is four bytes long.
    let start = &line[..line.len().min(PREFIX_CHARS * 4)];
    let mut prefix = String::new();
    for escaped in String::from_utf8_lossy(start)
        .chars()
        .flat_map(char::escape_debug)
    {
        if prefix.chars().count() >= PREFIX_CHARS {
            break;
        }
        prefix.push(escaped);
    }
    Some(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(kind: &str) -> ResourceId {
        ResourceId {
            group: String::new(),
            version: "v1".into(),
            resource: format!("{}s", kind.to_lowercase()),
            kind: kind.into(),
        }
    }

    #[test]
    fn a_log_shows_at_most_120_characters_and_nothing_of_a_secret() {
        let pods = resource("Pod");
        let none = ObjectTransform::none();
        let long = format!("{{\"type\":\"ADDED\",\"object\":\"{}", "é\n".repeat(400));
        let prefix = log_prefix(long.as_bytes(), &pods, &none).expect("a pod's line");
        assert_eq!(prefix.chars().count(), PREFIX_CHARS, "{prefix}");
        assert!(!prefix.contains('\n'), "escaped: {prefix}");
        assert_eq!(
            log_prefix(b"garbage", &pods, &none).as_deref(),
            Some("garbage")
        );
        let secret_line = br#"{"type":"ADDED","object":{"kind":"Secret","data":{"k":"c2VjcmV0"}"#;
        assert_eq!(log_prefix(secret_line, &pods, &none), None);
        assert_eq!(log_prefix(b"garbage", &resource("Secret"), &none), None);
    }

    fn decode(line: &str, transform: &ObjectTransform) -> Result<WatchEvent, BadLine> {
        decode_event(line.as_bytes(), &resource("Pod"), transform, "/p")
    }

    fn malformed(line: &str) -> String {
        match decode(line, &ObjectTransform::none()) {
            Err(BadLine::Malformed(detail)) => detail,
            _ => panic!("{line} is malformed"),
        }
    }

    #[test]
    fn an_event_object_is_decoded_as_the_line_is_read() {
        let pod = r#"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"a","namespace":"ns","uid":"u","resourceVersion":"7","managedFields":[{"manager":"m"}]},"spec":{"x":"\"}"}}"#;
        for (kind, line) in [
            (
                "MODIFIED",
                format!(r#"{{"type":"MODIFIED","object":{pod}}}"#),
            ),
            // `object` before `type` (no API server writes that) decodes the same.
            (
                "MODIFIED",
                format!(r#"{{"object":{pod},"type":"MODIFIED"}}"#),
            ),
            (
                "DELETED",
                format!(r#" {{ "type" : "DELETED" , "object" : {pod} }} "#),
            ),
        ] {
            let (Ok(WatchEvent::Modified(o)) | Ok(WatchEvent::Deleted(o))) =
                decode(&line, &ObjectTransform::none())
            else {
                panic!("{kind}: {line}");
            };
            assert_eq!(
                (
                    o.key().as_str(),
                    o.uid.as_str(),
                    o.resource_version.as_str()
                ),
                ("ns/a", "u", "7")
            );
            assert_eq!(o.raw.get(), pod, "kept byte for byte");
        }
        let stripping = crate::informer::testing::transform(true, Vec::new());
        let Ok(WatchEvent::Added(o)) =
            decode(&format!(r#"{{"type":"ADDED","object":{pod}}}"#), &stripping)
        else {
            panic!("added");
        };
        assert_eq!(
            o.raw.get(),
            pod.replace(r#","managedFields":[{"manager":"m"}]"#, ""),
            "managedFields stripped, nothing else touched"
        );
    }

    /// A resource with redaction rules: the watch path hashes the values (in either
    /// member order), and no line of it is ever quoted in a log.
    #[test]
    fn redacted_values_never_leave_a_watch_event() {
        let t = crate::informer::testing::transform(
            true,
            vec![crate::informer::testing::pod_token_rule()],
        );
        let pod = r#"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"a","uid":"u","resourceVersion":"7"},"spec":{"token":"s3cret"}}"#;
        for line in [
            format!(r#"{{"type":"ADDED","object":{pod}}}"#),
            format!(r#"{{"object":{pod},"type":"MODIFIED"}}"#),
        ] {
            let (Ok(WatchEvent::Added(o)) | Ok(WatchEvent::Modified(o))) = decode(&line, &t) else {
                panic!("{line}");
            };
            let text = o.raw.get();
            assert!(
                !text.contains("s3cret") && text.contains("hmac-sha256:"),
                "{text}"
            );
            assert_eq!(log_prefix(line.as_bytes(), &resource("Pod"), &t), None);
        }
    }

    #[test]
    fn bookmarks_errors_and_unknown_types() {
        let none = ObjectTransform::none();
        let bookmark = r#"{"type":"BOOKMARK","object":{"kind":"Pod","metadata":{"resourceVersion":"9","annotations":{"k8s.io/initial-events-end":"true"}}}}"#;
        assert!(matches!(
            decode(bookmark, &none),
            Ok(WatchEvent::Bookmark { ends_initial_events: true, resource_version: Some(rv) }) if rv == "9"
        ));
        let error = r#"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","status":"Failure","message":"too old","reason":"Expired","code":410}}"#;
        assert!(matches!(decode(error, &none), Err(BadLine::Status(_))));
        assert!(matches!(
            decode(r#"{"type":"SOMETHING","object":{}}"#, &none),
            Ok(WatchEvent::Unknown(t)) if t == "SOMETHING"
        ));
    }

    #[test]
    fn what_is_wrong_with_a_line_is_named() {
        for line in [
            "garbage",
            r#"{"type":"ADDED"}"#,
            r#"{"object":{}}"#,
            r#"{"type":"ADDED","object":{"metadata":{"name":"a"}}} trailing"#,
            r#"{"type":"ADDED","object":{"metadata":{"name":"a"}"#,
        ] {
            assert!(
                malformed(line).starts_with("not a watch event"),
                "{line}: {}",
                malformed(line)
            );
        }
        for line in [
            r#"{"type":"ADDED","object":{"kind":"Pod"}}"#,
            r#"{"type":"MODIFIED","object":{"metadata":{"name":7}}}"#,
            r#"{"object":{"kind":"Pod"},"type":"DELETED"}"#,
        ] {
            assert!(
                malformed(line).starts_with("an object without the metadata every object has"),
                "{line}: {}",
                malformed(line)
            );
        }
    }

    #[test]
    fn a_decode_error_never_quotes_the_line() {
        let pods = resource("Pod");
        let line = br#"{"type":"ADDED","object":{"metadata":"c2VjcmV0"}}"#;
        let Err(BadLine::Malformed(detail)) =
            decode_event(line, &pods, &ObjectTransform::none(), "/p")
        else {
            panic!("malformed");
        };
        assert!(!detail.contains("c2VjcmV0"), "{detail}");
        assert!(detail.contains("metadata"), "{detail}");
    }
}
