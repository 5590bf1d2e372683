//! Unprivileged openers for the attack suite: a forked child drops to a uid and opens a list
//! of files, timing each `open()` + `read(1)` + `close()` and streaming one record per open
//! to the parent through a pipe (written after the clock stops, so the pipe is not timed).
//!
//! The child runs only async-signal-safe calls (setgroups/setgid/setuid, open, read, close,
//! clock_gettime, write, _exit) on memory prepared before the fork: the parent may have
//! threads (the FUSE server, the watchdog).

use super::super::daemon::mono_ns;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// One open as seen by the opener: nanoseconds, or the errno when it failed.
pub type Record = Result<u64, i32>;

/// What the child does with its list.
#[derive(Clone, Copy)]
pub enum Mode {
    /// Opens the list `n` times over (cycling) and reports each open.
    Timed(usize),
    /// Opens the list round and round, from `start`, reporting nothing, until killed.
    Flood(usize),
}

/// A running opener (killed and reaped on drop).
pub struct Opener {
    pid: libc::pid_t,
    out: libc::c_int,
}

fn cstrings(paths: &[PathBuf]) -> Vec<CString> {
    paths
        .iter()
        .map(|p| CString::new(p.as_os_str().as_bytes()).expect("no NUL in a path"))
        .collect()
}

impl Opener {
    /// Forks a child that runs as `uid` (and gid `uid`) over `paths`.
    pub fn spawn(uid: u32, paths: &[PathBuf], mode: Mode) -> Result<Opener, String> {
        let c = cstrings(paths);
        let ptrs: Vec<*const libc::c_char> = c.iter().map(|s| s.as_ptr()).collect();
        let mut fds = [0; 2];
        // SAFETY: a valid two-int array.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(format!("pipe: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: the child only runs `child_loop` (async-signal-safe calls on memory
        // prepared above) and `_exit`s.
        match unsafe { libc::fork() } {
            -1 => Err(format!("fork: {}", std::io::Error::last_os_error())),
            0 => unsafe {
                libc::close(fds[0]);
                child_loop(fds[1], uid, &ptrs, mode)
            },
            pid => {
                // SAFETY: our own fd.
                unsafe { libc::close(fds[1]) };
                Ok(Opener { pid, out: fds[0] })
            }
        }
    }

    /// Reads records until the child ends (or is killed); reaps it.
    pub fn collect(mut self) -> Vec<Record> {
        let mut out = Vec::new();
        let mut buf = [0u8; 8];
        loop {
            // SAFETY: reading into our 8-byte buffer; records are written whole (8 bytes
            // < PIPE_BUF, so atomically).
            let n = unsafe { libc::read(self.out, buf.as_mut_ptr().cast(), 8) };
            if n != 8 {
                break;
            }
            let v = u64::from_ne_bytes(buf);
            out.push(if v >> 63 == 1 {
                Err((v & 0xffff) as i32)
            } else {
                Ok(v)
            });
        }
        self.reap();
        out
    }

    /// The child's pid.
    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }

    fn reap(&mut self) {
        if self.pid > 0 {
            let mut st = 0;
            // SAFETY: our own child.
            unsafe { libc::waitpid(self.pid, &mut st, 0) };
            self.pid = 0;
        }
    }
}

impl Drop for Opener {
    fn drop(&mut self) {
        if self.pid > 0 {
            // SAFETY: our own child.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            self.reap();
        }
        // SAFETY: our own fd.
        unsafe { libc::close(self.out) };
    }
}

/// Sends one record: the latency, or the errno with the top bit set.
unsafe fn send(out: libc::c_int, rec: Record) {
    let v = match rec {
        Ok(ns) => ns & !(1 << 63),
        Err(e) => (1 << 63) | e as u64,
    };
    let b = v.to_ne_bytes();
    libc::write(out, b.as_ptr().cast(), 8);
}

/// Open, read one byte, close: the errno of the first failing step.
unsafe fn open_read(path: *const libc::c_char) -> Result<(), i32> {
    let fd = libc::open(path, libc::O_RDONLY | libc::O_CLOEXEC);
    if fd < 0 {
        return Err(*libc::__errno_location());
    }
    let mut byte = 0u8;
    let n = libc::read(fd, (&mut byte as *mut u8).cast(), 1);
    let e = *libc::__errno_location();
    libc::close(fd);
    if n < 0 {
        Err(e)
    } else {
        Ok(())
    }
}

/// The child: drop privileges, open, report, `_exit`.
///
/// # Safety
/// Only in a freshly forked child.
unsafe fn child_loop(out: libc::c_int, uid: u32, paths: &[*const libc::c_char], mode: Mode) -> ! {
    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    if libc::setgroups(0, std::ptr::null()) != 0 || libc::setgid(uid) != 0 || libc::setuid(uid) != 0
    {
        send(out, Err(libc::EPERM));
        libc::_exit(1);
    }
    if paths.is_empty() {
        libc::_exit(0);
    }
    match mode {
        Mode::Timed(n) => {
            for i in 0..n {
                let t0 = mono_ns();
                let r = open_read(paths[i % paths.len()]);
                let t1 = mono_ns();
                send(out, r.map(|()| t1 - t0));
            }
        }
        Mode::Flood(start) => {
            let mut i = start;
            loop {
                let _ = open_read(paths[i % paths.len()]);
                i = i.wrapping_add(1);
            }
        }
    }
    libc::_exit(0)
}
