//! Pseudo-words for text files and signature names.

use crate::rng::Rng;

const ONSETS: [&str; 24] = [
    "b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z", "br",
    "st", "tr", "pl", "gr", "sh", "ch",
];
const VOWELS: [&str; 8] = ["a", "e", "i", "o", "u", "ea", "ou", "y"];
const CODAS: [&str; 8] = ["", "", "", "n", "r", "s", "t", "l"];

/// A pronounceable lowercase pseudo-word of 1–4 syllables.
pub fn pseudo_word(rng: &mut Rng) -> String {
    let syllables = 1 + rng.index(4);
    let mut w = String::new();
    for _ in 0..syllables {
        w.push_str(rng.pick::<&str>(&ONSETS));
        w.push_str(rng.pick::<&str>(&VOWELS));
        w.push_str(rng.pick::<&str>(&CODAS));
    }
    w
}

/// `word` with its first letter upper-cased.
pub fn capitalized(word: &str) -> String {
    let mut c = word.chars();
    match c.next() {
        Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

/// A fixed vocabulary with a Zipf-like sampler, for generating text files.
pub struct Vocabulary {
    words: Vec<String>,
}

impl Vocabulary {
    /// Builds a vocabulary of `n` pseudo-words.
    pub fn new(rng: &mut Rng, n: usize) -> Self {
        Vocabulary {
            words: (0..n).map(|_| pseudo_word(rng)).collect(),
        }
    }

    /// Samples a word, favouring the start of the list (frequent words).
    pub fn word(&self, rng: &mut Rng) -> &str {
        let u = rng.unit();
        let i = (u * u * u * self.words.len() as f64) as usize;
        &self.words[i.min(self.words.len() - 1)]
    }

    /// Appends lines of prose to `out` until it holds at least `len` bytes, then truncates
    /// it to exactly `len` bytes (ending with a newline when possible).
    pub fn fill_text(&self, rng: &mut Rng, out: &mut Vec<u8>, len: usize) {
        let start = out.len();
        while out.len() - start < len {
            let line_words = rng.range_usize(4, 16);
            for i in 0..line_words {
                if i > 0 {
                    out.push(b' ');
                }
                let w = self.word(rng);
                if i == 0 && rng.chance(0.5) {
                    out.extend_from_slice(capitalized(w).as_bytes());
                } else {
                    out.extend_from_slice(w.as_bytes());
                }
                if rng.chance(0.08) {
                    out.push(*rng.pick(b",;"));
                }
            }
            out.push(if rng.chance(0.7) { b'.' } else { b',' });
            out.push(b'\n');
            if rng.chance(0.1) {
                out.push(b'\n');
            }
        }
        out.truncate(start + len);
        if len > 0 {
            out[start + len - 1] = b'\n';
        }
    }
}
