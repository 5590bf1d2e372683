//! One database line of each format: `.hdb`/`.hsb`/`.fp`/`.sfp` (`parse_hash`), `.ndb`
//! (`parse_ndb`) and `.ign2` (`parse_ign2`), against clamscan 1.4.6 (docs/clamav-oracle.md,
//! sections 1b, 1c, 2 and 3).

use moat_sigs::line::{self, Digest, HashKind, HashSig, Parsed, TARGET_MAX};
use moat_sigs::offset::OffsetBase;
use moat_sigs::FLEVEL;

/// `hello world\n` (12 bytes).
const MD5: &str = "6f5902ac237024bdd0c176cb93063dc4";
const SHA1: &str = "22596363b3de40b06f981fb85d82312e8c0ed511";
const SHA256: &str = "a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447";

fn hash_ok(text: &str) -> HashSig {
    match line::parse_hash(text, "") {
        Ok(Parsed::Sig(sig)) => sig,
        Ok(Parsed::Skipped(why)) => panic!("{text:?} should load, was skipped: {why:?}"),
        Err(e) => panic!("{text:?} should load, got error: {e}"),
    }
}

fn hash_skipped(text: &str) {
    match line::parse_hash(text, "") {
        Ok(Parsed::Skipped(_)) => {}
        other => panic!("{text:?} should be skipped by FLEVEL, got {other:?}"),
    }
}

fn hash_rejected(text: &str) {
    if let Ok(v) = line::parse_hash(text, "") {
        panic!("{text:?} should be a load error, got {v:?}");
    }
}

fn ndb_ok(text: &str) -> moat_sigs::BodySig {
    match line::parse_ndb(text, "") {
        Ok(Parsed::Sig(sig)) => sig,
        Ok(Parsed::Skipped(why)) => panic!("{text:?} should load, was skipped: {why:?}"),
        Err(e) => panic!("{text:?} should load, got error: {e}"),
    }
}

fn ndb_skipped(text: &str) {
    match line::parse_ndb(text, "") {
        Ok(Parsed::Skipped(_)) => {}
        other => panic!("{text:?} should be skipped silently, got {other:?}"),
    }
}

fn ndb_rejected(text: &str) {
    if let Ok(v) = line::parse_ndb(text, "") {
        panic!("{text:?} should be a load error, got {v:?}");
    }
}

fn unhex<const N: usize>(text: &str) -> [u8; N] {
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

// ---------------------------------------------------------------------------------------
// Hash lines
// ---------------------------------------------------------------------------------------

#[test]
fn flevel_is_216() {
    assert_eq!(FLEVEL, 216);
}

#[test]
fn md5_line() {
    let sig = hash_ok(&format!("{MD5}:12:a.txt"));
    assert_eq!(sig.digest, Digest::Md5(unhex(MD5)));
    assert_eq!(sig.digest.kind(), HashKind::Md5);
    assert_eq!(sig.size, Some(12));
    assert_eq!(&*sig.name, "a.txt");
    assert_eq!(sig.digest.as_bytes(), &unhex::<16>(MD5)[..]);
}

#[test]
fn hash_kind_is_decided_by_length() {
    assert_eq!(
        hash_ok(&format!("{SHA1}:12:a")).digest,
        Digest::Sha1(unhex(SHA1))
    );
    assert_eq!(
        hash_ok(&format!("{SHA256}:12:a")).digest,
        Digest::Sha256(unhex(SHA256))
    );
    assert_eq!(
        hash_ok(&format!("{SHA256}:12:a")).digest.kind(),
        HashKind::Sha256
    );
    assert_eq!(
        hash_ok(&format!("{SHA1}:12:a")).digest.kind(),
        HashKind::Sha1
    );
}

#[test]
fn uppercase_hashes_are_accepted() {
    let sig = hash_ok(&format!("{}:12:a", MD5.to_uppercase()));
    assert_eq!(sig.digest, Digest::Md5(unhex(MD5)));
    let sig = hash_ok(&format!("{}:12:a", SHA256.to_uppercase()));
    assert_eq!(sig.digest, Digest::Sha256(unhex(SHA256)));
}

#[test]
fn other_hash_lengths_are_rejected() {
    // "hm_addhash_str: invalid hash <hex> -- FIXME!".
    for len in [0, 2, 31, 33, 39, 41, 48, 56, 63, 65, 96, 128] {
        let hash: String = SHA256.repeat(2).chars().take(len).collect();
        hash_rejected(&format!("{hash}:12:a"));
    }
    hash_rejected("zz:12:foo");
}

#[test]
fn non_hex_hash_of_right_length_is_rejected() {
    let bad = format!("g{}", &MD5[1..]);
    hash_rejected(&format!("{bad}:12:a"));
    let bad = format!("{}x", &SHA1[1..]);
    hash_rejected(&format!("{bad}:12:a"));
}

#[test]
fn size_field() {
    assert_eq!(hash_ok(&format!("{MD5}:012:a")).size, Some(12));
    assert_eq!(hash_ok(&format!("{MD5}:0:a")).size, Some(0));
    // "cli_loadhash: Invalid value for the size field".
    for size in ["-1", "", "abc"] {
        hash_rejected(&format!("{MD5}:{size}:a"));
    }
}

#[test]
fn size_with_plus_sign_is_accepted() {
    assert_eq!(hash_ok(&format!("{MD5}:+12:a")).size, Some(12));
}

#[test]
fn size_with_leading_space_is_accepted() {
    assert_eq!(hash_ok(&format!("{MD5}: 12:a")).size, Some(12));
}

#[test]
fn missing_or_empty_fields_are_rejected() {
    hash_rejected(&format!("{MD5}:12")); // missing name
    hash_rejected(&format!("{MD5}:12:")); // "cli_mpool_virname: Empty virus name"
    hash_rejected(MD5);
    hash_rejected("");
}

#[test]
fn wildcard_size_needs_minfl_73() {
    // "Minimum FLEVEL field must be at least 73 for wildcard size hash signatures".
    hash_rejected(&format!("{MD5}:*:a"));
    hash_rejected(&format!("{MD5}:*:a:72"));
    hash_rejected(&format!("{MD5}:*:a:0"));
    let sig = hash_ok(&format!("{MD5}:*:a:73"));
    assert_eq!(sig.size, None);
    assert_eq!(hash_ok(&format!("{SHA256}:*:a:73")).size, None);
    assert_eq!(hash_ok(&format!("{SHA1}:*:a:100:216")).size, None);
    assert_eq!(hash_ok(&format!("{MD5}:*:a:73:")).size, None);
    // Loads but is skipped: MAXFL < 216.
    hash_skipped(&format!("{MD5}:*:a:73:100"));
}

#[test]
fn hash_flevel_filtering() {
    hash_ok(&format!("{MD5}:12:a:216"));
    hash_skipped(&format!("{MD5}:12:a:217"));
    hash_skipped(&format!("{MD5}:12:a:0:215"));
    hash_ok(&format!("{MD5}:12:a:0:216"));
    hash_ok(&format!("{MD5}:12:a:216:216"));
    hash_ok(&format!("{MD5}:12:a:1:9999"));
    hash_skipped(&format!("{MD5}:12:a:300:400"));
    // A trailing empty field is accepted.
    hash_ok(&format!("{MD5}:12:a:"));
}

#[test]
fn hash_non_numeric_minfl_is_zero() {
    hash_ok(&format!("{MD5}:12:a:x"));
}

#[test]
fn digest_from_hex() {
    assert_eq!(Digest::from_hex(MD5), Ok(Digest::Md5(unhex(MD5))));
    assert!(Digest::from_hex("").is_err());
    assert!(Digest::from_hex(&MD5[..30]).is_err());
}

// ---------------------------------------------------------------------------------------
// .ndb lines
// ---------------------------------------------------------------------------------------

#[test]
fn ndb_fields() {
    let sig = ndb_ok("S1:0:*:68656c6c6f");
    assert_eq!(&*sig.name, "S1");
    assert_eq!(sig.target, 0);
    assert_eq!(sig.offset.base, OffsetBase::Any);
    assert_eq!(sig.offset.max_shift, None);
    assert_eq!(sig.pattern, moat_sigs::hex::parse("68656c6c6f").unwrap());

    let sig = ndb_ok("Some.Name-1:7:EOF-16,2:68656C6C6F");
    assert_eq!(&*sig.name, "Some.Name-1");
    assert_eq!(sig.target, 7);
    assert_eq!(sig.offset.base, OffsetBase::FromEnd(16));
    assert_eq!(sig.offset.max_shift, Some(2));
}

#[test]
fn ndb_targets_0_to_14_load() {
    assert_eq!(TARGET_MAX, 14);
    for t in 0..=14 {
        assert_eq!(ndb_ok(&format!("S:{t}:*:aabbcc")).target, t);
    }
}

#[test]
fn ndb_bad_targets_are_rejected() {
    for t in ["-1", "x", ""] {
        ndb_rejected(&format!("S:{t}:*:aabbcc"));
    }
}

#[test]
fn ndb_unknown_target_is_skipped() {
    ndb_skipped("S:100:*:aabbcc");
    ndb_skipped("S:15:*:aabbcc");
}

#[test]
fn ndb_field_count() {
    ndb_rejected("S1:0:*"); // missing field
    ndb_rejected("S1:0");
    ndb_rejected("S1");
    ndb_rejected("");
    ndb_rejected("S1:0:*:68656c6c6f:1:2:3"); // too many fields
                                             // A trailing empty field is accepted.
    ndb_ok("S1:0:*:68656c6c6f:");
}

#[test]
fn ndb_flevel_filtering() {
    ndb_ok("S:0:*:aabbcc:216");
    ndb_skipped("S:0:*:aabbcc:217");
    ndb_skipped("S:0:*:aabbcc:0:215");
    ndb_ok("S:0:*:aabbcc:0:216");
    ndb_skipped("S:0:*:aabbcc:300:400");
    ndb_ok("S:0:*:aabbcc:1");
}

#[test]
fn ndb_non_numeric_flevel_is_rejected() {
    ndb_rejected("S:0:*:aabbcc:x");
    ndb_rejected("S:0:*:aabbcc:1:x");
}

#[test]
fn ndb_bad_offsets_are_rejected() {
    // An empty offset loads in clamscan 1.4.6 and never matches (measured, realsigs.rs).
    for o in ["abc", "-1", "*,5", "EOF+1", "+10", " 10"] {
        ndb_rejected(&format!("S1:0:{o}:aabbccdd"));
    }
}

#[test]
fn ndb_offsets() {
    assert_eq!(
        ndb_ok("S:0:10:aabbccdd").offset.base,
        OffsetBase::Absolute(10)
    );
    assert_eq!(ndb_ok("S:0:9,1:aabbccdd").offset.max_shift, Some(1));
    assert_eq!(
        ndb_ok("S:0:EOF-14:aabbccdd").offset.base,
        OffsetBase::FromEnd(14)
    );
    // Executable offsets parse at line level (target 1 = PE).
    assert_eq!(
        ndb_ok("S:1:EP+0:aabbccdd").offset.base,
        OffsetBase::EntryPoint(0)
    );
    assert_eq!(
        ndb_ok("S:1:SE0:aabbccdd").offset.base,
        OffsetBase::SectionEntire(0)
    );
}

#[test]
fn ndb_bad_hex_is_rejected() {
    ndb_rejected("S1:0:*:68656c6c6g");
    ndb_rejected("S1:0:*:68656c6c6");
    ndb_rejected("S1:0:*:6869"); // static, too short
    ndb_rejected("S1:0:*:");
    ndb_rejected("S1:0:*:aabb()1122");
}

#[test]
fn ndb_uppercase_hex_is_accepted() {
    assert_eq!(
        ndb_ok("S1:0:*:68656C6C6F").pattern,
        ndb_ok("S1:0:*:68656c6c6f").pattern
    );
}

#[test]
fn ndb_empty_name_is_rejected() {
    ndb_rejected(":0:*:aabbcc");
}

// ---------------------------------------------------------------------------------------
// .ign2 lines
// ---------------------------------------------------------------------------------------

#[test]
fn ign2_name() {
    assert_eq!(&*line::parse_ign2("S1").unwrap(), "S1");
    assert_eq!(
        &*line::parse_ign2("Win.Test.EICAR_HDB-1").unwrap(),
        "Win.Test.EICAR_HDB-1"
    );
    // Legacy `NAME:MD5` form: only the name matters.
    assert_eq!(&*line::parse_ign2(&format!("S1:{MD5}")).unwrap(), "S1");
}

#[test]
fn ign2_blank_is_rejected() {
    // "cli_loadign: No signature name provided".
    assert!(line::parse_ign2("").is_err());
}

#[test]
fn ign2_trailing_whitespace_is_trimmed() {
    assert_eq!(&*line::parse_ign2("S1 ").unwrap(), "S1");
}

#[test]
fn ign2_bad_md5_is_rejected() {
    assert!(line::parse_ign2("S1:xyz").is_err());
}

#[test]
fn name_suffix_is_appended() {
    match line::parse_ndb("S1:0:*:aabbcc", ".UNOFFICIAL") {
        Ok(Parsed::Sig(sig)) => assert_eq!(&*sig.name, "S1.UNOFFICIAL"),
        other => panic!("{other:?}"),
    }
    match line::parse_hash(&format!("{MD5}:12:a.txt"), ".UNOFFICIAL") {
        Ok(Parsed::Sig(sig)) => assert_eq!(&*sig.name, "a.txt.UNOFFICIAL"),
        other => panic!("{other:?}"),
    }
}
