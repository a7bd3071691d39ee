//! `--config FILE`: routes and shared options in YAML, unknown keys refused, `${ENV}`
//! expanded in its string values. Its JSON Schema is
//! `examples/kubebridge-config.schema.json`. `config::merge` turns it into routes and a
//! layer of options under the command line's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::env::expand_in;
use super::merge::{Layer, SinkLayer};
use super::{InitialState, MetricsAuth, RedactPath, RedactRule, Route, values};
use crate::queue::Overflow;

/// The file, as written. Every field but `routes` is optional; flags given on the
/// command line win over it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileConfig {
    /// What to watch and where to send it.
    pub routes: Vec<RouteFile>,
    /// `--cluster-name`.
    pub cluster_name: Option<String>,
    /// `--resync` (e.g. `10m`; `0` disables).
    pub resync: Option<String>,
    /// `--initial-state`.
    pub initial_state: Option<InitialState>,
    /// `--cache-compression`.
    pub cache_compression: Option<crate::informer::CacheCompression>,
    /// `--queue-capacity`.
    pub queue_capacity: Option<usize>,
    /// `--queue-bytes` (`128MiB`, `1GiB`, or a number of bytes).
    pub queue_bytes: Option<String>,
    /// `--overflow`.
    pub overflow: Option<Overflow>,
    /// `--sink-stall-timeout`.
    pub sink_stall_timeout: Option<String>,
    /// `--shutdown-grace`.
    pub shutdown_grace: Option<String>,
    /// `--metrics-addr` (text, so it may come from `${ENV}`).
    pub metrics_addr: Option<String>,
    /// `--serve-cache`.
    pub serve_cache: Option<bool>,
    /// `--metrics-auth`.
    pub metrics_auth: Option<MetricsAuth>,
    /// `--metrics-tls-cert`.
    pub metrics_tls_cert: Option<String>,
    /// `--metrics-tls-key`.
    pub metrics_tls_key: Option<String>,
    /// `--metrics-auth-cache-ttl`.
    pub metrics_auth_cache_ttl: Option<String>,
    /// `--insecure-endpoints`.
    pub insecure_endpoints: Option<bool>,
    /// `--checkpoint` (`file:///DIR` or `configmap://[NAMESPACE]/PREFIX`).
    pub checkpoint: Option<String>,
    /// `--checkpoint-interval`.
    pub checkpoint_interval: Option<String>,
    /// `--format`.
    pub format: Option<String>,
    /// Kafka sink settings.
    pub kafka: Option<KafkaFile>,
    /// NATS sink settings.
    pub nats: Option<NatsFile>,
    /// `--reveal-secrets`.
    pub reveal_secrets: Option<bool>,
    /// `--keep-managed-fields`.
    pub keep_managed_fields: Option<bool>,
    /// `--redaction-key-file`.
    pub redaction_key_file: Option<PathBuf>,
    /// Paths of a resource's objects to replace by their keyed hash.
    #[serde(default)]
    pub redact: Vec<RedactFile>,
}

/// One `redact:` rule, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RedactFile {
    /// The resource, as kubectl names it.
    pub resource: String,
    /// JSON pointers (RFC 6901), `*` for any key or index.
    pub paths: Vec<String>,
}

impl RedactFile {
    /// The rule, its pointers parsed; `index` (from 0) names it in the error.
    pub(crate) fn to_rule(&self, index: usize) -> Result<RedactRule, String> {
        let at = format!("redact rule {} (resource {:?})", index + 1, self.resource);
        if self.resource.trim().is_empty() {
            return Err(format!(
                "{at}: no resource; name one as kubectl does, such as widgets.example.com"
            ));
        }
        if self.paths.is_empty() {
            return Err(format!(
                "{at}: no paths; list JSON pointers such as /spec/password"
            ));
        }
        let paths = self
            .paths
            .iter()
            .map(|p| RedactPath::parse(p).map_err(|e| format!("{at}: {e}")))
            .collect::<Result<_, _>>()?;
        Ok(RedactRule {
            resource: self.resource.trim().to_owned(),
            paths,
        })
    }
}

/// One route, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteFile {
    /// A name for messages and the plan.
    pub name: String,
    /// Resources, as kubectl names them.
    pub resources: Vec<String>,
    /// Namespaces; omitted with `allNamespaces: false` means the context's namespace.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Every namespace.
    #[serde(default)]
    pub all_namespaces: bool,
    /// Label selector.
    pub label_selector: Option<String>,
    /// Field selector.
    pub field_selector: Option<String>,
    /// Sink URIs.
    pub sinks: Vec<String>,
    /// This route's message format, instead of the file's.
    pub format: Option<String>,
    /// This route's Kafka settings: `key` replaces, `properties` add to the file's.
    pub kafka: Option<KafkaFile>,
    /// This route's NATS settings, field by field instead of the file's.
    pub nats: Option<NatsFile>,
    /// Event types to publish (`ADDED`, `MODIFIED`, `DELETED`, `SYNC`); all when absent.
    #[serde(default)]
    pub types: Vec<String>,
    /// A CEL expression over `object`, `oldObject`, `type`, `origin`.
    pub filter: Option<String>,
    /// `false` publishes MODIFIED notifications that change nothing (`--no-suppress`).
    pub suppress: Option<bool>,
    /// JSON pointers (with `*`) whose changes alone do not make a MODIFIED worth publishing.
    #[serde(default)]
    pub ignore_fields: Vec<String>,
    /// JSON pointers (with `*`) to keep in published objects.
    #[serde(default)]
    pub fields: Vec<String>,
    /// Add an RFC 6902 `patch` to MODIFIED notifications.
    #[serde(default)]
    pub diff: bool,
    /// `full` or `none`: whether `oldObject` is published.
    pub old_object: Option<crate::filter::OldObject>,
}

/// `kafka:` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KafkaFile {
    /// `--kafka-key`.
    pub key: Option<String>,
    /// `-X` properties.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

/// `nats:` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NatsFile {
    /// `--subject-template`.
    pub subject_template: Option<String>,
    /// `--nats-creds`.
    pub creds: Option<PathBuf>,
    /// `--nats-ca`.
    pub ca: Option<PathBuf>,
}

/// Reads, parses and expands `path`. Errors are one line naming the file and the fix.
pub fn load(path: &Path) -> Result<FileConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--config {}: cannot read it: {e}", path.display()))?;
    parse(&text, &|name| std::env::var(name).ok())
        .map_err(|e| format!("--config {}: {e}", path.display()))
}

/// Parses the YAML, then expands `${NAME}` in every string value through `lookup`.
fn parse(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<FileConfig, String> {
    let mut file: FileConfig =
        serde_saphyr::from_str(text).map_err(|e| yaml_error(&e.to_string(), text))?;
    file.expand(lookup)?;
    if file.routes.is_empty() {
        return Err("no routes; add at least one under routes:".into());
    }
    for r in &file.routes {
        if r.resources.is_empty() || r.sinks.is_empty() {
            return Err(format!("route {:?} needs resources and sinks", r.name));
        }
        if r.all_namespaces && !r.namespaces.is_empty() {
            return Err(format!(
                "route {:?} has both namespaces and allNamespaces",
                r.name
            ));
        }
    }
    Ok(file)
}

/// The parser's first line, with the key on the line it names (never the value, which
/// may be a secret): "line 5 column 16: invalid u64" says where, the key says what.
fn yaml_error(message: &str, text: &str) -> String {
    let first = message.lines().next().unwrap_or("invalid YAML");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let key = first
        .strip_prefix("line ")
        .and_then(|rest| rest.split_once(' '))
        .and_then(|(n, _)| n.parse::<usize>().ok())
        .and_then(|n| text.lines().nth(n.checked_sub(1)?))
        .and_then(|line| line.split_once(':'))
        .map(|(key, _)| key.trim().trim_start_matches("- ").trim())
        .filter(|key| !key.is_empty() && !key.contains(char::is_whitespace));
    match key {
        Some(key) => format!("{key}: {first}"),
        None => first.to_owned(),
    }
}

/// Expands each string in each `$value` (an `Option<String>` or a `Vec<String>`), naming
/// it `$field` in an error.
macro_rules! expand_all {
    ($lookup:expr, $($field:expr => $value:expr),* $(,)?) => {{
        $( for v in $value.iter_mut() { expand_in(&$field, v, $lookup)?; } )*
    }};
}

impl FileConfig {
    fn expand(&mut self, lookup: &dyn Fn(&str) -> Option<String>) -> Result<(), String> {
        expand_all!(lookup,
            "clusterName" => self.cluster_name,
            "resync" => self.resync,
            "shutdownGrace" => self.shutdown_grace,
            "sinkStallTimeout" => self.sink_stall_timeout,
            "queueBytes" => self.queue_bytes,
            "metricsAddr" => self.metrics_addr,
            "metricsTlsCert" => self.metrics_tls_cert,
            "metricsTlsKey" => self.metrics_tls_key,
            "metricsAuthCacheTtl" => self.metrics_auth_cache_ttl,
            "format" => self.format,
            "checkpoint" => self.checkpoint,
            "checkpointInterval" => self.checkpoint_interval,
        );
        expand_sinks(self.kafka.as_mut(), self.nats.as_mut(), "", lookup)?;
        for r in &mut self.routes {
            let at = format!("route {:?} ", r.name);
            expand_all!(lookup,
                format!("{at}resources") => r.resources,
                format!("{at}namespaces") => r.namespaces,
                format!("{at}labelSelector") => r.label_selector,
                format!("{at}fieldSelector") => r.field_selector,
                format!("{at}sinks") => r.sinks,
                format!("{at}format") => r.format,
                format!("{at}types") => r.types,
                format!("{at}filter") => r.filter,
                format!("{at}ignoreFields") => r.ignore_fields,
                format!("{at}fields") => r.fields,
            );
            expand_sinks(r.kafka.as_mut(), r.nats.as_mut(), &at, lookup)?;
        }
        Ok(())
    }

    /// The file's shared options, as a layer under the command line's.
    pub(crate) fn layer(&self) -> Result<Layer, String> {
        let duration = |what: &str, v: &Option<String>| {
            v.as_deref()
                .map(values::duration)
                .transpose()
                .map_err(|e| format!("{what}: {e}"))
        };
        Ok(Layer {
            cluster_name: self.cluster_name.clone(),
            resync: duration("resync", &self.resync)?,
            initial_state: self.initial_state,
            cache_compression: self.cache_compression,
            queue_capacity: self
                .queue_capacity
                .map(|n| values::within(n, 1, values::MAX_QUEUE_CAPACITY))
                .transpose()
                .map_err(|e| format!("queueCapacity: {e}"))?,
            queue_bytes: self
                .queue_bytes
                .as_deref()
                .map(values::byte_size)
                .transpose()
                .map_err(|e| format!("queueBytes: {e}"))?,
            overflow: self.overflow,
            sink_stall_timeout: self
                .sink_stall_timeout
                .as_deref()
                .map(values::stall_timeout)
                .transpose()
                .map_err(|e| format!("sinkStallTimeout: {e}"))?,
            shutdown_grace: duration("shutdownGrace", &self.shutdown_grace)?,
            metrics_addr: self
                .metrics_addr
                .as_deref()
                .map(|a| {
                    a.trim()
                        .parse()
                        .map_err(|e| format!("metricsAddr {a:?}: {e}; write it as HOST:PORT"))
                })
                .transpose()?,
            serve_cache: self.serve_cache,
            metrics_auth: self.metrics_auth,
            metrics_tls_cert: self.metrics_tls_cert.as_deref().map(PathBuf::from),
            metrics_tls_key: self.metrics_tls_key.as_deref().map(PathBuf::from),
            metrics_auth_cache_ttl: self
                .metrics_auth_cache_ttl
                .as_deref()
                .map(values::auth_cache_ttl)
                .transpose()
                .map_err(|e| format!("metricsAuthCacheTtl: {e}"))?,
            insecure_endpoints: self.insecure_endpoints,
            checkpoint: self
                .checkpoint
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(|e| format!("checkpoint: {e}"))?,
            checkpoint_interval: self
                .checkpoint_interval
                .as_deref()
                .map(values::checkpoint_interval)
                .transpose()
                .map_err(|e| format!("checkpointInterval: {e}"))?,
            reveal_secrets: self.reveal_secrets,
            keep_managed_fields: self.keep_managed_fields,
            redaction_key_file: self.redaction_key_file.clone(),
            sinks: sink_layer(
                self.format.as_deref(),
                self.kafka.as_ref(),
                self.nats.as_ref(),
            )?,
        })
    }
}

fn expand_sinks(
    kafka: Option<&mut KafkaFile>,
    nats: Option<&mut NatsFile>,
    at: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), String> {
    if let Some(kafka) = kafka {
        expand_all!(lookup, format!("{at}kafka.key") => kafka.key);
        for (k, v) in kafka.properties.iter_mut() {
            expand_in(&format!("{at}kafka.properties.{k}"), v, lookup)?;
        }
    }
    if let Some(nats) = nats {
        expand_all!(lookup, format!("{at}nats.subjectTemplate") => nats.subject_template);
        for path in [&mut nats.creds, &mut nats.ca].into_iter().flatten() {
            if let Some(text) = path.to_str().filter(|t| t.contains("${")) {
                let mut text = text.to_owned();
                expand_in(&format!("{at}nats"), &mut text, lookup)?;
                *path = PathBuf::from(text);
            }
        }
    }
    Ok(())
}

/// `format:`, `kafka:` and `nats:` settings (the file's or a route's) as a layer.
fn sink_layer(
    format: Option<&str>,
    kafka: Option<&KafkaFile>,
    nats: Option<&NatsFile>,
) -> Result<SinkLayer, String> {
    Ok(SinkLayer {
        format: format
            .map(|f| values::format(f).map_err(|e| format!("format {f:?}: {e}")))
            .transpose()?,
        cloudevents_source: None,
        kafka_key: kafka
            .and_then(|k| k.key.as_deref())
            .map(|k| values::kafka_key(k).map_err(|e| format!("kafka.key: {e}")))
            .transpose()?,
        kafka_properties: kafka.map(|k| k.properties.clone().into_iter().collect()),
        subject_template: nats.and_then(|n| n.subject_template.clone()),
        nats_creds: nats.and_then(|n| n.creds.clone()),
        nats_ca: nats.and_then(|n| n.ca.clone()),
    })
}

impl RouteFile {
    /// The route as the rest of kubebridge sees it; its own sink settings win over
    /// `shared` (the command line's over the file's), and its Kafka properties add to them.
    pub(crate) fn to_route(&self, shared: &kubebridge_sinks::SinkOptions) -> Result<Route, String> {
        let at = |e: String| format!("route {:?} {e}", self.name);
        let own = sink_layer(
            self.format.as_deref(),
            self.kafka.as_ref(),
            self.nats.as_ref(),
        )
        .map_err(at)?;
        let filters = crate::filter::FilterConfig {
            types: crate::filter::parse_types(&self.types)
                .map_err(|e| at(format!("types: {e}")))?,
            filter: self.filter.clone(),
            suppress: self.suppress.unwrap_or(true),
            ignore_fields: self.ignore_fields.clone(),
            fields: self.fields.clone(),
            diff: self.diff,
            old_object: self.old_object.unwrap_or_default(),
        };
        filters.validate().map_err(at)?;
        Ok(Route {
            name: self.name.clone(),
            resources: values::resources(&self.resources).map_err(at)?,
            namespaces: values::namespace_scope(self.all_namespaces, &self.namespaces)
                .map_err(at)?,
            label_selector: self.label_selector.clone().filter(|s| !s.trim().is_empty()),
            field_selector: self.field_selector.clone().filter(|s| !s.trim().is_empty()),
            sinks: self.sinks.clone(),
            sink_options: own.add_to(shared.clone()),
            filters,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_bytes_and_stall_timeout_are_read_and_bounded() {
        let none = &|_: &str| None;
        let base = "routes:\n  - name: r\n    resources: [pods]\n    sinks: [stdout]\n";
        for (text, bytes) in [("64MiB", 64 << 20), ("1048576", 1 << 20)] {
            let file = parse(
                &format!("{base}queueBytes: {text}\nsinkStallTimeout: 5s\n"),
                none,
            )
            .expect("parses");
            let layer = file.layer().expect("valid");
            assert_eq!(layer.queue_bytes, Some(bytes), "{text}");
            assert_eq!(
                layer.sink_stall_timeout,
                Some(std::time::Duration::from_secs(5))
            );
        }
        let file = parse(&format!("{base}queueBytes: 0\n"), none).expect("parses");
        let e = file.layer().expect_err("zero");
        assert!(e.starts_with("queueBytes:"), "{e}");
        let file = parse(&format!("{base}sinkStallTimeout: 1ms\n"), none).expect("parses");
        let e = file.layer().expect_err("too short");
        assert!(e.starts_with("sinkStallTimeout:"), "{e}");
    }

    #[test]
    fn env_values_land_verbatim_whatever_they_contain() {
        // A secret with `# ` and `: ` would have become a comment and a mapping had it
        // been substituted into the YAML text.
        let secret = "p4ss # not a comment: nor a key";
        let env = |n: &str| (n == "SECRET").then(|| secret.to_owned());
        let file = parse(
            "routes:\n  - name: r\n    resources: [pods]\n    sinks: [\"kafka://h:1/t\"]\n    kafka:\n      properties:\n        sasl.password: ${SECRET}\n        acks: all\n",
            &env,
        )
        .expect("parses");
        let route = file.routes[0]
            .to_route(&kubebridge_sinks::SinkOptions::default())
            .expect("route");
        assert_eq!(
            route.sink_options.kafka_properties,
            [
                ("acks".to_owned(), "all".to_owned()),
                ("sasl.password".to_owned(), secret.to_owned())
            ]
        );
        let unset = parse(
            "routes:\n  - name: r\n    resources: [pods]\n    sinks: [stdout]\n    labelSelector: ${NOPE}\n",
            &env,
        )
        .expect_err("unset");
        assert!(unset.contains("NOPE is not set"), "{unset}");
        assert!(unset.contains("labelSelector"), "{unset}");
        assert!(!unset.contains('\n'), "{unset}");
    }

    #[test]
    fn a_wrong_type_names_its_key_and_never_its_value() {
        let route = "routes:\n  - name: r\n    resources: [pods]\n    sinks: [stdout]\n";
        let none = |_: &str| None;
        let e = parse(&format!("{route}queueCapacity: lots\n"), &none).expect_err("type");
        assert!(e.starts_with("queueCapacity: line 5"), "{e}");
        assert!(!e.contains("lots"), "{e}");
        let e = parse(&format!("{route}serveCache: 12345\n"), &none).expect_err("type");
        assert!(e.starts_with("serveCache: "), "{e}");
        let layer = |text: &str| {
            parse(&format!("{route}{text}"), &none)
                .expect("parses")
                .layer()
                .expect_err("out of range")
        };
        assert!(layer("queueCapacity: 0\n").contains("queueCapacity"));
        assert!(layer("queueCapacity: 999999999999\n").contains("queueCapacity"));
    }
}
