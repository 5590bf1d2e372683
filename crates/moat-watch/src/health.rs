//! What `moat status` and the metrics endpoint report: a [`Snapshot`] of the running daemon,
//! read on demand from its live state through a [`Probe`].
//!
//! Nothing here is a copy kept on the side: counters are the daemon's own atomics
//! ([`DaemonStats`], `moat_guard::Stats`), the database facts come from the scanner in use,
//! the queue from the worker pool, and the marks from the kernel itself
//! (`/proc/self/fdinfo/<fanotify fd>` lists every mark of the group). "Protecting" is decided
//! from those facts: the daemon is not stopping, no supervised thread died, the reader and
//! tracker threads are alive, the kernel holds an enforcement mark for every include path,
//! and the database has signatures.

use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use moat_fanotify::Group;
use moat_guard::{AllowReason, PoolLoad, ScannerSlot, Stats};
use serde::{Deserialize, Serialize};

use crate::kernel_cache::KernelCacheStats;
use crate::stop::Stop;
use crate::verdict::DaemonStats;

/// The version of the [`Snapshot`] layout and of the control protocol.
pub const PROTOCOL: u32 = 1;

/// Verdict latency: from the hand-off of a permission event to a worker until the kernel
/// has its answer, in microseconds. An HDR histogram (3 significant digits, 1 µs to 1 h)
/// behind a mutex taken once per answer, after the answer is written, never while an
/// opener waits; plus an exact sum for the Prometheus histogram.
#[derive(Debug)]
pub struct Latency {
    histogram: Mutex<hdrhistogram::Histogram<u64>>,
    sum_us: AtomicU64,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            histogram: Mutex::new(
                hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3)
                    .expect("valid bounds"),
            ),
            sum_us: AtomicU64::new(0),
        }
    }
}

/// Upper bounds of the Prometheus buckets, in seconds.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

impl Latency {
    /// Records one answer that took `d`.
    pub fn record(&self, d: Duration) {
        let us = d.as_micros().min(u64::MAX as u128) as u64;
        self.sum_us.fetch_add(us, Relaxed);
        self.lock().saturating_record(us.max(1));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, hdrhistogram::Histogram<u64>> {
        self.histogram.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Count, percentiles and maximum now.
    pub fn summary(&self) -> LatencySummary {
        let h = self.lock();
        let ms = |q: f64| (!h.is_empty()).then(|| h.value_at_quantile(q) as f64 / 1000.0);
        LatencySummary {
            count: h.len(),
            p50_ms: ms(0.5),
            p90_ms: ms(0.9),
            p99_ms: ms(0.99),
            max_ms: (!h.is_empty()).then(|| h.max() as f64 / 1000.0),
        }
    }

    /// `(sum in seconds, count, per-bucket counts)` for [`LATENCY_BUCKETS`] plus `+Inf`: each
    /// recorded value goes to the first bucket whose bound holds it (to the histogram's
    /// precision, 0.1%).
    pub fn buckets(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let h = self.lock();
        let mut out: Vec<(f64, u64)> = LATENCY_BUCKETS
            .iter()
            .map(|b| (*b, 0))
            .chain([(f64::INFINITY, 0)])
            .collect();
        for v in h.iter_recorded() {
            let secs = v.value_iterated_to() as f64 / 1e6;
            let i = out
                .iter()
                .position(|(b, _)| secs <= *b)
                .unwrap_or(out.len() - 1);
            out[i].1 += v.count_at_value();
        }
        let sum = self.sum_us.load(Relaxed) as f64 / 1e6;
        (sum, h.len(), out)
    }
}

/// Verdict latency percentiles (milliseconds; `None` before the first verdict).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LatencySummary {
    /// Answers measured.
    pub count: u64,
    /// Median.
    pub p50_ms: Option<f64>,
    /// 90th percentile.
    pub p90_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
    /// Slowest.
    pub max_ms: Option<f64>,
}

/// The marks of a fanotify group, as the kernel lists them in `/proc/self/fdinfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelMarks {
    /// Filesystem marks: the filesystem's device and whether the mark watches events (else it
    /// only ignores).
    pub filesystems: Vec<((u32, u32), bool)>,
    /// Mount marks: the mount id (mountinfo's first field) and whether it watches.
    pub mounts: Vec<(u32, bool)>,
    /// Inode marks that watch events: `(device, inode)`.
    pub inodes: Vec<((u32, u32), u64)>,
    /// Inode marks that only ignore events (the kernel clean cache, quieted directories).
    pub ignoring_inodes: u64,
}

impl KernelMarks {
    /// Reads the marks of `group` from procfs.
    pub fn of(group: &Group) -> std::io::Result<KernelMarks> {
        let fd = std::os::fd::AsFd::as_fd(group).as_raw_fd();
        let text = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}"))?;
        Ok(KernelMarks::parse(&text))
    }

    /// Parses fdinfo text: `fanotify ino:HEX sdev:HEX mflags:HEX mask:HEX ignored_mask:HEX
    /// ...`, `fanotify mnt_id:HEX ...`, `fanotify sdev:HEX ...` (fs/notify/fdinfo.c).
    /// `sdev` is the kernel's `dev_t` (major in the bits above 20).
    pub fn parse(text: &str) -> KernelMarks {
        let mut marks = KernelMarks::default();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("fanotify ") else {
                continue;
            };
            let field = |name: &str| {
                rest.split(' ')
                    .find_map(|f| f.strip_prefix(name)?.strip_prefix(':'))
                    .and_then(|v| u64::from_str_radix(v, 16).ok())
            };
            let watches = field("mask").is_some_and(|m| m != 0);
            let dev = field("sdev").map(|d| ((d >> 20) as u32, (d & 0xf_ffff) as u32));
            match (field("ino"), field("mnt_id"), dev) {
                (Some(ino), _, Some(dev)) if watches => marks.inodes.push((dev, ino)),
                (Some(_), _, _) => marks.ignoring_inodes += 1,
                (None, Some(id), _) => marks.mounts.push((id as u32, watches)),
                (None, None, Some(dev)) => marks.filesystems.push((dev, watches)),
                _ => {}
            }
        }
        marks
    }

    /// Marks that make the kernel ask moat about accesses.
    pub fn watching(&self) -> usize {
        self.filesystems.iter().filter(|m| m.1).count()
            + self.mounts.iter().filter(|m| m.1).count()
            + self.inodes.len()
    }
}

/// A thread whose death the probe notices: the thread holds the [`Arc`], the probe a
/// [`Weak`], which stops upgrading once the thread's closure is gone (returned or unwound).
pub(crate) fn thread_token() -> (Arc<()>, Weak<()>) {
    let token = Arc::new(());
    let weak = Arc::downgrade(&token);
    (token, weak)
}

/// What outlives a daemon that a reload replaces: the counters, the latency histogram, the
/// time the first daemon of this process was ready and the reloads. `moat watch` starts the
/// new daemon with the old one's [`Lifetime`] (`Daemon::start_with`), so that monitoring
/// sees counters that only go up and the uptime of the process. While both daemons run (the
/// new one is started before the old one stops), an access both groups see is counted by
/// both.
#[derive(Debug, Clone, Default)]
pub struct Lifetime {
    pub(crate) stats: Arc<DaemonStats>,
    pub(crate) scan_stats: Arc<Stats>,
    pub(crate) kernel_cache: Arc<KernelCacheStats>,
    /// When the first daemon was ready (set by its first probe).
    ready: Arc<OnceLock<(Instant, SystemTime)>>,
    reloads: Arc<Mutex<ReloadStatus>>,
}

impl Lifetime {
    /// Records the outcome of a SIGHUP: `Ok(what was put in place)` or `Err(why not)`.
    pub fn record_reload(&self, outcome: Result<String, String>) {
        let mut r = self.reloads.lock().unwrap_or_else(|e| e.into_inner());
        match &outcome {
            Ok(_) => r.count += 1,
            Err(_) => r.failed += 1,
        }
        r.last_unix = Some(unix(SystemTime::now()));
        r.last_ok = Some(outcome.is_ok());
        r.last_result = Some(outcome.unwrap_or_else(|e| e));
    }

    /// The reloads so far.
    pub fn reloads(&self) -> ReloadStatus {
        self.reloads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// When the first daemon was ready; set now if not yet (by `Daemon::probe`).
    pub(crate) fn ready(&self) -> (Instant, SystemTime) {
        *self
            .ready
            .get_or_init(|| (Instant::now(), SystemTime::now()))
    }
}

/// SIGHUPs handled (`moat watch`'s reload).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReloadStatus {
    /// Reloads that put a new configuration or database in place.
    pub count: u64,
    /// Reloads refused (the configuration or database did not load, or the new
    /// configuration could not start): the previous one goes on.
    pub failed: u64,
    /// When the last one was handled, seconds since the Unix epoch.
    pub last_unix: Option<u64>,
    /// Whether the last one succeeded.
    pub last_ok: Option<bool>,
    /// What the last one did, or why it failed.
    pub last_result: Option<String>,
}

/// What the daemon was started with and the handles the probe reads; filled by
/// `Daemon::start`.
#[derive(Debug, Clone, Default)]
pub(crate) struct StartFacts {
    /// Scope as shown (`filesystem`, `directory`, `include-paths-only`).
    pub scope: &'static str,
    /// Canonical include paths.
    pub include_paths: Vec<PathBuf>,
    /// Canonical mount paths.
    pub mount_paths: Vec<PathBuf>,
    /// Infected files are denied (else reported).
    pub prevention: bool,
    /// Worker threads.
    pub threads: usize,
    /// The enforcement group.
    pub group: Weak<Group>,
    /// Threads that must be alive while protecting.
    pub threads_alive: Vec<(&'static str, Weak<()>)>,
    /// The reaction thread (kept across reloads), when any reaction is configured.
    pub reactions: Option<Arc<moat_react::Reactions>>,
}

/// Reads a [`Snapshot`] of a running daemon (`Daemon::probe`). Cheap to clone; it keeps no
/// thread, the worker pool or the fanotify group alive.
#[derive(Clone)]
pub struct Probe {
    pub(crate) facts: Arc<StartFacts>,
    pub(crate) stop: Arc<Stop>,
    pub(crate) failed: Arc<AtomicBool>,
    pub(crate) scanner: Arc<ScannerSlot>,
    pub(crate) stats: Arc<DaemonStats>,
    pub(crate) scan_stats: Arc<Stats>,
    pub(crate) pool: Option<PoolLoad>,
    pub(crate) lifetime: Lifetime,
    pub(crate) status_line: String,
}

impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probe").field("facts", &self.facts).finish()
    }
}

/// The state of a running `moat watch`, as `moat status --json` prints it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Snapshot {
    /// [`PROTOCOL`].
    pub protocol: u32,
    /// moat's version.
    pub version: String,
    /// The daemon's pid.
    pub pid: u32,
    /// Accesses under the include paths are being checked now (see the module docs).
    pub protecting: bool,
    /// Why not, when not protecting (empty otherwise).
    pub not_protecting_because: Vec<String>,
    /// Infected files are blocked (`OnAccessPrevention yes`), else only reported.
    pub prevention: bool,
    /// `filesystem`, `directory` or `include-paths-only` (`OnAccessDisableDDD`).
    pub scope: String,
    /// Canonical include paths.
    pub include_paths: Vec<PathBuf>,
    /// `OnAccessMountPath`s, canonical.
    pub mount_paths: Vec<PathBuf>,
    /// What the kernel has marked.
    pub coverage: Coverage,
    /// The database in use.
    pub database: DatabaseStatus,
    /// What happened since the start.
    pub counters: Counters,
    /// The worker pool now.
    pub queue: QueueStatus,
    /// Verdict latency, hand-off to answer.
    pub latency: LatencySummary,
    /// Seconds since the first daemon of this process was ready (every mark placed); a
    /// reload does not reset it, nor any counter.
    pub uptime_seconds: f64,
    /// When it was ready, seconds since the Unix epoch.
    pub ready_since_unix: u64,
    /// SIGHUPs handled.
    #[serde(default)]
    pub reloads: ReloadStatus,
    /// What was done about detections (`None`: no reaction configured).
    #[serde(default)]
    pub reactions: Option<ReactionCounters>,
    /// The line logged when ready (coverage, tracking, cache and fallbacks).
    pub status_line: String,
}

/// Marks and the filesystems they cover.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Coverage {
    /// Filesystems marked as a whole (filesystem scope).
    pub filesystems: Vec<CoveredFilesystem>,
    /// Mounts marked as a whole (`OnAccessMountPath`).
    pub mounts: Vec<CoveredFilesystem>,
    /// Directories marked (directory scope): the kernel's watching inode marks.
    pub directories: u64,
    /// Marks by kind, as the kernel lists them: `filesystem`, `mount`, `inode` (watching),
    /// `ignore` (mount and inode marks that only ignore: quieted mounts and directories, the
    /// kernel clean cache).
    pub marks: BTreeMap<String, u64>,
    /// Include or mount paths the kernel does not watch.
    pub problems: Vec<String>,
}

/// One filesystem or mount covered.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CoveredFilesystem {
    /// `major:minor`.
    pub device: String,
    /// A mount point of it (as this namespace shows it), when found.
    pub mount_point: Option<PathBuf>,
    /// Its type.
    pub fs_type: Option<String>,
}

/// The signature database in use.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct DatabaseStatus {
    /// Signatures loaded (`None`: the scanner does not say).
    pub signatures: Option<u64>,
    /// Official container version (daily's, usually).
    pub version: Option<u32>,
    /// Its build time, seconds since the Unix epoch.
    pub built_unix: Option<u64>,
    /// When it was loaded, seconds since the Unix epoch.
    pub loaded_unix: Option<u64>,
    /// Loads so far (1 + successful reloads).
    pub generation: u64,
}

/// Counters since the start. See README.md's "Health and metrics" for each one.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Counters {
    /// Accesses answered with an engine verdict (clean or infected; joined scans included).
    pub scanned: u64,
    /// Accesses answered from the userspace verdict cache.
    pub cache_hits: u64,
    /// Detections (engine or cache).
    pub infected: u64,
    /// Denials the kernel took (`FAN_DENY`: the opener got `EPERM`).
    pub blocked: u64,
    /// Accesses allowed without a scan, by reason.
    pub skipped: BTreeMap<String, u64>,
    /// Accesses answered by the deadline (`OnAccessScanTimeout`).
    pub deadline_expired: u64,
    /// Errors of every kind (the sum of `errors_by_kind`).
    pub errors: u64,
    /// `scan` (the scan failed), `answer` (the kernel refused an answer), `handoff` (the
    /// event's fd could not be passed to a worker), `read` (reading events failed).
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Clean files whose verdict the kernel was given to keep (evictable ignore marks set).
    pub kernel_cache_marks: u64,
    /// Close-after-write events.
    pub close_writes: u64,
}

/// What moat-react did after detections, since the start (its own counters). See
/// README.md's "Health and metrics".
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReactionCounters {
    /// Detections the reaction thread took.
    pub handled: u64,
    /// Detections dropped because the reaction queue was full (nothing done about them).
    pub queue_dropped: u64,
    /// Files moved into the quarantine (`--move`).
    pub moved: u64,
    /// Files copied into the quarantine (`--copy`).
    pub copied: u64,
    /// Files removed (`--remove`).
    pub removed: u64,
    /// Moves, copies or removals that failed.
    pub action_failures: u64,
    /// VirusEvent commands started.
    pub virus_event_runs: u64,
    /// VirusEvent commands not run: too many running.
    pub virus_event_dropped: u64,
    /// VirusEvent commands killed at their timeout.
    pub virus_event_timeouts: u64,
    /// VirusEvent commands that could not be started.
    pub virus_event_failures: u64,
    /// Detections that ran no VirusEvent, being repeats of a path and signature.
    pub virus_event_repeats: u64,
    /// Lines written to the detection log.
    pub log_lines: u64,
    /// Detection records the log's rate limit refused.
    pub log_suppressed: u64,
    /// Repeats folded into one `repeated` record.
    pub log_deduplicated: u64,
    /// Writes to the detection log that failed.
    pub log_errors: u64,
}

impl ReactionCounters {
    /// Reads the reaction thread's counters now.
    pub fn of(r: &moat_react::Reactions) -> ReactionCounters {
        let (s, get) = (r.stats(), |a: &AtomicU64| a.load(Relaxed));
        let v = r.virus_event_stats();
        let ve = |f: fn(&moat_react::virus_event::VirusEventStats) -> &AtomicU64| {
            v.map_or(0, |v| get(f(v)))
        };
        ReactionCounters {
            handled: get(&s.handled),
            queue_dropped: get(&s.dropped),
            moved: get(&s.moved),
            copied: get(&s.copied),
            removed: get(&s.removed),
            action_failures: get(&s.action_failures),
            virus_event_runs: ve(|v| &v.started),
            virus_event_dropped: ve(|v| &v.dropped),
            virus_event_timeouts: ve(|v| &v.killed),
            virus_event_failures: ve(|v| &v.failed),
            virus_event_repeats: get(&s.virus_event_repeats),
            log_lines: get(&s.log_lines),
            log_suppressed: get(&s.log_suppressed),
            log_deduplicated: get(&s.log_deduplicated),
            log_errors: get(&s.log_errors),
        }
    }
}

/// The worker pool.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct QueueStatus {
    /// Jobs waiting for a worker.
    pub queued: u64,
    /// Workers scanning.
    pub busy: u64,
    /// Workers (`OnAccessMaxThreads`).
    pub threads: u64,
}

const SKIP_REASONS: [(AllowReason, &str); 9] = [
    (AllowReason::OwnPid, "own_pid"),
    (AllowReason::RootUid, "root_uid"),
    (AllowReason::ExcludedUid, "excluded_uid"),
    (AllowReason::Empty, "empty"),
    (AllowReason::NeverWatched, "never_watched"),
    (AllowReason::OutsideIncludes, "outside_includes"),
    (AllowReason::ExcludedPath, "excluded_path"),
    (AllowReason::TooLarge, "too_large"),
    (AllowReason::ExcludedExe, "excluded_exe"),
];

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The probe of the daemon in service, shared by the control socket and the metrics
/// endpoint. A SIGHUP that changes settings starts a new daemon (see `moat watch`'s
/// reload); [`CurrentProbe::replace`] then points both at it, so that they never report a
/// retired daemon.
#[derive(Debug, Clone)]
pub struct CurrentProbe(Arc<RwLock<Probe>>);

impl CurrentProbe {
    /// Starts with `probe`.
    pub fn new(probe: Probe) -> Self {
        CurrentProbe(Arc::new(RwLock::new(probe)))
    }

    /// From now on, reads `probe`.
    pub fn replace(&self, probe: Probe) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = probe;
    }

    /// The [`Probe`] of the daemon in service now.
    pub fn current(&self) -> Probe {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// [`Probe::snapshot`] of the daemon in service.
    pub fn snapshot(&self) -> Snapshot {
        // Cloned out of the lock: a snapshot reads /proc, never with the lock held.
        self.current().snapshot()
    }
}

impl Probe {
    /// Reads the daemon's state now.
    pub fn snapshot(&self) -> Snapshot {
        let marks = self.facts.group.upgrade().map(|g| KernelMarks::of(&g));
        let mut why = Vec::new();
        if self.stop.is_triggered() {
            why.push("stopping".to_string());
        }
        if self.failed.load(SeqCst) {
            why.push("a daemon thread died (see the log)".to_string());
        }
        for (name, alive) in &self.facts.threads_alive {
            if alive.upgrade().is_none() {
                why.push(format!("the {name} thread is not running"));
            }
        }
        let coverage = match &marks {
            Some(Ok(m)) => self.coverage(m),
            Some(Err(e)) => Coverage {
                problems: vec![format!("cannot read the kernel's marks: {e}")],
                ..Coverage::default()
            },
            None => Coverage {
                problems: vec!["the fanotify group is closed".into()],
                ..Coverage::default()
            },
        };
        why.extend(coverage.problems.iter().cloned());
        let database = self.database();
        if database.signatures == Some(0) {
            why.push("the signature database is empty".into());
        }
        Snapshot {
            protocol: PROTOCOL,
            version: env!("CARGO_PKG_VERSION").into(),
            pid: std::process::id(),
            protecting: why.is_empty(),
            not_protecting_because: why,
            prevention: self.facts.prevention,
            scope: self.facts.scope.into(),
            include_paths: self.facts.include_paths.clone(),
            mount_paths: self.facts.mount_paths.clone(),
            coverage,
            database,
            counters: self.counters(),
            queue: QueueStatus {
                queued: self.pool.as_ref().map_or(0, |p| p.queued() as u64),
                busy: self.pool.as_ref().map_or(0, |p| p.busy() as u64),
                threads: self.facts.threads as u64,
            },
            latency: self.stats.latency.summary(),
            uptime_seconds: self.lifetime.ready().0.elapsed().as_secs_f64(),
            ready_since_unix: unix(self.lifetime.ready().1),
            reloads: self.lifetime.reloads(),
            reactions: self.facts.reactions.as_deref().map(ReactionCounters::of),
            status_line: self.status_line.clone(),
        }
    }

    /// The verdict latency histogram (for metrics).
    pub fn latency(&self) -> &Latency {
        &self.stats.latency
    }

    fn database(&self) -> DatabaseStatus {
        let scanner = self.scanner.load();
        let info = scanner.database();
        DatabaseStatus {
            signatures: info.signatures,
            version: info.version,
            built_unix: info.built.map(unix),
            loaded_unix: info.loaded.map(unix),
            generation: scanner.generation(),
        }
    }

    fn counters(&self) -> Counters {
        let (s, g) = (&self.stats, &self.scan_stats);
        let get = Stats::get;
        let mut skipped: BTreeMap<String, u64> = SKIP_REASONS
            .iter()
            .map(|(r, name)| (name.to_string(), s.allowed_for(*r)))
            .collect();
        skipped.insert("engine_limits".into(), get(&g.skipped));
        skipped.insert(
            "shutdown".into(),
            get(&g.shutdown_answers) + s.drained.load(Relaxed),
        );
        let errors_by_kind: BTreeMap<String, u64> = [
            ("scan", get(&g.failures)),
            ("answer", s.answer_errors.load(Relaxed)),
            ("handoff", s.dup_errors.load(Relaxed)),
            ("read", s.read_errors.load(Relaxed)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Counters {
            scanned: get(&g.clean) + get(&g.infected).saturating_sub(get(&g.infected_cache_hits)),
            cache_hits: get(&g.cache_hits) + get(&g.infected_cache_hits),
            infected: get(&g.infected),
            blocked: s.blocked.load(Relaxed),
            skipped,
            deadline_expired: get(&g.deadline_expired),
            errors: errors_by_kind.values().sum(),
            errors_by_kind,
            kernel_cache_marks: self.lifetime.kernel_cache.marked.load(Relaxed),
            close_writes: s.close_writes.load(Relaxed),
        }
    }

    fn coverage(&self, marks: &KernelMarks) -> Coverage {
        let mounts = crate::mounts::read_here().unwrap_or_default();
        let describe = |dev: (u32, u32), mount: Option<&crate::mounts::Mount>| CoveredFilesystem {
            device: format!("{}:{}", dev.0, dev.1),
            mount_point: mount.map(|m| m.mount_point.clone()),
            fs_type: mount.map(|m| m.fs_type.clone()),
        };
        let by_dev = |dev: (u32, u32)| {
            let of_dev = || mounts.iter().filter(move |m| m.dev == dev);
            of_dev()
                .find(|m| m.root == Path::new("/"))
                .or_else(|| of_dev().next())
        };
        let filesystems = marks
            .filesystems
            .iter()
            .filter(|(_, w)| *w)
            .map(|(dev, _)| describe(*dev, by_dev(*dev)))
            .collect();
        let mount_marks: Vec<CoveredFilesystem> = marks
            .mounts
            .iter()
            .filter(|(_, w)| *w)
            .filter_map(|(id, _)| mounts.iter().find(|m| m.id == *id))
            .map(|m| describe(m.dev, Some(m)))
            .collect();
        let mut problems = Vec::new();
        if marks.watching() == 0 {
            problems.push("the kernel holds no fanotify mark that watches accesses".into());
        }
        for root in &self.facts.include_paths {
            if let Some(p) = self.include_problem(root, marks) {
                problems.push(p);
            }
        }
        for path in &self.facts.mount_paths {
            let watched = mounts
                .iter()
                .filter(|m| &m.mount_point == path)
                .any(|m| marks.mounts.contains(&(m.id, true)));
            if !watched {
                problems.push(format!(
                    "{}: no mount mark on it (OnAccessMountPath)",
                    path.display()
                ));
            }
        }
        let ignore = marks.ignoring_inodes
            + marks.mounts.iter().filter(|m| !m.1).count() as u64
            + marks.filesystems.iter().filter(|m| !m.1).count() as u64;
        let kinds = [
            (
                "filesystem",
                marks.filesystems.iter().filter(|m| m.1).count() as u64,
            ),
            ("mount", marks.mounts.iter().filter(|m| m.1).count() as u64),
            ("inode", marks.inodes.len() as u64),
            ("ignore", ignore),
        ];
        Coverage {
            filesystems,
            mounts: mount_marks,
            directories: marks.inodes.len() as u64,
            marks: kinds.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            problems,
        }
    }

    /// Whether the kernel watches `root` as the scope requires: a filesystem mark on its
    /// filesystem, or an inode mark on the directory itself.
    fn include_problem(&self, root: &Path, marks: &KernelMarks) -> Option<String> {
        use std::os::unix::fs::MetadataExt;
        let md = match std::fs::metadata(root) {
            Ok(md) => md,
            Err(e) => return Some(format!("{}: {e}", root.display())),
        };
        let dev = (libc::major(md.dev()), libc::minor(md.dev()));
        let watched = if self.facts.scope == "filesystem" {
            marks.filesystems.contains(&(dev, true))
        } else {
            marks.inodes.contains(&(dev, md.ino()))
        };
        (!watched).then(|| {
            format!(
                "{}: the kernel holds no {} mark for it (device {}:{})",
                root.display(),
                if self.facts.scope == "filesystem" {
                    "filesystem"
                } else {
                    "directory"
                },
                dev.0,
                dev.1
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines as Linux 6.18 prints them (fs/notify/fdinfo.c).
    #[test]
    fn fdinfo_marks_are_parsed_by_kind() {
        let text = "pos:\t0\nflags:\t02004000\nmnt_id:\t16\nino:\t1057\n\
fanotify flags:10 event-flags:0\n\
fanotify sdev:800001 mflags:0 mask:18010000 ignored_mask:0\n\
fanotify mnt_id:2a mflags:0 mask:0 ignored_mask:10000\n\
fanotify mnt_id:2b mflags:0 mask:18010000 ignored_mask:0\n\
fanotify ino:4f969 sdev:2a mflags:0 mask:18010008 ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:69f90400d2430bd0\n\
fanotify ino:4f96a sdev:2a mflags:2 mask:0 ignored_mask:18010000 fhandle-bytes:8 fhandle-type:1 f_handle:6af90400d2430bd0\n";
        let m = KernelMarks::parse(text);
        assert_eq!(m.filesystems, vec![((8, 1), true)]);
        assert_eq!(m.mounts, vec![(0x2a, false), (0x2b, true)]);
        assert_eq!(m.inodes, vec![((0, 0x2a), 0x4f969)]);
        assert_eq!(m.ignoring_inodes, 1);
        assert_eq!(m.watching(), 3);
    }

    #[test]
    fn latency_percentiles_and_buckets_follow_the_recorded_values() {
        let l = Latency::default();
        assert_eq!(l.summary().p50_ms, None);
        for _ in 0..90 {
            l.record(Duration::from_micros(200));
        }
        for _ in 0..10 {
            l.record(Duration::from_millis(30));
        }
        let s = l.summary();
        assert_eq!(s.count, 100);
        assert!((s.p50_ms.unwrap() - 0.2).abs() < 0.001, "{s:?}");
        assert!((s.p99_ms.unwrap() - 30.0).abs() < 0.05, "{s:?}");
        assert!((s.max_ms.unwrap() - 30.0).abs() < 0.05, "{s:?}");
        let (sum, count, buckets) = l.buckets();
        assert_eq!(count, 100);
        assert!((sum - (90.0 * 0.0002 + 10.0 * 0.03)).abs() < 1e-9);
        let at = |bound: f64| buckets.iter().find(|b| b.0 == bound).unwrap().1;
        assert_eq!(at(0.00025), 90);
        assert_eq!(at(0.05), 10);
        assert_eq!(buckets.iter().map(|b| b.1).sum::<u64>(), 100);
    }
}
