//! What happens after a detection, end to end.
//!
//! - `moat scan --move/--copy/--remove` against real clamscan (the oracle): the same lines
//!   on stdout and the same files left behind (names, modes, contents). Skipped without
//!   clamscan unless `MOAT_REQUIRE_ORACLE=1`.
//! - `moat watch --move`, `moat quarantine list|restore|delete`, `VirusEvent` and
//!   `--detections-log` against the real kernel: uid 65534 opens, the daemon blocks, then
//!   acts. Root only (`skipped: needs root` otherwise, unless `MOAT_REQUIRE_PRIVILEGED=1`).
//!   Each test watches only its own tempdir (directory coverage, inode marks), writes its own
//!   config, and kills its daemon on drop. The EICAR file is built at run time.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use moat_testkit::watch::Watch as Daemon;
use moat_testkit::{privileged, read_as_nobody, watched_dir, write_file, NOBODY};

const EICAR_NAME: &str = "Moat.Test.Eicar.UNOFFICIAL";

fn md5_hex(data: &[u8]) -> String {
    use md5::{Digest, Md5};
    Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A database that detects EICAR by its MD5, as `Moat.Test.Eicar`.
fn eicar_db(dir: &Path) -> PathBuf {
    let eicar = moat_testkit::eicar();
    let db = dir.join("eicar.hdb");
    fs::write(
        &db,
        format!("{}:{}:Moat.Test.Eicar\n", md5_hex(&eicar), eicar.len()),
    )
    .unwrap();
    db
}

fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------------------
// moat scan against clamscan.

/// `src/` with two infected files (one nested), a clean one, and `q/` already holding a
/// file named as one of them (so the next name is `NAME.001`); `link` → `src`.
fn scan_tree(root: &Path) {
    let eicar = moat_testkit::eicar();
    fs::create_dir_all(root.join("src/sub")).unwrap();
    fs::create_dir_all(root.join("q")).unwrap();
    write_file(&root.join("src/e.com"), &eicar, 0o755);
    write_file(&root.join("src/sub/f.com"), &eicar, 0o640);
    write_file(&root.join("src/c.txt"), b"clean text\n", 0o644);
    write_file(&root.join("q/e.com"), b"already here\n", 0o644);
    std::os::unix::fs::symlink(root.join("src"), root.join("link")).unwrap();
}

/// Every file of a tree: relative path, mode, contents (symlinks as their target).
type Tree = Vec<(String, u32, Vec<u8>)>;

/// Every file under `root`.
fn snapshot(root: &Path) -> Tree {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            if m.is_dir() {
                stack.push(p);
            } else if m.file_type().is_symlink() {
                let t = fs::read_link(&p).unwrap();
                out.push((
                    rel,
                    0,
                    t.strip_prefix(root)
                        .unwrap_or(&t)
                        .display()
                        .to_string()
                        .into_bytes(),
                ));
            } else {
                out.push((rel, m.mode() & 0o7777, fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn run_in(cmd: &mut Command, dir: &Path, args: &[String]) -> Output {
    cmd.args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("spawn")
}

/// Runs clamscan and moat scan with `args` (`ROOT` replaced by each tree's root) on two
/// identical trees; returns (clamscan, moat) stdout with each root written as `ROOT`.
fn both(args: &[&str]) -> (String, String, Tree, Tree) {
    let (ta, ra) = watched_dir();
    let (tb, rb) = watched_dir();
    let mut outs = Vec::new();
    for (root, clam) in [(&ra, true), (&rb, false)] {
        scan_tree(root);
        let db = eicar_db(&root.join("q").parent().unwrap().join(".."))
            .canonicalize()
            .unwrap();
        let mut full: Vec<String> = vec![
            "--no-summary".into(),
            "-r".into(),
            format!("--database={}", db.display()),
        ];
        full.extend(
            args.iter()
                .map(|a| a.replace("ROOT", root.to_str().unwrap())),
        );
        let mut cmd = if clam {
            Command::new("clamscan")
        } else {
            let mut c = Command::new(env!("CARGO_BIN_EXE_moat"));
            c.arg("scan");
            c
        };
        let out = run_in(&mut cmd, root, &full);
        let text = String::from_utf8_lossy(&out.stdout).replace(root.to_str().unwrap(), "ROOT");
        outs.push((text, out.status.code()));
        fs::remove_file(&db).unwrap();
    }
    let (sa, sb) = (snapshot(&ra), snapshot(&rb));
    assert_eq!(outs[0].1, outs[1].1, "exit status (clamscan, moat)");
    drop((ta, tb));
    (outs[0].0.clone(), outs[1].0.clone(), sa, sb)
}

#[test]
fn scan_move_copy_remove_match_clamscan() {
    if !moat_testkit::clamscan() {
        return;
    }
    let cases: &[&[&str]] = &[
        &["--move=q", "src"],
        &["--copy=q", "src"],
        &["--remove", "src"],
        &["--move=ROOT/q", "ROOT/src"],
        &["--copy=q", "link/e.com"],
        &["--remove=yes", "-i", "src/sub/f.com", "src/e.com"],
        &["--move=q", "--remove", "src/e.com"],
    ];
    for args in cases {
        let (clam, moat, tree_clam, tree_moat) = both(args);
        assert!(
            clam.contains("FOUND"),
            "{args:?}: clamscan found nothing:\n{clam}"
        );
        assert_eq!(moat, clam, "{args:?}: stdout differs from clamscan's");
        assert_eq!(
            tree_moat, tree_clam,
            "{args:?}: files left differ from clamscan's"
        );
    }
}

#[test]
fn scan_move_to_a_missing_directory_fails_before_scanning_as_clamscan() {
    if !moat_testkit::clamscan() {
        return;
    }
    let (_t, root) = watched_dir();
    scan_tree(&root);
    let db = eicar_db(&root);
    let args = [
        format!("--database={}", db.display()),
        "--move=nonexistent".into(),
        "src".into(),
    ];
    let clam = run_in(&mut Command::new("clamscan"), &root, &args);
    let mut m = Command::new(env!("CARGO_BIN_EXE_moat"));
    m.arg("scan");
    let moat = run_in(&mut m, &root, &args);
    assert_eq!(moat.status.code(), clam.status.code());
    assert_eq!(clam.status.code(), Some(2));
    assert_eq!(moat.stdout, clam.stdout);
    assert_eq!(
        String::from_utf8_lossy(&clam.stdout),
        "action_setup: Failed to get realpath of nonexistent\n"
    );
    assert!(root.join("src/e.com").exists());
}

// ---------------------------------------------------------------------------------------
// moat watch: a daemon on a tempdir of its own.

/// `moat watch -c ROOT/moat.conf ARGS` watching `root/watched` (directory coverage) with the
/// EICAR database and `extra_conf`, READY=1 awaited (moat_testkit::watch: stopped and reaped
/// on drop).
fn start(root: &Path, extra_conf: &str, args: &[&str]) -> Daemon {
    let db = root.join("db");
    fs::create_dir_all(&db).unwrap();
    eicar_db(&db);
    let conf = root.join("moat.conf");
    fs::write(
        &conf,
        format!(
            "OnAccessCoverage directory\nOnAccessIncludePath {}\n{}DatabaseDirectory {}\n{extra_conf}",
            root.join("watched").display(),
            if extra_conf.contains("OnAccessPrevention") { "" } else { "OnAccessPrevention yes\n" },
            db.display()
        ),
    )
    .unwrap();
    Daemon::command(env!("CARGO_BIN_EXE_moat"), &conf, root)
        .args(args)
        .start()
}

/// SIGTERM, wait (bounded) for the exit, and return the log.
fn stop(mut d: Daemon) -> String {
    d.stop(Duration::from_secs(10));
    d.log()
}

/// A tempdir with `watched/` (0755) and the EICAR file at `watched/dl/eicar.com` owned by
/// 1234:4321, mode 0644, modified 2020-01-01.
fn world() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let (t, root) = watched_dir();
    let dir = root.join("watched/dl");
    fs::create_dir_all(&dir).unwrap();
    for d in [root.join("watched"), dir.clone()] {
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let file = dir.join("eicar.com");
    write_file(&file, &moat_testkit::eicar(), 0o644);
    std::os::unix::fs::chown(&file, Some(1234), Some(4321)).unwrap();
    let old = fs::FileTimes::new()
        .set_modified(std::time::UNIX_EPOCH + Duration::from_secs(1_577_836_800))
        .set_accessed(std::time::UNIX_EPOCH + Duration::from_secs(1_577_836_801));
    fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_times(old)
        .unwrap();
    (t, root, file)
}

fn quarantine(q: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_moat"))
        .arg("quarantine")
        .args(args)
        .arg("--dir")
        .arg(q)
        .output()
        .unwrap()
}

fn sidecars(q: &Path) -> Vec<serde_json::Value> {
    let mut v: Vec<PathBuf> = fs::read_dir(q)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    v.sort();
    v.iter()
        .filter_map(|p| serde_json::from_str(&fs::read_to_string(p).ok()?).ok())
        .collect()
}

#[test]
fn blocked_file_is_moved_to_quarantine_listed_restored_and_deleted() {
    if !privileged() {
        return;
    }
    let (_t, root, file) = world();
    let q = root.join("quarantine");
    let d = start(&root, "", &["--move", q.to_str().unwrap()]);
    let q_meta = fs::metadata(&q).unwrap();
    assert_eq!(
        (q_meta.uid(), q_meta.mode() & 0o7777),
        (0, 0o700),
        "created root 0700"
    );

    let (pid, code) = read_as_nobody(&file, &moat_testkit::eicar());
    assert_eq!(code, libc::EPERM, "blocked first");
    wait_until("the file to leave", Duration::from_secs(10), || {
        !file.exists()
            && sidecars(&q)
                .first()
                .is_some_and(|s| s["signature"] == EICAR_NAME)
    });
    let s = &sidecars(&q)[0];
    let id = s["id"].as_str().unwrap().to_owned();
    assert_eq!(s["original_path"], file.to_str().unwrap());
    assert_eq!(
        (s["uid"].as_u64(), s["gid"].as_u64(), s["mode"].as_u64()),
        (Some(1234), Some(4321), Some(0o644))
    );
    assert_eq!(s["mtime"][0], 1_577_836_800);
    assert_eq!(s["accessor"]["pid"], pid);
    assert_eq!(s["accessor"]["uid"], NOBODY);
    assert_eq!(s["action"], "moved");
    let held = fs::metadata(q.join(&id)).unwrap();
    assert_eq!(
        (held.uid(), held.mode() & 0o7777),
        (0, 0o600),
        "quarantined inode root 0600"
    );
    assert_eq!(fs::read(q.join(&id)).unwrap(), moat_testkit::eicar());

    let list = quarantine(&q, &["list"]);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(list.status.success(), "{list:?}");
    assert!(
        text.contains(&id) && text.contains(file.to_str().unwrap()) && text.contains(EICAR_NAME),
        "{text}"
    );

    // Restore refuses to replace a file that is there now.
    fs::write(&file, b"new file\n").unwrap();
    let refused = quarantine(&q, &["restore", &id]);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert_eq!(fs::read(&file).unwrap(), b"new file\n");
    fs::remove_file(&file).unwrap();

    let d = {
        // Restore while the daemon runs: the file comes back with owner, mode and times...
        let restored = quarantine(&q, &["restore", &id]);
        assert!(restored.status.success(), "{restored:?}");
        let m = fs::metadata(&file).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (1234, 4321, 0o644));
        // The scan's read moved atime (relatime) before the sidecar was written: the
        // recorded one comes back.
        assert_eq!(
            (m.mtime(), m.atime()),
            (1_577_836_800, s["atime"][0].as_i64().unwrap())
        );
        d
    };
    // ... and is still infected: the next open is blocked and it goes back in.
    let (_, code) = read_as_nobody(&file, &moat_testkit::eicar());
    assert_eq!(code, libc::EPERM);
    wait_until("the second quarantine", Duration::from_secs(10), || {
        sidecars(&q).len() == 1 && !file.exists()
    });
    let id2 = sidecars(&q)[0]["id"].as_str().unwrap().to_owned();
    assert_ne!(id2, id);
    let deleted = quarantine(&q, &["delete", &id2]);
    assert!(deleted.status.success(), "{deleted:?}");
    assert_eq!(fs::read_dir(&q).unwrap().count(), 0);
    let log = stop(d);
    assert!(log.contains(&format!("(quarantine ID {id})")), "{log}");
}

/// Notify-only: the opener reads the file (nothing blocked), then it is moved all the same.
#[test]
fn notify_only_reads_then_moves() {
    if !privileged() {
        return;
    }
    let (_t, root, file) = world();
    let q = root.join("quarantine");
    let d = start(
        &root,
        "OnAccessPrevention no\n",
        &["--move", q.to_str().unwrap()],
    );
    let (pid, code) = read_as_nobody(&file, &moat_testkit::eicar());
    assert_eq!(code, 0, "notify-only never blocks");
    wait_until("the quarantine", Duration::from_secs(10), || {
        !file.exists() && sidecars(&q).len() == 1
    });
    let accessor = &sidecars(&q)[0]["accessor"];
    assert_eq!(accessor["pid"], pid);
    // Nobody waits in notify-only mode: an opener that already exited has no uid to read.
    assert!(
        accessor["uid"] == NOBODY || accessor["uid"].is_null(),
        "{accessor}"
    );
    stop(d);
}

#[test]
fn restore_never_follows_a_symlink_planted_in_the_parents() {
    if !privileged() {
        return;
    }
    let (_t, root, file) = world();
    let q = root.join("quarantine");
    let d = start(&root, "", &["--move", q.to_str().unwrap()]);
    let (_, code) = read_as_nobody(&file, &moat_testkit::eicar());
    assert_eq!(code, libc::EPERM);
    wait_until("the quarantine", Duration::from_secs(10), || {
        sidecars(&q).len() == 1
    });
    stop(d);
    let id = sidecars(&q)[0]["id"].as_str().unwrap().to_owned();
    // The user swaps the original directory for a symlink to somewhere else.
    let elsewhere = root.join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    fs::remove_dir(file.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&elsewhere, file.parent().unwrap()).unwrap();
    let out = quarantine(&q, &["restore", &id]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(
        fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "nothing written through the link"
    );
    assert!(q.join(&id).exists(), "the entry stays");
}

#[test]
fn quarantine_directory_open_to_others_is_refused_at_start() {
    if !privileged() {
        return;
    }
    let (_t, root, _file) = world();
    let q = root.join("quarantine");
    fs::create_dir(&q).unwrap();
    fs::set_permissions(&q, fs::Permissions::from_mode(0o755)).unwrap();
    let conf = root.join("moat.conf");
    fs::write(
        &conf,
        format!(
            "OnAccessCoverage directory\nOnAccessIncludePath {}\n",
            root.join("watched").display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_moat"))
        .args([
            "watch",
            "-c",
            conf.to_str().unwrap(),
            "--move",
            q.to_str().unwrap(),
        ])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("mode 0755") && err.contains("chmod 700"),
        "{err}"
    );
}

#[test]
fn virus_event_runs_after_the_answer_with_clamds_environment() {
    if !privileged() {
        return;
    }
    let (_t, root, file) = world();
    let out = root.join("event.env");
    let script = root.join("event.sh");
    // Sleeps first: the blocked open must not wait for it.
    write_file(
        &script,
        format!("#!/bin/sh\n/bin/sleep 2\n/usr/bin/env -0 > {0}.tmp\necho \"$@\" > {0}.args\n/bin/mv {0}.tmp {0}\n", out.display()).as_bytes(),
        0o755,
    );
    let d = start(
        &root,
        &format!("VirusEvent {} %v %f\n", script.display()),
        &[],
    );
    let start = Instant::now();
    let (_, code) = read_as_nobody(&file, &moat_testkit::eicar());
    let waited = start.elapsed();
    assert_eq!(code, libc::EPERM);
    assert!(
        !out.exists(),
        "the open returned ({waited:?}) before the command ended"
    );
    wait_until("the VirusEvent output", Duration::from_secs(10), || {
        out.exists()
    });
    let mut env: Vec<String> = fs::read_to_string(&out)
        .unwrap()
        .split_terminator('\0')
        .filter(|v| !v.starts_with("PWD="))
        .map(str::to_owned)
        .collect();
    env.sort();
    assert_eq!(
        env,
        [
            format!("CLAM_VIRUSEVENT_FILENAME={}", file.display()),
            format!("CLAM_VIRUSEVENT_VIRUSNAME={EICAR_NAME}")
        ]
    );
    let args = fs::read_to_string(format!("{}.args", out.display())).unwrap();
    assert_eq!(
        args.trim_end(),
        format!(
            "{EICAR_NAME} {}",
            moat_react::virus_event::FILENAME_DISABLED
        )
    );
    stop(d);
}

/// Runs perl as uid 65534 opening `path` `n` times; every open must fail with EPERM.
fn open_loop_as_nobody(path: &Path, n: u32) {
    let mut cmd = Command::new("perl");
    cmd.args([
        "-e",
        "for (1..$ARGV[1]) { open(my $f, '<', $ARGV[0]) and exit 3; $!{EPERM} or exit 4 } exit 0",
        path.to_str().unwrap(),
        &n.to_string(),
    ]);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(NOBODY) != 0
                || libc::setuid(NOBODY) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let status = cmd
        .status()
        .expect("perl (perl-base is essential in Debian)");
    assert_eq!(
        status.code(),
        Some(0),
        "every open denied with EPERM (3: one succeeded, 4: other errno)"
    );
}

#[test]
fn detections_log_records_the_accessor_and_bounds_a_loop_of_opens() {
    if !privileged() {
        return;
    }
    let (_t, root, file) = world();
    let log = root.join("detections.jsonl");
    let runs = root.join("runs");
    let script = root.join("count.sh");
    write_file(
        &script,
        format!("#!/bin/sh\necho run >> {}\n", runs.display()).as_bytes(),
        0o755,
    );
    let conf = format!(
        "MoatDetectionLog {}\nVirusEvent {}\n",
        log.display(),
        script.display()
    );
    let d = start(&root, &conf, &[]);
    let (pid, code) = read_as_nobody(&file, &moat_testkit::eicar());
    assert_eq!(code, libc::EPERM);
    wait_until("the first record", Duration::from_secs(10), || {
        fs::read_to_string(&log).is_ok_and(|t| t.lines().count() == 1)
    });
    let first: serde_json::Value =
        serde_json::from_str(fs::read_to_string(&log).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(first["event"], "detection");
    assert_eq!(first["path"], file.to_str().unwrap());
    assert_eq!(first["signature"], EICAR_NAME);
    assert_eq!(first["action"], "blocked");
    assert_eq!(first["access"], "open");
    assert_eq!(first["pid"], pid);
    assert_eq!(first["uid"], NOBODY);
    assert!(first["comm"].is_string() && first["exe"].is_string() && first["time"].is_string());

    open_loop_as_nobody(&file, 10_000);
    stop(d);
    let text = fs::read_to_string(&log).unwrap();
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        records.len() <= 3,
        "10,001 blocked opens wrote {} lines:\n{text}",
        records.len()
    );
    let repeated: u64 = records
        .iter()
        .filter(|r| r["event"] == "repeated")
        .map(|r| r["count"].as_u64().unwrap())
        .sum();
    let dropped: u64 = records
        .iter()
        .filter(|r| r["event"] == "dropped")
        .map(|r| r["count"].as_u64().unwrap())
        .sum();
    assert_eq!(repeated + dropped, 10_000, "every repeat counted:\n{text}");
    // VirusEvent ran once for the whole loop (one path and signature within a minute).
    assert_eq!(fs::read_to_string(&runs).unwrap(), "run\n");
}
