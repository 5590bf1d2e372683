//! Logical signatures in the engine: counts, modifiers, regexes, streaming, limits.

use std::path::Path;
use std::time::{Duration, Instant};

use moat_engine::{Engine, Limits, Verdict};
use moat_sigs::Database;

fn engine(ldb: &str) -> Engine {
    Engine::new(Database::from_text(Path::new("t.ldb"), ldb).unwrap())
}

/// Binary content (no normalized-text pass).
fn binary(body: &[u8]) -> Vec<u8> {
    [&[0x41, 0x42, 0, 1, 2, 3][..], body, &[0, 1]].concat()
}

#[test]
fn counts_and_modifiers() {
    let e = engine("C;Target:0;0=3;6161\nW;Target:0;0;780079007a00::i\nI;Target:0;0=2;717171::i\n");
    assert_eq!(
        e.scan_bytes(&binary(b"aaaa")),
        Verdict::Infected("C.UNOFFICIAL")
    );
    assert_eq!(e.scan_bytes(&binary(b"aaaaa")), Verdict::Clean);
    assert_eq!(
        e.scan_bytes(&binary(b"QqQ.qqq")),
        Verdict::Infected("I.UNOFFICIAL")
    );
    let e = engine("W;Target:0;0;78797a::w\nF;Target:0;0;666f6f::f\n");
    assert_eq!(
        e.scan_bytes(&binary(b"x\0y\0z\0")),
        Verdict::Infected("W.UNOFFICIAL")
    );
    assert_eq!(e.scan_bytes(&binary(b"xyz")), Verdict::Clean);
    assert_eq!(
        e.scan_bytes(&binary(b".foo.")),
        Verdict::Infected("F.UNOFFICIAL")
    );
    assert_eq!(e.scan_bytes(&binary(b".food")), Verdict::Clean);
}

#[test]
fn target_description_is_checked() {
    let e =
        engine("S;Engine:51-255,Target:0,FileSize:10-12;0;6161\nP;Engine:51-255,Target:1;0;6262\n");
    assert_eq!(
        e.scan_bytes(&binary(b"aa..")),
        Verdict::Infected("S.UNOFFICIAL")
    );
    assert_eq!(e.scan_bytes(&binary(b"aa.....")), Verdict::Clean);
    // Target 1 needs the file's type (not known to the engine yet): no match.
    assert_eq!(e.scan_bytes(&binary(b"bb......")), Verdict::Clean);
}

#[test]
fn regex_runs_with_its_trigger() {
    let e = engine("R;Engine:81-255,Target:0;0&1;6b6b;0/k[0-9]{3}/\nG;Engine:81-255,Target:0;0&1=3;6a6a;0/j[0-9]/g\n");
    assert_eq!(
        e.scan_bytes(&binary(b"kk k123")),
        Verdict::Infected("R.UNOFFICIAL")
    );
    assert_eq!(e.scan_bytes(&binary(b"k123")), Verdict::Clean);
    assert_eq!(
        e.scan_bytes(&binary(b"jj j1 j2 j3")),
        Verdict::Infected("G.UNOFFICIAL")
    );
    assert_eq!(e.scan_bytes(&binary(b"jj j1 j2")), Verdict::Clean);
}

#[test]
fn pathological_regex_does_not_hang() {
    let e = engine("P;Engine:81-255,Target:0;0&1;6161;0/(a+)+$/\n");
    let mut data = binary(&vec![b'a'; 100_000]);
    data.push(b'b');
    let start = Instant::now();
    let _ = e.scan_bytes(&data);
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn streamed_files_count_across_chunks() {
    let e = engine("S;Target:0;0=2&1;6d6f6174;0/zz[0-9]+zz/\n");
    let mut data = binary(&vec![b'.'; 3 << 20]);
    data[(1 << 20) - 2..(1 << 20) + 2].copy_from_slice(b"moat");
    data[2 << 20..(2 << 20) + 4].copy_from_slice(b"moat");
    data[(5 << 19)..(5 << 19) + 7].copy_from_slice(b"zz123zz");
    let mut buffer = Vec::new();
    let (v, read) = e
        .scan_stream(
            &data[..],
            data.len() as u64,
            1 << 20,
            &mut buffer,
            &Limits::default(),
        )
        .unwrap();
    assert_eq!(read, data.len() as u64);
    assert_eq!(v, Verdict::Infected("S.UNOFFICIAL"));
    assert_eq!(e.scan_bytes(&data), Verdict::Infected("S.UNOFFICIAL"));
}

#[test]
fn byte_compare_in_memory_and_streamed() {
    let e = engine("B;Engine:81-255,Target:0;0&1;6d6f6174;0(>>4#db5#=12345)\n");
    assert_eq!(
        e.scan_bytes(&binary(b"moat12345.")),
        Verdict::Infected("B.UNOFFICIAL")
    );
    // The trigger's last match is the reference.
    assert_eq!(
        e.scan_bytes(&binary(b"moat12345.moat99999")),
        Verdict::Clean
    );
    let mut data = binary(&vec![b'.'; 3 << 20]);
    data[(2 << 20) + 7..(2 << 20) + 16].copy_from_slice(b"moat12345");
    let mut buffer = Vec::new();
    let (v, _) = e
        .scan_stream(
            &data[..],
            data.len() as u64,
            1 << 20,
            &mut buffer,
            &Limits::default(),
        )
        .unwrap();
    assert_eq!(v, Verdict::Infected("B.UNOFFICIAL"));
    assert_eq!(e.scan_bytes(&data), Verdict::Infected("B.UNOFFICIAL"));
    // Across a chunk boundary, with the number 3000 bytes after the trigger.
    let e = engine("F;Engine:81-255,Target:0;0&1;6d6f6174;0(>>3000#db5#=12345)\n");
    let mut data = binary(&vec![b'.'; 3 << 20]);
    let at = (1 << 20) - 1000;
    data[at..at + 4].copy_from_slice(b"moat");
    data[at + 3000..at + 3005].copy_from_slice(b"12345");
    let (v, _) = e
        .scan_stream(
            &data[..],
            data.len() as u64,
            1 << 20,
            &mut buffer,
            &Limits::default(),
        )
        .unwrap();
    assert_eq!(v, Verdict::Infected("F.UNOFFICIAL"));
}

/// Body, logical and `::i` subsignatures share one prefilter pass per buffer: each
/// still sees every occurrence of its own atoms, 4-byte ones and short ones, at the
/// start of the data, inside it and in its last three bytes (where no 4-byte window
/// fits), whatever the other matchers of the pass hold.
#[test]
fn one_pass_serves_every_matcher() {
    let db = [
        ("t.ndb", "Body4:0:*:c1c2c3c4c5\nBody2:0:*:d1d2??d3\n"),
        (
            "t.ldb",
            "Two;Target:0;0&1;e1e2;e3e4e5\nNocase;Target:0;0=2;616263::i\nEnd;Target:0;0&1;f1f2f3f4;f5f6f7\n",
        ),
    ];
    let load = |files: &[(&str, &str)]| {
        let dir = tempfile::tempdir().unwrap();
        for (name, body) in files {
            std::fs::write(dir.path().join(name), body).unwrap();
        }
        Engine::new(Database::load(&[dir.path()]).unwrap())
    };
    let e = load(&db);
    let scan = |data: &[u8]| e.scan_bytes(data);
    let bin = |body: &[u8]| binary(body);
    assert_eq!(
        scan(&bin(b"\xc1\xc2\xc3\xc4\xc5")),
        Verdict::Infected("Body4.UNOFFICIAL")
    );
    assert_eq!(
        scan(&bin(b"\xd1\xd2.\xd3")),
        Verdict::Infected("Body2.UNOFFICIAL")
    );
    assert_eq!(
        scan(&bin(b"\xe1\xe2...\xe3\xe4\xe5")),
        Verdict::Infected("Two.UNOFFICIAL")
    );
    assert_eq!(scan(&bin(b"\xe1\xe2...\xe3\xe4")), Verdict::Clean);
    assert_eq!(
        scan(&bin(b"ABC..aBc")),
        Verdict::Infected("Nocase.UNOFFICIAL")
    );
    assert_eq!(scan(&bin(b"ABC..aBd")), Verdict::Clean);
    // The short subsignature as the file's last three bytes.
    let end = [&[0, 1, 2, 3, 4, 5][..], b"\xf1\xf2\xf3\xf4..\xf5\xf6\xf7"].concat();
    assert_eq!(scan(&end), Verdict::Infected("End.UNOFFICIAL"));
    assert_eq!(scan(&end[..end.len() - 1]), Verdict::Clean);
}

/// `::i` subsignatures are searched in the raw bytes in either case (their atoms'
/// case variants in the shared pass), and verified on a lowercased copy: 4-byte and
/// short atoms, a part chained after a gap, an offset-anchored first part and an
/// atom in the data's last bytes, each in mixed case, with near misses.
#[test]
fn nocase_atoms_match_in_any_case() {
    let e = engine(concat!(
        "Long;Target:0;0;6162636465::i\n",
        "Anchored;Target:0;0;0:41427a::i\n",
        "Chain;Target:0;0;6b6c6d6e*6f707172::i\n",
        "Tail;Target:0;0;737475::i\n",
    ));
    let scan = |data: &[u8]| e.scan_bytes(data);
    assert_eq!(
        scan(&binary(b"..aBcDe..")),
        Verdict::Infected("Long.UNOFFICIAL")
    );
    assert_eq!(scan(&binary(b"..aBcD.e..")), Verdict::Clean);
    // binary() starts with "AB": the anchored part is at offset 0 only.
    assert_eq!(
        scan(&[&b"abZ"[..], &[0, 1, 2, 3][..]].concat()),
        Verdict::Infected("Anchored.UNOFFICIAL")
    );
    assert_eq!(
        scan(&[&b".abZ"[..], &[0, 1, 2, 3][..]].concat()),
        Verdict::Clean
    );
    assert_eq!(
        scan(&binary(b"KlMn....oPqR")),
        Verdict::Infected("Chain.UNOFFICIAL")
    );
    assert_eq!(scan(&binary(b"oPqR....KlMn")), Verdict::Clean);
    let tail = [&[0, 1, 2, 3, 4, 5][..], b"sTU"].concat();
    assert_eq!(scan(&tail), Verdict::Infected("Tail.UNOFFICIAL"));
    assert_eq!(scan(&tail[..tail.len() - 1]), Verdict::Clean);
}
