//! Timed opens of a file list by an unprivileged process.
//!
//! A forked child drops to uid/gid 65534 ([`PROBE_ID`]) and opens every file of the list,
//! once per pass, timing `open()` alone with `CLOCK_MONOTONIC`; it reports each open as a
//! fixed-size record on a pipe as soon as it is done, so the parent sees progress. After
//! `fork` the child makes only async-signal-safe calls on memory prepared before the fork
//! (the parent has threads). The parent bounds the whole thing: when no record arrives for
//! `stall`, it kills the daemons (the kernel then allows every pending event, so the child
//! goes on) and the pass is reported as not finished.

use crate::watch::daemon::{self, mono_ns};
use crate::watch::probe::PROBE_ID;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const RECORD: usize = 16;

/// One open: which pass, which file, how long `open()` took, its errno (0: opened).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Opened {
    /// 0 for the first pass, 1 for the second...
    pub pass: u16,
    /// Index into the file list.
    pub index: u32,
    /// `open()` alone, nanoseconds.
    pub ns: u64,
    /// 0 when the open succeeded, else its errno.
    pub errno: i16,
}

fn encode(o: Opened) -> [u8; RECORD] {
    let mut r = [0u8; RECORD];
    r[..2].copy_from_slice(&o.pass.to_ne_bytes());
    r[2..4].copy_from_slice(&o.errno.to_ne_bytes());
    r[4..8].copy_from_slice(&o.index.to_ne_bytes());
    r[8..].copy_from_slice(&o.ns.to_ne_bytes());
    r
}

fn decode(r: &[u8]) -> Opened {
    Opened {
        pass: u16::from_ne_bytes(r[..2].try_into().expect("2 bytes")),
        errno: i16::from_ne_bytes(r[2..4].try_into().expect("2 bytes")),
        index: u32::from_ne_bytes(r[4..8].try_into().expect("4 bytes")),
        ns: u64::from_ne_bytes(r[8..16].try_into().expect("8 bytes")),
    }
}

/// What the parent collected.
#[derive(Debug, Default)]
pub struct Passes {
    /// Every open reported, in order.
    pub opens: Vec<Opened>,
    /// Whether the stall watchdog killed the daemons (the figures after that are not the
    /// product's).
    pub killed_daemons: bool,
    /// Whether the child failed to drop privileges.
    pub setup_failed: Option<i32>,
}

impl Passes {
    /// `open()` times of pass `p` in milliseconds, in file order, successful opens only.
    pub fn ms(&self, p: u16) -> Vec<f64> {
        self.opens
            .iter()
            .filter(|o| o.pass == p && o.errno == 0)
            .map(|o| o.ns as f64 / 1e6)
            .collect()
    }

    /// Opens of pass `p` that failed, as `(index, errno)`.
    pub fn failures(&self, p: u16) -> Vec<(u32, i16)> {
        self.opens
            .iter()
            .filter(|o| o.pass == p && o.errno != 0)
            .map(|o| (o.index, o.errno))
            .collect()
    }
}

/// Opens every file of `files` `passes` times as uid 65534; kills `daemons` if no open
/// completes for `stall`.
pub fn run(
    files: &[PathBuf],
    passes: u16,
    daemons: &[i32],
    stall: Duration,
) -> Result<Passes, String> {
    run_concurrent(files, passes, 1, daemons, stall)
}

/// [`run`] by `children` processes at once, each opening the whole list in the same order
/// (like the processes of a parallel build starting together); child `c`'s pass `p` is
/// reported as pass `c * passes + p`.
pub fn run_concurrent(
    files: &[PathBuf],
    passes: u16,
    children: u16,
    daemons: &[i32],
    stall: Duration,
) -> Result<Passes, String> {
    let paths: Vec<CString> = files
        .iter()
        .map(|p| CString::new(p.as_os_str().as_bytes()).expect("paths have no NUL"))
        .collect();
    let ptrs: Vec<*const libc::c_char> = paths.iter().map(|c| c.as_ptr()).collect();
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    let mut pids = Vec::new();
    for c in 0..children {
        // SAFETY: the child runs only `open_loop` (async-signal-safe calls on memory
        // prepared above) and never returns.
        match unsafe { libc::fork() } {
            -1 => break,
            0 => unsafe { open_loop(fds[1], &ptrs, c * passes, passes) },
            pid => pids.push(pid),
        }
    }
    // SAFETY: our copy of the write end, which we own.
    unsafe { libc::close(fds[1]) };
    let out = if pids.len() < usize::from(children) {
        Err(format!("fork: {}", std::io::Error::last_os_error()))
    } else {
        collect(fds[0], daemons, stall)
    };
    // SAFETY: our own children and our own fd.
    unsafe {
        for &pid in &pids {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
        libc::close(fds[0]);
    }
    out
}

/// Reads records until the child closes the pipe (it has finished).
fn collect(fd: libc::c_int, daemons: &[i32], stall: Duration) -> Result<Passes, String> {
    let mut got = Passes::default();
    let mut pending: Vec<u8> = Vec::new();
    let mut last = Instant::now();
    loop {
        daemon::check_interrupted()?;
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, 100) };
        if n > 0 {
            let mut buf = [0u8; RECORD * 256];
            // SAFETY: reading into a buffer we own, of the given length.
            let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            if r == 0 {
                return Ok(got);
            }
            if r < 0 {
                return Err(format!("opener pipe: {}", std::io::Error::last_os_error()));
            }
            pending.extend_from_slice(&buf[..r as usize]);
            let whole = pending.len() / RECORD * RECORD;
            for rec in pending[..whole].chunks(RECORD) {
                let o = decode(rec);
                if o.pass == u16::MAX {
                    got.setup_failed = Some(i32::from(o.errno));
                } else {
                    got.opens.push(o);
                }
            }
            pending.drain(..whole);
            last = Instant::now();
        } else if last.elapsed() > stall && !got.killed_daemons {
            for &p in daemons.iter().filter(|&&p| p > 0) {
                // SAFETY: plain syscall on our own children.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
            got.killed_daemons = true;
        }
    }
}

/// The child: drop privileges, open every file `passes` times (reported as passes
/// `first_pass..`), report each open.
///
/// # Safety
/// Only in a freshly forked child; `paths` must point to valid C strings.
unsafe fn open_loop(
    out: libc::c_int,
    paths: &[*const libc::c_char],
    first_pass: u16,
    passes: u16,
) -> ! {
    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    if libc::setgroups(0, std::ptr::null()) != 0
        || libc::setgid(PROBE_ID) != 0
        || libc::setuid(PROBE_ID) != 0
    {
        let errno = *libc::__errno_location() as i16;
        let r = encode(Opened {
            pass: u16::MAX,
            index: 0,
            ns: 0,
            errno,
        });
        libc::write(out, r.as_ptr().cast(), RECORD);
        libc::_exit(1);
    }
    for pass in first_pass..first_pass + passes {
        for (i, &path) in paths.iter().enumerate() {
            let t0 = mono_ns();
            let fd = libc::open(path, libc::O_RDONLY | libc::O_CLOEXEC);
            let t1 = mono_ns();
            let errno = if fd < 0 {
                *libc::__errno_location() as i16
            } else {
                libc::close(fd);
                0
            };
            let r = encode(Opened {
                pass,
                index: i as u32,
                ns: t1 - t0,
                errno,
            });
            libc::write(out, r.as_ptr().cast(), RECORD);
        }
    }
    libc::_exit(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let o = Opened {
            pass: 1,
            index: 77,
            ns: 123_456_789,
            errno: libc::EPERM as i16,
        };
        assert_eq!(decode(&encode(o)), o);
    }
}
