//! The control socket of a running `moat watch`: `moat status` asks it for a [`Snapshot`].
//!
//! A unix stream socket (default [`DEFAULT_SOCKET`]), mode 0600, owned by root (the daemon
//! runs as root). It is bound, then chmod'ed, and only then listening, so nobody else can
//! ever connect through wider permissions; and each connection's peer credentials
//! (`SO_PEERCRED`) are checked: a peer whose uid is not 0 gets a refusal and nothing else.
//!
//! Protocol (version [`PROTOCOL`]): the client sends one line, `moat/1 status\n`; the daemon
//! answers one line of JSON and closes: the [`Snapshot`], or `{"protocol":1,"error":"..."}`
//! (refused, unknown request, unsupported version). One connection at a time, each bounded
//! by a 2-second timeout: the socket cannot hold the daemon, whose threads never wait on it.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::health::{CurrentProbe, PROTOCOL};
use crate::stop::{Stop, Woken};

/// Where the control socket is unless configured (`--control-socket`, `MoatControlSocket`).
pub const DEFAULT_SOCKET: &str = "/run/moat/control.sock";

/// The request line for a status snapshot.
pub const STATUS_REQUEST: &str = "moat/1 status";

/// Time allowed to each connection for its request and our reply.
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the control socket could not be opened (a start error of the daemon).
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Another daemon answers on the path.
    #[error("control socket {0}: another moat watch is listening there")]
    InUse(PathBuf),
    /// Something that is not a socket is in the way.
    #[error("control socket {0}: exists and is not a socket")]
    NotASocket(PathBuf),
    /// A system call failed.
    #[error("control socket {path}: {what}: {error}")]
    Io {
        /// The socket's path.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// Why it failed.
        error: std::io::Error,
    },
}

/// The control socket's server thread. [`shutdown`](ControlServer::shutdown) stops it and
/// removes the socket.
pub struct ControlServer {
    path: PathBuf,
    stop: Arc<Stop>,
    thread: Option<JoinHandle<()>>,
}

impl ControlServer {
    /// Binds `path` (creating its directory, mode 0755, if missing; replacing a stale socket
    /// nobody answers on) and serves `probe`'s snapshots until shut down.
    pub fn start(path: &Path, probe: CurrentProbe) -> Result<ControlServer, ControlError> {
        ControlServer::bind(path)?.serve(probe)
    }

    /// The first half of [`start`](Self::start): the socket, bound and listening (so that
    /// a bad path fails before the daemon places any mark); connections wait until
    /// [`ControlSocket::serve`].
    pub fn bind(path: &Path) -> Result<ControlSocket, ControlError> {
        let io = |what: &'static str| {
            let path = path.to_path_buf();
            move |error| ControlError::Io { path, what, error }
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                std::fs::create_dir_all(dir).map_err(io("cannot create its directory"))?;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
                    .map_err(io("cannot set its directory's mode"))?;
            }
        }
        remove_stale(path)?;
        let listener = bind_private(path).map_err(io("cannot bind"))?;
        listener
            .set_nonblocking(true)
            .map_err(io("cannot make it non-blocking"))?;
        Ok(ControlSocket {
            path: path.to_path_buf(),
            listener: Some(listener),
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops serving and removes the socket.
    pub fn shutdown(mut self) {
        self.close();
    }

    fn close(&mut self) {
        let Some(t) = self.thread.take() else { return };
        self.stop.trigger();
        let _ = t.join();
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.close();
    }
}

/// A bound control socket not served yet (see [`ControlServer::bind`]); dropped, it is
/// removed.
pub struct ControlSocket {
    path: PathBuf,
    listener: Option<UnixListener>,
}

impl ControlSocket {
    /// Serves `probe`'s snapshots on it until the server is shut down.
    pub fn serve(mut self, probe: CurrentProbe) -> Result<ControlServer, ControlError> {
        let path = std::mem::take(&mut self.path);
        let io = |what: &'static str| {
            let path = path.clone();
            move |error| ControlError::Io { path, what, error }
        };
        let listener = self.listener.take().expect("bound");
        let stop = Arc::new(Stop::new().map_err(io("cannot create its stop pipe"))?);
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("moat-control".into())
            .spawn(move || serve(&listener, &probe, &thread_stop))
            .map_err(io("cannot start its thread"))?;
        Ok(ControlServer {
            path,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        if self.listener.take().is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A socket left by a daemon that died is removed; one that answers is another daemon's.
fn remove_stale(path: &Path) -> Result<(), ControlError> {
    let Ok(md) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !md.file_type().is_socket() {
        return Err(ControlError::NotASocket(path.to_path_buf()));
    }
    if UnixStream::connect(path).is_ok() {
        return Err(ControlError::InUse(path.to_path_buf()));
    }
    std::fs::remove_file(path).map_err(|error| ControlError::Io {
        path: path.to_path_buf(),
        what: "cannot remove the stale socket",
        error,
    })
}

/// bind, chmod 0600, then listen: std's `UnixListener::bind` listens at once, which would
/// leave a moment where the socket has the umask's (wider) mode and accepts connections.
fn bind_private(path: &Path) -> std::io::Result<UnixListener> {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let fd: OwnedFd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    rustix::net::bind(&fd, &SocketAddrUnix::new(path)?)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    rustix::net::listen(&fd, 16)?;
    Ok(UnixListener::from(fd))
}

fn serve(listener: &UnixListener, probe: &CurrentProbe, stop: &Stop) {
    loop {
        match stop.poll_with(listener.as_fd(), None) {
            Ok(Woken::Stop) => return,
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "control socket: poll failed; moat status is unavailable");
                return;
            }
        }
        match listener.accept() {
            Ok((stream, _)) => {
                if let Err(e) = answer(stream, probe) {
                    tracing::debug!(error = %e, "control socket: a request failed");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => tracing::warn!(error = %e, "control socket: accept failed"),
        }
    }
}

fn error_reply(message: &str) -> String {
    serde_json::json!({ "protocol": PROTOCOL, "error": message }).to_string()
}

fn answer(stream: UnixStream, probe: &CurrentProbe) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let uid = rustix::net::sockopt::socket_peercred(&stream)?.uid.as_raw();
    let mut out = &stream;
    // Read (bounded) before any reply, even a refusal: closing with the request unread would
    // reset the connection, and the peer would lose the reply.
    let mut line = String::new();
    BufReader::new((&stream).take(256)).read_line(&mut line)?;
    if uid != 0 {
        tracing::warn!(
            uid,
            "control socket: refused a request from a non-root peer"
        );
        let msg = format!("refused: the control socket answers root only (peer uid {uid})");
        return writeln!(out, "{}", error_reply(&msg));
    }
    let request = line.trim_end();
    let reply = match request.split_once(' ') {
        _ if request == STATUS_REQUEST => {
            serde_json::to_string(&probe.snapshot()).map_err(std::io::Error::other)?
        }
        Some((v, _)) if v.starts_with("moat/") && v != "moat/1" => error_reply(&format!(
            "unsupported protocol {v}: this daemon speaks moat/{PROTOCOL}"
        )),
        _ => error_reply(&format!(
            "unknown request {request:?}; expected {STATUS_REQUEST:?}"
        )),
    };
    writeln!(out, "{reply}")
}

/// Why `moat status` got no snapshot.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// No daemon there (not running, another path).
    #[error(
        "cannot reach moat watch at {path}: {error} (is it running, with this control socket?)"
    )]
    Unreachable {
        /// The socket's path.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The socket is root's.
    #[error("permission denied on {0}: moat status needs root (the control socket is root-only)")]
    NotPermitted(PathBuf),
    /// The daemon refused or did not understand.
    #[error("moat watch answered: {0}")]
    Refused(String),
    /// The reply could not be read.
    #[error("bad reply from moat watch: {0}")]
    BadReply(String),
}

/// Asks the daemon at `path` for its status; returns the JSON text of its [`Snapshot`]
/// (checked to be one).
///
/// [`Snapshot`]: crate::health::Snapshot
pub fn query_status(path: &Path) -> Result<String, QueryError> {
    let stream = UnixStream::connect(path).map_err(|error| match error.kind() {
        std::io::ErrorKind::PermissionDenied => QueryError::NotPermitted(path.to_path_buf()),
        _ => QueryError::Unreachable {
            path: path.to_path_buf(),
            error,
        },
    })?;
    let bad = |e: std::io::Error| QueryError::BadReply(e.to_string());
    stream.set_read_timeout(Some(IO_TIMEOUT * 2)).map_err(bad)?;
    stream.set_write_timeout(Some(IO_TIMEOUT)).map_err(bad)?;
    // A refused peer may find the connection closed before its request is written.
    let _ = writeln!(&stream, "{STATUS_REQUEST}");
    let mut reply = String::new();
    (&stream)
        .take(16 << 20)
        .read_to_string(&mut reply)
        .map_err(bad)?;
    let value: serde_json::Value =
        serde_json::from_str(reply.trim()).map_err(|e| QueryError::BadReply(e.to_string()))?;
    if let Some(error) = value.get("error").and_then(|e| e.as_str()) {
        return Err(QueryError::Refused(error.to_string()));
    }
    serde_json::from_value::<crate::health::Snapshot>(value)
        .map_err(|e| QueryError::BadReply(e.to_string()))?;
    Ok(reply.trim().to_string())
}
