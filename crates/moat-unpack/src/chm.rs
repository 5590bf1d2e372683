//! CHM (Microsoft compiled HTML help, ITSF): the directory (PMGL chunks) is parsed
//! here, section 1 ("MSCompressed", LZX) expanded with the `lzxd` crate frame by
//! frame as the reset table cuts it, resetting the decoder every reset interval. No
//! crate reads CHM archives in pure Rust.

use lzxd::{Lzxd, WindowSize};

use crate::{malformed, Failure, Sink, Walk};

const CONTENT: &str = "::DataSpace/Storage/MSCompressed/Content";
const CONTROL: &str = "::DataSpace/Storage/MSCompressed/ControlData";
const RESET_TABLE: &str = "::DataSpace/Storage/MSCompressed/Transform/\
{7FC28940-9D31-11D0-9B27-00A0C91E9C7C}/InstanceData/ResetTable";
const FRAME: usize = 0x8000;

pub(crate) fn sniff(head: &[u8]) -> bool {
    head.starts_with(b"ITSF") && head.len() >= 0x58
}

struct Entry {
    name: String,
    section: u64,
    offset: u64,
    length: u64,
}

fn u32_at(d: &[u8], at: usize) -> Option<u32> {
    d.get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn u64_at(d: &[u8], at: usize) -> Option<u64> {
    d.get(at..at + 8)
        .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
}

/// A CHM variable-length integer: 7 bits a byte, most significant first.
fn encint(d: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for _ in 0..9 {
        let b = *d.get(*at)?;
        *at += 1;
        v = (v << 7) | (b & 0x7f) as u64;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn directory(d: &[u8]) -> Option<(Vec<Entry>, u64)> {
    let dir = usize::try_from(u64_at(d, 0x48)?).ok()?;
    let content = u64_at(d, 0x58)?;
    if d.get(dir..dir + 4)? != b"ITSP" {
        return None;
    }
    let header_len = u32_at(d, dir + 8)? as usize;
    let chunk_size = u32_at(d, dir + 0x10)? as usize;
    let chunks = u32_at(d, dir + 0x2c)? as usize;
    if !(0x20..=0x10000).contains(&chunk_size) {
        return None;
    }
    let mut entries = Vec::new();
    for i in 0..chunks.min(1 << 16) {
        let start = dir + header_len + i * chunk_size;
        let Some(chunk) = d.get(start..start + chunk_size) else {
            break;
        };
        if &chunk[..4] != b"PMGL" {
            continue;
        }
        let free = u32_at(chunk, 4)? as usize;
        let end = chunk_size.saturating_sub(free);
        let mut at = 0x14;
        while at < end {
            let Some(len) = encint(chunk, &mut at) else {
                break;
            };
            let Some(name) = chunk.get(at..at + len as usize) else {
                break;
            };
            at += len as usize;
            let (Some(section), Some(offset), Some(length)) = (
                encint(chunk, &mut at),
                encint(chunk, &mut at),
                encint(chunk, &mut at),
            ) else {
                break;
            };
            entries.push(Entry {
                name: String::from_utf8_lossy(name).into_owned(),
                section,
                offset,
                length,
            });
        }
    }
    Some((entries, content))
}

/// Section 1, expanded (at most `cap` bytes).
fn expand(d: &[u8], entries: &[Entry], content: u64, cap: usize) -> Option<Vec<u8>> {
    let section0 = |name: &str| {
        let e = entries.iter().find(|e| e.name == name && e.section == 0)?;
        let start = usize::try_from(content.checked_add(e.offset)?).ok()?;
        d.get(start..start.checked_add(e.length as usize)?)
    };
    let (compressed, control, table) = (
        section0(CONTENT)?,
        section0(CONTROL)?,
        section0(RESET_TABLE)?,
    );
    if control.get(4..8)? != b"LZXC" {
        return None;
    }
    let version = u32_at(control, 8)?;
    let (mut reset, mut window) = (u32_at(control, 12)? as usize, u32_at(control, 16)? as usize);
    if version == 2 {
        reset = reset.checked_mul(FRAME)?;
        window = window.checked_mul(FRAME)?;
    }
    let window = match window {
        0x8000 => WindowSize::KB32,
        0x10000 => WindowSize::KB64,
        0x20000 => WindowSize::KB128,
        0x40000 => WindowSize::KB256,
        0x80000 => WindowSize::KB512,
        0x100000 => WindowSize::MB1,
        0x200000 => WindowSize::MB2,
        _ => return None,
    };
    let frames_per_reset = (reset / FRAME).max(1);
    let count = u32_at(table, 4)? as usize;
    let table_at = u32_at(table, 12)? as usize;
    let total = (u64_at(table, 0x10)? as usize).min(cap);
    let offsets: Vec<usize> = (0..count.min(1 << 20))
        .map_while(|i| u64_at(table, table_at + 8 * i).map(|o| o as usize))
        .collect();
    let mut decoder = Lzxd::new(window);
    let mut out = Vec::new();
    for (i, &start) in offsets.iter().enumerate() {
        if out.len() >= total {
            break;
        }
        if i > 0 && i % frames_per_reset == 0 {
            decoder.reset();
        }
        let end = offsets.get(i + 1).copied().unwrap_or(compressed.len());
        let Some(frame) = compressed.get(start..end.min(compressed.len())) else {
            break;
        };
        let want = FRAME.min(total - out.len());
        match decoder.decompress_next(frame, want) {
            Ok(data) => out.extend_from_slice(data),
            Err(_) => break,
        }
    }
    Some(out)
}

pub(crate) fn members(d: &[u8], sink: &mut Sink<'_>) -> Walk {
    let (entries, content) = directory(d).ok_or_else(|| malformed("chm: bad directory"))?;
    let section1 = entries
        .iter()
        .any(|e| e.section == 1 && e.length > 0)
        .then(|| expand(d, &entries, content, crate::MAX_PARSED as usize))
        .flatten()
        .unwrap_or_default();
    for e in &entries {
        if e.length == 0 || e.name.ends_with('/') || e.name.starts_with("::") {
            continue;
        }
        let data: &[u8] = match e.section {
            0 => content.checked_add(e.offset).and_then(|s| {
                let s = usize::try_from(s).ok()?;
                d.get(s..s.checked_add(e.length as usize)?.min(d.len()))
            }),
            1 => {
                let s = e.offset as usize;
                section1.get(
                    s.min(section1.len())..s.saturating_add(e.length as usize).min(section1.len()),
                )
            }
            _ => None,
        }
        .unwrap_or_default();
        if !data.is_empty() {
            sink.bytes(&e.name, data.to_vec()).map_err(|f: Failure| f)?;
        }
    }
    Ok(())
}
