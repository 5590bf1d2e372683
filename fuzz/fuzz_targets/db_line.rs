//! The one-line parsers (`parse_hash` for .hdb/.hsb/.fp/.sfp, `parse_ndb`, `parse_ign2`)
//! on arbitrary UTF-8: never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moat_sigs::line;

fuzz_target!(|text: &str| {
    let _ = line::parse_hash(text, "");
    let _ = line::parse_ndb(text, ".UNOFFICIAL");
    let _ = line::parse_ign2(text);
});
