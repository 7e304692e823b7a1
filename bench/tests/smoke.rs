//! The whole load-benchmark pipeline at a tiny size: the coordinator starts a server process
//! and a worker process per run, 20 clients register, 3 broadcasts go out, and nothing may be
//! lost (ours on tokio, and the baseline). No timing is asserted.

use std::process::Command;

#[test]
fn tiny_runs_lose_nothing() {
    let output = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "--server-bin",
            env!("CARGO_BIN_EXE_bench-server"),
            "--modes",
            "tokio,baseline",
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
        .output()
        .expect("loadgen runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "loadgen failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    for mode in ["tokio", "baseline"] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("result mode={mode} ")))
            .unwrap_or_else(|| panic!("no result for {mode}\n{stdout}"));
        for expected in ["opened=20 ", "lost=0 ", "duplicates=0 ", "ok=true"] {
            assert!(line.contains(expected), "{line}");
        }
    }
}
