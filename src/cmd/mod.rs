//! One file per subcommand; [`run`] dispatches a parsed [`Command`] to it, and
//! [`AppError`] carries the exit code an error deserves.

pub mod check_config;
#[cfg(feature = "sim")]
pub mod demo;
pub mod panic_hook;
pub mod rbac;
#[cfg(feature = "sim")]
pub mod sim;
pub(crate) mod transforms;
pub mod watch;

use std::future::Future;

use crate::config::Command;

pub use watch::{CustomSinks, watch};

/// An error that ends kubebridge, with the exit code it deserves.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Bad input: flags, names, config. Exit code 2.
    #[error(transparent)]
    Usage(Box<dyn std::error::Error + Send + Sync>),
    /// Anything else that stops kubebridge. Exit code 1.
    #[error(transparent)]
    Failed(Box<dyn std::error::Error + Send + Sync>),
}

impl AppError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            AppError::Usage(_) => 2,
            AppError::Failed(_) => 1,
        }
    }

    pub(crate) fn usage(message: impl Into<String>) -> Self {
        AppError::Usage(message.into().into())
    }

    pub(crate) fn failed(message: impl Into<String>) -> Self {
        AppError::Failed(message.into().into())
    }
}

/// Runs one command until it finishes or `shutdown` resolves.
pub async fn run(
    command: Command,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), AppError> {
    match command {
        Command::Watch { cluster, stream } => watch::run(&cluster, &stream, shutdown).await,
        #[cfg(feature = "sim")]
        Command::Demo { stream, sim } => demo::run(stream, sim, shutdown).await,
        #[cfg(feature = "sim")]
        Command::Sim(options) => sim::run(&options, shutdown).await,
        #[cfg(not(feature = "sim"))]
        Command::Demo { .. } | Command::Sim(_) => Err(AppError::usage(
            "this kubebridge was built without the simulated API server (cargo feature `sim`)",
        )),
        Command::CheckConfig { path, stream } => check_config::run(&path, &stream).await,
        Command::Rbac {
            cluster,
            resources,
            grants,
        } => rbac::run(&cluster, &resources, &grants).await,
    }
}
