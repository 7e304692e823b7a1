//! The little the protocol layer needs from a runtime: spawning a task and a timer.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use hyper::rt::{Executor, Sleep, Timer};

/// A boxed task, as handed to [`Runtime::spawn`].
pub type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// What the protocol layer needs from an async runtime. Implemented for any pair of hyper's own
/// runtime traits by [`HyperRuntime`], so an adapter only names its executor and timer.
pub trait Runtime: Send + Sync + 'static {
    /// Runs `future` in the background.
    fn spawn(&self, future: BoxFuture);
    /// A future that completes after `duration`.
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>>;
    /// Moves `sleep`'s deadline to `deadline`.
    fn reset(&self, sleep: &mut Pin<Box<dyn Sleep>>, deadline: Instant);
    /// The current time, the clock of every deadline the protocol layer sets (keep-alives,
    /// sweeps, the hub's `now`). The default is [`Instant::now`]; a test runtime may drive its
    /// own clock.
    fn now(&self) -> Instant {
        Instant::now()
    }
    /// How many streams a broadcast wakes before its wake-up yields to the executor (a slice of
    /// [`sse_registry::drive`]).
    ///
    /// Each stream woken is a task that writes (a syscall of a few µs) before the executor runs
    /// anything woken after it, if the executor runs tasks in the order they were woken, as
    /// smol's does: there a slice of 4,096 holds up the next request by tens of milliseconds.
    /// Tokio's scheduler gives tasks woken by I/O their turn anyway, and wakes faster in large
    /// slices. The default is [`sse_registry::DEFAULT_SLICE`].
    fn wake_slice(&self) -> usize {
        sse_registry::DEFAULT_SLICE
    }
}

/// A [`Runtime`] from a hyper [`Executor`] and a hyper [`Timer`], such as hyper-util's
/// `TokioExecutor` and `TokioTimer`.
#[derive(Clone)]
pub struct HyperRuntime<E, T> {
    executor: E,
    timer: T,
    wake_slice: usize,
}

impl<E, T> HyperRuntime<E, T> {
    /// Pairs an executor with a timer.
    pub fn new(executor: E, timer: T) -> Self {
        Self {
            executor,
            timer,
            wake_slice: sse_registry::DEFAULT_SLICE,
        }
    }

    /// Sets [`Runtime::wake_slice`] (at least 1).
    #[must_use]
    pub fn with_wake_slice(mut self, streams: usize) -> Self {
        self.wake_slice = streams.max(1);
        self
    }
}

impl<E, T> fmt::Debug for HyperRuntime<E, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HyperRuntime").finish_non_exhaustive()
    }
}

impl<E, T> Runtime for HyperRuntime<E, T>
where
    E: Executor<BoxFuture> + Send + Sync + 'static,
    T: Timer + Send + Sync + 'static,
{
    fn spawn(&self, future: BoxFuture) {
        self.executor.execute(future);
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        self.timer.sleep(duration)
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn Sleep>>, deadline: Instant) {
        self.timer.reset(sleep, deadline);
    }

    fn wake_slice(&self) -> usize {
        self.wake_slice
    }
}

/// A shared runtime is a runtime (so one `Arc<dyn Runtime>` can serve a service and a backend).
impl<R: Runtime + ?Sized> Runtime for std::sync::Arc<R> {
    fn spawn(&self, future: BoxFuture) {
        (**self).spawn(future);
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        (**self).sleep(duration)
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn Sleep>>, deadline: Instant) {
        (**self).reset(sleep, deadline);
    }

    fn now(&self) -> Instant {
        (**self).now()
    }

    fn wake_slice(&self) -> usize {
        (**self).wake_slice()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Neither runs anything: only the slice is looked at.
    #[derive(Clone)]
    struct Idle;

    impl<F> Executor<F> for Idle {
        fn execute(&self, _: F) {}
    }

    impl Timer for Idle {
        fn sleep(&self, _: Duration) -> Pin<Box<dyn Sleep>> {
            unreachable!("not called")
        }

        fn sleep_until(&self, _: Instant) -> Pin<Box<dyn Sleep>> {
            unreachable!("not called")
        }
    }

    #[test]
    fn wake_slice_defaults_to_the_hubs_and_is_at_least_one() {
        let rt = HyperRuntime::new(Idle, Idle);
        assert_eq!(rt.wake_slice(), sse_registry::DEFAULT_SLICE);
        let shared: std::sync::Arc<dyn Runtime> =
            std::sync::Arc::new(rt.clone().with_wake_slice(256));
        assert_eq!(shared.wake_slice(), 256);
        assert_eq!(rt.with_wake_slice(0).wake_slice(), 1);
    }
}
