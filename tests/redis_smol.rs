//! Servers sharing one Redis act as one hub on smol too: the scenario of `redis.rs`, with two
//! nodes served by `sse_smol` on a smol executor (the Redis client then runs on smol as well).
//! Starts its own `redis-server` on a free loopback port (and fails, loudly, when there is none
//! on the PATH).

#![allow(unreachable_pub, dead_code)]

#[path = "suite/client.rs"]
mod client;
#[path = "smol_support.rs"]
mod smol_support;
#[path = "redis_support.rs"]
mod support;

use std::net::SocketAddr;
use std::sync::{Arc, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use client::{PATIENCE, issue};
use smol_support::spawn_on_smol;
use sse_http::{Config, Runtime};
use sse_redis::{RedisBackend, RedisConfig};
use support::{Redis, TOKEN, task_handler};

/// Nodes served on one smol executor run by two threads, on ephemeral loopback ports.
struct Cluster {
    nodes: Vec<(SocketAddr, RedisBackend)>,
    /// Dropped to stop every node.
    stop: Option<smol::channel::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Cluster {
    fn start(redis: &Redis, count: usize) -> Self {
        let url = redis.url();
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = smol::channel::bounded::<()>(1);
        let thread = spawn_on_smol(move |ex| async move {
            let mut serving: std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> =
                Box::pin(async {});
            for _ in 0..count {
                let listener = smol::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                let addr = listener.local_addr().expect("addr");
                let mut config = Config::default();
                config.admin_token = Some(TOKEN.into());
                let runtime: Arc<dyn Runtime> = Arc::new(sse_smol::runtime(&ex));
                let mut redis_config = RedisConfig::new(url.clone());
                redis_config.backoff_max = Duration::from_millis(200);
                let (sse, backend) =
                    RedisBackend::service(config, redis_config, runtime, task_handler)
                        .expect("redis url");
                ready_tx.send((addr, backend)).expect("ready");
                let (ex, stop_rx) = (ex.clone(), stop_rx.clone());
                let node = async move {
                    sse_smol::serve(&ex, listener, sse, async {
                        stop_rx.recv().await.ok();
                    })
                    .await
                    .expect("serve");
                };
                serving = Box::pin(async move {
                    smol::future::zip(serving, node).await;
                });
            }
            serving.await;
        });
        let nodes = (0..count)
            .map(|_| ready_rx.recv().expect("node started"))
            .collect();
        Self {
            nodes,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    fn addr(&self, node: usize) -> SocketAddr {
        self.nodes[node].0
    }

    /// Stops every node (closing the channel they wait on) and waits, boundedly, for them.
    fn stop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let deadline = Instant::now() + PATIENCE;
            while !thread.is_finished() {
                assert!(Instant::now() < deadline, "the nodes did not stop in time");
                thread::sleep(Duration::from_millis(10));
            }
            thread.join().expect("server thread");
        }
    }
}

#[test]
fn two_nodes_act_as_one_hub_on_smol() {
    let redis = Redis::start();
    let mut cluster = Cluster::start(&redis, 2);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(support::act_as_one_hub(cluster.addr(0), cluster.addr(1)));
    for (_, backend) in &cluster.nodes {
        let counts = backend.counts();
        assert!(counts.connected && counts.append_errors == 0, "{counts:?}");
    }
    cluster.stop();
}

/// Redis hangs under nodes on smol too: the deadline (the smol timer's) bounds every request,
/// fifty at once all answer `503`, and the node recovers when Redis answers again.
#[test]
fn a_hung_redis_fails_every_request_within_the_deadline_on_smol() {
    let redis = Redis::start();
    let mut cluster = Cluster::start(&redis, 1);
    let addr = cluster.addr(0);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            let id = issue(addr, None).await;
            redis.pause();
            support::fifty_requests_while_hung(addr, &id).await;
            redis.resume();
            support::broadcast_once_back(addr, "back").await;
        });
    let counts = cluster.nodes[0].1.counts();
    assert!(counts.fast_failures > 0, "{counts:?}");
    cluster.stop();
}
