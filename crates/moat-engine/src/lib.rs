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
//! [`Scanner`], which also owns file access: small files are read whole into a reused
//! buffer, large ones streamed in chunks ([`Engine::scan_stream`]), so memory stays
//! bounded whatever the file size.
//!
//! Order of decisions for one file, as ClamAV reports them: the first body signature
//! to match in scan order, else the first hash signature (MD5, SHA-1, SHA-256); a
//! detection is cancelled when the file's hash is on the allow list.

pub mod body;
pub mod filetype;
pub mod hashes;
mod scanner;

pub use scanner::{Limits, ScanError, ScanOutcome, Scanner, Skip};

use std::io::{self, Read};

use body::{BodyMatch, BodyMatcher, BodyScan};
use hashes::{FileDigests, HashIndex, StreamDigests};
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
        let body = self.body.scan(data);
        self.decide(body, &mut FileDigests::of(data))
    }

    /// Scans a file of `file_len` bytes read from `reader`, `chunk` bytes at a time
    /// into `buffer` (reused between calls): memory stays bounded whatever the file
    /// size, and nothing breaks if the file shrinks meanwhile (unlike a mapping,
    /// which raises SIGBUS). At most `file_len` bytes are read. Returns the verdict
    /// and the number of bytes read.
    pub fn scan_stream(
        &self,
        reader: impl Read,
        file_len: u64,
        chunk: usize,
        buffer: &mut Vec<u8>,
    ) -> io::Result<(Verdict<'_>, u64)> {
        let mut reader = reader.take(file_len);
        let (reach_back, reach_ahead) = (self.body.reach_back(), self.body.reach_ahead());
        let chunk = chunk
            .max(4 * (reach_back + reach_ahead))
            .max(filetype::TEXT_SNIFF_LEN);
        let mut wanted = self.hashes.kinds_wanted(file_len);
        let allow = self.allow.kinds_wanted(file_len);
        wanted = (
            wanted.0 || allow.0,
            wanted.1 || allow.1,
            wanted.2 || allow.2,
        );
        let mut digests = StreamDigests::new(wanted);
        buffer.clear();
        let mut base = 0u64;
        let mut scan = None;
        loop {
            let old = buffer.len();
            let eof = read_up_to(&mut reader, buffer, chunk)? < chunk;
            digests.update(&buffer[old..]);
            let scan = scan
                .get_or_insert_with(|| self.body.start(file_len, filetype::is_ascii_text(buffer)));
            let end = base + buffer.len() as u64;
            let until = if eof {
                end
            } else {
                end.saturating_sub(reach_ahead as u64)
            };
            scan.feed(buffer, base, until);
            if eof {
                break;
            }
            let keep_from = until.saturating_sub(reach_back as u64).max(base);
            buffer.drain(..(keep_from - base) as usize);
            base = keep_from;
        }
        let mut digests = digests.finish();
        let read = digests.size;
        if read < MIN_SCANNED_SIZE as u64 {
            return Ok((Verdict::Clean, read));
        }
        let body = scan.and_then(BodyScan::finish);
        Ok((self.decide(body, &mut digests), read))
    }

    /// The verdict from the body match, else the hash signatures; a detection is
    /// cancelled by the allow list.
    fn decide(&self, body: Option<BodyMatch>, digests: &mut FileDigests<'_>) -> Verdict<'_> {
        let detection = body
            .map(|m| &*self.body.sig(m.sig).name)
            .or_else(|| self.hashes.lookup(digests));
        match detection {
            Some(_) if self.allow.lookup(digests).is_some() => Verdict::Clean,
            Some(name) => Verdict::Infected(name),
            None => Verdict::Clean,
        }
    }
}

/// Appends up to `n` bytes from `reader` to `buffer`; fewer only at end of input.
fn read_up_to(reader: &mut impl Read, buffer: &mut Vec<u8>, n: usize) -> io::Result<usize> {
    let start = buffer.len();
    buffer.resize(start + n, 0);
    let mut filled = 0;
    while filled < n {
        match reader.read(&mut buffer[start + filled..]) {
            Ok(0) => break,
            Ok(k) => filled += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                buffer.truncate(start + filled);
                return Err(e);
            }
        }
    }
    buffer.truncate(start + filled);
    Ok(filled)
}
