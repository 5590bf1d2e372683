//! The hex syntax of ClamAV body signatures, parsed into a [`Pattern`].
//!
//! A pattern is a sequence of [`Part`]s separated by [`Gap`]s. Gaps are the *range*
//! wildcards (`*`, `{-n}`, `{n-}`, `{n-m}` and `{n}` for `n >= 128`): they split a
//! signature into independently located parts, each of which must hold at least two
//! consecutive static bytes (ClamAV's rule, which is what lets a multi-pattern search
//! find every part). Inside a part, every other construct is an [`Element`]:
//!
//! | syntax | element |
//! |---|---|
//! | `4d` | [`Element::Byte`] |
//! | `??`, `4?`, `?d` | [`Element::Masked`] (mask `00`, `f0`, `0f`) |
//! | `{n}` with `n < 128`, anchored `aa[x-y]…` | [`Element::Skip`] (ClamAV inlines these) |
//! | `(aa\|bb)`, `!(aa\|bb)` | [`Element::Class`] (a byte set, possibly negated) |
//! | `(aabb\|ccdd)`, `!(aabb\|ccdd)`, `(aa\|bb??cc)`, `(aa\|b0(cc\|dd)b0)` | [`Element::Alt`] (may nest) |
//! | `(B)`, `(L)`, `(W)` | [`Element::Boundary`] |

use crate::error::ParseError;

/// A parsed hex signature: `parts.len() == gaps.len() + 1`, and `gaps[i]` separates
/// `parts[i]` from `parts[i + 1]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// The independently located parts, in order.
    pub parts: Vec<Part>,
    /// The distance constraints between consecutive parts.
    pub gaps: Vec<Gap>,
    /// The index of the element of part 0 whose position the offset column
    /// constrains: 0, except after a leading anchored byte (`aa[x-y]bbcc...`), where
    /// ClamAV counts the offset from the first element after the gap (measured).
    pub offset_origin: usize,
}

/// A contiguous piece of a pattern: a sequence of elements matched back to back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The elements, matched in order with no gap between them.
    pub elements: Vec<Element>,
}

/// The number of bytes allowed between the end of one part and the start of the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    /// Fewest bytes in between.
    pub min: u32,
    /// Most bytes in between; `None` for unbounded (`*`, `{n-}`).
    pub max: Option<u32>,
}

/// A set of byte values, as a 256-bit map.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ByteSet(pub [u64; 4]);

impl ByteSet {
    /// The empty set.
    pub const EMPTY: ByteSet = ByteSet([0; 4]);

    /// Adds `b` to the set.
    pub fn insert(&mut self, b: u8) {
        self.0[(b >> 6) as usize] |= 1 << (b & 63);
    }

    /// Whether `b` is in the set.
    #[inline]
    pub fn contains(&self, b: u8) -> bool {
        self.0[(b >> 6) as usize] & (1 << (b & 63)) != 0
    }

    /// The complement of the set.
    pub fn negate(self) -> ByteSet {
        ByteSet(self.0.map(|w| !w))
    }
}

impl std::fmt::Debug for ByteSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let members: Vec<String> = (0..=255u8)
            .filter(|b| self.contains(*b))
            .map(|b| format!("{b:02x}"))
            .collect();
        write!(f, "ByteSet[{}]", members.join(","))
    }
}

/// The character classes `(B)`, `(L)` and `(W)`.
///
/// As ClamAV evaluates them: at the very start or end of a signature they are
/// zero-width look-behind/look-ahead assertions, also satisfied at the start/end of
/// the file; anywhere else they consume one byte (`(L)`: `\n` or `\r\n`). The exact
/// byte classes differ by position and are the engine's business.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boundary {
    /// `(B)`: a word boundary, including the start and end of the file.
    Word,
    /// `(L)`: a line end (CR, LF, CRLF) or the start/end of the file.
    Line,
    /// `(W)`: one non-alphanumeric byte.
    NonAlnum,
    /// No hex syntax: the edge of a wide (`::wf`) full-word subsignature of a logical
    /// signature, a zero-width assertion that the UTF-16LE character next to the match
    /// is not an alphanumeric ASCII one (a byte `isalnum` followed by a zero byte).
    WideNonAlnum,
}

/// One matching unit of a part: 16 bytes (the rare byte sets and alternates are
/// boxed), since nearly every element of a real signature is one plain byte and the
/// loader holds every signature's elements at once (at 40 bytes, the elements of the
/// real main.ldb and daily.ldb were most of the loader's peak memory, measured).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Element {
    /// Exactly this byte.
    Byte(u8),
    /// A byte `b` with `b & mask == value` (`??` has mask 0).
    Masked {
        /// The expected bits.
        value: u8,
        /// Which bits are compared.
        mask: u8,
    },
    /// Any number of bytes in `min..=max` (an inline `{n}` or an anchored `[x-y]`).
    Skip {
        /// Fewest bytes skipped.
        min: u32,
        /// Most bytes skipped.
        max: u32,
    },
    /// One byte from the set (single-byte alternates; negation already applied).
    Class(Box<ByteSet>),
    /// Multi-byte alternates.
    Alt(Box<Alternates>),
    /// A character class that is not a plain byte set.
    Boundary(Boundary),
}

const _: () = assert!(std::mem::size_of::<Element>() == 16);

/// Multi-byte alternates: one of the alternatives, each a sequence of elements.
/// When `negated`, all alternatives have the same length `n` of plain bytes and the
/// element matches any `n` bytes that equal none of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alternates {
    /// The alternatives.
    pub alternatives: Vec<Vec<Element>>,
    /// Whether the set is negated (fixed-length alternates only).
    pub negated: bool,
}

impl Element {
    /// [`Element::Alt`] of these alternatives.
    pub fn alt(alternatives: Vec<Vec<Element>>, negated: bool) -> Element {
        Element::Alt(Box::new(Alternates {
            alternatives,
            negated,
        }))
    }

    /// [`Element::Class`] of this set.
    pub fn class(set: ByteSet) -> Element {
        Element::Class(Box::new(set))
    }

    /// The fewest and the most bytes this element consumes.
    pub fn len_range(&self) -> (u32, u32) {
        match self {
            Element::Byte(_) | Element::Masked { .. } | Element::Class(_) => (1, 1),
            Element::Skip { min, max } => (*min, *max),
            Element::Alt(alt) => {
                let ranges = alt.alternatives.iter().map(|alt| seq_len_range(alt));
                ranges.fold((u32::MAX, 0), |(lo, hi), (a, b)| (lo.min(a), hi.max(b)))
            }
            Element::Boundary(Boundary::Word | Boundary::NonAlnum) => (1, 1),
            Element::Boundary(Boundary::WideNonAlnum) => (2, 2),
            Element::Boundary(Boundary::Line) => (1, 2),
        }
    }
}

/// The fewest and most bytes a sequence of elements consumes.
pub fn seq_len_range(elements: &[Element]) -> (u32, u32) {
    elements.iter().fold((0u32, 0u32), |(lo, hi), e| {
        let (a, b) = e.len_range();
        (lo.saturating_add(a), hi.saturating_add(b))
    })
}

impl Part {
    /// The runs of consecutive [`Element::Byte`]s: `(index of first element, bytes)`.
    pub fn literal_runs(&self) -> Vec<(usize, Vec<u8>)> {
        let mut runs = Vec::new();
        let mut current: Option<(usize, Vec<u8>)> = None;
        for (i, e) in self.elements.iter().enumerate() {
            match (e, &mut current) {
                (Element::Byte(b), Some((_, bytes))) => bytes.push(*b),
                (Element::Byte(b), None) => current = Some((i, vec![*b])),
                (_, cur) => runs.extend(cur.take()),
            }
        }
        runs.extend(current);
        runs
    }
}

/// Ranged wildcards `{n}` below this many bytes are inlined as skips, as ClamAV does.
pub const INLINE_SKIP_LIMIT: u32 = 128;

/// Parses a ClamAV hex signature body.
pub fn parse(text: &str) -> Result<Pattern, ParseError> {
    Parser {
        s: text.as_bytes(),
        pos: 0,
        min_static: MIN_STATIC_SIGNATURE,
        depth: 0,
    }
    .pattern()
}

/// Parses the hex body of a logical signature's subsignature: as [`parse`], but a
/// body of static bytes only may be two bytes long (measured: ClamAV 1.4.6 accepts
/// `4141` there, and refuses one byte).
pub fn parse_subsig(text: &str) -> Result<Pattern, ParseError> {
    Parser {
        s: text.as_bytes(),
        pos: 0,
        min_static: 2,
        depth: 0,
    }
    .pattern()
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    min_static: usize,
    /// How deep the alternates being parsed are nested.
    depth: usize,
}

impl Parser<'_> {
    fn err<T>(&self, reason: impl std::fmt::Display) -> Result<T, ParseError> {
        Err(ParseError::new(format!(
            "hex signature, at character {}: {reason}",
            self.pos + 1
        )))
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn pattern(mut self) -> Result<Pattern, ParseError> {
        if self.s.is_empty() {
            return self.err("empty signature");
        }
        let mut parts = Vec::new();
        let mut gaps = Vec::new();
        let mut elements = Vec::new();
        let mut anchors = Vec::new();
        let mut offset_origin = 0;
        while let Some(c) = self.peek() {
            match c {
                b'*' => {
                    self.pos += 1;
                    self.close_part(&mut parts, std::mem::take(&mut elements), &anchors)?;
                    anchors.clear();
                    gaps.push(Gap { min: 0, max: None });
                }
                b'{' => match self.range()? {
                    (n, _, true) if n < INLINE_SKIP_LIMIT => {
                        elements.push(Element::Skip { min: n, max: n })
                    }
                    (min, max, _) => {
                        self.close_part(&mut parts, std::mem::take(&mut elements), &anchors)?;
                        anchors.clear();
                        gaps.push(Gap { min, max });
                    }
                },
                b'[' => {
                    let (min, max) = self.anchor_range()?;
                    if parts.is_empty() && elements.len() == 1 {
                        offset_origin = 2;
                    }
                    anchors.push(elements.len());
                    elements.push(Element::Skip { min, max });
                }
                b'(' | b'!' => elements.push(self.group()?),
                _ => elements.push(self.hex_pair()?),
            }
        }
        self.close_part(&mut parts, elements, &anchors)?;
        let pure_static = parts.len() == 1
            && parts[0]
                .elements
                .iter()
                .all(|e| matches!(e, Element::Byte(_)));
        if pure_static && parts[0].elements.len() < self.min_static {
            return self.err(format!(
                "a signature of static bytes only needs at least {} bytes",
                self.min_static
            ));
        }
        Ok(Pattern {
            parts,
            gaps,
            offset_origin,
        })
    }

    /// Ends a part: checks ClamAV's structural rules on it.
    fn close_part(
        &self,
        parts: &mut Vec<Part>,
        elements: Vec<Element>,
        anchors: &[usize],
    ) -> Result<(), ParseError> {
        if elements.is_empty() {
            return self.err("a range wildcard ('*' or '{...}') needs bytes on both sides");
        }
        if elements.len() > MAX_ELEMENTS || parts.len() >= MAX_ELEMENTS {
            return self.err(format!("more than {MAX_ELEMENTS} elements or parts"));
        }
        for &a in anchors {
            // `aa[x-y]HEXSIG` or `HEXSIG[x-y]aa`: one side is exactly one static byte.
            let one_byte =
                |e: &Element| e.len_range() == (1, 1) && !matches!(e, Element::Boundary(_));
            let single_before = a == 1 && one_byte(&elements[0]);
            let single_after = a + 2 == elements.len() && one_byte(&elements[a + 1]);
            if !(single_before || single_after) {
                return self.err("'[x-y]' must join a single byte to the rest of the part");
            }
        }
        // The vector grew by doubling: give the slack back (every signature's parts
        // are held until the engine is compiled).
        let mut elements = elements;
        elements.shrink_to_fit();
        let part = Part { elements };
        let static_pair = part
            .elements
            .windows(2)
            .any(|w| matches!(w, [Element::Byte(_), Element::Byte(_)]));
        if !static_pair {
            return self
                .err("every part of a signature needs at least two consecutive static bytes");
        }
        parts.push(part);
        Ok(())
    }

    fn number(&mut self) -> Option<u32> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        std::str::from_utf8(&self.s[start..self.pos])
            .ok()?
            .parse()
            .ok()
    }

    fn expect(&mut self, c: u8) -> Result<(), ParseError> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            self.err(format!("expected '{}'", c as char))
        }
    }

    /// `{n}`, `{-n}`, `{n-}`, `{n-m}` as `(min, max)`.
    /// `{n}`, `{-n}`, `{n-}`, `{n-m}` as `(min, max, exact)`, where `exact` marks
    /// the `{n}` form (the only one ClamAV inlines).
    fn range(&mut self) -> Result<(u32, Option<u32>, bool), ParseError> {
        self.expect(b'{')?;
        let lo = self.number();
        let range = if self.peek() == Some(b'-') {
            self.pos += 1;
            let hi = self.number();
            match (lo, hi) {
                // A maximum of 0 means "no limit" to ClamAV (`{-0}`, `{0-0}` match
                // any gap, measured).
                (None, Some(0)) | (Some(_), Some(0)) => (lo.unwrap_or(0), None, false),
                (None, Some(n)) => (0, Some(n), false),
                (Some(n), None) => (n, None, false),
                // ClamAV loads `{4-2}` and never matches it; so does moat.
                (Some(n), Some(m)) => (n, Some(m), false),
                (None, None) => return self.err("empty range '{-}'"),
            }
        } else {
            match lo {
                Some(n) => (n, Some(n), true),
                None => return self.err("bad range, expected '{n}', '{-n}', '{n-}' or '{n-m}'"),
            }
        };
        self.expect(b'}')?;
        Ok(range)
    }

    /// `[x-y]` of an anchored byte.
    fn anchor_range(&mut self) -> Result<(u32, u32), ParseError> {
        self.expect(b'[')?;
        let lo = self.number();
        // `[n]` is accepted by ClamAV as `[n-n]`.
        let hi = if self.peek() == Some(b'-') {
            self.pos += 1;
            self.number()
        } else {
            lo
        };
        self.expect(b']')?;
        match (lo, hi) {
            (Some(x), Some(y)) if x <= y && y <= ANCHOR_MAX_DISTANCE => Ok((x, y)),
            (Some(_), Some(_)) => self.err(format!(
                "anchored range '[x-y]' needs x <= y <= {ANCHOR_MAX_DISTANCE}"
            )),
            _ => self.err("bad anchored range, expected '[x-y]'"),
        }
    }

    fn hex_pair(&mut self) -> Result<Element, ParseError> {
        let (Some(hi), Some(lo)) = (self.peek(), self.s.get(self.pos + 1).copied()) else {
            return self.err("odd number of hex digits");
        };
        let element = match (nibble(hi), nibble(lo)) {
            (Some(h), Some(l)) => Element::Byte(h << 4 | l),
            (None, Some(l)) if hi == b'?' => Element::Masked {
                value: l,
                mask: 0x0f,
            },
            (Some(h), None) if lo == b'?' => Element::Masked {
                value: h << 4,
                mask: 0xf0,
            },
            (None, None) if hi == b'?' && lo == b'?' => Element::Masked { value: 0, mask: 0 },
            _ => {
                return self.err(format!(
                    "invalid character in '{}{}'",
                    hi as char, lo as char
                ))
            }
        };
        self.pos += 2;
        Ok(element)
    }

    /// `(B)`, `(L)`, `(W)`, `(alt|alt...)` or `!(alt|alt...)`.
    fn group(&mut self) -> Result<Element, ParseError> {
        let negated = self.peek() == Some(b'!');
        if negated {
            self.pos += 1;
        }
        self.expect(b'(')?;
        if !negated && self.s.get(self.pos + 1) == Some(&b')') {
            let class = match self.s[self.pos] {
                b'B' => Some(Boundary::Word),
                b'L' => Some(Boundary::Line),
                b'W' => Some(Boundary::NonAlnum),
                _ => None,
            };
            if let Some(class) = class {
                self.pos += 2;
                return Ok(Element::Boundary(class));
            }
        }
        let mut alternatives = vec![Vec::new()];
        loop {
            match self.peek() {
                None => return self.err("unterminated alternates, expected ')'"),
                Some(b')') => {
                    self.pos += 1;
                    break;
                }
                Some(b'|') => {
                    self.pos += 1;
                    alternatives.push(Vec::new());
                }
                // Measured: `{n}` is accepted inside alternates, `{n-m}` is refused
                // ("Alternative match contains unsupported ranged wildcard").
                Some(b'{') => match self.range()? {
                    (n, _, true) if n < INLINE_SKIP_LIMIT => alternatives
                        .last_mut()
                        .unwrap()
                        .push(Element::Skip { min: n, max: n }),
                    _ => {
                        return self.err("only '{n}' ranges (n < 128) may appear inside alternates")
                    }
                },
                // Nested alternates (`66(6767|6868)66` as one alternative) are generic
                // alternates in ClamAV; negated ones and character classes are refused
                // inside them (measured).
                Some(b'(') => {
                    if self.depth >= MAX_ALT_DEPTH {
                        return self.err("alternates nested too deep");
                    }
                    self.depth += 1;
                    let nested = self.group()?;
                    self.depth -= 1;
                    if matches!(nested, Element::Boundary(_)) {
                        return self.err("(B), (L) and (W) cannot appear inside alternates");
                    }
                    alternatives.last_mut().unwrap().push(nested)
                }
                Some(b'*' | b'!' | b'[') => {
                    return self.err("alternates cannot contain '*', negated groups or '[x-y]'")
                }
                Some(_) => {
                    let e = self.hex_pair()?;
                    alternatives.last_mut().unwrap().push(e)
                }
            }
        }
        self.alternates(alternatives, negated)
    }

    fn alternates(
        &self,
        alternatives: Vec<Vec<Element>>,
        negated: bool,
    ) -> Result<Element, ParseError> {
        if alternatives.iter().any(Vec::is_empty) {
            return self.err("empty alternative in '(...|...)'");
        }
        let plain = alternatives
            .iter()
            .all(|alt| alt.iter().all(|e| matches!(e, Element::Byte(_))));
        let fixed_len = alternatives
            .iter()
            .all(|a| a.len() == alternatives[0].len());
        if plain && alternatives.iter().all(|a| a.len() == 1) {
            let mut set = ByteSet::EMPTY;
            for alt in &alternatives {
                if let Element::Byte(b) = alt[0] {
                    set.insert(b);
                }
            }
            return Ok(Element::class(if negated { set.negate() } else { set }));
        }
        if negated && !(plain && fixed_len) {
            return self.err("negated alternates must be plain bytes of one length");
        }
        Ok(Element::alt(alternatives, negated))
    }
}

/// The most elements in one part, and parts in one signature (the engine indexes
/// them with 16 bits; real signatures are far smaller).
pub const MAX_ELEMENTS: usize = u16::MAX as usize;

/// How deep alternates may nest (a bound on recursion; real signatures nest once).
pub const MAX_ALT_DEPTH: usize = 16;

/// The shortest signature made only of static bytes that ClamAV accepts.
pub const MIN_STATIC_SIGNATURE: usize = 3;

/// The widest distance an anchored byte `aa[x-y]` may have from its part.
pub const ANCHOR_MAX_DISTANCE: u32 = 32;

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}
