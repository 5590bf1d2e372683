//! Streaming a file in chunks must give exactly the verdict of scanning it whole,
//! wherever the chunk boundaries fall (across atoms, parts, gaps and boundaries).

use std::path::Path;

use moat_engine::{Engine, Limits, Verdict};
use moat_sigs::Database;
use proptest::prelude::*;

/// Signatures with every construct that looks beyond its atom: multi-part gaps,
/// skips, alternates, boundaries, anchored bytes, end-relative offsets.
const NDB: &str = "\
Multi.Star:0:*:e1e2e3e4*f1f2f3f4
Multi.Range:0:*:a1a2a3{10-2000}b1b2b3
Multi.Three:0:*:c1c2*c3c4{-300}c5c6
Skip:0:*:d1d2{100}d3d4
Alt:0:*:9192(93|9394|959697)9899
Bound:0:*:(B)8182838485(B)
Anchor:0:*:71[5-30]727374
Eof:0:EOF-10:61626364
Shift:0:3000,5000:5152535455
Nibble:0:*:4a4b?c4d{-50}4e4f
";

fn engine() -> Engine {
    Engine::new(Database::from_text(Path::new("s.ndb"), NDB).unwrap())
}

fn stream<'e>(engine: &'e Engine, data: &[u8], chunk: usize) -> Verdict<'e> {
    let mut buffer = Vec::new();
    let (verdict, read) = engine
        .scan_stream(
            data,
            data.len() as u64,
            chunk,
            &mut buffer,
            &Limits::default(),
        )
        .unwrap();
    assert_eq!(read, data.len() as u64);
    verdict
}

/// Pieces that, strung together with random filler, make some signatures match.
const PIECES: &[&[u8]] = &[
    b"\xe1\xe2\xe3\xe4",
    b"\xf1\xf2\xf3\xf4",
    b"\xa1\xa2\xa3",
    b"\xb1\xb2\xb3",
    b"\xc1\xc2",
    b"\xc3\xc4",
    b"\xc5\xc6",
    b"\x91\x92\x94\x98\x99",
    b"\x91\x92\x93\x94\x98\x99",
    b" \x81\x82\x83\x84\x85-",
    b"\x71\x00\x00\x00\x00\x00\x00\x72\x73\x74",
    b"abcd",
    b"QRSTU",
    b"\x4a\x4b\x5c\x4d\x4e\x4f",
];

fn file() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        (0..PIECES.len()).prop_map(|i| PIECES[i].to_vec()),
        prop::collection::vec(any::<u8>(), 0..600),
        (0usize..4000).prop_map(|n| vec![b'x'; n]),
    ];
    prop::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn chunked_equals_whole(data in file(), chunk in 1usize..5000) {
        let engine = engine();
        prop_assert_eq!(stream(&engine, &data, chunk), engine.scan_bytes(&data));
    }
}

#[test]
fn matches_across_many_chunks() {
    let engine = engine();
    let mut data = vec![b'.'; 50_000];
    data[1000..1004].copy_from_slice(b"\xe1\xe2\xe3\xe4");
    data[45_000..45_004].copy_from_slice(b"\xf1\xf2\xf3\xf4");
    assert_eq!(
        engine.scan_bytes(&data),
        Verdict::Infected("Multi.Star.UNOFFICIAL")
    );
    for chunk in [1024, 1500, 4096, 65536] {
        assert_eq!(
            stream(&engine, &data, chunk),
            Verdict::Infected("Multi.Star.UNOFFICIAL")
        );
    }
    let mut tail = vec![b'.'; 30_000];
    let n = tail.len();
    tail[n - 10..n - 6].copy_from_slice(b"abcd");
    assert_eq!(
        stream(&engine, &tail, 1024),
        Verdict::Infected("Eof.UNOFFICIAL")
    );
}

#[test]
fn a_shrinking_file_is_read_to_its_real_end_without_error() {
    let engine = engine();
    let data = vec![b'z'; 10_000];
    let mut buffer = Vec::new();
    // The metadata said 20,000 bytes; only 10,000 arrive.
    let (verdict, read) = engine
        .scan_stream(&data[..], 20_000, 1024, &mut buffer, &Limits::default())
        .unwrap();
    assert_eq!((verdict, read), (Verdict::Clean, 10_000));
}

/// The generated files must exercise matches, not only clean data.
#[test]
fn generated_files_often_match() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let engine = engine();
    let mut runner = TestRunner::deterministic();
    let infected = (0..300)
        .filter(|_| {
            let data = file().new_tree(&mut runner).unwrap().current();
            engine.scan_bytes(&data).is_infected()
        })
        .count();
    assert!(
        infected > 60,
        "only {infected} of 300 generated files match something"
    );
}
