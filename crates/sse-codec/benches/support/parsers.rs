//! The parser workloads and the drivers of each implementation, shared by the `parse`
//! (criterion) and `interleaved` benchmarks.

// Each benchmark uses what it needs of this module.
#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::fmt::Write as _;
use std::hint::black_box;

use bytes::Bytes;
use eventsource_stream::Eventsource as _;
use futures::StreamExt as _;
use sse_codec::{Item, ItemRef, Parser};
use sse_core::{SseDecoder, SseEvent};

/// A typical TCP segment payload.
pub const TCP_CHUNK: usize = 1460;

/// What a parser saw: how many events, and how many bytes of data they carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tally {
    pub events: usize,
    pub data_bytes: usize,
}

impl Tally {
    fn add(&mut self, data: &str) {
        self.events += 1;
        self.data_bytes += data.len();
    }
}

/// One event stream, pre-split into chunks.
pub struct Workload {
    pub name: &'static str,
    /// The stream's length in bytes.
    pub len: usize,
    pub chunks: Vec<Bytes>,
    pub expected: Tally,
    /// LF bytes in the stream: what the memchr floor must count.
    pub newlines: usize,
}

/// Builds a stream event by event; `expected` follows what a conforming parser must return.
#[derive(Default)]
pub struct StreamBuilder {
    text: String,
    pub expected: Tally,
}

impl StreamBuilder {
    /// Appends raw stream text that dispatches one event with `data_len` bytes of data.
    fn event(&mut self, raw: &str, data_len: usize) {
        self.text.push_str(raw);
        self.expected.events += 1;
        self.expected.data_bytes += data_len;
    }

    fn finish(self, name: &'static str, chunk: usize) -> Workload {
        let newlines = memchr::memchr_iter(b'\n', self.text.as_bytes()).count();
        let stream = Bytes::from(self.text);
        let chunks = (0..stream.len())
            .step_by(chunk)
            .map(|at| stream.slice(at..stream.len().min(at + chunk)))
            .collect();
        Workload {
            name,
            len: stream.len(),
            chunks,
            expected: self.expected,
            newlines,
        }
    }
}

/// Deterministic ASCII prose of exactly `len` bytes, with no CR or LF.
pub fn text(len: usize, seed: usize) -> String {
    const WORDS: [&str; 16] = [
        "lorem",
        "ipsum",
        "dolor",
        "sit",
        "amet",
        "consectetur",
        "adipiscing",
        "elit",
        "sed",
        "do",
        "eiusmod",
        "tempor",
        "incididunt",
        "ut",
        "labore",
        "magna",
    ];
    let mut out = String::with_capacity(len + 16);
    let mut i = seed;
    while out.len() < len {
        out.push_str(WORDS[i % WORDS.len()]);
        out.push(' ');
        i = i.wrapping_mul(31).wrapping_add(7);
    }
    out.truncate(len);
    out
}

/// A JSON object of about `len` bytes, on one line.
pub fn json(i: usize, len: usize) -> String {
    let mut s = format!(
        r#"{{"id":{i},"user":"user-{}","ts":{},"text":""#,
        i % 97,
        1_700_000_000 + i
    );
    let tail = r#"","ok":true}"#;
    s.push_str(&text(len.saturating_sub(s.len() + tail.len()), i));
    s.push_str(tail);
    s
}

pub fn workloads() -> Vec<Workload> {
    let mut all = Vec::new();

    // 1. 64 events of one 40 KiB data line each.
    let mut b = StreamBuilder::default();
    for i in 0..64 {
        let data = text(40 * 1024, i);
        b.event(&format!("data: {data}\n\n"), data.len());
    }
    all.push(b.finish("large_40KiB", TCP_CHUNK));

    // 2. 9-byte events: `data: 7\n\n`.
    let mut b = StreamBuilder::default();
    for i in 0..65_536 {
        b.event(&format!("data: {}\n\n", i % 10), 1);
    }
    all.push(b.finish("small_9B", TCP_CHUNK));

    // 3. Keep-alive comments, then one event to prove the parser is still in step.
    let mut b = StreamBuilder::default();
    b.text.push_str(&": keep-alive\n\n".repeat(50_000));
    b.event("data: end\n\n", 3);
    all.push(b.finish("keepalive", TCP_CHUNK));

    // 4. ~200-byte events: `event:` and `id:` lines, then a one-line JSON object.
    let mut b = StreamBuilder::default();
    for i in 0..10_000 {
        let data = json(i, 160);
        b.event(
            &format!("event: update\nid: {i}\ndata: {data}\n\n"),
            data.len(),
        );
    }
    all.push(b.finish("json_200B", TCP_CHUNK));

    // 5. Events of 20 data lines (~40 bytes each).
    let mut b = StreamBuilder::default();
    for i in 0..2_000 {
        let mut raw = String::new();
        let mut data_len = 0;
        for line in 0..20 {
            let value = text(32, i * 20 + line);
            writeln!(raw, "data: {value}").unwrap();
            data_len += value.len() + 1;
        }
        raw.push('\n');
        b.event(&raw, data_len - 1); // data lines are joined with LF
    }
    all.push(b.finish("multiline_20", TCP_CHUNK));

    // 6. 4 KiB events with an id, fed 10 bytes at a time.
    let mut b = StreamBuilder::default();
    for i in 0..64 {
        let data = text(4 * 1024, i);
        b.event(&format!("id: {i}\ndata: {data}\n\n"), data.len());
    }
    all.push(b.finish("medium_4KiB_10B_chunks", 10));

    // 7. CRLF line ends: ~150-byte events with `event:`, `id:` and a JSON data line.
    let mut b = StreamBuilder::default();
    for i in 0..10_000 {
        let data = json(i, 100);
        b.event(
            &format!("event: update\r\nid: {i}\r\ndata: {data}\r\n\r\n"),
            data.len(),
        );
    }
    all.push(b.finish("crlf_150B", TCP_CHUNK));

    all
}

/// `sse-codec` through its callback API: `feed` each chunk (borrowed); events come borrowed.
pub fn run_ours_feed(chunks: &[Bytes]) -> Tally {
    let mut parser = Parser::new();
    let mut tally = Tally::default();
    for chunk in chunks {
        parser.feed(chunk, |item| match item {
            Ok(ItemRef::Event(event)) => {
                tally.add(event.data());
                black_box(event);
            }
            Ok(ItemRef::Retry(ms)) => {
                black_box(ms);
            }
            Err(err) => panic!("sse-codec: {err}"),
        });
    }
    parser.finish();
    tally
}

/// `sse-codec` through its pull API: `push` each chunk (a reference-count clone), drain `next`
/// after every push; events come owned.
pub fn run_ours_pull(chunks: &[Bytes]) -> Tally {
    let mut parser = Parser::new();
    let mut tally = Tally::default();
    let mut drain = |parser: &mut Parser| {
        while let Some(item) = parser.next() {
            match item {
                Ok(Item::Event(event)) => {
                    tally.add(event.data());
                    black_box(event);
                }
                Ok(Item::Retry(ms)) => {
                    black_box(ms);
                }
                Err(err) => panic!("sse-codec: {err}"),
            }
        }
    };
    for chunk in chunks {
        parser.push(chunk.clone());
        drain(&mut parser);
    }
    parser.finish();
    drain(&mut parser);
    tally
}

/// `sse-core`: its sans-IO decoder reads each chunk in place through `&[u8]: Buf` (no copy, no
/// reference count); `next` returns `None` once the chunk is used up.
pub fn run_sse_core(chunks: &[Bytes]) -> Tally {
    let mut decoder = SseDecoder::new();
    let mut tally = Tally::default();
    for chunk in chunks {
        let mut buf: &[u8] = chunk;
        while let Some(item) = decoder.next(&mut buf) {
            match item {
                Ok(SseEvent::Message(event)) => {
                    tally.add(&event.data);
                    black_box(event);
                }
                Ok(SseEvent::Retry(ms)) => {
                    black_box(ms);
                }
                Err(err) => panic!("sse-core: {err}"),
            }
        }
    }
    tally
}

/// `eventsource-stream`: its `Stream` adapter over `futures::stream::iter` of the chunks (as
/// `&[u8]`, no copy), polled on the current thread by `futures::executor::block_on`.
pub fn run_eventsource_stream(chunks: &[Bytes]) -> Tally {
    let body = futures::stream::iter(chunks.iter().map(|c| Ok::<&[u8], Infallible>(c)));
    let mut events = body.eventsource();
    futures::executor::block_on(async {
        let mut tally = Tally::default();
        while let Some(item) = events.next().await {
            match item {
                Ok(event) => {
                    tally.add(&event.data);
                    black_box(event);
                }
                Err(err) => panic!("eventsource-stream: {err}"),
            }
        }
        tally
    })
}

/// The floor: count LF in every chunk with `memchr`, and nothing else.
pub fn run_memchr(chunks: &[Bytes]) -> usize {
    chunks
        .iter()
        .map(|chunk| memchr::memchr_iter(b'\n', chunk).count())
        .sum()
}
