//! clamd servers for tests: real clamd (the oracle) or `moat serve`, on a unix socket in a
//! test's directory and on a free TCP port of 127.0.0.1, started from a clamd.conf written
//! there, waited for (PING answered on both sockets) and killed on drop.
//!
//! The requests here are written with std alone (`zCOMMAND\0`, reply up to NUL or EOF), so
//! that moat-clamd's own client, which these fixtures test, does not test itself.

use std::fs;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to answer PING after it was started.
pub const START_TIMEOUT: Duration = Duration::from_secs(120);

/// A running clamd-compatible server, killed (and continued first, if stopped) on drop.
pub struct Clamd {
    child: Child,
    sock: PathBuf,
    port: u16,
    log: PathBuf,
}

impl Drop for Clamd {
    fn drop(&mut self) {
        // A SIGSTOPped process would not die of SIGKILL before it is continued.
        self.signal(libc::SIGCONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Clamd {
    /// Real clamd named `name` (files `dir/NAME.{sock,conf,log}`) on the database `db`.
    pub fn start(dir: &Path, db: &Path, name: &str) -> Clamd {
        Clamd::launch(Command::new("clamd"), dir, db, name, "")
    }

    /// `program -c CONF` (clamd, or `moat serve`) named `name` on the database `db`, with
    /// `extra` appended to its clamd.conf (whole lines); waits until it answers PING on
    /// both sockets.
    pub fn launch(mut program: Command, dir: &Path, db: &Path, name: &str, extra: &str) -> Clamd {
        let sock = dir.join(format!("{name}.sock"));
        let log = dir.join(format!("{name}.log"));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free TCP port")
            .port();
        let conf = dir.join(format!("{name}.conf"));
        fs::write(
            &conf,
            format!(
                "Foreground yes\nLocalSocket {}\nTCPSocket {port}\nTCPAddr 127.0.0.1\n\
                 DatabaseDirectory {}\nLogFile {}\nMaxThreads 4\n{extra}",
                sock.display(),
                db.display(),
                log.display()
            ),
        )
        .expect("write clamd.conf");
        let child = program
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        let mut server = Clamd {
            child,
            sock,
            port,
            log,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        while !(server.answers_ping()) {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "{name} exited before answering ({status}):\n{}",
                    server.log()
                );
            }
            assert!(Instant::now() < deadline, "{name} did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn answers_ping(&self) -> bool {
        let pong = |r: io::Result<String>| r.is_ok_and(|r| r == "PONG");
        pong(self.request("PING")) && pong(self.request_tcp("PING"))
    }

    /// The unix socket's path.
    pub fn sock(&self) -> &Path {
        &self.sock
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `unix:SOCK`, as `--clamd` and `ClamdSocket` take it.
    pub fn unix(&self) -> String {
        format!("unix:{}", self.sock.display())
    }

    /// `tcp:127.0.0.1:PORT`.
    pub fn tcp(&self) -> String {
        format!("tcp:127.0.0.1:{}", self.port)
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `zCOMMAND\0` on the unix socket; the reply without its NUL.
    pub fn request(&self, command: &str) -> io::Result<String> {
        exchange(UnixStream::connect(&self.sock)?, command)
    }

    /// As [`request`](Self::request), over TCP.
    pub fn request_tcp(&self, command: &str) -> io::Result<String> {
        exchange(TcpStream::connect(("127.0.0.1", self.port))?, command)
    }

    /// Sends `signal` to the server (`SIGSTOP` to stall it, `SIGCONT` to resume).
    pub fn signal(&self, signal: i32) {
        // SAFETY: a plain syscall on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
    }

    /// Kills the server now and reaps it.
    pub fn kill(&mut self) {
        self.child.kill().expect("kill the server");
        self.child.wait().expect("reap the server");
    }
}

/// One request on a fresh connection, every step bounded by 10 s.
fn exchange<S: Read + Write + Timeouts>(mut s: S, command: &str) -> io::Result<String> {
    s.timeouts(Duration::from_secs(10))?;
    s.write_all(format!("z{command}\0").as_bytes())?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        if let Some(end) = buf[..n].iter().position(|&b| b == 0) {
            reply.extend_from_slice(&buf[..end]);
            break;
        }
        reply.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&reply).trim_end().to_owned())
}

/// Read and write timeouts of either kind of stream.
trait Timeouts {
    fn timeouts(&self, t: Duration) -> io::Result<()>;
}

impl Timeouts for UnixStream {
    fn timeouts(&self, t: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(t))?;
        self.set_write_timeout(Some(t))
    }
}

impl Timeouts for TcpStream {
    fn timeouts(&self, t: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(t))?;
        self.set_write_timeout(Some(t))
    }
}
