//! Precedence, as structure: the command line and the `--config` file each give a
//! [`Layer`] of optional settings; the merged configuration takes, field by field, the
//! flag over the file over the default. No setting is looked up by name, so renaming a
//! flag cannot silently break precedence.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use kubebridge_sinks::{Format, KeyMode, SinkOptions};

use super::file::FileConfig;
use super::{
    COMMAND_LINE_ROUTE, CheckpointConfig, CheckpointUri, EndpointSecurity, InitialState, KEY_ENV,
    KeySource, LeaderElection, Limits, MetricsAuth, NamespaceScope, Redaction, RedactionKey, Route,
    StreamConfig, default_auth_cache_ttl, default_checkpoint_interval, default_queue_bytes,
    default_queue_capacity, default_shutdown_grace, default_sink_stall_timeout,
};
use crate::queue::Overflow;

/// The settings both the command line and the file may give; `None` means "not said".
#[derive(Debug, Clone, Default)]
pub(crate) struct Layer {
    /// `--cluster-name` / `clusterName`.
    pub cluster_name: Option<String>,
    /// `--resync` / `resync`.
    pub resync: Option<Duration>,
    /// `--initial-state` / `initialState`.
    pub initial_state: Option<InitialState>,
    /// `--cache-compression` / `cacheCompression`.
    pub cache_compression: Option<crate::informer::CacheCompression>,
    /// `--queue-capacity` / `queueCapacity`.
    pub queue_capacity: Option<usize>,
    /// `--queue-bytes` / `queueBytes`.
    pub queue_bytes: Option<usize>,
    /// `--overflow` / `overflow`.
    pub overflow: Option<Overflow>,
    /// `--sink-stall-timeout` / `sinkStallTimeout`.
    pub sink_stall_timeout: Option<Duration>,
    /// `--shutdown-grace` / `shutdownGrace`.
    pub shutdown_grace: Option<Duration>,
    /// `--metrics-addr` / `metricsAddr`.
    pub metrics_addr: Option<SocketAddr>,
    /// `--serve-cache` / `serveCache`.
    pub serve_cache: Option<bool>,
    /// `--metrics-auth` / `metricsAuth`.
    pub metrics_auth: Option<MetricsAuth>,
    /// `--metrics-tls-cert` / `metricsTlsCert`.
    pub metrics_tls_cert: Option<PathBuf>,
    /// `--metrics-tls-key` / `metricsTlsKey`.
    pub metrics_tls_key: Option<PathBuf>,
    /// `--metrics-auth-cache-ttl` / `metricsAuthCacheTtl`.
    pub metrics_auth_cache_ttl: Option<Duration>,
    /// `--insecure-endpoints` / `insecureEndpoints`.
    pub insecure_endpoints: Option<bool>,
    /// `--checkpoint` / `checkpoint`.
    pub checkpoint: Option<CheckpointUri>,
    /// `--checkpoint-interval` / `checkpointInterval`.
    pub checkpoint_interval: Option<Duration>,
    /// `--reveal-secrets` / `revealSecrets`.
    pub reveal_secrets: Option<bool>,
    /// `--keep-managed-fields` / `keepManagedFields`.
    pub keep_managed_fields: Option<bool>,
    /// `--redaction-key-file` / `redactionKeyFile`.
    pub redaction_key_file: Option<PathBuf>,
    /// Sink settings.
    pub sinks: SinkLayer,
}

/// Sink settings of one layer (the command line, the file, or one route).
#[derive(Debug, Clone, Default)]
pub(crate) struct SinkLayer {
    /// `--format` / `format`.
    pub format: Option<Format>,
    /// `--cloudevents-source` (command line only).
    pub cloudevents_source: Option<String>,
    /// `--kafka-key` / `kafka.key`.
    pub kafka_key: Option<KeyMode>,
    /// `-X` / `kafka.properties`.
    pub kafka_properties: Option<Vec<(String, String)>>,
    /// `--subject-template` / `nats.subjectTemplate`.
    pub subject_template: Option<String>,
    /// `--nats-creds` / `nats.creds`.
    pub nats_creds: Option<PathBuf>,
    /// `--nats-ca` / `nats.ca`.
    pub nats_ca: Option<PathBuf>,
}

impl Layer {
    /// `self` where it says something, `lower` elsewhere.
    pub fn over(self, lower: Layer) -> Layer {
        // The certificate and key as a pair from one place: a flag's certificate never
        // meets the file's key.
        let (metrics_tls_cert, metrics_tls_key) =
            if self.metrics_tls_cert.is_some() || self.metrics_tls_key.is_some() {
                (self.metrics_tls_cert, self.metrics_tls_key)
            } else {
                (lower.metrics_tls_cert, lower.metrics_tls_key)
            };
        Layer {
            cluster_name: self.cluster_name.or(lower.cluster_name),
            resync: self.resync.or(lower.resync),
            initial_state: self.initial_state.or(lower.initial_state),
            cache_compression: self.cache_compression.or(lower.cache_compression),
            queue_capacity: self.queue_capacity.or(lower.queue_capacity),
            queue_bytes: self.queue_bytes.or(lower.queue_bytes),
            overflow: self.overflow.or(lower.overflow),
            sink_stall_timeout: self.sink_stall_timeout.or(lower.sink_stall_timeout),
            shutdown_grace: self.shutdown_grace.or(lower.shutdown_grace),
            metrics_addr: self.metrics_addr.or(lower.metrics_addr),
            serve_cache: self.serve_cache.or(lower.serve_cache),
            metrics_auth: self.metrics_auth.or(lower.metrics_auth),
            metrics_tls_cert,
            metrics_tls_key,
            metrics_auth_cache_ttl: self.metrics_auth_cache_ttl.or(lower.metrics_auth_cache_ttl),
            insecure_endpoints: self.insecure_endpoints.or(lower.insecure_endpoints),
            checkpoint: self.checkpoint.or(lower.checkpoint),
            checkpoint_interval: self.checkpoint_interval.or(lower.checkpoint_interval),
            reveal_secrets: self.reveal_secrets.or(lower.reveal_secrets),
            keep_managed_fields: self.keep_managed_fields.or(lower.keep_managed_fields),
            redaction_key_file: self.redaction_key_file.or(lower.redaction_key_file),
            sinks: self.sinks.over(lower.sinks),
        }
    }
}

impl SinkLayer {
    /// `self` where it says something, `lower` elsewhere; typed `-X` properties replace
    /// the file's as a whole.
    pub fn over(self, lower: SinkLayer) -> SinkLayer {
        SinkLayer {
            format: self.format.or(lower.format),
            cloudevents_source: self.cloudevents_source.or(lower.cloudevents_source),
            kafka_key: self.kafka_key.or(lower.kafka_key),
            kafka_properties: self.kafka_properties.or(lower.kafka_properties),
            subject_template: self.subject_template.or(lower.subject_template),
            nats_creds: self.nats_creds.or(lower.nats_creds),
            nats_ca: self.nats_ca.or(lower.nats_ca),
        }
    }

    /// `base` with this layer's settings on top; Kafka properties are added one by one,
    /// replacing only a property of the same name (how a route extends the file's).
    pub fn add_to(self, mut base: SinkOptions) -> SinkOptions {
        for (k, v) in self.kafka_properties.unwrap_or_default() {
            base.kafka_properties.retain(|(existing, _)| *existing != k);
            base.kafka_properties.push((k, v));
        }
        SinkOptions {
            format: self.format.unwrap_or(base.format),
            cloudevents_source: self.cloudevents_source.or(base.cloudevents_source),
            kafka_key: self.kafka_key.unwrap_or(base.kafka_key),
            subject_template: self.subject_template.or(base.subject_template),
            nats_credentials: self.nats_creds.or(base.nats_credentials),
            nats_ca: self.nats_ca.or(base.nats_ca),
            ..base
        }
    }
}

/// What only the command line sets: the file has no key for these.
#[derive(Debug, Clone, Default)]
pub(crate) struct CommandLineOnly {
    /// `--once`.
    pub once: bool,
    /// `--watch-list`.
    pub watch_list: bool,
    /// `--page-size`.
    pub page_size: Option<u32>,
    /// `--leader-elect` and its settings.
    pub leader_election: Option<LeaderElection>,
    /// `--watch-idle-timeout`, `--max-object-bytes`, `--metrics-max-connections`, ...
    pub limits: Limits,
}

/// The command line's route (RESOURCE... with `-n`/`-A`, selectors and `--sink`); its
/// sink options are the merged ones.
#[derive(Debug, Clone)]
pub(crate) struct RouteFlags {
    /// Resource names, split.
    pub resources: Vec<String>,
    /// `-n` / `-A`.
    pub namespaces: NamespaceScope,
    /// `-l`.
    pub label_selector: Option<String>,
    /// `--field-selector`.
    pub field_selector: Option<String>,
    /// `--sink`, stdout when none is given.
    pub sinks: Vec<String>,
    /// `--types`, `--filter`, `--no-suppress`, `--ignore-field`, `--field`, `--diff`,
    /// `--old-object`.
    pub filters: crate::filter::FilterConfig,
}

/// The merged configuration and the cluster name it asks for.
#[derive(Debug)]
pub(crate) struct Merged {
    /// Routes and shared options.
    pub stream: StreamConfig,
    /// `--cluster-name` or the file's `clusterName`.
    pub cluster_name: Option<String>,
}

/// Merges the command line (`flags`, `only`, and its route when RESOURCE was given) with
/// the file. An error is one line; the file's are prefixed with `--config PATH: ` by the
/// caller.
pub(crate) fn merge(
    flags: Layer,
    file: Option<&FileConfig>,
    route: Option<RouteFlags>,
    only: CommandLineOnly,
) -> Result<Merged, String> {
    let file_layer = file.map(FileConfig::layer).transpose()?.unwrap_or_default();
    let layer = flags.over(file_layer);
    let redaction = redaction(&layer, file, &|name| std::env::var_os(name))?;
    let shared = layer.sinks.clone().add_to(SinkOptions::default());
    let mut routes = Vec::new();
    if let Some(r) = route {
        routes.push(Route {
            name: COMMAND_LINE_ROUTE.to_owned(),
            resources: r.resources,
            namespaces: r.namespaces,
            label_selector: r.label_selector.filter(|s| !s.trim().is_empty()),
            field_selector: r.field_selector.filter(|s| !s.trim().is_empty()),
            sinks: if r.sinks.is_empty() {
                vec!["stdout".to_owned()]
            } else {
                r.sinks
            },
            sink_options: shared.clone(),
            filters: r.filters,
        });
    }
    for r in file.map(|f| f.routes.as_slice()).unwrap_or_default() {
        routes.push(r.to_route(&shared)?);
    }
    let initial_state = layer.initial_state.unwrap_or(InitialState::Emit);
    if only.once && initial_state == InitialState::Skip {
        return Err("--once publishes the initial state and exits, so it cannot be combined with an initial state of skip".into());
    }
    let serve_cache = layer.serve_cache.unwrap_or(false);
    if serve_cache && layer.metrics_addr.is_none() {
        return Err(
            "--serve-cache (serveCache in the file) needs --metrics-addr (metricsAddr)".into(),
        );
    }
    let endpoint_security = endpoint_security(&layer, serve_cache)?;
    if layer.checkpoint.is_none() && layer.checkpoint_interval.is_some() {
        return Err("--checkpoint-interval (checkpointInterval in the file) needs --checkpoint (checkpoint)".into());
    }
    let checkpoint = layer.checkpoint.map(|uri| CheckpointConfig {
        uri,
        interval: layer
            .checkpoint_interval
            .unwrap_or_else(default_checkpoint_interval),
    });
    let defaults = StreamConfig::new(Vec::new());
    let stream = StreamConfig {
        routes,
        resync: layer.resync.filter(|d| !d.is_zero()),
        initial_state,
        cache_compression: layer.cache_compression.unwrap_or_default(),
        once: only.once,
        watch_list: only.watch_list,
        page_size: only.page_size.unwrap_or(defaults.page_size),
        queue_capacity: layer.queue_capacity.unwrap_or_else(default_queue_capacity),
        queue_bytes: layer.queue_bytes.unwrap_or_else(default_queue_bytes),
        overflow: layer.overflow.unwrap_or(defaults.overflow),
        sink_stall_timeout: layer
            .sink_stall_timeout
            .unwrap_or_else(default_sink_stall_timeout),
        shutdown_grace: layer.shutdown_grace.unwrap_or_else(default_shutdown_grace),
        metrics_addr: layer.metrics_addr,
        serve_cache,
        endpoint_security,
        leader_election: only.leader_election,
        checkpoint,
        limits: only.limits,
        redaction,
    };
    Ok(Merged {
        stream,
        cluster_name: layer.cluster_name,
    })
}

/// The endpoints' security, merged: the settings need an address; the certificate and
/// key come together; `/cache` without authentication is served only on loopback, unless
/// `--insecure-endpoints` says to anyway.
fn endpoint_security(layer: &Layer, serve_cache: bool) -> Result<EndpointSecurity, String> {
    let tls_files = match (&layer.metrics_tls_cert, &layer.metrics_tls_key) {
        (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
        (None, None) => None,
        _ => {
            return Err("--metrics-tls-cert and --metrics-tls-key (metricsTlsCert, metricsTlsKey) go together: give both (HTTPS from these files) or neither".into());
        }
    };
    let security = EndpointSecurity {
        auth: layer.metrics_auth.unwrap_or_default(),
        tls_files,
        auth_cache_ttl: layer
            .metrics_auth_cache_ttl
            .unwrap_or_else(default_auth_cache_ttl),
        insecure: layer.insecure_endpoints.unwrap_or(false),
    };
    let Some(addr) = layer.metrics_addr else {
        if layer.metrics_auth.is_some()
            || security.tls_files.is_some()
            || layer.metrics_auth_cache_ttl.is_some()
        {
            return Err("--metrics-auth, --metrics-tls-cert, --metrics-tls-key and --metrics-auth-cache-ttl secure --metrics-addr (metricsAddr), which is not given".into());
        }
        return Ok(security);
    };
    if serve_cache
        && security.auth == MetricsAuth::None
        && !security.insecure
        && !addr.ip().is_loopback()
    {
        return Err(format!(
            "--serve-cache on --metrics-addr {addr} (not loopback) would serve every cached object to anyone who reaches the port: add --metrics-auth kubernetes, or --insecure-endpoints to serve it anyway"
        ));
    }
    Ok(security)
}

/// The decode-time transforms: the switches (flag over file), the file's `redact` rules,
/// and the key, read now so that a bad key file is a usage error before anything
/// connects: `--redaction-key-file` (or `redactionKeyFile`) over `KUBEBRIDGE_REDACTION_KEY`;
/// with neither, `None` (a random key at start-up).
fn redaction(
    layer: &Layer,
    file: Option<&FileConfig>,
    env: &dyn Fn(&str) -> Option<std::ffi::OsString>,
) -> Result<Redaction, String> {
    let rules = file
        .map(|f| f.redact.as_slice())
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, r)| r.to_rule(i))
        .collect::<Result<_, _>>()?;
    let key = match (&layer.redaction_key_file, env(KEY_ENV)) {
        (Some(path), _) => Some(RedactionKey::from_file(path, "--redaction-key-file")?),
        (None, Some(value)) if value.is_empty() => {
            return Err(format!(
                "{KEY_ENV} is set but empty; put the redaction key in it, or unset it for a random per-process key"
            ));
        }
        (None, Some(value)) => Some(RedactionKey::new(
            value.into_encoded_bytes(),
            KeySource::Env,
        )),
        (None, None) => None,
    };
    Ok(Redaction {
        reveal_secrets: layer.reveal_secrets.unwrap_or(false),
        keep_managed_fields: layer.keep_managed_fields.unwrap_or(false),
        key,
        rules,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_wins_over_the_file_field_by_field() {
        let flags = Layer {
            resync: Some(Duration::from_secs(60)),
            sinks: SinkLayer {
                kafka_key: Some(KeyMode::Uid),
                ..SinkLayer::default()
            },
            ..Layer::default()
        };
        let file = Layer {
            resync: Some(Duration::from_secs(600)),
            overflow: Some(Overflow::DropOldest),
            sinks: SinkLayer {
                kafka_key: Some(KeyMode::None),
                format: Some(Format::CloudEvents),
                ..SinkLayer::default()
            },
            ..Layer::default()
        };
        let merged = flags.over(file);
        assert_eq!(merged.resync, Some(Duration::from_secs(60)));
        assert_eq!(merged.overflow, Some(Overflow::DropOldest));
        assert_eq!(merged.sinks.kafka_key, Some(KeyMode::Uid));
        assert_eq!(merged.sinks.format, Some(Format::CloudEvents));
    }

    #[test]
    fn endpoint_security_merges_as_a_whole_and_guards_a_public_cache() {
        let public = Layer {
            metrics_addr: Some("0.0.0.0:9090".parse().unwrap_or_else(|e| panic!("{e}"))),
            ..Layer::default()
        };
        let e = endpoint_security(&public, true).expect_err("public, no auth");
        assert!(e.contains("--metrics-auth kubernetes") && e.contains("--insecure-endpoints"));
        let file = Layer {
            metrics_auth: Some(MetricsAuth::Kubernetes),
            metrics_tls_cert: Some("file.crt".into()),
            metrics_tls_key: Some("file.key".into()),
            ..public.clone()
        };
        let merged = Layer::default().over(file.clone());
        let security = endpoint_security(&merged, true).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(security.auth, MetricsAuth::Kubernetes);
        assert_eq!(
            security.tls_files,
            Some(("file.crt".into(), "file.key".into()))
        );
        // A flag's certificate does not pair with the file's key.
        let flags = Layer {
            metrics_tls_cert: Some("flag.crt".into()),
            ..Layer::default()
        };
        let e = endpoint_security(&flags.over(file), false).expect_err("half a pair");
        assert!(e.contains("go together"), "{e}");
        let insecure = Layer {
            insecure_endpoints: Some(true),
            ..public
        };
        assert!(endpoint_security(&insecure, true).is_ok());
        let no_addr = Layer {
            metrics_auth: Some(MetricsAuth::Kubernetes),
            ..Layer::default()
        };
        let e = endpoint_security(&no_addr, false).expect_err("no address");
        assert!(e.contains("--metrics-addr"), "{e}");
    }

    #[test]
    fn the_key_file_wins_over_the_environment_and_rules_name_themselves() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("key");
        std::fs::write(&path, "from-file\r\n").expect("write");
        let env = |value: &'static str| {
            move |name: &str| (name == KEY_ENV).then(|| std::ffi::OsString::from(value))
        };
        let with_file = Layer {
            redaction_key_file: Some(path.clone()),
            ..Layer::default()
        };
        let r = redaction(&with_file, None, &env("from-env")).expect("valid");
        assert_eq!(r.key.expect("a key").source(), &KeySource::File(path));
        let r = redaction(&Layer::default(), None, &env("from-env")).expect("valid");
        assert_eq!(r.key.expect("a key").source(), &KeySource::Env);
        let r = redaction(&Layer::default(), None, &|_| None).expect("valid");
        assert_eq!(
            (r.key, r.reveal_secrets, r.keep_managed_fields),
            (None, false, false)
        );
        let e = redaction(&Layer::default(), None, &env("")).expect_err("empty");
        assert!(e.contains(KEY_ENV), "{e}");

        let file: FileConfig = serde_saphyr::from_str(
            "routes: []\nredact:\n  - resource: a\n    paths: [/x]\n  - resource: b\n    paths: [/ok, y]\n",
        )
        .expect("parses");
        let e = redaction(&Layer::default(), Some(&file), &|_| None).expect_err("bad");
        assert!(
            e.starts_with("redact rule 2 (resource \"b\"): \"y\""),
            "{e}"
        );
    }

    #[test]
    fn a_routes_kafka_properties_add_to_the_shared_ones() {
        let shared = SinkOptions {
            kafka_properties: vec![("acks".into(), "all".into()), ("a".into(), "1".into())],
            ..SinkOptions::default()
        };
        let own = SinkLayer {
            kafka_properties: Some(vec![("a".into(), "2".into())]),
            ..SinkLayer::default()
        };
        assert_eq!(
            own.add_to(shared).kafka_properties,
            [("acks".into(), "all".into()), ("a".into(), "2".into())]
        );
    }
}
