//! `.cvd`/`.cld`/`.cud` containers, built at test time: header, MD5, gzip, tar, `.info`
//! checks; members loaded as the files they name; names without `.UNOFFICIAL` for
//! official containers; the newer of `X.cvd` and `X.cld` wins; each kind of corruption
//! refused with its own error naming the file.

use std::path::{Path, PathBuf};

use md5::Digest as _;
use moat_sigs::cvd::ContainerError;
use moat_sigs::{Database, LoadError};
use moat_testkit::cvd::{build, container, gzip, info, tar};
use sha2::Sha256;

const HDB: &str = "07d5c520d595c408bb39c8887fdfb7c8:20:Moat.Test.Hash\n";
const NDB: &str = "Moat.Test.Body:0:*:6d6f617420637664\n";
const LDB: &str = "Moat.Test.Logical;Engine:51-255,Target:0;0;6d6f6174\n";
const MDB: &str = "1024:44d88612fea8a8f36de82e1278abb02f:Moat.Test.Section\n";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn members() -> Vec<(&'static str, &'static [u8])> {
    vec![("x.hdb", HDB.as_bytes()), ("x.ndb", NDB.as_bytes())]
}

/// A well-formed gzip-compressed container of version `version`.
fn good(version: u32) -> Vec<u8> {
    build(version, &members())
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn load(path: &Path) -> Database {
    Database::load(&[path]).unwrap_or_else(|e| panic!("{} should load: {e}", path.display()))
}

fn names(db: &Database) -> Vec<String> {
    let mut names: Vec<String> = db.hashes.entry_names().map(str::to_owned).collect();
    names.extend(db.bodies.iter().map(|s| s.name.to_string()));
    names
}

fn container_err(path: &Path) -> ContainerError {
    match Database::load(&[path]) {
        Err(LoadError::Container { path: p, reason }) => {
            assert_eq!(p, path);
            let shown = LoadError::Container {
                path: p,
                reason: reason.clone(),
            }
            .to_string();
            assert!(
                shown.starts_with(&path.display().to_string()),
                "{shown:?} should name the file"
            );
            reason
        }
        Err(other) => panic!("expected a container error, got {other}"),
        Ok(_) => panic!("{} should be refused", path.display()),
    }
}

#[test]
fn cvd_loads_members_without_unofficial_suffix() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "x.cvd", &good(7));
    let db = load(&path);
    assert_eq!(names(&db), ["Moat.Test.Hash", "Moat.Test.Body"]);
    assert_eq!(db.signature_count(), 2);
    // COPYING is not a database: noted, not an error.
    assert!(db
        .report
        .foreign_files
        .iter()
        .any(|p| p.ends_with("COPYING")));
    // Also as part of a directory.
    let db = load(dir.path());
    assert_eq!(db.signature_count(), 2);
}

#[test]
fn cud_names_are_unofficial() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "x.cud", &good(7));
    assert_eq!(
        names(&load(&path)),
        ["Moat.Test.Hash.UNOFFICIAL", "Moat.Test.Body.UNOFFICIAL"]
    );
}

#[test]
fn cld_plain_tar_loads_without_md5_check() {
    let dir = tempfile::tempdir().unwrap();
    let m = members();
    let mut bytes = container(9, &tar(&info(9, &m), &m));
    // freshclam keeps the old header (and its MD5) when it rewrites a .cld.
    bytes[100] = b'!';
    let path = write(dir.path(), "x.cld", &bytes);
    assert_eq!(names(&load(&path)), ["Moat.Test.Hash", "Moat.Test.Body"]);
    // A gzip-compressed .cld (CompressLocalDatabase) loads too.
    let path = write(dir.path(), "y.cld", &good(9));
    assert_eq!(load(&path).signature_count(), 2);
}

#[test]
fn unsupported_members_are_counted_not_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = members();
    m.push(("x.mdb", MDB.as_bytes()));
    m.push(("x.ldb", LDB.as_bytes()));
    // Container metadata signatures (.cdb) load as signatures; an unsupported
    // format (.yar) is counted, not an error.
    m.push(("x.yar", b"rule a { condition: true }\n"));
    m.push((
        "x.cdb",
        b"Moat.Test.Container:CL_TYPE_ZIP:*:*:*:*:*:*:*:*\n",
    ));
    let path = write(
        dir.path(),
        "x.cvd",
        &container(1, &gzip(&tar(&info(1, &m), &m))),
    );
    let db = load(&path);
    assert_eq!(db.hashes.len() + db.bodies.len(), 2);
    assert_eq!(db.logical.len(), 1, "the .ldb member loads");
    assert_eq!(db.section_hashes.len(), 1, "the .mdb member loads");
    assert_eq!(db.container_meta.len(), 1, "the .cdb member loads");
    assert_eq!(db.container_meta[0].name, "Moat.Test.Container");
    let skipped = &db.report.skipped;
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert!(skipped[0].path.ends_with("x.cvd/x.yar"), "{skipped:?}");
}

#[test]
fn newer_of_cvd_and_cld_wins() {
    for (cvd_v, cld_v, winner) in [(5, 6, "x.cld"), (6, 5, "x.cvd")] {
        let dir = tempfile::tempdir().unwrap();
        // Different content so that the winner shows: the .cld has only the hash.
        write(dir.path(), "x.cvd", &good(cvd_v));
        let m = vec![("x.hdb", HDB.as_bytes())];
        write(
            dir.path(),
            "x.cld",
            &container(cld_v, &tar(&info(cld_v, &m), &m)),
        );
        let db = load(dir.path());
        let expected = if winner == "x.cld" { 1 } else { 2 };
        assert_eq!(db.signature_count(), expected, "{winner} should win");
        let superseded = &db.report.superseded;
        assert_eq!(superseded.len(), 1);
        let loser = if winner == "x.cld" { "x.cvd" } else { "x.cld" };
        assert!(superseded[0].path.ends_with(loser), "{superseded:?}");
        assert!(superseded[0].reason.contains(winner));
    }
}

#[test]
fn corrupt_header_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = good(1);
    bytes[7] = b'X';
    let path = write(dir.path(), "x.cvd", &bytes);
    assert!(matches!(container_err(&path), ContainerError::BadHeader(_)));
    let path = write(dir.path(), "short.cvd", b"ClamAV-VDB:1:2:3");
    assert!(matches!(container_err(&path), ContainerError::BadHeader(_)));
    let mut bytes = good(1);
    bytes[35] = b'v'; // the version field
    let path = write(dir.path(), "v.cvd", &bytes);
    let err = container_err(&path);
    assert!(
        matches!(&err, ContainerError::BadHeader(why) if why.contains("version")),
        "{err}"
    );
}

#[test]
fn md5_mismatch_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = good(1);
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let path = write(dir.path(), "x.cvd", &bytes);
    let err = container_err(&path);
    assert!(matches!(err, ContainerError::Md5Mismatch { .. }), "{err}");
    assert!(err.to_string().contains("MD5"));
}

#[test]
fn body_not_gzip_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let m = members();
    let path = write(dir.path(), "x.cvd", &container(1, &tar(&info(1, &m), &m)));
    assert_eq!(container_err(&path), ContainerError::NotGzip);
}

#[test]
fn truncated_body_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let m = members();
    let tarball = tar(&info(1, &m), &m);
    // A cut gzip stream (the header's MD5 matches the cut body).
    let gz = gzip(&tarball);
    let path = write(dir.path(), "x.cvd", &container(1, &gz[..gz.len() - 30]));
    let err = container_err(&path);
    assert!(matches!(err, ContainerError::Truncated(_)), "{err}");
    // A plain tar cut inside the last member.
    let cut = 512 * 7 + 10; // COPYING, x.info, x.hdb: header + 1 block each; x.ndb: header
    let path = write(dir.path(), "y.cld", &container(1, &tarball[..cut]));
    let err = container_err(&path);
    assert!(matches!(err, ContainerError::Truncated(_)), "{err}");
    // A plain tar cut at a member boundary: the member listed in .info is missing.
    let path = write(dir.path(), "z.cld", &container(1, &tarball[..512 * 6]));
    let err = container_err(&path);
    assert_eq!(
        err,
        ContainerError::MemberMissing {
            member: "x.ndb".into()
        }
    );
}

#[test]
fn wrong_member_size_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let m = members();
    let info = info(1, &m).replace("x.ndb:36:", "x.ndb:35:");
    let path = write(dir.path(), "x.cvd", &container(1, &gzip(&tar(&info, &m))));
    let err = container_err(&path);
    assert_eq!(
        err,
        ContainerError::MemberSize {
            member: "x.ndb".into(),
            expected: 35,
            actual: 36
        }
    );
    assert!(err.to_string().contains("x.ndb"));
}

#[test]
fn wrong_member_sha256_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let m = members();
    let good_sha = hex(&Sha256::digest(HDB.as_bytes()));
    let info = info(1, &m).replace(&good_sha, &"0".repeat(64));
    let path = write(dir.path(), "x.cvd", &container(1, &gzip(&tar(&info, &m))));
    let err = container_err(&path);
    assert_eq!(
        err,
        ContainerError::MemberSha256 {
            member: "x.hdb".into()
        }
    );
    assert!(err.to_string().contains("x.hdb"));
}

#[test]
fn member_not_listed_or_no_info_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let m = members();
    let info = info(1, &m[..1]);
    let path = write(dir.path(), "x.cvd", &container(1, &gzip(&tar(&info, &m))));
    assert_eq!(
        container_err(&path),
        ContainerError::MemberNotListed {
            member: "x.ndb".into()
        }
    );
    let path = write(
        dir.path(),
        "y.cvd",
        &container(1, &gzip(&tar("garbage\n", &m))),
    );
    assert!(matches!(container_err(&path), ContainerError::BadInfo(_)));
}

#[test]
fn malformed_member_line_names_member_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let ndb = b"Good:0:*:6d6f617420637664\nBad:0:*:zz\n";
    let m: Vec<(&str, &[u8])> = vec![("x.ndb", ndb)];
    let path = write(
        dir.path(),
        "x.cvd",
        &container(1, &gzip(&tar(&info(1, &m), &m))),
    );
    let err = Database::load(&[&path]).unwrap_err();
    assert!(err.to_string().contains("x.cvd/x.ndb:2"), "{err}");
}

#[test]
fn oversized_member_is_refused_before_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    let m = members();
    let mut tarball = tar(&info(1, &m), &m);
    // Claim 600 MiB for COPYING (the first member) in its tar header; the data is not there.
    let mut header = tar::Header::new_gnu();
    header.set_path("COPYING").unwrap();
    header.set_size(600 << 20);
    header.set_mode(0o644);
    header.set_cksum();
    tarball[..512].copy_from_slice(header.as_bytes());
    let path = write(dir.path(), "x.cld", &container(1, &tarball));
    let err = container_err(&path);
    assert!(
        matches!(&err, ContainerError::TooLarge(why) if why.contains("COPYING")),
        "{err}"
    );
}
