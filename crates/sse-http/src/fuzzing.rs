//! Entry points for the fuzz targets in `fuzz/`, behind the `fuzzing` feature. Not part of the
//! API: nothing here is covered by semver.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, Method, Uri};
use hyper::rt::{Read, ReadBufCursor};

use crate::lean;

/// A request head the lean path answers itself.
#[derive(Debug)]
pub struct LeanHead {
    /// Its method.
    pub method: Method,
    /// Its target, as given.
    pub uri: Uri,
    /// Its headers, in order.
    pub headers: HeaderMap,
    /// Bytes read after the head (the start of a pipelined request), kept for the next one.
    pub rest: Vec<u8>,
    /// Bytes read in all, the head's and `rest`.
    pub read: usize,
}

/// What the lean path decided about the first request of a connection.
#[derive(Debug)]
pub enum Outcome {
    /// Answered on the lean path.
    Lean(Box<LeanHead>),
    /// Handed to hyper, with the bytes read so far (replayed to it).
    Hyper(Bytes),
    /// The connection ended before a byte of a request.
    Closed,
}

/// Reads the first request of a connection whose peer sends `chunks`, one read each (a chunk
/// longer than the lean path's read is split), then ends its side; with `prefix`, as under
/// `serve_app`.
pub fn read_request(chunks: &[&[u8]], prefix: Option<&str>) -> Outcome {
    let mut io = Chunks {
        chunks: chunks.iter().copied().filter(|c| !c.is_empty()).collect(),
        read: 0,
    };
    let mut buf = Vec::new();
    let next = futures_lite::future::block_on(lean::next(&mut io, &mut buf, prefix));
    match next {
        lean::Next::Request(req) => {
            let (parts, _) = req.into_parts();
            Outcome::Lean(Box::new(LeanHead {
                method: parts.method,
                uri: parts.uri,
                headers: parts.headers,
                rest: buf,
                read: io.read,
            }))
        }
        lean::Next::Hyper(head) => Outcome::Hyper(head),
        lean::Next::Closed => Outcome::Closed,
    }
}

/// A peer that sends its chunks, then ends its side; always ready.
struct Chunks<'a> {
    chunks: VecDeque<&'a [u8]>,
    read: usize,
}

impl Read for Chunks<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        if let Some(chunk) = self.chunks.pop_front() {
            let n = chunk.len().min(buf.remaining());
            buf.put_slice(&chunk[..n]);
            if n < chunk.len() {
                self.chunks.push_front(&chunk[n..]);
            }
            self.read += n;
        }
        Poll::Ready(Ok(()))
    }
}
