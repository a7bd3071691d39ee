//! Shared by the broker tests: where the brokers are, notifications to publish, a
//! retry loop like kubebridge's, and private broker processes for outage tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use kubebridge_sinks::{EventType, Notification, Origin, PublishError, ResourceId, Sink};
use serde_json::value::RawValue;

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

/// A name unique to this test run, for topics, subjects and streams.
pub fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        nanos % 1_000_000_000_000
    )
}

/// A configmap notification (cluster-scoped `namespace: None` makes it look like a
/// namespace object).
pub fn note(
    namespace: Option<&str>,
    name: &str,
    uid: &str,
    rv: u64,
    event_type: EventType,
) -> Arc<Notification> {
    let object = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}","uid":"{uid}","resourceVersion":"{rv}"}},"data":{{"n":"{rv}"}}}}"#
    );
    Arc::new(Notification {
        event_type,
        origin: Origin::Watch,
        time: SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + rv),
        cluster: Some("test-cluster".into()),
        resource: Arc::new(ResourceId {
            group: String::new(),
            version: "v1".into(),
            resource: "configmaps".into(),
            kind: "ConfigMap".into(),
        }),
        namespace: namespace.map(String::from),
        name: name.into(),
        uid: uid.into(),
        resource_version: rv.to_string(),
        object: Arc::from(RawValue::from_string(object).expect("valid json")),
        old_object: None,
        snapshot: None,
    })
}

/// `count` modifications of each of `objects` objects, interleaved as a watch would
/// deliver them, resourceVersions increasing.
pub fn interleaved(objects: usize, count: usize, first_rv: u64) -> Vec<Arc<Notification>> {
    let mut out = Vec::new();
    let mut rv = first_rv;
    for _ in 0..count {
        for o in 0..objects {
            out.push(note(
                Some("ns"),
                &format!("obj-{o}"),
                &format!("uid-{o}"),
                rv,
                EventType::Modified,
            ));
            rv += 1;
        }
    }
    out
}

/// Publishes `batch` the way kubebridge does: on a retryable error, waits and retries
/// from the first unconfirmed notification, until all are confirmed or `limit` passes.
/// Returns the errors seen on the way; panics on a non-retryable one or on timeout.
pub async fn publish_until_done(
    sink: &mut dyn Sink,
    batch: &[Arc<Notification>],
    limit: Duration,
) -> Vec<PublishError> {
    let deadline = Instant::now() + limit;
    let mut start = 0;
    let mut errors = Vec::new();
    while start < batch.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "not delivered within {limit:?}: {errors:?}"
        );
        match tokio::time::timeout(left, sink.publish(&batch[start..])).await {
            Ok(Ok(())) => start = batch.len(),
            Ok(Err(e)) => {
                assert!(e.error.is_retryable(), "non-retryable error: {e}");
                start += e.delivered;
                errors.push(e);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(_) => panic!("publish did not return within {limit:?}"),
        }
    }
    errors
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

/// A TCP forwarder on a fixed port to a backend port that can change, so a broker can
/// be "restarted on the same address" even when it cannot bind its old port again
/// (tansu lacks SO_REUSEADDR, so its port stays in TIME_WAIT for 60 s after a kill).
/// It only copies bytes: the client still talks to the real broker.
pub struct Forwarder {
    /// The port clients connect to.
    pub port: u16,
    backend: Arc<std::sync::atomic::AtomicU16>,
    task: tokio::task::JoinHandle<()>,
}

impl Forwarder {
    /// Listens on a free port and forwards every connection to `backend`.
    pub async fn start(backend: u16) -> Forwarder {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let target = Arc::new(std::sync::atomic::AtomicU16::new(backend));
        let shared = target.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let backend = shared.load(std::sync::atomic::Ordering::SeqCst);
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
        self.backend
            .store(backend, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One message consumed from Kafka, owned.
#[derive(Debug)]
pub struct Got {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub payload: Vec<u8>,
    pub headers: std::collections::HashMap<String, String>,
}

/// Reads `topic` from the beginning of every partition, assigned explicitly (a group
/// join on tansu waits half the session timeout), until `want` messages arrived or
/// `limit` passed; returns what arrived, for the caller to assert on.
pub async fn consume(brokers: &str, topic: &str, want: usize, limit: Duration) -> Vec<Got> {
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::message::{Headers, Message};
    use rdkafka::{ClientConfig, Offset, TopicPartitionList};
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("kbtest-"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    // A broker that just started may not list the topic's partitions yet.
    let deadline = Instant::now() + Duration::from_secs(10);
    let partitions = loop {
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .expect("metadata");
        let found = metadata
            .topics()
            .first()
            .map_or(0, |t| t.partitions().len());
        if found > 0 {
            break found;
        }
        assert!(Instant::now() < deadline, "topic {topic} has no partitions");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p as i32, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&tpl).expect("assign");
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    while got.len() < want {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(m) = tokio::time::timeout(left, consumer.recv()).await else {
            break;
        };
        let m = m.expect("consume");
        let mut headers = std::collections::HashMap::new();
        if let Some(h) = m.headers() {
            for header in h.iter() {
                let value = header
                    .value
                    .map(|v| String::from_utf8_lossy(v).into_owned());
                headers.insert(header.key.to_string(), value.unwrap_or_default());
            }
        }
        got.push(Got {
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            payload: m.payload().unwrap_or_default().to_vec(),
            headers,
        });
    }
    got
}
