//! Running a scanner as a child process and measuring it.
//!
//! Wall time is taken around spawn and reap; peak RSS and CPU time come from the child's
//! own `rusage`, collected with `wait4(2)` so nothing else (cargo, this process) is counted.

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A scanner under test and how to invoke it.
#[derive(Clone, Debug)]
pub struct Tool {
    /// Short label for tables and output file names (`moat`, `clamscan`).
    pub label: &'static str,
    /// The executable.
    pub program: PathBuf,
    /// Arguments placed before the common ones (`scan` for moat).
    pub prefix: Vec<String>,
}

impl Tool {
    /// The argument vector for `PROGRAM [prefix] -r -d DB TARGET`.
    pub fn argv(&self, db: &Path, target: &Path) -> Vec<OsString> {
        let mut v: Vec<OsString> = vec![self.program.clone().into_os_string()];
        v.extend(self.prefix.iter().map(OsString::from));
        v.push("-r".into());
        v.push("-d".into());
        v.push(db.as_os_str().to_owned());
        v.push(target.as_os_str().to_owned());
        v
    }
}

/// How a child process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Normal exit with this status.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exit {c}"),
            Exit::Signal(s) => write!(f, "signal {s}"),
        }
    }
}

/// Measurements and captured output of one run.
#[derive(Clone, Debug)]
pub struct Run {
    /// The exact argument vector.
    pub argv: Vec<OsString>,
    /// Wall-clock time from spawn to reap.
    pub wall: Duration,
    /// Peak resident set size of the child in bytes (`ru_maxrss`).
    pub max_rss: u64,
    /// User CPU time of the child.
    pub user: Duration,
    /// System CPU time of the child.
    pub sys: Duration,
    /// How the child ended.
    pub exit: Exit,
    /// Captured standard output.
    pub stdout: String,
    /// Where standard error was saved.
    pub stderr_path: PathBuf,
    /// Whether it was killed for running past its time limit ([`run_limited`]).
    pub timed_out: bool,
}

impl Run {
    /// The command line, shell-quoted, ready to paste.
    pub fn command_line(&self) -> String {
        shell_join(&self.argv)
    }

    /// The last `n` lines of the child's standard error.
    pub fn stderr_tail(&self, n: usize) -> String {
        let text = fs::read_to_string(&self.stderr_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

/// Quotes arguments for a POSIX shell where needed.
pub fn shell_join(argv: &[OsString]) -> String {
    argv.iter()
        .map(|a| {
            let s = a.to_string_lossy();
            let plain = !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
            if plain {
                s.into_owned()
            } else {
                format!("'{}'", s.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn timeval(tv: libc::timeval) -> Duration {
    Duration::from_secs(tv.tv_sec as u64) + Duration::from_micros(tv.tv_usec as u64)
}

/// Runs `argv` to completion, saving stdout/stderr as `<out_dir>/<name>.stdout|.stderr`.
pub fn run(argv: &[OsString], out_dir: &Path, name: &str) -> io::Result<Run> {
    run_limited(argv, out_dir, name, None)
}

/// Kills `pid` with SIGKILL unless told to stand down within `limit`; returns the thread and
/// the sender that stands it down.
fn watchdog(
    pid: libc::pid_t,
    limit: Duration,
) -> (std::thread::JoinHandle<bool>, std::sync::mpsc::Sender<()>) {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let handle = std::thread::spawn(move || {
        if rx.recv_timeout(limit) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
            // SAFETY: the child is not reaped before this thread is joined (the caller
            // waits with WNOWAIT first), so `pid` still names it.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            return true;
        }
        false
    });
    (handle, tx)
}

/// Waits until `pid` has exited, without reaping it.
fn wait_exited(pid: libc::pid_t) -> io::Result<()> {
    loop {
        // SAFETY: an all-zero siginfo_t is valid; `pid` is our own child.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if r == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// [`run`], killing the child when it runs longer than `limit` (then `timed_out` is set).
pub fn run_limited(
    argv: &[OsString],
    out_dir: &Path,
    name: &str,
    limit: Option<Duration>,
) -> io::Result<Run> {
    fs::create_dir_all(out_dir)?;
    let stdout_path = out_dir.join(format!("{name}.stdout"));
    let stderr_path = out_dir.join(format!("{name}.stderr"));
    let start = Instant::now();
    let mut cmd = Command::new(&argv[0]);
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent. The child is
    // killed if this process dies (Ctrl-C, `kill`), so nothing outlives the benchmark.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let child = cmd
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(File::create(&stdout_path)?)
        .stderr(File::create(&stderr_path)?)
        .spawn()
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot run {}: {e}", argv[0].to_string_lossy()),
            )
        })?;
    let pid = child.id() as libc::pid_t;
    let mut timed_out = false;
    if let Some(limit) = limit {
        let (dog, stand_down) = watchdog(pid, limit);
        wait_exited(pid)?;
        let _ = stand_down.send(());
        timed_out = dog.join().unwrap_or(false);
    }
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero `rusage` is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `pid` is our own unreaped child and both out-pointers are valid. Reaping it
        // here means `child` must not be waited on again; it is only dropped, which neither
        // waits nor kills.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    let wall = start.elapsed();
    drop(child);
    let exit = if libc::WIFEXITED(status) {
        Exit::Code(libc::WEXITSTATUS(status))
    } else {
        Exit::Signal(libc::WTERMSIG(status))
    };
    let mut stdout = String::new();
    File::open(&stdout_path)?.read_to_string(&mut stdout)?;
    Ok(Run {
        argv: argv.to_vec(),
        wall,
        // Linux reports ru_maxrss in KiB.
        max_rss: usage.ru_maxrss as u64 * 1024,
        user: timeval(usage.ru_utime),
        sys: timeval(usage.ru_stime),
        exit,
        stdout,
        stderr_path,
        timed_out,
    })
}

/// Reads every regular file under `paths` once so both scanners start from a warm page
/// cache. Returns the number of bytes read.
pub fn warm_cache(paths: &[&Path]) -> io::Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    let mut stack: Vec<PathBuf> = paths.iter().map(|p| p.to_path_buf()).collect();
    while let Some(p) = stack.pop() {
        let meta = fs::symlink_metadata(&p)?;
        if meta.is_dir() {
            for entry in fs::read_dir(&p)? {
                stack.push(entry?.path());
            }
        } else if meta.is_file() {
            let mut f = File::open(&p)?;
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
        }
    }
    Ok(total)
}
