//! The consumer loop: every node reads the stream in order and applies each record to its hub.

use std::collections::HashMap;
use std::sync::Weak;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::streams::StreamReadReply;
use redis::{FromRedisValue, Value};
use sse_codec::EventName;
use sse_registry::{ClientId, DEFAULT_SLICE, Target};

use crate::{RECENT, Shared, seq_of};

/// Entries one `XREAD` returns at most.
const BATCH: usize = 512;

/// Reads the stream from its start and applies every entry, in order, until the backend is
/// dropped; retries with backoff whenever Redis fails.
pub(crate) async fn consume(weak: Weak<Shared>) {
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
            .arg(BATCH)
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
                                // A lookup holds the gate while it reads and imports a client
                                // record, so that it sees the hub between two entries.
                                let _gate = shared.gate.lock().await;
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

impl Shared {
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
