//! `moat serve`: a clamd-compatible server (moat-clamd) in the foreground.
//!
//! Reads clamd.conf (`-c`, default /etc/clamav/clamd.conf when it exists), sets up logging
//! (LogFile, LogTime, LogVerbose), loads the database (DatabaseDirectory, or `-d`), takes the
//! sockets systemd passed (socket activation) or binds LocalSocket / TCPSocket, tells systemd
//! READY=1 (Type=notify) and serves until SHUTDOWN, SIGTERM or SIGINT. RELOAD and SIGUSR2
//! reload the database without stopping scans. Exit status: 0 after a clean stop, 2 when it
//! cannot start.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use moat_clamd::{Database, Event, Server, Settings};
use moat_config::Config;

/// Serve clamd's protocol (a drop-in for clamd) on LocalSocket and/or TCPSocket.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// clamd.conf to read [default: /etc/clamav/clamd.conf when it exists].
    #[arg(short = 'c', long = "config-file", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Signature database file or directory (replaces DatabaseDirectory).
    #[arg(short = 'd', long = "database", value_name = "FILE|DIR")]
    database: Vec<PathBuf>,
    /// Accepted for clamd compatibility: moat serve always runs in the foreground.
    #[arg(short = 'F', long)]
    foreground: bool,
}

/// Runs `moat serve`; returns the exit status.
pub fn run(args: ServeArgs) -> u8 {
    let config = match crate::watch::read_config(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ERROR: {e}");
            return 2;
        }
    };
    // Held until exit: dropping the guards flushes the log writer threads.
    let _logs = match crate::watch::init_logging(&config) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("ERROR: {e}");
            return 2;
        }
    };
    for w in config.warnings() {
        tracing::warn!("{w}");
    }
    match serve(args, config) {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!("{e}");
            2
        }
    }
}

fn serve(args: ServeArgs, config: Config) -> Result<(), String> {
    let settings = Settings::from_config(&config);
    // Signals are caught before anything else, so that none sent once READY is lost.
    let signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGUSR2,
        signal_hook::consts::SIGHUP,
    ])
    .map_err(|e| format!("cannot handle signals: {e}"))?;
    let config = Arc::new(config);
    let database = Arc::new(args.database);
    let loader: moat_clamd::Loader = {
        let config = Arc::clone(&config);
        let database = Arc::clone(&database);
        Arc::new(move || load(&database, &config))
    };
    let db = loader()?;
    let mut listeners =
        moat_clamd::inherited_listeners().map_err(|e| format!("sockets from systemd: {e}"))?;
    if !listeners.is_empty() {
        tracing::info!("received {} socket(s) from systemd", listeners.len());
    }
    moat_clamd::bind_listeners(&settings, &mut listeners).map_err(|e| e.to_string())?;
    let server = Server::start(settings, listeners, db, loader).map_err(|e| e.to_string())?;
    let status = format!("listening on {}", server.describe().join(", "));
    tracing::info!("{status}");
    let events = server.event_sender();
    let mut signals_handle = signals;
    std::thread::spawn(move || {
        for sig in signals_handle.forever() {
            let event = match sig {
                signal_hook::consts::SIGUSR2 => Event::Reload,
                // clamd reopens its log on SIGHUP; moat's log is appended and needs no reopening.
                signal_hook::consts::SIGHUP => continue,
                _ => Event::Shutdown,
            };
            if events.send(event).is_err() {
                return;
            }
        }
    });
    if let Err(e) = sd_notify::notify(
        false,
        &[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status(&status),
        ],
    ) {
        tracing::warn!("cannot notify $NOTIFY_SOCKET: {e}");
    }
    server.run();
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    Ok(())
}

/// Loads the database for serving.
fn load(paths: &[PathBuf], c: &Config) -> Result<Database, String> {
    let db = crate::database::load(
        paths,
        &c.database_directory,
        crate::database::load_options(c),
    )
    .map_err(|e| e.to_string())?;
    let engine = Arc::new(moat_engine::Engine::new(db));
    tracing::info!(
        signatures = engine.signature_count(),
        "signature database loaded"
    );
    let scanner = moat_guard::EngineScanner::new(engine, crate::watch::engine_limits(c), 1);
    let dirs: Vec<&Path> = if paths.is_empty() {
        vec![c.database_directory.as_path()]
    } else {
        paths.iter().map(PathBuf::as_path).collect()
    };
    Ok(Database {
        scanner: Arc::new(scanner),
        version: crate::database::official_version(&dirs)
            .map(|(v, t)| (v, crate::database::ctime(t))),
    })
}
