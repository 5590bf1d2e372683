//! Flushing the clean caches when the signature database changes, once per generation.
//!
//! Two causes, one path: the daemon's own reload ([`Daemon::reload`](crate::Daemon::reload)
//! puts a new scanner in place), and a scanner whose generation changes by itself — a clamd
//! pool (`--clamd`) whose servers loaded a new database, went down or came back (see
//! moat-clamd's `client.rs`). The userspace verdict cache is keyed by generation and never
//! answers for an old one; the kernel's ignore marks know no generation, so they must be
//! removed, or files found clean by the old database would keep opening with no event.
//!
//! The follower thread reads the generation every [`FOLLOW_PERIOD`] rather than being told:
//! the pool learns of a change at its health checks (every second by default), so a
//! notification would save at most this period, for a channel through the `Scanner` trait.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use moat_guard::{ScannerSlot, VerdictCache};

use crate::kernel_cache::KernelCache;
use crate::stop::Stop;

/// How often the follower compares the scanner's generation with the last flushed one.
pub const FOLLOW_PERIOD: Duration = Duration::from_millis(100);

/// Empties the clean caches for a new generation (at most once per generation).
pub struct CacheFlusher {
    scanner: Arc<ScannerSlot>,
    cache: Arc<VerdictCache>,
    kernel_cache: Option<Arc<KernelCache>>,
    /// The generation the caches were last flushed for (held while flushing, so that the
    /// follower and a reload never flush twice for one generation).
    flushed: Mutex<u64>,
}

impl CacheFlusher {
    /// A flusher of `cache` and `kernel_cache` following `scanner`'s generation.
    pub fn new(
        scanner: Arc<ScannerSlot>,
        cache: Arc<VerdictCache>,
        kernel_cache: Option<Arc<KernelCache>>,
    ) -> CacheFlusher {
        let flushed = Mutex::new(scanner.generation());
        CacheFlusher {
            scanner,
            cache,
            kernel_cache,
            flushed,
        }
    }

    /// Flushes the kernel's ignore marks and clears the userspace cache unless that was
    /// done for the scanner's current generation already; `why` is logged. True when it
    /// flushed.
    pub fn flush_if_new(&self, why: &str) -> bool {
        let mut flushed = self.flushed.lock().unwrap_or_else(|p| p.into_inner());
        let generation = self.scanner.generation();
        if *flushed == generation {
            return false;
        }
        if let Some(kc) = &self.kernel_cache {
            match kc.flush() {
                Ok(Some(n)) => {
                    tracing::info!(ignore_marks = n, "kernel clean cache flushed mark by mark")
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(error = %e, "cannot flush the kernel clean cache: files found clean by the old database may open unscanned until written or evicted")
                }
            }
        }
        self.cache.clear();
        *flushed = generation;
        tracing::info!(generation, "{why}; clean caches flushed");
        true
    }

    /// Until `stop`, flushes whenever the scanner's generation changed by itself (run on
    /// a thread of its own).
    pub fn follow(&self, stop: &Stop) {
        while !stop.wait_timeout(FOLLOW_PERIOD) {
            self.flush_if_new("the scanner's database changed (a clamd server's)");
        }
    }
}
