//! What happens after a detection, from the command line: `moat watch`'s `--move`,
//! `--copy`, `--remove`, `--detections-log` and the VirusEvent bounds (set up here, run by
//! moat-react), and `moat quarantine list|restore|delete`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use moat_config::Config;
use moat_react::detections::DetectionLogSettings;
use moat_react::quarantine::Quarantine;
use moat_react::virus_event::VirusEvent;
use moat_react::{FileAction, ReactSettings, Reactions};

/// Where `moat quarantine` looks unless told (`--dir`).
pub const DEFAULT_QUARANTINE: &str = "/var/lib/moat/quarantine";

/// `moat watch`'s flags for detections (clamonacc's `--move`, `--copy`, `--remove`).
#[derive(Args, Debug)]
pub struct ReactArgs {
    /// Move infected files into DIR after the verdict, each beside a JSON sidecar (original
    /// path, owner, mode, times, signature, accessor). DIR must be owned by root with mode
    /// 0700 (created so when missing); see `moat quarantine`.
    #[arg(long = "move", value_name = "DIR", conflicts_with_all = ["copy", "remove"])]
    move_to: Option<PathBuf>,
    /// Copy infected files into DIR (as --move, the original stays).
    #[arg(long, value_name = "DIR", conflicts_with = "remove")]
    copy: Option<PathBuf>,
    /// Remove infected files after the verdict. Be careful!
    #[arg(long)]
    remove: bool,
    /// Append one JSON line per detection to FILE, deduplicated and rate-limited
    /// (MoatDetectionLog).
    #[arg(long, value_name = "FILE")]
    detections_log: Option<PathBuf>,
    /// VirusEvent commands running at once, at most; detections meanwhile run none (counted).
    #[arg(long, value_name = "N", default_value_t = VirusEvent::DEFAULT_MAX_RUNNING)]
    virus_event_max: usize,
    /// VirusEvent commands still running after this are killed (with their process group).
    #[arg(long, value_name = "DURATION", value_parser = moat_config::parse_duration, default_value = "30s")]
    virus_event_timeout: Duration,
}

/// Starts the reaction thread for `moat watch`, or `None` when nothing is asked.
pub fn start(args: &ReactArgs, c: &Config) -> Result<Option<Arc<Reactions>>, String> {
    let open = |dir: &PathBuf| Quarantine::open(dir, true).map_err(|e| e.to_string());
    let action = match (&args.move_to, &args.copy, args.remove) {
        (Some(dir), _, _) => Some(FileAction::Move(open(dir)?)),
        (_, Some(dir), _) => Some(FileAction::Copy(open(dir)?)),
        (_, _, true) => Some(FileAction::Remove),
        _ => None,
    };
    let log = args
        .detections_log
        .clone()
        .or_else(|| c.moat_detection_log.clone());
    let settings = ReactSettings {
        action,
        virus_event: c
            .virus_event
            .as_deref()
            .map(|cmd| VirusEvent::new(cmd, args.virus_event_max, args.virus_event_timeout)),
        detections_log: log.map(DetectionLogSettings::new),
    };
    if settings.is_empty() {
        return Ok(None);
    }
    let described = describe(&settings);
    let reactions = Reactions::start(settings).map_err(|e| format!("detections log: {e}"))?;
    tracing::info!("after a detection: {described}");
    Ok(Some(reactions))
}

fn describe(s: &ReactSettings) -> String {
    let mut parts = Vec::new();
    match &s.action {
        Some(FileAction::Move(q)) => parts.push(format!("move to {}", q.path().display())),
        Some(FileAction::Copy(q)) => parts.push(format!("copy to {}", q.path().display())),
        Some(FileAction::Remove) => parts.push("remove".into()),
        None => {}
    }
    if s.virus_event.is_some() {
        parts.push("VirusEvent".into());
    }
    if let Some(l) = &s.detections_log {
        parts.push(format!("record in {}", l.path.display()));
    }
    parts.join(", ")
}

/// Manage the quarantine directory of `moat watch --move/--copy` (root only).
#[derive(Args, Debug)]
pub struct QuarantineArgs {
    #[command(subcommand)]
    command: QuarantineCommand,
    /// The quarantine directory.
    #[arg(long, global = true, value_name = "DIR", default_value = DEFAULT_QUARANTINE)]
    dir: PathBuf,
}

#[derive(Subcommand, Debug)]
enum QuarantineCommand {
    /// List the entries: ID, detection time, signature, owner, mode, original path.
    List {
        /// One JSON sidecar per line instead.
        #[arg(long)]
        json: bool,
    },
    /// Put entry ID back at its original path with its owner, mode and times (never over
    /// an existing file, never through a symlink).
    Restore {
        /// The entry's ID, as `list` prints it.
        id: String,
    },
    /// Delete entry ID for good.
    Delete {
        /// The entry's ID, as `list` prints it.
        id: String,
    },
}

/// Runs `moat quarantine`; returns the exit status (0 done, 2 error).
pub fn run_quarantine(args: QuarantineArgs) -> u8 {
    match quarantine(&args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("ERROR: {e}");
            2
        }
    }
}

fn quarantine(args: &QuarantineArgs) -> Result<(), String> {
    // SAFETY: geteuid cannot fail and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        return Err("moat quarantine must be run as root".into());
    }
    let q = Quarantine::open(&args.dir, false).map_err(|e| e.to_string())?;
    match &args.command {
        QuarantineCommand::List { json } => {
            for entry in q.list().map_err(|e| e.to_string())? {
                let s = &entry.sidecar;
                if *json {
                    println!("{}", serde_json::to_string(s).map_err(|e| e.to_string())?);
                    continue;
                }
                println!(
                    "{}  {}  {}  {}:{} {:04o}  {}{}",
                    s.id,
                    s.detected,
                    s.signature,
                    s.uid,
                    s.gid,
                    s.mode,
                    moat_watch::verdict::escape(
                        s.original()
                            .map_err(|e| e.to_string())?
                            .as_os_str()
                            .as_encoded_bytes()
                    ),
                    if entry.present {
                        ""
                    } else {
                        "  (file missing)"
                    }
                );
            }
            Ok(())
        }
        QuarantineCommand::Restore { id } => {
            let to = q.restore(id).map_err(|e| format!("restore {id}: {e}"))?;
            println!("{id}: restored to {}", to.display());
            Ok(())
        }
        QuarantineCommand::Delete { id } => {
            q.delete(id).map_err(|e| format!("delete {id}: {e}"))?;
            println!("{id}: deleted");
            Ok(())
        }
    }
}
