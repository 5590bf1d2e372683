//! The kernel-independent core of moat's on-access path.
//!
//! The daemon's event path, hop by hop, and the module that owns each hop:
//!
//! 1. The reader thread reads a permission event and asks [`policy::Policy::decide`] whether it
//!    can be allowed without any I/O on the watched file (own pid, excluded uid, path outside
//!    the include paths or under an excluded directory, empty or too large file).
//! 2. Everything else goes to [`deadline::WorkerPool::submit`] as a job carrying a
//!    [`deadline::Pending`] token; the token is also registered with the
//!    [`deadline::DeadlineWatcher`].
//! 3. A worker keys the file with [`cache::FileKey::of`] (one `fstat`), consults the
//!    [`cache::VerdictCache`], else scans through a [`scanner::Scanner`] (the embedded engine
//!    today, clamd later), and answers through the token.
//! 4. Whichever of the worker and the deadline watcher comes first answers the token exactly
//!    once, through the [`deadline::Answer`] callback that the kernel layer implements (write
//!    `FAN_ALLOW`/`FAN_DENY`, set the ignore mark, then log).
//!
//! Nothing here touches fanotify, so every piece is unit-tested without root.

#![warn(missing_docs)]

pub mod cache;
pub mod deadline;
pub mod policy;
pub mod scanner;
pub mod writers;

pub use cache::{FileKey, Inode, VerdictCache};
pub use deadline::{
    Answer, Cause, CleanHook, DeadlineHandle, DeadlineWatcher, Pending, PoolConfig, PoolLoad,
    Response, Stats, WorkerPool, NO_OWNER,
};
pub use policy::{uid_of_pid, AccessFacts, AllowReason, Decision, Policy, PolicySettings};
pub use scanner::{
    DatabaseInfo, EngineScanner, ScanFailure, Scanner, ScannerSlot, SkipReason, Verdict,
};
