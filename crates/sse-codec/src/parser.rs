//! The streaming event-stream parser.
//!
//! The parser follows the WHATWG HTML "event stream interpretation" rules. It is a small state
//! machine over *lines*; a line is never copied into a line buffer. Instead, as soon as the field
//! name of a line is known, the value bytes go straight into the buffer that field needs (the
//! data buffer, or a small scratch buffer for `event`, `id` and `retry`), or nowhere at all
//! (comments, unknown fields). Scanning uses `memchr` and resumes exactly where the previous call
//! stopped, so no byte is scanned twice.
//!
//! Lines are decoded as UTF-8 with invalid sequences replaced by U+FFFD. Line terminators are
//! ASCII and never part of a multi-byte sequence, so decoding each field value on its own gives
//! the same characters as decoding the whole stream first, as the specification describes.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;

use bytes::{Buf, Bytes};

const LF: u8 = b'\n';
const CR: u8 = b'\r';
const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

/// Events whose data is at least this long hand their buffer over instead of copying it.
///
/// Below it, copying into an exactly-sized `String` keeps the parser's buffer (and its capacity)
/// for the next event; above it, the copy would cost more than a fresh allocation does.
const MOVE_DATA_THRESHOLD: usize = 1024;

/// Size limits that bound the parser's memory whatever a peer sends.
///
/// A stream that exceeds a limit makes [`Parser::next`] return an [`Error`]; the parser then
/// discards the event being built, skips input up to the end of that event (the next blank line)
/// and carries on with the event after it. Memory held by a parser is at most about
/// `max_event_len + max_line_len`, plus the chunks pushed and not yet read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The longest line, in bytes, not counting its line terminator. Applies to every line,
    /// comments and unknown fields included. Default: 256 KiB.
    pub max_line_len: usize,
    /// The most bytes of `data` one event may accumulate (its data lines joined with LF, as
    /// dispatched: a U+FFFD that replaced invalid UTF-8 counts as its three bytes).
    /// Default: 1 MiB.
    pub max_event_len: usize,
}

impl Limits {
    /// The default limits: 256 KiB lines, 1 MiB events.
    pub const DEFAULT: Self = Self {
        max_line_len: 256 * 1024,
        max_event_len: 1024 * 1024,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A limit was exceeded; see [`Limits`] for how the parser carries on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A line was longer than [`Limits::max_line_len`].
    LineTooLong {
        /// The limit in force.
        limit: usize,
    },
    /// An event's data was longer than [`Limits::max_event_len`].
    EventTooLarge {
        /// The limit in force.
        limit: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LineTooLong { limit } => {
                write!(
                    f,
                    "event stream line longer than {limit} bytes; event discarded"
                )
            }
            Self::EventTooLarge { limit } => {
                write!(f, "event data longer than {limit} bytes; event discarded")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}

/// A dispatched event.
///
/// Two events are equal when their type, data and last event id are equal.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Event {
    /// `None` for the default type, `message`.
    event_type: Option<Arc<str>>,
    data: String,
    /// `None` for the empty id.
    last_event_id: Option<Arc<str>>,
}

impl Event {
    /// Builds an event as the parser would dispatch it: an empty `event_type` means `message`.
    pub fn new(event_type: &str, data: impl Into<String>, last_event_id: &str) -> Self {
        Self {
            event_type: shared_type(event_type),
            data: data.into(),
            last_event_id: (!last_event_id.is_empty()).then(|| Arc::from(last_event_id)),
        }
    }

    /// The event type: the last `event` field of the event, or `message` when there was none.
    pub fn event_type(&self) -> &str {
        self.event_type.as_deref().unwrap_or("message")
    }

    /// The data: every `data` line of the event joined with LF.
    pub fn data(&self) -> &str {
        &self.data
    }

    /// Takes the data out of the event.
    pub fn into_data(self) -> String {
        self.data
    }

    /// The last event id in effect when the event was dispatched (`""` when none).
    pub fn last_event_id(&self) -> &str {
        self.last_event_id.as_deref().unwrap_or("")
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("event_type", &self.event_type())
            .field("data", &self.data)
            .field("last_event_id", &self.last_event_id())
            .finish()
    }
}

fn shared_type(event_type: &str) -> Option<Arc<str>> {
    match event_type {
        "" | "message" => None,
        other => Some(Arc::from(other)),
    }
}

/// What the parser hands back: an event, or a change of the reconnection time.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Item {
    /// An event was dispatched.
    Event(Event),
    /// A valid `retry` field set the reconnection time, in milliseconds. Reported as soon as its
    /// line ends, whether or not the event it belongs to is ever dispatched. Values beyond
    /// `u64::MAX` saturate.
    Retry(u64),
}

/// The field a line is about, decided at its first colon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Data,
    Event,
    Id,
    Retry,
    /// Unknown fields, comments and lines of a discarded event: read to the end, kept nowhere.
    Ignore,
}

/// Where the parser is within the current line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    /// Nothing of the line seen yet.
    Start,
    /// Reading the field name; `name[..len]` holds its first bytes. Known names are at most five
    /// bytes, so a longer name (`len == 6`) is already known to be unknown.
    Name { name: [u8; 6], len: u8 },
    /// Reading the value of `field`; `fresh` until its first byte, which is dropped if a space.
    Value { field: Field, fresh: bool },
}

/// The start-of-stream byte-order-mark check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bom {
    /// This many bytes of the BOM have been matched at the very start of the stream.
    Matched(u8),
    /// The start of the stream is behind us.
    Done,
}

/// A streaming, chunking-independent event-stream parser.
///
/// Push chunks of the response body with [`push`](Self::push) (zero-copy for [`Bytes`]) or
/// [`push_slice`](Self::push_slice), take items with [`next`](Self::next) until it returns
/// `None`, and call [`finish`](Self::finish) when the body ends. The items do not depend on how
/// the body was split into chunks.
///
/// "Need more bytes" is not an error: `next` returns `None` and the parser resumes where it
/// stopped when more input is pushed.
///
/// ```
/// use sse_codec::{Item, Parser};
///
/// let mut parser = Parser::new();
/// parser.push_slice(b"retry: 3000\nid: 7\nevent: greet\ndata: hel");
/// assert_eq!(parser.next(), Some(Ok(Item::Retry(3000))));
/// assert_eq!(parser.next(), None); // the event is not complete yet
///
/// parser.push_slice(b"lo\r\n\r\n");
/// let Some(Ok(Item::Event(event))) = parser.next() else { panic!("expected an event") };
/// assert_eq!(
///     (event.event_type(), event.data(), event.last_event_id()),
///     ("greet", "hello", "7")
/// );
/// parser.finish();
/// assert_eq!(parser.next(), None);
/// assert_eq!(parser.last_event_id(), "7");
/// ```
#[derive(Debug)]
pub struct Parser {
    limits: Limits,
    /// Pushed input not yet read; the front chunk is consumed from its start.
    input: VecDeque<Bytes>,
    /// [`finish`](Self::finish) was called: once `input` is drained the stream ends.
    finishing: bool,

    bom: Bom,
    /// The previous byte was a CR that ended a line: an LF right after it belongs to it.
    after_cr: bool,
    line: Line,
    /// Bytes of the current line so far (for the line limit).
    line_len: usize,
    /// Skipping input up to the end of the current event after a limit error.
    discarding: bool,

    /// The data buffer: data lines, each followed by LF, as raw bytes.
    data: Vec<u8>,
    /// The event type buffer (raw bytes).
    event_type: Vec<u8>,
    /// The value of the current `event`, `id` or `retry` line.
    scratch: Vec<u8>,
    /// The last event ID buffer, once set by an `id` line since the last dispatch.
    id_buffer: Option<Option<Arc<str>>>,
    /// The last event ID string: the id given to dispatched events.
    last_event_id: Option<Arc<str>>,
    /// The type of the previous dispatched event, shared with the next one of the same type.
    last_type: Option<Arc<str>>,
    /// The reconnection time last set by a `retry` field.
    retry: Option<u64>,
}

impl Default for Parser {
    fn default() -> Self {
        Self::new()
    }
}

impl Parser {
    /// A parser with the default [`Limits`].
    pub fn new() -> Self {
        Self::with_limits(Limits::DEFAULT)
    }

    /// A parser with the given limits.
    pub fn with_limits(limits: Limits) -> Self {
        Self {
            limits,
            input: VecDeque::new(),
            finishing: false,
            bom: Bom::Matched(0),
            after_cr: false,
            line: Line::Start,
            line_len: 0,
            discarding: false,
            data: Vec::new(),
            event_type: Vec::new(),
            scratch: Vec::new(),
            id_buffer: None,
            last_event_id: None,
            last_type: None,
            retry: None,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Starts the parser on an event stream's last event id, as an `EventSource` does when it
    /// reconnects with `Last-Event-ID`.
    pub fn set_last_event_id(&mut self, id: &str) {
        self.last_event_id = (!id.is_empty()).then(|| Arc::from(id));
    }

    /// The last event ID string: the id of the last dispatched event, or of the last blank line
    /// that followed an `id` field (`""` when none). This is what a client sends back as
    /// `Last-Event-ID` when it reconnects. It survives [`finish`](Self::finish).
    pub fn last_event_id(&self) -> &str {
        self.last_event_id.as_deref().unwrap_or("")
    }

    /// The reconnection time last set by a `retry` field, in milliseconds.
    pub fn retry(&self) -> Option<u64> {
        self.retry
    }

    /// Queues a chunk of the stream without copying it.
    ///
    /// The parser keeps the chunk until [`next`](Self::next) has read it: drain `next` between
    /// pushes to keep memory bounded.
    pub fn push(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.input.push_back(chunk);
        }
    }

    /// Queues a copy of a borrowed chunk of the stream.
    pub fn push_slice(&mut self, chunk: &[u8]) {
        if !chunk.is_empty() {
            self.input.push_back(Bytes::copy_from_slice(chunk));
        }
    }

    /// Marks the end of the stream.
    ///
    /// Items in input already pushed are still returned by [`next`](Self::next); after them, an
    /// event that was not terminated by a blank line is discarded, as the specification requires,
    /// and the parser is ready for a new stream (a reconnection): the next push is checked for a
    /// byte-order mark again. The last event id and the reconnection time are kept.
    pub fn finish(&mut self) {
        self.finishing = true;
        if self.input.is_empty() {
            self.end_stream();
        }
    }

    /// The next item of the stream, or `None` when more input is needed.
    ///
    /// An `Err` reports an exceeded [`Limits`] limit; the parser has already recovered and the
    /// following calls carry on with the stream.
    #[allow(clippy::should_implement_trait)] // `Iterator` would suggest that `None` ends it.
    pub fn next(&mut self) -> Option<Result<Item, Error>> {
        while let Some(mut chunk) = self.input.pop_front() {
            let (consumed, item) = self.scan(&chunk);
            chunk.advance(consumed);
            if !chunk.is_empty() {
                self.input.push_front(chunk);
            }
            if item.is_some() {
                return item;
            }
        }
        if self.finishing {
            self.end_stream();
        }
        None
    }

    fn end_stream(&mut self) {
        self.finishing = false;
        self.bom = Bom::Matched(0);
        self.after_cr = false;
        self.line = Line::Start;
        self.line_len = 0;
        self.discarding = false;
        self.data.clear();
        self.event_type.clear();
        self.scratch.clear();
        self.id_buffer = None;
    }

    /// Reads `buf` until one item is produced or `buf` is used up; returns the bytes consumed.
    fn scan(&mut self, buf: &[u8]) -> (usize, Option<Result<Item, Error>>) {
        let mut pos = 0;
        if let Bom::Matched(matched) = self.bom {
            match self.check_bom(buf, usize::from(matched)) {
                Some(skip) => pos = skip,
                None => return (buf.len(), None),
            }
        }
        while pos < buf.len() {
            if self.after_cr {
                self.after_cr = false;
                if buf[pos] == LF {
                    pos += 1;
                    continue;
                }
            }
            match self.line {
                Line::Start => match buf[pos] {
                    LF | CR => {
                        self.after_cr = buf[pos] == CR;
                        pos += 1;
                        if let Some(item) = self.blank_line() {
                            return (pos, Some(item));
                        }
                    }
                    b':' => {
                        pos += 1;
                        self.line_len = 1;
                        self.line = Line::Value {
                            field: Field::Ignore,
                            fresh: false,
                        };
                    }
                    _ => {
                        self.line = Line::Name {
                            name: [0; 6],
                            len: 0,
                        }
                    }
                },
                Line::Name { mut name, mut len } => {
                    let rest = &buf[pos..];
                    let found = memchr::memchr3(b':', LF, CR, rest);
                    let taken = found.unwrap_or(rest.len());
                    if let Some(err) = self.grow_line(taken) {
                        return (pos + taken, Some(Err(err)));
                    }
                    let room = name.len() - usize::from(len);
                    let copy = taken.min(room);
                    name[usize::from(len)..][..copy].copy_from_slice(&rest[..copy]);
                    len += copy as u8; // at most 6
                    pos += taken;
                    let Some(at) = found else {
                        self.line = Line::Name { name, len };
                        break;
                    };
                    let field = if self.discarding {
                        Field::Ignore
                    } else {
                        field_of(&name[..usize::from(len)])
                    };
                    if rest[at] == b':' {
                        pos += 1;
                        self.line_len += 1;
                        self.line = Line::Value { field, fresh: true };
                    } else {
                        // A field with no colon: its value is the empty string.
                        self.scratch.clear();
                        let item = self.end_line(field, buf[pos]);
                        pos += 1;
                        if item.is_some() {
                            return (pos, item);
                        }
                    }
                }
                Line::Value { field, fresh } => {
                    if fresh {
                        self.line = Line::Value {
                            field,
                            fresh: false,
                        };
                        if buf[pos] == b' ' {
                            pos += 1;
                            self.line_len += 1;
                            continue;
                        }
                    }
                    let rest = &buf[pos..];
                    let found = memchr::memchr2(LF, CR, rest);
                    let value = &rest[..found.unwrap_or(rest.len())];
                    if let Some(err) = self.take_value(field, value) {
                        return (pos + value.len(), Some(Err(err)));
                    }
                    pos += value.len();
                    if found.is_none() {
                        break;
                    }
                    let item = self.end_line(field, buf[pos]);
                    pos += 1;
                    if item.is_some() {
                        return (pos, item);
                    }
                }
            }
        }
        (pos, None)
    }

    /// Matches the start of the stream against the BOM. Returns how many bytes of `buf` to skip,
    /// or `None` when `buf` ended while still matching.
    fn check_bom(&mut self, buf: &[u8], matched: usize) -> Option<usize> {
        let want = &BOM[matched..];
        let n = want.len().min(buf.len());
        if buf[..n] == want[..n] {
            if n == want.len() {
                self.bom = Bom::Done;
                return Some(n);
            }
            self.bom = Bom::Matched((matched + n) as u8); // at most 2
            return None;
        }
        self.bom = Bom::Done;
        if matched > 0 {
            // Not a BOM after all: the bytes already matched start a line whose field name is
            // invalid UTF-8, hence an unknown field. None of them is ':', CR or LF.
            self.line = Line::Name {
                name: [0xFF; 6],
                len: 6,
            };
            self.line_len = matched;
        }
        Some(0)
    }

    /// Counts `n` more bytes of the current line against the line limit.
    fn grow_line(&mut self, n: usize) -> Option<Error> {
        self.line_len = self.line_len.saturating_add(n);
        if self.line_len > self.limits.max_line_len && !self.discarding {
            return Some(self.fail(Error::LineTooLong {
                limit: self.limits.max_line_len,
            }));
        }
        None
    }

    /// Stores part of the value of the current line.
    ///
    /// A data value that breaks both limits reports the one its bytes break first (the line
    /// limit on a tie), so the error does not depend on where the chunks split the line.
    fn take_value(&mut self, field: Field, value: &[u8]) -> Option<Error> {
        if field == Field::Data {
            // The LFs already in `data` separate its lines from this one, so `data` plus this
            // value is the event's data as dispatched should this line be its last.
            let line_room = self.limits.max_line_len.saturating_sub(self.line_len);
            let event_room = self.limits.max_event_len.saturating_sub(self.data.len());
            if value.len() > event_room && event_room < line_room {
                return Some(self.fail(Error::EventTooLarge {
                    limit: self.limits.max_event_len,
                }));
            }
        }
        if let Some(err) = self.grow_line(value.len()) {
            return Some(err);
        }
        match field {
            Field::Data => self.data.extend_from_slice(value),
            Field::Event | Field::Id | Field::Retry => self.scratch.extend_from_slice(value),
            Field::Ignore => {}
        }
        None
    }

    /// Drops the event being built and skips to its end.
    fn fail(&mut self, err: Error) -> Error {
        self.discarding = true;
        self.line = Line::Value {
            field: Field::Ignore,
            fresh: false,
        };
        self.data.clear();
        self.event_type.clear();
        self.scratch.clear();
        self.id_buffer = None;
        err
    }

    /// Ends the current (non-blank) line at terminator `eol`, applying its field.
    fn end_line(&mut self, field: Field, eol: u8) -> Option<Result<Item, Error>> {
        self.after_cr = eol == CR;
        self.line = Line::Start;
        self.line_len = 0;
        match field {
            Field::Data => {
                // The event's data should this line be its last (an empty last line adds nothing
                // to the LFs already there).
                if self.data.len() > self.limits.max_event_len {
                    let err = self.fail(Error::EventTooLarge {
                        limit: self.limits.max_event_len,
                    });
                    self.line = Line::Start; // this line has ended
                    return Some(Err(err));
                }
                self.data.push(LF);
            }
            Field::Event => core::mem::swap(&mut self.event_type, &mut self.scratch),
            Field::Id => {
                if !self.scratch.contains(&0) {
                    self.id_buffer = Some(match self.scratch.as_slice() {
                        [] => None,
                        id if Some(id) == self.last_event_id.as_deref().map(str::as_bytes) => {
                            self.last_event_id.clone()
                        }
                        id => Some(Arc::from(decode(id).as_ref())),
                    });
                }
            }
            Field::Retry => {
                if let Some(ms) = parse_retry(&self.scratch) {
                    self.retry = Some(ms);
                    self.scratch.clear();
                    return Some(Ok(Item::Retry(ms)));
                }
            }
            Field::Ignore => {}
        }
        self.scratch.clear();
        None
    }

    /// A blank line: dispatch the event.
    fn blank_line(&mut self) -> Option<Result<Item, Error>> {
        self.line_len = 0;
        if self.discarding {
            self.discarding = false;
            return None;
        }
        let id = self.id_buffer.take();
        if self.data.is_empty() {
            if let Some(id) = id {
                self.last_event_id = id;
            }
            self.event_type.clear();
            return None;
        }
        self.data.pop(); // the LF after the last data line
        let data = if self.data.len() >= MOVE_DATA_THRESHOLD {
            into_string(core::mem::take(&mut self.data))
        } else {
            let data = decode(&self.data).into_owned();
            self.data.clear();
            data
        };
        if data.len() > self.limits.max_event_len {
            // Within the limit as bytes received, but each U+FFFD that replaced an invalid byte
            // takes three: the event is discarded like any other that breaks the limit.
            self.event_type.clear();
            return Some(Err(Error::EventTooLarge {
                limit: self.limits.max_event_len,
            }));
        }
        if let Some(id) = id {
            self.last_event_id = id;
        }
        let event_type = self.dispatch_type();
        Some(Ok(Item::Event(Event {
            event_type,
            data,
            last_event_id: self.last_event_id.clone(),
        })))
    }

    fn dispatch_type(&mut self) -> Option<Arc<str>> {
        let raw = core::mem::take(&mut self.event_type);
        let shared = match raw.as_slice() {
            b"" | b"message" => None,
            bytes if Some(bytes) == self.last_type.as_deref().map(str::as_bytes) => {
                self.last_type.clone()
            }
            bytes => {
                let shared: Arc<str> = Arc::from(decode(bytes).as_ref());
                self.last_type = Some(shared.clone());
                Some(shared)
            }
        };
        // Keep the buffer's capacity for the next event.
        self.event_type = raw;
        self.event_type.clear();
        shared
    }
}

/// Which field a complete field name selects.
fn field_of(name: &[u8]) -> Field {
    match name {
        b"data" => Field::Data,
        b"event" => Field::Event,
        b"id" => Field::Id,
        b"retry" => Field::Retry,
        _ => Field::Ignore,
    }
}

/// A `retry` value: ASCII digits only (at least one), saturating at `u64::MAX`.
fn parse_retry(value: &[u8]) -> Option<u64> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(value.iter().fold(0u64, |acc, d| {
        acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

fn decode(bytes: &[u8]) -> alloc::borrow::Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

fn into_string(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(err) => String::from_utf8_lossy(err.as_bytes()).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8]) -> Vec<Result<Item, Error>> {
        let mut parser = Parser::new();
        parser.push_slice(input);
        parser.finish();
        core::iter::from_fn(|| parser.next()).collect()
    }

    fn event(t: &str, d: &str, id: &str) -> Result<Item, Error> {
        Ok(Item::Event(Event::new(t, d, id)))
    }

    #[test]
    fn simple_event() {
        assert_eq!(parse_all(b"data: hi\n\n"), [event("message", "hi", "")]);
    }

    #[test]
    fn lone_cr_dispatches_without_more_input() {
        let mut parser = Parser::new();
        parser.push_slice(b"data: x\r\r");
        assert_eq!(parser.next(), Some(event("", "x", "")));
    }

    #[test]
    fn cr_lf_split_across_chunks_is_one_line_end() {
        let mut parser = Parser::new();
        parser.push_slice(b"data: x\r");
        assert_eq!(parser.next(), None);
        parser.push_slice(b"\ndata: y\n\n");
        assert_eq!(parser.next(), Some(event("", "x\ny", "")));
    }

    #[test]
    fn partial_bom_is_content() {
        assert_eq!(parse_all(b"\xEF\xBB\ndata: a\n\n"), [event("", "a", "")]);
        // The first line is an unknown field, so the blank line that follows ends an empty event.
        assert_eq!(parse_all(b"\xEF\xBBdata: a\n\n"), []);
        assert_eq!(parse_all(b"\xEF\xBB\xBFdata: a\n\n"), [event("", "a", "")]);
    }

    #[test]
    fn line_limit_discards_the_event_and_carries_on() {
        let mut parser = Parser::with_limits(Limits {
            max_line_len: 8,
            max_event_len: 64,
        });
        parser.push_slice(b"data: 0123456789\ndata: more\n\ndata: ok\n\n");
        assert_eq!(parser.next(), Some(Err(Error::LineTooLong { limit: 8 })));
        assert_eq!(parser.next(), Some(event("", "ok", "")));
        assert_eq!(parser.next(), None);
    }

    #[test]
    fn event_limit_discards_the_event_and_carries_on() {
        let mut parser = Parser::with_limits(Limits {
            max_line_len: 64,
            max_event_len: 8,
        });
        parser.push_slice(b"data: 1234\ndata: 5678\nid: 9\n\ndata: ok\n\n");
        assert_eq!(parser.next(), Some(Err(Error::EventTooLarge { limit: 8 })));
        assert_eq!(parser.next(), Some(event("", "ok", "")));
        assert_eq!(parser.last_event_id(), "");
    }
}
