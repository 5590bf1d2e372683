//! A FUSE filesystem whose server can stall: one file, `f`, served by a thread of this
//! process ([`fuser`], mounted as root with `allow_other`). While stalled, every FUSE_OPEN
//! waits; the first one the server gets when a scanner watches it is the scanner's own open
//! of the event's file (the kernel makes it inside the reader's read(2)). The same idea as the
//! root test `a_stalled_fuse_server_below_an_include_path_holds_no_other_open` of
//! crates/moat/tests/watch.rs, reduced to what the benchmark needs.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};

#[derive(Default)]
struct State {
    stall: bool,
    /// FUSE_OPEN requests waiting on the stall now.
    waiting: usize,
}

type Shared = Arc<(Mutex<State>, Condvar)>;

struct Files {
    state: Shared,
    content: Vec<u8>,
}

const TTL: Duration = Duration::from_secs(60);

fn attr(ino: u64, size: u64) -> fuser::FileAttr {
    let dir = ino == 1;
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

impl fuser::Filesystem for Files {
    fn lookup(
        &self,
        _req: &fuser::Request,
        parent: fuser::INodeNo,
        name: &std::ffi::OsStr,
        reply: fuser::ReplyEntry,
    ) {
        if u64::from(parent) == 1 && name == "f" {
            let a = attr(2, self.content.len() as u64);
            reply.entry(&TTL, &a, fuser::Generation(0));
        } else {
            reply.error(fuser::Errno::ENOENT);
        }
    }

    fn getattr(
        &self,
        _req: &fuser::Request,
        ino: fuser::INodeNo,
        _fh: Option<fuser::FileHandle>,
        reply: fuser::ReplyAttr,
    ) {
        match u64::from(ino) {
            1 => reply.attr(&TTL, &attr(1, 0)),
            2 => reply.attr(&TTL, &attr(2, self.content.len() as u64)),
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
        let (lock, cv) = &*self.state;
        let mut s = lock.lock().unwrap_or_else(|p| p.into_inner());
        s.waiting += 1;
        cv.notify_all();
        while s.stall {
            s = cv.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        s.waiting -= 1;
        reply.opened(fuser::FileHandle(0), fuser::FopenFlags::empty());
    }

    #[allow(clippy::too_many_arguments)]
    fn read(
        &self,
        _req: &fuser::Request,
        _ino: fuser::INodeNo,
        _fh: fuser::FileHandle,
        offset: u64,
        size: u32,
        _flags: fuser::OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: fuser::ReplyData,
    ) {
        let c = &self.content;
        let start = (offset as usize).min(c.len());
        let end = (start + size as usize).min(c.len());
        reply.data(&c[start..end]);
    }
}

/// The mounted server; released and unmounted on drop.
pub struct StallingFuse {
    state: Shared,
    session: Option<fuser::BackgroundSession>,
}

impl StallingFuse {
    /// Mounts it on `at` (an existing empty directory).
    pub fn mount(at: &Path) -> Result<StallingFuse, String> {
        let state: Shared = Arc::default();
        let files = Files {
            state: state.clone(),
            content: b"a file served by a FUSE server that stalls\n".to_vec(),
        };
        let mut config = fuser::Config::default();
        config.mount_options = vec![fuser::MountOption::FSName("moat-bench-fuse".into())];
        config.acl = fuser::SessionACL::All;
        let session = fuser::spawn_mount(files, at, &config)
            .map_err(|e| format!("mounting the FUSE server on {}: {e}", at.display()))?;
        Ok(StallingFuse {
            state,
            session: Some(session),
        })
    }

    /// Starts or ends the stall.
    pub fn set_stall(&self, stall: bool) {
        let (lock, cv) = &*self.state;
        lock.lock().unwrap_or_else(|p| p.into_inner()).stall = stall;
        cv.notify_all();
    }

    /// Waits up to `limit` until a FUSE_OPEN is held by the stall.
    pub fn wait_for_a_held_open(&self, limit: Duration) -> bool {
        let (lock, cv) = &*self.state;
        let mut s = lock.lock().unwrap_or_else(|p| p.into_inner());
        let deadline = Instant::now() + limit;
        while s.waiting == 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            s = cv
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
