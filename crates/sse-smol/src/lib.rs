//! Serve the server-sent events protocol ([`sse_http`]) on smol: an async-io TCP listener,
//! smol-hyper's executor and timer, a readiness-driven I/O glue of its own, and an
//! `Arc<smol::Executor>`. Everything else
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
use std::io::{self, IoSlice, Read};
use std::net::Shutdown;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use hyper::rt::ReadBufCursor;
use smol::io::AsyncWrite;
use smol::net::TcpListener;
use smol::{Async, Executor};
use smol_hyper::rt::{SmolExecutor, SmolTimer};
pub use sse_http::{AppBody, AppService, Config, Sse, Task, TaskHandler};

/// The executor the server spawns on: it must be running (serve may itself run in `ex.run`).
pub type Ex = Arc<Executor<'static>>;

/// How many streams a broadcast wakes before yielding, on smol ([`sse_http::Runtime::wake_slice`]).
///
/// smol's executor runs tasks in the order they were woken, so every stream of a slice writes
/// before a request that arrived meanwhile is read: at a few µs per write, 256 streams hold it
/// up by a millisecond or two. At 19,000 streams (`BENCHMARKS.md`) a broadcast `POST` waited
/// 2–3 ms (p50) with 256, 7–9 ms with 1,024 and 36–106 ms with 4,096, the hub's default slice,
/// which also cost more CPU per event (the coordinator's next broadcast waits for the `POST`).
pub const WAKE_SLICE: usize = 256;

/// The protocol layer's runtime, on smol.
pub fn runtime(ex: &Ex) -> sse_http::HyperRuntime<SmolExecutor<Ex>, SmolTimer> {
    sse_http::HyperRuntime::new(SmolExecutor::new(ex.clone()), SmolTimer::new())
        .with_wake_slice(WAKE_SLICE)
}

/// A service on a new in-memory hub, running tasks on `ex`.
pub fn service(ex: &Ex, config: Config, tasks: impl TaskHandler) -> Sse {
    Sse::new(config, runtime(ex), tasks)
}

/// Serves `sse` on `listener` until `shutdown` completes, then shuts down gracefully (see
/// [`sse_http::serve`]: event streams on HTTP/1.1 take its lean path). Connections and tasks
/// are spawned on `ex`.
pub async fn serve(
    ex: &Ex,
    listener: TcpListener,
    sse: Sse,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    tracing::info!(addr = ?listener.local_addr()?, "serving server-sent events on smol");
    let (executor, timer) = (SmolExecutor::new(ex.clone()), SmolTimer::new());
    sse_http::serve(Tcp(listener), executor, timer, sse, shutdown).await
}

/// Like [`serve`], but beside an application: `app` answers its own routes and hands the
/// protocol's requests to `sse` (with [`Sse::handle`]); the protocol's bodiless HTTP/1.1
/// requests (event streams above all) are answered on the lean path without it (see
/// [`sse_http::serve_app`]).
pub async fn serve_app<S, B>(
    ex: &Ex,
    listener: TcpListener,
    sse: Sse,
    app: S,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()>
where
    S: AppService<B>,
    B: AppBody,
{
    tracing::info!(addr = ?listener.local_addr()?, "serving server-sent events on smol");
    let (executor, timer) = (SmolExecutor::new(ex.clone()), SmolTimer::new());
    sse_http::serve_app(Tcp(listener), executor, timer, sse, app, shutdown).await
}

struct Tcp(TcpListener);

impl sse_http::Listener for Tcp {
    type Io = Io;

    async fn accept(&mut self) -> io::Result<(Self::Io, std::net::SocketAddr)> {
        let (stream, peer) = self.0.accept().await?;
        // Each event is one small write that must go out at once, not wait for an ACK.
        let _ = stream.set_nodelay(true);
        let io = Io {
            stream: stream.into(),
            readable: true,
        };
        Ok((io, peer))
    }
}

/// A connection as hyper reads and writes it.
///
/// In place of smol-hyper's `FuturesIo`, which zeroes hyper's whole read buffer (8 KiB) and
/// tries a `recv` every time hyper polls the connection, as hyper does after each frame of an
/// event stream: on an idle stream that was a syscall and an 8 KiB memset per event, and every
/// page of every read buffer resident. Here a read that would block waits for the reactor's
/// readiness, and polls before it cost nothing.
struct Io {
    stream: Arc<Async<std::net::TcpStream>>,
    /// No read has hit `WouldBlock` since the reactor last said the socket was readable.
    readable: bool,
}

/// The most one read takes, through a buffer on the stack (hyper's is uninitialised, and safe
/// code can only copy into it).
const READ_CHUNK: usize = 4096;

impl hyper::rt::Read for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.readable {
                ready!(this.stream.poll_readable(cx))?;
                this.readable = true;
            }
            let mut chunk = [0u8; READ_CHUNK];
            let len = buf.remaining().min(READ_CHUNK);
            match this.stream.get_ref().read(&mut chunk[..len]) {
                Ok(n) => {
                    buf.put_slice(&chunk[..n]);
                    return Poll::Ready(Ok(()));
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => this.readable = false,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Poll::Ready(Err(err)),
            }
        }
    }
}

impl hyper::rt::Write for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self.stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.stream.get_ref().shutdown(Shutdown::Write))
    }
}

#[cfg(test)]
mod tests {
    use sse_http::Runtime as _;

    #[test]
    fn broadcasts_wake_in_small_slices_on_smol() {
        let ex: super::Ex = std::sync::Arc::new(smol::Executor::new());
        assert_eq!(super::runtime(&ex).wake_slice(), super::WAKE_SLICE);
        let default = sse_http::HyperRuntime::new(
            super::SmolExecutor::new(ex.clone()),
            super::SmolTimer::new(),
        );
        assert!(super::WAKE_SLICE < default.wake_slice());
    }
}
