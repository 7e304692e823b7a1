//! The hub: its state, the client records and every operation on them.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant};

use bytes::Bytes;
use slab::Slab;
use sse_codec::{EventId, EventName, Frame};

use crate::config::Config;
use crate::id::ClientId;
use crate::lock::{Guard, Lock};
use crate::stream::ClientStream;
use crate::work::{DEFAULT_SLICE, Progress, Slice, WakeQueue, drive_queue, wake_all};

/// The event name of the frame a client gets in place of frames it can no longer be given.
pub const RESET: EventName = EventName::from_static("reset");

/// The registry of clients: ids, names, key subscriptions, their streams, and the history that
/// replays what a reconnecting client missed. Cheap to clone; every clone is the same hub.
///
/// # Delivery
/// Every event gets the next hub-wide sequence number as its SSE `id` and is encoded once; its
/// recipients share the same [`Bytes`]. Events for everyone or for a key are appended to a
/// bounded shared history that each client's stream reads at its own pace, so publishing them
/// costs the same for ten clients or a million; only waking the readers is proportional to their
/// number, and it is done in slices ([`Wake`]). Events for one client or for a name go into the
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
/// starts with a [`RESET`] event instead, whose data and id are the current sequence number: the
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
/// undelivered frames) gets a [`RESET`] event on its stream, then carries on from the present;
/// each reset delivered is counted in [`Stats::lagged`].
///
/// # Time
/// The hub never reads a clock. Operations that need the time take `now`, and the hub keeps the
/// latest `now` it was given. A stream that is dropped (`Drop` is given no time) ended at that
/// `now` or later, perhaps a whole sweep interval later: the client is marked as ended but not
/// stamped, and the next call given a later `now` ([`sweep`](Self::sweep), [`issue`](Self::issue),
/// [`attach`](Self::attach), ...) stamps it with that `now`, from which its [`Config::grace`]
/// counts (a sweep never judges an unstamped client stale). So a client is never removed less
/// than the grace period after its stream ended, and at most about one sweep interval later
/// than that. (After more than 1,024 streams end at once, one call stamps 1,024 of them, to
/// bound its work under the lock; the next calls, and sweeps visiting them, stamp the rest.)
/// [`ClientStream::close`] and [`end_stream`](Self::end_stream) end a stream as of a given
/// `now`, stamped at once.
#[derive(Clone)]
pub struct Hub {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: Config,
    pub(crate) state: Lock<State>,
    /// Wake-ups of published events waiting to be driven ([`Hub::queue_wake`]).
    pub(crate) wakes: WakeQueue,
}

/// Where an event goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// One client.
    Client(ClientId),
    /// Every client issued with this name (all tabs of one user, say).
    Name(&'a str),
    /// Every client subscribed to this key.
    Key(&'a EventName),
    /// Every client.
    All,
}

/// Why an operation on a client failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// No client has this id (never issued, removed, or swept).
    UnknownClient,
    /// The hub holds [`Config::max_clients`] clients already.
    Full,
    /// The client is subscribed to [`Config::max_keys_per_client`] keys already.
    TooManyKeys,
    /// [`Hub::deliver`] was given a sequence number not above the hub's current one.
    StaleSeq,
    /// The name already has [`Config::max_name_members`] clients: [`Hub::issue`] or
    /// [`Hub::import`] refused another. Like [`Full`](Self::Full), a refusal to grow, not a bad
    /// request: an HTTP server answers it with a 4xx (429 or 409, the user has too many tabs) or
    /// a 503, and the client may retry once some of the name's clients have gone.
    NameFull,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::UnknownClient => "unknown client id",
            Self::Full => "too many clients",
            Self::TooManyKeys => "too many keys for this client",
            Self::StaleSeq => "sequence number not above the hub's current one",
            Self::NameFull => "too many clients with this name",
        })
    }
}

impl std::error::Error for Error {}

/// Counts for an admin view or metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Clients known (issued and not yet removed).
    pub clients: usize,
    /// Clients with an open stream.
    pub attached: usize,
    /// Distinct keys with at least one subscriber.
    pub keys: usize,
    /// Frames in client queues not yet delivered.
    pub queued: usize,
    /// Frames in the shared history.
    pub history: usize,
    /// The last sequence number used (0 before any event).
    pub seq: u64,
    /// Events published since the hub was made.
    pub published: u64,
    /// Resets delivered: times a stream yielded a [`RESET`] event, because its client fell
    /// behind (a slow consumer, or a history overrun) or attached with a `Last-Event-ID` it could
    /// not be resumed from. Counted when the stream yields the reset: a client found behind
    /// several times before it reads its reset (reattaching with unusable ids, say) counts once,
    /// and one that never reads it not at all.
    pub lagged: u64,
    /// Key subscriptions held, over all clients: at most
    /// [`clients`](Self::clients) × [`Config::max_keys_per_client`].
    pub subscriptions: usize,
    /// Clients removed by stale sweeps.
    pub swept: u64,
    /// Clients issued since the hub was made ([`Hub::issue`]; not [`Hub::import`]).
    pub issued: u64,
    /// Clients removed on request since the hub was made ([`Hub::remove`], and the sweeps of
    /// [`Hub::clear`]); stale sweeps count in [`swept`](Self::swept).
    pub removed: u64,
    /// Streams ended because their client attached again (reconnect-replace).
    pub replaced: u64,
    /// Streams opened with a `Last-Event-ID` they resume from (replaying what was missed);
    /// those that could not resume start with a reset, counted in [`lagged`](Self::lagged).
    pub resumed: u64,
    /// Frames the streams have handed out (events and resets; not the greeting and keep-alive
    /// comments the HTTP layer writes).
    pub delivered: u64,
    /// Events published since the hub was made, by the kind of their target; they add up to
    /// [`published`](Self::published).
    pub published_to: PublishedTo,
}

/// Events published, by the kind of their [`Target`]: see [`Stats::published_to`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PublishedTo {
    /// To one client ([`Target::Client`]).
    pub client: u64,
    /// To a name's clients ([`Target::Name`]).
    pub name: u64,
    /// To a key's subscribers ([`Target::Key`]).
    pub key: u64,
    /// To everyone ([`Target::All`]).
    pub all: u64,
}

/// What the admin view shows of a client.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientInfo {
    /// The client's id.
    pub id: ClientId,
    /// Its name, if it was issued with one.
    pub name: Option<Arc<str>>,
    /// The keys it is subscribed to.
    pub keys: Vec<Arc<str>>,
    /// Whether it has an open stream.
    pub attached: bool,
    /// Time since it was last seen (issued, attached, or its stream ended), as of the latest
    /// `now` the hub was given. Zero for a client whose stream was dropped after that `now` (see
    /// [Time](Hub#time)): it is not known to have been idle any longer.
    pub idle: Duration,
}

pub(crate) struct State {
    epoch: Option<Instant>,
    /// The latest `now` given, in milliseconds since `epoch`.
    now_ms: u64,
    pub(crate) clients: Slab<Client>,
    by_id: HashMap<ClientId, u32>,
    /// The slots of each name's clients, in no order; a client's index in its name's list is its
    /// `name_at`.
    names: HashMap<Arc<str>, Vec<u32>>,
    keys: HashMap<Arc<str>, KeyEntry>,
    /// Broadcast and key frames, in sequence order.
    shared: VecDeque<Shared>,
    shared_bytes: usize,
    /// The highest sequence number of a broadcast frame dropped from the shared history.
    evicted_all: u64,
    /// The last sequence number used.
    pub(crate) seq: u64,
    /// Generation numbers tell a client's current stream from the streams it replaced.
    next_generation: u64,
    attached: usize,
    queued: usize,
    subscriptions: usize,
    published: u64,
    lagged: u64,
    swept: u64,
    issued: u64,
    removed: u64,
    replaced: u64,
    resumed: u64,
    delivered: u64,
    published_to: PublishedTo,
    /// Clients whose stream was dropped, with the hub's `now_ms` then, in that order (so in
    /// non-decreasing `now_ms`): the next `advance` to a later time stamps them with it (see
    /// `Client::unstamped`). Hints only: an entry whose client was stamped, reattached or
    /// removed since is skipped.
    ended: VecDeque<(u32, u64)>,
    /// Member-list entries touched to take clients out of key and name member lists: the work
    /// `leave_key` and `leave_name` do, which the tests bound.
    #[cfg(test)]
    member_visits: usize,
}

struct KeyEntry {
    /// The subscribers, in no order. A member's index here is its subscription's `at`, so that
    /// leaving is a `swap_remove` and one fix-up of the member moved into the gap.
    members: Vec<Member>,
    /// The highest sequence number of a frame for this key dropped from the shared history
    /// while the entry existed (frames published before it are nobody's: the entry exists while
    /// the key has subscribers, and a new subscriber's subscription starts after them).
    evicted_upto: u64,
}

/// A key's subscriber: its slot, and the index of the subscription in its `keys`.
#[derive(Debug, Clone, Copy)]
struct Member {
    slot: u32,
    sub: u32,
}

struct Shared {
    seq: u64,
    key: Option<Arc<str>>,
    frame: Bytes,
}

pub(crate) struct Client {
    id: ClientId,
    /// The generation of the stream that may read this client; 0 when none.
    pub(crate) generation: u64,
    name: Option<Arc<str>>,
    /// Its index in the member list of its name (`State::names`); 0 without a name.
    name_at: u32,
    /// Its current subscriptions; at most [`Config::max_keys_per_client`].
    keys: Vec<Sub>,
    /// When it was last seen: issued, attached, or its stream ended (see `unstamped`).
    last_seen_ms: u64,
    has_attached: bool,
    lagged: bool,
    /// Its stream ended (was dropped) after the latest `now` the hub had been given, and no later
    /// `now` has been seen since: the end is not known to be earlier than that `now`, so the
    /// grace period cannot start yet. The next `advance` to a later time stamps it with that time
    /// (through `State::ended`, at most [`STAMPS_PER_ADVANCE`] clients an advance); a sweep that
    /// visits it once a later `now` is known stamps it too, and never judges it stale.
    unstamped: bool,
    /// The shared history has been read up to this sequence number.
    cursor: u64,
    /// Frames for this client alone; the first `delivered` of them have been read.
    queue: VecDeque<(u64, Bytes)>,
    delivered: usize,
    /// The highest sequence number dropped from `queue`: replay from before it is impossible.
    trimmed_upto: u64,
    waker: Option<Waker>,
}

impl Client {
    fn undelivered(&self) -> usize {
        self.queue.len() - self.delivered
    }

    /// Whether the key event `seq` is this client's: it is subscribed to the key, and was
    /// before the event was published.
    fn subscribed_to(&self, key: &str, seq: u64) -> bool {
        self.keys
            .iter()
            .any(|sub| &*sub.key == key && sub.since < seq)
    }

    /// Whether a shared frame after `from` that this client is due was dropped from the history:
    /// it cannot be given it. Only broadcasts and the keys it is subscribed to now count; a key
    /// it unsubscribed from is no longer its concern.
    fn behind(&self, keys: &HashMap<Arc<str>, KeyEntry>, evicted_all: u64, from: u64) -> bool {
        from < evicted_all
            || self.keys.iter().any(|sub| {
                // A subscribed client is a member of the key's entry, which therefore exists.
                keys.get(&sub.key)
                    .is_some_and(|entry| entry.evicted_upto > from.max(sub.since))
            })
    }
}

/// A key subscription: the key's events with a sequence number above `since` are the client's
/// while it exists.
struct Sub {
    key: Arc<str>,
    /// The last sequence number used when the client subscribed.
    since: u64,
    /// The client's index in the key's member list (`KeyEntry::members`).
    at: u32,
}

/// What a sweep's step counts a removal as, in units of its budget (a visit counts 1).
///
/// Removing a client takes cache misses in the id index (`by_id`), which a sweep meets in random
/// order: on the reference machine 15 to 70 times the cost of visiting a client that stays. Counted
/// as 16, a [`DEFAULT_SLICE`] step removes at most 256 clients and takes about as long as one that
/// only scans 4,096 (p99 about 150 µs at 1,000,000 clients; see the crate README's benchmarks).
const REMOVAL_COST: usize = 16;

/// Most clients whose stream was dropped that one `advance` (any call given a `now`) stamps with
/// the new time, to bound the work under the lock after many streams end at once; the rest are
/// stamped by the next advances, or by a sweep visiting them. Each is a random access to a client
/// record: 1,024 take at most about 300 µs on the reference machine.
const STAMPS_PER_ADVANCE: usize = 1024;

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
        let state = State {
            epoch: None,
            now_ms: 0,
            clients: Slab::new(),
            by_id: HashMap::new(),
            names: HashMap::new(),
            keys: HashMap::new(),
            shared: VecDeque::new(),
            shared_bytes: 0,
            evicted_all: 0,
            seq: 0,
            next_generation: 1,
            attached: 0,
            queued: 0,
            subscriptions: 0,
            published: 0,
            lagged: 0,
            swept: 0,
            issued: 0,
            removed: 0,
            replaced: 0,
            resumed: 0,
            delivered: 0,
            published_to: PublishedTo::default(),
            ended: VecDeque::new(),
            #[cfg(test)]
            member_visits: 0,
        };
        Self {
            inner: Arc::new(Inner {
                config,
                state: Lock::new(state),
                wakes: WakeQueue::default(),
            }),
        }
    }

    /// The hub's configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub(crate) fn lock(&self) -> Guard<'_, State> {
        self.inner.state.lock()
    }

    /// How often the hub's lock was taken, and how long held, since the hub was made.
    #[cfg(feature = "lock-stats")]
    pub fn lock_stats(&self) -> crate::LockStats {
        self.inner.state.stats()
    }

    /// Issues a new client id, optionally tagged with a name shared by all clients of one user.
    ///
    /// The id can [`attach`](Self::attach) until it is removed; if it never attaches, a sweep
    /// forgets it after [`Config::unattached_ttl`].
    ///
    /// Fails with [`Error::Full`] when the hub holds [`Config::max_clients`] clients, and with
    /// [`Error::NameFull`] when `name` has [`Config::max_name_members`] clients already.
    pub fn issue(&self, name: Option<&str>, now: Instant) -> Result<ClientId, Error> {
        let mut state = self.lock();
        state.advance(now);
        state.check_room(name, &self.inner.config)?;
        let mut id = ClientId::random();
        while state.by_id.contains_key(&id) {
            id = ClientId::random(); // 2^-122 per id; the loop documents the invariant
        }
        state.insert_client(id, name);
        state.issued += 1;
        Ok(id)
    }

    /// Adds a client with an id chosen elsewhere (by another node of a cluster sharing its
    /// clients, say), exactly as [`issue`](Self::issue) would have issued it; returns `false`,
    /// changing nothing, if the hub knows the id already.
    ///
    /// In-memory use never needs it: it is the seam a cross-node backend uses to replicate
    /// client records. It fails as [`issue`](Self::issue) does, with [`Error::Full`] or
    /// [`Error::NameFull`].
    pub fn import(&self, id: ClientId, name: Option<&str>, now: Instant) -> Result<bool, Error> {
        let mut state = self.lock();
        state.advance(now);
        if state.by_id.contains_key(&id) {
            return Ok(false);
        }
        state.check_room(name, &self.inner.config)?;
        state.insert_client(id, name);
        Ok(true)
    }

    /// The keys the client is subscribed to.
    pub fn keys(&self, id: ClientId) -> Result<Vec<Arc<str>>, Error> {
        let state = self.lock();
        let slot = *state.by_id.get(&id).ok_or(Error::UnknownClient)?;
        Ok(state.clients[slot as usize]
            .keys
            .iter()
            .map(|sub| sub.key.clone())
            .collect())
    }

    /// Opens the client's stream, replacing (and ending) any stream it had.
    ///
    /// `last_event_id` is the client's `Last-Event-ID`: with it, the stream first replays what
    /// the client missed since that event and is still due (see [the rules](Self#delivery)), or
    /// starts with a [`RESET`] event when that is no longer possible, including for an id this
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
        let mut guard = self.lock();
        let state = &mut *guard;
        state.advance(now);
        let slot = *state.by_id.get(&id).ok_or(Error::UnknownClient)?;
        let generation = state.next_generation;
        state.next_generation += 1;
        let (head, now_ms) = (state.seq, state.now_ms);
        let resume = last_event_id
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<u64>());
        let lost = match resume {
            None => false,
            Some(Ok(from)) if from <= head => {
                let client = &state.clients[slot as usize];
                from < client.trimmed_upto || client.behind(&state.keys, state.evicted_all, from)
            }
            Some(_) => true,
        };
        let client = &mut state.clients[slot as usize];
        let old_waker = client.waker.take();
        if client.generation == 0 {
            state.attached += 1;
        } else {
            state.replaced += 1;
        }
        client.generation = generation;
        client.has_attached = true;
        client.last_seen_ms = now_ms;
        client.unstamped = false;
        let before = client.undelivered();
        match resume {
            Some(Ok(from)) if !lost => {
                state.resumed += 1;
                // Everything after `from` is to be (re)delivered, everything up to it is not.
                client.cursor = from;
                while client.queue.front().is_some_and(|(seq, _)| *seq <= from) {
                    if let Some((seq, _)) = client.queue.pop_front() {
                        client.trimmed_upto = client.trimmed_upto.max(seq);
                    }
                }
                client.delivered = 0;
            }
            Some(_) => client.lagged = true,
            None => {
                client.cursor = client.cursor.max(head);
                for (seq, _) in client.queue.drain(..client.delivered) {
                    client.trimmed_upto = client.trimmed_upto.max(seq);
                }
                client.delivered = 0;
            }
        }
        let after = client.undelivered();
        // A lagging client's stream starts with a reset (to the present), whatever it resumed
        // from: its lag may predate this attach (a full queue).
        let start = match resume {
            Some(Ok(from)) if !client.lagged => from,
            _ => head,
        };
        state.queued = state.queued + after - before;
        drop(guard);
        // The replaced stream ends: wake its task (outside the lock) so that it sees the end.
        if let Some(waker) = old_waker {
            waker.wake();
        }
        Ok(ClientStream::new(self.clone(), slot, generation, id, start))
    }

    /// Forgets a client: its stream ends, its subscriptions go.
    pub fn remove(&self, id: ClientId) -> Result<(), Error> {
        let waker = {
            let mut state = self.lock();
            let slot = *state.by_id.get(&id).ok_or(Error::UnknownClient)?;
            state.removed += 1;
            state.remove_slot(slot)
        };
        if let Some(waker) = waker {
            waker.wake();
        }
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
        let waker = {
            let mut guard = self.lock();
            let state = &mut *guard;
            state.advance(now);
            let slot = *state.by_id.get(&id).ok_or(Error::UnknownClient)?;
            let client = &mut state.clients[slot as usize];
            if client.generation == 0 {
                return Ok(false);
            }
            // The stream sees a generation that is not its own and ends; its `Drop` then finds
            // nothing to detach.
            client.generation = 0;
            client.last_seen_ms = state.now_ms;
            client.unstamped = false;
            let waker = client.waker.take();
            state.attached -= 1;
            waker
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(true)
    }

    /// The name the client was issued with.
    pub fn name(&self, id: ClientId) -> Result<Option<Arc<str>>, Error> {
        let state = self.lock();
        let slot = *state.by_id.get(&id).ok_or(Error::UnknownClient)?;
        Ok(state.clients[slot as usize].name.clone())
    }

    /// Whether the hub knows this id.
    pub fn contains(&self, id: ClientId) -> bool {
        self.lock().by_id.contains_key(&id)
    }

    /// Whether some client is subscribed to `key` (so that one more subscriber does not add a
    /// distinct key, for a cap on [`Stats::keys`]).
    pub fn has_key(&self, key: &EventName) -> bool {
        self.lock().keys.contains_key(key.as_str())
    }

    /// Whether one more client with this name (or without one) may be added now:
    /// [`Error::Full`] or [`Error::NameFull`] if not. What [`Hub::issue`] checks; a backend that
    /// issues ids elsewhere checks it first.
    pub fn has_room(&self, name: Option<&str>) -> Result<(), Error> {
        let state = self.lock();
        state.check_room(name, &self.inner.config)
    }

    /// Subscribes a client to a key; returns `false` if it already was.
    pub fn subscribe(&self, id: ClientId, key: &EventName) -> Result<bool, Error> {
        let mut state = self.lock();
        let state = &mut *state;
        let slot = *state.by_id.get(&id).ok_or(Error::UnknownClient)?;
        let client = &mut state.clients[slot as usize];
        if client.keys.iter().any(|sub| &*sub.key == key.as_str()) {
            return Ok(false);
        }
        if client.keys.len() >= self.inner.config.max_keys_per_client {
            return Err(Error::TooManyKeys);
        }
        let interned = match state.keys.get_key_value(key.as_str()) {
            Some((k, _)) => k.clone(),
            None => Arc::from(key.as_str()),
        };
        let entry = state.keys.entry(interned.clone()).or_insert(KeyEntry {
            members: Vec::new(),
            evicted_upto: 0,
        });
        // Both indexes fit in u32: slots do, and a client has at most `max_keys_per_client` keys.
        let at = entry.members.len() as u32;
        entry.members.push(Member {
            slot,
            sub: client.keys.len() as u32,
        });
        client.keys.push(Sub {
            key: interned,
            since: state.seq,
            at,
        });
        state.subscriptions += 1;
        Ok(true)
    }

    /// Unsubscribes a client from a key; returns `false` if it was not subscribed.
    ///
    /// It takes effect at once: the key's events that the client has not read yet are no
    /// longer delivered to it, nor replayed when it reconnects, and their absence is no loss
    /// (they never cause a [`RESET`]). Subscribing again later does not bring them back.
    pub fn unsubscribe(&self, id: ClientId, key: &EventName) -> Result<bool, Error> {
        let mut state = self.lock();
        let state = &mut *state;
        let slot = *state.by_id.get(&id).ok_or(Error::UnknownClient)?;
        let client = &mut state.clients[slot as usize];
        let Some(at) = client.keys.iter().position(|sub| &*sub.key == key.as_str()) else {
            return Ok(false);
        };
        let sub = client.keys.swap_remove(at);
        // The client's last subscription moved to `at`: its key's member entry follows.
        if let Some(moved) = client.keys.get(at) {
            if let Some(entry) = state.keys.get_mut(&moved.key) {
                entry.members[moved.at as usize].sub = at as u32;
            }
        }
        state.subscriptions -= 1;
        state.leave_key(&sub.key, sub.at, slot);
        Ok(true)
    }

    /// Publishes an event: the one place every send goes through.
    ///
    /// The frame is encoded once, with the next sequence number as its id, and queued or
    /// appended to the shared history under the lock. The returned [`Wake`] wakes the
    /// recipients' streams: drive it in slices (see [`crate::drive`]), or drop it to wake them
    /// all at once.
    pub fn publish(&self, target: Target<'_>, event: Option<&EventName>, data: &str) -> Publish {
        let guard = self.lock();
        let seq = guard.seq + 1;
        self.deliver_locked(guard, seq, target, event, data)
    }

    /// Delivers an event whose sequence number was chosen elsewhere: exactly as
    /// [`publish`](Self::publish) does, with `seq` in place of the next one.
    ///
    /// This is the seam for a cross-node backend: every node delivers the same events with
    /// the same sequence numbers (derived from a shared log), so that a `Last-Event-ID` from
    /// one node resumes on any other. `seq` must be above every sequence number the hub has
    /// used ([`Stats::seq`]), else the event is refused with [`Error::StaleSeq`]; gaps are
    /// allowed. A hub fed this way should not also [`publish`](Self::publish).
    pub fn deliver(
        &self,
        seq: u64,
        target: Target<'_>,
        event: Option<&EventName>,
        data: &str,
    ) -> Result<Publish, Error> {
        let guard = self.lock();
        if seq <= guard.seq {
            return Err(Error::StaleSeq);
        }
        Ok(self.deliver_locked(guard, seq, target, event, data))
    }

    fn deliver_locked(
        &self,
        mut guard: Guard<'_, State>,
        seq: u64,
        target: Target<'_>,
        event: Option<&EventName>,
        data: &str,
    ) -> Publish {
        let state = &mut *guard;
        state.seq = seq;
        state.published += 1;
        let kind = &mut state.published_to;
        *match target {
            Target::Client(_) => &mut kind.client,
            Target::Name(_) => &mut kind.name,
            Target::Key(_) => &mut kind.key,
            Target::All => &mut kind.all,
        } += 1;
        let id = EventId::new(itoa(seq)).unwrap_or_else(|_| EventId::from_static(""));
        let mut frame = Frame::new().id(&id).data(data);
        if let Some(event) = event {
            frame = frame.event(event);
        }
        let frame = frame.encode();
        let mut wakers = Vec::new();
        let (recipients, wake) = match target {
            Target::Client(id) => match state.by_id.get(&id).copied() {
                Some(slot) => {
                    state.enqueue(slot, seq, &frame, &self.inner.config, &mut wakers);
                    (1, WakeScope::Done)
                }
                None => (0, WakeScope::Done),
            },
            Target::Name(name) => match state.names.get(name) {
                Some(members) => {
                    let members = members.clone();
                    for &slot in &members {
                        state.enqueue(slot, seq, &frame, &self.inner.config, &mut wakers);
                    }
                    (members.len(), WakeScope::Done)
                }
                None => (0, WakeScope::Done),
            },
            Target::Key(key) => {
                let Some((interned, entry)) = state.keys.get_key_value(key.as_str()) else {
                    return Publish {
                        seq,
                        recipients: 0,
                        wake: Wake::done(self.clone()),
                    };
                };
                let (interned, count) = (interned.clone(), entry.members.len());
                state.append_shared(seq, Some(interned.clone()), frame, &self.inner.config);
                (
                    count,
                    WakeScope::Key {
                        key: interned,
                        remaining: count,
                    },
                )
            }
            Target::All => {
                state.append_shared(seq, None, frame, &self.inner.config);
                (state.clients.len(), WakeScope::All { next: 0 })
            }
        };
        drop(guard);
        wake_all(&mut wakers);
        Publish {
            seq,
            recipients,
            wake: Wake {
                hub: self.clone(),
                scope: wake,
                wakers,
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
        crate::work::drive(&mut publish.wake, DEFAULT_SLICE).await;
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
        if wake.step(budget) == Progress::Done || !self.inner.wakes.push(wake) {
            return None;
        }
        Some(drive_queue(self.clone(), budget))
    }

    /// A stale sweep as of `now`, to be stepped: it removes clients whose stream ended more than
    /// [`Config::grace`] ago, and issued ids that never attached within
    /// [`Config::unattached_ttl`]. A client whose stream was dropped after the latest `now` the
    /// hub had been given is not judged: it is stamped with `now`, and its grace period starts
    /// then (see [Time](Self#time)).
    pub fn sweep(&self, now: Instant) -> Sweep {
        self.lock().advance(now);
        Sweep {
            hub: self.clone(),
            next: 0,
            removed: 0,
            all: false,
            wakers: Vec::new(),
        }
    }

    /// A sweep that removes every client, attached or not, to be stepped.
    pub fn clear(&self) -> Sweep {
        Sweep {
            hub: self.clone(),
            next: 0,
            removed: 0,
            all: true,
            wakers: Vec::new(),
        }
    }

    /// Counts for an admin view or metrics; O(1).
    pub fn stats(&self) -> Stats {
        let state = self.lock();
        Stats {
            clients: state.clients.len(),
            attached: state.attached,
            keys: state.keys.len(),
            queued: state.queued,
            history: state.shared.len(),
            seq: state.seq,
            published: state.published,
            lagged: state.lagged,
            subscriptions: state.subscriptions,
            swept: state.swept,
            issued: state.issued,
            removed: state.removed,
            replaced: state.replaced,
            resumed: state.resumed,
            delivered: state.delivered,
            published_to: state.published_to,
        }
    }

    /// Up to `limit` clients, in slot order from `offset`, for an admin view; the second value
    /// is the offset to continue from, if there are more.
    pub fn list(&self, offset: usize, limit: usize) -> (Vec<ClientInfo>, Option<usize>) {
        let state = self.lock();
        let mut out = Vec::new();
        let end = state.clients.capacity();
        let mut slot = offset;
        while slot < end && out.len() < limit {
            if let Some(client) = state.clients.get(slot) {
                out.push(ClientInfo {
                    id: client.id,
                    name: client.name.clone(),
                    keys: client.keys.iter().map(|sub| sub.key.clone()).collect(),
                    attached: client.generation != 0,
                    idle: if client.unstamped {
                        Duration::ZERO
                    } else {
                        Duration::from_millis(state.now_ms.saturating_sub(client.last_seen_ms))
                    },
                });
            }
            slot += 1;
        }
        (out, (slot < end).then_some(slot))
    }

    /// Builds the frame a lagging or unresumable client gets: `event: reset`, id and data the
    /// current sequence number.
    fn reset_frame(seq: u64) -> Bytes {
        let text = itoa(seq);
        let id = EventId::new(text.clone()).unwrap_or_else(|_| EventId::from_static(""));
        Frame::new().event(&RESET).id(&id).data(&text).encode()
    }

    /// The next frame for the stream `(slot, generation)`, or why there is none.
    pub(crate) fn poll_frame(&self, slot: u32, generation: u64, waker: &Waker) -> Poll {
        let mut state = self.lock();
        let state = &mut *state;
        let Some(client) = state.clients.get_mut(slot as usize) else {
            return Poll::Ended;
        };
        if client.generation != generation {
            return Poll::Ended;
        }
        // Fallen behind the shared history?
        if client.lagged || client.behind(&state.keys, state.evicted_all, client.cursor) {
            client.lagged = false;
            state.lagged += 1;
            state.queued -= client.undelivered();
            client.trimmed_upto = client.queue.back().map_or(client.trimmed_upto, |(s, _)| *s);
            client.queue.clear();
            client.delivered = 0;
            client.cursor = state.seq;
            state.delivered += 1;
            return Poll::Frame(Self::reset_frame(state.seq));
        }
        // The next shared frame for this client, and the next frame of its own.
        let start = state.shared.partition_point(|e| e.seq <= client.cursor);
        let shared = state.shared.range(start..).find(|e| {
            e.key
                .as_ref()
                .is_none_or(|k| client.subscribed_to(k, e.seq))
        });
        let own = client.queue.get(client.delivered);
        match (shared, own) {
            (Some(s), Some((seq, frame))) if *seq < s.seq => {
                let frame = frame.clone();
                client.delivered += 1;
                state.queued -= 1;
                state.delivered += 1;
                Poll::Frame(frame)
            }
            (None, Some((_, frame))) => {
                let frame = frame.clone();
                client.delivered += 1;
                state.queued -= 1;
                state.delivered += 1;
                Poll::Frame(frame)
            }
            (Some(s), _) => {
                client.cursor = s.seq;
                state.delivered += 1;
                Poll::Frame(s.frame.clone())
            }
            (None, None) => {
                client.cursor = state.seq;
                match &client.waker {
                    Some(w) if w.will_wake(waker) => {}
                    _ => client.waker = Some(waker.clone()),
                }
                Poll::Pending
            }
        }
    }

    /// The stream `(slot, generation)` ended: the client is detached, if that stream was its.
    ///
    /// With `now` (the stream was closed at a known time) the client is stamped with it. Without
    /// (the stream was dropped), it ended at some time no earlier than the latest `now` the hub
    /// knows, which may be a sweep interval old: it is left unstamped, and the next `now` the hub
    /// is given stamps it (see `Client::unstamped`).
    pub(crate) fn detach(&self, slot: u32, generation: u64, now: Option<Instant>) {
        let mut state = self.lock();
        if let Some(now) = now {
            state.advance(now);
        }
        let now_ms = state.now_ms;
        let Some(client) = state.clients.get_mut(slot as usize) else {
            return;
        };
        if client.generation == generation {
            client.generation = 0;
            client.last_seen_ms = now_ms;
            client.unstamped = now.is_none();
            client.waker = None;
            state.attached -= 1;
            if now.is_none() {
                // Each client is in `ended` at most once per detach, and detaches at most once
                // per attach, which advances: more entries than this mean the time given has not
                // moved through a long churn. Drop the hints then; sweeps still stamp everyone.
                if state.ended.len() > 2 * state.clients.len() + STAMPS_PER_ADVANCE {
                    state.ended.clear();
                }
                state.ended.push_back((slot, now_ms));
            }
        }
    }
}

/// What [`Hub::poll_frame`] found.
pub(crate) enum Poll {
    Frame(Bytes),
    Pending,
    Ended,
}

impl State {
    fn advance(&mut self, now: Instant) {
        let epoch = *self.epoch.get_or_insert(now);
        let ms = now.saturating_duration_since(epoch).as_millis();
        self.now_ms = self.now_ms.max(u64::try_from(ms).unwrap_or(u64::MAX));
        self.stamp_ended();
    }

    /// Stamps with the current time (up to [`STAMPS_PER_ADVANCE`]) the clients whose stream was
    /// dropped at an earlier one: this time was given after they ended.
    fn stamp_ended(&mut self) {
        let now_ms = self.now_ms;
        for _ in 0..STAMPS_PER_ADVANCE {
            // Entries are in non-decreasing time: the first one of the current time ends the run.
            let Some(&(slot, ended_ms)) = self.ended.front() else {
                break;
            };
            if ended_ms >= now_ms {
                break;
            }
            self.ended.pop_front();
            if let Some(client) = self.clients.get_mut(slot as usize) {
                // Whoever holds the slot now: stamping is right for any client whose stream was
                // dropped before the current time (one dropped at it has a later entry).
                if client.unstamped && client.last_seen_ms < now_ms {
                    client.last_seen_ms = now_ms;
                    client.unstamped = false;
                }
            }
        }
    }

    /// Whether a client with this name may be added: [`Config::max_clients`] and
    /// [`Config::max_name_members`].
    fn check_room(&self, name: Option<&str>, config: &Config) -> Result<(), Error> {
        if self.clients.len() >= config.max_clients {
            return Err(Error::Full);
        }
        if let Some(name) = name {
            let members = self.names.get(name).map_or(0, Vec::len);
            if members >= config.max_name_members {
                return Err(Error::NameFull);
            }
        }
        Ok(())
    }

    /// Adds a client with this id (not yet known), as of the latest `now`.
    fn insert_client(&mut self, id: ClientId, name: Option<&str>) {
        let name = name.map(|name| self.intern_name(name));
        let name_at = name
            .as_ref()
            .and_then(|name| self.names.get(name))
            .map_or(0, |members| members.len() as u32);
        let (seq, now_ms) = (self.seq, self.now_ms);
        let slot = self.clients.insert(Client {
            id,
            generation: 0,
            name: name.clone(),
            name_at,
            keys: Vec::new(),
            last_seen_ms: now_ms,
            has_attached: false,
            lagged: false,
            unstamped: false,
            cursor: seq,
            queue: VecDeque::new(),
            delivered: 0,
            trimmed_upto: seq,
            waker: None,
        });
        let slot = slot as u32; // max_clients keeps the slab far below u32::MAX in practice
        self.by_id.insert(id, slot);
        if let Some(name) = name {
            self.names.entry(name).or_default().push(slot);
        }
    }

    fn intern_name(&mut self, name: &str) -> Arc<str> {
        match self.names.get_key_value(name) {
            Some((k, _)) => k.clone(),
            None => Arc::from(name),
        }
    }

    fn enqueue(
        &mut self,
        slot: u32,
        seq: u64,
        frame: &Bytes,
        config: &Config,
        wakers: &mut Vec<Waker>,
    ) {
        let Some(client) = self.clients.get_mut(slot as usize) else {
            return;
        };
        if client.lagged {
            // It will get a reset, which replaces everything queued.
            return;
        }
        if client.queue.len() >= config.queue_capacity {
            if client.delivered > 0 {
                // Make room by forgetting the oldest delivered frame (kept only for replay).
                if let Some((old, _)) = client.queue.pop_front() {
                    client.trimmed_upto = old;
                }
                client.delivered -= 1;
            } else {
                // Full of undelivered frames: a slow consumer.
                client.lagged = true;
                if let Some(waker) = client.waker.take() {
                    wakers.push(waker);
                }
                return;
            }
        }
        client.queue.push_back((seq, frame.clone()));
        self.queued += 1;
        if let Some(waker) = client.waker.take() {
            wakers.push(waker);
        }
    }

    fn append_shared(&mut self, seq: u64, key: Option<Arc<str>>, frame: Bytes, config: &Config) {
        self.shared_bytes += frame.len();
        self.shared.push_back(Shared { seq, key, frame });
        while self.shared.len() > config.history_len.max(1)
            || (self.shared_bytes > config.history_bytes && self.shared.len() > 1)
        {
            let Some(old) = self.shared.pop_front() else {
                break;
            };
            self.shared_bytes -= old.frame.len();
            match old.key {
                None => self.evicted_all = old.seq,
                // A key without an entry has no subscriber: its frames are nobody's any more.
                Some(key) => {
                    if let Some(entry) = self.keys.get_mut(&key) {
                        entry.evicted_upto = old.seq;
                    }
                }
            }
        }
    }

    /// Takes the client in `slot` out of the member list of `key`, where it is at index `at`
    /// (its subscription's): O(1), a `swap_remove` and the fix-up of the member moved into the
    /// gap. Removes the key's entry when it was the last member.
    ///
    /// A key's [`Wake`] cursor walks the list from the end, so a `swap_remove` never moves an
    /// unvisited member out of the part still to visit (see [`WakeScope::Key`]).
    fn leave_key(&mut self, key: &Arc<str>, at: u32, slot: u32) {
        let Some(entry) = self.keys.get_mut(key) else {
            return;
        };
        let at = at as usize;
        debug_assert_eq!(entry.members.get(at).map(|m| m.slot), Some(slot));
        #[cfg(test)]
        {
            self.member_visits += 1;
        }
        entry.members.swap_remove(at);
        match entry.members.get(at) {
            Some(moved) => {
                if let Some(sub) = self
                    .clients
                    .get_mut(moved.slot as usize)
                    .and_then(|client| client.keys.get_mut(moved.sub as usize))
                {
                    sub.at = at as u32;
                }
            }
            None if entry.members.is_empty() => {
                self.keys.remove(key);
            }
            None => {}
        }
    }

    /// Takes the client in `slot` out of the member list of `name`, where it is at index `at`
    /// (its `name_at`): O(1), as [`leave_key`](Self::leave_key). Removes the name's entry when it
    /// was the last member.
    fn leave_name(&mut self, name: &Arc<str>, at: u32, slot: u32) {
        let Some(members) = self.names.get_mut(name) else {
            return;
        };
        let at = at as usize;
        debug_assert_eq!(members.get(at), Some(&slot));
        #[cfg(test)]
        {
            self.member_visits += 1;
        }
        members.swap_remove(at);
        match members.get(at) {
            Some(&moved) => {
                if let Some(client) = self.clients.get_mut(moved as usize) {
                    client.name_at = at as u32;
                }
            }
            None if members.is_empty() => {
                self.names.remove(name);
            }
            None => {}
        }
    }

    /// Removes the client in `slot`; returns the waker of its stream, to wake outside the lock.
    fn remove_slot(&mut self, slot: u32) -> Option<Waker> {
        let client = self.clients.try_remove(slot as usize)?;
        self.by_id.remove(&client.id);
        if client.generation != 0 {
            self.attached -= 1;
        }
        self.queued -= client.undelivered();
        if let Some(name) = &client.name {
            self.leave_name(name, client.name_at, slot);
        }
        self.subscriptions -= client.keys.len();
        for sub in &client.keys {
            self.leave_key(&sub.key, sub.at, slot);
        }
        client.waker
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

#[derive(Debug)]
enum WakeScope {
    Done,
    /// Members of the key, visited from the end of its member list: those at indexes below
    /// `remaining` are still to visit.
    ///
    /// Members leave by `swap_remove` (`State::leave_key`): the last member moves into the gap.
    /// The last member is either visited already (at or above `remaining`), then moving it down
    /// at most visits it again (a spurious wake, harmless: a wake delivers nothing, the stream
    /// reads what is its own), or it is the last unvisited one, and then the gap it moves to is
    /// below it, still to visit. So no unvisited member is ever skipped. Members that join
    /// meanwhile are pushed above `remaining` and not visited (they subscribed after the event
    /// and are not its recipients), unless a later `swap_remove` moves one down: a spurious wake
    /// again.
    Key {
        key: Arc<str>,
        remaining: usize,
    },
    /// Every slot from `next` on.
    All {
        next: usize,
    },
}

/// Wakes the streams of an event's recipients, a slice at a time ([`Slice`]). Dropping it wakes
/// the rest at once.
#[derive(Debug)]
pub struct Wake {
    hub: Hub,
    scope: WakeScope,
    wakers: Vec<Waker>,
}

impl Wake {
    fn done(hub: Hub) -> Self {
        Self {
            hub,
            scope: WakeScope::Done,
            wakers: Vec::new(),
        }
    }
}

impl Slice for Wake {
    fn step(&mut self, budget: usize) -> Progress {
        let budget = budget.max(1);
        let progress = {
            let mut state = self.hub.lock();
            let state = &mut *state;
            match &mut self.scope {
                WakeScope::Done => Progress::Done,
                WakeScope::Key { key, remaining } => {
                    // Visiting from the end: a member removed meanwhile (swap_remove) moves an
                    // already visited member down, never skips an unvisited one; members added
                    // meanwhile subscribed after the event and are not its recipients.
                    let members = state.keys.get(&**key).map_or(&[][..], |e| &e.members[..]);
                    *remaining = (*remaining).min(members.len());
                    let from = remaining.saturating_sub(budget);
                    for member in &members[from..*remaining] {
                        if let Some(waker) = state
                            .clients
                            .get_mut(member.slot as usize)
                            .and_then(|c| c.waker.take())
                        {
                            self.wakers.push(waker);
                        }
                    }
                    *remaining = from;
                    if from == 0 {
                        Progress::Done
                    } else {
                        Progress::More
                    }
                }
                WakeScope::All { next } => {
                    let end = state.clients.capacity().min(next.saturating_add(budget));
                    for slot in *next..end {
                        if let Some(waker) =
                            state.clients.get_mut(slot).and_then(|c| c.waker.take())
                        {
                            self.wakers.push(waker);
                        }
                    }
                    *next = end;
                    if end >= state.clients.capacity() {
                        Progress::Done
                    } else {
                        Progress::More
                    }
                }
            }
        };
        if progress == Progress::Done {
            self.scope = WakeScope::Done;
        }
        wake_all(&mut self.wakers);
        progress
    }
}

impl Drop for Wake {
    fn drop(&mut self) {
        while self.step(DEFAULT_SLICE) == Progress::More {}
    }
}

/// A sweep in progress ([`Hub::sweep`], [`Hub::clear`]), stepped as a [`Slice`].
///
/// A step's budget counts a client visited as 1 and a client removed as 16 (removals are that
/// much dearer): a step of [`DEFAULT_SLICE`] scans 4,096 clients, or removes 256, in about the
/// same time. A step stops before a removal that would exceed its budget, but always does some
/// work: with a budget under 16, it removes at most one client.
#[derive(Debug)]
pub struct Sweep {
    hub: Hub,
    next: usize,
    removed: usize,
    all: bool,
    wakers: Vec<Waker>,
}

impl Sweep {
    /// Clients removed so far.
    pub fn removed(&self) -> usize {
        self.removed
    }
}

impl Slice for Sweep {
    fn step(&mut self, budget: usize) -> Progress {
        let budget = budget.max(1);
        let progress = {
            let mut state = self.hub.lock();
            let config = &self.hub.inner.config;
            let grace = duration_ms(config.grace);
            let ttl = duration_ms(config.unattached_ttl);
            let end = state.clients.capacity();
            let now_ms = state.now_ms;
            let mut spent = 0;
            while self.next < end && spent < budget {
                let stale = match state.clients.get_mut(self.next) {
                    None => false,
                    Some(_) if self.all => true,
                    Some(client) if client.generation != 0 => false,
                    Some(client) if client.unstamped => {
                        // Its stream ended at the hub's `now` then or later: if a later `now`
                        // has been seen since (and the advance did not get to it), the end was
                        // no later than that, and its grace period starts now. Either way it is
                        // not stale yet.
                        if now_ms > client.last_seen_ms {
                            client.last_seen_ms = now_ms;
                            client.unstamped = false;
                        }
                        false
                    }
                    Some(client) => {
                        let idle = now_ms.saturating_sub(client.last_seen_ms);
                        idle > if client.has_attached { grace } else { ttl }
                    }
                };
                if stale {
                    if spent > 0 && spent + REMOVAL_COST > budget {
                        break; // the next step removes it
                    }
                    if let Some(waker) = state.remove_slot(self.next as u32) {
                        self.wakers.push(waker);
                    }
                    self.removed += 1;
                    if self.all {
                        state.removed += 1;
                    } else {
                        state.swept += 1;
                    }
                    spent += REMOVAL_COST;
                } else {
                    spent += 1;
                }
                self.next += 1;
            }
            if self.next >= end {
                Progress::Done
            } else {
                Progress::More
            }
        };
        wake_all(&mut self.wakers);
        progress
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn itoa(n: u64) -> String {
    n.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Clients that all share one name and one key, issued at `now` and never attached.
    fn crowd(hub: &Hub, n: usize, key: &EventName, now: Instant) -> Vec<ClientId> {
        (0..n)
            .map(|_| {
                let id = hub.issue(Some("crowd"), now).unwrap();
                hub.subscribe(id, key).unwrap();
                id
            })
            .collect()
    }

    /// The membership indexes and the end-of-stream flag fit in the record's padding: it stays
    /// 152 bytes on 64-bit targets (the memory table of the crate README).
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn the_client_record_does_not_grow() {
        assert!(size_of::<Client>() <= 152, "{}", size_of::<Client>());
    }

    /// After many streams are dropped at once, one `advance` stamps at most
    /// `STAMPS_PER_ADVANCE` of them; later ones stamp the rest, as does a sweep visiting them.
    #[test]
    fn a_mass_disconnect_is_stamped_a_bounded_number_at_a_time() {
        let hub = Hub::default();
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let n = 2 * STAMPS_PER_ADVANCE + 10;
        let streams: Vec<_> = (0..n)
            .map(|_| hub.attach(hub.issue(None, t0).unwrap(), None, t0).unwrap())
            .collect();
        drop(streams);
        let stamped_at = |ms: u64| {
            let state = hub.lock();
            let unstamped = state.clients.iter().filter(|(_, c)| c.unstamped).count();
            let at_ms = state
                .clients
                .iter()
                .filter(|(_, c)| c.has_attached && !c.unstamped && c.last_seen_ms == ms)
                .count();
            (unstamped, at_ms)
        };
        assert_eq!(stamped_at(0), (n, 0));
        hub.issue(None, at(1_000)).unwrap();
        assert_eq!(
            stamped_at(1_000),
            (n - STAMPS_PER_ADVANCE, STAMPS_PER_ADVANCE)
        );
        let _ = hub.sweep(at(2_000)); // not stepped: its advance stamps
        assert_eq!(stamped_at(2_000), (10, STAMPS_PER_ADVANCE));
        // The advances of these calls, at the same time, stamp the 10 left; a stream dropped at
        // the current time is not stamped by an advance to that time.
        let late = hub.attach(hub.issue(None, at(2_000)).unwrap(), None, at(2_000));
        drop(late);
        assert_eq!(stamped_at(2_000), (1, STAMPS_PER_ADVANCE + 10));
        // A stepped sweep stamps whatever the advances did not get to (here: the hints lost).
        hub.lock().ended.clear();
        let mut sweep = hub.sweep(at(3_000));
        while sweep.step(DEFAULT_SLICE) == Progress::More {}
        assert_eq!(sweep.removed(), 0);
        assert_eq!(stamped_at(3_000), (0, 1));
    }

    /// Taking a client out of the member list of a key or a name it shares with many others is
    /// constant work, however long the list: counted by the member entries looked at, not timed.
    #[test]
    fn removal_from_a_shared_key_or_name_is_constant_work() {
        const N: usize = 4000;
        let hub = Hub::new(Config {
            max_name_members: N,
            ..Config::default()
        });
        let t0 = Instant::now();
        let key = EventName::from_static("k");
        let visits = || hub.lock().member_visits;

        // Unsubscribing: one entry each.
        let ids = crowd(&hub, N, &key, t0);
        for id in &ids[..N / 2] {
            assert_eq!(hub.unsubscribe(*id, &key), Ok(true));
        }
        assert!(
            visits() <= N / 2,
            "unsubscribing {} took {}",
            N / 2,
            visits()
        );
        // Removing: one entry for the name, one for each key.
        let before = visits();
        for id in &ids[N / 2..N / 2 + 100] {
            hub.remove(*id).unwrap();
        }
        assert!(
            visits() - before <= 200,
            "removing 100 took {}",
            visits() - before
        );
        // A stale sweep, in slot order: 1,900 clients with a key and a name, 2,000 with a name.
        let before = visits();
        let mut sweep = hub.sweep(t0 + Duration::from_secs(3600));
        while sweep.step(DEFAULT_SLICE) == Progress::More {}
        assert_eq!(sweep.removed(), N - 100);
        let most = (N / 2 - 100) * 2 + N / 2;
        assert!(
            visits() - before <= most,
            "sweeping took {}",
            visits() - before
        );
        assert_eq!(hub.stats().keys, 0);

        // Clearing.
        crowd(&hub, N, &key, t0);
        let before = visits();
        let mut clear = hub.clear();
        while clear.step(DEFAULT_SLICE) == Progress::More {}
        assert_eq!(clear.removed(), N);
        assert!(
            visits() - before <= 2 * N,
            "clearing took {}",
            visits() - before
        );
        let stats = hub.stats();
        assert_eq!((stats.clients, stats.keys, stats.subscriptions), (0, 0, 0));
        assert!(hub.lock().names.is_empty());
    }
}
