//! Exclusion by the accessor's executable (`OnAccessExcludeExe`, `--exclude-exe`): accesses
//! by a process running one of the listed programs (and, with `+children`, by its
//! descendants) are allowed unscanned.
//!
//! **Identity, not name.** Each program is opened (`O_PATH`) at start and compared by
//! `(st_dev, st_ino)`: a copy elsewhere, or a file of the same name in another directory, is
//! another inode and is not excluded. The `O_PATH` fd is held for the daemon's life, so the
//! inode cannot be freed and its number reused by a file a user creates later. A program
//! that a user other than root could modify (not owned by root, group/other writable, or in
//! a directory such a user could write without the sticky bit) is refused at start with a
//! warning: anyone able to write it could run anything under its exclusion.
//!
//! **No pid races.** The accessor is named by a pidfd: the one the kernel puts in the event
//! (`FAN_REPORT_PIDFD`, exact by construction) or, without it, `pidfd_open(pid)`. The
//! executable is read through `/proc/<pid>/exe` (a `stat` following the magic link: the
//! inode the process runs, whatever its path), and the pidfd is then checked to still hold
//! that pid: a pid is not reused while any pidfd process still holds it, so what was read
//! belonged to the accessor. Each ancestor (children mode) is opened the same way, its pid
//! confirmed by re-reading the child's parent after the `pidfd_open` (a reparented child
//! has another parent pid, so a recycled pid is never trusted). Anything that cannot be
//! confirmed is "not excluded": the file is scanned.
//!
//! Nothing here touches a watched file: procfs cannot carry fanotify marks.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The deepest ancestor chain followed for `+children`.
const MAX_ANCESTORS: usize = 64;

/// One excluded program.
#[derive(Debug)]
struct Entry {
    path: PathBuf,
    dev: u64,
    ino: u64,
    children: bool,
    /// Held so the inode (and its number) stays the program's.
    _pin: File,
}

/// The excluded programs, resolved once (at start or reload). See the module docs.
#[derive(Debug, Default)]
pub struct ExeExclusions {
    entries: Vec<Entry>,
}

/// Why a program was refused as an exclusion.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// It cannot be opened.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// Not a regular file.
    #[error("not a regular file")]
    NotFile,
    /// A user other than root could change it.
    #[error("{0} is writable by a user other than root: anyone who can write it could run anything unscanned")]
    Writable(PathBuf),
}

impl ExeExclusions {
    /// Opens each `(path, children)`; a program that cannot be opened or that a user other
    /// than root could modify is left out with a warning (its accesses are then scanned).
    pub fn open(list: &[(PathBuf, bool)]) -> ExeExclusions {
        let mut entries = Vec::new();
        for (path, children) in list {
            match pin(path) {
                Ok((file, dev, ino)) => {
                    tracing::info!(exe = %path.display(), children, "accesses by this executable are not scanned (OnAccessExcludeExe)");
                    entries.push(Entry {
                        path: path.clone(),
                        dev,
                        ino,
                        children: *children,
                        _pin: file,
                    })
                }
                Err(e) => tracing::warn!(exe = %path.display(), error = %e,
                    "OnAccessExcludeExe refused: accesses by this program are scanned"),
            }
        }
        ExeExclusions { entries }
    }

    /// Programs excluded (those refused not counted).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No program is excluded.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The excluded program the process `pid` (named by `pidfd` when the event carried one)
    /// runs, or descends from with `+children`; `None` when not excluded or not confirmed.
    pub fn excluded(&self, pid: i32, pidfd: Option<BorrowedFd<'_>>) -> Option<&Path> {
        if self.entries.is_empty() || pid <= 0 {
            return None;
        }
        let owned;
        let pidfd = match pidfd {
            Some(fd) => fd,
            None => {
                owned = pidfd_open(pid).ok()?;
                owned.as_fd()
            }
        };
        let exe = exe_of(pid, pidfd).ok()?;
        if let Some(e) = self.find(exe, false) {
            return Some(&e.path);
        }
        if !self.entries.iter().any(|e| e.children) {
            return None;
        }
        let (mut pid, mut fd) = parent_of(pid, pidfd)?;
        for _ in 0..MAX_ANCESTORS {
            let exe = exe_of(pid, fd.as_fd()).ok()?;
            if let Some(e) = self.find(exe, true) {
                return Some(&e.path);
            }
            (pid, fd) = parent_of(pid, fd.as_fd())?;
        }
        None
    }

    fn find(&self, (dev, ino): (u64, u64), ancestor: bool) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| e.dev == dev && e.ino == ino && (e.children || !ancestor))
    }
}

/// Opens `path` `O_PATH` (no open event, no read) and checks that only root can change it.
fn pin(path: &Path) -> Result<(File, u64, u64), Refused> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
        .open(path)?;
    let st = file.metadata()?;
    if !st.is_file() {
        return Err(Refused::NotFile);
    }
    if st.uid() != 0 || st.mode() & 0o022 != 0 {
        return Err(Refused::Writable(path.to_path_buf()));
    }
    // The directories of its real path: one a user could write (without the sticky bit,
    // which keeps root's names root's) would let that user put another file at this path,
    // which a reload would then pin.
    let real = std::fs::canonicalize(path)?;
    for dir in real.ancestors().skip(1) {
        let m = std::fs::metadata(dir)?;
        let sticky = m.mode() & libc::S_ISVTX != 0;
        if m.uid() != 0 || (m.mode() & 0o022 != 0 && !sticky) {
            return Err(Refused::Writable(dir.to_path_buf()));
        }
    }
    Ok((file, st.dev(), st.ino()))
}

/// `(dev, ino)` of the executable `pid` runs, confirmed to be read from the process `pidfd`
/// names (see the module docs).
fn exe_of(pid: i32, pidfd: BorrowedFd<'_>) -> io::Result<(u64, u64)> {
    let st = std::fs::metadata(format!("/proc/{pid}/exe"))?;
    still_holds(pidfd)?;
    Ok((st.dev(), st.ino()))
}

/// The parent of `pid`, as a pid and a pidfd confirmed to name it: `None` when it cannot be
/// confirmed (exited, reparented meanwhile) or is init.
fn parent_of(pid: i32, pidfd: BorrowedFd<'_>) -> Option<(i32, OwnedFd)> {
    let ppid = ppid_of(pid).ok()?;
    if ppid <= 1 {
        return None;
    }
    let fd = pidfd_open(ppid).ok()?;
    // Still the child's parent after the pidfd was taken (a parent that died first would
    // have left the child reparented), and the child still the process read.
    (ppid_of(pid).ok()? == ppid && still_holds(pidfd).is_ok()).then_some((ppid, fd))
}

fn ppid_of(pid: i32) -> io::Result<i32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| io::Error::other("no PPid in /proc/PID/status"))
}

fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; a non-negative result is a new fd we own.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: see above.
    Ok(unsafe { OwnedFd::from_raw_fd(r as i32) })
}

/// Ok while the process `pidfd` names has not been reaped (so its pid is still its own).
fn still_holds(pidfd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: signal 0 only checks; null info is allowed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            0,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_executable_is_recognised_and_a_copy_is_not() {
        let me = std::fs::read_link("/proc/self/exe").unwrap();
        let pid = std::process::id() as i32;
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("copy");
        std::fs::copy(&me, &copy).unwrap();
        // Where the test binary lives may not pass the ownership checks (a build dir): the
        // identity part is checked directly.
        let (file, dev, ino) = pin_unchecked(&me);
        let ex = ExeExclusions {
            entries: vec![Entry {
                path: me.clone(),
                dev,
                ino,
                children: false,
                _pin: file,
            }],
        };
        assert_eq!(ex.excluded(pid, None), Some(me.as_path()));
        let (file, dev, ino) = pin_unchecked(&copy);
        let other = ExeExclusions {
            entries: vec![Entry {
                path: copy.clone(),
                dev,
                ino,
                children: true,
                _pin: file,
            }],
        };
        assert_eq!(other.excluded(pid, None), None);
    }

    #[test]
    fn writable_program_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tool");
        std::fs::write(&p, b"#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(matches!(
            pin(&p),
            Err(Refused::Writable(_)) | Err(Refused::Io(_))
        ));
        assert!(ExeExclusions::open(&[(p, false)]).is_empty());
    }

    fn pin_unchecked(p: &Path) -> (File, u64, u64) {
        let f = File::open(p).unwrap();
        let m = f.metadata().unwrap();
        (f, m.dev(), m.ino())
    }
}
