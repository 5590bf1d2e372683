//! The little file typing the engine needs so far: whether a file gets ClamAV's
//! normalized-text pass.

/// How many leading bytes decide whether a file is text, as ClamAV's type detection
/// looks at the start of a file only.
pub const TEXT_SNIFF_LEN: usize = 1024;

/// Leading bytes by which ClamAV recognises a file type of its own (executables,
/// archives, documents, images, mail): such files get no plain-text normalized copy.
/// A sample measured on clamscan 1.4.6 (docs/clamav-oracle.md, section 5b); the
/// detection-depth work replaces it with real file typing.
const MAGIC: &[&[u8]] = &[
    b"MZ",
    b"\x7fELF",
    b"%PDF-",
    b"GIF87a",
    b"GIF89a",
    b"\x89PNG",
    b"PK\x03\x04",
    b"{\\rtf",
    b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
    b"Rar!",
    b"\x1f\x8b",
    b"BZh",
    b"7z\xbc\xaf\x27\x1c",
    b"CWS",
    b"FWS",
    b"\xff\xd8\xff",
    b"II*\x00",
    b"MM\x00*",
    b"BM",
    b"RIFF",
    b"L\x00\x00\x00\x01\x14\x02\x00",
    b"\xfe\xed\xfa\xce",
    b"\xfe\xed\xfa\xcf",
    b"\xce\xfa\xed\xfe",
    b"\xcf\xfa\xed\xfe",
    b"ITSF",
    b"begin ",
    b"From ",
];

/// Whether the start of a file is a type ClamAV recognises by its magic bytes.
fn has_magic(head: &[u8]) -> bool {
    let html = head.len() >= 5 && head[..5].eq_ignore_ascii_case(b"<html");
    let tar = head.get(257..262) == Some(b"ustar");
    html || tar || MAGIC.iter().any(|m| head.starts_with(m))
}

/// Bytes that make a file binary to ClamAV's text detection.
fn is_binary_byte(b: u8) -> bool {
    matches!(b, 0x00..=0x06 | 0x0b | 0x0e..=0x1a | 0x1c..=0x1f | 0x7f)
}

/// Whether ClamAV also scans a normalized-text copy of a file starting with `head`
/// (at least its first [`TEXT_SNIFF_LEN`] bytes, or the whole file). The rule,
/// measured exhaustively on clamscan 1.4.6 (docs/clamav-oracle.md, section 5b):
/// - no copy for file types recognised by magic bytes;
/// - in the first 1024 bytes, no byte in 00-06, 0b, 0e-1a, 1c-1f, 7f: a copy;
/// - else, with a UTF-16 byte-order mark (FF FE or FE FF): a copy unless a 16-bit unit
///   at an even offset ≥ 2, read in the mark's byte order, is U+FFFE;
/// - else: a copy unless a 16-bit unit at an even offset ≥ 2, read big-endian, is one
///   of those binary values (as 00xx) or U+FFFE.
pub fn gets_normalized(head: &[u8]) -> bool {
    let head = &head[..head.len().min(TEXT_SNIFF_LEN)];
    if has_magic(head) {
        return false;
    }
    if !head.iter().any(|&b| is_binary_byte(b)) {
        return true;
    }
    let units = head.chunks_exact(2).skip(1);
    match head {
        [0xff, 0xfe, ..] => !units
            .map(|u| u16::from_le_bytes([u[0], u[1]]))
            .any(|u| u == 0xfffe),
        [0xfe, 0xff, ..] => !units
            .map(|u| u16::from_be_bytes([u[0], u[1]]))
            .any(|u| u == 0xfffe),
        _ => !units
            .map(|u| u16::from_be_bytes([u[0], u[1]]))
            .any(|u| u == 0xfffe || (u <= 0xff && is_binary_byte(u as u8))),
    }
}

#[cfg(test)]
mod tests {
    use super::gets_normalized;

    #[test]
    fn text_rule_as_measured() {
        assert!(gets_normalized(b"hello world\n"));
        assert!(gets_normalized(b"caf\xc3\xa9 \x80\xff\x07\x08\x1b"));
        assert!(!gets_normalized(b"MZ\x90\x00 program"));
        assert!(!gets_normalized(b"%PDF-1.4 text"));
        // A NUL pair at an even offset >= 2 makes it binary; at offset 0 or odd, not.
        assert!(!gets_normalized(b"ab\x00\x00cdef"));
        assert!(gets_normalized(b"\x00\x00abcdef"));
        assert!(gets_normalized(b"a\x00\x00bcdef"));
        // 00 41 read big-endian is U+0041: not binary.
        assert!(gets_normalized(b"ab\x00Acd"));
        // With a byte-order mark only U+FFFE units matter.
        assert!(gets_normalized(b"\xff\xfeh\x00i\x00\x00\x00"));
        assert!(!gets_normalized(b"\xff\xfeh\x00\xfe\xff"));
        // Beyond the first 1024 bytes nothing counts.
        let mut late = vec![b'a'; 1024];
        late.extend_from_slice(b"\x00\x00");
        assert!(gets_normalized(&late));
    }
}
