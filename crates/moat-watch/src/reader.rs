//! The fanotify reader thread: the one thread that reads events, decides the cheap cases and
//! hands the rest to the worker pool.
//!
//! It must never touch a watched file (it would wait on its own permission event forever)
//! and never wait on anything but the fanotify fd and the stop pipe. So per event it does
//! only: read the fd's path from `/proc/self/fd` (procfs cannot carry permission marks), the
//! accessor's uid when a rule needs it (`PIDFD_GET_INFO`, procfs as the fallback), `fstat`
//! the event fd (raises no event), [`Policy::decide`] (no I/O), and either answer at once or
//! `dup` the fd and submit (an unbounded lock-free queue: never blocks). Answer first, log
//! after. A close-after-write only invalidates the file's entries in both clean caches
//! (one `fstat`, one mark removal) unless extra scanning also wants it scanned.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use moat_fanotify::{Event, EventBuffer, Group, Mask, PermissionEvent};
use moat_guard::{AccessFacts, AllowReason, Decision, Policy, Response, VerdictCache, WorkerPool};

use crate::kernel_cache::KernelCache;
use crate::locate::{Locator, Place};
use crate::stop::{Stop, Woken};
use crate::verdict::{Access, AccessKind, PermissionSink, ReportSink, Reporter};

/// Fault injection for the supervision test: `MOAT_TEST_FAULT=reader-poll` makes the
/// reader's first `poll` fail.
pub const FAULT_ENV: &str = "MOAT_TEST_FAULT";

/// How long the reader polls for more events after a batch before it sleeps.
const SPIN: std::time::Duration = std::time::Duration::from_micros(200);

/// Everything the reader thread needs.
pub struct Reader {
    /// The enforcement (or, notify-only, notification) group.
    pub group: Arc<Group>,
    /// The pre-scan policy.
    pub policy: Arc<Policy>,
    /// Where scans go.
    pub pool: Arc<WorkerPool>,
    /// Logging and counters.
    pub reporter: Arc<Reporter>,
    /// The decision when an event cannot even be handed to a worker.
    pub on_error: Response,
    /// This process.
    pub own_pid: i32,
    /// The userspace verdict cache (entries are forgotten on close-after-write).
    pub cache: Arc<VerdictCache>,
    /// The kernel clean cache, when in use (ignore marks removed on close-after-write).
    pub kernel_cache: Option<Arc<KernelCache>>,
    /// `OnAccessEvents close` or `OnAccessExtraScanning`: files closed after writing are
    /// scanned and reported.
    pub scan_close_write: bool,
    /// Where an event's file lives, whatever mount it was opened through.
    pub locator: Arc<Locator>,
    /// Filesystem scope: directories found outside the include paths, offered for quieting.
    pub quiet: Option<crate::quiet::Quieter>,
    /// With systemd's watchdog: beaten on every turn of the loop, whose `poll` then wakes at
    /// least every [`Heartbeat::tick`](crate::watchdog::Heartbeat::tick) (see [`crate::watchdog`]).
    pub heartbeat: Option<Arc<crate::watchdog::Heartbeat>>,
    /// `OnAccessExcludeExe`: accessors whose program is excluded.
    pub exes: Arc<crate::exe::ExeExclusions>,
}

impl Reader {
    /// Reads and dispatches events until `stop`; then removes every mark (no new events)
    /// and allows what is still queued. An error that ends the loop (a failed `poll`) is
    /// returned after that clean-up, so the daemon stops loudly instead of running on
    /// without a reader (review F12).
    pub fn run(self, stop: &Stop) -> Result<(), String> {
        let mut buf = EventBuffer::with_len(256 * 1024);
        let mut fault = std::env::var_os(FAULT_ENV).is_some_and(|v| v == "reader-poll");
        let mut failed = Ok(());
        let tick = self.heartbeat.as_ref().map(|h| h.tick());
        loop {
            if let Some(h) = &self.heartbeat {
                h.wedge_if_due(stop);
                h.beat();
            }
            if self.spin(&mut buf, stop) {
                continue;
            }
            let polled = match std::mem::take(&mut fault) {
                true => Err(std::io::Error::other("fault injected by MOAT_TEST_FAULT")),
                false => stop.poll_with(self.group.as_fd(), tick),
            };
            match polled {
                Ok(Woken::Stop) => break,
                Ok(_) => {}
                Err(e) => {
                    failed = Err(format!("poll on the fanotify fd failed: {e}"));
                    break;
                }
            }
            self.read_batch(&mut buf);
        }
        for kind in [
            moat_fanotify::MarkKind::Inode,
            moat_fanotify::MarkKind::Mount,
            moat_fanotify::MarkKind::Filesystem,
        ] {
            if let Err(e) = self.group.flush(kind) {
                tracing::warn!(error = %e, ?kind, "cannot remove the fanotify marks");
            }
        }
        self.drain(&mut buf);
        failed
    }

    /// Polls the (non-blocking) group for up to [`SPIN`] before the caller sleeps in
    /// `poll(2)`; true when a batch was read. Why: waking a sleeping reader costs more than
    /// most verdicts (tens of microseconds on a VM, where an idle vCPU must be woken), and
    /// opens come in bursts; spinning a little after each batch answers the next event of
    /// a burst without that cost. It yields the CPU between tries, and stops at once when a
    /// stop is requested.
    fn spin(&self, buf: &mut EventBuffer, stop: &Stop) -> bool {
        let until = std::time::Instant::now() + SPIN;
        while std::time::Instant::now() < until {
            match self.group.read_events(buf) {
                Ok(events) => {
                    events.for_each(|ev| self.dispatch(ev));
                    return true;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return false,
            }
            if stop.is_triggered() {
                return false;
            }
            std::thread::yield_now();
        }
        false
    }

    fn read_batch(&self, buf: &mut EventBuffer) {
        match self.group.read_events(buf) {
            Ok(events) => events.for_each(|ev| self.dispatch(ev)),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => {
                // Every delimitable event of a malformed batch was already allowed.
                self.reporter.stats.read_errors.fetch_add(1, Relaxed);
                tracing::error!(error = %e, "reading fanotify events failed");
            }
        }
    }

    /// At shutdown (marks already gone or going): allow whatever is still queued, so no
    /// opener waits on a daemon that has stopped listening.
    fn drain(&self, buf: &mut EventBuffer) {
        while let Ok(events) = self.group.read_events(buf) {
            if events.len() == 0 {
                break;
            }
            for ev in events {
                if let Ok(perm) = ev.into_permission() {
                    let _ = perm.allow();
                    self.reporter.stats.drained.fetch_add(1, Relaxed);
                }
            }
        }
    }

    fn dispatch(&self, ev: Event) {
        if ev.mask().contains(Mask::Q_OVERFLOW) {
            // Cannot happen with FAN_UNLIMITED_QUEUE; if it does, accesses went unchecked.
            tracing::error!("fanotify queue overflow: some accesses were allowed unchecked");
            return;
        }
        self.reporter.stats.count_event(ev.mask());
        match ev.into_permission() {
            Ok(perm) => self.permission(perm),
            Err(ev) => self.notification(ev),
        }
    }

    fn permission(&self, perm: PermissionEvent) {
        if perm.pid() == self.own_pid {
            // Our own accesses (scans, walks) first and without any lookup.
            let r = perm.allow();
            self.reporter.stats.allowed(AllowReason::OwnPid);
            self.answer_failed(r.err());
            return;
        }
        let kind = kind_of(perm.mask());
        let Some(fd) = perm.fd() else { return };
        let (access, decision) = self.decide(fd, perm.pid(), pidfd_of(&perm), kind);
        match decision {
            Decision::Allow(reason) => {
                // Through the event's fd, which answering closes: a few µs before the answer,
                // on the first open of a large file only.
                if reason == AllowReason::TooLarge {
                    if let (Some(kc), Some(max)) = (&self.kernel_cache, self.policy.max_file_size())
                    {
                        kc.too_large(fd, max);
                    }
                }
                let r = perm.allow();
                self.reporter.stats.allowed(reason);
                self.answer_failed(r.err());
                log_allowed(&access, reason);
            }
            Decision::Scan => match dup(fd) {
                Ok(file) => {
                    self.reporter.stats.submitted.fetch_add(1, Relaxed);
                    // The queue is fair between uids (one user's flood cannot hold every
                    // worker): the uid is needed for every scan (PIDFD_GET_INFO, ~1 µs).
                    let owner = access
                        .uid
                        .or_else(|| moat_guard::uid_of_pid(access.pid).ok())
                        .unwrap_or(moat_guard::NO_OWNER);
                    let sink = PermissionSink::new(perm, access, Arc::clone(&self.reporter));
                    self.pool.submit_for(file, sink, owner);
                }
                Err(e) => {
                    let r = perm.respond(crate::verdict::kernel_response(self.on_error));
                    self.reporter.stats.dup_errors.fetch_add(1, Relaxed);
                    self.answer_failed(r.err());
                    tracing::warn!(path = %access.path.display(), error = %e,
                        response = ?self.on_error, "cannot hand the file to a worker");
                }
            },
        }
    }

    /// Notify-only opens and close-after-write events: scanned and reported, never blocked.
    /// A close-after-write first invalidates both clean caches for the file.
    fn notification(&self, mut ev: Event) {
        if ev.pid() == self.own_pid {
            return;
        }
        if ev.mask().contains(Mask::CLOSE_WRITE) {
            if let Some(fd) = ev.fd() {
                self.written(fd);
            }
            let opened = ev.mask().intersects(Mask::OPEN | Mask::OPEN_EXEC);
            if !self.scan_close_write && !opened {
                return;
            }
        }
        let kind = kind_of(ev.mask());
        let Some(fd) = ev.fd() else { return };
        let (access, decision) = self.decide(fd, ev.pid(), pidfd_of(&ev), kind);
        if let Decision::Allow(reason) = decision {
            self.reporter.stats.allowed(reason);
            log_allowed(&access, reason);
            return;
        }
        if let Some(fd) = ev.take_fd() {
            self.reporter.stats.reported_scans.fetch_add(1, Relaxed);
            // The reactions (quarantine) act on the scanned inode: a second fd for them.
            let keep = self
                .reporter
                .reactions
                .as_ref()
                .and_then(|_| fd.try_clone().ok());
            let sink =
                ReportSink::with_file(access, Arc::clone(&self.reporter), keep.map(File::from));
            self.pool.submit(File::from(fd), sink);
        }
    }

    /// The file was written (maybe through a shared mmap, which neither drops the kernel's
    /// ignore mark nor need change what `fstat` says): neither cache may vouch for it now.
    fn written(&self, fd: BorrowedFd<'_>) {
        self.reporter.stats.close_writes.fetch_add(1, Relaxed);
        let inode = rustix::fs::fstat(fd).ok().map(|st| (st.st_dev, st.st_ino));
        let dropped = self
            .kernel_cache
            .as_ref()
            .is_some_and(|kc| kc.forget(fd, inode));
        let forgot = inode.is_some_and(|i| self.cache.forget(i));
        if dropped || forgot {
            tracing::debug!(
                kernel = dropped,
                userspace = forgot,
                "clean cache entry dropped after a write"
            );
        }
    }

    /// Gathers the facts of an access (procfs, `statx` and, for an alias mount, an `O_PATH`
    /// open by handle: nothing that raises an event) and applies the policy. Path rules only
    /// see a path drawn through an include path's own mount ([`Locator::place`]); a file
    /// with no such place is scanned unless a rule independent of place allows it.
    fn decide(
        &self,
        fd: BorrowedFd<'_>,
        pid: i32,
        pidfd: Option<BorrowedFd<'_>>,
        kind: AccessKind,
    ) -> (Access, Decision) {
        let uid = if self.policy.needs_uid() {
            moat_guard::uid_of_pid(pid).ok()
        } else {
            None
        };
        let st = crate::locate::stat_fd(fd).ok();
        let size = st.map(|s| s.size);
        let place = match &st {
            Some(st) => self.locator.place(fd, st),
            None => Place::Unsure("no stat"),
        };
        let (path, decision) = match place {
            Place::At(p) => {
                let d = self.policy.decide(&AccessFacts {
                    pid,
                    uid,
                    path: &p,
                    size,
                });
                (p, d)
            }
            Place::Unsure(why) => {
                self.reporter.stats.unplaced.fetch_add(1, Relaxed);
                tracing::trace!(
                    why,
                    "no trustworthy place for the event's file; scanning unless a rule allows it"
                );
                let p = moat_fanotify::fd_path(fd).unwrap_or_else(|_| PathBuf::from("?"));
                (p, self.policy.decide_unplaced(pid, uid, size))
            }
        };
        // Last: the only check that reads procfs per process, so only for what would be
        // scanned.
        let decision = match decision {
            Decision::Scan if self.exes.excluded(pid, pidfd).is_some() => {
                Decision::Allow(AllowReason::ExcludedExe)
            }
            d => d,
        };
        if decision == Decision::Allow(AllowReason::OutsideIncludes) {
            if let Some(q) = &self.quiet {
                q.offer(&path);
            }
        }
        let access = Access {
            path,
            pid,
            uid,
            kind,
        };
        (access, decision)
    }

    fn answer_failed(&self, e: Option<moat_fanotify::Error>) {
        if let Some(e) = e {
            self.reporter.stats.answer_errors.fetch_add(1, Relaxed);
            tracing::error!(error = %e, "cannot answer a permission event (allowed on drop)");
        }
    }
}

/// After the answer: an exclusion by executable at debug level (an administrator's choice
/// worth seeing with LogVerbose), the routine reasons at trace.
fn log_allowed(access: &Access, reason: AllowReason) {
    if reason == AllowReason::ExcludedExe {
        tracing::debug!(path = %access.path.display(), pid = access.pid,
            "allowed unscanned: the accessor runs an excluded executable (OnAccessExcludeExe)");
    } else {
        tracing::trace!(path = %access.path.display(), ?reason, "allowed without scan");
    }
}

/// The accessor's pidfd, when the group reports them (`FAN_REPORT_PIDFD`).
fn pidfd_of(ev: &Event) -> Option<BorrowedFd<'_>> {
    ev.info().iter().find_map(|i| match i {
        moat_fanotify::Info::Pidfd(moat_fanotify::Pidfd::Fd(fd)) => Some(fd.as_fd()),
        _ => None,
    })
}

fn kind_of(mask: Mask) -> AccessKind {
    if mask.intersects(Mask::OPEN_EXEC_PERM | Mask::OPEN_EXEC) {
        AccessKind::Exec
    } else if mask.contains(Mask::CLOSE_WRITE) {
        AccessKind::CloseWrite
    } else {
        AccessKind::Open
    }
}

/// A second fd for the worker: the event's own fd names the event in the answer and must
/// stay open until then, so the worker scans through a duplicate (same open file, offset 0).
fn dup(fd: BorrowedFd<'_>) -> std::io::Result<File> {
    Ok(File::from(fd.try_clone_to_owned()?))
}
