//! The server's concurrency promises, with a scanner that blocks until the test lets it go
//! (through moat-guard's `Scanner` trait): no head-of-line blocking (PING and new
//! connections are answered while every worker is busy and while a client uploads slowly),
//! RELOAD never waits for scans (scans started before it finish with the old database, new
//! ones use the new one), and SHUTDOWN stops the server and removes its socket.
//!
//! The waits below are generous bounds on liveness (a blocked server would never answer),
//! not performance targets.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use moat_clamd::{Database, Server, Settings};
use moat_guard::{ScanFailure, Scanner, Verdict};

/// Reports every file as infected with `name`, once the gate is open.
struct Gated {
    name: &'static str,
    gate: Arc<(Mutex<bool>, Condvar)>,
}

impl Scanner for Gated {
    fn scan(&self, _file: &File) -> Result<Verdict, ScanFailure> {
        let (open, cv) = &*self.gate;
        let mut g = open.lock().unwrap();
        while !*g {
            g = cv.wait(g).unwrap();
        }
        Ok(Verdict::Infected(Arc::from(self.name)))
    }

    fn generation(&self) -> u64 {
        1
    }
}

fn gate() -> Arc<(Mutex<bool>, Condvar)> {
    Arc::new((Mutex::new(false), Condvar::new()))
}

fn open(g: &Arc<(Mutex<bool>, Condvar)>) {
    *g.0.lock().unwrap() = true;
    g.1.notify_all();
}

fn settings(sock: &Path) -> Settings {
    let mut c = moat_config::Config::default();
    c.local_socket = Some(sock.to_path_buf());
    c.max_threads = 2;
    c.command_read_timeout = Duration::from_secs(30);
    c.read_timeout = Duration::from_secs(30);
    Settings::from_config(&c)
}

fn start(sock: &Path, first: Arc<dyn Scanner>, next: Arc<dyn Scanner>) -> Server {
    let s = settings(sock);
    let mut listeners = Vec::new();
    moat_clamd::bind_listeners(&s, &mut listeners).unwrap();
    let next = Mutex::new(Some(next));
    let loader: moat_clamd::Loader = Arc::new(move || {
        let scanner = next.lock().unwrap().take().ok_or("no second database")?;
        Ok(Database {
            scanner,
            version: None,
        })
    });
    Server::start(
        s,
        listeners,
        Database {
            scanner: first,
            version: None,
        },
        loader,
    )
    .unwrap()
}

fn connect(sock: &Path) -> UnixStream {
    let c = UnixStream::connect(sock).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c
}

fn request(sock: &Path, bytes: &[u8]) -> String {
    let mut c = connect(sock);
    c.write_all(bytes).unwrap();
    let mut out = Vec::new();
    c.read_to_end(&mut out).unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

fn instream(data: &[u8]) -> Vec<u8> {
    let mut out = b"zINSTREAM\0".to_vec();
    out.extend((data.len() as u32).to_be_bytes());
    out.extend(data);
    out.extend([0, 0, 0, 0]);
    out
}

#[test]
fn no_head_of_line_blocking_and_reload_never_waits_for_scans() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("moat.sock");
    let (old_gate, new_gate) = (gate(), gate());
    let server = start(
        &sock,
        Arc::new(Gated {
            name: "Old.Db",
            gate: Arc::clone(&old_gate),
        }),
        Arc::new(Gated {
            name: "New.Db",
            gate: Arc::clone(&new_gate),
        }),
    );
    let events = server.event_sender();
    let run = std::thread::spawn(move || server.run());

    // Both workers busy with scans that cannot finish, a third queued (streams too large
    // for the small-request lane).
    let data = vec![b'd'; 256 << 10];
    let busy: Vec<UnixStream> = (0..3)
        .map(|_| {
            let mut c = connect(&sock);
            c.write_all(&instream(&data)).unwrap();
            c
        })
        .collect();
    // A client uploading slowly: a command and half a chunk header.
    let mut slow = connect(&sock);
    slow.write_all(b"zINSTREAM\0\0\0").unwrap();
    std::thread::sleep(Duration::from_millis(200));

    // Cheap commands are still answered.
    assert_eq!(request(&sock, b"zPING\0"), "PONG\0");
    assert!(request(&sock, b"nVERSION\n").starts_with("ClamAV 1.4.6-moat"));
    let stats = request(&sock, b"nSTATS\n");
    assert!(stats.contains("THREADS: live 2  idle 0 max 2"), "{stats}");
    assert!(stats.contains("QUEUE: 1 items"), "{stats}");
    assert!(stats.contains("\tINSTREAM "), "{stats}");

    // RELOAD answers at once although every scan is blocked on the old database.
    assert_eq!(request(&sock, b"zRELOAD\0"), "RELOADING\0");
    // The new database is built on its own thread and swapped in while the old one is
    // still scanning. The two running scans finish with the old database; the queued one
    // starts after the swap and gets the new one.
    std::thread::sleep(Duration::from_millis(300));
    open(&new_gate);
    open(&old_gate);
    let mut verdicts: Vec<String> = busy
        .into_iter()
        .map(|mut c| {
            let mut out = Vec::new();
            c.read_to_end(&mut out).unwrap();
            String::from_utf8_lossy(&out).into_owned()
        })
        .collect();
    verdicts.sort();
    assert_eq!(
        verdicts,
        [
            "stream: New.Db FOUND\0",
            "stream: Old.Db FOUND\0",
            "stream: Old.Db FOUND\0"
        ]
    );
    assert_eq!(
        request(&sock, &instream(b"after reload")),
        "stream: New.Db FOUND\0"
    );

    // The slow client finishes its upload: scanned with the new database.
    slow.write_all(&[0, 0]).unwrap();
    let mut out = Vec::new();
    slow.read_to_end(&mut out).unwrap();
    assert_eq!(out, b"stream: New.Db FOUND\0");

    // SHUTDOWN stops the server and removes its socket.
    assert_eq!(request(&sock, b"zSHUTDOWN\0"), "");
    run.join().unwrap();
    assert!(!sock.exists());
    drop(events);
}

#[test]
fn stale_socket_is_replaced_and_live_one_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("moat.sock");
    // A socket file nobody listens on.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(sock.exists());
    let g = gate();
    open(&g);
    let scanner: Arc<dyn Scanner> = Arc::new(Gated { name: "X", gate: g });
    let server = start(&sock, Arc::clone(&scanner), Arc::clone(&scanner));
    assert_eq!(request(&sock, b"zPING\0"), "PONG\0");
    // Mode 0666 by default (clamd's LocalSocketMode default).
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&sock).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o666);
    // A second server on a live socket refuses to start.
    let s = settings(&sock);
    let err = moat_clamd::bind_listeners(&s, &mut Vec::new()).unwrap_err();
    assert!(err.to_string().contains("another server answers"), "{err}");
    let events = server.event_sender();
    let run = std::thread::spawn(move || server.run());
    events.send(moat_clamd::Event::Shutdown).unwrap();
    run.join().unwrap();
}

#[test]
fn past_max_connections_new_clients_wait_until_one_closes() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("moat.sock");
    let mut c = moat_config::Config::default();
    c.local_socket = Some(sock.clone());
    c.max_connections = 2;
    let s = Settings::from_config(&c);
    let mut listeners = Vec::new();
    moat_clamd::bind_listeners(&s, &mut listeners).unwrap();
    let no_reload: moat_clamd::Loader = Arc::new(|| Err("no reload here".into()));
    let server = Server::start(
        s,
        listeners,
        Database {
            scanner: Arc::new(Gated {
                name: "X",
                gate: gate(),
            }),
            version: None,
        },
        no_reload,
    )
    .unwrap();
    let events = server.event_sender();
    let run = std::thread::spawn(move || server.run());

    // Two idle clients hold both slots (connected, nothing sent yet).
    let idle: Vec<UnixStream> = (0..2).map(|_| connect(&sock)).collect();
    std::thread::sleep(Duration::from_millis(200));
    // A third connects (the kernel's backlog) but is not served.
    let mut third = connect(&sock);
    third.write_all(b"zPING\0").unwrap();
    third
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 16];
    let early = third.read(&mut buf);
    assert!(
        matches!(&early, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "served past MaxConnections: {early:?}"
    );
    // One slot freed: the waiting client is served.
    drop(idle);
    third
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut out = Vec::new();
    third.read_to_end(&mut out).unwrap();
    assert_eq!(out, b"PONG\0");
    assert_eq!(request(&sock, b"zPING\0"), "PONG\0");
    events.send(moat_clamd::Event::Shutdown).unwrap();
    run.join().unwrap();
}

/// Holds scans of files larger than [`BIG`] until the gate opens; smaller ones are at once
/// reported as `Small.Sig`.
struct HoldsBigFiles {
    gate: Arc<(Mutex<bool>, Condvar)>,
}

const BIG: u64 = 512 << 10;

impl Scanner for HoldsBigFiles {
    fn scan(&self, file: &File) -> Result<Verdict, ScanFailure> {
        if file.metadata()?.len() > BIG {
            let (open, cv) = &*self.gate;
            let mut g = open.lock().unwrap();
            while !*g {
                g = cv.wait(g).unwrap();
            }
            return Ok(Verdict::Infected(Arc::from("Big.Sig")));
        }
        Ok(Verdict::Infected(Arc::from("Small.Sig")))
    }

    fn generation(&self) -> u64 {
        1
    }
}

#[test]
fn small_requests_are_answered_while_every_worker_holds_a_large_file() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("moat.sock");
    let g = gate();
    let scanner = Arc::new(HoldsBigFiles {
        gate: Arc::clone(&g),
    });
    let server = start(&sock, scanner.clone(), scanner);
    let events = server.event_sender();
    let run = std::thread::spawn(move || server.run());

    // Both workers (MaxThreads 2) hold a large stream, a third waits in the queue.
    let big = vec![b'x'; 2 << 20];
    let busy: Vec<UnixStream> = (0..3)
        .map(|_| {
            let mut c = connect(&sock);
            c.write_all(&instream(&big)).unwrap();
            c
        })
        .collect();
    // Two clients upload slowly: a command and part of a large chunk each.
    let slow: Vec<UnixStream> = (0..2)
        .map(|_| {
            let mut c = connect(&sock);
            c.write_all(b"zINSTREAM\0\0\x20\0\0abc").unwrap();
            c
        })
        .collect();
    let wait = std::time::Instant::now();
    while !request(&sock, b"nSTATS\n").contains("QUEUE: 1 items") {
        assert!(
            wait.elapsed() < Duration::from_secs(20),
            "workers never busy"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // PING, a small INSTREAM and a small FILDES are answered although every worker is held.
    assert_eq!(request(&sock, b"zPING\0"), "PONG\0");
    for _ in 0..3 {
        assert_eq!(
            request(&sock, &instream(&[b'y'; 4096])),
            "stream: Small.Sig FOUND\0"
        );
    }
    let small_file = dir.path().join("small");
    std::fs::write(&small_file, [b'z'; 4096]).unwrap();
    let out = fildes(&sock, &small_file);
    assert!(out.ends_with(": Small.Sig FOUND\0"), "{out}");
    // The large ones were still held all along: nothing answered yet.
    let stats = request(&sock, b"nSTATS\n");
    assert!(stats.contains("THREADS: live 2  idle 0 max 2"), "{stats}");
    assert!(stats.contains("QUEUE: 1 items"), "{stats}");

    // Once let go, the large streams get their verdicts; the slow uploads end as well.
    open(&g);
    for mut c in busy {
        let mut out = Vec::new();
        c.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"stream: Big.Sig FOUND\0");
    }
    for mut c in slow {
        c.write_all(&[b'a'; (32 << 16) - 3]).unwrap();
        c.write_all(&[0, 0, 0, 0]).unwrap();
        let mut out = Vec::new();
        c.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"stream: Big.Sig FOUND\0");
    }
    assert_eq!(request(&sock, b"zSHUTDOWN\0"), "");
    run.join().unwrap();
    drop(events);
}

/// Counts the scans it runs; content containing `bad` is infected.
struct Counting {
    bad: &'static [u8],
    scans: std::sync::atomic::AtomicUsize,
}

impl Counting {
    fn new(bad: &'static [u8]) -> Arc<Counting> {
        Arc::new(Counting {
            bad,
            scans: Default::default(),
        })
    }

    fn scans(&self) -> usize {
        self.scans.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Scanner for Counting {
    fn scan(&self, file: &File) -> Result<Verdict, ScanFailure> {
        let mut data = Vec::new();
        let mut f = file;
        f.read_to_end(&mut data)?;
        self.scan_bytes(&data)
    }

    fn scan_bytes(&self, data: &[u8]) -> Result<Verdict, ScanFailure> {
        self.scans.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if data.windows(self.bad.len()).any(|w| w == self.bad) {
            Ok(Verdict::Infected(Arc::from("Counting.Bad")))
        } else {
            Ok(Verdict::Clean)
        }
    }

    fn generation(&self) -> u64 {
        1
    }
}

fn fildes(sock: &Path, path: &Path) -> String {
    let mut c = connect(sock);
    c.write_all(b"zFILDES\0").unwrap();
    let f = File::open(path).unwrap();
    let fds = [std::os::fd::AsRawFd::as_raw_fd(&f)];
    nix::sys::socket::sendmsg::<()>(
        std::os::fd::AsRawFd::as_raw_fd(&c),
        &[std::io::IoSlice::new(&[0])],
        &[nix::sys::socket::ControlMessage::ScmRights(&fds)],
        nix::sys::socket::MsgFlags::empty(),
        None,
    )
    .unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    out
}

fn start_with(
    sock: &Path,
    extra: impl Fn(&mut moat_config::Config),
    dbs: [Arc<Counting>; 2],
) -> Server {
    let mut c = moat_config::Config::default();
    c.local_socket = Some(sock.to_path_buf());
    c.max_threads = 2;
    extra(&mut c);
    let s = Settings::from_config(&c);
    let mut listeners = Vec::new();
    moat_clamd::bind_listeners(&s, &mut listeners).unwrap();
    let [first, next] = dbs;
    let next = Mutex::new(Some(next));
    let loader: moat_clamd::Loader = Arc::new(move || {
        let scanner = next.lock().unwrap().take().ok_or("no second database")?;
        Ok(Database {
            scanner,
            // VERSION tells the test when the second database is live.
            version: Some((2, "second".into())),
        })
    });
    Server::start(
        s,
        listeners,
        Database {
            scanner: first,
            version: None,
        },
        loader,
    )
    .unwrap()
}

/// The clean-verdict cache: repeated clean content is answered without a scan, whichever
/// command brings it (INSTREAM, FILDES, SCAN: the key is the bytes' digest); a detection is
/// scanned every time; after RELOAD, content cached clean under the old database is scanned
/// by the new one at once (here: found), never answered from the old cache.
#[test]
fn clean_verdicts_are_cached_by_content_and_flushed_by_reload() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("moat.sock");
    let (a, b) = (Counting::new(b"EVIL"), Counting::new(b"LATER-BAD"));
    let server = start_with(&sock, |_| {}, [Arc::clone(&a), Arc::clone(&b)]);
    let counters = server.cache_counters();
    let run = std::thread::spawn(move || server.run());

    let content = b"some text, LATER-BAD under the second database".to_vec();
    let file = dir.path().join("probe.txt");
    std::fs::write(&file, &content).unwrap();
    let scan = format!("zSCAN {}\0", file.display()).into_bytes();
    assert_eq!(request(&sock, &instream(&content)), "stream: OK\0");
    assert_eq!(a.scans(), 1);
    assert_eq!(request(&sock, &instream(&content)), "stream: OK\0");
    assert!(fildes(&sock, &file).ends_with(": OK\0"));
    assert_eq!(request(&sock, &scan), format!("{}: OK\0", file.display()));
    assert_eq!(
        a.scans(),
        1,
        "the same bytes again, by any command: not rescanned"
    );
    let st = counters.get();
    assert_eq!((st.hits, st.misses), (3, 1), "{st:?}");

    // Other bytes (one more byte) are a miss; a detection is never cached.
    let mut longer = content.clone();
    longer.push(b'\n');
    assert_eq!(request(&sock, &instream(&longer)), "stream: OK\0");
    assert_eq!(a.scans(), 2);
    for _ in 0..2 {
        assert_eq!(
            request(&sock, &instream(b"xx EVIL yy")),
            "stream: Counting.Bad FOUND\0"
        );
    }
    assert_eq!(a.scans(), 4);

    // RELOAD: once VERSION shows the second database, the same bytes are scanned by it.
    assert_eq!(request(&sock, b"zRELOAD\0"), "RELOADING\0");
    let wait = std::time::Instant::now();
    while !request(&sock, b"zVERSION\0").contains("/2/second") {
        assert!(wait.elapsed() < Duration::from_secs(20), "never reloaded");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        request(&sock, &instream(&content)),
        "stream: Counting.Bad FOUND\0"
    );
    assert!(fildes(&sock, &file).ends_with(": Counting.Bad FOUND\0"));
    assert_eq!(
        request(&sock, &scan),
        format!("{}: Counting.Bad FOUND\0", file.display())
    );
    assert_eq!(b.scans(), 3);
    // Clean under the second database: cached in its own cache.
    assert_eq!(request(&sock, &instream(b"fine")), "stream: OK\0");
    assert_eq!(request(&sock, &instream(b"fine")), "stream: OK\0");
    assert_eq!(b.scans(), 4);
    assert_eq!(request(&sock, b"zSHUTDOWN\0"), "");
    run.join().unwrap();
}

/// `DisableCache yes`: every request is scanned.
#[test]
fn disable_cache_scans_every_request() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("moat.sock");
    let a = Counting::new(b"EVIL");
    let server = start_with(
        &sock,
        |c| c.disable_cache = true,
        [Arc::clone(&a), Counting::new(b"EVIL")],
    );
    let counters = server.cache_counters();
    let run = std::thread::spawn(move || server.run());
    let file = dir.path().join("probe.txt");
    std::fs::write(&file, b"clean").unwrap();
    for _ in 0..3 {
        assert_eq!(request(&sock, &instream(b"clean")), "stream: OK\0");
        assert!(fildes(&sock, &file).ends_with(": OK\0"));
    }
    assert_eq!(a.scans(), 6);
    let st = counters.get();
    assert_eq!((st.hits, st.misses, st.uncached), (0, 0, 6), "{st:?}");
    assert_eq!(request(&sock, b"zSHUTDOWN\0"), "");
    run.join().unwrap();
}
