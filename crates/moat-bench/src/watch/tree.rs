//! The directory tree both on-access daemons watch, with its probe and clean files.
//!
//! Shape: directories are numbered like a heap with fan-out [`FANOUT`]: node 0 is the tree
//! root, the children of node `k` are `FANOUT*k+1 ..= FANOUT*k+FANOUT`, and node `i` is named
//! `d{(i-1) % FANOUT}`. `--dirs N` creates nodes `1..=N`, so 100,000 directories have depth
//! 5, 10,000 depth 4 and 1,000,000 depth 6. The shape (and every byte written) depends only
//! on `N` and the number of clean files. The tree is generated afresh on every run, on the
//! private tmpfs the run mounts ([`super::mount`]): 1,000,000 directories take a few
//! seconds there, and a tmpfs needs no cache warming.
//!
//! Probe directories hold `moat-probe.dat`, a file with the test marker: a daemon covers a
//! probe directory when opening that file as an unprivileged user fails with EPERM. They
//! are chosen from real walks of the generated tree (readdir order, as a daemon would walk
//! it): the root, the first, middle and last directory of a depth-first walk, the last
//! directory of a breadth-first walk, and the directory created last (node N, deepest).
//!
//! Clean files `clean-J.txt` (small, distinct contents, so no scanner can answer one from a
//! cache filled by another) are spread evenly over the directories.

use crate::rng::Rng;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Children per directory.
pub const FANOUT: u64 = 10;

/// The name of the infected file in each probe directory.
pub const PROBE_FILE: &str = "moat-probe.dat";

/// `MOAT-TEST-MARKER` in hex, as the test database's body signature. The marker itself is
/// only ever built at run time from this, so no source file or binary contains it.
pub const MARKER_HEX: &str = "4d4f41542d544553542d4d41524b4552";

/// The test database: one body signature for the marker.
pub fn test_ndb() -> String {
    format!("Moat.Test.Marker:0:*:{MARKER_HEX}\n")
}

/// A probe directory.
#[derive(Clone, Debug)]
pub struct Probe {
    /// Short name for the table (`root`, `walk-first`...).
    pub name: String,
    /// The directory, relative to the tree root (empty for the root).
    pub rel: PathBuf,
    /// Depth below the tree root.
    pub depth: usize,
}

/// A generated tree.
#[derive(Clone, Debug)]
pub struct Tree {
    /// The watched directory (`OnAccessIncludePath`).
    pub dir: PathBuf,
    /// Directories below `dir` (`dir` itself not counted).
    pub dirs: u64,
    /// Depth of the deepest directory.
    pub depth: usize,
    /// Probe directories, in table order.
    pub probes: Vec<Probe>,
    /// Absolute paths of the clean files.
    pub clean_files: Vec<PathBuf>,
    /// Seconds spent creating the directories and clean files.
    pub generation_secs: f64,
    /// Seconds spent walking the tree (twice) to choose the probes.
    pub probe_secs: f64,
}

impl Tree {
    /// Absolute paths of the probe files, in probe order.
    pub fn probe_files(&self) -> Vec<PathBuf> {
        self.probes
            .iter()
            .map(|p| self.dir.join(&p.rel).join(PROBE_FILE))
            .collect()
    }
}

/// The path of node `i` relative to the tree root.
fn node_rel(mut i: u64) -> PathBuf {
    let mut names = Vec::new();
    while i > 0 {
        names.push(format!("d{}", (i - 1) % FANOUT));
        i = (i - 1) / FANOUT;
    }
    names.iter().rev().collect()
}

/// The directory of clean file `j` of `files`: evenly spread over nodes `1..=dirs`.
fn clean_file_rel(j: u64, files: u64, dirs: u64) -> PathBuf {
    let node = 1 + j * dirs / files.max(1);
    node_rel(node.min(dirs)).join(format!("clean-{j}.txt"))
}

/// Generates the tree for `dirs` directories and `files` clean files in `dir` (created;
/// it must not exist yet), timing it.
pub fn generate(dir: &Path, dirs: u64, files: u64) -> io::Result<Tree> {
    let start = Instant::now();
    eprintln!(
        "moat-bench: generating a tree of {dirs} directories and {files} clean files in {}...",
        dir.display()
    );
    fs::create_dir(dir)?;
    // Everything must be reachable by the unprivileged prober, whatever the umask.
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
    for i in 1..=dirs {
        // Parents come first in heap order, so a plain mkdir always finds its parent.
        fs::create_dir(dir.join(node_rel(i)))?;
        if i % 10_000 == 0 && super::daemon::interrupted() {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "interrupted"));
        }
    }
    let mut rng = Rng::new(0x6d6f_6174_7761_7463); // "moatwatc"
    let clean_files: Vec<PathBuf> = (0..files)
        .map(|j| dir.join(clean_file_rel(j, files, dirs)))
        .collect();
    for (j, f) in clean_files.iter().enumerate() {
        fs::write(f, clean_body(&mut rng, j as u64))?;
    }
    let dirs_secs = start.elapsed().as_secs_f64();
    let probes = choose_probes(dir, dirs)?;
    write_probe_files(dir, &probes)?;
    Ok(Tree {
        dir: dir.to_path_buf(),
        dirs,
        depth: node_rel(dirs).components().count(),
        probes,
        clean_files,
        generation_secs: dirs_secs,
        probe_secs: start.elapsed().as_secs_f64() - dirs_secs,
    })
}

/// The first line of a cached tree's marker file.
fn marker_header(dirs: u64) -> String {
    format!("moat-bench watch tree v1: {dirs} directories, fan-out {FANOUT}")
}

/// The marker file of a finished tree: header, then one `probe NAME REL` line per probe.
fn marker_text(dirs: u64, probes: &[Probe]) -> String {
    let mut t = marker_header(dirs);
    t.push('\n');
    for p in probes {
        t.push_str(&format!("probe\t{}\t{}\n", p.name, p.rel.display()));
    }
    t
}

/// The probes of a marker file, or None when it is not a finished tree of `dirs`.
fn parse_marker(text: &str, dirs: u64) -> Option<Vec<Probe>> {
    let mut lines = text.lines();
    if lines.next()? != marker_header(dirs) {
        return None;
    }
    let probes: Vec<Probe> = lines
        .map(|l| {
            let mut f = l.split('\t');
            (f.next() == Some("probe")).then_some(())?;
            let name = f.next()?.to_string();
            let rel = PathBuf::from(f.next()?);
            let depth = rel.components().count();
            Some(Probe { name, rel, depth })
        })
        .collect::<Option<_>>()?;
    (!probes.is_empty()).then_some(probes)
}

/// A tree of `dirs` directories (no clean files) at `root/tree-DIRS` on a filesystem kept
/// between runs (the ext4 image): reused when `root/tree-DIRS.done` says it is complete,
/// else (re)generated, synced, and the marker written last. Returns the tree and, when it
/// was generated, the seconds that took (mkdir + probe walks + sync).
pub fn ensure_cached(root: &Path, dirs: u64) -> io::Result<(Tree, Option<f64>)> {
    let dir = root.join(format!("tree-{dirs}"));
    let marker = root.join(format!("tree-{dirs}.done"));
    let tree = |probes: Vec<Probe>, gen: f64, walk: f64| Tree {
        dir: dir.clone(),
        dirs,
        depth: node_rel(dirs).components().count(),
        probes,
        clean_files: Vec::new(),
        generation_secs: gen,
        probe_secs: walk,
    };
    if let Some(probes) = fs::read_to_string(&marker)
        .ok()
        .and_then(|t| parse_marker(&t, dirs))
    {
        if probes
            .iter()
            .all(|p| dir.join(&p.rel).join(PROBE_FILE).is_file())
        {
            return Ok((tree(probes, 0.0, 0.0), None));
        }
    }
    let start = Instant::now();
    let _ = fs::remove_file(&marker);
    if dir.exists() {
        eprintln!(
            "moat-bench: {} is incomplete (no marker), removing it...",
            dir.display()
        );
        fs::remove_dir_all(&dir)?;
    }
    let t = generate(&dir, dirs, 0)?;
    // SAFETY: plain syscall; the tree must be on disk before it counts as cached.
    unsafe { libc::sync() };
    fs::write(&marker, marker_text(dirs, &t.probes))?;
    unsafe { libc::sync() };
    let secs = start.elapsed().as_secs_f64();
    Ok((tree(t.probes, t.generation_secs, t.probe_secs), Some(secs)))
}

/// Walks every directory under `dir` once (readdir + lstat of each entry, as a daemon's
/// walk would): warms the dentry and inode caches. Returns the directories seen.
pub fn walk_count(dir: &Path) -> io::Result<u64> {
    let mut stack = vec![dir.to_path_buf()];
    let mut n = 0;
    while let Some(d) = stack.pop() {
        n += 1;
        for e in fs::read_dir(&d)? {
            let e = e?;
            if e.file_type()?.is_dir() {
                stack.push(e.path());
            }
        }
        if n % 10_000 == 0 && super::daemon::interrupted() {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "interrupted"));
        }
    }
    Ok(n - 1)
}

/// Creates `count` small files `NAME-J.txt` (distinct contents) spread evenly over the
/// tree's `dirs` directories; returns their paths.
pub fn extra_files(
    dir: &Path,
    dirs: u64,
    name: &str,
    count: u64,
    seed: u64,
) -> io::Result<Vec<PathBuf>> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(count as usize);
    for j in 0..count {
        let node = (1 + j * dirs / count.max(1)).min(dirs);
        let f = dir.join(node_rel(node)).join(format!("{name}-{j}.txt"));
        let mut body = clean_body(&mut rng, j);
        body.splice(0..0, name.bytes());
        fs::write(&f, body)?;
        out.push(f);
    }
    Ok(out)
}

/// Creates `count` files of `bytes` bytes each (printable text, distinct per file) in
/// `dir`, named `big-J.dat`.
pub fn big_files(dir: &Path, count: u64, bytes: usize, seed: u64) -> io::Result<Vec<PathBuf>> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    for j in 0..count {
        let mut body = format!("moat-bench big clean file {j}\n").into_bytes();
        body.reserve(bytes);
        while body.len() < bytes {
            body.push(b"abcdefghijklmnopqrstuvwxyz      \n"[rng.index(33)]);
        }
        let f = dir.join(format!("big-{j}.dat"));
        fs::write(&f, body)?;
        out.push(f);
    }
    Ok(out)
}

/// 100–400 bytes of printable text, unique per file (it starts with the file's number).
fn clean_body(rng: &mut Rng, j: u64) -> Vec<u8> {
    let mut body = format!("moat-bench clean file {j}\n").into_bytes();
    let len = rng.range_usize(100, 400);
    while body.len() < len {
        body.push(b"abcdefghijklmnopqrstuvwxyz      \n"[rng.index(33)]);
    }
    body
}

/// Walks the tree (readdir order) depth-first and breadth-first and picks the probes.
fn choose_probes(dir: &Path, dirs: u64) -> io::Result<Vec<Probe>> {
    let [dfs, bfs] = walk_both(dir)?;
    let picks = [
        ("root", PathBuf::new()),
        ("walk-first", dfs.get(1).cloned().unwrap_or_default()),
        ("walk-middle", dfs[dfs.len() / 2].clone()),
        ("walk-last", dfs[dfs.len() - 1].clone()),
        ("bfs-last", bfs[bfs.len() - 1].clone()),
        // The directory created last: deepest level, and the youngest inode.
        ("last-created", node_rel(dirs)),
    ];
    let mut probes: Vec<Probe> = Vec::new();
    for (name, rel) in picks {
        if probes.iter().all(|p| p.rel != rel) {
            let depth = rel.components().count();
            probes.push(Probe {
                name: name.to_string(),
                rel,
                depth,
            });
        }
    }
    Ok(probes)
}

/// Every directory under `dir` (relative paths, `dir` itself first) in the order a
/// queue-based readdir walk visits them (breadth first), with each one's subdirectories as
/// indices into that list, in readdir order. One pass over the tree serves both orders.
fn read_tree(dir: &Path) -> io::Result<(Vec<PathBuf>, Vec<Vec<u32>>)> {
    let mut paths = vec![PathBuf::new()];
    let mut children: Vec<Vec<u32>> = Vec::new();
    let mut next = 0;
    while next < paths.len() {
        let mut kids = Vec::new();
        for entry in fs::read_dir(dir.join(&paths[next]))? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                kids.push(paths.len() as u32);
                let rel = paths[next].join(entry.file_name());
                paths.push(rel);
            }
        }
        children.push(kids);
        next += 1;
    }
    Ok((paths, children))
}

/// `[depth-first, breadth-first]`: every directory under `dir` (relative paths, `dir`
/// itself first) in the order a recursive readdir walk, and a queue-based one, visit them.
fn walk_both(dir: &Path) -> io::Result<[Vec<PathBuf>; 2]> {
    let (paths, children) = read_tree(dir)?;
    let mut dfs = Vec::with_capacity(paths.len());
    let mut stack = vec![0u32];
    while let Some(i) = stack.pop() {
        dfs.push(paths[i as usize].clone());
        // A stack pops last-in first: push in reverse to visit in readdir order.
        stack.extend(children[i as usize].iter().rev());
    }
    Ok([dfs, paths])
}

/// Writes the infected probe file into every probe directory.
fn write_probe_files(dir: &Path, probes: &[Probe]) -> io::Result<()> {
    let marker = hex::decode(MARKER_HEX).expect("valid hex");
    for p in probes {
        let mut body = b"moat-bench probe file: ".to_vec();
        body.extend_from_slice(&marker);
        body.push(b'\n');
        fs::write(dir.join(&p.rel).join(PROBE_FILE), body)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    #[test]
    fn heap_layout_names_nodes() {
        assert_eq!(node_rel(0), PathBuf::new());
        assert_eq!(node_rel(1), PathBuf::from("d0"));
        assert_eq!(node_rel(10), PathBuf::from("d9"));
        assert_eq!(node_rel(11), PathBuf::from("d0/d0"));
        assert_eq!(node_rel(100_000).components().count(), 5);
        assert_eq!(node_rel(10_000).components().count(), 4);
    }

    #[test]
    fn clean_files_stay_inside_the_tree() {
        for j in [0, 1, 999, 1999] {
            let rel = clean_file_rel(j, 2000, 100);
            assert!(rel.components().count() >= 2, "{rel:?}");
        }
    }

    /// The orders derived from one pass equal those of a recursive and a queue walk.
    #[test]
    fn one_pass_gives_both_walk_orders() {
        let dir = std::env::temp_dir().join(format!("moat-bench-walk-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir(&dir).unwrap();
        for i in 1..=150 {
            fs::create_dir(dir.join(node_rel(i))).unwrap();
        }
        fn rec(dir: &Path, rel: PathBuf, out: &mut Vec<PathBuf>) {
            let kids: Vec<PathBuf> = fs::read_dir(dir.join(&rel))
                .unwrap()
                .map(|e| rel.join(e.unwrap().file_name()))
                .collect();
            out.push(rel);
            for k in kids {
                rec(dir, k, out);
            }
        }
        let mut dfs = Vec::new();
        rec(&dir, PathBuf::new(), &mut dfs);
        let mut bfs = Vec::new();
        let mut q = VecDeque::from([PathBuf::new()]);
        while let Some(rel) = q.pop_front() {
            for e in fs::read_dir(dir.join(&rel)).unwrap() {
                q.push_back(rel.join(e.unwrap().file_name()));
            }
            bfs.push(rel);
        }
        let [d, b] = walk_both(&dir).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(d.len(), 151);
        assert_eq!(d, dfs);
        assert_eq!(b, bfs);
    }

    #[test]
    fn cache_markers_round_trip() {
        let probes = vec![
            Probe {
                name: "root".into(),
                rel: PathBuf::new(),
                depth: 0,
            },
            Probe {
                name: "last-created".into(),
                rel: PathBuf::from("d9/d9"),
                depth: 2,
            },
        ];
        let text = marker_text(110, &probes);
        let back = parse_marker(&text, 110).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[1].rel, PathBuf::from("d9/d9"));
        assert_eq!(back[1].depth, 2);
        assert!(parse_marker(&text, 111).is_none());
        assert!(parse_marker("garbage", 110).is_none());
        assert!(parse_marker(&marker_header(110), 110).is_none());
    }

    #[test]
    fn marker_hex_decodes_to_the_marker() {
        let m = hex::decode(MARKER_HEX).unwrap();
        assert_eq!(m.len(), 16);
        assert!(m.starts_with(b"MOAT-"));
    }
}
