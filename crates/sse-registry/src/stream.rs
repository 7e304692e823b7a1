//! A client's stream of encoded frames.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures_core::Stream;

use crate::hub::{self, Hub};
use crate::id::ClientId;

/// The frames for one attached client, ready to write to its response body.
///
/// It ends (returns `None`) when the client is attached again elsewhere (reconnect-replace) or
/// removed. Dropping it detaches the client, which the hub then keeps for
/// [`Config::grace`](crate::Config::grace) in case it reconnects. As `Drop` is not given the
/// time, the grace period of a dropped stream counts from the first `now` the hub is given after
/// the drop (the next sweep's, at the latest), never from an earlier one;
/// [`close`](Self::close) detaches as of a given `now` instead.
pub struct ClientStream {
    hub: Hub,
    slot: u32,
    generation: u64,
    id: ClientId,
    start: u64,
}

impl ClientStream {
    pub(crate) fn new(hub: Hub, slot: u32, generation: u64, id: ClientId, start: u64) -> Self {
        Self {
            hub,
            slot,
            generation,
            id,
            start,
        }
    }

    /// The sequence number the stream resumes after: the `Last-Event-ID` it was attached with
    /// when it replays from there; otherwise the sequence number current at the attach, as the
    /// stream starts at the present: attached without a `Last-Event-ID`, or known at the attach
    /// to start with a [`RESET`](crate::RESET) (an id it cannot be resumed from, or a client that
    /// had fallen behind, for example by filling its queue, and not read its reset yet). A server
    /// that writes a greeting frame before the stream's frames gives it this id, so that a client
    /// that reconnects right after the greeting resumes at the same point.
    pub fn resumes_after(&self) -> u64 {
        self.start
    }

    /// The client this stream belongs to.
    pub fn client(&self) -> ClientId {
        self.id
    }

    /// The hub the stream reads from.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Ends the stream as dropping it does, detaching the client, but as of `now` (when the
    /// stream ended, say the response body was dropped): its grace period
    /// ([`Config::grace`](crate::Config::grace)) counts from `now`. Does nothing more if the
    /// stream had ended already (replaced, or its client removed).
    pub fn close(self, now: Instant) {
        self.hub.detach(self.slot, self.generation, Some(now));
        // `Drop` then finds the client detached from this stream, and does nothing.
    }
}

impl fmt::Debug for ClientStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientStream")
            .field("client", &self.id)
            .finish_non_exhaustive()
    }
}

impl Stream for ClientStream {
    type Item = Bytes;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        match self.hub.poll_frame(self.slot, self.generation, cx.waker()) {
            hub::Poll::Frame(frame) => Poll::Ready(Some(frame)),
            hub::Poll::Pending => Poll::Pending,
            hub::Poll::Ended => Poll::Ready(None),
        }
    }
}

impl Drop for ClientStream {
    fn drop(&mut self) {
        self.hub.detach(self.slot, self.generation, None);
    }
}
