//! The end-to-end suite against what the demo runs: `sse_tokio::serve_app` with the demo's
//! application (its page at `/`, the protocol under `/sse/`).

#[path = "suite/mod.rs"]
mod suite;

#[path = "suite/ours.rs"]
mod ours;

#[path = "suite/app.rs"]
mod app;

use suite::Server;

/// Serves `sse_examples::demo_app` with `sse_tokio::serve_app`.
fn start_server(config: sse_http::Config) -> Server {
    suite::tokio_server(config, |listener, sse, stop| async move {
        let stopped = async {
            stop.await.ok();
        };
        let app = sse_examples::demo_app(sse.clone());
        sse_tokio::serve_app(listener, sse, app, stopped)
            .await
            .expect("serve_app");
    })
}

/// `serve_app` takes the lean path for the protocol's bodiless requests.
const LEAN: bool = true;
