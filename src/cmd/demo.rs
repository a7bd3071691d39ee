//! `kubebridge demo`: the simulated API server in-process, watched over real HTTP.

use std::future::Future;

use crate::cmd::watch::{self as app, AppError};
use crate::kube::cluster;
use crate::config::{NamespaceScope, SimOptions, StreamConfig};
use crate::sim::{Sim, SimConfig};

/// Starts a simulated cluster with steady churn and streams it like `watch` would.
/// Without `-n`, the demo watches all namespaces (the simulator's default context
/// namespace is nearly empty).
pub async fn run(
    mut stream: StreamConfig,
    options: SimOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), AppError> {
    let sim = Sim::start(options.listen, sim_config(&options))
        .await
        .map_err(|e| {
            AppError::Failed(format!("cannot start the simulated API server: {e}").into())
        })?;
    if stream.namespaces == NamespaceScope::ContextDefault {
        stream.namespaces = NamespaceScope::All;
    }
    let uri = sim
        .url()
        .parse()
        .map_err(|e| AppError::Failed(format!("bad simulator URL: {e}").into()))?;
    let cluster = cluster::from_config(kube::Config::new(uri), Some("kubebridge-sim".into()))
        .map_err(|e| AppError::Failed(e.into()))?;
    tracing::info!(server = %sim.url(), "simulated API server started");
    let sinks = app::build_sinks(&stream).await?;
    let result = app::watch(&cluster, &stream, sinks, shutdown).await;
    sim.shutdown().await;
    result
}

/// The simulator configuration for these options.
pub fn sim_config(options: &SimOptions) -> SimConfig {
    SimConfig {
        namespaces: options.namespaces,
        pods: options.pods,
        deployments_per_namespace: options.deployments_per_namespace,
        churn_per_sec: options.churn_per_sec,
        history: options.history,
        seed: options.seed,
        ..SimConfig::default()
    }
}
