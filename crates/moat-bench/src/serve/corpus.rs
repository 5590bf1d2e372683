//! The files `moat-bench serve` scans: sent whole by INSTREAM, passed open by FILDES.

use std::path::{Path, PathBuf};

use crate::real::corpus::{path_key, walk};

/// What the one-signature database detects (every 20th generated file carries it).
pub const MARKER: &[u8] = b"MOAT-BENCH";

/// How many real files are taken.
const REAL_FILES: usize = 400;
/// Their size range: the small files mail and web clients send most.
const REAL_SIZES: std::ops::RangeInclusive<u64> = 512..=(64 << 10);
/// Where they come from: documents and text of /usr/share/doc, and /usr/lib's mix of
/// libraries, Python, Perl, data and configuration.
const REAL_ROOTS: [&str; 2] = ["/usr/share/doc", "/usr/lib"];

/// A corpus: the files, and each one's INSTREAM request.
pub struct Corpus {
    /// The files (FILDES opens them).
    pub files: Vec<PathBuf>,
    /// One whole INSTREAM request per file.
    pub streams: Vec<Vec<u8>>,
    /// Total bytes of the files.
    pub bytes: u64,
    /// What it is, for the table and the JSON.
    pub describe: String,
}

impl Corpus {
    fn of(files: Vec<PathBuf>, describe: String) -> Result<Corpus, String> {
        let mut streams = Vec::with_capacity(files.len());
        let mut bytes = 0;
        for f in &files {
            let data = std::fs::read(f).map_err(|e| format!("{}: {e}", f.display()))?;
            bytes += data.len() as u64;
            streams.push(super::instream(&data));
        }
        Ok(Corpus {
            files,
            streams,
            bytes,
            describe,
        })
    }
}

/// [`REAL_FILES`] regular files of [`REAL_ROOTS`] sized in [`REAL_SIZES`], ordered by the
/// MD5 of their path (the same selection every run on this machine, spread over the
/// tree rather than one end of the alphabet).
pub fn real() -> Result<Corpus, String> {
    let mut files: Vec<PathBuf> = walk(&REAL_ROOTS)
        .into_iter()
        .filter(|(_, size)| REAL_SIZES.contains(size))
        .map(|(p, _)| p)
        .collect();
    files.sort_by_cached_key(|p| path_key(p));
    files.retain(|p| std::fs::File::open(p).is_ok());
    files.truncate(REAL_FILES);
    if files.is_empty() {
        return Err(format!(
            "no file of {REAL_SIZES:?} bytes under {REAL_ROOTS:?}"
        ));
    }
    Corpus::of(
        files,
        format!(
            "real: {REAL_FILES} files of {}-{} bytes from {} (MD5-of-path order)",
            REAL_SIZES.start(),
            REAL_SIZES.end(),
            REAL_ROOTS.join(" and ")
        ),
    )
}

/// 200 generated text files of 4-64 KiB in `dir`, every 20th carrying [`MARKER`].
pub fn generated(dir: &Path) -> Result<Corpus, String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let mut files = Vec::new();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..200 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = 4096 + (seed % (60 << 10)) as usize;
        let mut body: Vec<u8> = (0..len)
            .map(|j| b"abcdefgh ijklmnop\n"[(j * 7 + i) % 18])
            .collect();
        if i % 20 == 0 {
            body.extend_from_slice(MARKER);
        }
        let p = dir.join(format!("f{i}.txt"));
        std::fs::write(&p, &body).map_err(|e| e.to_string())?;
        files.push(p);
    }
    Corpus::of(files, "generated: 200 text files of 4-64 KiB".to_owned())
}
