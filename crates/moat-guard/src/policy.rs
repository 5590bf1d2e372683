//! The cheap decisions made before any scan.
//!
//! [`Policy::decide`] runs on the fanotify reader thread, which must never touch a watched
//! file (it would wait on its own permission event forever) nor wait on anything else. So it
//! does no I/O at all: it works only on [`AccessFacts`] the caller already has (the event's
//! pid, the accessor's uid, the path resolved from the event fd, the size from `fstat` on the
//! event fd, which raises no event).
//!
//! Checks run cheapest first, and the first that applies names the [`AllowReason`]:
//! own pid, root uid, excluded uid, empty file, never-watched directory, outside the include
//! paths, excluded directory, too large. Each reason is a distinct variant so the daemon can
//! count and log each one.
//!
//! Paths are compared component-wise (`/home/a` includes `/home/a/x` but not `/home/ab`).
//! They are expected absolute and canonical, as the kernel reports them
//! (`/proc/self/fd/N`); the daemon canonicalizes include paths and never-watched directories
//! once at start.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The settings a [`Policy`] is built from (the daemon fills them from clamd.conf).
#[derive(Debug, Clone, Default)]
pub struct PolicySettings {
    /// `OnAccessIncludePath`: only files under one of these are scanned. Empty: no restriction
    /// here (coverage alone decides what raises events, e.g. `OnAccessMountPath`).
    pub include_paths: Vec<PathBuf>,
    /// `OnAccessExcludePath`: unanchored extended regular expressions, matched against the raw
    /// bytes of every directory that contains the file (its parent and all the parent's
    /// ancestors), so excluding a directory excludes its whole subtree, including directories
    /// created later. The file's own name is not matched.
    pub exclude_patterns: Vec<String>,
    /// `OnAccessExcludeUID` (and `OnAccessExcludeUname`, resolved to uids at start and on
    /// reload, never on the event path).
    pub exclude_uids: Vec<u32>,
    /// `OnAccessExcludeRootUID`.
    pub exclude_root_uid: bool,
    /// The daemon's own pid (`std::process::id()`): its accesses are always allowed. fanotify
    /// reports the thread group id unless `FAN_REPORT_TID` is set, so one pid covers all of
    /// the daemon's threads.
    pub own_pid: i32,
    /// Directories never watched: `DatabaseDirectory` (moat no longer exempts `TemporaryDirectory`).
    pub never_watched: Vec<PathBuf>,
    /// `OnAccessMaxFileSize`: larger files are allowed unscanned (`None`: no limit).
    pub max_file_size: Option<u64>,
}

/// Why an access was allowed without a scan. One variant per reason, for counting and logging.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AllowReason {
    /// The access comes from the daemon itself.
    OwnPid,
    /// The accessor's uid is 0 and `OnAccessExcludeRootUID` is set.
    RootUid,
    /// The accessor's uid is in `OnAccessExcludeUID`/`OnAccessExcludeUname`.
    ExcludedUid,
    /// The file is empty: there is no content to detect.
    Empty,
    /// The file is under a never-watched directory (`DatabaseDirectory`).
    NeverWatched,
    /// The file is under none of the include paths.
    OutsideIncludes,
    /// A directory containing the file matches an `OnAccessExcludePath` pattern.
    ExcludedPath,
    /// The file is larger than `OnAccessMaxFileSize`.
    TooLarge,
    /// The accessor runs a program of `OnAccessExcludeExe` (or descends from one); decided
    /// by the daemon from the accessor's pidfd, not by [`Policy::decide`].
    ExcludedExe,
}

/// What to do with an access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Allow at once, without scanning.
    Allow(AllowReason),
    /// Hand the file to a worker for scanning.
    Scan,
}

/// What is known about one access before any I/O on the file.
#[derive(Debug, Clone, Copy)]
pub struct AccessFacts<'a> {
    /// The accessing process (fanotify's `pid`).
    pub pid: i32,
    /// The accessor's uid, when known ([`uid_of_pid`]); `None` (e.g. the process already
    /// exited) skips the uid checks, so the file is scanned.
    pub uid: Option<u32>,
    /// The file's absolute path.
    pub path: &'a Path,
    /// The file's size, when known; `None` skips the size checks.
    pub size: Option<u64>,
}

impl<'a> AccessFacts<'a> {
    /// Facts with a path given as raw bytes (as read from `/proc/self/fd/N`).
    pub fn with_path_bytes(pid: i32, uid: Option<u32>, path: &'a [u8], size: Option<u64>) -> Self {
        AccessFacts {
            pid,
            uid,
            path: Path::new(OsStr::from_bytes(path)),
            size,
        }
    }
}

/// The pre-scan policy. Immutable; share it by reference (rebuild it on reload).
#[derive(Debug, Clone)]
pub struct Policy {
    include_paths: Vec<PathBuf>,
    exclude: Option<regex::bytes::RegexSet>,
    exclude_uids: Vec<u32>,
    exclude_root_uid: bool,
    own_pid: i32,
    never_watched: Vec<PathBuf>,
    max_file_size: Option<u64>,
}

impl Policy {
    /// Builds the policy; fails on an invalid exclude pattern. Patterns are compiled as
    /// `moat-config` compiles them: Unicode mode off, matched on raw bytes.
    pub fn new(settings: PolicySettings) -> Result<Policy, regex::Error> {
        let exclude = if settings.exclude_patterns.is_empty() {
            None
        } else {
            Some(
                regex::bytes::RegexSetBuilder::new(&settings.exclude_patterns)
                    .unicode(false)
                    .build()?,
            )
        };
        let mut exclude_uids = settings.exclude_uids;
        exclude_uids.sort_unstable();
        exclude_uids.dedup();
        Ok(Policy {
            include_paths: settings.include_paths,
            exclude,
            exclude_uids,
            exclude_root_uid: settings.exclude_root_uid,
            own_pid: settings.own_pid,
            never_watched: settings.never_watched,
            max_file_size: settings.max_file_size,
        })
    }

    /// Whether [`AccessFacts::uid`] can change a decision; when not, the reader thread need not
    /// read `/proc/PID/status` at all.
    pub fn needs_uid(&self) -> bool {
        self.exclude_root_uid || !self.exclude_uids.is_empty()
    }

    /// `OnAccessMaxFileSize`: files larger are allowed unscanned ([`AllowReason::TooLarge`]).
    pub fn max_file_size(&self) -> Option<u64> {
        self.max_file_size
    }

    /// Decides an access without any I/O.
    pub fn decide(&self, facts: &AccessFacts<'_>) -> Decision {
        use AllowReason::*;
        if facts.pid == self.own_pid {
            return Decision::Allow(OwnPid);
        }
        if let Some(uid) = facts.uid {
            if self.exclude_root_uid && uid == 0 {
                return Decision::Allow(RootUid);
            }
            if self.exclude_uids.binary_search(&uid).is_ok() {
                return Decision::Allow(ExcludedUid);
            }
        }
        if facts.size == Some(0) {
            return Decision::Allow(Empty);
        }
        let path = facts.path;
        if self.never_watched.iter().any(|d| path.starts_with(d)) {
            return Decision::Allow(NeverWatched);
        }
        if !self.include_paths.is_empty() && !self.include_paths.iter().any(|i| path.starts_with(i))
        {
            return Decision::Allow(OutsideIncludes);
        }
        if self.is_excluded_dir_of(path) {
            return Decision::Allow(ExcludedPath);
        }
        if let (Some(size), Some(max)) = (facts.size, self.max_file_size) {
            if size > max {
                return Decision::Allow(TooLarge);
            }
        }
        Decision::Scan
    }

    /// Decides an access whose file has no trustworthy place (an alias mount that cannot be
    /// resolved, a file with several links): only the rules that do not depend on where the
    /// file is (own pid, uids, size) can allow it; otherwise it is scanned. When unsure, scan.
    pub fn decide_unplaced(&self, pid: i32, uid: Option<u32>, size: Option<u64>) -> Decision {
        let here = Path::new("/");
        let facts = AccessFacts {
            pid,
            uid,
            path: here,
            size,
        };
        match self.decide(&facts) {
            Decision::Allow(
                AllowReason::NeverWatched
                | AllowReason::OutsideIncludes
                | AllowReason::ExcludedPath,
            ) => self.size_rule(size),
            d => d,
        }
    }

    fn size_rule(&self, size: Option<u64>) -> Decision {
        match (size, self.max_file_size) {
            (Some(size), Some(max)) if size > max => Decision::Allow(AllowReason::TooLarge),
            _ => Decision::Scan,
        }
    }

    /// Whether `dir` itself, or one of its ancestors, matches an exclude pattern: the check
    /// the coverage layer uses before marking a directory.
    pub fn is_excluded_dir(&self, dir: &Path) -> bool {
        match &self.exclude {
            None => false,
            Some(set) => dir
                .ancestors()
                .any(|d| set.is_match(d.as_os_str().as_bytes())),
        }
    }

    /// Whether the coverage layer must leave directory `dir` (and so its subtree) unmarked:
    /// it is, or lies below, a never-watched directory, or it or an ancestor matches an
    /// exclude pattern. Applied to every directory, including ones created later.
    pub fn excludes_dir(&self, dir: &Path) -> bool {
        self.never_watched.iter().any(|d| dir.starts_with(d)) || self.is_excluded_dir(dir)
    }

    /// Whether a directory containing the file at `path` is excluded.
    fn is_excluded_dir_of(&self, path: &Path) -> bool {
        path.parent().is_some_and(|dir| self.is_excluded_dir(dir))
    }
}

/// The real uid of process `pid` (what clamonacc compares: the first field of the `Uid:` line
/// of `/proc/PID/status`).
///
/// Asked through a pidfd (`pidfd_open` + the `PIDFD_GET_INFO` ioctl, Linux 6.13+): about a
/// microsecond, where generating the status text costs ~7 µs on every event that an
/// `OnAccessExcludeUID`/`Uname` rule must look at. Falls back to the status file on older
/// kernels. The process cannot be gone and its pid reused meanwhile: it waits in `open()`
/// for our answer.
///
/// Safe to call on the fanotify reader thread: neither path opens a file that can carry a
/// fanotify permission mark (procfs refuses them with `EINVAL`).
pub fn uid_of_pid(pid: i32) -> io::Result<u32> {
    match uid_by_pidfd(pid) {
        Ok(uid) => Ok(uid),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOTTY | libc::EINVAL | libc::ENOSYS)
            ) =>
        {
            uid_by_status(pid)
        }
        Err(e) => Err(e),
    }
}

/// `struct pidfd_info` up to `exit_code` (`PIDFD_INFO_SIZE_VER0`, 64 bytes); the kernel
/// accepts any size from that one up.
#[repr(C)]
#[derive(Default)]
struct PidfdInfo {
    mask: u64,
    cgroupid: u64,
    pid: u32,
    tgid: u32,
    ppid: u32,
    ruid: u32,
    rgid: u32,
    euid: u32,
    egid: u32,
    suid: u32,
    sgid: u32,
    fsuid: u32,
    fsgid: u32,
    exit_code: i32,
}

/// `_IOWR(PIDFS_IOCTL_MAGIC = 0xFF, 11, struct pidfd_info)` with the 64-byte struct
/// (libc does not define it yet).
const PIDFD_GET_INFO: libc::c_ulong = 0xC040_FF0B;
/// Credentials; always returned, asked for clarity.
const PIDFD_INFO_CREDS: u64 = 1 << 1;

fn uid_by_pidfd(pid: i32) -> io::Result<u32> {
    const _: () = assert!(std::mem::size_of::<PidfdInfo>() == 64);
    // SAFETY: plain syscall; a non-negative result is a new fd we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by the kernel.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) };
    let mut info = PidfdInfo {
        mask: PIDFD_INFO_CREDS,
        ..Default::default()
    };
    // SAFETY: the ioctl writes at most size_of::<PidfdInfo>() bytes (encoded in the number).
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), PIDFD_GET_INFO, &mut info as *mut PidfdInfo) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    if info.mask & PIDFD_INFO_CREDS == 0 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    Ok(info.ruid)
}

/// The uid from `/proc/PID/status`, read into a stack buffer (the file is ~1.5 KB; the `Uid:`
/// line is near its start).
fn uid_by_status(pid: i32) -> io::Result<u32> {
    let mut file = File::open(format!("/proc/{pid}/status"))?;
    let mut buf = [0u8; 4096];
    let mut len = 0;
    while len < buf.len() {
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    parse_status_uid(&buf[..len]).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("no Uid line in /proc/{pid}/status"),
        )
    })
}

/// The real uid on the `Uid:` line of a `/proc/PID/status` text.
fn parse_status_uid(status: &[u8]) -> Option<u32> {
    let line = status
        .split(|&b| b == b'\n')
        .find_map(|l| l.strip_prefix(b"Uid:"))?;
    let first = line
        .split(|b| b.is_ascii_whitespace())
        .find(|f| !f.is_empty())?;
    std::str::from_utf8(first).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use AllowReason::*;

    const OWN: i32 = 4242;

    fn policy() -> Policy {
        Policy::new(PolicySettings {
            include_paths: vec!["/home/a".into(), "/srv/www/".into()],
            exclude_patterns: vec!["/\\.cache$".into(), "^/srv/www/tmp".into()],
            exclude_uids: vec![1001, 33],
            exclude_root_uid: true,
            own_pid: OWN,
            never_watched: vec!["/home/a/clamtmp".into(), "/srv/www/db".into()],
            max_file_size: Some(1000),
        })
        .unwrap()
    }

    fn decide(p: &Policy, pid: i32, uid: Option<u32>, path: &str, size: Option<u64>) -> Decision {
        p.decide(&AccessFacts::with_path_bytes(
            pid,
            uid,
            path.as_bytes(),
            size,
        ))
    }

    /// A file with no trustworthy place: no path rule allows it, the others still do.
    #[test]
    fn unplaced_files_are_scanned_unless_uid_or_size_allows() {
        let p = policy();
        assert_eq!(p.decide_unplaced(1, Some(1000), Some(10)), Decision::Scan);
        assert_eq!(p.decide_unplaced(1, None, None), Decision::Scan);
        assert_eq!(p.decide_unplaced(OWN, None, None), Decision::Allow(OwnPid));
        assert_eq!(
            p.decide_unplaced(1, Some(0), None),
            Decision::Allow(RootUid)
        );
        assert_eq!(
            p.decide_unplaced(1, Some(33), None),
            Decision::Allow(ExcludedUid)
        );
        assert_eq!(p.decide_unplaced(1, None, Some(0)), Decision::Allow(Empty));
        assert_eq!(
            p.decide_unplaced(1, None, Some(1001)),
            Decision::Allow(TooLarge)
        );
    }

    #[test]
    fn table() {
        let p = policy();
        let s = Decision::Scan;
        let a = Decision::Allow;
        #[rustfmt::skip]
        type Case = (i32, Option<u32>, &'static str, Option<u64>, Decision);
        let cases: &[Case] = &[
            // Own pid wins over everything, even an infected-looking path in includes.
            (OWN, Some(1000), "/home/a/f", Some(10), a(OwnPid)),
            (OWN, None, "/elsewhere/f", None, a(OwnPid)),
            (1, Some(0), "/home/a/f", Some(10), a(RootUid)),
            (1, Some(1001), "/home/a/f", Some(10), a(ExcludedUid)),
            (1, Some(33), "/home/a/f", Some(10), a(ExcludedUid)),
            // Unknown uid: uid checks skipped, so scanned.
            (1, None, "/home/a/f", Some(10), s),
            (1, Some(1000), "/home/a/f", Some(10), s),
            (1, Some(1000), "/home/a/f", None, s),
            (1, Some(1000), "/home/a/f", Some(0), a(Empty)),
            (
                1,
                Some(1000),
                "/home/a/clamtmp/x",
                Some(10),
                a(NeverWatched),
            ),
            (
                1,
                Some(1000),
                "/home/a/clamtmp/d/e/x",
                Some(10),
                a(NeverWatched),
            ),
            (
                1,
                Some(1000),
                "/srv/www/db/main.cvd",
                Some(10),
                a(NeverWatched),
            ),
            // Never-watched is component-wise too.
            (1, Some(1000), "/home/a/clamtmp2/x", Some(10), s),
            (1, Some(1000), "/home/b/f", Some(10), a(OutsideIncludes)),
            (1, Some(1000), "/home/ab/f", Some(10), a(OutsideIncludes)),
            (1, Some(1000), "/home/f", Some(10), a(OutsideIncludes)),
            (1, Some(1000), "/srv/wwwx/f", Some(10), a(OutsideIncludes)),
            (1, Some(1000), "/srv/www/f", Some(10), s),
            (1, Some(1000), "/srv/www/deep/er/f", Some(10), s),
            // Exclude patterns apply to the parent directory and all ancestors.
            (1, Some(1000), "/home/a/.cache/f", Some(10), a(ExcludedPath)),
            (
                1,
                Some(1000),
                "/home/a/.cache/x/y/f",
                Some(10),
                a(ExcludedPath),
            ),
            (
                1,
                Some(1000),
                "/home/a/p/.cache/f",
                Some(10),
                a(ExcludedPath),
            ),
            (1, Some(1000), "/home/a/.cachex/f", Some(10), s),
            // ...but not to the file's own name.
            (1, Some(1000), "/home/a/.cache", Some(10), s),
            (1, Some(1000), "/srv/www/tmp/f", Some(10), a(ExcludedPath)),
            (
                1,
                Some(1000),
                "/srv/www/tmpdir/sub/f",
                Some(10),
                a(ExcludedPath),
            ),
            (1, Some(1000), "/srv/www/a/tmp/f", Some(10), s),
            (1, Some(1000), "/home/a/f", Some(1000), s),
            (1, Some(1000), "/home/a/f", Some(1001), a(TooLarge)),
        ];
        for &(pid, uid, path, size, want) in cases {
            assert_eq!(
                decide(&p, pid, uid, path, size),
                want,
                "{pid} {uid:?} {path} {size:?}"
            );
        }
    }

    #[test]
    fn include_matching_is_component_wise() {
        let p = Policy::new(PolicySettings {
            include_paths: vec!["/home/a".into()],
            ..Default::default()
        })
        .unwrap();
        let d = |path: &str| decide(&p, 1, None, path, Some(1));
        assert_eq!(d("/home/a"), Decision::Scan);
        assert_eq!(d("/home/a/x"), Decision::Scan);
        assert_eq!(d("/home/a//x"), Decision::Scan);
        assert_eq!(d("/home/ab"), Decision::Allow(OutsideIncludes));
        assert_eq!(d("/home/ab/x"), Decision::Allow(OutsideIncludes));
        assert_eq!(d("/home/"), Decision::Allow(OutsideIncludes));
        assert_eq!(d("/"), Decision::Allow(OutsideIncludes));
    }

    #[test]
    fn root_include_and_no_include_cover_everything() {
        for includes in [vec![PathBuf::from("/")], vec![]] {
            let p = Policy::new(PolicySettings {
                include_paths: includes,
                ..Default::default()
            })
            .unwrap();
            assert_eq!(
                decide(&p, 1, Some(0), "/any/where", Some(5)),
                Decision::Scan
            );
            assert!(!p.needs_uid());
        }
    }

    #[test]
    fn root_uid_only_when_asked_and_needs_uid() {
        let p = Policy::new(PolicySettings::default()).unwrap();
        assert_eq!(decide(&p, 1, Some(0), "/f", Some(5)), Decision::Scan);
        assert!(policy().needs_uid());
        let uid_only = Policy::new(PolicySettings {
            exclude_uids: vec![5],
            ..Default::default()
        })
        .unwrap();
        assert!(uid_only.needs_uid());
    }

    #[test]
    fn non_utf8_paths_match() {
        let p = Policy::new(PolicySettings {
            include_paths: vec!["/data".into()],
            exclude_patterns: vec!["/caf\\xE9$".into()],
            ..Default::default()
        })
        .unwrap();
        let facts = AccessFacts::with_path_bytes(1, None, b"/data/caf\xE9/f", Some(3));
        assert_eq!(p.decide(&facts), Decision::Allow(ExcludedPath));
        let facts = AccessFacts::with_path_bytes(1, None, b"/data/caf\xE8/f", Some(3));
        assert_eq!(p.decide(&facts), Decision::Scan);
    }

    #[test]
    fn excluded_dir_check_for_coverage() {
        let p = policy();
        assert!(p.is_excluded_dir(Path::new("/home/a/.cache")));
        assert!(p.is_excluded_dir(Path::new("/home/a/.cache/sub")));
        assert!(!p.is_excluded_dir(Path::new("/home/a/src")));
        assert!(p.excludes_dir(Path::new("/home/a/.cache/sub")));
        assert!(p.excludes_dir(Path::new("/home/a/clamtmp")));
        assert!(p.excludes_dir(Path::new("/home/a/clamtmp/deeper")));
        assert!(!p.excludes_dir(Path::new("/home/a/clamtmp2")));
        assert!(!p.excludes_dir(Path::new("/home/a/src")));
    }

    #[test]
    fn bad_pattern_is_an_error() {
        let r = Policy::new(PolicySettings {
            exclude_patterns: vec!["a{x".into()],
            ..Default::default()
        });
        assert!(r.is_err());
    }

    #[test]
    fn parses_status_uid() {
        let status = b"Name:\tbash\nUmask:\t0022\nState:\tS\nUid:\t1000\t0\t1000\t1000\nGid:\t1\n";
        assert_eq!(parse_status_uid(status), Some(1000));
        assert_eq!(parse_status_uid(b"Name:\tx\n"), None);
        assert_eq!(parse_status_uid(b"Uid:\t\n"), None);
        assert_eq!(parse_status_uid(b"Uid:\tabc\n"), None);
    }

    #[test]
    fn uid_of_own_pid() {
        use std::os::unix::fs::MetadataExt;
        // /proc/self is owned by our (effective = real, in tests) uid.
        let want = std::fs::metadata("/proc/self").unwrap().uid();
        assert_eq!(uid_of_pid(std::process::id() as i32).unwrap(), want);
        assert!(uid_of_pid(i32::MAX).is_err());
    }

    #[test]
    fn pidfd_and_status_agree() {
        for pid in [std::process::id() as i32, 1] {
            let by_status = uid_by_status(pid).unwrap();
            match uid_by_pidfd(pid) {
                Ok(uid) => assert_eq!(uid, by_status, "pid {pid}"),
                // Kernels before 6.13 have no PIDFD_GET_INFO: the status file answers.
                Err(e) => assert!(
                    matches!(e.raw_os_error(), Some(libc::ENOTTY | libc::EINVAL)),
                    "{e}"
                ),
            }
        }
    }
}
