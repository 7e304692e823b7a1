//! Tests of `serve_app` with an application beside the protocol (the demo's).

use super::start_server;
use super::suite::{Raw, config, run};

/// The protocol's requests take the lean path (a stream close-delimited); the application's
/// go to hyper, and so does everything after them on their connection (a stream chunked).
#[test]
fn the_protocol_is_lean_and_the_application_on_hyper() {
    let server = start_server(config());
    run(async {
        let addr = server.addr;
        let register = "POST /sse/clients HTTP/1.1\r\nhost: x\r\n\r\n";
        let mut lean = Raw::connect(addr).await;
        let (head, id) = lean.request(register).await;
        assert!(head.starts_with("http/1.1 201 created\r\n"), "{head}");
        let id = id.expect("the id");
        let open = format!("GET /sse/events/{id} HTTP/1.1\r\nhost: x\r\n\r\n");
        let (head, _) = lean.request(&open).await;
        assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
        assert!(head.contains("\r\nconnection: close\r\n"), "{head}");
        assert!(!head.contains("transfer-encoding"), "{head}");

        let mut app = Raw::connect(addr).await;
        let (head, page) = app.request("GET / HTTP/1.1\r\nhost: x\r\n\r\n").await;
        assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
        assert!(head.contains("content-type: text/html"), "{head}");
        assert_eq!(page.as_deref(), Some(sse_examples::DEMO_PAGE));
        let (head, id) = app.request(register).await;
        assert!(head.starts_with("http/1.1 201 created\r\n"), "{head}");
        let open = format!(
            "GET /sse/events/{} HTTP/1.1\r\nhost: x\r\n\r\n",
            id.expect("the id")
        );
        let (head, _) = app.request(&open).await;
        assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
        assert!(head.contains("transfer-encoding: chunked\r\n"), "{head}");
    });
}
