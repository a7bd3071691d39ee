//! A custom sink written against `kubebridge-sinks` alone, run by kubebridge as a library.
//!
//! `FileSink` appends one JSON line per notification to a file and confirms a batch only
//! after `fsync`, so "delivered" means "on disk". `main` runs it against the built-in
//! simulated cluster; against a real one, build the `Cluster` with
//! `kubebridge::kube::cluster::connect` instead.
//!
//! ```sh
//! cargo run --example custom_sink -- /tmp/changes.jsonl   # Ctrl-C to stop
//! ```

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use kubebridge_sinks::{Notification, PublishError, Sink, SinkError};
use tokio::io::AsyncWriteExt;

/// Appends JSON lines to a file; a batch is confirmed once it is synced to disk.
struct FileSink {
    file: tokio::fs::File,
    buf: Vec<u8>,
}

impl FileSink {
    async fn open(path: &PathBuf) -> std::io::Result<FileSink> {
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
        let written = async {
            self.file.write_all(&self.buf).await?;
            self.file.sync_data().await
        }
        .await;
        // A full disk may clear up; anything else about a local file will not.
        written.map_err(|e| {
            let error = if e.kind() == std::io::ErrorKind::StorageFull {
                SinkError::retryable("the disk is full", e)
            } else {
                SinkError::permanent("cannot write the file", e)
            };
            PublishError::none_delivered(error)
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| "changes.jsonl".into());
    let sink = FileSink::open(&path).await?;

    let sim = kubebridge::sim::Sim::start(
        "127.0.0.1:0".parse()?,
        kubebridge::sim::SimConfig {
            namespaces: 2,
            pods: 10,
            deployments_per_namespace: 1,
            churn_per_sec: 5.0,
            ..Default::default()
        },
    )
    .await?;
    let cluster = kubebridge::kube::cluster::from_config(
        kube::Config::new(sim.url().parse()?),
        Some("example".into()),
    )?;
    let mut pods = kubebridge::config::Route::new("pods", ["pods"]);
    pods.namespaces = kubebridge::config::NamespaceScope::All;
    let stream = kubebridge::config::StreamConfig::new(vec![pods]);

    eprintln!("writing pod changes to {} until Ctrl-C", path.display());
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    kubebridge::cmd::watch(
        &cluster,
        &stream,
        vec![("pods".into(), Box::new(sink))],
        shutdown,
    )
    .await?;
    sim.shutdown().await;
    Ok(())
}
