//! Run with: `cargo run --release -p sse-loadbench --bin bench-server -- --mode tokio --listen 127.0.0.1:8080 --admin-token TOKEN`
//!
//! The server under test of the load benchmark, one mode per process so that its CPU time and
//! memory can be read from `/proc/<pid>`:
//!
//! - `tokio`: our protocol ([`sse_http`]) served by [`sse_tokio`];
//! - `smol`: the same served by [`sse_smol`];
//! - `baseline`: what a Rust user writes today: axum's `Sse` response over a
//!   `tokio::sync::broadcast` channel, on the same three routes (`POST /sse/clients` answers a
//!   random id, `GET /sse/events/{id}` streams `registered` then every broadcast, and
//!   `POST /sse/broadcast` sends the body to every receiver and answers
//!   `{"delivered": receiver_count}`). It has no replay: `Last-Event-ID` is ignored.
//! - `floor`: [`sse_loadbench::floor`], the same routes with nothing but one `send` per client
//!   per broadcast: what the machine allows any server.
//! - `axum-mount`: ours inside an axum application served by `axum::serve`, as
//!   `examples/examples/axum_mount.rs` embeds it (hyper holds every connection).
//!
//! The demo binary (`cargo run --release --bin demo`) is measured as it is, not through this
//! harness: `loadgen --modes demo-tokio,demo-smol` starts it.
//!
//! With `--redis URL` (tokio and smol modes), the hub is shared with every other server on that
//! Redis through [`sse_redis::RedisBackend`], as `sse_http::Sse::with_backend` wires it: the
//! two-node runs of `loadgen --nodes 2` start two of these on one `redis-server`.
//!
//! It prints `listening ADDR` on stdout once the socket listens. `loadgen` starts it with
//! `--exit-on-stdin-eof`, so that it ends with the coordinator whatever happens; `--max-seconds`
//! bounds its life in any case.

use std::convert::Infallible;
use std::io::{self, BufRead, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use clap::{Parser, ValueEnum};
use sse_http::{Config, Runtime, Task};
use sse_redis::{RedisBackend, RedisConfig};
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::{Stream, StreamExt};

/// Which server to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Ours, on sse-tokio.
    Tokio,
    /// Ours, on sse-smol.
    Smol,
    /// axum's `Sse` over a `tokio::sync::broadcast` channel.
    Baseline,
    /// The floor: one `send` per client per broadcast, nothing else.
    Floor,
    /// Ours mounted in an axum application served by `axum::serve`, exactly as
    /// `examples/examples/axum_mount.rs` does (`sse_examples::axum_router`): hyper holds every
    /// connection.
    AxumMount,
}

#[derive(Debug, Parser)]
#[command(about = "The server under test of the sse load benchmark")]
struct Args {
    /// Which server to run.
    #[arg(long, value_enum)]
    mode: Mode,
    /// Address to listen on (port 0: any free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Bearer token of the admin routes.
    #[arg(long, default_value = sse_loadbench::ADMIN_TOKEN)]
    admin_token: String,
    /// Runtime threads (tokio workers; smol executor threads).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// The listen backlog (the kernel caps it at net.core.somaxconn).
    #[arg(long, default_value_t = 4096)]
    backlog: i32,
    /// The baseline's broadcast channel capacity.
    #[arg(long, default_value_t = 1024)]
    baseline_capacity: usize,
    /// Share the hub with the other servers on this Redis (`redis://127.0.0.1:6379`); tokio
    /// and smol modes only. Without it, the hub is in memory.
    #[arg(long)]
    redis: Option<String>,
    /// Whether stream connections take `sse_http::serve`'s lean path (ours only); also from
    /// the environment, so that `loadgen` runs can compare both.
    #[arg(long, env = "BENCH_LEAN_STREAMS", default_value_t = true, action = clap::ArgAction::Set)]
    lean_streams: bool,
    /// Exit as soon as standard input ends (how loadgen ties the server's life to its own).
    #[arg(long)]
    exit_on_stdin_eof: bool,
    /// Exit after this many seconds whatever happens.
    #[arg(long, default_value_t = 3600)]
    max_seconds: u64,
}

fn main() -> io::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(io::stderr)
        .init();
    if args.redis.is_some() && matches!(args.mode, Mode::Baseline | Mode::Floor | Mode::AxumMount) {
        return Err(io::Error::other("--redis needs --mode tokio or smol"));
    }
    sse_loadbench::raise_fd_limit()?;
    let listener = listen(args.listen, args.backlog)?;
    let addr = listener.local_addr()?;
    if args.exit_on_stdin_eof {
        std::thread::spawn(|| {
            let mut sink = String::new();
            let mut stdin = io::stdin().lock();
            while matches!(stdin.read_line(&mut sink), Ok(n) if n > 0) {
                sink.clear();
            }
            std::process::exit(0);
        });
    }
    let max = Duration::from_secs(args.max_seconds);
    std::thread::spawn(move || {
        std::thread::sleep(max);
        eprintln!("bench-server: --max-seconds reached, exiting");
        std::process::exit(3);
    });
    let mut out = io::stdout().lock();
    writeln!(out, "listening {addr}")?;
    out.flush()?;
    drop(out);

    let mut config = Config::default();
    config.admin_token = Some(args.admin_token.clone());
    config.lean_streams = args.lean_streams;
    // Off, explicitly: the generator opens thousands of streams from each of 8 addresses.
    config.peer_limits = None;
    let threads = args.threads.max(1);
    match args.mode {
        Mode::Tokio => tokio_runtime(threads)?.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            let sse = match &args.redis {
                None => sse_tokio::service(config, |_task: Task| async {}),
                Some(url) => shared(config, Arc::new(sse_tokio::runtime()), url)?,
            };
            sse_tokio::serve(listener, sse, std::future::pending()).await
        }),
        Mode::Smol => {
            let ex: sse_smol::Ex = Arc::new(smol::Executor::new());
            for _ in 1..threads {
                let ex = ex.clone();
                std::thread::spawn(move || smol::block_on(ex.run(std::future::pending::<()>())));
            }
            smol::block_on(ex.run(async {
                let listener = smol::net::TcpListener::try_from(listener)?;
                let sse = match &args.redis {
                    None => sse_smol::service(&ex, config, |_task: Task| async {}),
                    Some(url) => shared(config, Arc::new(sse_smol::runtime(&ex)), url)?,
                };
                sse_smol::serve(&ex, listener, sse, std::future::pending()).await
            }))
        }
        Mode::Baseline => tokio_runtime(threads)?.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            let app = baseline(args.admin_token, args.baseline_capacity);
            axum::serve(listener, app).await
        }),
        Mode::AxumMount => tokio_runtime(threads)?.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            let sse = sse_tokio::service(config, |_task: Task| async {});
            tokio::spawn(sse.clone().sweeper());
            let app = sse_examples::axum_router(sse);
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
        }),
        Mode::Floor => tokio_runtime(threads)?.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            sse_loadbench::floor::serve(listener, args.admin_token, threads).await
        }),
    }
}

/// Our service on a hub shared through the Redis at `url`, wired as the demo's `--redis` is.
/// Must be called inside the runtime that `runtime` spawns on (the backend's consumer loop
/// starts at once).
fn shared(config: Config, runtime: Arc<dyn Runtime>, url: &str) -> io::Result<sse_http::Sse> {
    let (sse, _backend) = RedisBackend::service(
        config,
        RedisConfig::new(url),
        runtime,
        |_task: Task| async {},
    )
    .map_err(|e| io::Error::other(format!("--redis {url}: {e}")))?;
    Ok(sse)
}

/// A non-blocking listening socket with the given backlog (std's `bind` uses its own).
fn listen(addr: SocketAddr, backlog: i32) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

fn tokio_runtime(threads: usize) -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
}

/// The baseline's state: the channel every stream subscribes to, and the admin token.
#[derive(Clone)]
struct Baseline {
    tx: broadcast::Sender<String>,
    token: Arc<str>,
}

/// The baseline application, written as an axum user writes SSE today.
fn baseline(token: String, capacity: usize) -> Router {
    let (tx, _) = broadcast::channel(capacity.max(1));
    let state = Baseline {
        tx,
        token: token.into(),
    };
    Router::new()
        .route("/sse/clients", post(create_client))
        .route("/sse/events/{id}", get(events))
        .route("/sse/broadcast", post(publish))
        .with_state(state)
}

async fn create_client() -> (StatusCode, String) {
    (StatusCode::CREATED, uuid::Uuid::new_v4().to_string())
}

async fn events(
    State(state): State<Baseline>,
    Path(id): Path<String>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let hello = tokio_stream::once(Ok(Event::default().event("registered").data(id)));
    let messages = BroadcastStream::new(state.tx.subscribe())
        // A lagging receiver skips what it missed (`Err(Lagged)`), as most examples do.
        .filter_map(|message| message.ok().map(|data| Ok(Event::default().data(data))));
    Sse::new(hello.chain(messages)).keep_alive(KeepAlive::default())
}

async fn publish(State(state): State<Baseline>, headers: HeaderMap, body: String) -> Response {
    let authorized = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| t == &*state.token);
    if !authorized {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let delivered = state.tx.send(body).unwrap_or(0);
    (
        StatusCode::ACCEPTED,
        axum::Json(serde_json::json!({ "delivered": delivered })),
    )
        .into_response()
}
