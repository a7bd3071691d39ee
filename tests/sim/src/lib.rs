//! A simulated Kubernetes API server speaking the kube-apiserver HTTP protocol, for tests, benchmarks and demos.
//!
//! # Layout
//!
//! Imports point one way, from the entry points down to the store:
//!
//! ```text
//! serve -> server (Sim) -> {http, churn, seed, kubeconfig} -> shared (Shared) -> {faults, store, config}
//! http -> {watch, scale, table, media, openapi, discovery, ops, continue_token}
//! ops -> {store, resources, merge_patch, ids, time, error};  store -> resources
//! ```

mod churn;
mod config;
mod continue_token;
mod discovery;
mod error;
mod faults;
mod http;
mod ids;
mod kubeconfig;
mod list;
mod media;
mod merge_patch;
mod openapi;
mod ops;
mod request;
mod resources;
mod response;
mod scale;
mod seed;
mod serve;
mod server;
mod shared;
mod store;
mod table;
mod time;
mod watch;

pub use config::SimConfig;
pub use continue_token::ContinueToken;
pub use error::SimError;
pub use faults::{Failure, Faults};
pub use merge_patch::merge_patch;
pub use serve::{ServeError, serve};
pub use server::Sim;
