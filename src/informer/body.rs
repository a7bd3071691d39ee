//! Reading the API server's answers with bounds: a watch line no longer than a cap, a
//! LIST page no larger than a cap, and no wait for the next bytes longer than an idle
//! timeout. kube's client bounds none of these: a body without a newline would be
//! buffered until memory runs out, and a connection that goes quiet is waited on forever.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use http_body_util::BodyDataStream;
use kube::client::Body;

use crate::kube::api::{self, ApiError, Url};

/// GETs `url`, waiting at most `idle` for the answer to begin, and returns its body.
pub(super) async fn get(
    client: &kube::Client,
    url: Url,
    idle: Duration,
) -> Result<BodyDataStream<Body>, ApiError> {
    let path = url.path().to_owned();
    match tokio::time::timeout(idle, api::get(client, url)).await {
        Ok(response) => Ok(BodyDataStream::new(response?.into_body())),
        Err(_) => Err(silent(path, idle)),
    }
}

/// The error for a request that heard nothing for `idle`.
fn silent(path: String, idle: Duration) -> ApiError {
    ApiError::Transport {
        method: "GET",
        path,
        source: format!("nothing received for {}", humantime::format_duration(idle)).into(),
    }
}

fn broken(path: &str, e: kube::Error) -> ApiError {
    ApiError::Transport {
        method: "GET",
        path: path.to_owned(),
        source: Box::new(e),
    }
}

/// Why a LIST page could not be read.
pub(super) enum PageError {
    /// The request failed, or its answer stopped arriving.
    Api(ApiError),
    /// The page is larger than the cap; what arrived of it was dropped.
    TooLarge,
}

/// GETs one LIST page of at most `cap` bytes; the body stops being read (and what came
/// of it is dropped) as soon as it goes over.
pub(super) async fn read_page(
    client: &kube::Client,
    url: Url,
    cap: usize,
    idle: Duration,
) -> Result<Bytes, PageError> {
    let path = url.path().to_owned();
    let mut body = get(client, url, idle).await.map_err(PageError::Api)?;
    let mut page = BytesMut::new();
    loop {
        let chunk = match tokio::time::timeout(idle, body.next()).await {
            Err(_) => return Err(PageError::Api(silent(path, idle))),
            Ok(None) => return Ok(page.freeze()),
            Ok(Some(Err(e))) => return Err(PageError::Api(broken(&path, e))),
            Ok(Some(Ok(chunk))) => chunk,
        };
        if page.len().saturating_add(chunk.len()) > cap {
            return Err(PageError::TooLarge);
        }
        page.extend_from_slice(&chunk);
    }
}

/// A LIST page asked for ahead of need: [`read_page`] on a task of its own, so the page
/// downloads (and inflates) while the reflector decodes the page before it. Dropped
/// unfinished (the list failed, or the reflector stopped), the download is abandoned.
pub(super) struct PageFetch {
    task: tokio::task::JoinHandle<Result<Bytes, PageError>>,
    /// The request path, for errors.
    path: String,
}

impl PageFetch {
    /// Starts reading the page at `url` as [`read_page`] does.
    pub(super) fn start(client: kube::Client, url: Url, cap: usize, idle: Duration) -> Self {
        let path = url.path().to_owned();
        let task = tokio::spawn(async move { read_page(&client, url, cap, idle).await });
        PageFetch { task, path }
    }

    /// The page, or why it could not be read: what [`read_page`] would have returned.
    pub(super) async fn finish(mut self) -> Result<Bytes, PageError> {
        match (&mut self.task).await {
            Ok(page) => page,
            // The task panicked (a bug) or the runtime is shutting down: a failed read.
            Err(e) => Err(PageError::Api(ApiError::Transport {
                method: "GET",
                path: std::mem::take(&mut self.path),
                source: Box::new(e),
            })),
        }
    }
}

impl Drop for PageFetch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One line of a watch.
pub(super) enum Line {
    /// A complete line, without its line ending.
    Text(Bytes),
    /// A line longer than the cap: only its start was kept. The rest is never read: the
    /// watch ends with it.
    TooLong(Bytes),
}

/// How much of a line over the cap is kept: enough for a log line's prefix.
const KEPT_OF_A_LONG_LINE: usize = 512;

/// A watch body read as lines, none longer than `cap` bytes. At most the cap plus one
/// chunk of the body is buffered, however long a line is.
pub(super) struct Lines {
    body: BoxStream<'static, Result<Bytes, kube::Error>>,
    /// The request path, for errors.
    path: String,
    /// Bytes read and not yet returned: a partial line, or several lines.
    buf: BytesMut,
    /// How far `buf` is known to hold no newline.
    scanned: usize,
    cap: usize,
    /// The body ended, failed, or held a line over the cap: nothing more is read.
    done: bool,
}

impl Lines {
    /// The lines of `body`, a watch of `path`, each at most `cap` bytes.
    pub(super) fn new(
        body: impl Stream<Item = Result<Bytes, kube::Error>> + Send + 'static,
        path: String,
        cap: usize,
    ) -> Self {
        Lines {
            body: body.boxed(),
            path,
            buf: BytesMut::new(),
            scanned: 0,
            cap,
            done: false,
        }
    }

    /// The next line; `None` once the body ended, or after a line over the cap.
    /// Cancel-safe: a read dropped half way loses nothing.
    pub(super) async fn next(&mut self) -> Option<Result<Line, ApiError>> {
        loop {
            if let Some(line) = self.take_line() {
                return Some(Ok(line));
            }
            if self.done {
                return None;
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.buf.extend_from_slice(&chunk),
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(broken(&self.path, e)));
                }
                None => {
                    // The last line may end without a newline.
                    self.done = true;
                    if !self.buf.is_empty() {
                        let last = self.buf.split().freeze();
                        return Some(Ok(Line::Text(trim_cr(last))));
                    }
                }
            }
        }
    }

    /// A complete line from the buffer, or the start of one that is already over the
    /// cap; `None` when more must be read.
    fn take_line(&mut self) -> Option<Line> {
        if self.done && self.buf.is_empty() {
            return None;
        }
        // memchr: a line is kilobytes long, and a byte-at-a-time search cost as much as
        // a third of the JSON decoding of the line (callgrind).
        let newline = memchr::memchr(b'\n', &self.buf[self.scanned..]);
        let Some(at) = newline.map(|i| self.scanned + i) else {
            self.scanned = self.buf.len();
            return (self.buf.len() > self.cap).then(|| self.too_long(self.buf.len()));
        };
        if at > self.cap {
            return Some(self.too_long(at));
        }
        let mut line = self.buf.split_to(at + 1);
        line.truncate(at);
        self.scanned = 0;
        Some(Line::Text(trim_cr(line.freeze())))
    }

    /// The line at the start of the buffer, `len` bytes so far, is over the cap.
    fn too_long(&mut self, len: usize) -> Line {
        self.done = true;
        self.buf.truncate(len.min(KEPT_OF_A_LONG_LINE));
        Line::TooLong(self.buf.split().freeze())
    }
}

fn trim_cr(line: Bytes) -> Bytes {
    match line.strip_suffix(b"\r") {
        Some(trimmed) => line.slice(..trimmed.len()),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Lines` over these chunks of a body.
    fn lines(chunks: &[&str], cap: usize) -> Lines {
        let chunks: Vec<Result<Bytes, kube::Error>> = chunks
            .iter()
            .map(|c| Ok(Bytes::from(c.to_string())))
            .collect();
        Lines::new(futures::stream::iter(chunks), "/p".into(), cap)
    }

    async fn all(mut lines: Lines) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(line) = lines.next().await {
            out.push(match line.expect("no transport error") {
                Line::Text(t) => String::from_utf8_lossy(&t).into_owned(),
                Line::TooLong(start) => format!("too long: {}", start.len()),
            });
        }
        out
    }

    #[tokio::test]
    async fn splits_lines_across_and_within_chunks() {
        let got = all(lines(&["ab", "c\nde\r\n\nf", "g\nlast"], 8)).await;
        assert_eq!(got, ["abc", "de", "", "fg", "last"]);
    }

    #[tokio::test]
    async fn a_line_at_the_cap_passes_and_one_over_ends_the_stream() {
        assert_eq!(all(lines(&["12345678\n"], 8)).await, ["12345678"]);
        assert_eq!(
            all(lines(&["ok\n123456789\nnever read\n"], 8)).await,
            ["ok", "too long: 9"]
        );
        // Over the cap without a newline: reported without waiting for one.
        assert_eq!(
            all(lines(&["12345", "6789", "more"], 8)).await,
            ["too long: 9"]
        );
    }
}
