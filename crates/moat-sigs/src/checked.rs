//! Database formats moat checks and counts as clamscan does but does not evaluate yet:
//! phishing URL lists (`.pdb`, `.wdb`, `.gdb`), icon signatures (`.idb`), container
//! metadata (`.cdb`), file type magic (`.ftm`), certificate rules (`.crb`) and bytecode
//! (`.cbc`). Each validator refuses what clamscan 1.4.6 refuses (measured one line at a
//! time, docs/clamav-oracle.md "Every database file") and says whether the line loads
//! at this engine's functionality level.

use crate::error::ParseError;
use crate::ldb::CL_TYPES;
use crate::FLEVEL;

/// Whether a checked line loads here: `false` when its FLEVEL range excludes
/// [`FLEVEL`] (clamscan skips it and does not count it).
pub type Loads = bool;

/// A phishing list line: `.pdb` takes `R:regex` and `H:host`, `.wdb` takes
/// `X:real:displayed` and `M:real:displayed` (and `Y`), `.gdb` takes `S…:` lines;
/// an optional `:FLEVEL` field follows.
pub fn phishing(line: &str, ext: &str) -> Result<Loads, ParseError> {
    let (kind, rest) = line
        .split_once(':')
        .ok_or_else(|| ParseError::new("malformed regex list line (expected TYPE:...)"))?;
    let allowed: &[&str] = match ext {
        "pdb" => &["R", "H"],
        "wdb" => &["X", "M", "Y"],
        _ => &["S", "S1", "S2"],
    };
    if !allowed.contains(&kind) {
        return Err(ParseError::new(format!(
            "malformed regex list line: '{kind}' lines are not valid in .{ext} (expected {})",
            allowed.join(", ")
        )));
    }
    if rest.is_empty() || rest.starts_with(':') {
        return Err(ParseError::new("malformed regex list line: empty pattern"));
    }
    if kind == "R" {
        let regex = rest.rsplit_once(':').map_or(rest, |(r, fl)| {
            if fl.bytes().all(|c| c.is_ascii_digit() || c == b'-') {
                r
            } else {
                rest
            }
        });
        pcre2::bytes::RegexBuilder::new()
            .build(regex)
            .map_err(|e| ParseError::new(format!("regex list: bad regular expression: {e}")))?;
    }
    Ok(true)
}

/// An `.idb` line `NAME:GROUP1:GROUP2:ICONHASH` (124 hex digits).
pub fn icon(line: &str) -> Result<Loads, ParseError> {
    let fields: Vec<&str> = line.split(':').collect();
    if fields.len() != 4 {
        return Err(ParseError::new(
            "malformed icon signature (expected NAME:GROUP1:GROUP2:ICONHASH)",
        ));
    }
    let hash = fields[3];
    if hash.len() != 124 || !hash.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(ParseError::new(
            "malformed icon hash (expected 124 hex digits)",
        ));
    }
    Ok(true)
}

/// A container metadata signature (`.cdb`): it matches a container member whose
/// listing (name, sizes, position) fits every field. Numbers are ClamAV's ranges:
/// `*` any, `n` exactly, `n-m` inclusive where a bound of 0 is open (as ClamAV
/// compares them, measured with `clamscan --debug`'s `CDBNAME` lines).
#[derive(Debug, Clone)]
pub struct ContainerMeta {
    /// The detection name, in its reported form (`.UNOFFICIAL` when not signed).
    pub name: String,
    /// The container's `CL_TYPE_*` name; `None` for `*`.
    pub container: Option<String>,
    /// The container's own size.
    pub container_size: MetaRange,
    /// The member name's regular expression; `None` for `*`.
    pub name_regex: Option<pcre2::bytes::Regex>,
    /// The member's size in the container (compressed size for zip).
    pub stored_size: MetaRange,
    /// The member's real (uncompressed) size.
    pub real_size: MetaRange,
    /// Whether the member is encrypted; `None` for `*`.
    pub encrypted: Option<bool>,
    /// The member's position in the container.
    pub position: MetaRange,
    /// `Res1`: for zip (and rar) containers, the member's CRC-32 when non-zero.
    pub res1: u64,
}

/// A `.cdb` numeric field: `None` for `*`, else inclusive bounds (a bound of 0 in
/// an `n-m` range is open, as in ClamAV).
pub type MetaRange = Option<(u64, u64)>;

/// Whether `value` is within `range` as ClamAV compares a `.cdb` field.
pub fn in_meta_range(range: MetaRange, value: u64) -> bool {
    match range {
        None => true,
        Some((lo, hi)) if lo == hi => value == lo,
        Some((lo, hi)) => (lo == 0 || lo <= value) && (hi == 0 || hi >= value),
    }
}

/// A `.cdb` line `NAME:CONTAINERTYPE:CONTAINERSIZE:NAMEREGEX:CSIZE:SIZE:ENCRYPTED:
/// POS:RES1:RES2[:MINFL[:MAXFL]]` (10 to 12 fields; numbers are `*`, `n` or `n-m`).
/// `None` when its FLEVEL range excludes this engine. `suffix` is appended to the name.
pub fn container_meta(line: &str, suffix: &str) -> Result<Option<ContainerMeta>, ParseError> {
    let f: Vec<&str> = line.split(':').collect();
    if !(10..=12).contains(&f.len()) {
        return Err(ParseError::new(format!(
            "container metadata signature: {} fields, expected 10 to 12",
            f.len()
        )));
    }
    if f[0].is_empty() {
        return Err(ParseError::new("empty signature name"));
    }
    if f[1] != "*" && !CL_TYPES.contains(&f[1]) {
        return Err(ParseError::new(format!(
            "container metadata signature: unknown container type {}",
            f[1]
        )));
    }
    let mut ranges = [None; 5];
    for (slot, &i) in ranges.iter_mut().zip(&[2, 4, 5, 6, 7]) {
        *slot = meta_range(f[i]).ok_or_else(|| {
            ParseError::new(format!(
                "container metadata signature: invalid value '{}' in field {}",
                f[i],
                i + 1
            ))
        })?;
    }
    let name_regex = if f[3] == "*" {
        None
    } else {
        Some(pcre2::bytes::RegexBuilder::new().build(f[3]).map_err(|e| {
            ParseError::new(format!(
                "container metadata signature: bad file name regex: {e}"
            ))
        })?)
    };
    if !flevel_fields(f.get(10), f.get(11))? {
        return Ok(None);
    }
    Ok(Some(ContainerMeta {
        name: format!("{}{suffix}", f[0]),
        container: (f[1] != "*").then(|| f[1].to_owned()),
        container_size: ranges[0],
        name_regex,
        stored_size: ranges[1],
        real_size: ranges[2],
        encrypted: ranges[3].map(|(lo, _)| lo != 0),
        position: ranges[4],
        res1: f[8].parse().unwrap_or(0),
    }))
}

/// `*` → `Some(None)`, `n` → `Some(Some((n, n)))`, `n-m` → `Some(Some((n, m)))`;
/// anything else `None`.
fn meta_range(text: &str) -> Option<MetaRange> {
    let num = |t: &str| -> Option<u64> {
        if t.is_empty() || !t.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    if text == "*" {
        return Some(None);
    }
    match text.split_once('-') {
        Some((a, b)) => Some(Some((num(a)?, num(b)?))),
        None => num(text).map(|n| Some((n, n))),
    }
}

/// A fixed-offset file type magic entry (`.ftm` magic type 0, required type
/// `CL_TYPE_ANY`): `bytes` at `offset` make a file of type `file_type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedMagic {
    /// Where the bytes start.
    pub offset: usize,
    /// The magic bytes.
    pub bytes: Vec<u8>,
    /// The `CL_TYPE_*` name the file gets (one of [`CL_TYPES`]).
    pub file_type: &'static str,
}

/// A checked `.ftm` line as moat uses it: `Some` for a fixed-offset entry whose
/// required type is `CL_TYPE_ANY` and whose FLEVEL range holds; `None` for the
/// others (body-based and partition entries, other required types: not used yet).
pub fn fixed_magic(line: &str) -> Option<FixedMagic> {
    let f: Vec<&str> = line.split(':').collect();
    if !filetype_magic(line).ok()? || f[0] != "0" || f[4] != "CL_TYPE_ANY" {
        return None;
    }
    let bytes = (0..f[2].len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&f[2][i..i + 2], 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    Some(FixedMagic {
        offset: f[1].parse().ok()?,
        bytes,
        file_type: CL_TYPES.iter().copied().find(|t| *t == f[5])?,
    })
}

/// An `.ftm` line `MAGICTYPE:OFFSET:MAGIC:NAME:RTYPE:TYPE[:MINFL[:MAXFL]]`.
pub fn filetype_magic(line: &str) -> Result<Loads, ParseError> {
    let f: Vec<&str> = line.split(':').collect();
    if !(6..=8).contains(&f.len()) {
        return Err(ParseError::new(format!(
            "file type magic: {} fields, expected 6 to 8",
            f.len()
        )));
    }
    if !matches!(f[0], "0" | "1" | "4") {
        return Err(ParseError::new(format!(
            "file type magic: unknown magic type '{}' (expected 0, 1 or 4)",
            f[0]
        )));
    }
    if f[0] == "0" {
        if !f[1].bytes().all(|c| c.is_ascii_digit()) || f[1].is_empty() {
            return Err(ParseError::new("file type magic: bad offset"));
        }
        if !f[2].len().is_multiple_of(2) || !f[2].bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(ParseError::new(
                "file type magic: can't decode the hex string",
            ));
        }
    } else {
        crate::hex::parse_subsig(f[2])?;
    }
    for t in [f[4], f[5]] {
        if !CL_TYPES.contains(&t) {
            return Err(ParseError::new(format!(
                "file type magic: unknown type {t}"
            )));
        }
    }
    flevel_fields(f.get(6), f.get(7))
}

/// A `.crb` line: 11 to 13 `;`-separated fields.
pub fn cert_rule(line: &str) -> Result<Loads, ParseError> {
    let n = line.split(';').count();
    if !(11..=13).contains(&n) {
        return Err(ParseError::new(format!(
            "certificate rule: invalid number of tokens: {n} (expected 11 to 13)"
        )));
    }
    Ok(true)
}

/// A `.cbc` file: its first line starts `ClamBC`; it counts once when its second line
/// holds a logical signature (its trigger), not for hook bytecodes (measured: the
/// PDF and startup hooks of bytecode.cvd count 0).
pub fn bytecode(body: &str) -> Result<bool, ParseError> {
    let mut lines = body.lines();
    if !lines.next().is_some_and(|l| l.starts_with("ClamBC")) {
        return Err(ParseError::new("missing file magic in bytecode"));
    }
    Ok(lines.next().is_some_and(|l| l.contains(';')))
}

fn flevel_fields(min: Option<&&str>, max: Option<&&str>) -> Result<Loads, ParseError> {
    let parse = |t: Option<&&str>, what: &str| -> Result<Option<u32>, ParseError> {
        match t {
            None | Some(&"") => Ok(None),
            Some(t) => t
                .parse()
                .map(Some)
                .map_err(|_| ParseError::new(format!("bad {what} '{t}'"))),
        }
    };
    let (min, max) = (parse(min, "MINFL")?, parse(max, "MAXFL")?);
    Ok(min.is_none_or(|m| m <= FLEVEL) && max.is_none_or(|m| m >= FLEVEL))
}
