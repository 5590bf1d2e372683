//! Load measurements: verdict throughput with concurrent openers, and the CPU time a
//! daemon spends (from `/proc/PID/stat`).
//!
//! Throughput: N threads of this process (root: scanned by every product) each open, read
//! one byte of and close their share of files nobody opened while the product ran, so
//! every open needs a verdict. Wall time runs from the moment all threads are released
//! (a barrier) until the last one is done; verdicts per second = files / wall time.

use super::daemon::{self, Watchdog};
use std::ffi::CString;
use std::sync::Barrier;
use std::time::Instant;

/// The opener counts measured.
pub const OPENERS: [usize; 3] = [1, 4, 16];

/// The bar labels for [`OPENERS`].
pub fn opener_label(n: usize) -> String {
    if n == 1 {
        "1 opener".to_string()
    } else {
        format!("{n} openers")
    }
}

/// Files per second (0 when no time passed).
pub fn per_second(files: usize, secs: f64) -> f64 {
    if secs > 0.0 {
        files as f64 / secs
    } else {
        0.0
    }
}

/// Splits `n` items over `k` workers as evenly as possible: `(start, end)` per worker.
pub fn shares(n: usize, k: usize) -> Vec<(usize, usize)> {
    let k = k.max(1);
    (0..k).map(|i| (i * n / k, (i + 1) * n / k)).collect()
}

/// Opens every file of `files` once with `openers` threads; returns opens per second.
/// Each thread notes when it was released and when it finished: the wall time is from the
/// first release to the last finish (the main thread may be scheduled after the work on
/// two cores, so it does not time it itself).
pub fn throughput(files: &[CString], openers: usize, dog: &Watchdog) -> Result<f64, String> {
    let barrier = Barrier::new(openers);
    let failed = std::sync::Mutex::new(None::<String>);
    let spans: Vec<(Instant, Instant)> = std::thread::scope(|s| {
        let handles: Vec<_> = shares(files.len(), openers)
            .into_iter()
            .map(|(a, b)| {
                let (barrier, failed) = (&barrier, &failed);
                let chunk = &files[a..b];
                s.spawn(move || {
                    barrier.wait();
                    let t0 = Instant::now();
                    let mut byte = [0u8; 1];
                    for f in chunk {
                        // SAFETY: a valid C string; the fd is closed below.
                        let fd =
                            unsafe { libc::open(f.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
                        if fd < 0 {
                            let e = std::io::Error::last_os_error();
                            *failed.lock().unwrap() = Some(format!("{f:?}: {e}"));
                            break;
                        }
                        // SAFETY: our buffer, our fd.
                        unsafe {
                            libc::read(fd, byte.as_mut_ptr().cast(), 1);
                            libc::close(fd);
                        }
                        dog.tick();
                        if daemon::interrupted() {
                            break;
                        }
                    }
                    (t0, Instant::now())
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    daemon::check_interrupted()?;
    if let Some(e) = failed.into_inner().unwrap() {
        return Err(format!("throughput open refused: {e}"));
    }
    if dog.fired() {
        return Err("the watchdog killed the daemon (no progress for 10 s)".to_string());
    }
    Ok(per_second(files.len(), wall_secs(&spans)))
}

/// From the earliest start to the latest end of `spans`, in seconds.
pub fn wall_secs(spans: &[(Instant, Instant)]) -> f64 {
    let (Some(a), Some(b)) = (
        spans.iter().map(|s| s.0).min(),
        spans.iter().map(|s| s.1).max(),
    ) else {
        return 0.0;
    };
    b.saturating_duration_since(a).as_secs_f64()
}

/// utime + stime of a process (all its threads) from the text of `/proc/PID/stat`, in
/// clock ticks. The command name may hold spaces and parentheses: fields are counted from
/// the last `)`.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// CPU time (user + system) of `pid` so far, in milliseconds.
pub fn cpu_ms(pid: i32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // SAFETY: plain libc call.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as f64 } else { 100.0 };
    Some(parse_stat_ticks(&text)? as f64 * 1e3 / hz)
}

/// CPU ms spent between two readings, normalised to `per` operations out of `ops`.
pub fn per_ops(before: f64, after: f64, ops: usize, per: f64) -> f64 {
    if ops == 0 {
        return f64::NAN;
    }
    (after - before).max(0.0) * per / ops as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_the_command_name() {
        let s = "1234 (moat (watch) x) S 1 1234 1234 0 -1 4194560 500 0 0 0 17 5 0 0 20 0 3 0";
        assert_eq!(parse_stat_ticks(s), Some(22));
        assert_eq!(parse_stat_ticks("1 (x) S 1"), None);
        assert_eq!(parse_stat_ticks("no parens"), None);
    }

    #[test]
    fn shares_cover_everything_once() {
        let s = shares(4000, 16);
        assert_eq!(s.len(), 16);
        assert_eq!(s[0].0, 0);
        assert_eq!(s[15].1, 4000);
        assert!(s.windows(2).all(|w| w[0].1 == w[1].0));
        assert_eq!(shares(3, 4).iter().map(|(a, b)| b - a).sum::<usize>(), 3);
    }

    #[test]
    fn throughput_and_cpu_arithmetic() {
        assert_eq!(per_second(4000, 2.0), 2000.0);
        assert_eq!(per_second(10, 0.0), 0.0);
        assert_eq!(per_ops(100.0, 150.0, 5000, 10_000.0), 100.0);
        assert!(per_ops(0.0, 1.0, 0, 10_000.0).is_nan());
        assert_eq!(opener_label(1), "1 opener");
        assert_eq!(opener_label(16), "16 openers");
        let t = Instant::now();
        let ms = std::time::Duration::from_millis;
        assert_eq!(
            wall_secs(&[(t + ms(10), t + ms(500)), (t, t + ms(250))]),
            0.5
        );
        assert_eq!(wall_secs(&[]), 0.0);
    }
}
