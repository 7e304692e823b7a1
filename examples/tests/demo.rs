//! The demo binary as a deployer starts it: its options and their environment variables.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The demo, started with `args` (and `env`) on an ephemeral port; killed on drop.
struct Demo {
    child: Child,
    addr: SocketAddr,
    /// What it logged, when started by [`Demo::logging`].
    log: Option<std::thread::JoinHandle<Vec<u8>>>,
}

impl Demo {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::spawn(args, env, "warn")
    }

    /// The demo logging at `level` (a `RUST_LOG` filter); [`Demo::stop`] returns the log.
    fn logging(args: &[&str], level: &str) -> Self {
        Self::spawn(args, &[], level)
    }

    fn spawn(args: &[&str], env: &[(&str, &str)], level: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_demo"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", level)
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the demo starts");
        let mut stderr = child.stderr.take().expect("stderr");
        // Read all along, so that a chatty log never blocks the server.
        let log = std::thread::spawn(move || {
            let mut log = Vec::new();
            let _ = stderr.read_to_end(&mut log);
            log
        });
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the demo says where it listens");
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.trim().trim_end_matches('/').parse().ok())
            .unwrap_or_else(|| panic!("an address in {line:?}"));
        Self {
            child,
            addr,
            log: Some(log),
        }
    }

    /// Stops the demo; what it logged.
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let log = self.log.take().expect("a log").join().expect("the log");
        String::from_utf8_lossy(&log).into_owned()
    }

    /// Sends `request` on a new connection and returns the whole response, in lower case.
    fn call(&self, request: &str) -> String {
        let mut tcp = TcpStream::connect(self.addr).expect("connect");
        tcp.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        tcp.write_all(request.as_bytes()).expect("write");
        let mut got = Vec::new();
        let _ = tcp.read_to_end(&mut got);
        String::from_utf8_lossy(&got).to_lowercase()
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn preflight(origin: &str) -> String {
    format!(
        "OPTIONS /sse/clients HTTP/1.1\r\nhost: x\r\norigin: {origin}\r\n\
         access-control-request-method: POST\r\naccess-control-request-headers: content-type\r\n\
         connection: close\r\n\r\n"
    )
}

#[test]
fn cors_origins_from_options_and_from_the_environment() {
    let demo = Demo::start(
        &[
            "--cors-origin",
            "http://a.example",
            "--cors-origin",
            "http://b.example",
        ],
        &[],
    );
    for origin in ["http://a.example", "http://b.example"] {
        let res = demo.call(&preflight(origin));
        assert!(res.starts_with("http/1.1 204"), "{res}");
        assert!(
            res.contains(&format!("access-control-allow-origin: {origin}\r\n")),
            "{res}"
        );
        assert!(
            res.contains("access-control-allow-methods: post\r\n"),
            "{res}"
        );
        assert!(
            res.contains("access-control-allow-headers: content-type\r\n"),
            "{res}"
        );
    }
    let res = demo.call(&preflight("http://evil.example"));
    assert!(res.starts_with("http/1.1 403"), "{res}");
    drop(demo);

    let demo = Demo::start(&[], &[("SSE_CORS_ORIGINS", "*")]);
    let res = demo.call(&preflight("http://anyone.example"));
    assert!(
        res.contains("access-control-allow-origin: http://anyone.example\r\n"),
        "{res}"
    );
    drop(demo);

    // Without the option, CORS is off: a cross-origin caller is refused.
    let demo = Demo::start(&[], &[]);
    let res = demo.call(&preflight("http://a.example"));
    assert!(res.starts_with("http/1.1 403"), "{res}");
    assert!(!res.contains("access-control-allow-origin"), "{res}");
}

#[test]
fn the_keep_alive_interval_is_the_deployers() {
    let demo = Demo::start(&["--keep-alive", "1"], &[("SSE_HISTORY", "8")]);
    let id = demo.call("POST /sse/clients HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    let id = id
        .rsplit("\r\n\r\n")
        .next()
        .expect("a body")
        .trim()
        .to_owned();
    let mut tcp = TcpStream::connect(demo.addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(tcp, "GET /sse/events/{id} HTTP/1.1\r\nhost: x\r\n\r\n").expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    // The greeting, then a keep-alive comment (`:`) after about a second of silence.
    while !got.windows(3).any(|w| w == b"\n:\n") {
        let n = tcp.read(&mut buf).expect("the keep-alive comes");
        assert!(
            n > 0,
            "the stream ended: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn an_empty_admin_token_is_refused_at_start() {
    let out = Command::new(env!("CARGO_BIN_EXE_demo"))
        .args(["--listen", "127.0.0.1:0", "--admin-token", "  "])
        .output()
        .expect("the demo runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("admin token is empty"), "{err}");
}

/// Every id issued in a whole session (registering, streams, subscriptions, tasks, replacement,
/// removal, the admin list, a sweep) is absent from the demo's trace-level log: ids are
/// credentials, and the log names clients by their tag only.
#[test]
fn no_id_reaches_the_log_at_any_level() {
    for runtime in ["tokio", "smol"] {
        session_without_ids_in_the_log(runtime);
    }
}

fn session_without_ids_in_the_log(runtime: &str) {
    let args = [
        "--admin-token",
        "t0ken",
        "--step-ms",
        "5",
        "--runtime",
        runtime,
    ];
    let demo = Demo::logging(&args, "trace");
    let admin = "authorization: Bearer t0ken\r\n";
    let mut ids = Vec::new();
    for n in 0..20 {
        let name = if n % 2 == 0 { "?name=alice" } else { "" };
        let res = demo.call(&format!(
            "POST /sse/clients{name} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
        ));
        assert!(res.starts_with("http/1.1 201"), "{res}");
        ids.push(res.rsplit("\r\n\r\n").next().unwrap().trim().to_owned());
    }
    let mut streams = Vec::new();
    for id in &ids[..10] {
        streams.push(open_stream(&demo, id));
    }
    for id in &ids {
        let res = demo.call(&format!(
            "PUT /sse/listen/{id}/news HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
        ));
        assert!(res.starts_with("http/1.1 204"), "{res}");
        demo.call(&format!(
            "PUT /sse/tasks/{id}/t1 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
        ));
    }
    // A stream replaced, one dropped, a client removed, an unknown and a malformed id.
    let replaced = TcpStream::connect(demo.addr).expect("connect");
    write!(
        &replaced,
        "GET /sse/events/{} HTTP/1.1\r\nhost: x\r\n\r\n",
        ids[0]
    )
    .expect("write");
    drop(streams.pop());
    demo.call(&format!(
        "DELETE /sse/clients/{} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        ids[1]
    ));
    demo.call("GET /sse/events/0f0e0d0c-0b0a-4908-8706-050403020100 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    for route in ["GET /sse/clients", "GET /sse/stats", "POST /sse/sweep"] {
        let res = demo.call(&format!(
            "{route} HTTP/1.1\r\nhost: x\r\n{admin}content-length: 0\r\nconnection: close\r\n\r\n"
        ));
        assert!(res.starts_with("http/1.1 200"), "{route}: {res}");
    }
    let broadcast = "hello";
    demo.call(&format!(
        "POST /sse/broadcast HTTP/1.1\r\nhost: x\r\n{admin}content-length: {}\r\nconnection: close\r\n\r\n{broadcast}",
        broadcast.len()
    ));
    std::thread::sleep(Duration::from_millis(200)); // the tasks' 10 steps of 5 ms
    drop(streams);
    drop(replaced);
    let log = demo.stop();
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "a trace-level log: {log}"
    );
    assert!(
        log.contains("client issued"),
        "the log names issued clients: {log}"
    );
    for id in &ids {
        let simple = id.replace('-', "");
        assert!(!log.contains(id.as_str()), "{id} is in the {runtime} log");
        assert!(!log.contains(&simple), "{simple} is in the log");
        assert!(!log.contains(&id[..8]), "the start of {id} is in the log");
    }
}

/// Opens `id`'s stream on a new connection and reads its first bytes.
fn open_stream(demo: &Demo, id: &str) -> TcpStream {
    let mut tcp = TcpStream::connect(demo.addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(tcp, "GET /sse/events/{id} HTTP/1.1\r\nhost: x\r\n\r\n").expect("write");
    let mut buf = [0u8; 512];
    let n = tcp.read(&mut buf).expect("the stream opens");
    assert!(
        String::from_utf8_lossy(&buf[..n]).contains(" 200 "),
        "stream of {id}"
    );
    tcp
}

/// Registers a client; its id.
fn issue_id(demo: &Demo) -> String {
    let res = demo.call("POST /sse/clients HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    res.rsplit("\r\n\r\n")
        .next()
        .expect("a body")
        .trim()
        .to_owned()
}

/// At `RUST_LOG=info` the demo logs one line per request (its route and status, in a span
/// named by the route) and each stream's opening and end, with why it ended.
#[test]
fn an_info_log_has_a_line_per_request_and_why_each_stream_ended() {
    let demo = Demo::logging(&[], "info");
    let (a, b) = (issue_id(&demo), issue_id(&demo));
    let first = open_stream(&demo, &a);
    let second = open_stream(&demo, &a); // replaces the first
    let of_b = open_stream(&demo, &b);
    demo.call(&format!(
        "DELETE /sse/clients/{b} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    ));
    drop(second); // the client goes away
    std::thread::sleep(Duration::from_millis(500));
    let log = demo.stop();
    drop((first, of_b));
    let lines: Vec<&str> = log.lines().collect();
    let count = |needle: &str| lines.iter().filter(|l| l.contains(needle)).count();
    assert_eq!(
        count("answered"),
        6,
        "two issues, three streams, a delete:\n{log}"
    );
    assert_eq!(count(r#"route="issue"}"#), 2, "{log}");
    assert_eq!(count("status=201"), 2, "{log}");
    assert_eq!(count(r#"route="remove"}"#), 1, "{log}");
    assert_eq!(count("stream opened"), 3, "{log}");
    assert_eq!(count(r#"reason="replaced""#), 1, "{log}");
    assert_eq!(count(r#"reason="removed (deleted or swept)""#), 1, "{log}");
    assert_eq!(count(r#"reason="client gone""#), 1, "{log}");
    for id in [&a, &b] {
        assert!(!log.contains(&id[..8]), "an id in the log");
    }
}

/// `--peer-limits off` (what the load benchmark passes) lifts the per-address limits; with them
/// on, the burst given by `--issue-burst` is what one address may register before a `429`.
#[test]
fn peer_limits_are_the_deployers() {
    let register = "POST /sse/clients HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
    let limited = Demo::start(
        &[
            "--peer-limits",
            "on",
            "--issue-burst",
            "2",
            "--issue-rate",
            "1",
        ],
        &[],
    );
    let statuses: Vec<String> = (0..3)
        .map(|_| {
            limited
                .call(register)
                .lines()
                .next()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert!(
        statuses[..2].iter().all(|s| s.contains(" 201 ")),
        "{statuses:?}"
    );
    assert!(statuses[2].contains(" 429 "), "{statuses:?}");
    let open = Demo::start(&["--peer-limits", "off", "--issue-burst", "2"], &[]);
    for _ in 0..5 {
        let status = open.call(register);
        assert!(status.starts_with("http/1.1 201 "), "{status}");
    }
    let from_env = Demo::start(&["--issue-burst", "1"], &[("SSE_PEER_LIMITS", "off")]);
    for _ in 0..3 {
        let status = from_env.call(register);
        assert!(status.starts_with("http/1.1 201 "), "{status}");
    }
}
