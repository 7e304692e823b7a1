//! The connection registry of a server-sent events server, independent of any runtime.
//!
//! A [`Hub`] issues unguessable client ids ([`ClientId`], UUID v4), hands each attached client a
//! [`ClientStream`] of encoded frames, replaces a client's stream when it reconnects, replays
//! what it missed from its `Last-Event-ID`, and addresses events to one client, to every client
//! of a name, to the subscribers of a key, or to everyone. Each event is encoded once and its
//! recipients share the bytes.
//!
//! Nothing here does I/O, spawns, or reads a clock: time is passed in as `now`, and work that
//! grows with the number of clients (waking a broadcast's recipients, sweeping stale clients) is
//! a cursor stepped a bounded slice at a time ([`Slice`]), with no lock held between steps and
//! wakers woken outside the lock. [`drive`] runs such a cursor on any executor, yielding between
//! slices; [`Hub::queue_wake`] drives the wake-ups of successive publishes in publish order, from
//! one task.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use futures_lite::{StreamExt, future::block_on};
//! use sse_codec::EventName;
//! use sse_registry::{Config, Hub, Slice, Target};
//!
//! let hub = Hub::new(Config::default());
//! let now = Instant::now();
//! let id = hub.issue(Some("alice"), now).unwrap();
//! let mut stream = hub.attach(id, None, now).unwrap();
//!
//! let news = EventName::from_static("news");
//! hub.subscribe(id, &news).unwrap();
//! let published = hub.publish(Target::Key(&news), Some(&news), "hello");
//! assert_eq!(published.recipients, 1);
//! drop(published); // wakes the recipients at once; or drive `published.wake` in slices
//!
//! let frame = block_on(stream.next()).unwrap();
//! assert_eq!(&frame[..], b"event: news\nid: 1\ndata: hello\n\n");
//!
//! // The browser reconnects: the new stream replaces the old one and resumes after id 1.
//! hub.publish(Target::Name("alice"), None, "while you were away").wake.step(64);
//! let mut again = hub.attach(id, Some("1"), now).unwrap();
//! assert_eq!(block_on(stream.next()), None); // the old stream has ended
//! let frame = block_on(again.next()).unwrap();
//! assert_eq!(&frame[..], b"id: 2\ndata: while you were away\n\n");
//!
//! // Once its stream is gone for longer than the grace period, a sweep forgets it. The hub has
//! // no clock: the grace of a dropped stream counts from the next `now` it is given (here the
//! // first sweep's), never from an earlier one; `ClientStream::close(now)` stamps it at once.
//! drop(again);
//! let later = now + Duration::from_secs(1);
//! block_on(sse_registry::drive(&mut hub.sweep(later), 1024)); // the grace starts
//! let mut sweep = hub.sweep(later + Duration::from_secs(61));
//! block_on(sse_registry::drive(&mut sweep, 1024));
//! assert_eq!(sweep.removed(), 1);
//! assert!(!hub.contains(id));
//! ```

//!
//! # Layers
//! [`State`] is the hub's sans-IO core: a plain `&mut self` state machine (client table, name
//! and key indexes, history, cursors) with no `Arc`, lock, `Waker` or clock, whose methods take
//! `now` and say which streams ([`StreamKey`]) to wake; [`State::poll_timeout`] says when the
//! next client expires. [`Hub`] shares it between tasks: it holds it behind a lock, keeps the
//! wakers of waiting streams apart from it, and wakes them. [`ClientStream`], [`Wake`] and
//! [`Sweep`] are built on the hub.

mod config;
mod hub;
mod id;
mod lock;
mod state;
mod stream;
mod sweep;
mod types;
mod wake;
mod wakers;
mod work;

pub use config::Config;
pub use hub::Hub;
pub use id::{ClientId, InvalidClientId, Tag};
#[cfg(feature = "lock-stats")]
pub use lock::LockStats;
pub use state::{Attached, Polled, Published, State, StreamKey, SweepCursor, WakeCursor};
pub use stream::ClientStream;
pub use sweep::Sweep;
pub use types::{ClientInfo, Error, PublishedTo, RESET, Stats, Target};
pub use wake::{Publish, Wake};
pub use work::{DEFAULT_SLICE, Progress, Slice, drive};
