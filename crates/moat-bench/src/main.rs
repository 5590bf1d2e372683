//! `moat-bench`: side-by-side benchmark of moat against ClamAV's clamscan.
//!
//! ```text
//! cargo run --release -p moat-bench -- all [--quick] [--data DIR] [--runs N] [--watch-args "ARGS"]
//! cargo run --release -p moat-bench -- report [--data DIR] [--out FILE]
//! cargo run --release -p moat-bench -- real [--db DIR] [--data DIR] [--runs N] [--largest N] [--force]
//! cargo run --release -p moat-bench -- scan [--quick] [--data DIR] [--moat PATH] [--clamscan PATH] [--runs N]
//! cargo run --release -p moat-bench -- gen  [--quick] [--data DIR] [--force]
//! cargo run --release -p moat-bench -- watch [--quick] [--dirs N,...] [--files N] [--scope filesystem|directory|both]
//!                                           [--tracking fanotify|inotify] [--race-rounds N] [--data DIR] [--moat PATH]
//! cargo run --release -p moat-bench -- watch-real [--db DIR] [--files N] [--only none,moat,clamonacc]
//!                                           [--no-first-open] [--no-mixed] [--mixed-timeout SECS] [--moat PATH]
//! cargo run --release -p moat-bench -- attacks [--opens N] [--no-clamonacc] [--moat PATH] [--data DIR]
//! ```
//!
//! `real` scans a fixed selection of this machine's own files with ClamAV's real signatures
//! (`../shared/sigs/clamav-real` unless `--db`), both scanners side by side, then times the
//! largest programs and libraries alone ([`real`]); it writes `results/real.json`.
//!
//! `watch-real` (root only) is on access with real ClamAV signatures ([`watch::real`]):
//! first open of real files of this machine on a private tmpfs, and a mixed workload with
//! /usr watched with prevention, moat against clamd + clamonacc loading the same set.
//!
//! `scan` generates (or reuses) a reproducible database and corpus ([`gen`]), warms the page
//! cache, runs both scanners on an empty file (database load time) and on the corpus
//! ([`runner`]), then prints a comparison table and checks that both report the same
//! detections ([`report`]).
//!
//! `scan` runs on two databases (the dataset's, and a hash-only one of ~1,000,000
//! signatures, [`gen::hashdb`]) and writes `<data dir>/results/scan.json` ([`results`]).
//!
//! `all` runs `real`, `scan` then `watch` then `report` ([`all`]); `report` renders BENCHMARKS.md
//! and its PNG charts from the results files ([`render`]).
//!
//! `watch` (root only) measures the on-access daemons: `moat watch` (filesystem and/or
//! directory scope) against ClamAV's clamd + clamonacc, each with its own clamd.conf and
//! the same test database. For each tree size of `--dirs` (100,000 and 1,000,000; 10,000
//! and 100,000 with `--quick`) it mounts a private tmpfs, generates a reproducible tree in
//! it and times, from each daemon's spawn, moat's READY and how long until every probe
//! directory denies an infected file to an unprivileged opener (full coverage), then the
//! p50/p99 of the first and the repeated open of `--files` small clean files (5,000), and
//! counts race escapes (`--race-rounds`, 2,000: an unprivileged process reading back an
//! EICAR file it has just put into the tree), with a no-scanner baseline, and prints
//! moat/clamonacc and moat/none ratios next to the issue's targets ([`watch`]).

mod all;
mod apt;
mod gen;
mod real;
mod render;
mod report;
pub mod results;
mod rng;
mod runner;
mod scan;
mod serve;
mod watch;

use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

#[derive(Parser)]
#[command(
    name = "moat-bench",
    about = "Benchmark moat against clamscan on a reproducible synthetic database and corpus"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Generate the data if needed, run both scanners and print the comparison.
    Scan(ScanArgs),
    /// `moat scan` against clamscan with ClamAV's real signatures on this machine's own
    /// files (a fixed selection of programs, libraries, Python sources and documents), then
    /// the largest programs and libraries alone.
    Real(real::RealArgs),
    /// Only generate (or verify the cache of) the benchmark data.
    Gen(DataArgs),
    /// Run `moat watch` and clamonacc in turn on a generated tree and compare coverage
    /// time and open() latency (needs root).
    Watch(watch::WatchArgs),
    /// On access with real ClamAV signatures: first open of real files and a mixed
    /// workload with /usr watched, moat against clamonacc (needs root).
    WatchReal(watch::real::RealArgs),
    /// What a flood, a stalled FUSE server and one protected directory cost other opens,
    /// moat against clamonacc and no scanner (needs root).
    Attacks(watch::attacks::AttacksArgs),
    /// Run every suite (`scan`, then `watch`) and render BENCHMARKS.md and its charts;
    /// installs what is missing (as root) and goes on when one suite fails.
    All(all::AllArgs),
    /// Render BENCHMARKS.md and its charts from `<data dir>/results/*.json`.
    Report(render::ReportArgs),
    /// Run `moat serve` and clamd on one database: INSTREAM and FILDES verdicts/s with 1, 8
    /// and 64 clients, PING latency while every worker is busy.
    Serve(serve::ServeArgs),
}

#[derive(Args)]
struct DataArgs {
    /// Use the small profile: ~30 MB corpus and a tenth of the database.
    #[arg(long)]
    quick: bool,
    /// Where datasets are cached [default: <workspace>/target/bench-data].
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Regenerate even when a valid cached dataset exists.
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
struct ScanArgs {
    #[command(flatten)]
    data: DataArgs,
    /// The moat binary [default: <target dir>/release/moat, built if missing]. A binary
    /// whose name starts with `clamscan` is invoked without the `scan` subcommand, which
    /// allows testing this tool against clamscan itself.
    #[arg(long, value_name = "PATH")]
    moat: Option<PathBuf>,
    /// The clamscan binary.
    #[arg(long, value_name = "PATH", default_value = "clamscan")]
    clamscan: PathBuf,
    /// Run every measurement this many times and keep the fastest (for noisy machines).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
}

/// The workspace root this tool was built from (falls back to the current directory).
fn workspace_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or_else(|_| PathBuf::from("."))
}

fn data_dir(args: &DataArgs) -> PathBuf {
    resolve_data_dir(args.data.clone())
}

/// The data directory: `explicit` made absolute, or `<workspace>/target/bench-data`.
fn resolve_data_dir(explicit: Option<PathBuf>) -> PathBuf {
    let dir = explicit.unwrap_or_else(|| workspace_root().join("target/bench-data"));
    if dir.is_absolute() {
        dir
    } else {
        std::env::current_dir().map(|c| c.join(&dir)).unwrap_or(dir)
    }
}

fn profile(args: &DataArgs) -> gen::Profile {
    if args.quick {
        gen::Profile::quick()
    } else {
        gen::Profile::full()
    }
}

/// Finds the moat binary, building it with cargo when the default one is missing.
fn resolve_moat(explicit: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return Ok(p);
    }
    let root = workspace_root();
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| if t.is_absolute() { t } else { root.join(t) })
        .unwrap_or_else(|| root.join("target"));
    let bin = target_dir.join("release/moat");
    if !bin.exists() {
        eprintln!(
            "moat-bench: {} missing, running `cargo build --release -p moat`",
            bin.display()
        );
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--release", "-p", "moat"])
            .current_dir(&root)
            .status()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !status.success() || !bin.exists() {
            return Err(format!(
                "building moat failed ({status}); pass --moat PATH to use another binary"
            ));
        }
    }
    Ok(bin)
}

fn moat_tool(program: PathBuf) -> runner::Tool {
    let clamscan_like = program
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("clamscan"));
    runner::Tool {
        label: "moat",
        program,
        prefix: if clamscan_like {
            Vec::new()
        } else {
            vec!["scan".to_string()]
        },
    }
}

fn cmd_gen(args: &DataArgs) -> Result<(), String> {
    let ds = gen::ensure(&data_dir(args), &profile(args), args.force)
        .map_err(|e| format!("generating data: {e}"))?;
    println!(
        "{} dataset ready in {} ({}): {} files, {:.1} MB, {} planted detections",
        profile(args).name,
        ds.root.display(),
        if ds.generated {
            format!("generated in {:.1}s", ds.generation_secs)
        } else {
            "cached".to_string()
        },
        ds.corpus_files(),
        ds.corpus_bytes() as f64 / 1e6,
        ds.expected.len()
    );
    let ldb = gen::ldbdb::ensure(&ds).map_err(|e| format!("generating the logical db: {e}"))?;
    println!(
        "logical-signature database ready in {}: {} signatures",
        ldb.db_dir.display(),
        ldb.manifest_u64("ldb_sigs")
    );
    let arch = gen::archives::ensure(&ds).map_err(|e| format!("packing the archives: {e}"))?;
    println!(
        "archive corpus ready in {}: {} archives, {:.1} MB, {} planted detections",
        arch.corpus_dir.display(),
        arch.corpus_files(),
        arch.manifest_u64("archive_bytes") as f64 / 1e6,
        arch.expected.len()
    );
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Scan(a) => scan::run(a),
        Cmd::Real(a) => real::run(a),
        Cmd::All(a) => return all::run(a),
        Cmd::Report(a) => render::run(&a),
        Cmd::Gen(a) => cmd_gen(&a),
        Cmd::Watch(a) => watch::run(a),
        Cmd::WatchReal(a) => watch::real::run(a),
        Cmd::Attacks(a) => watch::attacks::run(a),
        Cmd::Serve(a) => serve::run(
            a,
            &workspace_root().join("target/bench-data"),
            &workspace_root(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("moat-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
