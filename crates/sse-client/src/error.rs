//! Why an event source stopped, and why a connection ended.

use std::fmt;
use std::io;
use std::sync::Arc;

use http::{HeaderValue, StatusCode};

/// Why an [`EventSource`](crate::EventSource) stopped for good: the last item of its stream.
///
/// The first three are the WHATWG "fail the connection" cases (no reconnection, as a browser's
/// `EventSource` would go to `CLOSED`); the limit errors are this crate's defence against a
/// peer that never ends a line; [`GaveUp`](Self::GaveUp) is the optional cap on reconnection
/// attempts ([`Backoff::max_attempts`](crate::Backoff::max_attempts)).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Error {
    /// The server answered `204 No Content`: the specification's way of telling a client to stop
    /// reconnecting.
    NoContent,
    /// The server answered with a status other than `200` (and `204`). Redirects (`301`, `302`,
    /// `303`, `307`, `308` with a `Location`) are followed up to
    /// [`Builder::max_redirects`](crate::Builder::max_redirects); a `3xx` without a `Location`
    /// (or with following turned off) ends up here.
    Status(StatusCode),
    /// More than [`Builder::max_redirects`](crate::Builder::max_redirects) redirects in a row.
    /// (Fetch, and so a browser, makes this a network error and reconnects into the same
    /// redirects; this client stops and says why.)
    TooManyRedirects {
        /// The limit in force.
        limit: u32,
    },
    /// A redirect whose `Location` is not a URL, or is one whose scheme is not `http` or
    /// `https` (the location itself is not kept: it may hold a secret).
    BadRedirect {
        /// The redirect's status.
        status: StatusCode,
    },
    /// The server answered `200` with a `Content-Type` other than `text/event-stream` (`None`:
    /// there was none).
    ContentType(Option<HeaderValue>),
    /// A line of the stream was longer than [`Limits::max_line_len`](sse_codec::Limits): the
    /// connection was closed before the line was read further.
    LineTooLong {
        /// The limit in force, in bytes.
        limit: usize,
    },
    /// An event's data was longer than [`Limits::max_event_len`](sse_codec::Limits): the
    /// connection was closed.
    EventTooLarge {
        /// The limit in force, in bytes.
        limit: usize,
    },
    /// Another limit of the parser was exceeded (none today: a later `sse-codec` may add one).
    Limit(sse_codec::Error),
    /// The connector said it can never reach this URL (it failed with
    /// [`io::ErrorKind::Unsupported`] or [`io::ErrorKind::InvalidInput`]: an `https` URL given
    /// to a plain-TCP connector, a URL without a host), so reconnecting is futile.
    Unsupported(Arc<io::Error>),
    /// [`Backoff::max_attempts`](crate::Backoff::max_attempts) reconnection attempts in a row
    /// failed.
    GaveUp {
        /// The attempts made since the last connection that opened.
        attempts: u32,
        /// Why the last one failed.
        cause: Disconnect,
    },
    /// Only from [`BodyEvents`](crate::BodyEvents): the body failed. (An
    /// [`EventSource`](crate::EventSource) reconnects instead.)
    Body(Disconnect),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoContent => f.write_str("the server answered 204 No Content: do not reconnect"),
            Self::Status(status) => write!(f, "the server answered {status}, not 200"),
            Self::TooManyRedirects { limit } => {
                write!(f, "more than {limit} redirects in a row")
            }
            Self::BadRedirect { status } => write!(
                f,
                "the server redirected ({status}) to a location that is not an http or https URL"
            ),
            Self::ContentType(Some(ct)) => {
                write!(
                    f,
                    "the server answered Content-Type {ct:?}, not text/event-stream"
                )
            }
            Self::ContentType(None) => f.write_str("the server answered no Content-Type"),
            Self::LineTooLong { limit } => {
                write!(
                    f,
                    "event stream line longer than {limit} bytes; connection closed"
                )
            }
            Self::EventTooLarge { limit } => {
                write!(f, "event data longer than {limit} bytes; connection closed")
            }
            Self::Limit(err) => write!(f, "{err}; connection closed"),
            Self::Unsupported(err) => write!(f, "the connector cannot reach this URL: {err}"),
            Self::GaveUp { attempts, cause } => {
                write!(f, "gave up after {attempts} reconnection attempts: {cause}")
            }
            Self::Body(cause) => write!(f, "the response body failed: {cause}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Unsupported(err) => Some(&**err),
            Self::GaveUp { cause, .. } | Self::Body(cause) => cause.source(),
            _ => None,
        }
    }
}

impl From<sse_codec::Error> for Error {
    fn from(err: sse_codec::Error) -> Self {
        match err {
            sse_codec::Error::LineTooLong { limit } => Self::LineTooLong { limit },
            sse_codec::Error::EventTooLarge { limit } => Self::EventTooLarge { limit },
            // `sse_codec::Error` is non-exhaustive: a limit it adds later.
            other => Self::Limit(other),
        }
    }
}

/// Why a connection ended or could not be made: what the client reconnects after.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Disconnect {
    /// The response body ended (the server closed the stream).
    Ended,
    /// A network error: connecting, the HTTP exchange, or reading the body failed.
    Network(Arc<dyn std::error::Error + Send + Sync>),
}

impl Disconnect {
    pub(crate) fn network(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Network(Arc::new(err))
    }

    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Ended => None,
            Self::Network(err) => Some(&**err),
        }
    }
}

impl fmt::Display for Disconnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ended => f.write_str("the stream ended"),
            Self::Network(err) => write!(f, "network error: {err}"),
        }
    }
}
