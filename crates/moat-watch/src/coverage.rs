//! Directory-scope coverage: one fanotify inode mark per directory, kept in step with the
//! tree (ClamAV's "dynamic directory determination").
//!
//! Every covered directory carries two things in the kernel: a fanotify mark on the
//! enforcement group (`OPEN_PERM | OPEN_EXEC_PERM | EVENT_ON_CHILD`, so opens of its files
//! raise permission events) and something that reports its own subdirectories being
//! created, moved and deleted: a mark of the fanotify *tracking* group
//! ([`Backend::Fanotify`], see [`crate::fid`]) or an inotify watch ([`Backend::Inotify`]).
//! [`TrackingMode`] picks one; [`DirectoryCoverage::tracking`] says which and, when `auto`
//! fell back to inotify, why. The [`Tree`] maps ids (watch descriptors, or ids allocated per
//! file handle) to places; [`MarkHandle`]s (file handles) let a mark be removed after its
//! directory moved out of the tree, when its path is no longer known: `open_by_handle_at`
//! reaches the inode wherever it went. That is what clamonacc never manages.
//!
//! **Order per directory, and why it leaves nothing out:** open the directory
//! (`O_NOFOLLOW`), start tracking it (inotify watch, or tracking mark then file handle → id),
//! add the enforcement mark, *then* read its entries. A subdirectory created before tracking
//! started is found by the read; one created after it raises an event; one created in
//! between is found by both, and the second sighting is a no-op because tracking an inode
//! already tracked returns the same id (inotify: the same descriptor; fanotify: the same
//! handle).
//!
//! **Window:** between `mkdir` and the mark of the new directory (a few hundred
//! microseconds: the tracker thread must see the event first) files in it are not covered.
//! Filesystem-scope coverage has no such window (issue 4).
//!
//! Failures are per directory: a directory that cannot be opened, tracked or marked is
//! reported and skipped, and its siblings are still covered. Only running out of inotify
//! watches at start is fatal, with the number needed ([`CoverError::WatchLimit`]); the
//! fanotify backend has no such limit (`FAN_UNLIMITED_MARKS`).

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex};

use moat_fanotify::{FidInfo, FileHandle, Group, MarkFlags, MarkKind, Mask};
use moat_guard::Policy;
use rustix::fs::{inotify, FileType, Mode, OFlags, RawDir};

use crate::fid::FidTracker;
use crate::slow_fs::SlowGroups;
use crate::tree::{Tree, Wd};

/// Which mechanism follows the tree's changes (`OnAccessTracking`, `--tracking`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrackingMode {
    /// fanotify when the kernel and the include paths' filesystems support it, else inotify.
    #[default]
    Auto,
    /// fanotify only: a start error when unavailable.
    Fanotify,
    /// inotify only.
    Inotify,
}

/// The tracking backend in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A fanotify notification group with `FAN_REPORT_DFID_NAME` and an inode mark per
    /// directory (see [`crate::fid`]): no inotify watch, no `max_user_watches` limit.
    Fanotify,
    /// An inotify watch per directory.
    Inotify,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Fanotify => "fanotify",
            Backend::Inotify => "inotify",
        })
    }
}

/// The backend chosen and, when `auto` fell back to inotify, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracking {
    /// The backend in use.
    pub backend: Backend,
    /// Why fanotify was not used (`auto` only), e.g. `"kernel too old: FAN_REPORT_DFID_NAME
    /// refused (EINVAL)"` or `"/x: filesystem without file handles (EOPNOTSUPP)"`.
    pub fallback: Option<String>,
}

impl std::fmt::Display for Tracking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.fallback {
            None => write!(f, "{}", self.backend),
            Some(why) => write!(f, "{} (fanotify unavailable: {why})", self.backend),
        }
    }
}

/// How the tree is followed: an inotify instance, or the fanotify tracking group.
enum Tracker {
    Inotify(OwnedFd),
    Fanotify(FidTracker),
}

/// Where the tracker thread reads tree events from.
pub(crate) enum Source {
    /// A second fd on the inotify instance.
    Inotify(OwnedFd),
    /// The fanotify tracking group.
    Fanotify(Arc<Group>),
}

/// What the kernel needs to find a directory again once its path is unknown.
#[derive(Debug)]
pub struct MarkHandle {
    handle: FileHandle,
    mount_id: i32,
}

/// Why covering failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum CoverError {
    /// inotify's watch budget ran out (`ENOSPC`).
    #[error("{}", crate::limits::watch_shortfall_message(*.needed, *.limit))]
    WatchLimit {
        /// Directories the include paths hold.
        needed: u64,
        /// `fs.inotify.max_user_watches`.
        limit: u64,
    },
    /// inotify could not be initialised.
    #[error("inotify_init1 failed: {0}")]
    Init(io::Error),
    /// `OnAccessTracking fanotify` was asked for and is unavailable.
    #[error("OnAccessTracking fanotify: unavailable: {0}")]
    FanotifyUnavailable(String),
}

/// Counters of the coverage layer.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CoverageCounts {
    /// Directories marked since start.
    pub marked: u64,
    /// Directories whose marks were removed (moved out, excluded by a rename).
    pub unmarked: u64,
    /// Directories that could not be covered (reported one by one).
    pub failed: u64,
    /// Tree re-walks after lost or malformed tracking events.
    pub resyncs: u64,
}

/// Whether a walk revisits directories it already tracks (a resync) or stops at them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Walk {
    New,
    Revisit,
}

/// A directory the parallel walk covered, for the thread that owns the tree.
struct Found {
    parent: Option<Wd>,
    path: PathBuf,
    wd: Wd,
    handle: Option<MarkHandle>,
}

/// What the parallel walk's threads share.
struct SharedWalk {
    /// Directories queued or being visited; the walk is over at zero.
    pending: AtomicUsize,
    /// Non-zero (the limit) once inotify's budget ran out: the walk stops.
    limit: AtomicU64,
    seen: Mutex<HashSet<Wd>>,
}

/// What a walk found that is not a tracking matter: files, for extra scanning.
pub type FileSink<'a> = &'a mut dyn FnMut(&Path);

/// Directory-scope coverage of a set of include paths. Owned by the tracker thread.
pub struct DirectoryCoverage {
    group: Arc<Group>,
    mask: Mask,
    tracker: Tracker,
    tracking: Tracking,
    tree: Tree<Option<MarkHandle>>,
    /// An fd on each mount seen, for `open_by_handle_at`. Locked only when a handle is
    /// taken or used (shared by the parallel walk's threads).
    mounts: Mutex<HashMap<i32, OwnedFd>>,
    policy: Arc<Policy>,
    roots: Vec<PathBuf>,
    counts: CoverageCounts,
    /// Covered by `place_marks`, not in `tree` yet.
    unbuilt: Vec<Found>,
    failed: AtomicU64,
    warned_no_handle: AtomicBool,
    /// Where directories of slow filesystems (FUSE, network) are marked instead of `group`
    /// (review F2), and the group chosen for each device seen so far (`None`: `group`).
    slow: Option<Arc<SlowGroups>>,
    group_by_dev: Mutex<HashMap<u64, Option<Arc<Group>>>>,
}

/// The inotify events the tracker needs on every directory.
const WATCH_FLAGS: inotify::WatchFlags = inotify::WatchFlags::CREATE
    .union(inotify::WatchFlags::MOVED_FROM)
    .union(inotify::WatchFlags::MOVED_TO)
    .union(inotify::WatchFlags::DELETE)
    .union(inotify::WatchFlags::DELETE_SELF)
    .union(inotify::WatchFlags::MOVE_SELF)
    .union(inotify::WatchFlags::ONLYDIR)
    .union(inotify::WatchFlags::EXCL_UNLINK);

impl DirectoryCoverage {
    /// Coverage of `roots` (canonical directories) on `group` with fanotify `mask`,
    /// skipping what `policy` excludes, tracked by the backend `mode` selects (`Auto`
    /// probes fanotify: the group, then a tracking mark on each root). Marks nothing yet:
    /// call [`cover`](Self::cover). A forced `Fanotify` that is unavailable is
    /// [`CoverError::FanotifyUnavailable`].
    pub fn new(
        group: Arc<Group>,
        mask: Mask,
        roots: Vec<PathBuf>,
        policy: Arc<Policy>,
        mode: TrackingMode,
    ) -> Result<DirectoryCoverage, CoverError> {
        let probed = match mode {
            TrackingMode::Inotify => None,
            _ => Some(crate::fid::probe(&roots)),
        };
        let (group_fid, tracking) = choose(mode, probed)?;
        let tracker = match group_fid {
            Some(g) => Tracker::Fanotify(FidTracker::new(g)),
            None => Tracker::Inotify(
                inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)
                    .map_err(|e| CoverError::Init(e.into()))?,
            ),
        };
        Ok(DirectoryCoverage {
            group,
            mask,
            tracker,
            tracking,
            tree: Tree::new(),
            mounts: Mutex::new(HashMap::new()),
            policy,
            roots,
            counts: CoverageCounts::default(),
            unbuilt: Vec::new(),
            failed: AtomicU64::new(0),
            warned_no_handle: AtomicBool::new(false),
            slow: None,
            group_by_dev: Mutex::new(HashMap::new()),
        })
    }

    /// Marks directories of slow filesystems (FUSE, network) in `slow`'s group of their
    /// device rather than the main group: a stalled server then holds only the opens on
    /// its own filesystem, as in filesystem scope (review F2).
    pub fn with_slow_groups(mut self, slow: Arc<SlowGroups>) -> Self {
        self.slow = Some(slow);
        self
    }

    /// The group that marks directory `dir`: the slow group of its device when its
    /// filesystem may stall, else the main group. Decided once per device (from
    /// mountinfo); when the filesystem type cannot be told, the main group (logged).
    fn group_of(&self, dir: &OwnedFd) -> Arc<Group> {
        let Some(slow) = &self.slow else {
            return Arc::clone(&self.group);
        };
        let Ok(st) = rustix::fs::fstat(dir) else {
            return Arc::clone(&self.group);
        };
        let dev = st.st_dev;
        let mut by_dev = self.group_by_dev.lock().unwrap_or_else(|p| p.into_inner());
        let chosen = by_dev.entry(dev).or_insert_with(|| {
            let fs_type = crate::mounts::read_here().ok().and_then(|ms| {
                ms.into_iter()
                    .find(|m| libc::makedev(m.dev.0, m.dev.1) == dev)
                    .map(|m| m.fs_type)
            });
            match fs_type {
                Some(t) if crate::slow_fs::is_slow(&t) => match slow.group_of_dev(dev) {
                    Ok(g) => {
                        tracing::info!(fs_type = %t, dev, "a slow filesystem below an include path: its directories are marked in a group of its own");
                        Some(g)
                    }
                    Err(e) => {
                        tracing::error!(fs_type = %t, dev, error = %e, "no group of its own for a slow filesystem: marked in the main group (a stall of its server delays other opens)");
                        None
                    }
                },
                Some(_) => None,
                None => {
                    tracing::warn!(dev, "filesystem of a directory not found in mountinfo: marked in the main group");
                    None
                }
            }
        });
        chosen.clone().unwrap_or_else(|| Arc::clone(&self.group))
    }

    /// The tracking backend in use, and why `auto` fell back to inotify if it did.
    pub fn tracking(&self) -> &Tracking {
        &self.tracking
    }

    /// Where the tracker thread reads tree events.
    pub(crate) fn source(&self) -> io::Result<Source> {
        Ok(match &self.tracker {
            Tracker::Inotify(fd) => Source::Inotify(fd.try_clone()?),
            Tracker::Fanotify(t) => Source::Fanotify(Arc::clone(&t.group)),
        })
    }

    /// The id of the tracked directory a FID record names (fanotify backend).
    pub fn lookup_fid(&self, rec: &FidInfo) -> Option<Wd> {
        match &self.tracker {
            Tracker::Fanotify(t) => t
                .ids
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .lookup(rec.fsid, &rec.handle),
            Tracker::Inotify(_) => None,
        }
    }

    /// Directories covered now.
    pub fn len(&self) -> usize {
        self.tree.len()
    }

    /// Whether nothing is covered.
    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// The counters.
    pub fn counts(&self) -> CoverageCounts {
        CoverageCounts {
            failed: self.failed.load(Relaxed),
            ..self.counts
        }
    }

    /// The include paths.
    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// Covers every directory under the include paths: [`place_marks`](Self::place_marks),
    /// then [`build_tree`](Self::build_tree).
    pub fn cover(&mut self) -> Result<(), CoverError> {
        self.place_marks()?;
        self.build_tree();
        Ok(())
    }

    /// Marks and watches every directory under the include paths, walking with one thread
    /// per core, and returns how many. From then on every directory is covered; the tree
    /// that tracking needs is built by [`build_tree`](Self::build_tree), which the daemon
    /// leaves to the tracker thread so that readiness does not wait for bookkeeping (inotify
    /// queues the events meanwhile). Fails only when inotify's watch budget runs out, with
    /// the number of directories the tree holds.
    pub fn place_marks(&mut self) -> Result<usize, CoverError> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(8));
        if let Err(limit) = self.cover_parallel(threads) {
            let needed = self.roots.iter().map(|r| count_dirs(r, &self.policy)).sum();
            return Err(CoverError::WatchLimit { needed, limit });
        }
        Ok(self.unbuilt.len())
    }

    /// Records what [`place_marks`](Self::place_marks) covered in the tree, parents first.
    pub fn build_tree(&mut self) {
        let started = std::time::Instant::now();
        let mut found = std::mem::take(&mut self.unbuilt);
        found.sort_by_cached_key(|f| f.path.components().count());
        for f in found {
            let inserted = match (f.parent, f.path.file_name()) {
                (Some(p), Some(name)) => self.tree.insert_child(p, name, f.wd, f.handle),
                _ => self.tree.insert_root(f.wd, f.path, f.handle),
            };
            self.counts.marked += u64::from(inserted);
        }
        tracing::debug!(
            directories = self.tree.len(),
            ms = started.elapsed().as_millis() as u64,
            "directory tree built"
        );
    }

    /// The start-up walk on `threads` threads. Why parallel: per directory the work is six
    /// system calls (open, inotify watch, fanotify mark, file handle, two getdents) and
    /// nothing else, so a second core nearly halves the time to full coverage.
    ///
    /// Workers share a queue of directories to visit and each keeps a list of what it
    /// covered, for [`build_tree`](Self::build_tree) to insert in order of depth, so every
    /// parent is in before its children. (Nobody receives while they walk: a receiving
    /// thread would compete with them for the cores.) A shared
    /// set of watch descriptors stops a walk that meets a directory twice (bind mounts).
    fn cover_parallel(&mut self, threads: usize) -> Result<(), u64> {
        let (jobs_tx, jobs_rx) = crossbeam_channel::unbounded::<(Option<Wd>, PathBuf)>();
        let walk = SharedWalk {
            pending: AtomicUsize::new(self.roots.len()),
            limit: AtomicU64::new(0),
            seen: Mutex::new(HashSet::new()),
        };
        for root in &self.roots {
            let _ = jobs_tx.send((None, root.clone()));
        }
        let this = &*self;
        let found: Vec<Found> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads.max(1))
                .map(|_| {
                    let (jobs_tx, jobs_rx, walk) = (jobs_tx.clone(), jobs_rx.clone(), &walk);
                    s.spawn(move || this.walk_worker(walk, &jobs_tx, &jobs_rx))
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap_or_default())
                .collect()
        });
        self.unbuilt = found;
        match walk.limit.load(Relaxed) {
            0 => Ok(()),
            limit => Err(limit),
        }
    }

    fn walk_worker(
        &self,
        walk: &SharedWalk,
        jobs_tx: &crossbeam_channel::Sender<(Option<Wd>, PathBuf)>,
        jobs_rx: &crossbeam_channel::Receiver<(Option<Wd>, PathBuf)>,
    ) -> Vec<Found> {
        let mut found = Vec::new();
        loop {
            let (parent, path) = match jobs_rx.recv_timeout(std::time::Duration::from_millis(1)) {
                Ok(job) => job,
                Err(_) if walk.pending.load(Acquire) == 0 => return found,
                Err(_) => continue,
            };
            if walk.limit.load(Relaxed) == 0 {
                found.extend(self.walk_one(walk, parent, path, jobs_tx));
            }
            walk.pending.fetch_sub(1, AcqRel);
        }
    }

    fn walk_one(
        &self,
        walk: &SharedWalk,
        parent: Option<Wd>,
        path: PathBuf,
        jobs_tx: &crossbeam_channel::Sender<(Option<Wd>, PathBuf)>,
    ) -> Option<Found> {
        let (dir, wd, pre) = match self.probe(&path) {
            Ok(Some(p)) => p,
            Ok(None) => return None,
            Err(limit) => {
                walk.limit.store(limit.max(1), Relaxed);
                return None;
            }
        };
        let first = walk
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(wd);
        if !first {
            return None;
        }
        let handle = self.mark_new(&path, wd, &dir, pre)?;
        let mut queue = |child| {
            walk.pending.fetch_add(1, AcqRel);
            let _ = jobs_tx.send((Some(wd), child));
        };
        self.subdirs(&dir, &path, &mut queue, None);
        Some(Found {
            parent,
            path,
            wd,
            handle,
        })
    }

    /// A directory `name` appeared in tracked directory `parent` (created, or moved in from
    /// outside): covers it and everything below it, and hands its files to `files`.
    pub fn add_child(&mut self, parent: Wd, name: &OsStr, files: FileSink<'_>) {
        let Some(path) = self.tree.path(parent).map(|p| p.join(name)) else {
            return;
        };
        if self.is_excluded(&path) {
            tracing::debug!(path = %path.display(), "new directory excluded, not covered");
            return;
        }
        if let Err(limit) = self.walk(Some(parent), path.clone(), Walk::New, files, None) {
            self.failed.fetch_add(1, Relaxed);
            tracing::error!(
                path = %path.display(),
                "new directory not covered: {}",
                crate::limits::watch_shortfall_message(self.tree.len() as u64 + 1, limit)
            );
        }
    }

    /// A directory moved from `from_parent/from_name` to `to_parent/to_name`, both inside the
    /// tree (the inotify cookie paired the two events).
    pub fn rename(&mut self, from: (Wd, &OsStr), to: (Wd, &OsStr), files: FileSink<'_>) {
        let Some(wd) = self.tree.child(from.0, from.1) else {
            // Not tracked at its old place (excluded there, or never seen): new to us.
            return self.add_child(to.0, to.1, files);
        };
        let excluded = self
            .tree
            .path(to.0)
            .map(|p| p.join(to.1))
            .map_or(true, |p| self.is_excluded(&p));
        if excluded || !self.tree.rename(wd, to.0, to.1) {
            self.uncover(wd);
        }
    }

    /// Directory `parent/name` left the tree (moved out; its `IN_MOVED_TO` never came):
    /// removes its marks and watches, and those of everything below it.
    pub fn move_out(&mut self, parent: Wd, name: &OsStr) {
        if let Some(wd) = self.tree.child(parent, name) {
            self.uncover(wd);
        }
    }

    /// Directory `parent/name` was deleted: forgets it (the kernel dropped its watch and
    /// marks with the inode).
    pub fn deleted(&mut self, parent: Wd, name: &OsStr) {
        if let Some(wd) = self.tree.child(parent, name) {
            self.watch_gone(wd);
        }
    }

    /// The kernel dropped what tracks `wd` (`IN_IGNORED`: deleted, unmounted, or removed by
    /// us; `FAN_DELETE_SELF`): forgets it and its subtree.
    pub fn watch_gone(&mut self, wd: Wd) {
        for (w, _) in self.tree.remove_subtree(wd) {
            self.forget(w);
        }
    }

    /// The path of a tracked directory.
    pub fn path(&self, wd: Wd) -> Option<PathBuf> {
        self.tree.path(wd)
    }

    /// Whether `wd` is an include path.
    pub fn is_root(&self, wd: Wd) -> bool {
        self.tree.path(wd).is_some_and(|p| self.roots.contains(&p))
    }

    /// Re-walks every include path after events were lost or malformed (inotify queue
    /// overflow, an unreadable fanotify event): covers
    /// what is new, re-places what moved, uncovers what is gone. No restart needed.
    pub fn resync(&mut self) {
        self.counts.resyncs += 1;
        let before = self.tree.len();
        let mut seen = HashSet::new();
        for root in self.roots.clone() {
            if let Err(limit) = self.walk(None, root, Walk::Revisit, &mut |_| {}, Some(&mut seen)) {
                tracing::error!(
                    "resync incomplete: {}",
                    crate::limits::watch_shortfall_message(self.tree.len() as u64 + 1, limit)
                );
            }
        }
        let stale: Vec<Wd> = self.tree.wds().filter(|w| !seen.contains(w)).collect();
        for wd in stale {
            self.uncover(wd);
        }
        tracing::warn!(
            before,
            after = self.tree.len(),
            "tracking events lost: tree re-walked and reconciled"
        );
    }

    /// Depth-first walk from `path` (a child of `parent`, or a root), recording in `seen`
    /// (when given) every directory tracked afterwards. `Err(limit)` when the inotify budget
    /// ran out.
    fn walk(
        &mut self,
        parent: Option<Wd>,
        path: PathBuf,
        mode: Walk,
        files: FileSink<'_>,
        mut seen: Option<&mut HashSet<Wd>>,
    ) -> Result<(), u64> {
        let mut stack = vec![(parent, path)];
        while let Some((parent, path)) = stack.pop() {
            let wd = self.visit(parent, &path, mode, &mut stack, files)?;
            if let (Some(seen), Some(wd)) = (seen.as_deref_mut(), wd) {
                seen.insert(wd);
            }
        }
        Ok(())
    }

    /// Covers one directory, then queues its subdirectories. Returns its watch descriptor
    /// when it is tracked afterwards.
    fn visit(
        &mut self,
        parent: Option<Wd>,
        path: &Path,
        mode: Walk,
        stack: &mut Vec<(Option<Wd>, PathBuf)>,
        files: FileSink<'_>,
    ) -> Result<Option<Wd>, u64> {
        let Some((dir, wd, pre)) = self.probe(path)? else {
            return Ok(None);
        };
        if self.tree.contains(wd) {
            if mode == Walk::New {
                return Ok(Some(wd));
            }
            // A resync: put it where it is now.
            if let (Some(p), Some(name)) = (parent, path.file_name()) {
                self.tree.rename(wd, p, name);
            }
        } else if !self.track_new(parent, path, wd, &dir, pre) {
            return Ok(None);
        } else {
            self.counts.marked += 1;
        }
        let files = (mode == Walk::New).then_some(files);
        self.subdirs(
            &dir,
            path,
            &mut |child| stack.push((Some(wd), child)),
            files,
        );
        Ok(Some(wd))
    }

    /// Opens a directory and starts tracking it: adds its inotify watch, or its fanotify
    /// tracking mark (then takes its file handle, which gives its id). `Ok(None)` (reported)
    /// when either fails; `Err(limit)` when inotify's budget is exhausted.
    fn probe(&self, path: &Path) -> Result<Option<(OwnedFd, Wd, Option<MarkHandle>)>, u64> {
        let dir = match open_dir(path) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                // Created and removed again before we got there.
                tracing::debug!(path = %path.display(), "directory gone before it was covered");
                return Ok(None);
            }
            Err(e) => {
                self.failure(path, "cannot open directory", &e);
                return Ok(None);
            }
        };
        let inotify = match &self.tracker {
            Tracker::Inotify(fd) => fd,
            Tracker::Fanotify(t) => return Ok(self.probe_fid(t, path, dir)),
        };
        match add_watch(inotify, &dir) {
            Ok(wd) => Ok(Some((dir, wd, None))),
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                Err(crate::limits::read_sysctl(crate::limits::INOTIFY_WATCHES_SYSCTL).unwrap_or(0))
            }
            Err(e) => {
                self.failure(path, "cannot watch directory", &e);
                Ok(None)
            }
        }
    }

    /// [`probe`](Self::probe) for the fanotify backend: tracking mark, handle, id.
    fn probe_fid(
        &self,
        t: &FidTracker,
        path: &Path,
        dir: OwnedFd,
    ) -> Option<(OwnedFd, Wd, Option<MarkHandle>)> {
        if let Err(e) = t.mark(dir.as_fd(), true) {
            self.failure(
                path,
                "cannot place fanotify mark (tracking group)",
                &io::Error::from(e),
            );
            return None;
        }
        let keyed = FileHandle::fid_from_fd(dir.as_fd()).and_then(|(handle, mount_id)| {
            let fsid = t.fsid(dir.as_fd(), mount_id)?;
            Ok((handle, mount_id, fsid))
        });
        match keyed {
            Ok((handle, mount_id, fsid)) => {
                self.remember_mount(mount_id, &dir);
                let wd = t.id_for((fsid, handle.clone()));
                Some((dir, wd, Some(MarkHandle { handle, mount_id })))
            }
            Err(e) => {
                let _ = t.mark(dir.as_fd(), false);
                self.failure(path, "cannot take the directory's file handle", &e);
                None
            }
        }
    }

    /// Hands every subdirectory of `dir` not excluded to `push`, and its regular files to
    /// `files` when given.
    fn subdirs(
        &self,
        dir: &OwnedFd,
        path: &Path,
        push: &mut dyn FnMut(PathBuf),
        mut files: Option<FileSink<'_>>,
    ) {
        read_entries(dir, |name, kind| match kind {
            FileType::Directory => {
                let child = path.join(name);
                if !self.is_excluded(&child) {
                    push(child);
                }
            }
            FileType::RegularFile => {
                if let Some(f) = files.as_mut() {
                    f(&path.join(name));
                }
            }
            _ => {}
        })
        .unwrap_or_else(|e| self.failure(path, "cannot read directory", &e));
    }

    /// Marks a directory not tracked yet and records it. False (and nothing left behind)
    /// when it cannot be marked.
    fn track_new(
        &mut self,
        parent: Option<Wd>,
        path: &Path,
        wd: Wd,
        dir: &OwnedFd,
        pre: Option<MarkHandle>,
    ) -> bool {
        let Some(handle) = self.mark_new(path, wd, dir, pre) else {
            return false;
        };
        let inserted = match (parent, path.file_name()) {
            (Some(p), Some(name)) => self.tree.insert_child(p, name, wd, handle),
            _ => self.tree.insert_root(wd, path.to_path_buf(), handle),
        };
        if !inserted {
            // The parent left the tree meanwhile: nothing should cover this directory.
            let _ = self.unmark_fd(dir);
            self.untrack(wd);
        }
        inserted
    }

    /// Stops tracking `wd` whose directory is still there (its fanotify tracking mark, if
    /// any, is removed by [`unmark_fd`](Self::unmark_fd)): removes the inotify watch, or
    /// forgets the id.
    fn untrack(&self, wd: Wd) {
        match &self.tracker {
            Tracker::Inotify(fd) => {
                let _ = inotify::remove_watch(fd, wd);
            }
            Tracker::Fanotify(t) => t.forget(wd),
        }
    }

    /// Forgets `wd` whose tracking the kernel already dropped (deleted directory).
    fn forget(&self, wd: Wd) {
        if let Tracker::Fanotify(t) = &self.tracker {
            t.forget(wd);
        }
    }

    /// Places the enforcement mark on a directory just tracked and takes its file handle
    /// (unless `pre`, the fanotify backend, already holds it). `None` (reported, tracking
    /// undone) when the mark cannot be placed.
    fn mark_new(
        &self,
        path: &Path,
        wd: Wd,
        dir: &OwnedFd,
        pre: Option<MarkHandle>,
    ) -> Option<Option<MarkHandle>> {
        if let Err(e) = self.group_of(dir).mark_raw(
            libc::FAN_MARK_ADD,
            MarkKind::Inode,
            MarkFlags::empty(),
            self.mask,
            Some(dir.as_fd()),
            None,
        ) {
            self.failure(path, "cannot place fanotify mark", &io::Error::from(e));
            if let Tracker::Fanotify(t) = &self.tracker {
                let _ = t.mark(dir.as_fd(), false);
            }
            self.untrack(wd);
            return None;
        }
        if pre.is_some() {
            return Some(pre);
        }
        Some(self.handle_of(dir, path))
    }

    /// Keeps an fd on mount `mount_id` for `open_by_handle_at`.
    fn remember_mount(&self, mount_id: i32, dir: &OwnedFd) {
        let mut mounts = self.mounts.lock().unwrap_or_else(|p| p.into_inner());
        if let std::collections::hash_map::Entry::Vacant(e) = mounts.entry(mount_id) {
            if let Ok(fd) = dir.try_clone() {
                e.insert(fd);
            }
        }
    }

    fn handle_of(&self, dir: &OwnedFd, path: &Path) -> Option<MarkHandle> {
        match FileHandle::from_fd(dir.as_fd()) {
            Ok((handle, mount_id)) => {
                self.remember_mount(mount_id, dir);
                Some(MarkHandle { handle, mount_id })
            }
            Err(e) => {
                if !self.warned_no_handle.swap(true, Relaxed) {
                    tracing::warn!(
                        path = %path.display(),
                        error = %e,
                        "filesystem gives no file handles: marks of directories moved out of \
                         the tree cannot be removed there"
                    );
                }
                None
            }
        }
    }

    /// Stops covering `wd` and its subtree: removes marks (through file handles) and watches.
    fn uncover(&mut self, wd: Wd) {
        for (w, handle) in self.tree.remove_subtree(wd) {
            self.untrack(w);
            if let Some(h) = handle {
                match self.unmark_handle(&h) {
                    Ok(()) => self.counts.unmarked += 1,
                    // The directory no longer exists: its mark went with it.
                    Err(e) if e.raw_os_error() == Some(libc::ESTALE) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot remove the mark of a directory that left the tree")
                    }
                }
            }
        }
    }

    fn unmark_handle(&self, h: &MarkHandle) -> io::Result<()> {
        let fd = {
            let mounts = self.mounts.lock().unwrap_or_else(|p| p.into_inner());
            let mount = mounts
                .get(&h.mount_id)
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no fd for this mount"))?;
            // Not O_PATH: fanotify_mark refuses O_PATH fds as dirfd (EBADF).
            h.handle
                .open(mount.as_fd(), libc::O_RDONLY | libc::O_DIRECTORY)?
        };
        self.unmark_fd(&fd)
    }

    /// Removes the enforcement mark (and the fanotify tracking mark) of an open directory.
    fn unmark_fd(&self, fd: &OwnedFd) -> io::Result<()> {
        let enforcement = match self.group_of(fd).mark_raw(
            libc::FAN_MARK_REMOVE,
            MarkKind::Inode,
            MarkFlags::empty(),
            self.mask,
            Some(fd.as_fd()),
            None,
        ) {
            Ok(()) => Ok(()),
            Err(e) if e.errno() == libc::ENOENT => Ok(()),
            Err(e) => Err(e.into()),
        };
        if let Tracker::Fanotify(t) = &self.tracker {
            t.mark(fd.as_fd(), false)?;
        }
        enforcement
    }

    fn is_excluded(&self, dir: &Path) -> bool {
        self.policy.excludes_dir(dir)
    }

    fn failure(&self, path: &Path, what: &str, e: &io::Error) {
        self.failed.fetch_add(1, Relaxed);
        tracing::warn!(path = %path.display(), error = %e, "{what}; its siblings are still covered");
    }
}

fn add_watch(inotify: &OwnedFd, dir: &OwnedFd) -> io::Result<Wd> {
    let link = format!("/proc/self/fd/{}", dir.as_raw_fd());
    inotify::add_watch(inotify, link.as_str(), WATCH_FLAGS).map_err(io::Error::from)
}

/// The backend for `mode` given what probing fanotify gave (`None`: not probed): the
/// fanotify group when it is to be used, and the [`Tracking`] to report. A forced
/// `Fanotify` that failed is an error; `Auto` falls back with the reason.
fn choose<G>(
    mode: TrackingMode,
    probed: Option<Result<G, String>>,
) -> Result<(Option<G>, Tracking), CoverError> {
    match (mode, probed) {
        (TrackingMode::Inotify, _) | (_, None) => Ok((
            None,
            Tracking {
                backend: Backend::Inotify,
                fallback: None,
            },
        )),
        (_, Some(Ok(g))) => Ok((
            Some(g),
            Tracking {
                backend: Backend::Fanotify,
                fallback: None,
            },
        )),
        (TrackingMode::Fanotify, Some(Err(why))) => Err(CoverError::FanotifyUnavailable(why)),
        (TrackingMode::Auto, Some(Err(why))) => Ok((
            None,
            Tracking {
                backend: Backend::Inotify,
                fallback: Some(why),
            },
        )),
    }
}

/// Opens a directory without following a final symlink (a symlinked directory is not part
/// of the tree, as in clamscan's walk).
fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io::Error::from)
}

/// Calls `f(name, type)` for every entry of the open directory but `.` and `..`. Entries
/// whose type the filesystem does not report are `stat`ed.
fn read_entries(dir: &OwnedFd, mut f: impl FnMut(&OsStr, FileType)) -> io::Result<()> {
    let mut buf = [MaybeUninit::<u8>::uninit(); 16 * 1024];
    let mut entries = RawDir::new(dir, &mut buf);
    while let Some(entry) = entries.next() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let mut kind = entry.file_type();
        if kind == FileType::Unknown {
            kind = rustix::fs::statat(
                dir,
                entry.file_name(),
                rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            )
            .map(|st| FileType::from_raw_mode(st.st_mode))
            .unwrap_or(FileType::Unknown);
        }
        f(OsStr::from_bytes(name), kind);
    }
    Ok(())
}

/// Counts the directories `cover` would track under `root` (for the shortfall message).
pub fn count_dirs(root: &Path, policy: &Policy) -> u64 {
    let mut count = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let Ok(dir) = open_dir(&path) else { continue };
        count += 1;
        let _ = read_entries(&dir, |name, kind| {
            if kind == FileType::Directory {
                let child = path.join(name);
                if !policy.excludes_dir(&child) {
                    stack.push(child);
                }
            }
        });
    }
    count
}

/// Marks the filesystem or mount (`kind`) of each path as a whole, or (`MarkKind::Inode`,
/// `OnAccessDisableDDD yes`) each path itself and not what is below it. Returns how many were
/// marked; each failure is reported and the others still marked.
pub fn cover_whole(group: &Group, kind: MarkKind, mask: Mask, paths: &[PathBuf]) -> usize {
    paths
        .iter()
        .filter(|path| match group.add_mark(kind, mask, path) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(path = %path.display(), ?kind, error = %e, "cannot place fanotify mark");
                false
            }
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_choice_and_fallback_reason() {
        let why = || Err::<(), _>("/x: filesystem without file handles (EOPNOTSUPP)".to_owned());
        let (g, t) = choose(TrackingMode::Auto, Some(Ok(()))).unwrap();
        assert_eq!(
            (g, t.backend, t.fallback),
            (Some(()), Backend::Fanotify, None)
        );
        let (g, t) = choose(TrackingMode::Auto, Some(why())).unwrap();
        assert_eq!(g, None);
        assert_eq!(t.backend, Backend::Inotify);
        assert_eq!(
            t.to_string(),
            "inotify (fanotify unavailable: /x: filesystem without file handles (EOPNOTSUPP))"
        );
        let (g, t) = choose::<()>(TrackingMode::Inotify, None).unwrap();
        assert_eq!((g, t.backend, t.fallback), (None, Backend::Inotify, None));
        let e = choose(TrackingMode::Fanotify, Some(why())).unwrap_err();
        assert_eq!(
            e.to_string(),
            "OnAccessTracking fanotify: unavailable: /x: filesystem without file handles (EOPNOTSUPP)"
        );
        let (_, t) = choose(TrackingMode::Fanotify, Some(Ok(()))).unwrap();
        assert_eq!(t.to_string(), "fanotify");
    }
}
