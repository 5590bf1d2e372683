//! Hash signatures stored column-wise, ready for the engine to sort in place.
//!
//! Official databases hold millions of hash signatures, so their in-memory form
//! matters more than anything else for load time and peak memory: one compact entry
//! per signature (size, digest, name id) in a vector per hash kind, and every name in
//! one shared text arena. No allocation per signature.

use crate::line::{Digest, HashSig};

/// The size of an entry that matches files of any size (`*` in the database).
pub const ANY_SIZE: u64 = u64::MAX;

/// One hash signature: file size ([`ANY_SIZE`] for `*`), digest, and name id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HashEntry<const N: usize> {
    /// File size in bytes, or [`ANY_SIZE`].
    pub size: u64,
    /// The digest.
    pub digest: [u8; N],
    /// Index into [`Names`]; increases in load order.
    pub name: u32,
}

/// Detection names, stored back to back in one string.
#[derive(Debug, Default, Clone)]
pub struct Names {
    text: String,
    ends: Vec<u32>,
}

impl Names {
    /// Adds a name (with `suffix` appended) and returns its id.
    pub fn push(&mut self, name: &str, suffix: &str) -> u32 {
        self.text.push_str(name);
        self.text.push_str(suffix);
        self.ends.push(self.text.len() as u32);
        (self.ends.len() - 1) as u32
    }

    /// The name with id `id`.
    pub fn get(&self, id: u32) -> &str {
        let id = id as usize;
        let start = if id == 0 {
            0
        } else {
            self.ends[id - 1] as usize
        };
        &self.text[start..self.ends[id] as usize]
    }

    /// The number of names.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are no names.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Appends all of `other`'s names; returns the id offset to add to its ids.
    fn append(&mut self, other: Names) -> u32 {
        let offset = self.ends.len() as u32;
        let base = self.text.len() as u32;
        self.text.push_str(&other.text);
        self.ends.extend(other.ends.into_iter().map(|e| e + base));
        offset
    }

    fn shrink_to_fit(&mut self) {
        self.text.shrink_to_fit();
        self.ends.shrink_to_fit();
    }
}

/// A set of hash signatures (detections, or an allow list).
#[derive(Debug, Default, Clone)]
pub struct HashTable {
    /// MD5 entries.
    pub md5: Vec<HashEntry<16>>,
    /// SHA-1 entries.
    pub sha1: Vec<HashEntry<20>>,
    /// SHA-256 entries.
    pub sha256: Vec<HashEntry<32>>,
    /// Their names.
    pub names: Names,
}

impl HashTable {
    /// Adds one signature.
    pub fn push(&mut self, sig: &HashSig) {
        self.push_parts(sig.digest, sig.size, &sig.name, "");
    }

    /// Adds one signature from its parts, appending `suffix` to the name.
    pub fn push_parts(&mut self, digest: Digest, size: Option<u64>, name: &str, suffix: &str) {
        let name = self.names.push(name, suffix);
        let size = size.unwrap_or(ANY_SIZE);
        match digest {
            Digest::Md5(digest) => self.md5.push(HashEntry { size, digest, name }),
            Digest::Sha1(digest) => self.sha1.push(HashEntry { size, digest, name }),
            Digest::Sha256(digest) => self.sha256.push(HashEntry { size, digest, name }),
        }
    }

    /// The number of signatures.
    pub fn len(&self) -> usize {
        self.md5.len() + self.sha1.len() + self.sha256.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The names of all entries, MD5 first, then SHA-1, then SHA-256.
    pub fn entry_names(&self) -> impl Iterator<Item = &str> {
        let ids = self.md5.iter().map(|e| e.name);
        let ids = ids.chain(self.sha1.iter().map(|e| e.name));
        ids.chain(self.sha256.iter().map(|e| e.name))
            .map(|id| self.names.get(id))
    }

    /// Moves all of `other`'s entries to the end of this table (load order kept).
    pub fn append(&mut self, other: HashTable) {
        let offset = self.names.append(other.names);
        let shift = |name: u32| name + offset;
        self.md5.extend(other.md5.into_iter().map(|e| HashEntry {
            name: shift(e.name),
            ..e
        }));
        self.sha1.extend(other.sha1.into_iter().map(|e| HashEntry {
            name: shift(e.name),
            ..e
        }));
        self.sha256
            .extend(other.sha256.into_iter().map(|e| HashEntry {
                name: shift(e.name),
                ..e
            }));
    }

    /// Keeps only the entries whose name satisfies `keep`.
    pub fn retain_names(&mut self, mut keep: impl FnMut(&str) -> bool) {
        let names = &self.names;
        self.md5.retain(|e| keep(names.get(e.name)));
        self.sha1.retain(|e| keep(names.get(e.name)));
        self.sha256.retain(|e| keep(names.get(e.name)));
    }

    /// Releases spare capacity once loading is done.
    pub fn shrink_to_fit(&mut self) {
        self.md5.shrink_to_fit();
        self.sha1.shrink_to_fit();
        self.sha256.shrink_to_fit();
        self.names.shrink_to_fit();
    }
}
