//! No credential in any output: distinct known secrets are planted in every input a
//! user gives kubebridge (a sink URI's password, `-X sasl.password`, a config file, an
//! environment variable used as `${VAR}`, the kubeconfig's token, a NATS creds file,
//! and a Secret object in the cluster), kubebridge runs (`watch` with stdout, NATS,
//! JetStream and Kafka sinks at RUST_LOG=trace with `/metrics` and `/cache` scraped;
//! `check-config`; invocations that fail on a bad URI or a rejected property), and every
//! output channel is searched for each secret, as written and base64-encoded.
//!
//! Needs the real brokers (`source tests/brokers.sh && start_brokers`), or
//! KUBEBRIDGE_SKIP_BROKERS=1 to skip the `watch` parts.
#![allow(missing_docs, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use kubebridge_testkit::brokers::{Broker, broker_env, free_port, wait_listening};
use kubebridge_testkit::consume::{jetstream_count, jetstream_messages, kafka_messages};
use kubebridge_testkit::harness::{Harness, binary};
use kubebridge_testkit::http::get_text;
use kubebridge_testkit::publish::unique;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

/// Each planted secret, named by where it was planted.
const URI_PASSWORD: (&str, &str) = ("a --sink URI's password", "PlantedUriPw4711");
const KAFKA_PROPERTY: (&str, &str) = ("-X sasl.password", "PlantedSaslPw0815");
const FILE_PASSWORD: (&str, &str) = ("a config file's URI password", "PlantedFilePw2342");
const FILE_PROPERTY: (&str, &str) = ("a config file's Kafka property", "PlantedFileProp9001");
const ENV_PASSWORD: (&str, &str) = ("an env var used as ${VAR}", "PlantedEnvPw1337");
const KUBE_TOKEN: (&str, &str) = ("the kubeconfig's token", "PlantedKubeToken5150");
const SECRET_VALUE: (&str, &str) = ("a Secret object's data", "PlantedSecretData8086");
const SECRET_STRING: (&str, &str) = (
    "a Secret's last-applied annotation",
    "PlantedLastApplied6502",
);

/// The Secret redaction key, given as `KUBEBRIDGE_REDACTION_KEY`.
const REDACTION_KEY: (&str, &str) = ("the redaction key", "PlantedRedactionKey6174");

/// The env var the config file reads as `${...}`.
const ENV_VAR: &str = "KUBEBRIDGE_PLANTED_NATS_PASSWORD";

/// Every text kubebridge produced, by channel.
#[derive(Default)]
struct Outputs(Vec<(String, String)>);

impl Outputs {
    fn add(&mut self, channel: impl Into<String>, text: impl Into<String>) {
        self.0.push((channel.into(), text.into()));
    }

    /// Fails naming every (secret, channel) pair where the secret appears, as written
    /// or base64-encoded (Secret data is base64 on the wire).
    fn assert_none_of(&self, secrets: &[(&str, &str)]) {
        use std::fmt::Write as _;
        let mut found = String::new();
        for (what, secret) in secrets {
            for form in [secret.to_string(), base64(secret)] {
                for (channel, text) in &self.0 {
                    if text.contains(&form) {
                        let _ = writeln!(found, "{what} ({form}) in {channel}");
                    }
                }
            }
        }
        assert!(found.is_empty(), "planted secrets leaked:\n{found}");
        assert!(!self.0.is_empty(), "no output was searched");
    }
}

fn base64(s: &str) -> String {
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = s.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ABC[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn base64_matches_the_rfc() {
    assert_eq!(base64("hunter2"), "aHVudGVyMg==");
    assert_eq!(base64("abc"), "YWJj");
    assert_eq!(base64("ab"), "YWI=");
}

/// A kubeconfig for `harness`' simulator whose user has the token [`KUBE_TOKEN`].
fn kubeconfig_with_token(harness: &Harness, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(&harness.kubeconfig).unwrap();
    let text = text.replace(
        "  user: {}",
        &format!("  user:\n    token: {}", KUBE_TOKEN.1),
    );
    assert!(
        text.contains(KUBE_TOKEN.1),
        "the simulator's kubeconfig changed shape"
    );
    let path = dir.join("kubeconfig");
    std::fs::write(&path, text).unwrap();
    path
}

/// A private nats-server (JetStream on) whose users `cli`, `file` and `env` have the
/// planted passwords (a client without credentials, the test's own, is `cli`); `None`
/// when broker tests are skipped.
fn nats_with_users(dir: &Path) -> Option<(Broker, u16)> {
    let server = broker_env("KUBEBRIDGE_TEST_NATS_SERVER")?;
    let port = free_port();
    let conf = dir.join("nats.conf");
    std::fs::write(
        &conf,
        format!(
            "no_auth_user: cli\nauthorization {{\n  users = [\n    {{user: cli, password: {}}}\n    {{user: file, password: {}}}\n    {{user: env, password: {}}}\n  ]\n}}\n",
            URI_PASSWORD.1, FILE_PASSWORD.1, ENV_PASSWORD.1
        ),
    )
    .unwrap();
    let store = dir.join("js");
    let args = [
        "-c",
        conf.to_str().unwrap(),
        "-a",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-js",
        "-sd",
        store.to_str().unwrap(),
    ]
    .map(String::from);
    Some((Broker::start(Path::new(&server), &args), port))
}

/// `kubebridge ARGS` at RUST_LOG=trace with `env`, stdout and stderr into files.
fn start(args: &[String], env: &[(&str, &str)], dir: &Path) -> tokio::process::Child {
    let out = std::fs::File::create(dir.join("stdout")).unwrap();
    let err = std::fs::File::create(dir.join("stderr")).unwrap();
    let mut cmd = tokio::process::Command::new(binary());
    cmd.args(args)
        .env_remove("KUBECONFIG")
        .env("RUST_LOG", "trace")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .kill_on_drop(true);
    cmd.spawn().expect("spawn kubebridge")
}

/// `kubebridge ARGS` to its end at RUST_LOG=trace: (exit code, stdout, stderr).
async fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = tokio::time::timeout(
        WAIT,
        tokio::process::Command::new(binary())
            .args(args)
            .env_remove("KUBECONFIG")
            .env("RUST_LOG", "trace")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("kubebridge {args:?} did not end"))
    .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Waits until `done` holds, checking every 100 ms, for at most [`WAIT`].
async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs `watch` on `resources` in namespace `planted` of `harness`, with every sink
/// and the endpoints, until each sink has delivered `marker` (an object name), then
/// stops it with SIGTERM; returns every output. `None` when broker tests are skipped.
async fn watch_everything(harness: &Harness, resources: &[&str], marker: &str) -> Option<Outputs> {
    let dir = tempfile::tempdir().unwrap();
    let (_nats, port) = nats_with_users(dir.path())?;
    let brokers = broker_env("KUBEBRIDGE_TEST_KAFKA_BROKERS")?;
    wait_listening(port, WAIT).await;
    let kubeconfig = kubeconfig_with_token(harness, dir.path());

    // Core NATS is fire-and-forget: subscribe before kubebridge publishes.
    let url = format!("nats://127.0.0.1:{port}");
    let subscriber = async_nats::connect(&url)
        .await
        .expect("subscribe to the private nats-server");
    let mut core = subscriber.subscribe("planted.>").await.unwrap();
    let mut file_core = subscriber.subscribe("planted-file.>").await.unwrap();

    let topic = unique("kb-planted-");
    let stream = unique("PLANTED");
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "routes:\n  - name: from-file\n    resources: {resources:?}\n    namespaces: [planted]\n    sinks:\n      - nats://file:{file_pw}@127.0.0.1:{port}/planted-file\n      - jetstream://env:${{{ENV_VAR}}}@127.0.0.1:{port}/planted-js?stream={stream}\n      - kafka://{brokers}/{topic}-file\n    kafka:\n      properties:\n        ssl.key.password: {file_prop}\n",
            file_pw = FILE_PASSWORD.1,
            file_prop = FILE_PROPERTY.1,
        ),
    )
    .unwrap();
    let metrics = free_port();
    let mut args: Vec<String> = vec!["watch".into()];
    args.extend(resources.iter().map(|r| r.to_string()));
    args.extend(
        [
            "-n",
            "planted",
            "--config",
            config.to_str().unwrap(),
            "--sink",
            "stdout",
            "--sink",
            &format!("nats://cli:{}@127.0.0.1:{port}/planted", URI_PASSWORD.1),
            "--sink",
            &format!("kafka://{brokers}/{topic}"),
            "-X",
            &format!("sasl.password={}", KAFKA_PROPERTY.1),
            "--serve-cache",
            "--metrics-addr",
            &format!("127.0.0.1:{metrics}"),
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--log-level",
            "trace",
        ]
        .map(String::from),
    );
    let env = [
        (ENV_VAR, ENV_PASSWORD.1),
        ("KUBEBRIDGE_REDACTION_KEY", REDACTION_KEY.1),
    ];
    let mut child = start(&args, &env, dir.path());
    let stdout_path = dir.path().join("stdout");

    let mut out = Outputs::default();
    let mut core_messages = Vec::new();
    let mut file_messages = Vec::new();
    until("stdout", async || {
        std::fs::read_to_string(&stdout_path).is_ok_and(|t| t.contains(marker))
    })
    .await;
    for (name, sub, got) in [
        ("nats (command line)", &mut core, &mut core_messages),
        ("nats (config file)", &mut file_core, &mut file_messages),
    ] {
        let m = tokio::time::timeout(WAIT, futures::StreamExt::next(sub))
            .await
            .unwrap_or_else(|_| panic!("nothing on {name}"))
            .unwrap();
        got.push(m);
    }
    let js_url = url.clone();
    until("jetstream", async || {
        jetstream_count(&js_url, &stream).await > 0
    })
    .await;
    let mut kafka = kafka_messages(&brokers, &topic, 1, WAIT).await;
    assert!(!kafka.is_empty(), "nothing on Kafka");
    // The config file's route: its own property on top of the command line's -X.
    let from_file = kafka_messages(&brokers, &format!("{topic}-file"), 1, WAIT).await;
    assert!(
        !from_file.is_empty(),
        "nothing on the config file's Kafka topic"
    );
    kafka.extend(from_file);

    for path in [
        "/metrics",
        "/cache/configmaps",
        "/cache/secrets",
        "/healthz",
        "/readyz",
    ] {
        if let Some((status, body)) = get_text(metrics, path).await {
            out.add(format!("GET {path} ({status})"), body);
        }
    }
    let metrics_text = out.0.iter().find(|(c, _)| c.starts_with("GET /metrics"));
    assert!(
        metrics_text.is_some_and(|(_, t)| t.contains("kubebridge_")),
        "no /metrics"
    );

    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0), "watch did not stop cleanly");

    let stdout = std::fs::read_to_string(&stdout_path).unwrap();
    let stderr = std::fs::read_to_string(dir.path().join("stderr")).unwrap();
    assert!(
        stderr.lines().count() > 20,
        "RUST_LOG=trace logged little: {stderr}"
    );
    assert!(stdout.contains(marker));
    out.add("stdout", stdout);
    out.add("stderr (trace)", stderr);
    for m in core_messages.iter().chain(&file_messages) {
        out.add(
            format!("nats {}", m.subject),
            String::from_utf8_lossy(&m.payload),
        );
        out.add("nats headers", format!("{:?}", m.headers));
    }
    for m in jetstream_messages(&js_url, &stream).await {
        out.add("jetstream", String::from_utf8_lossy(&m.payload));
        out.add("jetstream headers", format!("{:?}", m.headers));
    }
    for m in kafka {
        out.add("kafka", String::from_utf8_lossy(&m.payload));
        out.add(
            "kafka key and headers",
            format!("{:?} {:?}", m.key, m.headers),
        );
    }
    Some(out)
}

/// The user's own credentials (URIs, -X, config file, environment, kubeconfig) appear
/// in no output of a working `watch`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_outputs_hold_no_planted_credential() {
    let harness = Harness::empty().await;
    harness.create_namespace("planted");
    harness
        .sim
        .create(
            "configmaps",
            Some("planted"),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "planted-marker", "namespace": "planted"},
                   "data": {"note": "not a secret"}}),
        )
        .unwrap();
    let Some(out) = watch_everything(&harness, &["configmaps"], "planted-marker").await else {
        return;
    };
    out.assert_none_of(&[
        URI_PASSWORD,
        KAFKA_PROPERTY,
        FILE_PASSWORD,
        FILE_PROPERTY,
        ENV_PASSWORD,
        KUBE_TOKEN,
        REDACTION_KEY,
    ]);
}

/// A Secret object's values reach no output: its `data`, and its last-applied
/// annotation (which repeats them). Depends on Secret redaction (issue 9, item 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_object_values_reach_no_output() {
    let harness = Harness::empty().await;
    harness.create_namespace("planted");
    let last_applied = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "planted-secret", "namespace": "planted"},
        "stringData": {"token": SECRET_STRING.1}})
    .to_string();
    harness
        .sim
        .create(
            "secrets",
            Some("planted"),
            json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                   "metadata": {"name": "planted-secret", "namespace": "planted",
                                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": last_applied}},
                   "data": {"password": base64(SECRET_VALUE.1)}}),
        )
        .unwrap();
    let Some(out) = watch_everything(&harness, &["secrets"], "planted-secret").await else {
        return;
    };
    out.assert_none_of(&[SECRET_VALUE, SECRET_STRING, REDACTION_KEY]);
}

/// `check-config` prints the plan of a file full of credentials without any of them.
#[tokio::test]
async fn check_config_prints_no_planted_credential() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "routes:\n  - name: r\n    resources: [pods]\n    sinks:\n      - nats://file:{}@127.0.0.1:4222/p\n      - jetstream://env:${{{ENV_VAR}}}@127.0.0.1:4222/js?stream=S\n      - nats://{}@127.0.0.1:4222/tok\n      - kafka://127.0.0.1:9092/t\n    kafka:\n      properties:\n        sasl.password: {}\n",
            FILE_PASSWORD.1, URI_PASSWORD.1, FILE_PROPERTY.1
        ),
    )
    .unwrap();
    let (code, stdout, stderr) = run(
        &["check-config", config.to_str().unwrap()],
        &[
            (ENV_VAR, ENV_PASSWORD.1),
            ("KUBEBRIDGE_REDACTION_KEY", REDACTION_KEY.1),
        ],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("nats://file:***@127.0.0.1:4222/p"),
        "{stdout}"
    );
    assert!(stdout.contains("nats://***@127.0.0.1:4222/tok"), "{stdout}");
    let mut out = Outputs::default();
    out.add("check-config stdout", stdout);
    out.add("check-config stderr", stderr);
    out.assert_none_of(&[
        URI_PASSWORD,
        FILE_PASSWORD,
        FILE_PROPERTY,
        ENV_PASSWORD,
        REDACTION_KEY,
    ]);
}

/// Invocations that fail on a bad URI, a rejected property, a broken config file or
/// creds file: the one-line error names the problem, never the secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_invocations_print_no_planted_credential() {
    let harness = Harness::empty().await;
    let dir = tempfile::tempdir().unwrap();
    let kc = harness.kubeconfig.to_str().unwrap().to_string();
    let secrets: Vec<(String, String)> = (0..14)
        .map(|i| (format!("bad input {i}"), format!("PlantedBad{i}x7")))
        .collect();
    let s = |i: usize| secrets[i].1.clone();
    let bad_config = dir.path().join("bad.yaml");
    std::fs::write(
        &bad_config,
        format!(
            "routes:\n  - name: r\n    resources: [pods]\n    sinks: [\"kafka://127.0.0.1:9092/t\"]\n    kafka:\n      properties:\n        sasl.password: {}\n        no.such.property: x\n",
            s(10)
        ),
    )
    .unwrap();
    let bad_uri_config = dir.path().join("bad-uri.yaml");
    std::fs::write(
        &bad_uri_config,
        format!(
            "routes:\n  - name: r\n    resources: [pods]\n    sinks: [\"nats://u:{}?#/@h:port/p\"]\n",
            s(11)
        ),
    )
    .unwrap();
    let creds = dir.path().join("bad.creds");
    std::fs::write(
        &creds,
        format!(
            "-----BEGIN NATS USER JWT-----\n{}\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\nSU{}\n------END USER NKEY SEED------\n",
            s(12),
            s(13)
        ),
    )
    .unwrap();
    let cases: Vec<Vec<String>> = vec![
        vec![
            "--sink".into(),
            format!("nats://u:pa?{}@h:notaport/p", s(0)),
        ],
        vec!["--sink".into(), format!("u:{}@h:4222/p", s(1))],
        vec!["--sink".into(), format!("natz://u:{}#x@h:4222/p", s(2))],
        vec!["--sink".into(), format!("kafka://u:{}@h:9092/t", s(3))],
        vec!["--sink".into(), format!("jetstream://{}/?@h:4222", s(4))],
        vec![
            "--sink".into(),
            "kafka://127.0.0.1:9/t".into(),
            "-X".into(),
            format!("sasl.passwrd={}", s(5)),
        ],
        vec![
            "--sink".into(),
            "kafka://127.0.0.1:9/t".into(),
            "-X".into(),
            format!(
                "sasl.jaas.config=PlainLoginModule required username=\"u\" password=\"{}\";",
                s(6)
            ),
        ],
        vec![
            "--sink".into(),
            "kafka://127.0.0.1:9/t".into(),
            "-X".into(),
            format!("sasl.password:{}", s(7)),
        ],
        vec![
            "--sink".into(),
            "kafka://127.0.0.1:9/t".into(),
            "-X".into(),
            format!("sasl.password={}", s(8)),
            "-X".into(),
            "acks=sometimes".into(),
        ],
        vec![
            "--sink".into(),
            format!("nats://{}@127.0.0.1:4222/p", s(9)),
            "--subject-template".into(),
            "{nope}".into(),
        ],
        vec!["--config".into(), bad_config.to_str().unwrap().into()],
        vec!["--config".into(), bad_uri_config.to_str().unwrap().into()],
        vec![
            "--sink".into(),
            "nats://127.0.0.1:4222/p".into(),
            "--nats-creds".into(),
            creds.to_str().unwrap().into(),
        ],
    ];
    let mut out = Outputs::default();
    for case in &cases {
        let mut args: Vec<&str> = vec!["watch", "pods", "-A"];
        args.extend(case.iter().map(String::as_str));
        args.extend(["--kubeconfig", &kc]);
        let (code, stdout, stderr) = run(&args, &[]).await;
        assert_eq!(code, 2, "{case:?} should be refused: {stderr}");
        assert!(stderr.contains("kubebridge:"), "{case:?}: {stderr}");
        out.add(format!("{case:?} stdout"), stdout);
        out.add(format!("{case:?} stderr"), stderr);
    }
    let planted: Vec<(&str, &str)> = secrets
        .iter()
        .map(|(w, v)| (w.as_str(), v.as_str()))
        .collect();
    out.assert_none_of(&planted);
}
