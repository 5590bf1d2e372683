//! `Limits::parallel_from`: the normalized-text pass run beside the raw pass must give
//! exactly the verdict of one thread, in ClamAV's order (a raw detection before a
//! normalized one), for content held in memory and streamed, small and large.

use std::path::{Path, PathBuf};

use moat_engine::{Engine, Limits, Scanner, Verdict};
use moat_sigs::Database;

/// A target-0 signature on raw bytes, and a target-7 one on the normalized copy only
/// (the copy is lowercase: the raw upper-case text cannot match it).
const NDB: &str = "\
Raw.Marker:0:*:5241574d41524b4552
Text.Marker:7:*:6576696c2d6d61726b65722d736576656e
";
const RAW: &[u8] = b"RAWMARKER";
const TEXT: &[u8] = b"EVIL-MARKER-SEVEN";

fn engine() -> Engine {
    Engine::new(Database::from_text(Path::new("p.ndb"), NDB).unwrap())
}

fn limits(parallel_from: Option<u64>) -> Limits {
    Limits {
        parallel_from,
        ..Limits::default()
    }
}

/// Plain text of `len` bytes with `marks` placed at the given fractions of it.
fn text(len: usize, marks: &[(&[u8], f64)]) -> Vec<u8> {
    let line = b"the quick brown fox jumps over the lazy dog 0123456789\n";
    let mut data: Vec<u8> = line.iter().copied().cycle().take(len).collect();
    for (mark, at) in marks {
        let pos = ((len - mark.len()) as f64 * at) as usize;
        data[pos..pos + mark.len()].copy_from_slice(mark);
    }
    data
}

fn in_memory<'e>(engine: &'e Engine, data: &[u8], limits: &Limits) -> Verdict<'e> {
    engine.scan_bytes_with(data, limits)
}

fn streamed<'e>(engine: &'e Engine, data: &[u8], limits: &Limits) -> Verdict<'e> {
    let mut buffer = Vec::new();
    let (verdict, read) = engine
        .scan_stream(data, data.len() as u64, 64 << 10, &mut buffer, limits)
        .unwrap();
    assert_eq!(read, data.len() as u64);
    verdict
}

#[test]
fn both_passes_at_once_give_the_one_thread_verdict() {
    let engine = engine();
    type Marks<'a> = &'a [(&'a [u8], f64)];
    let cases: [(&str, Marks, Option<&str>); 5] = [
        ("clean", &[], None),
        (
            "normalized copy only",
            &[(TEXT, 0.5)],
            Some("Text.Marker.UNOFFICIAL"),
        ),
        ("raw only", &[(RAW, 0.9)], Some("Raw.Marker.UNOFFICIAL")),
        // ClamAV's order: the raw pass's detection wins over the normalized one.
        (
            "both",
            &[(TEXT, 0.1), (RAW, 0.95)],
            Some("Raw.Marker.UNOFFICIAL"),
        ),
        (
            "normalized, at the very end",
            &[(TEXT, 1.0)],
            Some("Text.Marker.UNOFFICIAL"),
        ),
    ];
    for len in [200, 40 << 10, 3 << 20] {
        for (what, marks, expected) in cases {
            let data = text(len, marks);
            let expected = expected.map_or(Verdict::Clean, Verdict::Infected);
            type Scan = for<'e> fn(&'e Engine, &[u8], &Limits) -> Verdict<'e>;
            for (how, scan) in [("in memory", in_memory as Scan), ("streamed", streamed)] {
                for parallel in [None, Some(0), Some(1 << 20)] {
                    let got = scan(&engine, &data, &limits(parallel));
                    assert_eq!(got, expected, "{what}, {len} bytes, {how}, {parallel:?}");
                }
            }
        }
    }
}

#[test]
fn large_files_read_through_the_scanner_agree() {
    let engine = engine();
    let dir = tempfile::tempdir().unwrap();
    for (name, marks, expected) in [
        ("clean.txt", &[][..], None),
        (
            "text.txt",
            &[(TEXT, 0.7)][..],
            Some("Text.Marker.UNOFFICIAL"),
        ),
        ("raw.txt", &[(RAW, 0.2)][..], Some("Raw.Marker.UNOFFICIAL")),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, text(5 << 20, marks)).unwrap();
        for parallel in [None, Some(0)] {
            let mut scanner = Scanner::new(&engine, limits(parallel));
            let got = scanner.scan_path(&path).unwrap().verdict;
            let want = expected.map_or(Verdict::Clean, Verdict::Infected);
            assert_eq!(got, want, "{name} with {parallel:?}");
        }
    }
}

/// ClamAV's real signatures on real text: the same verdict with and without the
/// parallel pass, on every file (skipped without ../shared).
#[test]
fn real_signatures_on_real_files_agree() {
    let Some(shared) = moat_testkit::real_sigs() else {
        return;
    };
    let db = Database::load(&[&shared]).unwrap();
    let engine = Engine::new(db);
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in [
        "/usr/share/clamav-testfiles",
        "/usr/share/doc/git",
        "/usr/share/perl5",
    ] {
        collect(Path::new(dir), &mut files, 400);
    }
    assert!(
        files.len() > 50,
        "too few real files found: {}",
        files.len()
    );
    let (mut one, mut two) = (
        Scanner::new(&engine, limits(None)),
        Scanner::new(&engine, limits(Some(0))),
    );
    let mut detected = 0;
    for path in &files {
        let a = one.scan_path(path).map(|o| o.verdict).ok();
        let b = two.scan_path(path).map(|o| o.verdict).ok();
        assert_eq!(a, b, "{}", path.display());
        detected += usize::from(a.is_some_and(|v| v.is_infected()));
    }
    println!(
        "{} real files, {detected} detected, same verdicts",
        files.len()
    );
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>, max: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if out.len() >= max {
            return;
        }
        if path.is_dir() {
            collect(&path, out, max);
        } else if path.is_file() {
            out.push(path);
        }
    }
}
