//! moat as a service: the systemd units in `dist/systemd/` (checked by `systemd-analyze
//! verify`) and the watchdog protocol of `moat watch` (run under a notify socket the test
//! binds, as systemd would with `WatchdogSec=`).
//!
//! The watchdog tests need root (fanotify); without it they print `skipped: needs root` and
//! pass, unless `MOAT_REQUIRE_PRIVILEGED=1`. The verify test needs `systemd-analyze`;
//! without it it prints `skipped` and passes, unless `MOAT_REQUIRE_ORACLE=1`. Each daemon
//! watches only the test's own temp directory (inode marks, `OnAccessCoverage directory`)
//! with a config file of its own, and is SIGKILLed and reaped on drop.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use moat_testkit::watch::Watch;
use moat_testkit::{privileged, read_as_nobody, watched_dir, write_file};

/// The repository's unit files.
const UNITS: [&str; 3] = [
    "moat-watch.service",
    "moat-serve.service",
    "moat-serve.socket",
];
/// systemd's watchdog interval for the tests: pings every 200 ms.
const WATCHDOG_USEC: &str = "400000";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn require_oracle() -> bool {
    std::env::var_os("MOAT_REQUIRE_ORACLE").is_some_and(|v| v == "1")
}

/// `systemd-analyze verify` accepts every unit, with no warning at all. The units name
/// `/usr/bin/moat`, which verify requires to exist: each is checked in a temporary copy
/// whose `ExecStart=` names the binary under test instead. Man pages are not checked
/// (`--man=no`): the package installs moat(1), the build machine does not have it.
#[test]
fn units_pass_systemd_analyze_verify() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            !require_oracle(),
            "systemd-analyze is required (MOAT_REQUIRE_ORACLE=1)"
        );
        eprintln!("skipped: systemd-analyze not found");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_moat");
    let mut paths = Vec::new();
    for unit in UNITS {
        let text = fs::read_to_string(repo_root().join("dist/systemd").join(unit)).unwrap();
        let mut replaced = 0;
        let copy: String = text
            .lines()
            .map(|l| match l.strip_prefix("ExecStart=/usr/bin/moat ") {
                Some(rest) => {
                    replaced += 1;
                    format!("ExecStart={bin} {rest}\n")
                }
                None => format!("{l}\n"),
            })
            .collect();
        assert!(
            replaced == 1 || unit.ends_with(".socket"),
            "{unit}: one ExecStart=/usr/bin/moat line expected"
        );
        let path = tmp.path().join(unit);
        fs::write(&path, copy).unwrap();
        paths.push(path);
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&paths)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {}\n{stderr}",
        out.status
    );
}

// ---------------------------------------------------------------------------------------
// The watchdog.

/// A `moat watch` on a temp dir of its own (moat_testkit::watch), under a notify socket the
/// test reads, with systemd's watchdog variables.
struct Service {
    /// Declared first: dropped (killed and reaped) before the temp dir goes.
    daemon: Watch,
    root: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Service {
    fn start(env: &[(&str, &str)]) -> Service {
        let (tmp, root) = watched_dir();
        let watched = root.join("watched");
        let db = root.join("db");
        for d in [&watched, &db] {
            fs::create_dir(d).unwrap();
            fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        }
        fs::write(
            db.join("test.ndb"),
            "Moat.Test.Marker:0:*:4d4f41542d544553542d4d41524b4552\n",
        )
        .unwrap();
        let conf = root.join("moat.conf");
        fs::write(
            &conf,
            format!(
                "OnAccessCoverage directory\nOnAccessIncludePath {}\nOnAccessPrevention yes\nDatabaseDirectory {}\n",
                watched.display(),
                db.display()
            ),
        )
        .unwrap();
        let mut cmd = Watch::command(env!("CARGO_BIN_EXE_moat"), &conf, &root)
            .env("WATCHDOG_USEC", WATCHDOG_USEC)
            .env_remove("WATCHDOG_PID");
        for (k, v) in env {
            cmd = cmd.env(k, v);
        }
        Service {
            daemon: cmd.spawn(),
            root,
            _tmp: tmp,
        }
    }

    /// SIGTERM, then the exit within `limit` must be a success.
    fn stop(mut self, limit: Duration) {
        let status = self.daemon.stop(limit);
        assert!(status.success(), "{status}: {}", self.daemon.log());
    }
}

fn pings(msgs: &[String]) -> usize {
    msgs.iter()
        .filter(|m| m.lines().any(|l| l == "WATCHDOG=1"))
        .count()
}

/// With `WATCHDOG_USEC` set, an idle daemon sends READY=1 and then WATCHDOG=1 about every
/// half interval (its reader wakes on its own to prove it turns), and keeps doing so while
/// it answers opens by uid 65534.
#[test]
fn an_idle_daemon_pings_the_watchdog_every_half_interval() {
    if !privileged() {
        return;
    }
    let mut w = Service::start(&[]);
    w.daemon.wait_ready();
    let msgs = w.daemon.datagrams_for(Duration::from_secs(2));
    // 200 ms period: about 10 in 2 s; at least 5 even on a loaded machine.
    assert!(pings(&msgs) >= 5, "{msgs:?}");
    let file = w.root.join("watched/clean");
    write_file(&file, b"nothing to see\n", 0o644);
    let (_, code) = read_as_nobody(&file, b"nothing to see\n");
    assert_eq!(code, 0, "{}", w.daemon.log());
    assert!(pings(&w.daemon.datagrams_for(Duration::from_secs(1))) >= 2);
    w.stop(Duration::from_secs(2));
}

/// When the reader stops reading events (fault injection: it blocks as if stuck in a
/// syscall, 1.5 s after the start), the watchdog says why in the log and no WATCHDOG=1
/// follows, so systemd would kill and restart it. SIGTERM still stops it cleanly.
#[test]
fn a_stuck_reader_stops_the_watchdog_pings() {
    if !privileged() {
        return;
    }
    let mut w = Service::start(&[("MOAT_TEST_FAULT", "reader-wedge-after-ms=1500")]);
    w.daemon.wait_ready();
    let until = Instant::now() + Duration::from_secs(10);
    let mut before = 0;
    while !w.daemon.log().contains("watchdog: the event path is stuck") {
        assert!(
            Instant::now() < until,
            "no watchdog error: {}",
            w.daemon.log()
        );
        before += pings(&w.daemon.datagrams_for(Duration::from_millis(50)));
    }
    assert!(before >= 1, "pinged before the reader got stuck");
    let log = w.daemon.log();
    assert!(log.contains("fanotify reader"), "{log}");
    assert!(!log.contains("worker pool"), "the pool is not stuck: {log}");
    // Pings already queued when the error was logged are read first; then silence.
    let _ = w.daemon.datagrams_for(Duration::from_millis(100));
    let after = w.daemon.datagrams_for(Duration::from_secs(1));
    assert_eq!(pings(&after), 0, "{after:?}");
    w.stop(Duration::from_secs(2));
}

// ---------------------------------------------------------------------------------------
// The Debian package (`cargo deb -p moat`).

/// `[package.metadata.deb]` of crates/moat/Cargo.toml.
fn deb_metadata() -> toml::Table {
    let text = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .expect("crates/moat/Cargo.toml");
    let manifest: toml::Table = text.parse().expect("Cargo.toml parses");
    manifest["package"]["metadata"]["deb"]
        .as_table()
        .expect("[package.metadata.deb]")
        .clone()
}

/// The package's assets as (source relative to crates/moat, destination).
fn deb_assets() -> Vec<(String, String)> {
    deb_metadata()["assets"]
        .as_array()
        .expect("assets")
        .iter()
        .map(|a| {
            let a = a.as_array().expect("[source, dest, mode]");
            (
                a[0].as_str().unwrap().to_owned(),
                a[1].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Every asset but the binary (which cargo-deb builds) exists; the binary goes to /usr/bin,
/// every unit of dist/systemd to /lib/systemd/system, every page `moat man` writes to
/// section 1; nothing goes to /etc (no conffile: an existing /etc/clamav/clamd.conf is
/// never replaced or removed by the package) and the maintainer scripts exist.
#[test]
fn the_debian_package_ships_binary_units_and_pages_and_no_conffile() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let assets = deb_assets();
    for (src, dest) in &assets {
        assert!(
            !dest.starts_with("etc") && !dest.starts_with("/etc"),
            "{dest}"
        );
        if src != "target/release/moat" {
            assert!(crate_dir.join(src).is_file(), "asset {src} missing");
        }
    }
    let has = |src: &str, dest: &str| assets.iter().any(|(s, d)| s == src && d == dest);
    assert!(has("target/release/moat", "usr/bin/"));
    for unit in UNITS {
        let src = format!("../../dist/systemd/{unit}");
        assert!(has(&src, "lib/systemd/system/"), "{unit} not packaged");
    }
    // The pages the binary under test writes: all packaged.
    let tmp = tempfile::tempdir().unwrap();
    let st = Command::new(env!("CARGO_BIN_EXE_moat"))
        .arg("man")
        .arg(tmp.path())
        .status()
        .unwrap();
    assert!(st.success());
    for page in fs::read_dir(tmp.path()).unwrap() {
        let name = page.unwrap().file_name().into_string().unwrap();
        let src = format!("../../dist/man/{name}");
        assert!(has(&src, "usr/share/man/man1/"), "{name} not packaged");
    }
    let meta = deb_metadata();
    assert!(
        meta.get("conf-files").is_none(),
        "no conffile: clamd.conf is not moat's"
    );
    let scripts = crate_dir.join(meta["maintainer-scripts"].as_str().unwrap());
    for s in ["postinst", "prerm", "postrm"] {
        let text = fs::read_to_string(scripts.join(s)).unwrap();
        assert!(text.starts_with("#!/bin/sh\n"), "{s}");
        // Comments may mention it; no command touches it.
        let touches = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .any(|l| l.contains("/etc/clamav"));
        assert!(!touches, "{s} must leave /etc/clamav alone");
    }
}

/// dist/man holds exactly what `moat man` writes now: a flag added without regenerating the
/// pages fails here. Regenerate with `cargo run --release -p moat -- man dist/man`.
#[test]
fn the_packaged_man_pages_are_current() {
    let tmp = tempfile::tempdir().unwrap();
    let st = Command::new(env!("CARGO_BIN_EXE_moat"))
        .arg("man")
        .arg(tmp.path())
        .status()
        .unwrap();
    assert!(st.success());
    let committed = repo_root().join("dist/man");
    let names = |d: &Path| {
        let mut v: Vec<String> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        names(tmp.path()),
        names(&committed),
        "regenerate: cargo run --release -p moat -- man dist/man"
    );
    for name in names(tmp.path()) {
        let fresh = fs::read_to_string(tmp.path().join(&name)).unwrap();
        let old = fs::read_to_string(committed.join(&name)).unwrap();
        assert!(
            fresh == old,
            "dist/man/{name} is stale; regenerate: cargo run --release -p moat -- man dist/man"
        );
    }
    // The watch page documents the service: its signals and the watchdog.
    let watch = fs::read_to_string(committed.join("moat-watch.1")).unwrap();
    for needle in [
        "SIGHUP",
        "WatchdogSec",
        "EXIT STATUS",
        "OnAccessIncludePath",
    ] {
        assert!(watch.contains(needle), "moat-watch.1 lacks {needle}");
    }
}
