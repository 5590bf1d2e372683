//! A RELOAD under load: memory and answers while a server loads its database again.
//!
//! Eight clients keep sending INSTREAM requests; a sampler reads the server's VmRSS every
//! 5 ms (VmHWM would include the first load's peak). RELOAD is sent, and the reload is over
//! when the server's log says `correctly reloaded` (clamd: "Database correctly reloaded.",
//! moat: "database correctly reloaded") once more than before.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{corpus::Corpus, is_verdict, request, Row, Server};

/// What one reload measured.
pub struct Reload {
    /// VmRSS just before RELOAD (KiB).
    before_kib: u64,
    /// The highest VmRSS sampled from RELOAD to the end of the reload (KiB).
    peak_kib: u64,
    /// From RELOAD to the log line.
    took: Duration,
    /// Verdicts answered during it.
    answered: usize,
    /// The longest time with no verdict answered during it.
    longest_gap: Duration,
}

/// The process's VmRSS in KiB.
pub(super) fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// How many reloads the server's log reports so far.
fn reloads_logged(server: &Server) -> usize {
    std::fs::read_to_string(&server.log)
        .map(|s| s.to_ascii_lowercase().matches("correctly reloaded").count())
        .unwrap_or(0)
}

/// Peak VmRSS sampled every 5 ms until `stop`.
fn sample_peak(pid: u32, stop: &AtomicBool, peak: &AtomicU64) {
    while !stop.load(Ordering::Relaxed) {
        if let Some(kib) = rss_kib(pid) {
            peak.fetch_max(kib, Ordering::Relaxed);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// INSTREAM requests in a loop until `stop`; the time of each verdict into `times`.
fn scan_loop(server: &Server, corpus: &Corpus, first: usize, stop: &AtomicBool) -> Vec<Instant> {
    let mut times = Vec::new();
    let mut k = first;
    while !stop.load(Ordering::Relaxed) {
        if request(&server.sock, &corpus.streams[k % corpus.streams.len()])
            .is_some_and(|r| is_verdict(&r))
        {
            times.push(Instant::now());
        }
        k += 8;
    }
    times
}

/// RELOADs `server` while 8 clients scan; see the module's description.
pub fn measure(server: &Server, corpus: &Corpus) -> Result<Reload, String> {
    let pid = server.pid();
    let before_count = reloads_logged(server);
    let (stop_scans, stop_sampler) = (AtomicBool::new(false), AtomicBool::new(false));
    let peak = AtomicU64::new(0);
    let times = Mutex::new(Vec::new());
    let mut window = None;
    let mut failure = None;
    std::thread::scope(|s| {
        for i in 0..8 {
            let (stop, times) = (&stop_scans, &times);
            s.spawn(move || {
                let t = scan_loop(server, corpus, i, stop);
                times.lock().unwrap_or_else(|p| p.into_inner()).extend(t);
            });
        }
        std::thread::sleep(Duration::from_millis(500));
        let before_kib = rss_kib(pid).unwrap_or(0);
        s.spawn(|| sample_peak(pid, &stop_sampler, &peak));
        let t0 = Instant::now();
        let reply = request(&server.sock, b"zRELOAD\0");
        if reply.as_deref() != Some(&b"RELOADING\0"[..]) {
            failure = Some(format!("{}: RELOAD answered {reply:?}", server.name));
        }
        while failure.is_none() && reloads_logged(server) <= before_count {
            if t0.elapsed() > Duration::from_secs(300) {
                failure = Some(format!("{}: no reload logged in 300 s", server.name));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let t1 = Instant::now();
        stop_sampler.store(true, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(300));
        stop_scans.store(true, Ordering::Relaxed);
        window = Some((t0, t1, before_kib));
    });
    if let Some(f) = failure {
        return Err(f);
    }
    let (t0, t1, before_kib) = window.expect("set in the scope");
    let mut during: Vec<Instant> = times
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .filter(|t| (t0..=t1).contains(t))
        .collect();
    during.sort();
    let answered = during.len();
    let edges = std::iter::once(t0)
        .chain(during)
        .chain(std::iter::once(t1))
        .collect::<Vec<_>>();
    let longest_gap = edges
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    let r = Reload {
        before_kib,
        peak_kib: peak.load(Ordering::Relaxed).max(before_kib),
        took: t1 - t0,
        answered,
        longest_gap,
    };
    eprintln!(
        "{} RELOAD: {:.2} s, RSS {} -> peak {} KiB, {} verdicts during it, longest gap {:.0} ms",
        server.name,
        r.took.as_secs_f64(),
        r.before_kib,
        r.peak_kib,
        r.answered,
        r.longest_gap.as_secs_f64() * 1e3
    );
    Ok(r)
}

/// The table rows comparing clamd's reload (`c`) with moat's (`m`).
pub fn rows(c: &Reload, m: &Reload) -> Vec<Row> {
    let mib = |kib: u64| kib as f64 / 1024.0;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let growth = |r: &Reload| r.peak_kib as f64 / r.before_kib.max(1) as f64;
    vec![
        Row::lower(
            "RELOAD: RSS before, MiB".into(),
            mib(c.before_kib),
            mib(m.before_kib),
        ),
        Row::lower(
            "RELOAD: peak RSS during, MiB".into(),
            mib(c.peak_kib),
            mib(m.peak_kib),
        ),
        Row::lower("RELOAD: peak / before".into(), growth(c), growth(m)),
        Row::lower(
            "RELOAD: seconds to reloaded".into(),
            c.took.as_secs_f64(),
            m.took.as_secs_f64(),
        ),
        Row::higher(
            "RELOAD: verdicts/s during it (8 clients)".into(),
            c.answered as f64 / c.took.as_secs_f64().max(1e-3),
            m.answered as f64 / m.took.as_secs_f64().max(1e-3),
        ),
        Row::lower(
            "RELOAD: longest gap without a verdict, ms".into(),
            ms(c.longest_gap),
            ms(m.longest_gap),
        ),
    ]
}
