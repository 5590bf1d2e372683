//! The clean-verdict cache, as clamd's (on by default, `DisableCache yes` turns it off): a
//! file whose exact bytes were found clean by the database in use is not scanned again.
//!
//! - The key is the BLAKE3 digest of the bytes the engine scanned (never a path or an
//!   inode): a malicious file cannot be made to collide with a cached clean one.
//! - Only clean verdicts are kept; detections, skipped files (over the size limits) and
//!   errors are scanned every time.
//! - One cache belongs to one loaded database ([`Loaded`]): a RELOAD swaps the database and
//!   an empty cache in one step, so no verdict of the old database answers once the new one
//!   is live. A scan that started on the old database files its verdict in the old cache,
//!   which goes away with the last scan holding it.
//! - ALLMATCHSCAN does not use it (its reply lists every match; it is kept as it was).
//! - Bounded: [`ENTRIES`] digests (as clamd's 65536), evicted by quick_cache's CLOCK-Pro
//!   policy; quick_cache is sharded, so connection threads and workers do not contend on one
//!   lock.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::server::Database;

/// How many clean digests are kept (clamd keeps 256 trees of 256 entries).
pub const ENTRIES: usize = 65536;

/// A BLAKE3 digest of scanned bytes.
pub type Digest = [u8; 32];

/// The digest of `data`.
pub fn digest(data: &[u8]) -> Digest {
    *blake3::hash(data).as_bytes()
}

/// A digest computed while bytes arrive (INSTREAM chunks).
#[derive(Default)]
pub struct Hasher(blake3::Hasher);

impl Hasher {
    /// Adds `data`.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The digest of everything added.
    pub fn finish(&self) -> Digest {
        *self.0.finalize().as_bytes()
    }
}

/// Digests of contents found clean by one database.
pub struct CleanCache {
    entries: quick_cache::sync::Cache<Digest, ()>,
}

impl CleanCache {
    /// An empty cache of at most `entries` digests.
    pub fn new(entries: usize) -> CleanCache {
        CleanCache {
            entries: quick_cache::sync::Cache::new(entries.max(1)),
        }
    }

    /// Whether `d` was found clean.
    pub fn contains(&self, d: &Digest) -> bool {
        self.entries.get(d).is_some()
    }

    /// Records that `d` was found clean.
    pub fn insert(&self, d: Digest) {
        self.entries.insert(d, ());
    }

    /// Digests held now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no digest is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A database with the clean verdicts it gave (`None`: `DisableCache yes`).
pub struct Loaded {
    /// The database.
    pub db: Database,
    /// Its clean verdicts.
    pub cache: Option<CleanCache>,
}

impl Loaded {
    /// `db` with an empty cache, or none when `enabled` is false.
    pub fn new(db: Database, enabled: bool) -> Loaded {
        Loaded {
            db,
            cache: enabled.then(|| CleanCache::new(ENTRIES)),
        }
    }
}

/// Cache lookups since the server started (every database).
#[derive(Debug, Default)]
pub struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    uncached: AtomicU64,
}

/// A copy of the [`Counters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Answered from the cache (not scanned).
    pub hits: u64,
    /// Looked up, not found, scanned.
    pub misses: u64,
    /// Scanned without a lookup: the cache is off, the file is larger than the server reads
    /// into memory (see `conn::MEMORY_STREAM`), or ALLMATCHSCAN.
    pub uncached: u64,
}

impl CacheStats {
    /// Every verdict counted (hit, miss or uncached).
    pub fn total(&self) -> u64 {
        self.hits + self.misses + self.uncached
    }
}

impl Counters {
    pub(crate) fn hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn miss(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn uncached(&self) {
        self.uncached.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts now.
    pub fn get(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            uncached: self.uncached.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_blake3_of_the_bytes_and_streaming_agrees() {
        // BLAKE3's published test vector for the empty input.
        assert_eq!(
            digest(b"")[..4],
            [0xaf, 0x13, 0x49, 0xb9],
            "blake3(\"\") starts af1349b9"
        );
        let mut h = Hasher::default();
        h.update(b"hello ");
        h.update(b"world");
        assert_eq!(h.finish(), digest(b"hello world"));
        assert_ne!(digest(b"hello world"), digest(b"hello world\n"));
    }

    #[test]
    fn cache_is_bounded_and_remembers_recent_digests() {
        let c = CleanCache::new(100);
        assert!(c.is_empty());
        for i in 0u32..1000 {
            c.insert(digest(&i.to_le_bytes()));
        }
        assert!(c.len() <= 100, "{} entries", c.len());
        assert!(c.contains(&digest(&999u32.to_le_bytes())));
        assert!(!c.contains(&digest(b"never inserted")));
    }
}
