//! systemd's watchdog (`WatchdogSec=`): `WATCHDOG=1` is sent only while the event path is
//! alive, so that systemd restarts a daemon whose marks still hold opens but which no longer
//! answers them.
//!
//! A bare timer would prove only that one thread runs. Instead a thread of its own checks,
//! every half `WATCHDOG_USEC` (sd_watchdog_enabled(3)'s advice), two things and pings only
//! when both hold:
//!
//! - **the reader**: the fanotify reader thread beats a [`Heartbeat`] on every turn of its
//!   loop, and its `poll` wakes at least every [`Heartbeat::tick`] even when no event comes
//!   (an idle system), so a beat older than the period means the reader is stuck (in a
//!   syscall, in a lock, in a loop) and no event is read;
//! - **the worker pool**: a no-op job ([`WorkerPool::probe`]) sent at the previous check
//!   has been run by a worker, so the queue and at least one worker move (an idle pool
//!   answers at once; a pool whose workers are all stuck, replacements included, does not).
//!
//! A check that fails is logged as an error (once, until it recovers) and no ping is sent;
//! systemd then kills and restarts the daemon after `WatchdogSec`. The watchdog thread is
//! separate from the main thread, which may spend long in a database reload.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Acquire, Release};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moat_guard::WorkerPool;

use crate::stop::{Stop, Woken};

/// The variable systemd sets to the watchdog interval in microseconds.
pub const WATCHDOG_USEC: &str = "WATCHDOG_USEC";
/// The variable naming the process the watchdog is meant for.
pub const WATCHDOG_PID: &str = "WATCHDOG_PID";

/// Test-only fault: `MOAT_TEST_FAULT=reader-wedge-after-ms=N` makes the reader stop reading
/// events N ms after it starts (as if stuck) until the daemon stops.
const WEDGE_FAULT: &str = "reader-wedge-after-ms=";

/// The watchdog interval systemd asked for, read as sd_watchdog_enabled(3) reads it:
/// `WATCHDOG_USEC` set and positive, and `WATCHDOG_PID`, when set, naming this process.
/// Hand-written rather than `sd_notify::watchdog_enabled`, which (0.4) requires
/// `WATCHDOG_PID` where libsystemd only checks it when present.
pub fn interval_from_env() -> Option<Duration> {
    let usec: u64 = std::env::var(WATCHDOG_USEC).ok()?.trim().parse().ok()?;
    if usec == 0 {
        return None;
    }
    if let Ok(pid) = std::env::var(WATCHDOG_PID) {
        if pid.trim().parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    Some(Duration::from_micros(usec))
}

/// The reader thread's sign of life: the time of its last loop turn.
#[derive(Debug)]
pub struct Heartbeat {
    epoch: Instant,
    /// Milliseconds from `epoch` of the last beat.
    last: AtomicU64,
    tick: Duration,
    /// When the reader wedges itself (test-only fault), if asked to.
    wedge_at: Option<Instant>,
}

impl Heartbeat {
    /// A heartbeat whose owner promises to beat at least every `tick`.
    pub fn new(tick: Duration) -> Heartbeat {
        let epoch = Instant::now();
        let wedge_at = std::env::var(crate::reader::FAULT_ENV)
            .ok()
            .and_then(|v| v.strip_prefix(WEDGE_FAULT)?.parse().ok())
            .map(|ms| epoch + Duration::from_millis(ms));
        Heartbeat {
            epoch,
            last: AtomicU64::new(0),
            tick,
            wedge_at,
        }
    }

    /// The longest the owner may wait (in `poll`) between two beats.
    pub fn tick(&self) -> Duration {
        self.tick
    }

    /// Records a sign of life now.
    pub fn beat(&self) {
        self.last
            .store(self.epoch.elapsed().as_millis() as u64, Release);
    }

    /// Time since the last beat.
    pub fn age(&self) -> Duration {
        let now = self.epoch.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last.load(Acquire)))
    }

    /// Test-only fault (`MOAT_TEST_FAULT=reader-wedge-after-ms=N`): once due, blocks the
    /// caller (the reader) without beating until `stop`, as a reader stuck in a syscall.
    pub fn wedge_if_due(&self, stop: &Stop) {
        if !self.wedge_at.is_some_and(|at| Instant::now() >= at) {
            return;
        }
        tracing::warn!("fault injected by MOAT_TEST_FAULT: the reader stops reading events");
        while !stop.is_triggered() {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// One part of the event path the watchdog vouches for.
pub trait Liveness: Send {
    /// What is checked, for the log.
    fn name(&self) -> &'static str;
    /// Called once per period: `Err(why)` when the part made no progress since the last
    /// call.
    fn check(&mut self, period: Duration) -> Result<(), String>;
}

/// The reader beat within the period.
pub struct ReaderAlive(pub Arc<Heartbeat>);

impl Liveness for ReaderAlive {
    fn name(&self) -> &'static str {
        "fanotify reader"
    }

    fn check(&mut self, period: Duration) -> Result<(), String> {
        let age = self.0.age();
        if age > period {
            return Err(format!("no loop turn for {} ms", age.as_millis()));
        }
        Ok(())
    }
}

/// The previous no-op job was run by a worker; sends the next.
pub struct PoolAlive {
    pool: Arc<WorkerPool>,
    /// Probes sent and probes run.
    sent: u64,
    ran: Arc<AtomicU64>,
}

impl PoolAlive {
    /// Sends the first probe to `pool`.
    pub fn new(pool: Arc<WorkerPool>) -> PoolAlive {
        let mut p = PoolAlive {
            pool,
            sent: 0,
            ran: Arc::new(AtomicU64::new(0)),
        };
        p.send();
        p
    }

    fn send(&mut self) {
        self.sent += 1;
        let (ran, n) = (Arc::clone(&self.ran), self.sent);
        self.pool.probe(move || ran.store(n, Release));
    }
}

impl Liveness for PoolAlive {
    fn name(&self) -> &'static str {
        "worker pool"
    }

    fn check(&mut self, period: Duration) -> Result<(), String> {
        if self.ran.load(Acquire) < self.sent {
            // Not re-sent: one probe waiting is enough to tell when the pool moves again.
            return Err(format!(
                "a no-op job queued {} ms ago has not run",
                period.as_millis()
            ));
        }
        self.send();
        Ok(())
    }
}

/// Every `period` until `stop`: runs each check, and calls `ping` (send `WATCHDOG=1`) when
/// all passed. Failures are logged as errors when they start and when they end.
pub fn run(
    period: Duration,
    mut checks: Vec<Box<dyn Liveness>>,
    stop: &Stop,
    mut ping: impl FnMut(),
) {
    let mut failing = vec![false; checks.len()];
    loop {
        match stop.poll_with(stop.fd(), Some(period)) {
            Ok(Woken::Timeout) => {}
            Ok(_) | Err(_) => return,
        }
        if stop.is_triggered() {
            return;
        }
        let mut alive = true;
        for (check, was_failing) in checks.iter_mut().zip(failing.iter_mut()) {
            match check.check(period) {
                Ok(()) if *was_failing => {
                    *was_failing = false;
                    tracing::warn!(part = check.name(), "watchdog: alive again");
                }
                Ok(()) => {}
                Err(why) => {
                    alive = false;
                    if !std::mem::replace(was_failing, true) {
                        tracing::error!(part = check.name(), %why, "watchdog: the event path is stuck; WATCHDOG=1 withheld, systemd will restart moat");
                    }
                }
            }
        }
        if alive {
            ping();
        }
    }
}

/// The period of the checks for a `WATCHDOG_USEC` of `interval`: half of it.
pub fn period(interval: Duration) -> Duration {
    (interval / 2).max(Duration::from_millis(10))
}

/// The reader's longest `poll` for a check `period`: a quarter of it, so that an idle
/// reader beats several times per period and a late wakeup is no false alarm.
pub fn reader_tick(period: Duration) -> Duration {
    (period / 4).max(Duration::from_millis(2))
}

/// Starts the watchdog thread for the reader `heartbeat` and `pool` when systemd asked for
/// one (`WATCHDOG_USEC`): `None` otherwise.
pub fn spawn(
    interval: Duration,
    heartbeat: Arc<Heartbeat>,
    pool: Arc<WorkerPool>,
    stop: Arc<Stop>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let period = period(interval);
    tracing::info!(
        interval_ms = interval.as_millis() as u64,
        "systemd watchdog: WATCHDOG=1 every {} ms while the reader and the workers are alive",
        period.as_millis()
    );
    std::thread::Builder::new()
        .name("moat-watchdog".into())
        .spawn(move || {
            let checks: Vec<Box<dyn Liveness>> = vec![
                Box::new(ReaderAlive(heartbeat)),
                Box::new(PoolAlive::new(pool)),
            ];
            run(period, checks, &stop, || {
                if let Err(e) = crate::notify::notify("WATCHDOG=1") {
                    tracing::warn!(error = %e, "cannot send WATCHDOG=1 to $NOTIFY_SOCKET");
                }
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A part that is alive while `alive` says so.
    struct Switch(Arc<std::sync::atomic::AtomicBool>);

    impl Liveness for Switch {
        fn name(&self) -> &'static str {
            "switch"
        }
        fn check(&mut self, _: Duration) -> Result<(), String> {
            match self.0.load(Acquire) {
                true => Ok(()),
                false => Err("off".into()),
            }
        }
    }

    #[test]
    fn pings_only_while_every_part_is_alive() {
        let on = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let stop = Arc::new(Stop::new().unwrap());
        let pings = Arc::new(AtomicU64::new(0));
        let t = {
            let (on, stop, pings) = (Arc::clone(&on), Arc::clone(&stop), Arc::clone(&pings));
            std::thread::spawn(move || {
                let checks: Vec<Box<dyn Liveness>> = vec![Box::new(Switch(on))];
                run(Duration::from_millis(10), checks, &stop, || {
                    pings.fetch_add(1, Release);
                })
            })
        };
        std::thread::sleep(Duration::from_millis(200));
        assert!(pings.load(Acquire) >= 3, "alive: pings every period");
        on.store(false, Release);
        std::thread::sleep(Duration::from_millis(30));
        let stuck = pings.load(Acquire);
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(pings.load(Acquire), stuck, "stuck: no ping at all");
        on.store(true, Release);
        std::thread::sleep(Duration::from_millis(200));
        assert!(pings.load(Acquire) > stuck, "pings again once alive");
        stop.trigger();
        t.join().unwrap();
    }

    #[test]
    fn a_heartbeat_ages_until_it_beats() {
        let h = Arc::new(Heartbeat::new(Duration::from_millis(5)));
        h.beat();
        let mut reader = ReaderAlive(Arc::clone(&h));
        assert!(reader.check(Duration::from_millis(50)).is_ok());
        std::thread::sleep(Duration::from_millis(80));
        assert!(reader.check(Duration::from_millis(50)).is_err());
        h.beat();
        assert!(reader.check(Duration::from_millis(50)).is_ok());
    }

    #[test]
    fn the_environment_is_read_as_libsystemd_reads_it() {
        // One test owns these variables (tests run in threads of one process).
        std::env::remove_var(WATCHDOG_PID);
        std::env::set_var(WATCHDOG_USEC, "0");
        assert_eq!(interval_from_env(), None);
        std::env::set_var(WATCHDOG_USEC, "30000000");
        assert_eq!(interval_from_env(), Some(Duration::from_secs(30)));
        std::env::set_var(WATCHDOG_PID, (std::process::id() + 1).to_string());
        assert_eq!(interval_from_env(), None, "meant for another process");
        std::env::set_var(WATCHDOG_PID, std::process::id().to_string());
        assert_eq!(interval_from_env(), Some(Duration::from_secs(30)));
        std::env::remove_var(WATCHDOG_USEC);
        std::env::remove_var(WATCHDOG_PID);
        assert_eq!(interval_from_env(), None);
    }
}
