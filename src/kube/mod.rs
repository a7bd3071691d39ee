//! Cluster access: the client as kubectl finds it ([`cluster`]), raw requests
//! ([`api`]), and discovery, which resolves kubectl-style names ([`discovery`]; offline,
//! from the [`builtin`] table).

pub mod api;
pub mod builtin;
pub mod cluster;
pub mod discovery;

pub use cluster::Cluster;
pub use discovery::{ApiResource, Discovery, ResolveError};
