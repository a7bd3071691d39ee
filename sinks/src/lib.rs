//! kubebridge's sinks, and building one from its URI ([`sink_from_uri`]).
//!
//! The contract every sink implements (the [`Notification`] envelope, the [`Sink`]
//! trait and its errors) lives in the `kubebridge-sink-api` crate, which a third-party
//! sink builds against alone; this crate re-exports it, so `kubebridge_sinks::Sink`
//! and the rest work too. Read that crate's documentation for how to write a sink.
//!
//! Each broker sink is behind a cargo feature, both on by default: `kafka` (librdkafka,
//! built with cmake) and `nats` (core NATS and JetStream, on async-nats). The stdout
//! sink is always there. The option types ([`SinkOptions`], [`KafkaOptions`],
//! [`NatsOptions`], [`KeyMode`], [`Format`]) exist in every build, so a caller's
//! configuration compiles the same; a URI naming a sink this build lacks is a
//! [`SinkConfigError`] naming the feature ([`factory::AVAILABLE`] lists what a build
//! has).
//!
//! # Layout
//!
//! Each broker sink is split as Vector splits a sink: its options, its configuration
//! (URI and client), its encoding (a notification as a message), and the sink that
//! publishes and classifies failures.
//!
//! - [`factory`]: a sink from its URI, and the sinks this build has.
//! - [`options`]: [`SinkOptions`], every sink's options in one set (the CLI's flags).
//! - [`config_error`]: [`SinkConfigError`], a URI or option that cannot work.
//! - [`stdout`]: JSON lines on standard output.
//! - [`kafka`]: Kafka, on librdkafka: `options` (always), `config`, `encoding`, `sink`.
//! - `nats`: the core NATS sink; `jetstream`: the JetStream sink (`config`,
//!   `encoding`, `sink`); both on [`nats_client`]: their `options` (always), the
//!   `connection` (URI, credentials, TLS, flush) and the `message` (subject, body,
//!   headers) they share.
//! - [`cloudevents`]: the CloudEvents 1.0 layouts a message body may take.
//! - `headers`: the message headers, computed once for Kafka, NATS and JetStream.
//! - `subject`: topic and subject templates; `uri`: splitting a sink URI, and
//!   [`redact`] for logs.

pub mod cloudevents;
pub mod config_error;
pub mod factory;
#[cfg(feature = "nats")]
pub mod jetstream;
pub mod kafka;
#[cfg(feature = "nats")]
pub mod nats;
pub mod nats_client;
pub mod options;
pub mod stdout;

#[cfg(any(feature = "kafka", feature = "nats"))]
mod headers;
#[cfg(any(feature = "kafka", feature = "nats"))]
mod subject;
mod uri;

pub use cloudevents::Format;
pub use config_error::SinkConfigError;
pub use factory::sink_from_uri;
#[cfg(feature = "nats")]
pub use jetstream::JetStreamSink;
#[cfg(feature = "kafka")]
pub use kafka::KafkaSink;
pub use kafka::{KafkaOptions, KeyMode};
#[cfg(feature = "nats")]
pub use nats::NatsSink;
pub use nats_client::NatsOptions;
pub use options::SinkOptions;
pub use stdout::StdoutSink;
pub use uri::redact;

/// The sink API, re-exported: third-party sinks depend on `kubebridge-sink-api` alone.
pub use kubebridge_sink_api as api;
pub use kubebridge_sink_api::{
    BoxError, EventType, Notification, Origin, PublishError, ResourceId, Rfc3339Millis, Sink,
    SinkError, Snapshot,
};
