//! Servers sharing one Redis act as one hub, on tokio: ids, subscriptions, tasks, removals and
//! every published event cross nodes, `Last-Event-ID` resumes on another node (or resets when
//! the gap is older than the history), a node started after the stream was trimmed still knows
//! the clients, a stream opened on one node ends the client's stream on another, and a Redis
//! outage is reported to callers and survived. Each test starts its own `redis-server` on a free
//! loopback port (and fails, loudly, when there is none on the PATH).

#![allow(unreachable_pub, dead_code)]

#[path = "suite/client.rs"]
mod client;
#[path = "redis_nodes.rs"]
mod nodes;
#[path = "redis_support.rs"]
mod support;

use std::time::Duration;

use client::{Events, Version, call, eventually, issue};
use http::{Method, StatusCode};
use nodes::{node, node_with, run};
use sse_http::Config;
use sse_redis::RedisConfig;
use support::{BEARER, Redis, broadcast, ends, message, open};

#[test]
fn two_nodes_act_as_one_hub() {
    let redis = Redis::start();
    run(async {
        let (a, b) = (node(&redis).await, node(&redis).await);
        support::act_as_one_hub(a.addr, b.addr).await;
        let counts = a.backend.counts();
        assert!(
            counts.appended > 0 && counts.append_errors == 0,
            "{counts:?}"
        );
        // Every node knew every id from the stream: nothing was looked up in the records.
        assert_eq!((counts.imported, b.backend.counts().imported), (0, 0));
        // The backend's state in the metrics, beside the hub's.
        let scrape = call(b.addr, Method::GET, "/sse/metrics", &[BEARER], "").await;
        assert_eq!(scrape.status, StatusCode::OK);
        let value = |name: &str| {
            scrape
                .body
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("no {name} in\n{}", scrape.body))
        };
        assert_eq!(value("sse_backend_connected"), 1.0);
        assert_eq!(value("sse_backend_breaker_open"), 0.0);
        assert!(value("sse_backend_applied_total") >= counts.appended as f64);
        assert_eq!(value("sse_backend_gaps_total"), 0.0);
        assert!(value("sse_backend_apply_lag_ms") < 60_000.0);
        drop((a.sse, b.sse));
    });
}

/// With a history of two events, a client reconnecting to the other node from an event older
/// than that gets the single-node hub's `reset`: id and data the current sequence number (that
/// of the last event), the greeting's id the same; from an event still held, it gets the rest.
#[test]
fn reconnecting_elsewhere_beyond_the_history_gets_a_reset() {
    let redis = Redis::start();
    run(async {
        let tiny = |config: &mut Config, _: &mut RedisConfig| config.registry.history_len = 2;
        let (a, b) = (node_with(&redis, tiny).await, node_with(&redis, tiny).await);
        let watcher = issue(a.addr, None).await;
        let bob = issue(a.addr, None).await;
        let mut watching = open(a.addr, &watcher, None).await;
        let mut bob_a = open(a.addr, &bob, None).await;
        broadcast(a.addr, "seen").await;
        let (_, seen) = message(&mut bob_a).await;
        assert_eq!(message(&mut watching).await.1, seen);
        drop(bob_a);

        let mut ids = Vec::new();
        for n in 1..=4 {
            broadcast(a.addr, &format!("missed {n}")).await;
            ids.push(message(&mut watching).await.1);
        }
        let last = ids[3].clone();
        let head: u64 = last.parse().expect("a numeric id");
        let hub = b.sse.hub().clone();
        eventually("B applies every broadcast", || hub.stats().seq >= head).await;

        // "seen" and "missed 1, 2" are gone from B's history of two: reset.
        let mut bob_b = Events::open(b.addr, Version::H1, &bob, Some(&seen)).await;
        assert_eq!(bob_b.status, StatusCode::OK);
        let greeting = bob_b.next().await.expect("a greeting");
        assert_eq!(greeting, ("registered".into(), bob.clone(), last.clone()));
        let reset = bob_b.next().await.expect("a reset");
        assert_eq!(reset, ("reset".into(), last.clone(), last.clone()));
        assert!(hub.stats().lagged >= 1);

        // From "missed 3", still held: exactly "missed 4", then what comes live.
        let mut again = open(b.addr, &bob, Some(&ids[2])).await;
        ends(&mut bob_b, "the replaced stream on B").await;
        assert_eq!(message(&mut again).await, ("missed 4".into(), last.clone()));
        broadcast(a.addr, "live").await;
        let (data, id) = message(&mut again).await;
        assert_eq!(data, "live");
        assert!(id.parse::<u64>().expect("a numeric id") > head, "{id}");
        drop((a.sse, b.sse));
    });
}

/// A node started after the stream was trimmed (past every record of a client) still knows the
/// client, from its Redis record: its stream, name and subscriptions, new subscriptions and
/// tasks work there; a removed client, a client forgotten by "forget all", and an id nobody
/// issued are 404.
#[test]
fn a_node_started_after_a_trim_knows_the_clients() {
    let redis = Redis::start();
    run(async {
        let a = node(&redis).await;
        let carol = issue(a.addr, Some("carol")).await;
        let put = call(
            a.addr,
            Method::PUT,
            &format!("/sse/listen/{carol}/news"),
            &[],
            "",
        )
        .await;
        assert_eq!(put.status, StatusCode::NO_CONTENT);
        let dave = issue(a.addr, None).await;
        let frank = issue(a.addr, None).await;
        let del = call(
            a.addr,
            Method::DELETE,
            &format!("/sse/clients/{dave}"),
            &[],
            "",
        )
        .await;
        assert_eq!(del.status, StatusCode::NO_CONTENT);
        assert_eq!(redis.command(&["XTRIM", "sse:events", "MAXLEN", "0"]), ":5");
        assert_eq!(redis.command(&["XLEN", "sse:events"]), ":0");

        let c = node(&redis).await;
        let backend = c.backend.clone();
        eventually("C's consumer connects", || backend.counts().connected).await;
        assert!(!c.sse.hub().contains(carol.parse().unwrap()));
        for unknown in [&dave, &sse_registry::ClientId::random().to_string()] {
            let reply = call(
                c.addr,
                Method::GET,
                &format!("/sse/events/{unknown}"),
                &[],
                "",
            )
            .await;
            assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.body);
        }

        // Carol's stream opens on C; her subscription came with her.
        let mut on_c = open(c.addr, &carol, None).await;
        assert_eq!(c.backend.counts().imported, 1);
        let reply = call(a.addr, Method::POST, "/sse/notify/news", &[BEARER], "n1").await;
        assert_eq!(reply.json()["delivered"], 1);
        assert_eq!(on_c.expect("news").await, "n1");

        // A new subscription on C, notified from A.
        let put = call(
            c.addr,
            Method::PUT,
            &format!("/sse/listen/{carol}/sports"),
            &[],
            "",
        )
        .await;
        assert_eq!(put.status, StatusCode::NO_CONTENT);
        call(a.addr, Method::POST, "/sse/notify/sports", &[BEARER], "s1").await;
        assert_eq!(on_c.expect("sports").await, "s1");

        // A task submitted on C: its events go to her name.
        let put = call(
            c.addr,
            Method::PUT,
            &format!("/sse/tasks/{carol}/t1"),
            &[],
            "",
        )
        .await;
        assert_eq!(put.status, StatusCode::ACCEPTED);
        assert_eq!(on_c.expect("progress").await, "t1:1/2");
        assert_eq!(on_c.expect("progress").await, "t1:2/2");
        let done: serde_json::Value =
            serde_json::from_str(&on_c.expect("completed").await).unwrap();
        assert!(done.get("id").is_none(), "no client id in {done}");
        assert_eq!(done["taskid"], "t1");

        // Forget all (on A): carol's stream on C ends, and frank's record, which C never
        // imported, is void.
        let clear = call(a.addr, Method::DELETE, "/sse/clients", &[BEARER], "").await;
        assert_eq!(clear.status, StatusCode::NO_CONTENT);
        ends(&mut on_c, "carol's stream on C").await;
        let reply = call(
            c.addr,
            Method::PUT,
            &format!("/sse/listen/{frank}/news"),
            &[],
            "",
        )
        .await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.body);
        assert_eq!(c.backend.counts().imported, 1);
        drop((a.sse, c.sse));
    });
}

/// A client's stream opened on B ends its stream open on A, and the other way round; events
/// then reach the client once, on its newest stream.
#[test]
fn a_stream_opened_on_another_node_replaces_the_old_one() {
    let redis = Redis::start();
    run(async {
        let (a, b) = (node(&redis).await, node(&redis).await);
        let id = issue(a.addr, None).await;
        let mut on_a = open(a.addr, &id, None).await;
        let mut on_b = open(b.addr, &id, None).await;
        ends(&mut on_a, "the stream on A").await;
        assert_eq!(broadcast(a.addr, "to B").await["delivered"], 1);
        assert_eq!(message(&mut on_b).await.0, "to B");

        let mut again = open(a.addr, &id, None).await;
        ends(&mut on_b, "the stream on B").await;
        broadcast(b.addr, "to A").await;
        assert_eq!(message(&mut again).await.0, "to A");
        let (hub_a, hub_b) = (a.sse.hub().clone(), b.sse.hub().clone());
        eventually("attached on A only", || {
            hub_a.stats().attached == 1 && hub_b.stats().attached == 0
        })
        .await;
        drop((a.sse, b.sse));
    });
}

/// The stream keeps `max_len` entries, or those younger than `max_age` in its place (on a server
/// that stores one entry per stream node, so that the approximate trims are exact).
#[test]
fn the_stream_is_bounded_by_length_or_by_age() {
    let redis = Redis::start_with(&["--stream-node-max-entries", "1"]);
    run(async {
        let by_len = node_with(&redis, |_, redis_config| {
            redis_config.stream = "by-len".into();
            redis_config.max_len = 2;
        })
        .await;
        let by_age = node_with(&redis, |_, redis_config| {
            redis_config.stream = "by-age".into();
            redis_config.max_age = Some(Duration::from_millis(200));
        })
        .await;
        for _ in 0..5 {
            issue(by_len.addr, None).await;
        }
        assert_eq!(redis.command(&["XLEN", "by-len"]), ":2");
        for _ in 0..3 {
            issue(by_age.addr, None).await;
        }
        // Not a timing assertion: waits until those three are older than `max_age`.
        tokio::time::sleep(Duration::from_millis(300)).await;
        issue(by_age.addr, None).await;
        assert_eq!(redis.command(&["XLEN", "by-age"]), ":1");
        drop((by_len.sse, by_age.sse));
    });
}

/// Every node sweeps at once (each node's sweeper every 50 ms, and the admin route on both
/// together): a client idle everywhere goes, on every node and from Redis, without an error; a
/// client idle on A but attached on B stays, its stream open.
#[test]
fn the_sweep_is_safe_on_every_node_at_once() {
    let redis = Redis::start();
    run(async {
        let short = |config: &mut Config, _: &mut RedisConfig| {
            config.sweep_interval = Duration::from_millis(50);
            config.registry.grace = Duration::from_secs(1);
            config.registry.unattached_ttl = Duration::from_secs(1);
        };
        let (a, b) = (
            node_with(&redis, short).await,
            node_with(&redis, short).await,
        );
        let idle = issue(a.addr, None).await;
        let kept = issue(a.addr, None).await;
        let mut on_b = open(b.addr, &kept, None).await;
        assert_eq!(
            redis.command(&["EXISTS", &format!("sse:alive:{kept}")]),
            ":1"
        );
        let (idle_id, kept_id) = (idle.parse().unwrap(), kept.parse().unwrap());
        let (hub_a, hub_b) = (a.sse.hub().clone(), b.sse.hub().clone());
        eventually("the idle client is swept everywhere", || {
            !hub_a.contains(idle_id) && !hub_b.contains(idle_id)
        })
        .await;
        let sweep = |addr| async move {
            let reply = call(addr, Method::POST, "/sse/sweep", &[BEARER], "").await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        };
        tokio::join!(sweep(a.addr), sweep(b.addr));
        assert!(hub_a.contains(kept_id) && hub_b.contains(kept_id));
        assert_eq!(
            redis.command(&["EXISTS", &format!("sse:client:{idle}")]),
            ":0"
        );
        assert_eq!(
            redis.command(&["EXISTS", &format!("sse:client:{kept}")]),
            ":1"
        );
        broadcast(a.addr, "still here").await;
        assert_eq!(message(&mut on_b).await.0, "still here");
        let gone = call(b.addr, Method::GET, &format!("/sse/events/{idle}"), &[], "").await;
        assert_eq!(gone.status, StatusCode::NOT_FOUND);
        for node in [&a, &b] {
            let counts = node.backend.counts();
            assert_eq!(counts.append_errors, 0, "{counts:?}");
        }
        drop((a.sse, b.sse));
    });
}

#[test]
fn redis_outage_is_reported_and_survived() {
    let mut redis = Redis::start();
    run(async {
        let (a, b) = (node(&redis).await, node(&redis).await);
        let id = issue(a.addr, None).await;
        let mut on_b = open(b.addr, &id, None).await;
        broadcast(a.addr, "before").await;
        assert_eq!(message(&mut on_b).await.0, "before");

        redis.kill();
        // Publishing fails loudly; the stream on B stays open; the nodes keep answering.
        let lost = call(a.addr, Method::POST, "/sse/broadcast", &[BEARER], "lost").await;
        assert_eq!(
            lost.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            lost.body
        );
        let reply = call(b.addr, Method::POST, "/sse/clients", &[], "").await;
        assert_eq!(
            reply.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            reply.body
        );
        // What failed, in our words: no peer reads the Redis client's error text (which names
        // hosts and ports) or a word of the Redis protocol.
        for body in [&reply.body, &lost.body] {
            assert!(body.contains("the shared store"), "{body}");
            let lower = body.to_lowercase();
            for leak in ["redis", "error", "refused", "127.0.0.1", "os "] {
                assert!(!lower.contains(leak), "{leak:?} in {body:?}");
            }
        }
        assert!(a.backend.counts().append_errors >= 1);
        let backend = b.backend.clone();
        eventually("B's consumer notices the outage", || {
            backend.counts().read_errors > 0
        })
        .await;
        // An operator sees it too, in the admin counts.
        let stats = call(b.addr, Method::GET, "/sse/stats", &[BEARER], "").await;
        let report = &stats.json()["backend"];
        assert_eq!(report["kind"], "redis", "{report}");
        assert_eq!(report["connected"], false, "{report}");
        let scrape = call(b.addr, Method::GET, "/sse/metrics", &[BEARER], "").await;
        assert!(
            scrape.body.contains("\nsse_backend_connected 0\n"),
            "{}",
            scrape.body
        );
        assert!(report["read_errors"].as_u64() > Some(0), "{report}");
        // B keeps serving the clients it knows: the client reconnects there (its other streams
        // cannot be told to end, but it has none) and gets what it missed when Redis is back.
        drop(on_b);
        let mut on_b = open(b.addr, &id, None).await;
        // An id B does not know cannot be looked up: B cannot tell, and says so.
        let unknown = sse_registry::ClientId::random();
        let reply = call(
            b.addr,
            Method::GET,
            &format!("/sse/events/{unknown}"),
            &[],
            "",
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            reply.body
        );

        redis.spawn();
        // Back: publishing works again (after the nodes reconnect) and reaches the open stream.
        support::broadcast_once_back(a.addr, "after").await;
        assert_eq!(message(&mut on_b).await.0, "after");
        assert!(b.backend.counts().connected);
        drop((a.sse, b.sse));
    });
}
