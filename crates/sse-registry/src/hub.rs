//! The hub: the sharing layer over the sans-IO [`State`]. It holds the state behind one lock,
//! the wakers of waiting streams outside it (in shards, `wakers.rs`), and a change counter that
//! lets a stream with nothing to read find so without the state's lock. The stream, the wake-up
//! and the sweep (`stream.rs`, `wake.rs`, `sweep.rs`) are built on the methods here.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Waker;
use std::time::Instant;

use sse_codec::EventName;

use crate::config::Config;
use crate::id::ClientId;
use crate::lock::{Guard, Lock};
use crate::state::{State, StreamKey};
use crate::types::{ClientInfo, Error, Stats};
use crate::wakers::Wakers;
use crate::work::SliceQueue;

/// The registry of clients: ids, names, key subscriptions, their streams, and the history that
/// replays what a reconnecting client missed. Cheap to clone; every clone is the same hub.
///
/// # Delivery
/// Every event gets the next hub-wide sequence number as its SSE `id` and is encoded once; its
/// recipients share the same [`Bytes`](bytes::Bytes). Events for everyone or for a key are appended to a
/// bounded shared history that each client's stream reads at its own pace, so publishing them
/// costs the same for ten clients or a million; only waking the readers is proportional to their
/// number, and it is done in slices ([`Wake`](crate::Wake)). Events for one client or for a name go into the
/// bounded queue of each recipient.
///
/// Which events a client gets:
/// - events for everyone published while the client exists (from [`issue`](Self::issue) to its
///   removal);
/// - events for the client or its name published while it exists, held in its queue until it
///   reads them (or is removed);
/// - events for a key **published while it is subscribed to the key, and read while it still
///   is**. A subscription is the key and the sequence number at which it was made: it covers
///   the key's events with a later sequence number for as long as it exists.
///   [`unsubscribe`](Self::unsubscribe) ends it at once: the key's events the client has not
///   read yet are no longer delivered to it, nor replayed when it reconnects, and subscribing
///   again starts a new subscription that does not bring them back.
///
/// A client's frames come in sequence order, each at most once per stream.
///
/// # Reconnection and replay
/// [`attach`](Self::attach) with the id of the last event the client saw (its `Last-Event-ID`)
/// resumes the client exactly after it: the events after that id that are still the client's
/// by the rules above come first, in order, each once. This includes key events only for keys it
/// is still subscribed to (with a subscription made before the event). When some of the events
/// due are no longer held (the gap is older than the history or the client's queue), the stream
/// starts with a [`RESET`](crate::RESET) event instead, whose data and id are the current sequence number: the
/// client must reload its state, and nothing is lost silently. Events the client is no longer
/// due (those of a key it unsubscribed from) never cause a reset.
///
/// Without a `Last-Event-ID`, the stream gives the client's own queued frames, but starts at the
/// present in the shared history: events for everyone and for keys that were published before
/// and not read are skipped (a later attach with a `Last-Event-ID` from before them replays
/// them, if still due and held).
///
/// # Slow consumers
/// A client never slows anyone else down: the shared history does not wait for it, and its own
/// queue is bounded ([`Config::queue_capacity`]). A client that falls behind either (a shared
/// event it is due and has not read was dropped from the history, or its queue is full of
/// undelivered frames) gets a [`RESET`](crate::RESET) event on its stream, then carries on from the present;
/// each reset delivered is counted in [`Stats::lagged`].
///
/// # Time
/// The hub never reads a clock. Operations that need the time take `now`, and the hub keeps the
/// latest `now` it was given. A stream that is dropped (`Drop` is given no time) ended at that
/// `now` or later, perhaps a whole sweep interval later: the client is marked as ended but not
/// stamped, and the next call given a later `now` ([`sweep`](Self::sweep), [`issue`](Self::issue),
/// [`attach`](Self::attach), ...) stamps it with that `now`, from which its [`Config::grace`](crate::Config::grace)
/// counts (a sweep never judges an unstamped client stale). So a client is never removed less
/// than the grace period after its stream ended, and at most about one sweep interval later
/// than that. (After more than 1,024 streams end at once, one call stamps 1,024 of them, to
/// bound its work under the lock; the next calls, and sweeps visiting them, stamp the rest.)
/// [`ClientStream::close`](crate::ClientStream::close) and [`end_stream`](Self::end_stream) end a stream as of a given
/// `now`, stamped at once.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    /// The state's configuration, readable without its lock.
    config: Config,
    state: Lock<State>,
    /// The wakers of streams waiting for a frame, by slot.
    wakers: Wakers,
    /// Bumped, under the state's lock, by every change that may make a waiting stream ready
    /// (an event published, a stream ended by another call): a stream that found nothing as of
    /// one value has nothing while it stands (see `ClientStream::poll_next`).
    changes: AtomicU64,
    /// Wake-ups of published events waiting to be driven ([`Hub::queue_wake`]).
    wakes: SliceQueue,
}

impl Default for Hub {
    fn default() -> Self {
        Self::new(Config::default())
    }
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hub").field("stats", &self.stats()).finish()
    }
}

impl Hub {
    /// An empty hub.
    pub fn new(config: Config) -> Self {
        Self {
            inner: Arc::new(Inner {
                state: Lock::new(State::new(config.clone())),
                config,
                wakers: Wakers::default(),
                changes: AtomicU64::new(1),
                wakes: SliceQueue::default(),
            }),
        }
    }

    /// The hub's configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The state, locked. Whoever changes it in a way that may make a waiting stream ready
    /// calls [`changed`](Self::changed) before releasing it, and wakes what it says to wake
    /// ([`wake`](Self::wake)) after.
    pub(crate) fn lock(&self) -> Guard<'_, State> {
        self.inner.state.lock()
    }

    /// Records a change that may make waiting streams ready; called with the state locked.
    pub(crate) fn changed(&self) {
        self.inner.changes.fetch_add(1, Ordering::SeqCst);
    }

    /// The change counter: read under the state's lock, it dates what a poll found; read after
    /// registering a waker, it says whether anything changed since.
    pub(crate) fn changes(&self) -> u64 {
        self.inner.changes.load(Ordering::SeqCst)
    }

    /// The wakers of waiting streams.
    pub(crate) fn wakers(&self) -> &Wakers {
        &self.inner.wakers
    }

    /// The queue of wake-ups that [`Hub::queue_wake`] drives.
    pub(crate) fn wake_queue(&self) -> &SliceQueue {
        &self.inner.wakes
    }

    /// Wakes the tasks of `streams` (emptied); called with the state's lock released.
    pub(crate) fn wake(&self, streams: &mut Vec<StreamKey>) {
        if streams.is_empty() {
            return;
        }
        let mut wakers: Vec<Waker> = Vec::with_capacity(streams.len());
        self.inner.wakers.take(streams, &mut wakers);
        streams.clear();
        wake_all(&mut wakers);
    }

    /// Wakes the task of `stream`, if any; called with the state's lock released.
    pub(crate) fn wake_one(&self, stream: Option<StreamKey>) {
        if let Some(stream) = stream {
            self.wake(&mut vec![stream]);
        }
    }

    /// How often the hub's locks were taken, and how long held, since the hub was made.
    #[cfg(feature = "lock-stats")]
    pub fn lock_stats(&self) -> crate::LockStats {
        let state = self.inner.state.stats();
        let (acquisitions, held) = self.inner.wakers.lock_stats();
        crate::LockStats {
            waker_acquisitions: acquisitions,
            waker_held: held,
            ..state
        }
    }

    /// Issues a new client id, optionally tagged with a name shared by all clients of one user.
    ///
    /// The id can [`attach`](Self::attach) until it is removed; if it never attaches, a sweep
    /// forgets it after [`Config::unattached_ttl`](crate::Config::unattached_ttl).
    ///
    /// Fails with [`Error::Full`] when the hub holds [`Config::max_clients`] clients, and with
    /// [`Error::NameFull`] when `name` has [`Config::max_name_members`] clients already.
    pub fn issue(&self, name: Option<&str>, now: Instant) -> Result<ClientId, Error> {
        self.lock().issue(name, now)
    }

    /// Adds a client with an id chosen elsewhere (by another node of a cluster sharing its
    /// clients, say), exactly as [`issue`](Self::issue) would have issued it; returns `false`,
    /// changing nothing, if the hub knows the id already.
    ///
    /// In-memory use never needs it: it is the seam a cross-node backend uses to replicate
    /// client records. It fails as [`issue`](Self::issue) does, with [`Error::Full`] or
    /// [`Error::NameFull`].
    pub fn import(&self, id: ClientId, name: Option<&str>, now: Instant) -> Result<bool, Error> {
        self.lock().import(id, name, now)
    }

    /// The keys the client is subscribed to.
    pub fn keys(&self, id: ClientId) -> Result<Vec<Arc<str>>, Error> {
        self.lock().keys(id)
    }

    /// Forgets a client: its stream ends, its subscriptions go.
    pub fn remove(&self, id: ClientId) -> Result<(), Error> {
        let stream = {
            let mut state = self.lock();
            let stream = state.remove(id)?;
            self.changed();
            stream
        };
        self.wake_one(stream);
        Ok(())
    }

    /// Ends the client's open stream, if it has one, as a reconnect would, but opens none: the
    /// client stays, detached as of `now`, with its name, subscriptions and queue, so that it
    /// can attach again (and resume from its `Last-Event-ID`) as after any disconnect. Returns
    /// whether it had a stream.
    ///
    /// In-memory use never needs it: it is the seam a cross-node backend uses when the client
    /// has opened a stream on another node (reconnect-replace across nodes).
    pub fn end_stream(&self, id: ClientId, now: Instant) -> Result<bool, Error> {
        let stream = {
            let mut state = self.lock();
            let stream = state.end_stream(id, now)?;
            self.changed();
            stream
        };
        let ended = stream.is_some();
        self.wake_one(stream);
        Ok(ended)
    }

    /// The name the client was issued with.
    pub fn name(&self, id: ClientId) -> Result<Option<Arc<str>>, Error> {
        self.lock().name(id)
    }

    /// Whether the hub knows this id.
    pub fn contains(&self, id: ClientId) -> bool {
        self.lock().contains(id)
    }

    /// Whether some client is subscribed to `key` (so that one more subscriber does not add a
    /// distinct key, for a cap on [`Stats::keys`]).
    pub fn has_key(&self, key: &EventName) -> bool {
        self.lock().has_key(key)
    }

    /// Whether one more client with this name (or without one) may be added now:
    /// [`Error::Full`] or [`Error::NameFull`] if not. What [`Hub::issue`] checks; a backend that
    /// issues ids elsewhere checks it first.
    pub fn has_room(&self, name: Option<&str>) -> Result<(), Error> {
        self.lock().has_room(name)
    }

    /// Subscribes a client to a key; returns `false` if it already was.
    pub fn subscribe(&self, id: ClientId, key: &EventName) -> Result<bool, Error> {
        self.lock().subscribe(id, key)
    }

    /// Unsubscribes a client from a key; returns `false` if it was not subscribed.
    ///
    /// It takes effect at once: the key's events that the client has not read yet are no
    /// longer delivered to it, nor replayed when it reconnects, and their absence is no loss
    /// (they never cause a [`RESET`](crate::RESET)). Subscribing again later does not bring them back.
    pub fn unsubscribe(&self, id: ClientId, key: &EventName) -> Result<bool, Error> {
        self.lock().unsubscribe(id, key)
    }

    /// Counts for an admin view or metrics; O(1).
    pub fn stats(&self) -> Stats {
        self.lock().stats()
    }

    /// Up to `limit` clients, in slot order from `offset`, for an admin view; the second value
    /// is the offset to continue from, if there are more.
    pub fn list(&self, offset: usize, limit: usize) -> (Vec<ClientInfo>, Option<usize>) {
        self.lock().list(offset, limit)
    }

    /// When the next client known to be idle passes its [`Config::grace`](crate::Config::grace) or
    /// [`Config::unattached_ttl`](crate::Config::unattached_ttl), so that a [`sweep`](Self::sweep) then removes it: a sweeper
    /// may sleep until this time (or its usual interval, if sooner) rather than a fixed tick.
    /// `None` when no client is idle. A stream dropped since the latest `now` the hub was given
    /// is not counted until a later `now` stamps it (see [Time](Self#time)). Amortized O(1).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.lock().poll_timeout()
    }
}

/// Wakes every waker in `wakers`; called with no lock held.
pub(crate) fn wake_all(wakers: &mut Vec<Waker>) {
    for waker in wakers.drain(..) {
        waker.wake();
    }
}
