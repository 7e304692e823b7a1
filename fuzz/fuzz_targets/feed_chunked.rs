//! Arbitrary bytes under arbitrary chunking, with small or default limits: the callback API
//! (`feed`) gives exactly the items the pull API (`push` + `next`) gives, and the same last id.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sse_codec::{Limits, Parser};

fuzz_target!(|input: (Vec<u16>, Vec<u8>, bool)| {
    let (cuts, bytes, small) = input;
    let small_limits = Limits { max_line_len: 64, max_event_len: 128 };
    let limits = if small { small_limits } else { Limits::DEFAULT };
    let (mut fed, mut pulled) = (Parser::with_limits(limits), Parser::with_limits(limits));
    let (mut fed_items, mut pulled_items) = (Vec::new(), Vec::new());
    let mut rest = &bytes[..];
    for &cut in cuts.iter().chain([&u16::MAX]) {
        let (chunk, tail) = rest.split_at(usize::from(cut).min(rest.len()));
        rest = tail;
        fed.feed(chunk, |item| fed_items.push(item.map(|item| item.to_owned())));
        pulled.push_slice(chunk);
        pulled_items.extend(std::iter::from_fn(|| pulled.next()));
    }
    fed.finish();
    pulled.finish();
    pulled_items.extend(std::iter::from_fn(|| pulled.next()));
    assert_eq!(fed_items, pulled_items);
    assert_eq!(fed.last_event_id(), pulled.last_event_id());
});
