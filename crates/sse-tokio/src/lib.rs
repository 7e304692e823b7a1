//! Serve the server-sent events protocol ([`sse_http`]) on tokio: a TCP listener, hyper-util's
//! tokio executor and timer, and `tokio::spawn`. Everything else (the accept loop, HTTP/1.1 and
//! h2c, the sweeper, graceful shutdown that ends every open stream first) is
//! [`sse_http::serve_app`], shared with the other adapters.
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
//! [`Sse::handle`] (see `examples/examples/axum_mount.rs`).

use std::future::Future;
use std::io;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
pub use sse_http::{AppBody, AppService, Config, Sse, Task, TaskHandler};
use tokio::net::{TcpListener, TcpStream};

/// The protocol layer's runtime, on tokio.
pub fn runtime() -> sse_http::HyperRuntime<TokioExecutor, TokioTimer> {
    sse_http::HyperRuntime::new(TokioExecutor::new(), TokioTimer::new())
}

/// A service on a new in-memory hub, running tasks on tokio.
pub fn service(config: Config, tasks: impl TaskHandler) -> Sse {
    Sse::new(config, runtime(), tasks)
}

/// Serves `sse` on `listener` until `shutdown` completes, then shuts down gracefully (see
/// [`sse_http::serve`]: event streams on HTTP/1.1 take its lean path). Must run inside a tokio
/// runtime.
pub async fn serve(
    listener: TcpListener,
    sse: Sse,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    tracing::info!(addr = ?listener.local_addr()?, "serving server-sent events on tokio");
    let (executor, timer) = (TokioExecutor::new(), TokioTimer::new());
    sse_http::serve(Tcp(listener), executor, timer, sse, shutdown).await
}

/// Like [`serve`], but beside an application: `app` answers its own routes and hands the
/// protocol's requests to `sse` (with [`Sse::handle`]); the protocol's bodiless HTTP/1.1
/// requests (event streams above all) are answered on the lean path without it (see
/// [`sse_http::serve_app`]).
pub async fn serve_app<S, B>(
    listener: TcpListener,
    sse: Sse,
    app: S,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()>
where
    S: AppService<B>,
    B: AppBody,
{
    tracing::info!(addr = ?listener.local_addr()?, "serving server-sent events on tokio");
    let (executor, timer) = (TokioExecutor::new(), TokioTimer::new());
    sse_http::serve_app(Tcp(listener), executor, timer, sse, app, shutdown).await
}

struct Tcp(TcpListener);

impl sse_http::Listener for Tcp {
    type Io = TokioIo<TcpStream>;

    async fn accept(&mut self) -> io::Result<(Self::Io, std::net::SocketAddr)> {
        let (stream, peer) = self.0.accept().await?;
        // Each event is one small write that must go out at once, not wait for an ACK.
        let _ = stream.set_nodelay(true);
        Ok((TokioIo::new(stream), peer))
    }
}
