//! What the API server sends a reflector: LIST pages and watch events, decoded only as far
//! as the reflector needs (objects stay raw JSON).

use std::collections::BTreeMap;

use kubebridge_sinks::ResourceId;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::RawObject;
use crate::kube::api::{self, ApiError};

/// The annotation on the bookmark that ends a watch-list's initial events.
const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

/// One page of a LIST.
pub(super) struct ListPage {
    /// The page's objects.
    pub(super) objects: Vec<RawObject>,
    /// The list's resourceVersion (the same on every page of one list).
    pub(super) resource_version: String,
    /// The token for the next page; `None` on the last page.
    pub(super) continue_token: Option<String>,
}

/// A LIST response body as it arrives, before its items are decoded.
#[derive(Deserialize)]
pub(super) struct ListBody {
    metadata: ListMeta,
    #[serde(default)]
    items: Vec<Box<RawValue>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListMeta {
    #[serde(default)]
    resource_version: String,
    #[serde(default, rename = "continue")]
    continue_token: Option<String>,
}

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

/// Decodes a LIST response body of `resource` fetched from `path`.
pub(super) fn decode_page(
    page: ListBody,
    resource: &ResourceId,
    path: &str,
) -> Result<ListPage, ApiError> {
    let objects = page
        .items
        .into_iter()
        .map(|item| decode_object(item, resource, path, "list"))
        .collect::<Result<_, _>>()?;
    Ok(ListPage {
        objects,
        resource_version: page.metadata.resource_version,
        continue_token: page.metadata.continue_token.filter(|t| !t.is_empty()),
    })
}

/// Decodes one line of a watch of `resource` at `path`. An `ERROR` event is returned as
/// the error it carries, so that every way a watch can fail reaches the caller one way.
pub(super) fn decode_event(
    line: &str,
    resource: &ResourceId,
    path: &str,
) -> Result<WatchEvent, ApiError> {
    let event: RawWatchEvent = serde_json::from_str(line).map_err(|e| ApiError::Decode {
        path: path.to_owned(),
        detail: format!("a watch line that is not an event: {e}"),
    })?;
    let object = |raw| decode_object(raw, resource, path, "watch");
    Ok(match event.kind.as_str() {
        "ADDED" => WatchEvent::Added(object(event.object)?),
        "MODIFIED" => WatchEvent::Modified(object(event.object)?),
        "DELETED" => WatchEvent::Deleted(object(event.object)?),
        "BOOKMARK" => {
            let bookmark: Bookmark =
                serde_json::from_str(event.object.get()).map_err(|e| ApiError::Decode {
                    path: path.to_owned(),
                    detail: format!("a bookmark without metadata: {e}"),
                })?;
            let meta = bookmark.metadata;
            WatchEvent::Bookmark {
                ends_initial_events: meta
                    .annotations
                    .get(INITIAL_EVENTS_END)
                    .is_some_and(|v| v == "true"),
                resource_version: Some(meta.resource_version).filter(|rv| !rv.is_empty()),
            }
        }
        "ERROR" => return Err(api::status_from_event(path, event.object.get())),
        _ => WatchEvent::Unknown(event.kind),
    })
}

fn decode_object(
    raw: Box<RawValue>,
    resource: &ResourceId,
    path: &str,
    what: &str,
) -> Result<RawObject, ApiError> {
    RawObject::decode(raw, resource).map_err(|e| ApiError::Decode {
        path: path.to_owned(),
        detail: format!("a {what} object without the metadata every object has: {e}"),
    })
}
