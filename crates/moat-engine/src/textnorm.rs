//! ClamAV's text normalization: the copy of a file that target-0 and target-7 body
//! signatures are also matched against.
//!
//! As measured on clamscan 1.4.6 (docs/clamav-oracle.md, section 5): ASCII capitals
//! become lowercase; bytes 00–08, 0e–1f and 80–ff are dropped; every run of
//! whitespace (09–0d, 20) becomes one space; everything else is kept. The transform
//! is byte by byte with one bit of state, so it streams.

/// What the normalizer does with each byte value.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Keep,
    Lower,
    Space,
    Drop,
}

const fn class_of(b: u8) -> Class {
    match b {
        b'A'..=b'Z' => Class::Lower,
        0x09..=0x0d | b' ' => Class::Space,
        0x00..=0x08 | 0x0e..=0x1f | 0x80..=0xff => Class::Drop,
        _ => Class::Keep,
    }
}

static CLASSES: [Class; 256] = {
    let mut table = [Class::Keep; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = class_of(b as u8);
        b += 1;
    }
    table
};

/// Whether `b` can appear in normalized text.
pub fn in_normalized_alphabet(b: u8) -> bool {
    matches!(CLASSES[b as usize], Class::Keep) || b == b' '
}

/// A streaming normalizer: feed the file in order, chunk by chunk.
#[derive(Debug, Default)]
pub struct Normalizer {
    /// The last byte written was a space (from a whitespace run).
    in_space: bool,
}

impl Normalizer {
    /// Appends the normalized form of `input` to `out`.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len());
        for &b in input {
            match CLASSES[b as usize] {
                Class::Keep => {
                    out.push(b);
                    self.in_space = false;
                }
                Class::Lower => {
                    out.push(b + (b'a' - b'A'));
                    self.in_space = false;
                }
                Class::Space if !self.in_space => {
                    out.push(b' ');
                    self.in_space = true;
                }
                Class::Space | Class::Drop => {}
            }
        }
    }
}

/// The normalized copy of `data`.
pub fn normalize(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    Normalizer::default().push(data, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowercases_drops_and_collapses() {
        assert_eq!(normalize(b"Hello  WORLD\r\n\tx"), b"hello world x");
        assert_eq!(
            normalize(b"mn\x01op mn\x80op mn\xc3\xa9op"),
            b"mnop mnop mnop"
        );
        assert_eq!(normalize(b"~\x7f!"), b"~\x7f!");
        assert_eq!(normalize(b"   "), b" ");
    }

    #[test]
    fn streaming_equals_whole() {
        let data = b"A  b\n\n C\x00\x00 d   E";
        for cut in 0..data.len() {
            let mut n = Normalizer::default();
            let mut out = Vec::new();
            n.push(&data[..cut], &mut out);
            n.push(&data[cut..], &mut out);
            assert_eq!(out, normalize(data), "cut at {cut}");
        }
    }
}
