//! `moat_formats`: file-type detection and executable layout parsing on arbitrary bytes:
//! never panic, and every reported offset lies inside the file.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ty = moat_formats::filetype::detect(data);
    let _ = (ty.target(), ty.clamav_name());
    if let Some(info) = moat_formats::exe::parse(&data) {
        if let Some(ep) = info.entry_point {
            assert!(ep < data.len() as u64);
        }
        assert!(info.sections.len() <= 2048);
    }
    let _ = moat_engine::htmlnorm::normalize(data);
});
