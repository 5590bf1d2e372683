//! The kernel-side clean cache: after a clean verdict, an evictable ignore mark on the file's
//! inode, so that opening the unchanged file again raises no event at all (about 2.5 µs
//! instead of a permission round trip).
//!
//! **What keeps it correct** (see `../shared/notes/fanotify.md`, rule 7):
//! - the mark is set without `FAN_MARK_IGNORED_SURV_MODIFY`, so the kernel drops it on the
//!   next `write()` or truncate, synchronously, before the writer returns;
//! - writes through a shared mmap do not drop it, so every `FAN_CLOSE_WRITE` removes it
//!   ([`KernelCache::forget`]) and the reader forgets the userspace entry too;
//! - after setting it, the file is `fstat`ed again and the database generation read again:
//!   a write between the scan and the mark (which the kernel could not drop, the mark did not
//!   exist yet) or a reload meanwhile shows up there, and the mark is taken back;
//! - a database reload flushes every ignore mark ([`KernelCache::flush`]): the scanner is
//!   replaced first, so a mark set after the flush sees the new generation and is taken back.
//!
//! The cache is about *what a file contains*, so it may follow the file anywhere (a rename
//! into the include paths, a hard link): the content it vouches for is unchanged.
//!
//! **Flushing.** The kernel cannot flush ignore marks alone: `FAN_MARK_FLUSH` of inode marks
//! also removes the per-directory marks of directory scope (and of `OnAccessDisableDDD`).
//! So [`Flush::All`] (one `FAN_MARK_FLUSH`) serves coverage without inode marks of its own
//! (filesystem scope, mount paths), and [`Flush::Each`] the others: every ignore mark is first
//! recorded with the file's handle, and a reload removes them one by one through
//! `open_by_handle_at` (a file moved or renamed meanwhile is still found). The record is
//! bounded; when it is full, the oldest file's mark is removed to make room, so no mark is
//! ever out of the flush's reach. Files on a filesystem that holds no include path (a mount
//! inside the tree) get no kernel mark in that mode: the userspace cache serves them.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use moat_fanotify::{FileHandle, Group, Mask};
use moat_guard::{CleanHook, FileKey, Inode, ScannerSlot};

/// How a reload drops every ignore mark. See the module docs.
pub enum Flush {
    /// `FAN_MARK_FLUSH` of the group's inode marks: only when coverage has none of its own.
    All,
    /// Each mark recorded and removed through its file handle.
    Each(Registry),
}

/// The record of [`Flush::Each`]: the handle of every file with an ignore mark.
pub struct Registry {
    /// An fd on each filesystem holding an include path, by device (`open_by_handle_at`
    /// needs one on the file's filesystem).
    mounts: Vec<(u64, OwnedFd)>,
    capacity: usize,
    record: Mutex<Record>,
}

#[derive(Default)]
struct Record {
    handles: HashMap<Inode, FileHandle>,
    /// Insertion order, for making room; may hold inodes forgotten since (skipped).
    order: VecDeque<Inode>,
}

impl Registry {
    /// A record of at most `capacity` files, for files on the filesystems of `roots`.
    pub fn new(roots: &[PathBuf], capacity: usize) -> Registry {
        let mut mounts: Vec<(u64, OwnedFd)> = Vec::new();
        for root in roots {
            let opened = std::fs::File::open(root).and_then(|f| Ok((f.metadata()?.dev(), f)));
            match opened {
                Ok((dev, f)) if !mounts.iter().any(|m| m.0 == dev) => {
                    mounts.push((dev, OwnedFd::from(f)))
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(path = %root.display(), error = %e,
                    "cannot open an include path for the clean cache: its files get no kernel mark"),
            }
        }
        Registry {
            mounts,
            capacity: capacity.max(1),
            record: Mutex::new(Record::default()),
        }
    }

    fn mount_fd(&self, dev: u64) -> Option<BorrowedFd<'_>> {
        self.mounts.iter().find(|m| m.0 == dev).map(|m| m.1.as_fd())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records `inode`; returns the oldest entry when it had to make room for it.
    fn insert(&self, inode: Inode, handle: FileHandle) -> Option<(Inode, FileHandle)> {
        let mut r = self.lock();
        if r.handles.insert(inode, handle).is_some() {
            return None;
        }
        r.order.push_back(inode);
        if r.order.len() > 2 * self.capacity {
            // Forgotten (or forgotten and recorded again) inodes pile up in `order`: keep
            // one place per recorded inode.
            let Record { handles, order } = &mut *r;
            let mut seen = std::collections::HashSet::new();
            order.retain(|i| handles.contains_key(i) && seen.insert(*i));
        }
        if r.handles.len() <= self.capacity {
            return None;
        }
        while let Some(old) = r.order.pop_front() {
            if old == inode {
                r.order.push_back(old);
                continue;
            }
            if let Some(h) = r.handles.remove(&old) {
                return Some((old, h));
            }
        }
        None
    }

    fn forget(&self, inode: Inode) {
        self.lock().handles.remove(&inode);
    }

    fn take(&self) -> HashMap<Inode, FileHandle> {
        let mut r = self.lock();
        r.order.clear();
        std::mem::take(&mut r.handles)
    }

    /// How many files are recorded.
    pub fn len(&self) -> usize {
        self.lock().handles.len()
    }

    /// Whether no file is recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Counters of the kernel cache. Relaxed atomics: statistics only.
#[derive(Debug, Default)]
pub struct KernelCacheStats {
    /// Ignore marks set (and kept).
    pub marked: AtomicU64,
    /// Ignore marks taken back at once (the file changed, or the database was reloaded).
    pub taken_back: AtomicU64,
    /// Ignore marks the kernel refused.
    pub failed: AtomicU64,
    /// Ignore marks removed after a close-after-write.
    pub dropped_on_close_write: AtomicU64,
    /// Ignore marks removed to make room in the record ([`Flush::Each`]).
    pub made_room: AtomicU64,
    /// Flushes (database reloads).
    pub flushes: AtomicU64,
    /// Clean files left to the userspace cache because a user other than root may write
    /// them (owner not root, or group/other write permission).
    pub user_writable: AtomicU64,
    /// Ignore marks set (and kept) on files allowed unscanned for their size
    /// ([`KernelCache::too_large`]).
    pub too_large: AtomicU64,
}

/// Sets and removes the ignore marks. See the module docs.
pub struct KernelCache {
    group: Arc<Group>,
    /// The open events to ignore: `OPEN_PERM | OPEN_EXEC_PERM`, or (notify-only) `OPEN |
    /// OPEN_EXEC`.
    ignore: Mask,
    scanner: Arc<ScannerSlot>,
    flush: Flush,
    /// Devices never marked: slow filesystems (FUSE, network), whose content can change with
    /// no local event or differ per reader (see [`crate::slow_fs`]).
    skip: Option<Arc<crate::slow_fs::SlowDevs>>,
    /// Counters (shared with the daemon that a reload starts next).
    pub stats: Arc<KernelCacheStats>,
}

impl KernelCache {
    /// A cache on `group`'s inodes for the `ignore` events, checking generations in `scanner`,
    /// flushed on reload as `flush` says.
    pub fn new(
        group: Arc<Group>,
        ignore: Mask,
        scanner: Arc<ScannerSlot>,
        flush: Flush,
    ) -> KernelCache {
        KernelCache {
            group,
            ignore,
            scanner,
            flush,
            skip: None,
            stats: Arc::default(),
        }
    }

    /// Counts into `stats` (a reload's new daemon goes on with the old one's counters).
    pub fn with_stats(mut self, stats: Arc<KernelCacheStats>) -> KernelCache {
        self.stats = stats;
        self
    }

    /// Never marks files on the devices `devs` lists (slow filesystems).
    pub fn skip_devices(mut self, devs: Arc<crate::slow_fs::SlowDevs>) -> KernelCache {
        self.skip = Some(devs);
        self
    }

    /// How a reload flushes, for the startup line.
    pub fn describe(&self) -> &'static str {
        match self.flush {
            Flush::All => "kernel ignore marks",
            Flush::Each(_) => "kernel ignore marks (each recorded, for reloads)",
        }
    }

    /// Removes the ignore mark of the inode `fd` is open on (after `FAN_CLOSE_WRITE`); true
    /// when there was one.
    pub fn forget(&self, fd: BorrowedFd<'_>, inode: Option<Inode>) -> bool {
        if let (Flush::Each(r), Some(inode)) = (&self.flush, inode) {
            r.forget(inode);
        }
        match self.group.unignore_inode(fd, self.ignore) {
            Ok(true) => {
                self.stats.dropped_on_close_write.fetch_add(1, Relaxed);
                true
            }
            Ok(false) => false,
            Err(e) => {
                tracing::warn!(error = %e, "cannot remove an ignore mark after a write");
                false
            }
        }
    }

    /// Drops every ignore mark (database reload); returns how many were removed one by one
    /// ([`Flush::Each`]; `None` for one `FAN_MARK_FLUSH`).
    pub fn flush(&self) -> Result<Option<usize>, moat_fanotify::Error> {
        self.stats.flushes.fetch_add(1, Relaxed);
        match &self.flush {
            Flush::All => self.group.flush_ignores().map(|()| None),
            Flush::Each(r) => {
                let all = r.take();
                let removed = all
                    .iter()
                    .filter(|((dev, _), h)| self.remove_by_handle(r, *dev, h))
                    .count();
                Ok(Some(removed))
            }
        }
    }

    /// The policy allowed an open of the event's file `fd` unscanned because it is larger
    /// than `max` (`OnAccessMaxFileSize`): an ignore mark, so that its next opens raise no
    /// event only to be allowed again (each was a full round trip through the reader:
    /// measured 10-25 µs against 0.5 µs for a marked open).
    ///
    /// Safe whoever may write the file, unlike [`CleanHook::clean`]'s marks: the mark vouches
    /// for the size, not the content, and the size only goes under `max` by a truncate,
    /// write or fallocate, each of which drops the mark (it is set without
    /// `FAN_MARK_IGNORED_SURV_MODIFY`) — a write through a shared mapping cannot change the
    /// size. A change that came before the mark is seen by the `statx` after it, and the mark
    /// taken back. Slow filesystems get none (see [`crate::slow_fs`]).
    pub fn too_large(&self, fd: BorrowedFd<'_>, max: u64) {
        let Ok(st) = crate::locate::stat_fd(fd) else {
            return;
        };
        let inode = (st.dev, st.ino);
        if st.size <= max || self.skip.as_ref().is_some_and(|d| d.contains(st.dev)) {
            return;
        }
        if !self.record(fd, inode) {
            return;
        }
        if let Err(e) = self.group.ignore_inode(fd, self.ignore) {
            self.stats.failed.fetch_add(1, Relaxed);
            tracing::debug!(error = %e, "cannot set an ignore mark on a file too large to scan");
            return;
        }
        match crate::locate::stat_fd(fd) {
            Ok(now) if now.size > max => {
                self.stats.too_large.fetch_add(1, Relaxed);
            }
            _ => self.take_back(fd, inode),
        }
    }

    /// Removes the ignore mark of the file `handle` names (it may have moved, or be gone).
    fn remove_by_handle(&self, r: &Registry, dev: u64, handle: &FileHandle) -> bool {
        let Some(mount) = r.mount_fd(dev) else {
            return false;
        };
        // Raises no event (the mark is there) or our own (allowed at once by the reader).
        let flags = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY;
        match handle.open(mount, flags) {
            Ok(fd) => matches!(self.group.unignore_inode(fd.as_fd(), self.ignore), Ok(true)),
            // ESTALE: deleted, and its mark with it.
            Err(_) => false,
        }
    }

    /// [`Flush::Each`]: records the file before its mark is set, so a reload cannot miss it.
    /// False when the file cannot be recorded (then it gets no kernel mark).
    fn record(&self, fd: BorrowedFd<'_>, inode: Inode) -> bool {
        let Flush::Each(r) = &self.flush else {
            return true;
        };
        if r.mount_fd(inode.0).is_none() {
            return false;
        }
        let Ok((handle, _)) = FileHandle::from_fd(fd) else {
            return false;
        };
        if let Some(((dev, _), old)) = r.insert(inode, handle) {
            self.stats.made_room.fetch_add(1, Relaxed);
            self.remove_by_handle(r, dev, &old);
        }
        true
    }

    fn take_back(&self, fd: BorrowedFd<'_>, inode: Inode) {
        self.stats.taken_back.fetch_add(1, Relaxed);
        if let Flush::Each(r) = &self.flush {
            r.forget(inode);
        }
        if let Err(e) = self.group.unignore_inode(fd, self.ignore) {
            // Left in place it would vouch for content that was not scanned: say so loudly.
            tracing::error!(error = %e, "cannot take back an ignore mark of a file that changed");
        }
    }
}

/// Whether only root may write `file`: owned by root, no group or other write permission
/// (with a POSIX ACL the group bits are its mask, so no ACL entry grants write either).
///
/// Why (review F3): an ignore mark silences every later open, a writer's `O_RDWR` one
/// included, and a write through a shared mapping neither drops the mark nor raises any
/// event until the mapping is gone: a user who may write the file could hold such a
/// mapping, write malware through it, and have everyone read it with no event at all. So
/// the kernel cache only vouches for files no user but root can open for writing; the others
/// raise an event on every open and are answered by the userspace cache, which never
/// answers for a file someone has open for writing (moat_guard::writers).
fn only_root_writes(file: &File) -> bool {
    use std::os::unix::fs::PermissionsExt;
    file.metadata()
        .is_ok_and(|m| m.uid() == 0 && m.permissions().mode() & 0o022 == 0)
}

impl CleanHook for KernelCache {
    fn clean(&self, file: &File, key: &FileKey, generation: u64) {
        if self.skip.as_ref().is_some_and(|d| d.contains(key.dev)) {
            return;
        }
        if !only_root_writes(file) {
            self.stats.user_writable.fetch_add(1, Relaxed);
            return;
        }
        if !self.record(file.as_fd(), key.inode()) {
            return;
        }
        if let Err(e) = self.group.ignore_inode(file.as_fd(), self.ignore) {
            self.stats.failed.fetch_add(1, Relaxed);
            tracing::debug!(error = %e, "cannot set an ignore mark (the userspace cache still answers)");
            return;
        }
        let unchanged = FileKey::of(file).is_ok_and(|now| now == *key);
        // A writer that came since the worker's check (root: nobody else may write here)
        // could change the file through a mapping without dropping the mark.
        let unwritten = moat_guard::writers::open_for_writing(file) == Some(false);
        if unchanged && unwritten && self.scanner.generation() == generation {
            self.stats.marked.fetch_add(1, Relaxed);
            tracing::debug!(dev = key.dev, ino = key.ino, "clean: ignore mark set");
        } else {
            self.take_back(file.as_fd(), key.inode());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle(n: u8) -> FileHandle {
        FileHandle {
            handle_type: 1,
            bytes: vec![n; 8],
        }
    }

    #[test]
    fn the_record_is_bounded_and_makes_room_oldest_first() {
        let r = Registry::new(&[], 3);
        for i in 0..3u8 {
            assert!(r.insert((1, u64::from(i)), handle(i)).is_none());
        }
        // Again: no room needed.
        assert!(r.insert((1, 1), handle(1)).is_none());
        let (old, h) = r.insert((1, 9), handle(9)).unwrap();
        assert_eq!((old, h), ((1, 0), handle(0)));
        assert_eq!(r.len(), 3);
        // Forgotten entries are skipped when making room.
        r.forget((1, 1));
        assert!(r.insert((1, 10), handle(10)).is_none());
        let (old, _) = r.insert((1, 11), handle(11)).unwrap();
        assert_eq!(old, (1, 2));
        let all = r.take();
        assert_eq!(all.len(), 3);
        assert!(r.is_empty());
    }

    #[test]
    fn forgotten_inodes_do_not_grow_the_order_without_bound() {
        let r = Registry::new(&[], 4);
        for _ in 0..100 {
            assert!(r.insert((1, 1), handle(1)).is_none());
            r.forget((1, 1));
        }
        assert!(r.lock().order.len() <= 8 + 1);
    }
}
