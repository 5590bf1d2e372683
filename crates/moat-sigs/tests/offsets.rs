//! The offset column of `.ndb` lines: every form, the `,maxshift` window, the start
//! ranges they give, and the forms clamscan 1.4.6 rejects (docs/clamav-oracle.md, section 4).

use moat_sigs::offset::{self, Offset, OffsetBase};
use proptest::prelude::*;

fn ok(text: &str) -> Offset {
    offset::parse(text).unwrap_or_else(|e| panic!("{text:?} should parse, got error: {e}"))
}

fn rejected(text: &str) {
    if let Ok(o) = offset::parse(text) {
        panic!("{text:?} should be rejected, parsed as {o:?}");
    }
}

fn off(base: OffsetBase, max_shift: Option<u32>) -> Offset {
    Offset { base, max_shift }
}

#[test]
fn star_is_anywhere() {
    assert_eq!(ok("*"), off(OffsetBase::Any, None));
}

#[test]
fn absolute() {
    assert_eq!(ok("0"), off(OffsetBase::Absolute(0), None));
    assert_eq!(ok("10"), off(OffsetBase::Absolute(10), None));
    assert_eq!(ok("4294967296"), off(OffsetBase::Absolute(1 << 32), None));
}

#[test]
fn absolute_with_leading_zero() {
    // clamscan: `010` = 10.
    assert_eq!(ok("010"), off(OffsetBase::Absolute(10), None));
}

#[test]
fn absolute_with_shift() {
    assert_eq!(ok("9,1"), off(OffsetBase::Absolute(9), Some(1)));
    assert_eq!(ok("10,0"), off(OffsetBase::Absolute(10), Some(0)));
    assert_eq!(ok("0,100"), off(OffsetBase::Absolute(0), Some(100)));
}

#[test]
fn from_end() {
    assert_eq!(ok("EOF-14"), off(OffsetBase::FromEnd(14), None));
    assert_eq!(ok("EOF-0"), off(OffsetBase::FromEnd(0), None));
}

#[test]
fn from_end_with_shift() {
    assert_eq!(ok("EOF-16,2"), off(OffsetBase::FromEnd(16), Some(2)));
    assert_eq!(ok("EOF-30,100"), off(OffsetBase::FromEnd(30), Some(100)));
}

#[test]
fn entry_point() {
    assert_eq!(ok("EP+0"), off(OffsetBase::EntryPoint(0), None));
    assert_eq!(ok("EP-0"), off(OffsetBase::EntryPoint(0), None));
    assert_eq!(ok("EP+10"), off(OffsetBase::EntryPoint(10), None));
    assert_eq!(ok("EP-10"), off(OffsetBase::EntryPoint(-10), None));
    assert_eq!(ok("EP+0,5"), off(OffsetBase::EntryPoint(0), Some(5)));
    assert_eq!(ok("EP-16,32"), off(OffsetBase::EntryPoint(-16), Some(32)));
}

#[test]
fn section_start() {
    assert_eq!(
        ok("S0+0"),
        off(
            OffsetBase::SectionStart {
                section: 0,
                delta: 0
            },
            None
        )
    );
    assert_eq!(
        ok("S2+16"),
        off(
            OffsetBase::SectionStart {
                section: 2,
                delta: 16
            },
            None
        )
    );
    assert_eq!(
        ok("S2+16,4"),
        off(
            OffsetBase::SectionStart {
                section: 2,
                delta: 16
            },
            Some(4)
        )
    );
}

#[test]
fn section_entire() {
    assert_eq!(ok("SE0"), off(OffsetBase::SectionEntire(0), None));
    assert_eq!(ok("SE3"), off(OffsetBase::SectionEntire(3), None));
}

#[test]
fn last_section() {
    assert_eq!(ok("SL+0"), off(OffsetBase::LastSection(0), None));
    assert_eq!(ok("SL+8"), off(OffsetBase::LastSection(8), None));
    assert_eq!(ok("SL+8,2"), off(OffsetBase::LastSection(8), Some(2)));
}

#[test]
fn forms_clamscan_rejects() {
    // "cli_caloff: Invalid offset value".
    for text in ["*,5", "EOF+1", "+10", " 10", "abc", "-1"] {
        rejected(text);
    }
}

#[test]
fn other_malformed_forms_are_rejected() {
    // "" and "EOF-" load in clamscan 1.4.6 and never match (measured by
    // crates/moat/tests/realsigs.rs): read as EOF-0.
    for text in [
        "EOF",
        "EOF-x",
        "EOF--1",
        "EP",
        "EP+",
        "EP-",
        "EP*1",
        "EP+x",
        "S",
        "S1",
        "S+1",
        "Sx+1",
        "S1+",
        "SE",
        "SEx",
        "SL",
        "SL+",
        "SL-1",
        "10,x",
        "10,-1",
        "10,1,2",
        "**",
        "99999999999999999999999",
        "10,99999999999",
    ] {
        rejected(text);
    }
}

#[test]
fn trailing_comma_is_accepted() {
    let o = ok("10,");
    assert_eq!(o.base, OffsetBase::Absolute(10));
    assert_eq!(o.start_range(24), Some((10, 10)));
}

#[test]
#[ignore = "parser disagrees with clamscan: `,5` (empty base) loads in clamscan (and never matches), the parser rejects it"]
fn empty_base_with_shift_loads() {
    ok(",5");
}

// ---------------------------------------------------------------------------------------
// Start ranges (the offsets a scan of a plain file can resolve)
// ---------------------------------------------------------------------------------------

#[test]
fn start_ranges_on_a_24_byte_file() {
    let range = |text: &str| ok(text).start_range(24);
    assert_eq!(range("*"), Some((0, 24)));
    assert_eq!(range("10"), Some((10, 10)));
    assert_eq!(range("9,1"), Some((9, 10)));
    assert_eq!(range("10,0"), Some((10, 10)));
    assert_eq!(range("5,5"), Some((5, 10)));
    assert_eq!(range("EOF-14"), Some((10, 10)));
    assert_eq!(range("EOF-16,2"), Some((8, 10)));
    assert_eq!(range("EOF-0"), Some((24, 24)));
    assert_eq!(range("EOF-24"), Some((0, 0)));
    assert_eq!(range("100"), Some((100, 100)));
}

#[test]
fn from_end_before_the_file_start_cannot_match() {
    // clamscan: `EOF-30,100` on a 24-byte file never matches (negative start), nor `EOF-100`.
    assert_eq!(ok("EOF-30,100").start_range(24), None);
    assert_eq!(ok("EOF-100").start_range(24), None);
    assert_eq!(ok("EOF-25").start_range(24), None);
}

#[test]
fn executable_offsets_need_a_parser() {
    for text in ["EP+0", "EP-10", "S1+2", "SE0", "SL+4", "EP+0,5"] {
        let o = ok(text);
        assert!(o.base.needs_executable(), "{text}");
        assert_eq!(o.start_range(1000), None, "{text}");
    }
    for text in ["*", "0", "10,2", "EOF-4", "EOF-4,2"] {
        assert!(!ok(text).base.needs_executable(), "{text}");
    }
}

#[test]
fn huge_shift_saturates() {
    let o = off(OffsetBase::Absolute(u64::MAX - 1), Some(u32::MAX));
    assert_eq!(o.start_range(10), Some((u64::MAX - 1, u64::MAX)));
}

// ---------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------

/// The textual form of an offset, as a database writes it.
fn render(o: &Offset) -> String {
    let base = match o.base {
        OffsetBase::Any => return "*".to_owned(),
        OffsetBase::Absolute(n) => n.to_string(),
        OffsetBase::FromEnd(n) => format!("EOF-{n}"),
        OffsetBase::EntryPoint(d) if d < 0 => format!("EP-{}", d.unsigned_abs()),
        OffsetBase::EntryPoint(d) => format!("EP+{d}"),
        OffsetBase::SectionStart { section, delta } => format!("S{section}+{delta}"),
        OffsetBase::SectionEntire(x) => format!("SE{x}"),
        OffsetBase::LastSection(n) => format!("SL+{n}"),
        OffsetBase::VersionInfo => "VI".to_owned(),
    };
    match o.max_shift {
        Some(s) => format!("{base},{s}"),
        None => base,
    }
}

fn arb_offset() -> impl Strategy<Value = Offset> {
    let base = prop_oneof![
        Just(OffsetBase::Any),
        Just(OffsetBase::VersionInfo),
        any::<u64>().prop_map(OffsetBase::Absolute),
        any::<u64>().prop_map(OffsetBase::FromEnd),
        (-(i64::MAX)..=i64::MAX).prop_map(OffsetBase::EntryPoint),
        (any::<u32>(), any::<u64>())
            .prop_map(|(section, delta)| OffsetBase::SectionStart { section, delta }),
        any::<u32>().prop_map(OffsetBase::SectionEntire),
        any::<u64>().prop_map(OffsetBase::LastSection),
    ];
    (base, proptest::option::of(any::<u32>())).prop_map(|(base, max_shift)| Offset {
        base,
        // `*` takes no shift.
        max_shift: if base == OffsetBase::Any {
            None
        } else {
            max_shift
        },
    })
}

proptest! {
    #[test]
    fn offsets_round_trip(o in arb_offset()) {
        let text = render(&o);
        let parsed = offset::parse(&text);
        prop_assert_eq!(parsed, Ok(o), "text {:?}", text);
    }

    #[test]
    fn parse_never_panics(text in "\\PC{0,24}") {
        let _ = offset::parse(&text);
    }

    #[test]
    fn parse_never_panics_on_offset_like_text(text in "[*0-9EOFPSL+,-]{0,16}") {
        if let Ok(o) = offset::parse(&text) {
            // Whatever parses renders back to an equivalent offset.
            let again = offset::parse(&render(&o));
            prop_assert_eq!(again, Ok(o));
        }
    }

    #[test]
    fn start_range_is_ordered(o in arb_offset(), len in any::<u64>()) {
        if let Some((lo, hi)) = o.start_range(len) {
            prop_assert!(lo <= hi);
        }
    }
}
