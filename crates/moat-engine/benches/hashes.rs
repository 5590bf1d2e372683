//! Hash signatures: the lookup of a small file among 500,000 MD5 (`.hdb`) and 100,000
//! SHA-256 (`.hsb`) signatures, about the hash part of ClamAV's official databases.
//!
//! Files of a size no signature has are never hashed (`HashIndex::wants`, a binary search
//! on the size), so the cases that matter are:
//! - `lookup/*`: `HashIndex::lookup` alone, the digests already computed (one
//!   `FileDigests` reused across iterations caches them): the cost of the sorted-table
//!   search, for a digest that is there (`hit`) and one that is not (`miss`);
//! - `lookup_with_digests/*`: the same with the digests computed each time (MD5, and
//!   SHA-256 after an MD5 miss), which is what a file of a wanted size pays;
//! - `scan_bytes/*`: the whole `Engine::scan_bytes` (body matcher included, over an
//!   engine with a few body signatures) of a 4 KiB file whose size no signature has
//!   (`size_none`: nothing hashed), whose size some signatures have but whose digests
//!   are not among them (`size_match_miss`), and one that is a signature (`size_match_hit`).
//!
//! The signatures are generated deterministically, written to a temporary directory and
//! loaded with `Database::load`, once, outside the measured loop (the load time is
//! printed).
//!
//! Run: `cargo bench -p moat-engine --bench hashes`.

use std::fmt::Write as _;
use std::fs;
use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use md5::{Digest as _, Md5};
use moat_engine::hashes::{FileDigests, HashIndex};
use moat_engine::{Engine, Verdict};
use moat_sigs::Database;

const MD5_SIGNATURES: usize = 500_000;
const SHA256_SIGNATURES: usize = 100_000;
/// The size of the "wanted" 4 KiB file: a few signatures have it.
const WANTED: usize = 4096;
/// The size of the 4 KiB file no signature has.
const UNWANTED: usize = 4100;

/// A deterministic xorshift64* generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    /// A file size as hash signatures have them (100 B to 16 MiB, log-uniform), never near
    /// 4 KiB so that the two probe files control which sizes match.
    fn size(&mut self) -> u64 {
        loop {
            let bits = 7 + self.next() % 18;
            let size = (1u64 << bits) + self.next() % (1u64 << bits);
            if !(4000..=4200).contains(&size) {
                return size;
            }
        }
    }
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
}

/// Writes `bench.hdb`, `bench.hsb` and a small `bench.ndb` into `dir`. The MD5 of `hit` is
/// one of the signatures of size [`WANTED`].
fn write_database(dir: &std::path::Path, rng: &mut Rng, hit: &[u8]) {
    let line = |out: &mut String, digest: &[u8], size: u64, name: &str| {
        push_hex(out, digest);
        let _ = writeln!(out, ":{size}:{name}");
    };
    let mut hdb = String::with_capacity(MD5_SIGNATURES * 60);
    for i in 0..MD5_SIGNATURES {
        // 1 in 25,000 has the wanted size: 20 MD5 signatures of 4096 bytes.
        let size = if i % 25_000 == 0 {
            WANTED as u64
        } else {
            rng.size()
        };
        line(&mut hdb, &rng.bytes(16), size, &format!("Bench.Md5-{i}"));
    }
    line(&mut hdb, &Md5::digest(hit), WANTED as u64, "Bench.Md5.Hit");
    let mut hsb = String::with_capacity(SHA256_SIGNATURES * 100);
    for i in 0..SHA256_SIGNATURES {
        let size = if i % 20_000 == 0 {
            WANTED as u64
        } else {
            rng.size()
        };
        line(&mut hsb, &rng.bytes(32), size, &format!("Bench.Sha256-{i}"));
    }
    fs::write(dir.join("bench.hdb"), hdb).unwrap();
    fs::write(dir.join("bench.hsb"), hsb).unwrap();
    fs::write(
        dir.join("bench.ndb"),
        "Bench.Body-1:0:*:deadbeefcafe0102030405\nBench.Body-2:0:*:8b4508e8{-20}c3c3c3\n",
    )
    .unwrap();
}

fn hashes(c: &mut Criterion) {
    let mut rng = Rng(0x6861_7368_6573_2121);
    let hit = rng.bytes(WANTED);
    let miss = rng.bytes(WANTED);
    let unwanted = rng.bytes(UNWANTED);

    let dir = tempfile::tempdir().unwrap();
    write_database(dir.path(), &mut rng, &hit);
    let started = Instant::now();
    let db = Database::load(&[dir.path()]).expect("the database loads");
    let loaded = started.elapsed();
    let index = HashIndex::new(db.hashes.clone());
    let engine = Engine::new(db);
    eprintln!(
        "hashes: {} signatures loaded in {:.0} ms, compiled in {:.0} ms more (twice: index and engine)",
        engine.signature_count(),
        loaded.as_secs_f64() * 1e3,
        (started.elapsed() - loaded).as_secs_f64() * 1e3
    );
    assert!(index.wants(WANTED as u64) && !index.wants(UNWANTED as u64));
    assert_eq!(
        engine.scan_bytes(&hit),
        Verdict::Infected("Bench.Md5.Hit.UNOFFICIAL")
    );
    assert_eq!(engine.scan_bytes(&miss), Verdict::Clean);
    assert_eq!(engine.scan_bytes(&unwanted), Verdict::Clean);

    let mut group = c.benchmark_group("lookup");
    for (name, data, found) in [("hit", &hit, true), ("miss", &miss, false)] {
        let mut digests = FileDigests::of(data);
        assert_eq!(index.lookup(&mut digests).is_some(), found);
        group.bench_function(name, |b| {
            b.iter(|| index.lookup(black_box(&mut digests)).is_some())
        });
    }
    group.finish();

    let mut group = c.benchmark_group("lookup_with_digests");
    group.throughput(Throughput::Bytes(WANTED as u64));
    for (name, data) in [("hit", &hit), ("miss", &miss)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                index
                    .lookup(&mut FileDigests::of(black_box(data)))
                    .is_some()
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("scan_bytes");
    for (name, data) in [
        ("size_none", &unwanted),
        ("size_match_miss", &miss),
        ("size_match_hit", &hit),
    ] {
        group.throughput(Throughput::Bytes(data.len() as u64));
        group.bench_function(name, |b| b.iter(|| engine.scan_bytes(black_box(data))));
    }
    group.finish();
}

criterion_group!(benches, hashes);
criterion_main!(benches);
