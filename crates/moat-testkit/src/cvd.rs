//! ClamAV database containers (`.cvd`, `.cld`, `.cud`) built at test time: a 512-byte
//! header with the body's MD5, then a tar archive (gzip-compressed, or plain as in a `.cld`)
//! holding `COPYING`, an `x.info` member listing the members with their sizes and SHA-256,
//! and the members. Not signed: moat does not check the RSA signature (see moat-sigs'
//! cvd.rs), and real ClamAV refuses such a container (its `.info` has no `DSIG:`).

use md5::{Digest as _, Md5};
use sha2::Sha256;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `.info` member for `members`, one `name:size:sha256` line each.
pub fn info(version: u32, members: &[(&str, &[u8])]) -> String {
    let mut info =
        format!("ClamAV-VDB:01 Dec 2026 22-47 +0000:{version}:2:216:X:X:moat:1796165279\n");
    for (name, data) in members {
        info += &format!("{name}:{}:{}\n", data.len(), hex(&Sha256::digest(data)));
    }
    info
}

/// A tar archive: `COPYING`, then `x.info` (with `info` as content), then `members`.
pub fn tar(info: &str, members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, data).unwrap();
    };
    add("COPYING", b"test license\n");
    add("x.info", info.as_bytes());
    for (name, data) in members {
        add(name, data);
    }
    builder.into_inner().unwrap()
}

/// `data` gzip-compressed.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// A container: the 512-byte header (with the body's MD5) then `body`.
pub fn container(version: u32, body: &[u8]) -> Vec<u8> {
    let header = format!(
        "ClamAV-VDB:01 Dec 2026 22-47 +0000:{version}:2:216:{}:X:moat:1796165279",
        hex(&Md5::digest(body))
    );
    let mut out = format!("{header:<512}").into_bytes();
    assert_eq!(out.len(), 512);
    out.extend_from_slice(body);
    out
}

/// A well-formed gzip-compressed container of version `version` holding `members`.
pub fn build(version: u32, members: &[(&str, &[u8])]) -> Vec<u8> {
    container(version, &gzip(&tar(&info(version, members), members)))
}
