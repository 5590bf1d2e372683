//! `moat status` and `--metrics` end to end, against the real kernel: `moat watch` runs on a
//! tempdir of the test's own (directory scope: inode marks) or on a private tmpfs the test
//! mounts and unmounts (filesystem scope), with its control socket and metrics endpoint on
//! a temp path and an ephemeral port; uid 65534 opens a clean file and the EICAR file; the
//! daemon's answer (JSON, parsed with serde_json) and its /metrics must show those opens.
//! Root only (`skipped: needs root (...)` otherwise, unless `MOAT_REQUIRE_PRIVILEGED=1`).
//! Every wait is bounded; the daemon is SIGKILLed and reaped on drop.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use md5::Digest;
use moat_testkit::watch::Watch as Daemon;
use moat_testkit::{privileged, read_as_nobody, watched_dir, write_file, NOBODY};
use serde_json::Value;

const LOG_TIMEOUT: Duration = Duration::from_secs(5);

/// The test's tempdir: `watched/` (the include path), `db/` (an MD5 signature of the EICAR
/// file, computed here), the config, the sockets and the daemon's log.
struct World {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    watched: PathBuf,
    _tmpfs: Option<Tmpfs>,
}

impl World {
    fn new(scope: &str) -> World {
        let (tmp, root) = watched_dir();
        let watched = root.join("watched");
        fs::create_dir(&watched).unwrap();
        // Filesystem marks only ever on a filesystem the test owns.
        let tmpfs = (scope == "filesystem").then(|| Tmpfs::mount(&watched));
        fs::set_permissions(&watched, fs::Permissions::from_mode(0o755)).unwrap();
        let db = root.join("db");
        fs::create_dir(&db).unwrap();
        let eicar = moat_testkit::eicar();
        let md5: String = md5::Md5::digest(&eicar)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        fs::write(
            db.join("eicar.hdb"),
            format!("{md5}:{}:Moat.Test.Eicar\n", eicar.len()),
        )
        .unwrap();
        fs::write(
            root.join("moat.conf"),
            format!(
                "OnAccessCoverage {scope}\nOnAccessIncludePath {}\nOnAccessPrevention yes\nDatabaseDirectory {}\n",
                watched.display(),
                db.display()
            ),
        )
        .unwrap();
        World {
            _tmp: tmp,
            root,
            watched,
            _tmpfs: tmpfs,
        }
    }

    fn socket(&self) -> PathBuf {
        self.root.join("run/control.sock")
    }
}

/// A tmpfs mounted for one test, lazily unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path) -> Tmpfs {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=16m,mode=0755", "moat-test"])
            .arg(at)
            .status()
            .expect("run mount");
        assert!(ok.success(), "mount -t tmpfs {}", at.display());
        Tmpfs(at.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// `moat watch -c <world>/moat.conf ARGS...`, READY=1 awaited (moat_testkit::watch: stopped
/// and reaped on drop).
fn start(w: &World, args: &[&str]) -> Daemon {
    Daemon::command(
        env!("CARGO_BIN_EXE_moat"),
        &w.root.join("moat.conf"),
        &w.root,
    )
    .args(args)
    .start()
}

/// The address from the daemon's `metrics on http://ADDR/metrics` line.
fn metrics_addr(d: &Daemon) -> String {
    let line = d.wait_line("`metrics on http://`", |l| l.contains("metrics on http://"));
    let rest = line.split("metrics on http://").nth(1).unwrap();
    rest.split('/').next().unwrap().to_string()
}

/// Runs `moat ARGS...`, as `uid` when given.
fn moat(args: &[&str], uid: Option<u32>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_moat"));
    cmd.args(args).stdin(Stdio::null());
    if let Some(uid) = uid {
        cmd.uid(uid).gid(uid);
    }
    cmd.output().expect("run moat")
}

fn status_json(socket: &Path) -> (i32, Value) {
    let out = moat(
        &["status", "--json", "--socket", socket.to_str().unwrap()],
        None,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "moat status --json printed no JSON ({e}): {text}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), json)
}

/// GET /metrics over a plain TCP connection (HTTP/1.0: the server closes after the body).
fn scrape(addr: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the metrics address");
    s.set_read_timeout(Some(LOG_TIMEOUT)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1."), "{reply}");
    assert!(reply.lines().next().unwrap().contains(" 200 "), "{reply}");
    reply
}

/// The value of the sample `name` (labels included in `name`) in Prometheus text.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {name} in:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

fn n(v: &Value, path: &str) -> u64 {
    v.pointer(path)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{path} missing or not a number in {v:#}"))
}

/// uid 65534 opens a clean file (allowed) and the EICAR file (EPERM): `moat status --json`
/// then says protecting, with the opens counted; /metrics shows the same counts; a
/// non-root `moat status` is refused (by the socket's mode, and by the peer credential check
/// when the mode is widened); once the daemon has stopped, `moat status` exits 2.
fn status_and_metrics_report_what_uid_65534_did(scope: &str) {
    if !privileged() {
        return;
    }
    let w = World::new(scope);
    let clean = w.watched.join("clean.txt");
    let bad = w.watched.join("eicar.com");
    write_file(&clean, b"nothing to see here\n", 0o644);
    write_file(&bad, &moat_testkit::eicar(), 0o644);
    let socket = w.socket();
    let sock = socket.to_str().unwrap();
    let mut d = start(&w, &["--control-socket", sock, "--metrics", "127.0.0.1:0"]);
    let mode = fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "control socket mode");

    assert_eq!(read_as_nobody(&clean, b"nothing to see here\n").1, 0);
    assert_eq!(
        read_as_nobody(&bad, &moat_testkit::eicar()).1,
        libc::EPERM,
        "the EICAR file opened by uid 65534"
    );

    let (code, s) = status_json(&socket);
    assert_eq!(s["protecting"], Value::Bool(true), "{s:#}");
    assert_eq!(code, 0, "exit status when protecting");
    assert_eq!(s["not_protecting_because"], serde_json::json!([]));
    assert_eq!(s["scope"], scope);
    assert_eq!(s["prevention"], true);
    assert_eq!(
        s["include_paths"],
        serde_json::json!([w.watched.to_str().unwrap()])
    );
    assert_eq!(s["coverage"]["problems"], serde_json::json!([]));
    if scope == "filesystem" {
        // The test's tmpfs, by its device, seen by the kernel as a filesystem mark.
        let covered = s["coverage"]["filesystems"].as_array().unwrap();
        assert!(
            covered
                .iter()
                .any(|f| f["mount_point"] == w.watched.to_str().unwrap() && f["fs_type"] == "tmpfs"),
            "{s:#}"
        );
    } else {
        assert!(n(&s, "/coverage/directories") >= 1, "{s:#}");
    }
    assert_eq!(n(&s, "/database/signatures"), 1, "one .hdb line");
    assert!(n(&s, "/counters/scanned") >= 2, "{s:#}");
    assert!(n(&s, "/counters/infected") >= 1, "{s:#}");
    assert!(n(&s, "/counters/blocked") >= 1, "{s:#}");
    assert_eq!(n(&s, "/counters/errors"), 0, "{s:#}");
    assert!(n(&s, "/latency/count") >= 2, "{s:#}");
    let p50 = s["latency"]["p50_ms"].as_f64().unwrap();
    let max = s["latency"]["max_ms"].as_f64().unwrap();
    assert!(p50 > 0.0 && p50 <= max, "{s:#}");
    assert!(s["uptime_seconds"].as_f64().unwrap() > 0.0);

    // The same counts on /metrics (nothing under the include path was opened since).
    let m = scrape(&metrics_addr(&d));
    for (metric, field) in [
        ("moat_scanned_total", "/counters/scanned"),
        ("moat_infected_total", "/counters/infected"),
        ("moat_blocked_total", "/counters/blocked"),
    ] {
        assert_eq!(sample(&m, metric) as u64, n(&s, field), "{metric}");
    }
    assert_eq!(sample(&m, "moat_protecting"), 1.0);
    assert_eq!(sample(&m, "moat_signatures"), 1.0);
    assert_eq!(
        sample(&m, "moat_verdict_latency_seconds_count") as u64,
        sample(&m, "moat_verdict_latency_seconds_bucket{le=\"+Inf\"}") as u64
    );
    assert!(sample(&m, "moat_verdict_latency_seconds_count") >= 2.0);

    // Not root: the socket's mode refuses the connection...
    let out = moat(&["status", "--socket", sock], Some(NOBODY));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("needs root"), "{err}");
    // ...and with the mode widened, the daemon refuses by the peer's uid.
    fs::set_permissions(&socket, fs::Permissions::from_mode(0o666)).unwrap();
    let out = moat(&["status", "--socket", sock], Some(NOBODY));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("root only (peer uid 65534)"), "{err}");
    assert!(out.stdout.is_empty(), "a refused peer gets no status");

    d.stop(Duration::from_secs(10));
    assert!(!socket.exists(), "the control socket is removed at stop");
    let out = moat(&["status", "--socket", sock], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach moat watch"));
}

#[test]
fn status_and_metrics_in_directory_scope() {
    status_and_metrics_report_what_uid_65534_did("directory");
}

#[test]
fn status_and_metrics_in_filesystem_scope() {
    status_and_metrics_report_what_uid_65534_did("filesystem");
}

/// A metrics address that cannot be bound, or a configured control socket another daemon
/// answers on, stops the start with an error naming it (exit 2, before any mark).
#[test]
fn endpoints_that_cannot_be_bound_are_start_errors() {
    if !privileged() {
        return;
    }
    let w = World::new("directory");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let conf = w.root.join("moat.conf");
    let run = |args: &[&str]| {
        let mut all = vec!["watch", "-c", conf.to_str().unwrap()];
        all.extend_from_slice(args);
        moat(&all, None)
    };
    let out = run(&[
        "--control-socket",
        w.socket().to_str().unwrap(),
        "--metrics",
        &addr,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("metrics address {addr}")), "{err}");
    assert!(
        !err.contains("watching"),
        "failed before placing marks: {err}"
    );

    let d = start(&w, &["--control-socket", w.socket().to_str().unwrap()]);
    let out = run(&["--control-socket", w.socket().to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("another moat watch is listening"), "{err}");
    // The first daemon still answers.
    assert_eq!(status_json(&w.socket()).0, 0);
    drop(d);
}

/// An include path removed while the daemon runs is no longer protected: `moat status`
/// exits 1 and names it (the kernel dropped the directory's mark with the inode).
#[test]
fn a_removed_include_path_is_reported_as_not_protecting() {
    if !privileged() {
        return;
    }
    let w = World::new("directory");
    let socket = w.socket();
    let _d = start(&w, &["--control-socket", socket.to_str().unwrap()]);
    assert_eq!(status_json(&socket).0, 0);
    fs::remove_dir(&w.watched).unwrap();
    let (code, s) = status_json(&socket);
    assert_eq!(code, 1, "{s:#}");
    assert_eq!(s["protecting"], false);
    let why = s["not_protecting_because"].to_string();
    assert!(why.contains(w.watched.to_str().unwrap()), "{why}");
    let out = moat(&["status", "--socket", socket.to_str().unwrap()], None);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(text.contains("NOT protecting"), "{text}");
}

/// Polls `moat status --json` until `done` holds (bounded), returning the last answer.
fn status_until(socket: &Path, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + LOG_TIMEOUT;
    loop {
        let (_, s) = status_json(socket);
        if done(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "{what}: {s:#}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A SIGHUP that changes clamd.conf (a second include path) starts a new daemon; the
/// counters, the latency histogram and the uptime go on from the old one, and the reload
/// is counted: uid 65534's blocked EICAR open before the reload stays counted, the one
/// after it adds one, in `moat status` and on /metrics.
#[test]
fn counters_and_uptime_survive_a_reload_that_changes_settings() {
    if !privileged() {
        return;
    }
    let w = World::new("directory");
    let added = w.root.join("added");
    fs::create_dir(&added).unwrap();
    fs::set_permissions(&added, fs::Permissions::from_mode(0o755)).unwrap();
    let bad = w.watched.join("eicar.com");
    let bad2 = added.join("eicar.com");
    write_file(&bad, &moat_testkit::eicar(), 0o644);
    write_file(&bad2, &moat_testkit::eicar(), 0o644);
    let socket = w.socket();
    let sock = socket.to_str().unwrap();
    let d = start(&w, &["--control-socket", sock, "--metrics", "127.0.0.1:0"]);
    assert_eq!(read_as_nobody(&bad, &moat_testkit::eicar()).1, libc::EPERM);
    std::thread::sleep(Duration::from_millis(200));
    let (_, before) = status_json(&socket);
    let asked_before = Instant::now();
    assert_eq!(n(&before, "/counters/blocked"), 1, "{before:#}");
    assert_eq!(n(&before, "/reloads/count"), 0, "{before:#}");
    let uptime_before = before["uptime_seconds"].as_f64().unwrap();
    assert!(uptime_before >= 0.2, "{before:#}");

    let conf = w.root.join("moat.conf");
    let text = fs::read_to_string(&conf).unwrap();
    fs::write(
        &conf,
        format!("{text}OnAccessIncludePath {}\n", added.display()),
    )
    .unwrap();
    d.signal(libc::SIGHUP);
    let after = status_until(&socket, "no reload counted", |s| {
        s.pointer("/reloads/count").and_then(Value::as_u64) == Some(1)
    });
    let asked_after = Instant::now();
    assert!(
        d.log().contains("new configuration in place"),
        "a new daemon"
    );
    assert_eq!(after["reloads"]["last_ok"], true, "{after:#}");
    assert_eq!(n(&after, "/reloads/failed"), 0);
    assert!(n(&after, "/reloads/last_unix") >= n(&before, "/ready_since_unix"));
    assert_eq!(after["include_paths"].as_array().unwrap().len(), 2);
    assert_eq!(n(&after, "/counters/blocked"), 1, "kept: {after:#}");
    assert!(n(&after, "/counters/scanned") >= n(&before, "/counters/scanned"));
    assert!(n(&after, "/latency/count") >= n(&before, "/latency/count"));
    assert_eq!(
        n(&after, "/ready_since_unix"),
        n(&before, "/ready_since_unix")
    );
    // Reset, the uptime would be below the time between the two answers.
    let elapsed = asked_after.duration_since(asked_before).as_secs_f64();
    let uptime_after = after["uptime_seconds"].as_f64().unwrap();
    assert!(
        uptime_after >= uptime_before + elapsed - 0.1,
        "uptime {uptime_before} then {uptime_after}, {elapsed} s apart"
    );

    // The new daemon counts on: the added include path is protected and counted.
    assert_eq!(read_as_nobody(&bad2, &moat_testkit::eicar()).1, libc::EPERM);
    let (_, last) = status_json(&socket);
    assert_eq!(n(&last, "/counters/blocked"), 2, "{last:#}");
    let m = scrape(&metrics_addr(&d));
    assert_eq!(sample(&m, "moat_blocked_total"), 2.0);
    assert_eq!(sample(&m, "moat_reloads_total"), 1.0);
    assert_eq!(sample(&m, "moat_reload_failures_total"), 0.0);
    assert_eq!(sample(&m, "moat_last_reload_success"), 1.0);
    let out = moat(&["status", "--socket", sock], None);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("reloads:      1 done, 0 failed; last "),
        "{text}"
    );
}

/// With `--move`, VirusEvent and a detection log, one blocked EICAR open by uid 65534 shows
/// in moat-react's counters in `moat status` and /metrics, each matching what is on disk:
/// the file moved into the quarantine, the command's marker file, the log's line.
#[test]
fn reaction_counters_show_what_was_done_about_a_detection() {
    if !privileged() {
        return;
    }
    let w = World::new("directory");
    let bad = w.watched.join("eicar.com");
    write_file(&bad, &moat_testkit::eicar(), 0o644);
    let (q, log, marker) = (
        w.root.join("q"),
        w.root.join("detections.jsonl"),
        w.root.join("virus-event.done"),
    );
    let conf = w.root.join("moat.conf");
    let text = fs::read_to_string(&conf).unwrap();
    fs::write(
        &conf,
        format!(
            "{text}VirusEvent /usr/bin/touch {}\nMoatDetectionLog {}\n",
            marker.display(),
            log.display()
        ),
    )
    .unwrap();
    let socket = w.socket();
    let d = start(
        &w,
        &[
            "--control-socket",
            socket.to_str().unwrap(),
            "--metrics",
            "127.0.0.1:0",
            "--move",
            q.to_str().unwrap(),
        ],
    );
    let (_, before) = status_json(&socket);
    assert_eq!(n(&before, "/reactions/handled"), 0, "{before:#}");
    assert_eq!(read_as_nobody(&bad, &moat_testkit::eicar()).1, libc::EPERM);
    let s = status_until(&socket, "the reactions are not counted", |s| {
        let get = |p: &str| s.pointer(p).and_then(Value::as_u64);
        get("/reactions/moved") == Some(1)
            && get("/reactions/virus_event_runs") == Some(1)
            && get("/reactions/log_lines") == Some(1)
    });
    for zero in [
        "queue_dropped",
        "copied",
        "removed",
        "action_failures",
        "virus_event_dropped",
        "virus_event_failures",
        "log_suppressed",
        "log_errors",
    ] {
        assert_eq!(n(&s, &format!("/reactions/{zero}")), 0, "{zero}: {s:#}");
    }
    assert_eq!(n(&s, "/reactions/handled"), 1);
    // What the counters say is on disk.
    assert!(!bad.exists(), "moved out of the include path");
    let quarantined = fs::read_dir(&q).unwrap().count();
    assert!(quarantined >= 1, "the quarantine holds the file");
    let deadline = Instant::now() + LOG_TIMEOUT;
    while !marker.exists() {
        assert!(Instant::now() < deadline, "VirusEvent never ran");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(fs::read_to_string(&log).unwrap().lines().count(), 1);

    let m = scrape(&metrics_addr(&d));
    assert_eq!(sample(&m, "moat_quarantined_total{action=\"moved\"}"), 1.0);
    assert_eq!(sample(&m, "moat_virus_event_total{outcome=\"run\"}"), 1.0);
    assert_eq!(
        sample(&m, "moat_detection_log_records_total{outcome=\"written\"}"),
        1.0
    );
    assert_eq!(sample(&m, "moat_reactions_queue_dropped_total"), 0.0);
    let out = moat(&["status", "--socket", socket.to_str().unwrap()], None);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("reactions:    handled=1 moved=1 virus_event_runs=1 log_lines=1"),
        "{text}"
    );
}
