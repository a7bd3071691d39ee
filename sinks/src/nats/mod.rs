//! The core NATS sink: `nats://[user:pass@|token@]HOST:PORT[,HOST:PORT...]/PREFIX`.
//!
//! Connection, subjects and headers are shared with the JetStream sink
//! ([`crate::nats_client`]).
//!
//! # Delivery
//!
//! Core NATS has no acknowledgement: `publish` sends the batch and then flushes, so a
//! confirmed batch has been written to the server's socket, no more. A publish made
//! while disconnected only fills the client's buffer, which is why the flush (bounded
//! by [`NatsOptions::timeout`]) decides. Use `jetstream://` for stored, acknowledged
//! delivery.

mod sink;

pub use crate::nats_client::NatsOptions;
pub use sink::NatsSink;
