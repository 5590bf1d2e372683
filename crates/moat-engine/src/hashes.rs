//! Whole-file hash signatures, looked up size first.
//!
//! Official databases hold millions of hash signatures, so the lookup must cost
//! nothing for the files that no signature could match. Entries are sorted by
//! `(size, digest)`: a binary search on the size alone tells whether a file needs
//! hashing at all, and only then is the digest computed and searched. `*`-size entries
//! (rare) live in a separate sorted table and force hashing every file.

use md5::Md5;
use moat_sigs::{Digest, HashSig};
use sha1::Sha1;
use sha2::{Digest as _, Sha256};

/// One sorted table of digests of length `N` (16: MD5, 20: SHA-1, 32: SHA-256).
#[derive(Default)]
struct Table<const N: usize> {
    /// `(size, digest, name index)`, sorted by `(size, digest)`, stable in load order:
    /// among equal entries the last loaded one wins, as in ClamAV.
    sized: Vec<(u64, [u8; N], u32)>,
    /// `(digest, name index)` of `*`-size entries, sorted by digest.
    any_size: Vec<([u8; N], u32)>,
}

impl<const N: usize> Table<N> {
    fn finish(&mut self) {
        self.sized.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        self.any_size.sort_by(|a, b| a.0.cmp(&b.0));
        self.sized.shrink_to_fit();
        self.any_size.shrink_to_fit();
    }

    fn wants(&self, size: u64) -> bool {
        !self.any_size.is_empty() || self.sized.binary_search_by_key(&size, |e| e.0).is_ok()
    }

    fn lookup(&self, size: u64, digest: &[u8; N]) -> Option<u32> {
        let i = self
            .sized
            .partition_point(|e| (e.0, &e.1) <= (size, digest));
        if let Some(e) = i.checked_sub(1).map(|i| &self.sized[i]) {
            if e.0 == size && &e.1 == digest {
                return Some(e.2);
            }
        }
        let i = self.any_size.partition_point(|e| &e.0 <= digest);
        let e = &self.any_size[i.checked_sub(1)?];
        (&e.0 == digest).then_some(e.1)
    }

    fn len(&self) -> usize {
        self.sized.len() + self.any_size.len()
    }
}

/// A compiled set of hash signatures (detections or an allow list).
#[derive(Default)]
pub struct HashIndex {
    md5: Table<16>,
    sha1: Table<20>,
    sha256: Table<32>,
    names: Vec<Box<str>>,
}

impl HashIndex {
    /// Compiles the signatures; on equal size and digest the last loaded wins.
    pub fn new(sigs: Vec<HashSig>) -> HashIndex {
        let mut index = HashIndex::default();
        index.names.reserve_exact(sigs.len());
        for sig in sigs {
            let name = index.names.len() as u32;
            index.names.push(sig.name);
            match (sig.digest, sig.size) {
                (Digest::Md5(d), Some(s)) => index.md5.sized.push((s, d, name)),
                (Digest::Md5(d), None) => index.md5.any_size.push((d, name)),
                (Digest::Sha1(d), Some(s)) => index.sha1.sized.push((s, d, name)),
                (Digest::Sha1(d), None) => index.sha1.any_size.push((d, name)),
                (Digest::Sha256(d), Some(s)) => index.sha256.sized.push((s, d, name)),
                (Digest::Sha256(d), None) => index.sha256.any_size.push((d, name)),
            }
        }
        index.md5.finish();
        index.sha1.finish();
        index.sha256.finish();
        index
    }

    /// The number of signatures.
    pub fn len(&self) -> usize {
        self.md5.len() + self.sha1.len() + self.sha256.len()
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
        let hit = (self.md5.wants(size))
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
        Some(&self.names[hit as usize])
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
