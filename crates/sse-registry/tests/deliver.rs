//! The cross-node seam: events delivered with sequence numbers chosen elsewhere, and clients
//! imported with ids issued elsewhere.

use std::time::Instant;

use futures_lite::{StreamExt, future::block_on};
use sse_codec::EventName;
use sse_registry::{ClientId, Config, Error, Hub, Target};

#[test]
fn deliver_uses_the_given_seq_and_refuses_stale_ones() {
    let hub = Hub::new(Config::default());
    let now = Instant::now();
    let id = hub.issue(None, now).unwrap();
    let mut stream = hub.attach(id, None, now).unwrap();
    let news = EventName::from_static("news");
    let published = hub.deliver(1 << 20, Target::All, Some(&news), "a").unwrap();
    assert_eq!((published.seq, published.recipients), (1 << 20, 1));
    drop(published);
    assert_eq!(
        &block_on(stream.next()).unwrap()[..],
        b"event: news\nid: 1048576\ndata: a\n\n"
    );
    assert_eq!(
        hub.deliver(1 << 20, Target::All, None, "again")
            .unwrap_err(),
        Error::StaleSeq
    );
    assert_eq!(
        hub.deliver(5, Target::All, None, "older").unwrap_err(),
        Error::StaleSeq
    );
    assert_eq!(hub.stats().seq, 1 << 20);
    // Gaps are fine, and a client's frames keep their order.
    drop(
        hub.deliver((1 << 20) + 7, Target::Client(id), None, "b")
            .unwrap(),
    );
    assert_eq!(
        &block_on(stream.next()).unwrap()[..],
        b"id: 1048583\ndata: b\n\n"
    );
    // Replay from a delivered seq works as for published ones.
    let mut again = hub.attach(id, Some("1048576"), now).unwrap();
    assert_eq!(
        &block_on(again.next()).unwrap()[..],
        b"id: 1048583\ndata: b\n\n"
    );
}

#[test]
fn import_adds_a_client_with_a_given_id_once() {
    let hub = Hub::new(Config::default());
    let now = Instant::now();
    let id = ClientId::random();
    assert_eq!(hub.import(id, Some("alice"), now), Ok(true));
    assert_eq!(hub.import(id, Some("bob"), now), Ok(false));
    assert_eq!(hub.name(id).unwrap().as_deref(), Some("alice"));
    let news = EventName::from_static("news");
    hub.subscribe(id, &news).unwrap();
    assert_eq!(hub.keys(id).unwrap(), vec!["news".into()]);
    let mut stream = hub.attach(id, None, now).unwrap();
    drop(hub.publish(Target::Name("alice"), None, "hi"));
    assert_eq!(
        &block_on(stream.next()).unwrap()[..],
        b"id: 1\ndata: hi\n\n"
    );
    assert_eq!(hub.keys(ClientId::random()), Err(Error::UnknownClient));
}

#[test]
fn end_stream_ends_the_stream_and_keeps_the_client() {
    let hub = Hub::new(Config::default());
    let now = Instant::now();
    let id = hub.issue(Some("alice"), now).unwrap();
    let news = EventName::from_static("news");
    hub.subscribe(id, &news).unwrap();
    let mut stream = hub.attach(id, None, now).unwrap();
    let first = hub.publish(Target::Name("alice"), None, "one");
    let seq = first.seq;
    drop(first);
    assert_eq!(
        &block_on(stream.next()).unwrap()[..],
        b"id: 1\ndata: one\n\n"
    );
    assert_eq!(hub.stats().attached, 1);

    assert_eq!(hub.end_stream(id, now), Ok(true));
    assert_eq!(block_on(stream.next()), None);
    assert_eq!(hub.stats().attached, 0);
    assert_eq!(hub.end_stream(id, now), Ok(false));
    drop(stream); // detaches nothing more
    assert_eq!(hub.stats().attached, 0);
    assert_eq!(
        hub.end_stream(ClientId::random(), now),
        Err(Error::UnknownClient)
    );

    // The client, its subscriptions and its queue are intact: it resumes where it was.
    drop(hub.publish(Target::Name("alice"), None, "two"));
    drop(hub.publish(Target::Key(&news), Some(&news), "three"));
    let mut again = hub.attach(id, Some(&seq.to_string()), now).unwrap();
    assert_eq!(
        &block_on(again.next()).unwrap()[..],
        b"id: 2\ndata: two\n\n"
    );
    assert_eq!(
        &block_on(again.next()).unwrap()[..],
        b"event: news\nid: 3\ndata: three\n\n"
    );
    assert_eq!(hub.stats().attached, 1);
}
