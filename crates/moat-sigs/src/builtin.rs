//! The small default database used when no real one is installed.
//!
//! It detects the EICAR anti-virus test file and ClamAV's own `clam.exe` test file, so
//! that `moat scan` does something verifiable on a fresh machine. The EICAR string is
//! assembled at run time from hex so that this source file is not itself "infected".

use std::path::Path;

use crate::database::Database;

/// The EICAR test string in hex.
const EICAR_HEX: &str = "58354f2150254041505b345c505a58353428505e2937434329377d2445494341522d5354414e444152442d414e544956495255532d544553542d46494c452124482b482a";

/// ClamAV's `clam.exe` test file (as shipped in clamav-testfiles): MD5 and size.
const CLAM_EXE_MD5: &str = "aa15bcf478d165efd2065190eb473bcb";
const CLAM_EXE_SIZE: u64 = 544;

/// The built-in database: EICAR (a body signature at offset 0, as the EICAR file may
/// carry trailing whitespace) and clam.exe (a hash signature).
pub fn database() -> Database {
    let ndb = format!("Eicar-Test-Signature:0:0:{EICAR_HEX}\n");
    let hdb = format!("{CLAM_EXE_MD5}:{CLAM_EXE_SIZE}:ClamAV-Test-File\n");
    let mut db = Database::from_official_text(Path::new("builtin.ndb"), &ndb)
        .expect("the built-in body signature parses");
    let hashes = Database::from_official_text(Path::new("builtin.hdb"), &hdb)
        .expect("the built-in hash signature parses");
    db.hashes.append(hashes.hashes);
    db
}

/// The EICAR test file's bytes, for tests and self-checks.
///
/// Its MD5 is the well-known `44d88612fea8a8f36de82e1278abb02f` (checked by this module's
/// tests, never against [`EICAR_HEX`] itself).
pub fn eicar() -> Vec<u8> {
    let mut bytes = vec![0; EICAR_HEX.len() / 2];
    faster_hex::hex_decode(EICAR_HEX.as_bytes(), &mut bytes).expect("valid hex");
    bytes
}

#[cfg(test)]
mod tests {
    use md5::{Digest, Md5};

    /// The well-known digest of the genuine EICAR test file (eicar.org): an answer from
    /// outside this crate, so a typo in [`super::EICAR_HEX`] cannot pass.
    const EICAR_MD5: &str = "44d88612fea8a8f36de82e1278abb02f";

    #[test]
    fn eicar_is_the_genuine_test_file() {
        let bytes = super::eicar();
        assert_eq!(bytes.len(), 68);
        let digest: String = Md5::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(digest, EICAR_MD5);
    }
}
