//! Serving a simulator for a command: bind, say where, write a kubeconfig, run until told to stop.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::config::SimConfig;
use crate::replay::{Replay, ReplayConfig};
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
        write_kubeconfig(path, &sim.kubeconfig_yaml(None))?;
    }
    shutdown.await;
    sim.shutdown().await;
    Ok(())
}

/// Serves a replay server (see [`crate::Replay`]) on `listen` until `shutdown`
/// resolves, announced and with a kubeconfig as [`serve`] does.
pub async fn serve_replay(
    listen: SocketAddr,
    config: &ReplayConfig,
    kubeconfig: Option<&Path>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let replay = Replay::start(listen, config)
        .await
        .map_err(|source| ServeError::Bind {
            addr: listen,
            source,
        })?;
    let data = replay.data();
    eprintln!(
        "kubebridge sim: replaying {} pods ({} bytes of JSON) and {} watch events ({} bytes) on http://{}",
        data.pods(),
        data.list_item_bytes(),
        data.events(),
        data.watch_stream_bytes(),
        replay.addr()
    );
    if let Some(path) = kubeconfig {
        write_kubeconfig(path, &replay.kubeconfig_yaml())?;
    }
    shutdown.await;
    Ok(())
}

/// Writes a kubeconfig whole, then renames it into place.
fn write_kubeconfig(path: &Path, yaml: &str) -> Result<(), ServeError> {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, yaml)
        .and_then(|()| std::fs::rename(&partial, path))
        .map_err(|source| ServeError::Kubeconfig {
            path: path.to_owned(),
            source,
        })?;
    eprintln!(
        "kubebridge sim: kubeconfig in {0}; try kubectl --kubeconfig {0} get pods -A",
        path.display()
    );
    Ok(())
}
