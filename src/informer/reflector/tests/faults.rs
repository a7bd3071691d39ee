//! The reflector under faults (issue 8): a silent watch, a relist storm, malformed and
//! oversized watch lines, an oversized LIST page, and a server that ignores watch-list.
//! Each test fails on a reflector without the matching defence.

use std::time::Duration;

use futures::StreamExt;
use tokio::time::Instant;

use super::{
    Logs, Reply, bookmark, brief, error_event, event, first, page, pod, reflector, scripted, status,
};
use crate::informer::ReflectorConfig;

fn series(name: &str, reason: &str) -> String {
    format!(r#"{name}{{reason="{reason}",resource="pods@shop"}}"#)
}

#[tokio::test(start_paused = true)]
async fn a_silent_watch_is_dropped_after_the_idle_timeout_and_resumed() {
    let config = ReflectorConfig::default();
    let idle = config.watch_idle_timeout;
    assert!(
        idle <= Duration::from_secs(300),
        "issue 8: at most 5 minutes"
    );
    let (r, server) = reflector(
        config,
        vec![
            page(10, "", &[pod("a", 8)]),
            // An event, then silence: no event, no bookmark, no close.
            Reply::Stays(vec![event("ADDED", &pod("b", 11))]),
            Reply::Stays(vec![event("ADDED", &pod("c", 12))]),
        ],
    );
    let (logs, _guard) = Logs::capture();
    let start = Instant::now();
    let deltas = first(r, 3).await.expect("deltas");
    assert_eq!(deltas, ["Replace initial a", "Added b", "Added c"]);
    let warnings = logs.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("heard nothing") && warnings[0].contains("rv=11"),
        "{warnings:?}"
    );
    assert!(start.elapsed() >= idle, "dropped only once idle");
    let requests = server.requests();
    assert_eq!(requests.len(), 3, "resumed, not relisted: {requests:?}");
    assert!(
        requests[1].contains("allowWatchBookmarks=true"),
        "bookmarks count as activity, so the watch asks for them: {requests:?}"
    );
    assert!(
        requests[2].contains("resourceVersion=11"),
        "resumed from the last event: {requests:?}"
    );
    let restarts = series("kubebridge_watch_restarts_total", "idle");
    assert_eq!(server.sample(&restarts), Some(1.0));
}

/// A quiet resource's watch hears only bookmarks: they are activity, so it is never
/// dropped as idle.
#[tokio::test(start_paused = true)]
async fn bookmarks_keep_a_quiet_watch_from_being_idle() {
    let config = ReflectorConfig::default();
    let idle = config.watch_idle_timeout;
    let (r, server) = reflector(
        config,
        vec![
            page(10, "", &[pod("a", 8)]),
            Reply::Every(idle - Duration::from_secs(1), bookmark(10, false)),
        ],
    );
    let mut stream = std::pin::pin!(r.into_stream());
    let first = stream.next().await.expect("a delta").expect("no error");
    assert_eq!(brief(&first), "Replace initial a");
    let quiet = tokio::time::timeout(idle * 5, stream.next()).await;
    assert!(quiet.is_err(), "no delta in a quiet spell");
    assert_eq!(server.requests().len(), 2, "the watch was never dropped");
    let restarts = series("kubebridge_watch_restarts_total", "idle");
    assert_eq!(server.sample(&restarts), None);
}

/// client-go's relist backoff (800 ms doubling to 30 s, jittered): a server answering
/// 410 to every watch sees a handful of LISTs a minute, not thousands.
#[tokio::test(start_paused = true)]
async fn a_server_answering_410_to_every_watch_sees_a_bounded_number_of_lists() {
    let watches = std::sync::atomic::AtomicUsize::new(0);
    let (r, server) = scripted(
        ReflectorConfig::default(),
        Vec::new(),
        Box::new(move |uri| {
            if !uri.contains("watch=true") {
                return page(10, "", &[pod("a", 8)]);
            }
            // Both ways a server says 410: the watch's status, or an ERROR event.
            if watches
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                .is_multiple_of(2)
            {
                status(410, "Expired")
            } else {
                Reply::Closes(vec![error_event(410, "Expired")])
            }
        }),
    );
    let (logs, _guard) = Logs::capture();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut stream = std::pin::pin!(r.into_stream());
    while let Ok(Some(delta)) = tokio::time::timeout_at(deadline, stream.next()).await {
        delta.expect("410 is not permanent");
        if server.lists() > 10 {
            break;
        }
    }
    let lists = server.lists();
    assert!(
        (3..=10).contains(&lists),
        "{lists} LISTs in a minute of 410s"
    );
    // Each LIST after the first follows a relist; the minute may end during the wait
    // before the next.
    let expired = server
        .sample(&series("kubebridge_relists_total", "expired"))
        .expect("relists counted");
    assert!(
        expired == lists as f64 - 1.0 || expired == lists as f64,
        "{expired} relists for {lists} LISTs"
    );
    let waited = server
        .sample(r#"kubebridge_relist_backoff_seconds_total{resource="pods@shop"}"#)
        .expect("the backoff is counted");
    assert!(waited >= 30.0, "waited {waited} s of the minute");
    // One warning per relist after the first: as few as the LISTs.
    let storm: Vec<String> = logs
        .warnings()
        .into_iter()
        .filter(|w| w.contains("relisting again"))
        .collect();
    assert!(
        !storm.is_empty() && storm.len() <= lists,
        "{lists} LISTs, warnings: {storm:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_garbage_line_relists_and_the_change_after_it_is_not_lost() {
    let (r, server) = reflector(
        ReflectorConfig::default(),
        vec![
            page(10, "", &[pod("a", 8)]),
            Reply::Stays(vec!["not json {".into(), event("ADDED", &pod("b", 11))]),
            page(12, "", &[pod("a", 8), pod("b", 11)]),
            Reply::Stays(vec![event("MODIFIED", &pod("b", 13))]),
        ],
    );
    let (logs, _guard) = Logs::capture();
    let deltas = first(r, 3).await.expect("deltas");
    assert_eq!(deltas, ["Replace initial a", "Replace a,b", "Modified b"]);
    let requests = server.requests();
    assert!(requests[2].contains("limit=500"), "relisted: {requests:?}");
    assert!(
        requests[3].contains("resourceVersion=12"),
        "watched from the relist: {requests:?}"
    );
    let decode = r#"kubebridge_watch_decode_errors_total{resource="pods@shop"}"#;
    assert_eq!(server.sample(decode), Some(1.0));
    let malformed = series("kubebridge_relists_total", "malformed");
    assert_eq!(server.sample(&malformed), Some(1.0));
    let warnings = logs.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("last_good_rv=10") && warnings[0].contains("line_start=not json {"),
        "{warnings:?}"
    );
}

/// A bad line that may hold a Secret is counted and reconciled like any other, but
/// nothing of it reaches the log.
#[tokio::test(start_paused = true)]
async fn nothing_of_a_bad_line_that_may_hold_a_secret_is_logged() {
    let line = r#"{"type":"ADDED","object":{"kind":"Secret","data":{"password":"aHVudGVyMg=="}"#;
    let (r, server) = reflector(
        ReflectorConfig::default(),
        vec![
            page(10, "", &[pod("a", 8)]),
            Reply::Stays(vec![line.into()]),
            page(12, "", &[pod("a", 8)]),
        ],
    );
    let (logs, _guard) = Logs::capture();
    let deltas = first(r, 2).await.expect("deltas");
    assert_eq!(deltas, ["Replace initial a", "Replace a"]);
    let decode = r#"kubebridge_watch_decode_errors_total{resource="pods@shop"}"#;
    assert_eq!(server.sample(decode), Some(1.0));
    let warnings = logs.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        !warnings[0].contains("aHVudGVyMg") && !warnings[0].contains("line_start"),
        "{warnings:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_object_without_metadata_relists_and_is_not_heard() {
    let (r, server) = reflector(
        ReflectorConfig::default(),
        vec![
            page(10, "", &[pod("a", 8)]),
            Reply::Stays(vec![event("ADDED", r#"{"kind":"Pod","apiVersion":"v1"}"#)]),
            page(12, "", &[pod("a", 8), pod("b", 11)]),
        ],
    );
    let deltas = first(r, 2).await.expect("deltas");
    assert_eq!(deltas, ["Replace initial a", "Replace a,b"]);
    let decode = r#"kubebridge_watch_decode_errors_total{resource="pods@shop"}"#;
    assert_eq!(server.sample(decode), Some(1.0));
    // The stuck-watch gauge moves only for events that decoded: none did.
    let heard = r#"kubebridge_last_event_timestamp_seconds{resource="pods@shop"}"#;
    assert_eq!(server.sample(heard), None);
}

#[tokio::test(start_paused = true)]
async fn a_line_over_the_object_cap_is_not_buffered_and_relists() {
    let config = ReflectorConfig {
        max_object_bytes: 1024,
        ..ReflectorConfig::default()
    };
    // One byte over the cap, without a newline, on a watch that stays open: a reader
    // waiting for the end of the line would wait (and buffer) forever.
    let head = r#"{"type":"ADDED","object":{"x":""#;
    let line = format!("{head}{}", "y".repeat(1025 - head.len()));
    assert_eq!(line.len(), 1025);
    let (r, server) = reflector(
        config,
        vec![
            page(10, "", &[pod("a", 8)]),
            Reply::Chunks(vec![line[..600].into(), line[600..].into()]),
            page(12, "", &[pod("b", 12)]),
        ],
    );
    let deltas = first(r, 2).await.expect("deltas");
    assert_eq!(deltas, ["Replace initial a", "Replace b"]);
    let decode = r#"kubebridge_watch_decode_errors_total{resource="pods@shop"}"#;
    assert_eq!(server.sample(decode), Some(1.0));
    let malformed = series("kubebridge_relists_total", "malformed");
    assert_eq!(server.sample(&malformed), Some(1.0));
}

#[tokio::test(start_paused = true)]
async fn a_page_over_the_page_cap_is_an_error_retried_with_backoff() {
    let config = ReflectorConfig {
        max_page_bytes: 400,
        ..ReflectorConfig::default()
    };
    let big: Vec<String> = ["a", "b", "c", "d"].iter().map(|n| pod(n, 8)).collect();
    let (r, server) = reflector(
        config,
        vec![
            page(10, "", &big),
            page(10, "", &big),
            page(10, "", &[pod("a", 8)]),
        ],
    );
    let start = Instant::now();
    let deltas = first(r, 1).await.expect("deltas");
    assert_eq!(deltas, ["Replace initial a"]);
    assert_eq!(server.lists(), 3);
    // Two failures, each after a growing backoff: at least 0.4 + 0.8 s.
    assert!(
        start.elapsed() >= Duration::from_millis(1200),
        "backed off: {:?}",
        start.elapsed()
    );
    let too_large = series("kubebridge_list_errors_total", "too_large");
    assert_eq!(server.sample(&too_large), Some(2.0));
}

fn watch_list() -> ReflectorConfig {
    ReflectorConfig {
        watch_list: true,
        ..ReflectorConfig::default()
    }
}

/// The server answers the watch-list as a plain watch: the state as ADDED events, then
/// changes, and never the end-of-initial-events bookmark.
#[tokio::test(start_paused = true)]
async fn a_watch_list_answered_as_a_plain_watch_falls_back_to_list() {
    let (r, server) = reflector(
        watch_list(),
        vec![
            Reply::Stays(vec![
                event("ADDED", &pod("a", 3)),
                event("ADDED", &pod("b", 4)),
                event("MODIFIED", &pod("a", 5)),
            ]),
            page(6, "", &[pod("a", 5), pod("b", 4)]),
            Reply::Stays(vec![event("DELETED", &pod("b", 7))]),
            status(410, "Expired"),
            page(9, "", &[pod("a", 5)]),
        ],
    );
    let (logs, _guard) = Logs::capture();
    let deltas = first(r, 3).await.expect("deltas");
    assert_eq!(deltas, ["Replace initial a,b", "Deleted b", "Replace a"]);
    let requests = server.requests();
    assert!(
        requests[0].contains("sendInitialEvents=true"),
        "{requests:?}"
    );
    assert!(requests[1].contains("limit=500"), "{requests:?}");
    assert!(
        requests[2].contains("resourceVersion=6") && !requests[2].contains("sendInitialEvents"),
        "{requests:?}"
    );
    assert!(
        requests[4].contains("limit=500"),
        "LIST for good: {requests:?}"
    );
    let ignored = series("kubebridge_relists_total", "watch_list_ignored");
    assert_eq!(server.sample(&ignored), Some(1.0));
    let warnings = logs.warnings();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("ignores sendInitialEvents") && w.contains("MODIFIED")),
        "{warnings:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_plain_bookmark_before_the_end_of_the_initial_events_falls_back_to_list() {
    let (r, server) = reflector(
        watch_list(),
        vec![
            Reply::Stays(vec![event("ADDED", &pod("a", 3)), bookmark(5, false)]),
            page(6, "", &[pod("a", 3)]),
        ],
    );
    let deltas = first(r, 1).await.expect("deltas");
    assert_eq!(deltas, ["Replace initial a"]);
    assert!(server.requests()[1].contains("limit=500"));
}

#[tokio::test(start_paused = true)]
async fn a_watch_list_whose_end_never_comes_falls_back_to_list_after_the_bound() {
    let config = watch_list();
    let bound = config.watch_list_initial_timeout;
    assert!(bound < config.watch_idle_timeout);
    let (r, server) = reflector(
        config,
        vec![
            Reply::Stays(vec![event("ADDED", &pod("a", 3))]),
            page(6, "", &[pod("a", 3)]),
        ],
    );
    let start = Instant::now();
    let deltas = first(r, 1).await.expect("deltas");
    assert_eq!(deltas, ["Replace initial a"]);
    let waited = start.elapsed();
    assert!(
        waited >= bound && waited < bound * 2,
        "fell back after {waited:?}"
    );
    assert!(server.requests()[1].contains("limit=500"));
    let ignored = series("kubebridge_relists_total", "watch_list_ignored");
    assert_eq!(server.sample(&ignored), Some(1.0));
}

/// A server (or a proxy) that closes every watch at once: the reflector reopens them at
/// most about once a second, and says so at warn, not only at debug.
#[tokio::test(start_paused = true)]
async fn watches_that_keep_closing_empty_are_paced_and_reported() {
    let (r, server) = scripted(
        ReflectorConfig::default(),
        vec![page(10, "", &[pod("a", 8)])],
        Box::new(|_| Reply::Closes(Vec::new())),
    );
    let (logs, _guard) = Logs::capture();
    let mut stream = std::pin::pin!(r.into_stream());
    let quiet = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(delta) = stream.next().await {
            delta.expect("no permanent error");
        }
    })
    .await;
    assert!(quiet.is_err(), "the stream goes on");
    let watches = server.requests().len() - 1;
    assert!((10..=60).contains(&watches), "{watches} watches in 30 s");
    let warnings = logs.warnings();
    assert_eq!(warnings.len(), 1, "the 10th in a row: {warnings:?}");
    assert!(
        warnings[0].contains("keeps closing watches"),
        "{warnings:?}"
    );
}
