//! clamscan's `--move=DIR`, `--copy=DIR` and `--remove` for `moat scan`.
//!
//! Observed with clamscan 1.4.6 (the differential test in crates/moat/tests/react.rs
//! checks them): the action line follows the `FOUND` line on stdout, naming the file as
//! given and, when that differs from its real path, `(real path: '…')`:
//!
//! ```text
//! src/e.com: Eicar-Signature FOUND
//! src/e.com (real path: '/tmp/cs/src/e.com'): moved to '/tmp/cs/q/e.com'
//! ```
//!
//! `copied to '…'` and `Removed.` likewise. The target is `DIR/NAME`, else `DIR/NAME.001`,
//! `.002`…; nothing is overwritten (`RENAME_NOREPLACE`, `O_EXCL`); a copy is mode 0600;
//! across filesystems a move is a copy then an unlink. Failures go to stderr as
//! `ERROR: …` lines. The directory must exist (`action_setup: Failed to get realpath of
//! DIR` otherwise, exit 2 before scanning).
//!
//! Unlike clamscan, which acts on the path again, moat acts on the file it scanned: the
//! real path's parent is opened with `RESOLVE_NO_SYMLINKS` and the name found there must
//! be the scanned inode, else the file is left alone.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::fsutil;

/// The destination directory of `--move` / `--copy`.
#[derive(Debug)]
pub struct Target {
    dir: OwnedFd,
    real: PathBuf,
}

impl Target {
    /// Resolves and opens `dir`; the error is clamscan's message for stderr.
    pub fn open(dir: &Path) -> Result<Target, String> {
        let real = std::fs::canonicalize(dir)
            .map_err(|_| format!("action_setup: Failed to get realpath of {}", dir.display()))?;
        if !real.is_dir() {
            return Err(format!(
                "ERROR: '{}' doesn't exist or is not a directory",
                real.display()
            ));
        }
        let dir = fsutil::open_dir_strict(&real)
            .map_err(|e| format!("ERROR: can't open '{}': {}", real.display(), strerror(&e)))?;
        Ok(Target { dir, real })
    }
}

/// What `moat scan` does with an infected file.
#[derive(Debug)]
pub enum ScanAction {
    /// `--move=DIR`.
    Move(Target),
    /// `--copy=DIR`.
    Copy(Target),
    /// `--remove`.
    Remove,
}

impl ScanAction {
    /// Acts on `file` (scanned, found infected) given as `shown`. `Ok` is the stdout line,
    /// `Err` the stderr line.
    pub fn apply(&self, shown: &Path, file: &File) -> Result<String, String> {
        let real = std::fs::canonicalize(shown).map_err(|e| {
            format!(
                "ERROR: Can't get real path of '{}': {}",
                shown.display(),
                strerror(&e)
            )
        })?;
        let label = label(shown, &real);
        match self {
            ScanAction::Remove => match remove_scanned(&real, Some(file)) {
                Ok(()) => Ok(format!("{label}: Removed.")),
                Err(_) => Err(format!(
                    "ERROR: Can't remove file '{}'{}",
                    shown.display(),
                    real_suffix(shown, &real)
                )),
            },
            ScanAction::Copy(t) => {
                let dest = copy_into(t, &real, file).map_err(|e| {
                    format!(
                        "ERROR: Can't copy file '{}'{} to '{}': {}",
                        shown.display(),
                        real_suffix(shown, &real),
                        t.real.display(),
                        strerror(&e)
                    )
                })?;
                Ok(format!("{label}: copied to '{}'", dest.display()))
            }
            ScanAction::Move(t) => {
                let dest = move_into(t, shown, &real, file)?;
                Ok(format!("{label}: moved to '{}'", dest.display()))
            }
        }
    }
}

fn label(shown: &Path, real: &Path) -> String {
    format!("{}{}", shown.display(), real_suffix(shown, real))
}

fn real_suffix(shown: &Path, real: &Path) -> String {
    if shown == real {
        String::new()
    } else {
        format!(" (real path: '{}')", real.display())
    }
}

/// The candidates clamscan tries: `NAME`, `NAME.001` … `NAME.999`.
fn candidates(name: &OsStr) -> impl Iterator<Item = OsString> + '_ {
    (0..1000).map(move |i| {
        let mut n = name.to_os_string();
        if i > 0 {
            n.push(format!(".{i:03}"));
        }
        n
    })
}

fn copy_into(t: &Target, real: &Path, file: &File) -> io::Result<PathBuf> {
    let name = real.file_name().unwrap_or(OsStr::new("file"));
    for cand in candidates(name) {
        match fsutil::create_new_in(&t.dir, &cand, 0o600) {
            Ok(dst) => {
                fsutil::copy_all(file, &dst).inspect_err(|_| {
                    let _ = fsutil::unlink_in(&t.dir, &cand);
                })?;
                return Ok(t.real.join(cand));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::from_raw_os_error(libc::EEXIST))
}

fn move_into(t: &Target, shown: &Path, real: &Path, file: &File) -> Result<PathBuf, String> {
    let fail = |e: io::Error| {
        format!(
            "ERROR: Can't move file '{}'{} to '{}': {}",
            shown.display(),
            real_suffix(shown, real),
            t.real.display(),
            strerror(&e)
        )
    };
    let (parent, name) = fsutil::open_parent(real).map_err(fail)?;
    let meta = file.metadata().map_err(fail)?;
    if !fsutil::is_same_file(&parent, name, &meta).map_err(fail)? {
        return Err(fail(io::Error::other("replaced since the scan")));
    }
    for cand in candidates(name) {
        match fsutil::rename_noreplace(&parent, name, &t.dir, &cand) {
            Ok(()) => return Ok(t.real.join(cand)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                let dest = copy_into(t, real, file).map_err(fail)?;
                let unlinked = fsutil::is_same_file(&parent, name, &meta).and_then(|same| {
                    if same {
                        fsutil::unlink_in(&parent, name)
                    } else {
                        Err(io::Error::other("replaced since the scan"))
                    }
                });
                return match unlinked {
                    Ok(()) => Ok(dest),
                    Err(e) => Err(format!(
                        "ERROR: Can't unlink '{}'{} after copy: {}",
                        shown.display(),
                        real_suffix(shown, real),
                        strerror(&e)
                    )),
                };
            }
            Err(e) => return Err(fail(e)),
        }
    }
    Err(fail(io::Error::from_raw_os_error(libc::EEXIST)))
}

/// Unlinks `path` (absolute) if it still is `file` (when given), never through a symlink.
pub fn remove_scanned(path: &Path, file: Option<&File>) -> io::Result<()> {
    let (parent, name) = fsutil::open_parent(path)?;
    if let Some(file) = file {
        if !fsutil::is_same_file(&parent, name, &file.metadata()?)? {
            return Err(io::Error::other(format!(
                "{} is no longer the file that was scanned: left alone",
                path.display()
            )));
        }
    }
    fsutil::unlink_in(&parent, name)
}

/// The C library's message for an error, without Rust's ` (os error N)`.
fn strerror(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

/// Bytes of a path for a line (clamscan prints names as bytes).
pub fn path_bytes(p: &Path) -> &[u8] {
    p.as_os_str().as_bytes()
}
