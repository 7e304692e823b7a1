//! The end-to-end suite: every route, status and runtime duty of the protocol over real
//! loopback TCP. Written once; each runtime's test target includes it with `#[path]` and
//! provides `start_server`.

#![allow(unreachable_pub, dead_code)]

pub mod client;

use std::future::Future;
use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use sse_http::{Config, Sse, Task};

use self::client::{Events, PATIENCE, Version, call, eventually, issue};
use super::start_server;

pub const TOKEN: &str = "s3cret-admin-token";
const BEARER: (&str, &str) = ("authorization", "Bearer s3cret-admin-token");

/// A running server under test.
pub struct Server {
    pub addr: SocketAddr,
    pub sse: Sse,
    stop: Option<Box<dyn FnOnce() -> bool + Send>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    pub fn new(
        addr: SocketAddr,
        sse: Sse,
        stop: Box<dyn FnOnce() -> bool + Send>,
        thread: JoinHandle<()>,
    ) -> Self {
        Self {
            addr,
            sse,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Signals shutdown and waits (boundedly) for the server to return.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop();
        }
        if let Some(thread) = self.thread.take() {
            let deadline = Instant::now() + PATIENCE;
            while !thread.is_finished() {
                assert!(Instant::now() < deadline, "server did not stop in time");
                std::thread::sleep(Duration::from_millis(10));
            }
            thread.join().expect("server thread");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.stop();
        }
    }
}

/// Runs a server on its own thread and tokio runtime, on an ephemeral loopback port: `serve`
/// gets the listener, the service (built on that runtime) and a future that completes when the
/// test stops the server, and returns when the server has shut down.
pub fn tokio_server<F, Fut>(config: Config, serve: F) -> Server
where
    F: FnOnce(tokio::net::TcpListener, Sse, tokio::sync::oneshot::Receiver<()>) -> Fut
        + Send
        + 'static,
    Fut: Future<Output = ()>,
{
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = listener.local_addr().expect("addr");
            let sse = sse_tokio::service(config, task_handler);
            ready_tx.send((addr, sse.clone())).expect("ready");
            serve(listener, sse, stop_rx).await;
        });
    });
    let (addr, sse) = ready_rx.recv().expect("server started");
    Server::new(
        addr,
        sse,
        Box::new(move || stop_tx.send(()).is_ok()),
        thread,
    )
}

/// The application task used by the suite: two progress reports, then completion.
pub async fn task_handler(task: Task) {
    for step in 1..=2 {
        task.sleep(Duration::from_millis(20)).await;
        task.progress(&format!("{}:{step}/2", task.id())).await;
    }
}

pub fn config() -> Config {
    let mut config = Config::default();
    config.admin_token = Some(TOKEN.into());
    config
}

/// Runs the test's client side on a runtime of its own.
pub fn run(f: impl Future<Output = ()>) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime")
        .block_on(f);
}

async fn open(addr: SocketAddr, id: &str) -> Events {
    let mut events = Events::open(addr, Version::H1, id, None).await;
    assert_eq!(events.status, StatusCode::OK);
    assert_eq!(events.expect("registered").await, id);
    events
}

/// Subscribes `id` to `key`, which must succeed.
async fn listen(addr: SocketAddr, id: &str, key: &str) {
    let put = call(
        addr,
        Method::PUT,
        &format!("/sse/listen/{id}/{key}"),
        &[],
        "",
    )
    .await;
    assert_eq!(put.status, StatusCode::NO_CONTENT, "{}", put.body);
}

#[test]
fn issue_and_open_a_stream() {
    let server = start_server(config());
    run(async {
        let addr = server.addr;
        let id = issue(addr, None).await;
        assert!(id.parse::<sse_registry::ClientId>().is_ok(), "{id}");
        let mut events = Events::open(addr, Version::H1, &id, None).await;
        assert_eq!(events.status, StatusCode::OK);
        assert_eq!(events.headers["content-type"], "text/event-stream");
        assert_eq!(events.headers["cache-control"], "no-cache");
        assert_eq!(events.headers["x-accel-buffering"], "no");
        let (t, data, last_id) = events.next().await.expect("registered");
        assert_eq!(
            (t.as_str(), data.as_str(), last_id.as_str()),
            ("registered", id.as_str(), "0")
        );
        let first = String::from_utf8_lossy(&events.raw).into_owned();
        assert!(first.contains("\nretry: 2000\n"), "{first:?}");
        // Every event frame carries an id.
        let reply = call(addr, Method::POST, "/sse/broadcast", &[BEARER], "hello").await;
        assert_eq!(reply.status, StatusCode::ACCEPTED);
        assert_eq!(reply.json()["delivered"], 1);
        assert_eq!(
            events.next().await,
            Some(("message".into(), "hello".into(), "1".into()))
        );
    });
}

#[test]
fn unknown_and_malformed_ids() {
    let server = start_server(config());
    run(async {
        let addr = server.addr;
        let stranger = "1b4e28ba-2fa1-41d2-883f-0016d3cca427";
        for (method, path) in [
            (Method::GET, format!("/sse/events/{stranger}")),
            (Method::PUT, format!("/sse/listen/{stranger}/news")),
            (Method::DELETE, format!("/sse/listen/{stranger}/news")),
            (Method::PUT, format!("/sse/tasks/{stranger}/t1")),
            (Method::DELETE, format!("/sse/clients/{stranger}")),
        ] {
            let reply = call(addr, method.clone(), &path, &[], "").await;
            assert_eq!(reply.status, StatusCode::NOT_FOUND, "{method} {path}");
        }
        for path in [
            "/sse/events/nope",
            "/sse/events/1b4e28ba2fa141d2883f0016d3cca427",
            "/sse/events/%00",
        ] {
            let reply = call(addr, Method::GET, path, &[], "").await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path}");
            assert_eq!(reply.body, "malformed client id");
        }
        assert_eq!(
            call(addr, Method::GET, "/elsewhere", &[], "").await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            call(addr, Method::GET, "/sse/nothing/here", &[], "")
                .await
                .status,
            StatusCode::NOT_FOUND
        );
        let reply = call(addr, Method::PATCH, "/sse/broadcast", &[], "").await;
        assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(reply.headers["allow"], "POST, OPTIONS");
    });
}

#[test]
fn listen_and_notify() {
    let server = start_server(config());
    run(async {
        let addr = server.addr;
        let id = issue(addr, None).await;
        let other = issue(addr, None).await;
        let mut events = open(addr, &id).await;
        let mut others = open(addr, &other).await;
        listen(addr, &id, "news").await;
        let reply = call(
            addr,
            Method::POST,
            "/sse/notify/news",
            &[BEARER],
            "extra! extra!",
        )
        .await;
        assert_eq!(reply.status, StatusCode::ACCEPTED);
        assert_eq!(reply.json()["delivered"], 1);
        assert_eq!(events.expect("news").await, "extra! extra!");
        let del = call(
            addr,
            Method::DELETE,
            &format!("/sse/listen/{id}/news"),
            &[],
            "",
        )
        .await;
        assert_eq!(del.status, StatusCode::NO_CONTENT);
        let reply = call(addr, Method::POST, "/sse/notify/news", &[BEARER], "nobody").await;
        assert_eq!(reply.json()["delivered"], 0);
        // A broadcast proves the earlier notify never reached the other client and the later
        // one reached nobody: each stream's next event is the broadcast.
        call(addr, Method::POST, "/sse/broadcast", &[BEARER], "all").await;
        assert_eq!(events.expect("message").await, "all");
        assert_eq!(others.expect("message").await, "all");
    });
}

/// An admin publish with an `Idempotency-Key` is made once: the repeat is answered `202`
/// `{"replayed": true}` with the `idempotent-replayed` header and reaches nobody; the same key
/// on another route or target is another publish; a malformed key is a `400` with a reason.
#[test]
fn idempotent_publishes_are_made_once() {
    let server = start_server(config());
    run(async {
        let addr = server.addr;
        let id = issue(addr, None).await;
        let mut events = open(addr, &id).await;
        listen(addr, &id, "news").await;
        let key = ("idempotency-key", "retry-7f3a");
        let first = call(addr, Method::POST, "/sse/broadcast", &[BEARER, key], "once").await;
        assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.body);
        assert_eq!(first.json()["delivered"], 1);
        assert!(!first.headers.contains_key("idempotent-replayed"));
        for _ in 0..2 {
            let again = call(addr, Method::POST, "/sse/broadcast", &[BEARER, key], "once").await;
            assert_eq!(again.status, StatusCode::ACCEPTED, "{}", again.body);
            assert_eq!(again.json()["replayed"], true, "{}", again.body);
            assert_eq!(again.headers["idempotent-replayed"], "true");
        }
        // The same key names another publish on another route: a notify of `news`.
        let notify = call(addr, Method::POST, "/sse/notify/news", &[BEARER, key], "n").await;
        assert_eq!(notify.status, StatusCode::ACCEPTED, "{}", notify.body);
        assert_eq!(notify.json()["delivered"], 1, "{}", notify.body);
        let bad_keys = ["has space".to_owned(), "k".repeat(129), String::new()];
        for bad in &bad_keys {
            let reply = call(
                addr,
                Method::POST,
                "/sse/broadcast",
                &[BEARER, ("idempotency-key", bad)],
                "never",
            )
            .await;
            assert_eq!(
                reply.status,
                StatusCode::BAD_REQUEST,
                "{bad:?}: {}",
                reply.body
            );
            assert!(reply.body.contains("Idempotency-Key"), "{}", reply.body);
        }
        call(addr, Method::POST, "/sse/broadcast", &[BEARER], "fence").await;
        // Exactly: the first broadcast, the notify, the fence; no replay, no rejected publish.
        assert_eq!(events.expect("message").await, "once");
        assert_eq!(events.expect("news").await, "n");
        assert_eq!(events.expect("message").await, "fence");
    });
}

#[test]
fn keys_are_validated() {
    let mut config = config();
    config.registry.max_keys_per_client = 2;
    config.max_key_len = 8;
    let server = start_server(config);
    run(async {
        let addr = server.addr;
        let id = issue(addr, None).await;
        for reserved in ["registered", "completed", "progress", "reset", "message"] {
            let reply = call(
                addr,
                Method::PUT,
                &format!("/sse/listen/{id}/{reserved}"),
                &[],
                "",
            )
            .await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{reserved}");
            let reply = call(
                addr,
                Method::POST,
                &format!("/sse/notify/{reserved}"),
                &[BEARER],
                "x",
            )
            .await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{reserved}");
        }
        for bad in ["toolongkey", "sp%20ace", "a%0Ab", "%E2%9C%93"] {
            let reply = call(
                addr,
                Method::PUT,
                &format!("/sse/listen/{id}/{bad}"),
                &[],
                "",
            )
            .await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        }
        for key in ["a", "b"] {
            let reply = call(
                addr,
                Method::PUT,
                &format!("/sse/listen/{id}/{key}"),
                &[],
                "",
            )
            .await;
            assert_eq!(reply.status, StatusCode::NO_CONTENT);
        }
        let reply = call(addr, Method::PUT, &format!("/sse/listen/{id}/c"), &[], "").await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        assert!(reply.body.contains("at most 2 keys"), "{}", reply.body);
    });
}

#[test]
fn task_completion_reaches_every_tab_of_the_name() {
    let server = start_server(config());
    run(async {
        let addr = server.addr;
        let tab1 = issue(addr, Some("ann")).await;
        let tab2 = issue(addr, Some("ann")).await;
        let stranger = issue(addr, Some("bob")).await;
        let mut e1 = open(addr, &tab1).await;
        let mut e2 = open(addr, &tab2).await;
        let mut e3 = open(addr, &stranger).await;
        let reply = call(
            addr,
            Method::PUT,
            &format!("/sse/tasks/{tab1}/job-1"),
            &[],
            "",
        )
        .await;
        assert_eq!(reply.status, StatusCode::ACCEPTED);
        for events in [&mut e1, &mut e2] {
            assert_eq!(events.expect("progress").await, "job-1:1/2");
            assert_eq!(events.expect("progress").await, "job-1:2/2");
            let done: serde_json::Value =
                serde_json::from_str(&events.expect("completed").await).unwrap();
            // Never the submitter's id: the other tabs of the name get this too.
            assert!(done.get("id").is_none(), "no client id in {done}");
            assert_eq!(done["taskid"], "job-1");
            assert!(done["timestamp"].as_u64().unwrap() > 1_600_000_000_000);
        }
        call(addr, Method::POST, "/sse/broadcast", &[BEARER], "fence").await;
        assert_eq!(
            e3.expect("message").await,
            "fence",
            "other names get nothing of the task"
        );
        // A client without a name gets its own completion.
        let solo = issue(addr, None).await;
        let mut e4 = open(addr, &solo).await;
        call(addr, Method::PUT, &format!("/sse/tasks/{solo}/t"), &[], "").await;
        e4.expect("progress").await;
        e4.expect("progress").await;
        e4.expect("completed").await;
        let bad = call(
            addr,
            Method::PUT,
            &format!("/sse/tasks/{solo}/bad%20id"),
            &[],
            "",
        )
        .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    });
}

/// The metrics in the Prometheus text format: name (with its labels) to value.
fn metrics(text: &str) -> std::collections::HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// `GET metrics` (admin): the hub's counts and the HTTP layer's, in the Prometheus text
/// format, with no client id in them.
#[test]
fn metrics_in_the_prometheus_text_format() {
    let server = start_server(config());
    run(async {
        let addr = server.addr;
        let reply = call(addr, Method::GET, "/sse/metrics", &[], "").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        let (a, b) = (issue(addr, None).await, issue(addr, None).await);
        let mut events = open(addr, &a).await;
        let reply = call(addr, Method::POST, "/sse/broadcast", &[BEARER], "hi").await;
        assert_eq!(reply.status, StatusCode::ACCEPTED);
        assert_eq!(events.next().await.expect("the broadcast").1, "hi");
        let reply = call(addr, Method::DELETE, &format!("/sse/clients/{b}"), &[], "").await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
        let unknown = sse_registry::ClientId::random();
        let path = format!("/sse/events/{unknown}");
        assert_eq!(
            call(addr, Method::GET, &path, &[], "").await.status,
            StatusCode::NOT_FOUND
        );

        let scrape = || async {
            let reply = call(addr, Method::GET, "/sse/metrics", &[BEARER], "").await;
            assert_eq!(reply.status, StatusCode::OK);
            assert!(
                reply.headers["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("text/plain; version=0.0.4"),
                "{:?}",
                reply.headers
            );
            for id in [&a, &b] {
                assert!(!reply.body.contains(id.as_str()), "an id in the metrics");
            }
            reply.body
        };
        let text = scrape().await;
        let m = metrics(&text);
        let get = |name: &str| {
            m.get(name)
                .copied()
                .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        };
        assert_eq!(get("sse_clients"), 1.0);
        assert_eq!(get("sse_streams_open"), 1.0);
        assert_eq!(get("sse_clients_issued_total"), 2.0);
        assert_eq!(get("sse_clients_removed_total"), 1.0);
        assert_eq!(get(r#"sse_events_published_total{target="all"}"#), 1.0);
        assert_eq!(get(r#"sse_events_published_total{target="key"}"#), 0.0);
        assert_eq!(get("sse_frames_delivered_total"), 1.0);
        assert_eq!(get(r#"sse_http_rejected_total{status="401"}"#), 1.0);
        assert_eq!(get(r#"sse_http_rejected_total{status="404"}"#), 1.0);
        assert_eq!(
            get(r#"sse_http_requests_total{route="issue",status="201"}"#),
            2.0
        );
        assert_eq!(get("sse_publish_duration_seconds_count"), 1.0);
        // One recipient is woken in the publisher's call: no wake-up task ran.
        assert_eq!(get("sse_wake_run_duration_seconds_count"), 0.0);
        // A stream's bytes are counted by the time it ends.
        let written = events.raw.len() as f64;
        drop(events);
        let deadline = Instant::now() + PATIENCE;
        loop {
            let m = metrics(&scrape().await);
            if m.get("sse_streams_open") == Some(&0.0) {
                assert!(m["sse_stream_bytes_written_total"] >= written, "{m:?}");
                break;
            }
            assert!(Instant::now() < deadline, "the stream never ended");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}

/// The admin key: only the admin may listen to it; its listeners are told when the set of
/// clients changes, with the hub's counts (never an id), coalesced.
#[test]
fn the_admin_key_tells_the_admin_when_clients_change() {
    let server = start_server(config());
    run(async {
        let addr = server.addr;
        let admin = issue(addr, None).await;
        let mut events = open(addr, &admin).await;
        let path = format!("/sse/listen/{admin}/admin.clients");
        let reply = call(addr, Method::PUT, &path, &[], "").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
        let reply = call(addr, Method::PUT, &path, &[BEARER], "").await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
        // Its own subscription is a change: the first notification comes within the interval.
        let (kind, data, _) = events.next().await.expect("a notification");
        assert_eq!(kind, "admin.clients");
        let counts: serde_json::Value = serde_json::from_str(&data).expect("JSON counts");
        assert_eq!(counts["clients"], 1, "{counts}");
        // Fifty clients registered at once: told about them in a few notifications, not fifty,
        // the last with every one of them counted.
        let mut ids = Vec::new();
        for _ in 0..50 {
            ids.push(issue(addr, None).await);
        }
        let mut seen = 0;
        loop {
            let (kind, data, _) = events.next().await.expect("a notification");
            assert_eq!(kind, "admin.clients");
            for id in &ids {
                assert!(!data.contains(id.as_str()), "an id in the admin event");
            }
            seen += 1;
            let counts: serde_json::Value = serde_json::from_str(&data).unwrap();
            if counts["clients"] == 51 {
                break;
            }
        }
        assert!(seen < 10, "{seen} notifications for 50 clients");
        // A removal is a change too.
        let reply = call(
            addr,
            Method::DELETE,
            &format!("/sse/clients/{}", ids[0]),
            &[],
            "",
        )
        .await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
        let (_, data, _) = events.next().await.expect("a notification");
        let counts: serde_json::Value = serde_json::from_str(&data).unwrap();
        assert_eq!(
            (counts["clients"].as_u64(), counts["removed"].as_u64()),
            (Some(50), Some(1))
        );
    });
}

#[test]
fn delete_client_ends_its_stream() {
    let server = start_server(config());
    run(async {
        let addr = server.addr;
        let id = issue(addr, None).await;
        let mut events = open(addr, &id).await;
        let reply = call(addr, Method::DELETE, &format!("/sse/clients/{id}"), &[], "").await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
        assert_eq!(events.next().await, None, "stream ended");
        let reply = call(addr, Method::DELETE, &format!("/sse/clients/{id}"), &[], "").await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
    });
}

#[test]
fn admin_routes_need_the_token() {
    let server = start_server(config());
    let no_admin = start_server(Config::default());
    run(async {
        let addr = server.addr;
        let id = issue(addr, Some("ann")).await;
        let _events = open(addr, &id).await;
        call(addr, Method::PUT, &format!("/sse/listen/{id}/k"), &[], "").await;
        for (method, path) in [
            (Method::GET, "/sse/clients"),
            (Method::DELETE, "/sse/clients"),
            (Method::POST, "/sse/sweep"),
            (Method::GET, "/sse/stats"),
            (Method::POST, "/sse/broadcast"),
            (Method::POST, "/sse/notify/k"),
        ] {
            let reply = call(addr, method.clone(), path, &[], "").await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{method} {path}");
            assert!(!reply.body.contains(&id));
            let wrong = call(
                addr,
                method.clone(),
                path,
                &[("authorization", "Bearer s3cret-admin-tokeX")],
                "",
            )
            .await;
            assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{method} {path}");
            let off = call(no_admin.addr, method.clone(), path, &[BEARER], "").await;
            assert_eq!(off.status, StatusCode::FORBIDDEN, "{method} {path}");
        }
        let list = call(addr, Method::GET, "/sse/clients", &[BEARER], "").await;
        assert_eq!(list.status, StatusCode::OK);
        let clients = &list.json()["clients"];
        assert_eq!(clients[0]["id"], id.as_str());
        assert_eq!(clients[0]["name"], "ann");
        assert_eq!(clients[0]["keys"], serde_json::json!(["k"]));
        assert_eq!(clients[0]["attached"], true);
        let stats = call(addr, Method::GET, "/sse/stats", &[BEARER], "").await;
        assert_eq!(stats.status, StatusCode::OK);
        let stats = stats.json();
        assert_eq!(stats["clients"], 1);
        assert_eq!(stats["attached"], 1);
        assert_eq!(stats["subscriptions"], 1);
        assert!(stats["backend"].is_null(), "no backend: {stats}");
        let sweep = call(addr, Method::POST, "/sse/sweep", &[BEARER], "").await;
        assert_eq!(
            (sweep.status, sweep.json()["removed"].as_u64()),
            (StatusCode::OK, Some(0))
        );
        let clear = call(addr, Method::DELETE, "/sse/clients", &[BEARER], "").await;
        assert_eq!(clear.status, StatusCode::NO_CONTENT);
        let list = call(addr, Method::GET, "/sse/clients", &[BEARER], "").await;
        assert_eq!(list.json()["clients"], serde_json::json!([]));
    });
}

#[test]
fn reconnect_replaces_the_old_stream_and_replays() {
    let server = start_server(config());
    run(async {
        let addr = server.addr;
        let id = issue(addr, None).await;
        let mut first = open(addr, &id).await;
        call(addr, Method::POST, "/sse/broadcast", &[BEARER], "one").await;
        let (_, _, seen) = first.next().await.unwrap();
        call(addr, Method::POST, "/sse/broadcast", &[BEARER], "two").await;
        call(addr, Method::POST, "/sse/broadcast", &[BEARER], "three").await;
        // The browser reconnects with the last id it saw.
        let mut second = Events::open(addr, Version::H1, &id, Some(&seen)).await;
        let (t, _, resume) = second.next().await.unwrap();
        assert_eq!((t.as_str(), resume.as_str()), ("registered", seen.as_str()));
        assert_eq!(second.expect("message").await, "two");
        assert_eq!(second.expect("message").await, "three");
        // The old stream has been replaced: it ends (after what it had already been sent).
        while first.next().await.is_some() {}
        call(addr, Method::POST, "/sse/broadcast", &[BEARER], "four").await;
        assert_eq!(second.expect("message").await, "four");
        assert_eq!(server.sse.hub().stats().attached, 1);
    });
}

#[test]
fn a_too_old_last_event_id_gets_a_reset() {
    let mut config = config();
    config.registry.history_len = 2;
    let server = start_server(config);
    run(async {
        let addr = server.addr;
        let id = issue(addr, None).await;
        for n in 0..4 {
            call(
                addr,
                Method::POST,
                "/sse/broadcast",
                &[BEARER],
                format!("m{n}"),
            )
            .await;
        }
        let mut events = Events::open(addr, Version::H1, &id, Some("1")).await;
        events.expect("registered").await;
        assert_eq!(events.expect("reset").await, "4");
        let mut events = Events::open(addr, Version::H1, &id, Some("2")).await;
        events.expect("registered").await;
        assert_eq!(events.expect("message").await, "m2");
        assert_eq!(events.expect("message").await, "m3");
    });
}

#[test]
fn idle_streams_get_keep_alive_comments() {
    let mut config = config();
    config.keep_alive = Duration::from_millis(100);
    let server = start_server(config);
    run(async {
        let addr = server.addr;
        let id = issue(addr, None).await;
        let mut events = open(addr, &id).await;
        assert!(
            events.wait_for_raw(b"\n:\n").await,
            "a keep-alive comment arrives"
        );
        // Comments are invisible to a parser: the next event is the next real one.
        call(addr, Method::POST, "/sse/broadcast", &[BEARER], "after").await;
        assert_eq!(events.expect("message").await, "after");
    });
}

#[test]
fn a_closed_connection_detaches_the_client() {
    let server = start_server(config());
    run(async {
        let addr = server.addr;
        let id = issue(addr, None).await;
        let events = open(addr, &id).await;
        let hub = server.sse.hub().clone();
        assert_eq!(hub.stats().attached, 1);
        drop(events); // closes the connection
        eventually("the server notices the closed connection", || {
            hub.stats().attached == 0
        })
        .await;
        assert_eq!(
            hub.stats().clients,
            1,
            "detached, not forgotten: it may reconnect"
        );
    });
}

#[test]
fn graceful_shutdown_ends_open_streams() {
    let mut server = start_server(config());
    let addr = server.addr;
    let (tx, rx) = std::sync::mpsc::channel();
    let client = std::thread::spawn(move || {
        run(async move {
            let id = issue(addr, None).await;
            let mut a = open(addr, &id).await;
            let id2 = issue(addr, None).await;
            let mut b = Events::open(addr, Version::H2, &id2, None).await;
            b.expect("registered").await;
            tx.send(()).unwrap();
            assert_eq!(a.next().await, None, "HTTP/1.1 stream ended by shutdown");
            assert_eq!(b.next().await, None, "HTTP/2 stream ended by shutdown");
        });
    });
    rx.recv_timeout(PATIENCE).expect("streams open");
    server.stop(); // returns only once serve() has returned
    client.join().expect("client saw clean ends");
}

#[test]
fn limits_and_malformed_input() {
    let mut config = config();
    config.max_body = 16;
    config.max_name_len = 5;
    config.registry.max_clients = 3;
    let server = start_server(config);
    run(async {
        let addr = server.addr;
        let big = call(
            addr,
            Method::POST,
            "/sse/broadcast",
            &[BEARER],
            "x".repeat(17),
        )
        .await;
        assert_eq!(big.status, StatusCode::PAYLOAD_TOO_LARGE);
        let ok = call(
            addr,
            Method::POST,
            "/sse/broadcast",
            &[BEARER],
            "x".repeat(16),
        )
        .await;
        assert_eq!(ok.status, StatusCode::ACCEPTED);
        let bad = call(
            addr,
            Method::POST,
            "/sse/broadcast",
            &[BEARER],
            &b"\xff\xfe"[..],
        )
        .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        assert_eq!(bad.body, "body must be UTF-8");
        let long = call(addr, Method::POST, "/sse/clients?name=abcdef", &[], "").await;
        assert_eq!(long.status, StatusCode::BAD_REQUEST);
        let ctl = call(addr, Method::POST, "/sse/clients?name=a%0Ab", &[], "").await;
        assert_eq!(ctl.status, StatusCode::BAD_REQUEST);
        let named = call(
            addr,
            Method::POST,
            "/sse/clients?name=%C3%A9t%C3%A9",
            &[],
            "",
        )
        .await;
        assert_eq!(
            named.status,
            StatusCode::CREATED,
            "percent-decoded UTF-8 names are fine"
        );
        issue(addr, None).await;
        issue(addr, None).await;
        let full = call(addr, Method::POST, "/sse/clients", &[], "").await;
        assert_eq!(full.status, StatusCode::SERVICE_UNAVAILABLE);
        // Injection attempts in data stay inside data.
        let id = call(addr, Method::DELETE, "/sse/clients", &[BEARER], "").await;
        assert_eq!(id.status, StatusCode::NO_CONTENT);
        let id = issue(addr, None).await;
        let mut events = open(addr, &id).await;
        call(
            addr,
            Method::POST,
            "/sse/broadcast",
            &[BEARER],
            "a\n\nevent: x",
        )
        .await;
        assert_eq!(events.expect("message").await, "a\n\nevent: x");
    });
}

#[test]
fn cors_preflight_and_headers() {
    let mut config = config();
    config.cors_origins = vec!["http://app.example".into()];
    let server = start_server(config);
    run(async {
        let addr = server.addr;
        let origin = ("origin", "http://app.example");
        let pre = call(
            addr,
            Method::OPTIONS,
            "/sse/clients",
            &[
                origin,
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "Last-Event-ID, X-Unknown"),
            ],
            "",
        )
        .await;
        assert_eq!(pre.status, StatusCode::NO_CONTENT);
        assert_eq!(pre.headers["access-control-allow-methods"], "POST");
        assert_eq!(pre.headers["access-control-allow-headers"], "last-event-id");
        assert_eq!(
            pre.headers["access-control-allow-origin"],
            "http://app.example"
        );
        assert!(
            pre.headers["access-control-allow-headers"]
                .to_str()
                .unwrap()
                .contains("last-event-id")
        );
        let evil = call(
            addr,
            Method::OPTIONS,
            "/sse/clients",
            &[("origin", "http://evil.example")],
            "",
        )
        .await;
        assert_eq!(evil.status, StatusCode::FORBIDDEN);
        let reply = call(addr, Method::POST, "/sse/clients", &[origin], "").await;
        assert_eq!(
            reply.headers["access-control-allow-origin"],
            "http://app.example"
        );
        let reply = call(
            addr,
            Method::POST,
            "/sse/clients",
            &[("origin", "http://evil.example")],
            "",
        )
        .await;
        assert!(!reply.headers.contains_key("access-control-allow-origin"));
        // Allowed or not, the answer depends on the origin: caches must keep them apart.
        assert_eq!(reply.headers["vary"], "origin");
        let plain = call(addr, Method::POST, "/sse/clients", &[], "").await;
        assert_eq!(plain.headers["vary"], "origin");
        // Credentials are off unless configured.
        let reply = call(addr, Method::POST, "/sse/clients", &[origin], "").await;
        assert!(
            !reply
                .headers
                .contains_key("access-control-allow-credentials")
        );
    });
}

#[test]
fn cors_credentials_only_for_origins_listed_by_name() {
    let mut config = config();
    config.cors_origins = vec!["http://app.example".into(), "*".into()];
    config.cors_credentials = true;
    let server = start_server(config);
    run(async {
        let addr = server.addr;
        let named = ("origin", "http://app.example");
        let pre = call(addr, Method::OPTIONS, "/sse/clients", &[named], "").await;
        assert_eq!(pre.headers["access-control-allow-credentials"], "true");
        let reply = call(addr, Method::POST, "/sse/clients", &[named], "").await;
        assert_eq!(reply.headers["access-control-allow-credentials"], "true");
        // `*` lets any origin read, but not with the user's cookies.
        let other = ("origin", "http://other.example");
        let reply = call(addr, Method::POST, "/sse/clients", &[other], "").await;
        assert_eq!(
            reply.headers["access-control-allow-origin"],
            "http://other.example"
        );
        assert!(
            !reply
                .headers
                .contains_key("access-control-allow-credentials")
        );
    });
}

#[test]
fn issuing_and_streams_are_limited_per_address() {
    let mut config = config();
    let mut limits = sse_http::PeerLimits::default();
    limits.issue_burst = 3;
    limits.issue_per_sec = 1;
    limits.max_streams = 2;
    config.peer_limits = Some(limits);
    // Requests "through a proxy" on loopback: each forwarded address has its own allowance.
    config.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    let server = start_server(config);
    run(async {
        let addr = server.addr;
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(issue(addr, None).await);
        }
        let refused = call(addr, Method::POST, "/sse/clients", &[], "").await;
        assert_eq!(
            refused.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{}",
            refused.body
        );
        let wait: u64 = refused.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=2).contains(&wait), "retry after {wait} s");
        // Another address (as the trusted proxy says) is not held up by this one.
        let elsewhere = [("x-forwarded-for", "203.0.113.7")];
        let other = call(addr, Method::POST, "/sse/clients", &elsewhere, "").await;
        assert_eq!(other.status, StatusCode::CREATED);

        // Two streams from one address; the third waits for one to end.
        let mut first = Events::open(addr, Version::H1, &ids[0], None).await;
        first.expect("registered").await;
        let mut second = Events::open(addr, Version::H1, &ids[1], None).await;
        second.expect("registered").await;
        let third = call(
            addr,
            Method::GET,
            &format!("/sse/events/{}", ids[2]),
            &[],
            "",
        )
        .await;
        assert_eq!(
            third.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{}",
            third.body
        );
        assert!(third.headers.contains_key("retry-after"));
        drop(first);
        let hub = server.sse.hub().clone();
        eventually("the first stream is detached", || hub.stats().attached == 1).await;
        let mut again = Events::open(addr, Version::H1, &ids[2], None).await;
        assert_eq!(again.status, StatusCode::OK);
        again.expect("registered").await;
    });
}

#[test]
fn subscriptions_and_keys_are_capped_over_all_clients() {
    let mut config = config();
    config.max_subscriptions = 3;
    config.max_keys = 2;
    let server = start_server(config);
    run(async {
        let addr = server.addr;
        let (a, b) = (issue(addr, None).await, issue(addr, None).await);
        let put = |id: &str, key: &str| format!("/sse/listen/{id}/{key}");
        for path in [put(&a, "k1"), put(&a, "k2")] {
            let reply = call(addr, Method::PUT, &path, &[], "").await;
            assert_eq!(reply.status, StatusCode::NO_CONTENT);
        }
        // A third distinct key is refused; a key already held is not.
        let new_key = call(addr, Method::PUT, &put(&b, "k3"), &[], "").await;
        assert_eq!(
            new_key.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            new_key.body
        );
        let again = call(addr, Method::PUT, &put(&a, "k1"), &[], "").await;
        assert_eq!(again.status, StatusCode::NO_CONTENT);
        let shared = call(addr, Method::PUT, &put(&b, "k1"), &[], "").await;
        assert_eq!(shared.status, StatusCode::NO_CONTENT, "{}", shared.body);
        // Three subscriptions held: a fourth is refused.
        let fourth = call(addr, Method::PUT, &put(&b, "k2"), &[], "").await;
        assert_eq!(
            fourth.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            fourth.body
        );
        assert_eq!(server.sse.hub().stats().subscriptions, 3);
    });
}

#[test]
fn clients_per_name_are_limited() {
    let mut config = config();
    config.registry.max_name_members = 2;
    let server = start_server(config);
    run(async {
        let addr = server.addr;
        issue(addr, Some("ann")).await;
        let second = issue(addr, Some("ann")).await;
        let third = call(addr, Method::POST, "/sse/clients?name=ann", &[], "").await;
        assert_eq!(
            third.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{}",
            third.body
        );
        assert!(third.body.contains("at most 2"), "{}", third.body);
        // Other names, and clients without one, are not affected; room comes back.
        issue(addr, Some("bob")).await;
        issue(addr, None).await;
        let path = format!("/sse/clients/{second}");
        assert_eq!(
            call(addr, Method::DELETE, &path, &[], "").await.status,
            StatusCode::NO_CONTENT
        );
        issue(addr, Some("ann")).await;
    });
}

#[test]
fn task_limits_per_client_and_overall() {
    let mut config = config();
    config.max_tasks = 3;
    config.max_tasks_per_client = 2;
    let server = start_server(config);
    run(async {
        let addr = server.addr;
        let (a, b, c) = (
            issue(addr, None).await,
            issue(addr, None).await,
            issue(addr, None).await,
        );
        // The suite's tasks take ~40 ms: these overlap.
        for (id, task, want) in [
            (&a, "t1", StatusCode::ACCEPTED),
            (&a, "t2", StatusCode::ACCEPTED),
            // One client cannot take every slot...
            (&a, "t3", StatusCode::TOO_MANY_REQUESTS),
            (&b, "t1", StatusCode::ACCEPTED),
            // ...and all of them together are bounded too.
            (&c, "t1", StatusCode::SERVICE_UNAVAILABLE),
        ] {
            let path = format!("/sse/tasks/{id}/{task}");
            let reply = call(addr, Method::PUT, &path, &[], "").await;
            assert_eq!(reply.status, want, "{task}: {}", reply.body);
        }
        // Slots come back when the tasks end.
        let path = format!("/sse/tasks/{c}/t2");
        let mut last = StatusCode::SERVICE_UNAVAILABLE;
        for _ in 0..200 {
            last = call(addr, Method::PUT, &path, &[], "").await.status;
            if last == StatusCode::ACCEPTED {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(last, StatusCode::ACCEPTED);
    });
}

#[test]
fn admin_token_and_paging_details() {
    let mut config = config();
    config.max_list = 1;
    let server = start_server(config);
    run(async {
        let addr = server.addr;
        issue(addr, None).await;
        issue(addr, None).await;
        let lower = ("authorization", "bearer s3cret-admin-token");
        let list = call(addr, Method::GET, "/sse/clients", &[lower], "").await;
        assert_eq!(
            list.status,
            StatusCode::OK,
            "the scheme is case-insensitive"
        );
        for wrong in [
            "Bearer s3cret",
            "Bearer s3cret-admin-token-and-more",
            "Bearer ",
            "Basic x",
        ] {
            let reply = call(
                addr,
                Method::GET,
                "/sse/clients",
                &[("authorization", wrong)],
                "",
            )
            .await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{wrong}");
        }
        let page = call(
            addr,
            Method::GET,
            "/sse/clients?limit=1&format=json",
            &[BEARER],
            "",
        )
        .await;
        assert_eq!(
            page.status,
            StatusCode::OK,
            "unknown parameters are ignored"
        );
        assert_eq!(page.json()["clients"].as_array().unwrap().len(), 1);
        // A page never holds more than `max_list`, whatever the limit asked; `next` goes on.
        let first = call(addr, Method::GET, "/sse/clients?limit=1000", &[BEARER], "").await;
        let first = first.json();
        assert_eq!(first["clients"].as_array().unwrap().len(), 1, "{first}");
        let next = first["next"].as_u64().expect("a next page");
        let path = format!("/sse/clients?offset={next}");
        let second = call(addr, Method::GET, &path, &[BEARER], "").await.json();
        assert_eq!(second["clients"].as_array().unwrap().len(), 1, "{second}");
        assert_ne!(first["clients"][0]["id"], second["clients"][0]["id"]);
        let zero = call(addr, Method::GET, "/sse/clients?limit=0", &[BEARER], "").await;
        assert_eq!(zero.status, StatusCode::BAD_REQUEST);
        let nan = call(addr, Method::GET, "/sse/clients?offset=x", &[BEARER], "").await;
        assert_eq!(nan.status, StatusCode::BAD_REQUEST);
    });
}

#[test]
fn head_of_a_stream_does_not_open_it() {
    let server = start_server(config());
    run(async {
        let addr = server.addr;
        let id = issue(addr, None).await;
        let mut events = open(addr, &id).await;
        let head = call(addr, Method::HEAD, &format!("/sse/events/{id}"), &[], "").await;
        assert_eq!(head.status, StatusCode::OK);
        assert_eq!(head.headers["content-type"], "text/event-stream");
        let unknown = "/sse/events/00000000-0000-4000-8000-000000000000";
        let missing = call(addr, Method::HEAD, unknown, &[], "").await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        // The live stream was not replaced.
        call(
            addr,
            Method::POST,
            "/sse/broadcast",
            &[BEARER],
            "still here",
        )
        .await;
        assert_eq!(events.expect("message").await, "still here");
        assert_eq!(server.sse.hub().stats().attached, 1);
    });
}

#[test]
fn http2_prior_knowledge_streams() {
    let server = start_server(config());
    run(async {
        let addr = server.addr;
        let id = issue(addr, None).await;
        let mut events = Events::open(addr, Version::H2, &id, None).await;
        assert_eq!(events.status, StatusCode::OK);
        assert_eq!(events.expect("registered").await, id);
        call(addr, Method::POST, "/sse/broadcast", &[BEARER], "over h2").await;
        assert_eq!(events.expect("message").await, "over h2");
    });
}

#[test]
fn the_sweeper_forgets_clients_that_never_come_back() {
    let mut config = config();
    config.sweep_interval = Duration::from_millis(50);
    config.registry.grace = Duration::from_millis(100);
    config.registry.unattached_ttl = Duration::from_millis(100);
    let server = start_server(config);
    run(async {
        let addr = server.addr;
        let never = issue(addr, None).await;
        let gone = issue(addr, None).await;
        drop(open(addr, &gone).await);
        let hub = server.sse.hub().clone();
        eventually("both swept", || hub.stats().clients == 0).await;
        assert!(hub.stats().swept >= 2);
        for id in [never, gone] {
            let reply = call(addr, Method::GET, &format!("/sse/events/{id}"), &[], "").await;
            assert_eq!(reply.status, StatusCode::NOT_FOUND);
        }
    });
}

/// A raw HTTP/1.1 connection, for checks on the wire format.
pub struct Raw {
    pub tcp: tokio::net::TcpStream,
    /// Received and not yet taken.
    buf: Vec<u8>,
}

impl Raw {
    pub async fn connect(addr: SocketAddr) -> Self {
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        Self {
            tcp,
            buf: Vec::new(),
        }
    }

    /// Writes `request` (in two pieces, a moment apart, as a slow client would) and reads the
    /// response head; returns it as text, in lower case, and the body if it has a length.
    pub async fn request(&mut self, request: &str) -> (String, Option<String>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (first, second) = request.as_bytes().split_at(request.len() / 2);
        self.tcp.write_all(first).await.expect("write");
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.tcp.write_all(second).await.expect("write");
        // A response to HEAD has a length but no body.
        let head_only = request.starts_with("HEAD ");
        let read = tokio::time::timeout(client::PATIENCE, async {
            loop {
                if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&self.buf[..end + 4]).to_lowercase();
                    let length = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .map(|n| n.trim().parse::<usize>().expect("length"))
                        .map(|n| if head_only { 0 } else { n });
                    let body_end = end + 4 + length.unwrap_or(0);
                    if self.buf.len() >= body_end {
                        let body = length.map(|_| {
                            String::from_utf8_lossy(&self.buf[end + 4..body_end]).into_owned()
                        });
                        self.buf.drain(..body_end);
                        return (head, body);
                    }
                }
                let mut chunk = [0u8; 512];
                let n = self.tcp.read(&mut chunk).await.expect("read");
                assert!(n > 0, "closed before the response: {:?}", self.buf);
                self.buf.extend_from_slice(&chunk[..n]);
            }
        });
        read.await.unwrap_or_else(|_| {
            panic!(
                "response in time; got {:?}",
                String::from_utf8_lossy(&self.buf)
            )
        })
    }
}

/// The wire format over HTTP/1.1, on one keep-alive connection: register, then open the stream.
/// Served by `serve`, bodiless requests take the lean path (the stream close-delimited, with
/// `connection: close`); served by an application (`LEAN` false), hyper answers (chunked).
#[test]
fn http1_stream_wire_format() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = start_server(config());
    run(async {
        let addr = server.addr;
        let mut raw = Raw::connect(addr).await;
        let (head, id) = raw
            .request("POST /sse/clients HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n")
            .await;
        assert!(head.starts_with("http/1.1 201 created\r\n"), "{head}");
        assert!(!head.contains("connection: close"), "{head}");
        let id = id.expect("a body with its length");
        assert!(id.parse::<sse_registry::ClientId>().is_ok(), "{id}");
        // The same connection carries the stream.
        let get = format!("GET /sse/events/{id} HTTP/1.1\r\nhost: x\r\nlast-event-id: 0\r\n\r\n");
        let (head, _) = raw.request(&get).await;
        assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
        assert!(
            head.contains("content-type: text/event-stream\r\n"),
            "{head}"
        );
        assert!(head.contains("\r\ndate: "), "{head}");
        if super::LEAN {
            assert!(head.contains("\r\nconnection: close\r\n"), "{head}");
            assert!(!head.contains("transfer-encoding"), "{head}");
        } else {
            assert!(head.contains("transfer-encoding: chunked\r\n"), "{head}");
        }
        let hub = server.sse.hub().clone();
        eventually("the stream is attached", || hub.stats().attached == 1).await;
        // A client has nothing to say on its stream: past a bound, the lean path hangs up.
        if super::LEAN {
            let junk = vec![b'x'; 70 * 1024];
            let _ = raw.tcp.write_all(&junk).await;
            let closed = tokio::time::timeout(client::PATIENCE, async {
                let mut buf = [0u8; 4096];
                loop {
                    match raw.tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
            });
            closed.await.expect("the server closes the connection");
            eventually("the client is detached", || hub.stats().attached == 0).await;
        }
        // Pipelined bodiless requests are answered in order; an unknown id gets a whole 404.
        let mut raw = Raw::connect(addr).await;
        let unknown = "GET /sse/events/00000000-0000-4000-8000-000000000000 HTTP/1.1\r\n\
                       host: x\r\n\r\n";
        let twice = format!("{unknown}{unknown}");
        let (head, body) = raw.request(&twice).await;
        assert!(head.starts_with("http/1.1 404 not found\r\n"), "{head}");
        assert!(body.is_some(), "{head}");
        let (head, _) = raw.request("").await;
        assert!(head.starts_with("http/1.1 404 not found\r\n"), "{head}");
        // A client that says `connection: close` gets it, and the connection ends.
        let mut closing = Raw::connect(addr).await;
        let (head, _) = closing
            .request("GET /sse/client.js HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await;
        assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
        assert!(head.contains("\r\nconnection: close\r\n"), "{head}");
        let mut rest = [0u8; 64];
        let end = tokio::time::timeout(client::PATIENCE, closing.tcp.read(&mut rest)).await;
        assert!(
            matches!(end, Ok(Ok(0) | Err(_))),
            "the server closes the connection: {end:?}"
        );
        // A request with a body hands the connection to hyper, which answers it and what follows.
        let notify = "POST /sse/broadcast HTTP/1.1\r\nhost: x\r\n\
                      authorization: Bearer s3cret-admin-token\r\ncontent-length: 2\r\n\r\nhi";
        let (head, body) = raw.request(notify).await;
        assert!(head.starts_with("http/1.1 202 accepted\r\n"), "{head}");
        assert!(body.is_some_and(|b| b.contains("delivered")));
        let (head, _) = raw
            .request("HEAD /sse/client.js HTTP/1.1\r\nhost: x\r\n\r\n")
            .await;
        assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
        assert!(head.contains("content-type: text/javascript"), "{head}");
    });
}
