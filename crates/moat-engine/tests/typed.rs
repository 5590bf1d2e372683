//! Target types 1-12, executable-relative offsets, section hashes and the HTML pass,
//! in memory and streamed (files over 1 MiB, whose headers are read with pread).

use std::io::{Seek, Write};
use std::path::Path;

use md5::Digest as _;
use moat_engine::{Engine, Limits, Scanner, Verdict};
use moat_sigs::Database;

fn engine(path: &str, text: &str) -> Engine {
    Engine::new(Database::from_text(Path::new(path), text).unwrap())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A PE32 of `len` bytes: one section (RVA 0x1000, raw 0x200, raw size `len - 0x200`),
/// entry point RVA 0x1010 (file offset 0x210), bytes above 0x7f throughout the body.
fn pe(len: usize) -> Vec<u8> {
    let body: Vec<u8> = (0..len - 0x200)
        .map(|i| 0x80 | (i * 13 % 127) as u8)
        .collect();
    moat_testkit::pe32(&body)
}

fn scan_file<'e>(engine: &'e Engine, data: &[u8]) -> Verdict<'e> {
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(data).unwrap();
    file.rewind().unwrap();
    let mut scanner = Scanner::new(engine, Limits::default());
    scanner.scan_file(&file).unwrap().verdict
}

#[test]
fn typed_signatures_match_their_file_type_only() {
    let e = engine(
        "t.ndb",
        "Pe:1:*:e1e2e3e4\nElf:6:*:e1e2e3e4\nGif:5:*:e1e2e3e4\nPdf:10:*:e1e2e3e4\n",
    );
    let body = b" xx \xe1\xe2\xe3\xe4 yy";
    let with = |head: &[u8]| [head, &body[..]].concat();
    assert_eq!(
        e.scan_bytes(&with(b"MZ")),
        Verdict::Infected("Pe.UNOFFICIAL")
    );
    assert_eq!(
        e.scan_bytes(&with(b"\x7fELF")),
        Verdict::Infected("Elf.UNOFFICIAL")
    );
    assert_eq!(
        e.scan_bytes(&with(b"GIF89a")),
        Verdict::Infected("Gif.UNOFFICIAL")
    );
    assert_eq!(
        e.scan_bytes(&with(b"xx\n%PDF-1.4")),
        Verdict::Infected("Pdf.UNOFFICIAL")
    );
    assert_eq!(e.scan_bytes(&with(b"plain")), Verdict::Clean);
    assert_eq!(e.scan_bytes(&with(b"PK\x03\x04")), Verdict::Clean);
}

#[test]
fn typed_before_generic_before_hashes() {
    let data = pe(0x400);
    let md5 = hex(&md5::Md5::digest(&data));
    let at_ep = hex(&data[0x210..0x214]);
    let db = format!("G:0:*:{at_ep}\nT:1:*:{at_ep}\n");
    assert_eq!(
        engine("x.ndb", &db).scan_bytes(&data),
        Verdict::Infected("T.UNOFFICIAL")
    );
    let e = engine("x.hdb", &format!("{md5}:1024:H\n"));
    assert_eq!(e.scan_bytes(&data), Verdict::Infected("H.UNOFFICIAL"));
}

#[test]
fn entry_point_and_section_offsets_in_memory_and_streamed() {
    for len in [0x400usize, (1 << 20) + 0x1000] {
        let data = pe(len);
        let at = |o: usize| hex(&data[o..o + 4]);
        let cases = [
            (format!("A:1:EP+0:{}", at(0x210)), true),
            (format!("A:1:EP+1:{}", at(0x210)), false),
            (format!("A:1:EP-8:{}", at(0x208)), true),
            (format!("A:1:EP+0,8:{}", at(0x215)), true),
            (format!("A:1:S0+0:{}", at(0x200)), true),
            (format!("A:1:S0+3:{}", at(0x200)), false),
            (format!("A:1:S1+0:{}", at(0x200)), false),
            (format!("A:1:SL+16:{}", at(0x210)), true),
            (format!("A:1:SE0:{}", at(len - 8)), true),
            (format!("A:6:EP+0:{}", at(0x210)), false),
        ];
        for (sig, hit) in cases {
            let e = engine("x.ndb", &format!("{sig}\n"));
            let expected = if hit {
                Verdict::Infected("A.UNOFFICIAL")
            } else {
                Verdict::Clean
            };
            assert_eq!(scan_file(&e, &data), expected, "{sig} on {len} bytes");
            if len <= 0x400 {
                assert_eq!(e.scan_bytes(&data), expected, "{sig} in memory");
            }
        }
    }
}

#[test]
fn section_hashes_in_memory_and_streamed() {
    for len in [0x400usize, (1 << 20) + 0x1000] {
        let data = pe(len);
        let section = &data[0x200..];
        let md5 = hex(&md5::Md5::digest(section));
        let size = section.len();
        let e = engine("x.mdb", &format!("{size}:{md5}:Sec\n"));
        assert_eq!(scan_file(&e, &data), Verdict::Infected("Sec.UNOFFICIAL"));
        let e = engine("x.mdb", &format!("{}:{md5}:Sec\n", size + 1));
        assert_eq!(scan_file(&e, &data), Verdict::Clean);
        // Not a PE: no sections to hash.
        let mut other = data.clone();
        other[..2].copy_from_slice(b"ZM");
        let e = engine("x.mdb", &format!("*:{md5}:Sec:73\n"));
        assert_eq!(scan_file(&e, &data), Verdict::Infected("Sec.UNOFFICIAL"));
        assert_eq!(scan_file(&e, &other), Verdict::Clean);
    }
}

#[test]
fn html_files_are_matched_through_their_normalized_copy() {
    let page =
        b"<html><body>HELLO   &#119;orld<!-- COMMENT --><script>VAR  X=1;</script></body></html>\n";
    let cases = [
        ("A:3:*:68656c6c6f", true),             // hello
        ("A:3:*:48454c4c4f", false),            // HELLO (raw)
        ("A:0:*:48454c4c4f", false),            // raw target 0: not for HTML files
        ("A:3:*:68656c6c6f20776f726c64", true), // hello world
        ("A:3:*:636f6d6d656e74", false),        // comment
        ("A:3:*:76617220783d313b", true),       // var x=1;
        ("A:7:*:766172", true),                 // var, in the script
        ("A:7:*:68656c6c6f", false),            // hello, outside scripts
    ];
    for (sig, hit) in cases {
        let e = engine("x.ndb", &format!("{sig}\n"));
        let expected = if hit {
            Verdict::Infected("A.UNOFFICIAL")
        } else {
            Verdict::Clean
        };
        assert_eq!(e.scan_bytes(page), expected, "{sig}");
    }
    // Not an HTML tag spelling: a text file, raw bytes matched.
    let e = engine("x.ndb", "A:0:*:48454c4c4f\n");
    assert_eq!(
        e.scan_bytes(b"xx HELLO yy <IfRaMe\n"),
        Verdict::Infected("A.UNOFFICIAL")
    );
}

#[test]
fn html_and_mail_stream_as_they_scan_in_memory() {
    let e = engine(
        "x.ndb",
        "Up:0:*:48454c4c4f\nT3:3:*:68656c6c6f20776f726c64\nT7:7:*:626f6479\n",
    );
    let mut big_page = b"<html><body>".to_vec();
    big_page.extend(std::iter::repeat_n(b'a', 1 << 21));
    big_page.extend_from_slice(b" HELLO   world</body></html>");
    let mail = b"Received: b\nSubject: x\n\nsome body text\n".to_vec();
    for data in [&big_page, &mail] {
        let whole = e.scan_bytes(data);
        for chunk in [1024, 4096, 1 << 20] {
            let mut buffer = Vec::new();
            let (streamed, read) = e
                .scan_stream(
                    &data[..],
                    data.len() as u64,
                    chunk,
                    &mut buffer,
                    &Limits::default(),
                )
                .unwrap();
            assert_eq!(read, data.len() as u64);
            assert_eq!(streamed, whole, "chunk {chunk}");
        }
        assert_eq!(scan_file(&e, data), whole);
    }
    assert_eq!(e.scan_bytes(&big_page), Verdict::Infected("T3.UNOFFICIAL"));
    assert_eq!(e.scan_bytes(&mail), Verdict::Infected("T7.UNOFFICIAL"));
}

#[test]
fn nested_mail_bodies_stop_at_the_recursion_limit() {
    let e = engine("x.ndb", "T7:7:*:626f6479\n");
    let deep = b"From: a\n\n".repeat(200_000);
    assert_eq!(e.scan_bytes(&deep), Verdict::Clean);
    let mut two = b"From: a\n\nFrom: b\n\n".to_vec();
    two.extend_from_slice(b"some body text\n");
    assert_eq!(e.scan_bytes(&two), Verdict::Infected("T7.UNOFFICIAL"));
}

#[test]
fn small_chunks_type_the_file_from_its_whole_head() {
    // A tag far from the start, an executable offset: the same verdicts streamed with
    // small chunks (and positioned reads) as in memory.
    let e = engine(
        "x.ndb",
        "Up:0:*:48454c4c4f\nT3:3:*:68656c6c6f\nEp:1:EP+0:e1e2e3e4\n",
    );
    let mut page = vec![b'a'; 5000];
    page.extend_from_slice(b" HELLO <iframe src=x>\n");
    let mut exe = pe(0x4000);
    exe[0x210..0x214].copy_from_slice(b"\xe1\xe2\xe3\xe4");
    for data in [&page, &exe] {
        let whole = e.scan_bytes(data);
        assert!(whole.is_infected());
        for chunk in [1024, 3000] {
            let mut buffer = Vec::new();
            let (streamed, _) = e
                .scan_stream_from(
                    &data[..],
                    Some(&data.as_slice()),
                    data.len() as u64,
                    chunk,
                    &mut buffer,
                    &Limits::default(),
                )
                .unwrap();
            assert_eq!(streamed, whole, "chunk {chunk}");
        }
    }
}
