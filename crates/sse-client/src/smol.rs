//! The client on smol: a timer, a plain-TCP connector, and the entry points that use them.

use std::io;
use std::time::Duration;

use http::Uri;
use smol_hyper::rt::FuturesIo;

use crate::rt::http_host_port;
use crate::{BoxFuture, BoxIo, Builder, Client, Connect, EventSource, Runtime};

/// async-io's timer (smol's), on any executor.
#[derive(Debug, Clone, Copy, Default)]
pub struct Smol;

impl Runtime for Smol {
    fn sleep(&self, duration: Duration) -> BoxFuture<()> {
        let timer = async_io::Timer::after(duration);
        Box::pin(async move {
            timer.await;
        })
    }
}

/// Plain TCP on smol, for `http://` URLs (an `https://` one is
/// [`Error::Unsupported`](crate::Error::Unsupported): bring a TLS connector for it). Sets
/// `TCP_NODELAY`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpConnector;

impl Connect for TcpConnector {
    fn connect(&self, uri: &Uri) -> BoxFuture<io::Result<BoxIo>> {
        let target = http_host_port(uri);
        Box::pin(async move {
            let (host, port) = target?;
            let stream = smol::net::TcpStream::connect((host.as_str(), port)).await?;
            stream.set_nodelay(true)?;
            Ok(Box::new(FuturesIo::new(stream)) as BoxIo)
        })
    }
}

/// A [`Builder`] for `uri` on smol over plain TCP.
pub fn builder(uri: Uri) -> Builder {
    Builder::new(uri, Smol, TcpConnector)
}

/// An event source for `uri` with the default options, on smol over plain TCP.
pub fn event_source(uri: Uri) -> EventSource {
    builder(uri).build()
}

/// A protocol [`Client`] for the server whose protocol prefix is at `base`
/// (`http://host:port/sse/`), on smol over plain TCP.
pub fn client(base: Uri) -> Client {
    Client::new(base, Smol, TcpConnector)
}
