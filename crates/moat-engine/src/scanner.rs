//! File access for scanning: bounded memory whatever the file size.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::containers::{self, Budget, Exceeded};
use crate::{Engine, Verdict};

/// Files up to this size are read whole into the scanner's reusable buffer; larger
/// ones are streamed in chunks of this size.
const READ_LIMIT: u64 = 1 << 20;
/// The chunk size for streamed files.
pub(crate) const CHUNK: usize = 1 << 20;

/// Size and container limits, as clamscan's `--max-filesize`, `--max-scansize`,
/// `--max-recursion`, `--max-files` (see [`crate::containers`] for how they count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Files larger than this are not scanned (`None`: no limit).
    pub max_file_size: Option<u64>,
    /// At most this many bytes are scanned per file. For a plain file, as in ClamAV
    /// 1.4, a file larger than this is not scanned at all (measured: a signature in
    /// its first bytes is not reported); containers will count their members here.
    pub max_scan_size: Option<u64>,
    /// Files larger than this get no normalized-text pass (ClamAV's
    /// MaxScriptNormalize).
    pub max_script_normalize: Option<u64>,
    /// Members at this depth or deeper are not scanned (MaxRecursion; the file
    /// itself is depth 0). `Some(0)` or `Some(1)`: no container is opened.
    pub max_recursion: Option<u32>,
    /// At most this many files are scanned per top-level file, itself included
    /// (MaxFiles).
    pub max_files: Option<u64>,
    /// Report a limit hit inside a container as a detection,
    /// `Heuristics.Limits.Exceeded.<Limit>` (clamscan's `--alert-exceeds-max`).
    pub alert_exceeds_max: bool,
    /// Which kinds of container are opened.
    pub scan: crate::containers::ScanKinds,
    /// Content of at least this many bytes that gets both the raw pass and the
    /// normalized-text pass has them run at the same time, the second on a pool
    /// thread (`None`, the default: one thread per file). For latency where cores sit
    /// idle while one file is scanned (an open waiting on access), not for throughput
    /// (every core already busy with its own file). The verdict is the same either way.
    pub parallel_from: Option<u64>,
}

impl Limits {
    /// The largest file that is scanned at all: the smaller of MaxFileSize and
    /// MaxScanSize (a plain file over either is skipped whole, as in ClamAV 1.4).
    pub fn size_cap(&self) -> Option<u64> {
        [self.max_file_size, self.max_scan_size]
            .into_iter()
            .flatten()
            .min()
    }

    /// Whether a file of `len` bytes gets the normalized-text pass.
    pub fn normalizes(&self, len: u64) -> bool {
        self.max_script_normalize.is_none_or(|max| len <= max)
    }
}

impl Default for Limits {
    /// clamscan 1.4.6's defaults: MaxFileSize 100 MiB, MaxScanSize 400 MiB,
    /// MaxScriptNormalize 20 MiB (measured; the documentation says 5 MB), MaxRecursion
    /// 17, MaxFiles 10000.
    fn default() -> Self {
        Limits {
            max_file_size: Some(100 << 20),
            max_scan_size: Some(400 << 20),
            max_script_normalize: Some(20 << 20),
            max_recursion: Some(17),
            max_files: Some(10_000),
            alert_exceeds_max: false,
            scan: crate::containers::ScanKinds::default(),
            parallel_from: None,
        }
    }
}

/// Why a file was not scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Larger than [`Limits::max_file_size`] or [`Limits::max_scan_size`].
    TooLarge,
}

/// What scanning one file found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanOutcome<'e> {
    /// The verdict (clean when skipped).
    pub verdict: Verdict<'e>,
    /// Bytes scanned: the file's, and its members' (of an infected container, only
    /// the members found clean, as clamscan counts them).
    pub bytes_scanned: u64,
    /// Set when the file was not scanned at all.
    pub skipped: Option<Skip>,
    /// The first limit that kept some member of this container from being scanned.
    pub exceeded: Option<Exceeded>,
}

/// A file could not be scanned.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// Opening, reading or mapping failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Per-thread scanning state over a shared [`Engine`].
pub struct Scanner<'e> {
    engine: &'e Engine,
    buffer: Vec<u8>,
    limits: Limits,
}

impl<'e> Scanner<'e> {
    /// A scanner with its own scratch buffer.
    pub fn new(engine: &'e Engine, limits: Limits) -> Scanner<'e> {
        Scanner {
            engine,
            buffer: Vec::new(),
            limits,
        }
    }

    /// Opens and scans the file at `path`.
    pub fn scan_path(&mut self, path: &Path) -> Result<ScanOutcome<'e>, ScanError> {
        let file = File::open(path)?;
        self.scan_file(&file)
    }

    /// Scans an open file from its start.
    pub fn scan_file(&mut self, file: &File) -> Result<ScanOutcome<'e>, ScanError> {
        let len = file.metadata()?.len();
        if self.too_large(len) {
            return Ok(self.skipped(len));
        }
        if len <= READ_LIMIT {
            self.buffer.clear();
            // Room for the whole file and one more byte up front: read_to_end then needs two
            // reads (the data, then end of file) instead of growing from a 32-byte probe
            // (4 reads for a small file, which the on-access path pays on every open).
            self.buffer.reserve(len as usize + 1);
            Read::take(file, READ_LIMIT + 1).read_to_end(&mut self.buffer)?;
            let data = std::mem::take(&mut self.buffer);
            let outcome = self.scan_data(&data);
            self.buffer = data;
            return Ok(outcome);
        }
        let (verdict, read) = self.engine.scan_stream_from(
            file,
            Some(file),
            len,
            CHUNK,
            &mut self.buffer,
            &self.limits,
        )?;
        let outcome = ScanOutcome {
            verdict,
            bytes_scanned: read,
            skipped: None,
            exceeded: None,
        };
        let head = containers::head_of(file);
        Ok(self.inside(outcome, &head, moat_unpack::Input::File(file)))
    }

    /// Every signature matching an open file, read from its start ([`Engine::scan_bytes_all`]:
    /// ClamAV's `--allmatch` order), then the first detection among its members if it is a
    /// container. Files up to [`crate::facts::WHOLE_READ_MAX`] are read whole; a larger
    /// one gets the first-match scan ([`Scanner::scan_file`]): at most one name. Empty:
    /// clean, or not scanned (over the size limits).
    pub fn scan_file_all(&mut self, file: &File) -> Result<Vec<&'e str>, ScanError> {
        let len = file.metadata()?.len();
        if self.too_large(len) {
            return Ok(Vec::new());
        }
        if len > crate::facts::WHOLE_READ_MAX {
            let outcome = self.scan_file(file)?;
            return Ok(match outcome.verdict {
                Verdict::Infected(name) => vec![name],
                Verdict::Clean => Vec::new(),
            });
        }
        self.buffer.clear();
        self.buffer.reserve(len as usize + 1);
        Read::take(file, crate::facts::WHOLE_READ_MAX + 1).read_to_end(&mut self.buffer)?;
        let data = std::mem::take(&mut self.buffer);
        let mut names = self.engine.scan_bytes_all(&data, &self.limits);
        let head = &data[..data.len().min(4096)];
        let members = self.inside(
            ScanOutcome {
                verdict: Verdict::Clean,
                bytes_scanned: data.len() as u64,
                skipped: None,
                exceeded: None,
            },
            head,
            moat_unpack::Input::Bytes(&data),
        );
        if let Verdict::Infected(name) = members.verdict {
            names.push(name);
        }
        self.buffer = data;
        Ok(names)
    }

    /// After a clean verdict on a whole file: its members, if it is a container.
    fn inside(
        &self,
        mut outcome: ScanOutcome<'e>,
        head: &[u8],
        input: moat_unpack::Input<'_>,
    ) -> ScanOutcome<'e> {
        if outcome.verdict.is_infected() {
            return outcome;
        }
        let mut budget = Budget::top(outcome.bytes_scanned);
        let found =
            containers::scan_members(self.engine, &self.limits, head, input, 0, &mut budget, None);
        // clamscan's "Data scanned": every byte scanned, but for an infected file only
        // the members that came out clean (measured, docs/clamav-oracle.md §14).
        outcome.bytes_scanned = if found.is_some() {
            budget.clean_bytes
        } else {
            budget.bytes
        };
        outcome.exceeded = budget.exceeded;
        outcome.verdict = match (found, budget.exceeded) {
            (Some(name), _) => Verdict::Infected(name),
            (None, Some(limit)) if self.limits.alert_exceeds_max => {
                Verdict::Infected(limit.heuristic_name())
            }
            (None, _) => Verdict::Clean,
        };
        outcome
    }

    /// Scans content held in memory (a clamd INSTREAM), as [`Scanner::scan_file`] scans a
    /// file of these bytes; content over the size limits is skipped.
    pub fn scan_bytes(&mut self, data: &[u8]) -> ScanOutcome<'e> {
        if self.too_large(data.len() as u64) {
            return self.skipped(data.len() as u64);
        }
        self.scan_data(data)
    }

    /// Scans everything `reader` yields (e.g. standard input). Input larger than
    /// [`READ_LIMIT`] is spooled to an anonymous temporary file (as clamscan does), so
    /// memory stays bounded; input over the size limits is skipped.
    pub fn scan_reader(&mut self, mut reader: impl Read) -> Result<ScanOutcome<'e>, ScanError> {
        self.buffer.clear();
        Read::take(&mut reader, READ_LIMIT + 1).read_to_end(&mut self.buffer)?;
        if self.buffer.len() as u64 <= READ_LIMIT {
            let data = std::mem::take(&mut self.buffer);
            let outcome = if self.too_large(data.len() as u64) {
                self.skipped(data.len() as u64)
            } else {
                self.scan_data(&data)
            };
            self.buffer = data;
            return Ok(outcome);
        }
        let mut spool = tempfile::tempfile()?;
        spool.write_all(&self.buffer)?;
        let cap = self.limits.size_cap().unwrap_or(u64::MAX);
        let copied = io::copy(&mut Read::take(reader, cap.saturating_add(1)), &mut spool)?;
        let total = self.buffer.len() as u64 + copied;
        if self.too_large(total) {
            return Ok(self.skipped(total));
        }
        spool.seek(SeekFrom::Start(0))?;
        self.scan_file(&spool)
    }

    fn too_large(&self, len: u64) -> bool {
        self.limits.size_cap().is_some_and(|cap| len > cap)
    }

    /// A file of `len` bytes over the size limits: not read; with
    /// `alert_exceeds_max`, reported as the limit it exceeds (MaxFileSize first).
    fn skipped(&self, len: u64) -> ScanOutcome<'e> {
        let limit = if self.limits.max_file_size.is_some_and(|max| len > max) {
            Exceeded::MaxFileSize
        } else {
            Exceeded::MaxScanSize
        };
        let verdict = if self.limits.alert_exceeds_max {
            Verdict::Infected(limit.heuristic_name())
        } else {
            Verdict::Clean
        };
        ScanOutcome {
            verdict,
            bytes_scanned: 0,
            skipped: Some(Skip::TooLarge),
            exceeded: Some(limit),
        }
    }

    fn scan_data(&self, data: &[u8]) -> ScanOutcome<'e> {
        let outcome = ScanOutcome {
            verdict: self.engine.scan_bytes_with(data, &self.limits),
            bytes_scanned: data.len() as u64,
            skipped: None,
            exceeded: None,
        };
        let head = &data[..data.len().min(4096)];
        self.inside(outcome, head, moat_unpack::Input::Bytes(data))
    }
}
