//! The consumer loop: every node reads the stream in order and applies each record to its hub,
//! and resynchronises the hub when the stream was trimmed past what it had read.

use std::collections::HashMap;
use std::sync::Weak;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::streams::StreamReadReply;
use redis::{FromRedisValue, Value};
use sse_codec::EventName;
use sse_registry::{ClientId, DEFAULT_SLICE, Target};

use crate::{RECENT, Record, SWEEP_PIPELINE, Shared, lock, seq_of};

/// Entries one `XREAD` returns at most.
const BATCH: usize = 512;

/// Reads the stream from its start and applies every entry, in order, until the backend is
/// dropped; retries with backoff whenever Redis fails. Every entry carries its number, one more
/// than the entry before it: a number that jumps means entries were trimmed before this node
/// read them (after an outage, or lagging by more than the stream keeps), and the node
/// resynchronises before it applies the entry.
pub(crate) async fn consume(weak: Weak<Shared>) {
    let mut last = String::from("0-0");
    // The number (`n`) of the entry `last`, if it had one.
    let mut number: Option<u64> = None;
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
                let cc = shared.conn_config(config.timeout, config.block + config.timeout);
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
            .arg(BATCH)
            .arg("BLOCK")
            .arg(block)
            .arg("STREAMS")
            .arg(&config.stream)
            .arg(&last)
            .query_async(&mut c)
            .await;
        let reply = match read {
            Ok(reply) => reply,
            Err(err) => {
                failed(&shared, &err, "read");
                backoff = next_backoff(backoff);
                continue;
            }
        };
        if !shared.connected.swap(true, Ordering::Relaxed) {
            tracing::info!(stream = %config.stream, "redis consumer connected");
        }
        backoff = Duration::ZERO;
        let entries = reply.map(|r| r.keys).unwrap_or_default();
        let mut failure = None;
        for entry in entries.into_iter().flat_map(|key| key.ids) {
            let Some(seq) = seq_of(&entry.id) else {
                tracing::warn!(id = %entry.id, "stream entry id out of range");
                last = entry.id;
                continue;
            };
            let n = entry
                .map
                .get("n")
                .and_then(|n| u64::from_redis_value(n.clone()).ok());
            // A lookup holds the gate while it reads and imports a client record, so that it
            // sees the hub between two entries.
            let _gate = shared.gate.lock().await;
            if let (Some(before), Some(n)) = (number, n)
                && n > before + 1
            {
                // Entries `before + 1 .. n` were trimmed before this node read them; the
                // sequence number just below this entry's is above each of them.
                if let Err(err) = shared.resync(&mut c, seq - 1).await {
                    failure = Some(err);
                    break; // read again from `last`: the gap is found again
                }
            }
            if let (Some(before), Some(n)) = (number, n)
                && n <= before
            {
                tracing::warn!(
                    stream = %config.stream,
                    "the stream's numbering started again: Redis lost data, and entries this \
                     node had not read may be lost"
                );
            }
            shared.apply(seq, &entry.map).await;
            shared.mark_applied(seq);
            shared.note_lag(&entry.id);
            // An entry without a number (appended by an older node) or numbered lower (Redis
            // lost its counter with its data) starts the count anew.
            number = n;
            last = entry.id;
        }
        match failure {
            Some(err) => {
                failed(&shared, &err, "resync");
                backoff = next_backoff(backoff);
            }
            None => conn = Some(c),
        }
    }
}

fn failed(shared: &Shared, err: &redis::RedisError, what: &str) {
    shared.read_errors.fetch_add(1, Ordering::Relaxed);
    shared.connected.store(false, Ordering::Relaxed);
    tracing::warn!(%err, what, "redis consumer failed; retrying");
}

impl Shared {
    /// Brings the hub back in line after a gap: events and client records were trimmed before
    /// this node applied them. Every client goes (its stream, if open here, ends) and comes
    /// back from its Redis record, as of a sequence number (`bump`) above every event it saw:
    /// a client resuming here with a `Last-Event-ID` from before the gap gets a `reset`, a
    /// client removed in the gap stays gone, and one subscribed in the gap has its keys.
    /// Clients issued in the gap are looked up on demand, as those of a node started late.
    /// The caller holds the gate.
    async fn resync(&self, conn: &mut MultiplexedConnection, bump: u64) -> redis::RedisResult<()> {
        let hub = &self.hub;
        let mut ids = Vec::new();
        let mut offset = Some(0);
        while let Some(from) = offset {
            let (clients, next) = hub.list(from, 1024);
            ids.extend(clients.into_iter().map(|client| client.id));
            offset = next;
        }
        let mut clear = hub.clear();
        sse_registry::drive(&mut clear, DEFAULT_SLICE).await;
        // An event for nobody, at `bump`: clients imported now resume only after it. (Refused
        // as stale when an earlier try of this resync already moved the hub there.)
        let _ = hub.deliver(bump, Target::Client(ClientId::random()), None, "");
        lock(&self.negative).clear();
        self.gaps.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            clients = ids.len(),
            "the stream was trimmed past what this node had read: resynchronising"
        );
        for chunk in ids.chunks(SWEEP_PIPELINE) {
            let mut pipe = redis::pipe();
            pipe.cmd("GET").arg(&self.config.cleared_key);
            for id in chunk {
                pipe.cmd("HGETALL").arg(self.record_key(id));
            }
            let replies: Vec<Value> = pipe.query_async(conn).await?;
            let mut replies = replies.into_iter();
            let cleared = replies
                .next()
                .and_then(|v| Option::<String>::from_redis_value(v).ok())
                .flatten();
            for (id, fields) in chunk.iter().zip(replies) {
                let fields = HashMap::<String, String>::from_redis_value(fields)?;
                if let Some(record) = Record::parse(fields, cleared.as_deref()) {
                    match self.import(*id, record) {
                        Ok(()) => {
                            self.resynced.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(err) => tracing::warn!(%err, "client not re-imported"),
                    }
                }
            }
        }
        Ok(())
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
                    Ok(published) => {
                        {
                            let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
                            if recent.len() >= RECENT {
                                recent.pop_front();
                            }
                            recent.push_back((seq, published.recipients));
                        }
                        // Waking the recipients (a slice at a time, in publish order) goes on in
                        // the hub's wake task: the record counts as applied once the event is in
                        // the hub, so the publisher's call, and the next records, do not wait
                        // for every wake.
                        if let Some(task) =
                            hub.queue_wake(published.wake, self.runtime.wake_slice())
                        {
                            self.runtime.spawn(Box::pin(task));
                        }
                    }
                    Err(err) => tracing::warn!(%err, seq, "event not delivered"),
                }
            }
            ("i", Some(id)) => {
                lock(&self.negative).remove(id);
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
            ("a", Some(id)) => {
                // The client opens a stream (on this node or another): the one it had here
                // ends. The node that appended the record opens its new stream only after
                // applying it, so the new stream is never the one ended.
                let _ = hub.end_stream(id, now);
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

    /// Records how old the entry `id` (`<ms>-<n>`, stamped by Redis when appended) is now.
    fn note_lag(&self, id: &str) {
        let appended = id
            .split_once('-')
            .and_then(|(ms, _)| ms.parse::<u64>().ok());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        if let Some(appended) = appended {
            let lag = now.saturating_sub(appended);
            self.apply_lag_ms
                .store(lag, std::sync::atomic::Ordering::Relaxed);
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
