//! Delivery: every sink gets its own bounded queue and task, and a notification counts
//! as delivered only when its sink confirms it.

pub(crate) mod sink_task;

pub(crate) use sink_task::{QueueBounds, SinkHandle, SinkOutcome, spawn_sink};
