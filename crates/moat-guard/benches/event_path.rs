//! The userspace steps of one on-access permission event, without the kernel (no root, no
//! fanotify): what the reader thread and a worker do between `read(2)` and the answer.
//!
//! - `policy/*`: `Policy::decide` for a file in an include path (every ancestor directory
//!   matched against the exclude patterns, then Scan), one under an excluded directory,
//!   and one outside every include path (the cheapest Allow);
//! - `verdict_cache/*`: `VerdictCache::contains` hit and miss on a cache holding 50,000
//!   files, and `insert_clean` into a full cache (each insert evicts with CLOCK);
//! - `worker_pool/*`: `WorkerPool::submit` → answer round trip with a trivial fake
//!   `Scanner`, timed with `iter_custom` until the answer arrives on a channel: queueing,
//!   deadline registration, wake-up, `fstat`, cache, answer. `scan` reaches the scanner on
//!   every job (its verdict, Skipped, is never cached); `cache_hit` is answered from the
//!   verdict cache after the first job; `after_idle` waits 1 ms (untimed) before each
//!   submission, so the worker has stopped spinning and parked: the cost of waking it.
//!   One worker thread.
//!
//! Run: `cargo bench -p moat-guard --bench event_path`.

use std::fs::File;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use crossbeam_channel::{bounded, Sender};
use moat_guard::{
    AccessFacts, AllowReason, Cause, DeadlineWatcher, Decision, FileKey, Policy, PolicySettings,
    PoolConfig, Response, ScanFailure, Scanner, SkipReason, Stats, Verdict, VerdictCache,
    WorkerPool,
};

fn policy() -> Policy {
    Policy::new(PolicySettings {
        include_paths: vec![PathBuf::from("/home"), PathBuf::from("/srv/data")],
        exclude_patterns: vec![
            r"^/home/[^/]+/\.cache$".into(),
            r"/node_modules$".into(),
            r"^/srv/data/backup".into(),
        ],
        exclude_uids: vec![998, 999],
        exclude_root_uid: false,
        own_pid: 4242,
        never_watched: vec![PathBuf::from("/var/lib/moat"), PathBuf::from("/tmp/moat")],
        max_file_size: Some(25 << 20),
    })
    .expect("valid patterns")
}

fn policy_bench(c: &mut Criterion) {
    let policy = policy();
    let cases: [(&str, &str, Decision); 3] = [
        (
            "in_scope",
            "/home/alice/projects/moat/crates/engine/src/body/prefilter.rs",
            Decision::Scan,
        ),
        (
            "excluded",
            "/home/alice/.cache/pip/wheels/ab/cd/pkg-1.0-py3-none-any.whl",
            Decision::Allow(AllowReason::ExcludedPath),
        ),
        (
            "outside_includes",
            "/usr/lib/x86_64-linux-gnu/libc.so.6",
            Decision::Allow(AllowReason::OutsideIncludes),
        ),
    ];
    let mut group = c.benchmark_group("policy");
    for (name, path, expected) in cases {
        let facts = AccessFacts {
            pid: 1234,
            uid: Some(1000),
            path: Path::new(path),
            size: Some(10_000),
        };
        assert_eq!(policy.decide(&facts), expected, "{name}");
        group.bench_function(name, |b| b.iter(|| policy.decide(black_box(&facts))));
    }
    group.finish();
}

fn key(i: u64) -> FileKey {
    FileKey {
        dev: 0x803,
        ino: 1_000_000 + i * 7,
        size: 4096 + i,
        mtime_ns: 1_700_000_000_000_000_000 + i as i128,
        ctime_ns: 1_700_000_000_000_000_000 + i as i128,
    }
}

fn cache_bench(c: &mut Criterion) {
    const CAPACITY: usize = 65_536;
    const FILLED: u64 = 50_000;
    let cache = VerdictCache::new(CAPACITY);
    for i in 0..FILLED {
        cache.insert_clean(key(i), 1);
    }
    let (hit, miss) = (key(FILLED / 2), key(FILLED + 1));
    assert!(cache.contains(&hit, 1) && !cache.contains(&miss, 1));
    let mut group = c.benchmark_group("verdict_cache");
    group.bench_function("contains_hit", |b| {
        b.iter(|| cache.contains(black_box(&hit), 1))
    });
    group.bench_function("contains_miss", |b| {
        b.iter(|| cache.contains(black_box(&miss), 1))
    });

    let full = VerdictCache::new(CAPACITY);
    for i in 0..CAPACITY as u64 {
        full.insert_clean(key(i), 1);
    }
    // Keys never inserted before (then cycling over four capacities' worth), so every
    // insert is a new entry that evicts one.
    let mut next = CAPACITY as u64;
    group.bench_function("insert_clean_full", |b| {
        b.iter(|| {
            next = if next >= 5 * CAPACITY as u64 {
                CAPACITY as u64
            } else {
                next + 1
            };
            full.insert_clean(black_box(key(next)), 1)
        })
    });
    group.finish();
}

/// A scanner that reads nothing and always returns the same verdict.
struct Fake(Verdict);

impl Scanner for Fake {
    fn scan(&self, _file: &File) -> Result<Verdict, ScanFailure> {
        Ok(self.0.clone())
    }
    fn generation(&self) -> u64 {
        1
    }
}

/// A pool of one worker over `verdict`, its deadline watcher, and a sink that forwards
/// every answer to `tx`.
fn pool(verdict: Verdict) -> (WorkerPool, DeadlineWatcher) {
    let watcher = DeadlineWatcher::spawn(Arc::new(Stats::default())).unwrap();
    let config = PoolConfig {
        threads: 1,
        deadline: Duration::from_secs(5),
        on_error: Response::Allow,
        settle: Duration::ZERO,
        retries: 0,
    };
    let cache = Arc::new(VerdictCache::new(1000));
    let pool = WorkerPool::new(config, Arc::new(Fake(verdict)), cache, watcher.handle()).unwrap();
    (pool, watcher)
}

fn sink(tx: &Sender<Response>) -> impl Fn(Response, Cause<'_>) + Send + Sync + 'static {
    let tx = tx.clone();
    move |response, _cause| {
        let _ = tx.send(response);
    }
}

fn pool_bench(c: &mut Criterion) {
    let file = tempfile::tempfile().unwrap();
    let mut group = c.benchmark_group("worker_pool");
    let cases = [
        ("scan", Verdict::Skipped(SkipReason::TooLarge), None),
        ("cache_hit", Verdict::Clean, None),
        (
            "after_idle",
            Verdict::Skipped(SkipReason::TooLarge),
            Some(Duration::from_millis(1)),
        ),
    ];
    for (name, verdict, idle) in cases {
        let (pool, watcher) = pool(verdict);
        let (tx, rx) = bounded(1);
        // One job first: the file is cached for `cache_hit`.
        pool.submit(file.try_clone().unwrap(), sink(&tx));
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(Response::Allow));
        if idle.is_some() {
            // Each iteration sleeps, untimed: keep the iteration count small.
            group
                .sample_size(10)
                .warm_up_time(Duration::from_millis(100))
                .measurement_time(Duration::from_millis(300));
        }
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // The reader thread dups the event's fd; so does the bench, untimed.
                    let dup = file.try_clone().unwrap();
                    if let Some(idle) = idle {
                        std::thread::sleep(idle);
                    }
                    let started = Instant::now();
                    pool.submit(dup, sink(&tx));
                    let answer = rx.recv().unwrap();
                    total += started.elapsed();
                    debug_assert_eq!(answer, Response::Allow);
                }
                total
            })
        });
        pool.shutdown();
        watcher.shutdown();
    }
    group.finish();
}

criterion_group!(benches, policy_bench, cache_bench, pool_bench);
criterion_main!(benches);
