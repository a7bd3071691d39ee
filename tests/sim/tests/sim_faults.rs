//! The simulator's fault hooks, each shown over HTTP doing what its documentation says.
#![allow(clippy::unwrap_used)] // Tests may panic on unexpected values; that is their failure mode.

use std::time::Duration;

use kubebridge_sim::{Rule, Sim, SimConfig, WatchLine};
use kubebridge_testkit::http::{Watch, get};
use serde_json::{Value, json};

async fn sim() -> Sim {
    Sim::start(
        "127.0.0.1:0".parse().unwrap(),
        SimConfig {
            bookmark_interval: Duration::from_millis(100),
            ..SimConfig::default()
        },
    )
    .await
    .unwrap()
}

fn configmap(s: &Sim, name: &str) -> Value {
    s.create(
        "configmaps",
        Some("default"),
        json!({"metadata": {"name": name}}),
    )
    .unwrap()
}

/// A watch of configmaps in "default" from the current resourceVersion.
async fn watch_now(s: &Sim, bookmarks: bool) -> Watch {
    let path = format!(
        "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={}&allowWatchBookmarks={bookmarks}",
        s.resource_version()
    );
    let w = Watch::open(s.addr(), &path).await;
    assert_eq!(w.status, 200);
    w
}

/// Next event that is not a bookmark.
async fn next_change(w: &mut Watch) -> Value {
    loop {
        let e = w.next().await.expect("an event");
        if e["type"] != "BOOKMARK" {
            return e;
        }
    }
}

#[tokio::test]
async fn silenced_watches_stay_open_and_send_nothing_until_dropped() {
    let s = sim().await;
    let mut open = watch_now(&s, true).await;
    // A bookmark proves the stream was live before the silence.
    assert_eq!(open.next().await.unwrap()["type"], "BOOKMARK");
    s.faults().silence_watches(true);
    configmap(&s, "during");
    let mut opened_during = watch_now(&s, true).await;
    for w in [&mut open, &mut opened_during] {
        // Ten bookmark intervals: no event, no bookmark, and the stream has not ended.
        assert_eq!(
            w.next_within(Duration::from_secs(1)).await,
            Err(()),
            "a silenced watch sends nothing and stays open"
        );
    }

    s.faults().silence_watches(false);
    configmap(&s, "after");
    assert_eq!(
        open.next_within(Duration::from_secs(1)).await,
        Err(()),
        "a stream that went silent stays silent: a dead connection"
    );
    let mut fresh = watch_now(&s, false).await;
    configmap(&s, "fresh");
    assert_eq!(
        next_change(&mut fresh).await["object"]["metadata"]["name"],
        "fresh"
    );

    s.faults().drop_watches();
    assert_eq!(open.next_within(Duration::from_secs(5)).await, Ok(None));
    assert_eq!(
        opened_during.next_within(Duration::from_secs(5)).await,
        Ok(None)
    );
}

#[tokio::test]
async fn every_watch_gets_410_until_cleared_while_lists_work() {
    let s = sim().await;
    configmap(&s, "a");
    s.faults().expire_every_watch(true);
    for rv in [String::new(), "0".into(), s.resource_version().to_string()] {
        let mut w = Watch::open(
            s.addr(),
            &format!("/api/v1/configmaps?watch=true&resourceVersion={rv}"),
        )
        .await;
        assert_eq!(w.status, 200);
        let e = w.next().await.unwrap();
        assert_eq!(e["type"], "ERROR", "watch from {rv:?}");
        assert_eq!(e["object"]["code"], 410);
        assert_eq!(e["object"]["reason"], "Expired");
        assert!(w.next().await.is_none(), "the stream ends after the error");
    }
    assert_eq!(get(s.addr(), "/api/v1/configmaps").await.status, 200);

    s.faults().expire_every_watch(false);
    let mut w = watch_now(&s, false).await;
    configmap(&s, "b");
    assert_eq!(next_change(&mut w).await["type"], "ADDED");
}

#[tokio::test]
async fn injected_lines_reach_every_open_watch_once() {
    let s = sim().await;
    let mut a = watch_now(&s, false).await;
    let mut b = watch_now(&s, false).await;
    // Both streams are subscribed once their head is read.
    assert_eq!(s.faults().inject_watch_line(WatchLine::Garbage), 2);
    assert_eq!(s.faults().inject_watch_line(WatchLine::NoMetadata), 2);
    configmap(&s, "after");
    for w in [&mut a, &mut b] {
        let garbage = w.next_raw_within(Duration::from_secs(5)).await.unwrap();
        assert_eq!(garbage.unwrap(), b"this is not JSON");
        let no_meta = w.next().await.unwrap();
        assert_eq!(no_meta["type"], "MODIFIED");
        assert_eq!(no_meta["object"]["kind"], "ConfigMap");
        assert!(no_meta["object"].get("metadata").is_none());
        // The stream goes on after the bad lines.
        assert_eq!(
            w.next().await.unwrap()["object"]["metadata"]["name"],
            "after"
        );
    }
}

#[tokio::test]
async fn oversized_line_arrives_whole_with_one_newline() {
    let s = sim().await;
    let mut w = watch_now(&s, false).await;
    let size = 3 * 1024 * 1024;
    assert_eq!(
        s.faults()
            .inject_watch_line(WatchLine::Oversized { bytes: size }),
        1
    );
    let line = w
        .next_raw_within(Duration::from_secs(10))
        .await
        .unwrap()
        .unwrap();
    assert!(
        line.len() >= size && line.len() < size + 1024,
        "{}",
        line.len()
    );
    let event: Value = serde_json::from_slice(&line).unwrap();
    assert_eq!(
        event["object"]["metadata"]["annotations"]["big"]
            .as_str()
            .unwrap()
            .len(),
        size
    );
}

#[tokio::test]
async fn poisoned_watches_meet_the_line_on_every_resume() {
    let s = sim().await;
    configmap(&s, "a");
    let from = s.resource_version();
    s.faults().poison_watches(Some(WatchLine::Garbage));
    configmap(&s, "b");
    for _ in 0..3 {
        // The same resume, as a client that failed on the line would make it.
        let mut w = Watch::open(
            s.addr(),
            &format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={from}"),
        )
        .await;
        // The replay comes first, then the poison, before any live event.
        assert_eq!(w.next().await.unwrap()["object"]["metadata"]["name"], "b");
        let line = w.next_raw_within(Duration::from_secs(5)).await.unwrap();
        assert_eq!(line.unwrap(), b"this is not JSON");
    }
    s.faults().poison_watches(None);
    let mut w = watch_now(&s, false).await;
    configmap(&s, "c");
    assert_eq!(w.next().await.unwrap()["object"]["metadata"]["name"], "c");
}

#[tokio::test]
async fn rules_hang_or_answer_a_status_per_resource_until_cleared() {
    let s = sim().await;
    let a = s.addr();
    let leases = "/apis/coordination.k8s.io/v1/namespaces/default/leases";
    s.faults()
        .set_rule("leases.coordination.k8s.io", Some(Rule::Status(503)));
    let r = get(a, leases).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["reason"], "ServiceUnavailable");
    assert_eq!(
        get(a, "/api/v1/configmaps").await.status,
        200,
        "other resources are served"
    );

    s.faults()
        .set_rule("leases.coordination.k8s.io", Some(Rule::Hang));
    let hung = tokio::spawn(async move { get(a, leases).await.status });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!hung.is_finished(), "a hung request is not answered");
    assert_eq!(
        s.requests("list", "leases.coordination.k8s.io"),
        2,
        "it was counted"
    );
    s.faults().set_rule("leases.coordination.k8s.io", None);
    let status = tokio::time::timeout(Duration::from_secs(5), hung)
        .await
        .expect("answered once the rule is cleared")
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(get(a, leases).await.status, 200);
}

#[tokio::test]
async fn restart_drops_watches_and_every_resume_gets_410() {
    let s = sim().await;
    configmap(&s, "a");
    let mut w = watch_now(&s, true).await;
    // The client is fully caught up: its bookmark holds the current resourceVersion.
    let caught_up = w.next().await.unwrap();
    assert_eq!(caught_up["type"], "BOOKMARK");
    let rv = caught_up["object"]["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(rv, s.resource_version().to_string());

    s.faults().restart();
    assert_eq!(
        w.next_within(Duration::from_secs(5)).await,
        Ok(None),
        "the watch ends"
    );
    let mut resumed = Watch::open(
        s.addr(),
        &format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}"),
    )
    .await;
    let e = resumed.next().await.unwrap();
    assert_eq!(e["type"], "ERROR", "even an up-to-date resume is too old");
    assert_eq!(e["object"]["code"], 410);
    // A relist works, and a watch from its resourceVersion is served.
    let list = get(s.addr(), "/api/v1/namespaces/default/configmaps")
        .await
        .json();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let listed = list["metadata"]["resourceVersion"].as_str().unwrap();
    let mut w = Watch::open(
        s.addr(),
        &format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={listed}"),
    )
    .await;
    configmap(&s, "b");
    assert_eq!(w.next().await.unwrap()["object"]["metadata"]["name"], "b");
}

#[tokio::test]
async fn watch_list_request_is_served_as_a_plain_watch_when_ignored() {
    let s = sim().await;
    configmap(&s, "a");
    configmap(&s, "b");
    let path = "/api/v1/namespaces/default/configmaps?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true";
    s.faults().ignore_send_initial_events(true);
    let mut w = Watch::open(s.addr(), path).await;
    assert_eq!(w.status, 200);
    // The initial objects, as a plain watch from "" sends them, then only periodic
    // bookmarks: none of them says the initial events ended.
    let mut names = Vec::new();
    for _ in 0..5 {
        let e = w.next().await.unwrap();
        if e["type"] == "ADDED" {
            names.push(
                e["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        } else {
            assert_eq!(e["type"], "BOOKMARK");
            assert!(e["object"]["metadata"].get("annotations").is_none(), "{e}");
        }
    }
    assert_eq!(names, ["a", "b"]);

    s.faults().ignore_send_initial_events(false);
    let mut w = Watch::open(s.addr(), path).await;
    let mut saw_end = false;
    for _ in 0..3 {
        let e = w.next().await.unwrap();
        saw_end |= e["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"] == "true";
    }
    assert!(saw_end, "served as a watch-list again");
}
