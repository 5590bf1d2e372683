//! Tree tracking without inotify: a fanotify notification group reporting directory file
//! handles and entry names (`FAN_REPORT_DFID_NAME`), with an inode mark per tracked
//! directory.
//!
//! FID reporting cannot be combined with the permission class (notes rule 1), so this is a
//! second group next to the enforcement group. It is created with `FAN_UNLIMITED_QUEUE |
//! FAN_UNLIMITED_MARKS`: `fs.inotify.max_user_watches` does not apply, nor does
//! `fs.fanotify.max_user_marks`, and the queue cannot overflow.
//!
//! Each tracked directory has an id in the [`Tree`](crate::tree::Tree) (the same `i32` the
//! inotify backend takes from its watch descriptors), allocated here per
//! `(fsid, file handle)`: events name directories by handle, and the walk computes each
//! directory's handle anyway (it is also what removes the marks of a subtree moved out).
//!
//! What the kernel reports (Linux 6.18, measured; [`translate`] turns it into
//! [`FidChange`]s, a pure function):
//!
//! | event on a marked directory                | records                          | change |
//! |--------------------------------------------|----------------------------------|--------|
//! | `FAN_CREATE | FAN_ONDIR`                   | `DFID_NAME` (parent, name)       | cover the new subtree |
//! | `FAN_DELETE | FAN_ONDIR`                   | `DFID_NAME` (parent, name)       | forget it |
//! | `FAN_RENAME | FAN_ONDIR`, both parents marked | `OLD_DFID_NAME` + `NEW_DFID_NAME` | rename in the tree |
//! | `FAN_RENAME | FAN_ONDIR`, only the target   | `NEW_DFID_NAME`                  | moved in: cover it |
//! | `FAN_RENAME | FAN_ONDIR`, only the source   | `OLD_DFID_NAME`                  | moved out: unmark it |
//! | `FAN_RENAME` of a file into a marked dir   | `NEW_DFID_NAME` (+ old)          | extra scanning |
//! | `FAN_DELETE_SELF`, `FAN_MOVE_SELF`         | `DFID_NAME` (itself, `"."`)      | forget / warn for a root |
//!
//! A rename is one event, so there is no cookie to pair and no "unpaired half" to guess
//! about when the queue is drained. Events with the same directory and name may be merged
//! (`mkdir x; rmdir x` → one `CREATE | DELETE`): the order is then unknown, so the change is
//! "forget, then cover if it exists". A malformed batch or an event missing its records
//! triggers a re-walk (the resync path of the inotify backend's overflow).

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::fd::BorrowedFd;
use std::path::PathBuf;
use std::sync::Mutex;

use moat_fanotify::{
    FidInfo, FidKind, FileHandle, Fsid, Group, InitFlags, MarkFlags, MarkKind, Mask,
};

use crate::tree::Wd;

/// The tracking group's mask on every tracked directory.
pub const TRACK_MASK: Mask = Mask::CREATE
    .union(Mask::DELETE)
    .union(Mask::RENAME)
    .union(Mask::DELETE_SELF)
    .union(Mask::MOVE_SELF)
    .union(Mask::ONDIR);

/// The tracking group's `fanotify_init` flags.
pub const TRACK_INIT: InitFlags = InitFlags::CLASS_NOTIF
    .union(InitFlags::REPORT_DFID_NAME)
    .union(InitFlags::UNLIMITED_QUEUE)
    .union(InitFlags::UNLIMITED_MARKS)
    .union(InitFlags::NONBLOCK)
    .union(InitFlags::CLOEXEC);

/// Creates the tracking group. `Err` carries a short human reason.
pub fn init_group() -> Result<Group, String> {
    Group::init(TRACK_INIT, libc::O_RDONLY | libc::O_CLOEXEC).map_err(|e| match e.errno() {
        libc::EINVAL => "kernel too old: FAN_REPORT_DFID_NAME refused (EINVAL)".to_owned(),
        n => format!(
            "fanotify_init of the tracking group failed: {} ({})",
            e.reason(),
            std::io::Error::from_raw_os_error(n)
        ),
    })
}

/// Whether the fanotify backend can track `roots`: creates the group and marks each root
/// (the walk marks them again, which is a no-op). `Err` carries a short human reason
/// ("kernel too old: ...", "/x: filesystem without file handles (EOPNOTSUPP)").
pub fn probe(roots: &[PathBuf]) -> Result<Group, String> {
    let group = init_group()?;
    for root in roots {
        if let Err(e) = group.add_mark_with(MarkKind::Inode, MarkFlags::ONLYDIR, TRACK_MASK, root) {
            let what = match e.errno() {
                libc::ENODEV | libc::EOPNOTSUPP => "filesystem without file handles",
                libc::EXDEV => "subvolume with its own fsid",
                libc::EINVAL => "directory-entry events refused for this filesystem",
                _ => e.reason(),
            };
            return Err(format!(
                "{}: {what} ({})",
                root.display(),
                errno_name(e.errno())
            ));
        }
    }
    probe_mounts_below(&group, roots)?;
    Ok(group)
}

/// The filesystems mounted below the include paths must take a tracking mark too: one that
/// cannot (FUSE has no fsid: EXDEV; some network filesystems no file handles) would leave
/// its directories with neither a tracking nor an enforcement mark, its files opened
/// unscanned. Such a mount makes `auto` choose inotify for the whole tree (and a forced
/// `fanotify` refuse to start). Each probe mark is removed again: the walk places the real
/// ones, excluded paths included in its decisions. A filesystem mounted there after the
/// start is still found by the walk, which then reports the failure (README: limits).
fn probe_mounts_below(group: &Group, roots: &[PathBuf]) -> Result<(), String> {
    let Ok(mounts) = crate::mounts::read_here() else {
        return Ok(()); // Without a mount table the walk's own reports must do.
    };
    for m in mounts
        .iter()
        .filter(|m| !crate::mounts::is_pseudo(&m.fs_type))
    {
        let below = roots
            .iter()
            .any(|r| m.mount_point != *r && m.mount_point.starts_with(r));
        if !below {
            continue;
        }
        match group.add_mark_with(
            MarkKind::Inode,
            MarkFlags::ONLYDIR,
            TRACK_MASK,
            &m.mount_point,
        ) {
            Ok(()) => {
                let _ = group.remove_mark(MarkKind::Inode, TRACK_MASK, &m.mount_point);
            }
            // Gone since the table was read, or hidden by another mount: nothing to cover.
            Err(e) if matches!(e.errno(), libc::ENOENT | libc::ENOTDIR | libc::EACCES) => {}
            Err(e) => {
                return Err(format!(
                    "{}: {} mounted below an include path cannot be tracked ({})",
                    m.mount_point.display(),
                    m.fs_type,
                    errno_name(e.errno())
                ));
            }
        }
    }
    Ok(())
}

fn errno_name(n: i32) -> String {
    match n {
        libc::EINVAL => "EINVAL".into(),
        libc::ENODEV => "ENODEV".into(),
        libc::EOPNOTSUPP => "EOPNOTSUPP".into(),
        libc::EXDEV => "EXDEV".into(),
        libc::EPERM => "EPERM".into(),
        libc::ENOENT => "ENOENT".into(),
        n => std::io::Error::from_raw_os_error(n).to_string(),
    }
}

/// A directory's identity in FID records.
pub type FidKey = (Fsid, FileHandle);

/// Ids of tracked directories by file handle, and back.
#[derive(Debug, Default)]
pub struct Ids {
    next: Wd,
    by_key: HashMap<FidKey, Wd>,
    by_id: HashMap<Wd, FidKey>,
}

impl Ids {
    /// The id of `key`, allocated on first sight (like `inotify_add_watch`, which returns
    /// the same descriptor for an inode already watched).
    pub fn id_for(&mut self, key: FidKey) -> Wd {
        if let Some(&id) = self.by_key.get(&key) {
            return id;
        }
        self.next = self.next.checked_add(1).unwrap_or(1);
        while self.by_id.contains_key(&self.next) {
            self.next = self.next.checked_add(1).unwrap_or(1);
        }
        let id = self.next;
        self.by_key.insert(key.clone(), id);
        self.by_id.insert(id, key);
        id
    }

    /// The id of a directory named in a record, if tracked.
    pub fn lookup(&self, fsid: Fsid, handle: &FileHandle) -> Option<Wd> {
        // The map is keyed by owned handles: look up without building a key per event
        // would need a borrowed form; handles are ≤ 128 bytes, the copy is cheap.
        self.by_key.get(&(fsid, handle.clone())).copied()
    }

    /// Drops `id` (its directory left the tree).
    pub fn forget(&mut self, id: Wd) {
        if let Some(key) = self.by_id.remove(&id) {
            self.by_key.remove(&key);
        }
    }

    /// How many ids are allocated.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether no id is allocated.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

/// The fanotify tracking backend: the group and the ids. Shared by the walk's threads.
#[derive(Debug)]
pub struct FidTracker {
    /// The tracking group (`FAN_CLASS_NOTIF | FAN_REPORT_DFID_NAME`).
    pub group: std::sync::Arc<Group>,
    /// Ids by handle; locked per directory during the walk and per event afterwards.
    pub ids: Mutex<Ids>,
    /// `mount id → fsid`, so the walk asks `fstatfs` once per mount.
    fsids: Mutex<HashMap<i32, Fsid>>,
}

impl FidTracker {
    /// A tracker on `group` (from [`probe`] or [`init_group`]).
    pub fn new(group: Group) -> FidTracker {
        FidTracker {
            group: std::sync::Arc::new(group),
            ids: Mutex::new(Ids::default()),
            fsids: Mutex::new(HashMap::new()),
        }
    }

    /// Adds (or removes) the tracking mark on the open directory `dir`.
    pub fn mark(&self, dir: BorrowedFd<'_>, add: bool) -> Result<(), moat_fanotify::Error> {
        let action = if add {
            libc::FAN_MARK_ADD
        } else {
            libc::FAN_MARK_REMOVE
        };
        match self.group.mark_raw(
            action,
            MarkKind::Inode,
            MarkFlags::empty(),
            TRACK_MASK,
            Some(dir),
            None,
        ) {
            Err(e) if !add && e.errno() == libc::ENOENT => Ok(()),
            r => r,
        }
    }

    /// The fsid of the filesystem `dir` (on mount `mount_id`) lives on.
    pub fn fsid(&self, dir: BorrowedFd<'_>, mount_id: i32) -> std::io::Result<Fsid> {
        let mut fsids = self.fsids.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = fsids.get(&mount_id) {
            return Ok(*f);
        }
        let f = Fsid::of_fd(dir)?;
        fsids.insert(mount_id, f);
        Ok(f)
    }

    /// The id of `key`, allocated on first sight.
    pub fn id_for(&self, key: FidKey) -> Wd {
        self.ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .id_for(key)
    }

    /// Forgets `id`.
    pub fn forget(&self, id: Wd) {
        self.ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .forget(id)
    }
}

/// What one tracking event means for the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FidChange {
    /// Directory `name` was created in tracked `parent`.
    Created {
        /// The tracked parent.
        parent: Wd,
        /// The entry name.
        name: OsString,
    },
    /// Directory `name` of tracked `parent` was removed.
    Deleted {
        /// The tracked parent.
        parent: Wd,
        /// The entry name.
        name: OsString,
    },
    /// A directory moved from one tracked place to another.
    Renamed {
        /// Old parent and name.
        from: (Wd, OsString),
        /// New parent and name.
        to: (Wd, OsString),
    },
    /// A directory moved in from an untracked place.
    MovedIn {
        /// The tracked new parent.
        parent: Wd,
        /// The new name.
        name: OsString,
    },
    /// A directory moved from a tracked place to an untracked one.
    MovedOut {
        /// The tracked old parent.
        parent: Wd,
        /// The old name.
        name: OsString,
    },
    /// A file renamed into a tracked directory (from anywhere): extra scanning.
    FileMovedIn {
        /// The tracked new parent.
        parent: Wd,
        /// The new name.
        name: OsString,
    },
    /// A tracked directory itself was deleted (its marks went with the inode).
    SelfDeleted(Wd),
    /// A tracked directory itself was moved (the rename event carries the tree change).
    SelfMoved(Wd),
    /// Events cannot be trusted (a malformed event, an overflow): re-walk.
    Resync(&'static str),
}

/// Translates one event of the tracking group (its mask and FID records) into tree
/// changes; `lookup` gives the id of a tracked directory from a record. Pure.
pub fn translate(
    mask: Mask,
    fids: &[&FidInfo],
    lookup: impl Fn(&FidInfo) -> Option<Wd>,
) -> Vec<FidChange> {
    let mut out = Vec::new();
    if mask.contains(Mask::Q_OVERFLOW) {
        out.push(FidChange::Resync("tracking queue overflowed"));
        return out;
    }
    let find = |kind: FidKind| fids.iter().copied().find(|f| f.kind == kind);
    let is_dir = mask.contains(Mask::ONDIR);
    if mask.contains(Mask::RENAME) {
        let old = find(FidKind::OldDfidName);
        let new = find(FidKind::NewDfidName);
        if old.is_none() && new.is_none() {
            out.push(FidChange::Resync(
                "FAN_RENAME without OLD/NEW_DFID_NAME records",
            ));
            return out;
        }
        let side = |r: Option<&FidInfo>| -> Result<Option<(Wd, OsString)>, ()> {
            match r {
                None => Ok(None),
                Some(r) => match r.entry_name() {
                    None => Err(()),
                    Some(n) => Ok(lookup(r).map(|id| (id, n.to_owned()))),
                },
            }
        };
        let (Ok(old), Ok(new)) = (side(old), side(new)) else {
            out.push(FidChange::Resync("FAN_RENAME record without a name"));
            return out;
        };
        match (is_dir, old, new) {
            (true, Some(from), Some(to)) => out.push(FidChange::Renamed { from, to }),
            (true, None, Some((parent, name))) => out.push(FidChange::MovedIn { parent, name }),
            (true, Some((parent, name)), None) => out.push(FidChange::MovedOut { parent, name }),
            (false, _, Some((parent, name))) => out.push(FidChange::FileMovedIn { parent, name }),
            // Neither side tracked (a mark removed while its events were queued), or a
            // file moved out: nothing to do.
            _ => {}
        }
        return out;
    }
    let entry = mask.intersects(Mask::CREATE | Mask::DELETE);
    let this = mask.intersects(Mask::DELETE_SELF | Mask::MOVE_SELF);
    if !entry && !this {
        return out;
    }
    let Some(rec) = find(FidKind::DfidName)
        .or_else(|| find(FidKind::Dfid))
        .or_else(|| find(FidKind::Fid))
    else {
        out.push(FidChange::Resync("event without a directory record"));
        return out;
    };
    let Some(id) = lookup(rec) else {
        return out;
    };
    if this {
        if mask.contains(Mask::MOVE_SELF) {
            out.push(FidChange::SelfMoved(id));
        }
        if mask.contains(Mask::DELETE_SELF) {
            out.push(FidChange::SelfDeleted(id));
        }
        return out;
    }
    if !is_dir {
        return out;
    }
    let Some(name) = rec.entry_name().map(|n| n.to_owned()) else {
        out.push(FidChange::Resync("directory-entry event without a name"));
        return out;
    };
    // Merged CREATE|DELETE: the order is unknown; forget, then cover if it exists.
    if mask.contains(Mask::DELETE) {
        out.push(FidChange::Deleted {
            parent: id,
            name: name.clone(),
        });
    }
    if mask.contains(Mask::CREATE) {
        out.push(FidChange::Created { parent: id, name });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(kind: FidKind, dir: u8, name: Option<&str>) -> FidInfo {
        FidInfo {
            kind,
            fsid: Fsid([1, 2]),
            handle: FileHandle {
                handle_type: 1,
                bytes: vec![dir; 8],
            },
            name: name.map(OsString::from),
        }
    }

    /// Directories with handle bytes 1..=9 are tracked with id = the byte.
    fn lookup(r: &FidInfo) -> Option<Wd> {
        let b = r.handle.bytes[0];
        (r.fsid == Fsid([1, 2]) && (1..10).contains(&b)).then_some(b as Wd)
    }

    fn t(mask: Mask, recs: &[FidInfo]) -> Vec<FidChange> {
        let refs: Vec<&FidInfo> = recs.iter().collect();
        translate(mask, &refs, lookup)
    }

    fn os(s: &str) -> OsString {
        OsString::from(s)
    }

    const DIR: Mask = Mask::ONDIR;

    #[test]
    fn mkdir_and_rmdir_in_a_tracked_directory() {
        let r = [rec(FidKind::DfidName, 3, Some("x"))];
        assert_eq!(
            t(Mask::CREATE | DIR, &r),
            vec![FidChange::Created {
                parent: 3,
                name: os("x")
            }]
        );
        assert_eq!(
            t(Mask::DELETE | DIR, &r),
            vec![FidChange::Deleted {
                parent: 3,
                name: os("x")
            }]
        );
        // Files created or deleted change nothing.
        assert!(t(Mask::CREATE, &r).is_empty());
        assert!(t(Mask::DELETE, &r).is_empty());
        // An untracked parent (mark removed while events were queued): nothing.
        assert!(t(Mask::CREATE | DIR, &[rec(FidKind::DfidName, 42, Some("x"))]).is_empty());
    }

    #[test]
    fn merged_create_and_delete_forgets_then_covers() {
        let r = [rec(FidKind::DfidName, 3, Some("x"))];
        assert_eq!(
            t(Mask::CREATE | Mask::DELETE | DIR, &r),
            vec![
                FidChange::Deleted {
                    parent: 3,
                    name: os("x")
                },
                FidChange::Created {
                    parent: 3,
                    name: os("x")
                }
            ]
        );
    }

    #[test]
    fn rename_pairs_by_records_not_cookies() {
        let old = rec(FidKind::OldDfidName, 2, Some("a"));
        let new = rec(FidKind::NewDfidName, 5, Some("b"));
        assert_eq!(
            t(Mask::RENAME | DIR, &[old.clone(), new.clone()]),
            vec![FidChange::Renamed {
                from: (2, os("a")),
                to: (5, os("b"))
            }]
        );
        // Only the target is marked: moved in.
        assert_eq!(
            t(Mask::RENAME | DIR, std::slice::from_ref(&new)),
            vec![FidChange::MovedIn {
                parent: 5,
                name: os("b")
            }]
        );
        // Only the source is marked: moved out.
        assert_eq!(
            t(Mask::RENAME | DIR, std::slice::from_ref(&old)),
            vec![FidChange::MovedOut {
                parent: 2,
                name: os("a")
            }]
        );
        // Both records, but the source directory is not tracked (any more): moved in.
        let stale_old = rec(FidKind::OldDfidName, 77, Some("a"));
        assert_eq!(
            t(Mask::RENAME | DIR, &[stale_old, new.clone()]),
            vec![FidChange::MovedIn {
                parent: 5,
                name: os("b")
            }]
        );
        // A file renamed into a tracked directory is for extra scanning; out of one, nothing.
        assert_eq!(
            t(Mask::RENAME, &[old.clone(), new]),
            vec![FidChange::FileMovedIn {
                parent: 5,
                name: os("b")
            }]
        );
        assert!(t(Mask::RENAME, &[old]).is_empty());
    }

    #[test]
    fn self_events_name_the_directory_itself() {
        let me = [rec(FidKind::DfidName, 4, Some("."))];
        assert_eq!(
            t(Mask::DELETE_SELF | DIR, &me),
            vec![FidChange::SelfDeleted(4)]
        );
        assert_eq!(t(Mask::MOVE_SELF | DIR, &me), vec![FidChange::SelfMoved(4)]);
        assert_eq!(
            t(Mask::MOVE_SELF | Mask::DELETE_SELF | DIR, &me),
            vec![FidChange::SelfMoved(4), FidChange::SelfDeleted(4)]
        );
    }

    #[test]
    fn malformed_events_ask_for_a_resync() {
        assert!(matches!(
            t(Mask::RENAME | DIR, &[])[..],
            [FidChange::Resync(_)]
        ));
        assert!(matches!(
            t(Mask::CREATE | DIR, &[])[..],
            [FidChange::Resync(_)]
        ));
        assert!(matches!(
            t(Mask::CREATE | DIR, &[rec(FidKind::DfidName, 3, None)])[..],
            [FidChange::Resync(_)]
        ));
        assert!(matches!(
            t(
                Mask::RENAME | DIR,
                &[rec(FidKind::NewDfidName, 3, Some("."))]
            )[..],
            [FidChange::Resync(_)]
        ));
        assert!(matches!(
            t(Mask::Q_OVERFLOW, &[])[..],
            [FidChange::Resync(_)]
        ));
    }

    #[test]
    fn ids_are_stable_per_handle_and_reusable_after_forget() {
        let mut ids = Ids::default();
        let k = |b: u8| {
            (
                Fsid([1, 2]),
                FileHandle {
                    handle_type: 1,
                    bytes: vec![b; 8],
                },
            )
        };
        let a = ids.id_for(k(1));
        let b = ids.id_for(k(2));
        assert_ne!(a, b);
        assert_eq!(ids.id_for(k(1)), a);
        assert_eq!(ids.lookup(Fsid([1, 2]), &k(2).1), Some(b));
        assert_eq!(
            ids.lookup(Fsid([9, 9]), &k(2).1),
            None,
            "fsid is part of the key"
        );
        ids.forget(b);
        assert_eq!(ids.lookup(Fsid([1, 2]), &k(2).1), None);
        assert_eq!(ids.len(), 1);
        assert_ne!(ids.id_for(k(2)), a);
    }
}
