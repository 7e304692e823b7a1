//! The streaming event-stream parser.
//!
//! The parser follows the WHATWG HTML "event stream interpretation" rules. Its core
//! (`Core::scan`) reads one borrowed chunk at a time and hands every item to a callback; both
//! public APIs sit on it: [`Parser::feed`] passes the items on as borrowed [`ItemRef`]s, and the
//! pull API ([`Parser::push`] + [`Parser::next`]) queues chunks and stops the core after each item
//! to turn it into an owned [`Item`].
//!
//! A line is never copied into a line buffer. At the start of a line, `data:`, `event:`, `id:`,
//! `retry:` and comments are matched directly and, when the whole line is in the chunk and no
//! limit is near, handled in one step: the value goes straight where its field needs it. The first
//! `data` line of an event is not copied at all while the chunk lasts: if the blank line that
//! dispatches the event is in the same chunk, the event's data is borrowed from the input. Every
//! other line (split across chunks, unknown fields, lines near a limit) goes through a small
//! state machine that resumes exactly where the previous chunk stopped, so no byte is scanned
//! twice. Scanning uses `memchr`.
//!
//! Data is decoded as it arrives: each piece of a data value is checked as UTF-8 while it is hot
//! in the cache and appended to the event's `String`, with a sequence split across chunks carried
//! over (at most three bytes), so a dispatched event needs no second pass. Invalid sequences are
//! replaced by U+FFFD exactly as `String::from_utf8_lossy` would replace them in the whole line:
//! line terminators are ASCII and never part of a multi-byte sequence, so decoding each field
//! value on its own gives the same characters as decoding the whole stream first, as the
//! specification describes.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ops::ControlFlow;
use core::{fmt, mem, str};

use bytes::{Buf, Bytes};

const LF: u8 = b'\n';
const CR: u8 = b'\r';
const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

/// Events whose data is at least this long hand their buffer over to the pull API instead of
/// being copied.
///
/// Below it, copying into an exactly-sized `String` keeps the parser's buffer (and its capacity)
/// for the next event; above it, the copy would cost more than a fresh allocation does. The
/// buffer that replaces the one handed over starts at its capacity, so the next event of the same
/// size does not grow it again through a chain of reallocations.
const MOVE_DATA_THRESHOLD: usize = 1024;

/// Size limits that bound the parser's memory whatever a peer sends.
///
/// A stream that exceeds a limit makes [`Parser::next`] return an [`Error`] (or
/// [`Parser::feed`] pass one to its callback); the parser then discards the event being built,
/// skips input up to the end of that event (the next blank line) and carries on with the event
/// after it. Memory held by a parser is at most about `max_event_len + max_line_len`, plus the
/// chunks pushed and not yet read.
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

/// A dispatched event, borrowed from the parser's buffers or straight from the input chunk, as
/// [`Parser::feed`] hands it to its callback. Nothing is allocated to build it;
/// [`to_owned`](Self::to_owned) makes the [`Event`] the pull API would have returned.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventRef<'a> {
    event_type: &'a str,
    data: &'a str,
    last_event_id: &'a str,
}

impl<'a> EventRef<'a> {
    /// The event type: the last `event` field of the event, or `message` when there was none.
    pub fn event_type(&self) -> &'a str {
        self.event_type
    }

    /// The data: every `data` line of the event joined with LF.
    pub fn data(&self) -> &'a str {
        self.data
    }

    /// The last event id in effect when the event was dispatched (`""` when none).
    pub fn last_event_id(&self) -> &'a str {
        self.last_event_id
    }

    /// Copies the event into an owned [`Event`].
    pub fn to_owned(&self) -> Event {
        Event::new(self.event_type, self.data, self.last_event_id)
    }
}

impl fmt::Debug for EventRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventRef")
            .field("event_type", &self.event_type)
            .field("data", &self.data)
            .field("last_event_id", &self.last_event_id)
            .finish()
    }
}

/// What [`Parser::feed`] hands to its callback: [`Item`], borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ItemRef<'a> {
    /// An event was dispatched.
    Event(EventRef<'a>),
    /// A valid `retry` field set the reconnection time, in milliseconds; see [`Item::Retry`].
    Retry(u64),
}

impl ItemRef<'_> {
    /// Copies the item into an owned [`Item`].
    pub fn to_owned(&self) -> Item {
        match self {
            Self::Event(event) => Item::Event(event.to_owned()),
            Self::Retry(ms) => Item::Retry(*ms),
        }
    }
}

/// An item as the core hands it over: like [`ItemRef`], but the data, when it is in the parser's
/// buffer, comes as that buffer so that the pull API can take it instead of copying it.
enum Raw<'a> {
    Event {
        event_type: &'a str,
        data: Data<'a>,
        last_event_id: &'a str,
    },
    Retry(u64),
}

/// Where a dispatched event's data is.
enum Data<'a> {
    /// In the input chunk (the event's only data line, and its blank line, were in the chunk).
    Input(&'a str),
    /// In the parser's data buffer, which the core clears once the callback returns.
    Buffer(&'a mut String),
}

impl<'a> Raw<'a> {
    fn into_ref(self) -> ItemRef<'a> {
        match self {
            Self::Event {
                event_type,
                data,
                last_event_id,
            } => ItemRef::Event(EventRef {
                event_type,
                data: match data {
                    Data::Input(data) => data,
                    Data::Buffer(data) => data,
                },
                last_event_id,
            }),
            Self::Retry(ms) => ItemRef::Retry(ms),
        }
    }
}

/// What the core calls with each item; `Break` stops it right after that item.
trait Sink: FnMut(Result<Raw<'_>, Error>) -> ControlFlow<()> {}
impl<F: FnMut(Result<Raw<'_>, Error>) -> ControlFlow<()>> Sink for F {}

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
/// Two ways to use it, with the same results for any input split any way:
///
/// - [`feed`](Self::feed) a borrowed chunk and get every item it completes through a callback,
///   borrowed ([`ItemRef`]): nothing is queued and nothing is allocated per event. The fastest
///   way, and the one to use when the events are consumed on the spot.
/// - [`push`](Self::push) chunks (zero-copy for [`Bytes`]) or [`push_slice`](Self::push_slice),
///   take owned [`Item`]s with [`next`](Self::next) until it returns `None`.
///
/// Call [`finish`](Self::finish) when the body ends. The items do not depend on how the body was
/// split into chunks.
///
/// "Need more bytes" is not an error: `next` returns `None` (or `feed` returns) and the parser
/// resumes where it stopped when more input comes.
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
    core: Core,
    /// Pushed input not yet read; the front chunk is consumed from its start.
    input: VecDeque<Bytes>,
    /// [`finish`](Self::finish) was called: once `input` is drained the stream ends.
    finishing: bool,
    /// Shared strings for the owned events of the pull API.
    owner: Owner,
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
            core: Core::new(limits),
            input: VecDeque::new(),
            finishing: false,
            owner: Owner::default(),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.core.limits
    }

    /// Starts the parser on an event stream's last event id, as an `EventSource` does when it
    /// reconnects with `Last-Event-ID`.
    pub fn set_last_event_id(&mut self, id: &str) {
        self.core.last_event_id.clear();
        self.core.last_event_id.push_str(id);
    }

    /// The last event ID string: the id of the last dispatched event, or of the last blank line
    /// that followed an `id` field (`""` when none). This is what a client sends back as
    /// `Last-Event-ID` when it reconnects. It survives [`finish`](Self::finish).
    pub fn last_event_id(&self) -> &str {
        &self.core.last_event_id
    }

    /// The reconnection time last set by a `retry` field, in milliseconds.
    pub fn retry(&self) -> Option<u64> {
        self.core.retry
    }

    /// Parses a borrowed chunk of the stream, handing every item it completes to `on`, in stream
    /// order, before returning.
    ///
    /// The items borrow from the parser and from `chunk`, and live only for the call of `on`:
    /// [`ItemRef::to_owned`] keeps one. Nothing is allocated per event, and an event whose data
    /// is a single line in `chunk` (with the blank line that ends it) is not even copied. The
    /// parser keeps nothing of `chunk` but what an unfinished event needs.
    ///
    /// `feed` gives exactly the items that [`push_slice`](Self::push_slice) then draining
    /// [`next`](Self::next) would give; chunks already pushed are parsed first. An `Err` reports
    /// an exceeded [`Limits`] limit, after which the parser carries on (see [`Limits`]). Call
    /// [`finish`](Self::finish) when the stream ends; the next `feed` then starts a new stream.
    ///
    /// ```
    /// use sse_codec::{ItemRef, Parser};
    ///
    /// let mut parser = Parser::new();
    /// let mut seen = Vec::new();
    /// for chunk in [&b"retry: 500\nevent: greet\nid: 7\ndata: hel"[..], b"lo\n\ndata: bye\n\n"] {
    ///     parser.feed(chunk, |item| match item {
    ///         Ok(ItemRef::Event(event)) => {
    ///             seen.push(format!("{} {:?} #{}", event.event_type(), event.data(), event.last_event_id()));
    ///         }
    ///         Ok(ItemRef::Retry(ms)) => seen.push(format!("retry {ms}")),
    ///         Err(limit) => eprintln!("skipped an event: {limit}"),
    ///     });
    /// }
    /// parser.finish();
    /// assert_eq!(seen, ["retry 500", r#"greet "hello" #7"#, r#"message "bye" #7"#]);
    /// ```
    pub fn feed(&mut self, chunk: &[u8], mut on: impl FnMut(Result<ItemRef<'_>, Error>)) {
        let mut sink = |item: Result<Raw<'_>, Error>| {
            on(item.map(Raw::into_ref));
            ControlFlow::Continue(())
        };
        if !self.input.is_empty() {
            while let Some(queued) = self.input.pop_front() {
                self.core.scan(&queued, true, &mut sink);
            }
            if self.finishing {
                self.end_stream();
            }
        }
        if !chunk.is_empty() {
            self.core.scan(chunk, true, &mut sink);
        }
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
    /// Items in input already pushed are still returned by [`next`](Self::next) (or handed out by
    /// the next [`feed`](Self::feed)); after them, an event that was not terminated by a blank
    /// line is discarded, as the specification requires, and the parser is ready for a new stream
    /// (a reconnection): the next chunk is checked for a byte-order mark again. The last event id
    /// and the reconnection time are kept.
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
        while let Some(chunk) = self.input.front_mut() {
            let mut out = None;
            let owner = &mut self.owner;
            let used = self
                .core
                .scan(chunk, false, &mut |item: Result<Raw<'_>, Error>| {
                    out = Some(owner.own(item));
                    ControlFlow::Break(())
                });
            if used == chunk.len() {
                self.input.pop_front();
            } else {
                chunk.advance(used);
            }
            if out.is_some() {
                return out;
            }
        }
        if self.finishing {
            self.end_stream();
        }
        None
    }

    fn end_stream(&mut self) {
        self.finishing = false;
        self.core.end_stream();
    }
}

/// Turns the core's items into owned ones, sharing the event type and the last event id between
/// consecutive events that have the same.
#[derive(Debug, Default)]
struct Owner {
    event_type: Option<Arc<str>>,
    last_event_id: Option<Arc<str>>,
}

impl Owner {
    fn own(&mut self, item: Result<Raw<'_>, Error>) -> Result<Item, Error> {
        Ok(match item? {
            Raw::Retry(ms) => Item::Retry(ms),
            Raw::Event {
                event_type,
                data,
                last_event_id,
            } => Item::Event(Event {
                event_type: match event_type {
                    "message" => None,
                    other => Some(shared(&mut self.event_type, other)),
                },
                data: match data {
                    Data::Input(data) => String::from(data),
                    Data::Buffer(buffer) if buffer.len() >= MOVE_DATA_THRESHOLD => {
                        let capacity = buffer.capacity();
                        mem::replace(buffer, String::with_capacity(capacity))
                    }
                    Data::Buffer(buffer) => String::from(buffer.as_str()),
                },
                last_event_id: match last_event_id {
                    "" => None,
                    id => Some(shared(&mut self.last_event_id, id)),
                },
            }),
        })
    }
}

/// `value` as a shared string: the one in `cache` when equal, else a new one, kept in `cache`.
fn shared(cache: &mut Option<Arc<str>>, value: &str) -> Arc<str> {
    match cache {
        Some(shared) if **shared == *value => shared.clone(),
        _ => cache.insert(Arc::from(value)).clone(),
    }
}

/// The parser proper: everything but the input queue of the pull API.
#[derive(Debug)]
struct Core {
    limits: Limits,
    /// The most the data buffer may hold: `max_event_len` plus the LF that ends the last line.
    data_cap: usize,

    bom: Bom,
    /// The previous chunk ended with a CR that ended a line: an LF first in this one belongs to it.
    after_cr: bool,
    line: Line,
    /// Bytes of the current line so far (for the line limit), while it is read by the state
    /// machine.
    line_len: usize,
    /// Skipping input up to the end of the current event after a limit error.
    discarding: bool,

    /// The data buffer: data lines, each followed by LF. The decoded part; `staged` follows it.
    data: String,
    /// The end of the data buffer, as received and not decoded yet: short pieces gathered to be
    /// checked as UTF-8 in one go, or the start of a multi-byte sequence that the last piece
    /// ended in. Always starts where decoding can start afresh (see [`cut_short`]).
    staged: Vec<u8>,
    /// The data buffer's length as received (before U+FFFD replacement), which the limits count.
    raw_len: usize,
    /// The first data line of the event, still in the chunk being scanned (a range of it): it is
    /// copied into the data buffer only if the chunk ends or another data line comes before the
    /// event is dispatched. Never set between two chunks.
    deferred: Option<(usize, usize)>,
    /// The decoded data outgrew `data_cap` (only invalid UTF-8 can do that): the event will be
    /// refused when dispatched, and `data` takes no more.
    overflow: bool,

    /// The event type buffer is this when `type_set` (an `event` field set it since the last
    /// blank line), else empty. The string keeps the last type set, so that the next event of
    /// the same type does not copy it again.
    event_type: String,
    type_set: bool,
    /// The raw value of the current `event`, `id` or `retry` line, while it is read by the state
    /// machine.
    scratch: Vec<u8>,
    /// The last event ID buffer, when an `id` field set it since the last blank line.
    id_buffer: String,
    id_set: bool,
    /// The last event ID string: the id given to dispatched events.
    last_event_id: String,
    /// The reconnection time last set by a `retry` field.
    retry: Option<u64>,
}

impl Core {
    fn new(limits: Limits) -> Self {
        Self {
            limits,
            data_cap: limits.max_event_len.saturating_add(1),
            bom: Bom::Matched(0),
            after_cr: false,
            line: Line::Start,
            line_len: 0,
            discarding: false,
            data: String::new(),
            staged: Vec::new(),
            raw_len: 0,
            deferred: None,
            overflow: false,
            event_type: String::new(),
            type_set: false,
            scratch: Vec::new(),
            id_buffer: String::new(),
            id_set: false,
            last_event_id: String::new(),
            retry: None,
        }
    }

    /// Forgets the stream in progress (not the last event id or the reconnection time).
    fn end_stream(&mut self) {
        self.bom = Bom::Matched(0);
        self.after_cr = false;
        self.line = Line::Start;
        self.line_len = 0;
        self.discarding = false;
        self.scratch.clear();
        self.clear_event();
    }

    /// Forgets the event being built.
    fn clear_event(&mut self) {
        self.data.clear();
        self.staged.clear();
        self.raw_len = 0;
        self.deferred = None;
        self.overflow = false;
        self.type_set = false;
        self.id_set = false;
    }

    /// Reads all of `buf`, calling `sink` with every item, unless `sink` breaks: then stops right
    /// after that item. Returns the bytes consumed.
    ///
    /// With `ahead` (when `sink` never breaks), the first value that needs checking as UTF-8 has
    /// the rest of the chunk checked with it, so that later values need no check of their own.
    fn scan<S: Sink>(&mut self, buf: &[u8], ahead: bool, sink: &mut S) -> usize {
        let mut chunk = Chunk {
            bytes: buf,
            ahead,
            from: 0,
            text: "",
        };
        let used = self.scan_lines(&mut chunk, sink);
        // The chunk goes away: keep the data line that was left in it.
        self.materialize(&mut chunk);
        used
    }

    fn scan_lines<S: Sink>(&mut self, chunk: &mut Chunk<'_>, sink: &mut S) -> usize {
        let buf = chunk.bytes;
        let len = buf.len();
        let mut pos = 0;
        if let Bom::Matched(matched) = self.bom {
            match self.check_bom(buf, usize::from(matched)) {
                Some(skip) => pos = skip,
                None => return len,
            }
        }
        if self.after_cr && pos < len {
            self.after_cr = false;
            if buf[pos] == LF {
                pos += 1;
            }
        }
        if self.line
            == (Line::Value {
                field: Field::Data,
                fresh: false,
            })
        {
            // Carry on with a data value an earlier chunk began (a long one, or small chunks).
            let found = find_eol(&buf[pos..]);
            let n = found.unwrap_or(len - pos);
            if self.line_len + n <= self.limits.max_line_len
                && self.raw_len + n <= self.limits.max_event_len
            {
                // No limit can break: what `take_value` and `end_line` do, in short.
                self.line_len += n;
                self.raw_len += n;
                self.append(&buf[pos..pos + n]);
                let Some(at) = found else {
                    return len;
                };
                self.append_lf();
                self.raw_len += 1;
                self.line = Line::Start;
                self.line_len = 0;
                pos = self.line_end(buf, pos + at);
            }
        }
        if self.line != Line::Start {
            // Finish the line an earlier chunk began.
            let (end, flow) = self.slow_line(chunk, pos, sink);
            if flow.is_break() {
                return end;
            }
            pos = end;
        }
        // At the start of a line.
        while pos < len {
            let rest = &buf[pos..];
            match rest[0] {
                LF | CR => {
                    pos = self.line_end(buf, pos);
                    if self.blank_line(chunk, sink).is_break() {
                        return pos;
                    }
                    continue;
                }
                b':' => {
                    if self.raw_len == 0 && !self.id_set && !self.discarding {
                        // Keep-alives (a comment, then a blank line that dispatches nothing): a
                        // run of them is read in one tight loop.
                        let next = skip_keepalives(buf, pos, self.limits.max_line_len);
                        if next > pos {
                            pos = next;
                            self.type_set = false;
                            continue;
                        }
                    }
                    if let Some(at) = find_eol(&rest[1..]) {
                        if at < self.limits.max_line_len || self.discarding {
                            pos = self.line_end(buf, pos + 1 + at);
                            // A keep-alive: a comment, then a blank line that dispatches nothing.
                            if buf.get(pos) == Some(&LF)
                                && self.raw_len == 0
                                && !self.id_set
                                && !self.discarding
                            {
                                pos += 1;
                                self.type_set = false;
                            }
                            continue;
                        }
                    }
                    pos += 1;
                    self.line_len = 1;
                    self.line = Line::Value {
                        field: Field::Ignore,
                        fresh: false,
                    };
                }
                b'd' if rest.starts_with(b"data:") => {
                    if let Some((start, end)) = self.whole_line(buf, pos, 5) {
                        if self.discarding {
                            pos = self.line_end(buf, end);
                            continue;
                        }
                        let n = end - start;
                        if self.raw_len + n <= self.limits.max_event_len {
                            if self.raw_len == 0 {
                                self.deferred = Some((start, end));
                            } else {
                                self.materialize(chunk);
                                self.append_line(chunk, start, end);
                            }
                            self.raw_len += n + 1;
                            pos = self.line_end(buf, end);
                            continue;
                        }
                    }
                    self.line = NEW_NAME;
                }
                b'e' if rest.starts_with(b"event:") => {
                    if let Some((start, end)) = self.whole_line(buf, pos, 6) {
                        if !self.discarding {
                            let value = &buf[start..end];
                            if !self.type_set_to(value) {
                                match chunk.text(start, end) {
                                    Some(text) => set_text(&mut self.event_type, text),
                                    None => set_decoded(&mut self.event_type, value),
                                }
                            }
                            self.type_set = true;
                        }
                        pos = self.line_end(buf, end);
                        continue;
                    }
                    self.line = NEW_NAME;
                }
                b'i' if rest.starts_with(b"id:") => {
                    if let Some((start, end)) = self.whole_line(buf, pos, 3) {
                        if !self.discarding && !buf[start..end].contains(&0) {
                            match chunk.text(start, end) {
                                Some(text) => set_text(&mut self.id_buffer, text),
                                None => set_decoded(&mut self.id_buffer, &buf[start..end]),
                            }
                            self.id_set = true;
                        }
                        pos = self.line_end(buf, end);
                        continue;
                    }
                    self.line = NEW_NAME;
                }
                b'r' if rest.starts_with(b"retry:") => {
                    if let Some((start, end)) = self.whole_line(buf, pos, 6) {
                        pos = self.line_end(buf, end);
                        if !self.discarding {
                            if let Some(ms) = parse_retry(&buf[start..end]) {
                                self.retry = Some(ms);
                                if sink(Ok(Raw::Retry(ms))).is_break() {
                                    return pos;
                                }
                            }
                        }
                        continue;
                    }
                    self.line = NEW_NAME;
                }
                _ => self.line = NEW_NAME,
            }
            // The line is split across chunks, near a limit, or not a known field: the state
            // machine reads it.
            let (end, flow) = self.slow_line(chunk, pos, sink);
            if flow.is_break() {
                return end;
            }
            pos = end;
        }
        pos
    }

    /// For a line starting at `start` with a known field name and its colon (`name_len` bytes),
    /// when the whole line is in `buf` and within the line limit: where its value starts and
    /// ends (at the line terminator).
    #[inline]
    fn whole_line(&self, buf: &[u8], start: usize, name_len: usize) -> Option<(usize, usize)> {
        let mut value = start + name_len;
        match buf.get(value) {
            Some(b' ') => value += 1,
            Some(_) => {}
            None => return None,
        }
        let end = value + find_eol(&buf[value..])?;
        (end - start <= self.limits.max_line_len).then_some((value, end))
    }

    /// Given the line terminator at `at`, where the next line starts.
    #[inline]
    fn line_end(&mut self, buf: &[u8], at: usize) -> usize {
        let next = at + 1;
        if buf[at] == CR {
            match buf.get(next) {
                Some(&LF) => return next + 1,
                Some(_) => {}
                None => self.after_cr = true,
            }
        }
        next
    }

    /// Reads the current line (`self.line` is not `Start`) from `pos` until it ends or `buf` does.
    /// Returns where it stopped, and whether `sink` asked to stop.
    fn slow_line<S: Sink>(
        &mut self,
        chunk: &mut Chunk<'_>,
        mut pos: usize,
        sink: &mut S,
    ) -> (usize, ControlFlow<()>) {
        let buf = chunk.bytes;
        loop {
            if pos == buf.len() {
                return (pos, ControlFlow::Continue(()));
            }
            match self.line {
                Line::Start => return (pos, ControlFlow::Continue(())),
                Line::Name { mut name, mut len } => {
                    let rest = &buf[pos..];
                    let found = memchr::memchr3(b':', LF, CR, rest);
                    let taken = found.unwrap_or(rest.len());
                    if let Some(err) = self.grow_line(taken) {
                        pos += taken;
                        if sink(Err(err)).is_break() {
                            return (pos, ControlFlow::Break(()));
                        }
                        continue;
                    }
                    let room = name.len() - usize::from(len);
                    let copy = taken.min(room);
                    name[usize::from(len)..][..copy].copy_from_slice(&rest[..copy]);
                    len += copy as u8; // at most 6
                    pos += taken;
                    let Some(at) = found else {
                        self.line = Line::Name { name, len };
                        continue;
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
                        pos = self.line_end(buf, pos);
                        return (pos, self.end_line(field, chunk, sink));
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
                    let found = find_eol(rest);
                    let value = &rest[..found.unwrap_or(rest.len())];
                    let err = self.take_value(field, value, chunk);
                    pos += value.len();
                    if let Some(err) = err {
                        if sink(Err(err)).is_break() {
                            return (pos, ControlFlow::Break(()));
                        }
                        continue;
                    }
                    if found.is_none() {
                        continue;
                    }
                    pos = self.line_end(buf, pos);
                    return (pos, self.end_line(field, chunk, sink));
                }
            }
        }
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
    fn take_value(&mut self, field: Field, value: &[u8], chunk: &mut Chunk<'_>) -> Option<Error> {
        if field == Field::Data {
            // The LFs already counted separate the event's lines from this one, so `raw_len`
            // plus this value is the event's data as dispatched should this line be its last.
            let line_room = self.limits.max_line_len.saturating_sub(self.line_len);
            let event_room = self.limits.max_event_len.saturating_sub(self.raw_len);
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
            Field::Data => {
                self.materialize(chunk);
                self.raw_len += value.len();
                self.append(value);
            }
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
        self.scratch.clear();
        self.clear_event();
        err
    }

    /// Ends the current (non-blank) line read by the state machine, applying its field.
    fn end_line<S: Sink>(
        &mut self,
        field: Field,
        chunk: &mut Chunk<'_>,
        sink: &mut S,
    ) -> ControlFlow<()> {
        self.line = Line::Start;
        self.line_len = 0;
        match field {
            Field::Data => {
                // The event's data should this line be its last (an empty last line adds nothing
                // to the LFs already there).
                if self.raw_len > self.limits.max_event_len {
                    let err = self.fail(Error::EventTooLarge {
                        limit: self.limits.max_event_len,
                    });
                    self.line = Line::Start; // this line has ended
                    return sink(Err(err));
                }
                self.materialize(chunk);
                self.append_lf();
                self.raw_len += 1;
            }
            Field::Event => {
                set_decoded(&mut self.event_type, &self.scratch);
                self.type_set = true;
            }
            Field::Id => {
                let value = mem::take(&mut self.scratch);
                self.set_id(&value);
                self.scratch = value;
            }
            Field::Retry => {
                if let Some(ms) = parse_retry(&self.scratch) {
                    self.retry = Some(ms);
                    self.scratch.clear();
                    return sink(Ok(Raw::Retry(ms)));
                }
            }
            Field::Ignore => {}
        }
        self.scratch.clear();
        ControlFlow::Continue(())
    }

    /// An `id` field's value: sets the last event ID buffer, unless it holds a NUL.
    fn set_id(&mut self, value: &[u8]) {
        if !value.contains(&0) {
            set_decoded(&mut self.id_buffer, value);
            self.id_set = true;
        }
    }

    /// A blank line: dispatch the event.
    fn blank_line<'a, S: Sink>(&mut self, chunk: &mut Chunk<'a>, sink: &mut S) -> ControlFlow<()> {
        if self.discarding {
            self.discarding = false;
            return ControlFlow::Continue(());
        }
        if self.raw_len == 0 {
            // No data: no event, but the id still takes effect.
            if self.id_set {
                self.take_id();
            }
            self.type_set = false;
            return ControlFlow::Continue(());
        }
        let mut input = None;
        match self.deferred.take() {
            Some((start, end)) => match chunk.text(start, end) {
                Some(data) => input = Some(data),
                None => self.decode(&chunk.bytes[start..end]),
            },
            None => {
                // The LF after the last data line.
                if self.staged.pop().is_none() {
                    self.data.pop();
                }
                if !self.staged.is_empty() {
                    let staged = mem::take(&mut self.staged);
                    self.decode(&staged);
                    self.staged = staged;
                    self.staged.clear();
                }
            }
        }
        let limit = self.limits.max_event_len;
        if input.is_none() && (self.overflow || self.data.len() > limit) {
            // Within the limit as bytes received, but each U+FFFD that replaced an invalid byte
            // takes three: the event is discarded like any other that breaks the limit.
            self.clear_event();
            return sink(Err(Error::EventTooLarge { limit }));
        }
        if self.id_set {
            self.take_id();
        }
        let event_type = match self.event_type.as_str() {
            event_type if self.type_set && !event_type.is_empty() => event_type,
            _ => "message",
        };
        let data = match input {
            Some(data) => Data::Input(data),
            None => Data::Buffer(&mut self.data),
        };
        let flow = sink(Ok(Raw::Event {
            event_type,
            data,
            last_event_id: &self.last_event_id,
        }));
        self.data.clear();
        self.raw_len = 0;
        self.type_set = false;
        flow
    }

    /// Whether the event type buffer already holds `value` (as an `event` field's raw value that
    /// is valid UTF-8 decodes to itself, equal bytes mean an equal type).
    fn type_set_to(&self, value: &[u8]) -> bool {
        self.event_type.as_bytes() == value
    }

    /// The last event ID string takes the value of the last event ID buffer.
    fn take_id(&mut self) {
        // The buffer keeps its value, but is only read again once an `id` field has set it.
        mem::swap(&mut self.last_event_id, &mut self.id_buffer);
        self.id_set = false;
    }

    /// Copies the deferred first data line, if any, into the data buffer.
    #[inline]
    fn materialize(&mut self, chunk: &mut Chunk<'_>) {
        if let Some((start, end)) = self.deferred.take() {
            self.append_line(chunk, start, end);
        }
    }

    /// Appends a whole data line (its value is `start..end` of the chunk), with its LF.
    fn append_line(&mut self, chunk: &mut Chunk<'_>, start: usize, end: usize) {
        // Checking a short value on its own costs more than gathering it with others, unless
        // the chunk is checked ahead anyway.
        if chunk.ahead || end - start >= DECODE_IN_PLACE {
            if let Some(text) = chunk.text(start, end) {
                if !self.staged.is_empty() {
                    // At the start of a line, `staged` ends with a complete line.
                    let staged = mem::take(&mut self.staged);
                    self.decode(&staged);
                    self.staged = staged;
                    self.staged.clear();
                }
                self.push_data(text);
                self.push_data("\n");
                return;
            }
        }
        self.append(&chunk.bytes[start..end]);
        self.append_lf();
    }

    /// Appends part of a data value to the data buffer.
    ///
    /// A long piece is checked as UTF-8 where it is, while the chunk is in the cache, and copied
    /// into `data`; short pieces are gathered in `staged` (at most `STAGED_MAX` plus one piece)
    /// and checked together, since checking costs about as much for a few bytes as for a few
    /// dozen.
    fn append(&mut self, mut bytes: &[u8]) {
        if !self.staged.is_empty() {
            if bytes.len() < DECODE_IN_PLACE {
                self.staged.extend_from_slice(bytes);
                if self.staged.len() >= STAGED_MAX {
                    self.flush_staged();
                }
                return;
            }
            // Decode `staged` on its own, with what finishes a sequence it may end in: at most
            // three continuation bytes (after them, decoding starts afresh whatever follows).
            let rest = bytes.iter().take(3).position(|&b| !is_continuation(b));
            let (head, tail) = bytes.split_at(rest.unwrap_or(3.min(bytes.len())));
            self.staged.extend_from_slice(head);
            let staged = mem::take(&mut self.staged);
            self.decode(&staged);
            self.staged = staged;
            self.staged.clear();
            bytes = tail;
        }
        if bytes.len() < DECODE_IN_PLACE {
            self.staged.extend_from_slice(bytes);
            return;
        }
        let (now, later) = bytes.split_at(bytes.len() - cut_short(bytes));
        self.decode(now);
        self.staged.extend_from_slice(later);
    }

    /// Appends the LF that ends a data line.
    fn append_lf(&mut self) {
        if self.staged.is_empty() {
            self.push_data("\n");
        } else {
            self.staged.push(LF);
        }
    }

    /// Decodes what `staged` holds, but for a sequence it ends in that the next piece may finish.
    #[cold]
    fn flush_staged(&mut self) {
        let mut staged = mem::take(&mut self.staged);
        let done = staged.len() - cut_short(&staged);
        self.decode(&staged[..done]);
        staged.drain(..done);
        self.staged = staged;
    }

    /// Decodes `bytes` into `data`: invalid sequences become U+FFFD as in
    /// `String::from_utf8_lossy`. The caller makes sure that `bytes` starts and ends where
    /// decoding may start and end.
    fn decode(&mut self, bytes: &[u8]) {
        match simdutf8::basic::from_utf8(bytes) {
            Ok(text) => self.push_data(text),
            Err(_) => self.decode_lossy(bytes),
        }
    }

    #[cold]
    fn decode_lossy(&mut self, bytes: &[u8]) {
        for chunk in bytes.utf8_chunks() {
            self.push_data(chunk.valid());
            if !chunk.invalid().is_empty() {
                self.push_data("\u{FFFD}");
            }
        }
    }

    #[inline]
    fn push_data(&mut self, text: &str) {
        if self.overflow {
            return;
        }
        if self.data.len() + text.len() > self.data_cap {
            // The event can only be refused now: keep memory within the limit until it is.
            self.overflow = true;
            return;
        }
        self.data.push_str(text);
    }
}

/// Data pieces at least this long are checked as UTF-8 where they are (`simdutf8` goes SIMD from
/// 64 bytes); shorter ones are gathered first.
const DECODE_IN_PLACE: usize = 64;

/// Gathered data pieces are decoded once they reach this many bytes.
const STAGED_MAX: usize = 256;

fn is_continuation(byte: u8) -> bool {
    byte & 0xC0 == 0x80
}

/// How many bytes at the end of `bytes` may be the start of a multi-byte sequence that the bytes
/// after them finish (at most 3): they must be decoded together with what follows. Everything
/// before them can be decoded on its own, with the same result: no sequence, valid or not, goes
/// on past an ASCII byte or into a lead byte.
fn cut_short(bytes: &[u8]) -> usize {
    for back in 1..=bytes.len().min(3) {
        let byte = bytes[bytes.len() - back];
        if byte < 0x80 {
            return 0;
        }
        if byte >= 0xC0 {
            let needs = match byte {
                0xC0..=0xDF => 2,
                0xE0..=0xEF => 3,
                _ => 4,
            };
            return if needs > back { back } else { 0 };
        }
    }
    0
}

/// A line whose field name is about to be read by the state machine.
const NEW_NAME: Line = Line::Name {
    name: [0; 6],
    len: 0,
};

/// From `pos` (a `:`), where the run of keep-alives starting there ends: each is a comment line
/// within the line limit ended by LF, then an empty line ended by LF. Anything else (a CR, a line
/// cut by the end of the chunk) ends the run, and the caller reads it the general way.
#[inline]
fn skip_keepalives(buf: &[u8], mut pos: usize, max_line_len: usize) -> usize {
    while let Some(rest) = buf.get(pos + 1..) {
        let Some(at) = find_eol(rest) else { break };
        let end = pos + 1 + at;
        if at >= max_line_len || buf.get(end..end + 2) != Some(b"\n\n") {
            break;
        }
        pos = end + 2;
        if buf.get(pos) != Some(&b':') {
            break;
        }
    }
    pos
}

/// Where the first CR or LF in `bytes` is.
///
/// Lines are mostly short (comments, ids, event types, small data), and a call to `memchr2`
/// costs as much as looking at a few words of them: the first 16 bytes are looked at here, two
/// words side by side.
#[inline]
fn find_eol(bytes: &[u8]) -> Option<usize> {
    let Some(head) = bytes.first_chunk::<16>() else {
        // The end of a chunk, or small chunks.
        let mut at = 0;
        if let Some(word) = bytes.first_chunk::<8>() {
            let found = eol_bytes(u64::from_le_bytes(*word));
            if found != 0 {
                return Some((found.trailing_zeros() / 8) as usize);
            }
            at = 8;
        }
        return bytes[at..]
            .iter()
            .position(|&b| b == LF || b == CR)
            .map(|i| at + i);
    };
    let head = u128::from_le_bytes(*head);
    let (low, high) = (eol_bytes(head as u64), eol_bytes((head >> 64) as u64));
    if low != 0 {
        Some((low.trailing_zeros() / 8) as usize)
    } else if high != 0 {
        Some(8 + (high.trailing_zeros() / 8) as usize)
    } else {
        memchr::memchr2(LF, CR, &bytes[16..]).map(|at| 16 + at)
    }
}

/// The high bit of each byte of `word` (little-endian) that is an LF or a CR, and maybe of bytes
/// after the first such: only the lowest flag is exact (a borrow can only flag bytes above a real
/// match).
#[inline]
fn eol_bytes(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let (lf, cr) = (word ^ (ONES * u64::from(LF)), word ^ (ONES * u64::from(CR)));
    (lf.wrapping_sub(ONES) & !lf | cr.wrapping_sub(ONES) & !cr) & (ONES << 7)
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

/// The chunk being scanned, and a part of it known to be valid UTF-8.
struct Chunk<'a> {
    bytes: &'a [u8],
    /// Check the chunk as UTF-8 ahead, as far as it goes, not only the value needed.
    ahead: bool,
    /// `bytes[from..from + text.len()]`.
    from: usize,
    text: &'a str,
}

impl<'a> Chunk<'a> {
    /// `bytes[start..end]` as text, if it is valid UTF-8. `start` and `end` are next to ASCII
    /// bytes (or the ends of the chunk).
    #[inline]
    fn text(&mut self, start: usize, end: usize) -> Option<&'a str> {
        if start >= self.from {
            if let Some(text) = self.text.get(start - self.from..end - self.from) {
                return Some(text);
            }
        }
        self.check(start, end)
    }

    #[inline(never)]
    fn check(&mut self, start: usize, end: usize) -> Option<&'a str> {
        if !self.ahead {
            return simdutf8::basic::from_utf8(&self.bytes[start..end]).ok();
        }
        // Up to the end of the chunk, but for a sequence that the next chunk may finish (after
        // `end`, which is next to an ASCII byte).
        let rest = &self.bytes[start..];
        let rest = &rest[..rest.len() - cut_short(rest)];
        let valid = match simdutf8::basic::from_utf8(rest) {
            Ok(text) => text,
            Err(_) => {
                let valid = match simdutf8::compat::from_utf8(rest) {
                    Ok(text) => text.len(),
                    Err(err) => err.valid_up_to(),
                };
                simdutf8::basic::from_utf8(&rest[..valid]).unwrap_or("")
            }
        };
        self.from = start;
        self.text = valid;
        valid.get(..end - start)
    }
}

/// Sets `out` to `text`.
fn set_text(out: &mut String, text: &str) {
    out.clear();
    out.push_str(text);
}

/// Sets `out` to `bytes` decoded as UTF-8, invalid sequences replaced as by
/// `String::from_utf8_lossy`.
fn set_decoded(out: &mut String, bytes: &[u8]) {
    out.clear();
    match simdutf8::basic::from_utf8(bytes) {
        Ok(text) => out.push_str(text),
        Err(_) => {
            for chunk in bytes.utf8_chunks() {
                out.push_str(chunk.valid());
                if !chunk.invalid().is_empty() {
                    out.push('\u{FFFD}');
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use alloc::format;
    use alloc::string::ToString;

    use super::*;

    fn parse_all(input: &[u8]) -> Vec<Result<Item, Error>> {
        let mut parser = Parser::new();
        parser.push_slice(input);
        parser.finish();
        core::iter::from_fn(|| parser.next()).collect()
    }

    fn feed_all(input: &[u8]) -> Vec<Result<Item, Error>> {
        let mut parser = Parser::new();
        let mut items = Vec::new();
        parser.feed(input, |item| items.push(item.map(|item| item.to_owned())));
        parser.finish();
        items
    }

    fn event(t: &str, d: &str, id: &str) -> Result<Item, Error> {
        Ok(Item::Event(Event::new(t, d, id)))
    }

    #[test]
    fn simple_event() {
        assert_eq!(parse_all(b"data: hi\n\n"), [event("message", "hi", "")]);
        assert_eq!(feed_all(b"data: hi\n\n"), [event("message", "hi", "")]);
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

    #[test]
    fn single_line_data_is_borrowed_from_the_chunk() {
        let chunk = b"event: e\nid: 1\ndata: {\"a\":1}\n\ndata: x\ndata: y\n\n";
        let range = chunk.as_ptr_range();
        let mut parser = Parser::new();
        let mut seen = Vec::new();
        parser.feed(chunk, |item| {
            let Ok(ItemRef::Event(event)) = item else {
                panic!("{item:?}")
            };
            seen.push((
                event.data().to_string(),
                range.contains(&event.data().as_ptr()),
            ));
        });
        let expected = [("{\"a\":1}".to_string(), true), ("x\ny".to_string(), false)];
        assert_eq!(seen, expected);
    }

    #[test]
    fn utf8_split_across_chunks() {
        // "é€😀" cut at every byte, plus an invalid byte in the middle of a sequence.
        let input = "data: é€😀\n\n".as_bytes();
        for at in 0..input.len() {
            let mut parser = Parser::new();
            let mut items = Vec::new();
            for chunk in [&input[..at], &input[at..]] {
                parser.feed(chunk, |item| items.push(item.map(|item| item.to_owned())));
            }
            assert_eq!(items, [event("", "é€😀", "")], "split at {at}");
        }
        assert_eq!(
            feed_all(b"data: \xE2\x82A\xF0\x9F\x98\n\n"),
            [event("", "\u{FFFD}A\u{FFFD}", "")]
        );
    }

    #[test]
    fn large_events_keep_the_buffer_capacity() {
        let data = "x".repeat(4 * MOVE_DATA_THRESHOLD);
        let input = format!("data: {data}\n\n").repeat(3);
        let mut parser = Parser::new();
        for chunk in input.as_bytes().chunks(100) {
            parser.push_slice(chunk);
        }
        for _ in 0..3 {
            let Some(Ok(Item::Event(event))) = parser.next() else {
                panic!("expected an event")
            };
            assert_eq!(event.data(), data);
            assert!(parser.core.data.capacity() >= data.len());
        }
    }
}
