//! Synthetic `.ndb` (extended body) signatures in realistic ClamAV hex syntax.
//!
//! A signature is modelled as a list of [`Tok`]ens so that it can be both rendered as a
//! database line and *instantiated*: turned into concrete bytes that the signature matches,
//! which the corpus generator plants into a few files to produce real detections.
//!
//! Shapes follow what real-world signatures look like: mostly 10–50 static bytes, some with
//! a few `??`/nibble wildcards, `{n-m}`/`{-n}`/`{n}` gaps, `*` splits or `(aa|bb)`
//! alternates. Every part between `*`/`{..}` separators keeps at least 3 static bytes at
//! both of its ends (ClamAV insists on at least 2 static bytes per part), and a signature
//! never begins or ends with a wildcard.

use super::words;
use crate::rng::Rng;
use std::fmt::Write as _;

/// One element of a body signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tok {
    /// A run of literal bytes.
    Static(Vec<u8>),
    /// `??`: any byte.
    Any,
    /// `a?`: the high nibble is fixed (value `0..16`).
    HighNibble(u8),
    /// `?a`: the low nibble is fixed (value `0..16`).
    LowNibble(u8),
    /// `(aa|bb)` / `(aabb|ccdd)`: one of several equally long byte strings.
    Alt(Vec<Vec<u8>>),
    /// `{n}`, `{-n}` (min 0) or `{n-m}`: between `min` and `max` arbitrary bytes.
    Gap {
        /// Fewest bytes skipped.
        min: usize,
        /// Most bytes skipped.
        max: usize,
    },
    /// `*`: any number of bytes.
    Star,
}

/// The offset column of an `.ndb` line, restricted to the forms the benchmark uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NdbOffset {
    /// `*`: anywhere.
    Any,
    /// `n`: the match starts exactly at byte `n`.
    Abs(usize),
    /// `n,shift`: the match starts in `n..=n+shift`.
    AbsShift(usize, usize),
    /// `EOF-n`: the match starts `n` bytes before the end of the file.
    FromEof(usize),
}

/// A generated `.ndb` signature.
#[derive(Clone, Debug)]
pub struct NdbSig {
    /// Detection name (without ClamAV's `.UNOFFICIAL` suffix).
    pub name: String,
    /// ClamAV target type: 0 (any file) or 7 (ASCII text).
    pub target: u8,
    /// Where the match may start.
    pub offset: NdbOffset,
    /// The hex pattern.
    pub toks: Vec<Tok>,
}

/// Bytes that dominate x86 code and PE/ELF structures; real signatures are full of them,
/// which is what makes the first levels of an Aho–Corasick trie hot on real binaries.
pub const COMMON_BYTES: [u8; 24] = [
    0x00, 0xFF, 0x8B, 0x89, 0xE8, 0x48, 0x83, 0xC7, 0x45, 0x0F, 0x85, 0x84, 0x74, 0x75, 0xEB, 0x50,
    0x51, 0x52, 0x53, 0x55, 0x5D, 0xC3, 0x24, 0x44,
];

/// Code-like fragments used to build text (target 7) signatures. All lowercase, single
/// spaces, no newlines: ClamAV matches target 7 against lowercased, whitespace-collapsed
/// text, and these survive that normalisation unchanged.
const TEXT_FRAGMENTS: [&str; 24] = [
    "eval(",
    "unescape(",
    "document.write(",
    "base64_decode(",
    "string.fromcharcode(",
    "window.location=",
    "var ",
    "function ",
    "new activexobject(",
    "wscript.shell",
    "powershell -enc ",
    "system(",
    "exec(",
    "$_post[",
    "createobject(",
    "iex(new-object net.webclient).",
    "cmd.exe /c ",
    "chr(",
    "gzinflate(",
    "str_rot13(",
    "shell_exec(",
    "document.cookie",
    "xmlhttp.open(",
    "settimeout(",
];

impl NdbSig {
    /// Renders the signature as an `.ndb` line (without newline).
    pub fn line(&self) -> String {
        let offset = match self.offset {
            NdbOffset::Any => "*".to_string(),
            NdbOffset::Abs(n) => n.to_string(),
            NdbOffset::AbsShift(n, s) => format!("{n},{s}"),
            NdbOffset::FromEof(n) => format!("EOF-{n}"),
        };
        format!(
            "{}:{}:{}:{}",
            self.name,
            self.target,
            offset,
            render_hex(&self.toks)
        )
    }

    /// Longest byte string [`NdbSig::instantiate`] can produce (gaps at their maximum,
    /// `*` filled with at most [`STAR_FILL_MAX`] bytes).
    pub fn max_len(&self) -> usize {
        self.toks
            .iter()
            .map(|t| match t {
                Tok::Static(b) => b.len(),
                Tok::Any | Tok::HighNibble(_) | Tok::LowNibble(_) => 1,
                Tok::Alt(a) => a[0].len(),
                Tok::Gap { max, .. } => *max,
                Tok::Star => STAR_FILL_MAX,
            })
            .sum()
    }

    /// Produces bytes this signature matches. Text signatures fill wildcards with
    /// lowercase letters so the result stays ASCII text.
    pub fn instantiate(&self, rng: &mut Rng) -> Vec<u8> {
        let text = self.target == 7;
        let filler = |rng: &mut Rng| -> u8 {
            if text {
                b'a' + rng.below(26) as u8
            } else {
                rng.next_u64() as u8
            }
        };
        let mut out = Vec::with_capacity(self.max_len());
        for t in &self.toks {
            match t {
                Tok::Static(b) => out.extend_from_slice(b),
                Tok::Any => out.push(filler(rng)),
                Tok::HighNibble(h) => out.push((h << 4) | rng.below(16) as u8),
                Tok::LowNibble(l) => out.push(((rng.below(16) as u8) << 4) | l),
                Tok::Alt(a) => out.extend_from_slice(rng.pick::<Vec<u8>>(a)),
                Tok::Gap { min, max } => {
                    for _ in 0..rng.range_usize(*min, *max) {
                        out.push(filler(rng));
                    }
                }
                Tok::Star => {
                    for _ in 0..rng.range_usize(0, STAR_FILL_MAX) {
                        out.push(filler(rng));
                    }
                }
            }
        }
        out
    }
}

/// Most bytes a `*` expands to when a signature is planted into a corpus file.
pub const STAR_FILL_MAX: usize = 48;

/// Renders tokens in ClamAV hex syntax.
pub fn render_hex(toks: &[Tok]) -> String {
    let mut s = String::new();
    for t in toks {
        match t {
            Tok::Static(b) => s.push_str(&hex::encode(b)),
            Tok::Any => s.push_str("??"),
            Tok::HighNibble(h) => {
                let _ = write!(s, "{h:x}?");
            }
            Tok::LowNibble(l) => {
                let _ = write!(s, "?{l:x}");
            }
            Tok::Alt(a) => {
                s.push('(');
                let alts: Vec<String> = a.iter().map(hex::encode).collect();
                s.push_str(&alts.join("|"));
                s.push(')');
            }
            Tok::Gap { min, max } if min == max => {
                let _ = write!(s, "{{{min}}}");
            }
            Tok::Gap { min: 0, max } => {
                let _ = write!(s, "{{-{max}}}");
            }
            Tok::Gap { min, max } => {
                let _ = write!(s, "{{{min}-{max}}}");
            }
            Tok::Star => s.push('*'),
        }
    }
    s
}

/// Generates `count` signatures; names are unique (`id_base + index` is embedded).
pub fn generate(rng: &mut Rng, count: usize, id_base: u64) -> Vec<NdbSig> {
    (0..count)
        .map(|i| {
            let id = id_base + i as u64;
            if rng.chance(0.10) {
                text_sig(rng, id)
            } else {
                binary_sig(rng, id)
            }
        })
        .collect()
}

/// A random signature byte: a quarter of them from [`COMMON_BYTES`].
fn sig_byte(rng: &mut Rng) -> u8 {
    if rng.chance(0.25) {
        *rng.pick(&COMMON_BYTES)
    } else {
        rng.next_u64() as u8
    }
}

/// `n` random signature bytes, avoiding runs of more than two equal bytes (a signature of
/// repeated zeros would match half of any corpus).
fn static_bytes(rng: &mut Rng, n: usize) -> Vec<u8> {
    let mut v: Vec<u8> = Vec::with_capacity(n);
    while v.len() < n {
        let b = sig_byte(rng);
        let l = v.len();
        if l >= 2 && v[l - 1] == b && v[l - 2] == b {
            continue;
        }
        v.push(b);
    }
    v
}

/// Total static length of a typical signature: 10–50 bytes, mostly 14–32.
fn sig_len(rng: &mut Rng) -> usize {
    if rng.chance(0.7) {
        rng.range_usize(14, 32)
    } else {
        rng.range_usize(10, 50)
    }
}

/// Splits `total` into `parts` lengths of at least `min` each.
fn split_len(rng: &mut Rng, total: usize, parts: usize, min: usize) -> Vec<usize> {
    let total = total.max(parts * min);
    let mut lens = vec![min; parts];
    for _ in 0..total - parts * min {
        let i = rng.index(parts);
        lens[i] += 1;
    }
    lens
}

/// A static run of `len` bytes, optionally with single-byte wildcards or alternates in
/// its interior (never within 3 bytes of either end, never adjacent to each other).
fn part(rng: &mut Rng, len: usize, wildcards: usize, alternates: usize) -> Vec<Tok> {
    let bytes = static_bytes(rng, len);
    // Choose interior positions to replace.
    let mut special: Vec<(usize, bool)> = Vec::new();
    let interior = len.saturating_sub(6);
    for k in 0..wildcards + alternates {
        if interior == 0 {
            break;
        }
        let pos = 3 + rng.index(interior);
        if special.iter().any(|(p, _)| p.abs_diff(pos) < 2) {
            continue;
        }
        special.push((pos, k < wildcards));
    }
    special.sort_unstable();
    let mut toks = Vec::new();
    let mut run = Vec::new();
    for (i, b) in bytes.iter().enumerate() {
        match special.iter().find(|(p, _)| *p == i) {
            Some(&(_, is_wild)) => {
                if !run.is_empty() {
                    toks.push(Tok::Static(std::mem::take(&mut run)));
                }
                if is_wild {
                    toks.push(match rng.below(4) {
                        0 => Tok::HighNibble(b >> 4),
                        1 => Tok::LowNibble(b & 0xF),
                        _ => Tok::Any,
                    });
                } else {
                    let width = if rng.chance(0.8) { 1 } else { 2 };
                    let n_alts = rng.range_usize(2, 4);
                    let mut alts: Vec<Vec<u8>> = Vec::new();
                    while alts.len() < n_alts {
                        let a = static_bytes(rng, width);
                        if !alts.contains(&a) {
                            alts.push(a);
                        }
                    }
                    toks.push(Tok::Alt(alts));
                }
            }
            None => run.push(*b),
        }
    }
    if !run.is_empty() {
        toks.push(Tok::Static(run));
    }
    toks
}

/// A random gap token.
fn gap(rng: &mut Rng) -> Tok {
    match rng.below(3) {
        0 => {
            let n = rng.range_usize(1, 16);
            Tok::Gap { min: n, max: n }
        }
        1 => Tok::Gap {
            min: 0,
            max: rng.range_usize(2, 32),
        },
        _ => {
            let min = rng.range_usize(1, 16);
            Tok::Gap {
                min,
                max: min + rng.range_usize(1, 48),
            }
        }
    }
}

fn name(rng: &mut Rng, platforms: &[&str], id: u64) -> String {
    const CATEGORIES: [&str; 12] = [
        "Trojan",
        "Malware",
        "Exploit",
        "Downloader",
        "Dropper",
        "Worm",
        "Virus",
        "Adware",
        "Ransomware",
        "Spyware",
        "Keylogger",
        "Packed",
    ];
    let family = words::capitalized(&words::pseudo_word(rng));
    format!(
        "{}.{}.{}-{}-{}",
        rng.pick(platforms),
        rng.pick(&CATEGORIES),
        family,
        id,
        rng.below(3)
    )
}

/// A detection name in ClamAV's `Platform.Category.Family-id-revision` style.
pub fn malware_name(rng: &mut Rng, id: u64) -> String {
    name(
        rng,
        &[
            "Win", "Unix", "Doc", "Pdf", "Andr", "Osx", "Multios", "Xls", "Java",
        ],
        id,
    )
}

fn binary_sig(rng: &mut Rng, id: u64) -> NdbSig {
    let total = sig_len(rng);
    let shape = rng.below(100);
    let mut toks = Vec::new();
    let mut has_star = false;
    match shape {
        // Plain static run: the bulk of real body signatures.
        0..=49 => toks.extend(part(rng, total, 0, 0)),
        // A few single-byte wildcards.
        50..=64 => {
            let w = rng.range_usize(1, 3);
            toks.extend(part(rng, total.max(12), w, 0));
        }
        // Parts separated by bounded gaps.
        65..=84 => {
            let star = shape >= 77;
            has_star = star;
            let n = rng.range_usize(2, 3);
            let lens = split_len(rng, total, n, 4);
            for (i, l) in lens.into_iter().enumerate() {
                if i > 0 {
                    toks.push(if star { Tok::Star } else { gap(rng) });
                }
                let w = usize::from(rng.chance(0.2));
                toks.extend(part(rng, l, w, 0));
            }
        }
        // Alternates.
        _ => {
            let a = rng.range_usize(1, 2);
            toks.extend(part(rng, total.max(12), 0, a));
        }
    }
    let mut sig = NdbSig {
        name: malware_name(rng, id),
        target: 0,
        offset: NdbOffset::Any,
        toks,
    };
    let o = rng.below(100);
    sig.offset = match o {
        0..=81 => NdbOffset::Any,
        82..=88 => NdbOffset::Abs(if rng.chance(0.5) {
            0
        } else {
            rng.range_usize(1, 2048)
        }),
        89..=93 => NdbOffset::AbsShift(rng.range_usize(0, 1024), rng.range_usize(1, 256)),
        _ if !has_star => NdbOffset::FromEof(sig.max_len() + rng.range_usize(0, 1000)),
        _ => NdbOffset::Any,
    };
    sig
}

/// A random lowercase identifier or string literal body.
fn ident(rng: &mut Rng) -> String {
    let n = rng.range_usize(3, 10);
    (0..n)
        .map(|i| {
            if i > 0 && rng.chance(0.25) {
                (b'0' + rng.below(10) as u8) as char
            } else {
                (b'a' + rng.below(26) as u8) as char
            }
        })
        .collect()
}

/// Lowercase, code-like text of at least `len` characters without leading/trailing or
/// double spaces, e.g. `var k3jx=unescape("qz81ab");eval(`. It always contains a random
/// token, so no text signature is a substring of another (which would make the reported
/// name depend on match order).
fn text_run(rng: &mut Rng, len: usize) -> String {
    let mut s = String::new();
    let mut has_random = false;
    while s.len() < len || !has_random {
        match rng.below(4) {
            0 | 1 => s.push_str(rng.pick::<&str>(&TEXT_FRAGMENTS)),
            2 => {
                s.push('"');
                s.push_str(&ident(rng));
                s.push_str("\");");
                has_random = true;
            }
            _ => {
                s.push_str(&ident(rng));
                s.push(*rng.pick(&['=', '.', '(', ',', ';']));
                has_random = true;
            }
        }
    }
    s.trim().replace("  ", " ")
}

fn text_sig(rng: &mut Rng, id: u64) -> NdbSig {
    let total = rng.range_usize(16, 48);
    let mut toks = Vec::new();
    match rng.below(100) {
        0..=69 => toks.push(Tok::Static(text_run(rng, total).into_bytes())),
        70..=84 => {
            let lens = split_len(rng, total, 2, 8);
            toks.push(Tok::Static(text_run(rng, lens[0]).into_bytes()));
            toks.push(Tok::Star);
            toks.push(Tok::Static(text_run(rng, lens[1]).into_bytes()));
        }
        _ => {
            let a = text_run(rng, total / 2 + 1).into_bytes();
            let b = text_run(rng, total / 2 + 1).into_bytes();
            toks.push(Tok::Static(a));
            toks.push(Tok::Any);
            toks.push(Tok::Static(b));
        }
    }
    NdbSig {
        name: name(rng, &["Js", "Html", "Php", "Txt", "Vbs", "Ps1"], id),
        target: 7,
        offset: NdbOffset::Any,
        toks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `*`/`{..}`-separated part must start and end with ≥ 2 static bytes.
    #[test]
    fn parts_keep_static_ends() {
        let mut rng = Rng::new(42);
        for sig in generate(&mut rng, 5000, 0) {
            let mut parts: Vec<Vec<&Tok>> = vec![vec![]];
            for t in &sig.toks {
                match t {
                    Tok::Star | Tok::Gap { .. } => parts.push(vec![]),
                    _ => parts.last_mut().unwrap().push(t),
                }
            }
            for p in parts {
                let first = p.first().expect("empty part");
                let last = p.last().unwrap();
                for end in [first, last] {
                    match end {
                        Tok::Static(b) => assert!(b.len() >= 2, "{}", sig.line()),
                        _ => panic!("part ends with wildcard: {}", sig.line()),
                    }
                }
            }
        }
    }

    #[test]
    fn instantiation_fits_max_len() {
        let mut rng = Rng::new(3);
        for sig in generate(&mut rng, 2000, 0) {
            let body = sig.instantiate(&mut rng);
            assert!(body.len() <= sig.max_len());
            if sig.target == 7 {
                assert!(body.iter().all(|b| b.is_ascii_graphic() || *b == b' '));
            }
        }
    }
}
