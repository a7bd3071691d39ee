//! The fan-out: hands every notification to each route that subscribes to the informer,
//! in order. Each route's [`RouteStage`] runs first, once per notification and route
//! (not per sink), so a notification the route holds back costs no queue memory and no
//! sink work; what passes goes to each of the route's sink queues.

use std::sync::Arc;

use kubebridge_sinks::Notification;

use crate::filter::{Filters, RouteStage};
use crate::metrics::Metrics;
use crate::queue::{QueueSender, Sent};

/// Where a subscriber's notifications go: a sink's bounded queue. Under the `block`
/// policy a full queue makes the processor wait, which stops the reflector reading the
/// watch (backpressure).
pub type Subscriber = QueueSender<Arc<Notification>>;

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

/// A route as the fan-out holds it.
struct Route {
    stage: RouteStage,
    queues: Vec<Subscriber>,
}

/// The subscribers of one informer.
pub(super) struct FanOut {
    name: String,
    routes: Vec<Route>,
}

impl FanOut {
    /// The routes subscribed to the informer called `name` (for logs).
    pub(super) fn new(name: String, subscriptions: Vec<Subscription>, metrics: &Metrics) -> Self {
        let routes = subscriptions
            .into_iter()
            .map(|s| Route {
                stage: RouteStage::new(s.filters, metrics.clone()),
                queues: s.queues,
            })
            .collect();
        FanOut { name, routes }
    }

    /// Whether every subscriber has gone.
    pub(super) fn is_empty(&self) -> bool {
        self.routes.iter().all(|r| r.queues.is_empty())
    }

    /// Passes `note` through each route's stage and queues what it publishes for each of
    /// the route's sinks, waiting where a queue is full and blocks. A sink that stopped
    /// for good is dropped; the others go on.
    pub(super) async fn send(&mut self, note: Arc<Notification>) {
        for route in &mut self.routes {
            if route.queues.is_empty() {
                continue;
            }
            let Some(published) = route.stage.pass(&note) else {
                continue;
            };
            let mut i = 0;
            while i < route.queues.len() {
                match route.queues[i].send(published.clone()).await {
                    Ok(Sent::Queued) => i += 1,
                    Ok(Sent::Evicted(evicted)) => {
                        for old in evicted {
                            tracing::warn!(
                                informer = %self.name, object = %old.key(), id = %old.id(),
                                "sink queue full: dropped the oldest notification (--overflow drop-oldest)"
                            );
                        }
                        i += 1;
                    }
                    Err(_) => {
                        // The sink behind it stopped for good (a closed pipe).
                        route.queues.swap_remove(i);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
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
        p.fanout_for_test().send(note.clone()).await;
        let (x, y) = (ra1.try_recv().expect("a1"), ra2.try_recv().expect("a2"));
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
        let synced: Arc<Notification> = rx.try_recv().expect("b's SYNC");
        assert_eq!(
            (synced.event_type, synced.name.as_str()),
            (EventType::Sync, "b")
        );
        assert!(rx.try_recv().is_none(), "a's SYNC was filtered out");
        drop(delta_tx);
        task.await.expect("ends");
    }
}
