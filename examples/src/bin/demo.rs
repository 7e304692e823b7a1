//! Run with: `cargo run --release --bin demo -- --listen 127.0.0.1:8080 --admin-token TOKEN`
//! (add `--runtime smol` to serve on smol instead of tokio)
//!
//! The demo server: the SSE protocol on the in-memory registry, and at `/` a page that submits
//! long tasks and shows their progress and completion in every tab of the same name, subscribes
//! to keys, and logs every event. The admin token may also come from `SSE_ADMIN_TOKEN`; without
//! one, the admin routes are off.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use sse_examples::demo_app as app;
use sse_http::{Config, Sse, Task};

#[derive(Debug, Parser)]
#[command(about = "The sse demo server")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Bearer token of the admin routes (off without one).
    #[arg(long, env = "SSE_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// How long one step of the demo task takes, in milliseconds (a task has 10 steps).
    #[arg(long, default_value_t = 400)]
    step_ms: u64,
    /// The async runtime to serve on.
    #[arg(long, value_enum, default_value_t = RuntimeKind::Tokio)]
    runtime: RuntimeKind,
    /// Share clients and events with other servers through this Redis
    /// (`redis://127.0.0.1:6379`); without it, the hub is in memory.
    #[arg(long, env = "SSE_REDIS")]
    redis: Option<String>,
    /// An origin allowed to call the protocol from a browser page on another origin
    /// (`https://app.example`, or `*` for any); repeat for more. None: no CORS headers.
    #[arg(
        long = "cors-origin",
        value_name = "ORIGIN",
        env = "SSE_CORS_ORIGINS",
        value_delimiter = ','
    )]
    cors_origins: Vec<String>,
    /// Let the origins listed by name send cookies (`withCredentials`).
    #[arg(long, env = "SSE_CORS_CREDENTIALS")]
    cors_credentials: bool,
    /// Events kept for replay to reconnecting clients (`Last-Event-ID`).
    #[arg(long, value_name = "EVENTS", env = "SSE_HISTORY", default_value_t = Config::default().registry.history_len)]
    history: usize,
    /// How long a client whose stream ended is kept for it to reconnect, in seconds.
    #[arg(long, value_name = "SECS", env = "SSE_IDLE_TIMEOUT", default_value_t = Config::default().registry.grace.as_secs())]
    idle_timeout: u64,
    /// A comment is written on a stream idle this long, in seconds.
    #[arg(long, value_name = "SECS", env = "SSE_KEEP_ALIVE", default_value_t = Config::default().keep_alive.as_secs())]
    keep_alive: u64,
    /// How long a connection may take to send a request head, in seconds.
    #[arg(long, value_name = "SECS", env = "SSE_HEAD_TIMEOUT", default_value_t = Config::default().head_timeout.as_secs())]
    head_timeout: u64,
    /// Exit when standard input closes: ties the server's life to a supervisor's (the load
    /// benchmark's) that holds the other end.
    #[arg(long)]
    exit_on_stdin_eof: bool,
    /// The per-address limits on registering clients and on open streams: `on` (the
    /// defaults, which a browser user never meets), or `off` (load tests from a few addresses).
    #[arg(long, value_name = "on|off", env = "SSE_PEER_LIMITS", default_value = "on", value_parser = on_off, action = clap::ArgAction::Set)]
    peer_limits: bool,
    /// Client ids one address may register at once before the rate applies.
    #[arg(long, value_name = "N", env = "SSE_ISSUE_BURST", default_value_t = sse_http::PeerLimits::default().issue_burst)]
    issue_burst: u32,
    /// Client ids one address may register per second after its burst.
    #[arg(long, value_name = "N", env = "SSE_ISSUE_RATE", default_value_t = sse_http::PeerLimits::default().issue_per_sec)]
    issue_rate: u32,
    /// Event streams one address may hold open.
    #[arg(long, value_name = "N", env = "SSE_STREAMS_PER_ADDRESS", default_value_t = sse_http::PeerLimits::default().max_streams)]
    streams_per_address: u32,
    /// A proxy whose `X-Forwarded-For` is believed for the per-address limits; repeatable.
    #[arg(
        long = "trusted-proxy",
        value_name = "IP",
        env = "SSE_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    trusted_proxies: Vec<std::net::IpAddr>,
    /// Most clients the hub holds at once.
    #[arg(long, value_name = "N", env = "SSE_MAX_CLIENTS", default_value_t = Config::default().registry.max_clients)]
    max_clients: usize,
}

impl Args {
    /// The service's configuration from the options.
    fn config(&self) -> Config {
        let mut config = Config::default();
        config.admin_token = self.admin_token.clone();
        config.cors_origins = self.cors_origins.clone();
        config.cors_credentials = self.cors_credentials;
        config.keep_alive = Duration::from_secs(self.keep_alive.max(1));
        config.head_timeout = Duration::from_secs(self.head_timeout.max(1));
        config.registry.history_len = self.history;
        config.registry.grace = Duration::from_secs(self.idle_timeout);
        config.registry.max_clients = self.max_clients;
        config.peer_limits = self.peer_limits.then(|| {
            let mut limits = sse_http::PeerLimits::default();
            limits.issue_burst = self.issue_burst;
            limits.issue_per_sec = self.issue_rate;
            limits.max_streams = self.streams_per_address;
            limits
        });
        config.trusted_proxies = self.trusted_proxies.clone();
        config
    }
}

/// `on` or `off`.
fn on_off(value: &str) -> Result<bool, String> {
    match value {
        "on" | "true" => Ok(true),
        "off" | "false" => Ok(false),
        _ => Err(format!("expected on or off, not {value:?}")),
    }
}

/// The service: on an in-memory hub, or on one shared through Redis.
fn build(
    config: Config,
    runtime: std::sync::Arc<dyn sse_http::Runtime>,
    redis: Option<&str>,
    tasks: impl sse_http::TaskHandler,
) -> std::io::Result<Sse> {
    let Some(url) = redis else {
        let hub = sse_registry::Hub::new(config.registry.clone());
        return Ok(Sse::with_hub(config, hub, runtime, tasks));
    };
    let redis = sse_redis::RedisConfig::new(url);
    let (sse, _backend) = sse_redis::RedisBackend::service(config, redis, runtime, tasks)
        .map_err(std::io::Error::other)?;
    tracing::info!("sharing the hub through redis");
    Ok(sse)
}

/// The runtimes the demo can serve on.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum RuntimeKind {
    /// tokio, through `sse-tokio`.
    Tokio,
    /// smol and async-io, through `sse-smol`.
    Smol,
}

/// The application's task, written as a user of the library writes theirs: ten steps of work,
/// each reported as progress; returning completes it.
async fn long_task(task: Task, step: Duration) {
    const STEPS: u32 = 10;
    for n in 1..=STEPS {
        task.sleep(step).await;
        let progress = serde_json::json!({ "taskid": task.id(), "step": n, "of": STEPS });
        task.progress(&progress.to_string()).await;
    }
}

/// The listen backlog: connections the kernel queues before they are accepted (it caps this at
/// `net.core.somaxconn`). Thousands of browsers reconnecting at once after a restart overflow
/// tokio's default of 1,024, and each dropped SYN costs its client a second's retransmit.
const BACKLOG: i32 = 4096;

/// A non-blocking listening socket on `addr` with [`BACKLOG`].
fn listen(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Raises the soft limit on open files to the hard limit; returns the limit now.
fn raise_open_files() -> std::io::Result<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    Ok(getrlimit(Resource::RLIMIT_NOFILE)?.0)
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        // The log on stderr; stdout says only where the demo listens.
        .with_writer(std::io::stderr)
        .init();
    let config = args.config();
    // One descriptor per open stream: the soft limit (often 1024) up to the hard one.
    match raise_open_files() {
        Ok(limit) => tracing::debug!(limit, "open-file limit"),
        Err(err) => tracing::warn!(%err, "could not raise the open-file limit"),
    }
    if args.exit_on_stdin_eof {
        std::thread::spawn(|| {
            let mut sink = [0u8; 256];
            let mut stdin = std::io::stdin().lock();
            while matches!(std::io::Read::read(&mut stdin, &mut sink), Ok(n) if n > 0) {}
            std::process::exit(0);
        });
    }
    if let Err(err) = config.validate() {
        eprintln!("demo: {err}");
        std::process::exit(2);
    }
    if config.admin_token.is_none() {
        tracing::info!("no admin token: admin routes are off");
    }
    let step = Duration::from_millis(args.step_ms);
    let tasks = move |task: Task| long_task(task, step);
    match args.runtime {
        RuntimeKind::Tokio => tokio::runtime::Runtime::new()?.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listen(args.listen)?)?;
            println!("demo (tokio): open http://{}/", listener.local_addr()?);
            let runtime = std::sync::Arc::new(sse_tokio::runtime());
            let sse = build(config, runtime, args.redis.as_deref(), tasks)?;
            let shutdown = async {
                tokio::signal::ctrl_c().await.ok();
            };
            sse_tokio::serve_app(listener, sse.clone(), app(sse), shutdown).await
        }),
        RuntimeKind::Smol => {
            let ex: sse_smol::Ex = std::sync::Arc::new(smol::Executor::new());
            let (stop_tx, stop_rx) = smol::channel::bounded::<()>(1);
            ctrlc::set_handler(move || {
                let _ = stop_tx.try_send(());
            })
            .map_err(std::io::Error::other)?;
            // One thread besides this one runs the executor too, as tokio's default would.
            let (done_tx, done_rx) = smol::channel::bounded::<()>(1);
            let helper = {
                let ex = ex.clone();
                std::thread::spawn(move || smol::block_on(ex.run(done_rx.recv())))
            };
            let served = smol::block_on(ex.run(async {
                let listener = smol::net::TcpListener::try_from(listen(args.listen)?)?;
                println!("demo (smol): open http://{}/", listener.local_addr()?);
                let runtime = std::sync::Arc::new(sse_smol::runtime(&ex));
                let sse = build(config, runtime, args.redis.as_deref(), tasks)?;
                let shutdown = async {
                    stop_rx.recv().await.ok();
                };
                sse_smol::serve_app(&ex, listener, sse.clone(), app(sse), shutdown).await
            }));
            drop(done_tx);
            let _ = helper.join();
            served
        }
    }
}
