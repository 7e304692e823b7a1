//! The lean path for HTTP/1.1 connections: bodiless requests, event streams above all, are
//! answered by a small writer here instead of hyper.
//!
//! hyper keeps a read buffer (8–16 KiB) and a write buffer (8 KiB) for every connection for as
//! long as it is open; a stream connection never needs either after its request head, and with
//! 100,000 listeners they are most of the server's memory. Here each request head is read into a
//! buffer that is freed between requests, parsed with `httparse`, answered by [`Sse::handle`]
//! like any request, and the response written straight from its body (an event stream: one
//! shared `Bytes` per event). What stays allocated per open stream is the task, the socket and
//! the body: about 1 KiB.
//!
//! Requests without a body (`POST clients`, `PUT listen`, `GET events`, …) are answered here,
//! keep-alive, so a client may register and then open its stream on one connection. The first
//! request that is anything else (a body, HTTP/1.0 or HTTP/2, `HEAD`, `Upgrade`, `Expect`, a
//! head that is not complete and valid within [`MAX_HEAD`]) hands the connection to hyper, the
//! bytes read so far replayed to it by [`Rewind`], for good. A stream is close-delimited
//! (`connection: close`, no chunking), which every HTTP/1.1 client and `EventSource` reads; what
//! the client sends while its stream is open is read and dropped (at most [`MAX_DISCARD`]), and
//! the end of its side, or an error, ends the stream at once, as with hyper.

use std::future::poll_fn;
use std::io;
use std::mem;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::SystemTime;

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Version};
use http_body::Body as _;
use hyper::rt::{Read, ReadBuf, ReadBufCursor, Write};

use crate::body::Body;
use crate::service::Sse;

/// The longest request head the lean path reads before it hands the connection to hyper (which
/// applies its own limits to it).
pub(crate) const MAX_HEAD: usize = 8 * 1024;

/// The most headers a request may have on the lean path (more goes to hyper).
const MAX_HEADERS: usize = 64;

/// The most bytes of ready frames gathered into one write.
const MAX_BATCH: usize = 16 * 1024;

/// Bytes a client may send after its request while its stream is open before the connection is
/// closed: a client has nothing to say on a close-delimited stream.
pub(crate) const MAX_DISCARD: usize = 64 * 1024;

/// What the next request of a connection is.
pub(crate) enum Next {
    /// A bodiless request, answered here.
    Request(Box<Request<Body>>),
    /// Anything else: hyper serves the connection from here on, the bytes read so far first.
    Hyper(Bytes),
    /// The client closed (or failed, or timed out) between requests.
    Closed,
}

/// Reads the next request head of a connection into `buf` (which may already hold bytes that
/// followed the previous request) and decides who answers it. On `Request`, the head's bytes
/// are removed from `buf`.
///
/// With `prefix`, only requests whose path starts with it are answered here (the protocol's,
/// under [`serve_app`](crate::serve_app)): any other request hands the connection to hyper.
pub(crate) async fn next<I: Read + Unpin>(
    io: &mut I,
    buf: &mut Vec<u8>,
    prefix: Option<&str>,
) -> Next {
    loop {
        if !buf.is_empty() {
            match classify(buf, prefix) {
                Some(Some((req, used))) => {
                    buf.drain(..used);
                    return Next::Request(Box::new(req));
                }
                Some(None) => return Next::Hyper(mem::take(buf).into()),
                None if buf.len() >= MAX_HEAD => return Next::Hyper(mem::take(buf).into()),
                None => {}
            }
        }
        // Read into the buffer itself: nothing of this size lives in the task between reads.
        let filled = buf.len();
        buf.resize(filled + READ_CHUNK, 0);
        let mut read = ReadBuf::new(&mut buf[filled..]);
        let result = poll_fn(|cx| Pin::new(&mut *io).poll_read(cx, read.unfilled())).await;
        let n = read.filled().len();
        buf.truncate(filled + n);
        if result.is_err() || n == 0 {
            return if buf.is_empty() {
                Next::Closed
            } else {
                // Let hyper answer what it can of a cut-off head.
                Next::Hyper(mem::take(buf).into())
            };
        }
    }
}

/// How much one read of a request head takes at most.
const READ_CHUNK: usize = 1024;

/// `None` while the head is incomplete; then the request and the length of its head if the
/// lean path answers it.
fn classify(head: &[u8], prefix: Option<&str>) -> Option<Option<(Request<Body>, usize)>> {
    // The HTTP/2 connection preface starts with `PRI`: hyper's.
    if head.starts_with(b"PRI") || b"PRI".starts_with(head) {
        return Some(None);
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let used = match parsed.parse(head) {
        Ok(httparse::Status::Complete(used)) => used,
        Ok(httparse::Status::Partial) => return None,
        Err(_) => return Some(None),
    };
    if prefix.is_some_and(|prefix| !parsed.path.is_some_and(|p| p.starts_with(prefix))) {
        return Some(None);
    }
    Some(lean_request(&parsed).map(|req| (req, used)))
}

/// The request, when it is one the lean path answers: over HTTP/1.1, not `HEAD`, without a body,
/// an upgrade or an expectation, with valid header names and values.
fn lean_request(parsed: &httparse::Request<'_, '_>) -> Option<Request<Body>> {
    let (method, path) = (parsed.method?, parsed.path?);
    if parsed.version? != 1 || method == "HEAD" {
        return None;
    }
    let mut req = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).ok()?)
        .uri(path)
        .version(Version::HTTP_11);
    let mut length = false;
    for header in parsed.headers.iter() {
        let name = HeaderName::from_bytes(header.name.as_bytes()).ok()?;
        let value = HeaderValue::from_bytes(header.value).ok()?;
        // One `content-length: 0` at most: hyper folds repeated lengths into one, and reads
        // anything else as a body or refuses it.
        let is_length = name == http::header::CONTENT_LENGTH;
        let body_or_upgrade = is_length && (value != "0" || mem::replace(&mut length, true))
            || name == http::header::TRANSFER_ENCODING
            || name == http::header::UPGRADE
            || name == http::header::EXPECT;
        if body_or_upgrade {
            return None;
        }
        req = req.header(name, value);
    }
    req.body(Body::empty()).ok()
}

/// Whether the client asked to close the connection after this request.
fn wants_close(req: &Request<Body>) -> bool {
    req.headers()
        .get_all(http::header::CONNECTION)
        .iter()
        .any(|v| {
            v.as_bytes()
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
        })
}

/// Answers `req` with `sse` and writes the response to `io`: a whole body with its length, or an
/// event stream until it ends, the client goes away, or a write fails. Returns whether the
/// connection may carry another request (never after a stream, nor when `last`: the server is
/// shutting down, and says so with `connection: close`).
pub(crate) async fn respond<I: Read + Write + Unpin>(
    io: &mut I,
    sse: &Sse,
    req: Request<Body>,
    last: bool,
) -> bool {
    let close = last || wants_close(&req);
    // Boxed: routing's state is large and short-lived, and inline it would stay in the task of
    // every open stream.
    let res = Box::pin(sse.handle(req)).await;
    let (parts, mut body) = res.into_parts();
    let length = body.size_hint().exact();
    let keep_alive = length.is_some() && !close;
    let head = {
        let date = httpdate::fmt_http_date(SystemTime::now());
        head(parts.status, &parts.headers, length, keep_alive, &date)
    };
    // Not kept across the writing (a stream's whole life).
    drop(parts);
    let mut writer = Writer {
        pending: Bytes::from(head),
        body_done: false,
        discarded: 0,
        watch_reads: length.is_none(),
    };
    let written = poll_fn(|cx| writer.poll(cx, &mut *io, &mut body)).await;
    // Dropping the body now detaches the client (a stream), before the connection closes.
    drop(body);
    if keep_alive && written {
        return true;
    }
    let _ = poll_fn(|cx| Pin::new(&mut *io).poll_shutdown(cx)).await;
    false
}

/// The head of a response as hyper's HTTP/1.1 server writes it, byte for byte (checked by
/// the tests against hyper itself): the status line, the headers in their order, `connection:
/// close` when the connection ends after it, the body's `content-length` (never on a `1xx`,
/// `204` or `304`, which have no body), and `date`. A body of unknown length is close-delimited
/// here (hyper would chunk it): it is only ever an event stream, which ends the connection.
pub(crate) fn head(
    status: StatusCode,
    headers: &HeaderMap,
    length: Option<u64>,
    keep_alive: bool,
    date: &str,
) -> Vec<u8> {
    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(b"HTTP/1.1 ");
    head.extend_from_slice(status.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes());
    head.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    if !keep_alive {
        head.extend_from_slice(b"connection: close\r\n");
    }
    let bodiless = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    if let Some(len) = length.filter(|_| !bodiless) {
        head.extend_from_slice(b"content-length: ");
        head.extend_from_slice(len.to_string().as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"date: ");
    head.extend_from_slice(date.as_bytes());
    head.extend_from_slice(b"\r\n\r\n");
    head
}

/// The state of a response being written.
struct Writer {
    /// What is left of the frame being written (empty: none).
    pending: Bytes,
    /// The body has ended: close once `pending` is written.
    body_done: bool,
    /// Bytes the client sent since its request.
    discarded: usize,
    /// An event stream: the client's side is watched for its end. (A whole response is written
    /// without reading: what follows it is the next request.)
    watch_reads: bool,
}

impl Writer {
    /// Ready when the response is over: `true` if all of it was written.
    fn poll<I: Read + Write + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut I,
        body: &mut Body,
    ) -> Poll<bool> {
        loop {
            if !self.pending.is_empty() {
                match Pin::new(&mut *io).poll_write(cx, &self.pending) {
                    Poll::Ready(Ok(n)) if n > 0 => {
                        self.pending.advance(n);
                        if self.pending.is_empty() {
                            // Let go of the buffer (the response head, or a shared frame).
                            self.pending = Bytes::new();
                        }
                        continue;
                    }
                    // A write of nothing, or an error: the connection is gone.
                    Poll::Ready(_) => return Poll::Ready(false),
                    Poll::Pending => break,
                }
            }
            if self.body_done {
                return Poll::Ready(true);
            }
            // Every frame that is ready goes out in one write: a client that has fallen behind
            // (a busy server) catches up in one syscall and one wake-up of its reader, not one
            // per event, as hyper does with its write buffer.
            let (mut first, mut batch) = (None::<Bytes>, None::<BytesMut>);
            let waiting = loop {
                match Pin::new(&mut *body).poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => {
                        let Ok(data) = frame.into_data() else {
                            continue;
                        };
                        match (&first, &mut batch) {
                            (None, _) => first = Some(data),
                            (Some(one), None) => {
                                let mut both = BytesMut::with_capacity(one.len() + data.len());
                                both.extend_from_slice(one);
                                both.extend_from_slice(&data);
                                batch = Some(both);
                            }
                            (Some(_), Some(more)) => more.extend_from_slice(&data),
                        }
                        if batch.as_ref().is_some_and(|b| b.len() >= MAX_BATCH) {
                            break false;
                        }
                    }
                    Poll::Ready(Some(Err(never))) => match never {},
                    Poll::Ready(None) => {
                        self.body_done = true;
                        break false;
                    }
                    Poll::Pending => break true,
                }
            };
            self.pending = batch.map(BytesMut::freeze).or(first).unwrap_or_default();
            if self.pending.is_empty() && waiting {
                break;
            }
        }
        if !self.watch_reads {
            return Poll::Pending;
        }
        // The client's side: its end (or an error) ends the stream.
        loop {
            let mut scratch = [0u8; 64];
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut *io).poll_read(cx, buf.unfilled()) {
                Poll::Ready(Ok(())) => {
                    let n = buf.filled().len();
                    self.discarded += n;
                    if n == 0 || self.discarded > MAX_DISCARD {
                        return Poll::Ready(false);
                    }
                }
                Poll::Ready(Err(_)) => return Poll::Ready(false),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// A connection whose first bytes were already read: they are read again first.
pub(crate) struct Rewind<I> {
    prefix: Bytes,
    io: I,
}

impl<I> Rewind<I> {
    pub(crate) fn new(prefix: Bytes, io: I) -> Self {
        Self { prefix, io }
    }
}

impl<I: Read + Unpin> Read for Rewind<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.prefix.is_empty() {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        }
        let n = this.prefix.len().min(buf.remaining());
        buf.put_slice(&this.prefix[..n]);
        this.prefix.advance(n);
        if this.prefix.is_empty() {
            // Free the head's buffer.
            this.prefix = Bytes::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl<I: Write + Unpin> Write for Rewind<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(head: &[u8]) -> &'static str {
        match classify(head, None) {
            None => "partial",
            Some(None) => "hyper",
            Some(Some(_)) => "lean",
        }
    }

    #[test]
    fn bodiless_http11_requests_are_lean() {
        let id = "/sse/events/0f0e0d0c-0b0a-4908-8706-050403020100";
        let get = format!("GET {id} HTTP/1.1\r\nhost: x\r\nlast-event-id: 5\r\n\r\n");
        assert_eq!(kind(get.as_bytes()), "lean");
        assert_eq!(kind(&get.as_bytes()[..20]), "partial");
        assert_eq!(kind(b"POST /sse/clients HTTP/1.1\r\n\r\n"), "lean");
        assert_eq!(
            kind(b"POST /sse/clients HTTP/1.1\r\ncontent-length: 0\r\n\r\n"),
            "lean"
        );
        assert_eq!(kind(b"PUT /sse/listen/x/k HTTP/1.1\r\n\r\n"), "lean");
        // A pipelined request after the head stays in the buffer for the next round.
        assert_eq!(
            kind(b"GET /sse/client.js HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n"),
            "lean"
        );
        assert_eq!(kind(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), "hyper");
        assert_eq!(kind(b"PR"), "hyper");
        assert_eq!(kind(b"HEAD /sse/events/x HTTP/1.1\r\n\r\n"), "hyper");
        assert_eq!(kind(b"GET /sse/events/x HTTP/1.0\r\n\r\n"), "hyper");
        assert_eq!(
            kind(b"POST /sse/broadcast HTTP/1.1\r\ncontent-length: 3\r\n\r\nabc"),
            "hyper"
        );
        assert_eq!(
            kind(b"POST /sse/broadcast HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n"),
            "hyper"
        );
        assert_eq!(
            kind(b"GET /sse/events/x HTTP/1.1\r\nupgrade: websocket\r\n\r\n"),
            "hyper"
        );
        assert_eq!(
            kind(b"PUT /sse/tasks/x/t HTTP/1.1\r\nexpect: 100-continue\r\n\r\n"),
            "hyper"
        );
        assert_eq!(
            kind(b"GET /sse/events/x HTTP/1.1\r\nbad header\r\n\r\n"),
            "hyper"
        );
        assert_eq!(kind(b"\x00\x01garbage\r\n\r\n"), "hyper");
        let many: String = (0..MAX_HEADERS + 1)
            .map(|i| format!("h{i}: v\r\n"))
            .collect();
        assert_eq!(
            kind(format!("GET /sse/events/x HTTP/1.1\r\n{many}\r\n").as_bytes()),
            "hyper"
        );
    }

    #[test]
    fn under_a_prefix_only_the_protocols_requests_are_lean() {
        let lean = |head: &[u8]| matches!(classify(head, Some("/sse/")), Some(Some(_)));
        assert!(lean(b"GET /sse/events/x HTTP/1.1\r\n\r\n"));
        assert!(lean(b"POST /sse/clients HTTP/1.1\r\n\r\n"));
        assert!(!lean(b"GET / HTTP/1.1\r\n\r\n"));
        assert!(!lean(b"GET /ssex HTTP/1.1\r\n\r\n"));
        assert!(!lean(b"GET /sse HTTP/1.1\r\n\r\n"));
        assert!(!lean(b"GET http://host/sse/events/x HTTP/1.1\r\n\r\n"));
        // Incomplete is still incomplete.
        assert!(classify(b"GET /ss", Some("/sse/")).is_none());
    }

    /// What hyper's HTTP/1.1 server reads from `head`: the request's method, target and
    /// headers, and whether it has no body; `None` if hyper refuses it.
    async fn hyper_reads(head: &[u8]) -> Option<(Method, http::Uri, HeaderMap, bool)> {
        use tokio::io::AsyncWriteExt;
        let (mut peer, server) = tokio::io::duplex(1 << 16);
        let (seen, mut first) = tokio::sync::mpsc::unbounded_channel();
        let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
            let (parts, body) = req.into_parts();
            let _ = seen.send((parts.method, parts.uri, parts.headers, body.is_end_stream()));
            async { Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty())) }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .serve_connection(hyper_util::rt::TokioIo::new(server), service);
        peer.write_all(head).await.unwrap();
        tokio::select! {
            req = first.recv() => req,
            _ = conn => first.try_recv().ok(),
        }
    }

    /// Every head the lean path answers itself is read by hyper the same way: the same method,
    /// target and headers, and no body. (The fuzz target `lean_request` checks the same on
    /// arbitrary input.)
    #[tokio::test]
    async fn what_the_lean_path_takes_hyper_reads_alike() {
        let heads: &[&[u8]] = &[
            b"GET /sse/events/x HTTP/1.1\r\nhost: x\r\nlast-event-id: 5\r\n\r\n",
            b"POST /sse/clients?name=a%20b HTTP/1.1\r\ncontent-length: 0\r\n\r\n",
            b"PUT /sse/listen/x/k HTTP/1.1\nhost: x\n\n",
            b"GET /sse/events/x HTTP/1.1\r\nx: a\tb\r\nY:  spaced  \r\n\r\n",
            b"GET /sse/events/x HTTP/1.1\r\nx: caf\xc3\xa9\xff\r\n\r\n",
            b"GET /sse/events/x HTTP/1.1\r\nx:\r\n\r\n",
            b"GET /sse/events/x HTTP/1.1\r\nx: a\r\n b\r\n\r\n",
            b"GET /sse/events/x HTTP/1.1\r\nx : a\r\n\r\n",
            b"GET /sse/events/x HTTP/1.1\r\nx: a\x00b\r\n\r\n",
            b"GET /sse/events/x HTTP/1.1\r\nx: a\rb\r\n\r\n",
            b"GET  /sse/events/x HTTP/1.1\r\n\r\n",
            b"GET /sse/events/x  HTTP/1.1\r\n\r\n",
            b"GET http://h/sse/events/x HTTP/1.1\r\n\r\n",
            b"GET * HTTP/1.1\r\n\r\n",
            b"OPTIONS * HTTP/1.1\r\n\r\n",
            b"CONNECT h:80 HTTP/1.1\r\n\r\n",
            b"G@T /sse/events/x HTTP/1.1\r\n\r\n",
            b"GET /sse/events/\x7f HTTP/1.1\r\n\r\n",
            b"GET /sse/events/x?\xff HTTP/1.1\r\n\r\n",
            b"GET /sse/events/x#frag HTTP/1.1\r\n\r\n",
            b"GET sse/events HTTP/1.1\r\n\r\n",
            b"POST /sse/clients HTTP/1.1\r\ncontent-length: 00\r\n\r\n",
            b"POST /sse/clients HTTP/1.1\r\ncontent-length: 0\r\ncontent-length: 0\r\n\r\n",
            b"POST /sse/clients HTTP/1.1\r\ncontent-length: 0, 0\r\n\r\n",
            b"POST /sse/clients HTTP/1.1\r\ncontent-length: +0\r\n\r\n",
            b"POST /sse/clients HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n",
            b"GET /sse/events/x HTTP/1.1\r\nconnection: upgrade\r\n\r\n",
            b"GET /sse/events/x HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\n",
            b"\r\nGET /sse/events/x HTTP/1.1\r\n\r\n",
            b"\r\n\r\nGET /sse/events/x HTTP/1.1\r\n\r\n",
            b"GET /sse/events/x HTTP/1.1\r\n\r\nleftover",
        ];
        let mut lean = 0;
        for &head in heads {
            let Some(Some((req, used))) = classify(head, None) else {
                continue;
            };
            lean += 1;
            let shown = String::from_utf8_lossy(head);
            let Some((method, uri, headers, bodiless)) = hyper_reads(&head[..used]).await else {
                panic!("hyper refuses what the lean path answers: {shown:?}");
            };
            assert_eq!(&method, req.method(), "{shown:?}");
            assert_eq!(&uri, req.uri(), "{shown:?}");
            assert_eq!(&headers, req.headers(), "{shown:?}");
            assert!(bodiless, "hyper reads a body after {shown:?}");
        }
        // Not a vacuous pass: most of these are the lean path's.
        assert!(lean >= 8, "only {lean} heads were lean");
    }

    /// The head of the answer to `request`, from hyper serving `sse`, or from the lean path;
    /// the date's value blanked out.
    async fn answer_head(sse: &Sse, request: &str, lean: bool) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let mut server = hyper_util::rt::TokioIo::new(server);
        let sse = sse.clone();
        let raw = request.as_bytes().to_vec();
        let served = tokio::spawn(async move {
            if lean {
                let Some(Some((req, _))) = classify(&raw, None) else {
                    panic!("not a lean request");
                };
                respond(&mut server, &sse, req, false).await;
            } else {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(server, sse)
                    .await;
            }
        });
        client.write_all(request.as_bytes()).await.unwrap();
        let mut got = Vec::new();
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let mut buf = [0u8; 1024];
            let n = client.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before the head's end: {got:?}");
            got.extend_from_slice(&buf[..n]);
        }
        drop(client);
        let _ = served.await;
        let text = String::from_utf8(got).unwrap();
        let head = &text[..text.find("\r\n\r\n").unwrap() + 4];
        head.lines()
            .map(|line| {
                if line.starts_with("date: ") {
                    "date: -"
                } else {
                    line
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[tokio::test]
    async fn response_heads_are_hypers_byte_for_byte() {
        let rt = crate::HyperRuntime::new(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioTimer::new(),
        );
        let config = crate::Config {
            cors_origins: vec!["http://app.example".into()],
            ..crate::Config::default()
        };
        let sse = Sse::new(config, rt, |_task: crate::Task| async {});
        let id = sse.hub().issue(None, std::time::Instant::now()).unwrap();
        let requests = [
            "GET /sse/client.js HTTP/1.1\r\nhost: x\r\n\r\n".to_owned(),
            "POST /sse/clients HTTP/1.1\r\nhost: x\r\n\r\n".to_owned(),
            format!("PUT /sse/listen/{id}/news HTTP/1.1\r\nhost: x\r\n\r\n"),
            format!("DELETE /sse/listen/{id}/news HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"),
            format!("PUT /sse/tasks/{id}/t1 HTTP/1.1\r\nhost: x\r\n\r\n"),
            "GET /sse/nowhere HTTP/1.1\r\nhost: x\r\n\r\n".to_owned(),
            "GET /elsewhere HTTP/1.1\r\nhost: x\r\n\r\n".to_owned(),
            format!("POST /sse/events/{id} HTTP/1.1\r\nhost: x\r\n\r\n"),
            "GET /sse/events/bad HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".to_owned(),
            "GET /sse/stats HTTP/1.1\r\nhost: x\r\norigin: http://app.example\r\n\r\n".to_owned(),
            "OPTIONS /sse/clients HTTP/1.1\r\nhost: x\r\norigin: http://app.example\r\naccess-control-request-method: POST\r\n\r\n".to_owned(),
        ];
        for request in &requests {
            let hyper = answer_head(&sse, request, false).await;
            let lean = answer_head(&sse, request, true).await;
            assert_eq!(lean, hyper, "{request}");
        }
        // A 204 has no content-length; a 202 without a body says it is empty.
        let no_content = answer_head(&sse, &requests[2], true).await;
        assert!(no_content.starts_with("HTTP/1.1 204 No Content"));
        assert!(!no_content.contains("content-length"), "{no_content}");
        let accepted = answer_head(&sse, &requests[4], true).await;
        assert!(accepted.contains("content-length: 0"), "{accepted}");
    }

    #[test]
    fn rewind_replays_the_prefix_then_reads_on() {
        struct Io(&'static [u8]);
        impl Read for Io {
            fn poll_read(
                mut self: Pin<&mut Self>,
                _: &mut Context<'_>,
                mut buf: ReadBufCursor<'_>,
            ) -> Poll<io::Result<()>> {
                let n = self.0.len().min(buf.remaining());
                buf.put_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Poll::Ready(Ok(()))
            }
        }
        let mut io = Rewind::new(Bytes::from_static(b"hello, "), Io(b"world"));
        let mut got = Vec::new();
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        loop {
            let mut raw = [0u8; 4];
            let mut buf = ReadBuf::new(&mut raw);
            let _ = Pin::new(&mut io).poll_read(&mut cx, buf.unfilled());
            if buf.filled().is_empty() {
                break;
            }
            got.extend_from_slice(buf.filled());
        }
        assert_eq!(got, b"hello, world");
    }
}
