//! Unit-level behaviour of the hub, on a fake clock and without a runtime.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use futures_core::Stream;
use sse_codec::{EventName, Item, Parser};
use sse_registry::{ClientId, ClientStream, Config, Error, Hub, Progress, Slice, Target};

/// A waker that counts its wakes.
struct Counter(AtomicUsize);

impl Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counter() -> (Arc<Counter>, Waker) {
    let c = Arc::new(Counter(AtomicUsize::new(0)));
    (c.clone(), Waker::from(c))
}

/// Polls once: `Some(Some(frame))`, `Some(None)` when ended, `None` when pending.
fn poll(stream: &mut ClientStream, waker: &Waker) -> Option<Option<(String, String, String)>> {
    match std::pin::Pin::new(stream).poll_next(&mut Context::from_waker(waker)) {
        Poll::Pending => None,
        Poll::Ready(None) => Some(None),
        Poll::Ready(Some(frame)) => {
            let mut parser = Parser::new();
            parser.push(frame);
            let Some(Ok(Item::Event(e))) = parser.next() else {
                panic!("not an event frame")
            };
            assert_eq!(parser.next(), None, "one event per frame");
            Some(Some((
                e.event_type().into(),
                e.data().into(),
                e.last_event_id().into(),
            )))
        }
    }
}

/// Reads every frame available now: (type, data, id) triples.
fn drain(stream: &mut ClientStream) -> Vec<(String, String, String)> {
    let waker = Waker::noop();
    let mut out = Vec::new();
    while let Some(Some(event)) = poll(stream, waker) {
        out.push(event);
    }
    out
}

fn datas(events: &[(String, String, String)]) -> Vec<&str> {
    events.iter().map(|(_, d, _)| d.as_str()).collect()
}

fn small(history_len: usize, queue_capacity: usize) -> Hub {
    let mut config = Config::default();
    config.history_len = history_len;
    config.queue_capacity = queue_capacity;
    Hub::new(config)
}

#[test]
fn only_issued_ids_attach_and_removed_ones_stop() {
    let hub = Hub::default();
    let t0 = Instant::now();
    let stranger = sse_registry::ClientId::random();
    assert_eq!(
        hub.attach(stranger, None, t0).err(),
        Some(Error::UnknownClient)
    );
    let id = hub.issue(None, t0).unwrap();
    let mut stream = hub.attach(id, None, t0).unwrap();
    let (wakes, waker) = counter();
    assert_eq!(poll(&mut stream, &waker), None);
    hub.remove(id).unwrap();
    assert_eq!(
        wakes.0.load(Ordering::SeqCst),
        1,
        "removal wakes the stream"
    );
    assert_eq!(poll(&mut stream, &waker), Some(None), "and it ends");
    assert_eq!(hub.remove(id), Err(Error::UnknownClient));
    assert_eq!(hub.attach(id, None, t0).err(), Some(Error::UnknownClient));
}

#[test]
fn reattach_replaces_the_old_stream_and_keeps_subscriptions() {
    let hub = Hub::default();
    let t0 = Instant::now();
    let key = EventName::from_static("k");
    let id = hub.issue(Some("ann"), t0).unwrap();
    let mut first = hub.attach(id, None, t0).unwrap();
    hub.subscribe(id, &key).unwrap();
    let mut second = hub.attach(id, None, t0).unwrap();
    assert_eq!(
        poll(&mut first, Waker::noop()),
        Some(None),
        "old stream ended"
    );
    drop(first); // must not detach the new stream
    assert_eq!(hub.stats().attached, 1);
    drop(hub.publish(Target::Key(&key), Some(&key), "on key"));
    drop(hub.publish(Target::Name("ann"), None, "on name"));
    let got = drain(&mut second);
    assert_eq!(
        got,
        [
            ("k".into(), "on key".into(), "1".into()),
            ("message".into(), "on name".into(), "2".into())
        ]
    );
}

#[test]
fn last_event_id_replays_exactly_what_was_missed() {
    let hub = Hub::default();
    let t0 = Instant::now();
    let key = EventName::from_static("k");
    let id = hub.issue(Some("ann"), t0).unwrap();
    let other = hub.issue(Some("bob"), t0).unwrap();
    hub.subscribe(id, &key).unwrap();
    let mut stream = hub.attach(id, None, t0).unwrap();
    drop(hub.publish(Target::All, None, "a1"));
    assert_eq!(datas(&drain(&mut stream)), ["a1"]);
    // Frames published while it is connected but unread, and after it dropped, are replayed.
    drop(hub.publish(Target::Client(id), None, "c2"));
    drop(hub.publish(Target::Client(other), None, "not yours"));
    drop(hub.publish(Target::Key(&key), None, "k4"));
    drop(stream);
    drop(hub.publish(Target::Name("ann"), None, "n5"));
    drop(hub.publish(Target::Name("bob"), None, "not yours"));
    drop(hub.publish(Target::All, None, "a7"));
    let mut stream = hub.attach(id, Some("1"), t0).unwrap();
    let got = drain(&mut stream);
    assert_eq!(datas(&got), ["c2", "k4", "n5", "a7"]);
    let ids: Vec<&str> = got.iter().map(|(_, _, id)| id.as_str()).collect();
    assert_eq!(ids, ["2", "4", "5", "7"]);
    // Resuming from the middle gives only the rest, once.
    let mut stream = hub.attach(id, Some("4"), t0).unwrap();
    assert_eq!(datas(&drain(&mut stream)), ["n5", "a7"]);
}

#[test]
fn a_gap_older_than_the_history_gets_a_reset() {
    let hub = small(2, 64);
    let t0 = Instant::now();
    let id = hub.issue(None, t0).unwrap();
    let stream = hub.attach(id, None, t0).unwrap();
    drop(stream);
    for n in 1..=3 {
        drop(hub.publish(Target::All, None, &format!("a{n}")));
    }
    // Events 2 and 3 are still held, 1 is not: resuming after 1 works, from 0 it cannot.
    let mut stream = hub.attach(id, Some("1"), t0).unwrap();
    assert_eq!(datas(&drain(&mut stream)), ["a2", "a3"]);
    let mut stream = hub.attach(id, Some("0"), t0).unwrap();
    assert_eq!(
        drain(&mut stream),
        [("reset".into(), "3".into(), "3".into())]
    );
    // An id from the future (another server's) cannot be resumed either.
    let mut stream = hub.attach(id, Some("99"), t0).unwrap();
    assert_eq!(drain(&mut stream)[0].0, "reset");
    let mut stream = hub.attach(id, Some("garbage"), t0).unwrap();
    assert_eq!(drain(&mut stream)[0].0, "reset");
    assert_eq!(hub.stats().lagged, 3);
}

#[test]
fn the_history_is_bounded_in_bytes_too() {
    let mut config = Config::default();
    config.history_len = 1000;
    // Room for about three frames of 100 bytes of data (each frame is a little larger).
    config.history_bytes = 350;
    let hub = Hub::new(config);
    let t0 = Instant::now();
    let id = hub.issue(None, t0).unwrap();
    drop(hub.attach(id, None, t0).unwrap());
    let data = "x".repeat(100);
    for _ in 1..=10 {
        drop(hub.publish(Target::All, None, &data));
    }
    let held = hub.stats().history;
    assert!((1..=3).contains(&held), "history holds {held} frames");
    // The newest events can still be resumed; an old id gets a reset.
    let mut stream = hub.attach(id, Some("9"), t0).unwrap();
    assert_eq!(drain(&mut stream).len(), 1);
    let mut stream = hub.attach(id, Some("1"), t0).unwrap();
    assert_eq!(drain(&mut stream)[0].0, "reset");
}

#[test]
fn a_slow_consumer_gets_a_reset_and_never_slows_others() {
    let hub = small(4, 3);
    let t0 = Instant::now();
    let slow = hub.issue(None, t0).unwrap();
    let fast = hub.issue(None, t0).unwrap();
    let mut slow_stream = hub.attach(slow, None, t0).unwrap();
    let mut fast_stream = hub.attach(fast, None, t0).unwrap();
    for n in 1..=10 {
        drop(hub.publish(Target::Client(slow), None, &format!("s{n}")));
        drop(hub.publish(Target::All, None, &format!("a{n}")));
        // The fast client reads everything as it comes.
        assert_eq!(datas(&drain(&mut fast_stream)), [format!("a{n}")]);
    }
    assert!(hub.stats().queued <= 3, "queue bounded: {:?}", hub.stats());
    let got = drain(&mut slow_stream);
    assert_eq!(got[0].0, "reset", "{got:?}");
    assert_eq!(got.len(), 1, "a reset replaces what could not be kept");
    assert_eq!(hub.stats().queued, 0);
    // After the reset it carries on normally.
    drop(hub.publish(Target::Client(slow), None, "after"));
    assert_eq!(datas(&drain(&mut slow_stream)), ["after"]);
}

#[test]
fn key_subscribers_get_only_events_after_they_subscribed() {
    let hub = Hub::default();
    let t0 = Instant::now();
    let key = EventName::from_static("k");
    let id = hub.issue(None, t0).unwrap();
    let mut stream = hub.attach(id, None, t0).unwrap();
    assert_eq!(hub.publish(Target::Key(&key), None, "before").recipients, 0);
    assert!(hub.subscribe(id, &key).unwrap());
    assert!(!hub.subscribe(id, &key).unwrap(), "already subscribed");
    assert_eq!(hub.publish(Target::Key(&key), None, "during").recipients, 1);
    assert_eq!(
        datas(&drain(&mut stream)),
        ["during"],
        "read while subscribed"
    );
    drop(hub.publish(Target::Key(&key), None, "unread"));
    assert!(hub.unsubscribe(id, &key).unwrap());
    assert!(!hub.unsubscribe(id, &key).unwrap());
    assert_eq!(hub.publish(Target::Key(&key), None, "after").recipients, 0);
    // Published while subscribed but not read before unsubscribing: no longer delivered, and
    // subscribing again does not bring it back.
    assert!(hub.subscribe(id, &key).unwrap());
    assert_eq!(drain(&mut stream), [], "nothing, and no reset");
    drop(hub.publish(Target::Key(&key), None, "again"));
    assert_eq!(datas(&drain(&mut stream)), ["again"]);
    assert!(hub.unsubscribe(id, &key).unwrap());
    assert_eq!(hub.stats().keys, 0);
    assert_eq!(hub.stats().subscriptions, 0);
    assert_eq!(hub.stats().lagged, 0);
}

#[test]
fn limits_on_clients_and_keys() {
    let mut config = Config::default();
    config.max_clients = 2;
    config.max_keys_per_client = 1;
    let hub = Hub::new(config);
    let t0 = Instant::now();
    let a = hub.issue(None, t0).unwrap();
    hub.issue(None, t0).unwrap();
    assert_eq!(hub.issue(None, t0), Err(Error::Full));
    hub.subscribe(a, &EventName::from_static("one")).unwrap();
    assert_eq!(
        hub.subscribe(a, &EventName::from_static("two")),
        Err(Error::TooManyKeys)
    );
    hub.remove(a).unwrap();
    assert!(hub.issue(None, t0).is_ok(), "room again after a removal");
}

#[test]
fn sweep_removes_detached_after_grace_and_unattached_after_ttl() {
    let mut config = Config::default();
    config.grace = Duration::from_secs(30);
    config.unattached_ttl = Duration::from_secs(10);
    let hub = Hub::new(config);
    let t0 = Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    let never = hub.issue(None, at(0)).unwrap();
    let live = hub.issue(None, at(0)).unwrap();
    let gone = hub.issue(Some("n"), at(0)).unwrap();
    let _live_stream = hub.attach(live, None, at(0)).unwrap();
    let gone_stream = hub.attach(gone, None, at(5)).unwrap();
    let _ = hub.sweep(at(6)).step(usize::MAX); // the hub now knows it is 6 s
    drop(gone_stream); // ended at 6 s or later: the hub cannot tell when
    let removed = |now| {
        let mut sweep = hub.sweep(now);
        futures_lite::future::block_on(sse_registry::drive(&mut sweep, 1));
        sweep.removed()
    };
    // The first sweep after the drop stamps the end with its own time, 10 s.
    assert_eq!(removed(at(10)), 0, "ttl not yet passed");
    assert_eq!(removed(at(11)), 1);
    assert!(!hub.contains(never));
    assert_eq!(removed(at(40)), 0, "grace not yet passed");
    assert_eq!(removed(at(41)), 1);
    assert!(!hub.contains(gone) && hub.contains(live));
    assert_eq!(removed(at(10_000)), 0, "attached clients are never stale");
    assert_eq!(hub.stats().swept, 2);
    assert_eq!(
        hub.publish(Target::Name("n"), None, "x").recipients,
        0,
        "name index cleaned"
    );
}

/// The grace period of a dropped stream counts from no earlier than the drop: not from the
/// latest `now` the hub had seen before it, which may be a whole sweep interval old.
#[test]
fn grace_counts_from_the_first_now_after_a_stream_ends() {
    let mut config = Config::default();
    config.grace = Duration::from_secs(5);
    let hub = Hub::new(config);
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let removed = |now| {
        let mut sweep = hub.sweep(now);
        while sweep.step(1) == Progress::More {}
        sweep.removed()
    };
    // Sweeps every 10 s; the stream ends just before the second one (at 9.9 s, say), when the
    // latest time the hub knows is the first sweep's, 0 s.
    let id = hub.issue(None, at(0)).unwrap();
    let stream = hub.attach(id, None, at(0)).unwrap();
    assert_eq!(removed(at(0)), 0);
    drop(stream);
    let (listed, _) = hub.list(0, 1);
    assert_eq!(listed[0].idle, Duration::ZERO, "not known to be idle yet");
    assert_eq!(
        removed(at(10_000)),
        0,
        "ended no earlier than 10 s as far as the hub knows"
    );
    assert!(hub.contains(id));
    assert_eq!(
        removed(at(15_000)),
        0,
        "5 s of grace have not passed since 10 s"
    );
    assert_eq!(hub.list(0, 1).0[0].idle, Duration::from_secs(5));
    assert_eq!(removed(at(15_001)), 1);
    assert!(!hub.contains(id));

    // A later `now` from another call (an issue at 12 s) shows the stream ended by then: the
    // next sweep starts its grace no earlier than that, and removes it 5 s after at most.
    let id = hub.issue(None, at(15_001)).unwrap();
    let stream = hub.attach(id, None, at(15_001)).unwrap();
    drop(stream);
    hub.issue(None, at(20_000)).unwrap();
    assert_eq!(removed(at(20_000)), 0);
    assert_eq!(removed(at(25_000)), 0);
    assert_eq!(removed(at(25_001)), 1);
    assert!(!hub.contains(id));

    // A stream that ends during a sliced sweep is not judged by that sweep.
    let ids: Vec<_> = (0..4)
        .map(|_| hub.issue(None, at(30_000)).unwrap())
        .collect();
    let mut streams: Vec<_> = ids
        .iter()
        .map(|id| hub.attach(*id, None, at(30_000)).unwrap())
        .collect();
    let mut sweep = hub.sweep(at(40_000));
    assert_eq!(sweep.step(1), Progress::More);
    streams.clear();
    while sweep.step(1) == Progress::More {}
    assert_eq!(sweep.removed(), 0);
    assert_eq!(removed(at(45_000)), 0);
    assert_eq!(removed(at(50_000)), 0, "stamped at 45 s by the sweep after");
    assert_eq!(removed(at(50_001)), 4);
}

/// Any call given a later `now` stamps a dropped stream, not only a stepped sweep: a backend
/// that judges clients by `list` (their idle time) after a bare `sweep(now)` sees it.
#[test]
fn a_later_now_from_any_call_starts_the_grace() {
    let mut config = Config::default();
    config.grace = Duration::from_secs(5);
    let hub = Hub::new(config);
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let id = hub.issue(None, at(0)).unwrap();
    drop(hub.attach(id, None, at(0)).unwrap());
    let idle = || hub.list(0, 1).0[0].idle;
    assert_eq!(idle(), Duration::ZERO);
    drop(hub.sweep(at(10_000))); // never stepped
    assert_eq!(idle(), Duration::ZERO, "ended no earlier than 10 s");
    let _ = hub.attach(hub.issue(None, at(12_000)).unwrap(), None, at(12_000));
    assert_eq!(idle(), Duration::from_secs(2));
    drop(hub.sweep(at(16_000)));
    assert_eq!(idle(), Duration::from_secs(6));
}

/// `ClientStream::close` detaches as of the given time: the grace period counts from it.
#[test]
fn a_closed_stream_is_stamped_with_the_time_it_was_closed() {
    let mut config = Config::default();
    config.grace = Duration::from_secs(5);
    let hub = Hub::new(config);
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let id = hub.issue(None, at(0)).unwrap();
    let mut stream = hub.attach(id, None, at(0)).unwrap();
    assert_eq!(poll(&mut stream, Waker::noop()), None);
    stream.close(at(9_900));
    assert_eq!(hub.stats().attached, 0);
    assert_eq!(hub.list(0, 1).0[0].idle, Duration::ZERO);
    let mut sweep = hub.sweep(at(14_900));
    while sweep.step(16) == Progress::More {}
    assert_eq!(sweep.removed(), 0);
    let mut sweep = hub.sweep(at(14_901));
    while sweep.step(16) == Progress::More {}
    assert_eq!(sweep.removed(), 1);
    // Closing a stream that was replaced detaches nothing.
    let id = hub.issue(None, at(20_000)).unwrap();
    let old = hub.attach(id, None, at(20_000)).unwrap();
    let _new = hub.attach(id, None, at(20_000)).unwrap();
    old.close(at(20_000));
    assert_eq!(hub.stats().attached, 1);
}

#[test]
fn clients_sharing_a_name_are_limited() {
    let mut config = Config::default();
    assert_eq!(config.max_name_members, 64, "the default");
    config.max_name_members = 3;
    let hub = Hub::new(config);
    let t0 = Instant::now();
    let tabs: Vec<_> = (0..3)
        .map(|_| hub.issue(Some("ann"), t0).unwrap())
        .collect();
    assert_eq!(hub.issue(Some("ann"), t0), Err(Error::NameFull));
    assert_eq!(
        hub.import(sse_registry::ClientId::random(), Some("ann"), t0),
        Err(Error::NameFull)
    );
    assert_eq!(
        hub.import(tabs[0], Some("ann"), t0),
        Ok(false),
        "a known id is no new client"
    );
    assert_eq!(
        Error::NameFull.to_string(),
        "too many clients with this name"
    );
    // Other names, and clients without one, are not concerned.
    hub.issue(Some("bob"), t0).unwrap();
    for _ in 0..5 {
        hub.issue(None, t0).unwrap();
    }
    assert_eq!(hub.stats().clients, 9);
    // A publish to the name reaches its 3 clients; once one goes, there is room for another.
    assert_eq!(hub.publish(Target::Name("ann"), None, "x").recipients, 3);
    hub.remove(tabs[1]).unwrap();
    let again = hub.issue(Some("ann"), t0).unwrap();
    assert_eq!(hub.name(again).unwrap().as_deref(), Some("ann"));
    assert_eq!(hub.issue(Some("ann"), t0), Err(Error::NameFull));
    assert_eq!(hub.publish(Target::Name("ann"), None, "y").recipients, 3);
}

#[test]
fn broadcast_wakes_in_slices_and_clear_ends_every_stream() {
    let hub = Hub::default();
    let t0 = Instant::now();
    let (wakes, waker) = counter();
    let mut streams: Vec<ClientStream> = (0..10)
        .map(|_| hub.attach(hub.issue(None, t0).unwrap(), None, t0).unwrap())
        .collect();
    for s in &mut streams {
        assert_eq!(poll(s, &waker), None);
    }
    let mut publish = hub.publish(Target::All, None, "hi");
    assert_eq!(publish.recipients, 10);
    let mut steps = 1;
    while publish.wake.step(3) == Progress::More {
        steps += 1;
    }
    // Slices cover slots (the slab may have spare ones), at most 3 clients each.
    assert!(steps >= 4, "10 clients in slices of 3 took {steps} steps");
    assert_eq!(wakes.0.load(Ordering::SeqCst), 10);
    for s in &mut streams {
        assert_eq!(datas(&drain(s)), ["hi"]);
        assert_eq!(poll(s, &waker), None);
    }
    let mut clear = hub.clear();
    while clear.step(4) == Progress::More {}
    assert_eq!(clear.removed(), 10);
    assert_eq!(
        wakes.0.load(Ordering::SeqCst),
        20,
        "every stream woken to end"
    );
    for s in &mut streams {
        assert_eq!(poll(s, &waker), Some(None));
    }
    assert_eq!(hub.stats().clients, 0);
    assert_eq!(hub.stats().swept, 0, "clear is not a stale sweep");
}

#[test]
fn list_pages_and_reports_state() {
    let hub = Hub::default();
    let t0 = Instant::now();
    let ids: Vec<_> = (0..5).map(|_| hub.issue(Some("x"), t0).unwrap()).collect();
    let _s = hub
        .attach(ids[1], None, t0 + Duration::from_secs(2))
        .unwrap();
    let (page, next) = hub.list(0, 3);
    assert_eq!(page.len(), 3);
    let (rest, end) = hub.list(next.unwrap(), 3);
    assert_eq!(rest.len(), 2);
    assert_eq!(end, None);
    let all: Vec<_> = page.iter().chain(&rest).collect();
    assert_eq!(all.iter().map(|c| c.id).collect::<Vec<_>>(), ids);
    assert!(all[1].attached && !all[0].attached);
    assert_eq!(all[0].idle, Duration::from_secs(2));
    assert_eq!(all[1].idle, Duration::ZERO);
    // Queue depth: two events to one client, one to everyone (shared, not in its queue); what
    // the stream reads leaves the queue.
    let mut s = _s;
    drop(hub.publish(Target::Client(ids[1]), None, "a"));
    drop(hub.publish(Target::Client(ids[1]), None, "b"));
    drop(hub.publish(Target::All, None, "c"));
    let queued = |hub: &Hub| {
        hub.list(0, 5)
            .0
            .iter()
            .map(|c| c.queued)
            .collect::<Vec<_>>()
    };
    assert_eq!(queued(&hub), [0, 2, 0, 0, 0]);
    assert_eq!(datas(&drain(&mut s)), ["a", "b", "c"]);
    assert_eq!(queued(&hub), [0, 0, 0, 0, 0]);
}

#[test]
fn lagged_counts_resets_delivered() {
    let hub = small(4, 2);
    let t0 = Instant::now();
    let id = hub.issue(None, t0).unwrap();
    drop(hub.attach(id, None, t0).unwrap());
    // Unusable ids, attached again and again without reading: one reset is due, none delivered.
    for bad in ["garbage", "99", "garbage"] {
        let stream = hub.attach(id, Some(bad), t0).unwrap();
        assert_eq!(stream.resumes_after(), 0);
    }
    assert_eq!(hub.stats().lagged, 0, "no reset delivered yet");
    let mut stream = hub.attach(id, Some("junk"), t0).unwrap();
    assert_eq!(
        drain(&mut stream),
        [("reset".into(), "0".into(), "0".into())]
    );
    assert_eq!(hub.stats().lagged, 1, "one reset delivered");
    // A slow consumer (its queue overflows twice) that then reattaches with an unusable id
    // still gets one reset, counted once.
    for n in 1..=4 {
        drop(hub.publish(Target::Client(id), None, &format!("c{n}")));
    }
    drop(stream);
    let mut stream = hub.attach(id, Some("junk"), t0).unwrap();
    assert_eq!(
        drain(&mut stream),
        [("reset".into(), "4".into(), "4".into())]
    );
    assert_eq!(hub.stats().lagged, 2);
    // Falling behind the shared history, found when polling, is counted when delivered too.
    for n in 5..=9 {
        drop(hub.publish(Target::All, None, &format!("a{n}")));
    }
    assert_eq!(hub.stats().lagged, 2);
    assert_eq!(
        drain(&mut stream),
        [("reset".into(), "9".into(), "9".into())]
    );
    assert_eq!(hub.stats().lagged, 3);
}

#[test]
fn a_stream_that_starts_with_a_reset_resumes_after_the_head() {
    let hub = small(64, 2);
    let t0 = Instant::now();
    let id = hub.issue(None, t0).unwrap();
    let mut stream = hub.attach(id, None, t0).unwrap();
    drop(hub.publish(Target::All, None, "a1"));
    assert_eq!(datas(&drain(&mut stream)), ["a1"]);
    // Resumable: the stream resumes after the Last-Event-ID.
    drop(hub.publish(Target::All, None, "a2"));
    let mut stream = hub.attach(id, Some("1"), t0).unwrap();
    assert_eq!(stream.resumes_after(), 1);
    assert_eq!(datas(&drain(&mut stream)), ["a2"]);
    // Its queue overflows before it reads: it lags, and the history still holds everything
    // after its Last-Event-ID, yet it must start with a reset, at the head.
    for n in 3..=5 {
        drop(hub.publish(Target::Client(id), None, &format!("c{n}")));
    }
    let mut stream = hub.attach(id, Some("2"), t0).unwrap();
    assert_eq!(stream.resumes_after(), 5, "a reset starts at the present");
    assert_eq!(
        drain(&mut stream),
        [("reset".into(), "5".into(), "5".into())]
    );
    // The same without a Last-Event-ID, and with an unusable one.
    for n in 6..=8 {
        drop(hub.publish(Target::Client(id), None, &format!("c{n}")));
    }
    assert_eq!(hub.attach(id, Some("5"), t0).unwrap().resumes_after(), 8);
    assert_eq!(hub.attach(id, None, t0).unwrap().resumes_after(), 8);
    assert_eq!(hub.attach(id, Some("9"), t0).unwrap().resumes_after(), 8);
}

#[test]
fn a_sweep_step_counts_a_removal_as_16_visits() {
    let hub = Hub::default();
    let t0 = Instant::now();
    let ids: Vec<_> = (0..40).map(|_| hub.issue(None, t0).unwrap()).collect();
    let _kept = hub.attach(ids[0], None, t0).unwrap();
    let later = t0 + Duration::from_secs(3600);
    // Nothing stale yet: one step of 64 scans all 40 (and any spare slots up to 64).
    let mut sweep = hub.sweep(t0);
    assert_eq!(sweep.step(64), Progress::Done);
    // Client 0 stays (1 unit), then 16 units a removal: 3 fit in a budget of 64 after it, 4 in
    // each later step.
    let mut sweep = hub.sweep(later);
    assert_eq!(sweep.step(64), Progress::More);
    assert_eq!(sweep.removed(), 3);
    assert_eq!(sweep.step(64), Progress::More);
    assert_eq!(sweep.removed(), 7);
    // A budget under 16 still removes one client a step.
    assert_eq!(sweep.step(1), Progress::More);
    assert_eq!(sweep.removed(), 8);
    let mut steps = 0;
    while sweep.step(64) == Progress::More {
        steps += 1;
    }
    assert_eq!(sweep.removed(), 39);
    assert!(
        steps >= 7,
        "31 removals at 4 a step took {steps} more steps"
    );
    assert_eq!(hub.stats().clients, 1);
}

/// A waker that logs its stream's index when woken.
struct Logged(usize, Arc<std::sync::Mutex<Vec<usize>>>);

impl Wake for Logged {
    fn wake(self: Arc<Self>) {
        self.1.lock().unwrap().push(self.0);
    }
}

/// `n` clients and their attached streams, each polled once with a waker that logs its index
/// into `log`.
fn logged_streams(
    hub: &Hub,
    n: usize,
    log: &Arc<std::sync::Mutex<Vec<usize>>>,
) -> (Vec<ClientId>, Vec<ClientStream>) {
    let t0 = Instant::now();
    let ids: Vec<ClientId> = (0..n).map(|_| hub.issue(None, t0).unwrap()).collect();
    let mut streams: Vec<ClientStream> = ids
        .iter()
        .map(|&id| hub.attach(id, None, t0).unwrap())
        .collect();
    register(&mut streams, log);
    (ids, streams)
}

fn register(streams: &mut [ClientStream], log: &Arc<std::sync::Mutex<Vec<usize>>>) {
    for (i, s) in streams.iter_mut().enumerate() {
        let waker = Waker::from(Arc::new(Logged(i, log.clone())));
        assert_eq!(poll(s, &waker), None);
    }
}

#[test]
fn queued_wakes_run_in_publish_order_one_event_after_another() {
    let hub = Hub::default();
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (ids, mut streams) = logged_streams(&hub, 8, &log);
    let (a, b) = (EventName::from_static("a"), EventName::from_static("b"));
    for (i, &id) in ids.iter().enumerate() {
        hub.subscribe(id, if i < 4 { &a } else { &b }).unwrap();
    }
    // Each publish wakes one recipient at once (a key's members from the last subscribed).
    let first = hub.publish(Target::Key(&a), None, "to a");
    let task = hub
        .queue_wake(first.wake, 1)
        .expect("the first publish starts the task");
    let second = hub.publish(Target::Key(&b), None, "to b");
    assert!(
        hub.queue_wake(second.wake, 1).is_none(),
        "the running task takes the second publish too"
    );
    assert_eq!(*log.lock().unwrap(), [3, 7]);
    futures_lite::future::block_on(task);
    // All of a's before any more of b's: first come, first served.
    assert_eq!(*log.lock().unwrap(), [3, 7, 2, 1, 0, 6, 5, 4]);
    for (i, s) in streams.iter_mut().enumerate() {
        assert_eq!(datas(&drain(s)), [if i < 4 { "to a" } else { "to b" }]);
    }
    // A publish to one client is woken in the call: no task.
    register(&mut streams, &log);
    let one = hub.publish(Target::Client(ids[5]), None, "just you");
    assert!(hub.queue_wake(one.wake, 1).is_none());
    assert_eq!(log.lock().unwrap().last(), Some(&5));
}

#[test]
fn a_dropped_queue_task_wakes_what_it_held_and_the_next_publish_starts_another() {
    let hub = Hub::default();
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (_, mut streams) = logged_streams(&hub, 3, &log);
    let published = hub.publish(Target::All, None, "one");
    let task = hub.queue_wake(published.wake, 1).expect("a task to spawn");
    assert_eq!(log.lock().unwrap().len(), 1);
    drop(task);
    assert_eq!(
        log.lock().unwrap().len(),
        3,
        "the queued recipients are woken at once"
    );
    for s in &mut streams {
        assert_eq!(datas(&drain(s)), ["one"]);
    }
    register(&mut streams, &log);
    let published = hub.publish(Target::All, None, "two");
    let task = hub
        .queue_wake(published.wake, 1)
        .expect("a new task, not a stuck queue");
    futures_lite::future::block_on(task);
    assert_eq!(log.lock().unwrap().len(), 6);
}

/// The counts a metrics exporter reads: issued, removed (on request, by a clear, by a sweep),
/// replaced and resumed streams, frames delivered, and events by the kind of their target.
#[test]
fn stats_count_what_happened() {
    let hub = Hub::default();
    let t0 = Instant::now();
    let key = EventName::from_static("news");
    let (a, b, c) = (
        hub.issue(Some("n"), t0).unwrap(),
        hub.issue(None, t0).unwrap(),
        hub.issue(None, t0).unwrap(),
    );
    hub.subscribe(a, &key).unwrap();
    let first = hub.attach(a, None, t0).unwrap();
    drop(hub.publish(Target::All, None, "1"));
    drop(hub.publish(Target::Key(&key), None, "2"));
    drop(hub.publish(Target::Name("n"), None, "3"));
    drop(hub.publish(Target::Client(a), None, "4"));
    drop(hub.publish(Target::Client(b), None, "to b"));
    // Replaced, resuming after the first event: it gets 2, 3 and 4.
    let mut again = hub.attach(a, Some("1"), t0).unwrap();
    drop(first);
    assert_eq!(datas(&drain(&mut again)), ["2", "3", "4"]);
    // Not resumable: a reset, which counts as delivered and as lagged, not as resumed.
    let mut other = hub.attach(b, Some("junk"), t0).unwrap();
    assert_eq!(drain(&mut other).len(), 1);
    hub.remove(c).unwrap();
    let stats = hub.stats();
    assert_eq!(stats.issued, 3);
    assert_eq!(stats.removed, 1);
    assert_eq!(stats.replaced, 1);
    assert_eq!(stats.resumed, 1);
    assert_eq!(stats.lagged, 1);
    assert_eq!(stats.delivered, 4);
    let to = stats.published_to;
    assert_eq!((to.client, to.name, to.key, to.all), (2, 1, 1, 1));
    assert_eq!(to.client + to.name + to.key + to.all, stats.published);
    // A clear removes on request; a stale sweep counts as swept.
    hub.issue(None, t0).unwrap();
    let mut sweep = hub.sweep(t0 + Duration::from_secs(24 * 3600));
    while sweep.step(1_000) == Progress::More {}
    assert_eq!(hub.stats().swept, 1, "the client that never attached");
    drop((again, other));
    let mut clear = hub.clear();
    while clear.step(1_000) == Progress::More {}
    let stats = hub.stats();
    assert_eq!((stats.removed, stats.clients, stats.issued), (3, 0, 4));
}
