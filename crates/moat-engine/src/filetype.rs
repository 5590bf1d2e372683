//! Whether a file gets ClamAV's plain normalized-text pass, decided through
//! [`moat_formats::filetype`] (ClamAV's file-type magic and text rule).

use moat_formats::filetype;

/// How many leading bytes decide whether a file is text, as ClamAV's type detection
/// looks at the start of a file only.
pub const TEXT_SNIFF_LEN: usize = filetype::SNIFF_LEN;

/// Whether ClamAV also scans a normalized-text copy of a file starting with `head`
/// (at least its first [`TEXT_SNIFF_LEN`] bytes, or the whole file). The rule,
/// measured on clamscan 1.4.6 (docs/clamav-oracle.md, sections 5b and 13):
/// - no copy for a file one of ClamAV's fixed-offset magic rules types
///   ([`filetype::magic`]: executables, archives, documents, images, mail headers...;
///   a mail's body may be scanned as a file of its own, see [`crate::mail`]);
/// - else the text rule ([`filetype::is_text`]).
///
/// HTML files (tags anywhere) get the HTML normalization instead; the engine decides
/// that before asking this.
pub fn gets_normalized(head: &[u8]) -> bool {
    let head = &head[..head.len().min(TEXT_SNIFF_LEN)];
    filetype::magic(head).is_none() && filetype::is_text(head)
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

    #[test]
    fn magic_as_measured() {
        // Fixed-offset magic: no text copy (measured with `S:0:*:6d6e6f70`).
        for head in [
            &b"MM hello MNOP"[..],
            b"GIF hello MNOP",
            b"Subject: x\n hello MNOP",
            b"To: x\n hello",
            b"Date: x\n hello",
            b"ID3 hello",
            b"OggS hello",
            b"RIFF hello",
            b"From a@b Mon Jan  1",
            b"begin 644 x\n",
            b"From: a@b.c\nTo: c@d.e\n\nhello",
        ] {
            assert!(!gets_normalized(head), "{head:?}");
        }
        // Near misses: a text copy.
        for head in [
            &b"Ogg hello MNOP"[..],
            b"\xca\xfe\xba\xbe hello",
            b"MSCF hello",
            b"#!/bin/sh\n",
            b"%!PS hello",
            b"<HtMl> hello",
        ] {
            assert!(gets_normalized(head), "{head:?}");
        }
    }
}
