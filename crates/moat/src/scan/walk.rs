//! Enumerating the files to scan, in clamscan's order.
//!
//! clamscan visits each directory in `readdir` order and recurses into a
//! subdirectory as soon as it meets it; so does this walker, so that moat's output
//! lines come in the same order. Every item gets a sequence number; scanning happens
//! in parallel elsewhere and the printer restores this order.

use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use regex::bytes::Regex;

/// How symlinks are treated, as clamscan's `--follow-*-symlinks=0|1|2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    /// Never follow.
    Never,
    /// Follow only symlinks named on the command line (clamscan's default).
    CommandLine,
    /// Always follow.
    Always,
}

impl Follow {
    /// From clamscan's numeric level.
    pub fn from_level(level: u8) -> Follow {
        match level {
            0 => Follow::Never,
            1 => Follow::CommandLine,
            _ => Follow::Always,
        }
    }

    fn allows(self, on_command_line: bool) -> bool {
        match self {
            Follow::Never => false,
            Follow::CommandLine => on_command_line,
            Follow::Always => true,
        }
    }
}

/// What the walker decided about one path.
#[derive(Debug)]
pub enum Item {
    /// A regular file to scan.
    File(PathBuf),
    /// Standard input (`-`).
    Stdin,
    /// A line for stdout that needs no scan (e.g. `DIR: Can't open directory.`); an error.
    Failed(Vec<u8>),
    /// A line for stdout that is neither a result nor an error (`PATH: Symbolic link`,
    /// `PATH: Excluded`); hidden by `-i`.
    Notice(Vec<u8>),
    /// A problem reported on stderr only (e.g. a missing command-line path); an error.
    Warning(Vec<String>),
}

/// Walker settings.
pub struct WalkOptions {
    /// Descend into subdirectories.
    pub recursive: bool,
    /// Skip files whose path matches any of these (matched on the raw bytes of the
    /// path, like clamscan's POSIX regexes).
    pub exclude: Vec<Regex>,
    /// Skip directories whose path matches any of these.
    pub exclude_dir: Vec<Regex>,
    /// Symlinks to directories.
    pub follow_dirs: Follow,
    /// Symlinks to files.
    pub follow_files: Follow,
}

/// Walks the command-line `paths`, calling `emit` for each item in order, and
/// returns the number of directories visited.
pub fn walk(paths: &[PathBuf], options: &WalkOptions, emit: &mut dyn FnMut(Item)) -> u64 {
    let mut walker = Walker {
        options,
        emit,
        directories: 0,
    };
    for path in paths {
        walker.command_line(path);
    }
    walker.directories
}

struct Walker<'a> {
    options: &'a WalkOptions,
    emit: &'a mut dyn FnMut(Item),
    directories: u64,
}

impl Walker<'_> {
    fn command_line(&mut self, path: &Path) {
        if path.as_os_str() == "-" {
            return (self.emit)(Item::Stdin);
        }
        let meta = match fs::symlink_metadata(path) {
            Ok(meta) => meta,
            Err(e) => {
                let shown = path.display();
                return (self.emit)(Item::Warning(vec![
                    format!("{shown}: {}", io_message(&e)),
                    format!("WARNING: {shown}: Can't access file"),
                ]));
            }
        };
        let file_type = if meta.file_type().is_symlink() {
            // A dangling symlink on the command line is skipped silently, as clamscan does.
            let Ok(target) = fs::metadata(path) else {
                return;
            };
            let target = target.file_type();
            let follow = if target.is_dir() {
                self.options.follow_dirs
            } else {
                self.options.follow_files
            };
            if !follow.allows(true) {
                return;
            }
            target
        } else {
            meta.file_type()
        };
        if file_type.is_dir() {
            self.directory(path);
        } else if file_type.is_file() {
            self.file(path.to_owned());
        } else {
            (self.emit)(Item::Warning(vec![format!(
                "WARNING: {}: Not supported file type",
                path.display()
            )]));
        }
    }

    /// Visits a directory: its regular files, and its subdirectories when recursive.
    fn directory(&mut self, dir: &Path) {
        if self.excluded_dir(dir) {
            return (self.emit)(Item::Notice(path_line(dir, "Excluded")));
        }
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(_) => return (self.emit)(Item::Failed(path_line(dir, "Can't open directory."))),
        };
        self.directories += 1;
        for entry in entries {
            let Ok(entry) = entry else { continue };
            let path = entry.path();
            let Ok(mut file_type) = entry.file_type() else {
                continue;
            };
            if file_type.is_symlink() {
                match fs::metadata(&path) {
                    Ok(target) if target.is_dir() && self.options.follow_dirs.allows(false) => {
                        file_type = target.file_type()
                    }
                    Ok(target) if target.is_file() && self.options.follow_files.allows(false) => {
                        file_type = target.file_type()
                    }
                    // A dangling link is silent once links are followed at all.
                    Err(_) if self.options.follow_files == Follow::Always => continue,
                    _ => {
                        (self.emit)(Item::Notice(path_line(&path, "Symbolic link")));
                        continue;
                    }
                }
            }
            if file_type.is_dir() {
                if self.options.recursive {
                    self.directory(&path);
                }
            } else if file_type.is_file() {
                self.file(path);
            }
        }
    }

    /// A regular file: scanned unless `--exclude` matches.
    fn file(&mut self, path: PathBuf) {
        if self.excluded_file(&path) {
            (self.emit)(Item::Notice(path_line(&path, "Excluded")));
        } else {
            (self.emit)(Item::File(path));
        }
    }

    /// `--exclude` patterns match the file's absolute path (as clamscan's do).
    fn excluded_file(&self, path: &Path) -> bool {
        if self.options.exclude.is_empty() {
            return false;
        }
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        let bytes = absolute.as_os_str().as_bytes();
        self.options.exclude.iter().any(|re| re.is_match(bytes))
    }

    /// `--exclude-dir` patterns match the directory's path as it is printed.
    fn excluded_dir(&self, path: &Path) -> bool {
        let bytes = path.as_os_str().as_bytes();
        self.options.exclude_dir.iter().any(|re| re.is_match(bytes))
    }
}

/// `PATH: message` with the path's bytes as they are (clamscan prints file names raw,
/// whatever their encoding).
pub fn path_line(path: &Path, message: &str) -> Vec<u8> {
    let mut line = path.as_os_str().as_bytes().to_vec();
    line.extend_from_slice(b": ");
    line.extend_from_slice(message.as_bytes());
    line
}

/// The message clamscan prints for a path it cannot access.
fn io_message(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "No such file or directory".into(),
        io::ErrorKind::PermissionDenied => "Permission denied".into(),
        _ => e.to_string(),
    }
}
