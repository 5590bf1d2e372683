//! ARJ archives: stored members and methods 1–3, which are LHA's `-lh7-` coding
//! (the same Huffman tables, bit order and match layout, over a 26 KiB window), so
//! the `delharc` crate's decoder expands them. Method 4 ("fastest", its own coding)
//! and multi-volume or encrypted members are skipped. The headers are parsed here:
//! no crate reads ARJ headers.

use delharc::decode::{Decoder, Lh7Decoder};

use crate::{malformed, Sink, Walk};

const MAGIC: [u8; 2] = [0x60, 0xea];

pub(crate) fn sniff(head: &[u8]) -> bool {
    // The main header: magic, a basic header size of at most 2600, and the
    // file type "comment header" (2).
    head.len() >= 12
        && head.starts_with(&MAGIC)
        && u16::from_le_bytes([head[2], head[3]]) <= 2600
        && head[4 + 6] == 2
}

/// One header: the basic header's bytes, and where what follows it starts.
fn header(data: &[u8], at: usize) -> Result<Option<(&[u8], usize)>, crate::Failure> {
    let bad = || malformed("arj: truncated header");
    if data.get(at..at + 2) != Some(&MAGIC[..]) {
        return Err(malformed("arj: no header magic"));
    }
    let size = data.get(at + 2..at + 4).ok_or_else(bad)?;
    let size = u16::from_le_bytes([size[0], size[1]]) as usize;
    if size == 0 {
        return Ok(None);
    }
    let basic = data.get(at + 4..at + 4 + size).ok_or_else(bad)?;
    // The basic header's CRC-32, then extended headers (a u16 size, 0 ends them).
    let mut next = at + 4 + size + 4;
    loop {
        let ext = data.get(next..next + 2).ok_or_else(bad)?;
        let ext = u16::from_le_bytes([ext[0], ext[1]]) as usize;
        next += 2;
        if ext == 0 {
            break;
        }
        next += ext + 4;
    }
    Ok(Some((basic, next)))
}

pub(crate) fn members(data: &[u8], sink: &mut Sink<'_>) -> Walk {
    let (_, mut at) = header(data, 0)?.ok_or_else(|| malformed("arj: no main header"))?;
    while let Some((basic, body)) = header(data, at)? {
        if basic.len() < 30 {
            return Err(malformed("arj: short file header"));
        }
        let first = basic[0] as usize;
        let flags = basic[4];
        let method = basic[5];
        let kind = basic[6];
        let le32 =
            |i: usize| u32::from_le_bytes([basic[i], basic[i + 1], basic[i + 2], basic[i + 3]]);
        let (packed, original) = (le32(12) as usize, le32(16) as u64);
        let name = basic.get(first..).unwrap_or_default();
        let name = name.split(|&b| b == 0).next().unwrap_or_default();
        let name = String::from_utf8_lossy(name).into_owned();
        let end = body.saturating_add(packed).min(data.len());
        let compressed = &data[body..end];
        let encrypted = flags & 0x01 != 0;
        // File types 0 (binary) and 1 (text); directories and labels have no data.
        if kind <= 1 && !encrypted {
            match method {
                0 => sink.bytes(&name, compressed.to_vec())?,
                1..=3 => sink.stream(&name, Expand::new(compressed, original))?,
                _ => {}
            }
        }
        if end < body.saturating_add(packed) {
            return Err(malformed("arj: member data cut short"));
        }
        at = end;
    }
    Ok(())
}

/// `-lh7-` decoding as a reader of `left` bytes.
struct Expand<'d> {
    decoder: Lh7Decoder<&'d [u8]>,
    left: u64,
}

impl<'d> Expand<'d> {
    fn new(data: &'d [u8], original: u64) -> Self {
        Expand {
            decoder: Lh7Decoder::new(data),
            left: original,
        }
    }
}

impl std::io::Read for Expand<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize;
        if n == 0 {
            return Ok(0);
        }
        self.decoder
            .fill_buffer(&mut buf[..n])
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
        self.left -= n as u64;
        Ok(n)
    }
}
