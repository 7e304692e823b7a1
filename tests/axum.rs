//! The end-to-end suite against the protocol mounted inside an axum application.

#[path = "suite/mod.rs"]
mod suite;

use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread;

use suite::Server;

/// Serves `sse_examples::axum_router` with axum's own server and graceful shutdown.
fn start_server(config: sse_http::Config) -> Server {
    let (ready_tx, ready_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr: SocketAddr = listener.local_addr().expect("addr");
            let sse = sse_tokio::service(config, suite::task_handler);
            tokio::spawn(sse.clone().sweeper());
            ready_tx.send((addr, sse.clone())).expect("ready");
            let app = sse_examples::axum_router(sse.clone());
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    stop_rx.await.ok();
                    sse.shutdown().await;
                })
                .await
                .expect("serve");
        });
    });
    let (addr, sse) = ready_rx.recv().expect("server started");
    Server::new(
        addr,
        sse,
        Box::new(move || stop_tx.send(()).is_ok()),
        thread,
    )
}
