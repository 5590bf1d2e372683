//! `--metrics ADDR` (`MoatMetricsAddress`): Prometheus text (format 0.0.4) on
//! `http://ADDR/metrics`, off by default.
//!
//! Every scrape reads a fresh [`Snapshot`](crate::health::Snapshot) through the daemon's
//! [`Probe`], so the metrics are the same numbers `moat status` prints, never a second set of
//! counters kept in step: `prometheus-client` encodes them through a custom
//! [`Collector`](prometheus_client::collector::Collector). HTTP is `tiny_http` (a few
//! threads, no async runtime in the daemon).

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::thread::JoinHandle;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::health::CurrentProbe;

/// The metrics endpoint's server. [`shutdown`](MetricsServer::shutdown) stops it.
pub struct MetricsServer {
    server: Arc<tiny_http::Server>,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    addr: String,
}

/// A bound metrics endpoint not served yet (see [`MetricsServer::bind`]).
pub struct MetricsListener {
    server: tiny_http::Server,
    addr: String,
}

impl MetricsListener {
    /// The address listened on (the port chosen when `:0` was given).
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Serves `/metrics` from `probe` until the server is shut down.
    pub fn serve(self, probe: CurrentProbe) -> Result<MetricsServer, MetricsError> {
        let server = Arc::new(self.server);
        let mut registry = Registry::with_prefix("moat");
        registry.register_collector(Box::new(SnapshotCollector(probe)));
        let stopping = Arc::new(AtomicBool::new(false));
        let (s, stop) = (Arc::clone(&server), Arc::clone(&stopping));
        let thread = std::thread::Builder::new()
            .name("moat-metrics".into())
            .spawn(move || serve(&s, &registry, &stop))
            .map_err(|e| MetricsError {
                addr: self.addr.clone(),
                error: e.to_string(),
            })?;
        Ok(MetricsServer {
            server,
            stopping,
            thread: Some(thread),
            addr: self.addr,
        })
    }
}

/// The endpoint could not be opened (a start error of the daemon).
#[derive(Debug, thiserror::Error)]
#[error("metrics address {addr}: {error}")]
pub struct MetricsError {
    /// The address as given.
    pub addr: String,
    /// Why.
    pub error: String,
}

impl MetricsServer {
    /// Listens on `addr` (`HOST:PORT`, e.g. `127.0.0.1:9321`) and serves `/metrics` from
    /// `probe`.
    pub fn start(addr: &str, probe: CurrentProbe) -> Result<MetricsServer, MetricsError> {
        MetricsServer::bind(addr)?.serve(probe)
    }

    /// The first half of [`start`](Self::start): listening on `addr` (so that a bad address
    /// fails before the daemon places any mark); requests wait until
    /// [`MetricsListener::serve`].
    pub fn bind(addr: &str) -> Result<MetricsListener, MetricsError> {
        let server = tiny_http::Server::http(addr).map_err(|e| MetricsError {
            addr: addr.to_string(),
            error: e.to_string(),
        })?;
        let bound = server
            .server_addr()
            .to_ip()
            .map_or_else(|| addr.to_string(), |a| a.to_string());
        Ok(MetricsListener {
            server,
            addr: bound,
        })
    }

    /// The address listened on (the port chosen when `:0` was given).
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Stops serving.
    pub fn shutdown(mut self) {
        self.close();
    }

    fn close(&mut self) {
        let Some(t) = self.thread.take() else { return };
        self.stopping.store(true, SeqCst);
        self.server.unblock();
        let _ = t.join();
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.close();
    }
}

fn serve(server: &tiny_http::Server, registry: &Registry, stopping: &AtomicBool) {
    while !stopping.load(SeqCst) {
        let request = match server.recv() {
            Ok(r) => r,
            Err(e) => {
                if !stopping.load(SeqCst) {
                    tracing::debug!(error = %e, "metrics: receiving a request failed");
                }
                continue;
            }
        };
        let response = if request.url() == "/metrics" && *request.method() == tiny_http::Method::Get
        {
            let mut body = String::new();
            match prometheus_client::encoding::prometheus_text::encode(&mut body, registry) {
                Ok(()) => tiny_http::Response::from_string(body).with_header(
                    tiny_http::Header::from_bytes(
                        "Content-Type",
                        prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
                    )
                    .expect("valid header"),
                ),
                Err(_) => {
                    tiny_http::Response::from_string("encoding failed\n").with_status_code(500)
                }
            }
        } else {
            tiny_http::Response::from_string("not found: metrics are at /metrics\n")
                .with_status_code(404)
        };
        if let Err(e) = request.respond(response) {
            tracing::debug!(error = %e, "metrics: answering a request failed");
        }
    }
}

/// SIGHUP reloads: counts, and when the last one was handled and whether it succeeded.
fn reloads(e: &mut DescriptorEncoder, r: &crate::health::ReloadStatus) -> Fmt {
    counter(
        e,
        "reloads",
        "SIGHUP reloads that put a new configuration or database in place.",
        r.count,
    )?;
    counter(
        e,
        "reload_failures",
        "SIGHUP reloads refused (the previous configuration goes on).",
        r.failed,
    )?;
    if let (Some(at), Some(ok)) = (r.last_unix, r.last_ok) {
        gauge(
            e,
            "last_reload_timestamp_seconds",
            "When the last SIGHUP reload was handled (Unix time).",
            at as f64,
        )?;
        gauge(
            e,
            "last_reload_success",
            "1 when the last SIGHUP reload succeeded.",
            f64::from(u8::from(ok)),
        )?;
    }
    Ok(())
}

/// What was done about detections (moat-react's counters), when any reaction is configured.
fn reactions(e: &mut DescriptorEncoder, r: &crate::health::ReactionCounters) -> Fmt {
    let labelled = |pairs: &[(&str, u64)]| -> std::collections::BTreeMap<String, u64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    };
    counter(
        e,
        "reactions_handled",
        "Detections the reaction thread took.",
        r.handled,
    )?;
    counter(
        e,
        "reactions_queue_dropped",
        "Detections dropped because the reaction queue was full.",
        r.queue_dropped,
    )?;
    let quarantined = labelled(&[
        ("moved", r.moved),
        ("copied", r.copied),
        ("removed", r.removed),
    ]);
    counters_by(
        e,
        "quarantined",
        "Infected files moved, copied (--move, --copy) or removed (--remove).",
        "action",
        quarantined.iter(),
        MetricType::Counter,
    )?;
    counter(
        e,
        "reaction_failures",
        "Moves, copies or removals that failed.",
        r.action_failures,
    )?;
    let virus_event = labelled(&[
        ("run", r.virus_event_runs),
        ("dropped", r.virus_event_dropped),
        ("timeout", r.virus_event_timeouts),
        ("failed", r.virus_event_failures),
        ("repeat", r.virus_event_repeats),
    ]);
    counters_by(
        e,
        "virus_event",
        "VirusEvent commands run, not run (too many running, or a repeat), killed at the timeout, or that failed to start.",
        "outcome",
        virus_event.iter(),
        MetricType::Counter,
    )?;
    let log = labelled(&[
        ("written", r.log_lines),
        ("suppressed", r.log_suppressed),
        ("deduplicated", r.log_deduplicated),
    ]);
    counters_by(
        e,
        "detection_log_records",
        "Detection-log lines written, refused by the rate limit, or folded into repeated records.",
        "outcome",
        log.iter(),
        MetricType::Counter,
    )?;
    counter(
        e,
        "detection_log_errors",
        "Writes to the detection log that failed.",
        r.log_errors,
    )
}

/// Encodes one snapshot per scrape.
#[derive(Debug)]
struct SnapshotCollector(CurrentProbe);

type Fmt = Result<(), std::fmt::Error>;

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> Fmt {
    e.encode_descriptor(name, help, None, MetricType::Counter)?
        .encode_counter::<NoLabelSet, _, u64>(&v, None)
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: f64) -> Fmt {
    e.encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&v)
}

/// A counter family with one label.
fn counters_by<'a>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    values: impl Iterator<Item = (&'a String, &'a u64)>,
    kind: MetricType,
) -> Fmt {
    let mut family = e.encode_descriptor(name, help, None, kind)?;
    for (key, v) in values {
        let labels = [(label, key.as_str())];
        let mut m = family.encode_family(&labels)?;
        match kind {
            MetricType::Counter => m.encode_counter::<NoLabelSet, _, u64>(v, None)?,
            _ => m.encode_gauge(v)?,
        }
    }
    Ok(())
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Fmt {
        let s = self.0.snapshot();
        let c = &s.counters;
        gauge(
            &mut e,
            "protecting",
            "1 when accesses under the include paths are checked now (see moat status).",
            f64::from(u8::from(s.protecting)),
        )?;
        counter(
            &mut e,
            "scanned",
            "Accesses answered with an engine verdict (clean or infected).",
            c.scanned,
        )?;
        counter(
            &mut e,
            "cache_hits",
            "Accesses answered from the userspace verdict cache.",
            c.cache_hits,
        )?;
        counter(&mut e, "infected", "Detections.", c.infected)?;
        counter(
            &mut e,
            "blocked",
            "Accesses denied (EPERM) after a detection or by OnAccessDenyOnError.",
            c.blocked,
        )?;
        counter(
            &mut e,
            "deadline_expired",
            "Accesses answered by OnAccessScanTimeout before their verdict.",
            c.deadline_expired,
        )?;
        counters_by(
            &mut e,
            "skipped",
            "Accesses allowed without a scan, by reason.",
            "reason",
            c.skipped.iter(),
            MetricType::Counter,
        )?;
        counters_by(
            &mut e,
            "errors",
            "Errors, by kind.",
            "kind",
            c.errors_by_kind.iter(),
            MetricType::Counter,
        )?;
        counter(
            &mut e,
            "kernel_cache_marks",
            "Clean files whose verdict the kernel keeps (ignore marks set).",
            c.kernel_cache_marks,
        )?;
        counters_by(
            &mut e,
            "marks",
            "fanotify marks the kernel holds for moat, by kind.",
            "kind",
            s.coverage.marks.iter(),
            MetricType::Gauge,
        )?;
        gauge(
            &mut e,
            "queue_depth",
            "Scans waiting for a worker.",
            s.queue.queued as f64,
        )?;
        gauge(
            &mut e,
            "workers_busy",
            "Workers scanning.",
            s.queue.busy as f64,
        )?;
        gauge(
            &mut e,
            "signatures",
            "Signatures in the database in use.",
            s.database.signatures.unwrap_or(0) as f64,
        )?;
        gauge(
            &mut e,
            "database_generation",
            "Database loads (1 + successful reloads).",
            s.database.generation as f64,
        )?;
        gauge(
            &mut e,
            "uptime_seconds",
            "Seconds since the daemon was first ready (a reload does not reset it).",
            s.uptime_seconds,
        )?;
        reloads(&mut e, &s.reloads)?;
        if let Some(r) = &s.reactions {
            reactions(&mut e, r)?;
        }
        let (sum, count, buckets) = self.0.current().latency().buckets();
        e.encode_descriptor(
            "verdict_latency_seconds",
            "Time from handing a permission event to a worker to the kernel's answer.",
            None,
            MetricType::Histogram,
        )?
        .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
        Ok(())
    }
}
