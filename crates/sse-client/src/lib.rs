//! A reconnecting server-sent events client: the WHATWG `EventSource` for Rust, over hyper 1.x
//! and the workspace's `sse-codec` parser, on tokio or smol, with a typed client for this
//! workspace's protocol on top.
//!
//! An [`EventSource`] is a [`Stream`](futures_core::Stream) of [`Item`]s: [`Item::Open`] when a
//! connection opens, [`Item::Event`] for each event, [`Item::Reset`] for the protocol's `reset`,
//! [`Item::Reconnecting`] before each reconnection. It reconnects the way the specification
//! says (after a network error or the end of the body, with `Last-Event-ID`, after the
//! reconnection time a `retry:` field sets, here grown by [`Backoff`] while attempts fail),
//! follows redirects as fetch does ([`Builder::max_redirects`]: the same headers and
//! `Last-Event-ID`, credentials dropped across origins) and
//! stops with a typed [`Error`] where a browser would close: `204`, another status, another
//! content type; and where a browser would let memory grow: a line or an event over the
//! [`Limits`].
//!
//! ```no_run
//! # #[cfg(feature = "tokio")]
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use futures_lite::StreamExt;
//! use sse_client::Item;
//!
//! let mut source = sse_client::tokio::event_source("http://127.0.0.1:8080/events".parse()?);
//! while let Some(item) = source.next().await {
//!     match item? {
//!         Item::Event(event) => println!("{}: {}", event.event_type(), event.data()),
//!         Item::Reconnecting { attempt, after, .. } => eprintln!("retry #{attempt} in {after:?}"),
//!         _ => {}
//!     }
//! }
//! # Ok(())
//! # }
//! # fn main() {
//! #     #[cfg(feature = "tokio")]
//! #     drop(run());
//! # }
//! ```
//!
//! # Runtimes and TLS
//!
//! The client needs a timer ([`Runtime`]) and a way to open a connection for a URL
//! ([`Connect`]). The `tokio` and `smol` features (both on by default) give each a timer and a
//! plain-TCP connector for `http://`, with entry points ([`tokio::event_source`],
//! [`smol::event_source`], [`tokio::client`], [`smol::client`]). No TLS is built in: for
//! `https://`, pass [`Builder::new`] a connector (any closure from the URL to a connection)
//! that wraps the TCP stream in rustls or native-tls (the crate's `tls` example is one, on
//! tokio-rustls). Nothing is spawned: the stream drives its
//! own connection when polled, so it runs on any executor.
//!
//! # The protocol
//!
//! [`Client`] speaks the routes of `sse-http` (register, open the stream, listen to keys,
//! submit tasks, leave); see its example. [`Client::session`] is the long-lived form: a
//! [`Session`] registers, listens, follows, and registers again when the server forgot the
//! client (a restart). Client ids are secrets: [`ClientId`]'s `Debug` hides
//! it, and neither [`EventSource`] nor [`Client`] shows a URL's path.

#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

mod backoff;
mod body;
mod error;
mod protocol;
mod rt;
mod session;
mod source;

#[cfg(feature = "smol")]
pub mod smol;
#[cfg(feature = "tokio")]
pub mod tokio;

pub use backoff::Backoff;
pub use body::{BodyEvents, DEFAULT_LIMITS, RESET};
pub use error::{Disconnect, Error};
pub use protocol::{Client, ClientId, MAX_RESPONSE_BODY, ProtocolError};
pub use rt::{BoxFuture, BoxIo, Connect, Io, Runtime};
pub use session::{Session, SessionError, SessionItem};
pub use source::{Builder, DEFAULT_MAX_REDIRECTS, EventSource, Item};
pub use sse_codec::{Event, Limits};
