//! `--config FILE`: routes and shared options in YAML, `${ENV}` expanded, unknown keys
//! refused. Its JSON Schema is `examples/kubebridge-config.schema.json`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::{InitialState, NamespaceScope, Route};
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
    /// `--queue-capacity`.
    pub queue_capacity: Option<usize>,
    /// `--overflow`.
    pub overflow: Option<Overflow>,
    /// `--shutdown-grace`.
    pub shutdown_grace: Option<String>,
    /// `--metrics-addr`.
    pub metrics_addr: Option<SocketAddr>,
    /// `--serve-cache`.
    pub serve_cache: Option<bool>,
    /// `--format`.
    pub format: Option<String>,
    /// Kafka sink settings.
    pub kafka: Option<KafkaFile>,
    /// NATS sink settings.
    pub nats: Option<NatsFile>,
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

/// Reads, expands and parses `path`. Errors are one line naming the file and the fix.
pub fn load(path: &Path) -> Result<FileConfig, String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--config {shown}: cannot read it: {e}"))?;
    let text = expand_env(&text, |name| std::env::var(name).ok())
        .map_err(|e| format!("--config {shown}: {e}"))?;
    let file: FileConfig = serde_saphyr::from_str(&text).map_err(|e| {
        format!(
            "--config {shown}: {}",
            e.to_string().lines().next().unwrap_or("invalid YAML")
        )
    })?;
    if file.routes.is_empty() {
        return Err(format!(
            "--config {shown}: no routes; add at least one under routes:"
        ));
    }
    for r in &file.routes {
        if r.resources.is_empty() || r.sinks.is_empty() {
            return Err(format!(
                "--config {shown}: route {:?} needs resources and sinks",
                r.name
            ));
        }
        if r.all_namespaces && !r.namespaces.is_empty() {
            return Err(format!(
                "--config {shown}: route {:?} has both namespaces and allNamespaces",
                r.name
            ));
        }
    }
    Ok(file)
}

impl RouteFile {
    /// The route as the rest of kubebridge sees it.
    pub fn to_route(&self) -> Route {
        Route {
            name: self.name.clone(),
            resources: self
                .resources
                .iter()
                .flat_map(|r| r.split(','))
                .map(|r| r.trim().to_owned())
                .collect(),
            namespaces: if self.all_namespaces {
                NamespaceScope::All
            } else if self.namespaces.is_empty() {
                NamespaceScope::ContextDefault
            } else {
                NamespaceScope::Only(self.namespaces.clone())
            },
            label_selector: self.label_selector.clone().filter(|s| !s.trim().is_empty()),
            field_selector: self.field_selector.clone().filter(|s| !s.trim().is_empty()),
            sinks: self.sinks.clone(),
            sink_options: None,
        }
    }
}

/// Replaces `${NAME}` with the variable's value, so credentials can come from the
/// environment or a mounted Secret; `$${` writes a literal `${`. An unset variable is an
/// error, never an empty string.
fn expand_env(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        if rest[..at].ends_with('$') {
            out.push_str(&rest[..at - 1]);
            out.push_str("${");
            rest = &rest[at + 2..];
            continue;
        }
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "an unclosed ${ (write ${NAME})".to_owned())?;
        let name = &after[..end];
        let value = lookup(name).ok_or_else(|| {
            format!("${{{name}}} is used but the environment variable {name} is not set")
        })?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_environment_variables() {
        let env = |n: &str| (n == "PASS").then(|| "s3cret".to_owned());
        assert_eq!(
            expand_env("a: ${PASS}\nb: $${PASS}", env).expect("ok"),
            "a: s3cret\nb: ${PASS}"
        );
        assert!(
            expand_env("a: ${NOPE}", env)
                .expect_err("unset")
                .contains("NOPE is not set")
        );
        assert!(expand_env("a: ${PASS", env).is_err());
    }
}
