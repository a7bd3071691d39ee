//! Real brokers for the end-to-end delivery tests: where the shared ones are
//! (`tests/brokers.sh`), private ones for outages, and readers that consume back.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

// The sinks crate's broker tests keep the helpers for broker processes; these tests
// drive the same brokers, so they share that code rather than copy it.
#[path = "../../sinks/tests/common/mod.rs"]
mod sinks_common;

pub use sinks_common::{Broker, broker_env, free_port};

/// Waits until something accepts connections on `port`.
pub async fn wait_listening(port: u16) {
    sinks_common::wait_listening(port, Duration::from_secs(30)).await;
}

/// A private nats-server with JetStream on `port`, storing in `store`.
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

/// A private tansu (Kafka protocol, in-memory) on `port`.
pub fn tansu_broker(port: u16) -> Option<Broker> {
    let tansu = broker_env("KUBEBRIDGE_TEST_TANSU")?;
    let url = format!("tcp://127.0.0.1:{port}");
    let args = [
        "broker",
        "--listener-url",
        &url,
        "--advertised-listener-url",
        &url,
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
        wait_listening(port).await;
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

/// One message read back from a broker.
#[derive(Debug)]
pub struct Got {
    pub key: Option<String>,
    pub partition: i32,
    pub payload: serde_json::Value,
    pub headers: HashMap<String, String>,
}

/// Every message of a JetStream stream, in stream order.
pub async fn jetstream_messages(url: &str, stream: &str) -> Vec<Got> {
    let js = async_nats::jetstream::new(async_nats::connect(url).await.expect("connect to nats"));
    let mut s = js.get_stream(stream).await.expect("the stream exists");
    let count = s.info().await.expect("stream info").state.messages;
    let mut out = Vec::new();
    for seq in 1..=count {
        let m = s.get_raw_message(seq).await.expect("message");
        let headers = m
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    v.first().map(|v| v.as_str().to_owned()).unwrap_or_default(),
                )
            })
            .collect();
        out.push(Got {
            key: None,
            partition: 0,
            payload: serde_json::from_slice(&m.payload).expect("JSON payload"),
            headers,
        });
    }
    out
}

/// Reads `topic` from the beginning of every partition until `want` messages arrived,
/// for at most `limit`; returns what arrived by then (the caller's assertion shows
/// what is missing).
pub async fn kafka_messages(brokers: &str, topic: &str, want: usize, limit: Duration) -> Vec<Got> {
    sinks_common::consume(brokers, topic, want, limit)
        .await
        .into_iter()
        .map(|m| Got {
            key: m.key,
            partition: m.partition,
            payload: serde_json::from_slice(&m.payload).expect("JSON payload"),
            headers: m.headers,
        })
        .collect()
}
