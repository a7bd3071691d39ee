//! The JetStream sink: `jetstream://[user:pass@|token@]HOST:PORT/PREFIX[?stream=NAME]`.
//!
//! Connection, subjects and headers are those of the core NATS sink, from
//! [`crate::nats_client`]. Each message also carries `Nats-Msg-Id` = [`Notification::id`](crate::Notification::id),
//! so the stream's duplicate window (2 minutes by default) drops the copies a retry
//! publishes again. A batch is pipelined: up to [`MAX_IN_FLIGHT`] publishes are sent
//! before the oldest acknowledgement is awaited, and acknowledgements are awaited in
//! order, so one slow round trip is not paid per message.
//!
//! With `?stream=NAME`, the sink makes sure, before its first publish, that the stream
//! exists, creating it if not with subjects `PREFIX.>` and the server's defaults
//! (file storage, unlimited retention, 2-minute duplicate window). An existing stream is
//! used as it is. Without `stream=`, a stream must already capture the subjects, or
//! every publish fails (retryably, so creating the stream later fixes it).
//!
//! # Files
//!
//! `config` (the `stream=` parameter and the stream to create), `encoding` (the
//! shared message plus `Nats-Msg-Id`) and `sink` (pipelined publishing).

mod config;
mod encoding;
mod sink;

pub use sink::{JetStreamSink, MAX_IN_FLIGHT};
