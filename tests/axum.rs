//! The end-to-end suite against the protocol mounted inside an axum application.

#[path = "suite/mod.rs"]
mod suite;

#[path = "suite/identity.rs"]
mod identity;

use suite::Server;

/// Serves `sse_examples::axum_router` with axum's own server and graceful shutdown.
fn start_server(config: sse_http::Config) -> Server {
    suite::tokio_server(config, |listener, sse, stop| async move {
        tokio::spawn(sse.clone().sweeper());
        let app = sse_examples::axum_router(sse.clone());
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            stop.await.ok();
            sse.shutdown().await;
        })
        .await
        .expect("serve");
    })
}

/// axum serves every connection (no lean path).
const LEAN: bool = false;
