//! Whole-file hash signatures, looked up size first.
//!
//! Official databases hold millions of hash signatures, so the lookup must cost
//! nothing for the files that no signature could match. The loader's column-wise
//! tables are sorted in place by `(size, digest, name id)`: a binary search on the size
//! alone tells whether a file needs hashing at all, and only then is the digest
//! computed and searched. `*`-size entries carry the largest size, so they sort last
//! and force hashing every file only when they exist.

use md5::Md5;
use moat_sigs::{HashEntry, HashTable, Names, ANY_SIZE};
use sha1::Sha1;
use sha2::{Digest as _, Sha256};

/// Sorted entries of one digest length.
struct Sorted<const N: usize>(Vec<HashEntry<N>>);

impl<const N: usize> Sorted<N> {
    fn new(mut entries: Vec<HashEntry<N>>) -> Self {
        // Name ids grow in load order, so among equal (size, digest) the last loaded
        // sorts last: that is the one ClamAV reports.
        entries.sort_unstable();
        Sorted(entries)
    }

    fn has_any_size(&self) -> bool {
        self.0.last().is_some_and(|e| e.size == ANY_SIZE)
    }

    fn wants(&self, size: u64) -> bool {
        self.has_any_size() || self.0.binary_search_by_key(&size, |e| e.size).is_ok()
    }

    /// The last-loaded entry with exactly this size and digest.
    fn find(&self, size: u64, digest: &[u8; N]) -> Option<u32> {
        let end = self
            .0
            .partition_point(|e| (e.size, &e.digest) <= (size, digest));
        let e = self.0.get(end.checked_sub(1)?)?;
        (e.size == size && &e.digest == digest).then_some(e.name)
    }

    /// A sized entry first (ClamAV prefers it), else a `*`-size entry.
    fn lookup(&self, size: u64, digest: &[u8; N]) -> Option<u32> {
        self.find(size, digest)
            .or_else(|| self.find(ANY_SIZE, digest))
    }
}

/// A compiled set of hash signatures (detections or an allow list).
pub struct HashIndex {
    md5: Sorted<16>,
    sha1: Sorted<20>,
    sha256: Sorted<32>,
    names: Names,
}

impl HashIndex {
    /// Compiles a loaded table (sorting it in place: no copy).
    pub fn new(table: HashTable) -> HashIndex {
        HashIndex {
            md5: Sorted::new(table.md5),
            sha1: Sorted::new(table.sha1),
            sha256: Sorted::new(table.sha256),
            names: table.names,
        }
    }

    /// The number of signatures.
    pub fn len(&self) -> usize {
        self.md5.0.len() + self.sha1.0.len() + self.sha256.0.len()
    }

    /// Whether there are no signatures.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether any signature could match a file of `size` bytes (if not, the file
    /// need not be hashed at all).
    pub fn wants(&self, size: u64) -> bool {
        self.md5.wants(size) || self.sha1.wants(size) || self.sha256.wants(size)
    }

    /// Looks up the complete contents `data` of a file: MD5 first, then SHA-1, then
    /// SHA-256, each computed only when some signature has this size.
    pub fn lookup(&self, data: &[u8], digests: &mut FileDigests) -> Option<&str> {
        let size = data.len() as u64;
        let hit = self
            .md5
            .wants(size)
            .then(|| self.md5.lookup(size, digests.md5(data)))
            .flatten()
            .or_else(|| {
                self.sha1
                    .wants(size)
                    .then(|| self.sha1.lookup(size, digests.sha1(data)))
                    .flatten()
            })
            .or_else(|| {
                self.sha256
                    .wants(size)
                    .then(|| self.sha256.lookup(size, digests.sha256(data)))
                    .flatten()
            })?;
        Some(self.names.get(hit))
    }
}

/// The digests of one file, each computed at most once and only when asked for
/// (detection and allow-list lookups share them).
#[derive(Default)]
pub struct FileDigests {
    md5: Option<[u8; 16]>,
    sha1: Option<[u8; 20]>,
    sha256: Option<[u8; 32]>,
}

impl FileDigests {
    fn md5(&mut self, data: &[u8]) -> &[u8; 16] {
        self.md5.get_or_insert_with(|| Md5::digest(data).into())
    }

    fn sha1(&mut self, data: &[u8]) -> &[u8; 20] {
        self.sha1.get_or_insert_with(|| Sha1::digest(data).into())
    }

    fn sha256(&mut self, data: &[u8]) -> &[u8; 32] {
        self.sha256
            .get_or_insert_with(|| Sha256::digest(data).into())
    }
}
