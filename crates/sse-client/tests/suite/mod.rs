//! The client's suite over loopback TCP, written once and compiled per runtime: each target
//! (`tokio.rs`, `smol.rs`) provides `run`, `start_demo`, and the runtime's `Rt` and `Tcp`.
//!
//! No test is timed: each asserts on the items and their order. `PATIENCE` only turns a hang
//! into a failure.

#![allow(unreachable_pub, dead_code)]

pub mod servers;

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use http::{StatusCode, Uri};
use sse_client::{
    Backoff, Builder, Client, Connect, Disconnect, Error, Event, EventSource, Item, Limits,
    ProtocolError, Runtime, Session, SessionError, SessionItem,
};
use sse_codec::EventName;
use sse_http::{Config, Sse, Task};
use sse_registry::Target;

use self::servers::{Axum, Reply, STREAM_HEAD, Scripted, Seen};
use super::{Rt, Tcp, run, start_demo};

/// How long any one step may take before the test fails as hung.
pub const PATIENCE: Duration = Duration::from_secs(30);

const MS: Duration = Duration::from_millis(1);

/// The demo server under test.
pub struct Demo {
    pub addr: SocketAddr,
    pub sse: Sse,
    stop: Option<Box<dyn FnOnce() + Send>>,
    thread: Option<JoinHandle<()>>,
}

impl Demo {
    pub fn new(
        addr: SocketAddr,
        sse: Sse,
        stop: Box<dyn FnOnce() + Send>,
        thread: JoinHandle<()>,
    ) -> Self {
        Self {
            addr,
            sse,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn uri(&self, path: &str) -> Uri {
        format!("http://{}{path}", self.addr).parse().unwrap()
    }

    fn client(&self) -> Client {
        Client::new(self.uri("/sse/"), Rt, Tcp)
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop();
        }
        if let Some(thread) = self.thread.take() {
            if !std::thread::panicking() {
                thread.join().expect("demo server");
            }
        }
    }
}

/// The demo's configuration: a short `retry:` so that reconnections in the tests are quick.
pub fn config() -> Config {
    let mut config = Config::default();
    config.retry = 10 * MS;
    config
}

/// The application task: two progress reports, then completion.
pub async fn task_handler(task: Task) {
    for step in 1..=2 {
        task.progress(&format!("{}:{step}/2", task.id())).await;
    }
}

/// Exact delays (no jitter), so that `after` can be asserted.
fn exact(max_attempts: Option<u32>) -> Backoff {
    Backoff {
        initial: 10 * MS,
        max: Duration::from_secs(1),
        jitter: 0.0,
        max_attempts,
    }
}

/// The next item, or a failure after `PATIENCE`.
async fn next(source: &mut EventSource) -> Option<Result<Item, Error>> {
    let timeout = Rt.sleep(PATIENCE);
    futures_lite::future::or(source.next(), async {
        timeout.await;
        panic!("no item within {PATIENCE:?}")
    })
    .await
}

async fn item(source: &mut EventSource) -> Item {
    match next(source).await {
        Some(Ok(item)) => item,
        other => panic!("expected an item, got {other:?}"),
    }
}

async fn event(source: &mut EventSource) -> Event {
    match item(source).await {
        Item::Event(event) => event,
        other => panic!("expected an event, got {other:?}"),
    }
}

async fn open(source: &mut EventSource) {
    match item(source).await {
        Item::Open => {}
        other => panic!("expected Open, got {other:?}"),
    }
}

/// The stream's last item: `err`, then the end.
async fn stops(source: &mut EventSource) -> Error {
    let err = match next(source).await {
        Some(Err(err)) => err,
        other => panic!("expected an error, got {other:?}"),
    };
    assert!(next(source).await.is_none(), "items after {err:?}");
    err
}

/// A connector whose stream connections (`…/events/…`) each wait for a permit of its gate, so
/// that a test decides when the client reconnects; other requests connect at once.
struct Gated(Arc<tokio::sync::Semaphore>);

impl Connect for Gated {
    fn connect(&self, uri: &Uri) -> sse_client::BoxFuture<std::io::Result<sse_client::BoxIo>> {
        let gate = uri.path().contains("/events/").then(|| self.0.clone());
        let connecting = Tcp.connect(uri);
        Box::pin(async move {
            if let Some(gate) = gate {
                gate.acquire().await.expect("gate").forget();
            }
            connecting.await
        })
    }
}

fn registry_id(id: &sse_client::ClientId) -> sse_registry::ClientId {
    id.expose_secret().parse().expect("a registry id")
}

#[test]
fn a_cut_stream_resumes_from_last_event_id_with_every_event_once() {
    let demo = start_demo(config());
    let hub = demo.sse.hub().clone();
    run(async {
        // Stream connections wait for a permit: the test decides when the client reconnects.
        let gate = Arc::new(tokio::sync::Semaphore::new(1));
        let client = Client::new(demo.uri("/sse/"), Rt, Gated(gate.clone()));
        let id = client.register(None).await.expect("register");
        let mut source = client.events(&id).backoff(exact(None)).build();

        open(&mut source).await;
        let registered = event(&mut source).await;
        assert_eq!(registered.event_type(), "registered");
        assert_eq!(registered.data(), id.expose_secret());
        // The greeting's `retry:` is the reconnection time now.
        assert_eq!(source.reconnection_time(), 10 * MS);

        // Events for everyone come from the shared history: after a reconnection only a
        // correct Last-Event-ID brings back those published while the client was away.
        for data in ["one", "two", "three"] {
            drop(hub.publish(Target::All, None, data));
        }
        for data in ["one", "two", "three"] {
            assert_eq!(event(&mut source).await.data(), data);
        }
        let after_three = source.last_event_id().to_owned();
        assert!(!after_three.is_empty());

        // The cut: another attach of the client replaces (ends) the client's stream.
        let replacement = hub
            .attach(registry_id(&id), Some(&after_three), Instant::now())
            .expect("attach");
        match item(&mut source).await {
            Item::Reconnecting {
                attempt: 1,
                after,
                cause: Disconnect::Ended,
            } => assert_eq!(after, 10 * MS),
            other => panic!("expected Reconnecting, got {other:?}"),
        }
        for data in ["four", "five"] {
            drop(hub.publish(Target::All, None, data));
        }
        gate.add_permits(1);

        open(&mut source).await;
        let greeting = event(&mut source).await;
        assert_eq!(greeting.event_type(), "registered");
        assert_eq!(
            greeting.last_event_id(),
            after_three,
            "resumes after 'three'"
        );
        drop(replacement);
        assert_eq!(event(&mut source).await.data(), "four");
        assert_eq!(event(&mut source).await.data(), "five");
        drop(hub.publish(Target::All, None, "six"));
        let six = event(&mut source).await;
        assert_eq!(six.data(), "six");
        assert_eq!(source.last_event_id(), six.last_event_id());
    });
}

/// The reset path against the demo: away for longer than its history holds, the client
/// reconnects with its Last-Event-ID, gets the hub's `reset` as its own item (it must
/// resynchronise), and then the events published after it.
#[test]
fn away_beyond_the_history_the_demo_resets_the_client() {
    let mut config = config();
    config.registry.history_len = 2;
    let demo = start_demo(config);
    let hub = demo.sse.hub().clone();
    run(async {
        let gate = Arc::new(tokio::sync::Semaphore::new(1));
        let client = Client::new(demo.uri("/sse/"), Rt, Gated(gate.clone()));
        let id = client.register(None).await.expect("register");
        let mut source = client.events(&id).backoff(exact(None)).build();
        open(&mut source).await;
        assert_eq!(event(&mut source).await.event_type(), "registered");
        drop(hub.publish(Target::All, None, "one"));
        assert_eq!(event(&mut source).await.data(), "one");
        let after_one = source.last_event_id().to_owned();

        // Cut, then five events while away: more than the two the history keeps.
        let replacement = hub
            .attach(registry_id(&id), Some(&after_one), Instant::now())
            .expect("attach");
        assert!(matches!(item(&mut source).await, Item::Reconnecting { .. }));
        drop(replacement);
        for n in 2..=6 {
            drop(hub.publish(Target::All, None, &format!("e{n}")));
        }
        gate.add_permits(1);
        open(&mut source).await;
        let greeting = event(&mut source).await;
        assert_eq!(greeting.event_type(), "registered");
        match item(&mut source).await {
            Item::Reset(reset) => {
                assert_eq!(reset.event_type(), "reset");
                assert_eq!(
                    reset.data(),
                    reset.last_event_id(),
                    "the present's sequence number"
                );
                assert_ne!(reset.last_event_id(), after_one);
            }
            other => panic!("expected Reset, got {other:?}"),
        }
        // After the reset, the present goes on.
        drop(hub.publish(Target::All, None, "seven"));
        assert_eq!(event(&mut source).await.data(), "seven");
    });
}

#[test]
fn the_protocol_client_registers_listens_runs_tasks_and_leaves() {
    let demo = start_demo(config());
    let hub = demo.sse.hub().clone();
    run(async {
        let client = demo.client();
        let id = client.register(Some("alice")).await.expect("register");
        client.listen(&id, "news").await.expect("listen");
        let mut source = client.events(&id).backoff(exact(Some(1))).build();
        open(&mut source).await;
        assert_eq!(event(&mut source).await.event_type(), "registered");

        let news = EventName::new("news").unwrap();
        drop(hub.publish(Target::Key(&news), Some(&news), "n1"));
        let n1 = event(&mut source).await;
        assert_eq!((n1.event_type(), n1.data()), ("news", "n1"));

        client.unlisten(&id, "news").await.expect("unlisten");
        drop(hub.publish(Target::Key(&news), Some(&news), "n2"));
        drop(hub.publish(Target::All, None, "marker"));
        let marker = event(&mut source).await;
        assert_eq!(
            (marker.event_type(), marker.data()),
            ("message", "marker"),
            "no key event after unlisten"
        );

        client.submit(&id, "t1").await.expect("submit");
        let mut seen = Vec::new();
        for _ in 0..3 {
            let e = event(&mut source).await;
            seen.push(e.event_type().to_owned());
            if e.event_type() == "progress" {
                assert!(e.data().contains("t1:"), "{:?}", e.data());
            }
            assert!(
                !e.data().contains(id.expose_secret()),
                "an id in a task event"
            );
        }
        assert_eq!(seen, ["progress", "progress", "completed"]);

        // Refusals are typed; nothing malformed is sent.
        assert!(matches!(
            client.listen(&id, "no/slash").await,
            Err(ProtocolError::InvalidToken("key"))
        ));
        let stranger = sse_client::ClientId::parse("0f0e0d0c-0b0a-4908-8706-050403020100").unwrap();
        match client.listen(&stranger, "news").await {
            Err(ProtocolError::Status { status, .. }) => assert_eq!(status, StatusCode::NOT_FOUND),
            other => panic!("expected 404, got {other:?}"),
        }

        // Leaving ends the stream; the reconnection finds the client gone: a 404 stops it.
        client.remove(&id).await.expect("remove");
        assert!(matches!(
            item(&mut source).await,
            Item::Reconnecting {
                attempt: 1,
                cause: Disconnect::Ended,
                ..
            }
        ));
        assert!(matches!(
            stops(&mut source).await,
            Error::Status(StatusCode::NOT_FOUND)
        ));
        assert!(hub.stats().clients == 0, "the client is forgotten");
    });
}

/// The next item of a session, or a failure after `PATIENCE`.
async fn session_item(session: &mut Session) -> Result<SessionItem, SessionError> {
    let timeout = Rt.sleep(PATIENCE);
    futures_lite::future::or(session.next(), async {
        timeout.await;
        panic!("no session item within {PATIENCE:?}")
    })
    .await
    .expect("the session goes on")
}

/// The next event of a session's stream, skipping `Open` and `Reconnecting`.
async fn session_event(session: &mut Session) -> Event {
    loop {
        match session_item(session).await {
            Ok(SessionItem::Item(Item::Event(event))) => return event,
            Ok(SessionItem::Item(Item::Open | Item::Reconnecting { .. })) => {}
            other => panic!("expected an event, got {other:?}"),
        }
    }
}

/// A session registers, listens and follows; when the server forgets the client (removed
/// here, as a restart without shared state would), the stream's `404` makes it register and
/// listen again, with a new id, and a key event reaches the new id.
#[test]
fn a_session_registers_and_listens_again_when_the_server_forgets_the_client() {
    let demo = start_demo(config());
    let hub = demo.sse.hub().clone();
    run(async {
        let client = demo.client();
        let mut session = client
            .session(Some("alice"), &["news", "weather"])
            .expect("valid name and keys")
            .backoff(exact(Some(3)));
        let Ok(SessionItem::Registered(first)) = session_item(&mut session).await else {
            panic!("expected Registered first");
        };
        assert_eq!(session_event(&mut session).await.event_type(), "registered");
        let news = EventName::new("news").unwrap();
        drop(hub.publish(Target::Key(&news), Some(&news), "n1"));
        assert_eq!(session_event(&mut session).await.data(), "n1");

        client.remove(&first).await.expect("remove");
        let second = loop {
            match session_item(&mut session).await {
                Ok(SessionItem::Registered(id)) => break id,
                Ok(SessionItem::Item(Item::Reconnecting { .. })) => {}
                other => panic!("expected Reconnecting, then Registered, got {other:?}"),
            }
        };
        assert_ne!(first, second);
        assert_eq!(session_event(&mut session).await.event_type(), "registered");
        let weather = EventName::new("weather").unwrap();
        drop(hub.publish(Target::Key(&weather), Some(&weather), "w1"));
        let w1 = session_event(&mut session).await;
        assert_eq!((w1.event_type(), w1.data()), ("weather", "w1"));
        assert_eq!(hub.stats().clients, 1, "only the new client is known");
    });
}

/// A registration answered `503` is retried after the backoff; one answered `400` stops the
/// session with the error; an invalid key is refused before anything is sent.
#[test]
fn a_session_retries_a_failed_registration_and_stops_on_a_refusal() {
    let reply = |status: &str| {
        Reply::close(format!(
            "HTTP/1.1 {status}\r\ncontent-length: 4\r\nconnection: close\r\n\r\nnope"
        ))
    };
    let server = Scripted::start(vec![
        reply("503 Service Unavailable"),
        reply("400 Bad Request"),
    ]);
    let prefix: Uri = format!("http://{}/sse/", server.addr).parse().unwrap();
    run(async {
        let client = Client::new(prefix, Rt, Tcp);
        assert!(matches!(
            client.session(None, &["no/slash"]),
            Err(ProtocolError::InvalidToken("key"))
        ));
        let mut session = client.session(None, &[]).unwrap().backoff(exact(Some(5)));
        match session_item(&mut session).await {
            Ok(SessionItem::RegisterFailed {
                attempt: 1,
                after,
                error: ProtocolError::Status { status, .. },
            }) => {
                assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
                assert_eq!(after, 10 * MS);
            }
            other => panic!("expected RegisterFailed, got {other:?}"),
        }
        match session_item(&mut session).await {
            Err(SessionError::Register {
                attempts: 2,
                cause: ProtocolError::Status { status, reason },
            }) => {
                assert_eq!(status, StatusCode::BAD_REQUEST);
                assert_eq!(reason, "nope");
            }
            other => panic!("expected the refusal, got {other:?}"),
        }
        assert!(session.next().await.is_none());
    });
    for _ in 0..2 {
        let Seen::Request(head) = server.next_seen() else {
            panic!("expected a request")
        };
        assert!(head.starts_with("post /sse/clients http/1.1\r\n"), "{head}");
    }
}

/// A server that registers clients but answers each new client's stream `404` (it forgets at
/// once) does not make the session loop: each refused stream is a failed attempt, after the
/// backoff, until `max_attempts`.
#[test]
fn a_session_whose_new_streams_are_refused_backs_off_and_gives_up() {
    let created = || {
        Reply::close(
            "HTTP/1.1 201 Created\r\ncontent-length: 36\r\nconnection: close\r\n\r\n\
             0f0e0d0c-0b0a-4908-8706-050403020100",
        )
    };
    let gone =
        || Reply::close("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    let server = Scripted::start(vec![created(), gone(), created(), gone()]);
    let prefix: Uri = format!("http://{}/sse/", server.addr).parse().unwrap();
    run(async {
        let client = Client::new(prefix, Rt, Tcp);
        let mut session = client.session(None, &[]).unwrap().backoff(exact(Some(1)));
        assert!(matches!(
            session_item(&mut session).await,
            Ok(SessionItem::Registered(_))
        ));
        match session_item(&mut session).await {
            Ok(SessionItem::RegisterFailed {
                attempt: 1,
                after,
                error: ProtocolError::Status { status, .. },
            }) => {
                assert_eq!(status, StatusCode::NOT_FOUND);
                assert_eq!(after, 10 * MS);
            }
            other => panic!("expected RegisterFailed after the refused stream, got {other:?}"),
        }
        assert!(matches!(
            session_item(&mut session).await,
            Ok(SessionItem::Registered(_))
        ));
        match session_item(&mut session).await {
            Err(SessionError::Register {
                attempts: 2,
                cause: ProtocolError::Status { status, .. },
            }) => {
                assert_eq!(status, StatusCode::NOT_FOUND);
            }
            other => panic!("expected the session to give up, got {other:?}"),
        }
        assert!(session.next().await.is_none());
    });
    let lines: Vec<String> = (0..4)
        .map(|_| match server.next_seen() {
            Seen::Request(head) => head.lines().next().unwrap_or("").to_owned(),
            Seen::ClientClosed => panic!("expected a request"),
        })
        .collect();
    let stream = "get /sse/events/0f0e0d0c-0b0a-4908-8706-050403020100 http/1.1";
    assert_eq!(
        lines,
        [
            "post /sse/clients http/1.1",
            stream,
            "post /sse/clients http/1.1",
            stream
        ]
    );
}

#[test]
fn no_content_another_status_and_another_content_type_stop() {
    let demo = start_demo(config());
    run(async {
        // The demo answers its favicon with 204, its page with HTML.
        let mut source = Builder::new(demo.uri("/favicon.ico"), Rt, Tcp).build();
        assert!(matches!(stops(&mut source).await, Error::NoContent));

        let mut source = Builder::new(demo.uri("/"), Rt, Tcp).build();
        match stops(&mut source).await {
            Error::ContentType(Some(ct)) => assert_eq!(ct, "text/html; charset=utf-8"),
            other => panic!("expected ContentType, got {other:?}"),
        }

        let unknown = demo.uri("/sse/events/0f0e0d0c-0b0a-4908-8706-050403020100");
        let mut source = Builder::new(unknown, Rt, Tcp).build();
        assert!(matches!(
            stops(&mut source).await,
            Error::Status(StatusCode::NOT_FOUND)
        ));
    });
}

/// A redirect head: `status` to `location`, no body, the connection closed.
fn redirect(status: u16, location: &str) -> Reply {
    Reply::close(format!(
        "HTTP/1.1 {status} Moved\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    ))
}

/// Redirects are followed as fetch follows them: a relative `Location` against the URL that
/// answered, the headers and `Last-Event-ID` kept, the credentials dropped on the way to
/// another origin (another port), and each reconnection starting again from the URL given.
#[test]
fn redirects_keep_last_event_id_and_drop_credentials_across_origins() {
    let other = Scripted::start(vec![
        Reply::close(format!("{STREAM_HEAD}id: 5\ndata: a\n\n")),
        Reply::close(format!("{STREAM_HEAD}data: b\n\n")),
    ]);
    let final_url = format!("http://{}/final", other.addr);
    let first = Scripted::start(vec![
        redirect(307, "next?x=1"),
        redirect(301, &final_url),
        redirect(302, &final_url),
    ]);
    let uri: Uri = format!("http://{}/s/start", first.addr).parse().unwrap();
    run(async {
        let mut source = Builder::new(uri, Rt, Tcp)
            .header(
                http::header::AUTHORIZATION,
                http::HeaderValue::from_static("Bearer t"),
            )
            .header(
                http::header::HeaderName::from_static("x-trace"),
                http::HeaderValue::from_static("7"),
            )
            .last_event_id("4")
            .backoff(exact(Some(1)))
            .build();
        open(&mut source).await;
        assert_eq!(event(&mut source).await.data(), "a");
        assert!(matches!(item(&mut source).await, Item::Reconnecting { .. }));
        open(&mut source).await;
        assert_eq!(event(&mut source).await.data(), "b");
        assert!(matches!(item(&mut source).await, Item::Reconnecting { .. }));
        // The first server's script is used up: its listener is closed.
        assert!(matches!(stops(&mut source).await, Error::GaveUp { .. }));
    });
    let head = |server: &Scripted| match server.next_seen() {
        Seen::Request(head) => head,
        Seen::ClientClosed => panic!("expected a request"),
    };
    let (start, next, again) = (head(&first), head(&first), head(&first));
    assert!(start.starts_with("get /s/start http/1.1\r\n"), "{start}");
    assert!(next.starts_with("get /s/next?x=1 http/1.1\r\n"), "{next}");
    assert!(again.starts_with("get /s/start http/1.1\r\n"), "{again}");
    for head in [&start, &next] {
        assert!(head.contains("last-event-id: 4\r\n"), "{head}");
        assert!(head.contains("authorization: bearer t\r\n"), "{head}");
    }
    assert!(again.contains("last-event-id: 5\r\n"), "{again}");
    let (to_a, to_b) = (head(&other), head(&other));
    assert!(to_a.starts_with("get /final http/1.1\r\n"), "{to_a}");
    assert!(to_a.contains("last-event-id: 4\r\n"), "{to_a}");
    assert!(to_b.contains("last-event-id: 5\r\n"), "{to_b}");
    for head in [&to_a, &to_b] {
        assert!(
            head.contains(&format!("host: {}\r\n", other.addr)),
            "{head}"
        );
        assert!(head.contains("x-trace: 7\r\n"), "{head}");
        assert!(head.contains("accept: text/event-stream\r\n"), "{head}");
        assert!(
            !head.contains("authorization"),
            "credentials went to another origin: {head}"
        );
    }
}

/// A redirect chain longer than the limit, a redirect without a `Location`, one to a scheme
/// that is not HTTP, and any redirect with following off each stop with the error that says so.
#[test]
fn redirect_limits_and_bad_locations_stop_with_typed_errors() {
    let looping = Scripted::start(vec![
        redirect(302, "/a"),
        redirect(303, "/b"),
        redirect(308, "/c"),
    ]);
    let no_location = Scripted::start(vec![Reply::close(
        "HTTP/1.1 302 Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    )]);
    let not_http = Scripted::start(vec![redirect(301, "ftp://127.0.0.1/x")]);
    let off = Scripted::start(vec![redirect(307, "/elsewhere")]);
    let url = |server: &Scripted| -> Uri { format!("http://{}/s", server.addr).parse().unwrap() };
    run(async {
        let mut source = Builder::new(url(&looping), Rt, Tcp)
            .max_redirects(2)
            .build();
        assert!(matches!(
            stops(&mut source).await,
            Error::TooManyRedirects { limit: 2 }
        ));
        let mut source = Builder::new(url(&no_location), Rt, Tcp).build();
        assert!(matches!(
            stops(&mut source).await,
            Error::Status(StatusCode::FOUND)
        ));
        let mut source = Builder::new(url(&not_http), Rt, Tcp).build();
        let err = stops(&mut source).await;
        assert!(
            matches!(
                err,
                Error::BadRedirect {
                    status: StatusCode::MOVED_PERMANENTLY
                }
            ),
            "{err:?}"
        );
        assert!(!err.to_string().contains("ftp"), "{err}");
        let mut source = Builder::new(url(&off), Rt, Tcp).max_redirects(0).build();
        assert!(matches!(
            stops(&mut source).await,
            Error::Status(StatusCode::TEMPORARY_REDIRECT)
        ));
    });
    let paths: Vec<String> = (0..3)
        .map(|_| match looping.next_seen() {
            Seen::Request(head) => head.lines().next().unwrap_or("").to_owned(),
            Seen::ClientClosed => panic!("expected a request"),
        })
        .collect();
    assert_eq!(
        paths,
        ["get /s http/1.1", "get /a http/1.1", "get /b http/1.1"]
    );
}

#[test]
fn retry_sets_the_delay_and_failures_double_it_until_max_attempts() {
    // One connection that sets `retry: 50` and closes; then the listener is gone.
    let server = Scripted::start(vec![Reply::close(format!("{STREAM_HEAD}retry: 50\n\n"))]);
    let uri = format!("http://{}/s", server.addr).parse().unwrap();
    run(async {
        let backoff = Backoff {
            initial: Duration::from_secs(5),
            ..exact(Some(2))
        };
        let mut source = Builder::new(uri, Rt, Tcp).backoff(backoff).build();
        open(&mut source).await;
        match item(&mut source).await {
            Item::Reconnecting {
                attempt: 1,
                after,
                cause: Disconnect::Ended,
            } => assert_eq!(after, 50 * MS, "the server's retry, not the initial 5 s"),
            other => panic!("expected Reconnecting, got {other:?}"),
        }
        match item(&mut source).await {
            Item::Reconnecting {
                attempt: 2,
                after,
                cause: Disconnect::Network(_),
            } => assert_eq!(after, 100 * MS, "doubled after a refused connection"),
            other => panic!("expected Reconnecting, got {other:?}"),
        }
        match stops(&mut source).await {
            Error::GaveUp {
                attempts: 2,
                cause: Disconnect::Network(_),
            } => {}
            other => panic!("expected GaveUp, got {other:?}"),
        }
    });
}

#[test]
fn last_event_id_follows_the_buffer_rules_across_reconnections() {
    let server = Scripted::start(vec![
        // `id: 2` with no data still sets the last event id at its blank line; the event cut
        // off by the close (`id: 3` without its blank line) does not.
        Reply::close(format!(
            "{STREAM_HEAD}retry: 1\nid: 1\ndata: a\n\nid: 2\n\nid: 3\ndata: cut"
        )),
        Reply::close(format!("{STREAM_HEAD}data: b\n\nid\ndata: c\n\n")),
        Reply::close(format!("{STREAM_HEAD}data: d\n\n")),
    ]);
    let uri: Uri = format!("http://{}/s", server.addr).parse().unwrap();
    run(async {
        let mut source = Builder::new(uri, Rt, Tcp)
            .backoff(exact(Some(1)))
            .last_event_id("0")
            .build();
        open(&mut source).await;
        let a = event(&mut source).await;
        assert_eq!((a.data(), a.last_event_id()), ("a", "1"));
        assert!(matches!(item(&mut source).await, Item::Reconnecting { .. }));
        open(&mut source).await;
        let b = event(&mut source).await;
        assert_eq!((b.data(), b.last_event_id()), ("b", "2"));
        // An empty `id` field resets the last event id: no header on the next request.
        let c = event(&mut source).await;
        assert_eq!((c.data(), c.last_event_id()), ("c", ""));
        assert!(matches!(item(&mut source).await, Item::Reconnecting { .. }));
        open(&mut source).await;
        assert_eq!(event(&mut source).await.data(), "d");
    });
    assert_eq!(server.next_header("last-event-id").as_deref(), Some("0"));
    assert_eq!(server.next_header("last-event-id").as_deref(), Some("2"));
    assert_eq!(server.next_header("last-event-id"), None);
}

#[test]
fn a_non_ascii_last_event_id_goes_back_as_utf_8() {
    let server = Scripted::start(vec![
        Reply::close(format!("{STREAM_HEAD}retry: 1\nid: café☕\ndata: x\n\n")),
        Reply::close(STREAM_HEAD),
    ]);
    let uri: Uri = format!("http://{}/s", server.addr).parse().unwrap();
    run(async {
        let mut source = Builder::new(uri, Rt, Tcp).backoff(exact(Some(1))).build();
        open(&mut source).await;
        assert_eq!(event(&mut source).await.last_event_id(), "café☕");
        assert!(matches!(item(&mut source).await, Item::Reconnecting { .. }));
        open(&mut source).await;
    });
    assert_eq!(server.next_header("last-event-id"), None);
    assert_eq!(
        server.next_header("last-event-id").as_deref(),
        Some("café☕")
    );
}

#[test]
fn a_request_says_what_it_accepts() {
    let server = Scripted::start(vec![Reply::close(STREAM_HEAD)]);
    let uri: Uri = format!("http://{}/s?q=1", server.addr).parse().unwrap();
    run(async {
        let mut source = Builder::new(uri, Rt, Tcp)
            .header(
                http::header::AUTHORIZATION,
                http::HeaderValue::from_static("Bearer t"),
            )
            .header(
                http::header::ACCEPT,
                http::HeaderValue::from_static("text/html"),
            )
            .backoff(exact(Some(0)))
            .build();
        open(&mut source).await;
        assert!(matches!(
            stops(&mut source).await,
            Error::GaveUp { attempts: 0, .. }
        ));
    });
    let Seen::Request(head) = server.next_seen() else {
        panic!("expected a request")
    };
    assert!(head.starts_with("get /s?q=1 http/1.1\r\n"), "{head}");
    for line in [
        "accept: text/event-stream\r\n",
        "cache-control: no-store\r\n",
        "authorization: bearer t\r\n",
        &format!("host: {}\r\n", server.addr),
    ] {
        assert!(head.contains(line), "{line:?} missing from {head}");
    }
    assert!(
        !head.contains("text/html"),
        "the client's Accept replaces the user's"
    );
    assert!(!head.contains("last-event-id"));
}

#[test]
fn an_overlong_line_closes_the_connection_with_a_typed_error() {
    let line = format!("{STREAM_HEAD}data: ok\n\ndata: {}", "x".repeat(4096));
    let server = Scripted::start(vec![Reply::hold(line)]);
    let uri: Uri = format!("http://{}/s", server.addr).parse().unwrap();
    run(async {
        let limits = Limits {
            max_line_len: 1024,
            max_event_len: 1024 * 1024,
        };
        let mut source = Builder::new(uri, Rt, Tcp).limits(limits).build();
        open(&mut source).await;
        assert_eq!(event(&mut source).await.data(), "ok");
        assert!(matches!(
            stops(&mut source).await,
            Error::LineTooLong { limit: 1024 }
        ));
    });
    assert!(matches!(server.next_seen(), Seen::Request(_)));
    assert_eq!(server.next_seen(), Seen::ClientClosed, "the client hung up");
}

#[test]
fn an_oversized_event_closes_the_connection_with_a_typed_error() {
    let event = format!("{STREAM_HEAD}{}", "data: 0123456789\n".repeat(200));
    let server = Scripted::start(vec![Reply::hold(event)]);
    let uri: Uri = format!("http://{}/s", server.addr).parse().unwrap();
    run(async {
        let limits = Limits {
            max_line_len: 1024,
            max_event_len: 1024,
        };
        let mut source = Builder::new(uri, Rt, Tcp).limits(limits).build();
        open(&mut source).await;
        assert!(matches!(
            stops(&mut source).await,
            Error::EventTooLarge { limit: 1024 }
        ));
    });
    assert!(matches!(server.next_seen(), Seen::Request(_)));
    assert_eq!(server.next_seen(), Seen::ClientClosed);
}

#[test]
fn an_idle_timeout_reconnects_a_silent_server_while_connecting_and_streaming() {
    // One connection that never answers, one that sends its head and nothing more.
    let server = Scripted::start(vec![Reply::hold(""), Reply::hold(STREAM_HEAD)]);
    let uri: Uri = format!("http://{}/s", server.addr).parse().unwrap();
    let timed_out = |cause: &Disconnect| match cause {
        Disconnect::Network(err) => err.to_string().contains("idle timeout"),
        _ => false,
    };
    run(async {
        let mut source = Builder::new(uri, Rt, Tcp)
            .backoff(exact(Some(1)))
            .idle_timeout(Some(50 * MS))
            .build();
        match item(&mut source).await {
            Item::Reconnecting {
                attempt: 1, cause, ..
            } => assert!(timed_out(&cause), "{cause}"),
            other => panic!("expected Reconnecting, got {other:?}"),
        }
        open(&mut source).await;
        match item(&mut source).await {
            Item::Reconnecting {
                attempt: 1, cause, ..
            } => assert!(timed_out(&cause), "{cause}"),
            other => panic!("expected Reconnecting, got {other:?}"),
        }
        assert!(matches!(
            stops(&mut source).await,
            Error::GaveUp { attempts: 1, .. }
        ));
    });
    for _ in 0..2 {
        assert!(matches!(server.next_seen(), Seen::Request(_)));
        assert_eq!(server.next_seen(), Seen::ClientClosed, "the client hung up");
    }
}

#[test]
fn the_reset_event_is_its_own_item() {
    let server = Scripted::start(vec![Reply::close(format!(
        "{STREAM_HEAD}id: 4\ndata: x\n\nevent: reset\nid: 9\ndata: 9\n\n"
    ))]);
    let uri: Uri = format!("http://{}/s", server.addr).parse().unwrap();
    run(async {
        let mut source = Builder::new(uri, Rt, Tcp).backoff(exact(Some(0))).build();
        open(&mut source).await;
        assert_eq!(event(&mut source).await.data(), "x");
        match item(&mut source).await {
            Item::Reset(reset) => assert_eq!(reset.last_event_id(), "9"),
            other => panic!("expected Reset, got {other:?}"),
        }
        assert_eq!(source.last_event_id(), "9");
    });
}

#[test]
fn an_https_url_without_a_tls_connector_stops() {
    run(async {
        let uri = "https://127.0.0.1:1/s".parse().unwrap();
        let mut source = Builder::new(uri, Rt, Tcp).build();
        match stops(&mut source).await {
            Error::Unsupported(err) => assert_eq!(err.kind(), std::io::ErrorKind::Unsupported),
            other => panic!("expected Unsupported, got {other:?}"),
        }
    });
}

#[test]
fn axum_sse_interop_across_a_server_kill_and_restart() {
    let server = Axum::start(0);
    let addr = server.addr;
    let uri: Uri = format!("http://{addr}/stream").parse().unwrap();
    run(async {
        let backoff = Backoff {
            max: 50 * MS,
            ..exact(None)
        };
        let mut source = Builder::new(uri, Rt, Tcp)
            .backoff(backoff)
            .reset_event(None)
            .build();
        open(&mut source).await;
        let mut data = Vec::new();
        for _ in 0..3 {
            data.push(event(&mut source).await.data().to_owned());
        }
        drop(server);
        assert!(matches!(
            item(&mut source).await,
            Item::Reconnecting { attempt: 1, .. }
        ));
        let restarted = Axum::start(addr.port());
        // Refused attempts while the server was away, then it answers again.
        loop {
            match item(&mut source).await {
                Item::Reconnecting { .. } => {}
                Item::Open => break,
                other => panic!("expected Reconnecting or Open, got {other:?}"),
            }
        }
        for _ in 0..3 {
            data.push(event(&mut source).await.data().to_owned());
        }
        assert_eq!(
            data,
            (1..=6).map(|n| format!("event {n}")).collect::<Vec<_>>(),
            "the new server saw Last-Event-ID: 3"
        );
        drop(restarted);
    });
}
