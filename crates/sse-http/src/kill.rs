//! Dropping every connection still open when the shutdown timeout has passed, without a shared
//! lock on every wake-up of every connection.
//!
//! Each connection task waits for the kill beside its connection. Polling a pending
//! `tokio::sync::Notify` (or `watch`) future takes the lock its waiters share, so a plain
//! `or(connection, killed)` took one lock, shared by every connection, each time any stream
//! was woken to write an event. [`UntilKilled`] registers for the kill once per waker and
//! otherwise reads a flag.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};

use tokio::sync::Notify;

use crate::runtime::BoxFuture;

struct Shared {
    killed: AtomicBool,
    notify: Notify,
}

/// Kills every connection wrapped by [`until_killed`] with its [`Killed`], when told to or when
/// dropped.
pub(crate) struct Switch(Arc<Shared>);

/// What a connection wrapped by [`until_killed`] watches.
#[derive(Clone)]
pub(crate) struct Killed(Arc<Shared>);

/// A kill switch and what the connections watch.
pub(crate) fn switch() -> (Switch, Killed) {
    let shared = Arc::new(Shared {
        killed: AtomicBool::new(false),
        notify: Notify::new(),
    });
    (Switch(shared.clone()), Killed(shared))
}

impl Switch {
    /// Every wrapped connection is dropped when its task is next polled, which this wakes.
    pub(crate) fn kill(&self) {
        // The flag first: a connection that registers after the wake-up below sees it.
        self.0.killed.store(true, Ordering::SeqCst);
        self.0.notify.notify_waiters();
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Killed {
    /// Whether the switch has been killed (or dropped).
    pub(crate) fn is_killed(&self) -> bool {
        self.0.killed.load(Ordering::SeqCst)
    }

    /// Completes once the switch is killed (or dropped). It takes the lock shared by every
    /// waiter when polled: for waits that are not on the path of every event (an idle
    /// connection between requests), unlike [`until_killed`].
    pub(crate) async fn wait(&self) {
        let notified = self.0.notify.notified();
        let mut notified = std::pin::pin!(notified);
        notified.as_mut().enable();
        if self.is_killed() {
            return;
        }
        notified.await;
    }
}

/// `connection`, dropped (closing its socket) once `killed`'s switch is killed or dropped.
pub(crate) fn until_killed(
    killed: Killed,
    connection: impl Future<Output = ()> + Send + 'static,
) -> BoxFuture {
    let shared = killed.0.clone();
    Box::pin(UntilKilled {
        connection,
        wait: async move { shared.notify.notified().await },
        shared: killed.0,
        registered: None,
    })
}

pin_project_lite::pin_project! {
    /// The future of [`until_killed`].
    struct UntilKilled<C, W> {
        #[pin]
        connection: C,
        // Completes on the kill; polled only to register a new waker.
        #[pin]
        wait: W,
        shared: Arc<Shared>,
        // The waker `wait` was last polled with.
        registered: Option<Waker>,
    }
}

impl<C: Future<Output = ()>, W: Future<Output = ()>> Future for UntilKilled<C, W> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        if this.shared.killed.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        if this.connection.poll(cx).is_ready() {
            return Poll::Ready(());
        }
        if !this
            .registered
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            if this.wait.poll(cx).is_ready() {
                return Poll::Ready(());
            }
            *this.registered = Some(cx.waker().clone());
            // Killed between the check above and the registration: its wake-up came too early.
            if this.shared.killed.load(Ordering::SeqCst) {
                return Poll::Ready(());
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_ends_at_the_kill_even_if_it_began_after() {
        let (switch, killed) = switch();
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut before = Box::pin(killed.wait());
        assert!(before.as_mut().poll(&mut cx).is_pending());
        assert!(!killed.is_killed());
        switch.kill();
        assert!(before.as_mut().poll(&mut cx).is_ready());
        let mut after = Box::pin(killed.wait());
        assert!(after.as_mut().poll(&mut cx).is_ready());
        assert!(killed.is_killed());
    }
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    /// Counts its wake-ups.
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    #[test]
    fn a_kill_wakes_and_ends_a_pending_connection() {
        let (switch, killed) = switch();
        let mut conn = until_killed(killed, std::future::pending());
        let (count, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        assert!(conn.as_mut().poll(&mut cx).is_pending());
        // Polled again with the same waker: still pending, nothing new registered.
        assert!(conn.as_mut().poll(&mut cx).is_pending());
        switch.kill();
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            1,
            "the kill wakes the task once"
        );
        assert!(conn.as_mut().poll(&mut cx).is_ready());
    }

    #[test]
    fn a_new_waker_is_registered_and_woken() {
        let (switch, killed) = switch();
        let mut conn = until_killed(killed, std::future::pending());
        let (first, waker) = counting();
        assert!(
            conn.as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
        let (second, waker) = counting();
        assert!(
            conn.as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
        switch.kill();
        assert_eq!(first.0.load(Ordering::SeqCst), 0);
        assert_eq!(second.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn dropping_the_switch_kills_and_a_finished_connection_ends() {
        let (switch, killed) = switch();
        let (_, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        let mut done = until_killed(killed.clone(), std::future::ready(()));
        assert!(done.as_mut().poll(&mut cx).is_ready());
        let mut conn = until_killed(killed.clone(), std::future::pending());
        assert!(conn.as_mut().poll(&mut cx).is_pending());
        drop(switch);
        assert!(conn.as_mut().poll(&mut cx).is_ready());
        // Wrapped after the kill: ends at its first poll, without running the connection.
        let mut late = until_killed(killed, async { panic!("not polled once killed") });
        assert!(late.as_mut().poll(&mut cx).is_ready());
    }
}
