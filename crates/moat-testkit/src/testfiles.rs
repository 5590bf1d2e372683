//! ClamAV's own test files (Debian's clamav-testfiles): where they are, which of them hold
//! clam.exe in a format moat opens, and the skip rule of the tests that compare moat with
//! clamscan on them.

use std::path::Path;
use std::process::Command;

/// Where Debian installs the test files.
pub const DIR: &str = "/usr/share/clamav-testfiles";

/// The test files of the formats moat opens (README.md, "Containers").
pub const SUPPORTED: &[&str] = &[
    "clam.zip",
    "clam.d64.zip",
    "clam.impl.zip",
    "clam.bz2.zip",
    "clam.tar.gz",
    "clam_cache_emax.tgz",
    "clam.exe.bz2",
    "clam.7z",
    "clam.bin-le.cpio",
    "clam.bin-be.cpio",
    "clam.odc.cpio",
    "clam.newc.cpio",
    "clam.mail",
    "clam.exe.mbox.base64",
    "clam.exe.mbox.uu",
    "clam.ole.doc",
    "clam.ppt",
    "clam.exe.binhex",
    "clam.exe.szdd",
    "clam.pdf",
    "clam.cab",
    "clam.tnef",
    "clam.exe.rtf",
    "clam.exe.html",
    "clam.arj",
    "clam.chm",
    "clam.sis",
    "clam.exe",
];

/// The test files moat does not open (README.md, "Containers": packed executables,
/// installers, self-extracting archives): clamscan finds clam.exe in them, moat does
/// not. Listed so that every test file is accounted for.
pub const UNSUPPORTED: &[&str] = &[
    "clam-aspack.exe",
    "clam-fsg.exe",
    "clam-mew.exe",
    "clam-nsis.exe",
    "clam-pespin.exe",
    "clam-petite.exe",
    "clam-upack.exe",
    "clam-upx.exe",
    "clam-wwpack.exe",
    "clam-yc.exe",
    "clam.ea05.exe",
    "clam.ea06.exe",
    "clam_IScab_ext.exe",
    "clam_IScab_int.exe",
    "clam_ISmsi_ext.exe",
    "clam_ISmsi_int.exe",
];

/// Whether clamscan and the test files are here; if not, prints why and returns false,
/// or panics when `MOAT_REQUIRE_ORACLE=1`.
pub fn oracle_ready() -> bool {
    let clamscan = Command::new("clamscan")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let files = Path::new(DIR).join("clam.exe").exists();
    if clamscan && files {
        return true;
    }
    let why = if clamscan {
        "clamav-testfiles not installed"
    } else {
        "clamscan not installed"
    };
    if std::env::var("MOAT_REQUIRE_ORACLE").as_deref() == Ok("1") {
        panic!("{why} but MOAT_REQUIRE_ORACLE=1 (apt-get install clamav clamav-testfiles)");
    }
    println!("skipped: {why} (apt-get install clamav clamav-testfiles)");
    false
}
