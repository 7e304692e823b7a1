//! The seam for a cross-node backend: where the service sends what changes the hub.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use sse_codec::EventName;
use sse_registry::ClientId;

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

/// Why a backend could not do what it was asked: nothing was published (or it is not known
/// whether it was), and the caller is told so (the service answers `503`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendError {
    /// A short reason, for the response and the logs.
    pub reason: String,
}

impl BackendError {
    /// An error with this reason.
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for BackendError {}

/// A backend that makes several services act as one hub (see the `sse-redis` crate).
///
/// With a backend ([`Sse::with_backend`](crate::Sse::with_backend)), the service no longer
/// changes its [`Hub`](sse_registry::Hub) itself for what must be shared: it asks the backend,
/// which applies the change on every node's hub (this one's included) before it returns. The
/// service still validates requests against its own hub first (unknown ids, key limits; an id
/// its hub does not know is first [looked up](Self::lookup) in the backend), and still reads
/// from it (streams, names, the admin list). Without a backend, nothing changes.
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

    /// Called before the service opens a stream for a client its hub knows: ends the client's
    /// stream wherever else it is open (reconnect-replace across nodes). On an error the
    /// service logs it and opens the stream anyway (an older stream on another node may then
    /// stay open until its connection fails). The default does nothing.
    fn attach(&self, id: ClientId) -> BackendFuture<'_, ()> {
        let _ = id;
        Box::pin(async { Ok(()) })
    }
}
