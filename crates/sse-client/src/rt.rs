//! The two seams to a runtime: a timer, and a connector that turns a URL into a byte stream.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::time::Duration;

use http::Uri;

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A connection's byte stream, as hyper reads and writes it: a TCP stream, a TLS stream over
/// one, an in-memory pipe. Implemented for every type that has hyper's I/O traits.
pub trait Io: hyper::rt::Read + hyper::rt::Write + Send + Unpin + 'static {}

impl<T: hyper::rt::Read + hyper::rt::Write + Send + Unpin + 'static> Io for T {}

/// A boxed [`Io`], what a [`Connect`] hands over.
pub type BoxIo = Box<dyn Io>;

/// Opens a connection for a URL: the seam where a user brings TLS (wrap the TCP stream in
/// rustls for `https`) or anything else that carries bytes.
///
/// Implemented for closures `Fn(&Uri) -> impl Future<Output = io::Result<impl Io>>`. An error of
/// kind [`io::ErrorKind::Unsupported`] or [`io::ErrorKind::InvalidInput`] says that the URL can
/// never be reached this way and stops an event source
/// ([`Error::Unsupported`](crate::Error::Unsupported)); any other error is a network error,
/// after which it reconnects.
///
/// ```
/// use std::io;
/// use sse_client::{BoxIo, Connect};
///
/// // A connector that can reach nothing; a real one dials `uri.host()` and `uri.port_u16()`.
/// let refuse = |_uri: &http::Uri| async {
///     Err::<BoxIo, _>(io::Error::new(io::ErrorKind::Unsupported, "no network here"))
/// };
/// fn is_connector(_: &impl Connect) {}
/// is_connector(&refuse);
/// ```
pub trait Connect: Send + Sync + 'static {
    /// Opens a connection to the server of `uri` (its scheme and authority; the path is for the
    /// request, which the client writes itself).
    fn connect(&self, uri: &Uri) -> BoxFuture<io::Result<BoxIo>>;
}

impl<F, Fut, T> Connect for F
where
    F: Fn(&Uri) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = io::Result<T>> + Send + 'static,
    T: Io,
{
    fn connect(&self, uri: &Uri) -> BoxFuture<io::Result<BoxIo>> {
        let connecting = self(uri);
        Box::pin(async move { Ok(Box::new(connecting.await?) as BoxIo) })
    }
}

/// What the client needs from an async runtime: a timer for the reconnection delay.
///
/// Nothing is spawned: an [`EventSource`](crate::EventSource) drives its own HTTP connection
/// from its `poll_next`, so dropping it closes the connection at once and it runs on any
/// executor.
pub trait Runtime: Send + Sync + 'static {
    /// A future that completes after `duration`.
    fn sleep(&self, duration: Duration) -> BoxFuture<()>;
}

/// The host and port of a URL, for a plain-TCP connector: `http` only, port 80 by default.
#[cfg_attr(not(any(feature = "tokio", feature = "smol")), allow(dead_code))]
pub(crate) fn http_host_port(uri: &Uri) -> io::Result<(String, u16)> {
    if uri.scheme_str() != Some("http") {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "a plain-TCP connector reaches http:// URLs only (bring a TLS connector for https)",
        ));
    }
    let host = uri
        .host()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the URL has no host"))?;
    // `Uri::host` keeps the brackets of an IPv6 literal.
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok((host.to_owned(), uri.port_u16().unwrap_or(80)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_of_http_urls_only() {
        let hp = |s: &str| http_host_port(&s.parse().unwrap());
        assert_eq!(hp("http://a.example/x").unwrap(), ("a.example".into(), 80));
        assert_eq!(hp("http://[::1]:8080/").unwrap(), ("::1".into(), 8080));
        assert_eq!(
            hp("https://a.example/").unwrap_err().kind(),
            io::ErrorKind::Unsupported
        );
        assert_eq!(hp("/path").unwrap_err().kind(), io::ErrorKind::Unsupported);
    }
}
