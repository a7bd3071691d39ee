//! The reflector's transitions, one scenario each, against a scripted API server: each
//! request takes the next scripted reply; the test checks the deltas that come out and
//! the requests that went in.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;

use super::{Reflector, ReflectorConfig, ReflectorError};
use crate::informer::Delta;
use crate::informer::testing::pod_resource as pods;
use crate::metrics::Metrics;

/// One scripted answer.
enum Reply {
    /// A status code and a JSON body (a list page, or a `Status` error).
    Json(u16, String),
    /// A watch: these lines, then the server closes it.
    Closes(Vec<String>),
    /// A watch: these lines, then it stays open.
    Stays(Vec<String>),
    /// A watch: these lines, then the connection breaks (a transport error).
    Breaks(Vec<String>),
    /// A watch: these bytes as they are (no newline added), then it stays open.
    Chunks(Vec<String>),
    /// A watch that sends this line every period, forever.
    Every(Duration, String),
    /// These bytes, then nothing more, the body held open; the `Arc` lives as long as
    /// the body does, so a test sees when the client let go of it.
    Hangs(Vec<String>, Arc<()>),
}

/// What the server answers once the script is used up.
type Otherwise = Box<dyn Fn(&str) -> Reply + Send + Sync>;

/// The scripted server: the replies still to give, then what it answers after them, and
/// every request's path and query; and the metrics of the reflector it serves.
struct Server {
    replies: Mutex<VecDeque<Reply>>,
    otherwise: Otherwise,
    requests: Mutex<Vec<String>>,
    metrics: Metrics,
}

type Body = BoxBody<Bytes, std::io::Error>;

impl Server {
    fn requests(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The LIST requests so far.
    fn lists(&self) -> usize {
        self.requests()
            .iter()
            .filter(|r| !r.contains("watch=true"))
            .count()
    }

    /// The value of one series of the reflector's metrics, if it has been set.
    fn sample(&self, series: &str) -> Option<f64> {
        self.metrics.render().lines().find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.trim().parse().ok())
        })
    }

    fn answer(&self, uri: String) -> http::Response<Body> {
        let reply = self
            .replies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front();
        let reply = reply.unwrap_or_else(|| (self.otherwise)(&uri));
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(uri);
        let (code, body) = match reply {
            Reply::Json(code, json) => (
                code,
                BodyExt::boxed(Full::new(Bytes::from(json)).map_err(|e| match e {})),
            ),
            Reply::Closes(lines) => (200, BodyExt::boxed(StreamBody::new(frames(lines)))),
            Reply::Stays(lines) => {
                let open = frames(lines).chain(futures::stream::pending());
                (200, BodyExt::boxed(StreamBody::new(open)))
            }
            Reply::Breaks(lines) => {
                let broken = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "scripted");
                let breaks = frames(lines).chain(futures::stream::iter([Err(broken)]));
                (200, BodyExt::boxed(StreamBody::new(breaks)))
            }
            Reply::Chunks(chunks) => {
                let chunks = futures::stream::iter(
                    chunks
                        .into_iter()
                        .map(|chunk| Ok(Frame::data(Bytes::from(chunk)))),
                );
                let open = chunks.chain(futures::stream::pending());
                (200, BodyExt::boxed(StreamBody::new(open)))
            }
            Reply::Hangs(chunks, alive) => {
                let chunks = futures::stream::iter(
                    chunks
                        .into_iter()
                        .map(|chunk| Ok(Frame::data(Bytes::from(chunk)))),
                );
                let held = futures::stream::pending().map(move |frame| {
                    let _alive = &alive;
                    frame
                });
                (200, BodyExt::boxed(StreamBody::new(chunks.chain(held))))
            }
            Reply::Every(period, line) => {
                let ticks = futures::stream::unfold((), move |()| {
                    let line = line.clone();
                    async move {
                        tokio::time::sleep(period).await;
                        Some((Ok(Frame::data(Bytes::from(line + "\n"))), ()))
                    }
                });
                (200, BodyExt::boxed(StreamBody::new(ticks)))
            }
        };
        http::Response::builder()
            .status(code)
            .header("content-type", "application/json")
            .body(body)
            .expect("a valid response")
    }
}

/// Each line as one frame of a body.
fn frames(
    lines: Vec<String>,
) -> impl Stream<Item = Result<Frame<Bytes>, std::io::Error>> + Send + Unpin + 'static {
    futures::stream::iter(
        lines
            .into_iter()
            .map(|line| Ok(Frame::data(Bytes::from(line + "\n")))),
    )
}

/// A reflector for pods in `shop` whose requests the script answers; with the script
/// used up, a watch that never says anything.
fn reflector(config: ReflectorConfig, replies: Vec<Reply>) -> (Reflector, Arc<Server>) {
    scripted(config, replies, Box::new(|_| Reply::Stays(Vec::new())))
}

/// A reflector for pods in `shop` whose requests the script answers, then `otherwise`.
fn scripted(
    config: ReflectorConfig,
    replies: Vec<Reply>,
    otherwise: Otherwise,
) -> (Reflector, Arc<Server>) {
    let server = Arc::new(Server {
        replies: Mutex::new(replies.into()),
        otherwise,
        requests: Mutex::default(),
        metrics: Metrics::new(),
    });
    let answering = server.clone();
    let service = tower::service_fn(move |request: http::Request<kube::client::Body>| {
        let response = answering.answer(request.uri().to_string());
        async move { Ok::<_, Infallible>(response) }
    });
    let client = kube::Client::new(service, "default");
    let reflector = Reflector::new(
        "pods@shop".into(),
        client,
        pods(),
        Some("shop".into()),
        None,
        None,
        config,
        server.metrics.clone(),
    );
    (reflector, server)
}

fn pod(name: &str, rv: u32) -> String {
    format!(
        r#"{{"kind":"Pod","apiVersion":"v1","metadata":{{"name":"{name}","namespace":"shop","uid":"u-{name}","resourceVersion":"{rv}"}}}}"#
    )
}

fn page(rv: u32, continue_token: &str, items: &[String]) -> Reply {
    Reply::Json(
        200,
        format!(
            r#"{{"kind":"PodList","apiVersion":"v1","metadata":{{"resourceVersion":"{rv}","continue":"{continue_token}"}},"items":[{}]}}"#,
            items.join(",")
        ),
    )
}

fn status(code: u16, reason: &str) -> Reply {
    Reply::Json(
        code,
        format!(
            r#"{{"kind":"Status","apiVersion":"v1","status":"Failure","message":"scripted {reason}","reason":"{reason}","code":{code}}}"#
        ),
    )
}

fn event(kind: &str, object: &str) -> String {
    format!(r#"{{"type":"{kind}","object":{object}}}"#)
}

fn bookmark(rv: u32, ends_initial_events: bool) -> String {
    let annotations = if ends_initial_events {
        r#","annotations":{"k8s.io/initial-events-end":"true"}"#
    } else {
        ""
    };
    event(
        "BOOKMARK",
        &format!(
            r#"{{"kind":"Pod","apiVersion":"v1","metadata":{{"resourceVersion":"{rv}"{annotations}}}}}"#
        ),
    )
}

fn error_event(code: u16, reason: &str) -> String {
    event(
        "ERROR",
        &format!(
            r#"{{"kind":"Status","apiVersion":"v1","status":"Failure","message":"scripted","reason":"{reason}","code":{code}}}"#
        ),
    )
}

/// What the reflector logs at warn and above while a [`Logs::capture`] guard lives (the
/// tests run on one thread, so the thread's default subscriber sees everything).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .finish();
        (logs.clone(), tracing::subscriber::set_default(subscriber))
    }

    /// The warnings so far, one line each.
    fn warnings(&self) -> Vec<String> {
        let bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter(|l| l.contains("WARN"))
            .map(str::to_owned)
            .collect()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl tracing_subscriber::fmt::MakeWriter<'_> for Logs {
    type Writer = Logs;

    fn make_writer(&self) -> Logs {
        self.clone()
    }
}

/// `Replace initial a,b`, `Added c`, ...: enough to compare whole.
fn brief(delta: &Delta) -> String {
    match delta {
        Delta::Replace { objects, initial } => {
            let names: Vec<&str> = objects.iter().map(|o| o.name.as_str()).collect();
            let initial = if *initial { " initial" } else { "" };
            format!("Replace{initial} {}", names.join(","))
        }
        Delta::Added(o) => format!("Added {}", o.name),
        Delta::Modified(o) => format!("Modified {}", o.name),
        Delta::Deleted(o) => format!("Deleted {}", o.name),
    }
}

/// The first `n` deltas (fewer if the stream ends first), or the error that ended it.
async fn first(reflector: Reflector, n: usize) -> Result<Vec<String>, Box<ReflectorError>> {
    let stream = reflector.into_stream().take(n);
    let items: Vec<_> = tokio::time::timeout(Duration::from_secs(600), stream.collect())
        .await
        .expect("the deltas within the (paused) time");
    items
        .into_iter()
        .map(|item| item.map(|d| brief(&d)).map_err(Box::new))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_list_follows_continue_tokens_then_watches_from_its_version() {
    let (r, server) = reflector(
        ReflectorConfig::default(),
        vec![
            page(10, "t1", &[pod("a", 8)]),
            page(10, "", &[pod("b", 9)]),
            Reply::Stays(vec![event("ADDED", &pod("c", 11))]),
        ],
    );
    let deltas = first(r, 2).await.expect("deltas");
    assert_eq!(deltas, ["Replace initial a,b", "Added c"]);
    let requests = server.requests();
    assert_eq!(requests.len(), 3, "{requests:?}");
    assert!(requests[0].contains("limit=500"), "{requests:?}");
    assert!(requests[1].contains("continue=t1"), "{requests:?}");
    assert!(
        requests[2].contains("watch=true") && requests[2].contains("resourceVersion=10"),
        "{requests:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_expired_continue_token_lists_again_in_one_request() {
    let (r, server) = reflector(
        ReflectorConfig::default(),
        vec![
            page(10, "t1", &[pod("a", 8)]),
            status(410, "Expired"),
            page(20, "", &[pod("a", 8), pod("b", 19)]),
        ],
    );
    assert_eq!(first(r, 1).await.expect("deltas"), ["Replace initial a,b"]);
    let requests = server.requests();
    assert!(requests[1].contains("continue=t1"), "{requests:?}");
    assert!(
        !requests[2].contains("limit=") && !requests[2].contains("continue="),
        "one unpaginated request: {requests:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_closed_watch_resumes_from_its_last_version_and_410_relists() {
    let (r, server) = reflector(
        ReflectorConfig::default(),
        vec![
            page(10, "", &[pod("a", 8)]),
            Reply::Closes(vec![event("ADDED", &pod("b", 11)), bookmark(15, false)]),
            Reply::Closes(vec![error_event(410, "Expired")]),
            page(20, "", &[pod("b", 11)]),
        ],
    );
    let deltas = first(r, 3).await.expect("deltas");
    assert_eq!(deltas, ["Replace initial a", "Added b", "Replace b"]);
    let requests = server.requests();
    assert!(
        requests[2].contains("resourceVersion=15"),
        "resumed from the bookmark: {requests:?}"
    );
    assert!(requests[3].contains("limit=500"), "relisted: {requests:?}");
}

#[tokio::test(start_paused = true)]
async fn a_failed_watch_backs_off_and_resumes_from_the_same_version() {
    let (r, server) = reflector(
        ReflectorConfig::default(),
        vec![
            page(10, "", &[]),
            Reply::Closes(vec![
                event("ADDED", &pod("b", 11)),
                error_event(500, "InternalError"),
            ]),
            status(503, "ServiceUnavailable"),
            Reply::Breaks(vec![]),
            Reply::Stays(vec![event("DELETED", &pod("b", 12))]),
        ],
    );
    let start = tokio::time::Instant::now();
    let deltas = first(r, 3).await.expect("deltas");
    assert_eq!(deltas, ["Replace initial ", "Added b", "Deleted b"]);
    let requests = server.requests();
    assert_eq!(requests.len(), 5, "{requests:?}");
    for resumed in &requests[2..] {
        assert!(resumed.contains("resourceVersion=11"), "{requests:?}");
    }
    // Three failures in a row, each after a growing backoff (0.8 s doubling, jitter
    // x0.5 to x1.5): at least 0.4 + 0.8 + 1.6 s, so a backoff that never grew would fail.
    assert!(
        start.elapsed() >= Duration::from_millis(2800),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn a_refused_watch_list_falls_back_to_list_for_good() {
    let config = ReflectorConfig {
        watch_list: true,
        ..ReflectorConfig::default()
    };
    let (r, server) = reflector(
        config,
        vec![
            status(422, "Invalid"),
            page(5, "", &[pod("a", 4)]),
            status(410, "Expired"),
            page(9, "", &[pod("a", 4)]),
        ],
    );
    let deltas = first(r, 2).await.expect("deltas");
    assert_eq!(deltas, ["Replace initial a", "Replace a"]);
    let requests = server.requests();
    assert!(
        requests[0].contains("sendInitialEvents=true"),
        "{requests:?}"
    );
    assert!(requests[1].contains("limit=500"), "{requests:?}");
    assert!(
        requests[2].contains("resourceVersion=5") && !requests[2].contains("sendInitialEvents"),
        "{requests:?}"
    );
    assert!(
        requests[3].contains("limit=500"),
        "relisted by LIST: {requests:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_interrupted_watch_list_starts_again_and_its_list_is_still_the_first() {
    let config = ReflectorConfig {
        watch_list: true,
        ..ReflectorConfig::default()
    };
    let (r, server) = reflector(
        config,
        vec![
            Reply::Closes(vec![event("ADDED", &pod("a", 3))]),
            Reply::Closes(vec![
                event("ADDED", &pod("a", 3)),
                error_event(500, "InternalError"),
            ]),
            Reply::Stays(vec![
                event("ADDED", &pod("a", 3)),
                event("ADDED", &pod("b", 4)),
                bookmark(7, true),
                bookmark(7, false),
                event("MODIFIED", &pod("b", 8)),
            ]),
        ],
    );
    let deltas = first(r, 2).await.expect("deltas");
    assert_eq!(deltas, ["Replace initial a,b", "Modified b"]);
    let requests = server.requests();
    assert_eq!(requests.len(), 3, "{requests:?}");
    assert!(
        requests
            .iter()
            .all(|r| r.contains("sendInitialEvents=true")),
        "{requests:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn once_lists_without_watching_and_ends() {
    let config = ReflectorConfig {
        watch_list: true,
        once: true,
        ..ReflectorConfig::default()
    };
    let (r, server) = reflector(config, vec![page(5, "", &[pod("a", 4)])]);
    let deltas = first(r, 5).await.expect("deltas");
    assert_eq!(deltas, ["Replace initial a"]);
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_forbidden_list_ends_the_stream_with_the_missing_rule() {
    let (r, server) = reflector(
        ReflectorConfig::default(),
        vec![status(503, "ServiceUnavailable"), status(403, "Forbidden")],
    );
    let err = first(r, 5).await.expect_err("forbidden");
    assert!(
        matches!(*err, ReflectorError::Forbidden { verb: "list", .. }),
        "{err}"
    );
    assert!(err.to_string().contains(r#"resources: ["pods"]"#), "{err}");
    assert_eq!(server.requests().len(), 2, "retried the 503 only");
}

mod faults;
mod pages;
