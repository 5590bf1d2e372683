//! Symbian installation files (SIS, EPOC R5 and R6 "old" format): the simple and
//! multi-language file records, each language's data zlib-inflated unless the header
//! says the files are stored. Other record kinds (options, conditions) end the walk.
//! Hand-written: no crate reads SIS.

use std::io::Read;

use crate::{malformed, Sink, Walk};

/// UID2 of an R5 file; R6 files (UID2 0x10003A12) add original sizes and MIME types.
const UID2_R6: u32 = 0x1000_3a12;
const UID3: u32 = 0x1000_0419;

pub(crate) fn sniff(head: &[u8]) -> bool {
    let le = |at: usize| {
        head.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    le(8) == Some(UID3) && matches!(le(4), Some(0x1000_006d | UID2_R6))
}

pub(crate) fn members(d: &[u8], sink: &mut Sink<'_>) -> Walk {
    let u32_at = |at: usize| {
        d.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let u16_at = |at: usize| {
        d.get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let bad = || malformed("sis: truncated header");
    let r6 = u32_at(4) == Some(UID2_R6 as usize);
    let langs = u16_at(0x12).ok_or_else(bad)?.clamp(1, 64);
    let files = u16_at(0x14).ok_or_else(bad)?;
    let options = u16_at(0x24).ok_or_else(bad)?;
    let stored = options & 0x0008 != 0;
    let unicode = options & 0x0001 != 0;
    let mut at = u32_at(0x34).ok_or_else(bad)?;
    for _ in 0..files.min(4096) {
        let kind = u32_at(at).ok_or_else(bad)?;
        if kind > 1 {
            // Options and conditions: not walked.
            return Ok(());
        }
        let field = |i: usize| u32_at(at + 4 * i).ok_or_else(bad);
        let (name_len, name_at) = (field(5)?, field(6)?);
        let raw_name = d
            .get(name_at..name_at.saturating_add(name_len))
            .unwrap_or_default();
        let name = if unicode {
            let units: Vec<u16> = raw_name
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16_lossy(&units)
        } else {
            String::from_utf8_lossy(raw_name).into_owned()
        };
        let per_language = if kind == 1 { langs } else { 1 };
        for l in 0..per_language {
            let (len, ptr) = (field(7 + l)?, field(7 + per_language + l)?);
            let Some(data) = d.get(ptr..ptr.saturating_add(len)) else {
                return Err(malformed("sis: file data past the end"));
            };
            if stored {
                sink.bytes(&name, data.to_vec())?;
            } else {
                let mut out = Vec::new();
                let _ = flate2::read::ZlibDecoder::new(data)
                    .take(crate::MAX_PARSED)
                    .read_to_end(&mut out);
                sink.bytes(&name, out)?;
            }
        }
        at += 4 * (7 + 2 * per_language) + if r6 { 4 * per_language + 8 } else { 0 };
    }
    Ok(())
}
