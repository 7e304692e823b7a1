//! An event source over TLS: the client's pluggable connector wraps tokio's TCP stream in
//! rustls (the crate has no TLS of its own). To be self-contained, the example starts a TLS
//! server on loopback with a self-signed certificate for `localhost` (from rcgen) and trusts
//! exactly that certificate; a real client trusts the web's roots (`webpki-roots` or the
//! platform's) instead.
//!
//! The server sends three events per connection, numbered on from the request's
//! `Last-Event-ID`, then closes: the client reconnects over TLS, resumes, and the example
//! prints six events as JSON lines and exits.
//!
//! ```sh
//! cargo run -p sse-client --example tls
//! ```

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use futures_lite::StreamExt;
use http::Uri;
use hyper_util::rt::TokioIo;
use sse_client::tokio::Tokio;
use sse_client::{Builder, Connect, Item};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{self, RootCertStore};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// rustls's crypto on `ring`, which builds with a C compiler alone. rustls 0.23.48 deprecates
/// it for having no post-quantum key exchange: a deployment that wants one enables rustls's
/// `aws-lc-rs` feature (it needs cmake to build) and uses
/// `rustls::crypto::aws_lc_rs::default_provider()` here instead.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A connector for `https://` URLs: TCP, then a rustls handshake for the URL's host, verified
/// against `roots`. Any other scheme is `Unsupported` (the source stops: it can never connect).
pub fn rustls_connector(roots: RootCertStore) -> impl Connect {
    let provider = provider();
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tls = TlsConnector::from(Arc::new(config));
    move |uri: &Uri| {
        let tls = tls.clone();
        let target = match (uri.scheme_str(), uri.host()) {
            (Some("https"), Some(host)) => Ok((
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned(),
                uri.port_u16().unwrap_or(443),
            )),
            _ => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "this connector reaches https:// URLs only",
            )),
        };
        async move {
            let (host, port) = target?;
            let name = ServerName::try_from(host.clone())
                .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?;
            let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let stream = tls.connect(name, tcp).await?;
            Ok(TokioIo::new(stream))
        }
    }
}

/// A self-signed certificate for `localhost` and its key.
pub fn self_signed() -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("a certificate");
    let key = PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    (certified.cert.der().clone(), key)
}

/// A TLS event-stream server on a loopback port, for `connections` connections: each gets
/// `retry: 10`, three events numbered on from its `Last-Event-ID` (0 without one), and the end
/// of the stream. Returns the port, and a channel of the `Last-Event-ID` each request carried.
pub async fn serve(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    connections: usize,
) -> (
    SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<Option<String>>,
) {
    let provider = provider();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("a valid certificate and key");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (seen, ids) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        for _ in 0..connections {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            // A failed handshake (a client that does not trust us) is that connection's end.
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                continue;
            };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
                if tls.read(&mut byte).await.unwrap_or(0) == 0 {
                    break;
                }
                head.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&head).to_lowercase();
            let last = head.lines().find_map(|line| {
                line.strip_prefix("last-event-id:")
                    .map(|v| v.trim().to_owned())
            });
            let from: u64 = last.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0);
            let _ = seen.send(last);
            let mut reply = String::from(
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\nretry: 10\n\n",
            );
            for n in from + 1..=from + 3 {
                reply.push_str(&format!("id: {n}\ndata: event {n}\n\n"));
            }
            let _ = tls.write_all(reply.as_bytes()).await;
            let _ = tls.shutdown().await;
        }
    });
    (addr, ids)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let (cert, key) = self_signed();
    let (addr, _ids) = serve(cert.clone(), key, 2).await;
    let mut roots = RootCertStore::empty();
    roots.add(cert).expect("a trusted root");
    let uri: Uri = format!("https://localhost:{}/events", addr.port())
        .parse()
        .expect("uri");
    let mut source = Builder::new(uri, Tokio, rustls_connector(roots)).build();
    let mut printed = 0;
    while let Some(item) = source.next().await {
        match item {
            Ok(Item::Event(event)) => {
                let line = serde_json::json!({
                    "type": event.event_type(),
                    "data": event.data(),
                    "id": event.last_event_id(),
                });
                println!("{line}");
                printed += 1;
                if printed == 6 {
                    return;
                }
            }
            Ok(Item::Reconnecting { cause, .. }) => eprintln!("reconnecting: {cause}"),
            Ok(_) => {}
            Err(err) => {
                eprintln!("stopped: {err}");
                std::process::exit(1);
            }
        }
    }
}
