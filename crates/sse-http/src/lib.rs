//! The server-sent events protocol over `http` and `hyper`, independent of any runtime.
//!
//! [`Sse`] answers every route of the protocol (below, with the default prefix `/sse/`) over a
//! [`sse_registry::Hub`]. It is a `hyper::service::Service`, so an adapter only accepts
//! connections and hands them to hyper; what it needs from a runtime (spawning tasks, a timer
//! for keep-alives and sweeps) comes in through [`Runtime`], which [`HyperRuntime`] builds from
//! hyper's own `Executor` and `Timer` traits. [`serve`] runs the accept loop: bodiless HTTP/1.1
//! requests, event streams above all, are answered by a lean writer of its own (about 3.5 KiB
//! per open stream, all told, where hyper keeps ~20 KiB of buffers per connection), everything
//! else by hyper (HTTP/1.1 and h2c); [`serve_app`] does the same for the protocol's requests
//! and hands every other request (and its connection) to hyper and an application service.
//!
//! | route | does | answers |
//! |---|---|---|
//! | `GET /sse/client.js` | the browser client module ([`CLIENT_JS`]) | `200` `text/javascript` |
//! | `POST /sse/clients[?name=N]` | issues a client id, optionally with a name | `201`, the id as text |
//! | `GET /sse/events/{id}` | opens the stream (replacing an older one); honours `Last-Event-ID` | `200` `text/event-stream`; the first event is `registered` with the id |
//! | `PUT`/`DELETE /sse/listen/{id}/{key}` | subscribes / unsubscribes | `204` |
//! | `PUT /sse/tasks/{id}/{taskid}` | runs the [`TaskHandler`]; `completed` goes to the client's name | `202` |
//! | `DELETE /sse/clients/{id}` | ends the stream, forgets the client | `204` |
//! | `POST /sse/notify/{key}` | admin: body as `event: {key}` to the key's subscribers; optional `Idempotency-Key` | `202` `{"delivered": n}` (a replay: `{"replayed": true}`) |
//! | `POST /sse/broadcast` | admin: body as `event: message` to everyone; optional `Idempotency-Key` | `202` `{"delivered": n}` (a replay: `{"replayed": true}`) |
//! | `GET /sse/clients` | admin: clients (paged with `offset`, `limit`) | `200` JSON |
//! | `DELETE /sse/clients` | admin: forgets every client | `204` |
//! | `POST /sse/sweep` | admin: stale sweep now | `200` `{"removed": n}` |
//! | `GET /sse/stats` | admin: the hub's counts, tasks running, the backend's report (Redis: connected, appends, failures) | `200` JSON |
//!
//! Unknown ids are `404`; malformed ids, keys, names and bodies are `400` (or `413` for a body
//! over [`Config::max_body`]) with a short reason; capacity limits are `503`. Admin routes need
//! `Authorization: Bearer <token>` and are off (`403`) without a configured token.
//!
//! **Names.** Every client issued with a name gets the name's task events (`progress`,
//! `completed`: the task id and a timestamp, never a client id). Without an identity seam
//! ([`Config::access`], see [`Access`]) anyone may issue a client under any name; an
//! application that has users says who a request is there, and names become its users.
//!
//! **Limits.** Every limit is on by default and answered with a 4xx or `503` and a reason: per
//! peer address ([`PeerLimits`]: registrations, open streams; `429` with `Retry-After`),
//! globally ([`Config::max_keys`], [`Config::max_subscriptions`], the registry's
//! `max_clients`), and per request (bodies, names, keys, request heads and their time).
//!
//! **Idempotent publishes.** A publish with an [`IDEMPOTENCY_KEY`] header (printable ASCII, at
//! most [`MAX_IDEMPOTENCY_KEY_LEN`] bytes, else `400`) is made once per key, route and target
//! within [`Config::idempotency_ttl`]: a repeat is answered `202` `{"replayed": true}` with
//! [`IDEMPOTENT_REPLAYED`]` : true` and publishes nothing, so an admin may retry a publish
//! whose answer was lost (or a `503` that says it may have been applied). With a shared
//! backend the keys are shared too: a retry on another node is a replay.
//!
//! Every route goes through a [`Backend`]: the in-memory [`LocalBackend`] by default, or a
//! shared one (`sse-redis`); [`Route::parse`] says which route a request is for.
//!
//! ```
//! use std::time::Duration;
//! use sse_http::{Config, HyperRuntime, Sse, Task};
//! # #[derive(Clone)] struct Exec;
//! # impl<F: std::future::Future + Send + 'static> hyper::rt::Executor<F> for Exec { fn execute(&self, _: F) {} }
//! # #[derive(Clone)] struct Timer;
//! # impl hyper::rt::Timer for Timer {
//! #     fn sleep(&self, _: Duration) -> std::pin::Pin<Box<dyn hyper::rt::Sleep>> { unimplemented!() }
//! #     fn sleep_until(&self, _: std::time::Instant) -> std::pin::Pin<Box<dyn hyper::rt::Sleep>> { unimplemented!() }
//! # }
//! # let (executor, timer) = (Exec, Timer);
//!
//! // The application's long-running task: report progress, then return to complete it.
//! async fn work(task: Task) {
//!     for step in 1..=3 {
//!         task.sleep(Duration::from_secs(1)).await;
//!         task.progress(&format!("{step}/3")).await;
//!     }
//! }
//!
//! let mut config = Config::default();
//! config.admin_token = Some("change me".into());
//! // `executor` and `timer` are the runtime's (for tokio: hyper_util's TokioExecutor, TokioTimer).
//! let sse = Sse::new(config, HyperRuntime::new(executor, timer), work);
//! assert_eq!(sse.config().prefix, "/sse/");
//! ```

mod access;
mod admin;
mod backend;
mod body;
mod config;
mod cors;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod kill;
mod lean;
mod local;
mod metrics;
mod once;
mod peers;
mod reply;
mod route;
mod runtime;
mod serve;
mod service;
mod tasks;

pub use access::{Access, Identity, Refusal};
pub use backend::{Backend, BackendError, BackendFuture, Metric, Recipients};
pub use body::Body;
pub use config::{Config, ConfigError};
pub use local::LocalBackend;
pub use once::{
    BadIdempotencyKey, IDEMPOTENCY_KEY, IDEMPOTENT_REPLAYED, IdempotencyKey,
    MAX_IDEMPOTENCY_KEY_LEN, Once, Published,
};
pub use peers::{PeerAddr, PeerLimits};
pub use route::{Route, RouteError};
pub use runtime::{BoxFuture, HyperRuntime, Runtime};
pub use serve::{AppBody, AppService, BoxError, Listener, serve, serve_app};
pub use service::{ADMIN_KEY, CLIENT_JS, MESSAGE, MIN_SWEEP_GAP, REGISTERED, RESERVED, Sse};
pub use tasks::{COMPLETED, PROGRESS, Task, TaskHandler};
