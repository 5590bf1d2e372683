//! `ClamdSocket` values: where a clamd server listens (a moat extension with clamav-milter's
//! syntax).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// clamd's default TCP port, used when `tcp:HOST` names no port.
pub const DEFAULT_CLAMD_PORT: u16 = 3310;

/// Where a clamd server listens: `unix:PATH` or `tcp:HOST:PORT` (`tcp:HOST` is port 3310;
/// an IPv6 address is written in brackets, `tcp:[::1]:3310`). The syntax of clamav-milter's
/// `ClamdSocket`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClamdEndpoint {
    /// A unix socket (clamd's LocalSocket): files are passed by descriptor (FILDES).
    Unix(PathBuf),
    /// A TCP socket (clamd's TCPSocket/TCPAddr): files are streamed (INSTREAM).
    Tcp {
        /// A host name or an address (IPv6 without brackets).
        host: String,
        /// The port.
        port: u16,
    },
}

impl FromStr for ClamdEndpoint {
    type Err = String;

    fn from_str(s: &str) -> Result<ClamdEndpoint, String> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(format!("{s:?}: unix: needs a socket path"));
            }
            return Ok(ClamdEndpoint::Unix(PathBuf::from(path)));
        }
        let Some(rest) = s.strip_prefix("tcp:") else {
            return Err(format!(
                "{s:?}: expected unix:PATH or tcp:HOST[:PORT] (as clamav-milter's ClamdSocket)"
            ));
        };
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{s:?}: missing ] after the IPv6 address"))?;
            match after {
                "" => (host, None),
                _ => match after.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    None => return Err(format!("{s:?}: expected :PORT after ]")),
                },
            }
        } else {
            match rest.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            }
        };
        if host.is_empty() {
            return Err(format!("{s:?}: tcp: needs a host"));
        }
        let port = match port {
            None => DEFAULT_CLAMD_PORT,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| format!("{s:?}: {p:?} is not a port number (1 to 65535)"))?,
        };
        Ok(ClamdEndpoint::Tcp {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for ClamdEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClamdEndpoint::Unix(p) => write!(f, "unix:{}", p.display()),
            ClamdEndpoint::Tcp { host, port } if host.contains(':') => {
                write!(f, "tcp:[{host}]:{port}")
            }
            ClamdEndpoint::Tcp { host, port } => write!(f, "tcp:{host}:{port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_as_clamav_milter_writes_them() {
        assert_eq!(
            "unix:/run/clamav/clamd.ctl".parse(),
            Ok(ClamdEndpoint::Unix("/run/clamav/clamd.ctl".into()))
        );
        let tcp = |host: &str, port| ClamdEndpoint::Tcp {
            host: host.into(),
            port,
        };
        assert_eq!("tcp:scan1:3311".parse(), Ok(tcp("scan1", 3311)));
        assert_eq!("tcp:scan1".parse(), Ok(tcp("scan1", 3310)));
        assert_eq!("tcp:[::1]:4000".parse(), Ok(tcp("::1", 4000)));
        assert_eq!("tcp:[::1]".parse(), Ok(tcp("::1", 3310)));
        for bad in [
            "",
            "unix:",
            "tcp:",
            "tcp::3310",
            "tcp:h:0",
            "tcp:h:x",
            "/run/c.sock",
        ] {
            assert!(bad.parse::<ClamdEndpoint>().is_err(), "{bad:?} accepted");
        }
        for text in ["unix:/a b/c", "tcp:h:1", "tcp:[::1]:2"] {
            assert_eq!(text.parse::<ClamdEndpoint>().unwrap().to_string(), text);
        }
    }
}
