//! Kernel and process limits the daemon depends on.
//!
//! Two limits decide whether a large tree can be covered at all: inotify's per-user watch
//! budget (`fs.inotify.max_user_watches`, one watch per tracked directory) and the open-file
//! limit (every permission event carries an fd, and the kernel *denies* an access when it
//! cannot install one; rule 4 of the fanotify notes). fanotify's own mark budget does not
//! apply: the enforcement group and the fanotify tracking group are created with
//! `FAN_UNLIMITED_MARKS`; with fanotify tracking (`OnAccessTracking`), inotify's budget does
//! not apply either.

use std::io;
use std::path::Path;

/// The sysctl that bounds inotify watches per user.
pub const INOTIFY_WATCHES_SYSCTL: &str = "fs.inotify.max_user_watches";

/// Reads a numeric sysctl by its dotted name (`fs.inotify.max_user_watches`).
pub fn read_sysctl(name: &str) -> io::Result<u64> {
    let path = Path::new("/proc/sys").join(name.replace('.', "/"));
    let text = std::fs::read_to_string(&path)?;
    text.trim().parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: not a number: {:?}", path.display(), text.trim()),
        )
    })
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the new soft limit.
///
/// Why: an fd per event in flight, an fd per scan, and the kernel fails closed (denies the
/// opener) when it cannot install an event fd; clamonacc's default 1,024 runs out on busy
/// machines.
pub fn raise_nofile() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads the struct.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(io::Error::last_os_error());
        }
        lim.rlim_cur = lim.rlim_max;
    }
    Ok(lim.rlim_cur)
}

/// The message for a tree that needs more inotify watches than the kernel allows: names the
/// number needed and the exact command to run.
pub fn watch_shortfall_message(needed: u64, limit: u64) -> String {
    // Leave headroom for other inotify users of the same uid and for the tree's growth.
    let suggested = (needed + needed / 4).max(needed + 1024);
    format!(
        "the include paths hold {needed} directories to track, but {INOTIFY_WATCHES_SYSCTL} \
         is {limit}: run `sysctl {INOTIFY_WATCHES_SYSCTL}={suggested}` (and add it to \
         /etc/sysctl.d/ to keep it), or set OnAccessTracking fanotify or OnAccessCoverage \
         filesystem, which need no inotify watch"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_real_sysctl() {
        let n = read_sysctl(INOTIFY_WATCHES_SYSCTL).unwrap();
        assert!(n > 0);
        assert!(read_sysctl("fs.no.such.key").is_err());
    }

    #[test]
    fn shortfall_names_the_numbers_and_the_command() {
        let m = watch_shortfall_message(200_000, 8192);
        assert!(m.contains("200000 directories"), "{m}");
        assert!(m.contains("is 8192"), "{m}");
        assert!(
            m.contains("`sysctl fs.inotify.max_user_watches=250000`"),
            "{m}"
        );
    }

    #[test]
    fn nofile_is_raised_to_the_hard_limit() {
        let soft = raise_nofile().unwrap();
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit fills the struct.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        assert_eq!(soft, lim.rlim_cur);
        assert_eq!(lim.rlim_cur, lim.rlim_max);
    }
}
