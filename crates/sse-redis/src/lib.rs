//! Cross-node fan-out on Redis Streams: several servers behind a load balancer act as one hub.
//!
//! [`RedisBackend`] is an [`sse_http::Backend`]: the service hands it every change that must be
//! shared (issued ids, subscriptions, removals, published events), and it appends each as one
//! record to a Redis stream (`XADD … MAXLEN ~ N`). Every node runs a consumer loop that reads
//! the stream in order (`XREAD BLOCK`) and applies each record to its own
//! `Hub`: the hubs of all nodes are replicas fed the same log, so
//!
//! - an id issued on node A is known on node B (it can open its stream, subscribe, submit a
//!   task there), and `DELETE` on any node ends its stream wherever it is open;
//! - every event is delivered by every node to its own attached clients, once per client;
//! - an event's SSE id is its stream entry id `<ms>-<n>` encoded as `ms << 20 | n` (see
//!   [`seq_of`]), the same on every node, so a client reconnecting to another node with
//!   `Last-Event-ID` gets exactly what it missed (from that node's replica of the history and of
//!   its queue), or a `reset` when that is older than what is retained (the hub's history and
//!   queue limits; a node started later replays the stream from the oldest entry Redis still
//!   holds, bounded by [`RedisConfig::max_len`]).
//!
//! A call returns once its record is in Redis **and** applied by this node (read-your-writes:
//! `POST /clients` then `GET /events/{id}` on the same node always works), or fails.
//!
//! # Redis unavailable
//! Nothing panics, and the node keeps serving what needs no write: open streams stay open
//! (keep-alives go on), clients it knows can (re)attach and get what its replica holds. What must
//! be shared fails with an error to the caller (`503` from the service): an event that could not
//! be appended is never delivered anywhere, not even locally, so nodes never diverge and nothing
//! is lost silently. An append whose reply is lost (timeout) is reported as an error although
//! Redis may have taken it: it may then be delivered (at most once). The consumer loop retries
//! with exponential backoff ([`RedisConfig::backoff_min`] … [`RedisConfig::backoff_max`]),
//! logs each failure (`tracing` warn) and counts it ([`Counts`]); when Redis is back it resumes
//! after the last entry it applied. If Redis lost its data (restarted without persistence), new
//! entries still get higher ids (they are time-based), so replicas carry on; a node started after
//! such a loss does not know the clients issued before it.
//!
//! # Why the `redis` crate
//! It is the maintained, widely used Redis client for Rust, with Streams commands and typed
//! replies, and its async connections run on tokio or smol (features `tokio-comp` and
//! `smol-comp`: it uses tokio when called inside a tokio runtime, smol otherwise), matching the
//! two adapters of this workspace; this crate spawns and sleeps only through the service's
//! [`Runtime`], so it is runtime-agnostic too.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::streams::StreamReadReply;
use redis::{AsyncConnectionConfig, Client, FromRedisValue, Value};
use sse_codec::EventName;
use sse_http::{Backend, BackendError, BackendFuture, Recipients, Runtime};
use sse_registry::{ClientId, DEFAULT_SLICE, Hub, Target};

/// Settings of a [`RedisBackend`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisConfig {
    /// The server, as `redis://host:port[/db]`.
    pub url: String,
    /// The stream every node appends to and reads. Default: `sse:events`.
    pub stream: String,
    /// Entries the stream keeps, approximately (`MAXLEN ~`): how far back a node started later
    /// can rebuild its replica. Default: 100,000.
    pub max_len: usize,
    /// How long a call waits for Redis, and then for this node to apply its record. Default: 2 s.
    pub timeout: Duration,
    /// How long one `XREAD` blocks. Default: 1 s.
    pub block: Duration,
    /// First delay before retrying after a failure of the consumer loop. Default: 50 ms.
    pub backoff_min: Duration,
    /// Longest delay between retries. Default: 2 s.
    pub backoff_max: Duration,
    /// Prefix of the liveness keys the sweep uses. Default: `sse:alive:`.
    pub alive_prefix: String,
}

impl RedisConfig {
    /// The defaults, for the server at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            stream: "sse:events".into(),
            max_len: 100_000,
            timeout: Duration::from_secs(2),
            block: Duration::from_secs(1),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
            alive_prefix: "sse:alive:".into(),
        }
    }
}

/// What the backend counted, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counts {
    /// Records appended to the stream by this node.
    pub appended: u64,
    /// Appends that failed (the caller got an error).
    pub append_errors: u64,
    /// Records applied by this node's consumer loop.
    pub applied: u64,
    /// Failures of the consumer loop (connect or read), each followed by a backoff.
    pub read_errors: u64,
    /// Whether the consumer loop's last read succeeded.
    pub connected: bool,
}

/// The encoding of a stream entry id `<ms>-<n>` as an SSE sequence number: `ms << 20 | n`.
///
/// Order-preserving for `n < 2^20` (a million entries in one millisecond) and `ms < 2^44` (the
/// year 2527); `None` outside, or for text that is not an entry id.
pub fn seq_of(entry_id: &str) -> Option<u64> {
    let (ms, n) = entry_id.split_once('-')?;
    let (ms, n) = (ms.parse::<u64>().ok()?, n.parse::<u64>().ok()?);
    (n < 1 << 20 && ms < 1 << 44).then_some(ms << 20 | n)
}

/// The cross-node backend on Redis Streams (see the [crate docs](crate)).
#[derive(Clone)]
pub struct RedisBackend {
    shared: Arc<Shared>,
}

struct Shared {
    hub: Hub,
    client: Client,
    config: RedisConfig,
    runtime: Arc<dyn Runtime>,
    /// The connection for appends and the sweep; dropped after a failure, made again lazily.
    conn: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    /// The highest sequence number of a record this node has applied.
    applied: tokio::sync::watch::Sender<u64>,
    /// Recipients of the latest events applied, for the callers waiting on them.
    recent: Mutex<VecDeque<(u64, usize)>>,
    appended: AtomicU64,
    append_errors: AtomicU64,
    applied_count: AtomicU64,
    read_errors: AtomicU64,
    connected: AtomicBool,
}

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field("stream", &self.shared.config.stream)
            .field("counts", &self.counts())
            .finish_non_exhaustive()
    }
}

const RECENT: usize = 4096;

impl RedisBackend {
    /// A backend feeding `hub`, and its consumer loop spawned on `runtime`. Does not need Redis
    /// to be up (it connects lazily and retries); fails only on a malformed URL. The loop ends
    /// when the last clone of the backend is dropped.
    pub fn start(
        config: RedisConfig,
        hub: Hub,
        runtime: Arc<dyn Runtime>,
    ) -> Result<Self, redis::RedisError> {
        let client = Client::open(config.url.as_str())?;
        let (applied, _) = tokio::sync::watch::channel(0);
        let shared = Arc::new(Shared {
            hub,
            client,
            config,
            runtime: runtime.clone(),
            conn: tokio::sync::Mutex::new(None),
            applied,
            recent: Mutex::new(VecDeque::new()),
            appended: AtomicU64::new(0),
            append_errors: AtomicU64::new(0),
            applied_count: AtomicU64::new(0),
            read_errors: AtomicU64::new(0),
            connected: AtomicBool::new(false),
        });
        runtime.spawn(Box::pin(consume(Arc::downgrade(&shared))));
        Ok(Self { shared })
    }

    /// The hub this backend feeds.
    pub fn hub(&self) -> &Hub {
        &self.shared.hub
    }

    /// What the backend counted so far.
    pub fn counts(&self) -> Counts {
        let s = &self.shared;
        Counts {
            appended: s.appended.load(Ordering::Relaxed),
            append_errors: s.append_errors.load(Ordering::Relaxed),
            applied: s.applied_count.load(Ordering::Relaxed),
            read_errors: s.read_errors.load(Ordering::Relaxed),
            connected: s.connected.load(Ordering::Relaxed),
        }
    }
}

impl Shared {
    fn conn_config(&self, response: Duration) -> AsyncConnectionConfig {
        AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.config.timeout))
            .set_response_timeout(Some(response))
    }

    /// Runs `cmd` on the shared connection, connecting first if needed; a failure drops the
    /// connection so that the next call makes a new one.
    async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> redis::RedisResult<T> {
        let mut guard = self.conn.lock().await;
        let mut conn = match &*guard {
            Some(conn) => conn.clone(),
            None => {
                let config = self.conn_config(self.config.timeout);
                let conn = self
                    .client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                *guard = Some(conn.clone());
                conn
            }
        };
        drop(guard);
        let result = cmd.query_async(&mut conn).await;
        if result.is_err() {
            *self.conn.lock().await = None;
        }
        result
    }

    /// Appends a record and waits until this node has applied it; returns its sequence number.
    async fn submit(&self, fields: &[(&str, &str)]) -> Result<u64, BackendError> {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(&self.config.stream)
            .arg("MAXLEN")
            .arg("~")
            .arg(self.config.max_len)
            .arg("*");
        for (k, v) in fields {
            cmd.arg(*k).arg(*v);
        }
        let id: String = match self.query(&cmd).await {
            Ok(id) => id,
            Err(err) => {
                self.append_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%err, "redis append failed");
                return Err(BackendError::new(format!("redis unavailable: {err}")));
            }
        };
        self.appended.fetch_add(1, Ordering::Relaxed);
        let seq = seq_of(&id)
            .ok_or_else(|| BackendError::new(format!("unexpected stream entry id {id}")))?;
        let mut applied = self.applied.subscribe();
        let wait = applied.wait_for(|&done| done >= seq);
        let timeout = self.runtime.sleep(self.config.timeout);
        let applied = futures_lite::future::or(async { wait.await.is_ok() }, async {
            timeout.await;
            false
        })
        .await;
        if applied {
            Ok(seq)
        } else {
            Err(BackendError::new(
                "published to redis, but not yet applied on this node",
            ))
        }
    }

    fn recipients(&self, seq: u64) -> usize {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent
            .iter()
            .rev()
            .find(|(s, _)| *s == seq)
            .map_or(0, |(_, n)| *n)
    }

    /// Applies one stream entry to the hub.
    async fn apply(&self, seq: u64, map: &HashMap<String, Value>) {
        let field = |name: &str| -> Option<String> {
            map.get(name)
                .and_then(|v| String::from_redis_value(v.clone()).ok())
        };
        let op = field("op").unwrap_or_default();
        let id = field("id").and_then(|id| id.parse::<ClientId>().ok());
        let hub = &self.hub;
        let now = Instant::now();
        match (op.as_str(), id) {
            ("p", _) => {
                let to = field("to").unwrap_or_default();
                let event = field("e").and_then(|e| EventName::new(e).ok());
                let data = field("d").unwrap_or_default();
                let key;
                let target = match to.split_once(':') {
                    Some(("c", id)) => match id.parse() {
                        Ok(id) => Target::Client(id),
                        Err(_) => return,
                    },
                    Some(("n", name)) => Target::Name(name),
                    Some(("k", k)) => match EventName::new(k) {
                        Ok(k) => {
                            key = k;
                            Target::Key(&key)
                        }
                        Err(_) => return,
                    },
                    _ => Target::All,
                };
                match hub.deliver(seq, target, event.as_ref(), &data) {
                    Ok(mut published) => {
                        {
                            let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
                            if recent.len() >= RECENT {
                                recent.pop_front();
                            }
                            recent.push_back((seq, published.recipients));
                        }
                        sse_registry::drive(&mut published.wake, DEFAULT_SLICE).await;
                    }
                    Err(err) => tracing::warn!(%err, seq, "event not delivered"),
                }
            }
            ("i", Some(id)) => {
                if let Err(err) = hub.import(id, field("name").as_deref(), now) {
                    tracing::warn!(%err, "client not imported");
                }
            }
            ("s" | "u", Some(id)) => {
                if let Some(key) = field("key").and_then(|k| EventName::new(k).ok()) {
                    let _ = if op == "s" {
                        hub.subscribe(id, &key)
                    } else {
                        hub.unsubscribe(id, &key)
                    };
                }
            }
            ("r", Some(id)) => {
                let _ = hub.remove(id);
            }
            ("x", _) => {
                let mut clear = hub.clear();
                sse_registry::drive(&mut clear, DEFAULT_SLICE).await;
            }
            _ => tracing::warn!(seq, op, "unknown record skipped"),
        }
    }

    fn mark_applied(&self, seq: u64) {
        self.applied_count.fetch_add(1, Ordering::Relaxed);
        self.applied.send_if_modified(|done| {
            let newer = seq > *done;
            if newer {
                *done = seq;
            }
            newer
        });
    }
}

/// The consumer loop: reads the stream from its start and applies every entry, in order, until
/// the backend is dropped; retries with backoff whenever Redis fails.
async fn consume(weak: Weak<Shared>) {
    let mut last = String::from("0-0");
    let mut conn: Option<MultiplexedConnection> = None;
    let mut backoff = Duration::ZERO;
    loop {
        let Some(shared) = weak.upgrade() else {
            return;
        };
        if !backoff.is_zero() {
            shared.runtime.sleep(backoff).await;
        }
        let config = &shared.config;
        let next_backoff = |b: Duration| (b * 2).clamp(config.backoff_min, config.backoff_max);
        let mut c = match conn.take() {
            Some(c) => c,
            None => {
                let cc = shared.conn_config(config.block + config.timeout);
                match shared
                    .client
                    .get_multiplexed_async_connection_with_config(&cc)
                    .await
                {
                    Ok(c) => c,
                    Err(err) => {
                        failed(&shared, &err, "connect");
                        backoff = next_backoff(backoff);
                        continue;
                    }
                }
            }
        };
        let block = u64::try_from(config.block.as_millis()).unwrap_or(1000);
        let read: redis::RedisResult<Option<StreamReadReply>> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(512)
            .arg("BLOCK")
            .arg(block)
            .arg("STREAMS")
            .arg(&config.stream)
            .arg(&last)
            .query_async(&mut c)
            .await;
        match read {
            Ok(reply) => {
                if !shared.connected.swap(true, Ordering::Relaxed) {
                    tracing::info!(stream = %config.stream, "redis consumer connected");
                }
                backoff = Duration::ZERO;
                conn = Some(c);
                for key in reply.map(|r| r.keys).unwrap_or_default() {
                    for entry in key.ids {
                        match seq_of(&entry.id) {
                            Some(seq) => {
                                shared.apply(seq, &entry.map).await;
                                shared.mark_applied(seq);
                            }
                            None => tracing::warn!(id = %entry.id, "stream entry id out of range"),
                        }
                        last = entry.id;
                    }
                }
            }
            Err(err) => {
                failed(&shared, &err, "read");
                backoff = next_backoff(backoff);
            }
        }
    }
}

fn failed(shared: &Shared, err: &redis::RedisError, what: &str) {
    shared.read_errors.fetch_add(1, Ordering::Relaxed);
    shared.connected.store(false, Ordering::Relaxed);
    tracing::warn!(%err, what, "redis consumer failed; retrying");
}

impl Backend for RedisBackend {
    fn issue(&self, name: Option<String>) -> BackendFuture<'_, ClientId> {
        Box::pin(async move {
            let id = ClientId::random();
            let text = id.to_string();
            let mut fields = vec![("op", "i"), ("id", text.as_str())];
            if let Some(name) = &name {
                fields.push(("name", name));
            }
            self.shared.submit(&fields).await?;
            Ok(id)
        })
    }

    fn subscribe(&self, id: ClientId, key: EventName) -> BackendFuture<'_, ()> {
        Box::pin(async move {
            let id = id.to_string();
            let fields = [("op", "s"), ("id", &id), ("key", key.as_str())];
            self.shared.submit(&fields).await.map(drop)
        })
    }

    fn unsubscribe(&self, id: ClientId, key: EventName) -> BackendFuture<'_, ()> {
        Box::pin(async move {
            let id = id.to_string();
            let fields = [("op", "u"), ("id", &id), ("key", key.as_str())];
            self.shared.submit(&fields).await.map(drop)
        })
    }

    fn remove(&self, id: ClientId) -> BackendFuture<'_, ()> {
        Box::pin(async move {
            let id = id.to_string();
            self.shared
                .submit(&[("op", "r"), ("id", &id)])
                .await
                .map(drop)
        })
    }

    fn clear(&self) -> BackendFuture<'_, ()> {
        Box::pin(async move { self.shared.submit(&[("op", "x")]).await.map(drop) })
    }

    fn publish(
        &self,
        to: Recipients,
        event: Option<EventName>,
        data: String,
    ) -> BackendFuture<'_, usize> {
        Box::pin(async move {
            let to = match &to {
                Recipients::Client(id) => format!("c:{id}"),
                Recipients::Name(name) => format!("n:{name}"),
                Recipients::Key(key) => format!("k:{}", key.as_str()),
                Recipients::All => "a".into(),
            };
            let mut fields = vec![("op", "p"), ("to", to.as_str()), ("d", data.as_str())];
            if let Some(event) = &event {
                fields.push(("e", event.as_str()));
            }
            let seq = self.shared.submit(&fields).await?;
            Ok(self.shared.recipients(seq))
        })
    }

    /// Refreshes the liveness key of every client attached here (TTL: the hub's grace), then
    /// removes, through the stream, the clients idle here beyond their grace or TTL whose
    /// liveness key is gone (attached on no node). Removing twice is harmless, so every node
    /// may sweep at once.
    fn sweep(&self) -> BackendFuture<'_, usize> {
        Box::pin(async move {
            let shared = &self.shared;
            let hub = &shared.hub;
            // Brings the hub's clock (and so the clients' idle times) to now.
            drop(hub.sweep(Instant::now()));
            let hub_config = hub.config();
            let grace = hub_config.grace;
            let limit = grace.max(hub_config.unattached_ttl);
            let ttl = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX).max(1);
            let (mut alive, mut stale) = (Vec::new(), Vec::new());
            let mut offset = Some(0);
            while let Some(from) = offset {
                let (clients, next) = hub.list(from, 1024);
                for client in clients {
                    if client.attached {
                        alive.push(client.id);
                    } else if client.idle > limit {
                        stale.push(client.id);
                    }
                }
                offset = next;
            }
            let prefix = &shared.config.alive_prefix;
            for id in alive {
                let mut cmd = redis::cmd("SET");
                cmd.arg(format!("{prefix}{id}")).arg(1).arg("PX").arg(ttl);
                shared
                    .query::<()>(&cmd)
                    .await
                    .map_err(|err| BackendError::new(format!("redis unavailable: {err}")))?;
            }
            let mut removed = 0;
            for id in stale {
                let mut cmd = redis::cmd("EXISTS");
                cmd.arg(format!("{prefix}{id}"));
                let exists: bool = shared
                    .query(&cmd)
                    .await
                    .map_err(|err| BackendError::new(format!("redis unavailable: {err}")))?;
                if !exists && hub.contains(id) {
                    self.remove(id).await?;
                    removed += 1;
                }
            }
            Ok(removed)
        })
    }
}
