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
        let (md5, sha1, sha256) = self.kinds_wanted(size);
        md5 || sha1 || sha256
    }

    /// Which digests (MD5, SHA-1, SHA-256) some signature could need for a file of
    /// `size` bytes.
    pub fn kinds_wanted(&self, size: u64) -> (bool, bool, bool) {
        (
            self.md5.wants(size),
            self.sha1.wants(size),
            self.sha256.wants(size),
        )
    }

    /// Looks up a file by its digests: MD5 first, then SHA-1, then SHA-256, each
    /// computed only when some signature has this size.
    pub fn lookup(&self, digests: &mut FileDigests<'_>) -> Option<&str> {
        let size = digests.size;
        let hit = self
            .md5
            .wants(size)
            .then(|| self.md5.lookup(size, digests.md5()))
            .flatten()
            .or_else(|| {
                self.sha1
                    .wants(size)
                    .then(|| self.sha1.lookup(size, digests.sha1()))
                    .flatten()
            })
            .or_else(|| {
                self.sha256
                    .wants(size)
                    .then(|| self.sha256.lookup(size, digests.sha256()))
                    .flatten()
            })?;
        Some(self.names.get(hit))
    }

    /// Every signature matching the file, one per digest kind at most, in
    /// [`HashIndex::lookup`]'s order (MD5, SHA-1, SHA-256).
    pub fn lookup_all(&self, digests: &mut FileDigests<'_>) -> Vec<&str> {
        let size = digests.size;
        let hits = [
            self.md5
                .wants(size)
                .then(|| self.md5.lookup(size, digests.md5()))
                .flatten(),
            self.sha1
                .wants(size)
                .then(|| self.sha1.lookup(size, digests.sha1()))
                .flatten(),
            self.sha256
                .wants(size)
                .then(|| self.sha256.lookup(size, digests.sha256()))
                .flatten(),
        ];
        hits.into_iter()
            .flatten()
            .map(|hit| self.names.get(hit))
            .collect()
    }
}

/// The digests of one file, each computed at most once and only when asked for
/// (detection and allow-list lookups share them), either from the file's bytes in
/// memory or precomputed while streaming it.
pub struct FileDigests<'d> {
    /// The file's size.
    pub size: u64,
    data: Option<&'d [u8]>,
    md5: Option<[u8; 16]>,
    sha1: Option<[u8; 20]>,
    sha256: Option<[u8; 32]>,
}

impl<'d> FileDigests<'d> {
    /// Digests of `data`, computed on demand.
    pub fn of(data: &'d [u8]) -> Self {
        FileDigests {
            size: data.len() as u64,
            data: Some(data),
            md5: None,
            sha1: None,
            sha256: None,
        }
    }

    fn data(&self) -> &'d [u8] {
        self.data
            .expect("a streamed file's digests are computed for every kind the tables want")
    }

    fn md5(&mut self) -> &[u8; 16] {
        let data = self.md5.is_none().then(|| self.data());
        self.md5
            .get_or_insert_with(|| Md5::digest(data.unwrap_or_default()).into())
    }

    fn sha1(&mut self) -> &[u8; 20] {
        let data = self.sha1.is_none().then(|| self.data());
        self.sha1
            .get_or_insert_with(|| Sha1::digest(data.unwrap_or_default()).into())
    }

    fn sha256(&mut self) -> &[u8; 32] {
        let data = self.sha256.is_none().then(|| self.data());
        self.sha256
            .get_or_insert_with(|| Sha256::digest(data.unwrap_or_default()).into())
    }
}

/// Digests computed incrementally while a file is read in chunks.
pub struct StreamDigests {
    md5: Option<Md5>,
    sha1: Option<Sha1>,
    sha256: Option<Sha256>,
    size: u64,
}

impl StreamDigests {
    /// Hashers for the kinds `(md5, sha1, sha256)` that are wanted.
    pub fn new((md5, sha1, sha256): (bool, bool, bool)) -> Self {
        StreamDigests {
            md5: md5.then(Md5::new),
            sha1: sha1.then(Sha1::new),
            sha256: sha256.then(Sha256::new),
            size: 0,
        }
    }

    /// Feeds the next bytes of the file.
    pub fn update(&mut self, bytes: &[u8]) {
        self.size += bytes.len() as u64;
        if let Some(h) = &mut self.md5 {
            h.update(bytes);
        }
        if let Some(h) = &mut self.sha1 {
            h.update(bytes);
        }
        if let Some(h) = &mut self.sha256 {
            h.update(bytes);
        }
    }

    /// The digests of everything fed.
    pub fn finish(self) -> FileDigests<'static> {
        FileDigests {
            size: self.size,
            data: None,
            md5: self.md5.map(|h| h.finalize().into()),
            sha1: self.sha1.map(|h| h.finalize().into()),
            sha256: self.sha256.map(|h| h.finalize().into()),
        }
    }
}
