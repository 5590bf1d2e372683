//! Every line-based signature format, through the loader (`Database::from_text`): the
//! first byte picks the extension, the rest is the file. Errors are fine; panics,
//! hangs and runaway memory are not.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

const EXTENSIONS: &[&str] = &["hdb", "hsb", "fp", "sfp", "ndb", "ign2", "ldb", "mdb", "msb"];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let ext = EXTENSIONS[pick as usize % EXTENSIONS.len()];
    let text = String::from_utf8_lossy(rest);
    let _ = moat_sigs::Database::from_text(Path::new(&format!("fuzz.{ext}")), &text);
});
