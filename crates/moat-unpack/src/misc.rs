//! Small formats, hand-written because each is a page of code and no maintained
//! crate reads them: BinHex 4.0, SZDD (MS-DOS `COMPRESS.EXE`), and the
//! `\x01Ole10Native` wrapper of objects embedded in OLE2 documents.

use crate::{malformed, memfind, Sink, Walk};

const BINHEX_TAG: &[u8] = b"(This file must be converted with BinHex";
const BINHEX_ALPHABET: &[u8] = b"!\"#$%&'()*+,-012345689@ABCDEFGHIJKLMNPQRSTUVXYZ[`abcdefhijklmpqr";

pub(crate) fn is_binhex(head: &[u8]) -> bool {
    // Built once: `memmem::find` builds a searcher per call, which cost more than
    // the search itself on every sniffed file (callgrind, small text files).
    static TAG: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(BINHEX_TAG));
    TAG.find(&head[..head.len().min(1024)]).is_some()
}

/// A BinHex file's data fork (its resource fork too, when it has one).
pub(crate) fn binhex(data: &[u8], sink: &mut Sink<'_>) -> Walk {
    let tag = memfind(data, BINHEX_TAG).ok_or_else(|| malformed("binhex: no tag"))?;
    let after = &data[tag..];
    let start = after
        .iter()
        .position(|&b| b == b':')
        .ok_or_else(|| malformed("binhex: no data"))?;
    let mut table = [0xffu8; 256];
    for (i, &c) in BINHEX_ALPHABET.iter().enumerate() {
        table[c as usize] = i as u8;
    }
    let mut sixes = Vec::new();
    for &c in &after[start + 1..] {
        if c == b':' {
            break;
        }
        if table[c as usize] != 0xff {
            sixes.push(table[c as usize]);
        }
    }
    let mut packed = Vec::with_capacity(sixes.len() * 3 / 4);
    for group in sixes.chunks(4) {
        let g = |i: usize| *group.get(i).unwrap_or(&0) as u32;
        let v = (g(0) << 18) | (g(1) << 12) | (g(2) << 6) | g(3);
        let n = group.len() * 6 / 8;
        packed.extend_from_slice(&[(v >> 16) as u8, (v >> 8) as u8, v as u8][..n]);
    }
    // Run-length decoding: 0x90 n repeats the previous byte n-1 more times; 0x90 0 is 0x90.
    let mut out: Vec<u8> = Vec::with_capacity(packed.len());
    let mut i = 0;
    while i < packed.len() {
        let b = packed[i];
        if b == 0x90 && i + 1 < packed.len() {
            let n = packed[i + 1];
            if n == 0 {
                out.push(0x90);
            } else if let Some(&last) = out.last() {
                let n = (n as usize - 1)
                    .min(crate::MAX_PARSED as usize - out.len().min(crate::MAX_PARSED as usize));
                out.extend(std::iter::repeat_n(last, n));
            }
            i += 2;
        } else {
            out.push(b);
            i += 1;
        }
    }
    let name_len = *out.first().ok_or_else(|| malformed("binhex: empty"))? as usize;
    let header = 1 + name_len + 1 + 4 + 4 + 2;
    let be32 = |at: usize| {
        out.get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let (Some(data_len), Some(rsrc_len)) = (be32(header), be32(header + 4)) else {
        return Err(malformed("binhex: short header"));
    };
    let name = String::from_utf8_lossy(&out[1..(1 + name_len).min(out.len())]).into_owned();
    let data_start = header + 8 + 2;
    let data_end = data_start.saturating_add(data_len).min(out.len());
    let fork = out.get(data_start..data_end).unwrap_or_default().to_vec();
    sink.bytes(&name, fork)?;
    let rsrc_start = data_end + 2;
    if rsrc_len > 0 && rsrc_start < out.len() {
        let end = rsrc_start.saturating_add(rsrc_len).min(out.len());
        sink.bytes(&name, out[rsrc_start..end].to_vec())?;
    }
    Ok(())
}

/// An SZDD file expanded (LZSS over a 4 KiB window primed with spaces).
pub(crate) fn szdd(data: &[u8], sink: &mut Sink<'_>) -> Walk {
    let body = data
        .get(14..)
        .ok_or_else(|| malformed("szdd: short header"))?;
    let declared = u32::from_le_bytes([data[10], data[11], data[12], data[13]]) as usize;
    let cap = declared.min(crate::MAX_PARSED as usize);
    let mut window = [b' '; 4096];
    let mut pos = 4096 - 16;
    let mut out = Vec::with_capacity(cap);
    let mut i = 0;
    'outer: while i < body.len() && out.len() < cap {
        let control = body[i];
        i += 1;
        for bit in 0..8 {
            if i >= body.len() || out.len() >= cap {
                break 'outer;
            }
            if control & (1 << bit) != 0 {
                let b = body[i];
                i += 1;
                out.push(b);
                window[pos] = b;
                pos = (pos + 1) & 4095;
            } else {
                let (Some(&lo), Some(&hi)) = (body.get(i), body.get(i + 1)) else {
                    break 'outer;
                };
                i += 2;
                let mut from = lo as usize | ((hi as usize & 0xf0) << 4);
                for _ in 0..(hi as usize & 0x0f) + 3 {
                    let b = window[from];
                    out.push(b);
                    window[pos] = b;
                    pos = (pos + 1) & 4095;
                    from = (from + 1) & 4095;
                }
            }
        }
    }
    out.truncate(cap);
    sink.bytes("szdd", out)
}

/// The embedded file of an `\x01Ole10Native` stream: after a u32 size and u16 flags,
/// a label, the original path, two unknown bytes pairs, a temporary path with its
/// length, then the data with its u32 length. Falls back to everything after the
/// size when the packaged-file header does not parse.
pub(crate) fn ole10_native(raw: &[u8]) -> Option<(String, &[u8])> {
    let le32 = |at: usize| {
        raw.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let fallback = || Some((String::new(), raw.get(4..)?));
    let cstr = |at: usize| -> Option<(usize, &[u8])> {
        let rest = raw.get(at..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        Some((at + end + 1, &rest[..end]))
    };
    let parsed = (|| {
        let (at, label) = cstr(6)?;
        let (at, _path) = cstr(at)?;
        let at = at + 4;
        let tmp_len = le32(at)?;
        let at = at + 4 + tmp_len;
        let len = le32(at)?;
        let data = raw.get(at + 4..at + 4 + len)?;
        Some((String::from_utf8_lossy(label).into_owned(), data))
    })();
    parsed.or_else(fallback)
}

/// The objects embedded in a PowerPoint Document stream: every compressed
/// ExOleObjStg record (version 0, instance 1, type 0x1011; a u32 decompressed size,
/// then zlib data), inflated. Found by their record header rather than by walking
/// the record tree: an object found this way is scanned even in a damaged file.
pub(crate) fn ppt_embedded(stream: &[u8]) -> Vec<Vec<u8>> {
    use std::io::Read;
    let mut objects = Vec::new();
    let mut at = 0;
    while let Some(found) = memfind(&stream[at..], &[0x10, 0x00, 0x11, 0x10]) {
        let record = at + found;
        at = record + 4;
        let Some(len) = stream.get(record + 4..record + 8) else {
            break;
        };
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let end = (record + 8).saturating_add(len).min(stream.len());
        let Some(body) = stream.get(record + 12..end) else {
            continue;
        };
        let mut out = Vec::new();
        let mut decoder = flate2::read::ZlibDecoder::new(body);
        let _ = (&mut decoder).take(crate::MAX_PARSED).read_to_end(&mut out);
        if !out.is_empty() {
            objects.push(out);
        }
    }
    objects
}
