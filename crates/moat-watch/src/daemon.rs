//! Assembling the daemon: start in a safe order, run until stopped, stop in a safe order.
//!
//! **Start:** raise `RLIMIT_NOFILE`; resolve the include paths; build the policy; create the
//! group; start the deadline watcher, the worker pool and the reader thread (before any mark
//! exists, so that no event ever waits for a reader); place the marks (walking the tree);
//! start the tracker; log `watching N directories under K include paths in T ms` and tell
//! systemd `READY=1`.
//!
//! **Stop** (SIGTERM, SIGINT): the reader stops taking events; every mark is removed; what
//! is still queued is allowed; the deadline watcher answers every pending token (Allow);
//! the pool gets a short grace period for scans in progress (a late result is dropped); the
//! tracker stops. Nothing is left waiting, and it takes well under a second.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use moat_fanotify::{Group, InitFlags, MarkKind, Mask};
use moat_guard::{
    CleanHook, DeadlineWatcher, Policy, PolicySettings, PoolConfig, Response, Scanner, ScannerSlot,
    Stats, VerdictCache, WorkerPool,
};

use crate::coverage::{self, CoverError, CoverageCounts, DirectoryCoverage, TrackingMode};
use crate::flush::CacheFlusher;
use crate::health::Lifetime;
use crate::kernel_cache::KernelCache;
use crate::stop::Stop;
use crate::verdict::{Access, AccessKind, DaemonStats, ReportSink, Reporter};

/// How marks are placed (`OnAccessCoverage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A mark per directory, tracked as the tree changes ([`DirectoryCoverage`]).
    Directory,
    /// A `FAN_MARK_FILESYSTEM` mark on each include path's filesystem; the policy keeps only
    /// the events under the include paths. Nothing to walk or track, no window after `mkdir`.
    Filesystem,
}

/// Which accesses are checked (`OnAccessEvents`, `--events`). See README's "Modes".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Events {
    /// Opens (`FAN_OPEN_PERM`; notify-only: `FAN_OPEN`).
    pub open: bool,
    /// Executions (`FAN_OPEN_EXEC_PERM`; notify-only: `FAN_OPEN_EXEC`). Alone, reads raise
    /// no event at all. The dynamic loader maps shared libraries after a plain open, so
    /// libraries are only checked with `open`.
    pub exec: bool,
    /// Files closed after writing (`FAN_CLOSE_WRITE`): scanned and reported, never blocked.
    pub close: bool,
}

impl std::fmt::Display for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let on = [
            (self.open, "open"),
            (self.exec, "exec"),
            (self.close, "close"),
        ];
        let words: Vec<&str> = on.iter().filter(|(b, _)| *b).map(|(_, w)| *w).collect();
        f.write_str(&words.join(","))
    }
}

impl Default for Events {
    /// `open,exec`.
    fn default() -> Self {
        Events {
            open: true,
            exec: true,
            close: false,
        }
    }
}

/// What the daemon does, from clamd.conf and the command line.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchSettings {
    /// `OnAccessIncludePath`: directories to protect.
    pub include_paths: Vec<PathBuf>,
    /// `OnAccessExcludePath`: extended regular expressions over directory paths.
    pub exclude_patterns: Vec<String>,
    /// `OnAccessMountPath`: mounts protected as a whole (a mount mark each; unlike ClamAV,
    /// prevention applies to them too).
    pub mount_paths: Vec<PathBuf>,
    /// `OnAccessCoverage`.
    pub scope: Scope,
    /// Not `OnAccessDisableDDD`: follow the tree below the include paths (directory scope).
    pub recursive: bool,
    /// `OnAccessTracking` / `--tracking`: how directory scope follows the tree.
    pub tracking: TrackingMode,
    /// `OnAccessPrevention`: deny infected files (else report only).
    pub prevention: bool,
    /// `OnAccessExtraScanning`: also scan (and report) files closed after writing, moved in,
    /// or found in new directories.
    pub extra_scanning: bool,
    /// `OnAccessExcludeUID` plus the resolved `OnAccessExcludeUname`s.
    pub exclude_uids: Vec<u32>,
    /// `OnAccessExcludeRootUID`.
    pub exclude_root_uid: bool,
    /// `DatabaseDirectory`: never watched.
    pub never_watched: Vec<PathBuf>,
    /// `OnAccessMaxFileSize` (`None`: no limit).
    pub max_file_size: Option<u64>,
    /// `OnAccessMaxThreads`.
    pub threads: usize,
    /// `OnAccessScanTimeout`.
    pub scan_timeout: Duration,
    /// `OnAccessDenyOnError`.
    pub deny_on_error: bool,
    /// `OnAccessRetryAttempts`: scans retried after a failure.
    pub retries: u32,
    /// After a detection (never before the answer): `--move`/`--copy`/`--remove`,
    /// `VirusEvent`, detection records (moat-react).
    pub reactions: Option<SharedReactions>,
    /// `OnAccessEvents`: which accesses are checked.
    pub events: Events,
    /// `OnAccessExcludeExe`: programs (and, when true, their descendants) whose accesses
    /// are not scanned.
    pub exclude_exes: Vec<(PathBuf, bool)>,
}

/// moat-react's reaction thread as the settings hold it: equal only to itself, so that a
/// reload that keeps it compares equal (the reactions are started once, by `moat watch`).
#[derive(Debug, Clone)]
pub struct SharedReactions(pub Arc<moat_react::Reactions>);

impl PartialEq for SharedReactions {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// No include path.
    #[error("nothing to watch: give OnAccessIncludePath in the configuration or directories on the command line")]
    NoIncludePath,
    /// An include path does not exist or cannot be resolved.
    #[error("OnAccessIncludePath {path}: {error}")]
    IncludePath {
        /// The path as given.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// `/` with directory tracking.
    #[error("OnAccessIncludePath /: watching the whole system directory by directory is refused (as in ClamAV); list the directories to protect, or set OnAccessDisableDDD yes")]
    RootInclude,
    /// A bad exclude pattern.
    #[error("OnAccessExcludePath: {0}")]
    Pattern(#[from] regex::Error),
    /// fanotify refused (not root, old kernel...).
    #[error("cannot create the fanotify group: {0}")]
    Fanotify(#[from] moat_fanotify::Error),
    /// Coverage failed (inotify limit).
    #[error(transparent)]
    Cover(#[from] CoverError),
    /// A thread could not be started.
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
}

/// What [`Daemon::wait`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// SIGTERM/SIGINT (or the daemon's own stop): stop, exit 0.
    Stop,
    /// SIGHUP: reload.
    Hup,
    /// A daemon thread died: stop, exit with a failure so that systemd restarts moat.
    Failed,
}

/// A started daemon. Stop it with [`Daemon::stop`] (or by triggering its [`Stop`]).
pub struct Daemon {
    /// Replaced by a reload (the summary line says so).
    retired: bool,
    stop: Arc<Stop>,
    /// The reader's own stop: it keeps answering until the tracker (which opens files in
    /// the tree) has stopped.
    reader_stop: Arc<Stop>,
    reader: Option<JoinHandle<()>>,
    /// Filesystem scope: the groups and readers of slow filesystems (FUSE, network).
    slow: Option<Arc<crate::slow_fs::SlowGroups>>,
    tracker: Option<JoinHandle<Option<DirectoryCoverage>>>,
    /// Filesystem scope's mount-table watcher.
    mount_watch: Option<JoinHandle<()>>,
    /// Filesystem scope's quieting of root-only directories outside the include paths.
    quiet: Option<JoinHandle<()>>,
    /// systemd's watchdog thread, when `WATCHDOG_USEC` asked for one.
    watchdog: Option<JoinHandle<()>>,
    /// Flushes the clean caches on a new database (a reload, or a clamd server's).
    flusher: Arc<CacheFlusher>,
    /// Follows the scanner's generation (see [`crate::flush`]).
    follower: Option<JoinHandle<()>>,
    /// Set when a supervised thread died (see [`supervised`]): the stop is then a failure.
    failed: Arc<AtomicBool>,
    watcher: Option<DeadlineWatcher>,
    pool: Option<Arc<WorkerPool>>,
    scanner: Arc<ScannerSlot>,
    kernel_cache: Option<Arc<KernelCache>>,
    stats: Arc<DaemonStats>,
    scan_stats: Arc<Stats>,
    /// The counters, uptime and reloads a reload's new daemon goes on with.
    lifetime: Lifetime,
    /// What the coverage uses, for the startup line.
    uses: Vec<String>,
    /// Directories covered when ready (directory scope).
    pub directories: usize,
    /// Filesystems and mounts marked as a whole.
    pub whole_marks: usize,
    /// Include paths.
    pub include_paths: usize,
    /// Time from start to every mark placed.
    pub setup_time: Duration,
    /// What `moat status` reads besides the handles above (see [`crate::health`]).
    pub(crate) health: crate::health::StartFacts,
}

impl Daemon {
    /// Starts the daemon; returns once every mark is placed. `stop` ends it (wire it to
    /// signals with [`Stop::on_signals`]).
    pub fn start(
        settings: WatchSettings,
        scanner: Arc<dyn Scanner>,
        stop: Arc<Stop>,
    ) -> Result<Daemon, StartError> {
        Daemon::start_with(settings, scanner, stop, Lifetime::default())
    }

    /// [`start`](Self::start), counting into `lifetime`: a reload's new daemon goes on with
    /// the counters, latency histogram, uptime and reload record of the one it replaces
    /// ([`Daemon::lifetime`]).
    pub fn start_with(
        settings: WatchSettings,
        scanner: Arc<dyn Scanner>,
        stop: Arc<Stop>,
        lifetime: Lifetime,
    ) -> Result<Daemon, StartError> {
        let started = Instant::now();
        match crate::limits::raise_nofile() {
            Ok(n) => tracing::debug!(nofile = n, "open-file limit raised"),
            Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
        }
        let roots = resolve_includes(&settings)?;
        let policy = Arc::new(build_policy(&settings, &roots)?);
        let exes = Arc::new(crate::exe::ExeExclusions::open(&settings.exclude_exes));
        let exe_count = exes.len();
        let group = Arc::new(init_group(settings.prevention, !exes.is_empty())?);
        let on_error = if settings.prevention && settings.deny_on_error {
            Response::Deny
        } else {
            Response::Allow
        };
        let scan_stats = Arc::clone(&lifetime.scan_stats);
        let watcher =
            DeadlineWatcher::spawn(Arc::clone(&scan_stats)).map_err(StartError::Thread)?;
        let slot = Arc::new(ScannerSlot::new(scanner));
        let cache = Arc::new(VerdictCache::new(VERDICT_CACHE_ENTRIES));
        // Without inode marks of its own, coverage lets a reload flush every ignore mark at
        // once; with them, each mark is recorded (see kernel_cache's docs).
        let inode_marks = !roots.is_empty() && settings.scope == Scope::Directory;
        let flush = if inode_marks {
            crate::kernel_cache::Flush::Each(crate::kernel_cache::Registry::new(
                &roots,
                VERDICT_CACHE_ENTRIES,
            ))
        } else {
            crate::kernel_cache::Flush::All
        };
        let open = open_mask(&settings);
        let slow_devs = Arc::new(crate::slow_fs::SlowDevs::default());
        // Nothing to cache when no open is decided (`--events close`).
        let kernel_cache = (!open.is_empty()).then(|| {
            Arc::new(
                KernelCache::new(Arc::clone(&group), open, Arc::clone(&slot), flush)
                    .skip_devices(Arc::clone(&slow_devs))
                    .with_stats(Arc::clone(&lifetime.kernel_cache)),
            )
        });
        let hook = kernel_cache.clone().map(|k| k as Arc<dyn CleanHook>);
        let pool = Arc::new(
            WorkerPool::with_hook(
                PoolConfig {
                    threads: settings.threads.max(1),
                    deadline: settings.scan_timeout,
                    on_error,
                    settle: PoolConfig::DEFAULT_SETTLE,
                    retries: settings.retries,
                },
                Arc::clone(&slot),
                Arc::clone(&cache),
                watcher.handle(),
                hook,
            )
            .map_err(StartError::Thread)?,
        );
        let stats = Arc::clone(&lifetime.stats);
        let reporter = Arc::new(Reporter {
            deadline: settings.scan_timeout,
            stats: Arc::clone(&stats),
            reactions: settings.reactions.as_ref().map(|r| Arc::clone(&r.0)),
        });
        let reader_stop = Arc::new(Stop::new().map_err(StartError::Thread)?);
        let mount_paths: Vec<PathBuf> = settings
            .mount_paths
            .iter()
            .filter_map(|p| p.canonicalize().ok())
            .collect();
        // The include paths, the mounts below them and the mount paths: the mounts whose
        // paths can be trusted (filesystem scope keeps them in step with the mount table).
        let locator = Arc::new(crate::locate::Locator::new(&anchor_paths(
            &roots,
            &mount_paths,
        )));
        let quiet = (settings.scope == Scope::Filesystem && !open.is_empty()).then(|| {
            crate::quiet::channel(
                Arc::clone(&group),
                Arc::clone(&locator),
                open,
                Arc::clone(&stats),
            )
        });
        let (quieter, quiet_thread) = match quiet {
            Some((q, t)) => (Some(q), Some(t)),
            None => (None, None),
        };
        // systemd's watchdog, when asked for: the reader beats, a thread of its own checks.
        let watchdog = crate::watchdog::interval_from_env().map(|interval| {
            let period = crate::watchdog::period(interval);
            let tick = crate::watchdog::reader_tick(period);
            (Arc::new(crate::watchdog::Heartbeat::new(tick)), interval)
        });
        let reader = crate::reader::Reader {
            group: Arc::clone(&group),
            policy: Arc::clone(&policy),
            pool: Arc::clone(&pool),
            reporter: Arc::clone(&reporter),
            on_error,
            own_pid: std::process::id() as i32,
            cache: Arc::clone(&cache),
            kernel_cache: kernel_cache.clone(),
            scan_close_write: settings.extra_scanning || settings.events.close,
            locator: Arc::clone(&locator),
            quiet: quieter,
            heartbeat: watchdog.as_ref().map(|(h, _)| Arc::clone(h)),
            exes: Arc::clone(&exes),
        };
        let failed = Arc::new(AtomicBool::new(false));
        let (reader_alive, reader_token) = crate::health::thread_token();
        // Slow filesystems' groups get readers of their own, built like the main one but
        // without the kernel clean cache and the quieting (see slow_fs.rs).
        // Filesystem scope marks whole slow filesystems in them; directory scope the
        // directories of slow filesystems below an include path.
        let slow = (settings.scope == Scope::Filesystem || settings.recursive).then(|| {
            let template = crate::reader::Reader {
                group: Arc::clone(&group),
                policy: Arc::clone(&policy),
                pool: Arc::clone(&pool),
                reporter: Arc::clone(&reporter),
                on_error,
                own_pid: std::process::id() as i32,
                cache: Arc::clone(&cache),
                kernel_cache: None,
                scan_close_write: settings.extra_scanning || settings.events.close,
                locator: Arc::clone(&locator),
                quiet: None,
                heartbeat: None,
                exes: Arc::clone(&exes),
            };
            let pidfds = !exes.is_empty();
            slow_groups(
                template,
                (settings.prevention, pidfds),
                &stop,
                &failed,
                &slow_devs,
            )
        });
        let reader = {
            let rs = Arc::clone(&reader_stop);
            supervised("moat-reader", &stop, &failed, move || {
                let _alive = reader_alive;
                reader.run(&rs)
            })?
        };
        let health = crate::health::StartFacts {
            scope: match (settings.scope, settings.recursive) {
                (Scope::Filesystem, _) => "filesystem",
                (Scope::Directory, true) => "directory",
                (Scope::Directory, false) => "include-paths-only",
            },
            include_paths: roots.clone(),
            mount_paths: mount_paths.clone(),
            prevention: settings.prevention,
            threads: settings.threads.max(1),
            group: Arc::downgrade(&group),
            threads_alive: vec![("reader", reader_token)],
            reactions: settings.reactions.as_ref().map(|r| Arc::clone(&r.0)),
        };
        let quiet = match quiet_thread {
            Some(t) => {
                let s = Arc::clone(&stop);
                Some(supervised("moat-quiet", &stop, &failed, move || t.run(&s))?)
            }
            None => None,
        };
        let flusher = Arc::new(CacheFlusher::new(
            Arc::clone(&slot),
            Arc::clone(&cache),
            kernel_cache.clone(),
        ));
        let follower = {
            let (f, s) = (Arc::clone(&flusher), Arc::clone(&stop));
            supervised("moat-db-follow", &stop, &failed, move || {
                f.follow(&s);
                Ok(())
            })?
        };
        let watchdog = match watchdog {
            Some((heartbeat, interval)) => Some(
                crate::watchdog::spawn(interval, heartbeat, Arc::clone(&pool), Arc::clone(&stop))
                    .map_err(StartError::Thread)?,
            ),
            None => None,
        };
        let mut daemon = Daemon {
            retired: false,
            stop: Arc::clone(&stop),
            watchdog,
            flusher,
            follower: Some(follower),
            reader_stop,
            reader: Some(reader),
            slow: slow.clone(),
            tracker: None,
            mount_watch: None,
            quiet,
            failed: Arc::clone(&failed),
            watcher: Some(watcher),
            pool: Some(Arc::clone(&pool)),
            scanner: slot,
            kernel_cache,
            stats,
            scan_stats,
            lifetime,
            uses: Vec::new(),
            directories: 0,
            whole_marks: 0,
            include_paths: roots.len(),
            setup_time: Duration::ZERO,
            health,
        };
        let mask = mark_mask(&settings);
        let whole = mask - Mask::EVENT_ON_CHILD;
        daemon.whole_marks =
            coverage::cover_whole(&group, MarkKind::Mount, whole, &settings.mount_paths);
        if settings.scope == Scope::Filesystem {
            let cov = crate::fs_scope::FilesystemCoverage::cover(
                Arc::clone(&group),
                roots.clone(),
                whole,
                if open.is_empty() {
                    Mask::CLOSE_WRITE
                } else {
                    open
                },
                Arc::clone(&locator),
                mount_paths.clone(),
                slow.clone(),
            );
            daemon.whole_marks += cov.filesystems();
            daemon.uses.push(cov.summary());
            daemon.uses.push("tracking=none (not needed)".into());
            let s = Arc::clone(&stop);
            daemon.mount_watch = Some(supervised("moat-mounts", &stop, &failed, move || {
                cov.run(&s)
            })?);
        } else if settings.recursive {
            let mut cov = DirectoryCoverage::new(
                Arc::clone(&group),
                mask,
                roots,
                Arc::clone(&policy),
                settings.tracking,
            )?;
            if let Some(slow) = &slow {
                cov = cov.with_slow_groups(Arc::clone(slow));
            }
            daemon.uses.push("scope=directory".into());
            daemon.uses.push(format!("tracking={}", cov.tracking()));
            daemon.directories = cov.place_marks()?;
            if let Some(slow) = &slow {
                daemon
                    .uses
                    .push(format!("slow-filesystem groups={}", slow.groups()));
            }
            let files = settings
                .extra_scanning
                .then(|| discovery_sink(&pool, &policy, &reporter));
            let (alive, token) = crate::health::thread_token();
            daemon.health.threads_alive.push(("tracker", token));
            daemon.tracker = Some(supervised_tracker(cov, &stop, &failed, files, alive)?);
        } else {
            daemon.directories = coverage::cover_whole(&group, MarkKind::Inode, mask, &roots);
            daemon
                .uses
                .push("scope=directory (OnAccessDisableDDD: include paths only)".into());
            daemon
                .uses
                .push("tracking=none (OnAccessDisableDDD)".into());
        }
        if !settings.mount_paths.is_empty() {
            daemon
                .uses
                .push(format!("mount marks={}", settings.mount_paths.len()));
        }
        daemon.uses.push(format!("events={}", settings.events));
        if !settings.exclude_exes.is_empty() {
            let how = if group.flags().contains(InitFlags::REPORT_PIDFD) {
                "pidfd from each event"
            } else {
                "pidfd_open"
            };
            daemon.uses.push(format!(
                "excluded executables={} of {} ({how})",
                exe_count,
                settings.exclude_exes.len()
            ));
        }
        daemon.uses.push(match &daemon.kernel_cache {
            Some(k) => format!(
                "cache={} + userspace ({VERDICT_CACHE_ENTRIES} entries)",
                k.describe()
            ),
            None => format!("cache=userspace ({VERDICT_CACHE_ENTRIES} entries)"),
        });
        daemon.setup_time = started.elapsed();
        Ok(daemon)
    }

    /// Puts a new scanner (a reloaded database) in use: every scan that starts from now on
    /// uses it, the kernel's ignore marks are flushed and the userspace cache cleared, so no
    /// verdict of the old database answers again. Scans in progress finish with the old one
    /// (their verdicts are filed under the old generation and never answer for the new).
    pub fn reload(&self, scanner: Arc<dyn Scanner>) {
        self.scanner.replace(scanner);
        self.flusher.flush_if_new("new signature database in use");
    }

    /// The line logged (and sent as systemd `STATUS=`) when ready: what is watched, how
    /// fast, and what the coverage uses (scope, tracking backend, cache, fallbacks and why).
    pub fn status_line(&self) -> String {
        let what = if self.whole_marks > 0 && self.directories == 0 {
            format!(
                "watching every directory of {} filesystems/mounts under {} include paths in {} ms",
                self.whole_marks,
                self.include_paths,
                self.setup_time.as_millis()
            )
        } else {
            format!(
                "watching {} directories under {} include paths in {} ms",
                self.directories,
                self.include_paths,
                self.setup_time.as_millis()
            )
        };
        format!("{what}; {}", self.uses.join("; "))
    }

    /// What a reload's new daemon goes on with ([`start_with`](Self::start_with)), and
    /// where `moat watch` records each reload.
    pub fn lifetime(&self) -> &Lifetime {
        &self.lifetime
    }

    /// A [`Probe`](crate::health::Probe) reading this daemon's state on demand (`moat
    /// status`, metrics). Take it once started: the uptime counts from the first probe of
    /// the [`Lifetime`].
    pub fn probe(&self) -> crate::health::Probe {
        self.lifetime.ready();
        crate::health::Probe {
            facts: Arc::new(self.health.clone()),
            stop: Arc::clone(&self.stop),
            failed: Arc::clone(&self.failed),
            scanner: Arc::clone(&self.scanner),
            stats: Arc::clone(&self.stats),
            scan_stats: Arc::clone(&self.scan_stats),
            pool: self.pool.as_ref().map(|p| p.load()),
            lifetime: self.lifetime.clone(),
            status_line: self.status_line(),
        }
    }

    /// Blocks until stop is requested, then stops. See the module docs for the order.
    pub fn run_until_stopped(self) {
        self.stop.wait();
        self.stop();
    }

    /// Waits until `signals` (SIGTERM/SIGINT) or `hup` (SIGHUP) is triggered, or this
    /// daemon stops by itself (a daemon thread died: [`Wake::Failed`]). Each daemon has a
    /// stop of its own, apart from the signals, so that a reload can start a new daemon and
    /// then stop the old one (see `moat watch`'s reload).
    pub fn wait(&self, signals: &Stop, hup: &Stop) -> Wake {
        loop {
            match crate::stop::wait_readable(&[self.stop.fd(), signals.fd(), hup.fd()]) {
                Ok([true, _, _]) if self.failed.load(SeqCst) => return Wake::Failed,
                Ok([true, _, _]) | Ok([_, true, _]) => return Wake::Stop,
                Ok([_, _, true]) => return Wake::Hup,
                Ok(_) => {}
                // poll on three pipes of our own cannot fail but for EINTR (retried inside).
                Err(_) => return Wake::Stop,
            }
        }
    }

    /// Stops a daemon that a reload replaced (a new one already answers every event): as
    /// [`stop`](Self::stop), with a summary line that says so.
    pub fn retire(mut self) {
        self.retired = true;
        self.shutdown();
    }

    /// Stops now. See the module docs for the order.
    pub fn stop(mut self) {
        self.shutdown();
    }

    /// The stop sequence; idempotent, so that `Drop` (a start that failed half-way, a
    /// panic) stops whatever was started.
    fn shutdown(&mut self) {
        if self.reader.is_none() && self.watcher.is_none() {
            return;
        }
        self.stop.trigger();
        let counts = self
            .tracker
            .take()
            .and_then(|t| t.join().ok())
            .flatten()
            .map(|c| c.counts());
        if let Some(m) = self.mount_watch.take() {
            let _ = m.join();
        }
        if let Some(q) = self.quiet.take() {
            let _ = q.join();
        }
        if let Some(w) = self.watchdog.take() {
            let _ = w.join();
        }
        if let Some(f) = self.follower.take() {
            let _ = f.join();
        }
        // The reader removes the marks, then allows whatever is still queued.
        self.reader_stop.trigger();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        if let Some(slow) = self.slow.take() {
            slow.shutdown(Duration::from_millis(300));
        }
        if let Some(w) = self.watcher.take() {
            w.shutdown();
        }
        if let Some(pool) = self.pool.take().and_then(Arc::into_inner) {
            if !pool.shutdown_within(Duration::from_millis(300)) {
                tracing::info!("a scan still running at shutdown was abandoned (its access was already allowed)");
            }
        }
        self.log_summary(counts);
    }

    fn log_summary(&self, counts: Option<CoverageCounts>) {
        let s = &self.stats;
        let g = &self.scan_stats;
        tracing::info!(
            scanned_clean = Stats::get(&g.clean),
            infected = Stats::get(&g.infected),
            cache_hits = Stats::get(&g.cache_hits),
            skipped = Stats::get(&g.skipped),
            failures = Stats::get(&g.failures),
            deadline_expired = Stats::get(&g.deadline_expired),
            coalesced = Stats::get(&g.coalesced),
            open_for_writing = Stats::get(&g.open_for_writing),
            watcher_restarts = Stats::get(&g.watcher_restarts),
            retries = Stats::get(&g.retries),
            kernel_cache = ?self.kernel_cache.as_ref().map(|k| &k.stats),
            open_events = s.open_events.load(Relaxed),
            exec_events = s.exec_events.load(Relaxed),
            close_writes = s.close_writes.load(Relaxed),
            unplaced = s.unplaced.load(Relaxed),
            quieted_dirs = s.quieted_dirs.load(Relaxed),
            shutdown_answers = Stats::get(&g.shutdown_answers) + s.drained.load(Relaxed),
            answer_errors = s.answer_errors.load(Relaxed),
            allowed_unscanned = %s.allowed_summary(),
            coverage = ?counts,
            "{}",
            if self.retired {
                "replaced by a reload: stopped after the new configuration was in place"
            } else {
                "stopped"
            }
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Canonical include paths; `/` refused with tracking.
fn resolve_includes(settings: &WatchSettings) -> Result<Vec<PathBuf>, StartError> {
    if settings.include_paths.is_empty() && settings.mount_paths.is_empty() {
        return Err(StartError::NoIncludePath);
    }
    let mut roots = Vec::new();
    for p in &settings.include_paths {
        let c = p.canonicalize().map_err(|error| StartError::IncludePath {
            path: p.clone(),
            error,
        })?;
        if c == Path::new("/") && settings.recursive && settings.scope == Scope::Directory {
            return Err(StartError::RootInclude);
        }
        if !roots.contains(&c) {
            roots.push(c);
        }
    }
    // A root inside another root is covered by the outer walk already.
    let all = roots.clone();
    roots.retain(|r| !all.iter().any(|o| o != r && r.starts_with(o)));
    Ok(roots)
}

/// The include paths, the mount points below them (as this namespace shows them now) and
/// the mount paths: the anchors of [`crate::locate::Locator`].
fn anchor_paths(roots: &[PathBuf], mount_paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = crate::mounts::plan_here(roots)
        .filesystems
        .into_iter()
        .map(|f| f.path)
        .collect();
    for p in roots.iter().chain(mount_paths) {
        if !paths.contains(p) {
            paths.push(p.clone());
        }
    }
    paths
}

fn build_policy(settings: &WatchSettings, roots: &[PathBuf]) -> Result<Policy, regex::Error> {
    let mut include_paths = roots.to_vec();
    include_paths.extend(
        settings
            .mount_paths
            .iter()
            .filter_map(|p| p.canonicalize().ok()),
    );
    Policy::new(PolicySettings {
        include_paths,
        exclude_patterns: settings.exclude_patterns.clone(),
        exclude_uids: settings.exclude_uids.clone(),
        exclude_root_uid: settings.exclude_root_uid,
        own_pid: std::process::id() as i32,
        // Canonical, like the paths the kernel reports; a missing one cannot hold files.
        never_watched: settings
            .never_watched
            .iter()
            .filter_map(|p| p.canonicalize().ok())
            .collect(),
        max_file_size: settings.max_file_size,
    })
}

/// The group; with `pidfds` (process exclusions) each event carries the accessor's pidfd
/// (`FAN_REPORT_PIDFD`, 5.15+; without it the reader falls back to `pidfd_open`).
fn init_group(prevention: bool, pidfds: bool) -> Result<Group, moat_fanotify::Error> {
    // A full queue fails open: the queue is unlimited. So are marks (one per directory).
    let class = if prevention {
        InitFlags::CLASS_CONTENT
    } else {
        InitFlags::CLASS_NOTIF
    };
    let flags = class
        | InitFlags::UNLIMITED_QUEUE
        | InitFlags::UNLIMITED_MARKS
        | InitFlags::CLOEXEC
        | InitFlags::NONBLOCK;
    let f_flags = libc::O_RDONLY | libc::O_CLOEXEC | libc::O_LARGEFILE;
    if pidfds {
        match Group::init(flags | InitFlags::REPORT_PIDFD, f_flags) {
            Ok(g) => return Ok(g),
            Err(e) => {
                tracing::info!(error = %e, "FAN_REPORT_PIDFD refused: process exclusions use pidfd_open")
            }
        }
    }
    Group::init(flags, f_flags)
}

/// Entries of the userspace verdict cache (a few MB).
const VERDICT_CACHE_ENTRIES: usize = 1 << 16;

/// The open events decided on (`OnAccessEvents` open and exec): permission events with
/// prevention, notifications without. Empty for `close` alone.
fn open_mask(settings: &WatchSettings) -> Mask {
    let (open, exec) = if settings.prevention {
        (Mask::OPEN_PERM, Mask::OPEN_EXEC_PERM)
    } else {
        (Mask::OPEN, Mask::OPEN_EXEC)
    };
    let mut mask = Mask::empty();
    if settings.events.open {
        mask |= open;
    }
    if settings.events.exec {
        mask |= exec;
    }
    mask
}

/// The open events, and close-after-write always: it invalidates both clean caches (a write
/// through a shared mmap changes nothing else the kernel or `fstat` would see) and feeds
/// `OnAccessEvents close` / extra scanning. A write-close is never a read: `--events exec`
/// still raises no event for a file only read.
fn mark_mask(settings: &WatchSettings) -> Mask {
    open_mask(settings) | Mask::CLOSE_WRITE | Mask::EVENT_ON_CHILD
}

/// The tree tracker's thread, supervised like [`supervised`]'s (review F12): a panic, or
/// a return while no stop was asked (tracking gave up), leaves new directories uncovered,
/// so it is logged as an error and the daemon stops with a failure. The coverage comes back
/// for the summary when the tracker ends normally. `MOAT_TEST_FAULT=tracker-panic` (test
/// only) makes it panic at once.
fn supervised_tracker(
    cov: DirectoryCoverage,
    stop: &Arc<Stop>,
    failed: &Arc<AtomicBool>,
    files: Option<crate::tracker::FileSink>,
    alive: Arc<()>,
) -> Result<JoinHandle<Option<DirectoryCoverage>>, StartError> {
    let (stop, failed) = (Arc::clone(stop), Arc::clone(failed));
    std::thread::Builder::new()
        .name("moat-tracker".into())
        .spawn(move || {
            // Held while the thread runs: `moat status` sees the tracker gone when it is.
            let _alive = alive;
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let fault = std::env::var_os(crate::reader::FAULT_ENV)
                    .is_some_and(|v| v == "tracker-panic");
                assert!(!fault, "fault injected by MOAT_TEST_FAULT=tracker-panic");
                crate::tracker::run(cov, &stop, files)
            }));
            let error = match &run {
                Err(p) => Some(panic_text(&**p)),
                Ok(_) if !stop.is_triggered() => Some("tree tracking stopped".to_owned()),
                Ok(_) => None,
            };
            if let Some(e) = error {
                tracing::error!(thread = "moat-tracker", error = %e, "a daemon thread died: stopping with a failure (restart moat; while it is down the kernel allows every access)");
                failed.store(true, SeqCst);
                stop.trigger();
            }
            run.ok()
        })
        .map_err(StartError::Thread)
}

/// The groups of slow filesystems: each new one gets a reader like `template` (on its own
/// group), supervised like the main reader.
fn slow_groups(
    template: crate::reader::Reader,
    (prevention, pidfds): (bool, bool),
    stop: &Arc<Stop>,
    failed: &Arc<AtomicBool>,
    devs: &Arc<crate::slow_fs::SlowDevs>,
) -> Arc<crate::slow_fs::SlowGroups> {
    let (stop, failed) = (Arc::clone(stop), Arc::clone(failed));
    let template = Arc::new(template);
    let spawn: crate::slow_fs::SpawnReader = Box::new(move |group, own_stop, n| {
        let t = &template;
        let reader = crate::reader::Reader {
            group,
            policy: Arc::clone(&t.policy),
            pool: Arc::clone(&t.pool),
            reporter: Arc::clone(&t.reporter),
            on_error: t.on_error,
            own_pid: t.own_pid,
            cache: Arc::clone(&t.cache),
            kernel_cache: None,
            scan_close_write: t.scan_close_write,
            locator: Arc::clone(&t.locator),
            quiet: None,
            heartbeat: None,
            exes: Arc::clone(&t.exes),
        };
        let name = format!("moat-reader-slow{n}");
        supervised(&name, &stop, &failed, move || reader.run(&own_stop)).map_err(|e| e.to_string())
    });
    Arc::new(crate::slow_fs::SlowGroups::new(
        Box::new(move || init_group(prevention, pidfds)),
        spawn,
        Arc::clone(devs),
    ))
}

/// Starts a daemon thread whose death must not pass silently (review F12): if `body`
/// panics or returns an error while no stop was asked, it is logged as an error, the daemon
/// is marked failed and stopped (every mark removed, everything pending answered), and the
/// process exits with a failure for systemd to restart it. Never a daemon running on with a
/// part missing.
fn supervised<F>(
    name: &str,
    stop: &Arc<Stop>,
    failed: &Arc<AtomicBool>,
    body: F,
) -> Result<JoinHandle<()>, StartError>
where
    F: FnOnce() -> Result<(), String> + Send + 'static,
{
    let (stop, failed, thread) = (Arc::clone(stop), Arc::clone(failed), name.to_owned());
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body))
                .unwrap_or_else(|p| Err(panic_text(&*p)));
            if let Err(e) = r {
                tracing::error!(thread = %thread, error = %e, "a daemon thread died: stopping with a failure (restart moat; while it is down the kernel allows every access)");
                failed.store(true, SeqCst);
                stop.trigger();
            }
        })
        .map_err(StartError::Thread)
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    match (p.downcast_ref::<&str>(), p.downcast_ref::<String>()) {
        (Some(s), _) => format!("panicked: {s}"),
        (_, Some(s)) => format!("panicked: {s}"),
        _ => "panicked".into(),
    }
}

/// Extra scanning of files the tracker discovers: opened by the tracker (our own pid, so
/// the reader allows the open at once), checked against the policy, scanned, reported.
fn discovery_sink(
    pool: &Arc<WorkerPool>,
    policy: &Arc<Policy>,
    reporter: &Arc<Reporter>,
) -> crate::tracker::FileSink {
    let (pool, policy, reporter) = (Arc::clone(pool), Arc::clone(policy), Arc::clone(reporter));
    Box::new(move |path: &Path| {
        let Ok(file) = open_regular(path) else { return };
        let size = file.metadata().ok().map(|m| m.len());
        let facts = moat_guard::AccessFacts {
            pid: 0,
            uid: None,
            path,
            size,
        };
        if policy.decide(&facts) != moat_guard::Decision::Scan {
            return;
        }
        let access = Access {
            path: path.to_path_buf(),
            pid: 0,
            uid: None,
            kind: AccessKind::Discovered,
        };
        reporter.stats.reported_scans.fetch_add(1, Relaxed);
        let keep = reporter
            .reactions
            .as_ref()
            .and_then(|_| file.try_clone().ok());
        pool.submit(
            file,
            ReportSink::with_file(access, Arc::clone(&reporter), keep),
        );
    })
}

fn open_regular(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
}
