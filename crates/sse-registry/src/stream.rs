//! A client's stream of encoded frames, and [`Hub::attach`], which opens it.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures_core::Stream;

use crate::hub::Hub;
use crate::id::ClientId;
use crate::state::{Polled, StreamKey};
use crate::types::Error;

impl Hub {
    /// Opens the client's stream, replacing (and ending) any stream it had.
    ///
    /// `last_event_id` is the client's `Last-Event-ID`: with it, the stream first replays what
    /// the client missed since that event and is still due (see [the rules](Self#delivery)), or
    /// starts with a [`RESET`](crate::RESET) event when that is no longer possible, including for an id this
    /// hub never issued. Without it, the stream gives the frames still queued for the client
    /// alone, and of the shared history only what is published from now on. Either way, a client
    /// that had fallen behind and not read its reset yet gets it first. Subscriptions and name
    /// carry over.
    ///
    /// [`ClientStream::resumes_after`] tells which it is: the `Last-Event-ID` when the stream
    /// replays from it, the current sequence number when it starts at the present or with a
    /// reset.
    pub fn attach(
        &self,
        id: ClientId,
        last_event_id: Option<&str>,
        now: Instant,
    ) -> Result<ClientStream, Error> {
        let attached = {
            let mut state = self.lock();
            let attached = state.attach(id, last_event_id, now)?;
            if attached.replaced.is_some() {
                self.changed();
            }
            attached
        };
        // The replaced stream ends: wake its task (outside the lock) so that it sees the end.
        self.wake_one(attached.replaced);
        Ok(ClientStream {
            hub: self.clone(),
            key: attached.stream,
            id,
            start: attached.resumes_after,
            drained_at: 0,
        })
    }
}

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
    key: StreamKey,
    id: ClientId,
    start: u64,
    /// The hub's change counter (never 0) when the stream was last found with nothing to read,
    /// or 0: while the counter stays there, it still has nothing, and a poll need not take the
    /// hub's lock to say so.
    drained_at: u64,
}

impl ClientStream {
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
        self.detach(Some(now));
        // `Drop` then finds the client detached from this stream, and does nothing.
    }

    fn detach(&self, now: Option<Instant>) {
        self.hub.lock().detach(self.key, now);
        self.hub.wakers().clear(self.key);
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

    /// Registers the waker before looking, when the stream had nothing last time: a change made
    /// after the look is then woken, and one made before it is seen by the look (the counter is
    /// bumped under the state's lock, before the change's wake-up takes the wakers). So a
    /// stream with nothing new answers `Pending` with a waker registration and an atomic read,
    /// without the state's lock; one that reads a frame takes the lock once, and learns there
    /// whether more is ready.
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let this = self.get_mut();
        // Twice at most: a second change between the look and the registration yields instead
        // (a wake-up of itself), so that a busy hub cannot keep one poll looping.
        for _ in 0..2 {
            if this.drained_at != 0 {
                // Unchanged since: register, then check that it still is.
                if this.hub.changes() == this.drained_at {
                    this.hub.wakers().register(this.key, cx.waker());
                    if this.hub.changes() == this.drained_at {
                        return Poll::Pending;
                    }
                }
                this.drained_at = 0;
            }
            let mut state = this.hub.lock();
            match state.poll(this.key) {
                Polled::Frame(frame) => {
                    if !state.is_ready(this.key) {
                        this.drained_at = this.hub.changes();
                    }
                    return Poll::Ready(Some(frame));
                }
                Polled::Ended => return Poll::Ready(None),
                Polled::Pending => this.drained_at = this.hub.changes(),
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl Drop for ClientStream {
    fn drop(&mut self) {
        self.detach(None);
    }
}
