//! moat's scan engine: ClamAV signatures compiled into an immutable matcher.
//!
//! [`Engine::new`] takes a loaded [`moat_sigs::Database`] and compiles it once:
//! - body signatures into one multi-pattern automaton plus verifiers ([`body`]),
//! - hash signatures into size-keyed sorted tables ([`hashes`]), so files of sizes
//!   no signature has are never hashed,
//! - the allow list (`.fp`/`.sfp`) into another such table,
//! - logical signatures (`.ldb`) into counting matchers and PCRE2 regexes ([`logical`]).
//!
//! The engine is `Send + Sync` and never changes after it is built: scanning threads
//! share it by reference (or `Arc`) with no lock. Per-thread scratch space lives in a
//! [`Scanner`], which also owns file access: small files are read whole into a reused
//! buffer, large ones streamed in chunks ([`Engine::scan_stream`]), so memory stays
//! bounded whatever the file size.
//!
//! Order of decisions for one file, as ClamAV reports them (measured): the first
//! body signature of the file's own target type ([`typed`], the type from
//! [`facts::FileFacts`]) then of target 0 on the raw bytes, else the first whole-file
//! hash signature (MD5, SHA-1, SHA-256), else the first logical signature
//! ([`logical`], load order) on the raw bytes, else a PE section hash
//! (`.mdb`/`.msb`), else the first target-7 then target-0 body signature, then
//! target-7 then target-0 logical signature, on the normalized-text copy
//! ([`textnorm`], for the files [`filetype::gets_normalized`] accepts). HTML files
//! skip the raw pass: target 3, target 0, then target 7 (scripts) are matched on their
//! normalized copy ([`htmlnorm`]). A detection is cancelled when the file's hash is on
//! the allow list.

#![warn(missing_docs)]

mod allmatch;
pub mod body;
pub mod containers;
pub mod facts;
pub mod filetype;
pub mod hashes;
pub mod htmlnorm;
pub mod logical;
pub mod mail;
mod meta;
mod scanner;
pub mod textnorm;
pub mod typed;

pub use scanner::{Limits, ScanError, ScanOutcome, Scanner, Skip};

use std::io::{self, Read};

use body::{BodyMatcher, BodyScan, CompiledSig};
use facts::FileFacts;
use hashes::{FileDigests, HashIndex, StreamDigests};
use logical::{LogicalFacts, LogicalMatcher};
use moat_formats::{ByteSource, ExeInfo, FileType};
use moat_sigs::hex::Element;
use moat_sigs::line::{TARGET_ANY, TARGET_TEXT};
use moat_sigs::Database;
use moat_sigs::{BodySig, OffsetBase};
use textnorm::Normalizer;

/// Content shorter than this is never detected, by any kind of signature (measured on
/// ClamAV 1.4.6: files of 1 to 5 bytes are reported clean whatever the database).
pub const MIN_SCANNED_SIZE: usize = 6;

/// How deep content inside content (a mail's body) is scanned: ClamAV's default
/// recursion limit (`clamscan --debug`: "recursion_level: 0/17").
const MAX_NESTING: u32 = 16;

/// The result of scanning some content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict<'e> {
    /// No signature matched (or the allow list cleared the file).
    Clean,
    /// A signature matched; the detection name as ClamAV reports it.
    Infected(&'e str),
}

impl Verdict<'_> {
    /// Whether the verdict is a detection.
    pub fn is_infected(&self) -> bool {
        matches!(self, Verdict::Infected(_))
    }
}

/// The compiled signatures. Immutable and thread-safe.
pub struct Engine {
    /// Target-0 body signatures, matched against the raw bytes.
    body: BodyMatcher,
    /// Target-7 body signatures, matched against the normalized copy ([`textnorm`])
    /// first: ClamAV tries a file type's own signatures before the generic ones.
    text: BodyMatcher,
    /// Target-0 body signatures that could match normalized text, matched against
    /// the normalized copy after the target-7 ones.
    text_any: BodyMatcher,
    /// Target types 1-12 (but 7) and section hashes ([`typed`]).
    typed: typed::Typed,
    hashes: HashIndex,
    allow: HashIndex,
    /// Logical signatures on the raw bytes, in load order.
    logical: LogicalMatcher,
    /// Logical signatures of targets 7 then 0 on the normalized copy.
    logical_text: LogicalMatcher,
    /// Fixed-offset rules of loaded `.ftm` files, tried before the built-in table.
    magic: moat_formats::filetype::ExtraMagic,
    /// Container metadata signatures (`.cdb`), checked on container members.
    container_meta: Vec<moat_sigs::checked::ContainerMeta>,
    /// clamscan's "Known viruses" for the database this engine was built from.
    known: usize,
}

/// The fixed-offset rules of loaded `.ftm` files as moat-formats takes them.
fn extra_magic(rules: &[moat_sigs::checked::FixedMagic]) -> moat_formats::filetype::ExtraMagic {
    let mut magic = moat_formats::filetype::ExtraMagic::default();
    for rule in rules {
        if let Some(ty) = FileType::from_clamav_name(rule.file_type) {
            magic.push(rule.offset, rule.bytes.clone(), ty);
        }
    }
    magic
}

impl Engine {
    /// Compiles a loaded database.
    pub fn new(db: Database) -> Engine {
        let known = db.signature_count();
        let text_sigs = |target| {
            let sigs = db
                .bodies
                .iter()
                .filter(|s| s.target == target && could_match_text(s));
            sigs.cloned().collect::<Vec<_>>()
        };
        let (text, text_any) = (text_sigs(TARGET_TEXT), text_sigs(TARGET_ANY));
        let logical_text = {
            let of = |t: u8| {
                db.logical
                    .iter()
                    .filter(move |s| s.target.target.unwrap_or(0) == t)
            };
            of(TARGET_TEXT).chain(of(TARGET_ANY)).cloned().collect()
        };
        let (raw_sigs, typed_sigs) = db
            .bodies
            .into_iter()
            .filter(|s| s.target != TARGET_TEXT)
            .partition(|s| s.target == TARGET_ANY);
        Engine {
            known,
            container_meta: db.container_meta,
            magic: extra_magic(&db.fixed_magic),
            typed: typed::Typed::new(typed_sigs, db.section_hashes),
            body: BodyMatcher::new(raw_sigs),
            text: BodyMatcher::new(text),
            text_any: BodyMatcher::new(text_any),
            hashes: HashIndex::new(db.hashes),
            allow: HashIndex::new(db.allow),
            logical: LogicalMatcher::new(db.logical),
            logical_text: LogicalMatcher::for_normalized(logical_text),
        }
    }

    /// The number of signatures loaded, allow-list entries included, as clamscan
    /// counts its "Known viruses".
    pub fn signature_count(&self) -> usize {
        self.known
    }

    /// Scans the complete contents of a file held in memory, with default limits.
    pub fn scan_bytes(&self, data: &[u8]) -> Verdict<'_> {
        self.scan_bytes_with(data, &Limits::default())
    }

    /// Scans the complete contents of a file held in memory.
    pub fn scan_bytes_with(&self, data: &[u8], limits: &Limits) -> Verdict<'_> {
        self.scan_nested(data, limits, 0, None)
    }

    /// [`Engine::scan_bytes_with`] for a member of a container whose ClamAV type is
    /// `container` (what the `.ldb` `Container:` key checks).
    pub(crate) fn scan_member_bytes(
        &self,
        data: &[u8],
        limits: &Limits,
        container: Option<&'static str>,
    ) -> Verdict<'_> {
        self.scan_nested(data, limits, 0, container)
    }

    /// [`Engine::scan_bytes_with`] for content found `depth` levels inside a file
    /// (a mail's body): nesting stops at ClamAV's recursion limit.
    fn scan_nested(
        &self,
        data: &[u8],
        limits: &Limits,
        depth: u32,
        container: Option<&'static str>,
    ) -> Verdict<'_> {
        if data.len() < MIN_SCANNED_SIZE {
            return Verdict::Clean;
        }
        let source: &[u8] = data;
        let facts = FileFacts::with_magic(data, &source, &self.magic);
        if facts.file_type().is_ignored() {
            return Verdict::Clean;
        }
        // A parsed mail's body is scanned first, as a file of its own (measured).
        if let Some(body) = mail::scanned_body(facts.file_type(), data) {
            if depth < MAX_NESTING {
                if let found @ Verdict::Infected(_) =
                    self.scan_nested(body, limits, depth + 1, container)
                {
                    return found;
                }
            }
        }
        // HTML files are matched through their normalized copy only (measured).
        let html = facts.file_type() == FileType::Html;
        let lf = raw_logical_facts(&facts, data.len() as u64, container);
        let len = data.len() as u64;
        let text = !html && self.wants_normalized(data, facts.file_type(), len, limits);
        let text_pass = || {
            let copy = textnorm::normalize(data);
            self.scan_normalized(&copy, len, container)
        };
        // The normalized pass done beside the raw pass, when the limits ask for it.
        let mut early: Option<Option<&str>> = None;
        let (raw, logical_scan) = match html {
            true => (None, None),
            false if text && parallel(limits, len) => rayon::in_place_scope(|s| {
                s.spawn(|_| early = Some(text_pass()));
                self.raw_pass(&facts, &lf, data)
            }),
            false => self.raw_pass(&facts, &lf, data),
        };
        let logical = || logical_scan.and_then(|l| l.finish(Some(data), &lf));
        let sections = || self.typed.section_hash(&facts);
        let normalized = || {
            if html {
                return self.scan_html(data).map(|sig| &*sig.name);
            }
            match early {
                Some(found) => found,
                None => text.then(text_pass).flatten(),
            }
        };
        self.decide(
            raw,
            logical,
            sections,
            normalized,
            &mut FileDigests::of(data),
        )
    }

    /// Scans a file of `file_len` bytes read from `reader`, `chunk` bytes at a time
    /// into `buffer` (reused between calls): memory stays bounded whatever the file
    /// size, and nothing breaks if the file shrinks meanwhile (unlike a mapping,
    /// which raises SIGBUS). At most `file_len` bytes are read. Returns the verdict
    /// and the number of bytes read (fewer than `file_len` only for a file that
    /// shrank, or a type ClamAV ignores, read no further than its head). Executable
    /// layouts cannot be read from a bare
    /// reader: use [`Engine::scan_stream_from`] for `EP`/`Sx` offsets and section hashes.
    pub fn scan_stream(
        &self,
        reader: impl Read,
        file_len: u64,
        chunk: usize,
        buffer: &mut Vec<u8>,
        limits: &Limits,
    ) -> io::Result<(Verdict<'_>, u64)> {
        self.scan_stream_from(reader, None, file_len, chunk, buffer, limits)
    }

    /// Like [`Engine::scan_stream`], with positioned reads of the same file through
    /// `source` for what sits outside the chunk being scanned (executable headers,
    /// PE sections for section hashes). The file type is decided by its first chunk.
    pub fn scan_stream_from(
        &self,
        reader: impl Read,
        source: Option<&dyn ByteSource>,
        file_len: u64,
        chunk: usize,
        buffer: &mut Vec<u8>,
        limits: &Limits,
    ) -> io::Result<(Verdict<'_>, u64)> {
        self.scan_stream_in(reader, source, file_len, chunk, buffer, limits, None)
    }

    /// [`Engine::scan_stream_from`] for a member of a container of ClamAV type
    /// `container`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn scan_stream_in(
        &self,
        reader: impl Read,
        source: Option<&dyn ByteSource>,
        file_len: u64,
        chunk: usize,
        buffer: &mut Vec<u8>,
        limits: &Limits,
        container: Option<&'static str>,
    ) -> io::Result<(Verdict<'_>, u64)> {
        static NO_SOURCE: &[u8] = &[];
        // A file that can be read again: regexes run after the scan, only where their
        // trigger holds ([`logical::LogicalScan::defer_regexes`]).
        let rereadable = source.filter(|s| s.len() >= file_len);
        let source = source.unwrap_or(&NO_SOURCE);
        let mut reader = reader.take(file_len);
        let typed_reach = self.typed.reach();
        let logical_reach = self.logical.reach();
        let reach_back = self
            .body
            .reach_back()
            .max(typed_reach.0)
            .max(logical_reach.0);
        let reach_ahead = self
            .body
            .reach_ahead()
            .max(typed_reach.1)
            .max(logical_reach.1);
        // Started once the first chunk has told the file's type.
        let mut logical = None;
        let chunk = chunk
            .max(4 * (reach_back + reach_ahead))
            .max(filetype::TEXT_SNIFF_LEN);
        let mut wanted = self.hashes.kinds_wanted(file_len);
        let allow = self.allow.kinds_wanted(file_len);
        wanted = (
            wanted.0 || allow.0,
            wanted.1 || allow.1,
            wanted.2 || allow.2,
        );
        let mut digests = StreamDigests::new(wanted);
        // The normalized copy is built while streaming; it is at most MaxScriptNormalize.
        let mut text: Option<(Normalizer, Vec<u8>)> = None;
        // Its verdict, when its pass ran beside the raw pass.
        let mut early: Option<Option<&str>> = None;
        buffer.clear();
        let mut base = 0u64;
        let mut scan = None;
        let mut facts = None;
        let mut typed_scan = None;
        loop {
            let old = buffer.len();
            // The first read takes the whole head the file type is decided from (as a
            // file read whole is typed from all of it), whatever the chunk size.
            let want = if base == 0 && old == 0 {
                let head = usize::try_from(file_len).unwrap_or(usize::MAX);
                chunk.max(head.min(facts::STREAM_HEAD))
            } else {
                chunk
            };
            let eof = read_up_to(&mut reader, buffer, want)? < want;
            digests.update(&buffer[old..]);
            if old == 0 && base == 0 {
                let head = &buffer[..buffer.len().min(facts::STREAM_HEAD)];
                let f = facts.insert(FileFacts::with_magic(head, source, &self.magic));
                // Types ClamAV ignores are not read any further.
                if f.file_type().is_ignored() {
                    return Ok((Verdict::Clean, buffer.len() as u64));
                }
                // HTML and parsed mail need the whole file (their copies are not built
                // chunk by chunk): read it whole, up to a bound, and scan it in memory.
                let whole = f.file_type() == FileType::Html
                    || mail::scanned_body(f.file_type(), buffer).is_some();
                if whole && !eof && file_len <= facts::WHOLE_READ_MAX {
                    while read_up_to(&mut reader, buffer, chunk)? == chunk {}
                }
                if whole && (eof || file_len <= facts::WHOLE_READ_MAX) {
                    let read = buffer.len() as u64;
                    return Ok((self.scan_nested(buffer, limits, 0, container), read));
                }
                typed_scan = self.typed.raw_matcher(f.file_type()).map(|m| {
                    let exe = m.needs_exe().then(|| f.exe().cloned()).flatten();
                    m.start_exe(file_len, exe)
                });
                let lf = raw_logical_facts(f, file_len, container);
                if f.file_type() != FileType::Html && self.logical.any_applies(&lf) {
                    let mut scan = self.logical.start(file_len, lf.target, true, f.exe());
                    if rereadable.is_some() {
                        scan.defer_regexes();
                    }
                    logical = Some((scan, lf));
                }
                if self.wants_normalized(buffer, f.file_type(), file_len, limits) {
                    text = Some((Normalizer::default(), Vec::new()));
                }
            }
            if let Some((normalizer, copy)) = &mut text {
                normalizer.push(&buffer[old..], copy);
            }
            let scan = scan.get_or_insert_with(|| self.body.start(file_len));
            let end = base + buffer.len() as u64;
            let until = if eof {
                end
            } else {
                end.saturating_sub(reach_ahead as u64)
            };
            // One prefilter pass over the chunk for every matcher.
            let mut others: Vec<&mut BodyScan<'_>> = Vec::with_capacity(2);
            others.extend(typed_scan.as_mut());
            others.push(scan);
            let mut feed = || match &mut logical {
                Some((logical, _)) => logical.feed_with(buffer, base, until, &mut others, false),
                None => BodyScan::feed_all(&mut others, buffer, base, until),
            };
            match &text {
                // The copy is complete: its pass runs beside the last chunk's raw pass.
                Some((_, copy)) if eof && parallel(limits, end) => {
                    rayon::in_place_scope(|s| {
                        s.spawn(|_| early = Some(self.scan_normalized(copy, end, container)));
                        feed()
                    });
                }
                _ => feed(),
            }
            if eof {
                break;
            }
            let keep_from = until.saturating_sub(reach_back as u64).max(base);
            buffer.drain(..(keep_from - base) as usize);
            base = keep_from;
        }
        let mut digests = digests.finish();
        let read = digests.size;
        if read < MIN_SCANNED_SIZE as u64 {
            return Ok((Verdict::Clean, read));
        }
        let typed = typed_scan.and_then(|t| {
            let m = t.finish()?;
            let matcher = facts
                .as_ref()
                .and_then(|f| self.typed.raw_matcher(f.file_type()))?;
            Some(matcher.sig(m.sig))
        });
        let raw = typed
            .or_else(|| {
                scan.and_then(BodyScan::finish)
                    .map(|m| self.body.sig(m.sig))
            })
            .map(|sig| &*sig.name);
        let logical = || {
            logical.and_then(|(l, lf): (logical::LogicalScan<'_>, LogicalFacts<'_>)| {
                let content = match rereadable {
                    Some(source) => logical::Content::Reread {
                        source,
                        chunk,
                        overlap: reach_back.max(reach_ahead),
                    },
                    None => logical::Content::Streamed,
                };
                l.finish_with(
                    content,
                    &LogicalFacts {
                        file_size: read,
                        ..lf
                    },
                )
            })
        };
        let sections = || facts.as_ref().and_then(|f| self.typed.section_hash(f));
        let normalized = || match early {
            Some(found) => found,
            None => text.and_then(|(_, copy)| self.scan_normalized(&copy, read, container)),
        };
        Ok((
            self.decide(raw, logical, sections, normalized, &mut digests),
            read,
        ))
    }

    /// The raw pass over a file held whole in memory: the file type's own body
    /// signatures, the target-0 ones and the logical signatures' subsignatures (when
    /// one applies to the file) in one prefilter pass ([`BodyScan::feed_all`]).
    /// Returns the body signature ClamAV reports first (the type's own before target
    /// 0's) and the logical scan, to finish only when nothing before it matched.
    fn raw_pass<'s>(
        &'s self,
        facts: &FileFacts<'_>,
        lf: &LogicalFacts<'_>,
        data: &[u8],
    ) -> (Option<&'s str>, Option<logical::LogicalScan<'s>>) {
        let len = data.len() as u64;
        let typed_matcher = self.typed.raw_matcher(facts.file_type());
        let mut typed = typed_matcher.map(|m| {
            let exe = m.needs_exe().then(|| facts.exe().cloned()).flatten();
            m.start_exe(len, exe)
        });
        let mut body = self.body.start(len);
        let mut logical = self
            .logical
            .any_applies(lf)
            .then(|| self.logical.start(len, lf.target, false, facts.exe()));
        let mut others: Vec<&mut BodyScan<'s>> = Vec::with_capacity(2);
        others.extend(typed.as_mut());
        others.push(&mut body);
        match &mut logical {
            Some(l) => l.feed_with(data, 0, len, &mut others, false),
            None => BodyScan::feed_all(&mut others, data, 0, len),
        }
        drop(others);
        let typed_found = typed_matcher.zip(typed.and_then(BodyScan::finish));
        let raw = typed_found
            .map(|(m, found)| m.sig(found.sig))
            .or_else(|| body.finish().map(|m| self.body.sig(m.sig)))
            .map(|sig| &*sig.name);
        (raw, logical)
    }

    /// The first body signature to match an HTML file's normalized copies
    /// ([`htmlnorm`]): target 3, then target 0 on the page, the same on its text
    /// without tags and on its scripts, then target 7 on the scripts.
    fn scan_html<'s>(&'s self, data: &[u8]) -> Option<&'s CompiledSig> {
        let html = self.typed.html();
        if html.is_empty() && self.text_any.is_empty() && self.text.is_empty() {
            return None;
        }
        let copy = htmlnorm::normalize(data);
        // One prefilter pass per copy for all its matchers (it was one per matcher
        // and copy: seven passes), each matcher's result taken in the order above.
        for (k, d) in [&copy.html[..], &copy.notags[..], &copy.scripts[..]]
            .into_iter()
            .enumerate()
        {
            let len = d.len() as u64;
            let scripts = k == 2;
            let (mut by_html, mut by_any) = (html.start(len), self.text_any.start(len));
            let mut by_text = scripts.then(|| self.text.start(len));
            let mut scans: Vec<&mut BodyScan<'_>> = vec![&mut by_html, &mut by_any];
            scans.extend(by_text.as_mut());
            BodyScan::feed_all(&mut scans, d, 0, len);
            let first =
                |m: &'s BodyMatcher, scan: BodyScan<'s>| scan.finish().map(|f| m.sig(f.sig));
            let found = first(html, by_html)
                .or_else(|| first(&self.text_any, by_any))
                .or_else(|| by_text.and_then(|t| first(&self.text, t)));
            if found.is_some() {
                return found;
            }
        }
        None
    }

    /// Whether a file of `len` bytes and type `ty` starting with `head` gets the
    /// normalized-text pass: clamscan's rule, the size limit, and something to match
    /// at all. Text promoted to PDF or PE by a header inside it gets none (measured).
    fn wants_normalized(&self, head: &[u8], ty: FileType, len: u64, limits: &Limits) -> bool {
        let any_sigs =
            !(self.text.is_empty() && self.text_any.is_empty() && self.logical_text.is_empty());
        let promoted = matches!(ty, FileType::Pdf | FileType::Pe);
        any_sigs
            && !promoted
            && limits.normalizes(len)
            && self.magic.magic(head).is_none()
            && filetype::gets_normalized(head)
    }

    /// The first signature to match the normalized copy: body signatures of target
    /// 7, then of target 0, then logical signatures of target 7, then 0 (measured;
    /// their `FileSize` is the file's, not the copy's, also measured).
    fn scan_normalized<'s>(
        &'s self,
        copy: &[u8],
        file_size: u64,
        container: Option<&'static str>,
    ) -> Option<&'s str> {
        // One prefilter pass for the three (the copy is lowercase: the `::i`
        // subsignatures join it too).
        let facts = LogicalFacts {
            target: TARGET_TEXT,
            container,
            ..LogicalFacts::plain(file_size)
        };
        let len = copy.len() as u64;
        let (mut text, mut text_any) = (self.text.start(len), self.text_any.start(len));
        let mut logical = self
            .logical_text
            .any_applies(&facts)
            .then(|| self.logical_text.start(len, facts.target, false, None));
        let mut others = [&mut text, &mut text_any];
        match &mut logical {
            Some(l) => l.feed_with(copy, 0, len, &mut others, true),
            None => BodyScan::feed_all(&mut others, copy, 0, len),
        }
        let name =
            |m: &'s BodyMatcher, found: Option<body::BodyMatch>| found.map(|f| &*m.sig(f.sig).name);
        name(&self.text, text.finish())
            .or_else(|| name(&self.text_any, text_any.finish()))
            .or_else(|| logical.and_then(|l| l.finish(Some(copy), &facts)))
    }

    /// The verdict, in ClamAV's order (measured): a body signature on the raw bytes
    /// (the file type's own, then target 0), else a whole-file hash signature, else a
    /// logical signature on the raw bytes, else a PE section hash, else a signature on
    /// the normalized copy (each computed only when the ones before found nothing).
    /// A detection is cancelled by the allow list.
    fn decide<'s>(
        &'s self,
        raw: Option<&'s str>,
        logical: impl FnOnce() -> Option<&'s str>,
        sections: impl FnOnce() -> Option<&'s str>,
        normalized: impl FnOnce() -> Option<&'s str>,
        digests: &mut FileDigests<'_>,
    ) -> Verdict<'s> {
        let detection = raw
            .or_else(|| self.hashes.lookup(digests))
            .or_else(logical)
            .or_else(sections)
            .or_else(normalized);
        match detection {
            Some(_) if self.allow.lookup(digests).is_some() => Verdict::Clean,
            Some(name) => Verdict::Infected(name),
            None => Verdict::Clean,
        }
    }
}

/// Whether a target-0 or target-7 signature could match normalized text: every
/// static byte it requires must be one that normalization can produce. Target-0
/// signatures with an `EOF-n` offset never match the normalized copy (measured).
fn could_match_text(sig: &BodySig) -> bool {
    let eof_relative = matches!(sig.offset.base, OffsetBase::FromEnd(_));
    let eligible = sig.target == TARGET_TEXT || (sig.target == TARGET_ANY && !eof_relative);
    eligible
        && sig.pattern.parts.iter().all(|part| {
            part.elements.iter().all(|e| match e {
                Element::Byte(b) => textnorm::in_normalized_alphabet(*b),
                _ => true,
            })
        })
}

/// The facts logical signatures check on the raw bytes of content of `len` bytes
/// found in a container of type `container` (`None`: a file): its target type (text's
/// target 7 belongs to the normalized pass, so raw text is target 0), an executable's
/// entry point and number of sections. The chain of containers above the direct one
/// (`Intermediates:`) is not tracked: such signatures hold only at the top level.
fn raw_logical_facts(
    facts: &FileFacts<'_>,
    len: u64,
    container: Option<&'static str>,
) -> LogicalFacts<'static> {
    let target = match facts.file_type().target() {
        TARGET_TEXT => TARGET_ANY,
        t => t,
    };
    let exe: Option<&ExeInfo> = facts.exe();
    LogicalFacts {
        target,
        entry_point: exe.and_then(|e| e.entry_point),
        sections: exe.map(|e| e.sections.len()),
        container,
        ..LogicalFacts::plain(len)
    }
}

/// Whether content of `len` bytes gets its two passes at once ([`Limits::parallel_from`]).
fn parallel(limits: &Limits, len: u64) -> bool {
    limits.parallel_from.is_some_and(|min| len >= min)
}

/// Appends up to `n` bytes from `reader` to `buffer`; fewer only at end of input.
fn read_up_to(reader: &mut impl Read, buffer: &mut Vec<u8>, n: usize) -> io::Result<usize> {
    let start = buffer.len();
    buffer.resize(start + n, 0);
    let mut filled = 0;
    while filled < n {
        match reader.read(&mut buffer[start + filled..]) {
            Ok(0) => break,
            Ok(k) => filled += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                buffer.truncate(start + filled);
                return Err(e);
            }
        }
    }
    buffer.truncate(start + filled);
    Ok(filled)
}
