//! Logical signatures (`.ldb` lines):
//! `NAME;TargetDescriptionBlock;LogicalExpression;Subsig0;Subsig1;...`.
//!
//! What ClamAV 1.4.6 does with each construct was measured with clamscan (see
//! docs/clamav-oracle.md, "Logical signatures"); the rules are repeated where they are
//! applied below. A line is either a [`LogicalSig`], a well-formed line ClamAV skips
//! without counting it ([`LdbSkip`]), a well-formed line moat cannot evaluate yet
//! ([`Ldb::NotEvaluated`], counted as ClamAV counts it), or an error (the whole
//! database is refused, as clamscan refuses it).

use crate::error::ParseError;
use crate::hex::{self, Pattern};
use crate::line::{Target, EXECUTABLE_TARGETS, TARGET_MAX};
use crate::offset::{self, Offset, OffsetBase};
use crate::FLEVEL;

/// Most subsignatures a logical signature may have (ClamAV's limit).
pub const MAX_SUBSIGS: usize = 64;

/// The lowest `Engine:` level ClamAV accepts for the attributes it added in 0.96
/// (everything but `Engine` and `Target`).
pub const NEW_ATTRIBUTES_MIN_FLEVEL: u32 = 51;

/// PCRE match limit, as ClamAV's default `PCREMatchLimit`.
pub const PCRE_MATCH_LIMIT: u32 = 100_000;
/// PCRE recursion (depth) limit, as ClamAV's default `PCRERecMatchLimit`.
pub const PCRE_DEPTH_LIMIT: u32 = 2_000;

/// A parsed logical signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogicalSig {
    /// The detection name, suffix included.
    pub name: Box<str>,
    /// Conditions on the file checked before any matching.
    pub target: TargetDesc,
    /// The logical expression over the subsignatures.
    pub expr: Expr,
    /// The subsignatures, in index order.
    pub subsigs: Vec<Subsig>,
}

/// The target description block: every condition is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetDesc {
    /// `Target:n`; `None` applies to every file type.
    pub target: Option<Target>,
    /// `FileSize:a-b`, inclusive.
    pub file_size: Option<(u64, u64)>,
    /// `EntryPoint:a-b`, inclusive (executables only).
    pub entry_point: Option<(u64, u64)>,
    /// `NumberOfSections:a-b`, inclusive (executables only).
    pub sections: Option<(u64, u64)>,
    /// `Container:CL_TYPE_X`: the type of the container the file was found in.
    pub container: Option<Box<str>>,
    /// `Intermediates:A>B>...`: the chain of containers above the file, outermost first.
    pub intermediates: Option<Vec<Box<str>>>,
    /// `IconGroup1:`/`IconGroup2:` given: the PE's icon must resemble one of an `.idb`
    /// group (not evaluated yet: such signatures are counted, not matched).
    pub icon_group: bool,
    /// `HandlerType:CL_TYPE_X`: on a match ClamAV also hands the file to that type's
    /// parser; the signature itself reports as usual (measured).
    pub handler_type: Option<Box<str>>,
}

/// A comparison of a count in the logical expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountOp {
    /// `=X`
    Equal,
    /// `>X`
    More,
    /// `<X`
    Less,
}

/// A logical expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// A subsignature index: true when it matched at least once.
    Sub(u8),
    /// `A&B`
    And(Box<Expr>, Box<Expr>),
    /// `A|B`
    Or(Box<Expr>, Box<Expr>),
    /// `A=X`, `A>X`, `A<X`, optionally `,Y`: the matches counted inside `A` compared
    /// with `X`, and (with `Y`) at least `Y` distinct subsignatures matched inside `A`.
    Count {
        /// The counted sub-expression.
        inner: Box<Expr>,
        /// The comparison.
        op: CountOp,
        /// `X`.
        value: u32,
        /// `Y`, when given (0 for a trailing comma, which ClamAV accepts).
        distinct: Option<u32>,
    },
}

impl Expr {
    /// The highest subsignature index the expression refers to.
    pub fn max_index(&self) -> u8 {
        match self {
            Expr::Sub(i) => *i,
            Expr::And(a, b) | Expr::Or(a, b) => a.max_index().max(b.max_index()),
            Expr::Count { inner, .. } => inner.max_index(),
        }
    }

    /// Evaluates the expression over per-subsignature match counts: (truth, matches
    /// counted, bit set of subsignatures counted), ClamAV's three values. The rules,
    /// measured on clamscan 1.4.6 (docs/clamav-oracle.md): a subsignature index
    /// yields its count and its bit even when its count is 0; `&` and `|` pass up
    /// the counts and bits of their true operands only, and nothing when false; a
    /// count comparison (`=X`, `>X`, `<X`, `,Y`: at least `Y` bits) looks at what its
    /// operand yields whether or not the operand is true, and when it holds passes up
    /// the count, and the bits only when its operand is a single index.
    pub fn eval(&self, counts: &[u32]) -> (bool, u64, u64) {
        match self {
            Expr::Sub(i) => {
                let n = counts.get(*i as usize).copied().unwrap_or(0);
                (n > 0, u64::from(n), 1u64 << i)
            }
            Expr::And(a, b) | Expr::Or(a, b) => {
                let (va, ca, ia) = a.eval(counts);
                let (vb, cb, ib) = b.eval(counts);
                let v = if matches!(self, Expr::And(..)) {
                    va && vb
                } else {
                    va || vb
                };
                if !v {
                    return (false, 0, 0);
                }
                let (mut c, mut ids) = (0, 0);
                if va {
                    (c, ids) = (c + ca, ids | ia);
                }
                if vb {
                    (c, ids) = (c + cb, ids | ib);
                }
                (true, c, ids)
            }
            Expr::Count {
                inner,
                op,
                value,
                distinct,
            } => {
                let (_, c, ids) = inner.eval(counts);
                let x = u64::from(*value);
                let mut ok = match op {
                    CountOp::Equal => c == x,
                    CountOp::More => c > x,
                    CountOp::Less => c < x,
                };
                if let Some(y) = distinct {
                    ok &= ids.count_ones() >= *y;
                }
                // Measured: over a group, the comparison passes up the group's count
                // but not its subsignatures (`(((0|1)>0)&2)>0,2` is false when all
                // three match); over a single index it passes both.
                let passed = if matches!(**inner, Expr::Sub(_)) {
                    ids
                } else {
                    0
                };
                if ok {
                    (true, c, passed)
                } else {
                    (false, 0, 0)
                }
            }
        }
    }
}

/// Per-subsignature modifiers `::i`, `::w`, `::f`, `::a`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Modifiers {
    /// `i`: letters match either case.
    pub nocase: bool,
    /// `w`: the pattern is matched as UTF-16LE (each byte followed by a zero byte).
    pub wide: bool,
    /// `f`: the match must be delimited by non-alphanumeric bytes (or the file's edges).
    pub fullword: bool,
    /// `a`: with `w`, the plain (ASCII) form is matched too.
    pub ascii: bool,
}

/// PCRE flags of a regex subsignature.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PcreFlags {
    /// `g`: count every match, not just the first.
    pub global: bool,
    /// `r`: rolling: the match may start anywhere from the offset on.
    pub rolling: bool,
    /// `e`: encompass: the whole match must lie inside the offset window.
    pub encompass: bool,
    /// `i`: caseless.
    pub caseless: bool,
    /// `s`: dot matches newlines.
    pub dotall: bool,
    /// `m`: multi-line `^`/`$`.
    pub multiline: bool,
    /// `x`: extended syntax.
    pub extended: bool,
    /// `A`: anchored at the start position.
    pub anchored: bool,
    /// `U`: ungreedy quantifiers.
    pub ungreedy: bool,
    /// `E`: `$` matches only at the very end (not before a final newline).
    pub dollar_end_only: bool,
}

/// A regex subsignature `[Offset:]Trigger/regex/[flags]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcreSubsig {
    /// Runs only when this expression over the other subsignatures holds.
    pub trigger: Expr,
    /// The regex as written between the slashes.
    pub regex: Box<str>,
    /// Where the match must start (`*` when not given).
    pub offset: Offset,
    /// Its flags.
    pub flags: PcreFlags,
}

impl PcreSubsig {
    /// The pattern handed to PCRE2: ClamAV's default limits (match and depth) set
    /// in the pattern itself, the inline options for `U` and `A`.
    pub fn compiled_pattern(&self) -> String {
        let mut p = format!("(*LIMIT_MATCH={PCRE_MATCH_LIMIT})(*LIMIT_DEPTH={PCRE_DEPTH_LIMIT})");
        if self.flags.ungreedy {
            p.push_str("(?U)");
        }
        // PCRE2_DOLLAR_ENDONLY has no inline form: `$` outside classes and quotes
        // becomes `\z` (it only matters without `m`, which it ignores, as PCRE does).
        let regex = if self.flags.dollar_end_only && !self.flags.multiline {
            dollar_end_only(&self.regex)
        } else {
            self.regex.to_string()
        };
        if self.flags.anchored {
            p.push_str("\\G(?:");
            p.push_str(&regex);
            p.push(')');
        } else {
            p.push_str(&regex);
        }
        p
    }

    /// A PCRE2 builder with this subsignature's options.
    pub fn builder(&self) -> pcre2::bytes::RegexBuilder {
        let mut b = pcre2::bytes::RegexBuilder::new();
        b.caseless(self.flags.caseless)
            .dotall(self.flags.dotall)
            .multi_line(self.flags.multiline)
            .extended(self.flags.extended)
            .jit_if_available(true);
        b
    }
}

/// `regex` with every `$` metacharacter (outside `[...]`, `\Q...\E` and escapes)
/// replaced by `\z`.
fn dollar_end_only(regex: &str) -> String {
    let mut out = String::with_capacity(regex.len() + 4);
    let mut chars = regex.chars().peekable();
    let (mut class, mut quoted) = (false, false);
    while let Some(c) = chars.next() {
        if quoted {
            out.push(c);
            if c == '\\' && chars.peek() == Some(&'E') {
                out.push(chars.next().unwrap_or('E'));
                quoted = false;
            }
            continue;
        }
        match c {
            '\\' => {
                out.push(c);
                if let Some(n) = chars.next() {
                    quoted = n == 'Q' && !class;
                    out.push(n);
                }
            }
            '[' if !class => {
                class = true;
                out.push(c);
                // A `]` (or `^]`) first in a class is a literal.
                if chars.peek() == Some(&'^') {
                    out.push(chars.next().unwrap_or('^'));
                }
                if chars.peek() == Some(&']') {
                    out.push(chars.next().unwrap_or(']'));
                }
            }
            ']' if class => {
                class = false;
                out.push(c);
            }
            '$' if !class => out.push_str("\\z"),
            _ => out.push(c),
        }
    }
    out
}

/// How a byte-compare subsignature reads its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberBase {
    /// `h`: hexadecimal text.
    Hex,
    /// `d`: decimal text.
    Decimal,
    /// `a`: hexadecimal text after `0x`, else decimal.
    Auto,
    /// `i`: a raw binary integer.
    Raw,
}

/// A byte-compare subsignature `T(>>n#opts#cmp[,cmp])`: a number read `n` bytes after
/// (`>>`) or before (`<<`) the start of subsignature `T`'s last match, compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ByteCompare {
    /// The subsignature whose match position is the reference.
    pub trigger: u8,
    /// Bytes from the trigger's match start (negative: before it).
    pub shift: i64,
    /// How the bytes are read.
    pub base: NumberBase,
    /// `l` (`Some(true)`), `b` (`Some(false)`), or neither.
    pub little_endian: Option<bool>,
    /// `e`: every one of the bytes must be a digit of the base.
    pub exact: bool,
    /// How many bytes are read.
    pub bytes: u32,
    /// One or two comparisons, all of which must hold.
    pub comparisons: Vec<(CountOp, u64)>,
}

/// `T(` is split off; `rest` is `>>n#opts#cmp[,cmp])`. Errors as measured.
fn parse_byte_compare(trigger: &str, rest: &str) -> Result<Subsig, ParseError> {
    let bad = |what: &str| ParseError::new(format!("byte-compare subsignature: {what}"));
    let trigger: u8 = trigger
        .parse()
        .ok()
        .filter(|&t: &u8| usize::from(t) < MAX_SUBSIGS)
        .ok_or_else(|| bad("bad trigger index"))?;
    let inner = rest.strip_suffix(')').ok_or_else(|| bad("missing ')'"))?;
    let mut fields = inner.split('#');
    let (Some(shift), Some(opts), Some(cmps), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(bad("expected (>>n#options#comparisons)"));
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|c| c.is_ascii_digit());
    let shift = match (shift.strip_prefix(">>"), shift.strip_prefix("<<")) {
        (Some(n), _) if digits(n) => n.parse::<i64>().map_err(|_| bad("shift out of range"))?,
        (_, Some(n)) if digits(n) => -n.parse::<i64>().map_err(|_| bad("shift out of range"))?,
        _ => return Err(bad("the shift must be >>n or <<n")),
    };
    let mut o = opts.chars().peekable();
    let base = match o.next() {
        Some('h') => NumberBase::Hex,
        Some('d') => NumberBase::Decimal,
        Some('a') => NumberBase::Auto,
        Some('i') => NumberBase::Raw,
        _ => return Err(bad("invalid options (expected h, d, a or i first)")),
    };
    let little_endian = match o.peek() {
        Some('l') => Some(true),
        Some('b') => Some(false),
        _ => None,
    };
    if little_endian.is_some() {
        o.next();
    }
    let exact = o.peek() == Some(&'e');
    if exact {
        o.next();
    }
    let count: String = o.collect();
    if !digits(&count) {
        return Err(bad(
            "invalid options (expected base, l or b, e, then a byte count)",
        ));
    }
    let bytes: u32 = count.parse().map_err(|_| bad("byte count out of range"))?;
    if bytes == 0 {
        return Err(bad("byte count of 0"));
    }
    if base == NumberBase::Decimal && little_endian == Some(true) {
        return Err(bad("decimal numbers have no little-endian form"));
    }
    if base == NumberBase::Raw && ![1, 2, 4, 8].contains(&bytes) {
        return Err(bad("raw integers are 1, 2, 4 or 8 bytes"));
    }
    let mut comparisons = Vec::new();
    for cmp in cmps.split(',') {
        let (op, value) = match cmp.as_bytes().first() {
            Some(b'=') => (CountOp::Equal, &cmp[1..]),
            Some(b'>') => (CountOp::More, &cmp[1..]),
            Some(b'<') => (CountOp::Less, &cmp[1..]),
            _ => return Err(bad("a comparison is =v, >v or <v")),
        };
        if !digits(value) {
            return Err(bad("a comparison value is a decimal number"));
        }
        let value = value
            .parse()
            .map_err(|_| bad("comparison value out of range"))?;
        comparisons.push((op, value));
    }
    if comparisons.len() > 2 {
        return Err(bad("at most two comparisons"));
    }
    Ok(Subsig::ByteCompare(ByteCompare {
        trigger,
        shift,
        base,
        little_endian,
        exact,
        bytes,
        comparisons,
    }))
}

impl ByteCompare {
    /// Reads the number at `at` in `data` and checks the comparisons (measured rules:
    /// `h`, `a` and `i` need `l` or `b`, otherwise nothing matches; text is read up to
    /// the first byte that is not a digit of the base unless `e` requires them all).
    pub fn holds_at(&self, data: &[u8], at: u64) -> bool {
        let Some(window) = usize::try_from(at)
            .ok()
            .and_then(|a| data.get(a..a.checked_add(self.bytes as usize)?))
        else {
            return false;
        };
        let value = match self.base {
            NumberBase::Raw => {
                let Some(little) = self.little_endian else {
                    return false;
                };
                let fold = |acc: u64, &b: &u8| (acc << 8) | u64::from(b);
                if little {
                    window.iter().rev().fold(0, fold)
                } else {
                    window.iter().fold(0, fold)
                }
            }
            NumberBase::Decimal => match text_number(window, 10, self.exact) {
                Some(v) => v,
                None => return false,
            },
            NumberBase::Hex | NumberBase::Auto => {
                // Big-endian only: the parser leaves little-endian text unevaluated.
                if self.little_endian != Some(false) {
                    return false;
                }
                let hex = self.base == NumberBase::Hex
                    || window.starts_with(b"0x")
                    || window.starts_with(b"0X");
                let digits = if self.base == NumberBase::Auto && hex {
                    &window[2..]
                } else {
                    window
                };
                if !hex {
                    match text_number(digits, 10, self.exact) {
                        Some(v) => v,
                        None => return false,
                    }
                } else {
                    match text_number(digits, 16, self.exact) {
                        Some(v) => v,
                        None => return false,
                    }
                }
            }
        };
        // Measured: ClamAV compares signed 64-bit values (an 8-byte raw number with its
        // top bit set is negative); larger text values and comparison values saturate.
        let value = if self.base == NumberBase::Raw {
            value as i64
        } else {
            i64::try_from(value).unwrap_or(i64::MAX)
        };
        self.comparisons.iter().all(|&(op, x)| {
            let x = i64::try_from(x).unwrap_or(i64::MAX);
            match op {
                CountOp::Equal => value == x,
                CountOp::More => value > x,
                CountOp::Less => value < x,
            }
        })
    }
}

/// How many leading bytes of `text` are digits of `radix`; with `exact`, all must be.
fn digit_run(text: &[u8], radix: u32, exact: bool) -> Option<usize> {
    let n = text
        .iter()
        .take_while(|&&c| char::from(c).is_digit(radix))
        .count();
    (!exact || (n > 0 && n == text.len())).then_some(n)
}

/// The number written at the start of `text` in `radix`; without `exact`, text that
/// does not start with a digit reads as 0 (measured: `db4#<1000` holds on `AA..`).
fn text_number(text: &[u8], radix: u32, exact: bool) -> Option<u64> {
    let n = digit_run(text, radix, exact)?;
    if n == 0 {
        return Some(0);
    }
    // The digits are valid: a failure is an overflow, which saturates (as strtoll).
    Some(u64::from_str_radix(std::str::from_utf8(&text[..n]).ok()?, radix).unwrap_or(u64::MAX))
}

/// One subsignature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subsig {
    /// A hex body, as in `.ndb`, with an offset and modifiers.
    Body {
        /// Where the match must start.
        offset: Offset,
        /// The byte pattern.
        pattern: Pattern,
        /// `::i`, `::w`, `::f`, `::a`.
        modifiers: Modifiers,
    },
    /// A regex.
    Pcre(PcreSubsig),
    /// A byte-compare subsignature `T(>>n#opts#cmp[,cmp])`.
    ByteCompare(ByteCompare),
    /// A macro subsignature `${min-max}group$`: a member of `.ndb` macro group `group`
    /// found `min` to `max` bytes after the previous subsignature. Measured: clamscan
    /// 1.4.6 loads and counts them but never matched one in any trial (with a `$N`
    /// group member in an `.ndb` loaded first), so moat evaluates it as never matching.
    Macro {
        /// Fewest bytes after the previous subsignature.
        min: u32,
        /// Most bytes after it.
        max: u32,
        /// The macro group.
        group: u32,
    },
}

/// Why a well-formed logical signature is left out without being counted, as
/// ClamAV 1.4.6 leaves it out (measured: "Known viruses" does not include it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LdbSkip {
    /// Its `Engine:` range excludes [`FLEVEL`].
    Flevel,
    /// A `Target:` above [`TARGET_MAX`].
    UnknownTarget,
    /// An attribute ClamAV does not know (e.g. `Foo:1`).
    UnknownAttribute,
    /// `Container:` or `Intermediates:` naming a type ClamAV does not know.
    UnknownContainerType,
}

/// The outcome of parsing a well-formed `.ldb` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ldb {
    /// A signature moat evaluates.
    Sig(LogicalSig),
    /// Skipped and not counted, as ClamAV does.
    Skipped(LdbSkip),
    /// Loaded and counted by ClamAV, but moat cannot evaluate it yet: the reason.
    NotEvaluated(&'static str),
}

/// The `CL_TYPE_*` names ClamAV 1.4 knows (for `Container:`, `Intermediates:`,
/// `HandlerType:`, `.cdb` and `.ftm`). Each was checked with clamscan 1.4.6 (a
/// `Container:` naming it is counted); `CL_TYPE_OTHER`, `CL_TYPE_ERROR` and
/// `CL_TYPE_BMP` are not known to it.
pub const CL_TYPES: &[&str] = &[
    "CL_TYPE_ANY",
    "CL_TYPE_TEXT_ASCII",
    "CL_TYPE_TEXT_UTF8",
    "CL_TYPE_TEXT_UTF16LE",
    "CL_TYPE_TEXT_UTF16BE",
    "CL_TYPE_BINARY_DATA",
    "CL_TYPE_MSEXE",
    "CL_TYPE_ELF",
    "CL_TYPE_MACHO",
    "CL_TYPE_MACHO_UNIBIN",
    "CL_TYPE_POSIX_TAR",
    "CL_TYPE_OLD_TAR",
    "CL_TYPE_CPIO_OLD",
    "CL_TYPE_CPIO_ODC",
    "CL_TYPE_CPIO_NEWC",
    "CL_TYPE_CPIO_CRC",
    "CL_TYPE_GZ",
    "CL_TYPE_ZIP",
    "CL_TYPE_BZ",
    "CL_TYPE_RAR",
    "CL_TYPE_ARJ",
    "CL_TYPE_MSSZDD",
    "CL_TYPE_MSOLE2",
    "CL_TYPE_MSCAB",
    "CL_TYPE_MSCHM",
    "CL_TYPE_SIS",
    "CL_TYPE_SCRENC",
    "CL_TYPE_GRAPHICS",
    "CL_TYPE_GIF",
    "CL_TYPE_PNG",
    "CL_TYPE_JPEG",
    "CL_TYPE_TIFF",
    "CL_TYPE_RIFF",
    "CL_TYPE_BINHEX",
    "CL_TYPE_TNEF",
    "CL_TYPE_CRYPTFF",
    "CL_TYPE_PDF",
    "CL_TYPE_UUENCODED",
    "CL_TYPE_SCRIPT",
    "CL_TYPE_HTML_UTF16",
    "CL_TYPE_RTF",
    "CL_TYPE_7Z",
    "CL_TYPE_SWF",
    "CL_TYPE_JAVA",
    "CL_TYPE_XAR",
    "CL_TYPE_XZ",
    "CL_TYPE_OOXML_WORD",
    "CL_TYPE_OOXML_PPT",
    "CL_TYPE_OOXML_XL",
    "CL_TYPE_INTERNAL",
    "CL_TYPE_HWP3",
    "CL_TYPE_OOXML_HWP",
    "CL_TYPE_PS",
    "CL_TYPE_EGG",
    "CL_TYPE_ONENOTE",
    "CL_TYPE_PYTHON_COMPILED",
    "CL_TYPE_LHA_LZH",
    "CL_TYPE_PART_ANY",
    "CL_TYPE_PART_HFSPLUS",
    "CL_TYPE_MBR",
    "CL_TYPE_HTML",
    "CL_TYPE_MAIL",
    "CL_TYPE_SFX",
    "CL_TYPE_ZIPSFX",
    "CL_TYPE_RARSFX",
    "CL_TYPE_EGGSFX",
    "CL_TYPE_7ZSFX",
    "CL_TYPE_CABSFX",
    "CL_TYPE_ARJSFX",
    "CL_TYPE_AUTOIT",
    "CL_TYPE_ISHIELD_MSI",
    "CL_TYPE_ISO9660",
    "CL_TYPE_DMG",
    "CL_TYPE_GPT",
    "CL_TYPE_APM",
    "CL_TYPE_XDP",
    "CL_TYPE_XML_WORD",
    "CL_TYPE_XML_XL",
    "CL_TYPE_XML_HWP",
    "CL_TYPE_HWPOLE2",
    "CL_TYPE_MHTML",
    "CL_TYPE_LNK",
    "CL_TYPE_UDF",
    "CL_TYPE_IGNORED",
    "CL_TYPE_ALZ",
    "CL_TYPE_NULSFT",
];

/// Parses an `.ldb` line. `suffix` is appended to the detection name.
pub fn parse_ldb(line: &str, suffix: &str) -> Result<Ldb, ParseError> {
    let fields: Vec<&str> = line.split(';').collect();
    if fields.len() < 4 {
        return Err(ParseError::new(
            "expected NAME;TARGETDESC;EXPRESSION;SUBSIG0[;SUBSIG1...] (too few fields)",
        ));
    }
    let name = fields[0];
    if name.is_empty() {
        return Err(ParseError::new("empty signature name"));
    }
    if name.bytes().any(|c| c.is_ascii_control()) {
        return Err(ParseError::new(
            "signature name contains control characters",
        ));
    }
    let subsig_texts = &fields[3..];
    if subsig_texts.len() > MAX_SUBSIGS {
        return Err(ParseError::new(format!(
            "{} subsignatures: at most {MAX_SUBSIGS} are allowed",
            subsig_texts.len()
        )));
    }
    let target = match parse_target_desc(fields[1])? {
        Ok(t) => t,
        Err(skip) => return Ok(Ldb::Skipped(skip)),
    };
    let expr = parse_expr(fields[2])?;
    let ids = usize::from(expr.max_index()) + 1;
    if ids != subsig_texts.len() {
        return Err(ParseError::new(format!(
            "the logical expression refers to {ids} subsignatures, the line has {}",
            subsig_texts.len()
        )));
    }
    let executable = target
        .target
        .is_some_and(|t| EXECUTABLE_TARGETS.contains(&t));
    let mut subsigs = Vec::with_capacity(subsig_texts.len());
    let mut not_evaluated = None;
    for (i, text) in subsig_texts.iter().enumerate() {
        let at = |e: ParseError| ParseError::new(format!("subsignature {i}: {e}"));
        match parse_subsig(text, i, executable).map_err(at)? {
            Ok(s) => subsigs.push(s),
            Err(reason) => {
                not_evaluated.get_or_insert(reason);
            }
        }
    }
    if let Some(reason) = not_evaluated {
        return Ok(Ldb::NotEvaluated(reason));
    }
    if target.icon_group {
        return Ok(Ldb::NotEvaluated(
            "icon-group conditions (IconGroup1/IconGroup2) are not evaluated yet",
        ));
    }
    let mut full = String::with_capacity(name.len() + suffix.len());
    full.push_str(name);
    full.push_str(suffix);
    Ok(Ldb::Sig(LogicalSig {
        name: full.into_boxed_str(),
        target,
        expr,
        subsigs,
    }))
}

/// Parses the target description block; the inner `Err` is a measured skip.
fn parse_target_desc(text: &str) -> Result<Result<TargetDesc, LdbSkip>, ParseError> {
    let mut desc = TargetDesc::default();
    let mut engine: Option<(u32, u32)> = None;
    let mut new_attribute = None;
    let mut skip = None;
    for (i, attr) in text.split(',').enumerate() {
        let Some((key, value)) = attr.split_once(':') else {
            return Err(ParseError::new(format!(
                "target description: incorrect format of attribute '{attr}' (expected Key:Value)"
            )));
        };
        match key {
            "Engine" => {
                if i != 0 {
                    return Err(ParseError::new(
                        "target description: the Engine attribute must come first",
                    ));
                }
                engine = Some(range(value, key)?);
            }
            "Target" => {
                let t: u32 = number(value, key)?;
                match Target::try_from(t).ok().filter(|t| *t <= TARGET_MAX) {
                    Some(t) => desc.target = Some(t),
                    None => {
                        skip.get_or_insert(LdbSkip::UnknownTarget);
                    }
                }
            }
            "FileSize" => {
                new_attribute.get_or_insert(key);
                desc.file_size = Some(range(value, key)?);
            }
            "EntryPoint" => {
                new_attribute.get_or_insert(key);
                desc.entry_point = Some(range(value, key)?);
            }
            "NumberOfSections" => {
                new_attribute.get_or_insert(key);
                desc.sections = Some(range(value, key)?);
            }
            "Container" => {
                new_attribute.get_or_insert(key);
                if !CL_TYPES.contains(&value) {
                    skip.get_or_insert(LdbSkip::UnknownContainerType);
                }
                desc.container = Some(value.into());
            }
            "Intermediates" => {
                new_attribute.get_or_insert(key);
                let chain: Vec<Box<str>> = value.split('>').map(Into::into).collect();
                if chain.iter().any(|t| !CL_TYPES.contains(&&**t)) {
                    skip.get_or_insert(LdbSkip::UnknownContainerType);
                }
                desc.intermediates = Some(chain);
            }
            "IconGroup1" | "IconGroup2" => {
                new_attribute.get_or_insert(key);
                desc.icon_group = true;
            }
            "HandlerType" => {
                new_attribute.get_or_insert(key);
                // Measured: an unknown type skips the signature (not counted); a known
                // one reports its name like any other signature.
                if !CL_TYPES.contains(&value) {
                    skip.get_or_insert(LdbSkip::UnknownContainerType);
                }
                desc.handler_type = Some(value.into());
            }
            _ => {
                // Measured: an unknown attribute makes ClamAV skip the signature
                // (not counted), before any other check of the block.
                return Ok(Err(LdbSkip::UnknownAttribute));
            }
        }
    }
    if let Some(key) = new_attribute {
        if engine.is_none_or(|(min, _)| min < NEW_ATTRIBUTES_MIN_FLEVEL) {
            return Err(ParseError::new(format!(
                "target description: {key} needs an Engine attribute (first) with a minimum of at least {NEW_ATTRIBUTES_MIN_FLEVEL}"
            )));
        }
    }
    if let Some((min, max)) = engine {
        if !(min..=max).contains(&FLEVEL) {
            return Ok(Err(LdbSkip::Flevel));
        }
    }
    if let Some(skip) = skip {
        return Ok(Err(skip));
    }
    if engine.is_some() && desc.target.is_none() {
        return Err(ParseError::new(
            "target description: no Target given (required with Engine)",
        ));
    }
    if (desc.entry_point.is_some() || desc.sections.is_some())
        && !desc.target.is_some_and(|t| EXECUTABLE_TARGETS.contains(&t))
    {
        return Err(ParseError::new(
            "target description: EntryPoint and NumberOfSections need Target 1 (PE), 6 (ELF) or 9 (Mach-O)",
        ));
    }
    Ok(Ok(desc))
}

/// `a-b` (inclusive). ClamAV reads `a-` as a maximum of 0.
fn range<T: std::str::FromStr + Default + Copy>(
    text: &str,
    key: &str,
) -> Result<(T, T), ParseError> {
    let Some((a, b)) = text.split_once('-') else {
        return Err(ParseError::new(format!(
            "target description: incorrect parameters in '{key}' (expected min-max)"
        )));
    };
    let min = number(a, key)?;
    let max = if b.is_empty() {
        T::default()
    } else {
        number(b, key)?
    };
    Ok((min, max))
}

fn number<T: std::str::FromStr>(text: &str, key: &str) -> Result<T, ParseError> {
    if text.is_empty() || !text.bytes().all(|c| c.is_ascii_digit()) {
        return Err(ParseError::new(format!(
            "target description: invalid argument '{text}' for {key}"
        )));
    }
    text.parse().map_err(|_| {
        ParseError::new(format!(
            "target description: {key} '{text}' is out of range"
        ))
    })
}

/// Parses a logical expression. Blanks are ignored (as ClamAV ignores them);
/// `A&B|C` groups to the right, `A&(B|C)`, as ClamAV splits at the first operator.
pub fn parse_expr(text: &str) -> Result<Expr, ParseError> {
    let bytes: Vec<u8> = text.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    if bytes.is_empty() {
        return Err(ParseError::new("empty logical expression"));
    }
    let mut p = ExprParser {
        s: &bytes,
        pos: 0,
        depth: 0,
    };
    let e = p.expr()?;
    if p.pos != bytes.len() {
        return p.err(if bytes[p.pos] == b')' {
            "missing opening parenthesis"
        } else {
            "unexpected character"
        });
    }
    Ok(e)
}

struct ExprParser<'a> {
    s: &'a [u8],
    pos: usize,
    depth: usize,
}

impl ExprParser<'_> {
    fn err<T>(&self, reason: &str) -> Result<T, ParseError> {
        Err(ParseError::new(format!(
            "logical expression, at character {}: {reason}",
            self.pos + 1
        )))
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn expr(&mut self) -> Result<Expr, ParseError> {
        let left = self.counted()?;
        match self.peek() {
            Some(op @ (b'&' | b'|')) => {
                self.pos += 1;
                let right = self.expr()?;
                Ok(if op == b'&' {
                    Expr::And(Box::new(left), Box::new(right))
                } else {
                    Expr::Or(Box::new(left), Box::new(right))
                })
            }
            _ => Ok(left),
        }
    }

    fn counted(&mut self) -> Result<Expr, ParseError> {
        let inner = self.primary()?;
        let as_op = |c: Option<u8>| match c {
            Some(b'=') => Some(CountOp::Equal),
            Some(b'>') => Some(CountOp::More),
            Some(b'<') => Some(CountOp::Less),
            _ => None,
        };
        let Some(mut op) = as_op(self.peek()) else {
            return Ok(inner);
        };
        self.pos += 1;
        // Measured: in a run of comparison characters the last one counts
        // (`8==9` is `8=9`, `0>=1` is `0=1`, `0=>1` is `0>1`; real main.ldb has `==`).
        while let Some(next) = as_op(self.peek()) {
            op = next;
            self.pos += 1;
        }
        let value = self.decimal("missing number after the comparison")?;
        let distinct = if self.peek() == Some(b',') {
            self.pos += 1;
            if self.peek().is_some_and(|c| c.is_ascii_digit()) {
                Some(self.decimal("missing number after ','")?)
            } else {
                Some(0)
            }
        } else {
            None
        };
        if matches!(self.peek(), Some(b'=' | b'>' | b'<')) {
            return self.err("a count cannot be compared twice");
        }
        Ok(Expr::Count {
            inner: Box::new(inner),
            op,
            value,
            distinct,
        })
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        match self.peek() {
            Some(b'(') => {
                self.depth += 1;
                if self.depth > 64 {
                    return self.err("parentheses nested too deep");
                }
                self.pos += 1;
                let e = self.expr()?;
                if self.peek() != Some(b')') {
                    return self.err("missing closing parenthesis");
                }
                self.pos += 1;
                self.depth -= 1;
                Ok(e)
            }
            Some(c) if c.is_ascii_digit() => {
                let n = self.decimal("missing subsignature index")?;
                if n as usize >= MAX_SUBSIGS {
                    return self.err("subsignature index above 63");
                }
                Ok(Expr::Sub(n as u8))
            }
            Some(_) => self.err("expected a subsignature index or '('"),
            None => self.err("missing right argument"),
        }
    }

    fn decimal(&mut self, missing: &str) -> Result<u32, ParseError> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        if start == self.pos {
            return self.err(missing);
        }
        let digits = std::str::from_utf8(&self.s[start..self.pos]).unwrap_or("");
        match digits.parse() {
            Ok(n) => Ok(n),
            Err(_) => self.err("number out of range"),
        }
    }
}

/// Parses one subsignature; the inner `Err` is why moat cannot evaluate it.
fn parse_subsig(
    text: &str,
    index: usize,
    executable: bool,
) -> Result<Result<Subsig, &'static str>, ParseError> {
    if let Some(slash) = text.find('/') {
        return parse_pcre(text, slash, index, executable);
    }
    if let Some(rest) = text.strip_prefix("${") {
        return parse_macro(rest).map(Ok);
    }
    if let Some(paren) = text.find('(') {
        if paren > 0 && text[..paren].bytes().all(|c| c.is_ascii_digit()) && text.contains('#') {
            let cmp = parse_byte_compare(&text[..paren], &text[paren + 1..])?;
            return Ok(match &cmp {
                // Measured: clamscan loads a byte compare triggered by itself and never
                // matches it.
                Subsig::ByteCompare(c) if usize::from(c.trigger) == index => {
                    Err("a byte compare triggered by itself (clamscan never matches it)")
                }
                Subsig::ByteCompare(c)
                    if c.little_endian == Some(true)
                        && matches!(c.base, NumberBase::Hex | NumberBase::Auto) =>
                {
                    // Measured, and not matched by a model yet: odd digit counts, short
                    // numbers and `0x` prefixes read little-endian.
                    Err("byte-compare subsignatures reading little-endian text (hl, al) are not supported yet")
                }
                _ => Ok(cmp),
            });
        }
    }
    let fields = SubsigFields::split(text);
    let modifiers = match fields.modifiers {
        Some(m) => parse_modifiers(m)?,
        None => Modifiers::default(),
    };
    let (offset_text, body) = (fields.offset, fields.body);
    if offset_text == Some("") {
        // Measured: clamscan loads `:4141…` and never matches it.
        return Ok(Err(
            "an empty offset field (clamscan loads it and never matches it)",
        ));
    }
    let offset = match offset_text {
        Some(o) => offset::parse(o)?,
        None => Offset {
            base: OffsetBase::Any,
            max_shift: None,
        },
    };
    check_offset(&offset, executable)?;
    let pattern = hex::parse_subsig(body)?;
    if offset.base == OffsetBase::VersionInfo {
        return Ok(Err(
            "version-information (VI) subsignatures are not evaluated yet",
        ));
    }
    Ok(Ok(Subsig::Body {
        offset,
        pattern,
        modifiers,
    }))
}

/// The `:`-separated fields of a hex subsignature, as ClamAV 1.4.6 reads them
/// (measured, docs/clamav-oracle.md "Subsignature fields"): `BODY`, `OFFSET:BODY`,
/// `BODY:x:MODS` (the middle field is ignored, `BODY::MODS`), `OFFSET:BODY:x:MODS`;
/// with five fields or more, the first one alone is the body, at any offset and
/// without modifiers (so `4141::i*4242::i` is the plain `4141`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubsigFields<'a> {
    /// The offset field, when there is one (possibly empty).
    pub offset: Option<&'a str>,
    /// The hex body.
    pub body: &'a str,
    /// The modifier letters, when there is a modifier field.
    pub modifiers: Option<&'a str>,
}

impl<'a> SubsigFields<'a> {
    /// Splits a hex subsignature into its fields.
    pub fn split(text: &'a str) -> SubsigFields<'a> {
        let f: Vec<&str> = text.split(':').collect();
        let (offset, body, modifiers) = match f.len() {
            1 => (None, f[0], None),
            2 => (Some(f[0]), f[1], None),
            3 => (None, f[0], Some(f[2])),
            4 => (Some(f[0]), f[1], Some(f[3])),
            _ => (None, f[0], None),
        };
        SubsigFields {
            offset,
            body,
            modifiers,
        }
    }
}

/// `min-max}group$` after `${` (measured: exactly this, decimal numbers, nothing after).
fn parse_macro(rest: &str) -> Result<Subsig, ParseError> {
    let Some(inner) = rest.strip_suffix('$') else {
        return Err(ParseError::new(
            "macro subsignature is missing the '$' terminator (expected ${min-max}group$)",
        ));
    };
    let bad = || ParseError::new("invalid macro subsignature (expected ${min-max}group$)");
    let (range, group) = inner.split_once('}').ok_or_else(bad)?;
    let (min, max) = range.split_once('-').ok_or_else(bad)?;
    let num = |t: &str| -> Result<u32, ParseError> {
        if t.is_empty() || !t.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        t.parse().map_err(|_| bad())
    };
    Ok(Subsig::Macro {
        min: num(min)?,
        max: num(max)?,
        group: num(group)?,
    })
}

fn check_offset(offset: &Offset, executable: bool) -> Result<(), ParseError> {
    if offset.base.needs_executable() && !executable {
        return Err(ParseError::new(
            "invalid offset type for this target: EP, Sx, SEx and SL offsets need Target 1 (PE), 6 (ELF) or 9 (Mach-O)",
        ));
    }
    Ok(())
}

fn parse_modifiers(text: &str) -> Result<Modifiers, ParseError> {
    let mut m = Modifiers::default();
    for c in text.chars() {
        match c {
            'i' => m.nocase = true,
            'w' => m.wide = true,
            'f' => m.fullword = true,
            'a' => m.ascii = true,
            _ => {
                return Err(ParseError::new(format!(
                    "invalid subsignature modifier '{c}' (expected i, w, f or a)"
                )))
            }
        }
    }
    Ok(m)
}

fn parse_pcre(
    text: &str,
    slash: usize,
    index: usize,
    executable: bool,
) -> Result<Result<Subsig, &'static str>, ParseError> {
    let prefix = &text[..slash];
    let rest = &text[slash + 1..];
    let Some(end) = rest.rfind('/') else {
        return Err(ParseError::new("regex subsignature: missing closing '/'"));
    };
    let (regex, flags_text) = (&rest[..end], &rest[end + 1..]);
    if regex.is_empty() {
        return Err(ParseError::new("regex subsignature: empty regex"));
    }
    let (offset, trigger_text) = match prefix.split_once(':') {
        Some((o, t)) => (offset::parse(o)?, t),
        None => (
            Offset {
                base: OffsetBase::Any,
                max_shift: None,
            },
            prefix,
        ),
    };
    check_offset(&offset, executable)?;
    let trigger = parse_expr(trigger_text)
        .map_err(|e| ParseError::new(format!("regex subsignature trigger: {e}")))?;
    if refers_to(&trigger, index) {
        return Err(ParseError::new(format!(
            "regex subsignature {index}: its trigger refers to itself"
        )));
    }
    let mut flags = PcreFlags::default();
    for c in flags_text.chars() {
        match c {
            'g' => flags.global = true,
            'r' => flags.rolling = true,
            'e' => flags.encompass = true,
            'i' => flags.caseless = true,
            's' => flags.dotall = true,
            'm' => flags.multiline = true,
            'x' => flags.extended = true,
            'A' => flags.anchored = true,
            'U' => flags.ungreedy = true,
            'E' => flags.dollar_end_only = true,
            _ => {
                return Err(ParseError::new(format!(
                    "regex subsignature: unknown flag '{c}' (expected g, r, e, i, s, m, x, A or U)"
                )))
            }
        }
    }
    let sub = PcreSubsig {
        trigger,
        regex: regex.into(),
        offset,
        flags,
    };
    // Compiled here only to refuse a bad regex with its line; without the JIT, which
    // the engine applies when it compiles the regex for use.
    let mut check = sub.builder();
    check.jit_if_available(false);
    check.build(&sub.compiled_pattern()).map_err(|e| {
        ParseError::new(format!("regex subsignature: PCRE2 compilation failed: {e}"))
    })?;
    Ok(Ok(Subsig::Pcre(sub)))
}

fn refers_to(e: &Expr, index: usize) -> bool {
    match e {
        Expr::Sub(i) => usize::from(*i) == index,
        Expr::And(a, b) | Expr::Or(a, b) => refers_to(a, index) || refers_to(b, index),
        Expr::Count { inner, .. } => refers_to(inner, index),
    }
}
