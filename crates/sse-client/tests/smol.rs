//! The client's loopback suite on smol: the client on `smol::block_on`, the demo server on
//! `sse_smol::serve_app`.

#[path = "suite/mod.rs"]
mod suite;

use std::future::Future;
use std::sync::Arc;

pub(crate) use sse_client::smol::{Smol as Rt, TcpConnector as Tcp};
use suite::Demo;

/// Runs the test's client side on smol's `block_on` (no tokio runtime in this thread).
pub(crate) fn run(test: impl Future<Output = ()>) {
    smol::block_on(test);
}

/// The demo application (`sse_examples::demo_app`) on `sse_smol::serve_app`, on its own
/// thread, on a smol executor, on an ephemeral loopback port.
pub(crate) fn start_demo(config: sse_http::Config) -> Demo {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = smol::channel::bounded::<()>(1);
    let thread = std::thread::spawn(move || {
        let ex: sse_smol::Ex = Arc::new(smol::Executor::new());
        smol::block_on(ex.run(async {
            let listener = smol::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = listener.local_addr().expect("addr");
            let sse = sse_smol::service(&ex, config, suite::task_handler);
            ready_tx.send((addr, sse.clone())).expect("ready");
            let app = sse_examples::demo_app(sse.clone());
            sse_smol::serve_app(&ex, listener, sse, app, async {
                stop_rx.recv().await.ok();
            })
            .await
            .expect("serve");
        }));
    });
    let (addr, sse) = ready_rx.recv().expect("server started");
    Demo::new(
        addr,
        sse,
        Box::new(move || {
            let _ = stop_tx.try_send(());
        }),
        thread,
    )
}
