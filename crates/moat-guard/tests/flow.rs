//! Deadlines, exactly-once answering, shutdown and the worker pool, with fake scanners.
//!
//! Every test is deterministic: slow scans block on a channel until the test releases them
//! (no sleeping to "probably" lose a race), and assertions that involve a real race only check
//! what must hold whoever wins.

use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use moat_guard::{
    Answer, Cause, DeadlineWatcher, Pending, PoolConfig, Response, ScanFailure, Scanner, Stats,
    Verdict, VerdictCache, WorkerPool,
};

const LONG: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(10);

/// What a sink saw, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Clean,
    Skipped,
    Infected(String),
    Cached,
    Failed,
    Deadline,
    Shutdown,
    Abandoned,
}

fn seen(cause: Cause<'_>) -> Seen {
    match cause {
        Cause::Scanned(Verdict::Clean) => Seen::Clean,
        Cause::Scanned(Verdict::Skipped(_)) => Seen::Skipped,
        Cause::Scanned(Verdict::Infected(n)) => Seen::Infected(n.to_string()),
        Cause::Cached => Seen::Cached,
        Cause::Failed(_) => Seen::Failed,
        Cause::Deadline => Seen::Deadline,
        Cause::Shutdown => Seen::Shutdown,
        Cause::Abandoned => Seen::Abandoned,
    }
}

/// A sink that sends `(id, response, cause)` to a channel.
fn sink(id: usize, tx: &Sender<(usize, Response, Seen)>) -> impl Answer + 'static {
    let tx = tx.clone();
    move |r: Response, c: Cause<'_>| {
        let _ = tx.send((id, r, seen(c)));
    }
}

/// An unnamed file holding `data`, open read-only like the kernel's event fds, with no
/// writer left: a file someone has open for writing is never cached (review F3).
fn file_with(data: &[u8]) -> File {
    let mut f = tempfile::tempfile().unwrap();
    f.write_all(data).unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
    File::open(format!("/proc/self/fd/{fd}")).unwrap()
}

/// A named temporary file that nobody holds open (removed on drop).
struct Named(tempfile::TempPath);

impl Named {
    fn new() -> Named {
        Named(tempfile::NamedTempFile::new().unwrap().into_temp_path())
    }

    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

/// Reads the whole file: "bad" anywhere is a detection, "fail" an error, "panic" a panic.
/// Counts calls.
#[derive(Default)]
struct ContentScanner {
    calls: AtomicUsize,
}

impl Scanner for ContentScanner {
    fn scan(&self, file: &File) -> Result<Verdict, ScanFailure> {
        use std::io::{Read, Seek, SeekFrom};
        self.calls.fetch_add(1, SeqCst);
        let mut data = Vec::new();
        let mut f = file;
        f.seek(SeekFrom::Start(0))?;
        f.read_to_end(&mut data)?;
        let has = |w: &[u8]| data.windows(w.len()).any(|x| x == w);
        if has(b"panic") {
            panic!("fake scanner panic");
        }
        if has(b"fail") {
            return Err(ScanFailure::Backend("fake failure".into()));
        }
        if has(b"big") {
            return Ok(Verdict::Skipped(moat_guard::SkipReason::TooLarge));
        }
        Ok(if has(b"bad") {
            Verdict::Infected("Fake.Bad".into())
        } else {
            Verdict::Clean
        })
    }

    fn generation(&self) -> u64 {
        1
    }
}

/// Blocks every scan until released (one release per scan), then answers Clean.
struct BlockingScanner {
    started: Sender<()>,
    release: Receiver<()>,
    finished: AtomicUsize,
}

impl BlockingScanner {
    fn new() -> (Arc<Self>, Receiver<()>, Sender<()>) {
        let (started_tx, started_rx) = unbounded();
        let (release_tx, release_rx) = unbounded();
        let s = Arc::new(BlockingScanner {
            started: started_tx,
            release: release_rx,
            finished: AtomicUsize::new(0),
        });
        (s, started_rx, release_tx)
    }
}

impl Scanner for BlockingScanner {
    fn scan(&self, _: &File) -> Result<Verdict, ScanFailure> {
        self.started.send(()).unwrap();
        self.release.recv_timeout(WAIT).expect("never released");
        self.finished.fetch_add(1, SeqCst);
        Ok(Verdict::Clean)
    }

    fn generation(&self) -> u64 {
        1
    }
}

struct Setup {
    watcher: DeadlineWatcher,
    pool: WorkerPool,
    stats: Arc<Stats>,
    cache: Arc<VerdictCache>,
}

fn setup(
    threads: usize,
    deadline: Duration,
    on_error: Response,
    scanner: Arc<dyn Scanner>,
) -> Setup {
    setup_settle(threads, deadline, on_error, scanner, Duration::ZERO)
}

fn setup_settle(
    threads: usize,
    deadline: Duration,
    on_error: Response,
    scanner: Arc<dyn Scanner>,
    settle: Duration,
) -> Setup {
    setup_full(threads, deadline, on_error, scanner, settle, 0)
}

fn setup_full(
    threads: usize,
    deadline: Duration,
    on_error: Response,
    scanner: Arc<dyn Scanner>,
    settle: Duration,
    retries: u32,
) -> Setup {
    let stats = Arc::new(Stats::default());
    let watcher = DeadlineWatcher::spawn(Arc::clone(&stats)).unwrap();
    let cache = Arc::new(VerdictCache::new(1000));
    let config = PoolConfig {
        threads,
        deadline,
        on_error,
        settle,
        retries,
    };
    let pool = WorkerPool::new(config, scanner, Arc::clone(&cache), watcher.handle()).unwrap();
    Setup {
        watcher,
        pool,
        stats,
        cache,
    }
}

impl Setup {
    fn shutdown(self) -> Arc<Stats> {
        self.watcher.shutdown();
        self.pool.shutdown();
        self.stats
    }
}

fn get(c: &std::sync::atomic::AtomicU64) -> u64 {
    Stats::get(c)
}

// ---- Pending ----

#[test]
fn pending_answers_exactly_once() {
    let (tx, rx) = unbounded();
    let p = Pending::new(sink(0, &tx), Instant::now() + LONG, Response::Deny);
    assert!(!p.is_answered());
    assert!(p.answer(Response::Allow, Cause::Cached));
    assert!(p.is_answered());
    assert!(!p.answer(Response::Deny, Cause::Deadline));
    assert!(!p.clone().answer_on_error(Cause::Deadline));
    drop(p);
    drop(tx);
    let all: Vec<_> = rx.try_iter().collect();
    assert_eq!(all, vec![(0, Response::Allow, Seen::Cached)]);
}

#[test]
fn dropped_unanswered_token_answers_on_error() {
    let (tx, rx) = unbounded();
    let p = Pending::new(sink(0, &tx), Instant::now() + LONG, Response::Deny);
    let q = p.clone();
    drop(p);
    assert!(rx.try_recv().is_err(), "a clone is still alive");
    drop(q);
    assert_eq!(rx.try_recv().unwrap(), (0, Response::Deny, Seen::Abandoned));
}

#[test]
fn racing_answers_deliver_once_per_token() {
    const N: usize = 20_000;
    let counts: Arc<Vec<AtomicU32>> = Arc::new((0..N).map(|_| AtomicU32::new(0)).collect());
    let tokens: Arc<Vec<Pending>> = Arc::new(
        (0..N)
            .map(|i| {
                let counts = Arc::clone(&counts);
                let sink = move |_: Response, _: Cause<'_>| {
                    counts[i].fetch_add(1, SeqCst);
                };
                Pending::new(sink, Instant::now() + LONG, Response::Deny)
            })
            .collect(),
    );
    let barrier = Arc::new(std::sync::Barrier::new(4));
    let wins: Vec<usize> = (0..4)
        .map(|t| {
            let (tokens, barrier) = (Arc::clone(&tokens), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                let order: Box<dyn Iterator<Item = usize>> = if t % 2 == 0 {
                    Box::new(0..N)
                } else {
                    Box::new((0..N).rev())
                };
                order
                    .filter(|&i| tokens[i].answer(Response::Allow, Cause::Cached))
                    .count()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    assert_eq!(wins.iter().sum::<usize>(), N);
    assert!(counts.iter().all(|c| c.load(SeqCst) == 1));
}

// ---- DeadlineWatcher ----

#[test]
fn watcher_answers_on_error_at_the_deadline_not_before() {
    let stats = Arc::new(Stats::default());
    let watcher = DeadlineWatcher::spawn(Arc::clone(&stats)).unwrap();
    let (tx, rx) = unbounded();
    let start = Instant::now();
    let deadlines = [30, 10, 20].map(|ms| start + Duration::from_millis(ms));
    for (i, d) in deadlines.iter().enumerate() {
        watcher
            .handle()
            .watch(Pending::new(sink(i, &tx), *d, Response::Deny));
    }
    // Answered in deadline order, each no earlier than its deadline.
    for want in [1, 2, 0] {
        let (id, r, c) = rx.recv_timeout(WAIT).unwrap();
        assert_eq!((id, r, c), (want, Response::Deny, Seen::Deadline));
        assert!(Instant::now() >= deadlines[want]);
    }
    // The counter is bumped after the answer is delivered: read it once the watcher
    // thread has been joined.
    assert_eq!(watcher.shutdown(), 0);
    assert_eq!(get(&stats.deadline_expired), 3);
}

#[test]
fn watcher_shutdown_answers_every_pending_token_with_allow() {
    let stats = Arc::new(Stats::default());
    let watcher = DeadlineWatcher::spawn(Arc::clone(&stats)).unwrap();
    let handle = watcher.handle();
    let (tx, rx) = unbounded();
    let tokens: Vec<Pending> = (0..100)
        .map(|i| Pending::new(sink(i, &tx), Instant::now() + LONG, Response::Deny))
        .collect();
    for t in &tokens {
        handle.watch(t.clone());
    }
    // One answered before shutdown: not answered again.
    assert!(tokens[5].answer(Response::Allow, Cause::Cached));
    assert_eq!(watcher.shutdown(), 99);
    // Registering after shutdown answers at once.
    handle.watch(Pending::new(
        sink(100, &tx),
        Instant::now() + LONG,
        Response::Deny,
    ));
    drop((tokens, tx, handle));
    let mut all: Vec<_> = rx.try_iter().collect();
    all.sort_by_key(|a| a.0);
    assert_eq!(all.len(), 101);
    for (i, (id, r, c)) in all.into_iter().enumerate() {
        assert_eq!(id, i);
        let want = if i == 5 { Seen::Cached } else { Seen::Shutdown };
        assert_eq!((r, c), (Response::Allow, want));
    }
    assert_eq!(get(&stats.shutdown_answers), 100);
}

// ---- WorkerPool ----

#[test]
fn fast_scans_answer_with_their_verdict() {
    let scanner = Arc::new(ContentScanner::default());
    let s = setup(2, LONG, Response::Deny, scanner.clone());
    let (tx, rx) = unbounded();
    s.pool.submit(file_with(b"all good"), sink(0, &tx));
    s.pool.submit(file_with(b"so bad"), sink(1, &tx));
    s.pool.submit(file_with(b"too big"), sink(2, &tx));
    let mut got: Vec<_> = (0..3).map(|_| rx.recv_timeout(WAIT).unwrap()).collect();
    got.sort_by_key(|a| a.0);
    assert_eq!(
        got,
        vec![
            (0, Response::Allow, Seen::Clean),
            (1, Response::Deny, Seen::Infected("Fake.Bad".into())),
            (2, Response::Allow, Seen::Skipped),
        ]
    );
    let stats = s.shutdown();
    assert_eq!(get(&stats.clean), 1);
    assert_eq!(get(&stats.infected), 1);
    assert_eq!(get(&stats.skipped), 1);
    assert_eq!(get(&stats.deadline_expired), 0);
    assert!(rx.try_recv().is_err(), "answered more than once");
}

#[test]
fn failures_and_panics_answer_on_error_and_the_worker_survives() {
    for on_error in [Response::Allow, Response::Deny] {
        let scanner = Arc::new(ContentScanner::default());
        let s = setup(1, LONG, on_error, scanner.clone());
        let (tx, rx) = unbounded();
        s.pool.submit(file_with(b"fail"), sink(0, &tx));
        assert_eq!(rx.recv_timeout(WAIT).unwrap(), (0, on_error, Seen::Failed));
        s.pool.submit(file_with(b"panic"), sink(1, &tx));
        assert_eq!(rx.recv_timeout(WAIT).unwrap(), (1, on_error, Seen::Failed));
        // The single worker is still alive.
        s.pool.submit(file_with(b"fine"), sink(2, &tx));
        assert_eq!(
            rx.recv_timeout(WAIT).unwrap(),
            (2, Response::Allow, Seen::Clean)
        );
        let stats = s.shutdown();
        assert_eq!(get(&stats.failures), 2);
        assert_eq!(get(&stats.panics), 1);
    }
}

#[test]
fn slow_scan_answers_on_error_at_the_deadline_and_its_late_result_is_ignored() {
    let (scanner, started, release) = BlockingScanner::new();
    let deadline = Duration::from_millis(20);
    let s = setup(1, deadline, Response::Deny, scanner.clone());
    let (tx, rx) = unbounded();
    let submitted = Instant::now();
    let token = s.pool.submit(file_with(b"x"), sink(0, &tx));
    started.recv_timeout(WAIT).unwrap();
    assert_eq!(
        rx.recv_timeout(WAIT).unwrap(),
        (0, Response::Deny, Seen::Deadline)
    );
    assert!(submitted.elapsed() >= deadline);
    assert!(token.is_answered());
    // Now let the scan finish: its Clean verdict must go nowhere.
    release.send(()).unwrap();
    let stats = s.shutdown(); // joins the worker, so the late result has been handled
    assert_eq!(scanner.finished.load(SeqCst), 1);
    assert_eq!(get(&stats.late_results), 1);
    assert_eq!(get(&stats.deadline_expired), 1);
    assert_eq!(get(&stats.clean), 0);
    drop((tx, token));
    assert_eq!(rx.try_iter().count(), 0, "the late result was delivered");
}

#[test]
fn a_job_that_expired_in_the_queue_is_not_scanned() {
    let (scanner, started, release) = BlockingScanner::new();
    let s = setup(
        1,
        Duration::from_millis(20),
        Response::Allow,
        scanner.clone(),
    );
    let (tx, rx) = unbounded();
    s.pool.submit(file_with(b"1"), sink(0, &tx));
    started.recv_timeout(WAIT).unwrap(); // the only worker is busy with job 0
    s.pool.submit(file_with(b"2"), sink(1, &tx));
    let mut got: Vec<_> = (0..2).map(|_| rx.recv_timeout(WAIT).unwrap()).collect();
    got.sort_by_key(|a| a.0);
    assert_eq!(got[0], (0, Response::Allow, Seen::Deadline));
    assert_eq!(got[1], (1, Response::Allow, Seen::Deadline));
    release.send(()).unwrap();
    // The worker now takes job 1 from the queue and must drop it unscanned; wait for
    // that (shutting down first would drain the queue instead).
    let waited = Instant::now();
    while get(&s.stats.expired_in_queue) == 0 && waited.elapsed() < WAIT {
        std::thread::sleep(Duration::from_millis(1));
    }
    let stats = s.shutdown();
    assert_eq!(scanner.finished.load(SeqCst), 1, "job 1 was scanned");
    assert_eq!(get(&stats.expired_in_queue), 1);
    assert_eq!(get(&stats.late_results), 1);
}

#[test]
fn every_token_is_answered_exactly_once_under_tiny_deadlines() {
    /// Answers Clean after a short busy wait of varying length, to straddle the deadlines.
    struct Jittery(AtomicUsize);
    impl Scanner for Jittery {
        fn scan(&self, _: &File) -> Result<Verdict, ScanFailure> {
            let n = self.0.fetch_add(1, Relaxed);
            let until = Instant::now() + Duration::from_micros((n % 7) as u64 * 30);
            while Instant::now() < until {
                std::hint::spin_loop();
            }
            Ok(Verdict::Clean)
        }
        fn generation(&self) -> u64 {
            1
        }
    }
    const N: usize = 3_000;
    let s = setup(
        4,
        Duration::from_micros(50),
        Response::Deny,
        Arc::new(Jittery(AtomicUsize::new(0))),
    );
    // The cache would turn repeated files into hits; use distinct files anyway.
    let counts: Arc<Vec<AtomicU32>> = Arc::new((0..N).map(|_| AtomicU32::new(0)).collect());
    let answered = Arc::new(AtomicUsize::new(0));
    let by_cause = Arc::new(Mutex::new([0usize; 2]));
    for i in 0..N {
        let (counts, answered, by_cause) = (counts.clone(), answered.clone(), by_cause.clone());
        let sink = move |r: Response, c: Cause<'_>| {
            counts[i].fetch_add(1, SeqCst);
            let k = match (r, c) {
                (Response::Allow, Cause::Scanned(Verdict::Clean) | Cause::Cached) => 0,
                (Response::Deny, Cause::Deadline) => 1,
                other => panic!("unexpected answer {other:?}"),
            };
            by_cause.lock().unwrap()[k] += 1;
            answered.fetch_add(1, SeqCst);
        };
        s.pool.submit(file_with(b"x"), sink);
    }
    let start = Instant::now();
    while answered.load(SeqCst) < N {
        assert!(
            start.elapsed() < WAIT,
            "only {} answered",
            answered.load(SeqCst)
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let stats = s.shutdown();
    assert!(counts.iter().all(|c| c.load(SeqCst) == 1));
    let [scanned, expired] = *by_cause.lock().unwrap();
    assert_eq!(scanned + expired, N);
    // The counters agree with what the sinks saw, and no answer was lost.
    assert_eq!(get(&stats.deadline_expired) as usize, expired);
    assert_eq!(
        (get(&stats.clean) + get(&stats.cache_hits)) as usize,
        scanned
    );
    assert_eq!(get(&stats.shutdown_answers), 0);
}

#[test]
fn workers_scan_in_parallel_up_to_n_and_no_more() {
    /// Each scan waits until `n` scans are running at once (or a generous timeout), and
    /// records the highest concurrency seen.
    struct Gather {
        n: usize,
        running: AtomicUsize,
        max: AtomicUsize,
        gathered: Mutex<usize>,
        cv: std::sync::Condvar,
    }
    impl Scanner for Gather {
        fn scan(&self, _: &File) -> Result<Verdict, ScanFailure> {
            let now = self.running.fetch_add(1, SeqCst) + 1;
            self.max.fetch_max(now, SeqCst);
            let mut g = self.gathered.lock().unwrap();
            *g += 1;
            self.cv.notify_all();
            // Wait for the rest of this round of n.
            let round_end = (*g).div_ceil(self.n) * self.n;
            let _ = self
                .cv
                .wait_timeout_while(g, WAIT, |g| *g < round_end)
                .unwrap();
            self.running.fetch_sub(1, SeqCst);
            Ok(Verdict::Clean)
        }
        fn generation(&self) -> u64 {
            1
        }
    }
    const THREADS: usize = 4;
    let scanner = Arc::new(Gather {
        n: THREADS,
        running: AtomicUsize::new(0),
        max: AtomicUsize::new(0),
        gathered: Mutex::new(0),
        cv: std::sync::Condvar::new(),
    });
    let s = setup(THREADS, LONG, Response::Deny, scanner.clone());
    let (tx, rx) = unbounded();
    let start = Instant::now();
    // Keep every file open until the end: a closed anonymous file frees its inode,
    // and a new file in the same clock tick could then have an identical cache key.
    let mut keep = Vec::new();
    for i in 0..3 * THREADS {
        let file = file_with(format!("{i}").as_bytes());
        keep.push(file.try_clone().unwrap());
        s.pool.submit(file, sink(i, &tx));
    }
    for _ in 0..3 * THREADS {
        let (_, r, c) = rx.recv_timeout(WAIT * 4).unwrap();
        assert_eq!((r, c), (Response::Allow, Seen::Clean));
    }
    // Each round gathered all n at once: no scan waited for its timeout.
    assert!(start.elapsed() < WAIT, "scans did not run in parallel");
    assert_eq!(scanner.max.load(SeqCst), THREADS);
    s.shutdown();
    drop(keep);
}

#[test]
fn clean_and_infected_verdicts_are_cached_and_changed_files_are_rescanned() {
    let scanner = Arc::new(ContentScanner::default());
    let s = setup(1, LONG, Response::Deny, scanner.clone());
    let (tx, rx) = unbounded();
    let clean = Named::new();
    std::fs::write(clean.path(), b"clean").unwrap();
    let bad = Named::new();
    std::fs::write(bad.path(), b"bad").unwrap();
    let ask = |path: &std::path::Path| {
        s.pool.submit(File::open(path).unwrap(), sink(0, &tx));
        rx.recv_timeout(WAIT).unwrap().2
    };
    assert_eq!(ask(clean.path()), Seen::Clean);
    assert_eq!(ask(clean.path()), Seen::Cached);
    assert_eq!(ask(clean.path()), Seen::Cached);
    assert_eq!(scanner.calls.load(SeqCst), 1);
    assert_eq!(ask(bad.path()), Seen::Infected("Fake.Bad".into()));
    // The detection is remembered: the second open is answered without a scan.
    assert_eq!(ask(bad.path()), Seen::Infected("Fake.Bad".into()));
    assert_eq!(scanner.calls.load(SeqCst), 2);
    assert_eq!(get(&s.stats.infected_cache_hits), 1);
    // Same size, new content: the key changes and the file is rescanned. (An explicit new mtime
    // keeps the test independent of the filesystem's timestamp granularity.)
    std::fs::write(clean.path(), b"x bad").unwrap();
    let t = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    File::options()
        .write(true)
        .open(clean.path())
        .unwrap()
        .set_modified(t)
        .unwrap();
    assert_eq!(ask(clean.path()), Seen::Infected("Fake.Bad".into()));
    assert_eq!(scanner.calls.load(SeqCst), 3);
    // A reload clears the cache.
    std::fs::write(clean.path(), b"clean").unwrap();
    assert_eq!(ask(clean.path()), Seen::Clean);
    assert_eq!(ask(clean.path()), Seen::Cached);
    s.cache.clear();
    assert_eq!(ask(clean.path()), Seen::Clean);
    assert_eq!(scanner.calls.load(SeqCst), 5);
    s.shutdown();
}

#[test]
fn recently_changed_files_are_not_cached_unless_timestamps_are_multigrain() {
    let scanner = Arc::new(ContentScanner::default());
    let s = setup_settle(
        1,
        LONG,
        Response::Deny,
        scanner.clone(),
        Duration::from_secs(3600),
    );
    let (tx, rx) = unbounded();
    let f = Named::new();
    std::fs::write(f.path(), b"clean").unwrap();
    let multigrain = moat_guard::cache::has_multigrain_ctime(&File::open(f.path()).unwrap());
    let answers: Vec<Seen> = (0..3)
        .map(|_| {
            s.pool.submit(File::open(f.path()).unwrap(), sink(0, &tx));
            rx.recv_timeout(WAIT).unwrap().2
        })
        .collect();
    if multigrain {
        // No change can hide behind an identical key: cached at once.
        assert_eq!(answers, [Seen::Clean, Seen::Cached, Seen::Cached]);
        assert_eq!(s.cache.len(), 1);
    } else {
        assert_eq!(answers, [Seen::Clean, Seen::Clean, Seen::Clean]);
        assert!(s.cache.is_empty());
    }
    s.shutdown();
}

#[test]
fn shutdown_with_queued_jobs_answers_each_exactly_once() {
    let (scanner, started, release) = BlockingScanner::new();
    let s = setup(1, LONG, Response::Deny, scanner.clone());
    let (tx, rx) = unbounded();
    for i in 0..6 {
        s.pool.submit(file_with(b"x"), sink(i, &tx));
    }
    started.recv_timeout(WAIT).unwrap();
    // The watcher goes first (the daemon's order): all six are answered Allow at once.
    let Setup {
        watcher,
        pool,
        stats,
        ..
    } = s;
    assert_eq!(watcher.shutdown(), 6);
    let (done_tx, done_rx) = bounded(1);
    let joiner = std::thread::spawn(move || {
        pool.shutdown();
        done_tx.send(()).unwrap();
    });
    for _ in 0..6 {
        release.send(()).unwrap();
    }
    done_rx.recv_timeout(WAIT).unwrap();
    joiner.join().unwrap();
    drop(tx);
    let mut all: Vec<_> = rx.try_iter().collect();
    all.sort_by_key(|a| a.0);
    assert_eq!(
        all,
        (0..6)
            .map(|i| (i, Response::Allow, Seen::Shutdown))
            .collect::<Vec<_>>()
    );
    assert_eq!(get(&stats.shutdown_answers), 6);
}

#[test]
fn shutdown_within_leaves_a_stuck_scan_behind_and_returns() {
    let (scanner, started, release) = BlockingScanner::new();
    let s = setup(1, LONG, Response::Deny, scanner.clone());
    let (tx, rx) = unbounded();
    s.pool.submit(file_with(b"x"), sink(0, &tx));
    started.recv_timeout(WAIT).unwrap();
    let Setup { watcher, pool, .. } = s;
    assert_eq!(watcher.shutdown(), 1);
    // The scan is still blocked: the pool gives up waiting instead of hanging.
    assert!(!pool.shutdown_within(Duration::from_millis(50)));
    release.send(()).unwrap();
    drop(tx);
    let all: Vec<_> = rx.recv_timeout(WAIT).into_iter().collect();
    assert_eq!(all, vec![(0, Response::Allow, Seen::Shutdown)]);
}

#[test]
fn shutdown_within_joins_idle_workers() {
    let (scanner, _started, _release) = BlockingScanner::new();
    let s = setup(3, LONG, Response::Deny, scanner);
    let Setup { watcher, pool, .. } = s;
    watcher.shutdown();
    assert!(pool.shutdown_within(WAIT));
}

/// Fails its first `fail_first` scans, then reports clean; counts calls.
struct FlakyScanner {
    fail_first: usize,
    calls: AtomicUsize,
}

impl Scanner for FlakyScanner {
    fn scan(&self, _file: &File) -> Result<Verdict, ScanFailure> {
        if self.calls.fetch_add(1, SeqCst) < self.fail_first {
            return Err(ScanFailure::Backend("transient".into()));
        }
        Ok(Verdict::Clean)
    }

    fn generation(&self) -> u64 {
        1
    }
}

fn retrying_pool(retries: u32, fail_first: usize) -> (Setup, Arc<FlakyScanner>) {
    let scanner = Arc::new(FlakyScanner {
        fail_first,
        calls: AtomicUsize::new(0),
    });
    let s = setup_full(1, LONG, Response::Deny, scanner.clone(), LONG, retries);
    (s, scanner)
}

#[test]
fn retries_turn_a_transient_failure_into_a_verdict() {
    let (s, scanner) = retrying_pool(2, 2);
    let (tx, rx) = unbounded();
    s.pool.submit(file_with(b"x"), sink(0, &tx));
    assert_eq!(
        rx.recv_timeout(WAIT).unwrap(),
        (0, Response::Allow, Seen::Clean)
    );
    assert_eq!(scanner.calls.load(SeqCst), 3);
    let stats = s.shutdown();
    assert_eq!(get(&stats.retries), 2);
    assert_eq!(get(&stats.failures), 0);
}

#[test]
fn retries_run_out_and_the_on_error_decision_applies() {
    let (s, scanner) = retrying_pool(1, 5);
    let (tx, rx) = unbounded();
    s.pool.submit(file_with(b"x"), sink(0, &tx));
    assert_eq!(
        rx.recv_timeout(WAIT).unwrap(),
        (0, Response::Deny, Seen::Failed)
    );
    assert_eq!(scanner.calls.load(SeqCst), 2);
    let stats = s.shutdown();
    assert_eq!(get(&stats.retries), 1);
    assert_eq!(get(&stats.failures), 1);
}

// ---- Clean hook and reload ----

/// A scanner whose generation and verdict on "bad" are fixed at construction.
struct GenScanner {
    generation: u64,
    detects: bool,
}

impl Scanner for GenScanner {
    fn scan(&self, file: &File) -> Result<Verdict, ScanFailure> {
        use std::io::Read;
        let mut data = Vec::new();
        (&mut &*file).read_to_end(&mut data)?;
        let bad = data.windows(3).any(|w| w == b"bad");
        Ok(if bad && self.detects {
            Verdict::Infected("Gen.Bad".into())
        } else {
            Verdict::Clean
        })
    }

    fn generation(&self) -> u64 {
        self.generation
    }
}

/// Records `(ino, generation)` of every file the hook is told about.
#[derive(Default)]
struct RecordingHook(Mutex<Vec<(u64, u64)>>);

impl moat_guard::CleanHook for RecordingHook {
    fn clean(&self, _: &File, key: &moat_guard::FileKey, generation: u64) {
        self.0.lock().unwrap().push((key.ino, generation));
    }
}

fn hooked_pool(scanner: Arc<dyn Scanner>, settle: Duration) -> (Setup, Arc<RecordingHook>) {
    let stats = Arc::new(Stats::default());
    let watcher = DeadlineWatcher::spawn(Arc::clone(&stats)).unwrap();
    let cache = Arc::new(VerdictCache::new(1000));
    let config = PoolConfig {
        threads: 1,
        deadline: LONG,
        on_error: Response::Deny,
        settle,
        retries: 0,
    };
    let hook = Arc::new(RecordingHook::default());
    let pool = WorkerPool::with_hook(
        config,
        Arc::new(moat_guard::ScannerSlot::new(scanner)),
        Arc::clone(&cache),
        watcher.handle(),
        Some(hook.clone()),
    )
    .unwrap();
    let s = Setup {
        watcher,
        pool,
        stats,
        cache,
    };
    (s, hook)
}

#[test]
fn the_clean_hook_hears_of_clean_and_cached_files_only() {
    let (s, hook) = hooked_pool(Arc::new(ContentScanner::default()), Duration::ZERO);
    let (tx, rx) = unbounded();
    let ask = |data: &[u8]| {
        let f = file_with(data);
        let ino = std::os::unix::fs::MetadataExt::ino(&f.metadata().unwrap());
        let again = f.try_clone().unwrap();
        s.pool.submit(f, sink(0, &tx));
        let first = rx.recv_timeout(WAIT).unwrap().2;
        s.pool.submit(again, sink(0, &tx));
        let second = rx.recv_timeout(WAIT).unwrap().2;
        (ino, first, second)
    };
    let (clean, c1, c2) = ask(b"clean");
    assert_eq!((c1, c2), (Seen::Clean, Seen::Cached));
    let (_, b1, _) = ask(b"bad");
    assert_eq!(b1, Seen::Infected("Fake.Bad".into()));
    let (_, f1, _) = ask(b"fail");
    assert_eq!(f1, Seen::Failed);
    // Another size than "bad": a closed anonymous file frees its inode, and a new one of the
    // same size in the same clock tick would have the same cache key (remembered infected).
    let (_, k1, _) = ask(b"big file");
    assert_eq!(k1, Seen::Skipped);
    // The hook runs after the answer: wait for the worker to finish the second call.
    let until = Instant::now() + WAIT;
    while hook.0.lock().unwrap().len() < 2 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(*hook.0.lock().unwrap(), vec![(clean, 1), (clean, 1)]);
    s.shutdown();
}

#[test]
fn the_clean_hook_is_told_of_unsettled_files_only_with_multigrain_timestamps() {
    let (s, hook) = hooked_pool(
        Arc::new(ContentScanner::default()),
        Duration::from_secs(3600),
    );
    let (tx, rx) = unbounded();
    let f = file_with(b"clean");
    let multigrain = moat_guard::cache::has_multigrain_ctime(&f);
    s.pool.submit(f, sink(0, &tx));
    assert_eq!(rx.recv_timeout(WAIT).unwrap().2, Seen::Clean);
    let stats = s.shutdown();
    assert_eq!(get(&stats.clean), 1);
    assert_eq!(hook.0.lock().unwrap().len(), usize::from(multigrain));
}

#[test]
fn a_replaced_scanner_answers_every_later_job_under_its_generation() {
    let old = Arc::new(GenScanner {
        generation: 1,
        detects: false,
    });
    let (s, hook) = hooked_pool(old, Duration::ZERO);
    let (tx, rx) = unbounded();
    let f = Named::new();
    std::fs::write(f.path(), b"a bad file").unwrap();
    let ask = || {
        s.pool.submit(File::open(f.path()).unwrap(), sink(0, &tx));
        rx.recv_timeout(WAIT).unwrap().2
    };
    assert_eq!(ask(), Seen::Clean);
    assert_eq!(ask(), Seen::Cached);
    assert_eq!(s.pool.scanner().generation(), 1);
    let previous = s.pool.scanner().replace(Arc::new(GenScanner {
        generation: 2,
        detects: true,
    }));
    assert_eq!(previous.generation(), 1);
    // The cached clean verdict belongs to generation 1: the new database scans again.
    assert_eq!(ask(), Seen::Infected("Gen.Bad".into()));
    assert_eq!(s.pool.scanner().generation(), 2);
    let stats = s.shutdown();
    assert_eq!(get(&stats.infected), 1);
    let gens: Vec<u64> = hook.0.lock().unwrap().iter().map(|h| h.1).collect();
    assert_eq!(gens, vec![1, 1]);
}

/// A job answered by the deadline while still queued closes its file at once (it does not
/// wait for a worker to reach it): 200 jobs behind a stuck worker hold no descriptor after
/// their deadline (review F7; out of descriptors, the kernel denies every open).
#[test]
fn a_job_answered_at_its_deadline_releases_its_file_at_once() {
    let (scanner, started, release) = BlockingScanner::new();
    let s = setup(1, Duration::from_millis(20), Response::Allow, scanner);
    let (tx, rx) = unbounded();
    let stuck = s.pool.submit(file_with(b"stuck"), sink(0, &tx));
    started.recv_timeout(WAIT).unwrap();
    let queued: Vec<Pending> = (1..=200)
        .map(|i| s.pool.submit(file_with(b"x"), sink(i, &tx)))
        .collect();
    for _ in 0..201 {
        let (_, r, c) = rx.recv_timeout(WAIT).unwrap();
        assert_eq!((r, c), (Response::Allow, Seen::Deadline));
    }
    assert!(queued.iter().all(|p| p.is_answered() && !p.holds_file()));
    // The stuck scan's token was answered too and released its own reference; the worker
    // keeps the file open only while it scans.
    assert!(!stuck.holds_file());
    release.send(()).unwrap();
    let stats = s.shutdown();
    assert_eq!(get(&stats.expired_in_queue), 200);
}

/// One owner's flood of slow scans neither holds every worker nor queues ahead of another
/// owner: with 2 workers (at most 1 per owner), owner 7 queues 20 scans that block, and a
/// scan for owner 8 submitted after them is answered with its verdict, not the deadline.
#[test]
fn one_owners_flood_does_not_delay_another_owner() {
    /// "slow" files block until released; others are clean at once.
    struct Slow {
        release: Receiver<()>,
    }
    impl Scanner for Slow {
        fn scan(&self, file: &File) -> Result<Verdict, ScanFailure> {
            use std::io::{Read, Seek, SeekFrom};
            let mut data = Vec::new();
            let mut f = file;
            f.seek(SeekFrom::Start(0))?;
            f.read_to_end(&mut data)?;
            if data == b"slow" {
                let _ = self.release.recv_timeout(WAIT);
            }
            Ok(Verdict::Clean)
        }
        fn generation(&self) -> u64 {
            1
        }
    }
    let (release_tx, release) = unbounded();
    let s = setup(
        2,
        Duration::from_secs(2),
        Response::Allow,
        Arc::new(Slow { release }),
    );
    let (tx, rx) = unbounded();
    let flood: Vec<Pending> = (0..20)
        .map(|i| s.pool.submit_for(file_with(b"slow"), sink(i, &tx), 7))
        .collect();
    let other = s.pool.submit_for(file_with(b"fast"), sink(100, &tx), 8);
    let (id, r, c) = rx.recv_timeout(WAIT).unwrap();
    assert_eq!((id, r, c), (100, Response::Allow, Seen::Clean));
    assert!(other.is_answered());
    for _ in 0..20 {
        release_tx.send(()).unwrap();
    }
    drop(flood);
    s.shutdown();
}

/// A worker stuck in one scan (a read that never returns) is replaced: with one worker
/// blocked for good, a later scan is still answered with its verdict, not by the deadline
/// (review F7).
#[test]
fn a_stuck_worker_is_replaced() {
    let (scanner, started, release) = BlockingScanner::new();
    let s = setup(1, Duration::from_millis(30), Response::Allow, scanner);
    let (tx, rx) = unbounded();
    s.pool.submit(file_with(b"stuck"), sink(0, &tx));
    started.recv_timeout(WAIT).unwrap();
    assert_eq!(
        rx.recv_timeout(WAIT).unwrap(),
        (0, Response::Allow, Seen::Deadline)
    );
    let until = Instant::now() + WAIT;
    while get(&s.stats.workers_replaced) == 0 {
        assert!(Instant::now() < until, "the stuck worker was not replaced");
        std::thread::sleep(Duration::from_millis(5));
    }
    // The replacement takes the next job: it blocks too (same scanner) but it *started*,
    // which no job could while the only worker was stuck.
    s.pool.submit(file_with(b"next"), sink(1, &tx));
    started
        .recv_timeout(WAIT)
        .expect("a replacement worker took the job");
    release.send(()).unwrap();
    release.send(()).unwrap();
    assert_eq!(rx.recv_timeout(WAIT).unwrap().0, 1);
    s.shutdown();
}

// ---- coalescing concurrent scans of one file ----

/// Blocks every scan until released, then answers `verdict`.
struct HeldScanner {
    started: Sender<()>,
    release: Receiver<()>,
    scans: AtomicUsize,
    verdict: Verdict,
}

fn held(verdict: Verdict) -> (Arc<HeldScanner>, Receiver<()>, Sender<()>) {
    let (started, started_rx) = unbounded();
    let (release_tx, release) = unbounded();
    let s = Arc::new(HeldScanner {
        started,
        release,
        scans: AtomicUsize::new(0),
        verdict,
    });
    (s, started_rx, release_tx)
}

impl Scanner for HeldScanner {
    fn scan(&self, _: &File) -> Result<Verdict, ScanFailure> {
        self.scans.fetch_add(1, SeqCst);
        self.started.send(()).unwrap();
        self.release.recv_timeout(WAIT).expect("never released");
        Ok(self.verdict.clone())
    }

    fn generation(&self) -> u64 {
        1
    }
}

/// Polls `counter` until it reaches `n` (bounded by [`WAIT`]).
fn wait_for(counter: &std::sync::atomic::AtomicU64, n: u64) {
    let t = Instant::now();
    while get(counter) < n {
        assert!(t.elapsed() < WAIT, "counter stuck at {}", get(counter));
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Opens of one file while its scan runs join that scan: one scan, every open answered
/// with its verdict, each join counted.
fn joined_opens_get_the_verdict(verdict: Verdict, expect: Seen, response: Response) {
    let (scanner, started, release) = held(verdict);
    let s = setup(3, LONG, Response::Allow, scanner.clone());
    let (tx, rx) = unbounded();
    let f = Named::new();
    std::fs::write(f.path(), b"one file opened by three processes").unwrap();
    s.pool.submit(File::open(f.path()).unwrap(), sink(0, &tx));
    started.recv_timeout(WAIT).unwrap();
    for id in 1..3 {
        s.pool.submit(File::open(f.path()).unwrap(), sink(id, &tx));
    }
    // Both later opens were taken by the idle workers and joined the scan in progress.
    wait_for(&s.stats.coalesced, 2);
    assert!(rx.try_recv().is_err(), "answered before the scan ended");
    release.send(()).unwrap();
    let mut ids: Vec<usize> = (0..3)
        .map(|_| {
            let (id, r, seen) = rx.recv_timeout(WAIT).unwrap();
            assert_eq!((r, seen), (response, expect.clone()));
            id
        })
        .collect();
    ids.sort();
    assert_eq!(ids, vec![0, 1, 2]);
    assert_eq!(scanner.scans.load(SeqCst), 1);
    let stats = s.shutdown();
    assert_eq!(get(&stats.coalesced), 2);
}

#[test]
fn concurrent_opens_of_one_clean_file_share_one_scan() {
    joined_opens_get_the_verdict(Verdict::Clean, Seen::Clean, Response::Allow);
}

#[test]
fn concurrent_opens_of_one_infected_file_are_all_denied_after_one_scan() {
    joined_opens_get_the_verdict(
        Verdict::Infected("Fake.Bad".into()),
        Seen::Infected("Fake.Bad".into()),
        Response::Deny,
    );
}

#[test]
fn opens_that_joined_a_scan_of_a_file_written_meanwhile_are_scanned_again() {
    let (scanner, started, release) = held(Verdict::Clean);
    let s = setup(2, LONG, Response::Allow, scanner.clone());
    let (tx, rx) = unbounded();
    let f = Named::new();
    std::fs::write(f.path(), b"version one").unwrap();
    s.pool.submit(File::open(f.path()).unwrap(), sink(0, &tx));
    started.recv_timeout(WAIT).unwrap();
    s.pool.submit(File::open(f.path()).unwrap(), sink(1, &tx));
    wait_for(&s.stats.coalesced, 1);
    // Written during the scan (an explicit mtime: independent of timestamp granularity): the
    // scan's clean verdict no longer vouches for what the joined open will read.
    std::fs::write(f.path(), b"version two").unwrap();
    let t = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    File::options()
        .write(true)
        .open(f.path())
        .unwrap()
        .set_modified(t)
        .unwrap();
    release.send(()).unwrap();
    assert_eq!(
        rx.recv_timeout(WAIT).unwrap(),
        (0, Response::Allow, Seen::Clean)
    );
    started.recv_timeout(WAIT).unwrap();
    release.send(()).unwrap();
    assert_eq!(
        rx.recv_timeout(WAIT).unwrap(),
        (1, Response::Allow, Seen::Clean)
    );
    assert_eq!(scanner.scans.load(SeqCst), 2);
    s.shutdown();
}

/// The pool's load as health reports read it: one worker held in a scan, two jobs behind it.
#[test]
fn pool_load_counts_busy_workers_and_queued_jobs() {
    let (scanner, started, release) = BlockingScanner::new();
    let s = setup(1, LONG, Response::Allow, scanner.clone());
    let load = s.pool.load();
    assert_eq!((load.busy(), load.queued()), (0, 0));
    let (tx, rx) = unbounded();
    for i in 0..3 {
        s.pool
            .submit(file_with(format!("{i}").as_bytes()), sink(i, &tx));
    }
    started.recv_timeout(WAIT).unwrap();
    assert_eq!((load.busy(), load.queued()), (1, 2));
    for _ in 0..3 {
        release.send(()).unwrap();
        rx.recv_timeout(WAIT).unwrap();
    }
    // The last worker clears its busy mark just after answering.
    let until = Instant::now() + WAIT;
    while load.busy() != 0 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!((load.busy(), load.queued()), (0, 0));
    s.shutdown();
}

// ---- probes (the daemon's watchdog) ----

/// A probe is run by an idle pool at once, waits while the only worker is stuck in a scan
/// (no worker moves: the watchdog must withhold its ping), runs once the worker is free
/// again, and counts as nothing in the statistics.
#[test]
fn a_probe_runs_only_when_a_worker_takes_it() {
    let (scanner, started, release) = BlockingScanner::new();
    let s = setup(1, LONG, Response::Deny, scanner.clone());
    let (ran_tx, ran) = unbounded();
    let probe = |tx: &Sender<u32>, n: u32| {
        let tx = tx.clone();
        move || tx.send(n).unwrap()
    };
    s.pool.probe(probe(&ran_tx, 1));
    assert_eq!(ran.recv_timeout(WAIT), Ok(1), "an idle pool runs a probe");

    let (tx, rx) = unbounded();
    s.pool.submit(file_with(b"stuck"), sink(0, &tx));
    started.recv_timeout(WAIT).unwrap();
    s.pool.probe(probe(&ran_tx, 2));
    assert!(
        ran.recv_timeout(Duration::from_millis(300)).is_err(),
        "no worker free: the probe must not run"
    );
    release.send(()).unwrap();
    assert_eq!(rx.recv_timeout(WAIT).unwrap().1, Response::Allow);
    assert_eq!(
        ran.recv_timeout(WAIT),
        Ok(2),
        "runs once the worker is free"
    );

    let stats = s.shutdown();
    assert_eq!(get(&stats.clean), 1, "the one real scan");
    for c in [
        &stats.cache_hits,
        &stats.expired_in_queue,
        &stats.failures,
        &stats.deadline_expired,
        &stats.shutdown_answers,
        &stats.coalesced,
    ] {
        assert_eq!(get(c), 0);
    }
}

/// A file someone has open for writing (here a plain writer fd; a held shared mapping counts
/// the same, see moat_guard::writers) can change unseen: it is scanned on every open and
/// never enters the cache (review F3).
#[test]
fn a_file_open_for_writing_is_scanned_each_time_and_never_cached() {
    let scanner = Arc::new(ContentScanner::default());
    let s = setup(1, LONG, Response::Deny, scanner.clone());
    let (tx, rx) = unbounded();
    let f = Named::new();
    std::fs::write(f.path(), b"clean").unwrap();
    let writer = std::fs::OpenOptions::new()
        .write(true)
        .open(f.path())
        .unwrap();
    let ask = || {
        s.pool.submit(File::open(f.path()).unwrap(), sink(0, &tx));
        rx.recv_timeout(WAIT).unwrap().2
    };
    assert_eq!(
        [ask(), ask(), ask()],
        [Seen::Clean, Seen::Clean, Seen::Clean]
    );
    assert_eq!(scanner.calls.load(SeqCst), 3);
    assert_eq!(get(&s.stats.open_for_writing), 3);
    assert!(s.cache.is_empty());
    drop(writer);
}
