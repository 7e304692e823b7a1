//! A typed client for this workspace's protocol (`sse-http`): register, open the stream,
//! listen to keys, submit tasks, leave.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use bytes::{Bytes, BytesMut};
use http::{Method, Request, StatusCode, Uri};
use http_body::Body;
use http_body_util::Empty;

use crate::source::{Origin, exchange, origin_form, set_host};
use crate::{Builder, Connect, Disconnect, Runtime};

/// The most of a response body the client reads (an id, a short reason): 16 KiB.
pub const MAX_RESPONSE_BODY: usize = 16 * 1024;

/// The longest client id the client accepts from a server, in bytes (a UUID is 36).
const MAX_ID_LEN: usize = 128;

/// A client id, as the server issued it: the secret that names the client's stream.
///
/// Its `Debug` hides it, and it has no `Display`: the only way to the text is
/// [`expose_secret`](Self::expose_secret), to keep it out of logs by accident.
///
/// ```
/// let id = sse_client::ClientId::parse("0f0e0d0c-0b0a-4908-8706-050403020100").unwrap();
/// assert_eq!(format!("{id:?}"), "ClientId(<secret>)");
/// assert!(sse_client::ClientId::parse("../admin").is_none());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ClientId(Box<str>);

impl ClientId {
    /// Takes an id as the server wrote it: 1 to 128 ASCII letters, digits and `-`, so that it
    /// can stand as a path segment as it is. `None` otherwise.
    pub fn parse(text: &str) -> Option<Self> {
        let ok = !text.is_empty()
            && text.len() <= MAX_ID_LEN
            && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        ok.then(|| Self(text.into()))
    }

    /// The id's text, to store it somewhere safe or to compare it. Never log it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientId(<secret>)")
    }
}

/// Why a protocol request failed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A key, task id or name the protocol cannot take (1 to 64 ASCII letters, digits and
    /// `- _ . : ~`); nothing was sent.
    InvalidToken(&'static str),
    /// The server answered with an unexpected status (`404`: the server does not know the
    /// client, as after a restart; register again).
    Status {
        /// The status.
        status: StatusCode,
        /// The server's reason, from the body (at most [`MAX_RESPONSE_BODY`] bytes, lossy
        /// UTF-8).
        reason: String,
    },
    /// The server's body was longer than [`MAX_RESPONSE_BODY`].
    TooLarge,
    /// The server's answer to a registration was not a client id.
    MalformedId,
    /// Connecting or the HTTP exchange failed.
    Network(Disconnect),
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidToken(what) => write!(
                f,
                "invalid {what}: 1 to 64 ASCII letters, digits and - _ . : ~"
            ),
            Self::Status { status, reason } => write!(f, "the server answered {status}: {reason}"),
            Self::TooLarge => write!(f, "the response was longer than {MAX_RESPONSE_BODY} bytes"),
            Self::MalformedId => f.write_str("the server's answer was not a client id"),
            Self::Network(cause) => write!(f, "{cause}"),
        }
    }
}

impl std::error::Error for ProtocolError {}

/// A client of one server's protocol, under its prefix.
///
/// ```no_run
/// # #[cfg(feature = "tokio")]
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use futures_lite::StreamExt;
/// use sse_client::Item;
///
/// let client = sse_client::tokio::client("http://127.0.0.1:8080/sse/".parse()?);
/// let id = client.register(Some("alice")).await?;
/// client.listen(&id, "news").await?;
/// let mut events = client.events(&id).build();
/// while let Some(item) = events.next().await {
///     match item? {
///         Item::Event(event) if event.event_type() != "registered" => println!("{}", event.data()),
///         Item::Reset(_) => println!("missed some events: reload"),
///         _ => {}
///     }
/// }
/// client.remove(&id).await?;
/// # Ok(())
/// # }
/// # fn main() {
/// #     #[cfg(feature = "tokio")]
/// #     drop(run());
/// # }
/// ```
#[derive(Clone)]
pub struct Client {
    base: Arc<str>,
    runtime: Arc<dyn Runtime>,
    connector: Arc<dyn Connect>,
}

impl Client {
    /// A client for the protocol at `base`: the server's URL with the prefix
    /// (`http://host:port/sse/`; a missing trailing `/` is added).
    pub fn new(base: Uri, runtime: impl Runtime, connector: impl Connect) -> Self {
        let mut base = base.to_string();
        if !base.ends_with('/') {
            base.push('/');
        }
        Self {
            base: base.into(),
            runtime: Arc::new(runtime),
            connector: Arc::new(connector),
        }
    }

    /// `POST clients[?name=N]`: a new client id, with a name if given.
    pub async fn register(&self, name: Option<&str>) -> Result<ClientId, ProtocolError> {
        let path = match name {
            Some(name) => format!("clients?name={}", token(name, "name")?),
            None => "clients".to_owned(),
        };
        let body = self.call(Method::POST, &path, StatusCode::CREATED).await?;
        let text = std::str::from_utf8(&body).map_err(|_| ProtocolError::MalformedId)?;
        ClientId::parse(text.trim()).ok_or(ProtocolError::MalformedId)
    }

    /// `GET events/{id}`: an event source for the client's stream, to set up and build. Its
    /// first event is `registered`, whose data is the id (a secret: do not print it).
    pub fn events(&self, id: &ClientId) -> Builder {
        let uri = self.uri(&format!("events/{}", id.expose_secret()));
        Builder::shared(uri, self.runtime.clone(), self.connector.clone())
    }

    /// `PUT listen/{id}/{key}`: subscribes the client to a key.
    pub async fn listen(&self, id: &ClientId, key: &str) -> Result<(), ProtocolError> {
        let path = format!("listen/{}/{}", id.expose_secret(), token(key, "key")?);
        self.call(Method::PUT, &path, StatusCode::NO_CONTENT)
            .await?;
        Ok(())
    }

    /// `DELETE listen/{id}/{key}`: unsubscribes the client from a key.
    pub async fn unlisten(&self, id: &ClientId, key: &str) -> Result<(), ProtocolError> {
        let path = format!("listen/{}/{}", id.expose_secret(), token(key, "key")?);
        self.call(Method::DELETE, &path, StatusCode::NO_CONTENT)
            .await?;
        Ok(())
    }

    /// `PUT tasks/{id}/{task}`: submits a task; its `progress` and `completed` events come on
    /// the stream (to the client's name).
    pub async fn submit(&self, id: &ClientId, task: &str) -> Result<(), ProtocolError> {
        let path = format!("tasks/{}/{}", id.expose_secret(), token(task, "task id")?);
        self.call(Method::PUT, &path, StatusCode::ACCEPTED).await?;
        Ok(())
    }

    /// `DELETE clients/{id}`: ends the client's stream and forgets it.
    pub async fn remove(&self, id: &ClientId) -> Result<(), ProtocolError> {
        let path = format!("clients/{}", id.expose_secret());
        self.call(Method::DELETE, &path, StatusCode::NO_CONTENT)
            .await?;
        Ok(())
    }

    /// A sleep on the client's runtime (a [`Session`](crate::Session)'s retry delay).
    pub(crate) fn sleep(&self, duration: std::time::Duration) -> crate::BoxFuture<()> {
        self.runtime.sleep(duration)
    }

    fn uri(&self, path: &str) -> Uri {
        // The base parsed as a URI, and every path segment is a checked token or id.
        format!("{}{path}", self.base)
            .parse()
            .unwrap_or_else(|_| Uri::from_static("/"))
    }

    /// One request with an empty body on a new connection; the body of an `expect`ed answer.
    async fn call(
        &self,
        method: Method,
        path: &str,
        expect: StatusCode,
    ) -> Result<Bytes, ProtocolError> {
        let uri = self.uri(path);
        let network = |err: io::Error| ProtocolError::Network(Disconnect::network(err));
        let io = self.connector.connect(&uri).await.map_err(network)?;
        let mut req = Request::new(Empty::<Bytes>::new());
        *req.method_mut() = method;
        *req.uri_mut() = origin_form(&uri);
        set_host(req.headers_mut(), &uri);
        let (response, mut connection) = exchange(io, req).await.map_err(ProtocolError::Network)?;
        let status = response.status();
        let mut body = response.into_body();
        let mut read = BytesMut::new();
        let mut too_large = false;
        poll_fn(|cx| {
            loop {
                if let Some(conn) = &mut connection {
                    if conn.as_mut().poll(cx).is_ready() {
                        connection = None;
                    }
                }
                match Pin::new(&mut body).poll_frame(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(None) => return Poll::Ready(Ok(())),
                    Poll::Ready(Some(Err(err))) => {
                        return Poll::Ready(Err(ProtocolError::Network(Disconnect::network(err))));
                    }
                    Poll::Ready(Some(Ok(frame))) => {
                        if let Ok(data) = frame.into_data() {
                            if read.len() + data.len() > MAX_RESPONSE_BODY {
                                too_large = true;
                                return Poll::Ready(Ok(()));
                            }
                            read.extend_from_slice(&data);
                        }
                    }
                }
            }
        })
        .await?;
        if too_large {
            return Err(ProtocolError::TooLarge);
        }
        if status != expect {
            return Err(ProtocolError::Status {
                status,
                reason: String::from_utf8_lossy(&read).trim().to_owned(),
            });
        }
        Ok(read.freeze())
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let base: Uri = self.base.parse().unwrap_or_default();
        f.debug_struct("Client")
            .field("origin", &Origin(&base))
            .finish_non_exhaustive()
    }
}

/// `value` if the protocol takes it as a key, task id or name (`sse-http`'s rule), so that it
/// goes into a path or query as it is.
pub(crate) fn token<'a>(value: &'a str, what: &'static str) -> Result<&'a str, ProtocolError> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:~".contains(&b));
    if ok {
        Ok(value)
    } else {
        Err(ProtocolError::InvalidToken(what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_path_safe() {
        assert_eq!(token("news.eu:1~x_y-z", "key").unwrap(), "news.eu:1~x_y-z");
        for bad in ["", "a/b", "a?b", "a b", "%2F", "é", &"k".repeat(65)] {
            assert!(token(bad, "key").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ids_are_checked_and_hidden() {
        assert!(ClientId::parse("abc-DEF-123").is_some());
        for bad in ["", "a/b", "a b", "a\n", &"a".repeat(129)] {
            assert!(ClientId::parse(bad).is_none(), "{bad:?}");
        }
        let id = ClientId::parse("abc").unwrap();
        assert!(!format!("{id:?}").contains("abc"));
    }
}
