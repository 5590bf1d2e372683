//! What is known about the file being scanned, computed once per file and shared by
//! every matcher: its ClamAV file type, and (lazily, only when some signature asks)
//! its executable layout.

use std::cell::OnceCell;

use moat_formats::{exe, filetype, ByteSource, ExeInfo, FileType};
use moat_sigs::{Offset, OffsetBase};

/// How many leading bytes of a streamed file its type is detected from (HTML tags and
/// an embedded PE header are looked for in them only; a file read whole is typed
/// from all of it).
pub const STREAM_HEAD: usize = 1 << 20;

/// HTML files and parsed mails up to this size are read whole even when streamed
/// (their normalized copies need all of them); larger ones are streamed raw.
pub const WHOLE_READ_MAX: u64 = 20 << 20;

/// Per-file facts: the file type from its leading bytes, the executable layout read
/// through positioned reads (so a streamed file's headers are read with `pread`, not
/// kept in memory). One per scanned file; not shared between threads.
pub struct FileFacts<'a> {
    file_type: FileType,
    source: &'a dyn ByteSource,
    exe: OnceCell<Option<ExeInfo>>,
}

impl<'a> FileFacts<'a> {
    /// Facts about the file whose bytes `source` reads and which starts with `head`
    /// (the whole file when it is in memory).
    pub fn new(head: &[u8], source: &'a dyn ByteSource) -> FileFacts<'a> {
        Self::with_magic(head, source, &filetype::ExtraMagic::default())
    }

    /// [`FileFacts::new`], with the fixed-offset rules of loaded `.ftm` files tried
    /// before the built-in table.
    pub fn with_magic(
        head: &[u8],
        source: &'a dyn ByteSource,
        magic: &filetype::ExtraMagic,
    ) -> FileFacts<'a> {
        FileFacts {
            file_type: magic.detect(head),
            source,
            exe: OnceCell::new(),
        }
    }

    /// The file type, as ClamAV's type detection decides it.
    pub fn file_type(&self) -> FileType {
        self.file_type
    }

    /// The file's length.
    pub fn len(&self) -> u64 {
        self.source.len()
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes of the file, for positioned reads.
    pub fn source(&self) -> &'a dyn ByteSource {
        self.source
    }

    /// The executable layout (PE/ELF/Mach-O), parsed at the first call; `None` when
    /// the file is no executable of a kind its type says, or its headers are broken.
    pub fn exe(&self) -> Option<&ExeInfo> {
        self.exe
            .get_or_init(|| match self.file_type {
                FileType::Pe | FileType::Elf | FileType::MachO => exe::parse(self.source),
                _ => None,
            })
            .as_ref()
    }
}

/// The range of allowed start positions of a signature with `offset` in a file of
/// `file_len` bytes whose executable layout is `exe` (measured on clamscan 1.4.6,
/// docs/clamav-oracle.md section 13):
/// - `EP+n`/`EP-n`: the entry point's file offset plus or minus `n`;
/// - `Sx+n`: section `x`'s raw offset plus `n` (`n` may run past the section's end;
///   a section that does not exist matches nothing);
/// - `SEx`: from section `x`'s raw offset to its raw end, inclusive (the match may
///   run past the end);
/// - `SL+n`: the last section's raw offset plus `n`;
/// - each widened by `,maxshift`. `None` when the offset cannot be satisfied.
pub fn start_range(offset: &Offset, file_len: u64, exe: Option<&ExeInfo>) -> Option<(u64, u64)> {
    if !offset.base.needs_executable() {
        return offset.start_range(file_len);
    }
    let exe = exe?;
    let shift = u64::from(offset.max_shift.unwrap_or(0));
    let start = match offset.base {
        OffsetBase::EntryPoint(delta) => exe.entry_point?.checked_add_signed(delta)?,
        OffsetBase::SectionStart { section, delta } => exe
            .sections
            .get(section as usize)?
            .raw_offset
            .checked_add(delta)?,
        OffsetBase::SectionEntire(section) => {
            let s = exe.sections.get(section as usize)?;
            let end = s
                .raw_offset
                .saturating_add(s.raw_size)
                .saturating_add(shift);
            return Some((s.raw_offset, end));
        }
        OffsetBase::LastSection(delta) => exe.sections.last()?.raw_offset.checked_add(delta)?,
        _ => return offset.start_range(file_len),
    };
    Some((start, start.saturating_add(shift)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use moat_formats::{ExeKind, Section};

    fn off(text: &str) -> Offset {
        moat_sigs::offset::parse(text).unwrap()
    }

    #[test]
    fn executable_offsets() {
        let sec = |raw_offset, raw_size| Section {
            rva: 0,
            virtual_size: raw_size,
            raw_offset,
            raw_size,
        };
        let exe = ExeInfo {
            kind: ExeKind::Pe,
            entry_point: Some(0x40),
            sections: vec![sec(0, 0x200), sec(0x200, 0x100)],
        };
        let e = Some(&exe);
        assert_eq!(start_range(&off("EP+0"), 1000, e), Some((0x40, 0x40)));
        assert_eq!(start_range(&off("EP-2,4"), 1000, e), Some((0x3e, 0x42)));
        assert_eq!(start_range(&off("EP-65"), 1000, e), None);
        assert_eq!(start_range(&off("S1+3"), 1000, e), Some((0x203, 0x203)));
        assert_eq!(start_range(&off("S2+0"), 1000, e), None);
        assert_eq!(start_range(&off("SE0"), 1000, e), Some((0, 0x200)));
        assert_eq!(start_range(&off("SL+1"), 1000, e), Some((0x201, 0x201)));
        assert_eq!(start_range(&off("EP+0"), 1000, None), None);
        assert_eq!(start_range(&off("10,5"), 1000, None), Some((10, 15)));
    }
}
