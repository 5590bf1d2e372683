//! `moat scan`: on-demand scanning, a drop-in for clamscan.
//!
//! Three kinds of threads: one walker enumerates files in clamscan's order and
//! numbers them; `--threads` workers (every core by default) scan them, each with its
//! own [`Scanner`] over the shared, immutable [`Engine`]; the calling thread prints
//! results in walk order (a reorder buffer keyed by sequence number), so the output
//! is deterministic and matches clamscan's line order while the scanning is parallel.

mod output;
mod walk;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use indicatif::{ProgressBar, ProgressStyle};
use moat_engine::{Engine, Limits, ScanError, Scanner, Verdict};
use regex::bytes::Regex;

use crate::size::parse_size;
use moat_react::scan_action::{ScanAction, Target};
use output::{Outcome, Totals};
use walk::{Follow, Item, WalkOptions};

/// Options of `moat scan`, named as clamscan's.
#[derive(clap::Args, Debug)]
pub struct ScanArgs {
    /// Load signatures from FILE or from every database in DIR (repeatable). Default:
    /// /var/lib/clamav when it holds databases, else a built-in test set.
    #[arg(short = 'd', long = "database", value_name = "FILE|DIR")]
    database: Vec<PathBuf>,
    /// Scan directories recursively.
    #[arg(short = 'r', long)]
    recursive: bool,
    /// Print only infected files.
    #[arg(short = 'i', long)]
    infected: bool,
    /// Do not print the summary block.
    #[arg(long)]
    no_summary: bool,
    /// Files larger than this are not scanned (K/M/G suffixes; 0 = no limit).
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "100M")]
    max_filesize: u64,
    /// At most this much data is scanned per file (K/M/G suffixes; 0 = no limit).
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "400M")]
    max_scansize: u64,
    /// Members nested this deep or deeper are not scanned (0: the default, as clamscan).
    #[arg(long, value_name = "N", default_value_t = 17)]
    max_recursion: u32,
    /// At most this many files are scanned per file given, its members included (0 = no limit).
    #[arg(long, value_name = "N", default_value_t = 10000)]
    max_files: u64,
    /// Load the potentially-unwanted-application databases (.hdu .hsu .ndu .ldu .mdu .msu).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "yes", value_parser = parse_yes_no, value_name = "yes/no", default_value = "no")]
    detect_pua: bool,
    /// Load .cbc bytecode files that are not inside a signed container (counted; bytecode
    /// is not evaluated yet).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "yes", value_parser = parse_yes_no, value_name = "yes/no", default_value = "no")]
    bytecode_unsigned: bool,
    /// Report a limit hit as a detection: Heuristics.Limits.Exceeded.<Limit>.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "yes", value_parser = parse_yes_no, value_name = "yes/no", default_value = "no")]
    alert_exceeds_max: bool,
    /// Open archives and compressed files (also RTF, BinHex, SZDD).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "yes", value_parser = parse_yes_no, value_name = "yes/no", default_value = "yes")]
    scan_archive: bool,
    /// Open mail (also TNEF, and HTML's data: URIs).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "yes", value_parser = parse_yes_no, value_name = "yes/no", default_value = "yes")]
    scan_mail: bool,
    /// Open OLE2 documents.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "yes", value_parser = parse_yes_no, value_name = "yes/no", default_value = "yes")]
    scan_ole2: bool,
    /// Open PDF streams.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "yes", value_parser = parse_yes_no, value_name = "yes/no", default_value = "yes")]
    scan_pdf: bool,
    /// Open HTML's data: URIs.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "yes", value_parser = parse_yes_no, value_name = "yes/no", default_value = "yes")]
    scan_html: bool,
    /// Files larger than this get no normalized-text scan (K/M/G suffixes; 0 = no limit).
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "20M")]
    max_scriptnormalize: u64,
    /// Do not scan files whose path matches REGEX (repeatable).
    #[arg(long, value_name = "REGEX")]
    exclude: Vec<Regex>,
    /// Do not enter directories whose path matches REGEX (repeatable).
    #[arg(long, value_name = "REGEX")]
    exclude_dir: Vec<Regex>,
    /// Follow directory symlinks: 0 never, 1 only on the command line, 2 always.
    #[arg(long, value_name = "N", default_value_t = 1, num_args = 0..=1, default_missing_value = "2", value_parser = clap::value_parser!(u8).range(0..=2))]
    follow_dir_symlinks: u8,
    /// Follow file symlinks: 0 never, 1 only on the command line, 2 always.
    #[arg(long, value_name = "N", default_value_t = 1, num_args = 0..=1, default_missing_value = "2", value_parser = clap::value_parser!(u8).range(0..=2))]
    follow_file_symlinks: u8,
    /// Also append the report to FILE.
    #[arg(short = 'l', long = "log", value_name = "FILE")]
    log: Option<PathBuf>,
    /// Move infected files into DIRECTORY (clamscan's naming: NAME, NAME.001, ...).
    #[arg(long = "move", value_name = "DIRECTORY")]
    move_to: Option<PathBuf>,
    /// Copy infected files into DIRECTORY.
    #[arg(long, value_name = "DIRECTORY")]
    copy: Option<PathBuf>,
    /// Remove infected files. Be careful!
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "yes", value_parser = parse_yes_no, value_name = "yes/no", default_value = "no")]
    remove: bool,
    /// Scanning threads (default: one per core).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Scan on this clamd (or `moat serve`) server instead of the embedded engine (repeatable:
    /// requests are spread over the servers, with failover): unix:PATH passes each file's
    /// descriptor (FILDES), tcp:HOST[:PORT] streams it (INSTREAM). The servers' databases and
    /// limits apply; -d and the limit flags do not.
    #[arg(long = "clamd", value_name = "unix:PATH|tcp:HOST[:PORT]")]
    clamd: Vec<moat_clamd::client::Endpoint>,
    /// With --clamd: the longest any connect, send or receive may wait before the server
    /// counts as down (e.g. 30s, 500ms).
    #[arg(long, value_name = "DURATION", value_parser = moat_config::parse_duration, default_value = "30s")]
    clamd_timeout: std::time::Duration,
    /// Scan the files and directories listed in FILE, one path per line (relative ones to
    /// the current directory); PATH arguments are then ignored, with a warning.
    #[arg(short = 'f', long = "file-list", value_name = "FILE")]
    file_list: Option<PathBuf>,
    /// Files and directories to scan; `-` reads standard input. Default: the current directory.
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
}

/// clamscan's exit status when the `--file-list` file cannot be read (ClamAV 1.4.6, observed).
const EXIT_FILE_LIST_UNREADABLE: u8 = 54;

/// What to scan: the paths of `--file-list` (clamscan then ignores PATH arguments, saying so),
/// else the PATH arguments, else the current directory. `Err` is clamscan's message for a list
/// that cannot be read.
fn scan_paths(args: &ScanArgs) -> Result<Vec<PathBuf>, String> {
    let Some(list) = &args.file_list else {
        return Ok(if args.paths.is_empty() {
            vec![PathBuf::from(".")]
        } else {
            args.paths.clone()
        });
    };
    if !args.paths.is_empty() {
        eprintln!(
            "WARNING: Only scanning files from --file-list (files passed at cmdline are ignored)"
        );
    }
    let data = std::fs::read(list)
        .map_err(|_| format!("--file-list: Can't open file {}", list.display()))?;
    Ok(file_list_paths(&data))
}

/// The paths of a file list as clamscan reads them: one per line, line ends (`\n`, `\r\n`,
/// any run of `\r`/`\n`) cut off but never a line's first byte, so that a blank line is the
/// path "\n" (and a blank CRLF line "\r"), reported missing as clamscan reports it; spaces
/// are kept; the last line needs no newline.
fn file_list_paths(data: &[u8]) -> Vec<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    data.split_inclusive(|&b| b == b'\n')
        .map(|line| {
            let mut end = line.len();
            while end > 1 && matches!(line[end - 1], b'\r' | b'\n') {
                end -= 1;
            }
            PathBuf::from(std::ffi::OsStr::from_bytes(&line[..end]))
        })
        .collect()
}

/// One result on its way to the printer.
enum Report {
    Scanned {
        shown: PathBuf,
        outcome: Outcome,
        bytes_read: u64,
        bytes_scanned: u64,
        /// What `--move`/`--copy`/`--remove` did: a stdout line, or an stderr line.
        acted: Option<Result<String, String>>,
    },
    Item(Item),
    Done {
        items: u64,
        directories: u64,
    },
}

/// Runs the scan and returns clamscan's exit status.
pub fn run(args: ScanArgs) -> u8 {
    let start = SystemTime::now();
    let clock = Instant::now();
    let action = match scan_action(&args) {
        Ok(a) => a,
        // As clamscan: its action_setup message on stdout, an ERROR line on stderr.
        Err(message) if message.starts_with("action_setup") => {
            println!("{message}");
            return 2;
        }
        Err(message) => {
            eprintln!("{message}");
            return 2;
        }
    };
    let mut out = match Output::new(args.log.as_ref(), args.no_summary) {
        Ok(out) => out,
        Err(message) => {
            eprintln!("ERROR: {message}");
            return 2;
        }
    };
    if !args.clamd.is_empty() {
        return run_on_clamd(&args, action.as_ref(), out, clock, start);
    }
    let engine = match crate::database::load(
        &args.database,
        std::path::Path::new(crate::database::DEFAULT_DATABASE_DIR),
        moat_sigs::LoadOptions {
            detect_pua: args.detect_pua,
            bytecode_unsigned: args.bytecode_unsigned,
        },
    ) {
        Ok(db) => Engine::new(db),
        Err(e) => {
            eprintln!("ERROR: {e}");
            out.summary(0, &Totals::default(), clock, start);
            return 2;
        }
    };
    tracing::debug!(elapsed = ?clock.elapsed(), signatures = engine.signature_count(), "database loaded");
    let paths = match scan_paths(&args) {
        Ok(paths) => paths,
        Err(message) => {
            eprintln!("ERROR: {message}");
            out.summary(engine.signature_count(), &Totals::default(), clock, start);
            return EXIT_FILE_LIST_UNREADABLE;
        }
    };
    let limit = |value: u64| (value > 0).then_some(value);
    let limits = Limits {
        max_file_size: limit(args.max_filesize),
        max_scan_size: limit(args.max_scansize),
        max_script_normalize: limit(args.max_scriptnormalize),
        max_recursion: Some(max_recursion(args.max_recursion)),
        max_files: limit(args.max_files),
        alert_exceeds_max: args.alert_exceeds_max,
        scan: moat_engine::containers::ScanKinds {
            archive: args.scan_archive,
            mail: args.scan_mail,
            ole2: args.scan_ole2,
            pdf: args.scan_pdf,
            html: args.scan_html,
        },
        // Throughput: every thread has a file of its own.
        parallel_from: None,
    };
    let mut totals = scan_all(
        Backend::Engine(&engine, limits),
        &paths,
        &args,
        action.as_ref(),
        &mut out,
    );
    out.summary(engine.signature_count(), &totals, clock, start);
    if out.log_failed || out.report_failed {
        totals.errors += 1;
    }
    totals.exit_code()
}

/// `--clamd`: the same walk and output, verdicts from the servers. The summary's "Known
/// viruses" is 0: clamd has no command that tells how many signatures it holds.
fn run_on_clamd(
    args: &ScanArgs,
    action: Option<&ScanAction>,
    mut out: Output,
    clock: Instant,
    start: SystemTime,
) -> u8 {
    let pool = moat_clamd::client::Pool::new(
        args.clamd.clone(),
        moat_clamd::client::PoolOptions {
            timeout: args.clamd_timeout,
            ..Default::default()
        },
    );
    let paths = match scan_paths(args) {
        Ok(paths) => paths,
        Err(message) => {
            eprintln!("ERROR: {message}");
            out.summary(0, &Totals::default(), clock, start);
            return EXIT_FILE_LIST_UNREADABLE;
        }
    };
    let mut totals = scan_all(Backend::Clamd(&pool), &paths, args, action, &mut out);
    out.summary(0, &totals, clock, start);
    if out.log_failed || out.report_failed {
        totals.errors += 1;
    }
    totals.exit_code()
}

/// Where verdicts come from.
#[derive(Clone, Copy)]
enum Backend<'a> {
    /// The embedded engine, with clamscan's limits.
    Engine(&'a Engine, Limits),
    /// A pool of clamd servers (`--clamd`).
    Clamd(&'a moat_clamd::client::Pool),
}

/// `--move`, else `--copy`, else `--remove` (clamscan's precedence); the directory is
/// checked before anything is scanned.
fn scan_action(args: &ScanArgs) -> Result<Option<ScanAction>, String> {
    Ok(match (&args.move_to, &args.copy, args.remove) {
        (Some(dir), _, _) => Some(ScanAction::Move(Target::open(dir)?)),
        (_, Some(dir), _) => Some(ScanAction::Copy(Target::open(dir)?)),
        (_, _, true) => Some(ScanAction::Remove),
        _ => None,
    })
}

fn scan_all(
    backend: Backend<'_>,
    paths: &[PathBuf],
    args: &ScanArgs,
    action: Option<&ScanAction>,
    out: &mut Output,
) -> Totals {
    let options = WalkOptions {
        recursive: args.recursive,
        exclude: args.exclude.clone(),
        exclude_dir: args.exclude_dir.clone(),
        follow_dirs: Follow::from_level(args.follow_dir_symlinks),
        follow_files: Follow::from_level(args.follow_file_symlinks),
    };
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let (job_tx, job_rx) = bounded::<(u64, PathBuf)>(threads * 64);
    let (report_tx, report_rx) = unbounded::<(u64, Report)>();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let (jobs, reports) = (job_rx.clone(), report_tx.clone());
            scope.spawn(move || worker(backend, jobs, reports, action));
        }
        drop(job_rx);
        let reports = report_tx.clone();
        scope.spawn(move || walker(paths, &options, backend, job_tx, reports));
        drop(report_tx);
        printer(report_rx, args.infected, out)
    })
}

/// Walks the paths, sending files to the workers and everything else to the printer.
fn walker(
    paths: &[PathBuf],
    options: &WalkOptions,
    backend: Backend<'_>,
    jobs: Sender<(u64, PathBuf)>,
    reports: Sender<(u64, Report)>,
) {
    let mut seq = 0u64;
    let directories = walk::walk(paths, options, &mut |item| {
        let _ = match item {
            Item::File(path) => jobs.send((seq, path)).map_err(drop),
            Item::Stdin => reports.send((seq, scan_stdin(backend))).map_err(drop),
            other => reports.send((seq, Report::Item(other))).map_err(drop),
        };
        seq += 1;
    });
    let _ = reports.send((
        u64::MAX,
        Report::Done {
            items: seq,
            directories,
        },
    ));
}

fn worker(
    backend: Backend<'_>,
    jobs: Receiver<(u64, PathBuf)>,
    reports: Sender<(u64, Report)>,
    action: Option<&ScanAction>,
) {
    let mut scanner = match backend {
        Backend::Engine(engine, limits) => Some(Scanner::new(engine, limits)),
        Backend::Clamd(_) => None,
    };
    for (seq, path) in jobs {
        let report = match (&mut scanner, backend) {
            (Some(s), Backend::Engine(engine, limits)) => {
                scan_one_contained(s, path, action, || Scanner::new(engine, limits))
            }
            (None, Backend::Clamd(pool)) => scan_one_on_clamd(pool, path, action),
            _ => unreachable!("an engine worker has a scanner, a clamd worker none"),
        };
        if reports.send((seq, report)).is_err() {
            return;
        }
    }
}

/// One file on the clamd pool: opened here (so that an unreadable file is reported as
/// clamscan reports it), empty files not sent (clamscan prints `Empty file`).
fn scan_one_on_clamd(
    pool: &moat_clamd::client::Pool,
    path: PathBuf,
    action: Option<&ScanAction>,
) -> Report {
    let mut acted = None;
    let opened = File::open(&path).and_then(|f| f.metadata().map(|m| (f, m.len())));
    let (outcome, bytes) = match opened {
        Err(e) => (io_outcome(&e), 0),
        Ok((_, 0)) => (Outcome::Empty, 0),
        Ok((file, len)) => {
            let outcome = clamd_outcome(pool.scan_answer(&file));
            if let (Outcome::Infected(_), Some(a)) = (&outcome, action) {
                acted = Some(a.apply(&path, &file));
            }
            (outcome, len)
        }
    };
    Report::Scanned {
        shown: path,
        outcome,
        bytes_read: bytes,
        bytes_scanned: bytes,
        acted,
    }
}

fn clamd_outcome(answer: Result<moat_clamd::client::Answer, moat_guard::ScanFailure>) -> Outcome {
    use moat_clamd::client::Answer;
    match answer {
        Ok(Answer::Clean) => Outcome::Clean,
        Ok(Answer::Found(name)) => Outcome::Infected(name),
        Ok(Answer::Error(message)) => Outcome::Error(message),
        Err(moat_guard::ScanFailure::Io(e)) => io_outcome(&e),
        Err(other) => Outcome::Error(other.to_string()),
    }
}

/// [`scan_one`], with a panic of the engine on this file contained: the file is reported
/// as an error (counted in the summary's errors, the exit status 2), the worker's scanner
/// is replaced (its scratch state may be half-updated), and the run goes on with the next
/// file, as clamscan goes on after a file it cannot scan. The panic message itself is
/// printed by the default hook: it is a bug to report.
fn scan_one_contained<'e>(
    scanner: &mut Scanner<'e>,
    path: PathBuf,
    action: Option<&ScanAction>,
    fresh: impl FnOnce() -> Scanner<'e>,
) -> Report {
    let shown = path.clone();
    let run = std::panic::AssertUnwindSafe(|| scan_one(scanner, path, action));
    match std::panic::catch_unwind(run) {
        Ok(report) => report,
        Err(_) => {
            *scanner = fresh();
            Report::Scanned {
                shown,
                outcome: Outcome::Error("internal error in the scanning engine".into()),
                bytes_read: 0,
                bytes_scanned: 0,
                acted: None,
            }
        }
    }
}

/// Test-only fault: with `MOAT_TEST_FAULT=scan-panic`, scanning a file whose name ends
/// in `.moat-panic` panics, to test [`scan_one_contained`].
fn injected_panic(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "moat-panic")
        && std::env::var(moat_guard::deadline::FAULT_ENV).as_deref() == Ok("scan-panic")
}

fn scan_one(scanner: &mut Scanner<'_>, path: PathBuf, action: Option<&ScanAction>) -> Report {
    assert!(
        !injected_panic(&path),
        "fault injected by MOAT_TEST_FAULT=scan-panic"
    );
    let shown = path.clone();
    let mut acted = None;
    let opened = File::open(&path).and_then(|f| f.metadata().map(|m| (f, m.len())));
    let (outcome, bytes_read, bytes_scanned) = match opened {
        Err(e) => (io_outcome(&e), 0, 0),
        Ok((_, 0)) => (Outcome::Empty, 0, 0),
        Ok((file, len)) => {
            let scanned = match scanner.scan_file(&file) {
                // A file over the size limits is reported OK (or, with --alert-exceeds-max,
                // as the limit) but was not read.
                Ok(scan) if scan.skipped.is_some() => (verdict_outcome(scan.verdict), 0, 0),
                Ok(scan) => (verdict_outcome(scan.verdict), len, scan.bytes_scanned),
                Err(ScanError::Io(e)) => (io_outcome(&e), 0, 0),
            };
            if let (Outcome::Infected(_), Some(a)) = (&scanned.0, action) {
                acted = Some(a.apply(&shown, &file));
            }
            scanned
        }
    };
    Report::Scanned {
        shown,
        outcome,
        bytes_read,
        bytes_scanned,
        acted,
    }
}

fn scan_stdin(backend: Backend<'_>) -> Report {
    let (engine, limits) = match backend {
        Backend::Engine(engine, limits) => (engine, limits),
        Backend::Clamd(pool) => return scan_stdin_on_clamd(pool),
    };
    let mut scanner = Scanner::new(engine, limits);
    let (outcome, bytes) = match scanner.scan_reader(io::stdin().lock()) {
        Ok(scan) => (verdict_outcome(scan.verdict), scan.bytes_scanned),
        Err(ScanError::Io(e)) => (io_outcome(&e), 0),
    };
    Report::Scanned {
        shown: PathBuf::from("stdin"),
        outcome,
        bytes_read: bytes,
        bytes_scanned: bytes,
        acted: None,
    }
}

/// Standard input on the clamd pool: spooled to an anonymous temp file first, so that a
/// pipe can be passed by descriptor (clamd refuses a non-regular FILDES) or streamed.
fn scan_stdin_on_clamd(pool: &moat_clamd::client::Pool) -> Report {
    let spooled = tempfile::tempfile().and_then(|mut f| {
        let n = io::copy(&mut io::stdin().lock(), &mut f)?;
        io::Seek::rewind(&mut f)?;
        Ok((f, n))
    });
    let (outcome, bytes) = match spooled {
        Err(e) => (io_outcome(&e), 0),
        Ok((file, n)) => (clamd_outcome(pool.scan_answer(&file)), n),
    };
    Report::Scanned {
        shown: PathBuf::from("stdin"),
        outcome,
        bytes_read: bytes,
        bytes_scanned: bytes,
        acted: None,
    }
}

/// `--max-recursion`: 0 is refused as by libclamav (measured: this warning on stderr, and
/// the default used).
fn max_recursion(value: u32) -> u32 {
    if value == 0 {
        eprintln!(
            "LibClamAV Warning: MaxRecursion: the value of 0 is not allowed, using default: 17"
        );
        return 17;
    }
    value
}

/// clamscan's yes/no option values.
fn parse_yes_no(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "yes" | "y" | "true" | "1" => Ok(true),
        "no" | "n" | "false" | "0" => Ok(false),
        _ => Err(format!("expected yes or no, not {value:?}")),
    }
}

fn verdict_outcome(verdict: Verdict<'_>) -> Outcome {
    match verdict {
        Verdict::Clean => Outcome::Clean,
        Verdict::Infected(name) => Outcome::Infected(name.to_owned()),
    }
}

fn io_outcome(e: &io::Error) -> Outcome {
    match e.kind() {
        io::ErrorKind::PermissionDenied => Outcome::AccessDenied,
        _ => Outcome::Error(format!("Can't read file: {e}")),
    }
}

/// Prints reports in walk order and adds up the totals.
fn printer(reports: Receiver<(u64, Report)>, infected_only: bool, out: &mut Output) -> Totals {
    let mut totals = Totals::default();
    let mut pending = BTreeMap::new();
    let mut next = 0u64;
    let mut expected = u64::MAX;
    for (seq, report) in reports {
        match report {
            Report::Done { items, directories } => {
                expected = items;
                totals.directories = directories;
            }
            report => {
                pending.insert(seq, report);
            }
        }
        while let Some(report) = pending.remove(&next) {
            out.report(report, infected_only, &mut totals);
            next += 1;
        }
        if next == expected {
            break;
        }
    }
    out.finish_progress();
    totals
}

/// Where results go: stdout, the optional log file, and a progress bar on stderr
/// when stderr is a terminal.
struct Output {
    log: Option<(PathBuf, File)>,
    /// Writing the log failed (e.g. a full disk): reported once, then the log is
    /// dropped and the exit status says there was an error.
    log_failed: bool,
    /// Writing to standard output failed.
    report_failed: bool,
    progress: Option<ProgressBar>,
    no_summary: bool,
}

impl Output {
    /// Fails when the log file cannot be opened: nothing is scanned without the
    /// record the user asked for.
    fn new(log: Option<&PathBuf>, no_summary: bool) -> Result<Output, String> {
        let log = match log {
            None => None,
            Some(path) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("can't open log file {}: {e}", path.display()))?;
                Some((path.clone(), file))
            }
        };
        let progress = io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar.set_message("loading signatures");
            bar
        });
        Ok(Output {
            log,
            log_failed: false,
            report_failed: false,
            progress,
            no_summary,
        })
    }

    fn report(&mut self, report: Report, infected_only: bool, totals: &mut Totals) {
        match report {
            Report::Scanned {
                shown,
                outcome,
                bytes_read,
                bytes_scanned,
                acted,
            } => {
                match &outcome {
                    Outcome::Clean => totals.files += 1,
                    Outcome::Infected(_) => {
                        totals.files += 1;
                        totals.infected += 1;
                    }
                    Outcome::Empty => {}
                    Outcome::AccessDenied | Outcome::Error(_) => totals.errors += 1,
                }
                totals.bytes_read += bytes_read;
                totals.bytes_scanned += bytes_scanned;
                if let Some(line) = output::line(&shown, &outcome, infected_only) {
                    self.stdout(&line);
                }
                match acted {
                    Some(Ok(line)) => self.stdout(line.as_bytes()),
                    Some(Err(line)) => self.stderr(&line),
                    None => {}
                }
                if let Some(bar) = &self.progress {
                    bar.set_message(format!(
                        "{} files, {:.1} MB",
                        totals.files,
                        totals.bytes_read as f64 / 1048576.0
                    ));
                }
            }
            Report::Item(Item::Notice(line)) => {
                if !infected_only {
                    self.stdout(&line);
                }
            }
            Report::Item(Item::Failed(line)) => {
                totals.errors += 1;
                self.stdout(&line);
            }
            Report::Item(Item::Warning(lines)) => {
                totals.errors += 1;
                for line in lines {
                    self.stderr(&line);
                }
            }
            Report::Item(Item::File(_) | Item::Stdin) | Report::Done { .. } => {
                unreachable!("the walker sends files to workers, not to the printer")
            }
        }
    }

    fn stdout(&mut self, line: &[u8]) {
        let write = || {
            let mut stdout = io::stdout().lock();
            stdout
                .write_all(line)
                .and_then(|()| stdout.write_all(b"\n"))
        };
        let written = match &self.progress {
            Some(bar) => bar.suspend(write),
            None => write(),
        };
        if let Err(e) = written {
            self.stdout_failed(e);
        }
        if let Some((path, log)) = &mut self.log {
            if let Err(e) = log.write_all(line).and_then(|()| log.write_all(b"\n")) {
                let message = format!("ERROR: can't write log file {}: {e}", path.display());
                self.log = None;
                self.log_failed = true;
                self.stderr(&message);
            }
        }
    }

    /// A failed write of the report (a full disk, a closed pipe): the report is
    /// incomplete, so the exit status is 2; a closed pipe ends the scan at once, as
    /// there is no one left to read it.
    fn stdout_failed(&mut self, e: io::Error) {
        if e.kind() == io::ErrorKind::BrokenPipe {
            std::process::exit(2);
        }
        if !self.report_failed {
            self.report_failed = true;
            self.stderr(&format!(
                "ERROR: can't write the report to standard output: {e}"
            ));
        }
    }

    fn stderr(&self, line: &str) {
        match &self.progress {
            Some(bar) => bar.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    fn finish_progress(&mut self) {
        if let Some(bar) = self.progress.take() {
            bar.finish_and_clear();
        }
    }

    fn summary(&mut self, known: usize, totals: &Totals, clock: Instant, start: SystemTime) {
        if self.no_summary {
            return;
        }
        let text = output::summary(known, totals, clock.elapsed(), start, SystemTime::now());
        self.stdout(text.as_bytes());
    }
}
