//! The end-to-end suite against the smol adapter.

#[path = "suite/mod.rs"]
mod suite;

#[path = "suite/ours.rs"]
mod ours;

#[path = "suite/abuse.rs"]
mod abuse;

#[path = "smol_support.rs"]
mod smol_support;

use std::net::SocketAddr;
use std::sync::mpsc;

use smol_support::spawn_on_smol;
use suite::Server;

/// Starts `sse_smol::serve` on its own thread, on a smol executor run by two threads, on an
/// ephemeral loopback port.
fn start_server(config: sse_http::Config) -> Server {
    let (ready_tx, ready_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = smol::channel::bounded::<()>(1);
    let thread = spawn_on_smol(move |ex| async move {
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
