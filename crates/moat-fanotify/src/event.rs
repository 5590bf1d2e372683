//! Owned events, permission events and the read buffer.

use std::ffi::OsString;
use std::io;
use std::ops::Deref;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::flags::Mask;
use crate::group::{write_response, Response};
use crate::handle::{fd_path, FileHandle, Fsid};
use crate::raw::{FidKind, ParseError, RawEvent, RawRecord};
use crate::Error;

/// A file-identifier info record, owned.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FidInfo {
    /// Which kind of record (object, parent directory, with name, rename source/target).
    pub kind: FidKind,
    /// The filesystem id: pick the mount fd for [`FileHandle::open`] by it.
    pub fsid: Fsid,
    /// The file handle.
    pub handle: FileHandle,
    /// The entry name (for the `*DfidName` kinds), raw bytes as in the directory.
    pub name: Option<OsString>,
}

impl FidInfo {
    /// Opens the object this record names (`open_by_handle_at(2)`): for a `DfidName`,
    /// `OldDfidName` or `NewDfidName` record, the directory holding the entry. `mount_fd` is
    /// any fd on the filesystem whose id is [`fsid`](Self::fsid); `flags` are `open(2)`
    /// flags (`O_RDONLY | O_DIRECTORY` to mark it, `O_PATH` to read its path). Needs
    /// `CAP_DAC_READ_SEARCH`; `ESTALE` when the object no longer exists.
    pub fn open(&self, mount_fd: BorrowedFd<'_>, flags: i32) -> io::Result<OwnedFd> {
        self.handle.open(mount_fd, flags)
    }

    /// The entry name, if the record has one and it is not `"."` (self events such as
    /// `FAN_DELETE_SELF` name the directory itself that way).
    pub fn entry_name(&self) -> Option<&std::ffi::OsStr> {
        self.name
            .as_deref()
            .filter(|n| n.as_encoded_bytes() != b".")
    }
}

/// The pidfd info record (`FAN_REPORT_PIDFD`).
#[derive(Debug)]
pub enum Pidfd {
    /// A pidfd of the accessing process, owned (closed on drop).
    Fd(OwnedFd),
    /// `FAN_NOPIDFD`: no pidfd could be created.
    None,
    /// `FAN_EPIDFD`: the process had exited; or another negative value from the kernel.
    Error(i32),
}

/// One info record of an event, owned.
#[derive(Debug)]
pub enum Info {
    /// `FID`, `DFID`, `DFID_NAME`, `OLD_DFID_NAME`, `NEW_DFID_NAME`.
    Fid(FidInfo),
    /// `PIDFD`.
    Pidfd(Pidfd),
    /// `ERROR` (`FAN_FS_ERROR` events).
    Error {
        /// The errno reported by the filesystem.
        error: i32,
        /// How many errors were merged.
        error_count: u32,
    },
    /// A record type this crate does not know.
    Unknown {
        /// The record type.
        info_type: u8,
        /// Its bytes after the header.
        data: Vec<u8>,
    },
}

/// One fanotify event, owned: its fd (if any) is closed when the event drops.
///
/// A permission event read from a group is *pending* until answered. Turn it into a
/// [`PermissionEvent`] with [`into_permission`](Self::into_permission) and answer it; an
/// `Event` dropped while pending is answered [`Response::Allow`] by `Drop`, with a
/// debug-level log: fail-open, the same as the kernel does when the group is closed.
#[derive(Debug)]
pub struct Event {
    mask: Mask,
    pid: i32,
    fd: Option<OwnedFd>,
    info: Vec<Info>,
    /// The group fd while a permission event is unanswered.
    pending: Option<Arc<OwnedFd>>,
}

impl Event {
    /// Takes ownership of the fds of a raw event coming from the kernel. Records after a
    /// malformed one are skipped and the error kept in `err`.
    pub(crate) fn from_raw(
        raw: &RawEvent<'_>,
        group: &Arc<OwnedFd>,
        err: &mut Option<ParseError>,
    ) -> Event {
        // SAFETY: a non-negative fd in a batch read from the kernel was installed for us
        // and is referenced nowhere else.
        let fd = (raw.fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(raw.fd) });
        let mask = Mask::from_bits_retain(raw.mask);
        let pending = (fd.is_some() && mask.is_permission()).then(|| Arc::clone(group));
        let mut ev = Event {
            mask,
            pid: raw.pid,
            fd,
            info: Vec::new(),
            pending,
        };
        for rec in raw.records() {
            match rec {
                Ok(rec) => ev.info.push(Info::from_raw(rec)),
                Err(e) => {
                    err.get_or_insert(e);
                    break;
                }
            }
        }
        ev
    }

    /// The event mask (may hold several merged events, plus `ONDIR`).
    pub fn mask(&self) -> Mask {
        self.mask
    }

    /// The pid (or tid with `REPORT_TID`) of the accessing process.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The event's fd (`None` for `FAN_NOFD`: FID groups, queue overflow).
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.fd.as_ref().map(|f| f.as_fd())
    }

    /// Takes the fd out of a notification event. `None` for a pending permission event:
    /// its fd names the event in the answer and is closed after it.
    pub fn take_fd(&mut self) -> Option<OwnedFd> {
        if self.pending.is_some() {
            None
        } else {
            self.fd.take()
        }
    }

    /// The path of the event's fd, from `/proc/self/fd` (does not open the file).
    pub fn path(&self) -> io::Result<PathBuf> {
        match &self.fd {
            Some(fd) => fd_path(fd.as_fd()),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                "event has no fd (FAN_NOFD)",
            )),
        }
    }

    /// The info records.
    pub fn info(&self) -> &[Info] {
        &self.info
    }

    /// The file-identifier records.
    pub fn fids(&self) -> impl Iterator<Item = &FidInfo> {
        self.info.iter().filter_map(|i| match i {
            Info::Fid(f) => Some(f),
            _ => None,
        })
    }

    /// The first file-identifier record of `kind`.
    pub fn fid(&self, kind: FidKind) -> Option<&FidInfo> {
        self.fids().find(|f| f.kind == kind)
    }

    /// True while this is an unanswered permission event.
    pub fn is_permission(&self) -> bool {
        self.pending.is_some()
    }

    /// A pending permission event as a [`PermissionEvent`]; any other event back as `Err`.
    pub fn into_permission(self) -> Result<PermissionEvent, Event> {
        if self.pending.is_some() {
            Ok(PermissionEvent(self))
        } else {
            Err(self)
        }
    }

    fn answer(&mut self, response: Response, audit: bool) -> Result<(), Error> {
        let (Some(group), Some(fd)) = (&self.pending, &self.fd) else {
            return Ok(());
        };
        write_response(group.as_raw_fd(), fd.as_raw_fd(), response.raw(audit))?;
        self.pending = None;
        Ok(())
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        if let (Some(group), Some(fd)) = (self.pending.take(), &self.fd) {
            // Answer first, log after.
            let r = write_response(group.as_raw_fd(), fd.as_raw_fd(), libc::FAN_ALLOW);
            tracing::debug!(
                pid = self.pid,
                mask = ?self.mask,
                result = ?r.err(),
                "unanswered fanotify permission event allowed on drop (fail-open)"
            );
        }
    }
}

/// A pending permission event: answer it with [`allow`](Self::allow),
/// [`deny`](Self::deny) or [`respond`](Self::respond), which consume it, so it is answered
/// at most once by construction.
///
/// If it is dropped unanswered (forgotten, an early return, a panic while scanning, or a
/// failed answer), `Drop` answers [`Response::Allow`] and logs at debug level. That is
/// deliberately fail-open, like the kernel when the group is closed; a caller that wants
/// fail-closed must answer `deny` on its error paths explicitly. The event fd is closed
/// after the answer.
///
/// Derefs to [`Event`] for the mask, pid, fd and path.
#[derive(Debug)]
pub struct PermissionEvent(Event);

impl PermissionEvent {
    /// Answers `FAN_ALLOW`.
    pub fn allow(self) -> Result<(), Error> {
        self.respond(Response::Allow)
    }

    /// Answers `FAN_DENY`: the open (or exec) fails with `EPERM`.
    pub fn deny(self) -> Result<(), Error> {
        self.respond(Response::Deny)
    }

    /// Answers `response`. On error the event is still pending and its `Drop` allows it.
    pub fn respond(mut self, response: Response) -> Result<(), Error> {
        self.0.answer(response, false)
    }

    /// Answers `response | FAN_AUDIT` (needs `InitFlags::ENABLE_AUDIT`). On error the event
    /// is still pending and its `Drop` allows it.
    pub fn respond_audit(mut self, response: Response) -> Result<(), Error> {
        self.0.answer(response, true)
    }
}

impl Deref for PermissionEvent {
    type Target = Event;
    fn deref(&self) -> &Event {
        &self.0
    }
}

impl Info {
    fn from_raw(rec: RawRecord<'_>) -> Info {
        match rec {
            RawRecord::Fid {
                kind,
                fsid,
                handle_type,
                handle,
                name,
            } => Info::Fid(FidInfo {
                kind,
                fsid: Fsid(fsid),
                handle: FileHandle {
                    handle_type,
                    bytes: handle.to_vec(),
                },
                name: name.map(|n| OsString::from_vec(n.to_vec())),
            }),
            RawRecord::Pidfd(fd) if fd >= 0 => {
                // SAFETY: a non-negative pidfd in a kernel batch was installed for us.
                Info::Pidfd(Pidfd::Fd(unsafe { OwnedFd::from_raw_fd(fd) }))
            }
            RawRecord::Pidfd(libc::FAN_NOPIDFD) => Info::Pidfd(Pidfd::None),
            RawRecord::Pidfd(e) => Info::Pidfd(Pidfd::Error(e)),
            RawRecord::Error { error, error_count } => Info::Error { error, error_count },
            RawRecord::Unknown { info_type, data } => Info::Unknown {
                info_type,
                data: data.to_vec(),
            },
        }
    }
}

/// Reusable storage for [`Group::read_events`](crate::Group::read_events): the byte
/// buffer of one `read(2)` and the parsed events.
#[derive(Debug)]
pub struct EventBuffer {
    pub(crate) bytes: Vec<u8>,
    pub(crate) events: Vec<Event>,
}

impl EventBuffer {
    /// The smallest useful buffer: the kernel refuses reads smaller than one event.
    pub const MIN_LEN: usize = 4096;

    /// A 64 KiB buffer.
    pub fn new() -> EventBuffer {
        Self::with_len(64 * 1024)
    }

    /// A buffer of `len` bytes (at least [`MIN_LEN`](Self::MIN_LEN)).
    pub fn with_len(len: usize) -> EventBuffer {
        EventBuffer {
            bytes: vec![0; len.max(Self::MIN_LEN)],
            events: Vec::new(),
        }
    }
}

impl Default for EventBuffer {
    fn default() -> Self {
        Self::new()
    }
}

/// The events of one batch. Events not taken from the iterator are dropped with it
/// (their fds closed, their permission events allowed).
#[derive(Debug)]
pub struct Events<'a> {
    inner: std::vec::Drain<'a, Event>,
}

impl<'a> Events<'a> {
    pub(crate) fn new(inner: std::vec::Drain<'a, Event>) -> Self {
        Events { inner }
    }
}

impl Iterator for Events<'_> {
    type Item = Event;
    fn next(&mut self) -> Option<Event> {
        self.inner.next()
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl ExactSizeIterator for Events<'_> {}
