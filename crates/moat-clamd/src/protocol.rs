//! clamd's wire protocol as pure functions: command framing, the command table, reply
//! formatting and the INSTREAM chunk decoder. No I/O, so every piece is unit-tested and
//! fuzzable (`parse_frame` and [`ChunkDecoder::feed`] take any bytes).
//!
//! The rules (clamd 1.4 `server-th.c`/`session.c`, checked on the wire against clamd 1.4.6):
//! - `z` prefix: the command ends at the first NUL; the reply ends with NUL.
//! - `n` prefix: the command ends at the first `\n` (a trailing `\r` is dropped); replies end
//!   with `\n`.
//! - no prefix: only as the first packet of a connection; the whole packet is the command, cut
//!   at its first `\n`, trailing `\r`/`\n` removed. Replies end with `\n`.
//! - commands match the table case-sensitively, in table order; a command without argument
//!   must match exactly, one with an argument takes everything after `CMD` plus one
//!   (unchecked) separator byte, and must have at least that byte.

/// The size of clamd's per-connection command buffer (`PATH_MAX + 8`): a prefixed command
/// that does not end within it is a protocol error (clamd resets the connection).
pub const COMMAND_BUFFER: usize = 4104;

/// How a command was framed; decides the reply terminator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `zCMD\0`: replies end with NUL.
    Z,
    /// `nCMD\n`: replies end with `\n`.
    N,
    /// `CMD` or `CMD\n` as the first packet: replies end with `\n`.
    Old,
}

impl Framing {
    /// The byte that ends each reply.
    pub fn terminator(self) -> u8 {
        match self {
            Framing::Z => b'\0',
            Framing::N | Framing::Old => b'\n',
        }
    }
}

/// A clamd command (the table of clamd 1.4, in its order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// `SCAN <path>`: stop at the first virus.
    Scan,
    /// `QUIT`: an alias of SHUTDOWN.
    Quit,
    /// `RELOAD`: reload the database in the background.
    Reload,
    /// `PING`.
    Ping,
    /// `CONTSCAN <path>`: keep going after a virus.
    ContScan,
    /// `VERSIONCOMMANDS`.
    VersionCommands,
    /// `VERSION`.
    Version,
    /// `END`: ends an IDSESSION.
    End,
    /// `SHUTDOWN`.
    Shutdown,
    /// `MULTISCAN <path>`: a directory's files in parallel.
    MultiScan,
    /// `FILDES`: a descriptor follows over SCM_RIGHTS.
    Fildes,
    /// `STATS`.
    Stats,
    /// `IDSESSION`.
    IdSession,
    /// `INSTREAM`: length-prefixed chunks follow.
    InStream,
    /// `DETSTATSCLEAR`: removed; accepted with no reply.
    DetStatsClear,
    /// `DETSTATS`: removed; accepted with no reply.
    DetStats,
    /// `ALLMATCHSCAN <path>`.
    AllMatchScan,
}

struct Entry {
    name: &'static str,
    command: Command,
    takes_path: bool,
    /// Accepted without a `z`/`n` prefix.
    old_style: bool,
    /// Accepted inside IDSESSION.
    in_session: bool,
}

const fn e(
    name: &'static str,
    command: Command,
    takes_path: bool,
    old_style: bool,
    in_session: bool,
) -> Entry {
    Entry {
        name,
        command,
        takes_path,
        old_style,
        in_session,
    }
}

/// clamd 1.4's command table, in its order (VERSIONCOMMANDS before VERSION).
const TABLE: &[Entry] = &[
    e("SCAN", Command::Scan, true, true, true),
    e("QUIT", Command::Quit, false, true, false),
    e("RELOAD", Command::Reload, false, true, false),
    e("PING", Command::Ping, false, true, true),
    e("CONTSCAN", Command::ContScan, true, true, false),
    e(
        "VERSIONCOMMANDS",
        Command::VersionCommands,
        false,
        false,
        true,
    ),
    e("VERSION", Command::Version, false, true, true),
    e("END", Command::End, false, false, true),
    e("SHUTDOWN", Command::Shutdown, false, true, false),
    e("MULTISCAN", Command::MultiScan, true, true, false),
    e("FILDES", Command::Fildes, false, true, true),
    e("STATS", Command::Stats, false, false, true),
    e("IDSESSION", Command::IdSession, false, false, false),
    e("INSTREAM", Command::InStream, false, false, true),
    e("DETSTATSCLEAR", Command::DetStatsClear, false, true, false),
    e("DETSTATS", Command::DetStats, false, true, false),
    e("ALLMATCHSCAN", Command::AllMatchScan, true, false, false),
];

impl Command {
    fn entry(self) -> &'static Entry {
        TABLE
            .iter()
            .find(|e| e.command == self)
            .expect("every command is in the table")
    }

    /// The command's name on the wire.
    pub fn name(self) -> &'static str {
        self.entry().name
    }

    /// Whether clamd accepts it inside an IDSESSION.
    pub fn allowed_in_session(self) -> bool {
        self.entry().in_session
    }

    /// Whether it takes a path argument.
    pub fn takes_path(self) -> bool {
        self.entry().takes_path
    }
}

/// The `| COMMANDS: ...` list of VERSIONCOMMANDS: the whole table, in order.
pub fn command_list() -> String {
    let names: Vec<&str> = TABLE.iter().map(|e| e.name).collect();
    names.join(" ")
}

/// A command with its argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The command.
    pub command: Command,
    /// The path argument (bytes, as sent) of SCAN, CONTSCAN, MULTISCAN and ALLMATCHSCAN.
    pub path: Vec<u8>,
}

/// Matches a command's text (without prefix or terminator) against the table; `None` is
/// `UNKNOWN COMMAND`. `old_style`: sent without prefix, where clamd refuses some commands.
pub fn parse_command(text: &[u8], old_style: bool) -> Option<Request> {
    for entry in TABLE {
        let name = entry.name.as_bytes();
        let matched = if entry.takes_path {
            // The separator byte after the name is not checked (clamd takes `SCANX/p` as `/p`).
            text.len() > name.len() && text.starts_with(name)
        } else {
            text == name
        };
        if matched {
            if old_style && !entry.old_style {
                return None;
            }
            let path = if entry.takes_path {
                text[name.len() + 1..].to_vec()
            } else {
                Vec::new()
            };
            return Some(Request {
                command: entry.command,
                path,
            });
        }
    }
    None
}

/// The result of looking for a command at the start of a connection's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Not complete yet: read more (unless the buffer is full: [`COMMAND_BUFFER`]).
    Incomplete,
    /// A command's text (`None` when it matches no command: `UNKNOWN COMMAND`), its framing,
    /// and how many bytes of the buffer it took.
    Command {
        /// The parsed request, or `None` for an unknown command.
        request: Option<Request>,
        /// Its framing.
        framing: Framing,
        /// Bytes consumed from the buffer.
        consumed: usize,
    },
    /// An unprefixed command where clamd requires a prefix (inside a session, or after the
    /// first packet).
    NotPrefixed,
}

/// Finds the command at the start of `buf`. `first_packet`: `buf` holds exactly the first
/// packet of the connection, where an unprefixed command is allowed.
pub fn parse_frame(buf: &[u8], first_packet: bool) -> Frame {
    let Some(&first) = buf.first() else {
        return Frame::Incomplete;
    };
    let (framing, end) = match first {
        b'z' => (Framing::Z, b'\0'),
        b'n' => (Framing::N, b'\n'),
        _ if first_packet => {
            let line = match memchr(b'\n', buf) {
                Some(i) => &buf[..i],
                None => buf,
            };
            return Frame::Command {
                request: parse_command(chomp(line), true),
                framing: Framing::Old,
                consumed: buf.len(),
            };
        }
        _ => return Frame::NotPrefixed,
    };
    let Some(i) = memchr(end, &buf[1..]) else {
        return Frame::Incomplete;
    };
    let mut text = &buf[1..1 + i];
    if framing == Framing::N {
        text = chomp(text);
    }
    Frame::Command {
        request: parse_command(text, false),
        framing,
        consumed: i + 2,
    }
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

/// Trailing `\r` and `\n` removed (clamd's `cli_chomp`).
fn chomp(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., b'\r' | b'\n'] = s {
        s = rest;
    }
    s
}

/// Replies and errors, byte for byte as clamd 1.4.6 sends them (without terminator).
pub mod reply {
    /// The reply to PING.
    pub const PONG: &str = "PONG";
    /// The reply to RELOAD.
    pub const RELOADING: &str = "RELOADING";
    /// An unknown command (or one that needs a prefix, sent without).
    pub const UNKNOWN_COMMAND: &str = "UNKNOWN COMMAND";
    /// A command turned off by an `Enable*Command no` key (clamd 1.5, `session.c`
    /// `execute_or_dispatch_command`: `conn_reply_single(conn, NULL, "COMMAND UNAVAILABLE")`).
    pub const COMMAND_UNAVAILABLE: &str = "COMMAND UNAVAILABLE";
    /// No complete command in time; always `\n`-terminated, never with a session id.
    pub const COMMAND_READ_TIMED_OUT: &[u8] = b"COMMAND READ TIMED OUT\n";
    /// A chunk header over the stream's remaining quota.
    pub const SIZE_LIMIT: &str = "INSTREAM size limit exceeded. ERROR";
    /// A command that IDSESSION does not allow.
    pub const INVALID_IN_SESSION: &str = "Command invalid inside IDSESSION. ERROR";
    /// An unprefixed command inside IDSESSION (the backslashes are literal).
    pub const ONLY_PREFIXED: &str =
        "Only nCMDS\\n and zCMDS\\0 are accepted inside IDSESSION. ERROR";
    /// Follows a dispatch or parse error.
    pub const PROCESSING_ERROR: &str = "Error processing command. ERROR";
    /// FILDES without a descriptor.
    pub const NO_FD: &str = "No file descriptor received. ERROR";
    /// A descriptor attached to another command.
    pub const FD_WITHOUT_FILDES: &str = "PROTOCOL ERROR: ancillary data sent without FILDES. ERROR";
}

/// One reply line: `[<id>: ]<text><terminator>`, formatted once so that it is sent in one
/// write (single-`recv()` clients rely on it).
pub fn format_reply(session_id: Option<u64>, text: &str, framing: Framing) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 12);
    if let Some(id) = session_id {
        out.extend_from_slice(format!("{id}: ").as_bytes());
    }
    out.extend_from_slice(text.as_bytes());
    out.push(framing.terminator());
    out
}

/// The INSTREAM quota was exceeded by a chunk header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeLimitExceeded {
    /// The chunk length the client announced.
    pub requested: u64,
    /// What was left of StreamMaxLength.
    pub remaining: u64,
}

/// INSTREAM's chunk decoder: `<u32 big-endian length><data>`... `\0\0\0\0`, split anywhere.
///
/// The quota (StreamMaxLength) is charged as each header is read, before its data, as clamd
/// does; a header over the remaining quota is an error at once.
#[derive(Debug, Clone)]
pub struct ChunkDecoder {
    remaining_quota: u64,
    header: [u8; 4],
    header_len: usize,
    /// Bytes of the current chunk still to come.
    data_left: u64,
    done: bool,
}

impl ChunkDecoder {
    /// A decoder allowing `max_length` bytes in all (`None`: no limit).
    pub fn new(max_length: Option<u64>) -> ChunkDecoder {
        ChunkDecoder {
            remaining_quota: max_length.unwrap_or(u64::MAX),
            header: [0; 4],
            header_len: 0,
            data_left: 0,
            done: false,
        }
    }

    /// Whether the terminating zero-length chunk was read.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Feeds `input`; data bytes go to `sink`. Returns how many bytes were consumed: all of
    /// `input`, or fewer when the stream ended inside it (the rest belongs to the next
    /// command).
    pub fn feed(
        &mut self,
        input: &[u8],
        mut sink: impl FnMut(&[u8]),
    ) -> Result<usize, SizeLimitExceeded> {
        let mut pos = 0;
        while pos < input.len() && !self.done {
            if self.data_left > 0 {
                let n = (self.data_left.min((input.len() - pos) as u64)) as usize;
                sink(&input[pos..pos + n]);
                pos += n;
                self.data_left -= n as u64;
                continue;
            }
            let n = (4 - self.header_len).min(input.len() - pos);
            self.header[self.header_len..self.header_len + n].copy_from_slice(&input[pos..pos + n]);
            self.header_len += n;
            pos += n;
            if self.header_len < 4 {
                break;
            }
            self.header_len = 0;
            let len = u64::from(u32::from_be_bytes(self.header));
            if len == 0 {
                self.done = true;
            } else if len > self.remaining_quota {
                return Err(SizeLimitExceeded {
                    requested: len,
                    remaining: self.remaining_quota,
                });
            } else {
                self.remaining_quota -= len;
                self.data_left = len;
            }
        }
        Ok(pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cmd(buf: &[u8], first: bool) -> (Option<(Command, Vec<u8>)>, Framing, usize) {
        match parse_frame(buf, first) {
            Frame::Command {
                request,
                framing,
                consumed,
            } => (request.map(|r| (r.command, r.path)), framing, consumed),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn framings_and_terminators() {
        assert_eq!(
            cmd(b"zPING\0", false),
            (Some((Command::Ping, vec![])), Framing::Z, 6)
        );
        assert_eq!(cmd(b"nPING\nnPING\n", false).2, 6);
        assert_eq!(cmd(b"nPING\r\n", false).0, Some((Command::Ping, vec![])));
        assert_eq!(cmd(b"PING", true).0, Some((Command::Ping, vec![])));
        assert_eq!(cmd(b"PING\r\n", true).1, Framing::Old);
        assert_eq!(parse_frame(b"PING", false), Frame::NotPrefixed);
        assert_eq!(parse_frame(b"zPIN", false), Frame::Incomplete);
        assert_eq!(parse_frame(b"", true), Frame::Incomplete);
        assert_eq!(Framing::Z.terminator(), 0);
    }

    #[test]
    fn clamd_matching_quirks() {
        // Observed on clamd 1.4.6 (../shared/notes/clamd-protocol.md 1.2).
        assert_eq!(cmd(b"nPINGX\n", false).0, None);
        assert_eq!(cmd(b"nping\n", false).0, None);
        assert_eq!(cmd(b"nSCAN\n", false).0, None);
        assert_eq!(
            cmd(b"nSCANX/srv/x\n", false).0,
            Some((Command::Scan, b"/srv/x".to_vec()))
        );
        assert_eq!(cmd(b"nSCANX\n", false).0, Some((Command::Scan, vec![])));
        assert_eq!(
            cmd(b"zSCAN  /f\0", false).0,
            Some((Command::Scan, b" /f".to_vec()))
        );
        assert_eq!(
            cmd(b"zSCAN /a b\nc\0", false).0,
            Some((Command::Scan, b"/a b\nc".to_vec()))
        );
        assert_eq!(cmd(b"STATS\n", true).0, None);
        assert_eq!(cmd(b"ALLMATCHSCAN /f\n", true).0, None);
        assert_eq!(cmd(b"FILDES\n", true).0, Some((Command::Fildes, vec![])));
        assert_eq!(
            cmd(b"nVERSIONCOMMANDS\n", false).0,
            Some((Command::VersionCommands, vec![]))
        );
        assert_eq!(
            cmd(b"nDETSTATS\n", false).0,
            Some((Command::DetStats, vec![]))
        );
        assert_eq!(cmd(b"GET / HTTP/1.1\r\n", true).0, None);
    }

    #[test]
    fn version_commands_lists_the_table() {
        assert_eq!(
            command_list(),
            "SCAN QUIT RELOAD PING CONTSCAN VERSIONCOMMANDS VERSION END SHUTDOWN MULTISCAN \
             FILDES STATS IDSESSION INSTREAM DETSTATSCLEAR DETSTATS ALLMATCHSCAN"
        );
    }

    #[test]
    fn chunks_split_anywhere_and_quota_per_header() {
        let mut wire = Vec::new();
        for c in [&b"hello"[..], b" ", b"world"] {
            wire.extend_from_slice(&(c.len() as u32).to_be_bytes());
            wire.extend_from_slice(c);
        }
        wire.extend_from_slice(&[0, 0, 0, 0]);
        wire.extend_from_slice(b"zEND\0");
        for step in 1..wire.len() {
            let mut d = ChunkDecoder::new(Some(11));
            let mut out = Vec::new();
            let mut used = 0;
            for piece in wire.chunks(step) {
                if d.is_done() {
                    break;
                }
                used += d.feed(piece, |b| out.extend_from_slice(b)).unwrap();
            }
            assert_eq!(out, b"hello world");
            assert_eq!(&wire[used..], b"zEND\0", "step {step}");
        }
        let mut d = ChunkDecoder::new(Some(10));
        let err = d.feed(&wire, |_| {}).unwrap_err();
        assert_eq!(
            err,
            SizeLimitExceeded {
                requested: 5,
                remaining: 4
            }
        );
    }

    proptest! {
        #[test]
        fn any_bytes_parse_without_panic(buf in proptest::collection::vec(any::<u8>(), 0..300), first: bool) {
            if let Frame::Command { consumed, .. } = parse_frame(&buf, first) {
                prop_assert!(consumed <= buf.len());
            }
            let mut d = ChunkDecoder::new(Some(1000));
            let _ = d.feed(&buf, |_| {});
        }
    }
}
