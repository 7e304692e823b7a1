//! The load benchmark of issue 8, shared by its two binaries: `loadgen` (the coordinator and its
//! worker processes, which hold the client connections) and `bench-server` (the server under
//! test, one process per run). See `BENCHMARKS.md` at the repository root for how to run it and
//! what it measured.
//!
//! This library holds what both sides need: the broadcast payload format (a counter and a send
//! timestamp, padded to a fixed size), the clock, and raising the open-file limit; and the
//! [`floor`] server, the least a server of the benchmark's protocol can do.

use std::time::{SystemTime, UNIX_EPOCH};

pub mod floor;

/// The bearer token the coordinator gives the servers it starts.
pub const ADMIN_TOKEN: &str = "loadbench-admin-token";

/// Nanoseconds since the Unix epoch: the clock of the send timestamps. The coordinator, the
/// workers and the server run on one machine, so they share it.
pub fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The body of broadcast `n`, sent at `t` (Unix nanoseconds): `{"n":N,"t":T,"p":"…"}`, padded
/// with `.` in `p` to `size` bytes (longer when `size` is too small to hold the fields).
pub fn payload(n: usize, t: u64, size: usize) -> String {
    let head = format!("{{\"n\":{n},\"t\":{t},\"p\":\"");
    let pad = size.saturating_sub(head.len() + 2);
    let mut body = String::with_capacity(head.len() + pad + 2);
    body.push_str(&head);
    body.extend(std::iter::repeat_n('.', pad));
    body.push_str("\"}");
    body
}

/// Reads `(n, t)` back from a [`payload`]; `None` for anything else.
pub fn parse_payload(data: &str) -> Option<(usize, u64)> {
    let rest = data.strip_prefix("{\"n\":")?;
    let (n, rest) = rest.split_once(",\"t\":")?;
    let (t, _) = rest.split_once(",\"p\":")?;
    Some((n.parse().ok()?, t.parse().ok()?))
}

/// Raises the soft limit on open files to the hard limit, if it is lower; returns the soft
/// limit in force afterwards.
pub fn raise_fd_limit() -> std::io::Result<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    Ok(getrlimit(Resource::RLIMIT_NOFILE)?.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trips_at_its_size() {
        let body = payload(17, 1_732_000_000_123_456_789, 100);
        assert_eq!(body.len(), 100);
        assert_eq!(parse_payload(&body), Some((17, 1_732_000_000_123_456_789)));
        // Too small a size still gives a parseable body.
        assert_eq!(parse_payload(&payload(3, 9, 1)), Some((3, 9)));
        assert_eq!(parse_payload("{\"n\":x}"), None);
    }
}
