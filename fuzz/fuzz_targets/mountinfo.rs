//! `/proc/self/mountinfo` parsing (the filesystem scope's plan depends on it).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = moat_watch::mounts::parse(&String::from_utf8_lossy(data));
});
