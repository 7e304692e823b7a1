//! One response body to items: the parsing path every connection of an event source takes.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes};
use futures_core::Stream;
use http_body::Body;
use sse_codec::{Limits, Parser};

use crate::{Disconnect, Error, Item};

/// The event name of the protocol's `reset` (`sse_registry::RESET`): the hub could not replay
/// what the client missed, so the client must reload its state.
pub const RESET: &str = "reset";

/// The limits a client applies by default: lines and event data up to 1 MiB each.
pub const DEFAULT_LIMITS: Limits = Limits {
    max_line_len: 1024 * 1024,
    max_event_len: 1024 * 1024,
};

/// The parser of an event source, kept across its connections (so that the last event id and
/// the reconnection time carry over, as the specification requires), with the `reset` rule.
#[derive(Debug)]
pub(crate) struct Decoder {
    parser: Parser,
    reset: Option<Box<str>>,
}

/// What a decoder hands back.
pub(crate) enum Decoded {
    Item(Item),
    /// A `retry:` field, in milliseconds.
    Retry(u64),
}

impl Decoder {
    pub(crate) fn new(limits: Limits, reset: Option<Box<str>>) -> Self {
        Self {
            parser: Parser::with_limits(limits),
            reset,
        }
    }

    pub(crate) fn set_last_event_id(&mut self, id: &str) {
        self.parser.set_last_event_id(id);
    }

    pub(crate) fn last_event_id(&self) -> &str {
        self.parser.last_event_id()
    }

    pub(crate) fn push(&mut self, chunk: Bytes) {
        self.parser.push(chunk);
    }

    /// Ends the current connection's stream: an unterminated event is dropped, the last event
    /// id and reconnection time are kept.
    pub(crate) fn finish(&mut self) {
        self.parser.finish();
    }

    /// The next item of what was pushed; `None` when more input is needed. A limit error means
    /// the connection must be closed.
    pub(crate) fn next(&mut self) -> Option<Result<Decoded, Error>> {
        Some(match self.parser.next()? {
            Ok(sse_codec::Item::Retry(ms)) => Ok(Decoded::Retry(ms)),
            Ok(sse_codec::Item::Event(event)) => {
                if self.reset.as_deref() == Some(event.event_type()) {
                    Ok(Decoded::Item(Item::Reset(event)))
                } else {
                    Ok(Decoded::Item(Item::Event(event)))
                }
            }
            Err(limit) => Err(limit.into()),
        })
    }
}

/// One step of reading a body through a decoder.
pub(crate) enum Step {
    Item(Item),
    /// A `retry:` field, in milliseconds.
    Retry(u64),
    /// A limit was broken: close the connection.
    Limit(Error),
    /// A frame was read (and its data pushed): there may be items now.
    Read,
    /// The body ended or failed; the decoder has been told (`finish`).
    End(Disconnect),
}

/// The parsing path of every body, [`BodyEvents`]' and each connection's of an event source:
/// hands out what is decoded, and reads one frame only when nothing is (calling `before_read`
/// first: the event source drives its connection there).
pub(crate) fn poll_step<B>(
    decoder: &mut Decoder,
    body: Pin<&mut B>,
    cx: &mut Context<'_>,
    before_read: impl FnOnce(&mut Context<'_>),
) -> Poll<Step>
where
    B: Body,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    match decoder.next() {
        Some(Ok(Decoded::Item(item))) => return Poll::Ready(Step::Item(item)),
        Some(Ok(Decoded::Retry(ms))) => return Poll::Ready(Step::Retry(ms)),
        Some(Err(limit)) => return Poll::Ready(Step::Limit(limit)),
        None => {}
    }
    before_read(cx);
    let end = match ready!(body.poll_frame(cx)) {
        Some(Ok(frame)) => {
            if let Ok(mut data) = frame.into_data() {
                let len = data.remaining();
                decoder.push(data.copy_to_bytes(len));
            }
            return Poll::Ready(Step::Read);
        }
        Some(Err(err)) => Disconnect::network(err),
        None => Disconnect::Ended,
    };
    decoder.finish();
    Poll::Ready(Step::End(end))
}

/// The events of one response body, without reconnecting: what an
/// [`EventSource`](crate::EventSource) does with each connection's body, for a body you got
/// elsewhere (or from memory, as the benchmark does).
///
/// Yields [`Item::Event`] and [`Item::Reset`]; `retry:` fields are kept
/// ([`retry`](Self::retry)). Ends with `None` at the end of the body, or with one
/// [`Error::Body`] (the body failed) or limit error ([`Error::LineTooLong`],
/// [`Error::EventTooLarge`]), after which it yields nothing more.
///
/// ```
/// use bytes::Bytes;
/// use futures_lite::StreamExt;
/// use http_body_util::Full;
/// use sse_client::{BodyEvents, Item};
///
/// let body = Full::new(Bytes::from_static(b"retry: 500\nid: 1\ndata: hi\n\nevent: reset\nid: 9\ndata: 9\n\n"));
/// let mut events = BodyEvents::new(body);
/// futures_lite::future::block_on(async {
///     let Some(Ok(Item::Event(hi))) = events.next().await else { panic!() };
///     assert_eq!((hi.data(), hi.last_event_id()), ("hi", "1"));
///     assert!(matches!(events.next().await, Some(Ok(Item::Reset(_)))));
///     assert!(events.next().await.is_none());
/// });
/// assert_eq!(events.last_event_id(), "9");
/// assert_eq!(events.retry(), Some(std::time::Duration::from_millis(500)));
/// ```
#[derive(Debug)]
pub struct BodyEvents<B> {
    body: B,
    decoder: Decoder,
    retry: Option<Duration>,
    done: bool,
}

impl<B> BodyEvents<B>
where
    B: Body + Unpin,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    /// The events of `body`, with [`DEFAULT_LIMITS`], treating `reset` events as
    /// [`Item::Reset`].
    pub fn new(body: B) -> Self {
        Self::with_limits(body, DEFAULT_LIMITS)
    }

    /// The events of `body`, with the given limits.
    pub fn with_limits(body: B, limits: Limits) -> Self {
        Self {
            body,
            decoder: Decoder::new(limits, Some(RESET.into())),
            retry: None,
            done: false,
        }
    }

    /// Sets the event name reported as [`Item::Reset`] (`None`: none, every event is an
    /// [`Item::Event`]).
    #[must_use]
    pub fn reset_event(mut self, name: Option<&str>) -> Self {
        self.decoder.reset = name.map(Into::into);
        self
    }

    /// The last event ID string so far (`""` when none).
    pub fn last_event_id(&self) -> &str {
        self.decoder.last_event_id()
    }

    /// The reconnection time the body set with `retry:`, if it did.
    pub fn retry(&self) -> Option<Duration> {
        self.retry
    }
}

impl<B> Stream for BodyEvents<B>
where
    B: Body + Unpin,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    type Item = Result<Item, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        while !this.done {
            let step = poll_step(&mut this.decoder, Pin::new(&mut this.body), cx, |_| {});
            match ready!(step) {
                Step::Item(item) => return Poll::Ready(Some(Ok(item))),
                Step::Retry(ms) => this.retry = Some(Duration::from_millis(ms)),
                Step::Read => {}
                Step::Limit(limit) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(limit)));
                }
                Step::End(Disconnect::Ended) => this.done = true,
                Step::End(cause) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(Error::Body(cause))));
                }
            }
        }
        Poll::Ready(None)
    }
}
