//! moat's side: `moat watch -c CONF` with the same on-access configuration as clamonacc
//! plus `OnAccessCoverage filesystem|directory` (and `OnAccessTracking`, only when the
//! benchmark is asked for a tracking backend), readiness reported over the systemd notify
//! protocol.
//!
//! The daemon's contract: it runs in the foreground and logs to stderr; once every mark is
//! placed it logs `watching N directories under K include paths in T ms` and sends a
//! `READY=1\nSTATUS=...` datagram to the unix socket named by `NOTIFY_SOCKET`; SIGTERM stops
//! it with exit 0.

use super::clamav::on_access_conf;
use super::daemon::{mono_ns, Daemon};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// moat.conf: clamd.conf syntax, no logging keys (moat logs to stderr), moat's extensions:
/// `OnAccessCoverage SCOPE`, and `OnAccessTracking T` when `tracking` is given (directory
/// scope only: filesystem scope tracks nothing).
pub fn conf(db: &Path, tree: &Path, scope: &str, tracking: Option<&str>) -> String {
    let tracking = match tracking {
        Some(t) if scope == "directory" => format!("OnAccessTracking {t}\n"),
        _ => String::new(),
    };
    format!(
        "# written by moat-bench watch\n\
         Foreground yes\n\
         DatabaseDirectory {}\n\
         {}\
         OnAccessCoverage {scope}\n\
         {tracking}",
        db.display(),
        on_access_conf(tree)
    )
}

/// `Ok(())` when `moat watch --help` works, else why not (the moat column is then n/a).
pub fn available(bin: &Path) -> Result<(), String> {
    let out = Command::new(bin)
        .args(["watch", "--help"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let first = err.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    Err(format!(
        "`{} watch --help` failed ({}): {}",
        bin.display(),
        out.status,
        first.trim()
    ))
}

/// The running daemon and the socket its readiness arrives on.
pub struct Running {
    /// `moat watch`.
    pub daemon: Daemon,
    /// Bound to `NOTIFY_SOCKET`, non-blocking.
    pub notify: UnixDatagram,
}

/// Binds the notify socket in `tmp` and starts `moat watch -c conf`, logging to `log`.
pub fn start(bin: &Path, conf: &Path, tmp: &Path, log: &Path) -> Result<Running, String> {
    start_logging(bin, conf, tmp, log, None)
}

/// [`start`] with `RUST_LOG` set to `filter` (e.g. `info,moat_watch::verdict=debug` to log
/// every verdict), when given.
pub fn start_logging(
    bin: &Path,
    conf: &Path,
    tmp: &Path,
    log: &Path,
    filter: Option<&str>,
) -> Result<Running, String> {
    let sock = tmp.join("notify.sock");
    let _ = std::fs::remove_file(&sock);
    let notify = UnixDatagram::bind(&sock).map_err(|e| format!("{}: {e}", sock.display()))?;
    notify.set_nonblocking(true).map_err(|e| e.to_string())?;
    let mut cmd = Command::new(bin);
    cmd.arg("watch")
        .arg("-c")
        .arg(conf)
        .env("NOTIFY_SOCKET", &sock)
        // Plain log lines, so the readiness line can be parsed.
        .env("NO_COLOR", "1");
    // The readiness line is informational; ask for it unless the user chose a level.
    if let Some(f) = filter {
        cmd.env("RUST_LOG", f);
    } else if std::env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", "info");
    }
    let daemon = Daemon::spawn("moat watch", cmd, log)?;
    Ok(Running { daemon, notify })
}

/// The command line [`start`] runs, for the report.
pub fn command_line(bin: &Path, conf: &Path) -> String {
    format!(
        "NOTIFY_SOCKET=<tmp>/notify.sock {} watch -c {}",
        bin.display(),
        conf.display()
    )
}

/// A READY notification: when it arrived and its STATUS text.
#[derive(Clone, Debug)]
pub struct Ready {
    /// [`mono_ns`] at receipt.
    pub at: u64,
    /// The `STATUS=` value, if any.
    pub status: String,
}

/// Reads pending datagrams; returns the first one carrying `READY=1`.
pub fn take_ready(notify: &UnixDatagram) -> Option<Ready> {
    let mut buf = [0u8; 4096];
    while let Ok(n) = notify.recv(&mut buf) {
        let at = mono_ns();
        let text = String::from_utf8_lossy(&buf[..n]);
        if text.lines().any(|l| l == "READY=1") {
            let status = text
                .lines()
                .find_map(|l| l.strip_prefix("STATUS="))
                .unwrap_or("")
                .to_string();
            return Some(Ready { at, status });
        }
    }
    None
}

/// What the daemon's readiness log line says: `watching N directories under K include
/// paths in T ms` (directory scope) or `watching every directory of F filesystems/mounts
/// under K include paths in T ms` (filesystem scope).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Watching {
    /// Directories marked (directory scope), or None.
    pub dirs: Option<u64>,
    /// Filesystems or mounts marked whole (filesystem scope), or None.
    pub whole: Option<u64>,
    /// Include paths.
    pub paths: u64,
    /// Set-up time it reports (ms).
    pub ms: f64,
}

/// The readiness line of the daemon's log, parsed.
pub fn watching_line(log: &PathBuf) -> Option<Watching> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines().find_map(parse_watching)
}

fn parse_watching(line: &str) -> Option<Watching> {
    let rest = &line[line.find("watching ")? + "watching ".len()..];
    let (what, rest) = rest.split_once(" under ")?;
    let (paths, rest) = rest.split_once(" include path")?;
    let ms = rest.split_once(" in ")?.1.split_whitespace().next()?;
    let (dirs, whole) = if let Some(n) = what.strip_suffix(" directories") {
        (Some(n.trim().parse().ok()?), None)
    } else {
        let n = what.strip_prefix("every directory of ")?;
        (None, Some(n.split_whitespace().next()?.parse().ok()?))
    };
    Some(Watching {
        dirs,
        whole,
        paths: paths.trim().parse().ok()?,
        ms: ms.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_readiness_line() {
        let l = " INFO watching 100001 directories under 1 include paths in 812 ms";
        let w = parse_watching(l).unwrap();
        assert_eq!(
            (w.dirs, w.whole, w.paths, w.ms),
            (Some(100_001), None, 1, 812.0)
        );
        let l = "watching 11 directories under 2 include paths in 3.5 ms";
        assert_eq!(parse_watching(l).unwrap().ms, 3.5);
        let l = "watching every directory of 1 filesystems/mounts under 1 include paths in 0 ms";
        let w = parse_watching(l).unwrap();
        assert_eq!((w.dirs, w.whole, w.paths, w.ms), (None, Some(1), 1, 0.0));
        assert_eq!(parse_watching("watching nothing"), None);
    }
}
