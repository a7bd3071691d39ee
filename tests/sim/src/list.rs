//! LIST: a page of a resource's objects from an exact snapshot, so every page of one list is consistent.

use std::collections::HashMap;
use std::sync::Arc;

use http::{Response, StatusCode};
use serde_json::{Value, json};

use crate::continue_token::ContinueToken;
use crate::error::ApiError;
use crate::media::{self, Representation};
use crate::request::selectors;
use crate::resources::ResourceType;
use crate::response::{Body, json_response, value_response};
use crate::shared::Shared;
use crate::store::{ObjKey, Store, StoredObject};
use crate::table;
use crate::watch::Filter;

const CONTINUE_EXPIRED: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

/// One page of a list, and where the next one starts.
#[derive(Default)]
struct Page {
    items: Vec<Arc<StoredObject>>,
    next: Option<ContinueToken>,
    remaining: Option<u64>,
}

/// LIST, served from an exact snapshot so that every page of one list is consistent.
pub(crate) fn list(
    shared: &Arc<Shared>,
    rt: &Arc<ResourceType>,
    ns: Option<&str>,
    query: &HashMap<String, String>,
    repr: Representation,
) -> Result<Response<Body>, ApiError> {
    let (labels, fields) = selectors(query, &rt.key())?;
    let param = |k: &str| query.get(k).map(String::as_str).unwrap_or_default();
    let limit: usize = match param("limit") {
        "" => 0,
        s => s
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid limit: {s}")))?,
    };
    let rv_param = param("resourceVersion");
    let token = match param("continue") {
        "" => None,
        t => {
            if !rv_param.is_empty() {
                return Err(ApiError::bad_request(
                    "specifying resource version is not allowed when using continue",
                ));
            }
            Some(ContinueToken::decode(t).ok_or_else(|| ApiError::bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"))?)
        }
    };
    let filter = Filter {
        resource: rt.key(),
        namespace: ns.map(str::to_string),
        labels,
        fields,
    };
    let (at, page) = {
        let store = shared.lock();
        let (at, after) = match &token {
            Some(t) => continue_point(&store, t)?,
            None => (
                snapshot_point(&store, rv_param, param("resourceVersionMatch"))?,
                None,
            ),
        };
        // Like the watch cache, resourceVersion=0 without a continue token ignores limit and returns everything.
        let limit = if token.is_none() && rv_param == "0" {
            0
        } else {
            limit
        };
        (at, page(&store, &filter, at, after, limit))
    };
    let mut meta = json!({"resourceVersion": at.to_string()});
    if let Some(t) = &page.next {
        meta["continue"] = json!(t.encode());
    }
    if let Some(r) = page.remaining {
        meta["remainingItemCount"] = json!(r);
    }
    Ok(render(rt, &page.items, meta, repr))
}

/// Where a continued list resumes: the first page's snapshot, after its last key.
fn continue_point(store: &Store, t: &ContinueToken) -> Result<(u64, Option<ObjKey>), ApiError> {
    if t.resource_version < store.list_compacted() {
        return Err(ApiError::expired(CONTINUE_EXPIRED));
    }
    let (kns, kname) = t
        .last_key
        .split_once('/')
        .unwrap_or(("", t.last_key.as_str()));
    Ok((
        t.resource_version,
        Some((kns.to_string(), kname.to_string())),
    ))
}

/// The snapshot a first page reads, from `resourceVersion` and `resourceVersionMatch`.
fn snapshot_point(store: &Store, rv: &str, rv_match: &str) -> Result<u64, ApiError> {
    let current = store.resource_version();
    let too_large = |r: u64| {
        ApiError::new(
            504,
            "Timeout",
            format!("Too large resource version: {r}, current: {current}"),
        )
    };
    match (rv, rv_match) {
        ("", _) | ("0", "") | ("0", "NotOlderThan") => return Ok(current),
        _ => {}
    }
    let r: u64 = rv
        .parse()
        .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv}")))?;
    match rv_match {
        "Exact" => {
            if r < store.list_compacted() {
                return Err(ApiError::expired(format!(
                    "too old resource version: {r} ({})",
                    store.list_compacted()
                )));
            }
            if r > current {
                return Err(too_large(r));
            }
            Ok(r)
        }
        "" | "NotOlderThan" => {
            if r > current {
                return Err(too_large(r));
            }
            Ok(current)
        }
        other => Err(ApiError::bad_request(format!(
            "resourceVersionMatch: Unsupported value: \"{other}\""
        ))),
    }
}

/// Up to `limit` (0 = all) matching objects as of `at`, after `after`; with a continue token when more remain.
fn page(store: &Store, filter: &Filter, at: u64, after: Option<ObjKey>, limit: usize) -> Page {
    let ns = filter.namespace.as_deref();
    let mut page = Page::default();
    let mut more = false;
    let mut last_key = None;
    store.scan(&filter.resource, ns, after.as_ref(), at, |key, obj| {
        if !filter.matches(obj) {
            return true;
        }
        if limit > 0 && page.items.len() >= limit {
            more = true;
            return false;
        }
        last_key = Some(key.clone());
        page.items.push(obj.clone());
        true
    });
    if more && let Some(key) = last_key {
        if filter.labels.is_empty() && filter.fields.is_empty() {
            let mut count = 0u64;
            store.scan(&filter.resource, ns, Some(&key), at, |_, _| {
                count += 1;
                true
            });
            page.remaining = Some(count);
        }
        page.next = Some(ContinueToken {
            resource_version: at,
            last_key: format!("{}/{}", key.0, key.1),
        });
    }
    page
}

/// The list document in the negotiated representation.
fn render(
    rt: &ResourceType,
    items: &[Arc<StoredObject>],
    meta: Value,
    repr: Representation,
) -> Response<Body> {
    match repr {
        Representation::Table => {
            let rows = items
                .iter()
                .map(|o| table::row(rt, &o.to_value()))
                .collect();
            value_response(StatusCode::OK, &table::table(rt, rows, meta))
        }
        Representation::Metadata => {
            let items: Vec<Value> = items
                .iter()
                .map(|o| media::partial_metadata(&o.to_value()["metadata"]))
                .collect();
            let list = json!({
                "kind": "PartialObjectMetadataList",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": meta,
                "items": items,
            });
            value_response(StatusCode::OK, &list)
        }
        Representation::Full => json_response(StatusCode::OK, full_list(rt, items, &meta)),
    }
}

/// A full list written around the stored bodies, without re-serializing them. Typed lists
/// omit kind/apiVersion on items; custom resources' items carry them, as the apiserver does.
fn full_list(rt: &ResourceType, items: &[Arc<StoredObject>], meta: &Value) -> Vec<u8> {
    let api_version = rt.api_version();
    let total: usize = items.iter().map(|o| o.body.len() + 64).sum();
    let mut out = Vec::with_capacity(total + 256);
    out.extend_from_slice(b"{\"apiVersion\":");
    out.extend_from_slice(&serde_json::to_vec(&api_version).expect("strings serialize"));
    out.extend_from_slice(b",\"items\":[");
    for (i, obj) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        if rt.custom {
            out.extend_from_slice(&obj.json_with_type(&rt.kind, &api_version));
        } else {
            out.extend_from_slice(&obj.body);
        }
    }
    out.extend_from_slice(b"],\"kind\":");
    out.extend_from_slice(&serde_json::to_vec(&rt.list_kind()).expect("strings serialize"));
    out.extend_from_slice(b",\"metadata\":");
    out.extend_from_slice(&serde_json::to_vec(meta).expect("JSON values serialize"));
    out.push(b'}');
    out
}
