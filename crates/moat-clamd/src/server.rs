//! The server: listening sockets (LocalSocket, TCPSocket/TCPAddr, or inherited from systemd),
//! one thread per connection (reading, framing, cheap commands and INSTREAM spooling, so a
//! connection never waits on another or on the scan workers), the scan [`Pool`], the
//! database behind an `Arc` swapped on RELOAD, and SHUTDOWN.

use std::fs::File;
use std::io;
use std::net::{TcpListener, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use moat_config::{Config, PathPattern};
use moat_guard::{Scanner, Verdict};

use crate::cache::{self, CacheStats, Counters, Digest, Loaded};
use crate::conn::MEMORY_STREAM;
use crate::pool::Pool;
use crate::sock::Sock;

/// What the server takes from clamd.conf.
#[derive(Debug, Clone)]
pub struct Settings {
    /// LocalSocket.
    pub local_socket: Option<PathBuf>,
    /// LocalSocketMode (default 0666).
    pub local_socket_mode: u32,
    /// LocalSocketGroup: a name or a number.
    pub local_socket_group: Option<String>,
    /// FixStaleSocket.
    pub fix_stale_socket: bool,
    /// TCPSocket.
    pub tcp_socket: Option<u16>,
    /// TCPAddr (empty: every address; `all` is a wildcard too).
    pub tcp_addrs: Vec<String>,
    /// MaxConnectionQueueLength: the listen backlog.
    pub backlog: u32,
    /// MaxThreads.
    pub max_threads: usize,
    /// MaxQueue.
    pub max_queue: usize,
    /// IdleTimeout.
    pub idle_timeout: Duration,
    /// CommandReadTimeout.
    pub command_read_timeout: Duration,
    /// ReadTimeout.
    pub read_timeout: Duration,
    /// SendBufTimeout.
    pub send_buf_timeout: Duration,
    /// StreamMaxLength (`None`: no limit).
    pub stream_max_length: Option<u64>,
    /// TemporaryDirectory (INSTREAM spool files; `None`: `$TMPDIR` or /tmp).
    pub temporary_directory: Option<PathBuf>,
    /// ExcludePath.
    pub exclude_paths: Vec<PathPattern>,
    /// AllowAllMatchScan.
    pub allow_all_match_scan: bool,
    /// FollowDirectorySymlinks.
    pub follow_directory_symlinks: bool,
    /// FollowFileSymlinks.
    pub follow_file_symlinks: bool,
    /// CrossFilesystems.
    pub cross_filesystems: bool,
    /// MaxDirectoryRecursion.
    pub max_directory_recursion: u32,
    /// VirusEvent.
    pub virus_event: Option<String>,
    /// EnableShutdownCommand (clamd 1.5; default yes): SHUTDOWN and QUIT.
    pub enable_shutdown_command: bool,
    /// EnableReloadCommand (clamd 1.5; default yes).
    pub enable_reload_command: bool,
    /// EnableVersionCommand (clamd 1.5; default yes): VERSION only; VERSIONCOMMANDS still
    /// answers, version included, as in clamd 1.5.
    pub enable_version_command: bool,
    /// EnableStatsCommand (clamd 1.5; default yes).
    pub enable_stats_command: bool,
    /// The clean-verdict cache (`DisableCache no`, clamd's default).
    pub cache: bool,
    /// MaxConnections (moat extension, default 1024): open client connections (one thread
    /// each) past which nothing more is accepted until one closes; later clients wait in the
    /// listen backlog, as clamd's wait past MaxQueue connections. Far above MaxQueue, so that
    /// slow clients do not lock out PING as they do in clamd, but bounded, so that a flood of
    /// idle connections cannot exhaust threads or descriptors.
    pub max_connections: usize,
}

impl Settings {
    /// The server keys of a parsed clamd.conf.
    pub fn from_config(c: &Config) -> Settings {
        let max_threads = c.max_threads.max(1) as usize;
        Settings {
            local_socket: c.local_socket.clone(),
            local_socket_mode: c.local_socket_mode.unwrap_or(0o666),
            local_socket_group: c.local_socket_group.clone(),
            fix_stale_socket: c.fix_stale_socket,
            tcp_socket: c.tcp_socket,
            tcp_addrs: c.tcp_addrs.clone(),
            backlog: c.max_connection_queue_length,
            max_threads,
            // clamd raises MaxQueue to 2 x MaxThreads.
            max_queue: (c.max_queue as usize).max(2 * max_threads),
            idle_timeout: c.idle_timeout,
            command_read_timeout: c.command_read_timeout,
            read_timeout: c.read_timeout,
            send_buf_timeout: c.send_buf_timeout,
            stream_max_length: c.stream_max_length,
            temporary_directory: c.temporary_directory.clone(),
            exclude_paths: c.exclude_paths.clone(),
            allow_all_match_scan: c.allow_all_match_scan,
            follow_directory_symlinks: c.follow_directory_symlinks,
            follow_file_symlinks: c.follow_file_symlinks,
            cross_filesystems: c.cross_filesystems,
            max_directory_recursion: c.max_directory_recursion,
            virus_event: c.virus_event.clone(),
            enable_shutdown_command: c.enable_shutdown_command,
            enable_reload_command: c.enable_reload_command,
            enable_version_command: c.enable_version_command,
            enable_stats_command: c.enable_stats_command,
            max_connections: (c.max_connections as usize).max(1),
            cache: !c.disable_cache,
        }
    }
}

/// A loaded signature database: the scanner and what VERSION says about it.
pub struct Database {
    /// Scans files (moat-guard's trait: the embedded engine, or another backend).
    pub scanner: Arc<dyn Scanner>,
    /// The database version and build time (`27371`, `Mon Dec  7 13:35:09 2026`) of the
    /// official databases, `None` without any (VERSION then shows no `/version/date`).
    pub version: Option<(u32, String)>,
}

/// Builds a new [`Database`] (RELOAD); an error keeps the previous one.
pub type Loader = Arc<dyn Fn() -> Result<Database, String> + Send + Sync>;

/// The version moat reports as clamd's: the ClamAV release whose protocol it speaks, with
/// moat's own version after a dash (clients parse `ClamAV %d.%d.%d`).
pub const VERSION_PREFIX: &str = concat!("ClamAV 1.4.6-moat", env!("CARGO_PKG_VERSION"));

/// An event for the main loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// RELOAD, SIGUSR2.
    Reload,
    /// SHUTDOWN, QUIT, SIGTERM, SIGINT.
    Shutdown,
}

/// State shared by every connection and job.
pub struct Ctx {
    /// The settings.
    pub settings: Settings,
    /// The scan workers.
    pub pool: Pool,
    /// The small-request lane: small INSTREAM and FILDES scans while every worker is busy.
    pub small_lane: Pool,
    database: RwLock<Arc<Loaded>>,
    /// Clean-verdict cache lookups.
    cache_counters: Arc<Counters>,
    events: Sender<Event>,
    /// Database generation, for logs.
    pub generation: AtomicU64,
    /// Client connections open now (MaxConnections).
    connections: AtomicUsize,
    /// Connection threads waiting for a connection.
    conn_threads: ConnThreads,
    /// The VirusEvent runner (bounded in number and time; never waited for).
    virus_event: Option<moat_react::virus_event::VirusEvent>,
}

impl Ctx {
    /// The database in use now, with its clean verdicts; a scan keeps its snapshot to the
    /// end, so a reload never waits for scans and scans never wait for a reload.
    pub fn database(&self) -> Arc<Loaded> {
        Arc::clone(&self.database.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Puts `db` in use with an empty cache: in one step, so no clean verdict of the old
    /// database answers once the new one is live.
    fn replace_database(&self, db: Database) {
        let loaded = Arc::new(Loaded::new(db, self.settings.cache));
        *self.database.write().unwrap_or_else(|p| p.into_inner()) = loaded;
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// The VERSION reply (without terminator).
    pub fn version_line(&self) -> String {
        match &self.database().db.version {
            Some((v, date)) => format!("{VERSION_PREFIX}/{v}/{date}"),
            None => VERSION_PREFIX.to_owned(),
        }
    }

    /// Asks the main loop for something.
    pub fn send_event(&self, e: Event) {
        let _ = self.events.send(e);
    }

    /// Clean-verdict cache lookups so far.
    pub fn cache_stats(&self) -> CacheStats {
        self.cache_counters.get()
    }

    /// Whether `loaded` found content of digest `d` clean before (counted; logged at debug).
    /// `false` when the cache is off.
    pub fn cached_clean(&self, loaded: &Loaded, d: &Digest, label: &str) -> bool {
        let Some(cache) = &loaded.cache else {
            return false;
        };
        if cache.contains(d) {
            self.cache_counters.hit();
            tracing::debug!("{label}: OK (cached)");
            true
        } else {
            self.cache_counters.miss();
            false
        }
    }

    /// Scans an open file; an error is clamd's message (`Can't read file`). Logs detections
    /// and runs VirusEvent. A regular file of up to [`MEMORY_STREAM`] bytes is read whole,
    /// looked up in the clean-verdict cache by its digest and, if not there, scanned from
    /// those same bytes (so the digest is of exactly what was scanned, whatever writes to
    /// the file meanwhile); a larger one is scanned from the file, uncached.
    pub fn scan(&self, file: &File, label: &str) -> Result<Verdict, String> {
        let loaded = self.database();
        if loaded.cache.is_none() {
            self.cache_counters.uncached();
            return self.logged(loaded.db.scanner.scan(file), label);
        }
        match read_small(file) {
            Ok(Some(data)) => {
                let d = cache::digest(&data);
                if self.cached_clean(&loaded, &d, label) {
                    return Ok(Verdict::Clean);
                }
                self.scan_bytes_in(&loaded, &data, Some(d), label)
            }
            Ok(None) => {
                self.cache_counters.uncached();
                self.logged(loaded.db.scanner.scan(file), label)
            }
            Err(e) => self.logged(Err(e.into()), label),
        }
    }

    /// Scans `file`, whose content has digest `d` (a private INSTREAM spool file, which
    /// nothing else can write); a clean verdict is cached.
    pub fn scan_file_known(
        &self,
        file: &File,
        d: Option<Digest>,
        label: &str,
    ) -> Result<Verdict, String> {
        let loaded = self.database();
        if d.is_none() {
            self.cache_counters.uncached();
        }
        let r = self.logged(loaded.db.scanner.scan(file), label);
        Self::remember(&loaded, d, &r);
        r
    }

    /// [`Ctx::scan`] for content held in memory (an INSTREAM) whose digest is `d` (`None`:
    /// cache off); a clean verdict is cached.
    pub fn scan_bytes(
        &self,
        data: &[u8],
        d: Option<Digest>,
        label: &str,
    ) -> Result<Verdict, String> {
        self.scan_bytes_in(&self.database(), data, d, label)
    }

    fn scan_bytes_in(
        &self,
        loaded: &Loaded,
        data: &[u8],
        d: Option<Digest>,
        label: &str,
    ) -> Result<Verdict, String> {
        if d.is_none() {
            self.cache_counters.uncached();
        }
        let r = self.logged(loaded.db.scanner.scan_bytes(data), label);
        Self::remember(loaded, d, &r);
        r
    }

    /// Files a clean verdict (only `Clean`: never a detection, a skip or an error).
    fn remember(loaded: &Loaded, d: Option<Digest>, r: &Result<Verdict, String>) {
        if let (Some(cache), Some(d), Ok(Verdict::Clean)) = (&loaded.cache, d, r) {
            cache.insert(d);
        }
    }

    /// Logs a scan's result (and runs VirusEvent); an error becomes clamd's message.
    fn logged(
        &self,
        result: Result<Verdict, moat_guard::ScanFailure>,
        label: &str,
    ) -> Result<Verdict, String> {
        match result {
            Ok(v) => {
                if let Verdict::Infected(name) = &v {
                    tracing::warn!("{label}: {name} FOUND");
                    self.virus_event(label, name);
                } else {
                    tracing::debug!("{label}: OK");
                }
                Ok(v)
            }
            Err(e) => {
                tracing::warn!("{label}: scan failed: {e}");
                Err("Can't read file".to_owned())
            }
        }
    }

    /// Every signature matching an open file (ALLMATCHSCAN), in ClamAV's `--allmatch`
    /// order; empty when clean. Logs each detection; VirusEvent runs for the first.
    pub fn scan_all(&self, file: &File, label: &str) -> Result<Vec<Arc<str>>, String> {
        let loaded = self.database();
        self.cache_counters.uncached();
        match loaded.db.scanner.scan_all(file) {
            Ok(names) => {
                for name in &names {
                    tracing::warn!("{label}: {name} FOUND");
                }
                match names.first() {
                    Some(first) => self.virus_event(label, first),
                    None => tracing::debug!("{label}: OK"),
                }
                Ok(names)
            }
            Err(e) => {
                tracing::warn!("{label}: scan failed: {e}");
                Err("Can't read file".to_owned())
            }
        }
    }

    /// As clamd: `%v` is the name, the file only travels in the environment (see
    /// moat_react::virus_event); started without waiting, at most a few at once.
    fn virus_event(&self, file: &str, name: &str) {
        if let Some(ve) = &self.virus_event {
            ve.fire(std::ffi::OsStr::new(file), name);
        }
    }
}

/// A regular file's content from its current offset when it has at most [`MEMORY_STREAM`]
/// bytes (read as the engine reads such a file: whole); `None`, with the offset unchanged,
/// for anything else (larger, grown past it meanwhile, not a regular file).
pub(crate) fn read_small(file: &File) -> io::Result<Option<Vec<u8>>> {
    use std::io::{Read, Seek, SeekFrom};
    let meta = file.metadata()?;
    if !meta.is_file() || meta.len() > MEMORY_STREAM as u64 {
        return Ok(None);
    }
    let mut data = Vec::with_capacity(meta.len() as usize + 1);
    Read::take(file, MEMORY_STREAM as u64 + 1).read_to_end(&mut data)?;
    if data.len() > MEMORY_STREAM {
        let mut f = file;
        f.seek(SeekFrom::Current(-(data.len() as i64)))?;
        return Ok(None);
    }
    Ok(Some(data))
}

/// Request counts seen by [`Server::trim_after_burst`].
#[derive(Default)]
struct Trim {
    /// At the last check.
    seen: u64,
    /// At the last trim.
    trimmed_at: u64,
}

/// How often the main loop checks whether scans have stopped (see
/// [`Server::trim_after_burst`]).
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// A listening socket.
pub enum Listener {
    /// A unix socket; `path` is unlinked at exit when moat created it.
    Unix {
        /// The socket.
        listener: UnixListener,
        /// Its path, when bound by moat.
        path: Option<PathBuf>,
    },
    /// A TCP socket.
    Tcp(TcpListener),
}

impl Listener {
    fn fd(&self) -> RawFd {
        match self {
            Listener::Unix { listener, .. } => listener.as_raw_fd(),
            Listener::Tcp(l) => l.as_raw_fd(),
        }
    }

    /// What the listener is bound to, for logs.
    pub fn describe(&self) -> String {
        match self {
            Listener::Unix { listener, .. } => match listener.local_addr() {
                Ok(a) => format!(
                    "unix:{}",
                    a.as_pathname()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default()
                ),
                Err(_) => "unix:?".to_owned(),
            },
            Listener::Tcp(l) => match l.local_addr() {
                Ok(a) => format!("tcp:{a}"),
                Err(_) => "tcp:?".to_owned(),
            },
        }
    }
}

/// The sockets systemd passed (`LISTEN_FDS`): at most one unix and one TCP, as clamd.
pub fn inherited_listeners() -> io::Result<Vec<Listener>> {
    let mut out = Vec::new();
    let fds = sd_notify::listen_fds().map_err(io::Error::other)?;
    for fd in fds {
        // SAFETY: systemd passed this descriptor to this process for it to own.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        let family = socket_family(&owned)?;
        if family == libc::AF_UNIX {
            out.push(Listener::Unix {
                listener: UnixListener::from(owned),
                path: None,
            });
        } else if family == libc::AF_INET || family == libc::AF_INET6 {
            out.push(Listener::Tcp(TcpListener::from(owned)));
        } else {
            tracing::warn!(fd, family, "inherited socket of an unknown family ignored");
        }
    }
    Ok(out)
}

fn socket_family(fd: &OwnedFd) -> io::Result<i32> {
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: addr and len describe a writable sockaddr_storage.
    let r = unsafe {
        libc::getsockname(
            fd.as_raw_fd(),
            (&mut addr as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(i32::from(addr.ss_family))
}

/// Binds the configured sockets that were not inherited.
pub fn bind_listeners(s: &Settings, inherited: &mut Vec<Listener>) -> io::Result<()> {
    let have_unix = inherited.iter().any(|l| matches!(l, Listener::Unix { .. }));
    let have_tcp = inherited.iter().any(|l| matches!(l, Listener::Tcp(_)));
    if let (Some(path), false) = (&s.local_socket, have_unix) {
        inherited.push(bind_unix(s, path)?);
    }
    if let (Some(port), false) = (s.tcp_socket, have_tcp) {
        let addrs: Vec<&str> = if s.tcp_addrs.is_empty() {
            vec!["all"]
        } else {
            s.tcp_addrs.iter().map(String::as_str).collect()
        };
        for a in addrs {
            let host = if a == "all" || a == "any" {
                "0.0.0.0"
            } else {
                a
            };
            let sockaddr = (host, port)
                .to_socket_addrs()
                .map_err(|e| io::Error::new(e.kind(), format!("TCPAddr {a}: {e}")))?
                .next()
                .ok_or_else(|| io::Error::other(format!("TCPAddr {a}: no address")))?;
            let l = TcpListener::bind(sockaddr)
                .map_err(|e| io::Error::new(e.kind(), format!("TCP {sockaddr}: {e}")))?;
            set_backlog(l.as_raw_fd(), s.backlog);
            inherited.push(Listener::Tcp(l));
        }
    }
    if inherited.is_empty() {
        return Err(io::Error::other(
            "Please define server type (local and/or TCP): set LocalSocket or TCPSocket",
        ));
    }
    Ok(())
}

fn set_backlog(fd: RawFd, backlog: u32) {
    // std binds with its own backlog (128); listen() again sets clamd's.
    // SAFETY: fd is a bound listening socket.
    unsafe { libc::listen(fd, backlog.min(i32::MAX as u32) as i32) };
}

fn bind_unix(s: &Settings, path: &Path) -> io::Result<Listener> {
    let listener = match UnixListener::bind(path) {
        Ok(l) => l,
        Err(e) if e.kind() == io::ErrorKind::AddrInUse && s.fix_stale_socket => {
            if UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    e.kind(),
                    format!(
                        "LocalSocket {}: another server answers on it",
                        path.display()
                    ),
                ));
            }
            tracing::info!("removing stale socket {}", path.display());
            std::fs::remove_file(path)?;
            UnixListener::bind(path)?
        }
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("LocalSocket {}: {e}", path.display()),
            ))
        }
    };
    set_backlog(listener.as_raw_fd(), s.backlog);
    std::fs::set_permissions(
        path,
        std::fs::Permissions::from_mode(s.local_socket_mode & 0o666),
    )?;
    if let Some(group) = &s.local_socket_group {
        let gid = resolve_group(group)?;
        std::os::unix::fs::chown(path, None, Some(gid))
            .map_err(|e| io::Error::new(e.kind(), format!("LocalSocketGroup {group}: {e}")))?;
    }
    Ok(Listener::Unix {
        listener,
        path: Some(path.to_path_buf()),
    })
}

/// A group name or number to a gid.
pub fn resolve_group(group: &str) -> io::Result<u32> {
    if let Ok(n) = group.parse::<u32>() {
        return Ok(n);
    }
    let name = std::ffi::CString::new(group).map_err(io::Error::other)?;
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16384];
    let mut result: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; buf outlives the use of grp.
    let r = unsafe {
        libc::getgrnam_r(
            name.as_ptr(),
            &mut grp,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if r != 0 || result.is_null() {
        return Err(io::Error::other(format!(
            "LocalSocketGroup {group}: no such group"
        )));
    }
    Ok(grp.gr_gid)
}

/// A running server.
pub struct Server {
    ctx: Arc<Ctx>,
    events: Receiver<Event>,
    listeners: Arc<Vec<Listener>>,
    stop_pipe: (OwnedFd, OwnedFd),
    loader: Loader,
    reloading: Arc<AtomicBool>,
}

impl Server {
    /// Starts serving `listeners` with `database`; `loader` builds a new database on RELOAD.
    pub fn start(
        settings: Settings,
        listeners: Vec<Listener>,
        database: Database,
        loader: Loader,
    ) -> io::Result<Server> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let pool = Pool::new(
            settings.max_threads,
            settings.max_queue,
            settings.idle_timeout,
        );
        let settings_virus_event = settings.virus_event.as_deref().map(|cmd| {
            moat_react::virus_event::VirusEvent::new(
                cmd,
                moat_react::virus_event::VirusEvent::DEFAULT_MAX_RUNNING,
                moat_react::virus_event::VirusEvent::DEFAULT_TIMEOUT,
            )
        });
        let small_lane = Pool::small_lane(settings.max_queue, settings.idle_timeout);
        let loaded = Arc::new(Loaded::new(database, settings.cache));
        let ctx = Arc::new(Ctx {
            settings,
            pool,
            small_lane,
            database: RwLock::new(loaded),
            cache_counters: Arc::default(),
            events: tx,
            generation: AtomicU64::new(1),
            connections: AtomicUsize::new(0),
            conn_threads: ConnThreads::new(),
            virus_event: settings_virus_event,
        });
        let (r, w) = nix::unistd::pipe().map_err(io::Error::from)?;
        let listeners = Arc::new(listeners);
        for l in listeners.iter() {
            set_nonblocking(l.fd())?;
        }
        let server = Server {
            ctx,
            events: rx,
            listeners,
            stop_pipe: (r, w),
            loader,
            reloading: Arc::new(AtomicBool::new(false)),
        };
        server.spawn_acceptor()?;
        Ok(server)
    }

    /// Clean-verdict cache lookups so far (every database).
    pub fn cache_stats(&self) -> CacheStats {
        self.ctx.cache_stats()
    }

    /// A handle on the cache counters that outlives [`Server::run`].
    pub fn cache_counters(&self) -> Arc<Counters> {
        Arc::clone(&self.ctx.cache_counters)
    }

    /// Where the server listens, for logs.
    pub fn describe(&self) -> Vec<String> {
        self.listeners.iter().map(Listener::describe).collect()
    }

    /// Sends events (signals) to the main loop.
    pub fn event_sender(&self) -> Sender<Event> {
        self.ctx.events.clone()
    }

    fn spawn_acceptor(&self) -> io::Result<()> {
        let ctx = Arc::clone(&self.ctx);
        let listeners = Arc::clone(&self.listeners);
        let stop = self.stop_pipe.0.as_raw_fd();
        std::thread::Builder::new()
            .name("moat-serve-accept".into())
            .spawn(move || accept_loop(&ctx, &listeners, stop))?;
        Ok(())
    }

    /// Serves until SHUTDOWN (or a signal sent through [`Server::event_sender`]); reloads on
    /// RELOAD in the background. Removes the unix socket it created.
    pub fn run(self) {
        let mut trim = Trim::default();
        loop {
            match self.events.recv_timeout(IDLE_CHECK) {
                Ok(Event::Reload) => self.reload(),
                Ok(Event::Shutdown) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => self.trim_after_burst(&mut trim),
            }
        }
        let c = self.ctx.cache_stats();
        tracing::info!(
            cache_hits = c.hits,
            cache_misses = c.misses,
            uncached = c.uncached,
            "shutting down"
        );
        let _ = nix::unistd::write(&self.stop_pipe.1, b"x");
        self.ctx.conn_threads.release_idle();
        for l in self.listeners.iter() {
            if let Listener::Unix { path: Some(p), .. } = l {
                let _ = std::fs::remove_file(p);
            }
        }
    }

    /// Once requests have stopped after a burst (none for a whole [`IDLE_CHECK`], some
    /// since the last trim), gives the C heap's free memory back to the system: the scans'
    /// buffers were freed into many threads' malloc arenas, which glibc keeps (measured:
    /// VmRSS at rest 127 MiB after the uncached `moat-bench serve` points, 115 MiB with
    /// this, clamd 112 MiB). Never while requests come: malloc_trim walks every arena
    /// under its lock.
    fn trim_after_burst(&self, t: &mut Trim) {
        let now = self.ctx.cache_stats().total();
        let st = self.ctx.pool.stats();
        let idle = now == t.seen && st.running.is_empty() && st.queued.is_empty();
        t.seen = now;
        if !idle || now == t.trimmed_at {
            return;
        }
        t.trimmed_at = now;
        #[cfg(target_env = "gnu")]
        {
            // SAFETY: malloc_trim only walks and releases the allocator's free memory.
            unsafe { libc::malloc_trim(0) };
            tracing::debug!("requests stopped: free heap memory released");
        }
    }

    fn reload(&self) {
        if self.reloading.swap(true, Ordering::SeqCst) {
            tracing::info!("a database reload is already running; request ignored");
            return;
        }
        let ctx = Arc::clone(&self.ctx);
        let loader = Arc::clone(&self.loader);
        let flag = Arc::clone(&self.reloading);
        let _ = std::thread::Builder::new()
            .name("moat-serve-reload".into())
            .spawn(move || {
                tracing::info!("reading databases");
                match loader() {
                    Ok(db) => {
                        ctx.replace_database(db);
                        tracing::info!("database correctly reloaded");
                    }
                    Err(e) => {
                        tracing::error!(
                            "database reload failed, keeping the previous instance: {e}"
                        )
                    }
                }
                flag.store(false, Ordering::SeqCst);
            });
    }
}

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor this process owns.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn accept_loop(ctx: &Arc<Ctx>, listeners: &[Listener], stop: RawFd) {
    let mut pfds: Vec<libc::pollfd> = listeners
        .iter()
        .map(|l| l.fd())
        .chain(std::iter::once(stop))
        .map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let mut capped = false;
    loop {
        if ctx.connections.load(Ordering::SeqCst) >= ctx.settings.max_connections {
            if !capped {
                tracing::warn!(
                    max = ctx.settings.max_connections,
                    "MaxConnections reached: new clients wait in the listen backlog"
                );
                capped = true;
            }
            // Only the stop pipe, briefly: a closing connection frees a slot.
            let mut stop_fd = [libc::pollfd {
                fd: stop,
                events: libc::POLLIN,
                revents: 0,
            }];
            // SAFETY: a valid one-element pollfd array.
            if unsafe { libc::poll(stop_fd.as_mut_ptr(), 1, 10) } > 0 {
                return;
            }
            continue;
        }
        capped = false;
        // SAFETY: pfds is a valid array of pollfd.
        let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, -1) };
        if r < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            tracing::error!(
                "poll on the listening sockets: {}",
                io::Error::last_os_error()
            );
            return;
        }
        if pfds.last().is_some_and(|p| p.revents != 0) {
            return;
        }
        for (i, l) in listeners.iter().enumerate() {
            if pfds[i].revents == 0 {
                continue;
            }
            loop {
                let sock = match l {
                    Listener::Unix { listener, .. } => {
                        listener.accept().map(|(s, _)| Sock::Unix(s))
                    }
                    Listener::Tcp(t) => t.accept().map(|(s, _)| Sock::Tcp(s)),
                };
                match sock {
                    Ok(sock) => {
                        spawn_connection(ctx, sock);
                        if ctx.connections.load(Ordering::SeqCst) >= ctx.settings.max_connections {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        // EMFILE and kin: back off rather than spin.
                        tracing::warn!("accept: {e}");
                        std::thread::sleep(Duration::from_millis(50));
                        break;
                    }
                }
            }
        }
    }
}

/// Counts a connection open for as long as it lives (MaxConnections).
struct Open(Arc<Ctx>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Connection threads kept waiting for the next connection once theirs has ended: a
/// thread start per connection (clone, stack mapping, exit) cost about as much as the
/// reading and answering of a small INSTREAM (measured with perf under `moat-bench serve`).
const IDLE_CONNECTION_THREADS: usize = 64;

/// Connection threads that have finished a connection and wait for another. Hand-written
/// (a channel and a counter) because a general pool would not bound idle threads while
/// letting busy ones grow to MaxConnections.
pub(crate) struct ConnThreads {
    /// A connection, or `None`: leave (shutdown).
    tx: Sender<Option<(Sock, Open)>>,
    rx: Receiver<Option<(Sock, Open)>>,
    /// Threads waiting on `rx`; never exit once counted, so a connection sent after
    /// taking one from this count is always picked up.
    idle: AtomicUsize,
}

impl ConnThreads {
    pub(crate) fn new() -> ConnThreads {
        let (tx, rx) = crossbeam_channel::unbounded();
        ConnThreads {
            tx,
            rx,
            idle: AtomicUsize::new(0),
        }
    }

    /// Tells every idle thread to leave (they hold the server's state).
    fn release_idle(&self) {
        for _ in 0..self.idle.swap(0, Ordering::SeqCst) {
            let _ = self.tx.send(None);
        }
    }

    /// Takes one idle thread, if any.
    fn take_idle(&self) -> bool {
        self.idle
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

fn spawn_connection(ctx: &Arc<Ctx>, sock: Sock) {
    ctx.connections.fetch_add(1, Ordering::SeqCst);
    let open = Open(Arc::clone(ctx));
    if ctx.conn_threads.take_idle() {
        // An idle thread is counted only while it waits on the channel for good.
        let _ = ctx.conn_threads.tx.send(Some((sock, open)));
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("moat-serve-conn".into())
        .stack_size(256 << 10)
        .spawn(move || connection_thread(sock, open));
    if let Err(e) = spawned {
        // The closure (and its Open) was dropped: the count is back.
        tracing::error!("cannot start a connection thread: {e}");
    }
}

/// Serves `sock`, then, while fewer than [`IDLE_CONNECTION_THREADS`] wait, further
/// connections handed over by [`spawn_connection`].
fn connection_thread(sock: Sock, open: Open) {
    let ctx = Arc::clone(&open.0);
    crate::conn::serve(Arc::clone(&ctx), sock);
    drop(open);
    let threads = &ctx.conn_threads;
    if crate::prio::stuck_low() {
        // Lowered for a large stream and not raised back: leave rather than serve a later
        // PING at the background priority.
        return;
    }
    let joined = threads
        .idle
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
            (n < IDLE_CONNECTION_THREADS).then_some(n + 1)
        })
        .is_ok();
    if !joined {
        return;
    }
    while let Ok(Some((sock, open))) = threads.rx.recv() {
        crate::conn::serve(Arc::clone(&ctx), sock);
        drop(open);
        if crate::prio::stuck_low() {
            return;
        }
        threads.idle.fetch_add(1, Ordering::SeqCst);
    }
}
