//! One client connection, on its own thread: read a command within CommandReadTimeout,
//! answer it (cheap commands inline, scans through the pool), close; or, in IDSESSION,
//! keep reading commands while earlier scans run and reply `<id>: ...` as each finishes.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use moat_guard::Verdict;

use crate::pathscan::{self, Mode};
use crate::pool::Job;
use crate::protocol::{self, reply, ChunkDecoder, Command, Frame, Framing, Request};
use crate::server::{Ctx, Event};
use crate::sock::{Read, Sock, Writer};

/// How the command loop goes on after a command.
enum Next {
    /// Read the next command (in a session).
    Continue,
    /// Close once pending replies are out.
    Close,
    /// Close now (pending replies dropped).
    Abort,
}

struct Conn {
    ctx: Arc<Ctx>,
    sock: Sock,
    writer: Arc<Writer>,
    buf: Vec<u8>,
    /// Bytes of the stream drained from `buf` so far.
    consumed: u64,
    /// Descriptors received, with the stream offset of the byte that carried them.
    fds: VecDeque<(u64, OwnedFd)>,
    /// Replies still to come from scan jobs.
    pending: Arc<(Mutex<usize>, Condvar)>,
    session: Option<u64>,
}

/// Serves one connection to its end.
pub fn serve(ctx: Arc<Ctx>, sock: Sock) {
    let writer = match sock
        .try_clone()
        .and_then(|w| Writer::new(w, ctx.settings.send_buf_timeout))
    {
        Ok(w) => Arc::new(w),
        Err(e) => {
            tracing::warn!("connection dropped: {e}");
            return;
        }
    };
    let mut conn = Conn {
        ctx,
        sock,
        writer,
        buf: Vec::with_capacity(protocol::COMMAND_BUFFER),
        consumed: 0,
        fds: VecDeque::new(),
        pending: Arc::new((Mutex::new(0), Condvar::new())),
        session: None,
    };
    match conn.first_command() {
        Next::Continue => conn.session_loop(),
        Next::Close => conn.wait_pending(),
        Next::Abort => {}
    }
}

impl Conn {
    /// Reads more into the buffer (at most up to COMMAND_BUFFER unless `unbounded`).
    fn fill(&mut self, deadline: Instant, unbounded: bool) -> Read {
        let room = if unbounded {
            64 << 10
        } else {
            protocol::COMMAND_BUFFER.saturating_sub(self.buf.len())
        };
        if room == 0 {
            return Read::Eof;
        }
        let start = self.buf.len();
        let at = self.consumed + start as u64;
        self.buf.resize(start + room, 0);
        let r = self
            .sock
            .read_until(&mut self.buf[start..], &mut self.fds, at, deadline);
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!("read: {e}");
                Read::Eof
            }
        };
        let n = if let Read::Data(n) = r { n } else { 0 };
        self.buf.truncate(start + n);
        r
    }

    /// Drops `n` bytes from the front of the buffer.
    fn drain(&mut self, n: usize) {
        self.buf.drain(..n);
        self.consumed += n as u64;
    }

    /// Whether a descriptor came with bytes already consumed (not with a FILDES byte).
    fn stray_fd(&self) -> bool {
        self.fds.front().is_some_and(|(at, _)| *at < self.consumed)
    }

    fn timed_out(&self) -> Next {
        self.writer.send(reply::COMMAND_READ_TIMED_OUT);
        self.writer.cancel();
        Next::Abort
    }

    fn send(&self, framing: Framing, text: &str) -> bool {
        self.writer
            .send(&protocol::format_reply(self.session, text, framing))
    }

    fn first_command(&mut self) -> Next {
        let deadline = Instant::now() + self.ctx.settings.command_read_timeout;
        let mut reads = 0;
        loop {
            match protocol::parse_frame(&self.buf, reads == 1) {
                Frame::Incomplete => {}
                Frame::NotPrefixed => unreachable!("the first packet may be unprefixed"),
                Frame::Command {
                    request,
                    framing,
                    consumed,
                } => {
                    self.drain(consumed);
                    return match request {
                        None => {
                            self.send(framing, reply::UNKNOWN_COMMAND);
                            Next::Close
                        }
                        Some(r) if r.command == Command::IdSession => {
                            self.session = Some(0);
                            Next::Continue
                        }
                        Some(r) => self.dispatch(r, framing, deadline),
                    };
                }
            }
            if self.buf.len() >= protocol::COMMAND_BUFFER {
                // clamd resets such a connection without a reply.
                return Next::Abort;
            }
            match self.fill(deadline, false) {
                Read::Data(_) => reads += 1,
                Read::Eof => return Next::Abort,
                Read::TimedOut => return self.timed_out(),
            }
        }
    }

    fn session_loop(&mut self) {
        let mut deadline = Instant::now() + self.ctx.settings.read_timeout;
        loop {
            let next = match protocol::parse_frame(&self.buf, false) {
                Frame::Incomplete => {
                    if self.buf.len() >= protocol::COMMAND_BUFFER {
                        return;
                    }
                    match self.fill(deadline, false) {
                        Read::Data(_) => continue,
                        Read::Eof => Next::Close,
                        Read::TimedOut => self.timed_out(),
                    }
                }
                Frame::NotPrefixed => {
                    self.next_id();
                    self.send(Framing::N, reply::ONLY_PREFIXED);
                    self.send(Framing::N, reply::PROCESSING_ERROR);
                    Next::Close
                }
                Frame::Command {
                    request,
                    framing,
                    consumed,
                } => {
                    self.drain(consumed);
                    deadline = Instant::now() + self.ctx.settings.read_timeout;
                    self.session_command(request, framing, deadline)
                }
            };
            match next {
                Next::Continue => {}
                Next::Close => return self.wait_pending(),
                Next::Abort => return,
            }
        }
    }

    fn next_id(&mut self) {
        if let Some(id) = &mut self.session {
            *id += 1;
        }
    }

    fn session_command(
        &mut self,
        request: Option<Request>,
        framing: Framing,
        deadline: Instant,
    ) -> Next {
        if request.as_ref().is_some_and(|r| r.command == Command::End) {
            return Next::Close;
        }
        self.next_id();
        let Some(request) = request else {
            self.send(framing, reply::INVALID_IN_SESSION);
            return Next::Close;
        };
        if !request.command.allowed_in_session() {
            self.send(framing, reply::INVALID_IN_SESSION);
            return Next::Close;
        }
        let is_fildes = request.command == Command::Fildes;
        let next = self.dispatch(request, framing, deadline);
        if !is_fildes && self.stray_fd() && matches!(next, Next::Continue) {
            // clamd answers the command, then reports the descriptor under the next id.
            self.fds.clear();
            self.next_id();
            self.send(framing, reply::FD_WITHOUT_FILDES);
            return Next::Close;
        }
        next
    }

    /// Runs one command. `deadline`: CommandReadTimeout's, which also bounds FILDES.
    fn dispatch(&mut self, r: Request, framing: Framing, deadline: Instant) -> Next {
        let in_session = self.session.is_some();
        let after = if in_session {
            Next::Continue
        } else {
            Next::Close
        };
        if !self.enabled(r.command) {
            // clamd 1.5 answers `[<id>: ]COMMAND UNAVAILABLE` and ends the connection (a
            // session takes no further command and closes once its jobs have answered).
            self.send(framing, reply::COMMAND_UNAVAILABLE);
            return Next::Close;
        }
        match r.command {
            Command::Ping => {
                self.send(framing, reply::PONG);
                after
            }
            Command::Version => {
                self.send(framing, &self.ctx.version_line());
                after
            }
            Command::VersionCommands => {
                let text = format!(
                    "{}| COMMANDS: {}",
                    self.ctx.version_line(),
                    protocol::command_list()
                );
                self.send(framing, &text);
                after
            }
            Command::Stats => {
                self.send(framing, &crate::stats::render(&self.ctx));
                after
            }
            Command::Reload => {
                self.send(framing, reply::RELOADING);
                self.ctx.send_event(Event::Reload);
                Next::Close
            }
            Command::Shutdown | Command::Quit => {
                self.ctx.send_event(Event::Shutdown);
                Next::Abort
            }
            Command::DetStats | Command::DetStatsClear => Next::Close,
            Command::End => {
                self.send(framing, reply::UNKNOWN_COMMAND);
                Next::Close
            }
            Command::IdSession => {
                self.send(framing, reply::INVALID_IN_SESSION);
                Next::Close
            }
            Command::Scan | Command::ContScan | Command::AllMatchScan | Command::MultiScan => {
                self.path_command(r, framing);
                after
            }
            Command::InStream => self.instream(framing, after),
            Command::Fildes => self.fildes(framing, deadline, after),
        }
    }

    /// Whether the `Enable*Command` keys (clamd 1.5) let `command` run.
    fn enabled(&self, command: Command) -> bool {
        let s = &self.ctx.settings;
        match command {
            Command::Shutdown | Command::Quit => s.enable_shutdown_command,
            Command::Reload => s.enable_reload_command,
            Command::Version => s.enable_version_command,
            Command::Stats => s.enable_stats_command,
            _ => true,
        }
    }

    /// An emitter of `[<id>: ]line<T>` on this connection.
    fn emitter(&self, framing: Framing) -> pathscan::Emit {
        let writer = Arc::clone(&self.writer);
        let id = self.session;
        Arc::new(move |line: &[u8]| {
            let mut out = Vec::with_capacity(line.len() + 12);
            if let Some(id) = id {
                out.extend_from_slice(format!("{id}: ").as_bytes());
            }
            out.extend_from_slice(line);
            out.push(framing.terminator());
            writer.send(&out)
        })
    }

    fn path_command(&mut self, r: Request, framing: Framing) {
        let mode = match r.command {
            Command::Scan => Mode::Scan,
            Command::ContScan => Mode::Cont,
            Command::AllMatchScan => Mode::AllMatch,
            _ => Mode::Multi,
        };
        let emit = self.emitter(framing);
        if mode == Mode::Multi {
            // The walk runs here and each file goes to the pool: a worker never waits for
            // other workers.
            pathscan::run(&self.ctx, &r.path, mode, emit);
            return;
        }
        let ctx = Arc::clone(&self.ctx);
        let label = String::from_utf8_lossy(&r.path).into_owned();
        self.submit(r.command.name(), label, None, move || {
            pathscan::run(&ctx, &r.path, mode, emit)
        });
    }

    /// Queues a job; its reply is pending until it ends. A job of `size` up to
    /// [`SMALL_REQUEST`] bytes goes to the small-request lane when no worker is free, so that
    /// it does not wait behind large files.
    fn submit(
        &self,
        command: &'static str,
        label: String,
        size: Option<u64>,
        f: impl FnOnce() + Send + 'static,
    ) {
        *self.pending.0.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        let pending = Arc::clone(&self.pending);
        let small = size.is_some_and(|n| n <= SMALL_REQUEST);
        let pool = if small && !self.ctx.pool.has_room() {
            &self.ctx.small_lane
        } else {
            &self.ctx.pool
        };
        pool.submit(Job {
            command,
            label,
            run: Box::new(move || {
                f();
                let mut n = pending.0.lock().unwrap_or_else(|p| p.into_inner());
                *n -= 1;
                pending.1.notify_all();
            }),
        });
    }

    fn wait_pending(&self) {
        let mut n = self.pending.0.lock().unwrap_or_else(|p| p.into_inner());
        while *n > 0 {
            n = self.pending.1.wait(n).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// INSTREAM: chunks are gathered here (ReadTimeout between packets), in memory up to
    /// [`MEMORY_STREAM`] bytes, in a temp file beyond ([`Spool`]); then a worker scans them.
    fn instream(&mut self, framing: Framing, after: Next) -> Next {
        let dir = self
            .ctx
            .settings
            .temporary_directory
            .clone()
            .unwrap_or_else(std::env::temp_dir);
        let mut spool = Spool::Memory(Vec::new());
        let mut decoder = ChunkDecoder::new(self.ctx.settings.stream_max_length);
        // The digest for the clean-verdict cache, computed as chunks arrive (a spooled
        // stream is not read back for it).
        let mut hasher = self.ctx.settings.cache.then(crate::cache::Hasher::default);
        let mut write_error = None;
        // Past MEMORY_STREAM the rest is received at the background priority, as scans run:
        // a large upload does not delay PING or small requests on other connections.
        let mut lowered = None;
        loop {
            let fed = decoder.feed(&self.buf, |data| {
                if write_error.is_none() {
                    write_error = spool.write(data, &dir).err();
                    if let Some(h) = &mut hasher {
                        h.update(data);
                    }
                }
            });
            match fed {
                Ok(n) => {
                    self.drain(n);
                }
                Err(e) => {
                    tracing::info!(
                        "INSTREAM: Size limit reached, (requested: {}, max: {})",
                        e.requested,
                        e.remaining
                    );
                    // clamd sends this one without the session id, then closes (after
                    // discarding what the client already sent: see discard_pending).
                    self.writer
                        .send(&protocol::format_reply(None, reply::SIZE_LIMIT, framing));
                    self.sock.discard_pending();
                    return Next::Abort;
                }
            }
            if let Some(e) = write_error.take() {
                // The rest of the stream cannot be told from commands: close.
                self.spool_failed(framing, e, &dir);
                return Next::Abort;
            }
            if decoder.is_done() {
                break;
            }
            if lowered.is_none() && matches!(spool, Spool::File(_)) {
                lowered = crate::prio::Lowered::new();
            }
            let deadline = Instant::now() + self.ctx.settings.read_timeout;
            match self.fill(deadline, true) {
                Read::Data(_) => {}
                Read::Eof => return Next::Abort,
                Read::TimedOut => return self.timed_out(),
            }
        }
        drop(lowered);
        let content = match spool.finish() {
            Ok(c) => c,
            Err(e) => {
                self.spool_failed(framing, e, &dir);
                return after;
            }
        };
        let label = self.sock.stream_label();
        let digest = hasher.map(|h| h.finish());
        if let Some(d) = &digest {
            if self.ctx.cached_clean(&self.ctx.database(), d, &label) {
                // Answered here: no worker needed.
                self.send(framing, "stream: OK");
                return after;
            }
        }
        let ctx = Arc::clone(&self.ctx);
        let emit = self.emitter(framing);
        let size = match &content {
            Stream::Memory(data) => Some(data.len() as u64),
            Stream::File(_) => None,
        };
        self.submit("INSTREAM", label.clone(), size, move || {
            let verdict = match &content {
                Stream::Memory(data) => ctx.scan_bytes(data, digest, &label),
                Stream::File(file) => ctx.scan_file_known(file, digest, &label),
            };
            emit(&verdict_line(verdict, b"stream"));
        });
        after
    }

    fn spool_failed(&self, framing: Framing, e: SpoolError, dir: &std::path::Path) {
        match e {
            SpoolError::Create(e) => {
                tracing::error!(
                    "INSTREAM: cannot create a temp file in {}: {e}",
                    dir.display()
                );
                self.send(framing, "stream: Can't create temporary file ERROR");
            }
            SpoolError::Write(e) => {
                tracing::error!("INSTREAM: cannot write the temp file: {e}");
                self.send(framing, "stream: Can't write to temporary file ERROR");
            }
        }
    }

    /// FILDES: one more byte, carrying the descriptor, within CommandReadTimeout.
    fn fildes(&mut self, framing: Framing, deadline: Instant, after: Next) -> Next {
        let deadline = if self.session.is_some() {
            Instant::now() + self.ctx.settings.command_read_timeout
        } else {
            deadline
        };
        while self.buf.is_empty() {
            match self.fill(deadline, false) {
                Read::Data(_) => {}
                Read::Eof => return Next::Abort,
                Read::TimedOut => return self.timed_out(),
            }
        }
        let byte_at = self.consumed;
        self.drain(1);
        let fd = match self.fds.front() {
            Some((at, _)) if *at <= byte_at => self.fds.pop_front().map(|(_, fd)| fd),
            _ => None,
        };
        let Some(fd) = fd else {
            self.send(framing, reply::NO_FD);
            if self.session.is_some() {
                // In a session clamd ends the session there, dropping the replies still
                // pending.
                self.writer.cancel();
                return Next::Abort;
            }
            return after;
        };
        let file = File::from(fd);
        let label = format!("fd[{}]", file.as_raw_fd());
        let size = match file.metadata() {
            Ok(m) if m.file_type().is_file() => m.len(),
            regular => {
                let why = match regular {
                    Ok(_) => "Not a regular file",
                    Err(_) => "Can't stat file",
                };
                self.send(framing, &format!("{label}: {why} ERROR"));
                return after;
            }
        };
        let ctx = Arc::clone(&self.ctx);
        let emit = self.emitter(framing);
        if let Some((data, d)) = self.small_file_digest(&file, size, &label) {
            if self.ctx.cached_clean(&self.ctx.database(), &d, &label) {
                // Answered here: no worker needed.
                self.send(framing, &format!("{label}: OK"));
                return after;
            }
            self.submit("FILDES", label.clone(), Some(size), move || {
                let text = verdict_line(ctx.scan_bytes(&data, Some(d), &label), label.as_bytes());
                emit(&text);
            });
            return after;
        }
        self.submit("FILDES", label.clone(), Some(size), move || {
            let text = verdict_line(ctx.scan(&file, &label), label.as_bytes());
            emit(&text);
        });
        after
    }

    /// A FILDES file's bytes and their digest when the cache is on and the file is small
    /// enough to be read here (a page-cache read of at most [`SMALL_REQUEST`] bytes, so a
    /// cache hit needs no worker); `None`: the worker reads it ([`Ctx::scan`]).
    fn small_file_digest(
        &self,
        file: &File,
        size: u64,
        label: &str,
    ) -> Option<(Vec<u8>, crate::cache::Digest)> {
        if !self.ctx.settings.cache || size > SMALL_REQUEST {
            return None;
        }
        match crate::server::read_small(file) {
            Ok(Some(data)) => {
                let d = crate::cache::digest(&data);
                Some((data, d))
            }
            Ok(None) => None,
            Err(e) => {
                tracing::debug!("{label}: read for the cache failed ({e}); the worker retries");
                None
            }
        }
    }
}

/// INSTREAM and FILDES scans up to this size may take the small-request lane: a mail or a
/// web upload, scanned in a few milliseconds, so the lane's one worker keeps up.
pub const SMALL_REQUEST: u64 = 128 << 10;

/// Streams up to this size stay in memory: no temp file to create, write, read back and
/// delete for the small streams mail and web clients send most (moat-guard's engine reads
/// files up to 1 MiB whole too, so the scan is the same).
pub const MEMORY_STREAM: usize = 1 << 20;

/// An INSTREAM's content while it arrives.
enum Spool {
    /// Up to [`MEMORY_STREAM`] bytes.
    Memory(Vec<u8>),
    /// Beyond: in an anonymous temp file of TemporaryDirectory.
    File(std::io::BufWriter<File>),
}

/// An INSTREAM's content, complete.
enum Stream {
    Memory(Vec<u8>),
    File(File),
}

/// Why an INSTREAM could not be kept (clamd's two messages).
enum SpoolError {
    Create(std::io::Error),
    Write(std::io::Error),
}

impl Spool {
    /// Appends `data`, moving to a temp file in `dir` past [`MEMORY_STREAM`].
    fn write(&mut self, data: &[u8], dir: &std::path::Path) -> Result<(), SpoolError> {
        if let Spool::Memory(v) = self {
            if v.len() + data.len() <= MEMORY_STREAM {
                v.extend_from_slice(data);
                return Ok(());
            }
            let file = tempfile::tempfile_in(dir).map_err(SpoolError::Create)?;
            let mut w = std::io::BufWriter::with_capacity(64 << 10, file);
            w.write_all(v).map_err(SpoolError::Write)?;
            *self = Spool::File(w);
        }
        match self {
            Spool::File(w) => w.write_all(data).map_err(SpoolError::Write),
            Spool::Memory(_) => unreachable!("moved to a file above"),
        }
    }

    /// The content, a file rewound to its start.
    fn finish(self) -> Result<Stream, SpoolError> {
        match self {
            Spool::Memory(v) => Ok(Stream::Memory(v)),
            Spool::File(w) => {
                let mut f = w
                    .into_inner()
                    .map_err(|e| SpoolError::Write(e.into_error()))?;
                f.seek(SeekFrom::Start(0)).map_err(SpoolError::Write)?;
                Ok(Stream::File(f))
            }
        }
    }
}

/// `<label>: OK`, `<label>: <sig> FOUND` or `<label>: <msg> ERROR`.
fn verdict_line(v: Result<Verdict, String>, label: &[u8]) -> Vec<u8> {
    match v {
        Ok(Verdict::Infected(name)) => pathscan::line(label, &format!("{name} FOUND")),
        Ok(_) => pathscan::line(label, "OK"),
        Err(msg) => pathscan::line(label, &format!("{msg} ERROR")),
    }
}
