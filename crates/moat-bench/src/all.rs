//! `moat-bench all`: every suite in one command, then the report.
//!
//! 1. As root, installs what is missing: Debian's `clamav` + `clamav-daemon` (clamscan,
//!    clamd, clamonacc) and `fonts-dejavu-core` (the charts' font).
//! 2. `real` ([`crate::real`], ClamAV's real signatures on this machine's files), `scan`
//!    ([`crate::scan`]), then `watch` ([`crate::watch`], given `--quick`, `--data`
//!    and `--watch-args`), each in turn; a suite that fails is reported and the next one
//!    still runs.
//! 3. `report` ([`crate::render`]) from whatever results exist.
//!
//! Interruption: during `scan`, Ctrl-C ends this process the default way and every scanner
//! it started dies with it (`PR_SET_PDEATHSIG`); the dataset caches are only marked
//! complete when written to the end. `watch` routes Ctrl-C to its own flag and unwinds its
//! guards (daemons stopped, tmpfs unmounted, sysctls restored); `all` then stops at once,
//! without running what is left, and exits 130.

use crate::render::{self, ReportArgs};
use crate::{apt, resolve_data_dir, watch, DataArgs, ScanArgs};
use clap::{Args, Parser};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// Arguments of `moat-bench all`.
#[derive(Args)]
pub struct AllArgs {
    /// Small profiles for every suite (well under 3 minutes in all).
    #[arg(long)]
    quick: bool,
    /// Where datasets, logs and results are kept [default: <workspace>/target/bench-data].
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// `scan`: run every measurement this many times and keep the fastest.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// `real`: the real signature database [default: <workspace>/../shared/sigs/clamav-real].
    #[arg(long, value_name = "DIR")]
    db: Option<PathBuf>,
    /// The moat binary for every suite [default: <target dir>/release/moat, built if missing].
    #[arg(long, value_name = "PATH")]
    moat: Option<PathBuf>,
    /// More arguments for the `watch` suite, one string split at white space (e.g.
    /// `--watch-args "--scope filesystem --tracking fanotify"`).
    #[arg(long, value_name = "ARGS", allow_hyphen_values = true)]
    watch_args: Option<String>,
    /// Where to write the report [default: <workspace>/BENCHMARKS.md; charts go to
    /// docs/bench/ beside it].
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// Parses the `watch` suite's arguments (its fields are its own).
#[derive(Parser)]
#[command(name = "watch")]
struct WatchOnly {
    #[command(flatten)]
    args: watch::WatchArgs,
}

/// How one suite went.
struct Outcome {
    suite: &'static str,
    secs: f64,
    result: Result<(), String>,
}

/// The watch suite's arguments from `all`'s.
fn watch_argv(args: &AllArgs, data: &Path) -> Vec<String> {
    let mut v = vec!["watch".to_string()];
    if args.quick {
        v.push("--quick".into());
    }
    v.push("--data".into());
    v.push(data.display().to_string());
    if let Some(m) = &args.moat {
        v.push("--moat".into());
        v.push(m.display().to_string());
    }
    if let Some(extra) = &args.watch_args {
        v.extend(extra.split_whitespace().map(str::to_string));
    }
    v
}

/// Installs the peer and the font when missing (as root); failures are only reported, the
/// suites then say what they lack.
fn install_missing(data: &Path) {
    let log = data.join("apt.log");
    let clam = || {
        ["clamscan", "clamd", "clamonacc"]
            .iter()
            .all(|p| apt::find_program(Path::new(p)).is_some())
    };
    if let Err(e) = apt::ensure(
        clam,
        &["clamav", "clamav-daemon"],
        "clamscan/clamd/clamonacc",
        &log,
    ) {
        eprintln!("moat-bench: {e}");
    }
    if let Err(e) = apt::ensure(
        || Path::new(render::charts::FONT).is_file(),
        &["fonts-dejavu-core"],
        render::charts::FONT,
        &log,
    ) {
        eprintln!("moat-bench: {e}");
    }
}

/// Runs everything; the exit code is non-zero when a suite or the report failed.
pub fn run(args: AllArgs) -> ExitCode {
    let started = Instant::now();
    let data = resolve_data_dir(args.data.clone());
    if let Err(e) = std::fs::create_dir_all(&data) {
        eprintln!("moat-bench: {}: {e}", data.display());
        return ExitCode::FAILURE;
    }
    install_missing(&data);
    // Results of an earlier run would be reported as this run's.
    for suite in ["real", "scan", "watch"] {
        let _ = std::fs::remove_file(crate::scan::results_path(&data, suite));
    }
    let mut outcomes = Vec::new();

    eprintln!("moat-bench: ==== suite real ====");
    let t = Instant::now();
    let result = crate::real::run(crate::real::RealArgs {
        db: args.db.clone(),
        data: Some(data.clone()),
        force: false,
        moat: args.moat.clone(),
        clamscan: PathBuf::from("clamscan"),
        runs: args.runs,
        largest: 3,
        file_timeout: 600,
    });
    outcomes.push(Outcome {
        suite: "real",
        secs: t.elapsed().as_secs_f64(),
        result,
    });

    eprintln!("moat-bench: ==== suite scan ====");
    let t = Instant::now();
    let result = crate::scan::run(ScanArgs {
        data: DataArgs {
            quick: args.quick,
            data: Some(data.clone()),
            force: false,
        },
        moat: args.moat.clone(),
        clamscan: PathBuf::from("clamscan"),
        runs: args.runs,
    });
    outcomes.push(Outcome {
        suite: "scan",
        secs: t.elapsed().as_secs_f64(),
        result,
    });

    eprintln!("moat-bench: ==== suite watch ====");
    let t = Instant::now();
    let argv = watch_argv(&args, &data);
    eprintln!("moat-bench: moat-bench {}", argv.join(" "));
    let result = WatchOnly::try_parse_from(&argv)
        .map_err(|e| format!("--watch-args: {e}"))
        .and_then(|w| watch::run(w.args));
    let interrupted = matches!(&result, Err(e) if e.contains("interrupted"));
    outcomes.push(Outcome {
        suite: "watch",
        secs: t.elapsed().as_secs_f64(),
        result,
    });
    if interrupted {
        eprintln!("moat-bench: interrupted; the report is not rendered");
        return ExitCode::from(130);
    }

    eprintln!("moat-bench: ==== report ====");
    let failures: Vec<(String, String)> = outcomes
        .iter()
        .filter_map(|o| {
            o.result
                .as_ref()
                .err()
                .map(|e| (o.suite.to_string(), e.clone()))
        })
        .collect();
    let report = render::run_with(
        &ReportArgs {
            data: Some(data.clone()),
            out: args.out.clone(),
        },
        &failures,
    );

    eprintln!();
    eprintln!("moat-bench: ==== summary ====");
    for o in &outcomes {
        match &o.result {
            Ok(()) => eprintln!("moat-bench: {:<6} ok      {:>7.1}s", o.suite, o.secs),
            Err(e) => eprintln!("moat-bench: {:<6} FAILED  {:>7.1}s  {e}", o.suite, o.secs),
        }
    }
    match &report {
        Ok(path) => eprintln!("moat-bench: report  ok      {}", path.display()),
        Err(e) => eprintln!("moat-bench: report  FAILED  {e}"),
    }
    eprintln!("moat-bench: total {:.1}s", started.elapsed().as_secs_f64());
    if failures.is_empty() && report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
