//! The protocol: routes, validation, admin auth, CORS, and the task runner.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use serde_json::json;
use sse_codec::{EventId, EventName, Frame};
use sse_registry::{ClientId, DEFAULT_SLICE, Error as HubError, Hub, Target};
use subtle::ConstantTimeEq;

use crate::backend::{Backend, BackendError, Recipients};
use crate::body::Body;
use crate::config::Config;
use crate::runtime::{BoxFuture, Runtime};

/// The first event of every stream: its data is the client's id.
pub const REGISTERED: EventName = EventName::from_static("registered");
/// A task's progress reports.
pub const PROGRESS: EventName = EventName::from_static("progress");
/// A task's completion.
pub const COMPLETED: EventName = EventName::from_static("completed");
/// The event type of admin broadcasts.
pub const MESSAGE: EventName = EventName::from_static("message");

/// The browser client module, served at `{prefix}client.js`: an ES module exporting
/// `SseClient` (see its source for the API).
pub const CLIENT_JS: &str = include_str!("client.js");

/// Event names the protocol itself uses, which therefore cannot be keys.
pub const RESERVED: [&str; 5] = ["registered", "completed", "progress", "reset", "message"];

/// The application's side of a task: given the task, does the work, may report progress.
///
/// Implemented for every `Fn(Task) -> impl Future<Output = ()>`. When the future completes,
/// every live connection of the client's name (or the client alone, without a name) gets a
/// `completed` event.
pub trait TaskHandler: Send + Sync + 'static {
    /// Starts the task.
    fn run(&self, task: Task) -> BoxFuture;
}

impl<F, Fut> TaskHandler for F
where
    F: Fn(Task) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    fn run(&self, task: Task) -> BoxFuture {
        Box::pin(self(task))
    }
}

/// A running task, as given to the [`TaskHandler`].
pub struct Task {
    client: ClientId,
    task_id: String,
    name: Option<String>,
    hub: Hub,
    backend: Option<Arc<dyn Backend>>,
    runtime: Arc<dyn Runtime>,
}

impl Task {
    /// The client that submitted the task.
    pub fn client(&self) -> ClientId {
        self.client
    }

    /// The task id the client chose.
    pub fn id(&self) -> &str {
        &self.task_id
    }

    /// Sends `event: progress` with `data` to the client's name (or the client alone).
    pub async fn progress(&self, data: &str) {
        self.send(&PROGRESS, data).await;
    }

    /// Sends to the task's recipients, through the backend if there is one.
    async fn send(&self, event: &EventName, data: &str) {
        match &self.backend {
            None => {
                self.hub.send(self.target(), Some(event), data).await;
            }
            Some(backend) => {
                let to = match &self.name {
                    Some(name) => Recipients::Name(name.clone()),
                    None => Recipients::Client(self.client),
                };
                let sent = backend.publish(to, Some(event.clone()), data.to_owned());
                if let Err(err) = sent.await {
                    tracing::warn!(%err, task = %self.task_id, event = event.as_str(), "task event not published");
                }
            }
        }
    }

    /// Waits for `duration` on the server's runtime, whatever that runtime is.
    pub async fn sleep(&self, duration: Duration) {
        self.runtime.sleep(duration).await;
    }

    fn target(&self) -> Target<'_> {
        match &self.name {
            Some(name) => Target::Name(name),
            None => Target::Client(self.client),
        }
    }
}

impl fmt::Debug for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("client", &self.client)
            .field("id", &self.task_id)
            .finish_non_exhaustive()
    }
}

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
    backend: Option<Arc<dyn Backend>>,
    runtime: Arc<dyn Runtime>,
    tasks: Arc<dyn TaskHandler>,
    running_tasks: Arc<AtomicUsize>,
    tasks_by_client: TasksByClient,
    shutting_down: AtomicBool,
}

impl fmt::Debug for Sse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sse")
            .field("config", &self.inner.config)
            .field("hub", &self.inner.hub)
            .finish_non_exhaustive()
    }
}

type Res = Response<Body>;

impl Sse {
    /// A service on a new in-memory hub. `tasks` runs the tasks clients submit.
    pub fn new(config: Config, runtime: impl Runtime, tasks: impl TaskHandler) -> Self {
        let hub = Hub::new(config.registry.clone());
        Self::with_hub(config, hub, runtime, tasks)
    }

    /// A service on an existing hub (to share it, or publish to it from elsewhere).
    pub fn with_hub(
        config: Config,
        hub: Hub,
        runtime: impl Runtime,
        tasks: impl TaskHandler,
    ) -> Self {
        Self::build(config, hub, None, Arc::new(runtime), tasks)
    }

    /// A service on `hub` that shares what changes it (ids, subscriptions, removals, every
    /// published event) through `backend`, so that several services act as one hub (see
    /// [`Backend`]). Requests the backend cannot serve (its store unreachable, say) are
    /// answered `503`.
    pub fn with_backend(
        config: Config,
        hub: Hub,
        backend: Arc<dyn Backend>,
        runtime: Arc<dyn Runtime>,
        tasks: impl TaskHandler,
    ) -> Self {
        Self::build(config, hub, Some(backend), runtime, tasks)
    }

    fn build(
        config: Config,
        hub: Hub,
        backend: Option<Arc<dyn Backend>>,
        runtime: Arc<dyn Runtime>,
        tasks: impl TaskHandler,
    ) -> Self {
        let mut config = config;
        if !config.prefix.starts_with('/') {
            config.prefix.insert(0, '/');
        }
        if !config.prefix.ends_with('/') {
            config.prefix.push('/');
        }
        Self {
            inner: Arc::new(Inner {
                config,
                hub,
                backend,
                runtime,
                tasks: Arc::new(tasks),
                running_tasks: Arc::new(AtomicUsize::new(0)),
                tasks_by_client: TasksByClient::default(),
                shutting_down: AtomicBool::new(false),
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
    pub async fn sweeper(self) {
        while !self.inner.shutting_down.load(Ordering::Acquire) {
            self.inner
                .runtime
                .sleep(self.inner.config.sweep_interval)
                .await;
            match self.sweep().await {
                Ok(0) => {}
                Ok(removed) => tracing::debug!(removed, "stale sweep"),
                Err(err) => tracing::warn!(%err, "stale sweep failed"),
            }
        }
    }

    /// Starts shutting down: new streams are refused with 503 and every open stream ends
    /// cleanly (its body finishes), so that connections can close gracefully.
    pub async fn shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::Release);
        let mut clear = self.inner.hub.clear();
        sse_registry::drive(&mut clear, DEFAULT_SLICE).await;
        tracing::info!(closed = clear.removed(), "sse service shut down");
    }

    /// A stale sweep, through the backend if there is one.
    async fn sweep(&self) -> Result<usize, BackendError> {
        match &self.inner.backend {
            Some(backend) => backend.sweep().await,
            None => {
                let mut sweep = self.inner.hub.sweep(Instant::now());
                sse_registry::drive(&mut sweep, DEFAULT_SLICE).await;
                Ok(sweep.removed())
            }
        }
    }

    /// Whether [`shutdown`](Self::shutdown) has been called.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::Acquire)
    }

    /// Answers one request. Requests outside the prefix get 404, so a router can try this
    /// service first or mount it under the prefix.
    pub async fn handle<B>(&self, req: Request<B>) -> Res
    where
        B: http_body::Body,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let origin = req.headers().get(header::ORIGIN).cloned();
        let mut res = self.route(req).await.unwrap_or_else(Reject::into_response);
        self.cors(origin.as_ref(), &mut res);
        res
    }

    async fn route<B>(&self, req: Request<B>) -> Result<Res, Reject>
    where
        B: http_body::Body,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let Some(path) = req
            .uri()
            .path()
            .strip_prefix(self.inner.config.prefix.as_str())
        else {
            return Err(Reject::not_found());
        };
        let segments: Vec<&str> = path.split('/').collect();
        let method = req.method().clone();
        if method == Method::OPTIONS {
            return self.preflight(&req);
        }
        let hub = &self.inner.hub;
        match (segments.as_slice(), &method) {
            (["client.js"], &Method::GET | &Method::HEAD) => {
                let mut res = Response::new(Body::full(Bytes::from_static(CLIENT_JS.as_bytes())));
                let headers = res.headers_mut();
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/javascript; charset=utf-8"),
                );
                headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
                Ok(res)
            }
            (["clients"], &Method::POST) => {
                let query = req.uri().query().unwrap_or("").to_owned();
                self.issue(&query).await
            }
            (["clients"], &Method::GET) => {
                self.authorize(&req)?;
                self.list(&req)
            }
            (["clients"], &Method::DELETE) => {
                self.authorize(&req)?;
                match &self.inner.backend {
                    Some(backend) => backend.clear().await.map_err(Reject::backend)?,
                    None => {
                        let mut clear = hub.clear();
                        sse_registry::drive(&mut clear, DEFAULT_SLICE).await;
                    }
                }
                Ok(empty(StatusCode::NO_CONTENT))
            }
            (["clients", id], &Method::DELETE) => {
                let id = parse_id(id)?;
                match &self.inner.backend {
                    Some(backend) => {
                        self.known(id).await?;
                        backend.remove(id).await.map_err(Reject::backend)?;
                    }
                    None => hub.remove(id).map_err(|_| Reject::unknown_client())?,
                }
                tracing::debug!(client = %id, "client removed");
                Ok(empty(StatusCode::NO_CONTENT))
            }
            (["events", id], &Method::GET) => {
                let last_event_id = match req.headers().get("last-event-id").map(|v| v.to_str()) {
                    None => None,
                    Some(Ok(v)) => Some(v.to_owned()),
                    // Not ours: the hub answers an unresumable id with a reset.
                    Some(Err(_)) => Some("invalid".to_owned()),
                };
                self.events(id, last_event_id.as_deref()).await
            }
            (["events", id], &Method::HEAD) => {
                // The stream's headers, without opening it (which would replace a live one).
                let id = parse_id(id)?;
                self.known(id).await?;
                if !hub.contains(id) {
                    return Err(Reject::unknown_client());
                }
                let mut res = Response::new(Body::empty());
                stream_headers(res.headers_mut());
                Ok(res)
            }
            (["listen", id, key], &Method::PUT | &Method::DELETE) => {
                self.listen(&method, id, key).await
            }
            (["tasks", id, task], &Method::PUT) => self.task(id, task).await,
            (["notify", key], &Method::POST) => {
                self.authorize(&req)?;
                let key = self.key(key)?;
                self.publish(req, Target::Key(&key), Some(&key)).await
            }
            (["broadcast"], &Method::POST) => {
                self.authorize(&req)?;
                self.publish(req, Target::All, Some(&MESSAGE)).await
            }
            (["stats"], &Method::GET) => {
                self.authorize(&req)?;
                Ok(self.stats())
            }
            (["sweep"], &Method::POST) => {
                self.authorize(&req)?;
                let removed = self.sweep().await.map_err(Reject::backend)?;
                Ok(json_response(
                    StatusCode::OK,
                    &json!({ "removed": removed }),
                ))
            }
            (route, _) => {
                let allow = match route {
                    ["client.js"] => "GET, HEAD, OPTIONS",
                    ["clients"] => "GET, POST, DELETE, OPTIONS",
                    ["clients", _] => "DELETE, OPTIONS",
                    ["events", _] => "GET, HEAD, OPTIONS",
                    ["listen", _, _] => "PUT, DELETE, OPTIONS",
                    ["tasks", _, _] => "PUT, OPTIONS",
                    ["broadcast"] | ["sweep"] | ["notify", _] => "POST, OPTIONS",
                    ["stats"] => "GET, OPTIONS",
                    _ => return Err(Reject::not_found()),
                };
                let mut res = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
                res.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(allow));
                Ok(res)
            }
        }
    }

    async fn issue(&self, query: &str) -> Result<Res, Reject> {
        if self.is_shutting_down() {
            return Err(Reject::unavailable("shutting down"));
        }
        let mut name = None;
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            if k == "name" {
                name = Some(v.into_owned());
            }
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
        let issued = match &self.inner.backend {
            Some(backend) => match self.inner.hub.has_room(name.as_deref()) {
                // Checked against this node's replica, which every node shares.
                Ok(()) => Ok(backend.issue(name).await.map_err(Reject::backend)?),
                Err(err) => Err(err),
            },
            None => self.inner.hub.issue(name.as_deref(), Instant::now()),
        };
        match issued {
            Ok(id) => {
                tracing::debug!(client = %id, "client issued");
                let mut res = text(StatusCode::CREATED, &id.to_string());
                res.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                Ok(res)
            }
            Err(HubError::Full) => Err(Reject::unavailable("too many clients")),
            Err(HubError::NameFull) => Err(Reject::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "at most {} clients with one name",
                    self.inner.hub.config().max_name_members
                ),
            )),
            Err(_) => Err(Reject::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "could not issue an id",
            )),
        }
    }

    /// With a backend, makes sure the hub knows `id`, asking the backend when it does not (see
    /// [`Backend::lookup`]): `404` if neither knows it, `503` if the backend cannot tell.
    /// Without one, the hub's own answer stands, so this lets everything through.
    async fn known(&self, id: ClientId) -> Result<(), Reject> {
        let Some(backend) = &self.inner.backend else {
            return Ok(());
        };
        if self.inner.hub.contains(id) {
            return Ok(());
        }
        match backend.lookup(id).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Reject::unknown_client()),
            Err(err) => Err(Reject::backend(err)),
        }
    }

    async fn events(&self, id: &str, last_event_id: Option<&str>) -> Result<Res, Reject> {
        let id = parse_id(id)?;
        if self.is_shutting_down() {
            return Err(Reject::unavailable("shutting down"));
        }
        if let Some(backend) = &self.inner.backend {
            self.known(id).await?;
            if let Err(err) = backend.attach(id).await {
                tracing::warn!(%err, "stream opened without ending the client's other streams");
            }
        }
        let stream = self
            .inner
            .hub
            .attach(id, last_event_id, Instant::now())
            .map_err(|_| Reject::unknown_client())?;
        tracing::debug!(client = %id, resume = stream.resumes_after(), "stream opened");
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
        let runtime = self.inner.runtime.clone();
        let body = Body::events(greeting, stream, runtime, self.inner.config.keep_alive);
        let mut res = Response::new(body);
        stream_headers(res.headers_mut());
        Ok(res)
    }

    async fn listen(&self, method: &Method, id: &str, key: &str) -> Result<Res, Reject> {
        let id = parse_id(id)?;
        let key = self.key(key)?;
        let hub = &self.inner.hub;
        let result = if let Some(backend) = &self.inner.backend {
            self.known(id).await?;
            // Checked here, applied on every node by the backend.
            let keys = hub.keys(id).map_err(|_| Reject::unknown_client())?;
            let subscribed = keys.iter().any(|k| **k == *key.as_str());
            if method == Method::PUT {
                if !subscribed && keys.len() >= hub.config().max_keys_per_client {
                    Err(HubError::TooManyKeys)
                } else {
                    backend.subscribe(id, key).await.map_err(Reject::backend)?;
                    Ok(true)
                }
            } else {
                backend
                    .unsubscribe(id, key)
                    .await
                    .map_err(Reject::backend)?;
                Ok(true)
            }
        } else if method == Method::PUT {
            hub.subscribe(id, &key)
        } else {
            hub.unsubscribe(id, &key)
        };
        match result {
            Ok(_) => Ok(empty(StatusCode::NO_CONTENT)),
            Err(HubError::TooManyKeys) => Err(Reject::bad_request(format!(
                "at most {} keys per client",
                hub.config().max_keys_per_client
            ))),
            Err(_) => Err(Reject::unknown_client()),
        }
    }

    async fn task(&self, id: &str, task_id: &str) -> Result<Res, Reject> {
        let id = parse_id(id)?;
        self.token(task_id, "task id")?;
        self.known(id).await?;
        let hub = &self.inner.hub;
        let name = hub.name(id).map_err(|_| Reject::unknown_client())?;
        let per_client = self.inner.config.max_tasks_per_client;
        {
            let mut mine = lock(&self.inner.tasks_by_client);
            let count = mine.entry(id).or_insert(0);
            if *count >= per_client {
                return Err(Reject::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!("at most {per_client} tasks per client at once"),
                ));
            }
            *count += 1;
        }
        // From here on, dropping `slot` gives the client's slot back, whatever happens.
        let slot = ClientTaskSlot {
            by_client: self.inner.tasks_by_client.clone(),
            client: id,
        };
        let running = &self.inner.running_tasks;
        if running.fetch_add(1, Ordering::AcqRel) >= self.inner.config.max_tasks {
            running.fetch_sub(1, Ordering::AcqRel);
            return Err(Reject::unavailable("too many tasks running"));
        }
        let task = Task {
            client: id,
            task_id: task_id.to_owned(),
            name: name.map(|n| n.to_string()),
            hub: hub.clone(),
            backend: self.inner.backend.clone(),
            runtime: self.inner.runtime.clone(),
        };
        let work = self.inner.tasks.run(task.clone_handle());
        let running = running.clone();
        self.inner.runtime.spawn(Box::pin(async move {
            // Counts the task as done even if `work` panics and unwinds this future.
            let _done = (Decrement(running), slot);
            work.await;
            let timestamp = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            let data = json!({
                "id": task.client.to_string(),
                "taskid": task.task_id,
                "timestamp": timestamp,
            });
            task.send(&COMPLETED, &data.to_string()).await;
        }));
        Ok(empty(StatusCode::ACCEPTED))
    }

    async fn publish<B>(
        &self,
        req: Request<B>,
        target: Target<'_>,
        event: Option<&EventName>,
    ) -> Result<Res, Reject>
    where
        B: http_body::Body,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let max = self.inner.config.max_body;
        let body = match Limited::new(req.into_body(), max).collect().await {
            Ok(body) => body.to_bytes(),
            Err(err) if err.is::<http_body_util::LengthLimitError>() => {
                let reason = format!("body larger than {max} bytes");
                return Err(Reject::new(StatusCode::PAYLOAD_TOO_LARGE, reason));
            }
            Err(_) => return Err(Reject::bad_request("could not read the body")),
        };
        let data =
            std::str::from_utf8(&body).map_err(|_| Reject::bad_request("body must be UTF-8"))?;
        // Answer as soon as the event is published; waking its recipients (a slice at a time,
        // yielding between slices, in publish order) goes on in the hub's wake task, so the
        // admin's request does not queue behind every stream it wakes.
        if let Some(backend) = &self.inner.backend {
            let to = match target {
                Target::Client(id) => Recipients::Client(id),
                Target::Name(name) => Recipients::Name(name.to_owned()),
                Target::Key(key) => Recipients::Key(key.clone()),
                Target::All => Recipients::All,
            };
            let delivered = backend
                .publish(to, event.cloned(), data.to_owned())
                .await
                .map_err(Reject::backend)?;
            return Ok(json_response(
                StatusCode::ACCEPTED,
                &json!({ "delivered": delivered }),
            ));
        }
        let published = self.inner.hub.publish(target, event, data);
        let delivered = published.recipients;
        // In publish order, behind earlier events' wake-ups (`Hub::queue_wake`).
        let slice = self.inner.runtime.wake_slice();
        if let Some(task) = self.inner.hub.queue_wake(published.wake, slice) {
            self.inner.runtime.spawn(Box::pin(task));
        }
        Ok(json_response(
            StatusCode::ACCEPTED,
            &json!({ "delivered": delivered }),
        ))
    }

    fn list<B>(&self, req: &Request<B>) -> Result<Res, Reject> {
        let (mut offset, mut limit) = (0, self.inner.config.max_list);
        for (k, v) in form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
            let number = || {
                v.parse::<usize>()
                    .map_err(|_| Reject::bad_request("offset and limit must be numbers"))
            };
            match &*k {
                "offset" => offset = number()?,
                "limit" => limit = number()?.min(self.inner.config.max_list),
                // Other parameters are not ours to refuse.
                _ => {}
            }
        }
        if limit == 0 {
            return Err(Reject::bad_request("limit must be at least 1"));
        }
        let (clients, next) = self.inner.hub.list(offset, limit);
        let clients: Vec<_> = clients
            .iter()
            .map(|c| {
                json!({
                    "id": c.id.to_string(),
                    "name": c.name.as_deref(),
                    "keys": c.keys.iter().map(|k| &**k).collect::<Vec<_>>(),
                    "attached": c.attached,
                    "idle_ms": u64::try_from(c.idle.as_millis()).unwrap_or(u64::MAX),
                })
            })
            .collect();
        Ok(json_response(
            StatusCode::OK,
            &json!({ "clients": clients, "next": next }),
        ))
    }

    /// The admin `GET stats`: the hub's counts, tasks running, and what the backend reports.
    fn stats(&self) -> Res {
        let s = self.inner.hub.stats();
        json_response(
            StatusCode::OK,
            &json!({
                "clients": s.clients,
                "attached": s.attached,
                "keys": s.keys,
                "subscriptions": s.subscriptions,
                "queued": s.queued,
                "history": s.history,
                "seq": s.seq,
                "published": s.published,
                "lagged": s.lagged,
                "swept": s.swept,
                "tasks_running": self.inner.running_tasks.load(Ordering::Acquire),
                "backend": self.inner.backend.as_ref().and_then(|b| b.report()),
            }),
        )
    }

    fn authorize<B>(&self, req: &Request<B>) -> Result<(), Reject> {
        let Some(token) = &self.inner.config.admin_token else {
            return Err(Reject::new(
                StatusCode::FORBIDDEN,
                "admin routes are disabled (no admin token configured)",
            ));
        };
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| bearer(v.as_bytes()));
        match given {
            Some(given) if token_matches(given, token.as_bytes()) => Ok(()),
            _ => Err(Reject::new(
                StatusCode::UNAUTHORIZED,
                "admin token required",
            )),
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

    fn allowed_origin(&self, origin: &HeaderValue) -> bool {
        let origins = &self.inner.config.cors_origins;
        origins
            .iter()
            .any(|o| o == "*" || o.as_bytes() == origin.as_bytes())
    }

    fn cors(&self, origin: Option<&HeaderValue>, res: &mut Res) {
        if self.inner.config.cors_origins.is_empty() {
            return;
        }
        // The answer depends on the origin, allowed or not: caches must keep them apart.
        let headers = res.headers_mut();
        headers.append(header::VARY, HeaderValue::from_static("origin"));
        if let Some(origin) = origin.filter(|o| self.allowed_origin(o)) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            if self.credentials_allowed(origin) {
                headers.insert(
                    header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                    HeaderValue::from_static("true"),
                );
            }
        }
    }

    /// Credentials go only to origins listed by name (never through `*`).
    fn credentials_allowed(&self, origin: &HeaderValue) -> bool {
        let config = &self.inner.config;
        config.cors_credentials
            && config
                .cors_origins
                .iter()
                .any(|o| o.as_bytes() == origin.as_bytes())
    }

    fn preflight<B>(&self, req: &Request<B>) -> Result<Res, Reject> {
        match req.headers().get(header::ORIGIN) {
            Some(origin) if self.allowed_origin(origin) => {
                let mut res = empty(StatusCode::NO_CONTENT);
                let headers = res.headers_mut();
                headers.insert(
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static("GET, POST, PUT, DELETE, OPTIONS"),
                );
                headers.insert(
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    HeaderValue::from_static("authorization, content-type, last-event-id"),
                );
                headers.insert(
                    header::ACCESS_CONTROL_MAX_AGE,
                    HeaderValue::from_static("600"),
                );
                // (`handle` adds the origin, `Vary` and, if allowed, credentials.)
                Ok(res)
            }
            Some(_) => Err(Reject::new(StatusCode::FORBIDDEN, "origin not allowed")),
            None => {
                let mut res = empty(StatusCode::NO_CONTENT);
                res.headers_mut().insert(
                    header::ALLOW,
                    HeaderValue::from_static("GET, POST, PUT, DELETE, OPTIONS"),
                );
                Ok(res)
            }
        }
    }
}

impl Task {
    fn clone_handle(&self) -> Self {
        Self {
            client: self.client,
            task_id: self.task_id.clone(),
            name: self.name.clone(),
            hub: self.hub.clone(),
            backend: self.backend.clone(),
            runtime: self.runtime.clone(),
        }
    }
}

/// Tasks running per client, for [`Config::max_tasks_per_client`]; a client with none has no
/// entry, so the map holds at most `max_tasks` entries.
type TasksByClient = Arc<Mutex<HashMap<ClientId, usize>>>;

fn lock(map: &TasksByClient) -> std::sync::MutexGuard<'_, HashMap<ClientId, usize>> {
    map.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A client's task slot, given back on drop.
struct ClientTaskSlot {
    by_client: TasksByClient,
    client: ClientId,
}

impl Drop for ClientTaskSlot {
    fn drop(&mut self) {
        let mut map = lock(&self.by_client);
        if let Some(count) = map.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                map.remove(&self.client);
            }
        }
    }
}

struct Decrement(Arc<AtomicUsize>);

impl Drop for Decrement {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
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

/// The credentials of an `Authorization: Bearer …` value (the scheme is case-insensitive).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    scheme.eq_ignore_ascii_case(b"bearer ").then_some(rest)
}

/// Whether `given` is the admin token, in time that depends only on the token's length: every
/// byte of the token is compared (with what `given` has at that place, or a filler), so neither
/// a wrong byte's position nor the length of `given` shows.
fn token_matches(given: &[u8], token: &[u8]) -> bool {
    let padded: Vec<u8> = (0..token.len())
        .map(|i| given.get(i).copied().unwrap_or(0))
        .collect();
    let same_len = (given.len() as u64).ct_eq(&(token.len() as u64));
    bool::from(padded.as_slice().ct_eq(token) & same_len)
}

/// The headers of an event stream's response.
fn stream_headers(headers: &mut http::HeaderMap) {
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
}

fn parse_id(id: &str) -> Result<ClientId, Reject> {
    id.parse()
        .map_err(|_| Reject::bad_request("malformed client id"))
}

/// A refused request: its status and a short reason for the body.
#[derive(Debug)]
struct Reject {
    status: StatusCode,
    reason: Cow<'static, str>,
}

impl Reject {
    fn new(status: StatusCode, reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            reason: reason.into(),
        }
    }

    fn bad_request(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, reason)
    }

    fn unavailable(reason: &'static str) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, reason)
    }

    fn backend(err: BackendError) -> Self {
        tracing::warn!(%err, "backend unavailable");
        Self::new(StatusCode::SERVICE_UNAVAILABLE, err.reason)
    }

    fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not found")
    }

    fn unknown_client() -> Self {
        Self::new(StatusCode::NOT_FOUND, "unknown client id")
    }

    fn into_response(self) -> Res {
        let mut res = text(self.status, &self.reason);
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}

fn text(status: StatusCode, message: &str) -> Res {
    let mut res = Response::new(Body::full(Bytes::copy_from_slice(message.as_bytes())));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

fn empty(status: StatusCode) -> Res {
    let mut res = Response::new(Body::empty());
    *res.status_mut() = status;
    res
}

fn json_response(status: StatusCode, value: &serde_json::Value) -> Res {
    let mut res = Response::new(Body::full(value.to_string()));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}
