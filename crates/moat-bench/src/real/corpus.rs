//! The real-file corpus: this machine's own programs, libraries, Python sources and
//! documents, selected deterministically and hard-linked (or copied) into a cache directory
//! so that every run scans the same bytes.
//!
//! Selection per [`Class`]: every regular file under its roots that its filter accepts and
//! that is no larger than [`MAX_CORPUS_FILE`], ordered by the MD5 of its path (a fixed,
//! well-spread order that does not favour one end of the alphabet), taken until the class's
//! byte budget is reached. The list is recorded in `manifest.tsv` (`class<TAB>size<TAB>
//! source path`) and the cache is reused as long as that file exists and every listed file
//! is still there with its size; `--force` re-selects.
//!
//! The largest files (programs of /usr/bin, libraries of /usr/lib) are chosen separately,
//! by size, and scanned in place one by one ([`largest`]).

use md5::{Digest, Md5};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Files above this size stay out of the corpus: they are timed alone ([`largest`]).
pub const MAX_CORPUS_FILE: u64 = 16 << 20;

/// One kind of file of the corpus.
pub struct Class {
    /// Directory name in the cache and label in tables.
    pub name: &'static str,
    /// Where its files are looked for (recursively, symbolic links not followed).
    pub roots: &'static [&'static str],
    /// Byte budget.
    pub budget: u64,
    /// Which files belong to it (by path and first bytes).
    pub accept: fn(&Path, &[u8]) -> bool,
}

fn is_elf(_: &Path, head: &[u8]) -> bool {
    head.starts_with(b"\x7fELF")
}

fn is_shared_library(p: &Path, head: &[u8]) -> bool {
    is_elf(p, head)
        && p.file_name()
            .is_some_and(|n| n.to_string_lossy().contains(".so"))
}

fn is_python(p: &Path, _: &[u8]) -> bool {
    p.extension().is_some_and(|e| e == "py")
}

fn is_document(p: &Path, _: &[u8]) -> bool {
    let name = p
        .file_name()
        .map_or(String::new(), |n| n.to_string_lossy().into_owned());
    ![".png", ".jpg", ".gif", ".svg"]
        .iter()
        .any(|ext| name.ends_with(ext))
}

/// The corpus's classes, in order; about 200 MB in all.
pub const CLASSES: [Class; 4] = [
    Class {
        name: "programs",
        roots: &["/usr/bin", "/usr/sbin"],
        budget: 80_000_000,
        accept: is_elf,
    },
    Class {
        name: "libraries",
        roots: &["/usr/lib"],
        budget: 80_000_000,
        accept: is_shared_library,
    },
    Class {
        name: "python",
        roots: &["/usr/lib/python3", "/usr/lib/python3.11"],
        budget: 25_000_000,
        accept: is_python,
    },
    Class {
        name: "documents",
        roots: &["/usr/share/doc", "/usr/share/man", "/usr/share/info"],
        budget: 15_000_000,
        accept: is_document,
    },
];

/// One selected file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its class's name.
    pub class: String,
    /// Size in bytes at selection.
    pub size: u64,
    /// Where it came from.
    pub source: PathBuf,
}

/// Every regular file under `roots`, sorted, without following symbolic links; unreadable
/// directories are skipped.
pub(crate) fn walk(roots: &[&str]) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = roots.iter().map(PathBuf::from).collect();
    while let Some(p) = stack.pop() {
        let Ok(meta) = fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            if let Ok(rd) = fs::read_dir(&p) {
                stack.extend(rd.filter_map(|e| e.ok().map(|e| e.path())));
            }
        } else if meta.is_file() && meta.len() > 0 {
            out.push((p, meta.len()));
        }
    }
    out.sort();
    out.dedup();
    out
}

fn head(p: &Path) -> Vec<u8> {
    use std::io::Read;
    let mut buf = vec![0u8; 64];
    let n = fs::File::open(p)
        .and_then(|mut f| f.read(&mut buf))
        .unwrap_or(0);
    buf.truncate(n);
    buf
}

pub(crate) fn path_key(p: &Path) -> [u8; 16] {
    Md5::digest(p.as_os_str().as_encoded_bytes()).into()
}

/// Selects the corpus (see the module's description); no file twice.
pub fn select() -> Vec<Entry> {
    let mut taken = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for class in &CLASSES {
        let mut files: Vec<(PathBuf, u64)> = walk(class.roots)
            .into_iter()
            .filter(|(_, size)| *size <= MAX_CORPUS_FILE)
            .collect();
        files.sort_by_cached_key(|(p, _)| path_key(p));
        let mut used = 0;
        for (p, size) in files {
            if used >= class.budget {
                break;
            }
            if taken.contains(&p) || !(class.accept)(&p, &head(&p)) {
                continue;
            }
            used += size;
            taken.insert(p.clone());
            out.push(Entry {
                class: class.name.to_string(),
                size,
                source: p,
            });
        }
    }
    out
}

/// Files above this size are not scanned by either scanner (clamscan's and moat's default
/// `--max-filesize`, 100 MiB): timing them would time nothing.
pub const MAX_SCANNED_FILE: u64 = 100 << 20;

/// The `n` largest files under `roots` accepted by `accept` that are still scanned
/// ([`MAX_SCANNED_FILE`]), largest first (ties by path).
pub fn largest(roots: &[&str], n: usize, accept: fn(&Path, &[u8]) -> bool) -> Vec<(PathBuf, u64)> {
    let mut files: Vec<(PathBuf, u64)> = walk(roots)
        .into_iter()
        .filter(|(_, size)| *size <= MAX_SCANNED_FILE)
        .collect();
    files.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    files
        .into_iter()
        .filter(|(p, _)| accept(p, &head(p)))
        .take(n)
        .collect()
}

/// The largest programs and libraries: `n` of each.
pub fn largest_binaries(n: usize) -> Vec<(PathBuf, u64)> {
    let mut v = largest(&["/usr/bin"], n, is_elf);
    v.extend(largest(&["/usr/lib"], n, is_shared_library));
    v
}

/// The cached corpus: its directory and its list.
pub struct Corpus {
    /// The directory scanned (`<cache>/files`).
    pub dir: PathBuf,
    /// The files, in selection order.
    pub entries: Vec<Entry>,
}

impl Corpus {
    /// Total bytes.
    pub fn bytes(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }
}

fn manifest_line(e: &Entry) -> String {
    format!("{}\t{}\t{}\n", e.class, e.size, e.source.display())
}

fn read_manifest(path: &Path) -> Option<Vec<Entry>> {
    let text = fs::read_to_string(path).ok()?;
    text.lines()
        .map(|l| {
            let mut f = l.splitn(3, '\t');
            Some(Entry {
                class: f.next()?.to_string(),
                size: f.next()?.parse().ok()?,
                source: PathBuf::from(f.next()?),
            })
        })
        .collect()
}

/// Where an entry lives in the cache: `<files>/<class>/<index>-<file name>`.
fn cached_path(files: &Path, i: usize, e: &Entry) -> PathBuf {
    let name = e
        .source
        .file_name()
        .map_or("file".into(), |n| n.to_string_lossy().into_owned());
    files.join(&e.class).join(format!("{i:05}-{name}"))
}

/// Whether the cache holds every listed file with its listed size.
fn cache_complete(files: &Path, entries: &[Entry]) -> bool {
    entries.iter().enumerate().all(|(i, e)| {
        fs::metadata(cached_path(files, i, e)).is_ok_and(|m| m.is_file() && m.size() == e.size)
    })
}

/// The corpus in `<cache>`: reused when complete, else selected and linked anew.
pub fn ensure(cache: &Path, force: bool) -> io::Result<Corpus> {
    let files = cache.join("files");
    let manifest = cache.join("manifest.tsv");
    if !force {
        if let Some(entries) = read_manifest(&manifest) {
            if !entries.is_empty() && cache_complete(&files, &entries) {
                return Ok(Corpus {
                    dir: files,
                    entries,
                });
            }
        }
    }
    eprintln!(
        "moat-bench: selecting the real-file corpus into {}",
        cache.display()
    );
    let _ = fs::remove_dir_all(&files);
    let _ = fs::remove_file(&manifest);
    let entries = select();
    for (i, e) in entries.iter().enumerate() {
        let dst = cached_path(&files, i, e);
        fs::create_dir_all(dst.parent().expect("has a parent"))?;
        // A hard link keeps the bytes even when a package update replaces the file (a new
        // inode); across filesystems, a copy.
        if fs::hard_link(&e.source, &dst).is_err() {
            fs::copy(&e.source, &dst)?;
        }
    }
    let mut out = fs::File::create(cache.join("manifest.tsv.part"))?;
    for e in &entries {
        out.write_all(manifest_line(e).as_bytes())?;
    }
    out.sync_all()?;
    fs::rename(cache.join("manifest.tsv.part"), &manifest)?;
    Ok(Corpus {
        dir: files,
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_round_trips() {
        let e = Entry {
            class: "programs".into(),
            size: 42,
            source: PathBuf::from("/usr/bin/a b"),
        };
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.tsv");
        fs::write(&p, manifest_line(&e) + &manifest_line(&e)).unwrap();
        assert_eq!(read_manifest(&p).unwrap(), vec![e.clone(), e]);
    }

    #[test]
    fn the_selection_is_the_same_twice() {
        // Reads this machine's /usr: the same files, in the same order, on every call.
        let a = select();
        assert_eq!(a, select());
        assert!(a.iter().all(|e| e.size <= MAX_CORPUS_FILE));
    }
}
