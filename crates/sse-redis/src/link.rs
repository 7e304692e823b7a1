//! The shared connection for appends, lookups and the sweep: made in one place at a time, behind
//! a circuit breaker, and every round trip bounded by the caller's deadline.
//!
//! One caller at a time connects (the first to find no connection), bounded by its deadline.
//! While the link is healthy (no failure since the last success: the first connect after
//! start, or a reconnect after an idle drop), the callers arriving meanwhile wait for that
//! connect, each bounded by its own deadline, so a burst of requests right after start is
//! served rather than refused. Once a connect or round trip has failed, nobody waits on
//! another's connect: every other caller fails at once. After
//! [`RedisConfig::breaker_threshold`](crate::RedisConfig::breaker_threshold) consecutive
//! failures the breaker opens: every caller fails at once for
//! [`breaker_cooldown`](crate::RedisConfig::breaker_cooldown), then the next caller probes
//! (connects and runs its command) while the others keep failing at once; a success closes it.

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Instant;

use redis::FromRedisValue;
use redis::aio::MultiplexedConnection;
use sse_http::BackendError;

use crate::Shared;

/// The state of the shared connection.
#[derive(Default)]
pub(crate) struct Link {
    state: Mutex<LinkState>,
    /// Notified when a connect ends (made, failed or abandoned), for the callers waiting on it.
    connected: tokio::sync::Notify,
}

#[derive(Default)]
struct LinkState {
    conn: Option<MultiplexedConnection>,
    /// Whether a caller is connecting now (the others fail at once meanwhile).
    connecting: bool,
    /// Consecutive failures (connects and round trips).
    failures: u32,
    /// While set and in the future, the breaker is open: every caller fails at once.
    open_until: Option<Instant>,
}

/// Why a round trip on the shared connection did not answer.
pub(crate) enum Failure {
    /// Not attempted: the breaker is open, or another caller is connecting after a failure.
    Fast,
    /// The caller's deadline passed; `sent` when the command had been sent.
    Deadline { sent: bool },
    /// Redis (or the way to it) failed.
    Redis(redis::RedisError),
}

impl Failure {
    /// What the peer is told: our words, never the Redis client's error text (which may name
    /// hosts, keys or ids), which is logged here instead. A `write` that failed after it was
    /// sent (the connection dropped or timed out) may have been applied; one never sent, or
    /// answered with an error, was not.
    pub(crate) fn into_error(self, what: &'static str, write: bool) -> BackendError {
        let maybe_applied = match &self {
            Self::Fast => false,
            Self::Deadline { sent } => write && *sent,
            Self::Redis(err) => {
                write && !err.is_connection_refusal() && (err.is_io_error() || err.is_timeout())
            }
        };
        match &self {
            Self::Fast => tracing::debug!(what, "redis unavailable; failing fast"),
            Self::Deadline { sent } => tracing::warn!(what, sent, "redis: deadline passed"),
            Self::Redis(err) => tracing::warn!(%err, what, "redis failed"),
        }
        if maybe_applied {
            BackendError::maybe_applied("the shared store did not confirm the change")
        } else {
            BackendError::unavailable("the shared store is unreachable")
        }
    }
}

/// Clears the "connecting" mark if the connecting caller is dropped midway (its request was
/// cancelled), so that the next caller may connect.
struct Connecting<'a>(&'a Link);

impl Connecting<'_> {
    /// The connect ended: `conn` is the shared connection now, if it succeeded (set in the same
    /// step as the mark is cleared, so that nobody connects again meanwhile).
    fn finish(self, conn: Option<MultiplexedConnection>) {
        let mut state = self.0.lock();
        state.connecting = false;
        if conn.is_some() {
            state.conn = conn;
        }
        drop(state);
        self.0.connected.notify_waiters();
        std::mem::forget(self); // done: nothing left for `Drop`
    }
}

impl Drop for Connecting<'_> {
    fn drop(&mut self) {
        self.0.lock().connecting = false;
        self.0.connected.notify_waiters();
    }
}

impl Link {
    fn lock(&self) -> std::sync::MutexGuard<'_, LinkState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the breaker is open now.
    pub(crate) fn is_open(&self) -> bool {
        self.lock().open_until.is_some_and(|t| Instant::now() < t)
    }
}

impl Shared {
    /// `future`, unless `deadline` passes first.
    pub(crate) async fn within<F: Future>(
        &self,
        deadline: Instant,
        future: F,
    ) -> Option<F::Output> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return None;
        }
        let sleep = self.runtime.sleep(remaining);
        futures_lite::future::or(async { Some(future.await) }, async {
            sleep.await;
            None
        })
        .await
    }

    /// The shared connection; made first if there is none and nobody else is making one and
    /// the breaker lets it. While another caller connects on a healthy link, waits for it (by
    /// `deadline`); after a failure, fails at once instead.
    async fn connection(&self, deadline: Instant) -> Result<MultiplexedConnection, Failure> {
        loop {
            // Registered before the state is read, so that a connect ending in between wakes it.
            let ended = self.link.connected.notified();
            let mut ended = std::pin::pin!(ended);
            ended.as_mut().enable();
            {
                let mut state = self.link.lock();
                if let Some(conn) = &state.conn {
                    return Ok(conn.clone());
                }
                let open = state.open_until.is_some_and(|t| Instant::now() < t);
                if open || (state.connecting && state.failures > 0) {
                    self.fast_failures.fetch_add(1, Ordering::Relaxed);
                    return Err(Failure::Fast);
                }
                if !state.connecting {
                    state.connecting = true;
                    break;
                }
            }
            if self.within(deadline, ended).await.is_none() {
                return Err(Failure::Deadline { sent: false });
            }
        }
        let mark = Connecting(&self.link);
        let remaining = deadline.saturating_duration_since(Instant::now());
        let config = self.conn_config(self.config.timeout.min(remaining), self.config.timeout);
        let connect = self
            .client
            .get_multiplexed_async_connection_with_config(&config);
        match self.within(deadline, connect).await {
            Some(Ok(conn)) => {
                mark.finish(Some(conn.clone()));
                Ok(conn)
            }
            // The failure is counted before the waiters wake, so that they fail fast rather
            // than each connect in turn.
            Some(Err(err)) => {
                self.link_failed();
                mark.finish(None);
                Err(Failure::Redis(err))
            }
            None => {
                self.link_failed();
                mark.finish(None);
                Err(Failure::Deadline { sent: false })
            }
        }
    }

    /// A failure of the shared connection: it is dropped (the next caller makes a new one),
    /// and the breaker opens after too many in a row.
    fn link_failed(&self) {
        let mut state = self.link.lock();
        state.conn = None;
        state.failures = state.failures.saturating_add(1);
        if state.failures >= self.config.breaker_threshold.max(1) {
            let reopen = state.open_until.is_none_or(|t| t <= Instant::now());
            state.open_until = Some(Instant::now() + self.config.breaker_cooldown);
            if reopen {
                self.breaker_opened.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    failures = state.failures,
                    "redis circuit breaker open; failing fast for the cool-down"
                );
            }
        }
    }

    fn link_ok(&self) {
        let mut state = self.link.lock();
        if state.open_until.take().is_some() {
            tracing::info!("redis circuit breaker closed");
        }
        state.failures = 0;
    }

    /// Runs `cmd` on the shared connection, by `deadline`.
    pub(crate) async fn query<T: FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
        deadline: Instant,
    ) -> Result<T, Failure> {
        let mut conn = self.ready(deadline).await?;
        self.settle(self.within(deadline, cmd.query_async(&mut conn)).await)
    }

    /// Runs `pipe` on the shared connection, as [`query`](Self::query) runs a command.
    pub(crate) async fn query_pipe<T: FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
        deadline: Instant,
    ) -> Result<T, Failure> {
        let mut conn = self.ready(deadline).await?;
        self.settle(self.within(deadline, pipe.query_async(&mut conn)).await)
    }

    /// The connection to send on, if there is time left to send.
    async fn ready(&self, deadline: Instant) -> Result<MultiplexedConnection, Failure> {
        let conn = self.connection(deadline).await?;
        if Instant::now() >= deadline {
            return Err(Failure::Deadline { sent: false });
        }
        Ok(conn)
    }

    fn settle<T>(&self, result: Option<redis::RedisResult<T>>) -> Result<T, Failure> {
        match result {
            Some(Ok(value)) => {
                self.link_ok();
                Ok(value)
            }
            // An error reply (a script error, a wrong type) says the link works.
            Some(Err(err))
                if matches!(
                    err.kind(),
                    redis::ErrorKind::Server(_) | redis::ErrorKind::UnexpectedReturnType
                ) =>
            {
                self.link_ok();
                Err(Failure::Redis(err))
            }
            Some(Err(err)) => {
                self.link_failed();
                Err(Failure::Redis(err))
            }
            None => {
                self.link_failed();
                Err(Failure::Deadline { sent: true })
            }
        }
    }
}
