//! The logical-signature database: every generated `.ndb` signature rewritten as an
//! `.ldb` logical signature, over the same corpus, plus decoys that never match.
//!
//! Each body signature becomes subsignature 0 of a logical signature of one of these
//! shapes, so the expected detections stay exactly the planted `.ndb` ones while the
//! engine has to evaluate real expressions:
//! - `0` (a third of them);
//! - `0|1`, where subsignature 1 is a decoy;
//! - `(0|1)&2=0`: either subsignature, and the decoy 2 absent;
//! - `0>0` with a `FileSize:` range that every corpus file satisfies.
//!
//! Decoy logical signatures (one per ten) need two or three decoy subsignatures with
//! `&`, `|` and counts: they put atoms into the prefilter and expressions into the
//! evaluator without ever matching. Decoys are random 12-byte strings: the chance of
//! one occurring in the 300 MB corpus is negligible.

use super::Dataset;
use crate::rng::Rng;
use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

/// Bump when the generated database changes, so cached copies are rebuilt.
const LDBDB_VERSION: u32 = 1;

/// A random static hex string that no corpus file contains (with overwhelming odds).
fn decoy(rng: &mut Rng) -> String {
    let mut bytes = [0u8; 12];
    rng.fill(&mut bytes);
    hex::encode(bytes)
}

/// The logical expression and subsignatures for body signature `sub0`.
fn shape(rng: &mut Rng, sub0: &str) -> (String, Vec<String>) {
    match rng.below(4) {
        0 => ("0".into(), vec![sub0.into()]),
        1 => ("0|1".into(), vec![sub0.into(), decoy(rng)]),
        2 => (
            "(0|1)&2=0".into(),
            vec![sub0.into(), decoy(rng), decoy(rng)],
        ),
        _ => ("0>0".into(), vec![sub0.into()]),
    }
}

/// Turns one `.ndb` line (`NAME:TARGET:OFFSET:HEX[:MINFL[:MAXFL]]`) into an `.ldb` line.
fn convert(rng: &mut Rng, ndb: &str) -> Option<String> {
    let mut fields = ndb.split(':');
    let (name, target, offset, hex) = (
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
    );
    let sub0 = if offset == "*" {
        hex.to_string()
    } else {
        format!("{offset}:{hex}")
    };
    let (expr, subs) = shape(rng, &sub0);
    let size = if expr == "0>0" {
        ",FileSize:0-4294967295"
    } else {
        ""
    };
    Some(format!(
        "{name};Engine:51-255,Target:{target}{size};{expr};{}",
        subs.join(";")
    ))
}

/// A logical signature that never matches.
fn decoy_sig(rng: &mut Rng, id: u64) -> String {
    let (expr, n) = match rng.below(3) {
        0 => ("0&1", 2),
        1 => ("(0|1)&2", 3),
        _ => ("0>1&1", 2),
    };
    let subs: Vec<String> = (0..n).map(|_| decoy(rng)).collect();
    format!(
        "Bench.Decoy.Logical-{id};Engine:51-255,Target:0;{expr};{}",
        subs.join(";")
    )
}

/// Returns `ds` turned into the logical-signature dataset: same corpus, `db_dir` holding
/// `bench.ldb` (generated from `ds`'s `bench.ndb` if needed), the expected detections
/// those of the planted body signatures.
pub fn ensure(ds: &Dataset) -> io::Result<Dataset> {
    let root: PathBuf = ds.root.join("ldb");
    let db_dir = root.join("db");
    let db = db_dir.join("bench.ldb");
    let manifest = root.join("manifest.txt");
    let ndb_sigs = ds.manifest_u64("ndb_sigs");
    let decoys = ndb_sigs / 10;
    let want = format!("version={LDBDB_VERSION}\nndb_sigs={ndb_sigs}\ndecoys={decoys}\n");
    let cached = fs::read_to_string(&manifest).is_ok_and(|m| m == want) && db.is_file();
    if !cached {
        let t = Instant::now();
        eprintln!(
            "moat-bench: generating the logical-signature database in {}...",
            root.display()
        );
        if root.exists() {
            fs::remove_dir_all(&root)?;
        }
        fs::create_dir_all(&db_dir)?;
        let ndb = fs::read_to_string(ds.db_dir.join("bench.ndb"))?;
        let mut rng = Rng::new(super::SEED).fork("logical database");
        let mut w = BufWriter::new(fs::File::create(&db)?);
        for (i, line) in ndb.lines().enumerate() {
            let ldb = convert(&mut rng, line).ok_or_else(|| {
                io::Error::other(format!("bench.ndb line {}: not NAME:T:O:HEX", i + 1))
            })?;
            writeln!(w, "{ldb}")?;
            if (i as u64) < decoys {
                writeln!(w, "{}", decoy_sig(&mut rng, i as u64))?;
            }
        }
        w.flush()?;
        fs::write(&manifest, &want)?;
        eprintln!(
            "moat-bench:   logical-signature database written in {:.1}s",
            t.elapsed().as_secs_f64()
        );
    }
    let body_names: HashSet<String> = fs::read_to_string(ds.db_dir.join("bench.ndb"))?
        .lines()
        .filter_map(|l| l.split(':').next())
        .map(str::to_string)
        .collect();
    let expected: Vec<_> = ds
        .expected
        .iter()
        .filter(|e| body_names.contains(&e.name))
        .cloned()
        .collect();
    let mut m: BTreeMap<String, String> = ds.manifest.clone();
    m.insert("md5_sigs".into(), "0".into());
    m.insert("sha256_sigs".into(), "0".into());
    m.insert("ndb_sigs".into(), "0".into());
    m.insert("ldb_sigs".into(), (ndb_sigs + decoys).to_string());
    m.insert("planted_hash".into(), "0".into());
    m.insert("planted_body".into(), expected.len().to_string());
    Ok(Dataset {
        root: ds.root.clone(),
        db_dir,
        corpus_dir: ds.corpus_dir.clone(),
        empty_file: ds.empty_file.clone(),
        expected,
        manifest: m,
        generated: !cached,
        generation_secs: 0.0,
    })
}
