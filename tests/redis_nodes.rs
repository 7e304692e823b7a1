//! Nodes of a cluster on tokio, each a service on an ephemeral loopback port sharing one
//! Redis: what `redis.rs` and `redis_faults.rs` share. Included with `#[path]`, next to
//! `redis_support.rs` (as `support`) and `suite/client.rs`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sse_http::{Config, Runtime, Sse};
use sse_redis::{RedisBackend, RedisConfig};

use crate::support::{Redis, TOKEN, task_handler};

/// One server of the cluster, on an ephemeral loopback port.
pub struct Node {
    pub addr: SocketAddr,
    pub sse: Sse,
    pub backend: RedisBackend,
    _stop: tokio::sync::oneshot::Sender<()>,
}

pub async fn node(redis: &Redis) -> Node {
    node_with(redis, |_, _| {}).await
}

/// A node whose service and backend configurations `configure` adjusts first.
pub async fn node_with(
    redis: &Redis,
    configure: impl FnOnce(&mut Config, &mut RedisConfig),
) -> Node {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut config = Config::default();
    config.admin_token = Some(TOKEN.into());
    let mut redis_config = RedisConfig::new(redis.url());
    redis_config.backoff_max = Duration::from_millis(200);
    configure(&mut config, &mut redis_config);
    let runtime: Arc<dyn Runtime> = Arc::new(sse_tokio::runtime());
    let (sse, backend) =
        RedisBackend::service(config, redis_config, runtime, task_handler).expect("redis url");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(sse_tokio::serve(listener, sse.clone(), async {
        stopped.await.ok();
    }));
    Node {
        addr,
        sse,
        backend,
        _stop: stop,
    }
}

pub fn run(f: impl std::future::Future<Output = ()>) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f);
}
