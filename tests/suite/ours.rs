//! Tests of what `sse_http::serve` itself does (the tokio and smol adapters), beyond the
//! protocol: not run against an application's own server (axum).

use std::time::Duration;

use super::start_server;
use super::suite::client::PATIENCE;
use super::suite::{Raw, config, run};

/// A keep-alive connection idle between requests does not hold up a graceful shutdown: it is
/// closed at once, as hyper closes its idle connections, not after `shutdown_timeout` (longer
/// here than `Server::stop` waits).
#[test]
fn an_idle_keep_alive_connection_is_closed_at_shutdown() {
    use tokio::io::AsyncReadExt;
    let mut config = config();
    config.shutdown_timeout = PATIENCE * 6;
    let mut server = start_server(config);
    let addr = server.addr;
    run(async move {
        let mut idle = Raw::connect(addr).await;
        let (head, _) = idle
            .request("POST /sse/clients HTTP/1.1\r\nhost: x\r\n\r\n")
            .await;
        assert!(head.starts_with("http/1.1 201 created\r\n"), "{head}");
        assert!(!head.contains("connection: close"), "{head}");
        // Fails if the idle connection keeps the server from stopping.
        server.stop();
        let mut rest = [0u8; 64];
        let end = tokio::time::timeout(PATIENCE, idle.tcp.read(&mut rest)).await;
        assert!(
            matches!(end, Ok(Ok(0) | Err(_))),
            "the server closed the idle connection: {end:?}"
        );
    });
}

/// A connection that would hold the shutdown up (a request body that never comes) is dropped
/// once `shutdown_timeout` has passed, and no new id is issued while shutting down.
#[test]
fn shutdown_drops_what_is_still_open_after_the_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut config = config();
    config.shutdown_timeout = Duration::from_millis(300);
    let mut server = start_server(config);
    let addr = server.addr;
    let (tx, rx) = std::sync::mpsc::channel();
    let client = std::thread::spawn(move || {
        run(async move {
            let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let head = "POST /sse/broadcast HTTP/1.1\r\nhost: x\r\nauthorization: Bearer s3cret-admin-token\r\ncontent-length: 100\r\n\r\nabc";
            tcp.write_all(head.as_bytes()).await.expect("write");
            tx.send(()).unwrap();
            let mut buf = [0u8; 256];
            let closed = tokio::time::timeout(PATIENCE, async {
                loop {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
            });
            closed
                .await
                .expect("the stuck connection is closed by the server");
        });
    });
    rx.recv_timeout(PATIENCE).expect("request sent");
    std::thread::sleep(Duration::from_millis(50));
    let sse = server.sse.clone();
    server.stop();
    assert!(sse.is_shutting_down());
    run(async {
        let req = http::Request::post("/sse/clients")
            .body(sse_http::Body::empty())
            .unwrap();
        let res = sse.handle(req).await;
        assert_eq!(res.status(), http::StatusCode::SERVICE_UNAVAILABLE);
    });
    client.join().expect("client saw its connection closed");
}
