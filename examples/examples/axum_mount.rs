//! Run with: `cargo run -p sse-examples --example axum_mount`
//!
//! Mounts the server-sent events protocol inside an existing axum application: the app keeps
//! its own routes, everything under `/sse/` goes to the SSE service, and graceful shutdown ends
//! the SSE streams first so that axum's own graceful shutdown is not held up by them.

use sse_http::{Config, Task};

async fn work(task: Task) {
    task.sleep(std::time::Duration::from_secs(1)).await;
    task.progress("halfway").await;
    task.sleep(std::time::Duration::from_secs(1)).await;
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut config = Config::default();
    config.admin_token = std::env::var("SSE_ADMIN_TOKEN").ok();
    let sse = sse_tokio::service(config, work);
    tokio::spawn(sse.clone().sweeper());

    let app = sse_examples::axum_router(sse.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            tokio::signal::ctrl_c().await.ok();
            sse.shutdown().await; // ends every open stream
        })
        .await
}
