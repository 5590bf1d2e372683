//! Answering every permission event exactly once, under a deadline.
//!
//! The kernel puts no bound on how long an opener waits for a permission verdict, so moat
//! bounds every scan itself. Each event that needs a scan becomes a [`Pending`] token, shared
//! by two parties that race to answer it:
//!
//! - a [`WorkerPool`] worker, which scans the file and answers with the verdict;
//! - the [`DeadlineWatcher`], which answers with the configured on-error decision
//!   (`OnAccessDenyOnError`) when the token's deadline passes first.
//!
//! **Why a CAS.** The token holds one atomic flag; [`Pending::answer`] flips it with a
//! compare-and-swap and only the winner calls the [`Answer`] sink. That settles the race without
//! a lock, without the two parties knowing about each other, and makes a second answer (the
//! kernel would reject it, or worse, apply it to a recycled fd) impossible by construction.
//! The loser is a no-op: a scan that outlives its deadline keeps running to completion (threads
//! cannot be cancelled safely), its late result is dropped and counted in
//! [`Stats::late_results`]. A token dropped without any answer (a bug, a lost job) answers
//! itself with the on-error decision from `Drop`, so no opener ever hangs on moat.
//!
//! **Why (almost) no global lock.** Jobs reach workers through a fair queue (one FIFO per
//! opener's uid, served round-robin, at most half the workers per uid: a short mutex, never
//! held during a scan); deadlines reach the single watcher thread through a crossbeam
//! channel; the watcher owns its min-heap alone. A job answered while queued (at its
//! deadline) closes its file at once. Workers share only the immutable scanner and the sharded verdict cache. So N workers
//! scan truly in parallel and the reader thread never blocks on a worker.
//!
//! The [`Answer`] sink is where the kernel layer plugs in (write `FAN_ALLOW`/`FAN_DENY`, set
//! the ignore mark on a clean file, then log); this module knows nothing about fanotify.
//!
//! **Shutdown order** for the daemon: stop reading events, then [`DeadlineWatcher::shutdown`]
//! (answers every registered token with Allow), then [`WorkerPool::shutdown`] (answers queued
//! jobs with Allow without scanning them, waits for scans in progress).

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender, TryRecvError};

use crate::cache::{FileKey, VerdictCache};
use crate::scanner::{ScanFailure, Scanner, ScannerSlot, Verdict};

/// The answer given to the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Response {
    /// Let the access proceed.
    Allow,
    /// Refuse the access (`EPERM`). In notify-only mode the sink reports instead.
    Deny,
}

/// Why a token was answered the way it was, for logging and counting by the sink.
#[derive(Debug, Clone, Copy)]
pub enum Cause<'a> {
    /// The scan finished in time with this verdict (clean and skipped allow, infected denies).
    Scanned(&'a Verdict),
    /// The file was in the verdict cache as clean.
    Cached,
    /// The scan failed; the on-error decision applies.
    Failed(&'a ScanFailure),
    /// The deadline passed first; the on-error decision applies.
    Deadline,
    /// The daemon is shutting down; everything is allowed.
    Shutdown,
    /// The token was dropped without an answer (should not happen); the on-error decision
    /// applies.
    Abandoned,
}

/// Delivers the one answer of a [`Pending`] token (implemented by the kernel layer; tests use
/// closures). Called at most once per token, from a worker or the deadline watcher thread.
pub trait Answer: Send + Sync {
    /// Delivers `response`, decided because of `cause`.
    fn answer(&self, response: Response, cause: Cause<'_>);
}

impl<F: Fn(Response, Cause<'_>) + Send + Sync> Answer for F {
    fn answer(&self, response: Response, cause: Cause<'_>) {
        self(response, cause)
    }
}

/// Told about every file a worker found clean and unchanged (scanned clean, or a verdict-cache
/// hit), after the answer was given: the kernel layer sets its in-kernel ignore mark here.
///
/// `key` is the file's [`FileKey`] from before the scan and `generation` the database it was
/// scanned with; the hook must re-check both after it acts (the file may have been written,
/// or the database replaced, meanwhile) and undo what it did if either changed.
pub trait CleanHook: Send + Sync {
    /// `file` (the worker's fd on it, offset unspecified) is clean as of `key`.
    fn clean(&self, file: &File, key: &FileKey, generation: u64);
}

/// Counters of the on-access flow. Plain relaxed atomics: read them for statistics only.
#[derive(Debug, Default)]
pub struct Stats {
    /// Answered Allow after a clean scan.
    pub clean: AtomicU64,
    /// Answered Allow because the scanner skipped the file (too large).
    pub skipped: AtomicU64,
    /// Answered Deny after a detection.
    pub infected: AtomicU64,
    /// Answered Allow from the verdict cache.
    pub cache_hits: AtomicU64,
    /// Answered with the on-error decision after a scan failure (panics included).
    pub failures: AtomicU64,
    /// Scanner panics caught (also counted in `failures` when they answered).
    pub panics: AtomicU64,
    /// Answered with the on-error decision at the deadline.
    pub deadline_expired: AtomicU64,
    /// Scan results that arrived after the token was answered, and were ignored.
    pub late_results: AtomicU64,
    /// Jobs already answered (deadline) when a worker took them: not scanned.
    pub expired_in_queue: AtomicU64,
    /// Answered Allow at shutdown.
    pub shutdown_answers: AtomicU64,
    /// Scans retried after a failure (`OnAccessRetryAttempts`).
    pub retries: AtomicU64,
    /// Answered Deny from the infected entries of the verdict cache (also in `infected`).
    pub infected_cache_hits: AtomicU64,
    /// Workers stuck in one scan for twice the deadline, replaced by new ones.
    pub workers_replaced: AtomicU64,
    /// Clean verdicts not cached because the scanner said so ([`Scanner::caches_clean`]: a
    /// clamd pool whose servers disagree on, or do not tell, their database).
    pub clean_not_cached: AtomicU64,
    /// Files scanned while someone had them open for writing (or whose writers could not
    /// be told): neither answered from the verdict cache nor added to it.
    pub open_for_writing: AtomicU64,
    /// Panics of the deadline watcher's loop (each logged and restarted).
    pub watcher_restarts: AtomicU64,
    /// Jobs that joined a scan of the same file (same [`FileKey`], same database) already in
    /// progress instead of scanning it again; each is also counted under the outcome it was
    /// answered with.
    pub coalesced: AtomicU64,
}

impl Stats {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Relaxed)
    }
}

struct Inner {
    answered: AtomicBool,
    deadline: Instant,
    on_error: Response,
    sink: Box<dyn Answer>,
    /// The file to scan, while queued: released the moment the token is answered (by the
    /// deadline watcher too), so jobs answered while queued hold no descriptor (review F7;
    /// out of descriptors, the kernel denies every open).
    file: std::sync::Mutex<Option<Arc<File>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if !*self.answered.get_mut() {
            self.sink.answer(self.on_error, Cause::Abandoned);
        }
    }
}

/// One event awaiting its answer, shared (cheap `Clone`) by the worker and the deadline
/// watcher. Answered exactly once; see the module docs.
#[derive(Clone)]
pub struct Pending(Arc<Inner>);

impl Pending {
    /// A token answered through `sink`, due at `deadline`, when the on-error decision
    /// `on_error` applies.
    pub fn new(sink: impl Answer + 'static, deadline: Instant, on_error: Response) -> Pending {
        Pending(Arc::new(Inner {
            answered: AtomicBool::new(false),
            deadline,
            on_error,
            sink: Box::new(sink),
            file: std::sync::Mutex::new(None),
        }))
    }

    /// Hands the token the file to scan (held until the answer).
    pub fn attach(&self, file: File) {
        *self.0.file.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(file));
    }

    /// The file to scan, unless the token was answered (then the file is already closed).
    pub fn file(&self) -> Option<Arc<File>> {
        self.0
            .file
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether the token still holds its file (tests: a descriptor is released at once).
    pub fn holds_file(&self) -> bool {
        self.0
            .file
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// When the deadline watcher answers if nobody did.
    pub fn deadline(&self) -> Instant {
        self.0.deadline
    }

    /// The decision applied on errors and at the deadline.
    pub fn on_error(&self) -> Response {
        self.0.on_error
    }

    /// Whether the token has been answered.
    pub fn is_answered(&self) -> bool {
        self.0.answered.load(Acquire)
    }

    /// Answers, if nobody has yet: returns whether this call delivered the answer. Exactly
    /// one call per token ever returns `true`.
    pub fn answer(&self, response: Response, cause: Cause<'_>) -> bool {
        let won = self
            .0
            .answered
            .compare_exchange(false, true, AcqRel, Acquire)
            .is_ok();
        if won {
            self.0.sink.answer(response, cause);
            // Released after answering (the answer comes first); a worker scanning it keeps
            // its own reference until done.
            drop(self.0.file.lock().unwrap_or_else(|e| e.into_inner()).take());
        }
        won
    }

    /// Answers with the on-error decision for `cause`.
    pub fn answer_on_error(&self, cause: Cause<'_>) -> bool {
        self.answer(self.0.on_error, cause)
    }
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("deadline", &self.0.deadline)
            .field("answered", &self.is_answered())
            .finish()
    }
}

/// A heap entry ordered so that `BinaryHeap` (a max-heap) pops the earliest deadline.
struct Due(Pending);

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.0.deadline() == other.0.deadline()
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Self) -> Ordering {
        other.0.deadline().cmp(&self.0.deadline())
    }
}

enum Msg {
    Watch(Pending),
    Shutdown,
}

/// When the watcher thread wakes up by itself next, so that a registration wakes it only
/// when its deadline comes sooner than that.
///
/// Why: the watcher used to block in the channel's `recv`, so every registration (one per
/// scanned access) paid a futex wake-up of the watcher on the reader's critical path, only
/// for it to note a deadline seconds away. Now it sleeps with `park_timeout` until its
/// earliest deadline and collects new tokens then; since tokens normally all get the same
/// timeout, a new one is never due sooner, and nobody is woken. The two sides publish
/// (the queue, `wake_at`) and then check the other's with a `SeqCst` fence between, so at
/// least one of them sees the other: no token is ever missed.
struct Alarm {
    base: Instant,
    /// Nanoseconds after `base` of the watcher's next timed wake-up; `u64::MAX` while it
    /// sleeps with no deadline at all.
    wake_at: AtomicU64,
    thread: std::sync::OnceLock<std::thread::Thread>,
}

impl Alarm {
    fn nanos(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.base)
            .as_nanos()
            .min(u64::MAX as u128 - 1) as u64
    }

    fn wake(&self) {
        if let Some(t) = self.thread.get() {
            t.unpark();
        }
    }
}

/// Registers tokens with a [`DeadlineWatcher`]. Cheap to clone; no lock.
#[derive(Clone)]
pub struct DeadlineHandle {
    tx: Sender<Msg>,
    stats: Arc<Stats>,
    alarm: Arc<Alarm>,
}

impl DeadlineHandle {
    /// Has `pending` answered with its on-error decision at its deadline, unless answered
    /// before. After the watcher has shut down, answers it at once with Allow.
    pub fn watch(&self, pending: Pending) {
        let due = self.alarm.nanos(pending.deadline());
        if let Err(e) = self.tx.send(Msg::Watch(pending)) {
            if let Msg::Watch(p) = e.into_inner() {
                if p.answer(Response::Allow, Cause::Shutdown) {
                    Stats::bump(&self.stats.shutdown_answers);
                }
            }
            return;
        }
        std::sync::atomic::fence(SeqCst);
        if due < self.alarm.wake_at.load(SeqCst) {
            self.alarm.wake();
        }
    }

    /// The counters shared with the watcher.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }
}

/// The thread that answers tokens whose deadline passed. Keeps a min-heap of deadlines and
/// sleeps until the earliest one or the next registration.
pub struct DeadlineWatcher {
    handle: DeadlineHandle,
    thread: Option<JoinHandle<u64>>,
}

impl DeadlineWatcher {
    /// Starts the watcher thread, counting into `stats`.
    pub fn spawn(stats: Arc<Stats>) -> io::Result<DeadlineWatcher> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let thread_stats = Arc::clone(&stats);
        let alarm = Arc::new(Alarm {
            base: Instant::now(),
            wake_at: AtomicU64::new(0),
            thread: std::sync::OnceLock::new(),
        });
        let thread_alarm = Arc::clone(&alarm);
        let thread = std::thread::Builder::new()
            .name("moat-deadline".into())
            .spawn(move || supervised_watch(rx, &thread_stats, &thread_alarm))?;
        let _ = alarm.thread.set(thread.thread().clone());
        Ok(DeadlineWatcher {
            handle: DeadlineHandle { tx, stats, alarm },
            thread: Some(thread),
        })
    }

    /// A handle to register tokens.
    pub fn handle(&self) -> DeadlineHandle {
        self.handle.clone()
    }

    /// Stops the watcher: every token it holds that is not answered yet is answered Allow
    /// (cause [`Cause::Shutdown`]). Returns how many were. Later [`DeadlineHandle::watch`]
    /// calls answer Allow at once.
    pub fn shutdown(mut self) -> u64 {
        self.stop()
    }

    fn stop(&mut self) -> u64 {
        let Some(thread) = self.thread.take() else {
            return 0;
        };
        let _ = self.handle.tx.send(Msg::Shutdown);
        self.handle.alarm.wake();
        thread.join().unwrap_or(0)
    }
}

impl Drop for DeadlineWatcher {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Fault injection for the supervision test: `MOAT_TEST_FAULT=deadline-panic` makes the
/// watcher panic once, while it holds a token.
pub const FAULT_ENV: &str = "MOAT_TEST_FAULT";

/// The watcher's loop, restarted after a panic (review F12): a dead watcher would leave every
/// later token without a deadline (its registration would fail and allow at once), so a
/// panic is logged as an error, counted ([`Stats::watcher_restarts`]) and the loop runs
/// again on the same queue and the same heap: no registered token loses its deadline.
fn supervised_watch(rx: Receiver<Msg>, stats: &Stats, alarm: &Alarm) -> u64 {
    let mut heap: BinaryHeap<Due> = BinaryHeap::new();
    let mut fault = std::env::var_os(FAULT_ENV).is_some_and(|v| v == "deadline-panic");
    loop {
        let run = catch_unwind(AssertUnwindSafe(|| {
            watch_loop(&rx, stats, alarm, &mut heap, &mut fault)
        }));
        match run {
            Ok(answered) => return answered,
            Err(p) => {
                Stats::bump(&stats.watcher_restarts);
                let why = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(panic = %why, tokens = heap.len(),
                    "the deadline watcher panicked: restarted with every token it held");
            }
        }
    }
}

fn watch_loop(
    rx: &Receiver<Msg>,
    stats: &Stats,
    alarm: &Alarm,
    heap: &mut BinaryHeap<Due>,
    fault: &mut bool,
) -> u64 {
    // Answered tokens stay in the heap until their deadline; prune them when it grows, so
    // memory follows the number of live tokens, not the event rate times the deadline.
    let mut prune_at = 1024;
    'run: loop {
        loop {
            match rx.try_recv() {
                Ok(Msg::Watch(p)) => {
                    if !p.is_answered() {
                        heap.push(Due(p));
                    }
                    if heap.len() >= prune_at {
                        heap.retain(|d| !d.0.is_answered());
                        prune_at = (heap.len() * 2).max(1024);
                    }
                }
                Ok(Msg::Shutdown) | Err(TryRecvError::Disconnected) => break 'run,
                Err(TryRecvError::Empty) => break,
            }
        }
        if *fault && !heap.is_empty() {
            *fault = false;
            panic!("fault injected by {FAULT_ENV}=deadline-panic");
        }
        let now = Instant::now();
        while heap.peek().is_some_and(|d| d.0.deadline() <= now) {
            let Due(p) = heap.pop().expect("peeked");
            // A panicking sink must not take the watcher down (the token is answered: the
            // CAS flipped before the sink ran).
            let answered = catch_unwind(AssertUnwindSafe(|| p.answer_on_error(Cause::Deadline)));
            if answered.unwrap_or(true) {
                Stats::bump(&stats.deadline_expired);
            }
        }
        let next = heap.peek().map(|d| d.0.deadline());
        alarm
            .wake_at
            .store(next.map_or(u64::MAX, |t| alarm.nanos(t)), SeqCst);
        std::sync::atomic::fence(SeqCst);
        if !rx.is_empty() {
            continue;
        }
        match next {
            Some(t) => std::thread::park_timeout(t.saturating_duration_since(Instant::now())),
            None => std::thread::park(),
        }
    }
    let mut answered = 0;
    let mut finish = |p: Pending| {
        if p.answer(Response::Allow, Cause::Shutdown) {
            Stats::bump(&stats.shutdown_answers);
            answered += 1;
        }
    };
    std::mem::take(heap).into_iter().for_each(|d| finish(d.0));
    while let Ok(msg) = rx.try_recv() {
        if let Msg::Watch(p) = msg {
            finish(p);
        }
    }
    answered
}

/// Settings of a [`WorkerPool`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConfig {
    /// Worker threads (`OnAccessMaxThreads`); at least 1 is started.
    pub threads: usize,
    /// Time allowed per scan, from submission (queueing included).
    pub deadline: Duration,
    /// The decision on scan errors and at the deadline (`OnAccessDenyOnError`).
    pub on_error: Response,
    /// Files changed less than this long ago are not cached as clean (see
    /// [`FileKey::is_settled`]); [`PoolConfig::DEFAULT_SETTLE`] is a safe choice. Not applied
    /// on filesystems with multigrain timestamps ([`FileKey::settle_window`]).
    pub settle: Duration,
    /// Scans retried after a failure (`OnAccessRetryAttempts`), from the file's start, while
    /// the deadline has not answered yet.
    pub retries: u32,
}

impl PoolConfig {
    /// Covers coarse timestamp clocks up to FAT's 2-second granularity.
    pub const DEFAULT_SETTLE: Duration = Duration::from_secs(2);
}

/// How long an idle worker polls for the next job before it parks.
const WORKER_SPIN: Duration = Duration::from_micros(200);

struct Job {
    pending: Pending,
    /// Whose access it is (the opener's uid; [`NO_OWNER`] when unknown): the queue is fair
    /// between owners.
    owner: u32,
    /// A no-op job of [`WorkerPool::probe`]: run by the worker instead of a scan.
    probe: Option<Box<dyn FnOnce() + Send>>,
}

/// The owner of [`WorkerPool::probe`] jobs: a queue of their own, served in turn with the
/// others.
const PROBE_OWNER: u32 = u32::MAX - 1;

/// The owner of jobs whose opener's uid is unknown (one more queue of its own).
pub const NO_OWNER: u32 = u32::MAX;

/// The jobs waiting, one FIFO per owner (uid), served round-robin, with at most `cap` jobs
/// of one owner running at once (`ceil(threads / 2)`): one user's flood of slow scans can
/// neither hold every worker nor queue ahead of another user's opens (review F6).
/// Hand-written: crossbeam's channels are FIFO only, and the fairness is the point here.
struct FairQueue {
    state: std::sync::Mutex<QueueState>,
    ready: std::sync::Condvar,
}

#[derive(Default)]
struct QueueState {
    queues: std::collections::HashMap<u32, std::collections::VecDeque<Job>>,
    /// Owners with queued jobs, in serving order.
    ring: std::collections::VecDeque<u32>,
    running: std::collections::HashMap<u32, usize>,
    cap: usize,
    closed: bool,
    /// Jobs in `queues`.
    queued: usize,
    /// Workers polling the queue ([`Worker::next_job`]) that will take a job without being
    /// woken: a push wakes a sleeping worker only for the jobs they cannot take.
    spinners: usize,
}

impl QueueState {
    /// The next job, round-robin over owners under their cap.
    fn take(&mut self) -> Option<Job> {
        for _ in 0..self.ring.len() {
            let owner = self.ring.pop_front()?;
            let running = self.running.get(&owner).copied().unwrap_or(0);
            let queue = self.queues.get_mut(&owner);
            let Some(queue) = queue.filter(|q| !q.is_empty()) else {
                self.queues.remove(&owner);
                continue;
            };
            // Jobs of unknown owners (the opener vanished before its uid was read) have no
            // fairness information to apply.
            if owner != NO_OWNER && running >= self.cap {
                self.ring.push_back(owner);
                continue;
            }
            let job = queue.pop_front();
            if queue.is_empty() {
                self.queues.remove(&owner);
            } else {
                self.ring.push_back(owner);
            }
            *self.running.entry(owner).or_insert(0) += 1;
            self.queued -= usize::from(job.is_some());
            return job;
        }
        None
    }

    fn is_drained(&self) -> bool {
        self.queues.values().all(|q| q.is_empty())
    }
}

impl FairQueue {
    fn new(cap: usize) -> FairQueue {
        FairQueue {
            state: std::sync::Mutex::new(QueueState {
                cap: cap.max(1),
                ..QueueState::default()
            }),
            ready: std::sync::Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `job`; gives it back when the queue is closed.
    fn push(&self, job: Job) -> Result<(), Job> {
        let mut st = self.lock();
        if st.closed {
            return Err(job);
        }
        let owner = job.owner;
        let q = st.queues.entry(owner).or_default();
        let new = q.is_empty();
        q.push_back(job);
        if new && !st.ring.contains(&owner) {
            st.ring.push_back(owner);
        }
        st.queued += 1;
        // Why not always: a futex wake-up of a sleeping worker that a polling one beats to
        // the job costs two context switches for nothing (measured: most of the daemon's
        // own time per event on a 2-vCPU VM was spent switching).
        let wake = st.queued > st.spinners;
        drop(st);
        if wake {
            self.ready.notify_one();
        }
        Ok(())
    }

    /// Polls for a job for up to `spin` (yielding the CPU between tries; counted in
    /// `spinners` meanwhile, so pushes need not wake a sleeping worker for it), then waits.
    fn take_polling(&self, spin: Duration) -> Option<Job> {
        let until = Instant::now() + spin;
        let mut st = self.lock();
        st.spinners += 1;
        loop {
            let job = st.take();
            if job.is_some() || st.closed || Instant::now() >= until {
                st.spinners -= 1;
                drop(st);
                return job.or_else(|| self.take());
            }
            drop(st);
            std::thread::yield_now();
            st = self.lock();
        }
    }

    /// The next job, waiting for one; `None` once closed and drained.
    fn take(&self) -> Option<Job> {
        let mut st = self.lock();
        loop {
            if let Some(job) = st.take() {
                return Some(job);
            }
            if st.closed && st.is_drained() {
                return None;
            }
            st = self.ready.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// A job of `owner` finished: another of its jobs may run.
    fn done(&self, owner: u32) {
        let mut st = self.lock();
        let mut was_capped = false;
        let cap = st.cap;
        if let Some(n) = st.running.get_mut(&owner) {
            was_capped = *n >= cap;
            *n = n.saturating_sub(1);
            if *n == 0 {
                st.running.remove(&owner);
            }
        }
        // Only a job held back by its owner's cap can have become runnable; at shutdown,
        // sleeping workers must see the queue drained. Waking every worker after every job
        // (as before) cost each of them two context switches per event.
        let held_back = was_capped && st.queues.get(&owner).is_some_and(|q| !q.is_empty());
        let closed = st.closed;
        drop(st);
        if closed {
            self.ready.notify_all();
        } else if held_back {
            self.ready.notify_one();
        }
    }

    fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }
}

/// Scans in progress, by file version and database generation. Why: a file opened by several
/// processes at once (a program or library at the start of a parallel build, a header) would
/// otherwise be scanned once per open, each scan taking a worker and a share of the CPU for
/// the same answer, and queueing every other file behind them. A job whose file is being
/// scanned joins that scan and is answered with its verdict.
///
/// Only files whose key is settled (see [`FileKey::is_settled`]) join: the same rule as the
/// verdict cache, so a joined job is answered exactly when a cached verdict could have
/// answered it. A lock held for a map operation only, by at most `OnAccessMaxThreads`
/// workers.
#[derive(Default)]
struct InFlight(std::sync::Mutex<std::collections::HashMap<(FileKey, u64), Vec<Job>>>);

impl InFlight {
    fn map(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<(FileKey, u64), Vec<Job>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hands `job` to the scan of `key` in progress (`None`), or registers the caller as the
    /// one scanning it (`Some(job)` back).
    fn join_or_lead(&self, key: (FileKey, u64), job: Job) -> Option<Job> {
        let mut map = self.map();
        match map.get_mut(&key) {
            Some(waiting) => {
                waiting.push(job);
                None
            }
            None => {
                map.insert(key, Vec::new());
                Some(job)
            }
        }
    }

    /// Ends the scan of `key`: the jobs that joined it.
    fn finish(&self, key: &(FileKey, u64)) -> Vec<Job> {
        self.map().remove(key).unwrap_or_default()
    }
}

/// N scanning threads fed through a channel. See the module docs.
pub struct WorkerPool {
    queue: Arc<FairQueue>,
    scanner: Arc<ScannerSlot>,
    workers: Vec<JoinHandle<()>>,
    crew: Arc<Crew>,
    monitor: Option<JoinHandle<()>>,
    stopping: Arc<AtomicBool>,
    deadlines: DeadlineHandle,
    config: PoolConfig,
}

impl WorkerPool {
    /// Starts `config.threads` workers scanning with `scanner`, consulting and filling `cache`,
    /// with deadlines watched through `deadlines` (whose [`Stats`] they count into).
    pub fn new(
        config: PoolConfig,
        scanner: Arc<dyn Scanner>,
        cache: Arc<VerdictCache>,
        deadlines: DeadlineHandle,
    ) -> io::Result<WorkerPool> {
        let slot = Arc::new(ScannerSlot::new(scanner));
        Self::with_hook(config, slot, cache, deadlines, None)
    }

    /// [`new`](Self::new) with the scanner in a [`ScannerSlot`] the caller shares (to reload
    /// it, or to check generations from a hook) and a [`CleanHook`] told about every file
    /// found clean.
    pub fn with_hook(
        config: PoolConfig,
        scanner: Arc<ScannerSlot>,
        cache: Arc<VerdictCache>,
        deadlines: DeadlineHandle,
        hook: Option<Arc<dyn CleanHook>>,
    ) -> io::Result<WorkerPool> {
        let queue = Arc::new(FairQueue::new(config.threads.max(1).div_ceil(2)));
        let stopping = Arc::new(AtomicBool::new(false));
        let template = Worker {
            in_flight: Arc::new(InFlight::default()),
            settle: config.settle,
            retries: config.retries,
            queue: Arc::clone(&queue),
            scanner: Arc::clone(&scanner),
            cache: Arc::clone(&cache),
            hook: hook.clone(),
            stats: Arc::clone(deadlines.stats()),
            stopping: Arc::clone(&stopping),
            busy_since: Arc::new(AtomicU64::new(0)),
            retired: Arc::new(AtomicBool::new(false)),
            epoch: Instant::now(),
        };
        let crew = Arc::new(Crew {
            template,
            slots: std::sync::Mutex::new(Vec::new()),
            extra: std::sync::Mutex::new(Vec::new()),
            epoch: Instant::now(),
            spawned: AtomicU64::new(0),
        });
        let mut pool = WorkerPool {
            queue: Arc::clone(&queue),
            scanner: Arc::clone(&scanner),
            workers: Vec::new(),
            crew: Arc::clone(&crew),
            monitor: None,
            stopping: Arc::clone(&stopping),
            deadlines,
            config,
        };
        for _ in 0..config.threads.max(1) {
            pool.workers.push(crew.spawn()?);
        }
        let stuck_after = (config.deadline * 2).max(Duration::from_millis(50));
        let threads = config.threads.max(1);
        pool.monitor = Some(
            std::thread::Builder::new()
                .name("moat-scan-monitor".into())
                .spawn(move || crew.monitor(threads, stuck_after))?,
        );
        Ok(pool)
    }

    /// The scanner the workers use; [`ScannerSlot::replace`] it to reload the database.
    pub fn scanner(&self) -> &Arc<ScannerSlot> {
        &self.scanner
    }

    /// A view of the pool's load (queue depth, busy workers) for health reports. It does not
    /// keep the pool alive, so a daemon can still shut the pool down while it is held.
    pub fn load(&self) -> PoolLoad {
        PoolLoad {
            queue: Arc::clone(&self.queue),
            crew: Arc::clone(&self.crew),
        }
    }

    /// Queues a scan of `file`, answered through `sink` within the configured deadline.
    /// Never blocks. Returns the token (e.g. to inspect it in tests). The owner is unknown
    /// ([`NO_OWNER`]); see [`submit_for`](Self::submit_for).
    pub fn submit(&self, file: File, sink: impl Answer + 'static) -> Pending {
        self.submit_for(file, sink, NO_OWNER)
    }

    /// [`submit`](Self::submit) for an access by `owner` (the opener's uid): jobs are served
    /// round-robin between owners, each with at most half the workers at once.
    pub fn submit_for(&self, file: File, sink: impl Answer + 'static, owner: u32) -> Pending {
        let deadline = Instant::now() + self.config.deadline;
        let pending = Pending::new(sink, deadline, self.config.on_error);
        self.submit_pending_for(file, pending.clone(), owner);
        pending
    }

    /// Queues a scan of `file` for an existing token (registered with the deadline watcher
    /// first, so no token escapes the deadline).
    pub fn submit_pending(&self, file: File, pending: Pending) {
        self.submit_pending_for(file, pending, NO_OWNER)
    }

    fn submit_pending_for(&self, file: File, pending: Pending, owner: u32) {
        pending.attach(file);
        self.deadlines.watch(pending.clone());
        let job = Job {
            pending,
            owner,
            probe: None,
        };
        if let Err(job) = self.queue.push(job) {
            if job.pending.answer(Response::Allow, Cause::Shutdown) {
                Stats::bump(&self.deadlines.stats().shutdown_answers);
            }
        }
    }

    /// Queues a no-op job: a worker runs `done` when it takes it, in turn with the scans
    /// (round-robin between owners, like any access). Proves that the queue moves and a
    /// worker is alive (the daemon's systemd watchdog). Counted nowhere, never scanned,
    /// watched by no deadline; dropped unrun when the pool stops.
    pub fn probe(&self, done: impl FnOnce() + Send + 'static) {
        // A token for the job's shape only: nothing ever answers it.
        let pending = Pending::new(
            |_: Response, _: Cause<'_>| {},
            Instant::now(),
            Response::Allow,
        );
        let _ = self.queue.push(Job {
            pending,
            owner: PROBE_OWNER,
            probe: Some(Box::new(done)),
        });
    }

    /// Stops the pool: queued jobs are answered Allow without a scan (unless already
    /// answered), scans in progress run to completion, and the threads are joined.
    pub fn shutdown(mut self) {
        self.stop();
    }

    /// Like [`shutdown`](Self::shutdown), but waits at most `limit` for scans in progress;
    /// workers still scanning then are left to finish on their own (their late results are
    /// dropped: every token they hold was answered by the deadline watcher's shutdown).
    /// Returns whether every worker had stopped. For a daemon that must exit promptly
    /// although one file takes long to scan.
    pub fn shutdown_within(mut self, limit: Duration) -> bool {
        self.stopping.store(true, Release);
        self.queue.close();
        if let Some(m) = self.monitor.take() {
            let _ = m.join();
        }
        self.workers.append(&mut self.crew.take_extra());
        let until = Instant::now() + limit;
        while self.workers.iter().any(|w| !w.is_finished()) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        let (done, busy): (Vec<_>, Vec<_>) = self.workers.drain(..).partition(|w| w.is_finished());
        for w in done {
            let _ = w.join();
        }
        busy.is_empty()
    }

    fn stop(&mut self) {
        self.stopping.store(true, Release);
        self.queue.close();
        if let Some(m) = self.monitor.take() {
            let _ = m.join();
        }
        self.workers.append(&mut self.crew.take_extra());
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The load of a [`WorkerPool`], read on demand (see [`WorkerPool::load`]).
#[derive(Clone)]
pub struct PoolLoad {
    queue: Arc<FairQueue>,
    crew: Arc<Crew>,
}

impl PoolLoad {
    /// Jobs queued, not yet taken by a worker.
    pub fn queued(&self) -> usize {
        self.queue.lock().queues.values().map(|q| q.len()).sum()
    }

    /// Workers scanning now (stuck ones that were replaced included).
    pub fn busy(&self) -> usize {
        let slots = self.crew.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots
            .iter()
            .filter(|(busy, _)| busy.load(Acquire) != 0)
            .count()
    }
}

impl std::fmt::Debug for PoolLoad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolLoad")
            .field("queued", &self.queued())
            .field("busy", &self.busy())
            .finish()
    }
}

/// The workers' common parts and their state, for replacing stuck ones: a worker whose
/// scan has run for twice the deadline (a FUSE or NFS read that never returns, review F7)
/// is retired (it exits once its scan returns, if ever) and a new one takes its place, up to
/// as many extra workers as the pool has. Its opener was answered by the deadline already.
struct Crew {
    template: Worker,
    /// Each worker's `busy_since` and `retired` flags.
    #[allow(clippy::type_complexity)]
    slots: std::sync::Mutex<Vec<(Arc<AtomicU64>, Arc<AtomicBool>)>>,
    /// Replacement threads, joined at shutdown with the first ones.
    extra: std::sync::Mutex<Vec<JoinHandle<()>>>,
    /// `busy_since` counts milliseconds from here (plus one: 0 means idle).
    epoch: Instant,
    spawned: AtomicU64,
}

impl Crew {
    fn spawn(&self) -> io::Result<JoinHandle<()>> {
        let mut w = self.template.clone();
        w.busy_since = Arc::new(AtomicU64::new(0));
        w.retired = Arc::new(AtomicBool::new(false));
        w.epoch = self.epoch;
        self.slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((Arc::clone(&w.busy_since), Arc::clone(&w.retired)));
        let i = self.spawned.fetch_add(1, Relaxed);
        std::thread::Builder::new()
            .name(format!("moat-scan-{i}"))
            .spawn(move || w.run())
    }

    fn take_extra(&self) -> Vec<JoinHandle<()>> {
        std::mem::take(&mut *self.extra.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Until the pool stops: retires workers stuck for `stuck_after` and starts others.
    fn monitor(&self, threads: usize, stuck_after: Duration) {
        let tick = (stuck_after / 2).min(Duration::from_millis(100));
        while !self.template.stopping.load(Acquire) {
            std::thread::sleep(tick);
            let now = self.epoch.elapsed().as_millis() as u64 + 1;
            let newly_stuck = {
                let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
                slots
                    .iter()
                    .filter(|(busy, retired)| {
                        let since = busy.load(Acquire);
                        let is_stuck = since != 0
                            && now.saturating_sub(since) > stuck_after.as_millis() as u64;
                        is_stuck && !retired.swap(true, AcqRel)
                    })
                    .count()
            };
            // Live workers, and retired ones still stuck in their scan (a retired worker
            // whose scan returned has exited: its slot is dropped).
            let (live, still_stuck) = {
                let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
                slots.retain(|(busy, r)| !r.load(Acquire) || busy.load(Acquire) != 0);
                let live = slots.iter().filter(|(_, r)| !r.load(Acquire)).count();
                (live, slots.len() - live)
            };
            // At most as many stuck threads as the pool has workers: past that, the
            // deadline answers for them.
            if still_stuck > threads {
                continue;
            }
            for _ in live..threads {
                if let Ok(h) = self.spawn() {
                    Stats::bump(&self.template.stats.workers_replaced);
                    let mut extra = self.extra.lock().unwrap_or_else(|e| e.into_inner());
                    extra.retain(|h| !h.is_finished());
                    extra.push(h);
                }
            }
            let _ = newly_stuck;
        }
    }
}

#[derive(Clone)]
struct Worker {
    /// When this worker's current job started (ms from `epoch`, plus one), 0 when idle.
    busy_since: Arc<AtomicU64>,
    /// Set by the monitor when the worker was stuck and replaced: exit after this job.
    retired: Arc<AtomicBool>,
    epoch: Instant,
    /// Scans in progress, shared by every worker of the pool (coalescing).
    in_flight: Arc<InFlight>,
    settle: Duration,
    retries: u32,
    queue: Arc<FairQueue>,
    scanner: Arc<ScannerSlot>,
    cache: Arc<VerdictCache>,
    hook: Option<Arc<dyn CleanHook>>,
    stats: Arc<Stats>,
    stopping: Arc<AtomicBool>,
}

/// A file's key and settle window, read once per job.
#[derive(Clone, Copy)]
struct FirstLook {
    key: FileKey,
    window: Duration,
}

enum Outcome {
    Cached,
    Scanned(Verdict),
}

/// What a job found, and whether its file may be remembered as clean: `(key before the scan,
/// generation)` when it was clean and unchanged.
struct Found {
    outcome: Outcome,
    clean_as_of: Option<(FileKey, u64)>,
}

impl Worker {
    /// The next job: polled for up to [`WORKER_SPIN`] before parking, since waking a parked
    /// thread costs more than a small file's scan on a VM, and jobs come in bursts.
    fn next_job(&self) -> Option<Job> {
        self.queue.take_polling(WORKER_SPIN)
    }

    fn run(self) {
        while let Some(job) = self.next_job() {
            let started = self.epoch.elapsed().as_millis() as u64 + 1;
            self.busy_since.store(started, Release);
            let owner = job.owner;
            self.run_job(job);
            self.busy_since.store(0, Release);
            // The job ran, or joined a scan in progress (it holds no worker while it waits
            // there): either way its owner may run another.
            self.queue.done(owner);
            if self.retired.load(Acquire) {
                return;
            }
        }
    }

    /// One job: answered at shutdown, dropped if answered while queued, handed to a scan of
    /// the same file in progress, or scanned (then the jobs that joined meanwhile are
    /// answered too).
    fn run_job(&self, mut job: Job) {
        if let Some(done) = job.probe.take() {
            if !self.stopping.load(Acquire) {
                done();
            }
            return;
        }
        // Answered while queued (the deadline): its file is already closed. Checked before
        // shutdown, so the count does not depend on whether the pool stops first.
        if job.pending.is_answered() {
            Stats::bump(&self.stats.expired_in_queue);
            return;
        }
        if self.stopping.load(Acquire) {
            if job.pending.answer(Response::Allow, Cause::Shutdown) {
                Stats::bump(&self.stats.shutdown_answers);
            }
            return;
        }
        let Some(file) = job.pending.file().filter(|_| !job.pending.is_answered()) else {
            Stats::bump(&self.stats.expired_in_queue);
            return;
        };
        let Some((job, key, look)) = self.lead_or_join(job, &file) else {
            Stats::bump(&self.stats.coalesced);
            return;
        };
        let found = catch_unwind(AssertUnwindSafe(|| self.process(&file, &job.pending, look)))
            .unwrap_or_else(|_| {
                Stats::bump(&self.stats.panics);
                Err(ScanFailure::Panicked)
            });
        let joined = key.map(|k| self.in_flight.finish(&k)).unwrap_or_default();
        let outcome = found.as_ref().map(|f| &f.outcome);
        // A panicking sink or hook must not take the worker down with it.
        let _ = catch_unwind(AssertUnwindSafe(|| self.deliver(&job.pending, outcome)));
        if let (
            Some(hook),
            Ok(Found {
                clean_as_of: Some((key, generation)),
                ..
            }),
        ) = (&self.hook, &found)
        {
            let _ = catch_unwind(AssertUnwindSafe(|| hook.clean(&file, key, *generation)));
        }
        // The verdict answers for the jobs that joined when it holds for the file version
        // they opened: a detection always, a clean verdict when the file was unchanged (and
        // settled) through the scan. Otherwise (a failure, a change) each is handled alone.
        let shared = match &found {
            Ok(f) => {
                matches!(f.outcome, Outcome::Scanned(Verdict::Infected(_)))
                    || f.clean_as_of.is_some()
            }
            Err(_) => false,
        };
        for j in joined {
            if shared {
                let _ = catch_unwind(AssertUnwindSafe(|| self.deliver(&j.pending, outcome)));
            } else {
                self.run_job(j);
            }
        }
    }

    /// `Some((job, key, look))` when this worker is to process the job (`key`: the in-flight
    /// entry it registered, to finish afterwards; `look`: the file's key and settle window as
    /// read here, which [`process`](Self::process) starts from instead of reading them
    /// again), `None` when the job joined a scan in progress. Files whose key cannot be read
    /// or is not settled are processed alone.
    #[allow(clippy::type_complexity)]
    fn lead_or_join(
        &self,
        job: Job,
        file: &File,
    ) -> Option<(Job, Option<(FileKey, u64)>, Option<FirstLook>)> {
        let Ok(key) = FileKey::of(file) else {
            return Some((job, None, None));
        };
        let window = FileKey::settle_window(file, self.settle);
        let look = Some(FirstLook { key, window });
        if !key.is_settled(SystemTime::now(), window) {
            return Some((job, None, look));
        }
        let k = (key, self.scanner.load().generation());
        self.in_flight
            .join_or_lead(k, job)
            .map(|job| (job, Some(k), look))
    }

    /// Key, cache, scan, cache: everything but answering. One snapshot of the scanner serves
    /// for the generation and the scan, so a reload meanwhile cannot mislabel the verdict.
    fn process(
        &self,
        file: &File,
        pending: &Pending,
        look: Option<FirstLook>,
    ) -> Result<Found, ScanFailure> {
        let scanner = self.scanner.load();
        let generation = scanner.generation();
        // The key read just before (lead_or_join) is as good as one read now: every check
        // below (write epoch, writers, cache, scan) still comes after it.
        let (before, window) = match look {
            Some(l) => (l.key, l.window),
            None => (
                FileKey::of(file)?,
                FileKey::settle_window(file, self.settle),
            ),
        };
        // Someone has the file open for writing (a held shared mapping included; review F3):
        // it can change unseen, so no cached verdict answers for it and none is recorded.
        // Unknown (no leases there) counts as written: when unsure, scan.
        let epoch = self.cache.write_epoch(before.inode());
        if crate::writers::open_for_writing(file) != Some(false) {
            Stats::bump(&self.stats.open_for_writing);
            let verdict = self.scan_with_retries(&*scanner, file, pending)?;
            return Ok(Found {
                outcome: Outcome::Scanned(verdict),
                clean_as_of: None,
            });
        }
        if self.cache.contains(&before, generation) {
            return Ok(Found {
                outcome: Outcome::Cached,
                clean_as_of: Some((before, generation)),
            });
        }
        if let Some(name) = self.cache.infected(&before, generation) {
            Stats::bump(&self.stats.infected_cache_hits);
            return Ok(Found {
                outcome: Outcome::Scanned(Verdict::Infected(name)),
                clean_as_of: None,
            });
        }
        let verdict = self.scan_with_retries(&*scanner, file, pending)?;
        // The same file, so the same filesystem: its settle window as read before.
        let unchanged =
            |after: FileKey| after == before && after.is_settled(SystemTime::now(), window);
        // Clean, unchanged, still nobody writing, and no close-after-write meanwhile (a write
        // to an already dirty mapped page changes no key field; review F4).
        let cacheable = scanner.caches_clean(generation);
        if verdict == Verdict::Clean && !cacheable {
            Stats::bump(&self.stats.clean_not_cached);
        }
        let clean = verdict == Verdict::Clean
            && cacheable
            && FileKey::of(file).is_ok_and(unchanged)
            && crate::writers::open_for_writing(file) == Some(false)
            && self.cache.insert_clean_unwritten(before, generation, epoch);
        // A detection is remembered too (unchanged file, same database), so a flood of opens
        // of one costly infected file (an archive bomb) is not rescanned each time (F6).
        if let Verdict::Infected(name) = &verdict {
            if FileKey::of(file).is_ok_and(|after| after == before) {
                self.cache
                    .insert_infected(before, generation, Arc::clone(name));
            }
        }
        Ok(Found {
            outcome: Outcome::Scanned(verdict),
            clean_as_of: clean.then_some((before, generation)),
        })
    }

    /// Scans, and after a failure scans again from the start, up to `retries` more times
    /// while nobody has answered yet (a retry past the deadline would be wasted).
    fn scan_with_retries(
        &self,
        scanner: &dyn Scanner,
        file: &File,
        pending: &Pending,
    ) -> Result<Verdict, ScanFailure> {
        let mut left = self.retries;
        loop {
            match scanner.scan(file) {
                Err(_) if left > 0 && !pending.is_answered() => {
                    left -= 1;
                    Stats::bump(&self.stats.retries);
                    std::io::Seek::seek(&mut &*file, std::io::SeekFrom::Start(0))?;
                }
                result => return result,
            }
        }
    }

    fn deliver(&self, pending: &Pending, outcome: Result<&Outcome, &ScanFailure>) {
        let (response, cause, counter) = match outcome {
            Ok(Outcome::Cached) => (Response::Allow, Cause::Cached, &self.stats.cache_hits),
            Ok(Outcome::Scanned(v)) => match v {
                Verdict::Clean => (Response::Allow, Cause::Scanned(v), &self.stats.clean),
                Verdict::Skipped(_) => (Response::Allow, Cause::Scanned(v), &self.stats.skipped),
                Verdict::Infected(_) => (Response::Deny, Cause::Scanned(v), &self.stats.infected),
            },
            Err(e) => (pending.on_error(), Cause::Failed(e), &self.stats.failures),
        };
        if pending.answer(response, cause) {
            Stats::bump(counter);
        } else {
            Stats::bump(&self.stats.late_results);
        }
    }
}
