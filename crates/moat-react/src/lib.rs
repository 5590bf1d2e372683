//! What moat does about a detection once the verdict is given.
//!
//! - [`quarantine`]: `--move DIR` / `--copy DIR` / `--remove` of `moat watch` (clamonacc's
//!   flags) into a root-only quarantine directory with a JSON sidecar per entry, and the
//!   `moat quarantine list|restore|delete` operations;
//! - [`scan_action`]: the same flags for `moat scan`, with clamscan's naming and lines;
//! - [`virus_event`]: clamd.conf's `VirusEvent`, bounded in number and time;
//! - [`detections`]: JSON-lines detection records, deduplicated and rate-limited.
//!
//! [`Reactions`] runs them for the daemon on one thread fed by a bounded queue: the
//! answering thread only enqueues (never blocks; a full queue drops and counts), so no
//! opener ever waits for a move, a command or a disk write. It knows nothing about fanotify.

pub mod detections;
mod fsutil;
pub mod quarantine;
pub mod scan_action;
pub mod virus_event;

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use serde::{Deserialize, Serialize};

use detections::{DetectionLog, DetectionLogSettings};
use quarantine::{Keep, Quarantine};
use virus_event::VirusEvent;

/// The process that made the access.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Accessor {
    /// Its pid (0 for the daemon's own discoveries).
    pub pid: i32,
    /// Its uid, when known.
    pub uid: Option<u32>,
    /// `/proc/PID/comm`, escaped (`?` when unknown).
    pub comm: String,
    /// `/proc/PID/exe`, escaped (`?` when unknown).
    pub exe: String,
}

/// One detection, as handed over by the daemon after its answer.
#[derive(Debug)]
pub struct Detection {
    /// The path the access was made through.
    pub path: PathBuf,
    /// The file scanned (a duplicate of the event's fd), when available: actions apply
    /// to this inode and to nothing else.
    pub file: Option<File>,
    /// The signature name.
    pub signature: String,
    /// Who made the access.
    pub accessor: Accessor,
    /// `open`, `exec`, `close-write`, `discovered`.
    pub access: String,
    /// Whether the access was denied (else only reported).
    pub blocked: bool,
    /// When the verdict was given.
    pub time: SystemTime,
}

/// What happens to an infected file in `moat watch`.
#[derive(Debug)]
pub enum FileAction {
    /// `--move DIR`.
    Move(Quarantine),
    /// `--copy DIR`.
    Copy(Quarantine),
    /// `--remove`.
    Remove,
}

/// What the file action did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// No file action configured.
    None,
    /// Moved into the quarantine as this ID.
    Moved(String),
    /// Copied into the quarantine as this ID.
    Copied(String),
    /// Unlinked.
    Removed,
    /// The action failed (why).
    Failed(String),
}

impl Outcome {
    /// The `file_action` field of a detection record.
    pub fn file_action(&self) -> Option<String> {
        match self {
            Outcome::None => None,
            Outcome::Moved(_) => Some("moved".into()),
            Outcome::Copied(_) => Some("copied".into()),
            Outcome::Removed => Some("removed".into()),
            Outcome::Failed(why) => Some(format!("failed: {why}")),
        }
    }

    /// The quarantine ID, when the file went there.
    pub fn quarantine_id(&self) -> Option<&str> {
        match self {
            Outcome::Moved(id) | Outcome::Copied(id) => Some(id),
            _ => None,
        }
    }
}

/// What [`Reactions`] does.
#[derive(Debug, Default)]
pub struct ReactSettings {
    /// The file action.
    pub action: Option<FileAction>,
    /// `VirusEvent`.
    pub virus_event: Option<VirusEvent>,
    /// The detection log.
    pub detections_log: Option<DetectionLogSettings>,
}

impl ReactSettings {
    /// Whether there is anything to do.
    pub fn is_empty(&self) -> bool {
        self.action.is_none() && self.virus_event.is_none() && self.detections_log.is_none()
    }
}

/// Counters (relaxed atomics: statistics only).
#[derive(Debug, Default)]
pub struct ReactStats {
    /// Detections taken by the reaction thread.
    pub handled: AtomicU64,
    /// Detections dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Files moved, copied or removed (the sum of the three below).
    pub acted: AtomicU64,
    /// Files moved into the quarantine (`--move`).
    pub moved: AtomicU64,
    /// Files copied into the quarantine (`--copy`).
    pub copied: AtomicU64,
    /// Files removed (`--remove`).
    pub removed: AtomicU64,
    /// File actions that failed.
    pub action_failures: AtomicU64,
    /// Detections that ran no VirusEvent, being repeats within [`VIRUS_EVENT_WINDOW`].
    pub virus_event_repeats: AtomicU64,
    /// Lines written to the detection log.
    pub log_lines: AtomicU64,
    /// Detection-log records the rate limit refused (their count is written later).
    pub log_suppressed: AtomicU64,
    /// Repeats of a path and signature folded into one `repeated` record.
    pub log_deduplicated: AtomicU64,
    /// Writes to the detection log that failed.
    pub log_errors: AtomicU64,
}

/// The reaction thread and its queue.
#[derive(Debug)]
pub struct Reactions {
    queue: Mutex<Option<Sender<Detection>>>,
    stats: Arc<ReactStats>,
    virus_event: Option<Arc<virus_event::VirusEventStats>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Reactions {
    /// Detections that may wait; more are dropped (and counted) rather than delay anyone.
    pub const QUEUE: usize = 1024;

    /// Opens the detection log and starts the thread.
    pub fn start(settings: ReactSettings) -> std::io::Result<Arc<Reactions>> {
        let log = settings
            .detections_log
            .clone()
            .map(DetectionLog::open)
            .transpose()?;
        let (tx, rx) = crossbeam_channel::bounded(Self::QUEUE);
        let stats = Arc::new(ReactStats::default());
        let virus_event = settings.virus_event.as_ref().map(VirusEvent::shared_stats);
        let worker = Worker {
            action: settings.action,
            virus_event: settings.virus_event,
            log,
            stats: Arc::clone(&stats),
            dropped_logged: 0,
            fired: std::collections::HashMap::new(),
        };
        let thread = std::thread::Builder::new()
            .name("moat-react".into())
            .spawn(move || worker.run(rx))?;
        Ok(Arc::new(Reactions {
            queue: Mutex::new(Some(tx)),
            stats,
            virus_event,
            thread: Mutex::new(Some(thread)),
        }))
    }

    /// Hands a detection over; never blocks.
    pub fn submit(&self, d: Detection) {
        let queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let Some(tx) = queue.as_ref() else { return };
        match tx.try_send(d) {
            Ok(()) => {}
            Err(TrySendError::Full(d)) => {
                let n = self.stats.dropped.fetch_add(1, Relaxed) + 1;
                if !n.is_power_of_two() {
                    return; // logged at the 1st, 2nd, 4th... drop only
                }
                tracing::warn!(
                    "reactions queue full: nothing done about {} ({n} dropped so far)",
                    d.path.display()
                );
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// The counters.
    pub fn stats(&self) -> &ReactStats {
        &self.stats
    }

    /// VirusEvent's counters, when VirusEvent is configured.
    pub fn virus_event_stats(&self) -> Option<&virus_event::VirusEventStats> {
        self.virus_event.as_deref()
    }

    /// Finishes what is queued (up to `grace`), then stops the thread.
    pub fn stop(&self, grace: Duration) {
        drop(self.queue.lock().unwrap_or_else(|p| p.into_inner()).take());
        let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return;
        };
        let end = Instant::now() + grace;
        while !t.is_finished() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
        if t.is_finished() {
            let _ = t.join();
        } else {
            tracing::warn!("reactions still running after {grace:?}; abandoned");
        }
    }
}

struct Worker {
    action: Option<FileAction>,
    virus_event: Option<VirusEvent>,
    log: Option<DetectionLog>,
    stats: Arc<ReactStats>,
    /// `stats.dropped` as last written to the log.
    dropped_logged: u64,
    /// When VirusEvent last ran for a path and signature.
    fired: std::collections::HashMap<(PathBuf, String), Instant>,
}

/// Repeats of one path and signature within this window run VirusEvent once.
pub const VIRUS_EVENT_WINDOW: Duration = Duration::from_secs(60);

impl Worker {
    fn run(mut self, rx: Receiver<Detection>) {
        loop {
            match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(d) => self.handle(d),
                Err(RecvTimeoutError::Timeout) => self.tick(),
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        self.tick();
        if let Some(log) = &mut self.log {
            let done = log.close_all();
            self.log_done(done);
        }
    }

    /// Closes ended dedup windows and records detections the full queue dropped.
    fn tick(&mut self) {
        let Some(log) = &mut self.log else { return };
        let now = Instant::now();
        let dropped = self.stats.dropped.load(Relaxed);
        let new = dropped - self.dropped_logged;
        self.dropped_logged = dropped;
        let done = log.expire(now).and_then(|()| {
            if new > 0 {
                log.dropped(new, now)
            } else {
                Ok(())
            }
        });
        self.log_done(done);
    }

    /// Counts a detection-log operation's failure and publishes the log's counters.
    fn log_done(&self, done: std::io::Result<()>) {
        if let Err(e) = done {
            self.stats.log_errors.fetch_add(1, Relaxed);
            tracing::error!("detection log: {e}");
        }
        if let Some(log) = &self.log {
            self.stats.log_lines.store(log.lines, Relaxed);
            self.stats
                .log_suppressed
                .store(log.suppressed_total, Relaxed);
            self.stats.log_deduplicated.store(log.deduplicated, Relaxed);
        }
    }

    fn handle(&mut self, d: Detection) {
        self.stats.handled.fetch_add(1, Relaxed);
        if self.stats.dropped.load(Relaxed) > self.dropped_logged {
            self.tick();
        }
        let outcome = self.act(&d);
        match &outcome {
            Outcome::None => {}
            Outcome::Failed(why) => {
                self.stats.action_failures.fetch_add(1, Relaxed);
                tracing::error!("{}: {} not acted on: {why}", d.path.display(), d.signature);
            }
            done => {
                self.stats.acted.fetch_add(1, Relaxed);
                let kind = match done {
                    Outcome::Moved(_) => &self.stats.moved,
                    Outcome::Copied(_) => &self.stats.copied,
                    _ => &self.stats.removed,
                };
                kind.fetch_add(1, Relaxed);
                tracing::warn!(
                    "{}: {} {}{}",
                    d.path.display(),
                    d.signature,
                    done.file_action().unwrap_or_default(),
                    done.quarantine_id()
                        .map(|id| format!(" (quarantine ID {id})"))
                        .unwrap_or_default()
                );
            }
        }
        if let Some(log) = &mut self.log {
            let done = log.record(&d, &outcome, Instant::now());
            self.log_done(done);
        }
        if self.virus_event.is_some() {
            if self.first_in_window(&d) {
                if let Some(ve) = &self.virus_event {
                    ve.fire(d.path.as_os_str(), &d.signature);
                }
            } else {
                self.stats.virus_event_repeats.fetch_add(1, Relaxed);
            }
        }
    }

    /// Whether `d` is the first detection of its path and signature within
    /// [`VIRUS_EVENT_WINDOW`]: a loop of opens of one file runs VirusEvent once a window,
    /// not once an open (clamd runs it on every detection).
    fn first_in_window(&mut self, d: &Detection) -> bool {
        let now = Instant::now();
        if self.fired.len() >= 4096 {
            self.fired
                .retain(|_, t| now.duration_since(*t) < VIRUS_EVENT_WINDOW);
        }
        if self.fired.len() >= 4096 {
            self.fired.clear();
        }
        let key = (d.path.clone(), d.signature.clone());
        match self.fired.get(&key) {
            Some(t) if now.duration_since(*t) < VIRUS_EVENT_WINDOW => false,
            _ => {
                self.fired.insert(key, now);
                true
            }
        }
    }

    fn act(&self, d: &Detection) -> Outcome {
        let done = match &self.action {
            None => return Outcome::None,
            Some(FileAction::Move(q)) => q.put(d, Keep::Move).map(Outcome::Moved),
            Some(FileAction::Copy(q)) => q.put(d, Keep::Copy).map(Outcome::Copied),
            Some(FileAction::Remove) => {
                scan_action::remove_scanned(&d.path, d.file.as_ref()).map(|()| Outcome::Removed)
            }
        };
        done.unwrap_or_else(|e| Outcome::Failed(e.to_string()))
    }
}

/// `2026-12-07T18:33:23.123456Z`.
pub fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}
