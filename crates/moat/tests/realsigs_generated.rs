//! Files generated to satisfy real logical signatures, and near misses, scanned by
//! `moat scan` and by clamscan (the oracle) with the real main-even.ldb: the same
//! verdict and the same signature name on every file.
//!
//! A deterministic sample of main-even.ldb's signatures that apply to any file
//! (`Target:0`, no other condition), and another of its PE signatures (`Target:1`, no
//! other condition, subsignatures at any offset, written into a PE's one section), and whose subsignatures are hex bodies at any
//! offset or at a fixed one: for each, subsignature counts that make its expression
//! true (all ones, else a seeded search), a file holding that many instances of each
//! subsignature (wildcards filled, the first alternative taken, `::w` widened), and a
//! near miss: one static byte changed in one instance of a subsignature the expression
//! needs. Both scanners run once over the whole directory.
//!
//! Needs `../shared/sigs/clamav-real` (skipped when absent unless `MOAT_REQUIRE_SHARED=1`)
//! and clamscan (skipped when absent unless `MOAT_REQUIRE_ORACLE=1`).
//! `MOAT_LDB_KEEP=1`: keep the generated files.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use moat_sigs::hex::{Element, Pattern};
use moat_sigs::ldb::{parse_ldb, Ldb};
use moat_sigs::{LogicalSig, OffsetBase, Subsig};

/// How many signatures the test instantiates (any-file signatures: main-even.ldb has
/// about 130 that can be written; PE signatures: about 16,000).
const SAMPLE: usize = 40;
const PE_SAMPLE: usize = 200;

/// The byte that fills wildcards and skips.
const FILL: u8 = b'.';

/// Between two instances: non-alphanumeric, so `::f` edges hold, and binary, so the
/// file is not taken for text.
const SEP: &[u8] = &[0x00, 0xff, 0x0a, 0x20, 0x00, 0xfe];

/// `PATH -> RESULT` for every file a scanner reports.
fn scan(program: &str, db: &Path, files: &Path) -> BTreeMap<String, String> {
    let mut cmd = if program == "moat" {
        let mut c = Command::new(env!("CARGO_BIN_EXE_moat"));
        c.arg("scan");
        c
    } else {
        Command::new(program)
    };
    let out = cmd
        .arg("--no-summary")
        .arg("-d")
        .arg(db)
        .arg("-r")
        .arg(files)
        .output()
        .expect("spawn scanner");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let results: BTreeMap<String, String> = stdout
        .lines()
        .filter_map(|line| line.rsplit_once(": "))
        .filter(|(path, _)| path.starts_with('/'))
        .map(|(path, result)| (path.to_owned(), result.to_owned()))
        .collect();
    assert!(
        !results.is_empty(),
        "{program} reported nothing: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    results
}

/// One subsignature written out: its bytes, the positions (in them) of bytes that
/// came from static pattern bytes, and its fixed offset if it has one.
struct Instance {
    bytes: Vec<u8>,
    statics: Vec<usize>,
    at: Option<u64>,
}

/// The bytes of a hex pattern, or `None` for a construct this generator does not
/// write ((B), (L), (W)).
fn instantiate(p: &Pattern) -> Option<(Vec<u8>, Vec<usize>)> {
    let mut out = Vec::new();
    let mut statics = Vec::new();
    for (i, part) in p.parts.iter().enumerate() {
        if i > 0 {
            out.extend(std::iter::repeat_n(FILL, p.gaps[i - 1].min as usize));
        }
        elements(&part.elements, &mut out, Some(&mut statics))?;
    }
    Some((out, statics))
}

fn elements(es: &[Element], out: &mut Vec<u8>, mut statics: Option<&mut Vec<usize>>) -> Option<()> {
    for e in es {
        match e {
            Element::Byte(b) => {
                if let Some(s) = statics.as_deref_mut() {
                    s.push(out.len());
                }
                out.push(*b);
            }
            Element::Masked { value, mask } => out.push(value | (FILL & !mask)),
            Element::Skip { min, .. } => out.extend(std::iter::repeat_n(FILL, *min as usize)),
            Element::Class(set) => {
                let b = if set.contains(FILL) {
                    FILL
                } else {
                    (0..=255u8).find(|&b| set.contains(b))?
                };
                out.push(b);
            }
            Element::Alt(alt) if !alt.negated => elements(&alt.alternatives[0], out, None)?,
            Element::Alt(alt) => {
                let n = alt.alternatives[0].len();
                let none_of = (0..=255u8).map(|b| vec![b; n]).find(|cand| {
                    alt.alternatives.iter().all(|a| {
                        let mut bytes = Vec::new();
                        elements(a, &mut bytes, None).is_some() && bytes != *cand
                    })
                })?;
                out.extend(none_of);
            }
            Element::Boundary(_) => return None,
        }
    }
    Some(())
}

/// The instances of a signature's subsignatures, or `None` when one of them is not
/// a hex body at any or a fixed offset, or cannot be written.
fn instances(sig: &LogicalSig) -> Option<Vec<Instance>> {
    sig.subsigs
        .iter()
        .map(|sub| {
            let Subsig::Body {
                offset,
                pattern,
                modifiers,
            } = sub
            else {
                return None;
            };
            let at = match (offset.base, offset.max_shift) {
                (OffsetBase::Any, _) => None,
                (OffsetBase::Absolute(n), None) => Some(n),
                _ => return None,
            };
            let (mut bytes, mut statics) = instantiate(pattern)?;
            if modifiers.wide && !modifiers.ascii {
                bytes = bytes.iter().flat_map(|&b| [b, 0]).collect();
                statics.iter_mut().for_each(|s| *s *= 2);
            }
            Some(Instance { bytes, statics, at })
        })
        .collect()
}

/// Whether a signature's only condition is its target type `target` (0: any file).
fn only_target(sig: &LogicalSig, target: u8) -> bool {
    let t = &sig.target;
    t.target.unwrap_or(0) == target
        && t.file_size.is_none()
        && t.entry_point.is_none()
        && t.sections.is_none()
        && t.container.is_none()
        && t.intermediates.is_none()
        && !t.icon_group
}

/// A small deterministic generator (xorshift), for the count search.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Counts that make the expression true: all ones if they do, else the first of a
/// seeded search (0 to 3 instances each, at most one at a fixed offset).
fn satisfying_counts(sig: &LogicalSig, inst: &[Instance], seed: u64) -> Option<Vec<u32>> {
    let ones = vec![1u32; inst.len()];
    if sig.expr.eval(&ones).0 {
        return Some(ones);
    }
    let mut rng = Rng(seed | 1);
    (0..5000).find_map(|_| {
        let counts: Vec<u32> = inst
            .iter()
            .map(|i| rng.below(if i.at.is_some() { 2 } else { 4 }) as u32)
            .collect();
        sig.expr.eval(&counts).0.then_some(counts)
    })
}

/// The file: fixed-offset instances at their offsets (filled between), then the others
/// separated by [`SEP`]; and, for the near miss, where a needed subsignature's static
/// byte landed. `None` when fixed-offset instances overlap.
fn layout(
    inst: &[Instance],
    counts: &[u32],
    needed: Option<usize>,
) -> Option<(Vec<u8>, Option<usize>)> {
    let mut data = Vec::new();
    let mut flip = None;
    let mut fixed: Vec<(u64, usize)> = inst
        .iter()
        .enumerate()
        .filter(|(k, i)| i.at.is_some() && counts[*k] > 0)
        .map(|(k, i)| (i.at.unwrap_or(0), k))
        .collect();
    fixed.sort_unstable();
    for (at, k) in fixed {
        let at = at as usize;
        if data.len() > at {
            return None;
        }
        data.resize(at, FILL);
        if needed == Some(k) {
            flip = inst[k]
                .statics
                .get(inst[k].statics.len() / 2)
                .map(|s| at + s);
        }
        data.extend(&inst[k].bytes);
    }
    data.extend(SEP);
    for (k, i) in inst.iter().enumerate() {
        if i.at.is_some() {
            continue;
        }
        for _ in 0..counts[k] {
            if needed == Some(k) {
                flip = i.statics.get(i.statics.len() / 2).map(|s| data.len() + s);
            }
            data.extend(&i.bytes);
            data.extend(SEP);
        }
    }
    Some((data, flip))
}

/// A subsignature whose loss of one instance makes the expression false.
fn needed_subsig(sig: &LogicalSig, counts: &[u32]) -> Option<usize> {
    (0..counts.len()).find(|&k| {
        counts[k] > 0 && {
            let mut fewer = counts.to_vec();
            fewer[k] -= 1;
            !sig.expr.eval(&fewer).0
        }
    })
}

/// A PE32 around `body`: one section (RVA 0x1000, raw at 0x200) holding `body`, padded
/// to the 0x200 file alignment, entry point at the section's start. ClamAV takes it for a
/// PE (`Target:1` signatures apply), and its section bytes are scanned as any file's.
fn pe_around(body: &[u8]) -> Vec<u8> {
    let raw = body.len().div_ceil(0x200).max(1) * 0x200;
    let mut f = vec![0u8; 0x200 + raw];
    f[..2].copy_from_slice(b"MZ");
    f[0x3c..0x40].copy_from_slice(&0x40u32.to_le_bytes());
    f[0x40..0x44].copy_from_slice(b"PE\0\0");
    f[0x44..0x46].copy_from_slice(&0x14cu16.to_le_bytes());
    f[0x46..0x48].copy_from_slice(&1u16.to_le_bytes());
    f[0x54..0x56].copy_from_slice(&0xe0u16.to_le_bytes());
    f[0x56..0x58].copy_from_slice(&0x102u16.to_le_bytes());
    let opt = 0x58;
    f[opt..opt + 2].copy_from_slice(&0x10bu16.to_le_bytes());
    f[opt + 16..opt + 20].copy_from_slice(&0x1000u32.to_le_bytes());
    f[opt + 28..opt + 32].copy_from_slice(&0x40_0000u32.to_le_bytes());
    f[opt + 32..opt + 36].copy_from_slice(&0x1000u32.to_le_bytes());
    f[opt + 36..opt + 40].copy_from_slice(&0x200u32.to_le_bytes());
    let image = 0x1000 + raw.div_ceil(0x1000) * 0x1000;
    f[opt + 56..opt + 60].copy_from_slice(&(image as u32).to_le_bytes());
    f[opt + 60..opt + 64].copy_from_slice(&0x200u32.to_le_bytes());
    f[opt + 68..opt + 70].copy_from_slice(&2u16.to_le_bytes());
    f[opt + 92..opt + 96].copy_from_slice(&16u32.to_le_bytes());
    let sec = opt + 0xe0;
    f[sec..sec + 8].copy_from_slice(b".text\0\0\0");
    f[sec + 8..sec + 12].copy_from_slice(&(raw as u32).to_le_bytes());
    f[sec + 12..sec + 16].copy_from_slice(&0x1000u32.to_le_bytes());
    f[sec + 16..sec + 20].copy_from_slice(&(raw as u32).to_le_bytes());
    f[sec + 20..sec + 24].copy_from_slice(&0x200u32.to_le_bytes());
    f[sec + 36..sec + 40].copy_from_slice(&0x6000_0020u32.to_le_bytes());
    f[0x200..0x200 + body.len()].copy_from_slice(body);
    f
}

#[test]
fn files_made_to_match_real_logical_signatures_against_clamscan() {
    generated_against_clamscan(0, SAMPLE, |body| body.to_vec(), false);
}

/// The same for `Target:1` (PE) signatures of main-even.ldb whose subsignatures are at
/// any offset: each file is a PE whose one section holds the instances.
#[test]
fn pe_files_made_to_match_real_pe_logical_signatures_against_clamscan() {
    generated_against_clamscan(1, PE_SAMPLE, pe_around, true);
}

/// Instantiates `sample` signatures of main-even.ldb whose only condition is `target`,
/// wraps each file's bytes with `wrap`, and compares moat's verdicts with clamscan's.
/// `floating_only`: only subsignatures at any offset (a fixed offset would land in the
/// wrapper's headers).
fn generated_against_clamscan(
    target: u8,
    sample: usize,
    wrap: fn(&[u8]) -> Vec<u8>,
    floating_only: bool,
) {
    let (Some(dir), true) = (moat_testkit::real_sigs(), moat_testkit::clamscan()) else {
        return;
    };
    let db = dir.join("main-even.ldb");
    let text = std::fs::read_to_string(&db).expect("read main-even.ldb");
    // (line number, signature, instances, counts)
    let mut eligible = Vec::new();
    for (n, line) in text.lines().enumerate() {
        // The names as both scanners report them for a database that is not official.
        let Ok(Ldb::Sig(sig)) = parse_ldb(line, ".UNOFFICIAL") else {
            continue;
        };
        if !only_target(&sig, target) {
            continue;
        }
        let Some(inst) = instances(&sig) else {
            continue;
        };
        if floating_only && inst.iter().any(|i| i.at.is_some()) {
            continue;
        }
        let Some(counts) = satisfying_counts(&sig, &inst, n as u64) else {
            continue;
        };
        if layout(&inst, &counts, None).is_some() {
            eligible.push((n + 1, sig, inst, counts));
        }
    }
    assert!(
        eligible.len() >= sample,
        "only {} signatures of main-even.ldb can be instantiated",
        eligible.len()
    );
    let files = tempfile::tempdir().expect("temp dir");
    let step = eligible.len() / sample;
    let mut expected = BTreeMap::new();
    let mut near_misses = 0;
    for (line, sig, inst, counts) in eligible.iter().step_by(step).take(sample) {
        let stem = format!("{line:05}-{}", sig.name.replace(['/', '.'], "_"));
        let (hit, _) = layout(inst, counts, None).expect("checked above");
        let path = files.path().join(format!("{stem}-hit"));
        std::fs::write(&path, wrap(&hit)).expect("write");
        expected.insert(path.display().to_string(), sig.name.to_string());
        let Some(k) = needed_subsig(sig, counts) else {
            continue;
        };
        if let Some((mut miss, Some(at))) = layout(inst, counts, Some(k)) {
            miss[at] ^= 0x80;
            let path = files.path().join(format!("{stem}-miss{k}"));
            std::fs::write(&path, wrap(&miss)).expect("write");
            near_misses += 1;
        }
    }
    let clamscan = scan("clamscan", &db, files.path());
    let moat = scan("moat", &db, files.path());
    let mut differ = Vec::new();
    for (path, theirs) in &clamscan {
        let ours = moat.get(path).map_or("(not reported)", String::as_str);
        if ours != theirs {
            differ.push(format!("{path}: clamscan {theirs}, moat {ours}"));
        }
    }
    let intended = expected
        .iter()
        .filter(|(path, name)| clamscan.get(*path) == Some(&format!("{name} FOUND")))
        .count();
    let misses_clean = clamscan
        .iter()
        .filter(|(path, result)| path.contains("-miss") && result.as_str() == "OK")
        .count();
    println!(
        "target {target}: {} eligible signatures, {} instantiated: clamscan finds {intended} by the intended \
         name; {near_misses} near misses, {misses_clean} clean; {} files differ",
        eligible.len(),
        expected.len(),
        differ.len()
    );
    if std::env::var("MOAT_LDB_KEEP").as_deref() == Ok("1") {
        println!("files kept in {}", files.keep().display());
    }
    assert_eq!(moat.len(), clamscan.len(), "files reported");
    assert!(differ.is_empty(), "verdicts differ:\n{}", differ.join("\n"));
    // The generator is meaningful only if the oracle agrees that it makes matches and
    // misses: most files made to match are found by their own signature, most near
    // misses are clean.
    assert!(
        intended * 10 >= expected.len() * 8,
        "clamscan finds {intended} of {} by name",
        expected.len()
    );
    assert!(
        misses_clean * 10 >= near_misses * 8,
        "{misses_clean} of {near_misses} near misses clean"
    );
}
