//! Filesystem scope without a tax elsewhere: directories outside the include paths that only
//! root can change get an in-kernel ignore mark, so opens of their files raise no event.
//!
//! A `FAN_MARK_FILESYSTEM` mark makes every open on the filesystem wait for the daemon, also
//! far away from the include paths (measured: 37 µs instead of 4.3 µs per open of a small file
//! under /usr/share). When the reader allows a file as outside the include paths, it offers
//! the file's directory here. This thread (never the reader) then places an evictable
//! `FAN_MARK_IGNORE` mark with `EVENT_ON_CHILD` for the open events on that directory and on
//! every directory of its subtree that passes the same test, so the next opens there cost
//! what they cost without moat.
//!
//! Which directories: the path (drawn through an include path's own mount, see
//! [`crate::locate`]) is outside every include path, and the directory **and its parent** are
//! owned by root with no group or other write permission. Then no unprivileged user can
//! create, link or rename a file into it, nor rename it (that takes write permission on its
//! parent) into an include path: what is ignored there stays outside. Writable places (`/tmp`,
//! home directories) keep their events, which is where aliases of protected files could be
//! made. A mark follows the directory inode, not a path, so no mount, bind or namespace can
//! make it cover anything else. Root moving such a directory into an include path takes its
//! mark along until the next reload (SIGHUP flushes every ignore mark) or inode eviction: a
//! documented limit.

use std::collections::HashSet;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use moat_fanotify::{Group, MarkFlags, MarkKind, Mask};
use rustix::fs::{Mode, OFlags};

use crate::locate::{stat_fd, FileStat, Locator};
use crate::stop::Stop;
use crate::verdict::DaemonStats;

/// Directories marked from one offer, at most (a walk of a large tree is cut there).
const WALK_BUDGET: usize = 100_000;
/// Ignore marks placed in all, at most (each is ~120 bytes of kernel memory; evictable).
const MARK_CAP: u64 = 1 << 20;
/// Offers waiting, at most; more are dropped (they come back with the next event).
const QUEUE: usize = 4096;

/// The reader's side: offers a file's directory, never blocks.
#[derive(Clone)]
pub struct Quieter {
    tx: Sender<PathBuf>,
}

impl Quieter {
    /// Offers the directory of `file` (a path allowed as outside the include paths).
    pub fn offer(&self, file: &Path) {
        if let Some(dir) = file.parent() {
            match self.tx.try_send(dir.to_owned()) {
                Ok(()) | Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {}
            }
        }
    }
}

/// The thread's side.
pub struct QuietThread {
    rx: Receiver<PathBuf>,
    group: Arc<Group>,
    locator: Arc<Locator>,
    mask: Mask,
    stats: Arc<DaemonStats>,
    seen: HashSet<PathBuf>,
    placed: u64,
}

/// A quieter and its thread's state; `open` is the open events to ignore.
pub fn channel(
    group: Arc<Group>,
    locator: Arc<Locator>,
    open: Mask,
    stats: Arc<DaemonStats>,
) -> (Quieter, QuietThread) {
    let (tx, rx) = crossbeam_channel::bounded(QUEUE);
    let t = QuietThread {
        rx,
        group,
        locator,
        mask: open | Mask::EVENT_ON_CHILD,
        stats,
        seen: HashSet::new(),
        placed: 0,
    };
    (Quieter { tx }, t)
}

/// Only root can change it: owned by root, no group or other write permission.
fn root_only(st: &FileStat) -> bool {
    st.uid == 0 && st.mode & 0o022 == 0
}

fn open_dir(at: Option<BorrowedFd<'_>>, path: &Path) -> std::io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(match at {
        Some(fd) => rustix::fs::openat(fd, path, flags, Mode::empty())?,
        None => rustix::fs::open(path, flags, Mode::empty())?,
    })
}

impl QuietThread {
    /// Handles offers until `stop` (or until the reader is gone).
    pub fn run(mut self, stop: &Stop) -> Result<(), String> {
        loop {
            match self.rx.recv_timeout(std::time::Duration::from_millis(200)) {
                Ok(dir) => self.offered(&dir),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return Ok(()),
            }
            if stop.is_triggered() {
                return Ok(());
            }
        }
    }

    fn inside_anchor(anchors: &[PathBuf], dir: &Path) -> bool {
        anchors.iter().any(|a| dir.starts_with(a))
    }

    fn above_anchor(anchors: &[PathBuf], dir: &Path) -> bool {
        anchors.iter().any(|a| a.starts_with(dir))
    }

    /// Whether `dir` (a path in this namespace) is outside the include paths, reached through
    /// an include path's own mount with no symlink on the way, and only root can change it
    /// and its parent. Returns its fd and stat when so.
    fn qualifies(&self, anchors: &[PathBuf], dir: &Path) -> Option<(OwnedFd, FileStat)> {
        if Self::inside_anchor(anchors, dir) {
            return None;
        }
        let fd = open_dir(None, dir).ok()?;
        let st = stat_fd(fd.as_fd()).ok()?;
        if !root_only(&st) || !self.locator.is_anchor_mount(st.mnt_id) {
            return None;
        }
        // The path the kernel draws for what was opened must be the one decided on.
        if moat_fanotify::fd_path(fd.as_fd()).ok()? != dir {
            return None;
        }
        let parent = open_dir(Some(fd.as_fd()), Path::new("..")).ok()?;
        let pst = stat_fd(parent.as_fd()).ok()?;
        root_only(&pst).then_some((fd, st))
    }

    fn offered(&mut self, dir: &Path) {
        if self.seen.contains(dir) || self.placed >= MARK_CAP {
            return;
        }
        if self.seen.len() > 1 << 18 {
            self.seen.clear();
        }
        self.seen.insert(dir.to_owned());
        let anchors = self.locator.paths();
        let Some((mut fd, mut st)) = self.qualifies(&anchors, dir) else {
            return;
        };
        // Climb while the parent qualifies too and holds no include path: one walk then
        // quiets the whole tree (e.g. all of /usr on the first open there).
        let mut top = dir.to_owned();
        while let Some(up) = top.parent().map(Path::to_owned) {
            if Self::above_anchor(&anchors, &up) {
                break;
            }
            match self.qualifies(&anchors, &up) {
                Some((f, s)) => {
                    (fd, st, top) = (f, s, up);
                    self.seen.insert(top.clone());
                }
                None => break,
            }
        }
        self.walk(&anchors, top, fd, st);
    }

    /// Marks `top` (already checked) and every qualifying directory below it, breadth
    /// first, without leaving its filesystem or entering an include path.
    fn walk(&mut self, anchors: &[PathBuf], top: PathBuf, fd: OwnedFd, st: FileStat) {
        let mut queue = std::collections::VecDeque::from([(top, fd)]);
        let mut budget = WALK_BUDGET;
        while let Some((path, fd)) = queue.pop_front() {
            if !self.mark(fd.as_fd(), &path) || budget == 0 {
                continue;
            }
            budget -= 1;
            let Ok(mut entries) = rustix::fs::Dir::read_from(fd.as_fd()) else {
                continue;
            };
            while let Some(Ok(e)) = entries.read() {
                let name = e.file_name().to_bytes();
                if e.file_type() != rustix::fs::FileType::Directory || name == b"." || name == b".."
                {
                    continue;
                }
                let name =
                    Path::new(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(name));
                let child = path.join(name);
                if Self::inside_anchor(anchors, &child) {
                    continue;
                }
                let Ok(cfd) = open_dir(Some(fd.as_fd()), name) else {
                    continue;
                };
                match stat_fd(cfd.as_fd()) {
                    Ok(cst) if cst.dev == st.dev && cst.mnt_id == st.mnt_id && root_only(&cst) => {
                        queue.push_back((child, cfd))
                    }
                    _ => {}
                }
            }
        }
    }

    fn mark(&mut self, fd: BorrowedFd<'_>, path: &Path) -> bool {
        if self.placed >= MARK_CAP {
            return false;
        }
        let flags = MarkFlags::IGNORE | MarkFlags::IGNORED_SURV_MODIFY | MarkFlags::EVICTABLE;
        match self.group.mark_raw(
            libc::FAN_MARK_ADD,
            MarkKind::Inode,
            flags,
            self.mask,
            Some(fd),
            None,
        ) {
            Ok(()) => {
                self.placed += 1;
                self.stats.quieted_dirs.fetch_add(1, Relaxed);
                self.seen.insert(path.to_owned());
                tracing::trace!(dir = %path.display(), "outside the include paths, root-only: opens there ignored in the kernel");
                true
            }
            Err(e) => {
                tracing::debug!(dir = %path.display(), error = %e, "cannot quiet a directory outside the include paths");
                false
            }
        }
    }
}
