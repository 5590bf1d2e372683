//! `moat`: on-access and on-demand malware scanning for Linux, compatible with ClamAV.
//!
//! This binary is thin: argument parsing and process setup. The work happens in
//! the subcommand modules ([`scan`], [`watch`], [`serve`]) on top of `moat-sigs` and `moat-engine`.

mod database;
mod react;
mod scan;
mod serve;
mod size;
mod watch;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// moat: malware scanning for Linux, compatible with ClamAV's databases and tools.
#[derive(Parser)]
#[command(name = "moat", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Scan files and directories on demand (a drop-in for clamscan).
    Scan(scan::ScanArgs),
    /// Protect directories on access: block or report infected files as they are opened.
    Watch(watch::WatchArgs),
    /// Serve clamd's protocol on LocalSocket/TCPSocket: a drop-in for clamd.
    Serve(serve::ServeArgs),
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
