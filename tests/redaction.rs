//! Decode-time transforms end to end, against the simulator through real sinks: Secret
//! values never reach stdout, JetStream, `/cache` or a trace-level log; a changed value
//! still shows as a changed hash; keys, `--reveal-secrets`, `redact` rules on a custom
//! resource, managedFields stripping, and the usage errors.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use kubebridge_testkit::brokers::{PrivateNats, free_port};
use kubebridge_testkit::consume::{jetstream_count, jetstream_messages};
use kubebridge_testkit::harness::{
    Harness, Running, WAIT, kubebridge, output, run_to_end, wait_until_async,
};
use kubebridge_testkit::http::get_text as get;
use serde_json::{Value, json};

/// The planted value, as `data` holds it (base64) and as itself.
const PASSWORD_B64: &str = "aHVudGVyMi1wbGFudGVk";
const PASSWORD: &str = "hunter2-planted";
const TOKEN: &str = "t0ken-planted";

fn is_hash(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.strip_prefix("hmac-sha256:")
            .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
    })
}

fn assert_no_secret(what: &str, text: &str) {
    for planted in [PASSWORD_B64, PASSWORD, TOKEN] {
        assert!(!text.contains(planted), "{what} holds {planted}: {text}");
    }
}

fn secret(name: &str, password_b64: &str) -> Value {
    let applied = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
                         "stringData": {"password": PASSWORD}});
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": "shop",
                     "annotations": {"kubectl.kubernetes.io/last-applied-configuration": applied.to_string(),
                                     "team": "payments"}},
        "type": "Opaque",
        "data": {"password": password_b64, "user": "YWRtaW4="},
        "stringData": {"token": TOKEN}
    })
}

async fn wait_until_ready(port: u16) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while get(port, "/readyz").await.map(|(c, _)| c) != Some(200) {
        assert!(tokio::time::Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secrets_values_reach_no_output_and_a_change_still_shows() {
    let Some(nats) = PrivateNats::start().await else {
        return;
    };
    let h = Harness::empty().await;
    h.create_namespace("shop");
    h.sim
        .create("secrets", Some("shop"), secret("db", PASSWORD_B64))
        .unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let sink = nats.jetstream_sink("KB_REDACT");
    let mut cmd = h.watch(&[
        "secrets",
        "-n",
        "shop",
        "--sink",
        "stdout",
        "--sink",
        &sink,
        "--metrics-addr",
        &addr,
        "--serve-cache",
        "--log-level",
        "trace",
    ]);
    cmd.env("RUST_LOG", "trace");
    let mut kb = Running::spawn(cmd);

    let added = kb.next().await;
    assert_no_secret("stdout", &added.to_string());
    let object = &added["object"];
    assert!(is_hash(&object["data"]["password"]), "{object}");
    assert!(is_hash(&object["data"]["user"]), "{object}");
    assert!(is_hash(&object["stringData"]["token"]), "{object}");
    let annotations = &object["metadata"]["annotations"];
    assert!(
        is_hash(&annotations["kubectl.kubernetes.io/last-applied-configuration"]),
        "{object}"
    );
    assert_eq!(annotations["team"], "payments", "other annotations kept");
    assert_eq!(object["type"], "Opaque");

    // A changed password: a MODIFIED whose password hash changed, the user's did not.
    let mut changed = h.sim.get("secrets", Some("shop"), "db").unwrap();
    changed["data"]["password"] = json!("bmV3LXBhc3N3b3Jk");
    h.sim.update("secrets", Some("shop"), changed).unwrap();
    let modified = kb.next().await;
    assert_eq!(modified["type"], "MODIFIED");
    assert_no_secret("stdout", &modified.to_string());
    let (new, old) = (&modified["object"]["data"], &modified["oldObject"]["data"]);
    assert!(is_hash(&new["password"]) && is_hash(&old["password"]));
    assert_ne!(new["password"], old["password"], "the change shows");
    assert_eq!(old["password"], object["data"]["password"]);
    assert_eq!(new["user"], old["user"], "an unchanged value hashes alike");

    wait_until_ready(port).await;
    let (code, body) = get(port, "/cache/secrets").await.unwrap();
    assert_eq!(code, 200, "{body}");
    assert_no_secret("/cache", &body);
    let cached: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(cached["items"][0]["data"]["password"], new["password"]);
    let (_, metrics) = get(port, "/metrics").await.unwrap();
    assert_no_secret("/metrics", &metrics);
    assert!(
        metrics.contains("kubebridge_redacted_values_total{resource=\"secrets@shop\"} 8"),
        "4 values in each of two versions: {metrics}"
    );

    wait_until_async(|| async { jetstream_count(&nats.url, "KB_REDACT").await >= 2 }).await;
    let messages = jetstream_messages(&nats.url, "KB_REDACT").await;
    assert_eq!(messages.len(), 2);
    for m in &messages {
        let text = String::from_utf8_lossy(&m.payload);
        assert_no_secret("JetStream", &text);
        assert!(text.contains("hmac-sha256:"), "{text}");
    }
    let (code, stderr) = kb.terminate().await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("TRACE") || stderr.contains("trace"),
        "trace logs: {stderr}"
    );
    assert_no_secret("the trace-level log", &stderr);
}

/// `--once` of the Secret `db`: its password hash, and stderr.
async fn password_hash(h: &Harness, args: &[&str], env: Option<&str>) -> (Value, String) {
    let mut cmd = h.watch(&[&["secrets", "-n", "shop", "--once"][..], args].concat());
    if let Some(key) = env {
        cmd.env("KUBEBRIDGE_REDACTION_KEY", key);
    }
    let (code, lines, stderr) = run_to_end(cmd).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(lines.len(), 1, "{lines:?}");
    (lines[0]["object"]["data"]["password"].clone(), stderr)
}

#[tokio::test]
async fn the_key_decides_the_hash_and_a_random_key_is_said_once() {
    let h = Harness::empty().await;
    h.create_namespace("shop");
    h.sim
        .create("secrets", Some("shop"), secret("db", PASSWORD_B64))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, "correct-horse-battery\n").unwrap();
    let key_arg = key_file.to_str().unwrap();

    let (first, stderr) = password_hash(&h, &["--redaction-key-file", key_arg], None).await;
    assert!(is_hash(&first));
    assert!(!stderr.contains("random"), "{stderr}");
    let (second, _) = password_hash(&h, &["--redaction-key-file", key_arg], None).await;
    assert_eq!(
        first, second,
        "the same key file, the same hash across runs"
    );
    // The environment's key is the same bytes (the file's newline trimmed).
    let (from_env, _) = password_hash(&h, &[], Some("correct-horse-battery")).await;
    assert_eq!(first, from_env);
    // The file wins over the environment.
    let (both, _) = password_hash(&h, &["--redaction-key-file", key_arg], Some("other")).await;
    assert_eq!(first, both);

    let (random, stderr) = password_hash(&h, &[], None).await;
    assert!(is_hash(&random));
    assert_ne!(random, first);
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("random key"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(warnings[0].contains("restarts"), "{stderr}");
    let (again, _) = password_hash(&h, &[], None).await;
    assert_ne!(random, again, "a random key per process");
}

#[tokio::test]
async fn reveal_secrets_shows_the_values_and_warns() {
    let h = Harness::empty().await;
    h.create_namespace("shop");
    h.sim
        .create("secrets", Some("shop"), secret("db", PASSWORD_B64))
        .unwrap();
    let (password, stderr) = password_hash(&h, &["--reveal-secrets"], None).await;
    assert_eq!(password, PASSWORD_B64);
    assert!(
        stderr.contains("--reveal-secrets") && stderr.contains("WARN"),
        "{stderr}"
    );
}

fn create_widgets_crd(h: &Harness) {
    h.sim
        .create(
            "customresourcedefinitions.apiextensions.k8s.io",
            None,
            json!({
                "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                "metadata": {"name": "widgets.example.com"},
                "spec": {
                    "group": "example.com", "scope": "Namespaced",
                    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                    "versions": [{"name": "v1", "served": true, "storage": true,
                                  "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]
                }
            }),
        )
        .unwrap();
}

#[tokio::test]
async fn a_redact_rule_hashes_a_custom_resources_paths() {
    let h = Harness::empty().await;
    h.create_namespace("shop");
    create_widgets_crd(&h);
    h.sim
        .create(
            "widgets.example.com",
            Some("shop"),
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
                   "spec": {"password": PASSWORD, "size": 3,
                            "credentials": {"user": "admin", "token": TOKEN},
                            "a/b": {"~c": PASSWORD}}}),
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "routes:\n  - name: widgets\n    resources: [widgets.example.com]\n    namespaces: [shop]\n    sinks: [stdout]\n\
         redact:\n  - resource: widget\n    paths: [/spec/password, /spec/credentials/*, /spec/a~1b/~0c, /spec/not/there]\n",
    )
    .unwrap();
    let (code, lines, stderr) =
        run_to_end(h.watch(&["--config", config.to_str().unwrap(), "--once"])).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_no_secret("stdout", &lines[0].to_string());
    let spec = &lines[0]["object"]["spec"];
    assert!(is_hash(&spec["password"]), "{spec}");
    assert!(is_hash(&spec["credentials"]["user"]), "{spec}");
    assert!(is_hash(&spec["credentials"]["token"]), "{spec}");
    assert!(is_hash(&spec["a/b"]["~c"]), "{spec}");
    assert_eq!(spec["size"], 3, "what no rule names is kept");
    assert_eq!(
        spec["password"], spec["a/b"]["~c"],
        "one key, one value, one hash"
    );

    // check-config shows the rule, resolved as far as it can offline.
    let (code, stdout, stderr) = output({
        let mut c = kubebridge();
        c.args(["check-config", config.to_str().unwrap()]);
        c
    })
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("secrets: redacted (hmac-sha256, key random per process"),
        "{stdout}"
    );
    assert!(stdout.contains("managedFields: stripped"), "{stdout}");
    assert!(
        stdout.contains(
            "  widget (resolved at start-up): /spec/password, /spec/credentials/*, /spec/a~1b/~0c, /spec/not/there"
        ),
        "{stdout}"
    );
}

fn pod_with_managed_fields(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop",
                     "managedFields": [{"manager": "kubectl", "operation": "Update", "apiVersion": "v1",
                                        "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:containers": {}}}}]},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_fields_are_stripped_unless_kept() {
    let h = Harness::empty().await;
    h.create_namespace("shop");
    h.sim
        .create("pods", Some("shop"), pod_with_managed_fields("a"))
        .unwrap();
    assert!(
        h.sim.get("pods", Some("shop"), "a").unwrap()["metadata"]["managedFields"].is_array(),
        "the server keeps them"
    );
    for (args, kept) in [(&[][..], false), (&["--keep-managed-fields"][..], true)] {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut kb = h.spawn(
            &[
                &[
                    "pods",
                    "-n",
                    "shop",
                    "--metrics-addr",
                    &addr,
                    "--serve-cache",
                ][..],
                args,
            ]
            .concat(),
        );
        let added = kb.next().await;
        assert_eq!(
            added["object"]["metadata"].get("managedFields").is_some(),
            kept,
            "{args:?}: {added}"
        );
        assert_eq!(added["object"]["spec"]["containers"][0]["image"], "nginx");
        wait_until_ready(port).await;
        let (code, body) = get(port, "/cache/pods").await.unwrap();
        assert_eq!(code, 200, "{body}");
        let cached: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            cached["items"][0]["metadata"]
                .get("managedFields")
                .is_some(),
            kept,
            "{args:?}: {body}"
        );
        let (code, stderr) = kb.terminate().await;
        assert_eq!(code, 0, "{stderr}");
    }
}

/// Runs `kubebridge ARGS` and expects exit 2 with one line on stderr containing `want`.
async fn usage_error(cmd: tokio::process::Command, want: &[&str]) -> String {
    let (code, stdout, stderr) = output(cmd).await;
    assert_eq!(code, 2, "{stdout} {stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    for w in want {
        assert!(stderr.contains(w), "{w:?} in {stderr}");
    }
    stderr
}

#[tokio::test]
async fn a_bad_key_or_rule_is_one_line_and_exit_2() {
    let h = Harness::empty().await;
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty-key");
    std::fs::write(&empty, "\n").unwrap();
    let empty_arg = empty.to_str().unwrap();
    usage_error(
        h.watch(&["pods", "--redaction-key-file", empty_arg]),
        &[empty_arg, "empty"],
    )
    .await;
    let missing = dir.path().join("missing-key");
    usage_error(
        h.watch(&["pods", "--redaction-key-file", missing.to_str().unwrap()]),
        &[missing.to_str().unwrap(), "cannot read"],
    )
    .await;
    let mut cmd = h.watch(&["pods"]);
    cmd.env("KUBEBRIDGE_REDACTION_KEY", "");
    usage_error(cmd, &["KUBEBRIDGE_REDACTION_KEY", "empty"]).await;

    let config = dir.path().join("config.yaml");
    let routes = "routes:\n  - name: r\n    resources: [pods]\n    sinks: [stdout]\n";
    for (rule, want) in [
        (
            "redact:\n  - resource: widgets.example.com\n    paths: [/spec/ok, spec/password]\n",
            &[
                "redact rule 1",
                "widgets.example.com",
                "spec/password",
                "start with '/'",
            ][..],
        ),
        (
            "redact:\n  - resource: pods\n    paths: [/spec/a~2]\n",
            &["redact rule 1", "~"],
        ),
        (
            "redact:\n  - resource: pods\n    paths: [/metadata/name]\n",
            &["redact rule 1", "identity"],
        ),
        (
            "redact:\n  - resource: pods\n    paths: []\n",
            &["no paths"],
        ),
    ] {
        std::fs::write(&config, format!("{routes}{rule}")).unwrap();
        usage_error(h.watch(&["--config", config.to_str().unwrap()]), want).await;
        usage_error(
            {
                let mut c = kubebridge();
                c.args(["check-config", config.to_str().unwrap()]);
                c
            },
            want,
        )
        .await;
    }
    // A rule naming a resource the cluster does not have: a typo must not publish what
    // the user meant to hide.
    std::fs::write(
        &config,
        format!("{routes}redact:\n  - resource: widgetz.example.com\n    paths: [/spec/x]\n"),
    )
    .unwrap();
    usage_error(
        h.watch(&["--config", config.to_str().unwrap()]),
        &["redact rule 1", "widgetz.example.com"],
    )
    .await;
}
