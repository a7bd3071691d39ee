//! The replay server (`kubebridge sim --replay`) speaks the list/watch protocol: pages with
//! continue tokens, the list's resourceVersion, a watch from it with every event in
//! order and bookmarks, 410 for an older one, gzip when asked, 404 elsewhere.
#![allow(clippy::unwrap_used)] // Tests may panic on unexpected values; that is their failure mode.

use std::collections::BTreeSet;
use std::io::Read;

use kubebridge_sim::{Replay, ReplayConfig};
use kubebridge_testkit::http::{Watch, get, request};
use serde_json::Value;

async fn replay(pods: usize, events: usize) -> Replay {
    let config = ReplayConfig {
        pods,
        events,
        namespaces: 3,
        bookmark_every: 4,
        ..ReplayConfig::default()
    };
    Replay::start("127.0.0.1:0".parse().unwrap(), &config)
        .await
        .unwrap()
}

#[tokio::test]
async fn pages_cover_every_pod_once_with_one_resource_version() {
    let r = replay(25, 0).await;
    let (mut names, mut token, mut pages) = (BTreeSet::new(), String::new(), 0);
    let rv = r.data().list_resource_version().to_string();
    loop {
        let page = get(r.addr(), &format!("/api/v1/pods?limit=10&continue={token}")).await;
        assert_eq!(page.status, 200, "{}", page.text());
        let page = page.json();
        assert_eq!(page["kind"], "PodList");
        assert_eq!(page["metadata"]["resourceVersion"], rv.as_str());
        pages += 1;
        for item in page["items"].as_array().unwrap() {
            let meta = &item["metadata"];
            assert!(item.get("kind").is_none(), "typed list items omit kind");
            assert_eq!(meta["managedFields"].as_array().unwrap().len(), 2);
            assert!(meta["ownerReferences"].is_array());
            assert!(item["status"]["conditions"].is_array());
            let key = format!(
                "{}/{}",
                meta["namespace"].as_str().unwrap(),
                meta["name"].as_str().unwrap()
            );
            assert!(names.insert(key), "a pod served twice");
        }
        match page["metadata"]["continue"].as_str() {
            Some(t) => {
                token = form_urlencoded::byte_serialize(t.as_bytes()).collect();
                assert!(page["metadata"]["remainingItemCount"].as_u64().unwrap() > 0);
            }
            None => break,
        }
    }
    assert_eq!((names.len(), pages), (25, 3));
    let bad = get(r.addr(), "/api/v1/pods?limit=10&continue=garbage").await;
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn the_watch_replays_every_event_in_order_with_bookmarks() {
    let r = replay(3, 10).await;
    let list_rv = r.data().list_resource_version();
    let mut w = Watch::open(
        r.addr(),
        &format!("/api/v1/pods?watch=true&allowWatchBookmarks=true&resourceVersion={list_rv}"),
    )
    .await;
    assert_eq!(w.status, 200);
    let mut seen = Vec::new();
    while seen.len() < 12 {
        let event = w.next().await.expect("an event");
        let rv: u64 = event["object"]["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        seen.push((event["type"].as_str().unwrap().to_owned(), rv));
        if event["type"] == "MODIFIED" {
            assert_eq!(event["object"]["kind"], "Pod");
            // A real change, not noise a client would suppress: the annotation moves too.
            assert_eq!(
                event["object"]["metadata"]["annotations"]["replay.kubebridge.dev/change"],
                rv.to_string().as_str()
            );
        }
    }
    let types: Vec<&str> = seen.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(types.iter().filter(|t| **t == "BOOKMARK").count(), 2);
    let rvs: Vec<u64> = seen
        .iter()
        .filter(|(t, _)| t == "MODIFIED")
        .map(|(_, rv)| *rv)
        .collect();
    assert_eq!(rvs, (list_rv + 1..=list_rv + 10).collect::<Vec<_>>());
    assert_eq!(r.data().last_resource_version(), list_rv + 10);

    // From the middle: only what follows.
    let mut w = Watch::open(
        r.addr(),
        &format!("/api/v1/pods?watch=true&resourceVersion={}", list_rv + 9),
    )
    .await;
    let last = w.next().await.unwrap();
    assert_eq!(
        last["object"]["metadata"]["resourceVersion"],
        (list_rv + 10).to_string().as_str()
    );
    // Older than the list: gone, as after a compaction.
    let old = get(
        r.addr(),
        &format!("/api/v1/pods?watch=true&resourceVersion={}", list_rv - 1),
    )
    .await;
    assert_eq!(old.status, 410);
    assert_eq!(old.json()["reason"], "Expired");
}

#[tokio::test]
async fn gzip_when_asked_and_404_off_the_pods_path() {
    let r = replay(5, 0).await;
    let plain = get(r.addr(), "/api/v1/pods").await;
    let gz = request(
        r.addr(),
        "GET",
        "/api/v1/pods",
        &[("Accept-Encoding", "gzip")],
        None,
    )
    .await;
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    let mut inflated = Vec::new();
    flate2::read::GzDecoder::new(&gz.body[..])
        .read_to_end(&mut inflated)
        .unwrap();
    assert_eq!(inflated, plain.body);
    assert!(gz.body.len() < plain.body.len() / 3);
    assert_eq!(get(r.addr(), "/api/v1/namespaces").await.status, 404);
    let discovery: Value = get(r.addr(), "/api/v1").await.json();
    assert!(
        discovery["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|res| res["name"] == "pods")
    );
}
