//! Hostile peers over real loopback sockets: each abuse gets its 4xx or a close, the server
//! keeps serving, a bystander's stream loses nothing, and the process's memory settles (a
//! round of every abuse, repeated, does not grow it by more than 10%).

use std::net::SocketAddr;
use std::time::Duration;

use http::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::start_server;
use super::suite::client::{Events, PATIENCE, Version, call, issue};
use super::suite::{Server, config, run};

const BEARER: (&str, &str) = ("authorization", "Bearer s3cret-admin-token");
const ID: &str = "0f0e0d0c-0b0a-4908-8706-050403020100";

/// The resident set of this process (server and clients), in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Sends `bytes` (stopping quietly if the server hangs up first) and returns what the server
/// answered before closing, or nothing if it only closed.
async fn send_raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    for chunk in bytes.chunks(64 * 1024) {
        if tcp.write_all(chunk).await.is_err() {
            break;
        }
    }
    answer(&mut tcp).await
}

/// What the server sends until it closes (at most 64 KiB kept), waiting at most PATIENCE.
async fn answer(tcp: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let read = tokio::time::timeout(PATIENCE, async {
        let mut buf = [0u8; 4096];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) if got.len() < 64 * 1024 => got.extend_from_slice(&buf[..n]),
                Ok(_) => {}
            }
        }
    });
    read.await.expect("the server answers or closes in time");
    String::from_utf8_lossy(&got).into_owned()
}

/// A 4xx status line, or nothing (a close): never a success, never a 5xx.
fn refused(answer: &str, what: &str) {
    let status = answer.get(9..12).unwrap_or("");
    assert!(
        answer.is_empty() || status.starts_with('4'),
        "{what}: {:?}",
        answer.get(..answer.len().min(200))
    );
}

/// A stream that must see every broadcast, in order, whatever the others do.
struct Bystander {
    events: Events,
    next: u32,
}

impl Bystander {
    async fn open(server: &Server) -> Self {
        let id = issue(server.addr, None).await;
        let mut events = Events::open(server.addr, Version::H1, &id, None).await;
        events.expect("registered").await;
        Self { events, next: 0 }
    }

    /// Publishes the next broadcast and waits for it on the stream.
    async fn check(&mut self, addr: SocketAddr) {
        let data = format!("fence {}", self.next);
        let res = call(
            addr,
            Method::POST,
            "/sse/broadcast",
            &[BEARER],
            data.clone(),
        )
        .await;
        assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.body);
        // Everything before it arrived too (the hub resets a stream that lost events).
        loop {
            let (kind, got, _) = self.events.next().await.expect("the bystander's stream");
            assert_ne!(kind, "reset", "the bystander lost events");
            if kind == "message" && got == data {
                break;
            }
        }
        self.next += 1;
        // What the test client keeps of the wire for other tests: not memory of the server's.
        self.events.raw = Vec::new();
    }
}

/// One round of every abuse, each followed by a check that the bystander is still served.
async fn round(server: &Server, bystander: &mut Bystander) {
    let addr = server.addr;

    // Slow-loris: half a request head, then silence. The other clients are served meanwhile;
    // the connection is closed within the head timeout.
    let mut loris = TcpStream::connect(addr).await.expect("connect");
    loris
        .write_all(b"GET /sse/client.js HTTP/1.1\r\nhost: x\r\nx-slow")
        .await
        .expect("write");
    bystander.check(addr).await;
    refused(&answer(&mut loris).await, "slow-loris");

    // A 1 MiB head, and 10,000 headers.
    let mut big = b"GET /sse/client.js HTTP/1.1\r\nhost: x\r\nx-big: ".to_vec();
    big.resize(big.len() + (1 << 20), b'a');
    big.extend_from_slice(b"\r\n\r\n");
    refused(&send_raw(addr, &big).await, "a 1 MiB head");
    let mut many = b"GET /sse/client.js HTTP/1.1\r\nhost: x\r\n".to_vec();
    for i in 0..10_000 {
        many.extend_from_slice(format!("h{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    refused(&send_raw(addr, &many).await, "10,000 headers");
    bystander.check(addr).await;

    // A 100 MiB body (sent until the server stops reading): 413, and nothing published.
    let head = format!(
        "POST /sse/broadcast HTTP/1.1\r\nhost: x\r\n{}: {}\r\ncontent-length: {}\r\n\r\n",
        BEARER.0,
        BEARER.1,
        100 << 20
    );
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(head.as_bytes()).await.expect("write");
    let chunk = vec![b'x'; 64 * 1024];
    for _ in 0..(100 << 4) {
        let wrote = tokio::time::timeout(Duration::from_millis(500), tcp.write_all(&chunk)).await;
        if !matches!(wrote, Ok(Ok(()))) {
            break;
        }
    }
    // 413, or a close: a server that closes with the rest of a body unread may reset the
    // connection before its answer is read.
    let res = answer(&mut tcp).await;
    refused(&res, "a 100 MiB body");
    assert!(
        res.is_empty() || res.starts_with("HTTP/1.1 413"),
        "{:?}",
        res.get(..80)
    );
    bystander.check(addr).await;

    // A stream whose reader never reads, while broadcasts of 32 KiB go out: the server's
    // buffers for it stay bounded (the hub resets a consumer that falls too far behind).
    let id = issue(addr, None).await;
    let mut stuck = TcpStream::connect(addr).await.expect("connect");
    let open = format!("GET /sse/events/{id} HTTP/1.1\r\nhost: x\r\n\r\n");
    stuck.write_all(open.as_bytes()).await.expect("write");
    let payload = "y".repeat(32 * 1024);
    for _ in 0..64 {
        let res = call(
            addr,
            Method::POST,
            "/sse/broadcast",
            &[BEARER],
            payload.clone(),
        )
        .await;
        assert_eq!(res.status, StatusCode::ACCEPTED);
    }
    bystander.check(addr).await;
    drop(stuck);

    // 1,000 connections opened and dropped mid-request, 100 at a time.
    for _ in 0..10 {
        let mut open = Vec::new();
        for i in 0..100 {
            let mut tcp = TcpStream::connect(addr).await.expect("connect");
            let partial: &[u8] = match i % 3 {
                0 => b"POST /sse/clients HTTP/1.1\r\nhost",
                1 => b"PUT /sse/broadcast HTTP/1.1\r\ncontent-length: 10\r\n\r\nabc",
                _ => b"GET /sse/events/",
            };
            tcp.write_all(partial).await.expect("write");
            open.push(tcp);
        }
        drop(open);
    }
    bystander.check(addr).await;

    // Invalid UTF-8 and NULs in every path segment and in the headers, raw and
    // percent-encoded.
    let templates = [
        "GET /sse/events/{}",
        "GET /sse/{}/x",
        "PUT /sse/listen/{}/news",
        &format!("PUT /sse/listen/{ID}/{{}}"),
        &format!("PUT /sse/tasks/{ID}/{{}}"),
        "DELETE /sse/clients/{}",
        "POST /sse/clients?name={}",
        "POST /sse/notify/{}",
        "GET /{}/events/x",
    ];
    for template in templates {
        for bad in [
            &b"\xff\xfe"[..],
            b"\x00",
            b"%FF%FE",
            b"%00",
            b"a\x80b",
            b"%C3%28",
        ] {
            let mut req = Vec::new();
            let (before, after) = template.split_once("{}").expect("a hole");
            req.extend_from_slice(before.as_bytes());
            req.extend_from_slice(bad);
            req.extend_from_slice(after.as_bytes());
            req.extend_from_slice(b" HTTP/1.1\r\nhost: x\r\n");
            req.extend_from_slice(format!("{}: {}\r\n", BEARER.0, BEARER.1).as_bytes());
            req.extend_from_slice(b"connection: close\r\n\r\n");
            let what = String::from_utf8_lossy(&req).into_owned();
            refused(&send_raw(addr, &req).await, &what);
        }
    }
    let id = issue(addr, None).await;
    let stream = format!("GET /sse/events/{id}");
    for (route, name, value) in [
        (stream.as_str(), &b"last-event-id"[..], &b"\xff\xfe"[..]),
        (&stream, b"last-event-id", b"1\x002"),
        (&stream, b"x-other", b"\x00"),
        (&stream, b"x-\xff", b"v"),
        (&stream, b"x-\x00", b"v"),
        (&stream, b"origin", b"\x00"),
        ("GET /sse/stats", b"authorization", b"Bearer \xff"),
        ("GET /sse/stats", b"authorization", b"Bearer s3cret\x00"),
    ] {
        let mut req = format!("{route} HTTP/1.1\r\nhost: x\r\n").into_bytes();
        req.extend_from_slice(name);
        req.extend_from_slice(b": ");
        req.extend_from_slice(value);
        req.extend_from_slice(b"\r\nconnection: close\r\n\r\n");
        let what = String::from_utf8_lossy(&req).into_owned();
        refused(&send_raw(addr, &req).await, &what);
    }
    bystander.check(addr).await;
}

#[test]
fn hostile_peers_are_refused_and_leave_nothing_behind() {
    let mut config = config();
    config.head_timeout = Duration::from_millis(300);
    // A small history, filled in the first round, so that its bytes do not count as growth.
    config.registry.history_bytes = 1 << 20;
    let server = start_server(config);
    run(async {
        let mut bystander = Bystander::open(&server).await;
        // Two rounds settle what every round allocates (buffers, the history, the allocator's
        // pools: RSS levels off after them, measured over eight rounds on both runtimes).
        round(&server, &mut bystander).await;
        round(&server, &mut bystander).await;
        let settled = rss_kib();
        for _ in 0..3 {
            round(&server, &mut bystander).await;
        }
        let after = rss_kib();
        assert!(
            after <= settled + settled / 10,
            "memory grew from {settled} KiB to {after} KiB over three rounds"
        );
        let stats = server.sse.hub().stats();
        assert_eq!(stats.attached, 1, "only the bystander is left: {stats:?}");
    });
}
