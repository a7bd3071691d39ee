//! The listener: accepts connections (optionally over TLS) and serves each within
//! bounds, because the liveness probe goes through the same port and must survive the
//! port's other clients:
//!
//! - a failed accept (out of file descriptors, say) is retried after a backoff (10 ms
//!   doubling to 1 s, as Go's `net/http` does), logged at most once per 10 s;
//! - a client has [`EndpointsConfig::header_read_timeout`] to finish its TLS handshake
//!   and to send a request's head (between requests too), and a connection lives at most
//!   [`EndpointsConfig::connection_timeout`];
//! - at most [`EndpointsConfig::max_connections`] connections are served in full; past
//!   that, [`EndpointsConfig::probe_connections`] more are answered for `/healthz` and
//!   `/readyz` only (503 for anything else, one request each), so a flood of scrapers
//!   or slow clients cannot fail the kubelet's probes; past both, a new connection is
//!   closed at once.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::auth::Authorizer;
use super::routes::answer;
use crate::lister::Lister;
use crate::log_throttle::LogThrottle;
use crate::metrics::Metrics;

/// Says whether kubebridge is ready, and if not, why.
pub(crate) type Readiness = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// How the endpoints defend themselves against their clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EndpointsConfig {
    /// How long a client may take to send a request's line and headers, counted from
    /// the connection's start or the end of its previous response (so it also closes
    /// idle keep-alive connections). Default 10 s: a probe or scrape sends its request
    /// at once; Go's `ReadHeaderTimeout` is commonly set to 5-10 s.
    pub header_read_timeout: Duration,
    /// The longest a connection may live, however busy: bounds a client that reads a
    /// response slowly (and the snapshot a `/cache` response holds). Default 2 min:
    /// far above a scrape (Prometheus' default timeout is 10 s) or a `/cache` read.
    pub connection_timeout: Duration,
    /// Connections served in full at once. Default 64: a few scrapers, probes and
    /// `/cache` readers, with a bounded cost in memory and file descriptors.
    pub max_connections: usize,
    /// Further connections, past `max_connections`, that are answered for `/healthz`
    /// and `/readyz` only (one request each, whose head must come within 1 s), so the
    /// kubelet's probes get through a flood. Default 8: the probes of a pod, several
    /// times over.
    pub probe_connections: usize,
}

impl Default for EndpointsConfig {
    fn default() -> Self {
        EndpointsConfig {
            header_read_timeout: Duration::from_secs(10),
            connection_timeout: Duration::from_secs(120),
            max_connections: 64,
            probe_connections: 8,
        }
    }
}

/// Where connections come from: a bound [`TcpListener`], or a script in tests.
pub(crate) trait Incoming: Send + 'static {
    /// One accepted connection.
    type Conn: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Waits for the next connection.
    fn next_conn(&mut self) -> impl Future<Output = io::Result<Self::Conn>> + Send;
}

impl Incoming for TcpListener {
    type Conn = TcpStream;

    async fn next_conn(&mut self) -> io::Result<TcpStream> {
        self.accept().await.map(|(stream, _)| stream)
    }
}

/// Binds `addr`: done before anything starts, so a port in use is reported at once and
/// the endpoints answer from the first moment anything can be observed.
pub(crate) async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// What the endpoints answer from.
#[derive(Clone)]
pub(crate) struct Handlers {
    /// Rendered by `/metrics`; also counts the port's own connections.
    pub(crate) metrics: Metrics,
    /// Asked by `/readyz`.
    pub(crate) ready: Readiness,
    /// Behind `/cache/…`, when `--serve-cache`; empty until the informers start.
    pub(crate) lister: Option<Arc<OnceLock<Lister>>>,
    /// Checks `/metrics` and `/cache` requests, with `--metrics-auth kubernetes`.
    pub(crate) auth: Option<Arc<Authorizer>>,
    /// Wraps every connection in TLS, when serving HTTPS.
    pub(crate) tls: Option<TlsAcceptor>,
}

/// Serves the endpoints on the connections from `incoming` until `cancel`.
pub(crate) fn serve_with(
    config: EndpointsConfig,
    incoming: impl Incoming,
    handlers: Handlers,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(accept_loop(config, incoming, Arc::new(handlers), cancel))
}

/// The header read timeout of an overflow (probe-only) connection, at most.
const PROBE_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(1);

/// Which requests a connection is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Everything.
    All,
    /// `/healthz` and `/readyz`; 503 for the rest (the full slots are taken).
    ProbesOnly,
}

async fn accept_loop(
    config: EndpointsConfig,
    mut incoming: impl Incoming,
    handlers: Arc<Handlers>,
    cancel: CancellationToken,
) {
    let permits = |n: usize| Arc::new(Semaphore::new(n.min(Semaphore::MAX_PERMITS)));
    let full = permits(config.max_connections);
    let probes = permits(config.probe_connections);
    let mut backoff = AcceptBackoff::default();
    loop {
        let accepted = tokio::select! {
            accepted = incoming.next_conn() => accepted,
            () = cancel.cancelled() => return,
        };
        let conn = match accepted {
            Ok(conn) => {
                backoff.succeeded();
                conn
            }
            Err(e) => {
                handlers.metrics.endpoint_accept_failed();
                let delay = backoff.failed(&e);
                tokio::select! {
                    () = tokio::time::sleep(delay) => continue,
                    () = cancel.cancelled() => return,
                }
            }
        };
        let (slot, scope) = if let Ok(slot) = full.clone().try_acquire_owned() {
            (slot, Scope::All)
        } else if let Ok(slot) = probes.clone().try_acquire_owned() {
            (slot, Scope::ProbesOnly)
        } else {
            handlers.metrics.endpoint_connection_rejected();
            tracing::debug!(
                max = config
                    .max_connections
                    .saturating_add(config.probe_connections),
                "metrics listener: every connection slot taken; closing a new connection"
            );
            drop(conn);
            continue;
        };
        let connection = connection(conn, slot, scope, &config, handlers.clone());
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = connection => {}
                () = cancel.cancelled() => {}
            }
        });
    }
}

/// Serves one connection, holding its slot, for at most the connection timeout.
fn connection<C: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    conn: C,
    slot: OwnedSemaphorePermit,
    scope: Scope,
    config: &EndpointsConfig,
    handlers: Arc<Handlers>,
) -> impl Future<Output = ()> + Send + 'static {
    let open = handlers.metrics.endpoint_connection_opened();
    let header_read_timeout = match scope {
        Scope::All => config.header_read_timeout,
        // A probe sends its request at once, and the kubelet gives up after 1 s by
        // default (timeoutSeconds): an overflow slot is not held longer for a silent client.
        Scope::ProbesOnly => config.header_read_timeout.min(PROBE_HEADER_READ_TIMEOUT),
    };
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .keep_alive(scope == Scope::All);
    let lifetime = config.connection_timeout;
    async move {
        let metrics = handlers.metrics.clone();
        let serving = async {
            match handlers.tls.clone() {
                None => serve_http(builder, conn, scope, handlers).await,
                Some(tls) => {
                    // The handshake counts against the header read timeout: a client
                    // that opens a connection and says nothing must not hold its slot.
                    match tokio::time::timeout(header_read_timeout, tls.accept(conn)).await {
                        Ok(Ok(conn)) => serve_http(builder, conn, scope, handlers).await,
                        Ok(Err(_)) | Err(_) => metrics.endpoint_tls_handshake_failed(),
                    }
                }
            }
        };
        // An error is the client's doing (a timeout, a reset, a malformed request or
        // handshake): nothing to report but the connection's end.
        let _ = tokio::time::timeout(lifetime, serving).await;
        drop((slot, open));
    }
}

/// Serves HTTP/1.1 on one (plain or TLS) connection until it ends.
async fn serve_http<C: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    builder: http1::Builder,
    conn: C,
    scope: Scope,
    handlers: Arc<Handlers>,
) {
    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let handlers = handlers.clone();
        async move { Ok::<_, Infallible>(answer(req, scope, &handlers).await) }
    });
    let _ = builder.serve_connection(TokioIo::new(conn), service).await;
}

/// The delay after each failed accept, and a log of them that cannot flood stderr.
#[derive(Debug)]
struct AcceptBackoff {
    /// The delay after the last failure; zero after a success.
    delay: Duration,
    /// Failures logged at most every 10 s.
    log: LogThrottle,
    /// Failures since the last success.
    failures: u64,
}

impl Default for AcceptBackoff {
    fn default() -> Self {
        AcceptBackoff {
            delay: Duration::ZERO,
            log: LogThrottle::new(Duration::from_secs(10)),
            failures: 0,
        }
    }
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(10);
    const MAX: Duration = Duration::from_secs(1);

    /// Counts a failure; returns how long to wait before accepting again.
    fn failed(&mut self, error: &io::Error) -> Duration {
        self.delay = (self.delay * 2).clamp(Self::FIRST, Self::MAX);
        self.failures += 1;
        if let Some(unlogged) = self.log.due() {
            tracing::warn!(
                error = %error,
                retry_in = ?self.delay,
                failures_since_last_log = unlogged,
                "metrics listener: accept failed; backing off (logged at most every 10 s)"
            );
        }
        self.delay
    }

    /// An accept succeeded: the next failure starts the backoff afresh.
    fn succeeded(&mut self) {
        if self.failures > 0 {
            tracing::info!(
                failures = self.failures,
                "metrics listener: accepting again"
            );
        }
        *self = AcceptBackoff::default();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::time::Instant;

    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    use super::*;

    fn handlers() -> Handlers {
        Handlers {
            metrics: Metrics::new(),
            ready: Arc::new(|| Ok(())),
            lister: None,
            auth: None,
            tls: None,
        }
    }

    /// Serves on 127.0.0.1:0 with `config`; stops when the token is dropped.
    async fn start(config: EndpointsConfig, handlers: Handlers) -> (SocketAddr, CancellationToken) {
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cancel = CancellationToken::new();
        serve_with(config, listener, handlers, cancel.clone());
        (addr, cancel)
    }

    /// Reads until the server closes the connection: what it sent, or `None` if it
    /// did not close within `within`.
    async fn until_closed(conn: &mut TcpStream, within: Duration) -> Option<String> {
        let mut got = Vec::new();
        let read = tokio::time::timeout(within, conn.read_to_end(&mut got)).await;
        read.ok()
            .map(|_| String::from_utf8_lossy(&got).into_owned())
    }

    /// One `GET path` on a new connection, closed after: the whole response.
    async fn get_once(addr: SocketAddr, path: &str) -> String {
        let mut conn = TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        conn.write_all(request.as_bytes()).await.unwrap();
        until_closed(&mut conn, Duration::from_secs(5))
            .await
            .unwrap()
    }

    fn sample(metrics: &Metrics, name: &str) -> f64 {
        let text = metrics.render();
        let line = text.lines().find(|l| l.starts_with(&format!("{name} ")));
        line.and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap()
    }

    async fn wait_for(metrics: &Metrics, name: &str, value: f64) {
        for _ in 0..200 {
            if sample(metrics, name) == value {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{name} never reached {value}: {}", metrics.render());
    }

    fn quick() -> EndpointsConfig {
        EndpointsConfig {
            header_read_timeout: Duration::from_millis(300),
            ..EndpointsConfig::default()
        }
    }

    #[tokio::test]
    async fn a_client_that_sends_half_a_request_line_is_dropped() {
        let (addr, _stop) = start(quick(), handlers()).await;
        let mut conn = TcpStream::connect(addr).await.unwrap();
        conn.write_all(b"GET /metr").await.unwrap();
        let started = Instant::now();
        let closed = until_closed(&mut conn, Duration::from_secs(5)).await;
        assert!(closed.is_some(), "still connected after 5 s");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn a_client_that_sends_nothing_is_dropped() {
        let (addr, _stop) = start(quick(), handlers()).await;
        let mut conn = TcpStream::connect(addr).await.unwrap();
        let closed = until_closed(&mut conn, Duration::from_secs(5)).await;
        assert_eq!(closed.as_deref(), Some(""), "dropped without a word");
    }

    #[tokio::test]
    async fn a_client_that_opens_tls_and_sends_nothing_is_dropped() {
        let names = vec!["localhost".to_owned()];
        let tls = super::super::tls::acceptor(&super::super::TlsSource::SelfSigned { names });
        let handlers = Handlers {
            tls: Some(tls.unwrap()),
            ..handlers()
        };
        let metrics = handlers.metrics.clone();
        let (addr, _stop) = start(quick(), handlers).await;
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let closed = until_closed(&mut silent, Duration::from_secs(5)).await;
        assert_eq!(closed.as_deref(), Some(""), "dropped without a word");
        wait_for(
            &metrics,
            "kubebridge_endpoint_tls_handshake_errors_total",
            1.0,
        )
        .await;
        wait_for(&metrics, "kubebridge_endpoint_connections", 0.0).await;
    }

    #[tokio::test]
    async fn an_idle_keep_alive_connection_is_closed() {
        let (addr, _stop) = start(quick(), handlers()).await;
        let mut conn = TcpStream::connect(addr).await.unwrap();
        conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let answer = until_closed(&mut conn, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }

    #[tokio::test]
    async fn a_connection_lives_no_longer_than_the_connection_timeout() {
        let config = EndpointsConfig {
            connection_timeout: Duration::from_millis(500),
            ..EndpointsConfig::default()
        };
        let (addr, _stop) = start(config, handlers()).await;
        let mut conn = TcpStream::connect(addr).await.unwrap();
        let started = Instant::now();
        // A busy client: a request every 100 ms, each answered, never idle.
        let mut buf = [0u8; 4096];
        loop {
            let sent = conn
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                .await;
            let n = conn.read(&mut buf).await.unwrap_or(0);
            if sent.is_err() || n == 0 {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(3), "never closed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(started.elapsed() >= Duration::from_millis(400));
    }

    #[tokio::test]
    async fn over_the_cap_only_probes_are_answered_and_past_that_connections_are_closed() {
        let config = EndpointsConfig {
            max_connections: 2,
            probe_connections: 1,
            ..EndpointsConfig::default()
        };
        let handlers = handlers();
        let metrics = handlers.metrics.clone();
        let (addr, _stop) = start(config, handlers).await;
        let mut held = Vec::new();
        for _ in 0..2 {
            held.push(TcpStream::connect(addr).await.unwrap());
        }
        wait_for(&metrics, "kubebridge_endpoint_connections", 2.0).await;

        // The full slots are taken: a probe still gets through, a scrape is told to retry.
        let health = get_once(addr, "/healthz").await;
        assert!(health.starts_with("HTTP/1.1 200"), "{health}");
        let ready = get_once(addr, "/readyz").await;
        assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
        let scrape = get_once(addr, "/metrics").await;
        assert!(scrape.starts_with("HTTP/1.1 503"), "{scrape}");
        assert!(scrape.contains("too many connections"), "{scrape}");

        // With the probe slot taken too, a new connection is closed at once.
        let _probe = TcpStream::connect(addr).await.unwrap();
        wait_for(&metrics, "kubebridge_endpoint_connections", 3.0).await;
        let mut refused = TcpStream::connect(addr).await.unwrap();
        let closed = until_closed(&mut refused, Duration::from_secs(1)).await;
        assert_eq!(closed.as_deref(), Some(""), "closed without an answer");
        assert_eq!(
            sample(&metrics, "kubebridge_endpoint_connections_rejected_total"),
            1.0
        );

        // A slot freed is a slot served in full again.
        drop(held.pop());
        wait_for(&metrics, "kubebridge_endpoint_connections", 2.0).await;
        let scrape = get_once(addr, "/metrics").await;
        assert!(scrape.starts_with("HTTP/1.1 200"), "{scrape}");
    }

    /// Connections that never come: every accept fails as when out of descriptors.
    struct OutOfDescriptors {
        calls: Arc<AtomicUsize>,
    }

    impl Incoming for OutOfDescriptors {
        type Conn = DuplexStream;

        fn next_conn(&mut self) -> impl Future<Output = io::Result<DuplexStream>> + Send {
            self.calls.fetch_add(1, Ordering::Relaxed);
            async {
                tokio::task::yield_now().await;
                Err(io::Error::from_raw_os_error(24)) // EMFILE
            }
        }
    }

    // Paused time: the backoff's sleeps advance the clock exactly, so a loaded machine
    // cannot make this count vary.
    #[tokio::test(start_paused = true)]
    async fn failed_accepts_back_off() {
        let calls = Arc::new(AtomicUsize::new(0));
        let incoming = OutOfDescriptors {
            calls: calls.clone(),
        };
        let handlers = handlers();
        let metrics = handlers.metrics.clone();
        let cancel = CancellationToken::new();
        let task = serve_with(
            EndpointsConfig::default(),
            incoming,
            handlers,
            cancel.clone(),
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        cancel.cancel();
        task.await.unwrap();
        // Attempts at 0, 10, 30, 70 and 150 ms (waits of 10, 20, 40, 80, 160 ms): five in
        // 300 ms, not thousands.
        let attempts = calls.load(Ordering::Relaxed);
        assert_eq!(attempts, 5, "{attempts} accepts in 300 ms");
        assert_eq!(
            sample(&metrics, "kubebridge_endpoint_accept_errors_total"),
            attempts as f64
        );
    }

    #[test]
    fn the_accept_backoff_doubles_to_a_second_and_starts_afresh_after_a_success() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let _enter = rt.enter();
        let mut backoff = AcceptBackoff::default();
        let emfile = io::Error::from_raw_os_error(24);
        let delays: Vec<u128> = (0..10)
            .map(|_| backoff.failed(&emfile).as_millis())
            .collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
        assert_eq!(
            backoff.log.unlogged(),
            9,
            "one line logged for ten failures"
        );
        backoff.succeeded();
        assert_eq!(backoff.failed(&emfile), Duration::from_millis(10));
    }
}
