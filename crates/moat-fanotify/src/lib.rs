//! Safe wrappers over the Linux fanotify interface.
//!
//! This crate knows nothing about malware: it creates fanotify groups, places and removes
//! marks, reads and parses events, answers permission events and resolves file handles.
//! The policy (what to scan, what to deny) lives in its users.
//!
//! Layout:
//! - [`Group`]: one fanotify group (`fanotify_init(2)`); marks (`fanotify_mark(2)`),
//!   in-kernel ignore marks, reading with [`Group::read_events`], waiting with
//!   [`Group::wait`], answering with [`Group::respond`].
//! - [`Event`] / [`PermissionEvent`]: owned events; a permission event is answered exactly
//!   once, by [`PermissionEvent::allow`]/[`PermissionEvent::deny`] or, if forgotten, by its
//!   `Drop` (which allows: fail-open, like the kernel when a group is closed).
//! - [`raw`]: the pure byte parser (no fd ownership), usable on arbitrary bytes.
//! - [`FileHandle`], [`Fsid`], [`fd_path`]: file-identifier helpers.
//! - [`InitFlags`], [`Mask`], [`MarkKind`], [`MarkFlags`]: typed flags.
//!
//! Kernel facts that shape this API (Linux 6.18, see `notes/fanotify.md`):
//! FID reporting cannot be combined with a permission class (`EINVAL`); a full queue and a
//! closed group both fail open; an event fd that cannot be installed fails closed; a pending
//! permission event has no timeout; the thread that reads and answers must never touch a
//! watched file.

#![warn(missing_docs)]

mod event;
mod flags;
mod group;
mod handle;
pub mod raw;

pub use event::{Event, EventBuffer, Events, FidInfo, Info, PermissionEvent, Pidfd};
pub use flags::{InitFlags, MarkFlags, MarkKind, Mask, FAN_PRE_ACCESS};
pub use group::{Group, Response};
pub use handle::{fd_path, FileHandle, Fsid, MAX_HANDLE_SZ};
pub use raw::{FidKind, ParseError};

use std::io;

/// A failed fanotify system call: which call, the errno and a readable reason.
#[derive(Debug, thiserror::Error)]
#[error("{op} failed: {reason} ({source})")]
pub struct Error {
    op: &'static str,
    reason: &'static str,
    #[source]
    source: io::Error,
}

impl Error {
    pub(crate) fn last(op: &'static str, reason_for: fn(i32) -> &'static str) -> Error {
        let source = io::Error::last_os_error();
        let errno = source.raw_os_error().unwrap_or(0);
        Error {
            op,
            reason: reason_for(errno),
            source,
        }
    }

    pub(crate) fn from_io(op: &'static str, reason: &'static str, source: io::Error) -> Error {
        Error { op, reason, source }
    }

    /// The system call that failed (`"fanotify_init"`, `"fanotify_mark"`, `"write response"`).
    pub fn op(&self) -> &'static str {
        self.op
    }

    /// The errno (`libc::EINVAL`, …), or 0 when the error did not come from the kernel.
    pub fn errno(&self) -> i32 {
        self.source.raw_os_error().unwrap_or(0)
    }

    /// A readable explanation of the errno for this call.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        io::Error::new(e.source.kind(), e)
    }
}
