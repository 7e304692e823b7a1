//! The service's metrics, in the Prometheus text format (`GET {prefix}metrics`, admin).
//!
//! The hub's counts come from [`Hub::stats`] at scrape time (a collector), so there is no
//! second bookkeeping of clients, streams or events; what only this layer sees (requests,
//! refusals, bytes written, how long sweeps and wake-ups take) is counted here.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use sse_registry::Hub;

use crate::backend::Backend;

/// The content type of the text exposition format.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A request's route and status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    pub(crate) route: &'static str,
    pub(crate) status: u16,
}

/// A refused request's status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StatusLabel {
    pub(crate) status: u16,
}

/// The durations the in-memory backend measures (shared with [`Telemetry`], which exposes
/// them).
#[derive(Clone, Debug)]
pub(crate) struct Timings {
    pub(crate) sweep_slice: Histogram,
    pub(crate) wake_run: Histogram,
    pub(crate) wake_slice: Histogram,
    pub(crate) publish: Histogram,
}

impl Default for Timings {
    fn default() -> Self {
        Self {
            sweep_slice: seconds(),
            wake_run: seconds(),
            wake_slice: seconds(),
            publish: seconds(),
        }
    }
}

/// Drives `work` to its end a slice of `budget` at a time, yielding between slices, each
/// slice's duration observed in `slices`.
pub(crate) async fn drive_timed<S: sse_registry::Slice + ?Sized>(
    work: &mut S,
    budget: usize,
    clock: &dyn crate::Runtime,
    slices: &Histogram,
) {
    loop {
        let started = clock.now();
        let progress = work.step(budget);
        observe(slices, clock.now().saturating_duration_since(started));
        if progress == sse_registry::Progress::Done {
            return;
        }
        futures_lite::future::yield_now().await;
    }
}

/// The wake-up task of the in-memory backend, each poll (a slice: it yields between them)
/// and its whole run observed.
pub(crate) struct TimedWake {
    pub(crate) task: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    pub(crate) clock: Arc<dyn crate::Runtime>,
    pub(crate) started: std::time::Instant,
    pub(crate) timings: Timings,
}

impl std::future::Future for TimedWake {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        let this = &mut *self;
        let polled = this.clock.now();
        let poll = this.task.as_mut().poll(cx);
        let now = this.clock.now();
        observe(
            &this.timings.wake_slice,
            now.saturating_duration_since(polled),
        );
        if poll.is_ready() {
            observe(
                &this.timings.wake_run,
                now.saturating_duration_since(this.started),
            );
        }
        poll
    }
}

/// What the HTTP layer counts, and the registry that exposes it with the hub's counts.
pub(crate) struct Telemetry {
    registry: Registry,
    pub(crate) requests: Family<RequestLabels, Counter>,
    pub(crate) rejected: Family<StatusLabel, Counter>,
    /// Bytes of stream frames handed to the connections (greetings, events, keep-alives).
    pub(crate) written: Counter,
    pub(crate) keep_alives: Counter,
    pub(crate) sweep: Histogram,
    /// The service is shutting down: streams that end now end for that reason.
    pub(crate) closing: AtomicBool,
}

impl fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Telemetry").finish_non_exhaustive()
    }
}

/// Seconds, from 20 µs to about 2.6 s.
fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.000_02, 2.0, 18))
}

impl Telemetry {
    pub(crate) fn new(
        hub: Hub,
        backend: Arc<dyn Backend>,
        tasks: Arc<AtomicUsize>,
        timings: &Timings,
    ) -> Self {
        let mut registry = Registry::default();
        let (requests, rejected, written, keep_alives, sweep) = (
            Family::<RequestLabels, Counter>::default(),
            Family::<StatusLabel, Counter>::default(),
            Counter::default(),
            Counter::default(),
            seconds(),
        );
        registry.register(
            "sse_http_requests",
            "Requests answered by the protocol's routes, by route and status",
            requests.clone(),
        );
        registry.register(
            "sse_http_rejected",
            "Requests refused (4xx, 5xx), by status: 400 bad input, 401/403 not allowed, 404 \
             unknown client, 413 too large, 429 a per-peer or per-name limit, 503 a global cap, \
             the backend or shutdown",
            rejected.clone(),
        );
        registry.register(
            "sse_stream_bytes_written",
            "Bytes of stream frames handed to connections (greetings, events, keep-alives)",
            written.clone(),
        );
        registry.register(
            "sse_stream_keep_alives",
            "Keep-alive comments written on idle streams",
            keep_alives.clone(),
        );
        registry.register(
            "sse_sweep_duration_seconds",
            "How long a stale sweep took, from start to end (it yields between slices)",
            sweep.clone(),
        );
        registry.register(
            "sse_sweep_slice_duration_seconds",
            "How long one slice of a sweep held the executor",
            timings.sweep_slice.clone(),
        );
        registry.register(
            "sse_publish_duration_seconds",
            "How long publishing one event took in the publisher's call (encoding, queueing, \
             the first wake-up slice)",
            timings.publish.clone(),
        );
        registry.register(
            "sse_wake_run_duration_seconds",
            "How long a run of the wake-up task took, from spawn to an empty queue: the time \
             for every recipient of the events published meanwhile to be woken",
            timings.wake_run.clone(),
        );
        registry.register(
            "sse_wake_slice_duration_seconds",
            "How long one slice of wake-ups held the executor",
            timings.wake_slice.clone(),
        );
        registry.register_collector(Box::new(HubCollector {
            hub,
            backend,
            tasks,
        }));
        Self {
            registry,
            requests,
            rejected,
            written,
            keep_alives,
            sweep,
            closing: AtomicBool::new(false),
        }
    }

    /// The metrics in the text exposition format.
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a `String` cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Counts an answered request.
    pub(crate) fn answered(&self, route: &'static str, status: u16) {
        self.requests
            .get_or_create(&RequestLabels { route, status })
            .inc();
        if status >= 400 {
            self.rejected.get_or_create(&StatusLabel { status }).inc();
        }
    }

    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }
}

/// Observes `elapsed` in `histogram`, in seconds.
pub(crate) fn observe(histogram: &Histogram, elapsed: Duration) {
    histogram.observe(elapsed.as_secs_f64());
}

/// The hub's counts and the backend's, read at scrape time.
struct HubCollector {
    hub: Hub,
    backend: Arc<dyn Backend>,
    /// Tasks running (the task runner's count).
    tasks: Arc<AtomicUsize>,
}

impl fmt::Debug for HubCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubCollector").finish_non_exhaustive()
    }
}

/// A kind of target, as a label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabel {
    target: &'static str,
}

fn gauge(encoder: &mut DescriptorEncoder<'_>, name: &str, help: &str, value: u64) -> fmt::Result {
    let metric = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn counter(encoder: &mut DescriptorEncoder<'_>, name: &str, help: &str, value: u64) -> fmt::Result {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

impl Collector for HubCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let s = self.hub.stats();
        let e = &mut encoder;
        let as_u64 = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        gauge(
            e,
            "sse_clients",
            "Clients known to this node's hub",
            as_u64(s.clients),
        )?;
        gauge(
            e,
            "sse_streams_open",
            "Clients with an open stream on this node",
            as_u64(s.attached),
        )?;
        gauge(
            e,
            "sse_keys",
            "Distinct keys with a subscriber",
            as_u64(s.keys),
        )?;
        gauge(
            e,
            "sse_subscriptions",
            "Key subscriptions over all clients",
            as_u64(s.subscriptions),
        )?;
        gauge(
            e,
            "sse_queued_frames",
            "Frames in client queues not yet delivered",
            as_u64(s.queued),
        )?;
        gauge(
            e,
            "sse_history_frames",
            "Frames in the shared replay history",
            as_u64(s.history),
        )?;
        gauge(
            e,
            "sse_tasks_running",
            "Tasks submitted by clients and still running",
            as_u64(self.tasks.load(Ordering::Acquire)),
        )?;
        counter(e, "sse_clients_issued", "Client ids issued", s.issued)?;
        counter(
            e,
            "sse_clients_removed",
            "Clients removed on request (deleted, or cleared by an admin)",
            s.removed,
        )?;
        counter(
            e,
            "sse_clients_swept",
            "Clients removed by stale sweeps",
            s.swept,
        )?;
        counter(
            e,
            "sse_streams_replaced",
            "Streams ended because their client opened another (reconnect-replace)",
            s.replaced,
        )?;
        counter(
            e,
            "sse_streams_resumed",
            "Streams opened with a Last-Event-ID they replay from",
            s.resumed,
        )?;
        counter(
            e,
            "sse_resets",
            "Resets delivered: a client fell behind (a slow consumer, a history overrun) or \
             reconnected with an id it cannot resume from",
            s.lagged,
        )?;
        counter(
            e,
            "sse_frames_delivered",
            "Event frames (and resets) handed out by the hub's streams",
            s.delivered,
        )?;
        {
            let to = s.published_to;
            let mut metric = encoder.encode_descriptor(
                "sse_events_published",
                "Events published, by the kind of their target",
                None,
                prometheus_client::metrics::MetricType::Counter,
            )?;
            for (target, value) in [
                ("client", to.client),
                ("name", to.name),
                ("key", to.key),
                ("all", to.all),
            ] {
                ConstCounter::new(value).encode(metric.encode_family(&TargetLabel { target })?)?;
            }
        }
        let e = &mut encoder;
        for (name, value) in self.backend.metrics() {
            match value {
                crate::backend::Metric::Gauge { help, value } => gauge(e, name, help, value)?,
                crate::backend::Metric::Counter { help, value } => {
                    counter(e, name, help, value)?;
                }
            }
        }
        Ok(())
    }
}
