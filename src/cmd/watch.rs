//! `kubebridge watch`, in named phases, each its own function:
//!
//! 1. `plan`: read discovery once, resolve every route, decide which informers routes
//!    share (`plan.rs`, the same object `check-config` prints);
//! 2. `sinks`: build each route's sinks and start a task with a bounded queue for each;
//! 3. `endpoints`: serve `/metrics`, `/healthz`, `/readyz` (and the cache lister);
//! 4. `leadership`: with `--leader-elect`, wait for the Lease before going on;
//! 5. `informers`: start one informer per planned informer, feeding its routes' queues
//!    (with `--checkpoint`, each resumes from its checkpoint, read once the lease is
//!    ours, and a writer keeps the checkpoints at a bounded rate);
//! 6. `supervise`: run until the informers stop, a sink closes, an informer fails for
//!    good, the lease is lost, or shutdown (then deliver what is queued within the grace);
//!    meanwhile judge every sink against `--sink-stall-timeout` (log a stall; with
//!    `--once`, give up on a stalled sink), write the last checkpoint (not after a lost
//!    lease), and end non-zero, in one line, when anything was left undelivered.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use kubebridge_sinks::{Sink, sink_from_uri};
use tokio::task::{AbortHandle, JoinSet};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::AppError;
use tokio_rustls::TlsAcceptor;

use crate::checkpoint::identity::InformerIdentity;
use crate::checkpoint::run::Checkpoints;
use crate::config::{ClusterConfig, InitialState, MetricsAuth, Route, StreamConfig};
use crate::endpoints::{self, Authorizer, EndpointsConfig, Handlers, Readiness, TlsSource};
use crate::filter::Filters;
use crate::informer::shared::SyncedFlags;
use crate::informer::{
    InformerSpec, Informers, ProcessorConfig, ReflectorConfig, RunningInformers, Subscription,
    Transforms,
};
use crate::kube::{Cluster, cluster};
use crate::leader::{self, Elector, LeaseConfig};
use crate::lister::Lister;
use crate::metrics::{Health, Metrics, SinkView};
use crate::pipeline::sink_task::SinkQueue;
use crate::pipeline::{QueueBounds, SinkHandle, SinkOutcome, spawn_sink};
use crate::plan::{Plan, PlannedResource, Resolver};

/// Sinks an embedder built itself, each with the name of the route it serves (in
/// addition to the sinks that route's URIs name).
pub type CustomSinks = Vec<(String, Box<dyn Sink>)>;

/// `kubebridge watch`: connects as kubectl would, then [`watch`]es.
pub async fn run(
    options: &ClusterConfig,
    stream: &StreamConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), AppError> {
    let cluster = cluster::connect(options)
        .await
        .map_err(|e| AppError::Usage(e.into()))?;
    watch(&cluster, stream, Vec::new(), shutdown).await
}

/// Streams `stream`'s routes from `cluster` to their sinks (those their URIs name, and
/// `custom` ones) until the informers stop (`--once`), a sink's destination closes, an
/// informer fails for good, or `shutdown`.
pub async fn watch(
    cluster: &Cluster,
    stream: &StreamConfig,
    custom: CustomSinks,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), AppError> {
    // Certificate files are read first: a wrong path is a usage error before anything
    // connects.
    let tls = tls(stream)?;
    let (plan, transforms) = plan(cluster, stream).await?;
    // This run's metrics: an embedder calling `watch` again starts from a clean registry.
    let metrics = Metrics::new();
    let sinks = sinks(&plan, stream, custom, &metrics).await?;
    let endpoints = endpoints(cluster, stream, tls, &metrics).await?;
    let cancel = CancellationToken::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let lease = match leadership(cluster, stream, &metrics, shutdown.as_mut()).await? {
        Leadership::Standby => return Ok(()),
        Leadership::NotElecting => None,
        Leadership::Leading(keep) => Some(keep),
    };
    // Read after the lease is ours: a new leader resumes from the old leader's last write.
    let checkpoints = match &stream.checkpoint {
        Some(config) => Some(
            Checkpoints::open(
                config,
                &cluster.client,
                &cluster.default_namespace,
                &metrics,
            )
            .await
            .map_err(AppError::usage)?,
        ),
        None => None,
    };
    // The queues move into the informers: a sink drains and ends once they all stop.
    let (running, checkpoints) = informers(
        cluster,
        stream,
        &plan,
        transforms,
        sinks.queues,
        checkpoints,
        &cancel,
        &endpoints,
        &metrics,
    )
    .await?;
    let supervised = Supervised {
        checkpoints: checkpoints.map(Checkpoints::spawn),
        informers: running,
        sink_tasks: sinks.tasks,
        sinks: sinks.watched,
        lease,
        cancel,
        grace: stream.shutdown_grace,
        stall_timeout: stream.sink_stall_timeout,
        once: stream.once,
    };
    supervise(supervised, shutdown).await
}

/// Phase 1: reads discovery (once for the whole process) and resolves every route into
/// the plan, and every `redact` rule into the decode-time transforms. An unknown resource
/// is a usage error.
async fn plan(cluster: &Cluster, stream: &StreamConfig) -> Result<(Plan, Transforms), AppError> {
    let discovery = cluster
        .discover()
        .await
        .map_err(|e| AppError::Failed(e.into()))?;
    let plan = Plan::build(
        &stream.routes,
        &Resolver::Live(&discovery),
        Some(&cluster.default_namespace),
    )
    .map_err(|e| AppError::Usage(e.into()))?;
    let watched: Vec<_> = plan
        .informers
        .iter()
        .filter_map(|i| match &i.resource {
            PlannedResource::Resolved(r) => Some(&*r.id),
            PlannedResource::AtStartup(_) => None,
        })
        .collect();
    let transforms = super::transforms::build(&stream.redaction, &discovery, &watched)?;
    Ok((plan, transforms))
}

/// Builds the sinks `route`'s URIs name. A malformed URI or option is a usage error, its
/// message prefixed with `context` (which route, which file); a broker that is down is
/// not (each sink retries it).
pub(crate) async fn build_sinks(
    route: &Route,
    context: &str,
) -> Result<Vec<Box<dyn Sink>>, AppError> {
    let mut sinks = Vec::with_capacity(route.sinks.len());
    for uri in &route.sinks {
        let sink = sink_from_uri(uri, &route.sink_options)
            .await
            .map_err(|e| AppError::usage(format!("{context}{e}")))?;
        sinks.push(sink);
    }
    Ok(sinks)
}

/// The running sinks: each route's queues, the tasks draining them, and what the
/// supervisor watches of each.
struct Sinks {
    /// Per route (as in the plan), the queue of each of its sinks.
    queues: Vec<Vec<SinkQueue>>,
    tasks: JoinSet<SinkOutcome>,
    watched: Vec<Watched>,
}

/// One sink as the supervisor sees it.
struct Watched {
    view: SinkView,
    /// Aborts the sink's own task (not just the join set's wrapper around it).
    abort: AbortHandle,
    /// Whether it was last judged stalled (a change is logged).
    stalled: bool,
    /// Whether `--once` gave up on it, with this many notifications undelivered.
    abandoned: Option<u64>,
}

/// Phase 2: builds every route's sinks and starts a task and a bounded queue for each.
/// Sinks are labelled by kind in metrics and logs, numbered when two share a kind.
async fn sinks(
    plan: &Plan,
    stream: &StreamConfig,
    custom: CustomSinks,
    metrics: &Metrics,
) -> Result<Sinks, AppError> {
    let mut built = Vec::with_capacity(plan.routes.len());
    for planned in &plan.routes {
        let route = &planned.route;
        built.push(build_sinks(route, &route.context()).await?);
    }
    for (name, sink) in custom {
        let index = plan
            .routes
            .iter()
            .position(|p| p.route.name == name)
            .ok_or_else(|| {
                AppError::usage(format!(
                    "a custom sink names route {name:?}, which is not configured"
                ))
            })?;
        built[index].push(sink);
    }
    let mut running = Sinks {
        queues: Vec::with_capacity(built.len()),
        tasks: JoinSet::new(),
        watched: Vec::new(),
    };
    let bounds = QueueBounds {
        capacity: stream.queue_capacity,
        max_bytes: stream.queue_bytes,
        overflow: stream.overflow,
    };
    // How many sinks of each kind are labelled so far (a kind may itself hold a '-').
    let mut per_kind: std::collections::HashMap<&'static str, usize> = Default::default();
    for route_sinks in built {
        let mut queues = Vec::with_capacity(route_sinks.len());
        for sink in route_sinks {
            let kind = sink.kind();
            let n = per_kind.entry(kind).or_default();
            *n += 1;
            let label = if *n == 1 {
                kind.to_owned()
            } else {
                format!("{kind}-{n}")
            };
            let SinkHandle { queue, task, view } = spawn_sink(label, sink, bounds, metrics);
            running.watched.push(Watched {
                view,
                abort: task.abort_handle(),
                stalled: false,
                abandoned: None,
            });
            running.tasks.spawn(async move {
                match task.await {
                    Ok(outcome) => outcome,
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    Err(_) => SinkOutcome::Abandoned,
                }
            });
            queues.push(queue);
        }
        running.queues.push(queues);
    }
    Ok(running)
}

/// What the endpoints learn once the informers start; until then (a standby) they say so.
struct Endpoints {
    synced: Arc<OnceLock<SyncedFlags>>,
    lister: Arc<OnceLock<Lister>>,
    /// Stops serving when `watch` returns.
    _stop: DropGuard,
}

/// The TLS acceptor of `--metrics-addr`: from `--metrics-tls-cert` and `--metrics-tls-key`,
/// else self-signed with `--metrics-auth kubernetes`, else none (plain HTTP). A file
/// that cannot be read or used is a usage error naming it.
fn tls(stream: &StreamConfig) -> Result<Option<TlsAcceptor>, AppError> {
    let Some(addr) = stream.metrics_addr else {
        return Ok(None);
    };
    let security = &stream.endpoint_security;
    let source = match (&security.tls_files, security.auth) {
        (Some((cert, key)), _) => TlsSource::Files {
            cert: cert.clone(),
            key: key.clone(),
        },
        (None, MetricsAuth::Kubernetes) => {
            let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
            if !addr.ip().is_unspecified() && !addr.ip().is_loopback() {
                names.push(addr.ip().to_string());
            }
            // In a pod: the pod's name, as its hostname (POD_NAME from the downward API).
            names.extend(std::env::var("POD_NAME").ok().filter(|n| !n.is_empty()));
            TlsSource::SelfSigned { names }
        }
        (None, MetricsAuth::None) => return Ok(None),
    };
    endpoints::acceptor(&source)
        .map(Some)
        .map_err(AppError::usage)
}

/// Phase 3: binds and serves `--metrics-addr` (a port in use is a usage error), before
/// anything else can be observed.
async fn endpoints(
    cluster: &Cluster,
    stream: &StreamConfig,
    tls: Option<TlsAcceptor>,
    metrics: &Metrics,
) -> Result<Endpoints, AppError> {
    let stop = CancellationToken::new();
    let slots = Endpoints {
        synced: Arc::default(),
        lister: Arc::default(),
        _stop: stop.clone().drop_guard(),
    };
    let Some(addr) = stream.metrics_addr else {
        return Ok(slots);
    };
    let listener = endpoints::bind(addr)
        .await
        .map_err(|e| AppError::usage(format!("--metrics-addr {addr}: cannot listen: {e}")))?;
    let security = &stream.endpoint_security;
    if let Ok(local) = listener.local_addr() {
        tracing::info!(
            addr = %local,
            https = tls.is_some(),
            auth = ?security.auth,
            "serving /metrics, /healthz and /readyz"
        );
    }
    let limits = &stream.limits;
    let config = EndpointsConfig {
        header_read_timeout: limits.metrics_header_timeout,
        connection_timeout: limits.metrics_connection_timeout,
        max_connections: limits.metrics_max_connections,
        probe_connections: limits.metrics_probe_connections,
    };
    let handlers = Handlers {
        metrics: metrics.clone(),
        ready: readiness(
            slots.synced.clone(),
            metrics.clone(),
            stream.sink_stall_timeout,
        ),
        lister: stream.serve_cache.then(|| slots.lister.clone()),
        // The client without kube's retry layer: a review is answered or fails within
        // its own timeout, and a failure is a 503, never a wait.
        auth: (security.auth == MetricsAuth::Kubernetes).then(|| {
            Arc::new(Authorizer::new(
                cluster.lease_client.clone(),
                metrics.clone(),
                security.auth_cache_ttl,
            ))
        }),
        tls,
    };
    endpoints::serve_with(config, listener, handlers, stop);
    Ok(slots)
}

/// Ready when every informer has synced and every sink is delivering: none has a
/// notification unconfirmed for longer than `stall_timeout`, and none's last attempt
/// failed (retrying, or refused for good). A standby (no informers yet) is ready to take
/// over. The body names each sink that is not ready, and why.
fn readiness(
    synced: Arc<OnceLock<SyncedFlags>>,
    metrics: Metrics,
    stall_timeout: Duration,
) -> Readiness {
    Arc::new(move || {
        let Some(synced) = synced.get() else {
            return Ok(());
        };
        let pending: Vec<&str> = synced
            .iter()
            .filter(|(_, s)| !*s.borrow())
            .map(|(n, _)| n.as_str())
            .collect();
        if !pending.is_empty() {
            return Err(format!("not synced yet: {}", pending.join(", ")));
        }
        metrics.sinks_ready(stall_timeout)
    })
}

/// The outcome of the leadership phase.
enum Leadership {
    /// No `--leader-elect`: run now.
    NotElecting,
    /// The lease is ours; its renewal runs beside the informers until lost or released.
    Leading(leader::Leadership),
    /// Shut down while standing by: nothing ran, nothing to do.
    Standby,
}

/// Phase 4: only the leader runs informers. Waits for the lease (a SIGTERM meanwhile ends
/// a standby cleanly), then keeps renewing it beside the informers, until it is lost or
/// released after the sinks have drained.
async fn leadership(
    cluster: &Cluster,
    stream: &StreamConfig,
    metrics: &Metrics,
    shutdown: Pin<&mut (impl Future<Output = ()> + Send)>,
) -> Result<Leadership, AppError> {
    let Some(election) = &stream.leader_election else {
        return Ok(Leadership::NotElecting);
    };
    let config = LeaseConfig {
        namespace: election
            .namespace
            .clone()
            .unwrap_or_else(|| cluster.default_namespace.clone()),
        ..election.lease.clone()
    };
    config.validate().map_err(AppError::usage)?;
    tracing::info!(lease = %format!("{}/{}", config.namespace, config.name), identity = %config.identity, "waiting to become the leader");
    let mut elector = Elector::new(cluster.lease_client.clone(), config, metrics.clone());
    let standby = CancellationToken::new();
    let acquired = tokio::select! {
        acquired = elector.acquire(&standby) => acquired.map_err(|e| AppError::Failed(e.into()))?,
        () = shutdown => false,
    };
    if !acquired {
        return Ok(Leadership::Standby);
    }
    // Renewal is not tied to the shutdown: the lease is kept while the sinks drain, and
    // released after (client-go's ReleaseOnCancel), so a standby never overlaps.
    Ok(Leadership::Leading(elector.lead()))
}

/// Phase 5: subscribes each route's queues to its planned informers, reads each one's
/// checkpoint (with `--checkpoint`), and starts them.
#[allow(clippy::too_many_arguments)]
async fn informers(
    cluster: &Cluster,
    stream: &StreamConfig,
    plan: &Plan,
    transforms: Transforms,
    queues: Vec<Vec<SinkQueue>>,
    mut checkpoints: Option<Checkpoints>,
    cancel: &CancellationToken,
    endpoints: &Endpoints,
    metrics: &Metrics,
) -> Result<(RunningInformers, Option<Checkpoints>), AppError> {
    // Each route's filters, compiled once and shared by the informers that feed it.
    let filters = plan
        .routes
        .iter()
        .map(|p| {
            Filters::compile(&p.route.name, &p.route.filters)
                .map(Arc::new)
                .map_err(|e| AppError::usage(format!("{}{e}", p.route.context())))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut informers = Informers::default();
    for planned in &plan.informers {
        let spec = planned
            .spec()
            .ok_or_else(|| AppError::failed(format!("{planned} was not resolved")))?;
        tracing::info!(informer = %spec.name(), server = %cluster.server, "starting informer");
        for &route in &planned.routes {
            let subscription = Subscription::new(filters[route].clone(), queues[route].clone());
            informers.subscribe(spec.clone(), subscription);
        }
    }
    if let Some(checkpoints) = checkpoints.as_mut() {
        let specs: Vec<InformerSpec> = informers.specs().cloned().collect();
        for spec in specs {
            let id = &spec.resource.id;
            let identity = InformerIdentity::new(
                (&id.group, &id.version, &id.resource),
                spec.namespace.as_deref(),
                spec.label_selector.as_deref(),
                spec.field_selector.as_deref(),
            );
            if let Some(resume) = checkpoints.resume(&spec.name(), identity).await {
                informers.checkpoint(spec, resume);
            }
        }
    }
    let limits = &stream.limits;
    let reflector = ReflectorConfig {
        page_size: stream.page_size,
        watch_list: stream.watch_list,
        once: stream.once,
        watch_idle_timeout: limits.watch_idle_timeout,
        watch_list_initial_timeout: limits.watch_list_initial_timeout,
        max_object_bytes: limits.max_object_bytes,
        max_page_bytes: limits.max_page_bytes,
        // Progress is for people: only when stderr is a terminal, never into a log file.
        progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        transforms,
        ..ReflectorConfig::default()
    };
    let processor = ProcessorConfig {
        emit_initial: stream.initial_state == InitialState::Emit,
        resync: stream.resync,
        cluster: cluster.name.as_deref().map(Into::into),
        cache_compression: stream.cache_compression,
    };
    let running = informers.start(&cluster.client, &reflector, &processor, cancel, metrics);
    let _ = endpoints.synced.set(running.synced_flags());
    let _ = endpoints.lister.set(Lister::new(running.caches()));
    Ok((running, checkpoints))
}

/// Everything [`supervise`] watches over.
struct Supervised {
    /// The checkpoint writer: told to write once more (`true`) or not (`false`) at the end.
    checkpoints: Option<(
        tokio::sync::oneshot::Sender<bool>,
        tokio::task::JoinHandle<()>,
    )>,
    informers: RunningInformers,
    sink_tasks: JoinSet<SinkOutcome>,
    sinks: Vec<Watched>,
    lease: Option<leader::Leadership>,
    cancel: CancellationToken,
    grace: Duration,
    stall_timeout: Duration,
    once: bool,
}

/// How often sinks are judged against the stall timeout: a quarter of it, between
/// 100 ms and 1 s, so a stall is noticed well within the timeout's precision.
fn judge_period(stall_timeout: Duration) -> Duration {
    (stall_timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(1))
}

/// Phase 6: runs until every informer has stopped and every sink has drained (or
/// closed, or was given up on). A shutdown signal stops the watches and arms the grace
/// period for what is queued; a lost lease stops publishing at once; sinks are judged
/// against the stall timeout all along. The first failure is the result; otherwise a
/// run that left notifications undelivered fails with a one-line summary.
async fn supervise(
    mut s: Supervised,
    mut shutdown: Pin<&mut (impl Future<Output = ()> + Send)>,
) -> Result<(), AppError> {
    let mut failure: Option<AppError> = None;
    let mut lease_lost = false;
    let mut informers_done = false;
    let mut grace: Option<Pin<Box<tokio::time::Sleep>>> = None;
    let mut judge = tokio::time::interval(judge_period(s.stall_timeout));
    judge.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !(informers_done && s.sink_tasks.is_empty()) {
        tokio::select! {
            () = &mut shutdown, if grace.is_none() => {
                tracing::info!(grace = ?s.grace, "shutting down: stopping watches, delivering what is queued");
                s.cancel.cancel();
                grace = Some(Box::pin(tokio::time::sleep(s.grace)));
            }
            lost = async { match s.lease.as_mut() { Some(lease) => lease.lost().await, None => std::future::pending().await } }, if s.lease.is_some() => {
                // Every end of the renewal is a loss (deadline, another holder, a dead
                // task): another instance may already be leading, so publish nothing more.
                s.lease = None;
                lease_lost = true;
                s.cancel.cancel();
                // The join set holds wrappers: abort the sink tasks themselves.
                for sink in &s.sinks {
                    sink.abort.abort();
                }
                s.sink_tasks.abort_all();
                failure.get_or_insert(AppError::Failed(lost.into()));
                break;
            }
            () = async { if let Some(g) = grace.as_mut() { g.await } }, if grace.is_some() => {
                let undelivered: u64 = s.sinks.iter().map(|w| w.view.unconfirmed()).sum();
                failure.get_or_insert(AppError::failed(format!(
                    "the shutdown grace of {} ran out with {undelivered} notification(s) undelivered (queued or in flight); raise --shutdown-grace",
                    humantime::format_duration(s.grace)
                )));
                break;
            }
            _ = judge.tick() => judge_sinks(&mut s.sinks, s.stall_timeout, s.once),
            joined = s.informers.join_next(), if !informers_done => match joined {
                None => informers_done = true,
                Some(Ok(())) => {}
                Some(Err(e)) => {
                    s.cancel.cancel();
                    let err = if e.is_usage() { AppError::Usage(e.into()) } else { AppError::Failed(e.into()) };
                    failure.get_or_insert(err);
                }
            },
            Some(outcome) = s.sink_tasks.join_next() => {
                if let Some(e) = sink_ended(outcome, &s.cancel) {
                    failure.get_or_insert(e);
                }
            }
        }
    }
    // The last checkpoint, after the sinks drained and before the lease is released (so
    // the next leader reads it); none when the lease was lost, since another instance
    // may be writing already (its store would refuse ours anyway).
    if let Some((stop, writer)) = s.checkpoints.take() {
        let _ = stop.send(!lease_lost);
        let _ = writer.await;
    }
    if let Some(lease) = s.lease.take() {
        // Nothing publishes any more: hand the lease over now, not a lease duration later.
        // The join set holds wrappers: abort the sink tasks themselves too.
        for sink in &s.sinks {
            sink.abort.abort();
        }
        s.sink_tasks.shutdown().await;
        lease.release().await;
    }
    if let Some(summary) = undelivered(&s.sinks) {
        match &failure {
            None => failure = Some(AppError::failed(summary)),
            Some(_) => tracing::error!("{summary}"),
        }
    }
    failure.map_or(Ok(()), Err)
}

/// Judges every sink against `stall_timeout`: logs each one that stalls (warn) or
/// recovers (info); under `--once`, gives up on a stalled one, so the run ends.
fn judge_sinks(sinks: &mut [Watched], stall_timeout: Duration, once: bool) {
    let now = std::time::SystemTime::now();
    for w in sinks.iter_mut().filter(|w| w.abandoned.is_none()) {
        let health = w.view.health(stall_timeout, now);
        let stalled = matches!(health, Health::Stalled { .. });
        if stalled && !w.stalled {
            let reason = health
                .reason(w.view.name(), stall_timeout)
                .unwrap_or_default();
            tracing::warn!(sink = %w.view.name(), unconfirmed = w.view.unconfirmed(), "{reason}; /readyz reports not ready");
        } else if !stalled && w.stalled {
            tracing::info!(sink = %w.view.name(), "sink confirms deliveries again");
        }
        w.stalled = stalled;
        if stalled && once {
            let undelivered = w.view.unconfirmed();
            tracing::error!(sink = %w.view.name(), undelivered, "--once: giving up on a sink that confirmed nothing within --sink-stall-timeout");
            w.abort.abort();
            w.abandoned = Some(undelivered);
        }
    }
}

/// One line saying what the run left undelivered, sink by sink: what `--once` gave up
/// on and what sinks refused for good. `None` when nothing was.
fn undelivered(sinks: &[Watched]) -> Option<String> {
    let mut total = 0;
    let mut parts = Vec::new();
    for w in sinks {
        let name = w.view.name();
        if let Some(n) = w.abandoned {
            total += n;
            parts.push(format!(
                "sink {name} confirmed nothing within --sink-stall-timeout and was given up on with {n} unconfirmed"
            ));
        }
        let refused = w.view.refused();
        if refused > 0 {
            total += refused;
            parts.push(format!(
                "sink {name} refused {refused} for good (each logged, counted in kubebridge_sink_dropped_total)"
            ));
        }
    }
    (!parts.is_empty())
        .then(|| format!("{total} notification(s) undelivered: {}", parts.join("; ")))
}

/// Handles a sink task's end: a closed destination stops everything; a failed close is
/// an error; a panic is re-raised.
fn sink_ended(
    outcome: Result<SinkOutcome, tokio::task::JoinError>,
    cancel: &CancellationToken,
) -> Option<AppError> {
    match outcome {
        Ok(SinkOutcome::Closed) => {
            tracing::debug!("a sink's destination closed; stopping");
            cancel.cancel();
            None
        }
        Ok(SinkOutcome::Drained {
            delivered,
            dropped,
            evicted,
        }) => {
            tracing::info!(delivered, dropped, evicted, "sink drained");
            None
        }
        Ok(SinkOutcome::Abandoned) => None,
        Ok(SinkOutcome::Failed(e)) => Some(AppError::failed(format!("closing a sink failed: {e}"))),
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}
