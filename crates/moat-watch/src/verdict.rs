//! Delivering verdicts: to the kernel first, to the log after.
//!
//! A [`PermissionSink`] holds the pending fanotify event of one access; when the worker or the
//! deadline watcher answers its token (see `moat_guard::deadline`), the sink writes
//! `FAN_ALLOW`/`FAN_DENY` at once and only then logs. A [`ReportSink`] is the same for scans
//! nobody waits on (notify-only mode, `OnAccessExtraScanning`): it only logs.
//!
//! Log levels: a detection or a decision taken without a verdict (scan failed, deadline,
//! answer failed) is a warning; a clean, cached or skipped verdict is debug.

use std::fmt;
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use moat_fanotify::PermissionEvent;
use moat_guard::{AllowReason, Answer, Cause, Response, Verdict};

/// What kind of access or discovery led to a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessKind {
    /// A file opened (`FAN_OPEN_PERM` / `FAN_OPEN`).
    Open,
    /// A file opened for execution (`FAN_OPEN_EXEC_PERM` / `FAN_OPEN_EXEC`).
    Exec,
    /// A file closed after writing (extra scanning).
    CloseWrite,
    /// A file moved into the tree, or found in a directory new to the tree (extra scanning).
    Discovered,
}

impl fmt::Display for AccessKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AccessKind::Open => "open",
            AccessKind::Exec => "exec",
            AccessKind::CloseWrite => "close-write",
            AccessKind::Discovered => "discovered",
        })
    }
}

/// One access, as known to the reader thread.
#[derive(Debug, Clone)]
pub struct Access {
    /// The file's path (from the event fd).
    pub path: PathBuf,
    /// The accessing process (0 for discoveries by the daemon).
    pub pid: i32,
    /// Its uid, when the reader read it.
    pub uid: Option<u32>,
    /// What happened.
    pub kind: AccessKind,
}

const REASONS: [AllowReason; 9] = [
    AllowReason::OwnPid,
    AllowReason::RootUid,
    AllowReason::ExcludedUid,
    AllowReason::Empty,
    AllowReason::NeverWatched,
    AllowReason::OutsideIncludes,
    AllowReason::ExcludedPath,
    AllowReason::TooLarge,
    AllowReason::ExcludedExe,
];

/// Counters of the daemon's own decisions (the worker pool counts scan outcomes in
/// `moat_guard::Stats`). Relaxed atomics: statistics only.
#[derive(Debug, Default)]
pub struct DaemonStats {
    allowed: [AtomicU64; 9],
    /// Permission events handed to the worker pool.
    pub submitted: AtomicU64,
    /// Notification events (notify-only, close-write) and discoveries handed to the pool.
    pub reported_scans: AtomicU64,
    /// Answers the kernel refused (the event is then allowed by its `Drop`).
    pub answer_errors: AtomicU64,
    /// Events whose fd could not be duplicated for a worker (answered with the on-error
    /// decision).
    pub dup_errors: AtomicU64,
    /// Events whose path could not be read (scanned anyway).
    pub path_errors: AtomicU64,
    /// Events whose file had no trustworthy place (an alias mount that could not be
    /// resolved, several links): path rules skipped, so scanned unless uid or size allows.
    pub unplaced: AtomicU64,
    /// Directories outside the include paths whose children's opens the kernel now ignores.
    pub quieted_dirs: AtomicU64,
    /// Reads of the fanotify fd that failed.
    pub read_errors: AtomicU64,
    /// Unanswered events allowed at shutdown by the reader.
    pub drained: AtomicU64,
    /// Close-after-write events (each invalidates the file's clean-cache entries).
    pub close_writes: AtomicU64,
    /// `FAN_DENY` answers the kernel accepted (the opener got `EPERM`).
    pub blocked: AtomicU64,
    /// Time from hand-off to a worker to the kernel's answer, per permission event scanned.
    pub latency: crate::health::Latency,
    /// Open events received (permission or notification), execs not included.
    pub open_events: AtomicU64,
    /// Exec events received (an exec is one event, whatever else it raises).
    pub exec_events: AtomicU64,
}

impl DaemonStats {
    /// Counts an event by kind (`OnAccessEvents` decides which kinds arrive at all).
    pub fn count_event(&self, mask: moat_fanotify::Mask) {
        use moat_fanotify::Mask;
        if mask.intersects(Mask::OPEN_EXEC_PERM | Mask::OPEN_EXEC) {
            self.exec_events.fetch_add(1, Relaxed);
        } else if mask.intersects(Mask::OPEN_PERM | Mask::OPEN) {
            self.open_events.fetch_add(1, Relaxed);
        }
    }

    /// Counts an access allowed without a scan.
    pub fn allowed(&self, reason: AllowReason) {
        let i = REASONS
            .iter()
            .position(|r| *r == reason)
            .expect("every reason listed");
        self.allowed[i].fetch_add(1, Relaxed);
    }

    /// Accesses allowed without a scan for `reason`.
    pub fn allowed_for(&self, reason: AllowReason) -> u64 {
        let i = REASONS
            .iter()
            .position(|r| *r == reason)
            .expect("every reason listed");
        self.allowed[i].load(Relaxed)
    }

    /// `reason=count` for every reason that occurred, for the shutdown summary.
    pub fn allowed_summary(&self) -> String {
        let parts: Vec<String> = REASONS
            .iter()
            .filter(|r| self.allowed_for(**r) > 0)
            .map(|r| format!("{r:?}={}", self.allowed_for(*r)))
            .collect();
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(" ")
        }
    }
}

/// Turns answers into log lines; shared by every sink.
#[derive(Debug)]
pub struct Reporter {
    /// The scan deadline, for messages.
    pub deadline: Duration,
    /// Counters.
    pub stats: Arc<DaemonStats>,
    /// What to do about a detection after the answer (quarantine, VirusEvent, records).
    pub reactions: Option<Arc<moat_react::Reactions>>,
}

impl Reporter {
    /// Logs the outcome of one access. `waited` says whether the opener waited for the
    /// answer. `who` is the opener as captured before answering (see [`Opener::capture`]);
    /// `None` reads it now (a scan nobody waited on). `file` is the scanned file, for the
    /// reactions to a detection (they act on that inode only).
    pub fn report(
        &self,
        access: &Access,
        response: Response,
        cause: Cause<'_>,
        waited: bool,
        who: Option<Opener>,
        file: Option<File>,
    ) {
        let path = escape(access.path.as_os_str().as_encoded_bytes());
        let action = match (waited, response) {
            (true, Response::Deny) => "blocked",
            (true, Response::Allow) => "allowed",
            (false, _) => "reported",
        };
        let who = || who.clone().unwrap_or_else(|| Opener::capture(access));
        match cause {
            Cause::Scanned(Verdict::Infected(name)) => {
                let w = who();
                tracing::warn!(
                    "{path}: {} FOUND {w} access={} action={action}",
                    escape(name.as_bytes()),
                    access.kind
                );
                self.react(access, name, &w, waited && response == Response::Deny, file);
            }
            Cause::Scanned(v) => {
                tracing::debug!(path = %path, verdict = ?v, kind = %access.kind, "scanned")
            }
            Cause::Cached => tracing::debug!(path = %path, "clean (verdict cache)"),
            Cause::Failed(e) => {
                let w = who();
                tracing::warn!(
                    "{path}: scan failed ({e}) {w} action={action} (OnAccessDenyOnError decides)"
                );
            }
            Cause::Deadline => {
                let w = who();
                tracing::warn!(
                    "{path}: no verdict within {:?} {w} action={action} (OnAccessDenyOnError decides)",
                    self.deadline
                );
            }
            Cause::Shutdown => tracing::debug!(path = %path, "allowed: shutting down"),
            Cause::Abandoned => {
                tracing::error!(path = %path, action, "scan job lost; on-error decision applied")
            }
        }
    }
}

impl Reporter {
    /// Hands a detection to the reaction thread (after the answer; never blocks).
    fn react(&self, access: &Access, name: &str, who: &Opener, blocked: bool, file: Option<File>) {
        let Some(reactions) = &self.reactions else {
            return;
        };
        reactions.submit(moat_react::Detection {
            path: access.path.clone(),
            file,
            signature: name.to_owned(),
            accessor: who.accessor(),
            access: access.kind.to_string(),
            blocked,
            time: std::time::SystemTime::now(),
        });
    }
}

/// Whether answering with `cause` logs a line that names the opener (so it must be
/// captured before the answer, while the opener still waits in `open(2)`).
fn names_opener(cause: &Cause<'_>) -> bool {
    matches!(
        cause,
        Cause::Scanned(Verdict::Infected(_)) | Cause::Failed(_) | Cause::Deadline
    )
}

/// Bytes for a log line: printable ASCII and valid UTF-8 text as is; `\n`, `\r`, `\t`,
/// the backslash and other control characters escaped; bytes that are not UTF-8 as `\xNN`.
/// So a file name (or a `comm`) cannot forge or split a log line, and two different names
/// never log alike (review F9).
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Who made an access, for log lines: `pid= uid= comm= exe=`. Captured from procfs while
/// the opener still waits for the answer (its pid cannot be reused then), never on the
/// reader thread.
#[derive(Debug, Clone)]
pub struct Opener {
    pid: i32,
    uid: String,
    comm: String,
    exe: String,
}

impl fmt::Display for Opener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pid={} uid={} comm={} exe={}",
            self.pid, self.uid, self.comm, self.exe
        )
    }
}

impl Opener {
    /// The opener for a detection record.
    pub fn accessor(&self) -> moat_react::Accessor {
        moat_react::Accessor {
            pid: self.pid,
            uid: self.uid.parse().ok(),
            comm: self.comm.clone(),
            exe: self.exe.clone(),
        }
    }

    /// Reads the opener of `access` from procfs now.
    pub fn capture(access: &Access) -> Opener {
        let pid = access.pid;
        let uid = access
            .uid
            .or_else(|| {
                (pid > 0)
                    .then(|| moat_guard::uid_of_pid(pid).ok())
                    .flatten()
            })
            .map_or_else(|| "?".to_string(), |u| u.to_string());
        if pid <= 0 {
            return Opener {
                pid,
                uid,
                comm: "moat".into(),
                exe: "?".into(),
            };
        }
        let comm = std::fs::read(format!("/proc/{pid}/comm"))
            .map(|c| escape(c.strip_suffix(b"\n").unwrap_or(&c)))
            .unwrap_or_else(|_| "?".into());
        let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
            .map(|p| escape(p.as_os_str().as_encoded_bytes()))
            .unwrap_or_else(|_| "?".into());
        Opener {
            pid,
            uid,
            comm,
            exe,
        }
    }
}

/// The sink of an access that waits for its verdict. See the module docs.
pub struct PermissionSink {
    // A mutex, not a cell: the token guarantees one answer, but from either of two threads.
    // It is never contended.
    event: Mutex<Option<PermissionEvent>>,
    access: Access,
    reporter: Arc<Reporter>,
    /// When the event was handed over, for the latency histogram.
    created: Instant,
}

impl PermissionSink {
    /// A sink answering `event`.
    pub fn new(event: PermissionEvent, access: Access, reporter: Arc<Reporter>) -> Self {
        PermissionSink {
            event: Mutex::new(Some(event)),
            access,
            reporter,
            created: Instant::now(),
        }
    }
}

/// moat-guard's answer as fanotify's.
pub fn kernel_response(r: Response) -> moat_fanotify::Response {
    match r {
        Response::Allow => moat_fanotify::Response::Allow,
        Response::Deny => moat_fanotify::Response::Deny,
    }
}

impl Answer for PermissionSink {
    fn answer(&self, response: Response, cause: Cause<'_>) {
        let event = self.event.lock().unwrap_or_else(|p| p.into_inner()).take();
        // The opener waits in open(2) until answered: read who it is now, not after.
        let who = (event.is_some() && names_opener(&cause)).then(|| Opener::capture(&self.access));
        // The reactions act on the file scanned: keep its fd past the answer (detections only).
        let file = match (&cause, &event, &self.reporter.reactions) {
            (Cause::Scanned(Verdict::Infected(_)), Some(ev), Some(_)) => ev
                .fd()
                .and_then(|fd| fd.try_clone_to_owned().ok())
                .map(File::from),
            _ => None,
        };
        if let Some(event) = event {
            let stats = &self.reporter.stats;
            match event.respond(kernel_response(response)) {
                Ok(()) if response == Response::Deny => _ = stats.blocked.fetch_add(1, Relaxed),
                Ok(()) => {}
                Err(e) => {
                    stats.answer_errors.fetch_add(1, Relaxed);
                    tracing::error!(path = %self.access.path.display(), error = %e, "cannot answer the kernel; the access is allowed");
                }
            }
            stats.latency.record(self.created.elapsed());
        }
        self.reporter
            .report(&self.access, response, cause, true, who, file);
    }
}

/// The sink of a scan nobody waits on: reports only.
pub struct ReportSink {
    access: Access,
    reporter: Arc<Reporter>,
    file: Mutex<Option<File>>,
}

impl ReportSink {
    /// A sink reporting on `access`.
    pub fn new(access: Access, reporter: Arc<Reporter>) -> Self {
        Self::with_file(access, reporter, None)
    }

    /// A sink reporting on `access` that hands `file` (the file scanned) to the
    /// reactions when it is infected.
    pub fn with_file(access: Access, reporter: Arc<Reporter>, file: Option<File>) -> Self {
        ReportSink {
            access,
            reporter,
            file: Mutex::new(file),
        }
    }
}

impl Answer for ReportSink {
    fn answer(&self, response: Response, cause: Cause<'_>) {
        let file = self.file.lock().unwrap_or_else(|p| p.into_inner()).take();
        self.reporter
            .report(&self.access, response, cause, false, None, file);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_allow_reason_is_counted_apart() {
        let s = DaemonStats::default();
        s.allowed(AllowReason::OwnPid);
        s.allowed(AllowReason::OwnPid);
        s.allowed(AllowReason::TooLarge);
        assert_eq!(s.allowed_for(AllowReason::OwnPid), 2);
        assert_eq!(s.allowed_for(AllowReason::TooLarge), 1);
        assert_eq!(s.allowed_for(AllowReason::Empty), 0);
        assert_eq!(s.allowed_summary(), "OwnPid=2 TooLarge=1");
        for r in REASONS {
            s.allowed(r);
        }
        assert_eq!(s.allowed_for(AllowReason::ExcludedPath), 1);
    }

    #[test]
    fn opener_of_this_process() {
        let a = Access {
            path: "/x".into(),
            pid: std::process::id() as i32,
            uid: None,
            kind: AccessKind::Open,
        };
        let who = Opener::capture(&a);
        assert_ne!(who.uid, "?");
        assert_ne!(who.comm, "?");
        assert_eq!(
            who.exe,
            std::env::current_exe().unwrap().display().to_string()
        );
        let gone = Opener::capture(&Access { pid: i32::MAX, ..a });
        assert_eq!(
            (gone.uid.as_str(), gone.comm.as_str(), gone.exe.as_str()),
            ("?", "?", "?")
        );
    }

    /// A name cannot forge a line or look like another name (review F9).
    #[test]
    fn escape_keeps_one_line_and_distinct_names() {
        assert_eq!(escape(b"/w/plain name.txt"), "/w/plain name.txt");
        assert_eq!(escape("/w/été".as_bytes()), "/w/été");
        assert_eq!(
            escape(b"/w/x\n/etc/shadow: X FOUND\r\t"),
            "/w/x\\n/etc/shadow: X FOUND\\r\\t"
        );
        assert_eq!(escape(b"a\\n"), "a\\\\n");
        assert_eq!(escape(b"/w/\xff\xfe"), "/w/\\xff\\xfe");
        assert_eq!(escape(b"\x1b[31m"), "\\u{1b}[31m");
        assert_ne!(escape(b"/w/\xff"), escape("/w/\u{fffd}".as_bytes()));
    }
}
