//! Server-sent events on the wire: a streaming parser that follows the WHATWG HTML "event stream
//! interpretation" rules exactly, whatever the chunking, and an encoder whose frames cannot be
//! broken by the values put in them.
//!
//! The crate is `no_std` (it needs `alloc`) and does no I/O: feed it bytes, get events; give it
//! events, get bytes. The `std` feature (on by default) adds `std::error::Error` impls and lets
//! `memchr` detect SIMD support at run time.
//!
//! # Parsing
//!
//! [`Parser::feed`] parses a borrowed chunk and hands each item to a callback, borrowed from the
//! chunk or the parser: no allocation per event, no copy of a one-line event. The fastest way.
//!
//! ```
//! use sse_codec::{ItemRef, Parser};
//!
//! let mut parser = Parser::new();
//! let mut total = 0;
//! for chunk in [&b"data: 12\n\nid: 1\ndata: 3"[..], b"0\n\n"] {
//!     parser.feed(chunk, |item| match item {
//!         Ok(ItemRef::Event(event)) => total += event.data().parse::<u32>().unwrap_or(0),
//!         Ok(ItemRef::Retry(_)) => {}
//!         Err(limit) => eprintln!("skipped an event: {limit}"),
//!     });
//! }
//! parser.finish();
//! assert_eq!((total, parser.last_event_id()), (42, "1"));
//! ```
//!
//! The pull API queues chunks (a `bytes::Bytes` without a copy) and returns owned [`Item`]s; it
//! gives exactly the same items.
//!
//! ```
//! use sse_codec::{Item, Parser};
//!
//! let mut parser = Parser::new();
//! for chunk in [&b"\xEF\xBB\xBFdata: first\r"[..], b"\n\r\nid: 2\ndata: sec", b"ond\n\n"] {
//!     parser.push_slice(chunk);
//!     while let Some(item) = parser.next() {
//!         match item {
//!             Ok(Item::Event(event)) => println!("{} {:?}", event.event_type(), event.data()),
//!             Ok(Item::Retry(ms)) => println!("reconnect after {ms} ms"),
//!             Err(limit) => eprintln!("skipped an event: {limit}"),
//!         }
//!     }
//! }
//! parser.finish();
//! assert_eq!(parser.last_event_id(), "2");
//! ```
//!
//! # Encoding
//!
//! ```
//! use sse_codec::{EventId, EventName, Frame, Item, Parser};
//!
//! const UPDATE: EventName = EventName::from_static("update");
//! let id = EventId::new("41").unwrap();
//! let frame = Frame::new().event(&UPDATE).id(&id).data("line one\nline two").encode();
//!
//! // `frame` is a `bytes::Bytes`: clone it to every client for the cost of a reference count.
//! let mut parser = Parser::new();
//! parser.push(frame.clone());
//! let Some(Ok(Item::Event(event))) = parser.next() else { unreachable!() };
//! assert_eq!((event.event_type(), event.data()), ("update", "line one\nline two"));
//! ```
//!
//! # Limits
//!
//! Nothing a peer sends can make the parser panic or hold unbounded memory: lines and events are
//! capped by [`Limits`], and exceeding a cap yields an [`Error`] after which the parser skips the
//! offending event and carries on.
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod encoder;
mod parser;

pub use encoder::{EventId, EventName, Frame, InvalidField, comment};
pub use parser::{Error, Event, EventRef, Item, ItemRef, Limits, Parser};
