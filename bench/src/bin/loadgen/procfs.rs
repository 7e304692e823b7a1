//! What the coordinator reads of the server process in `/proc/<pid>`.

use std::io;

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// Resident memory now and at its peak (`VmRSS`, `VmHWM`), in KiB.
pub(crate) fn memory_kib(pid: u32) -> io::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .ok_or_else(|| invalid(name))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// CPU time used so far, user + system, in milliseconds (`utime` + `stime` of
/// `/proc/<pid>/stat`, all threads, clock ticks of `sysconf(_SC_CLK_TCK)`).
pub(crate) fn cpu_ms(pid: u32) -> io::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name, in parentheses, may hold spaces: count fields after its end. The field
    // after it is field 3 (state); utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').ok_or_else(|| invalid("stat"))? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .ok_or_else(|| invalid("stat field"))
    };
    let total = ticks(11)? + ticks(12)?;
    Ok(total as f64 * 1000.0 / clock_ticks() as f64)
}

fn clock_ticks() -> u64 {
    use nix::unistd::{SysconfVar, sysconf};
    match sysconf(SysconfVar::CLK_TCK) {
        Ok(Some(hz)) if hz > 0 => hz.unsigned_abs(),
        _ => 100,
    }
}
