//! Events per second through the client's parsing path (`BodyEvents`: an `http_body::Body` of
//! `Bytes` frames into the `sse-codec` parser and out as owned `Item`s, with the `reset` check),
//! against `eventsource-stream` over the same chunks, in the same run. (`reqwest-eventsource`
//! parses with `eventsource-stream`: that column is its parser path too.)
//!
//! Each workload is one event stream cut into 16 KiB frames before timing (what hyper hands
//! over from a socket read). Before timing, both sides' event counts and data lengths are
//! checked against what the generator wrote, so neither can skip work.
//!
//! Run: `cargo bench -p sse-client --bench parse -- --warm-up-time 1 --measurement-time 3`

use std::convert::Infallible;
use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_main};
use eventsource_stream::Eventsource as _;
use futures::StreamExt as _;
use http_body::Frame;
use http_body_util::StreamBody;
use sse_client::{BodyEvents, Item};

/// The size of a body frame: what one read of hyper's typically gives.
const FRAME: usize = 16 * 1024;

/// Events in each workload.
const EVENTS: usize = 10_000;

struct Workload {
    name: &'static str,
    frames: Vec<Bytes>,
    /// Events, and bytes of data they carry.
    expected: (usize, usize),
}

fn workload(name: &'static str, event: impl Fn(usize) -> (String, usize)) -> Workload {
    let mut stream = String::new();
    let mut data_bytes = 0;
    for i in 0..EVENTS {
        let (text, data_len) = event(i);
        stream.push_str(&text);
        data_bytes += data_len;
    }
    let bytes = Bytes::from(stream);
    let frames = (0..bytes.len())
        .step_by(FRAME)
        .map(|at| bytes.slice(at..(at + FRAME).min(bytes.len())))
        .collect();
    Workload {
        name,
        frames,
        expected: (EVENTS, data_bytes),
    }
}

fn workloads() -> Vec<Workload> {
    let json = r#"{"user":"alice","action":"update","fields":{"title":"Quarterly report","pages":12,"tags":["finance","q3"]},"at":"2026-12-04T20:00:00Z"}"#;
    vec![
        // What the hub sends: a sequence id and a short message.
        workload("small_id_data", |i| {
            let data = format!("tick {i}");
            (format!("id: {i}\ndata: {data}\n\n"), data.len())
        }),
        // A named event with a JSON payload of ~150 bytes.
        workload("json_150B", |i| {
            (
                format!("event: update\nid: {i}\ndata: {json}\n\n"),
                json.len(),
            )
        }),
        // 4 KiB payloads over three data lines.
        workload("multiline_4KiB", |i| {
            let line = "x".repeat(1365);
            let text = format!("id: {i}\ndata: {line}\ndata: {line}\ndata: {line}\n\n");
            (text, 3 * 1365 + 2)
        }),
    ]
}

fn run_client(frames: &[Bytes]) -> (usize, usize) {
    let frames = frames
        .iter()
        .map(|f| Ok::<_, Infallible>(Frame::data(f.clone())));
    let mut events = BodyEvents::new(StreamBody::new(futures::stream::iter(frames)));
    futures::executor::block_on(async {
        let (mut n, mut bytes) = (0, 0);
        while let Some(item) = events.next().await {
            match item {
                Ok(Item::Event(event)) => {
                    n += 1;
                    bytes += event.data().len();
                    black_box(event);
                }
                other => panic!("sse-client: {other:?}"),
            }
        }
        (n, bytes)
    })
}

fn run_eventsource_stream(frames: &[Bytes]) -> (usize, usize) {
    let body = futures::stream::iter(frames.iter().map(|f| Ok::<_, Infallible>(f.clone())));
    let mut events = body.eventsource();
    futures::executor::block_on(async {
        let (mut n, mut bytes) = (0, 0);
        while let Some(item) = events.next().await {
            match item {
                Ok(event) => {
                    n += 1;
                    bytes += event.data.len();
                    black_box(event);
                }
                Err(err) => panic!("eventsource-stream: {err}"),
            }
        }
        (n, bytes)
    })
}

fn parse(c: &mut Criterion) {
    for w in workloads() {
        assert_eq!(
            run_client(&w.frames),
            w.expected,
            "sse-client on {}",
            w.name
        );
        assert_eq!(
            run_eventsource_stream(&w.frames),
            w.expected,
            "eventsource-stream on {}",
            w.name
        );
        let mut group = c.benchmark_group(format!("client_parse/{}", w.name));
        group.throughput(Throughput::Elements(EVENTS as u64));
        group.sample_size(20);
        let frames = &w.frames;
        group.bench_function("sse-client", |b| b.iter(|| run_client(black_box(frames))));
        group.bench_function("eventsource-stream", |b| {
            b.iter(|| run_eventsource_stream(black_box(frames)))
        });
        group.finish();
    }
}

mod group {
    // `criterion_group!` defines an undocumented `pub fn`.
    #![allow(missing_docs, unreachable_pub)]
    criterion::criterion_group!(benches, super::parse);
}
criterion_main!(group::benches);
