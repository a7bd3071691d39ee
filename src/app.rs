//! Wiring: resolve resources, start informers and sinks, run until done or told to stop.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use kubebridge_sinks::{Sink, SinkOptions, sink_from_uri};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::cluster::{self, Cluster};
use crate::config::{Command, InitialState, NamespaceScope, Route, SimOptions, StreamConfig};
use crate::endpoints::{self, Readiness};
use crate::informer::backoff::Backoff;
use crate::informer::shared::SyncedFlags;
use crate::informer::{InformerSpec, Informers, ProcessorConfig, ReflectorConfig};
use crate::leader::{Elector, Leadership, LeaseConfig};
use crate::metrics::Metrics;
use crate::pipeline::{SinkOutcome, spawn_sink};
use crate::resolve::{ApiResource, Discovery, ResolveError};
use crate::sim::Sim;

/// An error that ends kubebridge, with the exit code it deserves.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Bad input: flags, names, config. Exit code 2.
    #[error(transparent)]
    Usage(Box<dyn std::error::Error + Send + Sync>),
    /// Anything else that stops kubebridge. Exit code 1.
    #[error(transparent)]
    Failed(Box<dyn std::error::Error + Send + Sync>),
}

impl AppError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            AppError::Usage(_) => 2,
            AppError::Failed(_) => 1,
        }
    }

    fn failed(message: impl Into<String>) -> Self {
        AppError::Failed(message.into().into())
    }
}

/// Runs one command until it finishes or `shutdown` resolves.
pub async fn run(
    command: Command,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), AppError> {
    match command {
        Command::Watch { cluster, stream } => {
            let cluster = cluster::connect(&cluster)
                .await
                .map_err(|e| AppError::Usage(e.into()))?;
            // No RESOURCE on the command line (only --config routes): no command-line sinks.
            let sinks = if stream.resources.is_empty() {
                Vec::new()
            } else {
                build_sinks(&stream).await?
            };
            watch(&cluster, &stream, sinks, shutdown).await
        }
        Command::Demo { stream, sim } => crate::demo::run(stream, sim, shutdown).await,
        Command::Sim(options) => serve_sim(&options, shutdown).await,
        Command::CheckConfig { path, stream } => check_config(&path, &stream).await,
        Command::Rbac {
            cluster,
            resources,
            name,
        } => {
            let cluster = cluster::connect(&cluster)
                .await
                .map_err(|e| AppError::Usage(e.into()))?;
            let resolved = resolve_all(&cluster, &resources).await?;
            print!("{}", crate::rbac::cluster_role(&name, &resolved));
            Ok(())
        }
    }
}

/// The sinks the configuration names. A malformed URI or option is a usage error; a
/// broker that is down is not (each sink retries it).
pub async fn build_sinks(stream: &StreamConfig) -> Result<Vec<Box<dyn Sink>>, AppError> {
    sinks_from_uris(&stream.sinks, &stream.sink_options, "").await
}

/// Builds one sink per URI; a malformed one is a usage error, its message prefixed
/// with `context` (which route, which file).
async fn sinks_from_uris(
    uris: &[String],
    options: &SinkOptions,
    context: &str,
) -> Result<Vec<Box<dyn Sink>>, AppError> {
    let mut sinks = Vec::with_capacity(uris.len());
    for uri in uris {
        let sink = sink_from_uri(uri, options)
            .await
            .map_err(|e| AppError::Usage(format!("{context}{e}").into()))?;
        sinks.push(sink);
    }
    Ok(sinks)
}

/// Streams `stream`'s resources from `cluster` to `sinks` until the informers stop
/// (`--once`), a sink's destination closes, an informer fails for good, or `shutdown`.
/// `stream.sinks` is not consulted: embedders pass their own [`Sink`]s here.
pub async fn watch(
    cluster: &Cluster,
    stream: &StreamConfig,
    sinks: Vec<Box<dyn Sink>>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), AppError> {
    // The command line's own route (RESOURCE... with `sinks`), then the config file's.
    let mut routes: Vec<(Route, Vec<Box<dyn Sink>>)> = Vec::new();
    if !stream.resources.is_empty() {
        let route = Route {
            name: "command line".into(),
            resources: stream.resources.clone(),
            namespaces: stream.namespaces.clone(),
            label_selector: stream.label_selector.clone(),
            field_selector: stream.field_selector.clone(),
            sinks: Vec::new(),
            sink_options: None,
        };
        routes.push((route, sinks));
    }
    for route in &stream.routes {
        let options = route.options_or(&stream.sink_options);
        let built =
            sinks_from_uris(&route.sinks, options, &format!("route {:?}: ", route.name)).await?;
        routes.push((route.clone(), built));
    }

    let metrics = Metrics::new();
    let mut sink_tasks = JoinSet::new();
    let mut gauges = Vec::new();
    let mut informers = Informers::default();
    let mut names: Vec<String> = Vec::new();
    for (route, sinks) in routes {
        let resources = resolve_all(cluster, &route.resources).await?;
        let namespaces: Vec<Option<String>> = match &route.namespaces {
            NamespaceScope::All => vec![None],
            NamespaceScope::ContextDefault => vec![Some(cluster.default_namespace.clone())],
            NamespaceScope::Only(list) => list.iter().cloned().map(Some).collect(),
        };
        for sink in sinks {
            // Label values: the sink's kind, numbered when two sinks share it.
            let kind = sink.kind();
            let same = names
                .iter()
                .filter(|n| n.split('-').next() == Some(kind))
                .count();
            let name = if same == 0 {
                kind.to_owned()
            } else {
                format!("{kind}-{}", same + 1)
            };
            names.push(name.clone());
            let (queue, task) =
                spawn_sink(name, sink, stream.queue_capacity, stream.overflow, &metrics);
            gauges.push(queue.gauge());
            sink_tasks.spawn(async move {
                task.await
                    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
            });
            for resource in &resources {
                for namespace in &namespaces {
                    // Routes asking for the same spec share one informer.
                    informers.subscribe(
                        InformerSpec {
                            resource: resource.clone(),
                            // -n means nothing to a cluster-scoped resource, as in kubectl.
                            namespace: namespace.clone().filter(|_| resource.namespaced),
                            label_selector: route.label_selector.clone(),
                            field_selector: route.field_selector.clone(),
                        },
                        queue.clone(),
                    );
                }
            }
        }
    }
    for spec in informers.specs() {
        tracing::info!(informer = %spec.name(), server = %cluster.server, "starting informer");
    }

    let cancel = CancellationToken::new();
    let reflector = ReflectorConfig {
        page_size: stream.page_size,
        watch_list: stream.watch_list,
        once: stream.once,
        // Progress is for people: only when stderr is a terminal, never into a log file.
        progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        ..ReflectorConfig::default()
    };
    let processor = ProcessorConfig {
        emit_initial: stream.initial_state == InitialState::Emit,
        resync: stream.resync,
        cluster: cluster.name.as_deref().map(Into::into),
    };
    let listener = match stream.metrics_addr {
        Some(addr) => Some(endpoints::bind(addr).await.map_err(|e| {
            AppError::Usage(format!("--metrics-addr {addr}: cannot listen: {e}").into())
        })?),
        None => None,
    };
    // Filled once the informers start; until then (a standby) the endpoints say so.
    let synced_slot: Arc<OnceLock<SyncedFlags>> = Arc::default();
    let lister_slot: Arc<OnceLock<crate::lister::Lister>> = Arc::default();
    let endpoints_stop = CancellationToken::new();
    let _stop_endpoints_on_return = endpoints_stop.clone().drop_guard();
    if let Some(listener) = listener {
        let synced = synced_slot.clone();
        let sinks = metrics.clone();
        let ready: Readiness = Arc::new(move || {
            // A standby has nothing to sync and is ready to take over.
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
            if !sinks.sinks_healthy() {
                return Err("a sink's last delivery attempt failed".to_owned());
            }
            Ok(())
        });
        if let Ok(local) = listener.local_addr() {
            tracing::info!(addr = %local, "serving /metrics, /healthz and /readyz");
        }
        endpoints::serve(
            listener,
            metrics.clone(),
            ready,
            stream.serve_cache.then(|| lister_slot.clone()),
            endpoints_stop.clone(),
        );
    }

    let mut shutdown = std::pin::pin!(shutdown);
    // Only the leader runs informers: wait for the lease first (a SIGTERM meanwhile
    // ends a standby cleanly), then keep renewing it beside the informers.
    let mut leadership: Option<Leadership> = None;
    if let Some(election) = &stream.leader_election {
        let config = LeaseConfig {
            namespace: election
                .namespace
                .clone()
                .unwrap_or_else(|| cluster.default_namespace.clone()),
            ..election.lease.clone()
        };
        config.validate().map_err(|e| AppError::Usage(e.into()))?;
        tracing::info!(lease = %format!("{}/{}", config.namespace, config.name), identity = %config.identity, "waiting to become the leader");
        let mut elector = Elector::new(cluster.lease_client.clone(), config, metrics.clone());
        let standby = CancellationToken::new();
        let acquired = tokio::select! {
            acquired = elector.acquire(&standby) => acquired.map_err(|e| AppError::Failed(e.into()))?,
            () = &mut shutdown => false,
        };
        if !acquired {
            return Ok(());
        }
        leadership = Some(elector.lead());
    }

    let mut running = informers.start(&cluster.client, &reflector, &processor, &cancel, &metrics);
    let _ = synced_slot.set(running.synced_flags());
    let _ = lister_slot.set(crate::lister::Lister::new(running.caches()));

    let mut failure: Option<AppError> = None;
    let mut informers_done = false;
    // Armed by a shutdown signal: how long queued notifications may still take.
    let mut grace: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
    // Done when every informer has stopped and every sink has drained (or closed).
    while !(informers_done && sink_tasks.is_empty()) {
        tokio::select! {
            () = &mut shutdown, if grace.is_none() => {
                tracing::info!(grace = ?stream.shutdown_grace, "shutting down: stopping watches, delivering what is queued");
                cancel.cancel();
                grace = Some(Box::pin(tokio::time::sleep(stream.shutdown_grace)));
            }
            lost = async { match leadership.as_mut() { Some(l) => l.lost().await, None => std::future::pending().await } }, if leadership.is_some() => {
                leadership = None;
                // Another instance may already be leading: publish nothing more.
                cancel.cancel();
                sink_tasks.abort_all();
                failure.get_or_insert(AppError::Failed(lost.into()));
                break;
            }
            () = async { if let Some(g) = grace.as_mut() { g.await } }, if grace.is_some() => {
                let undelivered: usize = gauges.iter().map(|g| g.len()).sum();
                failure.get_or_insert(AppError::failed(format!(
                    "the shutdown grace of {} ran out with {undelivered} queued notification(s) undelivered (plus any batch in flight); raise --shutdown-grace",
                    humantime::format_duration(stream.shutdown_grace)
                )));
                break;
            }
            joined = running.join_next(), if !informers_done => match joined {
                None => informers_done = true,
                Some(Ok(())) => {}
                Some(Err(e)) => {
                    cancel.cancel();
                    let err = if e.is_usage() { AppError::Usage(e.into()) } else { AppError::Failed(e.into()) };
                    failure.get_or_insert(err);
                }
            },
            Some(outcome) = sink_tasks.join_next() => match outcome {
                Ok(SinkOutcome::Closed) => {
                    tracing::debug!("a sink's destination closed; stopping");
                    cancel.cancel();
                }
                Ok(SinkOutcome::Drained { delivered, dropped, evicted }) => {
                    tracing::info!(delivered, dropped, evicted, "sink drained");
                }
                Ok(SinkOutcome::Failed(e)) => {
                    failure.get_or_insert(AppError::failed(format!("closing a sink failed: {e}")));
                }
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            },
        }
    }
    if let Some(leadership) = leadership {
        // Nothing publishes any more (drained, or aborted here): hand the lease over.
        sink_tasks.shutdown().await;
        leadership.release().await;
    }
    failure.map_or(Ok(()), Err)
}

/// `kubebridge sim`: serves the simulated API server until `shutdown`.
async fn serve_sim(
    options: &SimOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), AppError> {
    let sim = Sim::start(options.listen, crate::demo::sim_config(options))
        .await
        .map_err(|e| AppError::Usage(format!("cannot serve on {}: {e}", options.listen).into()))?;
    eprintln!(
        "kubebridge sim: serving the Kubernetes API on {}",
        sim.url()
    );
    if let Some(path) = &options.write_kubeconfig {
        // Written whole and renamed into place, so a reader polling for it never sees half.
        let partial = path.with_extension("partial");
        sim.write_kubeconfig(&partial, None)
            .and_then(|()| std::fs::rename(&partial, path))
            .map_err(|e| {
                AppError::Usage(
                    format!("cannot write the kubeconfig to {}: {e}", path.display()).into(),
                )
            })?;
        eprintln!(
            "kubebridge sim: kubeconfig in {0}; try kubectl --kubeconfig {0} get pods -A",
            path.display()
        );
    }
    shutdown.await;
    sim.shutdown().await;
    Ok(())
}

/// `kubebridge check-config`: builds every sink (so URIs and properties are checked
/// exactly as at start-up, without connecting) and prints which informers will run and
/// which routes share them. Resource names are grouped as written; discovery resolves
/// them at start-up.
async fn check_config(path: &std::path::Path, stream: &StreamConfig) -> Result<(), AppError> {
    use std::collections::BTreeMap;
    for route in &stream.routes {
        let context = format!("{}: route {:?}: ", path.display(), route.name);
        sinks_from_uris(
            &route.sinks,
            route.options_or(&stream.sink_options),
            &context,
        )
        .await?;
    }
    let mut informers: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for route in &stream.routes {
        let scopes: Vec<String> = match &route.namespaces {
            NamespaceScope::All => vec!["all namespaces".into()],
            NamespaceScope::ContextDefault => vec!["the context's namespace".into()],
            NamespaceScope::Only(list) => list.iter().map(|n| format!("namespace {n}")).collect(),
        };
        for resource in &route.resources {
            for scope in &scopes {
                let mut key = format!("{resource} in {scope}");
                if let Some(l) = &route.label_selector {
                    key.push_str(&format!(", labels {l}"));
                }
                if let Some(f) = &route.field_selector {
                    key.push_str(&format!(", fields {f}"));
                }
                informers.entry(key).or_default().push(&route.name);
            }
        }
    }
    println!("{}: valid", path.display());
    println!("informers ({}):", informers.len());
    for (informer, routes) in &informers {
        let shared = if routes.len() > 1 { " (shared)" } else { "" };
        println!("  {informer}  <- {}{shared}", routes.join(", "));
    }
    println!("routes ({}):", stream.routes.len());
    for route in &stream.routes {
        let sinks: Vec<String> = route
            .sinks
            .iter()
            .map(|s| kubebridge_sinks::redact(s))
            .collect();
        println!(
            "  {}: {} -> {}",
            route.name,
            route.resources.join(", "),
            sinks.join(", ")
        );
    }
    Ok(())
}

/// Resolves every name through the cluster's discovery; an unknown name is a usage error.
async fn resolve_all(cluster: &Cluster, names: &[String]) -> Result<Vec<ApiResource>, AppError> {
    let discovery = discover(cluster).await?;
    names
        .iter()
        .map(|name| discovery.resolve(name))
        .collect::<Result<Vec<_>, ResolveError>>()
        .map_err(|e| AppError::Usage(e.into()))
}

/// Reads discovery, retrying for a while if the API server cannot be reached, so that
/// a typo in the server address fails in seconds but a restarting server is waited for.
async fn discover(cluster: &Cluster) -> Result<Discovery, AppError> {
    const ATTEMPTS: u32 = 5;
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(5));
    let mut attempt = 1;
    loop {
        match Discovery::run(&cluster.client).await {
            Ok(d) => return Ok(d),
            Err(e) if e.is_retryable() && attempt < ATTEMPTS => {
                let delay = e.retry_after().unwrap_or_else(|| backoff.next_delay());
                tracing::warn!(error = %e, attempt, retry_in = ?delay, "discovery failed; retrying");
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            Err(e) => {
                return Err(AppError::failed(format!(
                    "cannot read the API server's discovery documents at {}: {e}",
                    cluster.server
                )));
            }
        }
    }
}
