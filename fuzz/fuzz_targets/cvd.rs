//! `.cvd`/`.cld`/`.cud` containers: header, MD5, gzip/tar body, `.info` checks. The
//! loader reads containers from files, so each input is written to a temporary file.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::io::Write;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let ext = ["cvd", "cld", "cud"][pick as usize % 3];
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(format!("fuzz.{ext}"));
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(rest))
        .expect("write input");
    let _ = moat_sigs::cvd::parse_header(rest);
    let _ = moat_sigs::Database::load(&[&path]);
});
