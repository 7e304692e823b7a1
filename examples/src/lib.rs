//! Runnable programs for the sse workspace; see `examples/README.md` for which to start with.
//! The library part holds what the programs share with the tests.

use axum::Router;
use axum::extract::Request;
use axum::routing::{any, get};

/// An axum application with the SSE protocol mounted under its prefix (`/sse/`) beside the
/// application's own routes. Spawn [`sse_http::Sse::sweeper`] once beside it.
pub fn axum_router(sse: sse_http::Sse) -> Router {
    let prefix = format!("{}{{*rest}}", sse.config().prefix);
    Router::new()
        .route("/", get(|| async { "the app's own page" }))
        .route(
            &prefix,
            any(move |req: Request| {
                let sse = sse.clone();
                async move { sse.handle(req).await }
            }),
        )
}
