//! clamd.conf's `VirusEvent`: a command run on each detection.
//!
//! As clamd 1.4 (read from its clamd.conf(5) and observed, see the tests): the command runs
//! through `/bin/sh -c`; `%v` becomes the signature name; `%f` is *not* the file name (a name
//! in a shell command line would be an injection) but clamd's sentence saying so; the
//! environment holds only `CLAM_VIRUSEVENT_FILENAME` and `CLAM_VIRUSEVENT_VIRUSNAME`.
//!
//! Unlike clamd, which waits for the command, moat never lets it delay anything: a command
//! starts on the caller's thread (a `fork`+`exec`, no wait), at most `max_running` at once
//! (more detections meanwhile are dropped and counted), and one still running after
//! `timeout` is killed with its whole process group.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What clamd 1.4 puts in place of `%f` (measured: clamd -c with `VirusEvent ... %f`).
pub const FILENAME_DISABLED: &str = "The filename format character has been disabled due to security concerns, use the CLAM_VIRUSEVENT_FILENAME environment variable instead.";

/// The `VirusEvent` runner.
#[derive(Debug)]
pub struct VirusEvent {
    command: String,
    max_running: usize,
    timeout: Duration,
    running: Arc<AtomicUsize>,
    stats: Arc<VirusEventStats>,
}

/// Counters (relaxed atomics: statistics only).
#[derive(Debug, Default)]
pub struct VirusEventStats {
    /// Commands started.
    pub started: AtomicU64,
    /// Detections for which no command ran because `max_running` were running.
    pub dropped: AtomicU64,
    /// Commands killed at the timeout.
    pub killed: AtomicU64,
    /// Commands that could not be started.
    pub failed: AtomicU64,
}

impl VirusEvent {
    /// Default bound on commands running at once.
    pub const DEFAULT_MAX_RUNNING: usize = 4;
    /// Default time a command may run.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

    /// A runner of `command` (clamd.conf's text).
    pub fn new(command: &str, max_running: usize, timeout: Duration) -> VirusEvent {
        VirusEvent {
            command: command.to_owned(),
            max_running: max_running.max(1),
            timeout,
            running: Arc::new(AtomicUsize::new(0)),
            stats: Arc::default(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> &VirusEventStats {
        &self.stats
    }

    /// The counters, shared (they outlive the runner's move into the reaction thread).
    pub fn shared_stats(&self) -> Arc<VirusEventStats> {
        Arc::clone(&self.stats)
    }

    /// The command line `sh -c` runs for a detection of `virus`.
    pub fn command_line(&self, virus: &str) -> String {
        self.command
            .replace("%v", virus)
            .replace("%f", FILENAME_DISABLED)
    }

    /// Starts the command for a detection of `virus` in `file`; never waits for it.
    pub fn fire(&self, file: &std::ffi::OsStr, virus: &str) {
        if self.running.fetch_add(1, Relaxed) >= self.max_running {
            self.running.fetch_sub(1, Relaxed);
            let n = self.stats.dropped.fetch_add(1, Relaxed) + 1;
            // Logged at the 1st, 2nd, 4th, 8th... drop: a loop of detections cannot flood the log.
            if !n.is_power_of_two() {
                return;
            }
            tracing::warn!(
                "VirusEvent: {} commands still running; not run for {virus} ({n} dropped so far)",
                self.max_running
            );
            return;
        }
        let spawned = Command::new("/bin/sh")
            .arg("-c")
            .arg(self.command_line(virus))
            .env_clear()
            .env("CLAM_VIRUSEVENT_FILENAME", file)
            .env("CLAM_VIRUSEVENT_VIRUSNAME", virus)
            .stdin(Stdio::null())
            .process_group(0)
            .spawn();
        let child = match spawned {
            Ok(c) => c,
            Err(e) => {
                self.running.fetch_sub(1, Relaxed);
                self.stats.failed.fetch_add(1, Relaxed);
                tracing::error!("VirusEvent: cannot run /bin/sh: {e}");
                return;
            }
        };
        self.stats.started.fetch_add(1, Relaxed);
        let (running, stats, timeout) = (
            Arc::clone(&self.running),
            Arc::clone(&self.stats),
            self.timeout,
        );
        let reaper = std::thread::Builder::new()
            .name("moat-virusevent".into())
            .spawn(move || {
                reap(child, timeout, &stats);
                running.fetch_sub(1, Relaxed);
            });
        if let Err(e) = reaper {
            // The child runs on unsupervised; its slot stays taken so the bound holds.
            tracing::error!("VirusEvent: cannot start a thread to wait for the command: {e}");
        }
    }
}

/// Waits for `child` up to `timeout`, then kills its process group.
fn reap(mut child: std::process::Child, timeout: Duration, stats: &VirusEventStats) {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                if !status.success() {
                    tracing::info!("VirusEvent: command exited with {status}");
                }
                return;
            }
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            _ => break,
        }
    }
    // SAFETY: kill(2) with a negative pid signals the group the child leads (process_group(0)).
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    let _ = child.wait();
    stats.killed.fetch_add(1, Relaxed);
    tracing::warn!("VirusEvent: command still running after {timeout:?}: killed");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_v_is_the_name_and_percent_f_is_never_the_file() {
        let v = VirusEvent::new("/x %v %f %v", 1, Duration::from_secs(1));
        assert_eq!(
            v.command_line("Eicar-Signature"),
            format!("/x Eicar-Signature {FILENAME_DISABLED} Eicar-Signature")
        );
    }

    fn wait_until(what: impl Fn() -> bool) {
        let end = Instant::now() + Duration::from_secs(10);
        while !what() {
            assert!(Instant::now() < end, "timed out");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn only_the_two_variables_reach_the_command() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("env");
        let v = VirusEvent::new(
            &format!(
                "/usr/bin/env -0 > {}.tmp; /bin/mv {0}.tmp {0}",
                out.display()
            ),
            2,
            Duration::from_secs(10),
        );
        v.fire(std::ffi::OsStr::new("/w/a b\n'c"), "Test.Sig");
        wait_until(|| out.exists());
        let mut env: Vec<String> = std::fs::read_to_string(&out)
            .unwrap()
            .split_terminator('\0')
            .map(|v| format!("{v}\n"))
            .collect();
        env.sort();
        // sh adds PWD (clamd's child shows it too).
        env.retain(|l| !l.starts_with("PWD="));
        assert_eq!(
            env.concat(),
            "CLAM_VIRUSEVENT_FILENAME=/w/a b\n'c\nCLAM_VIRUSEVENT_VIRUSNAME=Test.Sig\n"
        );
    }

    #[test]
    fn bounded_in_number_and_time() {
        let v = VirusEvent::new("sleep 30", 2, Duration::from_millis(200));
        let start = Instant::now();
        for _ in 0..5 {
            v.fire(std::ffi::OsStr::new("/f"), "X");
        }
        assert!(start.elapsed() < Duration::from_secs(2), "fire waited");
        assert_eq!(v.stats().started.load(Relaxed), 2);
        assert_eq!(v.stats().dropped.load(Relaxed), 3);
        wait_until(|| v.stats().killed.load(Relaxed) == 2);
        wait_until(|| v.running.load(Relaxed) == 0);
        v.fire(std::ffi::OsStr::new("/f"), "X");
        assert_eq!(v.stats().started.load(Relaxed), 3);
    }
}
