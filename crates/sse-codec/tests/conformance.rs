//! Replays the golden corpus in `tests/corpus/` (see its README for the format) through the
//! streaming parser, with its pull API (`push` + `next`) and its callback API (`feed`) alike, in
//! one piece, split in two at every offset and in 1-byte chunks, and through the naive reference
//! parser, checking every replay against the hand-written expectations.

#[path = "support/naive.rs"]
mod naive;

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use sse_codec::{Event, Item, ItemRef, Parser};

/// The corpus must never silently shrink below this.
const MIN_CASES: usize = 60;

/// One corpus file.
#[derive(Debug)]
struct Case {
    name: String,
    input: Vec<u8>,
    items: Vec<Item>,
    last_id: Option<String>,
}

/// What one replay produced.
#[derive(Debug, PartialEq)]
struct Outcome {
    items: Vec<Item>,
    last_id: String,
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

fn load_corpus() -> Vec<Case> {
    let dir = corpus_dir();
    let mut paths: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", dir.display()))
        .map(|entry| entry.expect("corpus directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "case"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|path| {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let text = fs::read_to_string(path)
                .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
            parse_case(name.clone(), &text).unwrap_or_else(|err| panic!("{name}.case: {err}"))
        })
        .collect()
}

fn parse_case(name: String, text: &str) -> Result<Case, String> {
    #[derive(PartialEq)]
    enum Section {
        Header,
        Input,
        Expect,
    }
    let mut section = Section::Header;
    let mut input = Vec::new();
    let mut items = Vec::new();
    let mut last_id = None;
    for (n, line) in text.lines().enumerate() {
        let at = |msg: String| format!("line {}: {msg}", n + 1);
        if line.starts_with('#') {
            continue;
        }
        match (line, &section) {
            ("input:", Section::Header) => section = Section::Input,
            ("expect:", Section::Input) => section = Section::Expect,
            (_, Section::Header) if line.trim().is_empty() => {}
            (_, Section::Header) => return Err(at(format!("expected `input:`, found {line:?}"))),
            (_, Section::Input) => {
                if line.ends_with([' ', '\t']) {
                    return Err(at("trailing whitespace in input: write it as \\x20".into()));
                }
                unescape(line, &mut input).map_err(at)?;
            }
            (_, Section::Expect) => {
                if line.trim().is_empty() {
                    continue;
                }
                let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
                match kind {
                    "event" => {
                        let fields = json_strings(rest).map_err(at)?;
                        let [event_type, data, id] = <[String; 3]>::try_from(fields)
                            .map_err(|_| at("`event` takes three JSON strings".into()))?;
                        items.push(Item::Event(Event::new(&event_type, data, &id)));
                    }
                    "retry" => {
                        let ms = rest
                            .trim()
                            .parse::<u64>()
                            .map_err(|err| at(format!("bad retry value: {err}")))?;
                        items.push(Item::Retry(ms));
                    }
                    "last-id" => {
                        let fields = json_strings(rest).map_err(at)?;
                        let [id] = <[String; 1]>::try_from(fields)
                            .map_err(|_| at("`last-id` takes one JSON string".into()))?;
                        if last_id.replace(id).is_some() {
                            return Err(at("more than one `last-id`".into()));
                        }
                    }
                    _ => return Err(at(format!("unknown expectation {kind:?}"))),
                }
            }
        }
    }
    if section != Section::Expect {
        return Err("missing `input:` or `expect:` section".into());
    }
    Ok(Case {
        name,
        input,
        items,
        last_id,
    })
}

fn unescape(line: &str, out: &mut Vec<u8>) -> Result<(), String> {
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut utf8 = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            continue;
        }
        match chars.next() {
            Some('n') => out.push(b'\n'),
            Some('r') => out.push(b'\r'),
            Some('t') => out.push(b'\t'),
            Some('\\') => out.push(b'\\'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                let byte = u8::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == 2)
                    .ok_or_else(|| format!("bad escape \\x{hex}"))?;
                out.push(byte);
            }
            other => return Err(format!("bad escape \\{}", other.unwrap_or(' '))),
        }
    }
    Ok(())
}

fn json_strings(text: &str) -> Result<Vec<String>, String> {
    serde_json::Deserializer::from_str(text)
        .into_iter::<String>()
        .collect::<Result<_, _>>()
        .map_err(|err| format!("bad JSON string: {err}"))
}

/// Feeds `chunks` to a fresh parser, draining it after every push (or only at the end when
/// `queue` is set), then ends the stream.
fn replay<'a>(chunks: impl IntoIterator<Item = &'a [u8]>, queue: bool) -> Outcome {
    let mut parser = Parser::new();
    let mut got = Vec::new();
    let mut drain = |parser: &mut Parser| {
        while let Some(item) = parser.next() {
            got.push(item.unwrap_or_else(|err| panic!("limit error with default limits: {err}")));
        }
    };
    for chunk in chunks {
        parser.push_slice(chunk);
        if !queue {
            drain(&mut parser);
        }
    }
    parser.finish();
    drain(&mut parser);
    Outcome {
        items: got,
        last_id: parser.last_event_id().to_owned(),
    }
}

/// [`replay`] through the callback API: `feed` each chunk, then `finish`.
fn replay_feed<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
    let mut parser = Parser::new();
    let mut got = Vec::new();
    for chunk in chunks {
        parser.feed(chunk, |item| {
            let item = item.unwrap_or_else(|err| panic!("limit error with default limits: {err}"));
            got.push(ItemRef::to_owned(&item));
        });
    }
    parser.finish();
    Outcome {
        items: got,
        last_id: parser.last_event_id().to_owned(),
    }
}

fn escape(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes {
        match b {
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7E => out.push(char::from(b)),
            _ => write!(out, "\\x{b:02X}").unwrap(),
        }
    }
    out
}

/// Checks one replay against the case; returns a failure report, if any.
fn check(case: &Case, chunking: &str, outcome: &Outcome) -> Option<String> {
    let items_ok = outcome.items == case.items;
    let id_ok = case
        .last_id
        .as_ref()
        .is_none_or(|id| *id == outcome.last_id);
    if items_ok && id_ok {
        return None;
    }
    Some(format!(
        "case {name} failed ({chunking})\n  input:    \"{input}\"\n  expected: {exp:?}{exp_id}\n  got:      {got:?} last-id {got_id:?}",
        name = case.name,
        input = escape(&case.input),
        exp = case.items,
        exp_id = case
            .last_id
            .as_ref()
            .map(|id| format!(" last-id {id:?}"))
            .unwrap_or_default(),
        got = outcome.items,
        got_id = outcome.last_id,
    ))
}

#[test]
fn corpus_is_large_enough() {
    let cases = load_corpus();
    assert!(
        cases.len() >= MIN_CASES,
        "the corpus in {} has {} cases; at least {MIN_CASES} are required",
        corpus_dir().display(),
        cases.len()
    );
    let mut names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    names.dedup_by_key(|name| name.split('-').next().unwrap_or_default());
    assert_eq!(names.len(), cases.len(), "two corpus files share a number");
}

#[test]
fn corpus_whole_input() {
    run(|case, failures| {
        failures.extend(check(case, "one chunk", &replay([&case.input[..]], false)));
        let fed = replay_feed([&case.input[..]]);
        failures.extend(check(case, "one chunk, fed", &fed));
    });
}

#[test]
fn corpus_every_two_way_split() {
    run(|case, failures| {
        for at in 0..=case.input.len() {
            let (a, b) = case.input.split_at(at);
            let chunking = format!("split in two at byte {at}");
            failures.extend(check(case, &chunking, &replay([a, b], false)));
            let chunking = format!("split in two at byte {at}, fed");
            failures.extend(check(case, &chunking, &replay_feed([a, b])));
        }
    });
}

#[test]
fn corpus_one_byte_chunks() {
    run(|case, failures| {
        let chunks = || case.input.chunks(1);
        failures.extend(check(case, "1-byte chunks", &replay(chunks(), false)));
        let queued = "1-byte chunks, all queued before reading";
        failures.extend(check(case, queued, &replay(chunks(), true)));
        failures.extend(check(case, "1-byte chunks, fed", &replay_feed(chunks())));
    });
}

#[test]
fn corpus_naive_reference() {
    run(|case, failures| {
        let (items, last_id) = naive::parse_stream(&case.input);
        let outcome = Outcome { items, last_id };
        failures.extend(check(case, "naive reference parser", &outcome));
    });
}

/// Runs `f` on every case and fails with every collected report.
fn run(f: impl Fn(&Case, &mut Vec<String>)) {
    let cases = load_corpus();
    assert!(
        cases.len() >= MIN_CASES,
        "the corpus has {} cases; at least {MIN_CASES} are required",
        cases.len()
    );
    let mut failures = Vec::new();
    for case in &cases {
        f(case, &mut failures);
    }
    if !failures.is_empty() {
        let shown = failures.len().min(20);
        panic!(
            "{} failing replays (first {shown} shown):\n{}",
            failures.len(),
            failures[..shown].join("\n")
        );
    }
}
