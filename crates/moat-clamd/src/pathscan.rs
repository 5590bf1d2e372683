//! SCAN, CONTSCAN, ALLMATCHSCAN and MULTISCAN: walking a path as clamd does and the reply
//! lines it produces (`<file>: <sig> FOUND`, `<file>: <msg> ERROR`, `<path>: Excluded`, and
//! the final `<path>: OK`).

use std::ffi::OsStr;
use std::fs::{File, Metadata};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use moat_guard::Verdict;

use crate::server::Ctx;

/// Sends one reply line; false when the client is gone. Shared with MULTISCAN's jobs.
pub type Emit = Arc<dyn Fn(&[u8]) -> bool + Send + Sync>;

/// Which path command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// SCAN: stop at the first infected file.
    Scan,
    /// CONTSCAN: report every infected file.
    Cont,
    /// ALLMATCHSCAN: as SCAN, with one line per signature matching the infected file.
    AllMatch,
    /// MULTISCAN: CONTSCAN with a directory's files scanned in parallel. The walk runs on
    /// the connection's thread and only files go to the pool, so moat never answers clamd's
    /// `Not enough threads for multiscan` (clamd's walk itself takes a worker).
    Multi,
}

/// Counts that decide the final `OK` line.
#[derive(Default)]
struct Tally {
    total: AtomicUsize,
    errors: AtomicUsize,
    infected: AtomicUsize,
}

impl Tally {
    /// clamd sends `<path>: OK` when nothing was found and not every file failed.
    fn ok(&self) -> bool {
        let errors = self.errors.load(Ordering::SeqCst);
        self.infected.load(Ordering::SeqCst) == 0
            && !(errors > 0 && errors == self.total.load(Ordering::SeqCst))
    }
}

/// Runs a path command; `emit` sends one reply line (without id or terminator) and returns
/// false when the client is gone (the walk stops, as clamd notices between files).
pub fn run(ctx: &Arc<Ctx>, arg: &[u8], mode: Mode, emit: Emit) {
    if mode == Mode::AllMatch && !ctx.settings.allow_all_match_scan {
        emit(&line(
            arg,
            "ALLMATCHSCAN command disabled by clamd configuration. ERROR",
        ));
        return;
    }
    let path = Path::new(OsStr::from_bytes(arg));
    let tally = Tally::default();
    if excluded(ctx, path) {
        // MULTISCAN of an excluded directory says nothing (a file falls back to CONTSCAN).
        if mode != Mode::Multi || !path.is_dir() {
            emit(&line(arg, "Excluded"));
        }
        return;
    }
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) => {
            emit(&line(
                arg,
                &format!("File path check failure: {}. ERROR", strerror(&e)),
            ));
            return;
        }
    };
    let meta = match follow(ctx, path, meta) {
        Some(m) => m,
        None => {
            // A top-level symlink clamd does not follow is skipped and reported OK.
            emit(&line(arg, "OK"));
            return;
        }
    };
    let mut walk = Walk {
        ctx,
        mode,
        emit: Arc::clone(&emit),
        tally: &tally,
        stop: false,
        root_dev: meta.dev(),
        multi: None,
    };
    if meta.is_dir() {
        if mode == Mode::Multi {
            walk.multi = Some(Arc::new(Multi::default()));
        }
        walk.dir(trim_slashes(arg), 0);
        if let Some(multi) = &walk.multi {
            multi.wait();
            tally
                .total
                .fetch_add(multi.total.load(Ordering::SeqCst), Ordering::SeqCst);
            tally
                .errors
                .fetch_add(multi.errors.load(Ordering::SeqCst), Ordering::SeqCst);
            tally
                .infected
                .fetch_add(multi.infected.load(Ordering::SeqCst), Ordering::SeqCst);
        }
    } else if meta.is_file() {
        walk.file(arg);
    } else {
        emit(&line(arg, "Not supported file type ERROR"));
    }
    // MULTISCAN of a directory with no file to scan says nothing at all (as clamd).
    let nothing_scanned = walk.multi.is_some() && tally.total.load(Ordering::SeqCst) == 0;
    if !walk.stop && tally.ok() && !nothing_scanned {
        emit(&line(arg, "OK"));
    }
}

/// MULTISCAN's files in flight.
#[derive(Default)]
struct Multi {
    pending: Mutex<usize>,
    done: Condvar,
    total: AtomicUsize,
    errors: AtomicUsize,
    infected: AtomicUsize,
}

impl Multi {
    fn wait(&self) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        while *p > 0 {
            p = self.done.wait(p).unwrap_or_else(|e| e.into_inner());
        }
    }
}

struct Walk<'a> {
    ctx: &'a Arc<Ctx>,
    mode: Mode,
    emit: Emit,
    tally: &'a Tally,
    /// SCAN found a virus, or the client is gone.
    stop: bool,
    root_dev: u64,
    multi: Option<Arc<Multi>>,
}

impl Walk<'_> {
    fn dir(&mut self, dir: &[u8], depth: u32) {
        let entries = match std::fs::read_dir(OsStr::from_bytes(dir)) {
            Ok(e) => e,
            Err(e) => {
                self.tally.total.fetch_add(1, Ordering::SeqCst);
                self.tally.errors.fetch_add(1, Ordering::SeqCst);
                let msg = if e.kind() == std::io::ErrorKind::PermissionDenied {
                    "Access denied. ERROR"
                } else {
                    "Can't open file or directory ERROR"
                };
                self.emit(&line(dir, msg));
                return;
            }
        };
        // clamd (cli_ftw, observed): exclusions are reported while the directory is read,
        // then files are visited before subdirectories, each in inode order.
        let mut visit: Vec<(bool, u64, Vec<u8>)> = Vec::new();
        for entry in entries.flatten() {
            if self.stop {
                return;
            }
            let mut child = dir.to_vec();
            if child.last() != Some(&b'/') {
                child.push(b'/');
            }
            child.extend_from_slice(entry.file_name().as_bytes());
            if excluded(self.ctx, Path::new(OsStr::from_bytes(&child))) {
                // MULTISCAN does not report exclusions (as clamd).
                if self.mode != Mode::Multi {
                    self.emit(&line(&child, "Excluded"));
                }
                continue;
            }
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            let ino = std::os::unix::fs::DirEntryExt::ino(&entry);
            visit.push((is_dir, ino, child));
        }
        visit.sort();
        for (_, _, child) in visit {
            if self.stop {
                return;
            }
            let path = PathBuf::from(OsStr::from_bytes(&child));
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let Some(meta) = follow(self.ctx, &path, meta) else {
                continue;
            };
            if meta.is_dir() {
                if !self.ctx.settings.cross_filesystems && meta.dev() != self.root_dev {
                    self.emit(&line(&child, "Excluded (another filesystem)"));
                    continue;
                }
                if depth < self.ctx.settings.max_directory_recursion {
                    self.dir(&child, depth + 1);
                }
            } else if meta.is_file() {
                self.file(&child);
            }
        }
    }

    fn emit(&mut self, l: &[u8]) {
        if !(self.emit)(l) {
            self.stop = true;
        }
    }

    fn emit_all(&mut self, lines: &[Vec<u8>]) {
        for l in lines {
            if !self.stop {
                self.emit(l);
            }
        }
    }

    fn file(&mut self, path: &[u8]) {
        if let Some(multi) = &self.multi {
            self.submit(Arc::clone(multi), path.to_vec());
            return;
        }
        self.tally.total.fetch_add(1, Ordering::SeqCst);
        let (lines, outcome) = scan_path(self.ctx, path, self.mode == Mode::AllMatch);
        match outcome {
            Outcome::Clean => {}
            Outcome::Error => {
                self.tally.errors.fetch_add(1, Ordering::SeqCst);
                self.emit_all(&lines);
            }
            Outcome::Infected => {
                self.tally.infected.fetch_add(1, Ordering::SeqCst);
                self.emit_all(&lines);
                if matches!(self.mode, Mode::Scan | Mode::AllMatch) {
                    self.stop = true;
                }
            }
        }
    }

    fn submit(&mut self, multi: Arc<Multi>, path: Vec<u8>) {
        *multi.pending.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        let ctx = Arc::clone(self.ctx);
        let emit = Arc::clone(&self.emit);
        let label = String::from_utf8_lossy(&path).into_owned();
        self.ctx.pool.submit(crate::pool::Job {
            command: "MULTISCAN",
            label,
            run: Box::new(move || {
                multi.total.fetch_add(1, Ordering::SeqCst);
                let (lines, outcome) = scan_path(&ctx, &path, false);
                match outcome {
                    Outcome::Clean => {}
                    Outcome::Error => {
                        multi.errors.fetch_add(1, Ordering::SeqCst);
                    }
                    Outcome::Infected => {
                        multi.infected.fetch_add(1, Ordering::SeqCst);
                    }
                }
                for l in &lines {
                    emit(l);
                }
                let mut p = multi.pending.lock().unwrap_or_else(|e| e.into_inner());
                *p -= 1;
                multi.done.notify_all();
            }),
        });
    }
}

enum Outcome {
    Clean,
    Infected,
    Error,
}

/// Scans one file by path (`all`: every matching signature, ALLMATCHSCAN); the reply lines
/// (none for a clean file) and what it was.
fn scan_path(ctx: &Arc<Ctx>, path: &[u8], all: bool) -> (Vec<Vec<u8>>, Outcome) {
    // The walk decided whether a symlink is followed; without FollowFileSymlinks a link
    // swapped in meanwhile is not.
    let nofollow = if ctx.settings.follow_file_symlinks {
        0
    } else {
        libc::O_NOFOLLOW
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nofollow | libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(OsStr::from_bytes(path));
    let file: File = match file {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return (vec![line(path, "Access denied. ERROR")], Outcome::Error)
        }
        Err(_) => {
            return (
                vec![line(path, "Can't open file or directory ERROR")],
                Outcome::Error,
            )
        }
    };
    let label = String::from_utf8_lossy(path);
    let names = if all {
        ctx.scan_all(&file, &label)
    } else {
        ctx.scan(&file, &label).map(|v| match v {
            Verdict::Infected(name) => vec![name],
            _ => Vec::new(),
        })
    };
    match names {
        Ok(names) if names.is_empty() => (Vec::new(), Outcome::Clean),
        Ok(names) => (
            names
                .iter()
                .map(|name| line(path, &format!("{name} FOUND")))
                .collect(),
            Outcome::Infected,
        ),
        Err(msg) => (vec![line(path, &format!("{msg} ERROR"))], Outcome::Error),
    }
}

/// `<label>: <rest>`.
pub fn line(label: &[u8], rest: &str) -> Vec<u8> {
    let mut l = label.to_vec();
    l.extend_from_slice(b": ");
    l.extend_from_slice(rest.as_bytes());
    l
}

fn excluded(ctx: &Ctx, path: &Path) -> bool {
    ctx.settings.exclude_paths.iter().any(|p| p.is_match(path))
}

/// The metadata to act on: a symlink is followed only as FollowFileSymlinks /
/// FollowDirectorySymlinks allow (`None`: skip it).
fn follow(ctx: &Ctx, path: &Path, meta: Metadata) -> Option<Metadata> {
    if !meta.file_type().is_symlink() {
        return Some(meta);
    }
    let target = std::fs::metadata(path).ok()?;
    let allowed = if target.is_dir() {
        ctx.settings.follow_directory_symlinks
    } else {
        ctx.settings.follow_file_symlinks
    };
    allowed.then_some(target)
}

fn trim_slashes(p: &[u8]) -> &[u8] {
    let mut end = p.len();
    while end > 1 && p[end - 1] == b'/' {
        end -= 1;
    }
    &p[..end]
}

/// The C library's message for an I/O error (`No such file or directory`), without Rust's
/// ` (os error N)` suffix.
pub fn strerror(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}
