//! `moat-bench watch`: `moat watch` side by side with ClamAV's clamonacc, in one run.
//!
//! For each tree size (`--dirs`), the run mounts a private tmpfs ([`mount`]), generates a
//! reproducible tree in it ([`tree`]) and measures, one product at a time (two permission
//! listeners would each slow the other): no scanner at all (the baseline), `moat watch` in
//! each asked scope (`OnAccessCoverage filesystem`, `directory` with the asked tracking
//! backend), and clamd + `clamonacc --fdpass`. For each: fork the unprivileged prober
//! ([`probe`]), start the daemon(s), wait until every probe directory denies its infected
//! file (full coverage, timed from the daemon's spawn) and moat's READY, count the marks,
//! check that root's opens are scanned too, time the first open of every clean file and
//! then, once all first opens are done, the second open of each (from this process: root,
//! not excluded, not the daemon), run the race rounds ([`race`]) and stop the daemon(s).
//! Processes are stopped and the tmpfs unmounted on every path, Ctrl-C included
//! ([`daemon`], [`mount`]).

pub mod attacks;
mod clamav;
mod coverage;
mod daemon;
mod json;
mod load;
mod moat;
mod mount;
mod probe;
mod race;
pub mod real;
mod report;
mod tree;

use clap::{Args, ValueEnum};
use daemon::{Daemon, Marks, Stopped, TempDir, Watchdog};
use probe::{Pass, Prober};
use std::ffi::CString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `--scope`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ScopeArg {
    /// `OnAccessCoverage filesystem`: one FAN_MARK_FILESYSTEM mark.
    Filesystem,
    /// `OnAccessCoverage directory`: one mark per directory, tracked.
    Directory,
    /// Both, one after the other.
    Both,
}

/// `--tracking`: the `OnAccessTracking` value passed in directory scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Tracking {
    /// fanotify directory-entry events (a notification group with FID reporting).
    Fanotify,
    /// One inotify watch per directory.
    Inotify,
}

impl Tracking {
    fn key(self) -> &'static str {
        match self {
            Tracking::Fanotify => "fanotify",
            Tracking::Inotify => "inotify",
        }
    }
}

/// The arguments `watch` and `watch-real` share: where their files go and the binaries of
/// the products they measure.
#[derive(Args)]
pub struct ProductArgs {
    /// Where configurations, logs and results go [default: <workspace>/target/bench-data].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// The moat binary [default: <target dir>/release/moat, built if missing].
    #[arg(long, value_name = "PATH")]
    pub moat: Option<PathBuf>,
    /// The clamd binary.
    #[arg(long, value_name = "PATH", default_value = "clamd")]
    pub clamd: PathBuf,
    /// The clamonacc binary.
    #[arg(long, value_name = "PATH", default_value = "clamonacc")]
    pub clamonacc: PathBuf,
}

/// Arguments of `moat-bench watch`.
#[derive(Args)]
pub struct WatchArgs {
    /// Small profile: trees of 10,000 and 100,000 directories, 1,000 clean files, 200 race
    /// rounds (well under 3 minutes).
    #[arg(long)]
    quick: bool,
    /// Directories in each tree, a list or repeated [default: 100000,1000000; 10000,100000
    /// with --quick].
    #[arg(long, value_name = "N,...", value_delimiter = ',', value_parser = clap::value_parser!(u64).range(10..))]
    dirs: Vec<u64>,
    /// Small clean files whose first and repeated open are timed [default: 5000, 1000 with
    /// --quick].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    files: Option<u64>,
    /// moat's coverage scope(s) to measure.
    #[arg(long, value_enum, default_value = "both")]
    scope: ScopeArg,
    /// Tracking backend for directory scope, passed as `OnAccessTracking` [default: not
    /// passed, moat's own default].
    #[arg(long, value_enum)]
    tracking: Option<Tracking>,
    /// Rounds of each race variant [default: 2000, 200 with --quick].
    #[arg(long, value_name = "N")]
    race_rounds: Option<u64>,
    /// Do not raise fs.inotify.max_user_watches / fs.fanotify.max_user_marks for big trees
    /// (by default they are raised for the run and restored at exit).
    #[arg(long)]
    no_raise_limits: bool,
    #[command(flatten)]
    products: ProductArgs,
    /// Give up waiting for full coverage after this many seconds [default: 120, 45 with
    /// --quick].
    #[arg(long, value_name = "SECS")]
    timeout: Option<u64>,
    /// Coverage-setup tree sizes on the loop-mounted ext4 image, warm and cold cache
    /// [default: 10000,100000,1000000; 10000,100000 with --quick].
    #[arg(long, value_name = "N,...", value_delimiter = ',', value_parser = clap::value_parser!(u64).range(10..))]
    coverage_dirs: Vec<u64>,
    /// Of those, the sizes measured with a cold cache for every product [default: all of
    /// them; 10000 with --quick]; the others get a cold run of moat's filesystem scope
    /// only (a cold walk of 1,000,000 directories takes 60-75 s per walking product).
    #[arg(long, value_name = "N,...", value_delimiter = ',')]
    cold_dirs: Vec<u64>,
    /// Skip the coverage-setup measurements on the ext4 image.
    #[arg(long)]
    no_coverage: bool,
    /// Fresh files opened per opener count in the verdict-throughput measurement
    /// [default: 4000, 1000 with --quick].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(16..))]
    throughput_files: Option<u64>,
    /// 5 MB files whose first and repeated open are timed [default: 5, 3 with --quick].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    big_files: Option<u64>,
}

/// Everything measured for one product (or for the baseline).
#[derive(Default)]
pub struct Measured {
    /// moat: from spawn to the READY datagram (ms) and its STATUS text.
    pub ready: Option<(f64, String)>,
    /// clamonacc: from clamd's spawn to its first PONG (ms).
    pub server_ready_ms: Option<f64>,
    /// moat: its readiness log line.
    pub watching: Option<moat::Watching>,
    /// Per probe: ms from spawn to the first denied open (None: never denied).
    pub coverage: Vec<Option<f64>>,
    /// Probe opens that failed with something else than EPERM.
    pub probe_errors: Vec<String>,
    /// Marks held by the process owning the fanotify group, once covered.
    pub marks: Option<Marks>,
    /// The same after the opens (a verdict cache in the kernel shows up as inode marks).
    pub marks_after: Option<Marks>,
    /// Root's open of an infected probe: Ok = allowed, Err(errno) = refused.
    pub root_probe: Option<Result<(), i32>>,
    /// First open of every clean file.
    pub first: Pass,
    /// Second open of every clean file, after all first opens.
    pub repeat: Pass,
    /// The race rounds.
    pub races: Option<race::Races>,
    /// First and repeated open() of each 5 MB file (us).
    pub big_first: Vec<f64>,
    /// The repeated opens of the 5 MB files (us).
    pub big_repeat: Vec<f64>,
    /// Opens per second of fresh files, per [`load::OPENERS`] (empty: not measured here).
    pub throughput: Vec<f64>,
    /// `(process, CPU ms of the first-open pass, of the repeated-open pass)` per daemon
    /// process, in start order.
    pub cpu: Vec<(&'static str, f64, f64)>,
    /// Resident memory of the product's processes after the opens (bytes): now, peak.
    pub memory: Option<(u64, u64)>,
    /// How each process stopped, in stop order.
    pub stopped: Vec<(&'static str, Stopped)>,
    /// Other fanotify listeners seen before or after the measurements.
    pub interference: Vec<String>,
}

/// One column of the table.
pub struct Side {
    /// `moat`, `clamonacc`, `none`.
    pub label: &'static str,
    /// moat's scope (`filesystem`, `directory`), None for the others.
    pub scope: Option<&'static str>,
    /// The figures, or why there are none.
    pub result: Result<Measured, String>,
}

/// A started product, whatever it is made of.
struct Started {
    /// Its processes in stop order; the first holds the fanotify group and its spawn is
    /// time zero.
    daemons: Vec<Daemon>,
    /// moat's notify socket.
    notify: Option<UnixDatagram>,
    /// clamd's time to PONG.
    server_ready_ms: Option<f64>,
}

/// The run-wide settings.
struct Plan {
    files: u64,
    /// 5 MB files opened (first, repeated).
    big_files: u64,
    /// Fresh files per opener count in the throughput measurement.
    tp_total: u64,
    /// The tmpfs size the throughput and sample series are measured on.
    tp_size: u64,
    /// Coverage-setup sizes on the ext4 image, and the cold-cache plan.
    coverage: coverage::Plan,
    scopes: Vec<&'static str>,
    tracking: Option<Tracking>,
    race_rounds: u64,
    timeout: Duration,
    raise_limits: bool,
}

/// Paths shared by the measurements of one tree.
struct Setup {
    tree: tree::Tree,
    /// The mount's root (the tree and the race's outside directory are below it).
    mnt: PathBuf,
    clean: Vec<CString>,
    /// The 5 MB files.
    big: Vec<CString>,
    /// Fresh files for each opener count of [`load::OPENERS`] (empty: not measured).
    tp: Vec<Vec<CString>>,
    probe_files: Vec<PathBuf>,
    timeout: Duration,
    race_rounds: u64,
    /// Configurations and logs of this tree size.
    runs: PathBuf,
    tmp: PathBuf,
}

/// One tree size's results.
pub struct SizeRun {
    /// The tree measured.
    pub tree: tree::Tree,
    /// How the tmpfs was mounted.
    pub mount: String,
    /// Limits raised (or not) for it.
    pub limit_notes: Vec<String>,
    /// `(name, command line)` of every daemon started.
    pub commands: Vec<(String, String)>,
    /// Where configurations and logs went.
    pub runs: PathBuf,
    /// `OnAccessTracking` passed in directory scope, if any.
    pub tracking: Option<&'static str>,
    /// moat, one per scope.
    pub moat: Vec<Side>,
    /// clamonacc.
    pub clam: Side,
    /// No scanner.
    pub none: Side,
}

/// Runs the whole benchmark and prints the report.
pub fn run(args: WatchArgs) -> Result<(), String> {
    let started = Instant::now();
    daemon::install_signal_flag();
    // SAFETY: plain syscall.
    if unsafe { libc::geteuid() } != 0 {
        return Err("watch needs root (fanotify permission events, setuid probes, mounts)".into());
    }
    let sizes = if !args.dirs.is_empty() {
        args.dirs.clone()
    } else if args.quick {
        vec![10_000, 100_000]
    } else {
        vec![100_000, 1_000_000]
    };
    let coverage_sizes = if args.no_coverage {
        Vec::new()
    } else if !args.coverage_dirs.is_empty() {
        args.coverage_dirs.clone()
    } else if args.quick {
        vec![10_000, 100_000]
    } else {
        vec![10_000, 100_000, 1_000_000]
    };
    let cold_all_products = if !args.cold_dirs.is_empty() {
        args.cold_dirs.clone()
    } else if args.quick {
        vec![10_000]
    } else {
        coverage_sizes.clone()
    };
    let plan = Plan {
        files: args.files.unwrap_or(if args.quick { 1000 } else { 5000 }),
        big_files: args.big_files.unwrap_or(if args.quick { 3 } else { 5 }),
        tp_total: args
            .throughput_files
            .unwrap_or(if args.quick { 1000 } else { 4000 }),
        tp_size: if sizes.contains(&100_000) {
            100_000
        } else {
            sizes[0]
        },
        coverage: coverage::Plan {
            sizes: coverage_sizes,
            cold_all_products,
        },
        scopes: match args.scope {
            ScopeArg::Filesystem => vec!["filesystem"],
            ScopeArg::Directory => vec!["directory"],
            ScopeArg::Both => vec!["filesystem", "directory"],
        },
        tracking: args.tracking,
        race_rounds: args
            .race_rounds
            .unwrap_or(if args.quick { 200 } else { 2000 }),
        timeout: Duration::from_secs(args.timeout.unwrap_or(if args.quick { 45 } else { 120 })),
        raise_limits: !args.no_raise_limits,
    };
    let data = crate::resolve_data_dir(args.products.data.clone());
    let runs = data.join("watch-runs");
    fs::create_dir_all(&runs).map_err(|e| format!("{}: {e}", runs.display()))?;
    let moat_bin = crate::resolve_moat(args.products.moat.clone())
        .and_then(|bin| moat::available(&bin).map(|()| bin));
    let clam_bins = clamav::locate(
        &args.products.clamd,
        &args.products.clamonacc,
        &runs.join("apt.log"),
    );
    // Drop order (reverse of declaration): each size's tmpfs is unmounted inside
    // `run_size`; then the sysctls are restored; the temp dir goes last.
    let tmp = TempDir::new()?;
    let mut sysctls = mount::Sysctls::default();
    let mut results = Vec::new();
    let mut json = crate::results::Results::new("watch");
    for &dirs in &sizes {
        daemon::check_interrupted()?;
        let r = run_size(
            &plan,
            dirs,
            &runs,
            &tmp.path,
            moat_bin.as_deref(),
            clam_bins.as_ref(),
            &mut sysctls,
        )?;
        report::print_size(&r);
        results.push(r);
    }
    report::print_summary(&results, plan.tracking.map(Tracking::key));
    json::tmpfs_rows(&mut json, &results, &plan);
    let cov = if plan.coverage.sizes.is_empty() {
        None
    } else {
        daemon::check_interrupted()?;
        let t = Instant::now();
        let c = coverage::run(
            &plan,
            &data,
            &runs,
            &tmp.path,
            moat_bin.as_deref(),
            clam_bins.as_ref(),
            &mut sysctls,
        )?;
        coverage::print(&c, plan.tracking.map(Tracking::key));
        println!(
            "coverage-setup measurements took {:.1}s",
            t.elapsed().as_secs_f64()
        );
        Some(c)
    };
    if let Some(c) = &cov {
        json::coverage_rows(&mut json, c);
    }
    let path = data.join("results").join("watch.json");
    json.save(&path)?;
    println!("machine-readable results: {}", path.display());
    println!(
        "total benchmark time {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// One tree size: mount, generate, measure every side, unmount.
fn run_size(
    plan: &Plan,
    dirs: u64,
    runs: &Path,
    tmp: &Path,
    moat_bin: Result<&Path, &String>,
    clam_bins: Result<&clamav::Binaries, &String>,
    sysctls: &mut mount::Sysctls,
) -> Result<SizeRun, String> {
    // Room for the tree, the clean files, the probes and every race round's 10 inodes.
    let tp_files = if dirs == plan.tp_size {
        plan.tp_total * load::OPENERS.len() as u64
    } else {
        0
    };
    let inodes = dirs + plan.files + tp_files + 20 * plan.race_rounds + 100_000;
    let fs_guard = mount::Tmpfs::mount(&tmp.join(format!("mnt-{dirs}")), inodes)?;
    let mount_text = format!(
        "tmpfs -o {} on {} (private to this run, unmounted at exit)",
        fs_guard.options,
        fs_guard.path.display()
    );
    let tree = tree::generate(&fs_guard.path.join("tree"), dirs, plan.files)
        .map_err(|e| format!("tree: {e}"))?;
    eprintln!(
        "moat-bench: tree generated in {:.1}s (+{:.1}s walking it to choose the probes)",
        tree.generation_secs, tree.probe_secs
    );
    mount::check_private(&tree.dir, fs_guard.dev)?;
    let big = tree::big_files(&tree.dir, plan.big_files, BIG_BYTES, 0x6269_6766)
        .map_err(|e| format!("5 MB files: {e}"))?;
    let tp_paths = tree::extra_files(&tree.dir, dirs, "fresh", tp_files, 0x7468_7275)
        .map_err(|e| format!("throughput files: {e}"))?;
    let tp: Vec<Vec<CString>> = if tp_paths.is_empty() {
        Vec::new()
    } else {
        tp_paths
            .chunks(plan.tp_total as usize)
            .map(probe::cstrings)
            .collect()
    };
    let outside = fs_guard.path.join("outside");
    fs::create_dir(&outside).map_err(|e| format!("{}: {e}", outside.display()))?;
    fs::set_permissions(&outside, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
    // One watch and one mark per directory, the race's subtrees (8 directories a round,
    // tracked in directory scope) and a margin for other users of the uid.
    let limit_notes = sysctls.ensure(dirs + 8 * plan.race_rounds + 20_000, plan.raise_limits);
    let size_runs = runs.join(format!("dirs-{dirs}"));
    fs::create_dir_all(&size_runs).map_err(|e| format!("{}: {e}", size_runs.display()))?;
    let setup = Setup {
        clean: probe::cstrings(&tree.clean_files),
        big: probe::cstrings(&big),
        tp,
        probe_files: tree.probe_files(),
        mnt: fs_guard.path.clone(),
        timeout: plan.timeout,
        race_rounds: plan.race_rounds,
        tree,
        runs: size_runs,
        tmp: tmp.to_path_buf(),
    };
    preflight(&setup)?;
    let confs = write_configs(&setup, plan)?;

    // A product that cannot run becomes an n/a column; the others are still measured.
    let mut commands = Vec::new();
    let none = Side {
        label: "none",
        scope: None,
        result: measure_baseline(&setup),
    };
    let mut moat_sides = Vec::new();
    for (&scope, conf) in plan.scopes.iter().zip(&confs.moat) {
        daemon::check_interrupted()?;
        let log = setup.runs.join(format!("moat-watch-{scope}.log"));
        let result = moat_bin.map_err(String::clone).and_then(|bin| {
            commands.push((format!("moat ({scope})"), moat::command_line(bin, conf)));
            measure(&setup, &format!("moat-{scope}"), || {
                start_moat(bin, conf, &log, &setup)
            })
        });
        moat_sides.push(Side {
            label: "moat",
            scope: Some(scope),
            result,
        });
    }
    daemon::check_interrupted()?;
    let clam = Side {
        label: "clamonacc",
        scope: None,
        result: clam_bins.map_err(String::clone).and_then(|bins| {
            let [d, o] = clamav::command_lines(bins, &confs.clamd);
            commands.extend([("clamd".to_string(), d), ("clamonacc".to_string(), o)]);
            measure(&setup, "clamonacc", || {
                start_clamav(bins, &confs.clamd, &confs.socket, &setup)
            })
        }),
    };
    daemon::check_interrupted()?;
    let Setup { tree, runs, .. } = setup;
    drop(fs_guard);
    Ok(SizeRun {
        tree,
        mount: mount_text,
        limit_notes,
        commands,
        runs,
        tracking: plan.tracking.map(Tracking::key),
        moat: moat_sides,
        clam,
        none,
    })
}

/// With no daemon started, every probe must open as uid 65534 (else the figures would
/// measure permissions or another scanner), and the clean files are read once.
fn preflight(setup: &Setup) -> Result<(), String> {
    let mut prober = Prober::start(&setup.probe_files)?;
    let events = prober.poll(Duration::from_millis(200))?;
    if let Some(e) = events.first() {
        let what = setup
            .probe_files
            .get(e.index as usize)
            .map_or("the prober".to_string(), |p| p.display().to_string());
        return Err(format!(
            "before any daemon started, {what} failed as uid {}: {} \
             (another on-access scanner, or a path not readable by that uid?)",
            probe::PROBE_ID,
            std::io::Error::from_raw_os_error(e.errno)
        ));
    }
    drop(prober);
    for f in &setup.tree.clean_files {
        fs::read(f).map_err(|e| format!("{}: {e}", f.display()))?;
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Where [`write_configs`] put things.
struct Configs {
    /// One per scope of the plan, in order.
    moat: Vec<PathBuf>,
    clamd: PathBuf,
    /// clamd's socket, in the temp dir (kept short for the unix socket path limit).
    socket: PathBuf,
}

/// Writes the test database both products load (same directory, same files: the probe
/// marker and EICAR, both built at run time) and their configurations, into the runs dir
/// so a run can be reproduced by hand.
fn write_configs(setup: &Setup, plan: &Plan) -> Result<Configs, String> {
    let db = setup.runs.join("db");
    fs::create_dir_all(&db).map_err(|e| format!("{}: {e}", db.display()))?;
    write(&db.join("moat-test.ndb"), &tree::test_ndb())?;
    write(&db.join("moat-bench-eicar.hdb"), &race::eicar_hdb())?;
    let mut moat_confs = Vec::new();
    for scope in &plan.scopes {
        let path = setup.runs.join(format!("moat-{scope}.conf"));
        let tracking = plan.tracking.map(Tracking::key);
        write(&path, &moat::conf(&db, &setup.tree.dir, scope, tracking))?;
        moat_confs.push(path);
    }
    let c = Configs {
        moat: moat_confs,
        clamd: setup.runs.join("clamd.conf"),
        socket: setup.tmp.join("clamd.sock"),
    };
    let clamd_log = setup.runs.join("clamd.log");
    write(
        &c.clamd,
        &clamav::clamd_conf(&c.socket, &db, &clamd_log, &setup.tree.dir),
    )?;
    Ok(c)
}

fn start_moat(bin: &Path, conf: &Path, log: &Path, setup: &Setup) -> Result<Started, String> {
    let r = moat::start(bin, conf, &setup.tmp, log)?;
    Ok(Started {
        daemons: vec![r.daemon],
        notify: Some(r.notify),
        server_ready_ms: None,
    })
}

fn start_clamav(
    bins: &clamav::Binaries,
    conf: &Path,
    socket: &Path,
    setup: &Setup,
) -> Result<Started, String> {
    let r = clamav::start(bins, conf, socket, &setup.runs)?;
    Ok(Started {
        daemons: vec![r.clamonacc, r.clamd],
        notify: None,
        server_ready_ms: Some(r.clamd_ready_ms),
    })
}

/// The race's directories for one side: `tree/race-TAG` (watched) and `outside/TAG` (on
/// the same tmpfs, outside the include path), writable by the racer's uid. Removed on drop.
struct RaceDirs {
    watched: PathBuf,
    outside: PathBuf,
}

impl RaceDirs {
    fn new(setup: &Setup, tag: &str) -> Result<RaceDirs, String> {
        let d = RaceDirs {
            watched: setup.tree.dir.join(format!("race-{tag}")),
            outside: setup.mnt.join("outside").join(tag),
        };
        for p in [&d.watched, &d.outside] {
            fs::create_dir(p).map_err(|e| format!("{}: {e}", p.display()))?;
            let c = probe::cstrings(std::slice::from_ref(p));
            // SAFETY: a valid C string; giving the directory to the racer's uid.
            if unsafe { libc::chown(c[0].as_ptr(), probe::PROBE_ID, probe::PROBE_ID) } != 0 {
                return Err(format!(
                    "chown {}: {}",
                    p.display(),
                    std::io::Error::last_os_error()
                ));
            }
        }
        Ok(d)
    }

    fn run(&self, setup: &Setup, pids: &[i32]) -> Result<race::Races, String> {
        race::run(&self.watched, &self.outside, setup.race_rounds, pids)
    }
}

impl Drop for RaceDirs {
    fn drop(&mut self) {
        // After the daemon stopped (the guard is declared before it starts): the next
        // product must find the tree as generated.
        let _ = fs::remove_dir_all(&self.watched);
        let _ = fs::remove_dir_all(&self.outside);
    }
}

/// The baseline: the same opens and races with no scanner running.
fn measure_baseline(setup: &Setup) -> Result<Measured, String> {
    eprintln!("moat-bench: none: timing opens with no scanner...");
    let mut m = Measured {
        root_probe: Some(probe::open_as_root(&setup.probe_files[0])),
        ..Measured::default()
    };
    note_interference(&mut m, &[]);
    time_opens(setup, &[], &mut m)?;
    let race_dirs = RaceDirs::new(setup, "none")?;
    m.races = Some(race_dirs.run(setup, &[])?);
    note_interference(&mut m, &[]);
    Ok(m)
}

/// One product: start, wait for coverage, inspect, time the opens, race, stop.
fn measure(
    setup: &Setup,
    tag: &str,
    start: impl FnOnce() -> Result<Started, String>,
) -> Result<Measured, String> {
    let mut m = Measured::default();
    note_interference(&mut m, &[]);
    let race_dirs = RaceDirs::new(setup, tag)?;
    let mut prober = Prober::start(&setup.probe_files)?;
    let mut s = start()?;
    let name = s.daemons[0].name;
    eprintln!("moat-bench: {tag}: started, waiting for coverage...");
    m.server_ready_ms = s.server_ready_ms;
    wait_for_coverage(setup, &mut prober, &mut s, &mut m)?;
    drop(prober);
    report_progress(name, &m);
    if s.notify.is_some() {
        m.watching = moat::watching_line(&s.daemons[0].log);
    }
    m.marks = Some(daemon::marks_of(s.daemons[0].pid()));
    m.root_probe = Some(probe::open_as_root(&setup.probe_files[0]));
    let pids: Vec<i32> = s.daemons.iter().map(Daemon::pid).collect();
    let named: Vec<(&'static str, i32)> = s.daemons.iter().map(|d| (d.name, d.pid())).collect();
    time_opens(setup, &named, &mut m)?;
    m.marks_after = Some(daemon::marks_of(s.daemons[0].pid()));
    eprintln!(
        "moat-bench: {tag}: {} race rounds of each variant...",
        setup.race_rounds
    );
    m.races = Some(race_dirs.run(setup, &pids)?);
    note_interference(&mut m, &pids);
    m.memory = pids
        .iter()
        .filter_map(|&p| daemon::memory_of(p))
        .reduce(|a, b| (a.0 + b.0, a.1 + b.1));
    for d in &mut s.daemons {
        d.check_alive()?;
        if let Some(stopped) = d.stop(Duration::from_secs(5)) {
            m.stopped.push((d.name, stopped));
        }
    }
    Ok(m)
}

/// Collects probe denials (and moat's READY) until every probe is resolved and READY, if
/// expected, has arrived, or until the timeout.
fn wait_for_coverage(
    setup: &Setup,
    prober: &mut Prober,
    s: &mut Started,
    m: &mut Measured,
) -> Result<(), String> {
    wait_for_probes(&setup.probe_files, setup.timeout, prober, s, m)
}

/// [`wait_for_coverage`] for any probe list.
fn wait_for_probes(
    probe_files: &[PathBuf],
    timeout: Duration,
    prober: &mut Prober,
    s: &mut Started,
    m: &mut Measured,
) -> Result<(), String> {
    let t0 = s.daemons[0].spawned_at;
    let n = probe_files.len();
    m.coverage = vec![None; n];
    let mut resolved = 0;
    let deadline = Instant::now() + timeout;
    while (resolved < n || (s.notify.is_some() && m.ready.is_none())) && Instant::now() < deadline {
        for e in prober.poll(Duration::from_millis(20))? {
            let i = e.index as usize;
            if i >= n {
                // Only the prober's own failure is reported with an out-of-range index.
                return Err(format!(
                    "the prober could not switch to uid {}: {}",
                    probe::PROBE_ID,
                    std::io::Error::from_raw_os_error(e.errno)
                ));
            }
            resolved += 1;
            if e.errno == libc::EPERM {
                m.coverage[i] = Some(daemon::ms_between(t0, e.at));
            } else {
                let err = std::io::Error::from_raw_os_error(e.errno);
                m.probe_errors
                    .push(format!("{}: {err}", probe_files[i].display()));
            }
        }
        if let (Some(sock), None) = (&s.notify, &m.ready) {
            m.ready = moat::take_ready(sock).map(|r| (daemon::ms_between(t0, r.at), r.status));
        }
        for d in &mut s.daemons {
            d.check_alive()?;
        }
        daemon::check_interrupted()?;
    }
    Ok(())
}

/// Records fanotify listeners other than `ours` (e.g. a daemon someone else is testing).
fn note_interference(m: &mut Measured, ours: &[i32]) {
    for who in daemon::other_fanotify_holders(ours) {
        if !m.interference.contains(&who) {
            m.interference.push(who);
        }
    }
}

fn report_progress(name: &str, m: &Measured) {
    let covered = m.coverage.iter().flatten().count();
    let full = m.coverage.iter().copied().collect::<Option<Vec<f64>>>();
    let full = full.and_then(|v| v.into_iter().reduce(f64::max));
    eprintln!(
        "moat-bench: {name}: {covered}/{} probes denied{}",
        m.coverage.len(),
        full.map_or(String::new(), |ms| format!(
            ", full coverage after {ms:.0} ms"
        ))
    );
}

/// Size of the large files: 5,000,000 bytes, below clamonacc's default
/// `OnAccessMaxFileSize` (5 MiB), so both products scan them.
pub const BIG_BYTES: usize = 5_000_000;

/// First open of every clean file, then (once all first opens are done) the second open
/// of each, with the CPU time of `pids` read around both passes; then the first and
/// repeated open of the 5 MB files, and the verdict throughput with concurrent openers,
/// all under a watchdog that kills `pids` if an open hangs.
fn time_opens(
    setup: &Setup,
    daemons: &[(&'static str, i32)],
    m: &mut Measured,
) -> Result<(), String> {
    let pids: Vec<i32> = daemons.iter().map(|d| d.1).collect();
    let dog = Watchdog::new(pids.clone(), Duration::from_secs(10));
    let cpu = || -> Vec<f64> {
        pids.iter()
            .map(|&p| load::cpu_ms(p).unwrap_or(f64::NAN))
            .collect()
    };
    let c0 = cpu();
    m.first = probe::time_pass(&setup.clean, &dog)?;
    let c1 = cpu();
    m.repeat = probe::time_pass(&setup.clean, &dog)?;
    let c2 = cpu();
    m.cpu = daemons
        .iter()
        .enumerate()
        .map(|(i, d)| (d.0, c1[i] - c0[i], c2[i] - c1[i]))
        .collect();
    m.big_first = probe::time_pass(&setup.big, &dog)?.open_us;
    m.big_repeat = probe::time_pass(&setup.big, &dog)?.open_us;
    for (files, &n) in setup.tp.iter().zip(&load::OPENERS) {
        m.throughput.push(load::throughput(files, n, &dog)?);
    }
    Ok(())
}
