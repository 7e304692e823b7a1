//! The client's loopback suite on tokio: the client on a tokio runtime, the demo server on
//! `sse_tokio::serve_app`.

#[path = "suite/mod.rs"]
mod suite;

use std::future::Future;

pub(crate) use sse_client::tokio::{TcpConnector as Tcp, Tokio as Rt};
use suite::Demo;

/// Runs the test's client side on a tokio runtime of its own.
pub(crate) fn run(test: impl Future<Output = ()>) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime")
        .block_on(test);
}

/// The demo application (`sse_examples::demo_app`) on `sse_tokio::serve_app`, on its own thread
/// and runtime, on an ephemeral loopback port.
pub(crate) fn start_demo(config: sse_http::Config) -> Demo {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("server runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = listener.local_addr().expect("addr");
            let sse = sse_tokio::service(config, suite::task_handler);
            ready_tx.send((addr, sse.clone())).expect("ready");
            let app = sse_examples::demo_app(sse.clone());
            sse_tokio::serve_app(listener, sse, app, async {
                stop_rx.await.ok();
            })
            .await
            .expect("serve");
        });
    });
    let (addr, sse) = ready_rx.recv().expect("server started");
    Demo::new(
        addr,
        sse,
        Box::new(move || {
            let _ = stop_tx.send(());
        }),
        thread,
    )
}
