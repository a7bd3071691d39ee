//! A simulated Kubernetes API server speaking the kube-apiserver HTTP protocol, for tests, benchmarks and demos.

mod churn;
mod config;
mod continue_token;
mod discovery;
mod error;
mod faults;
mod http;
mod ids;
mod kubeconfig;
mod media;
mod merge_patch;
mod openapi;
mod ops;
mod resources;
mod scale;
mod seed;
mod server;
mod store;
mod table;
mod time;
mod watch;

pub use crate::selector::{FieldSelector, LabelSelector, SelectorError};
pub use config::SimConfig;
pub use continue_token::ContinueToken;
pub use error::SimError;
pub use faults::{Failure, Faults};
pub use merge_patch::merge_patch;
pub use server::{Sim, serve_forever};
