//! Property tests of the parsers: they never panic, what they accept respects ClamAV's
//! structural rules, and generated signatures parse into exactly the expected elements.

use std::path::Path;

use moat_sigs::hex::{self, ByteSet, Element, Gap, Part, Pattern};
use moat_sigs::{line, Database};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------
// Never panic
// ---------------------------------------------------------------------------------------

/// Strings made of the characters the hex syntax uses, so that the parser goes deep.
fn hexish() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            4 => proptest::sample::select(vec![
                "0", "1", "9", "a", "b", "f", "A", "F", "?", "*", "{", "}", "-", "(", ")",
                "|", "!", "[", "]", "B", "L", "W", "2", "12", "128", "33",
            ]),
            1 => proptest::sample::select(vec!["aa", "bb", "cc", "??", "a?", "?a", "{2}", "{-2}",
                "{2-}", "{2-4}", "{200}", "[1-2]", "(B)", "(L)", "(W)", "(aa|bb)", "!(aa|bb)",
                "(aabb|ccdd)", "(aa|bbcc)", "*"]),
        ],
        0..24,
    )
    .prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn hex_parse_never_panics(text in "\\PC{0,48}") {
        let _ = hex::parse(&text);
    }

    #[test]
    fn hex_parse_never_panics_on_hexish_text(text in hexish()) {
        let _ = hex::parse(&text);
    }

    #[test]
    fn accepted_patterns_respect_clamav_rules(text in hexish()) {
        if let Ok(p) = hex::parse(&text) {
            check_structure(&p, &text);
        }
    }

    #[test]
    fn line_parsers_never_panic(text in "\\PC{0,80}") {
        let _ = line::parse_hash(&text, "");
        let _ = line::parse_ndb(&text, "");
        let _ = line::parse_ign2(&text);
    }

    #[test]
    fn ndb_parser_never_panics_on_ndb_like_lines(
        name in "[A-Za-z.]{0,4}",
        target in "[0-9-]{0,3}",
        offset in "[*0-9EOFPSL+,-]{0,8}",
        sig in hexish(),
        tail in "(:[0-9x]{0,3}){0,3}",
    ) {
        let _ = line::parse_ndb(&format!("{name}:{target}:{offset}:{sig}{tail}"), "");
    }

    #[test]
    fn database_from_text_never_panics(text in "[\\PC\r\n]{0,120}") {
        for ext in ["ndb", "hdb", "hsb", "fp", "sfp", "ign2", "ign", "ldb", "foo"] {
            let _ = Database::from_text(Path::new(&format!("x.{ext}")), &text);
        }
    }
}

fn check_structure(p: &Pattern, text: &str) {
    assert_eq!(p.parts.len(), p.gaps.len() + 1, "{text}");
    for part in &p.parts {
        assert!(
            part.literal_runs().iter().any(|(_, r)| r.len() >= 2),
            "{text}: a part without two consecutive static bytes was accepted: {part:?}"
        );
        for e in &part.elements {
            if let Element::Skip { min, max } = e {
                assert!(min <= max, "{text}: inverted skip");
                assert!(*max < hex::INLINE_SKIP_LIMIT, "{text}: skip too long");
            }
        }
    }
    let pure_static = p.parts.len() == 1
        && p.parts[0]
            .elements
            .iter()
            .all(|e| matches!(e, Element::Byte(_)));
    if pure_static {
        assert!(p.parts[0].elements.len() >= 3, "{text}: short static");
    }
}

// ---------------------------------------------------------------------------------------
// Generated signatures parse into the expected elements
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Tok {
    Byte(u8),
    Any,
    High(u8),
    Low(u8),
    Skip(u32),
    Class(Vec<u8>, bool),
    Alt(Vec<Vec<u8>>, bool),
}

impl Tok {
    fn render(&self) -> String {
        match self {
            Tok::Byte(b) => format!("{b:02x}"),
            Tok::Any => "??".into(),
            Tok::High(v) => format!("{v:x}?"),
            Tok::Low(v) => format!("?{v:x}"),
            Tok::Skip(n) => format!("{{{n}}}"),
            Tok::Class(bytes, neg) => {
                group(*neg, bytes.iter().map(|b| format!("{b:02x}")).collect())
            }
            Tok::Alt(alts, neg) => group(
                *neg,
                alts.iter()
                    .map(|a| a.iter().map(|b| format!("{b:02X}")).collect())
                    .collect(),
            ),
        }
    }

    fn element(&self) -> Element {
        match self {
            Tok::Byte(b) => Element::Byte(*b),
            Tok::Any => Element::Masked { value: 0, mask: 0 },
            Tok::High(v) => Element::Masked {
                value: v << 4,
                mask: 0xf0,
            },
            Tok::Low(v) => Element::Masked {
                value: *v,
                mask: 0x0f,
            },
            Tok::Skip(n) => Element::Skip { min: *n, max: *n },
            Tok::Class(bytes, neg) => {
                let mut set = ByteSet::EMPTY;
                for &b in bytes {
                    set.insert(b);
                }
                Element::class(if *neg { set.negate() } else { set })
            }
            Tok::Alt(alts, neg) => Element::alt(
                alts.iter()
                    .map(|a| a.iter().map(|&b| Element::Byte(b)).collect())
                    .collect(),
                *neg,
            ),
        }
    }
}

fn group(negated: bool, members: Vec<String>) -> String {
    format!("{}({})", if negated { "!" } else { "" }, members.join("|"))
}

fn tok() -> impl Strategy<Value = Tok> {
    prop_oneof![
        6 => any::<u8>().prop_map(Tok::Byte),
        2 => Just(Tok::Any),
        1 => (0u8..16).prop_map(Tok::High),
        1 => (0u8..16).prop_map(Tok::Low),
        1 => (0u32..128).prop_map(Tok::Skip),
        1 => (proptest::collection::btree_set(any::<u8>(), 2..5), any::<bool>())
            .prop_map(|(s, neg)| Tok::Class(s.into_iter().collect(), neg)),
        1 => (2usize..4, 2usize..4, any::<bool>()).prop_flat_map(|(len, n, neg)| {
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), len), n)
                .prop_map(move |alts| Tok::Alt(alts, neg))
        }),
    ]
}

/// A part: tokens around a guaranteed pair of static bytes.
fn part_toks() -> impl Strategy<Value = Vec<Tok>> {
    (
        proptest::collection::vec(tok(), 0..4),
        any::<[u8; 2]>(),
        proptest::collection::vec(tok(), 0..4),
    )
        .prop_map(|(mut before, pair, after)| {
            before.push(Tok::Byte(pair[0]));
            before.push(Tok::Byte(pair[1]));
            before.extend(after);
            before
        })
}

fn gap_tok() -> impl Strategy<Value = (String, Gap)> {
    prop_oneof![
        Just(("*".to_owned(), Gap { min: 0, max: None })),
        (1u32..1000).prop_map(|n| (
            format!("{{-{n}}}"),
            Gap {
                min: 0,
                max: Some(n)
            }
        )),
        (0u32..1000).prop_map(|n| (format!("{{{n}-}}"), Gap { min: n, max: None })),
        (0u32..1000, 1u32..1000).prop_map(|(n, d)| (
            format!("{{{n}-{}}}", n + d),
            Gap {
                min: n,
                max: Some(n + d)
            }
        )),
        (128u32..100_000).prop_map(|n| (
            format!("{{{n}}}"),
            Gap {
                min: n,
                max: Some(n)
            }
        )),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn generated_signatures_parse_as_expected(
        first in part_toks(),
        rest in proptest::collection::vec((gap_tok(), part_toks()), 0..3),
    ) {
        let mut text: String = first.iter().map(Tok::render).collect();
        let mut parts = vec![Part { elements: first.iter().map(Tok::element).collect() }];
        let mut gaps = Vec::new();
        for ((gap_text, gap), toks) in &rest {
            text.push_str(gap_text);
            text.extend(toks.iter().map(Tok::render));
            gaps.push(*gap);
            parts.push(Part { elements: toks.iter().map(Tok::element).collect() });
        }
        let expected = Pattern { parts, gaps, offset_origin: 0 };
        let pure_static_short = rest.is_empty()
            && first.len() < 3
            && first.iter().all(|t| matches!(t, Tok::Byte(_)));
        let parsed = hex::parse(&text);
        if pure_static_short {
            prop_assert!(parsed.is_err(), "{} should be rejected (static, < 3 bytes)", text);
        } else {
            prop_assert_eq!(parsed, Ok(expected), "text {}", text);
        }
    }

    #[test]
    fn uppercase_and_lowercase_parse_the_same(first in part_toks()) {
        let text: String = first.iter().map(Tok::render).collect();
        // Boundary letters B/L/W never occur in generated text, so case is free to change.
        prop_assert_eq!(hex::parse(&text.to_uppercase()), hex::parse(&text.to_lowercase()));
    }
}
