//! Black-box measurements: when is a directory covered, and what does an open() cost.
//!
//! Coverage: a forked child drops to uid/gid 65534 and opens every probe file in a loop,
//! every [`POLL`]. While a probe directory is not covered the open just succeeds (nothing
//! scans it, so no verdict is cached); once it is, the daemon finds the marker and the open
//! fails with EPERM. The child reports each probe's first EPERM (or any other error) to
//! the parent as a fixed-size record on a pipe, with a `CLOCK_MONOTONIC` timestamp taken
//! just before that open, and stops polling that probe. After `fork` the child only makes
//! async-signal-safe calls (setgroups/setgid/setuid, open, close, write, nanosleep,
//! clock_gettime, _exit) on memory prepared before the fork: the parent may have threads.
//!
//! Latency: the benchmark process itself (root: neither product is configured to exclude
//! it) opens each clean file, reads one byte and closes it, timing `open()` alone and the
//! whole sequence.

use super::daemon::{self, mono_ns, Watchdog};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Interval between two rounds of probe opens.
pub const POLL: Duration = Duration::from_millis(2);

/// The unprivileged identity probes run as (`nobody`/`nogroup` on Debian).
pub const PROBE_ID: libc::uid_t = 65534;

/// One report from the prober: `errno` of the first failed open of probe `index`.
#[derive(Clone, Copy, Debug)]
pub struct Event {
    /// Index into the probe list; `u32::MAX` when the prober itself failed to start.
    pub index: u32,
    /// `EPERM` when covered, anything else is an error.
    pub errno: i32,
    /// [`mono_ns`] just before that open.
    pub at: u64,
}

const RECORD: usize = 16;

/// Encodes an event into a pipe record (one atomic write, far below PIPE_BUF).
fn encode(index: u32, errno: i32, at: u64) -> [u8; RECORD] {
    let mut r = [0u8; RECORD];
    r[..4].copy_from_slice(&index.to_ne_bytes());
    r[4..8].copy_from_slice(&errno.to_ne_bytes());
    r[8..].copy_from_slice(&at.to_ne_bytes());
    r
}

fn decode(r: &[u8]) -> Event {
    Event {
        index: u32::from_ne_bytes(r[..4].try_into().expect("4 bytes")),
        errno: i32::from_ne_bytes(r[4..8].try_into().expect("4 bytes")),
        at: u64::from_ne_bytes(r[8..16].try_into().expect("8 bytes")),
    }
}

fn cstring(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("paths have no NUL")
}

/// The forked polling child. Killed and reaped on drop.
pub struct Prober {
    pid: libc::pid_t,
    read_fd: libc::c_int,
    pending: Vec<u8>,
}

impl Prober {
    /// Forks the child, which starts polling `files` at once.
    pub fn start(files: &[PathBuf]) -> Result<Prober, String> {
        let paths: Vec<CString> = files.iter().map(|p| cstring(p)).collect();
        let ptrs: Vec<*const libc::c_char> = paths.iter().map(|c| c.as_ptr()).collect();
        // Per-probe "done" flags live in memory allocated before the fork (copied on write).
        let mut done = vec![false; ptrs.len()];
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` has room for the two descriptors.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(format!("pipe: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: the child runs only `probe_loop`, which makes async-signal-safe calls on
        // memory prepared above, and never returns.
        match unsafe { libc::fork() } {
            -1 => Err(format!("fork: {}", std::io::Error::last_os_error())),
            0 => unsafe { probe_loop(fds[1], &ptrs, &mut done) },
            pid => {
                // SAFETY: closing our copy of the write end, which we own.
                unsafe { libc::close(fds[1]) };
                Ok(Prober {
                    pid,
                    read_fd: fds[0],
                    pending: Vec::new(),
                })
            }
        }
    }

    /// Waits up to `timeout` for reports and returns those that arrived.
    pub fn poll(&mut self, timeout: Duration) -> Result<Vec<Event>, String> {
        let mut pfd = libc::pollfd {
            fd: self.read_fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, timeout.as_millis() as libc::c_int) };
        if n <= 0 {
            return Ok(Vec::new());
        }
        let mut buf = [0u8; RECORD * 64];
        // SAFETY: reading into a buffer we own, of the given length.
        let got = unsafe { libc::read(self.read_fd, buf.as_mut_ptr().cast(), buf.len()) };
        if got == 0 {
            // End of file: the child exited (it does once every probe is resolved).
            return Ok(Vec::new());
        }
        if got < 0 {
            return Err(format!("prober pipe: {}", std::io::Error::last_os_error()));
        }
        self.pending.extend_from_slice(&buf[..got as usize]);
        let whole = self.pending.len() / RECORD * RECORD;
        let events = self.pending[..whole].chunks(RECORD).map(decode).collect();
        self.pending.drain(..whole);
        Ok(events)
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        // SAFETY: our own child and our own fd.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            libc::waitpid(self.pid, std::ptr::null_mut(), 0);
            libc::close(self.read_fd);
        }
    }
}

/// The child: drop privileges, then poll until every probe is resolved.
///
/// # Safety
/// Must only be called in a freshly forked child; `paths` must point to valid C strings.
unsafe fn probe_loop(out: libc::c_int, paths: &[*const libc::c_char], done: &mut [bool]) -> ! {
    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    // Groups first, then gid, then uid: once the uid is dropped the others cannot change.
    if libc::setgroups(0, std::ptr::null()) != 0
        || libc::setgid(PROBE_ID) != 0
        || libc::setuid(PROBE_ID) != 0
    {
        report(out, u32::MAX, *libc::__errno_location(), mono_ns());
        libc::_exit(1);
    }
    let nap = libc::timespec {
        tv_sec: 0,
        tv_nsec: POLL.as_nanos() as libc::c_long,
    };
    let mut left = paths.len();
    while left > 0 {
        for (i, &path) in paths.iter().enumerate() {
            if done[i] {
                continue;
            }
            let at = mono_ns();
            let fd = libc::open(path, libc::O_RDONLY | libc::O_CLOEXEC);
            if fd >= 0 {
                libc::close(fd);
                continue;
            }
            report(out, i as u32, *libc::__errno_location(), at);
            done[i] = true;
            left -= 1;
        }
        libc::nanosleep(&nap, std::ptr::null_mut());
    }
    libc::_exit(0)
}

/// One record to the parent (async-signal-safe: a single write of a stack buffer).
unsafe fn report(out: libc::c_int, index: u32, errno: i32, at: u64) {
    let r = encode(index, errno, at);
    libc::write(out, r.as_ptr().cast(), RECORD);
}

/// Opens `path` once as root: `Ok(())` when allowed, `Err(errno)` when refused.
pub fn open_as_root(path: &Path) -> Result<(), i32> {
    let c = cstring(path);
    // SAFETY: a valid C string; the fd is closed at once.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    // SAFETY: our own fd.
    unsafe { libc::close(fd) };
    Ok(())
}

/// Timings of one pass over the clean files, in microseconds.
#[derive(Clone, Debug, Default)]
pub struct Pass {
    /// `open()` alone.
    pub open_us: Vec<f64>,
    /// `open()` + `read(1)` + `close()`.
    pub total_us: Vec<f64>,
}

/// Opens each file once (open, read 1 byte, close), timing each. The watchdog is ticked
/// after every file, so a daemon that stops answering is killed instead of hanging us.
pub fn time_pass(files: &[CString], dog: &Watchdog) -> Result<Pass, String> {
    let mut pass = Pass::default();
    let mut byte = [0u8; 1];
    for (i, f) in files.iter().enumerate() {
        daemon::check_interrupted()?;
        let t0 = Instant::now();
        // SAFETY: a valid C string; the fd is closed below.
        let fd = unsafe { libc::open(f.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        let t1 = Instant::now();
        if fd < 0 {
            let err = std::io::Error::last_os_error();
            return Err(format!("clean file {i} ({f:?}) refused: {err}"));
        }
        // SAFETY: reading one byte into our buffer from our fd, then closing it.
        let n = unsafe { libc::read(fd, byte.as_mut_ptr().cast(), 1) };
        unsafe { libc::close(fd) };
        let t2 = Instant::now();
        if n != 1 {
            return Err(format!("clean file {i} ({f:?}): read returned {n}"));
        }
        pass.open_us.push((t1 - t0).as_secs_f64() * 1e6);
        pass.total_us.push((t2 - t0).as_secs_f64() * 1e6);
        dog.tick();
    }
    if dog.fired() {
        return Err("the watchdog killed the daemon (no progress for 10 s)".to_string());
    }
    Ok(pass)
}

/// The clean files as C strings, prepared once so conversion is not timed.
pub fn cstrings(files: &[PathBuf]) -> Vec<CString> {
    files.iter().map(|p| cstring(p)).collect()
}

/// The `q`-quantile (nearest rank) of `v`, or NaN when empty.
pub fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let rank = (q * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let e = decode(&encode(3, libc::EPERM, 123_456_789));
        assert_eq!((e.index, e.errno, e.at), (3, libc::EPERM, 123_456_789));
    }

    #[test]
    fn nearest_rank_quantiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&[7.0], 0.99), 7.0);
        assert!(quantile(&[], 0.5).is_nan());
    }
}
