//! `moat_sigs::hex::parse` on arbitrary text: never panics, and what it accepts respects
//! ClamAV's structural rules (every part holds two consecutive static bytes, a pure
//! static signature has at least three bytes, `parts.len() == gaps.len() + 1`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use moat_sigs::hex::{self, Element};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(pattern) = hex::parse(text) else {
        return;
    };
    assert_eq!(pattern.parts.len(), pattern.gaps.len() + 1, "{text:?}");
    for part in &pattern.parts {
        assert!(
            part.literal_runs().iter().any(|(_, run)| run.len() >= 2),
            "{text:?}: accepted a part without two consecutive static bytes"
        );
        for element in &part.elements {
            let _ = element.len_range();
        }
    }
    let pure_static = pattern.parts.len() == 1
        && pattern.parts[0]
            .elements
            .iter()
            .all(|e| matches!(e, Element::Byte(_)));
    if pure_static {
        assert!(pattern.parts[0].elements.len() >= 3, "{text:?}");
    }
    // Parsing is deterministic.
    assert_eq!(hex::parse(text), Ok(pattern));
});
