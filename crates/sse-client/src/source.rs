//! The reconnecting event source: connect, check the response, parse the body, wait, reconnect.

use std::fmt;
use std::future::{Future, poll_fn};
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use futures_core::Stream;
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Request, StatusCode, Uri};
use http_body::Body;
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::client::conn::http1;
use sse_codec::{Event, Limits};

use crate::body::{DEFAULT_LIMITS, Decoder, RESET, Step, poll_step};
use crate::{Backoff, BoxFuture, BoxIo, Connect, Disconnect, Error, Runtime};

/// What an [`EventSource`] yields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Item {
    /// A connection opened: the server answered `200` with `text/event-stream` (a browser's
    /// `open` event). The reconnection attempt count starts again.
    Open,
    /// An event was dispatched.
    Event(Event),
    /// The server sent the protocol's `reset` event ([`RESET`](crate::RESET), or the name set
    /// with [`Builder::reset_event`]): it could not replay everything the client missed, so the
    /// client must reload its state. This is the event itself; its id is where the stream now
    /// resumes from.
    Reset(Event),
    /// The connection ended or could not be made; the next attempt starts after `after`.
    Reconnecting {
        /// The attempt about to be made: 1 after a connection that had opened, then 2, 3, ...
        /// while they fail.
        attempt: u32,
        /// The delay before it (see [`Backoff`]).
        after: Duration,
        /// Why the previous connection ended or failed.
        cause: Disconnect,
    },
}

/// Sets up an [`EventSource`]: the URL, the runtime and connector, and the options.
///
/// ```
/// use sse_client::{Backoff, Builder};
///
/// # #[cfg(feature = "tokio")] {
/// let uri: http::Uri = "http://127.0.0.1:8080/sse/events/some-id".parse().unwrap();
/// let source = Builder::new(uri, sse_client::tokio::Tokio, sse_client::tokio::TcpConnector)
///     .header(http::header::AUTHORIZATION, http::HeaderValue::from_static("Bearer t"))
///     .last_event_id("41")
///     .backoff(Backoff { max_attempts: Some(10), ..Backoff::DEFAULT })
///     .build();
/// assert_eq!(source.last_event_id(), "41");
/// # }
/// ```
pub struct Builder {
    uri: Uri,
    runtime: Arc<dyn Runtime>,
    connector: Arc<dyn Connect>,
    headers: HeaderMap,
    last_event_id: String,
    backoff: Backoff,
    limits: Limits,
    reset: Option<Box<str>>,
    idle_timeout: Option<Duration>,
    max_redirects: u32,
}

/// Fetch's limit on redirects in a row, which a browser's `EventSource` follows.
pub const DEFAULT_MAX_REDIRECTS: u32 = 20;

impl Builder {
    /// An event source for `uri`, timed by `runtime`, connecting through `connector`.
    pub fn new(uri: Uri, runtime: impl Runtime, connector: impl Connect) -> Self {
        Self::shared(uri, Arc::new(runtime), Arc::new(connector))
    }

    pub(crate) fn shared(uri: Uri, runtime: Arc<dyn Runtime>, connector: Arc<dyn Connect>) -> Self {
        Self {
            uri,
            runtime,
            connector,
            headers: HeaderMap::new(),
            last_event_id: String::new(),
            backoff: Backoff::DEFAULT,
            limits: DEFAULT_LIMITS,
            reset: Some(RESET.into()),
            idle_timeout: None,
            max_redirects: DEFAULT_MAX_REDIRECTS,
        }
    }

    /// Adds a header to every request (an `Authorization`, say). `Host`, `Accept`,
    /// `Cache-Control` and `Last-Event-ID` are the client's own and replaced.
    #[must_use]
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// Starts from this last event ID (sent as `Last-Event-ID` on the first request), to resume
    /// a stream read earlier. A value that cannot be a header value (see [`EventSource`]) or
    /// that holds NUL (which the parser never produces) is ignored.
    #[must_use]
    pub fn last_event_id(mut self, id: &str) -> Self {
        if header_value(id).is_some() && !id.contains('\0') {
            self.last_event_id = id.to_owned();
        }
        self
    }

    /// The reconnection policy (default: [`Backoff::DEFAULT`]).
    #[must_use]
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The parser's limits (default: [`DEFAULT_LIMITS`](crate::DEFAULT_LIMITS), 1 MiB lines
    /// and events). A stream that breaks one stops with [`Error::LineTooLong`] or
    /// [`Error::EventTooLarge`]: the client holds at most about `max_line_len + max_event_len`
    /// bytes of a stream, plus one read of hyper's.
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The event name reported as [`Item::Reset`] (default `reset`, the protocol's; `None`:
    /// every event is an [`Item::Event`], for other servers).
    #[must_use]
    pub fn reset_event(mut self, name: Option<&str>) -> Self {
        self.reset = name.map(Into::into);
        self
    }

    /// Gives up on a connection that receives nothing for `timeout` (no response head, no
    /// bytes of the body) and reconnects, as after a network error (default: `None`, wait
    /// forever, as a browser does). Set it above the server's keep-alive interval (`sse-http`
    /// sends a comment every 15 s by default) to notice a server that vanished without closing
    /// the connection.
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// How many redirects in a row a connection follows (default
    /// [`DEFAULT_MAX_REDIRECTS`], fetch's 20; `0`: none, a redirect stops the source with
    /// [`Error::Status`]). One more stops it with [`Error::TooManyRedirects`].
    ///
    /// As fetch does for an `EventSource`: `301`, `302`, `303`, `307` and `308` with a
    /// `Location` are followed with a `GET` carrying the same headers and `Last-Event-ID`; a
    /// relative `Location` is resolved against the URL that answered it; a redirect to another
    /// origin (scheme, host or port) drops `Authorization`, `Cookie` and
    /// `Proxy-Authorization`. A reconnection starts again from the URL given to
    /// [`Builder::new`], not from where the last connection was redirected.
    #[must_use]
    pub fn max_redirects(mut self, max: u32) -> Self {
        self.max_redirects = max;
        self
    }

    /// The event source. It connects when first polled.
    pub fn build(self) -> EventSource {
        let mut decoder = Decoder::new(self.limits, self.reset);
        decoder.set_last_event_id(&self.last_event_id);
        EventSource {
            request: Arc::new(RequestParts {
                uri: self.uri,
                headers: self.headers,
                max_redirects: self.max_redirects,
            }),
            runtime: self.runtime,
            connector: self.connector,
            reconnection_time: self.backoff.initial,
            backoff: self.backoff,
            decoder,
            attempt: 0,
            state: State::Idle,
            idle_timeout: self.idle_timeout,
            idle: None,
        }
    }
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("origin", &Origin(&self.uri))
            .field("backoff", &self.backoff)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// A reconnecting `EventSource`, as the WHATWG HTML specification defines it: a
/// [`Stream`] of [`Item`]s that ends after an [`Error`] (or never).
///
/// - Every request is a `GET` with `Accept: text/event-stream`, `Cache-Control: no-store`, and
///   `Last-Event-ID` set to the last event ID string when it is not empty (the parser's "last
///   event ID buffer" rules: the id of the last dispatched event or of the last blank line that
///   followed an `id:` field; an event cut off by a disconnection does not count), as its UTF-8
///   bytes. (An id holding a control character other than tab cannot be a header value: the
///   request then goes without `Last-Event-ID`.)
/// - A `retry:` field sets the reconnection time that [`Backoff`] starts from.
/// - Redirects are followed as fetch follows them (see [`Builder::max_redirects`]).
/// - A network error or the end of the body reconnects ([`Item::Reconnecting`], then
///   [`Item::Open`] once the server answers again); `204`, any other status but `200`, a
///   `Content-Type` other than `text/event-stream`, a broken limit, or
///   [`Backoff::max_attempts`] failures in a row stop it with the [`Error`] that says which.
///
/// The stream drives its HTTP/1.1 connection itself (nothing is spawned): poll it, and dropping
/// it closes the connection. Its `Debug` shows the URL's origin only: a path may hold a secret
/// (the protocol's client id).
pub struct EventSource {
    request: Arc<RequestParts>,
    runtime: Arc<dyn Runtime>,
    connector: Arc<dyn Connect>,
    backoff: Backoff,
    reconnection_time: Duration,
    decoder: Decoder,
    /// Attempts since the last connection that opened.
    attempt: u32,
    state: State,
    idle_timeout: Option<Duration>,
    /// When the current connection times out, if it ever does.
    idle: Option<BoxFuture<()>>,
}

struct RequestParts {
    uri: Uri,
    headers: HeaderMap,
    max_redirects: u32,
}

type Connection = http1::Connection<BoxIo, Empty<Bytes>>;

enum State {
    /// To connect at the next poll.
    Idle,
    Connecting(BoxFuture<Result<Open, Failure>>),
    Streaming(Open),
    Waiting(BoxFuture<()>),
    Done,
}

/// An open connection: the response body, and the connection that feeds it.
struct Open {
    connection: Option<Pin<Box<Connection>>>,
    body: Incoming,
}

enum Failure {
    /// Stop with this error.
    Fatal(Error),
    /// Reconnect.
    Retry(Disconnect),
}

impl EventSource {
    /// The last event ID string: what the next request sends as `Last-Event-ID`.
    pub fn last_event_id(&self) -> &str {
        self.decoder.last_event_id()
    }

    /// The reconnection time: the server's last `retry:`, else [`Backoff::initial`].
    pub fn reconnection_time(&self) -> Duration {
        self.reconnection_time
    }

    fn connect(&self) -> BoxFuture<Result<Open, Failure>> {
        let last_event_id = self.decoder.last_event_id();
        let last_event_id = (!last_event_id.is_empty())
            .then(|| header_value(last_event_id))
            .flatten();
        Box::pin(open(
            self.connector.clone(),
            self.request.clone(),
            last_event_id,
        ))
    }

    /// Starts the idle timeout again (a connection began, or bytes arrived).
    fn rearm(&mut self) {
        if let Some(timeout) = self.idle_timeout {
            self.idle = Some(self.runtime.sleep(timeout));
        }
    }

    /// Ready when the idle timeout has run out; pending forever without one.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match &mut self.idle {
            Some(idle) => idle.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }

    /// After a disconnection: the `Reconnecting` item and the wait, or giving up.
    fn reconnect(&mut self, cause: Disconnect) -> Result<Item, Error> {
        self.idle = None;
        self.decoder.finish();
        if let Some(max) = self.backoff.max_attempts {
            if self.attempt >= max {
                self.state = State::Done;
                return Err(Error::GaveUp {
                    attempts: self.attempt,
                    cause,
                });
            }
        }
        self.attempt += 1;
        let after = self
            .backoff
            .delay(self.attempt, self.reconnection_time, fastrand::f64());
        self.state = State::Waiting(self.runtime.sleep(after));
        Ok(Item::Reconnecting {
            attempt: self.attempt,
            after,
            cause,
        })
    }
}

impl Stream for EventSource {
    type Item = Result<Item, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                State::Idle => {
                    this.state = State::Connecting(this.connect());
                    this.rearm();
                }
                State::Connecting(connecting) => match connecting.as_mut().poll(cx) {
                    Poll::Pending => {
                        ready!(this.poll_idle(cx));
                        return Poll::Ready(Some(this.reconnect(idle_timeout())));
                    }
                    Poll::Ready(Ok(open)) => {
                        this.attempt = 0;
                        this.state = State::Streaming(open);
                        return Poll::Ready(Some(Ok(Item::Open)));
                    }
                    Poll::Ready(Err(Failure::Fatal(err))) => {
                        this.state = State::Done;
                        return Poll::Ready(Some(Err(err)));
                    }
                    Poll::Ready(Err(Failure::Retry(cause))) => {
                        return Poll::Ready(Some(this.reconnect(cause)));
                    }
                },
                State::Streaming(open) => {
                    let connection = &mut open.connection;
                    let drive = |cx: &mut Context<'_>| {
                        // The connection feeds the body; its end (or error) shows there.
                        if let Some(conn) = connection {
                            if conn.as_mut().poll(cx).is_ready() {
                                *connection = None;
                            }
                        }
                    };
                    let step = poll_step(&mut this.decoder, Pin::new(&mut open.body), cx, drive);
                    let cause = match step {
                        Poll::Pending => {
                            ready!(this.poll_idle(cx));
                            idle_timeout()
                        }
                        Poll::Ready(Step::Item(item)) => return Poll::Ready(Some(Ok(item))),
                        Poll::Ready(Step::Retry(ms)) => {
                            this.reconnection_time = Duration::from_millis(ms);
                            continue;
                        }
                        Poll::Ready(Step::Read) => {
                            this.rearm();
                            continue;
                        }
                        Poll::Ready(Step::Limit(limit)) => {
                            // Dropping the body and the connection closes the socket.
                            this.state = State::Done;
                            return Poll::Ready(Some(Err(limit)));
                        }
                        Poll::Ready(Step::End(cause)) => cause,
                    };
                    return Poll::Ready(Some(this.reconnect(cause)));
                }
                State::Waiting(sleep) => {
                    ready!(sleep.as_mut().poll(cx));
                    this.state = State::Idle;
                }
                State::Done => return Poll::Ready(None),
            }
        }
    }
}

impl fmt::Debug for EventSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Idle => "idle",
            State::Connecting(_) => "connecting",
            State::Streaming(_) => "open",
            State::Waiting(_) => "waiting",
            State::Done => "closed",
        };
        f.debug_struct("EventSource")
            .field("origin", &Origin(&self.request.uri))
            .field("state", &state)
            .field("attempt", &self.attempt)
            .field("reconnection_time", &self.reconnection_time)
            .finish_non_exhaustive()
    }
}

/// A URL's scheme and authority, for `Debug`: never its path or query.
pub(crate) struct Origin<'a>(pub(crate) &'a Uri);

impl fmt::Debug for Origin<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = self.0.scheme_str().unwrap_or("");
        let authority = self.0.authority().map_or("", |a| a.as_str());
        write!(f, "\"{scheme}://{authority}/…\"")
    }
}

/// One connection attempt: connect, send the request, follow redirects, check the response
/// head.
async fn open(
    connector: Arc<dyn Connect>,
    request: Arc<RequestParts>,
    last_event_id: Option<HeaderValue>,
) -> Result<Open, Failure> {
    let mut uri = request.uri.clone();
    // The user's headers, until a redirect to another origin drops the credentials.
    let mut credentials = true;
    let mut redirects = 0;
    loop {
        let io = connector.connect(&uri).await.map_err(refused)?;
        let mut req = Request::get(origin_form(&uri))
            .body(Empty::<Bytes>::new())
            .map_err(|err| Failure::Fatal(Error::Unsupported(Arc::new(io::Error::other(err)))))?;
        let headers = req.headers_mut();
        headers.clone_from(&request.headers);
        if !credentials {
            for name in CREDENTIALS {
                headers.remove(name);
            }
        }
        set_host(headers, &uri);
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.remove("last-event-id");
        if let Some(id) = &last_event_id {
            headers.insert("last-event-id", id.clone());
        }
        let (response, connection) = exchange(io, req).await.map_err(Failure::Retry)?;
        let status = response.status();
        match status {
            StatusCode::OK => {}
            StatusCode::NO_CONTENT => return Err(Failure::Fatal(Error::NoContent)),
            _ if is_redirect(status) && request.max_redirects > 0 => {
                // Fetch: a redirect status without a Location is a response like any other.
                let Some(location) = response.headers().get(header::LOCATION) else {
                    return Err(Failure::Fatal(Error::Status(status)));
                };
                if redirects == request.max_redirects {
                    return Err(Failure::Fatal(Error::TooManyRedirects {
                        limit: request.max_redirects,
                    }));
                }
                let (next, same_origin) = redirect(&uri, location)
                    .ok_or(Failure::Fatal(Error::BadRedirect { status }))?;
                redirects += 1;
                credentials &= same_origin;
                uri = next;
                // The redirect's body and connection are dropped: the next hop connects anew.
                continue;
            }
            status => return Err(Failure::Fatal(Error::Status(status))),
        }
        let content_type = response.headers().get(header::CONTENT_TYPE);
        if !content_type.is_some_and(is_event_stream) {
            return Err(Failure::Fatal(Error::ContentType(content_type.cloned())));
        }
        return Ok(Open {
            connection,
            body: response.into_body(),
        });
    }
}

/// The headers a redirect to another origin drops (fetch removes `Authorization`; a cookie or
/// a proxy's credentials are no more the new origin's).
const CREDENTIALS: [HeaderName; 3] = [
    header::AUTHORIZATION,
    header::COOKIE,
    header::PROXY_AUTHORIZATION,
];

/// Whether fetch follows `status` (with a `Location`).
fn is_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// Where a redirect from `from` to `location` goes, and whether it stays on `from`'s origin;
/// `None` if `location` is not a URL (resolved against `from`) or not an `http(s)` one.
fn redirect(from: &Uri, location: &HeaderValue) -> Option<(Uri, bool)> {
    let base = url::Url::parse(&from.to_string()).ok()?;
    let location = std::str::from_utf8(location.as_bytes()).ok()?;
    let mut next = base.join(location).ok()?;
    if !matches!(next.scheme(), "http" | "https") || !next.has_host() {
        return None;
    }
    next.set_fragment(None);
    let uri = next.as_str().parse().ok()?;
    Some((uri, next.origin() == base.origin()))
}

/// The cause of a reconnection after [`Builder::idle_timeout`].
fn idle_timeout() -> Disconnect {
    Disconnect::network(io::Error::new(
        io::ErrorKind::TimedOut,
        "nothing received within the idle timeout",
    ))
}

/// A connector's error: futile (stop) or a network error (reconnect).
fn refused(err: io::Error) -> Failure {
    match err.kind() {
        io::ErrorKind::Unsupported | io::ErrorKind::InvalidInput => {
            Failure::Fatal(Error::Unsupported(Arc::new(err)))
        }
        _ => Failure::Retry(Disconnect::network(err)),
    }
}

/// Sends `req` on a new HTTP/1.1 connection over `io`, driving the connection until the
/// response head is in. The connection is handed back (`None` if it already finished) to be
/// driven while the body is read.
pub(crate) async fn exchange<B>(
    io: BoxIo,
    req: Request<B>,
) -> Result<
    (
        http::Response<Incoming>,
        Option<Pin<Box<http1::Connection<BoxIo, B>>>>,
    ),
    Disconnect,
>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (mut sender, connection) = http1::handshake(io).await.map_err(Disconnect::network)?;
    let mut connection = Some(Box::pin(connection));
    let response = {
        let mut responding = pin!(sender.send_request(req));
        poll_fn(|cx| {
            if let Some(conn) = &mut connection {
                if let Poll::Ready(result) = conn.as_mut().poll(cx) {
                    connection = None;
                    if let Err(err) = result {
                        return Poll::Ready(Err(Disconnect::network(err)));
                    }
                }
            }
            responding.as_mut().poll(cx).map_err(Disconnect::network)
        })
        .await?
    };
    // Without its sender, the connection ends once the body is read.
    drop(sender);
    Ok((response, connection))
}

/// The request target of `uri` in origin form (`/path?query`).
pub(crate) fn origin_form(uri: &Uri) -> Uri {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    path.parse().unwrap_or_else(|_| Uri::from_static("/"))
}

/// `Host` from the URL's authority (hyper's connection-level client does not set it).
pub(crate) fn set_host(headers: &mut HeaderMap, uri: &Uri) {
    if let Some(host) = uri
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    {
        headers.insert(header::HOST, host);
    }
}

/// An id as a `Last-Event-ID` value: its UTF-8 bytes as they are (non-ASCII included); `None`
/// for one with a control character other than tab, which `http` does not let into a header.
fn header_value(id: &str) -> Option<HeaderValue> {
    HeaderValue::from_bytes(id.as_bytes()).ok()
}

/// Whether a `Content-Type` is `text/event-stream` (its MIME type essence, parameters aside,
/// ASCII case-insensitive).
fn is_event_stream(value: &HeaderValue) -> bool {
    let Ok(value) = value.to_str() else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("text/event-stream")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_essence() {
        let ok = |s: &'static str| is_event_stream(&HeaderValue::from_static(s));
        assert!(ok("text/event-stream"));
        assert!(ok("Text/Event-Stream; charset=utf-8"));
        assert!(ok(" text/event-stream ;x=y"));
        assert!(!ok("text/event-streams"));
        assert!(!ok("text/html"));
        assert!(!ok(""));
    }

    #[test]
    fn redirects_resolve_against_the_url_that_answered() {
        let from: Uri = "http://h.example:81/sse/events/a?x=1".parse().unwrap();
        let to = |location: &'static str| {
            redirect(&from, &HeaderValue::from_static(location))
                .map(|(uri, same)| (uri.to_string(), same))
        };
        let same = |s: &str| Some((s.to_owned(), true));
        let other = |s: &str| Some((s.to_owned(), false));
        assert_eq!(to("b"), same("http://h.example:81/sse/events/b"));
        assert_eq!(to("../x?y=2#frag"), same("http://h.example:81/sse/x?y=2"));
        assert_eq!(to("/root"), same("http://h.example:81/root"));
        assert_eq!(to("//g.example/p"), other("http://g.example/p"));
        assert_eq!(to("http://h.example/p"), other("http://h.example/p"));
        assert_eq!(
            to("https://h.example:81/p"),
            other("https://h.example:81/p")
        );
        assert_eq!(to("HTTP://H.EXAMPLE:81/p"), same("http://h.example:81/p"));
        assert_eq!(to("ftp://h.example/p"), None);
        assert_eq!(to("http://"), None);
        assert_eq!(to("data:text/plain,x"), None);
        assert!(is_redirect(StatusCode::SEE_OTHER) && is_redirect(StatusCode::PERMANENT_REDIRECT));
        assert!(
            !is_redirect(StatusCode::NOT_MODIFIED) && !is_redirect(StatusCode::MULTIPLE_CHOICES)
        );
    }

    #[test]
    fn origin_form_and_debug_hide_the_path() {
        let uri: Uri = "http://h.example:81/sse/events/secret-id?x=1"
            .parse()
            .unwrap();
        assert_eq!(origin_form(&uri), "/sse/events/secret-id?x=1");
        assert_eq!(origin_form(&"http://h.example".parse().unwrap()), "/");
        let shown = format!("{:?}", Origin(&uri));
        assert_eq!(shown, "\"http://h.example:81/…\"");
    }

    #[test]
    fn builder_ignores_an_id_that_cannot_be_a_header() {
        struct NoTime;
        impl Runtime for NoTime {
            fn sleep(&self, _: Duration) -> BoxFuture<()> {
                Box::pin(std::future::pending())
            }
        }
        let refuse = |_: &Uri| async { Err::<BoxIo, _>(io::Error::other("offline")) };
        let uri: Uri = "http://h.example/s".parse().unwrap();
        let source = Builder::new(uri.clone(), NoTime, refuse)
            .last_event_id("a\nb")
            .build();
        assert_eq!(source.last_event_id(), "");
        let source = Builder::new(uri, NoTime, refuse).last_event_id("7").build();
        assert_eq!(source.last_event_id(), "7");
        assert!(!format!("{source:?}").contains("/s"));
    }
}
