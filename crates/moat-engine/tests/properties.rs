//! Property tests of the matcher against a naive reference model of ClamAV's semantics
//! (docs/clamav-oracle.md sections 3 and 4): a signature is a sequence of parts of
//! fixed-length elements separated by gaps `[min, max]`; parts appear in order without
//! overlapping; the offset constrains where the first part starts.

use std::path::Path;

use moat_engine::{Engine, Verdict};
use moat_sigs::Database;
use proptest::prelude::*;

fn engine(text: &str) -> Engine {
    Engine::new(
        Database::from_text(Path::new("t.ndb"), text)
            .unwrap_or_else(|e| panic!("{text:?} should load: {e}")),
    )
}

fn infected(engine: &Engine, data: &[u8]) -> bool {
    matches!(engine.scan_bytes(data), Verdict::Infected(_))
}

/// A fixed-length element of the reference model.
#[derive(Debug, Clone)]
enum Tok {
    Byte(u8),
    Any,
    High(u8),
    Low(u8),
    Skip(usize),
    Class(Vec<u8>, bool),
    Alt(Vec<Vec<u8>>, bool),
}

impl Tok {
    fn len(&self) -> usize {
        match self {
            Tok::Skip(n) => *n,
            Tok::Alt(alts, _) => alts[0].len(),
            _ => 1,
        }
    }

    fn matches(&self, window: &[u8]) -> bool {
        match self {
            Tok::Byte(b) => window[0] == *b,
            Tok::Any | Tok::Skip(_) => true,
            Tok::High(v) => window[0] >> 4 == *v,
            Tok::Low(v) => window[0] & 0x0f == *v,
            Tok::Class(set, neg) => set.contains(&window[0]) != *neg,
            Tok::Alt(alts, neg) => alts.iter().any(|a| a[..] == *window) != *neg,
        }
    }

    fn render(&self) -> String {
        let group = |neg: bool, members: Vec<String>| {
            format!("{}({})", if neg { "!" } else { "" }, members.join("|"))
        };
        match self {
            Tok::Byte(b) => format!("{b:02x}"),
            Tok::Any => "??".into(),
            Tok::High(v) => format!("{v:x}?"),
            Tok::Low(v) => format!("?{v:x}"),
            Tok::Skip(n) => format!("{{{n}}}"),
            Tok::Class(set, neg) => group(*neg, set.iter().map(|b| format!("{b:02x}")).collect()),
            Tok::Alt(alts, neg) => group(
                *neg,
                alts.iter()
                    .map(|a| a.iter().map(|b| format!("{b:02x}")).collect())
                    .collect(),
            ),
        }
    }
}

fn part_len(part: &[Tok]) -> usize {
    part.iter().map(Tok::len).sum()
}

fn part_matches_at(part: &[Tok], data: &[u8], start: usize) -> bool {
    let mut pos = start;
    for t in part {
        let Some(window) = data.get(pos..pos + t.len()) else {
            return false;
        };
        if !t.matches(window) {
            return false;
        }
        pos += t.len();
    }
    true
}

/// The reference model: whether parts joined by gaps `(min, max)` match `data` with the
/// first part starting in `first_starts`.
fn reference(
    parts: &[Vec<Tok>],
    gaps: &[(usize, Option<usize>)],
    data: &[u8],
    first_starts: impl Fn(usize) -> bool,
) -> bool {
    if data.len() < 6 {
        return false;
    }
    let mut ends: Vec<usize> = (0..=data.len())
        .filter(|&s| first_starts(s) && part_matches_at(&parts[0], data, s))
        .map(|s| s + part_len(&parts[0]))
        .collect();
    for (part, &(min, max)) in parts[1..].iter().zip(gaps) {
        let len = part_len(part);
        ends = (0..=data.len())
            .filter(|&s| {
                ends.iter()
                    .any(|&e| s >= e && s - e >= min && max.is_none_or(|m| s - e <= m))
                    && part_matches_at(part, data, s)
            })
            .map(|s| s + len)
            .collect();
    }
    !ends.is_empty()
}

/// A small alphabet of high bytes, so that random data holds many partial matches (and
/// ClamAV's normalized text copy, which drops bytes >= 0x80, could never match).
const ALPHABET: [u8; 3] = [0xa0, 0xa1, 0xa2];

fn small_byte() -> impl Strategy<Value = u8> {
    proptest::sample::select(&ALPHABET[..])
}

fn small_tok() -> impl Strategy<Value = Tok> {
    prop_oneof![
        6 => small_byte().prop_map(Tok::Byte),
        2 => Just(Tok::Any),
        1 => Just(Tok::High(0xa)),
        1 => (0u8..3).prop_map(Tok::Low),
        1 => (0usize..3).prop_map(Tok::Skip),
        1 => (proptest::collection::btree_set(small_byte(), 2..3), any::<bool>())
            .prop_map(|(s, neg)| Tok::Class(s.into_iter().collect(), neg)),
        1 => (proptest::collection::vec(proptest::collection::vec(small_byte(), 2), 2..3), any::<bool>())
            .prop_map(|(alts, neg)| Tok::Alt(alts, neg)),
    ]
}

/// A part of the small alphabet, with its guaranteed pair of consecutive static bytes.
fn small_part() -> impl Strategy<Value = Vec<Tok>> {
    (
        proptest::collection::vec(small_tok(), 0..3),
        small_byte(),
        small_byte(),
        proptest::collection::vec(small_tok(), 0..3),
    )
        .prop_map(|(mut before, a, b, after)| {
            before.push(Tok::Byte(a));
            before.push(Tok::Byte(b));
            before.extend(after);
            if before.len() < 3 && before.iter().all(|t| matches!(t, Tok::Byte(_))) {
                before.push(Tok::Byte(ALPHABET[0]));
            }
            before
        })
}

fn small_gap() -> impl Strategy<Value = (String, (usize, Option<usize>))> {
    prop_oneof![
        Just(("*".to_owned(), (0, None))),
        (1usize..4).prop_map(|n| (format!("{{-{n}}}"), (0, Some(n)))),
        (0usize..4).prop_map(|n| (format!("{{{n}-}}"), (n, None))),
        (0usize..3, 1usize..3).prop_map(|(n, d)| (format!("{{{n}-{}}}", n + d), (n, Some(n + d)))),
    ]
}

fn render(parts: &[Vec<Tok>], gaps: &[(String, (usize, Option<usize>))]) -> String {
    let mut text: String = parts[0].iter().map(Tok::render).collect();
    for (part, (gap, _)) in parts[1..].iter().zip(gaps) {
        text.push_str(gap);
        text.extend(part.iter().map(Tok::render));
    }
    text
}

/// Parts, and the gaps between them (text, `(min, max)`).
type Sig = (Vec<Vec<Tok>>, Vec<(String, (usize, Option<usize>))>);

fn small_sig() -> impl Strategy<Value = Sig> {
    (
        small_part(),
        proptest::collection::vec((small_gap(), small_part()), 0..3),
    )
        .prop_map(|(first, rest)| {
            let mut parts = vec![first];
            let mut gaps = Vec::new();
            for (g, p) in rest {
                gaps.push(g);
                parts.push(p);
            }
            (parts, gaps)
        })
}

#[derive(Debug, Clone)]
enum Off {
    Any,
    At(usize, Option<usize>),
    Eof(usize, Option<usize>),
}

impl Off {
    fn render(&self) -> String {
        let shift = |s: &Option<usize>| s.map(|s| format!(",{s}")).unwrap_or_default();
        match self {
            Off::Any => "*".into(),
            Off::At(n, s) => format!("{n}{}", shift(s)),
            Off::Eof(n, s) => format!("EOF-{n}{}", shift(s)),
        }
    }

    fn allows(&self, start: usize, len: usize) -> bool {
        match *self {
            Off::Any => true,
            Off::At(n, s) => start >= n && start <= n + s.unwrap_or(0),
            Off::Eof(n, s) => n <= len && start >= len - n && start <= len - n + s.unwrap_or(0),
        }
    }
}

fn offset() -> impl Strategy<Value = Off> {
    prop_oneof![
        2 => Just(Off::Any),
        1 => (0usize..40, proptest::option::of(0usize..6)).prop_map(|(n, s)| Off::At(n, s)),
        1 => (0usize..40, proptest::option::of(0usize..6)).prop_map(|(n, s)| Off::Eof(n, s)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// The engine agrees with the reference model on random signatures and data drawn
    /// from the same three bytes (so near-misses and overlaps are frequent).
    #[test]
    fn engine_agrees_with_reference_model(
        (parts, gaps) in small_sig(),
        off in offset(),
        data in proptest::collection::vec(small_byte(), 0..40),
    ) {
        let text = render(&parts, &gaps);
        let ndb = format!("S:0:{}:{}\n", off.render(), text);
        let e = engine(&ndb);
        let gap_values: Vec<_> = gaps.iter().map(|(_, g)| *g).collect();
        let expected = reference(&parts, &gap_values, &data, |s| off.allows(s, data.len()));
        prop_assert_eq!(
            infected(&e, &data),
            expected,
            "ndb {:?} data {:02x?}", ndb, data
        );
    }
}

/// A tiny deterministic generator, to build instances of a signature from one seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn small(&mut self) -> u8 {
        ALPHABET[self.below(ALPHABET.len())]
    }
}

/// Bytes that (usually) match one token.
fn instance_of(t: &Tok, rng: &mut Rng) -> Vec<u8> {
    match t {
        Tok::Byte(b) => vec![*b],
        Tok::Any | Tok::High(_) => vec![rng.small()],
        Tok::Low(v) => vec![0xa0 | v],
        Tok::Skip(n) => (0..*n).map(|_| rng.small()).collect(),
        Tok::Class(set, false) => vec![set[rng.below(set.len())]],
        Tok::Class(set, true) => {
            let others: Vec<u8> = ALPHABET
                .iter()
                .copied()
                .filter(|b| !set.contains(b))
                .collect();
            vec![if others.is_empty() {
                rng.small()
            } else {
                others[rng.below(others.len())]
            }]
        }
        Tok::Alt(alts, false) => alts[rng.below(alts.len())].clone(),
        Tok::Alt(alts, true) => (0..alts[0].len()).map(|_| rng.small()).collect(),
    }
}

/// Random data holding a (usually valid) instance of the signature, sometimes with one
/// byte changed or one gap off by one.
fn data_with_instance(parts: &[Vec<Tok>], gaps: &[(usize, Option<usize>)], seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    let mut data: Vec<u8> = (0..rng.below(8)).map(|_| rng.small()).collect();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            let (min, max) = gaps[i - 1];
            let hi = max.unwrap_or(min + 4);
            let mut g = min + rng.below(hi - min + 1);
            if rng.below(6) == 0 {
                g = if rng.below(2) == 0 {
                    g.saturating_sub(1)
                } else {
                    g + 1
                };
            }
            data.extend((0..g).map(|_| rng.small()));
        }
        for t in part {
            data.extend(instance_of(t, &mut rng));
        }
    }
    data.extend((0..rng.below(8)).map(|_| rng.small()));
    if rng.below(3) == 0 && !data.is_empty() {
        let i = rng.below(data.len());
        data[i] = rng.small();
    }
    data
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Same comparison on data built around an instance of the signature (mostly matches,
    /// with near-misses: one byte changed, a gap one too short or too long).
    #[test]
    fn engine_agrees_with_reference_model_near_instances(
        (parts, gaps) in small_sig(),
        off in offset(),
        seed in any::<u64>(),
    ) {
        let text = render(&parts, &gaps);
        let ndb = format!("S:0:{}:{}\n", off.render(), text);
        let e = engine(&ndb);
        let gap_values: Vec<_> = gaps.iter().map(|(_, g)| *g).collect();
        let data = data_with_instance(&parts, &gap_values, seed);
        let expected = reference(&parts, &gap_values, &data, |s| off.allows(s, data.len()));
        prop_assert_eq!(
            infected(&e, &data),
            expected,
            "ndb {:?} data {:02x?}", ndb, data
        );
    }
}

// ---------------------------------------------------------------------------------------
// Embedding and mutation
// ---------------------------------------------------------------------------------------

/// A signature of static bytes and `??` made from a byte string: `wild[i]` turns byte `i`
/// into `??` (keeping at least two consecutive static bytes).
fn static_and_any(bytes: &[u8], wild: &[bool]) -> (String, Vec<bool>) {
    let mut wild = wild.to_vec();
    wild[0] = false;
    wild[1] = false;
    if bytes.len() < 3 {
        wild.iter_mut().for_each(|w| *w = false);
    }
    let text = bytes
        .iter()
        .zip(&wild)
        .map(|(b, w)| {
            if *w {
                "??".to_owned()
            } else {
                format!("{b:02x}")
            }
        })
        .collect();
    (text, wild)
}

fn pattern_and_mask() -> impl Strategy<Value = (Vec<u8>, Vec<bool>)> {
    (3usize..24).prop_flat_map(|n| {
        (
            proptest::collection::vec(any::<u8>(), n),
            proptest::collection::vec(proptest::bool::weighted(0.25), n),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// A pattern made of a byte string (some bytes turned into `??`) always matches that
    /// byte string embedded anywhere in random data, with `*`, the exact offset, and the
    /// equivalent `EOF-n`.
    #[test]
    fn embedded_pattern_always_matches(
        (bytes, wild) in pattern_and_mask(),
        prefix in proptest::collection::vec(any::<u8>(), 0..40),
        suffix in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        let (text, _) = static_and_any(&bytes, &wild);
        let data = [&prefix[..], &bytes[..], &suffix[..]].concat();
        prop_assume!(data.len() >= 6);
        let at = prefix.len();
        let from_end = data.len() - at;
        for off in ["*".to_owned(), at.to_string(), format!("EOF-{}", from_end),
                    format!("{},{}", at.saturating_sub(3), 3), format!("0,{}", at)] {
            let ndb = format!("S:0:{}:{}\n", off, text);
            prop_assert!(infected(&engine(&ndb), &data), "ndb {:?} data {:02x?}", ndb, data);
        }
    }

    /// On a background of bytes below 0x80, a pattern whose static bytes are all >= 0x80
    /// (its `??` filled with low bytes) matches only where it was put; changing any one
    /// of its static bytes makes it not match, and the exact offset plus one never matches.
    #[test]
    fn single_byte_change_in_a_static_position_misses(
        (bytes, wild) in pattern_and_mask(),
        prefix in proptest::collection::vec(0u8..0x80, 3..40),
        suffix in proptest::collection::vec(0u8..0x80, 0..40),
        fill in proptest::collection::vec(0u8..0x80, 24),
        which in any::<proptest::sample::Index>(),
        replacement in any::<u8>(),
    ) {
        let high: Vec<u8> = bytes.iter().map(|b| b | 0x80).collect();
        let (text, wild) = static_and_any(&high, &wild);
        let instance: Vec<u8> = high
            .iter()
            .zip(&wild)
            .zip(&fill)
            .map(|((b, w), f)| if *w { *f } else { *b })
            .collect();
        let data = [&prefix[..], &instance[..], &suffix[..]].concat();
        let at = prefix.len();
        let e = engine(&format!("S:0:*:{}\n", text));
        prop_assert!(infected(&e, &data));
        let exact = engine(&format!("S:0:{}:{}\n", at, text));
        let after = engine(&format!("S:0:{}:{}\n", at + 1, text));
        let before = engine(&format!("S:0:{}:{}\n", at - 1, text));
        prop_assert!(infected(&exact, &data));
        prop_assert!(!infected(&after, &data));
        prop_assert!(!infected(&before, &data));

        let statics: Vec<usize> = (0..high.len()).filter(|&i| !wild[i]).collect();
        let i = statics[which.index(statics.len())];
        prop_assume!(replacement != high[i]);
        let mut mutated = data.clone();
        mutated[at + i] = replacement;
        prop_assert!(!infected(&e, &mutated), "mutated byte {} of {}: {:02x?}", i, text, mutated);
    }

    /// Range gaps between two parts: `aabb{GAP}ccdd` matches a distance `g` exactly when
    /// the range allows it. A maximum of 0 means "no limit" (measured on clamscan:
    /// `{0-0}`, `{-0}` and `{3-0}` match gaps of 300).
    #[test]
    fn gap_ranges(n in 0u32..40, d in 0u32..40, g in 0usize..90, kind in 0u8..5) {
        let (sig, ok) = match kind {
            0 => (
                format!("aabb{{{}-{}}}ccdd", n, n + d),
                n as usize <= g && (n + d == 0 || g <= (n + d) as usize),
            ),
            1 => (format!("aabb{{-{}}}ccdd", d), d == 0 || g <= d as usize),
            2 => (format!("aabb{{{}-}}ccdd", n), g >= n as usize),
            3 => (format!("aabb{{{}}}ccdd", n), g == n as usize),
            _ => ("aabb*ccdd".to_owned(), true),
        };
        let data = [&b"@@@@"[..], &[0xaa, 0xbb], &vec![0u8; g], &[0xcc, 0xdd], b"@@@@"].concat();
        let e = engine(&format!("S:0:*:{sig}\n"));
        prop_assert_eq!(infected(&e, &data), ok, "{} with gap {}", sig, g);
    }

    /// Large fixed gaps (split into parts) are exact too.
    #[test]
    fn large_fixed_gaps(n in 128usize..3000, delta in -2i64..=2) {
        let g = (n as i64 + delta) as usize;
        let data = [&b"@@@@"[..], &[0xaa, 0xbb], &vec![0u8; g], &[0xcc, 0xdd], b"@@@@"].concat();
        let e = engine(&format!("S:0:*:aabb{{{}}}ccdd\n", n));
        prop_assert_eq!(infected(&e, &data), delta == 0);
    }

    /// Scanning never panics, whatever the data, for a fixed set of varied signatures.
    #[test]
    fn scan_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        let e = engine(concat!(
            "A:0:*:aabb??ccdd\n",
            "B:0:*:(B)616263(B)\n",
            "C:0:*:6162(L)6364\n",
            "D:0:EOF-10,5:aabb{2-5}ccdd*eeff\n",
            "E:0:3:aa[1-4]bbcc\n",
            "F:0:*:0000(0102|0304)(05|06)0708\n",
            "G:7:*:616263??6465\n",
            "H:0:*:ffff!(0102|0304)????ffff\n",
        ));
        let _ = e.scan_bytes(&data);
    }
}
