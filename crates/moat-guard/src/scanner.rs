//! The [`Scanner`] trait: an open file in, a [`Verdict`] out.
//!
//! The on-access path depends on scanning only through this trait, so the embedded engine
//! ([`EngineScanner`]) and a future clamd backend are interchangeable, and tests use fakes that
//! sleep, block or fail on demand.
//!
//! Verdicts own their detection name (`Arc<str>`) instead of borrowing it from an engine: the
//! engine may be replaced on a database reload while a verdict is still being logged.

use std::fs::File;
use std::io;
use std::sync::Arc;
use std::time::SystemTime;

/// Why a file was allowed without its content being scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SkipReason {
    /// Over the scanner's size limits (`MaxFileSize`/`MaxScanSize`). Not a failure: ClamAV
    /// allows such files too.
    TooLarge,
}

/// The result of scanning one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Scanned; no signature matched.
    Clean,
    /// Not scanned, for a reason that is not an error (the file is allowed). Kept apart from
    /// [`Verdict::Clean`] so that it is counted separately and never cached as clean.
    Skipped(SkipReason),
    /// A signature matched; the detection name as ClamAV reports it.
    Infected(Arc<str>),
}

impl Verdict {
    /// Whether the verdict is a detection.
    pub fn is_infected(&self) -> bool {
        matches!(self, Verdict::Infected(_))
    }
}

/// A file could not be scanned. The daemon then applies `OnAccessDenyOnError`.
#[derive(Debug, thiserror::Error)]
pub enum ScanFailure {
    /// Reading or `fstat`ing the file failed.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// The scanner panicked (caught by the worker; the worker keeps running).
    #[error("the scanner panicked")]
    Panicked,
    /// A backend-specific failure (e.g. a clamd connection error).
    #[error("{0}")]
    Backend(String),
}

/// Scans open files. Shared by every worker thread, so it must be `Send + Sync`.
pub trait Scanner: Send + Sync {
    /// Scans `file` from its current offset (an fanotify event fd is at offset 0). Must not
    /// change anything the opener can see.
    fn scan(&self, file: &File) -> Result<Verdict, ScanFailure>;

    /// Scans content held in memory as a file of these bytes. By default written to an
    /// anonymous temporary file and scanned with [`Scanner::scan`].
    fn scan_bytes(&self, data: &[u8]) -> Result<Verdict, ScanFailure> {
        use std::io::{Seek, Write};
        let mut file = tempfile::tempfile()?;
        file.write_all(data)?;
        file.rewind()?;
        self.scan(&file)
    }

    /// Every signature matching `file`, in the order ClamAV reports them with `--allmatch`
    /// (clamd's ALLMATCHSCAN); empty when clean or not scanned. By default the one
    /// detection of [`Scanner::scan`].
    fn scan_all(&self, file: &File) -> Result<Vec<Arc<str>>, ScanFailure> {
        Ok(match self.scan(file)? {
            Verdict::Infected(name) => vec![name],
            Verdict::Clean | Verdict::Skipped(_) => Vec::new(),
        })
    }

    /// The version of the signature database behind this scanner. It is part of the verdict
    /// cache key, so verdicts of an older database never answer for a newer one.
    fn generation(&self) -> u64;

    /// Whether a clean verdict of `generation` may be cached (the userspace verdict cache and
    /// the kernel's ignore marks). A scanner that cannot tell when its database changes (a
    /// clamd pool whose servers disagree or report no database version) says no; any change
    /// of that answer must come with a new generation, so that asking with the generation
    /// read before the scan is free of races. Yes by default.
    fn caches_clean(&self, generation: u64) -> bool {
        let _ = generation;
        true
    }

    /// What is known about the database behind this scanner, for health reports
    /// (`moat status`, metrics). Nothing by default.
    fn database(&self) -> DatabaseInfo {
        DatabaseInfo::default()
    }
}

impl<S: Scanner + ?Sized> Scanner for Arc<S> {
    fn scan(&self, file: &File) -> Result<Verdict, ScanFailure> {
        (**self).scan(file)
    }

    fn scan_all(&self, file: &File) -> Result<Vec<Arc<str>>, ScanFailure> {
        (**self).scan_all(file)
    }

    fn scan_bytes(&self, data: &[u8]) -> Result<Verdict, ScanFailure> {
        (**self).scan_bytes(data)
    }

    fn generation(&self) -> u64 {
        (**self).generation()
    }

    fn caches_clean(&self, generation: u64) -> bool {
        (**self).caches_clean(generation)
    }

    fn database(&self) -> DatabaseInfo {
        (**self).database()
    }
}

/// A signature database as health reports show it. Every field is read from the loaded
/// database or its files; `None` when unknown (a test scanner, a database without an
/// official container).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DatabaseInfo {
    /// Signatures the engine knows (`Engine::signature_count`).
    pub signatures: Option<u64>,
    /// The highest version among the official containers (`daily.cvd`'s, usually).
    pub version: Option<u32>,
    /// That container's build time (its header's `stime`).
    pub built: Option<SystemTime>,
    /// When this database was loaded.
    pub loaded: Option<SystemTime>,
}

/// The scanner in use, replaceable while workers scan (a database reload).
///
/// Each job takes a [snapshot](ScannerSlot::load) and uses it for both its generation and its
/// scan, so a verdict always belongs to the generation it is filed under. A `RwLock` around an
/// `Arc`, held only to clone the `Arc`: a reload is rare, and readers never wait on a scan.
pub struct ScannerSlot {
    current: std::sync::RwLock<Arc<dyn Scanner>>,
}

impl ScannerSlot {
    /// A slot holding `scanner`.
    pub fn new(scanner: Arc<dyn Scanner>) -> ScannerSlot {
        ScannerSlot {
            current: std::sync::RwLock::new(scanner),
        }
    }

    /// The scanner in use now.
    pub fn load(&self) -> Arc<dyn Scanner> {
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The generation of the scanner in use now.
    pub fn generation(&self) -> u64 {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .generation()
    }

    /// Puts `scanner` in use for every job that starts from now on; returns the old one
    /// (scans in progress finish with it).
    pub fn replace(&self, scanner: Arc<dyn Scanner>) -> Arc<dyn Scanner> {
        let mut cur = self.current.write().unwrap_or_else(|p| p.into_inner());
        std::mem::replace(&mut *cur, scanner)
    }
}

/// A [`Scanner`] over the embedded [`moat_engine::Engine`].
///
/// Each call builds a [`moat_engine::Scanner`] (its scratch buffer is allocated per call:
/// a few microseconds, small next to the read itself). The engine is immutable and shared by
/// all workers with no lock; a reload builds a new `EngineScanner` with a new generation.
pub struct EngineScanner {
    engine: Arc<moat_engine::Engine>,
    limits: moat_engine::Limits,
    generation: u64,
    info: DatabaseInfo,
}

impl EngineScanner {
    /// A scanner over `engine` with `limits`; `generation` identifies the database (e.g. a
    /// counter bumped on every reload).
    pub fn new(
        engine: Arc<moat_engine::Engine>,
        limits: moat_engine::Limits,
        generation: u64,
    ) -> Self {
        let info = DatabaseInfo {
            signatures: Some(engine.signature_count() as u64),
            loaded: Some(SystemTime::now()),
            ..DatabaseInfo::default()
        };
        EngineScanner {
            engine,
            limits,
            generation,
            info,
        }
    }

    /// Records the version and build time of the official containers the database was
    /// loaded from (for [`Scanner::database`]).
    pub fn with_version(mut self, version: u32, built: SystemTime) -> Self {
        self.info.version = Some(version);
        self.info.built = Some(built);
        self
    }

    /// The engine scanned with.
    pub fn engine(&self) -> &Arc<moat_engine::Engine> {
        &self.engine
    }
}

/// The trait's verdict for an engine outcome.
fn verdict_of(outcome: moat_engine::ScanOutcome<'_>) -> Verdict {
    match (outcome.skipped, outcome.verdict) {
        (Some(moat_engine::Skip::TooLarge), _) => Verdict::Skipped(SkipReason::TooLarge),
        (None, moat_engine::Verdict::Clean) => Verdict::Clean,
        (None, moat_engine::Verdict::Infected(name)) => Verdict::Infected(Arc::from(name)),
    }
}

impl Scanner for EngineScanner {
    fn scan(&self, file: &File) -> Result<Verdict, ScanFailure> {
        let mut scanner = moat_engine::Scanner::new(&self.engine, self.limits);
        let outcome = scanner.scan_file(file).map_err(|e| match e {
            moat_engine::ScanError::Io(e) => ScanFailure::Io(e),
        })?;
        Ok(verdict_of(outcome))
    }

    fn scan_bytes(&self, data: &[u8]) -> Result<Verdict, ScanFailure> {
        let mut scanner = moat_engine::Scanner::new(&self.engine, self.limits);
        Ok(verdict_of(scanner.scan_bytes(data)))
    }

    fn scan_all(&self, file: &File) -> Result<Vec<Arc<str>>, ScanFailure> {
        let mut scanner = moat_engine::Scanner::new(&self.engine, self.limits);
        let names = scanner.scan_file_all(file).map_err(|e| match e {
            moat_engine::ScanError::Io(e) => ScanFailure::Io(e),
        })?;
        Ok(names.into_iter().map(Arc::from).collect())
    }

    fn generation(&self) -> u64 {
        self.generation
    }

    fn database(&self) -> DatabaseInfo {
        self.info.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom, Write};
    use std::path::Path;

    fn engine() -> Arc<moat_engine::Engine> {
        // "MOAT-TEST-MARKER" in hex.
        let db = moat_sigs::Database::from_text(
            Path::new("t.ndb"),
            "Moat.Test.Marker:0:*:4d4f41542d544553542d4d41524b4552\n",
        )
        .unwrap();
        Arc::new(moat_engine::Engine::new(db))
    }

    fn file_with(data: &[u8]) -> File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(data).unwrap();
        f.seek(SeekFrom::Start(0)).unwrap();
        f
    }

    #[test]
    fn engine_scanner_reports_clean_infected_and_skipped() {
        let limits = moat_engine::Limits {
            max_file_size: Some(100),
            ..Default::default()
        };
        let s = EngineScanner::new(engine(), limits, 7);
        assert_eq!(s.generation(), 7);
        // One signature in the test database; loaded just now.
        let info = Arc::new(s).database();
        assert_eq!(info.signatures, Some(1));
        assert!(info.loaded.unwrap().elapsed().unwrap() < std::time::Duration::from_secs(60));
        let s = EngineScanner::new(engine(), limits, 7);
        assert_eq!(
            s.scan(&file_with(b"just some clean text")).unwrap(),
            Verdict::Clean
        );
        let v = s.scan(&file_with(b"xx MOAT-TEST-MARKER yy")).unwrap();
        assert_eq!(
            v,
            Verdict::Infected(Arc::from("Moat.Test.Marker.UNOFFICIAL"))
        );
        assert!(v.is_infected());
        // One signature: all-match reports the same one.
        assert_eq!(
            s.scan_all(&file_with(b"xx MOAT-TEST-MARKER yy")).unwrap(),
            [Arc::from("Moat.Test.Marker.UNOFFICIAL")]
        );
        assert!(s.scan_all(&file_with(b"clean text")).unwrap().is_empty());
        // In memory: the same verdicts.
        assert_eq!(
            s.scan_bytes(b"xx MOAT-TEST-MARKER yy").unwrap(),
            Verdict::Infected(Arc::from("Moat.Test.Marker.UNOFFICIAL"))
        );
        assert_eq!(s.scan_bytes(b"clean text").unwrap(), Verdict::Clean);
        assert_eq!(
            s.scan_bytes(&[b'a'; 101]).unwrap(),
            Verdict::Skipped(SkipReason::TooLarge)
        );
        let big = [b'a'; 101];
        assert_eq!(
            s.scan(&file_with(&big)).unwrap(),
            Verdict::Skipped(SkipReason::TooLarge)
        );
    }

    #[test]
    fn engine_scanner_io_error_is_a_failure() {
        // A directory opens fine but cannot be read.
        let dir = tempfile::tempdir().unwrap();
        let f = File::open(dir.path()).unwrap();
        let s = EngineScanner::new(engine(), moat_engine::Limits::default(), 1);
        assert!(matches!(s.scan(&f), Err(ScanFailure::Io(_))));
    }
}
