//! Quarantine across filesystems (root only: it mounts a private tmpfs): `rename(2)` fails
//! with EXDEV, so a move is a copy then an unlink, and a restore a copy back; owner, mode and
//! times survive both ways. Skipped without root unless `MOAT_REQUIRE_PRIVILEGED=1`.

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use moat_react::quarantine::{Keep, Quarantine};
use moat_react::{Accessor, Detection};

/// A tmpfs mounted on a directory of its own, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path) -> Tmpfs {
        fs::create_dir_all(at).unwrap();
        let c = |s: &[u8]| CString::new(s).unwrap();
        let (src, target, fstype) = (c(b"tmpfs"), c(at.as_os_str().as_bytes()), c(b"tmpfs"));
        // SAFETY: plain mount(2) with NUL-terminated strings that outlive the call.
        let r = unsafe {
            libc::mount(
                src.as_ptr(),
                target.as_ptr(),
                fstype.as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        assert_eq!(r, 0, "mount tmpfs: {}", std::io::Error::last_os_error());
        Tmpfs(at.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let target = CString::new(self.0.as_os_str().as_bytes()).unwrap();
        // SAFETY: as above; MNT_DETACH so a failing test cannot leave it busy.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

fn detection(path: &Path, file: Option<fs::File>) -> Detection {
    Detection {
        path: path.to_owned(),
        file,
        signature: "Test.Sig".into(),
        accessor: Accessor {
            pid: 1,
            uid: Some(65534),
            comm: "cat".into(),
            exe: "/usr/bin/cat".into(),
        },
        access: "open".into(),
        blocked: true,
        time: SystemTime::now(),
    }
}

#[test]
fn move_and_restore_across_filesystems_keep_owner_mode_and_times() {
    if !moat_testkit::privileged() {
        return;
    }
    let (_t, root) = moat_testkit::watched_dir();
    let mnt = Tmpfs::mount(&root.join("mnt"));
    let file = mnt.0.join("bad.bin");
    moat_testkit::write_file(&file, b"payload \x00\xff", 0o644);
    std::os::unix::fs::chown(&file, Some(1234), Some(4321)).unwrap();
    // After the chown (which clears setuid): the original mode, setuid included.
    fs::set_permissions(&file, fs::Permissions::from_mode(0o4751)).unwrap();
    let t = |s| UNIX_EPOCH + Duration::from_secs(s);
    fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_times(
            fs::FileTimes::new()
                .set_accessed(t(1_000_000_000))
                .set_modified(t(1_100_000_000)),
        )
        .unwrap();
    let q = Quarantine::open(&root.join("q"), true).unwrap();
    let scanned = fs::File::open(&file).unwrap();
    let id = q.put(&detection(&file, Some(scanned)), Keep::Move).unwrap();
    assert!(!file.exists(), "unlinked after the copy");
    let held = fs::metadata(root.join("q").join(&id)).unwrap();
    assert_eq!((held.uid(), held.mode() & 0o7777), (0, 0o600));
    assert_eq!(
        fs::read(root.join("q").join(&id)).unwrap(),
        b"payload \x00\xff"
    );
    let s = q.sidecar(&id).unwrap();
    assert_eq!((s.uid, s.gid, s.mode), (1234, 4321, 0o4751));
    assert_eq!(s.mtime[0], 1_100_000_000);

    let back = q.restore(&id).unwrap();
    assert_eq!(back, file);
    let m = fs::metadata(&file).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (1234, 4321, 0o4751));
    assert_eq!(m.mtime(), 1_100_000_000);
    assert_eq!(m.atime(), s.atime[0]);
    assert_eq!(fs::read(&file).unwrap(), b"payload \x00\xff");
    assert!(q.list().unwrap().is_empty(), "entry and sidecar gone");
}

#[test]
fn a_file_replaced_since_the_scan_is_left_alone_and_symlinks_are_refused() {
    if !moat_testkit::privileged() {
        return;
    }
    let (_t, root) = moat_testkit::watched_dir();
    let file = root.join("bad.bin");
    moat_testkit::write_file(&file, b"scanned", 0o644);
    let scanned = fs::File::open(&file).unwrap();
    // The user swaps in another file (a hard link to something precious, say).
    fs::remove_file(&file).unwrap();
    moat_testkit::write_file(&file, b"precious", 0o644);
    let q = Quarantine::open(&root.join("q"), true).unwrap();
    let e = q
        .put(&detection(&file, Some(scanned)), Keep::Move)
        .unwrap_err();
    assert!(e.to_string().contains("no longer the file"), "{e}");
    assert_eq!(fs::read(&file).unwrap(), b"precious");
    assert!(q.list().unwrap().is_empty(), "no entry, no sidecar left");
    // A symlink in the parents is refused, not followed.
    let real = root.join("real");
    fs::create_dir(&real).unwrap();
    moat_testkit::write_file(&real.join("f"), b"x", 0o644);
    std::os::unix::fs::symlink(&real, root.join("link")).unwrap();
    let e = q
        .put(&detection(&root.join("link/f"), None), Keep::Move)
        .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{e}");
    assert!(real.join("f").exists());
}
