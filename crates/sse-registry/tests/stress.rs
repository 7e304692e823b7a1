//! Multi-threaded stress test of the hub, with std threads and no runtime.
//!
//! * Sender threads publish to everyone, to keys, to names and to single clients, waking the
//!   recipients at once or stepping the wake cursor in small slices with yields in between.
//! * Reader threads each own one long-lived client: they read with a blocking poll loop (the
//!   waker unparks the thread), then drop the stream and reattach with the id of the last frame
//!   they read, sometimes by attaching the new stream before dropping the old one
//!   (reconnect-replace).
//! * A churn thread issues ids that never attach (the sweeper forgets them after the short
//!   `unattached_ttl`) and "doomed" clients that attach and read until their stream ends; a
//!   killer (the sweeper thread) removes each doomed client or replaces its stream, which must
//!   wake and end the reader's stream.
//! * The sweeper thread advances the fake clock and steps sweeps in small slices, reading the
//!   stats and the admin list as it goes.
//!
//! Everything is bounded by counts, not time. At the end each reader must have received every
//! event addressed to its client exactly once, in order, with no reset (the configuration holds
//! every event), and no event addressed to anyone else. A watchdog panics if the threads are not
//! all done after 60 s (a lost wakeup parks a thread forever; a deadlock never ends).

use std::collections::BTreeSet;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_core::Stream;
use sse_codec::{Event, EventName, Item, Parser};
use sse_registry::{ClientId, ClientStream, Config, DEFAULT_SLICE, Hub, Progress, Slice, Target};

const SENDERS: usize = 4;
const PER_SENDER: usize = 5_000;
const READERS: usize = 6;
const DOOMED: usize = 300;
const SWEEPS: u64 = 3_000;
/// Most frames a reader reads from one stream before it reconnects.
const READS_PER_STREAM: u64 = 40;
const WATCHDOG: Duration = Duration::from_secs(60);

const NAMES: [&str; 3] = ["ann", "bob", "zed"];
const KEYS: [EventName; 4] = [
    EventName::from_static("k0"),
    EventName::from_static("k1"),
    EventName::from_static("k2"),
    EventName::from_static("nobody"),
];
const DONE: EventName = EventName::from_static("done");

/// A tiny deterministic generator (xorshift64*), one per thread.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// The fake clock shared by every thread: a fixed base plus an offset in milliseconds.
#[derive(Clone)]
struct Clock {
    base: Instant,
    offset: Arc<AtomicU64>,
}

impl Clock {
    fn now(&self) -> Instant {
        self.base + Duration::from_millis(self.offset.load(Ordering::SeqCst))
    }

    fn tick(&self) {
        self.offset.fetch_add(1, Ordering::SeqCst);
    }
}

/// Unparks the thread that polled.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

fn thread_waker() -> Waker {
    Waker::from(Arc::new(Unpark(thread::current())))
}

/// The next frame, parking the thread until woken; `None` when the stream ended.
fn next_blocking(stream: &mut ClientStream, waker: &Waker) -> Option<Bytes> {
    let mut cx = Context::from_waker(waker);
    loop {
        match Pin::new(&mut *stream).poll_next(&mut cx) {
            Poll::Ready(frame) => return frame,
            // A spurious unpark only costs another poll.
            Poll::Pending => thread::park(),
        }
    }
}

fn parse(frame: Bytes) -> Event {
    let mut parser = Parser::new();
    parser.push(frame);
    match parser.next() {
        Some(Ok(Item::Event(event))) => event,
        other => panic!("not an event frame: {other:?}"),
    }
}

/// Where a sender published an event.
#[derive(Debug, Clone, Copy)]
enum Sent {
    All,
    Key(usize),
    Name(usize),
    Client(usize),
}

/// A reader's client.
struct Reader {
    id: ClientId,
    name: Option<usize>,
    keys: Vec<usize>,
}

impl Reader {
    fn addressed(&self, index: usize, sent: Sent) -> bool {
        match sent {
            Sent::All => true,
            Sent::Key(k) => self.keys.contains(&k),
            Sent::Name(n) => self.name == Some(n),
            Sent::Client(c) => c == index,
        }
    }
}

/// What a reader thread saw.
struct Report {
    received: Vec<u64>,
    resets: usize,
    reconnects: usize,
}

fn read_client(hub: Hub, clock: Clock, id: ClientId, first: ClientStream, seed: u64) -> Report {
    let waker = thread_waker();
    let mut rng = Rng::new(seed);
    let mut stream = first;
    let mut last: Option<u64> = None;
    let mut report = Report {
        received: Vec::new(),
        resets: 0,
        reconnects: 0,
    };
    loop {
        for _ in 0..=rng.below(READS_PER_STREAM) {
            let Some(frame) = next_blocking(&mut stream, &waker) else {
                panic!("the stream of a live client ended");
            };
            let event = parse(frame);
            let seq: u64 = event.last_event_id().parse().expect("numeric id");
            assert!(
                last.is_none_or(|last| seq > last),
                "event {seq} after {last:?}: duplicate or out of order"
            );
            last = Some(seq);
            match event.event_type() {
                "reset" => report.resets += 1,
                "done" => return report,
                _ => report.received.push(seq),
            }
        }
        // Reconnect with the id of the last frame read.
        let last_event_id = last.map(|seq| seq.to_string());
        let reattach = |hub: &Hub| {
            hub.attach(id, last_event_id.as_deref(), clock.now())
                .expect("a live client attaches")
        };
        if rng.below(3) == 0 {
            // Reconnect-replace: the new stream exists before the old one is dropped.
            let new = reattach(&hub);
            drop(std::mem::replace(&mut stream, new));
        } else {
            drop(stream);
            stream = reattach(&hub);
        }
        report.reconnects += 1;
    }
}

fn send(hub: Hub, sender: usize, readers: Arc<Vec<Reader>>) -> Vec<(u64, Sent)> {
    let mut rng = Rng::new(1000 + sender as u64);
    let mut log = Vec::with_capacity(PER_SENDER);
    for n in 0..PER_SENDER {
        let sent = match rng.below(4) {
            0 => Sent::All,
            1 => Sent::Key(rng.below(KEYS.len() as u64) as usize),
            2 => Sent::Name(rng.below(NAMES.len() as u64) as usize),
            _ => Sent::Client(rng.below(readers.len() as u64) as usize),
        };
        let target = match sent {
            Sent::All => Target::All,
            Sent::Key(k) => Target::Key(&KEYS[k]),
            Sent::Name(name) => Target::Name(NAMES[name]),
            Sent::Client(c) => Target::Client(readers[c].id),
        };
        let published = hub.publish(target, None, &format!("s{sender}-{n}"));
        log.push((published.seq, sent));
        match rng.below(3) {
            0 => drop(published.wake),
            1 => {
                let mut wake = published.wake;
                while wake.step(1 + rng.below(3) as usize) == Progress::More {
                    thread::yield_now();
                }
            }
            _ => {
                let mut wake = published.wake;
                while wake.step(DEFAULT_SLICE) == Progress::More {}
            }
        }
        if n % 64 == 0 {
            thread::yield_now();
        }
    }
    log
}

/// Issues idle ids and doomed clients; reads each doomed stream until it ends.
fn churn(hub: Hub, clock: Clock, killer: mpsc::Sender<ClientId>) -> (Vec<ClientId>, usize) {
    let waker = thread_waker();
    let mut idle = Vec::new();
    let mut ended = 0;
    for _ in 0..DOOMED {
        for _ in 0..2 {
            idle.push(
                hub.issue(Some("zed"), clock.now())
                    .expect("room for idle ids"),
            );
        }
        let id = hub.issue(Some("zed"), clock.now()).expect("room");
        // The sweeper may forget the id before it attaches (its TTL is short): that is fine.
        let Ok(mut stream) = hub.attach(id, None, clock.now()) else {
            continue;
        };
        killer.send(id).expect("the killer is listening");
        let mut frames = 0_usize;
        while next_blocking(&mut stream, &waker).is_some() {
            frames += 1;
            assert!(frames < 1_000_000, "a doomed stream never ends");
        }
        ended += 1;
    }
    (idle, ended)
}

/// Advances the clock and sweeps in slices; removes or replaces doomed clients as they come.
fn sweep(hub: Hub, clock: Clock, doomed: mpsc::Receiver<ClientId>) -> usize {
    let mut rng = Rng::new(7);
    let mut replacements = Vec::new();
    let mut kill = |id: ClientId, rng: &mut Rng| {
        if rng.below(2) == 0 {
            hub.remove(id)
                .expect("doomed clients are attached, not swept");
        } else {
            // Reconnect-replace from elsewhere: the doomed stream must end.
            replacements.push(hub.attach(id, None, clock.now()).expect("attached"));
        }
    };
    let mut removed = 0;
    for n in 0..SWEEPS {
        clock.tick();
        let mut sweep = hub.sweep(clock.now());
        while sweep.step(1 + rng.below(8) as usize) == Progress::More {
            if rng.below(4) == 0 {
                thread::yield_now();
            }
        }
        removed += sweep.removed();
        if n % 16 == 0 {
            let stats = hub.stats();
            assert!(stats.attached <= stats.clients, "{stats:?}");
            let (page, _) = hub.list(rng.below(64) as usize, 8);
            assert!(page.len() <= 8);
        }
        while let Ok(id) = doomed.try_recv() {
            kill(id, &mut rng);
        }
    }
    // The churn thread may still be waiting for its last doomed streams to end.
    for id in doomed {
        kill(id, &mut rng);
    }
    drop(replacements);
    removed
}

/// Waits until every handle is finished, or panics naming those that are not after `WATCHDOG`.
fn watchdog<T>(what: &str, handles: &[(String, &JoinHandle<T>)]) {
    let tick = Duration::from_millis(10);
    let ticks = WATCHDOG.as_millis() / tick.as_millis();
    for _ in 0..ticks {
        if handles.iter().all(|(_, h)| h.is_finished()) {
            return;
        }
        thread::sleep(tick);
    }
    let stuck: Vec<&str> = handles
        .iter()
        .filter(|(_, h)| !h.is_finished())
        .map(|(name, _)| name.as_str())
        .collect();
    panic!("{what}: threads not done after {WATCHDOG:?} (deadlock or lost wakeup): {stuck:?}");
}

fn named<'a, T>(prefix: &str, handles: &'a [JoinHandle<T>]) -> Vec<(String, &'a JoinHandle<T>)> {
    handles
        .iter()
        .enumerate()
        .map(|(i, handle)| (format!("{prefix}{i}"), handle))
        .collect()
}

fn join<T>(handle: JoinHandle<T>) -> T {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

#[test]
fn concurrent_senders_readers_sweeper_and_churn() {
    let events = SENDERS * PER_SENDER;
    let mut config = Config::default();
    // Large enough that no reader ever falls behind: any reset is a failure.
    config.queue_capacity = events + 16;
    config.history_len = events + 16;
    config.history_bytes = 64 << 20;
    config.grace = Duration::from_secs(24 * 3600);
    config.unattached_ttl = Duration::from_millis(20);
    // The churn thread piles idle ids onto one name: not the name limit's test.
    config.max_name_members = usize::MAX;
    let hub = Hub::new(config);
    let clock = Clock {
        base: Instant::now(),
        offset: Arc::new(AtomicU64::new(0)),
    };

    // Readers' clients, subscribed and attached before anything is published.
    let mut readers = Vec::new();
    let mut first_streams = Vec::new();
    for r in 0..READERS {
        let name = [Some(0), Some(1), None][r % 3];
        let id = hub.issue(name.map(|n| NAMES[n]), clock.now()).unwrap();
        let keys: Vec<usize> = (0..3).filter(|k| (r >> k) & 1 == 1).collect();
        for &k in &keys {
            hub.subscribe(id, &KEYS[k]).unwrap();
        }
        first_streams.push(hub.attach(id, None, clock.now()).unwrap());
        readers.push(Reader { id, name, keys });
    }
    let readers = Arc::new(readers);

    let start = Arc::new(Barrier::new(SENDERS + 1));
    let reader_threads: Vec<JoinHandle<Report>> = first_streams
        .into_iter()
        .enumerate()
        .map(|(r, stream)| {
            let (hub, clock, id) = (hub.clone(), clock.clone(), readers[r].id);
            thread::spawn(move || read_client(hub, clock, id, stream, r as u64))
        })
        .collect();
    let sender_threads: Vec<JoinHandle<Vec<(u64, Sent)>>> = (0..SENDERS)
        .map(|s| {
            let (hub, readers, start) = (hub.clone(), readers.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                send(hub, s, readers)
            })
        })
        .collect();
    let (to_killer, doomed) = mpsc::channel();
    let churn_thread = {
        let (hub, clock) = (hub.clone(), clock.clone());
        thread::spawn(move || churn(hub, clock, to_killer))
    };
    let sweeper_thread = {
        let (hub, clock) = (hub.clone(), clock.clone());
        thread::spawn(move || sweep(hub, clock, doomed))
    };
    start.wait();

    watchdog("senders", &named("sender", &sender_threads));
    let logs: Vec<Vec<(u64, Sent)>> = sender_threads.into_iter().map(join).collect();

    // Everything is published: tell each reader to stop once it has read up to here.
    for reader in readers.iter() {
        drop(hub.publish(Target::Client(reader.id), Some(&DONE), "done"));
    }
    watchdog("readers", &named("reader", &reader_threads));
    watchdog("churn", &[("churn".to_owned(), &churn_thread)]);
    watchdog("sweeper", &[("sweeper".to_owned(), &sweeper_thread)]);
    let reports: Vec<Report> = reader_threads.into_iter().map(join).collect();
    let (idle, doomed_ended) = join(churn_thread);
    let swept_during = join(sweeper_thread);

    // Every event published exactly once, with distinct ids.
    let all: BTreeSet<u64> = logs.iter().flatten().map(|(seq, _)| *seq).collect();
    assert_eq!(all.len(), events, "sequence numbers are unique");

    for (r, (reader, report)) in readers.iter().zip(&reports).enumerate() {
        let expected: Vec<u64> = logs
            .iter()
            .flatten()
            .filter(|(_, sent)| reader.addressed(r, *sent))
            .map(|(seq, _)| *seq)
            .collect::<BTreeSet<u64>>()
            .into_iter()
            .collect();
        assert_eq!(
            report.resets, 0,
            "reader {r}: no reset with a large configuration"
        );
        assert!(
            report.reconnects > 10,
            "reader {r} reconnected {} times",
            report.reconnects
        );
        if report.received != expected {
            let got: BTreeSet<u64> = report.received.iter().copied().collect();
            let want: BTreeSet<u64> = expected.iter().copied().collect();
            let missing: Vec<_> = want.difference(&got).take(10).collect();
            let extra: Vec<_> = got.difference(&want).take(10).collect();
            panic!(
                "reader {r}: got {} events, expected {}; missing {missing:?}, not addressed \
                 {extra:?}",
                report.received.len(),
                expected.len()
            );
        }
    }
    assert!(
        doomed_ended > DOOMED / 2,
        "only {doomed_ended} doomed streams ended"
    );

    // Whatever is left (detached readers, replacements, idle ids) goes once time has passed:
    // the first sweep stamps the streams dropped since the clock last moved (their grace starts
    // at its time), the second one, a grace period later, removes them.
    let grace = Duration::from_secs(24 * 3600) + Duration::from_millis(1);
    let later = clock.now() + grace;
    let mut sweep = hub.sweep(later);
    while sweep.step(16) == Progress::More {}
    let mut sweep = hub.sweep(later + grace);
    while sweep.step(16) == Progress::More {}
    let stats = hub.stats();
    assert_eq!(
        (stats.clients, stats.attached, stats.queued, stats.lagged),
        (0, 0, 0, 0),
        "{stats:?}"
    );
    assert!(idle.iter().all(|id| !hub.contains(*id)));
    assert!(
        swept_during > 0,
        "the sweeper forgot idle ids while everything ran"
    );
}
