//! Sliced work: a cursor does a bounded amount per step, holding a lock only inside a step and
//! waking wakers after releasing it; [`drive`] runs a cursor to the end, yielding to the executor
//! between steps.

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

/// A slice of work waiting in a [`SliceQueue`].
pub(crate) type Queued = Box<dyn Slice + Send>;

/// Work to be driven one after another, in order, by one task at a time (the wake-ups of
/// [`Hub::queue_wake`](crate::Hub::queue_wake)).
#[derive(Default)]
pub(crate) struct SliceQueue {
    state: std::sync::Mutex<QueueState>,
}

#[derive(Default)]
struct QueueState {
    pending: std::collections::VecDeque<Queued>,
    /// A task is driving `pending`.
    driving: bool,
}

impl SliceQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues `work`; `true` if no task drives the queue (the caller starts one).
    pub(crate) fn push(&self, work: Queued) -> bool {
        let mut state = self.lock();
        state.pending.push_back(work);
        !std::mem::replace(&mut state.driving, true)
    }

    /// The next work to drive, or `None` (and the queue is left undriven) when it is empty.
    pub(crate) fn next(&self) -> Option<Queued> {
        let mut state = self.lock();
        let next = state.pending.pop_front();
        state.driving = next.is_some();
        next
    }

    /// Leaves the queue undriven and takes what it holds (to drop, outside the lock).
    pub(crate) fn abandon(&self) -> std::collections::VecDeque<Queued> {
        let mut state = self.lock();
        state.driving = false;
        std::mem::take(&mut state.pending)
    }
}
