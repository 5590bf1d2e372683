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
