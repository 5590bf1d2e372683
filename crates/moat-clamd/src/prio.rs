//! CPU priorities of the server's threads: scan workers, and connections while they receive a
//! large stream, run at a lower priority (nice + [`BACKGROUND_NICE`]) than connection handling,
//! so that a PING, a VERSION or a small INSTREAM gets a CPU at once even when every core is
//! busy scanning or receiving big files, and the small-request lane's worker (normal
//! priority) runs ahead of large scans (`moat-bench serve --busy-only`: a 4 KiB INSTREAM while
//! 8 large streams are in flight, median 5.9 ms with the lane alone, 0.4-2.4 ms with both).
//!
//! Per thread with `setpriority(PRIO_PROCESS, tid)`: on Linux the nice value belongs to the
//! thread, not the process. Nice rather than SCHED_IDLE: an idle-class worker could starve
//! outright behind any busy process of the machine, while a niced one still gets its share.
//! Under systemd the service's cgroup weight decides moat's share against other services;
//! nice only orders moat's own threads within it.
//!
//! Hand-written over libc (nix has no setpriority).

use std::cell::Cell;

/// How much lower than the process's own priority background work runs.
pub const BACKGROUND_NICE: i32 = 10;

thread_local! {
    /// Set when this thread was lowered and could not be raised back (an unprivileged
    /// process cannot lower its nice value without RLIMIT_NICE room).
    static STUCK_LOW: Cell<bool> = const { Cell::new(false) };
}

fn tid() -> libc::id_t {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) as libc::id_t }
}

/// The calling thread's nice value.
fn current_nice() -> std::io::Result<i32> {
    // getpriority may return -1 legitimately: errno tells an error apart.
    // SAFETY: errno is thread-local; getpriority takes plain integers.
    unsafe {
        *libc::__errno_location() = 0;
        let n = libc::getpriority(libc::PRIO_PROCESS, tid());
        match std::io::Error::last_os_error() {
            e if e.raw_os_error() == Some(0) => Ok(n),
            e => Err(e),
        }
    }
}

fn set_nice(n: i32) -> std::io::Result<()> {
    // SAFETY: setpriority takes plain integers.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, tid(), n) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Lowers the calling thread for good (a scan worker, at its start).
pub fn lower_this_thread() {
    let lowered = current_nice().and_then(|n| set_nice(n + BACKGROUND_NICE));
    if let Err(e) = lowered {
        tracing::debug!("cannot lower a scan worker's priority: {e}");
    }
}

/// The calling thread runs lowered while this lives (a connection receiving a large
/// stream); dropping it restores the priority, or marks the thread [`stuck_low`].
pub struct Lowered {
    base: i32,
}

impl Lowered {
    /// Lowers the calling thread; `None` when its priority cannot be read or changed.
    pub fn new() -> Option<Lowered> {
        let base = current_nice().ok()?;
        set_nice(base + BACKGROUND_NICE).ok()?;
        Some(Lowered { base })
    }
}

impl Drop for Lowered {
    fn drop(&mut self) {
        if let Err(e) = set_nice(self.base) {
            tracing::debug!("cannot restore a connection thread's priority: {e}");
            STUCK_LOW.with(|s| s.set(true));
        }
    }
}

/// Whether this thread stayed lowered (it should then not serve further connections).
pub fn stuck_low() -> bool {
    STUCK_LOW.with(Cell::get)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowered_guard_restores_the_threads_own_nice_value_only() {
        std::thread::spawn(|| {
            let base = current_nice().unwrap();
            let other = std::thread::spawn(current_nice);
            {
                let _low = Lowered::new().expect("raising nice is always allowed");
                assert_eq!(current_nice().unwrap(), base + BACKGROUND_NICE);
            }
            // Root (or RLIMIT_NICE room) restores it; otherwise the thread says so.
            assert!(current_nice().unwrap() == base || stuck_low());
            assert_eq!(
                other.join().unwrap().unwrap(),
                base,
                "per thread, not process"
            );
        })
        .join()
        .unwrap();
    }
}
