//! What each path answers: `/metrics`, `/healthz`, `/readyz` and `/cache/{resource}`,
//! with `/metrics` and `/cache` behind the [`Authorizer`] when `--metrics-auth
//! kubernetes` (the probes stay anonymous: the kubelet sends no token).

use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;

use super::auth::{Access, Verdict};
use super::serve::{Handlers, Scope};
use crate::lister::{CacheQuery, Listing};

/// A response body: a whole string, or a `/cache` List streamed from its snapshot.
pub(crate) type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Answers one request.
pub(crate) async fn answer<B>(
    request: http::Request<B>,
    scope: Scope,
    handlers: &Handlers,
) -> Response<Body> {
    let uri = request.uri();
    let path = uri.path();
    if scope == Scope::ProbesOnly && path != "/healthz" && path != "/readyz" {
        let mut response = reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many connections to the metrics port: only /healthz and /readyz are answered; retry later\n".into(),
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    }
    // The `/cache` query, parsed once: what is authorized is what is listed.
    let query = CacheQuery::parse(uri.query());
    if let (Some(auth), Some(access)) = (&handlers.auth, access(uri, &query, handlers)) {
        let authorization = request.headers().get(header::AUTHORIZATION);
        if let Some(refused) = refusal(auth.check(authorization, &access).await) {
            return refused;
        }
    }
    route(uri, query, handlers)
}

/// What a request to `uri` asks to do, when it needs a permission: `get` on `/metrics`,
/// `list` on the resource of `/cache/{resource}` (in its `namespace`, else in all).
fn access(
    uri: &http::Uri,
    query: &Result<CacheQuery, Listing>,
    handlers: &Handlers,
) -> Option<Access> {
    let path = uri.path();
    if path == "/metrics" {
        return Some(Access::Path {
            path: path.to_owned(),
            verb: "get",
        });
    }
    let resource = path.strip_prefix("/cache/")?;
    handlers.lister.as_ref()?;
    // The query as the lister will read it; one it refuses (a repeated namespace) is
    // checked as a list in every namespace, the strictest, and then answered 400.
    let namespace = query
        .as_ref()
        .ok()
        .and_then(|query| query.namespace.clone());
    // The resource as the cache resolved it; a name no cache holds (or a standby's, with
    // no cache yet) is asked as written, so an unknown name is a 403 for who may not
    // list it, and which resources kubebridge caches is not told to them.
    let resolved = handlers
        .lister
        .as_ref()
        .and_then(|lister| lister.get())
        .and_then(|lister| lister.resolve(resource));
    let (group, resource, namespaced) = match resolved {
        Some(resolved) => resolved,
        None => match resource.split_once('.') {
            Some((plural, group)) => (group.to_owned(), plural.to_owned(), true),
            None => (String::new(), resource.to_owned(), true),
        },
    };
    // A cluster-scoped resource has no namespace to ask about.
    let namespace = namespace.filter(|_| namespaced);
    Some(Access::Resource {
        verb: "list",
        group,
        resource,
        namespace,
    })
}

/// The response for a verdict that refuses, as controller-runtime and kube-rbac-proxy
/// give it: 401 with a `WWW-Authenticate: Bearer` challenge, 403, or 503.
fn refusal(verdict: Verdict) -> Option<Response<Body>> {
    let mut response = match verdict {
        Verdict::Allowed => return None,
        Verdict::Unauthenticated(why) => {
            let mut response = reply(StatusCode::UNAUTHORIZED, format!("Unauthorized: {why}\n"));
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"kubebridge\""),
            );
            response
        }
        Verdict::Forbidden(why) => reply(StatusCode::FORBIDDEN, format!("Forbidden: {why}\n")),
        Verdict::Unavailable(why) => {
            let mut response = reply(StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n"));
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            response
        }
    };
    // A refusal is for this request only: a client must not keep it.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Some(response)
}

fn route(
    uri: &http::Uri,
    query: Result<CacheQuery, Listing>,
    handlers: &Handlers,
) -> Response<Body> {
    let path = uri.path();
    if let (Some(resource), Some(lister)) = (path.strip_prefix("/cache/"), &handlers.lister) {
        let Some(lister) = lister.get() else {
            let standby = kubebridge_apimachinery::failure_status(
                503,
                "ServiceUnavailable",
                "standby: this instance is not the leader and has no cache",
            );
            return json(
                StatusCode::SERVICE_UNAVAILABLE,
                kubebridge_apimachinery::status_json(&standby),
            );
        };
        let listing = match query {
            Ok(query) => lister.list(resource, &query),
            Err(refused) => refused,
        };
        return match listing {
            Listing::Status(code, body) => {
                let status =
                    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                json(status, body)
            }
            Listing::List(list) => {
                let length = list.content_length();
                let chunks = list
                    .into_chunks()
                    .map(|chunk| Ok::<_, Infallible>(Frame::data(chunk)));
                let body = StreamBody::new(futures::stream::iter(chunks));
                let mut response =
                    with_type(Response::new(body.boxed_unsync()), "application/json");
                response
                    .headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
                response
            }
        };
    }
    match path {
        "/metrics" => with_type(
            reply(StatusCode::OK, handlers.metrics.render()),
            "text/plain; version=0.0.4",
        ),
        "/healthz" => reply(StatusCode::OK, "ok\n".into()),
        "/readyz" => match (handlers.ready)() {
            Ok(()) => reply(StatusCode::OK, "ok\n".into()),
            Err(why) => reply(StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
        },
        _ => reply(
            StatusCode::NOT_FOUND,
            "not found: try /metrics, /healthz or /readyz\n".into(),
        ),
    }
}

/// A plain-text response.
fn reply(status: StatusCode, body: String) -> Response<Body> {
    let mut response = with_type(
        Response::new(Full::new(Bytes::from(body)).boxed_unsync()),
        "text/plain",
    );
    *response.status_mut() = status;
    response
}

/// A JSON response (a Kubernetes `Status`).
fn json(status: StatusCode, body: String) -> Response<Body> {
    with_type(reply(status, body), "application/json")
}

fn with_type(mut response: Response<Body>, content_type: &str) -> Response<Body> {
    if let Ok(value) = content_type.parse() {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}
