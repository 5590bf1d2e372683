//! Logical signatures (`.ldb`): `moat scan` against the real `clamscan` (the oracle).
//!
//! - the documented examples of ClamAV's "Logical signatures" page, with files that
//!   match and miss them, and a streamed (> 1 MiB) file;
//! - a seeded generator of random expressions over random subsignatures, with files
//!   holding each subsignature 0 to 3 times, all compared in one run of each scanner,
//!   on binary files and on text files (raw and normalized counts differ);
//! - grids, each combination a signature with its own marker subsignature, in one run:
//!   regex offsets × flags × counts, PCRE flags, hex modifiers × counts, byte compares;
//! - lines refused, skipped uncounted, or counted, as clamscan treats them.
//!
//! `MOAT_REQUIRE_ORACLE=1`: fail (instead of skipping) when clamscan is not installed.
//! `MOAT_LDB_SEED=N`: another seed for the generator; `MOAT_LDB_KEEP=1`: keep the files.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::Command;

/// `PATH: RESULT` lines, and the "Known viruses" count.
fn scan(program: &str, db: &Path, files: &Path) -> (BTreeMap<String, String>, String, String) {
    let mut cmd = if program == "moat" {
        let mut c = Command::new(env!("CARGO_BIN_EXE_moat"));
        c.arg("scan");
        c
    } else {
        Command::new(program)
    };
    let out = cmd
        .arg("-d")
        .arg(db)
        .arg("-r")
        .arg(files)
        .output()
        .expect("spawn scanner");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut results = BTreeMap::new();
    let mut known = String::new();
    for line in stdout.lines() {
        if let Some(k) = line.strip_prefix("Known viruses:") {
            known = k.trim().to_owned();
        } else if let Some((path, result)) = line.rsplit_once(": ") {
            if path.starts_with('/') {
                results.insert(path.to_owned(), result.to_owned());
            }
        }
    }
    (
        results,
        known,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Writes the databases and files, runs both scanners once, and compares.
fn differential(
    dbs: &[(String, String)],
    files: &[(String, Vec<u8>)],
    intents: &BTreeMap<String, String>,
) {
    let tmp = tempfile::Builder::new()
        .prefix("moat-ldb-")
        .tempdir()
        .unwrap();
    let db = tmp.path().join("db");
    let dir = tmp.path().join("files");
    fs::create_dir_all(&db).unwrap();
    fs::create_dir_all(&dir).unwrap();
    for (name, text) in dbs {
        fs::write(db.join(name), text).unwrap();
    }
    for (name, data) in files {
        fs::write(dir.join(name), data).unwrap();
    }
    let (clam, clam_known, clam_err) = scan("clamscan", &db, &dir);
    let (moat, moat_known, moat_err) = scan("moat", &db, &dir);
    assert!(!clam.is_empty(), "clamscan printed no results: {clam_err}");
    let mut diffs = Vec::new();
    for (path, c) in &clam {
        let m = moat.get(path).map_or("(missing)", String::as_str);
        if m != c {
            let name = Path::new(path)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let why = intents.get(&name).map_or("", String::as_str);
            diffs.push(format!("{name}: clamscan {c}, moat {m}  [{why}]"));
        }
    }
    if std::env::var("MOAT_LDB_KEEP").as_deref() == Ok("1") {
        println!("kept: {}", tmp.keep().display());
    }
    assert_eq!(clam.len(), moat.len(), "moat stderr: {moat_err}");
    assert!(
        diffs.is_empty(),
        "{} of {} files differ:\n{}",
        diffs.len(),
        clam.len(),
        diffs.join("\n")
    );
    assert_eq!(clam_known, moat_known, "Known viruses");
}

/// A file clamscan does not normalize (so only the raw pass counts): a binary head.
fn binary(body: &[u8]) -> Vec<u8> {
    let mut d = vec![0x41, 0x42, 0x00, 0x01, 0x02, 0x03];
    d.extend_from_slice(body);
    d.extend_from_slice(&[0x00, 0x01]);
    d
}

#[test]
fn documented_examples_against_clamscan() {
    if !moat_testkit::clamscan() {
        return;
    }
    // The examples of ClamAV's LogicalSignatures page (Target 0 ones; the PE one loads).
    let ldb = "\
Sig1;Target:0;(0&1&2&3)&(4|1);6b6f7072;6e6b6f;616e6b6f;6d6f6b656e;636e
Sig2;Target:0;((0|1|2)>5,2)&(3|1);6b6f7072;6e6b6f;616e6b6f;6d6f6b656e
Sig3;Target:0;((0|1|2|3)=2)&(4|1);6b6f7072;6e6b6f;616e6b6f;6d6f6b656e;636e
Sig4;Engine:51-255,Target:1;((0|1)&(2|3))&4;EP+123:33c06834f04100f2aef7d14951684cf04100e8110a00;S2+78:22??232c2d252229{-15}6e6573(63|64)61706528;S3+50:68efa311c3b9963cb1ee8e586d32aeb9043e;f9c58dcf43987e4f519d629b103375;SL+550:6300680065005c0046006900
Mods;Engine:81-255,Target:0;0&1&2;7a7a7a7a::i;7979797979::w;787878::f
Wide;Engine:81-255,Target:0;0=2;7171717171::wa
Regex;Engine:81-255,Target:0;0&1;70707070;0/p{4}[0-9]+/
RegexG;Engine:81-255,Target:0;0&1>2;6f6f6f6f;0/o[0-9]/g
RegexOff;Engine:81-255,Target:0;0&1;6e6e6e6e;10,8:0/n[0-9]n/
Size;Engine:51-255,Target:0,FileSize:20-40;0;6d6d6d6d6d
Eof;Target:0;0;EOF-8:6c6c6c6c
";
    let words = |w: &[&str]| -> Vec<u8> { binary(w.join("\u{1}").as_bytes()) };
    let mut files: Vec<(String, Vec<u8>)> = vec![
        (
            "sig1-hit".into(),
            words(&["kopr", "nko", "anko", "moken", "cn"]),
        ),
        ("sig1-miss".into(), words(&["kopr", "anko", "moken", "cn"])),
        (
            "sig2-hit".into(),
            words(&["kopr", "kopr", "kopr", "kopr", "nko", "nko", "moken"]),
        ),
        (
            "sig2-one-kind".into(),
            words(&["kopr", "kopr", "kopr", "kopr", "kopr", "kopr", "moken"]),
        ),
        ("sig3-hit".into(), words(&["kopr", "moken", "cn"])),
        (
            "sig3-three".into(),
            words(&["kopr", "moken", "moken", "cn"]),
        ),
        ("mods-hit".into(), {
            let mut d = b"ZzZz ".to_vec();
            d.extend_from_slice(&[b'y', 0, b'y', 0, b'y', 0, b'y', 0, b'y', 0]);
            d.extend_from_slice(b" xxx.");
            binary(&d)
        }),
        ("mods-not-fullword".into(), {
            let mut d = b"ZzZz ".to_vec();
            d.extend_from_slice(&[b'y', 0, b'y', 0, b'y', 0, b'y', 0, b'y', 0]);
            d.extend_from_slice(b" xxxa");
            binary(&d)
        }),
        ("wide-both".into(), {
            let mut d = b"qqqqq..".to_vec();
            d.extend_from_slice(&[b'q', 0, b'q', 0, b'q', 0, b'q', 0, b'q', 0]);
            binary(&d)
        }),
        ("wide-ascii-only".into(), binary(b"qqqqq..")),
        ("regex-hit".into(), binary(b"pppp1234")),
        ("regex-miss".into(), binary(b"pppp-1234")),
        ("regexg-hit".into(), binary(b"oooo o1 o2 o3")),
        ("regexg-two".into(), binary(b"oooo o1 o2")),
        ("regexoff-hit".into(), binary(b"nnnn......n5n")),
        ("regexoff-early".into(), binary(b"nnnn n5n.........")),
        ("size-hit".into(), binary(b"mmmmm..............")),
        (
            "size-large".into(),
            binary(&[b"mmmmm".as_slice(), &[b'.'; 60]].concat()),
        ),
        ("eof-hit".into(), {
            let mut d = binary(b"..........");
            d.extend_from_slice(b"llll....");
            d
        }),
        ("eof-miss".into(), {
            let mut d = binary(b"..........");
            d.extend_from_slice(b"llll.....");
            d
        }),
    ];
    // Streamed: subsignatures on both sides of the 1 MiB chunk boundary, and a
    // regex in the second chunk.
    let mut big = binary(&vec![b'.'; 3 << 20]);
    for (at, w) in [
        (100usize, b"kopr".as_slice()),
        ((1 << 20) - 2, b"nko"),
        ((1 << 20) + 5000, b"anko"),
        (2 << 20, b"moken"),
        ((5 << 19) + 3, b"cn"),
        (2_500_000, b"pppp"),
        (2_600_000, b"pppp77"),
    ] {
        big[at..at + w.len()].copy_from_slice(w);
    }
    files.push(("streamed-hit".into(), big.clone()));
    big[(1 << 20) - 2..(1 << 20) + 1].copy_from_slice(b"...");
    files.push(("streamed-regex".into(), big));
    let dbs = vec![("examples.ldb".to_owned(), ldb.to_owned())];
    differential(&dbs, &files, &BTreeMap::new());
}

// ---------------------------------------------------------------------------------------------
// The generator.

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pct(&mut self, p: usize) -> bool {
        self.below(100) < p
    }
}

/// A random expression over `ids` (each used once), ClamAV's syntax.
fn gen_expr(rng: &mut Rng, ids: &[usize]) -> String {
    let mut e = if ids.len() == 1 {
        ids[0].to_string()
    } else {
        let cut = 1 + rng.below(ids.len() - 1);
        let side = |rng: &mut Rng, part: &[usize]| {
            let s = gen_expr(rng, part);
            if part.len() > 1 || s.contains(['=', '<', '>']) {
                format!("({s})")
            } else {
                s
            }
        };
        let (l, r) = (side(rng, &ids[..cut]), side(rng, &ids[cut..]));
        let op = if rng.pct(50) { '&' } else { '|' };
        format!("{l}{op}{r}")
    };
    if rng.pct(40) {
        if ids.len() > 1 || e.contains(['&', '|']) {
            e = format!("({e})");
        }
        let op = ['=', '>', '<'][rng.below(3)];
        let _ = write!(e, "{op}{}", rng.below(5));
        if ids.len() > 1 && rng.pct(50) {
            let _ = write!(e, ",{}", rng.below(ids.len() + 1));
        }
    }
    e
}

#[test]
fn generated_logical_signatures_against_clamscan() {
    if !moat_testkit::clamscan() {
        return;
    }
    let seed = std::env::var("MOAT_LDB_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x006c_6462_5f67_656e_u64);
    let mut rng = Rng(seed);
    let mut ldb = String::new();
    let mut files = Vec::new();
    let mut intents = BTreeMap::new();
    let sigs = 100;
    for s in 0..sigs {
        let n = 1 + rng.below(4);
        // Tokens of high bytes: unique per signature and subsignature, never formed by
        // the filler or by two adjacent tokens.
        let tokens: Vec<Vec<u8>> = (0..=n)
            .map(|j| {
                let len = 2 + rng.below(3);
                let mut t = vec![0x80 + (s % 100) as u8, 0xe0 + j as u8];
                t.extend((2..len).map(|_| 0x80 + rng.below(0x60) as u8));
                t
            })
            .collect();
        let ids: Vec<usize> = (0..n).collect();
        let inner = gen_expr(&mut rng, &ids);
        // Most signatures also need their own marker (subsignature n), so that files of
        // one signature rarely match another; some have none, to test zero counts.
        let marked = rng.pct(85);
        let (expr, count) = if marked {
            (format!("{n}&({inner})"), n + 1)
        } else {
            (inner.clone(), n)
        };
        let subsigs: Vec<String> = tokens[..count]
            .iter()
            .map(|t| t.iter().map(|b| format!("{b:02x}")).collect())
            .collect();
        let name = format!("Gen.{s}");
        let _ = writeln!(ldb, "{name};Target:0;{expr};{}", subsigs.join(";"));
        for f in 0..3 {
            let mut body = Vec::new();
            let mut desc = Vec::new();
            let mut pieces: Vec<&[u8]> = Vec::new();
            for (j, t) in tokens[..n].iter().enumerate() {
                let times = rng.below(4);
                desc.push(format!("{j}x{times}"));
                pieces.extend(std::iter::repeat_n(t.as_slice(), times));
            }
            if marked && (f < 2 || rng.pct(50)) {
                pieces.push(&tokens[n]);
            }
            // Shuffle the pieces.
            for i in (1..pieces.len()).rev() {
                let k = rng.below(i + 1);
                pieces.swap(i, k);
            }
            for p in pieces {
                body.extend_from_slice(p);
                body.extend(std::iter::repeat_n(b'.', 1 + rng.below(3)));
            }
            let file = format!("g{s:03}-{f}");
            intents.insert(
                file.clone(),
                format!("{name} {expr} counts {}", desc.join(" ")),
            );
            files.push((file, binary(&body)));
        }
    }
    let dbs = vec![("gen.ldb".to_owned(), ldb)];
    differential(&dbs, &files, &intents);
}

#[test]
fn malformed_logical_lines_are_refused_as_clamscan_refuses_them() {
    if !moat_testkit::clamscan() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("f");
    fs::write(&file, binary(b"AABB....")).unwrap();
    for line in [
        "A;Target:0;0&1;41414242",
        "A;Target:0;(0&1;41414242;4343",
        "A;Target:0;0>;41414242",
        "A;Target:0,Engine:51-255;0;41414242",
        "A;Engine:51-255,FileSize:1-2;0;41414242",
        "A;FileSize:1-2;0;41414242",
        "A;Target:0;0;41",
        "A;Target:0;0;EP+0:41414242",
        "A;Target:0;0;41414242::q",
        "A;Engine:81-255,Target:0;0&1;4141;1/ab/",
        "A;Engine:81-255,Target:0;0&1;4141;0/a(b/",
        "A;Target:0",
    ] {
        let db = tmp.path().join("x.ldb");
        fs::write(&db, format!("{line}\n")).unwrap();
        let run = |program: &str| {
            let mut c = if program == "moat" {
                let mut c = Command::new(env!("CARGO_BIN_EXE_moat"));
                c.arg("scan");
                c
            } else {
                Command::new(program)
            };
            c.arg("-d")
                .arg(&db)
                .arg(&file)
                .output()
                .unwrap()
                .status
                .code()
        };
        let (clam, moat) = (run("clamscan"), run("moat"));
        assert_eq!(clam, Some(2), "clamscan accepted {line}");
        assert_eq!(moat, clam, "{line}");
    }
}

/// Regex subsignatures: every offset form (exact, shifted, shift 0, EOF-relative)
/// crossed with the flags `g`, `r`, `e` and counts, each combination a signature of its
/// own with its own marker subsignature, in one run of each scanner.
#[test]
fn regex_offsets_and_flags_against_clamscan() {
    if !moat_testkit::clamscan() {
        return;
    }
    let offsets = [
        "8", "9", "10", "11", "16", "17", "18", "8,1", "8,2", "9,1", "10,0", "11,5", "11,6",
        "3,20", "EOF-18", "EOF-19,1", "EOF-11", "10,5", "10,4", "10,6", "9,5", "9,0", "10,7",
        "3,30", "*",
    ];
    let mut ldb = String::new();
    let mut files = Vec::new();
    let mut intents = BTreeMap::new();
    let mut i = 0usize;
    for count in ["1", "1=2", "1=1"] {
        for offset in offsets {
            for flags in ["", "r", "e", "re", "g", "gr", "ge", "gre"] {
                let marker = [0xc0 + (i >> 7) as u8, 0x80 + (i & 0x7f) as u8];
                let name = format!("Re.{i}");
                let _ = writeln!(
                    ldb,
                    "{name};Engine:81-255,Target:0;0&{count};{:02x}{:02x};{offset}:0/Hello/{flags}",
                    marker[0], marker[1]
                );
                // Hello at 10 and 17, 28 bytes in all (as binary() frames it).
                let mut body = marker.to_vec();
                body.extend_from_slice(b"..Hello..Hello....");
                let file = format!("re{i:04}");
                intents.insert(file.clone(), format!("{offset}:0/Hello/{flags} {count}"));
                files.push((file, binary(&body)));
                i += 1;
            }
        }
    }
    differential(&[("re.ldb".to_owned(), ldb)], &files, &intents);
}

/// Hex subsignature modifiers (`i`, `w`, `f`, `a` and their combinations), counted
/// over files with ASCII and UTF-16LE occurrences next to alphanumeric and other
/// bytes; each combination a signature with its own marker, in one run.
#[test]
fn hex_modifiers_against_clamscan() {
    if !moat_testkit::clamscan() {
        return;
    }
    let bodies: [&[u8]; 4] = [
        b"abc.ABC.xabc.abcx.a\0b\0c\0.A\0B\0C\0.xa\0b\0c\0.a\0b\0c\0x\0.abc",
        b".a\0b\0c\0x\0.x\0a\0b\0c\0.\0a\0b\0c\0.Xa\0b\0c\0.",
        b"aBc_AbC-abc9ABC.9\0A\0b\0C\0 ",
        b"abcabcabc.a\0b\0c\0a\0b\0c\0",
    ];
    let mods = [
        "", "i", "w", "f", "a", "wa", "wi", "fi", "wf", "wfi", "wfa", "wfai", "ia", "fa",
    ];
    let mut ldb = String::new();
    let mut files = Vec::new();
    let mut intents = BTreeMap::new();
    let mut i = 0usize;
    for (b, body) in bodies.iter().enumerate() {
        for m in mods {
            for n in 0..7 {
                let marker = [0xc0 + (i >> 7) as u8, 0x80 + (i & 0x7f) as u8];
                let sep = if m.is_empty() { "" } else { "::" };
                let _ = writeln!(
                    ldb,
                    "Mod.{i};Target:0;1&(0={n});616263{sep}{m};{:02x}{:02x}",
                    marker[0], marker[1]
                );
                let file = format!("mod{i:04}");
                intents.insert(file.clone(), format!("body {b}, ::{m}, count {n}"));
                files.push((file, binary(&[*body, b".", &marker[..]].concat())));
                i += 1;
            }
        }
    }
    differential(&[("mod.ldb".to_owned(), ldb)], &files, &intents);
}

/// Lines clamscan skips without counting, loads and counts, or loads but moat does not
/// evaluate: the "Known viruses" count and the verdict agree, line by line.
#[test]
fn skipped_and_counted_lines_as_clamscan() {
    if !moat_testkit::clamscan() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("f");
    fs::write(&file, binary(b"AABB..CCDD..Hello")).unwrap();
    for line in [
        "A;Target:0,Foo:1;0;41414242",
        "A;Engine:51-255,Target:0,Foo:1;0;41414242",
        "A;Engine:51-255,Container:CL_TYPE_FOO,Target:0;0;41414242",
        "A;Engine:51-255,Container:CL_TYPE_ZIP,Target:0;0;41414242",
        "A;Engine:51-255,Intermediates:CL_TYPE_ZIP>CL_TYPE_ANY,Target:0;0;41414242",
        "A;Target:20;0;41414242",
        "A;Engine:300-400,Target:0;0;41414242",
        "A;Engine:51-,Target:0;0;41414242",
        "A;Engine:51-255;0;41414242",
        "A;Engine:51-255,Target:1,IconGroup1:X;0;41414242",
        "A;Engine:51-255,Target:1,EntryPoint:0-100,NumberOfSections:1-3;0;41414242",
        "A;Engine:51-255,Target:0,Target:1;0;41414242",
        "A;Target:0;0=1,;41414242",
        "A;Target:0;0&1;41414242;${1-2}12$",
        "A;Target:0;0|1;41414242;${1-2}12$",
        "A;Engine:81-255,Target:0;0&1;4141;0(>>26#de5#=12345)",
        "A;Engine:81-255,Target:0;0&1;4141;0/Hel+o/E",
        "A;Engine:51-255,Target:0,FileSize:1-1000;0;41414242",
        "A;Engine:51-255,Target:0,FileSize:1-10;0;41414242",
    ] {
        let db = tmp.path().join("x.ldb");
        fs::write(&db, format!("{line}\n")).unwrap();
        let run = |program: &str| {
            let mut c = if program == "moat" {
                let mut c = Command::new(env!("CARGO_BIN_EXE_moat"));
                c.arg("scan");
                c
            } else {
                Command::new(program)
            };
            let out = c.arg("-d").arg(&db).arg(&file).output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let pick = |key: &str| {
                text.lines()
                    .find(|l| l.starts_with(key))
                    .unwrap_or("")
                    .to_owned()
            };
            (
                out.status.code(),
                pick("Known viruses"),
                pick(&file.display().to_string()),
            )
        };
        assert_eq!(run("moat"), run("clamscan"), "{line}");
    }
}

/// PCRE's own flags, `E` (dollar end-only, emulated) with and without `m` and `s`
/// above all, over files ending with and without a newline.
#[test]
fn regex_pcre_flags_against_clamscan() {
    if !moat_testkit::clamscan() {
        return;
    }
    let ends: [&[u8]; 3] = [b"Hello\n", b"Hello", b"Hello\n.\n"];
    let mut ldb = String::new();
    let mut files = Vec::new();
    let mut intents = BTreeMap::new();
    let mut i = 0usize;
    for flags in ["", "E", "m", "mE", "s", "i", "x", "U", "A", "iE"] {
        for regex in [
            "Hello$",
            "Hello\\n$",
            "o$",
            "[$]",
            "h.l+",
            "^Hello",
            "H e l l o",
            "l+?",
        ] {
            for end in ends {
                let marker = [0xc0 + (i >> 7) as u8, 0x80 + (i & 0x7f) as u8];
                let _ = writeln!(
                    ldb,
                    "Fl.{i};Engine:81-255,Target:0;0&1=1;{:02x}{:02x};0/{regex}/{flags}",
                    marker[0], marker[1]
                );
                let file = format!("fl{i:04}");
                intents.insert(file.clone(), format!("/{regex}/{flags} on {end:?}"));
                let mut data = vec![0x41, 0x42, 0, 1, 2, 3];
                data.extend_from_slice(&marker);
                data.push(b'.');
                data.extend_from_slice(end);
                files.push((file, data));
                i += 1;
            }
        }
    }
    differential(&[("fl.ldb".to_owned(), ldb)], &files, &intents);
}

/// Byte-compare subsignatures: decimal, hexadecimal (big-endian), automatic and raw
/// numbers, exact or not, at offsets after and before the trigger's last match, with one
/// or two comparisons; each combination with its own marker, in one run.
#[test]
fn byte_compare_against_clamscan() {
    if !moat_testkit::clamscan() {
        return;
    }
    let bodies: [&[u8]; 4] = [
        b"AA..1234ab..\x39\x30\0\0",
        b"AA..1234ab..AA..5678.\0\0",
        b"AA..1234ab..\x39\x30\0\0..0x1f.0x.x12",
        b"AA..12..1..123.abcdef012.\0",
    ];
    let options = [
        "hbe4#=4660",
        "hb6#=1193131",
        "hb4#<1000",
        "hb3#=291",
        "hb2#=0",
        "h4#=4660",
        "de4#=1234",
        "db6#=1234",
        "db4#=5678",
        "d4#<1000",
        "de4#<1000",
        "ab4#=1234",
        "ab4#=31",
        "ab4#=0",
        "abe4#<1000",
        "ib2#=12594",
        "il2#=12849",
        "ib1#=49",
        "il8#>1",
        "i4#>1",
        "db4#<1000,>0",
        "db3#=123",
    ];
    let shifts = [">>4", ">>11", "<<2", ">>0", ">>19", ">>26", ">>500"];
    let mut ldb = String::new();
    let mut files = Vec::new();
    let mut intents = BTreeMap::new();
    let mut i = 0usize;
    for (b, body) in bodies.iter().enumerate() {
        for opt in options {
            for shift in shifts {
                let marker = [0xc0 + (i >> 7) as u8, 0x80 + (i & 0x7f) as u8];
                let _ = writeln!(
                    ldb,
                    "Bc.{i};Engine:81-255,Target:0;2&(0&1);4141;0({shift}#{opt});{:02x}{:02x}",
                    marker[0], marker[1]
                );
                let file = format!("bc{i:04}");
                intents.insert(file.clone(), format!("body {b}: 0({shift}#{opt})"));
                files.push((file, binary(&[*body, b".", &marker[..]].concat())));
                i += 1;
            }
        }
    }
    differential(&[("bc.ldb".to_owned(), ldb)], &files, &intents);
}

/// The generator on text files: tokens in lowercase and uppercase, so that the raw
/// bytes and the normalized copy (lowercased) count differently, and target-0 logical
/// signatures are evaluated on both, in clamscan's order.
#[test]
fn generated_logical_signatures_on_text_against_clamscan() {
    if !moat_testkit::clamscan() {
        return;
    }
    let mut rng = Rng(0x7465_7874);
    let letters = b"bcdfghjkmnpqrstvwxz";
    let mut ldb = String::new();
    let mut files = Vec::new();
    let mut intents = BTreeMap::new();
    for s in 0..80 {
        let n = 1 + rng.below(4);
        let tokens: Vec<String> = (0..=n)
            .map(|j| {
                let word: String = (0..4)
                    .map(|_| char::from(letters[rng.below(letters.len())]))
                    .collect();
                format!("{word}{s:02}{j}")
            })
            .collect();
        let ids: Vec<usize> = (0..n).collect();
        let expr = format!("{n}&({})", gen_expr(&mut rng, &ids));
        let hexes: Vec<String> = tokens
            .iter()
            .map(|t| t.bytes().map(|b| format!("{b:02x}")).collect())
            .collect();
        let _ = writeln!(ldb, "T.{s};Target:0;{expr};{}", hexes.join(";"));
        for f in 0..3 {
            let mut pieces: Vec<String> = Vec::new();
            for t in &tokens[..n] {
                for _ in 0..rng.below(4) {
                    pieces.push(if rng.pct(50) {
                        t.to_uppercase()
                    } else {
                        t.clone()
                    });
                }
            }
            pieces.push(tokens[n].clone());
            for i in (1..pieces.len()).rev() {
                let k = rng.below(i + 1);
                pieces.swap(i, k);
            }
            let file = format!("t{s:02}-{f}");
            intents.insert(file.clone(), format!("{expr}: {}", pieces.join(" ")));
            files.push((file, format!("{}\n", pieces.join("  ")).into_bytes()));
        }
    }
    differential(&[("text.ldb".to_owned(), ldb)], &files, &intents);
}

/// Regexes in streamed files (> 1 MiB, where moat runs them after the scan, reading the
/// file again, only when their trigger holds): triggers that hold or not, counts, the
/// `g` flag, offsets far into the file and from its end, against clamscan.
#[test]
fn regexes_in_streamed_files_against_clamscan() {
    if !moat_testkit::clamscan() {
        return;
    }
    let size = 3 << 20;
    // Where "Hello" is written in each file: early, in the second and third MiB, near
    // the end; none crosses a chunk boundary (a documented limit of streamed files).
    let hellos = [100usize, (1 << 20) + 4321, (2 << 20) + 777, size - 40];
    let mut ldb = String::new();
    let mut files = Vec::new();
    let mut intents = BTreeMap::new();
    let mut i = 0usize;
    for (count, trigger_present) in [("1", true), ("1", false), ("1=4", true), ("1>5", true)] {
        for offset in [
            "*",
            "100",
            "1048576,10000",
            "EOF-40",
            "EOF-41",
            "2097152,1000",
        ] {
            for flags in ["", "g", "r"] {
                let marker = [0xc0 + (i >> 7) as u8, 0x80 + (i & 0x7f) as u8, 0x99];
                let name = format!("ReBig.{i}");
                let _ = writeln!(
                    ldb,
                    "{name};Engine:81-255,Target:0;0&{count};{:02x}{:02x}{:02x};{offset}:0/Hello/{flags}",
                    marker[0], marker[1], marker[2]
                );
                let mut data = binary(&vec![b'.'; size]);
                if trigger_present {
                    data[50..53].copy_from_slice(&marker);
                }
                for &at in &hellos {
                    data[at..at + 5].copy_from_slice(b"Hello");
                }
                let file = format!("big{i:03}");
                intents.insert(
                    file.clone(),
                    format!("{offset}:0/Hello/{flags} {count} trigger {trigger_present}"),
                );
                files.push((file, data));
                i += 1;
            }
        }
    }
    differential(&[("rebig.ldb".to_owned(), ldb)], &files, &intents);
}
