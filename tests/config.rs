//! `--config` files and `check-config`: the shipped examples, broken files, routes that
//! share informers, and flags that win over the file.
#![allow(missing_docs, clippy::unwrap_used)]

use kubebridge_testkit::harness::{
    self, Harness, Running, brief, kubebridge, run_to_end, wait_until,
};
use serde_json::json;

async fn check_config(path: &str, env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = kubebridge();
    cmd.args(["check-config", path]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    harness::output(cmd).await
}

#[tokio::test]
async fn every_shipped_example_is_valid_and_the_plan_shows_sharing() {
    for file in std::fs::read_dir("examples").unwrap() {
        let path = file.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let (code, stdout, stderr) =
            check_config(path.to_str().unwrap(), &[("KAFKA_PASSWORD", "secret")]).await;
        assert_eq!(code, 0, "{}: {stderr}", path.display());
        assert!(stdout.contains(": valid\ninformers ("), "{stdout}");
        assert!(stderr.is_empty(), "no noise from sink clients: {stderr}");
    }
    let (_, stdout, _) = check_config("examples/shared-informers.yaml", &[]).await;
    assert!(
        stdout.contains("pods in all namespaces  <- audit-everything, pods-to-analytics (shared)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("informers (4):") && stdout.contains("routes (3):"),
        "{stdout}"
    );
}

#[tokio::test]
async fn broken_files_are_one_line_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let route = "routes:\n  - name: r\n    resources: [pods]\n    sinks: [stdout]\n";
    for (text, expected) in [
        (format!("{route}colour: blue\n"), "colour"),
        (format!("{route}resync: soon\n"), "resync"),
        (format!("{route}overflow: sometimes\n"), "sometimes"),
        (format!("{route}cacheCompression: gzip\n"), "gzip"),
        ("routes: []\n".to_string(), "no routes"),
        ("routes:\n  - name: r\n    resources: [pods]\n    sinks: [\"kafka://h:1\"]\n".to_string(), "no topic"),
        (format!("{route}kafka:\n  properties:\n    sasl.password: ${{NOT_SET_ANYWHERE}}\n"), "NOT_SET_ANYWHERE is not set"),
        ("routes:\n  - name: r\n    resources: [pods]\n    namespaces: [Bad_NS]\n    sinks: [stdout]\n".to_string(), "Bad_NS"),
        (format!("{route}    kafka:\n      key: colour\n"), "route \"r\" kafka.key"),
        (format!("{route}    format: xml\n"), "route \"r\""),
        ("routes:\n  - name: k\n    resources: [pods]\n    sinks: [\"kafka://h:1/t\"]\n    kafka:\n      properties:\n        acks: sometimes\n".to_string(), "acks"),
    ] {
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, &text).unwrap();
        let (code, stdout, stderr) = check_config(path.to_str().unwrap(), &[]).await;
        assert_eq!(code, 2, "{text}: {stdout}{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{text}: {stderr}");
        assert!(stderr.contains(expected), "{text}: {stderr}");
    }
}

#[tokio::test]
async fn routes_watching_the_same_thing_share_one_informer_and_flags_win() {
    let h = Harness::empty().await;
    h.create_namespace("shop");
    h.create_pod("shop", "a", json!({"app": "web"}));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routes.yaml");
    std::fs::write(
        &path,
        "initialState: skip\nroutes:\n  - name: one\n    resources: [pods]\n    namespaces: [shop]\n    sinks: [stdout]\n  \
         - name: two\n    resources: [po]\n    namespaces: [shop]\n    sinks: [stdout]\n",
    )
    .unwrap();
    let config = path.to_str().unwrap();
    // The file says skip; the typed flag says emit, and wins.
    let (code, lines, stderr) =
        run_to_end(h.watch(&["--config", config, "--once", "--initial-state", "emit"])).await;
    assert_eq!(code, 0, "{stderr}");
    // Two routes, two sinks: each notification once per route, from one shared LIST.
    assert_eq!(
        lines.iter().map(brief).collect::<Vec<_>>(),
        ["ADDED list shop/a", "ADDED list shop/a"]
    );
    assert_eq!(
        lines[0]["snapshot"]["id"], lines[1]["snapshot"]["id"],
        "one informer behind both"
    );
    assert_eq!(h.sim.requests("list", "pods"), 1);

    // Without the flag, the file's initialState: skip holds.
    let mut kb = Running::spawn(h.watch(&["--config", config]));
    wait_until(|| h.sim.requests("watch", "pods") >= 1).await;
    h.create_pod("shop", "b", json!({}));
    let events = kb.take(2).await;
    assert_eq!(
        events.iter().map(brief).collect::<Vec<_>>(),
        ["ADDED watch shop/b", "ADDED watch shop/b"]
    );
    kb.terminate().await;
}

#[test]
fn the_shipped_examples_match_the_config_schema() {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string("examples/kubebridge-config.schema.json").unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).expect("a valid JSON Schema");
    let mut checked = 0;
    for file in std::fs::read_dir("examples").unwrap() {
        let path = file.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let value: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
        checked += 1;
    }
    assert!(checked >= 4, "the examples were found");
    // And the schema refuses what kubebridge refuses.
    let bad: serde_json::Value = serde_json::json!({"routes": [{"name": "r", "resources": ["pods"], "sinks": ["stdout"]}], "colour": "blue"});
    assert!(!validator.is_valid(&bad));
}

/// `[pods]` and `[po]`: check-config plans one informer, and the runtime runs exactly one
/// (one LIST of pods), reading every discovery document once for the whole process.
#[tokio::test]
async fn check_config_and_the_runtime_agree_on_shared_informers() {
    let h = Harness::empty().await;
    h.create_namespace("shop");
    h.create_pod("shop", "a", json!({}));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routes.yaml");
    std::fs::write(
        &path,
        "routes:\n  - name: one\n    resources: [pods]\n    namespaces: [shop]\n    sinks: [stdout]\n  \
         - name: two\n    resources: [po]\n    namespaces: [shop]\n    sinks: [stdout]\n",
    )
    .unwrap();
    let config = path.to_str().unwrap();

    let (code, stdout, stderr) = check_config(config, &[]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("informers (1):\n"), "{stdout}");
    assert!(
        stdout.contains("  pods in namespace shop  <- one, two (shared)\n"),
        "{stdout}"
    );

    assert!(
        !h.sim
            .request_counts()
            .keys()
            .any(|(verb, _)| verb == "discovery"),
        "no discovery yet"
    );
    let (code, lines, stderr) = run_to_end(h.watch(&["--config", config, "--once"])).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        lines.iter().map(brief).collect::<Vec<_>>(),
        ["ADDED list shop/a", "ADDED list shop/a"]
    );
    assert_eq!(h.sim.requests("list", "pods"), 1, "one informer");
    let discovery: Vec<(String, u64)> = h
        .sim
        .request_counts()
        .into_iter()
        .filter(|((verb, _), _)| verb == "discovery")
        .map(|((_, path), n)| (path, n))
        .collect();
    assert!(
        discovery.iter().any(|(path, _)| path == "/api")
            && discovery.iter().any(|(path, _)| path == "/apis"),
        "{discovery:?}"
    );
    assert!(
        discovery.iter().all(|(_, n)| *n == 1),
        "each discovery document read once: {discovery:?}"
    );
}

/// The names check-config resolves offline resolve to the same resources through the
/// (simulated) API server's discovery.
#[tokio::test]
async fn the_builtin_table_agrees_with_discovery() {
    use kubebridge::kube::Discovery;
    let h = Harness::empty().await;
    let cluster = kubebridge::kube::cluster::from_config(
        kube::Config::new(h.sim.url().parse().unwrap()),
        None,
    )
    .unwrap();
    let live = cluster.discover().await.unwrap();
    let builtin = Discovery::builtin();
    let mut compared = 0;
    for served in live.resources().filter(|r| r.preferred) {
        let qualified = served.id.to_string();
        let Ok(offline) = builtin.resolve(&qualified) else {
            continue; // a custom resource: resolved at start-up
        };
        assert_eq!(offline.id, served.id, "{qualified}");
        assert_eq!(offline.namespaced, served.namespaced, "{qualified}");
        for name in std::iter::once(&served.singular).chain(&served.short_names) {
            assert_eq!(
                builtin.resolve(name).unwrap().id,
                live.resolve(name).unwrap().id,
                "{name}"
            );
        }
        compared += 1;
    }
    assert!(
        compared >= 10,
        "only {compared} built-in resources compared"
    );
}

/// `${VAR}` is substituted in parsed values: a value with `# ` and `: ` lands verbatim in
/// its field (here the label selector, which the plan prints); an unset one is one line.
#[tokio::test]
async fn environment_values_cannot_change_the_files_structure() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(
        &path,
        "routes:\n  - name: r\n    resources: [pods]\n    labelSelector: ${SELECTOR}\n    sinks: [stdout]\n",
    )
    .unwrap();
    let path = path.to_str().unwrap();
    let value = "app=web # not a comment: nor a key";
    let (code, stdout, stderr) = check_config(path, &[("SELECTOR", value)]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(&format!(
            "pods in the context's namespace, labels {value}  <- r\n"
        )),
        "{stdout}"
    );
    let (code, _, stderr) = check_config(path, &[]).await;
    assert_eq!(code, 2);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("SELECTOR is not set"), "{stderr}");
}

/// Durations are parsed and bounded when the command line or the file is read: an absurd
/// one is a one-line usage error, never a panic later in clock arithmetic.
#[tokio::test]
async fn absurd_durations_are_one_line_usage_errors() {
    for args in [
        &["watch", "pods", "--resync", "300000000000y"][..],
        &["watch", "pods", "--shutdown-grace", "300000000000y"],
        &[
            "watch",
            "pods",
            "--leader-elect",
            "--leader-elect-lease-duration",
            "300000000000y",
        ],
    ] {
        let (code, lines, stderr) = run_to_end({
            let mut c = kubebridge();
            c.args(args);
            c
        })
        .await;
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(lines.is_empty());
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains("longest accepted"), "{args:?}: {stderr}");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(
        &path,
        "resync: 300000000000y\nroutes:\n  - name: r\n    resources: [pods]\n    sinks: [stdout]\n",
    )
    .unwrap();
    let (code, _, stderr) = check_config(path.to_str().unwrap(), &[]).await;
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("resync") && stderr.contains("longest accepted"),
        "{stderr}"
    );
}
