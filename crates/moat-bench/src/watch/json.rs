//! `<data>/results/watch.json`: every printed figure as [`Row`]s (moat in each scope side
//! by side with clamonacc and no scanner), the raw small-file latencies as [`Series`] and
//! the verdict throughput (and time to full coverage per size) as [`Bars`].

use super::coverage::{self, Coverage};
use super::load::{self, OPENERS};
use super::probe::quantile;
use super::{Measured, Side, SizeRun};
use crate::results::{Bars, Results, Row, Series};

fn ok(s: &Side) -> Option<&Measured> {
    s.result.as_ref().ok()
}

use crate::scan::thousands as fmt_n;

fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

#[allow(clippy::too_many_arguments)]
fn row(
    group: &str,
    metric: String,
    unit: &str,
    moat: Option<f64>,
    clamav: Option<f64>,
    none: Option<f64>,
    lower: bool,
) -> Row {
    Row {
        group: group.to_string(),
        metric,
        unit: unit.to_string(),
        moat: moat.and_then(finite),
        clamav: clamav.and_then(finite),
        none: none.and_then(finite),
        lower_is_better: lower,
        ..Row::default()
    }
}

fn with_target(mut r: Row, target: &str, met: Option<bool>) -> Row {
    r.target = Some(target.to_string());
    r.met = met;
    r
}

fn with_note(mut r: Row, note: &str) -> Row {
    r.note = Some(note.to_string());
    r
}

fn full_ms(m: &Measured) -> Option<f64> {
    m.coverage
        .iter()
        .copied()
        .collect::<Option<Vec<f64>>>()
        .and_then(|v| v.into_iter().reduce(f64::max))
}

/// Rows, series and bars of the tmpfs runs (latency, throughput, races, CPU).
pub fn tmpfs_rows(r: &mut Results, runs: &[SizeRun], plan: &super::Plan) {
    for run in runs {
        let d = fmt_n(run.tree.dirs);
        let clam = ok(&run.clam);
        let none = ok(&run.none);
        for side in &run.moat {
            let scope = side.scope.unwrap_or("?");
            let Some(m) = ok(side) else {
                continue;
            };
            let g = "coverage setup, tmpfs";
            let ready = m.ready.as_ref().map(|x| x.0);
            let mut rr = row(
                g,
                format!("time to READY, {d} dirs, {scope} scope"),
                "ms",
                ready,
                None,
                None,
                true,
            );
            if scope == "filesystem" {
                rr = with_target(rr, "< 50 ms", ready.map(|x| x < 50.0));
            }
            r.rows.push(rr);
            r.rows.push(row(
                g,
                format!("time to full coverage, {d} dirs, {scope} scope"),
                "ms",
                full_ms(m),
                clam.and_then(full_ms),
                None,
                true,
            ));
            let g = "open latency";
            let files = fmt_n(m.first.open_us.len() as u64);
            for (when, pick) in [("first", 0), ("repeated", 1)] {
                for (q, qn) in [(0.5, "p50"), (0.99, "p99")] {
                    let v = |x: &Measured| {
                        let p = if pick == 0 { &x.first } else { &x.repeat };
                        quantile(&p.open_us, q)
                    };
                    let mut rr = row(
                        g,
                        format!("{when} open() {qn}, {files} small files, {d} dirs, {scope} scope"),
                        "us",
                        Some(v(m)),
                        clam.map(v),
                        none.map(v),
                        true,
                    );
                    if qn == "p50" && pick == 0 {
                        let met = clam.map(|c| v(m) * 10.0 <= v(c));
                        rr = with_target(rr, ">= 10x faster than clamonacc", met);
                    }
                    if qn == "p50" && pick == 1 {
                        let met = none.map(|n| v(m) <= 1.2 * v(n));
                        rr = with_target(rr, "<= 1.2x no scanner", met);
                    }
                    r.rows.push(rr);
                }
            }
            for (when, pick) in [("first", 0), ("repeated", 1)] {
                let v = |x: &Measured| {
                    quantile(
                        if pick == 0 {
                            &x.big_first
                        } else {
                            &x.big_repeat
                        },
                        0.5,
                    )
                };
                let mut rr = row(
                    g,
                    format!(
                        "{when} open() of a 5 MB file, median of {}, {d} dirs, {scope} scope",
                        m.big_first.len()
                    ),
                    "us",
                    Some(v(m)),
                    clam.map(v),
                    none.map(v),
                    true,
                );
                if pick == 0 {
                    let met = clam.map(|c| v(m) * 10.0 <= v(c));
                    rr = with_target(rr, ">= 10x faster than clamonacc", met);
                } else {
                    // Issue 4's 1.2x target is for small files; five opens of a few µs
                    // where the kernel's mark check dominates are shown, not judged.
                    rr = with_note(rr, "no target (the 1.2x target is for small files)");
                }
                r.rows.push(rr);
            }
            if !m.throughput.is_empty() {
                for (i, &n) in OPENERS.iter().enumerate() {
                    r.rows.push(with_note(
                        row(
                            "verdict throughput",
                            format!(
                                "verdicts/s, {}, {} fresh files, {d} dirs, {scope} scope",
                                load::opener_label(n),
                                fmt_n(plan.tp_total)
                            ),
                            "verdicts/s",
                            m.throughput.get(i).copied(),
                            clam.and_then(|c| c.throughput.get(i).copied()),
                            none.and_then(|c| c.throughput.get(i).copied()),
                            false,
                        ),
                        "no scanner: opens/s",
                    ));
                }
            }
            if let Some(races) = &m.races {
                for (name, v, cv, nv) in [
                    (
                        "mkdir -p + write + read",
                        &races.mkdir,
                        clam.and_then(|c| c.races.as_ref()).map(|x| x.mkdir.escapes),
                        none.and_then(|c| c.races.as_ref()).map(|x| x.mkdir.escapes),
                    ),
                    (
                        "made outside + renamed in",
                        &races.rename,
                        clam.and_then(|c| c.races.as_ref())
                            .map(|x| x.rename.escapes),
                        none.and_then(|c| c.races.as_ref())
                            .map(|x| x.rename.escapes),
                    ),
                ] {
                    r.rows.push(with_target(
                        row(
                            "race escapes",
                            format!(
                                "race {name}: escapes of {} rounds, {d} dirs, {scope} scope",
                                fmt_n(v.rounds)
                            ),
                            "count",
                            Some(v.escapes as f64),
                            cv.map(|x| x as f64),
                            nv.map(|x| x as f64),
                            true,
                        ),
                        "0",
                        Some(v.escapes == 0),
                    ));
                }
            }
            let g = "memory and CPU";
            let opens = m.first.open_us.len();
            for (pass, k) in [("first-open pass", 0), ("repeated-open pass", 1)] {
                let per = |x: &Measured| -> Option<f64> {
                    let total: f64 = x.cpu.iter().map(|c| if k == 0 { c.1 } else { c.2 }).sum();
                    (!x.cpu.is_empty()).then(|| load::per_ops(0.0, total, opens, 10_000.0))
                };
                let note = clam.map(|c| {
                    c.cpu
                        .iter()
                        .map(|p| {
                            format!(
                                "{} {:.1} ms",
                                p.0,
                                load::per_ops(0.0, if k == 0 { p.1 } else { p.2 }, opens, 10_000.0)
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(" + ")
                });
                let mut rr = row(
                    g,
                    format!("daemon CPU per 10,000 opens, {pass}, {d} dirs, {scope} scope"),
                    "ms",
                    per(m),
                    clam.and_then(per),
                    None,
                    true,
                );
                if let Some(n) = note {
                    rr = with_note(
                        rr,
                        &format!("clamonacc column = {n} (utime+stime, 10 ms ticks)"),
                    );
                }
                r.rows.push(rr);
            }
            r.rows.push(with_note(
                row(
                    g,
                    format!("peak RSS after the opens and races, {d} dirs (tmpfs), {scope} scope"),
                    "MB",
                    m.memory.map(|x| x.1 as f64 / 1e6),
                    clam.and_then(|c| c.memory).map(|x| x.1 as f64 / 1e6),
                    None,
                    true,
                ),
                "clamonacc column: clamonacc + clamd",
            ));
        }
        if run.tree.dirs == plan.tp_size {
            let files = fmt_n(run.tree.clean_files.len() as u64);
            let mut labelled: Vec<(String, &Measured)> = run
                .moat
                .iter()
                .filter_map(|s| Some((format!("moat {}", s.scope?), ok(s)?)))
                .collect();
            labelled.extend(clam.map(|c| ("clamonacc".to_string(), c)));
            labelled.extend(none.map(|c| ("no scanner".to_string(), c)));
            for (when, pick) in [("first", 0), ("repeated", 1)] {
                r.series.push(Series {
                    name: format!("{when} open() latency, {files} small clean files, {d} dirs"),
                    unit: "us".into(),
                    samples: labelled
                        .iter()
                        .map(|(l, m)| {
                            let p = if pick == 0 { &m.first } else { &m.repeat };
                            (l.clone(), p.open_us.clone())
                        })
                        .collect(),
                });
            }
            if labelled.iter().any(|(_, m)| !m.throughput.is_empty()) {
                r.bars.push(Bars {
                    name: format!(
                        "verdict throughput, {} fresh small files, {d} dirs (no scanner: opens/s)",
                        fmt_n(plan.tp_total)
                    ),
                    unit: "verdicts/s".into(),
                    labels: OPENERS.iter().map(|&n| load::opener_label(n)).collect(),
                    values: labelled
                        .iter()
                        .map(|(l, m)| {
                            let v = (0..OPENERS.len())
                                .map(|i| m.throughput.get(i).copied())
                                .collect();
                            (l.clone(), v)
                        })
                        .collect(),
                });
            }
        }
    }
}

fn find<'a>(s: &'a coverage::SizeCov, product: &str, cold: bool) -> Option<&'a coverage::Cov> {
    s.runs
        .iter()
        .find(|x| x.product == product && x.cold == cold)
        .and_then(|x| x.result.as_ref().ok())
}

/// Rows and bars of the ext4 coverage runs.
pub fn coverage_rows(r: &mut Results, c: &Coverage) {
    let scopes: Vec<String> = {
        let mut v: Vec<String> = Vec::new();
        for s in &c.sizes {
            for run in &s.runs {
                if run.product.starts_with("moat") && !v.contains(&run.product) {
                    v.push(run.product.clone());
                }
            }
        }
        v
    };
    for cold in [false, true] {
        let g = if cold {
            "coverage setup, cold cache"
        } else {
            "coverage setup, warm cache"
        };
        for s in &c.sizes {
            let d = fmt_n(s.dirs);
            let clam = find(s, "clamonacc", cold);
            for p in &scopes {
                let scope = p.trim_start_matches("moat ");
                let Some(m) = find(s, p, cold) else {
                    continue;
                };
                let mut rr = row(
                    g,
                    format!("time to READY, {d} dirs, {scope} scope (ext4)"),
                    "ms",
                    m.ready_ms,
                    None,
                    None,
                    true,
                );
                if scope == "filesystem" {
                    rr = with_target(rr, "< 50 ms", m.ready_ms.map(|x| x < 50.0));
                }
                r.rows.push(rr);
                let mut rr = row(
                    g,
                    format!("time to full coverage, {d} dirs, {scope} scope (ext4)"),
                    "ms",
                    m.full_ms,
                    clam.and_then(|x| x.full_ms),
                    None,
                    true,
                );
                if cold && clam.is_none() {
                    rr = with_note(rr, "clamonacc not run cold at this size (time budget)");
                }
                r.rows.push(rr);
            }
        }
        let sizes: Vec<&coverage::SizeCov> = c.sizes.iter().collect();
        let mut products = scopes.clone();
        products.push("clamonacc".into());
        r.bars.push(Bars {
            name: format!(
                "time to full coverage, {} cache (ext4)",
                if cold { "cold" } else { "warm" }
            ),
            unit: "ms".into(),
            labels: sizes
                .iter()
                .map(|s| format!("{} dirs", fmt_n(s.dirs)))
                .collect(),
            values: products
                .iter()
                .map(|p| {
                    (
                        p.clone(),
                        sizes
                            .iter()
                            .map(|s| find(s, p, cold).and_then(|m| m.full_ms))
                            .collect(),
                    )
                })
                .collect(),
        });
    }
    for s in &c.sizes {
        let d = fmt_n(s.dirs);
        let clam = find(s, "clamonacc", false);
        let rss_of = |m: &coverage::Cov, name: &str| {
            m.rss
                .iter()
                .find(|x| x.0 == name)
                .map(|x| coverage::mb_per_100k(x.1, s.dirs))
        };
        for p in &scopes {
            let scope = p.trim_start_matches("moat ");
            let Some(m) = find(s, p, false) else {
                continue;
            };
            r.rows.push(with_note(
                row(
                    "memory and CPU",
                    format!("daemon RSS per 100,000 covered dirs, {d} dirs, {scope} scope"),
                    "MB",
                    m.rss.first().map(|x| coverage::mb_per_100k(x.1, s.dirs)),
                    clam.and_then(|c| rss_of(c, "clamonacc")),
                    None,
                    true,
                ),
                "RSS once covered (warm run) / dirs x 100,000; clamonacc column: clamonacc alone (clamd in its own row)",
            ));
        }
        r.rows.push(row(
            "memory and CPU",
            format!("clamd RSS per 100,000 covered dirs, {d} dirs"),
            "MB",
            None,
            clam.and_then(|c| rss_of(c, "clamd")),
            None,
            true,
        ));
    }
}
