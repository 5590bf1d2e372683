//! clamd servers as moat's backend (`--clamd`, `ClamdSocket`), against real clamd (the oracle)
//! started by the tests on temp sockets:
//!
//! - `moat scan --clamd unix:…` (FILDES) and `--clamd tcp:…` (INSTREAM) print the lines and
//!   exit status clamscan prints on the same database (a generated one, plus the real
//!   ../shared/sigs/clamav-real hash and body files when present), and with no server an
//!   error line per file and status 2;
//! - `moat watch` on clamd (root): uid 65534 gets EPERM for EICAR and reads a clean file;
//!   with every server killed, `OnAccessDenyOnError yes` denies a fresh clean file and `no`
//!   allows it.
//!
//! Skipped (with the reason printed) without clamd/clamscan unless `MOAT_REQUIRE_ORACLE=1`;
//! the watch tests without root unless `MOAT_REQUIRE_PRIVILEGED=1`.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use moat_testkit::clamd::Clamd;
use moat_testkit::{privileged, read_as_nobody, watched_dir, write_file};

fn oracle_present() -> bool {
    moat_testkit::oracle(
        &["clamd", "clamscan"],
        "apt-get install clamav clamav-daemon",
    )
}

/// The real signature files used when ../shared is present (hashes, bodies, allow lists).
const REAL: &[&str] = &["daily.ndb", "daily.hdb", "main.hdb", "daily.fp", "main.fp"];

/// Built at run time so that no signature's bytes sit in this file.
fn marker() -> Vec<u8> {
    format!("{}-TEST-{}", "MOAT", "MARKER").into_bytes()
}

/// The marker's signature, a `.ndb` line.
fn marker_signature() -> String {
    format!("Moat.Test.Marker:0:*:{}\n", hex::encode(marker()))
}

fn md5_hex(data: &[u8]) -> String {
    use md5::{Digest, Md5};
    hex::encode(Md5::digest(data))
}

/// A database directory: the marker (body), EICAR (by its MD5), and with `real` the real
/// files of ../shared linked in.
fn database(dir: &Path, real: bool) -> PathBuf {
    let db = dir.join("db");
    fs::create_dir_all(&db).unwrap();
    fs::write(db.join("test.ndb"), marker_signature()).unwrap();
    let eicar = moat_testkit::eicar();
    fs::write(
        db.join("eicar.hdb"),
        format!("{}:{}:Moat.Test.Eicar\n", md5_hex(&eicar), eicar.len()),
    )
    .unwrap();
    if real {
        if let Some(shared) = moat_testkit::real_sigs() {
            for name in REAL {
                std::os::unix::fs::symlink(shared.join(name), db.join(name)).unwrap();
            }
        }
    }
    db
}

/// A tree of files: clean ones, the marker, EICAR, an empty file, a name with spaces, and
/// copies of a few real files of this machine (for the real signatures to see).
fn tree(root: &Path) -> PathBuf {
    let t = root.join("tree");
    fs::create_dir_all(t.join("sub/deeper")).unwrap();
    fs::create_dir_all(t.join("sp ace")).unwrap();
    fs::write(t.join("clean.txt"), b"nothing here\n").unwrap();
    fs::write(t.join("empty"), b"").unwrap();
    fs::write(t.join("eicar.com"), moat_testkit::eicar()).unwrap();
    let mut bad = b"head ".to_vec();
    bad.extend(marker());
    bad.extend(vec![b'x'; 300_000]);
    fs::write(t.join("sub/marker-big.bin"), &bad).unwrap();
    fs::write(t.join("sp ace/x y.txt"), marker()).unwrap();
    fs::write(t.join("sub/deeper/z.txt"), b"zzz\n".repeat(1000)).unwrap();
    for real in ["/bin/ls", "/bin/sh", "/etc/services", "/etc/passwd"] {
        if let Ok(bytes) = fs::read(real) {
            let name = real.rsplit('/').next().unwrap();
            fs::write(t.join("sub").join(name), bytes).unwrap();
        }
    }
    t
}

fn run(cmd: &mut Command) -> (String, i32) {
    let Output { stdout, status, .. } = cmd.stderr(Stdio::null()).output().unwrap();
    (
        String::from_utf8(stdout).unwrap(),
        status.code().unwrap_or(-1),
    )
}

fn moat_scan(args: &[&str], path: &Path) -> (String, i32) {
    run(Command::new(env!("CARGO_BIN_EXE_moat"))
        .arg("scan")
        .args(args)
        .arg(path))
}

#[test]
fn scan_on_clamd_prints_what_clamscan_prints() {
    if !oracle_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let db = database(tmp.path(), true);
    let files = tree(tmp.path());
    let server = Clamd::start(tmp.path(), &db, "clamd");
    for flags in [&["-r", "--no-summary"][..], &["-r", "--no-summary", "-i"]] {
        let oracle = run(Command::new("clamscan")
            .arg("-d")
            .arg(&db)
            .args(flags)
            .arg(&files));
        assert!(
            oracle
                .0
                .contains("eicar.com: Moat.Test.Eicar.UNOFFICIAL FOUND"),
            "{}",
            oracle.0
        );
        assert_eq!(oracle.1, 1);
        for endpoint in [server.unix(), server.tcp()] {
            let mut args = flags.to_vec();
            args.extend(["--clamd", &endpoint]);
            assert_eq!(moat_scan(&args, &files), oracle, "moat scan {args:?}");
        }
    }
    // A server given twice: the pool spreads and the output is the same.
    let (unix, tcp) = (server.unix(), server.tcp());
    let both = ["-r", "--no-summary", "--clamd", &unix, "--clamd", &tcp];
    let oracle = run(Command::new("clamscan")
        .arg("-d")
        .arg(&db)
        .args(["-r", "--no-summary"])
        .arg(&files));
    assert_eq!(moat_scan(&both, &files), oracle);
}

#[test]
fn scan_with_no_clamd_answering_prints_an_error_per_file_and_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let files = tree(tmp.path());
    let gone = format!("unix:{}", tmp.path().join("nobody-here.sock").display());
    let (out, code) = moat_scan(&["-r", "--no-summary", "--clamd", &gone], &files);
    assert_eq!(code, 2, "{out}");
    for line in out.lines() {
        if line.ends_with(": Empty file") {
            continue;
        }
        assert!(
            line.contains(": no clamd server answered (unix:") && line.ends_with(" ERROR"),
            "{line}"
        );
    }
    assert!(out.lines().count() >= 6, "{out}");
}

// ---------------------------------------------------------------------------------------
// moat watch on clamd (root).

/// A running `moat watch`, killed on drop (its stderr printed when the test fails).
struct Watch {
    child: Child,
    log: PathBuf,
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("---- moat watch stderr ----\n{log}---- end ----");
        }
    }
}

impl Watch {
    /// `moat watch -c CONF ARGS` in directory scope over `watched`; waits for READY=1.
    fn start(root: &Path, conf: &str, args: &[&str]) -> Watch {
        let conf_path = root.join("moat.conf");
        fs::write(&conf_path, conf).unwrap();
        let sock = root.join("notify.sock");
        let notify = UnixDatagram::bind(&sock).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let log = root.join("watch.log");
        let child = Command::new(env!("CARGO_BIN_EXE_moat"))
            .arg("watch")
            .arg("-c")
            .arg(&conf_path)
            .args(args)
            .env("NOTIFY_SOCKET", &sock)
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut watch = Watch { child, log };
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut buf = [0u8; 4096];
        loop {
            match notify.recv(&mut buf) {
                Ok(n) if String::from_utf8_lossy(&buf[..n]).contains("READY=1") => return watch,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => panic!("notify socket: {e}"),
            }
            if let Ok(Some(status)) = watch.child.try_wait() {
                panic!("moat watch exited before READY=1 ({status})");
            }
            assert!(Instant::now() < deadline, "no READY=1");
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// `root/watched`, which uid 65534 may enter.
fn watched_subdir(root: &Path) -> PathBuf {
    let watched = root.join("watched");
    fs::create_dir(&watched).unwrap();
    fs::set_permissions(
        &watched,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    watched
}

/// EICAR blocked and a clean file readable for uid 65534 while clamd answers; then, with
/// clamd killed, a clean file never scanned before is denied or allowed as `deny` says.
fn watch_on_clamd(deny: bool) {
    if !privileged() || !oracle_present() {
        return;
    }
    let (_tmp, root) = watched_dir();
    let db = database(&root, false);
    let mut server = Clamd::start(&root, &db, "clamd");
    let watched = watched_subdir(&root);
    let eicar = moat_testkit::eicar();
    write_file(&watched.join("eicar.com"), &eicar, 0o644);
    write_file(&watched.join("clean.txt"), b"clean\n", 0o644);
    let conf = format!(
        "OnAccessCoverage directory\nOnAccessIncludePath {}\nOnAccessPrevention yes\n\
         OnAccessDenyOnError {}\nOnAccessCurlTimeout 1000\nDatabaseDirectory {}\n\
         ClamdSocket {}\n",
        watched.display(),
        if deny { "yes" } else { "no" },
        root.join("no-db-needed").display(),
        server.unix()
    );
    // One server from the file, the same one over TCP from the flag: both transports.
    let watch = Watch::start(&root, &conf, &["--clamd", &server.tcp()]);
    for _ in 0..2 {
        let (_, code) = read_as_nobody(&watched.join("eicar.com"), &eicar);
        assert_eq!(code, libc::EPERM, "EICAR must be blocked\n{}", watch.log());
    }
    let (_, code) = read_as_nobody(&watched.join("clean.txt"), b"clean\n");
    assert_eq!(code, 0, "a clean file must be readable\n{}", watch.log());
    assert!(watch.log().contains("Moat.Test.Eicar.UNOFFICIAL FOUND"));

    server.kill();
    write_file(&watched.join("fresh.txt"), b"fresh\n", 0o644);
    let (_, code) = read_as_nobody(&watched.join("fresh.txt"), b"fresh\n");
    let want = if deny { libc::EPERM } else { 0 };
    assert_eq!(
        code,
        want,
        "no clamd, OnAccessDenyOnError {deny}\n{}",
        watch.log()
    );
    // The cached detection still holds without a server.
    let (_, code) = read_as_nobody(&watched.join("eicar.com"), &eicar);
    assert_eq!(code, libc::EPERM);
    assert!(
        watch.log().contains("no clamd server answered"),
        "{}",
        watch.log()
    );
}

#[test]
fn watch_on_clamd_denies_when_no_server_answers_with_deny_on_error() {
    watch_on_clamd(true);
}

#[test]
fn watch_on_clamd_allows_when_no_server_answers_without_deny_on_error() {
    watch_on_clamd(false);
}

/// A file F in a watched directory of `root` and `moat watch` on `server` (health checks
/// every 200 ms, DenyOnError): F must read (clean under the server's first database).
struct Reloading {
    f: PathBuf,
    content: Vec<u8>,
    watch: Watch,
}

impl Reloading {
    fn start(root: &Path, server: &Clamd) -> Reloading {
        let watched = watched_subdir(root);
        let content = format!("{}-{}-{}\n", "moat", "reload", std::process::id()).into_bytes();
        let f = watched.join("f.txt");
        write_file(&f, &content, 0o644);
        let conf = format!(
            "OnAccessCoverage directory\nOnAccessIncludePath {}\nOnAccessPrevention yes\n\
             OnAccessDenyOnError yes\nOnAccessCurlTimeout 2000\nDatabaseDirectory {}\n\
             ClamdSocket {}\n",
            watched.display(),
            root.join("no-db-needed").display(),
            server.unix()
        );
        let watch = Watch::start(root, &conf, &["--clamd-health-interval", "200ms"]);
        for _ in 0..3 {
            let (_, code) = read_as_nobody(&f, &content);
            assert_eq!(
                code,
                0,
                "F is clean for the first database\n{}",
                watch.log()
            );
        }
        Reloading { f, content, watch }
    }

    /// F's signature as a `.ndb` line.
    fn signature(&self) -> String {
        format!("Moat.Test.Reload:0:*:{}\n", hex::encode(&self.content))
    }

    /// Reads F as uid 65534 until it fails or 10 s pass; the last errno (0: read).
    fn read_until_denied(&self) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, code) = read_as_nobody(&self.f, &self.content);
            if code != 0 || Instant::now() > deadline {
                return code;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A file F clean under the servers' database is read by uid 65534; then a signature for F
/// is added to clamd's database directory and clamd told to RELOAD: within the health
/// interval (200 ms here) the next read is EPERM. Real clamd on a database without a
/// daily/main container answers VERSION with no database version, so the pool caches no
/// clean verdict of it (its reloads cannot be seen), and says so in the log. Without that,
/// F stayed cached clean (userspace cache and kernel ignore mark) and readable forever.
#[test]
fn watch_on_clamd_blocks_a_file_once_the_server_reloads_a_signature_for_it() {
    if !privileged() || !oracle_present() {
        return;
    }
    let (_tmp, root) = watched_dir();
    let db = root.join("db");
    fs::create_dir(&db).unwrap();
    // clamd refuses to start on a directory without signatures: one that F does not match.
    fs::write(db.join("first.ndb"), marker_signature()).unwrap();
    let server = Clamd::start(&root, &db, "clamd");
    let run = Reloading::start(&root, &server);

    fs::write(db.join("second.ndb"), run.signature()).unwrap();
    assert_eq!(server.request("RELOAD").unwrap(), "RELOADING");
    let code = run.read_until_denied();
    let log = run.watch.log();
    assert_eq!(
        code,
        libc::EPERM,
        "F must be blocked once clamd loaded its signature\nclamd:\n{}\nmoat:\n{log}",
        server.log()
    );
    assert!(log.contains("Moat.Test.Reload.UNOFFICIAL FOUND"), "{log}");
    assert!(
        log.contains("clean verdicts not cached: a server shows no database version"),
        "{log}"
    );
}

/// A `daily.cld` of `version` whose `daily.ndb` has the marker's signature and `extra`.
fn daily_cld(db: &Path, version: u32, extra: &str) {
    let ndb = marker_signature() + extra;
    let cld = moat_testkit::cvd::build(version, &[("daily.ndb", ndb.as_bytes())]);
    fs::write(db.join("daily.cld"), cld).unwrap();
}

/// As above with `moat serve` as the server, on a versioned database (a daily.cld: real
/// clamd refuses an unsigned one): VERSION names it (`.../7/...`), so F's clean verdict is
/// cached, in the kernel too (an ignore mark: F's next opens raise no event at all). The
/// server then reloads daily.cld 8, which has a signature for F: at its next health check
/// the pool sees version 8, and `moat watch` flushes both caches, so F is scanned again and
/// blocked. Without the flush F stayed readable (no event reached moat).
#[test]
fn watch_on_clamd_flushes_its_caches_when_a_server_loads_a_new_database_version() {
    if !privileged() {
        return;
    }
    let (_tmp, root) = watched_dir();
    let db = root.join("db");
    fs::create_dir(&db).unwrap();
    daily_cld(&db, 7, "");
    let mut serve = Command::new(env!("CARGO_BIN_EXE_moat"));
    serve.arg("serve");
    let server = Clamd::launch(serve, &root, &db, "serve", "");
    let version = || server.request("VERSION").unwrap();
    assert!(version().contains("/7/"), "{}", server.log());
    let run = Reloading::start(&root, &server);
    assert!(
        run.watch.log().contains("; clean verdicts cached"),
        "{}",
        run.watch.log()
    );

    daily_cld(&db, 8, &run.signature());
    assert_eq!(server.request("RELOAD").unwrap(), "RELOADING");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !version().contains("/8/") {
        assert!(Instant::now() < deadline, "no reload\n{}", server.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let code = run.read_until_denied();
    let log = run.watch.log();
    assert_eq!(
        code,
        libc::EPERM,
        "F must be blocked under version 8\n{log}"
    );
    assert!(log.contains("Moat.Test.Reload FOUND"), "{log}");
    assert!(
        log.contains("the scanner's database changed (a clamd server's); clean caches flushed"),
        "{log}"
    );
}
