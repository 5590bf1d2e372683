//! Path handling that a user who owns part of the tree cannot redirect.
//!
//! Every operation on a detected file goes through a directory fd opened with `openat2(2)`
//! and `RESOLVE_NO_SYMLINKS` (a symlink anywhere in the parent chain is refused, not
//! followed), then `*at` calls on the last name with `AT_SYMLINK_NOFOLLOW` / `O_NOFOLLOW`,
//! and the inode found there is checked against the file that was scanned before anything
//! is renamed or unlinked.

use std::ffi::OsStr;
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags, CWD};

/// Opens the directory `path` (absolute) refusing symlinks in any component.
pub(crate) fn open_dir_strict(path: &Path) -> io::Result<OwnedFd> {
    if !path.is_absolute() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not an absolute path", path.display()),
        ));
    }
    Ok(rustix::fs::openat2(
        CWD,
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )?)
}

/// `path`'s parent directory (opened strictly) and its last component.
pub(crate) fn open_parent(path: &Path) -> io::Result<(OwnedFd, &OsStr)> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: no file name", path.display()),
        )
    })?;
    let parent = path.parent().unwrap_or(Path::new("/"));
    Ok((open_dir_strict(parent)?, name))
}

/// Whether `name` in `dir` is (not following a symlink) the regular file `meta` describes.
pub(crate) fn is_same_file(dir: impl AsFd, name: &OsStr, meta: &Metadata) -> io::Result<bool> {
    let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
    let regular =
        rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile;
    Ok(regular && st.st_dev as u64 == meta.dev() && st.st_ino as u64 == meta.ino())
}

/// Opens `name` in `dir` for reading, never through a symlink, without blocking on a FIFO.
pub(crate) fn open_file_in(dir: impl AsFd, name: &OsStr) -> io::Result<File> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )?;
    Ok(File::from(fd))
}

/// Creates `name` in `dir`, failing if anything (a symlink included) is there already.
pub(crate) fn create_new_in(dir: impl AsFd, name: &OsStr, mode: u32) -> io::Result<File> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode),
    )?;
    Ok(File::from(fd))
}

/// Copies the whole of `src` (from offset 0, whatever its fd's position) into `dst`.
/// Positioned reads: the source fd may be shared with a scanner that moved its offset.
pub(crate) fn copy_all(src: &File, dst: &File) -> io::Result<u64> {
    let mut buf = vec![0u8; 1 << 16];
    let mut off = 0u64;
    loop {
        let n = match src.read_at(&mut buf, off) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        dst.write_all_at(&buf[..n], off)?;
        off += n as u64;
    }
    dst.sync_all()?;
    Ok(off)
}

/// `renameat2(.., RENAME_NOREPLACE)`: never overwrites the target.
pub(crate) fn rename_noreplace(
    from_dir: impl AsFd,
    from: &OsStr,
    to_dir: impl AsFd,
    to: &OsStr,
) -> io::Result<()> {
    Ok(rustix::fs::renameat_with(
        from_dir,
        from,
        to_dir,
        to,
        rustix::fs::RenameFlags::NOREPLACE,
    )?)
}

/// Removes `name` from `dir`.
pub(crate) fn unlink_in(dir: impl AsFd, name: &OsStr) -> io::Result<()> {
    Ok(rustix::fs::unlinkat(dir, name, AtFlags::empty())?)
}

/// The effective uid of this process.
pub(crate) fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}
