//! `moat watch`: the on-access daemon's command line.
//!
//! Reads clamd.conf (`-c`, default /etc/clamav/clamd.conf when it exists), lets flags
//! override its keys, sets up logging (stderr, plus LogFile; LogVerbose, LogTime), loads the signature
//! database (DatabaseDirectory, or `-d`) and runs [`moat_watch::Daemon`] in the foreground
//! until SIGTERM or SIGINT. Exit status: 0 after a clean stop, 2 when it cannot start.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use moat_config::{Config, Coverage, Tracking};
use moat_watch::{Daemon, Scope, Stop, TrackingMode, WatchSettings};

/// Protect directories on access: block (or report) infected files as they are opened.
#[derive(Args, Debug)]
pub struct WatchArgs {
    /// Directories to protect: replace OnAccessIncludePath and turn prevention on.
    #[arg(value_name = "DIR")]
    dirs: Vec<PathBuf>,
    /// clamd.conf to read [default: /etc/clamav/clamd.conf when it exists].
    #[arg(short = 'c', long = "config-file", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Block infected files (OnAccessPrevention yes).
    #[arg(long, conflicts_with = "no_prevention")]
    prevention: bool,
    /// Only report infected files, never block (OnAccessPrevention no).
    #[arg(long)]
    no_prevention: bool,
    /// Watch only the include paths themselves, not their subdirectories (OnAccessDisableDDD).
    #[arg(long)]
    no_ddd: bool,
    /// Also scan and report files closed after writing, moved in, or in new directories.
    #[arg(long)]
    extra_scanning: bool,
    /// With prevention, deny access when a scan fails or misses its deadline.
    #[arg(long)]
    deny_on_error: bool,
    /// Scanning threads (OnAccessMaxThreads).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_threads: Option<u32>,
    /// Deadline of every verdict, e.g. 5s or 500ms (OnAccessScanTimeout).
    #[arg(long, value_name = "DURATION", value_parser = moat_config::parse_duration)]
    scan_timeout: Option<Duration>,
    /// Larger files are allowed unscanned; 0 = no limit (OnAccessMaxFileSize).
    #[arg(long, value_name = "SIZE", value_parser = crate::size::parse_size)]
    max_filesize: Option<u64>,
    /// Do not protect directories matching this extended regex (adds to OnAccessExcludePath).
    #[arg(long, value_name = "REGEX")]
    exclude_path: Vec<String>,
    /// Do not scan accesses by this uid (adds to OnAccessExcludeUID).
    #[arg(long, value_name = "UID")]
    exclude_uid: Vec<u32>,
    /// Do not scan accesses by this user (adds to OnAccessExcludeUname).
    #[arg(long, value_name = "NAME")]
    exclude_uname: Vec<String>,
    /// Do not scan accesses by root (OnAccessExcludeRootUID).
    #[arg(long)]
    exclude_root_uid: bool,
    /// How marks are placed (OnAccessCoverage).
    #[arg(long, value_enum)]
    coverage: Option<CoverageArg>,
    /// How directory scope follows the tree (OnAccessTracking): fanotify needs no inotify
    /// watches; auto picks it when the kernel and filesystems allow.
    #[arg(long, value_enum)]
    tracking: Option<TrackingArg>,
    /// Scan on this clamd (or `moat serve`) server instead of the embedded engine (repeatable;
    /// adds to ClamdSocket): unix:PATH (FILDES) or tcp:HOST[:PORT] (INSTREAM).
    #[arg(long = "clamd", value_name = "unix:PATH|tcp:HOST[:PORT]")]
    clamd: Vec<moat_clamd::client::Endpoint>,
    /// With clamd servers: the longest any connect, send or receive may wait before a server
    /// counts as down and the next one is tried (OnAccessCurlTimeout), e.g. 1s.
    #[arg(long, value_name = "DURATION", value_parser = moat_config::parse_duration)]
    clamd_timeout: Option<Duration>,
    /// With clamd servers: how often each is asked for its VERSION
    /// (MoatClamdHealthInterval, default 1s): a server down or back, or loading a new
    /// database (the clean caches are then flushed), is noticed within it.
    #[arg(long, value_name = "DURATION", value_parser = moat_config::parse_duration)]
    clamd_health_interval: Option<Duration>,
    /// Signature database file or directory (replaces DatabaseDirectory).
    #[arg(short = 'd', long = "database", value_name = "FILE|DIR")]
    database: Vec<PathBuf>,
    /// Also log to this file (LogFile); logs always go to stderr.
    #[arg(short = 'l', long = "log", value_name = "FILE")]
    log: Option<PathBuf>,
    /// Log every decision (LogVerbose).
    #[arg(short, long)]
    verbose: bool,
    /// The control socket and the metrics endpoint (`moat status`, `--metrics`).
    #[command(flatten)]
    health: crate::status::HealthArgs,
    /// What happens after a detection.
    #[command(flatten)]
    react: crate::react::ReactArgs,
    // ---- modes: which accesses are checked, and by whom ----
    /// Accesses checked, a comma list of open, exec, close (OnAccessEvents) [default:
    /// open,exec]. exec alone blocks execution only; close scans files closed after writing
    /// and reports (never blocks).
    #[arg(long, value_name = "LIST", value_parser = parse_events)]
    events: Option<moat_config::Events>,
    /// Do not scan accesses by processes running this executable, matched by inode
    /// (OnAccessExcludeExe; repeatable).
    #[arg(long, value_name = "PATH")]
    exclude_exe: Vec<PathBuf>,
    /// As --exclude-exe, and also their descendants (OnAccessExcludeExe PATH +children).
    #[arg(long, value_name = "PATH")]
    exclude_exe_children: Vec<PathBuf>,
}

fn parse_events(s: &str) -> Result<moat_config::Events, String> {
    s.parse()
}

/// `--coverage` values.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum CoverageArg {
    Directory,
    Filesystem,
}

/// `--tracking` values.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum TrackingArg {
    Auto,
    Fanotify,
    Inotify,
}

/// Runs `moat watch`; returns the exit status.
pub fn run(args: WatchArgs) -> u8 {
    let config = match load_config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ERROR: {e}");
            return 2;
        }
    };
    let logs = match init_logging(&config) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("ERROR: {e}");
            return 2;
        }
    };
    for w in config.warnings() {
        tracing::warn!("{w}");
    }
    for k in config.unused_keys() {
        tracing::debug!(line = k.line, key = %k.key, "known clamd key not used by moat watch");
    }
    let status = match start_and_run(&args, &config) {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!("{e}");
            2
        }
    };
    if logs.dropped() > 0 {
        tracing::warn!(
            lines = logs.dropped(),
            "log lines dropped: a log destination could not keep up"
        );
    }
    status
}

/// The configuration file, then the flags over it.
/// clamd.conf for `moat watch` and `moat serve`: `explicit` (`-c`), else
/// /etc/clamav/clamd.conf when it exists, else the defaults.
pub(crate) fn read_config(explicit: Option<&Path>) -> Result<Config, String> {
    let default = Path::new(moat_config::DEFAULT_CONFIG_PATH);
    match explicit.or_else(|| default.exists().then_some(default)) {
        Some(p) => Config::load(p).map_err(|e| e.to_string()),
        None => Ok(Config::default()),
    }
}

fn load_config(args: &WatchArgs) -> Result<Config, String> {
    let mut c = read_config(args.config.as_deref())?;
    apply_flags(args, &mut c).map_err(|e| format!("--exclude-path: {e}"))?;
    Ok(c)
}

fn apply_flags(a: &WatchArgs, c: &mut Config) -> Result<(), regex::Error> {
    if !a.dirs.is_empty() {
        c.on_access_include_paths = a.dirs.clone();
        c.on_access_prevention = true;
    }
    if a.prevention {
        c.on_access_prevention = true;
    }
    if a.no_prevention {
        c.on_access_prevention = false;
    }
    c.on_access_disable_ddd |= a.no_ddd;
    c.on_access_extra_scanning |= a.extra_scanning;
    c.on_access_deny_on_error |= a.deny_on_error;
    c.on_access_exclude_root_uid |= a.exclude_root_uid;
    c.on_access_max_threads = a.max_threads.unwrap_or(c.on_access_max_threads);
    c.on_access_scan_timeout = a.scan_timeout.unwrap_or(c.on_access_scan_timeout);
    if let Some(size) = a.max_filesize {
        c.on_access_max_file_size = (size > 0).then_some(size);
    }
    for p in &a.exclude_path {
        c.on_access_exclude_paths
            .push(moat_config::PathPattern::new(p)?);
    }
    c.on_access_exclude_uids.extend(&a.exclude_uid);
    c.on_access_exclude_unames
        .extend(a.exclude_uname.iter().cloned());
    if let Some(cov) = a.coverage {
        c.on_access_coverage = match cov {
            CoverageArg::Directory => Coverage::Directory,
            CoverageArg::Filesystem => Coverage::Filesystem,
        };
    }
    if let Some(t) = a.tracking {
        c.on_access_tracking = match t {
            TrackingArg::Auto => Tracking::Auto,
            TrackingArg::Fanotify => Tracking::Fanotify,
            TrackingArg::Inotify => Tracking::Inotify,
        };
    }
    c.clamd_sockets.extend(a.clamd.iter().cloned());
    if let Some(t) = a.clamd_timeout {
        c.on_access_curl_timeout = t;
    }
    if let Some(t) = a.clamd_health_interval {
        c.moat_clamd_health_interval = t;
    }
    if let Some(log) = &a.log {
        c.log_file = Some(log.clone());
    }
    c.log_verbose |= a.verbose;
    c.on_access_events = a.events.unwrap_or(c.on_access_events);
    for (paths, children) in [(&a.exclude_exe, false), (&a.exclude_exe_children, true)] {
        c.on_access_exclude_exes
            .extend(paths.iter().map(|p| moat_config::ExeExclusion {
                path: p.clone(),
                children,
            }));
    }
    Ok(())
}

/// Logs go to stderr (a foreground daemon: systemd's journal takes them) and, with LogFile,
/// to that file too (appended). LogVerbose: debug level, else info; `RUST_LOG` overrides.
/// LogTime: timestamps.
///
/// Every line goes through a lossy non-blocking writer (tracing-appender: a bounded queue
/// and a writer thread per destination): the threads that answer permission events (the
/// workers, the deadline watcher) never wait on a log write. A full stderr pipe or a LogFile
/// on a stalled filesystem then drops lines, counted and reported at shutdown, instead of
/// stopping deadline enforcement (review F13). The guards flush what is queued on exit.
pub(crate) fn init_logging(c: &Config) -> Result<LogGuards, String> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let level = if c.log_verbose { "debug" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let file = match &c.log_file {
        Some(path) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("LogFile {}: {e}", path.display()))?,
        ),
        None => None,
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let lossy = |w: Box<dyn std::io::Write + Send>| {
        tracing_appender::non_blocking::NonBlockingBuilder::default()
            .lossy(true)
            .thread_name("moat-log")
            .finish(w)
    };
    let (stderr, stderr_guard) = lossy(Box::new(std::io::stderr()));
    let mut guards = LogGuards {
        dropped: vec![stderr.error_counter()],
        _guards: vec![stderr_guard],
    };
    let file = file.map(|f| {
        let (w, g) = lossy(Box::new(f));
        guards.dropped.push(w.error_counter());
        guards._guards.push(g);
        w
    });
    // Timestamps change the layers' types: one arm each rather than boxed layers.
    let registry = tracing_subscriber::registry().with(filter);
    if c.log_time {
        let stderr_layer = tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_ansi(ansi)
            .with_writer(stderr);
        let file_layer = file.map(|f| {
            tracing_subscriber::fmt::layer()
                .with_target(false)
                .with_ansi(false)
                .with_writer(f)
        });
        registry.with(stderr_layer).with(file_layer).init();
    } else {
        let stderr_layer = tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_ansi(ansi)
            .without_time()
            .with_writer(stderr);
        let file_layer = file.map(|f| {
            tracing_subscriber::fmt::layer()
                .with_target(false)
                .with_ansi(false)
                .without_time()
                .with_writer(f)
        });
        registry.with(stderr_layer).with(file_layer).init();
    }
    Ok(guards)
}

/// Keeps the log writer threads alive (dropping flushes them) and counts lost lines.
pub(crate) struct LogGuards {
    dropped: Vec<tracing_appender::non_blocking::ErrorCounter>,
    _guards: Vec<tracing_appender::non_blocking::WorkerGuard>,
}

impl LogGuards {
    /// Lines dropped because a log destination could not keep up.
    fn dropped(&self) -> usize {
        self.dropped.iter().map(|c| c.dropped_lines()).sum()
    }
}

fn start_and_run(args: &WatchArgs, c: &Config) -> Result<(), String> {
    let mut settings = settings(c)?;
    let reactions = crate::react::start(&args.react, c)?.map(moat_watch::SharedReactions);
    settings.reactions = reactions.clone();
    let scanner = load_scanner(args, c, 1)?;
    let signals = Stop::new().map_err(|e| format!("cannot create the stop pipe: {e}"))?;
    signals
        .on_signals(&[libc::SIGTERM, libc::SIGINT])
        .map_err(|e| format!("cannot handle signals: {e}"))?;
    // SIGHUP reloads clamd.conf and the signature database (as clamd's RELOAD). Its default
    // action would kill the daemon, and the kernel would then allow everything. Caught
    // before READY=1, so that a SIGHUP sent as soon as the daemon is ready is caught too.
    let hup = Stop::new().map_err(|e| format!("cannot create the SIGHUP pipe: {e}"))?;
    hup.on_signals(&[libc::SIGHUP])
        .map_err(|e| format!("cannot handle SIGHUP: {e}"))?;
    let endpoints = crate::status::Endpoints::bind(&args.health, c)?;
    let daemon = start_daemon(settings.clone(), scanner, moat_watch::Lifetime::default())?;
    let endpoints = endpoints.serve(&daemon)?;
    announce(&daemon, "READY=1");
    let mut running = Running {
        config: c.clone(),
        settings,
        daemon,
        generation: 1,
    };
    let ran = loop {
        match running.daemon.wait(&signals, &hup) {
            moat_watch::Wake::Hup => {
                hup.clear();
                running = reload(args, running);
                endpoints.follow(&running.daemon);
            }
            moat_watch::Wake::Stop => break Ok(()),
            moat_watch::Wake::Failed => {
                break Err("a daemon thread died (see the error above); stopped".into())
            }
        }
    };
    let _ = moat_watch::notify::notify("STOPPING=1");
    running.daemon.stop();
    endpoints.shutdown();
    if let Some(r) = &reactions {
        r.0.stop(Duration::from_secs(5));
    }
    ran
}

/// The daemon in service and what it was built from.
struct Running {
    config: Config,
    settings: WatchSettings,
    daemon: Daemon,
    generation: u64,
}

/// Starts a daemon counting into `lifetime` (a reload passes the old daemon's, so that
/// counters and uptime go on).
fn start_daemon(
    settings: WatchSettings,
    scanner: Arc<dyn moat_guard::Scanner>,
    lifetime: moat_watch::Lifetime,
) -> Result<Daemon, String> {
    // A stop of its own (not the signals'): a reload stops the old daemon alone.
    let stop = Arc::new(Stop::new().map_err(|e| format!("cannot create a stop pipe: {e}"))?);
    Daemon::start_with(settings, scanner, stop, lifetime).map_err(|e| e.to_string())
}

/// Logs the daemon's status line and sends it to systemd with `state` (`READY=1`).
fn announce(daemon: &Daemon, state: &str) {
    let status = daemon.status_line();
    tracing::info!("{status}");
    if let Err(e) = moat_watch::notify::notify(&format!("{state}\nSTATUS={status}")) {
        tracing::warn!(error = %e, "cannot notify $NOTIFY_SOCKET");
    }
}

/// SIGHUP: clamd.conf (with the command line's flags over it again) and the signature
/// database, both loaded before anything changes. A configuration or database that does
/// not load leaves everything as it was, and says why (file, line, reason). Same settings:
/// the new database is put in place ([`Daemon::reload`]). Other settings: a new daemon
/// (its own fanotify group, marks and threads) is started while the old one still answers
/// every event — the kernel asks every group, so each access is checked by at least one of
/// them throughout — and only then is the old one stopped. Never a moment without marks.
fn reload(args: &WatchArgs, mut run: Running) -> Running {
    let _ =
        moat_watch::notify::notify(&format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()));
    tracing::info!("SIGHUP: reloading the configuration and the signature database");
    let loaded = load_config(args).and_then(|c| {
        let s = settings(&c)?;
        Ok((c, s))
    });
    let (config, mut settings) = match loaded {
        Ok(cs) => cs,
        Err(e) => {
            tracing::error!("SIGHUP: the configuration does not load, still running with the previous configuration and database: {e}");
            run.daemon
                .lifetime()
                .record_reload(Err(format!("the configuration does not load: {e}")));
            announce(&run.daemon, "READY=1");
            return run;
        }
    };
    for w in config.warnings() {
        tracing::warn!("{w}");
    }
    let scanner = match load_scanner(args, &config, run.generation + 1) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("SIGHUP: reload failed, still running with the previous configuration and database: {e}");
            run.daemon
                .lifetime()
                .record_reload(Err(format!("the database does not load: {e}")));
            announce(&run.daemon, "READY=1");
            return run;
        }
    };
    warn_fixed_keys(&run.config, &config);
    // The reaction thread (--move/--copy/--remove, VirusEvent, detection log) was started
    // once; it goes on unchanged.
    settings.reactions = run.settings.reactions.clone();
    let lifetime = run.daemon.lifetime().clone();
    if settings == run.settings {
        run.daemon.reload(scanner);
        lifetime.record_reload(Ok("new database in place".into()));
    } else {
        match start_daemon(settings.clone(), scanner, lifetime.clone()) {
            Ok(new) => {
                std::mem::replace(&mut run.daemon, new).retire();
                tracing::info!("SIGHUP: new configuration in place");
                lifetime.record_reload(Ok("new configuration and database in place".into()));
                run.settings = settings;
            }
            Err(e) => {
                tracing::error!("SIGHUP: the new configuration cannot start, still running with the previous configuration and database: {e}");
                lifetime.record_reload(Err(format!("the new configuration cannot start: {e}")));
            }
        }
    }
    run.generation += 1;
    run.config = config;
    announce(&run.daemon, "READY=1");
    run
}

/// Keys read once at start (logging): a change is logged, not applied.
fn warn_fixed_keys(old: &Config, new: &Config) {
    if (&old.log_file, old.log_verbose, old.log_time)
        != (&new.log_file, new.log_verbose, new.log_time)
    {
        tracing::warn!(
            "SIGHUP: LogFile, LogVerbose and LogTime take effect at the next start only"
        );
    }
    if (&old.virus_event, &old.moat_detection_log) != (&new.virus_event, &new.moat_detection_log) {
        tracing::warn!(
            "SIGHUP: VirusEvent and MoatDetectionLog take effect at the next start only"
        );
    }
    if (&old.moat_control_socket, &old.moat_metrics_address)
        != (&new.moat_control_socket, &new.moat_metrics_address)
    {
        tracing::warn!(
            "SIGHUP: MoatControlSocket and MoatMetricsAddress take effect at the next start only"
        );
    }
}

/// `CLOCK_MONOTONIC` in microseconds, for systemd's `RELOADING=1` message.
fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

fn settings(c: &Config) -> Result<WatchSettings, String> {
    // Checked before the (possibly long) database load; the daemon resolves them again.
    for p in c
        .on_access_include_paths
        .iter()
        .chain(&c.on_access_mount_paths)
    {
        std::fs::metadata(p).map_err(|e| format!("OnAccessIncludePath {}: {e}", p.display()))?;
    }
    let mut exclude_uids = c.on_access_exclude_uids.clone();
    exclude_uids.extend(
        moat_config::resolve_unames(&c.on_access_exclude_unames).map_err(|e| e.to_string())?,
    );
    // Only the database: TemporaryDirectory is not used by moat (it spools to anonymous
    // files) and the daemon's own accesses are allowed by pid anyway; exempting it made a
    // shared writable directory an unscanned drop zone (review F10).
    let never_watched = vec![c.database_directory.clone()];
    Ok(WatchSettings {
        include_paths: c.on_access_include_paths.clone(),
        exclude_patterns: c
            .on_access_exclude_paths
            .iter()
            .map(|p| p.as_str().to_owned())
            .collect(),
        mount_paths: c.on_access_mount_paths.clone(),
        scope: match c.on_access_coverage {
            Coverage::Directory => Scope::Directory,
            Coverage::Filesystem => Scope::Filesystem,
        },
        recursive: !c.on_access_disable_ddd,
        tracking: match c.on_access_tracking {
            Tracking::Auto => TrackingMode::Auto,
            Tracking::Fanotify => TrackingMode::Fanotify,
            Tracking::Inotify => TrackingMode::Inotify,
        },
        prevention: c.on_access_prevention,
        extra_scanning: c.on_access_extra_scanning,
        exclude_uids,
        exclude_root_uid: c.on_access_exclude_root_uid,
        never_watched,
        max_file_size: c.on_access_max_file_size,
        threads: c.on_access_max_threads as usize,
        scan_timeout: c.on_access_scan_timeout,
        deny_on_error: c.on_access_deny_on_error,
        retries: c.on_access_retry_attempts,
        reactions: None,
        events: moat_watch::Events {
            open: c.on_access_events.open,
            exec: c.on_access_events.exec,
            close: c.on_access_events.close,
        },
        exclude_exes: c
            .on_access_exclude_exes
            .iter()
            .map(|x| (x.path.clone(), x.children))
            .collect(),
    })
}

/// Loads the database into a scanner; `generation` numbers the loads (it keys the caches).
/// With ClamdSocket/--clamd the scanner is a pool of those servers instead (a SIGHUP then
/// builds a new pool: the caches start over, for the servers' databases may have changed).
fn load_scanner(
    args: &WatchArgs,
    c: &Config,
    generation: u64,
) -> Result<Arc<dyn moat_guard::Scanner>, String> {
    if !c.clamd_sockets.is_empty() {
        return Ok(clamd_pool(c, generation));
    }
    let db = crate::database::load(
        &args.database,
        &c.database_directory,
        crate::database::load_options(c),
    )
    .map_err(|e| e.to_string())?;
    let engine = Arc::new(moat_engine::Engine::new(db));
    tracing::info!(
        signatures = engine.signature_count(),
        "signature database loaded"
    );
    let limits = moat_engine::Limits {
        parallel_from: Some(PARALLEL_FROM),
        ..engine_limits(c)
    };
    let scanner = moat_guard::EngineScanner::new(engine, limits, generation);
    Ok(Arc::new(crate::database::with_official_version(
        scanner,
        &args.database,
        &c.database_directory,
    )))
}

/// The clamd servers as the scanner; each is asked for its VERSION once so that the log says
/// at start which answer and with what database (a server down now is tried again by every
/// health check).
fn clamd_pool(c: &Config, generation: u64) -> Arc<dyn moat_guard::Scanner> {
    let pool = moat_clamd::client::Pool::new(
        c.clamd_sockets.clone(),
        moat_clamd::client::PoolOptions {
            timeout: c.on_access_curl_timeout,
            health_interval: c.moat_clamd_health_interval,
            generation,
        },
    );
    for (server, ping) in pool.check_all() {
        match ping {
            Ok(db) => tracing::info!(%server, database = %db, "scanning on clamd server"),
            Err(e) => tracing::warn!(%server, "clamd server not answering (yet): {e}"),
        }
    }
    Arc::new(pool)
}

/// Files at least this large that get both a raw and a normalized-text pass have them
/// run at once on two cores (`moat_engine::Limits::parallel_from`): an open waits for
/// its verdict, and while one file is scanned the other cores usually sit idle. Below
/// it, handing the second pass to a pool thread (a wake-up of tens of microseconds on
/// a VM) costs more than it saves.
const PARALLEL_FROM: u64 = 16 << 10;

/// The engine limits clamd.conf sets (MaxFileSize, MaxScanSize, ..., Scan*).
pub(crate) fn engine_limits(c: &Config) -> moat_engine::Limits {
    moat_engine::Limits {
        max_file_size: c.max_file_size,
        max_scan_size: c.max_scan_size,
        max_script_normalize: c.max_script_normalize,
        // 0 is refused by libclamav, which uses the default (measured with clamscan).
        max_recursion: Some(if c.max_recursion == 0 {
            17
        } else {
            c.max_recursion
        }),
        max_files: (c.max_files > 0).then_some(c.max_files as u64),
        alert_exceeds_max: c.alert_exceeds_max,
        scan: moat_engine::containers::ScanKinds {
            archive: c.scan_archive,
            mail: c.scan_mail,
            ole2: c.scan_ole2,
            pdf: c.scan_pdf,
            html: c.scan_html,
        },
        parallel_from: None,
    }
}
