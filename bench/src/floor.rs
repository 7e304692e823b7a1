//! The floor of the load benchmark: the least work any server of the benchmark's protocol can
//! do per event, to tell what the machine allows from what a server costs.
//!
//! It answers the same three routes as the other servers, on tokio, with nothing between the
//! socket and the bytes: request heads parsed by `httparse`, the response written by hand.
//! Once a stream is open the connection has no task, no timer and no buffer left: its socket
//! goes into one list. A broadcast formats its frame once and `send`s it to every socket in
//! that list, the list split into one slice per runtime thread, each slice one loop of
//! non-blocking writes. It has no replay, no keep-alive comments, no limits, no per-client
//! anything, and it does not notice a client that leaves until a write to it fails; it is not a
//! server anyone should deploy, only the cost of the syscalls every server must make.
//!
//! A write that would block, or writes part of a frame, loses the event for that client (the
//! generator reports it) and drops the connection: at the benchmark's rate, with the kernel's
//! default socket buffers, it does not happen.

use std::io::{self, Write};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The longest request head, or broadcast body, read.
const MAX_REQUEST: usize = 64 * 1024;

/// The floor server's state: every open stream's socket, and the admin token.
struct Floor {
    streams: Mutex<Vec<std::net::TcpStream>>,
    token: String,
    slices: usize,
}

/// Serves the floor on `listener`, for good: broadcasts are written by `slices` tasks at once
/// (one per runtime thread). A failed accept (out of descriptors, in a reconnect storm) is
/// retried after 50 ms, as `sse_http::serve` does.
pub async fn serve(listener: TcpListener, token: String, slices: usize) -> io::Result<()> {
    let floor = Arc::new(Floor {
        streams: Mutex::new(Vec::new()),
        token,
        slices: slices.max(1),
    });
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(err) => {
                tracing::warn!(%err, "floor: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        // A peer gone already: its connection fails at its first read, not the server here.
        let _ = stream.set_nodelay(true);
        let floor = floor.clone();
        tokio::spawn(async move {
            if let Err(err) = connection(stream, &floor).await {
                tracing::debug!(%err, "floor: connection ended");
            }
        });
    }
}

/// One request, as far as the floor needs it.
struct Request {
    post: bool,
    path: String,
    authorized: bool,
    body: Bytes,
}

/// Answers the requests of one connection until its stream opens (the socket then joins the
/// list) or it closes.
async fn connection(mut stream: TcpStream, floor: &Floor) -> io::Result<()> {
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        let Some(req) = read_request(&mut stream, &mut buf, &floor.token).await? else {
            return Ok(());
        };
        if !req.post && req.path.starts_with("/sse/events/") {
            let id = &req.path["/sse/events/".len()..];
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\
                 connection: close\r\n\r\nevent: registered\ndata: {id}\n\n"
            );
            stream.write_all(head.as_bytes()).await?;
            let socket = stream.into_std()?;
            lock(&floor.streams).push(socket);
            return Ok(());
        }
        let (status, body) = match (req.post, req.path.as_str()) {
            (true, "/sse/clients") => ("201 Created", uuid::Uuid::new_v4().to_string()),
            (true, "/sse/broadcast") if !req.authorized => ("401 Unauthorized", String::new()),
            (true, "/sse/broadcast") => {
                let mut frame = BytesMut::with_capacity(req.body.len() + 8);
                frame.extend_from_slice(b"data: ");
                frame.extend_from_slice(&req.body);
                frame.extend_from_slice(b"\n\n");
                let delivered = broadcast(floor, frame.freeze()).await;
                ("202 Accepted", format!("{{\"delivered\":{delivered}}}"))
            }
            _ => ("404 Not Found", String::new()),
        };
        let res = format!(
            "HTTP/1.1 {status}\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(res.as_bytes()).await?;
    }
}

/// Reads the next request (head and `content-length` body); `None` once the client closed.
async fn read_request(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    token: &str,
) -> io::Result<Option<Request>> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut parsed = httparse::Request::new(&mut headers);
        if let httparse::Status::Complete(used) = parsed.parse(buf).map_err(io::Error::other)? {
            let mut length = 0;
            let mut authorized = false;
            for h in parsed.headers.iter() {
                if h.name.eq_ignore_ascii_case("content-length") {
                    length = std::str::from_utf8(h.value)
                        .ok()
                        .and_then(|v| v.trim().parse().ok())
                        .ok_or_else(|| io::Error::other("bad content-length"))?;
                } else if h.name.eq_ignore_ascii_case("authorization") {
                    authorized = h.value.strip_prefix(b"Bearer ") == Some(token.as_bytes());
                }
            }
            if length > MAX_REQUEST {
                return Err(io::Error::other("body too large"));
            }
            let post = parsed.method == Some("POST");
            let path = parsed.path.unwrap_or("").to_owned();
            let _ = buf.split_to(used);
            while buf.len() < length {
                if stream.read_buf(buf).await? == 0 {
                    return Ok(None);
                }
            }
            let body = buf.split_to(length).freeze();
            return Ok(Some(Request {
                post,
                path,
                authorized,
                body,
            }));
        }
        if buf.len() > MAX_REQUEST {
            return Err(io::Error::other("request head too large"));
        }
        if stream.read_buf(buf).await? == 0 {
            return Ok(None);
        }
    }
}

/// Writes `frame` to every open stream, one slice of the list per task; returns how many took
/// all of it. A socket that did not is closed.
async fn broadcast(floor: &Floor, frame: Bytes) -> usize {
    let all = std::mem::take(&mut *lock(&floor.streams));
    let per = all.len().div_ceil(floor.slices).max(1);
    let mut all = all.into_iter();
    let mut tasks = Vec::new();
    loop {
        let slice: Vec<_> = all.by_ref().take(per).collect();
        if slice.is_empty() {
            break;
        }
        let frame = frame.clone();
        tasks.push(tokio::spawn(async move {
            slice
                .into_iter()
                .filter(|mut socket| matches!(socket.write(&frame), Ok(n) if n == frame.len()))
                .collect::<Vec<_>>()
        }));
    }
    let mut delivered = 0;
    for task in tasks {
        if let Ok(kept) = task.await {
            delivered += kept.len();
            lock(&floor.streams).extend(kept);
        }
    }
    delivered
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
