//! Logical signatures (`.ldb`): subsignature counts, then the expression.
//!
//! Every hex subsignature becomes one or more body signatures ("variants": plain,
//! wide, both with `::wa`; `::f` adds non-alphanumeric look-arounds) in a
//! [`BodyMatcher`] in counting mode, so one prefilter pass over the file counts
//! every match of every subsignature. `::i` variants are lowercased; their atoms are
//! searched in the raw bytes in either case (in the same pass), and verified on a
//! lowercased copy of the data, made per chunk only when one of them occurs in it. Once the file has been scanned, each logical signature whose target
//! description holds for the file ([`LogicalFacts`], checked first so that
//! signatures for other targets or sizes cost nothing) evaluates its expression over
//! the counts. Regex (PCRE) subsignatures run only then, and only when their trigger
//! expression holds (ClamAV's rule); for streamed files, whose bytes are gone by then,
//! they run on each chunk as it passes (see [`LogicalScan::feed`]).
//!
//! Signatures are reported in load order among those that hold (measured: ClamAV
//! evaluates its logical signatures in order after the scan).

use moat_sigs::hex::{Boundary, ByteSet, Element, Gap, Part, Pattern};
use moat_sigs::ldb::{ByteCompare, Modifiers, PcreSubsig, MAX_SUBSIGS};
use moat_sigs::{BodySig, LogicalSig, OffsetBase, Subsig};

use crate::body::{BodyBuilder, BodyMatcher, BodyScan};
use moat_formats::{ByteSource, ExeInfo};

/// The farthest a byte compare's bytes are kept around its trigger's match in a
/// streamed file (the chunk overlap grows by at most this much).
pub const MAX_COMPARE_REACH: usize = 64 << 10;

/// What the evaluator needs to know about the file, besides its bytes: filled by the
/// caller from file typing and executable parsing (and, inside containers, from the
/// recursion), checked against each signature's target description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogicalFacts<'a> {
    /// The size of the content scanned, in bytes.
    pub file_size: u64,
    /// ClamAV's target type of the content (0 when the type has no signatures of
    /// its own; 7 for the normalized-text pass).
    pub target: u8,
    /// The executable's entry point (a file offset), when it is one.
    pub entry_point: Option<u64>,
    /// The executable's number of sections, when it is one.
    pub sections: Option<usize>,
    /// The `CL_TYPE_*` name of the container this content was found in; `None` at
    /// the top level.
    pub container: Option<&'a str>,
    /// The `CL_TYPE_*` names of the containers above this content, outermost first;
    /// empty at the top level.
    pub intermediates: &'a [&'a str],
}

impl LogicalFacts<'_> {
    /// The facts of a plain top-level file of `file_size` bytes and no known type.
    pub fn plain(file_size: u64) -> LogicalFacts<'static> {
        LogicalFacts {
            file_size,
            target: 0,
            entry_point: None,
            sections: None,
            container: None,
            intermediates: &[],
        }
    }
}

/// Whether the target description of `sig` holds for a file with these facts.
fn applies(sig: &LogicalSig, facts: &LogicalFacts<'_>) -> bool {
    let t = &sig.target;
    let target = t.target.unwrap_or(0);
    let inside = |(lo, hi): (u64, u64), v: u64| lo <= v && v <= hi;
    (target == 0 || target == facts.target)
        && t.file_size.is_none_or(|r| inside(r, facts.file_size))
        && t.entry_point
            .is_none_or(|r| facts.entry_point.is_some_and(|ep| inside(r, ep)))
        && t.sections
            .is_none_or(|r| facts.sections.is_some_and(|n| inside(r, n as u64)))
        && t.container
            .as_deref()
            .is_none_or(|c| facts.container == Some(c))
        && t.intermediates.as_ref().is_none_or(|chain| {
            chain.len() == facts.intermediates.len()
                && chain
                    .iter()
                    .zip(facts.intermediates)
                    .all(|(a, b)| &**a == *b || &**a == "CL_TYPE_ANY")
        })
}

/// A regex subsignature, compiled (with PCRE2's JIT) the first time a file needs it:
/// most regexes of real databases have triggers that rarely hold, and compiling all
/// of them at load was a fifth of the load time and 15 MB (measured).
struct Regex {
    subsig: usize,
    sub: PcreSubsig,
    regex: std::sync::OnceLock<Option<pcre2::bytes::Regex>>,
}

impl Regex {
    /// The compiled regex; `None` if PCRE2 refuses it (the loader compiled it once
    /// already, so it does not happen for a loaded database: it then never matches).
    fn compiled(&self) -> Option<&pcre2::bytes::Regex> {
        self.regex
            .get_or_init(|| self.sub.builder().build(&self.sub.compiled_pattern()).ok())
            .as_ref()
    }
}

/// A byte-compare subsignature with where to find its trigger's matches.
struct Compare {
    sig: u32,
    subsig: usize,
    cmp: ByteCompare,
    /// The trigger's variants: (group, in `nocase`?, variant index).
    trigger: Vec<(usize, bool, usize)>,
}

/// The hex subsignatures of the signatures of one target type, compiled together:
/// a file is scanned with the group of target 0 and the group of its own type only
/// (measured: 88% of main.ldb's signatures are for PE files, target 1; their atoms
/// were verified in every ELF program, script and document).
struct Group {
    /// The target type of its signatures (0: any file).
    target: u8,
    /// Subsignature variants matched on the data as is.
    exact: BodyMatcher,
    /// `(signature, subsignature)` of each variant of `exact`.
    exact_owner: Vec<(u32, u8)>,
    /// `::i` variants, lowercased, matched on a lowercased copy.
    nocase: BodyMatcher,
    nocase_owner: Vec<(u32, u8)>,
}

/// The compiled logical signatures of one pass (raw bytes, or normalized text).
pub struct LogicalMatcher {
    sigs: Vec<LogicalSig>,
    /// The hex subsignatures, by target type (at most one group per type).
    groups: Vec<Group>,
    regexes: Vec<Regex>,
    /// For each signature, the indexes of its regexes in `regexes`.
    regexes_of: Vec<Vec<usize>>,
    /// The signatures evaluated even when none of their hex subsignatures matched:
    /// those whose expression holds with zero counts (`0<1`), and those with regexes.
    always_evaluated: Vec<u32>,
    /// Some signature has no condition but target 0: every file may match.
    unconditional: bool,
    compares: Vec<Compare>,
    /// For each signature, the indexes of its byte compares in `compares`.
    compares_of: Vec<Vec<usize>>,
}

impl LogicalMatcher {
    /// Compiles the signatures for the raw bytes; the order given is the reporting
    /// order.
    pub fn new(sigs: Vec<LogicalSig>) -> LogicalMatcher {
        LogicalMatcher::compile(sigs, false)
    }

    /// Compiles the signatures for the normalized-text copy: there, the hex
    /// subsignatures of target-0 signatures with an `EOF-n` offset never match
    /// (measured, as for `.ndb`); target 7's do, relative to the copy's end.
    pub fn for_normalized(sigs: Vec<LogicalSig>) -> LogicalMatcher {
        LogicalMatcher::compile(sigs, true)
    }

    fn compile(mut sigs: Vec<LogicalSig>, normalized: bool) -> LogicalMatcher {
        // Per target type: (exact, exact owners, nocase, nocase owners). Each variant is
        // compiled as soon as it is made, so that its loader form is freed at once.
        type Parts = (BodyBuilder, Vec<(u32, u8)>, BodyBuilder, Vec<(u32, u8)>);
        let mut by_target: std::collections::BTreeMap<u8, Parts> = Default::default();
        let mut regexes = Vec::new();
        let mut regexes_of = vec![Vec::new(); sigs.len()];
        let mut compares: Vec<Compare> = Vec::new();
        let mut compares_of = vec![Vec::new(); sigs.len()];
        for (i, sig) in sigs.iter_mut().enumerate() {
            for (j, sub) in sig.subsigs.iter_mut().enumerate() {
                match sub {
                    Subsig::Body {
                        offset,
                        pattern,
                        modifiers,
                    } => {
                        let target = sig.target.target.unwrap_or(0);
                        let generic = target == 0;
                        let (exact, exact_owner, nocase, nocase_owner) =
                            by_target.entry(target).or_default();
                        if normalized && generic && matches!(offset.base, OffsetBase::FromEnd(_)) {
                            continue;
                        }
                        // Moved, not copied: the loader's patterns were a third of the
                        // peak memory when cloned here (measured with heaptrack).
                        let pattern = std::mem::replace(
                            pattern,
                            Pattern {
                                parts: Vec::new(),
                                gaps: Vec::new(),
                                offset_origin: 0,
                            },
                        );
                        for variant in variants(pattern, modifiers) {
                            // Nameless: the owner tables name it.
                            let body = BodySig {
                                name: Box::default(),
                                target: 0,
                                offset: *offset,
                                pattern: variant,
                            };
                            if modifiers.nocase {
                                nocase.push(body);
                                nocase_owner.push((i as u32, j as u8));
                            } else {
                                exact.push(body);
                                exact_owner.push((i as u32, j as u8));
                            }
                        }
                    }
                    // Never matches (measured, see `Subsig::Macro`): its count stays 0.
                    Subsig::Macro { .. } => {}
                    Subsig::ByteCompare(cmp) => {
                        compares_of[i].push(compares.len());
                        compares.push(Compare {
                            sig: i as u32,
                            subsig: j,
                            cmp: cmp.clone(),
                            trigger: Vec::new(),
                        });
                    }
                    Subsig::Pcre(p) => {
                        regexes_of[i].push(regexes.len());
                        regexes.push(Regex {
                            subsig: j,
                            sub: p.clone(),
                            regex: std::sync::OnceLock::new(),
                        });
                    }
                }
            }
        }
        // The hex patterns now live in the matchers; the evaluator needs only each
        // signature's description, expression and subsignature count, so the copies
        // are dropped (they were a third of the engine's memory for `.ldb` files).
        for sig in &mut sigs {
            for sub in &mut sig.subsigs {
                if let Subsig::Body { pattern, .. } = sub {
                    pattern.parts = Vec::new();
                    pattern.gaps = Vec::new();
                }
            }
        }
        let zeros = [0u32; MAX_SUBSIGS];
        let always_evaluated = (0..sigs.len() as u32)
            .filter(|&i| !regexes_of[i as usize].is_empty() || sigs[i as usize].expr.eval(&zeros).0)
            .collect();
        let unconditional = sigs.iter().any(|s| {
            s.target.target.unwrap_or(0) == 0
                && s.target
                    == moat_sigs::ldb::TargetDesc {
                        target: s.target.target,
                        ..Default::default()
                    }
        });
        let groups: Vec<Group> = by_target
            .into_iter()
            .map(
                |(target, (exact, exact_owner, nocase, nocase_owner))| Group {
                    target,
                    exact: exact.build_counting(),
                    exact_owner,
                    nocase: nocase.build_counting_folded(),
                    nocase_owner,
                },
            )
            .collect();
        for c in &mut compares {
            let wanted = (c.sig, c.cmp.trigger);
            for (g, group) in groups.iter().enumerate() {
                for (nocase, owners) in [(false, &group.exact_owner), (true, &group.nocase_owner)] {
                    for (v, &o) in owners.iter().enumerate() {
                        if o == wanted {
                            c.trigger.push((g, nocase, v));
                        }
                    }
                }
            }
        }
        LogicalMatcher {
            unconditional,
            compares,
            compares_of,
            always_evaluated,
            sigs,
            groups,
            regexes,
            regexes_of,
        }
    }

    /// The number of signatures.
    pub fn len(&self) -> usize {
        self.sigs.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.sigs.is_empty()
    }

    /// How many bytes before and after an atom's start verification may read.
    /// Byte compares add the bytes they read around their trigger's match, up to
    /// [`MAX_COMPARE_REACH`] (a streamed file's byte compare reading farther than that
    /// from its trigger across a chunk boundary does not match).
    pub fn reach(&self) -> (usize, usize) {
        let (mut back, mut ahead) = (0, 0);
        for g in &self.groups {
            back = back.max(g.exact.reach_back()).max(g.nocase.reach_back());
            ahead = ahead.max(g.exact.reach_ahead()).max(g.nocase.reach_ahead());
        }
        for c in &self.compares {
            let far = |v: i64| {
                usize::try_from(v)
                    .unwrap_or(usize::MAX)
                    .min(MAX_COMPARE_REACH)
            };
            if c.cmp.shift < 0 {
                back = back.max(far(-c.cmp.shift));
                ahead = ahead.max(far(i64::from(c.cmp.bytes)));
            } else {
                ahead = ahead.max(far(c.cmp.shift.saturating_add(i64::from(c.cmp.bytes))));
            }
        }
        (back, ahead)
    }

    /// Whether any signature could hold for a file with these facts.
    pub fn any_applies(&self, facts: &LogicalFacts<'_>) -> bool {
        self.unconditional || self.sigs.iter().any(|s| applies(s, facts))
    }

    /// Scans complete contents and returns the name of the first logical signature
    /// that holds.
    pub fn scan(
        &self,
        data: &[u8],
        facts: &LogicalFacts<'_>,
        exe: Option<&ExeInfo>,
    ) -> Option<&str> {
        if !self.any_applies(facts) {
            return None;
        }
        let mut scan = self.start(data.len() as u64, facts.target, false, exe);
        scan.feed(data, 0, data.len() as u64);
        scan.finish(Some(data), facts)
    }

    /// Every logical signature holding on the complete contents `data`, in load order.
    pub fn scan_all(
        &self,
        data: &[u8],
        facts: &LogicalFacts<'_>,
        exe: Option<&ExeInfo>,
    ) -> Vec<&str> {
        if !self.any_applies(facts) {
            return Vec::new();
        }
        let mut scan = self.start(data.len() as u64, facts.target, false, exe);
        scan.feed(data, 0, data.len() as u64);
        scan.finish_all(Content::Whole(data), facts)
    }

    /// Starts a scan of a file of `file_len` bytes and target type `target` (the
    /// [`LogicalFacts::target`] it will be finished with: only the subsignatures of
    /// signatures for target 0 and for `target` are matched) whose executable layout is
    /// `exe` (for subsignatures at `EP+n`, `Sx+n`, `SEx`, `SL+n`). With `streaming`,
    /// regex subsignatures run on each fed chunk (the bytes are not kept for the end).
    pub fn start(
        &self,
        file_len: u64,
        target: u8,
        streaming: bool,
        exe: Option<&ExeInfo>,
    ) -> LogicalScan<'_> {
        fn start<'m>(m: &'m BodyMatcher, file_len: u64, exe: Option<&ExeInfo>) -> BodyScan<'m> {
            let exe = m.needs_exe().then(|| exe.cloned()).flatten();
            m.start_exe(file_len, exe)
        }
        LogicalScan {
            matcher: self,
            scans: self
                .groups
                .iter()
                .enumerate()
                .filter(|(_, g)| g.target == 0 || g.target == target)
                .map(|(i, g)| GroupScan {
                    group: i,
                    exact: start(&g.exact, file_len, exe),
                    nocase: (!g.nocase.is_empty()).then(|| start(&g.nocase, file_len, exe)),
                })
                .collect(),
            lower: Vec::new(),
            file_len,
            streaming,
            regex_counts: vec![(0, u64::MAX); self.regexes.len()],
            compare_results: vec![(u64::MAX, false); self.compares.len()],
            regex_done: 0,
            defer_regexes: false,
        }
    }
}

/// A logical-signature scan in progress over one file, fed as [`BodyScan`] is.
pub struct LogicalScan<'m> {
    matcher: &'m LogicalMatcher,
    /// The scans of the groups that apply (target 0 and the file's).
    scans: Vec<GroupScan<'m>>,
    /// The lowercased copy of the current chunk, reused.
    lower: Vec<u8>,
    file_len: u64,
    streaming: bool,
    /// Streaming: per regex, the matches counted and the last start counted.
    regex_counts: Vec<(u32, u64)>,
    /// Streaming: regex matches starting before this offset have been counted.
    regex_done: u64,
    /// Streaming: per byte compare, the trigger position it was last evaluated at and
    /// the result.
    compare_results: Vec<(u64, bool)>,
    /// Streaming with the file at hand again at the end ([`LogicalScan::defer_regexes`]):
    /// regexes are not run per chunk but once the counts are known, and only those
    /// whose trigger holds.
    defer_regexes: bool,
}

/// The scan of one [`Group`].
struct GroupScan<'m> {
    group: usize,
    exact: BodyScan<'m>,
    nocase: Option<BodyScan<'m>>,
}

/// Where [`LogicalScan::finish`] finds the content for the regexes whose trigger holds.
#[derive(Clone, Copy)]
pub enum Content<'a> {
    /// The whole content, in memory.
    Whole(&'a [u8]),
    /// Gone: it was streamed, and each regex ran on every chunk as it passed.
    Streamed,
    /// Streamed, and readable again: regexes re-read it in chunks of `chunk` bytes,
    /// each with `overlap` more bytes on both sides (matches starting in the chunk are
    /// counted, as for the chunks of the scan itself).
    Reread {
        /// The file.
        source: &'a dyn ByteSource,
        /// Bytes per chunk.
        chunk: usize,
        /// Bytes read before and after each chunk.
        overlap: usize,
    },
}

impl LogicalScan<'_> {
    /// The position of the last match of a byte compare's trigger so far.
    fn trigger_last(&self, c: &Compare) -> Option<u64> {
        c.trigger
            .iter()
            .filter_map(|&(group, nocase, v)| {
                let g = self.scans.iter().find(|g| g.group == group)?;
                let scan = if nocase { g.nocase.as_ref()? } else { &g.exact };
                scan.count_of(v).map(|(_, last)| last)
            })
            .max()
    }
}

impl<'m> LogicalScan<'m> {
    /// Streaming: regexes are not run on each chunk as it passes, but at the end, only
    /// those whose trigger holds, over the file read again ([`Content::Reread`]): most
    /// regexes of real databases have triggers that rarely hold, and running all of them
    /// over every chunk was half of the scan time of large programs (measured).
    pub fn defer_regexes(&mut self) {
        self.defer_regexes = true;
    }

    /// Processes the bytes of `buf` (file offset `base`) up to `until`, as
    /// [`BodyScan::feed`]. Streaming, regexes also run over `buf` and count the
    /// matches that start in `[done, until)`: a match longer than the chunk overlap
    /// ([`LogicalMatcher::reach`], at least the engine's chunk overlap) that crosses a
    /// chunk boundary is not seen, a documented limit of streamed files.
    pub fn feed(&mut self, buf: &[u8], base: u64, until: u64) {
        self.feed_with(buf, base, until, &mut [], false);
    }

    /// [`LogicalScan::feed`], with the body scans `others` of the same buffer fed in
    /// the same prefilter pass as this scan's exact subsignatures (one pass over the
    /// buffer for every matcher, [`BodyScan::feed_all`]). With `lowercase` (`buf` has
    /// no uppercase ASCII letter, as the normalized copy), the `::i` subsignatures
    /// join that pass too instead of a second one over a lowercased copy.
    pub fn feed_with(
        &mut self,
        buf: &[u8],
        base: u64,
        until: u64,
        others: &mut [&mut BodyScan<'m>],
        lowercase: bool,
    ) {
        let mut same: Vec<&mut BodyScan<'m>> = Vec::with_capacity(others.len() + 4);
        same.extend(others.iter_mut().map(|s| &mut **s));
        let mut nocase: Vec<&mut BodyScan<'m>> = Vec::new();
        for g in &mut self.scans {
            same.push(&mut g.exact);
            if let Some(n) = &mut g.nocase {
                if lowercase {
                    same.push(n);
                } else {
                    nocase.push(n);
                }
            }
        }
        // The `::i` scans share the pass over the raw bytes; a lowercased copy is
        // made only for a buffer where one of their atoms occurs.
        let folded_from = same.len();
        same.append(&mut nocase);
        BodyScan::feed_all_folded(&mut same, folded_from, buf, &mut self.lower, base, until);
        if self.streaming {
            let done = self.regex_done;
            let regexes = if self.defer_regexes {
                &[][..]
            } else {
                &self.matcher.regexes[..]
            };
            for (k, r) in regexes.iter().enumerate() {
                let count = &mut self.regex_counts[k];
                for_each_regex_match(r, buf, base, self.file_len, |start| {
                    if start >= done && start < until && count.1 != start {
                        count.0 += 1;
                        count.1 = start;
                    }
                    // Without `g`, one match counts: once counted, stop looking.
                    r.sub.flags.global || count.0 == 0
                });
            }
            self.regex_done = self.regex_done.max(until);
            // Byte compares read next to their trigger's last match: evaluated while
            // those bytes are at hand (a window outside this buffer does not match).
            for (k, c) in self.matcher.compares.iter().enumerate() {
                let Some(last) = self.trigger_last(c) else {
                    continue;
                };
                if self.compare_results[k].0 != last {
                    let at = last.checked_add_signed(c.cmp.shift);
                    let held = at
                        .and_then(|a| a.checked_sub(base))
                        .is_some_and(|rel| c.cmp.holds_at(buf, rel));
                    self.compare_results[k] = (last, held);
                }
            }
        }
    }

    /// The name of the first logical signature (in the matcher's order) that holds
    /// for a file with `facts`. `data` is the whole content when it is at hand (then
    /// regexes run now, when their triggers hold); `None` after streaming.
    pub fn finish(self, data: Option<&[u8]>, facts: &LogicalFacts<'_>) -> Option<&'m str> {
        self.finish_with(data.map_or(Content::Streamed, Content::Whole), facts)
    }

    /// [`LogicalScan::finish`], with the content for the regexes as `content` says.
    pub fn finish_with(self, content: Content<'_>, facts: &LogicalFacts<'_>) -> Option<&'m str> {
        let mut first = None;
        self.finish_each(content, facts, |name| {
            first = Some(name);
            false
        });
        first
    }

    /// Every signature that holds, in load order (ClamAV's `--allmatch` order).
    pub fn finish_all(self, content: Content<'_>, facts: &LogicalFacts<'_>) -> Vec<&'m str> {
        let mut all = Vec::new();
        self.finish_each(content, facts, |name| {
            all.push(name);
            true
        });
        all
    }

    /// Calls `found` with each signature that holds, in load order, until it returns
    /// false.
    fn finish_each(
        self,
        content: Content<'_>,
        facts: &LogicalFacts<'_>,
        mut found: impl FnMut(&'m str) -> bool,
    ) {
        let data = match content {
            Content::Whole(d) => Some(d),
            _ => None,
        };
        let m = self.matcher;
        // The subsignatures that matched, as (signature, subsignature, count), grouped by
        // signature; then the signatures worth evaluating: those with a match, and those
        // that can hold without one (zero counts, or regexes), in load order.
        let mut hits: Vec<(u32, u8, u32)> = Vec::new();
        for g in &self.scans {
            let group = &m.groups[g.group];
            for (variant, n, _) in g.exact.counts() {
                let (sig, sub) = group.exact_owner[variant];
                hits.push((sig, sub, n));
            }
            if let Some(nocase) = &g.nocase {
                for (variant, n, _) in nocase.counts() {
                    let (sig, sub) = group.nocase_owner[variant];
                    hits.push((sig, sub, n));
                }
            }
        }
        hits.sort_unstable();
        let mut candidates: Vec<u32> = hits.iter().map(|h| h.0).collect();
        candidates.extend(&m.always_evaluated);
        candidates.sort_unstable();
        candidates.dedup();
        for i in candidates {
            let sig = &m.sigs[i as usize];
            if !applies(sig, facts) {
                continue;
            }
            let mut counts = [0u32; MAX_SUBSIGS];
            let c = &mut counts[..sig.subsigs.len()];
            let from = hits.partition_point(|h| h.0 < i);
            for &(_, sub, n) in hits[from..].iter().take_while(|h| h.0 == i) {
                c[sub as usize] = c[sub as usize].saturating_add(n);
            }
            for &k in &m.compares_of[i as usize] {
                let cmp = &m.compares[k];
                let Some(last) = self.trigger_last(cmp) else {
                    continue;
                };
                let held = match data {
                    Some(data) => last
                        .checked_add_signed(cmp.cmp.shift)
                        .is_some_and(|at| cmp.cmp.holds_at(data, at)),
                    None => self.compare_results[k] == (last, true),
                };
                c[cmp.subsig] = u32::from(held);
            }
            for &k in &m.regexes_of[i as usize] {
                let r = &m.regexes[k];
                if !r.sub.trigger.eval(c).0 {
                    continue;
                }
                c[r.subsig] = match content {
                    // Offsets are relative to the content matched (the normalized copy
                    // in that pass), as for the hex subsignatures.
                    Content::Whole(data) => regex_count(r, data, data.len() as u64),
                    Content::Reread {
                        source,
                        chunk,
                        overlap,
                    } if self.defer_regexes => {
                        regex_count_reread(r, source, self.file_len, chunk, overlap)
                    }
                    _ => self.regex_counts[k].0,
                };
            }
            if sig.expr.eval(c).0 && !found(&sig.name) {
                return;
            }
        }
    }
}

/// The matches of a regex subsignature in the whole content.
fn regex_count(r: &Regex, data: &[u8], file_len: u64) -> u32 {
    let mut n = 0u32;
    for_each_regex_match(r, data, 0, file_len, |_| {
        n += 1;
        r.sub.flags.global && n < crate::body::MAX_COUNT
    });
    n
}

/// The matches of a regex subsignature in a streamed file read again through `source`,
/// `chunk` bytes at a time with `overlap` bytes around (a match starting in a chunk is
/// counted once; one longer than the overlap across a chunk's end is missed, as when the
/// regexes ran during the scan). Chunks wholly before the regex's offset are not read.
fn regex_count_reread(
    r: &Regex,
    source: &dyn ByteSource,
    file_len: u64,
    chunk: usize,
    overlap: usize,
) -> u32 {
    let chunk = chunk.max(1) as u64;
    let first = match r.sub.offset.base {
        OffsetBase::Any => 0,
        _ => match r.sub.offset.start_range(file_len) {
            Some((lo, _)) => lo,
            None => return 0,
        },
    };
    let mut n = 0u32;
    let mut buf = Vec::new();
    let mut from = first - first % chunk;
    while from < file_len {
        let until = from.saturating_add(chunk).min(file_len);
        let base = from.saturating_sub(overlap as u64);
        let end = until.saturating_add(overlap as u64).min(file_len);
        buf.resize((end - base) as usize, 0);
        let Ok(got) = source.read_at(base, &mut buf) else {
            break;
        };
        buf.truncate(got);
        let mut more = true;
        for_each_regex_match(r, &buf, base, file_len, |start| {
            if start >= from && start < until {
                n += 1;
                more = r.sub.flags.global && n < crate::body::MAX_COUNT;
                return more;
            }
            true
        });
        if !more || got < (end - base) as usize {
            break;
        }
        from = until;
    }
    n
}

/// Calls `each` with the file offset of every match start of `r` in `buf` (file
/// offset `base`) that satisfies its offset and flags, while `each` returns true.
///
/// ClamAV's rules for an offset `n[,s]` (measured, docs/clamav-oracle.md; a shift of 0
/// is no shift): without a shift, the match starts exactly at `n`, or anywhere from `n`
/// on with `r`; with a shift, it starts in `[n, n+s]` (`r` changes nothing), and with
/// `e` it lies entirely inside `[n, n+s)`. `e` without a shift changes nothing.
fn for_each_regex_match(
    r: &Regex,
    buf: &[u8],
    base: u64,
    file_len: u64,
    mut each: impl FnMut(u64) -> bool,
) {
    let flags = r.sub.flags;
    let end = base + buf.len() as u64;
    let rel = |v: u64| (v.clamp(base, end) - base) as usize;
    // (subject start, subject end, latest allowed start), as file offsets.
    let (from, to, last_start) = match r.sub.offset.base {
        OffsetBase::Any => (base, end, u64::MAX),
        _ => {
            let Some((lo, _)) = r.sub.offset.start_range(file_len) else {
                return;
            };
            match r.sub.offset.max_shift.unwrap_or(0) {
                0 if flags.rolling => (lo, end, u64::MAX),
                0 => (lo, end, lo),
                s if flags.encompass => (lo, lo.saturating_add(u64::from(s)), u64::MAX),
                s => (lo, end, lo.saturating_add(u64::from(s))),
            }
        }
    };
    if from > end || from > to {
        return;
    }
    let Some(regex) = r.compiled() else {
        return;
    };
    let subject = &buf[..rel(to)];
    let mut at = rel(from);
    while at <= subject.len() {
        // A hit of the match limit is "no match", as in ClamAV.
        let Ok(Some(found)) = regex.find_at(subject, at) else {
            return;
        };
        let start = base + found.start() as u64;
        if start > last_start || !each(start) {
            return;
        }
        at = if found.end() > found.start() {
            found.end()
        } else {
            found.end() + 1
        };
    }
}

/// The body patterns a hex subsignature is matched as.
fn variants(pattern: Pattern, m: &Modifiers) -> Vec<Pattern> {
    let mut out = Vec::new();
    let wide = m.wide.then(|| widen(&pattern));
    if !m.wide || m.ascii {
        out.push(pattern);
    }
    out.extend(wide);
    let wide_from = out.len() - usize::from(m.wide);
    for (k, p) in out.iter_mut().enumerate() {
        if m.nocase {
            lowercase(p);
        }
        if m.fullword {
            // Measured: the wide form checks the UTF-16LE characters around it.
            let edge = if k >= wide_from && m.wide {
                Boundary::WideNonAlnum
            } else {
                Boundary::NonAlnum
            };
            p.parts[0].elements.insert(0, Element::Boundary(edge));
            p.parts
                .last_mut()
                .expect("a pattern has a part")
                .elements
                .push(Element::Boundary(edge));
            if p.offset_origin > 0 {
                p.offset_origin += 1;
            }
        }
    }
    out
}

/// UTF-16LE form: every byte followed by a zero byte; skips and gaps doubled.
fn widen(p: &Pattern) -> Pattern {
    fn seq(elements: &[Element]) -> Vec<Element> {
        let mut out = Vec::with_capacity(elements.len() * 2);
        for e in elements {
            match e {
                Element::Skip { min, max } => out.push(Element::Skip {
                    min: min * 2,
                    max: max * 2,
                }),
                Element::Alt(alt) => out.push(Element::alt(
                    alt.alternatives.iter().map(|a| seq(a)).collect(),
                    alt.negated,
                )),
                Element::Boundary(_) => out.push(e.clone()),
                other => {
                    out.push(other.clone());
                    out.push(Element::Byte(0));
                }
            }
        }
        out
    }
    Pattern {
        parts: p
            .parts
            .iter()
            .map(|part| Part {
                elements: seq(&part.elements),
            })
            .collect(),
        gaps: p
            .gaps
            .iter()
            .map(|g| Gap {
                min: g.min * 2,
                max: g.max.map(|m| m * 2),
            })
            .collect(),
        offset_origin: p
            .parts
            .first()
            .map_or(0, |part| seq(&part.elements[..p.offset_origin]).len()),
    }
}

/// Lowercases every letter the pattern requires (it is matched on lowercased data).
fn lowercase(p: &mut Pattern) {
    fn seq(elements: &mut [Element]) {
        for e in elements {
            match e {
                Element::Byte(b) => *b = b.to_ascii_lowercase(),
                Element::Class(set) => {
                    let mut folded = ByteSet::EMPTY;
                    for b in 0..=255u8 {
                        if set.contains(b) {
                            folded.insert(b.to_ascii_lowercase());
                        }
                    }
                    **set = folded;
                }
                Element::Alt(alt) => {
                    alt.alternatives.iter_mut().for_each(|a| seq(a));
                }
                _ => {}
            }
        }
    }
    p.parts.iter_mut().for_each(|part| seq(&mut part.elements));
}
