//! `Database::from_text` with every database extension on arbitrary text: never panics; a
//! loaded database can always be compiled into an engine.
//!
//! Input layout: the first byte picks the extension, the rest (UTF-8) is the file text.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use moat_sigs::Database;

const EXTENSIONS: [&str; 14] = [
    "ndb", "hdb", "hsb", "fp", "sfp", "ign2", "ign", "ldb", "mdb", "cvd", "hdu", "info", "foo", "",
];

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let ext = EXTENSIONS[which as usize % EXTENSIONS.len()];
    let name = if ext.is_empty() {
        "db".to_owned()
    } else {
        format!("x.{ext}")
    };
    if let Ok(db) = Database::from_text(Path::new(&name), text) {
        let count = db.signature_count();
        let engine = moat_engine::Engine::new(db);
        let _ = (count, engine.signature_count());
    }
});
