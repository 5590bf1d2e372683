//! The on-access daemon behind `moat watch`.
//!
//! The path of one access, module by module (kernel interface → coverage → policy →
//! verdicts → daemon):
//!
//! 1. [`coverage`] places one fanotify mark per directory under the include paths
//!    (`OPEN_PERM | OPEN_EXEC_PERM | EVENT_ON_CHILD`) and one tracking mark of a fanotify
//!    FID group ([`fid`]) or one inotify watch, and the [`tracker`] thread keeps both in
//!    step with the tree ([`tree`] is its map), so a process opening a file in a covered
//!    directory waits for moat's answer.
//! 2. The [`reader`] thread reads the event, decides cheap cases with
//!    `moat_guard::Policy` (own pid, excluded uid, path, size) and answers them at once, or
//!    hands the file to `moat_guard::WorkerPool`.
//! 3. A worker scans (verdict cache, then the `Scanner`); the deadline watcher answers
//!    instead when the scan takes longer than `OnAccessScanTimeout`. Either way the
//!    [`verdict`] sink answers the kernel first (`FAN_ALLOW`/`FAN_DENY`), then logs.
//! 4. [`daemon`] starts and stops all of this in an order that never leaves an opener
//!    waiting; [`stop`] carries SIGTERM/SIGINT to every thread; [`notify`] tells systemd
//!    when the marks are in place and [`watchdog`] sends `WATCHDOG=1` while the reader and
//!    the workers are alive; [`limits`] checks the kernel's budgets.

#![warn(missing_docs)]

pub mod control;
pub mod coverage;
pub mod daemon;
pub mod fid;
pub mod flush;
pub mod fs_scope;
pub mod health;
pub mod kernel_cache;
pub mod limits;
pub mod locate;
pub mod metrics;
pub mod mounts;
pub mod notify;
pub mod quiet;
pub mod reader;
pub mod slow_fs;
pub mod stop;
pub mod tracker;
pub mod tree;
pub mod verdict;
pub mod watchdog;

pub use coverage::{Backend, Tracking, TrackingMode};
pub use health::{CurrentProbe, Lifetime, Probe, ReactionCounters, ReloadStatus, Snapshot};
pub mod exe;
pub use daemon::{Daemon, Events, Scope, SharedReactions, StartError, Wake, WatchSettings};
pub use stop::Stop;
