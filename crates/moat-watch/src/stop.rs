//! The daemon's stop signal: one pipe every loop polls beside its own fd.
//!
//! SIGTERM and SIGINT write a byte into the pipe from the signal handler
//! (`signal_hook::low_level::pipe`, async-signal-safe); nothing ever reads it, so the pipe
//! stays readable and every thread that polls it (the fanotify reader, the tree tracker,
//! the main thread) wakes up and stops. No polling timeouts, no flag checks in the hot path.

use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// See the module docs. Share it by `Arc`.
#[derive(Debug)]
pub struct Stop {
    read: UnixStream,
    write: UnixStream,
}

/// What [`Stop::poll_with`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woken {
    /// The other fd is readable.
    Ready,
    /// Stop was requested.
    Stop,
    /// The timeout passed.
    Timeout,
}

impl Stop {
    /// A new, untriggered stop signal.
    pub fn new() -> io::Result<Stop> {
        let (read, write) = UnixStream::pair()?;
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        Ok(Stop { read, write })
    }

    /// Triggers on each of `signals` (e.g. `SIGTERM`, `SIGINT`).
    pub fn on_signals(&self, signals: &[i32]) -> io::Result<()> {
        for &signal in signals {
            signal_hook::low_level::pipe::register(signal, self.write.try_clone()?)?;
        }
        Ok(())
    }

    /// Triggers now (idempotent).
    pub fn trigger(&self) {
        // A full pipe is already readable: nothing is lost by ignoring WouldBlock.
        let _ = (&self.write).write(&[1]);
    }

    /// Clears a trigger (reads what the handler wrote), so the pipe can signal again: for
    /// pipes that carry a repeatable request (SIGHUP) rather than the stop.
    pub fn clear(&self) {
        let mut buf = [0u8; 64];
        while matches!(std::io::Read::read(&mut &self.read, &mut buf), Ok(n) if n > 0) {}
    }

    /// The fd to poll (readable once triggered).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    /// Whether stop was requested.
    pub fn is_triggered(&self) -> bool {
        poll(&[self.read.as_fd()], Some(Duration::ZERO)).is_ok_and(|r| r[0])
    }

    /// Blocks until stop is requested or `timeout` passes; whether stop was requested.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        poll(&[self.read.as_fd()], Some(timeout)).is_ok_and(|r| r[0])
    }

    /// Blocks until stop is requested.
    pub fn wait(&self) {
        while !matches!(poll(&[self.read.as_fd()], None), Ok(r) if r[0]) {}
    }

    /// Waits until `fd` is readable, stop is requested or `timeout` passes (`None`: no
    /// timeout). Stop wins when both are ready.
    pub fn poll_with(&self, fd: BorrowedFd<'_>, timeout: Option<Duration>) -> io::Result<Woken> {
        let ready = poll(&[fd, self.read.as_fd()], timeout)?;
        Ok(if ready[1] {
            Woken::Stop
        } else if ready[0] {
            Woken::Ready
        } else {
            Woken::Timeout
        })
    }
}

/// Blocks until one of `fds` is readable; which ones are.
pub fn wait_readable<const N: usize>(fds: &[BorrowedFd<'_>; N]) -> io::Result<[bool; N]> {
    poll(fds, None)
}

/// `poll(2)` for readability on `N` fds; restarts on `EINTR` (signals arrive here).
fn poll<const N: usize>(
    fds: &[BorrowedFd<'_>; N],
    timeout: Option<Duration>,
) -> io::Result<[bool; N]> {
    let mut p = fds.map(|fd| libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    });
    let ms = timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as i32);
    loop {
        // SAFETY: N valid pollfds.
        let r = unsafe { libc::poll(p.as_mut_ptr(), N as libc::nfds_t, ms) };
        if r >= 0 {
            // POLLHUP/POLLERR count as readable so that the caller's read reports them.
            return Ok(p.map(|p| p.revents != 0));
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn trigger_wakes_every_poller() {
        let stop = Arc::new(Stop::new().unwrap());
        let (a, _b) = UnixStream::pair().unwrap();
        assert!(!stop.is_triggered());
        assert_eq!(
            stop.poll_with(a.as_fd(), Some(Duration::from_millis(1)))
                .unwrap(),
            Woken::Timeout
        );
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let s = Arc::clone(&stop);
                std::thread::spawn(move || s.wait())
            })
            .collect();
        stop.trigger();
        stop.trigger();
        for w in waiters {
            w.join().unwrap();
        }
        assert!(stop.is_triggered());
        assert_eq!(stop.poll_with(a.as_fd(), None).unwrap(), Woken::Stop);
    }

    #[test]
    fn clear_rearms_the_pipe() {
        let hup = Stop::new().unwrap();
        hup.trigger();
        assert!(hup.is_triggered());
        hup.clear();
        assert!(!hup.is_triggered());
        hup.trigger();
        assert!(hup.is_triggered());
    }

    #[test]
    fn readable_fd_is_reported() {
        let stop = Stop::new().unwrap();
        let (a, mut b) = UnixStream::pair().unwrap();
        b.write_all(b"x").unwrap();
        assert_eq!(stop.poll_with(a.as_fd(), None).unwrap(), Woken::Ready);
    }
}
