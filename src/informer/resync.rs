//! The resync schedule: when to replay the whole cache as SYNC notifications.

use std::time::Duration;

use tokio::time::{Instant, Interval, MissedTickBehavior};

/// Ticks every resync period, the first a full period after it starts; or never, when
/// resync is off.
pub(super) struct Resync {
    tick: Option<Interval>,
}

impl Resync {
    /// A schedule with `period`, or none.
    pub(super) fn new(period: Option<Duration>) -> Self {
        let tick = period.map(|period| {
            let mut tick = tokio::time::interval_at(Instant::now() + period, period);
            // A slow sink delays the next replay rather than causing a burst of them.
            tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
            tick
        });
        Resync { tick }
    }

    /// Waits for the next replay; forever when resync is off.
    pub(super) async fn due(&mut self) {
        match &mut self.tick {
            Some(tick) => {
                tick.tick().await;
            }
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::sync::mpsc;

    use crate::informer::testing::{obj, pods, summary};
    use crate::informer::{Delta, Processor, ProcessorConfig};

    #[tokio::test(start_paused = true)]
    async fn resync_replays_the_cache_on_schedule() {
        let (tx, mut rx) = crate::queue::queue(64, crate::queue::Overflow::Block);
        let p = Processor::new(
            "pods".into(),
            pods(),
            ProcessorConfig {
                emit_initial: false,
                resync: Some(Duration::from_secs(30)),
                cluster: None,
                cache_compression: Default::default(),
            },
            vec![crate::informer::Subscription::new(
                std::sync::Arc::new(
                    crate::filter::Filters::compile("r", &crate::filter::FilterConfig::default())
                        .expect("valid"),
                ),
                vec![tx],
            )],
            crate::metrics::Metrics::new(),
        );
        let (delta_tx, delta_rx) = mpsc::channel(8);
        let task = tokio::spawn(p.run(delta_rx));
        delta_tx
            .send(Delta::Replace {
                objects: vec![obj("b", "ub", 2), obj("a", "ua", 1)],
                initial: true,
            })
            .await
            .expect("send");
        tokio::time::sleep(Duration::from_secs(29)).await;
        assert!(rx.try_recv().is_none(), "nothing before the first period");
        tokio::time::sleep(Duration::from_secs(2)).await;
        let first: Vec<_> = (0..2).map(|_| rx.try_recv().expect("sync")).collect();
        assert_eq!(
            summary(&first.iter().map(|q| (*q.note).clone()).collect::<Vec<_>>()),
            ["SYNC resync a 1", "SYNC resync b 2"]
        );
        assert_eq!(
            first[1].note.snapshot.as_ref().map(|s| (s.index, s.total)),
            Some((1, 2))
        );
        tokio::time::sleep(Duration::from_secs(30)).await;
        let second = rx.try_recv().expect("second replay");
        assert_ne!(
            second.note.snapshot.as_ref().map(|s| s.id.clone()),
            first[0].note.snapshot.as_ref().map(|s| s.id.clone())
        );
        drop(delta_tx);
        task.await.expect("processor ends when the reflector does");
    }
}
