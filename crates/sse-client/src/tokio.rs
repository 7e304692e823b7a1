//! The client on tokio: a timer, a plain-TCP connector, and the entry points that use them.

use std::io;
use std::time::Duration;

use http::Uri;
use hyper_util::rt::TokioIo;

use crate::rt::http_host_port;
use crate::{BoxFuture, BoxIo, Builder, Client, Connect, EventSource, Runtime};

/// Tokio's timer. Needs a tokio runtime with the time driver on.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tokio;

impl Runtime for Tokio {
    fn sleep(&self, duration: Duration) -> BoxFuture<()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// Plain TCP on tokio, for `http://` URLs (an `https://` one is
/// [`Error::Unsupported`](crate::Error::Unsupported): bring a TLS connector for it). Sets
/// `TCP_NODELAY`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpConnector;

impl Connect for TcpConnector {
    fn connect(&self, uri: &Uri) -> BoxFuture<io::Result<BoxIo>> {
        let target = http_host_port(uri);
        Box::pin(async move {
            let (host, port) = target?;
            let stream = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            stream.set_nodelay(true)?;
            Ok(Box::new(TokioIo::new(stream)) as BoxIo)
        })
    }
}

/// A [`Builder`] for `uri` on tokio over plain TCP.
pub fn builder(uri: Uri) -> Builder {
    Builder::new(uri, Tokio, TcpConnector)
}

/// An event source for `uri` with the default options, on tokio over plain TCP.
pub fn event_source(uri: Uri) -> EventSource {
    builder(uri).build()
}

/// A protocol [`Client`] for the server whose protocol prefix is at `base`
/// (`http://host:port/sse/`), on tokio over plain TCP.
pub fn client(base: Uri) -> Client {
    Client::new(base, Tokio, TcpConnector)
}
