//! The fanotify group: init, marks, reading, waiting and responses.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::event::{Event, EventBuffer, Events};
use crate::flags::{InitFlags, MarkFlags, MarkKind, Mask};
use crate::handle::cstring;
use crate::Error;

/// A verdict for a permission event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Response {
    /// `FAN_ALLOW`: the access proceeds.
    Allow,
    /// `FAN_DENY`: the access fails with `EPERM`.
    Deny,
}

impl Response {
    const fn bits(self) -> u32 {
        match self {
            Response::Allow => libc::FAN_ALLOW,
            Response::Deny => libc::FAN_DENY,
        }
    }
}

/// One fanotify group (the fd returned by `fanotify_init(2)`).
///
/// The fd is shared with the unanswered [`PermissionEvent`](crate::PermissionEvent)s read
/// from it (they need it to answer), and closed when the `Group` and all of them are
/// dropped. Closing the group makes the kernel allow every pending permission event.
///
/// `Group` is `Send + Sync`: one thread may read while others place marks or answer.
#[derive(Debug)]
pub struct Group {
    fd: Arc<OwnedFd>,
    flags: InitFlags,
}

fn init_reason(errno: i32) -> &'static str {
    match errno {
        libc::EINVAL => {
            "invalid flag combination: FID reporting (REPORT_FID, REPORT_DIR_FID, REPORT_NAME, \
             REPORT_TARGET_FID) cannot be combined with a permission class, REPORT_NAME needs \
             REPORT_DIR_FID, or a flag is unknown to this kernel"
        }
        libc::EPERM => "needs CAP_SYS_ADMIN",
        libc::EMFILE => {
            "too many fanotify groups for this user (fs.fanotify.max_user_groups) or too many \
             open files"
        }
        libc::ENOSYS => "kernel built without fanotify",
        libc::ENOMEM => "out of kernel memory",
        _ => "fanotify_init error",
    }
}

fn mark_reason(errno: i32) -> &'static str {
    match errno {
        libc::EINVAL => {
            "mask or flags invalid for this group and object: directory-entry events need FID \
             reporting and a directory inode or filesystem mark (not a mount mark); permission \
             events need a content class; procfs refuses permission marks"
        }
        libc::ENOENT => "no such file or directory, or (on removal) no such mark",
        libc::ENOSPC => "mark limit reached (fs.fanotify.max_user_marks)",
        libc::ENOTDIR => "ONLYDIR given but the path is not a directory",
        libc::ENODEV | libc::EOPNOTSUPP => {
            "filesystem does not support file handles (needed by FID reporting)"
        }
        libc::EXDEV => "object is on a subvolume with a different fsid (FID reporting)",
        libc::EEXIST => {
            "an evictable mark was requested on an inode that already has a non-evictable \
             mark of this group"
        }
        libc::EISDIR => "an ignore mark on a directory needs ONDIR or EVENT_ON_CHILD in the mask",
        libc::EACCES => "search permission denied on the path",
        libc::EBADF => "bad group fd or dirfd",
        libc::ENOMEM => "out of kernel memory",
        _ => "fanotify_mark error",
    }
}

fn response_reason(errno: i32) -> &'static str {
    match errno {
        libc::ENOENT => "no pending permission event with this fd (already answered?)",
        libc::EINVAL => "invalid response (FAN_AUDIT needs ENABLE_AUDIT at init)",
        libc::EBADF => "bad group fd",
        _ => "writing the response failed",
    }
}

/// Writes one `struct fanotify_response`. Retries on `EINTR`.
pub(crate) fn write_response(group: RawFd, event_fd: RawFd, response: u32) -> Result<(), Error> {
    let r = libc::fanotify_response {
        fd: event_fd,
        response,
    };
    let len = std::mem::size_of::<libc::fanotify_response>();
    loop {
        // SAFETY: writes `len` bytes from a valid struct.
        let n = unsafe {
            libc::write(
                group,
                &r as *const libc::fanotify_response as *const libc::c_void,
                len,
            )
        };
        if n == len as isize {
            return Ok(());
        }
        if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        if n < 0 {
            return Err(Error::last("write response", response_reason));
        }
        return Err(Error::from_io(
            "write response",
            "short write",
            io::Error::new(io::ErrorKind::WriteZero, "short write of fanotify_response"),
        ));
    }
}

impl Group {
    /// `fanotify_init(flags, event_f_flags)`. `event_f_flags` are the `open(2)` flags of the
    /// fds installed for events (`libc::O_RDONLY | libc::O_CLOEXEC | libc::O_LARGEFILE` is
    /// the usual choice).
    ///
    /// `InitFlags::CLASS_CONTENT | InitFlags::REPORT_FID` fails with `EINVAL` on every
    /// kernel so far: enforcement and FID tracking need two groups.
    pub fn init(flags: InitFlags, event_f_flags: i32) -> Result<Group, Error> {
        // SAFETY: plain syscall.
        let fd = unsafe { libc::fanotify_init(flags.bits(), event_f_flags as u32) };
        if fd < 0 {
            return Err(Error::last("fanotify_init", init_reason));
        }
        Ok(Group {
            // SAFETY: the kernel returned a new fd we now own.
            fd: Arc::new(unsafe { OwnedFd::from_raw_fd(fd) }),
            flags,
        })
    }

    /// The flags this group was created with.
    pub fn flags(&self) -> InitFlags {
        self.flags
    }

    /// `fanotify_mark(2)` with every argument explicit: `action` is `FAN_MARK_ADD`,
    /// `FAN_MARK_REMOVE` or `FAN_MARK_FLUSH`; `dirfd`/`path` as in `openat(2)` (`None` path:
    /// the object `dirfd` refers to; `None` dirfd: `AT_FDCWD`).
    pub fn mark_raw(
        &self,
        action: u32,
        kind: MarkKind,
        flags: MarkFlags,
        mask: Mask,
        dirfd: Option<BorrowedFd<'_>>,
        path: Option<&Path>,
    ) -> Result<(), Error> {
        let c = match path {
            Some(p) => Some(
                cstring(p)
                    .map_err(|e| Error::from_io("fanotify_mark", "path contains a NUL byte", e))?,
            ),
            None => None,
        };
        let dirfd = dirfd.map_or(libc::AT_FDCWD, |f| f.as_raw_fd());
        let ptr = c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
        // SAFETY: valid fds and C string (or NULL, which the kernel accepts with a dirfd).
        let r = unsafe {
            libc::fanotify_mark(
                self.fd.as_raw_fd(),
                action | kind.bits() | flags.bits(),
                mask.bits(),
                dirfd,
                ptr,
            )
        };
        if r != 0 {
            return Err(Error::last("fanotify_mark", mark_reason));
        }
        Ok(())
    }

    /// Adds `mask` to the mark of `kind` on `path` (created if absent).
    pub fn add_mark(&self, kind: MarkKind, mask: Mask, path: &Path) -> Result<(), Error> {
        self.add_mark_with(kind, MarkFlags::empty(), mask, path)
    }

    /// [`add_mark`](Self::add_mark) with modifier flags (`ONLYDIR`, `DONT_FOLLOW`, …).
    pub fn add_mark_with(
        &self,
        kind: MarkKind,
        flags: MarkFlags,
        mask: Mask,
        path: &Path,
    ) -> Result<(), Error> {
        self.mark_raw(libc::FAN_MARK_ADD, kind, flags, mask, None, Some(path))
    }

    /// Removes `mask` from the mark of `kind` on `path`; the mark goes when its mask is
    /// empty. `ENOENT` when there is no such mark.
    pub fn remove_mark(&self, kind: MarkKind, mask: Mask, path: &Path) -> Result<(), Error> {
        self.mark_raw(
            libc::FAN_MARK_REMOVE,
            kind,
            MarkFlags::empty(),
            mask,
            None,
            Some(path),
        )
    }

    /// Removes every mark of `kind` of this group (`FAN_MARK_FLUSH`).
    pub fn flush(&self, kind: MarkKind) -> Result<(), Error> {
        self.mark_raw(
            libc::FAN_MARK_FLUSH,
            kind,
            MarkFlags::empty(),
            Mask::empty(),
            None,
            None,
        )
    }

    /// The kernel-side clean cache: an evictable ignore mark for `mask` (normally
    /// `OPEN_PERM | OPEN_EXEC_PERM`) on the inode of `event_fd` (`FAN_MARK_ADD |
    /// FAN_MARK_IGNORE | FAN_MARK_EVICTABLE`, the event fd as dirfd, NULL path), so that
    /// later opens of this inode raise no event at all.
    ///
    /// Without `IGNORED_SURV_MODIFY`: the kernel drops the mark on the next `write()` or
    /// truncate, so a modified file raises events again. Writes through a shared mmap do
    /// NOT drop it: watch `CLOSE_WRITE` and call [`unignore_inode`](Self::unignore_inode).
    /// Evictable marks do not pin the inode; an evicted mark only costs one more event.
    /// For a directory, the kernel wants `ONDIR` or `EVENT_ON_CHILD` in `mask` (`EISDIR`).
    pub fn ignore_inode(&self, event_fd: BorrowedFd<'_>, mask: Mask) -> Result<(), Error> {
        self.mark_raw(
            libc::FAN_MARK_ADD,
            MarkKind::Inode,
            MarkFlags::IGNORE | MarkFlags::EVICTABLE,
            mask,
            Some(event_fd),
            None,
        )
    }

    /// Removes `mask` from the ignore mark on the inode of `fd`. `Ok(false)` when there was
    /// no such mark (never set, evicted, or already dropped by a write).
    pub fn unignore_inode(&self, fd: BorrowedFd<'_>, mask: Mask) -> Result<bool, Error> {
        match self.mark_raw(
            libc::FAN_MARK_REMOVE,
            MarkKind::Inode,
            MarkFlags::IGNORE,
            mask,
            Some(fd),
            None,
        ) {
            Ok(()) => Ok(true),
            Err(e) if e.errno() == libc::ENOENT => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Drops every ignore mark (e.g. when the signature database changes).
    ///
    /// The kernel cannot flush only ignore marks: this is `FAN_MARK_FLUSH` of the group's
    /// **inode** marks, so per-directory inode marks of this group go too and must be
    /// placed again. Mount and filesystem marks are kept.
    pub fn flush_ignores(&self) -> Result<(), Error> {
        self.flush(MarkKind::Inode)
    }

    /// Waits until events can be read or `timeout` passes (`None`: forever), with
    /// `poll(2)`. `Ok(true)` when readable. Restarts on `EINTR` with the time left.
    pub fn wait(&self, timeout: Option<Duration>) -> io::Result<bool> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let ms: i32 = match deadline {
                None => -1,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    // Round up so a short wait does not become a busy loop.
                    let ms = left.as_micros().div_ceil(1000);
                    ms.min(i32::MAX as u128) as i32
                }
            };
            let mut p = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let r = unsafe { libc::poll(&mut p, 1, ms) };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            return Ok(r > 0 && p.revents & libc::POLLIN != 0);
        }
    }

    /// Reads one batch of events into `buf` and parses it.
    ///
    /// Blocks unless the group is `NONBLOCK` (then `WouldBlock` when empty); use
    /// [`wait`](Self::wait) first for a bounded wait. Every fd in the batch is owned by the
    /// returned events (and closed when they drop); permission events must be answered
    /// (see [`PermissionEvent`](crate::PermissionEvent)).
    ///
    /// A malformed batch (wrong metadata version, impossible lengths) is an
    /// `InvalidData` error wrapping a [`ParseError`](crate::ParseError): every event that
    /// could be delimited is still taken over, its fds closed and its permission events
    /// allowed, before the error is returned.
    ///
    /// Takes `&self`: the kernel hands each event to exactly one reader, and marking or
    /// answering from other threads stays possible while one thread reads.
    pub fn read_events<'b>(&self, buf: &'b mut EventBuffer) -> io::Result<Events<'b>> {
        buf.events.clear();
        let n = loop {
            // SAFETY: reads into the buffer's own storage.
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    buf.bytes.as_mut_ptr() as *mut libc::c_void,
                    buf.bytes.len(),
                )
            };
            if n >= 0 {
                break n as usize;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        };
        let mut first_err = None;
        for raw in crate::raw::events(&buf.bytes[..n]) {
            match raw {
                Ok(raw) => buf
                    .events
                    .push(Event::from_raw(&raw, &self.fd, &mut first_err)),
                Err(e) => {
                    first_err.get_or_insert(e);
                    break;
                }
            }
        }
        if let Some(e) = first_err {
            // Allows pending permission events and closes fds, then reports.
            buf.events.clear();
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
        Ok(Events::new(buf.events.drain(..)))
    }

    /// Answers the permission event whose fd is `event_fd` (`struct fanotify_response`).
    ///
    /// Every permission event must be answered exactly once; the opener waits until then
    /// (there is no timeout). Prefer [`PermissionEvent::allow`](crate::PermissionEvent::allow)
    /// / [`deny`](crate::PermissionEvent::deny), which make a double or missing answer
    /// impossible.
    pub fn respond(&self, event_fd: BorrowedFd<'_>, response: Response) -> Result<(), Error> {
        write_response(self.fd.as_raw_fd(), event_fd.as_raw_fd(), response.bits())
    }

    /// Like [`respond`](Self::respond) with `FAN_AUDIT` (logged by the audit subsystem);
    /// needs `InitFlags::ENABLE_AUDIT`.
    pub fn respond_audit(&self, event_fd: BorrowedFd<'_>, response: Response) -> Result<(), Error> {
        write_response(
            self.fd.as_raw_fd(),
            event_fd.as_raw_fd(),
            response.bits() | libc::FAN_AUDIT,
        )
    }
}

impl Response {
    pub(crate) const fn raw(self, audit: bool) -> u32 {
        if audit {
            self.bits() | libc::FAN_AUDIT
        } else {
            self.bits()
        }
    }
}

impl AsFd for Group {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Group {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
