//! The fan-out: hands every notification to each route that subscribes to the informer,
//! in order. Each route's [`RouteStage`] runs first, once per notification and route
//! (not per sink), so a notification the route holds back costs no queue memory and no
//! sink work; what passes goes to each of the route's sink queues, with a receipt from
//! that sink's ledger when the informer keeps a checkpoint. A notification a route holds
//! back never enters its queues, so it is never outstanding there: the checkpoint does
//! not wait for it.

use std::sync::Arc;

use kubebridge_sinks::Notification;

use crate::checkpoint::tracker::Tracker;
use crate::confirm::{Ledger, Queued};
use crate::filter::{Filters, RouteStage};
use crate::metrics::Metrics;
use crate::queue::{QueueSender, Sent};

/// Where a subscriber's notifications go: a sink's bounded queue. Under the `block`
/// policy a full queue makes the processor wait, which stops the reflector reading the
/// watch (backpressure).
pub type Subscriber = QueueSender<Queued>;

/// One route's subscription to an informer: its compiled filters and its sinks' queues.
pub struct Subscription {
    pub(crate) filters: Arc<Filters>,
    pub(crate) queues: Vec<Subscriber>,
}

impl Subscription {
    /// The route with `filters`, publishing to `queues`.
    pub(crate) fn new(filters: Arc<Filters>, queues: Vec<Subscriber>) -> Subscription {
        Subscription { filters, queues }
    }
}

/// One sink queue of a route, with its checkpoint ledger (if any).
struct Sink {
    queue: Subscriber,
    ledger: Option<Arc<Ledger>>,
}

/// A route as the fan-out holds it.
struct Route {
    stage: RouteStage,
    sinks: Vec<Sink>,
}

/// The subscribers of one informer.
pub(super) struct FanOut {
    name: String,
    routes: Vec<Route>,
}

impl FanOut {
    /// The routes subscribed to the informer called `name` (for logs); with `tracker`,
    /// each sink queue gets a ledger of its own.
    pub(super) fn new(
        name: String,
        subscriptions: Vec<Subscription>,
        tracker: Option<&Tracker>,
        metrics: &Metrics,
    ) -> Self {
        let routes = subscriptions
            .into_iter()
            .map(|s| Route {
                stage: RouteStage::new(s.filters, metrics.clone()),
                sinks: s
                    .queues
                    .into_iter()
                    .map(|queue| Sink {
                        queue,
                        ledger: tracker.map(Tracker::ledger),
                    })
                    .collect(),
            })
            .collect();
        FanOut { name, routes }
    }

    /// Whether every subscriber has gone.
    pub(super) fn is_empty(&self) -> bool {
        self.routes.iter().all(|r| r.sinks.is_empty())
    }

    /// Passes `note` through each route's stage and queues what it publishes for each of
    /// the route's sinks, waiting where a queue is full and blocks; `seq` is its number
    /// in the checkpoint's tracking, if it is tracked. A sink that stopped for good is
    /// dropped; the others go on.
    pub(super) async fn send(&mut self, note: Arc<Notification>, seq: Option<u64>) {
        for route in &mut self.routes {
            if route.sinks.is_empty() {
                continue;
            }
            let Some(published) = route.stage.pass(&note) else {
                continue;
            };
            let mut i = 0;
            while i < route.sinks.len() {
                let sink = &route.sinks[i];
                let receipt = seq.zip(sink.ledger.as_ref()).map(|(seq, l)| l.issue(seq));
                let item = Queued {
                    note: published.clone(),
                    receipt,
                };
                match sink.queue.send(item).await {
                    Ok(Sent::Queued) => i += 1,
                    Ok(Sent::Evicted(evicted)) => {
                        for old in evicted {
                            tracing::warn!(
                                informer = %self.name, object = %old.note.key(), id = %old.note.id(),
                                "sink queue full: dropped the oldest notification (--overflow drop-oldest)"
                            );
                            // Lost, logged and counted: the checkpoint does not wait for it.
                            old.settle();
                        }
                        i += 1;
                    }
                    Err(_) => {
                        // The sink behind it stopped for good (a closed pipe). Its receipt
                        // stays outstanding: a checkpoint never claims it was delivered.
                        route.sinks.swap_remove(i);
                    }
                }
            }
        }
    }

    /// The fan-out of one route without filters, for tests.
    #[cfg(test)]
    fn unfiltered(name: &str, queues: Vec<Subscriber>, tracker: Option<&Tracker>) -> FanOut {
        let filters = Arc::new(
            Filters::compile("r", &crate::filter::FilterConfig::default()).expect("valid"),
        );
        FanOut::new(
            name.into(),
            vec![Subscription::new(filters, queues)],
            tracker,
            &Metrics::new(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::tracker::{Change, Known, Tracker};
    use crate::informer::Delta;
    use crate::informer::testing::{obj, processor};
    use crate::queue::{Overflow, queue};

    fn note() -> Arc<Notification> {
        let mut p = processor(true);
        let notes = p.apply(Delta::Added(obj("a", "ua", 1)));
        Arc::new(notes.into_iter().next().expect("ADDED"))
    }

    fn put(t: &Tracker, rv: u64) -> u64 {
        let known = Known {
            uid: "ua".into(),
            resource_version: rv.to_string(),
        };
        t.record(Change::Put("ns/a".into(), known), rv.to_string())
    }

    #[tokio::test]
    async fn evictions_settle_and_a_closed_sink_holds_the_checkpoint_back() {
        let tracker = Tracker::new(None);
        let (evicting, _evicting_rx) = queue(1, Overflow::DropOldest);
        let (closing, closing_rx) = queue(8, Overflow::Block);
        let mut fanout = FanOut::unfiltered("pods", vec![evicting, closing], Some(&tracker));
        for rv in 1..=2 {
            let seq = put(&tracker, rv);
            fanout.send(note(), Some(seq)).await;
            tracker.handed(seq);
        }
        // The second evicted the first (settled as lost); the closing sink holds both.
        drop(closing_rx);
        let seq = put(&tracker, 3);
        fanout.send(note(), Some(seq)).await;
        tracker.handed(seq);
        assert!(!tracker.advance(), "the closed sink never confirmed 1");
        assert_eq!(tracker.unconfirmed(), 3);
    }

    #[tokio::test]
    async fn an_evicted_notification_is_settled_as_lost() {
        let tracker = Tracker::new(None);
        let (evicting, mut rx) = queue(1, Overflow::DropOldest);
        let mut fanout = FanOut::unfiltered("pods", vec![evicting], Some(&tracker));
        for rv in 1..=2 {
            let seq = put(&tracker, rv);
            fanout.send(note(), Some(seq)).await;
            tracker.handed(seq);
        }
        assert!(tracker.advance(), "1 was evicted: nothing to wait for");
        assert_eq!(tracker.confirmed().seq, 1, "2 is still queued");
        rx.try_recv().expect("2").settle();
        tracker.advance();
        assert_eq!(tracker.confirmed().seq, 2);
    }

    mod filtered {

        use std::sync::Arc;

        use kubebridge_sinks::{EventType, Notification};

        use super::*;
        use crate::filter::FilterConfig;
        use crate::informer::testing::{obj, pods};
        use crate::informer::{Delta, Processor, ProcessorConfig};
        use crate::queue::{Overflow, queue};

        fn filters(config: FilterConfig) -> Arc<Filters> {
            Arc::new(Filters::compile("r", &config).expect("valid"))
        }

        #[tokio::test]
        async fn each_route_filters_once_for_all_its_sinks_and_unfiltered_routes_share_the_arc() {
            let (a1, mut ra1) = queue(8, Overflow::Block);
            let (a2, mut ra2) = queue(8, Overflow::Block);
            let (b, mut rb) = queue(8, Overflow::Block);
            let only_deleted = FilterConfig {
                types: vec![EventType::Deleted],
                ..FilterConfig::default()
            };
            let metrics = Metrics::new();
            let mut p = Processor::new(
                "pods".into(),
                pods(),
                ProcessorConfig {
                    emit_initial: true,
                    resync: None,
                    cluster: None,
                    cache_compression: Default::default(),
                },
                vec![
                    Subscription::new(filters(FilterConfig::default()), vec![a1, a2]),
                    Subscription::new(filters(only_deleted), vec![b]),
                ],
                metrics.clone(),
            );
            let notes = p.apply(Delta::Replace {
                objects: vec![obj("a", "ua", 1)],
                initial: true,
            });
            let note = Arc::new(notes.into_iter().next().expect("ADDED"));
            p.fanout_for_test().send(note.clone(), None).await;
            let (x, y) = (
                ra1.try_recv().expect("a1").note,
                ra2.try_recv().expect("a2").note,
            );
            assert!(
                Arc::ptr_eq(&x, &note) && Arc::ptr_eq(&y, &note),
                "the default route copies nothing"
            );
            assert!(
                rb.try_recv().is_none(),
                "ADDED is not among route b's types"
            );
            let text = metrics.render();
            assert!(
                text.contains(r#"kubebridge_route_held_total{reason="type",route="r"} 1"#),
                "{text}"
            );
        }

        #[tokio::test(start_paused = true)]
        async fn resync_replays_go_through_the_filters_with_no_old_object() {
            let (tx, mut rx) = queue(8, Overflow::Block);
            let config = FilterConfig {
            filter: Some("type == 'SYNC' && oldObject == null && origin == 'resync' && object.metadata.name == 'b'".into()),
            ..FilterConfig::default()
        };
            let p = Processor::new(
                "pods".into(),
                pods(),
                ProcessorConfig {
                    emit_initial: false,
                    resync: Some(std::time::Duration::from_secs(10)),
                    cluster: None,
                    cache_compression: Default::default(),
                },
                vec![Subscription::new(filters(config), vec![tx])],
                Metrics::new(),
            );
            let (delta_tx, delta_rx) = tokio::sync::mpsc::channel(8);
            let task = tokio::spawn(p.run(delta_rx));
            delta_tx
                .send(Delta::Replace {
                    objects: vec![obj("a", "ua", 1), obj("b", "ub", 2)],
                    initial: true,
                })
                .await
                .expect("send");
            tokio::time::sleep(std::time::Duration::from_secs(11)).await;
            let synced: Arc<Notification> = rx.try_recv().expect("b's SYNC").note;
            assert_eq!(
                (synced.event_type, synced.name.as_str()),
                (EventType::Sync, "b")
            );
            assert!(rx.try_recv().is_none(), "a's SYNC was filtered out");
            drop(delta_tx);
            task.await.expect("ends");
        }
    }
}
