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
//! Order of decisions for one file, as ClamAV reports them (measured): the first
//! target-0 body signature on the raw bytes, else the first hash signature (MD5,
//! SHA-1, SHA-256), else the first target-7 then target-0 body signature on the
//! normalized-text copy ([`textnorm`], for the files [`filetype::gets_normalized`]
//! accepts); a detection is cancelled when the file's hash is on the allow list.

#![warn(missing_docs)]

pub mod body;
pub mod containers;
pub mod filetype;
pub mod hashes;
mod scanner;
pub mod textnorm;

pub use scanner::{Limits, ScanError, ScanOutcome, Scanner, Skip};

use std::io::{self, Read};

use body::{BodyMatcher, BodyScan};
use hashes::{FileDigests, HashIndex, StreamDigests};
use moat_sigs::hex::Element;
use moat_sigs::line::{TARGET_ANY, TARGET_TEXT};
use moat_sigs::Database;
use moat_sigs::{BodySig, OffsetBase};
use textnorm::Normalizer;

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
    /// Target-0 body signatures, matched against the raw bytes.
    body: BodyMatcher,
    /// Target-7 body signatures, matched against the normalized copy ([`textnorm`])
    /// first: ClamAV tries a file type's own signatures before the generic ones.
    text: BodyMatcher,
    /// Target-0 body signatures that could match normalized text, matched against
    /// the normalized copy after the target-7 ones.
    text_any: BodyMatcher,
    hashes: HashIndex,
    allow: HashIndex,
    /// clamscan's "Known viruses" for the database this engine was built from.
    known: usize,
}

impl Engine {
    /// Compiles a loaded database.
    pub fn new(db: Database) -> Engine {
        let known = db.signature_count();
        let text_sigs = |target| {
            let sigs = db
                .bodies
                .iter()
                .filter(|s| s.target == target && could_match_text(s));
            sigs.cloned().collect::<Vec<_>>()
        };
        let (text, text_any) = (text_sigs(TARGET_TEXT), text_sigs(TARGET_ANY));
        let raw_sigs = db
            .bodies
            .into_iter()
            .filter(|s| s.target == TARGET_ANY)
            .collect();
        Engine {
            known,
            body: BodyMatcher::new(raw_sigs),
            text: BodyMatcher::new(text),
            text_any: BodyMatcher::new(text_any),
            hashes: HashIndex::new(db.hashes),
            allow: HashIndex::new(db.allow),
        }
    }

    /// The number of signatures loaded, allow-list entries included, as clamscan
    /// counts its "Known viruses".
    pub fn signature_count(&self) -> usize {
        self.known
    }

    /// Scans the complete contents of a file held in memory, with default limits.
    pub fn scan_bytes(&self, data: &[u8]) -> Verdict<'_> {
        self.scan_bytes_with(data, &Limits::default())
    }

    /// Scans the complete contents of a file held in memory.
    pub fn scan_bytes_with(&self, data: &[u8], limits: &Limits) -> Verdict<'_> {
        if data.len() < MIN_SCANNED_SIZE {
            return Verdict::Clean;
        }
        let raw = self.body.scan(data).map(|m| self.body.sig(m.sig));
        let normalized = || {
            self.wants_normalized(data, data.len() as u64, limits)
                .then(|| self.scan_normalized(&textnorm::normalize(data)))
                .flatten()
        };
        self.decide(raw, normalized, &mut FileDigests::of(data))
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
        limits: &Limits,
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
        // The normalized copy is built while streaming; it is at most MaxScriptNormalize.
        let mut text: Option<(Normalizer, Vec<u8>)> = None;
        buffer.clear();
        let mut base = 0u64;
        let mut scan = None;
        loop {
            let old = buffer.len();
            let eof = read_up_to(&mut reader, buffer, chunk)? < chunk;
            digests.update(&buffer[old..]);
            if old == 0 && base == 0 && self.wants_normalized(buffer, file_len, limits) {
                text = Some((Normalizer::default(), Vec::new()));
            }
            if let Some((normalizer, copy)) = &mut text {
                normalizer.push(&buffer[old..], copy);
            }
            let scan = scan.get_or_insert_with(|| self.body.start(file_len));
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
        let raw = scan
            .and_then(BodyScan::finish)
            .map(|m| self.body.sig(m.sig));
        let normalized = || text.and_then(|(_, copy)| self.scan_normalized(&copy));
        Ok((self.decide(raw, normalized, &mut digests), read))
    }

    /// Whether a file of `len` bytes starting with `head` gets the normalized-text
    /// pass: clamscan's rule, the size limit, and something to match at all.
    fn wants_normalized(&self, head: &[u8], len: u64, limits: &Limits) -> bool {
        let any_sigs = !(self.text.is_empty() && self.text_any.is_empty());
        any_sigs && limits.normalizes(len) && filetype::gets_normalized(head)
    }

    /// The first body signature to match the normalized copy: target 7, then target 0.
    fn scan_normalized(&self, copy: &[u8]) -> Option<&BodySig> {
        let typed = self.text.scan(copy).map(|m| self.text.sig(m.sig));
        typed.or_else(|| self.text_any.scan(copy).map(|m| self.text_any.sig(m.sig)))
    }

    /// The verdict, in ClamAV's order: a body signature on the raw bytes, else a hash
    /// signature, else a body signature on the normalized copy (computed only then).
    /// A detection is cancelled by the allow list.
    fn decide<'s>(
        &'s self,
        raw: Option<&'s BodySig>,
        normalized: impl FnOnce() -> Option<&'s BodySig>,
        digests: &mut FileDigests<'_>,
    ) -> Verdict<'s> {
        let detection = raw
            .map(|sig| &*sig.name)
            .or_else(|| self.hashes.lookup(digests))
            .or_else(|| normalized().map(|sig| &*sig.name));
        match detection {
            Some(_) if self.allow.lookup(digests).is_some() => Verdict::Clean,
            Some(name) => Verdict::Infected(name),
            None => Verdict::Clean,
        }
    }
}

/// Whether a target-0 or target-7 signature could match normalized text: every
/// static byte it requires must be one that normalization can produce. Target-0
/// signatures with an `EOF-n` offset never match the normalized copy (measured).
fn could_match_text(sig: &BodySig) -> bool {
    let eof_relative = matches!(sig.offset.base, OffsetBase::FromEnd(_));
    let eligible = sig.target == TARGET_TEXT || (sig.target == TARGET_ANY && !eof_relative);
    eligible
        && sig.pattern.parts.iter().all(|part| {
            part.elements.iter().all(|e| match e {
                Element::Byte(b) => textnorm::in_normalized_alphabet(*b),
                _ => true,
            })
        })
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
