//! What the Redis tests share, whatever runtime serves the nodes: a `redis-server` of the
//! test's own, the helpers, the task handler, and the scenario every runtime runs. Included
//! with `#[path]` by `redis.rs` (tokio) and `redis_smol.rs` (smol), next to `suite/client.rs`.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use sse_http::Task;

use crate::client::{Events, PATIENCE, Version, call, issue};

pub const TOKEN: &str = "s3cret-admin-token";
pub const BEARER: (&str, &str) = ("authorization", "Bearer s3cret-admin-token");

/// A `redis-server` of the test's own, killed (by its PID) when dropped.
pub struct Redis {
    pub port: u16,
    args: Vec<String>,
    child: Option<Child>,
}

impl Redis {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A server started with these extra arguments (`--name value` pairs).
    pub fn start_with(args: &[&str]) -> Self {
        let port = StdListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let args = args.iter().map(|a| (*a).to_owned()).collect();
        let mut redis = Self {
            port,
            args,
            child: None,
        };
        redis.spawn();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(&self.args)
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

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }

    /// Runs one command on the server (plain RESP over a fresh connection) and returns the
    /// first line of its reply, such as `:0` for an integer reply.
    pub fn command(&self, args: &[&str]) -> String {
        let mut line = String::new();
        self.send(args).read_line(&mut line).expect("redis reply");
        line.trim_end().to_owned()
    }

    /// Runs one command whose reply is a bulk string (`INFO`, `CLIENT LIST`) and returns it.
    pub fn text(&self, args: &[&str]) -> String {
        let mut reader = self.send(args);
        let mut line = String::new();
        reader.read_line(&mut line).expect("redis reply");
        let len: usize = line
            .trim_end()
            .strip_prefix('$')
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("not a bulk string: {line:?}"));
        let mut body = vec![0; len];
        std::io::Read::read_exact(&mut reader, &mut body).expect("redis reply");
        String::from_utf8(body).expect("UTF-8 reply")
    }

    /// Sends one command over a fresh connection; returns the reply to read.
    fn send(&self, args: &[&str]) -> BufReader<StdStream> {
        let mut conn = StdStream::connect(("127.0.0.1", self.port)).expect("connect to redis");
        conn.set_read_timeout(Some(PATIENCE)).expect("timeout");
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        conn.write_all(request.as_bytes()).expect("send to redis");
        BufReader::new(conn)
    }

    /// How many times the server ran `command` (lower case), from `INFO commandstats`.
    pub fn calls(&self, command: &str) -> u64 {
        let stats = self.text(&["INFO", "commandstats"]);
        let prefix = format!("cmdstat_{command}:calls=");
        stats
            .lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .map_or(0, |rest| {
                rest.split(',')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("a count")
            })
    }

    /// Stops the server (`SIGSTOP`, by its PID): it accepts connections but answers nothing,
    /// as a hung server does, until [`resume`](Self::resume).
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a [paused](Self::pause) server run again (`SIGCONT`).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("a running server").id();
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {signal} {pid}");
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The application's tasks: two progress reports, 20 ms apart.
pub async fn task_handler(task: Task) {
    for step in 1..=2 {
        task.sleep(Duration::from_millis(20)).await;
        task.progress(&format!("{}:{step}/2", task.id())).await;
    }
}

/// Opens the client's stream, which must succeed and greet it.
pub async fn open(addr: SocketAddr, id: &str, last: Option<&str>) -> Events {
    let mut events = Events::open(addr, Version::H1, id, last).await;
    assert_eq!(events.status, StatusCode::OK);
    assert_eq!(events.expect("registered").await, id);
    events
}

pub async fn broadcast(addr: SocketAddr, data: &str) -> serde_json::Value {
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
pub async fn message(events: &mut Events) -> (String, String) {
    match events.next().await {
        Some((t, data, id)) if t == "message" => (data, id),
        other => panic!("expected a message, got {other:?}"),
    }
}

/// Broadcasts `data` on `addr` until it is accepted, which it must be within [`PATIENCE`]
/// (after an outage, once the node reaches Redis again). Every attempt carries the same
/// `Idempotency-Key` (`data`, which must be a valid key), so that an attempt answered `503`
/// but applied is not delivered twice by the next.
pub async fn broadcast_once_back(addr: SocketAddr, data: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let reply = call(
            addr,
            Method::POST,
            "/sse/broadcast",
            &[BEARER, ("idempotency-key", data)],
            data.to_owned(),
        )
        .await;
        if reply.status == StatusCode::ACCEPTED {
            return;
        }
        assert!(Instant::now() < deadline, "never recovered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// While Redis hangs ([`Redis::pause`]): one request, then fifty at once (issuing ids and
/// subscribing `id`), all answered `503` in our words. A hang guard, not a timing assertion:
/// the fifty must not queue behind each other's connects (fifty connect timeouts, 100 s), and
/// the guard is far above the deadline.
pub async fn fifty_requests_while_hung(addr: SocketAddr, id: &str) {
    // The first request finds the connection hung, within the deadline.
    let first = call(addr, Method::POST, "/sse/broadcast", &[BEARER], "x").await;
    let mut replies = vec![first];
    let requests: Vec<_> = (0..50)
        .map(|n| {
            let (method, path) = if n % 2 == 0 {
                (Method::POST, "/sse/clients".to_owned())
            } else {
                (Method::PUT, format!("/sse/listen/{id}/k{n}"))
            };
            tokio::spawn(async move { call(addr, method, &path, &[], "").await })
        })
        .collect();
    let all = async {
        for request in requests {
            replies.push(request.await.expect("request task"));
        }
    };
    tokio::time::timeout(Duration::from_secs(20), all)
        .await
        .expect("every request answered, none queued behind another's connect");
    for reply in &replies {
        assert_eq!(
            reply.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            reply.body
        );
        assert!(reply.body.contains("the shared store"), "{}", reply.body);
        let lower = reply.body.to_lowercase();
        assert!(!lower.contains("redis"), "{}", reply.body);
    }
}

/// Reads the stream until it ends, which it must do within [`PATIENCE`].
pub async fn ends(events: &mut Events, what: &str) {
    let ended =
        tokio::time::timeout(PATIENCE, async { while events.next().await.is_some() {} }).await;
    assert!(ended.is_ok(), "{what} did not end");
}

/// Two nodes, `a` and `b`, sharing one Redis act as one hub: ids, names, subscriptions, tasks,
/// removals and events cross nodes, and `Last-Event-ID` resumes on the other node.
pub async fn act_as_one_hub(a: SocketAddr, b: SocketAddr) {
    // An id issued on A opens its stream on B; one issued on B opens on A.
    let alice_1 = issue(a, Some("alice")).await;
    let alice_2 = issue(b, Some("alice")).await;
    let mut on_b = open(b, &alice_1, None).await;
    let mut on_a = open(a, &alice_2, None).await;

    // A broadcast on B reaches clients on both nodes, with the same id, once each.
    assert_eq!(broadcast(b, "hello").await["delivered"], 2);
    let (data, id_b) = message(&mut on_b).await;
    let (data_a, id_a) = message(&mut on_a).await;
    assert_eq!((data.as_str(), data_a.as_str()), ("hello", "hello"));
    assert_eq!(id_a, id_b);
    assert!(id_a.parse::<u64>().unwrap() > 1 << 20, "{id_a}");

    // Subscribing on B (an id from A), notifying on A.
    let put = call(
        b,
        Method::PUT,
        &format!("/sse/listen/{alice_1}/news"),
        &[],
        "",
    )
    .await;
    assert_eq!(put.status, StatusCode::NO_CONTENT);
    let reply = call(a, Method::POST, "/sse/notify/news", &[BEARER], "extra").await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert_eq!(reply.json()["delivered"], 1);
    assert_eq!(on_b.expect("news").await, "extra");

    // A task submitted on B (an id from A): its progress and completion reach both tabs
    // of the name, one on each node.
    let put = call(b, Method::PUT, &format!("/sse/tasks/{alice_1}/t1"), &[], "").await;
    assert_eq!(put.status, StatusCode::ACCEPTED);
    for events in [&mut on_a, &mut on_b] {
        assert_eq!(events.expect("progress").await, "t1:1/2");
        assert_eq!(events.expect("progress").await, "t1:2/2");
        let done: serde_json::Value =
            serde_json::from_str(&events.expect("completed").await).unwrap();
        assert_eq!(done["taskid"], "t1");
        assert!(done.get("id").is_none(), "no client id in {done}");
    }

    // Reconnecting from A to B with Last-Event-ID replays exactly what was missed.
    let bob = issue(a, None).await;
    let mut bob_a = open(a, &bob, None).await;
    broadcast(a, "seen").await;
    let (_, seen) = message(&mut bob_a).await;
    drop(bob_a);
    broadcast(b, "missed 1").await;
    call(a, Method::POST, "/sse/notify/news", &[BEARER], "not bob's").await;
    broadcast(a, "missed 2").await;
    let mut bob_b = open(b, &bob, Some(&seen)).await;
    assert_eq!(message(&mut bob_b).await.0, "missed 1");
    assert_eq!(message(&mut bob_b).await.0, "missed 2");
    broadcast(a, "live").await;
    assert_eq!(message(&mut bob_b).await.0, "live");

    // An id this cluster never used cannot be resumed: reset.
    let mut stale = Events::open(b, Version::H1, &bob, Some("12345")).await;
    stale.expect("registered").await;
    assert!(!stale.expect("reset").await.is_empty());
    drop(stale);

    // DELETE on A ends the stream open on B, and B forgets the id.
    let del = call(
        a,
        Method::DELETE,
        &format!("/sse/clients/{alice_1}"),
        &[],
        "",
    )
    .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    ends(&mut on_b, "the stream on B").await;
    let gone = call(b, Method::GET, &format!("/sse/events/{alice_1}"), &[], "").await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}
