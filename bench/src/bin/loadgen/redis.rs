//! The coordinator's own `redis-server` for a multi-node run: on a free loopback port, without
//! persistence, stopped by its pid at the end of the run.
//!
//! It runs under `timeout --foreground <max-seconds>` (coreutils), so that it ends by itself even
//! if the coordinator is killed before it could stop it, as the servers and workers do; the
//! `--foreground` keeps it in the coordinator's process group, so an interrupt from the terminal
//! reaches it too. Its own pid is read from `INFO server` and checked to be the wrapper's child
//! before anything is sent to it.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How long `redis-server` may take to answer `PING` after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long it may take to exit after `SIGTERM`, before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Timeout of each request to it.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A running `redis-server` of the coordinator's own.
pub(crate) struct RedisServer {
    /// The `timeout` process wrapping it.
    wrapper: Child,
    /// The `redis-server` process itself.
    pid: u32,
    port: u16,
}

impl RedisServer {
    /// Starts one on a free loopback port and waits until it answers `PING`. Fails (loudly)
    /// when `redis-server` is not on the `PATH`.
    pub(crate) fn start(max_seconds: u64) -> io::Result<Self> {
        if !on_path("redis-server") {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "redis-server is not on the PATH: the multi-node runs need it \
                 (Debian: apt-get install redis-server)",
            ));
        }
        let port = free_port()?;
        let wrapper = Command::new("timeout")
            .args(["--foreground", "--kill-after=5", &max_seconds.to_string()])
            .args(["redis-server", "--port", &port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| io::Error::other(format!("starting timeout redis-server: {e}")))?;
        let mut server = Self {
            wrapper,
            pid: 0,
            port,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = server.wrapper.try_wait()? {
                return Err(io::Error::other(format!(
                    "redis-server on port {port} exited at start: {status}"
                )));
            }
            if server.request("PING").is_ok_and(|r| r == "PONG") {
                break;
            }
            if Instant::now() >= deadline {
                return Err(io::Error::other("redis-server did not answer PING in time"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let info = server.request("INFO server")?;
        let pid: u32 = info
            .lines()
            .find_map(|l| l.strip_prefix("process_id:"))
            .and_then(|p| p.trim().parse().ok())
            .ok_or_else(|| io::Error::other("no process_id in INFO server"))?;
        if parent_of(pid)? != server.wrapper.id() {
            // Not the one just started (another one took the port first): leave it alone.
            return Err(io::Error::other(format!(
                "the redis-server on port {port} (pid {pid}) is not ours"
            )));
        }
        server.pid = pid;
        Ok(server)
    }

    /// `redis://127.0.0.1:PORT`.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The `redis-server` process's pid (for `/proc`).
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// How many times each command was called since the start (`INFO commandstats`), most
    /// called first.
    pub(crate) fn command_calls(&self) -> io::Result<Vec<(String, u64)>> {
        let stats = self.request("INFO commandstats")?;
        let mut calls: Vec<(String, u64)> = stats
            .lines()
            .filter_map(|l| l.strip_prefix("cmdstat_"))
            .filter_map(|l| {
                let (name, rest) = l.split_once(':')?;
                let n = rest
                    .strip_prefix("calls=")?
                    .split(',')
                    .next()?
                    .parse()
                    .ok()?;
                Some((name.to_owned(), n))
            })
            .collect();
        calls.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Ok(calls)
    }

    /// One inline command, over a connection of its own; the reply as text (a status, an
    /// integer, or a bulk string).
    fn request(&self, command: &str) -> io::Result<String> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.write_all(format!("{command}\r\n").as_bytes())?;
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        match line.split_at_checked(1) {
            Some(("+" | ":", rest)) => Ok(rest.to_owned()),
            Some(("$", len)) => {
                let len: usize = len
                    .parse()
                    .map_err(|_| io::Error::other(format!("redis: bad bulk length {len:?}")))?;
                let mut body = vec![0; len.min(1 << 20)];
                reader.read_exact(&mut body)?;
                Ok(String::from_utf8_lossy(&body).into_owned())
            }
            _ => Err(io::Error::other(format!("redis: {line}"))),
        }
    }
}

impl Drop for RedisServer {
    /// Stops it by its pid: `SIGTERM` (to the wrapper, which passes it on, if its pid is not
    /// known yet), then `SIGKILL` after [`STOP_TIMEOUT`]; then reaps the wrapper.
    fn drop(&mut self) {
        let pid = |p: u32| Pid::from_raw(i32::try_from(p).unwrap_or(i32::MAX));
        let wrapper = pid(self.wrapper.id());
        // While the wrapper runs, its child's pid cannot have been reused.
        if matches!(self.wrapper.try_wait(), Ok(None)) {
            let target = if self.pid == 0 {
                wrapper
            } else {
                pid(self.pid)
            };
            let _ = kill(target, Signal::SIGTERM);
            let deadline = Instant::now() + STOP_TIMEOUT;
            while Instant::now() < deadline && matches!(self.wrapper.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        if matches!(self.wrapper.try_wait(), Ok(None)) {
            if self.pid != 0 {
                let _ = kill(pid(self.pid), Signal::SIGKILL);
            }
            let _ = self.wrapper.kill();
        }
        let _ = self.wrapper.wait();
    }
}

/// Whether an executable file `name` is in a directory of `PATH`.
fn on_path(name: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(name))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// A loopback port free at the time of asking.
fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// The parent pid of `pid` (field 4 of `/proc/<pid>/stat`).
fn parent_of(pid: u32) -> io::Result<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
    rest.split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| io::Error::other(format!("no parent in /proc/{pid}/stat")))
}
