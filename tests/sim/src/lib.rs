//! A simulated Kubernetes API server speaking the kube-apiserver HTTP protocol, for tests, benchmarks and demos.
//!
//! # Layout
//!
//! Imports point one way, from the entry points down to the store; nothing imports
//! `server` but `serve`, and `Shared` (shared.rs) is what http and churn hold:
//!
//! ```text
//! serve -> server (Sim) -> {http, churn, seed, kubeconfig, shared}
//! serve -> replay (Replay: pre-built LIST + watch stream for benchmarks) -> {seed, store, discovery, response}
//! http -> {list, watch, request, response, reviews, scale, openapi -> discovery, media, ops}
//! list -> {watch (Filter), request, response, table, continue_token};  watch -> faults (WatchFaults, WatchLine)
//! churn, seed, scale -> ops -> {store -> resources, merge_patch, ids, time, error}
//! shared -> {faults -> store, store, reviews, config};  media -> table -> time
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
mod replay;
mod request;
mod resources;
mod response;
mod reviews;
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
pub use faults::{Failure, Faults, Rule, WatchLine};
pub use merge_patch::merge_patch;
pub use replay::{Replay, ReplayConfig, ReplayData};
pub use reviews::{ACCESS_REVIEWS, Permission, Reviews, TOKEN_REVIEWS};
pub use serve::{ServeError, serve, serve_replay};
pub use server::Sim;
