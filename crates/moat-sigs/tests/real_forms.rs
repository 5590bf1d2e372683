//! The constructs of ClamAV's official databases that moat once refused, each as
//! clamscan 1.4.6 reads it (measured one line at a time, docs/clamav-oracle.md
//! "Loading every official database"): version-info offsets, runs of comparison
//! characters, subsignature fields, nested alternates, `HandlerType`, the legacy
//! `.ign` form and the formats moat checks but does not evaluate.

use std::path::Path;

use moat_sigs::hex::{self, Element};
use moat_sigs::ldb::{parse_expr, parse_ldb, CountOp, Expr, Ldb, SubsigFields};
use moat_sigs::{Database, LoadError, LoadOptions, OffsetBase};

fn load(path: &str, text: &str) -> Result<Database, LoadError> {
    Database::from_text(Path::new(path), text)
}

fn malformed_at(path: &str, text: &str, line: usize) -> String {
    match load(path, text) {
        Err(LoadError::Malformed {
            path: p,
            line: l,
            reason,
        }) => {
            assert_eq!((p.to_str().unwrap(), l), (path, line), "{reason}");
            let shown = LoadError::Malformed {
                path: p,
                line: l,
                reason: reason.clone(),
            }
            .to_string();
            assert!(shown.starts_with(&format!("{path}:{line}: ")), "{shown}");
            reason.0
        }
        other => panic!("{path}: expected an error at line {line}, got {other:?}"),
    }
}

#[test]
fn version_info_offsets_are_counted_not_evaluated() {
    let o = moat_sigs::offset::parse("VI").unwrap();
    assert_eq!(o.base, OffsetBase::VersionInfo);
    assert!(o.base.needs_executable());
    let line = "A;Engine:51-255,Target:1;0&1;VI:43006f00;4d5a";
    assert!(matches!(parse_ldb(line, ""), Ok(Ldb::NotEvaluated(_))));
    let db = load("x.ldb", &format!("{line}\n")).unwrap();
    assert_eq!(db.signature_count(), 1);
    assert_eq!(db.report.skipped.len(), 1);
    // clamscan: "Invalid offset type for target 0".
    let reason = malformed_at("x.ldb", "B;Target:0;0;4141\nA;Target:0;0;VI:41414242\n", 2);
    assert!(reason.contains("Target 1"), "{reason}");
    malformed_at("x.ndb", "A:0:VI:41414242\n", 1);
    assert_eq!(
        load("x.ndb", "A:1:VI:41414242\n")
            .unwrap()
            .signature_count(),
        1
    );
}

#[test]
fn the_last_of_several_comparison_characters_counts() {
    let count = |e: &str| match parse_expr(e).unwrap() {
        Expr::Count { op, value, .. } => (op, value),
        other => panic!("{e}: {other:?}"),
    };
    assert_eq!(count("8==9"), (CountOp::Equal, 9));
    assert_eq!(count("0>=1"), (CountOp::Equal, 1));
    assert_eq!(count("0=>1"), (CountOp::More, 1));
    assert_eq!(count("0=<2"), (CountOp::Less, 2));
    assert_eq!(count("0<>1"), (CountOp::More, 1));
    assert_eq!(count("0===1,1"), (CountOp::Equal, 1));
    // The real line of main.ldb: `(8==9)` refers to 9 subsignatures, not 10.
    let real = "W;Target:1;(0&1&2&3&4&5&6&(7>5)&(8==9));52545449;4973;536c;6672;4765;4c6f;4765;636f;2e646c6c";
    assert!(matches!(parse_ldb(real, ""), Ok(Ldb::Sig(_))));
    for bad in ["0==", "0=1=", "0=", "0=>"] {
        assert!(parse_expr(bad).is_err(), "{bad}");
    }
}

#[test]
fn subsignature_fields_split_as_clamav_splits_them() {
    let f = |t| {
        let s = SubsigFields::split(t);
        (s.offset, s.body, s.modifiers)
    };
    assert_eq!(f("4141"), (None, "4141", None));
    assert_eq!(f("8:4141"), (Some("8"), "4141", None));
    assert_eq!(f("4141::i"), (None, "4141", Some("i")));
    assert_eq!(f("4141:x:i"), (None, "4141", Some("i")));
    assert_eq!(f("8:4141::i"), (Some("8"), "4141", Some("i")));
    // Five fields or more: the first alone, any offset, no modifiers.
    assert_eq!(f("657865::i*5773::i*4465::i"), (None, "657865", None));
    assert_eq!(f("4141:x:y:z:w"), (None, "4141", None));

    let body = |line: &str| match parse_ldb(line, "").unwrap() {
        Ldb::Sig(s) => s.subsigs,
        other => panic!("{line}: {other:?}"),
    };
    let subs = body("A;Target:0;0;41414242::i*43434444::i");
    let moat_sigs::Subsig::Body {
        pattern, modifiers, ..
    } = &subs[0]
    else {
        panic!()
    };
    assert_eq!(pattern, &hex::parse_subsig("41414242").unwrap());
    assert!(!modifiers.nocase);
    // Refused by clamscan: options `i*4343` ('*' is not a modifier), an empty body.
    for bad in [
        "41414242::i*4343",
        "41414242:::i",
        "41414242:",
        "0:41414242:a:b:c",
    ] {
        let line = format!("A;Target:0;0;{bad}");
        assert!(parse_ldb(&line, "").is_err(), "{line}");
    }
    // A byte compare triggered by itself loads and never matches in clamscan.
    assert!(matches!(
        parse_ldb("A;Target:0;0&1;4141;1(>>4#db4#=1)", ""),
        Ok(Ldb::NotEvaluated(_))
    ));
    // `:4141` loads and never matches in clamscan: counted, not evaluated.
    assert!(matches!(
        parse_ldb("A;Target:0;0;:41414242", ""),
        Ok(Ldb::NotEvaluated(_))
    ));
}

#[test]
fn nested_alternates_parse_into_nested_elements() {
    let p = hex::parse("6161(6a6a|66(6767|6868)66|6969)6161").unwrap();
    let Element::Alt(alt) = &p.parts[0].elements[2] else {
        panic!("{p:?}")
    };
    assert_eq!(alt.alternatives.len(), 3);
    assert!(matches!(alt.alternatives[1][1], Element::Alt(_)));
    hex::parse("aabb(cc|(dd|ee))1122").unwrap();
    hex::parse("6161(6a6a|66{2}66)6161").unwrap();
    let deep = format!("6161{}6a6a{}6161", "(6a6a|".repeat(40), ")".repeat(40));
    assert!(hex::parse(&deep).is_err(), "recursion is bounded");
}

#[test]
fn handler_type_loads_and_unknown_types_are_skipped() {
    let db = load(
        "x.ldb",
        "A;Engine:51-255,HandlerType:CL_TYPE_PDF,Target:0;0;41414242\nB;Engine:51-255,HandlerType:CL_TYPE_FOO,Target:0;0;41414242\n",
    )
    .unwrap();
    assert_eq!(db.logical.len(), 1);
    assert_eq!(db.signature_count(), 1);
    assert_eq!(
        db.logical[0].target.handler_type.as_deref(),
        Some("CL_TYPE_PDF")
    );
    malformed_at(
        "x.ldb",
        "A;HandlerType:CL_TYPE_PDF,Target:0;0;41414242\n",
        1,
    );
}

#[test]
fn ign_files_take_the_legacy_three_field_form() {
    let sigs = "S1:0:*:41414242\nS2:0:*:43434444\n";
    for ign in [
        "S1",
        "x.ndb:1:S1",
        "x:y:S1",
        "S1:44d88612fea8a8f36de82e1278abb02f",
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.ign"), format!("{ign}\n")).unwrap();
        std::fs::write(dir.path().join("z.ndb"), sigs).unwrap();
        let db = Database::load(&[dir.path()]).unwrap();
        assert_eq!(db.signature_count(), 1, "{ign}");
    }
    malformed_at("a.ign", "S1\nx:1:S1:extra\n", 2);
    malformed_at("a.ign", "x:S1\n", 1);
    malformed_at("a.ign2", "S1\n\n", 2);
}

#[test]
fn checked_formats_count_as_clamscan_counts() {
    let count = |path: &str, text: &str| load(path, text).unwrap().signature_count();
    let icon = format!("N:G1:G2:{}\n", "0".repeat(124));
    assert_eq!(count("x.idb", &format!("# c\n{icon}{icon}")), 2);
    assert_eq!(
        count("x.cdb", "N:CL_TYPE_ZIP:*:abc\\.exe$:*:*:*:*:*:\nM:*:*:abc:*:*:*:*:*:*\nO:CL_TYPE_ZIP:*:abc:*:*:*:*:*:*:300\n"),
        2
    );
    assert_eq!(
        count("x.pdb", "H:example.com\n# c\nR:.+\\.example\\.com\n"),
        2
    );
    assert_eq!(count("x.gdb", "S:F:00\n"), 1);
    assert_eq!(
        count("x.wdb", "X:.+\\.a\\.com:.+\\.b\\.com\nM:a.com:b.com\n"),
        0
    );
    assert_eq!(
        count(
            "x.ftm",
            "0:0:1f8b:GZip:CL_TYPE_ANY:CL_TYPE_GZ\n1:*:1f8b:GZip:CL_TYPE_ANY:CL_TYPE_GZ:1:300\n"
        ),
        0
    );
    assert_eq!(count("x.cfg", "garbage\n"), 0);
    assert_eq!(count("x.info", "garbage\n"), 0);
    malformed_at("x.idb", &format!("{icon}N:G1:G2:00\n"), 2);
    malformed_at("x.cdb", "N:CL_TYPE_ZIP:*:abc:*:*:*:*:*\n", 1);
    malformed_at("x.cdb", "N:CL_TYPE_FOO:*:abc:*:*:*:*:*:*\n", 1);
    malformed_at("x.cdb", "N:CL_TYPE_ZIP:x:abc:*:*:*:*:*:*\n", 1);
    malformed_at("x.cdb", "N:CL_TYPE_ZIP:*:ab(c:*:*:*:*:*:*\n", 1);
    malformed_at("x.ftm", "0:0:1f8b:GZip:CL_TYPE_ANY\n", 1);
    malformed_at("x.ftm", "0:0:1f8bzz:GZip:CL_TYPE_ANY:CL_TYPE_GZ\n", 1);
    malformed_at("x.ftm", "0:0:1f8b:GZip:CL_TYPE_ANY:CL_TYPE_FOO\n", 1);
    malformed_at("x.pdb", "H:a.com\nX:a:b\n", 2);
    malformed_at("x.pdb", "R:(\n", 1);
    malformed_at("x.wdb", "H:a.com\n", 1);
    malformed_at("x.crb", "garbage\n", 1);
}

#[test]
fn pua_and_unsigned_bytecode_load_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let hash = "44d88612fea8a8f36de82e1278abb02f:68:Pua.Test\n";
    std::fs::write(dir.path().join("x.hdu"), hash).unwrap();
    std::fs::write(
        dir.path().join("a.cbc"),
        "ClamBCaa|bb\nBC.A;Target:1;0;4141\nTzz\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("b.cbc"), "ClamBCaa|bb\nBC.PDF.hook\nTzz\n").unwrap();
    let with = |detect_pua, bytecode_unsigned| {
        Database::load_with(
            &[dir.path()],
            LoadOptions {
                detect_pua,
                bytecode_unsigned,
            },
        )
        .unwrap()
    };
    let plain = with(false, false);
    assert_eq!(plain.signature_count(), 0);
    assert_eq!(plain.report.pua_files.len(), 1);
    assert_eq!(plain.report.unsigned_bytecode.len(), 2);
    assert_eq!(with(true, false).signature_count(), 1);
    assert_eq!(with(true, false).hashes.len(), 1);
    // A bytecode with a logical trigger counts 1, a hook bytecode 0.
    assert_eq!(with(false, true).signature_count(), 1);
    std::fs::write(dir.path().join("c.cbc"), "garbage\n").unwrap();
    let err = Database::load_with(
        &[dir.path()],
        LoadOptions {
            detect_pua: false,
            bytecode_unsigned: true,
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("c.cbc:1:"), "{err}");
}
