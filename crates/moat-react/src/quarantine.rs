//! The quarantine directory of `moat watch --move/--copy` and `moat quarantine`.
//!
//! Layout: one entry per detection, `ID` (the file, root-owned, mode 0600) beside `ID.json`
//! (a [`Sidecar`]: where it came from, its owner, mode and times, the signature, the
//! accessor). An ID is `SECONDS-NANOSECONDS` of the quarantine time; it is reserved by
//! creating `ID.json` with `O_EXCL`, so two entries never share a name and nothing is
//! overwritten. The directory must be owned by the daemon's user and closed to everyone
//! else (mode 0700): it is opened once, through `openat2(RESOLVE_NO_SYMLINKS)`, and every
//! operation goes through that fd.
//!
//! Restoring puts the file back with `renameat2(RENAME_NOREPLACE)` (or an `O_EXCL` copy
//! across filesystems) into a parent opened with `RESOLVE_NO_SYMLINKS`: a symlink planted
//! in the original path's parents makes the restore fail rather than write elsewhere, and
//! an existing file there is never replaced.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::fsutil;
use crate::{Accessor, Detection};

/// Metadata kept beside a quarantined file (`ID.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Sidecar {
    /// The entry's ID (its file name in the quarantine directory).
    pub id: String,
    /// `moved` or `copied`.
    pub action: String,
    /// The original path, for people (not UTF-8 bytes replaced).
    pub original_path: String,
    /// The original path's exact bytes, hex: what `restore` uses.
    pub original_path_hex: String,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Mode bits (permissions, setuid/setgid/sticky; `st_mode & 0o7777`).
    pub mode: u32,
    /// Size in bytes.
    pub size: u64,
    /// Last access `[seconds, nanoseconds]`.
    pub atime: [i64; 2],
    /// Last modification `[seconds, nanoseconds]`.
    pub mtime: [i64; 2],
    /// Last status change `[seconds, nanoseconds]` (for the record; cannot be restored).
    pub ctime: [i64; 2],
    /// The signature that matched.
    pub signature: String,
    /// Who opened the file.
    pub accessor: Accessor,
    /// When the detection happened (RFC 3339, UTC).
    pub detected: String,
}

impl Sidecar {
    /// The original path as bytes.
    pub fn original(&self) -> io::Result<PathBuf> {
        let bytes = decode_hex(&self.original_path_hex).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "original_path_hex is not hex")
        })?;
        Ok(PathBuf::from(OsString::from_vec(bytes)))
    }
}

/// Whether a quarantined file stays at its place (`--copy`) or leaves it (`--move`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Moved into the quarantine (renamed, or copied then unlinked across filesystems).
    Move,
    /// Copied into the quarantine; the original stays.
    Copy,
}

/// An open quarantine directory.
#[derive(Debug)]
pub struct Quarantine {
    dir: OwnedFd,
    path: PathBuf,
}

/// One entry of [`Quarantine::list`].
#[derive(Debug)]
pub struct Entry {
    /// Its metadata.
    pub sidecar: Sidecar,
    /// Whether the file itself is there.
    pub present: bool,
}

impl Quarantine {
    /// Opens (with `create`, creating mode 0700 first when missing) the quarantine
    /// directory `path`. Refused when it is not a directory owned by this process's user,
    /// when group or others have any access to it, or when a component is a symlink.
    pub fn open(path: &Path, create: bool) -> io::Result<Quarantine> {
        let path = std::path::absolute(path)?;
        if create && std::fs::symlink_metadata(&path).is_err() {
            std::fs::DirBuilder::new().mode(0o700).create(&path)?;
        }
        let dir = fsutil::open_dir_strict(&path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "quarantine directory {}: {e} (symlinks are refused)",
                    path.display()
                ),
            )
        })?;
        let meta = File::from(dir.try_clone()?).metadata()?;
        if meta.uid() != fsutil::euid() {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "quarantine directory {} is owned by uid {}, not by uid {} (this daemon)",
                    path.display(),
                    meta.uid(),
                    fsutil::euid()
                ),
            ));
        }
        if meta.mode() & 0o077 != 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "quarantine directory {} has mode {:04o}: group and others must have no access (chmod 700 it)",
                    path.display(),
                    meta.mode() & 0o7777
                ),
            ));
        }
        Ok(Quarantine { dir, path })
    }

    /// The directory's path (as given, made absolute).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Puts the detected file in the quarantine; returns the new entry's ID.
    ///
    /// The file acted on is the one scanned: `detection.file` (the fd the verdict was
    /// about) when present. For [`Keep::Move`] the name at `detection.path` must still be
    /// that inode (else it was replaced since the scan and is left alone); a copy reads
    /// the scanned fd, whatever the path holds now.
    pub fn put(&self, detection: &Detection, keep: Keep) -> io::Result<String> {
        let (parent, name) = fsutil::open_parent(&detection.path)?;
        let file = match &detection.file {
            Some(f) => f.try_clone()?,
            None => fsutil::open_file_in(&parent, name)?,
        };
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        if keep == Keep::Move && !fsutil::is_same_file(&parent, name, &meta)? {
            return Err(replaced(&detection.path));
        }
        let (id, sidecar_file) = self.reserve()?;
        let placed = match keep {
            Keep::Move => self.move_in(&parent, name, &file, &id, &meta),
            Keep::Copy => self.copy_in(&file, &id),
        };
        if let Err(e) = placed {
            let _ = fsutil::unlink_in(&self.dir, OsStr::new(&sidecar_name(&id)));
            return Err(e);
        }
        let sidecar = Sidecar {
            id: id.clone(),
            action: match keep {
                Keep::Move => "moved",
                Keep::Copy => "copied",
            }
            .into(),
            original_path: detection.path.to_string_lossy().into_owned(),
            original_path_hex: encode_hex(detection.path.as_os_str().as_bytes()),
            uid: meta.uid(),
            gid: meta.gid(),
            mode: meta.mode() & 0o7777,
            size: meta.len(),
            atime: [meta.atime(), meta.atime_nsec()],
            mtime: [meta.mtime(), meta.mtime_nsec()],
            ctime: [meta.ctime(), meta.ctime_nsec()],
            signature: detection.signature.clone(),
            accessor: detection.accessor.clone(),
            detected: crate::rfc3339(detection.time),
        };
        serde_json::to_writer_pretty(&sidecar_file, &sidecar).map_err(io::Error::other)?;
        sidecar_file.sync_all()?;
        Ok(id)
    }

    /// Reserves a fresh ID by creating its sidecar (`O_EXCL`).
    fn reserve(&self) -> io::Result<(String, File)> {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let (secs, mut nanos) = (now.as_secs(), u64::from(now.subsec_nanos()));
        loop {
            let id = format!("{secs}-{nanos:09}");
            match fsutil::create_new_in(&self.dir, OsStr::new(&sidecar_name(&id)), 0o600) {
                Ok(f) => return Ok((id, f)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => nanos += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// Renames the file into the quarantine (copy then unlink across filesystems), then
    /// makes the inode root's, mode 0600: no other link to it stays usable by its owner.
    fn move_in(
        &self,
        parent: &OwnedFd,
        name: &OsStr,
        file: &File,
        id: &str,
        meta: &std::fs::Metadata,
    ) -> io::Result<()> {
        match fsutil::rename_noreplace(parent, name, &self.dir, OsStr::new(id)) {
            Ok(()) => {
                rustix::fs::fchown(
                    file,
                    Some(rustix::fs::Uid::ROOT),
                    Some(rustix::fs::Gid::ROOT),
                )?;
                rustix::fs::fchmod(file, rustix::fs::Mode::from_raw_mode(0o600))?;
                Ok(())
            }
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                self.copy_in(file, id)?;
                if !fsutil::is_same_file(parent, name, meta)? {
                    let _ = fsutil::unlink_in(&self.dir, OsStr::new(id));
                    return Err(replaced(Path::new(name)));
                }
                fsutil::unlink_in(parent, name).inspect_err(|_| {
                    let _ = fsutil::unlink_in(&self.dir, OsStr::new(id));
                })
            }
            Err(e) => Err(e),
        }
    }

    fn copy_in(&self, file: &File, id: &str) -> io::Result<()> {
        let dst = fsutil::create_new_in(&self.dir, OsStr::new(id), 0o600)?;
        fsutil::copy_all(file, &dst).inspect_err(|_| {
            let _ = fsutil::unlink_in(&self.dir, OsStr::new(id));
        })?;
        Ok(())
    }

    /// Every entry, oldest first. A sidecar that cannot be read is reported as an error
    /// naming it.
    pub fn list(&self) -> io::Result<Vec<Entry>> {
        let mut ids = Vec::new();
        let mut dir = rustix::fs::Dir::read_from(&self.dir)?;
        while let Some(entry) = dir.read() {
            let entry = entry?;
            let name = entry.file_name().to_bytes();
            if let Some(id) = name.strip_suffix(b".json") {
                if let Ok(id) = std::str::from_utf8(id) {
                    if valid_id(id) {
                        ids.push(id.to_owned());
                    }
                }
            }
        }
        ids.sort();
        ids.into_iter()
            .map(|id| {
                let sidecar = self.sidecar(&id)?;
                let present = rustix::fs::statat(
                    &self.dir,
                    id.as_str(),
                    rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
                )
                .is_ok();
                Ok(Entry { sidecar, present })
            })
            .collect()
    }

    /// The sidecar of entry `id`.
    pub fn sidecar(&self, id: &str) -> io::Result<Sidecar> {
        check_id(id)?;
        let name = sidecar_name(id);
        let mut text = String::new();
        fsutil::open_file_in(&self.dir, OsStr::new(&name))?.read_to_string(&mut text)?;
        serde_json::from_str(&text).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", self.path.join(&name).display()),
            )
        })
    }

    /// Puts entry `id` back at its original path with its owner, mode and times; returns
    /// that path. Refuses to replace an existing file and to go through a symlink.
    pub fn restore(&self, id: &str) -> io::Result<PathBuf> {
        let sidecar = self.sidecar(id)?;
        let original = sidecar.original()?;
        let (parent, name) = fsutil::open_parent(&original).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("{}: parent directory: {e}", original.display()),
            )
        })?;
        if rustix::fs::statat(&parent, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists: not overwritten", original.display()),
            ));
        }
        let src = fsutil::open_file_in(&self.dir, OsStr::new(id))?;
        let restored = match fsutil::rename_noreplace(&self.dir, OsStr::new(id), &parent, name) {
            Ok(()) => src,
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                let dst = fsutil::create_new_in(&parent, name, 0o600)?;
                fsutil::copy_all(&src, &dst)?;
                fsutil::unlink_in(&self.dir, OsStr::new(id))?;
                dst
            }
            Err(e) => return Err(e),
        };
        apply_metadata(&restored, &sidecar)?;
        fsutil::unlink_in(&self.dir, OsStr::new(&sidecar_name(id)))?;
        Ok(original)
    }

    /// Deletes entry `id` (the file and its sidecar).
    pub fn delete(&self, id: &str) -> io::Result<()> {
        check_id(id)?;
        match fsutil::unlink_in(&self.dir, OsStr::new(id)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        fsutil::unlink_in(&self.dir, OsStr::new(&sidecar_name(id)))
    }
}

/// Owner first (a chown clears setuid/setgid), then mode, then times.
fn apply_metadata(file: &File, s: &Sidecar) -> io::Result<()> {
    use rustix::fs::{Gid, Timespec, Timestamps, Uid};
    rustix::fs::fchown(
        file.as_fd(),
        Some(Uid::from_raw(s.uid)),
        Some(Gid::from_raw(s.gid)),
    )?;
    rustix::fs::fchmod(
        file.as_fd(),
        rustix::fs::Mode::from_raw_mode(s.mode & 0o7777),
    )?;
    let ts = |t: [i64; 2]| Timespec {
        tv_sec: t[0],
        tv_nsec: t[1] as _,
    };
    rustix::fs::futimens(
        file.as_fd(),
        &Timestamps {
            last_access: ts(s.atime),
            last_modification: ts(s.mtime),
        },
    )?;
    Ok(())
}

fn replaced(path: &Path) -> io::Error {
    io::Error::other(format!(
        "{} is no longer the file that was scanned: left alone",
        path.display()
    ))
}

fn sidecar_name(id: &str) -> String {
    format!("{id}.json")
}

/// `DIGITS-DIGITS`: the only names `restore` and `delete` accept, so an ID argument can
/// never name anything outside the entry (no `/`, no `..`).
pub fn valid_id(id: &str) -> bool {
    match id.split_once('-') {
        Some((a, b)) => {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        }
        None => false,
    }
}

fn check_id(id: &str) -> io::Result<()> {
    if valid_id(id) {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{id:?} is not a quarantine ID (SECONDS-NANOSECONDS, as `moat quarantine list` prints)"),
        ))
    }
}

fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_cannot_name_other_files() {
        assert!(valid_id("1796668400-000000001"));
        for bad in [
            "", "-", "1-", "-1", "../1-1", "1-1/..", "1-1.json", "a-1", "1-1-1",
        ] {
            assert!(!valid_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn path_bytes_round_trip_through_hex() {
        let p = b"/w/\xff\n name";
        assert_eq!(decode_hex(&encode_hex(p)).unwrap(), p);
        assert_eq!(decode_hex("abc"), None);
        assert_eq!(decode_hex("zz"), None);
    }
}
