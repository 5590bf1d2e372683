//! Executable layout: PE, ELF and Mach-O headers parsed into file offsets, the way
//! ClamAV's offset resolution (`EP+n`, `Sx+n`, `SEx`, `SL+n`) and its section hashes
//! see them.
//!
//! Every read goes through a [`ByteSource`] (positioned reads), so a large file need
//! not be in memory; every count read from a header is capped before anything is
//! allocated from it; no input panics (property-tested).

use crate::ByteSource;

/// Which executable format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExeKind {
    /// Windows PE (32 or 64-bit).
    Pe,
    /// ELF (32 or 64-bit, either byte order).
    Elf,
    /// Mach-O (32 or 64-bit, either byte order).
    MachO,
}

/// One section as ClamAV's offset and section-hash logic sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Section {
    /// Relative virtual address (PE) or virtual address.
    pub rva: u64,
    /// Virtual size.
    pub virtual_size: u64,
    /// Where the section's bytes start in the file.
    pub raw_offset: u64,
    /// How many bytes of the file it occupies.
    pub raw_size: u64,
}

/// What the offsets `EP+n`, `Sx+n`, `SEx`, `SL+n` and the `.ldb` keys need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExeInfo {
    /// The format.
    pub kind: ExeKind,
    /// The entry point as a file offset, when it maps into the file.
    pub entry_point: Option<u64>,
    /// Sections in header order (ClamAV numbers them from 0).
    pub sections: Vec<Section>,
}

/// Most PE sections ClamAV accepts (its `PE_MAXSECTIONS`); a header with more is
/// not parsed.
pub const PE_MAX_SECTIONS: usize = 96;
/// Most ELF section headers read; a header declaring more is not parsed.
pub const ELF_MAX_SECTIONS: usize = 2048;
/// Most ELF program headers read.
pub const ELF_MAX_SEGMENTS: usize = 128;
/// Most Mach-O load commands read, and sections kept.
pub const MACHO_MAX_COMMANDS: usize = 1024;

/// Parses the executable in `src`: PE (`MZ`), ELF (`\x7fELF`) or Mach-O (thin, 32
/// or 64-bit, either byte order). `None` when it is none of them or its headers are
/// broken.
pub fn parse(src: &dyn ByteSource) -> Option<ExeInfo> {
    let r = Reader { src };
    let magic = r.bytes::<4>(0)?;
    match magic {
        [b'M', b'Z', ..] => pe(&r),
        [0x7f, b'E', b'L', b'F'] => elf(&r),
        [0xfe, 0xed, 0xfa, 0xce | 0xcf] | [0xce | 0xcf, 0xfa, 0xed, 0xfe] => macho(&r),
        _ => None,
    }
}

/// Checked little helpers over a [`ByteSource`].
struct Reader<'a> {
    src: &'a dyn ByteSource,
}

impl Reader<'_> {
    fn len(&self) -> u64 {
        self.src.len()
    }

    /// Exactly `N` bytes at `at`, or `None`.
    fn bytes<const N: usize>(&self, at: u64) -> Option<[u8; N]> {
        let mut buf = [0u8; N];
        let mut filled = 0;
        while filled < N {
            let n = self
                .src
                .read_at(at.checked_add(filled as u64)?, &mut buf[filled..])
                .ok()?;
            if n == 0 {
                return None;
            }
            filled += n;
        }
        Some(buf)
    }

    /// `n` bytes at `at` into a new buffer (`n` must already be capped by the caller).
    fn vec(&self, at: u64, n: usize) -> Option<Vec<u8>> {
        if at.checked_add(n as u64)? > self.len() {
            return None;
        }
        let mut buf = vec![0u8; n];
        let mut filled = 0;
        while filled < n {
            let k = self
                .src
                .read_at(at + filled as u64, &mut buf[filled..])
                .ok()?;
            if k == 0 {
                return None;
            }
            filled += k;
        }
        Some(buf)
    }
}

/// Integer reads from a byte slice in a given byte order; `None` past its end.
#[derive(Clone, Copy)]
struct Endian {
    big: bool,
}

impl Endian {
    fn u16(self, b: &[u8], at: usize) -> Option<u16> {
        let v: [u8; 2] = b.get(at..at + 2)?.try_into().ok()?;
        Some(if self.big {
            u16::from_be_bytes(v)
        } else {
            u16::from_le_bytes(v)
        })
    }
    fn u32(self, b: &[u8], at: usize) -> Option<u32> {
        let v: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        Some(if self.big {
            u32::from_be_bytes(v)
        } else {
            u32::from_le_bytes(v)
        })
    }
    fn u64(self, b: &[u8], at: usize) -> Option<u64> {
        let v: [u8; 8] = b.get(at..at + 8)?.try_into().ok()?;
        Some(if self.big {
            u64::from_be_bytes(v)
        } else {
            u64::from_le_bytes(v)
        })
    }
}

const LE: Endian = Endian { big: false };

/// ClamAV's `PEALIGN`: rounds down to a multiple of `a` (0: unchanged).
fn align_down(o: u64, a: u64) -> u64 {
    o.checked_div(a).map_or(o, |q| q * a)
}

/// ClamAV's `PESALIGN`: rounds up to a multiple of `a` (0: unchanged).
fn align_up(o: u64, a: u64) -> u64 {
    if a == 0 {
        o
    } else {
        o.div_ceil(a).saturating_mul(a)
    }
}

/// PE32/PE32+: sections with ClamAV's alignment (addresses rounded down, sizes up,
/// the file alignment falling back to 0x200 when a section's raw offset is
/// misaligned to it but a multiple of 0x200; raw sizes cut at the end of the file),
/// the entry point mapped through the last section containing it (an entry point
/// inside the aligned headers is its own file offset; one that maps nowhere drops
/// the whole layout, as ClamAV's "broken PE").
fn pe(r: &Reader) -> Option<ExeInfo> {
    let fsize = r.len();
    let e_lfanew = u64::from(u32::from_le_bytes(r.bytes::<4>(0x3c)?));
    if r.bytes::<4>(e_lfanew)? != *b"PE\0\0" {
        return None;
    }
    let coff = r.bytes::<20>(e_lfanew + 4)?;
    let nsections = usize::from(LE.u16(&coff, 2)?);
    let opt_size = u64::from(LE.u16(&coff, 16)?);
    if nsections == 0 || nsections > PE_MAX_SECTIONS {
        return None;
    }
    let opt_at = e_lfanew + 24;
    let opt = r.bytes::<64>(opt_at)?;
    match LE.u16(&opt, 0)? {
        0x10b | 0x20b => {}
        _ => return None,
    }
    let entry = u64::from(LE.u32(&opt, 16)?);
    let valign = u64::from(LE.u32(&opt, 32)?);
    let mut falign = u64::from(LE.u32(&opt, 36)?);
    let headers = u64::from(LE.u32(&opt, 60)?);
    let table = r.vec(opt_at + opt_size, nsections * 40)?;
    let raw: Vec<[u32; 4]> = table
        .chunks_exact(40)
        .map(|h| {
            let f = |at| LE.u32(h, at).unwrap_or(0);
            [f(8), f(12), f(16), f(20)] // VirtualSize, VirtualAddress, SizeOfRawData, PointerToRawData
        })
        .collect();
    if falign != 0x200 {
        let misaligned = raw.iter().any(|&[_, _, rsz, ptr]| {
            let ptr = u64::from(ptr);
            falign != 0 && rsz != 0 && ptr % falign != 0 && ptr % 0x200 == 0
        });
        if misaligned {
            falign = 0x200;
        }
    }
    let hdr_size = align_up(headers, valign);
    let sections: Vec<Section> = raw
        .iter()
        .map(|&[vsz, va, rsz, ptr]| {
            let raw_offset = align_down(u64::from(ptr), falign);
            let mut raw_size = align_up(u64::from(rsz), falign);
            let mut virtual_size = align_up(u64::from(vsz), valign);
            if virtual_size == 0 && raw_size != 0 {
                virtual_size = align_up(u64::from(rsz), valign);
            }
            if raw_size != 0 && raw_offset.saturating_add(raw_size) > fsize {
                raw_size = fsize.saturating_sub(raw_offset);
            }
            Section {
                rva: align_down(u64::from(va), valign),
                virtual_size,
                raw_offset,
                raw_size,
            }
        })
        .collect();
    // An entry point that maps nowhere: ClamAV keeps no layout at all (measured).
    let entry_point = if entry < hdr_size {
        (entry < fsize).then_some(entry)?
    } else {
        sections
            .iter()
            .rev()
            .find(|s| s.raw_size != 0 && s.rva <= entry && s.raw_size > entry - s.rva)
            .map(|s| entry - s.rva + s.raw_offset)?
    };
    Some(ExeInfo {
        kind: ExeKind::Pe,
        entry_point: Some(entry_point),
        sections,
    })
}

/// ELF32/ELF64, either byte order: the entry point mapped to a file offset through
/// the first program header whose file image contains it (without program headers,
/// the entry value itself); sections are the section headers (address, size, file
/// offset) in table order, index 0 the null one. An entry point outside every
/// program header, or unreadable tables: not parsed (ClamAV keeps no layout then).
fn elf(r: &Reader) -> Option<ExeInfo> {
    let ident = r.bytes::<64>(0).or_else(|| {
        // A 32-bit header is 52 bytes.
        let h = r.bytes::<52>(0)?;
        let mut full = [0u8; 64];
        full[..52].copy_from_slice(&h);
        Some(full)
    })?;
    let wide = match ident[4] {
        1 => false,
        2 => true,
        _ => return None,
    };
    let e = match ident[5] {
        1 => Endian { big: false },
        2 => Endian { big: true },
        _ => return None,
    };
    let h = &ident[..];
    let (entry, phoff, shoff, rest) = if wide {
        (e.u64(h, 24)?, e.u64(h, 32)?, e.u64(h, 40)?, 48)
    } else {
        (
            u64::from(e.u32(h, 24)?),
            u64::from(e.u32(h, 28)?),
            u64::from(e.u32(h, 32)?),
            36,
        )
    };
    let phentsize = usize::from(e.u16(h, rest + 6)?);
    let phnum = usize::from(e.u16(h, rest + 8)?);
    let shentsize = usize::from(e.u16(h, rest + 10)?);
    let shnum = usize::from(e.u16(h, rest + 12)?);
    let (ph_min, sh_min) = if wide { (56, 64) } else { (32, 40) };

    // No program headers (an object file): the entry point is taken as a file offset.
    // Else it must map through one, or ClamAV keeps no layout at all (measured).
    let entry_point = if phnum == 0 {
        entry
    } else {
        if phnum > ELF_MAX_SEGMENTS || phentsize < ph_min {
            return None;
        }
        let table = r.vec(phoff, phnum * phentsize)?;
        table.chunks_exact(phentsize).find_map(|p| {
            let (offset, vaddr, filesz) = if wide {
                (e.u64(p, 8)?, e.u64(p, 16)?, e.u64(p, 32)?)
            } else {
                (
                    u64::from(e.u32(p, 4)?),
                    u64::from(e.u32(p, 8)?),
                    u64::from(e.u32(p, 16)?),
                )
            };
            (vaddr <= entry && entry - vaddr < filesz).then(|| entry - vaddr + offset)
        })?
    };
    let mut sections = Vec::new();
    if shnum > 0 {
        if shnum > ELF_MAX_SECTIONS || shentsize < sh_min {
            return None;
        }
        let table = r.vec(shoff, shnum * shentsize)?;
        for s in table.chunks_exact(shentsize) {
            let (addr, offset, size) = if wide {
                (e.u64(s, 16)?, e.u64(s, 24)?, e.u64(s, 32)?)
            } else {
                (
                    u64::from(e.u32(s, 12)?),
                    u64::from(e.u32(s, 16)?),
                    u64::from(e.u32(s, 20)?),
                )
            };
            sections.push(Section {
                rva: addr,
                virtual_size: size,
                raw_offset: offset,
                raw_size: size,
            });
        }
    }
    Some(ExeInfo {
        kind: ExeKind::Elf,
        entry_point: Some(entry_point).filter(|&ep| ep < r.len()),
        sections,
    })
}

/// Mach-O (thin), as ClamAV's `macho.c` reads it: sections of `LC_SEGMENT` /
/// `LC_SEGMENT_64` in command order, raw size = size rounded up to the section's
/// alignment; the entry point only from an `LC_THREAD`/`LC_UNIXTHREAD` of a PowerPC
/// binary (`srr0`, mapped through the sections). Any other binary (`LC_MAIN`, x86,
/// x86-64, ARM threads) gets entry point 0: `EP+n` counts from the file's start
/// (measured). A PowerPC entry point outside every section, more than 255 sections in
/// a segment, or no load command at all: not parsed.
fn macho(r: &Reader) -> Option<ExeInfo> {
    let magic = r.bytes::<4>(0)?;
    let (e, wide) = match magic {
        [0xfe, 0xed, 0xfa, 0xce] => (Endian { big: true }, false),
        [0xfe, 0xed, 0xfa, 0xcf] => (Endian { big: true }, true),
        [0xce, 0xfa, 0xed, 0xfe] => (Endian { big: false }, false),
        _ => (Endian { big: false }, true),
    };
    let header = r.bytes::<28>(0)?;
    let cputype = e.u32(&header, 4)?;
    let ncmds = e.u32(&header, 16)? as usize;
    if ncmds == 0 || ncmds > MACHO_MAX_COMMANDS {
        return None;
    }
    let mut at = if wide { 32u64 } else { 28 };
    let mut sections = Vec::new();
    let mut ep_vaddr = None;
    for _ in 0..ncmds {
        let lc = r.bytes::<8>(at)?;
        let (cmd, size) = (e.u32(&lc, 0)?, u64::from(e.u32(&lc, 4)?));
        match cmd {
            // LC_SEGMENT (32-bit files), LC_SEGMENT_64 (64-bit files)
            0x1 | 0x19 if (cmd == 0x19) == wide => {
                let (seg_len, sect_len) = if wide { (72u64, 80u64) } else { (56, 68) };
                let seg = r.vec(at, seg_len as usize)?;
                let nsects = e.u32(&seg, if wide { 64 } else { 48 })? as u64;
                if nsects > 255 {
                    return None;
                }
                let mut s_at = at + seg_len;
                for _ in 0..nsects {
                    let s = r.vec(s_at, sect_len as usize)?;
                    let (addr, size, offset, align) = if wide {
                        (
                            e.u64(&s, 32)?,
                            e.u64(&s, 40)?,
                            e.u32(&s, 48)?,
                            e.u32(&s, 52)?,
                        )
                    } else {
                        let f = |o| e.u32(&s, o).map(u64::from);
                        (f(32)?, f(36)?, e.u32(&s, 40)?, e.u32(&s, 44)?)
                    };
                    if align > 31 {
                        return None;
                    }
                    sections.push(Section {
                        rva: addr,
                        virtual_size: size,
                        raw_offset: u64::from(offset),
                        raw_size: align_up(size, 1u64 << align),
                    });
                    s_at += sect_len;
                }
                at = s_at;
                continue;
            }
            // LC_THREAD, LC_UNIXTHREAD: flavor and count, then the state; srr0 first.
            0x4 | 0x5 => match cputype {
                18 => ep_vaddr = Some(u64::from(e.u32(&r.bytes::<4>(at + 16)?, 0)?)),
                0x0100_0012 => ep_vaddr = Some(e.u64(&r.bytes::<8>(at + 16)?, 0)?),
                _ => {}
            },
            _ => {}
        }
        at = at.checked_add(size.max(8))?;
    }
    let entry_point = match ep_vaddr {
        None | Some(0) => 0,
        Some(pc) => sections
            .iter()
            .find(|s| s.rva <= pc && pc - s.rva < s.raw_size)
            .map(|s| pc - s.rva + s.raw_offset)?,
    };
    Some(ExeInfo {
        kind: ExeKind::MachO,
        entry_point: Some(entry_point).filter(|&ep| ep < r.len()),
        sections,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal PE32 with the given sections `(va, vsize, raw ptr, raw size)`.
    pub(crate) fn tiny_pe(entry: u32, sections: &[(u32, u32, u32, u32)], len: usize) -> Vec<u8> {
        let mut f = vec![0u8; len];
        f[..2].copy_from_slice(b"MZ");
        f[0x3c..0x40].copy_from_slice(&0x40u32.to_le_bytes());
        f[0x40..0x44].copy_from_slice(b"PE\0\0");
        f[0x46..0x48].copy_from_slice(&(sections.len() as u16).to_le_bytes());
        f[0x54..0x56].copy_from_slice(&0xe0u16.to_le_bytes());
        let opt = 0x58;
        f[opt..opt + 2].copy_from_slice(&0x10bu16.to_le_bytes());
        f[opt + 16..opt + 20].copy_from_slice(&entry.to_le_bytes());
        f[opt + 32..opt + 36].copy_from_slice(&0x1000u32.to_le_bytes());
        f[opt + 36..opt + 40].copy_from_slice(&0x200u32.to_le_bytes());
        f[opt + 60..opt + 64].copy_from_slice(&0x200u32.to_le_bytes());
        for (i, &(va, vsz, ptr, rsz)) in sections.iter().enumerate() {
            let s = opt + 0xe0 + 40 * i;
            f[s..s + 5].copy_from_slice(b".text");
            f[s + 8..s + 12].copy_from_slice(&vsz.to_le_bytes());
            f[s + 12..s + 16].copy_from_slice(&va.to_le_bytes());
            f[s + 16..s + 20].copy_from_slice(&rsz.to_le_bytes());
            f[s + 20..s + 24].copy_from_slice(&ptr.to_le_bytes());
        }
        f
    }

    #[test]
    fn pe_layout() {
        let f = tiny_pe(
            0x2010,
            &[(0x1000, 0x100, 0x200, 0x200), (0x2000, 0x80, 0x400, 0x1ff)],
            0x700,
        );
        let info = parse(&f).unwrap();
        assert_eq!(info.kind, ExeKind::Pe);
        assert_eq!(info.sections.len(), 2);
        assert_eq!(info.sections[1].raw_offset, 0x400);
        // Raw size rounded up to the file alignment, then cut at the end of the file.
        assert_eq!(info.sections[1].raw_size, 0x200);
        assert_eq!(info.sections[0].virtual_size, 0x1000);
        assert_eq!(info.entry_point, Some(0x410));
        // An entry point inside the headers is its own offset.
        let f = tiny_pe(0x10, &[(0x1000, 0x100, 0x200, 0x200)], 0x400);
        assert_eq!(parse(&f).unwrap().entry_point, Some(0x10));
        // One outside every section: no layout at all (as ClamAV).
        let f = tiny_pe(0x9000, &[(0x1000, 0x100, 0x200, 0x200)], 0x400);
        assert_eq!(parse(&f), None);
    }

    #[test]
    fn pe_rejects_broken_headers() {
        assert_eq!(parse(&b"MZ".to_vec()), None);
        let mut f = tiny_pe(0, &[(0x1000, 0x100, 0x200, 0x200)], 0x400);
        f[0x40] = b'X';
        assert_eq!(parse(&f), None);
        let mut f = tiny_pe(0, &[(0x1000, 0x100, 0x200, 0x200)], 0x400);
        f[0x46..0x48].copy_from_slice(&1000u16.to_le_bytes());
        assert_eq!(parse(&f), None);
    }

    #[test]
    fn clam_exe() {
        let Ok(data) = std::fs::read("/usr/share/clamav-testfiles/clam.exe") else {
            return;
        };
        let info = parse(&data).expect("clam.exe is a PE");
        assert_eq!(info.kind, ExeKind::Pe);
        assert!(!info.sections.is_empty());
        let ep = info.entry_point.expect("entry point maps");
        assert!(ep < data.len() as u64);
    }

    #[test]
    fn elf_of_this_test() {
        let exe = std::env::current_exe().unwrap();
        let file = std::fs::File::open(&exe).unwrap();
        let info = parse(&file).expect("the test binary is an ELF");
        assert_eq!(info.kind, ExeKind::Elf);
        assert!(info.sections.len() > 10);
        assert_eq!(info.sections[0].raw_size, 0, "section 0 is SHT_NULL");
        assert!(info.entry_point.is_some());
    }

    #[test]
    fn elf_big_endian_32() {
        // A 32-bit big-endian header with one PT_LOAD (offset 0, vaddr 0x1000, 0x100
        // bytes) and entry 0x1040.
        let mut f = vec![0u8; 0x100];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 1;
        f[5] = 2;
        f[24..28].copy_from_slice(&0x1040u32.to_be_bytes());
        f[28..32].copy_from_slice(&52u32.to_be_bytes());
        f[42..44].copy_from_slice(&32u16.to_be_bytes());
        f[44..46].copy_from_slice(&1u16.to_be_bytes());
        let p = 52;
        f[p..p + 4].copy_from_slice(&1u32.to_be_bytes());
        f[p + 8..p + 12].copy_from_slice(&0x1000u32.to_be_bytes());
        f[p + 16..p + 20].copy_from_slice(&0x100u32.to_be_bytes());
        let info = parse(&f).unwrap();
        assert_eq!(info.entry_point, Some(0x40));
        assert!(info.sections.is_empty());
        // An entry point outside the program headers: no layout at all.
        f[24..28].copy_from_slice(&0x9000u32.to_be_bytes());
        assert_eq!(parse(&f), None);
        // No program headers: the entry value is the file offset.
        f[44..46].copy_from_slice(&0u16.to_be_bytes());
        f[24..28].copy_from_slice(&0x10u32.to_be_bytes());
        assert_eq!(parse(&f).unwrap().entry_point, Some(0x10));
    }

    #[test]
    fn macho_sections_and_entry_point() {
        // 64-bit LE x86-64, one LC_SEGMENT_64 with one section (align 2^4), and LC_MAIN.
        let mut f = vec![0u8; 0x400];
        f[..4].copy_from_slice(&[0xcf, 0xfa, 0xed, 0xfe]);
        f[4..8].copy_from_slice(&0x0100_0007u32.to_le_bytes());
        f[16..20].copy_from_slice(&2u32.to_le_bytes());
        let seg = 32;
        f[seg..seg + 4].copy_from_slice(&0x19u32.to_le_bytes());
        f[seg + 4..seg + 8].copy_from_slice(&152u32.to_le_bytes());
        f[seg + 64..seg + 68].copy_from_slice(&1u32.to_le_bytes());
        let s = seg + 72;
        f[s + 32..s + 40].copy_from_slice(&0x1_0000_0100u64.to_le_bytes());
        f[s + 40..s + 48].copy_from_slice(&0x7au64.to_le_bytes());
        f[s + 48..s + 52].copy_from_slice(&0x100u32.to_le_bytes());
        f[s + 52..s + 56].copy_from_slice(&4u32.to_le_bytes());
        let main = seg + 152;
        f[main..main + 4].copy_from_slice(&0x8000_0028u32.to_le_bytes());
        f[main + 4..main + 8].copy_from_slice(&24u32.to_le_bytes());
        f[main + 8..main + 16].copy_from_slice(&0x120u64.to_le_bytes());
        let info = parse(&f).unwrap();
        assert_eq!(info.kind, ExeKind::MachO);
        // LC_MAIN is not read: the entry point is the file's start (as ClamAV).
        assert_eq!(info.entry_point, Some(0));
        assert_eq!(info.sections[0].raw_offset, 0x100);
        assert_eq!(info.sections[0].raw_size, 0x80);
        // A PowerPC (big-endian, 32-bit) thread's srr0 maps through the sections.
        let mut p = vec![0u8; 0x400];
        p[..4].copy_from_slice(&[0xfe, 0xed, 0xfa, 0xce]);
        p[4..8].copy_from_slice(&18u32.to_be_bytes());
        p[16..20].copy_from_slice(&2u32.to_be_bytes());
        let seg = 28;
        p[seg..seg + 4].copy_from_slice(&1u32.to_be_bytes());
        p[seg + 4..seg + 8].copy_from_slice(&124u32.to_be_bytes());
        p[seg + 48..seg + 52].copy_from_slice(&1u32.to_be_bytes());
        let s = seg + 56;
        p[s + 32..s + 36].copy_from_slice(&0x2000u32.to_be_bytes());
        p[s + 36..s + 40].copy_from_slice(&0x100u32.to_be_bytes());
        p[s + 40..s + 44].copy_from_slice(&0x200u32.to_be_bytes());
        let th = seg + 124;
        p[th..th + 4].copy_from_slice(&5u32.to_be_bytes());
        p[th + 4..th + 8].copy_from_slice(&(16u32 + 160).to_be_bytes());
        p[th + 16..th + 20].copy_from_slice(&0x2010u32.to_be_bytes());
        let info = parse(&p).unwrap();
        assert_eq!(info.entry_point, Some(0x210));
        // An srr0 outside every section: not parsed at all (ClamAV's error).
        p[th + 16..th + 20].copy_from_slice(&0x9000u32.to_be_bytes());
        assert_eq!(parse(&p), None);
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(data: Vec<u8>) {
            let _ = parse(&data);
        }

        #[test]
        fn parse_never_panics_on_mutated_headers(
            edits in proptest::collection::vec((0usize..0x400, proptest::num::u8::ANY), 0..24),
            kind in 0usize..3,
        ) {
            let mut f = tiny_pe(0x1010, &[(0x1000, 0x100, 0x200, 0x200)], 0x400);
            match kind {
                1 => f[..4].copy_from_slice(b"\x7fELF"),
                2 => f[..4].copy_from_slice(&[0xcf, 0xfa, 0xed, 0xfe]),
                _ => {}
            }
            for (at, b) in edits {
                f[at] = b;
            }
            let _ = parse(&f);
        }
    }
}
