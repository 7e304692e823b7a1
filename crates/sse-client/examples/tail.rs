//! Run with: `cargo run -p sse-client --example tail -- URL`
//!
//! Follows an event stream and prints each event as a JSON line on stdout (`type`, `id`,
//! `data`; a `reset` as `{"reset": true, "id": ...}`), reconnecting with `Last-Event-ID` when
//! the connection drops or the server restarts; what the client does besides is on stderr.
//!
//! `URL` is any server's event stream (`http://127.0.0.1:3000/stream`). With `--register`, it
//! is the protocol prefix of an sse server instead (`http://127.0.0.1:8080/sse/`, as the demo
//! serves it): the example registers a client, listens to each `--listen KEY`, follows the
//! client's stream, and registers again when the server no longer knows the client (it
//! restarted). The client id is a secret: the `registered` event's data is not printed.

use std::process::ExitCode;
use std::time::Duration;

use futures_lite::StreamExt;
use sse_client::{Event, EventSource, Item, SessionItem};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (mut url, mut register, mut keys) = (None, false, Vec::new());
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--register" => register = true,
            "--listen" => keys.extend(args.next()),
            _ if url.is_none() => url = Some(arg),
            _ => return usage(),
        }
    }
    let Some(Ok(url)) = url.map(|u| u.parse::<http::Uri>()) else {
        return usage();
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        if register {
            follow_protocol(url, &keys).await
        } else {
            follow(sse_client::tokio::event_source(url)).await
        }
    })
}

fn usage() -> ExitCode {
    eprintln!("usage: tail URL | tail --register PREFIX_URL [--listen KEY]...");
    ExitCode::from(2)
}

/// Prints a plain event stream until it stops.
async fn follow(mut source: EventSource) -> ExitCode {
    while let Some(item) = source.next().await {
        match item {
            Ok(item) => show(&item),
            Err(err) => {
                eprintln!("stopped: {err}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

/// Registers, listens, follows; registers again whenever the server forgot the client: a
/// [`Session`](sse_client::Session) does all of it.
async fn follow_protocol(prefix: http::Uri, keys: &[String]) -> ExitCode {
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let session = match sse_client::tokio::client(prefix).session(None, &keys) {
        Ok(session) => session,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::from(2);
        }
    };
    // The demo sends a keep-alive comment every 15 s: three missed, and the server is gone.
    let mut session = session.idle_timeout(Some(Duration::from_secs(45)));
    while let Some(item) = session.next().await {
        match item {
            Ok(SessionItem::Registered(_)) => eprintln!("registered (a new client id)"),
            Ok(SessionItem::Item(item)) => show(&item),
            Ok(SessionItem::RegisterFailed { after, error, .. }) => {
                eprintln!("register failed ({error}); trying again in {after:?}");
            }
            Ok(_) => {}
            Err(err) => {
                eprintln!("stopped: {err}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

fn show(item: &Item) {
    match item {
        Item::Open => eprintln!("connected"),
        Item::Event(event) => println!("{}", json(event)),
        Item::Reset(event) => {
            println!(
                "{}",
                serde_json::json!({ "reset": true, "id": event.last_event_id() })
            );
        }
        Item::Reconnecting {
            attempt,
            after,
            cause,
        } => eprintln!("{cause}; reconnecting in {after:?} (attempt {attempt})"),
        _ => {}
    }
}

fn json(event: &Event) -> serde_json::Value {
    // The protocol's greeting carries the client id, a secret.
    let data = match event.event_type() {
        "registered" => "<client id>",
        _ => event.data(),
    };
    serde_json::json!({ "type": event.event_type(), "id": event.last_event_id(), "data": data })
}
