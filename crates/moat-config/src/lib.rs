//! clamd.conf parsing into typed settings shared by `moat scan` and `moat watch`.
//!
//! # Syntax (as clamd 1.4 reads it)
//!
//! - One `Key value` per line; the key ends at the first blank (space or tab), the value is the
//!   rest of the line with surrounding blanks removed, so values may contain spaces
//!   (`LogFile /var/log/my logs/clamd.log`). `Key=value` is not supported.
//! - Keys are case-sensitive (`logtime yes` is an unknown key, as in clamd; the error suggests
//!   the right spelling).
//! - A line whose first non-blank character is `#` is a comment; blank lines are ignored.
//!   There are **no trailing comments**: clamd keeps `# ...` as part of the value, so
//!   `LogTime yes # c` is a bad boolean and `LogFile /x.log # main` names the file
//!   `/x.log # main`. moat does the same and warns when a text value contains ` #`.
//! - Booleans: `yes`/`no`, `true`/`false`, `1`/`0`, any letter case.
//! - Numbers: unsigned decimal digits only.
//! - Sizes: bytes, or a number with `K`/`k`, `M`/`m` or `G`/`g` (powers of 1024). For every size
//!   key, `0` means no limit (clamd turns 0 into its maximum); see [`Config::max_file_size`].
//! - A key that is not repeatable and appears twice: clamd keeps the **first** value and silently
//!   ignores the later ones; moat keeps the first too, and warns.
//! - `Example` (the first line of ClamAV's sample file) makes the file refused.
//!
//! Where moat differs on purpose: a line ending in CRLF is accepted (clamd keeps the `\r` in
//! the value and then rejects `yes\r`); numbers larger than their field are an error (clamd
//! wraps them modulo 2³²); `TCPSocket` must be a port number; `OnAccessMaxThreads` must be at
//! least 1; every bad line of the file is reported, not only the first.
//!
//! # Keys
//!
//! Every key of clamd 1.4 (the man page's list plus the hidden `Dev*` keys and the deprecated
//! ones the binary still accepts) is accepted. Keys moat uses become fields of [`Config`];
//! the others are type-checked and listed by [`Config::unused_keys`] (log them at debug
//! level). Deprecated keys clamd ignores (`ScanOnAccess`, `MailFollowURLs`, ...) produce a
//! [`Warning`]. moat adds keys of its own: `OnAccessScanTimeout`, `OnAccessCoverage`,
//! `OnAccessTracking`, `OnAccessEvents`, `OnAccessExcludeExe`, `MoatControlSocket`,
//! `MoatMetricsAddress`, `MoatDetectionLog`, `ClamdSocket`, `MoatClamdHealthInterval` and
//! `MaxConnections`.
//!
//! # Example
//!
//! ```
//! use moat_config::Config;
//!
//! let text = "OnAccessIncludePath /home\nOnAccessPrevention yes\nScanPE yes\nScanOnAccess yes\n";
//! let config = Config::parse(text, "/etc/clamav/clamd.conf").unwrap();
//! assert!(config.on_access_prevention);
//! assert_eq!(config.on_access_max_file_size, Some(5 << 20)); // ClamAV's default
//! for unused in config.unused_keys() {
//!     // tracing::debug!(...) in moat
//!     assert_eq!((unused.line, unused.key.as_str()), (3, "ScanPE"));
//! }
//! for warning in config.warnings() {
//!     // "/etc/clamav/clamd.conf:4: ScanOnAccess: deprecated since ClamAV 0.102 and ignored: ..."
//!     assert!(warning.to_string().starts_with("/etc/clamav/clamd.conf:4: ScanOnAccess: "));
//! }
//!
//! let err = Config::parse("OnAccessMaxThreads many\n", "/etc/clamav/clamd.conf").unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "/etc/clamav/clamd.conf:1: OnAccessMaxThreads: expected a number, got \"many\""
//! );
//! ```

#![warn(missing_docs)]

mod endpoint;
mod error;
mod keys;
mod pattern;
mod uname;
mod value;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

pub use endpoint::{ClamdEndpoint, DEFAULT_CLAMD_PORT};
pub use error::{ConfigError, LineError, LineErrorKind, UnusedKey, Warning};
pub use keys::{KeyInfo, ValueKind};
pub use pattern::PathPattern;
pub use uname::{resolve_uname, resolve_unames, UnameError};

use error::line_error;
pub use value::parse_duration;
use value::{parse_bool, parse_size, parse_u32, quote, ParsedSize};

/// The default configuration file of clamd and `moat watch`.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/clamav/clamd.conf";

/// The default of `OnAccessMaxFileSize` (5 MiB).
pub const DEFAULT_ON_ACCESS_MAX_FILE_SIZE: u64 = 5 << 20;

/// The default of `OnAccessScanTimeout` (moat extension).
pub const DEFAULT_ON_ACCESS_SCAN_TIMEOUT: Duration = Duration::from_secs(5);

/// Looks up a key moat accepts (clamd's keys and moat's), by exact, case-sensitive name.
pub fn key_info(name: &str) -> Option<&'static KeyInfo> {
    keys::lookup(name)
}

/// Every key moat accepts, sorted by name.
pub fn known_keys() -> &'static [KeyInfo] {
    keys::KEYS
}

/// How `moat watch` places its fanotify marks (`OnAccessCoverage`, a moat extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Coverage {
    /// The default. Mark the whole filesystem of each include path (`FAN_MARK_FILESYSTEM`,
    /// plus the filesystems mounted below it) and keep only the events under the include
    /// paths: every directory is covered the moment it exists, with no tree walk and no window
    /// after `mkdir`, and ready in milliseconds whatever the tree's size. The cost: opens
    /// elsewhere on those filesystems each make a round trip to the daemon (answered at once,
    /// without a scan) until they are found clean once, and mounts that cannot reach an
    /// include path are ignored in the kernel.
    #[default]
    Filesystem,
    /// One mark per directory, kept in step with the tree by dynamic directory determination
    /// (ClamAV's model): no event at all for opens outside the include paths, but a walk at
    /// start, a watch per directory and a short window after `mkdir`.
    Directory,
}

impl FromStr for Coverage {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("filesystem") {
            Ok(Coverage::Filesystem)
        } else if s.eq_ignore_ascii_case("directory") {
            Ok(Coverage::Directory)
        } else {
            Err(format!(
                "expected \"filesystem\" or \"directory\", got {}",
                quote(s)
            ))
        }
    }
}

impl fmt::Display for Coverage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Coverage::Filesystem => "filesystem",
            Coverage::Directory => "directory",
        })
    }
}

/// How `moat watch` follows the directory tree in directory scope (`OnAccessTracking`, a moat
/// extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tracking {
    /// fanotify when the kernel and the include paths' filesystems support it, else inotify
    /// (the reason is logged at start).
    #[default]
    Auto,
    /// A fanotify notification group (`FAN_REPORT_DFID_NAME`, Linux 5.17+ for renames) with
    /// an inode mark per directory: not limited by `fs.inotify.max_user_watches`. Refusing
    /// to start when unavailable.
    Fanotify,
    /// An inotify watch per directory (ClamAV's way; limited by `fs.inotify.max_user_watches`).
    Inotify,
}

impl FromStr for Tracking {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        for t in [Tracking::Auto, Tracking::Fanotify, Tracking::Inotify] {
            if s.eq_ignore_ascii_case(&t.to_string()) {
                return Ok(t);
            }
        }
        Err(format!(
            "expected \"auto\", \"fanotify\" or \"inotify\", got {}",
            quote(s)
        ))
    }
}

impl fmt::Display for Tracking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Tracking::Auto => "auto",
            Tracking::Fanotify => "fanotify",
            Tracking::Inotify => "inotify",
        })
    }
}

/// Which accesses `moat watch` checks (`OnAccessEvents`, a moat extension): a comma list of
/// `open`, `exec` and `close`, default `open,exec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Events {
    /// `open`: every open of a file is decided before it succeeds (`FAN_OPEN_PERM`).
    pub open: bool,
    /// `exec`: every `execve` of a file is decided before it runs (`FAN_OPEN_EXEC_PERM`);
    /// alone, reads raise no event at all.
    pub exec: bool,
    /// `close`: a file closed after writing is scanned and reported (`FAN_CLOSE_WRITE`);
    /// never blocks anything.
    pub close: bool,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            open: true,
            exec: true,
            close: false,
        }
    }
}

impl FromStr for Events {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut e = Events {
            open: false,
            exec: false,
            close: false,
        };
        for word in s.split(',').map(str::trim) {
            match word.to_ascii_lowercase().as_str() {
                "open" => e.open = true,
                "exec" => e.exec = true,
                "close" => e.close = true,
                _ => {
                    return Err(format!(
                        "expected a comma list of \"open\", \"exec\" and \"close\", got {}",
                        quote(word)
                    ))
                }
            }
        }
        Ok(e)
    }
}

impl fmt::Display for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words: Vec<&str> = [
            (self.open, "open"),
            (self.exec, "exec"),
            (self.close, "close"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, w)| *w)
        .collect();
        f.write_str(&words.join(","))
    }
}

/// One `OnAccessExcludeExe` line: an executable whose accesses are not scanned, written
/// `PATH` or `PATH +children` (the trailing word also excludes the descendants).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExeExclusion {
    /// The executable's absolute path, as written (resolved to its inode at start).
    pub path: PathBuf,
    /// Whether the processes it starts (and theirs) are excluded too.
    pub children: bool,
}

impl FromStr for ExeExclusion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (path, children) = match s.strip_suffix("+children") {
            Some(p) if p.ends_with([' ', '\t']) => (p.trim_end(), true),
            _ => (s, false),
        };
        if !path.starts_with('/') {
            return Err(format!("expected an absolute path, got {}", quote(path)));
        }
        Ok(ExeExclusion {
            path: PathBuf::from(path),
            children,
        })
    }
}

/// Settings read from a clamd.conf file. Fields hold ClamAV's meaning and defaults unless they
/// say otherwise; callers may overwrite them (command-line flags win over keys).
///
/// Size limits are `Option<u64>` bytes: `None` is "no limit", which is what `0` means in the
/// file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    // ---- on-access ----
    /// `OnAccessIncludePath` (repeatable): directories to protect, recursively unless
    /// [`on_access_disable_ddd`](Self::on_access_disable_ddd). ClamAV refuses `/` with DDD.
    pub on_access_include_paths: Vec<PathBuf>,
    /// `OnAccessExcludePath` (repeatable): directories not to protect, as unanchored extended
    /// regular expressions applied to every directory, including ones created later (see
    /// [`PathPattern`] for the differences from POSIX ERE).
    pub on_access_exclude_paths: Vec<PathPattern>,
    /// `OnAccessMountPath` (repeatable): mount points protected as a whole. ClamAV forces
    /// notify-only (no blocking) when any is given.
    pub on_access_mount_paths: Vec<PathBuf>,
    /// `OnAccessDisableDDD` (default no): no tree tracking; each include path is watched
    /// non-recursively.
    pub on_access_disable_ddd: bool,
    /// `OnAccessPrevention` (default no): deny access (EPERM) to infected files instead of only
    /// reporting them.
    pub on_access_prevention: bool,
    /// `OnAccessExtraScanning` (default no): also scan files closed after writing, files and
    /// directories moved in, and the content of newly seen directories (reporting only).
    pub on_access_extra_scanning: bool,
    /// `OnAccessExcludeRootUID` (default no): accesses by uid 0 are not scanned.
    pub on_access_exclude_root_uid: bool,
    /// `OnAccessExcludeUID` (repeatable): accesses by these uids are not scanned. As in ClamAV,
    /// a `0` on any line disables the whole option (this list is then empty and a warning says
    /// so); use `OnAccessExcludeRootUID` to exclude root.
    pub on_access_exclude_uids: Vec<u32>,
    /// `OnAccessExcludeUname` (repeatable): accesses by these users are not scanned. Names are
    /// kept unresolved here; resolve them with [`resolve_unames`] at start and on reload, never
    /// per event. moat compares exact names (ClamAV compares by prefix).
    pub on_access_exclude_unames: Vec<String>,
    /// `OnAccessMaxFileSize` (default 5M; `0` = no limit → `None`): larger files are allowed
    /// without a scan.
    pub on_access_max_file_size: Option<u64>,
    /// `OnAccessMaxThreads` (default 5): scanning threads.
    pub on_access_max_threads: u32,
    /// `OnAccessCurlTimeout` (milliseconds, default 5000): timeout of each exchange with clamd
    /// (each connect, send and receive; only relevant with [`clamd_sockets`](Self::clamd_sockets),
    /// as in clamonacc).
    pub on_access_curl_timeout: Duration,
    /// `ClamdSocket` (**moat extension**, repeatable, clamav-milter's syntax: `unix:PATH` or
    /// `tcp:HOST[:PORT]`): `moat watch` scans on these clamd servers instead of its embedded
    /// engine. clamonacc instead reads this file's `LocalSocket` (else `TCPSocket`/`TCPAddr`)
    /// to find its one clamd; moat does not, because a clamd.conf that sets `LocalSocket` for
    /// clamd itself would then silently switch `moat watch` off its engine.
    pub clamd_sockets: Vec<ClamdEndpoint>,
    /// `MoatClamdHealthInterval` (**moat extension**, default 1s): how often `moat watch`
    /// asks each [`clamd_sockets`](Self::clamd_sockets) server for its VERSION: a server
    /// down or back, and a new database (whose clean verdicts must not answer from the
    /// caches), are noticed within it.
    pub moat_clamd_health_interval: Duration,
    /// `EnableShutdownCommand` (clamd 1.5, default yes): `moat serve` answers SHUTDOWN/QUIT
    /// with `COMMAND UNAVAILABLE` when off.
    pub enable_shutdown_command: bool,
    /// `EnableReloadCommand` (clamd 1.5, default yes): RELOAD.
    pub enable_reload_command: bool,
    /// `EnableVersionCommand` (clamd 1.5, default yes): VERSION (not VERSIONCOMMANDS).
    pub enable_version_command: bool,
    /// `EnableStatsCommand` (clamd 1.5, default yes): STATS.
    pub enable_stats_command: bool,
    /// `MaxConnections` (**moat extension**, default 1024): `moat serve` accepts no more
    /// client connections while this many are open (clamd's cap is MaxQueue).
    pub max_connections: u32,
    /// `OnAccessRetryAttempts` (default 0): retries after a failed scan.
    pub on_access_retry_attempts: u32,
    /// `OnAccessDenyOnError` (default no): with prevention, deny access when the scan fails or
    /// misses its deadline.
    pub on_access_deny_on_error: bool,
    /// `OnAccessScanTimeout` (**moat extension**, default 5s): the deadline of every on-access
    /// verdict; after it [`on_access_deny_on_error`](Self::on_access_deny_on_error) decides.
    /// Written as milliseconds (`5000`) or with a suffix (`5000ms`, `5s`); must be positive.
    pub on_access_scan_timeout: Duration,
    /// `OnAccessCoverage` (**moat extension**, `filesystem` or `directory`, default
    /// `filesystem`): how marks are placed; see [`Coverage`].
    pub on_access_coverage: Coverage,
    /// `OnAccessTracking` (**moat extension**, `auto`, `fanotify` or `inotify`, default
    /// `auto`): how directory scope follows the tree; see [`Tracking`].
    pub on_access_tracking: Tracking,
    /// `MoatControlSocket` (**moat extension**, default `/run/moat/control.sock`): the
    /// root-only unix socket `moat status` asks.
    pub moat_control_socket: Option<PathBuf>,
    /// `MoatMetricsAddress` (**moat extension**, `HOST:PORT`, default none: off): serve
    /// Prometheus metrics on `http://HOST:PORT/metrics`.
    pub moat_metrics_address: Option<String>,
    /// `MoatDetectionLog` (**moat extension**, a file, default none): `moat watch` appends
    /// one JSON line per detection there (deduplicated and rate-limited; `--detections-log`).
    pub moat_detection_log: Option<PathBuf>,
    /// `OnAccessEvents` (**moat extension**, a comma list of `open`, `exec`, `close`, default
    /// `open,exec`): which accesses are checked; see [`Events`].
    pub on_access_events: Events,
    /// `OnAccessExcludeExe` (**moat extension**, repeatable): accesses by processes running
    /// this executable are not scanned; `PATH +children` also excludes their descendants.
    pub on_access_exclude_exes: Vec<ExeExclusion>,

    // ---- general ----
    /// `DatabaseDirectory` (default `/var/lib/clamav`): signature databases; never watched.
    pub database_directory: PathBuf,
    /// `LogFile` (default none): also log to this file.
    pub log_file: Option<PathBuf>,
    /// `LogVerbose` (default no): verbose logging.
    pub log_verbose: bool,
    /// `LogTime` (default no): time-stamp each log line.
    pub log_time: bool,
    /// `LogSyslog` (default no): also log to syslog.
    pub log_syslog: bool,
    /// `LocalSocket` (default none): clamd's unix socket.
    pub local_socket: Option<PathBuf>,
    /// `TCPSocket` (default none): clamd's TCP port.
    pub tcp_socket: Option<u16>,
    /// `TCPAddr` (repeatable, default none = any address): addresses clamd listens on.
    pub tcp_addrs: Vec<String>,
    /// `StreamMaxLength` (default 100M; `0` = no limit): largest stream clamd accepts.
    pub stream_max_length: Option<u64>,
    /// `TemporaryDirectory` (default none = `$TMPDIR` or `/tmp`): scratch space; never watched.
    pub temporary_directory: Option<PathBuf>,
    /// `MaxFileSize` (default 100M; `0` = no limit): larger files (and larger members of
    /// containers) are not scanned.
    pub max_file_size: Option<u64>,
    /// `MaxScanSize` (default 400M; `0` = no limit): most data scanned per input file,
    /// container members included.
    pub max_scan_size: Option<u64>,
    /// `MaxRecursion` (default 17): deepest nesting of containers scanned.
    pub max_recursion: u32,
    /// `MaxFiles` (default 10000; `0` disables the limit): most members of one container
    /// scanned.
    pub max_files: u32,
    /// `MaxScriptNormalize` (default 20M; `0` = no limit): largest script normalized.
    pub max_script_normalize: Option<u64>,
    /// `AlertExceedsMax` (default no): a container limit hit is reported as
    /// `Heuristics.Limits.Exceeded.<Limit>`.
    pub alert_exceeds_max: bool,
    /// `ScanArchive` (default yes): open archives and compressed files.
    pub scan_archive: bool,
    /// `ScanMail` (default yes): open mail.
    pub scan_mail: bool,
    /// `ScanOLE2` (default yes): open OLE2 documents.
    pub scan_ole2: bool,
    /// `ScanPDF` (default yes): open PDF streams.
    pub scan_pdf: bool,
    /// `ScanHTML` (default yes): open HTML's data: URIs.
    pub scan_html: bool,
    /// `VirusEvent` (default none): command run on each detection (`%v` is the signature name;
    /// the file name is in `$CLAM_VIRUSEVENT_FILENAME`, never substituted into the command).
    pub virus_event: Option<String>,

    // ---- clamd's server (`moat serve`) ----
    /// `LocalSocketMode` (default `None`: 0666, world read-write): the unix socket's mode, octal.
    pub local_socket_mode: Option<u32>,
    /// `LocalSocketGroup` (default none: the daemon's group): the unix socket's group, a name
    /// or a number.
    pub local_socket_group: Option<String>,
    /// `FixStaleSocket` (default yes): remove a unix socket nothing answers on before binding.
    pub fix_stale_socket: bool,
    /// `MaxConnectionQueueLength` (default 200): the `listen()` backlog.
    pub max_connection_queue_length: u32,
    /// `MaxQueue` (default 100): most scan jobs waiting for a worker.
    pub max_queue: u32,
    /// `MaxThreads` (default 10): scan workers.
    pub max_threads: u32,
    /// `IdleTimeout` (default 30 s): how long an idle worker thread lingers.
    pub idle_timeout: Duration,
    /// `CommandReadTimeout` (default 30 s): from connect to the first complete command, and
    /// the wait for a FILDES descriptor.
    pub command_read_timeout: Duration,
    /// `ReadTimeout` (default 120 s): between INSTREAM packets and between commands of an
    /// IDSESSION.
    pub read_timeout: Duration,
    /// `SendBufTimeout` (default 500 ms): how long a reply may wait on a full socket buffer.
    pub send_buf_timeout: Duration,
    /// `ExcludePath` (repeatable): paths SCAN and its kin do not scan (`<path>: Excluded`).
    pub exclude_paths: Vec<PathPattern>,
    /// `AllowAllMatchScan` (default yes): whether ALLMATCHSCAN is served.
    pub allow_all_match_scan: bool,
    /// `DisableCache` (default no): `moat serve` keeps no cache of clean verdicts (keyed by
    /// the scanned bytes' digest, flushed on every database reload), as clamd.
    pub disable_cache: bool,
    /// `DetectPUA` (default no): the PUA databases (`.hdu .hsu .ndu .ldu .mdu .msu`) are
    /// loaded, as clamscan's `--detect-pua`.
    pub detect_pua: bool,
    /// `BytecodeUnsigned` (default no): loose `.cbc` files are loaded (counted; bytecode is
    /// not evaluated), as clamscan's `--bytecode-unsigned`.
    pub bytecode_unsigned: bool,
    /// `FollowDirectorySymlinks` (default no): path scans enter symlinked directories.
    pub follow_directory_symlinks: bool,
    /// `FollowFileSymlinks` (default no): path scans read symlinked files.
    pub follow_file_symlinks: bool,
    /// `CrossFilesystems` (default yes): path scans enter other filesystems.
    pub cross_filesystems: bool,
    /// `MaxDirectoryRecursion` (default 15): deepest directory level path scans enter.
    pub max_directory_recursion: u32,

    source: Option<PathBuf>,
    unused: Vec<UnusedKey>,
    warnings: Vec<Warning>,
}

impl Default for Config {
    /// ClamAV 1.4's defaults (and moat's for its own keys): what an empty file gives.
    fn default() -> Self {
        Config {
            on_access_include_paths: Vec::new(),
            on_access_exclude_paths: Vec::new(),
            on_access_mount_paths: Vec::new(),
            on_access_disable_ddd: false,
            on_access_prevention: false,
            on_access_extra_scanning: false,
            on_access_exclude_root_uid: false,
            on_access_exclude_uids: Vec::new(),
            on_access_exclude_unames: Vec::new(),
            on_access_max_file_size: Some(DEFAULT_ON_ACCESS_MAX_FILE_SIZE),
            on_access_max_threads: 5,
            on_access_curl_timeout: Duration::from_millis(5000),
            clamd_sockets: Vec::new(),
            moat_clamd_health_interval: Duration::from_secs(1),
            enable_shutdown_command: true,
            enable_reload_command: true,
            enable_version_command: true,
            enable_stats_command: true,
            max_connections: 1024,
            on_access_retry_attempts: 0,
            on_access_deny_on_error: false,
            on_access_scan_timeout: DEFAULT_ON_ACCESS_SCAN_TIMEOUT,
            on_access_coverage: Coverage::default(),
            on_access_tracking: Tracking::default(),
            moat_control_socket: None,
            moat_metrics_address: None,
            moat_detection_log: None,
            on_access_events: Events::default(),
            on_access_exclude_exes: Vec::new(),
            database_directory: PathBuf::from("/var/lib/clamav"),
            log_file: None,
            log_verbose: false,
            log_time: false,
            log_syslog: false,
            local_socket: None,
            tcp_socket: None,
            tcp_addrs: Vec::new(),
            stream_max_length: Some(100 << 20),
            temporary_directory: None,
            max_file_size: Some(100 << 20),
            max_scan_size: Some(400 << 20),
            max_recursion: 17,
            max_files: 10_000,
            max_script_normalize: Some(20 << 20),
            alert_exceeds_max: false,
            scan_archive: true,
            scan_mail: true,
            scan_ole2: true,
            scan_pdf: true,
            scan_html: true,
            virus_event: None,
            local_socket_mode: None,
            local_socket_group: None,
            fix_stale_socket: true,
            max_connection_queue_length: 200,
            max_queue: 100,
            max_threads: 10,
            idle_timeout: Duration::from_secs(30),
            command_read_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(120),
            send_buf_timeout: Duration::from_millis(500),
            exclude_paths: Vec::new(),
            allow_all_match_scan: true,
            disable_cache: false,
            detect_pua: false,
            bytecode_unsigned: false,
            follow_directory_symlinks: false,
            follow_file_symlinks: false,
            cross_filesystems: true,
            max_directory_recursion: 15,
            source: None,
            unused: Vec::new(),
            warnings: Vec::new(),
        }
    }
}

impl Config {
    /// Reads and parses a configuration file. Errors name the file (and the line and key for
    /// bad lines); every bad line of the file is reported.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|error| ConfigError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        Self::parse_bytes(&bytes, path)
    }

    /// Parses configuration text; `path` is only used in messages and by [`Config::source`].
    pub fn parse(text: &str, path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        Self::parse_bytes(text.as_bytes(), path.as_ref())
    }

    /// Parses configuration bytes (lines that are not UTF-8 are errors).
    pub fn parse_bytes(bytes: &[u8], path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let mut parser = Parser {
            path: path.as_ref(),
            config: Config {
                source: Some(path.as_ref().to_path_buf()),
                ..Config::default()
            },
            errors: Vec::new(),
            first_seen: HashMap::new(),
            uid_zero_line: None,
        };
        for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
            parser.line(index + 1, raw);
        }
        parser.finish()
    }

    /// The file this configuration was parsed from (`None` for [`Config::default`]).
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }

    /// Known clamd keys that moat does not use, in file order (log them at debug level).
    pub fn unused_keys(&self) -> &[UnusedKey] {
        &self.unused
    }

    /// Things accepted but worth a warning (deprecated keys, repeated keys, `#` in values...),
    /// in file order.
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }
}

struct Parser<'a> {
    path: &'a Path,
    config: Config,
    errors: Vec<LineError>,
    /// Line of the first occurrence of each non-repeatable key.
    first_seen: HashMap<&'static str, usize>,
    /// Line of the first `OnAccessExcludeUID 0`.
    uid_zero_line: Option<usize>,
}

fn is_blank(c: char) -> bool {
    // Space and tab separate; also the other ASCII white space so that a stray \r, \v or \f
    // does not end up in a key or value.
    c.is_ascii_whitespace() || c == '\x0b'
}

impl Parser<'_> {
    fn line(&mut self, number: usize, raw: &[u8]) {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let text = match std::str::from_utf8(raw) {
            Ok(text) => text,
            Err(e) => {
                let key = std::str::from_utf8(&raw[..e.valid_up_to()])
                    .ok()
                    .and_then(|s| s.trim_start_matches(is_blank).split(is_blank).next())
                    .filter(|k| !k.is_empty() && !k.starts_with('#'));
                self.errors.push(line_error(
                    self.path,
                    number,
                    key,
                    LineErrorKind::NotUtf8,
                    format!(
                        "the line is not valid UTF-8 (byte {} of the line)",
                        e.valid_up_to() + 1
                    ),
                ));
                return;
            }
        };
        let text = text.trim_matches(is_blank);
        if text.is_empty() || text.starts_with('#') {
            return;
        }
        let (key, value) = match text.find(is_blank) {
            Some(i) => (&text[..i], text[i..].trim_matches(is_blank)),
            None => (text, ""),
        };
        let Some(info) = keys::lookup(key) else {
            let reason = match keys::lookup_ignore_case(key) {
                Some(right) => format!(
                    "unknown option (did you mean {}? option names are case-sensitive)",
                    right.name
                ),
                None => "unknown option".to_owned(),
            };
            self.error(number, key, LineErrorKind::UnknownKey, reason);
            return;
        };
        if info.kind == ValueKind::Example {
            self.error(
                number,
                key,
                LineErrorKind::ExampleLine,
                "this is ClamAV's unedited example file: review it and remove the \"Example\" \
                 line (clamd refuses to start with it too)",
            );
            return;
        }
        if value.is_empty() {
            self.error(number, key, LineErrorKind::MissingValue, "missing value");
            return;
        }
        if info.kind == ValueKind::Deprecated {
            let message = if key == "ScanOnAccess" {
                "deprecated since ClamAV 0.102 and ignored: on-access scanning is configured \
                 with the OnAccess* keys and started with `moat watch`"
                    .to_owned()
            } else {
                "deprecated option, ignored (as clamd does)".to_owned()
            };
            self.warn(number, key, message);
            return;
        }
        if info.kind == ValueKind::String && value.contains(" #") {
            self.warn(
                number,
                key,
                format!(
                    "the value {} contains \" #\"; clamd.conf has no trailing comments, so it is \
                     part of the value",
                    quote(value)
                ),
            );
        }
        let result = if info.used {
            self.apply(info, value, number)
        } else {
            check_type(info.kind, value).map(|()| {
                self.config.unused.push(UnusedKey {
                    line: number,
                    key: key.to_owned(),
                    value: value.to_owned(),
                });
            })
        };
        if let Err(reason) = result {
            self.error(number, key, LineErrorKind::BadValue, reason);
        }
    }

    /// Sets a used key. Non-repeatable keys keep their first value (clamd does the same).
    fn apply(&mut self, info: &'static KeyInfo, v: &str, number: usize) -> Result<(), String> {
        if !info.repeatable {
            if let Some(&first) = self.first_seen.get(info.name) {
                // Check the value anyway so that a typo is not hidden.
                check_type(info.kind, v)?;
                self.warn(
                    number,
                    info.name,
                    format!(
                        "repeated; the value of line {first} is kept (clamd also keeps the first)"
                    ),
                );
                return Ok(());
            }
        }
        let c = &mut self.config;
        let mut size_overflow = false;
        let mut size = |v: &str| -> Result<Option<u64>, String> {
            match parse_size(v)? {
                ParsedSize::Bytes(0) => Ok(None),
                ParsedSize::Bytes(n) => Ok(Some(n)),
                ParsedSize::Overflow => {
                    size_overflow = true;
                    Ok(None)
                }
            }
        };
        match info.name {
            "OnAccessIncludePath" => c.on_access_include_paths.push(PathBuf::from(v)),
            "OnAccessExcludePath" => c.on_access_exclude_paths.push(
                PathPattern::new(v)
                    .map_err(|e| format!("invalid regular expression {}: {e}", quote(v)))?,
            ),
            "OnAccessMountPath" => c.on_access_mount_paths.push(PathBuf::from(v)),
            "OnAccessDisableDDD" => c.on_access_disable_ddd = parse_bool(v)?,
            "OnAccessPrevention" => c.on_access_prevention = parse_bool(v)?,
            "OnAccessExtraScanning" => c.on_access_extra_scanning = parse_bool(v)?,
            "OnAccessExcludeRootUID" => c.on_access_exclude_root_uid = parse_bool(v)?,
            "OnAccessExcludeUID" => {
                let uid = parse_u32(v)?;
                if uid == 0 {
                    if self.uid_zero_line.is_none() {
                        self.uid_zero_line = Some(number);
                    }
                } else {
                    c.on_access_exclude_uids.push(uid);
                }
            }
            "OnAccessExcludeUname" => c.on_access_exclude_unames.push(v.to_owned()),
            "OnAccessMaxFileSize" => c.on_access_max_file_size = size(v)?,
            "OnAccessMaxThreads" => {
                let n = parse_u32(v)?;
                if n == 0 {
                    return Err("must be at least 1, got \"0\"".to_owned());
                }
                c.on_access_max_threads = n;
            }
            "OnAccessCurlTimeout" => {
                c.on_access_curl_timeout = Duration::from_millis(u64::from(parse_u32(v)?))
            }
            "OnAccessRetryAttempts" => c.on_access_retry_attempts = parse_u32(v)?,
            "ClamdSocket" => c.clamd_sockets.push(v.parse()?),
            "EnableShutdownCommand" => c.enable_shutdown_command = parse_bool(v)?,
            "EnableReloadCommand" => c.enable_reload_command = parse_bool(v)?,
            "EnableVersionCommand" => c.enable_version_command = parse_bool(v)?,
            "EnableStatsCommand" => c.enable_stats_command = parse_bool(v)?,
            "MaxConnections" => {
                let n = parse_u32(v)?;
                if n == 0 {
                    return Err("must be at least 1, got \"0\"".to_owned());
                }
                c.max_connections = n;
            }
            "OnAccessDenyOnError" => c.on_access_deny_on_error = parse_bool(v)?,
            "OnAccessScanTimeout" => c.on_access_scan_timeout = parse_duration(v)?,
            "OnAccessCoverage" => c.on_access_coverage = v.parse()?,
            "OnAccessTracking" => c.on_access_tracking = v.parse()?,
            "MoatControlSocket" => c.moat_control_socket = Some(PathBuf::from(v)),
            "MoatMetricsAddress" => c.moat_metrics_address = Some(v.to_owned()),
            "MoatDetectionLog" => c.moat_detection_log = Some(PathBuf::from(v)),
            "MoatClamdHealthInterval" => c.moat_clamd_health_interval = parse_duration(v)?,
            "OnAccessEvents" => c.on_access_events = v.parse()?,
            "OnAccessExcludeExe" => c.on_access_exclude_exes.push(v.parse()?),
            "DatabaseDirectory" => c.database_directory = PathBuf::from(v),
            "LogFile" => c.log_file = Some(PathBuf::from(v)),
            "LogVerbose" => c.log_verbose = parse_bool(v)?,
            "LogTime" => c.log_time = parse_bool(v)?,
            "LogSyslog" => c.log_syslog = parse_bool(v)?,
            "LocalSocket" => c.local_socket = Some(PathBuf::from(v)),
            "TCPSocket" => {
                let port = parse_u32(v)?;
                c.tcp_socket = Some(u16::try_from(port).map_err(|_| {
                    format!("expected a port number (0 to 65535), got {}", quote(v))
                })?);
            }
            "TCPAddr" => c.tcp_addrs.push(v.to_owned()),
            "StreamMaxLength" => c.stream_max_length = size(v)?,
            "TemporaryDirectory" => c.temporary_directory = Some(PathBuf::from(v)),
            "MaxFileSize" => c.max_file_size = size(v)?,
            "MaxScanSize" => c.max_scan_size = size(v)?,
            "MaxRecursion" => c.max_recursion = parse_u32(v)?,
            "MaxFiles" => c.max_files = parse_u32(v)?,
            "MaxScriptNormalize" => c.max_script_normalize = size(v)?,
            "AlertExceedsMax" => c.alert_exceeds_max = parse_bool(v)?,
            "ScanArchive" => c.scan_archive = parse_bool(v)?,
            "ScanMail" => c.scan_mail = parse_bool(v)?,
            "ScanOLE2" => c.scan_ole2 = parse_bool(v)?,
            "ScanPDF" => c.scan_pdf = parse_bool(v)?,
            "ScanHTML" => c.scan_html = parse_bool(v)?,
            "VirusEvent" => c.virus_event = Some(v.to_owned()),
            "LocalSocketMode" => {
                c.local_socket_mode =
                    Some(u32::from_str_radix(v, 8).map_err(|_| {
                        format!("expected an octal mode such as 660, got {}", quote(v))
                    })?)
            }
            "LocalSocketGroup" => c.local_socket_group = Some(v.to_owned()),
            "FixStaleSocket" => c.fix_stale_socket = parse_bool(v)?,
            "MaxConnectionQueueLength" => c.max_connection_queue_length = parse_u32(v)?,
            "MaxQueue" => c.max_queue = parse_u32(v)?,
            "MaxThreads" => c.max_threads = parse_u32(v)?,
            "IdleTimeout" => c.idle_timeout = secs(v)?,
            "CommandReadTimeout" => c.command_read_timeout = secs(v)?,
            "ReadTimeout" => c.read_timeout = secs(v)?,
            "SendBufTimeout" => {
                c.send_buf_timeout = Duration::from_millis(u64::from(parse_u32(v)?))
            }
            "ExcludePath" => c.exclude_paths.push(
                PathPattern::new(v)
                    .map_err(|e| format!("invalid regular expression {}: {e}", quote(v)))?,
            ),
            "AllowAllMatchScan" => c.allow_all_match_scan = parse_bool(v)?,
            "DisableCache" => c.disable_cache = parse_bool(v)?,
            "DetectPUA" => c.detect_pua = parse_bool(v)?,
            "BytecodeUnsigned" => c.bytecode_unsigned = parse_bool(v)?,
            "FollowDirectorySymlinks" => c.follow_directory_symlinks = parse_bool(v)?,
            "FollowFileSymlinks" => c.follow_file_symlinks = parse_bool(v)?,
            "CrossFilesystems" => c.cross_filesystems = parse_bool(v)?,
            "MaxDirectoryRecursion" => c.max_directory_recursion = parse_u32(v)?,
            other => unreachable!("key {other} is marked used but has no field"),
        }
        if size_overflow {
            self.warn(
                number,
                info.name,
                format!("{} is too large for 64 bits; treated as no limit", quote(v)),
            );
        }
        if !info.repeatable {
            self.first_seen.insert(info.name, number);
        }
        Ok(())
    }

    fn error(&mut self, number: usize, key: &str, kind: LineErrorKind, reason: impl Into<String>) {
        self.errors
            .push(line_error(self.path, number, Some(key), kind, reason));
    }

    fn warn(&mut self, number: usize, key: &str, message: impl Into<String>) {
        self.config.warnings.push(Warning {
            path: self.path.to_path_buf(),
            line: number,
            key: key.to_owned(),
            message: message.into(),
        });
    }

    fn finish(mut self) -> Result<Config, ConfigError> {
        if !self.errors.is_empty() {
            return Err(ConfigError::Invalid {
                errors: self.errors,
            });
        }
        if let Some(number) = self.uid_zero_line {
            let dropped = std::mem::take(&mut self.config.on_access_exclude_uids);
            self.warn(
                number,
                "OnAccessExcludeUID",
                format!(
                    "a uid of 0 disables every OnAccessExcludeUID line (as in ClamAV), so {} \
                     other uid(s) are not excluded either; use OnAccessExcludeRootUID yes to \
                     exclude root",
                    dropped.len()
                ),
            );
            self.config.warnings.sort_by_key(|w| w.line);
        }
        Ok(self.config)
    }
}

/// Checks a value against a type without keeping it (for keys moat does not use).
/// A number of seconds.
fn secs(v: &str) -> Result<Duration, String> {
    Ok(Duration::from_secs(u64::from(parse_u32(v)?)))
}

fn check_type(kind: ValueKind, value: &str) -> Result<(), String> {
    match kind {
        ValueKind::Bool => parse_bool(value).map(drop),
        ValueKind::Number => value::parse_number(value).map(drop),
        ValueKind::Size => parse_size(value).map(drop),
        ValueKind::Duration => parse_duration(value).map(drop),
        ValueKind::String | ValueKind::Deprecated | ValueKind::Example => Ok(()),
    }
}
