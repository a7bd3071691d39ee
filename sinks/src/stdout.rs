//! The stdout sink: one JSON object per line, for pipes (`kubebridge watch pods | jq`).

use std::io::ErrorKind;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::{Notification, PublishError, Sink, SinkError};

/// Writes each notification as one line of JSON. A batch counts as delivered once it
/// has been written and flushed to the pipe or file behind stdout.
pub struct StdoutSink<W = ProcessStdout> {
    out: W,
    buf: Vec<u8>,
}

impl StdoutSink {
    /// A sink on the process's standard output.
    pub fn new() -> Self {
        StdoutSink::with_writer(ProcessStdout)
    }
}

impl Default for StdoutSink {
    fn default() -> Self {
        StdoutSink::new()
    }
}

/// The process's standard output, written a whole batch at a time on the blocking pool.
///
/// `tokio::io::Stdout` copies what it is given into a buffer of its own and writes that
/// on the blocking pool in chunks; a batch here is already one buffer (megabytes for a
/// batch of pods with their old objects), so it is handed to the blocking pool as it
/// is and written in one `write_all` (std's stdout writes a buffer ending in a newline
/// straight through, without line buffering).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessStdout;

/// Where a batch goes: the process's stdout, or any writer (tests).
pub trait BatchWriter: Send + 'static {
    /// Writes all of `buf` and flushes; hands the buffer back for the next batch.
    fn write_batch(
        &mut self,
        buf: Vec<u8>,
    ) -> impl std::future::Future<Output = (Vec<u8>, std::io::Result<()>)> + Send;
}

impl BatchWriter for ProcessStdout {
    async fn write_batch(&mut self, buf: Vec<u8>) -> (Vec<u8>, std::io::Result<()>) {
        let written = tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let result = out.write_all(&buf).and_then(|()| out.flush());
            (buf, result)
        })
        .await;
        written.unwrap_or_else(|e| (Vec::new(), Err(std::io::Error::other(e))))
    }
}

impl<W: AsyncWrite + Unpin + Send + 'static> BatchWriter for W {
    async fn write_batch(&mut self, buf: Vec<u8>) -> (Vec<u8>, std::io::Result<()>) {
        let result = async {
            self.write_all(&buf).await?;
            self.flush().await
        }
        .await;
        (buf, result)
    }
}

impl<W: BatchWriter> StdoutSink<W> {
    /// A sink on any writer (tests use a buffer).
    pub fn with_writer(out: W) -> Self {
        StdoutSink {
            out,
            buf: Vec::with_capacity(64 * 1024),
        }
    }

    /// The writer, to inspect what was written.
    pub fn into_inner(self) -> W {
        self.out
    }
}

fn classify(err: std::io::Error) -> SinkError {
    match err.kind() {
        // The reader went away (`| head`): nothing more can be delivered, and that is
        // the user's choice, not a failure.
        ErrorKind::BrokenPipe => SinkError::Closed,
        ErrorKind::Interrupted | ErrorKind::WouldBlock => {
            SinkError::retryable("writing to stdout was interrupted", err)
        }
        _ => SinkError::permanent("cannot write to stdout", err),
    }
}

#[async_trait]
impl<W: BatchWriter> Sink for StdoutSink<W> {
    fn kind(&self) -> &'static str {
        "stdout"
    }

    async fn publish(&mut self, batch: &[Arc<Notification>]) -> Result<(), PublishError> {
        // One write per batch: JSON lines are small and a pipe reader wants whole lines.
        self.buf.clear();
        for n in batch {
            serde_json::to_writer(&mut self.buf, n.as_ref())
                .expect("a Notification always serializes");
            self.buf.push(b'\n');
        }
        let (buf, result) = self.out.write_batch(std::mem::take(&mut self.buf)).await;
        self.buf = buf;
        // The whole batch is one write, so a failure confirms none of it.
        result.map_err(|e| PublishError::none_delivered(classify(e)))
    }

    async fn close(&mut self) -> Result<(), SinkError> {
        // Every batch was flushed when it was written; this flushes once more.
        let (_, result) = self.out.write_batch(Vec::new()).await;
        result.map_err(classify)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventType, Origin, ResourceId};
    use serde_json::value::RawValue;
    use std::time::SystemTime;

    fn note(name: &str) -> Arc<Notification> {
        Arc::new(Notification {
            event_type: EventType::Added,
            origin: Origin::List,
            time: SystemTime::UNIX_EPOCH,
            cluster: None,
            resource: Arc::new(ResourceId {
                group: String::new(),
                version: "v1".into(),
                resource: "pods".into(),
                kind: "Pod".into(),
            }),
            namespace: None,
            name: name.into(),
            uid: "u".into(),
            resource_version: "1".into(),
            object: Arc::from(RawValue::from_string("{}".into()).expect("valid")),
            old_object: None,
            snapshot: None,
            tombstone: false,
            old_resource_version: None,
            patch: None,
        })
    }

    #[tokio::test]
    async fn writes_one_json_object_per_line() {
        let mut sink = StdoutSink::with_writer(Vec::new());
        sink.publish(&[note("a"), note("b")])
            .await
            .expect("publish");
        let out = String::from_utf8(sink.into_inner()).expect("utf8");
        let names: Vec<String> = out
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).expect("json")["name"].to_string()
            })
            .collect();
        assert_eq!(names, ["\"a\"", "\"b\""]);
        assert!(out.ends_with('\n'));
    }

    #[test]
    fn broken_pipe_means_closed() {
        let err = classify(std::io::Error::from(ErrorKind::BrokenPipe));
        assert!(matches!(err, SinkError::Closed));
    }
}
