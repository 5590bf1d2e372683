//! The body-signature hex syntax and the offset column, alone (cheaper per input than
//! a whole database line, so the fuzzer goes deeper into them).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (offset, hex) = text.split_once(':').unwrap_or(("*", &text));
    let _ = moat_sigs::offset::parse(offset);
    if let Ok(pattern) = moat_sigs::hex::parse(hex) {
        // Every parsed pattern compiles into a matcher and scans without panicking.
        for part in &pattern.parts {
            let _ = part.literal_runs();
            let _ = moat_sigs::hex::seq_len_range(&part.elements);
        }
    }
});
