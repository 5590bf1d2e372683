//! `moat-bench attacks` (root only): what an attacker, or plain bad luck, costs the rest of
//! the machine, moat against clamd + clamonacc and no scanner (issue 13, item 8):
//!
//! - **elsewhere cost**: one test-owned directory on the root filesystem is protected with
//!   default settings (moat: filesystem scope), then uid 65534 opens small files under
//!   /usr/share (40,000 opens): µs per open, best of three passes;
//! - **flood fairness**: uid 65534 loops (four processes) over hundreds of distinct small
//!   gzip files that each expand to 32 MiB, in the protected directory, while uid 65532
//!   opens fresh clean files there: p50/p99 of the second uid's opens, and how many took
//!   the whole deadline (moat answers those unscanned), against the same opens with no flood;
//! - **stall**: a FUSE filesystem mounted below the include path stalls every FUSE_OPEN and
//!   uid 65534 opens a file on it; meanwhile uid 65532 opens fresh clean files of the include
//!   path elsewhere on the root filesystem: the slowest of those opens.
//!
//! Results: a table on stdout and `<data dir>/results/attacks.json` (rendered into
//! BENCHMARKS.md by `report`).

mod opener;

use super::daemon::{self, Daemon, TempDir, Watchdog};
use super::probe::quantile;
use super::{clamav, moat, race};
use crate::results::{Results, Row};
use clap::Args;
use moat_testkit::fuse::StallingFuse;
use opener::{Mode, Opener, Record};
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

/// The flooding uid.
const FLOODER: u32 = 65534;
/// The uid whose opens are measured during the flood and the stall (not 65533: clamonacc is
/// told to exclude that one).
const VICTIM: u32 = 65532;
/// moat's default `OnAccessScanTimeout` (`moat_config::DEFAULT_ON_ACCESS_SCAN_TIMEOUT`; not
/// imported, to keep this tool independent of moat's crates): an open that took this long
/// was answered unscanned.
const DEADLINE: Duration = Duration::from_secs(5);
/// Distinct flood archives (each scanned once per daemon, then cached).
const FLOOD_FILES: usize = 400;
/// Uncompressed size of each flood archive.
const FLOOD_EXPANDS_TO: usize = 32 << 20;
/// Flooding processes.
const FLOODERS: usize = 4;
/// Victim opens per measurement.
const VICTIM_OPENS: usize = 200;
/// How long the victim may take before it is stopped (what it did by then is reported).
const VICTIM_BUDGET: Duration = Duration::from_secs(40);
/// The stall is released after this long whatever happens.
const STALL_LIMIT: Duration = Duration::from_secs(10);

/// A scanner making no progress this long is killed.
const WATCHDOG: Duration = Duration::from_secs(120);

/// Arguments of `moat-bench attacks`.
#[derive(Args)]
pub struct AttacksArgs {
    /// Opens of small files under /usr/share for the elsewhere cost.
    #[arg(long, value_name = "N", default_value_t = 40_000)]
    opens: usize,
    /// Skip clamd + clamonacc.
    #[arg(long)]
    no_clamonacc: bool,
    /// The moat binary [default: <target dir>/release/moat, built if missing].
    #[arg(long, value_name = "PATH")]
    moat: Option<PathBuf>,
    /// Where results/attacks.json goes [default: <workspace>/target/bench-data].
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq)]
enum Product {
    None,
    Moat,
    Clamonacc,
}

impl Product {
    fn label(self) -> &'static str {
        match self {
            Product::None => "no scanner",
            Product::Moat => "moat watch",
            Product::Clamonacc => "clamonacc",
        }
    }
}

/// One product's figures.
#[derive(Default, Clone)]
struct Figures {
    elsewhere_us: Option<f64>,
    calm: Option<Victim>,
    flood: Option<Victim>,
    stall_max_ms: Option<f64>,
    notes: Vec<String>,
}

/// What the victim uid saw.
#[derive(Clone, Copy)]
struct Victim {
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    /// Opens that took the whole deadline.
    at_deadline: usize,
    done: usize,
    failed: usize,
}

/// Files the run prepares once.
struct World {
    tmp: TempDir,
    db: PathBuf,
    protected: PathBuf,
    usr_share: Vec<PathBuf>,
    flood: Vec<PathBuf>,
    eicar: PathBuf,
    fuse_dir: PathBuf,
    /// Sets of [`VICTIM_OPENS`] clean files never opened, made before any scanner starts:
    /// creating files in the protected directory while a scanner runs would put this
    /// process itself in the scanner's queue (a flooded clamonacc held it for minutes).
    fresh: Vec<Vec<PathBuf>>,
}

pub fn run(args: AttacksArgs) -> Result<(), String> {
    // SAFETY: plain syscall.
    if unsafe { libc::geteuid() } != 0 {
        return Err("attacks needs root (fanotify, setuid openers, a FUSE mount)".into());
    }
    daemon::install_signal_flag();
    let moat_bin = crate::resolve_moat(args.moat.clone())?;
    moat::available(&moat_bin)?;
    let mut results = Results::new("attacks");
    let mut w = World::new(args.opens)?;
    // One file, `f`, on the FUSE filesystem that stalls (moat_testkit::fuse, shared with the
    // root tests of crates/moat/tests/watch.rs).
    let fuse = StallingFuse::mount(
        &w.fuse_dir,
        &[("f", b"a file served by a FUSE server that stalls\n")],
    )?;
    let load_before = loadavg();
    println!(
        "moat-bench attacks: {} files under /usr/share ({} opens), {FLOOD_FILES} flood archives; load average {load_before}",
        w.usr_share.len(),
        args.opens
    );
    let clam = if args.no_clamonacc {
        Err("--no-clamonacc".to_string())
    } else {
        clamav::locate(
            Path::new("clamd"),
            Path::new("clamonacc"),
            &w.tmp.path.join("apt.log"),
        )
    };
    let mut all: Vec<(Product, Figures)> = Vec::new();
    for product in [Product::None, Product::Moat, Product::Clamonacc] {
        daemon::check_interrupted()?;
        let figures = match product {
            Product::None => measure(&mut w, &fuse, args.opens, product, None),
            Product::Moat => {
                let conf = w.tmp.path.join("moat.conf");
                write(&conf, &moat_conf(&w.db, &w.protected))?;
                results.commands.push((
                    "moat watch (default settings: filesystem scope)".into(),
                    moat::command_line(&moat_bin, &conf),
                ));
                let log = w.tmp.path.join("moat.log");
                let mut running = moat::start(&moat_bin, &conf, &w.tmp.path, &log)?;
                with_daemons(
                    &mut w,
                    &fuse,
                    args.opens,
                    product,
                    &mut [&mut running.daemon],
                )
            }
            Product::Clamonacc => match &clam {
                Err(why) => {
                    println!("clamonacc: not run ({why})");
                    continue;
                }
                Ok(bins) => {
                    let conf = w.tmp.path.join("clamd.conf");
                    let sock = w.tmp.path.join("clamd.sock");
                    let log = w.tmp.path.join("clamd.log");
                    write(&conf, &clamav::clamd_conf(&sock, &w.db, &log, &w.protected))?;
                    let [a, b] = clamav::command_lines(bins, &conf);
                    results.commands.push(("clamd".into(), a));
                    results.commands.push(("clamonacc".into(), b));
                    let mut r = clamav::start(bins, &conf, &sock, &w.tmp.path)?;
                    with_daemons(
                        &mut w,
                        &fuse,
                        args.opens,
                        product,
                        &mut [&mut r.clamonacc, &mut r.clamd],
                    )
                }
            },
        };
        let f = figures.unwrap_or_else(|e| Figures {
            notes: vec![format!("failed: {e}")],
            ..Figures::default()
        });
        for n in &f.notes {
            println!("{}: {n}", product.label());
        }
        all.push((product, f));
    }
    drop(fuse);
    let load_after = loadavg();
    results.rows = rows(&all, args.opens, &load_before, &load_after);
    print_rows(&results.rows);
    let path = crate::resolve_data_dir(args.data).join("results/attacks.json");
    results.save(&path)?;
    println!(
        "load average before {load_before}, after {load_after}; results in {}",
        path.display()
    );
    Ok(())
}

/// moat.conf with default settings but the include path.
fn moat_conf(db: &Path, protected: &Path) -> String {
    format!(
        "# written by moat-bench attacks\nForeground yes\nDatabaseDirectory {}\n\
         OnAccessIncludePath {}\nOnAccessPrevention yes\n",
        db.display(),
        protected.display()
    )
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The 1, 5 and 15 minute load averages.
fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

impl World {
    fn new(opens: usize) -> Result<World, String> {
        let tmp = TempDir::new()?;
        let db = tmp.path.join("db");
        let protected = tmp.path.join("protected");
        for d in [&db, &protected] {
            fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        fs::set_permissions(&tmp.path, fs::Permissions::from_mode(0o755))
            .map_err(|e| e.to_string())?;
        write(&db.join("bench.hdb"), &race::eicar_hdb())?;
        let eicar = protected.join("eicar.com");
        fs::write(&eicar, race::eicar()).map_err(|e| e.to_string())?;
        let fuse_dir = protected.join("fuse");
        fs::create_dir_all(&fuse_dir).map_err(|e| e.to_string())?;
        let mut usr_share = Vec::new();
        walk_small_files(Path::new("/usr/share"), opens, &mut usr_share);
        if usr_share.is_empty() {
            return Err("no readable small files under /usr/share".into());
        }
        let flood = flood_files(&protected.join("flood"))?;
        let fresh = (0..FRESH_SETS)
            .map(|n| clean_files(&protected.join(format!("clean-{n}"))))
            .collect::<Result<_, _>>()?;
        Ok(World {
            tmp,
            db,
            protected,
            usr_share,
            flood,
            eicar,
            fuse_dir,
            fresh,
        })
    }

    /// A set of clean files never opened before (so no product has a verdict cached).
    fn fresh_clean_files(&mut self) -> Result<Vec<PathBuf>, String> {
        self.fresh
            .pop()
            .ok_or_else(|| "no fresh clean files left".to_string())
    }
}

/// Three measurements of each of the three products.
const FRESH_SETS: usize = 9;

/// [`VICTIM_OPENS`] small clean files in `dir`.
fn clean_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    (0..VICTIM_OPENS)
        .map(|i| {
            let p = dir.join(format!("f{i}.txt"));
            fs::write(&p, format!("clean file {i} of {}\n", dir.display()))
                .map_err(|e| format!("{}: {e}", p.display()))?;
            Ok(p)
        })
        .collect()
}

/// World-readable regular files under 64 KiB, depth first, up to `limit`.
fn walk_small_files(dir: &Path, limit: usize, out: &mut Vec<PathBuf>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = rd.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        if out.len() >= limit {
            return;
        }
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            // Only directories uid 65534 may search.
            if e.metadata()
                .is_ok_and(|m| m.permissions().mode() & 0o005 == 0o005)
            {
                walk_small_files(&e.path(), limit, out);
            }
        } else if ft.is_file() {
            if let Ok(m) = e.metadata() {
                if m.len() > 0 && m.len() < 64 << 10 && m.permissions().mode() & 0o004 != 0 {
                    out.push(e.path());
                }
            }
        }
    }
}

/// [`FLOOD_FILES`] gzip files of zeros, each expanding to [`FLOOD_EXPANDS_TO`]. Compressed
/// once; the copies differ in the header's MTIME field (outside the CRC), so each is a file
/// of its own with its own digest.
fn flood_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..FLOOD_EXPANDS_TO >> 20 {
        gz.write_all(&zeros).map_err(|e| e.to_string())?;
    }
    let mut bytes = gz.finish().map_err(|e| e.to_string())?;
    (0..FLOOD_FILES)
        .map(|i| {
            bytes[4..8].copy_from_slice(&(1_000_000 + i as u32).to_le_bytes());
            let p = dir.join(format!("bomb-{i}.gz"));
            fs::write(&p, &bytes).map_err(|e| format!("{}: {e}", p.display()))?;
            Ok(p)
        })
        .collect()
}

/// Waits until the scanner refuses the EICAR file to uid 65534 (coverage is in place),
/// then measures.
fn with_daemons(
    w: &mut World,
    fuse: &StallingFuse,
    opens: usize,
    product: Product,
    daemons: &mut [&mut Daemon],
) -> Result<Figures, String> {
    let start = Instant::now();
    loop {
        daemon::check_interrupted()?;
        for d in daemons.iter_mut() {
            d.check_alive()?;
        }
        let r = Opener::spawn(FLOODER, std::slice::from_ref(&w.eicar), Mode::Timed(1))?.collect();
        if matches!(r.first(), Some(Err(libc::EPERM))) {
            break;
        }
        if start.elapsed() > Duration::from_secs(120) {
            return Err("the EICAR file was still readable after 120 s".into());
        }
        thread::sleep(Duration::from_millis(100));
    }
    // A scanner that stops answering is killed (the kernel then allows what it held), so
    // a hung peer costs two minutes, not the run.
    let dog = Watchdog::new(daemons.iter().map(|d| d.pid()).collect(), WATCHDOG);
    let mut f = measure(w, fuse, opens, product, Some(&dog))?;
    if dog.fired() {
        f.notes.push(format!(
            "the scanner stopped answering: killed by the watchdog after {} s without progress",
            WATCHDOG.as_secs()
        ));
    }
    for d in daemons.iter_mut() {
        if let Err(e) = d.check_alive() {
            f.notes.push(format!("{} died during the run: {e}", d.name));
        }
    }
    Ok(f)
}

fn measure(
    w: &mut World,
    fuse: &StallingFuse,
    opens: usize,
    product: Product,
    dog: Option<&Watchdog>,
) -> Result<Figures, String> {
    let tick = || {
        if let Some(d) = dog {
            d.tick();
        }
    };
    let mut f = Figures::default();
    println!("{}: elsewhere cost ...", product.label());
    f.elsewhere_us = Some(elsewhere(w, opens, &mut f.notes)?);
    println!("{}: victim opens, no flood ...", product.label());
    tick();
    f.calm = Some(victim(&w.fresh_clean_files()?)?);
    tick();
    println!("{}: victim opens during a flood ...", product.label());
    let flooders: Vec<Opener> = (0..FLOODERS)
        .map(|i| Opener::spawn(FLOODER, &w.flood, Mode::Flood(i * FLOOD_FILES / FLOODERS)))
        .collect::<Result<_, _>>()?;
    // Let the flood fill the queue first.
    thread::sleep(Duration::from_millis(300));
    let files = w.fresh_clean_files()?;
    f.flood = Some(victim(&files)?);
    drop(flooders);
    tick();
    println!("{}: opens during a FUSE stall ...", product.label());
    f.stall_max_ms = stall(w, fuse, &mut f.notes)?;
    Ok(f)
}

/// Best of three passes of `opens` opens under /usr/share as uid 65534: µs per open.
fn elsewhere(w: &World, opens: usize, notes: &mut Vec<String>) -> Result<f64, String> {
    let mut best = f64::INFINITY;
    for pass in 0..3 {
        let recs = Opener::spawn(FLOODER, &w.usr_share, Mode::Timed(opens))?.collect();
        let failed = recs.iter().filter(|r| r.is_err()).count();
        if recs.len() != opens {
            return Err(format!("the opener made {} of {opens} opens", recs.len()));
        }
        if failed > 0 && pass == 0 {
            notes.push(format!("elsewhere: {failed} of {opens} opens failed"));
        }
        let sum: u64 = recs.iter().filter_map(|r| r.as_ref().ok()).sum();
        best = best.min(sum as f64 / 1e3 / (opens - failed).max(1) as f64);
    }
    Ok(best)
}

/// The victim uid opens `files` once each, stopped after [`VICTIM_BUDGET`].
fn victim(files: &[PathBuf]) -> Result<Victim, String> {
    let op = Opener::spawn(VICTIM, files, Mode::Timed(files.len()))?;
    let pid = op.pid();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let d = done.clone();
    let killer = thread::spawn(move || {
        let t = Instant::now();
        while !d.load(std::sync::atomic::Ordering::SeqCst) {
            if t.elapsed() > VICTIM_BUDGET || daemon::interrupted() {
                // SAFETY: our own child, not yet reaped (collect reaps after EOF).
                unsafe { libc::kill(pid, libc::SIGKILL) };
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
    });
    let recs = op.collect();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = killer.join();
    Ok(summarize(&recs))
}

fn summarize(recs: &[Record]) -> Victim {
    let ms: Vec<f64> = recs
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|&ns| ns as f64 / 1e6)
        .collect();
    let deadline_ms = DEADLINE.as_secs_f64() * 1e3 * 0.95;
    Victim {
        p50_ms: quantile(&ms, 0.5),
        p99_ms: quantile(&ms, 0.99),
        max_ms: ms.iter().copied().fold(0.0, f64::max),
        at_deadline: ms.iter().filter(|&&m| m >= deadline_ms).count(),
        done: recs.len(),
        failed: recs.iter().filter(|r| r.is_err()).count(),
    }
}

/// Stalls the FUSE server, has uid 65534 open its file (held by the stall), then times
/// fresh clean opens of the include path as the victim uid: the slowest, in ms.
fn stall(
    w: &mut World,
    fuse: &StallingFuse,
    notes: &mut Vec<String>,
) -> Result<Option<f64>, String> {
    let files = w.fresh_clean_files()?;
    fuse.set_stall(true);
    let released = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let r = released.clone();
    let on_fuse = Opener::spawn(FLOODER, &[w.fuse_dir.join("f")], Mode::Timed(1))?;
    let held = fuse.wait_for_a_held_open(Duration::from_secs(10));
    let result = if held {
        thread::scope(|s| {
            // The stall ends after STALL_LIMIT whatever happens, so nothing hangs.
            s.spawn(|| {
                let t = Instant::now();
                while !r.load(std::sync::atomic::Ordering::SeqCst) && t.elapsed() < STALL_LIMIT {
                    thread::sleep(Duration::from_millis(20));
                }
                fuse.set_stall(false);
            });
            let v = victim(&files);
            released.store(true, std::sync::atomic::Ordering::SeqCst);
            v
        })
    } else {
        fuse.set_stall(false);
        notes.push("stall: no FUSE_OPEN reached the server within 10 s".into());
        return Ok(None);
    }?;
    fuse.set_stall(false);
    let fuse_open = on_fuse.collect();
    if result.failed > 0 || result.done < files.len() {
        notes.push(format!(
            "stall: {} of {} victim opens done, {} failed",
            result.done,
            files.len(),
            result.failed
        ));
    }
    if !matches!(fuse_open.first(), Some(Ok(_))) {
        notes.push(format!(
            "stall: the open on FUSE ended {:?}",
            fuse_open.first()
        ));
    }
    Ok(Some(result.max_ms))
}

fn rows(all: &[(Product, Figures)], opens: usize, before: &str, after: &str) -> Vec<Row> {
    let pick = |p: Product, f: &dyn Fn(&Figures) -> Option<f64>| {
        all.iter()
            .find(|(q, _)| *q == p)
            .and_then(|(_, fig)| f(fig))
    };
    // Each note starts with the section it belongs to (`elsewhere:`, `flood:`, `stall:`);
    // others (a failure) go to every section.
    let notes_of = |section: &str| -> Vec<String> {
        let mut v = Vec::new();
        for (p, f) in all {
            for n in &f.notes {
                let other = ["elsewhere:", "flood:", "stall:"]
                    .iter()
                    .all(|k| !n.starts_with(k));
                if other || n.starts_with(section) {
                    v.push(format!("{}: {n}", p.label()));
                }
            }
        }
        v
    };
    let with_notes = |base: String, section: &str| -> Option<String> {
        Some(
            std::iter::once(base)
                .chain(notes_of(section))
                .collect::<Vec<_>>()
                .join("; "),
        )
    };
    let load = format!("load average before {before}, after {after}");
    let mut out = Vec::new();
    let mut row = |group: &str,
                   metric: String,
                   unit: &str,
                   f: &dyn Fn(&Figures) -> Option<f64>,
                   target: Option<(String, bool)>,
                   note: Option<String>| {
        out.push(Row {
            group: group.into(),
            metric,
            unit: unit.into(),
            moat: pick(Product::Moat, f),
            clamav: pick(Product::Clamonacc, f),
            none: pick(Product::None, f),
            lower_is_better: true,
            target: target.as_ref().map(|t| t.0.clone()),
            met: target.map(|t| t.1),
            note,
        });
    };
    let none_us = pick(Product::None, &|f| f.elsewhere_us);
    let moat_us = pick(Product::Moat, &|f| f.elsewhere_us);
    let ratio_met = match (moat_us, none_us) {
        (Some(m), Some(n)) => Some(m / n <= 1.2),
        _ => None,
    };
    row(
        "elsewhere cost (one directory protected, default settings)",
        format!("open of a small file under /usr/share as uid 65534, mean of {opens}"),
        "us",
        &|f| f.elsewhere_us,
        ratio_met.map(|m| ("<= 1.2x no scanner".to_string(), m)),
        with_notes(format!("{load}; best of 3 passes"), "elsewhere:"),
    );
    let group = "flood fairness (uid 65534 floods, uid 65532 measured)";
    let n = VICTIM_OPENS;
    row(
        group,
        format!("p50 open, {n} fresh clean files, no flood"),
        "ms",
        &|f| f.calm.map(|v| v.p50_ms),
        None,
        None,
    );
    row(
        group,
        format!("p50 open, {n} fresh clean files, during the flood"),
        "ms",
        &|f| f.flood.map(|v| v.p50_ms),
        None,
        None,
    );
    row(
        group,
        format!("p99 open, {n} fresh clean files, no flood"),
        "ms",
        &|f| f.calm.map(|v| v.p99_ms),
        None,
        None,
    );
    row(
        group,
        format!("p99 open, {n} fresh clean files, during the flood"),
        "ms",
        &|f| f.flood.map(|v| v.p99_ms),
        None,
        with_notes(
            format!(
                "{FLOODERS} flooders over {FLOOD_FILES} gzip files expanding to {} MiB each",
                FLOOD_EXPANDS_TO >> 20
            ),
            "flood:",
        ),
    );
    let moat_hits = pick(Product::Moat, &|f| f.flood.map(|v| v.at_deadline as f64));
    row(
        group,
        format!(
            "opens that took the {} s deadline (moat: allowed unscanned), during the flood",
            DEADLINE.as_secs()
        ),
        "count",
        &|f| f.flood.map(|v| v.at_deadline as f64),
        moat_hits.map(|h| ("0".to_string(), h == 0.0)),
        Some(format!(
            "victim stopped after {} s",
            VICTIM_BUDGET.as_secs()
        )),
    );
    row(
        group,
        "victim opens completed during the flood".into(),
        "count",
        &|f| f.flood.map(|v| v.done as f64),
        None,
        None,
    );
    let moat_stall = pick(Product::Moat, &|f| f.stall_max_ms);
    row(
        "stall (a FUSE server below the include path stalls every open)",
        format!("slowest of {n} clean opens elsewhere on the include path"),
        "ms",
        &|f| f.stall_max_ms,
        moat_stall.map(|m| ("< 100 ms".to_string(), m < 100.0)),
        with_notes(
            format!(
                "the stall is released after {} s at the latest",
                STALL_LIMIT.as_secs()
            ),
            "stall:",
        ),
    );
    out
}

fn fmt(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| {
        if v >= 100.0 {
            format!("{v:.0}")
        } else {
            format!("{v:.2}")
        }
    })
}

fn print_rows(rows: &[Row]) {
    let mut group = "";
    for r in rows {
        if r.group != group {
            group = &r.group;
            println!("\n{group}");
            println!(
                "  {:<78} {:>10} {:>10} {:>10} {:>8}  target",
                "", "no scanner", "moat", "clamonacc", "moat/none"
            );
        }
        let ratio = match (r.moat, r.none) {
            (Some(m), Some(n)) if n > 0.0 && r.unit != "count" => format!("{:.2}x", m / n),
            _ => String::new(),
        };
        let target = match (&r.target, r.met) {
            (Some(t), Some(true)) => format!("{t} met"),
            (Some(t), _) => format!("{t} MISSED"),
            _ => String::new(),
        };
        println!(
            "  {:<78} {:>10} {:>10} {:>10} {:>8}  {target}",
            format!("{} ({})", r.metric, r.unit),
            fmt(r.none),
            fmt(r.moat),
            fmt(r.clamav),
            ratio
        );
        if let Some(n) = &r.note {
            println!("    note: {n}");
        }
    }
}
