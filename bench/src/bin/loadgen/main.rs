//! Run with: `cargo run --release -p sse-loadbench --bin loadgen -- --modes tokio,smol,baseline --connections 1000,5000,19000 --scenarios steady`
//! (two nodes on Redis: `… --bin loadgen -- --nodes 2 --modes demo-tokio --connections 1000,5000,19000`)
//!
//! The load generator of issue 8. For each run (every combination of `--scenarios`,
//! `--connections` and `--modes`) it starts a `bench-server` process, then worker processes
//! (this binary, `loadgen worker …`, hidden from the help) that each open up to `--per-worker`
//! SSE connections over loopback from the source addresses 127.0.0.2 up to 127.0.0.9, register
//! each client through the protocol (`POST /sse/clients`, `GET /sse/events/{id}`) and wait for
//! `registered`. It then publishes `--broadcasts` admin broadcasts at `--rate` per second, each
//! carrying its number and send time padded to `--payload` bytes, and reports: connections
//! opened and how long that took; events expected, received, lost and duplicated; latency from
//! publish to receipt (p50, p99, max); the server's CPU time over the broadcast phase per
//! delivered event; the server's resident memory idle and with every connection open, and per
//! connection. In the `storm` scenario every client drops and reconnects with `Last-Event-ID`
//! within `--storm-spread-ms` while the broadcasts go on.
//!
//! With `--nodes N` (N > 1; the demo-tokio, demo-smol, tokio and smol modes), each run starts
//! its own `redis-server` on a free loopback port and N servers sharing their hub through it
//! (`demo --redis`, or `bench-server --redis`); the clients are split evenly over the servers,
//! the broadcasts are published on node 1 only, and the figures are reported separately for
//! the clients of each node (node 1: local delivery; the others: cross-node, through Redis),
//! with the throughput, every server's CPU (per event it delivered) and memory, and
//! `redis-server`'s. By default (`--register-on first`) the clients of the other nodes
//! register on node 1 and then open their stream on their own node, so every one of them
//! exercises the shared ids.
//!
//! Every wait is bounded; every process it starts is stopped by its pid at the end of the run
//! (and ends by itself when the coordinator's pipe closes, or after `--max-seconds`). It exits
//! non-zero when a run lost, duplicated or failed anything it must not (the baseline's losses
//! in the storm are reported, not failed: it has no replay).

mod procfs;
mod redis;
mod run;
mod wire;
mod worker;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    about = "Load benchmark of the sse servers over real loopback sockets",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    #[command(flatten)]
    run: run::RunArgs,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Holds a share of the connections (started by the coordinator).
    #[command(hide = true)]
    Worker(worker::WorkerArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Cmd::Worker(args)) => worker::run(args).map(|()| true),
        None => run::run(cli.run),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("loadgen: some runs failed their checks (see `ok=false` above)");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("loadgen: {err}");
            ExitCode::FAILURE
        }
    }
}
