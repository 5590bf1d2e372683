//! `moat status`, and the daemon side of it: `moat watch`'s control socket and metrics
//! endpoint (`--control-socket`, `--metrics`; `MoatControlSocket`, `MoatMetricsAddress`).
//!
//! Exit status of `moat status`: 0 the daemon is protecting, 1 it answered but is not
//! protecting (the reasons are printed), 2 no answer (not running, another socket path,
//! not root, refused).

use std::path::{Path, PathBuf};

use clap::Args;
use moat_config::Config;
use moat_watch::control::{ControlServer, ControlSocket, DEFAULT_SOCKET};
use moat_watch::metrics::{MetricsListener, MetricsServer};
use moat_watch::{CurrentProbe, Daemon, Snapshot};

/// `moat watch`'s health flags.
#[derive(Args, Debug)]
pub struct HealthArgs {
    /// The root-only control socket `moat status` asks (MoatControlSocket)
    /// [default: /run/moat/control.sock].
    #[arg(long, value_name = "PATH")]
    control_socket: Option<PathBuf>,
    /// Serve Prometheus metrics on http://ADDR/metrics, e.g. 127.0.0.1:9321
    /// (MoatMetricsAddress) [default: off].
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
}

/// The control socket and metrics endpoint of a daemon: bound before the daemon starts (a
/// bad address fails before any mark is placed), served once it runs.
pub struct Endpoints<C, M> {
    control: Option<C>,
    metrics: Option<M>,
    /// Once served: the daemon both read (a reload points it at a new daemon).
    probe: Option<CurrentProbe>,
}

impl Endpoints<ControlSocket, MetricsListener> {
    /// Binds what the flags and clamd.conf ask for. A control socket or metrics address
    /// given explicitly must bind (else the daemon does not start); the default control
    /// socket is best effort (a warning: `moat status` will not reach this daemon).
    pub fn bind(args: &HealthArgs, c: &Config) -> Result<Self, String> {
        let explicit = args
            .control_socket
            .clone()
            .or_else(|| c.moat_control_socket.clone());
        let control = match &explicit {
            Some(path) => Some(ControlServer::bind(path).map_err(|e| e.to_string())?),
            None => match ControlServer::bind(Path::new(DEFAULT_SOCKET)) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!("{e}; moat status cannot ask this daemon");
                    None
                }
            },
        };
        let metrics = match args.metrics.as_ref().or(c.moat_metrics_address.as_ref()) {
            Some(addr) => Some(MetricsServer::bind(addr).map_err(|e| e.to_string())?),
            None => None,
        };
        Ok(Endpoints {
            control,
            metrics,
            probe: None,
        })
    }

    /// Starts answering with `daemon`'s state.
    pub fn serve(self, daemon: &Daemon) -> Result<Endpoints<ControlServer, MetricsServer>, String> {
        let probe = CurrentProbe::new(daemon.probe());
        let control = match self.control {
            Some(s) => {
                let server = s.serve(probe.clone()).map_err(|e| e.to_string())?;
                tracing::info!(path = %server.path().display(), "control socket ready (moat status)");
                Some(server)
            }
            None => None,
        };
        let metrics = match self.metrics {
            Some(m) => {
                let server = m.serve(probe.clone()).map_err(|e| e.to_string())?;
                tracing::info!("metrics on http://{}/metrics", server.addr());
                Some(server)
            }
            None => None,
        };
        Ok(Endpoints {
            control,
            metrics,
            probe: Some(probe),
        })
    }
}

impl Endpoints<ControlServer, MetricsServer> {
    /// After a reload that started a new daemon: report that one from now on.
    pub fn follow(&self, daemon: &Daemon) {
        if let Some(p) = &self.probe {
            p.replace(daemon.probe());
        }
    }

    /// Stops both (the control socket is removed).
    pub fn shutdown(self) {
        if let Some(c) = self.control {
            c.shutdown();
        }
        if let Some(m) = self.metrics {
            m.shutdown();
        }
    }
}

/// `moat status`.
#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Print the daemon's answer as JSON.
    #[arg(long)]
    json: bool,
    /// The control socket [default: MoatControlSocket of clamd.conf, else
    /// /run/moat/control.sock].
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// clamd.conf to find MoatControlSocket in [default: /etc/clamav/clamd.conf when it
    /// exists].
    #[arg(short = 'c', long = "config-file", value_name = "FILE")]
    config: Option<PathBuf>,
}

/// Runs `moat status`; returns the exit status (see the module docs).
pub fn run(args: StatusArgs) -> u8 {
    let socket = match &args.socket {
        Some(s) => s.clone(),
        None => match crate::watch::read_config(args.config.as_deref()) {
            Ok(c) => c
                .moat_control_socket
                .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET)),
            Err(e) => {
                eprintln!("ERROR: {e}");
                return 2;
            }
        },
    };
    let json = match moat_watch::control::query_status(&socket) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("ERROR: {e}");
            return 2;
        }
    };
    let snapshot: Snapshot = match serde_json::from_str(&json) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ERROR: bad reply from moat watch: {e}");
            return 2;
        }
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&snapshot).expect("a snapshot prints")
        );
    } else {
        print!("{}", render(&snapshot));
    }
    if snapshot.protecting {
        0
    } else {
        1
    }
}

/// The human-readable status.
fn render(s: &Snapshot) -> String {
    let mut out = String::new();
    let mut line = |l: String| {
        out.push_str(&l);
        out.push('\n');
    };
    let head = format!("moat watch (pid {}, moat {})", s.pid, s.version);
    if s.protecting {
        line(format!("{head}: protecting"));
    } else {
        line(format!("{head}: NOT protecting"));
        for why in &s.not_protecting_because {
            line(format!("  because: {why}"));
        }
    }
    line(format!(
        "prevention:   {}",
        if s.prevention {
            "on (infected files are blocked)"
        } else {
            "off (infected files are reported, not blocked)"
        }
    ));
    line(format!("scope:        {}", s.scope));
    line(format!("include:      {}", paths(&s.include_paths)));
    if !s.mount_paths.is_empty() {
        line(format!("mount paths:  {}", paths(&s.mount_paths)));
    }
    let fs: Vec<String> = s
        .coverage
        .filesystems
        .iter()
        .chain(&s.coverage.mounts)
        .map(|f| {
            format!(
                "{} on {} ({})",
                f.device,
                f.mount_point
                    .as_ref()
                    .map_or("?".into(), |p| p.display().to_string()),
                f.fs_type.as_deref().unwrap_or("?")
            )
        })
        .collect();
    if !fs.is_empty() {
        line(format!("covered:      {}", fs.join(", ")));
    }
    if s.coverage.directories > 0 {
        line(format!("directories:  {} marked", s.coverage.directories));
    }
    line(format!("marks:        {}", pairs(&s.coverage.marks, true)));
    if !s.coverage.problems.is_empty() {
        line(format!(
            "coverage problems: {}",
            s.coverage.problems.join("; ")
        ));
    }
    line(format!("database:     {}", database(s)));
    let c = &s.counters;
    line(format!(
        "counters:     scanned={} cache_hits={} infected={} blocked={} deadline_expired={} errors={}",
        c.scanned, c.cache_hits, c.infected, c.blocked, c.deadline_expired, c.errors
    ));
    line(format!("skipped:      {}", pairs(&c.skipped, false)));
    if c.errors > 0 {
        line(format!("errors:       {}", pairs(&c.errors_by_kind, false)));
    }
    if let Some(r) = &s.reactions {
        line(format!("reactions:    {}", reactions(r)));
    }
    line(format!(
        "queue:        {} queued, {} of {} workers busy",
        s.queue.queued, s.queue.busy, s.queue.threads
    ));
    let l = &s.latency;
    let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.3} ms"));
    line(format!(
        "latency:      p50 {} p90 {} p99 {} max {} ({} verdicts)",
        ms(l.p50_ms),
        ms(l.p90_ms),
        ms(l.p99_ms),
        ms(l.max_ms),
        l.count
    ));
    line(format!(
        "uptime:       {} (ready since {})",
        duration(s.uptime_seconds),
        crate::database::ctime(s.ready_since_unix as i64)
    ));
    line(format!("reloads:      {}", reloads(&s.reloads)));
    out
}

/// `handled=N` then the reaction counters that are not zero.
fn reactions(r: &moat_watch::ReactionCounters) -> String {
    let others = [
        ("queue_dropped", r.queue_dropped),
        ("moved", r.moved),
        ("copied", r.copied),
        ("removed", r.removed),
        ("action_failures", r.action_failures),
        ("virus_event_runs", r.virus_event_runs),
        ("virus_event_dropped", r.virus_event_dropped),
        ("virus_event_timeouts", r.virus_event_timeouts),
        ("virus_event_failures", r.virus_event_failures),
        ("virus_event_repeats", r.virus_event_repeats),
        ("log_lines", r.log_lines),
        ("log_suppressed", r.log_suppressed),
        ("log_deduplicated", r.log_deduplicated),
        ("log_errors", r.log_errors),
    ];
    let mut text = format!("handled={}", r.handled);
    for (k, v) in others.iter().filter(|(_, v)| *v > 0) {
        text.push_str(&format!(" {k}={v}"));
    }
    text
}

fn reloads(r: &moat_watch::ReloadStatus) -> String {
    let mut text = format!("{} done, {} failed", r.count, r.failed);
    if let (Some(at), Some(what)) = (r.last_unix, &r.last_result) {
        let how = if r.last_ok == Some(true) {
            "ok"
        } else {
            "FAILED"
        };
        text.push_str(&format!(
            "; last {} {how}: {what}",
            crate::database::ctime(at as i64)
        ));
    }
    text
}

fn paths(p: &[PathBuf]) -> String {
    let v: Vec<String> = p.iter().map(|p| p.display().to_string()).collect();
    v.join(", ")
}

/// `k=v` pairs; zeros left out unless `zeros`.
fn pairs(m: &std::collections::BTreeMap<String, u64>, zeros: bool) -> String {
    let v: Vec<String> = m
        .iter()
        .filter(|(_, v)| zeros || **v > 0)
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(" ")
    }
}

fn database(s: &Snapshot) -> String {
    let d = &s.database;
    let mut parts = vec![match d.signatures {
        Some(n) => format!("{n} signatures"),
        None => "signatures unknown".into(),
    }];
    if let Some(v) = d.version {
        let built = d.built_unix.map_or(String::new(), |t| {
            format!(" built {}", crate::database::ctime(t as i64))
        });
        parts.push(format!("version {v}{built}"));
    }
    if let Some(t) = d.loaded_unix {
        parts.push(format!("loaded {}", crate::database::ctime(t as i64)));
    }
    parts.push(format!("generation {}", d.generation));
    parts.join(", ")
}

fn duration(secs: f64) -> String {
    let s = secs as u64;
    match (s / 86400, s / 3600 % 24, s / 60 % 60, s % 60) {
        (0, 0, 0, sec) => format!("{sec}s"),
        (0, 0, m, sec) => format!("{m}m {sec}s"),
        (0, h, m, sec) => format!("{h}h {m}m {sec}s"),
        (d, h, m, _) => format!("{d}d {h}h {m}m"),
    }
}
