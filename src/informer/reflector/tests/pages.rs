//! LIST pages asked for one ahead (the next page downloads while the current one is
//! decoded): every way a list can fail behaves as it did when pages were asked for one
//! after the other, and a page asked for ahead never outlives the list that wanted it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;

use super::{Reply, first, page, pod, reflector, scripted};
use crate::informer::ReflectorConfig;

fn series(name: &str, reason: &str) -> String {
    format!(r#"{name}{{reason="{reason}",resource="pods@shop"}}"#)
}

#[tokio::test(start_paused = true)]
async fn a_page_that_fails_to_decode_abandons_the_page_asked_for_after_it() {
    // Answered by URL, so it does not matter whether the page asked for ahead of the
    // bad one reached the server before it was abandoned.
    let firsts = Arc::new(AtomicUsize::new(0));
    let counted = firsts.clone();
    let (r, server) = scripted(
        ReflectorConfig::default(),
        Vec::new(),
        Box::new(move |uri| {
            if uri.contains("continue=t1") {
                return page(10, "", &[pod("never", 9)]);
            }
            if uri.contains("watch=true") {
                return Reply::Stays(Vec::new());
            }
            if counted.fetch_add(1, Ordering::SeqCst) == 0 {
                // An item without metadata, and a next page to ask for ahead.
                page(10, "t1", &[r#"{"kind":"Pod"}"#.to_owned()])
            } else {
                page(20, "", &[pod("a", 19)])
            }
        }),
    );
    let deltas = first(r, 1).await.expect("deltas");
    assert_eq!(deltas, ["Replace initial a"]);
    assert_eq!(firsts.load(Ordering::SeqCst), 2, "{:?}", server.requests());
    let errors = series("kubebridge_list_errors_total", "error");
    assert_eq!(server.sample(&errors), Some(1.0));
}

#[tokio::test(start_paused = true)]
async fn a_page_asked_for_ahead_that_stops_arriving_restarts_the_list_after_the_idle_timeout() {
    let idle = Duration::from_secs(30);
    let config = ReflectorConfig {
        watch_idle_timeout: idle,
        ..ReflectorConfig::default()
    };
    let (r, server) = reflector(
        config,
        vec![
            page(10, "t1", &[pod("a", 8)]),
            Reply::Hangs(vec![r#"{"metadata":{"#.into()], Arc::new(())),
            page(20, "", &[pod("a", 8), pod("b", 19)]),
        ],
    );
    let start = tokio::time::Instant::now();
    let deltas = first(r, 1).await.expect("deltas");
    assert_eq!(deltas, ["Replace initial a,b"]);
    assert!(
        start.elapsed() >= idle,
        "waited the idle timeout: {:?}",
        start.elapsed()
    );
    let requests = server.requests();
    assert!(requests[1].contains("continue=t1"), "{requests:?}");
    assert!(
        requests[2].contains("limit=500") && !requests[2].contains("continue="),
        "listed again from the start: {requests:?}"
    );
    let restarted = series("kubebridge_relists_total", "restarted");
    assert_eq!(server.sample(&restarted), Some(1.0));
}

#[tokio::test(start_paused = true)]
async fn a_reflector_dropped_mid_list_lets_go_of_the_page_asked_for_ahead() {
    let alive = Arc::new(());
    let (r, server) = reflector(
        ReflectorConfig::default(),
        vec![
            page(10, "t1", &[pod("a", 8)]),
            Reply::Hangs(Vec::new(), alive.clone()),
        ],
    );
    let mut stream = Box::pin(r.into_stream());
    let waited = tokio::time::timeout(Duration::from_secs(5), stream.next()).await;
    assert!(waited.is_err(), "no delta while the second page hangs");
    assert_eq!(server.requests().len(), 2, "{:?}", server.requests());
    assert_eq!(
        Arc::strong_count(&alive),
        2,
        "the second page's body is held"
    );
    drop(stream);
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(Arc::strong_count(&alive), 1, "the download was abandoned");
}
