//! The whole scanner on arbitrary bytes: file typing, every matcher (body, typed,
//! logical with a PCRE subsignature, hashes, sections), the normalized passes and the
//! recursion into containers within tight limits (depth 4, 64 members, 64 MiB).
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;

const NDB: &str = "\
A:0:*:4142434445
B:1:EP+0:e8ff??5d
C:6:S0+0:7f454c46
D:3:*:3c736372697074
E:4:*:6d6f61742d6d61696c
";
const LDB: &str = "\
L1;Engine:51-255,Target:0;0&1;6d6f6174;6d61726b6572
L2;Engine:81-255,Target:0,Container:CL_TYPE_ZIP;0;6e6573746564
L3;Engine:81-255,Target:0;0&1;6d6f6174;0/m[o0]at\\d+/i
";

fuzz_target!(|data: &[u8]| {
    static ENGINE: OnceLock<moat_engine::Engine> = OnceLock::new();
    let engine = ENGINE.get_or_init(|| {
        let mut db = moat_sigs::Database::from_text(Path::new("f.ndb"), NDB).expect("ndb");
        let ldb = moat_sigs::Database::from_text(Path::new("f.ldb"), LDB).expect("ldb");
        db.logical = ldb.logical;
        moat_engine::Engine::new(db)
    });
    let limits = moat_engine::Limits {
        max_recursion: Some(4),
        max_files: Some(64),
        max_scan_size: Some(64 << 20),
        max_file_size: Some(16 << 20),
        ..moat_engine::Limits::default()
    };
    let mut scanner = moat_engine::Scanner::new(engine, limits);
    let _ = scanner.scan_reader(data);
    // Through a file too (the streamed path reads headers with pread).
    let mut file = tempfile::tempfile().expect("temp file");
    file.write_all(data).expect("write");
    let _ = scanner.scan_file(&file);
});
