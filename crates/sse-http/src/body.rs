//! Response bodies: a whole buffer, or a client's event stream with keep-alive comments.

use std::convert::Infallible;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_core::Stream;
use http_body::{Frame, SizeHint};
use hyper::rt::Sleep;
use sse_registry::ClientStream;

use crate::metrics::Telemetry;
use crate::peers::StreamSlot;
use crate::runtime::Runtime;

/// The body of every response the service gives.
pub struct Body {
    kind: Kind,
}

enum Kind {
    Full(Option<Bytes>),
    Events(Box<EventBody>),
}

struct EventBody {
    greeting: Option<Bytes>,
    stream: ClientStream,
    runtime: Arc<dyn Runtime>,
    keep_alive: Duration,
    /// Fires at the keep-alive deadline or earlier: it is not moved on every frame (moving a
    /// timer costs a lock or, on async-io, a wake-up of the reactor thread), but moved on to
    /// the real deadline when it fires early.
    sleep: Pin<Box<dyn Sleep>>,
    /// When the last frame was handed out: the keep-alive comment is due `keep_alive` after it.
    last_frame: Instant,
    /// The stream's place in its peer's count of open streams, given back with the body.
    _slot: Option<StreamSlot>,
    telemetry: Arc<Telemetry>,
    /// When the stream opened.
    opened: Instant,
    /// Bytes handed out and not yet added to the shared count (added in batches, so that
    /// streams on different threads do not contend on it for every frame).
    unwritten: u32,
    /// The hub ended the stream (rather than the connection dropping it).
    ended: bool,
}

/// Bytes a stream hands out before it adds them to the shared count.
const WRITTEN_BATCH: u32 = 16 * 1024;

impl EventBody {
    fn written(&mut self, bytes: usize) {
        self.unwritten = self
            .unwritten
            .saturating_add(u32::try_from(bytes).unwrap_or(u32::MAX));
        if self.unwritten >= WRITTEN_BATCH {
            self.telemetry.written.inc_by(u64::from(self.unwritten));
            self.unwritten = 0;
        }
    }
}

impl Drop for EventBody {
    fn drop(&mut self) {
        self.telemetry.written.inc_by(u64::from(self.unwritten));
        let reason = if self.telemetry.is_closing() {
            "shutdown"
        } else if !self.ended {
            "client gone"
        } else if self.stream.hub().contains(self.stream.client()) {
            "replaced"
        } else {
            "removed (deleted or swept)"
        };
        let open = self.runtime.now().saturating_duration_since(self.opened);
        let ms = open.as_millis();
        tracing::info!(client = %self.stream.client().tag(), reason, ms, "stream ended");
    }
}

/// The keep-alive comment: a bare `:` line, which every parser ignores.
const KEEP_ALIVE: &[u8] = b":\n";

impl Body {
    /// A body of one buffer.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        Self {
            kind: Kind::Full(Some(bytes.into())),
        }
    }

    /// An empty body.
    pub fn empty() -> Self {
        Self {
            kind: Kind::Full(None),
        }
    }

    pub(crate) fn events(
        greeting: Bytes,
        stream: ClientStream,
        runtime: Arc<dyn Runtime>,
        keep_alive: Duration,
        slot: Option<StreamSlot>,
        telemetry: Arc<Telemetry>,
    ) -> Self {
        let sleep = runtime.sleep(keep_alive);
        let now = runtime.now();
        Self {
            kind: Kind::Events(Box::new(EventBody {
                greeting: Some(greeting),
                stream,
                runtime,
                keep_alive,
                sleep,
                last_frame: now,
                _slot: slot,
                telemetry,
                opened: now,
                unwritten: 0,
                ended: false,
            })),
        }
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Full(bytes) => f.debug_tuple("Body::Full").field(bytes).finish(),
            Kind::Events(body) => f.debug_tuple("Body::Events").field(&body.stream).finish(),
        }
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match &mut self.get_mut().kind {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Events(body) => body.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.kind, Kind::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Events(_) => SizeHint::default(),
        }
    }
}

impl EventBody {
    fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(greeting) = self.greeting.take() {
            self.last_frame = self.runtime.now();
            self.written(greeting.len());
            return Poll::Ready(Some(Ok(Frame::data(greeting))));
        }
        match Pin::new(&mut self.stream).poll_next(cx) {
            Poll::Ready(Some(frame)) => {
                self.last_frame = self.runtime.now();
                self.written(frame.len());
                return Poll::Ready(Some(Ok(Frame::data(frame))));
            }
            // Replaced by a newer stream of the same client, removed, or shut down.
            Poll::Ready(None) => {
                self.ended = true;
                return Poll::Ready(None);
            }
            Poll::Pending => {}
        }
        loop {
            match self.sleep.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) => {
                    let now = self.runtime.now();
                    let due = self.last_frame + self.keep_alive;
                    if due <= now {
                        self.last_frame = now;
                        self.runtime.reset(&mut self.sleep, now + self.keep_alive);
                        self.telemetry.keep_alives.inc();
                        self.written(KEEP_ALIVE.len());
                        return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(KEEP_ALIVE)))));
                    }
                    // Fired early (frames went out since it was set): on to the real deadline,
                    // and poll it again so that it wakes this task.
                    self.runtime.reset(&mut self.sleep, due);
                }
            }
        }
    }
}
