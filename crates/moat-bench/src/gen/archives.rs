//! The archive-heavy corpus: the synthetic corpus packed into archives, scanned with the
//! main database.
//!
//! Corpus files are taken in path order and packed, about [`PER_ARCHIVE`] at a time, into
//! zip (deflate), tar.gz, zip (stored) and plain tar archives in turn; every fifth
//! archive is a tar.gz wrapped in a zip, so recursion is measured too. An archive holds
//! at most one file with a planted detection, so the expected result of each archive is
//! that file's detection name, reported on the archive's path as clamscan reports it.

use super::corpus::Expected;
use super::Dataset;
use std::collections::HashMap;
use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Bump when the generated corpus changes, so cached copies are rebuilt.
const ARCHIVES_VERSION: u32 = 1;
/// Files per archive (fewer when a second detection would fall into one).
const PER_ARCHIVE: usize = 32;

/// The archive kinds, in turn.
#[derive(Clone, Copy)]
enum Kind {
    ZipDeflate,
    TarGz,
    ZipStored,
    Tar,
    /// A tar.gz inside a zip.
    Nested,
}

impl Kind {
    fn of(index: usize) -> Kind {
        if index % 5 == 4 {
            return Kind::Nested;
        }
        [Kind::ZipDeflate, Kind::TarGz, Kind::ZipStored, Kind::Tar][index % 5 % 4]
    }

    fn extension(self) -> &'static str {
        match self {
            Kind::ZipDeflate | Kind::ZipStored | Kind::Nested => "zip",
            Kind::TarGz => "tar.gz",
            Kind::Tar => "tar",
        }
    }
}

/// Every regular file below `dir`, as paths relative to it, sorted.
fn files_below(dir: &Path) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).expect("below dir");
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// A tar of `members` (paths relative to `corpus`), optionally gzip-compressed.
fn tar_bytes(corpus: &Path, members: &[String], gzip: bool) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    {
        let sink: Box<dyn Write + '_> = if gzip {
            Box::new(flate2::write::GzEncoder::new(
                &mut out,
                flate2::Compression::fast(),
            ))
        } else {
            Box::new(&mut out)
        };
        let mut tar = tar::Builder::new(sink);
        for rel in members {
            tar.append_path_with_name(corpus.join(rel), rel)?;
        }
        tar.into_inner()?.flush()?;
    }
    Ok(out)
}

/// A zip of `(name, bytes)` entries, deflated or stored.
fn zip_bytes<'a>(
    entries: impl IntoIterator<Item = (&'a str, Vec<u8>)>,
    deflate: bool,
) -> io::Result<Vec<u8>> {
    use zip::write::SimpleFileOptions;
    let method = if deflate {
        zip::CompressionMethod::Deflated
    } else {
        zip::CompressionMethod::Stored
    };
    let options = SimpleFileOptions::default()
        .compression_method(method)
        .large_file(false);
    let mut zip = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
    for (name, bytes) in entries {
        zip.start_file(name, options).map_err(io::Error::other)?;
        zip.write_all(&bytes)?;
    }
    Ok(zip.finish().map_err(io::Error::other)?.into_inner())
}

/// Writes one archive of `members` and returns its bytes' length.
fn write_archive(corpus: &Path, members: &[String], kind: Kind, path: &Path) -> io::Result<u64> {
    let bytes = match kind {
        Kind::ZipDeflate | Kind::ZipStored => {
            let entries = members
                .iter()
                .map(|rel| fs::read(corpus.join(rel)).map(|b| (rel.as_str(), b)))
                .collect::<io::Result<Vec<_>>>()?;
            zip_bytes(entries, matches!(kind, Kind::ZipDeflate))?
        }
        Kind::TarGz | Kind::Tar => tar_bytes(corpus, members, matches!(kind, Kind::TarGz))?,
        Kind::Nested => {
            let inner = tar_bytes(corpus, members, true)?;
            zip_bytes([("inner.tar.gz", inner)], true)?
        }
    };
    let mut w = BufWriter::new(fs::File::create(path)?);
    w.write_all(&bytes)?;
    w.flush()?;
    Ok(bytes.len() as u64)
}

/// Returns `ds` turned into the archive dataset: the same database, `corpus_dir` holding
/// the archives (generated if needed), one expected detection per archive that holds a
/// planted file.
pub fn ensure(ds: &Dataset) -> io::Result<Dataset> {
    let root: PathBuf = ds.root.join("archives");
    let corpus_dir = root.join("corpus");
    let manifest = root.join("manifest.txt");
    let expected_path = root.join("expected.tsv");
    let want_head = format!(
        "version={ARCHIVES_VERSION}\nsource_files={}\n",
        ds.corpus_files()
    );
    let cached = fs::read_to_string(&manifest).is_ok_and(|m| m.starts_with(&want_head))
        && corpus_dir.is_dir()
        && expected_path.is_file();
    if !cached {
        let t = super::regenerate("packing the corpus into archives", &root, &corpus_dir)?;
        let planted: HashMap<&str, &str> = ds
            .expected
            .iter()
            .map(|e| (e.rel.as_str(), e.name.as_str()))
            .collect();
        let files = files_below(&ds.corpus_dir)?;
        let (mut archives, mut bytes) = (0usize, 0u64);
        let mut expected = Vec::new();
        let mut group: Vec<String> = Vec::new();
        let mut detection: Option<&str> = None;
        let mut flush = |group: &mut Vec<String>, detection: &mut Option<&str>| {
            if group.is_empty() {
                return Ok::<(), io::Error>(());
            }
            let kind = Kind::of(archives);
            let rel = format!(
                "a{:02}/archive-{archives:05}.{}",
                archives % 16,
                kind.extension()
            );
            let path = corpus_dir.join(&rel);
            fs::create_dir_all(path.parent().expect("has a parent"))?;
            bytes += write_archive(&ds.corpus_dir, group, kind, &path)?;
            if let Some(name) = detection.take() {
                expected.push(Expected {
                    rel,
                    name: name.to_string(),
                });
            }
            archives += 1;
            group.clear();
            Ok(())
        };
        for rel in files {
            let hit = planted.get(rel.as_str()).copied();
            if group.len() == PER_ARCHIVE || (hit.is_some() && detection.is_some()) {
                flush(&mut group, &mut detection)?;
            }
            if hit.is_some() {
                detection = hit;
            }
            group.push(rel);
        }
        flush(&mut group, &mut detection)?;
        expected.sort();
        let tsv: String = expected
            .iter()
            .map(|e| format!("{}\t{}\n", e.rel, e.name))
            .collect();
        fs::write(&expected_path, tsv)?;
        fs::write(
            &manifest,
            format!("{want_head}archives={archives}\narchive_bytes={bytes}\n"),
        )?;
        eprintln!(
            "moat-bench:   {archives} archives, {:.1} MB, in {:.1}s",
            bytes as f64 / 1e6,
            t.elapsed().as_secs_f64()
        );
    }
    let facts = super::read_manifest(&manifest)
        .ok_or_else(|| io::Error::other(format!("{}: unreadable", manifest.display())))?;
    let expected = super::read_expected(&expected_path)?;
    let mut m = ds.manifest.clone();
    // Throughput is reported over the bytes inside the archives (what both scanners
    // must inspect), as for the plain corpus; the files are the archives.
    m.insert("corpus_files".into(), facts["archives"].clone());
    m.insert("archive_bytes".into(), facts["archive_bytes"].clone());
    m.insert("planted_body".into(), expected.len().to_string());
    m.insert("planted_hash".into(), "0".into());
    Ok(Dataset {
        root: ds.root.clone(),
        db_dir: ds.db_dir.clone(),
        corpus_dir,
        empty_file: ds.empty_file.clone(),
        expected,
        manifest: m,
        generated: !cached,
        generation_secs: 0.0,
    })
}
