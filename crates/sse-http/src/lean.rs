//! The lean path for event streams: a connection whose first request opens an event stream over
//! HTTP/1.1 is answered by a small writer here instead of hyper.
//!
//! hyper keeps a read buffer (8–16 KiB) and a write buffer (8 KiB) for every connection for as
//! long as it is open; a stream connection never needs either after its request head, and with
//! 100,000 listeners they are most of the server's memory. Here the head is read into a
//! temporary buffer, parsed with `httparse`, answered by [`Sse::handle`] like any request, and
//! the response is written straight from the body's frames (one shared `Bytes` per event). What
//! stays allocated per stream is the task, the socket and the body: about 1 KiB.
//!
//! Anything else (another route first, HTTP/2, a body, `Upgrade`, a head that is not complete
//! and valid within [`MAX_HEAD`]) goes to hyper unchanged: the bytes read so far are replayed to
//! it by [`Rewind`]. A stream answered here is close-delimited (`connection: close`, no
//! chunking), which every HTTP/1.1 client and `EventSource` reads; bytes the client sends after
//! its request are read and dropped (at most [`MAX_DISCARD`]), and the end of its side, or an
//! error, ends the stream at once, as hyper would.

use std::future::{Future, poll_fn};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::SystemTime;

use bytes::{Buf, Bytes};
use http::{HeaderName, HeaderValue, Method, Request, Version};
use http_body::Body as _;
use hyper::rt::{Read, ReadBuf, ReadBufCursor, Write};

use crate::body::Body;
use crate::service::Sse;

/// The longest request head the lean path reads before it hands the connection to hyper (which
/// applies its own limits to it).
pub(crate) const MAX_HEAD: usize = 8 * 1024;

/// The most headers a request may have on the lean path (more goes to hyper).
const MAX_HEADERS: usize = 64;

/// Bytes a client may send after its request while its stream is open before the connection is
/// closed: a client has nothing to say on a close-delimited stream.
pub(crate) const MAX_DISCARD: usize = 64 * 1024;

/// How a connection's first request head was read.
pub(crate) enum Opening {
    /// An event-stream request, answered here.
    Stream(Box<Request<Body>>),
    /// Anything else: hyper serves the connection, the bytes read so far first.
    Hyper(Bytes),
    /// The client closed (or failed) before sending a byte.
    Closed,
}

/// Reads the first request head of a connection and decides who answers it.
pub(crate) async fn open<I: Read + Unpin>(io: &mut I, prefix: &str) -> Opening {
    let mut head = Vec::new();
    loop {
        let mut chunk = [0u8; 1024];
        let mut buf = ReadBuf::new(&mut chunk);
        let read = poll_fn(|cx| Pin::new(&mut *io).poll_read(cx, buf.unfilled())).await;
        let n = buf.filled().len();
        if read.is_err() || n == 0 {
            return if head.is_empty() {
                Opening::Closed
            } else {
                // Let hyper answer what it can of a cut-off head.
                Opening::Hyper(head.into())
            };
        }
        head.extend_from_slice(buf.filled());
        match classify(&head, prefix) {
            Some(Some(req)) => return Opening::Stream(Box::new(req)),
            Some(None) => return Opening::Hyper(head.into()),
            None if head.len() >= MAX_HEAD => return Opening::Hyper(head.into()),
            None => {}
        }
    }
}

/// `None` while the head is incomplete; then the request if the lean path takes it.
fn classify(head: &[u8], prefix: &str) -> Option<Option<Request<Body>>> {
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
    Some(lean_request(&parsed, prefix).filter(|_| used == head.len()))
}

/// The request, when it is one the lean path answers: `GET {prefix}events/…` over HTTP/1.1,
/// without a body or an upgrade, with valid header names and values.
fn lean_request(parsed: &httparse::Request<'_, '_>, prefix: &str) -> Option<Request<Body>> {
    let path = parsed.path?;
    if parsed.method? != "GET" || parsed.version? != 1 {
        return None;
    }
    if !path
        .strip_prefix(prefix)
        .is_some_and(|rest| rest.starts_with("events/"))
    {
        return None;
    }
    let mut req = Request::builder()
        .method(Method::GET)
        .uri(path)
        .version(Version::HTTP_11);
    for header in parsed.headers.iter() {
        let name = HeaderName::from_bytes(header.name.as_bytes()).ok()?;
        let value = HeaderValue::from_bytes(header.value).ok()?;
        let body_or_upgrade = name == http::header::CONTENT_LENGTH && value != "0"
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

/// Answers `req` with `sse` and writes the response to `io`: a whole body with its length, or an
/// event stream until it ends, the client goes away, or a write fails. Then closes the
/// connection.
pub(crate) async fn serve_stream<I: Read + Write + Unpin>(mut io: I, sse: Sse, req: Request<Body>) {
    let res = sse.handle(req).await;
    let (parts, mut body) = res.into_parts();
    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(b"HTTP/1.1 ");
    head.extend_from_slice(parts.status.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(
        parts
            .status
            .canonical_reason()
            .unwrap_or("Unknown")
            .as_bytes(),
    );
    head.extend_from_slice(b"\r\n");
    for (name, value) in &parts.headers {
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"date: ");
    head.extend_from_slice(httpdate::fmt_http_date(SystemTime::now()).as_bytes());
    head.extend_from_slice(b"\r\n");
    if let Some(len) = body.size_hint().exact() {
        head.extend_from_slice(b"content-length: ");
        head.extend_from_slice(len.to_string().as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"connection: close\r\n\r\n");
    let mut writer = Writer {
        pending: Bytes::from(head),
        body_done: false,
        discarded: 0,
    };
    poll_fn(|cx| writer.poll(cx, &mut io, &mut body)).await;
    // Dropping the body now detaches the client (a stream), before the connection closes.
    drop(body);
    let _ = poll_fn(|cx| Pin::new(&mut io).poll_shutdown(cx)).await;
}

/// The state of a response being written.
struct Writer {
    /// What is left of the frame being written (empty: none).
    pending: Bytes,
    /// The body has ended: close once `pending` is written.
    body_done: bool,
    /// Bytes the client sent since its request.
    discarded: usize,
}

impl Writer {
    /// Ready when the response is over, for whatever reason.
    fn poll<I: Read + Write + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut I,
        body: &mut Body,
    ) -> Poll<()> {
        loop {
            if !self.pending.is_empty() {
                match Pin::new(&mut *io).poll_write(cx, &self.pending) {
                    Poll::Ready(Ok(n)) if n > 0 => {
                        self.pending.advance(n);
                        continue;
                    }
                    // A write of nothing, or an error: the connection is gone.
                    Poll::Ready(_) => return Poll::Ready(()),
                    Poll::Pending => break,
                }
            }
            if self.body_done {
                return Poll::Ready(());
            }
            match Pin::new(&mut *body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.pending = data;
                    }
                }
                Poll::Ready(Some(Err(never))) => match never {},
                Poll::Ready(None) => self.body_done = true,
                Poll::Pending => break,
            }
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
                        return Poll::Ready(());
                    }
                }
                Poll::Ready(Err(_)) => return Poll::Ready(()),
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

/// Reads the head of a connection within `timeout` (a future that completes when it is over).
pub(crate) async fn open_within<I: Read + Unpin>(
    io: &mut I,
    prefix: &str,
    timeout: impl Future<Output = ()>,
) -> Opening {
    futures_lite::future::or(open(io, prefix), async {
        timeout.await;
        Opening::Closed
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(head: &[u8]) -> &'static str {
        match classify(head, "/sse/") {
            None => "partial",
            Some(None) => "hyper",
            Some(Some(_)) => "lean",
        }
    }

    #[test]
    fn only_a_bodiless_http11_get_of_a_stream_is_lean() {
        let id = "/sse/events/0f0e0d0c-0b0a-4908-8706-050403020100";
        let get = format!("GET {id} HTTP/1.1\r\nhost: x\r\nlast-event-id: 5\r\n\r\n");
        assert_eq!(kind(get.as_bytes()), "lean");
        assert_eq!(kind(&get.as_bytes()[..20]), "partial");
        assert_eq!(kind(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), "hyper");
        assert_eq!(kind(b"PR"), "hyper");
        assert_eq!(kind(b"POST /sse/clients HTTP/1.1\r\n\r\n"), "hyper");
        assert_eq!(kind(b"GET /sse/client.js HTTP/1.1\r\n\r\n"), "hyper");
        assert_eq!(kind(b"GET /other/events/x HTTP/1.1\r\n\r\n"), "hyper");
        assert_eq!(kind(b"HEAD /sse/events/x HTTP/1.1\r\n\r\n"), "hyper");
        assert_eq!(kind(b"GET /sse/events/x HTTP/1.0\r\n\r\n"), "hyper");
        assert_eq!(
            kind(b"GET /sse/events/x HTTP/1.1\r\ncontent-length: 3\r\n\r\nabc"),
            "hyper"
        );
        assert_eq!(
            kind(b"GET /sse/events/x HTTP/1.1\r\nupgrade: websocket\r\n\r\n"),
            "hyper"
        );
        // A pipelined request after the head: hyper answers both.
        assert_eq!(
            kind(b"GET /sse/events/x HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n"),
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
