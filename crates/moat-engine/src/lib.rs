//! moat's scan engine: ClamAV signatures compiled into an immutable matcher.
//!
//! [`Engine::new`] takes a loaded [`moat_sigs::Database`] and compiles it once:
//! - body signatures into one multi-pattern automaton plus verifiers ([`body`]),
//! - hash signatures into size-keyed sorted tables ([`hashes`]), so files of sizes
//!   no signature has are never hashed,
//! - the allow list (`.fp`/`.sfp`) into another such table.
//!
//! The engine is `Send + Sync` and never changes after it is built: scanning threads
//! share it by reference (or `Arc`) with no lock. Per-thread scratch space lives in a
//! [`Scanner`], which also owns file access: small files are read into a reused
//! buffer, large ones memory-mapped, so memory stays bounded whatever the file size.
//!
//! Order of decisions for one file, as ClamAV reports them: the first body signature
//! to match in scan order, else the first hash signature (MD5, SHA-1, SHA-256); a
//! detection is cancelled when the file's hash is on the allow list.

pub mod body;
pub mod filetype;
pub mod hashes;
mod scanner;

pub use scanner::{Limits, ScanError, ScanOutcome, Scanner, Skip};

use body::BodyMatcher;
use hashes::{FileDigests, HashIndex};
use moat_sigs::Database;

/// Content shorter than this is never detected, by any kind of signature (measured on
/// ClamAV 1.4.6: files of 1 to 5 bytes are reported clean whatever the database).
pub const MIN_SCANNED_SIZE: usize = 6;

/// The result of scanning some content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict<'e> {
    /// No signature matched (or the allow list cleared the file).
    Clean,
    /// A signature matched; the detection name as ClamAV reports it.
    Infected(&'e str),
}

impl Verdict<'_> {
    /// Whether the verdict is a detection.
    pub fn is_infected(&self) -> bool {
        matches!(self, Verdict::Infected(_))
    }
}

/// The compiled signatures. Immutable and thread-safe.
pub struct Engine {
    body: BodyMatcher,
    hashes: HashIndex,
    allow: HashIndex,
    /// clamscan's "Known viruses" for the database this engine was built from.
    known: usize,
}

impl Engine {
    /// Compiles a loaded database.
    pub fn new(db: Database) -> Engine {
        let known = db.signature_count();
        Engine {
            known,
            body: BodyMatcher::new(db.bodies),
            hashes: HashIndex::new(db.hashes),
            allow: HashIndex::new(db.allow),
        }
    }

    /// The number of signatures loaded, allow-list entries included, as clamscan
    /// counts its "Known viruses".
    pub fn signature_count(&self) -> usize {
        self.known
    }

    /// Scans the complete contents of a file held in memory.
    pub fn scan_bytes(&self, data: &[u8]) -> Verdict<'_> {
        if data.len() < MIN_SCANNED_SIZE {
            return Verdict::Clean;
        }
        let mut digests = FileDigests::default();
        let detection = self
            .body
            .scan(data, data.len() as u64)
            .map(|m| &*self.body.sig(m.sig).name)
            .or_else(|| self.hashes.lookup(data, &mut digests));
        match detection {
            Some(_) if self.allow.lookup(data, &mut digests).is_some() => Verdict::Clean,
            Some(name) => Verdict::Infected(name),
            None => Verdict::Clean,
        }
    }
}

#[cfg(test)]
mod tests;
