//! The whole load-benchmark pipeline at a tiny size: the coordinator starts a server process
//! and a worker process per run, 20 clients register, 3 broadcasts go out, and nothing may be
//! lost (ours on tokio, the baseline and the floor). No timing is asserted.
//!
//! The two-node run does the same on two servers sharing a `redis-server` of its own (ours on
//! tokio and on smol): half the clients register on node 1 and stream from node 2, the
//! broadcasts go out on node 1, and nothing may be lost on either node. It fails, loudly, when
//! `redis-server` is not on the `PATH`.

use std::process::{Command, Output};

/// Runs `loadgen` with the tiny settings and `extra`; its stdout, once it succeeded.
fn loadgen(extra: &[&str]) -> String {
    let output: Output = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "--server-bin",
            env!("CARGO_BIN_EXE_bench-server"),
            "--connections",
            "20",
            "--broadcasts",
            "3",
            "--rate",
            "20",
            "--settle-ms",
            "50",
            "--drain-secs",
            "20",
            "--per-worker",
            "15",
            "--max-seconds",
            "120",
        ])
        .args(extra)
        .output()
        .expect("loadgen runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "loadgen failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    stdout
}

/// The line of `stdout` starting with `prefix`.
fn line<'a>(stdout: &'a str, prefix: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line {prefix:?}\n{stdout}"))
}

#[test]
fn tiny_runs_lose_nothing() {
    let stdout = loadgen(&["--modes", "tokio,baseline,floor"]);
    for mode in ["tokio", "baseline", "floor"] {
        let line = line(&stdout, &format!("result mode={mode} "));
        for expected in [
            "nodes=1 ",
            "opened=20 ",
            "lost=0 ",
            "duplicates=0 ",
            "ok=true",
        ] {
            assert!(line.contains(expected), "{line}");
        }
    }
}

#[test]
fn tiny_two_node_runs_lose_nothing() {
    let on_path = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| dir.join("redis-server").is_file())
    });
    assert!(
        on_path,
        "redis-server is not on the PATH: the two-node run needs it (Debian: apt-get install \
         redis-server; .ci/run installs it)"
    );
    let stdout = loadgen(&["--modes", "tokio,smol", "--nodes", "2"]);
    let mut results = stdout.lines().filter(|l| l.starts_with("result"));
    for mode in ["tokio", "smol"] {
        let run = results
            .next()
            .unwrap_or_else(|| panic!("no result\n{stdout}"));
        assert!(run.starts_with(&format!("result mode={mode} ")), "{run}");
        for expected in [
            "nodes=2 ",
            "opened=20 ",
            "lost=0 ",
            "duplicates=0 ",
            "ok=true",
        ] {
            assert!(run.contains(expected), "{run}");
        }
        for node in ["1", "2"] {
            let per_node = results
                .next()
                .unwrap_or_else(|| panic!("no node {node}\n{stdout}"));
            assert!(
                per_node.starts_with(&format!("result-node node={node} ")),
                "{per_node}"
            );
            for expected in [
                "opened=10 ",
                "expected=30 ",
                "received=30 ",
                "lost=0 ",
                "duplicates=0 ",
            ] {
                assert!(per_node.contains(expected), "{per_node}");
            }
        }
    }
    // Each run started its own redis-server, and stopped it.
    let pids: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("redis-server pid "))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    assert_eq!(pids.len(), 2, "{stdout}");
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "redis-server {pid} still runs"
        );
    }
    assert!(line(&stdout, "redis-server pid ").contains(" at redis://127.0.0.1:"));
}
