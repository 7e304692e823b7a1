//! Parser throughput measured interleaved: every round runs each implementation once over the
//! workload, in turn, so a neighbour's load on a shared machine lands on all of them alike; the
//! ratios are taken within each round and their median reported.
//!
//! The `parse` benchmark (criterion) measures each implementation in one block after the other;
//! on a machine shared with other jobs that moves its ratios by up to 1.5x from run to run. This
//! one is the corroboration. Same workloads and drivers (`support/parsers.rs`).
//!
//! Run: `cargo bench -p sse-codec --bench interleaved` (`-- --rounds N`, default 41). Under
//! `cargo test` (no `--bench` argument) it runs one round and checks every implementation's
//! tally, so the drivers stay correct.

use std::hint::black_box;
use std::time::{Duration, Instant};

#[path = "support/parsers.rs"]
mod parsers;
use parsers::{
    Workload, run_eventsource_stream, run_memchr, run_ours_feed, run_ours_pull, run_sse_core,
    workloads,
};

/// The implementations, in the order of the table's columns.
const NAMES: [&str; 5] = [
    "feed",
    "push/next",
    "sse-core",
    "eventsource-stream",
    "memchr floor",
];

/// Runs implementation `k` `passes` times over the workload (checking its result); the time of
/// one pass.
fn run(k: usize, w: &Workload, passes: u32) -> Duration {
    let chunks = black_box(&w.chunks);
    let start = Instant::now();
    for _ in 0..passes {
        match k {
            0 => assert_eq!(run_ours_feed(chunks), w.expected),
            1 => assert_eq!(run_ours_pull(chunks), w.expected),
            2 => assert_eq!(run_sse_core(chunks), w.expected),
            3 => assert_eq!(run_eventsource_stream(chunks), w.expected),
            _ => assert_eq!(run_memchr(chunks), w.newlines),
        }
    }
    start.elapsed() / passes
}

/// Each timed sample lasts at least this long (fast implementations make several passes).
const SAMPLE: Duration = Duration::from_millis(20);

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bench = args.iter().any(|a| a == "--bench");
    let rounds = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(if bench { 41 } else { 1 });
    println!(
        "| workload | feed MiB/s | push/next | sse-core | eventsource-stream | memchr floor | \
         feed / sse-core | feed / eventsource-stream | floor / feed |"
    );
    println!("|---|--:|--:|--:|--:|--:|--:|--:|--:|");
    for w in workloads() {
        // Warm up with one untimed pass each (also the correctness check), which sets how many
        // passes make one sample.
        let passes: Vec<u32> = (0..NAMES.len())
            .map(|k| {
                let once = run(k, &w, 1).max(Duration::from_nanos(1));
                (SAMPLE.as_nanos() / once.as_nanos()).clamp(1, 10_000) as u32
            })
            .collect();
        let mut secs: Vec<Vec<f64>> = vec![Vec::new(); NAMES.len()];
        let mut ratios: [Vec<f64>; 3] = Default::default();
        for _ in 0..rounds {
            let mut t = [0.0; NAMES.len()];
            for (k, slot) in t.iter_mut().enumerate() {
                *slot = run(k, &w, if bench { passes[k] } else { 1 }).as_secs_f64();
                secs[k].push(*slot);
            }
            ratios[0].push(t[2] / t[0]);
            ratios[1].push(t[3] / t[0]);
            ratios[2].push(t[0] / t[4]);
        }
        let mib = |s: f64| w.len as f64 / s / (1024.0 * 1024.0);
        let mut row = format!("| `{}` |", w.name);
        for s in &mut secs {
            row += &format!(" {:.0} |", mib(median(s)));
        }
        for r in &mut ratios {
            let (lo, hi) = (
                r.iter().copied().fold(f64::MAX, f64::min),
                r.iter().copied().fold(0.0, f64::max),
            );
            row += &format!(" {:.2}x ({:.2}–{:.2}) |", median(r), lo, hi);
        }
        println!("{row}");
    }
}
