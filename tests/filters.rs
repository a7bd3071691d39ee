//! Per-route filters, end to end: the binary against the simulated API server, through
//! stdout and a real JetStream: event types, CEL filters (on oldObject, with runtime
//! errors), noise suppression with ignoreFields, projection, JSON Patch diffs, SYNC
//! replays through the filters, and check-config showing and checking all of it.
#![allow(missing_docs, clippy::unwrap_used)]

use std::time::Duration;

use kubebridge_testkit::brokers::{PrivateNats, free_port};
use kubebridge_testkit::consume::jetstream_messages;
use kubebridge_testkit::harness::{self, Harness, WAIT, brief, kubebridge, wait_until};
use kubebridge_testkit::http::{get_text, sample};
use serde_json::{Value, json};

/// Waits until `series` in /metrics on `port` reads `want`; fails after [`WAIT`].
async fn wait_for_sample(port: u16, series: &str, want: f64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let text = get_text(port, "/metrics")
            .await
            .map(|(_, t)| t)
            .unwrap_or_default();
        if sample(&text, series) == Some(want) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{series} never read {want}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn held(route: &str, reason: &str) -> String {
    format!(r#"kubebridge_route_held_total{{reason="{reason}",route="{route}"}}"#)
}

const CLI: &str = "command line";

/// A pod with a Ready condition whose heartbeat the kubelet refreshes.
fn heartbeat_pod(h: &Harness, name: &str) {
    h.create_pod("shop", name, json!({}));
    set_status(
        h,
        name,
        json!({"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True", "lastHeartbeatTime": "2026-01-01T00:00:00Z"}]}),
    );
}

fn set_status(h: &Harness, name: &str, status: Value) -> Value {
    h.sim
        .patch("pods/status", Some("shop"), name, json!({"status": status}))
        .expect("patch status")
}

fn patch(h: &Harness, name: &str, merge: Value) -> Value {
    h.sim
        .patch("pods", Some("shop"), name, merge)
        .expect("patch")
}

fn rv(object: &Value) -> &str {
    object["metadata"]["resourceVersion"].as_str().unwrap()
}

/// A heartbeat-only status change (ignoreFields) and a managedFields-only change (always
/// ignored) are not published; the real change after them is, to stdout and JetStream
/// alike, with the cache's latest state (the heartbeat's) as oldObject. --no-suppress
/// publishes all three.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noise_is_suppressed_and_the_real_change_carries_the_latest_old_object() {
    let nats = PrivateNats::start().await;
    let h = Harness::empty().await;
    h.create_namespace("shop");
    heartbeat_pod(&h, "a");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut args = vec![
        "pods",
        "-n",
        "shop",
        "--initial-state",
        "skip",
        "--metrics-addr",
        &addr,
        "--ignore-field",
        "/status/conditions/*/lastHeartbeatTime",
        "--sink",
        "stdout",
    ];
    let jetstream = nats.as_ref().map(|n| n.jetstream_sink("FILTERS"));
    if let Some(sink) = &jetstream {
        args.extend(["--sink", sink.as_str()]);
    }
    let mut kb = h.spawn(&args);
    wait_until(|| h.sim.requests("watch", "pods") >= 1).await;

    let beat = set_status(
        &h,
        "a",
        json!({"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True", "lastHeartbeatTime": "2026-01-01T00:00:10Z"}]}),
    );
    let managed = patch(
        &h,
        "a",
        json!({"metadata": {"managedFields": [
        {"manager": "kubectl", "operation": "Update", "apiVersion": "v1"}]}}),
    );
    let real = set_status(
        &h,
        "a",
        json!({"phase": "Failed", "conditions": [
        {"type": "Ready", "status": "False", "lastHeartbeatTime": "2026-01-01T00:00:20Z"}]}),
    );
    let n = kb.next().await;
    assert_eq!(brief(&n), "MODIFIED watch shop/a");
    assert_eq!(n["resourceVersion"], rv(&real));
    assert_eq!(n["object"]["status"]["phase"], "Failed");
    assert_eq!(n["oldObject"]["status"]["phase"], "Running");
    assert_eq!(
        rv(&n["oldObject"]),
        rv(&managed),
        "oldObject is the cache's latest state, even though it was not published"
    );
    assert_eq!(
        n["oldObject"]["status"]["conditions"][0]["lastHeartbeatTime"],
        beat["status"]["conditions"][0]["lastHeartbeatTime"]
    );
    wait_for_sample(port, &held(CLI, "unchanged"), 2.0).await;
    kb.expect_silence(Duration::from_millis(300)).await;
    if let Some(nats) = &nats {
        let messages = jetstream_messages(&nats.url, "FILTERS").await;
        let got: Vec<String> = messages.iter().map(|m| brief(&m.notification())).collect();
        assert_eq!(
            got,
            ["MODIFIED watch shop/a"],
            "JetStream got the same, once"
        );
    }
    kb.terminate().await;

    // The same three changes with --no-suppress: all published.
    heartbeat_pod(&h, "b");
    let mut kb = h.spawn(&[
        "pods",
        "-n",
        "shop",
        "--initial-state",
        "skip",
        "--no-suppress",
    ]);
    wait_until(|| h.sim.requests("watch", "pods") >= 2).await;
    set_status(
        &h,
        "b",
        json!({"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True", "lastHeartbeatTime": "2026-01-01T00:00:10Z"}]}),
    );
    patch(
        &h,
        "b",
        json!({"metadata": {"managedFields": [{"manager": "m", "operation": "Update"}]}}),
    );
    set_status(&h, "b", json!({"phase": "Failed"}));
    let all = kb.take(3).await;
    assert!(
        all.iter().all(|n| brief(n) == "MODIFIED watch shop/b"),
        "{all:?}"
    );
    kb.terminate().await;
}

/// A CEL filter on oldObject publishes the transition into Failed, and neither the
/// changes before it nor those after it; a pod first seen Failed passes too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cel_filter_on_the_old_object_catches_the_phase_transition() {
    let h = Harness::empty().await;
    h.create_namespace("shop");
    h.create_pod("shop", "a", json!({}));
    h.create_pod("shop", "b", json!({}));
    set_status(&h, "b", json!({"phase": "Failed"}));
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut kb = h.spawn(&[
        "pods", "-n", "shop", "--metrics-addr", &addr, "--filter",
        r#"object.status.phase == "Failed" && (oldObject == null || oldObject.status.phase != "Failed")"#,
    ]);
    assert_eq!(brief(&kb.next().await), "ADDED list shop/b");
    wait_until(|| h.sim.requests("watch", "pods") >= 1).await;
    set_status(&h, "a", json!({"phase": "Running"}));
    set_status(&h, "a", json!({"phase": "Failed"}));
    patch(
        &h,
        "a",
        json!({"metadata": {"labels": {"after": "failure"}}}),
    );
    let n = kb.next().await;
    assert_eq!(brief(&n), "MODIFIED watch shop/a");
    assert_eq!(
        (
            n["oldObject"]["status"]["phase"].as_str(),
            n["object"]["status"]["phase"].as_str()
        ),
        (Some("Running"), Some("Failed"))
    );
    // ADDED a (list), a -> Running, a's label while Failed.
    wait_for_sample(port, &held(CLI, "filter"), 3.0).await;
    kb.expect_silence(Duration::from_millis(300)).await;
    kb.terminate().await;
}

/// A filter that fails to evaluate (a key the objects lack) publishes every notification,
/// counts each failure, and logs it once (rate-limited), without any object's values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cel_runtime_error_keeps_the_notification_and_counts_it() {
    let h = Harness::empty().await;
    h.create_namespace("shop");
    for name in ["a", "b", "c"] {
        h.create_pod("shop", name, json!({"secret-ish": "s3cr3t-value"}));
    }
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut kb = h.spawn(&[
        "pods",
        "-n",
        "shop",
        "--metrics-addr",
        &addr,
        "--filter",
        "object.metadata.labels['secret-ish'] + 1 == 2 || object.spec.replicas > 1",
    ]);
    let got: Vec<String> = kb.take(3).await.iter().map(brief).collect();
    assert_eq!(
        got,
        [
            "ADDED list shop/a",
            "ADDED list shop/b",
            "ADDED list shop/c"
        ]
    );
    wait_for_sample(
        port,
        r#"kubebridge_route_filter_errors_total{route="command line"}"#,
        3.0,
    )
    .await;
    let (_, stderr) = kb.terminate().await;
    assert_eq!(
        stderr.matches("failed to evaluate").count(),
        1,
        "logged once a minute at most: {stderr}"
    );
    assert!(!stderr.contains("s3cr3t-value"), "{stderr}");
}

/// `--types added,deleted`: the MODIFIED between them is held back and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_types_filter_publishes_only_the_named_types() {
    let h = Harness::empty().await;
    h.create_namespace("shop");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut kb = h.spawn(&[
        "pods",
        "-n",
        "shop",
        "--types",
        "Added,DELETED",
        "--metrics-addr",
        &addr,
    ]);
    wait_until(|| h.sim.requests("watch", "pods") >= 1).await;
    h.create_pod("shop", "a", json!({}));
    patch(&h, "a", json!({"metadata": {"labels": {"x": "y"}}}));
    h.sim.delete("pods", Some("shop"), "a").unwrap();
    let got: Vec<String> = kb.take(2).await.iter().map(brief).collect();
    assert_eq!(got, ["ADDED watch shop/a", "DELETED watch shop/a"]);
    wait_for_sample(port, &held(CLI, "type"), 1.0).await;
    kb.terminate().await;
}

/// Projection keeps only the named paths in object and oldObject; a change outside them
/// is not published; `--diff` adds a patch that turns oldObject into object, and
/// `--old-object none` drops oldObject and keeps the patch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projection_and_diffs() {
    let h = Harness::empty().await;
    h.create_namespace("shop");
    let base = [
        "pods",
        "-n",
        "shop",
        "--initial-state",
        "skip",
        "--diff",
        "--field",
        "/metadata/name",
        "--field",
        "/metadata/labels",
        "--field",
        "/spec/containers/*/image",
    ];
    let mut kb = h.spawn(&base);
    wait_until(|| h.sim.requests("watch", "pods") >= 1).await;
    h.create_pod("shop", "a", json!({"app": "web"}));
    let added = kb.next().await;
    assert_eq!(
        added["object"],
        json!({"metadata": {"name": "a", "labels": {"app": "web"}}, "spec": {"containers": [{"image": "nginx:1.27"}]}})
    );
    assert!(added.get("patch").is_none(), "patches on MODIFIED only");
    // Status is outside the projection: not published.
    set_status(&h, "a", json!({"phase": "Running"}));
    patch(
        &h,
        "a",
        json!({"metadata": {"labels": {"app": "api", "tier": "front"}}}),
    );
    let n = kb.next().await;
    assert_eq!(brief(&n), "MODIFIED watch shop/a");
    assert_eq!(n["oldObject"]["metadata"]["labels"], json!({"app": "web"}));
    assert!(n["object"].get("status").is_none());
    let patch_ops: json_patch::Patch = serde_json::from_value(n["patch"].clone()).unwrap();
    let mut old = n["oldObject"].clone();
    json_patch::patch(&mut old, &patch_ops).unwrap();
    assert_eq!(old, n["object"], "the patch turns oldObject into object");
    kb.terminate().await;

    let mut args = base.to_vec();
    args.extend(["--old-object", "none"]);
    let mut kb = h.spawn(&args);
    wait_until(|| h.sim.requests("watch", "pods") >= 2).await;
    patch(&h, "a", json!({"metadata": {"labels": {"tier": null}}}));
    let n = kb.next().await;
    assert!(n.get("oldObject").is_none(), "{n}");
    assert_eq!(
        n["patch"],
        json!([{"op": "remove", "path": "/metadata/labels/tier"}])
    );
    kb.terminate().await;
}

/// Resync replays go through the filters as SYNC with oldObject null.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_replays_go_through_the_filters() {
    let h = Harness::empty().await;
    h.create_namespace("shop");
    h.create_pod("shop", "a", json!({}));
    h.create_pod("shop", "b", json!({}));
    let mut kb = h.spawn(&[
        "pods",
        "-n",
        "shop",
        "--resync",
        "1s",
        "--types",
        "sync",
        "--filter",
        "oldObject == null && type == 'SYNC' && origin == 'resync' && object.metadata.name == 'b'",
    ]);
    let first = kb.next().await;
    assert_eq!(brief(&first), "SYNC resync shop/b");
    // Every replay frames all the cache's objects; the route publishes its share.
    assert_eq!(first["snapshot"]["total"], 2);
    assert_eq!(brief(&kb.next().await), "SYNC resync shop/b");
    kb.terminate().await;
}

/// check-config prints what each route publishes, and refuses a filter that does not
/// compile, a bad pointer or an unknown type, in one line naming the route and key.
#[tokio::test]
async fn check_config_shows_and_checks_the_filters() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    let route = "routes:\n  - name: r\n    resources: [pods]\n    sinks: [stdout]\n";
    let check = |text: String| {
        std::fs::write(&path, text).unwrap();
        let mut cmd = kubebridge();
        cmd.args(["check-config", path.to_str().unwrap()]);
        harness::output(cmd)
    };
    let (code, stdout, stderr) = check(format!(
        "{route}    types: [MODIFIED]\n    filter: object.spec.replicas > 1\n    ignoreFields: [/spec/renewTime]\n    fields: [/spec]\n    diff: true\n    oldObject: none\n"
    ))
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("    publishes: types MODIFIED; filter 'object.spec.replicas > 1'; unchanged MODIFIED suppressed (ignoring /metadata/resourceVersion, /metadata/managedFields, /spec/renewTime); fields /spec; diff; no oldObject\n"),
        "{stdout}"
    );
    for (text, expected) in [
        (
            "    filter: object.spec.replicas >\n",
            "route \"r\" filter \"object.spec.replicas >\" does not compile: line 1 column 23",
        ),
        ("    filter: objct.a == 1\n", "unknown variable 'objct'"),
        ("    ignoreFields: [spec/renewTime]\n", "ignoreFields"),
        ("    fields: [\"/a~7\"]\n", "fields"),
        (
            "    types: [UPDATED]\n",
            "the types are ADDED, MODIFIED, DELETED and SYNC",
        ),
        ("    oldObject: half\n", "oldObject"),
    ] {
        let (code, stdout, stderr) = check(format!("{route}{text}")).await;
        assert_eq!(code, 2, "{text}: {stdout}{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{text}: {stderr}");
        assert!(stderr.contains(expected), "{text}: {stderr}");
    }
}

/// Filter flags without RESOURCE would have no route to apply to: a usage error.
#[tokio::test]
async fn filter_flags_need_the_command_lines_route() {
    let mut cmd = kubebridge();
    cmd.args([
        "watch",
        "--config",
        "examples/pods-to-stdout.yaml",
        "--types",
        "added",
    ]);
    let (code, _, stderr) = harness::output(cmd).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("apply to the command line's route"),
        "{stderr}"
    );
}
