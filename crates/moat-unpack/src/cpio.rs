//! cpio, all four header formats: old binary (little- and big-endian), odc (portable
//! ASCII, octal) and newc/crc (hex). Hand-written: each is a fixed header, a name and
//! the data, with alignment padding; a crate would be larger than this.

use std::io::{self, Read};

use crate::{malformed, Sink, Walk};

#[derive(Clone, Copy)]
enum Kind {
    BinaryLe,
    BinaryBe,
    Odc,
    Newc,
}

fn kind(head: &[u8]) -> Option<Kind> {
    if head.starts_with(b"070707") {
        Some(Kind::Odc)
    } else if head.starts_with(b"070701") || head.starts_with(b"070702") {
        Some(Kind::Newc)
    } else if head.starts_with(&[0xc7, 0x71]) {
        Some(Kind::BinaryLe)
    } else if head.starts_with(&[0x71, 0xc7]) {
        Some(Kind::BinaryBe)
    } else {
        None
    }
}

/// Whether `head` starts a cpio archive. The binary magic is two bytes only, so a
/// binary header must also have a sane name size.
pub(crate) fn sniff(head: &[u8]) -> bool {
    match kind(head) {
        Some(Kind::BinaryLe | Kind::BinaryBe) => {
            head.len() >= 26 && {
                let le = matches!(kind(head), Some(Kind::BinaryLe));
                let namesize = u16_at(head, 20, le);
                (1..=4096).contains(&namesize)
            }
        }
        Some(_) => true,
        None => false,
    }
}

fn u16_at(b: &[u8], at: usize, le: bool) -> u32 {
    let v = [b[at], b[at + 1]];
    (if le {
        u16::from_le_bytes(v)
    } else {
        u16::from_be_bytes(v)
    }) as u32
}

fn number(field: &[u8], radix: u32) -> Option<u64> {
    let text = std::str::from_utf8(field).ok()?;
    u64::from_str_radix(text.trim_matches(|c: char| c == '\0' || c == ' '), radix).ok()
}

/// Reads exactly `n` bytes, or reports the archive as broken off.
fn exact(data: &mut dyn Read, n: usize) -> Result<Vec<u8>, crate::Failure> {
    let mut buf = vec![0u8; n];
    data.read_exact(&mut buf)
        .map_err(|_| malformed("cpio: truncated header"))?;
    Ok(buf)
}

fn skip(data: &mut dyn Read, n: u64) -> io::Result<()> {
    io::copy(&mut data.take(n), &mut io::sink()).map(drop)
}

pub(crate) fn members(data: &mut dyn Read, sink: &mut Sink<'_>) -> Walk {
    loop {
        let magic = match exact(data, 6) {
            Ok(m) => m,
            Err(_) => return Ok(()),
        };
        let Some(kind) = kind(&magic) else {
            return Err(malformed("cpio: bad magic"));
        };
        let (mode, namesize, filesize, header_len, align) = match kind {
            Kind::BinaryLe | Kind::BinaryBe => {
                let le = matches!(kind, Kind::BinaryLe);
                let mut h = magic.clone();
                h.extend(exact(data, 20)?);
                let mode = u16_at(&h, 6, le) as u64;
                let namesize = u16_at(&h, 20, le) as u64;
                let filesize = ((u16_at(&h, 22, le) as u64) << 16) | u16_at(&h, 24, le) as u64;
                (mode, namesize, filesize, 26, 2)
            }
            Kind::Odc => {
                let h = exact(data, 70)?;
                let field = |at: usize, len: usize| number(&h[at - 6..at - 6 + len], 8);
                let (Some(mode), Some(namesize), Some(filesize)) =
                    (field(18, 6), field(59, 6), field(65, 11))
                else {
                    return Err(malformed("cpio: bad odc header"));
                };
                (mode, namesize, filesize, 76, 1)
            }
            Kind::Newc => {
                let h = exact(data, 104)?;
                let field = |i: usize| number(&h[i * 8..i * 8 + 8], 16);
                let (Some(mode), Some(filesize), Some(namesize)) = (field(1), field(6), field(11))
                else {
                    return Err(malformed("cpio: bad newc header"));
                };
                (mode, namesize, filesize, 110, 4)
            }
        };
        if namesize > 4096 {
            return Err(malformed("cpio: name too long"));
        }
        let name = exact(data, namesize as usize)?;
        let pad = |len: u64| (align - len % align) % align;
        skip(data, pad(header_len + namesize))?;
        let name_end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        let name = String::from_utf8_lossy(&name[..name_end]).into_owned();
        if name == "TRAILER!!!" {
            return Ok(());
        }
        let regular = mode & 0o170000 == 0o100000 || mode & 0o170000 == 0;
        if regular && filesize > 0 {
            let mut body = data.take(filesize);
            sink.stream(&name, &mut body)?;
            // Whatever the visitor did not take.
            let left = body.limit();
            skip(data, left)?;
        } else {
            skip(data, filesize)?;
        }
        skip(data, pad(filesize))?;
    }
}
