//! Formats that embed files in text or in simple records, hand-written (no
//! maintained crate reads them for their attachments): TNEF (winmail.dat), RTF
//! `\objdata` objects, and `data:` URIs in HTML.

use crate::{mail, malformed, memfind, Container, Sink, Walk};

/// TNEF's signature, little-endian 0x223E9F78.
pub(crate) const TNEF_MAGIC: [u8; 4] = [0x78, 0x9f, 0x3e, 0x22];

/// A TNEF stream's attachments: each attAttachData attribute, named by the
/// attAttachTitle before it. Attributes: level (1 byte), id (u32: type << 16 | id),
/// length (u32), data, checksum (u16).
pub(crate) fn tnef(data: &[u8], sink: &mut Sink<'_>) -> Walk {
    const ATT_ATTACH_DATA: u32 = 0x800f;
    const ATT_ATTACH_TITLE: u32 = 0x8010;
    let mut at = 6;
    let mut title = String::new();
    while at + 9 <= data.len() {
        let le32 = |i: usize| u32::from_le_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
        let id = le32(at + 1) & 0xffff;
        let len = le32(at + 5) as usize;
        let start = at + 9;
        let Some(end) = start.checked_add(len).filter(|&e| e <= data.len()) else {
            return Err(malformed("tnef: attribute past the end"));
        };
        let value = &data[start..end];
        match id {
            ATT_ATTACH_TITLE => {
                let v = value.split(|&b| b == 0).next().unwrap_or_default();
                title = String::from_utf8_lossy(v).into_owned();
            }
            ATT_ATTACH_DATA => sink.bytes(&title, value.to_vec())?,
            _ => {}
        }
        at = end + 2;
    }
    Ok(())
}

pub(crate) fn is_rtf(head: &[u8]) -> bool {
    head.starts_with(b"{\\rtf")
}

/// Every `\objdata` object of an RTF file: its hex decoded, then, when it is an OLE1
/// object (version, format, class, topic, item, native data), the native data (a
/// Package's embedded file unwrapped, as ClamAV does: one level, measured).
pub(crate) fn rtf(data: &[u8], sink: &mut Sink<'_>) -> Walk {
    let mut at = 0;
    while let Some(found) = memfind(&data[at..], b"\\objdata") {
        let start = at + found + 8;
        let mut bytes = Vec::new();
        let mut high: Option<u8> = None;
        let mut end = start;
        for &c in &data[start..] {
            end += 1;
            if c == b'}' {
                break;
            }
            let Some(v) = (c as char).to_digit(16) else {
                continue;
            };
            match high.take() {
                None => high = Some(v as u8),
                Some(h) => bytes.push(h << 4 | v as u8),
            }
        }
        at = end;
        match ole1_native(&bytes) {
            Some((class, native)) if class.eq_ignore_ascii_case("package") => {
                // The Package format is an Ole10Native stream without its size.
                let mut stream = (native.len() as u32).to_le_bytes().to_vec();
                stream.extend_from_slice(native);
                match crate::misc::ole10_native(&stream) {
                    Some((name, file)) => sink.bytes(&name, file.to_vec())?,
                    None => sink.bytes(&class, native.to_vec())?,
                }
            }
            Some((class, native)) => sink.bytes(&class, native.to_vec())?,
            None => sink.bytes("objdata", bytes)?,
        }
    }
    Ok(())
}

/// An OLE1 object's class name and native data.
fn ole1_native(b: &[u8]) -> Option<(String, &[u8])> {
    let le32 = |i: usize| {
        b.get(i..i + 4)
            .map(|v| u32::from_le_bytes([v[0], v[1], v[2], v[3]]) as usize)
    };
    let mut at = 8;
    let mut strings = Vec::new();
    for _ in 0..3 {
        let len = le32(at)?;
        let s = b.get(at + 4..at + 4 + len)?;
        strings.push(s);
        at += 4 + len;
    }
    let size = le32(at)?;
    let native = b.get(at + 4..(at + 4).checked_add(size)?.min(b.len()))?;
    let class = strings[0].split(|&c| c == 0).next().unwrap_or_default();
    Some((String::from_utf8_lossy(class).into_owned(), native))
}

/// Whether `head` starts HTML (a tag ClamAV's file typing takes as HTML).
pub(crate) fn is_html(head: &[u8]) -> bool {
    let head = &head[..head.len().min(1024)];
    let lower = head.to_ascii_lowercase();
    let start = lower
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(0);
    let tags: [&[u8]; 8] = [
        b"<html",
        b"<!doctype html",
        b"<head",
        b"<body",
        b"<script",
        b"<a ",
        b"<meta",
        b"<iframe",
    ];
    tags.iter().any(|t| lower[start..].starts_with(t))
}

/// HTML: the page itself as one member of kind [`Container::HtmlData`] (ClamAV
/// scans its normalized copy one level down, and the data it embeds below that:
/// measured with `--max-recursion`).
/// A page with no `data:` URI has no member at all (so it is not scanned twice).
pub(crate) fn html(data: &[u8], sink: &mut Sink<'_>) -> Walk {
    if memfind(data, b";base64,").is_none() || memfind(data, b"data:").is_none() {
        return Ok(());
    }
    sink.next_kind = Some(Container::HtmlData);
    let result = sink.bytes("html", data.to_vec());
    sink.next_kind = None;
    result
}

/// The base64 `data:` URIs of an HTML page, decoded.
pub(crate) fn html_data(data: &[u8], sink: &mut Sink<'_>) -> Walk {
    let mut at = 0;
    while let Some(found) = memfind(&data[at..], b"data:") {
        let start = at + found + 5;
        at = start;
        let window = &data[start..data.len().min(start + 128)];
        let Some(marker) = memfind(window, b";base64,") else {
            continue;
        };
        let body = start + marker + 8;
        let end = data[body..]
            .iter()
            .position(|&c| matches!(c, b'"' | b'\'' | b')' | b'<' | b'>'))
            .map_or(data.len(), |e| body + e);
        sink.bytes("data-uri", mail::base64(&data[body..end]))?;
        at = end;
    }
    Ok(())
}
