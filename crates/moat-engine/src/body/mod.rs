//! Body signatures: one multi-pattern pass finds candidates, verifiers confirm them.
//!
//! # Design
//!
//! Every part of every signature contributes one *atom*: a run of static bytes (2 to
//! [`MAX_ATOM`] long, the rarest window of the part's longest static run). All atoms
//! go into one [`prefilter`] searched once over the data, so the cost of the pass does
//! not grow with the number of signatures the way trying each signature would.
//!
//! A hit of an atom is only a candidate. The part around it is verified backwards and
//! forwards ([`elements`]), which yields the sets of positions where the part can start
//! and end. Multi-part signatures (`aa*bb`, `aa{10-20}bb`) are then chained the way a
//! streaming matcher must: parts are found in file order (an atom of part `j + 1`
//! always ends after the atom of part `j`), so a part occurrence is kept only when some
//! recorded end of part `j - 1` lies at an allowed distance before one of its starts.
//! Part 0 must satisfy the signature's offset. When the last part is reached, the
//! signature matches at that position. The state kept per file is the ends of partial
//! chains, bounded per part, never the data.

mod elements;
mod prefilter;

use std::collections::HashMap;

use moat_sigs::hex::{Boundary, Element, Part};
use moat_sigs::line::TARGET_TEXT;
use moat_sigs::BodySig;

use crate::filetype;
use prefilter::Prefilter;
pub use prefilter::MAX_ATOM;

/// Most partial-chain ends remembered per signature part in one scan; beyond it the
/// oldest are dropped (as ClamAV bounds its offset tracking).
const MAX_TRACKED_ENDS: usize = 512;

/// Where an atom sits inside a signature.
#[derive(Debug, Clone, Copy)]
struct Anchor {
    /// Index of the signature in [`BodyMatcher::sigs`].
    sig: u32,
    /// Index of the part inside the signature.
    part: u16,
    /// Index of the first atom element inside the part.
    elem: u16,
    /// Atom length in bytes.
    len: u16,
}

/// The compiled body signatures.
pub struct BodyMatcher {
    prefilter: Prefilter,
    /// For each atom (automaton pattern id), the anchors that use it.
    anchors: Vec<Vec<Anchor>>,
    sigs: Vec<CompiledSig>,
}

/// A body signature prepared for matching: a boundary class at the very start or end
/// is a zero-width assertion, taken out of the parts.
struct CompiledSig {
    sig: BodySig,
    look_behind: Option<Boundary>,
    look_ahead: Option<Boundary>,
    /// Only static bytes: ClamAV reports these before any other kind.
    pure_static: bool,
}

impl CompiledSig {
    fn new(mut sig: BodySig) -> CompiledSig {
        let parts = &mut sig.pattern.parts;
        let look_behind = match parts[0].elements.first() {
            Some(&Element::Boundary(b)) => {
                parts[0].elements.remove(0);
                Some(b)
            }
            _ => None,
        };
        let last = parts.last_mut().expect("a pattern has at least one part");
        let look_ahead = match last.elements.last() {
            Some(&Element::Boundary(b)) => {
                last.elements.pop();
                Some(b)
            }
            _ => None,
        };
        let pure_static = look_behind.is_none()
            && look_ahead.is_none()
            && sig.pattern.parts.len() == 1
            && sig.pattern.parts[0]
                .elements
                .iter()
                .all(|e| matches!(e, Element::Byte(_)));
        CompiledSig {
            sig,
            look_behind,
            look_ahead,
            pure_static,
        }
    }
}

/// A body signature that matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyMatch {
    /// Index of the signature in load order.
    pub sig: usize,
    /// Where ClamAV would report it: the start of the match for a one-part
    /// signature, the start of the last part for a multi-part one.
    pub position: usize,
}

impl BodyMatch {
    /// ClamAV's reporting order when several signatures match one file (measured):
    /// signatures of static bytes only (its Boyer-Moore matcher) before all others,
    /// then by position, then by load order.
    fn rank(&self, matcher: &BodyMatcher) -> (bool, usize, usize) {
        (!matcher.sigs[self.sig].pure_static, self.position, self.sig)
    }
}

impl BodyMatcher {
    /// Compiles the signatures.
    pub fn new(sigs: Vec<BodySig>) -> BodyMatcher {
        let sigs: Vec<CompiledSig> = sigs.into_iter().map(CompiledSig::new).collect();
        let mut atom_ids: HashMap<Vec<u8>, usize> = HashMap::new();
        let mut atoms: Vec<Vec<u8>> = Vec::new();
        let mut anchors: Vec<Vec<Anchor>> = Vec::new();
        for (sig_index, compiled) in sigs.iter().enumerate() {
            for (part_index, part) in compiled.sig.pattern.parts.iter().enumerate() {
                let (elem, bytes) = choose_atom(part);
                let id = *atom_ids.entry(bytes.clone()).or_insert_with(|| {
                    atoms.push(bytes.clone());
                    anchors.push(Vec::new());
                    atoms.len() - 1
                });
                anchors[id].push(Anchor {
                    sig: sig_index as u32,
                    part: part_index as u16,
                    elem: elem as u16,
                    len: bytes.len() as u16,
                });
            }
        }
        let numbered: Vec<(Vec<u8>, u32)> = atoms
            .into_iter()
            .enumerate()
            .map(|(id, bytes)| (bytes, id as u32))
            .collect();
        BodyMatcher {
            prefilter: Prefilter::new(&numbered),
            anchors,
            sigs,
        }
    }

    /// The signature at `index`.
    pub fn sig(&self, index: usize) -> &BodySig {
        &self.sigs[index].sig
    }

    /// The number of compiled signatures.
    pub fn len(&self) -> usize {
        self.sigs.len()
    }

    /// Whether there are no signatures.
    pub fn is_empty(&self) -> bool {
        self.sigs.is_empty()
    }

    /// Scans `data` (the first bytes of a file of `file_len` bytes) and returns the
    /// signature ClamAV would report first ([`BodyMatch::rank`]).
    pub fn scan(&self, data: &[u8], file_len: u64) -> Option<BodyMatch> {
        if self.sigs.is_empty() {
            return None;
        }
        let mut state = ScanState {
            file_len,
            is_text: None,
            chains: HashMap::new(),
            matched: Vec::new(),
        };
        let mut best: Option<BodyMatch> = None;
        self.prefilter.for_each(data, |atom, at| {
            for anchor in &self.anchors[atom as usize] {
                if state.matched.contains(&anchor.sig) {
                    continue;
                }
                if let Some(position) = self.on_hit(anchor, at, data, &mut state) {
                    state.matched.push(anchor.sig);
                    let found = BodyMatch {
                        sig: anchor.sig as usize,
                        position,
                    };
                    if best.is_none_or(|b| found.rank(self) < b.rank(self)) {
                        best = Some(found);
                    }
                }
            }
        });
        best
    }

    /// Handles one atom hit at `at`. When it completes its signature, returns the
    /// position to rank the match by (see [`BodyMatch::position`]).
    fn on_hit(
        &self,
        anchor: &Anchor,
        at: usize,
        data: &[u8],
        state: &mut ScanState,
    ) -> Option<usize> {
        let compiled = &self.sigs[anchor.sig as usize];
        let sig = &compiled.sig;
        if sig.target == TARGET_TEXT && !state.is_text(data) {
            return None;
        }
        let part_index = anchor.part as usize;
        let part = &sig.pattern.parts[part_index];
        let (before, after) = split_around(part, anchor);
        let last = part_index + 1 == sig.pattern.parts.len();
        let mut ends = elements::forward(after, data, vec![at + anchor.len as usize]);
        if let (true, Some(class)) = (last, compiled.look_ahead) {
            ends.retain(|&e| elements::look_ahead(class, data, e));
        }
        if ends.is_empty() {
            return None;
        }
        let mut starts = elements::backward(before, data, vec![at]);
        if let (0, Some(class)) = (part_index, compiled.look_behind) {
            starts.retain(|&s| elements::look_behind(class, data, s));
        }
        if part_index == 0 {
            let (lo, hi) = sig.offset.start_range(state.file_len)?;
            starts.retain(|&s| (lo..=hi).contains(&(s as u64)));
        } else {
            let gap = sig.pattern.gaps[part_index - 1];
            let previous = state.chains.get(&(anchor.sig, anchor.part - 1))?;
            starts.retain(|&s| {
                previous.iter().any(|&e| {
                    s >= e && {
                        let d = (s - e) as u64;
                        d >= u64::from(gap.min) && gap.max.is_none_or(|m| d <= u64::from(m))
                    }
                })
            });
        }
        let first_start = *starts.first()?;
        if last {
            return Some(first_start);
        }
        let recorded = state.chains.entry((anchor.sig, anchor.part)).or_default();
        recorded.extend(ends);
        if recorded.len() > MAX_TRACKED_ENDS {
            recorded.sort_unstable();
            recorded.dedup();
            let excess = recorded.len().saturating_sub(MAX_TRACKED_ENDS);
            // Keep the smallest end (it serves every unbounded gap) and the newest.
            recorded.drain(1..1 + excess);
        }
        None
    }
}

/// Per-file state of a scan.
struct ScanState {
    file_len: u64,
    /// Lazily computed: whether the data is ASCII text (target type 7).
    is_text: Option<bool>,
    /// Ends of valid partial chains, per (signature, part).
    chains: HashMap<(u32, u16), Vec<usize>>,
    /// Signatures already matched (few: a file rarely matches more than one).
    matched: Vec<u32>,
}

impl ScanState {
    fn is_text(&mut self, data: &[u8]) -> bool {
        *self
            .is_text
            .get_or_insert_with(|| filetype::is_ascii_text(data))
    }
}

/// The elements of `part` before and after the atom of `anchor`.
fn split_around<'p>(part: &'p Part, anchor: &Anchor) -> (&'p [Element], &'p [Element]) {
    let start = anchor.elem as usize;
    let end = start + anchor.len as usize;
    (&part.elements[..start], &part.elements[end..])
}

/// Picks the atom of a part: the window of at most [`MAX_ATOM`] bytes, inside one of
/// its static runs, whose bytes are rarest; longer runs win over shorter ones.
fn choose_atom(part: &Part) -> (usize, Vec<u8>) {
    let mut best: Option<(u32, usize, Vec<u8>)> = None;
    for (start, run) in part.literal_runs() {
        if run.len() < 2 {
            continue;
        }
        let len = run.len().min(MAX_ATOM);
        for offset in 0..=run.len() - len {
            let window = &run[offset..offset + len];
            let score =
                len as u32 * 256 - window.iter().map(|&b| commonness(b)).sum::<u32>() / len as u32;
            if best.as_ref().is_none_or(|(s, _, _)| score > *s) {
                best = Some((score, start + offset, window.to_vec()));
            }
        }
    }
    let (_, elem, bytes) = best.expect("the parser guarantees a static run of two bytes per part");
    (elem, bytes)
}

/// How common a byte is in typical files (0 = rare, 255 = very common): zero, 0xff,
/// spaces, lowercase letters and common x86 opcodes dominate real data.
fn commonness(b: u8) -> u32 {
    match b {
        0x00 => 255,
        0xff => 200,
        b' ' | b'e' | b't' | b'a' | b'o' | b'i' | b'n' => 180,
        b'a'..=b'z' => 140,
        b'\n' | b'\r' | b'\t' | 0x01 | 0x8b | 0x89 | 0xe8 | 0x48 => 150,
        b'A'..=b'Z' | b'0'..=b'9' => 110,
        0x20..=0x7e => 90,
        _ => 40,
    }
}
