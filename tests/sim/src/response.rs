//! HTTP responses as the apiserver sends them: JSON documents, streamed watches, plain text and Status errors.

use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use serde_json::Value;

use crate::error::ApiError;

/// Response body type: full JSON documents or a streamed watch.
pub(crate) type Body = UnsyncBoxBody<Bytes, Infallible>;

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

/// A JSON response from a body of any kind (a document or a watch stream).
pub(crate) fn json_body_response(status: StatusCode, body: Body) -> Response<Body> {
    let mut resp = Response::new(body);
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

/// A JSON document already serialized.
pub(crate) fn json_response(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    json_body_response(status, full(body))
}

/// A JSON document from a value.
pub(crate) fn value_response(status: StatusCode, v: &Value) -> Response<Body> {
    json_response(
        status,
        serde_json::to_vec(v).expect("JSON values serialize"),
    )
}

/// `ok` in plain text, as /healthz, /livez and /readyz answer.
pub(crate) fn text_ok() -> Response<Body> {
    let mut r = Response::new(full("ok"));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// The Status body of an error, with its HTTP code and any Retry-After header.
pub(crate) fn error_response(e: &ApiError) -> Response<Body> {
    let status = StatusCode::from_u16(e.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = json_response(status, e.status_body());
    if let Some(secs) = e.retry_after
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}
