//! Cluster access the way kubectl finds it: `--kubeconfig`, `KUBECONFIG`,
//! `~/.kube/config`, then the in-cluster service account.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

use super::api::ApiError;
use super::discovery::Discovery;
use crate::config::ClusterConfig;
use crate::informer::backoff::Backoff;

/// A client for one cluster, with what kubectl would take from the kubeconfig.
#[derive(Clone)]
pub struct Cluster {
    /// The API client.
    pub client: kube::Client,
    /// The client for leader-election requests: without kube's retry layer (see
    /// [`crate::leader::lease_client`]).
    pub lease_client: kube::Client,
    /// The context's namespace (or the service account's), used without `-n`/`-A`.
    pub default_namespace: String,
    /// The cluster's name, stamped on notifications.
    pub name: Option<String>,
    /// The API server's URL, for messages.
    pub server: String,
}

/// Why no client could be made: always a configuration problem (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The kubeconfig could not be read or used.
    #[error("cannot use kubeconfig {path}: {source}")]
    Kubeconfig {
        /// Where it was read from.
        path: String,
        /// What went wrong.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// `--context` names a context the kubeconfig does not have.
    #[error("context {name:?} is not in the kubeconfig; it has: {known}")]
    UnknownContext {
        /// The name asked for.
        name: String,
        /// The names it has.
        known: String,
    },
    /// Neither a kubeconfig nor an in-cluster service account.
    #[error(
        "no cluster to connect to: no kubeconfig (--kubeconfig, KUBECONFIG or ~/.kube/config) and not running in a pod ({0})"
    )]
    NoConfig(#[source] kube::config::InClusterError),
    /// `--context` without any kubeconfig.
    #[error(
        "--context {0:?} needs a kubeconfig, and none was found (--kubeconfig, KUBECONFIG or ~/.kube/config)"
    )]
    ContextWithoutKubeconfig(String),
    /// The client could not be built (TLS material, proxy settings).
    #[error("cannot build a client for {server}: {source}")]
    Client {
        /// The API server URL.
        server: String,
        /// What went wrong.
        #[source]
        source: kube::Error,
    },
}

/// Connects as kubectl would with these flags.
pub async fn connect(options: &ClusterConfig) -> Result<Cluster, ConnectError> {
    let (kubeconfig, path) = load_kubeconfig(options.kubeconfig.as_deref())?;
    let (config, cluster_name) = match kubeconfig {
        Some(kc) => {
            if let Some(name) = &options.context
                && !kc.contexts.iter().any(|c| &c.name == name)
            {
                let known: Vec<&str> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
                return Err(ConnectError::UnknownContext {
                    name: name.clone(),
                    known: if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    },
                });
            }
            let context = options
                .context
                .clone()
                .or_else(|| kc.current_context.clone());
            let cluster_name = context
                .as_ref()
                .and_then(|name| kc.contexts.iter().find(|c| &c.name == name))
                .and_then(|c| c.context.as_ref())
                .map(|c| c.cluster.clone());
            let kube_options = KubeConfigOptions {
                context: options.context.clone(),
                ..KubeConfigOptions::default()
            };
            let config = kube::Config::from_custom_kubeconfig(kc, &kube_options)
                .await
                .map_err(|source| ConnectError::Kubeconfig {
                    path: path.clone(),
                    source,
                })?;
            (config, cluster_name)
        }
        None => {
            if let Some(context) = &options.context {
                return Err(ConnectError::ContextWithoutKubeconfig(context.clone()));
            }
            (
                kube::Config::incluster().map_err(ConnectError::NoConfig)?,
                None,
            )
        }
    };
    let name = options.cluster_name.clone().or(cluster_name);
    from_config(config, name)
}

/// A cluster from an already built kube config (the demo's simulator uses this).
pub fn from_config(config: kube::Config, name: Option<String>) -> Result<Cluster, ConnectError> {
    let server = config.cluster_url.to_string();
    let default_namespace = config.default_namespace.clone();
    let lease_client =
        crate::leader::lease_client(config.clone()).map_err(|source| ConnectError::Client {
            server: server.clone(),
            source,
        })?;
    let client = kube::Client::try_from(config).map_err(|source| ConnectError::Client {
        server: server.clone(),
        source,
    })?;
    Ok(Cluster {
        client,
        lease_client,
        default_namespace,
        name,
        server,
    })
}

/// The kubeconfig kubectl would read, and where it came from; `None` when there is none.
fn load_kubeconfig(explicit: Option<&Path>) -> Result<(Option<Kubeconfig>, String), ConnectError> {
    if let Some(path) = explicit {
        let shown = path.display().to_string();
        return Kubeconfig::read_from(path)
            .map(|kc| (Some(kc), shown.clone()))
            .map_err(|source| ConnectError::Kubeconfig {
                path: shown,
                source,
            });
    }
    match Kubeconfig::from_env() {
        Ok(Some(kc)) => return Ok((Some(kc), "$KUBECONFIG".into())),
        Ok(None) => {}
        Err(source) => {
            return Err(ConnectError::Kubeconfig {
                path: "$KUBECONFIG".into(),
                source,
            });
        }
    }
    let Some(home) = std::env::var_os("HOME").map(PathBuf::from) else {
        return Ok((None, String::new()));
    };
    let default = home.join(".kube").join("config");
    if !default.exists() {
        return Ok((None, String::new()));
    }
    let shown = default.display().to_string();
    Kubeconfig::read_from(&default)
        .map(|kc| (Some(kc), shown.clone()))
        .map_err(|source| ConnectError::Kubeconfig {
            path: shown,
            source,
        })
}

/// Discovery could not be read, even after retries.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the API server's discovery documents at {server}: {source}")]
pub struct DiscoveryError {
    /// The API server's URL.
    pub server: String,
    /// The last failure.
    #[source]
    pub source: ApiError,
}

impl Cluster {
    /// Reads discovery, retrying for a while if the API server cannot be reached, so that
    /// a typo in the server address fails in seconds but a restarting server is waited for.
    pub async fn discover(&self) -> Result<Discovery, DiscoveryError> {
        const ATTEMPTS: u32 = 5;
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(5));
        let mut attempt = 1;
        loop {
            match Discovery::run(&self.client).await {
                Ok(d) => return Ok(d),
                Err(e) if e.is_retryable() && attempt < ATTEMPTS => {
                    let delay = e.retry_after().unwrap_or_else(|| backoff.next_delay());
                    tracing::warn!(error = %e, attempt, retry_in = ?delay, "discovery failed; retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(source) => {
                    return Err(DiscoveryError {
                        server: self.server.clone(),
                        source,
                    });
                }
            }
        }
    }
}
