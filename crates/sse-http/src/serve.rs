//! The accept loop and graceful shutdown, written once over hyper's runtime traits so each
//! adapter only supplies its listener, executor and timer.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_lite::future;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::rt::{Executor, Timer};
use hyper::service::Service;
use hyper_util::server::conn::auto::{self, HttpServerConnExec};
use hyper_util::server::graceful::GracefulShutdown;

use crate::body::Body;
use crate::kill::{self, until_killed};
use crate::lean;
use crate::peers::PeerAddr;
use crate::runtime::BoxFuture;
use crate::service::Sse;

/// The most hyper buffers for one HTTP/1.1 connection's reads (see `run`).
const HYPER_MAX_BUF: usize = 64 * 1024;

/// A source of accepted connections: a runtime's TCP listener, wrapped by its adapter.
pub trait Listener: Send {
    /// A connection, as hyper reads and writes it.
    type Io: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static;

    /// Accepts the next connection; with the address it came from.
    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Io, SocketAddr)>> + Send;
}

/// The application's service for one connection: every request gets the connection's
/// [`PeerAddr`] in its extensions.
#[derive(Clone)]
struct WithPeer<S> {
    app: S,
    peer: SocketAddr,
}

impl<S, B> Service<Request<Incoming>> for WithPeer<S>
where
    S: Service<Request<Incoming>, Response = Response<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        req.extensions_mut().insert(PeerAddr(self.peer));
        self.app.call(req)
    }
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

/// Serves `sse` on `listener` until `shutdown` completes, then shuts down gracefully (see
/// [`serve_app`]).
///
/// Unlike `serve_app(…, sse.clone(), sse, …)`, bodiless HTTP/1.1 requests (registering,
/// subscribing, opening a stream) are answered by a lean writer instead of hyper when
/// [`Config::lean_streams`](crate::Config::lean_streams) is on (the default): the same
/// responses, a stream close-delimited, for about 1 KiB per open stream instead of hyper's
/// per-connection buffers (8–24 KiB). A connection goes to hyper for good at its first request
/// with a body, or on HTTP/2.
pub async fn serve<L, E, T>(
    listener: L,
    executor: E,
    timer: T,
    sse: Sse,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()>
where
    L: Listener,
    E: Executor<BoxFuture>
        + HttpServerConnExec<<Sse as Service<Request<Incoming>>>::Future, Body>
        + Clone
        + Send
        + Sync
        + 'static,
    T: Timer + Clone + Send + Sync + 'static,
{
    let lean = sse.config().lean_streams.then_some(Lean::All);
    run(listener, executor, timer, sse.clone(), sse, lean, shutdown).await
}

/// Serves `app` on `listener` until `shutdown` completes, then shuts down gracefully: stops
/// accepting, ends every open stream of `sse`, and waits up to
/// [`Config::shutdown_timeout`](crate::Config::shutdown_timeout) for the connections to
/// finish. Also runs `sse`'s stale sweeper. Every connection speaks HTTP/1.1 or HTTP/2 (h2c),
/// whichever the client starts with.
///
/// `app` is an application service (a hyper `service_fn`, an axum `Router`) that answers its
/// own routes and hands the protocol's requests to [`Sse::handle`]. With
/// [`Config::lean_streams`](crate::Config::lean_streams) on (the default), bodiless HTTP/1.1
/// requests under the protocol's prefix (registering, subscribing, event streams) are answered
/// by `sse` on [`serve`]'s lean path, without `app`, for a few KiB per open stream instead of
/// hyper's buffers; the first request of a connection that is not one of those (any of the
/// application's, or one with a body) hands the connection to hyper and `app` for good. So
/// `app`'s middleware does not see the requests of the lean path: what it would check there
/// (who a request is, whether it may subscribe) belongs in the service's identity seam, which
/// runs on both paths.
pub async fn serve_app<L, E, T, S, B>(
    listener: L,
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
    let lean = sse.config().lean_streams.then_some(Lean::Prefix);
    run(listener, executor, timer, sse, app, lean, shutdown).await
}

/// Which requests the lean path answers.
#[derive(Clone, Copy)]
enum Lean {
    /// Every bodiless HTTP/1.1 request (`app` is `sse`).
    All,
    /// Those under the protocol's prefix (the rest are `app`'s).
    Prefix,
}

/// The accept loop of [`serve`] and [`serve_app`]; `lean`: which requests the lean path
/// answers (none without it).
async fn run<L, E, T, S, B>(
    mut listener: L,
    executor: E,
    timer: T,
    sse: Sse,
    app: S,
    lean: Option<Lean>,
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
    let head_timeout = sse.config().head_timeout;
    builder
        .http1()
        .timer(timer.clone())
        .header_read_timeout(head_timeout)
        // hyper's read buffer grows to fit what a peer sends, by default up to ~408 KiB per
        // connection (a head of 400 KiB, say); 64 KiB bounds what a thousand such peers cost
        // and still reads a body of `max_body` in pieces.
        .max_buf_size(HYPER_MAX_BUF);
    builder.http2().timer(timer.clone());
    let builder = Arc::new(builder);
    // Killed when the shutdown timeout has passed (or this returns): connections still open
    // are dropped.
    let (kill, killed) = kill::switch();
    // Fired when the accept loop stops: lean connections idle between requests close, as
    // hyper's do on a graceful shutdown.
    let (drain, draining) = kill::switch();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = future::or(async { Some(listener.accept().await) }, async {
            (&mut shutdown).await;
            None
        })
        .await;
        match accepted {
            Some(Ok((io, peer))) => {
                let app = WithPeer {
                    app: app.clone(),
                    peer,
                };
                let Some(lean) = lean else {
                    let conn = builder.serve_connection(io, app);
                    let conn = graceful.watch(conn.into_owned());
                    executor.execute(until_killed(killed.clone(), async move {
                        if let Err(err) = conn.await {
                            tracing::debug!(%err, "connection ended with an error");
                        }
                    }));
                    continue;
                };
                // The watcher, held until the connection ends, makes the graceful shutdown
                // wait for lean connections too.
                let watcher = graceful.watcher();
                let (builder, sse, timer) = (builder.clone(), sse.clone(), timer.clone());
                let draining = draining.clone();
                executor.execute(until_killed(killed.clone(), async move {
                    let prefix = match lean {
                        Lean::All => None,
                        Lean::Prefix => Some(sse.config().prefix.as_str()),
                    };
                    let mut io = io;
                    let mut buf = Vec::new();
                    loop {
                        let idle = buf.is_empty();
                        let next = future::or(lean::next(&mut io, &mut buf, prefix), async {
                            // Idle between requests: closed at once on a shutdown.
                            if idle {
                                future::or(draining.wait(), timer.sleep(head_timeout)).await;
                            } else {
                                timer.sleep(head_timeout).await;
                            }
                            lean::Next::Closed
                        })
                        .await;
                        match next {
                            lean::Next::Request(req) => {
                                if buf.is_empty() {
                                    // Nothing pipelined: free the head's buffer meanwhile.
                                    buf = Vec::new();
                                }
                                let mut req = *req;
                                req.extensions_mut().insert(PeerAddr(peer));
                                if !lean::respond(&mut io, &sse, req, draining.is_killed()).await {
                                    break;
                                }
                            }
                            lean::Next::Hyper(head) => {
                                let io = lean::Rewind::new(head, io);
                                let conn = builder.serve_connection(io, app).into_owned();
                                // Boxed: the lean connections' tasks need not be as large.
                                if let Err(err) = Box::pin(watcher.watch(conn)).await {
                                    tracing::debug!(%err, "connection ended with an error");
                                }
                                return;
                            }
                            lean::Next::Closed => break,
                        }
                    }
                    drop(watcher);
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
    drain.kill();
    sse.shutdown().await;
    // Completes once every connection task has ended: each holds a watcher (or a watched
    // connection) until then.
    let mut drained = std::pin::pin!(graceful.shutdown());
    let finished = future::or(
        async {
            (&mut drained).await;
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
        // Their tasks drop the connections when next polled, which is waited for (up to a
        // second), so that they are closed even if the executor stops with `serve`.
        kill.kill();
        future::or(drained, timer.sleep(Duration::from_secs(1))).await;
    }
    drop(stop_sweeper);
    Ok(())
}
