//! The engine over arbitrary file contents: prefilter, verifiers, multi-part chaining,
//! hashing, the text rule and normalization, with a small fixed database that has
//! wildcards, gaps, alternatives, boundaries and each offset kind.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;
use std::sync::OnceLock;

const DB: &str = "\
A:0:*:4142434445
B:0:0:4d5a{2-40}5045
C:0:*:6162??6364*6566(61|62)6768
D:0:EOF-8:5a5a5a
E:7:*:3c736372697074
F:0:*:(B)776f7264(B)
G:0:*:4142{-10}4344[2-4]45
H:1:EP+0:e8ff??5d
I:6:S0+0:7f454c46
J:0:10,20:deadbeef
";

fuzz_target!(|data: &[u8]| {
    static ENGINE: OnceLock<moat_engine::Engine> = OnceLock::new();
    let engine = ENGINE.get_or_init(|| {
        let db = moat_sigs::Database::from_text(Path::new("fuzz.ndb"), DB).expect("valid db");
        moat_engine::Engine::new(db)
    });
    let _ = engine.scan_bytes(data);
    // The streaming path, in chunks small enough to split signatures across them.
    let mut buffer = Vec::new();
    let _ = engine.scan_stream(
        data,
        data.len() as u64,
        64,
        &mut buffer,
        &moat_engine::Limits::default(),
    );
});
