//! The compact compiled form of signature parts, and matching it.
//!
//! # Why
//!
//! The loader's [`Element`] is 40 bytes (a [`ByteSet`] inline, a vector for
//! alternates), and nearly every element of a real signature is one plain byte: kept
//! as elements, the hex subsignatures of main.ldb and daily.ldb took ≈ 130 MB, more
//! than clamscan's whole peak (measured with massif on all of ../shared/sigs/clamav-real).
//!
//! # Design
//!
//! A part becomes a run of 8-byte [`Op`]s in one [`Arena`] per matcher: each run of
//! consecutive plain bytes is one [`Op::Lit`] pointing into the arena's byte vector
//! (one byte per signature byte), and only the other elements are ops of their own
//! (nibble masks and skips inline, byte sets and alternates as indexes into side
//! tables, where alternates keep their loader form and are matched by
//! [`super::elements`]). A part's ops are cut where the matcher needs an op boundary:
//! around its atom (so the atom is exactly one `Lit`, and verification runs on the
//! ops before and after it) and at the element the offset constrains. Matching is the
//! element matcher's, with a literal compared as one slice: same positions, same
//! order, so verdicts are unchanged.

use moat_sigs::hex::{Boundary, ByteSet, Element};

use super::elements;

/// One step of a compiled part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `len` plain bytes at `start` in [`Arena::bytes`].
    Lit {
        /// First byte in the arena.
        start: u32,
        /// Number of bytes.
        len: u16,
    },
    /// One byte `b` with `b & mask == value`.
    Masked {
        /// The expected bits.
        value: u8,
        /// Which bits are compared.
        mask: u8,
    },
    /// One byte of the set [`Arena::sets`]`[i]`.
    Class(u32),
    /// Any number of bytes in `min..=max`.
    Skip {
        /// Fewest bytes skipped.
        min: u16,
        /// Most bytes skipped.
        max: u16,
    },
    /// The alternates [`Arena::alts`]`[i]` (an [`Element::Alt`]).
    Alt(u32),
    /// A character class inside a part.
    Boundary(Boundary),
}

const _: () = assert!(std::mem::size_of::<Op>() == 8);

/// A part's ops: `len` ops from `start` in [`Arena::ops`].
#[derive(Debug, Clone, Copy)]
pub struct OpRange {
    start: u32,
    len: u32,
}

/// Start or end positions of a part around its atom: nearly always one, kept inline
/// (measured: the heap vectors these were cost 12% of the scan's instructions in
/// malloc and free on 2,000 /usr/share files).
pub type Positions = smallvec::SmallVec<[usize; 4]>;

/// The compiled parts of one matcher's signatures.
#[derive(Default)]
pub struct Arena {
    ops: Vec<Op>,
    bytes: Vec<u8>,
    sets: Vec<ByteSet>,
    alts: Vec<Element>,
}

impl Arena {
    /// Appends the ops of a part, with an op boundary before each element index of
    /// `cuts` (an index equal to `elements.len()` is the end); returns the part's
    /// ops and, for each cut, the index (in the part) of the op that starts there.
    pub fn push_part<const N: usize>(
        &mut self,
        elements: &[Element],
        cuts: [usize; N],
    ) -> (OpRange, [u32; N]) {
        let first = self.ops.len();
        let mut cut_ops = [0u32; N];
        let mut lit: Option<(u32, u16)> = None;
        for (i, element) in elements.iter().enumerate() {
            if cuts.contains(&i) {
                self.flush(&mut lit);
                for (k, &c) in cuts.iter().enumerate() {
                    if c == i {
                        cut_ops[k] = (self.ops.len() - first) as u32;
                    }
                }
            }
            let op = match element {
                Element::Byte(b) => {
                    if lit.is_some_and(|(_, len)| len == u16::MAX) {
                        self.flush(&mut lit);
                    }
                    let (_, len) = lit.get_or_insert((self.bytes.len() as u32, 0));
                    *len += 1;
                    self.bytes.push(*b);
                    continue;
                }
                &Element::Masked { value, mask } => Op::Masked { value, mask },
                Element::Class(set) => {
                    self.sets.push(**set);
                    Op::Class(self.sets.len() as u32 - 1)
                }
                // The parser bounds skips far below u16::MAX (inline `{n}` < 128,
                // anchored ≤ 32, doubled at most once for the wide form).
                &Element::Skip { min, max } => Op::Skip {
                    min: u16::try_from(min).unwrap_or(u16::MAX),
                    max: u16::try_from(max).unwrap_or(u16::MAX),
                },
                Element::Alt { .. } => {
                    self.alts.push(element.clone());
                    Op::Alt(self.alts.len() as u32 - 1)
                }
                &Element::Boundary(b) => Op::Boundary(b),
            };
            self.flush(&mut lit);
            self.ops.push(op);
        }
        self.flush(&mut lit);
        for (k, &c) in cuts.iter().enumerate() {
            if c >= elements.len() {
                cut_ops[k] = (self.ops.len() - first) as u32;
            }
        }
        let range = OpRange {
            start: first as u32,
            len: (self.ops.len() - first) as u32,
        };
        (range, cut_ops)
    }

    fn flush(&mut self, lit: &mut Option<(u32, u16)>) {
        if let Some((start, len)) = lit.take() {
            self.ops.push(Op::Lit { start, len });
        }
    }

    /// Gives back the slack of the vectors once every part is in.
    pub fn shrink_to_fit(&mut self) {
        self.ops.shrink_to_fit();
        self.bytes.shrink_to_fit();
        self.sets.shrink_to_fit();
        self.alts.shrink_to_fit();
    }

    /// The ops of a part.
    #[inline]
    pub fn ops(&self, range: OpRange) -> &[Op] {
        &self.ops[range.start as usize..(range.start + range.len) as usize]
    }

    /// The bytes of a literal.
    #[inline]
    pub fn lit(&self, start: u32, len: u16) -> &[u8] {
        &self.bytes[start as usize..start as usize + usize::from(len)]
    }

    /// Bytes of memory held.
    pub fn heap_bytes(&self) -> usize {
        self.ops.capacity() * std::mem::size_of::<Op>()
            + self.bytes.capacity()
            + self.sets.capacity() * std::mem::size_of::<ByteSet>()
            + self.alts.capacity() * std::mem::size_of::<Element>()
    }

    /// Positions where `ops` can end when they start at `start`. The leading
    /// fixed-length ops (most of a real part) are matched in place first, so that a
    /// candidate that fails there, as nearly all do, costs no allocation.
    pub fn forward_from(&self, ops: &[Op], data: &[u8], start: usize) -> Positions {
        let mut pos = start;
        for (i, op) in ops.iter().enumerate() {
            let ok = match *op {
                Op::Lit { start, len } => {
                    let lit = self.lit(start, len);
                    let ok = data.get(pos..pos + lit.len()) == Some(lit);
                    pos += lit.len();
                    ok
                }
                Op::Masked { value, mask } => {
                    pos += 1;
                    data.get(pos - 1).is_some_and(|&b| b & mask == value)
                }
                Op::Class(k) => {
                    pos += 1;
                    data.get(pos - 1)
                        .is_some_and(|&b| self.sets[k as usize].contains(b))
                }
                _ => return Positions::from_vec(self.forward(&ops[i..], data, vec![pos])),
            };
            if !ok {
                return Positions::new();
            }
        }
        smallvec::smallvec![pos]
    }

    /// Positions where `ops` can start when they end at `end`, the trailing
    /// fixed-length ops matched in place first (see [`Arena::forward_from`]).
    pub fn backward_from(&self, ops: &[Op], data: &[u8], end: usize) -> Positions {
        let mut pos = end;
        for (i, op) in ops.iter().enumerate().rev() {
            let ok = match *op {
                Op::Lit { start, len } => {
                    let lit = self.lit(start, len);
                    let Some(from) = pos.checked_sub(lit.len()) else {
                        return Positions::new();
                    };
                    let ok = data.get(from..pos) == Some(lit);
                    pos = from;
                    ok
                }
                Op::Masked { value, mask } => {
                    let Some(p) = pos.checked_sub(1) else {
                        return Positions::new();
                    };
                    pos = p;
                    data.get(p).is_some_and(|&b| b & mask == value)
                }
                Op::Class(k) => {
                    let Some(p) = pos.checked_sub(1) else {
                        return Positions::new();
                    };
                    pos = p;
                    data.get(p)
                        .is_some_and(|&b| self.sets[k as usize].contains(b))
                }
                _ => return Positions::from_vec(self.backward(&ops[..=i], data, vec![pos])),
            };
            if !ok {
                return Positions::new();
            }
        }
        smallvec::smallvec![pos]
    }

    /// Positions where `ops` can end when they start at any of `starts`.
    pub fn forward(&self, ops: &[Op], data: &[u8], starts: Vec<usize>) -> Vec<usize> {
        let mut current = starts;
        let mut next = Vec::new();
        for op in ops {
            for &pos in &current {
                self.op_forward(*op, data, pos, &mut next);
            }
            normalize(&mut next);
            std::mem::swap(&mut current, &mut next);
            next.clear();
            if current.is_empty() {
                break;
            }
        }
        current
    }

    /// Positions where `ops` can start when they end at any of `ends`.
    pub fn backward(&self, ops: &[Op], data: &[u8], ends: Vec<usize>) -> Vec<usize> {
        let mut current = ends;
        let mut next = Vec::new();
        for op in ops.iter().rev() {
            for &pos in &current {
                self.op_backward(*op, data, pos, &mut next);
            }
            normalize(&mut next);
            std::mem::swap(&mut current, &mut next);
            next.clear();
            if current.is_empty() {
                break;
            }
        }
        current
    }

    fn op_forward(&self, op: Op, data: &[u8], pos: usize, out: &mut Vec<usize>) {
        match op {
            Op::Lit { start, len } => {
                let lit = self.lit(start, len);
                if data.get(pos..pos + lit.len()) == Some(lit) {
                    out.push(pos + lit.len());
                }
            }
            Op::Masked { value, mask } => {
                if data.get(pos).is_some_and(|&b| b & mask == value) {
                    out.push(pos + 1);
                }
            }
            Op::Class(k) => {
                if data
                    .get(pos)
                    .is_some_and(|&b| self.sets[k as usize].contains(b))
                {
                    out.push(pos + 1);
                }
            }
            Op::Alt(k) => elements::element_forward(&self.alts[k as usize], data, pos, out),
            other => elements::element_forward(&self.element(other), data, pos, out),
        }
    }

    fn op_backward(&self, op: Op, data: &[u8], pos: usize, out: &mut Vec<usize>) {
        match op {
            Op::Lit { start, len } => {
                let lit = self.lit(start, len);
                if let Some(from) = pos.checked_sub(lit.len()) {
                    if data.get(from..pos) == Some(lit) {
                        out.push(from);
                    }
                }
            }
            Op::Masked { value, mask } => {
                if pos > 0 && data.get(pos - 1).is_some_and(|&b| b & mask == value) {
                    out.push(pos - 1);
                }
            }
            Op::Class(k) => {
                if pos > 0
                    && data
                        .get(pos - 1)
                        .is_some_and(|&b| self.sets[k as usize].contains(b))
                {
                    out.push(pos - 1);
                }
            }
            Op::Alt(k) => elements::element_backward(&self.alts[k as usize], data, pos, out),
            other => elements::element_backward(&self.element(other), data, pos, out),
        }
    }

    /// The loader's element for a skip or a boundary (no allocation), to match it
    /// as the loader's elements are matched.
    fn element(&self, op: Op) -> Element {
        match op {
            Op::Skip { min, max } => Element::Skip {
                min: u32::from(min),
                max: u32::from(max),
            },
            Op::Boundary(b) => Element::Boundary(b),
            Op::Lit { .. } | Op::Masked { .. } | Op::Class(_) | Op::Alt(_) => {
                unreachable!("handled by the callers")
            }
        }
    }
}

fn normalize(v: &mut Vec<usize>) {
    v.sort_unstable();
    v.dedup();
}

#[cfg(test)]
mod tests {
    use super::*;
    use moat_sigs::hex;

    /// The ops match exactly where the loader's elements do, forwards and backwards,
    /// from every position of a few buffers.
    #[test]
    fn ops_match_where_elements_match() {
        let sigs = [
            "41424344",
            "4142??44(45|46)47",
            "41{3}4243(4445|46??47)48",
            "41[1-3]424344",
            "4142(L)4344(B)4546",
            "4?42434?45",
        ];
        let data: Vec<u8> = b"xxABCDEFGxABCDxxAB\nCD-EFAxxxBCDDEHAB\r\nCD EFABCxDEGH"
            .iter()
            .chain(b"AxxBCDAzBCDCE".iter())
            .copied()
            .collect();
        for text in sigs {
            let pattern = hex::parse(text).unwrap();
            let elements = &pattern.parts[0].elements;
            for cut in 0..=elements.len() {
                let mut arena = Arena::default();
                let (range, [c]) = arena.push_part(elements, [cut]);
                let ops = arena.ops(range);
                let (e_before, e_after) = elements.split_at(cut);
                let (o_before, o_after) = ops.split_at(c as usize);
                for pos in 0..=data.len() {
                    assert_eq!(
                        arena.forward_from(o_after, &data, pos).into_vec(),
                        elements::forward(e_after, &data, vec![pos]),
                        "{text} cut {cut} forward from {pos}"
                    );
                    assert_eq!(
                        arena.backward_from(o_before, &data, pos).into_vec(),
                        elements::backward(e_before, &data, vec![pos]),
                        "{text} cut {cut} backward from {pos}"
                    );
                }
            }
        }
    }
}
