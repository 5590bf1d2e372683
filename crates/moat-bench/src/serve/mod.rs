//! `moat-bench serve`: `moat serve` side by side with clamd on the same database.
//!
//! Both servers run from configs in a temp dir (unix sockets there, same MaxThreads), on
//! ClamAV's real signatures (`../shared/sigs/clamav-real`) when they are there, else (or with
//! `--one-sig`) on a generated one-signature database, which measures the server rather than
//! the engine. For each server it measures INSTREAM and FILDES verdicts per second with 1, 8
//! and 64 concurrent clients (each client loops over the corpus for a fixed time), the
//! latency of PING and of a 4 KiB clean INSTREAM while every worker is busy with large streams
//! (`--busy-only`: that alone), and a RELOAD while 8 clients keep
//! scanning: peak RSS against RSS before, verdicts answered during the reload and the longest
//! gap between two ([`reload`]). The corpus ([`corpus`]) is a fixed selection of small real
//! files of this machine (`--corpus generated`: 200 generated text files, every 20th with the
//! one-signature set's marker). Prints a table with the moat/clamd ratios and the load
//! average, and writes `<data dir>/results/serve.json`, which `moat-bench report` renders
//! into BENCHMARKS.md as the other suites. Throughput is measured twice: with
//! `DisableCache yes` on both servers (every request scanned: the engine-bound figure), then
//! with both caches on (clamd's default), and each server's VmRSS at rest after a burst.

mod corpus;
mod reload;

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};

/// Options of `moat-bench serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// Signature database directory for both servers [default:
    /// <workspace>/../shared/sigs/clamav-real when present, else the one-signature set].
    #[arg(long, value_name = "DIR")]
    db: Option<PathBuf>,
    /// Use the generated one-signature database (measures the server, not the engine).
    #[arg(long, conflicts_with = "db")]
    one_sig: bool,
    /// The files scanned: a fixed selection of small real files of /usr/share/doc and
    /// /usr/lib, or generated text files.
    #[arg(long, value_enum, default_value_t = CorpusKind::Real)]
    corpus: CorpusKind,
    /// Seconds per measurement point.
    #[arg(long, default_value_t = 3)]
    seconds: u64,
    /// MaxThreads of both servers.
    #[arg(long, default_value_t = 4)]
    threads: u32,
    /// Skip the RELOAD measurement.
    #[arg(long)]
    no_reload: bool,
    /// Only the busy measurement (PING and small INSTREAMs while every worker is busy).
    #[arg(long)]
    busy_only: bool,
    /// The moat binary [default: <target dir>/release/moat].
    #[arg(long, value_name = "PATH")]
    moat: Option<PathBuf>,
}

/// Which corpus `moat-bench serve` scans.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CorpusKind {
    /// Small real files of this machine (the same selection every run).
    Real,
    /// Generated text files (4-64 KiB).
    Generated,
}

/// A server under test; killed when dropped.
pub(crate) struct Server {
    child: Child,
    name: &'static str,
    sock: PathBuf,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// Starts `name` (`clamd...`: clamd, else `moat serve`) with `extra` lines in its config.
fn start(
    name: &'static str,
    dir: &Path,
    db: &Path,
    threads: u32,
    moat: &Path,
    extra: &str,
) -> Result<Server, String> {
    let sock = dir.join(format!("{name}.sock"));
    let conf = dir.join(format!("{name}.conf"));
    let log = dir.join(format!("{name}.log"));
    std::fs::write(
        &conf,
        format!(
            "Foreground yes\nLocalSocket {}\nDatabaseDirectory {}\nMaxThreads {threads}\n\
             MaxQueue 200\nStreamMaxLength 100M\nTemporaryDirectory {}\nLogFile {}\n{extra}",
            sock.display(),
            db.display(),
            dir.display(),
            log.display()
        ),
    )
    .map_err(|e| e.to_string())?;
    let mut cmd = if name.starts_with("clamd") {
        Command::new("clamd")
    } else {
        let mut c = Command::new(moat);
        c.arg("serve");
        c
    };
    let child = cmd
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{name}: {e}"))?;
    let server = Server {
        child,
        name,
        sock,
        log,
    };
    let t = Instant::now();
    while request(&server.sock, b"zPING\0").as_deref() != Some(&b"PONG\0"[..]) {
        if t.elapsed() > Duration::from_secs(300) {
            return Err(format!("{name} did not start"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "{name}: ready in {:.1} s, pid {}",
        t.elapsed().as_secs_f64(),
        server.pid()
    );
    Ok(server)
}

/// One request on a new connection; the whole reply.
pub(crate) fn request(sock: &Path, bytes: &[u8]) -> Option<Vec<u8>> {
    let mut c = UnixStream::connect(sock).ok()?;
    c.write_all(bytes).ok()?;
    let mut out = Vec::new();
    c.read_to_end(&mut out).ok()?;
    Some(out)
}

/// A whole INSTREAM request for `data`, in clamdscan's 8 KiB chunks.
pub(crate) fn instream(data: &[u8]) -> Vec<u8> {
    let mut out = b"zINSTREAM\0".to_vec();
    for c in data.chunks(8188) {
        out.extend((c.len() as u32).to_be_bytes());
        out.extend(c);
    }
    out.extend([0, 0, 0, 0]);
    out
}

fn fildes(sock: &Path, file: &Path) -> Option<Vec<u8>> {
    let mut c = UnixStream::connect(sock).ok()?;
    c.write_all(b"zFILDES\0").ok()?;
    let f = std::fs::File::open(file).ok()?;
    let fds = [f.as_raw_fd()];
    let iov = [std::io::IoSlice::new(&[0])];
    let cmsg = [nix::sys::socket::ControlMessage::ScmRights(&fds)];
    nix::sys::socket::sendmsg::<()>(
        c.as_raw_fd(),
        &iov,
        &cmsg,
        nix::sys::socket::MsgFlags::empty(),
        None,
    )
    .ok()?;
    let mut out = Vec::new();
    c.read_to_end(&mut out).ok()?;
    Some(out)
}

/// Whether a reply is a verdict (`OK` or `FOUND`), not an error.
pub(crate) fn is_verdict(reply: &[u8]) -> bool {
    reply.ends_with(b"OK\0") || reply.ends_with(b"FOUND\0")
}

/// Verdicts per second with `clients` concurrent clients for `secs`.
fn throughput(
    server: &Server,
    corpus: &corpus::Corpus,
    clients: usize,
    fd: bool,
    secs: u64,
) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let t = Instant::now();
    std::thread::scope(|s| {
        for i in 0..clients {
            let (done, stop) = (Arc::clone(&done), Arc::clone(&stop));
            s.spawn(move || {
                let mut k = i;
                while !stop.load(Ordering::Relaxed) {
                    let reply = if fd {
                        fildes(&server.sock, &corpus.files[k % corpus.files.len()])
                    } else {
                        request(&server.sock, &corpus.streams[k % corpus.streams.len()])
                    };
                    if reply.is_some_and(|r| is_verdict(&r)) {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    k += clients;
                }
            });
        }
        std::thread::sleep(Duration::from_secs(secs));
        stop.store(true, Ordering::Relaxed);
    });
    done.load(Ordering::Relaxed) as f64 / t.elapsed().as_secs_f64()
}

/// Round trips (ms, sorted) of PING and of a small clean INSTREAM, taken in turn while
/// `busy` clients stream large files.
fn requests_while_busy(server: &Server, big: &[u8], busy: usize) -> (Vec<f64>, Vec<f64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let wire = instream(big);
    let small = instream(&small_clean_file());
    let (mut ping, mut scan) = (Vec::new(), Vec::new());
    std::thread::scope(|s| {
        for _ in 0..busy {
            let stop = Arc::clone(&stop);
            let wire = &wire;
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let _ = request(&server.sock, wire);
                }
            });
        }
        std::thread::sleep(Duration::from_millis(500));
        for _ in 0..40 {
            let t = Instant::now();
            let _ = request(&server.sock, b"zPING\0");
            ping.push(t.elapsed().as_secs_f64() * 1e3);
            std::thread::sleep(Duration::from_millis(10));
            let t = Instant::now();
            let reply = request(&server.sock, &small);
            if reply.is_some_and(|r| r.ends_with(b"OK\0")) {
                scan.push(t.elapsed().as_secs_f64() * 1e3);
            }
            std::thread::sleep(Duration::from_millis(15));
        }
        stop.store(true, Ordering::Relaxed);
    });
    ping.sort_by(f64::total_cmp);
    scan.sort_by(f64::total_cmp);
    (ping, scan)
}

/// A 4 KiB clean text file, the size of a short mail.
fn small_clean_file() -> Vec<u8> {
    b"moat-bench serve: a small clean request while every worker is busy.\n"
        .iter()
        .copied()
        .cycle()
        .take(4096)
        .collect()
}

/// Median and max of sorted figures (NaN when there are none: every request failed).
fn median_max(sorted: &[f64]) -> (f64, f64) {
    match sorted {
        [] => (f64::NAN, f64::NAN),
        s => (s[s.len() / 2], s[s.len() - 1]),
    }
}

/// The one-signature database, in `dir`.
fn one_sig_db(dir: &Path) -> Result<PathBuf, String> {
    let d = dir.join("db");
    std::fs::create_dir_all(&d).map_err(|e| e.to_string())?;
    std::fs::write(
        d.join("b.ndb"),
        format!("Bench.Marker:0:*:{}\n", hex::encode(corpus::MARKER)),
    )
    .map_err(|e| e.to_string())?;
    Ok(d)
}

/// The database both servers load, as the options and ../shared decide.
fn choose_db(a: &ServeArgs, dir: &Path) -> Result<PathBuf, String> {
    if let Some(d) = &a.db {
        return Ok(d.clone());
    }
    let real = crate::real::default_db();
    if !a.one_sig && real.is_dir() {
        return Ok(real);
    }
    if !a.one_sig {
        eprintln!(
            "moat-bench serve: {} absent: the one-signature database instead",
            real.display()
        );
    }
    one_sig_db(dir)
}

/// The 1-minute load average (the machine is shared: figures are read with it).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

/// One line of the table: label, clamd's figure, moat's, and whether lower is better;
/// `group` and `unit` for BENCHMARKS.md, `target`: moat's advantage it must reach.
struct Row {
    label: String,
    clamd: f64,
    moat: f64,
    lower_is_better: bool,
    group: &'static str,
    unit: &'static str,
    target: Option<f64>,
}

impl Row {
    fn higher(label: String, clamd: f64, moat: f64) -> Row {
        Row {
            label,
            clamd,
            moat,
            lower_is_better: false,
            group: "",
            unit: "",
            target: None,
        }
    }

    fn lower(label: String, clamd: f64, moat: f64) -> Row {
        Row {
            lower_is_better: true,
            ..Row::higher(label, clamd, moat)
        }
    }

    /// The table (`group`) and `unit` of the row in BENCHMARKS.md.
    fn shown(mut self, group: &'static str, unit: &'static str) -> Row {
        self.group = group;
        self.unit = unit;
        self
    }

    /// For BENCHMARKS.md.
    fn result(&self) -> crate::results::Row {
        crate::results::Row {
            group: self.group.to_owned(),
            metric: self.label.clone(),
            unit: self.unit.to_owned(),
            moat: Some(self.moat),
            clamav: Some(self.clamd),
            none: None,
            lower_is_better: self.lower_is_better,
            target: self.target.map(|t| format!(">= {t}x clamd")),
            met: self.target.map(|t| self.ratio() >= t),
            note: None,
        }
    }

    /// moat's advantage (> 1: moat better).
    fn ratio(&self) -> f64 {
        if self.lower_is_better {
            self.clamd / self.moat
        } else {
            self.moat / self.clamd
        }
    }
}

/// Throughput target of issue 14: at least 5x clamd's verdicts per second.
const THROUGHPUT_TARGET: f64 = 5.0;

/// Table of the cache-on throughput rows (both servers' default).
const CACHED: &str = "verdicts per second, clean-verdict cache on (clamd's default)";
/// Table of the `DisableCache yes` rows: every request scanned, the engine-bound figure.
const UNCACHED: &str = "verdicts per second, DisableCache yes (every request scanned)";

fn throughput_rows(
    servers: &[Server],
    corpus: &corpus::Corpus,
    secs: u64,
    group: &'static str,
) -> Vec<Row> {
    let mut rows = Vec::new();
    let suffix = if group == UNCACHED {
        ", DisableCache yes"
    } else {
        ""
    };
    for fd in [false, true] {
        for clients in [1, 8, 64] {
            let label = format!(
                "{} verdicts/s, {clients} clients{suffix}",
                if fd { "FILDES" } else { "INSTREAM" }
            );
            let load = load_average();
            let c = throughput(&servers[0], corpus, clients, fd, secs);
            let m = throughput(&servers[1], corpus, clients, fd, secs);
            eprintln!("{label}: clamd {c:.0}, moat {m:.0} (load {load})");
            let mut row = Row::higher(label, c, m).shown(group, "verdicts/s");
            row.target = Some(THROUGHPUT_TARGET);
            rows.push(row);
        }
    }
    rows
}

/// VmRSS of both servers after the throughput points, once idle for a while (what a
/// server holds at rest after a burst of scans).
fn rest_rss_rows(servers: &[Server], label: &str) -> Vec<Row> {
    std::thread::sleep(Duration::from_secs(3));
    let mib = |s: &Server| reload::rss_kib(s.pid()).unwrap_or(0) as f64 / 1024.0;
    let (c, m) = (mib(&servers[0]), mib(&servers[1]));
    eprintln!("RSS at rest {label}: clamd {c:.0} MiB, moat {m:.0} MiB");
    vec![Row::lower(format!("RSS at rest {label}"), c, m).shown("memory", "MiB")]
}

/// Table of the requests answered while every worker is busy.
const BUSY: &str = "small requests while every worker is busy with large streams";

fn ping_rows(servers: &[Server], threads: u32) -> Vec<Row> {
    let big: Vec<u8> = (0..(20usize << 20))
        .map(|j| b"0123456789 abcdef\n"[j % 18])
        .collect();
    let busy = 2 * threads as usize;
    let load = load_average();
    let (c_ping, c_scan) = requests_while_busy(&servers[0], &big, busy);
    let (m_ping, m_scan) = requests_while_busy(&servers[1], &big, busy);
    eprintln!(
        "busy: {}/40 and {}/40 small INSTREAMs answered OK by clamd and moat (load {load})",
        c_scan.len(),
        m_scan.len()
    );
    let mut rows = Vec::new();
    for (what, c, m) in [("PING", c_ping, m_ping), ("4 KiB INSTREAM", c_scan, m_scan)] {
        let ((c50, cmax), (m50, mmax)) = (median_max(&c), median_max(&m));
        rows.push(
            Row::lower(
                format!("{what} ms median, {busy} 20 MiB streams busy"),
                c50,
                m50,
            )
            .shown(BUSY, "ms"),
        );
        rows.push(
            Row::lower(
                format!("{what} ms max, {busy} 20 MiB streams busy"),
                cmax,
                mmax,
            )
            .shown(BUSY, "ms"),
        );
    }
    rows
}

fn print_table(rows: &[Row]) {
    println!(
        "{:<48} {:>12} {:>12} {:>8}",
        "serve", "clamd", "moat", "ratio"
    );
    for r in rows {
        println!(
            "{:<48} {:>12.2} {:>12.2} {:>7.2}x",
            r.label,
            r.clamd,
            r.moat,
            r.ratio()
        );
    }
}

/// Runs the suite.
pub fn run(a: ServeArgs, data_dir: &Path, workspace: &Path) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let db = choose_db(&a, dir.path())?;
    let moat = a
        .moat
        .clone()
        .unwrap_or_else(|| workspace.join("target/release/moat"));
    let corpus = match a.corpus {
        CorpusKind::Real => corpus::real()?,
        CorpusKind::Generated => corpus::generated(&dir.path().join("corpus"))?,
    };
    eprintln!(
        "database: {}; corpus: {} ({} files, {} bytes); {} s per point; load average {}",
        db.display(),
        corpus.describe,
        corpus.files.len(),
        corpus.bytes,
        a.seconds,
        load_average()
    );
    let mut rows = Vec::new();
    if !a.busy_only {
        // Engine-bound first: both servers with DisableCache yes, then stopped.
        let uncached = [
            start(
                "clamd-nocache",
                dir.path(),
                &db,
                a.threads,
                &moat,
                "DisableCache yes\n",
            )?,
            start(
                "moat-nocache",
                dir.path(),
                &db,
                a.threads,
                &moat,
                "DisableCache yes\n",
            )?,
        ];
        rows.extend(throughput_rows(&uncached, &corpus, a.seconds, UNCACHED));
        rows.extend(rest_rss_rows(&uncached, "after the DisableCache yes runs"));
    }
    let mut servers = Vec::new();
    for name in ["clamd", "moat"] {
        servers.push(start(name, dir.path(), &db, a.threads, &moat, "")?);
    }
    if !a.busy_only {
        let cached = throughput_rows(&servers, &corpus, a.seconds, CACHED);
        rows.splice(0..0, cached);
    }
    rows.extend(ping_rows(&servers, a.threads));
    if !a.no_reload && !a.busy_only {
        let c = reload::measure(&servers[0], &corpus)?;
        let m = reload::measure(&servers[1], &corpus)?;
        rows.extend(
            reload::rows(&c, &m)
                .into_iter()
                .map(|r| r.shown("RELOAD while 8 clients scan", "")),
        );
    }
    let load = load_average();
    print_table(&rows);
    println!("load average (1 min) at the end: {load}; 2 cores shared with other work");
    // For `moat-bench report` (BENCHMARKS.md), as the other suites.
    let mut results = crate::results::Results::new("serve");
    results.rows = rows.iter().map(Row::result).collect();
    for r in &mut results.rows {
        r.note = Some(format!(
            "{}; {} s per point; MaxThreads {}; load average {load} at the end",
            corpus.describe, a.seconds, a.threads
        ));
    }
    for name in ["clamd", "moat"] {
        let conf = dir.path().join(format!("{name}.conf"));
        let program = if name == "clamd" {
            "clamd".to_owned()
        } else {
            format!("{} serve", moat.display())
        };
        results.commands.push((
            format!(
                "{name} (database {}; DisableCache yes for the uncached rows)",
                db.display()
            ),
            format!(
                "{program} -c CONF  # {}",
                std::fs::read_to_string(&conf)
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| !l.contains(&*dir.path().to_string_lossy()))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        ));
    }
    results.save(&crate::scan::results_path(data_dir, "serve"))?;
    drop(servers);
    Ok(())
}
