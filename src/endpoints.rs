//! The HTTP listener for operators: `/metrics` (Prometheus text), `/healthz` (alive),
//! `/readyz` (every informer synced and every sink delivering).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::lister::Lister;
use crate::metrics::Metrics;

/// Says whether kubebridge is ready, and if not, why.
pub(crate) type Readiness = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Binds `addr`: done before anything starts, so a port in use is reported at once and
/// the endpoints answer from the first moment anything can be observed.
pub(crate) async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves the endpoints on `listener` until `cancel`; `/cache/…` too when a lister is given.
pub(crate) fn serve(
    listener: TcpListener,
    metrics: Metrics,
    ready: Readiness,
    lister: Option<Arc<OnceLock<Lister>>>,
    cancel: CancellationToken,
) {
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "metrics listener: accept failed");
                        continue;
                    }
                },
                _ = cancel.cancelled() => return,
            };
            let metrics = metrics.clone();
            let ready = ready.clone();
            let lister = lister.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let metrics = metrics.clone();
                    let ready = ready.clone();
                    let lister = lister.clone();
                    async move {
                        let response = route(req.uri(), &metrics, &ready, lister.as_deref());
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

fn route(
    uri: &http::Uri,
    metrics: &Metrics,
    ready: &Readiness,
    lister: Option<&OnceLock<Lister>>,
) -> Response<Full<Bytes>> {
    let path = uri.path();
    if let (Some(resource), Some(lister)) = (path.strip_prefix("/cache/"), lister) {
        let Some(lister) = lister.get() else {
            let standby = kubebridge_apimachinery::failure_status(
                503,
                "ServiceUnavailable",
                "standby: this instance is not the leader and has no cache",
            );
            return reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "application/json",
                kubebridge_apimachinery::status_json(&standby),
            );
        };
        let (code, body) = lister.list(resource, uri.query());
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return reply(status, "application/json", body);
    }
    match path {
        "/metrics" => reply(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            metrics.render(),
        ),
        "/healthz" => reply(StatusCode::OK, "text/plain", "ok\n".into()),
        "/readyz" => match ready() {
            Ok(()) => reply(StatusCode::OK, "text/plain", "ok\n".into()),
            Err(why) => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                format!("{why}\n"),
            ),
        },
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: try /metrics, /healthz or /readyz\n".into(),
        ),
    }
}

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}
