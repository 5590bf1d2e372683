//! `moat-bench watch-real`: on access with REAL ClamAV signatures (issue 12, item 4).
//!
//! Both products load the same database directory (`--db`, default
//! `../shared/sigs/clamav-real`), each with the bench's own configuration in its runs
//! directory (clamd: `LocalSocket` in the temp dir, never /etc/clamav).
//!
//! 1. **First open** of a few hundred real programs, libraries and scripts of this machine
//!    ([`corpus`]), copied into a private tmpfs the bench mounts afresh for each product (so
//!    every first open is really first and nothing of the machine is marked), opened twice
//!    as uid 65534 ([`opener`]): no scanner, `moat watch`, clamd + clamonacc. Coverage is
//!    confirmed first: an EICAR file in the tree must be denied to uid 65534.
//! 2. **The mixed workload** ([`mixed`]) as uid 65534 with `/usr` watched with prevention
//!    (this marks the root filesystem or /usr's directories, so it runs only here, never in
//!    a test): no scanner, moat (first run, next run), clamonacc; every run is killed at
//!    `--mixed-timeout` and reported as not finished; every daemon is stopped on every path.
//!    Accesses allowed at the deadline are counted from moat's log.

mod corpus;
mod mixed;
mod opener;

use super::clamav;
use super::daemon::{self, Daemon, TempDir};
use super::moat;
use super::mount::{self, Tmpfs};
use super::probe::{quantile, Prober};
use super::ProductArgs;
use crate::results::{Results, Row, Series};
use clap::Args;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Arguments of `moat-bench watch-real`.
#[derive(Args)]
pub struct RealArgs {
    /// The signature directory both products load [default: <workspace>/../shared/sigs/clamav-real].
    #[arg(long, value_name = "DIR")]
    db: Option<PathBuf>,
    /// Real files whose first and repeated open are timed.
    #[arg(long, value_name = "N", default_value_t = 400)]
    files: usize,
    /// Skip the first-open measurement.
    #[arg(long)]
    no_first_open: bool,
    /// Skip the mixed workload (the part that watches /usr).
    #[arg(long)]
    no_mixed: bool,
    /// Runs of the mixed workload per product (the first is the cold one).
    #[arg(long, value_name = "N", default_value_t = 2)]
    mixed_runs: u32,
    /// A mixed-workload run still going after this many seconds is killed.
    #[arg(long, value_name = "SECS", default_value_t = 100)]
    mixed_timeout: u64,
    /// Give up waiting for a daemon to be ready after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    timeout: u64,
    /// Kill the daemons when no open completes for this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    stall: u64,
    /// Measure only these products (`none`, `moat`, `clamonacc`) [default: all three].
    #[arg(long, value_name = "SIDE,...", value_delimiter = ',')]
    only: Vec<String>,
    #[command(flatten)]
    products: ProductArgs,
}

/// The products, in measurement order.
const SIDES: [&str; 3] = ["none", "moat", "clamonacc"];

/// Settings shared by every measurement.
struct Ctx {
    sides: Vec<&'static str>,
    db: PathBuf,
    runs: PathBuf,
    tmp: PathBuf,
    moat: Result<PathBuf, String>,
    clam: Result<clamav::Binaries, String>,
    timeout: Duration,
    stall: Duration,
}

/// First-open figures of one product.
#[derive(Default)]
struct FirstOpen {
    /// ms per file (successful opens): the first pass; the second, right after it
    /// (`reopen`); the third (`repeat`). Why two: the first pass's scans read every file,
    /// which evicts from the CPU caches what the next open of each file walks (dentries,
    /// inodes, marks), while the no-scanner side read nothing. Measured on the no-scanner
    /// side with the files read in between: 1.5 µs per open against 0.5 µs. So the second
    /// pass shows that cost of the scan just done, and the third the steady cost of the
    /// marks, which is what "repeated opens" means here.
    first: Vec<f64>,
    reopen: Vec<f64>,
    repeat: Vec<f64>,
    /// `(file index, ms)` of the first pass, for the slowest-files list.
    per_file: Vec<(u32, f64)>,
    /// Opens refused (index, errno), first pass.
    refused: Vec<(u32, i16)>,
    killed: bool,
    /// From spawn to the EICAR probe denied (ms).
    covered_ms: Option<f64>,
    /// moat's shutdown summary.
    summary: Option<String>,
    /// Starts that never covered the tree (see [`first_open_side`]).
    restarts: u32,
    /// First opens (ms) of the second copy by [`OPENERS`] processes at once, and the wall
    /// time until all were done (s).
    concurrent: Vec<f64>,
    concurrent_secs: f64,
}

impl FirstOpen {
    /// The open times of pass `n` (0 first, 1 right after, 2 repeated).
    fn pass(&self, n: u8) -> &[f64] {
        match n {
            0 => &self.first,
            1 => &self.reopen,
            _ => &self.repeat,
        }
    }
}

/// Processes opening the same files at once in the concurrent first-open measurement.
const OPENERS: u16 = 4;

/// Mixed-workload figures of one product.
#[derive(Default)]
struct Mixed {
    runs: Vec<mixed::Run>,
    /// moat: accesses answered at the deadline during each run (its log's warnings).
    deadline: Vec<u64>,
    /// moat: its shutdown summary; clamonacc: marks placed.
    summary: Option<String>,
    ready_ms: Option<f64>,
}

/// Runs the benchmark and writes `<data>/results/watch-real.json`.
pub fn run(args: RealArgs) -> Result<(), String> {
    let started = Instant::now();
    daemon::install_signal_flag();
    // SAFETY: plain syscall.
    if unsafe { libc::geteuid() } != 0 {
        return Err("watch-real needs root (fanotify, setuid openers, mounts)".into());
    }
    let db = args
        .db
        .clone()
        .unwrap_or_else(|| crate::workspace_root().join("../shared/sigs/clamav-real"));
    let db = db
        .canonicalize()
        .map_err(|e| format!("signature directory {}: {e}", db.display()))?;
    let data = crate::resolve_data_dir(args.products.data.clone());
    let runs = data.join("watch-real-runs");
    fs::create_dir_all(&runs).map_err(|e| format!("{}: {e}", runs.display()))?;
    let tmp = TempDir::new()?;
    let ctx = Ctx {
        sides: SIDES
            .into_iter()
            .filter(|s| args.only.is_empty() || args.only.iter().any(|o| o == s))
            .collect(),
        db,
        moat: crate::resolve_moat(args.products.moat.clone())
            .and_then(|bin| moat::available(&bin).map(|()| bin)),
        clam: clamav::locate(
            &args.products.clamd,
            &args.products.clamonacc,
            &runs.join("apt.log"),
        ),
        runs,
        tmp: tmp.path.clone(),
        timeout: Duration::from_secs(args.timeout),
        stall: Duration::from_secs(args.stall),
    };
    println!("signatures: {} (both products)", ctx.db.display());
    let mut json = Results::new("watch-real");
    if !args.no_first_open {
        first_open_part(&ctx, args.files, &mut json)?;
    }
    if !args.no_mixed {
        mixed_part(&ctx, &args, &mut json)?;
    }
    let path = data.join("results").join("watch-real.json");
    json.save(&path)?;
    println!("machine-readable results: {}", path.display());
    println!(
        "total benchmark time {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

// ---------------------------------------------------------------- first open

fn first_open_part(ctx: &Ctx, files: usize, json: &mut Results) -> Result<(), String> {
    let picked = corpus::select(files).map_err(|e| format!("selecting real files: {e}"))?;
    let bytes: u64 = picked.iter().map(|p| p.size).sum();
    let big = picked.iter().filter(|p| p.size > 5 << 20).count();
    println!(
        "\n== first open of {} real files ({:.1} MB; {} over 5 MiB, allowed unscanned by both \
         under OnAccessMaxFileSize) as uid 65534 ==",
        picked.len(),
        bytes as f64 / 1e6,
        big
    );
    let mut out = Vec::new();
    for &side in &ctx.sides {
        daemon::check_interrupted()?;
        eprintln!("moat-bench: first open, {side}...");
        let r = first_open_side(ctx, side, &picked);
        if let Err(e) = &r {
            eprintln!("moat-bench: first open, {side}: {e}");
        }
        out.push((side, r));
    }
    print_first_open(&picked, &out);
    first_open_json(json, &picked, &out);
    Ok(())
}

/// Mounts a fresh tmpfs, copies the files, starts `side`, waits for coverage, times the
/// opens, stops, unmounts.
fn first_open_side(ctx: &Ctx, side: &str, picked: &[corpus::Picked]) -> Result<FirstOpen, String> {
    let fs_guard = Tmpfs::mount(&ctx.tmp.join(format!("first-{side}")), 100_000)?;
    let tree = fs_guard.path.join("tree");
    fs::create_dir(&tree).map_err(|e| format!("{}: {e}", tree.display()))?;
    mount::check_private(&tree, fs_guard.dev)?;
    let copies =
        corpus::copy_into(&tree.join("single"), picked).map_err(|e| format!("copying: {e}"))?;
    let copies_4 =
        corpus::copy_into(&tree.join("concurrent"), picked).map_err(|e| format!("copying: {e}"))?;
    let probe = tree.join("probe-eicar.com");
    fs::write(&probe, super::race::eicar()).map_err(|e| e.to_string())?;
    let dir = ctx.runs.join(format!("first-{side}"));
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut m = FirstOpen::default();
    let mut daemons = Vec::new();
    // clamonacc 1.4.6 now and then logs "fatal error" at start and stops handling events
    // while still running: a product that does not deny the probe gets one more start.
    for attempt in 0..2 {
        daemons = start_side(ctx, side, &tree, &dir, None, "")?;
        let Some(d) = daemons.first_mut() else { break };
        match wait_denied(&probe, d, ctx.timeout / 2) {
            Ok(ms) => {
                m.covered_ms = Some(ms);
                break;
            }
            Err(e) if attempt == 0 => {
                eprintln!("moat-bench: {side}: {e}; starting it again");
                m.restarts += 1;
                stop_all(&mut daemons);
            }
            Err(e) => return Err(e),
        }
    }
    let pids: Vec<i32> = daemons.iter().map(Daemon::pid).collect();
    let passes = opener::run(&copies, 3, &pids, ctx.stall)?;
    if let Some(e) = passes.setup_failed {
        return Err(format!("the opener could not become uid 65534: errno {e}"));
    }
    m.first = passes.ms(0);
    m.reopen = passes.ms(1);
    m.repeat = passes.ms(2);
    m.per_file = passes
        .opens
        .iter()
        .filter(|o| o.pass == 0 && o.errno == 0)
        .map(|o| (o.index, o.ns as f64 / 1e6))
        .collect();
    m.refused = passes.failures(0);
    m.killed = passes.killed_daemons;
    // The other copy, opened by OPENERS processes at once, each in the same order.
    let t = Instant::now();
    let conc = opener::run_concurrent(&copies_4, 1, OPENERS, &pids, ctx.stall)?;
    m.concurrent_secs = t.elapsed().as_secs_f64();
    m.concurrent = (0..OPENERS).flat_map(|c| conc.ms(c)).collect();
    m.killed |= conc.killed_daemons;
    m.summary = stop_all(&mut daemons);
    drop(fs_guard);
    Ok(m)
}

/// Polls `probe` as uid 65534 until it is denied; ms from the first daemon's spawn.
fn wait_denied(probe: &Path, first: &mut Daemon, timeout: Duration) -> Result<f64, String> {
    let mut prober = Prober::start(&[probe.to_path_buf()])?;
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(e) = prober.poll(Duration::from_millis(20))?.first() {
            if e.errno == libc::EPERM {
                return Ok(daemon::ms_between(first.spawned_at, e.at));
            }
            return Err(format!(
                "EICAR probe: {}",
                std::io::Error::from_raw_os_error(e.errno)
            ));
        }
        first.check_alive()?;
        daemon::check_interrupted()?;
    }
    Err(format!(
        "{} never denied the EICAR probe within {} s",
        first.name,
        timeout.as_secs()
    ))
}

/// Starts a product watching `tree` (nothing for `none`); configurations and logs go to
/// `dir`, with `extra` appended to both products' configuration. The first daemon of the
/// list holds the fanotify group.
fn start_side(
    ctx: &Ctx,
    side: &str,
    tree: &Path,
    dir: &Path,
    log_filter: Option<&str>,
    extra: &str,
) -> Result<Vec<Daemon>, String> {
    match side {
        "moat" => {
            let bin = ctx.moat.as_ref().map_err(String::clone)?;
            let conf = dir.join("moat.conf");
            // LogTime: the verdict lines logged in the mixed workload get timestamps.
            let text = moat::conf(&ctx.db, tree, "filesystem", None) + "LogTime yes\n" + extra;
            write(&conf, &text)?;
            let r = moat::start_logging(bin, &conf, &ctx.tmp, &dir.join("moat.log"), log_filter)?;
            let mut d = r.daemon;
            let t = Instant::now();
            while moat::take_ready(&r.notify).is_none() {
                d.check_alive()?;
                daemon::check_interrupted()?;
                if t.elapsed() > ctx.timeout {
                    return Err("moat watch: no READY".into());
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(vec![d])
        }
        "clamonacc" => {
            let bins = ctx.clam.as_ref().map_err(String::clone)?;
            let conf = dir.join("clamd.conf");
            let socket = ctx.tmp.join("clamd.sock");
            let log = dir.join("clamd.log");
            write(
                &conf,
                &(clamav::clamd_conf(&socket, &ctx.db, &log, tree) + extra),
            )?;
            let r = clamav::start(bins, &conf, &socket, dir)?;
            Ok(vec![r.clamonacc, r.clamd])
        }
        _ => Ok(Vec::new()),
    }
}

/// Stops every daemon in order; moat's shutdown summary line, if any.
fn stop_all(daemons: &mut [Daemon]) -> Option<String> {
    let mut summary = None;
    for d in daemons.iter_mut() {
        d.stop(Duration::from_secs(5));
        if d.name == "moat watch" {
            summary = fs::read_to_string(&d.log).ok().and_then(|t| {
                t.lines()
                    .rev()
                    .find(|l| l.contains("stopped"))
                    .map(str::to_string)
            });
        }
    }
    summary
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

fn ratio(a: f64, b: f64) -> String {
    if a.is_finite() && b.is_finite() && b > 0.0 {
        format!("{:.1}x", a / b)
    } else {
        "n/a".into()
    }
}

fn print_first_open(picked: &[corpus::Picked], out: &[(&str, Result<FirstOpen, String>)]) {
    let get = |side: &str| {
        out.iter()
            .find(|o| o.0 == side)
            .and_then(|o| o.1.as_ref().ok())
    };
    println!(
        "{:<28} {:>12} {:>12} {:>12} {:>16} {:>12}",
        "open() latency", "moat", "clamonacc", "none", "clamonacc/moat", "moat/none"
    );
    let q =
        |side: &str, pass: u8, p: f64| get(side).map_or(f64::NAN, |m| quantile(m.pass(pass), p));
    for (label, rep, p, unit) in [
        ("first open p50", 0, 0.5, "ms"),
        ("first open p99", 0, 0.99, "ms"),
        ("first open max", 0, 1.0, "ms"),
        ("4 openers at once, p50", 0, 0.5, "c"),
        ("4 openers at once, p99", 0, 0.99, "c"),
        ("re-open right after p50", 1, 0.5, "us"),
        ("re-open right after p99", 1, 0.99, "us"),
        ("repeated open p50", 2, 0.5, "us"),
        ("repeated open p99", 2, 0.99, "us"),
    ] {
        if unit == "c" {
            let q4 = |side: &str| get(side).map_or(f64::NAN, |m| quantile(&m.concurrent, p));
            let (m, c, n) = (q4("moat"), q4("clamonacc"), q4("none"));
            println!(
                "{:<28} {:>9.3} ms {:>9.3} ms {:>9.3} ms {:>16} {:>12}",
                label,
                m,
                c,
                n,
                ratio(c, m),
                ratio(m, n)
            );
            continue;
        }
        let k = if unit == "us" { 1e3 } else { 1.0 };
        let (m, c, n) = (
            q("moat", rep, p) * k,
            q("clamonacc", rep, p) * k,
            q("none", rep, p) * k,
        );
        println!(
            "{:<28} {:>9.3} {unit} {:>9.3} {unit} {:>9.3} {unit} {:>16} {:>12}",
            label,
            m,
            c,
            n,
            ratio(c, m),
            ratio(m, n)
        );
    }
    for (side, r) in out {
        match r {
            Err(e) => println!("{side}: n/a: {e}"),
            Ok(m) => {
                let sum: f64 = m.first.iter().sum();
                println!(
                    "{side}: sum of first opens {:.0} ms; {OPENERS} openers at once done in {:.2} s; EICAR probe denied after {}; {} opens refused{}{}{}",
                    sum,
                    m.concurrent_secs,
                    m.covered_ms.map_or("-".into(), |v| format!("{v:.0} ms from spawn")),
                    m.refused.len(),
                    if m.killed { "; STALLED: daemons killed by the watchdog" } else { "" },
                    if m.restarts > 0 { "; restarted once (no coverage at the first start)" } else { "" },
                    m.summary.as_ref().map_or(String::new(), |s| format!("\n  summary: {}", s.trim()))
                );
                for (i, errno) in m.refused.iter().take(5) {
                    println!(
                        "  refused: {} ({})",
                        picked[*i as usize].source.display(),
                        std::io::Error::from_raw_os_error(i32::from(*errno))
                    );
                }
                if *side != "none" {
                    let mut slow = m.per_file.clone();
                    slow.sort_by(|a, b| b.1.total_cmp(&a.1));
                    println!("  slowest first opens under {side}:");
                    for (i, ms) in slow.iter().take(8) {
                        let p = &picked[*i as usize];
                        println!(
                            "    {:>9.1} ms  {:>9.2} MB  {}",
                            ms,
                            p.size as f64 / 1e6,
                            p.source.display()
                        );
                    }
                }
            }
        }
    }
}

fn first_open_json(
    json: &mut Results,
    picked: &[corpus::Picked],
    out: &[(&str, Result<FirstOpen, String>)],
) {
    let get = |side: &str| {
        out.iter()
            .find(|o| o.0 == side)
            .and_then(|o| o.1.as_ref().ok())
    };
    let group = format!(
        "first open of {} real programs, libraries and scripts, uid 65534, real signatures",
        picked.len()
    );
    let q = |side: &str, pass: u8, p: f64| {
        get(side)
            .map(|m| quantile(m.pass(pass), p))
            .filter(|v| v.is_finite())
    };
    for (metric, p) in [("first open() p50", 0.5), ("first open() p99", 0.99)] {
        let (m, c) = (q("moat", 0, p), q("clamonacc", 0, p));
        json.rows.push(Row {
            group: group.clone(),
            metric: metric.into(),
            unit: "ms".into(),
            moat: m,
            clamav: c,
            none: q("none", 0, p),
            lower_is_better: true,
            target: Some(">= 5x faster than clamonacc (aim 20x)".into()),
            met: m.zip(c).map(|(m, c)| c >= 5.0 * m),
            note: None,
        });
    }
    for (metric, p) in [
        (
            "first open() p50, 4 processes opening the same files at once",
            0.5,
        ),
        (
            "first open() p99, 4 processes opening the same files at once",
            0.99,
        ),
    ] {
        let q4 = |side: &str| {
            get(side)
                .map(|m| quantile(&m.concurrent, p))
                .filter(|v| v.is_finite())
        };
        json.rows.push(Row {
            group: group.clone(),
            metric: metric.into(),
            unit: "ms".into(),
            moat: q4("moat"),
            clamav: q4("clamonacc"),
            none: q4("none"),
            lower_is_better: true,
            note: Some("a second copy of the files, first opened by 4 processes at once".into()),
            ..Row::default()
        });
    }
    for (metric, p) in [
        ("re-open right after the first open() p50", 0.5),
        ("re-open right after the first open() p99", 0.99),
    ] {
        json.rows.push(Row {
            group: group.clone(),
            metric: metric.into(),
            unit: "us".into(),
            moat: q("moat", 1, p).map(|v| v * 1e3),
            clamav: q("clamonacc", 1, p).map(|v| v * 1e3),
            none: q("none", 1, p).map(|v| v * 1e3),
            lower_is_better: true,
            note: Some(
                "the pass right after the first: the scans just done (every file read) evicted \
                 what these opens walk from the CPU caches; the no-scanner side read nothing"
                    .into(),
            ),
            ..Row::default()
        });
    }
    for (metric, p) in [("repeated open() p50", 0.5), ("repeated open() p99", 0.99)] {
        let (m, n) = (q("moat", 2, p), q("none", 2, p));
        json.rows.push(Row {
            group: group.clone(),
            metric: metric.into(),
            unit: "us".into(),
            moat: m.map(|v| v * 1e3),
            clamav: q("clamonacc", 2, p).map(|v| v * 1e3),
            none: n.map(|v| v * 1e3),
            lower_is_better: true,
            target: Some("within 1.2x of no scanner".into()),
            met: m.zip(n).map(|(m, n)| m <= 1.2 * n),
            note: None,
        });
    }
    let label = |s: &str| match s {
        "none" => "no scanner".to_string(),
        s => s.to_string(),
    };
    json.series.push(Series {
        name: group,
        unit: "ms".into(),
        samples: out
            .iter()
            .filter_map(|(s, r)| r.as_ref().ok().map(|m| (label(s), m.first.clone())))
            .collect(),
    });
}

// ---------------------------------------------------------------- mixed workload

fn mixed_part(ctx: &Ctx, args: &RealArgs, json: &mut Results) -> Result<(), String> {
    let w = &mixed::ISSUE;
    let timeout = Duration::from_secs(args.mixed_timeout);
    let reads = corpus::first_files(Path::new("/usr/share"), w.reads)
        .map_err(|e| format!("/usr/share: {e}"))?;
    let usr_dirs = corpus::count_dirs(Path::new("/usr"));
    println!(
        "\n== mixed workload as uid 65534 ({} gcc compiles, {} Python runs, {} reads under \
         /usr/share, {} Perl runs), /usr watched with prevention ({usr_dirs} directories), \
         each run killed at {} s ==",
        w.compiles,
        w.pythons,
        reads.len(),
        w.perls,
        timeout.as_secs()
    );
    let work = Tmpfs::mount(&ctx.tmp.join("work"), 10_000)?;
    mixed::prepare(&work.path, w, &reads)?;
    let usr = Path::new("/usr");
    let mut out = Vec::new();
    for &side in &ctx.sides {
        daemon::check_interrupted()?;
        eprintln!("moat-bench: mixed workload, {side}...");
        let r = mixed_side(
            ctx,
            side,
            usr,
            usr_dirs,
            &work.path,
            args.mixed_runs,
            timeout,
        );
        if let Err(e) = &r {
            eprintln!("moat-bench: mixed workload, {side}: {e}");
        }
        out.push((side, r));
    }
    drop(work);
    print_mixed(&out, timeout);
    mixed_json(json, &out, timeout);
    Ok(())
}

/// Added to both products' configuration for the mixed workload: root's accesses are not
/// scanned. The workload runs as 65534, so it is scanned as before; what is left out is
/// everything else root does on this machine meanwhile (builds, tools), which would
/// otherwise compete with the workload for the scanner and be blocked on a detection.
const MIXED_EXTRA: &str = "OnAccessExcludeRootUID yes\n";

fn mixed_side(
    ctx: &Ctx,
    side: &str,
    usr: &Path,
    usr_dirs: u64,
    work: &Path,
    runs: u32,
    timeout: Duration,
) -> Result<Mixed, String> {
    let dir = ctx.runs.join(format!("mixed-{side}"));
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let t = Instant::now();
    let mut daemons = start_side(
        ctx,
        side,
        usr,
        &dir,
        Some("info,moat_watch::verdict=debug"),
        MIXED_EXTRA,
    )?;
    let mut m = Mixed::default();
    if side == "clamonacc" {
        let marks = wait_marks(&mut daemons[0], usr_dirs, ctx.timeout)?;
        m.summary = Some(format!("{marks} inode marks placed"));
    }
    m.ready_ms = (side != "none").then(|| t.elapsed().as_secs_f64() * 1e3);
    // The no-scanner side runs once more first, to warm the page cache for everyone.
    let extra = u32::from(side == "none");
    let mut log_pos = 0;
    for i in 0..runs + extra {
        daemon::check_interrupted()?;
        for d in daemons.iter_mut() {
            d.check_alive()?;
        }
        let r = mixed::run(work, timeout, &dir.join(format!("workload-{i}.log")))?;
        eprintln!(
            "moat-bench: mixed workload, {side}, run {}: {}",
            i + 1,
            r.text(timeout)
        );
        if let Some(d) = daemons.first().filter(|d| d.name == "moat watch") {
            let text = fs::read_to_string(&d.log).unwrap_or_default();
            let new = &text[log_pos.min(text.len())..];
            m.deadline.push(
                new.lines()
                    .filter(|l| l.contains("no verdict within"))
                    .count() as u64,
            );
            log_pos = text.len();
        }
        if i >= extra {
            m.runs.push(r);
        }
    }
    m.summary = stop_all(&mut daemons).or(m.summary);
    if let Some(d) = daemons.first().filter(|d| d.name == "clamonacc") {
        if fs::read_to_string(&d.log).is_ok_and(|t| t.contains("fatal error")) {
            m.summary = Some(format!(
                "{}; clamonacc logged a FATAL ERROR (see {})",
                m.summary.unwrap_or_default(),
                d.log.display()
            ));
        }
    }
    Ok(m)
}

/// Waits until clamonacc's group holds a mark for (nearly) every directory of /usr, or its
/// mark count stops growing for 3 s; returns the count.
fn wait_marks(d: &mut Daemon, dirs: u64, timeout: Duration) -> Result<u64, String> {
    let t = Instant::now();
    let (mut last, mut since) = (0, Instant::now());
    loop {
        d.check_alive()?;
        daemon::check_interrupted()?;
        let n = daemon::marks_of(d.pid()).fanotify_inode;
        if n >= dirs * 99 / 100 {
            return Ok(n);
        }
        if n != last {
            (last, since) = (n, Instant::now());
        } else if n > 0 && since.elapsed() > Duration::from_secs(3) {
            return Ok(n);
        }
        if t.elapsed() > timeout {
            return Err(format!(
                "clamonacc placed only {n} of {dirs} marks in {} s",
                timeout.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn print_mixed(out: &[(&str, Result<Mixed, String>)], timeout: Duration) {
    let none = fastest_none(out);
    for (side, r) in out {
        match r {
            Err(e) => println!("{side}: n/a: {e}"),
            Ok(m) => {
                let runs: Vec<String> =
                    m.runs
                        .iter()
                        .enumerate()
                        .map(|(i, r)| {
                            let vs = r
                                .secs
                                .zip(none)
                                .map_or(String::new(), |(s, n)| format!(" = {:.2}x none", s / n));
                            let dl = m.deadline.get(i).map_or(String::new(), |d| {
                                format!(", {d} allowed at the deadline")
                            });
                            format!("run {}: {}{vs}{dl}", i + 1, r.text(timeout))
                        })
                        .collect();
                println!(
                    "{side:<10} {}{}",
                    runs.join("; "),
                    m.ready_ms
                        .map_or(String::new(), |v| format!(" (ready after {v:.0} ms)"))
                );
                if let Some(s) = &m.summary {
                    println!("  summary: {}", s.trim());
                }
            }
        }
    }
}

/// The no-scanner time the ratios use: its fastest run (this machine is shared, and the
/// slower runs measure the neighbours).
fn fastest_none(out: &[(&str, Result<Mixed, String>)]) -> Option<f64> {
    out.iter()
        .find(|o| o.0 == "none")
        .and_then(|o| o.1.as_ref().ok())
        .and_then(|m| m.runs.iter().filter_map(|r| r.secs).reduce(f64::min))
}

fn mixed_json(json: &mut Results, out: &[(&str, Result<Mixed, String>)], timeout: Duration) {
    let get = |side: &str| {
        out.iter()
            .find(|o| o.0 == side)
            .and_then(|o| o.1.as_ref().ok())
    };
    let group = "mixed workload as uid 65534, /usr watched with prevention, real signatures";
    let secs = |side: &str, i: usize| get(side).and_then(|m| m.runs.get(i)).and_then(|r| r.secs);
    let none = fastest_none(out);
    for (i, metric, limit, target) in [
        (0, "first run", 3.0, "<= 3x no scanner (aim 1.5x)"),
        (1, "next run", 1.2, "<= 1.2x no scanner"),
    ] {
        let m = secs("moat", i);
        let ran = get("moat").is_some_and(|m| m.runs.len() > i);
        json.rows.push(Row {
            group: group.into(),
            metric: metric.into(),
            unit: "s".into(),
            moat: m,
            clamav: secs("clamonacc", i),
            none,
            lower_is_better: true,
            target: Some(target.into()),
            met: match (m, none) {
                (Some(m), Some(n)) => Some(m <= limit * n),
                (None, _) if ran => Some(false),
                _ => None,
            },
            note: Some(format!(
                "a missing figure: not finished in {} s",
                timeout.as_secs()
            )),
        });
    }
    if let Some(m) = get("moat") {
        let n: u64 = m.deadline.iter().sum();
        json.rows.push(Row {
            group: group.into(),
            metric: "accesses allowed at the deadline (all runs)".into(),
            unit: "count".into(),
            moat: Some(n as f64),
            lower_is_better: true,
            target: Some("0".into()),
            met: Some(n == 0),
            ..Row::default()
        });
    }
}
