//! Publishing: [`Hub::publish`] and its kin, and [`Wake`](crate::Wake), the wake-up of an event's
//! recipients a slice at a time, with [`Hub::queue_wake`] to drive successive ones in order.

use std::fmt;
use std::task::Waker;

use sse_codec::EventName;

use crate::hub::{Hub, wake_all};
use crate::state::{Published, StreamKey, WakeCursor};
use crate::types::{Error, Target};
use crate::work::{DEFAULT_SLICE, Progress, Slice, drive};

impl Hub {
    /// Publishes an event: the one place every send goes through.
    ///
    /// The frame is encoded once, with the next sequence number as its id, and queued or
    /// appended to the shared history under the lock. The returned [`Wake`](crate::Wake) wakes the
    /// recipients' streams: drive it in slices (see [`crate::drive`]), or drop it to wake them
    /// all at once.
    pub fn publish(&self, target: Target<'_>, event: Option<&EventName>, data: &str) -> Publish {
        let mut woken = Vec::new();
        let published = {
            let mut state = self.lock();
            let published = state.publish(target, event, data, &mut woken);
            self.changed();
            (published, state.slots())
        };
        self.publication(published, woken)
    }

    /// Delivers an event whose sequence number was chosen elsewhere: exactly as
    /// [`publish`](Self::publish) does, with `seq` in place of the next one.
    ///
    /// This is the seam for a cross-node backend: every node delivers the same events with
    /// the same sequence numbers (derived from a shared log), so that a `Last-Event-ID` from
    /// one node resumes on any other. `seq` must be above every sequence number the hub has
    /// used ([`Stats::seq`](crate::Stats::seq)), else the event is refused with [`Error::StaleSeq`]; gaps are
    /// allowed. A hub fed this way should not also [`publish`](Self::publish).
    pub fn deliver(
        &self,
        seq: u64,
        target: Target<'_>,
        event: Option<&EventName>,
        data: &str,
    ) -> Result<Publish, Error> {
        let mut woken = Vec::new();
        let published = {
            let mut state = self.lock();
            let published = state.deliver(seq, target, event, data, &mut woken)?;
            self.changed();
            (published, state.slots())
        };
        Ok(self.publication(published, woken))
    }

    /// Wakes the recipients woken at once (of an event for a client or a name), and returns the
    /// wake-up of the others; `slots` is [`State::slots`](crate::State::slots) at the publish.
    fn publication(
        &self,
        (published, slots): (Published, usize),
        mut woken: Vec<StreamKey>,
    ) -> Publish {
        self.wake(&mut woken);
        Publish {
            seq: published.seq,
            recipients: published.recipients,
            wake: Wake {
                hub: self.clone(),
                cursor: published.wake,
                slots,
                streams: woken,
                wakers: Vec::new(),
            },
        }
    }

    /// Publishes an event and wakes its recipients in slices, yielding to the executor between
    /// them. Returns the sequence number and the number of recipients.
    pub async fn send(
        &self,
        target: Target<'_>,
        event: Option<&EventName>,
        data: &str,
    ) -> (u64, usize) {
        let mut publish = self.publish(target, event, data);
        drive(&mut publish.wake, DEFAULT_SLICE).await;
        (publish.seq, publish.recipients)
    }

    /// Wakes an event's recipients in publish order: the first `budget` of them now, in this
    /// call, and the rest queued behind the wake-ups of events published before it. Returns the
    /// task that drives the queue, a slice of `budget` at a time and yielding between slices,
    /// when none is running: spawn it. (Dropping that task midway wakes what is queued at once.)
    ///
    /// Driving each publish's wake-up in a task of its own lets every pending broadcast advance
    /// a slice per turn of the executor, so that under overload they all finish late together.
    /// Here one broadcast is woken in full before the next one's remainder starts, first come,
    /// first served; a stream woken for one event writes every frame it has ready, later
    /// events included. Events for one client, or for a small name or key, are woken at once.
    ///
    /// ```
    /// use futures_lite::{StreamExt, future::block_on};
    /// use sse_registry::{Config, Hub, Target};
    ///
    /// let hub = Hub::new(Config::default());
    /// let now = std::time::Instant::now();
    /// let mut streams: Vec<_> = (0..3)
    ///     .map(|_| hub.attach(hub.issue(None, now).unwrap(), None, now).unwrap())
    ///     .collect();
    /// let published = hub.publish(Target::All, None, "hi");
    /// // One recipient woken now, two queued: the returned task drives them.
    /// let task = hub.queue_wake(published.wake, 1).expect("no task was driving the queue");
    /// block_on(task);
    /// for stream in &mut streams {
    ///     assert_eq!(&block_on(stream.next()).unwrap()[..], b"id: 1\ndata: hi\n\n");
    /// }
    /// ```
    #[must_use = "spawn the task: the queued wake-ups wait for it"]
    pub fn queue_wake(
        &self,
        mut wake: Wake,
        budget: usize,
    ) -> Option<impl Future<Output = ()> + Send + 'static + use<>> {
        if wake.step(budget) == Progress::Done || !self.wake_queue().push(Box::new(wake)) {
            return None;
        }
        Some(drive_queue(self.clone(), budget))
    }
}

/// The result of [`Hub::publish`].
#[derive(Debug)]
#[must_use = "drive `wake` (or drop it to wake every recipient at once)"]
pub struct Publish {
    /// The event's sequence number: its SSE id.
    pub seq: u64,
    /// How many clients it was addressed to when published.
    pub recipients: usize,
    /// Wakes the recipients' streams.
    pub wake: Wake,
}

/// Wakes the streams of an event's recipients, a slice at a time ([`Slice`]). Dropping it wakes
/// the rest at once.
///
/// The recipients of an event for everyone are woken from the hub's table of waiting streams,
/// without the lock of the hub's state; those of a key are read from the key's member list
/// under it, a slice at a time.
pub struct Wake {
    hub: Hub,
    cursor: WakeCursor,
    /// For an event for everyone, the slots it has recipients below: those of the clients that
    /// existed when it was published.
    slots: usize,
    /// Streams to wake (reused between steps).
    streams: Vec<StreamKey>,
    /// Their wakers (reused between steps).
    wakers: Vec<Waker>,
}

impl fmt::Debug for Wake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wake")
            .field("done", &self.cursor.is_done())
            .finish_non_exhaustive()
    }
}

impl Slice for Wake {
    fn step(&mut self, budget: usize) -> Progress {
        let budget = budget.max(1);
        if self.cursor.is_done() {
            return Progress::Done;
        }
        if self.cursor.is_all() {
            // Everyone: whoever waits has a waker in the table, by slot. A step covers as many
            // slots as a step of the state's cursor would.
            let next = self.cursor.next_slot();
            let end = self.slots.min(next.saturating_add(budget));
            self.hub.wakers().take_range(next..end, &mut self.wakers);
            self.cursor.advance_to(end, end >= self.slots);
            wake_all(&mut self.wakers);
        } else {
            let _ = self
                .hub
                .lock()
                .wake_step(&mut self.cursor, budget, &mut self.streams);
            self.hub.wake(&mut self.streams);
        }
        if self.cursor.is_done() {
            Progress::Done
        } else {
            Progress::More
        }
    }
}

impl Drop for Wake {
    fn drop(&mut self) {
        while self.step(DEFAULT_SLICE) == Progress::More {}
    }
}

/// Drives `hub`'s queued wake-ups in order until the queue is empty, yielding between slices.
///
/// If the task is dropped before it ends (never polled, or its executor shut down), the queue is
/// left undriven and what it holds is woken at once (a dropped `Wake` wakes the rest of its
/// recipients), so that nothing waits for a task that is gone and a later publish starts a new
/// one.
fn drive_queue(hub: Hub, budget: usize) -> impl Future<Output = ()> + Send + 'static {
    /// Abandons the queue when dropped, unless disarmed.
    struct Driver {
        hub: Hub,
        armed: bool,
    }
    impl Driver {
        fn disarm(&mut self) {
            self.armed = false;
        }
    }
    impl Drop for Driver {
        fn drop(&mut self) {
            if self.armed {
                drop(self.hub.wake_queue().abandon());
            }
        }
    }
    let mut driver = Driver { hub, armed: true };
    async move {
        loop {
            futures_lite::future::yield_now().await;
            let Some(mut wake) = driver.hub.wake_queue().next() else {
                // `next` left the queue undriven: nothing to abandon.
                driver.disarm();
                return;
            };
            drive(&mut *wake, budget).await;
        }
    }
}
