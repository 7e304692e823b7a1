//! The sans-IO core of the hub: a plain `&mut self` state machine holding the client table, the
//! name and key indexes, the shared history and the cursors' positions. No `Arc` to share it,
//! no lock, no `Waker`, no clock: time comes in as `now`, and every method that makes a stream
//! ready says which ([`StreamKey`]s), for the caller to wake.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use slab::Slab;
use sse_codec::{EventId, EventName, Frame};

use crate::config::Config;
use crate::id::ClientId;
use crate::types::{ClientInfo, Error, PublishedTo, RESET, Stats, Target};
use crate::work::Progress;

/// The hub's state machine, without any sharing, locking or waking: what [`Hub`](crate::Hub)
/// wraps in its lock.
///
/// It follows the pattern of quinn-proto's `Connection`: it does no I/O and reads no clock.
/// Operations that need the time take `now`; the ones that make a stream ready (a frame, or its
/// end) push that stream's [`StreamKey`] to a `woken` list, or return it, for the caller to wake
/// whatever task polls it; [`poll_timeout`](Self::poll_timeout) says when the next client
/// expires, so that the caller can run a [`sweep`](Self::sweep) then. A stream is read with
/// [`poll`](Self::poll): a frame, nothing yet ([`Polled::Pending`]: wait until its key is
/// woken), or its end.
///
/// Its delivery, replay, reset and time rules are the [`Hub`](crate::Hub)'s (see there): the
/// hub only shares this state between tasks, keeps the wakers, and wakes them.
///
/// ```
/// use std::time::Instant;
/// use sse_registry::{Config, Polled, Progress, State, Target};
///
/// let mut state = State::new(Config::default());
/// let now = Instant::now();
/// let id = state.issue(None, now).unwrap();
/// let stream = state.attach(id, None, now).unwrap().stream;
/// assert!(matches!(state.poll(stream), Polled::Pending));
///
/// let mut woken = Vec::new();
/// let mut published = state.publish(Target::All, None, "hi", &mut woken);
/// while state.wake_step(&mut published.wake, 1024, &mut woken) == Progress::More {}
/// assert_eq!(woken, [stream]); // wake the task polling `stream`
/// let Polled::Frame(frame) = state.poll(stream) else { panic!() };
/// assert_eq!(&frame[..], b"id: 1\ndata: hi\n\n");
/// ```
pub struct State {
    config: Config,
    epoch: Option<Instant>,
    /// The latest `now` given, in milliseconds since `epoch`.
    now_ms: u64,
    clients: Slab<Client>,
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
    seq: u64,
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
    /// Clients whose stream was dropped, with the `now_ms` then, in that order (so in
    /// non-decreasing `now_ms`): the next `advance` to a later time stamps them with it (see
    /// `Client::unstamped`). Hints only: an entry whose client was stamped, reattached or
    /// removed since is skipped.
    ended: VecDeque<(u32, u64)>,
    /// When each client that never attached was issued, in non-decreasing time: the
    /// earliest valid entry is the next to pass [`Config::unattached_ttl`]. Hints, as `ended`.
    unattached_since: VecDeque<(u64, u32)>,
    /// When each detached client's grace started (it was stamped), in non-decreasing time: the
    /// earliest valid entry is the next to pass [`Config::grace`]. Hints, as `ended`.
    detached_since: VecDeque<(u64, u32)>,
    /// Member-list entries touched to take clients out of key and name member lists: the work
    /// `leave_key` and `leave_name` do, which the tests bound.
    #[cfg(test)]
    pub(crate) member_visits: usize,
}

/// One stream of one client: what [`State::poll`] reads and what a wake-up names. A client's
/// new stream (a reconnect) has a new key; the old one reads as ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamKey {
    slot: u32,
    generation: u64,
}

impl StreamKey {
    #[cfg(test)]
    pub(crate) fn new(slot: u32, generation: u64) -> Self {
        Self { slot, generation }
    }

    /// The client's index in the hub's table: keys of the same client's successive streams, and
    /// of a later client that reuses a removed one's place, share it. Below
    /// [`State::slots`].
    pub fn slot(self) -> usize {
        self.slot as usize
    }

    /// Which of the streams with this slot it is: never 0, and never the same twice in one
    /// hub.
    pub fn generation(self) -> u64 {
        self.generation
    }
}

/// What [`State::poll`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Polled {
    /// The stream's next frame.
    Frame(Bytes),
    /// Nothing yet: the stream's key will be woken when there is.
    Pending,
    /// The stream has ended (replaced, or its client removed).
    Ended,
}

/// What [`State::attach`] opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Attached {
    /// The new stream.
    pub stream: StreamKey,
    /// The stream it replaced, which has ended: wake it so that its reader sees the end.
    pub replaced: Option<StreamKey>,
    /// What [`ClientStream::resumes_after`](crate::ClientStream::resumes_after) says.
    pub resumes_after: u64,
}

/// What [`State::publish`] did: the event's sequence number and recipients, and the wake-up of
/// those that read the shared history, to step with [`State::wake_step`].
#[derive(Debug)]
#[must_use = "step `wake` with `State::wake_step`: its recipients are not woken yet"]
#[non_exhaustive]
pub struct Published {
    /// The event's sequence number: its SSE id.
    pub seq: u64,
    /// How many clients it was addressed to.
    pub recipients: usize,
    /// The recipients still to wake.
    pub wake: WakeCursor,
}

/// The recipients of a published event still to wake, a slice at a time
/// ([`State::wake_step`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WakeCursor {
    scope: WakeScope,
}

#[derive(Debug, Clone, PartialEq, Eq)]
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

impl WakeCursor {
    /// A cursor with nothing to wake.
    pub fn done() -> Self {
        Self {
            scope: WakeScope::Done,
        }
    }

    /// Whether it wakes every client, slot by slot from [`next_slot`](Self::next_slot) (an
    /// event for everyone): a sharing layer that keeps its wakers by slot may then wake them
    /// without asking the state.
    pub fn is_all(&self) -> bool {
        matches!(self.scope, WakeScope::All { .. })
    }

    /// For a cursor that [`is_all`](Self::is_all), the first slot still to wake.
    pub fn next_slot(&self) -> usize {
        match self.scope {
            WakeScope::All { next } => next,
            _ => 0,
        }
    }

    /// For a cursor that [`is_all`](Self::is_all), records that the slots below `next` are
    /// woken, or (`done`) that all are.
    pub fn advance_to(&mut self, next: usize, done: bool) {
        if done {
            self.scope = WakeScope::Done;
        } else if let WakeScope::All { next: at } = &mut self.scope {
            *at = (*at).max(next);
        }
    }

    /// Whether there is nothing more to wake.
    pub fn is_done(&self) -> bool {
        self.scope == WakeScope::Done
    }
}

/// A sweep in progress ([`State::sweep`], [`State::clear`]), stepped with
/// [`State::sweep_step`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepCursor {
    next: usize,
    removed: usize,
    all: bool,
}

impl SweepCursor {
    /// Clients removed so far.
    pub fn removed(&self) -> usize {
        self.removed
    }
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
    generation: u64,
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
}

impl Client {
    fn undelivered(&self) -> usize {
        self.queue.len() - self.delivered
    }

    fn stream(&self, slot: u32) -> Option<StreamKey> {
        (self.generation != 0).then_some(StreamKey {
            slot,
            generation: self.generation,
        })
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

    /// Whether it is detached and stamped with `ms`, that is, an entry `(ms, _)` of
    /// `State::detached_since` (`attached: true`) or `unattached_since` (`false`) is its.
    fn idle_since(&self, ms: u64, attached: bool) -> bool {
        self.generation == 0
            && !self.unstamped
            && self.last_seen_ms == ms
            && self.has_attached == attached
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
/// as 16, a [`DEFAULT_SLICE`](crate::DEFAULT_SLICE) step removes at most 256 clients and takes
/// about as long as one that only scans 4,096 (p99 about 150 µs at 1,000,000 clients; see the
/// crate README's benchmarks).
pub(crate) const REMOVAL_COST: usize = 16;

/// Most clients whose stream was dropped that one `advance` (any call given a `now`) stamps with
/// the new time, to bound the work after many streams end at once; the rest are stamped by the
/// next advances, or by a sweep visiting them. Each is a random access to a client record: 1,024
/// take at most about 300 µs on the reference machine.
pub(crate) const STAMPS_PER_ADVANCE: usize = 1024;

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("State")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Default for State {
    fn default() -> Self {
        Self::new(Config::default())
    }
}

impl State {
    /// An empty state.
    pub fn new(config: Config) -> Self {
        Self {
            config,
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
            unattached_since: VecDeque::new(),
            detached_since: VecDeque::new(),
            #[cfg(test)]
            member_visits: 0,
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The last sequence number used (0 before any event).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// One more than the highest slot a client has had: every [`StreamKey::slot`] is below it.
    pub fn slots(&self) -> usize {
        self.clients.capacity()
    }

    /// Records `now` as the latest time (if it is later), and stamps clients whose stream was
    /// dropped before it. Every method given a `now` calls it.
    pub fn advance(&mut self, now: Instant) {
        let epoch = *self.epoch.get_or_insert(now);
        let ms = now.saturating_duration_since(epoch).as_millis();
        self.now_ms = self.now_ms.max(u64::try_from(ms).unwrap_or(u64::MAX));
        self.stamp_ended();
    }

    /// When the next client known to be idle passes its limit: [`Config::grace`] after its
    /// stream ended, or [`Config::unattached_ttl`] after it was issued without attaching. A
    /// [`sweep`](Self::sweep) as of that time or later removes it. `None` when no client is
    /// idle, or none has been given a time yet.
    ///
    /// A stream dropped since the latest `now` is not counted: its grace starts at the next
    /// `now` given (see [Time](crate::Hub#time)), after which it is.
    ///
    /// Bounded work: the deadlines are kept as hints in the order they were set, and one call
    /// drops at most 1,024 stale hints (clients that attached or went since);
    /// past that it answers the earliest hint's time, which is no later than the true deadline
    /// (a sweep then finds nothing to remove, and the next call gets further). Under a churn of
    /// more than twice as many idle periods as clients, the oldest hints are dropped: those
    /// clients are then found by a later sweep, never removed early.
    #[must_use]
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        let epoch = self.epoch?;
        let grace = duration_ms(self.config.grace);
        let ttl = duration_ms(self.config.unattached_ttl);
        let detached = self.first_idle(true).map(|ms| ms.saturating_add(grace));
        let unattached = self.first_idle(false).map(|ms| ms.saturating_add(ttl));
        let due = match (detached, unattached) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        // A sweep removes a client idle for more than its limit, in whole milliseconds.
        epoch.checked_add(Duration::from_millis(due.saturating_add(1)))
    }

    /// The earliest time at which a detached (`attached`) or never attached client still idle
    /// became so, dropping (a bounded number of) the stale hints in front of it; or a lower
    /// bound of it.
    fn first_idle(&mut self, attached: bool) -> Option<u64> {
        let clients = &self.clients;
        let queue = if attached {
            &mut self.detached_since
        } else {
            &mut self.unattached_since
        };
        for _ in 0..STAMPS_PER_ADVANCE {
            let &(ms, slot) = queue.front()?;
            if clients
                .get(slot as usize)
                .is_some_and(|c| c.idle_since(ms, attached))
            {
                return Some(ms);
            }
            queue.pop_front();
        }
        // Stale hints left: the earliest is a lower bound.
        queue.front().map(|&(ms, _)| ms)
    }

    /// Records that the client in `slot` became idle at the current time (detached and stamped,
    /// or issued). The hints stay within twice the clients (plus [`STAMPS_PER_ADVANCE`]): past
    /// that, each new one drops the two oldest (most likely stale; if not, that client's
    /// deadline is left to a later sweep), O(1).
    fn push_idle(&mut self, slot: u32, attached: bool) {
        let bound = 2 * self.clients.len() + STAMPS_PER_ADVANCE;
        let queue = if attached {
            &mut self.detached_since
        } else {
            &mut self.unattached_since
        };
        if queue.len() > bound {
            queue.pop_front();
            queue.pop_front();
        }
        queue.push_back((self.now_ms, slot));
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
                    self.push_idle(slot, true);
                }
            }
        }
    }

    /// Issues a new client id: as [`Hub::issue`](crate::Hub::issue).
    pub fn issue(&mut self, name: Option<&str>, now: Instant) -> Result<ClientId, Error> {
        self.advance(now);
        self.has_room(name)?;
        let mut id = ClientId::random();
        while self.by_id.contains_key(&id) {
            id = ClientId::random(); // 2^-122 per id; the loop documents the invariant
        }
        self.insert_client(id, name);
        self.issued += 1;
        Ok(id)
    }

    /// Adds a client with an id chosen elsewhere: as [`Hub::import`](crate::Hub::import).
    pub fn import(
        &mut self,
        id: ClientId,
        name: Option<&str>,
        now: Instant,
    ) -> Result<bool, Error> {
        self.advance(now);
        if self.by_id.contains_key(&id) {
            return Ok(false);
        }
        self.has_room(name)?;
        self.insert_client(id, name);
        Ok(true)
    }

    /// Whether one more client with this name (or without one) may be added now: as
    /// [`Hub::has_room`](crate::Hub::has_room).
    pub fn has_room(&self, name: Option<&str>) -> Result<(), Error> {
        if self.clients.len() >= self.config.max_clients {
            return Err(Error::Full);
        }
        if let Some(name) = name {
            let members = self.names.get(name).map_or(0, Vec::len);
            if members >= self.config.max_name_members {
                return Err(Error::NameFull);
            }
        }
        Ok(())
    }

    fn slot(&self, id: ClientId) -> Result<u32, Error> {
        self.by_id.get(&id).copied().ok_or(Error::UnknownClient)
    }

    /// Whether the state knows this id.
    pub fn contains(&self, id: ClientId) -> bool {
        self.by_id.contains_key(&id)
    }

    /// The keys the client is subscribed to.
    pub fn keys(&self, id: ClientId) -> Result<Vec<Arc<str>>, Error> {
        let slot = self.slot(id)?;
        Ok(self.clients[slot as usize]
            .keys
            .iter()
            .map(|sub| sub.key.clone())
            .collect())
    }

    /// The name the client was issued with.
    pub fn name(&self, id: ClientId) -> Result<Option<Arc<str>>, Error> {
        let slot = self.slot(id)?;
        Ok(self.clients[slot as usize].name.clone())
    }

    /// Whether some client is subscribed to `key`.
    pub fn has_key(&self, key: &EventName) -> bool {
        self.keys.contains_key(key.as_str())
    }

    /// Opens the client's stream, replacing (and ending) any stream it had: as
    /// [`Hub::attach`](crate::Hub::attach). Wake [`Attached::replaced`].
    pub fn attach(
        &mut self,
        id: ClientId,
        last_event_id: Option<&str>,
        now: Instant,
    ) -> Result<Attached, Error> {
        self.advance(now);
        let slot = self.slot(id)?;
        let generation = self.next_generation;
        self.next_generation += 1;
        let (head, now_ms) = (self.seq, self.now_ms);
        let resume = last_event_id
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<u64>());
        let lost = match resume {
            None => false,
            Some(Ok(from)) if from <= head => {
                let client = &self.clients[slot as usize];
                from < client.trimmed_upto || client.behind(&self.keys, self.evicted_all, from)
            }
            Some(_) => true,
        };
        let client = &mut self.clients[slot as usize];
        let replaced = client.stream(slot);
        if replaced.is_none() {
            self.attached += 1;
        } else {
            self.replaced += 1;
        }
        client.generation = generation;
        client.has_attached = true;
        client.last_seen_ms = now_ms;
        client.unstamped = false;
        let before = client.undelivered();
        match resume {
            Some(Ok(from)) if !lost => {
                self.resumed += 1;
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
        let resumes_after = match resume {
            Some(Ok(from)) if !client.lagged => from,
            _ => head,
        };
        self.queued = self.queued + after - before;
        Ok(Attached {
            stream: StreamKey { slot, generation },
            replaced,
            resumes_after,
        })
    }

    /// Forgets a client: as [`Hub::remove`](crate::Hub::remove). Returns its stream, which has
    /// ended, to wake.
    pub fn remove(&mut self, id: ClientId) -> Result<Option<StreamKey>, Error> {
        let slot = self.slot(id)?;
        self.removed += 1;
        Ok(self.remove_slot(slot))
    }

    /// Ends the client's open stream as of `now`, opening none: as
    /// [`Hub::end_stream`](crate::Hub::end_stream). Returns the stream it ended, to wake.
    pub fn end_stream(&mut self, id: ClientId, now: Instant) -> Result<Option<StreamKey>, Error> {
        self.advance(now);
        let slot = self.slot(id)?;
        let client = &mut self.clients[slot as usize];
        let Some(stream) = client.stream(slot) else {
            return Ok(None);
        };
        // The stream sees a generation that is not its own and ends.
        client.generation = 0;
        client.last_seen_ms = self.now_ms;
        client.unstamped = false;
        self.attached -= 1;
        self.push_idle(slot, true);
        Ok(Some(stream))
    }

    /// The stream has ended (its reader dropped or closed it): the client is detached, if that
    /// stream was its current one. With `now`, its grace counts from `now`; without, from the
    /// next `now` given (see [Time](crate::Hub#time)).
    pub fn detach(&mut self, stream: StreamKey, now: Option<Instant>) {
        if let Some(now) = now {
            self.advance(now);
        }
        let now_ms = self.now_ms;
        let Some(client) = self.clients.get_mut(stream.slot as usize) else {
            return;
        };
        if client.generation != stream.generation {
            return;
        }
        client.generation = 0;
        client.last_seen_ms = now_ms;
        client.unstamped = now.is_none();
        self.attached -= 1;
        if now.is_some() {
            self.push_idle(stream.slot, true);
        } else {
            // Each client is in `ended` at most once per detach, and detaches at most once per
            // attach, which advances: more entries than this mean the time given has not moved
            // through a long churn. Drop the hints then; sweeps still stamp everyone.
            if self.ended.len() > 2 * self.clients.len() + STAMPS_PER_ADVANCE {
                self.ended.clear();
            }
            self.ended.push_back((stream.slot, now_ms));
        }
    }

    /// Subscribes a client to a key; `false` if it already was: as
    /// [`Hub::subscribe`](crate::Hub::subscribe).
    pub fn subscribe(&mut self, id: ClientId, key: &EventName) -> Result<bool, Error> {
        let slot = self.slot(id)?;
        let client = &mut self.clients[slot as usize];
        if client.keys.iter().any(|sub| &*sub.key == key.as_str()) {
            return Ok(false);
        }
        if client.keys.len() >= self.config.max_keys_per_client {
            return Err(Error::TooManyKeys);
        }
        let interned = match self.keys.get_key_value(key.as_str()) {
            Some((k, _)) => k.clone(),
            None => Arc::from(key.as_str()),
        };
        let entry = self.keys.entry(interned.clone()).or_insert(KeyEntry {
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
            since: self.seq,
            at,
        });
        self.subscriptions += 1;
        Ok(true)
    }

    /// Unsubscribes a client from a key, at once; `false` if it was not subscribed: as
    /// [`Hub::unsubscribe`](crate::Hub::unsubscribe).
    pub fn unsubscribe(&mut self, id: ClientId, key: &EventName) -> Result<bool, Error> {
        let slot = self.slot(id)?;
        let client = &mut self.clients[slot as usize];
        let Some(at) = client.keys.iter().position(|sub| &*sub.key == key.as_str()) else {
            return Ok(false);
        };
        let sub = client.keys.swap_remove(at);
        // The client's last subscription moved to `at`: its key's member entry follows.
        if let Some(moved) = client.keys.get(at) {
            if let Some(entry) = self.keys.get_mut(&moved.key) {
                entry.members[moved.at as usize].sub = at as u32;
            }
        }
        self.subscriptions -= 1;
        self.leave_key(&sub.key, sub.at, slot);
        Ok(true)
    }

    /// Publishes an event with the next sequence number: as
    /// [`Hub::publish`](crate::Hub::publish). The streams of the client or name it is for are
    /// pushed to `woken`; those of a key's subscribers or of everyone are the returned cursor's,
    /// for [`wake_step`](Self::wake_step).
    pub fn publish(
        &mut self,
        target: Target<'_>,
        event: Option<&EventName>,
        data: &str,
        woken: &mut Vec<StreamKey>,
    ) -> Published {
        let seq = self.seq + 1;
        self.deliver_at(seq, target, event, data, woken)
    }

    /// Delivers an event whose sequence number was chosen elsewhere: as
    /// [`Hub::deliver`](crate::Hub::deliver), and otherwise as [`publish`](Self::publish).
    pub fn deliver(
        &mut self,
        seq: u64,
        target: Target<'_>,
        event: Option<&EventName>,
        data: &str,
        woken: &mut Vec<StreamKey>,
    ) -> Result<Published, Error> {
        if seq <= self.seq {
            return Err(Error::StaleSeq);
        }
        Ok(self.deliver_at(seq, target, event, data, woken))
    }

    fn deliver_at(
        &mut self,
        seq: u64,
        target: Target<'_>,
        event: Option<&EventName>,
        data: &str,
        woken: &mut Vec<StreamKey>,
    ) -> Published {
        self.seq = seq;
        self.published += 1;
        let kind = &mut self.published_to;
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
        let (recipients, scope) = match target {
            Target::Client(id) => match self.by_id.get(&id).copied() {
                Some(slot) => {
                    self.enqueue(slot, seq, &frame, woken);
                    (1, WakeScope::Done)
                }
                None => (0, WakeScope::Done),
            },
            Target::Name(name) => match self.names.get(name) {
                Some(members) => {
                    let members = members.clone();
                    for &slot in &members {
                        self.enqueue(slot, seq, &frame, woken);
                    }
                    (members.len(), WakeScope::Done)
                }
                None => (0, WakeScope::Done),
            },
            Target::Key(key) => match self.keys.get_key_value(key.as_str()) {
                None => (0, WakeScope::Done),
                Some((interned, entry)) => {
                    let (interned, count) = (interned.clone(), entry.members.len());
                    self.append_shared(seq, Some(interned.clone()), frame);
                    (
                        count,
                        WakeScope::Key {
                            key: interned,
                            remaining: count,
                        },
                    )
                }
            },
            Target::All => {
                self.append_shared(seq, None, frame);
                (self.clients.len(), WakeScope::All { next: 0 })
            }
        };
        Published {
            seq,
            recipients,
            wake: WakeCursor { scope },
        }
    }

    /// Visits at most `budget` (at least 1) of the cursor's recipients, pushing their open
    /// streams to `woken`. Reads the state only: a sharing layer may run it under a shared lock.
    pub fn wake_step(
        &self,
        cursor: &mut WakeCursor,
        budget: usize,
        woken: &mut Vec<StreamKey>,
    ) -> Progress {
        let budget = budget.max(1);
        let progress = match &mut cursor.scope {
            WakeScope::Done => Progress::Done,
            WakeScope::Key { key, remaining } => {
                // Visiting from the end: a member removed meanwhile (swap_remove) moves an
                // already visited member down, never skips an unvisited one; members added
                // meanwhile subscribed after the event and are not its recipients.
                let members = self.keys.get(&**key).map_or(&[][..], |e| &e.members[..]);
                *remaining = (*remaining).min(members.len());
                let from = remaining.saturating_sub(budget);
                for member in &members[from..*remaining] {
                    if let Some(stream) = self
                        .clients
                        .get(member.slot as usize)
                        .and_then(|c| c.stream(member.slot))
                    {
                        woken.push(stream);
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
                let end = self.clients.capacity().min(next.saturating_add(budget));
                for slot in *next..end {
                    if let Some(stream) = self.clients.get(slot).and_then(|c| c.stream(slot as u32))
                    {
                        woken.push(stream);
                    }
                }
                *next = end;
                if end >= self.clients.capacity() {
                    Progress::Done
                } else {
                    Progress::More
                }
            }
        };
        if progress == Progress::Done {
            cursor.scope = WakeScope::Done;
        }
        progress
    }

    /// A stale sweep as of `now`: as [`Hub::sweep`](crate::Hub::sweep). Step it with
    /// [`sweep_step`](Self::sweep_step).
    pub fn sweep(&mut self, now: Instant) -> SweepCursor {
        self.advance(now);
        SweepCursor {
            next: 0,
            removed: 0,
            all: false,
        }
    }

    /// A sweep that removes every client: as [`Hub::clear`](crate::Hub::clear).
    pub fn clear(&self) -> SweepCursor {
        SweepCursor {
            next: 0,
            removed: 0,
            all: true,
        }
    }

    /// Does at most `budget` units of the sweep (a client visited counts 1, one removed 16; at
    /// least one unit), pushing the streams of the clients it removes, which have ended, to
    /// `woken`.
    pub fn sweep_step(
        &mut self,
        cursor: &mut SweepCursor,
        budget: usize,
        woken: &mut Vec<StreamKey>,
    ) -> Progress {
        let budget = budget.max(1);
        let grace = duration_ms(self.config.grace);
        let ttl = duration_ms(self.config.unattached_ttl);
        let end = self.clients.capacity();
        let now_ms = self.now_ms;
        let mut spent = 0;
        while cursor.next < end && spent < budget {
            let stale = match self.clients.get_mut(cursor.next) {
                None => false,
                Some(_) if cursor.all => true,
                Some(client) if client.generation != 0 => false,
                Some(client) if client.unstamped => {
                    // Its stream ended at the hub's `now` then or later: if a later `now`
                    // has been seen since (and the advance did not get to it), the end was
                    // no later than that, and its grace period starts now. Either way it is
                    // not stale yet.
                    if now_ms > client.last_seen_ms {
                        client.last_seen_ms = now_ms;
                        client.unstamped = false;
                        self.push_idle(cursor.next as u32, true);
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
                if let Some(stream) = self.remove_slot(cursor.next as u32) {
                    woken.push(stream);
                }
                cursor.removed += 1;
                if cursor.all {
                    self.removed += 1;
                } else {
                    self.swept += 1;
                }
                spent += REMOVAL_COST;
            } else {
                spent += 1;
            }
            cursor.next += 1;
        }
        if cursor.next >= end {
            Progress::Done
        } else {
            Progress::More
        }
    }

    /// Counts for an admin view or metrics; O(1).
    pub fn stats(&self) -> Stats {
        Stats {
            clients: self.clients.len(),
            attached: self.attached,
            keys: self.keys.len(),
            queued: self.queued,
            history: self.shared.len(),
            seq: self.seq,
            published: self.published,
            lagged: self.lagged,
            subscriptions: self.subscriptions,
            swept: self.swept,
            issued: self.issued,
            removed: self.removed,
            replaced: self.replaced,
            resumed: self.resumed,
            delivered: self.delivered,
            published_to: self.published_to,
        }
    }

    /// Up to `limit` clients from `offset`: as [`Hub::list`](crate::Hub::list).
    pub fn list(&self, offset: usize, limit: usize) -> (Vec<ClientInfo>, Option<usize>) {
        let mut out = Vec::new();
        let end = self.clients.capacity();
        let mut slot = offset;
        while slot < end && out.len() < limit {
            if let Some(client) = self.clients.get(slot) {
                out.push(ClientInfo {
                    id: client.id,
                    name: client.name.clone(),
                    keys: client.keys.iter().map(|sub| sub.key.clone()).collect(),
                    attached: client.generation != 0,
                    idle: if client.unstamped {
                        Duration::ZERO
                    } else {
                        Duration::from_millis(self.now_ms.saturating_sub(client.last_seen_ms))
                    },
                    queued: client.undelivered(),
                });
            }
            slot += 1;
        }
        (out, (slot < end).then_some(slot))
    }

    /// The next frame of `stream`, or why there is none.
    pub fn poll(&mut self, stream: StreamKey) -> Polled {
        let Some(client) = self.clients.get_mut(stream.slot as usize) else {
            return Polled::Ended;
        };
        if client.generation != stream.generation {
            return Polled::Ended;
        }
        // Fallen behind the shared history?
        if client.lagged || client.behind(&self.keys, self.evicted_all, client.cursor) {
            client.lagged = false;
            self.lagged += 1;
            self.queued -= client.undelivered();
            client.trimmed_upto = client.queue.back().map_or(client.trimmed_upto, |(s, _)| *s);
            client.queue.clear();
            client.delivered = 0;
            client.cursor = self.seq;
            self.delivered += 1;
            return Polled::Frame(reset_frame(self.seq));
        }
        // The next shared frame for this client, and the next frame of its own.
        let shared = next_shared(&self.shared, client);
        let own = client.queue.get(client.delivered);
        match (shared, own) {
            (Some(s), Some((seq, frame))) if *seq < s.seq => {
                let frame = frame.clone();
                client.delivered += 1;
                self.queued -= 1;
                self.delivered += 1;
                Polled::Frame(frame)
            }
            (None, Some((_, frame))) => {
                let frame = frame.clone();
                client.delivered += 1;
                self.queued -= 1;
                self.delivered += 1;
                Polled::Frame(frame)
            }
            (Some(s), _) => {
                client.cursor = s.seq;
                self.delivered += 1;
                Polled::Frame(s.frame.clone())
            }
            (None, None) => {
                client.cursor = self.seq;
                Polled::Pending
            }
        }
    }

    /// Whether [`poll`](Self::poll) would give `stream` a frame now (or its end): `false` means
    /// it would be [`Polled::Pending`], until the stream is woken.
    pub fn is_ready(&self, stream: StreamKey) -> bool {
        let Some(client) = self.clients.get(stream.slot as usize) else {
            return true;
        };
        client.generation != stream.generation
            || client.lagged
            || client.behind(&self.keys, self.evicted_all, client.cursor)
            || client.queue.len() > client.delivered
            || next_shared(&self.shared, client).is_some()
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
        });
        let slot = slot as u32; // max_clients keeps the slab far below u32::MAX in practice
        self.by_id.insert(id, slot);
        if let Some(name) = name {
            self.names.entry(name).or_default().push(slot);
        }
        self.push_idle(slot, false);
    }

    fn intern_name(&mut self, name: &str) -> Arc<str> {
        match self.names.get_key_value(name) {
            Some((k, _)) => k.clone(),
            None => Arc::from(name),
        }
    }

    fn enqueue(&mut self, slot: u32, seq: u64, frame: &Bytes, woken: &mut Vec<StreamKey>) {
        let Some(client) = self.clients.get_mut(slot as usize) else {
            return;
        };
        if client.lagged {
            // It will get a reset, which replaces everything queued.
            return;
        }
        if client.queue.len() >= self.config.queue_capacity {
            if client.delivered > 0 {
                // Make room by forgetting the oldest delivered frame (kept only for replay).
                if let Some((old, _)) = client.queue.pop_front() {
                    client.trimmed_upto = old;
                }
                client.delivered -= 1;
            } else {
                // Full of undelivered frames: a slow consumer.
                client.lagged = true;
                woken.extend(client.stream(slot));
                return;
            }
        }
        client.queue.push_back((seq, frame.clone()));
        self.queued += 1;
        woken.extend(client.stream(slot));
    }

    fn append_shared(&mut self, seq: u64, key: Option<Arc<str>>, frame: Bytes) {
        self.shared_bytes += frame.len();
        self.shared.push_back(Shared { seq, key, frame });
        while self.shared.len() > self.config.history_len.max(1)
            || (self.shared_bytes > self.config.history_bytes && self.shared.len() > 1)
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
    /// A key's wake cursor walks the list from the end, so a `swap_remove` never moves an
    /// unvisited member out of the part still to visit (see `WakeScope::Key`).
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

    /// Removes the client in `slot`; returns its stream, which has ended, to wake.
    fn remove_slot(&mut self, slot: u32) -> Option<StreamKey> {
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
        client.stream(slot)
    }
}

/// The next shared frame after the client's cursor that is its own.
fn next_shared<'a>(shared: &'a VecDeque<Shared>, client: &Client) -> Option<&'a Shared> {
    // A stream that keeps up reads at the end of the history: look there before searching.
    let len = shared.len();
    let start = match (
        shared.back(),
        len.checked_sub(2).and_then(|i| shared.get(i)),
    ) {
        (None, _) => return None,
        (Some(last), _) if last.seq <= client.cursor => return None,
        (Some(_), before) if before.is_none_or(|e| e.seq <= client.cursor) => len - 1,
        _ => shared.partition_point(|e| e.seq <= client.cursor),
    };
    shared.range(start..).find(|e| {
        e.key
            .as_ref()
            .is_none_or(|k| client.subscribed_to(k, e.seq))
    })
}

/// The frame a lagging or unresumable client gets: `event: reset`, id and data the current
/// sequence number.
fn reset_frame(seq: u64) -> Bytes {
    let text = itoa(seq);
    let id = EventId::new(text.clone()).unwrap_or_else(|_| EventId::from_static(""));
    Frame::new().event(&RESET).id(&id).data(&text).encode()
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
    use crate::work::DEFAULT_SLICE;

    /// Clients that all share one name and one key, issued at `now` and never attached.
    fn crowd(hub: &mut State, n: usize, key: &EventName, now: Instant) -> Vec<ClientId> {
        (0..n)
            .map(|_| {
                let id = hub.issue(Some("crowd"), now).unwrap();
                hub.subscribe(id, key).unwrap();
                id
            })
            .collect()
    }

    /// The membership indexes and the end-of-stream flag fit in the record's padding, and the
    /// waker lives in the hub's table: the record is 136 bytes on 64-bit targets (the memory
    /// table of the crate README).
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn the_client_record_does_not_grow() {
        assert!(size_of::<Client>() <= 136, "{}", size_of::<Client>());
    }

    /// After many streams are dropped at once, one `advance` stamps at most
    /// `STAMPS_PER_ADVANCE` of them; later ones stamp the rest, as does a sweep visiting them.
    #[test]
    fn a_mass_disconnect_is_stamped_a_bounded_number_at_a_time() {
        let mut state = State::default();
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let n = 2 * STAMPS_PER_ADVANCE + 10;
        let streams: Vec<_> = (0..n)
            .map(|_| {
                let id = state.issue(None, t0).unwrap();
                state.attach(id, None, t0).unwrap().stream
            })
            .collect();
        for stream in streams {
            state.detach(stream, None);
        }
        let stamped_at = |state: &State, ms: u64| {
            let unstamped = state.clients.iter().filter(|(_, c)| c.unstamped).count();
            let at_ms = state
                .clients
                .iter()
                .filter(|(_, c)| c.has_attached && !c.unstamped && c.last_seen_ms == ms)
                .count();
            (unstamped, at_ms)
        };
        assert_eq!(stamped_at(&state, 0), (n, 0));
        state.issue(None, at(1_000)).unwrap();
        assert_eq!(
            stamped_at(&state, 1_000),
            (n - STAMPS_PER_ADVANCE, STAMPS_PER_ADVANCE)
        );
        let _ = state.sweep(at(2_000)); // not stepped: its advance stamps
        assert_eq!(stamped_at(&state, 2_000), (10, STAMPS_PER_ADVANCE));
        // The advances of these calls, at the same time, stamp the 10 left; a stream dropped at
        // the current time is not stamped by an advance to that time.
        let id = state.issue(None, at(2_000)).unwrap();
        let late = state.attach(id, None, at(2_000)).unwrap().stream;
        state.detach(late, None);
        assert_eq!(stamped_at(&state, 2_000), (1, STAMPS_PER_ADVANCE + 10));
        // A stepped sweep stamps whatever the advances did not get to (here: the hints lost).
        state.ended.clear();
        let mut sweep = state.sweep(at(3_000));
        while state.sweep_step(&mut sweep, DEFAULT_SLICE, &mut Vec::new()) == Progress::More {}
        assert_eq!(sweep.removed(), 0);
        assert_eq!(stamped_at(&state, 3_000), (0, 1));
    }

    /// The deadline hints stay within twice the clients (plus [`STAMPS_PER_ADVANCE`]) however
    /// often one client reconnects, and `poll_timeout` still finds its deadline.
    #[test]
    fn deadline_hints_are_bounded_under_churn() {
        let mut state = State::default();
        let t0 = Instant::now();
        let id = state.issue(None, t0).unwrap();
        for ms in 0..10_000 {
            let now = t0 + Duration::from_millis(ms);
            let stream = state.attach(id, None, now).unwrap().stream;
            state.detach(stream, Some(now));
        }
        let bound = 2 * state.clients.len() + STAMPS_PER_ADVANCE + 1;
        assert!(
            state.detached_since.len() <= bound,
            "{}",
            state.detached_since.len()
        );
        assert!(state.unattached_since.len() <= bound);
        let last = t0 + Duration::from_millis(9_999);
        let due = last + state.config.grace + Duration::from_millis(1);
        // The first call may stop at a bounded number of stale hints, with an earlier time.
        assert!(state.poll_timeout().is_some_and(|t| t <= due));
        assert_eq!(state.poll_timeout(), Some(due));
        // Attached again: nobody is idle.
        let _stream = state.attach(id, None, last).unwrap();
        assert_eq!(state.poll_timeout(), None);
    }

    /// Taking a client out of the member list of a key or a name it shares with many others is
    /// constant work, however long the list: counted by the member entries looked at, not timed.
    #[test]
    fn removal_from_a_shared_key_or_name_is_constant_work() {
        const N: usize = 4000;
        let mut state = State::new(Config {
            max_name_members: N,
            ..Config::default()
        });
        let hub = &mut state;
        let t0 = Instant::now();
        let key = EventName::from_static("k");
        let visits = |hub: &State| hub.member_visits;

        // Unsubscribing: one entry each.
        let ids = crowd(hub, N, &key, t0);
        for id in &ids[..N / 2] {
            assert_eq!(hub.unsubscribe(*id, &key), Ok(true));
        }
        assert!(
            visits(hub) <= N / 2,
            "unsubscribing {} took {}",
            N / 2,
            visits(hub)
        );
        // Removing: one entry for the name, one for each key.
        let before = visits(hub);
        for id in &ids[N / 2..N / 2 + 100] {
            hub.remove(*id).unwrap();
        }
        assert!(
            visits(hub) - before <= 200,
            "removing 100 took {}",
            visits(hub) - before
        );
        // A stale sweep, in slot order: 1,900 clients with a key and a name, 2,000 with a name.
        let before = visits(hub);
        let mut sweep = hub.sweep(t0 + Duration::from_secs(3600));
        while hub.sweep_step(&mut sweep, DEFAULT_SLICE, &mut Vec::new()) == Progress::More {}
        assert_eq!(sweep.removed(), N - 100);
        let most = (N / 2 - 100) * 2 + N / 2;
        assert!(
            visits(hub) - before <= most,
            "sweeping took {}",
            visits(hub) - before
        );
        assert_eq!(hub.stats().keys, 0);

        // Clearing.
        crowd(hub, N, &key, t0);
        let before = visits(hub);
        let mut clear = hub.clear();
        while hub.sweep_step(&mut clear, DEFAULT_SLICE, &mut Vec::new()) == Progress::More {}
        assert_eq!(clear.removed(), N);
        assert!(
            visits(hub) - before <= 2 * N,
            "clearing took {}",
            visits(hub) - before
        );
        let stats = hub.stats();
        assert_eq!((stats.clients, stats.keys, stats.subscriptions), (0, 0, 0));
        assert!(hub.names.is_empty());
    }
}
