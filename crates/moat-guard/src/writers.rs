//! Whether anyone has a file open for writing right now: the signal that keeps the clean
//! caches from vouching for a file someone can still change unseen (review F3, F4).
//!
//! **Why it matters.** A write through a shared writable mapping raises no fanotify event,
//! drops no ignore mark, and a write to a page that is already dirty changes no timestamp:
//! a file cached clean, then rewritten through a mapping its owner keeps, would be served
//! from the cache with the new content. But such a mapping holds the file open for writing
//! (its `struct file`, opened `O_RDWR`, lives until the last mapping is gone), and so does
//! every `write(2)` in progress. A file that nobody has open for writing cannot change but
//! through a new open (which raises an event) or `truncate(2)` (which changes the key).
//!
//! **How.** The kernel counts writers per inode (`i_writecount`), and exposes the count in
//! one place: a read lease (`fcntl(F_SETLEASE, F_RDLCK)`) is refused with `EAGAIN` while
//! anyone has the file open for writing. So the probe takes a read lease on the worker's
//! read-only descriptor and gives it back at once. Two `fcntl` calls, about a microsecond.
//! A writer opening the file in between waits for the give-back (microseconds): the kernel
//! breaks a lease by notifying its holder with `SIGIO`, which is therefore ignored in this
//! process (its default action would end it).
//!
//! A filesystem without leases (`EINVAL`), or any other error, gives `None`: unknown, which
//! callers treat as "maybe written" (no caching), never as clean.

use std::fs::File;
use std::os::fd::AsRawFd;

/// `Some(true)` when someone has `file`'s inode open for writing (a held writable shared
/// mapping included), `Some(false)` when nobody has, `None` when the kernel cannot tell
/// (no lease support on this filesystem, not a regular file, not allowed). `file` must be
/// open read-only.
pub fn open_for_writing(file: &File) -> Option<bool> {
    ignore_sigio();
    let fd = file.as_raw_fd();
    // SAFETY: plain fcntl on a valid fd.
    let r = unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_RDLCK) };
    if r == 0 {
        // SAFETY: as above; gives the lease back.
        unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_UNLCK) };
        return Some(false);
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::EAGAIN) => Some(true),
        _ => None,
    }
}

/// A lease break is announced to the holder with `SIGIO`, whose default action ends the
/// process: ignored, once, before the first lease is taken (nothing in moat uses `SIGIO`).
fn ignore_sigio() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: setting a signal's disposition to SIG_IGN.
        unsafe { libc::signal(libc::SIGIO, libc::SIG_IGN) };
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Against the real kernel: a writer fd, then a held shared writable mapping whose fd
    /// was closed, count as writers; nothing else does.
    #[test]
    fn writers_and_held_shared_mappings_are_seen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::File::create(&path)
            .unwrap()
            .write_all(&[b'c'; 4096])
            .unwrap();
        let reader = File::open(&path).unwrap();
        assert_eq!(open_for_writing(&reader), Some(false));
        let writer = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        assert_eq!(open_for_writing(&reader), Some(true));
        drop(writer);
        assert_eq!(open_for_writing(&reader), Some(false));

        let rw = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        // SAFETY: a fresh shared mapping of 4096 bytes of a 4096-byte file, unmapped below.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                rw.as_raw_fd(),
                0,
            )
        };
        assert_ne!(map, libc::MAP_FAILED);
        drop(rw);
        // SAFETY: within the mapping.
        unsafe { *(map as *mut u8) = b'x' };
        assert_eq!(open_for_writing(&reader), Some(true), "held mapping");
        // SAFETY: the mapping made above.
        assert_eq!(unsafe { libc::munmap(map, 4096) }, 0);
        assert_eq!(open_for_writing(&reader), Some(false));
    }

    #[test]
    fn a_directory_cannot_tell() {
        let dir = tempfile::tempdir().unwrap();
        let d = File::open(dir.path()).unwrap();
        assert_eq!(open_for_writing(&d), None);
    }
}
