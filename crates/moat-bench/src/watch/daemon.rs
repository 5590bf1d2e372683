//! Processes the benchmark starts, and cleaning up after them whatever happens.
//!
//! Every daemon runs in its own process group (so a Ctrl-C in the terminal reaches only this
//! tool, which then stops the daemons in order) with `PR_SET_PDEATHSIG` (so they die even if
//! this tool is killed). [`Daemon`] stops its process on drop: SIGTERM, a grace period, then
//! SIGKILL to the group. A daemon that dies closes its fanotify group, which the kernel
//! treats as "allow everything", so nothing is left blocked.
//!
//! Also here: the Ctrl-C flag, the temporary directory guard, the watchdog that unblocks the
//! benchmark if a daemon stops answering permission events, and what `/proc` tells about a
//! daemon (fanotify marks, inotify watches, memory).

use std::fs::{self, File};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    // Only an atomic store: the one thing a signal handler may safely do here.
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Routes SIGINT, SIGTERM and SIGHUP to a flag that every wait loop checks, so the guards
/// get to run their `Drop` instead of the process dying with daemons still running.
pub fn install_signal_flag() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: a zeroed sigaction with a valid handler and SA_RESTART is a valid
        // argument; the handler only touches an atomic.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// Whether the user asked us to stop.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// An error for wait loops to return once [`interrupted`] is set.
pub fn check_interrupted() -> Result<(), String> {
    if interrupted() {
        Err("interrupted".to_string())
    } else {
        Ok(())
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds: unlike `Instant`, comparable with timestamps taken in
/// the forked prober.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Milliseconds from `from` to `to` (both [`mono_ns`]).
pub fn ms_between(from: u64, to: u64) -> f64 {
    to.saturating_sub(from) as f64 / 1e6
}

/// How a stopped daemon ended.
#[derive(Clone, Debug)]
pub struct Stopped {
    /// From SIGTERM to reaped.
    pub ms: f64,
    /// `exit N`, `signal N`, or `killed after N ms`.
    pub how: String,
}

/// A running daemon, stopped (and reaped) on drop.
pub struct Daemon {
    /// Label for messages.
    pub name: &'static str,
    child: Option<Child>,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
    /// [`mono_ns`] just before spawning.
    pub spawned_at: u64,
}

impl Daemon {
    /// Spawns `cmd` with stdout and stderr to `log`, in its own process group.
    pub fn spawn(name: &'static str, mut cmd: Command, log: &Path) -> Result<Daemon, String> {
        let out = File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let spawned_at = mono_ns();
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {name} ({:?}): {e}", cmd.get_program()))?;
        Ok(Daemon {
            name,
            child: Some(child),
            log: log.to_path_buf(),
            spawned_at,
        })
    }

    /// The daemon's pid (0 once stopped).
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// Fails with the end of its log if the daemon has exited.
    pub fn check_alive(&mut self) -> Result<(), String> {
        let Some(child) = self.child.as_mut() else {
            return Err(format!("{} was already stopped", self.name));
        };
        match child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => {
                self.child = None;
                Err(format!(
                    "{} exited early ({status}); last lines of {}:\n{}",
                    self.name,
                    self.log.display(),
                    log_tail(&self.log, 8)
                ))
            }
            Err(e) => Err(format!("{}: {e}", self.name)),
        }
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL the whole group.
    pub fn stop(&mut self, grace: Duration) -> Option<Stopped> {
        let mut child = self.child.take()?;
        let pid = child.id() as i32;
        let t = Instant::now();
        // SAFETY: plain syscall on our own unreaped child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    return Some(Stopped {
                        ms: t.elapsed().as_secs_f64() * 1e3,
                        how: status_text(status),
                    })
                }
                Ok(None) if t.elapsed() < grace => thread::sleep(Duration::from_millis(5)),
                _ => break,
            }
        }
        // SAFETY: negative pid = the process group the child leads (process_group(0)).
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        let _ = child.wait();
        Some(Stopped {
            ms: t.elapsed().as_secs_f64() * 1e3,
            how: format!("killed after {} ms", grace.as_millis()),
        })
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(3));
    }
}

fn status_text(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit {c}"),
        (None, Some(s)) => format!("signal {s}"),
        _ => status.to_string(),
    }
}

/// The last `n` lines of a log file.
pub fn log_tail(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A directory removed (with its contents) on drop.
pub struct TempDir {
    /// The directory.
    pub path: PathBuf,
}

impl TempDir {
    /// Creates `/tmp/moat-bench-watch-<pid>` (short: unix socket paths are limited),
    /// removing those left by runs that were killed outright.
    pub fn new() -> Result<TempDir, String> {
        let base = std::env::temp_dir();
        remove_stale(&base);
        let path = base.join(format!("moat-bench-watch-{}", std::process::id()));
        if path.exists() {
            let _ = fs::remove_dir_all(&path);
        }
        fs::create_dir_all(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(TempDir { path })
    }
}

/// Removes `moat-bench-watch-<pid>` directories whose process no longer exists.
fn remove_stale(base: &Path) {
    let Ok(dir) = fs::read_dir(base) else {
        return;
    };
    for e in dir.flatten() {
        let name = e.file_name();
        let pid = name
            .to_str()
            .and_then(|n| n.strip_prefix("moat-bench-watch-"))
            .and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists()) {
            // A run killed outright may have left its tmpfs mounted there.
            super::mount::detach_under(&e.path());
            if !super::mount::has_mounts_under(&e.path()) {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // Never descend into a filesystem still mounted below (the tmpfs guards unmount
        // theirs first; this is the fallback).
        super::mount::detach_under(&self.path);
        if !super::mount::has_mounts_under(&self.path) {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Kills daemons that stop making progress (or when the user presses Ctrl-C), so a
/// benchmark `open()` blocked on an unanswered permission event gets through: the kernel
/// allows every pending event once the listener's group is closed.
pub struct Watchdog {
    progress: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    fired: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    /// Watches `pids`: SIGKILL after `stall` without a [`Watchdog::tick`].
    pub fn new(pids: Vec<i32>, stall: Duration) -> Watchdog {
        let progress = Arc::new(AtomicU64::new(mono_ns()));
        let stop = Arc::new(AtomicBool::new(false));
        let fired = Arc::new(AtomicBool::new(false));
        let (p, s, f) = (progress.clone(), stop.clone(), fired.clone());
        let thread = thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                let stale = mono_ns().saturating_sub(p.load(Ordering::SeqCst));
                if interrupted() || stale > stall.as_nanos() as u64 {
                    for &pid in pids.iter().filter(|&&p| p > 0) {
                        // SAFETY: plain syscall; these are our own children.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                    f.store(true, Ordering::SeqCst);
                    return;
                }
                thread::sleep(Duration::from_millis(50));
            }
        });
        Watchdog {
            progress,
            stop,
            fired,
            thread: Some(thread),
        }
    }

    /// Records progress.
    pub fn tick(&self) {
        self.progress.store(mono_ns(), Ordering::SeqCst);
    }

    /// Whether it killed the daemons.
    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Marks and watches a process holds, read from `/proc/PID/fdinfo`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Marks {
    /// fanotify inode marks (`fanotify ino:` lines).
    pub fanotify_inode: u64,
    /// fanotify mount and filesystem marks.
    pub fanotify_wide: u64,
    /// inotify watches.
    pub inotify: u64,
}

/// Counts the marks of every fanotify and inotify group of `pid` (each group once, even
/// when the daemon holds several descriptors of it).
pub fn marks_of(pid: i32) -> Marks {
    let mut m = Marks::default();
    let mut seen: Vec<i32> = Vec::new();
    for (fd, kind) in anon_inodes(pid) {
        if seen.iter().any(|&other| same_file(pid, fd, other)) {
            continue;
        }
        seen.push(fd);
        let Ok(info) = fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")) else {
            continue;
        };
        for line in info.lines() {
            match kind.as_str() {
                "[fanotify]" if line.starts_with("fanotify ino:") => m.fanotify_inode += 1,
                "[fanotify]" if line.starts_with("fanotify mnt_id:") => m.fanotify_wide += 1,
                "[fanotify]" if line.starts_with("fanotify sdev:") => m.fanotify_wide += 1,
                "inotify" if line.starts_with("inotify wd:") => m.inotify += 1,
                _ => {}
            }
        }
    }
    m
}

/// Whether two fds of `pid` refer to the same open file (`kcmp(KCMP_FILE)`), e.g. a group
/// and its `dup`.
fn same_file(pid: i32, a: i32, b: i32) -> bool {
    const KCMP_FILE: libc::c_int = 0;
    // SAFETY: kcmp only compares kernel objects; it reads no memory of ours.
    unsafe { libc::syscall(libc::SYS_kcmp, pid, pid, KCMP_FILE, a, b) == 0 }
}

/// `(fd, kind)` of each `anon_inode:` fd of `pid` (`[fanotify]`, `inotify`...).
fn anon_inodes(pid: i32) -> Vec<(i32, String)> {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let target = fs::read_link(e.path()).ok()?;
            let kind = target.to_str()?.strip_prefix("anon_inode:")?.to_string();
            Some((e.file_name().to_str()?.parse().ok()?, kind))
        })
        .collect()
}

/// Resident and peak resident memory of `pid` in bytes (`VmRSS`, `VmHWM`).
pub fn memory_of(pid: i32) -> Option<(u64, u64)> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Other processes holding a fanotify group (they would distort every figure), as
/// `pid (comm)` strings; `ours` are the daemons under test.
pub fn other_fanotify_holders(ours: &[i32]) -> Vec<String> {
    let me = std::process::id() as i32;
    let Ok(proc_dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    proc_dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me && !ours.contains(&pid))
        .filter(|&pid| anon_inodes(pid).iter().any(|(_, k)| k == "[fanotify]"))
        .map(|pid| {
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            format!("{pid} ({})", comm.trim())
        })
        .collect()
}

/// Reads a sysctl under `/proc/sys` as a number.
pub fn sysctl(path: &str) -> Option<u64> {
    fs::read_to_string(format!("/proc/sys/{path}"))
        .ok()?
        .trim()
        .parse()
        .ok()
}
