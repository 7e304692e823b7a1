//! The end-to-end suite against the smol adapter.

#[path = "suite/mod.rs"]
mod suite;

#[path = "suite/ours.rs"]
mod ours;

use std::net::SocketAddr;
use std::sync::{Arc, mpsc};
use std::thread;

use suite::Server;

/// Starts `sse_smol::serve` on its own thread, on a smol executor run by two threads, on an
/// ephemeral loopback port.
fn start_server(config: sse_http::Config) -> Server {
    let (ready_tx, ready_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = smol::channel::bounded::<()>(1);
    let thread = thread::spawn(move || {
        let ex: sse_smol::Ex = Arc::new(smol::Executor::new());
        // A second thread helps run the executor until the server returns.
        let (done_tx, done_rx) = smol::channel::bounded::<()>(1);
        let helper = {
            let ex = ex.clone();
            thread::spawn(move || smol::block_on(ex.run(done_rx.recv())))
        };
        smol::block_on(ex.run(async {
            let listener = smol::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr: SocketAddr = listener.local_addr().expect("addr");
            let sse = sse_smol::service(&ex, config, suite::task_handler);
            ready_tx.send((addr, sse.clone())).expect("ready");
            sse_smol::serve(&ex, listener, sse, async {
                stop_rx.recv().await.ok();
            })
            .await
            .expect("serve");
        }));
        drop(done_tx);
        helper.join().expect("executor thread").ok();
    });
    let (addr, sse) = ready_rx.recv().expect("server started");
    Server::new(
        addr,
        sse,
        Box::new(move || stop_tx.try_send(()).is_ok()),
        thread,
    )
}

/// `serve` takes the lean path for stream connections.
const LEAN: bool = true;
