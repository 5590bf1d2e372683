//! Structured detection records: one JSON object per line, appended to a file.
//!
//! A loop of opens of one infected file must not fill the disk, so records are
//! **deduplicated**: the first detection of a (path, signature) is written; repeats within
//! `window` are only counted, and the count is written once (`"event":"repeated"`) when the
//! window ends. And **rate-limited**: a token bucket (`burst` records, refilled at
//! `per_minute`) bounds the lines written whatever the variety of paths; records refused
//! are counted and written as one `"event":"suppressed"` line when tokens are back.
//! Both tables are bounded, so memory is too.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::{Detection, Outcome};

/// How records are kept.
#[derive(Debug, Clone)]
pub struct DetectionLogSettings {
    /// The file records are appended to.
    pub path: PathBuf,
    /// Repeats of a (path, signature) within this window are counted, not written.
    pub window: Duration,
    /// Records that may be written at once.
    pub burst: u32,
    /// Records per minute in the long run.
    pub per_minute: u32,
}

impl DetectionLogSettings {
    /// Defaults: a 60 s window, bursts of 100, 60 records a minute.
    pub fn new(path: PathBuf) -> DetectionLogSettings {
        DetectionLogSettings {
            path,
            window: Duration::from_secs(60),
            burst: 100,
            per_minute: 60,
        }
    }
}

/// One line of the log.
#[derive(Debug, Serialize)]
struct Record<'a> {
    time: String,
    event: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signature: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    access: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file_action: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    quarantine_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pid: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    comm: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exe: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    count: Option<u64>,
}

impl<'a> Record<'a> {
    fn bare(event: &'a str) -> Record<'a> {
        Record {
            time: crate::rfc3339(std::time::SystemTime::now()),
            event,
            path: None,
            signature: None,
            access: None,
            action: None,
            file_action: None,
            quarantine_id: None,
            pid: None,
            uid: None,
            comm: None,
            exe: None,
            count: None,
        }
    }
}

#[derive(Debug)]
struct Seen {
    since: Instant,
    repeats: u64,
}

/// Most (path, signature) pairs remembered; past it, the oldest windows are closed early.
const MAX_SEEN: usize = 4096;

/// The detection log: dedup, rate limit, append.
#[derive(Debug)]
pub struct DetectionLog {
    settings: DetectionLogSettings,
    file: File,
    seen: HashMap<(PathBuf, String), Seen>,
    tokens: f64,
    refilled: Instant,
    suppressed: u64,
    /// Lines written (for tests and the summary).
    pub lines: u64,
    /// Records the rate limit refused, since the start.
    pub suppressed_total: u64,
    /// Repeats folded into `repeated` records, since the start.
    pub deduplicated: u64,
}

impl DetectionLog {
    /// Opens (creating, mode 0640) the log file for appending.
    pub fn open(settings: DetectionLogSettings) -> io::Result<DetectionLog> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&settings.path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", settings.path.display())))?;
        let tokens = f64::from(settings.burst);
        Ok(DetectionLog {
            settings,
            file,
            seen: HashMap::new(),
            tokens,
            refilled: Instant::now(),
            suppressed: 0,
            lines: 0,
            suppressed_total: 0,
            deduplicated: 0,
        })
    }

    /// Records one detection and what was done about it, at `now`.
    pub fn record(&mut self, d: &Detection, outcome: &Outcome, now: Instant) -> io::Result<()> {
        self.expire(now)?;
        let key = (d.path.clone(), d.signature.clone());
        if let Some(seen) = self.seen.get_mut(&key) {
            seen.repeats += 1;
            self.deduplicated += 1;
            return Ok(());
        }
        if self.seen.len() >= MAX_SEEN {
            self.close_oldest()?;
        }
        self.seen.insert(
            key,
            Seen {
                since: now,
                repeats: 0,
            },
        );
        let rec = Record {
            path: Some(d.path.to_string_lossy().into_owned()),
            signature: Some(&d.signature),
            access: Some(&d.access),
            action: Some(if d.blocked { "blocked" } else { "reported" }),
            file_action: outcome.file_action(),
            quarantine_id: outcome.quarantine_id(),
            pid: Some(d.accessor.pid),
            uid: d.accessor.uid,
            comm: Some(&d.accessor.comm),
            exe: Some(&d.accessor.exe),
            time: crate::rfc3339(d.time),
            ..Record::bare("detection")
        };
        self.write_limited(&rec, now)
    }

    /// Closes the windows that ended by `now`, writing their repeat counts. Called on
    /// every record and periodically by the reaction thread.
    pub fn expire(&mut self, now: Instant) -> io::Result<()> {
        let window = self.settings.window;
        let ended: Vec<(PathBuf, String)> = self
            .seen
            .iter()
            .filter(|(_, s)| now.duration_since(s.since) >= window)
            .map(|(k, _)| k.clone())
            .collect();
        for key in ended {
            self.close(&key, now)?;
        }
        self.flush_suppressed(now)
    }

    /// Closes every window (at shutdown): each repeat count is written.
    pub fn close_all(&mut self) -> io::Result<()> {
        let now = Instant::now();
        let keys: Vec<(PathBuf, String)> = self.seen.keys().cloned().collect();
        for key in keys {
            self.close(&key, now)?;
        }
        self.flush_suppressed(now)
    }

    /// Records that `count` detections never reached the log (the reaction queue was full).
    pub fn dropped(&mut self, count: u64, now: Instant) -> io::Result<()> {
        let rec = Record {
            count: Some(count),
            ..Record::bare("dropped")
        };
        self.write_limited(&rec, now)
    }

    fn close_oldest(&mut self) -> io::Result<()> {
        let oldest = self
            .seen
            .iter()
            .min_by_key(|(_, s)| s.since)
            .map(|(k, _)| k.clone());
        match oldest {
            Some(k) => self.close(&k, Instant::now()),
            None => Ok(()),
        }
    }

    fn close(&mut self, key: &(PathBuf, String), now: Instant) -> io::Result<()> {
        let Some(seen) = self.seen.remove(key) else {
            return Ok(());
        };
        if seen.repeats == 0 {
            return Ok(());
        }
        let rec = Record {
            path: Some(key.0.to_string_lossy().into_owned()),
            signature: Some(&key.1),
            count: Some(seen.repeats),
            ..Record::bare("repeated")
        };
        self.write_limited(&rec, now)
    }

    /// Writes the count of records the rate limit refused, once tokens are back.
    fn flush_suppressed(&mut self, now: Instant) -> io::Result<()> {
        if self.suppressed == 0 || !self.take_token(now) {
            return Ok(());
        }
        let rec = Record {
            count: Some(self.suppressed),
            ..Record::bare("suppressed")
        };
        self.suppressed = 0;
        self.write(&rec)
    }

    fn write_limited(&mut self, rec: &Record<'_>, now: Instant) -> io::Result<()> {
        if self.suppressed > 0 {
            self.flush_suppressed(now)?;
        }
        if !self.take_token(now) {
            self.suppressed += 1;
            self.suppressed_total += 1;
            return Ok(());
        }
        self.write(rec)
    }

    fn take_token(&mut self, now: Instant) -> bool {
        let rate = f64::from(self.settings.per_minute) / 60.0;
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(f64::from(self.settings.burst));
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn write(&mut self, rec: &Record<'_>) -> io::Result<()> {
        let mut line = serde_json::to_vec(rec).map_err(io::Error::other)?;
        line.push(b'\n');
        // One write(2) per line on an O_APPEND file: lines never interleave.
        self.file.write_all(&line)?;
        self.lines += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Accessor;

    fn detection(path: &str) -> Detection {
        Detection {
            path: path.into(),
            file: None,
            signature: "Eicar-Signature".into(),
            accessor: Accessor {
                pid: 42,
                uid: Some(65534),
                comm: "cat".into(),
                exe: "/usr/bin/cat".into(),
            },
            access: "open".into(),
            blocked: true,
            time: std::time::SystemTime::now(),
        }
    }

    fn lines(path: &std::path::Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn ten_thousand_repeats_are_one_record_and_one_count() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        let mut log = DetectionLog::open(DetectionLogSettings::new(path.clone())).unwrap();
        let t0 = Instant::now();
        let d = detection("/w/eicar.com");
        for i in 0..10_000u64 {
            log.record(&d, &Outcome::None, t0 + Duration::from_millis(i))
                .unwrap();
        }
        log.expire(t0 + Duration::from_secs(61)).unwrap();
        let l = lines(&path);
        assert_eq!(l.len(), 2, "{l:?}");
        assert_eq!(l[0]["event"], "detection");
        assert_eq!(l[0]["path"], "/w/eicar.com");
        assert_eq!(l[0]["uid"], 65534);
        assert_eq!(l[0]["comm"], "cat");
        assert_eq!(l[0]["action"], "blocked");
        assert_eq!(l[1]["event"], "repeated");
        assert_eq!(l[1]["count"], 9_999);
    }

    #[test]
    fn ten_thousand_distinct_files_are_bounded_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        let mut log = DetectionLog::open(DetectionLogSettings::new(path.clone())).unwrap();
        let t0 = Instant::now();
        for i in 0..10_000u64 {
            let d = detection(&format!("/w/{i}"));
            log.record(&d, &Outcome::None, t0 + Duration::from_micros(i))
                .unwrap();
        }
        // A minute later one token is back: the suppressed count is written.
        log.expire(t0 + Duration::from_secs(2)).unwrap();
        let l = lines(&path);
        assert!(l.len() <= 102, "{} lines", l.len());
        let detections = l.iter().filter(|r| r["event"] == "detection").count() as u64;
        let suppressed: u64 = l
            .iter()
            .filter(|r| r["event"] == "suppressed")
            .map(|r| r["count"].as_u64().unwrap())
            .sum();
        assert_eq!(detections, 100);
        assert_eq!(
            detections + suppressed,
            10_000,
            "every record written or counted"
        );
    }
}
