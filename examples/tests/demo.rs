//! The demo binary as a deployer starts it: its options and their environment variables.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The demo, started with `args` (and `env`) on an ephemeral port; killed on drop.
struct Demo {
    child: Child,
    addr: SocketAddr,
}

impl Demo {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_demo"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the demo starts");
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
        Self { child, addr }
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
