//! The synthetic corpus: a tree of binary and text files, a few of which carry the body of
//! an `.ndb` signature and a few of which are targeted by exact hash signatures.

use super::ndb::{NdbOffset, NdbSig, COMMON_BYTES};
use super::words::Vocabulary;
use super::Profile;
use crate::rng::Rng;
use md5::{Digest as _, Md5};
use sha2::Sha256;
use std::collections::HashSet;
use std::fs;
use std::io::{self, Write};
use std::path::Path;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

/// Header written at the start of every binary file, so no file accidentally starts with
/// the magic of a format ClamAV would try to unpack (ZIP, gzip, PE...).
const BINARY_HEADER: &[u8] = b"\x7fMBNCH\x00\x01";

/// What a corpus file contains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Uniformly random bytes (like compressed or encrypted data).
    RandomBinary,
    /// Executable-like bytes: zero runs, opcode-heavy stretches, tables, string pools.
    StructuredBinary,
    /// ASCII prose made of pseudo-words.
    Text,
}

/// One planned corpus file.
#[derive(Clone, Debug)]
pub struct CorpusFile {
    /// Path relative to the corpus directory, `/`-separated.
    pub rel: String,
    /// Size in bytes.
    pub size: u64,
    /// Content type.
    pub kind: Kind,
}

/// A corpus file whose digests are published for exact hash signatures.
#[derive(Clone, Debug)]
pub struct HashedFile {
    /// Path relative to the corpus directory.
    pub rel: String,
    /// Size in bytes.
    pub size: u64,
    /// MD5 of the content.
    pub md5: [u8; 16],
    /// SHA-256 of the content.
    pub sha256: [u8; 32],
}

/// A detection the generator planted: `rel` must be reported with `name`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Expected {
    /// Path relative to the corpus directory.
    pub rel: String,
    /// Detection name without the `.UNOFFICIAL` suffix.
    pub name: String,
}

/// The result of writing the corpus.
pub struct Corpus {
    /// Every file, in generation order.
    pub files: Vec<CorpusFile>,
    /// Files planted with an `.ndb` signature body.
    pub planted: Vec<Expected>,
    /// Clean files whose digests the database generator may publish.
    pub hashed: Vec<HashedFile>,
}

impl Corpus {
    /// Total size of all files in bytes.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// A signature body planted at a fixed position of a file.
struct Plant {
    pos: usize,
    body: Vec<u8>,
}

/// Plans the file list: sizes, kinds and nested paths.
fn plan_files(rng: &mut Rng, profile: &Profile) -> Vec<CorpusFile> {
    let mut specs: Vec<(u64, Kind)> = Vec::new();
    let big_budget = profile.corpus_bytes * 45 / 100;
    let mut big_total = 0;
    while big_budget.saturating_sub(big_total) >= MIB {
        let size = rng.range(MIB, (20 * MIB).min(big_budget - big_total));
        let kind = if rng.chance(0.15) {
            Kind::Text
        } else if rng.chance(0.5) {
            Kind::RandomBinary
        } else {
            Kind::StructuredBinary
        };
        specs.push((size, kind));
        big_total += size;
    }
    let mut total = big_total;
    while total < profile.corpus_bytes {
        let size = rng.log_uniform(KIB, 64 * KIB);
        let kind = match rng.below(10) {
            0..=4 => Kind::Text,
            5..=6 => Kind::RandomBinary,
            _ => Kind::StructuredBinary,
        };
        specs.push((size, kind));
        total += size;
    }
    rng.shuffle(&mut specs);
    specs
        .into_iter()
        .enumerate()
        .map(|(i, (size, kind))| {
            let depth = 1 + rng.index(3);
            let mut rel = String::new();
            for _ in 0..depth {
                rel.push_str(&format!("d{}/", rng.below(8)));
            }
            let ext = match kind {
                Kind::Text => *rng.pick(&["txt", "log", "md"]),
                _ => *rng.pick(&["bin", "dat", "so"]),
            };
            rel.push_str(&format!("f{i:05}.{ext}"));
            CorpusFile { rel, size, kind }
        })
        .collect()
}

/// Where a planted body of `len` bytes may start in a file of `size` bytes, if anywhere.
fn placement(rng: &mut Rng, offset: NdbOffset, len: usize, size: usize) -> Option<usize> {
    let min_start = BINARY_HEADER.len();
    let pos = match offset {
        NdbOffset::Any => {
            if size < min_start + len {
                return None;
            }
            rng.range_usize(min_start, size - len)
        }
        NdbOffset::Abs(n) => n,
        NdbOffset::AbsShift(n, s) => n + rng.range_usize(0, s),
        NdbOffset::FromEof(n) => size.checked_sub(n)?,
    };
    (pos + len <= size).then_some(pos)
}

/// Chooses which files get a signature body and which signature; returns
/// `(file index, signature index, plant)` triples.
fn choose_plants(
    rng: &mut Rng,
    profile: &Profile,
    files: &[CorpusFile],
    sigs: &[NdbSig],
) -> Vec<(usize, usize, Plant)> {
    let text_sigs: Vec<usize> = (0..sigs.len()).filter(|&i| sigs[i].target == 7).collect();
    let bin_sigs: Vec<usize> = (0..sigs.len()).filter(|&i| sigs[i].target == 0).collect();
    let big: Vec<usize> = (0..files.len())
        .filter(|&i| files[i].size >= MIB && files[i].kind != Kind::Text)
        .collect();
    let mut used_files = HashSet::new();
    let mut used_sigs = HashSet::new();
    let mut out = Vec::new();
    let mut attempts = 0;
    while out.len() < profile.planted && attempts < 100_000 {
        attempts += 1;
        // The first few go into large binary files so big-file scanning is exercised too.
        let fi = if out.len() < profile.planted_big && !big.is_empty() {
            *rng.pick(&big)
        } else {
            rng.index(files.len())
        };
        if used_files.contains(&fi) {
            continue;
        }
        let f = &files[fi];
        let pool = if f.kind == Kind::Text {
            &text_sigs
        } else {
            &bin_sigs
        };
        if pool.is_empty() {
            continue;
        }
        let si = *rng.pick(pool);
        if used_sigs.contains(&si) {
            continue;
        }
        let sig = &sigs[si];
        let body = sig.instantiate(rng);
        let Some(pos) = placement(rng, sig.offset, body.len(), f.size as usize) else {
            continue;
        };
        used_files.insert(fi);
        used_sigs.insert(si);
        out.push((fi, si, Plant { pos, body }));
    }
    out
}

/// Fills `buf` (already sized) with executable-like content.
fn structured(rng: &mut Rng, buf: &mut [u8], vocab: &Vocabulary) {
    let len = buf.len();
    let mut pos = 0;
    while pos < len {
        let kind = rng.below(10);
        let n = match kind {
            0 | 1 => rng.range_usize(16, 512),
            2..=5 => rng.range_usize(64, 2048),
            6 | 7 => rng.range_usize(64, 1024),
            8 => rng.range_usize(32, 512),
            _ => rng.range_usize(64, 4096),
        }
        .min(len - pos);
        let chunk = &mut buf[pos..pos + n];
        match kind {
            0 | 1 => chunk.fill(0),
            2..=5 => {
                for b in chunk.iter_mut() {
                    let r = rng.next_u64();
                    *b = if r & 0xFF < 154 {
                        COMMON_BYTES[((r >> 8) % COMMON_BYTES.len() as u64) as usize]
                    } else {
                        (r >> 16) as u8
                    };
                }
            }
            6 | 7 => {
                let mut v = rng.next_u64() as u32;
                let step = rng.range(1, 64) as u32;
                for c in chunk.chunks_mut(4) {
                    let bytes = v.to_le_bytes();
                    c.copy_from_slice(&bytes[..c.len()]);
                    v = v.wrapping_add(step);
                }
            }
            8 => {
                let mut s = Vec::with_capacity(n);
                while s.len() < n {
                    s.extend_from_slice(vocab.word(rng).as_bytes());
                    s.push(0);
                }
                chunk.copy_from_slice(&s[..n]);
            }
            _ => rng.fill(chunk),
        }
        pos += n;
    }
}

/// Produces the content of one file.
fn content(rng: &mut Rng, f: &CorpusFile, vocab: &Vocabulary) -> Vec<u8> {
    let size = f.size as usize;
    match f.kind {
        Kind::Text => {
            let mut v = Vec::with_capacity(size);
            vocab.fill_text(rng, &mut v, size);
            v
        }
        Kind::RandomBinary | Kind::StructuredBinary => {
            let mut v = vec![0u8; size];
            if f.kind == Kind::RandomBinary {
                rng.fill(&mut v);
            } else {
                structured(rng, &mut v, vocab);
            }
            let h = BINARY_HEADER.len().min(size);
            v[..h].copy_from_slice(&BINARY_HEADER[..h]);
            v
        }
    }
}

/// Plans and writes the corpus under `dir`, planting bodies of some of `sigs`.
pub fn generate(
    rng: &mut Rng,
    profile: &Profile,
    sigs: &[NdbSig],
    dir: &Path,
) -> io::Result<Corpus> {
    let vocab = Vocabulary::new(&mut rng.fork("vocabulary"), 3000);
    let files = plan_files(&mut rng.fork("plan"), profile);
    let plants = choose_plants(&mut rng.fork("plants"), profile, &files, sigs);

    // Clean files whose digests will be published as exact hash signatures.
    let mut hash_rng = rng.fork("hashed");
    let mut hashed_idx: Vec<usize> = Vec::new();
    let planted_files: HashSet<usize> = plants.iter().map(|(fi, _, _)| *fi).collect();
    while hashed_idx.len() < profile.exact_hash_files() {
        let fi = hash_rng.index(files.len());
        if !planted_files.contains(&fi) && !hashed_idx.contains(&fi) {
            hashed_idx.push(fi);
        }
    }

    let content_seed = rng.next_u64();
    let mut hashed = Vec::new();
    let mut planted = Vec::new();
    for (fi, f) in files.iter().enumerate() {
        // One stream per file: the content of a file depends only on the seed and its index.
        let mut frng = Rng::new(content_seed ^ (fi as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut data = content(&mut frng, f, &vocab);
        if let Some((_, si, plant)) = plants.iter().find(|(i, _, _)| *i == fi) {
            data[plant.pos..plant.pos + plant.body.len()].copy_from_slice(&plant.body);
            planted.push(Expected {
                rel: f.rel.clone(),
                name: sigs[*si].name.clone(),
            });
        }
        if hashed_idx.contains(&fi) {
            hashed.push(HashedFile {
                rel: f.rel.clone(),
                size: f.size,
                md5: Md5::digest(&data).into(),
                sha256: Sha256::digest(&data).into(),
            });
        }
        let path = dir.join(&f.rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::File::create(&path)?.write_all(&data)?;
    }
    // Keep the order of `hashed` aligned with `hashed_idx` (the assignment order).
    hashed.sort_by_key(|h| {
        hashed_idx
            .iter()
            .position(|&i| files[i].rel == h.rel)
            .unwrap_or(usize::MAX)
    });
    planted.sort();
    Ok(Corpus {
        files,
        planted,
        hashed,
    })
}
