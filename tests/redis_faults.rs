//! The Redis backend under faults, on tokio: a stream trimmed past what a node had read
//! resynchronises the node (its clients get a `reset`, removals and subscriptions made in the
//! gap hold); a hung Redis answers every request `503` within the deadline, never queued behind
//! another's connect, while a burst right after start waits for the first connect instead of
//! being refused; a publish whose answer was lost, retried with its `Idempotency-Key` on another
//! node, is delivered once; nodes sweeping the same stale clients append each removal once; an id
//! whose issue this node applies late is still handed out; unknown ids cost Redis one lookup at
//! most, and a bounded number per period. Each test starts its own `redis-server` on a free
//! loopback port (and fails, loudly, when there is none on the PATH).

#![allow(unreachable_pub, dead_code)]

#[path = "suite/client.rs"]
mod client;
#[path = "redis_nodes.rs"]
mod nodes;
#[path = "redis_support.rs"]
mod support;

use std::time::Duration;

use client::{Events, PATIENCE, Version, call, eventually, issue};
use http::{Method, StatusCode};
use nodes::{node, node_with, run};
use sse_registry::ClientId;
use support::{BEARER, Redis, broadcast, ends, message, open};

/// In one script, so that no node reads in between: an event for everyone, `x` subscribing to
/// `news`, `y`'s removal (each numbered, and with its client record, as the backend writes
/// them), then a trim of the whole stream. `KEYS`: the stream, its counter, the records of `x`
/// and `y`; `ARGV`: `x`, `y`.
const GAP: &str = r"
local function add(...)
  return redis.call('XADD', KEYS[1], '*', 'n', redis.call('INCR', KEYS[2]), ...)
end
add('op', 'p', 'to', 'a', 'd', 'lost')
add('op', 's', 'id', ARGV[1], 'key', 'news')
redis.call('HSET', KEYS[3], 'k:news', '1')
add('op', 'r', 'id', ARGV[2])
redis.call('DEL', KEYS[4])
return redis.call('XTRIM', KEYS[1], 'MAXLEN', '0')
";

/// A stream trimmed past the last entry the nodes had read, with an event, a subscription and a
/// removal in the gap: each node notices, counts it once, and resynchronises. The stream open on
/// B ends; resumed from before the gap it gets a `reset` (not the silent loss of "lost"); the
/// subscription made in the gap is in place on B, and the client removed in the gap is gone.
#[test]
fn a_trim_past_what_a_node_read_resynchronises_it() {
    let redis = Redis::start();
    run(async {
        let (a, b) = (node(&redis).await, node(&redis).await);
        let x = issue(a.addr, None).await;
        let y = issue(a.addr, None).await;
        let (x_id, y_id): (ClientId, ClientId) = (x.parse().unwrap(), y.parse().unwrap());
        let mut on_b = open(b.addr, &x, None).await;
        broadcast(a.addr, "before").await;
        let (_, seen) = message(&mut on_b).await;
        let hub_b = b.sse.hub().clone();
        eventually("B knows y", || hub_b.contains(y_id)).await;

        let (x_rec, y_rec) = (format!("sse:client:{x}"), format!("sse:client:{y}"));
        let trimmed = redis.command(&[
            "EVAL",
            GAP,
            "4",
            "sse:events",
            "sse:events:n",
            &x_rec,
            &y_rec,
            &x,
            &y,
        ]);
        assert!(trimmed.starts_with(':'), "{trimmed}");
        broadcast(a.addr, "after").await;

        // B's stream of x ends: the client must reload, and does so with its Last-Event-ID.
        ends(&mut on_b, "x's stream on B").await;
        let mut again = Events::open(b.addr, Version::H1, &x, Some(&seen)).await;
        assert_eq!(again.status, StatusCode::OK);
        assert_eq!(again.expect("registered").await, x);
        let reset = again.next().await.expect("a reset");
        assert_eq!(reset.0, "reset", "{reset:?}");
        broadcast(a.addr, "live").await;
        assert_eq!(message(&mut again).await.0, "live");

        // The gap's subscription holds on B, and its removal too.
        let keys = hub_b.keys(x_id).expect("x re-imported");
        assert!(keys.iter().any(|k| &**k == "news"), "{keys:?}");
        assert!(!hub_b.contains(y_id));
        let gone = call(b.addr, Method::GET, &format!("/sse/events/{y}"), &[], "").await;
        assert_eq!(gone.status, StatusCode::NOT_FOUND);
        let reply = call(a.addr, Method::POST, "/sse/notify/news", &[BEARER], "n").await;
        assert_eq!(reply.json()["delivered"], 1);
        assert_eq!(again.expect("news").await, "n");

        // One gap each, and no more (the reads after it find none).
        for node in [&a, &b] {
            let counts = node.backend.counts();
            assert_eq!(counts.gaps, 1, "{counts:?}");
        }
        assert!(b.backend.counts().resynced >= 1);
        let stats = call(b.addr, Method::GET, "/sse/stats", &[BEARER], "").await;
        assert_eq!(stats.json()["backend"]["gaps"], 1, "{}", stats.body);
        drop((a.sse, b.sse));
    });
}

/// Redis hangs (stopped: it accepts connections and answers nothing). Fifty requests at once
/// all answer `503` in our words, none queued behind another's connect (queued, they would take
/// fifty connect timeouts: the hang guard is far below that, and far above the deadline). The
/// breaker opens (after two failures here); when Redis answers again (5 s after it hung), the
/// node recovers by itself and delivers again on the stream that was open all along.
#[test]
fn a_hung_redis_fails_every_request_within_the_deadline() {
    let redis = Redis::start();
    run(async {
        let a = node_with(&redis, |_, redis_config| redis_config.breaker_threshold = 2).await;
        let id = issue(a.addr, None).await;
        let mut events = open(a.addr, &id, None).await;
        redis.pause();
        let paused = std::time::Instant::now();
        support::fifty_requests_while_hung(a.addr, &id).await;
        let counts = a.backend.counts();
        assert!(counts.fast_failures > 0, "{counts:?}");
        assert!(counts.breaker_opens >= 1, "{counts:?}");
        // Hung for 5 s in all (the issue's outage), then back.
        tokio::time::sleep(Duration::from_secs(5).saturating_sub(paused.elapsed())).await;
        redis.resume();

        support::broadcast_once_back(a.addr, "back").await;
        assert!(!a.backend.counts().breaker_open);
        // The stream opened before the outage stayed open, and delivery resumed on it: first
        // the broadcast sent as Redis hung (answered 503 "may have been applied"; Redis ran it
        // when it came back), then the one after.
        assert_eq!(message(&mut events).await.0, "x");
        assert_eq!(message(&mut events).await.0, "back");
        drop(a.sse);
    });
}

/// Fifty registrations at once on a node that has not yet made its shared connection, Redis
/// healthy: the first makes it and the others wait for that connect (bounded by their deadlines)
/// rather than fail fast as in an outage. Every one is issued; none is refused with a 503.
#[test]
fn a_burst_right_after_start_waits_for_the_first_connect() {
    let redis = Redis::start();
    run(async {
        let a = node(&redis).await;
        let addr = a.addr;
        let requests: Vec<_> = (0..50)
            .map(|_| {
                tokio::spawn(async move { call(addr, Method::POST, "/sse/clients", &[], "").await })
            })
            .collect();
        for request in requests {
            let reply = request.await.expect("request task");
            assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        }
        let counts = a.backend.counts();
        assert_eq!(counts.fast_failures, 0, "{counts:?}");
        assert_eq!(a.sse.hub().stats().clients, 50);
        drop(a.sse);
    });
}

/// A publish whose answer is lost: Redis hangs after the append was sent, so node A answers
/// `503` saying the change may have been applied. Redis then runs it. The admin retries with
/// the same `Idempotency-Key` on node B: a replay, published nothing, and the client (streaming
/// from B) gets the event exactly once.
#[test]
fn a_publish_retried_after_a_lost_answer_is_delivered_once() {
    let redis = Redis::start();
    run(async {
        let quick = |_: &mut sse_http::Config, redis_config: &mut sse_redis::RedisConfig| {
            redis_config.deadline = Duration::from_millis(500);
            redis_config.timeout = Duration::from_millis(500);
        };
        let (a, b) = (
            node_with(&redis, quick).await,
            node_with(&redis, quick).await,
        );
        let id = issue(a.addr, None).await;
        let mut events = open(b.addr, &id, None).await;
        // Loads the script of idempotent publishes, so that the one sent while Redis hangs is
        // whole (not a script look-up that would fail after the answer is lost).
        let warm = ("idempotency-key", "warm");
        let reply = call(
            a.addr,
            Method::POST,
            "/sse/broadcast",
            &[BEARER, warm],
            "warm",
        )
        .await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
        assert_eq!(message(&mut events).await.0, "warm");

        let key = ("idempotency-key", "publish-1");
        redis.pause();
        let lost = call(
            a.addr,
            Method::POST,
            "/sse/broadcast",
            &[BEARER, key],
            "once",
        )
        .await;
        redis.resume();
        assert_eq!(
            lost.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            lost.body
        );
        assert!(lost.body.contains("may have been applied"), "{}", lost.body);

        // The retry, on the other node; it may meet the tail of the outage (a 503 again).
        let deadline = std::time::Instant::now() + PATIENCE;
        let retry = loop {
            let reply = call(
                b.addr,
                Method::POST,
                "/sse/broadcast",
                &[BEARER, key],
                "once",
            )
            .await;
            if reply.status != StatusCode::SERVICE_UNAVAILABLE {
                break reply;
            }
            assert!(std::time::Instant::now() < deadline, "{}", reply.body);
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(retry.status, StatusCode::ACCEPTED, "{}", retry.body);
        assert_eq!(retry.json()["replayed"], true, "{}", retry.body);
        support::broadcast_once_back(a.addr, "fence").await;
        assert_eq!(message(&mut events).await.0, "once");
        assert_eq!(message(&mut events).await.0, "fence");
        drop((a.sse, b.sse));
    });
}

/// Counts the removal records (`op` `r`) in the stream.
const REMOVALS: &str = r"
local n = 0
for _, entry in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do
  local f = {}
  for i = 1, #entry[2], 2 do f[entry[2][i]] = entry[2][i + 1] end
  if f['op'] == 'r' then n = n + 1 end
end
return n
";

/// Three nodes sweep the same 10,000 stale clients at once: every client goes, on every node,
/// and each removal is appended once (the node that claims it first appends it): 10,000
/// removal records, not 30,000.
#[test]
fn nodes_sweeping_the_same_clients_append_each_removal_once() {
    const CLIENTS: usize = 10_000;
    let redis = Redis::start();
    run(async {
        let short = |config: &mut sse_http::Config, _: &mut sse_redis::RedisConfig| {
            config.sweep_interval = Duration::from_secs(3600);
            config.registry.grace = Duration::from_millis(100);
            config.registry.unattached_ttl = Duration::from_millis(100);
            // 10,000 registrations from one loopback address: the per-address limits off.
            config.peer_limits = None;
        };
        let nodes = [
            node_with(&redis, short).await,
            node_with(&redis, short).await,
            node_with(&redis, short).await,
        ];
        // Registered on the first node by 16 workers, each on short connections of its own.
        let addr = nodes[0].addr;
        let workers: Vec<_> = (0..16)
            .map(|w| {
                tokio::spawn(async move {
                    let mut ids = Vec::new();
                    for _ in (w..CLIENTS).step_by(16) {
                        ids.push(issue(addr, None).await.parse::<ClientId>().unwrap());
                    }
                    ids
                })
            })
            .collect();
        let mut ids = Vec::new();
        for worker in workers {
            ids.extend(worker.await.expect("worker"));
        }
        assert_eq!(ids.len(), CLIENTS);
        let hubs: Vec<_> = nodes.iter().map(|n| n.sse.hub().clone()).collect();
        eventually("every node knows every client", || {
            hubs.iter().all(|hub| hub.stats().clients == CLIENTS)
        })
        .await;
        // Not a timing assertion: lets the clients go stale (idle beyond 100 ms).
        tokio::time::sleep(Duration::from_millis(300)).await;

        let sweep = |addr| async move {
            let reply = call(addr, Method::POST, "/sse/sweep", &[BEARER], "").await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
            reply.json()["removed"].as_u64().expect("a count")
        };
        let (a, b, c) = (nodes[0].addr, nodes[1].addr, nodes[2].addr);
        let (by_a, by_b, by_c) = tokio::join!(sweep(a), sweep(b), sweep(c));
        assert_eq!(
            by_a + by_b + by_c,
            CLIENTS as u64,
            "A removed {by_a}, B {by_b}, C {by_c}"
        );
        eventually("the stale clients are gone everywhere", || {
            hubs.iter().all(|hub| hub.stats().clients == 0)
        })
        .await;
        assert!(
            ids.iter()
                .all(|id| hubs.iter().all(|hub| !hub.contains(*id)))
        );
        let removals = format!(":{CLIENTS}");
        assert_eq!(
            redis.command(&["EVAL", REMOVALS, "1", "sse:events"]),
            removals
        );
        // Again: nothing left to remove, nothing appended.
        let again = tokio::join!(sweep(a), sweep(b), sweep(c));
        assert_eq!(again, (0, 0, 0));
        assert_eq!(
            redis.command(&["EVAL", REMOVALS, "1", "sse:events"]),
            removals
        );
        drop(nodes);
    });
}

/// The id of the connection of this server's client that is blocked in `XREAD` (a node's
/// consumer loop), from `CLIENT LIST`.
fn consumer_connection(redis: &Redis) -> Option<String> {
    let list = redis.text(&["CLIENT", "LIST"]);
    list.lines()
        .find(|line| line.contains("cmd=xread"))
        .and_then(|line| line.split(' ').find_map(|f| f.strip_prefix("id=")))
        .map(str::to_owned)
}

/// A node whose consumer loop is down (its connection killed, its retry far off) still issues
/// ids: Redis took them, so they are valid everywhere; this node imports one from its record
/// when it meets it, and a node started later knows it from the stream.
#[test]
fn an_id_this_node_applies_late_is_still_issued() {
    let redis = Redis::start();
    run(async {
        let a = node_with(&redis, |_, redis_config| {
            redis_config.timeout = Duration::from_millis(300);
            redis_config.backoff_min = Duration::from_secs(60);
            redis_config.backoff_max = Duration::from_secs(60);
        })
        .await;
        let backend = a.backend.clone();
        eventually("A's consumer connects", || backend.counts().connected).await;
        let mut conn = None;
        eventually("A's consumer blocks in XREAD", || {
            conn = consumer_connection(&redis);
            conn.is_some()
        })
        .await;
        let conn = conn.expect("a consumer connection");
        assert_eq!(redis.command(&["CLIENT", "KILL", "ID", &conn]), ":1");
        eventually("A's consumer notices", || backend.counts().read_errors > 0).await;

        let id = issue(a.addr, None).await;
        assert_eq!(a.backend.counts().late_issues, 1);
        assert!(!a.sse.hub().contains(id.parse().unwrap()));
        let _on_a = open(a.addr, &id, None).await;
        assert_eq!(a.backend.counts().imported, 1);

        let b = node(&redis).await;
        let hub_b = b.sse.hub().clone();
        let parsed = id.parse().unwrap();
        eventually("B knows the id", || hub_b.contains(parsed)).await;
        drop((a.sse, b.sse));
    });
}

/// Looking up the same unknown id again costs no round trip while the negative cache holds it
/// (Redis counts one `HGETALL`), and an id whose record appears meanwhile is found once its
/// entry expires (a TTL of 300 ms here).
#[test]
fn unknown_ids_cost_one_lookup_and_real_ones_are_found() {
    let redis = Redis::start();
    run(async {
        let a = node_with(&redis, |_, redis_config| {
            redis_config.negative_ttl = Duration::from_millis(300);
        })
        .await;
        let unknown = ClientId::random();
        for _ in 0..10 {
            let reply = call(
                a.addr,
                Method::GET,
                &format!("/sse/events/{unknown}"),
                &[],
                "",
            )
            .await;
            assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.body);
        }
        assert_eq!(redis.calls("hgetall"), 1);
        let counts = a.backend.counts();
        assert_eq!((counts.lookups, counts.negative_hits), (1, 9), "{counts:?}");

        // The id's record appears (issued elsewhere, its stream entry already trimmed).
        let record = format!("sse:client:{unknown}");
        assert_eq!(redis.command(&["HSET", &record, "i", "1-1"]), ":1");
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let mut stream = loop {
            let events = Events::open(a.addr, Version::H1, &unknown.to_string(), None).await;
            if events.status == StatusCode::OK {
                break events;
            }
            assert_eq!(events.status, StatusCode::NOT_FOUND);
            assert!(tokio::time::Instant::now() < deadline, "never found");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(stream.expect("registered").await, unknown.to_string());
        assert_eq!(a.backend.counts().imported, 1);
        drop(a.sse);
    });
}

/// A node's issue record forgets the negative entry at once: an id looked up before its issue
/// (here, one the test issues by hand, with a negative TTL of an hour) is known as soon as the
/// node applies its record.
#[test]
fn applying_an_issue_forgets_the_negative_entry() {
    let redis = Redis::start();
    run(async {
        let a = node_with(&redis, |_, redis_config| {
            redis_config.negative_ttl = Duration::from_secs(3600);
        })
        .await;
        let id = ClientId::random();
        let text = id.to_string();
        let reply = call(a.addr, Method::GET, &format!("/sse/events/{text}"), &[], "").await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        let issue = r"
local id = redis.call('XADD', KEYS[1], '*', 'op', 'i', 'id', ARGV[1])
redis.call('HSET', KEYS[2], 'i', id)
return 1";
        let record = format!("sse:client:{text}");
        assert_eq!(
            redis.command(&["EVAL", issue, "2", "sse:events", &record, &text]),
            ":1"
        );
        let hub = a.sse.hub().clone();
        eventually("A applies the issue", || hub.contains(id)).await;
        // Removed again (its removal record lost, say): the record still holds it, and the
        // negative entry is gone, so a lookup finds it.
        hub.remove(id).expect("known");
        let _stream = open(a.addr, &text, None).await;
        assert_eq!(a.backend.counts().imported, 1);
        drop(a.sse);
    });
}

/// Lookups that reach Redis are bounded per period, for the whole node: with a limit of 5 per
/// hour and no negative cache, 5 distinct unknown ids are looked up (`404`) and the rest fail at
/// once (`503`).
#[test]
fn lookups_of_unknown_ids_are_rate_limited() {
    let redis = Redis::start();
    run(async {
        let a = node_with(&redis, |_, redis_config| {
            redis_config.negative_capacity = 0;
            redis_config.lookup_limit = 5;
            redis_config.lookup_period = Duration::from_secs(3600);
        })
        .await;
        let mut statuses = Vec::new();
        for _ in 0..12 {
            let id = ClientId::random();
            let reply = call(a.addr, Method::GET, &format!("/sse/events/{id}"), &[], "").await;
            statuses.push(reply.status);
        }
        let found = |status| statuses.iter().filter(|s| **s == status).count();
        assert_eq!(found(StatusCode::NOT_FOUND), 5, "{statuses:?}");
        assert_eq!(found(StatusCode::SERVICE_UNAVAILABLE), 7, "{statuses:?}");
        assert_eq!(redis.calls("hgetall"), 5);
        assert_eq!(a.backend.counts().lookups_limited, 7);
        drop(a.sse);
    });
}
