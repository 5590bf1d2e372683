//! A FUSE filesystem whose server can stall (feature `fuse`), for the on-access tests and the
//! watch benchmark's attacks.
//!
//! What it serves: a root directory holding the files given to [`StallingFuse::mount`]
//! (name → content, read-only, mode 0644, owned by root), served by a thread of this process
//! ([`fuser`], pure Rust, no libfuse: root mounts it with mount(2), `allow_other` so any uid
//! reaches it).
//!
//! How it stalls: while [`StallingFuse::set_stall`]`(true)` holds, every FUSE_OPEN waits in the
//! server. With a fanotify scanner watching the mount, the first open the server gets is the
//! scanner's own open of the event's file (the kernel makes it inside the reader's read(2)),
//! so a stall holds exactly what a hung network or FUSE server would hold.
//! [`StallingFuse::wait_for_a_held_open`] tells when an open is held.
//!
//! How it is released: `set_stall(false)`, the guard of [`StallingFuse::release_on_drop`], or
//! dropping the [`StallingFuse`], which releases the stall and then unmounts and joins the
//! server thread. A FUSE request the server has read holds its caller even through SIGKILL
//! until answered, so a process that waits on the stall can only be reaped after a release.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, UNIX_EPOCH};

/// Inode of the root directory (FUSE's fixed `FUSE_ROOT_ID`).
const ROOT: u64 = 1;
/// How long the kernel may cache entries and attributes (the content never changes).
const TTL: Duration = Duration::from_secs(60);

#[derive(Default)]
struct State {
    stall: bool,
    /// FUSE_OPEN requests waiting on the stall now.
    waiting: usize,
}

type Shared = Arc<(Mutex<State>, Condvar)>;

fn lock(state: &Shared) -> MutexGuard<'_, State> {
    // A panicking test thread must not turn the release in Drop into a second panic.
    state.0.lock().unwrap_or_else(|p| p.into_inner())
}

/// The server side: file `i` of `files` is inode `i + 2`.
struct Files {
    state: Shared,
    files: Vec<(String, Vec<u8>)>,
}

impl Files {
    fn content(&self, ino: u64) -> Option<&[u8]> {
        let index = usize::try_from(ino.checked_sub(ROOT + 1)?).ok()?;
        self.files.get(index).map(|(_, c)| c.as_slice())
    }

    fn attr(ino: u64, size: u64) -> fuser::FileAttr {
        let dir = ino == ROOT;
        fuser::FileAttr {
            ino: fuser::INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: UNIX_EPOCH,
            mtime: UNIX_EPOCH,
            ctime: UNIX_EPOCH,
            crtime: UNIX_EPOCH,
            kind: if dir {
                fuser::FileType::Directory
            } else {
                fuser::FileType::RegularFile
            },
            perm: if dir { 0o755 } else { 0o644 },
            nlink: if dir { 2 } else { 1 },
            uid: 0,
            gid: 0,
            rdev: 0,
            flags: 0,
            blksize: 512,
        }
    }
}

impl fuser::Filesystem for Files {
    fn lookup(
        &self,
        _req: &fuser::Request,
        parent: fuser::INodeNo,
        name: &std::ffi::OsStr,
        reply: fuser::ReplyEntry,
    ) {
        let found = (u64::from(parent) == ROOT)
            .then(|| self.files.iter().position(|(n, _)| name == n.as_str()))
            .flatten();
        match found {
            Some(i) => {
                let ino = i as u64 + ROOT + 1;
                let size = self.files[i].1.len() as u64;
                reply.entry(&TTL, &Self::attr(ino, size), fuser::Generation(0));
            }
            None => reply.error(fuser::Errno::ENOENT),
        }
    }

    fn getattr(
        &self,
        _req: &fuser::Request,
        ino: fuser::INodeNo,
        _fh: Option<fuser::FileHandle>,
        reply: fuser::ReplyAttr,
    ) {
        let ino = u64::from(ino);
        match (ino, self.content(ino)) {
            (ROOT, _) => reply.attr(&TTL, &Self::attr(ROOT, 0)),
            (_, Some(c)) => reply.attr(&TTL, &Self::attr(ino, c.len() as u64)),
            _ => reply.error(fuser::Errno::ENOENT),
        }
    }

    fn open(
        &self,
        _req: &fuser::Request,
        _ino: fuser::INodeNo,
        _flags: fuser::OpenFlags,
        reply: fuser::ReplyOpen,
    ) {
        let mut s = lock(&self.state);
        s.waiting += 1;
        self.state.1.notify_all();
        while s.stall {
            s = self.state.1.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        s.waiting -= 1;
        reply.opened(fuser::FileHandle(0), fuser::FopenFlags::empty());
    }

    #[allow(clippy::too_many_arguments)] // fuser's signature
    fn read(
        &self,
        _req: &fuser::Request,
        ino: fuser::INodeNo,
        _fh: fuser::FileHandle,
        offset: u64,
        size: u32,
        _flags: fuser::OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: fuser::ReplyData,
    ) {
        match self.content(u64::from(ino)) {
            Some(c) => {
                let start = usize::try_from(offset).unwrap_or(usize::MAX).min(c.len());
                let end = start.saturating_add(size as usize).min(c.len());
                reply.data(&c[start..end]);
            }
            None => reply.error(fuser::Errno::ENOENT),
        }
    }
}

/// The mounted server (see the [module](self) docs); released and unmounted on drop.
pub struct StallingFuse {
    state: Shared,
    session: Option<fuser::BackgroundSession>,
}

/// Releases the stall of a [`StallingFuse`] when dropped (see
/// [`StallingFuse::release_on_drop`]).
pub struct Release(Shared);

impl Drop for Release {
    fn drop(&mut self) {
        lock(&self.0).stall = false;
        self.0 .1.notify_all();
    }
}

impl StallingFuse {
    /// Mounts a server of `files` (name, content) on `at`, an existing empty directory, not
    /// stalled. Needs root.
    pub fn mount(at: &Path, files: &[(&str, &[u8])]) -> Result<StallingFuse, String> {
        let state: Shared = Arc::default();
        let files = Files {
            state: state.clone(),
            files: files
                .iter()
                .map(|(n, c)| (n.to_string(), c.to_vec()))
                .collect(),
        };
        let mut config = fuser::Config::default();
        config.mount_options = vec![fuser::MountOption::FSName("moat-test-fuse".into())];
        config.acl = fuser::SessionACL::All;
        let session = fuser::spawn_mount(files, at, &config)
            .map_err(|e| format!("mounting the test FUSE server on {}: {e}", at.display()))?;
        Ok(StallingFuse {
            state,
            session: Some(session),
        })
    }

    /// Starts (`true`) or ends (`false`) the stall; ending it answers every held open.
    pub fn set_stall(&self, stall: bool) {
        lock(&self.state).stall = stall;
        self.state.1.notify_all();
    }

    /// A guard that ends the stall when dropped. Declared after a daemon whose open may be
    /// held, it is dropped before it when a test fails, so the daemon can be reaped.
    #[must_use = "the stall ends when the guard is dropped"]
    pub fn release_on_drop(&self) -> Release {
        Release(self.state.clone())
    }

    /// How many FUSE_OPEN requests the stall holds now.
    pub fn waiting(&self) -> usize {
        lock(&self.state).waiting
    }

    /// Waits up to `limit` until the stall holds a FUSE_OPEN; false when none came.
    pub fn wait_for_a_held_open(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut s = lock(&self.state);
        while s.waiting == 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            s = self
                .state
                .1
                .wait_timeout(s, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }
}

impl Drop for StallingFuse {
    fn drop(&mut self) {
        self.set_stall(false);
        if let Some(s) = self.session.take() {
            let _ = s.umount_and_join();
        }
    }
}
