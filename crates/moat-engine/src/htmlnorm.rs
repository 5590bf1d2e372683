//! ClamAV's HTML normalization, as far as measured on clamscan 1.4.6 (docs/clamav-oracle.md
//! section 12): an HTML file's raw bytes are not matched at all; target-3 and then
//! target-0 signatures are matched against a normalized copy, and target-7 ones
//! against the text of its scripts.
//!
//! The copy: ASCII capitals lowercased; every run of whitespace one space; comments
//! (`<!-- ... -->`) removed; character references (`&#119;`, `&#x77;`, `&amp;`...)
//! decoded; tags and script content kept (lowercased, whitespace folded).

/// The normalized copy of an HTML file and the text of its `<script>` elements.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Normalized {
    /// What target-3 and target-0 signatures are matched against.
    pub html: Vec<u8>,
    /// The content of every `<script ...>` element (to `</script>` or the end of
    /// the file), normalized the same way, one space between scripts: what target-7
    /// signatures are matched against.
    pub scripts: Vec<u8>,
}

/// Normalizes an HTML file held in memory.
pub fn normalize(data: &[u8]) -> Normalized {
    let mut out = Normalized::default();
    let mut in_space = false;
    let mut in_script = false;
    let mut i = 0;
    let push = |out: &mut Normalized, in_script: bool, in_space: &mut bool, b: u8| {
        let b = b.to_ascii_lowercase();
        if matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
            if !*in_space {
                out.html.push(b' ');
                if in_script {
                    out.scripts.push(b' ');
                }
            }
            *in_space = true;
            return;
        }
        *in_space = false;
        out.html.push(b);
        if in_script {
            out.scripts.push(b);
        }
    };
    while i < data.len() {
        let rest = &data[i..];
        if rest.starts_with(b"<!--") {
            i += match memchr::memmem::find(&rest[4..], b"-->") {
                Some(end) => 4 + end + 3,
                None => rest.len(),
            };
            continue;
        }
        if rest[0] == b'<' {
            let is = |tag: &[u8]| {
                rest.get(..tag.len())
                    .is_some_and(|p| p.eq_ignore_ascii_case(tag))
            };
            if is(b"</script") {
                if in_script && !out.scripts.ends_with(b" ") {
                    out.scripts.push(b' ');
                }
                in_script = false;
            } else if is(b"<script") {
                // The script's text starts after the tag's `>`.
                let end = memchr::memchr(b'>', rest).map_or(rest.len(), |e| e + 1);
                for &b in &rest[..end] {
                    push(&mut out, false, &mut in_space, b);
                }
                i += end;
                in_script = true;
                continue;
            }
        }
        if rest[0] == b'&' {
            if let Some((decoded, used)) = entity(rest) {
                push(&mut out, in_script, &mut in_space, decoded);
                i += used;
                continue;
            }
        }
        push(&mut out, in_script, &mut in_space, rest[0]);
        i += 1;
    }
    out
}

/// A character reference at the start of `s` decoding to one byte: the byte and the
/// length of the reference.
fn entity(s: &[u8]) -> Option<(u8, usize)> {
    let end = s.iter().take(12).position(|&b| b == b';')?;
    let body = &s[1..end];
    let value = if let Some(num) = body.strip_prefix(b"#") {
        let (digits, radix) = match num {
            [b'x' | b'X', hex @ ..] => (hex, 16),
            dec => (dec, 10),
        };
        u32::from_str_radix(std::str::from_utf8(digits).ok()?, radix).ok()?
    } else {
        match body {
            b"amp" => u32::from(b'&'),
            b"lt" => u32::from(b'<'),
            b"gt" => u32::from(b'>'),
            b"quot" => u32::from(b'"'),
            b"apos" => u32::from(b'\''),
            b"nbsp" => u32::from(b' '),
            _ => return None,
        }
    };
    let byte = u8::try_from(value).ok().filter(|b| b.is_ascii())?;
    Some((byte, end + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_measured() {
        let n = normalize(
            b"<html><body>HELLO   &#119;orld<!-- COMMENT --><script>VAR  X=1;</script></body></html>\n",
        );
        let html = String::from_utf8(n.html).unwrap();
        assert!(html.contains("hello world"), "{html}");
        assert!(html.contains("<body>"));
        assert!(html.contains("var x=1;"));
        assert!(!html.contains("comment"));
        assert!(!html.contains("&#119;"));
        assert_eq!(n.scripts, b"var x=1; ");
        // An unclosed script runs to the end.
        assert_eq!(
            normalize(b"<script> HELLO world\n").scripts,
            b" hello world "
        );
        assert_eq!(
            normalize(b"a &amp; b &#x41; &bogus; &#999;").html,
            b"a & b a &bogus; &#999;"
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics(data: Vec<u8>) {
            let _ = normalize(&data);
        }
    }
}
