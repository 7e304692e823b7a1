//! The hub's lock: a `Mutex` that, with the `lock-stats` feature, counts its acquisitions and the
//! time it is held, for the benchmarks (`benches/contention.rs`).

use std::ops::{Deref, DerefMut};
#[cfg(feature = "lock-stats")]
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
#[cfg(feature = "lock-stats")]
use std::time::{Duration, Instant};

/// A mutex whose poisoning is ignored (a panic under the lock cannot leave the state half-updated
/// in a way that matters more than stopping every client would).
pub(crate) struct Lock<T> {
    mutex: Mutex<T>,
    #[cfg(feature = "lock-stats")]
    counts: Counts,
}

#[cfg(feature = "lock-stats")]
#[derive(Default)]
struct Counts {
    acquisitions: AtomicU64,
    held_ns: AtomicU64,
}

/// The lock held; derefs to the state.
pub(crate) struct Guard<'a, T> {
    guard: MutexGuard<'a, T>,
    #[cfg(feature = "lock-stats")]
    since: Instant,
    #[cfg(feature = "lock-stats")]
    counts: &'a Counts,
}

impl<T> Lock<T> {
    pub(crate) fn new(value: T) -> Self {
        Self {
            mutex: Mutex::new(value),
            #[cfg(feature = "lock-stats")]
            counts: Counts::default(),
        }
    }

    pub(crate) fn lock(&self) -> Guard<'_, T> {
        let guard = self
            .mutex
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Guard {
            guard,
            #[cfg(feature = "lock-stats")]
            since: Instant::now(),
            #[cfg(feature = "lock-stats")]
            counts: &self.counts,
        }
    }

    /// Acquisitions so far and the total time held.
    #[cfg(feature = "lock-stats")]
    pub(crate) fn stats(&self) -> LockStats {
        LockStats {
            acquisitions: self.counts.acquisitions.load(Ordering::Relaxed),
            held: Duration::from_nanos(self.counts.held_ns.load(Ordering::Relaxed)),
            ..LockStats::default()
        }
    }
}

impl<T> Deref for Guard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> DerefMut for Guard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

#[cfg(feature = "lock-stats")]
impl<T> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        let held = u64::try_from(self.since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.counts.acquisitions.fetch_add(1, Ordering::Relaxed);
        self.counts.held_ns.fetch_add(held, Ordering::Relaxed);
    }
}

/// How often the hub's locks were taken and how long they were held in total, since the hub was
/// made ([`Hub::lock_stats`](crate::Hub::lock_stats); `lock-stats` feature). The time held
/// includes reading the clock once per acquisition (some tens of nanoseconds).
#[cfg(feature = "lock-stats")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LockStats {
    /// Times the lock of the hub's state was taken.
    pub acquisitions: u64,
    /// Total time it was held.
    pub held: Duration,
    /// Times a lock of the table of waiting streams' wakers (kept apart from the state, in
    /// shards) was taken; 0 while the wakers were kept in the state.
    pub waker_acquisitions: u64,
    /// Total time those were held.
    pub waker_held: Duration,
}
