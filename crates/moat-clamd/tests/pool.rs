//! The clamd backend ([`moat_clamd::client::Pool`]) against three real clamd processes (the
//! oracle; two on unix sockets, FILDES, one on TCP, INSTREAM), each with a one-line database
//! so that it starts in milliseconds: requests are spread over all three; one server is
//! SIGKILLed and another SIGSTOPped (a stall) while four threads scan 240 files, and every
//! file still gets the verdict clamd gives it; the stalled server is found up again by the
//! health checks once it continues; with every server gone a scan fails with each reason.
//! A server back up gives the pool a new generation, and clamd's VERSION on such a
//! database (no version) keeps clean verdicts out of the caches.
//!
//! Skipped (with the reason printed) when clamd is not installed, unless
//! `MOAT_REQUIRE_ORACLE=1`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moat_clamd::client::{self, Endpoint, Pool, PoolOptions};
use moat_guard::{Scanner, Verdict};
use moat_testkit::clamd::Clamd;

fn clamd_installed() -> bool {
    moat_testkit::oracle(&["clamd"], "apt-get install clamav-daemon")
}

/// Built at run time so that no signature's bytes sit in this file.
fn marker() -> String {
    format!("{}-TEST-{}", "MOAT", "MARKER")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A real clamd named `name` on `dir/db` (short read timeouts: a stalled exchange ends
/// soon) and the endpoint the pool uses for it: TCP when `tcp`, else the unix socket.
fn start(dir: &Path, name: &str, tcp: bool) -> (Clamd, Endpoint) {
    let server = Clamd::launch(
        Command::new("clamd"),
        dir,
        &dir.join("db"),
        name,
        "CommandReadTimeout 5\nReadTimeout 5\n",
    );
    let endpoint = if tcp { server.tcp() } else { server.unix() };
    (server, endpoint.parse().unwrap())
}

/// `n` files, every third one infected, sizes up to ~200 KiB (several INSTREAM chunks).
fn files(dir: &Path, n: usize) -> Vec<(PathBuf, bool)> {
    (0..n)
        .map(|i| {
            let infected = i % 3 == 0;
            let mut body = format!("file {i}\n")
                .repeat(1 + (i * 997) % 20_000)
                .into_bytes();
            if infected {
                let at = body.len() / 2;
                body.splice(at..at, marker().into_bytes());
            }
            let path = dir.join(format!("f{i:03}"));
            std::fs::write(&path, body).unwrap();
            (path, infected)
        })
        .collect()
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_pool_spreads_fails_over_and_recovers_on_real_clamd() {
    if !clamd_installed() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("db")).unwrap();
    std::fs::create_dir_all(dir.join("files")).unwrap();
    std::fs::write(
        dir.join("db/test.ndb"),
        format!("Moat.Test.Marker:0:*:{}\n", hex(marker().as_bytes())),
    )
    .unwrap();
    let (servers, endpoints): (Vec<Clamd>, Vec<Endpoint>) =
        [("a", false), ("b", false), ("c", true)]
            .into_iter()
            .map(|(name, tcp)| start(dir, name, tcp))
            .unzip();
    let pool = Arc::new(Pool::new(
        endpoints.clone(),
        PoolOptions {
            timeout: Duration::from_secs(1),
            health_interval: Duration::from_millis(200),
            generation: 7,
        },
    ));
    // PoolOptions::generation numbers the pool: the high half of each generation.
    assert_eq!(pool.generation() >> 32, 7);
    let files = files(&dir.join("files"), 240);
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let verdicts: Vec<_> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some((path, _)) = files.get(i) else {
                            return out;
                        };
                        let file = std::fs::File::open(path).unwrap();
                        out.push((i, pool.scan(&file)));
                        done.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        wait_until("80 files", || done.load(Ordering::SeqCst) >= 80);
        let before = pool.status();
        assert!(
            before.iter().all(|s| s.requests > 0),
            "not spread: {before:?}"
        );
        servers[0].signal(libc::SIGKILL);
        wait_until("160 files", || done.load(Ordering::SeqCst) >= 160);
        servers[1].signal(libc::SIGSTOP);
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    assert_eq!(verdicts.len(), files.len());
    let want = Verdict::Infected(Arc::from("Moat.Test.Marker.UNOFFICIAL"));
    for (i, verdict) in &verdicts {
        let (path, infected) = &files[*i];
        let expected = if *infected { &want } else { &Verdict::Clean };
        match verdict {
            Ok(v) => assert_eq!(v, expected, "{}", path.display()),
            Err(e) => panic!("{}: {e}", path.display()),
        }
    }
    let status = pool.status();
    assert!(!status[0].up && status[0].faults > 0, "{status:?}");
    // clamd on a database with no daily/main container answers VERSION with no database
    // version (`ClamAV 1.4.6`): a reload could not be seen, so nothing is cached clean.
    assert!(!pool.caches_clean(pool.generation()));
    // The stalled server is found by a scan's receive timeout or a health check's.
    wait_until("b seen down", || !pool.status()[1].up);
    assert!(pool.status()[2].up);

    let stalled = pool.generation();
    servers[1].signal(libc::SIGCONT);
    wait_until("b up again", || pool.status()[1].up);
    // Back after being down (it might load another database): a new generation.
    wait_until("a new generation", || pool.generation() != stalled);

    servers[1].signal(libc::SIGKILL);
    servers[2].signal(libc::SIGKILL);
    let file = std::fs::File::open(&files[0].0).unwrap();
    let err = pool.scan(&file).unwrap_err().to_string();
    assert!(err.starts_with("no clamd server answered ("), "{err}");
    for e in &endpoints {
        assert!(err.contains(&e.to_string()), "{err}");
    }
}

#[test]
fn an_error_reply_is_an_answer_not_a_dead_server() {
    if !clamd_installed() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("db")).unwrap();
    std::fs::write(
        dir.join("db/test.ndb"),
        format!("Moat.Test.Marker:0:*:{}\n", hex(marker().as_bytes())),
    )
    .unwrap();
    let (_server, endpoint) = start(dir, "a", false);
    let pool = Pool::new(vec![endpoint], PoolOptions::default());
    // clamd refuses a descriptor that is not a regular file: `fd[N]: Not a regular file ERROR`.
    let mut fds = [0; 2];
    // SAFETY: pipe writes two new descriptors into the array; each is owned once below.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let (pipe, _writer) = unsafe {
        use std::os::fd::FromRawFd;
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    };
    assert_eq!(
        pool.scan_answer(&pipe).unwrap(),
        client::Answer::Error("Not a regular file".into())
    );
    assert!(pool.status()[0].up);
    assert!(pool.scan(&pipe).is_err());
}
