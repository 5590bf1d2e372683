//! Matching the loader's elements forwards and backwards from a known position: what
//! the compact ops ([`super::ops`]) use for alternates and the rarer elements.
//!
//! Elements can have several lengths (skips, generic alternates, `(B)`, `(L)`), so
//! matching works on small sets of positions: the set of places where the sequence
//! can end (forwards) or start (backwards). The sets stay tiny in practice (bounded
//! by the spread of the skips), so they are plain sorted vectors.

use moat_sigs::hex::{Boundary, Element};

/// Positions where `elements` can end when they start at any of `starts`.
pub fn forward(elements: &[Element], data: &[u8], starts: Vec<usize>) -> Vec<usize> {
    let mut current = starts;
    let mut next = Vec::new();
    for element in elements {
        for &pos in &current {
            element_forward(element, data, pos, &mut next);
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

/// Positions where `elements` can start when they end at any of `ends`.
pub fn backward(elements: &[Element], data: &[u8], ends: Vec<usize>) -> Vec<usize> {
    let mut current = ends;
    let mut next = Vec::new();
    for element in elements.iter().rev() {
        for &pos in &current {
            element_backward(element, data, pos, &mut next);
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

fn normalize(v: &mut Vec<usize>) {
    v.sort_unstable();
    v.dedup();
}

/// Whether one byte satisfies a single-byte element.
#[inline]
fn byte_matches(element: &Element, b: u8) -> bool {
    match element {
        Element::Byte(x) => b == *x,
        Element::Masked { value, mask } => b & mask == *value,
        Element::Class(set) => set.contains(b),
        Element::Boundary(Boundary::NonAlnum) => !b.is_ascii_alphanumeric(),
        _ => false,
    }
}

pub(super) fn element_forward(element: &Element, data: &[u8], pos: usize, out: &mut Vec<usize>) {
    match element {
        Element::Skip { min, max } => {
            let (min, max) = (*min as usize, *max as usize);
            let hi = max.min(data.len().saturating_sub(pos));
            out.extend((min..=hi).map(|n| pos + n));
        }
        Element::Alt(alt) if !alt.negated => {
            for seq in &alt.alternatives {
                out.extend(forward(seq, data, vec![pos]));
            }
        }
        Element::Alt(alt) => {
            let len = alt.alternatives[0].len();
            if let Some(window) = data.get(pos..pos + len) {
                if !alt.alternatives.iter().any(|seq| seq_equals(seq, window)) {
                    out.push(pos + len);
                }
            }
        }
        Element::Boundary(Boundary::Word) => boundary_word(data, pos, true, out),
        Element::Boundary(Boundary::Line) => boundary_line(data, pos, true, out),
        Element::Boundary(Boundary::WideNonAlnum) => {
            if look_ahead(Boundary::WideNonAlnum, data, pos) {
                out.push(pos + 2)
            }
        }
        single => {
            if data.get(pos).is_some_and(|&b| byte_matches(single, b)) {
                out.push(pos + 1);
            }
        }
    }
}

pub(super) fn element_backward(element: &Element, data: &[u8], pos: usize, out: &mut Vec<usize>) {
    match element {
        Element::Skip { min, max } => {
            let (min, max) = (*min as usize, (*max as usize).min(pos));
            out.extend((min..=max).map(|n| pos - n));
        }
        Element::Alt(alt) if !alt.negated => {
            for seq in &alt.alternatives {
                out.extend(backward(seq, data, vec![pos]));
            }
        }
        Element::Alt(alt) => {
            let len = alt.alternatives[0].len();
            if let Some(window) = pos.checked_sub(len).map(|s| &data[s..pos]) {
                if !alt.alternatives.iter().any(|seq| seq_equals(seq, window)) {
                    out.push(pos - len);
                }
            }
        }
        Element::Boundary(Boundary::Word) => boundary_word(data, pos, false, out),
        Element::Boundary(Boundary::Line) => boundary_line(data, pos, false, out),
        Element::Boundary(Boundary::WideNonAlnum) => {
            if pos >= 2 && look_behind(Boundary::WideNonAlnum, data, pos) {
                out.push(pos - 2)
            }
        }
        single => {
            if pos > 0 && byte_matches(single, data[pos - 1]) {
                out.push(pos - 1);
            }
        }
    }
}

/// Whether a sequence of plain-byte elements equals `window`.
fn seq_equals(alt: &[Element], window: &[u8]) -> bool {
    alt.iter()
        .zip(window)
        .all(|(e, &b)| matches!(e, Element::Byte(x) if *x == b))
}

/// `(B)` in the middle of a signature: one of the bytes ClamAV treats as a word
/// boundary there (measured: `\n \r space " ' - . / < = > @ _`).
fn is_word_boundary_middle(b: u8) -> bool {
    is_word_boundary_before(b) || is_word_boundary_after(b)
}

/// `(B)` as a look-behind at the start of a signature: the byte before the match
/// (measured: `space - . / < @ _`).
pub fn is_word_boundary_before(b: u8) -> bool {
    matches!(b, b' ' | b'-' | b'.' | b'/' | b'<' | b'@' | b'_')
}

/// `(B)` as a look-ahead at the end of a signature: the byte after the match
/// (measured: `\n \r space " ' - / = > _`).
pub fn is_word_boundary_after(b: u8) -> bool {
    matches!(
        b,
        b'\n' | b'\r' | b' ' | b'"' | b'\'' | b'-' | b'/' | b'=' | b'>' | b'_'
    )
}

fn boundary_word(data: &[u8], pos: usize, forward: bool, out: &mut Vec<usize>) {
    if forward {
        if data.get(pos).is_some_and(|&b| is_word_boundary_middle(b)) {
            out.push(pos + 1);
        }
    } else if pos > 0 && is_word_boundary_middle(data[pos - 1]) {
        out.push(pos - 1);
    }
}

/// `(L)` in the middle of a signature: consumes `\n` or `\r\n`.
fn boundary_line(data: &[u8], pos: usize, forward: bool, out: &mut Vec<usize>) {
    if forward {
        match data.get(pos..).unwrap_or(&[]) {
            [b'\r', b'\n', ..] => out.push(pos + 2),
            [b'\n', ..] => out.push(pos + 1),
            _ => {}
        }
    } else {
        match &data[..pos] {
            [.., b'\r', b'\n'] => {
                out.push(pos - 2);
                out.push(pos - 1);
            }
            [.., b'\n'] => out.push(pos - 1),
            _ => {}
        }
    }
}

/// Whether a zero-width boundary at the start of a signature holds at `pos`.
pub fn look_behind(class: Boundary, data: &[u8], pos: usize) -> bool {
    if class == Boundary::WideNonAlnum {
        return !(pos >= 2 && is_wide_alnum(data[pos - 2], data[pos - 1]));
    }
    let Some(&b) = pos.checked_sub(1).and_then(|p| data.get(p)) else {
        return true;
    };
    match class {
        Boundary::Word => is_word_boundary_before(b),
        Boundary::NonAlnum => !b.is_ascii_alphanumeric(),
        Boundary::Line => b == b'\n',
        Boundary::WideNonAlnum => unreachable!("handled above"),
    }
}

/// Whether a zero-width boundary at the end of a signature holds at `pos`.
pub fn look_ahead(class: Boundary, data: &[u8], pos: usize) -> bool {
    if class == Boundary::WideNonAlnum {
        return !matches!(data.get(pos..pos + 2), Some(&[lo, hi]) if is_wide_alnum(lo, hi));
    }
    let Some(&b) = data.get(pos) else {
        return true;
    };
    match class {
        Boundary::Word => is_word_boundary_after(b),
        Boundary::NonAlnum => !b.is_ascii_alphanumeric(),
        Boundary::Line => b == b'\n' || (b == b'\r' && data.get(pos + 1) == Some(&b'\n')),
        Boundary::WideNonAlnum => unreachable!("handled above"),
    }
}

/// Whether the UTF-16LE unit `lo, hi` is an alphanumeric ASCII character.
fn is_wide_alnum(lo: u8, hi: u8) -> bool {
    hi == 0 && lo.is_ascii_alphanumeric()
}
