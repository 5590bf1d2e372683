//! Machine-readable results: every suite (`scan`, `watch`) writes one JSON file of this shape
//! next to its printed tables, and the report (BENCHMARKS.md and its charts) is rendered from
//! those files alone, so the same command regenerates both.
//!
//! The shape is deliberately generic: a figure is a [`Row`] (moat, the ClamAV peer and no
//! scanner side by side, with the target it is judged against), a distribution is a
//! [`Series`] of raw samples, a comparison across settings is a [`Bars`] chart.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// One suite's results.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Results {
    /// `"scan"` or `"watch"`.
    pub suite: String,
    /// When the run started, RFC 3339 (UTC).
    pub started: String,
    /// The exact command line that produced it.
    pub command: String,
    /// The figures, in the order they should be shown.
    pub rows: Vec<Row>,
    /// Raw sample distributions (latencies), for charts.
    pub series: Vec<Series>,
    /// Bar charts (throughput across settings).
    pub bars: Vec<Bars>,
    /// `(what, command line)` of every measured process (scanners, daemons), for the report.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<(String, String)>,
}

/// One figure, side by side.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Row {
    /// The table it belongs to, e.g. `"coverage setup, warm cache"`.
    pub group: String,
    /// What is measured, e.g. `"time to full coverage, 100,000 dirs, filesystem scope"`.
    pub metric: String,
    /// `"ms"`, `"us"`, `"MB/s"`, `"MB"`, `"count"`...
    pub unit: String,
    /// moat's figure (`None`: not measured or not applicable).
    pub moat: Option<f64>,
    /// The ClamAV peer's figure (clamscan, or clamd + clamonacc).
    pub clamav: Option<f64>,
    /// The figure with no scanner at all.
    pub none: Option<f64>,
    /// For ratios and charts: whether a lower figure is better.
    pub lower_is_better: bool,
    /// The target it is judged against, as text (`"< 50 ms"`, `">= 10x faster than clamonacc"`).
    pub target: Option<String>,
    /// Whether the target was met (`None`: no target, or not decidable).
    pub met: Option<bool>,
    /// A note shown with the figure (why n/a, what exactly was counted).
    pub note: Option<String>,
}

/// A distribution of raw samples per product.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Series {
    /// E.g. `"first open() latency, 5,000 small clean files, 100,000 dirs"`.
    pub name: String,
    /// Unit of the samples.
    pub unit: String,
    /// `(product label, samples)`, e.g. `("moat filesystem", [...])`, `("clamonacc", [...])`,
    /// `("no scanner", [...])`.
    pub samples: Vec<(String, Vec<f64>)>,
}

/// A bar chart: one value per (product, label).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Bars {
    /// E.g. `"verdict throughput"`.
    pub name: String,
    /// Unit of the values, e.g. `"verdicts/s"`.
    pub unit: String,
    /// The categories, e.g. `["1 opener", "4 openers", "16 openers"]`.
    pub labels: Vec<String>,
    /// `(product label, one value per label)`; `None` where not measured.
    pub values: Vec<(String, Vec<Option<f64>>)>,
}

impl Results {
    /// An empty result set for `suite`, stamped with now and this process's command line.
    pub fn new(suite: &str) -> Results {
        Results {
            suite: suite.to_owned(),
            started: now_rfc3339(),
            command: std::env::args().collect::<Vec<_>>().join(" "),
            ..Results::default()
        }
    }

    /// Writes `path` (pretty JSON), creating its directory.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Reads a file written by [`save`](Self::save).
    pub fn load(path: &Path) -> Result<Results, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// Now as `YYYY-MM-DDTHH:MM:SSZ` (UTC), without a date crate: days from the epoch to a civil
/// date (Howard Hinnant's algorithm).
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_json() {
        let mut r = Results::new("watch");
        r.rows.push(Row {
            group: "g".into(),
            metric: "m".into(),
            unit: "ms".into(),
            moat: Some(1.5),
            clamav: None,
            none: Some(0.5),
            lower_is_better: true,
            target: Some("< 50 ms".into()),
            met: Some(true),
            note: None,
        });
        r.series.push(Series {
            name: "s".into(),
            unit: "us".into(),
            samples: vec![("moat".into(), vec![1.0, 2.0])],
        });
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x/watch.json");
        r.save(&p).unwrap();
        assert_eq!(Results::load(&p).unwrap(), r);
    }

    #[test]
    fn dates_are_rfc3339() {
        let d = now_rfc3339();
        assert_eq!(d.len(), 20, "{d}");
        assert!(d.starts_with("20") && d.ends_with('Z'), "{d}");
    }
}
