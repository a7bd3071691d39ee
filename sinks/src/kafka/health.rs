//! What librdkafka's callbacks say about a producer, for `publish` to act on: whether
//! it can still deliver.
//!
//! Two things end a producer:
//!
//! - a fatal error (the error callback's `ERR__FATAL`): librdkafka refuses to produce
//!   from then on;
//! - a broker that no longer knows the producer's id. Its idempotent producer then
//!   answers every `UNKNOWN_PRODUCER_ID` by bumping its epoch locally and retrying,
//!   which a broker that lost its producer state (tansu restarted without its data)
//!   rejects again, about 20 times a second, forever, without a delivery report, an
//!   error callback or a log line above debug. The only outward sign is the epoch
//!   counter in librdkafka's statistics (`eos.producer_epoch`), so the sink asks for
//!   statistics every second and reads that.

use std::sync::{Arc, Mutex};

use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use tokio::sync::Notify;

/// Epoch bumps within one statistics interval that mean the broker has lost this
/// producer's state rather than expired it once: KIP-360's bump for an idle producer
/// happens once, and a working bump is followed by deliveries, not another bump.
/// Measured against tansu: about 20 a second.
const EPOCH_BUMPS_LOST: i64 = 3;

/// Whether a producer can still deliver: set once, from librdkafka's callbacks, when
/// it cannot.
#[derive(Default)]
pub(super) struct Health {
    broken: Mutex<Option<String>>,
    changed: Notify,
    /// `eos.producer_epoch` in the previous statistics (`eos.epoch_cnt` does not count
    /// these local bumps).
    epochs: Mutex<Option<i64>>,
}

impl Health {
    pub fn new() -> Arc<Health> {
        Arc::default()
    }

    /// Why the producer cannot go on, if it cannot.
    pub fn broken(&self) -> Option<String> {
        self.broken.lock().map(|b| b.clone()).unwrap_or(None)
    }

    /// Resolves once the producer is broken (at once if it already is).
    pub async fn wait_broken(&self) {
        loop {
            let changed = self.changed.notified();
            if self.broken().is_some() {
                return;
            }
            changed.await;
        }
    }

    pub(super) fn set_broken(&self, why: String) {
        if let Ok(mut broken) = self.broken.lock()
            && broken.is_none()
        {
            *broken = Some(why);
        }
        self.changed.notify_waiters();
    }

    /// Reads one statistics report's producer epoch.
    fn epochs(&self, producer_epoch: i64) {
        let previous = self
            .epochs
            .lock()
            .ok()
            .and_then(|mut last| last.replace(producer_epoch));
        if let Some(previous) = previous
            && producer_epoch - previous >= EPOCH_BUMPS_LOST
        {
            self.set_broken(format!(
                "the broker does not know this producer's id: {} epoch bumps in one statistics \
                 interval (UNKNOWN_PRODUCER_ID; a broker restarted without its data forgets \
                 producer ids)",
                producer_epoch - previous
            ));
        }
    }
}

/// The part of librdkafka's statistics JSON the sink reads.
#[derive(serde::Deserialize)]
struct Statistics {
    eos: Option<Eos>,
}

#[derive(serde::Deserialize)]
struct Eos {
    producer_epoch: i64,
}

/// The producer's librdkafka context: records in [`Health`] the errors after which the
/// producer cannot go on, and otherwise logs as rdkafka's default context does.
pub(super) struct HealthContext {
    health: Arc<Health>,
}

impl HealthContext {
    pub fn new(health: &Arc<Health>) -> HealthContext {
        HealthContext {
            health: health.clone(),
        }
    }
}

impl ClientContext for HealthContext {
    fn stats_raw(&self, statistics: &[u8]) {
        if let Ok(Statistics { eos: Some(eos) }) = serde_json::from_slice(statistics) {
            self.health.epochs(eos.producer_epoch);
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal) {
            self.health
                .set_broken(format!("fatal producer error: {reason}"));
        }
        log::error!("librdkafka: {error}: {reason}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_epoch_bumps_break_the_producer_and_one_does_not() {
        let health = Health::new();
        let context = HealthContext::new(&health);
        let stats =
            |n: i64| format!(r#"{{"name":"p","eos":{{"producer_epoch":{n},"producer_id":1}}}}"#);
        context.stats_raw(stats(0).as_bytes());
        context.stats_raw(stats(1).as_bytes());
        context.stats_raw(b"{\"name\":\"no eos\"}");
        context.stats_raw(stats(2).as_bytes());
        assert_eq!(
            health.broken(),
            None,
            "one bump at a time is KIP-360 at work"
        );
        context.stats_raw(stats(25).as_bytes());
        let why = health.broken().expect("broken");
        assert!(why.contains("23 epoch bumps"), "{why}");
    }

    #[tokio::test]
    async fn a_fatal_error_wakes_the_waiter() {
        let health = Health::new();
        let waiter = tokio::spawn({
            let health = health.clone();
            async move { health.wait_broken().await }
        });
        tokio::task::yield_now().await;
        HealthContext::new(&health).error(
            KafkaError::Global(RDKafkaErrorCode::Fatal),
            "Broker: Out of order sequence number",
        );
        waiter.await.expect("woken");
        assert!(health.broken().expect("broken").contains("Out of order"));
    }
}
