//! The limit peers: a bare HTTP/1.1 client on a std `TcpStream` that downloads LIST pages
//! and splits a watch stream into lines, doing nothing else, so what it measures is what
//! the feed and the socket allow.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A response head and its body reader.
struct Response {
    status: u16,
    gzip: bool,
    body: Body,
}

enum Body {
    Length(BufReader<TcpStream>, u64),
    Chunked(BufReader<TcpStream>),
}

fn get(addr: &str, path: &str, gzip: bool) -> Response {
    let mut stream = TcpStream::connect(addr).expect("connect to the replay server");
    stream.set_nodelay(true).ok();
    let accept = if gzip {
        "Accept-Encoding: gzip\r\n"
    } else {
        ""
    };
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\n{accept}Connection: close\r\n\r\n"
    )
    .expect("send the request");
    let mut reader = BufReader::with_capacity(1 << 20, stream);
    let mut line = String::new();
    reader.read_line(&mut line).expect("status line");
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("an HTTP status");
    let (mut length, mut chunked, mut gz) = (None, false, false);
    loop {
        line.clear();
        reader.read_line(&mut line).expect("a header line");
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').expect("a header");
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse().ok(),
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "content-encoding" => gz = value.eq_ignore_ascii_case("gzip"),
            _ => {}
        }
    }
    let body = match (chunked, length) {
        (true, _) => Body::Chunked(reader),
        (false, Some(n)) => Body::Length(reader, n),
        (false, None) => Body::Length(reader, u64::MAX),
    };
    Response {
        status,
        gzip: gz,
        body,
    }
}

impl Body {
    /// Hands each piece of the body to `visit` until it returns false or the body ends.
    fn for_each(self, mut visit: impl FnMut(&[u8]) -> bool) {
        match self {
            Body::Length(mut r, mut left) => {
                while left > 0 {
                    let buf = r.fill_buf().expect("read the body");
                    if buf.is_empty() {
                        return;
                    }
                    let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    let go_on = visit(&buf[..n]);
                    r.consume(n);
                    left -= n as u64;
                    if !go_on {
                        return;
                    }
                }
            }
            Body::Chunked(mut r) => {
                let mut line = String::new();
                loop {
                    line.clear();
                    r.read_line(&mut line).expect("a chunk size");
                    let size = usize::from_str_radix(line.trim(), 16).expect("a hex chunk size");
                    if size == 0 {
                        return;
                    }
                    let mut left = size;
                    while left > 0 {
                        let buf = r.fill_buf().expect("read a chunk");
                        assert!(!buf.is_empty(), "the body ended inside a chunk");
                        let n = buf.len().min(left);
                        let go_on = visit(&buf[..n]);
                        r.consume(n);
                        left -= n;
                        if !go_on {
                            return;
                        }
                    }
                    let mut crlf = [0u8; 2];
                    r.read_exact(&mut crlf).expect("the chunk's CRLF");
                }
            }
        }
    }
}

/// One paginated LIST download.
pub struct ListDownload {
    pub elapsed: Duration,
    /// Bytes of the bodies as they crossed the socket.
    pub wire_bytes: u64,
    /// Bytes of the bodies' JSON (after gunzip).
    pub json_bytes: u64,
}

/// Downloads every page of `path` (`limit` items each), following continue tokens; with
/// `gzip`, asks for and inflates gzip bodies. It reads each page's continue token with a
/// string search, so the only JSON work is none.
pub fn list_all(addr: &str, path: &str, limit: usize, gzip: bool) -> ListDownload {
    let started = Instant::now();
    let mut token = String::new();
    let (mut wire_bytes, mut json_bytes) = (0u64, 0u64);
    loop {
        let url = format!("{path}?limit={limit}&continue={token}");
        let response = get(addr, &url, gzip);
        assert_eq!(response.status, 200, "GET {url}");
        let mut wire = Vec::new();
        response.body.for_each(|piece| {
            wire.extend_from_slice(piece);
            true
        });
        wire_bytes += wire.len() as u64;
        let json = if response.gzip {
            let mut out = Vec::with_capacity(wire.len() * 8);
            flate2::read::GzDecoder::new(&wire[..])
                .read_to_end(&mut out)
                .expect("a gzip body");
            out
        } else {
            wire
        };
        json_bytes += json.len() as u64;
        // The metadata comes first; the token is the `continue` field's value.
        let head = &json[..json.len().min(2048)];
        let head = String::from_utf8_lossy(head);
        match head
            .split_once("\"continue\":\"")
            .and_then(|(_, rest)| rest.split('"').next())
        {
            Some(t) if !t.is_empty() => {
                token = form_urlencoded::byte_serialize(t.as_bytes()).collect();
            }
            _ => break,
        }
    }
    ListDownload {
        elapsed: started.elapsed(),
        wire_bytes,
        json_bytes,
    }
}

/// Reads the watch of `path` from `resource_version` until `lines` lines have arrived;
/// returns the time from the first byte to the last line.
pub fn watch_lines(addr: &str, path: &str, resource_version: u64, lines: u64) -> Duration {
    let url =
        format!("{path}?watch=true&allowWatchBookmarks=true&resourceVersion={resource_version}");
    let response = get(addr, &url, false);
    assert_eq!(response.status, 200, "GET {url}");
    let mut seen = 0u64;
    let mut started = None;
    response.body.for_each(|piece| {
        started.get_or_insert_with(Instant::now);
        seen += piece.iter().filter(|&&b| b == b'\n').count() as u64;
        seen < lines
    });
    assert!(
        seen >= lines,
        "the watch ended after {seen} of {lines} lines"
    );
    started.map_or(Duration::ZERO, |s| s.elapsed())
}
