//! The mixed workload of issue 12: 20 gcc compiles, 10 Python runs importing a few
//! standard modules, 20,000 file reads under /usr/share and 20 Perl runs, as uid 65534.
//!
//! It runs as one `sh` script in its own process group, in a work directory owned by
//! 65534 on the bench's private tmpfs (nothing it writes lands on the machine). The run is
//! bounded: at `timeout` the whole group is killed and the run reported as not finished.

use crate::watch::daemon;
use crate::watch::probe::PROBE_ID;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What one workload consists of.
pub struct Workload {
    /// gcc compiles (compile and link a small program).
    pub compiles: u32,
    /// Python runs.
    pub pythons: u32,
    /// Files read under /usr/share.
    pub reads: usize,
    /// Perl runs.
    pub perls: u32,
}

/// The issue's workload.
pub const ISSUE: Workload = Workload {
    compiles: 20,
    pythons: 10,
    reads: 20_000,
    perls: 20,
};

const HELLO_C: &str = "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n\
#include <math.h>\n#include <time.h>\n\
int main(int argc, char **argv) {\n\
  char buf[64];\n  snprintf(buf, sizeof buf, \"%d %f\", argc, sqrt((double)strlen(argv[0])));\n\
  puts(buf);\n  return (int)(time(NULL) & 0);\n}\n";

/// The script, run by `/bin/sh -e` in the work directory. Each phase (gcc, python, reads,
/// perl) ends with a line `NAME SECONDS.NANOS` appended to `phases.log`, so a run's time
/// can be split by phase.
fn script(w: &Workload) -> String {
    format!(
        ": > phases.log; /usr/bin/date +'start %s.%N' >> phases.log\n\
         i=0; while [ $i -lt {c} ]; do /usr/bin/gcc -O1 -o prog hello.c -lm; i=$((i+1)); done\n\
         /usr/bin/date +'gcc %s.%N' >> phases.log\n\
         i=0; while [ $i -lt {p} ]; do /usr/bin/python3 -B -c \
         'import json, re, email.parser, http.client, decimal, subprocess' ; i=$((i+1)); done\n\
         /usr/bin/date +'python %s.%N' >> phases.log\n\
         xargs -0 -a reads.list cat > /dev/null\n\
         /usr/bin/date +'reads %s.%N' >> phases.log\n\
         i=0; while [ $i -lt {l} ]; do /usr/bin/perl -MPOSIX -MData::Dumper -MFile::Find \
         -MGetopt::Long -e 'print Dumper([floor(1.5)])' > /dev/null; i=$((i+1)); done\n\
         /usr/bin/date +'perl %s.%N' >> phases.log\n",
        c = w.compiles,
        p = w.pythons,
        l = w.perls
    )
}

/// Writes the script, the C source and the read list into `dir`, all owned by 65534.
pub fn prepare(dir: &Path, w: &Workload, reads: &[PathBuf]) -> Result<(), String> {
    let put = |name: &str, bytes: &[u8]| -> Result<(), String> {
        let p = dir.join(name);
        fs::write(&p, bytes).map_err(|e| format!("{}: {e}", p.display()))
    };
    put("workload.sh", script(w).as_bytes())?;
    put("hello.c", HELLO_C.as_bytes())?;
    let mut list = Vec::new();
    for r in reads {
        list.extend_from_slice(std::os::unix::ffi::OsStrExt::as_bytes(r.as_os_str()));
        list.push(0);
    }
    put("reads.list", &list)?;
    for p in std::iter::once(dir.to_path_buf()).chain(
        fs::read_dir(dir)
            .map_err(|e| e.to_string())?
            .flatten()
            .map(|e| e.path()),
    ) {
        std::os::unix::fs::chown(&p, Some(PROBE_ID), Some(PROBE_ID))
            .map_err(|e| format!("chown {}: {e}", p.display()))?;
    }
    Ok(())
}

/// One run's outcome.
#[derive(Clone, Debug)]
pub struct Run {
    /// Wall time (s) when it finished.
    pub secs: Option<f64>,
    /// Exit status text when it failed, or `timeout`.
    pub failure: Option<String>,
    /// Seconds spent in each phase that completed, in order.
    pub phases: Vec<(String, f64)>,
}

/// Phase durations from `phases.log` (`start T0`, then `NAME T` per finished phase).
pub fn parse_phases(text: &str) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    let mut prev: Option<f64> = None;
    for line in text.lines() {
        let Some((name, t)) = line.split_once(' ') else {
            continue;
        };
        let Ok(t) = t.trim().parse::<f64>() else {
            continue;
        };
        if let (Some(p), true) = (prev, name != "start") {
            out.push((name.to_string(), t - p));
        }
        prev = Some(t);
    }
    out
}

fn phases_of(dir: &Path) -> Vec<(String, f64)> {
    parse_phases(&fs::read_to_string(dir.join("phases.log")).unwrap_or_default())
}

impl Run {
    /// `12.3 s`, `not finished in 100 s`, `failed (...) after 3.1 s`.
    pub fn text(&self, timeout: Duration) -> String {
        let total = match (&self.secs, &self.failure) {
            (Some(s), None) => format!("{s:.2} s"),
            (Some(s), Some(f)) => format!("failed ({f}) after {s:.2} s"),
            (None, _) => format!("not finished in {} s", timeout.as_secs()),
        };
        let phases: Vec<String> = self
            .phases
            .iter()
            .map(|(n, s)| format!("{n} {s:.1}"))
            .collect();
        format!("{total} [{}]", phases.join(", "))
    }
}

/// Runs the workload in `dir` as uid 65534, killing it at `timeout`; its output goes to
/// `log`.
pub fn run(dir: &Path, timeout: Duration, log: &Path) -> Result<Run, String> {
    let out = fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-e")
        .arg("workload.sh")
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", dir)
        .env("TMPDIR", dir)
        .env("LC_ALL", "C")
        .uid(PROBE_ID)
        .gid(PROBE_ID)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    let t = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("workload: {e}"))?;
    let pgid = child.id() as i32;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            let secs = t.elapsed().as_secs_f64();
            let failure = (!status.success()).then(|| status.to_string());
            return Ok(Run {
                secs: Some(secs),
                failure,
                phases: phases_of(dir),
            });
        }
        if t.elapsed() > timeout || daemon::interrupted() {
            // SAFETY: the workload's own process group.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            let _ = child.wait();
            daemon::check_interrupted()?;
            return Ok(Run {
                secs: None,
                failure: Some("timeout".into()),
                phases: phases_of(dir),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_are_differences_of_timestamps() {
        let p = parse_phases("start 100.5\ngcc 102.0\npython 102.25\n");
        assert_eq!(
            p,
            vec![("gcc".to_string(), 1.5), ("python".to_string(), 0.25)]
        );
        assert!(parse_phases("").is_empty());
    }
}
