//! The harness: an in-process simulated API server, a kubeconfig for it, and the real
//! `kubebridge` binary as a child process whose notifications are checked as they are read.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use kubebridge_sim::{Sim, SimConfig};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, ChildStdout, Command};

use crate::envelope::parse_notification;

/// Long enough for a slow CI machine, short enough that a hang fails the test.
pub const WAIT: Duration = Duration::from_secs(30);

/// A simulated API server and a kubeconfig pointing at it.
pub struct Harness {
    /// The simulator: create objects, inject faults, count requests.
    pub sim: Sim,
    /// A kubeconfig for `sim`.
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

    /// Creates the namespace `name`.
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

/// A minimal pod manifest (one container `c`, image `nginx`), for tests that send it
/// to the server themselves.
pub fn pod(name: &str, ns: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]}
    })
}

/// The path of the `kubebridge` binary cargo built for this test run.
///
/// `env!("CARGO_BIN_EXE_kubebridge")` exists only while compiling kubebridge's own tests,
/// not this crate, so the path is found at run time: nextest and cargo export it, and
/// otherwise the binary sits beside the `deps` directory holding the test executable.
pub fn binary() -> PathBuf {
    let exported = ["NEXTEST_BIN_EXE_kubebridge", "CARGO_BIN_EXE_kubebridge"]
        .into_iter()
        .find_map(std::env::var_os)
        .map(PathBuf::from);
    let path = exported.unwrap_or_else(|| {
        let test = std::env::current_exe().expect("the test executable's path");
        let profile_dir = test
            .parent()
            .and_then(|deps| deps.parent())
            .expect("the test executable is in <target>/<profile>/deps");
        profile_dir.join("kubebridge")
    });
    assert!(
        path.is_file(),
        "no kubebridge binary at {}: run the tests of the kubebridge package",
        path.display()
    );
    path
}

/// `kubebridge` with no arguments yet: no KUBECONFIG, `RUST_LOG=warn`, stdin closed,
/// stdout and stderr piped, killed when dropped.
pub fn kubebridge() -> Command {
    let mut cmd = Command::new(binary());
    cmd.env_remove("KUBECONFIG")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// A running kubebridge whose stdout is read line by line; every line read as a
/// notification is checked against the envelope schema.
pub struct Running {
    /// The process.
    pub child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    stderr: Option<ChildStderr>,
}

impl Running {
    /// Starts `cmd`, whose stdout must be piped.
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

    /// The next notification, checked against the envelope schema; fails the test if
    /// none comes within [`WAIT`] or it does not match.
    pub async fn next(&mut self) -> Value {
        let line = self.next_line().await;
        parse_notification(&line)
    }

    /// The next line of stdout as it is, not checked: only for output that is not an
    /// envelope. Fails the test if none comes within [`WAIT`].
    pub async fn next_line(&mut self) -> String {
        match tokio::time::timeout(WAIT, self.lines.next_line()).await {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) => panic!(
                "kubebridge closed stdout; stderr: {}",
                self.stderr_text().await
            ),
            Ok(Err(e)) => panic!("reading stdout: {e}"),
            Err(_) => panic!("no notification within {WAIT:?}"),
        }
    }

    /// The next `n` notifications, each checked as by [`Running::next`].
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

    /// Everything kubebridge wrote to stderr (waits up to 5 s for it to close); empty
    /// the second time.
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

    /// Waits for exit (within [`WAIT`]) and returns the code and stderr. What kubebridge
    /// still writes to stdout meanwhile is read too (so a chatty child cannot block on a
    /// full pipe) and checked against the envelope schema like every other notification.
    pub async fn wait(self) -> (i32, String) {
        let Running {
            child,
            lines,
            stderr,
        } = self;
        let drain = tokio::spawn(async move {
            let mut lines = lines;
            let mut rest = Vec::new();
            while let Ok(Some(line)) = lines.next_line().await {
                rest.push(line);
            }
            rest
        });
        let result = Running::wait_parts(child, stderr).await;
        // The child has exited, so its stdout ends now unless it passed the pipe on.
        match tokio::time::timeout(Duration::from_secs(5), drain).await {
            Ok(rest) => {
                for line in rest.expect("the stdout reader does not panic") {
                    parse_notification(&line);
                }
            }
            Err(_) => panic!("kubebridge's stdout stayed open after it exited"),
        }
        result
    }
}

/// Runs a command to completion: (exit code, stdout lines as notifications, each
/// checked against the envelope schema, stderr).
pub async fn run_to_end(cmd: Command) -> (i32, Vec<Value>, String) {
    let (code, stdout, stderr) = output(cmd).await;
    let lines = stdout.lines().map(parse_notification).collect();
    (code, lines, stderr)
}

/// Runs a command to completion within [`WAIT`]: (exit code, stdout, stderr), stdout
/// unchecked, for commands that do not print notifications (check-config, rbac).
pub async fn output(mut cmd: Command) -> (i32, String, String) {
    let out = tokio::time::timeout(WAIT, cmd.output())
        .await
        .expect("finishes in time")
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).expect("utf8"),
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

/// Polls an async `condition` every 200 ms until it holds; fails the test after [`WAIT`].
pub async fn wait_until_async<F, Fut>(mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Running` over `sh -c 'printf LINES'` instead of kubebridge.
    fn printing(lines: &str) -> Running {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &format!("printf '{lines}'")])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        Running::spawn(cmd)
    }

    #[tokio::test]
    #[should_panic(expected = "does not match the schema")]
    async fn next_rejects_a_line_that_is_not_an_envelope() {
        printing(r#"{"type":"ADDED"}\n"#).next().await;
    }

    #[tokio::test]
    #[should_panic(expected = "does not match the schema")]
    async fn take_rejects_a_line_that_is_not_an_envelope() {
        printing(r#"{"type":"ADDED"}\n"#).take(1).await;
    }

    #[tokio::test]
    #[should_panic(expected = "does not match the schema")]
    async fn wait_rejects_a_line_left_unread_that_is_not_an_envelope() {
        printing(r#"{"type":"ADDED"}\n"#).wait().await;
    }

    #[tokio::test]
    async fn next_line_returns_the_line_unchecked() {
        assert_eq!(printing("plain text\\n").next_line().await, "plain text");
    }

    #[tokio::test]
    #[should_panic(expected = "does not match the schema")]
    async fn run_to_end_rejects_a_line_that_is_not_an_envelope() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", r#"printf '{"type":"ADDED"}\n'"#]);
        run_to_end(cmd).await;
    }
}
