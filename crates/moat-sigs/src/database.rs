//! Loading databases from files and directories, as `clamscan -d` does.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use crate::checked;
use crate::cvd::{self, Kind};
use crate::error::{LoadError, ParseError};
use crate::hashtable::HashTable;
use crate::ldb::{self, Ldb, LdbSkip, LogicalSig};
use crate::line::{self, BodySig, Parsed, SkipReason};

/// Every signature loaded from one or more database paths, in load order, with the
/// `.ign2` names already removed and detection names in their reported form
/// (`NAME.UNOFFICIAL` for databases that are not official `.cvd`/`.cld` containers).
#[derive(Debug, Default)]
pub struct Database {
    /// Whole-file hash signatures (`.hdb`, `.hsb`).
    pub hashes: HashTable,
    /// Allow-list entries (`.fp`, `.sfp`): a file with one of these hashes is clean.
    pub allow: HashTable,
    /// PE section hash signatures (`.mdb`, `.msb`): the size and digest are those of
    /// one section's raw bytes.
    pub section_hashes: HashTable,
    /// Body signatures (`.ndb`) the engine supports.
    pub bodies: Vec<BodySig>,
    /// Logical signatures (`.ldb`) the engine evaluates.
    pub logical: Vec<LogicalSig>,
    /// Fixed-offset file type magic (`.ftm` type-0 entries for any file), in load
    /// order: they extend the engine's file type detection.
    pub fixed_magic: Vec<checked::FixedMagic>,
    /// Container metadata signatures (`.cdb`), evaluated on container members.
    pub container_meta: Vec<checked::ContainerMeta>,
    /// What was skipped and why.
    pub report: LoadReport,
}

/// What a load left out, so that nothing is ignored silently.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Database files (or parts of them) whose signatures were not loaded.
    pub skipped: Vec<SkippedFile>,
    /// Signatures skipped because their FLEVEL range excludes this engine.
    pub flevel_skipped: usize,
    /// Signatures skipped for a target type ClamAV does not know (it skips them too).
    pub unknown_target_skipped: usize,
    /// Well-formed signatures of a kind the engine cannot evaluate yet (their files
    /// are listed in `skipped`); ClamAV loads and counts them.
    pub not_evaluated: usize,
    /// Signatures removed by `.ign2` entries.
    pub ignored: usize,
    /// Logical signatures ClamAV skips without counting them: an unknown attribute in
    /// the target description, or an unknown `CL_TYPE_*` in `Container`/`Intermediates`.
    pub logical_skipped: usize,
    /// Files in a database directory that are not databases at all, and container
    /// members of no known format (`COPYING`), as `DIR/X.cvd/COPYING`.
    pub foreign_files: Vec<PathBuf>,
    /// PUA databases not read because PUA detection is off (as clamscan without
    /// `--detect-pua`).
    pub pua_files: Vec<PathBuf>,
    /// Loose `.cbc` files not read because unsigned bytecode is off (as clamscan
    /// without `--bytecode-unsigned`).
    pub unsigned_bytecode: Vec<PathBuf>,
    /// Containers not loaded because a newer one of the same name was (`X.cvd` and
    /// `X.cld` in one directory: the higher header version wins, as in ClamAV).
    pub superseded: Vec<SkippedFile>,
}

/// Signatures of one file that were not loaded, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedFile {
    /// The database file.
    pub path: PathBuf,
    /// How many signatures were skipped.
    pub signatures: usize,
    /// Why.
    pub reason: String,
}

/// How moat treats a database file, decided by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// `.hdb`, `.hsb`: hash signatures.
    Hash,
    /// `.fp`, `.sfp`: allow list.
    Allow,
    /// `.mdb`, `.msb`: PE section hashes.
    SectionHash,
    /// `.ndb`: extended body signatures.
    Body,
    /// `.ldb`: logical signatures.
    Logical,
    /// `.ign2`, `.ign`: names to disable.
    Ignore,
    /// ClamAV's potentially-unwanted databases (`.hdu .hsu .ndu .ldu .mdu .msu`):
    /// read as the format they stand for, only with PUA detection on.
    Pua(PuaOf),
    /// A format moat checks line by line and counts as clamscan does, but does not
    /// evaluate yet.
    Checked(Checked),
    /// Metadata that carries no signatures (`.cfg`, `.info`): never refused.
    Metadata,
    /// `.cvd`, `.cld`, `.cud`: a container of database files.
    Container(Kind),
    /// A ClamAV database format moat does not read yet.
    Unsupported(&'static str),
}

/// The format a PUA database stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PuaOf {
    Hash,
    Body,
    Logical,
    SectionHash,
}

impl PuaOf {
    fn format(self) -> Format {
        match self {
            PuaOf::Hash => Format::Hash,
            PuaOf::Body => Format::Body,
            PuaOf::Logical => Format::Logical,
            PuaOf::SectionHash => Format::SectionHash,
        }
    }
}

/// Formats checked and counted but not evaluated (measured with clamscan 1.4.6,
/// docs/clamav-oracle.md "Every database file"): each refuses the lines clamscan
/// refuses, and counts what clamscan's "Known viruses" counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checked {
    /// `.pdb` (counted per line), `.wdb` (not counted), `.gdb` (counted): phishing
    /// URL lists.
    Phishing { counted: bool },
    /// `.idb`: icon signatures `NAME:GROUP1:GROUP2:ICONHASH`, counted.
    Icon,
    /// `.cdb`: container metadata signatures, counted and evaluated (loaded into
    /// [`Database::container_meta`]).
    ContainerMeta,
    /// `.ftm`: file type magic, not counted.
    FileTypeMagic,
    /// `.crb`: Authenticode certificate rules, not counted.
    CertRules,
    /// `.cbc`: bytecode, loaded only with unsigned bytecode allowed; counted 1 when it
    /// has a logical trigger, 0 for hook bytecodes (PDF, startup).
    Bytecode,
}

impl Checked {
    fn what(self) -> &'static str {
        match self {
            Checked::Phishing { .. } => "phishing URL signatures",
            Checked::Icon => "icon signatures",
            Checked::ContainerMeta => "container metadata signatures",
            Checked::FileTypeMagic => "file type magic entries",
            Checked::CertRules => "Authenticode certificate rules",
            Checked::Bytecode => "bytecode signatures",
        }
    }
}

/// Whether `name` (a file or container member name) has a database extension moat knows.
pub(crate) fn is_database_name(name: &str) -> bool {
    format_of(Path::new(name)).is_some()
}

fn format_of(path: &Path) -> Option<Format> {
    let ext = path.extension()?.to_str()?;
    Some(match ext {
        "hdb" | "hsb" => Format::Hash,
        "fp" | "sfp" => Format::Allow,
        "ndb" => Format::Body,
        "ign2" | "ign" => Format::Ignore,
        "hdu" | "hsu" => Format::Pua(PuaOf::Hash),
        "ndu" => Format::Pua(PuaOf::Body),
        "ldu" => Format::Pua(PuaOf::Logical),
        "mdu" | "msu" => Format::Pua(PuaOf::SectionHash),
        "info" | "cfg" => Format::Metadata,
        "mdb" | "msb" => Format::SectionHash,
        "ldb" => Format::Logical,
        "cvd" | "cld" | "cud" => Format::Container(Kind::from_extension(ext)?),
        "pdb" | "gdb" => Format::Checked(Checked::Phishing { counted: true }),
        "wdb" => Format::Checked(Checked::Phishing { counted: false }),
        "idb" => Format::Checked(Checked::Icon),
        "cdb" => Format::Checked(Checked::ContainerMeta),
        "ftm" => Format::Checked(Checked::FileTypeMagic),
        "crb" => Format::Checked(Checked::CertRules),
        "cbc" => Format::Checked(Checked::Bytecode),
        "db" | "sdb" | "zmd" | "rmd" => Format::Unsupported("legacy signatures"),
        "cat" => Format::Unsupported("Authenticode catalogs"),
        "ioc" => Format::Unsupported("OpenIOC indicators"),
        "yar" | "yara" => Format::Unsupported("YARA rules"),
        "pwdb" => Format::Unsupported("archive password lists"),
        "imp" => Format::Unsupported("PE import table hashes"),
        _ => return None,
    })
}

/// What a load reads, as clamscan's options decide it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// `--detect-pua`: the PUA databases (`.hdu .hsu .ndu .ldu .mdu .msu`) are read;
    /// without it they are neither parsed nor counted (measured).
    pub detect_pua: bool,
    /// `--bytecode-unsigned`: `.cbc` files outside a signed container are read;
    /// without it clamscan skips them with a warning and counts none (measured).
    pub bytecode_unsigned: bool,
}

impl Database {
    /// Loads every database below `paths` (files, or directories read one level deep
    /// in name order). A malformed line fails the whole load.
    pub fn load<P: AsRef<Path>>(paths: &[P]) -> Result<Database, LoadError> {
        Database::load_with(paths, LoadOptions::default())
    }

    /// [`Database::load`] with clamscan's loading options.
    pub fn load_with<P: AsRef<Path>>(
        paths: &[P],
        options: LoadOptions,
    ) -> Result<Database, LoadError> {
        let mut loader = Loader {
            options,
            ..Loader::default()
        };
        for path in paths {
            loader.load_path(path.as_ref())?;
        }
        Ok(loader.finish())
    }

    /// Parses database `text` as if it were the content of a file at `path` (the
    /// extension picks the format). Used for the built-in set and by tests.
    pub fn from_text(path: &Path, text: &str) -> Result<Database, LoadError> {
        let mut loader = Loader::default();
        loader.load_text(path, text)?;
        Ok(loader.finish())
    }

    /// Like [`Database::from_text`], for signatures moat itself vouches for: their
    /// names are reported as written, without `.UNOFFICIAL`.
    pub(crate) fn from_official_text(path: &Path, text: &str) -> Result<Database, LoadError> {
        let mut loader = Loader {
            official: true,
            ..Loader::default()
        };
        loader.load_text(path, text)?;
        Ok(loader.finish())
    }

    /// The number of signatures loaded, as clamscan counts its "Known viruses":
    /// detections, allow-list entries, and well-formed signatures the engine cannot
    /// evaluate yet (ClamAV counts those too).
    pub fn signature_count(&self) -> usize {
        self.hashes.len()
            + self.section_hashes.len()
            + self.bodies.len()
            + self.logical.len()
            + self.container_meta.len()
            + self.allow.len()
            + self.report.not_evaluated
    }
}

#[derive(Default)]
struct Loader {
    db: Database,
    ignore: HashSet<Box<str>>,
    /// Names are reported as written (signed databases, the built-in set).
    official: bool,
    options: LoadOptions,
}

impl Loader {
    fn load_path(&mut self, path: &Path) -> Result<(), LoadError> {
        let meta = std::fs::metadata(path).map_err(|source| LoadError::Io {
            path: path.to_owned(),
            source,
        })?;
        if !meta.is_dir() {
            if format_of(path).is_none() {
                return Err(LoadError::Malformed {
                    path: path.to_owned(),
                    line: 0,
                    reason: ParseError::new(
                        "not a database file (unknown extension; expected .hdb, .hsb, .fp, .sfp, .ndb, .ign2...)",
                    ),
                });
            }
            return self.load_file(path);
        }
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .and_then(|rd| rd.map(|e| e.map(|e| e.path())).collect())
            .map_err(|source| LoadError::Io {
                path: path.to_owned(),
                source,
            })?;
        entries.sort();
        // A directory's .ign2 files apply to all of its databases (ClamAV's order),
        // so they are read first.
        entries.sort_by_key(|e| format_of(e) != Some(Format::Ignore));
        self.drop_superseded(&mut entries);
        let mut found = false;
        for entry in entries {
            if format_of(&entry).is_some() && entry.is_file() {
                found = true;
                self.load_file(&entry)?;
            } else {
                self.db.report.foreign_files.push(entry);
            }
        }
        if !found {
            return Err(LoadError::Empty {
                path: path.to_owned(),
            });
        }
        Ok(())
    }

    fn load_file(&mut self, path: &Path) -> Result<(), LoadError> {
        let io = |source| LoadError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(Format::Container(kind)) = format_of(path) {
            let mut file = std::fs::File::open(path).map_err(io)?;
            return self.load_container(path, &mut file, kind);
        }
        let bytes = std::fs::read(path).map_err(io)?;
        match std::str::from_utf8(&bytes) {
            Ok(text) => self.load_text(path, text),
            Err(_) => self.load_text(path, &String::from_utf8_lossy(&bytes)),
        }
    }

    /// Checks a container and loads its members as files `PATH/MEMBER` (the member's
    /// extension picks the format), in archive order.
    fn load_container(
        &mut self,
        path: &Path,
        file: &mut std::fs::File,
        kind: Kind,
    ) -> Result<(), LoadError> {
        let official = self.official;
        self.official |= kind.official();
        let result = cvd::unpack(file, kind, |member| {
            let member_path = path.join(&member.name);
            let known = format_of(&member_path).is_some_and(|f| !matches!(f, Format::Container(_)));
            if !known {
                self.db.report.foreign_files.push(member_path);
                return Ok(());
            }
            self.load_text(&member_path, &String::from_utf8_lossy(&member.data))
        });
        self.official = official;
        match result {
            Ok(_header) => Ok(()),
            Err(cvd::Failure::Visit(e)) => Err(e),
            Err(cvd::Failure::Container(reason)) => Err(LoadError::Container {
                path: path.to_owned(),
                reason,
            }),
        }
    }

    fn load_text(&mut self, path: &Path, text: &str) -> Result<(), LoadError> {
        let Some(mut format) = format_of(path) else {
            return Ok(());
        };
        if let Format::Pua(of) = format {
            if !self.options.detect_pua {
                self.db.report.pua_files.push(path.to_owned());
                return Ok(());
            }
            format = of.format();
        }
        let signatures = matches!(
            format,
            Format::Hash
                | Format::Allow
                | Format::SectionHash
                | Format::Body
                | Format::Logical
                | Format::Ignore
        );
        if text.is_empty() && signatures {
            return Err(LoadError::Malformed {
                path: path.to_owned(),
                line: 0,
                reason: ParseError::new("empty database file"),
            });
        }
        // A final newline ends the last line; it does not start an empty one.
        let body = text.strip_suffix('\n').unwrap_or(text);
        let suffix = if self.official { "" } else { UNOFFICIAL };
        // Signatures that are not loaded, counted per reason (one report line each).
        let mut unsupported: BTreeMap<String, usize> = BTreeMap::new();
        match format {
            Format::Hash | Format::Allow | Format::SectionHash => {
                let parse = if format == Format::SectionHash {
                    line::parse_section_hash_ref
                } else {
                    line::parse_hash_ref
                };
                let chunks = parse_lines(path, body, HashChunk::default, |chunk, line| {
                    match parse(line)? {
                        Parsed::Sig(sig) => chunk
                            .table
                            .push_parts(sig.digest, sig.size, sig.name, suffix),
                        Parsed::Skipped(_) => chunk.flevel_skipped += 1,
                    }
                    Ok(())
                })?;
                let target = match format {
                    Format::Hash => &mut self.db.hashes,
                    Format::SectionHash => &mut self.db.section_hashes,
                    _ => &mut self.db.allow,
                };
                for mut chunk in chunks {
                    if !self.ignore.is_empty() {
                        let before = chunk.table.len();
                        chunk
                            .table
                            .retain_names(|name| !is_ignored(&self.ignore, name, suffix));
                        self.db.report.ignored += before - chunk.table.len();
                    }
                    target.append(chunk.table);
                    self.db.report.flevel_skipped += chunk.flevel_skipped;
                }
            }
            Format::Body => {
                let chunks = parse_lines(path, body, Vec::new, |sigs, line| {
                    sigs.push(line::parse_ndb(line, suffix)?);
                    Ok(())
                })?;
                for parsed in chunks.into_iter().flatten() {
                    match parsed {
                        Parsed::Sig(sig) if is_ignored(&self.ignore, &sig.name, suffix) => {
                            self.db.report.ignored += 1
                        }
                        Parsed::Sig(sig) => match body_support(&sig) {
                            Ok(()) => self.db.bodies.push(sig),
                            Err(reason) => {
                                self.db.report.not_evaluated += 1;
                                *unsupported.entry(reason).or_default() += 1
                            }
                        },
                        Parsed::Skipped(SkipReason::MacroGroup) => {
                            self.db.report.not_evaluated += 1;
                            *unsupported
                                .entry(
                                    "macro group members ($N offsets) are not supported yet".into(),
                                )
                                .or_default() += 1
                        }
                        Parsed::Skipped(why) => self.count_skip(why),
                    }
                }
            }
            Format::Logical => {
                let chunks = parse_lines(path, body, Vec::new, |sigs, line| {
                    sigs.push(ldb::parse_ldb(line, suffix)?);
                    Ok(())
                })?;
                for parsed in chunks.into_iter().flatten() {
                    match parsed {
                        Ldb::Sig(sig) if is_ignored(&self.ignore, &sig.name, suffix) => {
                            self.db.report.ignored += 1
                        }
                        Ldb::Sig(sig) => self.db.logical.push(sig),
                        Ldb::NotEvaluated(reason) => {
                            self.db.report.not_evaluated += 1;
                            *unsupported
                                .entry(format!("logical signatures with {reason}"))
                                .or_default() += 1
                        }
                        Ldb::Skipped(LdbSkip::Flevel) => self.db.report.flevel_skipped += 1,
                        Ldb::Skipped(LdbSkip::UnknownTarget) => {
                            self.db.report.unknown_target_skipped += 1
                        }
                        Ldb::Skipped(LdbSkip::UnknownAttribute | LdbSkip::UnknownContainerType) => {
                            self.db.report.logical_skipped += 1
                        }
                    }
                }
            }
            Format::Ignore => {
                let names = parse_lines(path, body, Vec::new, |names, line| {
                    names.push(line::parse_ign2(line)?);
                    Ok(())
                })?;
                self.ignore.extend(names.into_iter().flatten());
            }
            Format::Checked(Checked::Bytecode)
                if !self.official && !self.options.bytecode_unsigned =>
            {
                self.db.report.unsigned_bytecode.push(path.to_owned());
            }
            Format::Checked(Checked::ContainerMeta) => {
                let chunks = parse_lines(path, body, Vec::new, |sigs, line| {
                    sigs.push(checked::container_meta(line, suffix)?);
                    Ok(())
                })?;
                for parsed in chunks.into_iter().flatten() {
                    match parsed {
                        Some(sig) if is_ignored(&self.ignore, &sig.name, suffix) => {
                            self.db.report.ignored += 1
                        }
                        Some(sig) => self.db.container_meta.push(sig),
                        None => self.db.report.flevel_skipped += 1,
                    }
                }
            }
            Format::Checked(Checked::FileTypeMagic) => {
                let (lines, _) = check_lines(path, body, Checked::FileTypeMagic)?;
                let fixed: Vec<_> = self::lines(body)
                    .filter_map(|(_, l)| checked::fixed_magic(l))
                    .collect();
                let unused = lines - fixed.len();
                self.db.fixed_magic.extend(fixed);
                if unused > 0 {
                    self.db.report.skipped.push(SkippedFile {
                        path: path.to_owned(),
                        signatures: unused,
                        reason: "file type magic entries other than fixed-offset ones for any type are not used yet".into(),
                    });
                }
            }
            Format::Checked(kind) => {
                let (lines, counted) = check_lines(path, body, kind)?;
                self.db.report.not_evaluated += counted;
                if lines > 0 {
                    let reason = format!("{} are not evaluated yet", kind.what());
                    self.db.report.skipped.push(SkippedFile {
                        path: path.to_owned(),
                        signatures: lines,
                        reason,
                    });
                }
            }
            Format::Unsupported(what) => {
                let count = lines(body).filter(|(_, l)| !l.is_empty()).count();
                unsupported.insert(format!("{what} are not supported yet"), count);
            }
            Format::Metadata => {}
            Format::Pua(_) => unreachable!("resolved above"),
            Format::Container(_) => {
                return Err(LoadError::Malformed {
                    path: path.to_owned(),
                    line: 0,
                    reason: ParseError::new("a CVD container is binary; load it as a file"),
                })
            }
        }
        self.report_unsupported(path, unsupported);
        Ok(())
    }

    /// Of `X.cvd` and `X.cld` in one directory, keeps the one whose header has the
    /// higher version (the `.cvd` on a tie, its MD5 can be checked) and reports the other.
    fn drop_superseded(&mut self, entries: &mut Vec<PathBuf>) {
        let mut dropped = Vec::new();
        for cld in entries.iter() {
            if cld.extension() != Some(std::ffi::OsStr::new("cld")) {
                continue;
            }
            let cvd = cld.with_extension("cvd");
            if !entries.contains(&cvd) {
                continue;
            }
            let version = |p: &Path| match cvd::read_header(p) {
                Ok(Ok(h)) => Some((h.version, h.signatures)),
                _ => None,
            };
            // An unreadable header is not decided here: the load reports it.
            let (Some(cvd_v), Some(cld_v)) = (version(&cvd), version(cld)) else {
                continue;
            };
            let (loser, loser_v, winner, winner_v) = if cld_v.0 > cvd_v.0 {
                (cvd.clone(), cvd_v, cld.clone(), cld_v)
            } else {
                (cld.clone(), cld_v, cvd.clone(), cvd_v)
            };
            self.db.report.superseded.push(SkippedFile {
                reason: format!(
                    "version {} is older than {} (version {})",
                    loser_v.0,
                    winner.display(),
                    winner_v.0
                ),
                path: loser.clone(),
                signatures: loser_v.1 as usize,
            });
            dropped.push(loser);
        }
        entries.retain(|e| !dropped.contains(e));
    }

    fn count_skip(&mut self, why: SkipReason) {
        match why {
            SkipReason::Flevel => self.db.report.flevel_skipped += 1,
            SkipReason::UnknownTarget => self.db.report.unknown_target_skipped += 1,
            // Counted by the caller, which knows the file's report.
            SkipReason::MacroGroup => {}
        }
    }

    /// Groups the skipped signatures of one file by reason, one report entry each.
    fn report_unsupported(&mut self, path: &Path, reasons: BTreeMap<String, usize>) {
        for (reason, signatures) in reasons {
            self.db.report.skipped.push(SkippedFile {
                path: path.to_owned(),
                signatures,
                reason,
            });
        }
    }

    fn finish(mut self) -> Database {
        self.db.hashes.shrink_to_fit();
        self.db.section_hashes.shrink_to_fit();
        self.db.allow.shrink_to_fit();
        self.db.bodies.shrink_to_fit();
        self.db.logical.shrink_to_fit();
        self.db
    }
}

/// Whether `.ign2` entries loaded so far disable `name` (they are written without the
/// `.UNOFFICIAL` suffix; as in ClamAV they affect only databases loaded after them).
fn is_ignored(ignore: &HashSet<Box<str>>, name: &str, suffix: &str) -> bool {
    !ignore.is_empty() && ignore.contains(name.strip_suffix(suffix).unwrap_or(name))
}

/// Names from databases that are not signed `.cvd` files carry ClamAV's suffix.
const UNOFFICIAL: &str = ".UNOFFICIAL";

/// Files above this size are parsed on several threads.
const PARALLEL_PARSE_MIN: usize = 1 << 20;

/// The lines of a database body with their 1-based numbers, comments left out.
fn lines(body: &str) -> impl Iterator<Item = (usize, &str)> {
    body.split('\n')
        .enumerate()
        .map(|(i, raw)| (i + 1, raw.strip_suffix('\r').unwrap_or(raw)))
        .filter(|(_, line)| !line.starts_with('#'))
}

/// Hash signatures parsed from one piece of a file.
#[derive(Default)]
struct HashChunk {
    table: HashTable,
    flevel_skipped: usize,
}

/// Folds every line of `body` into an accumulator made by `init`, with `step`. Large
/// bodies are cut at line boundaries and parsed on all cores (the official databases
/// have millions of lines), one accumulator per piece, returned in file order; the
/// first error in file order wins. ClamAV refuses blank lines; so does moat.
fn parse_lines<A: Send>(
    path: &Path,
    body: &str,
    init: impl Fn() -> A + Sync,
    step: impl Fn(&mut A, &str) -> Result<(), ParseError> + Sync,
) -> Result<Vec<A>, LoadError> {
    let parse_chunk = |chunk: &str, first_line: usize| -> Result<A, LoadError> {
        let mut acc = init();
        for (n, line) in lines(chunk) {
            let parsed = if line.is_empty() {
                Err(ParseError::new("empty line"))
            } else {
                step(&mut acc, line)
            };
            parsed.map_err(|reason| LoadError::Malformed {
                path: path.to_owned(),
                line: first_line + n - 1,
                reason,
            })?;
        }
        Ok(acc)
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if body.len() < PARALLEL_PARSE_MIN || threads == 1 {
        return Ok(vec![parse_chunk(body, 1)?]);
    }
    let chunks = split_at_lines(body, threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .iter()
            .map(|&(chunk, first_line)| scope.spawn(move || parse_chunk(chunk, first_line)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("parser thread panicked"))
            .collect()
    })
}

/// Cuts `body` into about `n` pieces at line boundaries, each with the number of its
/// first line.
fn split_at_lines(body: &str, n: usize) -> Vec<(&str, usize)> {
    let mut pieces = Vec::with_capacity(n);
    let (mut rest, mut line) = (body, 1);
    let target = body.len() / n + 1;
    while !rest.is_empty() {
        let cut = match rest.get(target..).and_then(|tail| tail.find('\n')) {
            Some(i) => target + i,
            None => rest.len(),
        };
        let (piece, tail) = rest.split_at(cut);
        pieces.push((piece, line));
        line += memchr::memchr_iter(b'\n', piece.as_bytes()).count() + 1;
        rest = tail.strip_prefix('\n').unwrap_or(tail);
    }
    pieces
}

/// Checks every line of a format moat counts but does not evaluate: (lines that
/// load, signatures clamscan counts for them).
fn check_lines(path: &Path, body: &str, kind: Checked) -> Result<(usize, usize), LoadError> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if kind == Checked::Bytecode {
        let counted = checked::bytecode(body).map_err(|reason| LoadError::Malformed {
            path: path.to_owned(),
            line: 1,
            reason,
        })?;
        return Ok((1, usize::from(counted)));
    }
    let chunks = parse_lines(
        path,
        body,
        || 0usize,
        |loaded, line| {
            let loads = match kind {
                Checked::Phishing { .. } => checked::phishing(line, ext)?,
                Checked::Icon => checked::icon(line)?,
                Checked::ContainerMeta => unreachable!("loaded as signatures"),
                Checked::FileTypeMagic => checked::filetype_magic(line)?,
                Checked::CertRules => checked::cert_rule(line)?,
                Checked::Bytecode => unreachable!("checked as a whole above"),
            };
            *loaded += usize::from(loads);
            Ok(())
        },
    )?;
    let loaded: usize = chunks.into_iter().sum();
    let counted = match kind {
        Checked::Phishing { counted } if counted => loaded,
        Checked::Icon => loaded,
        _ => 0,
    };
    Ok((loaded, counted))
}

/// Whether the engine can evaluate this body signature yet; the reason if not.
/// Every target type with a file type of its own is (0-7, 9-12); 8 (unused since
/// ClamAV 0.9x) and 13-14 are loaded and counted but never evaluated.
fn body_support(sig: &BodySig) -> Result<(), String> {
    if matches!(sig.target, 8 | 13 | 14) {
        return Err(format!(
            "body signatures for target type {} are not supported yet",
            sig.target
        ));
    }
    Ok(())
}
