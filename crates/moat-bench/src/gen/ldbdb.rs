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
//!
//! Sizes: [`LOGICAL_SIGS`] signatures (every planted body signature, then the first
//! others) over the first [`CORPUS_DIRS`] top-level corpus directories (hard links, no
//! copy). clamscan pays a cost per file proportional to the number of logical
//! signatures (measured: 0.06 s per file with 33,000 of them, 3 MB/s on a 17 MB file),
//! so the whole corpus with all 33,000 would take it twelve minutes per run.

use super::Dataset;
use crate::rng::Rng;
use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Bump when the generated database changes, so cached copies are rebuilt.
const LDBDB_VERSION: u32 = 2;
/// Logical signatures converted from body signatures (decoys come on top: a tenth).
const LOGICAL_SIGS: usize = 10_000;
/// The corpus subset: top-level directories `d0`.. of the corpus.
const CORPUS_DIRS: usize = 2;

/// Hard-links every file below `from` into `to` (same tree); returns (files, bytes).
fn link_tree(from: &Path, to: &Path) -> io::Result<(u64, u64)> {
    fs::create_dir_all(to)?;
    let (mut files, mut bytes) = (0, 0);
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            let (f, b) = link_tree(&entry.path(), &target)?;
            files += f;
            bytes += b;
        } else {
            fs::hard_link(entry.path(), &target)?;
            files += 1;
            bytes += entry.metadata()?.len();
        }
    }
    Ok((files, bytes))
}

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
    let corpus_dir = root.join("corpus");
    let db = db_dir.join("bench.ldb");
    let manifest = root.join("manifest.txt");
    let planted: HashSet<&str> = ds.expected.iter().map(|e| e.name.as_str()).collect();
    let ndb = fs::read_to_string(ds.db_dir.join("bench.ndb"))?;
    let name_of = |line: &str| line.split(':').next().unwrap_or("").to_string();
    // Every planted body signature, then the first others, up to LOGICAL_SIGS.
    let mut chosen: Vec<&str> = ndb
        .lines()
        .filter(|l| planted.contains(name_of(l).as_str()))
        .collect();
    let others = ndb
        .lines()
        .filter(|l| !planted.contains(name_of(l).as_str()));
    let room = LOGICAL_SIGS.saturating_sub(chosen.len());
    chosen.extend(others.take(room));
    let decoys = chosen.len() / 10;
    let want_head = format!(
        "version={LDBDB_VERSION}\nlogical={}\ndecoys={decoys}\ndirs={CORPUS_DIRS}\n",
        chosen.len()
    );
    let cached = fs::read_to_string(&manifest).is_ok_and(|m| m.starts_with(&want_head))
        && db.is_file()
        && corpus_dir.is_dir();
    if !cached {
        let t = super::regenerate("generating the logical-signature database", &root, &db_dir)?;
        let mut rng = Rng::new(super::SEED).fork("logical database");
        let mut w = BufWriter::new(fs::File::create(&db)?);
        for (i, line) in chosen.iter().enumerate() {
            let ldb = convert(&mut rng, line)
                .ok_or_else(|| io::Error::other(format!("bench.ndb: not NAME:T:O:HEX: {line}")))?;
            writeln!(w, "{ldb}")?;
            if i < decoys {
                writeln!(w, "{}", decoy_sig(&mut rng, i as u64))?;
            }
        }
        w.flush()?;
        let (mut files, mut bytes) = (0, 0);
        for d in 0..CORPUS_DIRS {
            let (f, b) = link_tree(
                &ds.corpus_dir.join(format!("d{d}")),
                &corpus_dir.join(format!("d{d}")),
            )?;
            files += f;
            bytes += b;
        }
        fs::write(
            &manifest,
            format!("{want_head}corpus_files={files}\ncorpus_bytes={bytes}\n"),
        )?;
        eprintln!(
            "moat-bench:   logical-signature database written in {:.1}s",
            t.elapsed().as_secs_f64()
        );
    }
    let body_names: HashSet<String> = chosen.iter().map(|l| name_of(l)).collect();
    let in_subset = |rel: &str| (0..CORPUS_DIRS).any(|d| rel.starts_with(&format!("d{d}/")));
    let expected: Vec<_> = ds
        .expected
        .iter()
        .filter(|e| body_names.contains(&e.name) && in_subset(&e.rel))
        .cloned()
        .collect();
    let facts = super::read_manifest(&manifest)
        .ok_or_else(|| io::Error::other(format!("{}: unreadable", manifest.display())))?;
    let mut m: BTreeMap<String, String> = ds.manifest.clone();
    m.insert("corpus_files".into(), facts["corpus_files"].clone());
    m.insert("corpus_bytes".into(), facts["corpus_bytes"].clone());
    m.insert("md5_sigs".into(), "0".into());
    m.insert("sha256_sigs".into(), "0".into());
    m.insert("ndb_sigs".into(), "0".into());
    m.insert("ldb_sigs".into(), (chosen.len() + decoys).to_string());
    m.insert("planted_hash".into(), "0".into());
    m.insert("planted_body".into(), expected.len().to_string());
    Ok(Dataset {
        root: ds.root.clone(),
        db_dir,
        corpus_dir,
        empty_file: ds.empty_file.clone(),
        expected,
        manifest: m,
        generated: !cached,
        generation_secs: 0.0,
    })
}
