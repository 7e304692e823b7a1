//! The least sharing layer over [`State`], for the model test to drive the state directly: a
//! `Hub`, `ClientStream` and `Wake` with the real ones' methods that the model uses, single
//! threaded (`Rc<RefCell<_>>`), that wake a stream's waker **only** when the state names that
//! very stream (its `StreamKey`: slot and generation) in what it returns. So the model's check
//! that a stream which returned `Pending` is never found ready without having been woken holds
//! of the state's own wake-up lists: publish, `wake_step`, `attach`'s replaced stream, `remove`
//! and `sweep_step`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::Bytes;
use futures_core::Stream;
use sse_codec::EventName;
use sse_registry::{
    ClientId, ClientInfo, Config, Error, Polled, Progress, Slice, State, Stats, StreamKey,
    SweepCursor, Target, WakeCursor,
};

#[derive(Clone)]
pub(crate) struct Hub {
    inner: Rc<Inner>,
}

struct Inner {
    state: RefCell<State>,
    /// The waker of each waiting stream, by its exact key.
    wakers: RefCell<HashMap<StreamKey, Waker>>,
}

impl Default for Hub {
    fn default() -> Self {
        Self::new(Config::default())
    }
}

impl Hub {
    pub(crate) fn new(config: Config) -> Self {
        Self {
            inner: Rc::new(Inner {
                state: RefCell::new(State::new(config)),
                wakers: RefCell::new(HashMap::new()),
            }),
        }
    }

    fn state(&self) -> std::cell::RefMut<'_, State> {
        self.inner.state.borrow_mut()
    }

    /// Wakes exactly the streams named (and empties the list).
    fn wake(&self, streams: &mut Vec<StreamKey>) {
        let wakers: Vec<Waker> = {
            let mut table = self.inner.wakers.borrow_mut();
            streams.drain(..).filter_map(|s| table.remove(&s)).collect()
        };
        for waker in wakers {
            waker.wake();
        }
    }

    pub(crate) fn issue(&self, name: Option<&str>, now: Instant) -> Result<ClientId, Error> {
        self.state().issue(name, now)
    }

    pub(crate) fn attach(
        &self,
        id: ClientId,
        last_event_id: Option<&str>,
        now: Instant,
    ) -> Result<ClientStream, Error> {
        let attached = self.state().attach(id, last_event_id, now)?;
        self.wake(&mut attached.replaced.into_iter().collect());
        Ok(ClientStream {
            hub: self.clone(),
            key: attached.stream,
            start: attached.resumes_after,
        })
    }

    pub(crate) fn contains(&self, id: ClientId) -> bool {
        self.state().contains(id)
    }

    pub(crate) fn remove(&self, id: ClientId) -> Result<(), Error> {
        let ended = self.state().remove(id)?;
        self.wake(&mut ended.into_iter().collect());
        Ok(())
    }

    pub(crate) fn subscribe(&self, id: ClientId, key: &EventName) -> Result<bool, Error> {
        self.state().subscribe(id, key)
    }

    pub(crate) fn unsubscribe(&self, id: ClientId, key: &EventName) -> Result<bool, Error> {
        self.state().unsubscribe(id, key)
    }

    pub(crate) fn publish(
        &self,
        target: Target<'_>,
        event: Option<&EventName>,
        data: &str,
    ) -> Publish {
        let mut woken = Vec::new();
        let published = self.state().publish(target, event, data, &mut woken);
        self.wake(&mut woken);
        Publish {
            seq: published.seq,
            recipients: published.recipients,
            wake: Wake {
                hub: self.clone(),
                cursor: published.wake,
            },
        }
    }

    pub(crate) fn sweep(&self, now: Instant) -> Sweep {
        let cursor = self.state().sweep(now);
        Sweep {
            hub: self.clone(),
            cursor,
        }
    }

    pub(crate) fn clear(&self) -> Sweep {
        let cursor = self.state().clear();
        Sweep {
            hub: self.clone(),
            cursor,
        }
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.state().poll_timeout()
    }

    pub(crate) fn stats(&self) -> Stats {
        self.state().stats()
    }

    pub(crate) fn list(&self, offset: usize, limit: usize) -> (Vec<ClientInfo>, Option<usize>) {
        self.state().list(offset, limit)
    }
}

pub(crate) struct Publish {
    pub(crate) seq: u64,
    pub(crate) recipients: usize,
    pub(crate) wake: Wake,
}

pub(crate) struct Wake {
    hub: Hub,
    cursor: WakeCursor,
}

impl Slice for Wake {
    fn step(&mut self, budget: usize) -> Progress {
        let mut woken = Vec::new();
        let progress = self
            .hub
            .state()
            .wake_step(&mut self.cursor, budget, &mut woken);
        self.hub.wake(&mut woken);
        progress
    }
}

impl Drop for Wake {
    fn drop(&mut self) {
        while self.step(4096) == Progress::More {}
    }
}

pub(crate) struct Sweep {
    hub: Hub,
    cursor: SweepCursor,
}

impl Sweep {
    pub(crate) fn removed(&self) -> usize {
        self.cursor.removed()
    }
}

impl Slice for Sweep {
    fn step(&mut self, budget: usize) -> Progress {
        let mut woken = Vec::new();
        let progress = self
            .hub
            .state()
            .sweep_step(&mut self.cursor, budget, &mut woken);
        self.hub.wake(&mut woken);
        progress
    }
}

pub(crate) struct ClientStream {
    hub: Hub,
    key: StreamKey,
    start: u64,
}

impl std::fmt::Debug for ClientStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientStream")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl ClientStream {
    pub(crate) fn resumes_after(&self) -> u64 {
        self.start
    }

    pub(crate) fn close(self, now: Instant) {
        self.hub.state().detach(self.key, Some(now));
    }
}

impl Stream for ClientStream {
    type Item = Bytes;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let polled = self.hub.state().poll(self.key);
        match polled {
            Polled::Frame(frame) => Poll::Ready(Some(frame)),
            Polled::Ended => Poll::Ready(None),
            Polled::Pending => {
                let mut wakers = self.hub.inner.wakers.borrow_mut();
                wakers.insert(self.key, cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Drop for ClientStream {
    fn drop(&mut self) {
        self.hub.state().detach(self.key, None);
        self.hub.inner.wakers.borrow_mut().remove(&self.key);
    }
}
