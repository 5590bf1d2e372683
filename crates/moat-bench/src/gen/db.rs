//! Writing the signature database: `bench.hdb` (MD5), `bench.hsb` (SHA-256), `bench.ndb`.

use super::corpus::{Corpus, Expected};
use super::ndb::{malware_name, NdbSig};
use super::Profile;
use crate::rng::Rng;
use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// ClamAV requires a minimum FLEVEL of at least 73 on wildcard-size hash signatures.
const STAR_MIN_FLEVEL: u32 = 73;

/// Counts of what was written, for the manifest and the report.
#[derive(Clone, Debug, Default)]
pub struct DbStats {
    /// Lines in `bench.hdb`.
    pub md5: usize,
    /// Lines in `bench.hsb`.
    pub sha256: usize,
    /// Lines in `bench.ndb`.
    pub ndb: usize,
    /// Hash lines with `*` as size.
    pub star_size: usize,
    /// Hash lines whose size is that of some corpus file but whose digest matches nothing.
    pub size_decoys: usize,
}

/// Which digest a hash file holds.
#[derive(Clone, Copy)]
enum Algo {
    Md5,
    Sha256,
}

impl Algo {
    fn bytes(self) -> usize {
        match self {
            Algo::Md5 => 16,
            Algo::Sha256 => 32,
        }
    }
}

/// Writes all three database files into `dir` and returns the expected hash detections.
pub fn write(
    rng: &mut Rng,
    profile: &Profile,
    corpus: &Corpus,
    sigs: &[NdbSig],
    dir: &Path,
) -> io::Result<(DbStats, Vec<Expected>)> {
    let corpus_sizes: HashSet<u64> = corpus.files.iter().map(|f| f.size).collect();
    let mut stats = DbStats::default();
    let mut expected = Vec::new();

    // The published digests of corpus files, in the order the profile assigns them.
    let mut hashed = corpus.hashed.iter();
    let mut take = |n: usize| -> Vec<_> { hashed.by_ref().take(n).cloned().collect() };
    let md5_exact = take(profile.exact_md5);
    let md5_exact_star = take(profile.exact_md5_star);
    let sha_exact = take(profile.exact_sha256);
    let sha_exact_star = take(profile.exact_sha256_star);

    let jobs = [
        (
            "bench.hdb",
            Algo::Md5,
            profile.md5_sigs,
            md5_exact,
            md5_exact_star,
            profile.md5_star_decoys,
            2_000_000u64,
        ),
        (
            "bench.hsb",
            Algo::Sha256,
            profile.sha256_sigs,
            sha_exact,
            sha_exact_star,
            profile.sha256_star_decoys,
            3_000_000u64,
        ),
    ];
    for (file, algo, total, exact, exact_star, star_decoys, id_base) in jobs {
        let mut r = rng.fork(file);
        let mut id = id_base;
        let mut next_name = |r: &mut Rng| {
            id += 1;
            malware_name(r, id)
        };
        // Special lines, scattered at random positions among the random ones.
        let mut special: Vec<String> = Vec::new();
        for (h, star) in exact
            .iter()
            .map(|h| (h, false))
            .chain(exact_star.iter().map(|h| (h, true)))
        {
            let name = next_name(&mut r);
            let digest = match algo {
                Algo::Md5 => hex::encode(h.md5),
                Algo::Sha256 => hex::encode(h.sha256),
            };
            special.push(if star {
                format!("{digest}:*:{name}:{STAR_MIN_FLEVEL}")
            } else {
                format!("{digest}:{}:{name}", h.size)
            });
            expected.push(Expected {
                rel: h.rel.clone(),
                name,
            });
        }
        let decoys = match algo {
            Algo::Md5 => profile.md5_size_decoys,
            Algo::Sha256 => profile.sha256_size_decoys,
        };
        for _ in 0..decoys {
            let f = r.pick(&corpus.files);
            let name = next_name(&mut r);
            special.push(format!("{}:{}:{name}", random_hex(&mut r, algo), f.size));
        }
        for _ in 0..star_decoys {
            let name = next_name(&mut r);
            special.push(format!(
                "{}:*:{name}:{STAR_MIN_FLEVEL}",
                random_hex(&mut r, algo)
            ));
        }
        stats.size_decoys += decoys;
        stats.star_size += exact_star.len() + star_decoys;

        let mut at: BTreeMap<usize, String> = BTreeMap::new();
        for line in special {
            loop {
                let i = r.index(total);
                if let std::collections::btree_map::Entry::Vacant(e) = at.entry(i) {
                    e.insert(line);
                    break;
                }
            }
        }
        let mut w = BufWriter::with_capacity(1 << 20, File::create(dir.join(file))?);
        for i in 0..total {
            match at.remove(&i) {
                Some(line) => writeln!(w, "{line}")?,
                None => {
                    // Random size that no corpus file has: only the special lines above may
                    // make a scanner hash a file.
                    let size = loop {
                        let s = r.log_uniform(64, 50 * 1024 * 1024);
                        if !corpus_sizes.contains(&s) {
                            break s;
                        }
                    };
                    let digest = random_hex(&mut r, algo);
                    let name = next_name(&mut r);
                    writeln!(w, "{digest}:{size}:{name}")?;
                }
            }
        }
        w.flush()?;
        match algo {
            Algo::Md5 => stats.md5 = total,
            Algo::Sha256 => stats.sha256 = total,
        }
    }

    let mut w = BufWriter::new(File::create(dir.join("bench.ndb"))?);
    for sig in sigs {
        writeln!(w, "{}", sig.line())?;
    }
    w.flush()?;
    stats.ndb = sigs.len();
    Ok((stats, expected))
}

fn random_hex(rng: &mut Rng, algo: Algo) -> String {
    let mut b = [0u8; 32];
    let b = &mut b[..algo.bytes()];
    rng.fill(b);
    hex::encode(b)
}
