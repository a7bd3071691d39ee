//! Raw access to the Kubernetes API: paths, GET requests, `Status` errors and Retry-After.
//!
//! kube's typed `Api` decodes every object into a tree; kubebridge keeps objects as raw
//! JSON (see the crate docs), so it speaks to the API server through `Client::send`
//! and classifies failures itself, keeping the `Retry-After` header that kube's
//! higher-level calls drop.

use std::fmt::Write as _;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, header};
use kube::client::Body;
use kubebridge_apimachinery::{Status, parse_status};
use serde::de::DeserializeOwned;

/// A failed API request, classified by what the caller should do about it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The API server answered with an error status (and usually a `Status` body).
    #[error("{method} {path}: {message} ({code} {reason})")]
    Status {
        /// HTTP method of the request.
        method: &'static str,
        /// Path of the request, without the query.
        path: String,
        /// HTTP status code.
        code: u16,
        /// The Status `reason`, e.g. `Forbidden`, `Expired`.
        reason: String,
        /// The Status `message`.
        message: String,
        /// From the `Retry-After` header or the Status details.
        retry_after: Option<Duration>,
    },
    /// The request did not complete: connection refused, reset, TLS, timeout.
    #[error("{method} {path}: cannot reach the API server: {source}")]
    Transport {
        /// HTTP method of the request.
        method: &'static str,
        /// Path of the request.
        path: String,
        /// What went wrong.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The response was not what the Kubernetes API promises.
    #[error("{path}: unexpected response: {detail}")]
    Decode {
        /// Path of the request.
        path: String,
        /// What did not parse.
        detail: String,
    },
}

impl ApiError {
    /// The HTTP status code, if the server answered.
    pub fn code(&self) -> Option<u16> {
        match self {
            ApiError::Status { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// 410 Gone / Expired: the resourceVersion or continue token is too old; relist.
    pub fn is_gone(&self) -> bool {
        self.code() == Some(410)
    }

    /// Whether trying again (after a backoff) can help: transport errors, 429, 5xx,
    /// and malformed responses (a proxy in the way, a truncated body).
    pub fn is_retryable(&self) -> bool {
        match self {
            ApiError::Status { code, .. } => *code == 429 || *code >= 500,
            ApiError::Transport { .. } | ApiError::Decode { .. } => true,
        }
    }

    /// How long the server asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The server's own message, for errors shown to a user.
    pub fn server_message(&self) -> String {
        match self {
            ApiError::Status { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }
}

/// Builds a request URL path with a query string.
#[derive(Debug, Clone)]
pub struct Url {
    path: String,
    query: Vec<(String, String)>,
}

impl Url {
    /// A path such as `/api/v1/pods`.
    pub fn new(path: impl Into<String>) -> Self {
        Url {
            path: path.into(),
            query: Vec::new(),
        }
    }

    /// Appends `key=value` (encoded).
    pub fn param(mut self, key: &str, value: impl AsRef<str>) -> Self {
        self.query.push((key.to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Appends `key=value` when `value` is present and not empty.
    pub fn param_opt(self, key: &str, value: Option<&str>) -> Self {
        match value {
            Some(v) if !v.is_empty() => self.param(key, v),
            _ => self,
        }
    }

    /// The path alone, for error messages.
    pub fn path(&self) -> &str {
        &self.path
    }

    fn render(&self) -> String {
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&self.query)
            .finish();
        let mut s = self.path.clone();
        if !query.is_empty() {
            let _ = write!(s, "?{query}");
        }
        s
    }
}

/// Sends a GET and returns the response when the status is a success.
pub(crate) async fn get(client: &kube::Client, url: Url) -> Result<http::Response<Body>, ApiError> {
    send(client, "GET", url, Vec::new()).await
}

/// Sends a request (`method` is GET, POST or PUT) with a JSON `body` and returns the
/// response when the status is a success.
async fn send(
    client: &kube::Client,
    method: &'static str,
    url: Url,
    body: Vec<u8>,
) -> Result<http::Response<Body>, ApiError> {
    let uri = url.render();
    let path = url.path().to_owned();
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::ACCEPT, "application/json");
    if !body.is_empty() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    let request = request
        .body(Body::from(body))
        .map_err(|e| ApiError::Decode {
            path: path.clone(),
            detail: format!("cannot build the request: {e}"),
        })?;
    let response = client
        .send(request)
        .await
        .map_err(|e| ApiError::Transport {
            method,
            path: path.clone(),
            source: Box::new(e),
        })?;
    if response.status().is_success() {
        return Ok(response);
    }
    Err(status_error(method, path, response).await)
}

/// Sends `body` as JSON with `method` (POST, PUT) and decodes the JSON answer.
pub async fn send_json<T: DeserializeOwned>(
    client: &kube::Client,
    method: &'static str,
    url: Url,
    body: &serde_json::Value,
) -> Result<T, ApiError> {
    let path = url.path().to_owned();
    let bytes = serde_json::to_vec(body).map_err(|e| ApiError::Decode {
        path: path.clone(),
        detail: e.to_string(),
    })?;
    let answer = send(client, method, url, bytes)
        .await?
        .into_body()
        .collect_bytes()
        .await
        .map_err(|e| ApiError::Transport {
            method,
            path: path.clone(),
            source: Box::new(e),
        })?;
    serde_json::from_slice(&answer).map_err(|e| ApiError::Decode {
        path,
        detail: e.to_string(),
    })
}

async fn status_error(
    method: &'static str,
    path: String,
    response: http::Response<Body>,
) -> ApiError {
    let code = response.status();
    let header_retry = response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let body = response
        .into_body()
        .collect_bytes()
        .await
        .unwrap_or_default();
    status_from_parts(method, path, code, parse_status(&body), header_retry)
}

fn status_from_parts(
    method: &'static str,
    path: String,
    code: StatusCode,
    status: Status,
    header_retry: Option<u64>,
) -> ApiError {
    let retry_after = header_retry
        .or(status
            .details
            .map(|d| u64::from(d.retry_after_seconds))
            .filter(|&secs| secs > 0))
        .map(Duration::from_secs);
    ApiError::Status {
        method,
        path,
        code: code.as_u16(),
        reason: if status.reason.is_empty() {
            code.canonical_reason().unwrap_or("Unknown").to_owned()
        } else {
            status.reason
        },
        message: if status.message.is_empty() {
            format!("the server answered {code}")
        } else {
            status.message
        },
        retry_after,
    }
}

/// GETs `url` and decodes the JSON body.
pub async fn get_json<T: DeserializeOwned>(client: &kube::Client, url: Url) -> Result<T, ApiError> {
    let path = url.path().to_owned();
    let body: Bytes = get(client, url)
        .await?
        .into_body()
        .collect_bytes()
        .await
        .map_err(|e| ApiError::Transport {
            method: "GET",
            path: path.clone(),
            source: Box::new(e),
        })?;
    serde_json::from_slice(&body).map_err(|e| ApiError::Decode {
        path,
        detail: e.to_string(),
    })
}

/// Decodes a `Status` object found inside a watch `ERROR` event.
pub fn status_from_event(path: &str, object: &str) -> ApiError {
    let status = parse_status(object.as_bytes());
    let code = StatusCode::from_u16(status.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    status_from_parts("GET", path.to_owned(), code, status, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encodes_selectors() {
        let url = Url::new("/api/v1/pods")
            .param("labelSelector", "app in (a,b),tier!=db")
            .param_opt("fieldSelector", None)
            .param_opt("continue", Some(""));
        assert_eq!(
            url.render(),
            "/api/v1/pods?labelSelector=app+in+%28a%2Cb%29%2Ctier%21%3Ddb"
        );
    }

    #[test]
    fn watch_error_events_become_status_errors() {
        let err = status_from_event(
            "/api/v1/pods",
            r#"{"kind":"Status","code":410,"reason":"Expired","message":"too old resource version: 1 (5)"}"#,
        );
        assert!(err.is_gone());
        assert!(!err.is_retryable());
        assert!(err.to_string().contains("too old resource version"));
    }
}
