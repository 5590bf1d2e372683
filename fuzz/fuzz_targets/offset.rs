//! `moat_sigs::offset::parse` on arbitrary text: never panics; accepted offsets give an
//! ordered start range for any file length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moat_sigs::offset;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(o) = offset::parse(text) {
        for len in [0u64, 1, 6, 24, 4096, u64::MAX] {
            if let Some((lo, hi)) = o.start_range(len) {
                assert!(lo <= hi, "{text:?} on {len}: {lo} > {hi}");
            }
        }
        let _ = o.base.needs_executable();
    }
});
