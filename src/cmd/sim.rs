//! `kubebridge sim`: the simulated Kubernetes API server, served until shutdown.

use std::future::Future;

use super::AppError;
use crate::config::SimOptions;
use crate::sim::{Sim, SimConfig};

/// Serves the simulated API server until `shutdown`, writing a kubeconfig for it when
/// asked.
pub async fn run(
    options: &SimOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), AppError> {
    let sim = Sim::start(options.listen, sim_config(options))
        .await
        .map_err(|e| AppError::usage(format!("cannot serve on {}: {e}", options.listen)))?;
    eprintln!(
        "kubebridge sim: serving the Kubernetes API on {}",
        sim.url()
    );
    if let Some(path) = &options.write_kubeconfig {
        // Written whole and renamed into place, so a reader polling for it never sees half.
        let partial = path.with_extension("partial");
        sim.write_kubeconfig(&partial, None)
            .and_then(|()| std::fs::rename(&partial, path))
            .map_err(|e| {
                AppError::usage(format!(
                    "cannot write the kubeconfig to {}: {e}",
                    path.display()
                ))
            })?;
        eprintln!(
            "kubebridge sim: kubeconfig in {0}; try kubectl --kubeconfig {0} get pods -A",
            path.display()
        );
    }
    shutdown.await;
    sim.shutdown().await;
    Ok(())
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
