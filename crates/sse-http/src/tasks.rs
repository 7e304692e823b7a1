//! The task runner: the application's long-running tasks, their limits, and the events that
//! report them.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use sse_codec::EventName;
use sse_registry::ClientId;

use crate::backend::{Backend, Recipients};
use crate::reply::Reject;
use crate::runtime::{BoxFuture, Runtime};

/// A task's progress reports.
pub const PROGRESS: EventName = EventName::from_static("progress");
/// A task's completion.
pub const COMPLETED: EventName = EventName::from_static("completed");

/// The application's side of a task: given the task, does the work, may report progress.
///
/// Implemented for every `Fn(Task) -> impl Future<Output = ()>`. When the future completes,
/// every live connection of the client's name (or the client alone, without a name) gets a
/// `completed` event with the task id and a timestamp (never the client's id, which is that
/// client's credential).
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
    shared: Arc<TaskShared>,
}

struct TaskShared {
    client: ClientId,
    task_id: String,
    to: Recipients,
    backend: Arc<dyn Backend>,
    runtime: Arc<dyn Runtime>,
}

impl Task {
    /// The client that submitted the task.
    pub fn client(&self) -> ClientId {
        self.shared.client
    }

    /// The task id the client chose.
    pub fn id(&self) -> &str {
        &self.shared.task_id
    }

    /// Sends `event: progress` with `data` to the client's name (or the client alone).
    pub async fn progress(&self, data: &str) {
        self.send(&PROGRESS, data).await;
    }

    /// Waits for `duration` on the server's runtime, whatever that runtime is.
    pub async fn sleep(&self, duration: Duration) {
        self.shared.runtime.sleep(duration).await;
    }

    /// Sends to the task's recipients through the backend.
    async fn send(&self, event: &EventName, data: &str) {
        let shared = &self.shared;
        let sent = shared
            .backend
            .publish(shared.to.clone(), Some(event.clone()), data.to_owned());
        if let Err(err) = sent.await {
            tracing::warn!(%err, task = %shared.task_id, event = event.as_str(), "task event not published");
        }
    }
}

impl fmt::Debug for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("id", &self.shared.task_id)
            .finish_non_exhaustive()
    }
}

/// The tasks running, over all clients and per client, within their limits.
pub(crate) struct Tasks {
    handler: Arc<dyn TaskHandler>,
    running: Arc<AtomicUsize>,
    by_client: TasksByClient,
    max: usize,
    max_per_client: usize,
}

impl Tasks {
    pub(crate) fn new(handler: Arc<dyn TaskHandler>, max: usize, max_per_client: usize) -> Self {
        Self {
            handler,
            running: Arc::new(AtomicUsize::new(0)),
            by_client: TasksByClient::default(),
            max,
            max_per_client,
        }
    }

    /// The count of tasks running, shared (for the metrics).
    pub(crate) fn running_count(&self) -> Arc<AtomicUsize> {
        self.running.clone()
    }

    /// How many tasks are running.
    pub(crate) fn running(&self) -> usize {
        self.running.load(Ordering::Acquire)
    }

    /// Starts the client's task `task_id`, its events going `to`: `429` if the client has
    /// [`Config::max_tasks_per_client`](crate::Config::max_tasks_per_client) running, `503` if
    /// all have [`Config::max_tasks`](crate::Config::max_tasks).
    pub(crate) fn start(
        &self,
        client: ClientId,
        task_id: &str,
        to: Recipients,
        backend: Arc<dyn Backend>,
        runtime: Arc<dyn Runtime>,
    ) -> Result<(), Reject> {
        {
            let mut mine = lock(&self.by_client);
            let count = mine.entry(client).or_insert(0);
            if *count >= self.max_per_client {
                return Err(Reject::too_many(
                    format!("at most {} tasks per client at once", self.max_per_client),
                    1,
                ));
            }
            *count += 1;
        }
        // From here on, dropping `slot` gives the client's slot back, whatever happens.
        let slot = ClientTaskSlot {
            by_client: self.by_client.clone(),
            client,
        };
        if self.running.fetch_add(1, Ordering::AcqRel) >= self.max {
            self.running.fetch_sub(1, Ordering::AcqRel);
            return Err(Reject::unavailable("too many tasks running"));
        }
        let running = Decrement(self.running.clone());
        let task = Task {
            shared: Arc::new(TaskShared {
                client,
                task_id: task_id.to_owned(),
                to,
                backend,
                runtime: runtime.clone(),
            }),
        };
        let shared = task.shared.clone();
        let work = self.handler.run(task);
        runtime.spawn(Box::pin(async move {
            // Counts the task as done even if `work` panics and unwinds this future.
            let _done = (running, slot);
            work.await;
            let timestamp = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            // The task id and the time, never the client's id: the other tabs of the name get
            // this too, and an id is its client's credential.
            let data = json!({ "taskid": shared.task_id, "timestamp": timestamp });
            Task { shared }.send(&COMPLETED, &data.to_string()).await;
        }));
        Ok(())
    }
}

/// Tasks running per client, for the per-client limit; a client with none has no entry, so
/// the map holds at most `max` entries.
type TasksByClient = Arc<Mutex<HashMap<ClientId, usize>>>;

fn lock(map: &TasksByClient) -> MutexGuard<'_, HashMap<ClientId, usize>> {
    map.lock().unwrap_or_else(PoisonError::into_inner)
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
