//! The body matcher: `Engine::scan_bytes` throughput over a synthetic database of 30,000
//! `.ndb` body signatures, the size of a real daily database's body part.
//!
//! What a change to the hot path (the prefilter in `body/prefilter.rs`, the verifiers, the
//! match ranking, the normalized-text pass) should be judged on:
//! - `text_1MiB`: clean ASCII text (words and punctuation). Text also gets the normalized
//!   pass (lowercased copy, matched again), as clamscan does;
//! - `binary_1MiB`: clean x86-like binary (the bytes real signatures are full of, so the
//!   prefilter's bitmap sees many candidate windows);
//! - `binary_4KiB`: the on-access common case, a small file, where per-scan set-up counts;
//! - `infected_4KiB` / `infected_1MiB`: the same binaries with one signature planted in the
//!   middle (the scan still has to rank it against any other match).
//!
//! The database is generated deterministically here (a fixed xorshift seed): 95% static
//! hex of 10–40 bytes, 5% with `??`, nibble wildcards, `{n-m}` gaps or `*` splits, a few
//! anchored at absolute or EOF offsets. Compiled once, outside the measured loop.
//!
//! Run: `cargo bench -p moat-engine --bench matcher`.

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use moat_engine::{Engine, Verdict};
use moat_sigs::Database;

/// Body signatures in the synthetic database.
const SIGNATURES: usize = 30_000;

/// A deterministic xorshift64* generator: same database and data on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below((hi - lo + 1) as u64) as usize
    }
}

/// Bytes that dominate x86 code and PE/ELF structures (as in moat-bench's generator).
const COMMON: [u8; 24] = [
    0x00, 0xFF, 0x8B, 0x89, 0xE8, 0x48, 0x83, 0xC7, 0x45, 0x0F, 0x85, 0x84, 0x74, 0x75, 0xEB, 0x50,
    0x51, 0x52, 0x53, 0x55, 0x5D, 0xC3, 0x24, 0x44,
];

/// A byte as binaries have them: half the time a common one, else any.
fn binary_byte(rng: &mut Rng) -> u8 {
    if rng.below(2) == 0 {
        COMMON[rng.below(COMMON.len() as u64) as usize]
    } else {
        rng.next() as u8
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn static_run(rng: &mut Rng, lo: usize, hi: usize) -> Vec<u8> {
    (0..rng.range(lo, hi)).map(|_| binary_byte(rng)).collect()
}

/// The `.ndb` text of the database, and the static bytes of signature 0 (planted in the
/// infected buffers).
fn database(rng: &mut Rng) -> (String, Vec<u8>) {
    let mut text = String::with_capacity(SIGNATURES * 80);
    let mut planted = Vec::new();
    for i in 0..SIGNATURES {
        let first = static_run(rng, 10, 40);
        let body = match i % 20 {
            // 1 in 20 signatures has some ClamAV hex construct between static runs.
            7 => {
                let second = static_run(rng, 4, 16);
                let glue = match rng.below(5) {
                    0 => "??".to_owned(),
                    1 => format!("{:x}?", rng.below(16)),
                    2 => format!("{{{}-{}}}", rng.range(0, 8), rng.range(9, 64)),
                    3 => "*".to_owned(),
                    _ => format!("{{{}}}", rng.range(1, 32)),
                };
                format!("{}{glue}{}", hex(&first), hex(&second))
            }
            _ => hex(&first),
        };
        let offset = match i % 100 {
            13 => format!("{}", rng.range(0, 512)),
            47 => format!("EOF-{}", rng.range(20, 400)),
            _ => "*".to_owned(),
        };
        if i == 0 {
            planted = first.clone();
        }
        text.push_str(&format!("Bench.Sig-{i}:0:{offset}:{body}\n"));
    }
    (text, planted)
}

/// Clean ASCII text: words from a small vocabulary, spaces, punctuation and newlines.
fn text_data(rng: &mut Rng, len: usize) -> Vec<u8> {
    const WORDS: [&str; 24] = [
        "the", "scanner", "reads", "every", "file", "before", "it", "opens", "and", "a", "verdict",
        "is", "given", "once", "function", "return", "value", "while", "config", "path", "user",
        "system", "log", "of",
    ];
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        out.extend_from_slice(WORDS[rng.below(WORDS.len() as u64) as usize].as_bytes());
        out.push(match rng.below(12) {
            0 => b'\n',
            1 => b',',
            2 => b'.',
            _ => b' ',
        });
    }
    out.truncate(len);
    out
}

fn binary_data(rng: &mut Rng, len: usize) -> Vec<u8> {
    (0..len).map(|_| binary_byte(rng)).collect()
}

fn with_planted(mut data: Vec<u8>, planted: &[u8]) -> Vec<u8> {
    let at = data.len() / 2;
    data[at..at + planted.len()].copy_from_slice(planted);
    data
}

fn matcher(c: &mut Criterion) {
    let mut rng = Rng(0x6d6f_6174_2d62_656e);
    let (text, planted) = database(&mut rng);
    let started = Instant::now();
    let db = Database::from_text(Path::new("bench.ndb"), &text).expect("the database loads");
    let engine = Engine::new(db);
    eprintln!(
        "matcher: {} body signatures loaded and compiled in {:.0} ms",
        engine.signature_count(),
        started.elapsed().as_secs_f64() * 1e3
    );

    const MIB: usize = 1 << 20;
    let text_1m = text_data(&mut rng, MIB);
    let binary_1m = binary_data(&mut rng, MIB);
    let binary_4k = binary_data(&mut rng, 4096);
    let infected_4k = with_planted(binary_4k.clone(), &planted);
    let infected_1m = with_planted(binary_1m.clone(), &planted);
    let cases: [(&str, &[u8], bool); 5] = [
        ("text_1MiB", &text_1m, false),
        ("binary_1MiB", &binary_1m, false),
        ("binary_4KiB", &binary_4k, false),
        ("infected_4KiB", &infected_4k, true),
        ("infected_1MiB", &infected_1m, true),
    ];

    let mut group = c.benchmark_group("scan_bytes");
    for (name, data, infected) in cases {
        // What is measured must be what the name says: a clean buffer that happens to
        // match a random signature would measure the verifier instead.
        let verdict = engine.scan_bytes(data);
        assert_eq!(verdict.is_infected(), infected, "{name}: {verdict:?}");
        if infected {
            assert_eq!(verdict, Verdict::Infected("Bench.Sig-0.UNOFFICIAL"));
        }
        group.throughput(Throughput::Bytes(data.len() as u64));
        group.bench_function(name, |b| b.iter(|| engine.scan_bytes(black_box(data))));
    }
    group.finish();
}

criterion_group!(benches, matcher);
criterion_main!(benches);
