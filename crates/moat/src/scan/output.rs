//! clamscan's output: one line per file, then the summary block.

use std::path::Path;
use std::time::{Duration, SystemTime};

use super::walk::path_line;

/// What happened to one scanned item, as a line for stdout.
#[derive(Debug)]
pub enum Outcome {
    /// Scanned, nothing found.
    Clean,
    /// A signature matched.
    Infected(String),
    /// A zero-byte file (clamscan prints `Empty file` and does not count it).
    Empty,
    /// The file could not be opened for lack of permission.
    AccessDenied,
    /// Any other error, with its message.
    Error(String),
}

/// Running totals for the summary.
#[derive(Debug, Default)]
pub struct Totals {
    /// Directories visited.
    pub directories: u64,
    /// Files scanned (clean or infected).
    pub files: u64,
    /// Files with a detection.
    pub infected: u64,
    /// Items that failed.
    pub errors: u64,
    /// Bytes fed to the engine.
    pub bytes_scanned: u64,
    /// Bytes of the files scanned.
    pub bytes_read: u64,
}

impl Totals {
    /// clamscan's exit status: 1 when anything was found, else 2 on any error, else 0.
    pub fn exit_code(&self) -> u8 {
        if self.infected > 0 {
            1
        } else if self.errors > 0 {
            2
        } else {
            0
        }
    }
}

/// The stdout line for an outcome about `shown` (a path, or `stdin`), or `None`
/// when nothing is printed (`-i` hides clean and empty files).
pub fn line(shown: &Path, outcome: &Outcome, infected_only: bool) -> Option<Vec<u8>> {
    let message = match outcome {
        Outcome::Clean | Outcome::Empty if infected_only => return None,
        Outcome::Clean => "OK".to_owned(),
        Outcome::Empty => "Empty file".to_owned(),
        Outcome::Infected(name) => format!("{name} FOUND"),
        Outcome::AccessDenied => "Access denied".to_owned(),
        Outcome::Error(message) => format!("{message} ERROR"),
    };
    Some(path_line(shown, &message))
}

/// The summary block, exactly as clamscan lays it out.
pub fn summary(
    known: usize,
    totals: &Totals,
    elapsed: Duration,
    start: SystemTime,
    end: SystemTime,
) -> String {
    let mb = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    let ratio = if totals.bytes_read == 0 {
        0.0
    } else {
        totals.bytes_scanned as f64 / totals.bytes_read as f64
    };
    let secs = elapsed.as_secs();
    format!(
        "\n----------- SCAN SUMMARY -----------\n\
         Known viruses: {known}\n\
         Engine version: {version}\n\
         Scanned directories: {dirs}\n\
         Scanned files: {files}\n\
         Infected files: {infected}\n\
         Data scanned: {scanned:.2} MB\n\
         Data read: {read:.2} MB (ratio {ratio:.2}:1)\n\
         Time: {time:.3} sec ({m} m {s} s)\n\
         Start Date: {start}\n\
         End Date:   {end}",
        version = concat!("moat ", env!("CARGO_PKG_VERSION")),
        dirs = totals.directories,
        files = totals.files,
        infected = totals.infected,
        scanned = mb(totals.bytes_scanned),
        read = mb(totals.bytes_read),
        time = elapsed.as_secs_f64(),
        m = secs / 60,
        s = secs % 60,
        start = local_time(start),
        end = local_time(end),
    )
}

/// `YYYY:MM:DD HH:MM:SS` in local time, clamscan's date format.
fn local_time(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as libc::time_t;
    // SAFETY: localtime_r writes into the zeroed struct we own; no shared state.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&secs, &mut tm);
        tm
    };
    format!(
        "{:04}:{:02}:{:02} {:02}:{:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}
