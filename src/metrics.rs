//! Every metric kubebridge exports, named once, here. One `watch` run owns one [`Metrics`]
//! (its own registry) and hands clones of it to the informers, sink tasks and endpoints;
//! a second run in the same process starts from nothing.
//!
//! Each method is one thing that happens; call sites say what happened and this module
//! decides how it is counted. Label values come from small fixed sets (sink kinds,
//! informer names from the configuration, event types), never from object names.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use kubebridge_sinks::Notification;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    CounterVec, Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::confirm::Queued;
use crate::queue::QueueGauge;

/// One run's metrics: a cheap handle to its registry and every metric in it.
#[derive(Clone)]
pub(crate) struct Metrics(Arc<Families>);

struct Families {
    registry: Registry,
    notifications: IntCounterVec,
    sink_sent: IntCounterVec,
    sink_errors: IntCounterVec,
    sink_resent: IntCounterVec,
    sink_send_duration: HistogramVec,
    watch_restarts: IntCounterVec,
    relists: IntCounterVec,
    relist_backoff: CounterVec,
    watch_decode_errors: IntCounterVec,
    redacted_values: IntCounterVec,
    list_errors: IntCounterVec,
    cache_objects: IntGaugeVec,
    cache_bytes: IntGaugeVec,
    cache_held_bytes: IntGaugeVec,
    cache_unreadable: IntCounterVec,
    informer_synced: IntGaugeVec,
    resyncs: IntCounterVec,
    last_event: GaugeVec,
    lease_held: IntGauge,
    lease_attempt_failures: IntCounterVec,
    checkpoint: CheckpointFamilies,
    route_held: IntCounterVec,
    route_filter_errors: IntCounterVec,
    /// The metrics port's own connections (see [`crate::endpoints`]).
    endpoint: EndpointFamilies,
    /// The sinks of this run, read by [`SinkCollector`] at every scrape.
    sinks: Arc<Mutex<Vec<SinkView>>>,
}

/// A sink's delivery state, written by its task and read by scrapes, `/readyz` and the
/// supervisor.
#[derive(Debug, Default)]
struct SinkState {
    /// How the last publish attempt ended: [`LAST_OK`], [`LAST_RETRYING`] or [`LAST_REFUSED`].
    last: AtomicU8,
    /// Unix milliseconds of the oldest notification in the batch being published; 0 when
    /// none is in flight.
    in_flight_since_ms: AtomicU64,
    /// Notifications taken from the queue and not yet confirmed or dropped.
    in_flight: AtomicU64,
    /// Unix milliseconds of the last confirmation (at first: when the sink started).
    confirmed_at_ms: AtomicU64,
    /// Notifications dropped because the sink refused them for good.
    refused: AtomicU64,
}

const LAST_OK: u8 = 0;
const LAST_RETRYING: u8 = 1;
const LAST_REFUSED: u8 = 2;

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn register<C: Collector + Clone + 'static>(registry: &Registry, collector: C) -> C {
    registry
        .register(Box::new(collector.clone()))
        .expect("each metric is registered once");
    collector
}

fn int_gauges(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let gauges = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    register(registry, gauges)
}

fn counters(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let counters = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    register(registry, counters)
}

fn seconds_counters(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> CounterVec {
    let counters = CounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    register(registry, counters)
}

fn gauges(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    let gauges = GaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    register(registry, gauges)
}

impl Metrics {
    /// A fresh registry with every metric at zero and no sinks.
    pub(crate) fn new() -> Metrics {
        let registry = Registry::new();
        let r = &registry;
        let sink_send_duration = HistogramVec::new(
            HistogramOpts::new(
                "kubebridge_sink_send_duration_seconds",
                "Time from a notification's observation to its confirmation.",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                60.0,
            ]),
            &["sink"],
        )
        .expect("valid metric");
        let sinks = Arc::new(Mutex::new(Vec::new()));
        register(r, SinkCollector::new(sinks.clone()));
        let families = Families {
            notifications: counters(
                r,
                "kubebridge_notifications_total",
                "Notifications produced by the informers, by resource, type and origin.",
                &["resource", "type", "origin"],
            ),
            sink_sent: counters(
                r,
                "kubebridge_sink_sent_total",
                "Notifications a sink's destination confirmed.",
                &["sink"],
            ),
            sink_errors: counters(
                r,
                "kubebridge_sink_errors_total",
                "Failed publish attempts, by kind (retryable, permanent).",
                &["sink", "kind"],
            ),
            sink_resent: counters(
                r,
                "kubebridge_sink_resent_total",
                "Notifications sent again because the destination's client was replaced before confirming them (a Kafka producer the broker forgot): each may arrive twice.",
                &["sink"],
            ),
            sink_send_duration: register(r, sink_send_duration),
            watch_restarts: counters(
                r,
                "kubebridge_watch_restarts_total",
                "Watches that ended and were resumed, by reason (closed: by the server; error: a failed request or an ERROR event; idle: nothing heard, not even a bookmark, for the watch idle timeout).",
                &["resource", "reason"],
            ),
            relists: counters(
                r,
                "kubebridge_relists_total",
                "Lists taken again from the start, by reason (expired: 410 Gone on a watch's resourceVersion or a continue token; restarted: a list cut short by an error or a closed stream; malformed: a watch line that did not decode or was over the object cap; watch_list_ignored: the server answered a watch-list as a plain watch, so LIST is used from then on).",
                &["resource", "reason"],
            ),
            relist_backoff: seconds_counters(
                r,
                "kubebridge_relist_backoff_seconds_total",
                "Seconds waited before relists (800 ms doubling to 30 s while relists follow each other, counted as each wait begins): its rate is the share of time an informer spends backing off.",
                &["resource"],
            ),
            watch_decode_errors: counters(
                r,
                "kubebridge_watch_decode_errors_total",
                "Watch lines that were not a usable event (not JSON, an object without metadata, or over the object cap); each is logged and reconciled by a relist.",
                &["resource"],
            ),
            redacted_values: counters(
                r,
                "kubebridge_redacted_values_total",
                "Values replaced by their keyed hash as objects were decoded (Secret data, stringData and last-applied annotation; the paths of redact rules), by informer.",
                &["resource"],
            ),
            list_errors: counters(
                r,
                "kubebridge_list_errors_total",
                "Failed LIST page requests, retried with backoff, by reason (too_large: over the page cap; error: any other).",
                &["resource", "reason"],
            ),
            cache_objects: int_gauges(
                r,
                "kubebridge_cache_objects",
                "Objects in an informer's cache.",
                &["resource"],
            ),
            cache_held_bytes: int_gauges(
                r,
                "kubebridge_cache_held_bytes",
                "Bytes an informer's cache holds for its objects' JSON: the JSON itself, or with --cache-compression zstd the compressed objects plus the dictionary.",
                &["resource"],
            ),
            cache_unreadable: counters(
                r,
                "kubebridge_cache_unreadable_total",
                "Compressed cache entries that could not be decompressed (each logged; the old state is treated as unknown: a MODIFIED without oldObject but with oldResourceVersion, a DELETED tombstone, left out of a resync, a 500 from /cache).",
                &["resource"],
            ),
            cache_bytes: int_gauges(
                r,
                "kubebridge_cache_bytes",
                "JSON bytes of the objects in an informer's cache.",
                &["resource"],
            ),
            informer_synced: int_gauges(
                r,
                "kubebridge_informer_synced",
                "1 once an informer's initial list has been handed to its sinks.",
                &["resource"],
            ),
            resyncs: counters(
                r,
                "kubebridge_resyncs_total",
                "Resync replays of an informer's cache.",
                &["resource"],
            ),
            last_event: gauges(
                r,
                "kubebridge_last_event_timestamp_seconds",
                "Unix time of an informer's last watch event or bookmark: the time since tells how live it is.",
                &["resource"],
            ),
            lease_held: register(
                r,
                IntGauge::with_opts(Opts::new(
                    "kubebridge_lease_held",
                    "1 while this instance holds the leader lease (--leader-elect) and may publish.",
                ))
                .expect("valid metric"),
            ),
            lease_attempt_failures: counters(
                r,
                "kubebridge_lease_attempt_failures_total",
                "Failed attempts to acquire or renew the leader lease, by reason (timeout: no answer within the retry period; error: the API server failed or refused; conflict: another instance wrote first).",
                &["reason"],
            ),
            checkpoint: CheckpointFamilies::new(r),
            route_held: counters(
                r,
                "kubebridge_route_held_total",
                "Notifications a route did not queue for its sinks, by reason (type: not among its types; unchanged: a MODIFIED that changed only ignored or unprojected fields; filter: its CEL filter was false).",
                &["route", "reason"],
            ),
            route_filter_errors: counters(
                r,
                "kubebridge_route_filter_errors_total",
                "Evaluations of a route's CEL filter that failed; each such notification was published (logged at most once a minute per route).",
                &["route"],
            ),
            endpoint: EndpointFamilies::new(r),
            sinks,
            registry,
        };
        let build = IntGauge::with_opts(
            Opts::new("kubebridge_build_info", "Always 1; the version is a label.")
                .const_label("version", env!("CARGO_PKG_VERSION")),
        )
        .expect("valid metric");
        build.set(1);
        register(&families.registry, build);
        #[cfg(target_os = "linux")]
        families
            .registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("registered once");
        Metrics(Arc::new(families))
    }

    fn sinks(&self) -> MutexGuard<'_, Vec<SinkView>> {
        self.0.sinks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A sink started; its queue and state are read at every scrape.
    pub(crate) fn sink_started(&self, name: &str, queue: QueueGauge<Queued>) -> SinkMetrics {
        let state = Arc::new(SinkState::default());
        state
            .confirmed_at_ms
            .store(unix_ms(SystemTime::now()), Ordering::Relaxed);
        let view = SinkView {
            name: name.to_owned(),
            queue,
            state: state.clone(),
        };
        self.sinks().push(view.clone());
        SinkMetrics {
            name: name.to_owned(),
            state,
            view,
            metrics: self.clone(),
        }
    }

    /// An informer produced a notification.
    pub(crate) fn notification(&self, informer: &str, n: &Notification) {
        self.0
            .notifications
            .with_label_values(&[informer, n.event_type.as_str(), n.origin.as_str()])
            .inc();
    }

    /// A route held `reason` (`type`, `unchanged`, `filter`) a notification back.
    pub(crate) fn held(&self, route: &str, reason: &'static str) {
        self.0.route_held.with_label_values(&[route, reason]).inc();
    }

    /// A route's CEL filter failed to evaluate (the notification was kept).
    pub(crate) fn filter_error(&self, route: &str) {
        self.0.route_filter_errors.with_label_values(&[route]).inc();
    }

    /// A watch ended and will be resumed (`closed` by the server, after an `error`, or
    /// dropped when `idle`).
    pub(crate) fn watch_restarted(&self, informer: &str, reason: &'static str) {
        self.0
            .watch_restarts
            .with_label_values(&[informer, reason])
            .inc();
    }

    /// A list taken again from the start (`expired`: 410 Gone on the watch's resourceVersion
    /// or on a LIST page's continue token; `restarted`: a LIST or watch-list cut short by an
    /// error or a closed stream; `malformed`: after a watch line that did not decode;
    /// `watch_list_ignored`: the server answered a watch-list as a plain watch).
    pub(crate) fn relisted(&self, informer: &str, reason: &'static str) {
        self.0.relists.with_label_values(&[informer, reason]).inc();
    }

    /// An informer waits `delay` before relisting.
    pub(crate) fn relist_backoff(&self, informer: &str, delay: Duration) {
        self.0
            .relist_backoff
            .with_label_values(&[informer])
            .inc_by(delay.as_secs_f64());
    }

    /// A watch line was not a usable event.
    pub(crate) fn watch_decode_error(&self, informer: &str) {
        self.0
            .watch_decode_errors
            .with_label_values(&[informer])
            .inc();
    }

    /// The counter of an informer's cache entries that could not be decompressed.
    pub(crate) fn cache_unreadable(&self, informer: &str) -> prometheus::IntCounter {
        self.0.cache_unreadable.with_label_values(&[informer])
    }

    /// The counter of values an informer's decode-time transform replaced by a hash.
    pub(crate) fn redacted_values(&self, informer: &str) -> prometheus::IntCounter {
        self.0.redacted_values.with_label_values(&[informer])
    }

    /// A LIST page request failed (`too_large`: over the page cap; `error`: otherwise).
    pub(crate) fn list_error(&self, informer: &str, reason: &'static str) {
        self.0
            .list_errors
            .with_label_values(&[informer, reason])
            .inc();
    }

    /// An informer's cache changed size.
    pub(crate) fn cache_size(&self, informer: &str, objects: usize, bytes: usize, held: usize) {
        self.0
            .cache_held_bytes
            .with_label_values(&[informer])
            .set(held as i64);
        self.0
            .cache_objects
            .with_label_values(&[informer])
            .set(objects as i64);
        self.0
            .cache_bytes
            .with_label_values(&[informer])
            .set(bytes as i64);
    }

    /// An informer handed its initial list on (or stopped).
    pub(crate) fn informer_synced(&self, informer: &str, synced: bool) {
        self.0
            .informer_synced
            .with_label_values(&[informer])
            .set(i64::from(synced));
    }

    /// An informer replayed its cache.
    pub(crate) fn resynced(&self, informer: &str) {
        self.0.resyncs.with_label_values(&[informer]).inc();
    }

    /// An informer heard from its watch (an event or a bookmark).
    pub(crate) fn watch_heard(&self, informer: &str) {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        self.0
            .last_event
            .with_label_values(&[informer])
            .set(now.as_secs_f64());
    }

    /// This instance took (`true`) or lost or released (`false`) the leader lease.
    pub(crate) fn lease_held(&self, held: bool) {
        self.0.lease_held.set(i64::from(held));
    }

    /// An attempt to acquire or renew the leader lease failed.
    pub(crate) fn lease_attempt_failed(&self, reason: &'static str) {
        self.0
            .lease_attempt_failures
            .with_label_values(&[reason])
            .inc();
    }

    /// The metrics port accepted a connection; it counts as open until the guard drops.
    pub(crate) fn endpoint_connection_opened(&self) -> EndpointConnection {
        self.0.endpoint.open.inc();
        EndpointConnection(self.clone())
    }

    /// The metrics port closed a new connection at once: every slot was taken.
    pub(crate) fn endpoint_connection_rejected(&self) {
        self.0.endpoint.rejected.inc();
    }

    /// A connection to the metrics port failed or timed out in its TLS handshake.
    pub(crate) fn endpoint_tls_handshake_failed(&self) {
        self.0.endpoint.tls_handshake_errors.inc();
    }

    /// Counts one request checked by `--metrics-auth kubernetes`; `result` is one of
    /// `allowed`, `unauthenticated`, `forbidden`, `error`.
    pub(crate) fn endpoint_auth(&self, result: &'static str) {
        self.0.endpoint.auth.with_label_values(&[result]).inc();
    }

    /// Accepting a connection on the metrics port failed (out of file descriptors, ...).
    pub(crate) fn endpoint_accept_failed(&self) {
        self.0.endpoint.accept_errors.inc();
    }

    /// Every sink that is not ready, one reason each (see [`SinkView::health`]), joined
    /// by "; "; `Ok` when all are.
    pub(crate) fn sinks_ready(&self, stall_timeout: Duration) -> Result<(), String> {
        let now = SystemTime::now();
        let reasons: Vec<String> = self
            .sinks()
            .iter()
            .filter_map(|s| s.health(stall_timeout, now).reason(&s.name, stall_timeout))
            .collect();
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(reasons.join("; "))
        }
    }

    /// The Prometheus text exposition of every metric, with queue depths and lag read now.
    pub(crate) fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding families that were gathered from our own registry cannot fail.
        let _ = TextEncoder::new().encode(&self.0.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// The metrics port's own health: what a flood of clients or a lack of file descriptors
/// does to it.
struct EndpointFamilies {
    open: IntGauge,
    rejected: IntCounter,
    accept_errors: IntCounter,
    tls_handshake_errors: IntCounter,
    auth: IntCounterVec,
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let counter = IntCounter::with_opts(Opts::new(name, help)).expect("valid metric");
    register(registry, counter)
}

impl EndpointFamilies {
    fn new(r: &Registry) -> EndpointFamilies {
        let open = IntGauge::with_opts(Opts::new(
            "kubebridge_endpoint_connections",
            "Open connections to the metrics port.",
        ))
        .expect("valid metric");
        EndpointFamilies {
            open: register(r, open),
            rejected: counter(
                r,
                "kubebridge_endpoint_connections_rejected_total",
                "Connections to the metrics port closed at once because every slot was taken.",
            ),
            accept_errors: counter(
                r,
                "kubebridge_endpoint_accept_errors_total",
                "Failed accepts on the metrics port (each followed by a backoff).",
            ),
            tls_handshake_errors: counter(
                r,
                "kubebridge_endpoint_tls_handshake_errors_total",
                "Connections to the metrics port closed because their TLS handshake failed or did not finish within --metrics-header-timeout.",
            ),
            auth: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "kubebridge_endpoint_auth_total",
                        "Requests to /metrics and /cache checked with --metrics-auth kubernetes, by result: allowed, unauthenticated (401), forbidden (403), error (a review failed: 503).",
                    ),
                    &["result"],
                )
                .expect("valid metric"),
            ),
        }
    }
}

/// An open connection to the metrics port, counted until dropped.
pub(crate) struct EndpointConnection(Metrics);

impl Drop for EndpointConnection {
    fn drop(&mut self) {
        self.0.0.endpoint.open.dec();
    }
}

/// One sink's metrics, held by its task: the sink's name is the label of everything here.
pub(crate) struct SinkMetrics {
    name: String,
    state: Arc<SinkState>,
    view: SinkView,
    metrics: Metrics,
}

impl SinkMetrics {
    /// What the supervisor and `/readyz` read about this sink.
    pub(crate) fn view(&self) -> SinkView {
        self.view.clone()
    }

    /// The sink took `batch` from its queue to publish it.
    pub(crate) fn taken(&self, batch: &[Arc<Notification>]) {
        self.state
            .in_flight
            .store(batch.len() as u64, Ordering::Relaxed);
    }

    /// The sink is about to publish (or retry) a batch whose oldest unconfirmed
    /// notification was observed at `oldest`.
    pub(crate) fn publish_started(&self, oldest: SystemTime) {
        self.state
            .in_flight_since_ms
            .store(unix_ms(oldest).max(1), Ordering::Relaxed);
    }

    /// The sink's destination confirmed these notifications.
    pub(crate) fn delivered(&self, confirmed: &[Arc<Notification>]) {
        if confirmed.is_empty() {
            return;
        }
        let m = &self.metrics.0;
        m.sink_sent
            .with_label_values(&[&self.name])
            .inc_by(confirmed.len() as u64);
        let histogram = m.sink_send_duration.with_label_values(&[&self.name]);
        let now = SystemTime::now();
        for n in confirmed {
            histogram.observe(now.duration_since(n.time).unwrap_or_default().as_secs_f64());
        }
        let state = &self.state;
        state.last.store(LAST_OK, Ordering::Relaxed);
        let _ = state
            .in_flight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(confirmed.len() as u64))
            });
        state.confirmed_at_ms.store(unix_ms(now), Ordering::Relaxed);
    }

    /// A publish attempt failed.
    pub(crate) fn publish_failed(&self, retryable: bool) {
        let kind = if retryable { "retryable" } else { "permanent" };
        self.metrics
            .0
            .sink_errors
            .with_label_values(&[&self.name, kind])
            .inc();
        let last = if retryable {
            LAST_RETRYING
        } else {
            LAST_REFUSED
        };
        self.state.last.store(last, Ordering::Relaxed);
    }

    /// The sink replaced its client and will send `n` unconfirmed notifications again.
    pub(crate) fn resending(&self, n: usize) {
        self.metrics
            .0
            .sink_resent
            .with_label_values(&[&self.name])
            .inc_by(n as u64);
    }

    /// A notification the sink refused for good was dropped.
    pub(crate) fn refused(&self) {
        self.state.refused.fetch_add(1, Ordering::Relaxed);
        let _ = self
            .state
            .in_flight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(1))
            });
    }

    /// The batch in flight is done with (all confirmed or dropped).
    pub(crate) fn batch_done(&self) {
        self.state.in_flight.store(0, Ordering::Relaxed);
        self.state.in_flight_since_ms.store(0, Ordering::Relaxed);
    }
}

/// The checkpoint metrics (see [`crate::checkpoint`]), by informer.
struct CheckpointFamilies {
    resumes: IntCounterVec,
    age: GaugeVec,
    bytes: IntGaugeVec,
    objects: IntGaugeVec,
    unconfirmed: IntGaugeVec,
    writes: IntCounterVec,
    write_errors: IntCounterVec,
}

impl CheckpointFamilies {
    fn new(r: &Registry) -> Self {
        CheckpointFamilies {
            resumes: counters(
                r,
                "kubebridge_checkpoint_resumes_total",
                "Starts of an informer with --checkpoint, by outcome (resumed; none: no checkpoint yet; corrupt: truncated or damaged; wrong_version: another format version; foreign_cluster: written for another cluster; other_informer: written for another resource, scope or selectors; unreadable: the store failed; no_cluster_identity: the kube-system namespace could not be read). Every outcome but resumed and none is logged as a warning and falls back to a full initial state.",
                &["resource", "outcome"],
            ),
            age: gauges(
                r,
                "kubebridge_checkpoint_age_seconds",
                "Seconds since the persisted checkpoint last caught up with what every sink confirmed; 0 while it is up to date.",
                &["resource"],
            ),
            bytes: int_gauges(
                r,
                "kubebridge_checkpoint_bytes",
                "Size of the last checkpoint written (compressed).",
                &["resource"],
            ),
            objects: int_gauges(
                r,
                "kubebridge_checkpoint_objects",
                "Objects in the last checkpoint written.",
                &["resource"],
            ),
            unconfirmed: int_gauges(
                r,
                "kubebridge_checkpoint_unconfirmed",
                "Changes notified but not yet settled by every sink of the informer: what a crash now would send again.",
                &["resource"],
            ),
            writes: counters(
                r,
                "kubebridge_checkpoint_writes_total",
                "Checkpoints written.",
                &["resource"],
            ),
            write_errors: counters(
                r,
                "kubebridge_checkpoint_write_errors_total",
                "Checkpoint writes that failed, by reason (conflict: another instance wrote it since, as a deposed leader's late write does, and this instance stops writing that checkpoint; error: any other, tried again at the next interval); each is logged.",
                &["resource", "reason"],
            ),
        }
    }
}

impl Metrics {
    /// An informer started with `--checkpoint`, with this outcome.
    pub(crate) fn checkpoint_resume(&self, informer: &str, outcome: &'static str) {
        self.0
            .checkpoint
            .resumes
            .with_label_values(&[informer, outcome])
            .inc();
    }

    /// A checkpoint of `bytes` holding `objects` was written.
    pub(crate) fn checkpoint_written(&self, informer: &str, bytes: usize, objects: usize) {
        let c = &self.0.checkpoint;
        c.writes.with_label_values(&[informer]).inc();
        c.bytes.with_label_values(&[informer]).set(bytes as i64);
        c.objects.with_label_values(&[informer]).set(objects as i64);
    }

    /// A checkpoint write failed (`conflict` or `error`).
    pub(crate) fn checkpoint_write_failed(&self, informer: &str, reason: &'static str) {
        self.0
            .checkpoint
            .write_errors
            .with_label_values(&[informer, reason])
            .inc();
    }

    /// How far the persisted checkpoint is behind, and how much is not yet settled.
    pub(crate) fn checkpoint_state(&self, informer: &str, age: Duration, unconfirmed: usize) {
        let c = &self.0.checkpoint;
        c.age.with_label_values(&[informer]).set(age.as_secs_f64());
        c.unconfirmed
            .with_label_values(&[informer])
            .set(unconfirmed as i64);
    }
}

/// A read-only view of one sink: its queue and delivery state, for scrapes, `/readyz`
/// and the supervisor that ends `--once` and sums up the run.
#[derive(Clone)]
pub(crate) struct SinkView {
    name: String,
    queue: QueueGauge<Queued>,
    state: Arc<SinkState>,
}

/// How a sink is doing, judged against `--sink-stall-timeout`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Health {
    /// Caught up, or delivering within the timeout.
    Ready,
    /// Its last attempt failed and is being retried, within the timeout.
    Retrying,
    /// Its last attempt was refused for good (its notification dropped).
    Refusing {
        /// Dropped so far.
        dropped: u64,
    },
    /// Its oldest unconfirmed notification is older than the timeout, though it
    /// confirmed something within it: behind, but moving.
    Lagging {
        /// Age of the oldest unconfirmed notification.
        oldest: Duration,
    },
    /// Its oldest unconfirmed notification is older than the timeout and nothing was
    /// confirmed within it: the destination is not taking deliveries.
    Stalled {
        /// Age of the oldest unconfirmed notification.
        oldest: Duration,
        /// Time since the last confirmation (or since the sink started).
        quiet: Duration,
    },
}

impl Health {
    /// Why the sink named `name` is not ready, in one clause; `None` when it is.
    pub(crate) fn reason(&self, name: &str, timeout: Duration) -> Option<String> {
        let secs = |d: &Duration| humantime::format_duration(Duration::from_secs(d.as_secs()));
        let timeout = humantime::format_duration(timeout);
        match self {
            Health::Ready => None,
            Health::Retrying => Some(format!(
                "sink {name}: its last delivery attempt failed and is being retried"
            )),
            Health::Refusing { dropped } => Some(format!(
                "sink {name}: its recent deliveries failed permanently ({dropped} notification(s) dropped so far)"
            )),
            Health::Lagging { oldest } => Some(format!(
                "sink {name}: lagging: its oldest unconfirmed notification is {} old, over --sink-stall-timeout {timeout}",
                secs(oldest)
            )),
            Health::Stalled { oldest, quiet } => Some(format!(
                "sink {name}: stalled: nothing confirmed for {}, its oldest unconfirmed notification is {} old, over --sink-stall-timeout {timeout}",
                secs(quiet),
                secs(oldest)
            )),
        }
    }
}

impl SinkView {
    /// The sink's name in logs and metrics.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Notifications queued or in flight, not yet confirmed or dropped.
    pub(crate) fn unconfirmed(&self) -> u64 {
        self.queue.len() as u64 + self.state.in_flight.load(Ordering::Relaxed)
    }

    /// Notifications the sink refused for good and dropped.
    pub(crate) fn refused(&self) -> u64 {
        self.state.refused.load(Ordering::Relaxed)
    }

    /// Unix milliseconds of the oldest notification not yet confirmed, if any.
    fn oldest_unconfirmed_ms(&self) -> Option<u64> {
        let in_flight = self.state.in_flight_since_ms.load(Ordering::Relaxed);
        if in_flight > 0 {
            Some(in_flight)
        } else {
            self.queue.front(|q| unix_ms(q.note.time).max(1))
        }
    }

    /// Age of the oldest notification not yet confirmed (zero when caught up).
    fn oldest_unconfirmed_age(&self, now_ms: u64) -> Duration {
        self.oldest_unconfirmed_ms().map_or(Duration::ZERO, |t| {
            Duration::from_millis(now_ms.saturating_sub(t))
        })
    }

    /// How the sink is doing at `now`, against `timeout`.
    pub(crate) fn health(&self, timeout: Duration, now: SystemTime) -> Health {
        let now_ms = unix_ms(now);
        let oldest = self.oldest_unconfirmed_age(now_ms);
        if oldest > timeout {
            let confirmed = self.state.confirmed_at_ms.load(Ordering::Relaxed);
            let quiet = Duration::from_millis(now_ms.saturating_sub(confirmed));
            return if quiet > timeout {
                Health::Stalled { oldest, quiet }
            } else {
                Health::Lagging { oldest }
            };
        }
        match self.state.last.load(Ordering::Relaxed) {
            LAST_REFUSED => Health::Refusing {
                dropped: self.refused(),
            },
            LAST_RETRYING => Health::Retrying,
            _ => Health::Ready,
        }
    }
}

/// The sink families whose values live in the queues and sink states, read at scrape
/// time: a fresh set per scrape, so nothing is reset or re-added.
struct SinkFamilies {
    capacity: IntGaugeVec,
    depth: IntGaugeVec,
    bytes: IntGaugeVec,
    max_bytes: IntGaugeVec,
    oldest_age: GaugeVec,
    dropped: IntCounterVec,
}

impl SinkFamilies {
    fn new() -> SinkFamilies {
        SinkFamilies {
            capacity: IntGaugeVec::new(
                Opts::new("kubebridge_queue_capacity", "Capacity of a sink's queue."),
                &["sink"],
            )
            .expect("valid metric"),
            depth: IntGaugeVec::new(
                Opts::new(
                    "kubebridge_queue_depth",
                    "Notifications waiting in a sink's queue.",
                ),
                &["sink"],
            )
            .expect("valid metric"),
            bytes: IntGaugeVec::new(
                Opts::new(
                    "kubebridge_queue_bytes",
                    "JSON bytes (object + oldObject) of the notifications waiting in a sink's queue.",
                ),
                &["sink"],
            )
            .expect("valid metric"),
            max_bytes: IntGaugeVec::new(
                Opts::new(
                    "kubebridge_queue_capacity_bytes",
                    "Byte budget of a sink's queue (--queue-bytes).",
                ),
                &["sink"],
            )
            .expect("valid metric"),
            oldest_age: GaugeVec::new(
                Opts::new(
                    "kubebridge_sink_oldest_unconfirmed_age_seconds",
                    "Age of the oldest notification a sink has not had confirmed (0 when caught up).",
                ),
                &["sink"],
            )
            .expect("valid metric"),
            dropped: IntCounterVec::new(
                Opts::new(
                    "kubebridge_sink_dropped_total",
                    "Notifications dropped, by reason (permanent: refused for good; overflow: evicted by drop-oldest).",
                ),
                &["sink", "reason"],
            )
            .expect("valid metric"),
        }
    }

    fn read(&self, sink: &SinkView, now_ms: u64) {
        let name = sink.name.as_str();
        self.capacity
            .with_label_values(&[name])
            .set(sink.queue.capacity() as i64);
        self.depth
            .with_label_values(&[name])
            .set(sink.queue.len() as i64);
        self.bytes
            .with_label_values(&[name])
            .set(sink.queue.bytes() as i64);
        self.max_bytes
            .with_label_values(&[name])
            .set(i64::try_from(sink.queue.max_bytes()).unwrap_or(i64::MAX));
        let age = sink.oldest_unconfirmed_age(now_ms);
        self.oldest_age
            .with_label_values(&[name])
            .set(age.as_secs_f64());
        self.dropped
            .with_label_values(&[name, "permanent"])
            .inc_by(sink.state.refused.load(Ordering::Relaxed));
        self.dropped
            .with_label_values(&[name, "overflow"])
            .inc_by(sink.queue.evicted());
    }
}

/// Reads every sink's queue and state when the registry is gathered.
#[derive(Clone)]
struct SinkCollector {
    sinks: Arc<Mutex<Vec<SinkView>>>,
    /// Never set: only their descriptions are used, for registration.
    described: Arc<SinkFamilies>,
}

impl SinkCollector {
    fn new(sinks: Arc<Mutex<Vec<SinkView>>>) -> SinkCollector {
        SinkCollector {
            sinks,
            described: Arc::new(SinkFamilies::new()),
        }
    }
}

impl Collector for SinkCollector {
    fn desc(&self) -> Vec<&Desc> {
        let f = &*self.described;
        [
            f.capacity.desc(),
            f.depth.desc(),
            f.bytes.desc(),
            f.max_bytes.desc(),
            f.oldest_age.desc(),
            f.dropped.desc(),
        ]
        .concat()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let families = SinkFamilies::new();
        let now_ms = unix_ms(SystemTime::now());
        for sink in self.sinks.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            families.read(sink, now_ms);
        }
        [
            families.capacity.collect(),
            families.depth.collect(),
            families.bytes.collect(),
            families.max_bytes.collect(),
            families.oldest_age.collect(),
            families.dropped.collect(),
        ]
        .concat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::{Overflow, queue};

    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines().find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.trim().parse().ok())
        })
    }

    fn note_at(name: &str, time: SystemTime) -> Arc<Notification> {
        Arc::new(Notification {
            event_type: kubebridge_sinks::EventType::Added,
            origin: kubebridge_sinks::Origin::Watch,
            time,
            cluster: None,
            resource: Arc::new(kubebridge_sinks::ResourceId {
                group: String::new(),
                version: "v1".into(),
                resource: "pods".into(),
                kind: "Pod".into(),
            }),
            namespace: None,
            name: name.into(),
            uid: name.into(),
            resource_version: "1".into(),
            object: Arc::from(serde_json::value::RawValue::from_string("{}".into()).expect("json")),
            old_object: None,
            snapshot: None,
            tombstone: false,
            old_resource_version: None,
            patch: None,
        })
    }

    #[tokio::test]
    async fn a_sink_is_judged_by_its_oldest_unconfirmed_notification() {
        let metrics = Metrics::new();
        let (tx, mut rx) = queue::<Queued>(8, Overflow::Block);
        let sink = metrics.sink_started("kafka", tx.gauge());
        let view = sink.view();
        let timeout = Duration::from_secs(2);
        let start = SystemTime::now();
        assert_eq!(view.health(timeout, start), Health::Ready, "idle is ready");

        // Taken into a batch that the destination never confirms.
        tx.send(note_at("a", start).into()).await.expect("open");
        let batch = vec![rx.try_recv().expect("queued").note];
        sink.taken(&batch);
        sink.publish_started(start);
        tx.send(note_at("b", start).into()).await.expect("open");
        assert_eq!(view.unconfirmed(), 2, "one in flight, one queued");
        assert_eq!(
            view.health(timeout, start + Duration::from_secs(1)),
            Health::Ready
        );
        let later = start + Duration::from_secs(5);
        assert!(
            matches!(view.health(timeout, later), Health::Stalled { oldest, .. } if oldest >= Duration::from_secs(5)),
            "{:?}",
            view.health(timeout, later)
        );
        let reason = view
            .health(timeout, later)
            .reason("kafka", timeout)
            .expect("not ready");
        assert!(reason.contains("sink kafka: stalled"), "{reason}");
        assert!(reason.contains("--sink-stall-timeout 2s"), "{reason}");

        // Confirmed: ready again, nothing in flight.
        sink.delivered(&batch);
        sink.batch_done();
        assert_eq!(view.unconfirmed(), 1);
        let _ = rx.try_recv();
        assert_eq!(view.health(timeout, later), Health::Ready);
        assert!(metrics.sinks_ready(timeout).is_ok());

        // Refused for good: not ready, counted, until something is confirmed.
        sink.publish_failed(false);
        sink.refused();
        assert_eq!(view.health(timeout, later), Health::Refusing { dropped: 1 });
        assert_eq!(view.refused(), 1);
        let reason = metrics.sinks_ready(timeout).expect_err("refusing");
        assert!(reason.contains("failed permanently"), "{reason}");
        sink.delivered(&[note_at("c", later)]);
        assert_eq!(view.health(timeout, later), Health::Ready);
    }

    #[tokio::test]
    async fn a_second_run_starts_with_no_sinks_of_the_first() {
        let first = Metrics::new();
        let (tx, _rx) = queue::<Queued>(4, Overflow::Block);
        let sink = first.sink_started("kafka", tx.gauge());
        sink.publish_failed(true);
        let reason = first
            .sinks_ready(Duration::from_secs(60))
            .expect_err("retrying");
        assert!(reason.contains("sink kafka"), "{reason}");
        assert_eq!(
            sample(
                &first.render(),
                r#"kubebridge_queue_capacity{sink="kafka"}"#
            ),
            Some(4.0)
        );

        let second = Metrics::new();
        assert!(
            second.sinks_ready(Duration::from_secs(60)).is_ok(),
            "the first run's failing sink is not in the second"
        );
        let text = second.render();
        assert!(!text.contains(r#"sink="kafka""#), "{text}");
        let (tx2, _rx2) = queue::<Queued>(8, Overflow::Block);
        second.sink_started("stdout", tx2.gauge());
        let text = second.render();
        assert_eq!(
            sample(&text, r#"kubebridge_queue_capacity{sink="stdout"}"#),
            Some(8.0)
        );
        assert!(!text.contains(r#"sink="kafka""#), "{text}");
        assert!(!first.render().contains(r#"sink="stdout""#));
    }

    #[tokio::test]
    async fn queue_values_are_read_at_scrape_time_without_double_counting() {
        let metrics = Metrics::new();
        let (tx, _rx) = queue::<Queued>(1, Overflow::DropOldest);
        let sink = metrics.sink_started("nats", tx.gauge());
        let overflow = r#"kubebridge_sink_dropped_total{reason="overflow",sink="nats"}"#;
        let permanent = r#"kubebridge_sink_dropped_total{reason="permanent",sink="nats"}"#;
        assert_eq!(sample(&metrics.render(), overflow), Some(0.0));
        let note = |name: &str| note_at(name, SystemTime::now());
        for name in ["a", "b", "c"] {
            tx.send(note(name).into()).await.expect("open");
        }
        sink.refused();
        // Scraped twice: a counter read from the queue must not grow by being read.
        for _ in 0..2 {
            let text = metrics.render();
            assert_eq!(sample(&text, overflow), Some(2.0), "{text}");
            assert_eq!(sample(&text, permanent), Some(1.0), "{text}");
            assert_eq!(
                sample(&text, r#"kubebridge_queue_depth{sink="nats"}"#),
                Some(1.0)
            );
        }
    }
}
