//! `kubebridge check-config FILE`: validates a config file and prints its plan (`crate::plan::Plan`), the
//! same object `watch` runs.
//!
//! It runs without a cluster, so names resolve through the built-in table of Kubernetes
//! resources ([`Discovery::builtin`]) with the same resolution rules discovery uses at
//! start-up; only custom resources are left for discovery (and printed as such). The one
//! difference that remains is the context's namespace, unknown here: a route without
//! namespaces is shown in "the context's namespace".

use std::path::Path;

use super::AppError;
use super::watch::build_sinks;
use crate::config::StreamConfig;
use crate::kube::Discovery;
use crate::plan::{Plan, Resolver};

/// Builds every sink (so URIs and properties are checked exactly as at start-up, without
/// connecting), plans the routes and prints the plan.
pub async fn run(path: &Path, stream: &StreamConfig) -> Result<(), AppError> {
    for route in &stream.routes {
        let context = format!("{}: route {:?}: ", path.display(), route.name);
        build_sinks(route, &context).await?;
    }
    let builtin = Discovery::builtin();
    let resolver = Resolver::Offline(&builtin);
    let plan = Plan::build(&stream.routes, &resolver, None)
        .map_err(|e| AppError::usage(format!("{}: {e}", path.display())))?;
    let transforms = super::transforms::describe(&stream.redaction, &resolver)
        .map_err(|e| AppError::usage(format!("{}: {e}", path.display())))?;
    println!("{}: valid", path.display());
    print!("{plan}");
    print!("{transforms}");
    Ok(())
}
