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

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use tokio::sync::Notify;

/// Epoch bumps without a delivery in between that mean the broker has lost this
/// producer's state rather than expired it once: KIP-360's bump for an idle producer
/// happens once and is followed by deliveries, not by another bump. Measured against
/// tansu: about 20 bumps a second, none delivering.
const EPOCH_BUMPS_LOST: i64 = 3;

/// Whether a producer can still deliver: set once, from librdkafka's callbacks, when
/// it cannot.
#[derive(Default)]
pub(super) struct Health {
    broken: Mutex<Option<String>>,
    changed: Notify,
    /// `eos.producer_epoch` in the first statistics after the latest delivery (or
    /// since the producer started); `eos.epoch_cnt` does not count these local bumps.
    baseline: Mutex<Option<i64>>,
    /// Whether a delivery succeeded since the previous statistics.
    delivered: AtomicBool,
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

    /// Notes a successful delivery: the producer works, whatever its epoch.
    pub fn delivered(&self) {
        self.delivered.store(true, Ordering::Relaxed);
    }

    /// Reads one statistics report's producer epoch (-1 until the producer has an id).
    fn epoch(&self, producer_epoch: i64) {
        let delivered = self.delivered.swap(false, Ordering::Relaxed);
        let Ok(mut baseline) = self.baseline.lock() else {
            return;
        };
        let bumps = match *baseline {
            // A delivery, a first report, or a new producer id (its epoch starts over).
            Some(base) if !delivered && producer_epoch >= base => producer_epoch - base,
            _ => {
                *baseline = Some(producer_epoch);
                0
            }
        };
        drop(baseline);
        if bumps >= EPOCH_BUMPS_LOST {
            self.set_broken(format!(
                "the broker does not know this producer's id: its epoch was bumped {bumps} \
                 times without a delivery (UNKNOWN_PRODUCER_ID; a broker restarted without \
                 its data forgets producer ids)"
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
            self.health.epoch(eos.producer_epoch);
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
    fn repeated_epoch_bumps_without_a_delivery_break_the_producer() {
        let health = Health::new();
        let context = HealthContext::new(&health);
        let stats = |n: i64| {
            let json = format!(r#"{{"name":"p","eos":{{"producer_epoch":{n},"producer_id":1}}}}"#);
            context.stats_raw(json.as_bytes());
        };
        stats(-1);
        stats(0);
        stats(1);
        health.delivered();
        stats(2);
        context.stats_raw(b"{\"name\":\"no eos\"}");
        stats(3);
        health.delivered();
        stats(4);
        assert_eq!(
            health.broken(),
            None,
            "bumps followed by deliveries are KIP-360 at work"
        );
        // Slowly, one bump per report, never delivering.
        stats(5);
        stats(6);
        assert_eq!(health.broken(), None);
        stats(7);
        let why = health.broken().expect("broken");
        assert!(why.contains("bumped 3 times"), "{why}");
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
