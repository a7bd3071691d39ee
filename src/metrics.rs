//! Every metric kubebridge exports, named once, here. Each function is one thing that
//! happens; call sites say what happened and this module decides how it is counted.
//! Label values come from small fixed sets (sink kinds, informer names from the
//! configuration, event types), never from object names.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, SystemTime};

use kubebridge_sinks::Notification;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::queue::QueueGauge;

/// The registry and every metric in it.
struct Metrics {
    registry: Registry,
    queue_depth: IntGaugeVec,
    queue_capacity: IntGaugeVec,
    notifications: IntCounterVec,
    sink_sent: IntCounterVec,
    sink_errors: IntCounterVec,
    sink_dropped: IntCounterVec,
    sink_send_duration: HistogramVec,
    sink_oldest_age: prometheus::GaugeVec,
    watch_restarts: IntCounterVec,
    relists: IntCounterVec,
    cache_objects: IntGaugeVec,
    cache_bytes: IntGaugeVec,
    informer_synced: IntGaugeVec,
    resyncs: IntCounterVec,
    last_event: prometheus::GaugeVec,
    sinks: Mutex<Vec<SinkState>>,
}

/// What the scrape reads about one sink.
struct SinkState {
    name: String,
    queue: QueueGauge<Arc<Notification>>,
    health: Arc<SinkHealth>,
}

/// A sink's delivery state, shared between its task and the endpoints.
#[derive(Debug, Default)]
pub struct SinkHealth {
    failing: AtomicBool,
    /// Unix milliseconds of the oldest notification in the batch being published; 0 when
    /// none is in flight.
    in_flight_since_ms: AtomicU64,
}

impl SinkHealth {
    /// Whether the last publish attempt failed (a broker down, a timeout).
    pub fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }
}

fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Metrics {
    fn new() -> Metrics {
        let registry = Registry::new();
        fn reg<C: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: C) -> C {
            r.register(Box::new(c.clone()))
                .expect("each metric is registered once");
            c
        }
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            reg(
                &registry,
                IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric"),
            )
        };
        let counter = |name: &str, help: &str, labels: &[&str]| {
            reg(
                &registry,
                IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
            )
        };
        let fgauge = |name: &str, help: &str, labels: &[&str]| {
            reg(
                &registry,
                prometheus::GaugeVec::new(Opts::new(name, help), labels).expect("valid metric"),
            )
        };
        let m = Metrics {
            queue_depth: gauge(
                "kubebridge_queue_depth",
                "Notifications waiting in a sink's queue.",
                &["sink"],
            ),
            queue_capacity: gauge(
                "kubebridge_queue_capacity",
                "Capacity of a sink's queue.",
                &["sink"],
            ),
            notifications: counter(
                "kubebridge_notifications_total",
                "Notifications produced by the informers, by resource, type and origin.",
                &["resource", "type", "origin"],
            ),
            sink_sent: counter(
                "kubebridge_sink_sent_total",
                "Notifications a sink's destination confirmed.",
                &["sink"],
            ),
            sink_errors: counter(
                "kubebridge_sink_errors_total",
                "Failed publish attempts, by kind (retryable, permanent).",
                &["sink", "kind"],
            ),
            sink_dropped: counter(
                "kubebridge_sink_dropped_total",
                "Notifications dropped, by reason (permanent: refused for good; overflow: evicted by drop-oldest).",
                &["sink", "reason"],
            ),
            sink_send_duration: reg(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "kubebridge_sink_send_duration_seconds",
                        "Time from a notification's observation to its confirmation.",
                    )
                    .buckets(vec![
                        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                        10.0, 30.0, 60.0,
                    ]),
                    &["sink"],
                )
                .expect("valid metric"),
            ),
            sink_oldest_age: fgauge(
                "kubebridge_sink_oldest_unconfirmed_age_seconds",
                "Age of the oldest notification a sink has not had confirmed (0 when caught up).",
                &["sink"],
            ),
            watch_restarts: counter(
                "kubebridge_watch_restarts_total",
                "Watches that ended and were resumed, by reason (closed, error).",
                &["resource", "reason"],
            ),
            relists: counter(
                "kubebridge_relists_total",
                "Lists taken again from the start, by reason (expired: 410 Gone on a watch's resourceVersion or a continue token; restarted: a list cut short by an error or a closed stream).",
                &["resource", "reason"],
            ),
            cache_objects: gauge(
                "kubebridge_cache_objects",
                "Objects in an informer's cache.",
                &["resource"],
            ),
            cache_bytes: gauge(
                "kubebridge_cache_bytes",
                "JSON bytes of the objects in an informer's cache.",
                &["resource"],
            ),
            informer_synced: gauge(
                "kubebridge_informer_synced",
                "1 once an informer's initial list has been handed to its sinks.",
                &["resource"],
            ),
            resyncs: counter(
                "kubebridge_resyncs_total",
                "Resync replays of an informer's cache.",
                &["resource"],
            ),
            last_event: fgauge(
                "kubebridge_last_event_timestamp_seconds",
                "Unix time of an informer's last watch event or bookmark: the time since tells how live it is.",
                &["resource"],
            ),
            sinks: Mutex::new(Vec::new()),
            registry,
        };
        let build = IntGauge::with_opts(
            Opts::new("kubebridge_build_info", "Always 1; the version is a label.")
                .const_label("version", env!("CARGO_PKG_VERSION")),
        )
        .expect("valid metric");
        build.set(1);
        m.registry
            .register(Box::new(build))
            .expect("registered once");
        #[cfg(target_os = "linux")]
        m.registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("registered once");
        m
    }
}

/// A sink started; its queue and health are read at every scrape.
pub fn sink_started(name: &str, queue: QueueGauge<Arc<Notification>>) -> Arc<SinkHealth> {
    let m = metrics();
    m.queue_capacity
        .with_label_values(&[name])
        .set(queue.capacity() as i64);
    let health = Arc::new(SinkHealth::default());
    m.sinks
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(SinkState {
            name: name.to_owned(),
            queue,
            health: health.clone(),
        });
    health
}

/// An informer produced a notification.
pub fn notification(informer: &str, n: &Notification) {
    metrics()
        .notifications
        .with_label_values(&[informer, n.event_type.as_str(), n.origin.as_str()])
        .inc();
}

/// A sink is about to publish a batch whose oldest notification was observed at `oldest`.
pub fn publish_started(health: &SinkHealth, oldest: SystemTime) {
    health
        .in_flight_since_ms
        .store(unix_ms(oldest).max(1), Ordering::Relaxed);
}

/// A sink's destination confirmed these notifications.
pub fn delivered(sink: &str, health: &SinkHealth, confirmed: &[Arc<Notification>]) {
    let m = metrics();
    m.sink_sent
        .with_label_values(&[sink])
        .inc_by(confirmed.len() as u64);
    let histogram: Histogram = m.sink_send_duration.with_label_values(&[sink]);
    let now = SystemTime::now();
    for n in confirmed {
        histogram.observe(now.duration_since(n.time).unwrap_or_default().as_secs_f64());
    }
    health.failing.store(false, Ordering::Relaxed);
    health.in_flight_since_ms.store(0, Ordering::Relaxed);
}

/// A publish attempt failed.
pub fn publish_failed(sink: &str, health: &SinkHealth, retryable: bool) {
    metrics()
        .sink_errors
        .with_label_values(&[sink, if retryable { "retryable" } else { "permanent" }])
        .inc();
    health.failing.store(retryable, Ordering::Relaxed);
}

/// A notification was dropped: `permanent` (refused for good) or `overflow` (evicted).
pub fn dropped(sink: &str, reason: &'static str, count: u64) {
    metrics()
        .sink_dropped
        .with_label_values(&[sink, reason])
        .inc_by(count);
}

/// A watch ended and will be resumed (`closed` by the server, or after an `error`).
pub fn watch_restarted(informer: &str, reason: &'static str) {
    metrics()
        .watch_restarts
        .with_label_values(&[informer, reason])
        .inc();
}

/// A list taken again from the start (`expired`: 410 Gone on the watch's resourceVersion or
/// on a LIST page's continue token; `restarted`: a LIST or watch-list cut short by an error
/// or a closed stream).
pub fn relisted(informer: &str, reason: &'static str) {
    metrics()
        .relists
        .with_label_values(&[informer, reason])
        .inc();
}

/// An informer's cache changed size.
pub fn cache_size(informer: &str, objects: usize, bytes: usize) {
    let m = metrics();
    m.cache_objects
        .with_label_values(&[informer])
        .set(objects as i64);
    m.cache_bytes
        .with_label_values(&[informer])
        .set(bytes as i64);
}

/// An informer handed its initial list on (or stopped).
pub fn informer_synced(informer: &str, synced: bool) {
    metrics()
        .informer_synced
        .with_label_values(&[informer])
        .set(i64::from(synced));
}

/// An informer replayed its cache.
pub fn resynced(informer: &str) {
    metrics().resyncs.with_label_values(&[informer]).inc();
}

/// An informer heard from its watch (an event or a bookmark).
pub fn watch_heard(informer: &str) {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    metrics()
        .last_event
        .with_label_values(&[informer])
        .set(now.as_secs_f64());
}

/// Whether every sink's last attempt succeeded (or none was made yet).
pub fn sinks_healthy() -> bool {
    metrics()
        .sinks
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .all(|s| !s.health.is_failing())
}

/// The Prometheus text exposition of every metric, with queue depths and lag read now.
pub fn render() -> String {
    let m = metrics();
    let now_ms = unix_ms(SystemTime::now());
    for s in m.sinks.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        m.queue_depth
            .with_label_values(&[s.name.as_str()])
            .set(s.queue.len() as i64);
        m.sink_dropped
            .with_label_values(&[s.name.as_str(), "overflow"])
            .reset();
        m.sink_dropped
            .with_label_values(&[s.name.as_str(), "overflow"])
            .inc_by(s.queue.evicted());
        let in_flight = s.health.in_flight_since_ms.load(Ordering::Relaxed);
        let oldest = if in_flight > 0 {
            Some(in_flight)
        } else {
            s.queue.front(|n| unix_ms(n.time))
        };
        let age = oldest.map_or(Duration::ZERO, |t| {
            Duration::from_millis(now_ms.saturating_sub(t))
        });
        m.sink_oldest_age
            .with_label_values(&[s.name.as_str()])
            .set(age.as_secs_f64());
    }
    let mut out = Vec::new();
    // Encoding families that were gathered from our own registry cannot fail.
    let _ = TextEncoder::new().encode(&m.registry.gather(), &mut out);
    String::from_utf8(out).unwrap_or_default()
}
