//! The seam for a cross-node backend: where the service sends what changes the hub.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;

use sse_codec::EventName;
use sse_registry::ClientId;

use crate::once::{Once, Published};

/// A boxed future borrowing its backend, as the methods of [`Backend`] return.
pub type BackendFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, BackendError>> + Send + 'a>>;

/// Where an event goes: an owned [`sse_registry::Target`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipients {
    /// One client.
    Client(ClientId),
    /// Every client of this name.
    Name(String),
    /// Every subscriber of this key.
    Key(EventName),
    /// Everyone.
    All,
}

/// One of a backend's measures, for [`Backend::metrics`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Metric {
    /// A value that goes up and down (a connection state as 0 or 1, a lag).
    Gauge {
        /// What it measures.
        help: &'static str,
        /// Its value now.
        value: u64,
    },
    /// A count that only goes up (appends, failures).
    Counter {
        /// What it counts.
        help: &'static str,
        /// Its value now.
        value: u64,
    },
}

/// Why a backend did not do what it was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendError {
    /// The hub refused the change (an unknown client, no room for another, too many keys): the
    /// service answers as it would for the in-memory hub (`404`, `503`, `429`, `400`).
    Refused(sse_registry::Error),
    /// The backend could not do it (its store unreachable, no answer in time): the service
    /// answers `503` with `reason`.
    Unavailable {
        /// What failed, in the backend's own words: it is sent to the peer, so it must never be
        /// a dependency's error text (which may name hosts, keys or ids); log that instead.
        reason: Cow<'static, str>,
        /// Whether the change may have been applied all the same (a write was sent, but its
        /// reply was lost): retrying may then apply it twice.
        maybe_applied: bool,
    },
}

impl BackendError {
    /// The backend could not do it, and nothing was applied.
    pub fn unavailable(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::Unavailable {
            reason: reason.into(),
            maybe_applied: false,
        }
    }

    /// The backend does not know whether the change was applied (a write was sent, but its
    /// reply was lost).
    pub fn maybe_applied(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::Unavailable {
            reason: reason.into(),
            maybe_applied: true,
        }
    }

    /// The same as [`unavailable`](Self::unavailable).
    pub fn new(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::unavailable(reason)
    }
}

impl From<sse_registry::Error> for BackendError {
    fn from(err: sse_registry::Error) -> Self {
        Self::Refused(err)
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused(err) => write!(f, "refused: {err}"),
            Self::Unavailable {
                reason,
                maybe_applied: false,
            } => f.write_str(reason),
            Self::Unavailable {
                reason,
                maybe_applied: true,
            } => write!(f, "{reason} (may have been applied)"),
        }
    }
}

impl std::error::Error for BackendError {}

/// Where the service sends what changes the hub: the in-memory [`LocalBackend`] (the
/// default), or a backend that makes several services act as one hub (see the `sse-redis`
/// crate).
///
/// Every route goes through the backend, so a handler has one path whatever the backend is. A
/// shared backend applies each change on every node's [`Hub`](sse_registry::Hub) (this one's
/// included) before it returns, and refuses what the hub would refuse with
/// [`BackendError::Refused`] (checking its own node's replica first: unknown ids, room, key
/// limits). An id the service's hub does not know is first [looked up](Self::lookup) in the
/// backend. The service still reads from its hub (streams, names, the admin list).
///
/// [`LocalBackend`]: crate::LocalBackend
pub trait Backend: Send + Sync + 'static {
    /// Issues a client id, known to every node once this returns.
    fn issue(&self, name: Option<String>) -> BackendFuture<'_, ClientId>;
    /// Subscribes the client to the key on every node.
    fn subscribe(&self, id: ClientId, key: EventName) -> BackendFuture<'_, ()>;
    /// Unsubscribes the client from the key on every node.
    fn unsubscribe(&self, id: ClientId, key: EventName) -> BackendFuture<'_, ()>;
    /// Forgets the client on every node, ending its stream wherever it is open.
    fn remove(&self, id: ClientId) -> BackendFuture<'_, ()>;
    /// Forgets every client on every node.
    fn clear(&self) -> BackendFuture<'_, ()>;
    /// Publishes an event to its recipients on every node; returns how many there were.
    fn publish(
        &self,
        to: Recipients,
        event: Option<EventName>,
        data: String,
    ) -> BackendFuture<'_, usize>;
    /// A stale sweep safe to run on every node at once; returns the clients it removed.
    fn sweep(&self) -> BackendFuture<'_, usize>;

    /// Publishes an event as [`publish`](Self::publish) does, unless a publish with the same
    /// key was made within `once.ttl` (on any node, for a shared backend): then it publishes
    /// nothing and answers [`Published::Replayed`]. The admin routes call it for a request
    /// with an `Idempotency-Key`, so that a publish retried after a lost answer is delivered
    /// once. The key is remembered only with the event (a publish that fails is not), and at
    /// most `once.capacity` keys are (`0`: none, and every publish is made).
    ///
    /// The default refuses (`503`): a backend that cannot tell a retry from a new event must
    /// not pretend to.
    fn publish_once(
        &self,
        once: Once,
        to: Recipients,
        event: Option<EventName>,
        data: String,
    ) -> BackendFuture<'_, Published> {
        let _ = (once, to, event, data);
        Box::pin(async {
            Err(BackendError::unavailable(
                "this backend cannot deduplicate publishes (Idempotency-Key)",
            ))
        })
    }

    /// Looks up a client this node's hub does not know in the backend's shared state (an id
    /// issued before this node started, whose record the shared log no longer holds, say) and,
    /// if it is there, adds it to the hub with its name and subscriptions. Returns whether the
    /// hub knows the client now; the service answers `404` when it does not, `503` on an error.
    ///
    /// The service calls it before any route on a client id its hub does not know (opening the
    /// stream, subscribing, submitting a task, removing). The default knows no more than the
    /// hub does.
    fn lookup(&self, id: ClientId) -> BackendFuture<'_, bool> {
        let _ = id;
        Box::pin(async { Ok(false) })
    }

    /// What the backend reports about itself for the admin `GET stats` route (connection
    /// state, counts of appends, failures, retries): a JSON object. The default reports nothing.
    fn report(&self) -> Option<serde_json::Value> {
        None
    }

    /// The backend's own measures for the metrics (`GET {prefix}metrics`): connection state,
    /// appends, failures, lag; each a metric name (`sse_backend_…`) and its value, read at
    /// scrape time. The default has none.
    fn metrics(&self) -> Vec<(&'static str, Metric)> {
        Vec::new()
    }

    /// Called before the service opens a stream for a client its hub knows: ends the client's
    /// stream wherever else it is open (reconnect-replace across nodes). On an error the
    /// service logs it and opens the stream anyway (an older stream on another node may then
    /// stay open until its connection fails). The default does nothing.
    fn attach(&self, id: ClientId) -> BackendFuture<'_, ()> {
        let _ = id;
        Box::pin(async { Ok(()) })
    }
}
