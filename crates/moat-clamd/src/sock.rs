//! A client connection (unix or TCP): reads that also collect SCM_RIGHTS descriptors, and
//! a reply writer shared by the connection and its scan jobs.

use std::collections::VecDeque;
use std::io::{self, IoSliceMut, Write};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

/// A connected client socket.
#[derive(Debug)]
pub enum Sock {
    /// From the LocalSocket: FILDES works here.
    Unix(UnixStream),
    /// From a TCP socket.
    Tcp(TcpStream),
}

/// At most this much is discarded before closing on an error (bounded work for a client
/// that never stops sending).
pub const DISCARD_LIMIT: usize = 16 << 20;

/// What one read brought.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    /// This many bytes (descriptors, if any, were queued).
    Data(usize),
    /// The client closed (or half-closed) its side.
    Eof,
    /// Nothing before the deadline.
    TimedOut,
}

impl Sock {
    /// Another handle on the same socket (for the writer).
    pub fn try_clone(&self) -> io::Result<Sock> {
        Ok(match self {
            Sock::Unix(s) => Sock::Unix(s.try_clone()?),
            Sock::Tcp(s) => Sock::Tcp(s.try_clone()?),
        })
    }

    /// The name clamd gives streams from this client in STATS and logs.
    pub fn stream_label(&self) -> String {
        match self {
            Sock::Unix(_) => "instream(local)".to_owned(),
            Sock::Tcp(s) => match s.peer_addr() {
                Ok(a) => format!("instream({}@{})", a.ip(), a.port()),
                Err(_) => "instream(?)".to_owned(),
            },
        }
    }

    fn raw(&self) -> RawFd {
        match self {
            Sock::Unix(s) => s.as_raw_fd(),
            Sock::Tcp(s) => s.as_raw_fd(),
        }
    }

    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Sock::Unix(s) => s.set_read_timeout(t),
            Sock::Tcp(s) => s.set_read_timeout(t),
        }
    }

    /// Stops reading and discards what the client has already sent, so that closing next
    /// ends the connection with a FIN after the reply already written, not with a reset
    /// (a reset can make the client lose that reply: measured on a unix socket with a
    /// client still uploading). As clamd 1.4.6 does after `INSTREAM size limit exceeded`
    /// (measured: its clients read the reply then end of file, and their next send fails).
    /// On a unix socket, shutting down reading makes the client's further sends fail at
    /// once, so the discard empties the queue for good; on TCP the discard takes what has
    /// arrived, at most [`DISCARD_LIMIT`] bytes.
    pub fn discard_pending(&self) {
        let _ = match self {
            Sock::Unix(s) => s.shutdown(std::net::Shutdown::Read),
            Sock::Tcp(s) => s.shutdown(std::net::Shutdown::Read),
        };
        let mut buf = vec![0u8; 64 << 10];
        let mut total = 0;
        while total < DISCARD_LIMIT {
            // SAFETY: recv into a buffer of buf.len() writable bytes.
            let n = unsafe {
                libc::recv(
                    self.raw(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n <= 0 {
                break;
            }
            total += n as usize;
        }
    }

    /// Sets how long a reply write may wait on a full socket buffer (SendBufTimeout).
    pub fn set_write_timeout(&self, t: Duration) -> io::Result<()> {
        let t = Some(t.max(Duration::from_millis(1)));
        match self {
            Sock::Unix(s) => s.set_write_timeout(t),
            Sock::Tcp(s) => s.set_write_timeout(t),
        }
    }

    /// Reads into `buf` until `deadline`; descriptors that come along are appended to `fds`,
    /// tagged with `at` (the stream offset of the read's first byte, which carried them).
    pub fn read_until(
        &self,
        buf: &mut [u8],
        fds: &mut VecDeque<(u64, OwnedFd)>,
        at: u64,
        deadline: Instant,
    ) -> io::Result<Read> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(Read::TimedOut);
            }
            self.set_read_timeout(Some(left))?;
            let got = match self {
                Sock::Unix(_) => recv_with_fds(self.raw(), buf, fds, at),
                Sock::Tcp(s) => io::Read::read(&mut &*s, buf),
            };
            match got {
                Ok(0) => return Ok(Read::Eof),
                Ok(n) => return Ok(Read::Data(n)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    continue
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// `recvmsg` with room for a few SCM_RIGHTS descriptors (clients send one per FILDES).
fn recv_with_fds(
    fd: RawFd,
    buf: &mut [u8],
    fds: &mut VecDeque<(u64, OwnedFd)>,
    at: u64,
) -> io::Result<usize> {
    let mut cmsg = nix::cmsg_space!([RawFd; 8]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(fd, &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC)
        .map_err(io::Error::from)?;
    for c in msg.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::ScmRights(received) = c {
            // SAFETY: the kernel just installed these descriptors in this process; nothing
            // else owns them.
            fds.extend(
                received
                    .into_iter()
                    .map(|r| (at, unsafe { OwnedFd::from_raw_fd(r) })),
            );
        }
    }
    if msg.flags.contains(MsgFlags::MSG_CTRUNC) {
        return Err(io::Error::other(
            "control message truncated (is SELinux/AppArmor blocking descriptor passing?)",
        ));
    }
    Ok(msg.bytes)
}

/// Writes replies, one `write_all` per formatted reply under a lock, so that a session's
/// replies from several workers never interleave. After a failed or timed-out write
/// (SendBufTimeout) every later reply is dropped and the connection is shut down.
pub struct Writer {
    sock: Mutex<Sock>,
    broken: AtomicBool,
    cancelled: AtomicBool,
}

impl Writer {
    /// A writer on (a clone of) the client socket.
    pub fn new(sock: Sock, send_buf_timeout: Duration) -> io::Result<Writer> {
        sock.set_write_timeout(send_buf_timeout)?;
        Ok(Writer {
            sock: Mutex::new(sock),
            broken: AtomicBool::new(false),
            cancelled: AtomicBool::new(false),
        })
    }

    /// Sends one reply. Returns false when the client is gone or too slow (the caller stops
    /// its work: clamd's "deadlock detection").
    pub fn send(&self, reply: &[u8]) -> bool {
        if self.broken.load(Ordering::SeqCst) || self.cancelled.load(Ordering::SeqCst) {
            return false;
        }
        let mut sock = self.sock.lock().unwrap_or_else(|p| p.into_inner());
        let result = match &mut *sock {
            Sock::Unix(s) => s.write_all(reply),
            Sock::Tcp(s) => s.write_all(reply),
        };
        if let Err(e) = result {
            tracing::debug!("reply not sent: {e}");
            self.broken.store(true, Ordering::SeqCst);
            let _ = match &*sock {
                Sock::Unix(s) => s.shutdown(std::net::Shutdown::Both),
                Sock::Tcp(s) => s.shutdown(std::net::Shutdown::Both),
            };
            return false;
        }
        true
    }

    /// Drops every later reply (a session that timed out: its pending jobs are terminated).
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }
}
