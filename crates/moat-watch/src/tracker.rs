//! The tree tracker thread: turns tree events into coverage changes, from inotify or from
//! the fanotify tracking group (see [`crate::fid`] for the fanotify events and their
//! translation; a rename there is one event, so nothing is paired).
//!
//! inotify:
//!
//! | inotify event (on a directory entry)      | coverage change                          |
//! |-------------------------------------------|------------------------------------------|
//! | `IN_CREATE` of a directory                | cover it and everything below it         |
//! | `IN_MOVED_FROM` + `IN_MOVED_TO`, one cookie | rename inside the tree (marks stay)    |
//! | `IN_MOVED_TO` alone                       | moved in from outside: cover the subtree |
//! | `IN_MOVED_FROM` alone                     | moved out: remove its marks and watches  |
//! | `IN_DELETE` of a directory, `IN_IGNORED`  | forget it (the kernel dropped its marks) |
//! | `IN_Q_OVERFLOW`                           | re-walk and reconcile the whole tree     |
//!
//! A move's two halves are paired by cookie. A `MOVED_FROM` still unpaired when the queue is
//! drained is taken as a move out of the tree; should its `MOVED_TO` arrive later after all,
//! it is an unpaired `MOVED_TO` and the subtree is covered again, so a misjudged race costs
//! work, never coverage.
//!
//! With `OnAccessExtraScanning`, files moved in and the files of directories new to the tree
//! go to the [`FileSink`] (which scans and reports them).

use std::ffi::{OsStr, OsString};
use std::mem::MaybeUninit;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::inotify::{ReadFlags, Reader};

use moat_fanotify::{EventBuffer, Group};

use crate::coverage::{DirectoryCoverage, Source};
use crate::fid::FidChange;
use crate::stop::{Stop, Woken};
use crate::tree::Wd;

/// Receives files to scan (extra scanning).
pub type FileSink = Box<dyn FnMut(&Path) + Send>;

/// One inotify event, copied out of the read buffer.
#[derive(Debug)]
struct Change {
    wd: Wd,
    flags: ReadFlags,
    cookie: u32,
    name: Option<OsString>,
}

/// Builds the coverage's tree (events queue in inotify meanwhile), then applies events
/// until `stop`, and returns the coverage (so the caller can report on it).
/// `files` receives files to scan when extra scanning is on (`None`: off).
pub fn run(
    mut coverage: DirectoryCoverage,
    stop: &Stop,
    mut files: Option<FileSink>,
) -> DirectoryCoverage {
    coverage.build_tree();
    // A second fd on the same inotify instance (or the group): reading borrows it while
    // `coverage` changes.
    let fd = match coverage.source() {
        Ok(Source::Inotify(fd)) => fd,
        Ok(Source::Fanotify(group)) => return run_fanotify(coverage, &group, stop, files),
        Err(e) => {
            tracing::error!(error = %e, "cannot start tree tracking");
            return coverage;
        }
    };
    let mut buf = vec![MaybeUninit::<u8>::uninit(); 256 * 1024];
    let mut tracker = Tracker::default();
    loop {
        match stop.poll_with(fd.as_fd(), None) {
            Ok(Woken::Stop) => break,
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "poll on the inotify fd failed; tracking stops");
                break;
            }
        }
        let mut reader = Reader::new(fd.as_fd(), &mut buf);
        // Drain the queue: a move's halves may straddle two reads.
        loop {
            match reader.next() {
                Ok(ev) => {
                    let change = Change {
                        wd: ev.wd(),
                        flags: ev.events(),
                        cookie: ev.cookie(),
                        name: ev
                            .file_name()
                            .map(|n| OsStr::from_bytes(n.to_bytes()).to_owned()),
                    };
                    tracker.apply(&mut coverage, change, &mut files);
                }
                Err(rustix::io::Errno::AGAIN) => break,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "reading inotify events failed");
                    break;
                }
            }
        }
        tracker.settle(&mut coverage);
    }
    coverage
}

#[derive(Default)]
struct Tracker {
    /// `MOVED_FROM` halves waiting for their `MOVED_TO`: (cookie, old parent, old name).
    moves: Vec<(u32, Wd, OsString)>,
    overflowed: bool,
}

type Files<'a> = &'a mut Option<FileSink>;

impl Tracker {
    fn apply(&mut self, cov: &mut DirectoryCoverage, c: Change, files: Files<'_>) {
        if c.flags.contains(ReadFlags::QUEUE_OVERFLOW) {
            self.overflowed = true;
            return;
        }
        if c.flags.contains(ReadFlags::IGNORED) {
            cov.watch_gone(c.wd);
            return;
        }
        if c.flags
            .intersects(ReadFlags::DELETE_SELF | ReadFlags::MOVE_SELF)
        {
            if cov.is_root(c.wd) {
                tracing::warn!(wd = c.wd, flags = ?c.flags,
                    "an include path was deleted or moved: it is no longer covered at its old path");
            }
            return;
        }
        let Some(name) = c.name else { return };
        let mut sink = |p: &Path| {
            if let Some(f) = files.as_mut() {
                f(p)
            }
        };
        if !c.flags.contains(ReadFlags::ISDIR) {
            if c.flags.contains(ReadFlags::MOVED_TO) {
                if let Some(dir) = cov.path(c.wd) {
                    sink(&dir.join(&name));
                }
            }
            return;
        }
        if c.flags.contains(ReadFlags::CREATE) {
            cov.add_child(c.wd, &name, &mut sink);
        } else if c.flags.contains(ReadFlags::MOVED_FROM) {
            self.moves.push((c.cookie, c.wd, name));
        } else if c.flags.contains(ReadFlags::MOVED_TO) {
            match self.moves.iter().position(|m| m.0 == c.cookie) {
                Some(i) => {
                    let (_, from, from_name) = self.moves.swap_remove(i);
                    cov.rename((from, &from_name), (c.wd, &name), &mut sink);
                }
                None => cov.add_child(c.wd, &name, &mut sink),
            }
        } else if c.flags.contains(ReadFlags::DELETE) {
            cov.deleted(c.wd, &name);
        }
    }

    /// The queue is empty: unpaired moves went out of the tree; lost events need a re-walk.
    fn settle(&mut self, cov: &mut DirectoryCoverage) {
        for (_, parent, name) in self.moves.drain(..) {
            cov.move_out(parent, &name);
        }
        if std::mem::take(&mut self.overflowed) {
            cov.resync();
        }
    }
}

/// [`run`] for the fanotify backend: reads the tracking group until `stop`.
fn run_fanotify(
    mut coverage: DirectoryCoverage,
    group: &Group,
    stop: &Stop,
    mut files: Option<FileSink>,
) -> DirectoryCoverage {
    let mut buf = EventBuffer::with_len(256 * 1024);
    loop {
        match stop.poll_with(group.as_fd(), None) {
            Ok(Woken::Stop) => break,
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "poll on the fanotify tracking group failed; tracking stops");
                break;
            }
        }
        let mut resync = false;
        loop {
            let changes: Vec<FidChange> = match group.read_events(&mut buf) {
                Ok(events) if events.len() == 0 => break,
                Ok(events) => events
                    .flat_map(|ev| {
                        let fids: Vec<_> = ev.fids().collect();
                        crate::fid::translate(ev.mask(), &fids, |r| coverage.lookup_fid(r))
                    })
                    .collect(),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                    tracing::warn!(error = %e, "malformed fanotify tracking events");
                    resync = true;
                    continue;
                }
                Err(e) => {
                    tracing::error!(error = %e, "reading fanotify tracking events failed");
                    break;
                }
            };
            for c in changes {
                resync |= apply_fid(&mut coverage, c, &mut files);
            }
        }
        if resync {
            coverage.resync();
        }
    }
    coverage
}

/// Applies one change from the fanotify backend; true when a re-walk is needed.
fn apply_fid(cov: &mut DirectoryCoverage, c: FidChange, files: Files<'_>) -> bool {
    let mut sink = |p: &Path| {
        if let Some(f) = files.as_mut() {
            f(p)
        }
    };
    match c {
        FidChange::Created { parent, name } | FidChange::MovedIn { parent, name } => {
            cov.add_child(parent, &name, &mut sink)
        }
        FidChange::Deleted { parent, name } => cov.deleted(parent, &name),
        FidChange::Renamed { from, to } => cov.rename((from.0, &from.1), (to.0, &to.1), &mut sink),
        FidChange::MovedOut { parent, name } => cov.move_out(parent, &name),
        FidChange::FileMovedIn { parent, name } => {
            if let Some(dir) = cov.path(parent) {
                sink(&dir.join(&name));
            }
        }
        FidChange::SelfDeleted(id) => {
            if cov.is_root(id) {
                tracing::warn!(path = ?cov.path(id),
                    "an include path was deleted: it is no longer covered");
            }
            cov.watch_gone(id);
        }
        FidChange::SelfMoved(id) => {
            if cov.is_root(id) {
                tracing::warn!(path = ?cov.path(id),
                    "an include path was moved: it is no longer covered at its old path");
            }
        }
        FidChange::Resync(why) => {
            tracing::warn!("{why}: re-walking the tree");
            return true;
        }
    }
    false
}
