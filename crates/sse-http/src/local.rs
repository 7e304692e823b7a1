//! The in-memory backend: the hub itself, on one node.

use std::fmt;
use std::sync::{Arc, Mutex};

use sse_codec::EventName;
use sse_registry::{ClientId, Hub, Target};

use crate::backend::{Backend, BackendFuture, Recipients};
use crate::metrics::{TimedWake, Timings, drive_timed, observe};
use crate::once::{Once, Published, Remembered};
use crate::runtime::Runtime;

/// The [`Backend`] of a service on one node: every change is applied to its [`Hub`] at once.
/// It is what [`Sse::new`](crate::Sse::new) and [`Sse::with_hub`](crate::Sse::with_hub) use.
///
/// A publish wakes its recipients in slices of the runtime's
/// [`wake_slice`](Runtime::wake_slice), behind the wake-ups of earlier publishes
/// ([`Hub::queue_wake`]), in a task spawned on the runtime, so the publisher does not wait for
/// every stream it wakes.
///
/// The keys of idempotent publishes ([`Backend::publish_once`]) are remembered in a table of
/// its own, by the runtime's clock ([`Runtime::now`]); clones share it.
#[derive(Clone)]
pub struct LocalBackend {
    hub: Hub,
    runtime: Arc<dyn Runtime>,
    /// The keys of the idempotent publishes within their TTL.
    remembered: Arc<Mutex<Remembered>>,
    /// How long publishes, wake-ups and sweep slices take (the service's metrics).
    timings: Timings,
}

impl LocalBackend {
    /// The backend of `hub`, waking and sweeping on `runtime`.
    pub fn new(hub: Hub, runtime: Arc<dyn Runtime>) -> Self {
        Self::timed(hub, runtime, Timings::default())
    }

    pub(crate) fn timed(hub: Hub, runtime: Arc<dyn Runtime>, timings: Timings) -> Self {
        Self {
            hub,
            runtime,
            remembered: Arc::default(),
            timings,
        }
    }

    /// Publishes now, without a future (the in-memory publish never waits).
    pub(crate) fn publish_now(
        &self,
        to: Target<'_>,
        event: Option<&EventName>,
        data: &str,
    ) -> usize {
        let started = self.runtime.now();
        let published = self.hub.publish(to, event, data);
        let recipients = published.recipients;
        if let Some(task) = self
            .hub
            .queue_wake(published.wake, self.runtime.wake_slice())
        {
            let now = self.runtime.now();
            self.runtime.spawn(Box::pin(TimedWake {
                task: Box::pin(task),
                clock: self.runtime.clone(),
                started: now,
                timings: self.timings.clone(),
            }));
        }
        let elapsed = self.runtime.now().saturating_duration_since(started);
        observe(&self.timings.publish, elapsed);
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
            let (budget, slices) = (sse_registry::DEFAULT_SLICE, &self.timings.sweep_slice);
            drive_timed(&mut clear, budget, &*self.runtime, slices).await;
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

    fn publish_once(
        &self,
        once: Once,
        to: Recipients,
        event: Option<EventName>,
        data: String,
    ) -> BackendFuture<'_, Published> {
        let now = self.runtime.now();
        let fresh = (self.remembered.lock())
            .unwrap_or_else(|p| p.into_inner())
            .admit(&once, now);
        // The key is remembered before the publish: the in-memory publish cannot fail, and a
        // repeat that comes in between is a replay of it.
        let published = if fresh {
            Published::Delivered(self.publish_now(target(&to), event.as_ref(), &data))
        } else {
            Published::Replayed
        };
        Box::pin(async move { Ok(published) })
    }

    fn sweep(&self) -> BackendFuture<'_, usize> {
        Box::pin(async move {
            let mut sweep = self.hub.sweep(self.runtime.now());
            let (budget, slices) = (sse_registry::DEFAULT_SLICE, &self.timings.sweep_slice);
            drive_timed(&mut sweep, budget, &*self.runtime, slices).await;
            Ok(sweep.removed())
        })
    }
}
