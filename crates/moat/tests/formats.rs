//! Differential test of file typing and executable layout: `moat scan` against the real
//! `clamscan` on files of every type ClamAV gives a target type, built at test time:
//! - `.ndb` signatures of each target type (0-12 but 8) on matching and non-matching files;
//! - `EP+n`, `EP-n`, `Sx+n`, `SEx`, `SL+n` offsets (with `,maxshift`) on clam.exe (from
//!   ClamAV's test files, when installed), a small PE built here, and an ELF built with gcc
//!   (or /bin/true);
//! - `.mdb`/`.msb` section hashes of those PE files.
//!
//! Every case runs both scanners with a one-signature database, so each verdict is
//! compared alone. `MOAT_REQUIRE_ORACLE=1` fails instead of skipping without clamscan.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use md5::Digest as _;

/// In every typed file below; lowercase, so normalized copies keep it.
const MARKER: &[u8] = b"moatmarker";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The result line of each file, keyed by path: `OK` or `NAME FOUND`.
fn verdicts(mut cmd: Command, db: &Path, files: &[PathBuf]) -> Vec<String> {
    let out = cmd
        .arg("--no-summary")
        .arg("-d")
        .arg(db)
        .args(files)
        .env("NO_COLOR", "1")
        .output()
        .expect("spawn scanner");
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(": "))
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

struct Case {
    db_name: String,
    db_text: String,
    files: Vec<PathBuf>,
}

/// Runs every case through both scanners; returns the differences.
fn compare(dir: &Path, cases: &[Case]) -> Vec<String> {
    let mut diffs = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let db_dir = dir.join(format!("db{i}"));
        fs::create_dir_all(&db_dir).unwrap();
        let db = db_dir.join(&case.db_name);
        fs::write(&db, &case.db_text).unwrap();
        let mut moat = Command::new(env!("CARGO_BIN_EXE_moat"));
        moat.arg("scan");
        let ours = verdicts(moat, &db, &case.files);
        let theirs = verdicts(Command::new("clamscan"), &db, &case.files);
        if ours != theirs {
            diffs.push(format!(
                "db {} = {:?}\n  moat:     {ours:?}\n  clamscan: {theirs:?}",
                case.db_name, case.db_text
            ));
        }
    }
    diffs
}

/// A minimal PE32: one `.text` section at raw 0x200 (0x200 bytes, RVA 0x1000) holding
/// the marker, a second at 0x400 with a misaligned size, entry point at RVA 0x1010.
fn tiny_pe() -> Vec<u8> {
    let mut f = vec![0u8; 0x600];
    f[..2].copy_from_slice(b"MZ");
    f[0x3c..0x40].copy_from_slice(&0x40u32.to_le_bytes());
    f[0x40..0x44].copy_from_slice(b"PE\0\0");
    f[0x44..0x46].copy_from_slice(&0x14cu16.to_le_bytes());
    f[0x46..0x48].copy_from_slice(&2u16.to_le_bytes());
    f[0x54..0x56].copy_from_slice(&0xe0u16.to_le_bytes());
    f[0x56..0x58].copy_from_slice(&0x102u16.to_le_bytes());
    let opt = 0x58;
    f[opt..opt + 2].copy_from_slice(&0x10bu16.to_le_bytes());
    f[opt + 16..opt + 20].copy_from_slice(&0x1010u32.to_le_bytes());
    f[opt + 28..opt + 32].copy_from_slice(&0x40_0000u32.to_le_bytes());
    f[opt + 32..opt + 36].copy_from_slice(&0x1000u32.to_le_bytes());
    f[opt + 36..opt + 40].copy_from_slice(&0x200u32.to_le_bytes());
    f[opt + 56..opt + 60].copy_from_slice(&0x3000u32.to_le_bytes());
    f[opt + 60..opt + 64].copy_from_slice(&0x200u32.to_le_bytes());
    f[opt + 68..opt + 70].copy_from_slice(&2u16.to_le_bytes());
    f[opt + 92..opt + 96].copy_from_slice(&16u32.to_le_bytes());
    for (i, (name, va, ptr, rsz)) in [
        (b".text\0\0\0", 0x1000u32, 0x200u32, 0x200u32),
        (b".data\0\0\0", 0x2000, 0x400, 0x1f0),
    ]
    .into_iter()
    .enumerate()
    {
        let s = opt + 0xe0 + 40 * i;
        f[s..s + 8].copy_from_slice(name);
        f[s + 8..s + 12].copy_from_slice(&0x200u32.to_le_bytes());
        f[s + 12..s + 16].copy_from_slice(&va.to_le_bytes());
        f[s + 16..s + 20].copy_from_slice(&rsz.to_le_bytes());
        f[s + 20..s + 24].copy_from_slice(&ptr.to_le_bytes());
        f[s + 36..s + 40].copy_from_slice(&0x6000_0020u32.to_le_bytes());
    }
    for (i, b) in f[0x200..0x600].iter_mut().enumerate() {
        *b = (i * 7 % 251) as u8 | 0x80;
    }
    f[0x210..0x210 + MARKER.len()].copy_from_slice(MARKER);
    f
}

/// A 64-bit x86-64 Mach-O: one `__TEXT` segment with one section (raw 0x400, 0x1f0
/// bytes aligned to 0x200 → raw size 0x200), and `LC_MAIN` (which ClamAV ignores).
fn macho() -> Vec<u8> {
    let mut f = vec![0u8; 0x1000];
    let put32 =
        |f: &mut Vec<u8>, at: usize, v: u32| f[at..at + 4].copy_from_slice(&v.to_le_bytes());
    let put64 =
        |f: &mut Vec<u8>, at: usize, v: u64| f[at..at + 8].copy_from_slice(&v.to_le_bytes());
    f[..4].copy_from_slice(&[0xcf, 0xfa, 0xed, 0xfe]);
    put32(&mut f, 4, 0x0100_0007);
    put32(&mut f, 12, 2);
    put32(&mut f, 16, 2);
    put32(&mut f, 20, 152 + 24);
    let seg = 32;
    put32(&mut f, seg, 0x19);
    put32(&mut f, seg + 4, 152);
    f[seg + 8..seg + 14].copy_from_slice(b"__TEXT");
    put64(&mut f, seg + 24, 0x1_0000_0000);
    put64(&mut f, seg + 32, 0x1000);
    put64(&mut f, seg + 48, 0x1000);
    put32(&mut f, seg + 64, 1);
    let s = seg + 72;
    f[s..s + 6].copy_from_slice(b"__text");
    f[s + 16..s + 22].copy_from_slice(b"__TEXT");
    put64(&mut f, s + 32, 0x1_0000_0400);
    put64(&mut f, s + 40, 0x1f0);
    put32(&mut f, s + 48, 0x400);
    put32(&mut f, s + 52, 9);
    let main = seg + 152;
    put32(&mut f, main, 0x8000_0028);
    put32(&mut f, main + 4, 24);
    put64(&mut f, main + 8, 0x480);
    for (i, b) in f[0x400..].iter_mut().enumerate() {
        *b = 0x80 | (i * 7 % 127) as u8;
    }
    f
}

/// An object file built with `gcc -c` (no program headers: the entry value is the
/// entry point), or `None`.
fn object(dir: &Path) -> Option<PathBuf> {
    let out = dir.join("obj.o");
    Command::new("gcc")
        .arg("-c")
        .arg("-o")
        .arg(&out)
        .arg(dir.join("m.c"))
        .status()
        .is_ok_and(|s| s.success())
        .then_some(out)
}

/// An ELF built from C with gcc, else a copy of /bin/true; `None` without either.
fn elf(dir: &Path) -> Option<PathBuf> {
    let src = dir.join("m.c");
    fs::write(
        &src,
        "const char marker[] = \"moatmarker\";\nint main(void) { return marker[0] == 'x'; }\n",
    )
    .unwrap();
    let out = dir.join("elf.bin");
    let built = Command::new("gcc")
        .arg("-O0")
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .status()
        .is_ok_and(|s| s.success());
    (built || fs::copy("/bin/true", &out).is_ok()).then_some(out)
}

/// One file per type, each holding the marker.
fn typed_files() -> Vec<(&'static str, Vec<u8>)> {
    let with = |head: &[u8], tail: &[u8]| {
        let mut v = head.to_vec();
        v.extend_from_slice(b" xx ");
        v.extend_from_slice(MARKER);
        v.extend_from_slice(tail);
        v
    };
    let mut macho = vec![0u8; 0x200];
    macho[..4].copy_from_slice(&[0xcf, 0xfa, 0xed, 0xfe]);
    macho[0x100..0x100 + MARKER.len()].copy_from_slice(MARKER);
    vec![
        ("mz-junk", with(b"MZ", b" padding\n")),
        (
            "ole2",
            with(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", b"\x00\x00pad"),
        ),
        ("html", with(b"<html><body>", b"</body></html>\n")),
        (
            "html-late",
            with(b"plain words then <iframe src=x>", b" more\n"),
        ),
        (
            "html-upper",
            with(b"<html><body>MOATMARKER", b"</body></html>\n"),
        ),
        ("script", with(b"<script>var a = 1;", b"</script>\n")),
        ("mail", with(b"Subject: hello\n", b"\n")),
        ("mail-body", with(b"Subject: hello\nTo: y\n\nbody", b"\n")),
        (
            "mail-received",
            with(b"Subject: hello\nReceived: b\n\nbody", b"\n"),
        ),
        (
            "mail-from",
            with(b"From: a@b.c\r\nTo: y\r\n\r\nMOATMARKER and", b"\n"),
        ),
        ("gif", with(b"GIF89a\x01\x00\x01\x00", b"\x00;")),
        ("png", with(b"\x89PNG\r\n\x1a\n", b"\x00")),
        ("text", with(b"just some words", b"\n")),
        ("pdf", with(b"%PDF-1.4\n", b"\n%%EOF\n")),
        ("pdf-late", with(b"junk\n%PDF-1.7\n", b"\n")),
        ("swf", with(b"FWS\x0a\x40\x00\x00\x00", b"\x00")),
        ("java", with(b"\xca\xfe\xba\xbe\x00\x00\x00\x34", b"\x00")),
        ("fat", with(b"\xca\xfe\xba\xbe\x00\x00\x00\x01", b"\x00")),
        ("macho", macho),
        ("binary", with(b"ab\x00\x01ab\x00\x01", b"\x00\x01")),
        ("zip", with(b"PK\x03\x04", b"\x00")),
    ]
}

#[test]
fn file_types_and_executable_layout_against_clamscan() {
    if !moat_testkit::clamscan() {
        return;
    }
    let tmp = tempfile::Builder::new()
        .prefix("moat-formats-")
        .tempdir()
        .unwrap();
    let dir = tmp.path();
    let files_dir = dir.join("files");
    fs::create_dir_all(&files_dir).unwrap();
    let mut files = Vec::new();
    for (name, data) in typed_files() {
        let p = files_dir.join(name);
        fs::write(&p, data).unwrap();
        files.push(p);
    }
    let pe_path = files_dir.join("tiny.exe");
    fs::write(&pe_path, tiny_pe()).unwrap();
    files.push(pe_path.clone());
    let mut exes = vec![pe_path];
    let clam = Path::new("/usr/share/clamav-testfiles/clam.exe");
    if clam.exists() {
        let p = files_dir.join("clam.exe");
        fs::copy(clam, &p).unwrap();
        exes.push(p);
    }
    if let Some(p) = elf(dir) {
        files.push(p.clone());
        exes.push(p);
    }
    if let Some(p) = object(dir) {
        exes.push(p);
    }
    let macho_path = files_dir.join("macho.bin");
    fs::write(&macho_path, macho()).unwrap();
    exes.push(macho_path);

    let mut cases = Vec::new();
    // Each target type on every file: only files of that type may match (or, for
    // target 0 and 7, what ClamAV's normalizations make of them).
    for target in (0..=12).filter(|t| *t != 8) {
        cases.push(Case {
            db_name: "t.ndb".into(),
            db_text: format!("T{target}:{target}:*:{}\n", hex(MARKER)),
            files: files.clone(),
        });
    }
    // One file per fixed-offset magic rule of moat_formats (ClamAV's table), each
    // target type on all of them: which are typed, ignored, or get a text copy.
    let magic_dir = dir.join("magic");
    fs::create_dir_all(&magic_dir).unwrap();
    let mut magic_files = Vec::new();
    for (i, (offset, bytes, _)) in moat_formats::filetype::magic_rules().enumerate() {
        let mut data = vec![b'a'; offset];
        data.extend_from_slice(bytes);
        data.extend_from_slice(b"\n hello xx ");
        data.extend_from_slice(MARKER);
        data.extend_from_slice(b" yy\n");
        data.extend_from_slice(&[b'z'; 300]);
        let p = magic_dir.join(format!("m{i:03}"));
        fs::write(&p, data).unwrap();
        magic_files.push(p);
    }
    for target in (0..=12).filter(|t| *t != 8) {
        cases.push(Case {
            db_name: "m.ndb".into(),
            db_text: format!("M{target}:{target}:*:{}\n", hex(MARKER)),
            files: magic_files.clone(),
        });
    }

    // Raw uppercase: HTML files are not matched raw, text files are.
    cases.push(Case {
        db_name: "t.ndb".into(),
        db_text: format!("Up:0:*:{}\n", hex(b"MOATMARKER")),
        files: files.clone(),
    });

    // HTML normalization: what target 3 and 0 see of a page (ClamAV's nocomment.html).
    let page = files_dir.join("page.html");
    fs::write(
        &page,
        b"  <HTML>\n<A  HREF = \"X\" >Y</A >HELLO   &#119;orld &AMP; &#300;<!-- COMMENT -- >\
          x <b> y </b><script>VAR  X = 1;<!-- c --><IMG src=z></script>\n</HTML>\n",
    )
    .unwrap();
    for (t, text) in [
        (3, &b"<html><a href=\"x\">y</a>"[..]),
        (3, b"hello world &amp; &#x012c;x"),
        (0, b"hello world"),
        (3, b"comment"),
        (3, b"x <b>y </b><script>"),
        (3, b"varx=1;<!--c--><imgsrc=z></script></html>"),
        // Not `var x = 1;`: ClamAV's script copy renames identifiers (`var n000=1;`),
        // which moat does not do.
        (7, b"var x"),
        (7, b"hello"),
        (3, b"HELLO"),
        (0, b"HELLO"),
    ] {
        cases.push(Case {
            db_name: "h.ndb".into(),
            db_text: format!("Page:{t}:*:{}\n", hex(text)),
            files: vec![page.clone()],
        });
    }

    // Executable offsets, from the layout moat_formats parses, each with near misses.
    for exe in &exes {
        let data = fs::read(exe).unwrap();
        let info = moat_formats::exe::parse(&data.as_slice()).expect("an executable");
        let target = match info.kind {
            moat_formats::ExeKind::Pe => 1,
            moat_formats::ExeKind::Elf => 6,
            moat_formats::ExeKind::MachO => 9,
        };
        let at = |o: u64| -> Option<String> {
            let o = usize::try_from(o).ok()?;
            data.get(o..o + 4).map(hex)
        };
        let mut sigs: Vec<(String, Option<String>)> = Vec::new();
        if let Some(ep) = info.entry_point {
            sigs.push(("EP+0".into(), at(ep)));
            sigs.push(("EP+1".into(), at(ep)));
            sigs.push(("EP+3".into(), at(ep + 3)));
            sigs.push(("EP-2".into(), ep.checked_sub(2).and_then(at)));
            sigs.push(("EP+0,8".into(), at(ep + 5)));
            sigs.push(("EP+0,4".into(), at(ep + 5)));
        }
        let n = info.sections.len();
        let picks: Vec<usize> = [0, 1, n / 2, n.saturating_sub(1)]
            .into_iter()
            .filter(|&i| i < n)
            .collect();
        for i in picks {
            let s = info.sections[i];
            sigs.push((format!("S{i}+0"), at(s.raw_offset)));
            sigs.push((format!("S{i}+5"), at(s.raw_offset + 5)));
            sigs.push((format!("S{i}+4"), at(s.raw_offset + 5)));
            sigs.push((format!("SE{i}"), at(s.raw_offset + s.raw_size / 2)));
            sigs.push((
                format!("SE{i}"),
                at((s.raw_offset + s.raw_size).saturating_sub(2)),
            ));
            sigs.push((format!("SE{i}"), at(s.raw_offset + s.raw_size + 8)));
        }
        sigs.push((format!("S{n}+0"), at(0)));
        if let Some(last) = info.sections.last() {
            sigs.push(("SL+0".into(), at(last.raw_offset)));
            sigs.push(("SL+2".into(), at(last.raw_offset + 2)));
            sigs.push(("SL+1".into(), at(last.raw_offset + 2)));
            sigs.push(("SL+0,2".into(), at(last.raw_offset + 2)));
        }
        for (offset, bytes) in sigs {
            let Some(bytes) = bytes else { continue };
            for t in [target, 0] {
                if t == 0 {
                    // Executable offsets need an executable target: a load error in both.
                    continue;
                }
                cases.push(Case {
                    db_name: "o.ndb".into(),
                    db_text: format!("Off:{t}:{offset}:{bytes}\n"),
                    files: vec![exe.clone()],
                });
            }
            // The same offset under another executable target matches nothing.
            let other = if target == 1 { 6 } else { 1 };
            cases.push(Case {
                db_name: "o.ndb".into(),
                db_text: format!("Other:{other}:{offset}:{bytes}\n"),
                files: vec![exe.clone()],
            });
        }
        // Section hashes of PE files: each section, a wrong size, `*`, SHA-256.
        if info.kind == moat_formats::ExeKind::Pe {
            for s in &info.sections {
                let (lo, hi) = (s.raw_offset as usize, (s.raw_offset + s.raw_size) as usize);
                let Some(bytes) = data.get(lo..hi) else {
                    continue;
                };
                let md5 = hex(&md5::Md5::digest(bytes));
                let sha256 = hex(&sha2::Sha256::digest(bytes));
                let size = s.raw_size;
                for (name, text) in [
                    ("s.mdb", format!("{size}:{md5}:Sec\n")),
                    ("s.mdb", format!("{}:{md5}:Sec\n", size + 1)),
                    ("s.mdb", format!("*:{md5}:Sec:73\n")),
                    ("s.msb", format!("{size}:{sha256}:Sec\n")),
                    ("s.hdb", format!("{md5}:{size}:NotWhole\n")),
                ] {
                    cases.push(Case {
                        db_name: name.into(),
                        db_text: text,
                        files: vec![exe.clone()],
                    });
                }
            }
        }
    }
    let diffs = compare(dir, &cases);
    assert!(
        diffs.is_empty(),
        "{} of {} cases differ:\n{}",
        diffs.len(),
        cases.len(),
        diffs.join("\n")
    );
}

/// Loaded `.ftm` file type magic: with the real daily.ftm alone, and with it and a
/// generated `.ftm` whose fixed-offset lines make files starting with `MOAT` HTML
/// and files with `moat` at offset 2 graphics, one `.ndb` line per target type over
/// those files, near misses, and the typed files and one file per built-in magic
/// rule: `moat scan` and clamscan give the same verdicts. (A `.ftm` loaded without
/// daily.ftm replaces ClamAV's built-in table; moat keeps it: not compared.)
#[test]
fn loaded_file_type_magic_against_clamscan() {
    if !moat_testkit::clamscan() {
        return;
    }
    let shared = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared"));
    let daily = shared.join("sigs/clamav-real/daily.ftm");
    if !daily.exists() {
        if std::env::var("MOAT_REQUIRE_SHARED").as_deref() == Ok("1") {
            panic!("../shared absent but MOAT_REQUIRE_SHARED=1");
        }
        println!("skipped: ../shared absent ({})", daily.display());
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let files_dir = dir.join("files");
    fs::create_dir_all(&files_dir).unwrap();
    let mut files = Vec::new();
    let mut add = |name: &str, data: Vec<u8>| {
        let p = files_dir.join(name);
        fs::write(&p, data).unwrap();
        files.push(p);
    };
    let body = |head: &[u8]| {
        let mut d = head.to_vec();
        d.extend_from_slice(b" <b>hello ");
        d.extend_from_slice(MARKER);
        d.extend_from_slice(b"</b>\n");
        d
    };
    add("html-text", body(b"MOAT"));
    add("html-binary", body(b"MOAT\x00\x01\x02"));
    add("html-miss", body(b"xMOAT"));
    add("graphics-hit", body(b"abmoat\x00\x01"));
    add("graphics-miss", body(b"abcmoat\x00\x01"));
    for (name, data) in typed_files() {
        add(name, data);
    }
    for (i, (offset, bytes, _)) in moat_formats::filetype::magic_rules().enumerate() {
        let mut data = vec![b'a'; offset];
        data.extend_from_slice(bytes);
        add(&format!("m{i:03}"), body(&data));
    }
    let generated = "0:0:4d4f4154:Moat HTML:CL_TYPE_ANY:CL_TYPE_HTML\n\
                     0:2:6d6f6174:Moat graphics:CL_TYPE_ANY:CL_TYPE_GRAPHICS\n\
                     0:0:4d4f4154:Moat too new:CL_TYPE_ANY:CL_TYPE_ZIP:300\n";
    let mut diffs = Vec::new();
    for with_generated in [false, true] {
        for target in (0..=12).filter(|t| *t != 8) {
            let db = dir.join(format!("db-{with_generated}-{target}"));
            fs::create_dir_all(&db).unwrap();
            fs::copy(&daily, db.join("daily.ftm")).unwrap();
            if with_generated {
                fs::write(db.join("moat.ftm"), generated).unwrap();
            }
            let ndb = format!("T{target}:{target}:*:{}\n", hex(MARKER));
            fs::write(db.join("t.ndb"), ndb).unwrap();
            let mut moat = Command::new(env!("CARGO_BIN_EXE_moat"));
            moat.arg("scan");
            let ours = verdicts(moat, &db, &files);
            let theirs = verdicts(Command::new("clamscan"), &db, &files);
            // Not a comparison of two scanners that type nothing: the generated
            // lines must change the type of the files they name.
            let found = |file: &str| {
                ours.iter()
                    .any(|l| l.contains(&format!("/{file}: T{target}.UNOFFICIAL FOUND")))
            };
            if with_generated && target == 3 {
                assert!(found("html-text") && found("html-binary") && !found("html-miss"));
            }
            if with_generated && target == 5 {
                assert!(found("graphics-hit") && !found("graphics-miss"));
            }
            if !with_generated && target == 3 {
                assert!(!found("html-binary"));
            }
            if ours != theirs {
                let only = |a: &[String], b: &[String]| {
                    a.iter()
                        .filter(|l| !b.contains(l))
                        .cloned()
                        .collect::<Vec<_>>()
                };
                diffs.push(format!(
                    "target {target}, generated .ftm {with_generated}:\n  moat only: {:?}\n  clamscan only: {:?}",
                    only(&ours, &theirs),
                    only(&theirs, &ours)
                ));
            }
        }
    }
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}
