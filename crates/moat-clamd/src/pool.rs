//! The scan worker pool: at most `MaxThreads` workers, started on demand and leaving after
//! `IdleTimeout` idle, fed by a queue of at most `MaxQueue` jobs.
//!
//! Hand-written rather than a general thread-pool crate because STATS reports clamd's view of
//! it (live and idle threads, queued items with their wait, the running task of each worker)
//! and workers must come and go with IdleTimeout as clamd's do.
//!
//! Workers run at a lower CPU priority than connection threads ([`crate::prio`]), so that
//! reading commands and answering PING never wait behind scans for a core. A second,
//! one-worker pool at normal priority ([`Pool::small_lane`]) takes small requests when every
//! worker of the main pool is busy, so that they do not queue behind large files.
//!
//! Only connection threads submit, and a full queue blocks only the connection that submits:
//! other connections keep being read and answered (clamd's single receive thread blocks for
//! every client instead).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

/// A unit of work: one scan command (or one file of a MULTISCAN).
pub struct Job {
    /// The command name shown by STATS (`SCAN`, `INSTREAM`...).
    pub command: &'static str,
    /// The file shown by STATS (`instream(local)`, the path...).
    pub label: String,
    /// The work.
    pub run: Box<dyn FnOnce() + Send>,
}

struct Queued {
    job: Job,
    since: Instant,
}

/// A task in progress, for STATS.
#[derive(Debug, Clone)]
pub struct Task {
    /// Command name.
    pub command: &'static str,
    /// What it works on.
    pub label: String,
    /// When it started (or was queued).
    pub since: Instant,
}

/// A snapshot of the pool for STATS.
#[derive(Debug, Clone)]
pub struct PoolStats {
    /// Threads alive.
    pub live: usize,
    /// Threads waiting for work.
    pub idle: usize,
    /// MaxThreads.
    pub max: usize,
    /// IdleTimeout in seconds.
    pub idle_timeout: u64,
    /// Jobs waiting, with when they were queued.
    pub queued: Vec<Task>,
    /// Jobs running.
    pub running: Vec<Task>,
}

struct Shared {
    max: usize,
    /// Thread name prefix.
    name: &'static str,
    /// Whether workers run at the lowered background priority.
    lowered: bool,
    idle_timeout: Duration,
    live: AtomicUsize,
    idle: AtomicUsize,
    receiver: Receiver<Queued>,
    /// Worker slots: `None` free, `Some(None)` a live idle worker, `Some(Some(task))` busy.
    slots: Mutex<Vec<Option<Option<Task>>>>,
    /// Queued jobs, mirrored for STATS.
    queued: Mutex<Vec<Task>>,
    /// Held to start a worker and queue a job, and by a worker to leave: a worker leaves only
    /// when the queue is empty under this lock, so a job queued under it always finds one.
    spawn_lock: Mutex<()>,
}

/// The worker pool. Cheap to clone.
#[derive(Clone)]
pub struct Pool {
    sender: Sender<Queued>,
    shared: Arc<Shared>,
}

impl Pool {
    /// A pool of at most `max_threads` workers (at least 1) and `max_queue` waiting jobs, its
    /// workers at the background priority.
    pub fn new(max_threads: usize, max_queue: usize, idle_timeout: Duration) -> Pool {
        Pool::build(
            max_threads,
            max_queue,
            idle_timeout,
            "moat-serve-worker",
            true,
        )
    }

    /// The small-request lane: one worker at the connections' priority.
    pub fn small_lane(max_queue: usize, idle_timeout: Duration) -> Pool {
        Pool::build(1, max_queue, idle_timeout, "moat-serve-small", false)
    }

    fn build(
        max_threads: usize,
        max_queue: usize,
        idle_timeout: Duration,
        name: &'static str,
        lowered: bool,
    ) -> Pool {
        let (sender, receiver) = crossbeam_channel::bounded(max_queue.max(1));
        let max = max_threads.max(1);
        Pool {
            sender,
            shared: Arc::new(Shared {
                max,
                name,
                lowered,
                idle_timeout,
                live: AtomicUsize::new(0),
                idle: AtomicUsize::new(0),
                receiver,
                slots: Mutex::new(vec![None; max]),
                queued: Mutex::new(Vec::new()),
                spawn_lock: Mutex::new(()),
            }),
        }
    }

    /// MaxThreads.
    pub fn max_threads(&self) -> usize {
        self.shared.max
    }

    /// Whether a job submitted now would start at once (a worker idle, or one more may start).
    /// A hint: another connection may take that worker first.
    pub fn has_room(&self) -> bool {
        let s = &self.shared;
        s.idle.load(Ordering::SeqCst) > self.sender.len() || s.live.load(Ordering::SeqCst) < s.max
    }

    /// Queues `job`, starting a worker if none is idle and fewer than MaxThreads live. Blocks
    /// the caller (one connection) while the queue is full.
    pub fn submit(&self, job: Job) {
        let task = Task {
            command: job.command,
            label: job.label.clone(),
            since: Instant::now(),
        };
        lock(&self.shared.queued).push(task);
        let queued = Queued {
            job,
            since: Instant::now(),
        };
        let full = {
            let _guard = lock(&self.shared.spawn_lock);
            self.ensure_worker();
            match self.sender.try_send(queued) {
                Ok(()) => None,
                Err(crossbeam_channel::TrySendError::Full(q)) => Some(q),
                Err(crossbeam_channel::TrySendError::Disconnected(_)) => {
                    unreachable!("the pool holds its own receiver")
                }
            }
        };
        // A full queue has a live worker (none leaves while jobs wait): wait outside the lock.
        if let Some(q) = full {
            let _ = self.sender.send(q);
        }
    }

    /// Starts a worker when none is idle for the job about to be queued. Under spawn_lock.
    fn ensure_worker(&self) {
        let s = &self.shared;
        let live = s.live.load(Ordering::SeqCst);
        if s.idle.load(Ordering::SeqCst) > self.sender.len() || live >= s.max {
            return;
        }
        let slot = {
            let mut slots = lock(&s.slots);
            let Some(slot) = slots.iter().position(Option::is_none) else {
                return;
            };
            slots[slot] = Some(None);
            slot
        };
        s.live.fetch_add(1, Ordering::SeqCst);
        s.idle.fetch_add(1, Ordering::SeqCst);
        let shared = Arc::clone(s);
        let spawned = std::thread::Builder::new()
            .name(format!("{}-{slot}", s.name))
            .spawn(move || worker(shared, slot));
        if let Err(e) = spawned {
            tracing::error!("cannot start a scan worker: {e}");
            s.live.fetch_sub(1, Ordering::SeqCst);
            s.idle.fetch_sub(1, Ordering::SeqCst);
            lock(&s.slots)[slot] = None;
        }
    }

    /// A snapshot for STATS.
    pub fn stats(&self) -> PoolStats {
        let s = &self.shared;
        PoolStats {
            live: s.live.load(Ordering::SeqCst),
            idle: s.idle.load(Ordering::SeqCst),
            max: s.max,
            idle_timeout: s.idle_timeout.as_secs(),
            queued: lock(&s.queued).clone(),
            running: lock(&s.slots).iter().flatten().flatten().cloned().collect(),
        }
    }
}

fn worker(s: Arc<Shared>, slot: usize) {
    if s.lowered {
        crate::prio::lower_this_thread();
    }
    loop {
        let queued = match s.receiver.recv_timeout(s.idle_timeout) {
            Ok(q) => q,
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                let _guard = lock(&s.spawn_lock);
                match s.receiver.try_recv() {
                    Ok(q) => q,
                    Err(_) => {
                        s.idle.fetch_sub(1, Ordering::SeqCst);
                        s.live.fetch_sub(1, Ordering::SeqCst);
                        lock(&s.slots)[slot] = None;
                        return;
                    }
                }
            }
        };
        s.idle.fetch_sub(1, Ordering::SeqCst);
        {
            let mut queued_tasks = lock(&s.queued);
            if let Some(i) = queued_tasks
                .iter()
                .position(|t| t.command == queued.job.command && t.label == queued.job.label)
            {
                queued_tasks.remove(i);
            }
        }
        lock(&s.slots)[slot] = Some(Some(Task {
            command: queued.job.command,
            label: queued.job.label,
            since: queued.since,
        }));
        let run = queued.job.run;
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).is_err() {
            tracing::error!("a scan job panicked; the worker goes on");
        }
        lock(&s.slots)[slot] = Some(None);
        s.idle.fetch_add(1, Ordering::SeqCst);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn runs_at_most_max_threads_at_once_and_workers_leave_when_idle() {
        let pool = Pool::new(2, 10, Duration::from_millis(200));
        let (tx, rx) = mpsc::channel();
        let gate = Arc::new(Mutex::new(()));
        let held = gate.lock().unwrap();
        for i in 0..4 {
            let tx = tx.clone();
            let gate = Arc::clone(&gate);
            pool.submit(Job {
                command: "SCAN",
                label: format!("f{i}"),
                run: Box::new(move || {
                    drop(gate.lock().unwrap());
                    tx.send(i).unwrap();
                }),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
        let st = pool.stats();
        assert_eq!((st.live, st.max), (2, 2));
        assert_eq!(st.running.len(), 2);
        assert_eq!(st.queued.len(), 2);
        drop(held);
        let mut got: Vec<i32> = (0..4).map(|_| rx.recv().unwrap()).collect();
        got.sort();
        assert_eq!(got, [0, 1, 2, 3]);
        let deadline = Instant::now() + Duration::from_secs(5);
        while pool.stats().live > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(pool.stats().live, 0, "idle workers exit after IdleTimeout");
        // And start again on demand.
        let (tx, rx) = mpsc::channel();
        pool.submit(Job {
            command: "PING",
            label: String::new(),
            run: Box::new(move || tx.send(()).unwrap()),
        });
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
    }
}
