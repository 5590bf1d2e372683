//! The fanotify event and info-record parser, on arbitrary `read(2)` buffers.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for event in moat_fanotify::raw::events(data) {
        let Ok(event) = event else { break };
        for record in event.records() {
            if record.is_err() {
                break;
            }
        }
    }
});
