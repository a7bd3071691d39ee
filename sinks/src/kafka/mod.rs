//! The Kafka sink: `kafka://HOST:PORT[,HOST:PORT...]/TOPIC`, on librdkafka.
//!
//! # Defaults, and why
//!
//! - `acks=all` and `enable.idempotence=true`: a delivery report then means every
//!   in-sync replica has the message, and librdkafka's own retries neither duplicate
//!   nor reorder messages within a partition.
//! - `compression.type=lz4`: Kubernetes objects are repetitive JSON and compress
//!   several times over; lz4 costs a fraction of zstd's CPU in the agent for a
//!   somewhat larger result, and every broker since Kafka 0.10 reads it. Set
//!   `-X compression.type=zstd` to trade CPU for bandwidth.
//! - `message.timeout.ms=0` (never expire): librdkafka's default (300 s) silently
//!   fails messages during a longer outage. kubebridge already bounds memory with its
//!   per-sink queue, so the sink instead waits for the broker: `publish` returns when
//!   the broker is back, and the backlog stays in kubebridge's bounded queue and
//!   librdkafka's bounded buffer (`queue.buffering.max.messages`). Setting a finite
//!   `-X message.timeout.ms=N` makes an outage longer than N surface as a retryable
//!   error instead.
//! - `statistics.interval.ms=1000`: the sink reads librdkafka's statistics once a
//!   second to notice a broker that no longer knows its producer id (see Errors); `0`
//!   turns that detection off.
//! - `linger.ms=0`: `publish` hands librdkafka a whole batch at once and then waits
//!   for it, so kubebridge's batching already does what lingering would, and
//!   librdkafka's default 5 ms is pure latency per batch. Measured against tansu
//!   (2 KB objects, release build): batches of 50 went from 7,300/s to 40,700/s,
//!   batches of 500 from 56,000/s to 105,000/s.
//!
//! A new producer's first delivery takes 0.5-1 s: the idempotent producer asks for its
//! producer id on librdkafka's 500 ms timer (not a setting), and holds every message
//! until it has one. That start-up backlog, falling into the sinks benchmark's
//! measured window or not, made its Kafka p99 at 1,000/s swing from 5 to 400 ms;
//! measured from after it, the p99 was 3-6 ms in 7 runs of 8 with these settings
//! (`linger.ms=0` already), so none of them is changed for it.
//!
//! Any property can be overridden with `-X key=value` ([`KafkaOptions::properties`]);
//! librdkafka rejects unknown keys and bad values, which becomes a
//! [`SinkConfigError`](crate::SinkConfigError) at start-up.
//!
//! # Messages
//!
//! Key: `namespace/name` by default ([`KeyMode`]), so every change of one object lands
//! on one partition, in order. Headers: `type`, `origin`, `resource`
//! (`group/version/resource`), `kubebridge-id` ([`Notification::id`](crate::Notification::id)) and, in
//! CloudEvents binary mode, `ce_*` and `content-type`.
//!
//! # Errors
//!
//! Too large, invalid topic, and topic or cluster authorization failures are
//! [`SinkError::Permanent`](crate::SinkError::Permanent); everything else (queue full, broker down, timeouts, a
//! topic that does not exist yet) is [`SinkError::Retryable`](crate::SinkError::Retryable).
//!
//! # A producer that cannot go on
//!
//! The idempotent producer depends on the broker remembering its producer id and
//! sequence numbers. After a fatal error (e.g. `OUT_OF_ORDER_SEQUENCE_NUMBER`)
//! librdkafka refuses to produce at all; and against a broker that lost its state (a
//! single-node Kafka rebuilt without its data, tansu restarted with memory storage) it
//! bumps its epoch and retries `UNKNOWN_PRODUCER_ID` forever, with no delivery report,
//! no error and `message.timeout.ms=0` never expiring anything: delivery would stop
//! silently. The sink watches for both (the error callback; the producer epoch in the
//! statistics, `health`), stops waiting for reports that will not come, replaces the
//! producer with a new one (a new producer id), and returns a retryable error whose
//! source is [`ProducerReplaced`], with `delivered` = the confirmed prefix. The old
//! producer's queued and in-flight messages are purged with it, so the caller's retry
//! re-sends every unconfirmed notification through the new producer: at least once,
//! some possibly twice, none lost. A delivery error that itself says the state is gone
//! (`UNKNOWN_PRODUCER_ID`, `OUT_OF_ORDER_SEQUENCE_NUMBER`, `INVALID_PRODUCER_EPOCH`) does
//! the same. If the fatal error's cause is permanent (not authorized), the error is
//! permanent.
//!
//! # Files
//!
//! [`options`] (always compiled, so a configuration builds without the `kafka`
//! feature) and `replaced` ([`ProducerReplaced`], likewise); with it: `config` (URI,
//! client properties and their validation), `encoding` (a notification as a record:
//! topic, key, payload, headers), `health` (librdkafka's callbacks: is the producer
//! still able to deliver), `secrets` (which properties hold secrets; scrubbing their
//! values out of librdkafka's messages) and `sink` (publishing, classifying failures, replacing the
//! producer).

pub mod options;
mod replaced;

#[cfg(feature = "kafka")]
mod config;
#[cfg(feature = "kafka")]
mod encoding;
#[cfg(feature = "kafka")]
mod health;
#[cfg(feature = "kafka")]
mod secrets;
#[cfg(feature = "kafka")]
mod sink;

pub use options::{KafkaOptions, KeyMode};
pub use replaced::ProducerReplaced;
#[cfg(feature = "kafka")]
pub use sink::KafkaSink;
