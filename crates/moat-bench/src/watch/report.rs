//! The printed comparison, per tree size: tree, mount and limits, exact commands, then one
//! table per moat scope with a column per product (moat, clamonacc, no scanner), the ratios
//! moat/clamonacc and moat/none, and the target next to the rows that have one.
//! Then a summary across sizes: time to READY and to full coverage, race escapes.

use super::daemon;
use super::daemon::Marks;
use super::probe::{quantile, Pass};
use super::tree::{Tree, FANOUT};
use super::{Measured, Side, SizeRun};

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
    /// The target for moat's figure, judged from (moat, clamonacc, none).
    target: Option<Target>,
}

/// A target: its text, and whether the cells meet it.
struct Target {
    text: &'static str,
    met: fn(&[Cell; 3]) -> Option<bool>,
}

fn row(metric: impl Into<String>, decimals: usize, f: impl Fn(&Measured) -> Cell + 'static) -> Row {
    Row {
        metric: metric.into(),
        decimals,
        cell: Box::new(f),
        target: None,
    }
}

impl Row {
    fn target(mut self, text: &'static str, met: fn(&[Cell; 3]) -> Option<bool>) -> Row {
        self.target = Some(Target { text, met });
        self
    }
}

fn value(c: &Cell) -> Option<f64> {
    match c {
        Cell::Num(v) => Some(*v),
        _ => None,
    }
}

/// moat's figure over column `other`'s at most `limit`.
fn ratio_at_most(c: &[Cell; 3], other: usize, limit: f64) -> Option<bool> {
    Some(value(&c[0])? / value(&c[other])? <= limit)
}

fn target_text(t: &Option<Target>, cells: &[Cell; 3]) -> String {
    let Some(t) = t else {
        return String::new();
    };
    match (t.met)(cells) {
        Some(true) => format!("{}: met", t.text),
        Some(false) => format!("{}: MISSED", t.text),
        None => format!("{}: ?", t.text),
    }
}

fn num(v: Option<f64>) -> Cell {
    v.filter(|v| v.is_finite()).map_or(Cell::Empty, Cell::Num)
}

/// Prints one tree size: setup, then a table per moat scope.
pub fn print_size(r: &SizeRun) {
    print_setup(r);
    for moat in &r.moat {
        let scope = moat.scope.unwrap_or("?");
        let rows = rows(&r.tree, scope);
        println!();
        println!(
            "== results, {} directories: moat OnAccessCoverage {scope}{} vs clamonacc \
             (ratios are moat/x: below 1 means moat's figure is lower; for times lower is better) ==",
            r.tree.dirs,
            tracking_text(moat, r.tracking)
        );
        print_table([moat, &r.clam, &r.none], &rows);
    }
    println!();
    for side in r.moat.iter().chain([&r.clam, &r.none]) {
        let label = match side.scope {
            Some(s) => format!("{} ({s})", side.label),
            None => side.label.to_string(),
        };
        match &side.result {
            Err(why) => println!("{label}: n/a: {why}"),
            Ok(m) => side_notes(&label, m),
        }
    }
    print_notes();
}

/// ` (tracking X)` for directory scope: what the conf asked for, or moat's default.
fn tracking_text(side: &Side, tracking: Option<&str>) -> String {
    if side.scope != Some("directory") {
        return String::new();
    }
    match tracking {
        Some(t) => format!(", OnAccessTracking {t}"),
        None => ", tracking: moat's default (OnAccessTracking not passed)".to_string(),
    }
}

fn print_setup(r: &SizeRun) {
    let t = &r.tree;
    println!();
    println!("== watch: tree {} ==", t.dir.display());
    println!(
        "{} directories below the root (fan-out {FANOUT}, depth {}), {} clean files of 100-400 bytes; \
         generated in {:.1}s on {} (+{:.1}s walking it twice to choose the probes)",
        t.dirs,
        t.depth,
        t.clean_files.len(),
        t.generation_secs,
        r.mount,
        t.probe_secs
    );
    let probes: Vec<String> = t
        .probes
        .iter()
        .map(|p| format!("{} = /{} (depth {})", p.name, p.rel.display(), p.depth))
        .collect();
    println!("probes: {}", probes.join(", "));
    for n in &r.limit_notes {
        println!("{n}");
    }
    let need = t.dirs + 1;
    for (key, who) in [
        (
            "fs/inotify/max_user_watches",
            "clamonacc, and moat's inotify tracking: one inotify watch per directory",
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
    for (name, cmd) in &r.commands {
        println!("{name}: {cmd}");
    }
    println!("configs, database and logs: {}", r.runs.display());
}

/// The table rows, in order.
fn rows(tree: &Tree, scope: &str) -> Vec<Row> {
    let ready = row("READY notification (ms)", 1, |m| {
        num(m.ready.as_ref().map(|r| r.0))
    });
    let ready = if scope == "filesystem" {
        ready.target("< 50 ms", |c| Some(value(&c[0])? < 50.0))
    } else {
        ready
    };
    let mut rows = vec![
        ready,
        row("its log: set-up time (ms)", 0, |m| {
            num(m.watching.map(|w| w.ms))
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
        row("directories marked (its log)", 0, |m| {
            num(m.watching.and_then(|w| w.dirs).map(|d| d as f64))
        }),
        row("filesystems marked whole (its log)", 0, |m| {
            num(m.watching.and_then(|w| w.whole).map(|d| d as f64))
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
        row("first open() of a 5 MB file, median (us)", 1, |m| {
            num(Some(quantile(&m.big_first, 0.5)))
        })
        .target(">= 10x faster than clamonacc", |c| ratio_at_most(c, 1, 0.1)),
        row("repeated open() of a 5 MB file, median (us)", 1, |m| {
            num(Some(quantile(&m.big_repeat, 0.5)))
        })
        .target("<= 1.2x no scanner", |c| ratio_at_most(c, 2, 1.2)),
    ]);
    for (i, &n) in super::load::OPENERS.iter().enumerate() {
        rows.push(row(
            format!(
                "verdicts/s, {} (none: opens/s)",
                super::load::opener_label(n)
            ),
            0,
            move |m| num(m.throughput.get(i).copied()),
        ));
    }
    for (pass, k) in [("first", 0), ("repeated", 1)] {
        rows.push(row(
            format!("daemon CPU ms / 10k opens, {pass} pass"),
            1,
            move |m| {
                let opens = m.first.open_us.len();
                if m.cpu.is_empty() {
                    return Cell::Empty;
                }
                let total: f64 = m.cpu.iter().map(|c| if k == 0 { c.1 } else { c.2 }).sum();
                num(Some(super::load::per_ops(0.0, total, opens, 10_000.0)))
            },
        ));
    }
    race_rows(&mut rows);
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

/// p50/p99 of open() alone and of open+read(1)+close, first and repeated open, with the
/// issue's targets on open() alone.
fn latency_rows(rows: &mut Vec<Row>) {
    type Pick = fn(&Measured) -> &Pass;
    let passes: [(&str, Pick); 2] = [("first", |m| &m.first), ("repeated", |m| &m.repeat)];
    for (when, pass) in passes {
        for (what, total) in [("open()", false), ("open+read1+close", true)] {
            for (q, qname) in [(0.5, "p50"), (0.99, "p99")] {
                let r = row(format!("{when} {what} {qname} (us)"), 1, move |m| {
                    let p = pass(m);
                    let v = if total { &p.total_us } else { &p.open_us };
                    num(Some(quantile(v, q)))
                });
                rows.push(match (when, total) {
                    ("first", false) => {
                        r.target(">= 10x faster than clamonacc", |c| ratio_at_most(c, 1, 0.1))
                    }
                    ("repeated", false) => {
                        r.target("<= 1.2x no scanner", |c| ratio_at_most(c, 2, 1.2))
                    }
                    _ => r,
                });
            }
        }
    }
}

/// Race escapes of both variants, as `escapes/rounds`, then how the others ended.
fn race_rows(rows: &mut Vec<Row>) {
    type Pick = fn(&super::race::Races) -> &super::race::Variant;
    let variants: [(&str, Pick); 2] = [
        ("race mkdir -p+write+read: escapes", |r| &r.mkdir),
        ("race made outside+rename: escapes", |r| &r.rename),
    ];
    for (name, pick) in variants {
        rows.push(
            row(name, 0, move |m| {
                m.races.as_ref().map_or(Cell::Empty, |r| {
                    let v = pick(r);
                    Cell::Text(format!("{}/{}", v.escapes, v.rounds))
                })
            })
            .target("0 escapes", |c| match &c[0] {
                Cell::Text(t) => Some(t.starts_with("0/")),
                _ => None,
            }),
        );
        rows.push(row("  blocked at open/read, errors", 0, move |m| {
            m.races.as_ref().map_or(Cell::Empty, |r| {
                let v = pick(r);
                Cell::Text(format!(
                    "{}/{}, {}",
                    v.blocked_open, v.blocked_read, v.errors
                ))
            })
        }));
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

fn print_table(sides: [&Side; 3], rows: &[Row]) {
    let [moat, clam, none] = sides;
    let header = format!(
        "{:<W$} | {:>C$} | {:>C$} | {:>C$} | {:>14} | {:>9} | target",
        "metric", moat.label, clam.label, none.label, "moat/clamonacc", "moat/none"
    );
    println!("{header}");
    println!("{}", "-".repeat(header.len() + 24));
    for r in rows {
        let cells: [Cell; 3] = sides.map(|s| match &s.result {
            Ok(m) => (r.cell)(m),
            Err(_) => Cell::Text("n/a".into()),
        });
        println!(
            "{:<W$} | {:>C$} | {:>C$} | {:>C$} | {:>14} | {:>9} | {}",
            r.metric,
            fmt_cell(&cells[0], r.decimals),
            fmt_cell(&cells[1], r.decimals),
            fmt_cell(&cells[2], r.decimals),
            ratio(&cells[0], &cells[1]),
            ratio(&cells[0], &cells[2]),
            target_text(&r.target, &cells),
        );
    }
}

fn print_notes() {
    println!(
        "coverage times count from the spawn of the process holding the fanotify group \
         (moat watch; clamonacc, started once clamd answered PING); probes poll every {} ms as uid {}",
        super::probe::POLL.as_millis(),
        super::probe::PROBE_ID
    );
    println!(
        "clamonacc's RSS includes clamd's; opens are timed from this process (root, scanned by \
         both products); the repeated pass starts after every first open; clean files were read \
         once before the first pass (warm page cache)"
    );
    println!(
        "races run as uid {} with raw syscalls in a forked child; an escape is a read-back that \
         returned the whole EICAR file",
        super::probe::PROBE_ID
    );
}

/// Time to READY / full coverage and race escapes of every side, one column per size.
pub fn print_summary(runs: &[SizeRun], tracking: Option<&str>) {
    if runs.is_empty() {
        return;
    }
    println!();
    println!("== summary: time to READY and to full coverage (ms), race escapes ==");
    let mut header = format!("{:<52}", "metric");
    for r in runs {
        header.push_str(&format!(" | {:>14}", format!("{} dirs", r.tree.dirs)));
    }
    header.push_str(" | target");
    println!("{header}");
    println!("{}", "-".repeat(header.len() + 16));
    let n = runs[0].moat.len();
    let mut lines: Vec<(String, Vec<String>, &str)> = Vec::new();
    let cell = |s: &Side, f: &dyn Fn(&Measured) -> Cell, d: usize| match &s.result {
        Ok(m) => fmt_cell(&f(m), d),
        Err(_) => "n/a".to_string(),
    };
    for i in 0..n {
        let scope = runs[0].moat[i].scope.unwrap_or("?");
        let name = match (scope, tracking) {
            ("directory", Some(t)) => format!("moat directory ({t} tracking)"),
            ("directory", None) => "moat directory (default tracking)".to_string(),
            _ => format!("moat {scope}"),
        };
        let ready: &dyn Fn(&Measured) -> Cell = &|m| num(m.ready.as_ref().map(|r| r.0));
        let setup: &dyn Fn(&Measured) -> Cell = &|m| num(m.watching.map(|w| w.ms));
        let full: &dyn Fn(&Measured) -> Cell = &full_coverage;
        let target = if scope == "filesystem" { "< 50 ms" } else { "" };
        lines.push((
            format!("{name}: READY"),
            runs.iter().map(|r| cell(&r.moat[i], ready, 1)).collect(),
            target,
        ));
        lines.push((
            format!("{name}: set-up in its log"),
            runs.iter().map(|r| cell(&r.moat[i], setup, 0)).collect(),
            "",
        ));
        lines.push((
            format!("{name}: full coverage"),
            runs.iter().map(|r| cell(&r.moat[i], full, 1)).collect(),
            "",
        ));
    }
    let full: &dyn Fn(&Measured) -> Cell = &full_coverage;
    lines.push((
        "clamonacc: full coverage".to_string(),
        runs.iter().map(|r| cell(&r.clam, full, 1)).collect(),
        "",
    ));
    let escapes = |s: &Side| match &s.result {
        Ok(m) => m.races.as_ref().map_or("-".to_string(), |r| {
            format!(
                "{}+{}/{}",
                r.mkdir.escapes, r.rename.escapes, r.mkdir.rounds
            )
        }),
        Err(_) => "n/a".to_string(),
    };
    for i in 0..n {
        let first = &runs[0].moat[i];
        lines.push((
            format!(
                "moat {}: escapes mkdir+rename/rounds",
                first.scope.unwrap_or("?")
            ),
            runs.iter().map(|r| escapes(&r.moat[i])).collect(),
            "0",
        ));
    }
    lines.push((
        "clamonacc: escapes mkdir+rename/rounds".to_string(),
        runs.iter().map(|r| escapes(&r.clam)).collect(),
        "",
    ));
    lines.push((
        "none: escapes mkdir+rename/rounds".to_string(),
        runs.iter().map(|r| escapes(&r.none)).collect(),
        "",
    ));
    for (metric, cells, target) in lines {
        let mut line = format!("{metric:<52}");
        for c in cells {
            line.push_str(&format!(" | {c:>14}"));
        }
        line.push_str(&format!(" | {target}"));
        println!("{line}");
    }
}

fn side_notes(label: &str, m: &Measured) {
    if let Some((_, status)) = &m.ready {
        println!("{label}: READY with STATUS={status:?}");
    }
    if let Some(w) = m.watching {
        let what = match (w.dirs, w.whole) {
            (Some(d), _) => format!("{d} directories"),
            (None, Some(f)) => format!("every directory of {f} filesystems/mounts"),
            _ => "?".to_string(),
        };
        println!(
            "{label}: its log: watching {what} under {} include paths in {} ms",
            w.paths, w.ms
        );
    }
    if let Some(r) = &m.races {
        for (name, v) in [("mkdir", &r.mkdir), ("rename", &r.rename)] {
            println!(
                "{label}: race {name}: {} rounds in {:.0} ms ({:.0} us per round), {} escapes{}",
                v.rounds,
                v.secs * 1e3,
                v.secs * 1e6 / v.rounds.max(1) as f64,
                v.escapes,
                v.first_error
                    .as_ref()
                    .map_or(String::new(), |e| format!(", first error: {e}"))
            );
        }
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
    if m.cpu.len() > 1 {
        let opens = m.first.open_us.len();
        let parts: Vec<String> = m
            .cpu
            .iter()
            .map(|(n, a, b)| {
                format!(
                    "{n} {:.1} + {:.1}",
                    super::load::per_ops(0.0, *a, opens, 10_000.0),
                    super::load::per_ops(0.0, *b, opens, 10_000.0)
                )
            })
            .collect();
        println!(
            "{label}: CPU ms per 10k opens (first + repeated pass): {}",
            parts.join(", ")
        );
    }
    for (name, s) in m.stopped.iter().skip(1) {
        println!("{label}: {name} stopped in {:.0} ms ({})", s.ms, s.how);
    }
}
