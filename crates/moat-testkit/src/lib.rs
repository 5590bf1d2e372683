//! Helpers for moat's root-only tests (dev-only, never published).
//!
//! - [`privileged`]: the skip rule every root-only test starts with.
//! - [`spawn_as`] and its shortcuts [`read_as_nobody`] / [`exec_as_nobody`]: a forked child
//!   that drops to another uid and does one [`Action`] (open+read, or execve), reporting the
//!   outcome as an exact exit code (0, or the errno), so a test can tell EPERM from
//!   anything else.
//! - [`Child`]: waits with a bound, and is killed and reaped on drop (also when a test
//!   panics), so no test leaves a process behind.
//! - [`watched_dir`] and [`write_file`]: a fresh directory that uid 65534 can enter, and
//!   files with a given mode.
//! - [`watch`]: `moat watch` started with a config, READY=1 awaited, stopped on drop.
//! - [`fuse`] (feature `fuse`): a FUSE server that stalls every open on demand.
//! - [`clamd`]: real clamd (or `moat serve`) on temp sockets, waited for and killed on drop.
//! - [`testfiles`]: ClamAV's test files (clamav-testfiles) and their oracle skip rule.
//! - [`cvd`]: database containers (`.cvd`/`.cld`) built at test time.
//!
//! Safety of the children: after `fork` the child only makes async-signal-safe calls, with
//! no allocation and no locks (the test process has other threads, whose locks may be held
//! at the instant of the fork). Everything it needs (paths, the expected content, a read
//! buffer, argv) is built by the parent before forking.

#![warn(missing_docs)]

pub mod clamd;
pub mod cvd;
#[cfg(feature = "fuse")]
pub mod fuse;
pub mod testfiles;
pub mod watch;

use md5::Digest as _;
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// uid (and gid) of `nobody`, the unprivileged user the children run as.
pub const NOBODY: u32 = 65534;

/// How long [`Child::wait`] waits before failing the test.
pub const CHILD_TIMEOUT: Duration = Duration::from_secs(10);

/// Exit code of a child whose `setgroups`/`setgid`/`setuid` failed.
pub const EXIT_SETUID_FAILED: i32 = 120;

/// Exit code of an [`Action::Read`] child that read content other than expected.
pub const EXIT_WRONG_CONTENT: i32 = 99;

/// Offset added to the errno of a failed `read()` (a failed `open()` exits with the bare
/// errno).
pub const EXIT_READ_ERRNO_BASE: i32 = 100;

/// The skip rule of root-only tests: true when running as root. Otherwise prints
/// `skipped: needs root (...)` and returns false (the test then returns and passes),
/// unless `MOAT_REQUIRE_PRIVILEGED=1`, where it panics (CI runs as root and must not skip
/// silently).
pub fn privileged() -> bool {
    // SAFETY: plain syscall.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var("MOAT_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
        panic!("MOAT_REQUIRE_PRIVILEGED=1 but not root: fanotify permission events need root");
    }
    println!("skipped: needs root (fanotify permission events)");
    false
}

/// Whether `cmd` is on `PATH`.
pub fn have(cmd: &str) -> bool {
    std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {cmd}"))
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The skip rule of oracle tests: true when every one of `tools` (real ClamAV programs) is
/// installed. Otherwise prints `skipped: ... (INSTALL)` and returns false, unless
/// `MOAT_REQUIRE_ORACLE=1`, where it panics (CI installs them and must not skip silently).
pub fn oracle(tools: &[&str], install: &str) -> bool {
    if tools.iter().all(|t| have(t)) {
        return true;
    }
    let names = tools.join("/");
    if std::env::var("MOAT_REQUIRE_ORACLE").as_deref() == Ok("1") {
        panic!("{names} not installed but MOAT_REQUIRE_ORACLE=1 ({install})");
    }
    println!("skipped: {names} not installed ({install})");
    false
}

/// The skip rule of tests against clamscan: [`oracle`] for `clamscan` alone.
pub fn clamscan() -> bool {
    oracle(&["clamscan"], "apt-get install clamav")
}

/// ClamAV's real signature files, `../shared/sigs/clamav-real` beside the workspace (read
/// its README). When absent (a fresh clone has no `../shared`): prints `skipped: ../shared
/// absent (...)` and returns `None`, unless `MOAT_REQUIRE_SHARED=1`, where it panics (CI
/// provides it and must not skip silently).
pub fn real_sigs() -> Option<PathBuf> {
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/sigs/clamav-real"
    ));
    if dir.is_dir() {
        return Some(dir.to_owned());
    }
    if std::env::var("MOAT_REQUIRE_SHARED").as_deref() == Ok("1") {
        panic!("../shared absent but MOAT_REQUIRE_SHARED=1");
    }
    println!("skipped: ../shared absent ({})", dir.display());
    None
}

/// A minimal PE32 with one section holding `body` at file offset 0x200 (RVA 0x1000,
/// raw and virtual size `body.len()`), entry point RVA 0x1010 (file offset 0x210): enough
/// for ClamAV's and moat's PE typing, `EP`/`Sx` offsets and `Target:1` signatures.
pub fn pe32(body: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 0x200];
    f[..2].copy_from_slice(b"MZ");
    f[0x3c..0x40].copy_from_slice(&0x40u32.to_le_bytes());
    f[0x40..0x44].copy_from_slice(b"PE\0\0");
    f[0x46..0x48].copy_from_slice(&1u16.to_le_bytes());
    f[0x54..0x56].copy_from_slice(&0xe0u16.to_le_bytes());
    let opt = 0x58;
    f[opt..opt + 2].copy_from_slice(&0x10bu16.to_le_bytes());
    f[opt + 16..opt + 20].copy_from_slice(&0x1010u32.to_le_bytes());
    f[opt + 32..opt + 36].copy_from_slice(&0x1000u32.to_le_bytes());
    f[opt + 36..opt + 40].copy_from_slice(&0x200u32.to_le_bytes());
    f[opt + 60..opt + 64].copy_from_slice(&0x200u32.to_le_bytes());
    let s = opt + 0xe0;
    let raw = body.len() as u32;
    f[s + 8..s + 12].copy_from_slice(&raw.to_le_bytes());
    f[s + 12..s + 16].copy_from_slice(&0x1000u32.to_le_bytes());
    f[s + 16..s + 20].copy_from_slice(&raw.to_le_bytes());
    f[s + 20..s + 24].copy_from_slice(&0x200u32.to_le_bytes());
    f.extend_from_slice(body);
    f
}

/// What a child does once it runs as its uid. Built by the parent (the child cannot
/// allocate).
#[derive(Debug, Clone)]
pub enum Action {
    /// `open(O_RDONLY)`, then `read()` to the end; exits 0 when the content equals `expect`,
    /// errno on a failed open, [`EXIT_READ_ERRNO_BASE`] + errno on a failed read,
    /// [`EXIT_WRONG_CONTENT`] on other content.
    Read {
        /// The file to open.
        path: CString,
        /// The exact content the file must have.
        expect: Vec<u8>,
    },
    /// `execve(path)` with `argv = [path]` and an empty environment; exits with the
    /// program's status, or errno when execve fails.
    Exec {
        /// The program to run.
        path: CString,
    },
    /// `open(O_RDONLY)` and one `read()` of whatever is there (for files too large to
    /// compare); exits 0, errno on a failed open, [`EXIT_READ_ERRNO_BASE`] + errno on a
    /// failed read.
    ReadAny {
        /// The file to open.
        path: CString,
    },
    /// In a new user and mount namespace of its own (`unshare(CLONE_NEWUSER | CLONE_NEWNS)`,
    /// uid 0 inside mapped to the child's uid: what `unshare -Urm` does, no privilege
    /// needed), make `mounts` in order, then [`Action::Read`] `path`. Exits as `Read`, or
    /// [`EXIT_NS_SETUP`] when the namespace or a mount could not be made.
    InNamespace {
        /// The mounts to make, in order.
        mounts: Vec<NsMount>,
        /// The file to open.
        path: CString,
        /// The exact content the file must have.
        expect: Vec<u8>,
        /// `/proc/self/uid_map` and `gid_map` content, prepared before the fork.
        map: CString,
    },
    /// The race test: for each round, `mkdir` every directory of `mkdirs` (0755), create
    /// `file` and write `content`; with `rename`, first open and read `file` where it is,
    /// then `rename(from, to)`; finally `open(read)`. Exits with the number of final opens
    /// that succeeded (capped at [`EXIT_RACE_CAP`]), [`EXIT_RACE_SETUP`] when a round
    /// could not be prepared, [`EXIT_RACE_ERRNO`] when a final open failed with another
    /// errno than `EPERM`.
    Race {
        /// The rounds, every path prepared before the fork.
        rounds: Vec<RaceRound>,
        /// What each round's file contains.
        content: Vec<u8>,
    },
    /// Opens `path` `O_RDWR`, maps its first `len` bytes `MAP_SHARED` writable, closes the
    /// fd (the mapping keeps the file open for writing), then for each step copies the bytes
    /// in at their offset and stops itself (`SIGSTOP`; see [`Child::wait_stopped`] and
    /// [`Child::resume`]). Exits 0 when resumed after the last step (the mapping goes with
    /// it), errno when the open or mmap failed.
    MapWrite {
        /// The file to map.
        path: CString,
        /// Bytes mapped (at least the end of every step).
        len: usize,
        /// `(offset, bytes)` written through the mapping, one per stop.
        steps: Vec<(usize, Vec<u8>)>,
    },
}

/// One `mount(2)` of [`Action::InNamespace`].
#[derive(Debug, Clone)]
pub struct NsMount {
    /// Source (a directory for a bind mount; a name for other filesystems).
    pub source: CString,
    /// Mount point.
    pub target: CString,
    /// Filesystem type (`None` for a bind mount).
    pub fstype: Option<CString>,
    /// `MS_*` flags (`MS_BIND | MS_REC` for a bind mount).
    pub flags: libc::c_ulong,
    /// Options (e.g. overlay's `lowerdir=...`).
    pub data: Option<CString>,
}

impl NsMount {
    /// `mount --rbind source target`.
    pub fn bind(source: &Path, target: &Path) -> NsMount {
        NsMount {
            source: cstring(source),
            target: cstring(target),
            fstype: None,
            flags: libc::MS_BIND | libc::MS_REC,
            data: None,
        }
    }

    /// `mount -t overlay -o lowerdir=lower,upperdir=upper,workdir=work overlay target`.
    pub fn overlay(lower: &Path, upper: &Path, work: &Path, target: &Path) -> NsMount {
        let data = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.display(),
            upper.display(),
            work.display()
        );
        NsMount {
            source: CString::new("overlay").unwrap(),
            target: cstring(target),
            fstype: Some(CString::new("overlay").unwrap()),
            flags: 0,
            data: Some(CString::new(data).expect("no NUL")),
        }
    }
}

/// [`Action::InNamespace`]: the exit code when the namespace or a mount could not be made.
pub const EXIT_NS_SETUP: i32 = 249;

/// One round of [`Action::Race`].
#[derive(Debug, Clone)]
pub struct RaceRound {
    /// Directories to create, parents first.
    pub mkdirs: Vec<CString>,
    /// The file to write.
    pub file: CString,
    /// Open `file` first, then rename `.0` to `.1`.
    pub rename: Option<(CString, CString)>,
    /// The file to open at the end.
    pub read: CString,
}

impl RaceRound {
    /// `mkdir -p base/a/b/c`, write `base/a/b/c/bad`, read it back at once.
    pub fn fresh(base: &Path) -> RaceRound {
        let dirs = ["", "a", "a/b", "a/b/c"].map(|d| base.join(d));
        RaceRound {
            mkdirs: dirs.iter().map(|d| cstring(d)).collect(),
            file: cstring(&base.join("a/b/c/bad")),
            rename: None,
            read: cstring(&base.join("a/b/c/bad")),
        }
    }

    /// The same tree prepared at `outside` (its file opened there), renamed to `inside`,
    /// then read there.
    pub fn renamed_in(outside: &Path, inside: &Path) -> RaceRound {
        let mut r = RaceRound::fresh(outside);
        r.rename = Some((cstring(outside), cstring(inside)));
        r.read = cstring(&inside.join("a/b/c/bad"));
        r
    }
}

/// [`Action::Race`]: the exit code when a round could not be prepared.
pub const EXIT_RACE_SETUP: i32 = 251;
/// [`Action::Race`]: the exit code when a final open failed with an errno other than EPERM.
pub const EXIT_RACE_ERRNO: i32 = 252;
/// [`Action::Race`]: the largest escape count reported.
pub const EXIT_RACE_CAP: i32 = 250;

impl Action {
    /// [`Action::Read`] of `path`, expecting `expect`.
    pub fn read(path: &Path, expect: &[u8]) -> Action {
        Action::Read {
            path: cstring(path),
            expect: expect.to_vec(),
        }
    }

    /// [`Action::Exec`] of `path`.
    pub fn exec(path: &Path) -> Action {
        Action::Exec {
            path: cstring(path),
        }
    }

    /// [`Action::ReadAny`] of `path`.
    pub fn read_any(path: &Path) -> Action {
        Action::ReadAny {
            path: cstring(path),
        }
    }

    /// [`Action::InNamespace`]: `mounts` in a namespace of the child's own, then read `path`
    /// expecting `expect`. `uid` is the uid the child runs as (mapped to 0 inside).
    pub fn in_namespace(uid: u32, mounts: Vec<NsMount>, path: &Path, expect: &[u8]) -> Action {
        Action::InNamespace {
            mounts,
            path: cstring(path),
            expect: expect.to_vec(),
            map: CString::new(format!("0 {uid} 1\n")).unwrap(),
        }
    }

    /// [`Action::MapWrite`] of `path`: each of `steps` written through one held mapping.
    pub fn map_write(path: &Path, steps: &[(usize, &[u8])]) -> Action {
        Action::MapWrite {
            path: cstring(path),
            len: steps.iter().map(|(o, b)| o + b.len()).max().unwrap_or(1),
            steps: steps.iter().map(|(o, b)| (*o, b.to_vec())).collect(),
        }
    }

    /// [`Action::Race`] of `rounds`, each writing `content`.
    pub fn race(rounds: Vec<RaceRound>, content: &[u8]) -> Action {
        Action::Race {
            rounds,
            content: content.to_vec(),
        }
    }

    fn path(&self) -> &CString {
        match self {
            Action::Read { path, .. }
            | Action::Exec { path }
            | Action::ReadAny { path }
            | Action::InNamespace { path, .. }
            | Action::MapWrite { path, .. } => path,
            Action::Race { rounds, .. } => &rounds.first().expect("a race has rounds").read,
        }
    }
}

fn cstring(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).expect("path without NUL")
}

/// Forks a child that drops every fd above 2, its supplementary groups, then sets gid and
/// uid to `uid` (so `uid` must also be a valid gid, as 65534 is), and does `action`. The
/// outcome is the child's exit code (see [`Action`]); [`EXIT_SETUID_FAILED`] if dropping
/// privileges failed.
pub fn spawn_as(uid: u32, action: &Action) -> Child {
    // Everything the child touches is prepared here: after fork it must not allocate.
    let argv = [action.path().as_ptr(), std::ptr::null()];
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];
    let mut buf = match action {
        Action::Read { expect, .. } | Action::InNamespace { expect, .. } => {
            vec![0u8; expect.len() + 1]
        }
        _ => vec![0u8; 4096],
    };
    // SAFETY: after fork the child only makes async-signal-safe calls (no allocation, no
    // locks) and always ends in execve or _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: see above; `buf`, `argv`, `envp` and the CStrings outlive the child.
        unsafe { child_main(uid, action, &argv, &envp, &mut buf) }
    }
    Child { pid, status: None }
}

/// The forked child's whole life. Never returns.
///
/// # Safety
/// Only to be called in a freshly forked child; uses async-signal-safe calls only.
unsafe fn child_main(
    uid: u32,
    action: &Action,
    argv: &[*const libc::c_char; 2],
    envp: &[*const libc::c_char; 1],
    buf: &mut [u8],
) -> ! {
    let errno = || *libc::__errno_location();
    // Drop inherited fds (fanotify groups, sockets, pipes of other tests): a child holding a
    // copy of a group fd would keep that group alive.
    libc::close_range(3, u32::MAX, 0);
    if libc::setgroups(0, std::ptr::null()) != 0 || libc::setgid(uid) != 0 || libc::setuid(uid) != 0
    {
        libc::_exit(EXIT_SETUID_FAILED);
    }
    match action {
        Action::Exec { path } => {
            libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
            libc::_exit(errno());
        }
        Action::Race { rounds, content } => libc::_exit(race(rounds, content, buf)),
        Action::MapWrite { path, len, steps } => libc::_exit(map_write(path, *len, steps)),
        Action::InNamespace {
            mounts,
            path,
            expect,
            map,
        } => {
            if !enter_namespace(mounts, map) {
                libc::_exit(EXIT_NS_SETUP);
            }
            libc::_exit(read_expect(path, expect, buf))
        }
        Action::Read { path, .. } | Action::ReadAny { path } => {
            let fd = libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
            if fd < 0 {
                libc::_exit(errno());
            }
            // ReadAny: one read. Read: to the end, or until one byte more than expected.
            let mut total = 0usize;
            loop {
                let rest = &mut buf[total..];
                let n = libc::read(fd, rest.as_mut_ptr() as *mut libc::c_void, rest.len());
                if n < 0 {
                    libc::_exit(EXIT_READ_ERRNO_BASE + errno());
                }
                total += n as usize;
                if n == 0 || total == buf.len() || matches!(action, Action::ReadAny { .. }) {
                    break;
                }
            }
            match action {
                Action::Read { expect, .. } if buf[..total] != expect[..] => {
                    libc::_exit(EXIT_WRONG_CONTENT)
                }
                _ => libc::_exit(0),
            }
        }
    }
}

/// [`Action::InNamespace`]'s set-up, in the forked child: a user and mount namespace, uid
/// and gid 0 mapped to the child's, the mounts. False on any failure.
///
/// # Safety
/// Only to be called in a freshly forked child.
unsafe fn enter_namespace(mounts: &[NsMount], map: &CString) -> bool {
    // Dropping root made the process non-dumpable, which makes /proc/self/*_map root's.
    if libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) != 0 {
        return false;
    }
    if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) != 0 {
        return false;
    }
    let write = |file: &std::ffi::CStr, data: &[u8]| {
        let fd = libc::open(file.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return false;
        }
        let n = libc::write(fd, data.as_ptr() as *const libc::c_void, data.len());
        libc::close(fd);
        n == data.len() as isize
    };
    if !write(c"/proc/self/setgroups", b"deny")
        || !write(c"/proc/self/uid_map", map.as_bytes())
        || !write(c"/proc/self/gid_map", map.as_bytes())
    {
        return false;
    }
    for m in mounts {
        let opt = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
        let r = libc::mount(
            m.source.as_ptr(),
            m.target.as_ptr(),
            opt(&m.fstype),
            m.flags,
            opt(&m.data) as *const libc::c_void,
        );
        if r != 0 {
            return false;
        }
    }
    true
}

/// Opens `path`, reads it to the end (or one byte past `expect`) and returns the exit code
/// of [`Action::Read`].
///
/// # Safety
/// Only to be called in a freshly forked child.
unsafe fn read_expect(path: &CString, expect: &[u8], buf: &mut [u8]) -> i32 {
    let errno = || *libc::__errno_location();
    let fd = libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
    if fd < 0 {
        return errno();
    }
    let mut total = 0usize;
    loop {
        let rest = &mut buf[total..];
        let n = libc::read(fd, rest.as_mut_ptr() as *mut libc::c_void, rest.len());
        if n < 0 {
            return EXIT_READ_ERRNO_BASE + errno();
        }
        total += n as usize;
        if n == 0 || total == buf.len() {
            break;
        }
    }
    if buf[..total] != expect[..] {
        EXIT_WRONG_CONTENT
    } else {
        0
    }
}

/// The rounds of [`Action::Race`], in the forked child (async-signal-safe calls only).
///
/// # Safety
/// Only to be called in a freshly forked child.
unsafe fn race(rounds: &[RaceRound], content: &[u8], buf: &mut [u8]) -> i32 {
    let errno = || *libc::__errno_location();
    let read_all = |fd: i32, buf: &mut [u8]| {
        while libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) > 0 {}
        libc::close(fd);
    };
    let mut escapes = 0;
    for r in rounds {
        for d in &r.mkdirs {
            if libc::mkdir(d.as_ptr(), 0o755) != 0 && errno() != libc::EEXIST {
                return EXIT_RACE_SETUP;
            }
        }
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC;
        let fd = libc::open(r.file.as_ptr(), flags, 0o644);
        if fd < 0 {
            return EXIT_RACE_SETUP;
        }
        let n = libc::write(fd, content.as_ptr() as *const libc::c_void, content.len());
        libc::close(fd);
        if n != content.len() as isize {
            return EXIT_RACE_SETUP;
        }
        if let Some((from, to)) = &r.rename {
            let fd = libc::open(r.file.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return EXIT_RACE_SETUP;
            }
            read_all(fd, buf);
            if libc::rename(from.as_ptr(), to.as_ptr()) != 0 {
                return EXIT_RACE_SETUP;
            }
        }
        let fd = libc::open(r.read.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd >= 0 {
            read_all(fd, buf);
            escapes += 1;
        } else if errno() != libc::EPERM {
            return EXIT_RACE_ERRNO;
        }
    }
    escapes.min(EXIT_RACE_CAP)
}

/// [`Action::MapWrite`] in the forked child (async-signal-safe calls only).
///
/// # Safety
/// Only to be called in a freshly forked child.
unsafe fn map_write(path: &CString, len: usize, steps: &[(usize, Vec<u8>)]) -> i32 {
    let fd = libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
    if fd < 0 {
        return *libc::__errno_location();
    }
    let map = libc::mmap(
        std::ptr::null_mut(),
        len,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_SHARED,
        fd,
        0,
    );
    if map == libc::MAP_FAILED {
        return *libc::__errno_location();
    }
    libc::close(fd);
    for (offset, bytes) in steps {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), (map as *mut u8).add(*offset), bytes.len());
        libc::raise(libc::SIGSTOP);
    }
    0
}

/// A forked child (from [`spawn_as`]). Killed (SIGKILL) and reaped on drop if it has not
/// been reaped yet: a process waiting on a permission event is killable.
#[derive(Debug)]
pub struct Child {
    pid: i32,
    /// The raw wait status, once reaped.
    status: Option<i32>,
}

impl Child {
    /// The child's process id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// True while the child has not exited (does not block). Once it has, its status is
    /// kept for [`wait`](Self::wait).
    pub fn running(&mut self) -> bool {
        self.poll();
        self.status.is_none()
    }

    /// Waits up to [`CHILD_TIMEOUT`] for the child's exit code; panics on timeout or if a
    /// signal killed it.
    #[track_caller]
    pub fn wait(&mut self) -> i32 {
        self.wait_for(CHILD_TIMEOUT)
    }

    /// Waits up to `timeout` for the child's exit code; panics on timeout or if a signal
    /// killed it.
    #[track_caller]
    pub fn wait_for(&mut self, timeout: Duration) -> i32 {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(code) = self.try_wait() {
                return code;
            }
            assert!(
                Instant::now() < deadline,
                "child {} did not finish within {timeout:?}",
                self.pid
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Waits up to [`CHILD_TIMEOUT`] until the child has stopped itself (`SIGSTOP`, as
    /// [`Action::MapWrite`] does after each step); panics on timeout or if it exited.
    #[track_caller]
    pub fn wait_stopped(&mut self) {
        let deadline = Instant::now() + CHILD_TIMEOUT;
        loop {
            let mut status = 0;
            // SAFETY: plain syscall on our own child.
            let r =
                unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG | libc::WUNTRACED) };
            assert!(r >= 0, "waitpid: {}", std::io::Error::last_os_error());
            if r == self.pid {
                assert!(
                    libc::WIFSTOPPED(status),
                    "child {} ended instead of stopping: status {status:#x}",
                    self.pid
                );
                return;
            }
            assert!(Instant::now() < deadline, "child {} did not stop", self.pid);
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Resumes a stopped child (`SIGCONT`).
    pub fn resume(&self) {
        // SAFETY: plain syscall on our own (unreaped) child.
        unsafe { libc::kill(self.pid, libc::SIGCONT) };
    }

    /// The exit code if the child has exited, else None (does not block); panics if a
    /// signal killed it.
    #[track_caller]
    pub fn try_wait(&mut self) -> Option<i32> {
        self.poll();
        let status = self.status?;
        assert!(
            libc::WIFEXITED(status),
            "child {} killed by a signal: status {status:#x}",
            self.pid
        );
        Some(libc::WEXITSTATUS(status))
    }

    fn poll(&mut self) {
        if self.status.is_some() {
            return;
        }
        let mut status = 0;
        // SAFETY: plain syscall on our own child.
        let r = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
        assert!(r >= 0, "waitpid: {}", std::io::Error::last_os_error());
        if r == self.pid {
            self.status = Some(status);
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.status.is_none() {
            // SAFETY: our own unreaped child; SIGKILL ends even a wait on a permission
            // event, so the blocking waitpid returns.
            unsafe {
                libc::kill(self.pid, libc::SIGKILL);
                libc::waitpid(self.pid, std::ptr::null_mut(), 0);
            }
        }
    }
}

/// Reads `path` as uid 65534, expecting content `expect`: (pid, exit code). See
/// [`Action::Read`] for the codes.
#[track_caller]
pub fn read_as_nobody(path: &Path, expect: &[u8]) -> (i32, i32) {
    let mut c = spawn_as(NOBODY, &Action::read(path, expect));
    (c.pid(), c.wait())
}

/// Executes `path` as uid 65534: (pid, exit code). See [`Action::Exec`].
#[track_caller]
pub fn exec_as_nobody(path: &Path) -> (i32, i32) {
    let mut c = spawn_as(NOBODY, &Action::exec(path));
    (c.pid(), c.wait())
}

/// A fresh temporary directory (mode 0755, so uid 65534 can enter it) and its canonical
/// path (the form fanotify reports). Removed when the `TempDir` is dropped.
pub fn watched_dir() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().expect("tempdir");
    fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).expect("chmod tempdir");
    let p = t.path().canonicalize().expect("canonicalize tempdir");
    (t, p)
}

/// Writes `content` to `path` and sets its mode (`0o644`, `0o755`, ...); panics on error.
pub fn write_file(path: &Path, content: &[u8], mode: u32) {
    fs::write(path, content).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// The MD5 of the genuine EICAR anti-virus test file, as published (eicar.org).
pub const EICAR_MD5: &str = "44d88612fea8a8f36de82e1278abb02f";

/// The genuine EICAR test file (68 bytes), assembled at run time from two pieces of its
/// printable text so that no file of the repository holds it, and checked against its
/// well-known MD5 ([`EICAR_MD5`]) before it is returned. Tests use this one, never a
/// constant of the code under test.
pub fn eicar() -> Vec<u8> {
    let pieces = [
        "X5O!P%@AP[4\\PZX54(P^)7CC)7}$",
        "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*",
    ];
    let bytes = pieces.concat().into_bytes();
    let digest: String = md5::Md5::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        digest, EICAR_MD5,
        "the EICAR pieces do not make the genuine file"
    );
    bytes
}
