//! The in-memory backend: the hub itself, on one node.

use std::fmt;
use std::sync::Arc;

use sse_codec::EventName;
use sse_registry::{ClientId, Hub, Target};

use crate::backend::{Backend, BackendFuture, Recipients};
use crate::runtime::Runtime;

/// The [`Backend`] of a service on one node: every change is applied to its [`Hub`] at once.
/// It is what [`Sse::new`](crate::Sse::new) and [`Sse::with_hub`](crate::Sse::with_hub) use.
///
/// A publish wakes its recipients in slices of the runtime's
/// [`wake_slice`](Runtime::wake_slice), behind the wake-ups of earlier publishes
/// ([`Hub::queue_wake`]), in a task spawned on the runtime, so the publisher does not wait for
/// every stream it wakes.
#[derive(Clone)]
pub struct LocalBackend {
    hub: Hub,
    runtime: Arc<dyn Runtime>,
}

impl LocalBackend {
    /// The backend of `hub`, waking and sweeping on `runtime`.
    pub fn new(hub: Hub, runtime: Arc<dyn Runtime>) -> Self {
        Self { hub, runtime }
    }

    /// Publishes now, without a future (the in-memory publish never waits).
    pub(crate) fn publish_now(
        &self,
        to: Target<'_>,
        event: Option<&EventName>,
        data: &str,
    ) -> usize {
        let published = self.hub.publish(to, event, data);
        let recipients = published.recipients;
        if let Some(task) = self
            .hub
            .queue_wake(published.wake, self.runtime.wake_slice())
        {
            self.runtime.spawn(Box::pin(task));
        }
        recipients
    }
}

impl fmt::Debug for LocalBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalBackend")
            .field("hub", &self.hub)
            .finish_non_exhaustive()
    }
}

/// The recipients as the hub addresses them.
pub(crate) fn target(to: &Recipients) -> Target<'_> {
    match to {
        Recipients::Client(id) => Target::Client(*id),
        Recipients::Name(name) => Target::Name(name),
        Recipients::Key(key) => Target::Key(key),
        Recipients::All => Target::All,
    }
}

impl Backend for LocalBackend {
    fn issue(&self, name: Option<String>) -> BackendFuture<'_, ClientId> {
        let issued = self.hub.issue(name.as_deref(), self.runtime.now());
        Box::pin(async move { Ok(issued?) })
    }

    fn subscribe(&self, id: ClientId, key: EventName) -> BackendFuture<'_, ()> {
        let done = self.hub.subscribe(id, &key).map(drop);
        Box::pin(async move { Ok(done?) })
    }

    fn unsubscribe(&self, id: ClientId, key: EventName) -> BackendFuture<'_, ()> {
        let done = self.hub.unsubscribe(id, &key).map(drop);
        Box::pin(async move { Ok(done?) })
    }

    fn remove(&self, id: ClientId) -> BackendFuture<'_, ()> {
        let done = self.hub.remove(id);
        Box::pin(async move { Ok(done?) })
    }

    fn clear(&self) -> BackendFuture<'_, ()> {
        Box::pin(async move {
            let mut clear = self.hub.clear();
            sse_registry::drive(&mut clear, sse_registry::DEFAULT_SLICE).await;
            Ok(())
        })
    }

    fn publish(
        &self,
        to: Recipients,
        event: Option<EventName>,
        data: String,
    ) -> BackendFuture<'_, usize> {
        let recipients = self.publish_now(target(&to), event.as_ref(), &data);
        Box::pin(async move { Ok(recipients) })
    }

    fn sweep(&self) -> BackendFuture<'_, usize> {
        Box::pin(async move {
            let mut sweep = self.hub.sweep(self.runtime.now());
            sse_registry::drive(&mut sweep, sse_registry::DEFAULT_SLICE).await;
            Ok(sweep.removed())
        })
    }
}
