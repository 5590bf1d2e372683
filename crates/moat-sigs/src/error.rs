//! Errors with the precise location of the problem.

use std::fmt;
use std::path::PathBuf;

/// Why one line (or one field of it) could not be parsed. Carries no location: the
/// caller that knows the file and line wraps it into a [`LoadError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl ParseError {
    /// A parse error with the given human-readable reason.
    pub fn new(reason: impl Into<String>) -> Self {
        ParseError(reason.into())
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

/// A database could not be loaded. The load as a whole fails, as ClamAV's does.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A malformed line: file, 1-based line number (0 for the file as a whole) and reason.
    #[error("{}{}: {reason}", path.display(), line_suffix(*line))]
    Malformed {
        /// The database file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: ParseError,
    },
    /// A file or directory could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A `.cvd`/`.cld`/`.cud` container was refused (corrupt, truncated, checksums).
    #[error("{}: {reason}", path.display())]
    Container {
        /// The container file.
        path: PathBuf,
        /// What is wrong with it.
        reason: crate::cvd::ContainerError,
    },
    /// A path given as database holds no database file at all.
    #[error("{}: no supported database files found", path.display())]
    Empty {
        /// The path given.
        path: PathBuf,
    },
}

fn line_suffix(line: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(":{line}")
    }
}
