//! Where a file lives on its filesystem, whatever mount it was opened through.
//!
//! A fanotify event carries an fd whose path (`/proc/self/fd/N`) is drawn through the
//! *opener's* mount: a bind mount elsewhere, a container volume, or a mount made in another
//! user's mount namespace shows the same file under a path that says nothing about where it
//! lives. Deciding on that path let any such alias read a protected file unscanned
//! (review F1). So the path is trusted only when the event came through one of the mounts
//! the include paths themselves are seen through in the daemon's namespace (the *anchors*),
//! identified by their unique mount id (`statx(STATX_MNT_ID_UNIQUE)`, never reused). An
//! event through any other mount is resolved again through an anchor of the same
//! filesystem: its file handle (`name_to_handle_at`) opened `O_PATH` with the anchor as
//! mount fd (`open_by_handle_at`, no open event), which draws the file's path through the
//! anchor's mount, in the daemon's namespace. When that fails, the place is unknown and the
//! caller scans.
//!
//! A file with more than one link has more than one place, and the one the opener used is
//! not necessarily the one that matters: it is placed nowhere ([`Place::Unsure`]), so it is
//! scanned wherever it is opened.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use moat_fanotify::FileHandle;

/// What `statx` says about an event's file: everything the reader needs, in one syscall.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileStat {
    /// `st_size`.
    pub size: u64,
    /// `st_nlink`.
    pub nlink: u32,
    /// `st_dev` (`makedev(stx_dev_major, stx_dev_minor)`).
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
    /// The mount the fd was opened through: the unique id where the kernel has one (6.8+),
    /// else the old (reusable) id.
    pub mnt_id: u64,
    /// `st_uid`.
    pub uid: u32,
    /// `st_mode`.
    pub mode: u32,
}

/// `statx(fd, "", AT_EMPTY_PATH)` with size, links, owner, mode and the unique mount id.
/// Raises no fanotify event (it opens nothing).
pub fn stat_fd(fd: BorrowedFd<'_>) -> std::io::Result<FileStat> {
    // SAFETY: an all-zero statx is a valid value; the kernel fills it.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    let mask = libc::STATX_BASIC_STATS | libc::STATX_MNT_ID_UNIQUE;
    // SAFETY: valid fd, "" with AT_EMPTY_PATH names the fd itself, st is writable.
    let r = unsafe {
        libc::statx(
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_STATX_DONT_SYNC,
            mask,
            &mut st,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(FileStat {
        size: st.stx_size,
        nlink: st.stx_nlink,
        dev: libc::makedev(st.stx_dev_major, st.stx_dev_minor),
        ino: st.stx_ino,
        mnt_id: st.stx_mnt_id,
        uid: st.stx_uid,
        mode: st.stx_mode as u32,
    })
}

/// One mount the include paths are seen through, in the daemon's namespace.
#[derive(Debug)]
pub struct Anchor {
    /// The include path (or a mount point below one), canonical.
    pub path: PathBuf,
    /// A directory fd on it: the mount fd for `open_by_handle_at` (which refuses `O_PATH`
    /// fds). Opening a directory raises no event (no mark carries `FAN_ONDIR`).
    fd: OwnedFd,
    /// Its mount's id (as [`FileStat::mnt_id`]).
    pub mnt_id: u64,
    /// Its filesystem's `st_dev`.
    pub dev: u64,
}

impl Anchor {
    /// Opens `path` (`O_RDONLY | O_DIRECTORY`) and records its mount and device.
    pub fn open(path: &Path) -> std::io::Result<Anchor> {
        let fd = rustix::fs::open(
            path,
            rustix::fs::OFlags::RDONLY
                | rustix::fs::OFlags::DIRECTORY
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )?;
        let st = stat_fd(fd.as_fd())?;
        Ok(Anchor {
            path: path.to_owned(),
            fd,
            mnt_id: st.mnt_id,
            dev: st.dev,
        })
    }
}

/// Where an event's file is, for the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// Its path in the daemon's namespace, drawn through an anchor's mount: path rules apply.
    At(PathBuf),
    /// Not known (an alias that cannot be resolved, several links, no path): no path rule
    /// may allow it, so it is scanned.
    Unsure(&'static str),
}

/// The anchors, replaced as a whole when the mount table changes (filesystem scope).
#[derive(Debug, Default)]
pub struct Locator {
    anchors: RwLock<Arc<Vec<Anchor>>>,
}

impl Locator {
    /// A locator with the anchors of `paths` (include paths, mount points below them); a
    /// path that cannot be opened is logged and left out (its events resolve as unsure).
    pub fn new(paths: &[PathBuf]) -> Locator {
        let l = Locator::default();
        l.set(paths);
        l
    }

    /// Replaces the anchors with those of `paths`.
    pub fn set(&self, paths: &[PathBuf]) {
        let anchors: Vec<Anchor> = paths
            .iter()
            .filter_map(|p| match Anchor::open(p) {
                Ok(a) => Some(a),
                Err(e) => {
                    tracing::warn!(path = %p.display(), error = %e, "cannot open an include path's mount: files seen through it are scanned wherever they are");
                    None
                }
            })
            .collect();
        *self.anchors.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(anchors);
    }

    fn current(&self) -> Arc<Vec<Anchor>> {
        Arc::clone(&self.anchors.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Whether `mnt_id` is an anchor's mount.
    pub fn is_anchor_mount(&self, mnt_id: u64) -> bool {
        self.current().iter().any(|a| a.mnt_id == mnt_id)
    }

    /// Where the file of `fd` (with `st` from [`stat_fd`]) is. Never opens the file for
    /// reading (only `O_PATH`), so safe on the reader thread.
    pub fn place(&self, fd: BorrowedFd<'_>, st: &FileStat) -> Place {
        if st.nlink > 1 {
            return Place::Unsure("several links");
        }
        let anchors = self.current();
        if anchors.iter().any(|a| a.mnt_id == st.mnt_id) {
            return match moat_fanotify::fd_path(fd) {
                Ok(p) => Place::At(p),
                Err(_) => Place::Unsure("no path"),
            };
        }
        let Ok((handle, _)) = FileHandle::from_fd(fd) else {
            return Place::Unsure("no file handle");
        };
        let mut outside = None;
        for a in anchors.iter().filter(|a| a.dev == st.dev) {
            match handle.resolve_path(a.fd.as_fd()) {
                Ok(p) if p.starts_with(&a.path) => return Place::At(p),
                Ok(p) => outside = Some(p),
                // Not reachable through this anchor's mount (or gone): unknown here.
                Err(_) => return Place::Unsure("alias mount not resolvable"),
            }
        }
        match outside {
            Some(p) => Place::At(p),
            None => Place::Unsure("alias mount of an unknown filesystem"),
        }
    }

    /// The anchor paths, for the quieting of directories outside them.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.current().iter().map(|a| a.path.clone()).collect()
    }
}
