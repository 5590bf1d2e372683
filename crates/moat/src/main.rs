//! `moat`: on-access and on-demand malware scanning for Linux, compatible with ClamAV.
//!
//! This binary is thin: argument parsing and process setup. The work happens in
//! the subcommand modules ([`scan`], [`watch`], [`serve`]) on top of `moat-sigs` and `moat-engine`.

mod database;
mod man;
mod react;
mod scan;
mod serve;
mod size;
mod status;
mod watch;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// moat: malware scanning for Linux, compatible with ClamAV's databases and tools.
#[derive(Parser)]
#[command(name = "moat", version, about, after_long_help = man::help(man::MOAT))]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Scan files and directories on demand (a drop-in for clamscan).
    Scan(scan::ScanArgs),
    /// Protect directories on access: block or report infected files as they are opened.
    #[command(after_long_help = man::help(man::WATCH))]
    Watch(watch::WatchArgs),
    /// Serve clamd's protocol on LocalSocket/TCPSocket: a drop-in for clamd.
    #[command(after_long_help = man::help(man::SERVE))]
    Serve(serve::ServeArgs),
    /// Ask the running `moat watch` whether it is protecting (root only). Exit status: 0
    /// protecting, 1 not protecting, 2 no answer (not running, refused, not root).
    Status(status::StatusArgs),
    /// Write the manual pages (moat.1 and one per subcommand) into DIR (for packaging).
    #[command(hide = true)]
    Man {
        /// Where to write them.
        dir: std::path::PathBuf,
    },
    /// Manage the quarantine of `moat watch --move/--copy`: list, restore, delete (root only).
    Quarantine(react::QuarantineArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Scan(args) => {
            init_scan_logging();
            ExitCode::from(scan::run(args))
        }
        // The daemon sets up its own logging from clamd.conf.
        Command::Watch(args) => ExitCode::from(watch::run(args)),
        Command::Serve(args) => ExitCode::from(serve::run(args)),
        Command::Status(args) => ExitCode::from(status::run(args)),
        Command::Man { dir } => match man::write_pages(Cli::command(), &dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ERROR: {}: {e}", dir.display());
                ExitCode::from(2)
            }
        },
        Command::Quarantine(args) => ExitCode::from(react::run_quarantine(args)),
    }
}

/// For `moat scan`: diagnostics go to stderr (stdout carries clamscan-compatible
/// results); `RUST_LOG` selects the level, warnings by default.
fn init_scan_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
}
