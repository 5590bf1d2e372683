//! `moat watch` end to end, against the real kernel: the daemon is started as a process on a
//! tempdir of its own, and forked children (uid 65534, see `moat-testkit`) open, read and
//! execute files there. They need root (fanotify permission events); without it they print
//! `skipped: needs root (...)` and pass, unless `MOAT_REQUIRE_PRIVILEGED=1`.
//!
//! Safety: every test builds its own [`World`] (a tempdir) and the daemon only watches its
//! `watched/` subdirectory with `OnAccessCoverage directory` (inode marks), or, for the
//! default filesystem scope and mount marks, a directory on a private tmpfs the test mounts
//! and unmounts itself ([`Tmpfs`], [`FsWorld`]): a filesystem or mount mark never reaches the
//! machine's own filesystems. Each uses a config file of the test's own (never
//! /etc/clamav/clamd.conf). The signature database lives outside the watched tree. Every
//! wait is bounded; the daemon is SIGKILLed and reaped on drop (the kernel then allows
//! anything pending) and so is every child. The EICAR test file is built at run time from
//! two hex halves, so no file of the repository contains it.

use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use moat_testkit::fuse::StallingFuse;
use moat_testkit::watch::{Watch as Daemon, WatchCommand, LOG_TIMEOUT};
use moat_testkit::{
    exec_as_nobody, privileged, read_as_nobody, spawn_as, watched_dir, write_file, Action, Child,
    NOBODY,
};
use regex::Regex;

const EPERM: i32 = libc::EPERM;
/// What infected files contain; `test.ndb` detects it anywhere in a file.
const MARKER: &str = "MOAT-TEST-MARKER";
const MARKER_SIG: &str = "Moat.Test.Marker:0:*:4d4f41542d544553542d4d41524b4552";
const MARKER_FOUND: &str = "Moat.Test.Marker.UNOFFICIAL FOUND";
const EICAR_FOUND: &str = "Moat.Test.Eicar.UNOFFICIAL FOUND";
/// The contract: after SIGTERM/SIGINT the daemon is gone within a second.
const STOP_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the tests let the tree tracker catch up after a mkdir or rename (it reacts to
/// asynchronous directory events, so there is a short window by design).
const SETTLE: Duration = Duration::from_millis(200);
/// Size of the slow file: a sparse file with the marker at its very end. Scanning it takes
/// seconds (about 6.7 s measured with `moat scan` here), far beyond the short deadlines.
const SLOW_SIZE: u64 = 2 << 30;

// ---------------------------------------------------------------------------------------
// The test's world: directories and the config file.

/// One test's tempdir (0755, canonical path):
/// `watched/` (the only directory the daemon watches), `outside/` (a sibling, never
/// watched), `db/` (signatures), `tmp/` (TemporaryDirectory), and the daemon's files.
struct World {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    watched: PathBuf,
    outside: PathBuf,
    db: PathBuf,
}

impl World {
    fn new() -> World {
        let (tmp, root) = watched_dir();
        let w = World {
            watched: root.join("watched"),
            outside: root.join("outside"),
            db: root.join("db"),
            root,
            _tmp: tmp,
        };
        for d in [&w.watched, &w.outside, &w.db, &w.root.join("tmp")] {
            mkdir(d);
        }
        fs::write(w.db.join("test.ndb"), format!("{MARKER_SIG}\n")).unwrap();
        // The EICAR file by its MD5 (computed here: no file of the repository holds it).
        let eicar = eicar();
        fs::write(
            w.db.join("eicar.hdb"),
            format!("{}:{}:Moat.Test.Eicar\n", md5_hex(&eicar), eicar.len()),
        )
        .unwrap();
        w
    }

    /// A path under `watched/`.
    fn at(&self, rel: &str) -> PathBuf {
        self.watched.join(rel)
    }

    /// The default config: directory coverage of `watched/` with prevention, database and
    /// temporary directory in the tempdir.
    fn conf(&self) -> Conf {
        Conf(vec![
            ("OnAccessCoverage".into(), "directory".into()),
            ("OnAccessIncludePath".into(), path_str(&self.watched)),
            ("OnAccessPrevention".into(), "yes".into()),
            ("DatabaseDirectory".into(), path_str(&self.db)),
            (
                "TemporaryDirectory".into(),
                path_str(&self.root.join("tmp")),
            ),
        ])
    }
}

/// clamd.conf lines, in order.
struct Conf(Vec<(String, String)>);

impl Conf {
    /// Sets a non-repeatable key (replacing its line) or adds it.
    fn set(mut self, key: &str, value: &str) -> Conf {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(kv) => kv.1 = value.into(),
            None => self.0.push((key.into(), value.into())),
        }
        self
    }

    /// Adds one more line for a repeatable key.
    fn add(mut self, key: &str, value: &str) -> Conf {
        self.0.push((key.into(), value.into()));
        self
    }

    /// Drops every line of `key`.
    fn without(mut self, key: &str) -> Conf {
        self.0.retain(|(k, _)| k != key);
        self
    }

    fn text(&self) -> String {
        self.0.iter().map(|(k, v)| format!("{k} {v}\n")).collect()
    }
}

fn path_str(p: &Path) -> String {
    p.to_str().expect("UTF-8 tempdir path").to_owned()
}

/// mkdir -p with every created directory 0755 whatever the umask (uid 65534 must get in).
fn mkdir(dir: &Path) {
    let mut missing = Vec::new();
    let mut d = dir;
    while !d.exists() {
        missing.push(d.to_owned());
        d = d.parent().unwrap();
    }
    for d in missing.iter().rev() {
        fs::create_dir(d).unwrap();
        fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// Writes `content` at `path` (0644), creating the parent directories.
fn put(path: &Path, content: &[u8]) -> PathBuf {
    mkdir(path.parent().unwrap());
    write_file(path, content, 0o644);
    path.to_owned()
}

/// Content the database detects (`tag` keeps files distinct).
fn infected(tag: &str) -> Vec<u8> {
    format!("infected file {tag}\n{MARKER}\nend\n").into_bytes()
}

fn clean(tag: &str) -> Vec<u8> {
    format!("clean file {tag}, nothing to see\n").into_bytes()
}

/// The genuine EICAR test file (built at run time, checked against its well-known MD5).
fn eicar() -> Vec<u8> {
    moat_testkit::eicar()
}

fn md5_hex(data: &[u8]) -> String {
    use md5::{Digest, Md5};
    Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A sparse file of [`SLOW_SIZE`] bytes whose last bytes are the marker: the scan has to
/// read all of it before it can tell.
fn slow_file(path: &Path) -> PathBuf {
    mkdir(path.parent().unwrap());
    let mut f = fs::File::create(path).unwrap();
    f.set_len(SLOW_SIZE - MARKER.len() as u64).unwrap();
    f.seek(SeekFrom::End(0)).unwrap();
    f.write_all(MARKER.as_bytes()).unwrap();
    drop(f);
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).unwrap();
    path.to_owned()
}

/// Config for the slow-file tests: nothing limits the size of what is scanned.
fn unlimited(conf: Conf) -> Conf {
    conf.set("OnAccessMaxFileSize", "0")
        .set("MaxFileSize", "0")
        .set("MaxScanSize", "0")
}

// ---------------------------------------------------------------------------------------
// The daemon.

/// `moat watch -c <world>/moat.conf ARGS...` with `conf` written there (moat_testkit::watch:
/// `start()` waits for READY=1, `spawn()` does not; stopped and reaped on drop).
fn daemon(world: &World, conf: &Conf, args: &[&str]) -> WatchCommand {
    let conf_path = world.root.join("moat.conf");
    fs::write(&conf_path, conf.text()).unwrap();
    Daemon::command(env!("CARGO_BIN_EXE_moat"), &conf_path, &world.root).args(args)
}

// ---------------------------------------------------------------------------------------
// Assertions on what uid 65534 gets.

/// Reading `path` as nobody must fail with EPERM; returns the reader's pid.
#[track_caller]
fn assert_blocked(path: &Path, content: &[u8]) -> i32 {
    let (pid, code) = read_as_nobody(path, content);
    assert_eq!(
        code,
        EPERM,
        "{}: open as uid 65534 must fail with EPERM",
        path.display()
    );
    pid
}

/// Reading `path` as nobody must succeed with exactly `content`.
#[track_caller]
fn assert_readable(path: &Path, content: &[u8]) {
    let (_, code) = read_as_nobody(path, content);
    assert_eq!(
        code,
        0,
        "{}: read as uid 65534 must succeed with its content (EPERM = {EPERM})",
        path.display()
    );
}

/// Opening `path` in this process (root) must fail with EPERM.
#[track_caller]
fn assert_blocked_for_root(path: &Path) {
    let err = fs::read(path).expect_err("root's open of an infected file must fail");
    assert_eq!(err.raw_os_error(), Some(EPERM), "{}: {err}", path.display());
}

// ---------------------------------------------------------------------------------------
// Tests.

/// Runs a directory-scope test once per tree tracking backend, as `$name::fanotify` and
/// `$name::inotify` (`OnAccessTracking` in the config), so a failure names the backend.
macro_rules! per_backend {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn fanotify() {
                super::$name("fanotify")
            }
            #[test]
            fn inotify() {
                super::$name("inotify")
            }
        }
    )*};
}

per_backend!(
    directory_created_after_start_is_covered,
    subtree_moved_in_is_covered,
    subtree_moved_out_is_released,
    rename_inside_the_tree_keeps_protection,
    no_ddd_watches_the_top_level_only,
    exclude_path_skips_matching_directories,
    extra_scanning_reports_written_moved_in_and_discovered_files,
    unmarkable_subdirectory_is_reported_and_siblings_are_covered,
);

/// Starts the daemon with `OnAccessTracking tracking` and, with DDD, checks that this
/// backend is the one in use.
fn start_tracking(w: &World, conf: Conf, tracking: &str) -> Daemon {
    let ddd = !conf
        .0
        .iter()
        .any(|(k, v)| k == "OnAccessDisableDDD" && v == "yes");
    let d = daemon(w, &conf.set("OnAccessTracking", tracking), &[]).start();
    if ddd {
        // The startup line (sent as STATUS= with READY=1) names the backend in use.
        let want = format!("tracking={tracking};");
        assert!(d.ready().contains(&want), "`{want}` not in {:?}", d.ready());
    }
    d
}

/// A tree that exists at start: infected files in a nested directory are refused to read
/// and exec, also to root; clean ones are served; each block is logged with its fields.
#[test]
fn infected_file_in_existing_nested_dir_is_blocked() {
    if !privileged() {
        return;
    }
    let w = World::new();
    let bad = put(&w.at("a/b/bad.txt"), &infected("ab"));
    let good = put(&w.at("a/b/clean.txt"), &clean("ab"));
    let bad_sh = w.at("a/b/bad.sh");
    write_file(
        &bad_sh,
        format!("#!/bin/sh\n# {MARKER}\nexit 0\n").as_bytes(),
        0o755,
    );
    let good_sh = w.at("a/b/good.sh");
    write_file(&good_sh, b"#!/bin/sh\nexit 7\n", 0o755);
    let d = daemon(&w, &w.conf(), &[]).start();
    assert!(
        d.ready().lines().any(|l| l.starts_with("STATUS=")),
        "no STATUS= line in the READY datagram: {:?}",
        d.ready()
    );

    // The start-up summary: watched/, a/ and a/b/ under one include path.
    let re =
        Regex::new(r"watching (\d+) directories under (\d+) include paths? in \d+ ms").unwrap();
    let line = d.wait_line("`watching N directories ...`", |l| re.is_match(l));
    let caps = re.captures(&line).unwrap();
    assert_eq!((&caps[1], &caps[2]), ("3", "1"), "{line}");
    // OnAccessTracking auto (the default) picks fanotify on this kernel and filesystem.
    assert!(d.ready().contains("tracking=fanotify;"), "{:?}", d.ready());

    let pid = assert_blocked(&bad, &infected("ab"));
    assert_readable(&good, &clean("ab"));
    let (_, code) = exec_as_nobody(&bad_sh);
    assert_eq!(
        code, EPERM,
        "exec of an infected script must fail with EPERM"
    );
    let (_, code) = exec_as_nobody(&good_sh);
    assert_eq!(code, 7, "a clean script runs");
    assert_blocked_for_root(&bad);

    let line = d.wait_found(&bad, MARKER_FOUND, pid);
    for field in ["uid=65534", "comm=", "action=blocked"] {
        assert!(line.contains(field), "`{field}` missing in: {line}");
    }
}

/// The EICAR test file (built at run time), detected by an MD5 signature.
#[test]
fn eicar_is_blocked() {
    if !privileged() {
        return;
    }
    let w = World::new();
    let file = put(&w.at("dl/eicar.com"), &eicar());
    let d = daemon(&w, &w.conf(), &[]).start();
    let pid = assert_blocked(&file, &eicar());
    d.wait_found(&file, EICAR_FOUND, pid);
}

/// Text matched only through its normalized copy (a target-7 signature on the lowercase
/// copy; the file itself is upper case), small and large: the daemon runs that pass beside
/// the raw pass for files past `PARALLEL_FROM` (moat_engine's `Limits::parallel_from`),
/// in memory up to 1 MiB and streamed beyond. Each is blocked for uid 65534; a large
/// clean text file stays readable.
#[test]
fn text_matched_on_its_normalized_copy_is_blocked_at_every_size() {
    if !privileged() {
        return;
    }
    let w = World::new();
    // "moat-text-marker": only the normalized copy can hold it in lower case.
    fs::write(
        w.db.join("text.ndb"),
        "Moat.Test.Text:7:*:6d6f61742d746578742d6d61726b6572\n",
    )
    .unwrap();
    let text = |len: usize, mark: bool| {
        let line = b"SOME UPPER CASE TEXT, LINE AFTER LINE\n";
        let mut data: Vec<u8> = line.iter().copied().cycle().take(len).collect();
        if mark {
            let at = len - 40;
            data[at..at + 16].copy_from_slice(b"MOAT-TEXT-MARKER");
        }
        data
    };
    let sizes = [
        ("small.txt", 2_000),
        ("mid.txt", 300 << 10),
        ("big.txt", 3 << 20),
    ];
    let files: Vec<(PathBuf, Vec<u8>)> = sizes
        .iter()
        .map(|&(name, len)| {
            (
                put(&w.at(&format!("t/{name}")), &text(len, true)),
                text(len, true),
            )
        })
        .collect();
    let clean = put(&w.at("t/clean.txt"), &text(3 << 20, false));
    let d = daemon(&w, &w.conf(), &[]).start();
    for (path, content) in &files {
        let pid = assert_blocked(path, content);
        d.wait_found(path, "Moat.Test.Text.UNOFFICIAL FOUND", pid);
    }
    assert_readable(&clean, &text(3 << 20, false));
}

/// No database installed (an empty DatabaseDirectory): the built-in test set blocks the
/// genuine EICAR file (checked against its well-known MD5, not the built-in constant).
#[test]
fn builtin_database_blocks_genuine_eicar() {
    if !privileged() {
        return;
    }
    let w = World::new();
    let empty = w.root.join("empty-db");
    mkdir(&empty);
    let file = put(&w.at("dl/eicar.com"), &eicar());
    let conf = w.conf().set("DatabaseDirectory", &path_str(&empty));
    let d = daemon(&w, &conf, &[]).start();
    let pid = assert_blocked(&file, &eicar());
    d.wait_found(&file, "Eicar-Test-Signature FOUND", pid);
}

/// `DetectPUA yes` in clamd.conf loads the PUA databases, as clamscan's `--detect-pua`:
/// a file matched only by a `.hdu` signature is blocked with it and readable without it
/// (clamd's default).
#[test]
fn detect_pua_key_loads_pua_databases() {
    if !privileged() {
        return;
    }
    let body = b"a potentially unwanted program, for the test\n".to_vec();
    let world = || {
        let w = World::new();
        fs::write(
            w.db.join("test.hdu"),
            format!("{}:{}:Moat.Test.Pua\n", md5_hex(&body), body.len()),
        )
        .unwrap();
        let file = put(&w.at("dl/pua.bin"), &body);
        (w, file)
    };
    let (w, file) = world();
    let d = daemon(&w, &w.conf(), &[]).start();
    assert_readable(&file, &body);
    drop(d);
    let (w, file) = world();
    let d = daemon(&w, &w.conf().set("DetectPUA", "yes"), &[]).start();
    let pid = assert_blocked(&file, &body);
    d.wait_found(&file, "Moat.Test.Pua.UNOFFICIAL FOUND", pid);
}

/// Include paths given as DIR arguments (no OnAccessIncludePath, no OnAccessPrevention in
/// the file): prevention is on.
#[test]
fn dir_arguments_enforce() {
    if !privileged() {
        return;
    }
    let w = World::new();
    let bad = put(&w.at("x/bad"), &infected("x"));
    let good = put(&w.at("x/good"), &clean("x"));
    let conf = w
        .conf()
        .without("OnAccessIncludePath")
        .without("OnAccessPrevention");
    let _d = daemon(&w, &conf, &[&path_str(&w.watched)]).start();
    assert_blocked(&bad, &infected("x"));
    assert_readable(&good, &clean("x"));
}

/// Directories created after start (mkdir -p) are covered once the tracker caught up.
fn directory_created_after_start_is_covered(tracking: &str) {
    if !privileged() {
        return;
    }
    let w = World::new();
    let _d = start_tracking(&w, w.conf(), tracking);
    mkdir(&w.at("a/b/c"));
    std::thread::sleep(SETTLE);
    let bad = put(&w.at("a/b/c/bad"), &infected("abc"));
    let good = put(&w.at("a/b/c/good"), &clean("abc"));
    let mid = put(&w.at("a/mid-bad"), &infected("a"));
    assert_blocked(&bad, &infected("abc"));
    assert_blocked(&mid, &infected("a"));
    assert_readable(&good, &clean("abc"));
}

/// A subtree prepared outside and renamed into the watched tree is covered.
fn subtree_moved_in_is_covered(tracking: &str) {
    if !privileged() {
        return;
    }
    let w = World::new();
    let src = w.outside.join("pkg");
    put(&src.join("lib/deep/bad"), &infected("deep"));
    put(&src.join("lib/good"), &clean("lib"));
    put(&src.join("top-bad"), &infected("top"));
    let _d = start_tracking(&w, w.conf(), tracking);
    fs::rename(&src, w.at("pkg")).unwrap();
    std::thread::sleep(SETTLE);
    assert_blocked(&w.at("pkg/lib/deep/bad"), &infected("deep"));
    assert_blocked(&w.at("pkg/top-bad"), &infected("top"));
    assert_readable(&w.at("pkg/lib/good"), &clean("lib"));
}

/// A subtree moved out of the watched tree loses its marks; what stays is still covered.
fn subtree_moved_out_is_released(tracking: &str) {
    if !privileged() {
        return;
    }
    let w = World::new();
    put(&w.at("gone/bad"), &infected("gone"));
    put(&w.at("gone/x/bad"), &infected("gone-x"));
    let stay = put(&w.at("stay/y/bad"), &infected("stay"));
    let _d = start_tracking(&w, w.conf(), tracking);
    // Covered before the move, so the release below is the move's doing.
    assert_blocked(&w.at("gone/x/bad"), &infected("gone-x"));

    fs::rename(w.at("gone"), w.outside.join("gone")).unwrap();
    std::thread::sleep(SETTLE);
    assert_readable(&w.outside.join("gone/x/bad"), &infected("gone-x"));
    assert_readable(&w.outside.join("gone/bad"), &infected("gone"));
    assert_blocked(&stay, &infected("stay"));
}

/// Renames inside the tree (a subtree to another parent, then a new name in place): the
/// subtree stays protected at its new place, and the tree knows where it is (a directory
/// created in it afterwards is covered, and moving it out later releases it).
fn rename_inside_the_tree_keeps_protection(tracking: &str) {
    if !privileged() {
        return;
    }
    let w = World::new();
    put(&w.at("a/sub/bad"), &infected("sub"));
    mkdir(&w.at("b"));
    let _d = start_tracking(&w, w.conf(), tracking);
    fs::rename(w.at("a/sub"), w.at("b/moved")).unwrap();
    fs::rename(w.at("b"), w.at("c")).unwrap();
    std::thread::sleep(SETTLE);
    assert_blocked(&w.at("c/moved/bad"), &infected("sub"));
    mkdir(&w.at("c/moved/new"));
    std::thread::sleep(SETTLE);
    let fresh = put(&w.at("c/moved/new/bad"), &infected("fresh"));
    assert_blocked(&fresh, &infected("fresh"));
    fs::rename(w.at("c/moved"), w.outside.join("moved")).unwrap();
    std::thread::sleep(SETTLE);
    assert_readable(&w.outside.join("moved/new/bad"), &infected("fresh"));
    assert_readable(&w.outside.join("moved/bad"), &infected("sub"));
}

/// Without DDD only the include path itself is watched, not its subdirectories.
fn no_ddd_watches_the_top_level_only(tracking: &str) {
    if !privileged() {
        return;
    }
    let w = World::new();
    let top = put(&w.at("bad"), &infected("top"));
    let sub = put(&w.at("sub/bad"), &infected("sub"));
    let _d = start_tracking(&w, w.conf().set("OnAccessDisableDDD", "yes"), tracking);
    assert_blocked(&top, &infected("top"));
    assert_readable(&sub, &infected("sub"));
}

/// Notify-only (the flag wins over `OnAccessPrevention yes`): access is allowed, the
/// detection is logged with action=reported.
#[test]
fn notify_only_reports_without_blocking() {
    if !privileged() {
        return;
    }
    let w = World::new();
    let bad = put(&w.at("n/bad"), &infected("n"));
    let d = daemon(&w, &w.conf(), &["--no-prevention"]).start();
    let (pid, code) = read_as_nobody(&bad, &infected("n"));
    assert_eq!(code, 0, "notify-only must not block");
    let line = d.wait_found(&bad, MARKER_FOUND, pid);
    assert!(line.contains("action=reported"), "{line}");
}

/// OnAccessExcludePath: matching directories (existing or created later) are not
/// protected; the others are.
fn exclude_path_skips_matching_directories(tracking: &str) {
    if !privileged() {
        return;
    }
    let w = World::new();
    let old = put(&w.at("skip-old/bad"), &infected("old"));
    let kept = put(&w.at("keep/bad"), &infected("keep"));
    let conf = w.conf().add("OnAccessExcludePath", "/skip-[a-z]+$");
    let _d = start_tracking(&w, conf, tracking);
    assert_readable(&old, &infected("old"));
    assert_blocked(&kept, &infected("keep"));

    mkdir(&w.at("keep/skip-new"));
    mkdir(&w.at("keep/new"));
    std::thread::sleep(SETTLE);
    let new_skipped = put(&w.at("keep/skip-new/bad"), &infected("new"));
    let new_kept = put(&w.at("keep/new/bad"), &infected("new-keep"));
    assert_readable(&new_skipped, &infected("new"));
    assert_blocked(&new_kept, &infected("new-keep"));
}

/// OnAccessExcludeUID 65534: nobody is not scanned; root still is.
#[test]
fn exclude_uid_lets_that_uid_through() {
    if !privileged() {
        return;
    }
    let w = World::new();
    let bad = put(&w.at("u/bad"), &infected("u"));
    let _d = daemon(&w, &w.conf().add("OnAccessExcludeUID", "65534"), &[]).start();
    assert_readable(&bad, &infected("u"));
    assert_blocked_for_root(&bad);
}

/// OnAccessExcludeUname nobody: the same, by name.
#[test]
fn exclude_uname_lets_that_user_through() {
    if !privileged() {
        return;
    }
    let w = World::new();
    let bad = put(&w.at("u/bad"), &infected("u"));
    let _d = daemon(&w, &w.conf().add("OnAccessExcludeUname", "nobody"), &[]).start();
    assert_readable(&bad, &infected("u"));
    assert_blocked_for_root(&bad);
}

/// OnAccessExcludeRootUID yes: root (this process) reads; nobody is still blocked.
#[test]
fn exclude_root_uid_lets_root_through() {
    if !privileged() {
        return;
    }
    let w = World::new();
    let bad = put(&w.at("r/bad"), &infected("r"));
    let _d = daemon(&w, &w.conf().set("OnAccessExcludeRootUID", "yes"), &[]).start();
    assert_eq!(fs::read(&bad).expect("root is excluded"), infected("r"));
    assert_blocked(&bad, &infected("r"));
}

/// Reads the slow file as nobody under a 50 ms deadline: the daemon (kept alive so that a
/// failing test prints its log), exit code, time taken, and whether the detection was
/// already logged when the reader finished.
fn read_slow_file_with_deadline(w: &World, deny_on_error: &str) -> (Daemon, i32, Duration, bool) {
    let big = slow_file(&w.at("s/big"));
    let conf = unlimited(w.conf())
        .set("OnAccessScanTimeout", "50ms")
        .set("OnAccessDenyOnError", deny_on_error);
    let d = daemon(w, &conf, &[]).start();
    let start = Instant::now();
    let code = spawn_as(NOBODY, &Action::read_any(&big)).wait();
    let took = start.elapsed();
    let detected = d
        .log()
        .contains(&format!("{}: {MARKER_FOUND}", big.display()));
    (d, code, took, detected)
}

/// OnAccessDenyOnError yes: a scan past its deadline denies, long before it could finish.
#[test]
fn deny_on_error_denies_a_scan_past_its_deadline() {
    if !privileged() {
        return;
    }
    let w = World::new();
    let (_d, code, took, detected) = read_slow_file_with_deadline(&w, "yes");
    assert_eq!(code, EPERM, "deadline passed with DenyOnError: EPERM");
    assert!(took < Duration::from_secs(2), "answered after {took:?}");
    assert!(!detected, "the scan finished first: grow SLOW_SIZE");
}

/// OnAccessDenyOnError no: a scan past its deadline allows.
#[test]
fn deadline_without_deny_on_error_allows() {
    if !privileged() {
        return;
    }
    let w = World::new();
    let (_d, code, took, _) = read_slow_file_with_deadline(&w, "no");
    assert_eq!(code, 0, "deadline passed without DenyOnError: allowed");
    assert!(took < Duration::from_secs(2), "answered after {took:?}");
}

/// Starts a daemon with a 60 s deadline and a nobody reader of the slow file that is still
/// waiting for its verdict 300 ms later.
fn daemon_with_a_waiting_reader(w: &World) -> (Daemon, Child) {
    let big = slow_file(&w.at("s/big"));
    let conf = unlimited(w.conf())
        .set("OnAccessScanTimeout", "60s")
        .set("OnAccessDenyOnError", "yes");
    let d = daemon(w, &conf, &[]).start();
    let mut reader = spawn_as(NOBODY, &Action::read_any(&big));
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        reader.running(),
        "the reader must still wait for the verdict"
    );
    (d, reader)
}

/// SIGKILL while a reader waits: the kernel allows on group close, nothing hangs.
#[test]
fn killed_daemon_releases_a_waiting_reader() {
    if !privileged() {
        return;
    }
    let w = World::new();
    let (mut d, mut reader) = daemon_with_a_waiting_reader(&w);
    d.signal(libc::SIGKILL);
    let (status, _) = d.wait_exit(Duration::from_secs(5));
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    assert_eq!(
        reader.wait_for(Duration::from_secs(5)),
        0,
        "the group's close allows"
    );
}

/// SIGTERM while a reader waits on a long scan: the daemon answers it and exits 0 promptly.
#[test]
fn sigterm_with_a_pending_scan_answers_and_exits_promptly() {
    if !privileged() {
        return;
    }
    let w = World::new();
    let (mut d, mut reader) = daemon_with_a_waiting_reader(&w);
    d.signal(libc::SIGTERM);
    let (status, took) = d.wait_exit(STOP_TIMEOUT);
    assert!(status.success(), "exit status {status} after {took:?}");
    let code = reader.wait_for(Duration::from_secs(5));
    assert!(code == 0 || code == EPERM, "reader exit code {code}");
}

/// 200 concurrent readers (all started before any is waited on) of 50 files across nested
/// directories: every infected file refused, every clean one served.
#[test]
fn many_concurrent_readers_get_the_right_verdicts() {
    if !privileged() {
        return;
    }
    let w = World::new();
    let dirs = ["d0", "d0/e1", "d1", "d1/e1/e2", "d2/e1"];
    let files: Vec<(PathBuf, Vec<u8>, i32)> = (0..50)
        .map(|i| {
            let dir = dirs[i % dirs.len()];
            if i % 5 == 0 {
                let c = infected(&i.to_string());
                (put(&w.at(&format!("{dir}/bad{i}")), &c), c, EPERM)
            } else {
                let c = clean(&i.to_string());
                (put(&w.at(&format!("{dir}/clean{i}")), &c), c, 0)
            }
        })
        .collect();
    let _d = daemon(&w, &w.conf(), &[]).start();
    let mut readers: Vec<(usize, Child)> = (0..200)
        .map(|j| {
            let (path, content, _) = &files[j % files.len()];
            (
                j % files.len(),
                spawn_as(NOBODY, &Action::read(path, content)),
            )
        })
        .collect();
    let wrong: Vec<String> = readers
        .iter_mut()
        .filter_map(|(i, c)| {
            let (path, _, want) = &files[*i];
            let got = c.wait_for(Duration::from_secs(60));
            (got != *want).then(|| format!("{}: want {want}, got {got}", path.display()))
        })
        .collect();
    assert!(wrong.is_empty(), "wrong verdicts:\n{}", wrong.join("\n"));
}

/// SIGTERM or SIGINT: exit 0 within a second, and the marks are gone afterwards.
fn stops_cleanly_on(sig: i32) {
    let w = World::new();
    let bad = put(&w.at("t/bad"), &infected("t"));
    let mut d = daemon(&w, &w.conf(), &[]).start();
    assert_blocked(&bad, &infected("t"));
    d.signal(sig);
    let (status, took) = d.wait_exit(STOP_TIMEOUT);
    assert!(status.success(), "exit status {status} after {took:?}");
    assert_readable(&bad, &infected("t"));
}

#[test]
fn sigterm_exits_zero_and_removes_marks() {
    if !privileged() {
        return;
    }
    stops_cleanly_on(libc::SIGTERM);
}

#[test]
fn sigint_exits_zero_and_removes_marks() {
    if !privileged() {
        return;
    }
    stops_cleanly_on(libc::SIGINT);
}

/// A bad config value stops the start with a message naming FILE:LINE: Key.
#[test]
fn bad_config_line_fails_at_start() {
    if !privileged() {
        return;
    }
    let w = World::new();
    let conf = w.conf().set("OnAccessMaxThreads", "many");
    let line = conf.0.len(); // the key was appended last
    let mut d = daemon(&w, &conf, &[]).spawn();
    let (status, _) = d.wait_exit(Duration::from_secs(10));
    assert!(status.code() == Some(2), "want exit status 2, got {status}");
    let want = format!(
        "{}:{line}: OnAccessMaxThreads",
        w.root.join("moat.conf").display()
    );
    assert!(d.log().contains(&want), "`{want}` missing in:\n{}", d.log());
}

// ---------------------------------------------------------------------------------------
// Extra scanning, and whole-filesystem / mount coverage on a private tmpfs.

/// OnAccessExtraScanning: a file closed after writing, a file moved in and the files of a
/// new directory are scanned and reported (never blocked: nobody waits on these scans),
/// each with the kind of discovery.
fn extra_scanning_reports_written_moved_in_and_discovered_files(tracking: &str) {
    if !privileged() {
        return;
    }
    let w = World::new();
    let conf = w.conf().set("OnAccessExtraScanning", "yes");
    let d = start_tracking(&w, conf, tracking);
    // Written in place: reported on close.
    let written = put(&w.at("written"), &infected("w"));
    d.wait_line("close-write report", |l| {
        l.contains(&format!("{}: {MARKER_FOUND}", written.display()))
            && l.contains("access=close-write")
            && l.contains("action=reported")
    });
    // A file moved in from outside the tree.
    let src = put(&w.outside.join("moved"), &infected("m"));
    let moved = w.at("moved");
    fs::rename(&src, &moved).unwrap();
    d.wait_line("moved-in report", |l| {
        l.contains(&format!("{}: {MARKER_FOUND}", moved.display()))
            && l.contains("access=discovered")
    });
    // A directory with content moved in: its files are scanned when it is discovered.
    let tree = put(&w.outside.join("t/sub/deep"), &infected("t"));
    assert!(tree.exists());
    fs::rename(w.outside.join("t"), w.at("t")).unwrap();
    let deep = w.at("t/sub/deep");
    d.wait_line("discovered-dir report", |l| {
        l.contains(&format!("{}: {MARKER_FOUND}", deep.display()))
            && l.contains("access=discovered")
    });
    // And prevention still holds for the opens themselves.
    assert_blocked(&deep, &infected("t"));
}

/// A filesystem mounted for one test, unmounted (lazily, in case something still holds it)
/// on drop. Filesystem and mount marks are only ever placed on such a private mount.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path) -> Tmpfs {
        Self::mount_fs(at, "tmpfs", "size=64m,mode=0755")
    }

    /// `mount --bind src at`.
    fn bind(src: &Path, at: &Path) -> Tmpfs {
        mkdir(at);
        let ok = Command::new("mount")
            .arg("--bind")
            .arg(src)
            .arg(at)
            .status()
            .expect("run mount");
        assert!(
            ok.success(),
            "mount --bind {} {}",
            src.display(),
            at.display()
        );
        Tmpfs(at.to_owned())
    }

    fn mount_fs(at: &Path, fstype: &str, options: &str) -> Tmpfs {
        mkdir(at);
        let ok = Command::new("mount")
            .args(["-t", fstype, "-o", options, "moat-test"])
            .arg(at)
            .status()
            .expect("run mount");
        assert!(ok.success(), "mount -t {fstype} {}", at.display());
        Tmpfs(at.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// `OnAccessCoverage filesystem` on a private tmpfs: the include path is protected, the
/// rest of the filesystem is not, and a directory tree created and used at once is
/// covered with no pause at all (no window after mkdir).
#[test]
fn filesystem_scope_protects_the_include_path_with_no_window() {
    if !privileged() {
        return;
    }
    let w = World::new();
    let fs_root = w.root.join("fs");
    let mnt = Tmpfs::mount(&fs_root);
    let inside = fs_root.join("protected");
    mkdir(&inside);
    let elsewhere = put(&fs_root.join("elsewhere/bad"), &infected("e"));
    let conf = w
        .conf()
        .set("OnAccessCoverage", "filesystem")
        .set("OnAccessIncludePath", &path_str(&inside));
    let d = daemon(&w, &conf, &[]).start();
    assert!(d.ready().contains("filesystems"), "{}", d.ready());
    assert_readable(&elsewhere, &infected("e"));
    for round in 0..50 {
        // mkdir -p, write, read back at once: no tracker involved, nothing to wait for.
        let bad = put(&inside.join(format!("r{round}/a/b/c/bad")), &infected("r"));
        assert_blocked(&bad, &infected("r"));
    }
    drop(d);
    drop(mnt);
}

/// `OnAccessMountPath`: the whole mount is protected, and (unlike ClamAV, which falls back
/// to notify-only) prevention applies.
#[test]
fn mount_path_is_protected_with_prevention() {
    if !privileged() {
        return;
    }
    let w = World::new();
    let fs_root = w.root.join("mnt");
    let mnt = Tmpfs::mount(&fs_root);
    let bad = put(&fs_root.join("x/y/bad"), &infected("mnt"));
    let good = put(&fs_root.join("x/good"), &clean("mnt"));
    let conf = w
        .conf()
        .without("OnAccessIncludePath")
        .add("OnAccessMountPath", &path_str(&fs_root));
    let d = daemon(&w, &conf, &[]).start();
    assert_blocked(&bad, &infected("mnt"));
    assert_readable(&good, &clean("mnt"));
    let fresh = put(&fs_root.join("new/deeper/bad"), &infected("fresh"));
    assert_blocked(&fresh, &infected("fresh"));
    drop(d);
    drop(mnt);
}

/// A subdirectory that cannot be marked (a procfs mounted inside the tree: the kernel
/// refuses permission marks there) is reported, and its siblings are still covered.
fn unmarkable_subdirectory_is_reported_and_siblings_are_covered(tracking: &str) {
    if !privileged() {
        return;
    }
    let w = World::new();
    let before = put(&w.at("a/bad"), &infected("a"));
    let proc_dir = w.at("m-proc");
    let mnt = Tmpfs::mount_fs(&proc_dir, "proc", "rw");
    let after = put(&w.at("z/bad"), &infected("z"));
    let d = start_tracking(&w, w.conf(), tracking);
    assert_blocked(&before, &infected("a"));
    assert_blocked(&after, &infected("z"));
    let line = d.wait_line("the refused mark", |l| {
        l.contains("cannot place fanotify mark") && l.contains("m-proc")
    });
    assert!(line.contains("WARN"), "{line}");
    drop(d);
    drop(mnt);
}

/// OnAccessMaxFileSize: larger files are allowed unscanned; smaller ones are scanned.
#[test]
fn on_access_max_file_size_allows_larger_files_unscanned() {
    if !privileged() {
        return;
    }
    let w = World::new();
    let mut big = infected("big");
    big.resize(4096, b'.');
    let big_path = put(&w.at("big"), &big);
    let small = put(&w.at("small"), &infected("s"));
    let conf = w.conf().set("OnAccessMaxFileSize", "1K");
    let _d = daemon(&w, &conf, &[]).start();
    assert_readable(&big_path, &big);
    assert_blocked(&small, &infected("s"));
}

/// A file allowed unscanned for its size gets an evictable ignore mark (its next opens raise
/// no event); shrinking it must drop that mark, so a detection written into it is scanned
/// and blocked on the next open: by an `O_TRUNC` open and write, and by `ftruncate` then a
/// write through the same fd.
#[test]
fn a_large_file_shrunk_to_a_detection_is_blocked() {
    if !privileged() {
        return;
    }
    let w = World::new();
    let mut big = clean("big");
    big.resize(4096, b'.');
    let by_o_trunc = put(&w.at("a/big"), &big);
    let by_ftruncate = put(&w.at("b/big"), &big);
    let conf = w.conf().set("OnAccessMaxFileSize", "1K");
    let _d = daemon(&w, &conf, &[]).start();
    for path in [&by_o_trunc, &by_ftruncate] {
        // The first open sets the mark, the second goes through it.
        assert_readable(path, &big);
        assert_readable(path, &big);
    }
    fs::write(&by_o_trunc, infected("o_trunc")).unwrap();
    assert_blocked(&by_o_trunc, &infected("o_trunc"));
    {
        use std::io::Write;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .open(&by_ftruncate)
            .unwrap();
        f.set_len(0).unwrap();
        f.write_all(&infected("ftruncate")).unwrap();
    }
    assert_blocked(&by_ftruncate, &infected("ftruncate"));
}

/// DatabaseDirectory and TemporaryDirectory inside an include path are never watched (the
/// daemon reads its signatures and scratch files there); the rest of the tree is.
/// The DatabaseDirectory is never watched; the TemporaryDirectory is (moat does not use it,
/// and its own accesses are allowed by pid: exempting it made a shared writable directory
/// an unscanned drop zone, review F10).
#[test]
fn database_directory_is_never_watched_but_the_temporary_directory_is() {
    if !privileged() {
        return;
    }
    let w = World::new();
    let db = w.at("db");
    mkdir(&db);
    fs::copy(w.db.join("test.ndb"), db.join("test.ndb")).unwrap();
    let in_db = put(&db.join("sub/sample"), &infected("db"));
    let in_tmp = put(&w.at("scratch/sample"), &infected("tmp"));
    let elsewhere = put(&w.at("data/bad"), &infected("data"));
    let conf = w
        .conf()
        .set("DatabaseDirectory", &path_str(&db))
        .set("TemporaryDirectory", &path_str(&w.at("scratch")));
    let _d = daemon(&w, &conf, &[]).start();
    assert_readable(&in_db, &infected("db"));
    assert_blocked(&in_tmp, &infected("tmp"));
    assert_blocked(&elsewhere, &infected("data"));
}

/// SIGHUP does not kill the daemon (which would leave the tree unprotected): it is
/// acknowledged in the log and protection goes on.
#[test]
fn sighup_is_acknowledged_and_protection_goes_on() {
    if !privileged() {
        return;
    }
    let w = World::new();
    let bad = put(&w.at("h/bad"), &infected("h"));
    let mut d = daemon(&w, &w.conf(), &[]).start();
    d.signal(libc::SIGHUP);
    d.wait_line("the SIGHUP acknowledgement", |l| l.contains("SIGHUP"));
    assert!(d.try_wait().is_none(), "SIGHUP must not stop the daemon");
    assert_blocked(&bad, &infected("h"));
    d.signal(libc::SIGHUP);
    d.signal(libc::SIGTERM);
    let (status, took) = d.wait_exit(STOP_TIMEOUT);
    assert!(status.success(), "{status} after {took:?}");
}

// ---------------------------------------------------------------------------------------
// The default scope (filesystem), the kernel clean cache, reload. Each test mounts a private
// tmpfs and watches a directory inside it: the filesystem mark never reaches anything else.

/// A private tmpfs `fs/` in the world with `fs/protected` (the include path, writable by uid
/// 65534) and `fs/staging` (outside the include path, same filesystem, also writable), and
/// the default config on it: no OnAccessCoverage line, so the default scope.
struct FsWorld {
    w: World,
    mnt: Option<Tmpfs>,
    protected: PathBuf,
    staging: PathBuf,
}

impl FsWorld {
    fn new() -> FsWorld {
        let w = World::new();
        let fs_root = w.root.join("fs");
        let mnt = Tmpfs::mount_fs(&fs_root, "tmpfs", "size=256m,mode=0755");
        let protected = fs_root.join("protected");
        let staging = fs_root.join("staging");
        for d in [&protected, &staging] {
            mkdir(d);
            fs::set_permissions(d, fs::Permissions::from_mode(0o777)).unwrap();
        }
        FsWorld {
            w,
            mnt: Some(mnt),
            protected,
            staging,
        }
    }

    fn conf(&self) -> Conf {
        self.w
            .conf()
            .without("OnAccessCoverage")
            .set("OnAccessIncludePath", &path_str(&self.protected))
            .set("LogVerbose", "yes")
    }
}

impl Drop for FsWorld {
    fn drop(&mut self) {
        drop(self.mnt.take());
    }
}

/// Runs `rounds` as uid 65534 and returns how many final reads succeeded.
fn race_escapes(rounds: Vec<moat_testkit::RaceRound>, content: &[u8]) -> i32 {
    let n = rounds.len();
    let mut c = spawn_as(NOBODY, &Action::race(rounds, content));
    let code = c.wait_for(Duration::from_secs(300));
    assert_ne!(
        code,
        moat_testkit::EXIT_RACE_SETUP,
        "a race round could not be prepared"
    );
    assert_ne!(
        code,
        moat_testkit::EXIT_RACE_ERRNO,
        "a blocked open failed with another errno than EPERM"
    );
    assert!(code <= n as i32, "exit code {code}");
    code
}

/// The issue's race, with default settings: 2,000 rounds of an unprivileged process running
/// `mkdir -p fresh/a/b/c`, writing an infected file there and reading it back at once: not
/// one read succeeds. (First, without the daemon, a few rounds show that the race does
/// detect an escape.)
#[test]
fn default_scope_has_no_window_after_mkdir() {
    if !privileged() {
        return;
    }
    let f = FsWorld::new();
    let bad = infected("race");
    let unguarded: Vec<_> = (0..5)
        .map(|i| moat_testkit::RaceRound::fresh(&f.protected.join(format!("before{i}"))))
        .collect();
    assert_eq!(
        race_escapes(unguarded, &bad),
        5,
        "without moat every read succeeds"
    );
    let d = daemon(&f.w, &f.conf(), &[]).start();
    assert!(d.ready().contains("scope=filesystem"), "{}", d.ready());
    let rounds: Vec<_> = (0..2000)
        .map(|i| moat_testkit::RaceRound::fresh(&f.protected.join(format!("fresh{i}"))))
        .collect();
    assert_eq!(
        race_escapes(rounds, &bad),
        0,
        "reads of a fresh infected file succeeded"
    );
}

/// The same for a subtree prepared outside the include paths (its file opened there, where
/// it is allowed) and then renamed in: where a file was must not be cached.
#[test]
fn default_scope_blocks_subtrees_renamed_in() {
    if !privileged() {
        return;
    }
    let f = FsWorld::new();
    let bad = infected("renamed");
    let d = daemon(&f.w, &f.conf(), &[]).start();
    let rounds: Vec<_> = (0..2000)
        .map(|i| {
            let name = format!("t{i}");
            moat_testkit::RaceRound::renamed_in(&f.staging.join(&name), &f.protected.join(&name))
        })
        .collect();
    assert_eq!(
        race_escapes(rounds, &bad),
        0,
        "reads of a renamed-in infected file succeeded"
    );
    // Sanity: the staged opens happened outside the include paths and were allowed.
    drop(d);
}

/// Writes `content` and leaves the file old enough to be cached: where timestamps are coarse
/// (no multigrain ctime: kernels before 6.13), the verdict caches skip files changed within
/// the last 2 s.
fn settled(path: &Path, content: &[u8]) -> PathBuf {
    let p = put(path, content);
    if !moat_guard::cache::has_multigrain_ctime(&fs::File::open(&p).unwrap()) {
        std::thread::sleep(Duration::from_millis(2100));
    }
    p
}

/// Opens `path` as nobody (clean, readable) and waits until the kernel ignore mark is set.
fn cache_clean(d: &Daemon, path: &Path, content: &[u8], nth: usize) {
    assert_readable(path, content);
    let deadline = Instant::now() + LOG_TIMEOUT;
    while d.log().matches("ignore mark set").count() < nth {
        assert!(
            Instant::now() < deadline,
            "no ignore mark set for {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The counter `name=N` of the shutdown summary.
fn summary_count(log: &str, name: &str) -> u64 {
    let re = Regex::new(&format!(r"\b{name}[=:] ?(\d+)")).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("stopped"))
        .expect("summary line");
    re.captures(line)
        .map(|c| c[1].parse().unwrap())
        .unwrap_or_else(|| panic!("no {name} in {line}"))
}

/// Where a clean-cache test runs: the default filesystem scope (on the private tmpfs) or
/// directory scope (on the world's `watched/`, ext4 here), with debug logging.
#[derive(Clone, Copy, Debug)]
enum Scope {
    Filesystem,
    Directory,
}

fn cache_world(scope: Scope) -> (FsWorld, Conf, PathBuf) {
    let f = FsWorld::new();
    let (conf, base) = match scope {
        Scope::Filesystem => (f.conf(), f.protected.clone()),
        Scope::Directory => (f.w.conf().set("LogVerbose", "yes"), f.w.watched.clone()),
    };
    (f, conf, base)
}

/// After a clean verdict the kernel answers later opens itself: ten more opens of the file
/// raise no event (nothing scanned, no cache hit in userspace).
fn kernel_cache_answers_repeated_opens_without_an_event(scope: Scope) {
    if !privileged() {
        return;
    }
    let (f, conf, base) = cache_world(scope);
    let good = settled(&base.join("a/good"), &clean("k"));
    let mut d = daemon(&f.w, &conf, &[]).start();
    assert!(
        d.ready().contains("cache=kernel ignore marks"),
        "{}",
        d.ready()
    );
    cache_clean(&d, &good, &clean("k"), 1);
    for _ in 0..10 {
        assert_readable(&good, &clean("k"));
    }
    d.signal(libc::SIGTERM);
    d.wait_exit(STOP_TIMEOUT);
    let log = d.log();
    assert_eq!(summary_count(&log, "scanned_clean"), 1, "{log}");
    assert_eq!(summary_count(&log, "cache_hits"), 0, "{log}");
    assert_eq!(summary_count(&log, "marked"), 1, "{log}");
}

#[test]
fn kernel_cache_answers_repeated_opens_without_an_event_filesystem_scope() {
    kernel_cache_answers_repeated_opens_without_an_event(Scope::Filesystem);
}

#[test]
fn kernel_cache_answers_repeated_opens_without_an_event_directory_scope() {
    kernel_cache_answers_repeated_opens_without_an_event(Scope::Directory);
}

/// The four ways to make a cached clean file infected; each is blocked on the next open.
#[derive(Clone, Copy, Debug)]
enum Change {
    Write,
    TruncateAndWrite,
    SharedMmapWrite,
    RenameOver,
}

fn cached_file_made_infected_is_blocked(change: Change, scope: Scope) {
    if !privileged() {
        return;
    }
    let (f, conf, base) = cache_world(scope);
    let bad = infected("changed");
    // Clean content of the infected content's length, so an mmap can hold either.
    let mut good = vec![b'c'; bad.len() - 1];
    good.push(b'\n');
    let path = settled(&base.join("d/file"), &good);
    let d = daemon(&f.w, &conf, &[]).start();
    cache_clean(&d, &path, &good, 1);
    assert_readable(&path, &good);
    match change {
        Change::Write => {
            use std::os::unix::fs::FileExt;
            let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
            file.write_all_at(&bad, 0).unwrap();
        }
        Change::TruncateAndWrite => {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(&path)
                .unwrap();
            file.write_all(&bad).unwrap();
        }
        Change::SharedMmapWrite => {
            mmap_write(&path, &bad);
            // A write through a mapping drops nothing in the kernel: the daemon must see
            // the close-after-write first (asynchronous by nature).
            d.wait_line("the close-write invalidation", |l| {
                l.contains("clean cache entry dropped after a write") && l.contains("kernel=true")
            });
        }
        Change::RenameOver => {
            let other = put(&base.join("d/other"), &bad);
            fs::rename(other, &path).unwrap();
        }
    }
    assert_blocked(&path, &bad);
}

/// Writes `data` over the start of `path` through a shared mapping, then unmaps and closes.
fn mmap_write(path: &Path, data: &[u8]) {
    use std::os::fd::AsRawFd;
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    // SAFETY: a fresh shared mapping of `data.len()` bytes of a file at least that long,
    // written and unmapped here, nothing else holds it.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            data.len(),
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        );
        assert_ne!(
            p,
            libc::MAP_FAILED,
            "mmap: {}",
            std::io::Error::last_os_error()
        );
        std::ptr::copy_nonoverlapping(data.as_ptr(), p as *mut u8, data.len());
        assert_eq!(libc::munmap(p, data.len()), 0);
    }
    drop(file);
}

#[test]
fn cached_clean_file_written_is_blocked_filesystem_scope() {
    cached_file_made_infected_is_blocked(Change::Write, Scope::Filesystem);
}

#[test]
fn cached_clean_file_written_is_blocked_directory_scope() {
    cached_file_made_infected_is_blocked(Change::Write, Scope::Directory);
}

#[test]
fn cached_clean_file_truncated_and_written_is_blocked_filesystem_scope() {
    cached_file_made_infected_is_blocked(Change::TruncateAndWrite, Scope::Filesystem);
}

#[test]
fn cached_clean_file_truncated_and_written_is_blocked_directory_scope() {
    cached_file_made_infected_is_blocked(Change::TruncateAndWrite, Scope::Directory);
}

#[test]
fn cached_clean_file_written_through_shared_mmap_is_blocked_filesystem_scope() {
    cached_file_made_infected_is_blocked(Change::SharedMmapWrite, Scope::Filesystem);
}

#[test]
fn cached_clean_file_written_through_shared_mmap_is_blocked_directory_scope() {
    cached_file_made_infected_is_blocked(Change::SharedMmapWrite, Scope::Directory);
}

#[test]
fn cached_clean_file_renamed_over_is_blocked_filesystem_scope() {
    cached_file_made_infected_is_blocked(Change::RenameOver, Scope::Filesystem);
}

#[test]
fn cached_clean_file_renamed_over_is_blocked_directory_scope() {
    cached_file_made_infected_is_blocked(Change::RenameOver, Scope::Directory);
}

/// SIGHUP reloads the database and flushes the clean caches: a file cached as clean under
/// the old database is blocked once the new one detects it. A reload that fails (a malformed
/// signature line) keeps the previous database running.
fn sighup_reloads_the_database_and_flushes_the_clean_cache(scope: Scope) {
    if !privileged() {
        return;
    }
    let (f, conf, base) = cache_world(scope);
    let content = b"a file with RELOAD-ME-LATER inside\n".to_vec();
    let path = settled(&base.join("r/file"), &content);
    let eicar_path = put(&base.join("r/eicar"), &eicar());
    let mut d = daemon(&f.w, &conf, &[]).start();
    cache_clean(&d, &path, &content, 1);
    assert_readable(&path, &content);
    // "RELOAD-ME-LATER" in hex.
    let sig = "Moat.Test.Reload:0:*:52454c4f41442d4d452d4c41544552\n";
    fs::write(f.w.db.join("reload.ndb"), sig).unwrap();
    d.signal(libc::SIGHUP);
    d.wait_line("the reload", |l| {
        l.contains("new signature database in use")
    });
    let pid = assert_blocked(&path, &content);
    d.wait_found(&path, "Moat.Test.Reload.UNOFFICIAL FOUND", pid);
    // A broken database: the reload fails and the previous one goes on.
    fs::write(f.w.db.join("broken.ndb"), "Not.A.Signature:0:*:zz\n").unwrap();
    d.signal(libc::SIGHUP);
    let line = d.wait_line("the failed reload", |l| l.contains("reload failed"));
    assert!(
        line.contains("broken.ndb"),
        "the error names the file: {line}"
    );
    assert!(
        d.try_wait().is_none(),
        "a failed reload must not stop the daemon"
    );
    assert_blocked(&path, &content);
    assert_blocked(&eicar_path, &eicar());
}

#[test]
fn sighup_reloads_the_database_and_flushes_the_clean_cache_filesystem_scope() {
    sighup_reloads_the_database_and_flushes_the_clean_cache(Scope::Filesystem);
}

#[test]
fn sighup_reloads_the_database_and_flushes_the_clean_cache_directory_scope() {
    sighup_reloads_the_database_and_flushes_the_clean_cache(Scope::Directory);
}

/// Mounts that cannot reach an include path are ignored in the kernel: opens through a bind
/// mount of the protected filesystem elsewhere raise no event, while opens outside the
/// include path on the watched mount itself are allowed by path.
#[test]
fn default_scope_ignores_mounts_that_cannot_reach_an_include_path() {
    if !privileged() {
        return;
    }
    let f = FsWorld::new();
    let file = put(&f.staging.join("x/file"), &infected("staged"));
    let bind = Tmpfs::bind(&f.staging, &f.w.root.join("bind"));
    let mut d = daemon(&f.w, &f.conf(), &[]).start();
    assert!(d.ready().contains("ignored mounts=1"), "{}", d.ready());
    for _ in 0..5 {
        assert_readable(&f.w.root.join("bind/x/file"), &infected("staged"));
    }
    assert_readable(&file, &infected("staged"));
    d.signal(libc::SIGTERM);
    d.wait_exit(STOP_TIMEOUT);
    let log = d.log();
    assert_eq!(summary_count(&log, "OutsideIncludes"), 1, "{log}");
    drop(bind);
}

/// A filesystem mounted below the include path after the start is marked too (the mount
/// table is watched), and protection goes on there.
#[test]
fn default_scope_covers_a_filesystem_mounted_later_below_the_include_path() {
    if !privileged() {
        return;
    }
    let f = FsWorld::new();
    let d = daemon(&f.w, &f.conf(), &[]).start();
    let usb = f.protected.join("usb");
    let mnt = Tmpfs::mount(&usb);
    d.wait_line("the new filesystem's mark", |l| {
        l.contains("filesystem mounted below an include path: marked") && l.contains("usb")
    });
    let bad = put(&usb.join("x/bad"), &infected("usb"));
    assert_blocked(&bad, &infected("usb"));
    drop(d);
    drop(mnt);
}

/// `--tracking` overrides OnAccessTracking, and the chosen backend protects the tree.
#[test]
fn tracking_flag_overrides_the_config() {
    if !privileged() {
        return;
    }
    let w = World::new();
    let conf = w.conf().set("OnAccessTracking", "fanotify");
    let d = daemon(&w, &conf, &["--tracking", "inotify"]).start();
    assert!(d.ready().contains("tracking=inotify;"), "{:?}", d.ready());
    mkdir(&w.at("late"));
    std::thread::sleep(SETTLE);
    let bad = put(&w.at("late/bad"), &infected("late"));
    assert_blocked(&bad, &infected("late"));
}

/// A bad OnAccessTracking value stops the start with FILE:LINE: Key: reason.
#[test]
fn bad_tracking_value_fails_at_start() {
    if !privileged() {
        return;
    }
    let w = World::new();
    let conf = w.conf().set("OnAccessTracking", "dnotify");
    let line = conf.0.len();
    let mut d = daemon(&w, &conf, &[]).spawn();
    let (status, _) = d.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(2), "{status}");
    let want = format!(
        "{}:{line}: OnAccessTracking: expected \"auto\", \"fanotify\" or \"inotify\"",
        w.root.join("moat.conf").display()
    );
    assert!(d.log().contains(&want), "`{want}` missing in:\n{}", d.log());
}

// ---------------------------------------------------------------------------------------
// Alias paths (review F1, issue 13): the same protected file reached through other mounts.
// Decisions follow where the file lives on its filesystem, not the path a mount shows.

/// Reads `path` as uid 65534 inside a user and mount namespace of its own after `mounts`
/// (as `unshare -Urm` would), and returns the exit code (0 read, EPERM blocked).
fn ns_read(mounts: Vec<moat_testkit::NsMount>, path: &Path, content: &[u8]) -> i32 {
    let mut c = spawn_as(NOBODY, &Action::in_namespace(NOBODY, mounts, path, content));
    let code = c.wait_for(Duration::from_secs(10));
    assert_ne!(
        code,
        moat_testkit::EXIT_NS_SETUP,
        "the namespace or a mount could not be made for {}",
        path.display()
    );
    code
}

/// Every way to reach `protected/bad` under another path, in `scope`: bind mounts made by
/// root before and after the start (of the include path, and of the whole filesystem), and,
/// from an unprivileged user namespace, binds onto a directory outside the include paths,
/// onto the DatabaseDirectory and onto an excluded directory, and an overlay whose lower
/// layer is the include path. Each read as uid 65534 fails with EPERM.
fn alias_paths_are_blocked(scope: Scope) {
    if !privileged() {
        return;
    }
    let f = FsWorld::new();
    let content = infected("alias");
    let bad = put(&f.protected.join("bad"), &content);
    let skip = f.protected.join("skip");
    mkdir(&skip);
    let fs_root = f.protected.parent().unwrap().to_owned();
    let before = Tmpfs::bind(&f.protected, &f.w.root.join("bind-before"));
    let whole = Tmpfs::bind(&fs_root, &f.w.root.join("bind-whole"));
    let mut conf = f.conf().add("OnAccessExcludePath", "/skip$");
    if let Scope::Directory = scope {
        conf = conf.set("OnAccessCoverage", "directory");
    }
    let d = daemon(&f.w, &conf, &[]).start();
    let after = Tmpfs::bind(&f.protected, &f.w.root.join("bind-after"));
    assert_blocked(&bad, &content);
    assert_blocked(&f.w.root.join("bind-before/bad"), &content);
    assert_blocked(&f.w.root.join("bind-whole/protected/bad"), &content);
    assert_blocked(&f.w.root.join("bind-after/bad"), &content);
    let ns = moat_testkit::NsMount::bind;
    // Onto a directory outside the include paths (same filesystem), onto the database
    // directory (never watched), onto an excluded directory (inside the include path).
    for (target, read) in [
        (f.staging.clone(), f.staging.join("bad")),
        (f.w.db.clone(), f.w.db.join("bad")),
        (skip.clone(), skip.join("bad")),
    ] {
        let code = ns_read(vec![ns(&f.protected, &target)], &read, &content);
        assert_eq!(code, EPERM, "{} in a user namespace", read.display());
    }
    // An overlay with the include path as its lower layer, mounted by the user.
    let (up, work, ov) = (
        f.staging.join("up"),
        f.staging.join("work"),
        f.staging.join("ov"),
    );
    for dir in [&up, &work, &ov] {
        mkdir(dir);
        std::os::unix::fs::chown(dir, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    let overlay = moat_testkit::NsMount::overlay(&f.protected, &up, &work, &ov);
    let code = ns_read(vec![overlay], &ov.join("bad"), &content);
    assert_eq!(code, EPERM, "through an overlay in a user namespace");
    // Each block is logged under the file's own path, not the alias.
    let head = format!("{}: {MARKER_FOUND}", bad.display());
    let deadline = Instant::now() + LOG_TIMEOUT;
    while d.log().matches(&head).count() < 8 {
        assert!(Instant::now() < deadline, "8 x `{head}` in:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(d);
    drop((before, whole, after));
}

#[test]
fn alias_paths_are_blocked_filesystem_scope() {
    alias_paths_are_blocked(Scope::Filesystem);
}

#[test]
fn alias_paths_are_blocked_directory_scope() {
    alias_paths_are_blocked(Scope::Directory);
}

/// What is promised for other names of a file (filesystem scope): a hard link outside the
/// include paths of a protected file is still blocked (a file with several links is scanned
/// wherever it is opened); a file renamed out of the include paths is judged where it is
/// now (readable there); renamed back in, it is blocked again.
#[test]
fn hard_links_are_scanned_and_renames_are_judged_where_the_file_is() {
    if !privileged() {
        return;
    }
    let f = FsWorld::new();
    let content = infected("linked");
    let bad = put(&f.protected.join("bad"), &content);
    let _d = daemon(&f.w, &f.conf(), &[]).start();
    let link = f.staging.join("link");
    fs::hard_link(&bad, &link).unwrap();
    assert_blocked(&link, &content);
    assert_blocked(&bad, &content);
    let moved = put(&f.protected.join("moved"), &content);
    assert_blocked(&moved, &content);
    let out = f.staging.join("moved");
    fs::rename(&moved, &out).unwrap();
    assert_readable(&out, &content);
    fs::rename(&out, &moved).unwrap();
    assert_blocked(&moved, &content);
}

/// A filesystem below the include path, unmounted and mounted again (the same anonymous
/// device number comes back), is marked again each time (review F5): 3 mounts, 3 blocks.
#[test]
fn default_scope_covers_a_filesystem_mounted_again_below_the_include_path() {
    if !privileged() {
        return;
    }
    let f = FsWorld::new();
    let d = daemon(&f.w, &f.conf(), &[]).start();
    let usb = f.protected.join("usb");
    let marked = |d: &Daemon| {
        d.log()
            .lines()
            .filter(|l| l.contains("filesystem marked") && l.contains("/usb"))
            .count()
    };
    for round in 1..=3 {
        let mnt = Tmpfs::mount_fs(&usb, "tmpfs", "size=8m,mode=0777");
        let deadline = Instant::now() + LOG_TIMEOUT;
        while marked(&d) < round {
            assert!(
                Instant::now() < deadline,
                "mount {round} not marked:\n{}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let bad = put(&usb.join(format!("bad{round}")), &infected("usb"));
        assert_blocked(&bad, &infected("usb"));
        drop(mnt);
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Filesystem scope costs nothing in root-only directories elsewhere on the filesystem:
/// after the first open there, the kernel ignores opens in that directory tree (an
/// evictable ignore mark per directory), while writable directories outside the include
/// paths (where a user could make an alias) keep their events, and the include path stays
/// protected.
#[test]
fn default_scope_quiets_root_only_directories_outside_the_include_paths() {
    if !privileged() {
        return;
    }
    let f = FsWorld::new();
    let fs_root = f.protected.parent().unwrap().to_owned();
    let files: Vec<PathBuf> = (0..50)
        .map(|i| put(&fs_root.join(format!("ro/d{}/f{i}", i % 5)), &clean("ro")))
        .collect();
    let staged: Vec<PathBuf> = (0..20)
        .map(|i| put(&f.staging.join(format!("s{i}")), &clean("st")))
        .collect();
    let bad = put(&f.protected.join("bad"), &infected("q"));
    let mut d = daemon(&f.w, &f.conf(), &[]).start();
    assert_readable(&files[0], &clean("ro"));
    std::thread::sleep(Duration::from_millis(300));
    for p in &files {
        assert_readable(p, &clean("ro"));
    }
    for p in &staged {
        assert_readable(p, &clean("st"));
    }
    assert_blocked(&bad, &infected("q"));
    d.signal(libc::SIGTERM);
    d.wait_exit(STOP_TIMEOUT);
    let log = d.log();
    // ro, ro/d0..d4 (and the filesystem's root, which holds only directories here).
    assert!(summary_count(&log, "quieted_dirs") >= 6, "{log}");
    // The first open in ro/ only; every open in the writable staging/ was decided.
    assert_eq!(summary_count(&log, "OutsideIncludes"), 1 + 20, "{log}");
}

/// Every FOUND line names its opener, even one that exits the instant it is refused: 50
/// short-lived openers (uid 65534, started together), 50 lines, each with the opener's
/// pid, uid 65534, its comm and its executable (captured before the answer; review F18).
#[test]
fn every_found_line_names_a_short_lived_opener() {
    if !privileged() {
        return;
    }
    let f = FsWorld::new();
    let content = infected("who");
    let bad = put(&f.protected.join("bad"), &content);
    let d = daemon(&f.w, &f.conf(), &[]).start();
    let mut children: Vec<Child> = (0..50)
        .map(|_| spawn_as(NOBODY, &Action::read(&bad, &content)))
        .collect();
    let pids: Vec<i32> = children.iter().map(|c| c.pid()).collect();
    for c in &mut children {
        assert_eq!(c.wait(), EPERM);
    }
    let exe = std::env::current_exe().unwrap();
    let want = format!(
        r"uid=65534 comm=[^ ?][^ ]* exe={}",
        regex::escape(&path_str(&exe))
    );
    let who = Regex::new(&want).unwrap();
    for pid in pids {
        let line = d.wait_found(&bad, MARKER_FOUND, pid);
        assert!(who.is_match(&line), "`{want}` in: {line}");
    }
}

/// One user's flood cannot make another user's open miss its deadline (review F6): uid
/// 65534 keeps 8 scans of distinct slow files (seconds each) waiting, more than the 5
/// workers; an infected file opened meanwhile by uid 65533 is still scanned and refused
/// (EPERM: the deadline, without OnAccessDenyOnError, would have allowed it).
#[test]
fn one_users_flood_does_not_make_another_users_open_miss_its_deadline() {
    if !privileged() {
        return;
    }
    let w = World::new();
    let slow: Vec<PathBuf> = (0..8)
        .map(|i| slow_file(&w.at(&format!("flood/big{i}"))))
        .collect();
    let bad = put(&w.at("victim/bad"), &infected("victim"));
    let conf = unlimited(w.conf()).set("OnAccessScanTimeout", "3s");
    let d = daemon(&w, &conf, &[]).start();
    let _flood: Vec<Child> = slow
        .iter()
        .map(|p| spawn_as(NOBODY, &Action::read_any(p)))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    let mut victim = spawn_as(NOBODY - 1, &Action::read(&bad, &infected("victim")));
    let code = victim.wait();
    let took = start.elapsed();
    eprintln!(
        "flood by uid 65534 (8 slow scans, 5 workers): uid 65533's open answered in {took:?}"
    );
    assert_eq!(code, EPERM, "answered after {took:?}: {}", d.log());
    d.wait_found(&bad, MARKER_FOUND, victim.pid());
}

/// A daemon thread that dies is a loud error and a failed exit, never a daemon running on
/// without it (review F12): with the reader's poll made to fail (fault injection), the
/// daemon logs which thread died and exits non-zero within seconds, having removed its
/// marks (the same file then opens).
#[test]
fn a_dead_reader_thread_stops_the_daemon_with_a_failure() {
    if !privileged() {
        return;
    }
    let w = World::new();
    let bad = put(&w.at("d/bad"), &infected("dead"));
    let mut d = daemon(&w, &w.conf(), &[])
        .env("MOAT_TEST_FAULT", "reader-poll")
        .spawn();
    let (status, took) = d.wait_exit(Duration::from_secs(20));
    assert!(!status.success(), "{status} after {took:?}: {}", d.log());
    let log = d.log();
    assert!(
        log.contains("a daemon thread died") && log.contains("moat-reader"),
        "{log}"
    );
    assert_readable(&bad, &infected("dead"));
}

/// Answering never waits on logging (review F13): with stderr a pipe nobody reads, filled
/// by thousands of debug lines, deadlines are still enforced, one after another (each
/// deadline is followed by a warning line that could not be written).
#[test]
fn deadlines_are_enforced_while_the_log_pipe_is_full() {
    if !privileged() {
        return;
    }
    let f = FsWorld::new();
    let mut fds = [0; 2];
    // SAFETY: pipe(2) into a two-int array.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both fds are new and ours; the read end is kept open and never read.
    let (_unread, write) = unsafe {
        use std::os::fd::FromRawFd;
        (
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    };
    let slow: Vec<PathBuf> = (0..3)
        .map(|i| slow_file(&f.protected.join(format!("slow{i}"))))
        .collect();
    let conf = unlimited(f.conf())
        .set("OnAccessScanTimeout", "300ms")
        .set("OnAccessDenyOnError", "yes");
    let _d = daemon(&f.w, &conf, &[]).stderr(Stdio::from(write)).start();
    // 3,000 fresh clean files opened once each: several hundred KiB of debug lines, far
    // more than the 64 KiB pipe holds.
    for chunk in 0..15 {
        let rounds: Vec<_> = (0..200)
            .map(|i| moat_testkit::RaceRound::fresh(&f.protected.join(format!("fill{chunk}-{i}"))))
            .collect();
        let mut fill = spawn_as(NOBODY, &Action::race(rounds, &clean("fill")));
        let read = fill.wait_for(Duration::from_secs(60));
        assert_eq!(read, 200, "every clean file readable");
    }
    for p in &slow {
        let start = Instant::now();
        let code = spawn_as(NOBODY, &Action::read_any(p)).wait_for(Duration::from_secs(20));
        assert_eq!(
            code,
            EPERM,
            "{}: answered after {:?}",
            p.display(),
            start.elapsed()
        );
    }
}

// ---------------------------------------------------------------------------------------
// A stalled FUSE server below an include path (review F2): moat_testkit::fuse serves
// `bad` (infected) and `good` (clean) and holds every FUSE_OPEN while stalled.

/// A stalled FUSE server below an include path holds no open elsewhere (review F2): the
/// daemon gives the FUSE filesystem a fanotify group and reader of its own. While the
/// server holds the daemon's FUSE_OPEN of an event's file (an open by uid 65534 waits on
/// it), a clean file of the include path on the local filesystem opens, and an infected one
/// is refused (EPERM), both before the stall is released: the assertion is on order, not on
/// speed. Released, the FUSE file itself is scanned like any other: infected → EPERM,
/// clean → readable.
#[test]
fn a_stalled_fuse_server_below_an_include_path_holds_no_other_open() {
    if !privileged() {
        return;
    }
    let f = FsWorld::new();
    let conf = f.conf();
    stalled_fuse_holds_no_other_open(&f, conf);
}

/// The same in directory scope: the FUSE filesystem's directories are marked in a group of
/// its own, not in the main group its inode marks would otherwise share. Inotify tracking:
/// the fanotify tracking group cannot mark a FUSE directory (no fsid for FID reporting,
/// EXDEV), which leaves it uncovered (logged; README, F2 limits).
#[test]
fn a_stalled_fuse_server_below_an_include_path_holds_no_other_open_in_directory_scope() {
    if !privileged() {
        return;
    }
    let f = FsWorld::new();
    let conf = f
        .conf()
        .set("OnAccessCoverage", "directory")
        .set("OnAccessTracking", "inotify");
    stalled_fuse_holds_no_other_open(&f, conf);
}

/// Directory scope with the default tracking (`auto`): the FUSE mount below the include path
/// cannot take a fanotify tracking mark, so `auto` must choose inotify for the tree rather
/// than leave the FUSE directory unmarked (its infected file would then open).
#[test]
fn a_fuse_mount_below_an_include_path_makes_auto_tracking_choose_inotify() {
    if !privileged() {
        return;
    }
    let f = FsWorld::new();
    let conf = f.conf().set("OnAccessCoverage", "directory");
    stalled_fuse_holds_no_other_open(&f, conf);
}

fn stalled_fuse_holds_no_other_open(f: &FsWorld, conf: Conf) {
    let good = put(&f.protected.join("local/good"), &clean("local"));
    let bad = put(&f.protected.join("local/bad"), &infected("local"));
    let fuse_dir = f.protected.join("fuse");
    mkdir(&fuse_dir);
    let fuse = StallingFuse::mount(
        &fuse_dir,
        &[("bad", &infected("fuse")), ("good", &clean("fuse"))],
    )
    .expect("mount the test FUSE server");
    let d = daemon(&f.w, &conf, &[]).start();
    assert!(
        d.ready().contains("slow-filesystem groups=1"),
        "the FUSE mount must get a group of its own: {:?}",
        d.ready()
    );
    let _release = fuse.release_on_drop();
    fuse.set_stall(true);
    let mut on_fuse = spawn_as(
        NOBODY,
        &Action::read(&fuse_dir.join("bad"), &infected("fuse")),
    );
    assert!(
        fuse.wait_for_a_held_open(Duration::from_secs(10)),
        "no FUSE_OPEN reached the stalled server"
    );

    assert_readable(&good, &clean("local"));
    assert_blocked(&bad, &infected("local"));
    assert!(
        fuse.waiting() > 0 && on_fuse.running(),
        "the stall must still hold the FUSE open"
    );

    fuse.set_stall(false);
    assert_eq!(on_fuse.wait(), EPERM, "infected file on FUSE: {}", d.log());
    assert_readable(&fuse_dir.join("good"), &clean("fuse"));
}

// ---------------------------------------------------------------------------------------
// A held shared writable mapping (review F3, F4).

/// A file its owner (uid 65534) can write, scanned clean, then written through a shared
/// mapping the owner keeps: no event comes from such writes, and a write to a page already
/// dirty changes no timestamp. Step 1 dirties the page with the bytes already there (the
/// content stays clean) while another uid-65534 process reads it; step 2 writes the
/// infected content through the same held mapping: the next reader must get EPERM. (Before:
/// the kernel ignore mark set after the first read served the infected bytes with no event;
/// without the writer check the userspace cache would answer for the key step 1 left.)
#[test]
fn a_file_written_through_a_held_shared_mapping_is_blocked() {
    if !privileged() {
        return;
    }
    let f = FsWorld::new();
    let bad = infected("mapped");
    let mut good = vec![b'c'; bad.len() - 1];
    good.push(b'\n');
    let path = settled(&f.protected.join("shared"), &good);
    std::os::unix::fs::chown(&path, Some(NOBODY), Some(NOBODY)).unwrap();
    let mut d = daemon(&f.w, &f.conf(), &[]).start();
    assert_readable(&path, &good);
    assert_readable(&path, &good);

    let mut owner = spawn_as(NOBODY, &Action::map_write(&path, &[(0, b"c"), (0, &bad)]));
    owner.wait_stopped();
    assert_readable(&path, &good);
    owner.resume();
    owner.wait_stopped();
    let pid = assert_blocked(&path, &bad);
    d.wait_found(&path, MARKER_FOUND, pid);
    owner.resume();
    assert_eq!(owner.wait(), 0);
    d.signal(libc::SIGTERM);
    d.wait_exit(STOP_TIMEOUT);
    let log = d.log();
    assert!(summary_count(&log, "open_for_writing") >= 2, "{log}");
    assert!(summary_count(&log, "user_writable") >= 1, "{log}");
    assert_eq!(summary_count(&log, "marked"), 0, "{log}");
}

// ---------------------------------------------------------------------------------------
// Supervision of the tracker and the deadline watcher (review F12).

/// A tree tracker that dies (a panic injected at its start) stops the daemon loudly with a
/// failure, marks removed, instead of leaving new directories uncovered.
#[test]
fn a_dead_tracker_thread_stops_the_daemon_with_a_failure() {
    if !privileged() {
        return;
    }
    let w = World::new();
    let bad = put(&w.at("d/bad"), &infected("tracker"));
    let mut d = daemon(&w, &w.conf(), &[])
        .env("MOAT_TEST_FAULT", "tracker-panic")
        .spawn();
    let (status, took) = d.wait_exit(Duration::from_secs(20));
    assert!(!status.success(), "{status} after {took:?}: {}", d.log());
    let log = d.log();
    assert!(
        log.contains("a daemon thread died") && log.contains("moat-tracker"),
        "{log}"
    );
    assert_readable(&bad, &infected("tracker"));
}

/// A deadline watcher that panics (injected while it holds a token) is restarted with the
/// tokens it held: the token's deadline is still enforced. A clean 2 GiB sparse file takes
/// seconds to scan; with a 300 ms deadline and OnAccessDenyOnError yes the opener gets EPERM
/// (only the deadline can deny a clean file), and the restart is logged and counted.
#[test]
fn a_panicking_deadline_watcher_is_restarted_and_deadlines_hold() {
    if !privileged() {
        return;
    }
    let w = World::new();
    let big = w.at("s/big-clean");
    mkdir(big.parent().unwrap());
    fs::File::create(&big).unwrap().set_len(SLOW_SIZE).unwrap();
    fs::set_permissions(&big, fs::Permissions::from_mode(0o644)).unwrap();
    let conf = unlimited(w.conf())
        .set("OnAccessScanTimeout", "300ms")
        .set("OnAccessDenyOnError", "yes");
    let mut d = daemon(&w, &conf, &[])
        .env("MOAT_TEST_FAULT", "deadline-panic")
        .start();
    let code = spawn_as(NOBODY, &Action::read_any(&big)).wait_for(Duration::from_secs(30));
    assert_eq!(code, EPERM, "{}", d.log());
    d.wait_line("the watcher's restart", |l| {
        l.contains("deadline watcher panicked: restarted")
    });
    d.signal(libc::SIGTERM);
    d.wait_exit(Duration::from_secs(5));
    assert_eq!(
        summary_count(&d.log(), "watcher_restarts"),
        1,
        "{}",
        d.log()
    );
}
