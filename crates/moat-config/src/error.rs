//! Errors and warnings produced while loading a configuration.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read (missing, unreadable, a directory...).
    #[error("cannot read {}: {error}", path.display())]
    Read {
        /// The file that was asked for.
        path: PathBuf,
        /// What the operating system said.
        error: io::Error,
    },
    /// The file was read but has one or more bad lines. Every bad line of the file is listed,
    /// in file order; the message shows them one per line.
    #[error("{}", DisplayLines(errors))]
    Invalid {
        /// The bad lines (never empty).
        errors: Vec<LineError>,
    },
}

impl ConfigError {
    /// The bad lines, in file order (empty for [`ConfigError::Read`]).
    pub fn line_errors(&self) -> &[LineError] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid { errors } => errors,
        }
    }
}

struct DisplayLines<'a>(&'a [LineError]);

impl fmt::Display for DisplayLines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// What is wrong with a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineErrorKind {
    /// The key is not one clamd 1.4 or moat knows (keys are case-sensitive).
    UnknownKey,
    /// The key has no value.
    MissingValue,
    /// The value does not have the key's type, or is out of range.
    BadValue,
    /// The `Example` line of ClamAV's unedited sample file.
    ExampleLine,
    /// The line is not valid UTF-8.
    NotUtf8,
}

/// One bad line: `path:line: key: reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// The file (as given to [`crate::Config::load`] or [`crate::Config::parse`]).
    pub path: PathBuf,
    /// 1-based line number.
    pub line: usize,
    /// The key of the line, when one could be read.
    pub key: Option<String>,
    /// The kind of problem, for programs.
    pub kind: LineErrorKind,
    /// The reason, for people (e.g. `expected a number, got "many"`).
    pub reason: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.path.display(), self.line)?;
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.reason)
    }
}

/// Something accepted but worth telling the user (deprecated key, repeated key, ...). Displayed
/// as `path:line: key: message`; the caller logs it at warning level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The file.
    pub path: PathBuf,
    /// 1-based line number.
    pub line: usize,
    /// The key of the line.
    pub key: String,
    /// What to tell the user.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.path.display(),
            self.line,
            self.key,
            self.message
        )
    }
}

/// A key clamd knows but moat does not use; the caller logs it at debug level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnusedKey {
    /// 1-based line number.
    pub line: usize,
    /// The key.
    pub key: String,
    /// Its value, as written (already checked against the key's type).
    pub value: String,
}

pub(crate) fn line_error(
    path: &Path,
    line: usize,
    key: Option<&str>,
    kind: LineErrorKind,
    reason: impl Into<String>,
) -> LineError {
    LineError {
        path: path.to_path_buf(),
        line,
        key: key.map(str::to_owned),
        kind,
        reason: reason.into(),
    }
}
