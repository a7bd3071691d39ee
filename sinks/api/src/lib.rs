//! The contract between kubebridge and its sinks: [`Notification`], [`Sink`], errors.
//!
//! The [`Notification`] envelope, the [`Sink`] trait, and the errors a sink reports.
//!
//! This crate is the leaf of kubebridge's dependency graph. It depends on serde,
//! serde_json, async-trait and thiserror only (no Kafka, NATS, Kubernetes or async
//! runtime crate), so a team can write its own sink against it alone. The built-in
//! sinks (stdout, Kafka, NATS, JetStream) live in `kubebridge-sinks`, which re-exports
//! everything here.
//!
//! # Layout
//!
//! - [`notification`]: the envelope, one per object change, serialized as one JSON
//!   object (JSON Schema: `sinks/envelope.schema.json`).
//! - [`event`]: what happened ([`EventType`]) and how it was learned ([`Origin`]).
//! - [`resource`]: the object's resource, [`ResourceId`].
//! - [`snapshot`]: the frame of a full replay, [`Snapshot`].
//! - [`time`]: the envelope's timestamp format, [`Rfc3339Millis`].
//! - [`sink`]: the [`Sink`] trait.
//! - [`error`]: [`SinkError`] and [`PublishError`], and how a failure is classified.
//!
//! # Writing a sink
//!
//! A sink receives batches of notifications in order and returns only when the
//! destination has confirmed them. kubebridge counts a notification as delivered
//! when, and only when, `publish` says so; on an error it retries what was not
//! confirmed, so delivery is at least once and [`Notification::id`] lets a consumer
//! drop the duplicates a retry may cause.
//!
//! 1. Implement [`Sink`] with `#[async_trait]` (re-exported here as [`macro@async_trait`]):
//!    [`Sink::kind`] is a short fixed name for logs and metric labels, and
//!    [`Sink::publish`] writes a batch and waits for the destination's confirmation (a
//!    delivery report, an acknowledgement, an `fsync`), not merely for a buffer to
//!    accept it.
//! 2. Serialize with [`Notification::to_json`] to publish the envelope as kubebridge's
//!    own sinks do, or pick fields; [`Notification::key`] is the per-object ordering
//!    key.
//! 3. Classify each failure once, where the sink knows best: [`SinkError::Retryable`]
//!    when trying again may work (the destination is down, full or slow),
//!    [`SinkError::Permanent`] when it never will (too large, not authorized: kubebridge
//!    logs and counts the notification and moves on), [`SinkError::Closed`] when the
//!    destination went away for good (kubebridge stops quietly). A batch that failed
//!    part-way says in [`PublishError::delivered`] how many at its start were
//!    confirmed, so only the rest is retried.
//! 4. Deliver anything still buffered in [`Sink::close`], called once at shutdown.
//!
//! `examples/custom_sink.rs` is a complete sink (a file, confirmed on `fsync`) built
//! against this crate alone, with a test that runs it; hand such a sink to kubebridge's
//! `watch` beside the sinks built from `--sink` URIs.

pub mod error;
pub mod event;
pub mod notification;
pub mod resource;
pub mod sink;
pub mod snapshot;
pub mod time;

/// The attribute a [`Sink`] implementation needs, so a sink depends on this crate alone.
pub use async_trait::async_trait;
pub use error::{BoxError, PublishError, SinkError};
pub use event::{EventType, Origin};
pub use notification::Notification;
pub use resource::ResourceId;
pub use sink::Sink;
pub use snapshot::Snapshot;
pub use time::Rfc3339Millis;
