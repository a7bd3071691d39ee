//! The contract every kubebridge sink implements, and the sinks themselves.
//!
//! This crate is the leaf of kubebridge's dependency graph: it knows nothing about
//! Kubernetes clients, so a team can write its own sink against it alone.
//!
//! # Layout
//!
//! - [`notification`]: the envelope, one per object change, serialized as one JSON object.
//! - [`sink`]: the [`Sink`] trait and how a sink reports success and failure.
//! - [`stdout`]: JSON lines on standard output.
//! - [`kafka`]: Kafka, on librdkafka.
//! - [`nats`] and [`jetstream`]: core NATS and JetStream.
//! - [`cloudevents`]: the CloudEvents 1.0 layouts a message may take.
//! - [`factory`]: a sink from its URI, [`sink_from_uri`].
//!
//! # Writing a sink
//!
//! A sink receives batches of notifications in order and returns only when the
//! destination has confirmed them. kubebridge counts a notification as delivered
//! when, and only when, `publish` says so; on an error it retries what was not
//! confirmed, so delivery is at least once and [`Notification::id`] lets a consumer
//! drop the duplicates a retry may cause.

pub mod cloudevents;
pub mod config_error;
pub mod factory;
pub mod jetstream;
pub mod kafka;
pub mod nats;
pub mod notification;
pub mod sink;
pub mod stdout;
mod subject;
mod uri;

pub use cloudevents::Format;
pub use config_error::SinkConfigError;
pub use factory::{SinkOptions, sink_from_uri};
pub use jetstream::JetStreamSink;
pub use kafka::{KafkaOptions, KafkaSink, KeyMode};
pub use nats::{NatsOptions, NatsSink};
pub use notification::{EventType, Notification, Origin, ResourceId, Snapshot};
pub use sink::{PublishError, Sink, SinkError};
pub use stdout::StdoutSink;
pub use uri::redact;
