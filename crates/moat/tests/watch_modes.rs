//! `moat watch` modes end to end, against the real kernel (root; uid 65534 openers from
//! moat-testkit): `OnAccessEvents` (open, exec, close), `OnAccessExcludeExe` (exclusion by
//! the accessor's executable, matched by inode through a pidfd) and SIGHUP reloading
//! clamd.conf with no access unchecked meanwhile.
//!
//! Safety as in `watch.rs`: each test owns a tempdir, the daemon watches only its `watched/`
//! subdirectories with `OnAccessCoverage directory` (inode marks), a config file of the
//! test's own, every wait bounded, the daemon SIGKILLed and reaped on drop. The EICAR file
//! comes from `moat_testkit::eicar()` (built at run time, MD5-checked).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use moat_testkit::watch::{Watch as Daemon, LOG_TIMEOUT};
use moat_testkit::{eicar, exec_as_nobody, privileged, read_as_nobody, watched_dir, write_file};
use regex::Regex;

const EPERM: i32 = libc::EPERM;
const EICAR_FOUND: &str = "Moat.Test.Eicar.UNOFFICIAL FOUND";

/// A tempdir (0755): `watched/` (and any other directory a test adds), `db/` with a hash
/// signature for EICAR (its MD5 computed here), the config file and the daemon's stderr.
struct World {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    watched: PathBuf,
}

impl World {
    fn new() -> World {
        let (tmp, root) = watched_dir();
        let w = World {
            watched: root.join("watched"),
            root,
            _tmp: tmp,
        };
        for d in ["watched", "db"] {
            mkdir(&w.root.join(d));
        }
        let e = eicar();
        let md5: String = md5::Md5::digest(&e)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let sig = format!("{md5}:{}:Moat.Test.Eicar\n", e.len());
        fs::write(w.root.join("db/eicar.hdb"), sig).unwrap();
        w
    }

    /// Directory coverage of `watched/` with prevention; `extra` lines appended.
    fn conf(&self, extra: &[(&str, &str)]) -> String {
        let mut text = format!(
            "OnAccessCoverage directory\nOnAccessIncludePath {}\nOnAccessPrevention yes\n\
             DatabaseDirectory {}\n",
            self.watched.display(),
            self.root.join("db").display()
        );
        for (k, v) in extra {
            text.push_str(&format!("{k} {v}\n"));
        }
        text
    }

    fn write_conf(&self, text: &str) {
        fs::write(self.root.join("moat.conf"), text).unwrap();
    }
}

use md5::Digest;

fn mkdir(d: &Path) {
    fs::create_dir_all(d).unwrap();
    fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
}

/// `moat watch -c <world>/moat.conf ARGS...` with `conf` written there, at debug level,
/// READY=1 awaited (moat_testkit::watch: stopped and reaped on drop).
fn start(w: &World, conf: &str, args: &[&str]) -> Daemon {
    w.write_conf(conf);
    Daemon::command(
        env!("CARGO_BIN_EXE_moat"),
        &w.root.join("moat.conf"),
        &w.root,
    )
    .args(args)
    .env("RUST_LOG", "debug")
    .start()
}

/// SIGTERM, wait (bounded) for exit 0, and return the shutdown summary line.
fn stop_cleanly(mut d: Daemon) -> String {
    let status = d.stop(Duration::from_secs(5));
    assert!(status.success(), "exit {status}\n{}", d.log());
    d.wait_line("`stopped`", |l| l.contains(" stopped"))
}

/// `name=N` from a summary line.
fn counter(line: &str, name: &str) -> u64 {
    let re = Regex::new(&format!(r"\b{name}=(\d+)")).unwrap();
    let caps = re
        .captures(line)
        .unwrap_or_else(|| panic!("no {name}= in {line}"));
    caps[1].parse().unwrap()
}

macro_rules! require_root {
    () => {
        if !privileged() {
            return;
        }
    };
}

/// Opens (and closes) every file of `files` `rounds` times in this process (root, not the
/// daemon: its opens raise events like anyone's).
fn open_all(files: &[PathBuf], rounds: usize) {
    for _ in 0..rounds {
        for f in files {
            drop(fs::File::open(f).unwrap());
        }
    }
}

// ---------------------------------------------------------------------------------------
// OnAccessEvents

/// `exec` alone: executing EICAR is refused with EPERM, reading it is not, and reads raise
/// no fanotify event at all (counted by the daemon: `open_events=0`). The same reads with
/// the default `open,exec` are counted, so the counter is live.
#[test]
fn exec_mode_blocks_execution_only_and_reads_raise_no_event() {
    require_root!();
    let w = World::new();
    let bad = w.watched.join("eicar.run");
    write_file(&bad, &eicar(), 0o755);
    let clean: Vec<PathBuf> = (0..50)
        .map(|i| {
            let p = w.watched.join(format!("clean{i}.txt"));
            write_file(&p, format!("clean file {i}\n").as_bytes(), 0o644);
            p
        })
        .collect();

    let d = start(&w, &w.conf(&[("OnAccessEvents", "exec")]), &[]);
    assert!(d.ready().contains("events=exec;"), "{}", d.ready());
    let (_, code) = exec_as_nobody(&bad);
    assert_eq!(
        code, EPERM,
        "exec of EICAR as uid 65534 must fail with EPERM"
    );
    let (_, code) = read_as_nobody(&bad, &eicar());
    assert_eq!(code, 0, "a read must not be checked in exec mode");
    open_all(&clean, 20);
    let summary = stop_cleanly(d);
    assert_eq!(counter(&summary, "open_events"), 0, "{summary}");
    assert!(counter(&summary, "exec_events") >= 1, "{summary}");

    let d = start(&w, &w.conf(&[]), &[]);
    assert_eq!(read_as_nobody(&bad, &eicar()).1, EPERM);
    open_all(&clean, 20);
    let summary = stop_cleanly(d);
    // Each file once at least (then the kernel's clean cache may answer).
    assert!(counter(&summary, "open_events") >= 50, "{summary}");
}

/// `close` alone: a file written with EICAR is scanned after its close and reported
/// (`action=reported`), and never blocked: uid 65534 still reads it.
#[test]
fn close_mode_reports_written_files_and_never_blocks() {
    require_root!();
    let w = World::new();
    let d = start(&w, &w.conf(&[]), &["--events", "close"]);
    let path = w.watched.join("dropped.txt");
    write_file(&path, &eicar(), 0o644);
    let head = format!("{}: {EICAR_FOUND}", path.display());
    let line = d.wait_line("detection after close", |l| l.contains(&head));
    assert!(line.contains("action=reported"), "{line}");
    assert!(line.contains("access=close-write"), "{line}");
    assert_eq!(
        read_as_nobody(&path, &eicar()).1,
        0,
        "close mode never blocks"
    );
    let summary = stop_cleanly(d);
    assert_eq!(counter(&summary, "open_events"), 0, "{summary}");
}

// ---------------------------------------------------------------------------------------
// OnAccessExcludeExe

/// Runs `program args...` as uid 65534: (exit success, stdout, stderr).
fn run_as_nobody(program: &Path, args: &[&str]) -> (bool, Vec<u8>, String) {
    use std::os::unix::process::CommandExt;
    let out = Command::new(program)
        .args(args)
        .uid(moat_testkit::NOBODY)
        .gid(moat_testkit::NOBODY)
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.success(), out.stdout, err)
}

/// Copies `src` to `dst` with `mode` (root-owned: the test runs as root).
fn copy_program(src: &str, dst: &Path, mode: u32) {
    mkdir(dst.parent().unwrap());
    fs::copy(src, dst).unwrap();
    fs::set_permissions(dst, fs::Permissions::from_mode(mode)).unwrap();
}

/// EPERM as cat and sh report it (strerror).
const EPERM_TEXT: &str = "Operation not permitted";

/// An excluded program (a copy of cat in a root-owned directory) reads EICAR as uid 65534;
/// /bin/cat, and a same-named copy in another directory, get EPERM. With `+children`, a
/// shell's children are excluded too; without, they are not. A user-writable program is
/// refused at start (warning) and gets no exclusion.
#[test]
fn exclude_exe_by_inode_with_and_without_children() {
    require_root!();
    let w = World::new();
    let bad = w.watched.join("eicar.txt");
    write_file(&bad, &eicar(), 0o644);
    let bad_s = bad.to_str().unwrap();
    let cat = w.root.join("bin/cat");
    let same_name = w.root.join("other/cat");
    let writable = w.root.join("bin/wcat");
    let sh_children = w.root.join("bin/sh-children");
    let sh_alone = w.root.join("bin/sh-alone");
    copy_program("/bin/cat", &cat, 0o755);
    copy_program("/bin/cat", &same_name, 0o755);
    copy_program("/bin/cat", &writable, 0o777);
    copy_program("/bin/sh", &sh_children, 0o755);
    copy_program("/bin/sh", &sh_alone, 0o755);
    let conf = w.conf(&[
        ("OnAccessExcludeExe", cat.to_str().unwrap()),
        ("OnAccessExcludeExe", writable.to_str().unwrap()),
        (
            "OnAccessExcludeExe",
            &format!("{} +children", sh_children.display()),
        ),
    ]);
    let d = start(&w, &conf, &["--exclude-exe", sh_alone.to_str().unwrap()]);
    assert!(
        d.ready()
            .contains("excluded executables=3 of 4 (pidfd from each event)"),
        "{}",
        d.ready()
    );
    let warn = d.wait_line("refusal of the writable program", |l| {
        l.contains("OnAccessExcludeExe refused") && l.contains("wcat")
    });
    assert!(warn.contains("WARN"), "{warn}");

    let (ok, out, err) = run_as_nobody(&cat, &[bad_s]);
    assert!(ok && out == eicar(), "excluded cat must read EICAR: {err}");
    for other in [Path::new("/bin/cat"), &same_name, &writable] {
        let (ok, out, err) = run_as_nobody(other, &[bad_s]);
        assert!(!ok && out.is_empty(), "{} must be refused", other.display());
        assert!(err.contains(EPERM_TEXT), "{}: {err}", other.display());
    }
    let script = format!("/bin/cat {bad_s}; true");
    let (_, out, err) = run_as_nobody(&sh_children, &["-c", &script]);
    assert_eq!(
        out,
        eicar(),
        "a child of a +children program is excluded: {err}"
    );
    let (_, out, err) = run_as_nobody(&sh_alone, &["-c", &script]);
    assert!(out.is_empty() && err.contains(EPERM_TEXT), "{err}");
    // The program itself reading (not a child): the shell's own redirection.
    let (_, out, _) = run_as_nobody(
        &sh_alone,
        &["-c", &format!("read -r l < {bad_s}; echo \"$l\"")],
    );
    assert_eq!(
        out,
        [&eicar()[..], b"\n"].concat(),
        "sh-alone itself is excluded"
    );

    let summary = stop_cleanly(d);
    assert!(summary.contains("ExcludedExe="), "{summary}");
}

// ---------------------------------------------------------------------------------------
// SIGHUP: clamd.conf reloaded with no gap

/// Under load: uid 65534 opens EICAR in a loop through five reloads that each change the
/// configuration (a new daemon every time), and never once gets it (every open EPERM). An
/// include path added to clamd.conf is protected after its SIGHUP, and unprotected once
/// removed; a configuration with a bad line keeps the running one and says file:line:why.
#[test]
fn sighup_reloads_clamd_conf_with_no_unchecked_access() {
    require_root!();
    let w = World::new();
    let added = w.root.join("added");
    mkdir(&added);
    let bad = w.watched.join("eicar.txt");
    let bad2 = added.join("eicar.txt");
    write_file(&bad, &eicar(), 0o644);
    write_file(&bad2, &eicar(), 0o644);
    let base = w.conf(&[]);
    let mut d = start(&w, &base, &[]);
    assert_eq!(read_as_nobody(&bad2, &eicar()).1, 0, "not yet included");

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let opener = {
        let (stop, bad) = (stop.clone(), bad.clone());
        std::thread::spawn(move || {
            let (mut denied, mut other) = (0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match read_as_nobody(&bad, &eicar()).1 {
                    EPERM => denied += 1,
                    code => other.push(code),
                }
            }
            (denied, other)
        })
    };
    let with_added = format!("{base}OnAccessIncludePath {}\n", added.display());
    let confs = [
        with_added.clone(),
        base.clone(),
        format!("{base}OnAccessMaxThreads 2\n"),
        format!("{base}OnAccessEvents open,exec,close\n"),
        with_added.clone(),
    ];
    for (i, conf) in confs.iter().enumerate() {
        std::thread::sleep(Duration::from_millis(100));
        w.write_conf(conf);
        let status = d.reload();
        // The log is written after the answer: wait for the reload's line.
        let deadline = Instant::now() + LOG_TIMEOUT;
        while d.log().matches("new configuration in place").count() < i + 1 {
            assert!(
                Instant::now() < deadline,
                "reload {i} must replace the daemon: {status}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let want = if conf.contains("added") { EPERM } else { 0 };
        assert_eq!(
            read_as_nobody(&bad2, &eicar()).1,
            want,
            "{} after reload {i}",
            bad2.display()
        );
    }
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (denied, other) = opener.join().unwrap();
    assert!(
        other.is_empty(),
        "opens not refused during reloads: {other:?}"
    );
    assert!(
        denied >= 20,
        "the loop must run through the reloads ({denied} opens)"
    );
    eprintln!("{denied} opens of EICAR during 5 reloads, all EPERM");

    // A bad line: the running configuration stays, the log names file, line and reason.
    w.write_conf(&format!("{base}OnAccessMaxThreads many\n"));
    d.reload();
    let conf_path = w.root.join("moat.conf");
    let line = d.wait_line("reload error", |l| {
        l.contains("SIGHUP: the configuration does not load")
    });
    let want = format!(
        "{}:5: OnAccessMaxThreads: expected a number",
        conf_path.display()
    );
    assert!(line.contains(&want), "{line}");
    assert_eq!(
        read_as_nobody(&bad2, &eicar()).1,
        EPERM,
        "previous configuration kept"
    );
    assert_eq!(read_as_nobody(&bad, &eicar()).1, EPERM);
    stop_cleanly(d);
}
