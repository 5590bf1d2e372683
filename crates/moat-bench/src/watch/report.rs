//! The printed comparison: tree and limits, exact commands, then one table with a column
//! per product, the no-scanner baseline and the ratios moat/clamonacc and moat/none.

use super::daemon::{self, Marks};
use super::probe::{quantile, Pass};
use super::tree::{Tree, FANOUT};
use super::{Measured, Side};
use std::path::Path;

/// What the report needs.
pub struct Context<'a> {
    /// The watched tree.
    pub tree: &'a Tree,
    /// Where configurations and logs were written.
    pub runs: &'a Path,
    /// `(name, command line)` of every daemon started.
    pub commands: &'a [(&'static str, String)],
    /// moat, clamonacc, none.
    pub sides: [&'a Side; 3],
    /// Wall time of the whole benchmark.
    pub total_secs: f64,
}

/// A cell: a number (ratios are formed from these) or a word.
enum Cell {
    Num(f64),
    Text(String),
    Empty,
}

/// One table row; `cell` extracts the value from one side's measurements.
struct Row {
    metric: String,
    decimals: usize,
    cell: Box<dyn Fn(&Measured) -> Cell>,
}

fn row(metric: impl Into<String>, decimals: usize, f: impl Fn(&Measured) -> Cell + 'static) -> Row {
    Row {
        metric: metric.into(),
        decimals,
        cell: Box::new(f),
    }
}

fn num(v: Option<f64>) -> Cell {
    v.filter(|v| v.is_finite()).map_or(Cell::Empty, Cell::Num)
}

/// Prints the whole report.
pub fn print(cx: &Context) {
    print_setup(cx);
    let rows = rows(cx.tree);
    print_table(cx, &rows);
    print_notes(cx);
}

fn print_setup(cx: &Context) {
    let t = cx.tree;
    println!();
    println!("== watch: tree {} ==", t.dir.display());
    println!(
        "{} directories below the root (fan-out {FANOUT}, depth {}), {} clean files of 100-400 bytes; {}",
        t.dirs,
        t.depth,
        t.clean_files.len(),
        if t.generated {
            format!("generated in {:.1}s", t.generation_secs)
        } else {
            "cached".to_string()
        }
    );
    let probes: Vec<String> = t
        .probes
        .iter()
        .map(|p| format!("{} = /{} (depth {})", p.name, p.rel.display(), p.depth))
        .collect();
    println!("probes: {}", probes.join(", "));
    let need = t.dirs + 1;
    for (key, who) in [
        (
            "fs/inotify/max_user_watches",
            "clamonacc: one inotify watch per directory",
        ),
        (
            "fs/fanotify/max_user_marks",
            "one fanotify mark per directory",
        ),
    ] {
        let limit = daemon::sysctl(key);
        let verdict = match limit {
            Some(l) if l >= need => "ok".to_string(),
            Some(_) => format!(
                "NOT ENOUGH: run `sysctl {}={}`",
                key.replace('/', "."),
                need + 8192
            ),
            None => "unknown".to_string(),
        };
        println!(
            "{}: {} (needs >= {need}, {who}): {verdict}",
            key.replace('/', "."),
            limit.map_or("?".to_string(), |l| l.to_string())
        );
    }
    // Other work on this 2-core machine shows up in the p99s: say how busy it was.
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    println!("load average at the end: {}", load.join(" "));
    println!();
    println!("== commands ==");
    for (name, cmd) in cx.commands {
        println!("{name}: {cmd}");
    }
    println!("configs, database and logs: {}", cx.runs.display());
}

/// The table rows, in order.
fn rows(tree: &Tree) -> Vec<Row> {
    let mut rows = vec![
        row("READY notification (ms)", 1, |m| {
            num(m.ready.as_ref().map(|r| r.0))
        }),
        row("clamd spawn to PONG (ms)", 1, |m| num(m.server_ready_ms)),
        row("first probe denied (ms)", 1, |m| {
            num(m.coverage.iter().flatten().copied().reduce(f64::min))
        }),
        row(
            format!("FULL COVERAGE, {} probes (ms)", tree.probes.len()),
            1,
            full_coverage,
        ),
    ];
    for (i, p) in tree.probes.iter().enumerate() {
        rows.push(row(
            format!("  {} (depth {}) (ms)", p.name, p.depth),
            1,
            move |m| match m.coverage.get(i) {
                Some(Some(ms)) => Cell::Num(*ms),
                Some(None) => Cell::Text("timeout".into()),
                None => Cell::Empty,
            },
        ));
    }
    rows.extend([
        row("directories watched (its log)", 0, |m| {
            num(m.watching.map(|w| w.0 as f64))
        }),
        row("fanotify inode marks", 0, |m| {
            marks(m, |k| k.fanotify_inode)
        }),
        row("fanotify mount/fs marks", 0, |m| {
            marks(m, |k| k.fanotify_wide)
        }),
        row("inotify watches", 0, |m| marks(m, |k| k.inotify)),
        row("root opens infected probe", 0, |m| match m.root_probe {
            Some(Ok(())) => Cell::Text("allowed".into()),
            Some(Err(e)) if e == libc::EPERM => Cell::Text("denied".into()),
            Some(Err(e)) => Cell::Text(format!("errno {e}")),
            None => Cell::Empty,
        }),
    ]);
    latency_rows(&mut rows);
    rows.extend([
        row("fanotify inode marks after opens", 0, |m| {
            num(m.marks_after.map(|k| k.fanotify_inode as f64))
        }),
        row("RSS after the opens (MB)", 1, |m| {
            num(m.memory.map(|(rss, _)| rss as f64 / 1e6))
        }),
        row("peak RSS (MB)", 1, |m| {
            num(m.memory.map(|(_, hwm)| hwm as f64 / 1e6))
        }),
        row("stop after SIGTERM (ms)", 0, |m| {
            num(m.stopped.first().map(|(_, s)| s.ms))
        }),
        row("how it stopped", 0, |m| {
            m.stopped
                .first()
                .map_or(Cell::Empty, |(_, s)| Cell::Text(s.how.clone()))
        }),
    ]);
    rows
}

fn full_coverage(m: &Measured) -> Cell {
    if m.coverage.is_empty() {
        return Cell::Empty;
    }
    match m.coverage.iter().copied().collect::<Option<Vec<f64>>>() {
        Some(v) => num(v.into_iter().reduce(f64::max)),
        None => Cell::Text(format!(
            "{}/{} only",
            m.coverage.iter().flatten().count(),
            m.coverage.len()
        )),
    }
}

fn marks(m: &Measured, f: impl Fn(&Marks) -> u64) -> Cell {
    num(m.marks.as_ref().map(|k| f(k) as f64))
}

/// p50/p99 of open() alone and of open+read(1)+close, first and second open.
fn latency_rows(rows: &mut Vec<Row>) {
    type Pick = fn(&Measured) -> &Pass;
    let passes: [(&str, Pick); 2] = [("first", |m| &m.first), ("repeat", |m| &m.repeat)];
    for (when, pass) in passes {
        for (what, total) in [("open()", false), ("open+read1+close", true)] {
            for (q, qname) in [(0.5, "p50"), (0.99, "p99")] {
                rows.push(row(format!("{when} {what} {qname} (us)"), 1, move |m| {
                    let p = pass(m);
                    let v = if total { &p.total_us } else { &p.open_us };
                    num(Some(quantile(v, q)))
                }));
            }
        }
    }
}

const W: usize = 34;
const C: usize = 11;

fn fmt_cell(c: &Cell, decimals: usize) -> String {
    match c {
        Cell::Num(v) => format!("{v:.decimals$}"),
        Cell::Text(t) => t.clone(),
        Cell::Empty => "-".to_string(),
    }
}

fn ratio(a: &Cell, b: &Cell) -> String {
    match (a, b) {
        (Cell::Num(a), Cell::Num(b)) if *b > 0.0 => format!("{:.2}x", a / b),
        _ => "-".to_string(),
    }
}

fn print_table(cx: &Context, rows: &[Row]) {
    println!();
    println!(
        "== results (ratios are moat/x: below 1 means moat's figure is lower; for times lower is better) =="
    );
    let [moat, clam, none] = cx.sides;
    let header = format!(
        "{:<W$} | {:>C$} | {:>C$} | {:>C$} | {:>14} | {:>9}",
        "metric", moat.label, clam.label, none.label, "moat/clamonacc", "moat/none"
    );
    println!("{header}");
    println!("{}", "-".repeat(header.len()));
    for r in rows {
        let cells: Vec<Cell> = cx
            .sides
            .iter()
            .map(|s| match &s.result {
                Ok(m) => (r.cell)(m),
                Err(_) => Cell::Text("n/a".into()),
            })
            .collect();
        println!(
            "{:<W$} | {:>C$} | {:>C$} | {:>C$} | {:>14} | {:>9}",
            r.metric,
            fmt_cell(&cells[0], r.decimals),
            fmt_cell(&cells[1], r.decimals),
            fmt_cell(&cells[2], r.decimals),
            ratio(&cells[0], &cells[1]),
            ratio(&cells[0], &cells[2]),
        );
    }
}

fn print_notes(cx: &Context) {
    println!();
    for side in cx.sides {
        match &side.result {
            Err(why) => println!("{}: n/a: {why}", side.label),
            Ok(m) => side_notes(side.label, m),
        }
    }
    println!(
        "coverage times count from the spawn of the process holding the fanotify group \
         (moat watch; clamonacc, started once clamd answered PING); probes poll every {} ms as uid {}",
        super::probe::POLL.as_millis(),
        super::probe::PROBE_ID
    );
    println!(
        "clamonacc's RSS includes clamd's; opens are timed from this process (root); \
         clean files were read once before the first pass, so all passes start from a warm page cache"
    );
    println!("total benchmark time {:.1}s", cx.total_secs);
}

fn side_notes(label: &str, m: &Measured) {
    if let Some((_, status)) = &m.ready {
        println!("{label}: READY with STATUS={status:?}");
    }
    if let Some((dirs, paths, ms)) = m.watching {
        println!(
            "{label}: its log: watching {dirs} directories under {paths} include paths in {ms} ms"
        );
    }
    for e in &m.probe_errors {
        println!("{label}: probe error: {e}");
    }
    if m.root_probe == Some(Ok(())) && label != "none" {
        println!("{label}: WARNING: root opened an infected file: root's opens are not scanned");
    }
    if !m.interference.is_empty() {
        println!(
            "{label}: WARNING: other processes held fanotify groups during this run, figures may be distorted: {}",
            m.interference.join(", ")
        );
    }
    for (name, s) in m.stopped.iter().skip(1) {
        println!("{label}: {name} stopped in {:.0} ms ({})", s.ms, s.how);
    }
}
