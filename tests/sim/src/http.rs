//! The HTTP front end: one handler routing discovery documents and resource paths to their verbs, with faults and counters.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::json;

use crate::discovery;
use crate::error::ApiError;
use crate::list::list;
use crate::media::{self, Representation};
use crate::openapi;
use crate::ops::{self, Target};
use crate::request::{
    ResourcePath, parse_json, parse_query, parse_resource_path, selectors, truthy, verb,
};
use crate::resources::ResourceType;
use crate::response::{
    Body, error_response, json_body_response, json_response, text_ok, value_response,
};
use crate::reviews;
use crate::scale;
use crate::shared::Shared;
use crate::store::StoredObject;
use crate::watch::{self, Filter, WatchContext, WatchParams};

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
    if matches!(
        segs.as_slice(),
        ["api"] | ["api", _] | ["apis"] | ["apis", _] | ["apis", _, _]
    ) {
        // Counted as ("discovery", path), so a test can see each document read once.
        shared.faults.tally("discovery", &path);
    }
    if let Some(doc) = document(shared, &segs) {
        return doc;
    }
    if let Some(key) = review_key(&segs) {
        return review(shared, key, req).await;
    }
    let rp = parse_resource_path(&segs).ok_or_else(ApiError::no_route)?;
    let rt = shared
        .lock()
        .registry
        .lookup(&rp.group, &rp.version, &rp.plural)
        .ok_or_else(ApiError::no_route)?;
    if rp.namespace.is_some() && !rt.namespaced {
        return Err(ApiError::no_route());
    }
    if rp.name.is_some() && rp.namespace.is_none() && rt.namespaced {
        return Err(ApiError::no_route());
    }
    let query = parse_query(req.uri().query());
    let verb = verb(req.method(), &rp, &query)?;
    if let Some(e) = shared
        .faults
        .admit(verb, &rt.key(), &rt.group, rp.namespace.as_deref())
    {
        return Err(e);
    }
    if let Some(e) = shared.faults.apply_rule(&rt.key()).await {
        return Err(e);
    }
    let header = |name| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let repr = media::negotiate(&header(header::ACCEPT).unwrap_or_default());
    let content_type = header(header::CONTENT_TYPE).unwrap_or("application/json".into());
    let body = req
        .into_body()
        .collect()
        .await
        .map_err(|e| ApiError::bad_request(format!("reading request body: {e}")))?
        .to_bytes();
    if let Some(s) = rp.subresource.as_deref()
        && !((s == "status" && rt.status_subresource) || (s == "scale" && scale::has_scale(&rt)))
    {
        return Err(ApiError::no_route());
    }
    let call = Call {
        shared,
        rt: &rt,
        rp: &rp,
        query: &query,
        repr,
        content_type: &content_type,
        body: &body,
    };
    if rp.subresource.as_deref() == Some("scale") {
        call.scale(verb)
    } else {
        call.object(verb)
    }
}

/// The documents outside resource paths: version, health, discovery and OpenAPI.
fn document(shared: &Shared, segs: &[&str]) -> Option<Result<Response<Body>, ApiError>> {
    let registry = || shared.lock().registry.clone();
    let doc = match segs {
        ["version"] => Some(discovery::version()),
        ["healthz"] | ["livez"] | ["readyz"] => return Some(Ok(text_ok())),
        ["api"] => Some(discovery::core_versions()),
        ["api", v] => discovery::resource_list(&registry(), "", v),
        ["apis"] => Some(discovery::group_list(&registry())),
        ["apis", g] => discovery::group(&registry(), g),
        ["apis", g, v] => discovery::resource_list(&registry(), g, v),
        ["openapi", "v3"] => Some(openapi::root(&registry())),
        ["openapi", "v3", "api", v] => openapi::group_version(&registry(), "", v),
        ["openapi", "v3", "apis", g, v] => openapi::group_version(&registry(), g, v),
        _ => return None,
    };
    Some(
        doc.map(|v| value_response(StatusCode::OK, &v))
            .ok_or_else(ApiError::no_route),
    )
}

/// The resource key of a review API path, if `segs` is one.
fn review_key(segs: &[&str]) -> Option<&'static str> {
    match segs {
        ["apis", "authentication.k8s.io", "v1", "tokenreviews"] => Some(reviews::TOKEN_REVIEWS),
        ["apis", "authorization.k8s.io", "v1", "subjectaccessreviews"] => {
            Some(reviews::ACCESS_REVIEWS)
        }
        _ => None,
    }
}

/// `POST` of a TokenReview or SubjectAccessReview: counted and faulted like any create,
/// then answered 201 from the [`reviews::Reviews`] table.
async fn review(
    shared: &Arc<Shared>,
    key: &'static str,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    if req.method() != http::Method::POST {
        return Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ));
    }
    let group = key.split_once('.').map(|(_, g)| g).unwrap_or_default();
    if let Some(e) = shared.faults.admit("create", key, group, None) {
        return Err(e);
    }
    if let Some(e) = shared.faults.apply_rule(key).await {
        return Err(e);
    }
    let body = req
        .into_body()
        .collect()
        .await
        .map_err(|e| ApiError::bad_request(format!("reading request body: {e}")))?
        .to_bytes();
    let body = parse_json(&body)?;
    let answer = if key == reviews::TOKEN_REVIEWS {
        shared.reviews.token_review(&body)?
    } else {
        shared.reviews.access_review(&body)?
    };
    Ok(value_response(StatusCode::CREATED, &answer))
}

/// One request on a resource path, read and admitted, ready for its verb.
struct Call<'a> {
    shared: &'a Arc<Shared>,
    rt: &'a Arc<ResourceType>,
    rp: &'a ResourcePath,
    query: &'a HashMap<String, String>,
    repr: Representation,
    content_type: &'a str,
    body: &'a Bytes,
}

impl Call<'_> {
    fn name(&self) -> &str {
        self.rp.name.as_deref().unwrap_or_default()
    }

    fn target(&self) -> Target<'_> {
        Target {
            rt: self.rt,
            namespace: self.rp.namespace.as_deref(),
            subresource: self.rp.subresource.as_deref(),
            dry_run: self.query.get("dryRun").is_some_and(|v| v == "All"),
        }
    }

    fn get(&self) -> Result<Arc<StoredObject>, ApiError> {
        let ns = self.rp.namespace.as_deref().unwrap_or_default();
        let key = (ns.to_string(), self.name().to_string());
        let obj = self.shared.lock().get(&self.rt.key(), &key);
        obj.ok_or_else(|| ApiError::not_found(&self.rt.group, &self.rt.plural, self.name()))
    }

    fn rendered(&self, status: StatusCode, obj: &StoredObject) -> Response<Body> {
        json_response(
            status,
            obj.json_with_type(&self.rt.kind, &self.rt.api_version()),
        )
    }

    /// The `scale` subresource: get, update or patch.
    fn scale(&self, verb: &str) -> Result<Response<Body>, ApiError> {
        let obj = match verb {
            "get" => self.get()?,
            "update" | "patch" => {
                let v = parse_json(self.body)?;
                let store = &mut self.shared.lock();
                scale::write_scale(store, &self.target(), self.name(), &v, verb == "patch")?
            }
            _ => {
                return Err(ApiError::method_not_allowed(
                    "the server does not allow this method on the requested resource",
                ));
            }
        };
        Ok(value_response(StatusCode::OK, &scale::scale_of(&obj)))
    }

    /// An object or collection verb (or the `status` subresource's).
    fn object(&self, verb: &str) -> Result<Response<Body>, ApiError> {
        let ns = self.rp.namespace.as_deref();
        match verb {
            "get" => Ok(json_response(
                StatusCode::OK,
                media::render_object(self.rt, &*self.get()?, self.repr),
            )),
            "list" => list(self.shared, self.rt, ns, self.query, self.repr),
            "watch" => watch_response(self.shared, self.rt.clone(), ns, self.query, self.repr),
            "create" => self.create(),
            "update" => {
                let v = parse_json(self.body)?;
                let obj = ops::update(
                    &mut self.shared.lock(),
                    &self.target(),
                    self.rp.name.as_deref(),
                    v,
                )?;
                Ok(self.rendered(StatusCode::OK, &obj))
            }
            "patch" => self.patch(),
            "delete" => self.delete(),
            _ => Err(ApiError::method_not_allowed(
                "deletecollection is not supported by this simulator",
            )),
        }
    }

    fn create(&self) -> Result<Response<Body>, ApiError> {
        if self.rp.subresource.is_some() {
            return Err(ApiError::method_not_allowed(
                "create is not allowed on subresources",
            ));
        }
        if self.rt.namespaced && self.rp.namespace.is_none() {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ));
        }
        let v = parse_json(self.body)?;
        let obj = ops::create(&mut self.shared.lock(), &self.target(), v)?;
        Ok(self.rendered(StatusCode::CREATED, &obj))
    }

    fn patch(&self) -> Result<Response<Body>, ApiError> {
        let media = self
            .content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim();
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
        let v = parse_json(self.body)?;
        let obj = ops::patch(&mut self.shared.lock(), &self.target(), self.name(), &v)?;
        Ok(self.rendered(StatusCode::OK, &obj))
    }

    /// DELETE with its options body: dryRun and resourceVersion/uid preconditions.
    fn delete(&self) -> Result<Response<Body>, ApiError> {
        let opts = if self.body.is_empty() {
            json!({})
        } else {
            parse_json(self.body)?
        };
        let target = self.target();
        let dry_run = target.dry_run
            || opts["dryRun"]
                .as_array()
                .is_some_and(|a| a.iter().any(|v| v == "All"));
        let target = Target { dry_run, ..target };
        let obj = ops::delete(
            &mut self.shared.lock(),
            &target,
            self.name(),
            opts["preconditions"]["resourceVersion"].as_str(),
            opts["preconditions"]["uid"].as_str(),
        )?;
        Ok(self.rendered(StatusCode::OK, &obj))
    }
}

/// WATCH: a streamed response of newline-delimited events.
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
        faults: shared.faults.watch_faults(),
        bookmark_interval: shared.config.bookmark_interval,
        watch_list: shared.config.watch_list,
    };
    let rx = watch::start(ctx, rt, filter, params)?;
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    Ok(json_body_response(
        StatusCode::OK,
        StreamBody::new(stream).boxed_unsync(),
    ))
}
