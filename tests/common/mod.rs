//! Shared harness for the integration tests: an in-process simulated API server, a
//! kubeconfig for it, and the real `kubebridge` binary as a child process.
#![allow(dead_code, missing_docs, clippy::unwrap_used)]

pub mod brokers;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use kubebridge_sim::{Sim, SimConfig};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, ChildStdout, Command};

/// Long enough for a slow CI machine, short enough that a hang fails the test.
pub const WAIT: Duration = Duration::from_secs(30);

pub struct Harness {
    pub sim: Sim,
    pub kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

impl Harness {
    /// A simulator with `config` and a kubeconfig whose context namespace is `namespace`.
    pub async fn start(config: SimConfig, namespace: Option<&str>) -> Harness {
        let sim = Sim::start("127.0.0.1:0".parse().unwrap(), config)
            .await
            .expect("start the simulator");
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = dir.path().join("kubeconfig");
        sim.write_kubeconfig(&kubeconfig, namespace)
            .expect("write kubeconfig");
        Harness {
            sim,
            kubeconfig,
            _dir: dir,
        }
    }

    /// An empty simulator with fast bookmarks.
    pub async fn empty() -> Harness {
        Harness::start(
            SimConfig {
                bookmark_interval: Duration::from_millis(200),
                ..SimConfig::default()
            },
            None,
        )
        .await
    }

    /// `kubebridge watch ARGS... --kubeconfig K`, stdout and stderr piped.
    pub fn watch(&self, args: &[&str]) -> Command {
        let mut cmd = kubebridge();
        cmd.arg("watch")
            .args(args)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig);
        cmd
    }

    /// Starts `kubebridge watch ARGS...`.
    pub fn spawn(&self, args: &[&str]) -> Running {
        Running::spawn(self.watch(args))
    }

    pub fn create_namespace(&self, name: &str) {
        self.sim
            .create(
                "namespaces",
                None,
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
            )
            .expect("create namespace");
    }

    /// Creates a minimal pod and returns it as the server stored it.
    pub fn create_pod(&self, namespace: &str, name: &str, labels: Value) -> Value {
        self.sim
            .create(
                "pods",
                Some(namespace),
                json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": name, "namespace": namespace, "labels": labels},
                    "spec": {"containers": [{"name": "main", "image": "nginx:1.27"}]}
                }),
            )
            .expect("create pod")
    }
}

pub fn kubebridge() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubebridge"));
    cmd.env_remove("KUBECONFIG")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// A running kubebridge whose stdout is read line by line.
pub struct Running {
    pub child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    stderr: Option<ChildStderr>,
}

impl Running {
    pub fn spawn(mut cmd: Command) -> Running {
        let mut child = cmd.spawn().expect("spawn kubebridge");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take();
        Running {
            child,
            lines: BufReader::new(stdout).lines(),
            stderr,
        }
    }

    /// The next notification; fails the test if none comes within [`WAIT`].
    pub async fn next(&mut self) -> Value {
        match tokio::time::timeout(WAIT, self.lines.next_line()).await {
            Ok(Ok(Some(line))) => {
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
            }
            Ok(Ok(None)) => panic!(
                "kubebridge closed stdout; stderr: {}",
                self.stderr_text().await
            ),
            Ok(Err(e)) => panic!("reading stdout: {e}"),
            Err(_) => panic!("no notification within {WAIT:?}"),
        }
    }

    /// The next `n` notifications.
    pub async fn take(&mut self, n: usize) -> Vec<Value> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.next().await);
        }
        out
    }

    /// Asserts nothing more arrives within `quiet`.
    pub async fn expect_silence(&mut self, quiet: Duration) {
        if let Ok(Ok(Some(line))) = tokio::time::timeout(quiet, self.lines.next_line()).await {
            panic!("expected no more notifications, got {line}");
        }
    }

    pub async fn stderr_text(&mut self) -> String {
        let mut text = String::new();
        if let Some(mut e) = self.stderr.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), e.read_to_string(&mut text)).await;
        }
        text
    }

    /// Sends SIGTERM and waits for the exit code.
    pub async fn terminate(self) -> (i32, String) {
        let pid = self.child.id().expect("running").to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(status.success());
        self.wait().await
    }

    /// Closes our end of kubebridge's stdout, as `| head` does, and waits for the exit.
    pub async fn close_stdout_and_wait(self) -> (i32, String) {
        let Running {
            child,
            lines,
            stderr,
        } = self;
        drop(lines);
        Running::wait_parts(child, stderr).await
    }

    async fn wait_parts(mut child: Child, stderr: Option<ChildStderr>) -> (i32, String) {
        let status = tokio::time::timeout(WAIT, child.wait())
            .await
            .expect("kubebridge exits")
            .expect("wait");
        let mut text = String::new();
        if let Some(mut e) = stderr {
            let _ = tokio::time::timeout(Duration::from_secs(5), e.read_to_string(&mut text)).await;
        }
        (status.code().unwrap_or(-1), text)
    }

    /// Waits for exit (within [`WAIT`]) and returns the code and stderr.
    pub async fn wait(self) -> (i32, String) {
        let Running {
            child,
            lines,
            stderr,
        } = self;
        // Keep reading stdout so a chatty child cannot block on a full pipe.
        let drain = tokio::spawn(async move {
            let mut lines = lines;
            while let Ok(Some(_)) = lines.next_line().await {}
        });
        let result = Running::wait_parts(child, stderr).await;
        drain.abort();
        result
    }
}

/// Runs a command to completion: (exit code, stdout lines as JSON, stderr).
pub async fn run_to_end(mut cmd: Command) -> (i32, Vec<Value>, String) {
    let out = tokio::time::timeout(WAIT, cmd.output())
        .await
        .expect("finishes in time")
        .expect("runs");
    let stdout = String::from_utf8(out.stdout).expect("utf8");
    let lines = stdout
        .lines()
        .map(|l| {
            let n = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
            assert_envelope(&n);
            n
        })
        .collect();
    (
        out.status.code().unwrap_or(-1),
        lines,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `TYPE origin namespace/name` of a notification, for compact assertions.
pub fn brief(n: &Value) -> String {
    let ns = n["namespace"]
        .as_str()
        .map(|s| format!("{s}/"))
        .unwrap_or_default();
    format!(
        "{} {} {ns}{}",
        n["type"].as_str().unwrap(),
        n["origin"].as_str().unwrap(),
        n["name"].as_str().unwrap()
    )
}

/// Polls `condition` until it holds; fails the test after [`WAIT`].
pub async fn wait_until(mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Fails the test unless `n` matches the published JSON Schema of the envelope
/// (sinks/envelope.schema.json): every notification any test reads is checked.
pub fn assert_envelope(n: &Value) {
    static SCHEMA: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    let validator = SCHEMA.get_or_init(|| {
        let text = include_str!("../../sinks/envelope.schema.json");
        let schema: Value = serde_json::from_str(text).expect("the schema is JSON");
        jsonschema::validator_for(&schema).expect("the schema is a valid JSON Schema")
    });
    let errors: Vec<String> = validator
        .iter_errors(n)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "notification does not match the schema: {errors:?}\n{n}"
    );
}
