//! One database line of each supported format, parsed into a signature value.

use crate::error::ParseError;
use crate::hex::{self, Pattern};
use crate::offset::{self, Offset};
use crate::FLEVEL;

/// Which hash function a hash signature uses (decided by the digest's hex length).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HashKind {
    /// 32 hex digits.
    Md5,
    /// 40 hex digits.
    Sha1,
    /// 64 hex digits.
    Sha256,
}

/// A digest value of one of the supported kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Digest {
    /// An MD5 digest.
    Md5([u8; 16]),
    /// A SHA-1 digest.
    Sha1([u8; 20]),
    /// A SHA-256 digest.
    Sha256([u8; 32]),
}

impl Digest {
    /// The hash function of this digest.
    pub fn kind(&self) -> HashKind {
        match self {
            Digest::Md5(_) => HashKind::Md5,
            Digest::Sha1(_) => HashKind::Sha1,
            Digest::Sha256(_) => HashKind::Sha256,
        }
    }

    /// The raw digest bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Digest::Md5(d) => d,
            Digest::Sha1(d) => d,
            Digest::Sha256(d) => d,
        }
    }

    /// Parses a hex digest, its kind given by its length.
    pub fn from_hex(text: &str) -> Result<Digest, ParseError> {
        fn decode<const N: usize>(text: &str) -> Result<[u8; N], ParseError> {
            let mut out = [0u8; N];
            // faster-hex: the official databases hold millions of digests.
            faster_hex::hex_decode(text.as_bytes(), &mut out)
                .map_err(|_| ParseError::new(format!("bad hash '{text}': not hexadecimal")))?;
            Ok(out)
        }
        match text.len() {
            32 => Ok(Digest::Md5(decode(text)?)),
            40 => Ok(Digest::Sha1(decode(text)?)),
            64 => Ok(Digest::Sha256(decode(text)?)),
            n => Err(ParseError::new(format!(
                "bad hash '{text}': {n} hex digits, expected 32 (MD5), 40 (SHA1) or 64 (SHA256)"
            ))),
        }
    }
}

/// A whole-file hash signature (`.hdb`, `.hsb`) or allow-list entry (`.fp`, `.sfp`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashSig {
    /// The file's digest.
    pub digest: Digest,
    /// The file's size; `None` for `*` (any size).
    pub size: Option<u64>,
    /// The detection name as written in the database.
    pub name: Box<str>,
}

/// ClamAV's target type of a body signature (the second `.ndb` column).
pub type Target = u8;

/// Target type 0: any file.
pub const TARGET_ANY: Target = 0;
/// Target type 7: ASCII text.
pub const TARGET_TEXT: Target = 7;
/// Target types whose files have an entry point and sections.
pub const EXECUTABLE_TARGETS: [Target; 3] = [1, 6, 9];
/// The highest target type ClamAV 1.4 defines.
pub const TARGET_MAX: Target = 14;

/// An extended body signature (`.ndb` line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodySig {
    /// The detection name as written in the database.
    pub name: Box<str>,
    /// The file type the signature applies to.
    pub target: Target,
    /// Where the match must start.
    pub offset: Offset,
    /// The byte pattern.
    pub pattern: Pattern,
}

/// The outcome of parsing a well-formed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<T> {
    /// A signature to load.
    Sig(T),
    /// A valid line that ClamAV 1.4 skips silently (and does not count).
    Skipped(SkipReason),
}

/// Why a well-formed line is skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// Its MINFL/MAXFL range excludes this engine's FLEVEL.
    Flevel,
    /// A target type above [`TARGET_MAX`].
    UnknownTarget,
    /// An `.ndb` line whose offset is `$N`: a member of macro group `N`, matched only
    /// through the macro subsignatures of logical signatures (ClamAV loads and counts
    /// it; alone it never reports, measured).
    MacroGroup,
}

/// The smallest FLEVEL at which ClamAV accepts a `*` size in hash signatures.
pub const WILDCARD_SIZE_MIN_FLEVEL: u32 = 73;

/// Parses a `.hdb`/`.hsb`/`.fp`/`.sfp` line `HASH:SIZE:NAME[:MINFL[:MAXFL]]`.
/// `suffix` is appended to the detection name (`.UNOFFICIAL` for unsigned databases).
pub fn parse_hash(line: &str, suffix: &str) -> Result<Parsed<HashSig>, ParseError> {
    Ok(match parse_hash_ref(line)? {
        Parsed::Sig(sig) => Parsed::Sig(HashSig {
            digest: sig.digest,
            size: sig.size,
            name: with_suffix(sig.name, suffix),
        }),
        Parsed::Skipped(why) => Parsed::Skipped(why),
    })
}

/// A parsed hash line that borrows its name from the line (no allocation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashRef<'a> {
    /// The file's digest.
    pub digest: Digest,
    /// The file's size; `None` for `*`.
    pub size: Option<u64>,
    /// The detection name as written.
    pub name: &'a str,
}

/// Like [`parse_hash`], borrowing the name: what loaders of millions of lines use.
pub fn parse_hash_ref(line: &str) -> Result<Parsed<HashRef<'_>>, ParseError> {
    let mut fields = line.split(':');
    let (Some(hash), Some(size), Some(name)) = (fields.next(), fields.next(), fields.next()) else {
        return Err(ParseError::new(
            "expected HASH:SIZE:NAME[:MINFL[:MAXFL]] (too few fields)",
        ));
    };
    // ClamAV reads the FLEVEL fields of hash lines with atoi: junk counts as 0.
    let (min_fl, max_fl) = lenient_flevels(&mut fields)?;
    let digest = Digest::from_hex(hash)?;
    let size = if size == "*" {
        if min_fl.unwrap_or(0) < WILDCARD_SIZE_MIN_FLEVEL {
            return Err(ParseError::new(format!(
                "size '*' requires MINFL >= {WILDCARD_SIZE_MIN_FLEVEL} in the 4th field"
            )));
        }
        None
    } else {
        // ClamAV reads the size with strtol: leading blanks and a '+' are accepted.
        let trimmed = size.trim_start();
        Some(decimal(
            trimmed.strip_prefix('+').unwrap_or(trimmed),
            "size",
        )?)
    };
    let name = check_name(name)?;
    if !flevel_ok(min_fl, max_fl) {
        return Ok(Parsed::Skipped(SkipReason::Flevel));
    }
    Ok(Parsed::Sig(HashRef { digest, size, name }))
}

/// Parses an `.mdb`/`.msb` line `SECTIONSIZE:HASH:NAME[:MINFL[:MAXFL]]`: the hash of
/// one PE section's raw bytes (MD5 in `.mdb`, SHA1 or SHA256 in `.msb`; ClamAV takes
/// any kind by its length in both). `*` as the size needs MINFL ≥ 73, as in `.hdb`.
/// The name is borrowed from the line.
pub fn parse_section_hash_ref(line: &str) -> Result<Parsed<HashRef<'_>>, ParseError> {
    let Some((size, rest)) = line.split_once(':') else {
        return Err(ParseError::new(
            "expected SECTIONSIZE:HASH:NAME[:MINFL[:MAXFL]] (too few fields)",
        ));
    };
    let Some((hash, tail)) = rest.split_once(':') else {
        return Err(ParseError::new(
            "expected SECTIONSIZE:HASH:NAME[:MINFL[:MAXFL]] (too few fields)",
        ));
    };
    // The same checks as a whole-file hash line, with the first two fields swapped.
    let mut swapped = String::with_capacity(line.len());
    swapped.push_str(hash);
    swapped.push(':');
    swapped.push_str(size);
    swapped.push(':');
    swapped.push_str(tail);
    Ok(match parse_hash_ref(&swapped)? {
        Parsed::Sig(sig) => {
            // Re-borrow the name from `line`: it is the text after the second colon.
            let name_len = sig.name.len();
            let name = &tail[..name_len];
            Parsed::Sig(HashRef {
                digest: sig.digest,
                size: sig.size,
                name,
            })
        }
        Parsed::Skipped(why) => Parsed::Skipped(why),
    })
}

/// Parses an `.ndb` line `NAME:TARGET:OFFSET:HEXSIG[:MINFL[:MAXFL]]`.
/// `suffix` is appended to the detection name (`.UNOFFICIAL` for unsigned databases).
pub fn parse_ndb(line: &str, suffix: &str) -> Result<Parsed<BodySig>, ParseError> {
    let mut fields = line.split(':');
    let (Some(name), Some(target), Some(offset), Some(hexsig)) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(ParseError::new(
            "expected NAME:TARGET:OFFSET:HEXSIG[:MINFL[:MAXFL]] (too few fields)",
        ));
    };
    let (min_fl, max_fl) = flevels(&mut fields)?;
    let name = check_name(name)?;
    let target: u32 = decimal(target, "target type")?;
    if let Some(group) = offset.strip_prefix('$') {
        decimal::<u32>(group, "macro group")?;
        hex::parse(hexsig)?;
        return Ok(Parsed::Skipped(SkipReason::MacroGroup));
    }
    let offset = offset::parse(offset)?;
    let pattern = hex::parse(hexsig)?;
    if !flevel_ok(min_fl, max_fl) {
        return Ok(Parsed::Skipped(SkipReason::Flevel));
    }
    let Some(target) = Target::try_from(target).ok().filter(|t| *t <= TARGET_MAX) else {
        return Ok(Parsed::Skipped(SkipReason::UnknownTarget));
    };
    if offset.base.needs_executable() && !EXECUTABLE_TARGETS.contains(&target) {
        return Err(ParseError::new(format!(
            "invalid offset type for target {target}: EP, Sx, SEx and SL offsets need an executable target (1 PE, 6 ELF, 9 Mach-O)"
        )));
    }
    Ok(Parsed::Sig(BodySig {
        name: with_suffix(name, suffix),
        target,
        offset,
        pattern,
    }))
}

/// Parses a `.ign2`/`.ign` line (ClamAV reads both alike, measured): `NAME`,
/// `NAME:MD5` (the legacy form; the MD5 must be 32 hex digits) or the legacy `.ign`
/// form `DBNAME:LINE:NAME` (the first two fields are not checked). More fields are
/// refused. Returns the name to disable.
pub fn parse_ign2(line: &str) -> Result<Box<str>, ParseError> {
    let fields: Vec<&str> = line.split(':').collect();
    let name = match fields.as_slice() {
        [name] => name,
        [name, md5] => {
            if md5.len() != 32 || !md5.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(ParseError::new(format!(
                    "malformed MD5 '{md5}' after the name (expected NAME, NAME:MD5 or DBNAME:LINE:NAME)"
                )));
            }
            name
        }
        [_, _, name] => name,
        _ => {
            return Err(ParseError::new(
                "too many fields (expected NAME, NAME:MD5 or DBNAME:LINE:NAME)",
            ))
        }
    };
    Ok(check_name(name.trim_end())?.into())
}

fn with_suffix(name: &str, suffix: &str) -> Box<str> {
    let mut full = String::with_capacity(name.len() + suffix.len());
    full.push_str(name);
    full.push_str(suffix);
    full.into_boxed_str()
}

fn flevels<'a>(
    fields: &mut impl Iterator<Item = &'a str>,
) -> Result<(Option<u32>, Option<u32>), ParseError> {
    let min = fields
        .next()
        .map(|f| optional_decimal(f, "MINFL"))
        .transpose()?;
    let max = fields
        .next()
        .map(|f| optional_decimal(f, "MAXFL"))
        .transpose()?;
    if fields.next().is_some() {
        return Err(ParseError::new("too many fields"));
    }
    Ok((min.flatten(), max.flatten()))
}

fn lenient_flevels<'a>(
    fields: &mut impl Iterator<Item = &'a str>,
) -> Result<(Option<u32>, Option<u32>), ParseError> {
    let atoi = |f: &str| -> Option<u32> {
        let digits: String = f
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        (!f.is_empty()).then(|| digits.parse().unwrap_or(0))
    };
    let min = fields.next().and_then(atoi);
    let max = fields.next().and_then(atoi);
    if fields.next().is_some() {
        return Err(ParseError::new("too many fields"));
    }
    Ok((min, max))
}

fn flevel_ok(min: Option<u32>, max: Option<u32>) -> bool {
    min.is_none_or(|m| m <= FLEVEL) && max.is_none_or(|m| m >= FLEVEL)
}

fn optional_decimal(text: &str, what: &str) -> Result<Option<u32>, ParseError> {
    if text.is_empty() {
        Ok(None)
    } else {
        decimal(text, what).map(Some)
    }
}

fn decimal<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, ParseError> {
    if text.is_empty() || !text.bytes().all(|c| c.is_ascii_digit()) {
        return Err(ParseError::new(format!(
            "bad {what} '{text}': not a decimal number"
        )));
    }
    text.parse()
        .map_err(|_| ParseError::new(format!("bad {what} '{text}': out of range")))
}

fn check_name(name: &str) -> Result<&str, ParseError> {
    if name.is_empty() {
        return Err(ParseError::new("empty signature name"));
    }
    if name.bytes().any(|c| c.is_ascii_control()) {
        return Err(ParseError::new(
            "signature name contains control characters",
        ));
    }
    Ok(name)
}
