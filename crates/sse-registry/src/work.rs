//! Sliced work: a cursor does a bounded amount per step, holding the hub's lock only inside a
//! step and waking wakers after releasing it; [`drive`] runs a cursor to the end, yielding to the
//! executor between steps.

use std::task::Waker;

/// How many clients one step visits, unless told otherwise.
///
/// Chosen with `cargo bench -p sse-registry` (table in the crate README): at 1,000,000 clients a
/// 4,096-client slice of a broadcast's wake-up takes 100-330 µs, under the 500 µs a slice may
/// block an executor thread, and smaller slices did not lower the total; 16,384 reached 580 µs.
/// A sweep counts each removal as 16 visits, so its slices stay as short.
pub const DEFAULT_SLICE: usize = 4096;

/// Whether a cursor has more to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Progress {
    /// Call [`Slice::step`] again.
    More,
    /// The work is complete.
    Done,
}

/// Work done in bounded steps.
pub trait Slice {
    /// Does at most `budget` units of work (clients visited; a [`Sweep`](crate::Sweep) counts a
    /// client it removes as 16), and always some: a budget too small for one unit does one.
    fn step(&mut self, budget: usize) -> Progress;
}

/// Runs `work` to completion in steps of `budget`, yielding to the executor between steps.
///
/// Runtime-agnostic: the yield is a future that wakes itself and returns `Pending` once.
pub async fn drive<S: Slice + ?Sized>(work: &mut S, budget: usize) {
    while work.step(budget) == Progress::More {
        futures_lite::future::yield_now().await;
    }
}

/// Wakes every waker in `wakers`; called with no lock held.
pub(crate) fn wake_all(wakers: &mut Vec<Waker>) {
    for waker in wakers.drain(..) {
        waker.wake();
    }
}

/// The wake-ups of published events still to be driven, in publish order
/// ([`Hub::queue_wake`](crate::Hub::queue_wake)).
#[derive(Default)]
pub(crate) struct WakeQueue {
    state: std::sync::Mutex<QueueState>,
}

#[derive(Default)]
struct QueueState {
    pending: std::collections::VecDeque<crate::Wake>,
    /// A task is driving `pending`.
    driving: bool,
}

impl WakeQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues `wake`; `true` if no task drives the queue (the caller starts one).
    pub(crate) fn push(&self, wake: crate::Wake) -> bool {
        let mut state = self.lock();
        state.pending.push_back(wake);
        !std::mem::replace(&mut state.driving, true)
    }

    /// The next wake-up to drive, or `None` (and the queue is left undriven) when it is empty.
    fn next(&self) -> Option<crate::Wake> {
        let mut state = self.lock();
        let next = state.pending.pop_front();
        state.driving = next.is_some();
        next
    }

    /// Leaves the queue undriven and takes what it holds (to drop, outside the lock).
    fn abandon(&self) -> std::collections::VecDeque<crate::Wake> {
        let mut state = self.lock();
        state.driving = false;
        std::mem::take(&mut state.pending)
    }
}

/// Drives `hub`'s queued wake-ups in order until the queue is empty, yielding between slices.
///
/// If the task is dropped before it ends (never polled, or its executor shut down), the queue is
/// left undriven and what it holds is woken at once (a dropped `Wake` wakes the rest of its
/// recipients), so that nothing waits for a task that is gone and a later publish starts a new
/// one.
pub(crate) fn drive_queue(
    hub: crate::Hub,
    budget: usize,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    /// Abandons the queue when dropped, unless disarmed.
    struct Driver {
        hub: crate::Hub,
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
                drop(self.hub.inner.wakes.abandon());
            }
        }
    }
    let mut driver = Driver { hub, armed: true };
    async move {
        loop {
            futures_lite::future::yield_now().await;
            let Some(mut wake) = driver.hub.inner.wakes.next() else {
                // `next` left the queue undriven: nothing to abandon.
                driver.disarm();
                return;
            };
            drive(&mut wake, budget).await;
        }
    }
}
