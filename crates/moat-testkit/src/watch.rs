//! `moat watch` under test: started with a config file, READY=1 awaited on a notify socket
//! the test binds (`NOTIFY_SOCKET`, as systemd would), stopped and reaped on drop.
//!
//! The binary's path is the caller's: `env!("CARGO_BIN_EXE_moat")` is only set for the moat
//! crate's integration tests, so they pass it to [`Watch::command`].
//!
//! Files, all in the directory given to [`Watch::command`]: `notify.sock` (the notify
//! socket), `stderr.log` (the daemon's log, read by [`Watch::log`]) and `stdout.log`.

use std::ffi::OsStr;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Bound on the start (database load and marking a small tree), generous for a loaded VM;
/// also the bound of [`Watch::wait_datagram`].
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Bound of [`Watch::wait_line`] (the daemon logs after answering, so a line lags a little).
pub const LOG_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the notify socket's `recv` waits before the daemon is checked on.
const POLL: Duration = Duration::from_millis(50);

/// A `moat watch` command being prepared; [`start`](Self::start) or [`spawn`](Self::spawn)
/// runs it.
pub struct WatchCommand {
    cmd: Command,
    dir: PathBuf,
    stderr: Option<Stdio>,
}

impl WatchCommand {
    /// Appends arguments after `watch -c CONF`.
    pub fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.cmd.args(args);
        self
    }

    /// Sets an environment variable (`RUST_LOG` is removed unless set here).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.cmd.env(key, value);
        self
    }

    /// Removes an environment variable.
    pub fn env_remove(mut self, key: &str) -> Self {
        self.cmd.env_remove(key);
        self
    }

    /// Sends stderr to `stderr` instead of `stderr.log` (the log file then stays empty).
    pub fn stderr(mut self, stderr: Stdio) -> Self {
        self.stderr = Some(stderr);
        self
    }

    /// Spawns the daemon without waiting for READY=1.
    pub fn spawn(mut self) -> Watch {
        let sock = self.dir.join("notify.sock");
        let _ = fs::remove_file(&sock);
        let notify = UnixDatagram::bind(&sock).expect("bind the notify socket");
        notify
            .set_read_timeout(Some(POLL))
            .expect("notify socket timeout");
        let log = self.dir.join("stderr.log");
        let stderr = match self.stderr.take() {
            Some(s) => s,
            None => Stdio::from(fs::File::create(&log).expect("create stderr.log")),
        };
        let stdout = fs::File::create(self.dir.join("stdout.log")).expect("create stdout.log");
        let child = self
            .cmd
            .env("NOTIFY_SOCKET", &sock)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("spawn moat watch");
        Watch {
            child,
            log,
            notify,
            exited: None,
            ready: String::new(),
        }
    }

    /// Spawns the daemon and waits (bounded) for READY=1.
    pub fn start(self) -> Watch {
        let mut w = self.spawn();
        w.wait_ready();
        w
    }
}

/// A running `moat watch`: SIGKILLed and reaped on drop unless it has exited, its log
/// printed when the test is failing.
pub struct Watch {
    child: std::process::Child,
    log: PathBuf,
    notify: UnixDatagram,
    exited: Option<ExitStatus>,
    ready: String,
}

impl Watch {
    /// `BIN watch -c CONF` with files in `dir` (see the [module](self) docs), `NO_COLOR=1`
    /// and no `RUST_LOG`.
    pub fn command(bin: impl AsRef<Path>, conf: &Path, dir: &Path) -> WatchCommand {
        let mut cmd = Command::new(bin.as_ref());
        cmd.arg("watch")
            .arg("-c")
            .arg(conf)
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG");
        WatchCommand {
            cmd,
            dir: dir.to_owned(),
            stderr: None,
        }
    }

    /// Waits (bounded) for READY=1 and returns its datagram; fails with the log if the
    /// daemon exits or takes too long.
    pub fn wait_ready(&mut self) -> &str {
        self.ready = self.wait_datagram("READY=1");
        &self.ready
    }

    /// The datagram that carried the last READY=1 awaited (its `STATUS=` line is the
    /// startup line); empty before one.
    pub fn ready(&self) -> &str {
        &self.ready
    }

    /// Waits (bounded by [`READY_TIMEOUT`]) for a notify datagram with the line `want`, and
    /// returns the datagram.
    pub fn wait_datagram(&mut self, want: &str) -> String {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(msg) = self.next_datagram() {
                if msg.lines().any(|l| l == want) {
                    return msg;
                }
            }
            if let Some(status) = self.try_wait() {
                panic!("moat watch exited ({status}) before {want}");
            }
            assert!(
                Instant::now() < deadline,
                "no {want} within {READY_TIMEOUT:?}"
            );
        }
    }

    /// Every notify datagram received within `span`, in order; fails if the daemon exits.
    pub fn datagrams_for(&mut self, span: Duration) -> Vec<String> {
        let until = Instant::now() + span;
        let mut out = Vec::new();
        while Instant::now() < until {
            if let Some(msg) = self.next_datagram() {
                out.push(msg);
            }
            if let Some(status) = self.try_wait() {
                panic!("moat watch exited ({status})");
            }
        }
        out
    }

    /// The next notify datagram, or `None` after the socket's read timeout.
    fn next_datagram(&self) -> Option<String> {
        let mut buf = [0u8; 4096];
        match self.notify.recv(&mut buf) {
            Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
            // The read timeout (or a signal to the test process): time to check on the
            // daemon.
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                None
            }
            Err(e) => panic!("recv on the notify socket: {e}"),
        }
    }

    /// SIGHUP, then waits (bounded) for the READY=1 that ends the reload: its datagram.
    pub fn reload(&mut self) -> String {
        self.signal(libc::SIGHUP);
        self.wait_datagram("RELOADING=1");
        self.wait_datagram("READY=1")
    }

    /// The daemon's pid.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The daemon's stderr so far, without ANSI colour codes.
    pub fn log(&self) -> String {
        let raw = fs::read(&self.log).unwrap_or_default();
        strip_ansi(&String::from_utf8_lossy(&raw))
    }

    /// Waits (bounded by [`LOG_TIMEOUT`]) for a log line satisfying `pred`, and returns it;
    /// `what` names it in the failure.
    pub fn wait_line(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + LOG_TIMEOUT;
        loop {
            if let Some(l) = self.log().lines().find(|l| pred(l)) {
                return l.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no log line {what} within {LOG_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The detection line for `path` (`PATH: FOUND ... pid=PID ...`, `found` being
    /// `NAME FOUND`) of the opener `pid`.
    pub fn wait_found(&self, path: &Path, found: &str, pid: i32) -> String {
        let head = format!("{}: {found}", path.display());
        let pid_field = format!("pid={pid}");
        self.wait_line(&format!("`{head}` with {pid_field}"), |l| {
            l.contains(&head) && l.split_whitespace().any(|w| w == pid_field)
        })
    }

    /// Sends `sig` to the daemon.
    pub fn signal(&self, sig: i32) {
        // SAFETY: plain syscall on our own child, not reaped before drop, so its pid is not
        // recycled.
        assert_eq!(unsafe { libc::kill(self.pid(), sig) }, 0);
    }

    /// The exit status, if the daemon has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().expect("try_wait");
        }
        self.exited
    }

    /// Waits up to `timeout` for the daemon to exit: its status and how long it took.
    pub fn wait_exit(&mut self, timeout: Duration) -> (ExitStatus, Duration) {
        let start = Instant::now();
        loop {
            if let Some(s) = self.try_wait() {
                return (s, start.elapsed());
            }
            assert!(
                start.elapsed() < timeout,
                "moat watch still running {timeout:?} after being asked to stop"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGTERM, then waits up to `timeout` for the exit: its status.
    pub fn stop(&mut self, timeout: Duration) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait_exit(timeout).0
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if self.try_wait().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- moat watch stderr ----\n{}---- end ----", self.log());
        }
    }
}

/// `text` without ANSI SGR sequences (`ESC [ digits/; m`), so that assertions on the log see
/// plain text even if the logger colours it. Hand-written: one short loop is not worth a
/// regex dependency of the test kit.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("\x1b[") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let params = after
            .find(|c: char| !(c.is_ascii_digit() || c == ';'))
            .unwrap_or(after.len());
        if after[params..].starts_with('m') {
            rest = &after[params + 1..];
        } else {
            out.push_str("\x1b[");
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::strip_ansi;

    #[test]
    fn strip_ansi_removes_sgr_sequences_only() {
        assert_eq!(
            strip_ansi("\x1b[2m2026\x1b[0m \x1b[33mWARN\x1b[0m x"),
            "2026 WARN x"
        );
        assert_eq!(strip_ansi("a\x1b[Kb\x1b[1;31"), "a\x1b[Kb\x1b[1;31");
        assert_eq!(strip_ansi("plain"), "plain");
    }
}
