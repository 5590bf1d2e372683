//! Filesystem scope's marks, placed at start and kept in step with the mount table.
//!
//! At start: the [`Plan`](crate::mounts::Plan) — ignore marks on mounts that cannot reach an
//! include path first (a moment of extra events is harmless, the reverse would not be), then
//! one `FAN_MARK_FILESYSTEM` mark per filesystem. Then a thread watches
//! `/proc/self/mountinfo` (the kernel flags every change of the mount table with
//! `POLLPRI`) and applies each [`Update`](crate::mounts::Update): a filesystem mounted below an
//! include path is marked, a new mount elsewhere is ignored, an ignored mount moved towards an
//! include path (`mount --move`) is no longer ignored. Mounting is a privileged act, and the
//! mark follows it within a poll wake-up; the window between the two is documented.

use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;

use moat_fanotify::{Group, MarkFlags, MarkKind, Mask};

use crate::locate::Locator;
use crate::mounts::{self, Filesystem, Plan, Update};
use crate::slow_fs::SlowGroups;
use crate::stop::Stop;

/// The marks of filesystem scope. See the module docs.
pub struct FilesystemCoverage {
    group: Arc<Group>,
    roots: Vec<PathBuf>,
    /// The events the filesystem marks carry.
    mask: Mask,
    /// The open events a mount ignore mark suppresses (never close-after-write, which keeps
    /// the clean caches honest whichever mount a file is written through).
    ignore: Mask,
    /// Filesystems marked (at start and later).
    marked: Vec<Filesystem>,
    /// Ids of the mounts with an ignore mark.
    ignored: Vec<u32>,
    /// Where files live: its anchors follow the plan.
    locator: Arc<Locator>,
    /// Extra anchors that do not come from the mount table (`OnAccessMountPath`).
    extra_anchors: Vec<PathBuf>,
    /// Where slow filesystems (FUSE, network) are marked instead of `group` (review F2).
    slow: Option<Arc<SlowGroups>>,
}

impl FilesystemCoverage {
    /// Places the marks of `plan` for `roots`.
    /// The locator's anchors are set to the plan's paths (plus `extra_anchors`). Slow
    /// filesystems are marked in `slow`'s groups when given.
    pub fn cover(
        group: Arc<Group>,
        roots: Vec<PathBuf>,
        mask: Mask,
        ignore: Mask,
        locator: Arc<Locator>,
        extra_anchors: Vec<PathBuf>,
        slow: Option<Arc<SlowGroups>>,
    ) -> Self {
        let plan: Plan = mounts::plan_here(&roots);
        let mut cov = FilesystemCoverage {
            group,
            roots,
            mask,
            ignore,
            marked: Vec::new(),
            ignored: Vec::new(),
            locator,
            extra_anchors,
            slow,
        };
        cov.set_anchors(&plan.filesystems);
        for (id, path) in &plan.ignored_mounts {
            cov.ignore_mount(*id, path);
        }
        for fs in &plan.filesystems {
            cov.mark(fs);
        }
        cov
    }

    /// Filesystem marks placed (at start and later).
    pub fn filesystems(&self) -> usize {
        self.marked.len()
    }

    /// `scope=filesystem (ext4 /srv, xfs /srv/data); ignored mounts=N` for the startup line.
    pub fn summary(&self) -> String {
        let fs: Vec<String> = self
            .marked
            .iter()
            .map(|f| format!("{} {}", f.fs_type, f.path.display()))
            .collect();
        let slow = self.slow.as_ref().map_or(0, |s| s.groups());
        format!(
            "scope=filesystem ({}); ignored mounts={}; slow-filesystem groups={slow}",
            fs.join(", "),
            self.ignored.len()
        )
    }

    fn set_anchors(&self, filesystems: &[Filesystem]) {
        let mut paths: Vec<PathBuf> = filesystems.iter().map(|f| f.path.clone()).collect();
        paths.extend(self.extra_anchors.iter().cloned());
        self.locator.set(&paths);
    }

    fn mark(&mut self, fs: &Filesystem) {
        let placed = match &self.slow {
            Some(slow) if crate::slow_fs::is_slow(&fs.fs_type) => slow.mark(fs, self.mask),
            _ => self
                .group
                .add_mark(MarkKind::Filesystem, self.mask, &fs.path)
                .map_err(|e| e.to_string()),
        };
        match placed {
            Ok(()) => {
                if !self.marked.contains(fs) {
                    self.marked.push(fs.clone());
                }
                tracing::debug!(path = %fs.path.display(), fs_type = %fs.fs_type, "filesystem marked");
            }
            Err(e) => tracing::warn!(path = %fs.path.display(), error = %e,
                "cannot place the filesystem mark: accesses there are not covered"),
        }
    }

    fn ignore_mount(&mut self, id: u32, path: &std::path::Path) {
        // The kernel wants IGNORED_SURV_MODIFY on mount ignore marks (they are about where,
        // not what, so no write could make them stale).
        let flags = MarkFlags::IGNORE | MarkFlags::IGNORED_SURV_MODIFY;
        match self
            .group
            .add_mark_with(MarkKind::Mount, flags, self.ignore, path)
        {
            Ok(()) => {
                self.ignored.push(id);
                tracing::debug!(mount = %path.display(), "mount cannot reach an include path: ignored");
            }
            Err(e) => tracing::debug!(mount = %path.display(), error = %e,
                "cannot ignore mount (its accesses are decided by path)"),
        }
    }

    fn unignore_mount(&mut self, id: u32, path: &std::path::Path) {
        self.ignored.retain(|i| *i != id);
        let r = self.group.mark_raw(
            libc::FAN_MARK_REMOVE,
            MarkKind::Mount,
            MarkFlags::IGNORE | MarkFlags::IGNORED_SURV_MODIFY,
            self.ignore,
            None,
            Some(path),
        );
        match r {
            Ok(()) => {
                tracing::info!(mount = %path.display(), "mount moved towards an include path: no longer ignored")
            }
            Err(e) => tracing::error!(mount = %path.display(), error = %e,
                "cannot remove the ignore mark of a mount moved towards an include path: opens through it are not scanned"),
        }
    }

    /// Applies what a change of the mount table asks.
    pub fn apply(&mut self, u: Update) {
        for (id, path) in &u.unignore {
            self.unignore_mount(*id, path);
        }
        for fs in &u.mark {
            if !self.marked.contains(fs) {
                tracing::info!(path = %fs.path.display(), fs_type = %fs.fs_type, "filesystem mounted below an include path: marked");
            }
            self.mark(fs);
        }
        self.set_anchors(&u.mark);
        for (id, path) in &u.ignore {
            self.ignore_mount(*id, path);
        }
        for id in &u.gone {
            self.ignored.retain(|i| i != id);
        }
    }

    fn refresh(&mut self) {
        match mounts::read_here() {
            Ok(table) => {
                let devs: Vec<(u32, u32)> = self.marked.iter().filter_map(|f| f.dev).collect();
                let u = mounts::update(&self.roots, &table, &devs, &self.ignored);
                self.apply(u);
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the changed mount table"),
        }
    }

    /// Watches the mount table until `stop`, applying every change. An error that stops
    /// the watching is returned: mounts made afterwards would go uncovered, so the daemon
    /// stops loudly (review F12).
    pub fn run(mut self, stop: &Stop) -> Result<(), String> {
        let file = std::fs::File::open(mounts::MOUNTINFO)
            .map_err(|e| format!("cannot watch the mount table: {e}"))?;
        loop {
            let mut p = [
                libc::pollfd {
                    fd: file.as_raw_fd(),
                    events: libc::POLLPRI,
                    revents: 0,
                },
                libc::pollfd {
                    fd: stop.fd().as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: two valid pollfds.
            let r = unsafe { libc::poll(p.as_mut_ptr(), 2, -1) };
            if r < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(format!("poll on the mount table failed: {e}"));
            }
            if p[1].revents != 0 || stop.is_triggered() {
                return Ok(());
            }
            if p[0].revents & (libc::POLLPRI | libc::POLLERR) != 0 {
                self.refresh();
            }
        }
    }
}
