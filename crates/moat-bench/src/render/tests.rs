//! Renderer tests on fixture results shaped like the `scan` and `watch` suites' files.

use super::*;
use crate::results::{Bars, Results, Row, Series};

fn row(group: &str, metric: &str, unit: &str, m: f64, c: f64, n: Option<f64>, lower: bool) -> Row {
    Row {
        group: group.into(),
        metric: metric.into(),
        unit: unit.into(),
        moat: Some(m),
        clamav: Some(c),
        none: n,
        lower_is_better: lower,
        ..Row::default()
    }
}

fn scan_fixture() -> Results {
    let g = "scan, 630,000 signatures (hash + body)";
    let mut r = Results::new("scan");
    r.command = "moat-bench all --quick".into();
    r.rows = vec![
        Row {
            target: Some("<= 0.5x clamscan".into()),
            met: Some(true),
            ..row(
                g,
                "database load time (630,000 signatures)",
                "s",
                0.47,
                1.19,
                None,
                true,
            )
        },
        Row {
            target: Some(">= 20x clamscan".into()),
            met: Some(true),
            ..row(
                g,
                "scan throughput excl. load",
                "MB/s",
                199.0,
                6.8,
                Some(2500.0),
                false,
            )
        },
        Row {
            target: Some("<= clamscan".into()),
            met: Some(false),
            ..row(g, "peak RSS, scan", "MB", 180.0, 163.0, None, true)
        },
        Row {
            note: Some("71 in common | 0 differ".into()),
            ..row(g, "detections", "count", 71.0, 71.0, None, false)
        },
    ];
    r.bars = vec![
        Bars {
            name: "scan throughput, excluding database load".into(),
            unit: "MB/s".into(),
            labels: vec![
                "630,000 signatures".into(),
                "1,000,000 hash signatures".into(),
            ],
            values: vec![
                ("moat".into(), vec![Some(199.0), Some(310.0)]),
                ("clamscan".into(), vec![Some(6.8), Some(40.0)]),
                (
                    "no scanner (read loop)".into(),
                    vec![Some(2500.0), Some(2500.0)],
                ),
            ],
        },
        Bars {
            name: "database load time".into(),
            unit: "s".into(),
            labels: vec![
                "630,000 signatures".into(),
                "1,000,000 hash signatures".into(),
            ],
            values: vec![
                ("moat".into(), vec![Some(0.47), Some(0.6)]),
                ("clamscan".into(), vec![Some(1.19), None]),
            ],
        },
    ];
    r.commands = vec![("moat scan".into(), "moat scan -r -d db corpus".into())];
    r
}

/// Like the watch suite's file: its groups, latency series per product, verdict bars.
fn watch_fixture() -> Results {
    let mut r = Results::new("watch");
    r.command = "moat-bench all --quick".into();
    r.rows = vec![
        Row {
            target: Some("< 50 ms".into()),
            met: Some(true),
            ..row(
                "coverage setup, warm cache",
                "time to full coverage, 100,000 dirs, filesystem scope",
                "ms",
                8.3,
                1940.0,
                None,
                true,
            )
        },
        Row {
            target: Some("<= 1.2x no scanner".into()),
            met: Some(false),
            ..row(
                "open latency",
                "repeated open() p50",
                "us",
                3.7,
                299.0,
                Some(2.5),
                true,
            )
        },
        row(
            "race escapes",
            "mkdir -p + write + read",
            "count",
            0.0,
            2000.0,
            Some(2000.0),
            true,
        ),
    ];
    let lat = |base: f64, n: usize| -> Vec<f64> {
        (0..n)
            .map(|i| base * (1.0 + (i % 97) as f64 / 20.0))
            .collect()
    };
    for what in ["first", "repeated"] {
        r.series.push(Series {
            name: format!("{what} open() latency, 1,000 files, 100,000 dirs"),
            unit: "us".into(),
            samples: vec![
                ("moat filesystem".into(), lat(3.0, 1000)),
                ("moat directory".into(), lat(3.5, 1000)),
                ("clamonacc".into(), lat(300.0, 1000)),
                ("no scanner".into(), lat(2.3, 1000)),
            ],
        });
    }
    r.bars.push(Bars {
        name: "verdict throughput".into(),
        unit: "verdicts/s".into(),
        labels: vec!["1 opener".into(), "4 openers".into(), "16 openers".into()],
        values: vec![
            (
                "moat filesystem".into(),
                vec![Some(40_000.0), Some(90_000.0), Some(95_000.0)],
            ),
            ("clamonacc".into(), vec![Some(3_000.0), Some(3_500.0), None]),
        ],
    });
    r
}

fn machine() -> Machine {
    Machine {
        cpu: "Test CPU @ 2.0GHz".into(),
        cores: 2,
        memory: 24 << 30,
        kernel: "6.18.0".into(),
    }
}

#[test]
fn values_and_ratios_read_well() {
    let f = scan_fixture();
    assert_eq!(value(Some(0.47), "s"), "0.470 s");
    assert_eq!(value(Some(199.0), "MB/s"), "199 MB/s");
    assert_eq!(value(Some(630_000.0), "count"), "630,000");
    assert_eq!(value(Some(2.5), "us"), "2.50 µs");
    assert_eq!(value(None, "s"), "–");
    assert_eq!(ratio(&f.rows[0]), "2.53× faster");
    assert_eq!(ratio(&f.rows[1]), "29.3× faster");
    assert_eq!(ratio(&f.rows[2]), "1.10× higher");
    assert_eq!(ratio(&f.rows[3]), "same");
    assert_eq!(overhead(&f.rows[1]), "0.08×");
    assert_eq!(target(&f.rows[0]), "<= 0.5x clamscan — met");
    assert_eq!(target(&f.rows[2]), "<= clamscan — **missed**");
    assert_eq!(target(&f.rows[3]), "");
    let w = watch_fixture();
    assert_eq!(ratio(&w.rows[2]), "2,000 fewer");
    assert_eq!(overhead(&w.rows[1]), "1.48×");
}

#[test]
fn tables_have_one_header_per_group_and_escape_cells() {
    let t = tables(&watch_fixture());
    assert_eq!(t.matches("| metric | moat | clamonacc |").count(), 3, "{t}");
    for g in ["coverage setup, warm cache", "open latency", "race escapes"] {
        assert!(t.contains(&format!("### {g}\n")), "{t}");
    }
    assert!(t.contains(
        "| repeated open() p50 | 3.70 µs | 299 µs | 2.50 µs | 80.8× faster | 1.48× | <= 1.2x no scanner — **missed** |  |"
    ), "{t}");
    let s = tables(&scan_fixture());
    assert!(s.contains("71 in common \\| 0 differ"), "{s}");
    // Every table line has the same number of columns as its header.
    for line in s.lines().filter(|l| l.starts_with('|')) {
        assert_eq!(line.replace("\\|", "").matches('|').count(), 9, "{line}");
    }
}

#[test]
fn page_names_machine_commands_and_missing_suites() {
    let results = vec![scan_fixture()];
    let failures = vec![("watch".to_string(), "watch needs root".to_string())];
    let charts = vec![Chart {
        title: "Throughput".into(),
        rel: "docs/bench/throughput.png".into(),
    }];
    let page = markdown(&Page {
        machine: &machine(),
        date: "2026-12-01",
        results_dir: Path::new("/data/results"),
        results: &results,
        failures: &failures,
        charts: &charts,
    });
    assert!(
        page.contains("cargo run --release -p moat-bench -- all "),
        "{page}"
    );
    assert!(page.contains("| CPU | Test CPU @ 2.0GHz |"), "{page}");
    assert!(page.contains("| cores | 2 |"), "{page}");
    assert!(page.contains("| memory | 24.0 GiB |"), "{page}");
    assert!(page.contains("| kernel | 6.18.0 |"), "{page}");
    assert!(page.contains("| date | 2026-12-01 |"), "{page}");
    assert!(page.contains("moat scan -r -d db corpus"), "{page}");
    assert!(
        page.contains("- **watch** failed in this run: watch needs root"),
        "{page}"
    );
    assert!(
        page.contains("**Results missing**: no `/data/results/watch.json`; the suite failed"),
        "{page}"
    );
    assert!(
        page.contains("![Throughput](docs/bench/throughput.png)"),
        "{page}"
    );
    assert!(page.find("## scan").unwrap() < page.find("## watch\n").unwrap());
    // The real-signature suite leads, and says how to run it when its results are missing.
    assert!(page.find("## watch-real").unwrap() < page.find("## scan").unwrap());
    assert!(
        page.contains("no `/data/results/watch-real.json`"),
        "{page}"
    );
}

fn is_png(path: &Path) -> bool {
    let bytes = std::fs::read(path).unwrap_or_default();
    bytes.len() > 1000 && bytes.starts_with(b"\x89PNG\r\n\x1a\n")
}

#[test]
fn charts_are_written_from_both_suites() {
    if charts::ensure_font().is_err() {
        eprintln!("skipped: {} missing", charts::FONT);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bench = dir.path().join("docs/bench");
    std::fs::create_dir_all(&bench).unwrap();
    std::fs::write(bench.join("stale.png"), b"old").unwrap();
    let (charts, errors) = write_charts(&[scan_fixture(), watch_fixture()], &bench, "docs/bench");
    assert!(errors.is_empty(), "{errors:?}");
    let rels: Vec<&str> = charts.iter().map(|c| c.rel.as_str()).collect();
    assert_eq!(
        rels,
        [
            "docs/bench/throughput.png",
            "docs/bench/latency.png",
            "docs/bench/scan-resources.png"
        ]
    );
    for c in &charts {
        assert!(is_png(&dir.path().join(&c.rel)), "{}", c.rel);
    }
    assert!(!bench.join("stale.png").exists());
}

#[test]
fn report_renders_from_results_files() {
    if charts::ensure_font().is_err() {
        eprintln!("skipped: {} missing", charts::FONT);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    scan_fixture()
        .save(&dir.path().join("data/results/scan.json"))
        .unwrap();
    let out = dir.path().join("BENCHMARKS.md");
    let args = ReportArgs {
        data: Some(dir.path().join("data")),
        out: Some(out.clone()),
    };
    assert_eq!(run_with(&args, &[]).unwrap(), out);
    let page = std::fs::read_to_string(&out).unwrap();
    assert!(
        page.contains("### scan, 630,000 signatures (hash + body)"),
        "{page}"
    );
    assert!(
        page.contains("it was not run, or this version of the suite writes none"),
        "{page}"
    );
    assert!(is_png(&dir.path().join("docs/bench/throughput.png")));
    assert!(!dir.path().join("docs/bench/latency.png").exists());
}

/// `moat-bench serve`'s results: clamd is the peer column, the 5x throughput target is
/// judged per row.
#[test]
fn serve_results_render_with_clamd_as_peer() {
    let mut r = Results::new("serve");
    let g = "verdicts per second, clean-verdict cache on (clamd's default)";
    let mut met = row(
        g,
        "INSTREAM verdicts/s, 8 clients",
        "verdicts/s",
        31000.0,
        2000.0,
        None,
        false,
    );
    met.target = Some(">= 5x clamd".into());
    met.met = Some(true);
    let mut missed = row(
        g,
        "FILDES verdicts/s, 1 clients",
        "verdicts/s",
        3700.0,
        2100.0,
        None,
        false,
    );
    missed.target = Some(">= 5x clamd".into());
    missed.met = Some(false);
    r.rows = vec![met, missed];
    let t = tables(&r);
    assert!(
        t.contains("| metric | moat | clamd | no scanner | moat vs clamd |"),
        "{t}"
    );
    assert!(
        t.contains("| INSTREAM verdicts/s, 8 clients | 31,000 verdicts/s | 2,000 verdicts/s | – | 15.5× faster |  | >= 5x clamd — met |  |"),
        "{t}"
    );
    assert!(
        t.contains("1.76× faster |  | >= 5x clamd — **missed**"),
        "{t}"
    );
}
