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
    COMMAND_LINE_ROUTE, InitialState, LeaderElection, Limits, NamespaceScope, Route, StreamConfig,
    default_queue_bytes, default_queue_capacity, default_shutdown_grace,
    default_sink_stall_timeout,
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
        Layer {
            cluster_name: self.cluster_name.or(lower.cluster_name),
            resync: self.resync.or(lower.resync),
            initial_state: self.initial_state.or(lower.initial_state),
            queue_capacity: self.queue_capacity.or(lower.queue_capacity),
            queue_bytes: self.queue_bytes.or(lower.queue_bytes),
            overflow: self.overflow.or(lower.overflow),
            sink_stall_timeout: self.sink_stall_timeout.or(lower.sink_stall_timeout),
            shutdown_grace: self.shutdown_grace.or(lower.shutdown_grace),
            metrics_addr: self.metrics_addr.or(lower.metrics_addr),
            serve_cache: self.serve_cache.or(lower.serve_cache),
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
    let shared = layer.sinks.add_to(SinkOptions::default());
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
    let defaults = StreamConfig::new(Vec::new());
    let stream = StreamConfig {
        routes,
        resync: layer.resync.filter(|d| !d.is_zero()),
        initial_state,
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
        leader_election: only.leader_election,
        limits: only.limits,
    };
    Ok(Merged {
        stream,
        cluster_name: layer.cluster_name,
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
