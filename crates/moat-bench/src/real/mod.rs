//! `moat-bench real`: `moat scan` against `clamscan` with ClamAV's REAL signatures
//! (`../shared/sigs/clamav-real` by default, `--db` for another directory) on a real-file
//! corpus of this machine ([`corpus`]: programs, libraries, Python sources, documents;
//! the same selection every run), then each of the largest programs and libraries alone.
//!
//! Printed side by side and written to `<data dir>/results/real.json`: database load time
//! (an empty file scanned), scan wall time, CPU time (user + sys) and peak RSS of the child
//! (`wait4` rusage), a no-scanner read loop, the FOUND lines of both (they must be equal),
//! and per large file the scan time excluding load, with the worst moat/clamscan ratio.

pub mod corpus;

use crate::report::{parse_found, Side};
use crate::results::{Results, Row};
use crate::runner::{self, Exit, Run, Tool};
use crate::scan::{results_path, thousands};
use crate::{moat_tool, resolve_data_dir, resolve_moat, workspace_root};
use clap::Args;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Arguments of `moat-bench real`.
#[derive(Args)]
pub struct RealArgs {
    /// The signature database directory, given to both scanners with `-d`
    /// [default: <workspace>/../shared/sigs/clamav-real].
    #[arg(long, value_name = "DIR")]
    pub db: Option<PathBuf>,
    /// Where the corpus cache and results go [default: <workspace>/target/bench-data].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Select and link the corpus anew even when a complete cache exists.
    #[arg(long)]
    pub force: bool,
    /// The moat binary [default: <target dir>/release/moat, built if missing].
    #[arg(long, value_name = "PATH")]
    pub moat: Option<PathBuf>,
    /// The clamscan binary.
    #[arg(long, value_name = "PATH", default_value = "clamscan")]
    pub clamscan: PathBuf,
    /// Run every measurement this many times and keep the fastest.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,
    /// How many of the largest programs (/usr/bin) and of the largest libraries (/usr/lib)
    /// to time alone (0: none).
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub largest: usize,
    /// A scanner still running after this many seconds on one large file is killed and
    /// the file counted as over its target.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    pub file_timeout: u64,
}

/// The default database: the real signature files shared beside the workspace.
pub fn default_db() -> PathBuf {
    workspace_root().join("../shared/sigs/clamav-real")
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn cpu(r: &Run) -> Duration {
    r.user + r.sys
}

/// The fastest of `runs` runs of `tool` on `target`.
fn best_of(
    tool: &Tool,
    db: &Path,
    target: &Path,
    runs: u32,
    out: &Path,
    what: &str,
    limit: Option<Duration>,
) -> Result<Run, String> {
    let mut best: Option<Run> = None;
    for i in 1..=runs {
        eprintln!("moat-bench: {} {what} ({i}/{runs})...", tool.label);
        let r = runner::run_limited(
            &tool.argv(db, target),
            out,
            &format!("{}-real-{what}", tool.label),
            limit,
        )
        .map_err(|e| format!("{}: {e}", tool.label))?;
        eprintln!(
            "moat-bench:   {:.3}s wall, {:.3}s CPU, {:.1} MB peak RSS, {}{}",
            secs(r.wall),
            secs(cpu(&r)),
            r.max_rss as f64 / 1e6,
            r.exit,
            if r.timed_out { " (TIMED OUT)" } else { "" }
        );
        let timed_out = r.timed_out;
        if best.as_ref().map_or(true, |b| r.wall < b.wall) {
            best = Some(r);
        }
        if timed_out {
            break;
        }
    }
    Ok(best.expect("at least one run"))
}

/// A numeric field of a clamscan-style summary (`Known viruses`...).
fn summary(stdout: &str, key: &str) -> Option<f64> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix(key))
        .find_map(|v| v.strip_prefix(':'))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|v| v as f64)
}

/// Why a run cannot be judged, if so.
fn failure(r: &Run) -> Option<String> {
    if r.timed_out {
        return Some(format!("`{}` killed at the time limit", r.command_line()));
    }
    (!matches!(r.exit, Exit::Code(0) | Exit::Code(1)))
        .then(|| format!("`{}` ended with {}", r.command_line(), r.exit))
}

/// A row of this suite, judged when both runs are valid.
struct Judge<'a> {
    group: &'a str,
    invalid: Option<String>,
}

impl Judge<'_> {
    #[allow(clippy::too_many_arguments)]
    fn row(
        &self,
        metric: String,
        unit: &str,
        moat: f64,
        clam: f64,
        none: Option<f64>,
        lower: bool,
        target: Option<(&str, bool)>,
        note: Option<String>,
    ) -> Row {
        Row {
            group: self.group.to_string(),
            metric,
            unit: unit.to_string(),
            moat: Some(moat),
            clamav: Some(clam),
            none,
            lower_is_better: lower,
            target: target.map(|(t, _)| t.to_string()),
            met: target.and_then(|(_, ok)| self.invalid.is_none().then_some(ok)),
            note: match (&self.invalid, note) {
                (Some(why), _) => Some(format!("INVALID run: {why}")),
                (None, n) => n,
            },
        }
    }
}

/// The corpus rows: load, wall, CPU, RSS, throughput, verdicts.
fn corpus_rows(
    group: &str,
    c: &corpus::Corpus,
    moat: &Side,
    clam: &Side,
    none: Duration,
) -> Vec<Row> {
    let invalid: Vec<String> = [&moat.load, &moat.scan, &clam.load, &clam.scan]
        .into_iter()
        .filter_map(failure)
        .collect();
    let j = Judge {
        group,
        invalid: (!invalid.is_empty()).then(|| invalid.join("; ")),
    };
    let mb = c.bytes() as f64 / 1e6;
    let prefix = c.dir.to_string_lossy().into_owned();
    let (fm, fc) = (
        parse_found(&moat.scan.stdout, &prefix),
        parse_found(&clam.scan.stdout, &prefix),
    );
    let differ = fm.symmetric_difference(&fc).count();
    let (ml, cl) = (secs(moat.load.wall), secs(clam.load.wall));
    let (mw, cw) = (secs(moat.scan.wall), secs(clam.scan.wall));
    let (mc, cc) = (secs(cpu(&moat.scan)), secs(cpu(&clam.scan)));
    let (mr, cr) = (
        moat.scan.max_rss as f64 / 1e6,
        clam.scan.max_rss as f64 / 1e6,
    );
    let (mt, ct) = (mb / secs(moat.scan_only()), mb / secs(clam.scan_only()));
    let sigs = |s: &Side| summary(&s.load.stdout, "Known viruses").unwrap_or(f64::NAN);
    let scanned = |s: &Side| summary(&s.scan.stdout, "Scanned files").unwrap_or(f64::NAN);
    vec![
        j.row(
            "database load time (an empty file scanned)".into(),
            "s",
            ml,
            cl,
            None,
            true,
            Some(("<= clamscan", ml <= cl)),
            None,
        ),
        j.row(
            "signatures loaded (Known viruses)".into(),
            "count",
            sigs(moat),
            sigs(clam),
            None,
            false,
            None,
            Some("bytecode and constructs moat cannot evaluate yet are not counted".into()),
        ),
        j.row(
            format!(
                "scan wall time ({mb:.0} MB, {} files)",
                thousands(c.entries.len() as u64)
            ),
            "s",
            mw,
            cw,
            Some(secs(none)),
            true,
            Some((">= 3x faster than clamscan (aim 10x)", cw >= 3.0 * mw)),
            Some("no scanner: one plain read loop over every corpus file, page cache warm".into()),
        ),
        j.row(
            "scan throughput excl. load".into(),
            "MB/s",
            mt,
            ct,
            Some(mb / secs(none)),
            false,
            None,
            None,
        ),
        j.row(
            "CPU user+sys, scan".into(),
            "s",
            mc,
            cc,
            None,
            true,
            Some(("< clamscan", mc < cc)),
            None,
        ),
        j.row(
            "peak RSS, scan".into(),
            "MB",
            mr,
            cr,
            None,
            true,
            Some(("<= clamscan (aim 0.5x)", mr <= cr)),
            None,
        ),
        j.row(
            "files scanned (summary)".into(),
            "count",
            scanned(moat),
            scanned(clam),
            None,
            false,
            None,
            None,
        ),
        j.row(
            "infected files (FOUND lines)".into(),
            "count",
            fm.len() as f64,
            fc.len() as f64,
            None,
            false,
            Some(("same FOUND lines as clamscan", differ == 0)),
            Some(format!(
                "{} in common, {differ} differ{}",
                fm.intersection(&fc).count(),
                list_differences(&fm, &fc)
            )),
        ),
    ]
}

/// ` (moat only: …; clamscan only: …)`, a few of each, or nothing.
fn list_differences(m: &BTreeSet<(String, String)>, c: &BTreeSet<(String, String)>) -> String {
    let few = |a: &BTreeSet<(String, String)>, b: &BTreeSet<(String, String)>| {
        a.difference(b)
            .take(5)
            .map(|(p, n)| format!("{p} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (mo, co) = (few(m, c), few(c, m));
    if mo.is_empty() && co.is_empty() {
        String::new()
    } else {
        format!(" (moat only: {mo}; clamscan only: {co})")
    }
}

/// One large file timed alone by both scanners.
struct Single {
    path: PathBuf,
    size: u64,
    moat: Run,
    clam: Run,
}

/// The rows of the large files: each one's scan time excluding load, then the worst ratio.
fn single_rows(group: &str, files: &[Single], moat_load: &Run, clam_load: &Run) -> Vec<Row> {
    let only = |r: &Run, load: &Run| secs(r.wall.saturating_sub(load.wall)).max(0.001);
    let mut rows = Vec::new();
    let mut worst: Option<(f64, String)> = None;
    let mut all_valid = true;
    for f in files {
        let invalid = [&f.moat, &f.clam]
            .into_iter()
            .filter_map(failure)
            .collect::<Vec<_>>();
        all_valid &= invalid.is_empty();
        let j = Judge {
            group,
            invalid: (!invalid.is_empty()).then(|| invalid.join("; ")),
        };
        let (m, c) = (only(&f.moat, moat_load), only(&f.clam, clam_load));
        let name = f.path.display().to_string();
        if worst.as_ref().map_or(true, |(w, _)| m / c > *w) {
            worst = Some((m / c, name.clone()));
        }
        let same = parse_found(&f.moat.stdout, "") == parse_found(&f.clam.stdout, "");
        rows.push(j.row(
            format!("{name} ({:.1} MB), scan excl. load", f.size as f64 / 1e6),
            "s",
            m,
            c,
            None,
            true,
            Some(("<= 2x clamscan", m <= 2.0 * c && !f.moat.timed_out)),
            Some(format!(
                "wall {:.2} s vs {:.2} s; CPU {:.2} s vs {:.2} s; peak RSS {:.0} MB vs {:.0} MB; verdicts {}",
                secs(f.moat.wall),
                secs(f.clam.wall),
                secs(cpu(&f.moat)),
                secs(cpu(&f.clam)),
                f.moat.max_rss as f64 / 1e6,
                f.clam.max_rss as f64 / 1e6,
                if same { "equal" } else { "DIFFER" }
            )),
        ));
    }
    if let Some((w, name)) = worst {
        rows.push(Row {
            group: group.to_string(),
            metric: format!("worst moat/clamscan time ratio ({name})"),
            unit: "x".into(),
            moat: Some(w),
            clamav: Some(1.0),
            none: None,
            lower_is_better: true,
            target: Some("<= 2".into()),
            met: all_valid.then_some(w <= 2.0),
            note: None,
        });
    }
    rows
}

/// Prints rows side by side with their ratios.
fn print_rows(title: &str, rows: &[Row]) {
    println!();
    println!("######## {title} ########");
    println!(
        "{:<62} {:>12} {:>12} {:>9}  target",
        "metric", "moat", "clamscan", "ratio"
    );
    for r in rows {
        let (m, c) = (r.moat.unwrap_or(f64::NAN), r.clamav.unwrap_or(f64::NAN));
        let ratio = if r.unit == "count" || r.unit == "x" {
            String::new()
        } else if r.lower_is_better {
            format!("{:.2}x", c / m)
        } else {
            format!("{:.2}x", m / c)
        };
        let met = match r.met {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "",
        };
        println!(
            "{:<62} {:>12.3} {:>12.3} {:>9}  {} {}",
            format!("{} ({})", r.metric, r.unit),
            m,
            c,
            ratio,
            r.target.as_deref().unwrap_or(""),
            met
        );
        if let Some(n) = &r.note {
            println!("    {n}");
        }
    }
}

/// Runs the whole `real` suite.
pub fn run(args: RealArgs) -> Result<(), String> {
    let started = Instant::now();
    let data = resolve_data_dir(args.data.clone());
    let db = args.db.clone().unwrap_or_else(default_db);
    if !db.is_dir() {
        return Err(format!(
            "{}: no such database directory (pass --db DIR)",
            db.display()
        ));
    }
    let cache = data.join("real");
    let corpus = corpus::ensure(&cache, args.force).map_err(|e| format!("the real corpus: {e}"))?;
    let large = if args.largest > 0 {
        corpus::largest_binaries(args.largest)
    } else {
        Vec::new()
    };
    std::fs::write(
        cache.join("largest.tsv"),
        large
            .iter()
            .map(|(p, s)| format!("{s}\t{}\n", p.display()))
            .collect::<String>(),
    )
    .map_err(|e| format!("{}: {e}", cache.display()))?;
    let empty = cache.join("empty");
    std::fs::write(&empty, b"").map_err(|e| format!("{}: {e}", empty.display()))?;
    let out = cache.join("runs");

    let moat = moat_tool(resolve_moat(args.moat.clone())?);
    let clam = Tool {
        label: "clamscan",
        program: args.clamscan.clone(),
        prefix: Vec::new(),
    };
    eprintln!(
        "moat-bench: real corpus {} ({} files, {:.1} MB), database {}",
        corpus.dir.display(),
        corpus.entries.len(),
        corpus.bytes() as f64 / 1e6,
        db.display()
    );
    let mut warm: Vec<&Path> = vec![&corpus.dir, &db];
    warm.extend(large.iter().map(|(p, _)| p.as_path()));
    runner::warm_cache(&warm).map_err(|e| format!("warming the page cache: {e}"))?;
    let mut none = Duration::MAX;
    for _ in 0..args.runs {
        let t = Instant::now();
        runner::warm_cache(&[&corpus.dir]).map_err(|e| format!("reading the corpus: {e}"))?;
        none = none.min(t.elapsed());
    }

    let side = |tool: &Tool| -> Result<Side, String> {
        Ok(Side {
            label: tool.label,
            load: best_of(tool, &db, &empty, args.runs, &out, "load", None)?,
            scan: best_of(tool, &db, &corpus.dir, args.runs, &out, "scan", None)?,
        })
    };
    let moat_side = side(&moat)?;
    let clam_side = side(&clam)?;

    let limit = Some(Duration::from_secs(args.file_timeout));
    let mut singles = Vec::new();
    for (i, (path, size)) in large.iter().enumerate() {
        let what = format!("large{i}");
        singles.push(Single {
            path: path.clone(),
            size: *size,
            moat: best_of(&moat, &db, path, args.runs, &out, &what, limit)?,
            clam: best_of(&clam, &db, path, args.runs, &out, &what, limit)?,
        });
    }

    let mut results = Results::new("real");
    let group = format!(
        "real signatures ({}), this machine's files: programs, libraries, Python, documents",
        db.display()
    );
    results
        .rows
        .extend(corpus_rows(&group, &corpus, &moat_side, &clam_side, none));
    print_rows(&group, &results.rows);
    if !singles.is_empty() {
        let group = "real signatures, the largest programs and libraries, each alone";
        let rows = single_rows(group, &singles, &moat_side.load, &clam_side.load);
        print_rows(group, &rows);
        results.rows.extend(rows);
    }
    for s in [&moat_side, &clam_side] {
        results
            .commands
            .push((format!("{} load", s.label), s.load.command_line()));
        results
            .commands
            .push((format!("{} scan", s.label), s.scan.command_line()));
    }
    if let Some(s) = singles.first() {
        results
            .commands
            .push(("moat, one large file".into(), s.moat.command_line()));
        results
            .commands
            .push(("clamscan, one large file".into(), s.clam.command_line()));
    }
    let path = results_path(&data, "real");
    results.save(&path)?;
    println!();
    println!(
        "corpus list: {}; large files: {}; results: {}; outputs: {}; total {:.1}s",
        cache.join("manifest.tsv").display(),
        cache.join("largest.tsv").display(),
        path.display(),
        out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
