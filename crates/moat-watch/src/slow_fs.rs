//! Filesystems whose server can stall (FUSE, network filesystems): a fanotify group and a
//! reader thread of their own each, so a stalled server blocks no other open (review F2).
//!
//! **Why.** The kernel opens each event's file *inside the reader's `read(2)`*: for a FUSE
//! file that is a `FUSE_OPEN` request to the filesystem's server, for NFS/CIFS a round trip
//! to the server. A server that does not answer (a user's FUSE daemon stopped with
//! `SIGSTOP`, an unreachable NFS server) holds that `read(2)`, and with it every permission
//! event queued behind it in the same group: with one group, every open on every marked
//! filesystem waited (7.5 s measured in the review). fanotify cannot report permission
//! events without an fd (`FAN_REPORT_FID` is refused with a permission class), so the only
//! way to keep one slow filesystem from holding the others is a separate queue: one group
//! per such filesystem, read by its own thread. A stall then holds only the opens on that
//! filesystem (which would wait on the same server anyway).
//!
//! **What is decided there** is what the main reader decides (the same [`Reader`] code, the
//! same policy, worker pool and deadline): the file is scanned with the deadline, and
//! `OnAccessDenyOnError` decides when the server is too slow for it; a worker stuck reading
//! from a stalled server is replaced by the pool's monitor.
//!
//! **No kernel clean cache there.** A network filesystem's content can change on the server
//! with no local event (review F16), and a FUSE server can serve other bytes to each reader:
//! no in-kernel ignore mark is ever set on a file of these filesystems ([`SlowDevs`] tells
//! the kernel cache which devices to leave alone); each open is decided in userspace (the
//! verdict cache keyed by what `fstat` says still answers repeated opens of unchanged files).
//!
//! **Bounded.** Groups count against `fs.fanotify.max_user_groups` (128): at most
//! [`MAX_GROUPS`] are created; beyond that, the further slow filesystems share the last one
//! (logged), which still keeps them apart from the local filesystems.
//!
//! [`Reader`]: crate::reader::Reader

use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use moat_fanotify::{Group, MarkKind, Mask};

use crate::mounts::Filesystem;
use crate::stop::Stop;

/// Slow filesystems get at most this many groups of their own.
pub const MAX_GROUPS: usize = 16;

/// Whether a filesystem of type `fs_type` (mountinfo's field) may stall an open on a server
/// outside the kernel: FUSE in every form, and the network and cluster filesystems.
pub fn is_slow(fs_type: &str) -> bool {
    fs_type.starts_with("fuse.")
        || matches!(
            fs_type,
            "fuse"
                | "fuseblk"
                | "nfs"
                | "nfs4"
                | "cifs"
                | "smb3"
                | "smbfs"
                | "9p"
                | "ceph"
                | "afs"
                | "glusterfs"
                | "lustre"
                | "virtiofs"
                | "davfs"
                | "ncpfs"
                | "orangefs"
                | "pvfs2"
                | "gfs2"
                | "ocfs2"
                | "beegfs"
        )
}

/// The devices (`st_dev`) of the filesystems with a group of their own: no kernel clean
/// cache on them. Cheap to read (a read lock over a short vector).
#[derive(Debug, Default)]
pub struct SlowDevs(RwLock<Vec<u64>>);

impl SlowDevs {
    /// Whether `dev` is a slow filesystem's.
    pub fn contains(&self, dev: u64) -> bool {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&dev)
    }

    fn add(&self, dev: u64) {
        let mut v = self.0.write().unwrap_or_else(|p| p.into_inner());
        if !v.contains(&dev) {
            v.push(dev);
        }
    }
}

/// Creates a group like the main one.
pub type InitGroup = Box<dyn Fn() -> Result<Group, moat_fanotify::Error> + Send + Sync>;

/// Starts the reader thread of a new group (built by the daemon: the same reader as the main
/// group's, on `group`, stopping on the `Stop`).
pub type SpawnReader =
    Box<dyn Fn(Arc<Group>, Arc<Stop>, usize) -> Result<JoinHandle<()>, String> + Send + Sync>;

struct Slot {
    /// The devices whose filesystem marks this group holds.
    devs: Vec<u64>,
    group: Arc<Group>,
    stop: Arc<Stop>,
    reader: Option<JoinHandle<()>>,
}

/// The groups of slow filesystems. See the module docs.
pub struct SlowGroups {
    slots: Mutex<Vec<Slot>>,
    spawn: SpawnReader,
    init: InitGroup,
    /// Shared with the kernel clean cache.
    pub devs: Arc<SlowDevs>,
}

impl SlowGroups {
    /// No group yet; `init` creates one (the same flags as the main group), `spawn` starts
    /// its reader; `devs` is filled as filesystems are marked.
    pub fn new(init: InitGroup, spawn: SpawnReader, devs: Arc<SlowDevs>) -> Self {
        SlowGroups {
            slots: Mutex::new(Vec::new()),
            spawn,
            init,
            devs,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Groups created so far.
    pub fn groups(&self) -> usize {
        self.lock().len()
    }

    /// Places `fs`'s filesystem mark (`mask`) in the group of its device, creating the group
    /// and its reader on first use. The device is listed in [`SlowDevs`] before the mark
    /// exists, so no clean-cache mark is ever set on it.
    pub fn mark(&self, fs: &Filesystem, mask: Mask) -> Result<(), String> {
        let dev = fs
            .dev
            .map(|(major, minor)| libc::makedev(major, minor))
            .unwrap_or(u64::MAX);
        self.devs.add(dev);
        let group = self.group_for(dev)?;
        group
            .add_mark(MarkKind::Filesystem, mask, &fs.path)
            .map_err(|e| e.to_string())
    }

    /// The group of device `dev` (a slow filesystem's), created with its reader on first
    /// use; the device is listed in [`SlowDevs`] first. For directory scope, which marks
    /// the filesystem's directories one by one in it.
    pub fn group_of_dev(&self, dev: u64) -> Result<Arc<Group>, String> {
        self.devs.add(dev);
        self.group_for(dev)
    }

    fn group_for(&self, dev: u64) -> Result<Arc<Group>, String> {
        let mut slots = self.lock();
        if let Some(s) = slots.iter().find(|s| s.devs.contains(&dev)) {
            return Ok(Arc::clone(&s.group));
        }
        if slots.len() >= MAX_GROUPS {
            let last = slots.last_mut().expect("MAX_GROUPS > 0");
            tracing::warn!(
                groups = MAX_GROUPS,
                "more slow filesystems than groups: this one shares a group with another (a stall of one delays the other)"
            );
            last.devs.push(dev);
            return Ok(Arc::clone(&last.group));
        }
        let group = Arc::new((self.init)().map_err(|e| format!("fanotify group: {e}"))?);
        let stop = Arc::new(Stop::new().map_err(|e| format!("stop pipe: {e}"))?);
        let reader = (self.spawn)(Arc::clone(&group), Arc::clone(&stop), slots.len())?;
        slots.push(Slot {
            devs: vec![dev],
            group: Arc::clone(&group),
            stop,
            reader: Some(reader),
        });
        Ok(group)
    }

    /// Stops every reader: each group's marks are removed here (no reader needed for that),
    /// then its reader is told to stop; readers are joined for at most `limit` in all. A
    /// reader still held in `read(2)` by a stalled server is left behind (logged): the
    /// kernel allows its events when the process exits and the group closes.
    pub fn shutdown(&self, limit: Duration) {
        let mut slots = self.lock();
        for s in slots.iter() {
            for kind in [MarkKind::Filesystem, MarkKind::Mount, MarkKind::Inode] {
                let _ = s.group.flush(kind);
            }
            s.stop.trigger();
        }
        let until = Instant::now() + limit;
        for s in slots.iter_mut() {
            let Some(r) = s.reader.take() else { continue };
            while !r.is_finished() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(5));
            }
            if r.is_finished() {
                let _ = r.join();
            } else {
                tracing::warn!("a slow filesystem's reader is still held by its server at shutdown: left behind");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuse_and_network_filesystems_are_slow_local_ones_are_not() {
        for t in [
            "fuse",
            "fuseblk",
            "fuse.sshfs",
            "nfs",
            "nfs4",
            "cifs",
            "9p",
            "ceph",
        ] {
            assert!(is_slow(t), "{t}");
        }
        // fusectl is FUSE's control filesystem: pseudo, never marked at all.
        for t in [
            "ext4", "xfs", "btrfs", "tmpfs", "overlay", "vfat", "fusectl",
        ] {
            assert!(!is_slow(t), "{t}");
        }
    }

    #[test]
    fn slow_devs_lists_each_device_once() {
        let d = SlowDevs::default();
        d.add(7);
        d.add(7);
        assert!(d.contains(7));
        assert!(!d.contains(8));
        assert_eq!(d.0.read().unwrap().len(), 1);
    }
}
