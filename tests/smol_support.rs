//! A smol executor for the tests' servers, shared by `smol.rs` and `redis_smol.rs`.

use std::future::Future;
use std::sync::Arc;
use std::thread::{self, JoinHandle};

/// Runs `main` to its end on a thread of its own, on a smol executor that this thread and one
/// helper thread drive; the handle is finished once both have stopped.
pub(crate) fn spawn_on_smol<F, Fut>(main: F) -> JoinHandle<()>
where
    F: FnOnce(sse_smol::Ex) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    thread::spawn(move || {
        let ex: sse_smol::Ex = Arc::new(smol::Executor::new());
        let (done_tx, done_rx) = smol::channel::bounded::<()>(1);
        let helper = {
            let ex = ex.clone();
            thread::spawn(move || smol::block_on(ex.run(done_rx.recv())))
        };
        smol::block_on(ex.run(main(ex.clone())));
        drop(done_tx);
        helper.join().expect("executor thread").ok();
    })
}
