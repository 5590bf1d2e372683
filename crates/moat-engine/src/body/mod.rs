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
//!
//! Signatures are compiled one at a time ([`BodyBuilder::push`]) into compact
//! [`ops`] (a literal run is one slice of a byte arena, not an element per byte), so
//! the loader's form of each is dropped as soon as it is compiled.

mod elements;
mod ops;
mod prefilter;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use moat_formats::ExeInfo;
use moat_sigs::hex::{seq_len_range, Boundary, Element, Gap, Part};
use moat_sigs::{BodySig, Offset};

use crate::facts;

use ops::{Arena, Op, OpRange, Positions};
use prefilter::Prefilter;
pub use prefilter::MAX_ATOM;

/// Most partial-chain ends remembered per signature part in one scan; beyond it the
/// oldest are dropped (as ClamAV bounds its offset tracking).
const MAX_TRACKED_ENDS: usize = 512;

/// Widest range of positions, in bytes, an atom of a signature with an offset may
/// take in a file for the signature to be looked up directly at those positions
/// rather than through the prefilter ([`Anchored`]).
const MAX_ANCHORED_WINDOW: u64 = 256;

/// A hasher for the small integer keys of the per-scan maps (signature and part
/// numbers): the default SipHash was 3% of the scan time (measured on real programs).
/// Hand-written: a multiply-rotate in the style of FxHash, no crate for three lines.
#[derive(Default)]
struct SmallKeyHasher(u64);

impl Hasher for SmallKeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u16(&mut self, n: u16) {
        self.write_u64(u64::from(n));
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

type SmallMap<K, V> = HashMap<K, V, BuildHasherDefault<SmallKeyHasher>>;

/// The atom of a signature's first part when the signature's offset pins it to a few
/// positions (`0:`, `EP+n:`, `EOF-n:`, `Sx+n:`...; at most [`MAX_ANCHORED_WINDOW`]):
/// those positions are checked directly in each buffer, and the atom stays out of the
/// prefilter. Measured on real programs: atoms like `00 00 00 00` (`EP+0:` signatures)
/// or `FF FF` (`0:FFFF`) made most of the prefilter's hits.
#[derive(Debug, Clone)]
struct Anchored {
    anchor: Anchor,
    /// The atom's bytes.
    atom: Vec<u8>,
    /// The fewest and most bytes between the offset's position and the atom.
    before: (u64, u64),
}

/// Where an atom sits inside a signature.
#[derive(Debug, Clone, Copy)]
struct Anchor {
    /// Index of the signature in [`BodyMatcher::sigs`].
    sig: u32,
    /// Index of the part inside the signature.
    part: u16,
    /// Atom length in bytes.
    len: u16,
    /// Index of the atom's op (a literal of exactly the atom) inside the part.
    op: u32,
}

/// The compiled body signatures.
pub struct BodyMatcher {
    prefilter: Prefilter,
    /// For each atom (automaton pattern id), the anchors that use it.
    anchors: Vec<Vec<Anchor>>,
    /// First parts found at their offset's positions instead of through the prefilter.
    anchored: Vec<Anchored>,
    sigs: Vec<CompiledSig>,
    /// The parts of all signatures, each signature's consecutive.
    parts: Vec<CompiledPart>,
    /// The ops of all parts.
    arena: Arena,
    /// The farthest verification reads before and after an atom's start.
    reach: (usize, usize),
    /// Counting mode ([`BodyMatcher::counting`]): every match of every signature is
    /// counted instead of stopping at the first.
    counting: bool,
    /// Some signature has an offset relative to the entry point or a section.
    needs_exe: bool,
}

/// A body signature prepared for matching: a boundary class at the very start or end
/// is a zero-width assertion, taken out of the parts.
pub struct CompiledSig {
    /// The detection name (empty for the subsignatures of logical signatures).
    pub name: Box<str>,
    offset: Offset,
    look_behind: Option<Boundary>,
    look_ahead: Option<Boundary>,
    /// Only static bytes: ClamAV reports these before any other kind.
    pure_static: bool,
    /// Where ClamAV's trie finds the last part, counted from the part's start (the
    /// end of its first static run of two or more bytes, at most three deep), and
    /// the trie depth of that node.
    trie: (u64, usize),
    /// Index of the first part in [`BodyMatcher::parts`].
    first_part: u32,
    /// Number of parts.
    n_parts: u16,
    /// The op of part 0 whose position the offset constrains (the loader's
    /// `offset_origin`, at most the atom's op).
    origin: u32,
}

/// A part of a compiled signature.
struct CompiledPart {
    ops: OpRange,
    /// The distance from the previous part (unused for part 0).
    gap_before: Gap,
}

/// Compiles body signatures one at a time into a [`BodyMatcher`].
#[derive(Default)]
pub struct BodyBuilder {
    arena: Arena,
    sigs: Vec<CompiledSig>,
    parts: Vec<CompiledPart>,
    atom_ids: HashMap<Vec<u8>, usize>,
    atoms: Vec<Vec<u8>>,
    anchors: Vec<Vec<Anchor>>,
    anchored: Vec<Anchored>,
    reach: (usize, usize),
    needs_exe: bool,
}

impl BodyBuilder {
    /// Compiles `sig`, the next signature (its index is the number pushed before).
    pub fn push(&mut self, mut sig: BodySig) {
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
        let trie = trie_node(sig.pattern.parts.last().expect("at least one part"));
        self.needs_exe |= sig.offset.base.needs_executable();
        let sig_index = self.sigs.len() as u32;
        let first_part = self.parts.len() as u32;
        let mut origin = 0;
        for (part_index, part) in sig.pattern.parts.iter().enumerate() {
            let (elem, bytes) = choose_atom(part);
            // +2 / +2: room for a look-behind (two bytes for a wide one) and a
            // look-ahead `\r\n` (or wide character).
            let before = seq_len_range(&part.elements[..elem]).1 as usize + 2;
            let after = seq_len_range(&part.elements[elem..]).1 as usize + 2;
            self.reach = (self.reach.0.max(before), self.reach.1.max(after));
            let origin_elem = if part_index == 0 {
                sig.pattern.offset_origin.min(elem)
            } else {
                0
            };
            let (range, [origin_op, atom_op, _]) = self
                .arena
                .push_part(&part.elements, [origin_elem, elem, elem + bytes.len()]);
            if part_index == 0 {
                origin = origin_op;
            }
            self.parts.push(CompiledPart {
                ops: range,
                gap_before: match part_index {
                    0 => Gap { min: 0, max: None },
                    j => sig.pattern.gaps[j - 1],
                },
            });
            let anchor = Anchor {
                sig: sig_index,
                part: part_index as u16,
                len: bytes.len() as u16,
                op: atom_op,
            };
            if part_index == 0 {
                if let Some(before) = anchored_window(&sig, elem) {
                    self.anchored.push(Anchored {
                        anchor,
                        atom: bytes,
                        before,
                    });
                    continue;
                }
            }
            let id = match self.atom_ids.get(&bytes) {
                Some(&id) => id,
                None => {
                    self.atoms.push(bytes.clone());
                    self.anchors.push(Vec::new());
                    self.atom_ids.insert(bytes, self.atoms.len() - 1);
                    self.atoms.len() - 1
                }
            };
            self.anchors[id].push(anchor);
        }
        self.sigs.push(CompiledSig {
            name: sig.name,
            offset: sig.offset,
            look_behind,
            look_ahead,
            pure_static,
            trie,
            first_part,
            n_parts: sig.pattern.parts.len() as u16,
            origin,
        });
    }

    /// The number of signatures pushed.
    pub fn len(&self) -> usize {
        self.sigs.len()
    }

    /// Whether none were pushed.
    pub fn is_empty(&self) -> bool {
        self.sigs.is_empty()
    }

    /// The matcher (first-match mode).
    pub fn build(self) -> BodyMatcher {
        self.build_with(false)
    }

    /// The matcher in counting mode for lowercased signatures (`::i`), whose atoms
    /// are searched in data of any case ([`Prefilter::folding_case`]); such a scan
    /// is fed raw bytes through [`BodyScan::feed_all_folded`], or lowercase data.
    pub fn build_counting_folded(self) -> BodyMatcher {
        BodyMatcher {
            counting: true,
            ..self.build_with(true)
        }
    }

    fn build_with(mut self, fold_case: bool) -> BodyMatcher {
        let numbered: Vec<(Vec<u8>, u32)> = std::mem::take(&mut self.atoms)
            .into_iter()
            .enumerate()
            .map(|(id, bytes)| (bytes, id as u32))
            .collect();
        self.arena.shrink_to_fit();
        self.sigs.shrink_to_fit();
        self.parts.shrink_to_fit();
        BodyMatcher {
            prefilter: match fold_case {
                true => Prefilter::folding_case(&numbered),
                false => Prefilter::new(&numbered),
            },
            anchors: self.anchors,
            anchored: self.anchored,
            sigs: self.sigs,
            parts: self.parts,
            arena: self.arena,
            reach: (self.reach.0.max(1), self.reach.1.max(1)),
            counting: false,
            needs_exe: self.needs_exe,
        }
    }

    /// The matcher in counting mode ([`BodyMatcher::counting`]).
    pub fn build_counting(self) -> BodyMatcher {
        BodyMatcher {
            counting: true,
            ..self.build()
        }
    }
}

/// A body signature that matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyMatch {
    /// Index of the signature in load order.
    pub sig: usize,
    /// Where ClamAV would report it (a file offset): the start of the match for a
    /// one-part signature, the start of the last part for a multi-part one.
    pub position: u64,
}

impl BodyMatch {
    /// ClamAV's reporting order when several signatures match one file (measured):
    /// signatures of static bytes only (its Boyer-Moore matcher) first, earliest
    /// start first, then first loaded; then the others (its Aho-Corasick matcher) in
    /// the order its trie reaches them: by the end of the first static run (two or
    /// three bytes) of the last part, the deeper trie node first (the automaton
    /// reports a state before its failure links), then one-part signatures (the last
    /// loaded first) before multi-part ones (the first loaded first): the order of
    /// ClamAV's lists at a trie node. All measured.
    fn rank(&self, matcher: &BodyMatcher) -> (bool, u64, usize, bool, usize) {
        let sig = &matcher.sigs[self.sig];
        if sig.pure_static {
            return (false, self.position, 0, false, self.sig);
        }
        let (delta, depth) = sig.trie;
        let multi_part = sig.n_parts > 1;
        let load_order = if multi_part {
            self.sig
        } else {
            usize::MAX - self.sig
        };
        let end = self.position + delta;
        (true, end, usize::MAX - depth, multi_part, load_order)
    }
}

impl BodyMatcher {
    /// Compiles the signatures.
    pub fn new(sigs: Vec<BodySig>) -> BodyMatcher {
        let mut builder = BodyBuilder::default();
        sigs.into_iter().for_each(|sig| builder.push(sig));
        builder.build()
    }

    /// Compiles signatures for counting: a scan records how many times each one
    /// matched (distinct positions, at most [`MAX_COUNT`]) instead of stopping at the
    /// first match of each; read them with [`BodyScan::counts`]. What the
    /// subsignatures of logical signatures need. The first-match path is unchanged.
    pub fn counting(sigs: Vec<BodySig>) -> BodyMatcher {
        let mut builder = BodyBuilder::default();
        sigs.into_iter().for_each(|sig| builder.push(sig));
        builder.build_counting()
    }

    /// The signature at `index`.
    pub fn sig(&self, index: usize) -> &CompiledSig {
        &self.sigs[index]
    }

    /// Bytes of memory the compiled parts hold (for measurements).
    pub fn parts_heap_bytes(&self) -> usize {
        self.arena.heap_bytes() + self.parts.capacity() * std::mem::size_of::<CompiledPart>()
    }

    /// The number of compiled signatures.
    pub fn len(&self) -> usize {
        self.sigs.len()
    }

    /// Whether there are no signatures.
    pub fn is_empty(&self) -> bool {
        self.sigs.is_empty()
    }

    /// Scans the complete contents `data` of a file and returns the signature ClamAV
    /// would report first ([`BodyMatch::rank`]).
    pub fn scan(&self, data: &[u8]) -> Option<BodyMatch> {
        let mut scan = self.start(data.len() as u64);
        scan.feed(data, 0, data.len() as u64);
        scan.finish()
    }

    /// Like [`BodyMatcher::scan`], resolving `EP`/`Sx`/`SEx`/`SL` offsets through
    /// `exe` (signatures with such offsets never match without it).
    pub fn scan_exe(&self, data: &[u8], exe: Option<&ExeInfo>) -> Option<BodyMatch> {
        let mut scan = self.start_exe(data.len() as u64, exe.cloned());
        scan.feed(data, 0, data.len() as u64);
        scan.finish()
    }

    /// Every signature matching the complete contents `data` (`EP`/`Sx` offsets resolved
    /// through `exe`), in ClamAV's `--allmatch` order ([`BodyScan::finish_all`]).
    pub fn scan_all(&self, data: &[u8], exe: Option<&ExeInfo>) -> Vec<BodyMatch> {
        let exe = self.needs_exe().then(|| exe.cloned()).flatten();
        let mut scan = self.start_exe(data.len() as u64, exe);
        scan.feed(data, 0, data.len() as u64);
        scan.finish_all()
    }

    /// Whether some signature's offset needs the executable layout.
    pub fn needs_exe(&self) -> bool {
        self.needs_exe
    }

    /// Starts a streaming scan of a file of `file_len` bytes.
    pub fn start(&self, file_len: u64) -> BodyScan<'_> {
        self.start_exe(file_len, None)
    }

    /// Starts a streaming scan of a file of `file_len` bytes whose executable layout
    /// (for `EP`/`Sx`/`SEx`/`SL` offsets) is `exe`.
    pub fn start_exe(&self, file_len: u64, exe: Option<ExeInfo>) -> BodyScan<'_> {
        BodyScan {
            matcher: self,
            state: FileState {
                file_len,
                exe,
                chains: SmallMap::default(),
                chained: Vec::new(),
            },
            matched: Vec::new(),
            done: 0,
            counts: SmallMap::default(),
        }
    }

    /// How many bytes before an atom's start verification may read.
    pub fn reach_back(&self) -> usize {
        self.reach.0
    }

    /// How many bytes from an atom's start verification may read.
    pub fn reach_ahead(&self) -> usize {
        self.reach.1
    }

    /// Handles one atom hit at `at` (relative to `buf`, which starts at file offset
    /// `base`). When it completes its signature, returns the file offset to rank the
    /// match by (see [`BodyMatch::position`]).
    fn on_hit(
        &self,
        anchor: &Anchor,
        buf: &[u8],
        base: u64,
        at: usize,
        file: &mut FileState,
    ) -> Option<u64> {
        // A later part counts only after an earlier one: nothing to verify before.
        // The bit test first: a later part's atom can be common (one real logical
        // subsignature's `00 00` made 1.2 million hits in a 3.8 MB ELF library) and
        // the map probe cost more.
        if anchor.part > 0
            && (!file.has_chain(anchor.sig)
                || !file.chains.contains_key(&(anchor.sig, anchor.part - 1)))
        {
            return None;
        }
        let compiled = &self.sigs[anchor.sig as usize];
        let part_index = anchor.part as usize;
        let part = &self.parts[compiled.first_part as usize + part_index];
        let (before, after) = split_around(self.arena.ops(part.ops), anchor);
        let last = part_index + 1 == usize::from(compiled.n_parts);
        // Zero-width boundaries hold at the file's edges; a buffer's edge is the
        // file's only where the buffer reaches it.
        let at_file_start = base == 0;
        let at_file_end = base + buf.len() as u64 >= file.file_len;
        let mut ends = self
            .arena
            .forward_from(after, buf, at + anchor.len as usize);
        if let (true, Some(class)) = (last, compiled.look_ahead) {
            ends.retain(|e| {
                (*e < buf.len() || at_file_end) && elements::look_ahead(class, buf, *e)
            });
        }
        if ends.is_empty() {
            return None;
        }
        let abs = |rel: usize| base + rel as u64;
        let mut starts = if part_index == 0 {
            // The offset constrains the position of element `origin` (0 but after a
            // leading anchored byte); the elements before it are matched from there.
            let origin = compiled.origin as usize;
            let (lo, hi) = facts::start_range(&compiled.offset, file.file_len, file.exe.as_ref())?;
            let mut origins = self.arena.backward_from(&before[origin..], buf, at);
            origins.retain(|s| (lo..=hi).contains(&abs(*s)));
            match origin {
                0 => origins,
                _ => Positions::from_vec(self.arena.backward(
                    &before[..origin],
                    buf,
                    origins.into_vec(),
                )),
            }
        } else {
            self.arena.backward_from(before, buf, at)
        };
        if let (0, Some(class)) = (part_index, compiled.look_behind) {
            starts.retain(|s| (*s > 0 || at_file_start) && elements::look_behind(class, buf, *s));
        }
        if part_index > 0 {
            let gap = part.gap_before;
            let previous = file.chains.get(&(anchor.sig, anchor.part - 1))?;
            // `previous` is sorted: the nearest end at least `gap.min` before a start
            // is the one to test against the gap's maximum.
            starts.retain(|s| {
                let s = *s;
                let Some(latest) = abs(s).checked_sub(u64::from(gap.min)) else {
                    return false;
                };
                let n = previous.partition_point(|&e| e <= latest);
                n > 0
                    && gap
                        .max
                        .is_none_or(|m| abs(s) - previous[n - 1] <= u64::from(m))
            });
        }
        let first_start = abs(*starts.first()?);
        if last {
            return Some(first_start);
        }
        file.mark_chain(anchor.sig);
        let recorded = file.chains.entry((anchor.sig, anchor.part)).or_default();
        // Kept sorted and without duplicates, so that trimming is one move instead
        // of a sort and a dedup per hit once the bound is reached (measured: 10% of
        // the instructions on 2,000 /usr/share files, for a few chains of common
        // atoms). The set kept is the same: the smallest end and the largest others.
        for end in ends.into_iter().map(abs) {
            match recorded.last() {
                Some(&last) if last >= end => {
                    if let Err(i) = recorded.binary_search(&end) {
                        recorded.insert(i, end);
                    }
                }
                _ => recorded.push(end),
            }
        }
        if recorded.len() > MAX_TRACKED_ENDS {
            let excess = recorded.len() - MAX_TRACKED_ENDS;
            // Keep the smallest end (it serves every unbounded gap) and the newest.
            recorded.drain(1..1 + excess);
        }
        None
    }
}

/// What verification needs to know about the file being scanned.
struct FileState {
    file_len: u64,
    /// The executable layout, for offsets relative to the entry point or sections.
    exe: Option<ExeInfo>,
    /// Ends (file offsets) of valid partial chains, per (signature, part), sorted,
    /// without duplicates.
    chains: SmallMap<(u32, u16), Vec<u64>>,
    /// One bit per signature with some entry in `chains` (grown on first use: most
    /// files record none).
    chained: Vec<u64>,
}

impl FileState {
    /// Whether some partial chain of signature `sig` was recorded.
    #[inline]
    fn has_chain(&self, sig: u32) -> bool {
        let sig = sig as usize;
        self.chained
            .get(sig / 64)
            .is_some_and(|w| w >> (sig % 64) & 1 != 0)
    }

    fn mark_chain(&mut self, sig: u32) {
        let sig = sig as usize;
        if self.chained.len() <= sig / 64 {
            self.chained.resize(sig / 64 + 1, 0);
        }
        self.chained[sig / 64] |= 1 << (sig % 64);
    }
}

/// A buffer and its lowercased copy, made on first use ([`BodyScan::feed_all_folded`]).
struct Lowered<'a> {
    raw: &'a [u8],
    copy: &'a mut Vec<u8>,
    ready: bool,
}

impl Lowered<'_> {
    /// The lowercased copy of the buffer.
    fn get(&mut self) -> &[u8] {
        if !self.ready {
            self.copy.clear();
            self.copy
                .extend(self.raw.iter().map(u8::to_ascii_lowercase));
            self.ready = true;
        }
        self.copy
    }
}

/// A scan in progress over one file, fed buffer by buffer in file order.
///
/// Consecutive buffers may overlap: an atom is processed once, in the first buffer
/// where its start lies in `[done, until)`. The caller keeps at least
/// [`BodyMatcher::reach_back`] bytes before and [`BodyMatcher::reach_ahead`] bytes
/// after every atom start it asks to process (or the file's edge), so that
/// verification sees everything it needs. Memory stays bounded by the buffer size
/// and the tracked chain ends, whatever the file size.
pub struct BodyScan<'m> {
    matcher: &'m BodyMatcher,
    state: FileState,
    /// Signatures matched so far, each at its first match (few: a file rarely matches
    /// more than one).
    matched: Vec<BodyMatch>,
    /// Atoms starting before this file offset have been processed.
    done: u64,
    /// Counting mode: per signature that matched, the matches counted and the last
    /// position counted (sparse: most files match few subsignatures, and nothing is
    /// allocated for a file that matches none).
    counts: SmallMap<u32, (u32, u64)>,
}

/// The most matches counted per signature in one scan (ClamAV's counts are compared
/// with small numbers; the bound keeps the counters from meaning anything else).
pub const MAX_COUNT: u32 = 1 << 20;

impl BodyScan<'_> {
    /// Processes the atoms of `buf` (file bytes from offset `base`) that start in
    /// `[done, until)`, where `done` is the previous call's `until`.
    pub fn feed(&mut self, buf: &[u8], base: u64, until: u64) {
        BodyScan::feed_all(&mut [self], buf, base, until);
    }

    /// [`BodyScan::feed`] for several scans (of different matchers) of the same
    /// buffer, in ONE pass over it: a position is looked at by a matcher only when
    /// the union of their first-level bitmaps says some atom of some matcher starts
    /// there. Each scan still sees its own hits in order of position, so its result
    /// is the one [`BodyScan::feed`] would give.
    pub fn feed_all(scans: &mut [&mut BodyScan<'_>], buf: &[u8], base: u64, until: u64) {
        let folded_from = scans.len();
        BodyScan::feed_all_folded(scans, folded_from, buf, &mut Vec::new(), base, until);
    }

    /// [`BodyScan::feed_all`] where the scans from `folded_from` on are of
    /// case-folding matchers ([`BodyBuilder::build_counting_folded`]) that must see
    /// `buf` lowercased: they share the pass over the raw bytes, and `lower` (scratch)
    /// gets the lowercased copy only when one of them has an atom hit to verify.
    pub fn feed_all_folded(
        scans: &mut [&mut BodyScan<'_>],
        folded_from: usize,
        buf: &[u8],
        lower: &mut Vec<u8>,
        base: u64,
        until: u64,
    ) {
        let mut lowered = Lowered {
            raw: buf,
            copy: lower,
            ready: false,
        };
        let mut live = 0;
        for (i, scan) in scans.iter_mut().enumerate() {
            if !scan.matcher.sigs.is_empty() {
                match i >= folded_from {
                    true => scan.feed_anchored(buf, Some(&mut lowered), base, until),
                    false => scan.feed_anchored(buf, None, base, until),
                }
                live += 1;
            }
        }
        if live == 1 && folded_from == scans.len() {
            let scan = scans
                .iter_mut()
                .find(|s| !s.matcher.sigs.is_empty())
                .expect("one live scan");
            scan.feed_prefilter(buf, base, until);
        } else if live >= 1 {
            let prefilters: Vec<&Prefilter> = scans.iter().map(|s| &s.matcher.prefilter).collect();
            prefilter::with_union(&prefilters, |union| {
                prefilter::for_each_candidate(buf, union, |window, at| {
                    let abs = base + at as u64;
                    for (i, scan) in scans.iter_mut().enumerate() {
                        let matcher = scan.matcher;
                        if abs < scan.done || abs >= until {
                            continue;
                        }
                        matcher.prefilter.probe_window(window, |atom| {
                            let data = match i >= folded_from {
                                true => lowered.get(),
                                false => buf,
                            };
                            for anchor in &matcher.anchors[atom as usize] {
                                scan.hit(anchor, data, base, at);
                            }
                        });
                    }
                })
            });
            for (i, scan) in scans.iter_mut().enumerate() {
                let matcher = scan.matcher;
                let done = scan.done;
                matcher.prefilter.for_each_tail(buf, |atom, at| {
                    let abs = base + at as u64;
                    if abs < done || abs >= until {
                        return;
                    }
                    let data = match i >= folded_from {
                        true => lowered.get(),
                        false => buf,
                    };
                    for anchor in &matcher.anchors[atom as usize] {
                        scan.hit(anchor, data, base, at);
                    }
                });
            }
        }
        for scan in scans.iter_mut() {
            scan.done = scan.done.max(until);
        }
    }

    /// This matcher's own prefilter pass over `buf` (one scan alone).
    fn feed_prefilter(&mut self, buf: &[u8], base: u64, until: u64) {
        let matcher = self.matcher;
        let done = self.done;
        matcher.prefilter.for_each(buf, |atom, at| {
            let abs = base + at as u64;
            if abs < done || abs >= until {
                return;
            }
            for anchor in &matcher.anchors[atom as usize] {
                self.hit(anchor, buf, base, at);
            }
        });
    }

    /// One atom hit at `at` in `buf`: verified, then counted or ranked.
    #[inline]
    fn hit(&mut self, anchor: &Anchor, buf: &[u8], base: u64, at: usize) {
        // A later part with no chain of its signature started: nothing to do (tested
        // here, inlined, before the call: one logical subsignature's later part `00 00`
        // was 20 million of the 40 million hits on 20,000 /usr/share files).
        if anchor.part > 0 && !self.state.has_chain(anchor.sig) {
            return;
        }
        let matcher = self.matcher;
        if matcher.counting {
            if let Some(position) = matcher.on_hit(anchor, buf, base, at, &mut self.state) {
                let (n, last) = self.counts.entry(anchor.sig).or_insert((0, u64::MAX));
                if *last != position && *n < MAX_COUNT {
                    *n += 1;
                    *last = position;
                }
            }
            return;
        }
        if self.matched.iter().any(|m| m.sig == anchor.sig as usize) {
            return;
        }
        if let Some(position) = matcher.on_hit(anchor, buf, base, at, &mut self.state) {
            self.matched.push(BodyMatch {
                sig: anchor.sig as usize,
                position,
            });
        }
    }

    /// The anchored first parts: their few positions, in this buffer's range. With
    /// `lowered`, a case-folding matcher's: atoms compared ignoring case, hits
    /// verified on the lowercased copy.
    fn feed_anchored(
        &mut self,
        buf: &[u8],
        mut lowered: Option<&mut Lowered<'_>>,
        base: u64,
        until: u64,
    ) {
        let matcher = self.matcher;
        let done = self.done;
        let end = base + buf.len() as u64;
        for a in &matcher.anchored {
            let sig = &matcher.sigs[a.anchor.sig as usize];
            let Some((lo, hi)) =
                facts::start_range(&sig.offset, self.state.file_len, self.state.exe.as_ref())
            else {
                continue;
            };
            // A buffer shorter than the atom holds no occurrence of it (and a
            // saturating subtraction here would let the loop read past the buffer).
            let Some(last_in_buf) = end.checked_sub(a.atom.len() as u64) else {
                continue;
            };
            let first = lo.saturating_add(a.before.0).max(done).max(base);
            let last = hi
                .saturating_add(a.before.1)
                .min(until.saturating_sub(1))
                .min(last_in_buf);
            if first > last || until == 0 {
                continue;
            }
            for abs in first..=last {
                let at = (abs - base) as usize;
                let window = &buf[at..at + a.atom.len()];
                match &mut lowered {
                    None if window == &a.atom[..] => self.hit(&a.anchor, buf, base, at),
                    Some(lowered) if window.eq_ignore_ascii_case(&a.atom) => {
                        self.hit(&a.anchor, lowered.get(), base, at)
                    }
                    _ => {}
                }
            }
        }
    }

    /// The signature ClamAV would report first, once the whole file has been fed.
    pub fn finish(self) -> Option<BodyMatch> {
        let matcher = self.matcher;
        self.matched.into_iter().min_by_key(|m| m.rank(matcher))
    }

    /// Every signature that matched, once each, in the order ClamAV reports them with
    /// `--allmatch` (its first-match order, [`BodyMatch::rank`]), once the whole file
    /// has been fed.
    pub fn finish_all(self) -> Vec<BodyMatch> {
        let matcher = self.matcher;
        let mut all = self.matched;
        all.sort_by_key(|m| m.rank(matcher));
        all
    }

    /// Counting mode: `(signature index, matches, position of the last match)` of
    /// every signature that matched so far, in no particular order.
    pub fn counts(&self) -> impl Iterator<Item = (usize, u32, u64)> + '_ {
        self.counts
            .iter()
            .map(|(&sig, &(n, last))| (sig as usize, n, last))
    }

    /// Counting mode: the matches of signature `sig` so far and the position of the
    /// last one, if it matched.
    pub fn count_of(&self, sig: usize) -> Option<(u32, u64)> {
        self.counts.get(&(sig as u32)).copied()
    }
}

/// ClamAV's trie depth: its Aho-Corasick trie holds two or three static bytes.
const TRIE_DEPTH: usize = 3;

/// Where ClamAV's trie finds a part, counted from the part's start: past the first
/// static run of two or more bytes (at most [`TRIE_DEPTH`] of it), the elements
/// before it counted at their shortest; and the depth of that trie node.
fn trie_node(part: &Part) -> (u64, usize) {
    let Some((index, run)) = part.literal_runs().into_iter().find(|(_, r)| r.len() >= 2) else {
        return (0, 0);
    };
    let before = seq_len_range(&part.elements[..index]).0 as u64;
    let depth = run.len().min(TRIE_DEPTH);
    (before + depth as u64, depth)
}

/// For a first part whose atom starts at element `elem`: when the signature's offset
/// pins it to at most [`MAX_ANCHORED_WINDOW`] positions, the fewest and most bytes
/// between the offset's position and the atom ([`Anchored`]).
fn anchored_window(sig: &BodySig, elem: usize) -> Option<(u64, u64)> {
    use moat_sigs::OffsetBase;
    let part = &sig.pattern.parts[0];
    let origin = sig.pattern.offset_origin;
    let pinned = matches!(
        sig.offset.base,
        OffsetBase::Absolute(_)
            | OffsetBase::FromEnd(_)
            | OffsetBase::EntryPoint(_)
            | OffsetBase::SectionStart { .. }
            | OffsetBase::LastSection(_)
    );
    if !pinned || elem < origin {
        return None;
    }
    let (min, max) = seq_len_range(&part.elements[origin..elem]);
    let width = u64::from(sig.offset.max_shift.unwrap_or(0)) + u64::from(max - min);
    (width <= MAX_ANCHORED_WINDOW).then_some((u64::from(min), u64::from(max)))
}

/// The ops of a part before and after the atom of `anchor` (itself one op).
fn split_around<'p>(ops: &'p [Op], anchor: &Anchor) -> (&'p [Op], &'p [Op]) {
    let at = anchor.op as usize;
    (&ops[..at], &ops[at + 1..])
}

/// Picks the atom of a part: the window of at most [`MAX_ATOM`] bytes, inside one of
/// its static runs, whose bytes are rarest; longer runs win over shorter ones (the
/// first such window on a tie). A sliding sum over each run, no allocation but the
/// atom: this ran for every part of every signature at load.
fn choose_atom(part: &Part) -> (usize, Vec<u8>) {
    let elements = &part.elements;
    let byte = |i: usize| match elements[i] {
        Element::Byte(b) => Some(b),
        _ => None,
    };
    let mut best: Option<(u32, usize, usize)> = None;
    let mut i = 0;
    while i < elements.len() {
        let start = i;
        while i < elements.len() && byte(i).is_some() {
            i += 1;
        }
        let run = i - start;
        i += usize::from(run == 0);
        if run < 2 {
            continue;
        }
        let len = run.min(MAX_ATOM);
        let weight = |k: usize| byte(k).map_or(0, commonness);
        let mut sum: u32 = (start..start + len).map(weight).sum();
        for offset in 0..=run - len {
            if offset > 0 {
                sum = sum + weight(start + offset + len - 1) - weight(start + offset - 1);
            }
            let score = len as u32 * 256 - sum / len as u32;
            if best.is_none_or(|(s, _, _)| score > s) {
                best = Some((score, start + offset, len));
            }
        }
    }
    let (_, elem, len) = best.expect("the parser guarantees a static run of two bytes per part");
    let bytes = (elem..elem + len).filter_map(byte).collect();
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
