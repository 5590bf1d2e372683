//! `moat-bench watch`: `moat watch` side by side with ClamAV's clamonacc, in one run.
//!
//! One reproducible tree ([`tree`]) is watched by each product in turn, never both at once
//! (two permission listeners would each slow the other). For each product: warm the
//! tree, fork the unprivileged prober ([`probe`]), start the daemon(s), wait until every
//! probe directory denies its infected file (full coverage, timed from the daemon's spawn),
//! count the marks the daemon holds, check that root's opens are scanned too, then time the
//! first and the second open of every clean file from this process, and stop the
//! daemon(s). The same opens are timed with no scanner running as the baseline. Processes
//! are cleaned up on every path, Ctrl-C included ([`daemon`]).

mod clamav;
mod daemon;
mod moat;
mod probe;
mod report;
mod tree;

use clap::Args;
use daemon::{Daemon, Marks, Stopped, TempDir, Watchdog};
use probe::{Pass, Prober};
use std::ffi::CString;
use std::fs;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Arguments of `moat-bench watch`.
#[derive(Args)]
pub struct WatchArgs {
    /// Small profile: 10,000 directories (a run takes well under 2 minutes).
    #[arg(long)]
    quick: bool,
    /// Directories in the tree [default: 100000, 10000 with --quick].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(10..))]
    dirs: Option<u64>,
    /// Small clean files whose first and second open are timed.
    #[arg(long, value_name = "N", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    files: u64,
    /// Where the tree is cached [default: <workspace>/target/bench-data].
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// The moat binary [default: <target dir>/release/moat, built if missing].
    #[arg(long, value_name = "PATH")]
    moat: Option<PathBuf>,
    /// The clamd binary.
    #[arg(long, value_name = "PATH", default_value = "clamd")]
    clamd: PathBuf,
    /// The clamonacc binary.
    #[arg(long, value_name = "PATH", default_value = "clamonacc")]
    clamonacc: PathBuf,
    /// Give up waiting for full coverage after this many seconds [default: 120, 45 with
    /// --quick].
    #[arg(long, value_name = "SECS")]
    timeout: Option<u64>,
}

/// Everything measured for one product (or for the baseline).
#[derive(Default)]
pub struct Measured {
    /// moat: from spawn to the READY datagram (ms) and its STATUS text.
    pub ready: Option<(f64, String)>,
    /// clamonacc: from clamd's spawn to its first PONG (ms).
    pub server_ready_ms: Option<f64>,
    /// moat: `(directories, include paths, ms)` from its readiness log line.
    pub watching: Option<(u64, u64, f64)>,
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
    /// Second open of every clean file.
    pub repeat: Pass,
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

/// Paths shared by the runs.
struct Setup {
    tree: tree::Tree,
    clean: Vec<CString>,
    probe_files: Vec<PathBuf>,
    timeout: Duration,
    runs: PathBuf,
    tmp: TempDir,
}

/// Runs the whole benchmark and prints the report.
pub fn run(args: WatchArgs) -> Result<(), String> {
    let started = Instant::now();
    daemon::install_signal_flag();
    // SAFETY: plain syscall.
    if unsafe { libc::geteuid() } != 0 {
        return Err("watch needs root (fanotify permission events, setuid probes)".into());
    }
    let setup = prepare(&args)?;
    let moat_bin = crate::resolve_moat(args.moat.clone());
    let clam_bins = clamav::locate(&args.clamd, &args.clamonacc, &setup.runs.join("apt.log"));
    let Configs {
        moat: moat_conf,
        clamd: clamd_conf,
        socket,
    } = write_configs(&setup)?;

    // A product that cannot run becomes an n/a column; the others are still measured.
    let mut commands = Vec::new();
    let none = Side {
        label: "none",
        result: measure_baseline(&setup),
    };
    daemon::check_interrupted()?;
    let moat_side = Side {
        label: "moat",
        result: moat_bin
            .and_then(|bin| moat::available(&bin).map(|()| bin))
            .and_then(|bin| {
                commands.push(("moat", moat::command_line(&bin, &moat_conf)));
                measure(&setup, || start_moat(&bin, &moat_conf, &setup))
            }),
    };
    daemon::check_interrupted()?;
    let clam_side = Side {
        label: "clamonacc",
        result: clam_bins.and_then(|bins| {
            let [d, o] = clamav::command_lines(&bins, &clamd_conf);
            commands.extend([("clamd", d), ("clamonacc", o)]);
            measure(&setup, || start_clamav(&bins, &clamd_conf, &socket, &setup))
        }),
    };
    daemon::check_interrupted()?;
    report::print(&report::Context {
        tree: &setup.tree,
        runs: &setup.runs,
        commands: &commands,
        sides: [&moat_side, &clam_side, &none],
        total_secs: started.elapsed().as_secs_f64(),
    });
    Ok(())
}

/// Generates or reuses the tree, checks the probes are reachable and readable by the
/// unprivileged prober, and warms the caches.
fn prepare(args: &WatchArgs) -> Result<Setup, String> {
    let dirs = args
        .dirs
        .unwrap_or(if args.quick { 10_000 } else { 100_000 });
    let data = crate::resolve_data_dir(args.data.clone());
    let tree = tree::ensure(&data, dirs, args.files).map_err(|e| format!("tree: {e}"))?;
    if tree.generated {
        eprintln!("moat-bench: tree generated in {:.1}s", tree.generation_secs);
    } else {
        eprintln!(
            "moat-bench: using the cached tree in {}",
            tree.dir.display()
        );
    }
    refuse_unsafe_tree(&tree.dir)?;
    let runs = data.join("watch-runs");
    fs::create_dir_all(&runs).map_err(|e| format!("{}: {e}", runs.display()))?;
    let setup = Setup {
        clean: probe::cstrings(&tree.clean_files),
        probe_files: tree.probe_files(),
        timeout: Duration::from_secs(args.timeout.unwrap_or(if args.quick { 45 } else { 120 })),
        tree,
        runs,
        tmp: TempDir::new()?,
    };
    preflight(&setup)?;
    Ok(setup)
}

/// The include path must be the generated tree and nothing that contains the workspace.
fn refuse_unsafe_tree(dir: &Path) -> Result<(), String> {
    let dir = dir
        .canonicalize()
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let ws = crate::workspace_root();
    if dir == Path::new("/") || ws.starts_with(&dir) {
        return Err(format!(
            "refusing to watch {}: it contains the source tree",
            dir.display()
        ));
    }
    Ok(())
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
    tree::warm(&setup.tree.dir).map_err(|e| format!("warming the tree: {e}"))?;
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
    moat: PathBuf,
    clamd: PathBuf,
    /// clamd's socket, in the temp dir (kept short for the unix socket path limit).
    socket: PathBuf,
}

/// Writes the test database both products load (same directory, same file) and their
/// configurations, into the runs dir so a run can be reproduced by hand.
fn write_configs(setup: &Setup) -> Result<Configs, String> {
    let db = setup.runs.join("db");
    fs::create_dir_all(&db).map_err(|e| format!("{}: {e}", db.display()))?;
    write(&db.join("moat-test.ndb"), &tree::test_ndb())?;
    let c = Configs {
        moat: setup.runs.join("moat.conf"),
        clamd: setup.runs.join("clamd.conf"),
        socket: setup.tmp.path.join("clamd.sock"),
    };
    let clamd_log = setup.runs.join("clamd.log");
    write(&c.moat, &moat::conf(&db, &setup.tree.dir))?;
    write(
        &c.clamd,
        &clamav::clamd_conf(&c.socket, &db, &clamd_log, &setup.tree.dir),
    )?;
    Ok(c)
}

fn start_moat(bin: &Path, conf: &Path, setup: &Setup) -> Result<Started, String> {
    let r = moat::start(bin, conf, &setup.tmp.path, &setup.runs)?;
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

/// The baseline: the same opens with no scanner running.
fn measure_baseline(setup: &Setup) -> Result<Measured, String> {
    eprintln!("moat-bench: none: timing opens with no scanner...");
    let mut m = Measured {
        root_probe: Some(probe::open_as_root(&setup.probe_files[0])),
        ..Measured::default()
    };
    note_interference(&mut m, &[]);
    time_opens(setup, &[], &mut m)?;
    note_interference(&mut m, &[]);
    Ok(m)
}

/// One product: start, wait for coverage, inspect, time the opens, stop.
fn measure(
    setup: &Setup,
    start: impl FnOnce() -> Result<Started, String>,
) -> Result<Measured, String> {
    tree::warm(&setup.tree.dir).map_err(|e| format!("warming the tree: {e}"))?;
    let mut m = Measured::default();
    note_interference(&mut m, &[]);
    let mut prober = Prober::start(&setup.probe_files)?;
    let mut s = start()?;
    let name = s.daemons[0].name;
    eprintln!("moat-bench: {name}: started, waiting for coverage...");
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
    time_opens(setup, &pids, &mut m)?;
    m.marks_after = Some(daemon::marks_of(s.daemons[0].pid()));
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
    let t0 = s.daemons[0].spawned_at;
    let n = setup.probe_files.len();
    m.coverage = vec![None; n];
    let mut resolved = 0;
    let deadline = Instant::now() + setup.timeout;
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
                    .push(format!("{}: {err}", setup.probe_files[i].display()));
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

/// First and second open of every clean file, under a watchdog that kills `pids` if an
/// open hangs.
fn time_opens(setup: &Setup, pids: &[i32], m: &mut Measured) -> Result<(), String> {
    let dog = Watchdog::new(pids.to_vec(), Duration::from_secs(10));
    m.first = probe::time_pass(&setup.clean, &dog)?;
    m.repeat = probe::time_pass(&setup.clean, &dog)?;
    Ok(())
}
