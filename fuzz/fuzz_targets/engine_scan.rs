//! Builds an engine from a fuzzed `.ndb` text (when it loads) and scans fuzzed bytes with
//! it: neither compiling nor scanning may panic, scanning is deterministic, and the
//! streaming scanner (`Engine::scan_stream_from`, positioned reads through the same
//! bytes, as `Scanner` streams a file) agrees with the in-memory one
//! (`Engine::scan_bytes_with`) on the same bytes and limits.
//!
//! Input layout: `.ndb` text (UTF-8), a NUL byte, then the bytes to scan. The streaming
//! parameters are derived from the last bytes of the data (so the layout, and older
//! corpora, stay valid): the chunk size is 1024 + 4 * last byte (the engine raises it to
//! its own minimum), the reader hands out at most 1 + 3 * second-to-last byte per `read`
//! call (short reads), and the third-to-last byte picks the normalization limit.
#![no_main]

use std::io::{self, Read};
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use moat_engine::{Engine, Limits};
use moat_sigs::Database;

/// A reader over a slice that returns at most `step` bytes per call.
struct ShortReads<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for ShortReads<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.step).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fuzz_target!(|input: &[u8]| {
    let Some(split) = input.iter().position(|&b| b == 0) else {
        return;
    };
    let Ok(ndb) = std::str::from_utf8(&input[..split]) else {
        return;
    };
    let data = &input[split + 1..];
    let Ok(db) = Database::from_text(Path::new("f.ndb"), ndb) else {
        return;
    };
    let engine = Engine::new(db);
    let first = engine.scan_bytes(data);
    assert_eq!(first, engine.scan_bytes(data));

    // Differential: streaming in small chunks gives the in-memory verdict.
    let back = |k: usize| data.len().checked_sub(k).map_or(0, |i| data[i] as usize);
    let chunk = 1024 + 4 * back(1);
    let step = 1 + 3 * back(2);
    let len = data.len() as u64;
    let limits = match back(3) % 4 {
        0 | 1 => Limits::default(),
        2 => Limits {
            max_script_normalize: None,
            ..Limits::default()
        },
        _ => Limits {
            // Just too small for this file: no normalized pass.
            max_script_normalize: Some(len.saturating_sub(1)),
            ..Limits::default()
        },
    };
    let expected = engine.scan_bytes_with(data, &limits);
    if limits == Limits::default() {
        assert_eq!(expected, first);
    }
    let mut buffer = Vec::new();
    let reader = ShortReads { data, step };
    let (streamed, read) = engine
        .scan_stream_from(reader, Some(&data), len, chunk, &mut buffer, &limits)
        .expect("reading a slice cannot fail");
    // Types ClamAV ignores (MP3, Ogg...) are not read past their head.
    let ignored = moat_formats::filetype::detect(data).is_ignored();
    assert!(read == len || ignored, "scan_stream read {read} of {len} bytes");
    assert_eq!(
        streamed, expected,
        "scan_stream (chunk {chunk}, step {step}) disagrees with scan_bytes_with"
    );
});
