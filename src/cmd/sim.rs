//! `kubebridge sim`: the simulated Kubernetes API server, served until shutdown.

use std::future::Future;

use kubebridge_sim::{ReplayConfig, SimConfig};

use super::AppError;
use crate::config::SimOptions;

/// Serves the simulated API server until `shutdown`, writing a kubeconfig for it when
/// asked (the simulator crate's one way to serve: it says where it listens).
pub async fn run(
    options: &SimOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), AppError> {
    let kubeconfig = options.write_kubeconfig.as_deref();
    let served = match options.replay {
        Some(replay) => {
            let config = ReplayConfig {
                pods: replay.pods,
                events: replay.events,
                seed: options.seed,
                namespaces: options.namespaces.max(1),
                ..ReplayConfig::default()
            };
            kubebridge_sim::serve_replay(options.listen, &config, kubeconfig, shutdown).await
        }
        None => {
            kubebridge_sim::serve(options.listen, sim_config(options), kubeconfig, shutdown).await
        }
    };
    served.map_err(|e| AppError::Usage(e.into()))
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
