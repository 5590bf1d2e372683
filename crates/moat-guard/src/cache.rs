//! The verdict cache: files known clean, keyed by what `fstat` says about them.
//!
//! The kernel's ignore marks are the first cache (a clean file's next open raises no event at
//! all). This one catches what they miss: marks that could not be set or were evicted, files
//! opened through another inode path after a reload, notify-only mode.
//!
//! **Key.** A [`FileKey`] is `(dev, ino, size, mtime, ctime)`, plus the scanner's
//! [generation](crate::Scanner::generation) stored with the entry. Any write changes mtime and
//! ctime; `chmod`, `utimes` or a rename change ctime, which userspace cannot set. On Linux 6.13+
//! ext4/xfs/btrfs/tmpfs use multigrain timestamps: once ctime has been observed by `fstat` (as
//! we do to build the key), the next change gets a fresh fine-grained ctime, so two writes
//! within one clock tick cannot hide behind an identical key. Callers must build the key
//! *before* scanning and insert only if the key taken *after* the scan is equal (a file being
//! written during the scan is not cached) and [settled](FileKey::is_settled): on filesystems
//! with coarse timestamps (no multigrain: FAT, some network filesystems, older kernels), a
//! same-size rewrite within the same clock tick as the last change would keep an identical key
//! (git's "racy clean" problem), so files changed too recently are not cached. The daemon should
//! also [`forget`](VerdictCache::forget) a file's entry on `FAN_CLOSE_WRITE`: a write through
//! a shared mmap need not change any of the key's fields (tmpfs updates no timestamp for it).
//!
//! **One entry per inode.** The index is keyed by `(dev, ino)` and the slot holds the whole
//! key: a newer version of a file replaces the older one, and `forget` needs nothing but the
//! inode.
//!
//! **Infected verdicts too, apart.** A detection is remembered under the same key and
//! generation in a small separate map (at most [`INFECTED_ENTRIES`], emptied when full), so
//! repeated opens of one costly infected file (an archive bomb opened in a loop to keep
//! every worker busy) are not rescanned each time. Kept apart so clean entries never compete
//! with them and any bug fails towards a rescan. Skipped (too-large) files are not cached:
//! deciding them again costs one `fstat`.
//!
//! **Generation.** Entries carry the generation they were scanned under and only answer for
//! that generation. [`VerdictCache::clear`] on reload frees memory, but the generation check is
//! what keeps correctness when a scan started under the old database inserts after the clear.
//!
//! **Concurrency.** The cache is split into shards, each behind its own `Mutex`, chosen by a
//! hash of `(dev, ino)`: workers touching different files rarely contend, and each critical
//! section is a hash lookup. There is no global lock on the hot path.
//!
//! **Bound.** The capacity is split over the shards; each shard evicts with CLOCK (second
//! chance): a hit sets the entry's reference bit, and the eviction hand clears bits until it
//! finds an entry not used since its last pass. Total entries never exceed the capacity.

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What identifies one version of one file's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileKey {
    /// Device number of the filesystem.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// Status change time, nanoseconds since the epoch.
    pub ctime_ns: i128,
}

impl FileKey {
    /// The key of an open file, by `fstat` (no event is raised).
    pub fn of(file: &File) -> io::Result<FileKey> {
        Ok(Self::from_metadata(&file.metadata()?))
    }

    /// The key from already-fetched metadata.
    pub fn from_metadata(m: &Metadata) -> FileKey {
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        FileKey {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: ns(m.mtime(), m.mtime_nsec()),
            ctime_ns: ns(m.ctime(), m.ctime_nsec()),
        }
    }

    /// Whether the file's last change (mtime or ctime) is more than `window` before `now`, so
    /// that any later change gets a different timestamp even on a coarse-grained clock. A zero
    /// window always answers `true`.
    pub fn is_settled(&self, now: SystemTime, window: Duration) -> bool {
        if window.is_zero() {
            return true;
        }
        let Ok(now) = now.duration_since(UNIX_EPOCH) else {
            return false;
        };
        let last_change = self.mtime_ns.max(self.ctime_ns);
        last_change + window.as_nanos() as i128 <= now.as_nanos() as i128
    }

    /// The settle window that applies to `file`: zero where the kernel guarantees that any
    /// change after our `fstat` gets a new ctime ([multigrain timestamps](has_multigrain_ctime)),
    /// else `coarse`.
    pub fn settle_window(file: &File, coarse: Duration) -> Duration {
        if has_multigrain_ctime(file) {
            Duration::ZERO
        } else {
            coarse
        }
    }

    /// The inode this key is a version of.
    pub fn inode(&self) -> Inode {
        (self.dev, self.ino)
    }
}

/// Whether `file` is on a filesystem with multigrain timestamps (Linux 6.13+: ext4, xfs,
/// btrfs, tmpfs): once its ctime has been read, as building a [`FileKey`] does, the next change
/// gets a fine-grained ctime, so no change can hide behind an identical key and a file needs
/// no settle window before it is cached. One `fstatfs` per call.
pub fn has_multigrain_ctime(file: &File) -> bool {
    use std::os::fd::AsRawFd;
    // Filesystem magic numbers (linux/magic.h) of the filesystems that set FS_MGTIME in 6.13.
    const MULTIGRAIN: [i64; 4] = [0xEF53, 0x5846_5342, 0x9123_683E, 0x0102_1994];
    if !kernel_has_multigrain() {
        return false;
    }
    // SAFETY: fstatfs on a valid fd into a zeroed struct.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::fstatfs(file.as_raw_fd(), &mut st) };
    r == 0 && MULTIGRAIN.contains(&(st.f_type as i64))
}

/// Linux 6.13 or later (read once from `uname`).
fn kernel_has_multigrain() -> bool {
    static AT_LEAST_6_13: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AT_LEAST_6_13.get_or_init(|| {
        // SAFETY: uname into a zeroed struct; release is NUL-terminated.
        let mut u: libc::utsname = unsafe { std::mem::zeroed() };
        if unsafe { libc::uname(&mut u) } != 0 {
            return false;
        }
        let release = unsafe { std::ffi::CStr::from_ptr(u.release.as_ptr()) };
        release_at_least(&release.to_string_lossy(), (6, 13))
    })
}

/// `"6.18.0-foo"` ≥ `(6, 13)`?
fn release_at_least(release: &str, (major, minor): (u32, u32)) -> bool {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let num = |p: Option<&str>| p.and_then(|s| s.parse::<u32>().ok());
    match (num(parts.next()), num(parts.next())) {
        (Some(a), Some(b)) => (a, b) >= (major, minor),
        _ => false,
    }
}

/// `(dev, ino)`: the identity of a file, whatever its content.
pub type Inode = (u64, u64);

fn shard_hash((dev, ino): Inode) -> u64 {
    // A cheap mix of the inode identity: all versions of a file land in one shard.
    let x = ino ^ dev.rotate_left(32);
    x.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29)
}

struct Slot {
    key: FileKey,
    generation: u64,
    referenced: bool,
}

struct Shard {
    slots: Vec<Slot>,
    index: HashMap<Inode, usize>,
    hand: usize,
    capacity: usize,
    /// Write epochs: bumped by [`VerdictCache::forget`] (a close-after-write) for the
    /// inodes hashing to each slot. Fixed size: two inodes sharing a slot only make a
    /// clean verdict less often cached, never wrongly.
    epochs: [u64; EPOCH_SLOTS],
}

impl Default for Shard {
    fn default() -> Shard {
        Shard {
            slots: Vec::new(),
            index: HashMap::new(),
            hand: 0,
            capacity: 0,
            epochs: [0; EPOCH_SLOTS],
        }
    }
}

/// Write-epoch slots per shard.
const EPOCH_SLOTS: usize = 64;

fn epoch_slot(inode: Inode) -> usize {
    (shard_hash(inode) >> 40) as usize % EPOCH_SLOTS
}

impl Shard {
    fn get(&mut self, key: &FileKey, generation: u64) -> bool {
        match self.index.get(&key.inode()) {
            Some(&i) if self.slots[i].key == *key && self.slots[i].generation == generation => {
                self.slots[i].referenced = true;
                true
            }
            _ => false,
        }
    }

    fn insert(&mut self, key: FileKey, generation: u64) {
        if let Some(&i) = self.index.get(&key.inode()) {
            let slot = &mut self.slots[i];
            slot.key = key;
            slot.generation = generation;
            slot.referenced = true;
            return;
        }
        if self.capacity == 0 {
            return;
        }
        let slot = Slot {
            key,
            generation,
            referenced: false,
        };
        if self.slots.len() < self.capacity {
            self.index.insert(key.inode(), self.slots.len());
            self.slots.push(slot);
            return;
        }
        // CLOCK: give referenced entries a second chance. Terminates within two turns.
        loop {
            let hand = self.hand;
            self.hand = (self.hand + 1) % self.slots.len();
            let victim = &mut self.slots[hand];
            if victim.referenced {
                victim.referenced = false;
                continue;
            }
            self.index.remove(&victim.key.inode());
            *victim = slot;
            self.index.insert(key.inode(), hand);
            return;
        }
    }

    fn remove(&mut self, inode: Inode) -> bool {
        let Some(i) = self.index.remove(&inode) else {
            return false;
        };
        let last = self.slots.len() - 1;
        self.slots.swap_remove(i);
        if i != last {
            self.index.insert(self.slots[i].key.inode(), i);
        }
        if self.hand >= self.slots.len() {
            self.hand = 0;
        }
        true
    }

    fn clear(&mut self) {
        self.slots.clear();
        self.index.clear();
        self.hand = 0;
    }
}

/// A bounded, sharded, thread-safe set of files known clean, and a small map of files
/// known infected. See the module docs.
pub struct VerdictCache {
    shards: Box<[Mutex<Shard>]>,
    capacity: usize,
    infected: Mutex<InfectedMap>,
}

/// Files known infected: key, generation, detection name.
type InfectedMap = HashMap<Inode, (FileKey, u64, std::sync::Arc<str>)>;

/// Infected entries kept at most (the map is emptied when full: detections are rare).
pub const INFECTED_ENTRIES: usize = 4096;

/// The number of shards for a large enough cache (a power of two, well above any sensible
/// `OnAccessMaxThreads`, so two workers rarely meet on one lock).
const MAX_SHARDS: usize = 64;

impl VerdictCache {
    /// A cache holding at most `capacity` entries (`0` disables it).
    pub fn new(capacity: usize) -> VerdictCache {
        // Enough shards that each holds at least a few entries.
        let n = (capacity / 8).clamp(1, MAX_SHARDS).next_power_of_two();
        let shards = (0..n)
            .map(|i| {
                let extra = usize::from(i < capacity % n);
                Mutex::new(Shard {
                    capacity: capacity / n + extra,
                    ..Shard::default()
                })
            })
            .collect();
        VerdictCache {
            shards,
            capacity,
            infected: Mutex::new(HashMap::new()),
        }
    }

    /// The configured capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn shard(&self, inode: Inode) -> MutexGuard<'_, Shard> {
        let i = (shard_hash(inode) as usize) & (self.shards.len() - 1);
        // A panic while holding a shard cannot leave it inconsistent in a way that matters
        // more than a cache miss; keep going.
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `key` is known clean under `generation` (a hit marks the entry recently used).
    pub fn contains(&self, key: &FileKey, generation: u64) -> bool {
        self.shard(key.inode()).get(key, generation)
    }

    /// Records `key` as clean under `generation`.
    pub fn insert_clean(&self, key: FileKey, generation: u64) {
        self.shard(key.inode()).insert(key, generation)
    }

    fn infected_map(&self) -> MutexGuard<'_, InfectedMap> {
        self.infected.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The detection name when `key` is known infected under `generation`.
    pub fn infected(&self, key: &FileKey, generation: u64) -> Option<std::sync::Arc<str>> {
        match self.infected_map().get(&key.inode()) {
            Some((k, g, name)) if k == key && *g == generation => Some(name.clone()),
            _ => None,
        }
    }

    /// Records `key` as infected with `name` under `generation`.
    pub fn insert_infected(&self, key: FileKey, generation: u64, name: std::sync::Arc<str>) {
        if self.capacity == 0 {
            return;
        }
        let mut m = self.infected_map();
        if m.len() >= INFECTED_ENTRIES {
            m.clear();
        }
        m.insert(key.inode(), (key, generation, name));
    }

    /// Forgets whatever version of `inode` is cached (on `FAN_CLOSE_WRITE`); true when there
    /// was one. Also moves the inode's write epoch, so that a scan that started before this
    /// write cannot add its (stale) clean verdict afterwards (see
    /// [`insert_clean_unwritten`](Self::insert_clean_unwritten)).
    pub fn forget(&self, inode: Inode) -> bool {
        let infected = self.infected_map().remove(&inode).is_some();
        let mut shard = self.shard(inode);
        shard.epochs[epoch_slot(inode)] += 1;
        shard.remove(inode) || infected
    }

    /// The write epoch of `inode`: read it before scanning, hand it to
    /// [`insert_clean_unwritten`](Self::insert_clean_unwritten) after.
    pub fn write_epoch(&self, inode: Inode) -> u64 {
        self.shard(inode).epochs[epoch_slot(inode)]
    }

    /// Records `key` as clean under `generation` unless the file was [forgotten](Self::forget)
    /// (closed after a write) since `epoch` was read: why (review F4): a write to a page
    /// already dirty in a shared mapping changes none of the key's fields, and the
    /// close-after-write that follows may be handled while the scan still runs, before
    /// anything was cached; then only the epoch tells. True when recorded.
    pub fn insert_clean_unwritten(&self, key: FileKey, generation: u64, epoch: u64) -> bool {
        let mut shard = self.shard(key.inode());
        if shard.epochs[epoch_slot(key.inode())] != epoch {
            return false;
        }
        shard.insert(key, generation);
        true
    }

    /// Forgets everything (on database reload).
    pub fn clear(&self) {
        self.infected_map().clear();
        for s in self.shards.iter() {
            s.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
    }

    /// The number of entries (takes every shard lock in turn: not for the hot path).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).slots.len())
            .sum()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::Arc;

    fn key(ino: u64) -> FileKey {
        FileKey {
            dev: 1,
            ino,
            size: 10,
            mtime_ns: 100,
            ctime_ns: 200,
        }
    }

    #[test]
    fn hit_and_miss() {
        let c = VerdictCache::new(100);
        assert!(!c.contains(&key(1), 0));
        c.insert_clean(key(1), 0);
        assert!(c.contains(&key(1), 0));
        assert!(!c.contains(&key(2), 0));
        assert_eq!(c.len(), 1);
        c.insert_clean(key(1), 0);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn invalidated_by_size_mtime_ctime_dev_and_generation() {
        let c = VerdictCache::new(100);
        let k = key(1);
        c.insert_clean(k, 3);
        assert!(c.contains(&k, 3));
        assert!(!c.contains(&FileKey { size: 11, ..k }, 3));
        assert!(!c.contains(&FileKey { mtime_ns: 101, ..k }, 3));
        assert!(!c.contains(&FileKey { ctime_ns: 201, ..k }, 3));
        assert!(!c.contains(&FileKey { dev: 2, ..k }, 3));
        assert!(!c.contains(&k, 4));
        // Re-inserting under the new generation takes over.
        c.insert_clean(k, 4);
        assert!(c.contains(&k, 4));
        assert!(!c.contains(&k, 3));
    }

    #[test]
    fn one_version_per_inode() {
        let c = VerdictCache::new(100);
        let old = key(1);
        let new = FileKey { size: 99, ..old };
        c.insert_clean(old, 0);
        c.insert_clean(new, 0);
        assert_eq!(c.len(), 1);
        assert!(c.contains(&new, 0));
        assert!(!c.contains(&old, 0));
        // Forgetting needs only the inode, whatever version is cached.
        assert!(c.forget((1, 1)));
        assert!(!c.contains(&new, 0));
    }

    #[test]
    fn a_write_during_the_scan_keeps_the_verdict_out() {
        let c = VerdictCache::new(64);
        let k = key(7);
        let epoch = c.write_epoch(k.inode());
        // The close-after-write is handled while the scan runs: nothing cached yet.
        assert!(!c.forget(k.inode()));
        assert!(!c.insert_clean_unwritten(k, 1, epoch));
        assert!(!c.contains(&k, 1));
        // A scan that starts after it caches.
        let epoch = c.write_epoch(k.inode());
        assert!(c.insert_clean_unwritten(k, 1, epoch));
        assert!(c.contains(&k, 1));
        // Other files' writes do not hold a verdict back (unless they share its slot).
        let other = (1u64..)
            .map(key)
            .find(|o| epoch_slot(o.inode()) != epoch_slot(k.inode()))
            .unwrap();
        let epoch = c.write_epoch(k.inode());
        c.forget(other.inode());
        assert!(c.insert_clean_unwritten(k, 2, epoch));
    }

    #[test]
    fn remove_and_clear() {
        let c = VerdictCache::new(100);
        for i in 0..50 {
            c.insert_clean(key(i), 0);
        }
        assert!(c.forget(key(7).inode()));
        assert!(!c.forget(key(7).inode()));
        assert!(!c.contains(&key(7), 0));
        assert!((0..50).filter(|&i| i != 7).all(|i| c.contains(&key(i), 0)));
        assert_eq!(c.len(), 49);
        c.clear();
        assert!(c.is_empty());
        assert!(!c.contains(&key(1), 0));
    }

    #[test]
    fn capacity_is_a_bound() {
        for cap in [0, 1, 2, 3, 7, 8, 9, 100, 513, 1000] {
            let c = VerdictCache::new(cap);
            assert_eq!(c.capacity(), cap);
            for i in 0..(cap as u64 * 3 + 10) {
                c.insert_clean(key(i), 0);
                assert!(c.len() <= cap, "cap {cap}");
            }
            if cap > 0 {
                // The capacity is fully usable: the shards' shares sum to it.
                let total: usize = c.shards.iter().map(|s| s.lock().unwrap().capacity).sum();
                assert_eq!(total, cap);
                assert!(c.len() > cap / 2, "cap {cap}: {}", c.len());
            }
        }
    }

    #[test]
    fn clock_keeps_recently_used_entries() {
        // One shard: capacity 4 gives a single shard.
        let c = VerdictCache::new(4);
        assert_eq!(c.shards.len(), 1);
        for i in 0..4 {
            c.insert_clean(key(i), 0);
        }
        assert!(c.contains(&key(0), 0)); // referenced: survives the next eviction
        c.insert_clean(key(4), 0);
        assert!(c.contains(&key(0), 0));
        assert!(!c.contains(&key(1), 0)); // the oldest unreferenced went
        assert!(c.contains(&key(4), 0));
        assert_eq!(c.len(), 4);
    }

    #[test]
    fn concurrent_use() {
        let c = Arc::new(VerdictCache::new(100_000));
        let threads: Vec<_> = (0..8u64)
            .map(|t| {
                let c = Arc::clone(&c);
                std::thread::spawn(move || {
                    for i in 0..2_000u64 {
                        let k = key(t * 1_000_000 + i);
                        c.insert_clean(k, 1);
                        assert!(c.contains(&k, 1));
                        // Also hit another thread's keys, and some removals.
                        let _ = c.contains(&key(((t + 1) % 8) * 1_000_000 + i), 1);
                        if i % 10 == 0 {
                            c.forget(k.inode());
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(c.len(), 8 * 1800);
        for t in 0..8u64 {
            for i in 0..2_000u64 {
                assert_eq!(c.contains(&key(t * 1_000_000 + i), 1), i % 10 != 0);
            }
        }
    }

    #[test]
    fn kernel_release_comparison() {
        assert!(release_at_least("6.18.0-1-amd64", (6, 13)));
        assert!(release_at_least("6.13", (6, 13)));
        assert!(release_at_least("7.0.1", (6, 13)));
        assert!(!release_at_least("6.12.9", (6, 13)));
        assert!(!release_at_least("5.19.0", (6, 13)));
        assert!(!release_at_least("garbage", (6, 13)));
    }

    #[test]
    fn tmpfs_or_ext4_files_have_multigrain_ctime_on_new_kernels() {
        // The test's own temp file lives on ext4 or tmpfs here; on 6.13+ both qualify.
        let f = tempfile::tempfile().unwrap();
        assert_eq!(has_multigrain_ctime(&f), kernel_has_multigrain());
        let w = Duration::from_secs(2);
        let expect = if kernel_has_multigrain() {
            Duration::ZERO
        } else {
            w
        };
        assert_eq!(FileKey::settle_window(&f, w), expect);
    }

    #[test]
    fn settled_only_after_the_window() {
        let k = FileKey {
            mtime_ns: 5_000_000_000,
            ctime_ns: 10_000_000_000,
            ..key(1)
        };
        let at = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
        let w = Duration::from_secs(2);
        assert!(!k.is_settled(at(11), w));
        assert!(k.is_settled(at(12), w));
        assert!(k.is_settled(at(11), Duration::ZERO));
        // A change in the future (clock set back) is never settled.
        assert!(!k.is_settled(at(3), w));
    }

    #[test]
    fn file_key_follows_changes() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"hello").unwrap();
        let k1 = FileKey::of(f.as_file()).unwrap();
        assert_eq!(k1, FileKey::of(f.as_file()).unwrap());
        assert_eq!(k1.size, 5);
        f.write_all(b"!").unwrap();
        let k2 = FileKey::of(f.as_file()).unwrap();
        assert_ne!(k1, k2);
        assert_eq!((k1.dev, k1.ino), (k2.dev, k2.ino));
        // A same-size change shows in mtime/ctime (multigrain timestamps on 6.13+; set an
        // explicit mtime so the test does not depend on the filesystem's clock granularity).
        let t = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        f.as_file().set_modified(t).unwrap();
        let k3 = FileKey::of(f.as_file()).unwrap();
        assert_eq!(k3.size, k2.size);
        assert_ne!(k3, k2);
        assert_eq!(k3.mtime_ns, 1_000_000 * 1_000_000_000);
    }
}
