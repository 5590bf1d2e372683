//! The peer: ClamAV's clamd with our own configuration and the test database, then
//! clamonacc (`--fdpass --foreground`) talking to it over a unix socket in a temp dir.
//!
//! Nothing of the system installation is used but the binaries: no /etc/clamav, no
//! /var/lib/clamav, no TCP. clamd runs as root (no `User` line). clamonacc 1.4.6 refuses to
//! start without one of OnAccessExcludeUID/Uname/RootUID; excluding root would hide the
//! benchmark's own opens, so it excludes [`EXCLUDED_UID`], a uid nothing here runs as.

use super::daemon::{self, mono_ns, Daemon};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The uid both products are told to exclude (see the module docs).
pub const EXCLUDED_UID: u32 = 65533;

/// How long clamd may take to answer PING.
const CLAMD_TIMEOUT: Duration = Duration::from_secs(60);

/// The on-access part of the configuration, identical for both products.
pub fn on_access_conf(tree: &Path) -> String {
    format!(
        "OnAccessIncludePath {}\n\
         OnAccessPrevention yes\n\
         OnAccessMaxThreads 5\n\
         OnAccessExcludeUID {EXCLUDED_UID}\n",
        tree.display()
    )
}

/// clamd.conf for clamd and clamonacc.
pub fn clamd_conf(socket: &Path, db: &Path, log: &Path, tree: &Path) -> String {
    format!(
        "# written by moat-bench watch\n\
         LocalSocket {}\n\
         Foreground yes\n\
         DatabaseDirectory {}\n\
         LogFile {}\n\
         LogTime yes\n\
         LogVerbose no\n\
         {}",
        socket.display(),
        db.display(),
        log.display(),
        on_access_conf(tree)
    )
}

/// The ClamAV binaries in use.
#[derive(Clone, Debug)]
pub struct Binaries {
    /// clamd.
    pub clamd: PathBuf,
    /// clamonacc.
    pub clamonacc: PathBuf,
}

/// Finds clamd and clamonacc; as root, installs Debian's packages when both are missing
/// by their default names.
pub fn locate(clamd: &Path, clamonacc: &Path, apt_log: &Path) -> Result<Binaries, String> {
    let found = || Some((find_program(clamd)?, find_program(clamonacc)?));
    if let Some((clamd, clamonacc)) = found() {
        return Ok(Binaries { clamd, clamonacc });
    }
    // SAFETY: plain syscall.
    let root = unsafe { libc::geteuid() } == 0;
    if root && clamd == Path::new("clamd") && clamonacc == Path::new("clamonacc") {
        eprintln!(
            "moat-bench: clamd/clamonacc missing, running `apt-get install -y clamav clamav-daemon` (log: {})",
            apt_log.display()
        );
        let log = std::fs::File::create(apt_log).map_err(|e| e.to_string())?;
        let status = Command::new("apt-get")
            .args(["install", "-y", "clamav", "clamav-daemon"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .status()
            .map_err(|e| format!("apt-get: {e}"))?;
        if let (true, Some((clamd, clamonacc))) = (status.success(), found()) {
            return Ok(Binaries { clamd, clamonacc });
        }
    }
    let missing: Vec<String> = [clamd, clamonacc]
        .iter()
        .filter(|p| find_program(p).is_none())
        .map(|p| p.display().to_string())
        .collect();
    Err(format!(
        "not found: {} (apt-get install -y clamav clamav-daemon)",
        missing.join(", ")
    ))
}

/// Resolves a program name like a shell would, also looking in the sbin directories that
/// a non-login root shell may lack in PATH.
fn find_program(name: &Path) -> Option<PathBuf> {
    if name.components().count() > 1 {
        return name.is_file().then(|| name.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The running pair. Fields drop in declaration order: clamonacc stops before clamd.
pub struct Running {
    /// clamonacc: holds the fanotify group.
    pub clamonacc: Daemon,
    /// clamd: does the scanning.
    pub clamd: Daemon,
    /// From clamd's spawn to its first PONG.
    pub clamd_ready_ms: f64,
}

/// Starts clamd, waits for PONG on `socket`, then starts clamonacc.
pub fn start(bins: &Binaries, conf: &Path, socket: &Path, logs: &Path) -> Result<Running, String> {
    let mut cmd = Command::new(&bins.clamd);
    cmd.arg("-c").arg(conf);
    let mut clamd = Daemon::spawn("clamd", cmd, &logs.join("clamd.out"))?;
    let clamd_ready_ms = wait_for_pong(&mut clamd, socket)?;
    let mut cmd = Command::new(&bins.clamonacc);
    cmd.arg("-c").arg(conf).args(["--fdpass", "--foreground"]);
    let clamonacc = Daemon::spawn("clamonacc", cmd, &logs.join("clamonacc.log"))?;
    Ok(Running {
        clamonacc,
        clamd,
        clamd_ready_ms,
    })
}

/// The command lines [`start`] runs, for the report.
pub fn command_lines(bins: &Binaries, conf: &Path) -> [String; 2] {
    [
        format!("{} -c {}", bins.clamd.display(), conf.display()),
        format!(
            "{} -c {} --fdpass --foreground",
            bins.clamonacc.display(),
            conf.display()
        ),
    ]
}

/// Polls clamd with `zPING` until it answers `PONG`; returns ms since its spawn.
fn wait_for_pong(clamd: &mut Daemon, socket: &Path) -> Result<f64, String> {
    let t = Instant::now();
    loop {
        if ping(socket) {
            return Ok(daemon::ms_between(clamd.spawned_at, mono_ns()));
        }
        clamd.check_alive()?;
        daemon::check_interrupted()?;
        if t.elapsed() > CLAMD_TIMEOUT {
            return Err(format!(
                "clamd did not answer PING on {} within {}s",
                socket.display(),
                CLAMD_TIMEOUT.as_secs()
            ));
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// One `zPING` round trip.
fn ping(socket: &Path) -> bool {
    let Ok(mut s) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"zPING\0").is_err() {
        return false;
    }
    let mut reply = Vec::new();
    let _ = s.take(64).read_to_end(&mut reply);
    reply.starts_with(b"PONG")
}
