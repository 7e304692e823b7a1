//! The end-to-end suite against the tokio adapter.

#[path = "suite/mod.rs"]
mod suite;

#[path = "suite/ours.rs"]
mod ours;

#[path = "suite/abuse.rs"]
mod abuse;

use suite::Server;

/// Serves with `sse_tokio::serve`.
fn start_server(config: sse_http::Config) -> Server {
    suite::tokio_server(config, |listener, sse, stop| async move {
        let stopped = async {
            stop.await.ok();
        };
        sse_tokio::serve(listener, sse, stopped)
            .await
            .expect("serve");
    })
}

/// `serve` takes the lean path for stream connections.
const LEAN: bool = true;
