//! `moat-bench report`: BENCHMARKS.md and its charts, from `<data dir>/results/*.json`
//! ([`Results`]) alone.
//!
//! The page gives the machine (CPU model, cores, memory, kernel), the date, the commands,
//! then per suite a table per row group: moat, ClamAV, no scanner, the moat/ClamAV and
//! moat/no-scanner ratios and the target with met/missed. Charts go to `docs/bench/` next
//! to the page ([`charts`]): `throughput.png` (every throughput bar chart), `latency.png`
//! (every latency series, as CDFs) and `<suite>-resources.png` (a suite's other bars).
//! A missing results file is said so on the page.

pub mod charts;

use crate::results::{Bars, Results, Row, Series};
use clap::Args;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Arguments of `moat-bench report`.
#[derive(Args)]
pub struct ReportArgs {
    /// Where the results are read from (`<DIR>/results/*.json`) [default:
    /// <workspace>/target/bench-data].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// The page to write [default: <workspace>/BENCHMARKS.md; charts go to docs/bench/
    /// beside it].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// The suites the page expects, in order, with the command that runs each alone.
pub const SUITES: [(&str, &str); 6] = [
    ("real", "cargo run --release -p moat-bench -- real"),
    (
        "watch-real",
        "cargo run --release -p moat-bench -- watch-real",
    ),
    ("scan", "cargo run --release -p moat-bench -- scan"),
    ("watch", "cargo run --release -p moat-bench -- watch"),
    ("attacks", "cargo run --release -p moat-bench -- attacks"),
    ("serve", "cargo run --release -p moat-bench -- serve"),
];

/// What the page says about the machine.
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    /// `model name` of /proc/cpuinfo.
    pub cpu: String,
    /// Available parallelism (what `nproc` prints).
    pub cores: usize,
    /// MemTotal of /proc/meminfo, bytes.
    pub memory: u64,
    /// `uname -r`.
    pub kernel: String,
}

impl Machine {
    /// Reads this machine's facts.
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or("unknown".to_string(), |(_, v)| v.trim().to_string());
        let memory = std::fs::read_to_string("/proc/meminfo")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024);
        let kernel = std::process::Command::new("uname")
            .arg("-r")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|s| !s.is_empty())
            .or_else(|| {
                std::fs::read_to_string("/proc/sys/kernel/osrelease")
                    .ok()
                    .map(|s| s.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory,
            kernel,
        }
    }
}

/// A chart on the page: title and path relative to the page.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// Shown as the image's alt text and above it.
    pub title: String,
    /// Relative to the page, `/`-separated.
    pub rel: String,
}

/// Escapes a table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The unit as shown.
fn unit_text(unit: &str) -> &str {
    match unit {
        "us" => "µs",
        "count" => "",
        u => u,
    }
}

/// `1234567` → `1,234,567`.
fn thousands(v: f64) -> String {
    let s = crate::scan::thousands(v.round().abs() as u64);
    if v <= -0.5 {
        format!("-{s}")
    } else {
        s
    }
}

/// A figure with its unit: counts and large values whole with thousands separators,
/// others with about three significant digits.
pub fn value(v: Option<f64>, unit: &str) -> String {
    let Some(v) = v.filter(|v| v.is_finite()) else {
        return "–".to_string();
    };
    let num = if unit == "count" || v.abs() >= 1000.0 {
        thousands(v)
    } else {
        charts::short(v)
    };
    match unit_text(unit) {
        "" => num,
        u => format!("{num} {u}"),
    }
}

fn times(r: f64) -> String {
    if r >= 10.0 {
        format!("{r:.1}×")
    } else {
        format!("{r:.2}×")
    }
}

/// moat against ClamAV, in words: `2.55× faster`, `1.17× lower`, `same`...
pub fn ratio(row: &Row) -> String {
    let (Some(m), Some(c)) = (row.moat, row.clamav) else {
        return String::new();
    };
    if !(m.is_finite() && c.is_finite()) {
        return String::new();
    }
    if row.unit == "count" {
        return if m == c {
            "same".into()
        } else if m < c {
            format!("{} fewer", thousands(c - m))
        } else {
            format!("{} more", thousands(m - c))
        };
    }
    if m <= 0.0 || c <= 0.0 {
        return String::new();
    }
    let time = matches!(row.unit.as_str(), "s" | "ms" | "us" | "ns");
    let rate = row.unit.ends_with("/s");
    let (better, worse) = if time || rate {
        ("faster", "slower")
    } else if row.lower_is_better {
        ("lower", "higher")
    } else {
        ("higher", "lower")
    };
    let moat_better = if row.lower_is_better { m <= c } else { m >= c };
    let r = if m >= c { m / c } else { c / m };
    format!("{} {}", times(r), if moat_better { better } else { worse })
}

/// moat over no scanner (`1.14×`), when both exist.
pub fn overhead(row: &Row) -> String {
    match (row.moat, row.none) {
        (Some(m), Some(n)) if m.is_finite() && n.is_finite() && n > 0.0 => times(m / n),
        _ => String::new(),
    }
}

/// The target and whether it was met.
pub fn target(row: &Row) -> String {
    match (&row.target, row.met) {
        (None, _) => String::new(),
        (Some(t), Some(true)) => format!("{} — met", cell(t)),
        (Some(t), Some(false)) => format!("{} — **missed**", cell(t)),
        (Some(t), None) => format!("{} — not judged", cell(t)),
    }
}

/// One markdown table per row group, in order of first appearance.
pub fn tables(results: &Results) -> String {
    let peer = if results.suite == "scan" || results.suite == "real" {
        "clamscan"
    } else if results.suite.starts_with("watch") {
        "clamonacc"
    } else if results.suite == "serve" {
        "clamd"
    } else {
        "ClamAV"
    };
    let mut groups: Vec<&str> = Vec::new();
    for r in &results.rows {
        if !groups.contains(&r.group.as_str()) {
            groups.push(&r.group);
        }
    }
    let mut out = String::new();
    for g in groups {
        let _ = writeln!(out, "### {}\n", cell(g));
        let _ = writeln!(
            out,
            "| metric | moat | {peer} | no scanner | moat vs {peer} | moat / no scanner | target | note |"
        );
        out.push_str("|---|---:|---:|---:|---|---|---|---|\n");
        for r in results.rows.iter().filter(|r| r.group == g) {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                cell(&r.metric),
                value(r.moat, &r.unit),
                value(r.clamav, &r.unit),
                value(r.none, &r.unit),
                ratio(r),
                overhead(r),
                target(r),
                cell(r.note.as_deref().unwrap_or("")),
            );
        }
        out.push('\n');
    }
    out
}

/// Everything the page is made of.
pub struct Page<'a> {
    /// The machine.
    pub machine: &'a Machine,
    /// `YYYY-MM-DD`.
    pub date: &'a str,
    /// Where the results were read from.
    pub results_dir: &'a Path,
    /// The suites' results found, in [`SUITES`] order then others.
    pub results: &'a [Results],
    /// `(suite, error)` of the suites that failed in this run.
    pub failures: &'a [(String, String)],
    /// Charts written, in order.
    pub charts: &'a [Chart],
}

/// The whole of BENCHMARKS.md.
pub fn markdown(p: &Page) -> String {
    let mut s = String::new();
    s.push_str("# moat benchmarks\n\n");
    s.push_str(
        "Generated by `moat-bench report` from the results files of the last run; every \
         figure, table and chart below is regenerated by one command (as root: it installs \
         ClamAV and the charts' font when missing; paths are relative to the workspace root):\n\n",
    );
    s.push_str("```sh\ncargo run --release -p moat-bench -- all          # everything\n");
    s.push_str("cargo run --release -p moat-bench -- all --quick  # small profiles\n");
    s.push_str(
        "cargo run --release -p moat-bench -- report       # only re-render this page\n```\n\n",
    );
    s.push_str("## Machine\n\n| | |\n|---|---|\n");
    let _ = writeln!(s, "| date | {} |", p.date);
    let _ = writeln!(s, "| CPU | {} |", cell(&p.machine.cpu));
    let _ = writeln!(s, "| cores | {} |", p.machine.cores);
    let _ = writeln!(
        s,
        "| memory | {:.1} GiB |",
        p.machine.memory as f64 / (1u64 << 30) as f64
    );
    let _ = writeln!(s, "| kernel | {} |", cell(&p.machine.kernel));
    let _ = writeln!(s, "| results | `{}` |\n", p.results_dir.display());

    if !p.failures.is_empty() {
        s.push_str("## Failed suites\n\n");
        for (suite, e) in p.failures {
            let _ = writeln!(
                s,
                "- **{suite}** failed in this run: {}",
                e.replace('\n', " ")
            );
        }
        s.push('\n');
    }

    let mut names: Vec<&str> = SUITES.iter().map(|(n, _)| *n).collect();
    for r in p.results {
        if !names.contains(&r.suite.as_str()) {
            names.push(&r.suite);
        }
    }
    for name in names {
        let _ = writeln!(s, "## {name}\n");
        let Some(r) = p.results.iter().find(|r| r.suite == name) else {
            let alone = SUITES
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(String::new(), |(_, c)| format!(" (alone: `{c}`)"));
            let why = p.failures.iter().find(|(n, _)| n == name).map_or(
                "it was not run, or this version of the suite writes none".to_string(),
                |(_, e)| format!("the suite failed: {}", e.replace('\n', " ")),
            );
            let _ = writeln!(
                s,
                "**Results missing**: no `{}/{name}.json`; {why}. Run the suite{alone}, then \
                 `cargo run --release -p moat-bench -- report`.\n",
                p.results_dir.display()
            );
            continue;
        };
        let _ = writeln!(s, "Run started {}, by:\n", r.started);
        let _ = writeln!(s, "```sh\n{}\n```\n", r.command);
        if !r.commands.is_empty() {
            s.push_str("Processes measured:\n\n```sh\n");
            for (what, cmd) in &r.commands {
                let _ = writeln!(s, "# {what}\n{cmd}");
            }
            s.push_str("```\n\n");
        }
        s.push_str(&tables(r));
    }

    if !p.charts.is_empty() {
        s.push_str("## Charts\n\n");
        for c in p.charts {
            let _ = writeln!(s, "### {}\n\n![{}]({})\n", c.title, c.title, c.rel);
        }
    }
    s
}

/// Reads every `*.json` of `dir`, in [`SUITES`] order then by name.
pub fn load_all(dir: &Path) -> Result<Vec<Results>, String> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    };
    files.sort();
    let mut all = files
        .iter()
        .map(|f| Results::load(f))
        .collect::<Result<Vec<_>, _>>()?;
    let rank = |s: &str| {
        SUITES
            .iter()
            .position(|(n, _)| *n == s)
            .unwrap_or(SUITES.len())
    };
    all.sort_by_key(|r| rank(&r.suite));
    Ok(all)
}

/// Writes the charts for `results` into `dir` (emptied of old PNGs first); `rel` is `dir`
/// as seen from the page. Returns the charts written, and the errors of those that failed.
pub fn write_charts(results: &[Results], dir: &Path, rel: &str) -> (Vec<Chart>, Vec<String>) {
    let mut charts = Vec::new();
    let mut errors = Vec::new();
    if let Err(e) = std::fs::create_dir_all(dir) {
        return (charts, vec![format!("{}: {e}", dir.display())]);
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.path().extension().is_some_and(|x| x == "png") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let mut emit = |file: String, title: String, r: Result<(), String>| match r {
        Ok(()) => charts.push(Chart {
            title,
            rel: format!("{rel}/{file}"),
        }),
        Err(e) => errors.push(e),
    };
    let throughput: Vec<&Bars> = results
        .iter()
        .flat_map(|r| &r.bars)
        .filter(|b| b.name.contains("throughput"))
        .collect();
    if !throughput.is_empty() {
        let f = "throughput.png".to_string();
        emit(
            f.clone(),
            "Throughput".into(),
            charts::bars_chart(&dir.join(&f), &throughput),
        );
    }
    let series: Vec<&Series> = results.iter().flat_map(|r| &r.series).collect();
    if !series.is_empty() {
        let f = "latency.png".to_string();
        emit(
            f.clone(),
            "Latency distributions (CDF)".into(),
            charts::cdf_chart(&dir.join(&f), &series),
        );
    }
    for r in results {
        let other: Vec<&Bars> = r
            .bars
            .iter()
            .filter(|b| !b.name.contains("throughput"))
            .collect();
        if !other.is_empty() {
            let f = format!("{}-resources.png", r.suite);
            emit(
                f.clone(),
                format!(
                    "{}: {}",
                    r.suite,
                    other
                        .iter()
                        .map(|b| b.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                charts::bars_chart(&dir.join(&f), &other),
            );
        }
    }
    (charts, errors)
}

/// `moat-bench report`.
pub fn run(args: &ReportArgs) -> Result<(), String> {
    run_with(args, &[]).map(|_| ())
}

/// Renders the page (telling which suites of this run `failed`); returns its path.
pub fn run_with(args: &ReportArgs, failed: &[(String, String)]) -> Result<PathBuf, String> {
    let data = crate::resolve_data_dir(args.data.clone());
    let results_dir = data.join("results");
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| crate::workspace_root().join("BENCHMARKS.md"));
    let results = load_all(&results_dir)?;
    let base = out
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let (charts, errors) = write_charts(&results, &base.join("docs/bench"), "docs/bench");
    for e in &errors {
        eprintln!("moat-bench: chart not drawn: {e}");
    }
    let machine = Machine::detect();
    let date = crate::results::now_rfc3339();
    let text = markdown(&Page {
        machine: &machine,
        date: &date[..10],
        results_dir: &results_dir,
        results: &results,
        failures: failed,
        charts: &charts,
    });
    // Paths relative to the workspace root, so the page reads the same on any checkout.
    let root = format!("{}/", crate::workspace_root().display());
    let text = text.replace(&root, "");
    std::fs::write(&out, text).map_err(|e| format!("{}: {e}", out.display()))?;
    eprintln!(
        "moat-bench: wrote {} ({} results files, {} charts)",
        out.display(),
        results.len(),
        charts.len()
    );
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(format!(
            "{} chart(s) not drawn: {}",
            errors.len(),
            errors.join("; ")
        ))
    }
}

#[cfg(test)]
mod tests;
