//! Serve the server-sent events protocol ([`sse_http`]) on smol: an async-io TCP listener,
//! smol-hyper's executor, timer and I/O glue, and an `Arc<smol::Executor>`. Everything else
//! (the accept loop, HTTP/1.1 and h2c, the sweeper, graceful shutdown that ends every open
//! stream first) is [`sse_http::serve_app`], shared with the other adapters.
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! let ex = Arc::new(smol::Executor::new());
//! smol::block_on(ex.run(async {
//!     let listener = smol::net::TcpListener::bind("127.0.0.1:8080").await?;
//!     let sse = sse_smol::service(&ex, sse_http::Config::default(), |_task: sse_http::Task| async {});
//!     sse_smol::serve(&ex, listener, sse, std::future::pending()).await
//! }))
//! # ; Ok::<(), std::io::Error>(())
//! ```

use std::future::Future;
use std::io;
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::Service;
use smol::Executor;
use smol::net::{TcpListener, TcpStream};
use smol_hyper::rt::{FuturesIo, SmolExecutor, SmolTimer};
pub use sse_http::{Config, Sse, Task, TaskHandler};

/// The executor the server spawns on: it must be running (serve may itself run in `ex.run`).
pub type Ex = Arc<Executor<'static>>;

/// The protocol layer's runtime, on smol.
pub fn runtime(ex: &Ex) -> sse_http::HyperRuntime<SmolExecutor<Ex>, SmolTimer> {
    sse_http::HyperRuntime::new(SmolExecutor::new(ex.clone()), SmolTimer::new())
}

/// A service on a new in-memory hub, running tasks on `ex`.
pub fn service(ex: &Ex, config: Config, tasks: impl TaskHandler) -> Sse {
    Sse::new(config, runtime(ex), tasks)
}

/// Serves `sse` on `listener` until `shutdown` completes, then shuts down gracefully (see
/// [`sse_http::serve_app`]). Connections and tasks are spawned on `ex`.
pub async fn serve(
    ex: &Ex,
    listener: TcpListener,
    sse: Sse,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    serve_app(ex, listener, sse.clone(), sse, shutdown).await
}

/// Like [`serve`], but connections are answered by `app`, an application service that hands
/// the protocol's requests to `sse` (with [`Sse::handle`]) and answers others itself.
pub async fn serve_app<S, B>(
    ex: &Ex,
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
    tracing::info!(addr = ?listener.local_addr()?, "serving server-sent events on smol");
    let (executor, timer) = (SmolExecutor::new(ex.clone()), SmolTimer::new());
    sse_http::serve_app(Tcp(listener), executor, timer, sse, app, shutdown).await
}

struct Tcp(TcpListener);

impl sse_http::Listener for Tcp {
    type Io = FuturesIo<TcpStream>;

    async fn accept(&mut self) -> io::Result<Self::Io> {
        let (stream, _peer) = self.0.accept().await?;
        Ok(FuturesIo::new(stream))
    }
}
