//! The coordinator: for each run, starts a server process and the worker processes, publishes
//! the broadcasts at the given rate, reads the server's CPU time and memory in `/proc`, collects
//! the workers' tallies, stops every process it started, and reports.

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
}

impl Mode {
    fn arg(self) -> &'static str {
        match self {
            Self::Tokio => "tokio",
            Self::Smol => "smol",
            Self::Baseline => "baseline",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Tokio => "ours on tokio",
            Self::Smol => "ours on smol",
            Self::Baseline => "baseline (axum Sse + broadcast)",
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
    /// The server's runtime threads.
    #[arg(long, default_value_t = 2)]
    server_threads: usize,
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

/// One run's measurements.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outcome {
    mode: Option<Mode>,
    scenario: Option<Scenario>,
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
}

impl Outcome {
    /// Whether the run delivered what it must: every connection opened; for ours every event
    /// exactly once; for the baseline the same, except in the storm, where its losses are the
    /// finding.
    pub(crate) fn ok(&self) -> bool {
        let excused = self.mode == Some(Mode::Baseline) && self.scenario == Some(Scenario::Storm);
        self.failed == 0
            && self.reconnect_failures == 0
            && self.opened as usize == self.connections
            && (excused
                || (self.missing == 0
                    && self.duplicates == 0
                    && self.resets == 0
                    && self.unexpected == 0))
    }

    fn print(&self) {
        let mode = self.mode.map_or("?", Mode::label);
        let scenario = self.scenario.map_or("?".into(), |s| s.to_string());
        println!("-- {mode}, {scenario}, {} connections", self.connections);
        println!(
            "connections: {} opened, {} failed, in {:.2} s",
            self.opened, self.failed, self.open_secs
        );
        println!(
            "events: expected {}, received {} distinct ({} in all), lost {}, duplicates {}, \
             resets {}, unexpected {}; the server reported {} deliveries",
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
            "server CPU (broadcast phase): {:.0} ms user+sys, {:.2} µs per delivered event; \
             the workers' CPU meanwhile {:.0} ms; load average before the run: {}",
            self.cpu_ms, self.cpu_us_per_event, self.generator_cpu_ms, self.load_before
        );
        println!(
            "server RSS: idle {:.1} MiB, with the connections open {:.1} MiB ({:.2} KiB per \
             connection), after the broadcasts {:.1} MiB, peak {:.1} MiB",
            self.rss_idle_kib as f64 / 1024.0,
            self.rss_open_kib as f64 / 1024.0,
            self.kib_per_conn,
            self.rss_end_kib as f64 / 1024.0,
            self.rss_peak_kib as f64 / 1024.0
        );
        println!(
            "result mode={} scenario={scenario} connections={} opened={} lost={} duplicates={} \
             resets={} ok={}",
            self.mode.map_or("?", Mode::arg),
            self.connections,
            self.opened,
            self.missing,
            self.duplicates,
            self.resets,
            self.ok()
        );
    }
}

/// Prints the outcomes as a Markdown table.
fn table(outcomes: &[Outcome]) {
    println!();
    println!(
        "| server | scenario | conns | open (s) | events expected | lost | dup | p50 ms | p99 ms \
         | max ms | CPU ms | CPU µs/event | RSS idle MiB | RSS open MiB | KiB/conn |"
    );
    println!("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for o in outcomes {
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
            o.rss_idle_kib as f64 / 1024.0,
            o.rss_open_kib as f64 / 1024.0,
            o.kib_per_conn
        );
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
    let mut outcomes = Vec::new();
    for &scenario in &args.scenarios {
        for &connections in &args.connections {
            for &mode in &args.modes {
                println!(
                    "== {}, {scenario}, {connections} connections, {} broadcasts at {}/s",
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

    // The server, alone in its process.
    let mut server = Proc::spawn(Command::new(server_bin).args([
        "--mode",
        mode.arg(),
        "--listen",
        "127.0.0.1:0",
        "--admin-token",
        sse_loadbench::ADMIN_TOKEN,
        "--threads",
        &args.server_threads.to_string(),
        "--exit-on-stdin-eof",
        "--max-seconds",
        &max_seconds,
    ]))
    .map_err(|e| io::Error::other(format!("starting {}: {e}", server_bin.display())))?;
    let pid = server.pid();
    let (tx, rx) = mpsc::channel();
    server.forward(usize::MAX, tx);
    let addr: SocketAddr = match recv(&rx, Instant::now() + Duration::from_secs(20)) {
        Ok((_, line)) => line
            .strip_prefix("listening ")
            .and_then(|a| a.trim().parse().ok())
            .ok_or_else(|| io::Error::other(format!("server said {line:?}")))?,
        Err(_) => return Err(io::Error::other("the server did not start")),
    };
    std::thread::sleep(settle);
    let (rss_idle_kib, _) = procfs::memory_kib(pid)?;

    // The workers, each with its share of the connections.
    let n_workers = connections.div_ceil(args.per_worker.max(1)).max(1);
    let (tx, rx) = mpsc::channel();
    let mut workers = Vec::with_capacity(n_workers);
    let start = Instant::now();
    let mut first = 0;
    for w in 0..n_workers {
        let count = connections / n_workers + usize::from(w < connections % n_workers);
        let mut worker = Proc::spawn(Command::new(me).args([
            "worker",
            "--addr",
            &addr.to_string(),
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
        ]))?;
        worker.forward(w, tx.clone());
        workers.push(worker);
        first += count;
    }
    drop(tx);

    let mut outcome = Outcome {
        load_before: std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default(),
        mode: Some(mode),
        scenario: Some(scenario),
        connections,
        rss_idle_kib,
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
                outcome.opened += num();
                outcome.failed += num();
                ready += 1;
            }
            Some("eof") => return Err(io::Error::other(format!("worker {w} ended early"))),
            _ => eprintln!("worker {w}: {line}"),
        }
    }
    outcome.open_secs = start.elapsed().as_secs_f64();
    std::thread::sleep(settle);
    outcome.rss_open_kib = procfs::memory_kib(pid)?.0;
    let cpu_before = procfs::cpu_ms(pid)?;
    let workers_cpu = |workers: &[Proc]| -> f64 {
        workers
            .iter()
            .filter_map(|w| procfs::cpu_ms(w.pid()).ok())
            .sum()
    };
    let generator_before = workers_cpu(&workers);

    // The broadcasts, at the rate asked.
    let mut admin = Admin::connect(addr, sse_loadbench::ADMIN_TOKEN)?;
    let period = Duration::from_secs_f64(1.0 / args.rate.max(0.001));
    let mut posts = Vec::with_capacity(args.broadcasts);
    let publish_start = Instant::now();
    for i in 0..args.broadcasts {
        if scenario == Scenario::Storm && i == args.storm_at {
            for worker in &mut workers {
                worker.say(&format!("storm {}", args.storm_spread_ms))?;
            }
        }
        let due = publish_start + period * u32::try_from(i).unwrap_or(u32::MAX);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let body = sse_loadbench::payload(i, sse_loadbench::unix_nanos(), args.payload);
        let sent = Instant::now();
        let (status, response) = admin.broadcast(&body)?;
        posts.push(sent.elapsed());
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
    outcome.cpu_ms = procfs::cpu_ms(pid)? - cpu_before;
    outcome.generator_cpu_ms = workers_cpu(&workers) - generator_before;
    (outcome.rss_end_kib, outcome.rss_peak_kib) = procfs::memory_kib(pid)?;

    // The tallies.
    for worker in &mut workers {
        worker.say("report")?;
    }
    let mut per_broadcast: Vec<Vec<u32>> = vec![Vec::new(); args.broadcasts];
    let mut ended = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while ended < n_workers {
        let (w, line) =
            recv(&rx, deadline).map_err(|_| io::Error::other("workers did not report"))?;
        if let Some(stats) = line.strip_prefix("stats ") {
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
            if let Some(err) = stats.get("error").filter(|e| **e != "-") {
                outcome.last_error = format!("worker {w}: {err}");
            }
        } else if let Some(values) = line.strip_prefix("lat ") {
            let mut values = values.split_whitespace().map(|v| v.parse::<u32>().ok());
            let n = values.next().flatten().map_or(usize::MAX, |n| n as usize);
            if let Some(of_n) = per_broadcast.get_mut(n) {
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

    // Stop everything this run started: the workers (closing their connections), the server.
    for worker in workers {
        worker.finish(Duration::from_secs(10));
    }
    server.finish(Duration::from_secs(5));

    let mut latencies: Vec<u32> = Vec::new();
    for of_n in &mut per_broadcast {
        of_n.sort_unstable();
        outcome.p99_per_broadcast_ms.push(percentile_ms(of_n, 99));
        latencies.extend_from_slice(of_n);
    }
    latencies.sort_unstable();
    outcome.lat_p50_ms = percentile_ms(&latencies, 50);
    outcome.lat_p99_ms = percentile_ms(&latencies, 99);
    outcome.lat_max_ms = percentile_ms(&latencies, 100);
    posts.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    outcome.post_p50_ms = posts
        .get(posts.len().saturating_sub(1) / 2)
        .map_or(0.0, |d| ms(*d));
    outcome.post_max_ms = posts.last().map_or(0.0, |d| ms(*d));
    outcome.expected = outcome.opened * args.broadcasts as u64;
    outcome.cpu_us_per_event = if outcome.distinct > 0 {
        outcome.cpu_ms * 1000.0 / outcome.distinct as f64
    } else {
        0.0
    };
    outcome.kib_per_conn = if outcome.opened > 0 {
        (outcome.rss_open_kib as f64 - outcome.rss_idle_kib as f64) / outcome.opened as f64
    } else {
        0.0
    };
    Ok(outcome)
}
