//! The lean HTTP/1.1 request reader (`sse-http`'s `lean.rs`) under arbitrary bytes in arbitrary
//! chunks: it never panics, it hands hyper every byte it read, and every request it answers
//! itself is one hyper reads the same way (method, target, headers, no body).
//!
//! The input's first byte picks the chunking (a pseudo-random sequence of read sizes, from 1
//! byte to beyond the reader's 1 KiB reads) and whether the reader runs under a prefix, as under
//! `serve_app`; the rest is what the peer sends.
#![no_main]

use std::convert::Infallible;
use std::sync::LazyLock;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, Uri, Version};
use http_body_util::Empty;
use hyper::body::{Body as _, Incoming};
use libfuzzer_sys::fuzz_target;
use sse_http::fuzzing::{Outcome, read_request};
use tokio::io::AsyncWriteExt;

fuzz_target!(|input: &[u8]| {
    let Some((&control, data)) = input.split_first() else {
        return;
    };
    let prefix = (control & 1 == 1).then_some("/sse");
    let chunks = chunks(data, control);
    match read_request(&chunks, prefix) {
        Outcome::Closed => assert!(data.is_empty(), "closed on {} bytes", data.len()),
        Outcome::Hyper(head) => {
            assert!(!head.is_empty(), "handed hyper nothing");
            assert!(data.starts_with(&head), "handed hyper other bytes than it read");
        }
        Outcome::Lean(lean) => {
            let used = lean.read - lean.rest.len();
            assert_eq!(lean.rest, data[used..lean.read], "kept other bytes than it read");
            if let Some(prefix) = prefix {
                let target = lean.uri.to_string();
                assert!(target.starts_with(prefix), "{target} is not under {prefix}");
            }
            let Some(hyper) = hyper_reads(&data[..used]) else {
                panic!("hyper refuses a request the lean path answers: {lean:?}");
            };
            assert_eq!(hyper.version, Version::HTTP_11);
            assert_eq!(hyper.method, lean.method);
            assert_eq!(hyper.uri, lean.uri);
            assert_eq!(hyper.headers, lean.headers);
            assert!(hyper.bodiless, "hyper reads a body after {lean:?}");
        }
    }
});

/// `data` cut into reads whose sizes follow a sequence seeded by `seed`.
fn chunks(data: &[u8], seed: u8) -> Vec<&[u8]> {
    let mut state = u32::from(seed) | 1;
    let mut rest = data;
    let mut chunks = Vec::new();
    while !rest.is_empty() {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let size = match (state >> 16) % 4 {
            0 => 1 + (state >> 20) as usize % 4,
            1 => 1 + (state >> 20) as usize % 64,
            2 => 1 + (state >> 20) as usize % 1024,
            _ => 1 + (state >> 20) as usize % 4096,
        };
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        chunks.push(chunk);
        rest = tail;
    }
    chunks
}

/// A request head as hyper's HTTP/1.1 server reads it.
struct Hyper {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    bodiless: bool,
}

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
});

/// What hyper's server makes of `head`, if it takes it as a request (`None`: it answered with
/// an error or closed).
fn hyper_reads(head: &[u8]) -> Option<Hyper> {
    RUNTIME.block_on(async {
        let (mut peer, server) = tokio::io::duplex(64 * 1024);
        let (seen, mut first) = tokio::sync::mpsc::unbounded_channel();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let (parts, body) = req.into_parts();
            let _ = seen.send(Hyper {
                method: parts.method,
                uri: parts.uri,
                version: parts.version,
                headers: parts.headers,
                bodiless: body.is_end_stream(),
            });
            async { Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new())) }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .serve_connection(hyper_util::rt::TokioIo::new(server), service);
        peer.write_all(head).await.expect("the pipe takes the head");
        // The peer's side stays open: hyper either takes the request or refuses it.
        tokio::select! {
            req = first.recv() => req,
            _ = conn => first.try_recv().ok(),
            () = tokio::time::sleep(Duration::from_secs(5)) => {
                panic!("hyper neither took nor refused a head the lean path took as complete")
            }
        }
    })
}
