//! Property tests for the parser and the encoder: the streaming parser, through its pull API
//! (`push` + `next`) and its callback API (`feed`) alike, agrees with the naive reference parser on
//! arbitrary bytes under arbitrary chunking; encoded frames parse back to what was encoded; and
//! with small [`Limits`] the output stays bounded, does not depend on chunking or on the API, and
//! the parser recovers after a limit error.

#[path = "support/naive.rs"]
mod naive;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use sse_codec::{Error, Event, EventId, EventName, Frame, Item, ItemRef, Limits, Parser, comment};

const BOM: &[u8] = b"\xEF\xBB\xBF";

// ------------------------------------------------------------------------------------------------
// Running the parser

/// Everything a parser produced for one stream.
#[derive(Debug, PartialEq)]
struct Outcome {
    items: Vec<Result<Item, Error>>,
    last_id: String,
}

/// Feeds `input` to a fresh parser in the chunks `cuts` delimits, draining it after every push
/// (or only once everything is pushed when `queue` is set), then ends the stream.
fn run(limits: Limits, input: &[u8], cuts: &[usize], queue: bool) -> Outcome {
    let mut parser = Parser::with_limits(limits);
    let mut items = Vec::new();
    let mut start = 0;
    for &end in cuts.iter().chain([&input.len()]) {
        parser.push_slice(&input[start..end]);
        start = end;
        if !queue {
            items.extend(core::iter::from_fn(|| parser.next()));
        }
    }
    parser.finish();
    items.extend(core::iter::from_fn(|| parser.next()));
    Outcome {
        items,
        last_id: parser.last_event_id().to_owned(),
    }
}

/// [`run`] through the callback API: `feed` each chunk, then `finish`.
fn run_feed(limits: Limits, input: &[u8], cuts: &[usize]) -> Outcome {
    let mut parser = Parser::with_limits(limits);
    let mut items = Vec::new();
    let mut start = 0;
    for &end in cuts.iter().chain([&input.len()]) {
        parser.feed(&input[start..end], |item| {
            items.push(item.map(|item: ItemRef<'_>| item.to_owned()));
        });
        start = end;
    }
    parser.finish();
    Outcome {
        items,
        last_id: parser.last_event_id().to_owned(),
    }
}

/// Every way to run one chunking: pulled after every push, pulled once everything is queued, and
/// fed. All must agree; returns what they gave.
fn run_all_ways(limits: Limits, input: &[u8], cuts: &[usize]) -> Result<Outcome, TestCaseError> {
    let pulled = run(limits, input, cuts, false);
    prop_assert_eq!(
        &run(limits, input, cuts, true),
        &pulled,
        "queued, cuts {:?}",
        cuts
    );
    prop_assert_eq!(
        &run_feed(limits, input, cuts),
        &pulled,
        "fed, cuts {:?}",
        cuts
    );
    Ok(pulled)
}

/// Sorted split points for `len` bytes.
fn cut_points(len: usize, picks: &[Index]) -> Vec<usize> {
    let mut cuts: Vec<usize> = picks.iter().map(|pick| pick.index(len + 1)).collect();
    cuts.sort_unstable();
    cuts
}

/// Every split point: 1-byte chunks.
fn every_byte(len: usize) -> Vec<usize> {
    (1..len).collect()
}

fn naive_outcome(input: &[u8]) -> Outcome {
    let (items, last_id) = naive::parse_stream(input);
    Outcome {
        items: items.into_iter().map(Ok).collect(),
        last_id,
    }
}

// ------------------------------------------------------------------------------------------------
// Input generators

/// Pieces of streams, weighted towards the bytes the parser treats specially.
fn token() -> impl Strategy<Value = Vec<u8>> {
    let fixed = |bytes: &'static [u8]| Just(bytes.to_vec());
    prop_oneof![
        6 => fixed(b"data"),
        3 => fixed(b"data: "),
        3 => fixed(b"id"),
        2 => fixed(b"id: "),
        3 => fixed(b"event"),
        2 => fixed(b"event: "),
        3 => fixed(b"retry"),
        2 => fixed(b"retry: "),
        8 => fixed(b":"),
        6 => fixed(b" "),
        6 => fixed(b"\r"),
        8 => fixed(b"\n"),
        3 => fixed(b"\r\n"),
        2 => fixed(b"\n\n"),
        2 => fixed(BOM),
        1 => fixed(b"\xEF"),
        1 => fixed(b"\xEF\xBB"),
        1 => fixed(b"\x00"),
        4 => prop::sample::select(vec![
            &b"\xFF"[..],
            b"\x80",
            b"\xBF",
            b"\xC3",
            b"\xC0\x80",
            b"\xE2\x82",
            b"\xE0\x80\xAF",
            b"\xED\xA0\x80",
            b"\xF0\x9F\x98",
            b"\xF4\x90\x80\x80",
        ])
        .prop_map(<[u8]>::to_vec),
        2 => prop::sample::select(vec!["é", "€", "😀", "\u{FEFF}", "٣"])
            .prop_map(|s| s.as_bytes().to_vec()),
        4 => "[0-9]{1,3}".prop_map(String::into_bytes),
        1 => fixed(b"18446744073709551616"),
        1 => fixed(b"+1"),
        3 => "[a-zA-Z]{1,3}".prop_map(String::into_bytes),
        2 => any::<u8>().prop_map(|b| vec![b]),
    ]
}

/// An arbitrary, mostly nonsensical stream.
fn stream(max_tokens: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(token(), 0..max_tokens).prop_map(|tokens| tokens.concat())
}

/// A stream together with chunk boundaries for it.
fn chunked_stream(max_tokens: usize) -> impl Strategy<Value = (Vec<u8>, Vec<usize>)> {
    (stream(max_tokens), vec(any::<Index>(), 0..12)).prop_map(|(input, picks)| {
        let cuts = cut_points(input.len(), &picks);
        (input, cuts)
    })
}

/// Streams with long lines (past the sizes at which the parser decodes a data value in place, or
/// gathers pieces before decoding them): long runs of ASCII, multi-byte characters and invalid
/// sequences in `data` (and other) values, so that chunk boundaries fall inside sequences.
fn long_line_stream() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        4 => "[a-z ]{1,90}".prop_map(String::into_bytes),
        3 => prop::sample::select(vec!["é", "€", "😀", "\u{FEFF}", "ßü"])
            .prop_map(|s| s.as_bytes().to_vec()),
        2 => prop::sample::select(vec![
            &b"\xFF"[..],
            b"\x80\x80",
            b"\xC3",
            b"\xE2\x82",
            b"\xF0\x9F\x98",
            b"\xED\xA0\x80",
            b"\xE0\x80\xAF",
        ])
        .prop_map(<[u8]>::to_vec),
    ];
    let value = vec(piece, 0..12).prop_map(|pieces| pieces.concat());
    let name = prop::sample::select(vec![&b"data"[..], b"data", b"data", b"event", b"id", b"x"]);
    let eol = prop::sample::select(vec![&b"\n"[..], b"\r", b"\r\n", b"\n\n", b"\r\n\r\n"]);
    let line = (name, prop::bool::ANY, value, eol).prop_map(|(name, space, value, eol)| {
        let mut line = name.to_vec();
        line.extend_from_slice(if space { b": " } else { b":" });
        line.extend_from_slice(&value);
        line.extend_from_slice(eol);
        line
    });
    vec(line, 0..10).prop_map(|lines| lines.concat())
}

/// Text for values, heavy in line breaks, spaces, colons and characters that matter.
fn text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => Just("\r".to_owned()),
        3 => Just("\n".to_owned()),
        3 => Just("\r\n".to_owned()),
        3 => Just(" ".to_owned()),
        2 => Just(":".to_owned()),
        1 => Just("\u{0}".to_owned()),
        1 => Just("\u{FEFF}".to_owned()),
        1 => Just("data: x".to_owned()),
        4 => "[a-z0-9]{1,4}",
        2 => any::<char>().prop_map(String::from),
    ];
    vec(piece, 0..8).prop_map(|pieces| pieces.concat())
}

/// Text without CR, LF (and NUL for ids): what an event name or id may hold.
fn field_text(allow_nul: bool) -> impl Strategy<Value = String> {
    text().prop_map(move |s| {
        s.chars()
            .filter(|&c| c != '\r' && c != '\n' && (allow_nul || c != '\0'))
            .collect()
    })
}

/// One frame's worth of fields, plus an optional keep-alive comment sent before it.
#[derive(Debug, Clone)]
struct FrameSpec {
    keep_alive: Option<String>,
    comment: Option<String>,
    event: Option<EventName>,
    id: Option<EventId>,
    retry: Option<u64>,
    data: Option<String>,
}

fn frame_spec() -> impl Strategy<Value = FrameSpec> {
    let name = prop_oneof![
        4 => field_text(true).prop_filter_map("empty name", |s| EventName::new(s).ok()),
        1 => Just(EventName::from_static("message")),
        1 => Just(EventName::from_static(" spaced ")),
    ];
    let id = field_text(false).prop_map(|s| EventId::new(s).expect("no CR, LF or NUL"));
    let retry = prop_oneof![any::<u64>(), 0..10_000u64, Just(u64::MAX)];
    (
        prop::option::weighted(0.2, text()),
        prop::option::weighted(0.2, text()),
        prop::option::of(name),
        prop::option::of(id),
        prop::option::weighted(0.2, retry),
        prop::option::weighted(0.8, text()),
    )
        .prop_map(|(keep_alive, comment, event, id, retry, data)| FrameSpec {
            keep_alive,
            comment,
            event,
            id,
            retry,
            data,
        })
}

/// Encodes the frames into one stream and works out, independently of any parser, the items and
/// the final last event id that parsing it must give.
fn encode_frames(frames: &[FrameSpec]) -> (Vec<u8>, Vec<Item>, String) {
    let mut wire = Vec::new();
    let mut items = Vec::new();
    let mut last_id = String::new();
    for spec in frames {
        if let Some(text) = &spec.keep_alive {
            wire.extend_from_slice(&comment(text));
        }
        let mut frame = Frame::new();
        if let Some(text) = &spec.comment {
            frame = frame.comment(text);
        }
        if let Some(name) = &spec.event {
            frame = frame.event(name);
        }
        if let Some(id) = &spec.id {
            frame = frame.id(id);
            last_id = id.as_str().to_owned();
        }
        if let Some(ms) = spec.retry {
            frame = frame.retry(ms);
            items.push(Item::Retry(ms));
        }
        if let Some(data) = &spec.data {
            frame = frame.data(data);
            let data = data.replace("\r\n", "\n").replace('\r', "\n");
            let name = spec.event.as_ref().map_or("message", EventName::as_str);
            items.push(Item::Event(Event::new(name, data, &last_id)));
        }
        let encoded = frame.encode();
        assert_eq!(encoded.len(), frame.encoded_len(), "{frame:?}");
        wire.extend_from_slice(&encoded);
    }
    (wire, items, last_id)
}

fn small_limits() -> impl Strategy<Value = Limits> {
    (0..24usize, 0..40usize).prop_map(|(max_line_len, max_event_len)| Limits {
        max_line_len,
        max_event_len,
    })
}

fn event_data_lens(items: &[Result<Item, Error>]) -> impl Iterator<Item = usize> + '_ {
    items.iter().filter_map(|item| match item {
        Ok(Item::Event(event)) => Some(event.data().len()),
        _ => None,
    })
}

// ------------------------------------------------------------------------------------------------
// Properties

// Case counts keep the whole file under about ten seconds in a debug build; raise them locally
// (or loop the test) for a longer search.
proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The streaming parser, given arbitrary chunks through either API, gives exactly what the
    /// naive reference parser gives for the whole stream, and leaves the same last event id.
    #[test]
    fn fast_parser_matches_naive((input, cuts) in chunked_stream(80)) {
        let expected = naive_outcome(&input);
        prop_assert_eq!(&run_all_ways(Limits::DEFAULT, &input, &[])?, &expected, "one chunk");
        prop_assert_eq!(&run_all_ways(Limits::DEFAULT, &input, &cuts)?, &expected, "cuts {:?}", cuts);
    }

    /// The items do not depend on how the stream is split, down to 1-byte chunks, nor on the API.
    #[test]
    fn chunking_invariance((input, cuts) in chunked_stream(60)) {
        let whole = run(Limits::DEFAULT, &input, &[], false);
        prop_assert_eq!(&run_feed(Limits::DEFAULT, &input, &[]), &whole, "fed whole");
        prop_assert_eq!(&run_all_ways(Limits::DEFAULT, &input, &cuts)?, &whole, "cuts {:?}", cuts);
        let bytes = every_byte(input.len());
        prop_assert_eq!(&run_all_ways(Limits::DEFAULT, &input, &bytes)?, &whole, "1-byte chunks");
    }

    /// Long lines of mixed and invalid UTF-8, split anywhere (inside sequences too): both APIs
    /// give what the naive parser gives.
    #[test]
    fn long_lines_match_naive(
        input in long_line_stream(),
        picks in vec(any::<Index>(), 0..16),
    ) {
        let expected = naive_outcome(&input);
        let cuts = cut_points(input.len(), &picks);
        prop_assert_eq!(&run_all_ways(Limits::DEFAULT, &input, &[])?, &expected, "one chunk");
        prop_assert_eq!(&run_all_ways(Limits::DEFAULT, &input, &cuts)?, &expected, "cuts {:?}", cuts);
        let tens: Vec<usize> = (10..input.len()).step_by(10).collect();
        prop_assert_eq!(&run_all_ways(Limits::DEFAULT, &input, &tens)?, &expected, "10-byte chunks");
    }

    /// With small limits, no event's data is longer than `max_event_len`, and the items, errors
    /// included, do not depend on the chunking. When no limit is hit, the parser still agrees with
    /// the naive one.
    #[test]
    fn limits_bound_output_whatever_the_chunking(
        limits in small_limits(),
        (input, cuts) in chunked_stream(60),
    ) {
        let whole = run(limits, &input, &[], false);
        for len in event_data_lens(&whole.items) {
            prop_assert!(len <= limits.max_event_len, "{} > {:?}", len, limits);
        }
        prop_assert_eq!(&run_feed(limits, &input, &[]), &whole, "fed whole");
        prop_assert_eq!(&run_all_ways(limits, &input, &cuts)?, &whole, "cuts {:?}", cuts);
        let bytes = every_byte(input.len());
        prop_assert_eq!(&run_all_ways(limits, &input, &bytes)?, &whole, "1-byte chunks");
        if whole.items.iter().all(Result::is_ok) {
            prop_assert_eq!(&whole, &naive_outcome(&input));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Encoded frames parse back to what was encoded (with line breaks in data written as LF),
    /// whatever the chunking, for the streaming and the naive parser alike.
    #[test]
    fn encode_parse_round_trip(
        frames in vec(frame_spec(), 0..6),
        picks in vec(any::<Index>(), 0..8),
    ) {
        let (wire, items, last_id) = encode_frames(&frames);
        let expected = Outcome { items: items.into_iter().map(Ok).collect(), last_id };
        let cuts = cut_points(wire.len(), &picks);
        prop_assert_eq!(&run_all_ways(Limits::DEFAULT, &wire, &cuts)?, &expected, "cuts {:?}", cuts);
        prop_assert_eq!(&naive_outcome(&wire), &expected, "naive");
    }

    /// After a limit error the parser skips the offending event and then delivers every
    /// following event, whatever the chunking.
    #[test]
    fn recovers_after_limit_error(
        oversized in oversized_event(),
        frames in vec(small_frame_spec(), 1..5),
        picks in vec(any::<Index>(), 0..8),
    ) {
        let (bad, error) = oversized;
        let (good, items, last_id) = encode_frames(&frames);
        let mut input = bad;
        input.extend_from_slice(&good);
        let mut expected = vec![Err(error)];
        expected.extend(items.into_iter().map(Ok));
        let expected = Outcome { items: expected, last_id };
        let cuts = cut_points(input.len(), &picks);
        prop_assert_eq!(&run_all_ways(RECOVERY_LIMITS, &input, &cuts)?, &expected, "cuts {:?}", cuts);
    }
}

const RECOVERY_LIMITS: Limits = Limits {
    max_line_len: 64,
    max_event_len: 64,
};

/// An event that breaks [`RECOVERY_LIMITS`], ended by a blank line, with the error it must give.
/// Its `id`, `event` and `retry` lines must all be dropped with it.
fn oversized_event() -> impl Strategy<Value = (Vec<u8>, Error)> {
    let long_line = (59..200usize, prop::bool::ANY).prop_map(|(n, is_comment)| {
        let name: &[u8] = if is_comment { b":" } else { b"data: " };
        let mut line = name.to_vec();
        line.resize(name.len() + n + 6, b'x');
        (line, Error::LineTooLong { limit: 64 })
    });
    // Lines of at most 40 data bytes: only the event limit can break.
    let big_event = vec(1..=40usize, 2..6)
        .prop_filter("over the event limit", |lens| {
            lens.iter().sum::<usize>() + lens.len() - 1 > 64
        })
        .prop_map(|lens| {
            let lines: Vec<String> = lens
                .iter()
                .map(|&n| format!("data: {}", "y".repeat(n)))
                .collect();
            (
                lines.join("\n").into_bytes(),
                Error::EventTooLarge { limit: 64 },
            )
        });
    let eol = prop::sample::select(vec![&b"\n"[..], b"\r", b"\r\n"]);
    (
        prop_oneof![long_line, big_event],
        eol.clone(),
        eol,
        prop::bool::ANY,
    )
        .prop_map(|((body, error), eol, blank, with_fields)| {
            let mut bytes = Vec::new();
            if with_fields {
                bytes.extend_from_slice(b"id: dropped\nevent: dropped\n");
            }
            bytes.extend_from_slice(&body);
            bytes.extend_from_slice(eol);
            if with_fields {
                bytes.extend_from_slice(b"retry: 1\nid: dropped too\n");
            }
            // An LF right after a CR would only finish that line end, not make a blank line.
            let blank = if bytes.ends_with(b"\r") && blank == b"\n" {
                b"\r\n"
            } else {
                blank
            };
            bytes.extend_from_slice(blank);
            (bytes, error)
        })
}

/// A frame that fits in [`RECOVERY_LIMITS`].
fn small_frame_spec() -> impl Strategy<Value = FrameSpec> {
    let short = "[a-z0-9 ]{0,8}";
    (
        prop::option::of(short),
        prop::option::of("[a-z]{1,8}"),
        prop::option::of(short),
        prop::option::weighted(0.2, 0..100_000u64),
        prop::option::weighted(0.9, "[a-z]{0,5}(\r?\n[a-z ]{0,5}){0,3}"),
    )
        .prop_map(|(keep_alive, event, id, retry, data)| FrameSpec {
            keep_alive,
            comment: None,
            event: event.map(|name| EventName::new(name).unwrap()),
            id: id.map(|id| EventId::new(id).unwrap()),
            retry,
            data,
        })
}

// ------------------------------------------------------------------------------------------------
// Limits at their exact boundaries

/// [`run`], checked against the other ways of running the same chunking.
fn run_checked(limits: Limits, input: &[u8], cuts: &[usize]) -> Outcome {
    let pulled = run(limits, input, cuts, false);
    assert_eq!(
        run(limits, input, cuts, true),
        pulled,
        "queued, cuts {cuts:?}"
    );
    assert_eq!(run_feed(limits, input, cuts), pulled, "fed, cuts {cuts:?}");
    pulled
}

fn parse_with(limits: Limits, input: &[u8]) -> Vec<Result<Item, Error>> {
    let pulled = run(limits, input, &[], false);
    assert_eq!(run_feed(limits, input, &[]), pulled, "feed and pull differ");
    pulled.items
}

fn message(data: &str) -> Result<Item, Error> {
    Ok(Item::Event(Event::new("message", data, "")))
}

#[test]
fn event_limit_is_inclusive() {
    let limits = Limits {
        max_line_len: 1024,
        max_event_len: 8,
    };
    let too_large = Error::EventTooLarge { limit: 8 };
    // Exactly 8 bytes of data, in one line or in two joined by LF: accepted.
    assert_eq!(
        parse_with(limits, b"data: 12345678\n\n"),
        [message("12345678")]
    );
    assert_eq!(
        parse_with(limits, b"data: 123\ndata: 4567\n\n"),
        [message("123\n4567")]
    );
    assert_eq!(
        parse_with(limits, b"data: 1234567\ndata\n\n"),
        [message("1234567\n")]
    );
    // One more byte, wherever it comes from: refused.
    assert_eq!(parse_with(limits, b"data: 123456789\n\n"), [Err(too_large)]);
    assert_eq!(
        parse_with(limits, b"data: 1234\ndata: 5678\n\n"),
        [Err(too_large)]
    );
    assert_eq!(
        parse_with(limits, b"data: 12345678\ndata\n\n"),
        [Err(too_large)]
    );
    assert_eq!(
        parse_with(limits, b"data: 12345678\ndata:\n\n"),
        [Err(too_large)]
    );
}

#[test]
fn line_limit_is_inclusive() {
    let limits = Limits {
        max_line_len: 8,
        max_event_len: 1024,
    };
    let too_long = Error::LineTooLong { limit: 8 };
    assert_eq!(parse_with(limits, b"data: 12\n\n"), [message("12")]);
    assert_eq!(parse_with(limits, b"data:123\n\n"), [message("123")]);
    assert_eq!(parse_with(limits, b":2345678\ndata\n\n"), [message("")]);
    assert_eq!(parse_with(limits, b"data: 123\n\n"), [Err(too_long)]);
    assert_eq!(parse_with(limits, b":23456789\ndata\n\n"), [Err(too_long)]);
    assert_eq!(parse_with(limits, b"123456789\ndata\n\n"), [Err(too_long)]);
}

#[test]
fn limit_errors_skip_to_the_end_of_the_event() {
    let limits = Limits {
        max_line_len: 16,
        max_event_len: 16,
    };
    let input =
        b"id: 1\ndata: a\n\nid: 2\nevent: e\ndata: 0123456789abcdefgh\ndata: more\nretry: 5\n\n\
                  data: b\n\n";
    let expected = [
        Ok(Item::Event(Event::new("message", "a", "1"))),
        Err(Error::LineTooLong { limit: 16 }),
        Ok(Item::Event(Event::new("message", "b", "1"))),
    ];
    for cuts in [vec![], every_byte(input.len())] {
        let outcome = run_checked(limits, input, &cuts);
        assert_eq!(outcome.items, expected, "cuts {cuts:?}");
        assert_eq!(outcome.last_id, "1");
    }
}

#[test]
fn first_limit_broken_decides_the_error_whatever_the_chunking() {
    // The data limit breaks at the 4th value byte, the line limit at the 5th.
    let limits = Limits {
        max_line_len: 10,
        max_event_len: 3,
    };
    let input = b"data: 0123456789AB\n\ndata: ok\n\n";
    let expected = [Err(Error::EventTooLarge { limit: 3 }), message("ok")];
    // The line limit breaks first here (at the 5th value byte, the data limit at the 6th).
    let limits2 = Limits {
        max_line_len: 10,
        max_event_len: 5,
    };
    let expected2 = [Err(Error::LineTooLong { limit: 10 }), message("ok")];
    for cuts in [vec![], vec![7], vec![9], every_byte(input.len())] {
        assert_eq!(
            run_checked(limits, input, &cuts).items,
            expected,
            "cuts {cuts:?}"
        );
        assert_eq!(
            run_checked(limits2, input, &cuts).items,
            expected2,
            "cuts {cuts:?}"
        );
    }
}

#[test]
fn event_limit_counts_replacement_characters() {
    // Two invalid bytes become two U+FFFD: six bytes of data.
    let limits = Limits {
        max_line_len: 1024,
        max_event_len: 5,
    };
    let input = b"id: 1\ndata: \xC0\x80\n\ndata: \xFF\n\n";
    let expected = [
        Err(Error::EventTooLarge { limit: 5 }),
        // The id of the discarded event is discarded with it.
        message("\u{FFFD}"),
    ];
    for cuts in [vec![], every_byte(input.len())] {
        let outcome = run_checked(limits, input, &cuts);
        assert_eq!(outcome.items, expected, "cuts {cuts:?}");
        assert_eq!(outcome.last_id, "");
    }
    let limits = Limits {
        max_line_len: 1024,
        max_event_len: 3,
    };
    assert_eq!(parse_with(limits, b"data: \xFF\n\n"), [message("\u{FFFD}")]);
}

#[test]
fn long_values_split_anywhere() {
    // Long data values (decoded in place, or gathered first, depending on where the chunks
    // split them) with multi-byte characters, invalid and cut-short sequences at every distance
    // from a chunk boundary; and an event type and id of the same kind.
    let mut input = Vec::new();
    for (i, odd) in [&b"\xE2\x82"[..], b"\xF0\x9F\x98", b"\xFF", b"\xC3"]
        .into_iter()
        .enumerate()
    {
        let ascii = "abcdefghij".repeat(7 + i);
        input.extend_from_slice(if i % 2 == 0 { b"data: " } else { b"data:" });
        input.extend_from_slice(format!("{ascii}€{ascii}😀é").as_bytes());
        input.extend_from_slice(odd);
        input.extend_from_slice(format!("{ascii}ß").as_bytes());
        input.extend_from_slice(odd);
        input.extend_from_slice(if i == 2 { b"\r\n" } else { b"\n" });
        if i == 1 {
            input.extend_from_slice(format!("event: {ascii}€\nid: 😀{ascii}\n").as_bytes());
            input.extend_from_slice(b"\n");
        }
    }
    input.extend_from_slice(b"\n");
    let expected = naive_outcome(&input);
    assert_eq!(expected.items.len(), 2);
    for at in 0..=input.len() {
        let outcome = run_checked(Limits::DEFAULT, &input, &[at]);
        assert_eq!(outcome, expected, "split at {at}");
    }
    for first in (0..input.len()).step_by(5) {
        for second in (first..input.len()).step_by(11) {
            let outcome = run_checked(Limits::DEFAULT, &input, &[first, second]);
            assert_eq!(outcome, expected, "split at {first} and {second}");
        }
    }
}
