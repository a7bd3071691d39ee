//! One raw HTTP/1.1 client for tests: a request with method, path, headers and body;
//! the status, headers and body back; and chunked watch streams read event by event.
//! Over plain TCP, or over TLS ([`Tls`], [`try_request_tls`]) for kubebridge's HTTPS
//! endpoints.
//!
//! Raw on purpose: the tests check the simulator's and kubebridge's servers byte for
//! byte, without a client library deciding what a response means.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub use crate::tls::Tls;

/// A connection, plain or TLS.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<S: AsyncRead + AsyncWrite + Unpin + Send> Stream for S {}

/// A connection being read.
type Reader = BufReader<Box<dyn Stream>>;

/// `127.0.0.1:port`, for servers a test started on a port of its choosing.
pub fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A whole response.
pub struct Resp {
    /// The status code.
    pub status: u16,
    /// Headers in the order sent.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Resp {
    /// The body as JSON; fails the test if it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("bad JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

async fn send_head(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> io::Result<Reader> {
    let s = TcpStream::connect(addr).await?;
    send_head_on(Box::new(s), addr, method, path, headers, body).await
}

async fn send_head_on(
    mut s: Box<dyn Stream>,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> io::Result<Reader> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await?;
    if let Some(b) = body {
        s.write_all(b).await?;
    }
    Ok(BufReader::new(s))
}

async fn read_head(r: &mut Reader) -> io::Result<(u16, Vec<(String, String)>)> {
    let mut line = String::new();
    r.read_line(&mut line).await?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid(&format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).await?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l
            .split_once(':')
            .ok_or_else(|| invalid(&format!("bad header line {l:?}")))?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    Ok((status, headers))
}

/// Reads one chunk of a chunked body; None at the end.
async fn read_chunk(r: &mut Reader) -> Option<Vec<u8>> {
    let mut line = String::new();
    if r.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let size = usize::from_str_radix(line.trim(), 16).ok()?;
    if size == 0 {
        return None;
    }
    let mut buf = vec![0u8; size + 2];
    r.read_exact(&mut buf).await.ok()?;
    buf.truncate(size);
    Some(buf)
}

/// Sends one request and reads the whole response; `Err` when the server is not there
/// (yet) or breaks the exchange off.
pub async fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> io::Result<Resp> {
    let r = send_head(addr, method, path, headers, body).await?;
    read_response(r).await
}

/// [`try_request`] over TLS with `tls`'s trust (server name `localhost`).
pub async fn try_request_tls(
    addr: SocketAddr,
    tls: &Tls,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> io::Result<Resp> {
    let conn = tls.connect(addr).await?;
    let r = send_head_on(Box::new(conn), addr, method, path, headers, None).await?;
    read_response(r).await
}

/// `GET path` over TLS, with `Authorization: Bearer TOKEN` when a token is given;
/// fails the test on an I/O or TLS error.
pub async fn get_tls(addr: SocketAddr, tls: &Tls, path: &str, token: Option<&str>) -> Resp {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer
        .as_deref()
        .map(|b| ("Authorization", b))
        .into_iter()
        .collect();
    try_request_tls(addr, tls, "GET", path, &headers)
        .await
        .unwrap_or_else(|e| panic!("GET {path} on https://{addr}: {e}"))
}

/// Reads a whole response from `r`.
async fn read_response(mut r: Reader) -> io::Result<Resp> {
    let (status, headers) = read_head(&mut r).await?;
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let mut body = Vec::new();
    if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        while let Some(c) = read_chunk(&mut r).await {
            body.extend_from_slice(&c);
        }
    } else if let Some(len) = header("content-length") {
        body = vec![0u8; len.parse().map_err(|_| invalid("bad content-length"))?];
        r.read_exact(&mut body).await?;
    } else {
        r.read_to_end(&mut body).await?;
    }
    Ok(Resp {
        status,
        headers,
        body,
    })
}

/// [`try_request`], failing the test on an I/O error.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Resp {
    try_request(addr, method, path, headers, body)
        .await
        .unwrap_or_else(|e| panic!("{method} {path} on {addr}: {e}"))
}

/// `GET path`.
pub async fn get(addr: SocketAddr, path: &str) -> Resp {
    request(addr, "GET", path, &[], None).await
}

/// `GET path`, `Err` when nothing listens yet.
pub async fn try_get(addr: SocketAddr, path: &str) -> io::Result<Resp> {
    try_request(addr, "GET", path, &[], None).await
}

/// `POST path` with `body` as JSON.
pub async fn post(addr: SocketAddr, path: &str, body: &Value) -> Resp {
    let b = serde_json::to_vec(body).expect("json");
    request(
        addr,
        "POST",
        path,
        &[("Content-Type", "application/json")],
        Some(&b),
    )
    .await
}

/// A streaming watch: one JSON event per line of a chunked body.
pub struct Watch {
    /// The status code.
    pub status: u16,
    /// Headers in the order sent.
    pub headers: Vec<(String, String)>,
    r: Reader,
    buf: Vec<u8>,
    ended: bool,
}

impl Watch {
    /// `GET path` and read the head; the events follow with [`Watch::next`].
    pub async fn open(addr: SocketAddr, path: &str) -> Watch {
        Self::open_with(addr, path, &[]).await
    }

    /// [`Watch::open`] with extra request headers.
    pub async fn open_with(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Watch {
        let opened = async {
            let mut r = send_head(addr, "GET", path, headers, None).await?;
            let (status, headers) = read_head(&mut r).await?;
            io::Result::Ok((r, status, headers))
        };
        let (r, status, headers) = opened
            .await
            .unwrap_or_else(|e| panic!("watch {path} on {addr}: {e}"));
        Watch {
            status,
            headers,
            r,
            buf: Vec::new(),
            ended: false,
        }
    }

    /// Next event, or None when the stream ended; panics after 10 s of silence.
    pub async fn next(&mut self) -> Option<Value> {
        self.next_within(Duration::from_secs(10))
            .await
            .expect("watch event within 10s")
    }

    /// Next line as sent, newline removed, JSON or not, within `d`: Err on timeout,
    /// Ok(None) at end of stream. For streams a fault made malformed.
    #[allow(clippy::result_unit_err)] // The only error is "nothing came", said by the name.
    pub async fn next_raw_within(&mut self, d: Duration) -> Result<Option<Vec<u8>>, ()> {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
                line.pop();
                return Ok(Some(line));
            }
            if self.ended {
                return Ok(None);
            }
            match tokio::time::timeout_at(deadline, read_chunk(&mut self.r)).await {
                Err(_) => return Err(()),
                Ok(Some(c)) => self.buf.extend_from_slice(&c),
                Ok(None) => self.ended = true,
            }
        }
    }

    /// Next event within `d`: Err on timeout, Ok(None) at end of stream.
    #[allow(clippy::result_unit_err)] // The only error is "nothing came", said by the name.
    pub async fn next_within(&mut self, d: Duration) -> Result<Option<Value>, ()> {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                return Ok(Some(serde_json::from_slice(&line).expect("event JSON")));
            }
            if self.ended {
                return Ok(None);
            }
            match tokio::time::timeout_at(deadline, read_chunk(&mut self.r)).await {
                Err(_) => return Err(()),
                Ok(Some(c)) => self.buf.extend_from_slice(&c),
                Ok(None) => self.ended = true,
            }
        }
    }
}

/// GETs `path` from 127.0.0.1:`port`: (status code, body as text). `None` while nothing
/// listens there yet.
pub async fn get_text(port: u16, path: &str) -> Option<(u16, String)> {
    let response = try_get(local(port), path).await.ok()?;
    Some((response.status, response.text()))
}

/// The value of the Prometheus sample `series` (`name{labels}`, labels exactly as
/// exposed) in a `/metrics` text, if present.
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        l.strip_prefix(series)
            .and_then(|rest| rest.trim().parse().ok())
    })
}
