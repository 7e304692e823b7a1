//! The servers the suite talks to besides the demo: scripted raw HTTP/1.1 responses on a std
//! thread, and an axum `Sse` endpoint on a tokio thread that can be killed and restarted.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::PATIENCE;

/// The head of a `200 text/event-stream` response that ends when the connection closes.
pub const STREAM_HEAD: &str =
    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";

/// What the scripted server does with one connection.
pub struct Reply {
    /// Written after the request head is read.
    pub bytes: Vec<u8>,
    /// Keep the connection open until the client closes it (else close it at once).
    pub hold: bool,
}

impl Reply {
    pub fn close(bytes: impl Into<Vec<u8>>) -> Self {
        Self {
            bytes: bytes.into(),
            hold: false,
        }
    }

    pub fn hold(bytes: impl Into<Vec<u8>>) -> Self {
        Self {
            bytes: bytes.into(),
            hold: true,
        }
    }
}

/// What the scripted server saw.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    /// A request head, lower-cased.
    Request(String),
    /// The client closed a held connection.
    ClientClosed,
}

/// A server that answers one connection per reply, in order, then closes its listener (so
/// further connections are refused). Reports each request head and each close it sees.
pub struct Scripted {
    pub addr: SocketAddr,
    pub seen: mpsc::Receiver<Seen>,
    thread: Option<JoinHandle<()>>,
}

impl Scripted {
    pub fn start(replies: Vec<Reply>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, seen) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            for reply in replies {
                let Ok((mut socket, _)) = listener.accept() else {
                    return;
                };
                socket.set_read_timeout(Some(PATIENCE)).expect("timeout");
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 64 * 1024 {
                    match socket.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => break,
                    }
                }
                let head = String::from_utf8_lossy(&head).to_lowercase();
                let _ = tx.send(Seen::Request(head));
                // The client may close first (a limit broken mid-write): not an error here.
                let _ = socket.write_all(&reply.bytes);
                if reply.hold {
                    let mut sink = [0u8; 4096];
                    while matches!(socket.read(&mut sink), Ok(n) if n > 0) {}
                    let _ = tx.send(Seen::ClientClosed);
                }
            }
        });
        Self {
            addr,
            seen,
            thread: Some(thread),
        }
    }

    /// The next thing the server saw.
    pub fn next_seen(&self) -> Seen {
        self.seen
            .recv_timeout(PATIENCE)
            .expect("the server saw nothing")
    }

    /// The value of header `name` (lower case) in the next request head.
    pub fn next_header(&self, name: &str) -> Option<String> {
        let Seen::Request(head) = self.next_seen() else {
            panic!("expected a request");
        };
        head.lines().find_map(|line| {
            line.strip_prefix(&format!("{name}:"))
                .map(|v| v.trim().to_owned())
        })
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            if !std::thread::panicking() {
                thread.join().expect("scripted server");
            }
        }
    }
}

/// An axum application whose `/stream` sends three events numbered on from the request's
/// `Last-Event-ID` (0 without one), then stays open without sending more.
fn axum_app() -> axum::Router {
    use axum::response::sse::{Event, Sse};
    use futures::stream::{self, StreamExt};

    async fn stream(
        headers: axum::http::HeaderMap,
    ) -> Sse<impl futures::Stream<Item = Result<Event, std::convert::Infallible>>> {
        let after: u64 = headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let events = stream::iter(after + 1..=after + 3)
            .map(|n| {
                Ok(Event::default()
                    .id(n.to_string())
                    .data(format!("event {n}")))
            })
            .chain(stream::pending());
        Sse::new(events)
    }
    axum::Router::new().route("/stream", axum::routing::get(stream))
}

/// The axum server on its own thread and tokio runtime. Dropping it kills it: the runtime goes,
/// and with it the listener and every open connection.
pub struct Axum {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Axum {
    /// Serves on `port` of 127.0.0.1 (0: any).
    pub fn start(port: u16) -> Self {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("server runtime");
            rt.block_on(async move {
                // tokio binds with SO_REUSEADDR, so a restart can take the same port at once.
                let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                    .await
                    .expect("bind");
                ready_tx
                    .send(listener.local_addr().expect("addr"))
                    .expect("ready");
                tokio::select! {
                    served = axum::serve(listener, axum_app()) => served.expect("serve"),
                    _ = stopped => {}
                }
            });
            rt.shutdown_timeout(Duration::from_secs(1));
        });
        let addr = ready_rx.recv_timeout(PATIENCE).expect("axum started");
        Self {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Axum {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            thread.join().expect("axum server");
        }
    }
}
