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
