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
}

/// A [`Runtime`] from a hyper [`Executor`] and a hyper [`Timer`], such as hyper-util's
/// `TokioExecutor` and `TokioTimer`.
#[derive(Clone)]
pub struct HyperRuntime<E, T> {
    executor: E,
    timer: T,
}

impl<E, T> HyperRuntime<E, T> {
    /// Pairs an executor with a timer.
    pub fn new(executor: E, timer: T) -> Self {
        Self { executor, timer }
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
}
