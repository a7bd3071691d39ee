//! The configuration model, as data: routes (resources -> sinks, with their options)
//! and the options every route shares. The command line and the `--config` file both
//! produce it (`config::merge`); the command line's RESOURCE is one more [`Route`].

pub use crate::checkpoint::CheckpointUri;
pub use crate::checkpoint::run::{CheckpointConfig, default_checkpoint_interval};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use kubebridge_sinks::SinkOptions;

use crate::informer::redact::RedactionKey;
use crate::informer::redact_path::RedactPath;
use crate::queue::Overflow;

/// Which namespaces to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespaceScope {
    /// The kubeconfig context's namespace (kubectl's rule when neither `-n` nor `-A` is given).
    ContextDefault,
    /// Every namespace (`-A`).
    All,
    /// These namespaces (`-n`, repeatable), one informer each.
    Only(Vec<String>),
}

/// Whether the objects found by the first LIST are published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InitialState {
    /// As ADDED with origin `list` (what informers do).
    Emit,
    /// Not at all: only changes after start-up.
    Skip,
}

/// How to reach the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterConfig {
    /// `--kubeconfig`; otherwise `KUBECONFIG`, `~/.kube/config`, then the in-cluster account.
    pub kubeconfig: Option<PathBuf>,
    /// `--context`; otherwise the kubeconfig's current context.
    pub context: Option<String>,
    /// `--cluster-name`; otherwise the context's cluster name.
    pub cluster_name: Option<String>,
}

/// What to watch and where to send it: the routes, and what they share.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// The routes: the command line's (RESOURCE... with its flags) first, then the
    /// config file's. Routes that watch the same resolved resource, scope and selectors
    /// share one informer (see `plan.rs`).
    pub routes: Vec<Route>,
    /// Resync period; `None` disables resync.
    pub resync: Option<Duration>,
    /// Whether the initial list is published.
    pub initial_state: InitialState,
    /// How each informer's cache holds objects.
    pub cache_compression: crate::informer::CacheCompression,
    /// Publish the current state and exit.
    pub once: bool,
    /// Initial state through a watch-list stream instead of LIST.
    pub watch_list: bool,
    /// Objects per LIST page.
    pub page_size: u32,
    /// Capacity of each sink's queue, in notifications.
    pub queue_capacity: usize,
    /// Byte budget of each sink's queue: the raw JSON of the queued notifications'
    /// objects and old objects.
    pub queue_bytes: usize,
    /// What a full sink queue does.
    pub overflow: Overflow,
    /// A sink whose oldest unconfirmed notification is older than this is not ready;
    /// `--once` gives up on one that also confirmed nothing for this long.
    pub sink_stall_timeout: Duration,
    /// How long queued notifications may take to deliver after SIGTERM.
    pub shutdown_grace: Duration,
    /// Where to serve `/metrics`, `/healthz` and `/readyz`; `None` serves nothing.
    pub metrics_addr: Option<SocketAddr>,
    /// Also serve `/cache/{resource}` on that address.
    pub serve_cache: bool,
    /// Who may read `/metrics` and `/cache`, and whether over HTTPS.
    pub endpoint_security: EndpointSecurity,
    /// Run only while holding a Lease (`--leader-elect`).
    pub leader_election: Option<LeaderElection>,
    /// `--checkpoint` and `--checkpoint-interval`: resume from, and keep, a checkpoint
    /// per informer; `None` starts every run from a full initial state.
    pub checkpoint: Option<CheckpointConfig>,
    /// Bounds on what a misbehaving API server or client can make kubebridge wait for or
    /// read.
    pub limits: Limits,
    /// What is done to every object as it is decoded: Secret redaction, `redact` rules,
    /// managedFields stripping.
    pub redaction: Redaction,
}

/// Decode-time transforms, as configured (`informer::transform` runs them). The default
/// is the secure one: Secrets redacted with a random per-process key, managedFields
/// stripped, no user rules.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Redaction {
    /// `--reveal-secrets`: Secrets are published as they are. It turns off only the
    /// built-in Secret rule; user `redact` rules still apply (they name data the user
    /// marked sensitive on purpose).
    pub reveal_secrets: bool,
    /// `--keep-managed-fields`: `metadata.managedFields` is kept.
    pub keep_managed_fields: bool,
    /// The HMAC key (`--redaction-key-file`, `redactionKeyFile`, or
    /// `KUBEBRIDGE_REDACTION_KEY`); `None` draws a random one per process at start-up.
    pub key: Option<RedactionKey>,
    /// The config file's `redact` rules, in order.
    pub rules: Vec<RedactRule>,
}

/// One `redact` rule: these paths of this resource's objects are hashed.
#[derive(Debug, Clone, PartialEq)]
pub struct RedactRule {
    /// The resource, as kubectl names it (resolved like a route's resources).
    pub resource: String,
    /// JSON pointers, `*` for any key or index.
    pub paths: Vec<RedactPath>,
}

/// Who may read `/metrics` and `/cache` (`--metrics-auth`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricsAuth {
    /// Anyone who reaches the port (the local mode).
    #[default]
    None,
    /// A bearer token the API server accepts (TokenReview), for a user it lets `get`
    /// `/metrics` or `list` the cached resource (SubjectAccessReview).
    Kubernetes,
}

/// How the endpoints are secured: authentication, HTTPS and the review cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSecurity {
    /// `--metrics-auth`.
    pub auth: MetricsAuth,
    /// `--metrics-tls-cert` and `--metrics-tls-key`: HTTPS from these PEM files. Without
    /// them, HTTPS with a generated self-signed certificate when `auth` is `Kubernetes`,
    /// plain HTTP otherwise.
    pub tls_files: Option<(PathBuf, PathBuf)>,
    /// `--metrics-auth-cache-ttl`: how long an accepted token or an allowed access is
    /// remembered (a refusal, a tenth of it).
    pub auth_cache_ttl: Duration,
    /// `--insecure-endpoints`: allow `/cache` without authentication on an address other
    /// than loopback.
    pub insecure: bool,
}

impl Default for EndpointSecurity {
    fn default() -> Self {
        EndpointSecurity {
            auth: MetricsAuth::None,
            tls_files: None,
            auth_cache_ttl: default_auth_cache_ttl(),
            insecure: false,
        }
    }
}

/// 1 min: controller-runtime's token cache TTL for its secure metrics server; a scraper
/// every 15-30 s then costs the API server two reviews a minute.
pub fn default_auth_cache_ttl() -> Duration {
    Duration::from_secs(60)
}

/// Bounds that keep a misbehaving API server or endpoint client from stalling kubebridge
/// or swamping its memory. Each default is named where it is defined: the reflector's in
/// `informer/reflector.rs`, the endpoints' in `endpoints.rs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Drop and resume a watch that hears nothing, not even a bookmark, for this long.
    pub watch_idle_timeout: Duration,
    /// With watch-list: fall back to LIST when the initial state has not ended by then.
    pub watch_list_initial_timeout: Duration,
    /// The longest watch line (one object) read.
    pub max_object_bytes: usize,
    /// The largest LIST page read.
    pub max_page_bytes: usize,
    /// Time a `--metrics-addr` client has to send a request head.
    pub metrics_header_timeout: Duration,
    /// The longest a connection to `--metrics-addr` may live.
    pub metrics_connection_timeout: Duration,
    /// Connections to `--metrics-addr` served in full at once.
    pub metrics_max_connections: usize,
    /// Further connections answered for `/healthz` and `/readyz` only.
    pub metrics_probe_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        let reflector = crate::informer::ReflectorConfig::default();
        let endpoints = crate::endpoints::EndpointsConfig::default();
        Limits {
            watch_idle_timeout: reflector.watch_idle_timeout,
            watch_list_initial_timeout: reflector.watch_list_initial_timeout,
            max_object_bytes: reflector.max_object_bytes,
            max_page_bytes: reflector.max_page_bytes,
            metrics_header_timeout: endpoints.header_read_timeout,
            metrics_connection_timeout: endpoints.connection_timeout,
            metrics_max_connections: endpoints.max_connections,
            metrics_probe_connections: endpoints.probe_connections,
        }
    }
}

/// One route: these resources, in this scope, with these selectors, to these sinks.
#[derive(Debug, Clone)]
pub struct Route {
    /// The route's name, for messages and `check-config`.
    pub name: String,
    /// Resource names as kubectl writes them (`po`, `deployments.apps`).
    pub resources: Vec<String>,
    /// Namespaces to watch.
    pub namespaces: NamespaceScope,
    /// Label selector, applied by the API server.
    pub label_selector: Option<String>,
    /// Field selector, applied by the API server.
    pub field_selector: Option<String>,
    /// Sink URIs (`stdout`, `kafka://…`, `nats://…`, `jetstream://…`).
    pub sinks: Vec<String>,
    /// This route's sink options: format, Kafka properties and key, NATS subject and auth.
    pub sink_options: SinkOptions,
    /// What this route publishes of what its informers see: event types, CEL filter,
    /// noise suppression, projection, diffs.
    pub filters: crate::filter::FilterConfig,
}

/// The name of the route the command line's RESOURCE arguments make.
pub const COMMAND_LINE_ROUTE: &str = "command line";

impl Route {
    /// How an error about this route begins: nothing for the command line's route,
    /// `route "NAME": ` for a config file's.
    pub(crate) fn context(&self) -> String {
        if self.name == COMMAND_LINE_ROUTE {
            String::new()
        } else {
            format!("route {:?}: ", self.name)
        }
    }

    /// A route for `resources` in the context's namespace, without selectors, sink URIs
    /// or options of its own; set the public fields for more.
    pub fn new(
        name: impl Into<String>,
        resources: impl IntoIterator<Item = impl Into<String>>,
    ) -> Route {
        Route {
            name: name.into(),
            resources: resources.into_iter().map(Into::into).collect(),
            namespaces: NamespaceScope::ContextDefault,
            label_selector: None,
            field_selector: None,
            sinks: Vec::new(),
            sink_options: SinkOptions::default(),
            filters: crate::filter::FilterConfig::default(),
        }
    }
}

/// `--leader-elect` and its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderElection {
    /// The Lease's namespace; `None` uses the context's (in a pod: the pod's) namespace.
    pub namespace: Option<String>,
    /// Name, identity and timings (the namespace field is filled in at start).
    pub lease: crate::leader::LeaseConfig,
}

/// The `kubebridge sim` API server's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct SimOptions {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Seed namespaces.
    pub namespaces: usize,
    /// Seed pods, spread over the namespaces.
    pub pods: usize,
    /// Seed deployments per namespace.
    pub deployments_per_namespace: usize,
    /// Background changes per second.
    pub churn_per_sec: f64,
    /// Watch history window, in events.
    pub history: usize,
    /// Where to write a kubeconfig for the simulator.
    pub write_kubeconfig: Option<PathBuf>,
    /// RNG seed.
    pub seed: u64,
    /// Generated pods carry `metadata.managedFields`.
    pub managed_fields: bool,
    /// `--replay`: serve a pre-built LIST and watch stream instead of the simulator.
    pub replay: Option<ReplayOptions>,
}

/// `sim --replay`: what the replay server pre-builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayOptions {
    /// Pods in the LIST.
    pub pods: usize,
    /// MODIFIED events in the watch stream.
    pub events: usize,
}

/// One validated command.
#[derive(Debug, Clone)]
pub enum Command {
    /// Stream a cluster's changes.
    Watch {
        /// How to reach the cluster.
        cluster: ClusterConfig,
        /// What to stream.
        stream: StreamConfig,
    },
    /// Stream from a built-in simulated cluster.
    Demo {
        /// What to stream.
        stream: StreamConfig,
        /// The simulated cluster.
        sim: SimOptions,
    },
    /// Serve the simulated API server.
    Sim(SimOptions),
    /// Validate a config file and print its plan.
    CheckConfig {
        /// The file.
        path: PathBuf,
        /// What it configures (its routes, and its options applied to the defaults).
        stream: StreamConfig,
    },
    /// Print the least-privilege RBAC for streaming these resources.
    Rbac {
        /// How to reach the cluster (its discovery resolves the names).
        cluster: ClusterConfig,
        /// Resource names as the user wrote them.
        resources: Vec<String>,
        /// Who gets what, beside the resources.
        grants: RbacGrants,
    },
}

/// What `kubebridge rbac` grants beside list and watch on the resources, and to whom.
/// Every name in it is checked (DNS-1123) before anything is printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RbacGrants {
    /// The name of every Role, ClusterRole and binding (with a suffix for the extra
    /// ones) and of kubebridge's ServiceAccount.
    pub name: String,
    /// kubebridge's own namespace, where its ServiceAccount is.
    pub service_account_namespace: String,
    /// The watched namespaces; empty means every namespace (a ClusterRole).
    pub namespaces: Vec<String>,
    /// `--leader-elect`: the Lease's namespace and name.
    pub lease: Option<(String, String)>,
    /// `--metrics-auth kubernetes`: kubebridge creates TokenReviews and
    /// SubjectAccessReviews, and readers of `/metrics` need `get` on it.
    pub metrics_auth: bool,
    /// The ServiceAccount (namespace, name) of the Prometheus that scrapes `/metrics`.
    pub prometheus: Option<(String, String)>,
    /// `--checkpoint`: what the store needs (see [`CheckpointGrant`]).
    pub checkpoint: Option<CheckpointGrant>,
}

/// What `watch --checkpoint` needs from the API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointGrant {
    /// The namespace of a `configmap://` store (its URI's, else kubebridge's own); `None`
    /// for a `file://` store, which keeps nothing in the cluster.
    pub configmap_namespace: Option<String>,
}

impl StreamConfig {
    /// These routes with the defaults for everything else: initial state emitted, no
    /// resync, LIST pages of 500, queues of 10 000 notifications and 128 MiB that block
    /// when full, a 60 s sink stall timeout and a 25 s shutdown grace.
    pub fn new(routes: Vec<Route>) -> Self {
        StreamConfig {
            routes,
            resync: None,
            initial_state: InitialState::Emit,
            cache_compression: crate::informer::CacheCompression::default(),
            once: false,
            watch_list: false,
            page_size: crate::informer::reflector::default_page_size(),
            queue_capacity: default_queue_capacity(),
            queue_bytes: default_queue_bytes(),
            overflow: Overflow::Block,
            sink_stall_timeout: default_sink_stall_timeout(),
            shutdown_grace: default_shutdown_grace(),
            metrics_addr: None,
            serve_cache: false,
            endpoint_security: EndpointSecurity::default(),
            leader_election: None,
            checkpoint: None,
            limits: Limits::default(),
            redaction: Redaction::default(),
        }
    }
}

/// 10 000 notifications per sink: a few seconds of a busy cluster's changes, tens of
/// megabytes at most, since queued notifications share the cache's object bytes.
pub fn default_queue_capacity() -> usize {
    10_000
}

/// 25 s: inside the 30 s `terminationGracePeriodSeconds` a pod gets by default.
pub fn default_shutdown_grace() -> Duration {
    Duration::from_secs(25)
}

/// 128 MiB per sink: a sink's worst case is its queue plus a batch in flight of at most
/// the same budget, 256 MiB, which with a cache of a few hundred MiB stays inside the
/// 1 GiB memory limit of the shipped deployment (deploy/manifests/deployment.yaml). At
/// ordinary object sizes (a few KiB) the count binds first: 10 000 × 2 × 5 KiB ≈ 100 MiB.
pub fn default_queue_bytes() -> usize {
    128 * 1024 * 1024
}

/// 60 s: twice librdkafka's default `request.timeout.ms` (30 s), so one timed-out
/// request and its retry, or a Kafka leader election or NATS reconnect (seconds), do
/// not flip readiness; a destination that confirms nothing for a minute is an outage
/// someone should see.
pub fn default_sink_stall_timeout() -> Duration {
    Duration::from_secs(60)
}
