#![doc = include_str!("../README.md")]

mod consume;
mod link;
mod lookups;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::{AsyncConnectionConfig, Client};
use sse_codec::EventName;
use sse_http::{
    Backend, BackendError, BackendFuture, Config, Metric, Once, Published, Recipients, Runtime,
    Sse, TaskHandler,
};
use sse_registry::{ClientId, Hub};

use crate::link::Link;
use crate::lookups::{Negative, Rate};

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
    /// When set, the stream is bounded by age in place of [`max_len`](Self::max_len): entries
    /// older than this are trimmed, approximately (`MINID ~`, Redis 6.2 or later). The age is
    /// reckoned from the appending node's clock against the time in the entry ids (those of the
    /// Redis server's clock), so clock skew between them shifts it. Default: `None`.
    pub max_age: Option<Duration>,
    /// How long one connect or one command waits for Redis, and then how long a call waits for
    /// this node to apply its record; all within [`deadline`](Self::deadline). Default: 2 s.
    pub timeout: Duration,
    /// The longest a call of the service (one HTTP request) waits on Redis, all round trips and
    /// the wait for this node to apply its record together; then it fails (`503`). Each round
    /// trip of a sweep has a deadline of its own. Default: 2 s.
    pub deadline: Duration,
    /// Consecutive failures of the shared connection (connects and round trips) after which
    /// the circuit breaker opens: every call fails at once, without trying Redis, for
    /// [`breaker_cooldown`](Self::breaker_cooldown); then one call probes Redis while the others
    /// keep failing at once, and its success closes the breaker. `0` counts as `1`.
    /// Default: 5.
    pub breaker_threshold: u32,
    /// How long the open breaker fails every call before it lets one probe. Default: 1 s.
    pub breaker_cooldown: Duration,
    /// Ids Redis did not have that a node remembers, so that looking one up again costs no
    /// round trip (the oldest is forgotten first); `0` turns the cache off. Default: 10,000.
    pub negative_capacity: usize,
    /// How long a node remembers that Redis did not have an id. Applying the id's issue record
    /// forgets it at once; see the crate docs for the one case where a real id meets a stale
    /// entry. Default: 1 s.
    pub negative_ttl: Duration,
    /// Lookups of ids this node does not know (and did not just find unknown) that may reach
    /// Redis per [`lookup_period`](Self::lookup_period), for the whole node; beyond it a lookup
    /// fails at once (`503`). A token bucket: this many at once, refilled evenly over the
    /// period. Default: 1,000.
    pub lookup_limit: u32,
    /// The period of [`lookup_limit`](Self::lookup_limit). Default: 1 s.
    pub lookup_period: Duration,
    /// How long one `XREAD` blocks. Default: 1 s.
    pub block: Duration,
    /// First delay before retrying after a failure of the consumer loop. Default: 50 ms.
    pub backoff_min: Duration,
    /// Longest delay between retries. Default: 2 s.
    pub backoff_max: Duration,
    /// Prefix of the liveness keys the sweep uses. Default: `sse:alive:`.
    pub alive_prefix: String,
    /// Prefix of the client records: one hash per client (`<prefix><id>`: the stream entry that
    /// issued it, its name, its keys), written in the same script as the stream record that
    /// changes it, so that a node that does not know an id (it started after the stream was
    /// trimmed past the client's records) can look it up. Each expires after twice the hub's
    /// longest idle limit ([`grace`](sse_registry::Config::grace) or
    /// [`unattached_ttl`](sse_registry::Config::unattached_ttl)), a time refreshed when the
    /// client subscribes or opens a stream and by every sweep while it is attached.
    /// Default: `sse:client:`.
    pub client_prefix: String,
    /// Prefix of the sweep's removal claims: the node whose sweep sets `<prefix><id>` first
    /// (`SET NX`, in the same script as its removal record) is the only one that appends the
    /// client's removal. Each expires with the client record's TTL. Default: `sse:swept:`.
    pub claim_prefix: String,
    /// The key holding the stream entry id of the last "forget every client": a client record
    /// older than it is void. Default: `sse:cleared`.
    pub cleared_key: String,
    /// Prefix of the keys of idempotent publishes (`<prefix><scoped key>`, holding the entry id
    /// of the publish; TTL: the service's `idempotency_ttl`), set in the same script that
    /// appends the event, and of their index `<prefix>index` (a sorted set by expiry that
    /// bounds them to the service's `idempotency_capacity` over the cluster). Default:
    /// `sse:once:`.
    pub idempotency_prefix: String,
}

impl RedisConfig {
    /// The defaults, for the server at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            stream: "sse:events".into(),
            max_len: 100_000,
            max_age: None,
            timeout: Duration::from_secs(2),
            deadline: Duration::from_secs(2),
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(1),
            negative_capacity: 10_000,
            negative_ttl: Duration::from_secs(1),
            lookup_limit: 1_000,
            lookup_period: Duration::from_secs(1),
            block: Duration::from_secs(1),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
            alive_prefix: "sse:alive:".into(),
            client_prefix: "sse:client:".into(),
            claim_prefix: "sse:swept:".into(),
            cleared_key: "sse:cleared".into(),
            idempotency_prefix: "sse:once:".into(),
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
    /// Clients this node did not know and imported from their Redis record on a lookup.
    pub imported: u64,
    /// Gaps the consumer loop found: the stream was trimmed past the last entry it had applied
    /// before it read the entries after it. Each one resynchronised the node (see the crate
    /// docs).
    pub gaps: u64,
    /// Clients re-imported from their Redis records by those resynchronisations.
    pub resynced: u64,
    /// Calls that failed at once without trying Redis: the breaker was open, or another call
    /// was connecting.
    pub fast_failures: u64,
    /// Times the circuit breaker opened.
    pub breaker_opens: u64,
    /// Whether the circuit breaker is open now.
    pub breaker_open: bool,
    /// Ids issued whose record Redis took but this node had not applied in time: the id was
    /// returned all the same (it is valid on every node).
    pub late_issues: u64,
    /// Lookups of unknown ids that read Redis.
    pub lookups: u64,
    /// Lookups answered by the negative cache, without a round trip.
    pub negative_hits: u64,
    /// Lookups refused because the node's rate of lookups was spent.
    pub lookups_limited: u64,
    /// How far behind the stream's end this node's consumer is, in milliseconds: the age of the
    /// last entry it applied (its id's time against this node's clock) when it applied it. A few
    /// milliseconds while it keeps up; it grows while the node falls behind (or cannot read).
    pub apply_lag_ms: u64,
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
    /// The connection for appends, lookups and the sweep, and its circuit breaker.
    link: Link,
    /// Ids Redis did not have, for a while.
    negative: Mutex<Negative>,
    /// The node's rate of lookups that reach Redis.
    lookup_rate: Mutex<Rate>,
    /// The highest sequence number of a record this node has applied.
    applied: tokio::sync::watch::Sender<u64>,
    /// Recipients of the latest events applied, for the callers waiting on them.
    recent: Mutex<VecDeque<(u64, usize)>>,
    /// Held by the consumer loop while it applies an entry, and by a lookup while it reads and
    /// imports a client record: the record is then never older than what the hub has applied.
    gate: tokio::sync::Mutex<()>,
    /// How long a client record lives without a refresh, in milliseconds.
    record_ttl: u64,
    /// How long a liveness key lives without a refresh (the hub's grace), in milliseconds.
    alive_ttl: u64,
    appended: AtomicU64,
    append_errors: AtomicU64,
    applied_count: AtomicU64,
    read_errors: AtomicU64,
    connected: AtomicBool,
    imported: AtomicU64,
    gaps: AtomicU64,
    resynced: AtomicU64,
    fast_failures: AtomicU64,
    breaker_opened: AtomicU64,
    late_issues: AtomicU64,
    lookups: AtomicU64,
    negative_hits: AtomicU64,
    lookups_limited: AtomicU64,
    apply_lag_ms: AtomicU64,
}

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field("stream", &self.shared.config.stream)
            .field("counts", &self.counts())
            .finish_non_exhaustive()
    }
}

/// How many applied events the backend remembers the recipient count of, for the callers that
/// published them and wait for them to be applied (far more than can be in flight at once).
const RECENT: usize = 4096;

/// Appends one record to the stream and updates the client record it changes, atomically, so
/// that the records and the stream never disagree; opening a stream also sets the client's
/// liveness key. `KEYS`: the stream, the client record, the clear marker, the liveness key, the
/// stream's counter. `ARGV`: the trim strategy (`MAXLEN` or `MINID`) and its threshold, the TTLs
/// of the record and of the liveness key in milliseconds, then the entry's fields and values
/// (`op` first). Every entry carries its number `n` from the counter, one more than the entry
/// before it, so that a node sees when it missed some. Returns the entry id.
const APPEND: &str = r"
local f = {}
for i = 5, #ARGV, 2 do f[ARGV[i]] = ARGV[i + 1] end
local n = redis.call('INCR', KEYS[5])
local id = redis.call('XADD', KEYS[1], ARGV[1], '~', ARGV[2], '*', 'n', n, unpack(ARGV, 5))
local op, rec, ttl = f['op'], KEYS[2], ARGV[3]
if op == 'i' then
  redis.call('HSET', rec, 'i', id)
  if f['name'] then redis.call('HSET', rec, 'name', f['name']) end
  redis.call('PEXPIRE', rec, ttl)
elseif op == 's' then
  if redis.call('HEXISTS', rec, 'i') == 1 then
    redis.call('HSET', rec, 'k:' .. f['key'], '1')
    redis.call('PEXPIRE', rec, ttl)
  end
elseif op == 'u' then
  redis.call('HDEL', rec, 'k:' .. f['key'])
elseif op == 'a' then
  if redis.call('HEXISTS', rec, 'i') == 1 then redis.call('PEXPIRE', rec, ttl) end
  redis.call('SET', KEYS[4], '1', 'PX', ARGV[4])
elseif op == 'r' then
  redis.call('DEL', rec)
elseif op == 'x' then
  redis.call('SET', KEYS[3], id)
end
return id
";

/// Appends an event, numbered as [`APPEND`] numbers every entry. `KEYS`: the stream, its counter.
/// `ARGV`: the trim strategy and threshold, then the entry's fields and values. Returns the
/// entry id.
const EVENT: &str = r"
local n = redis.call('INCR', KEYS[2])
return redis.call('XADD', KEYS[1], ARGV[1], '~', ARGV[2], '*', 'n', n, unpack(ARGV, 3))
";

/// Appends an event unless its idempotency key is set: the key and the append in one step, so
/// that of the retries of a publish on any node, one appends and the others find the key.
/// `KEYS`: the stream, its counter, the idempotency key, the index of the idempotency keys.
/// `ARGV`: the trim strategy and threshold, the key's TTL in milliseconds, now and then its
/// expiry in milliseconds (the appending node's clock), the most keys the index holds, then the
/// entry's fields and values. The index is a sorted set of the keys by expiry: the expired are
/// dropped from it, and beyond the capacity the soonest to expire are deleted with their keys.
/// Returns `{1, entry id}` for an append, `{0, entry id of the first append}` for a replay.
const ONCE: &str = r"
local prev = redis.call('GET', KEYS[3])
if prev then return {0, prev} end
local n = redis.call('INCR', KEYS[2])
local id = redis.call('XADD', KEYS[1], ARGV[1], '~', ARGV[2], '*', 'n', n, unpack(ARGV, 7))
redis.call('SET', KEYS[3], id, 'PX', ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', ARGV[4])
redis.call('ZADD', KEYS[4], ARGV[5], KEYS[3])
redis.call('PEXPIRE', KEYS[4], ARGV[3])
local over = redis.call('ZCARD', KEYS[4]) - tonumber(ARGV[6])
if over > 0 then
  local oldest = redis.call('ZPOPMIN', KEYS[4], over)
  for i = 1, #oldest, 2 do redis.call('DEL', oldest[i]) end
end
return {1, id}
";

/// Removes the stale clients whose liveness key is gone, each claimed first so that, of the
/// nodes sweeping at once, only one appends its removal record (numbered as [`APPEND`] numbers
/// every entry). `KEYS`: the stream, its counter, then for each client its liveness key, its
/// record and its claim. `ARGV`: the trim strategy and threshold, the claim's TTL in
/// milliseconds, then the client ids. Returns the entry ids appended.
const SWEEP: &str = r"
local out = {}
for j = 1, (#KEYS - 2) / 3 do
  local alive, rec, claim = KEYS[3 * j], KEYS[3 * j + 1], KEYS[3 * j + 2]
  if redis.call('EXISTS', alive) == 0
    and redis.call('SET', claim, '1', 'NX', 'PX', ARGV[3]) then
    local n = redis.call('INCR', KEYS[2])
    out[#out + 1] = redis.call('XADD', KEYS[1], ARGV[1], '~', ARGV[2], '*',
      'n', n, 'op', 'r', 'id', ARGV[3 + j])
    redis.call('DEL', rec)
  end
end
return out
";

/// Clients the sweep handles in one round trip: the liveness refreshes in one pipeline, the
/// removals in one script (which holds Redis for a few microseconds per client).
const SWEEP_PIPELINE: usize = 256;

/// A client as its Redis record holds it.
struct Record {
    name: Option<String>,
    keys: Vec<String>,
}

impl RedisBackend {
    /// A protocol service on a new hub shared through Redis: the hub, this backend feeding it
    /// and the [`Sse`] reading it, wired as [`Sse::with_backend`] wants them (one hub for
    /// both). Returns the backend too, for its [`counts`](Self::counts). Must be called where
    /// `runtime` can spawn (the consumer loop starts at once); fails only on a malformed URL.
    pub fn service(
        config: Config,
        redis: RedisConfig,
        runtime: Arc<dyn Runtime>,
        tasks: impl TaskHandler,
    ) -> Result<(Sse, Self), redis::RedisError> {
        let hub = Hub::new(config.registry.clone());
        let backend = Self::start(redis, hub.clone(), runtime.clone())?;
        let sse = Sse::with_backend(config, hub, Arc::new(backend.clone()), runtime, tasks);
        Ok((sse, backend))
    }

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
        let hub_config = hub.config();
        let longest = hub_config.grace.max(hub_config.unattached_ttl);
        // At least a second; at most about 70 years (Redis refuses expiry times that overflow).
        let record_ttl = u64::try_from(longest.as_millis())
            .unwrap_or(u64::MAX)
            .clamp(500, 1 << 40)
            * 2;
        let alive_ttl = u64::try_from(hub_config.grace.as_millis())
            .unwrap_or(u64::MAX)
            .clamp(1, 1 << 40);
        let shared = Arc::new(Shared {
            hub,
            client,
            runtime: runtime.clone(),
            link: Link::default(),
            negative: Mutex::new(Negative::new(config.negative_capacity, config.negative_ttl)),
            lookup_rate: Mutex::new(Rate::new(config.lookup_limit, config.lookup_period)),
            applied,
            recent: Mutex::new(VecDeque::new()),
            gate: tokio::sync::Mutex::new(()),
            record_ttl,
            alive_ttl,
            appended: AtomicU64::new(0),
            append_errors: AtomicU64::new(0),
            applied_count: AtomicU64::new(0),
            read_errors: AtomicU64::new(0),
            connected: AtomicBool::new(false),
            imported: AtomicU64::new(0),
            gaps: AtomicU64::new(0),
            resynced: AtomicU64::new(0),
            fast_failures: AtomicU64::new(0),
            breaker_opened: AtomicU64::new(0),
            late_issues: AtomicU64::new(0),
            lookups: AtomicU64::new(0),
            negative_hits: AtomicU64::new(0),
            lookups_limited: AtomicU64::new(0),
            apply_lag_ms: AtomicU64::new(0),
            config,
        });
        runtime.spawn(Box::pin(consume::consume(Arc::downgrade(&shared))));
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
            imported: s.imported.load(Ordering::Relaxed),
            gaps: s.gaps.load(Ordering::Relaxed),
            resynced: s.resynced.load(Ordering::Relaxed),
            fast_failures: s.fast_failures.load(Ordering::Relaxed),
            breaker_opens: s.breaker_opened.load(Ordering::Relaxed),
            breaker_open: s.link.is_open(),
            late_issues: s.late_issues.load(Ordering::Relaxed),
            lookups: s.lookups.load(Ordering::Relaxed),
            negative_hits: s.negative_hits.load(Ordering::Relaxed),
            lookups_limited: s.lookups_limited.load(Ordering::Relaxed),
            apply_lag_ms: s.apply_lag_ms.load(Ordering::Relaxed),
        }
    }
}

impl Shared {
    fn conn_config(&self, connect: Duration, response: Duration) -> AsyncConnectionConfig {
        AsyncConnectionConfig::new()
            .set_connection_timeout(Some(connect))
            .set_response_timeout(Some(response))
    }

    /// When a call that starts now must be done with Redis.
    fn deadline(&self) -> Instant {
        Instant::now() + self.config.deadline
    }

    /// How `XADD` trims the stream: `MAXLEN` and the length, or `MINID` and the oldest entry id
    /// to keep.
    fn trim(&self) -> (&'static str, String) {
        match self.config.max_age {
            None => ("MAXLEN", self.config.max_len.to_string()),
            Some(age) => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default();
                (
                    "MINID",
                    format!("{}-0", now.saturating_sub(age).as_millis()),
                )
            }
        }
    }

    fn record_key(&self, id: impl fmt::Display) -> String {
        format!("{}{id}", self.config.client_prefix)
    }

    fn alive_key(&self, id: impl fmt::Display) -> String {
        format!("{}{id}", self.config.alive_prefix)
    }

    /// The counter numbering the stream's entries: `<stream>:n`.
    fn counter_key(&self) -> String {
        format!("{}:n", self.config.stream)
    }

    fn claim_key(&self, id: impl fmt::Display) -> String {
        format!("{}{id}", self.config.claim_prefix)
    }

    /// Appends a record and waits until this node has applied it; returns its sequence number.
    async fn submit(
        &self,
        fields: &[(&str, &str)],
        deadline: Instant,
    ) -> Result<u64, BackendError> {
        let seq = self.append(fields, deadline).await?;
        if self.applied_by(seq, deadline).await {
            Ok(seq)
        } else {
            Err(BackendError::maybe_applied(
                "the shared store took the change, but this node had not applied it in time",
            ))
        }
    }

    /// Appends a record; returns its sequence number. Events go in with the [`EVENT`] script;
    /// records that change a client, with the [`APPEND`] script that changes its Redis record
    /// in the same step.
    async fn append(
        &self,
        fields: &[(&str, &str)],
        deadline: Instant,
    ) -> Result<u64, BackendError> {
        let config = &self.config;
        let (strategy, threshold) = self.trim();
        let mut cmd = if fields.first() == Some(&("op", "p")) {
            let mut cmd = redis::cmd("EVAL");
            cmd.arg(EVENT)
                .arg(2)
                .arg(&config.stream)
                .arg(self.counter_key())
                .arg(strategy)
                .arg(threshold);
            cmd
        } else {
            let client = fields.iter().find(|(k, _)| *k == "id").map_or("", |f| f.1);
            let mut cmd = redis::cmd("EVAL");
            cmd.arg(APPEND)
                .arg(5)
                .arg(&config.stream)
                .arg(self.record_key(client))
                .arg(&config.cleared_key)
                .arg(self.alive_key(client))
                .arg(self.counter_key())
                .arg(strategy)
                .arg(threshold)
                .arg(self.record_ttl)
                .arg(self.alive_ttl);
            cmd
        };
        for (k, v) in fields {
            cmd.arg(*k).arg(*v);
        }
        let id: String = match self.query(&cmd, deadline).await {
            Ok(id) => id,
            Err(failure) => {
                self.append_errors.fetch_add(1, Ordering::Relaxed);
                return Err(failure.into_error("append", true));
            }
        };
        self.appended.fetch_add(1, Ordering::Relaxed);
        seq_of(&id).ok_or_else(|| {
            tracing::warn!(entry = %id, "redis answered an append with an unexpected entry id");
            BackendError::maybe_applied("the shared store gave an unexpected answer")
        })
    }

    /// Appends an event with the [`ONCE`] script unless its key is set; returns whether it
    /// appended, and the sequence number of the entry (this one's, or the first append's).
    async fn append_once(
        &self,
        once: &Once,
        fields: &[(&str, &str)],
        deadline: Instant,
    ) -> Result<(bool, u64), BackendError> {
        let (strategy, threshold) = self.trim();
        let ttl = u64::try_from(once.ttl.as_millis())
            .unwrap_or(u64::MAX)
            .clamp(1, 1 << 40);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let prefix = &self.config.idempotency_prefix;
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(ONCE)
            .arg(4)
            .arg(&self.config.stream)
            .arg(self.counter_key())
            .arg(format!("{prefix}{}", once.key.as_str()))
            .arg(format!("{prefix}index"))
            .arg(strategy)
            .arg(threshold)
            .arg(ttl)
            .arg(now)
            .arg(now.saturating_add(ttl))
            // Capacity 0 remembers nothing: the key is deleted as soon as it is set.
            .arg(once.capacity);
        for (k, v) in fields {
            cmd.arg(*k).arg(*v);
        }
        let (appended, id): (u8, String) = match self.query(&cmd, deadline).await {
            Ok(reply) => reply,
            Err(failure) => {
                self.append_errors.fetch_add(1, Ordering::Relaxed);
                return Err(failure.into_error("append", true));
            }
        };
        if appended == 1 {
            self.appended.fetch_add(1, Ordering::Relaxed);
        }
        let seq = seq_of(&id).ok_or_else(|| {
            tracing::warn!(entry = %id, "redis answered an append with an unexpected entry id");
            BackendError::maybe_applied("the shared store gave an unexpected answer")
        })?;
        Ok((appended == 1, seq))
    }

    /// Waits until this node has applied the record `seq`, at most [`RedisConfig::timeout`] and
    /// not past `deadline`; returns whether it has.
    async fn applied_by(&self, seq: u64, deadline: Instant) -> bool {
        let mut applied = self.applied.subscribe();
        let wait = applied.wait_for(|&done| done >= seq);
        let until = deadline.min(Instant::now() + self.config.timeout);
        matches!(self.within(until, wait).await, Some(Ok(_)))
    }

    fn recipients(&self, seq: u64) -> usize {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent
            .iter()
            .rev()
            .find(|(s, _)| *s == seq)
            .map_or(0, |(_, n)| *n)
    }

    /// The client's Redis record, if it has a valid one: written when it was issued, not
    /// removed since, and newer than the last "forget every client".
    async fn record(
        &self,
        id: ClientId,
        deadline: Instant,
    ) -> Result<Option<Record>, BackendError> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("HGETALL")
            .arg(self.record_key(id))
            .cmd("GET")
            .arg(&self.config.cleared_key);
        let (fields, cleared): (HashMap<String, String>, Option<String>) = self
            .query_pipe(&pipe, deadline)
            .await
            .map_err(|failure| failure.into_error("record read", false))?;
        Ok(Record::parse(fields, cleared.as_deref()))
    }
}

impl Record {
    /// The record in `fields` (a client hash), if it is valid: written when the client was
    /// issued, and newer than the last "forget every client" (`cleared`).
    fn parse(fields: HashMap<String, String>, cleared: Option<&str>) -> Option<Self> {
        let issued = fields.get("i").and_then(|i| seq_of(i))?;
        if cleared
            .and_then(seq_of)
            .is_some_and(|cleared| cleared >= issued)
        {
            return None;
        }
        let keys = fields
            .keys()
            .filter_map(|f| f.strip_prefix("k:"))
            .map(str::to_owned)
            .collect();
        Some(Self {
            name: fields.get("name").cloned(),
            keys,
        })
    }
}

impl Shared {
    /// Imports a client this node does not know from its Redis record (see
    /// [`Backend::lookup`]); returns whether the hub knows it now.
    async fn lookup(&self, id: ClientId) -> Result<bool, BackendError> {
        let hub = &self.hub;
        // A first look without the gate: ids nobody issued (the common unknown id) never hold
        // up the consumer loop.
        if hub.contains(id) {
            return Ok(true);
        }
        let now = Instant::now();
        if lock(&self.negative).contains(id, now) {
            self.negative_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(false);
        }
        if !lock(&self.lookup_rate).take(now) {
            self.lookups_limited.fetch_add(1, Ordering::Relaxed);
            return Err(BackendError::unavailable(
                "too many lookups of unknown clients; try again later",
            ));
        }
        self.lookups.fetch_add(1, Ordering::Relaxed);
        let deadline = self.deadline();
        if self.record(id, deadline).await?.is_none() {
            lock(&self.negative).insert(id, Instant::now());
            return Ok(false);
        }
        // With the consumer paused between two entries, the record read now reflects every
        // entry the hub has applied, and maybe some more: applying those later to the imported
        // client is harmless, as each sets a field to what the record already holds (or
        // removes the client, which the record would then not hold).
        let Some(_gate) = self.within(deadline, self.gate.lock()).await else {
            return Err(BackendError::unavailable(
                "this node is catching up with the shared store",
            ));
        };
        if hub.contains(id) {
            return Ok(true); // its `i` entry was applied meanwhile
        }
        let Some(record) = self.record(id, deadline).await? else {
            return Ok(false);
        };
        self.import(id, record).map_err(BackendError::Refused)?;
        self.imported.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(client = %id.tag(), "client imported from its redis record");
        Ok(true)
    }

    /// Adds a client to the hub from its record: its name and its keys.
    fn import(&self, id: ClientId, record: Record) -> Result<(), sse_registry::Error> {
        self.hub
            .import(id, record.name.as_deref(), Instant::now())?;
        for key in record.keys {
            if let Ok(key) = EventName::new(key) {
                let _ = self.hub.subscribe(id, &key);
            }
        }
        Ok(())
    }
}

/// The `to` field of an event's entry.
fn recipients_field(to: &Recipients) -> String {
    match to {
        Recipients::Client(id) => format!("c:{id}"),
        Recipients::Name(name) => format!("n:{name}"),
        Recipients::Key(key) => format!("k:{}", key.as_str()),
        Recipients::All => "a".into(),
    }
}

/// The fields of a publish's stream entry (`op` first: the append reads it), for
/// [`publish`](Backend::publish) and [`publish_once`](Backend::publish_once) alike.
fn publish_fields<'a>(
    to: &'a str,
    event: Option<&'a EventName>,
    data: &'a str,
) -> Vec<(&'static str, &'a str)> {
    let mut fields = vec![("op", "p"), ("to", to), ("d", data)];
    if let Some(event) = event {
        fields.push(("e", event.as_str()));
    }
    fields
}

/// Locks a std mutex, whether or not a panic poisoned it (what it guards stays consistent).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Backend for RedisBackend {
    fn report(&self) -> Option<serde_json::Value> {
        let c = self.counts();
        Some(serde_json::json!({
            "kind": "redis",
            "stream": self.shared.config.stream,
            "connected": c.connected,
            "appended": c.appended,
            "append_errors": c.append_errors,
            "applied": c.applied,
            "read_errors": c.read_errors,
            "imported": c.imported,
            "gaps": c.gaps,
            "resynced": c.resynced,
            "fast_failures": c.fast_failures,
            "breaker_opens": c.breaker_opens,
            "breaker_open": c.breaker_open,
            "late_issues": c.late_issues,
            "lookups": c.lookups,
            "negative_hits": c.negative_hits,
            "lookups_limited": c.lookups_limited,
            "apply_lag_ms": c.apply_lag_ms,
        }))
    }

    fn metrics(&self) -> Vec<(&'static str, Metric)> {
        let c = self.counts();
        let gauge = |help, value| Metric::Gauge { help, value };
        let counter = |help, value| Metric::Counter { help, value };
        vec![
            (
                "sse_backend_connected",
                gauge(
                    "Whether the consumer's last read of the Redis stream succeeded (1) or not (0)",
                    u64::from(c.connected),
                ),
            ),
            (
                "sse_backend_breaker_open",
                gauge(
                    "Whether the circuit breaker is open: calls fail at once without trying Redis",
                    u64::from(c.breaker_open),
                ),
            ),
            (
                "sse_backend_apply_lag_ms",
                gauge(
                    "How far behind the stream's end this node is: the age of the last entry it applied, when it applied it",
                    c.apply_lag_ms,
                ),
            ),
            (
                "sse_backend_appended",
                counter("Records this node appended to the stream", c.appended),
            ),
            (
                "sse_backend_append_errors",
                counter("Appends that failed", c.append_errors),
            ),
            (
                "sse_backend_applied",
                counter("Records this node's consumer applied", c.applied),
            ),
            (
                "sse_backend_read_errors",
                counter(
                    "Failures of the consumer's connects and reads",
                    c.read_errors,
                ),
            ),
            (
                "sse_backend_imported",
                counter(
                    "Clients imported from their Redis records on a lookup",
                    c.imported,
                ),
            ),
            (
                "sse_backend_gaps",
                counter(
                    "Gaps found: the stream was trimmed past what this node had read; each resynchronised it",
                    c.gaps,
                ),
            ),
            (
                "sse_backend_resynced",
                counter("Clients re-imported by resynchronisations", c.resynced),
            ),
            (
                "sse_backend_fast_failures",
                counter(
                    "Calls failed at once (breaker open, or another call connecting)",
                    c.fast_failures,
                ),
            ),
            (
                "sse_backend_breaker_opens",
                counter("Times the circuit breaker opened", c.breaker_opens),
            ),
            (
                "sse_backend_late_issues",
                counter(
                    "Ids returned although this node had not applied them in time",
                    c.late_issues,
                ),
            ),
            (
                "sse_backend_lookups",
                counter("Lookups of unknown ids that read Redis", c.lookups),
            ),
            (
                "sse_backend_negative_hits",
                counter("Lookups answered by the negative cache", c.negative_hits),
            ),
            (
                "sse_backend_lookups_limited",
                counter(
                    "Lookups refused by the node's lookup rate",
                    c.lookups_limited,
                ),
            ),
        ]
    }

    /// Appends the issue record (and writes the client's Redis record in the same step), then
    /// waits for this node to apply it. Once Redis took it, the id is valid on every node, so
    /// it is returned even if this node did not apply it in time (counted in
    /// [`Counts::late_issues`]): a route on this node that meets the id first looks it up in
    /// its record.
    fn issue(&self, name: Option<String>) -> BackendFuture<'_, ClientId> {
        Box::pin(async move {
            let shared = &self.shared;
            // Checked against this node's replica, which every node shares.
            shared.hub.has_room(name.as_deref())?;
            let id = ClientId::random();
            let text = id.to_string();
            let mut fields = vec![("op", "i"), ("id", text.as_str())];
            if let Some(name) = &name {
                fields.push(("name", name));
            }
            let deadline = shared.deadline();
            let seq = shared.append(&fields, deadline).await?;
            if !shared.applied_by(seq, deadline).await {
                shared.late_issues.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("issued an id this node has not applied yet");
            }
            Ok(id)
        })
    }

    fn subscribe(&self, id: ClientId, key: EventName) -> BackendFuture<'_, ()> {
        Box::pin(async move {
            // Checked here against this node's replica, applied on every node.
            let hub = &self.shared.hub;
            let keys = hub.keys(id)?;
            let subscribed = keys.iter().any(|k| **k == *key.as_str());
            if !subscribed && keys.len() >= hub.config().max_keys_per_client {
                return Err(sse_registry::Error::TooManyKeys.into());
            }
            let id = id.to_string();
            let fields = [("op", "s"), ("id", &id), ("key", key.as_str())];
            self.shared
                .submit(&fields, self.shared.deadline())
                .await
                .map(drop)
        })
    }

    fn unsubscribe(&self, id: ClientId, key: EventName) -> BackendFuture<'_, ()> {
        Box::pin(async move {
            let id = id.to_string();
            let fields = [("op", "u"), ("id", &id), ("key", key.as_str())];
            self.shared
                .submit(&fields, self.shared.deadline())
                .await
                .map(drop)
        })
    }

    fn remove(&self, id: ClientId) -> BackendFuture<'_, ()> {
        Box::pin(async move {
            let id = id.to_string();
            self.shared
                .submit(&[("op", "r"), ("id", &id)], self.shared.deadline())
                .await
                .map(drop)
        })
    }

    fn clear(&self) -> BackendFuture<'_, ()> {
        Box::pin(async move {
            self.shared
                .submit(&[("op", "x")], self.shared.deadline())
                .await
                .map(drop)
        })
    }

    /// Appends the event and waits for this node to apply it. An append whose reply is lost
    /// (or comes after the deadline) fails with [`BackendError::maybe_applied`]: Redis may have
    /// taken it, and then every node delivers it, once. A caller that retries such a failure
    /// may have it delivered twice, unless it gives the publish a key
    /// ([`publish_once`](Backend::publish_once), the admin routes' `Idempotency-Key`).
    fn publish(
        &self,
        to: Recipients,
        event: Option<EventName>,
        data: String,
    ) -> BackendFuture<'_, usize> {
        Box::pin(async move {
            let to = recipients_field(&to);
            let fields = publish_fields(&to, event.as_ref(), &data);
            let seq = self.shared.submit(&fields, self.shared.deadline()).await?;
            Ok(self.shared.recipients(seq))
        })
    }

    /// Appends the event unless its key is in Redis, in one script (see
    /// [`RedisConfig::idempotency_prefix`]): a retry on any node within the TTL is a replay,
    /// however the first attempt ended (its reply lost, or a `503` that said it may have been
    /// applied). A replay waits, like a publish, for this node to apply the first append (at
    /// most the deadline), so that its success means the event is in this node's hub.
    fn publish_once(
        &self,
        once: Once,
        to: Recipients,
        event: Option<EventName>,
        data: String,
    ) -> BackendFuture<'_, Published> {
        Box::pin(async move {
            let shared = &self.shared;
            let to = recipients_field(&to);
            let fields = publish_fields(&to, event.as_ref(), &data);
            let deadline = shared.deadline();
            let (appended, seq) = shared.append_once(&once, &fields, deadline).await?;
            let applied = shared.applied_by(seq, deadline).await;
            match (appended, applied) {
                (true, true) => Ok(Published::Delivered(shared.recipients(seq))),
                (true, false) => Err(BackendError::maybe_applied(
                    "the shared store took the change, but this node had not applied it in time",
                )),
                // Published before: whether this node has applied it yet or not.
                (false, _) => Ok(Published::Replayed),
            }
        })
    }

    /// Refreshes the liveness key (TTL: the hub's grace; opening a stream sets it too) and the
    /// client record of every client attached here, then removes, through the stream, the
    /// clients idle here beyond their grace or TTL whose liveness key is gone (attached on no
    /// node). Every node may sweep at once: a client's removal is appended once, by the node
    /// that claims it first. Each round trip (of up to 256 clients) has its own
    /// [`deadline`](RedisConfig::deadline).
    fn sweep(&self) -> BackendFuture<'_, usize> {
        Box::pin(async move {
            let shared = &self.shared;
            let hub = &shared.hub;
            // Brings the hub's clock (and so the clients' idle times) to now.
            drop(hub.sweep(Instant::now()));
            let hub_config = hub.config();
            let limit = hub_config.grace.max(hub_config.unattached_ttl);
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
            for chunk in alive.chunks(SWEEP_PIPELINE) {
                let mut pipe = redis::pipe();
                for id in chunk {
                    pipe.cmd("SET")
                        .arg(shared.alive_key(id))
                        .arg(1)
                        .arg("PX")
                        .arg(shared.alive_ttl)
                        .ignore()
                        .cmd("PEXPIRE")
                        .arg(shared.record_key(id))
                        .arg(shared.record_ttl)
                        .ignore();
                }
                shared
                    .query_pipe::<()>(&pipe, shared.deadline())
                    .await
                    .map_err(|failure| failure.into_error("sweep refresh", false))?;
            }
            let (mut removed, mut last) = (0, None);
            for chunk in stale.chunks(SWEEP_PIPELINE) {
                let (strategy, threshold) = shared.trim();
                let mut cmd = redis::cmd("EVAL");
                cmd.arg(SWEEP)
                    .arg(2 + 3 * chunk.len())
                    .arg(&shared.config.stream)
                    .arg(shared.counter_key());
                for id in chunk {
                    cmd.arg(shared.alive_key(id))
                        .arg(shared.record_key(id))
                        .arg(shared.claim_key(id));
                }
                cmd.arg(strategy).arg(threshold).arg(shared.record_ttl);
                for id in chunk {
                    cmd.arg(id.to_string());
                }
                let entries: Vec<String> = shared
                    .query(&cmd, shared.deadline())
                    .await
                    .map_err(|failure| failure.into_error("sweep removal", true))?;
                shared
                    .appended
                    .fetch_add(entries.len() as u64, Ordering::Relaxed);
                removed += entries.len();
                last = entries.iter().filter_map(|e| seq_of(e)).max().or(last);
            }
            // The removals are in the stream (and so on every node); this node applies them
            // before the sweep returns, unless that takes longer than the deadline.
            if let Some(seq) = last {
                shared.applied_by(seq, shared.deadline()).await;
            }
            Ok(removed)
        })
    }

    fn lookup(&self, id: ClientId) -> BackendFuture<'_, bool> {
        Box::pin(self.shared.lookup(id))
    }

    /// Appends an "attached" record: every node that applies it ends the client's stream if it
    /// has one open; this node applies it before it returns, so before its new stream opens.
    fn attach(&self, id: ClientId) -> BackendFuture<'_, ()> {
        Box::pin(async move {
            let id = id.to_string();
            self.shared
                .submit(&[("op", "a"), ("id", &id)], self.shared.deadline())
                .await
                .map(drop)
        })
    }
}
