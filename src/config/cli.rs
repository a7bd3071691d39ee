//! Command-line flags (clap), following kubectl's conventions, validated into a [`Command`].

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use kubebridge_sinks::{Format, KeyMode, SinkOptions};

use crate::config::{
    ClusterConfig, Command, InitialState, LeaderElection, NamespaceScope, SimOptions, StreamConfig,
    default_queue_capacity,
};
use crate::informer::reflector::default_page_size;
use crate::leader::LeaseConfig;
use crate::queue::Overflow;

/// Turns a Kubernetes cluster's object changes into a stream other systems can trust.
#[derive(Debug, Parser)]
#[command(name = "kubebridge", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: CommandArgs,
    /// Log level for stderr (error, warn, info, debug, trace); RUST_LOG overrides it.
    #[arg(long, global = true, default_value = "warn", value_name = "LEVEL")]
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
    /// Print the least-privilege ClusterRole (get, list, watch) for streaming RESOURCE.
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
    /// The ClusterRole's name.
    #[arg(long, default_value = "kubebridge", value_name = "NAME")]
    name: String,
    /// Path to the kubeconfig file (default: KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, value_name = "PATH")]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: its current context).
    #[arg(long, value_name = "NAME")]
    context: Option<String>,
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
    /// Path to the kubeconfig file (default: KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, value_name = "PATH")]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: its current context).
    #[arg(long, value_name = "NAME")]
    context: Option<String>,
    #[command(flatten)]
    stream: StreamArgs,
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// Resources to watch in the simulated cluster.
    #[arg(value_name = "RESOURCE", default_values_t = ["pods".to_string(), "deployments".to_string()])]
    resources: Vec<String>,
    /// Namespaces in the simulated cluster.
    #[arg(long, default_value_t = 3, value_name = "N")]
    sim_namespaces: usize,
    /// Pods in the simulated cluster.
    #[arg(long, default_value_t = 12, value_name = "N")]
    sim_pods: usize,
    /// Changes per second in the simulated cluster.
    #[arg(long, default_value_t = 2.0, value_name = "PER_SEC")]
    churn: f64,
    #[command(flatten)]
    stream: StreamArgs,
}

#[derive(Debug, Args)]
struct StreamArgs {
    /// Watch this namespace; repeat for several (default: the context's namespace).
    #[arg(
        short = 'n',
        long = "namespace",
        value_name = "NS",
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
    /// Where to send notifications; repeat for several: stdout,
    /// kafka://HOST:PORT[,HOST:PORT]/TOPIC, nats://[USER:PASS@]HOST:PORT/PREFIX,
    /// jetstream://HOST:PORT/PREFIX[?stream=NAME]. TOPIC may use {group} {version}
    /// {resource} {kind} {namespace}.
    #[arg(long = "sink", value_name = "URI", default_value = "stdout")]
    sinks: Vec<String>,
    /// A librdkafka property for the Kafka sinks, like kcat: -X security.protocol=SASL_SSL;
    /// repeatable.
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    kafka_properties: Vec<String>,
    /// Kafka message key: namespace/name (per-object order, compaction), name, uid or none.
    #[arg(long, default_value = "namespace/name", value_name = "KEY")]
    kafka_key: String,
    /// Message layout on Kafka and NATS: envelope, cloudevents (structured JSON) or
    /// cloudevents-binary (attributes as headers). stdout always writes envelopes.
    #[arg(long, default_value = "envelope", value_name = "FORMAT")]
    format: String,
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
    /// Replay the whole cache as SYNC notifications this often (e.g. 30s, 10m, 1h); 0 disables.
    #[arg(long, value_name = "DURATION", default_value = "0")]
    resync: String,
    /// Publish the objects found at start-up as ADDED (emit) or only later changes (skip).
    #[arg(long, value_enum, default_value = "emit", value_name = "MODE")]
    initial_state: InitialState,
    /// Publish the current state (origin "list") and exit.
    #[arg(long)]
    once: bool,
    /// Get the initial state through a watch-list stream (sendInitialEvents) instead of LIST;
    /// falls back to LIST when the server does not support it.
    #[arg(long)]
    watch_list: bool,
    /// Objects per LIST page.
    #[arg(long, default_value_t = default_page_size(), value_name = "N")]
    page_size: u32,
    /// Capacity of each sink's queue; when full, kubebridge stops reading watches.
    #[arg(long, default_value_t = default_queue_capacity(), value_name = "N")]
    queue_capacity: usize,
    /// What a full sink queue does: block (stop reading watches; nothing is lost) or
    /// drop-oldest (evict, count and log the oldest queued notification).
    #[arg(long, value_enum, default_value = "block", value_name = "POLICY")]
    overflow: Overflow,
    /// After SIGINT/SIGTERM, how long to keep delivering what is queued before exiting
    /// non-zero. 25s fits the default 30s terminationGracePeriodSeconds of a pod.
    #[arg(long, default_value = "25s", value_name = "DURATION")]
    shutdown_grace: String,
    /// Serve Prometheus /metrics, /healthz and /readyz on this address (e.g. 0.0.0.0:9090).
    #[arg(long, value_name = "HOST:PORT")]
    metrics_addr: Option<SocketAddr>,
    /// Also serve a read-only lister over the cache on --metrics-addr:
    /// GET /cache/{resource}?namespace=NS&labelSelector=SEL returns a Kubernetes-style List.
    #[arg(long, requires = "metrics_addr")]
    serve_cache: bool,
    /// Run informers and sinks only while holding a coordination.k8s.io Lease, so several
    /// replicas can run: one leads, the others stand by and take over.
    #[arg(long)]
    leader_elect: bool,
    /// Namespace of the Lease (default: the context's namespace; in a pod, the pod's).
    #[arg(long, value_name = "NS", requires = "leader_elect")]
    leader_elect_namespace: Option<String>,
    /// Name of the Lease.
    #[arg(long, default_value = "kubebridge", value_name = "NAME")]
    leader_elect_name: String,
    /// This instance's identity in the Lease (default: $POD_NAME, else hostname_pid).
    #[arg(long, value_name = "ID")]
    leader_elect_identity: Option<String>,
    /// How long a lease lasts unrenewed before a standby takes over (client-go: 15s).
    #[arg(long, default_value = "15s", value_name = "DURATION")]
    leader_elect_lease_duration: String,
    /// How long the leader keeps trying to renew before it stops (client-go: 10s).
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    leader_elect_renew_deadline: String,
    /// How often to try to acquire or renew (client-go: 2s).
    #[arg(long, default_value = "2s", value_name = "DURATION")]
    leader_elect_retry_period: String,
    /// Cluster name stamped on every notification (default: the kubeconfig context's cluster).
    #[arg(long, value_name = "NAME")]
    cluster_name: Option<String>,
}

#[derive(Debug, Args)]
struct SimArgs {
    /// Address to serve the API on.
    #[arg(long, default_value = "127.0.0.1:8001", value_name = "HOST:PORT")]
    listen: SocketAddr,
    /// Namespaces to create.
    #[arg(long, default_value_t = 3, value_name = "N")]
    namespaces: usize,
    /// Pods to create, spread over the namespaces.
    #[arg(long, default_value_t = 30, value_name = "N")]
    pods: usize,
    /// Deployments per namespace.
    #[arg(long, default_value_t = 2, value_name = "N")]
    deployments_per_namespace: usize,
    /// Background changes per second (0 = none).
    #[arg(long, default_value_t = 0.0, value_name = "PER_SEC")]
    churn: f64,
    /// Watch history window in events; watches from older resourceVersions get 410 Gone.
    #[arg(long, default_value_t = 10_000, value_name = "EVENTS")]
    history: usize,
    /// Write a kubeconfig for the simulator to this path.
    #[arg(long, value_name = "PATH")]
    write_kubeconfig: Option<PathBuf>,
    /// Random seed, for reproducible objects and churn.
    #[arg(long, default_value_t = 1)]
    seed: u64,
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
    let clap_exit = |e: clap::Error| match e.kind() {
        clap::error::ErrorKind::DisplayHelp
        | clap::error::ErrorKind::DisplayVersion
        | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            CliExit::Info(e.render().to_string())
        }
        _ => CliExit::Usage(one_line(&e)),
    };
    let matches = <Cli as clap::CommandFactory>::command()
        .try_get_matches_from(args)
        .map_err(clap_exit)?;
    let cli = <Cli as clap::FromArgMatches>::from_arg_matches(&matches).map_err(clap_exit)?;
    let command = match cli.command {
        CommandArgs::Watch(w) => {
            let sub = matches.subcommand_matches("watch");
            // A flag counts as given only when typed, not when it holds its default.
            let typed = |id: &str| {
                sub.and_then(|m| m.value_source(id)) == Some(clap::parser::ValueSource::CommandLine)
            };
            let file = match &w.config {
                Some(path) => Some(crate::config::file::load(path).map_err(CliExit::Usage)?),
                None => None,
            };
            let mut cluster_name = w.stream.cluster_name.clone();
            let mut stream = w.stream.validate(w.resources)?;
            if let Some(file) = file {
                if !typed("cluster_name") && file.cluster_name.is_some() {
                    cluster_name = file.cluster_name.clone();
                }
                apply_file(&mut stream, file, &typed)?;
            }
            Command::Watch {
                cluster: ClusterConfig {
                    kubeconfig: w.kubeconfig,
                    context: w.context,
                    cluster_name,
                },
                stream,
            }
        }
        CommandArgs::Demo(d) => Command::Demo {
            stream: d.stream.validate(d.resources)?,
            sim: SimOptions {
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                namespaces: d.sim_namespaces.max(1),
                pods: d.sim_pods,
                deployments_per_namespace: 2,
                churn_per_sec: non_negative(d.churn, "--churn")?,
                history: 10_000,
                write_kubeconfig: None,
                seed: 1,
            },
        },
        CommandArgs::CheckConfig(c) => {
            let file = crate::config::file::load(&c.file).map_err(CliExit::Usage)?;
            let mut stream = StreamConfig::new(Vec::<String>::new());
            stream.sinks.clear();
            apply_file(&mut stream, file, &|_| false)?;
            Command::CheckConfig {
                path: c.file,
                stream,
            }
        }
        CommandArgs::Rbac(r) => Command::Rbac {
            cluster: ClusterConfig {
                kubeconfig: r.kubeconfig,
                context: r.context,
                cluster_name: None,
            },
            resources: split_resources(&r.resources),
            name: r.name,
        },
        CommandArgs::Sim(s) => Command::Sim(SimOptions {
            listen: s.listen,
            namespaces: s.namespaces,
            pods: s.pods,
            deployments_per_namespace: s.deployments_per_namespace,
            churn_per_sec: non_negative(s.churn, "--churn")?,
            history: s.history.max(1),
            write_kubeconfig: s.write_kubeconfig,
            seed: s.seed,
        }),
    };
    Ok((
        command,
        Logging {
            level: cli.log_level,
            format: cli.log_format,
        },
    ))
}

/// clap's first line, without its "error: " prefix, plus where to find help.
fn one_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let first = text.lines().next().unwrap_or("invalid arguments");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    format!("{first} (see kubebridge --help)")
}

fn non_negative(v: f64, flag: &str) -> Result<f64, CliExit> {
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(CliExit::Usage(format!(
            "{flag} must be a number of changes per second, 0 or more; got {v}"
        )))
    }
}

impl StreamArgs {
    fn validate(self, resources: Vec<String>) -> Result<StreamConfig, CliExit> {
        for ns in &self.namespaces {
            if !is_dns_label(ns) {
                return Err(CliExit::Usage(format!(
                    "invalid namespace {ns:?}: a namespace is lower-case letters, digits and '-', at most 63 characters"
                )));
            }
        }
        let namespaces = if self.all_namespaces {
            NamespaceScope::All
        } else if self.namespaces.is_empty() {
            NamespaceScope::ContextDefault
        } else {
            let mut list = self.namespaces;
            list.dedup();
            NamespaceScope::Only(list)
        };
        let sink_options = SinkOptions {
            format: parse_format(&self.format)?,
            cloudevents_source: self.cloudevents_source,
            kafka_properties: self
                .kafka_properties
                .iter()
                .map(|p| match p.split_once('=') {
                    Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
                    _ => Err(CliExit::Usage(format!(
                        "-X {p:?}: write a librdkafka property as KEY=VALUE"
                    ))),
                })
                .collect::<Result<_, _>>()?,
            kafka_key: self
                .kafka_key
                .parse::<KeyMode>()
                .map_err(|e| CliExit::Usage(format!("--kafka-key: {e}")))?,
            subject_template: self.subject_template,
            nats_credentials: self.nats_creds,
            nats_ca: self.nats_ca,
            ..SinkOptions::default()
        };
        if self.sinks.iter().any(|s| s.trim().is_empty()) {
            return Err(CliExit::Usage(
                "--sink is empty; name a sink like stdout or kafka://HOST:PORT/TOPIC".into(),
            ));
        }
        let resync =
            parse_duration(&self.resync).map_err(|e| CliExit::Usage(format!("--resync: {e}")))?;
        if self.once && self.initial_state == InitialState::Skip {
            return Err(CliExit::Usage(
                "--once publishes the initial state and exits, so it cannot be combined with --initial-state skip".into(),
            ));
        }
        if self.page_size == 0 {
            return Err(CliExit::Usage("--page-size must be at least 1".into()));
        }
        if self.queue_capacity == 0 {
            return Err(CliExit::Usage("--queue-capacity must be at least 1".into()));
        }
        let resources = split_resources(&resources);
        if resources.iter().any(|r| r.is_empty()) {
            return Err(CliExit::Usage(
                "a RESOURCE name is empty; name one like pods or deployments.apps".into(),
            ));
        }
        Ok(StreamConfig {
            resources,
            namespaces,
            label_selector: self.label_selector.filter(|s| !s.trim().is_empty()),
            field_selector: self.field_selector.filter(|s| !s.trim().is_empty()),
            sinks: self.sinks,
            sink_options,
            resync: (!resync.is_zero()).then_some(resync),
            initial_state: self.initial_state,
            once: self.once,
            watch_list: self.watch_list,
            page_size: self.page_size,
            queue_capacity: self.queue_capacity,
            overflow: self.overflow,
            routes: Vec::new(),
            metrics_addr: self.metrics_addr,
            serve_cache: self.serve_cache,
            leader_election: if self.leader_elect {
                Some(leader_election(
                    self.leader_elect_namespace,
                    self.leader_elect_name,
                    self.leader_elect_identity,
                    [
                        &self.leader_elect_lease_duration,
                        &self.leader_elect_renew_deadline,
                        &self.leader_elect_retry_period,
                    ],
                )?)
            } else {
                None
            },
            shutdown_grace: parse_duration(&self.shutdown_grace)
                .map_err(|e| CliExit::Usage(format!("--shutdown-grace: {e}")))?,
        })
    }
}

fn leader_election(
    namespace: Option<String>,
    name: String,
    identity: Option<String>,
    [lease, renew, retry]: [&String; 3],
) -> Result<LeaderElection, CliExit> {
    let parse = |flag: &str, value: &str| {
        parse_duration(value).map_err(|e| CliExit::Usage(format!("{flag}: {e}")))
    };
    let lease_duration = parse("--leader-elect-lease-duration", lease)?;
    let renew_deadline = parse("--leader-elect-renew-deadline", renew)?;
    let retry_period = parse("--leader-elect-retry-period", retry)?;
    // client-go's own rule: a leader must give up before a standby may take over.
    if !(retry_period < renew_deadline && renew_deadline < lease_duration) || retry_period.is_zero()
    {
        return Err(CliExit::Usage(
            "leader election needs 0 < --leader-elect-retry-period < --leader-elect-renew-deadline < --leader-elect-lease-duration".into(),
        ));
    }
    let identity = identity
        .or_else(|| std::env::var("POD_NAME").ok().filter(|p| !p.is_empty()))
        .unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "kubebridge".into());
            format!("{host}_{}", std::process::id())
        });
    Ok(LeaderElection {
        namespace,
        lease: LeaseConfig {
            namespace: String::new(),
            name,
            identity,
            lease_duration,
            renew_deadline,
            retry_period,
        },
    })
}

/// Applies a config file's routes, and its options where no flag was typed.
fn apply_file(
    stream: &mut StreamConfig,
    file: crate::config::file::FileConfig,
    typed: &dyn Fn(&str) -> bool,
) -> Result<(), CliExit> {
    let usage = |what: &str, e: String| CliExit::Usage(format!("--config {what}: {e}"));
    if let (false, Some(v)) = (typed("resync"), &file.resync) {
        let d = parse_duration(v).map_err(|e| usage("resync", e))?;
        stream.resync = (!d.is_zero()).then_some(d);
    }
    if let (false, Some(v)) = (typed("initial_state"), file.initial_state) {
        stream.initial_state = v;
    }
    if let (false, Some(v)) = (typed("queue_capacity"), file.queue_capacity) {
        stream.queue_capacity = v.max(1);
    }
    if let (false, Some(v)) = (typed("overflow"), file.overflow) {
        stream.overflow = v;
    }
    if let (false, Some(v)) = (typed("shutdown_grace"), &file.shutdown_grace) {
        stream.shutdown_grace = parse_duration(v).map_err(|e| usage("shutdownGrace", e))?;
    }
    if let (false, Some(v)) = (typed("metrics_addr"), file.metrics_addr) {
        stream.metrics_addr = Some(v);
    }
    if let (false, Some(v)) = (typed("serve_cache"), file.serve_cache) {
        stream.serve_cache = v;
    }
    if let (false, Some(v)) = (typed("format"), &file.format) {
        stream.sink_options.format = parse_format(v)?;
    }
    apply_sink_settings(
        &mut stream.sink_options,
        file.kafka.as_ref(),
        file.nats.as_ref(),
        typed,
        "",
    )?;
    if stream.serve_cache && stream.metrics_addr.is_none() {
        return Err(CliExit::Usage(
            "serveCache needs metricsAddr (or --metrics-addr)".into(),
        ));
    }
    let mut routes = Vec::with_capacity(file.routes.len());
    for r in &file.routes {
        let mut route = r.to_route();
        // A route's own format, kafka and nats settings start from the file's (and the
        // flags'); flags win over the file, not over a route that says otherwise.
        if r.format.is_some() || r.kafka.is_some() || r.nats.is_some() {
            let mut options = stream.sink_options.clone();
            if let Some(f) = &r.format {
                options.format = parse_format(f).map_err(|e| match e {
                    CliExit::Usage(m) => {
                        CliExit::Usage(format!("--config route {:?}: {m}", r.name))
                    }
                    other => other,
                })?;
            }
            apply_sink_settings(
                &mut options,
                r.kafka.as_ref(),
                r.nats.as_ref(),
                &|_| false,
                &format!("route {:?} ", r.name),
            )?;
            route.sink_options = Some(options);
        }
        routes.push(route);
    }
    stream.routes = routes;
    for route in &stream.routes {
        for ns in match &route.namespaces {
            NamespaceScope::Only(list) => list.as_slice(),
            _ => &[],
        } {
            if !is_dns_label(ns) {
                return Err(CliExit::Usage(format!(
                    "--config route {:?}: invalid namespace {ns:?}",
                    route.name
                )));
            }
        }
    }
    Ok(())
}

/// Applies `kafka:` and `nats:` settings (the file's or a route's) to `options`; a
/// route's Kafka properties add to the file's rather than replace them.
fn apply_sink_settings(
    options: &mut SinkOptions,
    kafka: Option<&crate::config::file::KafkaFile>,
    nats: Option<&crate::config::file::NatsFile>,
    typed: &dyn Fn(&str) -> bool,
    context: &str,
) -> Result<(), CliExit> {
    if let Some(kafka) = kafka {
        if let (false, Some(k)) = (typed("kafka_key"), &kafka.key) {
            options.kafka_key = k
                .parse::<KeyMode>()
                .map_err(|e| CliExit::Usage(format!("--config {context}kafka.key: {e}")))?;
        }
        if !typed("kafka_properties") {
            for (k, v) in &kafka.properties {
                options
                    .kafka_properties
                    .retain(|(existing, _)| existing != k);
                options.kafka_properties.push((k.clone(), v.clone()));
            }
        }
    }
    if let Some(nats) = nats {
        if !typed("subject_template") && nats.subject_template.is_some() {
            options.subject_template = nats.subject_template.clone();
        }
        if !typed("nats_creds") && nats.creds.is_some() {
            options.nats_credentials = nats.creds.clone();
        }
        if !typed("nats_ca") && nats.ca.is_some() {
            options.nats_ca = nats.ca.clone();
        }
    }
    Ok(())
}

/// kubectl's `deploy,po` form: one argument naming several resources.
fn split_resources(args: &[String]) -> Vec<String> {
    args.iter()
        .flat_map(|a| a.split(','))
        .map(|r| r.trim().to_owned())
        .collect()
}

fn parse_format(s: &str) -> Result<Format, CliExit> {
    match s {
        "envelope" => Ok(Format::Envelope),
        "cloudevents" => Ok(Format::CloudEvents),
        "cloudevents-binary" => Ok(Format::CloudEventsBinary),
        other => Err(CliExit::Usage(format!(
            "--format {other:?}: use envelope, cloudevents (structured) or cloudevents-binary"
        ))),
    }
}

/// Parses `30s`, `10m`, `1h`, `1h30m` or `0`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("invalid duration {s:?} ({e}); write it like 30s, 10m or 1h"))
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn watch_defaults_follow_kubectl() {
        let Command::Watch { stream, cluster } = parse_ok(&["watch", "po"]) else {
            panic!("watch")
        };
        assert_eq!(stream.namespaces, NamespaceScope::ContextDefault);
        assert_eq!(stream.sinks, ["stdout"]);
        assert_eq!(stream.sink_options.format, Format::Envelope);
        assert_eq!(stream.resync, None);
        assert_eq!(stream.initial_state, InitialState::Emit);
        assert_eq!(stream.page_size, 500);
        assert_eq!(cluster, ClusterConfig::default());
    }

    #[test]
    fn several_namespaces_and_durations() {
        let Command::Watch { stream, .. } = parse_ok(&[
            "watch", "pods", "cm", "-n", "a", "-n", "b", "--resync", "1h30m", "-l", "app=x",
        ]) else {
            panic!("watch")
        };
        assert_eq!(
            stream.namespaces,
            NamespaceScope::Only(vec!["a".into(), "b".into()])
        );
        assert_eq!(stream.resync, Some(Duration::from_secs(5400)));
        assert_eq!(stream.label_selector.as_deref(), Some("app=x"));
        assert_eq!(stream.resources, ["pods", "cm"]);
        let Command::Watch { stream, .. } = parse_ok(&["watch", "deploy,po", "cm"]) else {
            panic!("watch")
        };
        assert_eq!(stream.resources, ["deploy", "po", "cm"]);
    }

    #[test]
    fn bad_input_is_one_clear_line() {
        for (args, expected) in [
            (
                &["watch", "pods", "--resync", "5 parsecs"][..],
                "--resync: invalid duration",
            ),
            (&["watch", "pods", "-X", "acks"][..], "KEY=VALUE"),
            (
                &["watch", "pods", "--kafka-key", "color"][..],
                "--kafka-key",
            ),
            (&["watch", "pods", "--format", "xml"][..], "--format"),
            (&["watch", "pods", "--sink", " "][..], "--sink is empty"),
            (&["watch", "pods", "-n", "Shop_1"][..], "invalid namespace"),
            (
                &["watch", "pods", "-n", "a", "-A"][..],
                "cannot be used with",
            ),
            (&["watch"][..], "required"),
            (
                &["watch", "pods", "--once", "--initial-state", "skip"][..],
                "--once",
            ),
            (&["watch", "pods", "--bogus"][..], "--bogus"),
        ] {
            let msg = usage(args);
            assert!(msg.contains(expected), "{args:?}: {msg}");
            assert!(!msg.contains('\n'), "{args:?}: {msg}");
        }
    }
}
