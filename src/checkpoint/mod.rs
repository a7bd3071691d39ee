//! Ack-coupled checkpoints: per informer, the point up to which every sink has settled
//! what it was handed, persisted at a bounded rate, so a restart or a new leader resumes
//! with the difference between the checkpoint and the present instead of nothing (lost
//! deletes) or everything (duplicates).
//!
//! [`crate::confirm`] (below this module, beside the queue): what a sink queue carries
//! and the receipts sinks settle; [`tracker`]:
//! the confirmed point and index; [`format`]: the bytes; [`store`], [`file`] and
//! [`configmap`]: where they are kept; [`identity`]: whose checkpoint it is; [`run`]:
//! resuming at start and writing while running. The informer's diff turns a resumed
//! index into notifications; this module never sees an object's bytes.

pub mod configmap;
pub(crate) mod file;
pub mod format;
pub(crate) mod identity;
pub mod run;
pub mod store;
pub mod tracker;

pub use store::CheckpointUri;

// Public for the benchmark (tests/bench/checkpoint.rs) and for tools that read
// checkpoints: the format, the index it holds, and the ConfigMap store.
pub use configmap::ConfigMapStore;
pub use format::Checkpoint;
pub use store::StoreError;
pub use tracker::{Confirmed, Index, Known};
