//! Delivery: every sink gets its own bounded queue and task, and a notification counts
//! as delivered only when its sink confirms it.

pub mod sink_task;

pub use sink_task::{SinkOutcome, SinkQueue, spawn_sink};
