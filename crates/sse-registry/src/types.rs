//! The hub's public vocabulary: targets, errors, counts, and the admin view of a client.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use sse_codec::EventName;

use crate::id::ClientId;

/// The event name of the frame a client gets in place of frames it can no longer be given.
pub const RESET: EventName = EventName::from_static("reset");

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
    /// The hub holds [`Config::max_clients`](crate::Config::max_clients) clients already.
    Full,
    /// The client is subscribed to [`Config::max_keys_per_client`](crate::Config::max_keys_per_client) keys already.
    TooManyKeys,
    /// [`Hub::deliver`](crate::Hub::deliver) was given a sequence number not above the hub's current one.
    StaleSeq,
    /// The name already has [`Config::max_name_members`](crate::Config::max_name_members) clients: [`Hub::issue`](crate::Hub::issue) or
    /// [`Hub::import`](crate::Hub::import) refused another. Like [`Full`](Self::Full), a refusal to grow, not a bad
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
    /// [`clients`](Self::clients) × [`Config::max_keys_per_client`](crate::Config::max_keys_per_client).
    pub subscriptions: usize,
    /// Clients removed by stale sweeps.
    pub swept: u64,
    /// Clients issued since the hub was made ([`Hub::issue`](crate::Hub::issue); not [`Hub::import`](crate::Hub::import)).
    pub issued: u64,
    /// Clients removed on request since the hub was made ([`Hub::remove`](crate::Hub::remove), and the sweeps of
    /// [`Hub::clear`](crate::Hub::clear)); stale sweeps count in [`swept`](Self::swept).
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
    /// [Time](crate::Hub#time)): it is not known to have been idle any longer.
    pub idle: Duration,
    /// Frames in its own queue (events to it or its name) not yet delivered: at most
    /// [`Config::queue_capacity`](crate::Config::queue_capacity), past which it gets a reset.
    /// Frames for everyone or for its keys wait in the shared history and are not counted here.
    pub queued: usize,
}
