//! The offset column of `.ndb` signatures.

use crate::error::ParseError;

/// Where a signature's match must start, relative to what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetBase {
    /// `*`: anywhere.
    Any,
    /// `n`: exactly at byte `n`.
    Absolute(u64),
    /// `EOF-n`: `n` bytes before the end of the file.
    FromEnd(u64),
    /// `EP+n` / `EP-n`: relative to the executable's entry point.
    EntryPoint(i64),
    /// `Sx+n`: `n` bytes into section `x`.
    SectionStart {
        /// Section index, from 0.
        section: u32,
        /// Bytes into the section.
        delta: u64,
    },
    /// `SEx`: anywhere inside section `x`.
    SectionEntire(u32),
    /// `SL+n`: `n` bytes into the last section.
    LastSection(u64),
    /// `VI`: the pattern is matched against the strings of the PE version-information
    /// resource (`VS_VERSIONINFO`), not the file's bytes. Executable targets only, as
    /// the other executable offsets (measured: `VI` on target 0 is refused).
    VersionInfo,
}

impl OffsetBase {
    /// Whether the offset needs an executable parser (PE/ELF/Mach-O) to resolve.
    pub fn needs_executable(&self) -> bool {
        !matches!(
            self,
            OffsetBase::Any | OffsetBase::Absolute(_) | OffsetBase::FromEnd(_)
        )
    }
}

/// A parsed offset: a base plus an optional floating window `,maxshift`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offset {
    /// The reference point.
    pub base: OffsetBase,
    /// With `Offset,MaxShift`, the match may start up to this many bytes later.
    pub max_shift: Option<u32>,
}

impl Offset {
    /// The range of allowed start positions in a file of `file_len` bytes, for the
    /// offsets that need no executable parsing; `None` when the offset cannot be
    /// satisfied (e.g. `EOF-n` beyond the start) or needs an executable parser.
    /// `Any` gives the whole file.
    pub fn start_range(&self, file_len: u64) -> Option<(u64, u64)> {
        let shift = u64::from(self.max_shift.unwrap_or(0));
        let start = match self.base {
            OffsetBase::Any => return Some((0, file_len)),
            OffsetBase::Absolute(n) => n,
            OffsetBase::FromEnd(n) => file_len.checked_sub(n)?,
            _ => return None,
        };
        Some((start, start.saturating_add(shift)))
    }
}

/// Parses an offset column: `*`, `n`, `EOF-n`, `EP+n`, `EP-n`, `Sx+n`, `SEx`, `SL+n`, `VI`,
/// each but `*` optionally followed by `,maxshift`.
pub fn parse(text: &str) -> Result<Offset, ParseError> {
    if text == "*" {
        return Ok(Offset {
            base: OffsetBase::Any,
            max_shift: None,
        });
    }
    let (base_text, max_shift) = match text.split_once(',') {
        // ClamAV reads `10,` as `10`.
        Some((b, "")) => (b, None),
        Some((b, s)) => (b, Some(number::<u32>(s, "max shift")?)),
        None => (text, None),
    };
    // Measured: clamscan loads an empty offset and `EOF-` (read as EOF-0) and never
    // matches them; EOF-0 is what no pattern can satisfy, so both are read as that.
    if base_text.is_empty() || base_text == "EOF-" {
        return Ok(Offset {
            base: OffsetBase::FromEnd(0),
            max_shift,
        });
    }
    let base = if base_text == "VI" {
        OffsetBase::VersionInfo
    } else if let Some(n) = base_text.strip_prefix("EOF-") {
        OffsetBase::FromEnd(number(n, "EOF distance")?)
    } else if let Some(rest) = base_text.strip_prefix("EP") {
        let delta = match rest.as_bytes().first() {
            Some(b'+') => number::<i64>(&rest[1..], "entry point delta")?,
            Some(b'-') => -number::<i64>(&rest[1..], "entry point delta")?,
            _ => return Err(bad(text)),
        };
        OffsetBase::EntryPoint(delta)
    } else if let Some(n) = base_text.strip_prefix("SL+") {
        OffsetBase::LastSection(number(n, "section delta")?)
    } else if let Some(x) = base_text.strip_prefix("SE") {
        OffsetBase::SectionEntire(number(x, "section number")?)
    } else if let Some(rest) = base_text.strip_prefix('S') {
        let (x, n) = rest.split_once('+').ok_or_else(|| bad(text))?;
        OffsetBase::SectionStart {
            section: number(x, "section number")?,
            delta: number(n, "section delta")?,
        }
    } else if base_text.bytes().all(|c| c.is_ascii_digit()) && !base_text.is_empty() {
        OffsetBase::Absolute(number(base_text, "offset")?)
    } else {
        return Err(bad(text));
    };
    Ok(Offset { base, max_shift })
}

fn bad(text: &str) -> ParseError {
    ParseError::new(format!(
        "bad offset '{text}' (expected *, n, EOF-n, EP+n, EP-n, Sx+n, SEx, SL+n or VI, optionally ',shift')"
    ))
}

fn number<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, ParseError> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return Err(ParseError::new(format!("bad {what} '{s}' in offset")));
    }
    s.parse()
        .map_err(|_| ParseError::new(format!("{what} '{s}' in offset is out of range")))
}
