//! Mail files (ClamAV's fixed-offset mail magic): what of them is scanned as a file of
//! its own, as measured on clamscan 1.4.6 (docs/clamav-oracle.md section 13).
//!
//! When the header block has a `From:` or `Received:` header (any case, space after
//! the colon or not), ClamAV's mail parser takes the message apart and the body (after
//! the first empty line) is scanned as a file of its own, before the mail's own raw
//! pass: its raw bytes (target 0), then its normalized text (target 7, then 0), with
//! offsets relative to the body. Without such a header the message is only scanned
//! raw (target 4, then target 0). MIME parts and transfer encodings are not decoded
//! here.

use moat_formats::FileType;

/// Whether ClamAV's mail parser takes a message starting with `head` apart (its
/// type is mail and its header block, as far as `head` reaches, has a `From:` or
/// `Received:` header): only then are its MIME parts opened as members
/// ([`crate::containers`]).
pub fn is_parsed(ty: FileType, head: &[u8]) -> bool {
    if ty != FileType::Mail {
        return false;
    }
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return false;
        }
        if let Some(colon) = memchr::memchr(b':', line) {
            let name = &line[..colon];
            if name.eq_ignore_ascii_case(b"from") || name.eq_ignore_ascii_case(b"received") {
                return true;
            }
        }
    }
    false
}

/// The body of a mail message that ClamAV scans as a file of its own, if any.
pub fn scanned_body(ty: FileType, data: &[u8]) -> Option<&[u8]> {
    if ty != FileType::Mail {
        return None;
    }
    let mut at = 0;
    let mut found = false;
    while at < data.len() {
        let end = memchr::memchr(b'\n', &data[at..]).map_or(data.len(), |e| at + e);
        let line = &data[at..end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return found.then(|| &data[(end + 1).min(data.len())..]);
        }
        if let Some(colon) = memchr::memchr(b':', line) {
            let name = &line[..colon];
            found |= name.eq_ignore_ascii_case(b"from") || name.eq_ignore_ascii_case(b"received");
        }
        at = end + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_measured() {
        fn body(d: &[u8]) -> Option<&[u8]> {
            scanned_body(FileType::Mail, d)
        }
        assert_eq!(
            body(b"Received: b\n\nHELLO body\n"),
            Some(&b"HELLO body\n"[..])
        );
        assert_eq!(body(b"Subject: x\nreceived:b\n\nhi"), Some(&b"hi"[..]));
        assert_eq!(body(b"From: a\r\nTo: y\r\n\r\nhi"), Some(&b"hi"[..]));
        assert_eq!(body(b"Subject: x\nTo: y\n\nhi"), None);
        assert_eq!(body(b"From a@b Mon Jan  1\nSubject: x\n\nhi"), None);
        assert_eq!(body(b"Subject: x\n From: y\n\nhi"), None);
        assert_eq!(body(b"Received: b\nno blank line"), None);
        assert_eq!(scanned_body(FileType::Text, b"Received: b\n\nhi"), None);
        assert!(is_parsed(FileType::Mail, b"Subject: x\nFrom: a\n"));
        assert!(!is_parsed(
            FileType::Mail,
            b"Subject: x\nTo: y\n\nFrom: a\n"
        ));
        assert!(!is_parsed(FileType::Text, b"From: a\n\nhi"));
    }
}
