//! What a peer can make the client hold, counted by the global allocator (live bytes, and the
//! peak): a slow server that never ends its line gets the connection closed once the line
//! passes `max_line_len`, the client having held about that much and not what the server
//! would go on sending; and a stream of 100,000 events leaves the client holding no more after
//! the last than after the 10,000th (nothing kept per event).
//!
//! Both on tokio and on smol, one after the other. One test in this binary, so that nothing
//! else allocates beside it while it measures.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use cap::Cap;
use futures_lite::StreamExt;
use http::Uri;
use sse_client::{Backoff, Builder, Connect, Error, EventSource, Item, Limits, Runtime};

#[global_allocator]
static ALLOC: Cap<std::alloc::System> = Cap::new(std::alloc::System, usize::MAX);

const PATIENCE: Duration = Duration::from_secs(30);
const KIB: usize = 1024;

const HEAD: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";

/// A server for one connection: reads the request head, writes `HEAD`, then calls `write`
/// until it returns `false` or a write fails (the client hung up).
fn serve_one(mut write: impl FnMut(&mut std::net::TcpStream) -> bool + Send + 'static) -> Uri {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        let Ok((mut socket, _)) = listener.accept() else {
            return;
        };
        socket.set_read_timeout(Some(PATIENCE)).expect("timeout");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && matches!(socket.read(&mut byte), Ok(1)) {
            head.push(byte[0]);
        }
        if socket.write_all(HEAD).is_ok() {
            while write(&mut socket) {}
        }
    });
    format!("http://{addr}/s").parse().expect("uri")
}

fn source<R: Runtime + Clone, C: Connect + Clone>(
    (rt, tcp): &(R, C),
    uri: Uri,
    limits: Limits,
) -> EventSource {
    Builder::new(uri, rt.clone(), tcp.clone())
        .limits(limits)
        .backoff(Backoff {
            max_attempts: Some(0),
            ..Backoff::DEFAULT
        })
        .build()
}

async fn next(rt: &impl Runtime, source: &mut EventSource) -> Result<Item, Error> {
    let timeout = rt.sleep(PATIENCE);
    futures_lite::future::or(source.next(), async {
        timeout.await;
        panic!("no item within {PATIENCE:?}")
    })
    .await
    .expect("the stream goes on")
}

#[test]
fn a_peer_cannot_make_the_client_hold_more_than_its_limits() {
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    tokio.block_on(bounded((
        sse_client::tokio::Tokio,
        sse_client::tokio::TcpConnector,
    )));
    smol::block_on(bounded((
        sse_client::smol::Smol,
        sse_client::smol::TcpConnector,
    )));
}

async fn bounded<R: Runtime + Clone, C: Connect + Clone>(client: (R, C)) {
    let rt = client.0.clone();
    {
        // 1. A slow server that never ends its line: 4 KiB every millisecond, up to 16 MiB.
        const LINE_LIMIT: usize = 256 * KIB;
        let chunk = vec![b'x'; 4 * KIB];
        let mut sent = 0usize;
        let uri = serve_one(move |socket| {
            let first = sent == 0;
            sent += chunk.len();
            let ok =
                (!first || socket.write_all(b"data: ").is_ok()) && socket.write_all(&chunk).is_ok();
            std::thread::sleep(Duration::from_millis(1));
            ok && sent < 16 * KIB * KIB
        });
        let limits = Limits {
            max_line_len: LINE_LIMIT,
            max_event_len: LINE_LIMIT,
        };
        let mut slow = source(&client, uri, limits);
        let before = ALLOC.allocated();
        assert!(matches!(next(&rt, &mut slow).await, Ok(Item::Open)));
        match next(&rt, &mut slow).await {
            Err(Error::LineTooLong { limit }) => assert_eq!(limit, LINE_LIMIT),
            other => panic!("expected LineTooLong, got {other:?}"),
        }
        let peak = ALLOC.max_allocated().saturating_sub(before);
        // The line up to its limit, hyper's read buffer and the connection: about 1 MiB at
        // most, where the server would have sent 16 MiB.
        assert!(
            peak < LINE_LIMIT + 1024 * KIB,
            "the client held {peak} bytes for a {LINE_LIMIT}-byte line limit"
        );
        drop(slow);

        // 2. 100,000 events of 100 bytes at full speed, then the server holds the connection.
        // By the 10,000th, hyper's read buffer has grown to its size (to about 600 KB live in
        // all, measured); from there on nothing may grow.
        const EVENTS: u64 = 100_000;
        const WARM: u64 = 10_000;
        let data = "d".repeat(100);
        let mut n = 0u64;
        let uri = serve_one(move |socket| {
            n += 1;
            if n > EVENTS {
                let mut sink = [0u8; 64];
                let _ = socket.read(&mut sink); // until the client hangs up
                return false;
            }
            socket
                .write_all(format!("id: {n}\ndata: {data}\n\n").as_bytes())
                .is_ok()
        });
        let mut many = source(&client, uri, sse_client::DEFAULT_LIMITS);
        assert!(matches!(next(&rt, &mut many).await, Ok(Item::Open)));
        let mut warm = 0;
        for n in 1..=EVENTS {
            match next(&rt, &mut many).await {
                Ok(Item::Event(event)) => assert_eq!(event.last_event_id(), n.to_string()),
                other => panic!("expected event {n}, got {other:?}"),
            }
            if n == WARM {
                warm = ALLOC.allocated();
            }
        }
        let after_all = ALLOC.allocated();
        assert!(
            after_all <= warm + 16 * KIB,
            "the client held {warm} bytes after {WARM} events, {after_all} after {EVENTS}"
        );
        assert_eq!(many.last_event_id(), EVENTS.to_string());
    }
}
