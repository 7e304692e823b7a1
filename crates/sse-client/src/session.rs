//! A protocol session that outlives the server's memory of it: register, listen, follow the
//! stream, and register (and listen) again when the server no longer knows the client.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures_core::Stream;
use http::StatusCode;

use crate::{Backoff, BoxFuture, Client, ClientId, Error, EventSource, Item, ProtocolError};

/// What a [`Session`] yields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SessionItem {
    /// The session has a client id: the first, or a new one because the server no longer knew
    /// the last (it restarted, or the client was removed or swept). The keys are listened to
    /// again; what was sent to the old id is lost, so a consumer reloads its state here as
    /// after a [`Item::Reset`].
    Registered(ClientId),
    /// An item of the client's stream.
    Item(Item),
    /// Registering (or listening to a key) failed with an error worth retrying (a network
    /// error, a `5xx`, a `429`, a `404` for a client the server forgot meanwhile); the next
    /// attempt starts after `after`.
    RegisterFailed {
        /// The attempt about to be made: 1, 2, ... while they fail.
        attempt: u32,
        /// The delay before it (see [`Backoff`]).
        after: Duration,
        /// Why the last attempt failed.
        error: ProtocolError,
    },
}

/// Why a [`Session`] stopped for good: the last item of its stream.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SessionError {
    /// The client's stream stopped with this error (any but the `404` that makes the session
    /// register again).
    Stream(Error),
    /// Registering failed with an error a retry cannot mend (a `4xx` other than `404` and
    /// `429`, an invalid name or key, a malformed answer), or
    /// [`Backoff::max_attempts`] attempts in a row failed.
    Register {
        /// The attempts made in a row.
        attempts: u32,
        /// Why the last one failed.
        cause: ProtocolError,
    },
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stream(err) => write!(f, "the session's stream stopped: {err}"),
            Self::Register { attempts, cause } => {
                write!(f, "registering failed ({attempts} attempts): {cause}")
            }
        }
    }
}

impl std::error::Error for SessionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Stream(err) => Some(err),
            Self::Register { cause, .. } => Some(cause),
        }
    }
}

/// A client of the protocol that keeps following across server restarts: a [`Stream`] of
/// [`SessionItem`]s, made by [`Client::session`].
///
/// It registers (with the name, if any), listens to each key, and follows the client's
/// stream (an [`EventSource`]: reconnecting with `Last-Event-ID` after a network error or the
/// end of the body). When the server answers the stream `404` (it no longer knows the client:
/// it restarted without shared state, or the client was removed or swept), the session
/// registers again, listens again and yields [`SessionItem::Registered`] with the new id.
/// Registration failures are retried with the [`Backoff`], as reconnections are; so is a new
/// client whose stream is answered `404` before it ever opened (a server that forgets at once
/// never makes the session loop without a pause).
///
/// ```no_run
/// # #[cfg(feature = "tokio")]
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use futures_lite::StreamExt;
/// use sse_client::{Item, SessionItem};
///
/// let client = sse_client::tokio::client("http://127.0.0.1:8080/sse/".parse()?);
/// let mut session = client.session(None, &["news"])?;
/// while let Some(item) = session.next().await {
///     match item? {
///         SessionItem::Registered(_) => println!("(re)joined: reload what you show"),
///         SessionItem::Item(Item::Event(event)) if event.event_type() == "news" => {
///             println!("{}", event.data())
///         }
///         _ => {}
///     }
/// }
/// # Ok(())
/// # }
/// # fn main() {
/// #     #[cfg(feature = "tokio")]
/// #     drop(run());
/// # }
/// ```
pub struct Session {
    client: Client,
    name: Option<Arc<str>>,
    keys: Arc<[Box<str>]>,
    backoff: Backoff,
    idle_timeout: Option<Duration>,
    /// Registration attempts since a stream last opened.
    attempt: u32,
    /// Whether the current client's stream has opened (a `404` before it did is a failed
    /// attempt, with the backoff: never a tight loop of registrations).
    opened: bool,
    state: SessionState,
}

enum SessionState {
    /// To register at the next poll.
    Idle,
    Registering(BoxFuture<Result<ClientId, ProtocolError>>),
    Streaming(Box<EventSource>),
    Waiting(BoxFuture<()>),
    Done,
}

impl Client {
    /// A [`Session`]: registered with `name` and listening to `keys`, re-registered whenever
    /// the server forgets it. The name and keys are checked here (1 to 64 ASCII letters,
    /// digits and `- _ . : ~`): nothing is sent until the session is polled.
    pub fn session(&self, name: Option<&str>, keys: &[&str]) -> Result<Session, ProtocolError> {
        if let Some(name) = name {
            crate::protocol::token(name, "name")?;
        }
        for key in keys {
            crate::protocol::token(key, "key")?;
        }
        Ok(Session {
            client: self.clone(),
            name: name.map(Into::into),
            keys: keys.iter().map(|&k| k.into()).collect(),
            backoff: Backoff::DEFAULT,
            idle_timeout: None,
            attempt: 0,
            opened: false,
            state: SessionState::Idle,
        })
    }
}

impl Session {
    /// The policy for the stream's reconnections and for registration retries (default:
    /// [`Backoff::DEFAULT`]).
    #[must_use]
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The stream's [`Builder::idle_timeout`](crate::Builder::idle_timeout) (default: none).
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// A failed registration (or a new client's stream refused): the wait before the next
    /// attempt, or the end.
    fn failed(&mut self, error: ProtocolError) -> Result<SessionItem, SessionError> {
        let gave_up = self
            .backoff
            .max_attempts
            .is_some_and(|max| self.attempt >= max);
        if gave_up || !retryable(&error) {
            self.state = SessionState::Done;
            return Err(SessionError::Register {
                attempts: self.attempt + 1,
                cause: error,
            });
        }
        self.attempt += 1;
        let after = self
            .backoff
            .delay(self.attempt, self.backoff.initial, fastrand::f64());
        self.state = SessionState::Waiting(self.client.sleep(after));
        Ok(SessionItem::RegisterFailed {
            attempt: self.attempt,
            after,
            error,
        })
    }

    fn register(&self) -> BoxFuture<Result<ClientId, ProtocolError>> {
        let (client, name, keys) = (self.client.clone(), self.name.clone(), self.keys.clone());
        Box::pin(async move {
            let id = client.register(name.as_deref()).await?;
            for key in keys.iter() {
                client.listen(&id, key).await?;
            }
            Ok(id)
        })
    }
}

/// Whether a failed registration is worth another attempt.
fn retryable(err: &ProtocolError) -> bool {
    match err {
        ProtocolError::Network(_) => true,
        ProtocolError::Status { status, .. } => {
            status.is_server_error()
                || *status == StatusCode::TOO_MANY_REQUESTS
                || *status == StatusCode::NOT_FOUND
        }
        _ => false,
    }
}

impl Stream for Session {
    type Item = Result<SessionItem, SessionError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                SessionState::Idle => this.state = SessionState::Registering(this.register()),
                SessionState::Registering(registering) => {
                    match ready!(registering.as_mut().poll(cx)) {
                        Ok(id) => {
                            this.opened = false;
                            let source = this
                                .client
                                .events(&id)
                                .backoff(this.backoff)
                                .idle_timeout(this.idle_timeout)
                                .build();
                            this.state = SessionState::Streaming(Box::new(source));
                            return Poll::Ready(Some(Ok(SessionItem::Registered(id))));
                        }
                        Err(error) => return Poll::Ready(Some(this.failed(error))),
                    }
                }
                SessionState::Streaming(source) => {
                    match ready!(Pin::new(&mut **source).poll_next(cx)) {
                        Some(Ok(item)) => {
                            if matches!(item, Item::Open) {
                                this.opened = true;
                                this.attempt = 0;
                            }
                            return Poll::Ready(Some(Ok(SessionItem::Item(item))));
                        }
                        // The server forgot a client whose stream had opened: register now.
                        Some(Err(Error::Status(StatusCode::NOT_FOUND))) if this.opened => {
                            this.state = SessionState::Registering(this.register());
                        }
                        // A new client's stream refused before it opened: a failed attempt.
                        Some(Err(Error::Status(StatusCode::NOT_FOUND))) => {
                            let error = ProtocolError::Status {
                                status: StatusCode::NOT_FOUND,
                                reason: "the new client's stream was answered 404".into(),
                            };
                            return Poll::Ready(Some(this.failed(error)));
                        }
                        Some(Err(err)) => {
                            this.state = SessionState::Done;
                            return Poll::Ready(Some(Err(SessionError::Stream(err))));
                        }
                        None => {
                            this.state = SessionState::Done;
                            return Poll::Ready(None);
                        }
                    }
                }
                SessionState::Waiting(sleep) => {
                    ready!(sleep.as_mut().poll(cx));
                    this.state = SessionState::Registering(this.register());
                }
                SessionState::Done => return Poll::Ready(None),
            }
        }
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            SessionState::Idle => "idle",
            SessionState::Registering(_) => "registering",
            SessionState::Streaming(_) => "streaming",
            SessionState::Waiting(_) => "waiting",
            SessionState::Done => "closed",
        };
        f.debug_struct("Session")
            .field("keys", &self.keys.len())
            .field("state", &state)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}
