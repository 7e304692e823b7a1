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
