//! Benchmark (prints figures; asserts nothing about speed): kubebridge's real sinks
//! (Kafka, core NATS, JetStream) against real brokers, each next to a bare producer
//! written with the same client library (the ceiling).
//!
//! For each sink it prints:
//!
//! - **rate**: confirmations per second over a fixed window, after a warm-up. For
//!   kubebridge, notifications whose `publish` returned success; for the bare producer,
//!   messages confirmed (Kafka delivery report, core NATS flush, JetStream ack).
//! - **p50 / p99**: for kubebridge, from [`Notification::time`] (when kubebridge
//!   observed the watch event) to the sink's confirmation, so kubebridge's queue and
//!   batching are included; for the bare producer, from handing the message to the
//!   client to its confirmation.
//! - **kubebridge / bare**: the ratio of the rates.
//! - **simulator**: the writes per second the simulator achieved and how far behind it
//!   kubebridge's last confirmation was when the window closed, so a reader can tell
//!   whether the sink path or the simulator was the bottleneck.
//!
//! kubebridge runs `watch pods -A` (initial state skipped, so only live changes are
//! timed) against the in-process simulator with churn, with one real sink from
//! `sink_from_uri` wrapped in a timing decorator. The bare producer then publishes the
//! envelopes captured during kubebridge's warm-up, in the batch sizes kubebridge's
//! sink was called with, with the sink's producer settings, but without kubebridge's
//! headers; the simulator is stopped by then, so the bare run has both cores.
//!
//! Needs the brokers: `source tests/brokers.sh && start_brokers`, then
//! `cargo bench --bench sinks` (full size; `BENCH_SECONDS`, `BENCH_CHURN` and
//! `BENCH_PODS` override). Without `--bench` (as under `cargo test`) it runs a smoke
//! size; there, with the broker variables unset, `KUBEBRIDGE_SKIP_BROKERS=1` skips it.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use kubebridge::cmd as app;
use kubebridge::config::{InitialState, NamespaceScope, Route, StreamConfig};
use kubebridge::kube::cluster;
use kubebridge_sim::{Sim, SimConfig};
use kubebridge_sinks::jetstream::MAX_IN_FLIGHT;
use kubebridge_sinks::{Notification, Origin, PublishError, Sink, SinkError, SinkOptions};
use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};

/// How long a producer may take to get its first confirmation (connecting, creating
/// the topic or stream) before the benchmark gives up.
const STARTUP_LIMIT: Duration = Duration::from_secs(60);

/// Real envelopes kept from kubebridge's warm-up for the bare producer to publish.
const SAMPLES: usize = 2000;

/// The Kafka sink's producer settings (see `sinks/src/kafka.rs`), for the bare producer.
const KAFKA_SETTINGS: &[(&str, &str)] = &[
    ("acks", "all"),
    ("enable.idempotence", "true"),
    ("compression.type", "lz4"),
    ("message.timeout.ms", "0"),
    ("linger.ms", "0"),
];

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let size = Size::from_args();
    let Some(brokers) = Brokers::from_env(size.full) else {
        return;
    };
    print_header(&size);
    let null = run_kubebridge(Box::new(NullSink), &size).await;
    print_null_report(&size, &null);
    for kind in [Kind::Kafka, Kind::Nats, Kind::JetStream] {
        let uri = kind.sink_uri(&brokers);
        let sink = kubebridge_sinks::sink_from_uri(&uri, &SinkOptions::default())
            .await
            .unwrap_or_else(|e| panic!("sink {uri}: {e}"));
        let kb = run_kubebridge(sink, &size).await;
        let bare = match kind {
            Kind::Kafka => run_bare(&mut BareKafka::new(&brokers), &kb, &size).await,
            Kind::Nats => run_bare(&mut BareNats::new(&brokers).await, &kb, &size).await,
            Kind::JetStream => run_bare(&mut BareJetStream::new(&brokers).await, &kb, &size).await,
        };
        print_report(kind, &brokers, &size, &kb, &bare);
    }
    println!();
    println!(
        "load average (1 min) at the end: {} on {} cores",
        load_average(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    delete_stream(&brokers).await;
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// How big a run is: full under `cargo bench`, a smoke size otherwise.
struct Size {
    full: bool,
    pods: usize,
    namespaces: usize,
    /// The simulator's asked rate of changes per second.
    churn: f64,
    warmup: Duration,
    window: Duration,
}

impl Size {
    fn from_args() -> Size {
        let full = std::env::args().any(|a| a == "--bench");
        Size {
            full,
            pods: env_or("BENCH_PODS", if full { 2000 } else { 200 }) as usize,
            namespaces: if full { 20 } else { 4 },
            churn: env_or("BENCH_CHURN", if full { 10_000 } else { 200 }) as f64,
            warmup: Duration::from_millis(if full { 3000 } else { 500 }),
            window: Duration::from_secs(env_or("BENCH_SECONDS", if full { 10 } else { 1 })),
        }
    }

    fn sim_config(&self) -> SimConfig {
        SimConfig {
            namespaces: self.namespaces,
            pods: self.pods,
            // Pods need owners: churn replaces a deleted pod under its ReplicaSet.
            deployments_per_namespace: 2,
            churn_per_sec: self.churn,
            // Far more than a run writes, so a watch that lags and reconnects resumes
            // instead of relisting.
            history: ((self.churn * 60.0) as usize).max(10_000),
            ..SimConfig::default()
        }
    }
}

/// Where the shared test brokers listen (`tests/brokers.sh`).
struct Brokers {
    /// `HOST:PORT` of nats-server (JetStream enabled).
    nats: String,
    /// `HOST:PORT` of the Kafka-protocol broker.
    kafka: String,
    /// Unique per run, so runs against the same brokers don't interfere.
    run: u32,
}

impl Brokers {
    /// The brokers from the environment; `None` to skip (smoke mode only), and exits
    /// with a message if they are unset otherwise.
    fn from_env(full: bool) -> Option<Brokers> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let nats = var("KUBEBRIDGE_TEST_NATS_URL");
        let kafka = var("KUBEBRIDGE_TEST_KAFKA_BROKERS");
        if let (Some(nats), Some(kafka)) = (nats, kafka) {
            return Some(Brokers {
                nats: nats.trim_start_matches("nats://").to_owned(),
                kafka,
                run: std::process::id(),
            });
        }
        if !full && std::env::var("KUBEBRIDGE_SKIP_BROKERS").as_deref() == Ok("1") {
            println!(
                "sinks benchmark: KUBEBRIDGE_SKIP_BROKERS=1 and no brokers configured; skipping"
            );
            return None;
        }
        eprintln!(
            "sinks benchmark: KUBEBRIDGE_TEST_NATS_URL and KUBEBRIDGE_TEST_KAFKA_BROKERS are not set; \
             run `source tests/brokers.sh && start_brokers` first{}",
            if full {
                ""
            } else {
                " (or set KUBEBRIDGE_SKIP_BROKERS=1 to skip)"
            }
        );
        std::process::exit(1);
    }

    fn stream(&self) -> String {
        format!("KBBENCH_{}", self.run)
    }

    /// The JetStream stream captures `PREFIX.>`; both producers publish under it.
    fn jetstream_prefix(&self) -> String {
        format!("kbbench{}", self.run)
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Kafka,
    Nats,
    JetStream,
}

impl Kind {
    fn sink_uri(self, b: &Brokers) -> String {
        match self {
            Kind::Kafka => format!("kafka://{}/kbbench_{}_kubebridge", b.kafka, b.run),
            Kind::Nats => format!("nats://{}/kbbench{}nats", b.nats, b.run),
            Kind::JetStream => format!(
                "jetstream://{}/{}?stream={}",
                b.nats,
                b.jetstream_prefix(),
                b.stream()
            ),
        }
    }

    fn describe(self, b: &Brokers) -> String {
        match self {
            Kind::Kafka => format!(
                "kafka (broker {}; acks=all, idempotence, lz4, linger.ms=0 on both sides)",
                b.kafka
            ),
            Kind::Nats => format!(
                "nats core (server {}; confirmation = flush after each batch)",
                b.nats
            ),
            Kind::JetStream => format!(
                "jetstream (server {}, stream {}, file storage; confirmation = ack, up to {MAX_IN_FLIGHT} in flight)",
                b.nats,
                b.stream()
            ),
        }
    }

    fn bare_name(self) -> &'static str {
        match self {
            Kind::Kafka => "bare rdkafka FutureProducer",
            Kind::Nats => "bare async-nats publish+flush",
            Kind::JetStream => "bare async-nats JetStream",
        }
    }
}

/// One message as the sinks would send it: the envelope, its Kafka key and the part of
/// its NATS subject after the prefix.
struct Payload {
    key: String,
    subject: String,
    body: Bytes,
}

impl Payload {
    fn of(n: &Notification) -> Payload {
        Payload {
            key: n.key(),
            subject: format!(
                "core.v1.pods.{}.{}",
                n.namespace.as_deref().unwrap_or("_"),
                n.name
            ),
            body: n.to_json().into(),
        }
    }
}

/// What the timing decorator saw.
#[derive(Default)]
struct Stats {
    /// Whether the measurement window is open.
    recording: bool,
    /// Confirmed since the start, warm-up included.
    total: u64,
    /// Observed → confirmed, for each notification confirmed in the window.
    latencies: Vec<Duration>,
    /// The size of each batch the sink was given in the window.
    batches: Vec<usize>,
    /// Confirmed notifications in the window that did not come from a watch event
    /// (a relist after an expired watch), which would mean the run was disturbed.
    not_watch: u64,
    /// The highest resourceVersion confirmed so far.
    last_rv: u64,
    /// Envelopes captured during the warm-up, for the bare producer.
    samples: Vec<Payload>,
}

impl Stats {
    fn record(&mut self, batch_len: usize, confirmed: &[Arc<Notification>], at: SystemTime) {
        self.total += confirmed.len() as u64;
        for n in confirmed {
            self.last_rv = self.last_rv.max(n.resource_version.parse().unwrap_or(0));
        }
        if !self.recording {
            let room = SAMPLES.saturating_sub(self.samples.len());
            self.samples
                .extend(confirmed.iter().take(room).map(|n| Payload::of(n)));
            return;
        }
        self.batches.push(batch_len);
        for n in confirmed {
            self.latencies
                .push(at.duration_since(n.time).unwrap_or_default());
            if n.origin != Origin::Watch {
                self.not_watch += 1;
            }
        }
    }
}

/// Forwards to the real sink and records, for what it confirmed, the time since
/// kubebridge observed each change.
struct Timed {
    inner: Box<dyn Sink>,
    stats: Arc<Mutex<Stats>>,
}

#[async_trait]
impl Sink for Timed {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    async fn publish(&mut self, batch: &[Arc<Notification>]) -> Result<(), PublishError> {
        let result = self.inner.publish(batch).await;
        let at = SystemTime::now();
        let confirmed = match &result {
            Ok(()) => batch.len(),
            Err(e) => e.delivered,
        };
        self.stats
            .lock()
            .unwrap()
            .record(batch.len(), &batch[..confirmed], at);
        result
    }

    async fn close(&mut self) -> Result<(), SinkError> {
        self.inner.close().await
    }
}

/// Confirms every batch at once: kubebridge and the simulator with no broker, the
/// ceiling of the watch path on this machine.
struct NullSink;

#[async_trait]
impl Sink for NullSink {
    fn kind(&self) -> &'static str {
        "null"
    }

    async fn publish(&mut self, _batch: &[Arc<Notification>]) -> Result<(), PublishError> {
        Ok(())
    }
}

/// Rate and latency of one producer over its window.
struct Measured {
    rate: f64,
    p50: Option<Duration>,
    p99: Option<Duration>,
    mean_batch: f64,
}

impl Measured {
    fn new(elapsed: Duration, mut latencies: Vec<Duration>, batches: &[usize]) -> Measured {
        latencies.sort_unstable();
        // Nearest rank.
        let pct = |p: f64| {
            let rank = ((p / 100.0) * latencies.len() as f64).ceil() as usize;
            latencies.get(rank.max(1) - 1).copied()
        };
        Measured {
            rate: latencies.len() as f64 / elapsed.as_secs_f64(),
            p50: pct(50.0),
            p99: pct(99.0),
            mean_batch: batches.iter().sum::<usize>() as f64 / batches.len().max(1) as f64,
        }
    }
}

/// kubebridge's side of one sink's run.
struct KubebridgeRun {
    measured: Measured,
    /// The simulator's writes per second in the window (resourceVersion increments:
    /// pod changes plus the ~8% that are deployment writes kubebridge doesn't watch).
    sim_writes_per_sec: f64,
    /// resourceVersions between the simulator's latest and kubebridge's last confirmed
    /// one when the window closed.
    behind: u64,
    not_watch: u64,
    /// Watch requests kubebridge made by the window's end: 1 if its watch never
    /// dropped (the simulator drops a watcher that lags too far behind).
    watches: u64,
    batches: Vec<usize>,
    samples: Vec<Payload>,
}

impl KubebridgeRun {
    /// `behind` in seconds of the simulator's writes.
    fn behind_secs(&self) -> f64 {
        self.behind as f64 / self.sim_writes_per_sec.max(1.0)
    }
}

fn stream_config() -> StreamConfig {
    let mut pods = Route::new("pods", ["pods"]);
    pods.namespaces = NamespaceScope::All;
    let mut stream = StreamConfig::new(vec![pods]);
    stream.initial_state = InitialState::Skip;
    stream
}

/// Runs `watch pods -A` into `sink` against a fresh simulator and measures one window.
async fn run_kubebridge(sink: Box<dyn Sink>, size: &Size) -> KubebridgeRun {
    let kind = sink.kind();
    let sim = Sim::start(SocketAddr::from(([127, 0, 0, 1], 0)), size.sim_config())
        .await
        .expect("start the simulator");
    let cluster = cluster::from_config(
        kube::Config::new(sim.url().parse().expect("simulator URL")),
        Some("kbbench".into()),
    )
    .expect("a client for the simulator");
    let stats = Arc::new(Mutex::new(Stats::default()));
    let timed = Box::new(Timed {
        inner: sink,
        stats: stats.clone(),
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let stream = stream_config();
    let watching = app::watch(&cluster, &stream, vec![("pods".into(), timed)], async {
        let _ = stopped.await;
    });
    let measuring = async {
        let run = measure_window(&sim, &stats, size).await;
        let _ = stop.send(());
        run
    };
    let (result, run) = tokio::join!(watching, measuring);
    result.unwrap_or_else(|e| panic!("kubebridge watch into the {kind} sink failed: {e}"));
    sim.shutdown().await;
    run
}

/// Waits for the first confirmation and the warm-up, then opens the window for
/// `size.window` and collects what the decorator recorded.
async fn measure_window(sim: &Sim, stats: &Mutex<Stats>, size: &Size) -> KubebridgeRun {
    let deadline = Instant::now() + STARTUP_LIMIT;
    while stats.lock().unwrap().total == 0 {
        assert!(
            Instant::now() < deadline,
            "kubebridge confirmed nothing within {STARTUP_LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(size.warmup).await;
    let rv_start = sim.resource_version();
    stats.lock().unwrap().recording = true;
    let start = Instant::now();
    tokio::time::sleep(size.window).await;
    let taken = {
        let mut stats = stats.lock().unwrap();
        stats.recording = false;
        std::mem::take(&mut *stats)
    };
    let elapsed = start.elapsed();
    let rv_end = sim.resource_version();
    KubebridgeRun {
        measured: Measured::new(elapsed, taken.latencies, &taken.batches),
        sim_writes_per_sec: rv_end.saturating_sub(rv_start) as f64 / elapsed.as_secs_f64(),
        behind: rv_end.saturating_sub(taken.last_rv),
        not_watch: taken.not_watch,
        watches: sim.requests("watch", "pods"),
        batches: taken.batches,
        samples: taken.samples,
    }
}

/// A producer written directly against a client library.
trait Bare {
    /// Publishes `batch`, returns once all of it is confirmed, and gives each message's
    /// time from enqueue to confirmation.
    async fn send(&mut self, batch: &[&Payload]) -> Vec<Duration>;
}

/// Cycles through the captured payloads in the recorded batch sizes.
struct Feed<'a> {
    payloads: &'a [Payload],
    batches: &'a [usize],
    next_payload: usize,
    next_batch: usize,
}

impl<'a> Feed<'a> {
    fn next(&mut self) -> Vec<&'a Payload> {
        let len = self.batches[self.next_batch % self.batches.len()];
        self.next_batch += 1;
        (0..len)
            .map(|_| {
                let p = &self.payloads[self.next_payload % self.payloads.len()];
                self.next_payload += 1;
                p
            })
            .collect()
    }
}

/// Warms `bare` up, then publishes for one window.
async fn run_bare(bare: &mut impl Bare, kb: &KubebridgeRun, size: &Size) -> Measured {
    let fallback = [1];
    let mut feed = Feed {
        payloads: &kb.samples,
        batches: if kb.batches.is_empty() {
            &fallback
        } else {
            &kb.batches
        },
        next_payload: 0,
        next_batch: 0,
    };
    // The first batch waits for the connection and the topic.
    tokio::time::timeout(STARTUP_LIMIT, bare.send(&feed.next()))
        .await
        .expect("the bare producer got no confirmation in time");
    let warm = Instant::now();
    while warm.elapsed() < size.warmup {
        bare.send(&feed.next()).await;
    }
    let start = Instant::now();
    let mut latencies = Vec::new();
    let mut batches = Vec::new();
    while start.elapsed() < size.window {
        let batch = feed.next();
        batches.push(batch.len());
        latencies.extend(bare.send(&batch).await);
    }
    Measured::new(start.elapsed(), latencies, &batches)
}

struct BareKafka {
    producer: FutureProducer,
    topic: String,
}

impl BareKafka {
    fn new(b: &Brokers) -> BareKafka {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &b.kafka);
        for (k, v) in KAFKA_SETTINGS {
            config.set(*k, *v);
        }
        BareKafka {
            producer: config.create().expect("a Kafka producer"),
            topic: format!("kbbench_{}_bare", b.run),
        }
    }
}

async fn delivered(enqueued: Instant, report: DeliveryFuture) -> Duration {
    match report.await {
        Ok(Ok(_)) => enqueued.elapsed(),
        Ok(Err((e, _))) => panic!("bare kafka delivery failed: {e}"),
        Err(_) => panic!("bare kafka delivery report dropped"),
    }
}

impl Bare for BareKafka {
    async fn send(&mut self, batch: &[&Payload]) -> Vec<Duration> {
        let mut pending: VecDeque<(Instant, DeliveryFuture)> = VecDeque::new();
        let mut latencies = Vec::with_capacity(batch.len());
        for p in batch {
            let mut record = FutureRecord::<str, [u8]>::to(&self.topic)
                .key(p.key.as_str())
                .payload(&p.body[..]);
            loop {
                let enqueued = Instant::now();
                match self.producer.send_result(record) {
                    Ok(report) => {
                        pending.push_back((enqueued, report));
                        break;
                    }
                    // librdkafka's buffer is full: wait for the oldest, as the sink does.
                    Err((e, back)) if is_queue_full(&e) && !pending.is_empty() => {
                        record = back;
                        let (t, report) = pending.pop_front().unwrap();
                        latencies.push(delivered(t, report).await);
                    }
                    Err((e, _)) => panic!("bare kafka enqueue failed: {e}"),
                }
            }
        }
        for (t, report) in pending {
            latencies.push(delivered(t, report).await);
        }
        latencies
    }
}

fn is_queue_full(e: &KafkaError) -> bool {
    e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull)
}

struct BareNats {
    client: async_nats::Client,
    prefix: String,
}

impl BareNats {
    async fn new(b: &Brokers) -> BareNats {
        BareNats {
            client: connect_nats(b).await,
            prefix: format!("kbbench{}bare", b.run),
        }
    }
}

async fn connect_nats(b: &Brokers) -> async_nats::Client {
    async_nats::connect(format!("nats://{}", b.nats))
        .await
        .expect("connect to nats-server")
}

impl Bare for BareNats {
    async fn send(&mut self, batch: &[&Payload]) -> Vec<Duration> {
        let mut enqueued = Vec::with_capacity(batch.len());
        for p in batch {
            enqueued.push(Instant::now());
            self.client
                .publish(format!("{}.{}", self.prefix, p.subject), p.body.clone())
                .await
                .expect("bare nats publish");
        }
        self.client.flush().await.expect("bare nats flush");
        enqueued.iter().map(Instant::elapsed).collect()
    }
}

struct BareJetStream {
    context: async_nats::jetstream::Context,
    prefix: String,
}

impl BareJetStream {
    /// Publishes into the stream kubebridge's sink created, under `PREFIX.bare.`.
    async fn new(b: &Brokers) -> BareJetStream {
        BareJetStream {
            context: async_nats::jetstream::new(connect_nats(b).await),
            prefix: format!("{}.bare", b.jetstream_prefix()),
        }
    }
}

impl Bare for BareJetStream {
    async fn send(&mut self, batch: &[&Payload]) -> Vec<Duration> {
        let mut pending = VecDeque::new();
        let mut latencies = Vec::with_capacity(batch.len());
        let mut next = batch.iter();
        while latencies.len() < batch.len() {
            // Keep up to MAX_IN_FLIGHT acks outstanding, as the sink does.
            if pending.len() < MAX_IN_FLIGHT
                && let Some(p) = next.next()
            {
                let enqueued = Instant::now();
                let ack = self
                    .context
                    .publish(format!("{}.{}", self.prefix, p.subject), p.body.clone())
                    .await
                    .expect("bare jetstream publish");
                pending.push_back((enqueued, ack));
                continue;
            }
            let (enqueued, ack) = pending.pop_front().unwrap();
            ack.await.expect("bare jetstream ack");
            latencies.push(enqueued.elapsed());
        }
        latencies
    }
}

/// Removes the run's JetStream stream (file storage) from the shared server.
async fn delete_stream(b: &Brokers) {
    let context = async_nats::jetstream::new(connect_nats(b).await);
    if let Err(e) = context.delete_stream(b.stream()).await {
        eprintln!(
            "sinks benchmark: could not delete stream {}: {e}",
            b.stream()
        );
    }
}

fn print_header(size: &Size) {
    println!(
        "kubebridge sinks benchmark ({} run): {:.1} s window after a {:.1} s warm-up, per producer",
        if size.full { "full" } else { "smoke" },
        size.window.as_secs_f64(),
        size.warmup.as_secs_f64()
    );
    println!(
        "  kubebridge: watch pods -A against the in-process simulator ({} pods, asked for {:.0} changes/s), \
         initial state skipped, one sink behind a timing decorator",
        size.pods, size.churn
    );
    println!(
        "  bare: the same client library publishing the envelopes kubebridge published, \
         in the same batch sizes, without kubebridge's headers, simulator stopped"
    );
    println!(
        "  rate = confirmations/s; latency = observed (kubebridge) or enqueued (bare) -> broker confirmation"
    );
    println!("  load average (1 min) at the start: {}", load_average());
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(|| "n/a".into(), |d| format!("{:.3}", d.as_secs_f64() * 1e3))
}

fn table_header() {
    println!(
        "  {:<32} {:>10} {:>10} {:>10} {:>11}",
        "", "rate /s", "p50 ms", "p99 ms", "mean batch"
    );
}

fn row(name: &str, m: &Measured) {
    println!(
        "  {name:<32} {:>10.0} {:>10} {:>10} {:>11.1}",
        m.rate,
        ms(m.p50),
        ms(m.p99),
        m.mean_batch
    );
}

/// The reference run: what the watch path delivers when the sink costs nothing.
fn print_null_report(size: &Size, null: &KubebridgeRun) {
    println!();
    println!("reference: null sink (confirms at once, no broker): the watch path's ceiling here");
    table_header();
    row("kubebridge", &null.measured);
    print_simulator(size, null);
}

fn print_report(kind: Kind, b: &Brokers, size: &Size, kb: &KubebridgeRun, bare: &Measured) {
    let payload = kb.samples.iter().map(|p| p.body.len()).sum::<usize>() as f64
        / kb.samples.len().max(1) as f64;
    println!();
    println!("{}", kind.describe(b));
    table_header();
    row("kubebridge", &kb.measured);
    row(kind.bare_name(), bare);
    println!(
        "  {:<32} {:>9.2}x",
        "kubebridge / bare",
        kb.measured.rate / bare.rate.max(f64::MIN_POSITIVE)
    );
    println!(
        "  payloads: {} real envelopes, mean {:.1} KB",
        kb.samples.len(),
        payload / 1024.0
    );
    print_simulator(size, kb);
}

/// The simulator's side of a kubebridge run, and who limited kubebridge's rate.
fn print_simulator(size: &Size, kb: &KubebridgeRun) {
    println!(
        "  simulator: {:.0} writes/s (asked for {:.0} changes/s); at the window's end kubebridge's last \
         confirmation was {} resourceVersions ({:.2} s) behind it; watch requests: {}",
        kb.sim_writes_per_sec,
        size.churn,
        kb.behind,
        kb.behind_secs(),
        kb.watches
    );
    if kb.not_watch > 0 {
        println!(
            "  note: {} notifications in the window came from a relist, not a watch event",
            kb.not_watch
        );
    }
    println!("  bottleneck: {}", verdict(kb, size));
}

/// The most notifications kubebridge hands a sink in one `publish`
/// (`MAX_BATCH` in `src/pipeline/sink_task.rs`).
const MAX_BATCH: usize = 512;

/// Who limited kubebridge's rate. Behind the simulator with nearly full batches means
/// notifications piled up in the sink's queue (the sink is the limit); behind with
/// smaller batches means the sink's queue did not back up, so what fell behind is the
/// watch path, short of CPU it shares with the sink, the simulator and the broker.
fn verdict(kb: &KubebridgeRun, size: &Size) -> &'static str {
    let full_batches = kb.measured.mean_batch >= 0.9 * MAX_BATCH as f64;
    if kb.behind_secs() > 0.5 && full_batches {
        "the sink: kubebridge fell behind the simulator with its sink queue backed up (near-full batches)"
    } else if kb.behind_secs() > 0.5 {
        "shared CPU: kubebridge fell behind the simulator but its sink queue did not back up \
         (batches under 90% of 512), so the watch path ran short of the cores it shares with the sink, \
         the simulator and the broker; compare the null-sink reference"
    } else if kb.sim_writes_per_sec < 0.9 * size.churn {
        "the simulator: kubebridge kept up, the simulator fell short of its asked rate (it shares the CPU)"
    } else {
        "the churn rate: kubebridge kept up with the simulator; raise BENCH_CHURN"
    }
}

/// The 1-minute load average, to tell a quiet machine from a busy one (Linux only).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "n/a".into())
}
