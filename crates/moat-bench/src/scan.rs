//! `moat-bench scan`: `moat scan -r` against `clamscan -r` on the synthetic dataset's
//! database and on a hash-only database of ~1,000,000 signatures ([`gen::hashdb`]), over the
//! same corpus, with a no-scanner baseline (reading every corpus file once, page cache
//! warm). Prints a table per database and writes `<data dir>/results/scan.json`.

use crate::gen::{self, archives, hashdb, ldbdb, Dataset};
use crate::report::{self, Side};
use crate::results::{Bars, Results};
use crate::runner::{self, Tool};
use crate::{data_dir, moat_tool, profile, resolve_moat, ScanArgs};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Where a suite's results go: `<data dir>/results/<suite>.json`.
pub fn results_path(data: &Path, suite: &str) -> PathBuf {
    data.join("results").join(format!("{suite}.json"))
}

/// The no-scanner baseline: the fastest of `runs` plain read loops over the corpus.
fn read_baseline(ds: &Dataset, runs: u32) -> Result<Duration, String> {
    let mut best = Duration::MAX;
    for i in 1..=runs {
        eprintln!("moat-bench: none: reading the corpus ({i}/{runs})...");
        let t = Instant::now();
        runner::warm_cache(&[&ds.corpus_dir]).map_err(|e| format!("reading the corpus: {e}"))?;
        let d = t.elapsed();
        eprintln!("moat-bench:   {:.3}s", d.as_secs_f64());
        best = best.min(d);
    }
    Ok(best.max(Duration::from_millis(1)))
}

/// Runs one tool's load and scan measurements (best of `runs` each).
fn measure_tool(tool: &Tool, ds: &Dataset, runs: u32, tag: &str) -> Result<Side, String> {
    let runs_dir = ds.root.join("runs");
    let measure = |what: &str, target: &Path| {
        let mut best: Option<runner::Run> = None;
        for i in 1..=runs {
            eprintln!("moat-bench: {} {tag} {what} ({i}/{runs})...", tool.label);
            let r = runner::run(
                &tool.argv(&ds.db_dir, target),
                &runs_dir,
                &format!("{}-{tag}-{what}", tool.label),
            )
            .map_err(|e| format!("{}: {e}", tool.label))?;
            eprintln!(
                "moat-bench:   {:.3}s, {:.1} MB peak RSS, {}",
                r.wall.as_secs_f64(),
                r.max_rss as f64 / 1e6,
                r.exit
            );
            if best.as_ref().map_or(true, |b| r.wall < b.wall) {
                best = Some(r);
            }
        }
        Ok::<_, String>(best.expect("at least one run"))
    };
    Ok(Side {
        label: tool.label,
        load: measure("load", &ds.empty_file)?,
        scan: measure("scan", &ds.corpus_dir)?,
    })
}

/// One database measured: its label and both sides.
struct Measured {
    label: String,
    speedup: f64,
    ds: Dataset,
    moat: Side,
    clam: Side,
}

/// Runs the whole `scan` suite.
pub fn run(args: ScanArgs) -> Result<(), String> {
    let started = Instant::now();
    let mut results = Results::new("scan");
    let data = data_dir(&args.data);
    let ds = gen::ensure(&data, &profile(&args.data), args.data.force)
        .map_err(|e| format!("generating data: {e}"))?;
    if ds.generated {
        eprintln!("moat-bench: data generated in {:.1}s", ds.generation_secs);
    } else {
        eprintln!("moat-bench: using cached data in {}", ds.root.display());
    }
    let hash_profile = hashdb::HashProfile::full();
    let hash_ds =
        hashdb::ensure(&ds, hash_profile).map_err(|e| format!("generating the hash db: {e}"))?;
    let ldb_ds = ldbdb::ensure(&ds).map_err(|e| format!("generating the logical db: {e}"))?;
    let archive_ds =
        archives::ensure(&ds).map_err(|e| format!("packing the archive corpus: {e}"))?;

    let moat = moat_tool(resolve_moat(args.moat)?);
    let clam = Tool {
        label: "clamscan",
        program: args.clamscan,
        prefix: Vec::new(),
    };

    let t = Instant::now();
    let warmed = runner::warm_cache(&[
        &ds.corpus_dir,
        &ds.db_dir,
        &hash_ds.db_dir,
        &ldb_ds.db_dir,
        &archive_ds.corpus_dir,
    ])
    .map_err(|e| format!("warming the page cache: {e}"))?;
    eprintln!(
        "moat-bench: page cache warmed ({:.1} MB in {:.1}s)",
        warmed as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    let none = read_baseline(&ds, args.runs)?;

    let sigs = |d: &Dataset| {
        d.manifest_u64("md5_sigs")
            + d.manifest_u64("sha256_sigs")
            + d.manifest_u64("ndb_sigs")
            + d.manifest_u64("ldb_sigs")
    };
    let archive_label = format!(
        "{} signatures, {} archives (zip, tar.gz, tar, nested)",
        thousands(sigs(&archive_ds)),
        thousands(archive_ds.corpus_files())
    );
    // (label, tag, dataset, moat's throughput target as a multiple of clamscan's):
    // the foundation's 20x on plain files, detection depth's 10x on .ldb and archives.
    let ldb_label = format!(
        "{} logical signatures, {} files",
        thousands(sigs(&ldb_ds)),
        thousands(ldb_ds.corpus_files())
    );
    let plan = [
        (
            format!("{} signatures (hash + body)", thousands(sigs(&ds))),
            "db",
            ds,
            20.0,
        ),
        (
            format!("{} hash signatures", thousands(sigs(&hash_ds))),
            "hashdb",
            hash_ds,
            20.0,
        ),
        (ldb_label, "ldb", ldb_ds, 10.0),
        (archive_label, "archives", archive_ds, 10.0),
    ];
    // The read loop ran over the whole corpus; a subset's baseline is scaled to its size.
    let full_bytes = plan[0].2.corpus_bytes().max(1) as f64;
    let mut measured = Vec::new();
    for (label, tag, ds, speedup) in plan {
        let moat_side = measure_tool(&moat, &ds, args.runs, tag)?;
        let clam_side = measure_tool(&clam, &ds, args.runs, tag)?;
        println!();
        println!("######## database: {label} ########");
        report::print(&ds, &moat_side, &clam_side);
        measured.push(Measured {
            label,
            speedup,
            ds,
            moat: moat_side,
            clam: clam_side,
        });
    }

    let mut bars = Bars {
        name: "scan throughput, excluding database load".into(),
        unit: "MB/s".into(),
        labels: measured.iter().map(|m| m.label.clone()).collect(),
        values: Vec::new(),
    };
    let mut load = Bars {
        name: "database load time".into(),
        unit: "s".into(),
        labels: bars.labels.clone(),
        values: Vec::new(),
    };
    let mut rss = Bars {
        name: "peak RSS while scanning".into(),
        unit: "MB".into(),
        labels: bars.labels.clone(),
        values: Vec::new(),
    };
    let mut tput = (Vec::new(), Vec::new(), Vec::new());
    let mut loads = (Vec::new(), Vec::new());
    let mut rsses = (Vec::new(), Vec::new());
    for m in &measured {
        let group = format!("scan, {}", m.label);
        let none = none.mul_f64(m.ds.corpus_bytes() as f64 / full_bytes);
        results.rows.extend(report::rows(
            &group, &m.ds, &m.moat, &m.clam, none, m.speedup,
        ));
        let mb = m.ds.corpus_bytes() as f64 / 1e6;
        tput.0.push(Some(mb / m.moat.scan_only().as_secs_f64()));
        tput.1.push(Some(mb / m.clam.scan_only().as_secs_f64()));
        tput.2.push(Some(mb / none.as_secs_f64()));
        loads.0.push(Some(m.moat.load.wall.as_secs_f64()));
        loads.1.push(Some(m.clam.load.wall.as_secs_f64()));
        rsses.0.push(Some(m.moat.scan.max_rss as f64 / 1e6));
        rsses.1.push(Some(m.clam.scan.max_rss as f64 / 1e6));
        for side in [&m.moat, &m.clam] {
            for run in [&side.load, &side.scan] {
                let what = if std::ptr::eq(run, &side.load) {
                    "load"
                } else {
                    "scan"
                };
                results.commands.push((
                    format!("{} {what}, {}", side.label, m.label),
                    run.command_line(),
                ));
            }
        }
    }
    bars.values = vec![
        ("moat".into(), tput.0),
        ("clamscan".into(), tput.1),
        ("no scanner (read loop)".into(), tput.2),
    ];
    load.values = vec![("moat".into(), loads.0), ("clamscan".into(), loads.1)];
    rss.values = vec![("moat".into(), rsses.0), ("clamscan".into(), rsses.1)];
    results.bars = vec![bars, load, rss];

    let path = results_path(&data, "scan");
    results.save(&path)?;
    println!();
    println!(
        "results: {}; outputs: {}; total benchmark time {:.1}s",
        path.display(),
        measured[0].ds.root.join("runs").display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
