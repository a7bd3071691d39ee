//! `kubebridge sim`: the simulated Kubernetes API server, served until shutdown.

use std::future::Future;

use kubebridge_sim::SimConfig;

use super::AppError;
use crate::config::SimOptions;

/// Serves the simulated API server until `shutdown`, writing a kubeconfig for it when
/// asked (the simulator crate's one way to serve: it says where it listens).
pub async fn run(
    options: &SimOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), AppError> {
    let kubeconfig = options.write_kubeconfig.as_deref();
    kubebridge_sim::serve(options.listen, sim_config(options), kubeconfig, shutdown)
        .await
        .map_err(|e| AppError::Usage(e.into()))
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
        managed_fields: options.managed_fields,
        ..SimConfig::default()
    }
}
