//! Worker mode: one process holding a share of the client connections (at most a few
//! thousand, under the per-process open-file limit), on a single-threaded tokio runtime.
//!
//! Its HTTP/1.1 reader is hand-written (httparse, a chunked decoder, `sse_codec::Parser`) rather
//! than `sse-client`'s on purpose: it measures the server alone, so it must cost the generator as
//! little as possible per connection (no hyper connection task, no reconnect state machine), and
//! the storm scenario decides itself when a client reconnects and with which `Last-Event-ID`.
//!
//! Each client registers (`POST /sse/clients`) on the server it streams from, or, with
//! `--register-addr`, on another one over a connection of its own, closed once the id is issued
//! (the two-node runs: ids are shared through Redis). The stream's `GET` is then retried, a
//! bounded number of times, while the streaming server answers `404` (it has not yet applied
//! the id's record); the retries are counted (`attach_retries`).
//!
//! It talks to the coordinator in lines: on stdout `ready OPENED FAILED MILLIS` once every
//! connection is registered (or gave up), `complete` once every registered connection has
//! received every broadcast, and on `report` its tallies (`stats k=v …`, then `lat N µs …` per
//! broadcast, `end`); on
//! stdin it takes `storm SPREAD_MS` (every connection drops and reconnects with `Last-Event-ID`
//! at a random moment within the spread), `report` and `quit`. It exits when stdin ends and in
//! any case after `--max-seconds`.

use std::io::{self, BufRead};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::time::{Instant, sleep, sleep_until, timeout};

use crate::wire::Conn;

/// How long one attempt to open a connection (connect, create, open the stream, registered)
/// may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts to open a connection before it counts as failed.
const SETUP_ATTEMPTS: u32 = 3;
/// Attempts to open the stream of an id issued on another server while this one answers `404`.
const ATTACH_ATTEMPTS: u32 = 50;
/// Attempts to reopen a dropped stream before the connection counts as failed.
const REOPEN_ATTEMPTS: u32 = 20;

/// The worker's command line (given by the coordinator).
#[derive(Debug, Clone, Args)]
pub(crate) struct WorkerArgs {
    /// The server.
    #[arg(long)]
    addr: SocketAddr,
    /// Where the clients register (`POST /sse/clients`), when not on `--addr`.
    #[arg(long)]
    register_addr: Option<SocketAddr>,
    /// Connections to hold.
    #[arg(long)]
    count: usize,
    /// The index of this worker's first connection over all workers (spreads source addresses).
    #[arg(long, default_value_t = 0)]
    first: usize,
    /// Source addresses 127.0.0.2 up to 127.0.0.(1 + sources).
    #[arg(long, default_value_t = 8)]
    sources: u8,
    /// Broadcasts to expect (their `n` runs from 0).
    #[arg(long)]
    broadcasts: usize,
    /// Connections being opened at once.
    #[arg(long, default_value_t = 200)]
    concurrency: usize,
    /// Exit after this many seconds whatever happens.
    #[arg(long, default_value_t = 3600)]
    max_seconds: u64,
}

/// What every connection adds to.
#[derive(Default)]
struct Tally {
    /// Per connection and broadcast, how often it was received.
    counts: Vec<u16>,
    /// Per connection, whether it registered.
    ready: Vec<bool>,
    /// Publish-to-receipt latencies, in microseconds, per broadcast.
    latencies: Vec<Vec<u32>>,
    /// `message` events received, duplicates included.
    received: u64,
    resets: u64,
    disconnects: u64,
    reconnects: u64,
    reconnect_failures: u64,
    unexpected: u64,
    /// `GET /sse/events` answered `404` (id not applied yet on this server), then retried.
    attach_retries: u64,
    last_error: Option<String>,
}

struct Ctx {
    addr: SocketAddr,
    register_addr: Option<SocketAddr>,
    sources: Vec<IpAddr>,
    first: usize,
    broadcasts: usize,
    ready: AtomicUsize,
    failed: AtomicUsize,
    complete: AtomicUsize,
    tally: Mutex<Tally>,
}

impl Ctx {
    fn tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn error(&self, err: impl std::fmt::Display) {
        self.tally().last_error = Some(err.to_string());
    }
}

/// Runs the worker until stdin ends or `quit`.
pub(crate) fn run(args: WorkerArgs) -> io::Result<()> {
    sse_loadbench::raise_fd_limit()?;
    let max = Duration::from_secs(args.max_seconds);
    std::thread::spawn(move || {
        std::thread::sleep(max);
        eprintln!("loadgen worker: --max-seconds reached, exiting");
        std::process::exit(2);
    });
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(main(args));
    Ok(())
}

async fn main(args: WorkerArgs) {
    let (cmd_tx, mut commands) = mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        let stdin = io::stdin().lock();
        for line in stdin.lines() {
            let Ok(line) = line else { break };
            if cmd_tx.send(line).is_err() {
                return;
            }
        }
        let _ = cmd_tx.send("quit".into());
    });
    let sources = (0..args.sources.max(1))
        .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + i)))
        .collect();
    let ctx = Arc::new(Ctx {
        addr: args.addr,
        register_addr: args.register_addr.filter(|r| *r != args.addr),
        sources,
        first: args.first,
        broadcasts: args.broadcasts,
        ready: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        complete: AtomicUsize::new(0),
        tally: Mutex::new(Tally {
            counts: vec![0; args.count * args.broadcasts],
            ready: vec![false; args.count],
            latencies: vec![Vec::with_capacity(args.count); args.broadcasts],
            ..Tally::default()
        }),
    });
    let (storm_tx, storm_rx) = watch::channel(None::<Duration>);
    let start = Instant::now();
    {
        let ctx = ctx.clone();
        let permits = Arc::new(Semaphore::new(args.concurrency.max(1)));
        let count = args.count;
        tokio::spawn(async move {
            for i in 0..count {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    return;
                };
                tokio::spawn(client(ctx.clone(), i, permit, storm_rx.clone()));
            }
        });
    }
    let (mut ready_said, mut complete_said) = (false, false);
    loop {
        tokio::select! {
            cmd = commands.recv() => {
                let cmd = cmd.unwrap_or_else(|| "quit".into());
                let mut words = cmd.split_whitespace();
                match words.next() {
                    Some("storm") => {
                        let ms = words.next().and_then(|w| w.parse().ok()).unwrap_or(1000);
                        let _ = storm_tx.send(Some(Duration::from_millis(ms)));
                    }
                    Some("report") => report(&ctx),
                    Some("quit") => std::process::exit(0),
                    _ => eprintln!("loadgen worker: unknown command {cmd:?}"),
                }
            }
            () = sleep(Duration::from_millis(10)) => {}
        }
        let (ready, failed) = (
            ctx.ready.load(Ordering::Acquire),
            ctx.failed.load(Ordering::Acquire),
        );
        if !ready_said && ready + failed == args.count {
            ready_said = true;
            println!("ready {ready} {failed} {}", start.elapsed().as_millis());
        }
        if ready_said && !complete_said && ctx.complete.load(Ordering::Acquire) >= ready {
            complete_said = true;
            println!("complete");
        }
    }
}

/// Opens a connection: connect, create the client (here, or on `--register-addr` over a
/// connection of its own), open its stream, wait for `registered`.
async fn open(ctx: &Ctx, source: IpAddr) -> io::Result<(Conn, String)> {
    let (mut conn, id) = match ctx.register_addr {
        None => {
            let mut conn = Conn::connect(ctx.addr, source).await?;
            let id = conn.create_client().await?;
            if conn.closing {
                // The server wants the stream on a fresh connection (its lean path).
                conn.reconnect(source).await?;
            }
            conn.open_events(&id).await?;
            (conn, id)
        }
        Some(elsewhere) => {
            let id = Conn::connect(elsewhere, source)
                .await?
                .create_client()
                .await?;
            let mut conn = Conn::connect(ctx.addr, source).await?;
            let mut attempt = 1;
            loop {
                match conn.open_events(&id).await {
                    Ok(()) => break,
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {
                        if attempt >= ATTACH_ATTEMPTS {
                            return Err(err);
                        }
                        ctx.tally().attach_retries += 1;
                        sleep(Duration::from_millis(10 * u64::from(attempt.min(10)))).await;
                        attempt += 1;
                        // The 404's body is still unread: start over on a new connection.
                        conn.reconnect(source).await?;
                    }
                    Err(err) => return Err(err),
                }
            }
            (conn, id)
        }
    };
    loop {
        let event = conn.next_event().await?;
        if event.event_type() == "registered" {
            return Ok((conn, id));
        }
    }
}

/// Drops the connection and reopens the client's stream with its `Last-Event-ID`.
async fn reopen(ctx: &Ctx, conn: &mut Conn, id: &str, source: IpAddr) -> bool {
    for attempt in 1..=REOPEN_ATTEMPTS {
        let result = timeout(SETUP_TIMEOUT, async {
            conn.reconnect(source).await?;
            conn.open_events(id).await
        })
        .await
        .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()));
        match result {
            Ok(()) => return true,
            Err(err) => {
                ctx.error(format_args!("reopen: {err}"));
                sleep(Duration::from_millis(50 * u64::from(attempt))).await;
            }
        }
    }
    false
}

/// One client: opens its connection, then reads its stream until the process ends.
async fn client(
    ctx: Arc<Ctx>,
    index: usize,
    permit: OwnedSemaphorePermit,
    mut storm: watch::Receiver<Option<Duration>>,
) {
    let source = ctx.sources[(ctx.first + index) % ctx.sources.len()];
    let mut attempt = 0;
    let (mut conn, id) = loop {
        attempt += 1;
        match timeout(SETUP_TIMEOUT, open(&ctx, source)).await {
            Ok(Ok(opened)) => break opened,
            Ok(Err(err)) => ctx.error(format_args!("open: {err}")),
            Err(_) => ctx.error("open: timed out"),
        }
        if attempt >= SETUP_ATTEMPTS {
            ctx.failed.fetch_add(1, Ordering::AcqRel);
            return;
        }
        sleep(Duration::from_millis(200 * u64::from(attempt))).await;
    };
    ctx.tally().ready[index] = true;
    ctx.ready.fetch_add(1, Ordering::AcqRel);
    drop(permit);

    let m = ctx.broadcasts;
    let base = index * m;
    let mut distinct = 0;
    let far = Instant::now() + Duration::from_secs(365 * 24 * 3600);
    let mut drop_timer = Box::pin(sleep_until(far));
    let (mut dropping, mut storm_open) = (false, true);
    loop {
        tokio::select! {
            biased;
            () = &mut drop_timer, if dropping => {
                dropping = false;
                ctx.tally().reconnects += 1;
                if !reopen(&ctx, &mut conn, &id, source).await {
                    ctx.tally().reconnect_failures += 1;
                    return;
                }
            }
            changed = storm.changed(), if storm_open => {
                if changed.is_err() {
                    storm_open = false;
                } else if let Some(spread) = *storm.borrow_and_update() {
                    let ms = u64::try_from(spread.as_millis()).unwrap_or(u64::MAX).max(1);
                    drop_timer.as_mut().reset(Instant::now() + Duration::from_millis(fastrand::u64(0..ms)));
                    dropping = true;
                }
            }
            event = conn.next_event() => match event {
                Ok(event) => match event.event_type() {
                    "message" => {
                        let now = sse_loadbench::unix_nanos();
                        let mut tally = ctx.tally();
                        tally.received += 1;
                        match sse_loadbench::parse_payload(event.data()) {
                            Some((n, t)) if n < m => {
                                let us = now.saturating_sub(t) / 1000;
                                tally.latencies[n].push(u32::try_from(us).unwrap_or(u32::MAX));
                                let count = &mut tally.counts[base + n];
                                *count = count.saturating_add(1);
                                if *count == 1 {
                                    distinct += 1;
                                    if distinct == m {
                                        ctx.complete.fetch_add(1, Ordering::AcqRel);
                                    }
                                }
                            }
                            _ => tally.unexpected += 1,
                        }
                    }
                    "reset" => ctx.tally().resets += 1,
                    _ => {}
                },
                Err(err) => {
                    // Not asked for: reconnect as a browser would, and count it.
                    {
                        let mut tally = ctx.tally();
                        tally.disconnects += 1;
                        tally.last_error = Some(format!("stream: {err}"));
                    }
                    if !reopen(&ctx, &mut conn, &id, source).await {
                        ctx.tally().reconnect_failures += 1;
                        return;
                    }
                }
            }
        }
    }
}

/// Prints the tallies: `stats …`, `lat …`, `end`.
fn report(ctx: &Ctx) {
    let tally = ctx.tally();
    let m = ctx.broadcasts;
    let (mut distinct, mut duplicates, mut missing) = (0u64, 0u64, 0u64);
    for (i, ready) in tally.ready.iter().enumerate() {
        if !ready {
            continue;
        }
        for &count in &tally.counts[i * m..(i + 1) * m] {
            match count {
                0 => missing += 1,
                c => {
                    distinct += 1;
                    duplicates += u64::from(c - 1);
                }
            }
        }
    }
    let error = tally
        .last_error
        .as_deref()
        .unwrap_or("-")
        .replace(char::is_whitespace, "_");
    println!(
        "stats ready={} failed={} received={} distinct={distinct} duplicates={duplicates} \
         missing={missing} resets={} disconnects={} reconnects={} reconnect_failures={} \
         unexpected={} attach_retries={} error={error}",
        ctx.ready.load(Ordering::Acquire),
        ctx.failed.load(Ordering::Acquire),
        tally.received,
        tally.resets,
        tally.disconnects,
        tally.reconnects,
        tally.reconnect_failures,
        tally.unexpected,
        tally.attach_retries,
    );
    for (n, latencies) in tally.latencies.iter().enumerate() {
        let mut line = String::with_capacity(latencies.len() * 7 + 8);
        line.push_str("lat ");
        line.push_str(&n.to_string());
        for us in latencies {
            line.push(' ');
            line.push_str(&us.to_string());
        }
        println!("{line}");
    }
    println!("end");
}
