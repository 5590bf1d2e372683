//! clamd.conf parsing and validation.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = moat_config::Config::parse_bytes(data, "fuzz.conf");
});
