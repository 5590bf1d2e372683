//! Comparing the two scanners: the metrics table and the detection sanity check.

use crate::gen::corpus::Expected;
use crate::gen::Dataset;
use crate::results;
use crate::runner::{Exit, Run};
use std::collections::BTreeSet;
use std::time::Duration;

/// A detection: (path relative to the corpus when possible, detection name).
pub type Detection = (String, String);

/// Both measured runs of one scanner.
pub struct Side {
    /// Label (`moat`, `clamscan`).
    pub label: &'static str,
    /// The run on a single empty file: database load (plus process start and teardown).
    pub load: Run,
    /// The recursive run on the corpus.
    pub scan: Run,
}

impl Side {
    /// Scan wall time minus load time, never below 1 ms.
    pub fn scan_only(&self) -> Duration {
        self.scan
            .wall
            .saturating_sub(self.load.wall)
            .max(Duration::from_millis(1))
    }

    /// The detections reported in the corpus run.
    pub fn detections(&self, corpus_prefix: &str) -> BTreeSet<Detection> {
        parse_found(&self.scan.stdout, corpus_prefix)
    }
}

/// Extracts `PATH: NAME FOUND` lines. Paths under `corpus_prefix` are made relative to it.
pub fn parse_found(stdout: &str, corpus_prefix: &str) -> BTreeSet<Detection> {
    let prefix = format!("{}/", corpus_prefix.trim_end_matches('/'));
    stdout
        .lines()
        .filter_map(|l| l.strip_suffix(" FOUND"))
        .filter_map(|l| l.rsplit_once(": "))
        .map(|(path, name)| {
            let path = path.strip_prefix(&prefix).unwrap_or(path);
            (path.to_string(), name.to_string())
        })
        .collect()
}

/// A numeric field (`Scanned files`, `Known viruses`...) of a clamscan-style summary, or
/// NaN when the output has none.
fn summary_value(stdout: &str, key: &str) -> f64 {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix(key))
        .find_map(|v| v.strip_prefix(':'))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(f64::NAN, |v| v as f64)
}

const MB: f64 = 1e6;

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// One table row: values for moat and clamscan, how to form the ratio, and a target.
struct Row {
    metric: &'static str,
    moat: f64,
    clam: f64,
    /// `true`: ratio = clamscan/moat (lower is better); `false`: moat/clamscan.
    inverse: bool,
    /// Minimum ratio required, with its human description.
    target: Option<(f64, &'static str)>,
    decimals: usize,
}

fn fmt_num(v: f64, decimals: usize) -> String {
    if v.is_finite() {
        format!("{v:.decimals$}")
    } else {
        "-".to_string()
    }
}

/// Why a pair of runs cannot be judged (a scanner crashed or failed), if so.
fn invalid(moat: &Side, clam: &Side) -> Option<String> {
    let failed: Vec<String> = [moat, clam]
        .iter()
        .flat_map(|side| [&side.load, &side.scan])
        .filter(|run| !matches!(run.exit, Exit::Code(0) | Exit::Code(1)))
        .map(|run| format!("`{}` ended with {}", run.command_line(), run.exit))
        .collect();
    (!failed.is_empty()).then(|| failed.join("; "))
}

/// The machine-readable rows of one database's measurements (`none`: the time to read the
/// whole corpus with no scanner), grouped under `group`; moat's throughput target is
/// `speedup` times clamscan's.
pub fn rows(
    group: &str,
    ds: &Dataset,
    moat: &Side,
    clam: &Side,
    none: Duration,
    speedup: f64,
) -> Vec<results::Row> {
    let mb = ds.corpus_bytes() as f64 / MB;
    let invalid = invalid(moat, clam);
    let judge = |ok: bool| if invalid.is_some() { None } else { Some(ok) };
    let note = |extra: Option<String>| match (&invalid, extra) {
        (Some(why), _) => Some(format!("INVALID run: {why}")),
        (None, extra) => extra,
    };
    let row =
        |metric: String, unit: &str, m: f64, c: f64, n: Option<f64>, lower: bool| results::Row {
            group: group.to_string(),
            metric,
            unit: unit.to_string(),
            moat: Some(m),
            clamav: Some(c),
            none: n,
            lower_is_better: lower,
            target: None,
            met: None,
            note: note(None),
        };
    let sigs = ds.manifest_u64("md5_sigs")
        + ds.manifest_u64("sha256_sigs")
        + ds.manifest_u64("ndb_sigs")
        + ds.manifest_u64("ldb_sigs");
    let prefix = ds.corpus_dir.to_string_lossy().into_owned();
    let found_moat = moat.detections(&prefix);
    let found_clam = clam.detections(&prefix);
    let differ = found_moat.symmetric_difference(&found_clam).count();

    let (ml, cl) = (secs(moat.load.wall), secs(clam.load.wall));
    let (mt, ct) = (mb / secs(moat.scan_only()), mb / secs(clam.scan_only()));
    let (mr, cr) = (moat.scan.max_rss as f64 / MB, clam.scan.max_rss as f64 / MB);
    vec![
        results::Row {
            target: Some("<= 0.5x clamscan".into()),
            met: judge(ml <= 0.5 * cl),
            ..row(
                format!(
                    "database load time ({} signatures)",
                    crate::scan::thousands(sigs)
                ),
                "s",
                ml,
                cl,
                None,
                true,
            )
        },
        results::Row {
            target: Some(format!(">= {speedup}x clamscan")),
            met: judge(mt >= speedup * ct),
            note: note(Some(
                "no scanner: one plain read loop over every corpus file, page cache warm".into(),
            )),
            ..row(
                format!(
                    "scan throughput excl. load ({mb:.0} MB, {} files)",
                    crate::scan::thousands(ds.corpus_files())
                ),
                "MB/s",
                mt,
                ct,
                Some(mb / secs(none)),
                false,
            )
        },
        row(
            "scan wall time".into(),
            "s",
            secs(moat.scan.wall),
            secs(clam.scan.wall),
            Some(secs(none)),
            true,
        ),
        results::Row {
            target: Some("<= clamscan".into()),
            met: judge(mr <= cr),
            ..row("peak RSS, scan".into(), "MB", mr, cr, None, true)
        },
        row(
            "CPU user+sys, scan".into(),
            "s",
            secs(moat.scan.user + moat.scan.sys),
            secs(clam.scan.user + clam.scan.sys),
            None,
            true,
        ),
        results::Row {
            target: Some("same FOUND lines as clamscan".into()),
            met: judge(differ == 0 && !found_moat.is_empty()),
            note: note(Some(format!(
                "{} FOUND lines in common, {differ} differ; {} planted",
                found_moat.intersection(&found_clam).count(),
                ds.expected.len()
            ))),
            ..row(
                "detections".into(),
                "count",
                found_moat.len() as f64,
                found_clam.len() as f64,
                None,
                false,
            )
        },
    ]
}

/// Prints the dataset summary, the exact commands, the metrics table and the sanity check.
pub fn print(ds: &Dataset, moat: &Side, clam: &Side) {
    let bytes = ds.corpus_bytes() as f64;
    println!();
    println!("== dataset: {} ==", ds.root.display());
    println!(
        "corpus: {} files, {:.1} MB; database: {} MD5 (.hdb) + {} SHA-256 (.hsb) + {} body (.ndb) signatures",
        ds.corpus_files(),
        bytes / MB,
        ds.manifest_u64("md5_sigs"),
        ds.manifest_u64("sha256_sigs"),
        ds.manifest_u64("ndb_sigs"),
    );
    println!(
        "  incl. {} '*'-size hash signatures (every file gets hashed), {} size-only decoys; \
         planted: {} body + {} hash detections",
        ds.manifest_u64("star_size_hash_sigs"),
        ds.manifest_u64("size_decoy_hash_sigs"),
        ds.manifest_u64("planted_body"),
        ds.manifest_u64("planted_hash"),
    );

    println!();
    println!("== commands ==");
    for side in [moat, clam] {
        println!("{} load: {}", side.label, side.load.command_line());
        println!("{} scan: {}", side.label, side.scan.command_line());
    }

    let prefix = ds.corpus_dir.to_string_lossy().into_owned();
    let found_moat = moat.detections(&prefix);
    let found_clam = clam.detections(&prefix);

    let rows = [
        Row {
            metric: "database load time (s)",
            moat: secs(moat.load.wall),
            clam: secs(clam.load.wall),
            inverse: true,
            target: Some((2.0, ">= 2x (load <= 0.5x clamscan)")),
            decimals: 3,
        },
        Row {
            metric: "scan wall time (s)",
            moat: secs(moat.scan.wall),
            clam: secs(clam.scan.wall),
            inverse: true,
            target: None,
            decimals: 3,
        },
        Row {
            metric: "scan time excl. load (s)",
            moat: secs(moat.scan_only()),
            clam: secs(clam.scan_only()),
            inverse: true,
            target: None,
            decimals: 3,
        },
        Row {
            metric: "throughput excl. load (MB/s)",
            moat: bytes / MB / secs(moat.scan_only()),
            clam: bytes / MB / secs(clam.scan_only()),
            inverse: false,
            target: Some((20.0, ">= 20x")),
            decimals: 1,
        },
        Row {
            metric: "throughput overall (MB/s)",
            moat: bytes / MB / secs(moat.scan.wall),
            clam: bytes / MB / secs(clam.scan.wall),
            inverse: false,
            target: None,
            decimals: 1,
        },
        Row {
            metric: "peak RSS, scan (MB)",
            moat: moat.scan.max_rss as f64 / MB,
            clam: clam.scan.max_rss as f64 / MB,
            inverse: true,
            target: Some((1.0, ">= 1x (RSS <= clamscan)")),
            decimals: 1,
        },
        Row {
            metric: "peak RSS, load only (MB)",
            moat: moat.load.max_rss as f64 / MB,
            clam: clam.load.max_rss as f64 / MB,
            inverse: true,
            target: None,
            decimals: 1,
        },
        Row {
            metric: "CPU user+sys, scan (s)",
            moat: secs(moat.scan.user + moat.scan.sys),
            clam: secs(clam.scan.user + clam.scan.sys),
            inverse: true,
            target: None,
            decimals: 3,
        },
        Row {
            metric: "signatures loaded (summary)",
            moat: summary_value(&moat.load.stdout, "Known viruses"),
            clam: summary_value(&clam.load.stdout, "Known viruses"),
            inverse: false,
            target: None,
            decimals: 0,
        },
        Row {
            metric: "files scanned (summary)",
            moat: summary_value(&moat.scan.stdout, "Scanned files"),
            clam: summary_value(&clam.scan.stdout, "Scanned files"),
            inverse: false,
            target: None,
            decimals: 0,
        },
        Row {
            metric: "detections",
            moat: found_moat.len() as f64,
            clam: found_clam.len() as f64,
            inverse: false,
            target: None,
            decimals: 0,
        },
    ];

    let failed = invalid(moat, clam);
    let valid = failed.is_none();

    println!();
    println!("== results (ratio: clamscan/moat for times and RSS, moat/clamscan otherwise) ==");
    if !valid {
        println!(
            "!! INVALID, figures are meaningless: {}",
            failed.unwrap_or_default()
        );
    }
    let header = format!(
        "{:<30} | {:>10} | {:>10} | {:>8} | target",
        "metric", moat.label, clam.label, "ratio"
    );
    println!("{header}");
    println!("{}", "-".repeat(header.len() + 28));
    for r in &rows {
        let ratio = if r.inverse {
            r.clam / r.moat
        } else {
            r.moat / r.clam
        };
        let ratio_s = if ratio.is_finite() {
            format!("{ratio:.2}x")
        } else {
            "-".to_string()
        };
        let target = match r.target {
            Some((_, text)) if !valid => format!("{text}  (invalid run)"),
            Some((min, text)) if ratio.is_finite() => {
                format!("{text}  {}", if ratio >= min { "ok" } else { "MISSED" })
            }
            Some((_, text)) => text.to_string(),
            None => String::new(),
        };
        println!(
            "{:<30} | {:>10} | {:>10} | {:>8} | {}",
            r.metric,
            fmt_num(r.moat, r.decimals),
            fmt_num(r.clam, r.decimals),
            ratio_s,
            target
        );
    }
    println!(
        "{:<30} | {:>10} | {:>10} |",
        "exit status (scan)",
        moat.scan.exit.to_string(),
        clam.scan.exit.to_string()
    );

    print_sanity(&ds.expected, &found_moat, &found_clam, moat, clam);
}

fn strip_unofficial(name: &str) -> &str {
    name.strip_suffix(".UNOFFICIAL").unwrap_or(name)
}

fn print_sanity(
    expected: &[Expected],
    found_moat: &BTreeSet<Detection>,
    found_clam: &BTreeSet<Detection>,
    moat: &Side,
    clam: &Side,
) {
    println!();
    println!("== sanity check: FOUND lines ==");
    let agree = found_moat.intersection(found_clam).count();
    let only_moat: Vec<_> = found_moat.difference(found_clam).collect();
    let only_clam: Vec<_> = found_clam.difference(found_moat).collect();
    println!(
        "agree: {agree}; differ: {} (only {}: {}, only {}: {})",
        only_moat.len() + only_clam.len(),
        moat.label,
        only_moat.len(),
        clam.label,
        only_clam.len()
    );
    let diffs = only_moat
        .iter()
        .map(|d| (moat.label, d))
        .chain(only_clam.iter().map(|d| (clam.label, d)));
    for (who, (path, name)) in diffs.take(10) {
        println!("  only {who:<8} {path}: {name}");
    }

    let want: BTreeSet<(&str, &str)> = expected
        .iter()
        .map(|e| (e.rel.as_str(), e.name.as_str()))
        .collect();
    for (side, found) in [(moat, found_moat), (clam, found_clam)] {
        let norm: BTreeSet<(&str, &str)> = found
            .iter()
            .map(|(p, n)| (p.as_str(), strip_unofficial(n)))
            .collect();
        let hit = want.intersection(&norm).count();
        let unexpected = norm.difference(&want).count();
        println!(
            "{}: {hit}/{} planted detections found, {unexpected} unexpected",
            side.label,
            want.len()
        );
    }

    for side in [moat, clam] {
        for run in [&side.load, &side.scan] {
            if !matches!(run.exit, Exit::Code(0) | Exit::Code(1)) {
                println!();
                println!(
                    "warning: `{}` ended with {}; last lines of its stderr ({}):",
                    run.command_line(),
                    run.exit,
                    run.stderr_path.display()
                );
                println!("{}", run.stderr_tail(10));
            }
        }
    }
}
