//! What the API server sends a reflector on a watch: events, decoded only as far as the
//! reflector needs (objects stay raw JSON). LIST pages: [`list_page`](super::list_page).

use std::collections::BTreeMap;

use kubebridge_sinks::ResourceId;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::RawObject;
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
struct RawWatchEvent {
    #[serde(rename = "type")]
    kind: String,
    object: Box<RawValue>,
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
    let event: RawWatchEvent =
        serde_json::from_slice(line).map_err(|e| malformed("not a watch event", e))?;
    let object = |raw| {
        RawObject::decode(raw, resource, transform)
            .map_err(|e| malformed("an object without the metadata every object has", e))
    };
    Ok(match event.kind.as_str() {
        "ADDED" => WatchEvent::Added(object(event.object)?),
        "MODIFIED" => WatchEvent::Modified(object(event.object)?),
        "DELETED" => WatchEvent::Deleted(object(event.object)?),
        "BOOKMARK" => {
            let bookmark: Bookmark = serde_json::from_str(event.object.get())
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
            return Err(BadLine::Status(api::status_from_event(
                path,
                event.object.get(),
            )));
        }
        _ => WatchEvent::Unknown(event.kind),
    })
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
