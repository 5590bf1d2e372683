//! Race escapes: can an unprivileged process read an infected file it has just put into
//! the watched tree, before the daemon covers it?
//!
//! A forked child drops to uid/gid 65534 and runs N rounds of each variant with plain
//! syscalls (no shell, no allocation after the fork):
//! - **mkdir**: `mkdir fresh, fresh/a, fresh/a/b, fresh/a/b/c` (as `mkdir -p fresh/a/b/c`)
//!   in the watched race directory, create `c/eicar.com`, write the EICAR test string,
//!   close, then at once open it again and read it back;
//! - **rename**: the same subtree built in a directory outside the include paths, its file
//!   written, opened and read there first, then the subtree renamed into the watched race
//!   directory, and the file opened and read at its new path.
//!
//! A round *escapes* when the read-back returns the whole file; it is blocked when the open
//! or the read fails with EPERM. The child reports each round as a fixed-size record on a
//! pipe; the parent ticks a [`Watchdog`] on each, so a daemon that stops answering is
//! killed (which allows every pending open) rather than hanging the benchmark.

use super::daemon::{self, Watchdog};
use super::probe::PROBE_ID;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// The EICAR test file, from two hex halves (so that no file of the repository holds it).
pub fn eicar() -> Vec<u8> {
    let halves = [
        "58354f2150254041505b345c505a58353428505e2937434329377d2445494341522d",
        "5354414e444152442d414e544956495255532d544553542d46494c452124482b482a",
    ];
    let bytes = hex::decode(halves.concat()).expect("valid hex");
    debug_assert_eq!(bytes.len(), 68);
    bytes
}

/// The test database line detecting it (`.hdb`: MD5, size, name), computed at run time.
pub fn eicar_hdb() -> String {
    use md5::{Digest, Md5};
    let e = eicar();
    format!(
        "{}:{}:Moat.Bench.Eicar\n",
        hex::encode(Md5::digest(&e)),
        e.len()
    )
}

/// Outcome of one round.
const ESCAPED: u8 = 0;
const BLOCKED_OPEN: u8 = 1;
const BLOCKED_READ: u8 = 2;
/// Preparing the round failed (the step is in the record).
const SETUP_FAILED: u8 = 3;
/// The read-back failed with something else than EPERM.
const OTHER: u8 = 4;
/// The prober could not drop privileges.
const NO_SETUID: u8 = 5;

const STEPS: [&str; 9] = [
    "mkdir fresh",
    "mkdir a",
    "mkdir b",
    "mkdir c",
    "create",
    "write",
    "open outside",
    "read outside",
    "rename",
];

const RECORD: usize = 12;

/// Results of one variant.
#[derive(Clone, Debug, Default)]
pub struct Variant {
    /// Rounds run.
    pub rounds: u64,
    /// Reads that returned the whole infected file.
    pub escapes: u64,
    /// Opens refused with EPERM.
    pub blocked_open: u64,
    /// Reads refused with EPERM after the open succeeded.
    pub blocked_read: u64,
    /// Rounds that failed otherwise.
    pub errors: u64,
    /// The first failure, for the notes.
    pub first_error: Option<String>,
    /// Wall time of all rounds (seconds).
    pub secs: f64,
}

/// Both variants.
#[derive(Clone, Debug, Default)]
pub struct Races {
    /// `mkdir -p` + write + read at once.
    pub mkdir: Variant,
    /// Prepared outside, renamed in, read.
    pub rename: Variant,
}

/// A path assembled into a fixed buffer (no allocation: usable after `fork`).
struct PathBuf0 {
    buf: [u8; 4096],
}

impl PathBuf0 {
    fn new() -> Self {
        PathBuf0 { buf: [0; 4096] }
    }

    /// `prefix` + `tag` + decimal `n` + `suffix`, NUL-terminated.
    fn set(&mut self, prefix: &[u8], tag: u8, n: u64, suffix: &[u8]) -> *const libc::c_char {
        let mut len = 0;
        let mut put = |b: &[u8], buf: &mut [u8; 4096]| {
            let end = (len + b.len()).min(buf.len() - 1);
            buf[len..end].copy_from_slice(&b[..end - len]);
            len = end;
        };
        put(prefix, &mut self.buf);
        put(&[b'/', tag], &mut self.buf);
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        let mut v = n;
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        put(&digits[i..], &mut self.buf);
        put(suffix, &mut self.buf);
        self.buf[len] = 0;
        self.buf.as_ptr().cast()
    }
}

/// Runs `rounds` rounds of each variant as uid 65534: fresh subtrees are made in `watched`
/// (inside the include path) and, for the rename variant, first in `outside` (same
/// filesystem, outside every include path). Both directories must be writable by that uid.
/// `pids` are killed by the watchdog if a round makes no progress for 10 s.
pub fn run(watched: &Path, outside: &Path, rounds: u64, pids: &[i32]) -> Result<Races, String> {
    let watched = watched.as_os_str().as_bytes().to_vec();
    let outside = outside.as_os_str().as_bytes().to_vec();
    let body = eicar();
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    let mut paths = [
        PathBuf0::new(),
        PathBuf0::new(),
        PathBuf0::new(),
        PathBuf0::new(),
        PathBuf0::new(),
        PathBuf0::new(),
    ];
    let dog = Watchdog::new(pids.to_vec(), Duration::from_secs(10));
    let t0 = Instant::now();
    // SAFETY: the child only runs `race_loop` (syscalls on memory prepared above) and
    // `_exit`s; the parent keeps its own copy of everything.
    let pid = match unsafe { libc::fork() } {
        -1 => return Err(format!("fork: {}", std::io::Error::last_os_error())),
        0 => unsafe { race_loop(fds[1], &watched, &outside, rounds, &body, &mut paths) },
        pid => pid,
    };
    // SAFETY: our copy of the write end.
    unsafe { libc::close(fds[1]) };
    let result = collect(fds[0], rounds, &dog, t0);
    // SAFETY: our own child and fd.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
        libc::close(fds[0]);
    }
    if dog.fired() {
        return Err(
            "the watchdog killed the daemon (a race round made no progress for 10 s)".into(),
        );
    }
    result
}

/// Reads the child's records until every round is reported.
fn collect(fd: libc::c_int, rounds: u64, dog: &Watchdog, t0: Instant) -> Result<Races, String> {
    let mut races = Races::default();
    let mut pending: Vec<u8> = Vec::new();
    let mut seen = 0;
    let mut buf = [0u8; RECORD * 256];
    while seen < 2 * rounds {
        daemon::check_interrupted()?;
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, 100) } <= 0 {
            if dog.fired() {
                break;
            }
            continue;
        }
        // SAFETY: reading into our buffer.
        let got = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if got <= 0 {
            break;
        }
        pending.extend_from_slice(&buf[..got as usize]);
        let whole = pending.len() / RECORD * RECORD;
        for r in pending[..whole].chunks(RECORD) {
            let variant = r[0];
            let outcome = r[1];
            let step = r[2] as usize;
            let errno = i32::from_ne_bytes(r[4..8].try_into().expect("4 bytes"));
            if outcome == NO_SETUID {
                return Err(format!(
                    "the racer could not switch to uid {PROBE_ID}: {}",
                    std::io::Error::from_raw_os_error(errno)
                ));
            }
            let v = if variant == 0 {
                &mut races.mkdir
            } else {
                if races.rename.rounds == 0 {
                    races.mkdir.secs = t0.elapsed().as_secs_f64();
                }
                &mut races.rename
            };
            v.rounds += 1;
            match outcome {
                ESCAPED => v.escapes += 1,
                BLOCKED_OPEN => v.blocked_open += 1,
                BLOCKED_READ => v.blocked_read += 1,
                _ => {
                    v.errors += 1;
                    if v.first_error.is_none() {
                        let what = if outcome == SETUP_FAILED {
                            STEPS.get(step).copied().unwrap_or("?")
                        } else {
                            "read back"
                        };
                        v.first_error = Some(format!(
                            "{what}: {}",
                            std::io::Error::from_raw_os_error(errno)
                        ));
                    }
                }
            }
            seen += 1;
            dog.tick();
        }
        pending.drain(..whole);
    }
    races.rename.secs = t0.elapsed().as_secs_f64() - races.mkdir.secs;
    if seen < 2 * rounds && !dog.fired() {
        return Err(format!(
            "the racer stopped after {seen} of {} rounds",
            2 * rounds
        ));
    }
    Ok(races)
}

fn errno() -> i32 {
    // SAFETY: reading the thread's errno.
    unsafe { *libc::__errno_location() }
}

unsafe fn send(out: libc::c_int, variant: u8, outcome: u8, step: u8, errno: i32) {
    let mut r = [0u8; RECORD];
    r[0] = variant;
    r[1] = outcome;
    r[2] = step;
    r[4..8].copy_from_slice(&errno.to_ne_bytes());
    libc::write(out, r.as_ptr().cast(), RECORD);
}

/// Makes `base` + `/a/b/c` (4 mkdirs), creates `eicar.com` there and writes `body`.
/// Returns the step that failed and its errno.
///
/// # Safety
/// Only syscalls on the given buffers.
unsafe fn build(
    dir: &[u8],
    tag: u8,
    i: u64,
    body: &[u8],
    p: &mut [PathBuf0; 6],
) -> Result<(), (u8, i32)> {
    let subs: [&[u8]; 4] = [b"", b"/a", b"/a/b", b"/a/b/c"];
    for (step, sub) in subs.iter().enumerate() {
        if libc::mkdir(p[step].set(dir, tag, i, sub), 0o755) != 0 {
            return Err((step as u8, errno()));
        }
    }
    let file = p[4].set(dir, tag, i, b"/a/b/c/eicar.com");
    let fd = libc::open(
        file,
        libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
        0o644,
    );
    if fd < 0 {
        return Err((4, errno()));
    }
    let n = libc::write(fd, body.as_ptr().cast(), body.len());
    let e = errno();
    libc::close(fd);
    if n != body.len() as isize {
        return Err((5, e));
    }
    Ok(())
}

/// Opens `file` and reads it: `Ok(())` when the whole body came back, else the outcome.
unsafe fn read_back(file: *const libc::c_char, len: usize) -> Result<(), (u8, i32)> {
    let fd = libc::open(file, libc::O_RDONLY | libc::O_CLOEXEC);
    if fd < 0 {
        let e = errno();
        return Err((
            if e == libc::EPERM {
                BLOCKED_OPEN
            } else {
                OTHER
            },
            e,
        ));
    }
    let mut buf = [0u8; 256];
    let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
    let e = errno();
    libc::close(fd);
    if n == len as isize {
        Ok(())
    } else if n < 0 && e == libc::EPERM {
        Err((BLOCKED_READ, e))
    } else {
        Err((OTHER, if n < 0 { e } else { 0 }))
    }
}

/// The child: drop privileges, run both variants, `_exit`.
///
/// # Safety
/// Only in a freshly forked child.
unsafe fn race_loop(
    out: libc::c_int,
    watched: &[u8],
    outside: &[u8],
    rounds: u64,
    body: &[u8],
    p: &mut [PathBuf0; 6],
) -> ! {
    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    if libc::setgroups(0, std::ptr::null()) != 0
        || libc::setgid(PROBE_ID) != 0
        || libc::setuid(PROBE_ID) != 0
    {
        send(out, 0, NO_SETUID, 0, errno());
        libc::_exit(1);
    }
    for i in 0..rounds {
        let r = build(watched, b'r', i, body, p)
            .map_err(|(step, e)| (SETUP_FAILED, step, e))
            .and_then(|()| {
                read_back(p[4].set(watched, b'r', i, b"/a/b/c/eicar.com"), body.len())
                    .map_err(|(o, e)| (o, 0, e))
            });
        match r {
            Ok(()) => send(out, 0, ESCAPED, 0, 0),
            Err((o, step, e)) => send(out, 0, o, step, e),
        }
    }
    for i in 0..rounds {
        let r = build(outside, b's', i, body, p)
            .map_err(|(step, e)| (SETUP_FAILED, step, e))
            .and_then(|()| {
                // Opened (and read) where it was made, outside the include paths.
                read_back(p[4].set(outside, b's', i, b"/a/b/c/eicar.com"), body.len())
                    .map_err(|(o, e)| (SETUP_FAILED, if o == OTHER && e == 0 { 7 } else { 6 }, e))
            })
            .and_then(|()| {
                if libc::rename(
                    p[0].set(outside, b's', i, b""),
                    p[1].set(watched, b'm', i, b""),
                ) != 0
                {
                    return Err((SETUP_FAILED, 8, errno()));
                }
                read_back(p[4].set(watched, b'm', i, b"/a/b/c/eicar.com"), body.len())
                    .map_err(|(o, e)| (o, 0, e))
            });
        match r {
            Ok(()) => send(out, 1, ESCAPED, 0, 0),
            Err((o, step, e)) => send(out, 1, o, step, e),
        }
    }
    libc::_exit(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eicar_is_the_well_known_file() {
        use md5::{Digest, Md5};
        assert_eq!(
            hex::encode(Md5::digest(eicar())),
            "44d88612fea8a8f36de82e1278abb02f"
        );
        assert!(eicar_hdb().ends_with(":68:Moat.Bench.Eicar\n"));
    }

    #[test]
    fn paths_are_assembled_without_allocation() {
        let mut p = PathBuf0::new();
        let c = p.set(b"/m/race", b'r', 1207, b"/a/b");
        // SAFETY: set returns a NUL-terminated buffer.
        let s = unsafe { std::ffi::CStr::from_ptr(c) };
        assert_eq!(s.to_bytes(), b"/m/race/r1207/a/b");
        let c = p.set(b"/x", b's', 0, b"");
        let s = unsafe { std::ffi::CStr::from_ptr(c) };
        assert_eq!(s.to_bytes(), b"/x/s0");
    }
}
