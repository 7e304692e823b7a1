//! Run with: `cargo run -p sse-examples --example axum_mount`
//!
//! Mounts the server-sent events protocol inside an existing axum application: the app keeps
//! its own routes (here a sign-in, `POST /login?user=NAME`, which sets a session cookie),
//! everything under `/sse/` goes to the SSE service, and graceful shutdown ends the SSE streams
//! first so that axum's own graceful shutdown is not held up by them.
//!
//! Who a request is comes from the application: its sessions are the protocol's identity seam
//! (`Config::access`), so a client registered with alice's session belongs to alice, a
//! stranger's `?name=alice` is refused, and `private.{user}` keys are their user's alone (see
//! `sse_examples::Sessions`).
//!
//! ```sh
//! curl -si -X POST 'http://127.0.0.1:3000/login?user=alice'      # the token, and its cookie
//! curl -si -X POST -H 'authorization: Bearer TOKEN' http://127.0.0.1:3000/sse/clients
//! ```
//!
//! Here axum owns every connection, so each open stream holds hyper's buffers (about 20 KiB);
//! `sse_tokio::serve_app(listener, sse, router)` serves the same router with the protocol's
//! streams on the lean path instead (a few KiB each). See the sse-http README.

use std::sync::Arc;

use sse_http::{Config, Task};

async fn work(task: Task) {
    task.sleep(std::time::Duration::from_secs(1)).await;
    task.progress("halfway").await;
    task.sleep(std::time::Duration::from_secs(1)).await;
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let sessions = Arc::new(sse_examples::Sessions::default());
    let mut config = Config::default();
    config.admin_token = std::env::var("SSE_ADMIN_TOKEN").ok();
    config.access = Some(sessions.clone());
    let sse = sse_tokio::service(config, work);
    tokio::spawn(sse.clone().sweeper());

    let app = sse_examples::axum_router_with_sessions(sse.clone(), sessions);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        tokio::signal::ctrl_c().await.ok();
        sse.shutdown().await; // ends every open stream
    })
    .await
}
