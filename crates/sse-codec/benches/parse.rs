//! Parser throughput: `sse-codec` against the `sse-core` and `eventsource-stream` crates, with a
//! bare `memchr` scan for LF over the same chunks as the floor.
//!
//! Each workload is one complete event stream, split into chunks before timing. Every
//! implementation gets the chunks one at a time and takes every event out before the next chunk,
//! as a client reading a socket would. Before timing, each implementation's event count and total
//! data length are checked against what the generator wrote, so none can skip work.
//!
//! `sse-codec` is measured twice: through `Parser::feed` (borrowed chunks in, borrowed events out:
//! the like-for-like comparison with `sse-core`, which also reads borrowed chunks, though it hands
//! out owned events) and through `push` + `next` (queued `Bytes` in, owned events out).
//!
//! Run: `cargo bench -p sse-codec --bench parse -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_main};

#[path = "support/parsers.rs"]
mod parsers;
use parsers::{
    run_eventsource_stream, run_memchr, run_ours_feed, run_ours_pull, run_sse_core, workloads,
};

fn parse(c: &mut Criterion) {
    for w in workloads() {
        // Correctness first, outside the timed loops: every implementation must see every event.
        assert_eq!(
            run_ours_feed(&w.chunks),
            w.expected,
            "sse-codec feed on {}",
            w.name
        );
        assert_eq!(
            run_ours_pull(&w.chunks),
            w.expected,
            "sse-codec pull on {}",
            w.name
        );
        assert_eq!(
            run_sse_core(&w.chunks),
            w.expected,
            "sse-core on {}",
            w.name
        );
        assert_eq!(
            run_eventsource_stream(&w.chunks),
            w.expected,
            "eventsource-stream on {}",
            w.name
        );
        assert_eq!(run_memchr(&w.chunks), w.newlines, "memchr on {}", w.name);

        let mut group = c.benchmark_group(format!("parse/{}", w.name));
        group.throughput(Throughput::Bytes(w.len as u64));
        // Long enough for stable numbers; few enough that the slowest peer fits the time budget.
        group.sample_size(20);
        let chunks = &w.chunks;
        group.bench_function("sse-codec-feed", |b| {
            b.iter(|| run_ours_feed(black_box(chunks)))
        });
        group.bench_function("sse-codec-pull", |b| {
            b.iter(|| run_ours_pull(black_box(chunks)))
        });
        group.bench_function("sse-core", |b| b.iter(|| run_sse_core(black_box(chunks))));
        group.bench_function("eventsource-stream", |b| {
            b.iter(|| run_eventsource_stream(black_box(chunks)))
        });
        group.bench_function("memchr-floor", |b| b.iter(|| run_memchr(black_box(chunks))));
        group.finish();
    }
}

mod group {
    // `criterion_group!` defines an undocumented `pub fn`.
    #![allow(missing_docs, unreachable_pub)]
    criterion::criterion_group!(benches, super::parse);
}
criterion_main!(group::benches);
