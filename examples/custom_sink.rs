//! A custom sink written against `kubebridge-sink-api` alone.
//!
//! No Kafka, NATS or Kubernetes crate is needed to build it.
//!
//! `FileSink` appends one JSON line per notification to a file and confirms a batch only
//! once it is on disk (`fsync`), so "delivered" means what kubebridge needs it to mean.
//! In kubebridge, hand `Box::new(sink)` to `watch` beside the sinks built from `--sink`
//! URIs; here `main` publishes a few sample notifications so the sink runs on its own,
//! and the tests run it and read back what it wrote:
//!
//! ```sh
//! cargo run -p kubebridge-sink-api --example custom_sink -- /tmp/changes.jsonl
//! cargo test -p kubebridge-sink-api --examples
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use kubebridge_sink_api::{
    EventType, Notification, Origin, PublishError, ResourceId, Sink, SinkError, async_trait,
};
use serde_json::value::RawValue;
use tokio::io::AsyncWriteExt;

/// Appends JSON lines to a file; a batch is confirmed once it is synced to disk.
struct FileSink {
    file: tokio::fs::File,
    buf: Vec<u8>,
}

impl FileSink {
    async fn open(path: &Path) -> std::io::Result<FileSink> {
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await?;
        Ok(FileSink {
            file,
            buf: Vec::new(),
        })
    }

    async fn write_and_sync(&mut self) -> std::io::Result<()> {
        self.file.write_all(&self.buf).await?;
        // tokio writes in the background: a failed write shows up only at the next
        // operation, and `sync_data` does not report it, so `flush` must come first.
        self.file.flush().await?;
        self.file.sync_data().await
    }
}

#[async_trait]
impl Sink for FileSink {
    fn kind(&self) -> &'static str {
        "file"
    }

    async fn publish(&mut self, batch: &[Arc<Notification>]) -> Result<(), PublishError> {
        self.buf.clear();
        for n in batch {
            self.buf.extend_from_slice(&n.to_json());
            self.buf.push(b'\n');
        }
        // The batch is one write, so a failure confirms none of it.
        self.write_and_sync().await.map_err(|e| {
            // A full disk may clear up; anything else about a local file will not.
            let error = if e.kind() == std::io::ErrorKind::StorageFull {
                SinkError::retryable("the disk is full", e)
            } else {
                SinkError::permanent("cannot write the file", e)
            };
            PublishError::none_delivered(error)
        })
    }
}

/// A pod notification, as kubebridge's informers make them.
fn pod(event_type: EventType, name: &str, resource_version: u64) -> Arc<Notification> {
    let object = format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"namespace":"shop","name":"{name}","uid":"uid-{name}","resourceVersion":"{resource_version}"}}}}"#
    );
    Arc::new(Notification {
        event_type,
        origin: Origin::Watch,
        time: SystemTime::now(),
        cluster: Some("example".into()),
        resource: Arc::new(ResourceId {
            group: String::new(),
            version: "v1".into(),
            resource: "pods".into(),
            kind: "Pod".into(),
        }),
        namespace: Some("shop".into()),
        name: name.into(),
        uid: format!("uid-{name}"),
        resource_version: resource_version.to_string(),
        object: Arc::from(RawValue::from_string(object).expect("valid JSON")),
        old_object: None,
        snapshot: None,
        tombstone: false,
        old_resource_version: None,
        patch: None,
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| "changes.jsonl".into());
    let mut sink = FileSink::open(&path).await?;
    sink.publish(&[
        pod(EventType::Added, "cart", 1),
        pod(EventType::Modified, "cart", 2),
    ])
    .await?;
    sink.publish(&[pod(EventType::Deleted, "cart", 3)]).await?;
    sink.close().await?;
    eprintln!("appended 3 notifications to {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(path: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .expect("read back")
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
            .collect()
    }

    #[tokio::test]
    async fn appends_confirmed_batches_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("changes.jsonl");
        let mut sink = FileSink::open(&path).await.expect("open");
        assert_eq!(sink.kind(), "file");
        sink.publish(&[
            pod(EventType::Added, "cart", 1),
            pod(EventType::Added, "web", 2),
        ])
        .await
        .expect("first batch");
        sink.publish(&[pod(EventType::Modified, "cart", 3)])
            .await
            .expect("second batch");
        sink.close().await.expect("close");
        // A sink opened again (kubebridge restarted) appends rather than truncates.
        let mut again = FileSink::open(&path).await.expect("reopen");
        again
            .publish(&[pod(EventType::Deleted, "web", 4)])
            .await
            .expect("third batch");

        let got: Vec<(String, String, String)> = lines(&path)
            .iter()
            .map(|v| {
                let field = |k: &str| v[k].as_str().expect(k).to_string();
                (field("type"), field("name"), field("resourceVersion"))
            })
            .collect();
        let want = [
            ("ADDED", "cart", "1"),
            ("ADDED", "web", "2"),
            ("MODIFIED", "cart", "3"),
            ("DELETED", "web", "4"),
        ]
        .map(|(t, n, rv)| (t.to_string(), n.to_string(), rv.to_string()));
        assert_eq!(got, want);
        // Each line is the whole envelope, object included.
        let first = &lines(&path)[0];
        assert_eq!(first["namespace"], "shop");
        assert_eq!(first["resource"]["resource"], "pods");
        assert_eq!(first["object"]["metadata"]["uid"], "uid-cart");
    }

    /// `/dev/full` fails every write with ENOSPC: the batch must not be confirmed, and
    /// the error must be retryable (the disk may clear up).
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_full_disk_confirms_nothing_and_is_retryable() {
        let mut sink = FileSink::open(Path::new("/dev/full"))
            .await
            .expect("open /dev/full");
        let err = sink
            .publish(&[pod(EventType::Added, "cart", 1)])
            .await
            .expect_err("a full disk cannot confirm");
        assert_eq!(err.delivered, 0);
        assert!(err.error.is_retryable(), "{err}");
    }
}
