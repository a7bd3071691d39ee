//! Serving a simulator for a command: bind, say where, write a kubeconfig, run until told to stop.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::config::SimConfig;
use crate::server::Sim;

/// Why [`serve`] could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listen address could not be bound.
    #[error("cannot serve on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why binding failed.
        source: std::io::Error,
    },
    /// The kubeconfig could not be written.
    #[error("cannot write the kubeconfig to {}: {source}", path.display())]
    Kubeconfig {
        /// Where it was to be written.
        path: PathBuf,
        /// Why writing failed.
        source: std::io::Error,
    },
}

/// Serves a simulator on `listen` until `shutdown` resolves: says on stderr where it
/// listens and, with `kubeconfig`, writes a kubeconfig for it there (whole, then renamed
/// into place, so a reader polling for the file never sees half of it).
pub async fn serve(
    listen: SocketAddr,
    config: SimConfig,
    kubeconfig: Option<&Path>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let sim = Sim::start(listen, config)
        .await
        .map_err(|source| ServeError::Bind {
            addr: listen,
            source,
        })?;
    eprintln!(
        "kubebridge sim: serving the Kubernetes API on {}",
        sim.url()
    );
    if let Some(path) = kubeconfig {
        let partial = path.with_extension("partial");
        sim.write_kubeconfig(&partial, None)
            .and_then(|()| std::fs::rename(&partial, path))
            .map_err(|source| ServeError::Kubeconfig {
                path: path.to_owned(),
                source,
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
