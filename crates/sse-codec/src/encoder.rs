//! The frame encoder.
//!
//! A frame is encoded once into [`Bytes`] so that it can be queued to any number of clients by
//! reference count. Event names and ids are newtypes that cannot hold the characters that would
//! break framing, and data is split into `data:` lines on every line break, so no value a caller
//! passes can inject a field or end an event early.

use alloc::borrow::Cow;
use alloc::string::String;
use core::fmt;

use bytes::{BufMut, Bytes, BytesMut};

/// Why a string cannot be an [`EventName`] or an [`EventId`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidField {
    /// An event name must not be empty (an empty `event` field means `message`).
    Empty,
    /// It contains a CR or LF, which would end the field early.
    LineBreak,
    /// An id contains U+0000, which makes a parser ignore the whole `id` field.
    Nul,
}

impl fmt::Display for InvalidField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Empty => "an event name must not be empty",
            Self::LineBreak => "an event name or id must not contain CR or LF",
            Self::Nul => "an event id must not contain NUL",
        })
    }
}

#[cfg(feature = "std")]
impl std::error::Error for InvalidField {}

const fn check(s: &str, is_id: bool) -> Result<(), InvalidField> {
    let bytes = s.as_bytes();
    if bytes.is_empty() && !is_id {
        return Err(InvalidField::Empty);
    }
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\r' | b'\n' => return Err(InvalidField::LineBreak),
            0 if is_id => return Err(InvalidField::Nul),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

macro_rules! field_newtype {
    ($(#[$doc:meta])* $name:ident, is_id = $is_id:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Cow<'static, str>);

        impl $name {
            /// Checks `value` and wraps it.
            pub fn new(value: impl Into<String>) -> Result<Self, InvalidField> {
                let value = value.into();
                check(&value, $is_id)?;
                Ok(Self(Cow::Owned(value)))
            }

            /// Wraps a constant; usable in `const` items.
            ///
            /// # Panics
            /// If `value` is not valid (at compile time in a `const` context).
            pub const fn from_static(value: &'static str) -> Self {
                if check(value, $is_id).is_err() {
                    panic!(concat!("invalid ", stringify!($name)));
                }
                Self(Cow::Borrowed(value))
            }

            /// The value as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<&str> for $name {
            type Error = InvalidField;
            fn try_from(value: &str) -> Result<Self, InvalidField> {
                Self::new(value)
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidField;
            fn try_from(value: String) -> Result<Self, InvalidField> {
                Self::new(value)
            }
        }

        impl core::str::FromStr for $name {
            type Err = InvalidField;
            fn from_str(value: &str) -> Result<Self, InvalidField> {
                Self::new(value)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

field_newtype!(
    /// An event type for the `event` field: not empty, no CR, no LF.
    ///
    /// ```
    /// use sse_codec::{EventName, InvalidField};
    /// const PROGRESS: EventName = EventName::from_static("progress");
    /// assert_eq!(PROGRESS.as_str(), "progress");
    /// assert_eq!(EventName::new("a\nb"), Err(InvalidField::LineBreak));
    /// ```
    EventName,
    is_id = false
);

field_newtype!(
    /// A value for the `id` field: no CR, no LF, no NUL. The empty id is valid: it resets the
    /// client's last event id.
    ///
    /// ```
    /// use sse_codec::{EventId, InvalidField};
    /// assert_eq!(EventId::new("42").unwrap().as_str(), "42");
    /// assert_eq!(EventId::new("4\u{0}2"), Err(InvalidField::Nul));
    /// ```
    EventId,
    is_id = true
);

/// One frame of an event stream, ready to encode.
///
/// An event with data is dispatched by the client; a frame without data only sets the id or the
/// reconnection time. Line breaks in `data` (CR, LF or CRLF) become separate `data:` lines, which
/// a parser joins back with LF: `parse(encode(data)) == data` with every line break written as LF.
///
/// ```
/// use sse_codec::{EventId, EventName, Frame};
/// let name = EventName::from_static("update");
/// let id = EventId::new("7").unwrap();
/// let frame = Frame::new().event(&name).id(&id).data("a\r\nb").encode();
/// assert_eq!(&frame[..], b"event: update\nid: 7\ndata: a\ndata: b\n\n");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[must_use]
pub struct Frame<'a> {
    event: Option<&'a EventName>,
    id: Option<&'a EventId>,
    data: Option<&'a str>,
    retry: Option<u64>,
    comment: Option<&'a str>,
}

impl<'a> Frame<'a> {
    /// An empty frame: it encodes to a lone blank line, which dispatches nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the event type (without it, the client sees `message`).
    pub fn event(mut self, name: &'a EventName) -> Self {
        self.event = Some(name);
        self
    }

    /// Sets the event id.
    pub fn id(mut self, id: &'a EventId) -> Self {
        self.id = Some(id);
        self
    }

    /// Sets the data; any string, including the empty one, makes the frame an event.
    pub fn data(mut self, data: &'a str) -> Self {
        self.data = Some(data);
        self
    }

    /// Sets the client's reconnection time, in milliseconds.
    pub fn retry(mut self, millis: u64) -> Self {
        self.retry = Some(millis);
        self
    }

    /// Adds a comment, written before the fields; clients ignore it. Line breaks in it start new
    /// comment lines.
    pub fn comment(mut self, text: &'a str) -> Self {
        self.comment = Some(text);
        self
    }

    /// The exact length of [`encode`](Self::encode)'s output.
    pub fn encoded_len(&self) -> usize {
        let mut len = 1; // the blank line that ends the frame
        if let Some(text) = self.comment {
            len += lines_len(text, ": \n".len());
        }
        if let Some(name) = self.event {
            len += "event: \n".len() + name.as_str().len();
        }
        if let Some(id) = self.id {
            len += "id: \n".len() + id.as_str().len();
        }
        if let Some(ms) = self.retry {
            len += "retry: \n".len() + decimal_len(ms);
        }
        if let Some(data) = self.data {
            len += lines_len(data, "data: \n".len());
        }
        len
    }

    /// Appends the encoded frame to `buf`.
    ///
    /// One pass over the values: `buf` is grown as needed rather than sized exactly first (a
    /// buffer reused from frame to frame rarely needs to grow).
    pub fn encode_to(&self, buf: &mut BytesMut) {
        let values = self.data.map_or(0, str::len) + self.comment.map_or(0, str::len);
        buf.reserve(values + 64);
        self.write(buf);
    }

    /// Encodes the frame into one shared buffer.
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(self.encoded_len());
        self.write(&mut buf);
        buf.freeze()
    }

    /// Writes the frame into `buf`.
    fn write(&self, buf: &mut BytesMut) {
        if let Some(text) = self.comment {
            for line in lines(text) {
                put_line(buf, b": ", line);
            }
        }
        if let Some(name) = self.event {
            put_line(buf, b"event: ", name.as_str());
        }
        if let Some(id) = self.id {
            put_line(buf, b"id: ", id.as_str());
        }
        if let Some(ms) = self.retry {
            let mut digits = [0u8; 20];
            put_line(buf, b"retry: ", format_decimal(ms, &mut digits));
        }
        if let Some(data) = self.data {
            for line in lines(data) {
                put_line(buf, b"data: ", line);
            }
        }
        buf.put_u8(b'\n');
    }
}

/// A comment line on its own, such as a keep-alive: `:text\n`. Line breaks in `text` start new
/// comment lines. The result dispatches nothing and changes no parser state.
///
/// ```
/// assert_eq!(&sse_codec::comment("ping")[..], b": ping\n");
/// ```
pub fn comment(text: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(lines_len(text, ": \n".len()));
    for line in lines(text) {
        put_line(&mut buf, b": ", line);
    }
    buf.freeze()
}

fn put_line(buf: &mut BytesMut, prefix: &[u8], value: &str) {
    buf.put_slice(prefix);
    buf.put_slice(value.as_bytes());
    buf.put_u8(b'\n');
}

/// Splits `text` at every CRLF, CR or LF. The empty string is one empty line.
///
/// One `memchr2_iter` walk: each search resumes where the previous one stopped.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let bytes = text.as_bytes();
    let mut breaks = memchr::memchr2_iter(b'\r', b'\n', bytes);
    let mut start = Some(0);
    core::iter::from_fn(move || {
        let from = start?;
        // The LF of a CRLF was taken with its CR.
        let Some(at) = breaks.find(|&at| at >= from) else {
            start = None;
            return Some(&text[from..]);
        };
        let crlf = bytes[at] == b'\r' && bytes.get(at + 1) == Some(&b'\n');
        start = Some(at + 1 + usize::from(crlf));
        Some(&text[from..at])
    })
}

/// The length of `text` written as [`lines`] of `extra` more bytes each (a prefix and an LF),
/// without splitting it: a count of line-break bytes that the compiler vectorizes.
fn lines_len(text: &str, extra: usize) -> usize {
    // Line-break bytes and CRs in a block of at most 128 bytes.
    fn count(block: &[u8; 128]) -> (usize, usize) {
        let (mut breaks, mut crs) = (0u8, 0u8);
        for &b in block {
            breaks += u8::from(b == b'\n') + u8::from(b == b'\r');
            crs += u8::from(b == b'\r');
        }
        (usize::from(breaks), usize::from(crs))
    }
    let bytes = text.as_bytes();
    let blocks = bytes.chunks_exact(128);
    let mut tail = [0u8; 128]; // NUL is not a line break
    tail[..blocks.remainder().len()].copy_from_slice(blocks.remainder());
    let (mut breaks, mut crs) = count(&tail);
    for block in blocks {
        // Always 128 bytes (`chunks_exact`).
        if let Ok(block) = <&[u8; 128]>::try_from(block) {
            let (b, c) = count(block);
            breaks += b;
            crs += c;
        }
    }
    // A CRLF is two bytes but one line break.
    let crlf = match crs {
        0 => 0,
        _ => memchr::memmem::find_iter(bytes, b"\r\n").count(),
    };
    let lines = breaks - crlf + 1;
    lines * extra + bytes.len() - breaks
}

fn decimal_len(mut n: u64) -> usize {
    let mut len = 1;
    while n >= 10 {
        n /= 10;
        len += 1;
    }
    len
}

fn format_decimal(mut n: u64, out: &mut [u8; 20]) -> &str {
    let mut at = out.len();
    loop {
        at -= 1;
        out[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    core::str::from_utf8(&out[at..]).unwrap_or("0")
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn lines_split_on_every_line_break() {
        let got: Vec<&str> = lines("a\r\nb\rc\nd\n\re").collect();
        assert_eq!(got, ["a", "b", "c", "d", "", "e"]);
        assert_eq!(lines("").collect::<Vec<_>>(), [""]);
        assert_eq!(lines("x\n").collect::<Vec<_>>(), ["x", ""]);
    }

    #[test]
    fn lines_len_counts_what_lines_gives() {
        for text in [
            "",
            "a",
            "\r",
            "\n",
            "\r\n",
            "a\r\nb\rc\nd\n\re",
            "\r\r\n\n",
            "x\n",
        ] {
            let expected: usize = lines(text).map(|line| 3 + line.len()).sum();
            assert_eq!(lines_len(text, 3), expected, "{text:?}");
        }
        let long = "lorem ipsum\r\n".repeat(100) + &"dolor\n".repeat(100) + "\r";
        let expected: usize = lines(&long).map(|line| 7 + line.len()).sum();
        assert_eq!(lines_len(&long, 7), expected);
    }

    #[test]
    fn encoded_len_is_exact() {
        let name = EventName::from_static("x");
        let id = EventId::new("").unwrap();
        for frame in [
            Frame::new(),
            Frame::new().data(""),
            Frame::new().data(" a\r\n\n").event(&name).id(&id).retry(0),
            Frame::new().retry(u64::MAX).comment("a\nb"),
        ] {
            assert_eq!(frame.encode().len(), frame.encoded_len(), "{frame:?}");
        }
    }

    #[test]
    fn encode_to_appends_what_encode_gives() {
        let name = EventName::from_static("x");
        let long = "line\r\n".repeat(100);
        let mut buf = BytesMut::from(&b"before"[..]);
        let mut expected = b"before".to_vec();
        for frame in [
            Frame::new()
                .data(&long)
                .comment("a\nb")
                .event(&name)
                .retry(7),
            Frame::new(),
            Frame::new().data(""),
        ] {
            frame.encode_to(&mut buf);
            expected.extend_from_slice(&frame.encode());
        }
        assert_eq!(&buf[..], &expected[..]);
    }

    #[test]
    fn retry_and_comment_encode() {
        assert_eq!(&Frame::new().retry(1500).encode()[..], b"retry: 1500\n\n");
        assert_eq!(&comment("a\r\nb")[..], b": a\n: b\n");
        assert_eq!(&Frame::new().data("").encode()[..], b"data: \n\n");
    }

    #[test]
    fn invalid_values_are_refused() {
        assert_eq!(EventName::new(""), Err(InvalidField::Empty));
        assert_eq!(EventName::new("a\rb"), Err(InvalidField::LineBreak));
        assert_eq!(EventId::new("\n"), Err(InvalidField::LineBreak));
        assert_eq!(EventId::new("\0"), Err(InvalidField::Nul));
        assert!(EventName::new("a\0b").is_ok());
    }
}
