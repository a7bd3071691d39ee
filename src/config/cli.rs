//! The command line (clap), following kubectl's conventions. Every value is typed by a
//! value parser from [`super::values`], so a bad one is a one-line usage error at parse
//! time; the RESOURCE arguments and their flags become one more [`super::Route`], and the
//! flags a layer over the `--config` file's (`config::merge`).

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use kubebridge_sinks::{Format, KeyMode};

use super::merge::{self, CommandLineOnly, Layer, RouteFlags, SinkLayer};
use super::{
    CheckpointGrant, CheckpointUri, ClusterConfig, Command, InitialState, LeaderElection, Limits,
    MetricsAuth, RbacGrants, ReplayOptions, SimOptions, values,
};
use crate::leader::LeaseConfig;
use crate::queue::Overflow;

/// Turns a Kubernetes cluster's object changes into a stream other systems can trust.
#[derive(Debug, Parser)]
#[command(name = "kubebridge", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: CommandArgs,
    /// Log level for stderr (off, error, warn, info, debug, trace; or directives like
    /// warn,kubebridge=debug); RUST_LOG overrides it.
    #[arg(long, global = true, default_value = "warn", value_name = "LEVEL", value_parser = values::log_level)]
    pub log_level: String,
    /// Log format on stderr: text, or json (one object per line, for log collectors).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        value_name = "FORMAT"
    )]
    pub log_format: LogFormat,
}

/// How logs are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Logging options, applied before anything runs.
#[derive(Debug, Clone)]
pub struct Logging {
    /// `--log-level`.
    pub level: String,
    /// `--log-format`.
    pub format: LogFormat,
}

#[derive(Debug, Subcommand)]
enum CommandArgs {
    /// Stream every add, update, delete (and resync) of RESOURCE as JSON lines.
    Watch(WatchArgs),
    /// Run against a built-in simulated cluster with steady churn and print real events.
    Demo(DemoArgs),
    /// Serve the simulated Kubernetes API server (for tests, benchmarks and kubectl).
    Sim(SimArgs),
    /// Print the least-privilege RBAC (list and watch; the Lease; metrics auth) for streaming RESOURCE.
    Rbac(RbacArgs),
    /// Validate a --config file and print the plan: informers, routes, sinks; exit 0 or 2.
    CheckConfig(CheckConfigArgs),
}

#[derive(Debug, Args)]
struct CheckConfigArgs {
    /// The YAML file, as given to `watch --config`.
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

#[derive(Debug, Args)]
struct RbacArgs {
    /// Resources as kubectl names them; resolved through the cluster's discovery.
    #[arg(required = true, value_name = "RESOURCE")]
    resources: Vec<String>,
    /// Name of the roles, the bindings and kubebridge's ServiceAccount (a DNS-1123 subdomain).
    #[arg(long, default_value = "kubebridge", value_name = "NAME", value_parser = values::rbac_name)]
    name: String,
    /// kubebridge's own namespace: where its ServiceAccount is (and, by default, the Lease).
    #[arg(long, default_value = "kubebridge", value_name = "NS", value_parser = values::namespace)]
    service_account_namespace: String,
    /// A watched namespace: a Role and RoleBinding in each instead of a ClusterRole; repeatable.
    #[arg(short = 'n', long = "namespace", value_name = "NS", value_parser = values::namespace)]
    namespaces: Vec<String>,
    /// Grant what `watch --leader-elect` needs: get and update on one Lease, create on Leases, in one namespace.
    #[arg(long)]
    leader_elect: bool,
    /// The Lease's namespace (default: --service-account-namespace).
    #[arg(long, alias = "lease-namespace", value_name = "NS", requires = "leader_elect", value_parser = values::namespace)]
    leader_elect_namespace: Option<String>,
    /// The Lease's name, as given to `watch --leader-elect-name`.
    #[arg(long, default_value = "kubebridge", value_name = "NAME", value_parser = values::object_name)]
    leader_elect_name: String,
    /// `kubernetes`: grant what `watch --metrics-auth kubernetes` needs (TokenReview and
    /// SubjectAccessReview), and a metrics-reader ClusterRole for scrapers.
    #[arg(long, value_enum, default_value_t = MetricsAuth::None, value_name = "MODE")]
    metrics_auth: MetricsAuth,
    /// Bind the metrics-reader ClusterRole to this ServiceAccount (NAMESPACE/NAME), e.g. monitoring/prometheus-k8s.
    #[arg(long, value_name = "NS/NAME", value_parser = values::service_account)]
    prometheus_service_account: Option<(String, String)>,
    /// Grant what `watch --checkpoint URI` needs: with configmap://[NS]/PREFIX, get, create
    /// and update on ConfigMaps in a Role of NS (default --service-account-namespace); with
    /// either store, get on the kube-system namespace (the cluster's identity).
    #[arg(long, value_parser = clap::value_parser!(CheckpointUri), value_name = "URI")]
    checkpoint: Option<CheckpointUri>,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// How to reach the cluster, as kubectl's flags say it.
#[derive(Debug, Args)]
struct ClusterArgs {
    /// Path to the kubeconfig file (default: KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, value_name = "PATH")]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: its current context).
    #[arg(long, value_name = "NAME")]
    context: Option<String>,
}

impl ClusterArgs {
    fn config(self, cluster_name: Option<String>) -> ClusterConfig {
        ClusterConfig {
            kubeconfig: self.kubeconfig,
            context: self.context,
            cluster_name,
        }
    }
}

#[derive(Debug, Args)]
struct WatchArgs {
    /// Resources as kubectl names them: pods, po, deploy, deployments.apps, crontabs.v1.stable.example.com.
    #[arg(required_unless_present = "config", value_name = "RESOURCE")]
    resources: Vec<String>,
    /// A YAML file of routes (resources + namespaces + selectors + sinks) and shared
    /// options; flags given on the command line win over it. RESOURCE, if given, adds a
    /// route of its own.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    cluster: ClusterArgs,
    #[command(flatten)]
    stream: StreamArgs,
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// Resources to watch in the simulated cluster.
    #[arg(value_name = "RESOURCE", default_values_t = ["pods".to_string(), "deployments".to_string()])]
    resources: Vec<String>,
    /// Namespaces in the simulated cluster.
    #[arg(long, default_value_t = 3, value_name = "N", value_parser = values::sim_namespaces, allow_negative_numbers = true)]
    sim_namespaces: usize,
    /// Pods in the simulated cluster.
    #[arg(long, default_value_t = 12, value_name = "N", value_parser = values::sim_pods, allow_negative_numbers = true)]
    sim_pods: usize,
    /// Changes per second in the simulated cluster.
    #[arg(long, default_value = "2", value_parser = values::rate, value_name = "PER_SEC", allow_negative_numbers = true)]
    churn: f64,
    #[command(flatten)]
    stream: StreamArgs,
}

#[derive(Debug, Args)]
struct StreamArgs {
    #[command(flatten)]
    route: RouteArgs,
    #[command(flatten)]
    sinks: SinkArgs,
    /// Replay the whole cache as SYNC notifications this often (e.g. 30s, 10m, 1h); 0
    /// disables (the default).
    #[arg(long, value_parser = values::duration, value_name = "DURATION", allow_hyphen_values = true)]
    resync: Option<Duration>,
    /// Publish the objects found at start-up as ADDED (emit, the default) or only later
    /// changes (skip).
    #[arg(long, value_enum, value_name = "MODE")]
    initial_state: Option<InitialState>,
    /// Hold each informer's cache as plain JSON (none) or zstd-compressed with a dictionary
    /// trained on the informer's first objects (zstd): less memory, some CPU per change.
    #[arg(long, value_enum, value_name = "MODE")]
    cache_compression: Option<crate::informer::CacheCompression>,
    /// Publish the current state (origin "list") and exit.
    #[arg(long)]
    once: bool,
    /// Get the initial state through a watch-list stream (sendInitialEvents) instead of LIST;
    /// falls back to LIST when the server does not support it.
    #[arg(long)]
    watch_list: bool,
    /// Objects per LIST page (default 500, as client-go).
    #[arg(long, value_parser = values::page_size, value_name = "N", allow_negative_numbers = true)]
    page_size: Option<u32>,
    /// Capacity of each sink's queue (default 10000); when full, kubebridge stops reading
    /// watches.
    #[arg(long, value_parser = values::queue_capacity, value_name = "N", allow_negative_numbers = true)]
    queue_capacity: Option<usize>,
    /// Byte budget of each sink's queue, counted as the raw JSON of the queued objects
    /// and old objects (default 128MiB); enforced like --queue-capacity. Sizes like
    /// 64MiB, 1GiB.
    #[arg(long, value_parser = values::byte_size, value_name = "SIZE")]
    queue_bytes: Option<usize>,
    /// What a full sink queue does: block (the default: stop reading watches; nothing is
    /// lost) or drop-oldest (evict, count and log the oldest queued notification).
    #[arg(long, value_enum, value_name = "POLICY")]
    overflow: Option<Overflow>,
    /// A sink whose oldest unconfirmed notification is older than this is not ready
    /// (/readyz 503); with --once, a sink that also confirmed nothing for this long is
    /// given up on (exit 1). Default 60s, at least 1s.
    #[arg(long, value_parser = values::stall_timeout, value_name = "DURATION")]
    sink_stall_timeout: Option<Duration>,
    /// After SIGINT/SIGTERM, how long to keep delivering what is queued before exiting
    /// non-zero. The default, 25s, fits the default 30s terminationGracePeriodSeconds of a pod.
    #[arg(long, value_parser = values::duration, value_name = "DURATION", allow_hyphen_values = true)]
    shutdown_grace: Option<Duration>,
    /// Keep a checkpoint per informer and resume from it: file:///DIR (one file per
    /// informer in an existing directory) or configmap://[NAMESPACE]/PREFIX (ConfigMaps in
    /// kubebridge's namespace, shared by every instance under --leader-elect). A restart
    /// then sends only what changed since every sink confirmed (deletes as tombstones).
    #[arg(long, value_parser = clap::value_parser!(CheckpointUri), value_name = "URI")]
    checkpoint: Option<CheckpointUri>,
    /// How often, at most, a changing checkpoint is written (default 10s, 1s to 1h); it is
    /// also written on a clean shutdown.
    #[arg(long, value_parser = values::checkpoint_interval, value_name = "DURATION", allow_hyphen_values = true)]
    checkpoint_interval: Option<Duration>,
    /// Serve Prometheus /metrics, /healthz and /readyz on this address (e.g. 0.0.0.0:9090).
    #[arg(long, value_name = "HOST:PORT")]
    metrics_addr: Option<SocketAddr>,
    /// Also serve a read-only lister over the cache on --metrics-addr:
    /// GET /cache/{resource}?namespace=NS&labelSelector=SEL returns a Kubernetes-style List.
    #[arg(long)]
    serve_cache: bool,
    #[command(flatten)]
    security: SecurityArgs,
    #[command(flatten)]
    redaction: RedactionArgs,
    #[command(flatten)]
    leader: LeaderArgs,
    #[command(flatten)]
    limits: LimitArgs,
    /// Cluster name stamped on every notification (default: the kubeconfig context's cluster).
    #[arg(long, value_name = "NAME")]
    cluster_name: Option<String>,
}

/// Who may read --metrics-addr's /metrics and /cache, and over what (see README,
/// "Authenticated endpoints").
#[derive(Debug, Args)]
struct SecurityArgs {
    /// Who may read /metrics and /cache: none (anyone who reaches the port, the default)
    /// or kubernetes (a bearer token the API server accepts, for a user allowed to get
    /// /metrics or list the cached resource; HTTPS). /healthz and /readyz stay open.
    #[arg(long, value_enum, value_name = "MODE")]
    metrics_auth: Option<MetricsAuth>,
    /// Serve --metrics-addr over HTTPS with this PEM certificate chain (with
    /// --metrics-tls-key); with --metrics-auth kubernetes and neither, a self-signed one
    /// is generated.
    #[arg(long, value_name = "FILE")]
    metrics_tls_cert: Option<PathBuf>,
    /// The PEM private key of --metrics-tls-cert.
    #[arg(long, value_name = "FILE")]
    metrics_tls_key: Option<PathBuf>,
    /// How long an accepted token or an allowed access is remembered (default 1m, at
    /// most 1h; 0 asks the API server every time); a refusal is remembered a tenth of it.
    #[arg(long, value_parser = values::auth_cache_ttl, value_name = "DURATION")]
    metrics_auth_cache_ttl: Option<Duration>,
    /// Allow --serve-cache without --metrics-auth on an address other than loopback:
    /// every cached object to anyone who reaches the port.
    #[arg(long)]
    insecure_endpoints: bool,
}

/// What is done to every object as it is decoded (see README, "Secret redaction").
#[derive(Debug, Args)]
struct RedactionArgs {
    /// Publish Secrets' data, stringData and last-applied annotation as they are instead of
    /// their keyed hash (a warning says so at start-up); `redact` rules still apply.
    #[arg(long)]
    reveal_secrets: bool,
    /// Read the HMAC key for redacted values from this file (its contents, trailing
    /// newlines trimmed); otherwise KUBEBRIDGE_REDACTION_KEY, otherwise a random key per
    /// process (hashes then change across restarts).
    #[arg(long, value_name = "FILE")]
    redaction_key_file: Option<PathBuf>,
    /// Keep metadata.managedFields in the cache and in published objects (stripped by
    /// default: it is a fifth of a typical object's bytes and rarely of use downstream).
    #[arg(long)]
    keep_managed_fields: bool,
}

/// Bounds on what a misbehaving API server or endpoint client can make kubebridge wait
/// for or read (see README, "Failure behaviour").
#[derive(Debug, Args)]
struct LimitArgs {
    /// Drop and resume a watch that hears nothing, not even a bookmark, for this long
    /// (default 5m); also bounds a LIST or watch request whose answer stops arriving.
    #[arg(long, value_parser = values::timeout, value_name = "DURATION", allow_hyphen_values = true)]
    watch_idle_timeout: Option<Duration>,
    /// With --watch-list: fall back to LIST when the initial state has not ended within
    /// this (default 60s).
    #[arg(long, value_parser = values::timeout, value_name = "DURATION", allow_hyphen_values = true)]
    watch_list_initial_timeout: Option<Duration>,
    /// The longest watch line (one object) read (default 16MiB); a longer one is counted
    /// and reconciled by a relist.
    #[arg(long, value_parser = values::byte_size, value_name = "SIZE", allow_hyphen_values = true)]
    max_object_bytes: Option<usize>,
    /// The largest LIST page read (default 1GiB); a larger one is an error, retried with
    /// backoff: lower --page-size or raise this.
    #[arg(long, value_parser = values::byte_size, value_name = "SIZE", allow_hyphen_values = true)]
    max_page_bytes: Option<usize>,
    /// Time a --metrics-addr client has to send a request head, also between keep-alive
    /// requests (default 10s).
    #[arg(long, value_parser = values::timeout, value_name = "DURATION", allow_hyphen_values = true)]
    metrics_header_timeout: Option<Duration>,
    /// The longest one connection to --metrics-addr may live (default 2m).
    #[arg(long, value_parser = values::timeout, value_name = "DURATION", allow_hyphen_values = true)]
    metrics_connection_timeout: Option<Duration>,
    /// Connections to --metrics-addr served in full at once (default 64).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000), value_name = "N", allow_negative_numbers = true)]
    metrics_max_connections: Option<u32>,
    /// Further connections answered for /healthz and /readyz only (default 8); past both
    /// limits a new connection is closed at once.
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=1_000), value_name = "N", allow_negative_numbers = true)]
    metrics_probe_connections: Option<u32>,
}

impl LimitArgs {
    /// These flags over the defaults.
    fn limits(&self) -> Limits {
        let d = Limits::default();
        Limits {
            watch_idle_timeout: self.watch_idle_timeout.unwrap_or(d.watch_idle_timeout),
            watch_list_initial_timeout: self
                .watch_list_initial_timeout
                .unwrap_or(d.watch_list_initial_timeout),
            max_object_bytes: self.max_object_bytes.unwrap_or(d.max_object_bytes),
            max_page_bytes: self.max_page_bytes.unwrap_or(d.max_page_bytes),
            metrics_header_timeout: self
                .metrics_header_timeout
                .unwrap_or(d.metrics_header_timeout),
            metrics_connection_timeout: self
                .metrics_connection_timeout
                .unwrap_or(d.metrics_connection_timeout),
            metrics_max_connections: self
                .metrics_max_connections
                .map_or(d.metrics_max_connections, |n| n as usize),
            metrics_probe_connections: self
                .metrics_probe_connections
                .map_or(d.metrics_probe_connections, |n| n as usize),
        }
    }
}

/// The command line's route: which namespaces, which objects, which sinks.
#[derive(Debug, Args)]
struct RouteArgs {
    /// Watch this namespace; repeat for several (default: the context's namespace).
    #[arg(
        short = 'n',
        long = "namespace",
        value_name = "NS",
        value_parser = values::namespace,
        conflicts_with = "all_namespaces"
    )]
    namespaces: Vec<String>,
    /// Watch all namespaces.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// Label selector, applied by the API server (e.g. app=web,tier!=db).
    #[arg(short = 'l', long = "selector", value_name = "SELECTOR")]
    label_selector: Option<String>,
    /// Field selector, applied by the API server (e.g. metadata.name=web-1).
    #[arg(long, value_name = "SELECTOR")]
    field_selector: Option<String>,
    /// Where to send notifications (default: stdout); repeat for several: stdout,
    /// kafka://HOST:PORT[,HOST:PORT]/TOPIC, nats://[USER:PASS@]HOST:PORT/PREFIX,
    /// jetstream://HOST:PORT/PREFIX[?stream=NAME]. TOPIC may use {group} {version}
    /// {resource} {kind} {namespace}.
    #[arg(long = "sink", value_name = "URI", value_parser = values::sink_uri)]
    sinks: Vec<String>,
    #[command(flatten)]
    filters: FilterArgs,
}

/// What the command line's route publishes of what it watches (README, "Filters and
/// noise").
#[derive(Debug, Args)]
struct FilterArgs {
    /// Publish only these event types: added, modified, deleted, sync (any case;
    /// comma-separated or repeated). Default: all.
    #[arg(long = "types", value_name = "TYPES", value_parser = values::event_types)]
    types: Vec<String>,
    /// Publish only notifications for which this CEL expression is true; it sees object,
    /// oldObject (null when absent), type and origin, and the Kubernetes CEL libraries.
    /// An evaluation error publishes the notification (counted and logged).
    #[arg(long, value_name = "EXPR", value_parser = values::cel_filter, allow_hyphen_values = true)]
    filter: Option<String>,
    /// Publish MODIFIED notifications even when only metadata.resourceVersion,
    /// metadata.managedFields or an --ignore-field changed.
    #[arg(long)]
    no_suppress: bool,
    /// A JSON pointer (`*` = any index or key) whose changes alone do not make a MODIFIED
    /// worth publishing, e.g. /status/conditions/*/lastHeartbeatTime; repeatable.
    #[arg(long = "ignore-field", value_name = "POINTER", value_parser = values::json_pointer)]
    ignore_fields: Vec<String>,
    /// Keep only this JSON pointer (`*` = any index or key) in published objects, e.g.
    /// /metadata/name; repeatable. A MODIFIED that changes none of them is not published.
    #[arg(long = "field", value_name = "POINTER", value_parser = values::json_pointer)]
    fields: Vec<String>,
    /// Add `patch`, an RFC 6902 JSON Patch from oldObject to object, to every MODIFIED.
    #[arg(long)]
    diff: bool,
    /// Whether MODIFIED notifications carry oldObject: full (the default) or none.
    #[arg(long, value_enum, value_name = "MODE")]
    old_object: Option<crate::filter::OldObject>,
}

impl FilterArgs {
    fn config(self) -> Result<crate::filter::FilterConfig, CliExit> {
        Ok(crate::filter::FilterConfig {
            types: crate::filter::parse_types(&self.types)
                .map_err(|e| CliExit::Usage(format!("--types: {e}")))?,
            filter: self.filter,
            suppress: !self.no_suppress,
            ignore_fields: self.ignore_fields,
            fields: self.fields,
            diff: self.diff,
            old_object: self.old_object.unwrap_or_default(),
        })
    }
}

/// Sink settings; a route of the config file may override them.
#[derive(Debug, Args)]
struct SinkArgs {
    /// A librdkafka property for the Kafka sinks, like kcat: -X security.protocol=SASL_SSL;
    /// repeatable.
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = values::kafka_property)]
    kafka_properties: Vec<(String, String)>,
    /// Kafka message key: namespace/name (the default: per-object order, compaction),
    /// name, uid or none.
    #[arg(long, value_name = "KEY", value_parser = values::kafka_key)]
    kafka_key: Option<KeyMode>,
    /// Message layout on Kafka and NATS: envelope (the default), cloudevents (structured
    /// JSON) or cloudevents-binary (attributes as headers). stdout always writes envelopes.
    #[arg(long, value_name = "FORMAT", value_parser = values::format)]
    format: Option<Format>,
    /// CloudEvents `source` (default: the cluster name).
    #[arg(long, value_name = "URI-REFERENCE")]
    cloudevents_source: Option<String>,
    /// NATS subject after PREFIX., with {group} {version} {resource} {kind} {namespace} {name}
    /// (default: {group}.{version}.{resource}.{namespace}.{name}).
    #[arg(long, value_name = "TEMPLATE")]
    subject_template: Option<String>,
    /// NATS credentials (.creds) file.
    #[arg(long, value_name = "FILE")]
    nats_creds: Option<PathBuf>,
    /// CA certificate to verify NATS servers with (turns TLS on).
    #[arg(long, value_name = "FILE")]
    nats_ca: Option<PathBuf>,
}

/// `--leader-elect` and its settings (client-go's defaults).
#[derive(Debug, Args)]
struct LeaderArgs {
    /// Run informers and sinks only while holding a coordination.k8s.io Lease, so several
    /// replicas can run: one leads, the others stand by and take over.
    #[arg(long)]
    leader_elect: bool,
    /// Namespace of the Lease (default: the context's namespace; in a pod, the pod's).
    #[arg(long, value_name = "NS", requires = "leader_elect", value_parser = values::namespace)]
    leader_elect_namespace: Option<String>,
    /// Name of the Lease.
    #[arg(long, default_value = "kubebridge", value_name = "NAME")]
    leader_elect_name: String,
    /// This instance's identity in the Lease (default: $POD_NAME, else hostname_pid).
    #[arg(long, value_name = "ID")]
    leader_elect_identity: Option<String>,
    /// How long a lease lasts unrenewed before a standby takes over (client-go: 15s).
    #[arg(long, default_value = "15s", value_parser = values::duration, value_name = "DURATION", allow_hyphen_values = true)]
    leader_elect_lease_duration: Duration,
    /// How long the leader keeps trying to renew before it stops (client-go: 10s).
    #[arg(long, default_value = "10s", value_parser = values::duration, value_name = "DURATION", allow_hyphen_values = true)]
    leader_elect_renew_deadline: Duration,
    /// How often to try to acquire or renew (client-go: 2s).
    #[arg(long, default_value = "2s", value_parser = values::duration, value_name = "DURATION", allow_hyphen_values = true)]
    leader_elect_retry_period: Duration,
}

#[derive(Debug, Args)]
struct SimArgs {
    /// Address to serve the API on.
    #[arg(long, default_value = "127.0.0.1:8001", value_name = "HOST:PORT")]
    listen: SocketAddr,
    /// Namespaces to create.
    #[arg(long, default_value_t = 3, value_name = "N", value_parser = values::sim_namespaces, allow_negative_numbers = true)]
    namespaces: usize,
    /// Pods to create, spread over the namespaces.
    #[arg(long, default_value_t = 30, value_name = "N", value_parser = values::sim_pods, allow_negative_numbers = true)]
    pods: usize,
    /// Deployments per namespace.
    #[arg(long, default_value_t = 2, value_name = "N", value_parser = values::sim_deployments, allow_negative_numbers = true)]
    deployments_per_namespace: usize,
    /// Background changes per second (0 = none).
    #[arg(long, default_value = "0", value_parser = values::rate, value_name = "PER_SEC", allow_negative_numbers = true)]
    churn: f64,
    /// Watch history window in events; watches from older resourceVersions get 410 Gone.
    #[arg(long, default_value_t = 10_000, value_name = "EVENTS", value_parser = values::sim_history, allow_negative_numbers = true)]
    history: usize,
    /// Write a kubeconfig for the simulator to this path.
    #[arg(long, value_name = "PATH")]
    write_kubeconfig: Option<PathBuf>,
    /// Random seed, for reproducible objects and churn.
    #[arg(long, default_value_t = 1, value_name = "N")]
    seed: u64,
    /// Give the generated pods metadata.managedFields, as a real API server does.
    #[arg(long)]
    managed_fields: bool,
    /// Serve a pre-built LIST of N pods and a pre-built watch stream of their changes
    /// as fast as the socket takes them (a feed for benchmarks; pods only, no writes).
    #[arg(long, value_name = "N", value_parser = values::replay_pods, conflicts_with_all = ["pods", "churn", "deployments_per_namespace", "history"])]
    replay: Option<usize>,
    /// With --replay: MODIFIED events in the watch stream, cycling over the pods.
    #[arg(long, default_value_t = 100_000, value_name = "N", value_parser = values::replay_events, requires = "replay")]
    replay_events: usize,
}

/// Why parsing stopped.
#[derive(Debug)]
pub enum CliExit {
    /// `--help` or `--version`: print this to stdout and exit 0.
    Info(String),
    /// A usage error: print this one line and exit 2.
    Usage(String),
}

/// Parses and validates the command line.
pub fn parse<I, T>(args: I) -> Result<(Command, Logging), CliExit>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = Cli::try_parse_from(args).map_err(|e| match e.kind() {
        clap::error::ErrorKind::DisplayHelp
        | clap::error::ErrorKind::DisplayVersion
        | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            CliExit::Info(e.render().to_string())
        }
        _ => CliExit::Usage(one_line(&e)),
    })?;
    let logging = Logging {
        level: cli.log_level,
        format: cli.log_format,
    };
    let command = match cli.command {
        CommandArgs::Watch(w) => watch(w)?,
        CommandArgs::Demo(d) => {
            let merged = d.stream.merge(Some(&d.resources), None)?;
            Command::Demo {
                stream: merged.stream,
                sim: SimOptions {
                    listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                    namespaces: d.sim_namespaces.max(1),
                    pods: d.sim_pods,
                    deployments_per_namespace: 2,
                    churn_per_sec: d.churn,
                    history: 10_000,
                    write_kubeconfig: None,
                    seed: 1,
                    managed_fields: false,
                    replay: None,
                },
            }
        }
        CommandArgs::CheckConfig(c) => {
            let file = super::file::load(&c.file).map_err(CliExit::Usage)?;
            let merged = merge::merge(
                Layer::default(),
                Some(&file),
                None,
                CommandLineOnly::default(),
            )
            .map_err(|e| CliExit::Usage(format!("--config {}: {e}", c.file.display())))?;
            Command::CheckConfig {
                path: c.file,
                stream: merged.stream,
            }
        }
        CommandArgs::Rbac(r) => rbac(r)?,
        CommandArgs::Sim(s) => Command::Sim(SimOptions {
            listen: s.listen,
            namespaces: s.namespaces,
            pods: s.pods,
            deployments_per_namespace: s.deployments_per_namespace,
            churn_per_sec: s.churn,
            history: s.history.max(1),
            write_kubeconfig: s.write_kubeconfig,
            seed: s.seed,
            managed_fields: s.managed_fields,
            replay: s.replay.map(|pods| ReplayOptions {
                pods,
                events: s.replay_events,
            }),
        }),
    };
    Ok((command, logging))
}

/// `rbac`: the resources and what else to grant, every name already checked.
fn rbac(r: RbacArgs) -> Result<Command, CliExit> {
    let metrics_auth = r.metrics_auth == MetricsAuth::Kubernetes;
    if r.prometheus_service_account.is_some() && !metrics_auth {
        return Err(CliExit::Usage(
            "--prometheus-service-account needs --metrics-auth kubernetes (without it /metrics asks for no token)".into(),
        ));
    }
    let lease_namespace = r
        .leader_elect_namespace
        .unwrap_or_else(|| r.service_account_namespace.clone());
    // A configmap:// store without a namespace is in kubebridge's own, as in `watch`
    // (the pod's namespace, where its ServiceAccount is).
    let service_account_namespace = r.service_account_namespace.clone();
    Ok(Command::Rbac {
        cluster: r.cluster.config(None),
        resources: values::resources(&r.resources).map_err(CliExit::Usage)?,
        grants: RbacGrants {
            name: r.name,
            service_account_namespace: r.service_account_namespace,
            namespaces: r.namespaces,
            lease: r
                .leader_elect
                .then_some((lease_namespace, r.leader_elect_name)),
            metrics_auth,
            prometheus: r.prometheus_service_account,
            checkpoint: r.checkpoint.map(|uri| CheckpointGrant {
                configmap_namespace: match uri {
                    CheckpointUri::File(_) => None,
                    CheckpointUri::ConfigMap { namespace, .. } => {
                        Some(namespace.unwrap_or(service_account_namespace))
                    }
                },
            }),
        },
    })
}

/// `watch`: the command line's route (when RESOURCE is given) and flags over the file.
fn watch(w: WatchArgs) -> Result<Command, CliExit> {
    let file = match &w.config {
        Some(path) => Some((path, super::file::load(path).map_err(CliExit::Usage)?)),
        None => None,
    };
    let resources = (!w.resources.is_empty()).then_some(w.resources.as_slice());
    let merged = w
        .stream
        .merge(resources, file.as_ref().map(|(p, f)| (p.as_path(), f)))?;
    Ok(Command::Watch {
        cluster: w.cluster.config(merged.cluster_name),
        stream: merged.stream,
    })
}

/// clap's message on one line, without its "error: " prefix, plus where to find help.
/// A first line that ends in ':' introduces a list (the arguments not provided), whose
/// indented lines are joined to it; the usage and tips after it are left out.
fn one_line(e: &clap::Error) -> String {
    if let Some(line) = invalid_value_line(e) {
        return format!("{line} (see kubebridge --help)");
    }
    let text = e.render().to_string();
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("invalid arguments");
    let mut line = first.strip_prefix("error: ").unwrap_or(first).to_owned();
    if line.ends_with(':') {
        let listed: Vec<&str> = lines
            .take_while(|l| l.starts_with(' ') && !l.trim().is_empty())
            .map(str::trim)
            .collect();
        if !listed.is_empty() {
            line.push(' ');
            line.push_str(&listed.join(", "));
        }
    }
    format!("{line} (see kubebridge --help)")
}

/// A value a parser rejected, on one line: clap quotes the value as it is, so a value
/// holding a newline (a crafted `--name`) would spread the message over several lines,
/// and a secret would be printed. The value is shown escaped (`{:?}`), and masked when
/// it belongs to an argument that carries secrets: a `-X` written
/// `sasl.password:hunter2` (no `=`), a `--sink` with a password.
fn invalid_value_line(e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::ValueValidation {
        return None;
    }
    let (Some(ContextValue::String(arg)), Some(ContextValue::String(value))) = (
        e.get(ContextKind::InvalidArg),
        e.get(ContextKind::InvalidValue),
    ) else {
        return None;
    };
    let shown = if arg.starts_with("-X") {
        "***".to_owned()
    } else if arg.starts_with("--sink") {
        kubebridge_sinks::redact(value)
    } else {
        value.clone()
    };
    let reason = std::error::Error::source(e)
        .map(|s| s.to_string().replace('\n', " "))
        .unwrap_or_else(|| "not accepted".to_owned());
    Some(format!("invalid value {shown:?} for '{arg}': {reason}"))
}

impl StreamArgs {
    /// Merges these flags (and the route of `resources`, when given) over `file`.
    fn merge(
        self,
        resources: Option<&[String]>,
        file: Option<(&std::path::Path, &super::file::FileConfig)>,
    ) -> Result<merge::Merged, CliExit> {
        let filters = self.route.filters.config()?;
        if resources.is_none() && !filters.is_default() {
            return Err(CliExit::Usage(
                "--types, --filter, --no-suppress, --ignore-field, --field, --diff and --old-object apply to the command line's route: give RESOURCE, or set them on a route of the --config file".into(),
            ));
        }
        let route = match resources {
            Some(names) => Some(RouteFlags {
                resources: values::resources(names).map_err(CliExit::Usage)?,
                namespaces: values::namespace_scope(
                    self.route.all_namespaces,
                    &self.route.namespaces,
                )
                .map_err(CliExit::Usage)?,
                label_selector: self.route.label_selector,
                field_selector: self.route.field_selector,
                sinks: self.route.sinks,
                filters,
            }),
            None => None,
        };
        let only = CommandLineOnly {
            once: self.once,
            watch_list: self.watch_list,
            page_size: self.page_size,
            limits: self.limits.limits(),
            leader_election: self
                .leader
                .leader_elect
                .then(|| self.leader.election())
                .transpose()?,
        };
        let flags = Layer {
            cluster_name: self.cluster_name,
            resync: self.resync,
            initial_state: self.initial_state,
            cache_compression: self.cache_compression,
            queue_capacity: self.queue_capacity,
            queue_bytes: self.queue_bytes,
            overflow: self.overflow,
            sink_stall_timeout: self.sink_stall_timeout,
            shutdown_grace: self.shutdown_grace,
            metrics_addr: self.metrics_addr,
            // A switch given says true; absent, it says nothing.
            serve_cache: self.serve_cache.then_some(true),
            metrics_auth: self.security.metrics_auth,
            metrics_tls_cert: self.security.metrics_tls_cert,
            metrics_tls_key: self.security.metrics_tls_key,
            metrics_auth_cache_ttl: self.security.metrics_auth_cache_ttl,
            insecure_endpoints: self.security.insecure_endpoints.then_some(true),
            checkpoint: self.checkpoint,
            checkpoint_interval: self.checkpoint_interval,
            reveal_secrets: self.redaction.reveal_secrets.then_some(true),
            keep_managed_fields: self.redaction.keep_managed_fields.then_some(true),
            redaction_key_file: self.redaction.redaction_key_file,
            sinks: SinkLayer {
                format: self.sinks.format,
                cloudevents_source: self.sinks.cloudevents_source,
                kafka_key: self.sinks.kafka_key,
                kafka_properties: (!self.sinks.kafka_properties.is_empty())
                    .then_some(self.sinks.kafka_properties),
                subject_template: self.sinks.subject_template,
                nats_creds: self.sinks.nats_creds,
                nats_ca: self.sinks.nats_ca,
            },
        };
        merge::merge(flags, file.map(|(_, f)| f), route, only).map_err(|e| match file {
            Some((path, _)) => CliExit::Usage(format!("--config {}: {e}", path.display())),
            None => CliExit::Usage(e),
        })
    }
}

impl LeaderArgs {
    fn election(&self) -> Result<LeaderElection, CliExit> {
        let identity = self
            .leader_elect_identity
            .clone()
            .or_else(|| std::env::var("POD_NAME").ok().filter(|p| !p.is_empty()))
            .unwrap_or_else(|| {
                let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .map(|h| h.trim().to_owned())
                    .unwrap_or_else(|_| "kubebridge".into());
                format!("{host}_{}", std::process::id())
            });
        let lease = LeaseConfig {
            namespace: String::new(),
            name: self.leader_elect_name.clone(),
            identity,
            lease_duration: self.leader_elect_lease_duration,
            renew_deadline: self.leader_elect_renew_deadline,
            retry_period: self.leader_elect_retry_period,
        };
        // Everything the flags say is checked now, with the namespace given (if any), so
        // a bad name or identity is a usage error before anything connects; the context's
        // namespace is checked where it becomes known.
        LeaseConfig {
            namespace: self.leader_elect_namespace.clone().unwrap_or_default(),
            ..lease.clone()
        }
        .validate()
        .map_err(CliExit::Usage)?;
        Ok(LeaderElection {
            namespace: self.leader_elect_namespace.clone(),
            lease,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{NamespaceScope, StreamConfig};

    fn parse_ok(args: &[&str]) -> Command {
        match parse(std::iter::once("kubebridge").chain(args.iter().copied())) {
            Ok((c, _)) => c,
            Err(e) => panic!("{args:?}: {e:?}"),
        }
    }

    fn usage(args: &[&str]) -> String {
        match parse(std::iter::once("kubebridge").chain(args.iter().copied())) {
            Err(CliExit::Usage(m)) => m,
            other => panic!("{args:?} should be a usage error, got {other:?}"),
        }
    }

    fn watch(args: &[&str]) -> (StreamConfig, ClusterConfig) {
        match parse_ok(args) {
            Command::Watch { stream, cluster } => (stream, cluster),
            other => panic!("not a watch: {other:?}"),
        }
    }

    #[test]
    fn watch_defaults_follow_kubectl() {
        let (stream, cluster) = watch(&["watch", "po"]);
        let [route] = stream.routes.as_slice() else {
            panic!("one route: {stream:?}")
        };
        assert_eq!(route.name, crate::config::COMMAND_LINE_ROUTE);
        assert_eq!(route.namespaces, NamespaceScope::ContextDefault);
        assert_eq!(route.sinks, ["stdout"]);
        assert_eq!(route.sink_options.format, Format::Envelope);
        assert_eq!(stream.resync, None);
        assert_eq!(stream.initial_state, InitialState::Emit);
        assert_eq!(stream.page_size, 500);
        assert_eq!(stream.shutdown_grace, Duration::from_secs(25));
        assert_eq!(stream.queue_bytes, 128 << 20);
        assert_eq!(stream.sink_stall_timeout, Duration::from_secs(60));
        assert_eq!(cluster, ClusterConfig::default());
    }

    #[test]
    fn several_namespaces_and_durations() {
        let (stream, _) = watch(&[
            "watch", "pods", "cm", "-n", "a", "-n", "b", "--resync", "1h30m", "-l", "app=x",
        ]);
        let route = &stream.routes[0];
        assert_eq!(
            route.namespaces,
            NamespaceScope::Only(vec!["a".into(), "b".into()])
        );
        assert_eq!(stream.resync, Some(Duration::from_secs(5400)));
        assert_eq!(route.label_selector.as_deref(), Some("app=x"));
        assert_eq!(route.resources, ["pods", "cm"]);
        let (stream, _) = watch(&["watch", "deploy,po", "cm"]);
        assert_eq!(stream.routes[0].resources, ["deploy", "po", "cm"]);
    }

    #[test]
    fn flags_are_typed() {
        let (stream, _) = watch(&[
            "watch",
            "po",
            "--format",
            "cloudevents-binary",
            "--kafka-key",
            "uid",
            "-X",
            "acks=all",
            "--overflow",
            "drop-oldest",
            "--queue-bytes",
            "64MiB",
            "--sink-stall-timeout",
            "2s",
        ]);
        let options = &stream.routes[0].sink_options;
        assert_eq!(options.format, Format::CloudEventsBinary);
        assert_eq!(options.kafka_key, KeyMode::Uid);
        assert_eq!(options.kafka_properties, [("acks".into(), "all".into())]);
        assert_eq!(stream.overflow, Overflow::DropOldest);
        assert_eq!(stream.queue_bytes, 64 << 20);
        assert_eq!(stream.sink_stall_timeout, Duration::from_secs(2));
    }

    #[test]
    fn bad_input_is_one_clear_line() {
        for (args, expected) in [
            (
                &["watch", "pods", "--resync", "5 parsecs"][..],
                "invalid duration",
            ),
            (
                &["watch", "pods", "--resync", "300000000000y"][..],
                "longest accepted",
            ),
            (
                &["watch", "pods", "--shutdown-grace", "300000000000y"][..],
                "--shutdown-grace",
            ),
            (&["watch", "pods", "-X", "acks"][..], "KEY=VALUE"),
            (
                &["watch", "pods", "--kafka-key", "color"][..],
                "--kafka-key",
            ),
            (&["watch", "pods", "--format", "xml"][..], "--format"),
            (&["watch", "pods", "--sink", " "][..], "the sink is empty"),
            (&["watch", "pods", "-n", "Shop_1"][..], "invalid namespace"),
            (
                &["watch", "pods", "-n", "a", "-A"][..],
                "cannot be used with",
            ),
            (&["watch"][..], "not provided: <RESOURCE>..."),
            (&["check-config"][..], "not provided: <FILE>"),
            (
                &["watch", "pods", "--leader-elect-namespace", "ns"][..],
                "not provided: --leader-elect",
            ),
            (&["watch", "pods", "--resync", "-1s"][..], "--resync"),
            (
                &["watch", "pods", "--page-size", "4000000000"][..],
                "--page-size",
            ),
            (&["watch", "pods", "--page-size", "-5"][..], "--page-size"),
            (
                &["watch", "pods", "--queue-capacity", "99999999999"][..],
                "--queue-capacity",
            ),
            (&["watch", "pods", "--log-level", "loud"][..], "--log-level"),
            (&["demo", "--churn", "1e300"][..], "--churn"),
            (&["demo", "--sim-pods", "99999999999"][..], "--sim-pods"),
            (&["sim", "--history", "99999999999999"][..], "--history"),
            (&["sim", "--pods", "-1"][..], "--pods"),
            (
                &["watch", "pods", "--once", "--initial-state", "skip"][..],
                "--once",
            ),
            (&["watch", "pods", "--page-size", "0"][..], "--page-size"),
            (
                &["watch", "pods", "--queue-capacity", "0"][..],
                "--queue-capacity",
            ),
            (
                &["watch", "pods", "--queue-bytes", "0"][..],
                "--queue-bytes",
            ),
            (
                &["watch", "pods", "--queue-bytes", "lots"][..],
                "--queue-bytes",
            ),
            (
                &["watch", "pods", "--sink-stall-timeout", "10ms"][..],
                "--sink-stall-timeout",
            ),
            (&["watch", "po,"][..], "resource name is empty"),
            (&["watch", "pods", "--bogus"][..], "--bogus"),
            (&["demo", "--churn=-1"][..], "--churn"),
        ] {
            let msg = usage(args);
            assert!(msg.contains(expected), "{args:?}: {msg}");
            assert!(!msg.contains('\n'), "{args:?}: {msg}");
        }
    }
}
