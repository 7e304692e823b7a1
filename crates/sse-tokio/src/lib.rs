//! Serve the server-sent events protocol ([`sse_http`]) on tokio: the accept loop, HTTP/1.1
//! and HTTP/2 (h2c) through hyper-util, the periodic sweeper, and graceful shutdown that ends
//! every open stream first (so SSE streams never hold a shutdown up).
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let sse = sse_tokio::service(sse_http::Config::default(), |_task: sse_http::Task| async {});
//! sse_tokio::serve(listener, sse, async { tokio::signal::ctrl_c().await.ok(); }).await
//! # }
//! ```
//!
//! To mount the protocol in an existing hyper or axum application instead, build the service
//! with [`service`], spawn [`Sse::sweeper`] once, and route requests under the prefix to
//! [`Sse::handle`] (see `examples/axum_mount.rs`).

use std::future::Future;
use std::io;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::Service;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
pub use sse_http::{Config, Sse, Task, TaskHandler};
use tokio::net::TcpListener;

/// The protocol layer's runtime, on tokio.
pub fn runtime() -> sse_http::HyperRuntime<TokioExecutor, TokioTimer> {
    sse_http::HyperRuntime::new(TokioExecutor::new(), TokioTimer::new())
}

/// A service on a new in-memory hub, running tasks on tokio.
pub fn service(config: Config, tasks: impl TaskHandler) -> Sse {
    Sse::new(config, runtime(), tasks)
}

/// Serves `sse` on `listener` until `shutdown` completes, then shuts down gracefully: stops
/// accepting, ends every open stream, and waits up to [`Config::shutdown_timeout`] for the
/// connections to finish. Also runs the service's stale sweeper.
pub async fn serve(
    listener: TcpListener,
    sse: Sse,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    serve_app(listener, sse.clone(), sse, shutdown).await
}

/// Like [`serve`], but connections are answered by `app`, an application service that hands
/// the protocol's requests to `sse` (with [`Sse::handle`]) and answers others itself.
pub async fn serve_app<S, B>(
    listener: TcpListener,
    sse: Sse,
    app: S,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()>
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let sweeper = tokio::spawn(sse.clone().sweeper());
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    builder.http2().timer(TokioTimer::new());
    tracing::info!(addr = ?listener.local_addr()?, "serving server-sent events");
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let conn = builder.serve_connection(TokioIo::new(stream), app.clone());
                    let conn = graceful.watch(conn.into_owned());
                    tokio::spawn(async move {
                        if let Err(err) = conn.await {
                            tracing::debug!(%err, "connection ended with an error");
                        }
                    });
                }
                Err(err) => {
                    // Out of file descriptors, say: back off instead of spinning.
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    sse.shutdown().await;
    if tokio::time::timeout(sse.config().shutdown_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the shutdown timeout; dropping them");
    }
    sweeper.abort();
    Ok(())
}
