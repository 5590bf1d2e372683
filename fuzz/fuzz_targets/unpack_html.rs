//! moat-unpack's Html decoder on arbitrary bytes (harness: fuzz/src/lib.rs).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| moat_fuzz::unpack_as(moat_unpack::Container::Html, data));
