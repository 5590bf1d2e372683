//! Scanning inside containers: a marker signature in a member is found, in every
//! format (archives built here with the formats' writers), nested, and within the
//! limits; bombs and damaged archives end with a clear result and bounded memory.

use std::io::{Cursor, Read, Seek, SeekFrom, Write};
use std::path::Path;

use moat_engine::containers::Exceeded;
use moat_engine::{Engine, Limits, ScanOutcome, Scanner, Verdict};
use moat_sigs::Database;

/// Built at run time, so no file in the repository carries the marker itself.
fn marker() -> Vec<u8> {
    let mut m = b"MOAT-UNPACK-".to_vec();
    m.extend_from_slice(b"TEST-MARKER");
    m
}

fn engine() -> Engine {
    let hex: String = marker().iter().map(|b| format!("{b:02x}")).collect();
    let ndb = format!("Test.Marker:0:*:{hex}\n");
    Engine::new(Database::from_text(Path::new("t.ndb"), &ndb).unwrap())
}

/// Some bytes with the marker in the middle.
fn infected() -> Vec<u8> {
    let mut data = vec![b'a'; 3000];
    data.extend(marker());
    data.extend(vec![b'b'; 3000]);
    data
}

fn scan_with<'e>(engine: &'e Engine, data: &[u8], limits: Limits) -> ScanOutcome<'e> {
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(data).unwrap();
    file.seek(SeekFrom::Start(0)).unwrap();
    Scanner::new(engine, limits).scan_file(&file).unwrap()
}

fn scan<'e>(engine: &'e Engine, data: &[u8]) -> Verdict<'e> {
    scan_with(engine, data, Limits::default()).verdict
}

fn zip_of(members: &[(&str, &[u8])], method: zip::CompressionMethod) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(method)
        .large_file(false);
    for (name, data) in members {
        w.start_file(*name, options).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn tar_of(name: &str, data: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, name, data).unwrap();
    b.into_inner().unwrap()
}

#[test]
fn a_marker_in_a_member_is_found_in_every_format() {
    let e = engine();
    let payload = infected();
    // The marker is not visible in the raw bytes of any of these.
    assert!(scan(&e, &payload).is_infected());
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "zip stored",
            zip_of(&[("a.txt", &payload)], zip::CompressionMethod::Stored),
        ),
        (
            "zip deflate",
            zip_of(&[("a.txt", &payload)], zip::CompressionMethod::Deflated),
        ),
        (
            "zip bzip2",
            zip_of(&[("a.txt", &payload)], zip::CompressionMethod::Bzip2),
        ),
        ("gzip", gzip(&payload)),
        ("tar.gz", gzip(&tar_of("a.txt", &payload))),
    ];
    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
    bz.write_all(&payload).unwrap();
    cases.push(("bzip2", bz.finish().unwrap()));
    let mut xz =
        lzma_rust2::XzWriter::new(Vec::new(), lzma_rust2::XzOptions::with_preset(1)).unwrap();
    xz.write_all(&payload).unwrap();
    cases.push(("xz", xz.finish().unwrap()));
    let mut sz = sevenz_rust2::ArchiveWriter::new(Cursor::new(Vec::new())).unwrap();
    sz.push_archive_entry(
        sevenz_rust2::ArchiveEntry::new_file("a.txt"),
        Some(Cursor::new(payload.clone())),
    )
    .unwrap();
    cases.push(("7z", sz.finish().unwrap().into_inner()));
    cases.push(("cpio newc", cpio_newc("a.txt", &payload)));
    let b64 = base64(&payload);
    let mail = format!(
        "From: a@example.com\r\nTo: b@example.com\r\nSubject: hi\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"XX\"\r\n\r\npreamble\r\n--XX\r\n\
         Content-Type: text/plain\r\n\r\nhello\r\n--XX\r\nContent-Type: application/octet-stream\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{b64}\r\n--XX--\r\n"
    );
    cases.push(("mail base64", mail.into_bytes()));
    let nested = zip_of(
        &[("in.tgz", &gzip(&tar_of("a.txt", &payload)))],
        zip::CompressionMethod::Deflated,
    );
    cases.push(("zip of tar.gz", nested));
    for (what, data) in &cases {
        let raw_hit = data.windows(marker().len()).any(|w| w == marker());
        let verdict = scan(&e, data);
        assert_eq!(
            verdict,
            Verdict::Infected("Test.Marker.UNOFFICIAL"),
            "{what} (raw hit: {raw_hit})"
        );
    }
}

fn cpio_newc(name: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut entry = |name: &str, data: &[u8], mode: u32| {
        let namesize = name.len() + 1;
        out.extend(
            format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            1, mode, 0, 0, 1, 0, data.len(), 0, 0, 0, 0, namesize, 0
        )
            .as_bytes(),
        );
        out.extend(name.as_bytes());
        out.push(0);
        while out.len() % 4 != 0 {
            out.push(0);
        }
        out.extend(data);
        while out.len() % 4 != 0 {
            out.push(0);
        }
    };
    entry(name, data, 0o100644);
    entry("TRAILER!!!", b"", 0);
    out
}

fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for (i, c) in data.chunks(3).enumerate() {
        let v = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for k in 0..4 {
            s.push(if k <= c.len() {
                A[(v >> (18 - 6 * k) & 63) as usize] as char
            } else {
                '='
            });
        }
        if i % 19 == 18 {
            s.push_str("\r\n");
        }
    }
    s
}

/// `levels` zips, each holding the one below: the marker at depth `levels`.
fn nested(levels: usize) -> Vec<u8> {
    let mut data = infected();
    for i in 0..levels {
        data = zip_of(
            &[(&format!("l{i}"), &data)],
            zip::CompressionMethod::Deflated,
        );
    }
    data
}

#[test]
fn max_recursion_is_honoured() {
    let e = engine();
    let data = nested(4);
    let limits = |n| Limits {
        max_recursion: Some(n),
        ..Limits::default()
    };
    assert!(scan_with(&e, &data, limits(5)).verdict.is_infected());
    let deep = scan_with(&e, &data, limits(4));
    assert_eq!(deep.verdict, Verdict::Clean);
    assert_eq!(deep.exceeded, Some(Exceeded::MaxRecursion));
    let alert = Limits {
        alert_exceeds_max: true,
        ..limits(4)
    };
    assert_eq!(
        scan_with(&e, &data, alert).verdict,
        Verdict::Infected("Heuristics.Limits.Exceeded.MaxRecursion")
    );
    // The default (17) reaches far deeper than this.
    assert!(scan(&e, &nested(12)).is_infected());
}

#[test]
fn max_files_is_honoured_and_counts_the_file_itself() {
    let e = engine();
    let payload = infected();
    let data = zip_of(
        &[("a", b"clean one"), ("b", b"clean two"), ("c", &payload)],
        zip::CompressionMethod::Deflated,
    );
    let limits = |n| Limits {
        max_files: Some(n),
        ..Limits::default()
    };
    let three = scan_with(&e, &data, limits(3));
    assert_eq!(three.verdict, Verdict::Clean);
    assert_eq!(three.exceeded, Some(Exceeded::MaxFiles));
    assert!(scan_with(&e, &data, limits(4)).verdict.is_infected());
}

#[test]
fn max_scan_size_ends_the_scan_and_max_file_size_skips_a_member() {
    let e = engine();
    let payload = infected();
    let zeros = vec![0u8; 1 << 20];
    let data = zip_of(
        &[("z1", &zeros), ("z2", &zeros), ("c", &payload)],
        zip::CompressionMethod::Deflated,
    );
    let total = data.len() as u64 + 2 * (1 << 20) + payload.len() as u64;
    let scan_size = |n| Limits {
        max_scan_size: Some(n),
        ..Limits::default()
    };
    assert!(scan_with(&e, &data, scan_size(total)).verdict.is_infected());
    let short = scan_with(&e, &data, scan_size(total - 1));
    assert_eq!(short.verdict, Verdict::Clean);
    assert_eq!(short.exceeded, Some(Exceeded::MaxScanSize));
    // Members over MaxFileSize are skipped; the small one after them is scanned.
    let file_size = Limits {
        max_file_size: Some(100_000),
        ..Limits::default()
    };
    let found = scan_with(&e, &data, file_size);
    assert!(found.verdict.is_infected());
}

/// Peak resident memory of this process, from /proc.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[test]
fn a_nested_zip_bomb_ends_at_max_scan_size_with_bounded_memory() {
    let e = engine();
    // 16 copies of 8 MiB of zeros, zipped; then 16 copies of that, twice: 16^3 *
    // 8 MiB = 32 GiB if expanded, from a file of about 33 MB.
    let zeros = vec![0u8; 8 << 20];
    let mut level = zip_of(
        &(0..16)
            .map(|i| (format!("z{i}"), &zeros[..]))
            .collect::<Vec<_>>()
            .iter()
            .map(|(n, d)| (n.as_str(), *d))
            .collect::<Vec<_>>(),
        zip::CompressionMethod::Deflated,
    );
    drop(zeros);
    for _ in 0..2 {
        let names: Vec<String> = (0..16).map(|i| format!("b{i}.zip")).collect();
        let members: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &level[..])).collect();
        level = zip_of(&members, zip::CompressionMethod::Stored);
    }
    assert!(level.len() < 50 << 20, "bomb is {} bytes", level.len());
    let limits = Limits {
        max_scan_size: Some(64 << 20),
        ..Limits::default()
    };
    let outcome = scan_with(&e, &level, limits);
    assert_eq!(outcome.verdict, Verdict::Clean);
    assert_eq!(outcome.exceeded, Some(Exceeded::MaxScanSize));
    assert!(outcome.bytes_scanned <= 64 << 20);
    assert!(peak_rss() < 1 << 30, "peak RSS {} bytes", peak_rss());
}

#[test]
fn a_gzip_expanding_past_10_gb_stops_at_max_scan_size() {
    let e = engine();
    // One member of 64 MiB of zeros, concatenated 161 times: a valid multi-member
    // gzip of about 10 GiB once expanded, about 10 MB on disk.
    let member = gzip(&vec![0u8; 64 << 20]);
    let mut data = Vec::with_capacity(member.len() * 161);
    for _ in 0..161 {
        data.extend_from_slice(&member);
    }
    let limits = Limits {
        max_scan_size: Some(96 << 20),
        max_file_size: Some(400 << 20),
        ..Limits::default()
    };
    let outcome = scan_with(&e, &data, limits);
    assert_eq!(outcome.verdict, Verdict::Clean);
    assert_eq!(outcome.exceeded, Some(Exceeded::MaxScanSize));
    assert!(outcome.bytes_scanned <= 96 << 20);
    assert!(peak_rss() < 1 << 30, "peak RSS {} bytes", peak_rss());
}

#[test]
fn damaged_archives_do_not_panic_and_what_was_read_is_scanned() {
    let e = engine();
    let payload = infected();
    // A gzip cut half way: the marker, early in the data, is found (as clamscan does).
    let mut big = payload.clone();
    big.extend((0..200_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8));
    let gz = gzip(&big);
    assert!(scan(&e, &gz[..gz.len() / 2]).is_infected());
    // A zip without its central directory: the local headers are walked.
    let z = zip_of(
        &[("a", b"clean"), ("b", &big)],
        zip::CompressionMethod::Deflated,
    );
    assert!(scan(&e, &z[..z.len() - 30]).is_infected());
    // Every cut of a small archive: no panic.
    let small = zip_of(&[("a", &payload)], zip::CompressionMethod::Deflated);
    for cut in 0..small.len() {
        let _ = scan(&e, &small[..cut]);
    }
    let tgz = gzip(&tar_of("a", &payload));
    for cut in 0..tgz.len() {
        let _ = scan(&e, &tgz[..cut]);
    }
}

#[test]
fn clean_archives_are_clean() {
    let e = engine();
    let data = zip_of(
        &[("a", b"nothing here"), ("b", &vec![7u8; 5000])],
        zip::CompressionMethod::Deflated,
    );
    let outcome = scan_with(&e, &data, Limits::default());
    assert_eq!(outcome.verdict, Verdict::Clean);
    assert_eq!(outcome.exceeded, None);
    assert_eq!(outcome.bytes_scanned, data.len() as u64 + 12 + 5000);
    let mut read = Vec::new();
    Cursor::new(&data).read_to_end(&mut read).unwrap();
}

#[test]
fn a_7z_of_large_members_stops_at_max_scan_size() {
    let e = engine();
    let zeros = vec![0u8; 2 << 20];
    let mut sz = sevenz_rust2::ArchiveWriter::new(Cursor::new(Vec::new())).unwrap();
    for i in 0..4 {
        sz.push_archive_entry(
            sevenz_rust2::ArchiveEntry::new_file(&format!("z{i}")),
            Some(Cursor::new(&zeros[..])),
        )
        .unwrap();
    }
    sz.push_archive_entry(
        sevenz_rust2::ArchiveEntry::new_file("last"),
        Some(Cursor::new(infected())),
    )
    .unwrap();
    let data = sz.finish().unwrap().into_inner();
    let limits = Limits {
        max_scan_size: Some(3 << 20),
        ..Limits::default()
    };
    let outcome = scan_with(&e, &data, limits);
    assert_eq!(outcome.verdict, Verdict::Clean);
    assert_eq!(outcome.exceeded, Some(Exceeded::MaxScanSize));
    assert!(outcome.bytes_scanned <= 3 << 20);
    // Within the limit, the last member is reached and found.
    assert!(scan(&e, &data).is_infected());
}
