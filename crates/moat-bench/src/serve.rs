//! `moat-bench serve`: `moat serve` side by side with clamd on the same database.
//!
//! Both servers run from configs in a temp dir (unix sockets there, same MaxThreads). For each
//! server it measures INSTREAM and FILDES verdicts per second with 1, 8 and 64 concurrent
//! clients (each client loops over a generated corpus of small files for a fixed time), and
//! PING latency while every worker is busy with large streams. Prints a table with the
//! moat/clamd ratios and writes `<data dir>/serve.json`.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;

/// Options of `moat-bench serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// Signature database directory for both servers [default: a generated one-signature
    /// database, which measures the server rather than the engine].
    #[arg(long, value_name = "DIR")]
    db: Option<PathBuf>,
    /// Seconds per measurement point.
    #[arg(long, default_value_t = 3)]
    seconds: u64,
    /// MaxThreads of both servers.
    #[arg(long, default_value_t = 4)]
    threads: u32,
    /// The moat binary [default: <target dir>/release/moat].
    #[arg(long, value_name = "PATH")]
    moat: Option<PathBuf>,
}

struct Server {
    child: Child,
    sock: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(
    name: &'static str,
    dir: &Path,
    db: &Path,
    threads: u32,
    moat: &Path,
) -> Result<Server, String> {
    let sock = dir.join(format!("{name}.sock"));
    let conf = dir.join(format!("{name}.conf"));
    std::fs::write(
        &conf,
        format!(
            "Foreground yes\nLocalSocket {}\nDatabaseDirectory {}\nMaxThreads {threads}\n\
             MaxQueue 200\nStreamMaxLength 100M\nTemporaryDirectory {}\nLogFile {}/{name}.log\n",
            sock.display(),
            db.display(),
            dir.display(),
            dir.display()
        ),
    )
    .map_err(|e| e.to_string())?;
    let mut cmd = if name == "clamd" {
        Command::new("clamd")
    } else {
        let mut c = Command::new(moat);
        c.arg("serve");
        c
    };
    let child = cmd
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{name}: {e}"))?;
    let server = Server { child, sock };
    let t = Instant::now();
    while request(&server.sock, b"zPING\0").as_deref() != Some(&b"PONG\0"[..]) {
        if t.elapsed() > Duration::from_secs(300) {
            return Err(format!("{name} did not start"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("{name}: ready in {:.1} s", t.elapsed().as_secs_f64());
    Ok(server)
}

fn request(sock: &Path, bytes: &[u8]) -> Option<Vec<u8>> {
    let mut c = UnixStream::connect(sock).ok()?;
    c.write_all(bytes).ok()?;
    let mut out = Vec::new();
    c.read_to_end(&mut out).ok()?;
    Some(out)
}

fn instream(data: &[u8]) -> Vec<u8> {
    let mut out = b"zINSTREAM\0".to_vec();
    for c in data.chunks(8188) {
        out.extend((c.len() as u32).to_be_bytes());
        out.extend(c);
    }
    out.extend([0, 0, 0, 0]);
    out
}

fn fildes(sock: &Path, file: &Path) -> Option<Vec<u8>> {
    let mut c = UnixStream::connect(sock).ok()?;
    c.write_all(b"zFILDES\0").ok()?;
    let f = std::fs::File::open(file).ok()?;
    let fds = [f.as_raw_fd()];
    let iov = [std::io::IoSlice::new(&[0])];
    let cmsg = [nix::sys::socket::ControlMessage::ScmRights(&fds)];
    nix::sys::socket::sendmsg::<()>(
        c.as_raw_fd(),
        &iov,
        &cmsg,
        nix::sys::socket::MsgFlags::empty(),
        None,
    )
    .ok()?;
    let mut out = Vec::new();
    c.read_to_end(&mut out).ok()?;
    Some(out)
}

/// Verdicts per second with `clients` concurrent clients for `secs`.
fn throughput(
    server: &Server,
    files: &[PathBuf],
    streams: &[Vec<u8>],
    clients: usize,
    fd: bool,
    secs: u64,
) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let t = Instant::now();
    std::thread::scope(|s| {
        for i in 0..clients {
            let (done, stop) = (Arc::clone(&done), Arc::clone(&stop));
            s.spawn(move || {
                let mut k = i;
                while !stop.load(Ordering::Relaxed) {
                    let reply = if fd {
                        fildes(&server.sock, &files[k % files.len()])
                    } else {
                        request(&server.sock, &streams[k % streams.len()])
                    };
                    if reply.is_some_and(|r| r.ends_with(b"OK\0") || r.ends_with(b"FOUND\0")) {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    k += clients;
                }
            });
        }
        std::thread::sleep(Duration::from_secs(secs));
        stop.store(true, Ordering::Relaxed);
    });
    done.load(Ordering::Relaxed) as f64 / t.elapsed().as_secs_f64()
}

/// PING round trips (ms: median, max) while `busy` clients stream large files.
fn ping_while_busy(server: &Server, big: &[u8], busy: usize) -> (f64, f64) {
    let stop = Arc::new(AtomicBool::new(false));
    let wire = instream(big);
    let mut lat = Vec::new();
    std::thread::scope(|s| {
        for _ in 0..busy {
            let stop = Arc::clone(&stop);
            let wire = &wire;
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let _ = request(&server.sock, wire);
                }
            });
        }
        std::thread::sleep(Duration::from_millis(500));
        for _ in 0..40 {
            let t = Instant::now();
            let _ = request(&server.sock, b"zPING\0");
            lat.push(t.elapsed().as_secs_f64() * 1e3);
            std::thread::sleep(Duration::from_millis(25));
        }
        stop.store(true, Ordering::Relaxed);
    });
    lat.sort_by(f64::total_cmp);
    (lat[lat.len() / 2], lat[lat.len() - 1])
}

/// Runs the suite.
pub fn run(a: ServeArgs, data_dir: &Path, workspace: &Path) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let db = match a.db {
        Some(d) => d,
        None => {
            let d = dir.path().join("db");
            std::fs::create_dir_all(&d).map_err(|e| e.to_string())?;
            std::fs::write(d.join("b.ndb"), "Bench.Marker:0:*:4d4f41542d42454e4348\n")
                .map_err(|e| e.to_string())?;
            d
        }
    };
    let moat = a
        .moat
        .unwrap_or_else(|| workspace.join("target/release/moat"));
    // A corpus of small files (text-like, 4-64 KiB), every 20th carrying the marker.
    let corpus = dir.path().join("corpus");
    std::fs::create_dir_all(&corpus).map_err(|e| e.to_string())?;
    let mut files = Vec::new();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..200 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = 4096 + (seed % (60 << 10)) as usize;
        let mut body: Vec<u8> = (0..len)
            .map(|j| b"abcdefgh ijklmnop\n"[(j * 7 + i) % 18])
            .collect();
        if i % 20 == 0 {
            body.extend_from_slice(b"MOAT-BENCH");
        }
        let p = corpus.join(format!("f{i}.txt"));
        std::fs::write(&p, &body).map_err(|e| e.to_string())?;
        files.push(p);
    }
    let streams: Vec<Vec<u8>> = files
        .iter()
        .map(|f| instream(&std::fs::read(f).unwrap_or_default()))
        .collect();
    let big: Vec<u8> = (0..(20usize << 20))
        .map(|j| b"0123456789 abcdef\n"[j % 18])
        .collect();
    eprintln!(
        "database: {}; corpus: {} files; {} s per point",
        db.display(),
        files.len(),
        a.seconds
    );
    let mut rows: Vec<(String, f64, f64)> = Vec::new();
    let mut servers = Vec::new();
    for name in ["clamd", "moat"] {
        servers.push(start(name, dir.path(), &db, a.threads, &moat)?);
    }
    for fd in [false, true] {
        for clients in [1, 8, 64] {
            let label = format!(
                "{} verdicts/s, {clients} clients",
                if fd { "FILDES" } else { "INSTREAM" }
            );
            let c = throughput(&servers[0], &files, &streams, clients, fd, a.seconds);
            let m = throughput(&servers[1], &files, &streams, clients, fd, a.seconds);
            eprintln!("{label}: clamd {c:.0}, moat {m:.0}");
            rows.push((label, c, m));
        }
    }
    let busy = 2 * a.threads as usize;
    let (c50, cmax) = ping_while_busy(&servers[0], &big, busy);
    let (m50, mmax) = ping_while_busy(&servers[1], &big, busy);
    rows.push((
        format!("PING ms median, {busy} 20 MiB streams busy"),
        c50,
        m50,
    ));
    rows.push((
        format!("PING ms max, {busy} 20 MiB streams busy"),
        cmax,
        mmax,
    ));
    println!(
        "{:<48} {:>12} {:>12} {:>8}",
        "serve", "clamd", "moat", "ratio"
    );
    for (label, c, m) in &rows {
        // Throughput: moat/clamd (higher is better); latency: clamd/moat (higher is better).
        let ratio = if label.starts_with("PING") {
            c / m
        } else {
            m / c
        };
        println!("{label:<48} {c:>12.2} {m:>12.2} {ratio:>7.2}x");
    }
    let json: Vec<serde_json::Value> = rows
        .iter()
        .map(|(l, c, m)| serde_json::json!({"measure": l, "clamd": c, "moat": m}))
        .collect();
    // Outside results/: the report renderer reads only its own suites' format there.
    std::fs::create_dir_all(data_dir).map_err(|e| e.to_string())?;
    std::fs::write(
        data_dir.join("serve.json"),
        serde_json::to_string_pretty(&serde_json::json!({"suite": "serve", "database": db, "threads": a.threads, "rows": json})).unwrap_or_default(),
    )
    .map_err(|e| e.to_string())?;
    drop(servers);
    Ok(())
}
