//! Encoder throughput: `Frame::encode` (a fresh `Bytes` per frame) and `Frame::encode_to` (one
//! reused buffer), against a straightforward hand-written encoder and a memcpy floor.
//!
//! Neither `sse-core` nor `eventsource-stream` has an encoder, so the comparison is with the code
//! a server would write by hand: `String` pushes and `str::split('\n')`. The floor allocates a
//! buffer of the encoded length and copies the data into it once, which any encoder must at least
//! do. Throughput is counted in bytes of encoded output.
//!
//! Run: `cargo bench -p sse-codec --bench encode -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use bytes::{BufMut, Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_main};
use sse_codec::{EventId, EventName, Frame};

/// One frame to encode: optional event type and id, and data.
struct Case {
    name: &'static str,
    event: Option<EventName>,
    id: Option<EventId>,
    data: String,
}

impl Case {
    fn frame(&self) -> Frame<'_> {
        let mut frame = Frame::new().data(&self.data);
        if let Some(event) = &self.event {
            frame = frame.event(event);
        }
        if let Some(id) = &self.id {
            frame = frame.id(id);
        }
        frame
    }
}

/// Deterministic ASCII text of exactly `len` bytes, with an LF every `line` bytes or so.
fn text(len: usize, line: usize) -> String {
    const WORDS: [&str; 8] = [
        "lorem", "ipsum", "dolor", "sit", "amet", "elit", "tempor", "magna",
    ];
    let mut out = String::with_capacity(len + 16);
    let mut since_lf = 0;
    let mut i = 0usize;
    while out.len() < len {
        let word = WORDS[i % WORDS.len()];
        i = i.wrapping_mul(5).wrapping_add(3);
        if since_lf + word.len() >= line {
            out.push('\n');
            since_lf = 0;
        } else {
            out.push(' ');
            since_lf += 1;
        }
        out.push_str(word);
        since_lf += word.len();
    }
    out.truncate(len);
    out
}

fn cases() -> Vec<Case> {
    let mut json = String::from(r#"{"id":4242,"user":"user-17","ts":1700004242,"text":""#);
    json.push_str(&text(160 - json.len() - 12, usize::MAX));
    json.push_str(r#"","ok":true}"#);
    vec![
        Case {
            name: "small",
            event: None,
            id: None,
            data: "abc".into(),
        },
        Case {
            name: "json_200B",
            event: Some(EventName::from_static("update")),
            id: Some(EventId::new("4242").unwrap()),
            data: json,
        },
        Case {
            name: "multiline_40KiB",
            event: None,
            id: None,
            data: text(40 * 1024, 80),
        },
    ]
}

/// What a server would write by hand: a `String` sized for the data plus a little, one `data:`
/// line per LF-separated line. (Unlike `Frame`, it does not treat CR as a line break.)
fn naive(case: &Case) -> Bytes {
    let mut out = String::with_capacity(case.data.len() + 64);
    if let Some(event) = &case.event {
        out.push_str("event: ");
        out.push_str(event.as_str());
        out.push('\n');
    }
    if let Some(id) = &case.id {
        out.push_str("id: ");
        out.push_str(id.as_str());
        out.push('\n');
    }
    for line in case.data.split('\n') {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

/// The floor: one allocation of the encoded length and one copy of the data.
fn floor(data: &str, encoded_len: usize) -> Bytes {
    let mut buf = BytesMut::with_capacity(encoded_len);
    buf.put_slice(data.as_bytes());
    buf.freeze()
}

fn encode(c: &mut Criterion) {
    for case in cases() {
        let encoded = case.frame().encode();
        assert_eq!(encoded.len(), case.frame().encoded_len(), "{}", case.name);
        assert_eq!(naive(&case), encoded, "{}", case.name);

        let mut group = c.benchmark_group(format!("encode/{}", case.name));
        group.throughput(Throughput::Bytes(encoded.len() as u64));
        group.bench_function("sse-codec-encode", |b| {
            b.iter(|| black_box(&case).frame().encode())
        });
        let mut buf = BytesMut::new();
        group.bench_function("sse-codec-encode_to-reused", |b| {
            b.iter(|| {
                buf.clear();
                black_box(&case).frame().encode_to(&mut buf);
                black_box(buf.len());
            })
        });
        group.bench_function("hand-written-String", |b| {
            b.iter(|| naive(black_box(&case)))
        });
        group.bench_function("memcpy-floor", |b| {
            b.iter(|| floor(black_box(&case.data), black_box(encoded.len())))
        });
        group.finish();
    }
}

mod group {
    // `criterion_group!` defines an undocumented `pub fn`.
    #![allow(missing_docs, unreachable_pub)]
    criterion::criterion_group!(benches, super::encode);
}
criterion_main!(group::benches);
