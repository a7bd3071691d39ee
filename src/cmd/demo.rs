//! `kubebridge demo`: the simulated API server in-process, watched over real HTTP.

use std::future::Future;

use super::AppError;
use super::sim::sim_config;
use crate::config::{NamespaceScope, SimOptions, StreamConfig};
use crate::kube::cluster;
use kubebridge_sim::Sim;

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
        .map_err(|e| AppError::failed(format!("cannot start the simulated API server: {e}")))?;
    for route in &mut stream.routes {
        if route.namespaces == NamespaceScope::ContextDefault {
            route.namespaces = NamespaceScope::All;
        }
    }
    let uri = sim
        .url()
        .parse()
        .map_err(|e| AppError::failed(format!("bad simulator URL: {e}")))?;
    let cluster = cluster::from_config(kube::Config::new(uri), Some("kubebridge-sim".into()))
        .map_err(|e| AppError::Failed(e.into()))?;
    tracing::info!(server = %sim.url(), "simulated API server started");
    let result = super::watch(&cluster, &stream, Vec::new(), shutdown).await;
    sim.shutdown().await;
    result
}
