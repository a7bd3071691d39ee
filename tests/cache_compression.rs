//! `--cache-compression zstd` changes what the cache costs, never what it says: two
//! kubebridge processes on one simulator, one plain and one compressed, publish the same
//! MODIFIED `oldObject`s and serve the same `/cache`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::time::Duration;

use kubebridge_sim::SimConfig;
use kubebridge_testkit::brokers::free_port;
use kubebridge_testkit::harness::{Harness, Running, WAIT, wait_until};
use kubebridge_testkit::http::get_text as get;
use serde_json::{Value, json};

async fn wait_until_ready(port: u16) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while get(port, "/readyz").await.map(|(c, _)| c) != Some(200) {
        assert!(tokio::time::Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The value of the first sample of metric `name`, whatever its labels.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(&format!("{name}{{")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

fn spawn(h: &Harness, compression: &str) -> (Running, u16) {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let kb = h.spawn(&[
        "pods",
        "-A",
        "--initial-state",
        "skip",
        "--metrics-addr",
        &addr,
        "--serve-cache",
        "--cache-compression",
        compression,
    ]);
    (kb, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_and_plain_caches_publish_and_serve_the_same_objects() {
    let h = Harness::start(
        SimConfig {
            namespaces: 4,
            pods: 80,
            managed_fields: true,
            bookmark_interval: Duration::from_millis(200),
            ..SimConfig::default()
        },
        None,
    )
    .await;
    let (mut plain, plain_port) = spawn(&h, "none");
    let (mut zstd, zstd_port) = spawn(&h, "zstd");
    wait_until_ready(plain_port).await;
    wait_until_ready(zstd_port).await;
    wait_until(|| h.sim.requests("watch", "pods") >= 2).await;

    // The compressed cache really is compressed (80 pods: trained at the end of the list).
    let (_, metrics) = get(zstd_port, "/metrics").await.unwrap();
    let (held, json) = (
        metric(&metrics, "kubebridge_cache_held_bytes"),
        metric(&metrics, "kubebridge_cache_bytes"),
    );
    assert!(held * 2.0 < json, "held {held} of {json} JSON bytes");
    let (_, metrics) = get(plain_port, "/metrics").await.unwrap();
    assert_eq!(
        metric(&metrics, "kubebridge_cache_held_bytes"),
        metric(&metrics, "kubebridge_cache_bytes")
    );

    let (code, listed) = get(zstd_port, "/cache/pods").await.unwrap();
    assert_eq!(code, 200, "{listed}");
    let (_, plain_listed) = get(plain_port, "/cache/pods").await.unwrap();
    assert_eq!(listed, plain_listed, "/cache byte for byte");
    let list: Value = serde_json::from_str(&listed).unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 80);
    assert!(items[0]["metadata"].get("managedFields").is_none());

    // Changes to pods cached since the initial list: the same oldObject from both.
    let changed: Vec<(String, String)> = items
        .iter()
        .step_by(16)
        .map(|o| {
            let m = &o["metadata"];
            (
                m["namespace"].as_str().unwrap().to_owned(),
                m["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for (i, (ns, name)) in changed.iter().enumerate() {
        h.sim
            .patch(
                "pods",
                Some(ns),
                name,
                json!({"metadata": {"labels": {"changed": i.to_string()}}}),
            )
            .unwrap();
    }
    let from_plain = plain.take(changed.len()).await;
    let from_zstd = zstd.take(changed.len()).await;
    for (p, z) in from_plain.iter().zip(&from_zstd) {
        assert_eq!(p["type"], "MODIFIED");
        // The old state is the listed object, as both caches held it, not the new one.
        let name = &p["object"]["metadata"]["name"];
        let was = items.iter().find(|o| &o["metadata"]["name"] == name);
        assert_eq!(Some(&p["oldObject"]), was, "{p}");
        assert!(
            p["oldObject"]["metadata"]["labels"]
                .get("changed")
                .is_none()
        );
        for field in ["object", "oldObject", "resourceVersion", "type"] {
            assert_eq!(p[field], z[field], "{field}");
        }
    }
    let (_, after) = get(zstd_port, "/cache/pods").await.unwrap();
    let (_, plain_after) = get(plain_port, "/cache/pods").await.unwrap();
    assert_eq!(after, plain_after);
    assert_ne!(after, listed, "the cache follows the changes");

    let (_, metrics) = get(zstd_port, "/metrics").await.unwrap();
    assert_eq!(metric(&metrics, "kubebridge_cache_unreadable_total"), 0.0);
    assert_eq!(plain.terminate().await.0, 0);
    assert_eq!(zstd.terminate().await.0, 0);
}
