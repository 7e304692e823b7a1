#![doc = include_str!("../README.md")]

mod consume;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, FromRedisValue};
use sse_codec::EventName;
use sse_http::{
    Backend, BackendError, BackendFuture, Config, Recipients, Runtime, Sse, TaskHandler,
};
use sse_registry::{ClientId, Hub};

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
    /// Prefix of the client records: one hash per client (`<prefix><id>`: the stream entry that
    /// issued it, its name, its keys), written in the same script as the stream record that
    /// changes it, so that a node that does not know an id (it started after the stream was
    /// trimmed past the client's records) can look it up. Each expires after twice the hub's
    /// longest idle limit ([`grace`](sse_registry::Config::grace) or
    /// [`unattached_ttl`](sse_registry::Config::unattached_ttl)), a time refreshed when the
    /// client subscribes or opens a stream and by every sweep while it is attached.
    /// Default: `sse:client:`.
    pub client_prefix: String,
    /// The key holding the stream entry id of the last "forget every client": a client record
    /// older than it is void. Default: `sse:cleared`.
    pub cleared_key: String,
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
            block: Duration::from_secs(1),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
            alive_prefix: "sse:alive:".into(),
            client_prefix: "sse:client:".into(),
            cleared_key: "sse:cleared".into(),
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
/// liveness key. `KEYS`: the stream, the client record, the clear marker, the liveness key.
/// `ARGV`: the trim strategy (`MAXLEN` or `MINID`) and its threshold, the TTLs of the record and
/// of the liveness key in milliseconds, then the entry's fields and values (`op` first). Returns
/// the entry id.
const APPEND: &str = r"
local f = {}
for i = 5, #ARGV, 2 do f[ARGV[i]] = ARGV[i + 1] end
local id = redis.call('XADD', KEYS[1], ARGV[1], '~', ARGV[2], '*', unpack(ARGV, 5))
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

/// Liveness refreshes the sweep sends in one pipeline (one round trip).
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
            config,
            runtime: runtime.clone(),
            conn: tokio::sync::Mutex::new(None),
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
        }
    }
}

impl Shared {
    fn conn_config(&self, response: Duration) -> AsyncConnectionConfig {
        AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.config.timeout))
            .set_response_timeout(Some(response))
    }

    /// The shared connection, made first if needed.
    async fn connection(&self) -> redis::RedisResult<MultiplexedConnection> {
        let mut guard = self.conn.lock().await;
        if let Some(conn) = &*guard {
            return Ok(conn.clone());
        }
        let config = self.conn_config(self.config.timeout);
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        *guard = Some(conn.clone());
        Ok(conn)
    }

    /// Runs `cmd` on the shared connection; a failure drops the connection so that the next
    /// call makes a new one.
    async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> redis::RedisResult<T> {
        let mut conn = self.connection().await?;
        let result = cmd.query_async(&mut conn).await;
        if result.is_err() {
            *self.conn.lock().await = None;
        }
        result
    }

    /// Runs `pipe` on the shared connection, as [`query`](Self::query) runs a command.
    async fn query_pipe<T: FromRedisValue>(&self, pipe: &redis::Pipeline) -> redis::RedisResult<T> {
        let mut conn = self.connection().await?;
        let result = pipe.query_async(&mut conn).await;
        if result.is_err() {
            *self.conn.lock().await = None;
        }
        result
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

    /// Appends a record and waits until this node has applied it; returns its sequence number.
    /// Events go in with a plain `XADD`; records that change a client, with the [`APPEND`]
    /// script that changes its Redis record in the same step.
    async fn submit(&self, fields: &[(&str, &str)]) -> Result<u64, BackendError> {
        let config = &self.config;
        let (strategy, threshold) = self.trim();
        let mut cmd = if fields.first() == Some(&("op", "p")) {
            let mut cmd = redis::cmd("XADD");
            cmd.arg(&config.stream)
                .arg(strategy)
                .arg("~")
                .arg(threshold)
                .arg("*");
            cmd
        } else {
            let client = fields.iter().find(|(k, _)| *k == "id").map_or("", |f| f.1);
            let mut cmd = redis::cmd("EVAL");
            cmd.arg(APPEND)
                .arg(4)
                .arg(&config.stream)
                .arg(self.record_key(client))
                .arg(&config.cleared_key)
                .arg(self.alive_key(client))
                .arg(strategy)
                .arg(threshold)
                .arg(self.record_ttl)
                .arg(self.alive_ttl);
            cmd
        };
        for (k, v) in fields {
            cmd.arg(*k).arg(*v);
        }
        let id: String = match self.query(&cmd).await {
            Ok(id) => id,
            Err(err) => {
                self.append_errors.fetch_add(1, Ordering::Relaxed);
                return Err(unreachable(&err, "append", true));
            }
        };
        self.appended.fetch_add(1, Ordering::Relaxed);
        let seq = seq_of(&id).ok_or_else(|| {
            tracing::warn!(entry = %id, "redis answered an append with an unexpected entry id");
            BackendError::maybe_applied("the shared store gave an unexpected answer")
        })?;
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
            Err(BackendError::maybe_applied(
                "the shared store took the change, but this node had not applied it in time",
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

    /// The client's Redis record, if it has a valid one: written when it was issued, not
    /// removed since, and newer than the last "forget every client".
    async fn record(&self, id: ClientId) -> Result<Option<Record>, BackendError> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("HGETALL")
            .arg(self.record_key(id))
            .cmd("GET")
            .arg(&self.config.cleared_key);
        let (fields, cleared): (HashMap<String, String>, Option<String>) = self
            .query_pipe(&pipe)
            .await
            .map_err(|err| unreachable(&err, "record read", false))?;
        let Some(issued) = fields.get("i").and_then(|i| seq_of(i)) else {
            return Ok(None);
        };
        if cleared
            .and_then(|c| seq_of(&c))
            .is_some_and(|cleared| cleared >= issued)
        {
            return Ok(None);
        }
        let keys = fields
            .keys()
            .filter_map(|f| f.strip_prefix("k:"))
            .map(str::to_owned)
            .collect();
        Ok(Some(Record {
            name: fields.get("name").cloned(),
            keys,
        }))
    }

    /// Imports a client this node does not know from its Redis record (see
    /// [`Backend::lookup`]); returns whether the hub knows it now.
    async fn lookup(&self, id: ClientId) -> Result<bool, BackendError> {
        let hub = &self.hub;
        // A first look without the gate: ids nobody issued (the common unknown id) never hold
        // up the consumer loop.
        if hub.contains(id) {
            return Ok(true);
        }
        if self.record(id).await?.is_none() {
            return Ok(false);
        }
        // With the consumer paused between two entries, the record read now reflects every
        // entry the hub has applied, and maybe some more: applying those later to the imported
        // client is harmless, as each sets a field to what the record already holds (or
        // removes the client, which the record would then not hold).
        let _gate = self.gate.lock().await;
        if hub.contains(id) {
            return Ok(true); // its `i` entry was applied meanwhile
        }
        let Some(record) = self.record(id).await? else {
            return Ok(false);
        };
        match hub.import(id, record.name.as_deref(), Instant::now()) {
            Ok(_) => {}
            Err(err) => return Err(BackendError::Refused(err)),
        }
        for key in record.keys {
            if let Ok(key) = EventName::new(key) {
                let _ = hub.subscribe(id, &key);
            }
        }
        self.imported.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(client = %id.tag(), "client imported from its redis record");
        Ok(true)
    }
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
        }))
    }

    fn issue(&self, name: Option<String>) -> BackendFuture<'_, ClientId> {
        Box::pin(async move {
            // Checked against this node's replica, which every node shares.
            self.shared.hub.has_room(name.as_deref())?;
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
            // Checked here against this node's replica, applied on every node.
            let hub = &self.shared.hub;
            let keys = hub.keys(id)?;
            let subscribed = keys.iter().any(|k| **k == *key.as_str());
            if !subscribed && keys.len() >= hub.config().max_keys_per_client {
                return Err(sse_registry::Error::TooManyKeys.into());
            }
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

    /// Refreshes the liveness key (TTL: the hub's grace; opening a stream sets it too) and the
    /// client record of every client attached here, then removes, through the stream, the
    /// clients idle here beyond their grace or TTL whose liveness key is gone (attached on no
    /// node). Removing twice is harmless, so every node may sweep at once.
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
                    .query_pipe::<()>(&pipe)
                    .await
                    .map_err(|err| unreachable(&err, "sweep refresh", false))?;
            }
            let mut removed = 0;
            for id in stale {
                let mut cmd = redis::cmd("EXISTS");
                cmd.arg(shared.alive_key(id));
                let exists: bool = shared
                    .query(&cmd)
                    .await
                    .map_err(|err| unreachable(&err, "sweep check", false))?;
                if !exists && hub.contains(id) {
                    self.remove(id).await?;
                    removed += 1;
                }
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
                .submit(&[("op", "a"), ("id", &id)])
                .await
                .map(drop)
        })
    }
}

/// What a peer is told when Redis failed: our words, never the Redis client's error text
/// (which may name hosts, keys or ids), which is logged here instead. A `write` that failed on
/// the wire (the connection dropped or timed out after the command was sent) may have been
/// applied; one refused before it was sent, or answered with an error, was not.
fn unreachable(err: &redis::RedisError, what: &'static str, write: bool) -> BackendError {
    tracing::warn!(%err, what, "redis failed");
    let maybe_applied =
        write && !err.is_connection_refusal() && (err.is_io_error() || err.is_timeout());
    if maybe_applied {
        BackendError::maybe_applied("the shared store did not confirm the change")
    } else {
        BackendError::unavailable("the shared store is unreachable")
    }
}
