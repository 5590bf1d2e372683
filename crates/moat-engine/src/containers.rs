//! Scanning inside containers (archives, compressed files, mail), recursively,
//! within ClamAV's limits.
//!
//! After a file is found clean, [`moat_unpack::Container::sniff`] decides whether it
//! is a container; if so each member is scanned like a file ([`Layer`] says how deep
//! and inside what), members of members too, stopping at the first detection. The
//! limits are counted as clamscan 1.4.6 counts them (measured, docs/clamav-oracle.md):
//!
//! - MaxRecursion: a member at depth `d` (the top-level file is depth 0) is scanned
//!   only when `d < MaxRecursion`;
//! - MaxFiles: the top-level file counts as one; a member is scanned only while fewer
//!   than MaxFiles files were scanned for this top-level file;
//! - MaxScanSize: the top-level file's bytes count, then every member's; a member
//!   that would take the total past MaxScanSize is not scanned, nor is anything after
//!   it (the scan of the file ends there; MaxFiles too);
//! - MaxFileSize: a member larger than MaxFileSize is not scanned, except a zip
//!   member, whose first MaxFileSize bytes are (ClamAV truncates zip members).
//!
//! A limit hit leaves the file clean, unless [`Limits::alert_exceeds_max`] is set:
//! then the file is reported as `Heuristics.Limits.Exceeded.<Limit>`, as with
//! clamscan's `--alert-exceeds-max`.

use std::fs::File;
use std::os::unix::fs::FileExt;

use moat_unpack::{unpack, Container, Contents, Entry, Flow, Input, Member, Options, Visitor};

use crate::{filetype, Engine, Limits, Verdict};

/// Where a scanned piece of content sits: what a signature may ask about its
/// container (the `.ldb` `Container:` key names [`Layer::parent`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layer {
    /// 0 for the file itself, 1 for its members, 2 for theirs…
    pub depth: u32,
    /// ClamAV's `CL_TYPE_*` name of the direct container (`None` at depth 0).
    pub parent: Option<&'static str>,
}

impl Layer {
    /// The file itself.
    pub const TOP: Layer = Layer {
        depth: 0,
        parent: None,
    };
}

/// Which kinds of container are opened: clamscan's `--scan-archive`, `--scan-mail`,
/// `--scan-ole2`, `--scan-pdf`, `--scan-html` (clamd.conf's ScanArchive, ScanMail,
/// ScanOLE2, ScanPDF, ScanHTML).
/// All on by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanKinds {
    /// Archives and compressed files; also RTF, BinHex and SZDD (as clamscan).
    pub archive: bool,
    /// Mail and TNEF; also HTML's `data:` URIs (measured: `--scan-mail=no` drops them).
    pub mail: bool,
    /// OLE2 documents.
    pub ole2: bool,
    /// PDF.
    pub pdf: bool,
    /// HTML.
    pub html: bool,
}

impl Default for ScanKinds {
    fn default() -> Self {
        ScanKinds {
            archive: true,
            mail: true,
            ole2: true,
            pdf: true,
            html: true,
        }
    }
}

impl ScanKinds {
    /// Whether containers of `kind` are opened (measured with clamscan 1.4.6 on
    /// clamav-testfiles, docs/clamav-oracle.md §14).
    pub fn allows(&self, kind: Container) -> bool {
        match kind {
            Container::Mail | Container::Tnef => self.mail,
            Container::Ole2 | Container::Ole10Native => self.ole2,
            Container::Pdf => self.pdf,
            Container::Html | Container::HtmlData => self.html && self.mail,
            _ => self.archive,
        }
    }
}

/// A limit that stopped the scan of some member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    /// Too deep (`MaxRecursion`).
    MaxRecursion,
    /// Too many members (`MaxFiles`).
    MaxFiles,
    /// A member larger than `MaxFileSize`.
    MaxFileSize,
    /// Too many bytes in all (`MaxScanSize`).
    MaxScanSize,
}

impl Exceeded {
    /// The detection clamscan reports with `--alert-exceeds-max`.
    pub fn heuristic_name(self) -> &'static str {
        match self {
            Exceeded::MaxRecursion => "Heuristics.Limits.Exceeded.MaxRecursion",
            Exceeded::MaxFiles => "Heuristics.Limits.Exceeded.MaxFiles",
            Exceeded::MaxFileSize => "Heuristics.Limits.Exceeded.MaxFileSize",
            Exceeded::MaxScanSize => "Heuristics.Limits.Exceeded.MaxScanSize",
        }
    }
}

/// What the scan of one top-level file used up: files and bytes, and the first
/// limit it ran into.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Budget {
    pub files: u64,
    pub bytes: u64,
    /// Bytes of the members that were scanned and found clean, their own members
    /// included: what clamscan's "Data scanned" counts when the file is infected.
    pub clean_bytes: u64,
    pub exceeded: Option<Exceeded>,
    /// MaxFiles or MaxScanSize was reached: nothing more is scanned for this file.
    pub spent: bool,
}

impl Budget {
    /// The budget after the top-level file of `len` bytes.
    pub fn top(len: u64) -> Budget {
        Budget {
            files: 1,
            bytes: len,
            clean_bytes: 0,
            exceeded: None,
            spent: false,
        }
    }

    fn hit(&mut self, limit: Exceeded) {
        self.exceeded.get_or_insert(limit);
        if matches!(limit, Exceeded::MaxFiles | Exceeded::MaxScanSize) {
            self.spent = true;
        }
    }
}

/// The first bytes of a file, for sniffing.
pub(crate) fn head_of(file: &File) -> Vec<u8> {
    let mut head = vec![0u8; filetype::TEXT_SNIFF_LEN.max(1024)];
    let n = file.read_at(&mut head, 0).unwrap_or(0);
    head.truncate(n);
    head
}

/// When `kind` is given or `head` starts a container and recursion is allowed, scans its members
/// (from `input`) and returns the first detection among them.
pub(crate) fn scan_members<'e>(
    engine: &'e Engine,
    limits: &Limits,
    head: &[u8],
    input: Input<'_>,
    depth: u32,
    budget: &mut Budget,
    kind: Option<Container>,
) -> Option<&'e str> {
    let kind = kind.or_else(|| Container::sniff(head))?;
    // A message is opened only when ClamAV's mail parser takes it apart (measured,
    // docs/clamav-oracle.md section 13: a From: or Received: header).
    if kind == Container::Mail
        && !crate::mail::is_parsed(moat_formats::filetype::detect(head), head)
    {
        return None;
    }
    if !limits.scan.allows(kind) {
        return None;
    }
    if limits.max_recursion.is_some_and(|max| depth + 1 >= max) {
        budget.hit(Exceeded::MaxRecursion);
        return None;
    }
    let container_size = match input {
        Input::Bytes(bytes) => bytes.len() as u64,
        Input::File(file) => file.metadata().map_or(0, |m| m.len()),
    };
    let mut walker = Walker {
        engine,
        limits,
        budget,
        layer: Layer {
            depth: depth + 1,
            parent: Some(kind.clamav_type_of(head)),
        },
        kind,
        container_size,
        seen: 0,
        cut_by_file_size: false,
        found: None,
        buffer: Vec::new(),
    };
    // A container that cannot be read is not an error for the file (clamscan reports
    // such files OK): its bytes were scanned as they are.
    let _ = unpack(kind, input, &Options::default(), &mut walker);
    walker.found
}

struct Walker<'w, 'e> {
    engine: &'e Engine,
    limits: &'w Limits,
    budget: &'w mut Budget,
    layer: Layer,
    kind: Container,
    /// The container's own size, for `.cdb` signatures.
    container_size: u64,
    /// Members handed out so far, for `.cdb` signatures' positions.
    seen: u64,
    /// The last [`Visitor::max_size`] answer came from MaxFileSize.
    cut_by_file_size: bool,
    found: Option<&'e str>,
    buffer: Vec<u8>,
}

impl Visitor for Walker<'_, '_> {
    fn max_size(&mut self) -> u64 {
        if self.found.is_some() || self.budget.spent {
            return 0;
        }
        if self
            .limits
            .max_files
            .is_some_and(|max| self.budget.files >= max)
        {
            self.budget.hit(Exceeded::MaxFiles);
            return 0;
        }
        let left = self
            .limits
            .max_scan_size
            .map_or(u64::MAX, |max| max.saturating_sub(self.budget.bytes));
        if left == 0 {
            self.budget.hit(Exceeded::MaxScanSize);
            return 0;
        }
        let per_file = self.limits.max_file_size.unwrap_or(u64::MAX);
        self.cut_by_file_size = per_file <= left;
        per_file.min(left)
    }

    fn entry(&mut self, name: &str, entry: &Entry) -> Flow {
        let Some(container) = self.layer.parent else {
            return Flow::Continue;
        };
        if self.engine.container_meta.is_empty() || self.found.is_some() {
            return Flow::Continue;
        }
        let listing = crate::meta::Listing::of_entry(container, self.container_size, name, entry);
        match crate::meta::first_match(&self.engine.container_meta, &listing) {
            Some(found) => {
                self.found = Some(found);
                Flow::Stop
            }
            None => Flow::Continue,
        }
    }

    fn member(&mut self, member: Member) -> Flow {
        let seen = self.seen;
        self.seen += 1;
        // Zip members were checked as their directory entries went by (entry).
        let listed = member
            .entry
            .is_none()
            .then(|| self.listed_detection(&member, seen));
        if let Some(name) = listed.flatten() {
            self.found = Some(name);
            return Flow::Stop;
        }
        if member.truncated {
            if self.cut_by_file_size {
                self.budget.hit(Exceeded::MaxFileSize);
                if self.kind != Container::Zip {
                    return Flow::Continue;
                }
            } else {
                // It would take the total past MaxScanSize: not scanned at all, and
                // the scan of this file ends (measured: later members that would
                // fit are not scanned either).
                self.budget.hit(Exceeded::MaxScanSize);
                return Flow::Stop;
            }
        }
        self.budget.files += 1;
        self.budget.bytes += member.contents.len();
        let verdict = scan_member(
            self.engine,
            &member.contents,
            self.layer,
            self.limits,
            &mut self.buffer,
        );
        let head = match &member.contents {
            Contents::Spooled(file, _) => Some(head_of(file)),
            Contents::Memory(_) => None,
        };
        if let Verdict::Infected(name) = verdict {
            self.found = Some(name);
            return Flow::Stop;
        }
        let head = match (&member.contents, &head) {
            (Contents::Memory(data), _) => &data[..data.len().min(4096)],
            (_, Some(head)) => head.as_slice(),
            _ => &[][..],
        };
        let before = self.budget.clean_bytes;
        self.found = scan_members(
            self.engine,
            self.limits,
            head,
            member.contents.as_input(),
            self.layer.depth,
            self.budget,
            member.kind,
        );
        if self.found.is_none() {
            // Its members were counted as they came out clean: count it, not them twice.
            self.budget.clean_bytes = before + member.contents.len();
        }
        if self.found.is_some() || self.budget.spent {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }
}

impl<'e> Walker<'_, 'e> {
    /// The first `.cdb` signature the member's listing matches (checked before its
    /// bytes, as ClamAV checks the listing before extracting).
    fn listed_detection(&self, member: &Member, seen: u64) -> Option<&'e str> {
        let sigs = &self.engine.container_meta;
        if sigs.is_empty() {
            return None;
        }
        let container = self.layer.parent?;
        let listing =
            crate::meta::Listing::of(self.kind, container, self.container_size, member, seen)?;
        crate::meta::first_match(sigs, &listing)
    }
}

/// Scans one member as a file: in memory, or streamed from its spool file (with
/// positioned reads of it for executable headers); `layer` says which container it
/// came from, for the `.ldb` `Container:` key.
fn scan_member<'e>(
    engine: &'e Engine,
    contents: &Contents,
    layer: Layer,
    limits: &Limits,
    buffer: &mut Vec<u8>,
) -> Verdict<'e> {
    match contents {
        Contents::Memory(data) => engine.scan_member_bytes(data, limits, layer.parent),
        Contents::Spooled(file, len) => engine
            .scan_stream_in(
                file,
                Some(file),
                *len,
                crate::scanner::CHUNK,
                buffer,
                limits,
                layer.parent,
            )
            .map_or(Verdict::Clean, |(verdict, _)| verdict),
    }
}
