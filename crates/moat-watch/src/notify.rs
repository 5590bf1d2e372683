//! systemd's readiness protocol (`sd_notify`), without libsystemd.
//!
//! The protocol is one datagram of `KEY=value` lines to the unix socket named by
//! `$NOTIFY_SOCKET` (a path, or an abstract name when it starts with `@`). Written by hand
//! because it is a dozen lines and linking libsystemd for it would be the larger risk.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// The environment variable systemd sets for `Type=notify` services.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Sends `state` (e.g. `"READY=1\nSTATUS=watching"`) to `$NOTIFY_SOCKET`. `Ok(false)` when
/// the variable is not set (not started by a notify-aware supervisor).
pub fn notify(state: &str) -> io::Result<bool> {
    let Some(target) = std::env::var_os(NOTIFY_SOCKET) else {
        return Ok(false);
    };
    let target = target.to_string_lossy().into_owned();
    let addr = socket_addr(&target)?;
    let socket = UnixDatagram::unbound()?;
    socket.send_to_addr(state.as_bytes(), &addr)?;
    Ok(true)
}

fn socket_addr(target: &str) -> io::Result<SocketAddr> {
    if let Some(name) = target.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        SocketAddr::from_abstract_name(name.as_bytes())
    } else {
        SocketAddr::from_pathname(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_and_abstract_addresses() {
        use std::os::linux::net::SocketAddrExt;
        let a = socket_addr("/run/x.sock").unwrap();
        assert_eq!(a.as_pathname().unwrap().to_str(), Some("/run/x.sock"));
        let b = socket_addr("@moat-test").unwrap();
        assert_eq!(b.as_abstract_name(), Some(&b"moat-test"[..]));
    }

    #[test]
    fn datagram_reaches_a_bound_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        let addr = socket_addr(path.to_str().unwrap()).unwrap();
        UnixDatagram::unbound()
            .unwrap()
            .send_to_addr(b"READY=1\nSTATUS=ok", &addr)
            .unwrap();
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=ok");
    }
}
