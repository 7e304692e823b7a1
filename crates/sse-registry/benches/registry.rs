//! Benchmarks of the hub with 1,000, 100,000 and 1,000,000 in-memory clients: broadcasting one
//! 100-byte event to everyone (total time, longest slice, and delivery of the frame to every
//! stream), sweeping (every client stale, and none), registry memory per idle client, and the
//! broadcast and sweep times for several slice budgets; and sweeping and clearing clients that
//! all share one key or one name (removal from a long member list).
//!
//! A plain timing harness (`std::time::Instant`, a few repetitions) rather than criterion: setting
//! up a million clients is far too heavy for criterion's iteration model. It prints markdown
//! tables.
//!
//! `cargo bench -p sse-registry --bench registry` runs every size; with the argument `shared`
//! (`cargo bench -p sse-registry --bench registry -- shared`) only the shared-membership table.
//! Without `--bench` (as when
//! `cargo test --all-targets` runs it), it runs the 1,000-client size once as a smoke test: every
//! check (all woken, all delivered, all swept) still asserts.
//!
//! Memory is counted by the global allocator, a byte-counting wrapper over the system allocator
//! (`cap`: the workspace forbids `unsafe`, which writing a `GlobalAlloc` takes).

use std::fmt::Write as _;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use cap::Cap;
use futures_core::Stream;
use sse_registry::{ClientStream, Config, DEFAULT_SLICE, Hub, Progress, Slice, Target};

#[global_allocator]
static ALLOC: Cap<std::alloc::System> = Cap::new(std::alloc::System, usize::MAX);

/// The slice budgets compared at the largest size.
const BUDGETS: [usize; 4] = [256, 1024, 4096, 16384];

/// A waker that counts its wakes; one is shared by every stream.
struct Counter(AtomicUsize);

impl Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// How many runs of each measurement, by size.
struct Plan {
    size: usize,
    broadcasts: usize,
    sweeps: usize,
    budgets: bool,
    /// Repetitions of each shared-membership sweep and clear (0: none at this size).
    shared: usize,
}

/// Clients issued, attached, and polled once (so each stream's waker is registered).
struct Population {
    hub: Hub,
    streams: Vec<ClientStream>,
    counter: Arc<Counter>,
    waker: Waker,
    now: Instant,
}

impl Population {
    fn woken(&self) -> usize {
        self.counter.0.load(Ordering::Relaxed)
    }
}

/// Reads this thread's run-queue wait (`/proc/thread-self/schedstat`, second field): a step
/// during which it grew was preempted (another job on this shared machine ran instead), so its
/// wall time overstates the work.
struct SchedStat(Option<std::fs::File>);

impl SchedStat {
    fn open() -> Self {
        Self(std::fs::File::open("/proc/thread-self/schedstat").ok())
    }

    /// Nanoseconds this thread has waited to run; 0 when unknown.
    fn waited(&self) -> u64 {
        use std::os::unix::fs::FileExt;
        let Some(file) = &self.0 else { return 0 };
        let mut buf = [0u8; 96];
        let n = file.read_at(&mut buf, 0).unwrap_or(0);
        std::str::from_utf8(&buf[..n])
            .ok()
            .and_then(|text| text.split_whitespace().nth(1))
            .and_then(|field| field.parse().ok())
            .unwrap_or(0)
    }
}

/// One blocking step: its wall time, and whether the thread was preempted during it.
#[derive(Clone, Copy)]
struct Step {
    took: Duration,
    preempted: bool,
}

/// One sliced run: its blocking steps. Its total is their sum: the work, excluding the harness's
/// bookkeeping between steps (where an executor would run other tasks).
struct Run {
    slices: Vec<Step>,
}

impl Run {
    fn total(&self) -> Duration {
        self.slices.iter().map(|s| s.took).sum()
    }
}

/// Measurements of one kind, over repetitions.
#[derive(Default)]
struct Runs {
    totals: Vec<Duration>,
    slices: Vec<Step>,
    slice_count: usize,
}

impl Runs {
    fn push(&mut self, run: Run) {
        self.totals.push(run.total());
        self.slice_count = run.slices.len();
        self.slices.extend(run.slices);
    }

    fn median_total(&self) -> Duration {
        median(&self.totals)
    }

    /// "median (fastest)" of the totals: on a shared machine the fastest run is the one least
    /// disturbed by other jobs.
    fn total_cell(&self) -> String {
        let fastest = self.totals.iter().copied().min().unwrap_or_default();
        format!("{} ({})", fmt_dur(self.median_total()), fmt_dur(fastest))
    }

    fn longest(&self) -> Duration {
        self.slices.iter().map(|s| s.took).max().unwrap_or_default()
    }

    /// The longest slice during which the thread was not preempted, if any was not.
    fn longest_unpreempted(&self) -> Option<Duration> {
        self.slices
            .iter()
            .filter(|s| !s.preempted)
            .map(|s| s.took)
            .max()
    }

    fn preempted(&self) -> usize {
        self.slices.iter().filter(|s| s.preempted).count()
    }

    fn slice_quantile(&self, q: f64) -> Duration {
        quantile(&self.slices.iter().map(|s| s.took).collect::<Vec<_>>(), q)
    }

    /// The 99th percentile of the slices during which the thread was not preempted.
    fn p99_unpreempted(&self) -> Option<Duration> {
        let clean: Vec<Duration> = self
            .slices
            .iter()
            .filter(|s| !s.preempted)
            .map(|s| s.took)
            .collect();
        (!clean.is_empty()).then(|| quantile(&clean, 0.99))
    }

    /// "longest (unpreempted) | p99 (unpreempted) | preempted/all" as three table cells.
    fn slice_cells(&self) -> String {
        let or_none = |d: Option<Duration>| d.map_or_else(|| "none".to_owned(), fmt_dur);
        format!(
            "{} ({}) | {} ({}) | {}/{}",
            fmt_dur(self.longest()),
            or_none(self.longest_unpreempted()),
            fmt_dur(self.slice_quantile(0.99)),
            or_none(self.p99_unpreempted()),
            self.preempted(),
            self.slices.len(),
        )
    }
}

fn quantile(values: &[Duration], q: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let at = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[at]
}

fn median(values: &[Duration]) -> Duration {
    quantile(values, 0.5)
}

fn config(size: usize) -> Config {
    let mut config = Config::default();
    config.max_clients = config.max_clients.max(size);
    config
}

fn stale_after(hub: &Hub, now: Instant) -> Instant {
    now + hub.config().grace.max(hub.config().unattached_ttl) + Duration::from_secs(1)
}

/// Issues, attaches and polls `size` clients; also returns the registry's bytes per client
/// (without, and with, the `ClientStream`s the bench holds in a `Vec`) and the setup time.
fn populate(size: usize) -> (Population, f64, f64, Duration) {
    let now = Instant::now();
    let counter = Arc::new(Counter(AtomicUsize::new(0)));
    let waker = Waker::from(counter.clone());
    let hub = Hub::new(config(size));
    let started = Instant::now();
    let before = ALLOC.allocated();
    let mut streams = Vec::with_capacity(size);
    let held = streams.capacity() * size_of::<ClientStream>();
    for _ in 0..size {
        let id = hub.issue(None, now).expect("issue");
        streams.push(hub.attach(id, None, now).expect("attach"));
    }
    let mut cx = Context::from_waker(&waker);
    for stream in &mut streams {
        assert!(
            Pin::new(stream).poll_next(&mut cx).is_pending(),
            "nothing published yet"
        );
    }
    let after = ALLOC.allocated();
    let setup = started.elapsed();
    let stats = hub.stats();
    assert_eq!((stats.clients, stats.attached), (size, size));
    let with_streams = after.saturating_sub(before) as f64 / size as f64;
    let registry = after.saturating_sub(before + held) as f64 / size as f64;
    (
        Population {
            hub,
            streams,
            counter,
            waker,
            now,
        },
        registry,
        with_streams,
        setup,
    )
}

/// Steps `work` to the end, timing each step; `first` is a step already taken (publishing).
fn run_sliced(work: &mut impl Slice, budget: usize, sched: &SchedStat, first: Option<Step>) -> Run {
    let mut slices: Vec<Step> = first.into_iter().collect();
    loop {
        let waited = sched.waited();
        let started = Instant::now();
        let progress = work.step(budget);
        let took = started.elapsed();
        slices.push(Step {
            took,
            preempted: sched.waited() != waited,
        });
        if progress == Progress::Done {
            break;
        }
    }
    Run { slices }
}

/// Publishes one event to everyone and wakes every stream in slices of `budget`. The publish
/// call itself counts as a slice (it holds the lock too).
fn broadcast(pop: &Population, data: &str, budget: usize) -> (Run, u64) {
    let size = pop.streams.len();
    let woken = pop.woken();
    let sched = SchedStat::open();
    let waited = sched.waited();
    let started = Instant::now();
    let mut published = pop.hub.publish(Target::All, None, data);
    let took = started.elapsed();
    let publish = Step {
        took,
        preempted: sched.waited() != waited,
    };
    let run = run_sliced(&mut published.wake, budget, &sched, Some(publish));
    assert_eq!(published.recipients, size);
    assert_eq!(pop.woken() - woken, size, "every stream is woken");
    (run, published.seq)
}

/// Polls every stream once, expecting the frame of event `seq`; returns the time that took, then
/// polls each again (untimed) to register its waker for the next broadcast.
fn deliver(pop: &mut Population, seq: u64, data: &str) -> Duration {
    let expected = format!("id: {seq}\ndata: {data}\n\n");
    let Population { streams, waker, .. } = pop;
    let mut cx = Context::from_waker(waker);
    let started = Instant::now();
    let mut delivered = 0;
    for stream in streams.iter_mut() {
        if let Poll::Ready(Some(frame)) = Pin::new(stream).poll_next(&mut cx) {
            delivered += usize::from(frame.len() == expected.len());
        }
    }
    let took = started.elapsed();
    assert_eq!(delivered, streams.len(), "every stream reads the frame");
    for stream in streams.iter_mut() {
        assert!(
            Pin::new(stream).poll_next(&mut cx).is_pending(),
            "one frame only"
        );
    }
    took
}

/// A sweep of a hub whose clients are all attached: it removes none, so this is the scan cost.
fn sweep_none(pop: &Population, budget: usize) -> Run {
    let mut sweep = pop.hub.sweep(stale_after(&pop.hub, pop.now));
    let run = run_sliced(&mut sweep, budget, &SchedStat::open(), None);
    assert_eq!(sweep.removed(), 0);
    assert_eq!(pop.hub.stats().clients, pop.streams.len());
    run
}

/// A sweep of `size` clients that attached, detached (closed their streams), and are past the
/// grace period: it removes them all. Setup (issuing, attaching, closing) is not timed.
fn sweep_all(size: usize, budget: usize) -> Run {
    let now = Instant::now();
    let hub = Hub::new(config(size));
    let mut streams = Vec::with_capacity(size);
    for _ in 0..size {
        let id = hub.issue(None, now).expect("issue");
        streams.push(hub.attach(id, None, now).expect("attach"));
    }
    // Closed as of `now`, so that the grace period counts from it (a dropped stream's would
    // count from the first sweep after the drop).
    for stream in streams {
        stream.close(now);
    }
    assert_eq!(hub.stats().attached, 0);
    let mut sweep = hub.sweep(stale_after(&hub, now));
    let run = run_sliced(&mut sweep, budget, &SchedStat::open(), None);
    assert_eq!(sweep.removed(), size, "every client is swept");
    let stats = hub.stats();
    assert_eq!((stats.clients, stats.swept), (0, size as u64));
    run
}

/// What the clients of a shared-membership sweep share.
#[derive(Clone, Copy)]
enum Share {
    /// One key, which every client subscribes to.
    Key,
    /// One name, which every client is issued with.
    Name,
}

impl Share {
    fn label(self) -> &'static str {
        match self {
            Self::Key => "one key",
            Self::Name => "one name",
        }
    }
}

/// Removes `size` clients that all share one key or one name, in slices of `budget`: a stale
/// sweep (issued ids that never attached, past `unattached_ttl`) or a `clear`. Each removal takes
/// the client out of a member list of up to `size` entries. Setup is not timed.
fn sweep_shared(size: usize, share: Share, clear: bool, budget: usize) -> Run {
    let now = Instant::now();
    let mut config = config(size);
    config.max_name_members = usize::MAX;
    let hub = Hub::new(config);
    let key = sse_codec::EventName::from_static("shared");
    for _ in 0..size {
        match share {
            Share::Key => {
                let id = hub.issue(None, now).expect("issue");
                hub.subscribe(id, &key).expect("subscribe");
            }
            Share::Name => {
                hub.issue(Some("shared"), now).expect("issue");
            }
        }
    }
    let mut sweep = if clear {
        hub.clear()
    } else {
        hub.sweep(stale_after(&hub, now))
    };
    let run = run_sliced(&mut sweep, budget, &SchedStat::open(), None);
    assert_eq!(sweep.removed(), size, "every client is removed");
    let stats = hub.stats();
    assert_eq!((stats.clients, stats.keys, stats.subscriptions), (0, 0, 0));
    run
}

fn fmt_dur(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 10_000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else if us >= 10.0 {
        format!("{us:.0} µs")
    } else {
        format!("{us:.1} µs")
    }
}

fn fmt_count(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn per_client(d: Duration, size: usize) -> String {
    format!("{:.0} ns", d.as_secs_f64() * 1e9 / size as f64)
}

#[derive(Default)]
struct Report {
    broadcast: String,
    sweep: String,
    memory: String,
    budgets: String,
    shared: String,
}

/// The shared-membership rows of one size.
fn run_shared(plan: &Plan, report: &mut Report) {
    let size = plan.size;
    for share in [Share::Key, Share::Name] {
        for clear in [false, true] {
            let what = if clear { "clear" } else { "sweep" };
            eprintln!(
                "{} clients on {}: {what} x{}",
                fmt_count(size),
                share.label(),
                plan.shared
            );
            let mut runs = Runs::default();
            for _ in 0..plan.shared {
                runs.push(sweep_shared(size, share, clear, DEFAULT_SLICE));
            }
            let _ = writeln!(
                report.shared,
                "| {} | {} | {what} | {} | {} | {} | {} |",
                fmt_count(size),
                share.label(),
                runs.slice_count,
                runs.total_cell(),
                per_client(runs.median_total(), size),
                runs.slice_cells(),
            );
        }
    }
}

fn run_size(plan: &Plan, data: &str, report: &mut Report) {
    let size = plan.size;
    eprintln!("{} clients: setting up", fmt_count(size));
    let (mut pop, registry, with_streams, setup) = populate(size);

    let _ = writeln!(
        report.memory,
        "| {} | {registry:.0} B | {with_streams:.0} B | {} ({}/client) |",
        fmt_count(size),
        fmt_dur(setup),
        per_client(setup, size),
    );

    eprintln!(
        "{} clients: broadcast x{}",
        fmt_count(size),
        plan.broadcasts
    );
    let mut runs = Runs::default();
    let mut deliveries = Vec::new();
    for _ in 0..plan.broadcasts {
        let (run, seq) = broadcast(&pop, data, DEFAULT_SLICE);
        runs.push(run);
        deliveries.push(deliver(&mut pop, seq, data));
    }
    let delivery = median(&deliveries);
    let _ = writeln!(
        report.broadcast,
        "| {} | {} | {} | {} | {} | {} ({}) | {} |",
        fmt_count(size),
        runs.slice_count,
        runs.total_cell(),
        per_client(runs.median_total(), size),
        runs.slice_cells(),
        fmt_dur(delivery),
        fmt_dur(deliveries.iter().copied().min().unwrap_or_default()),
        per_client(delivery, size),
    );

    eprintln!(
        "{} clients: sweep (none stale) x{}",
        fmt_count(size),
        plan.sweeps
    );
    let mut none = Runs::default();
    for _ in 0..plan.sweeps {
        none.push(sweep_none(&pop, DEFAULT_SLICE));
    }

    let mut budget_rows = Vec::new();
    if plan.budgets {
        for budget in BUDGETS {
            eprintln!(
                "{} clients: budget {budget}: broadcast, sweeps",
                fmt_count(size)
            );
            let mut cast = Runs::default();
            for _ in 0..plan.broadcasts {
                let (run, seq) = broadcast(&pop, data, budget);
                cast.push(run);
                deliver(&mut pop, seq, data);
            }
            let mut scan = Runs::default();
            for _ in 0..plan.sweeps {
                scan.push(sweep_none(&pop, budget));
            }
            budget_rows.push((budget, cast, scan));
        }
    }
    drop(pop);

    eprintln!(
        "{} clients: sweep (all stale) x{}",
        fmt_count(size),
        plan.sweeps
    );
    let mut all = Runs::default();
    for _ in 0..plan.sweeps {
        all.push(sweep_all(size, DEFAULT_SLICE));
    }
    for (what, runs) in [("all stale", &all), ("none stale", &none)] {
        let _ = writeln!(
            report.sweep,
            "| {} | {what} | {} | {} | {} | {} |",
            fmt_count(size),
            runs.slice_count,
            runs.total_cell(),
            per_client(runs.median_total(), size),
            runs.slice_cells(),
        );
    }

    for (budget, cast, scan) in budget_rows {
        eprintln!(
            "{} clients: budget {budget}: sweep (all stale)",
            fmt_count(size)
        );
        let mut swept = Runs::default();
        for _ in 0..plan.sweeps {
            swept.push(sweep_all(size, budget));
        }
        for (what, runs) in [
            ("broadcast", &cast),
            ("sweep, all stale", &swept),
            ("sweep, none stale", &scan),
        ] {
            let _ = writeln!(
                report.budgets,
                "| {} | {what} | {} | {} | {} |",
                fmt_count(budget),
                runs.slice_count,
                runs.total_cell(),
                runs.slice_cells(),
            );
        }
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let only_shared = std::env::args().skip(1).any(|a| a == "shared");
    let plans: Vec<Plan> = if full {
        vec![
            Plan {
                size: 1_000,
                broadcasts: 20,
                sweeps: 20,
                budgets: false,
                shared: 20,
            },
            Plan {
                size: 100_000,
                broadcasts: 10,
                sweeps: 5,
                budgets: false,
                shared: 5,
            },
            Plan {
                size: 1_000_000,
                broadcasts: 5,
                sweeps: 3,
                budgets: true,
                shared: 3,
            },
        ]
    } else {
        vec![Plan {
            size: 1_000,
            broadcasts: 1,
            sweeps: 1,
            budgets: true,
            shared: 1,
        }]
    };
    let data = "x".repeat(100);
    let mut report = Report::default();
    for plan in &plans {
        if !only_shared {
            run_size(plan, &data, &mut report);
        }
        if plan.shared > 0 {
            run_shared(plan, &mut report);
        }
    }

    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    let largest = plans.last().map_or(0, |p| p.size);
    println!(
        "\nsse-registry benchmarks ({}; {cores} cores; load average {load}; DEFAULT_SLICE = {DEFAULT_SLICE}; event data 100 bytes)",
        if full {
            "full run"
        } else {
            "smoke test: 1,000 clients, once"
        },
    );
    let cells =
        "longest slice (unpreempted only) | p99 slice (unpreempted only) | slices preempted";
    let align = "---:|---:|---:";
    println!("\n### Broadcast of one event to all clients, slices of {DEFAULT_SLICE}\n");
    println!(
        "| clients | slices | total: median (fastest) | per client (median) | {cells} | delivery: median (fastest) | per client (median) |"
    );
    println!("|---:|---:|---:|---:|{align}|---:|---:|");
    print!("{}", report.broadcast);
    println!("\n### Sweep, slices of {DEFAULT_SLICE}\n");
    println!(
        "| clients | sweep | slices | total: median (fastest) | per client (median) | {cells} |"
    );
    println!("|---:|---|---:|---:|---:|{align}|");
    print!("{}", report.sweep);
    println!("\n### Registry memory per idle client (issued, attached, stream polled once)\n");
    println!(
        "| clients | registry | with the `ClientStream` ({} B) | setup: issue + attach + first poll |",
        size_of::<ClientStream>()
    );
    println!("|---:|---:|---:|---:|");
    print!("{}", report.memory);
    println!("\n### Slice budgets at {} clients\n", fmt_count(largest));
    println!("| budget | work | slices | total: median (fastest) | {cells} |");
    println!("|---:|---|---:|---:|{align}|");
    print!("{}", report.budgets);
    println!("\n### Removing clients that share one key or one name, slices of {DEFAULT_SLICE}\n");
    println!(
        "| clients | sharing | work | slices | total: median (fastest) | per client (median) | {cells} |"
    );
    println!("|---:|---|---|---:|---:|---:|{align}|");
    print!("{}", report.shared);
}
