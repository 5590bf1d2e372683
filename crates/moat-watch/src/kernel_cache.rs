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
//! **When it is off.** The kernel cannot flush ignore marks alone: `FAN_MARK_FLUSH` of inode
//! marks also removes the per-directory marks of directory scope (and of
//! `OnAccessDisableDDD`). With those, a reload could not drop stale ignore marks without
//! uncovering the tree, so the kernel cache is used only when coverage uses no inode marks
//! (filesystem scope, mount paths); the userspace verdict cache serves the others.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use moat_fanotify::{Group, Mask};
use moat_guard::{CleanHook, FileKey, ScannerSlot};

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
    /// Flushes (database reloads).
    pub flushes: AtomicU64,
}

/// Sets and removes the ignore marks. See the module docs.
pub struct KernelCache {
    group: Arc<Group>,
    /// The open events to ignore: `OPEN_PERM | OPEN_EXEC_PERM`, or (notify-only) `OPEN |
    /// OPEN_EXEC`.
    ignore: Mask,
    scanner: Arc<ScannerSlot>,
    /// Counters.
    pub stats: KernelCacheStats,
}

impl KernelCache {
    /// A cache on `group`'s inodes for the `ignore` events, checking generations in `scanner`.
    pub fn new(group: Arc<Group>, ignore: Mask, scanner: Arc<ScannerSlot>) -> KernelCache {
        KernelCache {
            group,
            ignore,
            scanner,
            stats: KernelCacheStats::default(),
        }
    }

    /// Removes the ignore mark of the inode `fd` is open on (after `FAN_CLOSE_WRITE`); true
    /// when there was one.
    pub fn forget(&self, fd: BorrowedFd<'_>) -> bool {
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

    /// Drops every ignore mark (database reload). Only valid when coverage uses no inode
    /// marks (see the module docs).
    pub fn flush(&self) -> Result<(), moat_fanotify::Error> {
        self.stats.flushes.fetch_add(1, Relaxed);
        self.group.flush_ignores()
    }

    fn take_back(&self, file: &File) {
        self.stats.taken_back.fetch_add(1, Relaxed);
        if let Err(e) = self.group.unignore_inode(file.as_fd(), self.ignore) {
            // Left in place it would vouch for content that was not scanned: say so loudly.
            tracing::error!(error = %e, "cannot take back an ignore mark of a file that changed");
        }
    }
}

impl CleanHook for KernelCache {
    fn clean(&self, file: &File, key: &FileKey, generation: u64) {
        if let Err(e) = self.group.ignore_inode(file.as_fd(), self.ignore) {
            self.stats.failed.fetch_add(1, Relaxed);
            tracing::debug!(error = %e, "cannot set an ignore mark (the userspace cache still answers)");
            return;
        }
        let unchanged = FileKey::of(file).is_ok_and(|now| now == *key);
        if unchanged && self.scanner.generation() == generation {
            self.stats.marked.fetch_add(1, Relaxed);
            tracing::debug!(dev = key.dev, ino = key.ino, "clean: ignore mark set");
        } else {
            self.take_back(file);
        }
    }
}
