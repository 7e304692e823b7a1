//! Run with: `cargo run -p sse-examples --example smol_embed`
//!
//! Embeds the SSE server in a plain smol application: the application owns the executor and
//! runs its own work beside the server (here, a clock that publishes the time to the `clock`
//! key every second through the hub), and decides when to stop (after `--seconds N`, default
//! 30, or Ctrl-C). Try it:
//!
//! ```sh
//! id=$(curl -s -X POST localhost:3001/sse/clients)
//! curl -s -X PUT localhost:3001/sse/listen/$id/clock
//! curl -N localhost:3001/sse/events/$id
//! ```

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sse_http::{Config, Task};
use sse_registry::Target;

fn main() -> std::io::Result<()> {
    let seconds: u64 = std::env::args()
        .skip_while(|a| a != "--seconds")
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let ex: sse_smol::Ex = Arc::new(smol::Executor::new());
    let (stop_tx, stop_rx) = smol::channel::bounded::<()>(1);
    let on_ctrl_c = stop_tx.clone();
    ctrlc::set_handler(move || {
        let _ = on_ctrl_c.try_send(());
    })
    .map_err(std::io::Error::other)?;

    smol::block_on(ex.run(async {
        let listener = smol::net::TcpListener::bind("127.0.0.1:3001").await?;
        println!("listening on http://{}", listener.local_addr()?);
        let sse = sse_smol::service(&ex, Config::default(), |_task: Task| async {});

        // The application's own work, on the same executor: publish the time every second.
        let hub = sse.hub().clone();
        let clock = sse_codec::EventName::from_static("clock");
        ex.spawn(async move {
            loop {
                async_io::Timer::after(Duration::from_secs(1)).await;
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default();
                hub.send(
                    Target::Key(&clock),
                    Some(&clock),
                    &now.as_secs().to_string(),
                )
                .await;
            }
        })
        .detach();

        // And its own idea of when to stop.
        ex.spawn(async move {
            async_io::Timer::after(Duration::from_secs(seconds)).await;
            let _ = stop_tx.try_send(());
        })
        .detach();

        sse_smol::serve(&ex, listener, sse, async {
            stop_rx.recv().await.ok();
        })
        .await
    }))
}
