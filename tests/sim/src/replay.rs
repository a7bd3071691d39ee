//! A replay API server for benchmarks: a pre-built LIST of N realistic pods and a
//! pre-built watch stream of their changes, both served as fast as the socket takes them.
//!
//! The simulator proper (server.rs) renders every event under a lock, per watcher; it
//! tops out near 11 000 changes/s, below what kubebridge consumes, so a benchmark fed by
//! it measures the feed. The replay server does all its work before it listens: the pods
//! are the simulator's own seeds (same generator, same sizes, plus the `managedFields` a
//! real API server adds), every LIST item is serialized once, and the whole watch stream
//! (`MODIFIED` events cycling over the pods, each with the next resourceVersion and an
//! annotation that changes with it, so no event is noise to a client; and a
//! `BOOKMARK` every [`ReplayConfig::bookmark_every`] events) is one buffer written in
//! [`WATCH_CHUNK`] slices. It speaks the protocol kube's client expects: discovery,
//! `limit`/`continue` pages with the list's resourceVersion, a watch from any
//! resourceVersion at or after the list's (earlier ones are 410 Gone, as after a
//! compaction), bookmarks, and `Content-Encoding: gzip` on a LIST when the client asks.
//! It serves pods only: every other resource path is 404.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::config::SimConfig;
use crate::continue_token::ContinueToken;
use crate::discovery;
use crate::error::ApiError;
use crate::request::parse_query;
use crate::resources::Registry;
use crate::response::{Body, error_response, json_body_response, json_response, value_response};
use crate::store::Store;

/// How much of the watch stream one write hands the socket: large, so the server's cost
/// per change is a fraction of a syscall.
pub const WATCH_CHUNK: usize = 1 << 20;

/// A watch with no `timeoutSeconds` is held open this long after its last event (the
/// API server's default upper bound for a watch is 30 minutes).
const DEFAULT_WATCH_HOLD: Duration = Duration::from_secs(1800);

/// What a replay server serves.
#[derive(Debug, Clone)]
pub struct ReplayConfig {
    /// Pods in the LIST (the simulator's seed pods, in `namespaces` namespaces).
    pub pods: usize,
    /// `MODIFIED` events in the watch stream, cycling over the pods.
    pub events: usize,
    /// Namespaces the pods are spread over.
    pub namespaces: usize,
    /// A `BOOKMARK` after every this many events (0: none).
    pub bookmark_every: usize,
    /// RNG seed of the pods, as for the simulator.
    pub seed: u64,
    /// Events per second the watch stream is paced at, one write per event (0: as fast
    /// as the socket takes them, in [`WATCH_CHUNK`] writes). For latency benchmarks.
    pub events_per_sec: f64,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        ReplayConfig {
            pods: 1_000,
            events: 100_000,
            namespaces: 50,
            bookmark_every: 1_000,
            seed: 1,
            events_per_sec: 0.0,
        }
    }
}

/// Everything a replay server sends, serialized before it listens.
pub struct ReplayData {
    registry: Registry,
    /// The LIST's resourceVersion; the watch stream's events follow it.
    list_rv: u64,
    /// `namespace/name` of each pod, in list order, for continue tokens.
    keys: Vec<String>,
    /// Each pod's JSON as a typed LIST item (without kind/apiVersion).
    items: Vec<Bytes>,
    /// The watch stream: one JSON line per event.
    stream: Bytes,
    /// Where the event with resourceVersion `list_rv + 1 + i` starts in `stream`.
    offsets: Vec<usize>,
    /// [`ReplayConfig::events_per_sec`].
    events_per_sec: f64,
    /// When the latest paced watch from the list's resourceVersion began: event `i` of
    /// it is due `i / events_per_sec` later (each benchmark run opens a new one).
    paced_start: Mutex<Option<Instant>>,
}

impl ReplayData {
    /// Builds the pods and the stream (takes about a second per 100 000 events).
    pub fn build(config: &ReplayConfig) -> ReplayData {
        let mut store = Store::new(1, config.seed);
        crate::seed::seed(
            &mut store,
            &SimConfig {
                namespaces: config.namespaces,
                pods: config.pods,
                seed: config.seed,
                ..SimConfig::default()
            },
        );
        let now = crate::time::now_rfc3339();
        let mut pods = Vec::with_capacity(config.pods);
        store.scan("pods", None, None, u64::MAX, |_, obj| {
            let mut pod = obj.to_value();
            with_managed_fields(&mut pod, &now);
            pods.push(pod);
            true
        });
        let list_rv = store.resource_version();
        let keys = pods.iter().map(key_of).collect();
        let items: Vec<Bytes> = pods
            .iter()
            .map(|p| Bytes::from(serde_json::to_vec(p).expect("JSON values serialize")))
            .collect();
        let (stream, offsets) = watch_stream(&pods, list_rv, config);
        ReplayData {
            registry: store.registry.clone(),
            list_rv,
            keys,
            items,
            stream,
            offsets,
            events_per_sec: config.events_per_sec,
            paced_start: Mutex::new(None),
        }
    }

    /// When a paced stream wrote the event with `resource_version` (the time it was
    /// due; the server writes it then unless its own core is late).
    pub fn written_at(&self, resource_version: u64) -> Option<Instant> {
        let start = (*self
            .paced_start
            .lock()
            .unwrap_or_else(PoisonError::into_inner))?;
        let index = resource_version.checked_sub(self.list_rv + 1)?;
        (self.events_per_sec > 0.0)
            .then(|| start + Duration::from_secs_f64(index as f64 / self.events_per_sec))
    }

    /// The LIST's resourceVersion.
    pub fn list_resource_version(&self) -> u64 {
        self.list_rv
    }

    /// The resourceVersion of the watch stream's last event.
    pub fn last_resource_version(&self) -> u64 {
        self.list_rv + self.offsets.len() as u64
    }

    /// Bytes of the pods' JSON as LIST items.
    pub fn list_item_bytes(&self) -> u64 {
        self.items.iter().map(|i| i.len() as u64).sum()
    }

    /// Bytes of the whole watch stream.
    pub fn watch_stream_bytes(&self) -> u64 {
        self.stream.len() as u64
    }

    /// Each pod's JSON as a typed LIST item (without kind/apiVersion, with managedFields).
    pub fn items(&self) -> &[Bytes] {
        &self.items
    }

    /// Number of pods in the LIST.
    pub fn pods(&self) -> usize {
        self.items.len()
    }

    /// `MODIFIED` events in the watch stream.
    pub fn events(&self) -> usize {
        self.offsets.len()
    }
}

/// A pod with the `managedFields` a real API server records: the ReplicaSet controller's
/// create and the kubelet's status updates (about 1.5 KB, as on a real cluster).
fn with_managed_fields(pod: &mut Value, now: &str) {
    let meta = &pod["metadata"];
    let owner_uid = meta["ownerReferences"][0]["uid"].as_str().unwrap_or("");
    let containers: serde_json::Map<String, Value> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let name = c["name"].as_str().unwrap_or("");
            (
                format!("k:{{\"name\":\"{name}\"}}"),
                json!({".": {}, "f:env": {}, "f:image": {}, "f:imagePullPolicy": {}, "f:livenessProbe": {}, "f:name": {},
                       "f:ports": {}, "f:readinessProbe": {}, "f:resources": {".": {}, "f:limits": {}, "f:requests": {}},
                       "f:terminationMessagePath": {}, "f:terminationMessagePolicy": {}, "f:volumeMounts": {}}),
            )
        })
        .collect();
    let condition = |t: &str| {
        (
            format!("k:{{\"type\":\"{t}\"}}"),
            json!({".": {}, "f:lastProbeTime": {}, "f:lastTransitionTime": {}, "f:status": {}, "f:type": {}}),
        )
    };
    let conditions: serde_json::Map<String, Value> =
        ["ContainersReady", "Initialized", "PodScheduled", "Ready"]
            .into_iter()
            .map(condition)
            .collect();
    let pod_ip = pod["status"]["podIP"].as_str().unwrap_or("");
    let managed = json!([
        {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1", "time": now,
         "fieldsType": "FieldsV1", "fieldsV1": {
            "f:metadata": {"f:annotations": {".": {}, "f:kubectl.kubernetes.io/restartedAt": {}, "f:prometheus.io/port": {}, "f:prometheus.io/scrape": {}},
                           "f:generateName": {}, "f:labels": {".": {}, "f:app": {}, "f:pod-template-hash": {}, "f:tier": {}},
                           "f:ownerReferences": {".": {}, format!("k:{{\"uid\":\"{owner_uid}\"}}"): {}}},
            "f:spec": {"f:containers": containers, "f:dnsPolicy": {}, "f:enableServiceLinks": {}, "f:restartPolicy": {},
                       "f:schedulerName": {}, "f:securityContext": {}, "f:terminationGracePeriodSeconds": {}, "f:volumes": {}}}},
        {"manager": "kubelet", "operation": "Update", "apiVersion": "v1", "time": now,
         "fieldsType": "FieldsV1", "subresource": "status", "fieldsV1": {
            "f:status": {"f:conditions": conditions, "f:containerStatuses": {}, "f:hostIP": {}, "f:hostIPs": {}, "f:phase": {},
                         "f:podIP": {}, "f:podIPs": {".": {}, format!("k:{{\"ip\":\"{pod_ip}\"}}"): {".": {}, "f:ip": {}}}, "f:startTime": {}}}}
    ]);
    pod["metadata"]["managedFields"] = managed;
}

fn key_of(pod: &Value) -> String {
    let meta = &pod["metadata"];
    format!(
        "{}/{}",
        meta["namespace"].as_str().unwrap_or(""),
        meta["name"].as_str().unwrap_or("")
    )
}

/// A resourceVersion no serialized pod contains, so it can be found and replaced.
const RV_MARK: &str = "REPLAY-RV-MARK";

/// The annotation every watch event changes (to its resourceVersion), so each event is a
/// real change: one that differs only in resourceVersion is noise, which kubebridge does
/// not publish by default, and a benchmark would wait for it forever.
const CHANGE_ANNOTATION: &str = "replay.kubebridge.dev/change";

/// The watch stream: `config.events` MODIFIED events over `pods`, the i-th with
/// resourceVersion `list_rv + 1 + i` (also written to [`CHANGE_ANNOTATION`]), and its
/// byte offsets. Each pod is serialized once with a marker where its resourceVersion
/// goes; an event is that text spliced.
fn watch_stream(pods: &[Value], list_rv: u64, config: &ReplayConfig) -> (Bytes, Vec<usize>) {
    let templates: Vec<Vec<String>> = pods
        .iter()
        .map(|pod| {
            let mut pod = pod.clone();
            pod["metadata"]["resourceVersion"] = Value::String(RV_MARK.into());
            pod["metadata"]["annotations"][CHANGE_ANNOTATION] = Value::String(RV_MARK.into());
            // As the API server writes it: type first, kind and apiVersion first in the object.
            let mut text =
                String::from(r#"{"type":"MODIFIED","object":{"kind":"Pod","apiVersion":"v1","#);
            let body = serde_json::to_string(&pod).expect("JSON values serialize");
            text.push_str(&body[1..]);
            text.push_str("}\n");
            text.split(RV_MARK).map(str::to_owned).collect()
        })
        .collect();
    let mut stream = BytesMut::new();
    let mut offsets = Vec::with_capacity(config.events);
    if pods.is_empty() {
        return (stream.freeze(), offsets);
    }
    for i in 0..config.events {
        let rv = list_rv + 1 + i as u64;
        let pieces = &templates[i % templates.len()];
        let rv = rv.to_string();
        offsets.push(stream.len());
        for (n, piece) in pieces.iter().enumerate() {
            if n > 0 {
                stream.extend_from_slice(rv.as_bytes());
            }
            stream.extend_from_slice(piece.as_bytes());
        }
        if config.bookmark_every > 0 && (i + 1) % config.bookmark_every == 0 {
            let line = format!(
                "{{\"type\":\"BOOKMARK\",\"object\":{{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":{{\"resourceVersion\":\"{rv}\"}}}}}}\n"
            );
            stream.extend_from_slice(line.as_bytes());
        }
    }
    (stream.freeze(), offsets)
}

/// A running replay server; dropping it stops it.
pub struct Replay {
    addr: SocketAddr,
    data: Arc<ReplayData>,
    task: JoinHandle<()>,
}

impl Replay {
    /// Builds the data for `config`, binds `listen` and serves.
    pub async fn start(listen: SocketAddr, config: &ReplayConfig) -> std::io::Result<Replay> {
        let config = config.clone();
        let data = tokio::task::spawn_blocking(move || ReplayData::build(&config))
            .await
            .map_err(std::io::Error::other)?;
        Replay::serve(listen, Arc::new(data)).await
    }

    /// Serves already built data on `listen`.
    pub async fn serve(listen: SocketAddr, data: Arc<ReplayData>) -> std::io::Result<Replay> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(accept_loop(listener, data.clone()));
        Ok(Replay { addr, data, task })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What it serves.
    pub fn data(&self) -> &ReplayData {
        &self.data
    }

    /// A kubeconfig for this server.
    pub fn kubeconfig_yaml(&self) -> String {
        crate::kubeconfig::kubeconfig_yaml(&format!("http://{}", self.addr), None)
    }
}

impl Drop for Replay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: tokio::net::TcpListener, data: Arc<ReplayData>) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "replay server accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let data = data.clone();
        conns.spawn(async move {
            let svc = service_fn(move |req| {
                let data = data.clone();
                async move { Ok::<_, Infallible>(handle(&data, &req)) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                tracing::debug!(error = %e, "replay connection ended with an error");
            }
        });
        while conns.try_join_next().is_some() {}
    }
}

fn handle(data: &Arc<ReplayData>, req: &Request<Incoming>) -> Response<Body> {
    let path = req.uri().path();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let doc = match segs.as_slice() {
        ["version"] => Some(discovery::version()),
        ["api"] => Some(discovery::core_versions()),
        ["api", v] => discovery::resource_list(&data.registry, "", v),
        ["apis"] => Some(discovery::group_list(&data.registry)),
        ["apis", g] => discovery::group(&data.registry, g),
        ["apis", g, v] => discovery::resource_list(&data.registry, g, v),
        ["api", "v1", "pods"] => None,
        _ => return error_response(&ApiError::no_route()),
    };
    if let Some(doc) = doc {
        return value_response(StatusCode::OK, &doc);
    }
    let query = parse_query(req.uri().query());
    let watching = query.get("watch").is_some_and(|w| w == "true" || w == "1");
    let result = if watching {
        watch(data, &query)
    } else {
        let gzip = req
            .headers()
            .get(header::ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
        list(data, &query, gzip)
    };
    result.unwrap_or_else(|e| error_response(&e))
}

/// One LIST page: `limit` items after the continue token's key.
fn list(
    data: &ReplayData,
    query: &HashMap<String, String>,
    gzip: bool,
) -> Result<Response<Body>, ApiError> {
    let start = match query.get("continue").filter(|t| !t.is_empty()) {
        None => 0,
        Some(token) => {
            let token = ContinueToken::decode(token)
                .filter(|t| t.resource_version == data.list_rv)
                .ok_or_else(|| ApiError::bad_request("continue token is not valid"))?;
            data.keys.partition_point(|k| *k <= token.last_key)
        }
    };
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|&l| l > 0)
        .unwrap_or(usize::MAX);
    let end = start.saturating_add(limit).min(data.items.len());
    let mut meta = json!({"resourceVersion": data.list_rv.to_string()});
    if end < data.items.len() {
        let token = ContinueToken {
            resource_version: data.list_rv,
            last_key: data.keys[end - 1].clone(),
        };
        meta["continue"] = Value::String(token.encode());
        meta["remainingItemCount"] = json!(data.items.len() - end);
    }
    let page = &data.items[start..end];
    let mut body = Vec::with_capacity(page.iter().map(|i| i.len() + 1).sum::<usize>() + 256);
    write!(
        body,
        "{{\"kind\":\"PodList\",\"apiVersion\":\"v1\",\"metadata\":{meta},\"items\":["
    )
    .expect("writing to a Vec cannot fail");
    for (i, item) in page.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(item);
    }
    body.extend_from_slice(b"]}\n");
    if !gzip {
        return Ok(json_response(StatusCode::OK, body));
    }
    // The API server's default level (gzip.DefaultCompression).
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder
        .write_all(&body)
        .and_then(|()| encoder.finish())
        .map(|gz| {
            let mut resp = json_response(StatusCode::OK, gz);
            resp.headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            resp
        })
        .map_err(|e| ApiError::internal(format!("gzip: {e}")))
}

/// The watch stream from the event after `resourceVersion`, then held open until
/// `timeoutSeconds`.
fn watch(
    data: &Arc<ReplayData>,
    query: &HashMap<String, String>,
) -> Result<Response<Body>, ApiError> {
    let rv = match query.get("resourceVersion").map(String::as_str) {
        None | Some("") | Some("0") => data.list_rv,
        Some(rv) => rv
            .parse::<u64>()
            .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?,
    };
    if rv < data.list_rv {
        return Err(ApiError::expired(format!(
            "too old resource version: {rv} ({})",
            data.list_rv
        )));
    }
    let skip = usize::try_from(rv - data.list_rv).unwrap_or(usize::MAX);
    let from = data.offsets.get(skip).copied().unwrap_or(data.stream.len());
    let hold = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .map_or(DEFAULT_WATCH_HOLD, Duration::from_secs);
    if data.events_per_sec > 0.0 {
        return Ok(json_body_response(
            StatusCode::OK,
            paced(data.clone(), skip, hold).boxed_unsync(),
        ));
    }
    let stream = data.stream.slice(from..);
    let chunks = futures::stream::unfold(Some(stream), move |rest| async move {
        let mut rest = rest?;
        if rest.is_empty() {
            // All sent: hold the watch open, as a quiet API server does, then end it.
            tokio::time::sleep(hold).await;
            return None;
        }
        let chunk = rest.split_to(rest.len().min(WATCH_CHUNK));
        Some((Ok::<_, Infallible>(Frame::data(chunk)), Some(rest)))
    });
    Ok(json_body_response(
        StatusCode::OK,
        StreamBody::new(chunks).boxed_unsync(),
    ))
}

/// The stream from event `skip` on, one write per event at `events_per_sec`.
fn paced(
    data: Arc<ReplayData>,
    skip: usize,
    hold: Duration,
) -> StreamBody<impl futures::Stream<Item = Result<Frame<Bytes>, Infallible>>> {
    let start = {
        let mut started = data
            .paced_start
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match *started {
            Some(start) if skip > 0 => start,
            _ => *started.insert(Instant::now()),
        }
    };
    let period = 1.0 / data.events_per_sec;
    let chunks = futures::stream::unfold(skip, move |i| {
        let data = data.clone();
        async move {
            let Some(&from) = data.offsets.get(i) else {
                tokio::time::sleep(hold).await;
                return None;
            };
            let to = data
                .offsets
                .get(i + 1)
                .copied()
                .unwrap_or(data.stream.len());
            let due = start + Duration::from_secs_f64(i as f64 * period);
            tokio::time::sleep_until(due.into()).await;
            Some((Ok(Frame::data(data.stream.slice(from..to))), i + 1))
        }
    });
    StreamBody::new(chunks)
}
