//! The service: one handler per route, each with one path whatever the backend.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use serde_json::json;
use sse_codec::{EventId, EventName, Frame};
use sse_registry::{ClientId, DEFAULT_SLICE, Hub};

use crate::access::Identity;
use crate::admin;
use crate::backend::{Backend, BackendError, Recipients};
use crate::body::Body;
use crate::config::Config;
use crate::cors;
use crate::local::LocalBackend;
use crate::metrics::{self, Telemetry, Timings};
use crate::once::{IDEMPOTENCY_KEY, IDEMPOTENT_REPLAYED, IdempotencyKey, Once, Published};
use crate::peers::{PeerAddr, PeerKey, Peers};
use crate::reply::{Reject, Res, empty, json, stream_headers};
use crate::route::{Route, RouteError};
use crate::runtime::Runtime;
use crate::tasks::{TaskHandler, Tasks};

/// The first event of every stream: its data is the client's id.
pub const REGISTERED: EventName = EventName::from_static("registered");
/// The event type of admin broadcasts.
pub const MESSAGE: EventName = EventName::from_static("message");

/// The browser client module, served at `{prefix}client.js`: an ES module exporting
/// `SseClient` (see its source for the API).
pub const CLIENT_JS: &str = include_str!("client.js");

/// The admin key: the hub notifies its subscribers (an admin page) when its set of clients
/// changes (issued, removed, swept, a stream opened or ended), at most once per
/// [`Config::admin_watch`]; the event's data is the hub's counts as JSON, never an id. Only a
/// request with the admin token (or an admin [`Identity`]) may listen to it.
pub const ADMIN_KEY: EventName = EventName::from_static("admin.clients");

/// The least time [`Sse::sweeper`] sleeps between sweeps (unless
/// [`Config::sweep_interval`] is shorter), however soon the hub's next deadline.
pub const MIN_SWEEP_GAP: Duration = Duration::from_secs(1);

/// Event names the protocol itself uses, which therefore cannot be keys.
pub const RESERVED: [&str; 5] = ["registered", "completed", "progress", "reset", "message"];

/// The server-sent events service: every route of the protocol over one [`Hub`].
///
/// Cheap to clone. Serve it with `hyper` directly ([`Sse`] implements
/// `hyper::service::Service`) or call [`handle`](Self::handle) from another framework.
#[derive(Clone)]
pub struct Sse {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    hub: Hub,
    backend: Arc<dyn Backend>,
    runtime: Arc<dyn Runtime>,
    tasks: Tasks,
    /// The per-peer limits' state (`None`: off).
    peers: Option<Arc<Peers>>,
    /// The metrics, and whether the service is shutting down.
    telemetry: Arc<Telemetry>,
}

/// What the handlers know of a request besides its route.
struct Caller<'a> {
    head: &'a Parts,
    /// Who it is, when the application says ([`Config::access`]); `None`: open names.
    identity: Option<Identity>,
}

impl fmt::Debug for Sse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sse")
            .field("config", &self.inner.config)
            .field("hub", &self.inner.hub)
            .finish_non_exhaustive()
    }
}

impl Sse {
    /// A service on a new in-memory hub. `tasks` runs the tasks clients submit.
    ///
    /// # Panics
    ///
    /// If `config` fails [`Config::validate`].
    pub fn new(config: Config, runtime: impl Runtime, tasks: impl TaskHandler) -> Self {
        let hub = Hub::new(config.registry.clone());
        Self::with_hub(config, hub, runtime, tasks)
    }

    /// A service on an existing hub (to share it, or publish to it from elsewhere), with the
    /// in-memory [`LocalBackend`].
    ///
    /// # Panics
    ///
    /// If `config` fails [`Config::validate`].
    pub fn with_hub(
        config: Config,
        hub: Hub,
        runtime: impl Runtime,
        tasks: impl TaskHandler,
    ) -> Self {
        let runtime: Arc<dyn Runtime> = Arc::new(runtime);
        let timings = Timings::default();
        let backend = LocalBackend::timed(hub.clone(), runtime.clone(), timings.clone());
        Self::build(config, hub, Arc::new(backend), runtime, tasks, &timings)
    }

    /// A service on `hub` that applies what changes it (ids, subscriptions, removals, every
    /// published event) through `backend`, so that several services act as one hub (see
    /// [`Backend`]). Requests the backend cannot serve (its store unreachable, say) are
    /// answered `503`.
    ///
    /// # Panics
    ///
    /// If `config` fails [`Config::validate`] (as do [`new`](Self::new) and
    /// [`with_hub`](Self::with_hub)).
    pub fn with_backend(
        config: Config,
        hub: Hub,
        backend: Arc<dyn Backend>,
        runtime: Arc<dyn Runtime>,
        tasks: impl TaskHandler,
    ) -> Self {
        Self::build(config, hub, backend, runtime, tasks, &Timings::default())
    }

    fn build(
        config: Config,
        hub: Hub,
        backend: Arc<dyn Backend>,
        runtime: Arc<dyn Runtime>,
        tasks: impl TaskHandler,
        timings: &Timings,
    ) -> Self {
        if let Err(err) = config.validate() {
            panic!("invalid sse_http::Config: {err}");
        }
        let mut config = config;
        if !config.prefix.starts_with('/') {
            config.prefix.insert(0, '/');
        }
        if !config.prefix.ends_with('/') {
            config.prefix.push('/');
        }
        let tasks = Tasks::new(
            Arc::new(tasks),
            config.max_tasks,
            config.max_tasks_per_client,
        );
        let peers = config.peer_limits.clone().map(|l| Arc::new(Peers::new(l)));
        let telemetry = Arc::new(Telemetry::new(
            hub.clone(),
            backend.clone(),
            tasks.running_count(),
            timings,
        ));
        Self {
            inner: Arc::new(Inner {
                config,
                hub,
                backend,
                runtime,
                tasks,
                peers,
                telemetry,
            }),
        }
    }

    /// The hub behind the service.
    pub fn hub(&self) -> &Hub {
        &self.inner.hub
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Runs the periodic stale sweep until [`shutdown`](Self::shutdown); spawn it once per
    /// service. Each sweep is sliced and yields to the runtime between slices.
    ///
    /// It sleeps until the hub's next client deadline ([`Hub::poll_timeout`]: a client passes
    /// its grace or its unattached ttl) when that comes before [`Config::sweep_interval`], so a
    /// client known to be idle when the sweeper goes to sleep is swept when it expires rather
    /// than up to an interval later; but never less than [`MIN_SWEEP_GAP`] (or the interval, if
    /// shorter), so that a deadline the backend's sweep does not act on cannot make it spin.
    ///
    /// It also notifies the listeners of [`ADMIN_KEY`] when the set of clients changes.
    pub async fn sweeper(self) {
        let watch = self.clone().watch_clients();
        futures_lite::future::zip(self.sweep_loop(), watch).await;
    }

    /// Publishes the hub's counts to [`ADMIN_KEY`] when its set of clients changed since the
    /// last time, checking every [`Config::admin_watch`] while the key has a listener.
    async fn watch_clients(self) {
        let mut last = None;
        while !self.is_shutting_down() {
            self.inner
                .runtime
                .sleep(self.inner.config.admin_watch)
                .await;
            if !self.inner.hub.has_key(&ADMIN_KEY) {
                last = None;
                continue;
            }
            let s = self.inner.hub.stats();
            let seen = (
                s.clients,
                s.attached,
                s.issued,
                s.removed,
                s.swept,
                s.replaced,
                s.subscriptions,
            );
            if last == Some(seen) {
                continue;
            }
            last = Some(seen);
            let data = json!({
                "clients": s.clients,
                "attached": s.attached,
                "keys": s.keys,
                "subscriptions": s.subscriptions,
                "issued": s.issued,
                "removed": s.removed,
                "swept": s.swept,
                "published": s.published,
            });
            let to = Recipients::Key(ADMIN_KEY);
            let sent = self
                .inner
                .backend
                .publish(to, Some(ADMIN_KEY), data.to_string());
            if let Err(err) = sent.await {
                tracing::warn!(%err, "could not notify the admin key");
            }
        }
    }

    async fn sweep_loop(&self) {
        while !self.is_shutting_down() {
            let interval = self.inner.config.sweep_interval;
            let wait = self.inner.hub.poll_timeout().map_or(interval, |due| {
                due.saturating_duration_since(self.inner.runtime.now())
                    .clamp(MIN_SWEEP_GAP.min(interval), interval)
            });
            self.inner.runtime.sleep(wait).await;
            let started = self.inner.runtime.now();
            let swept = self.inner.backend.sweep().await;
            let elapsed = self.inner.runtime.now().saturating_duration_since(started);
            metrics::observe(&self.inner.telemetry.sweep, elapsed);
            match swept {
                Ok(0) => {}
                Ok(removed) => tracing::info!(removed, ms = elapsed.as_millis(), "stale sweep"),
                Err(err) => tracing::warn!(%err, "stale sweep failed"),
            }
        }
    }

    /// Starts shutting down: new streams are refused with 503 and every open stream ends
    /// cleanly (its body finishes), so that connections can close gracefully.
    pub async fn shutdown(&self) {
        self.inner.telemetry.closing.store(true, Ordering::Release);
        let mut clear = self.inner.hub.clear();
        sse_registry::drive(&mut clear, DEFAULT_SLICE).await;
        tracing::info!(closed = clear.removed(), "sse service shut down");
    }

    /// Whether [`shutdown`](Self::shutdown) has been called.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.telemetry.is_closing()
    }

    /// Answers one request. Requests outside the prefix get 404, so a router can try this
    /// service first or mount it under the prefix.
    pub async fn handle<B>(&self, req: Request<B>) -> Res
    where
        B: http_body::Body,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        use tracing::Instrument as _;
        let started = self.inner.runtime.now();
        let (parts, body) = req.into_parts();
        // The route, parsed once: `None` outside the prefix.
        let prefix = self.inner.config.prefix.as_str();
        let parsed =
            (parts.uri.path().strip_prefix(prefix)).map(|path| Route::parse(&parts.method, path));
        // A span per request, named by its route, never its path (which may hold a client id).
        let route = route_name(parsed.as_ref());
        let span = tracing::info_span!("request", method = %parts.method, route);
        let mut res = self
            .route(&parts, parsed, body)
            .instrument(span.clone())
            .await
            .unwrap_or_else(Reject::into_response);
        cors::apply(
            &self.inner.config,
            parts.headers.get(header::ORIGIN),
            &mut res,
        );
        let status = res.status().as_u16();
        self.inner.telemetry.answered(route, status);
        let elapsed = self.inner.runtime.now().saturating_duration_since(started);
        span.in_scope(|| tracing::info!(status, us = elapsed.as_micros(), "answered"));
        res
    }

    async fn route<B>(
        &self,
        head: &Parts,
        parsed: Option<Result<Route<'_>, RouteError>>,
        body: B,
    ) -> Result<Res, Reject>
    where
        B: http_body::Body,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let config = &self.inner.config;
        let Some(route) = parsed else {
            return Err(Reject::not_found());
        };
        let route = route?;
        if route == Route::Issue {
            // Before anything else costs (the application's `identify` may check a signature).
            if let Some(peers) = &self.inner.peers {
                peers.issue(self.peer(head), self.inner.runtime.now())?;
            }
        }
        let identity = match &config.access {
            Some(access) => Some(
                access
                    .identify(head, &route)
                    .map_err(|r| Reject::new(r.status, r.reason))?,
            ),
            None => None,
        };
        if route.is_admin() && !identity.as_ref().is_some_and(|who| who.admin) {
            admin::authorize(config, &head.headers)?;
        }
        let caller = Caller { head, identity };
        if let Some(id) = route.client() {
            self.owns(&caller, id).await?;
        }
        let hub = &self.inner.hub;
        let backend = &*self.inner.backend;
        let refused = |err: BackendError| Reject::backend(err, hub.config());
        match route {
            Route::Preflight { allow } => cors::preflight(config, &head.headers, allow),
            Route::ClientJs => {
                let mut res = Response::new(Body::full(Bytes::from_static(CLIENT_JS.as_bytes())));
                let headers = res.headers_mut();
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/javascript; charset=utf-8"),
                );
                headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
                Ok(res)
            }
            Route::Issue => self.issue(&caller).await,
            Route::List => admin::list(config, hub, head.uri.query().unwrap_or("")),
            Route::Clear => {
                backend.clear().await.map_err(refused)?;
                Ok(empty(StatusCode::NO_CONTENT))
            }
            Route::Remove(id) => {
                self.known(id).await?;
                backend.remove(id).await.map_err(refused)?;
                tracing::debug!(client = %id.tag(), "client removed");
                Ok(empty(StatusCode::NO_CONTENT))
            }
            Route::Events(id) => {
                // An id the hub cannot resume from is answered with a reset; one that is not
                // even text (no `EventSource` sends that) is refused.
                let last_event_id = match head
                    .headers
                    .get("last-event-id")
                    .map(|v| std::str::from_utf8(v.as_bytes()))
                {
                    None => None,
                    Some(Ok(v)) => Some(v),
                    Some(Err(_)) => return Err(Reject::bad_request("Last-Event-ID must be UTF-8")),
                };
                self.events(&caller, id, last_event_id).await
            }
            Route::EventsHead(id) => {
                // The stream's headers, without opening it (which would replace a live one).
                self.known(id).await?;
                let mut res = Response::new(Body::empty());
                stream_headers(res.headers_mut());
                Ok(res)
            }
            Route::Listen(id, key) | Route::Unlisten(id, key) => {
                let key = self.key(key)?;
                self.known(id).await?;
                if matches!(route, Route::Listen(..)) {
                    if key == ADMIN_KEY && !caller.identity.as_ref().is_some_and(|who| who.admin) {
                        admin::authorize(config, &head.headers)?;
                    }
                    self.may_listen(&caller, &key)?;
                    backend.subscribe(id, key).await.map_err(refused)?;
                } else {
                    backend.unsubscribe(id, key).await.map_err(refused)?;
                }
                Ok(empty(StatusCode::NO_CONTENT))
            }
            Route::Task(id, task) => self.task(&caller, id, task).await,
            Route::Notify(key) => {
                let key = self.key(key)?;
                self.publish(head, body, Recipients::Key(key.clone()), Some(key))
                    .await
            }
            Route::Broadcast => {
                self.publish(head, body, Recipients::All, Some(MESSAGE))
                    .await
            }
            Route::Stats => Ok(admin::stats(hub, self.inner.tasks.running(), backend)),
            Route::Metrics => {
                let mut res = crate::reply::text(StatusCode::OK, &self.inner.telemetry.encode());
                res.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(metrics::CONTENT_TYPE),
                );
                res.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                Ok(res)
            }
            Route::Sweep => {
                let removed = backend.sweep().await.map_err(refused)?;
                Ok(json(StatusCode::OK, &json!({ "removed": removed })))
            }
        }
    }

    async fn issue(&self, caller: &Caller<'_>) -> Result<Res, Reject> {
        if self.is_shutting_down() {
            return Err(Reject::unavailable("shutting down"));
        }
        let query = caller.head.uri.query().unwrap_or("");
        let mut name = None;
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if k == "name" {
                // Strictly: a name whose bytes are not UTF-8 is refused, not mended.
                let plus = v.replace('+', " ");
                let decoded = percent_encoding::percent_decode_str(&plus)
                    .decode_utf8()
                    .map_err(|_| Reject::bad_request("name must be UTF-8"))?;
                name = Some(decoded.into_owned());
            }
        }
        if let Some(who) = &caller.identity {
            // The application says whose client this is; a name asked for must be that one.
            if name.as_ref().is_some_and(|n| Some(n) != who.user.as_ref()) {
                return Err(Reject::forbidden(
                    "the name of a client is the signed-in user's",
                ));
            }
            name.clone_from(&who.user);
        }
        if let Some(name) = &name {
            let max = self.inner.config.max_name_len;
            if name.is_empty() || name.len() > max {
                return Err(Reject::bad_request(format!(
                    "name must be 1 to {max} bytes"
                )));
            }
            if name.chars().any(char::is_control) {
                return Err(Reject::bad_request(
                    "name must not contain control characters",
                ));
            }
        }
        let id = self
            .inner
            .backend
            .issue(name)
            .await
            .map_err(|err| Reject::backend(err, self.inner.hub.config()))?;
        tracing::debug!(client = %id.tag(), "client issued");
        let mut res = crate::reply::text(StatusCode::CREATED, &id.to_string());
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Ok(res)
    }

    /// The key of the request's peer for the per-peer limits.
    fn peer(&self, head: &Parts) -> PeerKey {
        let peer = head.extensions.get::<PeerAddr>().map(|p| p.0);
        PeerKey::of(peer, &head.headers, &self.inner.config.trusted_proxies)
    }

    /// With an identity, that the client `id` is its user's (or nameless): `403` otherwise.
    async fn owns(&self, caller: &Caller<'_>, id: ClientId) -> Result<(), Reject> {
        let Some(who) = &caller.identity else {
            return Ok(());
        };
        self.known(id).await?;
        let name = self
            .inner
            .hub
            .name(id)
            .map_err(|_| Reject::unknown_client())?;
        match name {
            Some(name) if who.user.as_deref() != Some(&*name) => {
                Err(Reject::forbidden("this client is another user's"))
            }
            _ => Ok(()),
        }
    }

    /// Whether `id` may subscribe to `key`: the application's say, then the global caps.
    fn may_listen(&self, caller: &Caller<'_>, key: &EventName) -> Result<(), Reject> {
        let config = &self.inner.config;
        if let (Some(access), Some(who)) = (&config.access, &caller.identity) {
            if !access.may_listen(who, key) {
                return Err(Reject::forbidden("not allowed to listen to this key"));
            }
        }
        let hub = &self.inner.hub;
        let stats = hub.stats();
        if stats.subscriptions >= config.max_subscriptions {
            return Err(Reject::unavailable("too many subscriptions on this server"));
        }
        if stats.keys >= config.max_keys && !hub.has_key(key) {
            return Err(Reject::unavailable("too many distinct keys on this server"));
        }
        Ok(())
    }

    /// Makes sure the hub knows `id`, asking the backend when it does not (see
    /// [`Backend::lookup`]): `404` if neither knows it, `503` if the backend cannot tell.
    async fn known(&self, id: ClientId) -> Result<(), Reject> {
        if self.inner.hub.contains(id) {
            return Ok(());
        }
        match self.inner.backend.lookup(id).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Reject::unknown_client()),
            Err(err) => Err(Reject::backend(err, self.inner.hub.config())),
        }
    }

    async fn events(
        &self,
        caller: &Caller<'_>,
        id: ClientId,
        last_event_id: Option<&str>,
    ) -> Result<Res, Reject> {
        if self.is_shutting_down() {
            return Err(Reject::unavailable("shutting down"));
        }
        self.known(id).await?;
        let runtime = &self.inner.runtime;
        let slot = match &self.inner.peers {
            Some(peers) => Some(peers.open_stream(self.peer(caller.head), runtime.now())?),
            None => None,
        };
        if let Err(err) = self.inner.backend.attach(id).await {
            tracing::warn!(%err, "stream opened without ending the client's other streams");
        }
        let stream = self
            .inner
            .hub
            .attach(id, last_event_id, runtime.now())
            .map_err(|_| Reject::unknown_client())?;
        tracing::info!(client = %id.tag(), resume = stream.resumes_after(), "stream opened");
        let start = EventId::new(stream.resumes_after().to_string())
            .unwrap_or_else(|_| EventId::from_static(""));
        let retry = u64::try_from(self.inner.config.retry.as_millis()).unwrap_or(u64::MAX);
        let client = id.to_string();
        let greeting = Frame::new()
            .retry(retry)
            .event(&REGISTERED)
            .id(&start)
            .data(&client)
            .encode();
        let body = Body::events(
            greeting,
            stream,
            runtime.clone(),
            self.inner.config.keep_alive,
            slot,
            self.inner.telemetry.clone(),
        );
        let mut res = Response::new(body);
        stream_headers(res.headers_mut());
        Ok(res)
    }

    async fn task(&self, caller: &Caller<'_>, id: ClientId, task_id: &str) -> Result<Res, Reject> {
        self.token(task_id, "task id")?;
        self.known(id).await?;
        if let (Some(access), Some(who)) = (&self.inner.config.access, &caller.identity) {
            if !access.may_submit(who, task_id) {
                return Err(Reject::forbidden("not allowed to submit this task"));
            }
        }
        let name = self
            .inner
            .hub
            .name(id)
            .map_err(|_| Reject::unknown_client())?;
        let to = match name {
            Some(name) => Recipients::Name(name.to_string()),
            None => Recipients::Client(id),
        };
        let inner = &self.inner;
        inner.tasks.start(
            id,
            task_id,
            to,
            inner.backend.clone(),
            inner.runtime.clone(),
        )?;
        Ok(empty(StatusCode::ACCEPTED))
    }

    /// Publishes the request's body as `event` to `to`. Answered as soon as the event is
    /// published: waking its recipients (a slice at a time, in publish order) goes on in the
    /// backend's wake task, so the admin's request does not queue behind every stream it wakes.
    ///
    /// With an `Idempotency-Key`, a repeat of the key (for the same route and target) within
    /// [`Config::idempotency_ttl`] publishes nothing and is answered `{"replayed": true}`, with
    /// the header [`IDEMPOTENT_REPLAYED`].
    async fn publish<B>(
        &self,
        head: &Parts,
        body: B,
        to: Recipients,
        event: Option<EventName>,
    ) -> Result<Res, Reject>
    where
        B: http_body::Body,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let config = &self.inner.config;
        // Checked before the body is read: a bad key costs nothing.
        let once = match head.headers.get(IDEMPOTENCY_KEY) {
            None => None,
            Some(value) => {
                let key = IdempotencyKey::new(&to, value.as_bytes())
                    .map_err(|err| Reject::bad_request(err.to_string()))?;
                Some(Once::new(
                    key,
                    config.idempotency_ttl,
                    config.idempotency_capacity,
                ))
            }
        };
        let max = config.max_body;
        let body = match Limited::new(body, max).collect().await {
            Ok(body) => body.to_bytes(),
            Err(err) if err.is::<http_body_util::LengthLimitError>() => {
                let reason = format!("body larger than {max} bytes");
                return Err(Reject::new(StatusCode::PAYLOAD_TOO_LARGE, reason));
            }
            Err(_) => return Err(Reject::bad_request("could not read the body")),
        };
        let data =
            std::str::from_utf8(&body).map_err(|_| Reject::bad_request("body must be UTF-8"))?;
        let backend = &self.inner.backend;
        let refused = |err| Reject::backend(err, self.inner.hub.config());
        let published = match once {
            None => Published::Delivered(
                backend
                    .publish(to, event, data.to_owned())
                    .await
                    .map_err(refused)?,
            ),
            Some(once) => backend
                .publish_once(once, to, event, data.to_owned())
                .await
                .map_err(refused)?,
        };
        match published {
            Published::Delivered(delivered) => Ok(json(
                StatusCode::ACCEPTED,
                &json!({ "delivered": delivered }),
            )),
            Published::Replayed => {
                tracing::debug!("publish replayed (idempotency key seen)");
                let mut res = json(StatusCode::ACCEPTED, &json!({ "replayed": true }));
                res.headers_mut()
                    .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
                Ok(res)
            }
        }
    }

    /// A key from a path segment: a token of at most `max_key_len` bytes, not reserved.
    fn key(&self, key: &str) -> Result<EventName, Reject> {
        self.token(key, "key")?;
        if RESERVED.contains(&key) {
            return Err(Reject::bad_request(
                "this key is an event name the protocol uses",
            ));
        }
        EventName::new(key).map_err(|_| Reject::bad_request("invalid key"))
    }

    fn token(&self, value: &str, what: &str) -> Result<(), Reject> {
        let max = self.inner.config.max_key_len;
        if value.is_empty() || value.len() > max {
            return Err(Reject::bad_request(format!(
                "{what} must be 1 to {max} bytes"
            )));
        }
        if !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:~".contains(&b))
        {
            return Err(Reject::bad_request(format!(
                "{what} may contain only ASCII letters, digits and - _ . : ~"
            )));
        }
        Ok(())
    }
}

/// The name of a request's route for logs and metrics, from what [`Route::parse`] made of its
/// path (`None`: outside the prefix).
fn route_name(parsed: Option<&Result<Route<'_>, RouteError>>) -> &'static str {
    match parsed {
        None => "outside",
        Some(Ok(route)) => route.name(),
        Some(Err(RouteError::NotFound)) => "not_found",
        Some(Err(RouteError::MethodNotAllowed { .. })) => "method_not_allowed",
        Some(Err(_)) => "malformed_id",
    }
}

impl<B> hyper::service::Service<Request<B>> for Sse
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    type Response = Res;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Res, Self::Error>> + Send>>;

    fn call(&self, req: Request<B>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.handle(req).await) })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use hyper::rt::{Sleep, Timer};
    use hyper_util::rt::TokioTimer;

    use super::*;

    /// Tokio's runtime with its clock: paused in a test, it moves only when every task waits.
    struct PausedClock(TokioTimer);

    impl Runtime for PausedClock {
        fn spawn(&self, future: crate::BoxFuture) {
            tokio::spawn(future);
        }

        fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
            self.0.sleep(duration)
        }

        fn reset(&self, sleep: &mut Pin<Box<dyn Sleep>>, deadline: Instant) {
            self.0.reset(sleep, deadline);
        }

        fn now(&self) -> Instant {
            tokio::time::Instant::now().into_std()
        }
    }

    /// A client past its grace is swept at its deadline, not an hour-long interval later.
    #[tokio::test(start_paused = true)]
    async fn the_sweeper_wakes_for_the_next_deadline() {
        let mut config = Config {
            sweep_interval: Duration::from_secs(3600),
            ..Config::default()
        };
        config.registry.grace = Duration::from_secs(5);
        let rt = Arc::new(PausedClock(TokioTimer::new()));
        let sse = Sse::new(config, rt.clone(), |_task: crate::Task| async {});
        let hub = sse.hub().clone();
        let id = hub.issue(None, rt.now()).unwrap();
        hub.attach(id, None, rt.now()).unwrap().close(rt.now());
        let closed = rt.now();
        tokio::spawn(sse.clone().sweeper());
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert!(hub.contains(id), "within its grace");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(!hub.contains(id), "swept at its deadline");
        assert!(rt.now() - closed < Duration::from_secs(7));
        assert_eq!(hub.stats().swept, 1);
        sse.shutdown().await;
    }
}
