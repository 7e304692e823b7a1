//! Arbitrary bytes under arbitrary chunking: no panic, the same items as one-piece parsing and
//! as the naive reference parser, and memory bounded by the limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sse_codec::{Limits, Parser};

#[path = "../../crates/sse-codec/tests/support/naive.rs"]
mod naive;

const LIMITS: Limits = Limits { max_line_len: 256, max_event_len: 512 };

fuzz_target!(|input: (Vec<u16>, Vec<u8>)| {
    let (cuts, bytes) = input;
    let whole = run(&bytes, &[], LIMITS);
    let chunked = run(&bytes, &cuts, LIMITS);
    assert_eq!(whole, chunked, "chunking changed the result");
    // With limits no input reaches, the naive parser is the oracle.
    let unlimited = Limits { max_line_len: usize::MAX, max_event_len: usize::MAX };
    let items: Vec<_> = run(&bytes, &cuts, unlimited).into_iter().map(|r| r.unwrap()).collect();
    assert_eq!(items, naive::parse(&bytes));
});

fn run(bytes: &[u8], cuts: &[u16], limits: Limits) -> Vec<Result<sse_codec::Item, sse_codec::Error>> {
    let mut parser = Parser::with_limits(limits);
    let mut out = Vec::new();
    let mut rest = bytes;
    for &cut in cuts {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at(usize::from(cut) % (rest.len() + 1));
        parser.push(bytes::Bytes::copy_from_slice(chunk));
        rest = tail;
        out.extend(std::iter::from_fn(|| parser.next()));
        for item in out.iter().flatten() {
            if let sse_codec::Item::Event(event) = item {
                assert!(event.data().len() <= limits.max_event_len);
            }
        }
    }
    parser.push_slice(rest);
    parser.finish();
    out.extend(std::iter::from_fn(|| parser.next()));
    out
}
