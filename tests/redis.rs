//! Two servers sharing one Redis act as one hub: ids, subscriptions, tasks, removals and every
//! published event cross nodes, `Last-Event-ID` resumes on the other node, and a Redis outage
//! is reported to callers and survived. Starts its own `redis-server` on a free loopback port
//! (and fails, loudly, when there is none on the PATH).

#![allow(unreachable_pub, dead_code)]

#[path = "suite/client.rs"]
mod client;

use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use client::{Events, PATIENCE, Version, call, eventually, issue};
use http::{Method, StatusCode};
use sse_http::{Config, Runtime, Sse, Task};
use sse_redis::{RedisBackend, RedisConfig};
use sse_registry::Hub;

const TOKEN: &str = "s3cret-admin-token";
const BEARER: (&str, &str) = ("authorization", "Bearer s3cret-admin-token");

/// A `redis-server` of the test's own, killed (by its PID) when dropped.
struct Redis {
    port: u16,
    child: Option<Child>,
}

impl Redis {
    fn start() -> Self {
        let port = StdListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut redis = Self { port, child: None };
        redis.spawn();
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "cannot start redis-server ({err}): install it (Debian: apt-get install \
                     redis-server); .ci/run does"
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + PATIENCE;
        while StdStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One server of the cluster, on an ephemeral loopback port.
struct Node {
    addr: SocketAddr,
    sse: Sse,
    backend: RedisBackend,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn task_handler(task: Task) {
    for step in 1..=2 {
        task.sleep(Duration::from_millis(20)).await;
        task.progress(&format!("{}:{step}/2", task.id())).await;
    }
}

async fn node(redis: &Redis) -> Node {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut config = Config::default();
    config.admin_token = Some(TOKEN.into());
    let hub = Hub::new(config.registry.clone());
    let runtime: Arc<dyn Runtime> = Arc::new(sse_tokio::runtime());
    let mut redis_config = RedisConfig::new(redis.url());
    redis_config.backoff_max = Duration::from_millis(200);
    let backend =
        RedisBackend::start(redis_config, hub.clone(), runtime.clone()).expect("redis url");
    let sse = Sse::with_backend(
        config,
        hub,
        Arc::new(backend.clone()),
        runtime,
        task_handler,
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(sse_tokio::serve(listener, sse.clone(), async {
        stopped.await.ok();
    }));
    Node {
        addr,
        sse,
        backend,
        _stop: stop,
    }
}

fn run(f: impl std::future::Future<Output = ()>) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f);
}

async fn open(addr: SocketAddr, id: &str, last: Option<&str>) -> Events {
    let mut events = Events::open(addr, Version::H1, id, last).await;
    assert_eq!(events.status, StatusCode::OK);
    assert_eq!(events.expect("registered").await, id);
    events
}

async fn broadcast(addr: SocketAddr, data: &str) -> serde_json::Value {
    let reply = call(
        addr,
        Method::POST,
        "/sse/broadcast",
        &[BEARER],
        data.to_owned(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    reply.json()
}

/// The next event, which must be a broadcast: its data and id.
async fn message(events: &mut Events) -> (String, String) {
    match events.next().await {
        Some((t, data, id)) if t == "message" => (data, id),
        other => panic!("expected a message, got {other:?}"),
    }
}

#[test]
fn two_nodes_act_as_one_hub() {
    let redis = Redis::start();
    run(async {
        let (a, b) = (node(&redis).await, node(&redis).await);

        // An id issued on A opens its stream on B; one issued on B opens on A.
        let alice_1 = issue(a.addr, Some("alice")).await;
        let alice_2 = issue(b.addr, Some("alice")).await;
        let mut on_b = open(b.addr, &alice_1, None).await;
        let mut on_a = open(a.addr, &alice_2, None).await;

        // A broadcast on B reaches clients on both nodes, with the same id, once each.
        assert_eq!(broadcast(b.addr, "hello").await["delivered"], 2);
        let (data, id_b) = message(&mut on_b).await;
        let (data_a, id_a) = message(&mut on_a).await;
        assert_eq!((data.as_str(), data_a.as_str()), ("hello", "hello"));
        assert_eq!(id_a, id_b);
        assert!(id_a.parse::<u64>().unwrap() > 1 << 20, "{id_a}");

        // Subscribing on B (an id from A), notifying on A.
        let put = call(
            b.addr,
            Method::PUT,
            &format!("/sse/listen/{alice_1}/news"),
            &[],
            "",
        )
        .await;
        assert_eq!(put.status, StatusCode::NO_CONTENT);
        let reply = call(a.addr, Method::POST, "/sse/notify/news", &[BEARER], "extra").await;
        assert_eq!(reply.status, StatusCode::ACCEPTED);
        assert_eq!(reply.json()["delivered"], 1);
        assert_eq!(on_b.expect("news").await, "extra");

        // A task submitted on B (an id from A): its progress and completion reach both tabs
        // of the name, one on each node.
        let put = call(
            b.addr,
            Method::PUT,
            &format!("/sse/tasks/{alice_1}/t1"),
            &[],
            "",
        )
        .await;
        assert_eq!(put.status, StatusCode::ACCEPTED);
        for events in [&mut on_a, &mut on_b] {
            assert_eq!(events.expect("progress").await, "t1:1/2");
            assert_eq!(events.expect("progress").await, "t1:2/2");
            let done: serde_json::Value =
                serde_json::from_str(&events.expect("completed").await).unwrap();
            assert_eq!(done["taskid"], "t1");
            assert_eq!(done["id"], alice_1.as_str());
        }

        // Reconnecting from A to B with Last-Event-ID replays exactly what was missed.
        let bob = issue(a.addr, None).await;
        let mut bob_a = open(a.addr, &bob, None).await;
        broadcast(a.addr, "seen").await;
        let (_, seen) = message(&mut bob_a).await;
        drop(bob_a);
        broadcast(b.addr, "missed 1").await;
        call(
            a.addr,
            Method::POST,
            "/sse/notify/news",
            &[BEARER],
            "not bob's",
        )
        .await;
        broadcast(a.addr, "missed 2").await;
        let mut bob_b = open(b.addr, &bob, Some(&seen)).await;
        assert_eq!(message(&mut bob_b).await.0, "missed 1");
        assert_eq!(message(&mut bob_b).await.0, "missed 2");
        broadcast(a.addr, "live").await;
        assert_eq!(message(&mut bob_b).await.0, "live");

        // An id this cluster never used cannot be resumed: reset.
        let mut stale = Events::open(b.addr, Version::H1, &bob, Some("12345")).await;
        stale.expect("registered").await;
        assert!(!stale.expect("reset").await.is_empty());
        drop(stale);

        // DELETE on A ends the stream open on B, and B forgets the id.
        let del = call(
            a.addr,
            Method::DELETE,
            &format!("/sse/clients/{alice_1}"),
            &[],
            "",
        )
        .await;
        assert_eq!(del.status, StatusCode::NO_CONTENT);
        let ended = tokio::time::timeout(PATIENCE, async {
            loop {
                if on_b.next().await.is_none() {
                    break;
                }
            }
        })
        .await;
        assert!(ended.is_ok(), "the stream on B did not end");
        let gone = call(
            b.addr,
            Method::GET,
            &format!("/sse/events/{alice_1}"),
            &[],
            "",
        )
        .await;
        assert_eq!(gone.status, StatusCode::NOT_FOUND);
        let counts = a.backend.counts();
        assert!(
            counts.appended > 0 && counts.append_errors == 0,
            "{counts:?}"
        );
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
        let reply = call(a.addr, Method::POST, "/sse/broadcast", &[BEARER], "lost").await;
        assert_eq!(
            reply.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            reply.body
        );
        let reply = call(b.addr, Method::POST, "/sse/clients", &[], "").await;
        assert_eq!(
            reply.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            reply.body
        );
        assert!(a.backend.counts().append_errors >= 1);
        let backend = b.backend.clone();
        eventually("B's consumer notices the outage", || {
            backend.counts().read_errors > 0
        })
        .await;

        redis.spawn();
        // Back: publishing works again (after the nodes reconnect) and reaches the open stream.
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let reply = call(a.addr, Method::POST, "/sse/broadcast", &[BEARER], "after").await;
            if reply.status == StatusCode::ACCEPTED {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "never recovered");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(message(&mut on_b).await.0, "after");
        assert!(b.backend.counts().connected);
        drop((a.sse, b.sse));
    });
}
