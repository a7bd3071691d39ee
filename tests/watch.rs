//! The kubebridge binary against the simulated API server: what a user sees on stdout.
#![allow(missing_docs, clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use kubebridge_sim::{Failure, SimConfig};
use kubebridge_testkit::harness::{
    Harness, Running, WAIT, brief, kubebridge, output, run_to_end, wait_until,
};
use serde_json::json;

#[tokio::test]
async fn once_prints_the_current_state_and_exits() {
    let h = Harness::empty().await;
    h.create_namespace("shop");
    h.create_namespace("other");
    h.create_pod("shop", "web-1", json!({"app": "web"}));
    h.create_pod("shop", "web-2", json!({"app": "web"}));
    h.create_pod("other", "db-1", json!({"app": "db"}));

    let (code, lines, stderr) =
        run_to_end(h.watch(&["pods", "-n", "shop", "--once", "--cluster-name", "test-1"])).await;
    assert_eq!(code, 0, "stderr: {stderr}");
    assert_eq!(
        lines.iter().map(brief).collect::<Vec<_>>(),
        ["ADDED list shop/web-1", "ADDED list shop/web-2"]
    );
    let n = &lines[0];
    assert_eq!(
        n["resource"],
        json!({"group": "", "version": "v1", "resource": "pods", "kind": "Pod"})
    );
    assert_eq!(n["cluster"], "test-1");
    // List items come without kind/apiVersion from the server; the envelope restores them.
    assert_eq!(n["object"]["kind"], "Pod");
    assert_eq!(n["object"]["apiVersion"], "v1");
    assert_eq!(n["object"]["metadata"]["name"], "web-1");
    assert_eq!(n["uid"], n["object"]["metadata"]["uid"]);
    assert_eq!(
        n["resourceVersion"],
        n["object"]["metadata"]["resourceVersion"]
    );
    assert!(n.get("oldObject").is_none());
    assert_eq!(n["snapshot"]["total"], 2);
    assert_eq!(lines[1]["snapshot"]["index"], 1);
    assert_eq!(lines[0]["snapshot"]["id"], lines[1]["snapshot"]["id"]);
    assert_eq!(h.sim.requests("watch", "pods"), 0, "--once never watches");
}

#[tokio::test]
async fn the_context_namespace_is_the_default_and_all_namespaces_is_explicit() {
    let h = Harness::start(SimConfig::default(), Some("shop")).await;
    h.create_namespace("shop");
    h.create_namespace("other");
    h.create_pod("shop", "a", json!({}));
    h.create_pod("other", "b", json!({}));
    let (code, lines, _) = run_to_end(h.watch(&["po", "--once"])).await;
    assert_eq!(code, 0);
    assert_eq!(
        lines.iter().map(brief).collect::<Vec<_>>(),
        ["ADDED list shop/a"]
    );
    let (_, lines, _) = run_to_end(h.watch(&["pod", "-A", "--once"])).await;
    assert_eq!(
        lines.iter().map(brief).collect::<Vec<_>>(),
        ["ADDED list other/b", "ADDED list shop/a"]
    );
}

#[tokio::test]
async fn several_namespaces_and_resources() {
    let h = Harness::empty().await;
    for ns in ["a", "b", "c"] {
        h.create_namespace(ns);
        h.create_pod(ns, "p", json!({}));
    }
    h.sim
        .create("configmaps", Some("b"), json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"k": "v"}}))
        .unwrap();
    let (code, lines, stderr) =
        run_to_end(h.watch(&["pods", "cm", "-n", "a", "-n", "b", "--once"])).await;
    assert_eq!(code, 0, "{stderr}");
    let got: BTreeSet<String> = lines
        .iter()
        .map(|n| {
            format!(
                "{} {}",
                n["resource"]["resource"].as_str().unwrap(),
                brief(n)
            )
        })
        .collect();
    assert_eq!(
        got,
        BTreeSet::from([
            "pods ADDED list a/p".to_string(),
            "pods ADDED list b/p".into(),
            "configmaps ADDED list b/cfg".into()
        ])
    );
}

#[tokio::test]
async fn live_changes_carry_the_old_object() {
    let h = Harness::empty().await;
    h.create_namespace("shop");
    h.create_pod("shop", "web-1", json!({"app": "web"}));
    let mut kb = h.spawn(&["pods", "-n", "shop"]);
    assert_eq!(brief(&kb.next().await), "ADDED list shop/web-1");

    let before = h.sim.get("pods", Some("shop"), "web-1").unwrap();
    let after = h
        .sim
        .patch(
            "pods",
            Some("shop"),
            "web-1",
            json!({"metadata": {"labels": {"version": "2"}}}),
        )
        .unwrap();
    h.create_pod("shop", "web-2", json!({"app": "web"}));
    h.sim.delete("pods", Some("shop"), "web-1").unwrap();

    let events = kb.take(3).await;
    assert_eq!(
        events.iter().map(brief).collect::<Vec<_>>(),
        [
            "MODIFIED watch shop/web-1",
            "ADDED watch shop/web-2",
            "DELETED watch shop/web-1"
        ]
    );
    let modified = &events[0];
    assert_eq!(
        modified["oldObject"]["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );
    assert_eq!(
        modified["object"]["metadata"]["resourceVersion"],
        after["metadata"]["resourceVersion"]
    );
    assert_eq!(modified["object"]["metadata"]["labels"]["version"], "2");
    assert!(
        modified["oldObject"]["metadata"]["labels"]
            .get("version")
            .is_none()
    );
    assert!(events[2].get("oldObject").is_none());
    assert_eq!(
        events[2]["object"]["metadata"]["labels"]["version"], "2",
        "DELETED carries the last state"
    );

    let (code, stderr) = kb.terminate().await;
    assert_eq!(code, 0, "SIGTERM exits 0; stderr: {stderr}");
}

#[tokio::test]
async fn a_dropped_watch_resumes_without_duplicates_or_loss() {
    let h = Harness::empty().await;
    h.create_namespace("shop");
    h.create_pod("shop", "p0", json!({}));
    let mut kb = h.spawn(&["pods", "-n", "shop"]);
    assert_eq!(brief(&kb.next().await), "ADDED list shop/p0");
    h.create_pod("shop", "p1", json!({}));
    assert_eq!(brief(&kb.next().await), "ADDED watch shop/p1");

    for round in 2..6 {
        h.sim.faults().drop_watches();
        h.create_pod("shop", &format!("p{round}"), json!({}));
        h.sim
            .patch(
                "pods",
                Some("shop"),
                "p0",
                json!({"metadata": {"labels": {"round": round.to_string()}}}),
            )
            .unwrap();
    }
    let got: Vec<String> = kb.take(8).await.iter().map(brief).collect();
    let mut want = Vec::new();
    for round in 2..6 {
        want.push(format!("ADDED watch shop/p{round}"));
        want.push("MODIFIED watch shop/p0".to_string());
    }
    assert_eq!(got, want);
    kb.expect_silence(Duration::from_millis(500)).await;
    assert_eq!(
        h.sim.requests("list", "pods"),
        1,
        "resuming a watch must not relist"
    );
    assert!(h.sim.requests("watch", "pods") >= 2);
    kb.terminate().await;
}

#[tokio::test]
async fn an_expired_resource_version_relists_and_reports_what_changed_in_the_gap() {
    let h = Harness::empty().await;
    h.create_namespace("shop");
    h.create_pod("shop", "stays", json!({}));
    h.create_pod("shop", "goes", json!({}));
    h.create_pod("shop", "reborn", json!({}));
    h.create_pod("shop", "changes", json!({}));
    let mut kb = h.spawn(&["pods", "-n", "shop"]);
    assert_eq!(kb.take(4).await.len(), 4);
    let old_reborn = h.sim.get("pods", Some("shop"), "reborn").unwrap();

    // Make the reconnect fail once so the changes below land while the watch is down,
    // then compact so the resume from the old resourceVersion gets 410 Gone.
    h.sim.faults().fail_next(1, Failure::InternalError);
    h.sim.faults().drop_watches();
    h.sim.delete("pods", Some("shop"), "goes").unwrap();
    h.sim.delete("pods", Some("shop"), "reborn").unwrap();
    h.create_pod("shop", "reborn", json!({"generation": "2"}));
    h.sim
        .patch(
            "pods",
            Some("shop"),
            "changes",
            json!({"metadata": {"labels": {"x": "y"}}}),
        )
        .unwrap();
    h.create_pod("shop", "new", json!({}));
    h.sim.faults().compact();

    let events = kb.take(5).await;
    assert_eq!(
        events.iter().map(brief).collect::<Vec<_>>(),
        [
            "DELETED relist shop/goes",
            "MODIFIED relist shop/changes",
            "DELETED relist shop/reborn",
            "ADDED relist shop/reborn",
            "ADDED relist shop/new",
        ]
    );
    assert_eq!(
        events[2]["uid"], old_reborn["metadata"]["uid"],
        "the delete names the old object"
    );
    assert_ne!(
        events[3]["uid"], old_reborn["metadata"]["uid"],
        "the add is the new object"
    );
    assert_eq!(events[1]["object"]["metadata"]["labels"]["x"], "y");
    kb.expect_silence(Duration::from_millis(500)).await;
    assert_eq!(h.sim.requests("list", "pods"), 2);
    kb.terminate().await;
}

#[tokio::test]
async fn resync_replays_the_cache_without_asking_the_server() {
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
        "--initial-state",
        "skip",
    ]);
    // Once the watch is up, a live change comes through.
    wait_until(|| h.sim.requests("watch", "pods") >= 1).await;
    h.create_pod("shop", "c", json!({}));
    let first = kb.next().await;
    assert_eq!(brief(&first), "ADDED watch shop/c");
    let requests = h.sim.request_counts();
    let sync = kb.take(6).await;
    assert_eq!(
        sync.iter().map(brief).collect::<Vec<_>>(),
        [
            "SYNC resync shop/a",
            "SYNC resync shop/b",
            "SYNC resync shop/c"
        ]
        .repeat(2)
    );
    assert_eq!(sync[0]["snapshot"]["total"], 3);
    assert_eq!(sync[2]["snapshot"]["index"], 2);
    assert_eq!(sync[0]["snapshot"]["id"], sync[2]["snapshot"]["id"]);
    assert_ne!(sync[0]["snapshot"]["id"], sync[3]["snapshot"]["id"]);
    assert_eq!(
        h.sim.request_counts(),
        requests,
        "a resync makes no API request"
    );
    kb.terminate().await;
}

#[tokio::test]
async fn selectors_are_applied_by_the_server() {
    let h = Harness::empty().await;
    h.create_namespace("shop");
    h.create_pod("shop", "web-1", json!({"app": "web", "tier": "front"}));
    h.create_pod("shop", "web-2", json!({"app": "web", "tier": "back"}));
    h.create_pod("shop", "db-1", json!({"app": "db"}));
    let (_, lines, _) =
        run_to_end(h.watch(&["pods", "-n", "shop", "--once", "-l", "app=web,tier!=back"])).await;
    assert_eq!(
        lines.iter().map(brief).collect::<Vec<_>>(),
        ["ADDED list shop/web-1"]
    );
    let (_, lines, _) = run_to_end(h.watch(&[
        "pods",
        "-A",
        "--once",
        "--field-selector",
        "metadata.name=db-1",
    ]))
    .await;
    assert_eq!(
        lines.iter().map(brief).collect::<Vec<_>>(),
        ["ADDED list shop/db-1"]
    );

    // Live: an object entering the selector is ADDED, one leaving it is DELETED.
    let mut kb = h.spawn(&["pods", "-n", "shop", "-l", "app=web"]);
    assert_eq!(kb.take(2).await.len(), 2);
    h.sim
        .patch(
            "pods",
            Some("shop"),
            "db-1",
            json!({"metadata": {"labels": {"app": "web"}}}),
        )
        .unwrap();
    h.sim
        .patch(
            "pods",
            Some("shop"),
            "web-2",
            json!({"metadata": {"labels": {"app": "api"}}}),
        )
        .unwrap();
    let events = kb.take(2).await;
    assert_eq!(
        events.iter().map(brief).collect::<Vec<_>>(),
        ["ADDED watch shop/db-1", "DELETED watch shop/web-2"]
    );
    kb.terminate().await;

    let (code, _, stderr) =
        run_to_end(h.watch(&["pods", "-A", "--once", "--field-selector", "spec.bogus=1"])).await;
    assert_eq!(
        code, 2,
        "a selector the server rejects is a usage error: {stderr}"
    );
    assert!(stderr.contains("spec.bogus"), "{stderr}");
}

#[tokio::test]
async fn pages_follow_continue_tokens() {
    let h = Harness::empty().await;
    h.create_namespace("shop");
    for i in 0..7 {
        h.create_pod("shop", &format!("p{i}"), json!({}));
    }
    let (code, lines, _) =
        run_to_end(h.watch(&["pods", "-n", "shop", "--once", "--page-size", "3"])).await;
    assert_eq!(code, 0);
    assert_eq!(lines.len(), 7);
    assert_eq!(h.sim.requests("list", "pods"), 3);
}

#[tokio::test]
async fn watch_list_gets_the_initial_state_from_the_watch() {
    let h = Harness::empty().await;
    h.create_namespace("shop");
    h.create_pod("shop", "a", json!({}));
    let mut kb = h.spawn(&["pods", "-n", "shop", "--watch-list"]);
    assert_eq!(brief(&kb.next().await), "ADDED list shop/a");
    h.create_pod("shop", "b", json!({}));
    assert_eq!(brief(&kb.next().await), "ADDED watch shop/b");
    assert_eq!(h.sim.requests("list", "pods"), 0);
    kb.terminate().await;

    // A server without watch-list: kubebridge falls back to LIST.
    let old = Harness::start(
        SimConfig {
            watch_list: false,
            ..SimConfig::default()
        },
        None,
    )
    .await;
    old.create_namespace("shop");
    old.create_pod("shop", "a", json!({}));
    let mut kb = old.spawn(&["pods", "-n", "shop", "--watch-list"]);
    assert_eq!(brief(&kb.next().await), "ADDED list shop/a");
    assert_eq!(old.sim.requests("list", "pods"), 1);
    kb.terminate().await;
}

#[tokio::test]
async fn custom_resources_resolve_through_discovery() {
    let h = Harness::empty().await;
    h.create_namespace("jobs");
    h.sim
        .create(
            "customresourcedefinitions.apiextensions.k8s.io",
            None,
            json!({
                "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                "metadata": {"name": "crontabs.stable.example.com"},
                "spec": {
                    "group": "stable.example.com", "scope": "Namespaced",
                    "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab", "shortNames": ["ct"]},
                    "versions": [{"name": "v1", "served": true, "storage": true,
                                  "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]
                }
            }),
        )
        .unwrap();
    h.sim
        .create(
            "crontabs.stable.example.com",
            Some("jobs"),
            json!({"apiVersion": "stable.example.com/v1", "kind": "CronTab", "metadata": {"name": "nightly"}, "spec": {"cronSpec": "0 3 * * *"}}),
        )
        .unwrap();
    for name in [
        "ct",
        "crontabs.stable.example.com",
        "crontabs.v1.stable.example.com",
        "CronTab",
    ] {
        let (code, lines, stderr) = run_to_end(h.watch(&[name, "-n", "jobs", "--once"])).await;
        assert_eq!(code, 0, "{name}: {stderr}");
        assert_eq!(
            lines.iter().map(brief).collect::<Vec<_>>(),
            ["ADDED list jobs/nightly"],
            "{name}"
        );
        assert_eq!(lines[0]["resource"]["group"], "stable.example.com");
        assert_eq!(lines[0]["object"]["spec"]["cronSpec"], "0 3 * * *");
    }
}

#[tokio::test]
async fn an_unknown_resource_exits_2_with_suggestions() {
    let h = Harness::empty().await;
    let (code, lines, stderr) = run_to_end(h.watch(&["podz"])).await;
    assert_eq!(code, 2);
    assert!(lines.is_empty());
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("\"podz\"") && stderr.contains("pods"),
        "{stderr}"
    );
}

#[tokio::test]
async fn usage_errors_are_one_line_with_exit_2() {
    for args in [
        &["watch", "pods", "--resync", "soon"][..],
        &["watch", "pods", "--sink", "smtp://x"],
        &["watch"],
        &["frobnicate"],
    ] {
        let (code, lines, stderr) = run_to_end({
            let mut c = kubebridge();
            c.args(args);
            c
        })
        .await;
        assert_eq!(code, 2, "{args:?}");
        assert!(lines.is_empty());
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("kubebridge: "), "{stderr}");
    }
    let (code, _, stderr) = run_to_end({
        let mut c = kubebridge();
        c.args(["watch", "pods", "--kubeconfig", "/nonexistent/kubeconfig"]);
        c
    })
    .await;
    assert_eq!(code, 2);
    assert!(stderr.contains("/nonexistent/kubeconfig"), "{stderr}");
}

#[tokio::test]
async fn forbidden_names_the_missing_rbac_rule() {
    let h = Harness::empty().await;
    h.sim.faults().forbid("pods", "list");
    let (code, _, stderr) = run_to_end(h.watch(&["pods", "-n", "shop"])).await;
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("not allowed to list pods in namespace \"shop\""),
        "{stderr}"
    );
    assert!(
        stderr.contains(r#"resources: ["pods"], verbs: ["list", "watch"]"#),
        "{stderr}"
    );
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let h = Harness::empty().await;
    h.create_namespace("shop");
    h.create_pod("shop", "a", json!({}));
    h.sim.faults().fail_next(
        1,
        Failure::TooManyRequests {
            retry_after_secs: 2,
        },
    );
    let started = Instant::now();
    let (code, lines, stderr) = run_to_end(h.watch(&["pods", "-n", "shop", "--once"])).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(lines.len(), 1);
    // Discovery is not failed by fail_next; the LIST is, and waits as told.
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(h.sim.requests("list", "pods"), 2);
}

#[tokio::test]
async fn a_closed_pipe_ends_quietly_with_0() {
    let h = Harness::start(
        SimConfig {
            namespaces: 2,
            pods: 20,
            churn_per_sec: 50.0,
            ..SimConfig::default()
        },
        None,
    )
    .await;
    let mut kb = h.spawn(&["pods", "-A"]);
    kb.take(3).await;
    // What `| head -3` does: the reader goes away while kubebridge keeps writing.
    let (code, stderr) = kb.close_stdout_and_wait().await;
    assert_eq!(code, 0, "stderr: {stderr}");
    assert!(stderr.is_empty(), "no error text: {stderr}");
}

#[tokio::test]
async fn demo_prints_real_events() {
    let mut cmd = kubebridge();
    cmd.args(["demo", "--churn", "20"]);
    let mut kb = Running::spawn(cmd);
    let events = kb.take(40).await;
    let kinds: BTreeSet<&str> = events
        .iter()
        .map(|n| n["resource"]["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains("Pod") && kinds.contains("Deployment"),
        "{kinds:?}"
    );
    let origins: BTreeSet<&str> = events
        .iter()
        .map(|n| n["origin"].as_str().unwrap())
        .collect();
    assert!(
        origins.contains("list") && origins.contains("watch"),
        "{origins:?}"
    );
    let (code, stderr) = kb.terminate().await;
    assert_eq!(code, 0, "{stderr}");
}

#[tokio::test]
async fn bad_sinks_are_one_line_usage_errors() {
    let h = Harness::empty().await;
    for (args, expected) in [
        (&["--sink", "kafka://127.0.0.1:9092"][..], "no topic"),
        (
            &[
                "--sink",
                "kafka://127.0.0.1:9092/t",
                "-X",
                "no.such.property=1",
            ],
            "no.such.property",
        ),
        (
            &["--sink", "kafka://127.0.0.1:9092/t", "-X", "acks=sometimes"],
            "acks",
        ),
        (
            &["--sink", "nats://user:hunter2@127.0.0.1:4222"],
            "no subject prefix",
        ),
        (&["--sink", "smtp://mail"], "smtp://mail"),
    ] {
        let mut all = vec!["pods", "-n", "shop"];
        all.extend_from_slice(args);
        let (code, lines, stderr) = run_to_end(h.watch(&all)).await;
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(lines.is_empty());
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("hunter2"),
            "passwords are masked: {stderr}"
        );
    }
}

#[tokio::test]
async fn rbac_prints_the_least_privilege_rbac() {
    let h = Harness::empty().await;
    let mut cmd = kubebridge();
    cmd.args([
        "rbac",
        "po",
        "deploy",
        "cm",
        "--name",
        "kb-reader",
        "--kubeconfig",
    ])
    .arg(&h.kubeconfig);
    let (code, yaml, stderr) = output(cmd).await;
    assert_eq!(code, 0, "{stderr}");
    // Short names resolved through discovery; list and watch only, grouped by API group.
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&yaml).expect("YAML");
    assert_eq!(docs.len(), 2, "{yaml}");
    assert_eq!(docs[0]["kind"], "ClusterRole");
    assert_eq!(docs[0]["metadata"]["name"], "kb-reader");
    assert_eq!(
        docs[0]["rules"],
        json!([
            {"apiGroups": [""], "resources": ["pods", "configmaps"], "verbs": ["list", "watch"]},
            {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["list", "watch"]},
        ])
    );
    assert_eq!(docs[1]["kind"], "ClusterRoleBinding");
    assert_eq!(docs[1]["roleRef"]["name"], "kb-reader");
    assert!(
        !yaml.contains("create") && !yaml.contains('*'),
        "read-only, no wildcards: {yaml}"
    );

    let mut cmd = kubebridge();
    cmd.args(["rbac", "podz", "--kubeconfig"])
        .arg(&h.kubeconfig);
    assert_eq!(output(cmd).await.0, 2);
}

#[tokio::test]
async fn a_terminal_sees_list_progress_and_a_pipe_does_not() {
    let h = Harness::empty().await;
    h.create_namespace("shop");
    for i in 0..5 {
        h.create_pod("shop", &format!("p{i}"), json!({}));
    }
    // script(1) gives kubebridge a pseudo-terminal for stdout and stderr.
    let command = format!(
        "{} watch pods -n shop --once --page-size 2 --kubeconfig {}",
        env!("CARGO_BIN_EXE_kubebridge"),
        h.kubeconfig.display()
    );
    let out = tokio::time::timeout(
        WAIT,
        tokio::process::Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .output(),
    )
    .await
    .unwrap()
    .expect("script(1) from util-linux runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("listing pods@shop: 2 objects so far"),
        "{text}"
    );
    assert!(
        text.contains("listing pods@shop: 4 objects so far"),
        "{text}"
    );
    assert!(text.contains("listed pods@shop: 5 objects"), "{text}");

    let (code, lines, stderr) =
        run_to_end(h.watch(&["pods", "-n", "shop", "--once", "--page-size", "2"])).await;
    assert_eq!((code, lines.len()), (0, 5));
    assert!(
        !stderr.contains("listing"),
        "no progress into a pipe: {stderr}"
    );
}
