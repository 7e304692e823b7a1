//! Delivery throughput with one and two polling threads, and the hub's lock acquisitions and
//! hold time per delivered event.
//!
//! 10,000 clients are issued, attached and polled once (each stream's waker registered). Each
//! round publishes one 100-byte event to everyone, wakes every stream (the `Wake` dropped), then
//! the polling threads (started together by a barrier) each read their share of the streams: one poll that gives the frame, one
//! that finds nothing more (`Pending`, which registers the waker again), as a server's response
//! body does. The *delivery* time of a round is from the first thread's start to the last one's
//! end, as the threads time themselves;
//! throughput is frames delivered per second of delivery time (median round). As the machine
//! may be shared, it also prints the CPU time the polling threads ran per frame delivered (the
//! cost, which contention raises), and *CPUs busy*, their CPU time over the delivery time: a
//! two-thread run that shows about 1 had one CPU only, whatever the code.
//!
//! With the `lock-stats` feature the hub counts its lock acquisitions and the time it is held:
//! `cargo bench -p sse-registry --bench contention --features lock-stats` prints them per
//! delivered event, over all rounds, publish and wake-up included. The counting reads the clock
//! twice an acquisition, so take throughput from a run without the feature:
//! `cargo bench -p sse-registry --bench contention`.
//!
//! Without `--bench` (as when `cargo test --all-targets` runs it) it runs a few rounds as a smoke
//! test; every check (each stream woken each round, each frame read) still asserts.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use futures_core::Stream;
use sse_registry::{ClientStream, Config, Hub, Target};

/// Clients in the hub.
const CLIENTS: usize = 10_000;

/// A waker that counts its wakes; one per polling thread.
struct Counter(AtomicUsize);

impl Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// What one run (one thread count) measured.
struct Measured {
    threads: usize,
    rounds: usize,
    /// Delivery time of each round.
    delivery: Vec<Duration>,
    /// CPU time the polling threads ran, over all rounds.
    cpu: Duration,
    /// Lock acquisitions and time held over the run (`lock-stats` feature), per delivered event:
    /// the state's lock, then the wakers' locks.
    #[cfg(feature = "lock-stats")]
    locks: [f64; 4],
}

/// CPU time this thread has run (`/proc/thread-self/schedstat`, first field); 0 when unknown.
fn thread_cpu() -> Duration {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    Duration::from_nanos(
        text.split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
    )
}

fn median(values: &[Duration]) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

/// Polls each stream twice: the frame of the round (checked by its length), then `Pending`.
fn read(streams: &mut [ClientStream], cx: &mut Context<'_>, expected: usize) {
    for stream in streams {
        match Pin::new(&mut *stream).poll_next(cx) {
            Poll::Ready(Some(frame)) => assert_eq!(frame.len(), expected, "the round's frame"),
            other => panic!("expected a frame, got {other:?}"),
        }
        assert!(
            Pin::new(&mut *stream).poll_next(cx).is_pending(),
            "one frame a round"
        );
    }
}

fn run(threads: usize, rounds: usize) -> Measured {
    let mut config = Config::default();
    config.max_clients = CLIENTS;
    let hub = Hub::new(config);
    let now = Instant::now();
    let mut streams: Vec<ClientStream> = (0..CLIENTS)
        .map(|_| {
            hub.attach(hub.issue(None, now).unwrap(), None, now)
                .unwrap()
        })
        .collect();
    let data = "x".repeat(100);
    let per_thread = CLIENTS.div_ceil(threads);
    let counters: Vec<Arc<Counter>> = (0..threads)
        .map(|_| Arc::new(Counter(AtomicUsize::new(0))))
        .collect();
    for (chunk, counter) in streams.chunks_mut(per_thread).zip(&counters) {
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        for stream in chunk {
            assert!(Pin::new(stream).poll_next(&mut cx).is_pending());
        }
    }
    let start = Barrier::new(threads + 1);
    let end = Barrier::new(threads + 1);
    let mut delivery = Vec::with_capacity(rounds);
    #[cfg(feature = "lock-stats")]
    let before = hub.lock_stats();
    let ran: Vec<(Vec<(Instant, Instant)>, Duration)> = std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for (chunk, counter) in streams.chunks_mut(per_thread).zip(&counters) {
            let (start, end) = (&start, &end);
            let waker = Waker::from(counter.clone());
            handles.push(scope.spawn(move || {
                let mut cx = Context::from_waker(&waker);
                let mut times = Vec::with_capacity(rounds);
                let cpu = thread_cpu();
                for seq in 1..=rounds {
                    let expected = format!("id: {seq}\ndata: {}\n\n", "x".repeat(100)).len();
                    start.wait();
                    let started = Instant::now();
                    read(chunk, &mut cx, expected);
                    times.push((started, Instant::now()));
                    end.wait();
                }
                (times, thread_cpu() - cpu)
            }));
        }
        for round in 1..=rounds {
            let published = hub.publish(Target::All, None, &data);
            assert_eq!(published.seq, round as u64);
            drop(published); // wakes every stream
            for (i, counter) in counters.iter().enumerate() {
                let share = per_thread.min(CLIENTS - i * per_thread);
                assert_eq!(
                    counter.0.load(Ordering::Relaxed),
                    share * round,
                    "all woken"
                );
            }
            start.wait();
            end.wait();
        }
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let cpu = ran.iter().map(|(_, cpu)| *cpu).sum();
    let times: Vec<_> = ran.into_iter().map(|(times, _)| times).collect();
    // A round's delivery: from the first thread's start to the last one's end.
    for round in 0..rounds {
        let first = times.iter().map(|t| t[round].0).min().unwrap();
        let last = times.iter().map(|t| t[round].1).max().unwrap();
        delivery.push(last - first);
    }
    assert_eq!(hub.stats().delivered, (CLIENTS * rounds) as u64);
    #[cfg(feature = "lock-stats")]
    let locks = {
        let after = hub.lock_stats();
        let events = (CLIENTS * rounds) as f64;
        [
            (after.acquisitions - before.acquisitions) as f64 / events,
            (after.held - before.held).as_nanos() as f64 / events,
            (after.waker_acquisitions - before.waker_acquisitions) as f64 / events,
            (after.waker_held - before.waker_held).as_nanos() as f64 / events,
        ]
    };
    Measured {
        threads,
        rounds,
        delivery,
        cpu,
        #[cfg(feature = "lock-stats")]
        locks,
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let rounds = if full { 500 } else { 3 };
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let runs: Vec<Measured> = [1, 2].into_iter().map(|t| run(t, rounds)).collect();
    let load_after = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "\nsse-registry contention ({}; {cores} cores; {CLIENTS} clients; load average {} before, {} after; lock-stats {})\n",
        if full { "full run" } else { "smoke test" },
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        load_after
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        if cfg!(feature = "lock-stats") {
            "on: times include the counting"
        } else {
            "off"
        },
    );
    let one = median(&runs[0].delivery);
    println!(
        "| polling threads | rounds | delivery a round: median (fastest) | throughput (median) | vs 1 thread | CPU a frame | CPUs busy | state lock: acquisitions a delivered event | held a delivered event | waker locks: acquisitions a delivered event | held a delivered event |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for m in &runs {
        let med = median(&m.delivery);
        let fastest = m.delivery.iter().min().copied().unwrap_or_default();
        #[cfg(feature = "lock-stats")]
        let locks = format!(
            "{:.3} | {:.1} ns | {:.3} | {:.1} ns",
            m.locks[0], m.locks[1], m.locks[2], m.locks[3]
        );
        #[cfg(not(feature = "lock-stats"))]
        let locks = "– | – | – | –";
        println!(
            "| {} | {} | {:.0} µs ({:.0} µs) | {:.2} M frames/s | {:.2}× | {:.0} ns | {:.2} | {locks} |",
            m.threads,
            m.rounds,
            med.as_secs_f64() * 1e6,
            fastest.as_secs_f64() * 1e6,
            CLIENTS as f64 / med.as_secs_f64() / 1e6,
            one.as_secs_f64() / med.as_secs_f64(),
            m.cpu.as_nanos() as f64 / (CLIENTS * m.rounds) as f64,
            m.cpu.as_secs_f64() / m.delivery.iter().sum::<Duration>().as_secs_f64(),
        );
    }
}
