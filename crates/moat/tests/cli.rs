//! `moat scan` as a command: walking, output lines, summary and exit codes, compared
//! line for line (in order) with real clamscan where it is installed, plus checks of
//! moat's own messages that need no oracle.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// A body signature that matches the `infected` files below (all bytes are static and
/// include a byte above 0x7f, so ClamAV's text normalization cannot change the outcome).
const SIG: &str = "Test.Cli:0:*:e1e2e3e4e5e6e7e8";
const INFECTED: &[u8] = b"xx\xe1\xe2\xe3\xe4\xe5\xe6\xe7\xe8xx padding";

fn moat() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_moat"));
    c.arg("scan");
    c
}

fn clamscan() -> Option<Command> {
    let installed = Command::new("clamscan")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if installed {
        return Some(Command::new("clamscan"));
    }
    if std::env::var("MOAT_REQUIRE_ORACLE").as_deref() == Ok("1") {
        panic!("clamscan not installed but MOAT_REQUIRE_ORACLE=1 (apt-get install clamav)");
    }
    println!("skipped: clamscan not installed (apt-get install clamav)");
    None
}

fn run(mut cmd: Command, dir: &Path, args: &[&str], stdin: &[u8]) -> Output {
    use std::io::Write;
    let mut child = cmd
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().expect("wait")
}

/// The result lines (summary block dropped).
fn lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .take_while(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

fn summary(out: &Output, key: &str) -> Option<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_owned()))
}

/// A tree with every kind of entry the walker must treat like clamscan.
fn tree() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::write(root.join("x.ndb"), format!("{SIG}\n")).unwrap();
    let top = root.join("top");
    std::fs::create_dir_all(top.join("sub/deep")).unwrap();
    std::fs::create_dir_all(root.join("other")).unwrap();
    std::fs::write(top.join("a.bin"), INFECTED).unwrap();
    std::fs::write(top.join("b.txt"), b"clean text file\n").unwrap();
    std::fs::write(top.join("empty"), b"").unwrap();
    std::fs::write(top.join("tiny"), b"\xe1\xe2").unwrap();
    std::fs::write(top.join("sub/c.bin"), INFECTED).unwrap();
    std::fs::write(top.join("sub/deep/d.txt"), b"another clean one\n").unwrap();
    // A file name that is not UTF-8: printed as raw bytes, as clamscan does.
    let raw_name = std::ffi::OsStr::from_bytes(b"sub/odd\xff name.bin");
    std::fs::write(top.join(raw_name), INFECTED).unwrap();
    std::fs::write(root.join("other/e.bin"), INFECTED).unwrap();
    symlink("../other/e.bin", top.join("flink")).unwrap();
    symlink("../other", top.join("dlink")).unwrap();
    symlink("/nonexistent/target", top.join("dangling")).unwrap();
    let fifo = std::ffi::CString::new(top.join("fifo").as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    tmp
}

/// Every case: the same arguments to both scanners, the same lines in the same order
/// and the same exit status.
#[test]
fn walking_and_output_match_clamscan() {
    let Some(_) = clamscan() else { return };
    let tmp = tree();
    let abs = tmp.path().join("top/sub").display().to_string();
    let exclude_abs = format!("--exclude=^{abs}/c");
    let cases: Vec<Vec<&str>> = vec![
        vec!["-r", "top"],
        vec!["top"],
        vec!["-r", "-i", "top"],
        vec![
            "-r",
            "--follow-dir-symlinks=2",
            "--follow-file-symlinks=2",
            "top",
        ],
        vec!["-r", "--exclude=\\.bin$", "top"],
        vec!["-r", &exclude_abs, "top"],
        vec!["-r", "--exclude-dir=deep", "top"],
        vec!["-r", "--exclude-dir=^top$", "top"],
        vec![
            "top/a.bin",
            "top/b.txt",
            "top/flink",
            "top/dlink",
            "top/dangling",
        ],
        vec!["top/fifo", "top/a.bin"],
        vec!["nonexistent", "top/b.txt"],
        vec!["nonexistent"],
        vec!["--max-filesize=10", "top/a.bin"],
        vec!["-"],
    ];
    for case in cases {
        let mut args = vec!["--no-summary", "-d", "x.ndb"];
        args.extend(&case);
        let stdin = INFECTED;
        let want = run(clamscan().unwrap(), tmp.path(), &args, stdin);
        let got = run(moat(), tmp.path(), &args, stdin);
        assert_eq!(lines(&got), lines(&want), "stdout for {case:?}");
        assert_eq!(got.stdout, want.stdout, "stdout bytes for {case:?}");
        assert_eq!(
            got.status.code(),
            want.status.code(),
            "exit status for {case:?}"
        );
        let err = |o: &Output| String::from_utf8_lossy(&o.stderr).contains("Can't access file");
        assert_eq!(err(&got), err(&want), "stderr for {case:?}");
    }
}

/// `-f/--file-list`: clamscan's reading of the list (paths relative to the current directory,
/// not to the list; blank lines, CRLF ends, spaces kept, no final newline, directories with
/// and without -r, a listed missing file), PATH arguments ignored with a warning, and a list
/// that cannot be opened: the same stdout lines, summary counts, stderr and exit status.
#[test]
fn file_list_matches_clamscan() {
    let Some(_) = clamscan() else { return };
    let tmp = tree();
    let lists = tmp.path().join("lists");
    std::fs::create_dir(&lists).unwrap();
    let abs = tmp.path().join("top/b.txt").display().to_string();
    let plain = format!("top/a.bin\n\ntop/sub\n{abs}\nnonexistent\n top/b.txt\ntop/b.txt \n");
    for (name, content) in [
        ("plain", plain.as_str()),
        ("crlf", "top/a.bin\r\n\r\ntop/b.txt\r\r\n"),
        ("nonl", "top/sub/c.bin"),
        ("empty", ""),
    ] {
        std::fs::write(lists.join(name), content).unwrap();
    }
    let cases: Vec<Vec<&str>> = vec![
        vec!["-f", "lists/plain"],
        vec!["-r", "-f", "lists/plain"],
        vec!["--file-list=lists/crlf"],
        vec!["-f", "lists/nonl"],
        vec!["-f", "lists/empty"],
        vec!["-f", "lists/nonl", "top/b.txt", "top"],
        vec!["-f", "lists/missing"],
        vec!["--file-list", "lists/missing", "top"],
    ];
    for case in cases {
        let mut args = vec!["-d", "x.ndb"];
        args.extend(&case);
        let want = run(clamscan().unwrap(), tmp.path(), &args, b"");
        let got = run(moat(), tmp.path(), &args, b"");
        assert_eq!(lines(&got), lines(&want), "stdout for {case:?}");
        for key in ["Scanned directories:", "Scanned files:", "Infected files:"] {
            assert_eq!(
                summary(&got, key),
                summary(&want, key),
                "{key} for {case:?}"
            );
        }
        assert_eq!(
            String::from_utf8_lossy(&got.stderr),
            String::from_utf8_lossy(&want.stderr),
            "stderr for {case:?}"
        );
        assert_eq!(
            got.status.code(),
            want.status.code(),
            "exit status for {case:?}"
        );
    }
}

#[test]
fn summary_counts_match_clamscan() {
    let Some(_) = clamscan() else { return };
    let tmp = tree();
    let args = ["-d", "x.ndb", "-r", "top"];
    let want = run(clamscan().unwrap(), tmp.path(), &args, b"");
    let got = run(moat(), tmp.path(), &args, b"");
    let banner = "----------- SCAN SUMMARY -----------";
    assert!(String::from_utf8_lossy(&got.stdout).contains(banner));
    for key in [
        "Known viruses:",
        "Scanned directories:",
        "Scanned files:",
        "Infected files:",
    ] {
        assert_eq!(summary(&got, key), summary(&want, key), "{key}");
    }
    for key in [
        "Data scanned:",
        "Data read:",
        "Time:",
        "Start Date:",
        "End Date:",
    ] {
        assert!(summary(&got, key).is_some(), "moat's summary lacks {key}");
    }
}

#[test]
fn builtin_database_detects_genuine_eicar() {
    // The genuine file, checked against its well-known MD5 inside moat_testkit::eicar():
    // never the built-in signature's own constant.
    let eicar = moat_testkit::eicar();
    let engine = moat_engine::Engine::new(moat_sigs::builtin::database());
    assert_eq!(
        engine.scan_bytes(&eicar),
        moat_engine::Verdict::Infected("Eicar-Test-Signature")
    );
    let mut trailing = eicar.clone();
    trailing.extend_from_slice(b"\r\n");
    assert_eq!(
        engine.scan_bytes(&trailing),
        moat_engine::Verdict::Infected("Eicar-Test-Signature")
    );
    let clam_exe = Path::new("/usr/share/clamav-testfiles/clam.exe");
    if clam_exe.exists() {
        let data = std::fs::read(clam_exe).unwrap();
        assert_eq!(
            engine.scan_bytes(&data),
            moat_engine::Verdict::Infected("ClamAV-Test-File")
        );
    }
}

/// `moat scan FILE` as a new user runs it, with no database installed: the built-in set
/// finds the genuine EICAR file.
#[test]
fn scan_without_database_finds_genuine_eicar() {
    let default_dir = Path::new("/var/lib/clamav");
    let installed = std::fs::read_dir(default_dir).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.contains('.') && !n.starts_with('.') && n != "freshclam.dat"
        })
    });
    if installed {
        println!("skipped: /var/lib/clamav holds databases, so the built-in set is not used");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("eicar.com"), moat_testkit::eicar()).unwrap();
    let out = moat()
        .current_dir(tmp.path())
        .args(["scan", "--no-summary", "eicar.com"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout, "eicar.com: Eicar-Test-Signature FOUND\n");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn malformed_database_names_file_and_line_and_scans_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("bad.ndb"),
        format!("{SIG}\nBroken:0:*:aabbccdd\nOdd:0:*:aabbc\n"),
    )
    .unwrap();
    std::fs::write(tmp.path().join("f"), INFECTED).unwrap();
    let out = run(moat(), tmp.path(), &["-d", "bad.ndb", "f"], b"");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.ndb:3:"), "stderr: {stderr}");
    assert!(
        stderr.contains("odd number of hex digits"),
        "stderr: {stderr}"
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        lines(&out).is_empty(),
        "nothing may be scanned: {:?}",
        lines(&out)
    );
    assert_eq!(summary(&out, "Scanned files:").as_deref(), Some("0"));
}

#[test]
fn unsupported_formats_are_reported_once_with_counts() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("a.ndb"), format!("{SIG}\n")).unwrap();
    std::fs::write(
        // File type magic of the body kind (type 1) is not used yet.
        tmp.path().join("b.ftm"),
        "1:*:3c68746d6c3e:H1:CL_TYPE_ANY:CL_TYPE_HTML\n1:*:3c626f64793e:H2:CL_TYPE_ANY:CL_TYPE_HTML\n",
    )
    .unwrap();
    std::fs::write(tmp.path().join("f"), INFECTED).unwrap();
    let out = run(moat(), tmp.path(), &["--no-summary", "-d", ".", "f"], b"");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let reports: Vec<&str> = stderr.lines().filter(|l| l.contains("b.ftm")).collect();
    assert_eq!(reports.len(), 1, "stderr: {stderr}");
    assert!(reports[0].contains("2 signature(s)"), "{}", reports[0]);
    assert_eq!(lines(&out), vec!["f: Test.Cli.UNOFFICIAL FOUND"]);
}

/// When several signatures match one file, the name reported is the one clamscan
/// reports (its Boyer-Moore matcher first, then trie order, depth and load order).
#[test]
fn report_order_matches_clamscan() {
    let Some(_) = clamscan() else { return };
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("X"),
        b"0123456789\xaa\xbb\xcc\xdd0123456789\xee\xff\x11\x22ABCDEFGHIJ",
    )
    .unwrap();
    let pairs = [
        ("??aabbcc", "aabbcc??"),
        ("????aabb", "aabb??dd"),
        ("??bbccdd", "aabbcc??"),
        ("(30|39)aabbcc", "aabbcc??"),
        ("aabb??dd", "aabb??dd"),
        ("aabbcc??", "aabb??dd??"),
        ("aabb??dd", "aabbcc??"),
        ("aabbccdd??", "bbcc??"),
        ("bbccdd??", "ccdd??"),
        ("aabb*eeff", "ccdd??"),
        ("aabb??dd", "eeff1122"),
        ("eeff1122", "aabbccdd"),
        ("aabbccdd", "aabbccdd"),
        ("3031(32|33)33", "30313233"),
        ("aabb{2-30}eeff", "aabb*eeff"),
        ("aabb*eeff", "ccdd*eeff"),
        ("aabb*eeff", "eeff??22"),
        ("aabb*eeff??22", "aabb*eeff"),
    ];
    for (a, b) in pairs {
        for (first, second) in [(a, b), (b, a)] {
            let db = format!("N1:0:*:{first}\nN2:0:*:{second}\n");
            std::fs::write(tmp.path().join("m.ndb"), db).unwrap();
            let args = ["--no-summary", "-d", "m.ndb", "X"];
            let want = run(clamscan().unwrap(), tmp.path(), &args, b"");
            let got = run(moat(), tmp.path(), &args, b"");
            assert_eq!(lines(&got), lines(&want), "N1 = {first}, N2 = {second}");
        }
    }
}

/// A small deterministic generator (xorshift) for the normalization test.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// ClamAV also matches target-0 and target-7 signatures against a normalized copy of
/// most files (lower-cased, control and high bytes dropped, whitespace folded); which
/// files get it depends on their first 1024 bytes. Generated text with random case,
/// whitespace, control bytes, NUL pairs, byte-order marks and magic headers, against
/// lowercase signatures of both targets: moat must report exactly what clamscan does.
#[test]
fn normalized_text_matches_clamscan() {
    let Some(_) = clamscan() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let words: &[&[u8]] = &[
        b"eval(",
        b"document.write",
        b"unescape",
        b"shell",
        b"payload",
        b"the",
        b"and",
        b"function",
        b"var",
        b"x=1;",
        b"wscript.shell",
        b"cmd.exe",
    ];
    let ndb = "\
T0.Eval:0:*:6576616c28
T0.DocWrite:0:*:646f63756d656e742e7772697465
T0.Wild:0:*:7773637269707420??68656c6c
T0.Spaced:0:*:766172207820
T7.Unescape:7:*:756e657363617065
T7.CmdExe:7:*:636d642e657865
T7.Start:7:0:7368656c6c
T7.End:7:EOF-8:7061796c6f6164
T0.EndRaw:0:EOF-8:7061796c6f6164
";
    std::fs::write(tmp.path().join("n.ndb"), ndb).unwrap();
    let dir = tmp.path().join("files");
    std::fs::create_dir(&dir).unwrap();
    let heads: &[&[u8]] = &[
        b"",
        b"",
        b"",
        b"MZ",
        b"%PDF-1.4\n",
        b"\xff\xfe",
        b"\xfe\xff",
        b"PK\x03\x04",
    ];
    let mut rng = Rng(0x6d6f_6174_6e6f_726d);
    for i in 0..400 {
        let mut data = heads[rng.below(heads.len())].to_vec();
        for _ in 0..rng.below(60) + 3 {
            let mut word = words[rng.below(words.len())].to_vec();
            if rng.below(3) == 0 {
                word.make_ascii_uppercase();
            }
            // Noise inside a word: only the normalized copy sees through it.
            if rng.below(6) == 0 && word.len() > 2 {
                let at = rng.below(word.len() - 1) + 1;
                let junk: &[u8] = [&b"\x01"[..], b"\x80", b"\xc3\xa9", b"\x1b"][rng.below(4)];
                word.splice(at..at, junk.iter().copied());
            }
            data.extend_from_slice(&word);
            let gap: &[u8] = [&b" "[..], b"  ", b"\t", b"\r\n", b"\n\n \t", b""][rng.below(6)];
            data.extend_from_slice(gap);
        }
        if rng.below(5) == 0 {
            // A NUL pair (binary to ClamAV at an even offset >= 2 within 1024 bytes).
            let at = rng.below(data.len().min(1100)).max(1);
            data.splice(at..at, [0u8, 0u8]);
        }
        if rng.below(4) == 0 {
            data.extend_from_slice(b"PAYLOAD xx  ");
        }
        std::fs::write(dir.join(format!("f{i:03}")), data).unwrap();
    }
    if std::env::var("MOAT_KEEP").is_ok() {
        Command::new("cp")
            .args(["-r", tmp.path().to_str().unwrap(), "/tmp/ntkeep"])
            .status()
            .unwrap();
    }
    let args = ["--no-summary", "-d", "n.ndb", "-r", "files"];
    let want = run(clamscan().unwrap(), tmp.path(), &args, b"");
    let got = run(moat(), tmp.path(), &args, b"");
    let sorted = |o: &Output| {
        let mut l = lines(o);
        l.sort();
        l
    };
    let (want, got) = (sorted(&want), sorted(&got));
    let found = want.iter().filter(|l| l.ends_with("FOUND")).count();
    assert!(found > 100, "the generator must make detections: {found}");
    let differ: Vec<_> = want
        .iter()
        .zip(&got)
        .filter(|(w, g)| w != g)
        .take(20)
        .collect();
    assert!(differ.is_empty(), "clamscan vs moat: {differ:#?}");
    assert_eq!(want.len(), got.len());
}

/// `-l FILE`: a log that cannot be opened stops the scan before it starts; one that
/// cannot be written (a full disk) is reported once and makes the exit status 2; so
/// does a report that cannot be written to standard output.
#[test]
fn log_file_failures_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("x.ndb"), format!("{SIG}\n")).unwrap();
    std::fs::write(tmp.path().join("clean"), b"nothing to see here\n").unwrap();
    let out = run(
        moat(),
        tmp.path(),
        &["-l", "missing/dir/log", "-d", "x.ndb", "clean"],
        b"",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(lines(&out).is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("can't open log file missing/dir/log"));

    let out = run(
        moat(),
        tmp.path(),
        &["-l", "/dev/full", "-d", "x.ndb", "clean"],
        b"",
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(lines(&out), vec!["clean: OK"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("can't write log file /dev/full").count(),
        1,
        "{stderr}"
    );

    let out = run(
        moat(),
        tmp.path(),
        &["-l", "scan.log", "-d", "x.ndb", "clean"],
        b"",
    );
    assert_eq!(out.status.code(), Some(0));
    let log = std::fs::read_to_string(tmp.path().join("scan.log")).unwrap();
    assert!(log.starts_with("clean: OK\n") && log.contains("----------- SCAN SUMMARY"));
}

/// A `.cud` built by ClamAV's own `sigtool --unsigned` (gzip-compressed tar, header with
/// the body's MD5, `.info` with sizes and SHA-256s) loads in moat and gives the same
/// results and signature count as clamscan with it. (clamscan refuses an unsigned `.cvd`
/// and a `.cld` without a signed `.info`, so the oracle can only check a `.cud`.)
#[test]
fn sigtool_built_cud_matches_clamscan() {
    let Some(_) = clamscan() else { return };
    let sigtool_ok = Command::new("sigtool")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !sigtool_ok {
        println!("skipped: sigtool not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let build = tmp.path().join("build");
    std::fs::create_dir(&build).unwrap();
    let hash_only = b"a file detected by its MD5 only\n";
    let digest = {
        use md5::Digest;
        md5::Md5::digest(hash_only)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    std::fs::write(build.join("COPYING"), "test license\n").unwrap();
    std::fs::write(
        build.join("x.hdb"),
        format!("{digest}:{}:Moat.Cud.Hash\n", hash_only.len()),
    )
    .unwrap();
    std::fs::write(
        build.join("x.ndb"),
        format!("{}\n", SIG.replace("Test.Cli", "Moat.Cud.Body")),
    )
    .unwrap();
    let out = run(
        Command::new("sigtool"),
        &build,
        &["--build=x.cud", "--unsigned"],
        b"moat\nmoat\n",
    );
    let cud = build.join("x.cud");
    assert!(cud.is_file(), "sigtool failed: {out:?}");
    std::fs::write(tmp.path().join("hash"), hash_only).unwrap();
    std::fs::write(tmp.path().join("body"), INFECTED).unwrap();
    std::fs::write(tmp.path().join("clean"), b"nothing to see\n").unwrap();
    let args = ["-d", "build/x.cud", "hash", "body", "clean"];
    let ours = run(moat(), tmp.path(), &args, b"");
    let theirs = run(clamscan().unwrap(), tmp.path(), &args, b"");
    assert_eq!(
        lines(&ours),
        vec![
            "hash: Moat.Cud.Hash.UNOFFICIAL FOUND",
            "body: Moat.Cud.Body.UNOFFICIAL FOUND",
            "clean: OK"
        ],
        "stderr: {}",
        String::from_utf8_lossy(&ours.stderr)
    );
    assert_eq!(lines(&ours), lines(&theirs));
    assert_eq!(
        summary(&ours, "Known viruses:"),
        summary(&theirs, "Known viruses:")
    );
    assert_eq!(ours.status.code(), theirs.status.code());
}

/// A panic of the engine on one file (injected: `MOAT_TEST_FAULT=scan-panic` on names
/// ending `.moat-panic`) is that file's ERROR line; the files before and after it are still
/// scanned and reported.
#[test]
fn engine_panic_on_one_file_is_an_error_line_not_an_abort() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("db.ndb"), format!("{SIG}\n")).unwrap();
    std::fs::write(dir.join("a-infected"), INFECTED).unwrap();
    std::fs::write(dir.join("b.moat-panic"), "any content\n").unwrap();
    std::fs::write(dir.join("c-infected"), INFECTED).unwrap();
    let out = moat()
        .current_dir(dir)
        .env("MOAT_TEST_FAULT", "scan-panic")
        .args([
            "--threads",
            "1",
            "-d",
            "db.ndb",
            "a-infected",
            "b.moat-panic",
            "c-infected",
        ])
        .output()
        .unwrap();
    assert_eq!(
        lines(&out),
        [
            "a-infected: Test.Cli.UNOFFICIAL FOUND",
            "b.moat-panic: internal error in the scanning engine ERROR",
            "c-infected: Test.Cli.UNOFFICIAL FOUND",
        ],
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(summary(&out, "Infected files:").as_deref(), Some("2"));
    // clamscan's status when a file is found and another one errs: 1.
    assert_eq!(out.status.code(), Some(1));
}
