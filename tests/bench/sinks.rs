//! Benchmark (prints figures; asserts nothing about speed): kubebridge's real sinks
//! (Kafka, core NATS, JetStream) against real brokers, each next to a bare producer
//! written with the same client library publishing the same envelopes in the same batch
//! sizes (the ceiling), each measurement repeated and reported as median and range.
//!
//! The feed is the replay server (tests/sim/src/replay.rs, in process): 1 000 listed
//! pods (initial state skipped), then `MODIFIED` events of real-sized pods.
//!
//! - **throughput**: the watch stream served as fast as the socket takes it; the rate
//!   is confirmed deliveries per second from the 10% mark of the events to the last
//!   (kubebridge), or over a fixed window (bare).
//! - **the sink alone**: kubebridge's real sink, built as for the watch run, fed the
//!   notifications that run captured during its warm-up (recycled; for JetStream each
//!   copy with its own resourceVersion, so the duplicate window drops none) through the `Sink`
//!   trait in the batch sizes the run recorded, over the bare producer's window. It tells
//!   what the sink costs apart from the watch path, which tops out in this process below
//!   what the bare clients confirm.
//! - **latency at 1 000 changes/s**: the stream paced at one event per millisecond;
//!   p50/p99 from the moment the server wrote a change to the sink's confirmation
//!   (kubebridge), or from handing the message to the client to its confirmation (bare,
//!   paced the same); the sink alone is paced as the bare producer is.
//!
//! A null sink (confirms at once) is the reference: the watch path's ceiling here.
//!
//! Needs the brokers: `source tests/brokers.sh && start_brokers`, then
//! `cargo bench --bench sinks` (full size; `BENCH_EVENTS`, `BENCH_RUNS`,
//! `BENCH_LATENCY_SECONDS`, `BENCH_WINDOW_SECONDS` override; `BENCH_SINKS=nats,kafka`
//! measures only those sinks). For a profile of one producer, run it under
//! `perf record -k CLOCK_REALTIME` with `RUST_LOG=sinks=info`: each measurement's window
//! is logged in wall-clock seconds, for `perf report --time START,END`. Without `--bench` (as under `cargo test`) it runs a
//! smoke size; there, with the broker variables unset, `KUBEBRIDGE_SKIP_BROKERS=1` skips it.
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
use kubebridge_sim::{Replay, ReplayConfig, ReplayData};
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

/// Pods the replay server lists before its watch events.
const LISTED: usize = 1000;

/// The paced rate of the latency runs, from issue 12's targets.
const LATENCY_RATE: f64 = 1000.0;

/// How long after its first confirmation a paced run's measurement starts at the
/// earliest. A sink's first delivery waits for one-off work (Kafka: the topic's
/// creation and the idempotent producer's id; JetStream: the stream), which backs the
/// paced feed up behind it; the backlog drains within a few hundred milliseconds, and
/// counting it would make the p99 the start-up time, not the latency at 1 000/s. The
/// start-up time is reported on its own.
const PACED_SETTLE: Duration = Duration::from_secs(1);

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
    let feeds = Feeds::build(&size).await;
    let mut null = Vec::new();
    for _ in 0..size.runs {
        null.push(run_kubebridge(Box::new(NullSink), &feeds.fast, &size, Duration::ZERO).await);
    }
    print_null_report(&null);
    for kind in [Kind::Kafka, Kind::Nats, Kind::JetStream] {
        if !size.sinks.iter().any(|s| s == kind.name()) {
            continue;
        }
        let (mut fast, mut paced) = (Runs::default(), Runs::default());
        for _ in 0..size.runs {
            let run = run_kubebridge(
                sink(kind, &brokers).await,
                &feeds.fast,
                &size,
                Duration::ZERO,
            )
            .await;
            fast.bare
                .push(bare_run(kind, &brokers, &run, &size, None, false).await);
            if kind.has_headers() {
                fast.bare_headers
                    .push(bare_run(kind, &brokers, &run, &size, None, true).await);
            }
            fast.alone
                .push(sink_alone_run(kind, &brokers, &run, &size, None).await);
            fast.kb.push(run);
            let run = run_kubebridge(
                sink(kind, &brokers).await,
                &feeds.paced,
                &size,
                PACED_SETTLE,
            )
            .await;
            let rate = Some(LATENCY_RATE);
            paced
                .bare
                .push(bare_run(kind, &brokers, &run, &size, rate, false).await);
            paced
                .alone
                .push(sink_alone_run(kind, &brokers, &run, &size, rate).await);
            paced.kb.push(run);
        }
        print_report(kind, &brokers, &fast, &paced);
    }
    println!();
    println!(
        "load average (1 min) at the end: {} on {} cores",
        load_average(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    delete_stream(&brokers).await;
}

async fn sink(kind: Kind, brokers: &Brokers) -> Box<dyn Sink> {
    let uri = kind.sink_uri(brokers);
    kubebridge_sinks::sink_from_uri(&uri, &SinkOptions::default())
        .await
        .unwrap_or_else(|e| panic!("sink {uri}: {e}"))
}

async fn bare_run(
    kind: Kind,
    brokers: &Brokers,
    kb: &KubebridgeRun,
    size: &Size,
    paced: Option<f64>,
    headers: bool,
) -> Measured {
    let items = &kb.samples;
    match kind {
        Kind::Kafka => {
            run_bare(
                &mut BareKafka::new(brokers, headers),
                items,
                kb,
                size,
                paced,
            )
            .await
        }
        Kind::Nats => {
            run_bare(
                &mut BareNats::new(brokers, headers).await,
                items,
                kb,
                size,
                paced,
            )
            .await
        }
        Kind::JetStream => {
            run_bare(
                &mut BareJetStream::new(brokers).await,
                items,
                kb,
                size,
                paced,
            )
            .await
        }
    }
}

/// kubebridge's sink alone (a new one, as the watch run builds it), fed the
/// notifications `kb` captured, in its batch sizes.
async fn sink_alone_run(
    kind: Kind,
    brokers: &Brokers,
    kb: &KubebridgeRun,
    size: &Size,
    paced: Option<f64>,
) -> Measured {
    let mut alone = SinkAlone::new(kind, brokers).await;
    let measured = run_bare(&mut alone, &kb.notes, kb, size, paced).await;
    if let Err(e) = alone.sink.close().await {
        eprintln!(
            "sinks benchmark: closing the {} sink alone: {e}",
            kind.sink_uri(brokers)
        );
    }
    measured
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
    /// Events of the unpaced stream.
    events: usize,
    /// Seconds of the paced stream (after one second of warm-up).
    latency_seconds: u64,
    runs: usize,
    /// The bare producers' warm-up and window.
    warmup: Duration,
    window: Duration,
    /// The sinks to measure (`BENCH_SINKS`, comma-separated; all by default).
    sinks: Vec<String>,
}

impl Size {
    fn from_args() -> Size {
        let full = std::env::args().any(|a| a == "--bench");
        Size {
            full,
            events: env_or("BENCH_EVENTS", if full { 200_000 } else { 3_000 }) as usize,
            latency_seconds: env_or("BENCH_LATENCY_SECONDS", if full { 10 } else { 1 }),
            runs: env_or("BENCH_RUNS", if full { 3 } else { 1 }).max(1) as usize,
            warmup: Duration::from_millis(if full { 1000 } else { 300 }),
            window: Duration::from_secs(env_or("BENCH_WINDOW_SECONDS", if full { 5 } else { 1 })),
            sinks: std::env::var("BENCH_SINKS")
                .unwrap_or_else(|_| "kafka,nats,jetstream".into())
                .split(',')
                .map(|s| s.trim().to_owned())
                .collect(),
        }
    }
}

/// The two feeds, built once: as fast as possible, and paced.
struct Feeds {
    fast: Arc<ReplayData>,
    paced: Arc<ReplayData>,
}

impl Feeds {
    async fn build(size: &Size) -> Feeds {
        let fast = ReplayConfig {
            pods: LISTED,
            events: size.events,
            ..ReplayConfig::default()
        };
        let paced = ReplayConfig {
            events: ((size.latency_seconds + 1) as f64 * LATENCY_RATE) as usize,
            events_per_sec: LATENCY_RATE,
            ..fast.clone()
        };
        let build = |c: ReplayConfig| tokio::task::spawn_blocking(move || ReplayData::build(&c));
        Feeds {
            fast: Arc::new(build(fast).await.unwrap()),
            paced: Arc::new(build(paced).await.unwrap()),
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

    /// The name `BENCH_SINKS` selects it by.
    fn name(self) -> &'static str {
        match self {
            Kind::Kafka => "kafka",
            Kind::Nats => "nats",
            Kind::JetStream => "jetstream",
        }
    }

    fn p99_target(self) -> &'static str {
        match self {
            Kind::Kafka => "<= 50 ms",
            Kind::Nats => "<= 5 ms",
            Kind::JetStream => "<= 10 ms",
        }
    }

    /// Whether the sink's messages carry headers the body-only bare client does not
    /// send (JetStream's bare client is measured with its own publish path only).
    fn has_headers(self) -> bool {
        matches!(self, Kind::Kafka | Kind::Nats)
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
    /// The headers the Kafka and NATS sinks put on the message (`type`, `origin`,
    /// `resource`, `kubebridge-id`), built once, for the bare clients that send the
    /// same messages, headers included.
    nats_headers: async_nats::HeaderMap,
    kafka_headers: rdkafka::message::OwnedHeaders,
}

impl Payload {
    fn of(n: &Notification) -> Payload {
        let r = &n.resource;
        let headers = [
            ("type", n.event_type.as_str().to_owned()),
            ("origin", n.origin.as_str().to_owned()),
            (
                "resource",
                format!("{}/{}/{}", r.group, r.version, r.resource),
            ),
            ("kubebridge-id", n.id()),
        ];
        let mut nats_headers = async_nats::HeaderMap::new();
        let mut kafka_headers = rdkafka::message::OwnedHeaders::new();
        for (name, value) in &headers {
            nats_headers.insert(*name, value.as_str());
            kafka_headers = kafka_headers.insert(rdkafka::message::Header {
                key: name,
                value: Some(value.as_str()),
            });
        }
        Payload {
            key: n.key(),
            subject: format!(
                "core.v1.pods.{}.{}",
                n.namespace.as_deref().unwrap_or("_"),
                n.name
            ),
            body: n.to_json().into(),
            nats_headers,
            kafka_headers,
        }
    }
}

/// What the timing decorator saw.
#[derive(Default)]
struct Stats {
    /// Confirmed since the start.
    total: u64,
    /// Confirmations before the measurement starts (warm-up), and the last one counted.
    warm: u64,
    end: u64,
    started: Option<Instant>,
    finished: Option<Instant>,
    /// When the sink was handed to kubebridge, and its first confirmation.
    created: Option<Instant>,
    first: Option<Instant>,
    /// The measurement starts no earlier than this long after the first confirmation.
    settle: Duration,
    /// Change -> confirmed, for each notification confirmed in the window: from the
    /// server's write on a paced feed, else from kubebridge's observation.
    latencies: Vec<Duration>,
    /// The size of each batch the sink was given in the window.
    batches: Vec<usize>,
    /// Confirmed notifications that did not come from a watch event (a relist), which
    /// would mean the run was disturbed.
    not_watch: u64,
    /// Envelopes captured during the warm-up, for the bare producer.
    samples: Vec<Payload>,
    /// The same notifications, for the sink alone.
    notes: Vec<Arc<Notification>>,
    feed: Option<Arc<ReplayData>>,
}

impl Stats {
    fn record(&mut self, batch_len: usize, confirmed: &[Arc<Notification>]) {
        let (at, wall) = (Instant::now(), SystemTime::now());
        let before = self.total;
        self.total += confirmed.len() as u64;
        let first = *self.first.get_or_insert(at);
        if self.started.is_none() {
            let room = SAMPLES.saturating_sub(self.samples.len());
            self.samples
                .extend(confirmed.iter().take(room).map(|n| Payload::of(n)));
            self.notes.extend(confirmed.iter().take(room).cloned());
            if self.total >= self.warm && at >= first + self.settle {
                self.started = Some(at);
            }
            if self.total >= self.end {
                // Nothing was left to measure (a smoke run shorter than its start-up).
                self.started = Some(at);
                self.finished = Some(at);
            }
            return;
        }
        if before >= self.end {
            return;
        }
        self.batches.push(batch_len);
        let feed = self.feed.as_ref().unwrap();
        for n in confirmed {
            let rv = n.resource_version.parse().unwrap_or(0);
            self.latencies.push(match feed.written_at(rv) {
                Some(written) => at.saturating_duration_since(written),
                None => wall.duration_since(n.time).unwrap_or_default(),
            });
            if n.origin != Origin::Watch {
                self.not_watch += 1;
            }
        }
        if self.total >= self.end {
            self.finished = Some(at);
        }
    }
}

/// Forwards to the real sink and records what it confirmed.
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
        let confirmed = match &result {
            Ok(()) => batch.len(),
            Err(e) => e.delivered,
        };
        self.stats
            .lock()
            .unwrap()
            .record(batch.len(), &batch[..confirmed]);
        result
    }

    async fn close(&mut self) -> Result<(), SinkError> {
        self.inner.close().await
    }
}

/// Confirms every batch at once: kubebridge with no broker, the ceiling of the watch
/// path on this machine.
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

/// One sink's measurements on one feed, over the repeated runs.
#[derive(Default)]
struct Runs {
    /// kubebridge end to end (watch -> sink -> confirmation).
    kb: Vec<KubebridgeRun>,
    /// The bare client library.
    bare: Vec<Measured>,
    /// The bare client library sending the sink's headers too (Kafka, NATS core).
    bare_headers: Vec<Measured>,
    /// kubebridge's sink alone.
    alone: Vec<Measured>,
}

/// kubebridge's side of one sink's run.
struct KubebridgeRun {
    measured: Measured,
    /// From handing the sink to kubebridge to its first confirmation.
    startup: Duration,
    not_watch: u64,
    batches: Vec<usize>,
    samples: Vec<Payload>,
    notes: Vec<Arc<Notification>>,
}

fn stream_config() -> StreamConfig {
    let mut pods = Route::new("pods", ["pods"]);
    pods.namespaces = NamespaceScope::All;
    let mut stream = StreamConfig::new(vec![pods]);
    stream.initial_state = InitialState::Skip;
    stream
}

/// Runs `watch pods -A` into `sink` against a replay server of `feed` until it has
/// confirmed every event, and measures from the 10% mark to the last.
async fn run_kubebridge(
    sink: Box<dyn Sink>,
    feed: &Arc<ReplayData>,
    size: &Size,
    settle: Duration,
) -> KubebridgeRun {
    let kind = sink.kind();
    let replay = Replay::serve(SocketAddr::from(([127, 0, 0, 1], 0)), feed.clone())
        .await
        .expect("start the replay server");
    let cluster = cluster::from_config(
        kube::Config::new(
            format!("http://{}", replay.addr())
                .parse()
                .expect("replay URL"),
        ),
        Some("kbbench".into()),
    )
    .expect("a client for the replay server");
    let events = feed.events() as u64;
    let stats = Arc::new(Mutex::new(Stats {
        warm: events / 10,
        end: events,
        feed: Some(feed.clone()),
        created: Some(Instant::now()),
        settle,
        ..Stats::default()
    }));
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
        let limit = STARTUP_LIMIT + Duration::from_secs(600);
        let deadline = Instant::now() + limit;
        while stats.lock().unwrap().finished.is_none() {
            assert!(
                Instant::now() < deadline,
                "kubebridge did not confirm {events} events within {limit:?} (size {})",
                size.events
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = stop.send(());
        let taken = std::mem::take(&mut *stats.lock().unwrap());
        let elapsed = taken.finished.unwrap() - taken.started.unwrap();
        KubebridgeRun {
            measured: Measured::new(elapsed, taken.latencies, &taken.batches),
            startup: taken.first.unwrap() - taken.created.unwrap(),
            not_watch: taken.not_watch,
            batches: taken.batches,
            samples: taken.samples,
            notes: taken.notes,
        }
    };
    let (result, run) = tokio::join!(watching, measuring);
    result.unwrap_or_else(|e| panic!("kubebridge watch into the {kind} sink failed: {e}"));
    run
}

/// A producer measured over a window: a bare client library, or kubebridge's sink alone.
trait Bare {
    /// What it publishes: a pre-built [`Payload`] (bare) or a notification (the sink).
    type Item;

    /// Publishes `batch`, returns once all of it is confirmed, and gives each message's
    /// time from enqueue to confirmation.
    async fn send(&mut self, batch: &[&Self::Item]) -> Vec<Duration>;

    /// Time `send` spent on the benchmark's own preparation rather than publishing,
    /// since the start: left out of the measured window.
    fn overhead(&self) -> Duration {
        Duration::ZERO
    }

    /// Which producer this is, for the log.
    fn name(&self) -> &'static str;
}

/// Now, in seconds since the Unix epoch: the clock `perf record -k CLOCK_REALTIME` uses.
fn epoch_seconds() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// Cycles through the captured items in the recorded batch sizes.
struct Feed<'a, T> {
    items: &'a [T],
    batches: &'a [usize],
    next_item: usize,
    next_batch: usize,
}

impl<'a, T> Feed<'a, T> {
    fn next(&mut self) -> Vec<&'a T> {
        let len = self.batches[self.next_batch % self.batches.len()];
        self.next_batch += 1;
        (0..len)
            .map(|_| {
                let p = &self.items[self.next_item % self.items.len()];
                self.next_item += 1;
                p
            })
            .collect()
    }
}

/// Warms `bare` up, then publishes `items` for one window in the batch sizes kubebridge's
/// run recorded: as fast as it confirms, or paced at `paced` messages per second (each
/// batch sent when its first message is due).
async fn run_bare<B: Bare>(
    bare: &mut B,
    items: &[B::Item],
    kb: &KubebridgeRun,
    size: &Size,
    paced: Option<f64>,
) -> Measured {
    let fallback = [1];
    let mut feed = Feed {
        items,
        batches: if kb.batches.is_empty() {
            &fallback
        } else {
            &kb.batches
        },
        next_item: 0,
        next_batch: 0,
    };
    // The first batch waits for the connection and the topic.
    tokio::time::timeout(STARTUP_LIMIT, bare.send(&feed.next()))
        .await
        .expect("the producer got no confirmation in time");
    let warm = Instant::now();
    while warm.elapsed() < size.warmup {
        bare.send(&feed.next()).await;
    }
    let window = match paced {
        Some(_) => Duration::from_secs(size.latency_seconds),
        None => size.window,
    };
    let start = Instant::now();
    let window_start = epoch_seconds();
    let overhead_before = bare.overhead();
    let mut sent = 0u64;
    let mut latencies = Vec::new();
    let mut batches = Vec::new();
    while start.elapsed() < window {
        if let Some(rate) = paced {
            let due = start + Duration::from_secs_f64(sent as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
        let batch = feed.next();
        sent += batch.len() as u64;
        batches.push(batch.len());
        latencies.extend(bare.send(&batch).await);
    }
    tracing::info!(
        producer = bare.name(),
        paced = paced.is_some(),
        "window {window_start:.6},{:.6}",
        epoch_seconds()
    );
    let elapsed = start
        .elapsed()
        .saturating_sub(bare.overhead() - overhead_before);
    Measured::new(elapsed, latencies, &batches)
}

/// kubebridge's real sink, fed through the `Sink` trait alone (no watch, no queue).
struct SinkAlone {
    sink: Box<dyn Sink>,
    /// Whether each message must carry a new id (JetStream, whose duplicate window would
    /// otherwise acknowledge a recycled notification without storing it).
    fresh_ids: bool,
    /// Copies published so far: each copy's resourceVersion gets this as a suffix, so
    /// its id (`uid:resourceVersion:type`, JetStream's `Nats-Msg-Id`) is new and the
    /// stream stores it as it stores the bare producer's messages.
    copies: u64,
    /// Time spent making those copies (not the sink's work).
    copying: Duration,
}

impl SinkAlone {
    async fn new(kind: Kind, brokers: &Brokers) -> SinkAlone {
        SinkAlone {
            sink: sink(kind, brokers).await,
            fresh_ids: matches!(kind, Kind::JetStream),
            copies: 0,
            copying: Duration::ZERO,
        }
    }
}

impl Bare for SinkAlone {
    type Item = Arc<Notification>;

    async fn send(&mut self, batch: &[&Arc<Notification>]) -> Vec<Duration> {
        let copying = Instant::now();
        let batch: Vec<Arc<Notification>> = batch
            .iter()
            .map(|n| {
                if !self.fresh_ids {
                    return Arc::clone(n);
                }
                self.copies += 1;
                let mut copy = Notification::clone(n);
                copy.resource_version = format!("{}{}", n.resource_version, self.copies);
                Arc::new(copy)
            })
            .collect();
        self.copying += copying.elapsed();
        let enqueued = Instant::now();
        let mut start = 0;
        // A retryable failure (a broker hiccup) is retried from the confirmed prefix,
        // as kubebridge's sink task does; the benchmark asserts nothing about it.
        while start < batch.len() {
            match self.sink.publish(&batch[start..]).await {
                Ok(()) => start = batch.len(),
                Err(e) if e.error.is_retryable() => {
                    eprintln!(
                        "sinks benchmark: {} sink alone: {e}; retrying",
                        self.sink.kind()
                    );
                    start += e.delivered;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("{} sink alone: {e}", self.sink.kind()),
            }
        }
        let confirmed = enqueued.elapsed();
        vec![confirmed; batch.len()]
    }

    fn overhead(&self) -> Duration {
        self.copying
    }

    fn name(&self) -> &'static str {
        "sink alone"
    }
}

struct BareKafka {
    producer: FutureProducer,
    topic: String,
    /// Whether each record carries the sink's headers.
    headers: bool,
}

impl BareKafka {
    fn new(b: &Brokers, headers: bool) -> BareKafka {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &b.kafka);
        for (k, v) in KAFKA_SETTINGS {
            config.set(*k, *v);
        }
        BareKafka {
            producer: config.create().expect("a Kafka producer"),
            topic: format!("kbbench_{}_bare", b.run),
            headers,
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
    type Item = Payload;

    fn name(&self) -> &'static str {
        "bare"
    }

    async fn send(&mut self, batch: &[&Payload]) -> Vec<Duration> {
        let mut pending: VecDeque<(Instant, DeliveryFuture)> = VecDeque::new();
        let mut latencies = Vec::with_capacity(batch.len());
        for p in batch {
            let mut record = FutureRecord::<str, [u8]>::to(&self.topic)
                .key(p.key.as_str())
                .payload(&p.body[..]);
            if self.headers {
                record = record.headers(p.kafka_headers.clone());
            }
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
    /// Whether each message carries the sink's headers.
    headers: bool,
}

impl BareNats {
    async fn new(b: &Brokers, headers: bool) -> BareNats {
        BareNats {
            client: connect_nats(b).await,
            prefix: format!("kbbench{}bare", b.run),
            headers,
        }
    }
}

async fn connect_nats(b: &Brokers) -> async_nats::Client {
    async_nats::connect(format!("nats://{}", b.nats))
        .await
        .expect("connect to nats-server")
}

impl Bare for BareNats {
    type Item = Payload;

    fn name(&self) -> &'static str {
        "bare"
    }

    async fn send(&mut self, batch: &[&Payload]) -> Vec<Duration> {
        let mut enqueued = Vec::with_capacity(batch.len());
        for p in batch {
            enqueued.push(Instant::now());
            let subject = format!("{}.{}", self.prefix, p.subject);
            if self.headers {
                self.client
                    .publish_with_headers(subject, p.nats_headers.clone(), p.body.clone())
                    .await
            } else {
                self.client.publish(subject, p.body.clone()).await
            }
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
    type Item = Payload;

    fn name(&self) -> &'static str {
        "bare"
    }

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
        "kubebridge sinks benchmark ({} run, {} runs each; median [min-max])",
        if size.full { "full" } else { "smoke" },
        size.runs
    );
    println!(
        "  feed: the replay server in process ({LISTED} pods listed, initial state skipped), {} MODIFIED events \
         as fast as the socket takes them; then {LATENCY_RATE:.0} events/s for {} s after 1 s of warm-up",
        size.events, size.latency_seconds
    );
    println!(
        "  kubebridge: watch pods -A, one sink behind a timing decorator; rate = confirmations/s from the 10% mark to the last"
    );
    println!(
        "  bare: the same client library publishing the envelopes kubebridge published, in the same batch sizes, \
         without kubebridge's headers, for {:.0} s after {:.1} s of warm-up",
        size.window.as_secs_f64(),
        size.warmup.as_secs_f64()
    );
    println!(
        "  sink alone: kubebridge's sink fed the captured notifications (JetStream: a new resourceVersion per copy) \
         through the Sink trait in the run's batch sizes, same window as bare"
    );
    println!(
        "  latency: server wrote the change (end to end) or batch handed to the sink / message to the client \
         (sink alone, bare) -> broker confirmation"
    );
    println!("  load average (1 min) at the start: {}", load_average());
}

/// Median and range of some figure over repeated runs.
fn spread(values: impl IntoIterator<Item = f64>, scale: f64, decimals: usize) -> (f64, String) {
    let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return (f64::NAN, "n/a".into());
    }
    let median = if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    let text = format!(
        "{:.decimals$} [{:.decimals$}-{:.decimals$}]",
        median / scale,
        v[0] / scale,
        v[v.len() - 1] / scale
    );
    (median, text)
}

fn ms(d: Option<Duration>) -> f64 {
    d.map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
}

fn table_header() {
    println!(
        "  {:<30} {:>26} {:>22} {:>22} {:>11}",
        "", "rate /s", "p50 ms", "p99 ms", "mean batch"
    );
}

fn row<'a>(name: &str, runs: impl Iterator<Item = &'a Measured> + Clone) -> f64 {
    let (rate, rate_text) = spread(runs.clone().map(|m| m.rate), 1.0, 0);
    let (_, p50) = spread(runs.clone().map(|m| ms(m.p50)), 1.0, 2);
    let (_, p99) = spread(runs.clone().map(|m| ms(m.p99)), 1.0, 2);
    let (_, batch) = spread(runs.map(|m| m.mean_batch), 1.0, 1);
    println!("  {name:<30} {rate_text:>26} {p50:>22} {p99:>22} {batch:>11}");
    rate
}

/// The reference run: what the watch path delivers when the sink costs nothing.
fn print_null_report(null: &[KubebridgeRun]) {
    println!();
    println!("reference: null sink (confirms at once, no broker): the watch path's ceiling here");
    table_header();
    row("kubebridge", null.iter().map(|r| &r.measured));
}

fn print_report(kind: Kind, b: &Brokers, fast: &Runs, paced: &Runs) {
    let samples = &fast.kb[0].samples;
    let payload =
        samples.iter().map(|p| p.body.len()).sum::<usize>() as f64 / samples.len().max(1) as f64;
    println!();
    println!("{}", kind.describe(b));
    println!("  throughput (feed as fast as the socket takes it):");
    table_header();
    let k = row("kubebridge end to end", fast.kb.iter().map(|r| &r.measured));
    let a = row("kubebridge sink alone", fast.alone.iter());
    let r = row(kind.bare_name(), fast.bare.iter());
    let ratio = |x: f64| x / r.max(f64::MIN_POSITIVE);
    println!(
        "  {:<30} {:>25.2}x   (target >= 0.8x)",
        "end to end / bare",
        ratio(k)
    );
    println!(
        "  {:<30} {:>25.2}x   (target >= 0.8x)",
        "sink alone / bare",
        ratio(a)
    );
    if !fast.bare_headers.is_empty() {
        // The same messages as the sink sends: body and headers.
        let h = row("bare, same headers as the sink", fast.bare_headers.iter());
        println!(
            "  {:<30} {:>25.2}x   (target >= 0.8x)",
            "sink alone / bare + headers",
            a / h.max(f64::MIN_POSITIVE)
        );
    }
    println!(
        "  latency at {LATENCY_RATE:.0} changes/s (target p99: {}; measured from {:.0} s after the first confirmation):",
        kind.p99_target(),
        PACED_SETTLE.as_secs_f64()
    );
    table_header();
    row(
        "kubebridge end to end",
        paced.kb.iter().map(|r| &r.measured),
    );
    row("kubebridge sink alone", paced.alone.iter());
    row(kind.bare_name(), paced.bare.iter());
    let (_, startup) = spread(
        fast.kb
            .iter()
            .chain(&paced.kb)
            .map(|r| r.startup.as_secs_f64() * 1e3),
        1.0,
        0,
    );
    println!(
        "  start-up: kubebridge's first confirmation {startup} ms after the sink was handed over"
    );
    println!(
        "  payloads: {} real envelopes, mean {:.1} KB",
        samples.len(),
        payload / 1024.0
    );
    let relisted: u64 = fast.kb.iter().chain(&paced.kb).map(|r| r.not_watch).sum();
    if relisted > 0 {
        println!("  note: {relisted} notifications came from a relist, not a watch event");
    }
}

/// The 1-minute load average, to tell a quiet machine from a busy one (Linux only).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "n/a".into())
}
