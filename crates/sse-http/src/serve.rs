//! The accept loop and graceful shutdown, written once over hyper's runtime traits so each
//! adapter only supplies its listener, executor and timer.

use std::future::Future;
use std::io;
use std::time::Duration;

use futures_lite::future;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::rt::{Executor, Timer};
use hyper::service::Service;
use hyper_util::server::conn::auto::{self, HttpServerConnExec};
use hyper_util::server::graceful::GracefulShutdown;

use crate::runtime::BoxFuture;
use crate::service::Sse;

/// A source of accepted connections: a runtime's TCP listener, wrapped by its adapter.
pub trait Listener: Send {
    /// A connection, as hyper reads and writes it.
    type Io: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static;

    /// Accepts the next connection.
    fn accept(&mut self) -> impl Future<Output = io::Result<Self::Io>> + Send;
}

/// An error a service or body may return to hyper.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What [`serve_app`] accepts as the application: a cloneable hyper service whose responses
/// have an [`AppBody`]. Implemented for every such service (`Sse` itself among them).
pub trait AppService<B>:
    Service<
        Request<Incoming>,
        Response = Response<B>,
        Future: Send + 'static,
        Error: Into<BoxError>,
    > + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S, B> AppService<B> for S where
    S: Service<
            Request<Incoming>,
            Response = Response<B>,
            Future: Send + 'static,
            Error: Into<BoxError>,
        > + Clone
        + Send
        + Sync
        + 'static
{
}

/// What [`serve_app`] accepts as a response body. Implemented for every such body.
pub trait AppBody: http_body::Body<Data: Send, Error: Into<BoxError>> + Send + 'static {}

impl<B> AppBody for B where B: http_body::Body<Data: Send, Error: Into<BoxError>> + Send + 'static {}

/// Serves `app` on `listener` until `shutdown` completes, then shuts down gracefully: stops
/// accepting, ends every open stream of `sse`, and waits up to
/// [`Config::shutdown_timeout`](crate::Config::shutdown_timeout) for the connections to
/// finish. Also runs `sse`'s stale sweeper. Every connection speaks HTTP/1.1 or HTTP/2 (h2c),
/// whichever the client starts with.
///
/// `app` is usually `sse` itself, or an application service that hands the protocol's requests
/// to [`Sse::handle`] and answers others itself.
pub async fn serve_app<L, E, T, S, B>(
    mut listener: L,
    executor: E,
    timer: T,
    sse: Sse,
    app: S,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()>
where
    L: Listener,
    E: Executor<BoxFuture> + HttpServerConnExec<S::Future, B> + Clone + Send + Sync + 'static,
    T: Timer + Clone + Send + Sync + 'static,
    S: AppService<B>,
    B: AppBody,
{
    // The sweeper stops when `stop_sweeper` is dropped, at the end of this function.
    let (stop_sweeper, stopped) = tokio::sync::oneshot::channel::<()>();
    let sweeper = sse.clone().sweeper();
    executor.execute(Box::pin(async move {
        future::or(sweeper, async {
            let _ = stopped.await;
        })
        .await;
    }));
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(executor.clone());
    builder.http1().timer(timer.clone());
    builder.http2().timer(timer.clone());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = future::or(async { Some(listener.accept().await) }, async {
            (&mut shutdown).await;
            None
        })
        .await;
        match accepted {
            Some(Ok(io)) => {
                let conn = builder.serve_connection(io, app.clone());
                let conn = graceful.watch(conn.into_owned());
                executor.execute(Box::pin(async move {
                    if let Err(err) = conn.await {
                        tracing::debug!(%err, "connection ended with an error");
                    }
                }));
            }
            Some(Err(err)) => {
                // Out of file descriptors, say: back off instead of spinning.
                tracing::warn!(%err, "accept failed");
                timer.sleep(Duration::from_millis(50)).await;
            }
            None => break,
        }
    }
    drop(listener);
    sse.shutdown().await;
    let finished = future::or(
        async {
            graceful.shutdown().await;
            true
        },
        async {
            timer.sleep(sse.config().shutdown_timeout).await;
            false
        },
    )
    .await;
    if !finished {
        tracing::warn!("connections still open after the shutdown timeout; dropping them");
    }
    drop(stop_sweeper);
    Ok(())
}
