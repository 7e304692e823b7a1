//! Runnable programs for the sse workspace; see `examples/README.md` for which to start with.
//! The library part holds what the programs share with the tests.

mod sessions;

pub use sessions::{Sessions, axum_router_with_sessions};

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::routing::{any, get};
use http::{HeaderValue, Response, StatusCode, header};
use sse_http::Body;

/// The demo's page, served at `/`.
pub const DEMO_PAGE: &str = include_str!("../demo/index.html");

/// The admin page (`/admin`): sign in with the admin token, then the clients live (over SSE, on
/// [`sse_http::ADMIN_KEY`]), charts of events/s and open streams, and publish forms.
pub const ADMIN_PAGE: &str = include_str!("../demo/admin.html");

/// The demo's application: its page at `/`, the protocol under its prefix (what `serve_app`
/// does not answer on its lean path reaches it here).
pub fn demo_app(
    sse: sse_http::Sse,
) -> impl hyper::service::Service<
    http::Request<hyper::body::Incoming>,
    Response = Response<Body>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Body>, Infallible>> + Send,
> + Clone
+ Send
+ Sync
+ 'static {
    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let sse = sse.clone();
        async move {
            Ok(match req.uri().path() {
                "/" | "/index.html" => html(DEMO_PAGE),
                "/admin" | "/admin/" => html(ADMIN_PAGE),
                "/favicon.ico" => {
                    let mut res = Response::new(Body::empty());
                    *res.status_mut() = StatusCode::NO_CONTENT;
                    res
                }
                // The protocol's `{prefix}metrics` (admin token) where scrapers look first.
                "/metrics" => {
                    let (mut parts, body) = req.into_parts();
                    let path = format!("{}metrics", sse.config().prefix);
                    if let Ok(uri) = path.parse() {
                        parts.uri = uri;
                    }
                    sse.handle(http::Request::from_parts(parts, body)).await
                }
                _ => sse.handle(req).await,
            })
        }
    })
}

/// A page of the demo.
fn html(page: &'static str) -> Response<Body> {
    let mut res = Response::new(Body::full(page));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    res
}

/// An axum application with the SSE protocol mounted under its prefix (`/sse/`) beside the
/// application's own routes. Spawn [`sse_http::Sse::sweeper`] once beside it, and serve it
/// with `into_make_service_with_connect_info::<SocketAddr>()`, so that the per-peer limits
/// count each peer's address (without it, every request counts as one peer's).
pub fn axum_router(sse: sse_http::Sse) -> Router {
    let prefix = format!("{}{{*rest}}", sse.config().prefix);
    Router::new()
        .route("/", get(|| async { "the app's own page" }))
        .route(&prefix, protocol(sse))
}

/// The route of everything under the protocol's prefix: handed to `sse`, with the peer's
/// address from axum's `ConnectInfo` as the [`sse_http::PeerAddr`] its limits count.
fn protocol(sse: sse_http::Sse) -> axum::routing::MethodRouter {
    any(move |mut req: Request| {
        let sse = sse.clone();
        async move {
            let peer = req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0);
            if let Some(peer) = peer {
                req.extensions_mut().insert(sse_http::PeerAddr(peer));
            }
            sse.handle(req).await
        }
    })
}
