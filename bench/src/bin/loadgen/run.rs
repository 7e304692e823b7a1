//! The coordinator: for each run, starts a server process and the worker processes, publishes
//! the broadcasts at the given rate, reads the server's CPU time and memory in `/proc`, collects
//! the workers' tallies, stops every process it started, and reports.
//!
//! With `--nodes N` (N > 1), a run starts its own `redis-server` and N servers sharing it
//! (`demo --redis` or `bench-server --redis`); the clients are split evenly across the servers,
//! the broadcasts are published on node 1 only, and the tallies are reported per node the
//! clients stream from (node 1: local delivery; the others: cross-node, through Redis).

use std::collections::HashMap;
use std::fmt;
use std::io::{self, BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};

use crate::procfs;
use crate::redis::RedisServer;
use crate::wire::Admin;

/// A server to benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Mode {
    /// Ours, on sse-tokio.
    Tokio,
    /// Ours, on sse-smol.
    Smol,
    /// axum's `Sse` over a `tokio::sync::broadcast` channel.
    Baseline,
    /// The floor: the same routes with one `send` per client per broadcast and nothing else
    /// (no replay), what the machine allows any server.
    Floor,
    /// The demo binary as a user runs it (`demo --runtime tokio`), its page beside the
    /// protocol (`serve_app`).
    DemoTokio,
    /// The demo binary on smol (`demo --runtime smol`).
    DemoSmol,
    /// Ours mounted in an axum application under `axum::serve`, as
    /// `examples/examples/axum_mount.rs` does (`bench-server --mode axum-mount`).
    AxumMount,
}

impl Mode {
    fn arg(self) -> &'static str {
        match self {
            Self::Tokio => "tokio",
            Self::Smol => "smol",
            Self::Baseline => "baseline",
            Self::Floor => "floor",
            Self::DemoTokio => "demo-tokio",
            Self::DemoSmol => "demo-smol",
            Self::AxumMount => "axum-mount",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Tokio => "ours on tokio (bench-server)",
            Self::Smol => "ours on smol (bench-server)",
            Self::Baseline => "baseline (axum Sse + broadcast)",
            Self::Floor => "floor (one send per client)",
            Self::DemoTokio => "demo on tokio",
            Self::DemoSmol => "demo on smol",
            Self::AxumMount => "ours mounted in axum",
        }
    }

    /// The demo's `--runtime`, for the modes that run the demo binary.
    fn demo_runtime(self) -> Option<&'static str> {
        match self {
            Self::DemoTokio => Some("tokio"),
            Self::DemoSmol => Some("smol"),
            _ => None,
        }
    }
}

/// What the clients do while the broadcasts go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Scenario {
    /// Every client stays connected.
    Steady,
    /// Every client drops and reconnects with `Last-Event-ID`, spread over `--storm-spread-ms`,
    /// starting just before broadcast `--storm-at`.
    Storm,
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Steady => "steady",
            Self::Storm => "storm",
        })
    }
}

/// Where the clients of nodes other than node 1 register, in a multi-node run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum RegisterOn {
    /// On node 1, over a connection of their own, before streaming from their node: their
    /// ids reach their node through Redis.
    First,
    /// On the node they stream from, over the stream's connection.
    Own,
}

/// The coordinator's command line.
#[derive(Debug, Clone, Args)]
pub(crate) struct RunArgs {
    /// Servers to benchmark, one run each.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "tokio,smol,baseline"
    )]
    modes: Vec<Mode>,
    /// Connection counts, one run each.
    #[arg(long, value_delimiter = ',', default_value = "1000")]
    connections: Vec<usize>,
    /// Scenarios, one run each.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "steady")]
    scenarios: Vec<Scenario>,
    /// Broadcasts per run.
    #[arg(long, default_value_t = 20)]
    broadcasts: usize,
    /// Broadcasts per second.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Bytes of each broadcast's body.
    #[arg(long, default_value_t = 100)]
    payload: usize,
    /// Most connections per worker process.
    #[arg(long, default_value_t = 5000)]
    per_worker: usize,
    /// Source addresses for the clients: 127.0.0.2 up to 127.0.0.(1 + sources).
    #[arg(long, default_value_t = 8)]
    sources: u8,
    /// Connections each worker opens at once (paces connection setup).
    #[arg(long, default_value_t = 200)]
    concurrency: usize,
    /// Pause before reading the idle memory, and between setup and the broadcasts.
    #[arg(long, default_value_t = 1000)]
    settle_ms: u64,
    /// How long to wait after the last broadcast for every event to arrive.
    #[arg(long, default_value_t = 10)]
    drain_secs: u64,
    /// How long connection setup may take.
    #[arg(long, default_value_t = 180)]
    setup_secs: u64,
    /// The storm starts just before this broadcast (counting from 0).
    #[arg(long, default_value_t = 5)]
    storm_at: usize,
    /// Every client drops and reconnects at a random moment within this many milliseconds.
    #[arg(long, default_value_t = 1000)]
    storm_spread_ms: u64,
    /// The server binary (default: `bench-server` beside this one).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// The demo binary, for the `demo-*` modes (default: `demo` beside this one; build it with
    /// `cargo build --release -p sse-examples --bin demo`). It is started as a user starts it,
    /// with `RUST_LOG=warn` and the peer limits off (thousands of clients share 8 addresses
    /// here); its runtime threads are its own (tokio's default, one per core; smol: 2).
    #[arg(long)]
    demo_bin: Option<PathBuf>,
    /// The server's runtime threads.
    #[arg(long, default_value_t = 2)]
    server_threads: usize,
    /// Servers per run. Above 1, the run starts its own `redis-server` and the servers share
    /// their hub through it (the demo-tokio, demo-smol, tokio and smol modes); the clients are
    /// split evenly across the servers and the broadcasts are published on node 1.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=8))]
    nodes: u16,
    /// In a multi-node run, where the clients of the other nodes register.
    #[arg(long, value_enum, default_value = "first")]
    register_on: RegisterOn,
    /// Every process started ends itself after this many seconds.
    #[arg(long, default_value_t = 900)]
    max_seconds: u64,
}

/// A child process, killed (by its pid) when dropped if it is still running.
struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Proc {
    fn spawn(cmd: &mut Command) -> io::Result<Self> {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdin = child.stdin.take();
        Ok(Self { child, stdin })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn say(&mut self, line: &str) -> io::Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| io::Error::other("stdin closed"))?;
        writeln!(stdin, "{line}")?;
        stdin.flush()
    }

    /// Sends every stdout line to `tx` as `(index, line)`, then `(index, "eof")`.
    fn forward(&mut self, index: usize, tx: mpsc::Sender<(usize, String)>) {
        if let Some(stdout) = self.child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if tx.send((index, line)).is_err() {
                        return;
                    }
                }
                let _ = tx.send((index, "eof".into()));
            });
        }
    }

    /// Closes stdin (the process's cue to exit) and waits up to `patience`, then kills it.
    fn finish(mut self, patience: Duration) {
        self.stdin = None;
        let deadline = Instant::now() + patience;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_)) | Err(_)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // Drop kills it.
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One server's (or `redis-server`'s) use of the machine in a run.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Usage {
    /// CPU time, user + system, over the broadcast phase.
    cpu_ms: f64,
    /// Resident memory before any connection.
    rss_idle_kib: u64,
    /// Resident memory with every connection open.
    rss_open_kib: u64,
    /// Resident memory after the broadcasts.
    rss_end_kib: u64,
    /// Peak resident memory.
    rss_peak_kib: u64,
}

/// What the clients streaming from one node got.
#[derive(Debug, Clone, Default)]
pub(crate) struct Group {
    opened: u64,
    failed: u64,
    expected: u64,
    received: u64,
    distinct: u64,
    missing: u64,
    duplicates: u64,
    resets: u64,
    unexpected: u64,
    reconnect_failures: u64,
    /// Stream opens answered `404` (the id not applied on this node yet) and retried.
    attach_retries: u64,
    lat_p50_ms: f64,
    lat_p99_ms: f64,
    lat_max_ms: f64,
    /// Distinct events received per second, from the first publish to the last receipt.
    events_per_sec: f64,
    /// From the first publish to the last receipt.
    phase_secs: f64,
}

/// One run's measurements.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outcome {
    mode: Option<Mode>,
    scenario: Option<Scenario>,
    /// Servers in the run (above 1: sharing a Redis).
    nodes: usize,
    connections: usize,
    opened: u64,
    failed: u64,
    open_secs: f64,
    expected: u64,
    received: u64,
    distinct: u64,
    missing: u64,
    duplicates: u64,
    resets: u64,
    disconnects: u64,
    reconnects: u64,
    reconnect_failures: u64,
    unexpected: u64,
    server_delivered: u64,
    last_error: String,
    lat_p50_ms: f64,
    lat_p99_ms: f64,
    lat_max_ms: f64,
    post_p50_ms: f64,
    post_max_ms: f64,
    publish_secs: f64,
    drain_secs: f64,
    p99_per_broadcast_ms: Vec<f64>,
    cpu_ms: f64,
    cpu_us_per_event: f64,
    generator_cpu_ms: f64,
    load_before: String,
    rss_idle_kib: u64,
    rss_open_kib: u64,
    rss_end_kib: u64,
    rss_peak_kib: u64,
    kib_per_conn: f64,
    /// Per node the clients stream from (node 1 first).
    groups: Vec<Group>,
    /// Per server (node 1 first).
    servers: Vec<Usage>,
    /// The `redis-server` of a multi-node run.
    redis: Option<Usage>,
    /// Its commands over the whole run, `name=calls` (`INFO commandstats`).
    redis_calls: String,
    /// Distinct events received per second over all clients, from the first publish to the
    /// last receipt.
    events_per_sec: f64,
    phase_secs: f64,
}

impl Outcome {
    /// Whether the run delivered what it must: every connection opened; for ours every event
    /// exactly once; for the baseline and the floor the same, except in the storm, where their losses are the
    /// finding.
    pub(crate) fn ok(&self) -> bool {
        let excused = matches!(self.mode, Some(Mode::Baseline | Mode::Floor))
            && self.scenario == Some(Scenario::Storm);
        self.failed == 0
            && self.reconnect_failures == 0
            && self.opened as usize == self.connections
            && (excused
                || (self.missing == 0
                    && self.duplicates == 0
                    && self.resets == 0
                    && self.unexpected == 0))
    }

    fn label(&self) -> String {
        let mode = self.mode.map_or("?", Mode::label);
        if self.nodes > 1 {
            format!("{mode}, {} nodes on Redis", self.nodes)
        } else {
            mode.to_owned()
        }
    }

    fn print(&self) {
        let scenario = self.scenario.map_or("?".into(), |s| s.to_string());
        println!(
            "-- {}, {scenario}, {} connections",
            self.label(),
            self.connections
        );
        println!(
            "connections: {} opened, {} failed, in {:.2} s",
            self.opened, self.failed, self.open_secs
        );
        let reporter = if self.nodes > 1 {
            "node 1 (whose replica of the hub holds every client)"
        } else {
            "the server"
        };
        println!(
            "events: expected {}, received {} distinct ({} in all), lost {}, duplicates {}, \
             resets {}, unexpected {}; {reporter} reported {} deliveries",
            self.expected,
            self.distinct,
            self.received,
            self.missing,
            self.duplicates,
            self.resets,
            self.unexpected,
            self.server_delivered
        );
        println!(
            "reconnections: {} asked, {} unasked (stream ended), {} failed; last error: {}",
            self.reconnects, self.disconnects, self.reconnect_failures, self.last_error
        );
        println!(
            "latency publish -> receipt: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; \
             broadcast POST p50 {:.1} ms, max {:.1} ms; the broadcasts took {:.2} s; all received \
             {:.2} s after the last",
            self.lat_p50_ms,
            self.lat_p99_ms,
            self.lat_max_ms,
            self.post_p50_ms,
            self.post_max_ms,
            self.publish_secs,
            self.drain_secs
        );
        let per: Vec<String> = self
            .p99_per_broadcast_ms
            .iter()
            .map(|ms| format!("{ms:.0}"))
            .collect();
        println!("p99 latency of each broadcast, ms: {}", per.join(" "));
        println!(
            "throughput: {:.0} distinct events/s over all clients, {:.2} s from the first publish \
             to the last receipt",
            self.events_per_sec, self.phase_secs
        );
        if self.nodes > 1 {
            self.print_nodes();
        } else {
            println!(
                "server CPU (broadcast phase): {:.0} ms user+sys, {:.2} µs per delivered event; \
                 the workers' CPU meanwhile {:.0} ms; load average before the run: {}",
                self.cpu_ms, self.cpu_us_per_event, self.generator_cpu_ms, self.load_before
            );
            println!(
                "server RSS: idle {:.1} MiB, with the connections open {:.1} MiB ({:.2} KiB per \
                 connection), after the broadcasts {:.1} MiB, peak {:.1} MiB",
                mib(self.rss_idle_kib),
                mib(self.rss_open_kib),
                self.kib_per_conn,
                mib(self.rss_end_kib),
                mib(self.rss_peak_kib)
            );
        }
        println!(
            "result mode={} nodes={} scenario={scenario} connections={} opened={} lost={} \
             duplicates={} resets={} ok={}",
            self.mode.map_or("?", Mode::arg),
            self.nodes,
            self.connections,
            self.opened,
            self.missing,
            self.duplicates,
            self.resets,
            self.ok()
        );
        if self.nodes > 1 {
            for (k, g) in self.groups.iter().enumerate() {
                println!(
                    "result-node node={} opened={} expected={} received={} lost={} duplicates={} \
                     resets={} attach_retries={}",
                    k + 1,
                    g.opened,
                    g.expected,
                    g.distinct,
                    g.missing,
                    g.duplicates,
                    g.resets,
                    g.attach_retries
                );
            }
        }
    }

    /// The per-node lines of a multi-node run.
    fn print_nodes(&self) {
        for (k, g) in self.groups.iter().enumerate() {
            let role = if k == 0 {
                "local: published here"
            } else {
                "cross-node: through Redis"
            };
            println!(
                "clients on node {} ({role}): {} opened, {} failed, {} stream opens retried on \
                 404; events expected {}, received {} distinct ({} in all), lost {}, duplicates \
                 {}, resets {}, unexpected {}; latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; \
                 {:.0} events/s over {:.2} s",
                k + 1,
                g.opened,
                g.failed,
                g.attach_retries,
                g.expected,
                g.distinct,
                g.received,
                g.missing,
                g.duplicates,
                g.resets,
                g.unexpected,
                g.lat_p50_ms,
                g.lat_p99_ms,
                g.lat_max_ms,
                g.events_per_sec,
                g.phase_secs
            );
        }
        for (k, (u, g)) in self.servers.iter().zip(&self.groups).enumerate() {
            println!(
                "node {} CPU (broadcast phase): {:.0} ms user+sys, {:.2} µs per event delivered \
                 by it; RSS idle {:.1} MiB, open {:.1} MiB, after the broadcasts {:.1} MiB, peak \
                 {:.1} MiB",
                k + 1,
                u.cpu_ms,
                per_event_us(u.cpu_ms, g.distinct),
                mib(u.rss_idle_kib),
                mib(u.rss_open_kib),
                mib(u.rss_end_kib),
                mib(u.rss_peak_kib)
            );
        }
        if let Some(r) = &self.redis {
            println!(
                "redis-server CPU (broadcast phase): {:.0} ms; RSS idle {:.1} MiB, open {:.1} \
                 MiB, peak {:.1} MiB; commands over the whole run: {}",
                r.cpu_ms,
                mib(r.rss_idle_kib),
                mib(r.rss_open_kib),
                mib(r.rss_peak_kib),
                self.redis_calls
            );
        }
        println!(
            "all servers' CPU: {:.0} ms, {:.2} µs per delivered event; the workers' CPU \
             meanwhile {:.0} ms; load average before the run: {}",
            self.cpu_ms, self.cpu_us_per_event, self.generator_cpu_ms, self.load_before
        );
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn per_event_us(cpu_ms: f64, events: u64) -> f64 {
    if events > 0 {
        cpu_ms * 1000.0 / events as f64
    } else {
        0.0
    }
}

/// Prints the outcomes as Markdown tables: one for the single-node runs, one for the
/// multi-node runs.
fn table(outcomes: &[Outcome]) {
    let (single, multi): (Vec<&Outcome>, Vec<&Outcome>) =
        outcomes.iter().partition(|o| o.nodes <= 1);
    if !single.is_empty() {
        println!();
        println!(
            "| server | scenario | conns | open (s) | events expected | lost | dup | p50 ms | p99 \
             ms | max ms | CPU ms | CPU µs/event | RSS idle MiB | RSS open MiB | KiB/conn |"
        );
        println!("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
        for o in single {
            println!(
                "| {} | {} | {} | {:.2} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.0} | {:.2} | \
                 {:.1} | {:.1} | {:.2} |",
                o.mode.map_or("?", Mode::label),
                o.scenario.map_or("?".into(), |s| s.to_string()),
                o.opened,
                o.open_secs,
                o.expected,
                o.missing,
                o.duplicates,
                o.lat_p50_ms,
                o.lat_p99_ms,
                o.lat_max_ms,
                o.cpu_ms,
                o.cpu_us_per_event,
                mib(o.rss_idle_kib),
                mib(o.rss_open_kib),
                o.kib_per_conn
            );
        }
    }
    if !multi.is_empty() {
        println!();
        println!(
            "| server | scenario | conns (all) | clients on | conns | events expected | received \
             | lost | dup | p50 ms | p99 ms | max ms | events/s | node CPU ms | node CPU µs/event \
             | node RSS idle → open MiB |"
        );
        println!("|---|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
        for o in &multi {
            for (k, (g, u)) in o.groups.iter().zip(&o.servers).enumerate() {
                let on = if k == 0 {
                    "node 1 (local)".to_owned()
                } else {
                    format!("node {} (cross-node)", k + 1)
                };
                println!(
                    "| {} | {} | {} | {on} | {} | {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | \
                     {:.0} | {:.0} | {:.2} | {:.1} → {:.1} |",
                    o.label(),
                    o.scenario.map_or("?".into(), |s| s.to_string()),
                    o.connections,
                    g.opened,
                    g.expected,
                    g.distinct,
                    g.missing,
                    g.duplicates,
                    g.lat_p50_ms,
                    g.lat_p99_ms,
                    g.lat_max_ms,
                    g.events_per_sec,
                    u.cpu_ms,
                    per_event_us(u.cpu_ms, g.distinct),
                    mib(u.rss_idle_kib),
                    mib(u.rss_open_kib)
                );
            }
        }
        println!();
        println!(
            "| server | conns (all) | open (s) | events/s (all) | phase s | POST p50 / max ms | \
             all servers' CPU µs/event | redis CPU ms | redis RSS MiB | workers' CPU ms | load \
             before |"
        );
        println!("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
        for o in &multi {
            let (redis_cpu, redis_rss) = o
                .redis
                .map_or((0.0, 0.0), |r| (r.cpu_ms, mib(r.rss_peak_kib)));
            println!(
                "| {} | {} | {:.2} | {:.0} | {:.2} | {:.0} / {:.0} | {:.2} | {:.0} | {:.1} | {:.0} \
                 | {} |",
                o.label(),
                o.connections,
                o.open_secs,
                o.events_per_sec,
                o.phase_secs,
                o.post_p50_ms,
                o.post_max_ms,
                o.cpu_us_per_event,
                redis_cpu,
                redis_rss,
                o.generator_cpu_ms,
                o.load_before
            );
        }
    }
}

/// Runs every combination of scenario, connection count and mode; returns whether all were ok.
pub(crate) fn run(args: RunArgs) -> io::Result<bool> {
    sse_loadbench::raise_fd_limit()?;
    let me = std::env::current_exe()?;
    let server_bin = match &args.server_bin {
        Some(path) => path.clone(),
        None => me.with_file_name("bench-server"),
    };
    if args.scenarios.contains(&Scenario::Storm) && args.storm_at >= args.broadcasts {
        return Err(io::Error::other("--storm-at must be below --broadcasts"));
    }
    if args.nodes > 1
        && args.modes.iter().any(|m| {
            !matches!(
                m,
                Mode::Tokio | Mode::Smol | Mode::DemoTokio | Mode::DemoSmol
            )
        })
    {
        return Err(io::Error::other(
            "--nodes above 1 needs --modes among demo-tokio, demo-smol, tokio and smol: the \
             baseline, the floor and the axum mount have no cross-node backend",
        ));
    }
    let mut outcomes = Vec::new();
    for &scenario in &args.scenarios {
        for &connections in &args.connections {
            for &mode in &args.modes {
                let nodes = if args.nodes > 1 {
                    format!(", {} nodes on Redis", args.nodes)
                } else {
                    String::new()
                };
                println!(
                    "== {}{nodes}, {scenario}, {connections} connections, {} broadcasts at {}/s",
                    mode.label(),
                    args.broadcasts,
                    args.rate
                );
                let outcome = one(&args, &me, &server_bin, mode, scenario, connections)?;
                outcome.print();
                outcomes.push(outcome);
            }
        }
    }
    table(&outcomes);
    Ok(outcomes.iter().all(Outcome::ok))
}

fn recv(
    rx: &Receiver<(usize, String)>,
    deadline: Instant,
) -> Result<(usize, String), RecvTimeoutError> {
    rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
}

fn percentile_ms(sorted: &[u32], p: usize) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    f64::from(sorted[(sorted.len() - 1) * p / 100]) / 1000.0
}

/// A server of the run.
struct Node {
    proc: Proc,
    addr: SocketAddr,
    pid: u32,
    usage: Usage,
    cpu_before: f64,
}

/// Starts a server (on `redis` if given) and waits for its address.
fn start_server(
    args: &RunArgs,
    server_bin: &Path,
    mode: Mode,
    redis: Option<&str>,
) -> io::Result<Node> {
    let max_seconds = args.max_seconds.to_string();
    let threads = args.server_threads.to_string();
    if let Some(runtime) = mode.demo_runtime() {
        return start_demo(args, runtime, redis);
    }
    let mut cmd = Command::new(server_bin);
    cmd.args([
        "--mode",
        mode.arg(),
        "--listen",
        "127.0.0.1:0",
        "--admin-token",
        sse_loadbench::ADMIN_TOKEN,
        "--threads",
        &threads,
        "--exit-on-stdin-eof",
        "--max-seconds",
        &max_seconds,
    ]);
    if let Some(url) = redis {
        cmd.args(["--redis", url]);
    }
    let mut proc = Proc::spawn(&mut cmd)
        .map_err(|e| io::Error::other(format!("starting {}: {e}", server_bin.display())))?;
    let pid = proc.pid();
    let (tx, rx) = mpsc::channel();
    proc.forward(usize::MAX, tx);
    let addr: SocketAddr = match recv(&rx, Instant::now() + Duration::from_secs(20)) {
        Ok((_, line)) => line
            .strip_prefix("listening ")
            .and_then(|a| a.trim().parse().ok())
            .ok_or_else(|| io::Error::other(format!("server said {line:?}")))?,
        Err(_) => return Err(io::Error::other("the server did not start")),
    };
    Ok(Node {
        proc,
        addr,
        pid,
        usage: Usage::default(),
        cpu_before: 0.0,
    })
}

/// Starts the demo binary on `runtime` and waits for its address (`demo (tokio): open
/// http://127.0.0.1:PORT/`).
fn start_demo(args: &RunArgs, runtime: &str, redis: Option<&str>) -> io::Result<Node> {
    let demo_bin = match &args.demo_bin {
        Some(path) => path.clone(),
        None => std::env::current_exe()?.with_file_name("demo"),
    };
    let mut cmd = Command::new(&demo_bin);
    cmd.args([
        "--runtime",
        runtime,
        "--listen",
        "127.0.0.1:0",
        "--admin-token",
        sse_loadbench::ADMIN_TOKEN,
        "--exit-on-stdin-eof",
        // Off, explicitly: the generator opens thousands of streams from each of 8 addresses.
        "--peer-limits",
        "off",
    ])
    .env("RUST_LOG", "warn");
    if let Some(url) = redis {
        cmd.args(["--redis", url]);
    }
    let mut proc = Proc::spawn(&mut cmd)
        .map_err(|e| io::Error::other(format!("starting {}: {e}", demo_bin.display())))?;
    let pid = proc.pid();
    let (tx, rx) = mpsc::channel();
    proc.forward(usize::MAX, tx);
    let addr: SocketAddr = match recv(&rx, Instant::now() + Duration::from_secs(20)) {
        Ok((_, line)) => line
            .split("http://")
            .nth(1)
            .and_then(|a| a.trim().trim_end_matches('/').parse().ok())
            .ok_or_else(|| io::Error::other(format!("the demo said {line:?}")))?,
        Err(_) => return Err(io::Error::other("the demo did not start")),
    };
    Ok(Node {
        proc,
        addr,
        pid,
        usage: Usage::default(),
        cpu_before: 0.0,
    })
}

/// The tallies of one worker's `stats` line, added to its node's group and to the outcome.
fn add_stats(outcome: &mut Outcome, group: &mut Group, w: usize, stats: &str) {
    let stats: HashMap<&str, &str> = stats
        .split(' ')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let num = |k: &str| {
        stats
            .get(k)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    outcome.received += num("received");
    outcome.distinct += num("distinct");
    outcome.missing += num("missing");
    outcome.duplicates += num("duplicates");
    outcome.resets += num("resets");
    outcome.disconnects += num("disconnects");
    outcome.reconnects += num("reconnects");
    outcome.reconnect_failures += num("reconnect_failures");
    outcome.unexpected += num("unexpected");
    group.received += num("received");
    group.distinct += num("distinct");
    group.missing += num("missing");
    group.duplicates += num("duplicates");
    group.resets += num("resets");
    group.reconnect_failures += num("reconnect_failures");
    group.unexpected += num("unexpected");
    group.attach_retries += num("attach_retries");
    if let Some(err) = stats.get("error").filter(|e| **e != "-") {
        outcome.last_error = format!("worker {w}: {err}");
    }
}

/// Latency percentiles of `per_broadcast` (sorted in place), and the distinct events per second
/// from `sent[0]` to the last receipt (the latest send time plus the broadcast's largest
/// latency); returns `(p50, p99, max, events/s, phase seconds, p99 per broadcast)`.
fn latency_summary(
    per_broadcast: &mut [Vec<u32>],
    sent: &[u64],
    distinct: u64,
) -> (f64, f64, f64, f64, f64, Vec<f64>) {
    let mut all: Vec<u32> = Vec::new();
    let mut per = Vec::with_capacity(per_broadcast.len());
    let mut last_ns = 0u64;
    for (n, of_n) in per_broadcast.iter_mut().enumerate() {
        of_n.sort_unstable();
        per.push(percentile_ms(of_n, 99));
        if let (Some(&t), Some(&max)) = (sent.get(n), of_n.last()) {
            last_ns = last_ns.max(t + u64::from(max) * 1000);
        }
        all.extend_from_slice(of_n);
    }
    all.sort_unstable();
    let phase = match sent.first() {
        Some(&first) if last_ns > first => (last_ns - first) as f64 / 1e9,
        _ => 0.0,
    };
    let rate = if phase > 0.0 {
        distinct as f64 / phase
    } else {
        0.0
    };
    (
        percentile_ms(&all, 50),
        percentile_ms(&all, 99),
        percentile_ms(&all, 100),
        rate,
        phase,
        per,
    )
}

fn one(
    args: &RunArgs,
    me: &Path,
    server_bin: &Path,
    mode: Mode,
    scenario: Scenario,
    connections: usize,
) -> io::Result<Outcome> {
    let settle = Duration::from_millis(args.settle_ms);
    let max_seconds = args.max_seconds.to_string();
    let n_nodes = usize::from(args.nodes.max(1));

    // The servers, each alone in its process; above one, on a redis-server of the run's own.
    let redis = if n_nodes > 1 {
        let redis = RedisServer::start(args.max_seconds)?;
        println!("redis-server pid {} at {}", redis.pid(), redis.url());
        Some(redis)
    } else {
        None
    };
    let url = redis.as_ref().map(RedisServer::url);
    let mut nodes = Vec::with_capacity(n_nodes);
    for _ in 0..n_nodes {
        nodes.push(start_server(args, server_bin, mode, url.as_deref())?);
    }
    std::thread::sleep(settle);
    for node in &mut nodes {
        node.usage.rss_idle_kib = procfs::memory_kib(node.pid)?.0;
    }
    let mut redis_usage = Usage::default();
    if let Some(r) = &redis {
        redis_usage.rss_idle_kib = procfs::memory_kib(r.pid())?.0;
    }

    // The workers, each with its share of one node's connections.
    let (tx, rx) = mpsc::channel();
    let mut workers = Vec::new();
    let mut node_of = Vec::new();
    let start = Instant::now();
    let mut first = 0;
    for (k, node) in nodes.iter().enumerate() {
        let share = connections / n_nodes + usize::from(k < connections % n_nodes);
        let n_workers = share.div_ceil(args.per_worker.max(1)).max(1);
        let register = (k > 0 && args.register_on == RegisterOn::First).then(|| nodes[0].addr);
        for w in 0..n_workers {
            let count = share / n_workers + usize::from(w < share % n_workers);
            let mut cmd = Command::new(me);
            cmd.args([
                "worker",
                "--addr",
                &node.addr.to_string(),
                "--count",
                &count.to_string(),
                "--first",
                &first.to_string(),
                "--sources",
                &args.sources.to_string(),
                "--broadcasts",
                &args.broadcasts.to_string(),
                "--concurrency",
                &args.concurrency.to_string(),
                "--max-seconds",
                &max_seconds,
            ]);
            if let Some(register) = register {
                cmd.args(["--register-addr", &register.to_string()]);
            }
            let mut worker = Proc::spawn(&mut cmd)?;
            worker.forward(workers.len(), tx.clone());
            workers.push(worker);
            node_of.push(k);
            first += count;
        }
    }
    drop(tx);
    let n_workers = workers.len();

    let mut outcome = Outcome {
        load_before: std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default(),
        mode: Some(mode),
        scenario: Some(scenario),
        nodes: n_nodes,
        connections,
        rss_idle_kib: nodes[0].usage.rss_idle_kib,
        groups: vec![Group::default(); n_nodes],
        ..Outcome::default()
    };
    let deadline = start + Duration::from_secs(args.setup_secs);
    let mut ready = 0;
    while ready < n_workers {
        let (w, line) = recv(&rx, deadline)
            .map_err(|_| io::Error::other("connection setup did not finish in time"))?;
        let mut words = line.split_whitespace();
        match words.next() {
            Some("ready") => {
                let mut num = || {
                    words
                        .next()
                        .and_then(|w| w.parse::<u64>().ok())
                        .unwrap_or(0)
                };
                let (opened, failed) = (num(), num());
                outcome.opened += opened;
                outcome.failed += failed;
                let group = &mut outcome.groups[node_of[w]];
                group.opened += opened;
                group.failed += failed;
                ready += 1;
            }
            Some("eof") => return Err(io::Error::other(format!("worker {w} ended early"))),
            _ => eprintln!("worker {w}: {line}"),
        }
    }
    outcome.open_secs = start.elapsed().as_secs_f64();
    std::thread::sleep(settle);
    for node in &mut nodes {
        node.usage.rss_open_kib = procfs::memory_kib(node.pid)?.0;
    }
    let mut redis_cpu_before = 0.0;
    if let Some(r) = &redis {
        redis_usage.rss_open_kib = procfs::memory_kib(r.pid())?.0;
        redis_cpu_before = procfs::cpu_ms(r.pid())?;
    }
    for node in &mut nodes {
        node.cpu_before = procfs::cpu_ms(node.pid)?;
    }
    let workers_cpu = |workers: &[Proc]| -> f64 {
        workers
            .iter()
            .filter_map(|w| procfs::cpu_ms(w.pid()).ok())
            .sum()
    };
    let generator_before = workers_cpu(&workers);

    // The broadcasts, at the rate asked, all on node 1.
    let mut admin = Admin::connect(nodes[0].addr, sse_loadbench::ADMIN_TOKEN)?;
    let period = Duration::from_secs_f64(1.0 / args.rate.max(0.001));
    let mut posts = Vec::with_capacity(args.broadcasts);
    let mut sent = Vec::with_capacity(args.broadcasts);
    let publish_start = Instant::now();
    for i in 0..args.broadcasts {
        if scenario == Scenario::Storm && i == args.storm_at {
            for worker in &mut workers {
                worker.say(&format!("storm {}", args.storm_spread_ms))?;
            }
        }
        let due = publish_start + period * u32::try_from(i).unwrap_or(u32::MAX);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let t = sse_loadbench::unix_nanos();
        sent.push(t);
        let body = sse_loadbench::payload(i, t, args.payload);
        let started = Instant::now();
        let (status, response) = admin.broadcast(&body)?;
        posts.push(started.elapsed());
        if status != 202 {
            return Err(io::Error::other(format!(
                "broadcast {i}: {status} {response}"
            )));
        }
        outcome.server_delivered += serde_json::from_str::<serde_json::Value>(&response)
            .ok()
            .and_then(|v| v["delivered"].as_u64())
            .unwrap_or(0);
    }
    let last_publish = Instant::now();
    outcome.publish_secs = (last_publish - publish_start).as_secs_f64();

    // Every event in, or the drain time up.
    let deadline = last_publish + Duration::from_secs(args.drain_secs);
    let mut complete = 0;
    while complete < n_workers {
        match recv(&rx, deadline) {
            Ok((_, line)) if line == "complete" => complete += 1,
            Ok((w, line)) if line == "eof" => {
                return Err(io::Error::other(format!("worker {w} ended early")));
            }
            Ok((w, line)) => eprintln!("worker {w}: {line}"),
            Err(_) => break,
        }
    }
    outcome.drain_secs = last_publish.elapsed().as_secs_f64();
    // Room for late duplicates to show.
    std::thread::sleep(Duration::from_millis(200));
    for node in &mut nodes {
        node.usage.cpu_ms = procfs::cpu_ms(node.pid)? - node.cpu_before;
        (node.usage.rss_end_kib, node.usage.rss_peak_kib) = procfs::memory_kib(node.pid)?;
    }
    if let Some(r) = &redis {
        redis_usage.cpu_ms = procfs::cpu_ms(r.pid())? - redis_cpu_before;
        (redis_usage.rss_end_kib, redis_usage.rss_peak_kib) = procfs::memory_kib(r.pid())?;
        outcome.redis_calls = match r.command_calls() {
            Ok(calls) => calls
                .iter()
                .map(|(name, n)| format!("{name}={n}"))
                .collect::<Vec<_>>()
                .join(" "),
            Err(err) => format!("(INFO commandstats failed: {err})"),
        };
    }
    outcome.generator_cpu_ms = workers_cpu(&workers) - generator_before;

    // The tallies.
    for worker in &mut workers {
        worker.say("report")?;
    }
    let mut per_broadcast: Vec<Vec<Vec<u32>>> = vec![vec![Vec::new(); args.broadcasts]; n_nodes];
    let mut ended = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while ended < n_workers {
        let (w, line) =
            recv(&rx, deadline).map_err(|_| io::Error::other("workers did not report"))?;
        if let Some(stats) = line.strip_prefix("stats ") {
            let mut group = std::mem::take(&mut outcome.groups[node_of[w]]);
            add_stats(&mut outcome, &mut group, w, stats);
            outcome.groups[node_of[w]] = group;
        } else if let Some(values) = line.strip_prefix("lat ") {
            let mut values = values.split_whitespace().map(|v| v.parse::<u32>().ok());
            let n = values.next().flatten().map_or(usize::MAX, |n| n as usize);
            if let Some(of_n) = per_broadcast[node_of[w]].get_mut(n) {
                of_n.extend(values.flatten());
            }
        } else if line == "end" {
            ended += 1;
        } else if line == "eof" {
            return Err(io::Error::other(format!("worker {w} ended early")));
        } else {
            eprintln!("worker {w}: {line}");
        }
    }
    if outcome.last_error.is_empty() {
        outcome.last_error = "-".into();
    }

    // Stop everything this run started: the workers (closing their connections), the servers,
    // then redis-server.
    for worker in workers {
        worker.finish(Duration::from_secs(10));
    }
    let usages: Vec<Usage> = nodes
        .into_iter()
        .map(|node| {
            node.proc.finish(Duration::from_secs(5));
            node.usage
        })
        .collect();
    drop(redis);

    let broadcasts = args.broadcasts as u64;
    for (group, of_group) in outcome.groups.iter_mut().zip(&mut per_broadcast) {
        group.expected = group.opened * broadcasts;
        let (p50, p99, max, rate, phase, _) = latency_summary(of_group, &sent, group.distinct);
        (group.lat_p50_ms, group.lat_p99_ms, group.lat_max_ms) = (p50, p99, max);
        (group.events_per_sec, group.phase_secs) = (rate, phase);
    }
    let mut all: Vec<Vec<u32>> = vec![Vec::new(); args.broadcasts];
    for of_group in per_broadcast {
        for (n, of_n) in of_group.into_iter().enumerate() {
            all[n].extend(of_n);
        }
    }
    let (p50, p99, max, rate, phase, per) = latency_summary(&mut all, &sent, outcome.distinct);
    (outcome.lat_p50_ms, outcome.lat_p99_ms, outcome.lat_max_ms) = (p50, p99, max);
    (outcome.events_per_sec, outcome.phase_secs) = (rate, phase);
    outcome.p99_per_broadcast_ms = per;
    posts.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    outcome.post_p50_ms = posts
        .get(posts.len().saturating_sub(1) / 2)
        .map_or(0.0, |d| ms(*d));
    outcome.post_max_ms = posts.last().map_or(0.0, |d| ms(*d));
    outcome.expected = outcome.opened * broadcasts;
    outcome.servers = usages;
    outcome.redis = (n_nodes > 1).then_some(redis_usage);
    let first = outcome.servers[0];
    outcome.cpu_ms = outcome.servers.iter().map(|u| u.cpu_ms).sum();
    outcome.cpu_us_per_event = per_event_us(outcome.cpu_ms, outcome.distinct);
    (
        outcome.rss_open_kib,
        outcome.rss_end_kib,
        outcome.rss_peak_kib,
    ) = (first.rss_open_kib, first.rss_end_kib, first.rss_peak_kib);
    outcome.kib_per_conn = if outcome.opened > 0 {
        (outcome.rss_open_kib as f64 - outcome.rss_idle_kib as f64) / outcome.opened as f64
    } else {
        0.0
    };
    Ok(outcome)
}
