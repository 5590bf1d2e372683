//! The candidate search: every occurrence of every atom, in one pass.
//!
//! Written by hand rather than with the `aho-corasick` crate because of a measurement:
//! with the 30,000-signature benchmark database (≈ 30,000 distinct atoms), its
//! overlapping search runs at ≈ 30 MB/s per core (82% of the scan time), and its DFA
//! is slower still to build and larger. Atoms here are short (2 to 4 bytes), so a
//! simpler structure does better, in two levels:
//!
//! - the [`Filter`], tested at every position with one branch: the 4-byte window
//!   hashed into a 2^18-bit map (4-byte atoms), or its first two bytes in a direct
//!   2^16-bit map (the few 2- and 3-byte atoms);
//! - at the rare positions that pass, per atom length, a hashed bitmap sized for the
//!   atoms (64 bits per atom), then an exact table.
//!
//! Every matcher that scans a buffer (raw bytes: the file type's body signatures,
//! target 0's and the logical subsignatures; the normalized copy: target 7, target 0
//! and the target-7/0 logical subsignatures, `::i` included) is served by ONE pass:
//! their filters OR into one ([`with_union`]), and only a position that passes the
//! union is probed in each matcher's tables ([`for_each_candidate`]).
//!
//! Measured with callgrind on 2,498 files of /usr/share (74.9 MB scanned) with all of
//! ../shared/sigs/clamav-real: one pass per matcher (about five per file) with a
//! first level of one bit per first two bytes of every atom was 14.26 G instructions;
//! that map let 27% of text positions through for the 715 atoms of target-0 logical
//! subsignatures alone (their first two bytes are common text: `in`, `re`, `er`), and
//! the union of a pass's matchers more. The hashed window lets through about 1 in 200
//! plus true occurrences; one pass with it: 11.28 G (load included, ≈ 1.9 G).
//! The same idea as ClamAV's and Hyperscan's shift/bitmap filters, without their
//! bucketing.
//!
//! The first level runs eight positions per step with AVX2 where the CPU has it
//! (detected once; `MOAT_PREFILTER=scalar` forces the scalar loop, the fallback on
//! other CPUs and targets): the eight windows from one 16-byte load (vpshufb), the
//! hash (vpmulld), one vpgatherdd of the coarse map and one of the short map viewed
//! as u32 words, a variable shift and movemask give a bitmask of the positions that
//! pass, handed out in order (tzcnt). Same positions as the scalar loop (tested
//! against it on random and real filters). Measured on the first 2,000 files of
//! /usr/share (54 MB scanned) with all of ../shared/sigs/clamav-real, callgrind:
//! 12.34 G instructions with the scalar loop (its function 2.8 G), 10.11 G with AVX2
//! (0.5 G). Alone on one buffer with the real union filters (timed while other builds
//! loaded the machine): text 460 → 900-1,650 MB/s, random bytes 380-400 → 610-760,
//! an ELF program (where 19% of positions pass: the logical subsignatures' short
//! atoms such as `0000`) 230-260 → 330 MB/s.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Atom lengths the prefilter handles.
pub const MIN_ATOM: usize = 2;
/// The longest atom: a 4-byte window fits one unaligned load.
pub const MAX_ATOM: usize = 4;

/// A multiplicative hasher for `u32` keys (the windows are already well mixed by it).
#[derive(Default)]
struct WindowHasher(u64);

impl Hasher for WindowHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type WindowMap = HashMap<u32, u32, BuildHasherDefault<WindowHasher>>;

/// Atoms of one length: a bitmap over hashed windows and the exact table behind it.
struct Table {
    len: usize,
    mask: u32,
    shift: u32,
    bits: Box<[u64]>,
    exact: WindowMap,
}

impl Table {
    fn new(len: usize, atoms: &[(u32, u32)]) -> Option<Table> {
        if atoms.is_empty() {
            return None;
        }
        // 64 bits per atom (at most 2^22 bits, 512 KiB): a false candidate costs a
        // hash-table probe, which dominated with 8 bits per atom. Measured on the
        // 30,000-signature benchmark (one thread): 8 bits/atom 3.2 s, 64 bits/atom 2.1 s.
        let log2 = (atoms.len() * 64)
            .next_power_of_two()
            .trailing_zeros()
            .clamp(12, 22);
        let mut table = Table {
            len,
            mask: if len == 4 {
                u32::MAX
            } else {
                (1u32 << (8 * len)) - 1
            },
            shift: 32 - log2,
            bits: vec![0u64; (1usize << log2) / 64].into_boxed_slice(),
            exact: WindowMap::default(),
        };
        for &(window, id) in atoms {
            let h = table.slot(window);
            table.bits[h / 64] |= 1 << (h % 64);
            table.exact.insert(window, id);
        }
        Some(table)
    }

    #[inline(always)]
    fn slot(&self, window: u32) -> usize {
        (window.wrapping_mul(0x9E37_79B1) >> self.shift) as usize
    }

    #[inline(always)]
    fn probe(&self, window: u32) -> Option<u32> {
        let window = window & self.mask;
        let h = self.slot(window);
        if self.bits[h / 64] & (1 << (h % 64)) == 0 {
            return None;
        }
        self.exact.get(&window).copied()
    }
}

/// Bits of the coarse first-level bitmap of 4-byte atoms: 2^18 bits (32 KiB, in L1).
const COARSE_LOG2: u32 = 18;
const COARSE_WORDS: usize = (1 << COARSE_LOG2) / 64;
/// Bits of the first-level bitmap of 2- and 3-byte atoms: one per two-byte value.
const SHORT_WORDS: usize = (1 << 16) / 64;

/// The first-level test at every position: whether some atom may start there.
///
/// Two bitmaps, tested together with one branch: the 4-byte window hashed into
/// [`COARSE_LOG2`] bits (for 4-byte atoms), and the window's first two bytes (for
/// the few 2- and 3-byte atoms). Measured on the text of /usr/share with the real
/// signatures: the earlier single bitmap of the first two bytes of EVERY atom let
/// 27% of positions through for the 715 atoms of target-0 logical subsignatures
/// alone (their first two bytes are common text: `in`, `re`, `er`...), where the
/// hashed 4-byte window lets through about 1 in 200 plus the atoms' true
/// occurrences. One layout for every prefilter, so that the filters of several
/// matchers OR into one ([`Filter::add`]) and a buffer is passed over once for all
/// of them ([`for_each_candidate`]).
pub struct Filter {
    coarse: [u64; COARSE_WORDS],
    short: [u64; SHORT_WORDS],
}

impl Filter {
    /// An empty filter (no position passes), on the heap (40 KiB).
    pub fn empty() -> Box<Filter> {
        Box::new(Filter {
            coarse: [0; COARSE_WORDS],
            short: [0; SHORT_WORDS],
        })
    }

    /// Makes every position that passes `other` pass this filter too.
    pub fn add(&mut self, other: &Filter) {
        for (a, b) in self.coarse.iter_mut().zip(other.coarse.iter()) {
            *a |= b;
        }
        for (a, b) in self.short.iter_mut().zip(other.short.iter()) {
            *a |= b;
        }
    }

    fn set_atom(&mut self, bytes: &[u8]) {
        if bytes.len() == MAX_ATOM {
            let h = coarse_slot(window_of(bytes));
            self.coarse[h >> 6] |= 1 << (h & 63);
        } else {
            let k = usize::from(u16::from_le_bytes([bytes[0], bytes[1]]));
            self.short[k >> 6] |= 1 << (k & 63);
        }
    }

    /// Whether a 4-byte atom may be `window`.
    #[inline(always)]
    fn coarse_bit(&self, window: u32) -> u64 {
        let h = coarse_slot(window);
        // SAFETY: `h < 2^COARSE_LOG2` (a 32-bit value shifted right by
        // 32 - COARSE_LOG2), so `h >> 6 < COARSE_WORDS`. Runs at every position.
        unsafe { *self.coarse.get_unchecked(h >> 6) >> (h & 63) & 1 }
    }

    /// Whether a 2- or 3-byte atom may start `window`.
    #[inline(always)]
    fn short_bit(&self, window: u32) -> u64 {
        let k = (window & 0xffff) as usize;
        // SAFETY: `k < 2^16`, so `k >> 6 < SHORT_WORDS`.
        unsafe { *self.short.get_unchecked(k >> 6) >> (k & 63) & 1 }
    }
}

#[inline(always)]
fn coarse_slot(window: u32) -> usize {
    (window.wrapping_mul(0x9E37_79B1) >> (32 - COARSE_LOG2)) as usize
}

/// All atoms, by length.
pub struct Prefilter {
    /// The table of 4-byte atoms, if any.
    long: Option<Table>,
    /// The tables of 3- and 2-byte atoms.
    short: Vec<Table>,
    filter: Box<Filter>,
    /// Unique among all prefilters built by this process ([`with_union`]).
    id: u64,
    /// Case-folding ([`Prefilter::folding_case`]).
    fold_case: bool,
}

impl Prefilter {
    /// Builds the filter from `(atom bytes, atom id)` pairs; atoms are 2 to 4 bytes.
    pub fn new(atoms: &[(Vec<u8>, u32)]) -> Prefilter {
        Prefilter::build(atoms, false)
    }

    /// [`Prefilter::new`] for lowercase atoms (`::i` subsignatures) searched in data
    /// of any case: the filter has every case variant of each atom, and a window is
    /// lowercased before its exact lookup. So the raw bytes are searched once for
    /// both cases, and only a buffer with a hit needs a lowercased copy to be
    /// verified on: the earlier second pass over a lowercased copy of every raw
    /// buffer was 566 MB of the 1.66 GB passed over on 20,000 /usr/share files.
    pub fn folding_case(atoms: &[(Vec<u8>, u32)]) -> Prefilter {
        Prefilter::build(atoms, true)
    }

    fn build(atoms: &[(Vec<u8>, u32)], fold_case: bool) -> Prefilter {
        let table = |len: usize| {
            let of_len: Vec<(u32, u32)> = atoms
                .iter()
                .filter(|(bytes, _)| bytes.len() == len)
                .map(|(bytes, id)| (window_of(bytes), *id))
                .collect();
            Table::new(len, &of_len)
        };
        let mut filter = Filter::empty();
        for (bytes, _) in atoms {
            match fold_case {
                true => case_variants(bytes, &mut |v| filter.set_atom(v)),
                false => filter.set_atom(bytes),
            }
        }
        Prefilter {
            long: table(MAX_ATOM),
            short: (MIN_ATOM..MAX_ATOM).rev().filter_map(table).collect(),
            filter,
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            fold_case,
        }
    }

    /// The window as the exact tables hold atoms: lowercased when folding case.
    #[inline(always)]
    fn key(&self, window: u32) -> u32 {
        match self.fold_case {
            true => u32::from_le_bytes(window.to_le_bytes().map(|b| b.to_ascii_lowercase())),
            false => window,
        }
    }

    /// Calls `found(atom id, position)` for every occurrence of every atom in `data`,
    /// in order of position.
    #[inline]
    pub fn for_each(&self, data: &[u8], mut found: impl FnMut(u32, usize)) {
        for_each_candidate(data, &self.filter, |window, pos| {
            self.probe_window(window, |id| found(id, pos));
        });
        self.for_each_tail(data, found);
    }

    /// Calls `found(atom id)` for each atom that is a prefix of the 4-byte `window`
    /// (a position [`for_each_candidate`] gave, with some filter this one's is in).
    #[inline]
    pub fn probe_window(&self, window: u32, mut found: impl FnMut(u32)) {
        let window = self.key(window);
        let filter = &self.filter;
        if let Some(long) = &self.long {
            if filter.coarse_bit(window) != 0 {
                if let Some(id) = long.probe(window) {
                    found(id);
                }
            }
        }
        if filter.short_bit(window) != 0 {
            for table in &self.short {
                if let Some(id) = table.probe(window) {
                    found(id);
                }
            }
        }
    }

    /// [`Prefilter::for_each`] over the last three positions of `data` only (fewer
    /// than four bytes left: only shorter atoms fit there).
    pub fn for_each_tail(&self, data: &[u8], mut found: impl FnMut(u32, usize)) {
        for pos in data.len().saturating_sub(3)..data.len() {
            let rest = &data[pos..];
            for table in self.short.iter().filter(|t| t.len <= rest.len()) {
                if let Some(id) = table.probe(self.key(window_of(&rest[..table.len]))) {
                    found(id, pos);
                }
            }
        }
    }
}

/// Calls `candidate(window, position)` at every position of `data` with four bytes
/// left that passes `filter`, in order: the one pass over a buffer that serves every
/// matcher scanning it (`BodyScan::feed_all`); the last three positions are each
/// prefilter's [`Prefilter::for_each_tail`].
#[inline]
pub fn for_each_candidate(data: &[u8], filter: &Filter, candidate: impl FnMut(u32, usize)) {
    for_each_candidate_with(Kernel::detected(), data, filter, candidate);
}

/// [`for_each_candidate`] with a chosen implementation of the first-level scan.
#[inline]
fn for_each_candidate_with(
    kernel: Kernel,
    data: &[u8],
    filter: &Filter,
    mut candidate: impl FnMut(u32, usize),
) {
    let mut from = 0;
    while let Some(block) = next_block(kernel, data, filter, from) {
        let mut mask = block.mask;
        while mask != 0 {
            let pos = block.base + mask.trailing_zeros() as usize;
            candidate(window_at(data, pos), pos);
            mask &= mask - 1;
        }
        from = block.end;
    }
}

/// The window at `pos` of `data` (`pos + 4 <= data.len()`).
#[inline(always)]
fn window_at(data: &[u8], pos: usize) -> u32 {
    let bytes: [u8; 4] = data[pos..pos + 4].try_into().expect("four bytes");
    u32::from_le_bytes(bytes)
}

/// An implementation of the first-level scan; all give the same positions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kernel {
    /// One position per iteration, any target.
    Scalar,
    /// Eight positions per step with AVX2 gathers (x86-64 with AVX2 only).
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Kernel {
    /// The fastest kernel this CPU runs, detected once; `MOAT_PREFILTER=scalar` in
    /// the environment forces the scalar one (to measure it, or to rule the vector
    /// one out).
    fn detected() -> Kernel {
        static KERNEL: std::sync::OnceLock<Kernel> = std::sync::OnceLock::new();
        *KERNEL.get_or_init(|| {
            if std::env::var_os("MOAT_PREFILTER").is_some_and(|v| v == "scalar") {
                return Kernel::Scalar;
            }
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                return Kernel::Avx2;
            }
            Kernel::Scalar
        })
    }
}

/// Positions that pass the filter: `base + i` for every bit `i` set in `mask` (at
/// least one). The scan resumes at `end`.
struct Block {
    base: usize,
    mask: u32,
    end: usize,
}

/// The first block of positions from `from` with some position passing `filter`. A
/// function of its own, not inlined into the caller's handling of a candidate:
/// inlined, that handling's values spilled to the stack inside the scan loop (30
/// instructions per position instead of about 15, seen in the disassembly).
#[inline(never)]
fn next_block(kernel: Kernel, data: &[u8], filter: &Filter, from: usize) -> Option<Block> {
    match kernel {
        Kernel::Scalar => next_block_scalar(data, filter, from),
        // SAFETY: `Kernel::Avx2` is only chosen when the CPU has AVX2.
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 => unsafe { avx2::next_block(data, filter, from) },
    }
}

/// The scalar scan: the first position from `from` that passes, alone in its block.
#[inline(always)]
fn next_block_scalar(data: &[u8], filter: &Filter, from: usize) -> Option<Block> {
    let ptr = data.as_ptr();
    let (coarse, short) = (&filter.coarse, &filter.short);
    for pos in from..data.len().saturating_sub(3) {
        // SAFETY: `pos + 4 <= data.len()`. One unaligned load instead of four byte
        // loads and shifts (a third of the loop, callgrind).
        let window = u32::from_le(unsafe { ptr.add(pos).cast::<u32>().read_unaligned() });
        let h = coarse_slot(window);
        let k = (window & 0xffff) as usize;
        // SAFETY: `h < 2^COARSE_LOG2` and `k < 2^16`, see `Filter::coarse_bit`.
        let (c, s) = unsafe { (*coarse.get_unchecked(h >> 6), *short.get_unchecked(k >> 6)) };
        if c & (1 << (h & 63)) != 0 || s & (1 << (k & 63)) != 0 {
            return Some(Block {
                base: pos,
                mask: 1,
                end: pos + 1,
            });
        }
    }
    None
}

/// The AVX2 scan: eight positions per step, as the scalar loop computes them one by
/// one. Hand-written with `std::arch` (no crate offers a hashed-bitmap gather).
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{next_block_scalar, Block, Filter, COARSE_LOG2};
    use std::arch::x86_64::*;

    /// Positions per step: lane `i` of the vectors holds the window at `pos + i`.
    const STEP: usize = 8;
    /// Steps per block: a block's candidates fit the `u32` mask.
    const STEPS: usize = 4;

    /// [`super::next_block_scalar`], eight positions at a time while a 16-byte load
    /// fits; the last few positions go through the scalar loop.
    ///
    /// # Safety
    /// The CPU must have AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn next_block(data: &[u8], filter: &Filter, from: usize) -> Option<Block> {
        let len = data.len();
        let mut pos = from;
        while pos + STEP * (STEPS - 1) + 16 <= len {
            let mut mask = 0;
            for step in 0..STEPS {
                // SAFETY: `pos + STEP * step + 16 <= len`, the loop's condition.
                mask |= unsafe { step_mask(data.as_ptr().add(pos + STEP * step), filter) }
                    << (STEP * step);
            }
            if mask != 0 {
                let end = pos + STEP * STEPS;
                return Some(Block {
                    base: pos,
                    mask,
                    end,
                });
            }
            pos += STEP * STEPS;
        }
        while pos + 16 <= len {
            // SAFETY: `pos + 16 <= len`, the loop's condition.
            let mask = unsafe { step_mask(data.as_ptr().add(pos), filter) };
            if mask != 0 {
                let end = pos + STEP;
                return Some(Block {
                    base: pos,
                    mask,
                    end,
                });
            }
            pos += STEP;
        }
        next_block_scalar(data, filter, pos)
    }

    /// Bit `i` set when the window at `at + i` passes `filter`, for `i < 8`.
    ///
    /// # Safety
    /// The CPU must have AVX2, and 16 bytes must be readable at `at`.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn step_mask(at: *const u8, filter: &Filter) -> u32 {
        // Byte indexes of the windows at 0..4 (low lane) and 4..8 (high lane) of the
        // 16 bytes, which vpshufb takes from both lanes.
        let windows_of = _mm256_setr_epi8(
            0, 1, 2, 3, 1, 2, 3, 4, 2, 3, 4, 5, 3, 4, 5, 6, //
            4, 5, 6, 7, 5, 6, 7, 8, 6, 7, 8, 9, 7, 8, 9, 10,
        );
        // SAFETY: 16 bytes are readable at `at` (this function's contract).
        let bytes = unsafe { _mm_loadu_si128(at.cast()) };
        let windows = _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(bytes), windows_of);
        // The coarse map's bit `coarse_slot(window)`, reading the map as u32 words
        // (x86 is little-endian: bit `b` of the u64 words is bit `b % 32` of u32
        // word `b / 32`).
        let hashed = _mm256_mullo_epi32(windows, _mm256_set1_epi32(0x9E37_79B1_u32 as i32));
        let slot = _mm256_srli_epi32::<{ 32 - COARSE_LOG2 as i32 }>(hashed);
        // SAFETY: `slot < 2^COARSE_LOG2`, so every word index `slot / 32` is inside
        // the coarse map of `2^COARSE_LOG2 / 32` u32 words.
        let coarse = unsafe {
            _mm256_i32gather_epi32::<4>(filter.coarse.as_ptr().cast(), _mm256_srli_epi32::<5>(slot))
        };
        let low5 = _mm256_set1_epi32(31);
        let coarse_bit = _mm256_srlv_epi32(coarse, _mm256_and_si256(slot, low5));
        // The short map's bit of the window's first two bytes.
        let first_two = _mm256_and_si256(windows, _mm256_set1_epi32(0xffff));
        // SAFETY: `first_two < 2^16`, so every word index `first_two / 32` is inside
        // the short map of `2^16 / 32` u32 words.
        let short = unsafe {
            _mm256_i32gather_epi32::<4>(
                filter.short.as_ptr().cast(),
                _mm256_srli_epi32::<5>(first_two),
            )
        };
        let short_bit = _mm256_srlv_epi32(short, _mm256_and_si256(first_two, low5));
        let passes = _mm256_slli_epi32::<31>(_mm256_or_si256(coarse_bit, short_bit));
        _mm256_movemask_ps(_mm256_castsi256_ps(passes)) as u32
    }
}

/// A number per prefilter ever built, never reused (so that a union cached for a
/// set of prefilters cannot be taken for another set after a reload).
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The most prefilters whose union is cached.
const MAX_UNION: usize = 8;

std::thread_local! {
    /// The union of the filters of the last set of prefilters this thread scanned a
    /// buffer with, and their ids: consecutive files nearly always meet the same set
    /// (same file type), and building the union (40 KiB per filter) per buffer was a
    /// measurable cost on small files.
    static UNION: std::cell::RefCell<([u64; MAX_UNION], Option<Box<Filter>>)> =
        const { std::cell::RefCell::new(([u64::MAX; MAX_UNION], None)) };
}

/// Runs `f` with the union of the filters of `prefilters` (at most [`MAX_UNION`]:
/// more are ORed afresh each time).
pub fn with_union<R>(prefilters: &[&Prefilter], f: impl FnOnce(&Filter) -> R) -> R {
    if prefilters.len() > MAX_UNION {
        let mut union = Filter::empty();
        prefilters.iter().for_each(|p| union.add(&p.filter));
        return f(&union);
    }
    let mut ids = [u64::MAX; MAX_UNION];
    for (id, p) in ids.iter_mut().zip(prefilters) {
        *id = p.id;
    }
    UNION.with(|cell| {
        let mut cache = cell.borrow_mut();
        let (cached_ids, union) = &mut *cache;
        let union = match union {
            Some(union) if *cached_ids == ids => union,
            _ => {
                let union = union.insert(Filter::empty());
                prefilters.iter().for_each(|p| union.add(&p.filter));
                *cached_ids = ids;
                union
            }
        };
        f(union)
    })
}

/// Calls `f` with every byte string that lowercases to `atom` (itself lowercase):
/// each ASCII letter in either case.
fn case_variants(atom: &[u8], f: &mut impl FnMut(&[u8])) {
    let letters: Vec<usize> = (0..atom.len())
        .filter(|&i| atom[i].is_ascii_lowercase())
        .collect();
    let mut variant = atom.to_vec();
    for bits in 0..1u32 << letters.len() {
        for (k, &i) in letters.iter().enumerate() {
            variant[i] = match bits >> k & 1 {
                1 => atom[i].to_ascii_uppercase(),
                _ => atom[i],
            };
        }
        f(&variant);
    }
}

/// The little-endian window value of up to four bytes.
fn window_of(bytes: &[u8]) -> u32 {
    let mut buf = [0u8; 4];
    buf[..bytes.len()].copy_from_slice(bytes);
    u32::from_le_bytes(buf)
}

#[cfg(test)]
mod tests;
