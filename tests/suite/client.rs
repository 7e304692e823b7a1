//! A small HTTP client for the suite: hyper's low-level client over loopback TCP, on a tokio
//! runtime of the test's own (independent of the runtime serving the requests).
//!
//! Kept hand-written rather than on `sse-client` on purpose: the suite checks the server's wire
//! format byte for byte (the raw stream, keep-alive comments, headers, the greeting's `retry:`),
//! opens streams over HTTP/2 (which `sse-client` does not speak), and must see each response as
//! it is, where `sse-client` reconnects and stops by itself. `crates/sse-client/tests` runs that
//! client against the same servers.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use sse_codec::{Item, Parser};
use tokio::net::TcpStream;

/// How long a test waits for something that should happen promptly before failing. Not a
/// performance bound: a generous guard against hanging forever.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A response read in full.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Whether to speak HTTP/1.1 or HTTP/2 with prior knowledge (h2c).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    H1,
    H2,
}

/// Sends one request on a fresh connection and returns the response head and body stream.
pub async fn send(
    addr: SocketAddr,
    version: Version,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> hyper::Response<Incoming> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let io = TokioIo::new(tcp);
    let mut req = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let req = req.body(Full::new(body.into())).expect("request");
    match version {
        Version::H1 => {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.expect("h1");
            tokio::spawn(conn);
            sender.send_request(req).await.expect("h1 response")
        }
        Version::H2 => {
            let (mut sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .expect("h2");
            tokio::spawn(conn);
            sender.send_request(req).await.expect("h2 response")
        }
    }
}

/// Sends a request and reads the whole response.
pub async fn call(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Reply {
    let res = send(addr, Version::H1, method, path, headers, body).await;
    let status = res.status();
    let headers = res.headers().clone();
    let body = tokio::time::timeout(PATIENCE, res.into_body().collect())
        .await
        .expect("body in time")
        .expect("body")
        .to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8(body.to_vec()).expect("UTF-8 body"),
    }
}

/// Issues a client id (`POST /sse/clients[?name=N]`), which must succeed.
pub async fn issue(addr: SocketAddr, name: Option<&str>) -> String {
    let path = match name {
        Some(name) => format!("/sse/clients?name={name}"),
        None => "/sse/clients".into(),
    };
    let reply = call(addr, Method::POST, &path, &[], "").await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.body
}

/// An open event stream, parsed as it arrives.
pub struct Events {
    pub status: StatusCode,
    pub headers: HeaderMap,
    body: Incoming,
    parser: Parser,
    /// Every byte received, for checks on the wire format (keep-alive comments).
    pub raw: Vec<u8>,
    pub ended: bool,
}

/// One parsed event: (type, data, id).
pub type Ev = (String, String, String);

impl Events {
    pub async fn open(
        addr: SocketAddr,
        version: Version,
        id: &str,
        last_event_id: Option<&str>,
    ) -> Self {
        let mut headers = vec![];
        if let Some(last) = last_event_id {
            headers.push(("last-event-id", last));
        }
        Self::open_with(addr, version, id, &headers).await
    }

    /// Opens the stream with `extra` headers (a session cookie, say).
    pub async fn open_with(
        addr: SocketAddr,
        version: Version,
        id: &str,
        extra: &[(&str, &str)],
    ) -> Self {
        let mut headers = vec![("accept", "text/event-stream")];
        headers.extend_from_slice(extra);
        let path = format!("/sse/events/{id}");
        let res = send(addr, version, Method::GET, &path, &headers, Bytes::new()).await;
        Self {
            status: res.status(),
            headers: res.headers().clone(),
            body: res.into_body(),
            parser: Parser::new(),
            raw: Vec::new(),
            ended: false,
        }
    }

    /// The next event, or `None` if the stream ends first. Panics after [`PATIENCE`].
    pub async fn next(&mut self) -> Option<Ev> {
        tokio::time::timeout(PATIENCE, self.next_inner())
            .await
            .expect("an event or the end of the stream in time")
    }

    async fn next_inner(&mut self) -> Option<Ev> {
        loop {
            if let Some(item) = self.parser.next() {
                match item.expect("well-formed stream") {
                    Item::Event(e) => {
                        return Some((
                            e.event_type().into(),
                            e.data().into(),
                            e.last_event_id().into(),
                        ));
                    }
                    Item::Retry(_) => continue,
                }
            }
            if self.ended {
                return None;
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.raw.extend_from_slice(&data);
                        self.parser.push(data);
                    }
                }
                Some(Err(_)) | None => {
                    self.ended = true;
                    self.parser.finish();
                }
            }
        }
    }

    /// Reads raw bytes until `needle` has been received (or the stream ends).
    pub async fn wait_for_raw(&mut self, needle: &[u8]) -> bool {
        tokio::time::timeout(PATIENCE, async {
            while !self.raw.windows(needle.len()).any(|w| w == needle) {
                match self.body.frame().await {
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            self.raw.extend_from_slice(&data);
                            self.parser.push(data);
                        }
                    }
                    _ => return false,
                }
            }
            true
        })
        .await
        .expect("bytes in time")
    }

    /// The next event, which must be of this type; returns its data.
    pub async fn expect(&mut self, event_type: &str) -> String {
        match self.next().await {
            Some((t, data, _)) if t == event_type => data,
            other => panic!("expected a {event_type:?} event, got {other:?}"),
        }
    }
}

/// Retries `check` until it holds, for up to [`PATIENCE`].
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
