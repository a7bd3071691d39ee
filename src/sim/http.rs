//! The HTTP front end: one catch-all handler routing discovery and resource paths, with faults and counters.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::{Value, json};

use crate::selector::{FieldSelector, LabelSelector};
use crate::sim::continue_token::ContinueToken;
use crate::sim::discovery;
use crate::sim::error::ApiError;
use crate::sim::media::{self, Representation};
use crate::sim::openapi;
use crate::sim::ops::{self, Target};
use crate::sim::resources::{ResourceType, selectable_fields};
use crate::sim::scale;
use crate::sim::server::Shared;
use crate::sim::store::StoredObject;
use crate::sim::table;
use crate::sim::watch::{self, Filter, WatchContext, WatchParams};

/// Response body type: full JSON documents or a streamed watch.
pub(crate) type Body = UnsyncBoxBody<Bytes, Infallible>;

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

fn json_response(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    resp
}

fn value_response(status: StatusCode, v: &Value) -> Response<Body> {
    json_response(
        status,
        serde_json::to_vec(v).expect("JSON values serialize"),
    )
}

fn error_response(e: &ApiError) -> Response<Body> {
    let status = StatusCode::from_u16(e.error.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = value_response(status, &e.status_body());
    if let Some(secs) = e.retry_after
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// Percent-decodes a query component (`+` is a space, as in form encoding).
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    q.unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

fn truthy(v: Option<&String>) -> bool {
    matches!(v.map(String::as_str), Some("true") | Some("1"))
}

/// A parsed resource path.
struct ResourcePath {
    group: String,
    version: String,
    namespace: Option<String>,
    plural: String,
    name: Option<String>,
    subresource: Option<String>,
}

fn parse_resource_path(segs: &[&str]) -> Option<ResourcePath> {
    let (group, version, rest) = match segs {
        ["api", v, rest @ ..] => (String::new(), v.to_string(), rest),
        ["apis", g, v, rest @ ..] => (g.to_string(), v.to_string(), rest),
        _ => return None,
    };
    let s = |x: &&str| Some(x.to_string());
    let (namespace, plural, name, subresource) = match rest {
        [res] => (None, res.to_string(), None, None),
        ["namespaces", ns, sub @ ("status" | "finalize")] => {
            (None, "namespaces".to_string(), s(ns), s(sub))
        }
        ["namespaces", ns, res] => (s(ns), res.to_string(), None, None),
        ["namespaces", ns, res, name] => (s(ns), res.to_string(), s(name), None),
        ["namespaces", ns, res, name, sub] => (s(ns), res.to_string(), s(name), s(sub)),
        [res, name] => (None, res.to_string(), s(name), None),
        [res, name, sub] => (None, res.to_string(), s(name), s(sub)),
        _ => return None,
    };
    if rest.is_empty() {
        return None;
    }
    Some(ResourcePath {
        group,
        version,
        namespace,
        plural,
        name,
        subresource,
    })
}

/// Entry point for every request.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let delay = shared.faults.delay();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let resp = match route(&shared, req).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    Ok(resp)
}

async fn route(shared: &Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let path = req.uri().path().to_string();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let registry = || shared.lock().registry.clone();
    let doc = |v: Option<Value>| {
        v.map(|v| value_response(StatusCode::OK, &v))
            .ok_or_else(ApiError::no_route)
    };
    if matches!(
        segs.as_slice(),
        ["api"] | ["api", _] | ["apis"] | ["apis", _] | ["apis", _, _]
    ) {
        // Counted as ("discovery", path), so a test can see each document read once.
        shared.faults.tally("discovery", &path);
    }
    match segs.as_slice() {
        ["version"] => return doc(Some(discovery::version())),
        ["healthz"] | ["livez"] | ["readyz"] => {
            let mut r = Response::new(full("ok"));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            return Ok(r);
        }
        ["api"] => return doc(Some(discovery::core_versions())),
        ["api", v] => return doc(discovery::resource_list(&registry(), "", v)),
        ["apis"] => return doc(Some(discovery::group_list(&registry()))),
        ["apis", g] => return doc(discovery::group(&registry(), g)),
        ["apis", g, v] => return doc(discovery::resource_list(&registry(), g, v)),
        ["openapi", "v3"] => return doc(Some(openapi::root(&registry()))),
        ["openapi", "v3", "api", v] => return doc(openapi::group_version(&registry(), "", v)),
        ["openapi", "v3", "apis", g, v] => return doc(openapi::group_version(&registry(), g, v)),
        _ => {}
    }
    let Some(rp) = parse_resource_path(&segs) else {
        return Err(ApiError::no_route());
    };
    let Some(rt) = shared
        .lock()
        .registry
        .lookup(&rp.group, &rp.version, &rp.plural)
    else {
        return Err(ApiError::no_route());
    };
    if rp.namespace.is_some() && !rt.namespaced {
        return Err(ApiError::no_route());
    }
    if rp.name.is_some() && rp.namespace.is_none() && rt.namespaced {
        return Err(ApiError::no_route());
    }
    let query = parse_query(req.uri().query());
    let method = req.method().clone();
    let is_watch = truthy(query.get("watch"));
    let verb = match (&method, rp.name.is_some()) {
        (&Method::GET, true) => "get",
        (&Method::GET, false) if is_watch => "watch",
        (&Method::GET, false) => "list",
        (&Method::POST, false) => "create",
        (&Method::PUT, true) => "update",
        (&Method::PATCH, true) => "patch",
        (&Method::DELETE, true) => "delete",
        (&Method::DELETE, false) => "deletecollection",
        _ => {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ));
        }
    };
    let resource_key = rt.key();
    if let Some(e) = shared
        .faults
        .admit(verb, &resource_key, &rt.group, rp.namespace.as_deref())
    {
        return Err(e);
    }
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let repr = media::negotiate(&accept);
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    let body = req
        .into_body()
        .collect()
        .await
        .map_err(|e| ApiError::bad_request(format!("reading request body: {e}")))?
        .to_bytes();
    let dry_run = query.get("dryRun").is_some_and(|v| v == "All");
    let ns = rp.namespace.as_deref();
    let sub = rp.subresource.as_deref();
    if let Some(s) = sub
        && !((s == "status" && rt.status_subresource) || (s == "scale" && scale::has_scale(&rt)))
    {
        return Err(ApiError::no_route());
    }
    let target = Target {
        rt: &rt,
        namespace: ns,
        subresource: sub,
        dry_run,
    };
    let render = |obj: &StoredObject| obj.json_with_type(&rt.kind, &rt.api_version());
    if sub == Some("scale") {
        let name = rp.name.as_deref().unwrap_or_default();
        let obj = match verb {
            "get" => {
                let key = (ns.unwrap_or_default().to_string(), name.to_string());
                let obj = shared.lock().get(&resource_key, &key);
                obj.ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?
            }
            "update" | "patch" => {
                let v = parse_json(&body)?;
                scale::write_scale(&mut shared.lock(), &target, name, &v, verb == "patch")?
            }
            _ => {
                return Err(ApiError::method_not_allowed(
                    "the server does not allow this method on the requested resource",
                ));
            }
        };
        return Ok(value_response(StatusCode::OK, &scale::scale_of(&obj)));
    }
    match verb {
        "get" => {
            let name = rp.name.as_deref().unwrap_or_default();
            let key = (ns.unwrap_or_default().to_string(), name.to_string());
            let obj = shared.lock().get(&resource_key, &key);
            let obj = obj.ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
            Ok(json_response(
                StatusCode::OK,
                media::render_object(&rt, &obj, repr),
            ))
        }
        "list" => list(shared, &rt, ns, &query, repr),
        "watch" => watch_response(shared, rt.clone(), ns, &query, repr),
        "create" => {
            if sub.is_some() {
                return Err(ApiError::method_not_allowed(
                    "create is not allowed on subresources",
                ));
            }
            if rt.namespaced && ns.is_none() {
                return Err(ApiError::method_not_allowed(
                    "the server does not allow this method on the requested resource",
                ));
            }
            let v = parse_json(&body)?;
            let obj = ops::create(&mut shared.lock(), &target, v)?;
            Ok(json_response(StatusCode::CREATED, render(&obj)))
        }
        "update" => {
            let v = parse_json(&body)?;
            let obj = ops::update(&mut shared.lock(), &target, rp.name.as_deref(), v)?;
            Ok(json_response(StatusCode::OK, render(&obj)))
        }
        "patch" => {
            let media = content_type.split(';').next().unwrap_or_default().trim();
            if media != "application/merge-patch+json"
                && media != "application/strategic-merge-patch+json"
            {
                return Err(ApiError::new(
                    415,
                    "UnsupportedMediaType",
                    format!(
                        "the body of the request was in an unknown format - accepted media types include: application/merge-patch+json, application/strategic-merge-patch+json (got {media})"
                    ),
                ));
            }
            let v = parse_json(&body)?;
            let name = rp.name.as_deref().unwrap_or_default();
            let obj = ops::patch(&mut shared.lock(), &target, name, &v)?;
            Ok(json_response(StatusCode::OK, render(&obj)))
        }
        "delete" => {
            let opts = if body.is_empty() {
                json!({})
            } else {
                parse_json(&body)?
            };
            let dry = dry_run
                || opts["dryRun"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|v| v == "All"));
            let target = Target {
                dry_run: dry,
                ..target
            };
            let name = rp.name.as_deref().unwrap_or_default();
            let obj = ops::delete(
                &mut shared.lock(),
                &target,
                name,
                opts["preconditions"]["resourceVersion"].as_str(),
                opts["preconditions"]["uid"].as_str(),
            )?;
            Ok(json_response(StatusCode::OK, render(&obj)))
        }
        _ => Err(ApiError::method_not_allowed(
            "deletecollection is not supported by this simulator",
        )),
    }
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the object provided is unrecognized: {e}")))
}

fn selectors(
    query: &HashMap<String, String>,
    resource: &str,
) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let param = |k: &str| query.get(k).map(String::as_str).unwrap_or_default();
    let labels = LabelSelector::parse(param("labelSelector"))
        .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
    let fields = FieldSelector::parse(param("fieldSelector"))
        .and_then(|f| f.check_supported(selectable_fields(resource)).map(|()| f))
        .map_err(|e| ApiError::bad_request(e.0))?;
    Ok((labels, fields))
}

const CONTINUE_EXPIRED: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

/// LIST, served from an exact snapshot so that every page of one list is consistent.
fn list(
    shared: &Arc<Shared>,
    rt: &Arc<ResourceType>,
    ns: Option<&str>,
    query: &HashMap<String, String>,
    repr: Representation,
) -> Result<Response<Body>, ApiError> {
    let (labels, fields) = selectors(query, &rt.key())?;
    let limit: usize = match query.get("limit").map(String::as_str) {
        None | Some("") => 0,
        Some(s) => s
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid limit: {s}")))?,
    };
    let rv_param = query
        .get("resourceVersion")
        .map(String::as_str)
        .unwrap_or_default();
    let rv_match = query
        .get("resourceVersionMatch")
        .map(String::as_str)
        .unwrap_or_default();
    let token = match query.get("continue").map(String::as_str) {
        None | Some("") => None,
        Some(t) => {
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
    let mut items: Vec<Arc<StoredObject>> = Vec::new();
    let mut next: Option<ContinueToken> = None;
    let mut remaining: Option<u64> = None;
    let snapshot_rv;
    {
        let store = shared.lock();
        let current = store.resource_version();
        let (at, after) = match &token {
            Some(t) => {
                if t.resource_version < store.list_compacted() {
                    return Err(ApiError::expired(CONTINUE_EXPIRED));
                }
                let (kns, kname) = t
                    .last_key
                    .split_once('/')
                    .unwrap_or(("", t.last_key.as_str()));
                (
                    t.resource_version,
                    Some((kns.to_string(), kname.to_string())),
                )
            }
            None => {
                let at = match (rv_param, rv_match) {
                    ("", _) | ("0", "") | ("0", "NotOlderThan") => current,
                    (r, m) => {
                        let r: u64 = r.parse().map_err(|_| {
                            ApiError::bad_request(format!("invalid resource version: {r}"))
                        })?;
                        match m {
                            "Exact" => {
                                if r < store.list_compacted() {
                                    return Err(ApiError::expired(format!(
                                        "too old resource version: {r} ({})",
                                        store.list_compacted()
                                    )));
                                }
                                if r > current {
                                    return Err(ApiError::new(
                                        504,
                                        "Timeout",
                                        format!(
                                            "Too large resource version: {r}, current: {current}"
                                        ),
                                    ));
                                }
                                r
                            }
                            "" | "NotOlderThan" => {
                                if r > current {
                                    return Err(ApiError::new(
                                        504,
                                        "Timeout",
                                        format!(
                                            "Too large resource version: {r}, current: {current}"
                                        ),
                                    ));
                                }
                                current
                            }
                            other => {
                                return Err(ApiError::bad_request(format!(
                                    "resourceVersionMatch: Unsupported value: \"{other}\""
                                )));
                            }
                        }
                    }
                };
                (at, None)
            }
        };
        snapshot_rv = at;
        // Like the watch cache, resourceVersion=0 without a continue token ignores limit and returns everything.
        let limit = if token.is_none() && rv_param == "0" {
            0
        } else {
            limit
        };
        let mut more = false;
        let mut last_key = None;
        store.scan(&filter.resource, ns, after.as_ref(), at, |key, obj| {
            if !filter.matches(obj) {
                return true;
            }
            if limit > 0 && items.len() >= limit {
                more = true;
                return false;
            }
            last_key = Some(key.clone());
            items.push(obj.clone());
            true
        });
        if more && let Some((kns, kname)) = last_key {
            let key = (kns, kname);
            if filter.labels.is_empty() && filter.fields.is_empty() {
                let mut count = 0u64;
                store.scan(&filter.resource, ns, Some(&key), at, |_, _| {
                    count += 1;
                    true
                });
                remaining = Some(count);
            }
            next = Some(ContinueToken {
                resource_version: at,
                last_key: format!("{}/{}", key.0, key.1),
            });
        }
    }
    let mut meta = json!({"resourceVersion": snapshot_rv.to_string()});
    if let Some(t) = &next {
        meta["continue"] = json!(t.encode());
    }
    if let Some(r) = remaining {
        meta["remainingItemCount"] = json!(r);
    }
    match repr {
        Representation::Table => {
            let rows = items
                .iter()
                .map(|o| table::row(rt, &o.to_value()))
                .collect();
            return Ok(value_response(
                StatusCode::OK,
                &table::table(rt, rows, meta),
            ));
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
            return Ok(value_response(StatusCode::OK, &list));
        }
        Representation::Full => {}
    }
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
    out.extend_from_slice(&serde_json::to_vec(&meta).expect("JSON values serialize"));
    out.push(b'}');
    Ok(json_response(StatusCode::OK, out))
}

fn watch_response(
    shared: &Arc<Shared>,
    rt: Arc<ResourceType>,
    ns: Option<&str>,
    query: &HashMap<String, String>,
    repr: Representation,
) -> Result<Response<Body>, ApiError> {
    let (labels, fields) = selectors(query, &rt.key())?;
    let timeout = match query.get("timeoutSeconds").map(String::as_str) {
        None | Some("") => None,
        Some(s) => Some(std::time::Duration::from_secs(s.parse().map_err(|_| {
            ApiError::bad_request(format!("invalid timeoutSeconds: {s}"))
        })?)),
    };
    let params = WatchParams {
        resource_version: query.get("resourceVersion").cloned(),
        resource_version_match: query.get("resourceVersionMatch").cloned(),
        timeout,
        bookmarks: truthy(query.get("allowWatchBookmarks")),
        send_initial_events: query
            .get("sendInitialEvents")
            .map(|v| v == "true" || v == "1"),
        representation: repr,
    };
    let filter = Filter {
        resource: rt.key(),
        namespace: ns.map(str::to_string),
        labels,
        fields,
    };
    let ctx = WatchContext {
        store: shared.store.clone(),
        drop_signal: shared.faults.drop_signal(),
        bookmark_interval: shared.config.bookmark_interval,
        watch_list: shared.config.watch_list,
    };
    let rx = watch::start(ctx, rt, filter, params)?;
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    let mut resp = Response::new(StreamBody::new(stream).boxed_unsync());
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    Ok(resp)
}
