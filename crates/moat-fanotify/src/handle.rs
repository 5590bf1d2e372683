//! File handles (`name_to_handle_at(2)` / `open_by_handle_at(2)`), filesystem ids and
//! `/proc/self/fd` path lookups.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// `MAX_HANDLE_SZ`: the largest file handle the kernel produces.
pub const MAX_HANDLE_SZ: usize = libc::MAX_HANDLE_SZ as usize;

/// A filesystem id (`__kernel_fsid_t`), as reported in FID records and by `statfs(2)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Fsid(pub [i32; 2]);

impl Fsid {
    /// The fsid of the filesystem holding `path` (`statfs(2)`).
    pub fn of_path(path: &Path) -> io::Result<Fsid> {
        let c = cstring(path)?;
        let mut st = std::mem::MaybeUninit::<libc::statfs>::uninit();
        // SAFETY: valid C string and out pointer.
        if unsafe { libc::statfs(c.as_ptr(), st.as_mut_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: statfs succeeded and filled the struct.
        Ok(Self::from_statfs(unsafe { &st.assume_init() }))
    }

    /// The fsid of the filesystem holding `fd` (`fstatfs(2)`).
    pub fn of_fd(fd: BorrowedFd<'_>) -> io::Result<Fsid> {
        let mut st = std::mem::MaybeUninit::<libc::statfs>::uninit();
        // SAFETY: valid fd and out pointer.
        if unsafe { libc::fstatfs(fd.as_raw_fd(), st.as_mut_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fstatfs succeeded and filled the struct.
        Ok(Self::from_statfs(unsafe { &st.assume_init() }))
    }

    fn from_statfs(st: &libc::statfs) -> Fsid {
        // SAFETY: `fsid_t` is `struct { int __val[2]; }` (private fields in libc).
        Fsid(unsafe { std::mem::transmute::<libc::fsid_t, [i32; 2]>(st.f_fsid) })
    }
}

/// An opaque file handle: `handle_type` and `f_handle` bytes of `struct file_handle`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileHandle {
    /// `handle_type`, filesystem specific.
    pub handle_type: i32,
    /// `f_handle`, at most [`MAX_HANDLE_SZ`] bytes.
    pub bytes: Vec<u8>,
}

/// `struct file_handle` with room for the largest handle.
#[repr(C)]
struct HandleBuf {
    handle_bytes: u32,
    handle_type: i32,
    f_handle: [u8; MAX_HANDLE_SZ],
}

impl FileHandle {
    /// The handle of `path` and the id of the mount it was found on (`name_to_handle_at(2)`).
    /// Follows a final symlink unless `follow` is false.
    pub fn from_path(path: &Path, follow: bool) -> io::Result<(FileHandle, i32)> {
        let c = cstring(path)?;
        Self::name_to_handle(libc::AT_FDCWD, c.as_ptr(), follow)
    }

    /// The handle of an open file (`name_to_handle_at(fd, "", AT_EMPTY_PATH)`) and its mount id.
    pub fn from_fd(fd: BorrowedFd<'_>) -> io::Result<(FileHandle, i32)> {
        Self::name_to_handle_empty(fd.as_raw_fd())
    }

    /// The handle fanotify's FID records use for an open file: `name_to_handle_at(fd, "",
    /// AT_EMPTY_PATH | AT_HANDLE_FID)` (Linux 6.5+; plain `from_fd` on older kernels), and
    /// its mount id. It equals [`from_fd`](Self::from_fd)'s on filesystems that can decode
    /// handles (ext4, xfs, btrfs, tmpfs: `open` works on it), and exists as well on those
    /// that cannot (procfs), where fanotify still reports non-decodable ids.
    pub fn fid_from_fd(fd: BorrowedFd<'_>) -> io::Result<(FileHandle, i32)> {
        match Self::name_to_handle_flags(fd.as_raw_fd(), libc::AT_EMPTY_PATH | libc::AT_HANDLE_FID)
        {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                Self::name_to_handle_empty(fd.as_raw_fd())
            }
            r => r,
        }
    }

    fn name_to_handle_empty(fd: i32) -> io::Result<(FileHandle, i32)> {
        Self::name_to_handle_flags(fd, libc::AT_EMPTY_PATH)
    }

    fn name_to_handle_flags(fd: i32, flags: i32) -> io::Result<(FileHandle, i32)> {
        let mut buf = HandleBuf {
            handle_bytes: MAX_HANDLE_SZ as u32,
            handle_type: 0,
            f_handle: [0; MAX_HANDLE_SZ],
        };
        let mut mount_id = 0;
        // SAFETY: buffer sized per handle_bytes; "" with AT_EMPTY_PATH names fd itself.
        let r = unsafe {
            libc::name_to_handle_at(
                fd,
                c"".as_ptr(),
                &mut buf as *mut HandleBuf as *mut libc::file_handle,
                &mut mount_id,
                flags,
            )
        };
        Self::finish(r, &buf, mount_id)
    }

    fn name_to_handle(
        dirfd: i32,
        path: *const libc::c_char,
        follow: bool,
    ) -> io::Result<(FileHandle, i32)> {
        let mut buf = HandleBuf {
            handle_bytes: MAX_HANDLE_SZ as u32,
            handle_type: 0,
            f_handle: [0; MAX_HANDLE_SZ],
        };
        let mut mount_id = 0;
        let flags = if follow { libc::AT_SYMLINK_FOLLOW } else { 0 };
        // SAFETY: buffer sized per handle_bytes; path is a valid C string.
        let r = unsafe {
            libc::name_to_handle_at(
                dirfd,
                path,
                &mut buf as *mut HandleBuf as *mut libc::file_handle,
                &mut mount_id,
                flags,
            )
        };
        Self::finish(r, &buf, mount_id)
    }

    fn finish(r: i32, buf: &HandleBuf, mount_id: i32) -> io::Result<(FileHandle, i32)> {
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        let n = (buf.handle_bytes as usize).min(MAX_HANDLE_SZ);
        Ok((
            FileHandle {
                handle_type: buf.handle_type,
                bytes: buf.f_handle[..n].to_vec(),
            },
            mount_id,
        ))
    }

    /// Opens the object this handle names (`open_by_handle_at(2)`). `mount_fd` is any fd on
    /// the same filesystem (e.g. the include path, opened at start); `flags` are `open(2)`
    /// flags (`O_PATH`, `O_RDONLY | O_DIRECTORY`, …). `O_CLOEXEC` is always added.
    /// Needs `CAP_DAC_READ_SEARCH`. `ESTALE` means the object no longer exists.
    pub fn open(&self, mount_fd: BorrowedFd<'_>, flags: i32) -> io::Result<OwnedFd> {
        if self.bytes.len() > MAX_HANDLE_SZ {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "file handle of {} bytes exceeds MAX_HANDLE_SZ",
                    self.bytes.len()
                ),
            ));
        }
        let mut buf = HandleBuf {
            handle_bytes: self.bytes.len() as u32,
            handle_type: self.handle_type,
            f_handle: [0; MAX_HANDLE_SZ],
        };
        buf.f_handle[..self.bytes.len()].copy_from_slice(&self.bytes);
        // SAFETY: buf is a valid struct file_handle; the kernel only reads it.
        let fd = unsafe {
            libc::open_by_handle_at(
                mount_fd.as_raw_fd(),
                &mut buf as *mut HandleBuf as *mut libc::file_handle,
                flags | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel returned a new fd we now own.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// The current path of the object this handle names: opens it with `O_PATH` (which
    /// raises no fanotify open event) and reads the `/proc/self/fd` link.
    pub fn resolve_path(&self, mount_fd: BorrowedFd<'_>) -> io::Result<PathBuf> {
        let fd = self.open(mount_fd, libc::O_PATH)?;
        fd_path(fd.as_fd())
    }
}

/// The path of an open fd, read from the `/proc/self/fd/N` link. This does not open the
/// file (safe on the thread that answers permission events). A deleted file's path ends
/// in `" (deleted)"`, as the kernel writes it.
pub fn fd_path(fd: BorrowedFd<'_>) -> io::Result<PathBuf> {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

pub(crate) fn cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("path contains a NUL byte: {}", path.display()),
        )
    })
}
