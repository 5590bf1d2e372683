//! The real files of this machine the first-open measurement uses, and the file list of the
//! mixed workload's reads.
//!
//! Selection is deterministic on a given machine: each source directory is listed, sorted
//! by name, filtered (regular files, not symlinks, readable by everyone, not empty) and
//! thinned to an even spread (every k-th file), so every run measures the same files.

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// One kind of real file: where it comes from and how many to take.
pub struct Kind {
    /// Label, also the subdirectory the copies go to.
    pub label: &'static str,
    /// Source directory (not descended into).
    pub dir: &'static str,
    /// Which names qualify.
    pub accept: fn(&str) -> bool,
}

fn any(_: &str) -> bool {
    true
}

fn shared_lib(n: &str) -> bool {
    n.contains(".so")
}

fn python(n: &str) -> bool {
    n.ends_with(".py")
}

fn perl(n: &str) -> bool {
    n.ends_with(".pm")
}

/// Programs, shared libraries, Python and Perl sources.
pub const KINDS: [Kind; 4] = [
    Kind {
        label: "bin",
        dir: "/usr/bin",
        accept: any,
    },
    Kind {
        label: "lib",
        dir: "/usr/lib/x86_64-linux-gnu",
        accept: shared_lib,
    },
    Kind {
        label: "py",
        dir: "/usr/lib/python3.11",
        accept: python,
    },
    Kind {
        label: "pm",
        dir: "/usr/share/perl/5.36",
        accept: perl,
    },
];

/// Share of each kind in the selection (programs and libraries matter most on access).
const SHARES: [usize; 4] = [3, 3, 1, 1];

/// A selected file and its copy.
#[derive(Clone, Debug)]
pub struct Picked {
    /// The original.
    pub source: PathBuf,
    /// Its kind's label.
    pub kind: &'static str,
    /// Size in bytes.
    pub size: u64,
}

/// Regular, world-readable, non-empty files of `dir` whose name `accept`s, sorted by name.
fn candidates(dir: &Path, accept: fn(&str) -> bool) -> io::Result<Vec<(PathBuf, u64)>> {
    let mut v = Vec::new();
    for e in fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name();
        let Some(n) = name.to_str() else { continue };
        let m = fs::symlink_metadata(e.path())?;
        if m.file_type().is_file()
            && m.permissions().mode() & 0o004 != 0
            && m.len() > 0
            && accept(n)
        {
            v.push((e.path(), m.len()));
        }
    }
    v.sort();
    Ok(v)
}

/// Every k-th of `v` so that `n` remain (all of them when there are fewer).
pub fn spread<T: Clone>(v: &[T], n: usize) -> Vec<T> {
    if v.len() <= n {
        return v.to_vec();
    }
    (0..n).map(|i| v[i * v.len() / n].clone()).collect()
}

/// About `total` files over [`KINDS`] in [`SHARES`].
pub fn select(total: usize) -> io::Result<Vec<Picked>> {
    let sum: usize = SHARES.iter().sum();
    let mut out = Vec::new();
    for (k, share) in KINDS.iter().zip(SHARES) {
        let c = candidates(Path::new(k.dir), k.accept)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", k.dir)))?;
        for (source, size) in spread(&c, total * share / sum) {
            out.push(Picked {
                source,
                kind: k.label,
                size,
            });
        }
    }
    Ok(out)
}

/// Copies `picked` into `root/<kind>/<name>` (readable by everyone); returns the copies'
/// paths, in order.
pub fn copy_into(root: &Path, picked: &[Picked]) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::with_capacity(picked.len());
    for p in picked {
        let dir = root.join(p.kind);
        fs::create_dir_all(&dir)?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))?;
        let name = p.source.file_name().expect("a file name");
        let dest = dir.join(name);
        fs::copy(&p.source, &dest)?;
        fs::set_permissions(&dest, fs::Permissions::from_mode(0o644))?;
        out.push(dest);
    }
    Ok(out)
}

/// Directories the mixed workload does not read: ClamAV's own test files (clamav-testfiles)
/// are detected by both products, which would end the workload with an error.
const NOT_READ: [&str; 1] = ["clamav-testfiles"];

/// The first `n` regular, world-readable files under `dir` (this filesystem only, not in
/// [`NOT_READ`]), in sorted depth-first order: the mixed workload's reads.
pub fn first_files(dir: &Path, n: usize) -> io::Result<Vec<PathBuf>> {
    let dev = fs::metadata(dir)?.dev();
    let mut out = Vec::new();
    walk(dir, dev, n, &mut out)?;
    Ok(out)
}

fn walk(dir: &Path, dev: u64, n: usize, out: &mut Vec<PathBuf>) -> io::Result<()> {
    if dir
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| NOT_READ.contains(&n))
    {
        return Ok(());
    }
    let Ok(rd) = fs::read_dir(dir) else {
        return Ok(());
    };
    let mut entries: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if out.len() >= n {
            return Ok(());
        }
        let Ok(m) = fs::symlink_metadata(&p) else {
            continue;
        };
        if m.dev() != dev {
            continue;
        }
        if m.is_dir() && m.permissions().mode() & 0o005 == 0o005 {
            walk(&p, dev, n, out)?;
        } else if m.file_type().is_file() && m.permissions().mode() & 0o004 != 0 {
            out.push(p);
        }
    }
    Ok(())
}

/// Directories under `dir` on its filesystem (what a per-directory watcher must mark).
pub fn count_dirs(dir: &Path) -> u64 {
    let Ok(dev) = fs::metadata(dir).map(|m| m.dev()) else {
        return 0;
    };
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        n += 1;
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            if let Ok(m) = fs::symlink_metadata(e.path()) {
                if m.is_dir() && m.dev() == dev {
                    stack.push(e.path());
                }
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_even_and_bounded() {
        let v: Vec<u32> = (0..10).collect();
        assert_eq!(spread(&v, 5), vec![0, 2, 4, 6, 8]);
        assert_eq!(spread(&v, 20), v);
        assert_eq!(spread(&v, 0), Vec::<u32>::new());
    }
}
