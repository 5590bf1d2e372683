//! E-mail: RFC 822 messages and mboxes, MIME multipart (nested), base64,
//! quoted-printable and uuencoded bodies.
//!
//! Hand-written rather than the `mail-parser` crate: a scanner needs every part's
//! decoded bytes, including parts a mail reader would drop (malformed boundaries,
//! uuencoded text inside a plain body, bodies with a wrong or missing content type),
//! and nothing else of a mail library (addresses, dates, charsets). This is
//! forgiving on purpose: whatever cannot be split is handed over as it is.

use crate::{Sink, Walk};

/// Header names that start a message, for sniffing (lower case, with the colon).
const STARTS: [&str; 12] = [
    "received:",
    "return-path:",
    "from:",
    "to:",
    "subject:",
    "message-id:",
    "mime-version:",
    "delivered-to:",
    "date:",
    "reply-to:",
    "x-mailer:",
    "content-type:",
];

/// Whether `head` looks like a mail message or mbox.
pub(crate) fn sniff(head: &[u8]) -> bool {
    // Cheap first: a message starts with a header name (or `From `), after blank lines.
    let first = head.iter().find(|b| !b.is_ascii_whitespace());
    if !first.is_some_and(|b| b.is_ascii_alphabetic()) {
        return false;
    }
    let head = &head[..head.len().min(4096)];
    if !first_line_starts_message(head) {
        return false;
    }
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let starts = first.starts_with("from ") || STARTS.iter().any(|h| first.starts_with(h));
    let headers = text.lines().take_while(|l| !l.trim().is_empty());
    let known = headers
        .filter(|l| STARTS.iter().any(|h| l.starts_with(h)))
        .count();
    // An mbox's `From ` line then one known header; else two known headers.
    let needed = if first.starts_with("from ") { 1 } else { 2 };
    starts && known >= needed
}

/// Whether the first line of `head` that is not blank starts like a message (`From `
/// or a header of [`STARTS`], any case): the same test as `sniff`'s on its lowercased
/// text, made on the bytes first so that the text is built only for the rare file
/// that passes (building it was most of the cost of sniffing a text file, callgrind).
/// `head` starts, after ASCII whitespace only, with a letter (checked by `sniff`), so
/// that line is the one holding the first letter.
fn first_line_starts_message(head: &[u8]) -> bool {
    let Some(letter) = head.iter().position(|b| !b.is_ascii_whitespace()) else {
        return false;
    };
    let start = head[..letter]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |nl| nl + 1);
    let line = &head[start..];
    let starts_with = |prefix: &[u8]| {
        line.len() >= prefix.len() && line[..prefix.len()].eq_ignore_ascii_case(prefix)
    };
    starts_with(b"from ") || STARTS.iter().any(|h| starts_with(h.as_bytes()))
}

/// Nesting of multiparts deeper than this is handed over undivided.
const MAX_NESTING: usize = 32;

pub(crate) fn members(data: &[u8], sink: &mut Sink<'_>) -> Walk {
    for message in split_mbox(data) {
        entity(message, 0, sink)?;
    }
    Ok(())
}

/// Lines of `data`, each with its line ending.
fn lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    data.split_inclusive(|&b| b == b'\n')
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// An mbox split at its `From ` lines (after an empty line); a single message is
/// one piece.
fn split_mbox(data: &[u8]) -> Vec<&[u8]> {
    let mut pieces = Vec::new();
    let (mut start, mut at, mut blank) = (0, 0, true);
    for line in lines(data) {
        if blank && at > start && line.starts_with(b"From ") {
            pieces.push(&data[start..at]);
            start = at;
        }
        blank = trim_eol(line).is_empty();
        at += line.len();
    }
    pieces.push(&data[start..]);
    pieces
}

struct Headers {
    content_type: String,
    encoding: String,
    name: Option<String>,
}

/// Splits an entity into its (unfolded) headers and its body.
fn parse(data: &[u8]) -> (Headers, &[u8]) {
    let mut fields: Vec<String> = Vec::new();
    let mut at = 0;
    for line in lines(data) {
        at += line.len();
        let text = trim_eol(line);
        if text.is_empty() {
            break;
        }
        let text = String::from_utf8_lossy(text);
        if text.starts_with([' ', '\t']) {
            if let Some(last) = fields.last_mut() {
                last.push(' ');
                last.push_str(text.trim());
            }
        } else if text.contains(':') || text.starts_with("From ") {
            fields.push(text.into_owned());
        } else {
            // Not a header: no header block at all; the whole entity is the body.
            at = 0;
            fields.clear();
            break;
        }
    }
    let field = |name: &str| {
        fields.iter().find_map(|f| {
            let (key, value) = f.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
    };
    let content_type = field("content-type").unwrap_or_default();
    let disposition = field("content-disposition").unwrap_or_default();
    let name = parameter(&disposition, "filename").or_else(|| parameter(&content_type, "name"));
    let headers = Headers {
        encoding: field("content-transfer-encoding")
            .unwrap_or_default()
            .to_ascii_lowercase(),
        content_type,
        name,
    };
    (headers, &data[at.min(data.len())..])
}

/// A `key=value` (or `key="value"`) parameter of a header value.
fn parameter(value: &str, key: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case(key).then(|| {
            let v = v.trim();
            v.strip_prefix('"')
                .and_then(|v| v.split('"').next())
                .unwrap_or(v)
                .to_owned()
        })
    })
}

fn entity(data: &[u8], depth: usize, sink: &mut Sink<'_>) -> Walk {
    let (headers, body) = parse(data);
    let kind = headers.content_type.to_ascii_lowercase();
    if kind.starts_with("multipart/") && depth < MAX_NESTING {
        if let Some(boundary) = parameter(&headers.content_type, "boundary") {
            let parts = split_multipart(body, boundary.as_bytes());
            if !parts.is_empty() {
                for part in parts {
                    entity(part, depth + 1, sink)?;
                }
                return Ok(());
            }
        }
    }
    if kind.starts_with("message/rfc822") && depth < MAX_NESTING {
        return entity(body, depth + 1, sink);
    }
    let name = headers.name.clone().unwrap_or_default();
    let decoded = match headers.encoding.as_str() {
        "base64" => base64(body),
        "quoted-printable" => quoted_printable(body),
        "x-uuencode" | "uuencode" | "x-uue" => {
            uudecode(body).map_or_else(|| body.to_vec(), |(_, d)| d)
        }
        _ => body.to_vec(),
    };
    // uuencoded files inside a plain text body.
    let uu = if headers.encoding.contains("uu") {
        None
    } else {
        uudecode(&decoded)
    };
    sink.bytes(&name, decoded)?;
    if let Some((uu_name, uu_data)) = uu {
        sink.bytes(&uu_name, uu_data)?;
    }
    Ok(())
}

/// The parts between `--boundary` lines (the preamble and epilogue dropped).
fn split_multipart<'d>(body: &'d [u8], boundary: &[u8]) -> Vec<&'d [u8]> {
    let mut parts = Vec::new();
    let mut start: Option<usize> = None;
    let mut at = 0;
    for line in lines(body) {
        let text = trim_eol(line);
        if let Some(rest) = text.strip_prefix(b"--") {
            if rest.starts_with(boundary) {
                if let Some(s) = start {
                    parts.push(&body[s..at]);
                }
                let closing = rest[boundary.len()..].starts_with(b"--");
                start = (!closing).then_some(at + line.len());
                at += line.len();
                if closing {
                    break;
                }
                continue;
            }
        }
        at += line.len();
    }
    if let Some(s) = start {
        if s < body.len() {
            parts.push(&body[s..]);
        }
    }
    parts
}

/// Base64, skipping anything outside the alphabet; stops at padding.
pub(crate) fn base64(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0);
    for &c in data {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => {
                acc = 0;
                bits = 0;
                continue;
            }
            _ => continue,
        };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

fn quoted_printable(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let hex = |b: u8| (b as char).to_digit(16);
    let mut i = 0;
    while i < data.len() {
        let c = data[i];
        if c == b'=' {
            match (data.get(i + 1), data.get(i + 2)) {
                (Some(b'\r'), Some(b'\n')) => i += 3,
                (Some(b'\n'), _) => i += 2,
                (Some(&a), Some(&b)) if hex(a).is_some() && hex(b).is_some() => {
                    out.push((hex(a).unwrap_or(0) * 16 + hex(b).unwrap_or(0)) as u8);
                    i += 3;
                }
                _ => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// The first uuencoded file in `data` (`begin MODE NAME` … `end`): its name and bytes.
pub(crate) fn uudecode(data: &[u8]) -> Option<(String, Vec<u8>)> {
    let mut found = None;
    let mut out = Vec::new();
    for line in lines(data) {
        let line = trim_eol(line);
        match &found {
            None => {
                if let Some(rest) = line.strip_prefix(b"begin ") {
                    let rest = String::from_utf8_lossy(rest);
                    let mut words = rest.splitn(2, ' ');
                    let mode = words.next().unwrap_or("");
                    if !mode.is_empty() && mode.bytes().all(|b| b.is_ascii_digit()) {
                        found = Some(words.next().unwrap_or("").trim().to_owned());
                    }
                }
            }
            Some(_) => {
                if line == b"end" {
                    break;
                }
                let Some(&first) = line.first() else { continue };
                let len = ((first.wrapping_sub(b' ')) & 0x3f) as usize;
                if len == 0 {
                    continue;
                }
                let chars: Vec<u8> = line[1..]
                    .iter()
                    .map(|c| (c.wrapping_sub(b' ')) & 0x3f)
                    .collect();
                let mut decoded = Vec::with_capacity(len);
                for group in chars.chunks(4) {
                    let g = |i: usize| *group.get(i).unwrap_or(&0) as u32;
                    let v = (g(0) << 18) | (g(1) << 12) | (g(2) << 6) | g(3);
                    decoded.extend_from_slice(&[(v >> 16) as u8, (v >> 8) as u8, v as u8]);
                }
                decoded.truncate(len);
                out.extend(decoded);
            }
        }
    }
    found.map(|name| (name, out))
}
