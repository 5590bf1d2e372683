//! Signatures that apply to one file type: `.ndb` target types 1-12 (but 7, which the
//! normalized-text pass handles), and `.mdb`/`.msb` PE section hashes.
//!
//! Order, measured on clamscan 1.4.6 (docs/clamav-oracle.md section 13): the file
//! type's own body signatures before the target-0 ones, both before whole-file hashes;
//! section hashes after whole-file hashes. HTML files (target 3) are not matched raw
//! at all: their normalized copy is ([`crate::htmlnorm`]).

use moat_formats::FileType;
use moat_sigs::{BodySig, HashTable};

use crate::body::{BodyMatcher, CompiledSig};
use crate::facts::FileFacts;
use crate::hashes::{HashIndex, StreamDigests};

/// The highest target type with a file type of its own.
const MAX_TARGET: usize = 12;

/// Compiled signatures per target type, and the section hashes.
pub struct Typed {
    /// Index = target type; targets 0, 3, 7, 8 stay empty here.
    raw: Vec<BodyMatcher>,
    /// Target 3: matched against the normalized HTML copy.
    html: BodyMatcher,
    sections: HashIndex,
}

impl Typed {
    /// Compiles the body signatures of targets 1-12 but 7 from `bodies` (others are
    /// ignored) and the section hash table.
    pub fn new(bodies: Vec<BodySig>, section_hashes: HashTable) -> Typed {
        let mut per_target: Vec<Vec<BodySig>> = (0..=MAX_TARGET).map(|_| Vec::new()).collect();
        for sig in bodies {
            let t = usize::from(sig.target);
            if t <= MAX_TARGET && !matches!(t, 0 | 7 | 8) {
                per_target[t].push(sig);
            }
        }
        let html = BodyMatcher::new(std::mem::take(&mut per_target[3]));
        Typed {
            raw: per_target.into_iter().map(BodyMatcher::new).collect(),
            html,
            sections: HashIndex::new(section_hashes),
        }
    }

    /// The raw-bytes matcher for files of type `ty`, when it has signatures.
    pub fn raw_matcher(&self, ty: FileType) -> Option<&BodyMatcher> {
        let t = usize::from(ty.target());
        self.raw.get(t).filter(|m| !m.is_empty() && t != 3)
    }

    /// Target-3 signatures.
    pub fn html(&self) -> &BodyMatcher {
        &self.html
    }

    /// The farthest any typed matcher's verification reads before and after an atom.
    pub fn reach(&self) -> (usize, usize) {
        self.raw.iter().fold((0, 0), |(b, a), m| {
            if m.is_empty() {
                (b, a)
            } else {
                (b.max(m.reach_back()), a.max(m.reach_ahead()))
            }
        })
    }

    /// The first type-specific body signature to match the raw bytes `data` of a file.
    pub fn scan_raw<'s>(&'s self, facts: &FileFacts<'_>, data: &[u8]) -> Option<&'s CompiledSig> {
        let m = self.raw_matcher(facts.file_type())?;
        let exe = if m.needs_exe() { facts.exe() } else { None };
        m.scan_exe(data, exe).map(|found| m.sig(found.sig))
    }

    /// Every type-specific body signature matching the raw bytes `data` of a file, in
    /// ClamAV's `--allmatch` order.
    pub fn scan_raw_all<'s>(&'s self, facts: &FileFacts<'_>, data: &[u8]) -> Vec<&'s CompiledSig> {
        let Some(m) = self.raw_matcher(facts.file_type()) else {
            return Vec::new();
        };
        let exe = if m.needs_exe() { facts.exe() } else { None };
        m.scan_all(data, exe)
            .iter()
            .map(|found| m.sig(found.sig))
            .collect()
    }

    /// The first section hash signature to match a section of a PE file, sections in
    /// header order; each section's raw bytes (offset and size as ClamAV aligns them)
    /// read through the file's source and hashed only when some signature has its size.
    pub fn section_hash(&self, facts: &FileFacts<'_>) -> Option<&str> {
        if self.sections.is_empty() || facts.file_type() != FileType::Pe {
            return None;
        }
        let exe = facts.exe()?;
        let source = facts.source();
        let mut buf = vec![0u8; 64 << 10];
        for s in &exe.sections {
            if s.raw_size == 0 || !self.sections.wants(s.raw_size) {
                continue;
            }
            let mut digests = StreamDigests::new(self.sections.kinds_wanted(s.raw_size));
            let (mut at, end) = (s.raw_offset, s.raw_offset.saturating_add(s.raw_size));
            while at < end {
                let want = buf.len().min((end - at) as usize);
                match source.read_at(at, &mut buf[..want]) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        digests.update(&buf[..n]);
                        at += n as u64;
                    }
                }
            }
            if at < end {
                continue;
            }
            if let Some(name) = self.sections.lookup(&mut digests.finish()) {
                return Some(name);
            }
        }
        None
    }
}
