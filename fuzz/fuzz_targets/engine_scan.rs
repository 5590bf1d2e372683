//! Builds an engine from a fuzzed `.ndb` text (when it loads) and scans fuzzed bytes with
//! it: neither compiling nor scanning may panic, and scanning is deterministic.
//!
//! Input layout: `.ndb` text (UTF-8), a NUL byte, then the bytes to scan.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use moat_engine::Engine;
use moat_sigs::Database;

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
});
