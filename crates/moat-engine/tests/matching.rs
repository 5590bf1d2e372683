//! `Engine::scan_bytes` on crafted data, for every hex construct and offset form, against
//! the behaviour measured on clamscan 1.4.6 (docs/clamav-oracle.md, sections 1-6).
//!
//! Conventions (as in the oracle): `pad(DATA)` = `@@@@@@@@` + DATA + `@@@@@@@@`, so files
//! are at least 6 bytes. Signatures use bytes >= 0x80 where possible so that ClamAV's
//! normalized text copy (section 5) can never match them: raw semantics decide.
//!
//! Tests where moat disagrees with clamscan are written to clamscan's behaviour and
//! marked `#[ignore = "... disagrees with clamscan: ..."]`.

use std::fs;
use std::path::Path;

use md5::Md5;
use moat_engine::{Engine, Verdict, MIN_SCANNED_SIZE};
use moat_sigs::Database;
use sha1::Sha1;
use sha2::{Digest as _, Sha256};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// An engine from `.ndb` text.
fn ndb(text: &str) -> Engine {
    let db = Database::from_text(Path::new("t.ndb"), text)
        .unwrap_or_else(|e| panic!("{text:?} should load, got error: {e}"));
    Engine::new(db)
}

/// An engine with one signature `S:0:OFFSET:HEX`.
fn sig_at(offset: &str, hex: &str) -> Engine {
    ndb(&format!("S:0:{offset}:{hex}\n"))
}

/// An engine from several database files, loaded as one `-d DIR`.
fn dbs(files: &[(&str, &str)]) -> Engine {
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in files {
        fs::write(dir.path().join(name), content).unwrap();
    }
    let db = Database::load(&[dir.path()])
        .unwrap_or_else(|e| panic!("{files:?} should load, got error: {e}"));
    Engine::new(db)
}

fn found(engine: &Engine, data: &[u8]) -> Option<String> {
    match engine.scan_bytes(data) {
        Verdict::Infected(name) => Some(name.to_owned()),
        Verdict::Clean => None,
    }
}

#[track_caller]
fn yes_at(offset: &str, hex: &str, data: &[u8]) {
    let engine = sig_at(offset, hex);
    assert_eq!(
        found(&engine, data).as_deref(),
        Some("S.UNOFFICIAL"),
        "`S:0:{offset}:{hex}` should match {}",
        show(data)
    );
}

#[track_caller]
fn no_at(offset: &str, hex: &str, data: &[u8]) {
    let engine = sig_at(offset, hex);
    assert_eq!(
        found(&engine, data),
        None,
        "`S:0:{offset}:{hex}` should NOT match {}",
        show(data)
    );
}

#[track_caller]
fn yes(hex: &str, data: &[u8]) {
    yes_at("*", hex, data)
}

#[track_caller]
fn no(hex: &str, data: &[u8]) {
    no_at("*", hex, data)
}

/// Hex with optional spaces to bytes.
fn h(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    assert!(
        digits.chunks_exact(2).remainder().is_empty(),
        "odd hex {text:?}"
    );
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

/// `@@@@@@@@` + data + `@@@@@@@@`.
fn pad(data: &[u8]) -> Vec<u8> {
    let mut v = b"@@@@@@@@".to_vec();
    v.extend_from_slice(data);
    v.extend_from_slice(b"@@@@@@@@");
    v
}

fn cat(pieces: &[&[u8]]) -> Vec<u8> {
    pieces.concat()
}

/// `pad(aa bb + n zero bytes + cc dd)`.
fn gapped(n: usize) -> Vec<u8> {
    pad(&cat(&[&h("aabb"), &vec![0u8; n], &h("ccdd")]))
}

fn show(data: &[u8]) -> String {
    if data.len() > 64 {
        format!("{} bytes", data.len())
    } else {
        format!("{data:02x?}")
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn md5_hex(data: &[u8]) -> String {
    hex_of(&Md5::digest(data))
}

fn sha1_hex(data: &[u8]) -> String {
    hex_of(&Sha1::digest(data))
}

fn sha256_hex(data: &[u8]) -> String {
    hex_of(&Sha256::digest(data))
}

// ---------------------------------------------------------------------------------------
// Static bytes and byte/nibble wildcards
// ---------------------------------------------------------------------------------------

#[test]
fn static_bytes() {
    yes("aabbcc", &pad(&h("aabbcc")));
    yes("AABBCC", &pad(&h("aabbcc")));
    no("aabbcc", &pad(&h("aabbcd")));
    no("aabbcc", &pad(&h("abbbcc")));
    no("aabbcc", &pad(&h("aabacc")));
    no("aabbcc", &pad(&h("aabb")));
}

#[test]
fn static_bytes_at_file_edges() {
    yes("aabbcc", &cat(&[&h("aabbcc"), b"@@@"]));
    yes("aabbcc", &cat(&[b"@@@", &h("aabbcc")]));
    yes("aabbccddeeff", &h("aabbccddeeff"));
}

#[test]
fn every_single_byte_change_of_a_static_signature_misses() {
    let sig = h("aabbccddeeff1122");
    let engine = sig_at("*", &hex_of(&sig));
    assert!(found(&engine, &pad(&sig)).is_some());
    for i in 0..sig.len() {
        for delta in [1u8, 0x10, 0x80] {
            let mut bad = sig.clone();
            bad[i] = bad[i].wrapping_add(delta);
            assert_eq!(found(&engine, &pad(&bad)), None, "byte {i} + {delta:#x}");
        }
    }
}

#[test]
fn any_byte() {
    yes("aabb??ccdd", &pad(&h("aabb00ccdd")));
    yes("aabb??ccdd", &pad(&h("aabbffccdd")));
    no("aabb??ccdd", &pad(&h("aabbccdd")));
    no("aabb??ccdd", &pad(&h("aabb0000ccdd")));
}

#[test]
fn high_nibble() {
    yes("aabba?ccdd", &pad(&h("aabba5ccdd")));
    yes("aabba?ccdd", &pad(&h("aabba0ccdd")));
    yes("aabba?ccdd", &pad(&h("aabbafccdd")));
    no("aabba?ccdd", &pad(&h("aabbb5ccdd")));
    no("aabba?ccdd", &pad(&h("aabb95ccdd")));
}

#[test]
fn low_nibble() {
    yes("aabb?accdd", &pad(&h("aabb5accdd")));
    yes("aabb?accdd", &pad(&h("aabb0accdd")));
    no("aabb?accdd", &pad(&h("aabb5bccdd")));
    no("aabb?accdd", &pad(&h("aabb59ccdd")));
}

#[test]
fn leading_and_trailing_wildcards_need_real_bytes() {
    // `??aabbcc` needs one byte before, `{2}aabbcc` two; `aabbcc??` one after, `aabbcc{2}` two.
    let at_start = cat(&[&h("aabbcc"), b"@@@@@@"]);
    no("??aabbcc", &at_start);
    no("{2}aabbcc", &at_start);
    yes("??aabbcc", &cat(&[b"@", &at_start]));
    no("{2}aabbcc", &cat(&[b"@", &at_start]));
    yes("{2}aabbcc", &cat(&[b"@@", &at_start]));

    let at_end = cat(&[b"@@@@@@", &h("aabbcc")]);
    no("aabbcc??", &at_end);
    no("aabbcc{2}", &at_end);
    yes("aabbcc??", &cat(&[&at_end, b"@"]));
    no("aabbcc{2}", &cat(&[&at_end, b"@"]));
    yes("aabbcc{2}", &cat(&[&at_end, b"@@"]));
}

// ---------------------------------------------------------------------------------------
// Gaps
// ---------------------------------------------------------------------------------------

#[test]
fn star_gap_is_unbounded() {
    yes("aabb*ccdd", &gapped(0));
    yes("aabb*ccdd", &gapped(4));
    yes("aabb*ccdd", &gapped(100_000));
    no("aabb*ccdd", &pad(&h("ccddaabb")));
    no("aabb*ccdd", &pad(&h("aabb")));
}

#[test]
fn fixed_small_gap_is_exact() {
    no("aabb{2}ccdd", &gapped(1));
    yes("aabb{2}ccdd", &gapped(2));
    no("aabb{2}ccdd", &gapped(3));
    yes("aabb{0}ccdd", &gapped(0));
    no("aabb{0}ccdd", &gapped(1));
    no("aabb{127}ccdd", &gapped(126));
    yes("aabb{127}ccdd", &gapped(127));
    no("aabb{127}ccdd", &gapped(128));
}

#[test]
fn fixed_large_gap_is_exact() {
    for n in [128usize, 200, 5000] {
        let sig = format!("aabb{{{n}}}ccdd");
        no(&sig, &gapped(n - 1));
        yes(&sig, &gapped(n));
        no(&sig, &gapped(n + 1));
    }
}

#[test]
fn up_to_gap() {
    yes("aabb{-2}ccdd", &gapped(0));
    yes("aabb{-2}ccdd", &gapped(1));
    yes("aabb{-2}ccdd", &gapped(2));
    no("aabb{-2}ccdd", &gapped(3));
}

#[test]
fn at_least_gap() {
    no("aabb{2-}ccdd", &gapped(1));
    yes("aabb{2-}ccdd", &gapped(2));
    yes("aabb{2-}ccdd", &gapped(500));
    yes("aabb{5-}ccdd", &gapped(5));
    no("aabb{5-}ccdd", &gapped(4));
    yes("aabb{0-}ccdd", &gapped(0));
}

#[test]
fn between_gap_is_inclusive() {
    no("aabb{2-4}ccdd", &gapped(1));
    yes("aabb{2-4}ccdd", &gapped(2));
    yes("aabb{2-4}ccdd", &gapped(3));
    yes("aabb{2-4}ccdd", &gapped(4));
    no("aabb{2-4}ccdd", &gapped(5));
    yes("aabb{0-2}ccdd", &gapped(0));
    no("aabb{0-2}ccdd", &gapped(3));
    yes("aabb{130-140}ccdd", &gapped(130));
    yes("aabb{130-140}ccdd", &gapped(140));
    no("aabb{130-140}ccdd", &gapped(129));
    no("aabb{130-140}ccdd", &gapped(141));
}

#[test]
fn inverted_gap_never_matches() {
    for n in 0..=6 {
        no("aabb{4-2}ccdd", &gapped(n));
    }
}

#[test]
fn gap_with_later_second_part_still_matches() {
    // A first occurrence that is too far must not hide a later valid one.
    let data = pad(&cat(&[
        &h("aabb"),
        &[0u8; 10],
        &h("aabb"),
        &[0u8; 2],
        &h("ccdd"),
    ]));
    yes("aabb{2-4}ccdd", &data);
    no("aabb{5-8}ccdd", &data);
}

#[test]
fn three_parts() {
    let sig = "aabb{2-3}ccdd*eeff";
    yes(sig, &pad(&h("aabb 0000 ccdd 00000000 eeff")));
    yes(sig, &pad(&h("aabb 000000 ccdd eeff")));
    no(sig, &pad(&h("aabb 00000000 ccdd eeff")));
    no(sig, &pad(&h("aabb 0000 eeff ccdd")));
}

#[test]
fn parts_never_overlap() {
    no("aabb*aabb", &pad(&h("aabb")));
    yes("aabb*aabb", &pad(&h("aabbaabb")));
    no("aabb*bbcc", &pad(&h("aabbcc")));
    no("aabb{-2}bbcc", &pad(&h("aabbcc")));
    yes("aabb{-2}bbcc", &pad(&h("aabbbbcc")));
}

#[test]
fn large_gap_crossing_many_bytes() {
    let mut data = vec![0u8; 200_000];
    data[10..12].copy_from_slice(&h("aabb"));
    data[150_000..150_002].copy_from_slice(&h("ccdd"));
    yes("aabb*ccdd", &data);
    yes("aabb{149988}ccdd", &data);
    no("aabb{149989}ccdd", &data);
    yes("aabb{149000-150000}ccdd", &data);
    no("aabb{-149000}ccdd", &data);
}

// ---------------------------------------------------------------------------------------
// Alternates
// ---------------------------------------------------------------------------------------

#[test]
fn single_byte_alternates() {
    yes("aabb(cc|dd)eeff", &pad(&h("aabbcceeff")));
    yes("aabb(cc|dd)eeff", &pad(&h("aabbddeeff")));
    no("aabb(cc|dd)eeff", &pad(&h("aabb00eeff")));
    no("aabb(cc|dd)eeff", &pad(&h("aabbeeff")));
}

#[test]
fn negated_single_byte_alternates() {
    no("aabb!(cc|dd)eeff", &pad(&h("aabbcceeff")));
    no("aabb!(cc|dd)eeff", &pad(&h("aabbddeeff")));
    yes("aabb!(cc|dd)eeff", &pad(&h("aabb00eeff")));
    no("aabb!(cc|dd)eeff", &pad(&h("aabbeeff")));
}

#[test]
fn multi_byte_alternates() {
    yes("aabb(ccdd|eeff)1122", &pad(&h("aabbccdd1122")));
    yes("aabb(ccdd|eeff)1122", &pad(&h("aabbeeff1122")));
    no("aabb(ccdd|eeff)1122", &pad(&h("aabbccff1122")));
    no("aabb(ccdd|eeff)1122", &pad(&h("aabbcc1122")));
}

#[test]
fn negated_multi_byte_alternates() {
    // Negation = "not equal to any alternative", same length.
    no("aabb!(ccdd|eeff)1122", &pad(&h("aabbccdd1122")));
    no("aabb!(ccdd|eeff)1122", &pad(&h("aabbeeff1122")));
    yes("aabb!(ccdd|eeff)1122", &pad(&h("aabbccff1122")));
    yes("aabb!(ccdd|eeff)1122", &pad(&h("aabb00001122")));
    no("aabb!(ccdd|eeff)1122", &pad(&h("aabb001122")));
}

#[test]
fn generic_alternates_of_different_lengths() {
    yes("aabb(cc|ddee)1122", &pad(&h("aabbcc1122")));
    yes("aabb(ddee|cc)1122", &pad(&h("aabbcc1122")));
    yes("aabb(ddee|cc)1122", &pad(&h("aabbddee1122")));
    no("aabb(ddee|cc)1122", &pad(&h("aabbdd1122")));
    no("aabb(ddee|cc)1122", &pad(&h("aabbee1122")));
}

#[test]
fn generic_alternates_short_first_long_alternative_matches() {
    yes("aabb(cc|ddee)1122", &pad(&h("aabbddee1122")));
    no("aabb(cc|ddee)1122", &pad(&h("aabbdd1122")));
}

#[test]
fn generic_alternates_with_wildcards() {
    yes("aabb(c?|dd)1122", &pad(&h("aabbc51122")));
    yes("aabb(c?|dd)1122", &pad(&h("aabbdd1122")));
    no("aabb(c?|dd)1122", &pad(&h("aabbd51122")));
    yes("aabb(cc??|dd11)2233", &pad(&h("aabbcc002233")));
    yes("aabb(cc??|dd11)2233", &pad(&h("aabbdd112233")));
    no("aabb(cc??|dd11)2233", &pad(&h("aabbdd002233")));
    yes("aabb(??cc|dd11)2233", &pad(&h("aabb00cc2233")));
    no("aabb(??cc|dd11)2233", &pad(&h("aabb00dd2233")));
    yes("aabb(cc|dd{1}ee)1122", &pad(&h("aabbdd00ee1122")));
    yes("aabb(cc|dd{1}ee)1122", &pad(&h("aabbcc1122")));
    no("aabb(cc|dd{1}ee)1122", &pad(&h("aabbddee1122")));
}

#[test]
fn alternates_at_edges_and_adjacent() {
    yes("(aa|bb)ccdd", &pad(&h("aaccdd")));
    yes("(aa|bb)ccdd", &pad(&h("bbccdd")));
    no("(aa|bb)ccdd", &pad(&h("ccccdd")));
    yes("ccdd(aa|bb)", &pad(&h("ccddbb")));
    no("ccdd(aa|bb)", &pad(&h("ccddcc")));
    yes("(aa|bb)(cc|dd)eeff", &pad(&h("bbcceeff")));
    yes("(aa|bb)(cc|dd)eeff", &pad(&h("aaddeeff")));
    no("(aa|bb)(cc|dd)eeff", &pad(&h("aaaaeeff")));
    for x in ["cc", "dd", "ee", "ff"] {
        yes("aabb(cc|dd|ee|ff)1122", &pad(&h(&format!("aabb{x}1122"))));
    }
    no("aabb(cc|dd|ee|ff)1122", &pad(&h("aabb001122")));
}

#[test]
fn single_alternative_group() {
    yes("aabb(cc)1122", &pad(&h("aabbcc1122")));
    no("aabb(cc)1122", &pad(&h("aabbdd1122")));
}

// ---------------------------------------------------------------------------------------
// Anchored bytes
// ---------------------------------------------------------------------------------------

#[test]
fn leading_anchored_byte() {
    yes("aa[1-2]bbcc", &pad(&h("aa00bbcc")));
    yes("aa[1-2]bbcc", &pad(&h("aa0000bbcc")));
    no("aa[1-2]bbcc", &pad(&h("aabbcc")));
    no("aa[1-2]bbcc", &pad(&h("aa000000bbcc")));
    no("aa[1-2]bbcc", &pad(&h("ab00bbcc")));
}

#[test]
fn trailing_anchored_byte() {
    yes("bbcc[1-2]aa", &pad(&h("bbcc00aa")));
    yes("bbcc[1-2]aa", &pad(&h("bbcc0000aa")));
    no("bbcc[1-2]aa", &pad(&h("bbccaa")));
    no("bbcc[1-2]aa", &pad(&h("bbcc000000aa")));
    no("bbcc[1-2]aa", &pad(&h("bbcc00ab")));
}

#[test]
fn anchored_byte_zero_and_max_distance() {
    yes("aa[0-2]bbcc", &pad(&h("aabbcc")));
    yes("aa[0-0]bbcc", &pad(&h("aabbcc")));
    no("aa[0-0]bbcc", &pad(&h("aa00bbcc")));
    let at = |n: usize| pad(&cat(&[&h("aa"), &vec![0u8; n], &h("bbcc")]));
    yes("aa[1-32]bbcc", &at(32));
    no("aa[1-32]bbcc", &at(33));
    yes("aa[30-32]bbcc", &at(31));
    no("aa[30-32]bbcc", &at(29));
}

#[test]
fn anchored_byte_combinations() {
    yes("aa[1-2]bbcc[1-2]dd", &pad(&h("aa00bbcc00dd")));
    yes("aa[1-2]bbcc[1-2]dd", &pad(&h("aa0000bbcc0000dd")));
    no("aa[1-2]bbcc[1-2]dd", &pad(&h("aa00bbccdd")));
    yes("aa[1-2]bbcc??", &pad(&h("aa00bbcc00")));
    yes("aa[1-2]bbccdd", &pad(&h("aa00bbccdd")));
    yes("aa[1-2]bbcc*ddee", &pad(&h("aa00bbcc000000ddee")));
    no("aa[1-2]bbcc*ddee", &pad(&h("aa00bbcc000000dd")));
    yes("bbcc*ddee[1-2]aa", &pad(&h("bbcc0000ddee00aa")));
    no("bbcc*ddee[1-2]aa", &pad(&h("bbcc0000ddee000000aa")));
}

#[test]
fn nibble_anchor() {
    yes("a?[1-2]bbcc", &pad(&h("a500bbcc")));
}

// ---------------------------------------------------------------------------------------
// Offsets (section 4): F = "0123456789" aa bb cc dd "0123456789" (24 bytes, sig at 10)
// ---------------------------------------------------------------------------------------

fn file_f() -> Vec<u8> {
    cat(&[b"0123456789", &h("aabbccdd"), b"0123456789"])
}

#[test]
fn absolute_offset_is_exact() {
    let f = file_f();
    yes_at("10", "aabbccdd", &f);
    no_at("9", "aabbccdd", &f);
    no_at("11", "aabbccdd", &f);
    yes_at("010", "aabbccdd", &f);
    no_at("100", "aabbccdd", &f);
}

#[test]
fn absolute_offset_with_shift() {
    let f = file_f();
    yes_at("9,1", "aabbccdd", &f);
    no_at("8,1", "aabbccdd", &f);
    yes_at("10,0", "aabbccdd", &f);
    yes_at("5,5", "aabbccdd", &f);
    no_at("4,5", "aabbccdd", &f);
    yes_at("0,100", "aabbccdd", &f);
    no_at("11,100", "aabbccdd", &f);
}

#[test]
fn eof_offset() {
    let f = file_f();
    yes_at("EOF-14", "aabbccdd", &f);
    no_at("EOF-13", "aabbccdd", &f);
    no_at("EOF-15", "aabbccdd", &f);
    yes_at("EOF-16,2", "aabbccdd", &f);
    no_at("EOF-17,2", "aabbccdd", &f);
    no_at("EOF-15,0", "aabbccdd", &f);
    yes_at("EOF-14,0", "aabbccdd", &f);
    no_at("EOF-30,100", "aabbccdd", &f);
    no_at("EOF-0", "aabbccdd", &f);
    no_at("EOF-100", "aabbccdd", &f);
}

#[test]
fn offsets_at_file_edges() {
    let start = cat(&[&h("aabbccdd"), b"0123456789"]);
    yes_at("0", "aabbccdd", &start);
    yes_at("EOF-14", "aabbccdd", &start);
    no_at("1", "aabbccdd", &start);
    let end = cat(&[b"0123456789", &h("aabbccdd")]);
    yes_at("EOF-4", "aabbccdd", &end);
    yes_at("10", "aabbccdd", &end);
    no_at("EOF-5", "aabbccdd", &end);
    no_at("EOF-3", "aabbccdd", &end);
    // `aabbcc` at `EOF-3` matches at the very end.
    yes_at("EOF-3", "aabbcc", &cat(&[b"0123456789", &h("aabbcc")]));
}

#[test]
fn offset_with_trailing_comma() {
    yes_at("10,", "aabbccdd", &file_f());
}

#[test]
fn leading_wildcards_count_in_the_offset() {
    let f = file_f();
    yes_at("9", "??aabbccdd", &f);
    no_at("10", "??aabbccdd", &f);
    yes_at("8", "{2}aabbccdd", &f);
    no_at("10", "{2}aabbccdd", &f);
    yes_at("9", "(ff|30|39)aabbccdd", &f);
    no_at("10", "(ff|30|39)aabbccdd", &f);
    yes_at("9", "3?aabbccdd", &f);
}

#[test]
fn multi_part_offset_constrains_the_first_part() {
    // `0123456789` aa bb 31 32 cc dd `0123456789` (26 bytes).
    let f = cat(&[b"0123456789", &h("aabb3132ccdd"), b"0123456789"]);
    for sig in ["aabb*ccdd", "aabb{2-4}ccdd"] {
        yes_at("10", sig, &f);
        no_at("9", sig, &f);
        no_at("11", sig, &f);
        yes_at("9,1", sig, &f);
        yes_at("EOF-16", sig, &f);
        no_at("EOF-15", sig, &f);
        no_at("12", sig, &f);
    }
}

#[test]
fn offset_applies_to_first_part_occurrence_not_a_later_one() {
    // Part 0 at 10 (allowed) and at 30 (not): the second part after the later one must
    // still count thanks to the first occurrence with an unbounded gap.
    let f = cat(&[
        b"0123456789",
        &h("aabb"),
        &[0x30; 18],
        &h("aabb"),
        &h("ccdd"),
        b"@@@@",
    ]);
    yes_at("10", "aabb*ccdd", &f);
    no_at("10", "aabb{-4}ccdd", &f);
    yes_at("30", "aabb{-4}ccdd", &f);
}

#[test]
fn trailing_anchor_offset_is_the_first_byte() {
    // `ccdd[1-2]bb` behaves normally: the offset is that of `cc`.
    let f = cat(&[b"0123456789", &h("ccdd31bb"), b"0123456789"]);
    yes_at("10", "ccdd[1-2]bb", &f);
    no_at("11", "ccdd[1-2]bb", &f);
}

#[test]
fn leading_anchor_offset_is_after_the_anchor_gap() {
    let f = cat(&[b"0123456789", &h("aa31bbccdd"), b"0123456789"]);
    yes_at("12", "aa[1-2]bbccdd", &f);
    no_at("10", "aa[1-2]bbccdd", &f);
}

#[test]
fn executable_targets_never_match_plain_files() {
    let f = file_f();
    for t in 1..=6 {
        let e = ndb(&format!("S:{t}:*:aabbccdd\n"));
        assert_eq!(found(&e, &f), None, "target {t}");
    }
    for t in 8..=14 {
        let e = ndb(&format!("S:{t}:*:aabbccdd\n"));
        assert_eq!(found(&e, &f), None, "target {t}");
    }
}

#[test]
fn executable_offsets_load_for_executable_targets_and_never_match_plain_files() {
    let f = file_f();
    for t in [1, 6, 9] {
        for off in [
            "EP+0", "EP-10", "EP+0,5", "S0+0", "S1+10,4", "SE0", "SL+0", "SL+4,2",
        ] {
            let e = ndb(&format!("S:{t}:{off}:aabbccdd\n"));
            assert_eq!(found(&e, &f), None, "target {t} offset {off}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Boundaries (B), (W), (L): zero-width at the edges, one byte in the middle (RAW semantics)
// ---------------------------------------------------------------------------------------

/// The bytes `c` for which `sig` matches the file `make(c)`.
fn matching_bytes(sig: &str, make: impl Fn(u8) -> Vec<u8>) -> Vec<u8> {
    let engine = sig_at("*", sig);
    (0..=255u8)
        .filter(|&c| found(&engine, &make(c)).is_some())
        .collect()
}

fn xs(n: usize) -> Vec<u8> {
    vec![b'x'; n]
}

fn left_probe(c: u8, sig_bytes: &str) -> Vec<u8> {
    cat(&[&xs(8), &[c], &h(sig_bytes), &xs(8)])
}

fn right_probe(c: u8, sig_bytes: &str) -> Vec<u8> {
    cat(&[&xs(8), &h(sig_bytes), &[c], &xs(8)])
}

fn middle_probe(c: u8, before: &str, after: &str) -> Vec<u8> {
    cat(&[&xs(8), &h(before), &[c], &h(after), &xs(8)])
}

const B_LEFT: [u8; 7] = [0x20, 0x2d, 0x2e, 0x2f, 0x3c, 0x40, 0x5f];
const B_RIGHT: [u8; 10] = [0x0a, 0x0d, 0x20, 0x22, 0x27, 0x2d, 0x2f, 0x3d, 0x3e, 0x5f];
const B_MIDDLE: [u8; 13] = [
    0x0a, 0x0d, 0x20, 0x22, 0x27, 0x2d, 0x2e, 0x2f, 0x3c, 0x3d, 0x3e, 0x40, 0x5f,
];

fn non_alnum() -> Vec<u8> {
    (0..=255u8).filter(|b| !b.is_ascii_alphanumeric()).collect()
}

fn word_left() -> Vec<u8> {
    matching_bytes("(B)e1717171", |c| left_probe(c, "e1717171"))
}

fn word_right() -> Vec<u8> {
    matching_bytes("727272e2(B)", |c| right_probe(c, "727272e2"))
}

fn word_middle() -> Vec<u8> {
    matching_bytes("e3737373(B)747474e3", |c| {
        middle_probe(c, "e3737373", "747474e3")
    })
}

#[test]
fn word_boundary_left_accepts_the_measured_bytes_and_no_alphanumeric() {
    let got = word_left();
    for b in B_LEFT {
        assert!(
            got.contains(&b),
            "{b:#04x} should be a left (B): {got:02x?}"
        );
    }
    assert!(got.iter().all(|b| !b.is_ascii_alphanumeric()), "{got:02x?}");
}

#[test]
fn word_boundary_left_exact_set() {
    assert_eq!(word_left(), B_LEFT);
}

#[test]
fn word_boundary_right_accepts_the_measured_bytes_and_no_alphanumeric() {
    let got = word_right();
    for b in B_RIGHT {
        assert!(
            got.contains(&b),
            "{b:#04x} should be a right (B): {got:02x?}"
        );
    }
    assert!(got.iter().all(|b| !b.is_ascii_alphanumeric()), "{got:02x?}");
}

#[test]
fn word_boundary_right_exact_set() {
    assert_eq!(word_right(), B_RIGHT);
}

#[test]
fn word_boundary_middle_accepts_the_measured_bytes_and_no_alphanumeric() {
    let got = word_middle();
    for b in B_MIDDLE {
        assert!(
            got.contains(&b),
            "{b:#04x} should be a middle (B): {got:02x?}"
        );
    }
    assert!(got.iter().all(|b| !b.is_ascii_alphanumeric()), "{got:02x?}");
}

#[test]
fn word_boundary_middle_exact_set() {
    assert_eq!(word_middle(), B_MIDDLE);
}

#[test]
fn non_alnum_boundary_sets() {
    let expected = non_alnum();
    assert_eq!(
        matching_bytes("(W)e1717171", |c| left_probe(c, "e1717171")),
        expected
    );
    assert_eq!(
        matching_bytes("727272e2(W)", |c| right_probe(c, "727272e2")),
        expected
    );
    assert_eq!(
        matching_bytes("e3737373(W)747474e3", |c| middle_probe(
            c, "e3737373", "747474e3"
        )),
        expected
    );
}

#[test]
fn line_boundary_sets() {
    assert_eq!(
        matching_bytes("(L)e1717171", |c| left_probe(c, "e1717171")),
        [0x0a]
    );
    assert_eq!(
        matching_bytes("727272e2(L)", |c| right_probe(c, "727272e2")),
        [0x0a]
    );
    assert_eq!(
        matching_bytes("e96a6a(L)6b6be9", |c| middle_probe(c, "e96a6a", "6b6be9")),
        [0x0a]
    );
}

#[test]
fn line_boundary_crlf() {
    // Left: `\r\n` before works (the byte before is 0a); a lone `\r` does not.
    yes(
        "(L)e1717171",
        &cat(&[&xs(4), b"\r\n", &h("e1717171"), &xs(4)]),
    );
    no(
        "(L)e1717171",
        &cat(&[&xs(4), b"\n\r", &h("e1717171"), &xs(4)]),
    );
    // Right: 0a or 0d 0a.
    yes(
        "727272e2(L)",
        &cat(&[&xs(4), &h("727272e2"), b"\r\n", &xs(4)]),
    );
    no(
        "727272e2(L)",
        &cat(&[&xs(4), &h("727272e2"), b"\rx", &xs(4)]),
    );
    // Middle: consumes 0a or 0d 0a.
    let crlf = cat(&[&xs(4), &h("e9"), b"jj\r\nkk", &h("e9"), &xs(4)]);
    yes("e96a6a(L)6b6be9", &crlf);
    no("e96a6a(L)0a6b6be9", &crlf);
    no("e96a6a(L)??6b6be9", &crlf);
    let lf = cat(&[&xs(4), &h("e9"), b"jj\nkk", &h("e9"), &xs(4)]);
    yes("e96a6a(L)6b6be9", &lf);
    let cr = cat(&[&xs(4), &h("e9"), b"jj\rkk", &h("e9"), &xs(4)]);
    no("e96a6a(L)6b6be9", &cr);
}

#[test]
fn boundaries_hold_at_file_edges() {
    for class in ["B", "W", "L"] {
        yes(
            &format!("({class})e1717171"),
            &cat(&[&h("e1717171"), &xs(4)]),
        );
        yes(
            &format!("727272e2({class})"),
            &cat(&[&xs(4), &h("727272e2")]),
        );
    }
}

#[test]
fn edge_boundaries_are_zero_width_for_offsets() {
    // `(B)616263` at offset 0 matches a file starting `abc`; with offset 4 it matches
    // `xxx abc...` (offset 3 does not): the boundary is not part of the match.
    yes_at("0", "(B)616263", b"abc xxxxxx");
    yes_at("4", "(B)616263", b"xxx abc xxxx");
    no_at("3", "(B)616263", b"xxx abc xxxx");
    yes("616263(B)", b"xxxxxx abc");
    // `616263(B)` at EOF-6 matches `xxxxxxabc xx` (offset = position of `a`).
    yes_at("EOF-6", "616263(B)", b"xxxxxxabc xx");
    no_at("EOF-7", "616263(B)", b"xxxxxxabc xx");
}

#[test]
fn middle_boundaries_consume_one_byte() {
    yes("6162(B)6364", b"xxxxab cdxxxx");
    no("6162(B)6364", b"xxxxabcdxxxx");
    yes("616263(B)64", b"xxxxabc.dxxxx");
    no("6162(B)2063", b"xxxxab cxxxx");
    yes("6162(W)6364", b"xxxxab-cdxxxx");
    no("6162(W)6364", b"xxxxabzcdxxxx");
}

#[test]
fn double_line_boundary_at_start() {
    // `(L)(L)616263` matches `\n\nabc`.
    yes("(L)(L)616263", b"\n\nabc xyz");
    yes("(L)(L)616263", b"xx\n\nabc xyz");
    no("(L)(L)616263", b"xx\nabc xyz");
}

#[test]
fn boundary_with_trailing_wildcard() {
    yes("(B)616263??", b"xx abcdxxxx");
    yes("616263(B)??", b"xxabc xxxx");
    no("616263(B)??", b"xxabcdxxxx");
}

#[test]
fn middle_boundary_with_star_offset() {
    let data = b"xxxxab cdxxxxxx";
    yes_at("4,1", "6162(B)6364", data);
    yes_at("0,10", "6162(B)6364", data);
}

#[test]
#[ignore = "engine disagrees with clamscan (quirk): a signature with a boundary in the MIDDLE never matches with an exact offset: `6162(B)6364` on `xxxxab cdxxxxxx` with offset `4`, `0,4` or `3,1` is not found by clamscan; moat finds it"]
fn middle_boundary_with_exact_offset_never_matches() {
    let data = b"xxxxab cdxxxxxx";
    no_at("4", "6162(B)6364", data);
    no_at("0,4", "6162(B)6364", data);
    no_at("3,1", "6162(B)6364", data);
}

// ---------------------------------------------------------------------------------------
// Normalized text copy (section 5)
// ---------------------------------------------------------------------------------------

#[test]
fn target_0_raw_bytes() {
    let e = ndb("S:0:*:41424344\n");
    assert!(found(&e, b"hello ABCD world").is_some());
    assert!(found(&e, b"hello abcd world").is_none());
}

#[test]
fn target_7_on_plain_lowercase_text() {
    let e = ndb("S:7:*:61626364\n");
    assert!(found(&e, b"hello abcd world").is_some());
    let e = ndb("S:7:0:20616263\n");
    assert!(found(&e, b" abc world").is_some());
}

#[test]
fn target_0_matches_normalized_copy() {
    let e = ndb("S:0:*:61626364\n");
    assert!(found(&e, b"hello ABCD world").is_some());
    let e = ndb("S:0:*:6d6e6f70\n");
    assert!(found(&e, b"hello mn\x01op world").is_some());
    assert!(found(&e, b"hello mn\x80op world").is_some());
    assert!(found(&e, "hello mn\u{e9}op world".as_bytes()).is_some());
    let e = ndb("S:0:*:6120626364\n");
    for data in [
        &b"xx a    bcd xx"[..],
        b"xx a\t\tbcd xx",
        b"xx a\nbcd xx",
        b"xx a\r\nbcd xx",
    ] {
        assert!(found(&e, data).is_some(), "{data:?}");
    }
}

#[test]
fn target_7_matches_only_the_normalized_copy() {
    let e = ndb("S:7:*:41424344\n");
    assert!(found(&e, b"hello ABCD world").is_none());
    let e = ndb("S:7:*:61626364\n");
    assert!(found(&e, b"hello ABCD world").is_some());
    let e = ndb("S:7:*:610d0a626364\n");
    assert!(found(&e, b"xx a\r\nbcd xx").is_none());
}

#[test]
fn target_7_offsets_are_in_the_normalized_copy() {
    let data = b"hello\n\n\n\nabc world";
    assert!(found(&ndb("S:7:6:616263\n"), data).is_some());
    assert!(found(&ndb("S:7:9:616263\n"), data).is_none());
}

#[test]
fn target_7_text_detection() {
    let e = ndb("S:7:*:61626364\n");
    assert!(found(&e, b"hello abcd w\xe9rld").is_some());
    assert!(found(&e, b"hello abcd world\x00").is_some());
    assert!(found(&e, b"\x80\x81 abcd \xfe\xff").is_some());
}

#[test]
fn target_7_not_on_nul_heavy_files() {
    let e = ndb("S:7:*:61626364\n");
    assert!(found(&e, b"\x00\x00\x00\x00abcd\x00\x00\x00\x00").is_none());
}

// ---------------------------------------------------------------------------------------
// Minimum size
// ---------------------------------------------------------------------------------------

#[test]
fn content_shorter_than_6_bytes_is_never_detected() {
    assert_eq!(MIN_SCANNED_SIZE, 6);
    let e = sig_at("*", "aabbcc");
    for extra in 0..3 {
        let data = cat(&[&h("aabbcc"), &vec![b'x'; extra]]);
        assert_eq!(found(&e, &data), None, "{} bytes", data.len());
    }
    let data = cat(&[&h("aabbcc"), b"xxx"]);
    assert!(found(&e, &data).is_some());
    assert_eq!(found(&e, b""), None);
}

#[test]
fn hashes_of_content_shorter_than_6_bytes_are_never_detected() {
    for n in 1..=6usize {
        let data: Vec<u8> = (0..n as u8)
            .map(|i| i.wrapping_mul(37).wrapping_add(0x91))
            .collect();
        let e = dbs(&[("x.hdb", &format!("{}:{n}:F\n", md5_hex(&data)))]);
        let expected = (n >= 6).then(|| "F.UNOFFICIAL".to_owned());
        assert_eq!(found(&e, &data), expected, "{n} bytes");
    }
    let e = dbs(&[("x.hdb", &format!("{}:*:F:73\n", md5_hex(b"")))]);
    assert_eq!(found(&e, b""), None);
}

// ---------------------------------------------------------------------------------------
// Hash signatures
// ---------------------------------------------------------------------------------------

const HELLO: &[u8] = b"hello world\n";

#[test]
fn md5_hash_with_size() {
    let e = dbs(&[("a.hdb", &format!("{}:12:a.txt\n", md5_hex(HELLO)))]);
    assert_eq!(found(&e, HELLO).as_deref(), Some("a.txt.UNOFFICIAL"));
    assert_eq!(found(&e, b"hello world!"), None);
    assert_eq!(found(&e, b"hello world\n\n"), None);
}

#[test]
fn hash_with_wrong_size_does_not_match() {
    let e = dbs(&[("a.hdb", &format!("{}:13:a.txt\n", md5_hex(HELLO)))]);
    assert_eq!(found(&e, HELLO), None);
}

#[test]
fn sha1_and_sha256_hashes() {
    for (ext, hash) in [
        ("hdb", sha1_hex(HELLO)),
        ("hsb", sha1_hex(HELLO)),
        ("hdb", sha256_hex(HELLO)),
        ("hsb", sha256_hex(HELLO)),
        ("hsb", md5_hex(HELLO)),
    ] {
        let e = dbs(&[(&format!("x.{ext}"), &format!("{hash}:12:H\n"))]);
        assert_eq!(
            found(&e, HELLO).as_deref(),
            Some("H.UNOFFICIAL"),
            "{ext} {hash}"
        );
        let e = dbs(&[(&format!("x.{ext}"), &format!("{hash}:11:H\n"))]);
        assert_eq!(found(&e, HELLO), None, "{ext} {hash} wrong size");
    }
}

#[test]
fn uppercase_hash_matches() {
    let e = dbs(&[(
        "a.hdb",
        &format!("{}:12:a\n", md5_hex(HELLO).to_uppercase()),
    )]);
    assert!(found(&e, HELLO).is_some());
}

#[test]
fn wildcard_size_matches_any_size() {
    for hash in [md5_hex(HELLO), sha1_hex(HELLO), sha256_hex(HELLO)] {
        let e = dbs(&[("a.hdb", &format!("{hash}:*:W:73\n"))]);
        assert_eq!(found(&e, HELLO).as_deref(), Some("W.UNOFFICIAL"));
        assert_eq!(found(&e, b"hello world?"), None);
    }
}

#[test]
fn wildcard_size_skipped_by_maxfl_does_not_match() {
    let e = dbs(&[("a.hdb", &format!("{}:*:W:73:100\n", md5_hex(HELLO)))]);
    assert_eq!(found(&e, HELLO), None);
}

#[test]
fn hash_flevel_filtering() {
    let md5 = md5_hex(HELLO);
    for (fields, loads) in [
        ("216", true),
        ("217", false),
        ("0:215", false),
        ("0:216", true),
        ("300:400", false),
    ] {
        let e = dbs(&[("a.hdb", &format!("{md5}:12:F:{fields}\n"))]);
        assert_eq!(found(&e, HELLO).is_some(), loads, "MINFL/MAXFL {fields}");
    }
}

#[test]
fn md5_beats_sha1_beats_sha256() {
    let lines = [
        format!("{}:12:N256\n", sha256_hex(HELLO)),
        format!("{}:12:N1\n", sha1_hex(HELLO)),
        format!("{}:12:N5\n", md5_hex(HELLO)),
    ];
    let e = dbs(&[("a.hdb", &lines.concat())]);
    assert_eq!(found(&e, HELLO).as_deref(), Some("N5.UNOFFICIAL"));
    let reversed: String = lines.iter().rev().cloned().collect();
    let e = dbs(&[("a.hdb", &reversed)]);
    assert_eq!(found(&e, HELLO).as_deref(), Some("N5.UNOFFICIAL"));
    let e = dbs(&[("a.hdb", &lines[..2].concat())]);
    assert_eq!(found(&e, HELLO).as_deref(), Some("N1.UNOFFICIAL"));
    let e = dbs(&[("a.hdb", &[lines[1].clone(), lines[0].clone()].concat())]);
    assert_eq!(found(&e, HELLO).as_deref(), Some("N1.UNOFFICIAL"));
    // Across files too.
    let e = dbs(&[
        ("a.hsb", &lines[0]),
        ("b.hsb", &lines[1]),
        ("c.hdb", &lines[2]),
    ]);
    assert_eq!(found(&e, HELLO).as_deref(), Some("N5.UNOFFICIAL"));
}

#[test]
fn sized_entry_beats_wildcard_entry() {
    let md5 = md5_hex(HELLO);
    let e = dbs(&[("a.hdb", &format!("{md5}:*:A:73\n{md5}:12:B\n"))]);
    assert_eq!(found(&e, HELLO).as_deref(), Some("B.UNOFFICIAL"));
    let e = dbs(&[("a.hdb", &format!("{md5}:12:B\n{md5}:*:A:73\n"))]);
    assert_eq!(found(&e, HELLO).as_deref(), Some("B.UNOFFICIAL"));
}

#[test]
fn duplicate_hash_last_loaded_wins() {
    let md5 = md5_hex(HELLO);
    let e = dbs(&[("a.hdb", &format!("{md5}:12:H1\n{md5}:12:H0\n"))]);
    assert_eq!(found(&e, HELLO).as_deref(), Some("H0.UNOFFICIAL"));
}

// ---------------------------------------------------------------------------------------
// Body vs hash, allow list, counts, builtin
// ---------------------------------------------------------------------------------------

/// File X of section 6.
fn file_x() -> Vec<u8> {
    cat(&[
        b"0123456789",
        &h("aabbccdd"),
        b"0123456789",
        &h("eeff1122"),
        b"ABCDEFGHIJ",
    ])
}

#[test]
fn body_beats_hash() {
    let x = file_x();
    let e = dbs(&[
        ("a.hdb", &format!("{}:{}:H\n", md5_hex(&x), x.len())),
        ("b.ndb", "N1:0:*:aabb??dd\n"),
    ]);
    assert_eq!(found(&e, &x).as_deref(), Some("N1.UNOFFICIAL"));
    let e = dbs(&[
        ("a.ndb", "N1:0:*:aabb??dd\n"),
        ("b.hdb", &format!("{}:*:H:73\n", sha256_hex(&x))),
    ]);
    assert_eq!(found(&e, &x).as_deref(), Some("N1.UNOFFICIAL"));
}

#[test]
fn single_body_match_reports_its_name() {
    let x = file_x();
    let e = ndb("N1:0:*:aabb??dd\nN2:0:*:0000000000\nN3:0:*:aabbccdd{2}31\n");
    assert_eq!(found(&e, &x).as_deref(), Some("N1.UNOFFICIAL"));
    let e = ndb("N2:0:*:0000000000\nN3:0:EOF-10:4142434445464748494a\n");
    assert_eq!(found(&e, &x).as_deref(), Some("N3.UNOFFICIAL"));
}

#[test]
fn allow_list_clears_a_body_detection() {
    let x = file_x();
    for fp in [
        format!("{}:{}:ok\n", md5_hex(&x), x.len()),
        format!("{}:{}:ok\n", sha1_hex(&x), x.len()),
        format!("{}:{}:ok\n", sha256_hex(&x), x.len()),
        format!("{}:*:ok:73\n", md5_hex(&x)),
        format!("{}:*:ok:73\n", sha256_hex(&x)),
    ] {
        for ext in ["fp", "sfp"] {
            let e = dbs(&[("a.ndb", "N1:0:*:aabbccdd\n"), (&format!("z.{ext}"), &fp)]);
            assert_eq!(found(&e, &x), None, "{ext}: {fp}");
        }
    }
}

#[test]
fn allow_list_clears_a_hash_detection() {
    let e = dbs(&[
        ("a.hdb", &format!("{}:12:H\n", md5_hex(HELLO))),
        ("b.fp", &format!("{}:12:ok\n", sha256_hex(HELLO))),
    ]);
    assert_eq!(found(&e, HELLO), None);
}

#[test]
fn allow_list_with_wrong_size_has_no_effect() {
    let x = file_x();
    let e = dbs(&[
        ("a.ndb", "N1:0:*:aabbccdd\n"),
        ("z.fp", &format!("{}:{}:ok\n", md5_hex(&x), x.len() + 1)),
    ]);
    assert_eq!(found(&e, &x).as_deref(), Some("N1.UNOFFICIAL"));
}

#[test]
fn allow_list_for_another_file_has_no_effect() {
    let x = file_x();
    let e = dbs(&[
        ("a.ndb", "N1:0:*:aabbccdd\n"),
        ("z.fp", &format!("{}:12:ok\n", md5_hex(HELLO))),
    ]);
    assert_eq!(found(&e, &x).as_deref(), Some("N1.UNOFFICIAL"));
}

#[test]
fn ign2_disables_a_body_signature() {
    let x = file_x();
    let e = dbs(&[
        ("a.ndb", "S1:0:*:aabbccdd\nS2:0:*:eeff1122\n"),
        ("z.ign2", "S1\n"),
    ]);
    assert_eq!(found(&e, &x).as_deref(), Some("S2.UNOFFICIAL"));
}

#[test]
fn signature_count_includes_allow_list() {
    let e = dbs(&[
        ("x.ndb", "S1:0:*:aabbcc\nS2:0:*:ddeeff\n"),
        ("a.fp", &format!("{}:12:ok\n", md5_hex(HELLO))),
        ("b.sfp", &format!("{}:12:ok\n", sha256_hex(HELLO))),
    ]);
    assert_eq!(e.signature_count(), 4);
}

#[test]
fn builtin_database_detects_eicar() {
    let e = Engine::new(moat_sigs::builtin::database());
    let eicar = moat_sigs::builtin::eicar();
    assert!(found(&e, &eicar).is_some());
    let mut trailing = eicar.clone();
    trailing.extend_from_slice(b"\r\n");
    assert!(found(&e, &trailing).is_some());
    let mut broken = eicar.clone();
    broken[10] ^= 1;
    assert_eq!(found(&e, &broken), None);
    assert_eq!(found(&e, b"hello world\n"), None);
}

#[test]
fn empty_engine_finds_nothing() {
    let e = Engine::new(Database::default());
    assert_eq!(found(&e, &file_x()), None);
    assert_eq!(e.signature_count(), 0);
}

// ---------------------------------------------------------------------------------------
// Larger inputs and many signatures
// ---------------------------------------------------------------------------------------

#[test]
fn matches_at_block_boundaries_of_large_data() {
    let static_sig = sig_at("*", "aabbccdd");
    let split_sig = sig_at("*", "aabb*ccdd");
    let masked_sig = sig_at("*", "aa??bbcc{3}dd");
    for base in [4096usize, 65536, 1 << 20] {
        for delta in [-3i64, -1, 0, 1] {
            let at = (base as i64 + delta) as usize;
            let mut data = vec![0u8; (1 << 20) + 64];
            data[at..at + 4].copy_from_slice(&h("aabbccdd"));
            assert!(found(&static_sig, &data).is_some(), "static at {at}");
            yes_at(&at.to_string(), "aabbccdd", &data);
            no_at(&(at + 1).to_string(), "aabbccdd", &data);
            let mut split = vec![0u8; (1 << 20) + 64];
            split[at..at + 2].copy_from_slice(&h("aabb"));
            split[at + 40..at + 42].copy_from_slice(&h("ccdd"));
            assert!(found(&split_sig, &split).is_some(), "split at {at}");
            let mut masked = vec![0u8; (1 << 20) + 64];
            masked[at..at + 8].copy_from_slice(&h("aa11bbcc223344dd"));
            assert!(found(&masked_sig, &masked).is_some(), "masked at {at}");
        }
    }
}

#[test]
fn match_at_the_very_end_of_large_data() {
    let mut data = vec![0x41u8; 3 << 20];
    let n = data.len();
    data[n - 4..].copy_from_slice(&h("aabbccdd"));
    yes("aabbccdd", &data);
    yes_at("EOF-4", "aabbccdd", &data);
    yes_at(&(n - 4).to_string(), "aabbccdd", &data);
    yes("aabbcc(dd|ee)", &data);
    no("aabbccdd??", &data);
}

#[test]
fn one_match_among_many_signatures() {
    // 2000 signatures with distinct 4-byte static patterns (all bytes >= 0x80), plus
    // wildcard variants; the data holds exactly one of them.
    let mut text = String::new();
    let pattern = |i: u32| [0x80 | (i >> 7) as u8, 0x80 | (i & 0x7f) as u8, 0xc3, 0xd4];
    for i in 0..2000u32 {
        let p = pattern(i);
        match i % 4 {
            0 => text.push_str(&format!("N{i}:0:*:{}\n", hex_of(&p))),
            1 => text.push_str(&format!(
                "N{i}:0:*:{}??{}\n",
                hex_of(&p[..2]),
                hex_of(&p[3..])
            )),
            2 => text.push_str(&format!(
                "N{i}:0:*:{}*{}\n",
                hex_of(&p[..2]),
                hex_of(&p[2..])
            )),
            _ => text.push_str(&format!(
                "N{i}:0:*:{}{{1-3}}{}\n",
                hex_of(&p[..2]),
                hex_of(&p[2..])
            )),
        }
    }
    let e = ndb(&text);
    for i in [0u32, 1, 2, 3, 777, 1234, 1998, 1999] {
        let p = pattern(i);
        let data = match i % 4 {
            3 => pad(&[&p[..2], &[0u8][..], &p[2..]].concat()),
            _ => pad(&p),
        };
        assert_eq!(
            found(&e, &data),
            Some(format!("N{i}.UNOFFICIAL")),
            "sig {i}"
        );
    }
    assert_eq!(found(&e, &pad(&h("80 80 c3 c5"))), None);
}

/// A signature pinned to an offset whose literal is longer than the buffer scanned: the
/// buffer cannot hold it, so nothing matches, and the matcher must not read past it. Such
/// buffers reach the matcher below the top-level size floor: the normalized HTML copies of
/// a container member (it panicked on clamav-testfiles' `clam.chm`).
#[test]
fn pinned_atom_longer_than_the_buffer() {
    let literal = b"ABCDEFGHIJKLMNOP";
    for offset in ["0", "2", "EOF-16", "0,4"] {
        let text = format!("S:0:{offset}:{}\n", hex_of(literal));
        let db = Database::from_text(Path::new("t.ndb"), &text).unwrap();
        let matcher = moat_engine::body::BodyMatcher::new(db.bodies);
        for len in 1..literal.len() {
            assert!(
                matcher.scan(&literal[..len]).is_none(),
                "{text:?} on {len} bytes"
            );
        }
        if offset != "2" {
            assert!(matcher.scan(literal).is_some(), "{text:?} on the literal");
        }
    }
}
