//! Choosing and loading the signature database for a command.

use std::path::{Path, PathBuf};

use moat_sigs::{Database, LoadError, LoadOptions};

/// ClamAV's default DatabaseDirectory.
pub const DEFAULT_DATABASE_DIR: &str = "/var/lib/clamav";

/// clamd.conf's loading keys (`DetectPUA`, `BytecodeUnsigned`) as clamscan's options, for
/// `moat watch` and `moat serve`.
pub fn load_options(c: &moat_config::Config) -> LoadOptions {
    LoadOptions {
        detect_pua: c.detect_pua,
        bytecode_unsigned: c.bytecode_unsigned,
    }
}

/// Loads the databases at `paths`, or, when none are given, `default_dir` (the
/// DatabaseDirectory) if it holds databases and the built-in test set otherwise (with a
/// warning that says how to get real signatures). Skipped content is reported once per
/// file and reason. `options` are clamscan's loading options (`--detect-pua`,
/// `--bytecode-unsigned`).
pub fn load(
    paths: &[PathBuf],
    default_dir: &Path,
    options: LoadOptions,
) -> Result<Database, LoadError> {
    let db = if !paths.is_empty() {
        Database::load_with(paths, options)?
    } else if holds_databases(default_dir) {
        Database::load_with(&[default_dir], options)?
    } else {
        eprintln!(
            "WARNING: no signature database in {}: using moat's built-in \
             test signatures (EICAR, ClamAV's clam.exe) only. Run freshclam to install \
             ClamAV's databases, or pass -d DIR_OR_FILE.",
            default_dir.display()
        );
        moat_sigs::builtin::database()
    };
    report(&db);
    Ok(db)
}

fn holds_databases(dir: &Path) -> bool {
    // Loading decides what a database is; here any entry but freshclam's state counts.
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.contains('.') && !name.starts_with('.') && name != "freshclam.dat"
        })
    })
}

fn report(db: &Database) {
    for skipped in &db.report.skipped {
        eprintln!(
            "WARNING: {}: {} signature(s) not loaded: {}",
            skipped.path.display(),
            skipped.signatures,
            skipped.reason
        );
    }
    if db.report.flevel_skipped > 0 {
        tracing::debug!(
            count = db.report.flevel_skipped,
            "signatures skipped by their functionality level"
        );
    }
    if db.report.ignored > 0 {
        tracing::debug!(count = db.report.ignored, "signatures disabled by .ign2");
    }
    if db.report.logical_skipped > 0 {
        tracing::debug!(
            count = db.report.logical_skipped,
            "logical signatures skipped as clamscan skips them (unknown attribute or CL_TYPE)"
        );
    }
    if !db.report.unsigned_bytecode.is_empty() {
        // clamscan's own warning, once per load.
        eprintln!(
            "WARNING: {} unsigned bytecode file(s) not loaded (as clamscan: pass --bytecode-unsigned to load them)",
            db.report.unsigned_bytecode.len()
        );
    }
    for path in &db.report.pua_files {
        tracing::debug!(path = %path.display(), "PUA database not loaded (no --detect-pua)");
    }
    for old in &db.report.superseded {
        tracing::info!(path = %old.path.display(), "database not loaded: {}", old.reason);
    }
    for path in &db.report.foreign_files {
        tracing::debug!(path = %path.display(), "not a database file, ignored");
    }
}

/// The highest version among the official containers (.cvd/.cld) at `paths` (files, or
/// directories one level deep) and its build time (seconds since the epoch): what clamd's
/// VERSION and `moat status` show.
pub fn official_version(paths: &[&Path]) -> Option<(u32, i64)> {
    let mut best: Option<(u32, i64)> = None;
    for p in paths {
        let files: Vec<PathBuf> = if p.is_dir() {
            std::fs::read_dir(p)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .collect()
        } else {
            vec![p.to_path_buf()]
        };
        for f in files {
            let ext = f.extension().and_then(|e| e.to_str()).unwrap_or("");
            if ext != "cvd" && ext != "cld" {
                continue;
            }
            if let Some((v, t)) = header_version(&f) {
                if best.is_none_or(|(bv, _)| v > bv) {
                    best = Some((v, t));
                }
            }
        }
    }
    best
}

/// `ClamAV-VDB:time:version:signatures:flevel:md5:dsig:builder:stime`.
fn header_version(path: &Path) -> Option<(u32, i64)> {
    use std::io::Read;
    let mut head = [0u8; 512];
    std::fs::File::open(path).ok()?.read_exact(&mut head).ok()?;
    let text = String::from_utf8_lossy(&head);
    let fields: Vec<&str> = text.split(':').collect();
    if fields.first() != Some(&"ClamAV-VDB") {
        return None;
    }
    let version = fields.get(2)?.trim().parse().ok()?;
    let stime = fields
        .get(8)?
        .trim_end_matches([' ', '\0'])
        .trim()
        .parse()
        .ok()?;
    Some((version, stime))
}

/// ctime(3) without its newline: `Mon Dec  7 13:35:09 2026`, local time.
pub fn ctime(t: i64) -> String {
    let t = t as libc::time_t;
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: t and tm are valid for the call.
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return String::new();
    }
    let mut buf = [0u8; 64];
    let fmt = c"%a %b %e %H:%M:%S %Y";
    // SAFETY: buf is writable for its length; fmt is NUL-terminated.
    let n = unsafe { libc::strftime(buf.as_mut_ptr().cast(), buf.len(), fmt.as_ptr(), &tm) };
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// `scanner` with the version and build time of the official containers it was loaded
/// from (`paths`, else `default_dir`), when there are any (for `moat status`).
pub fn with_official_version(
    scanner: moat_guard::EngineScanner,
    paths: &[PathBuf],
    default_dir: &Path,
) -> moat_guard::EngineScanner {
    let dirs: Vec<&Path> = if paths.is_empty() {
        vec![default_dir]
    } else {
        paths.iter().map(PathBuf::as_path).collect()
    };
    match official_version(&dirs) {
        Some((version, built)) => scanner.with_version(
            version,
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(built.max(0) as u64),
        ),
        None => scanner,
    }
}
