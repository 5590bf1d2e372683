//! The little file typing the current target types need.

/// How many leading bytes decide whether a file is text, as ClamAV's type detection
/// looks at the start of a file only.
pub const TEXT_SNIFF_LEN: usize = 1024;

/// Whether `data` looks like ASCII text (ClamAV target type 7): its first
/// [`TEXT_SNIFF_LEN`] bytes are printable ASCII or common whitespace.
pub fn is_ascii_text(data: &[u8]) -> bool {
    let head = &data[..data.len().min(TEXT_SNIFF_LEN)];
    !head.is_empty()
        && head
            .iter()
            .all(|&b| matches!(b, 0x20..=0x7e | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | 0x1b))
}
