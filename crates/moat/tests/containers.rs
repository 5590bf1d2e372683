//! Differential test for containers: `moat scan` against the real `clamscan` on
//! ClamAV's own test files (Debian's clamav-testfiles), every format moat opens,
//! with a hash database of clam.exe (so a file is found only if the member is
//! extracted byte for byte), then with container limits.
//!
//! Skipped (with the reason printed) when clamscan or the test files are missing,
//! unless `MOAT_REQUIRE_ORACLE=1`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use md5::{Digest, Md5};

use moat_testkit::testfiles::{oracle_ready, DIR, SUPPORTED, UNSUPPORTED};

/// A body-signature database from clam.exe's bytes: its code at 0x40 (as an `.ndb`
/// line of target 0) and, as a logical signature of target 1, that code and the
/// `CLAMessageBoxA` import name together.
fn body_database(dir: &Path) -> PathBuf {
    let exe = std::fs::read(Path::new(DIR).join("clam.exe")).unwrap();
    let hex = |b: &[u8]| b.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let code = hex(&exe[0x40..0x60]);
    let import = hex(b"CLAMessageBoxA");
    std::fs::write(dir.join("clam.ndb"), format!("ClamExe.Body:0:*:{code}\n")).unwrap();
    std::fs::write(
        dir.join("clam.ldb"),
        format!("ClamExe.Logical;Engine:51-255,Target:1;0&1;{code};{import}\n"),
    )
    .unwrap();
    dir.to_path_buf()
}

/// A database with clam.exe's MD5, as `sigtool --md5` writes it.
fn database(dir: &Path) -> PathBuf {
    let exe = std::fs::read(Path::new(DIR).join("clam.exe")).unwrap();
    let digest: String = Md5::digest(&exe)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let path = dir.join("clam.hdb");
    std::fs::write(&path, format!("{digest}:{}:clam.exe\n", exe.len())).unwrap();
    path
}

struct Run {
    code: Option<i32>,
    stdout: String,
}

fn run(mut cmd: Command) -> Run {
    let out = cmd.output().expect("spawn scanner");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
    }
}

fn scan(program: &str, db: &Path, extra: &[&str], files: &[PathBuf]) -> Run {
    let mut cmd = if program == "moat" {
        let mut c = Command::new(env!("CARGO_BIN_EXE_moat"));
        c.arg("scan");
        c
    } else {
        Command::new(program)
    };
    cmd.arg("-d").arg(db).args(extra).args(files);
    run(cmd)
}

/// `PATH: RESULT` lines, and the summary's file counts.
fn results(out: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for line in out.lines() {
        let keep = ["Scanned files:", "Infected files:"];
        if keep.iter().any(|k| line.starts_with(k)) {
            m.insert(line.to_owned(), String::new());
        } else if let Some((path, result)) = line.split_once(": ") {
            if path.starts_with('/') {
                m.insert(path.to_owned(), result.to_owned());
            }
        }
    }
    m
}

fn compare(db: &Path, extra: &[&str], files: &[PathBuf]) {
    let theirs = scan("clamscan", db, extra, files);
    let ours = scan("moat", db, extra, files);
    let (ours_lines, theirs_lines) = (results(&ours.stdout), results(&theirs.stdout));
    let differing: Vec<String> = theirs_lines
        .iter()
        .filter(|(k, v)| ours_lines.get(*k) != Some(v))
        .map(|(k, v)| format!("{k}: clamscan {v:?}, moat {:?}", ours_lines.get(k)))
        .collect();
    assert!(
        differing.is_empty() && ours_lines.len() == theirs_lines.len(),
        "flags {extra:?}:\n{}\n--- moat\n{}",
        differing.join("\n"),
        ours.stdout
    );
    assert_eq!(ours.code, theirs.code, "exit status, flags {extra:?}");
}

#[test]
fn containers_against_clamscan() {
    if !oracle_ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let db = database(tmp.path());
    let files: Vec<PathBuf> = SUPPORTED.iter().map(|f| Path::new(DIR).join(f)).collect();
    compare(&db, &[], &files);
    // Every one of them is found: the comparison is not between two misses.
    let ours = scan("moat", &db, &["--infected", "--no-summary"], &files);
    assert_eq!(ours.stdout.lines().count(), files.len(), "{}", ours.stdout);
    // Limits: depth (clam_cache_emax.tgz nests tgz in tgz), member count, bytes.
    for flags in [
        &["--max-recursion=2"][..],
        &["--max-recursion=2", "--alert-exceeds-max"],
        &["--max-recursion=4"],
        &["--max-recursion=8", "--alert-exceeds-max"],
        &["--max-files=1", "--alert-exceeds-max"],
        &["--max-files=2"],
        &["--max-scansize=2000", "--alert-exceeds-max"],
        &["--max-filesize=300", "--alert-exceeds-max"],
        &["--scan-archive=no"],
        &["--scan-mail=no"],
        &["--scan-ole2=no"],
        &["--scan-pdf=no"],
        &["--scan-html=no"],
    ] {
        compare(&db, flags, &files);
    }
}

/// Every file of clamav-testfiles is in SUPPORTED or UNSUPPORTED: a new test file (a
/// new Debian release) is noticed.
#[test]
fn every_test_file_is_accounted_for() {
    if !oracle_ready() {
        return;
    }
    let mut present: Vec<String> = std::fs::read_dir(DIR)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    present.sort();
    let mut listed: Vec<String> = SUPPORTED
        .iter()
        .chain(UNSUPPORTED)
        .map(|s| s.to_string())
        .collect();
    listed.sort();
    assert_eq!(present, listed);
}

/// With a body signature (and a logical signature) of clam.exe instead of its hash:
/// the same verdicts as clamscan on every supported test file, each one found; on
/// the unsupported ones clamscan finds clam.exe (it unpacks them) and moat finds
/// nothing clamscan does not.
#[test]
fn body_signatures_against_clamscan() {
    if !oracle_ready() {
        return;
    }
    for ext in ["ndb", "ldb"] {
        let tmp = tempfile::tempdir().unwrap();
        let db = body_database(tmp.path());
        std::fs::remove_file(db.join(if ext == "ndb" { "clam.ldb" } else { "clam.ndb" })).unwrap();
        let files: Vec<PathBuf> = SUPPORTED.iter().map(|f| Path::new(DIR).join(f)).collect();
        compare(&db, &[], &files);
        let ours = scan("moat", &db, &["--infected", "--no-summary"], &files);
        assert_eq!(
            ours.stdout.lines().count(),
            files.len(),
            "{ext}: {}",
            ours.stdout
        );
        let others: Vec<PathBuf> = UNSUPPORTED.iter().map(|f| Path::new(DIR).join(f)).collect();
        let theirs = scan("clamscan", &db, &["--infected", "--no-summary"], &others);
        let ours = scan("moat", &db, &["--infected", "--no-summary"], &others);
        // moat may find clam.exe's body in some of them without opening them (its
        // bytes lie in the file as they are); whatever it finds, clamscan finds too.
        for line in ours.stdout.lines() {
            assert!(theirs.stdout.contains(line), "{ext}: moat only: {line}");
        }
        assert!(
            theirs.stdout.lines().count() >= others.len() / 2,
            "{ext}: clamscan found too few: {}",
            theirs.stdout
        );
    }
}

#[test]
fn nested_and_limited_zips_against_clamscan() {
    if !oracle_ready() {
        return;
    }
    let zip_available = Command::new("zip")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    if !zip_available {
        println!("skipped: no zip command");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let db = database(tmp.path());
    let dir = tmp.path();
    std::fs::copy(Path::new(DIR).join("clam.exe"), dir.join("clam.exe")).unwrap();
    std::fs::write(dir.join("z1.bin"), vec![0u8; 1_000_000]).unwrap();
    std::fs::write(dir.join("z2.bin"), vec![0u8; 1_000_000]).unwrap();
    let zip = |out: &str, members: &[&str]| {
        let ok = Command::new("zip")
            .current_dir(dir)
            .arg("-q")
            .arg(out)
            .args(members)
            .status()
            .unwrap()
            .success();
        assert!(ok, "zip {out}");
        dir.join(out)
    };
    let mut files = vec![zip("last.zip", &["z1.bin", "z2.bin", "clam.exe"])];
    files.push(zip("first.zip", &["clam.exe", "z1.bin", "z2.bin"]));
    let mut inner = "clam.exe".to_owned();
    for level in 1..=5 {
        let name = format!("l{level}.zip");
        files.push(zip(&name, &[&inner]));
        inner = name;
    }
    compare(&db, &[], &files);
    // "Data scanned": the clean members of infected archives only (1.91 MB here).
    let data = |out: &str| {
        out.lines()
            .find(|l| l.starts_with("Data scanned:"))
            .map(str::to_owned)
    };
    let (ours, theirs) = (
        scan("moat", &db, &[], &files),
        scan("clamscan", &db, &[], &files),
    );
    assert_eq!(data(&ours.stdout), data(&theirs.stdout));
    for flags in [
        &["--max-files=3"][..],
        &["--max-files=4", "--alert-exceeds-max"],
        &["--max-scansize=1500000", "--alert-exceeds-max"],
        &["--max-scansize=2000600"],
        &["--max-scansize=2010000"],
        &["--max-filesize=900000"],
        &["--max-recursion=3", "--alert-exceeds-max"],
        &["--max-recursion=5"],
        &["--max-recursion=0"],
        &["--max-files=0", "--alert-exceeds-max=no"],
    ] {
        compare(&db, flags, &files);
    }
}

/// A member over MaxFileSize or past MaxScanSize, with a body signature in its first
/// bytes: clamscan scans the first MaxFileSize bytes of a zip member and nothing of a
/// gzip, bzip2 or xz one (measured), and a member past MaxScanSize not at all.
#[test]
fn member_size_limits_against_clamscan() {
    use std::io::Write;
    if !oracle_ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let exe = std::fs::read(Path::new(DIR).join("clam.exe")).unwrap();
    let hex: String = exe[184..200].iter().map(|b| format!("{b:02x}")).collect();
    let db = dir.join("body.ndb");
    std::fs::write(&db, format!("Test.Body:0:*:{hex}\n")).unwrap();
    let mut data = exe.clone();
    data.resize(2_000_544, 0);
    let mut files = Vec::new();
    let mut put = |name: &str, bytes: Vec<u8>| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        files.push(path);
    };
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&data).unwrap();
    put("mid.gz", gz.finish().unwrap());
    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
    bz.write_all(&data).unwrap();
    put("mid.bz2", bz.finish().unwrap());
    let mut xz =
        lzma_rust2::XzWriter::new(Vec::new(), lzma_rust2::XzOptions::with_preset(6)).unwrap();
    xz.write_all(&data).unwrap();
    put("mid.xz", xz.finish().unwrap());
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    z.start_file("mid.bin", zip::write::SimpleFileOptions::default())
        .unwrap();
    z.write_all(&data).unwrap();
    put("mid.zip", z.finish().unwrap().into_inner());
    // Not a comparison of two misses: found whole, and with the limit only in the zip.
    let found = |flags: &[&str]| {
        let mut args = vec!["--infected", "--no-summary"];
        args.extend_from_slice(flags);
        scan("moat", &db, &args, &files).stdout.lines().count()
    };
    assert_eq!(found(&[]), 4);
    assert_eq!(found(&["--max-filesize=1M"]), 1);
    for flags in [
        &[][..],
        &["--max-filesize=1M"],
        &["--max-scansize=1M"],
        &["--max-scansize=1M", "--max-filesize=500K"],
        &["--max-filesize=1M", "--alert-exceeds-max"],
    ] {
        compare(&db, flags, &files);
    }
}

/// A zip written with the zip crate: a directory entry, a deflated text member and a
/// stored binary one, so that names, compressed and real sizes and positions differ.
fn metadata_zip(path: &Path) {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let deflated = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let stored = deflated.compression_method(zip::CompressionMethod::Stored);
    zip.add_directory("docs/", stored).unwrap();
    zip.start_file("docs/Invoice_2026.pdf.exe", deflated)
        .unwrap();
    zip.write_all(&b"invoice text, compressible ".repeat(100))
        .unwrap();
    zip.start_file("payload.bin", stored).unwrap();
    let noise: Vec<u8> = (0..3000u32).map(|i| (i * 7919 % 251) as u8).collect();
    zip.write_all(&noise).unwrap();
    zip.finish().unwrap();
}

/// `.cdb` lines (container metadata) that match a member of the generated zip and
/// tar, or of clamav-testfiles' 7z, cab, ARJ and cpio, each beside near misses one
/// field off: every line alone, `moat scan` and clamscan give the same verdicts.
#[test]
fn container_metadata_against_clamscan() {
    if !oracle_ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let zip = dir.join("meta.zip");
    metadata_zip(&zip);
    std::fs::write(dir.join("a.txt"), b"hello world this is a file\n").unwrap();
    std::fs::write(dir.join("b.bin"), vec![7u8; 3000]).unwrap();
    let tar_ok = Command::new("tar")
        .current_dir(dir)
        .args(["cf", "meta.tar", "a.txt", "b.bin"])
        .status()
        .is_ok_and(|s| s.success());
    let mut files = vec![zip.clone()];
    if tar_ok {
        files.push(dir.join("meta.tar"));
    } else {
        println!("note: no tar command, tar lines not compared");
    }
    for f in [
        "clam.7z",
        "clam.cab",
        "clam.arj",
        "clam.bin-le.cpio",
        "clam.newc.cpio",
    ] {
        files.push(Path::new(DIR).join(f));
    }
    let zip_size = std::fs::metadata(&zip).unwrap().len();
    let lines = [
        // zip: name regex, anchored or not, case, a `(?i)` prefix.
        "Z.Name:CL_TYPE_ZIP:*:Invoice_[0-9]{4}\\.pdf\\.exe$:*:*:*:*:*:*".to_owned(),
        "Z.NameCase:CL_TYPE_ZIP:*:invoice_[0-9]{4}\\.pdf\\.exe$:*:*:*:*:*:*".to_owned(),
        "Z.NameI:CL_TYPE_ZIP:*:(?i)invoice_[0-9]{4}\\.pdf\\.exe$:*:*:*:*:*:*".to_owned(),
        "Z.Anchored:CL_TYPE_ZIP:*:^Invoice:*:*:*:*:*:*".to_owned(),
        "Z.Any:*:*:^payload\\.bin$:*:*:*:*:*:*".to_owned(),
        // zip: real and stored sizes, exact and ranges (0 as an open bound).
        "Z.Real:CL_TYPE_ZIP:*:*:*:2700:*:*:*:*".to_owned(),
        "Z.RealMiss:CL_TYPE_ZIP:*:*:*:2701:*:*:*:*".to_owned(),
        "Z.Stored:CL_TYPE_ZIP:*:*:3000:3000:*:*:*:*".to_owned(),
        "Z.StoredMiss:CL_TYPE_ZIP:*:*:2700:2700:*:*:*:*".to_owned(),
        "Z.Range:CL_TYPE_ZIP:*:*:*:2990-3010:*:*:*:*".to_owned(),
        "Z.OpenLow:CL_TYPE_ZIP:*:*:*:0-20:*:*:*:*".to_owned(),
        "Z.OpenHigh:CL_TYPE_ZIP:*:*:*:3001-0:*:*:*:*".to_owned(),
        // zip: container size, position (the directory entry counts), encryption.
        format!("Z.CSize:CL_TYPE_ZIP:{zip_size}:payload:*:*:*:*:*:*"),
        format!(
            "Z.CSizeMiss:CL_TYPE_ZIP:{}:payload:*:*:*:*:*:*",
            zip_size + 1
        ),
        "Z.Pos2:CL_TYPE_ZIP:*:*:*:*:*:2:*:*".to_owned(),
        "Z.Pos3:CL_TYPE_ZIP:*:*:*:*:*:3:*:*".to_owned(),
        "Z.Pos4:CL_TYPE_ZIP:*:*:*:*:*:4:*:*".to_owned(),
        "Z.Plain:CL_TYPE_ZIP:*:payload:*:*:0:*:*:*".to_owned(),
        "Z.Encrypted:CL_TYPE_ZIP:*:payload:*:*:1:*:*:*".to_owned(),
        "Z.WrongType:CL_TYPE_7Z:*:payload:*:*:*:*:*:*".to_owned(),
        "Z.Flevel:CL_TYPE_ZIP:*:payload:*:*:*:*:*:*:300".to_owned(),
        // tar: sizes in the container are the real ones, positions from 1.
        "T.Pos:CL_TYPE_POSIX_TAR:*:^b\\.bin$:3000:3000:*:2:*:*".to_owned(),
        "T.PosMiss:CL_TYPE_POSIX_TAR:*:^b\\.bin$:3000:3000:*:1:*:*".to_owned(),
        "T.Size:CL_TYPE_POSIX_TAR:10240:a\\.txt:27:27:*:*:*:*".to_owned(),
        // 7z and cab: size in the container 0, positions from 0; ARJ and cpio from 1.
        "S.Exe:CL_TYPE_7Z:*:^clam\\.exe$:0:544:*:0:*:*".to_owned(),
        "S.Miss:CL_TYPE_7Z:*:^clam\\.exe$:544:544:*:0:*:*".to_owned(),
        "C.Exe:CL_TYPE_MSCAB:*:clam:0:544:*:0:*:*".to_owned(),
        "C.Miss:CL_TYPE_MSCAB:*:clam:*:544:*:1:*:*".to_owned(),
        "A.Exe:CL_TYPE_ARJ:*:clam:*:544:*:1:*:*".to_owned(),
        "P.Old:CL_TYPE_CPIO_OLD:*:clam:544:544:*:1:*:*".to_owned(),
        "P.New:CL_TYPE_CPIO_NEWC:1024:clam:544:544:0:1:*:*".to_owned(),
        "P.Miss:CL_TYPE_CPIO_NEWC:*:clam:544:544:*:0:*:*".to_owned(),
    ];
    let db = dir.join("meta.cdb");
    let mut found = 0;
    for line in &lines {
        std::fs::write(&db, format!("{line}\n")).unwrap();
        compare(&db, &[], &files);
        let ours = scan("moat", &db, &[], &files);
        found += ours.stdout.matches(" FOUND").count();
    }
    // Not a test that passes on nothing: the matching lines must detect.
    assert!(found >= 15, "only {found} detections");
}
