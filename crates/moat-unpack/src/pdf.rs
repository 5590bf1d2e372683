//! PDF: each `stream … endstream` body is a member, FlateDecode ones inflated (the
//! raw bytes when inflating fails). No object model, no other filters, no
//! encryption: enough for files embedded or compressed in a PDF.

use std::io::Read;

use crate::{memfind, Sink, Walk};

pub(crate) fn members(data: &[u8], sink: &mut Sink<'_>) -> Walk {
    let mut at = 0;
    let mut index = 0;
    while let Some(found) = memfind(&data[at..], b"stream") {
        let keyword = at + found;
        // Not the end of an `endstream`.
        if keyword >= 3 && &data[keyword - 3..keyword] == b"end" {
            at = keyword + 6;
            continue;
        }
        let mut start = keyword + 6;
        if data.get(start) == Some(&b'\r') {
            start += 1;
        }
        if data.get(start) == Some(&b'\n') {
            start += 1;
        }
        let Some(len) = memfind(&data[start..], b"endstream") else {
            break;
        };
        // The end of line before `endstream` is not part of the data.
        let mut body = &data[start..start + len];
        body = body.strip_suffix(b"\n").unwrap_or(body);
        body = body.strip_suffix(b"\r").unwrap_or(body);
        let dict_from = keyword.saturating_sub(1024);
        let dict = &data[dict_from..keyword];
        let dict = match memfind_last(dict, b"obj") {
            Some(o) => &dict[o..],
            None => dict,
        };
        let flate = memfind(dict, b"/FlateDecode").is_some() || memfind(dict, b"/Fl ").is_some();
        let contents = if flate {
            let mut out = Vec::new();
            let mut decoder = flate2::read::ZlibDecoder::new(body);
            let _ = (&mut decoder).take(crate::MAX_PARSED).read_to_end(&mut out);
            if out.is_empty() {
                body.to_vec()
            } else {
                out
            }
        } else {
            body.to_vec()
        };
        sink.bytes(&format!("stream{index}"), contents)?;
        index += 1;
        at = start + len + 9;
    }
    Ok(())
}

fn memfind_last(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}
