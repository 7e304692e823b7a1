//! The pluggable connector carries TLS: the `tls` example's rustls connector against its TLS
//! server (a self-signed certificate for `localhost`), on tokio. A connection resumes over TLS
//! with the right `Last-Event-ID` and every event once; a certificate the client does not trust
//! and a name the certificate does not cover are network errors (the handshake fails), never a
//! stream; a plain `http://` URL given to the TLS connector stops the source.

#[path = "../examples/tls.rs"]
#[allow(dead_code, unreachable_pub)]
mod example;

use std::time::Duration;

use futures_lite::StreamExt;
use http::Uri;
use sse_client::tokio::Tokio;
use sse_client::{Backoff, Builder, Error, EventSource, Item};
use tokio_rustls::rustls::RootCertStore;

const PATIENCE: Duration = Duration::from_secs(30);

fn run(test: impl std::future::Future<Output = ()>) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(test);
}

fn roots(cert: &tokio_rustls::rustls::pki_types::CertificateDer<'static>) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    roots.add(cert.clone()).expect("a trusted root");
    roots
}

fn source(uri: &str, roots: RootCertStore, max_attempts: u32) -> EventSource {
    let uri: Uri = uri.parse().expect("uri");
    Builder::new(uri, Tokio, example::rustls_connector(roots))
        .backoff(Backoff {
            initial: Duration::from_millis(10),
            max_attempts: Some(max_attempts),
            ..Backoff::DEFAULT
        })
        .build()
}

async fn next(source: &mut EventSource) -> Option<Result<Item, Error>> {
    tokio::time::timeout(PATIENCE, source.next())
        .await
        .expect("an item in time")
}

#[test]
fn a_stream_over_rustls_resumes_with_last_event_id() {
    run(async {
        let (cert, key) = example::self_signed();
        let (addr, mut ids) = example::serve(cert.clone(), key, 2).await;
        let url = format!("https://localhost:{}/events", addr.port());
        let mut source = source(&url, roots(&cert), 1);
        let mut seen = Vec::new();
        let mut opens = 0;
        loop {
            match next(&mut source).await {
                Some(Ok(Item::Open)) => opens += 1,
                Some(Ok(Item::Event(event))) => {
                    assert_eq!(event.data(), format!("event {}", event.last_event_id()));
                    seen.push(event.last_event_id().to_owned());
                }
                Some(Ok(Item::Reconnecting { .. })) => {}
                // The server's two connections are used up: the third attempt is refused.
                Some(Err(Error::GaveUp { .. })) => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(opens, 2);
        assert_eq!(seen, ["1", "2", "3", "4", "5", "6"]);
        assert_eq!(
            ids.recv().await,
            Some(None),
            "the first request has no Last-Event-ID"
        );
        assert_eq!(ids.recv().await, Some(Some("3".into())));
        // `retry: 10` from the server set the reconnection time over TLS too.
        assert_eq!(source.reconnection_time(), Duration::from_millis(10));
    });
}

#[test]
fn an_untrusted_certificate_or_a_name_it_does_not_cover_never_opens() {
    run(async {
        let (cert, key) = example::self_signed();
        let (other, _) = example::self_signed();
        let (addr, _) = example::serve(cert.clone(), key, 2).await;
        let cases = [
            // Another certificate is trusted, not the server's.
            (
                format!("https://localhost:{}/events", addr.port()),
                roots(&other),
            ),
            // The server's certificate names localhost, not 127.0.0.1.
            (
                format!("https://127.0.0.1:{}/events", addr.port()),
                roots(&cert),
            ),
        ];
        for (url, roots) in cases {
            let mut source = source(&url, roots, 0);
            match next(&mut source).await {
                Some(Err(Error::GaveUp { attempts: 0, cause })) => {
                    let text = format!("{cause}").to_lowercase();
                    assert!(text.contains("certificate"), "{url}: {text}");
                }
                other => panic!("{url}: expected a failed handshake, got {other:?}"),
            }
        }
    });
}

#[test]
fn a_plain_url_given_to_the_tls_connector_stops() {
    run(async {
        let (cert, _) = example::self_signed();
        let mut source = source("http://localhost:1/events", roots(&cert), 5);
        assert!(matches!(
            next(&mut source).await,
            Some(Err(Error::Unsupported(_)))
        ));
        assert!(next(&mut source).await.is_none());
    });
}
