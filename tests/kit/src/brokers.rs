//! Real brokers: where the shared ones are (`tests/brokers.sh`), and private broker
//! processes of a test's own, to stop, freeze and restart under kubebridge.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// How long a broker that was just started may take to accept connections.
pub const STARTUP: Duration = Duration::from_secs(30);

/// The value of `var`, or `None` when `KUBEBRIDGE_SKIP_BROKERS=1` says to skip; unset
/// otherwise is a failure, so a CI run without brokers cannot pass silently.
pub fn broker_env(var: &str) -> Option<String> {
    if std::env::var("KUBEBRIDGE_SKIP_BROKERS").as_deref() == Ok("1") {
        eprintln!("KUBEBRIDGE_SKIP_BROKERS=1: skipping a test that needs {var}");
        return None;
    }
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => panic!(
            "{var} is not set: run `source tests/brokers.sh && start_brokers` first \
             (or set KUBEBRIDGE_SKIP_BROKERS=1 to skip the broker tests)"
        ),
    }
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Waits until something accepts connections on `port`, at most `limit`.
pub async fn wait_listening(port: u16, limit: Duration) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("nothing listens on 127.0.0.1:{port} after {limit:?}");
}

/// A broker process of the test's own, killed when dropped.
pub struct Broker {
    child: Child,
    program: PathBuf,
    args: Vec<String>,
}

impl Broker {
    /// Starts `program args` with output discarded.
    pub fn start(program: &Path, args: &[String]) -> Broker {
        let child = Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        Broker {
            child,
            program: program.to_path_buf(),
            args: args.to_vec(),
        }
    }

    /// Kills the process (SIGKILL, as a crash would) and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the same command again.
    pub fn restart(&mut self) {
        self.kill();
        *self = Broker::start(&self.program.clone(), &self.args.clone());
    }

    /// Sends a signal by name (`STOP`, `CONT`) with kill(1).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill(1) runs");
        assert!(status.success(), "kill -{name} failed");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        // SIGCONT first, in case a test stopped it and then failed.
        let _ = Command::new("kill")
            .arg("-CONT")
            .arg(self.child.id().to_string())
            .stderr(Stdio::null())
            .status();
        self.kill();
    }
}

/// A private nats-server with JetStream on `port`, storing in `store`; `None` when
/// broker tests are skipped.
pub fn nats_broker(port: u16, store: &Path) -> Option<Broker> {
    let server = broker_env("KUBEBRIDGE_TEST_NATS_SERVER")?;
    let args = [
        "-a",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-js",
        "-sd",
        &store.display().to_string(),
    ]
    .map(String::from);
    Some(Broker::start(Path::new(&server), &args))
}

/// A private tansu (Kafka protocol, in-memory) on `port`; `None` when broker tests are
/// skipped.
pub fn tansu_broker(port: u16) -> Option<Broker> {
    tansu_broker_behind(port, port)
}

/// A private tansu listening on `port` that tells clients to connect to `advertised`
/// (a [`Forwarder`]'s port, so a restarted broker keeps its address); `None` when
/// broker tests are skipped. Its memory storage starts empty every time.
pub fn tansu_broker_behind(port: u16, advertised: u16) -> Option<Broker> {
    let tansu = broker_env("KUBEBRIDGE_TEST_TANSU")?;
    let listener = format!("tcp://127.0.0.1:{port}");
    let advertised = format!("tcp://127.0.0.1:{advertised}");
    let args = [
        "broker",
        "--listener-url",
        &listener,
        "--advertised-listener-url",
        &advertised,
        "--storage-engine",
        "memory://tansu/",
    ]
    .map(String::from);
    Some(Broker::start(Path::new(&tansu), &args))
}

/// A private nats-server with JetStream, for tests that stop it under kubebridge.
pub struct PrivateNats {
    /// The process: stop, freeze or restart it.
    pub broker: Broker,
    /// `nats://127.0.0.1:PORT`.
    pub url: String,
    port: u16,
    _store: tempfile::TempDir,
}

impl PrivateNats {
    /// Starts one on a free port and waits until it listens; `None` when broker tests
    /// are skipped.
    pub async fn start() -> Option<PrivateNats> {
        let store = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let broker = nats_broker(port, store.path())?;
        wait_listening(port, STARTUP).await;
        Some(PrivateNats {
            broker,
            url: format!("nats://127.0.0.1:{port}"),
            port,
            _store: store,
        })
    }

    /// The `--sink` URI of a JetStream stream `stream` on this server.
    pub fn jetstream_sink(&self, stream: &str) -> String {
        format!("jetstream://127.0.0.1:{}/kb?stream={stream}", self.port)
    }
}

/// A TCP forwarder on a fixed port to a backend port that can change, so a broker can
/// be "restarted on the same address" even when it cannot bind its old port again
/// (tansu lacks SO_REUSEADDR, so its port stays in TIME_WAIT for 60 s after a kill).
/// It only copies bytes: the client still talks to the real broker.
pub struct Forwarder {
    /// The port clients connect to.
    pub port: u16,
    backend: Arc<AtomicU16>,
    task: tokio::task::JoinHandle<()>,
}

impl Forwarder {
    /// Listens on a free port and forwards every connection to `backend`.
    pub async fn start(backend: u16) -> Forwarder {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let target = Arc::new(AtomicU16::new(backend));
        let shared = target.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let backend = shared.load(Ordering::SeqCst);
                tokio::spawn(async move {
                    // A refused backend closes the client's connection: the broker is down.
                    if let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", backend)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Forwarder {
            port,
            backend: target,
            task,
        }
    }

    /// Sends new connections to `backend` from now on.
    pub fn set_backend(&self, backend: u16) {
        self.backend.store(backend, Ordering::SeqCst);
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.task.abort();
    }
}
