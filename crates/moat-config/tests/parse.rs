use std::path::{Path, PathBuf};
use std::time::Duration;

use moat_config::{Config, ConfigError, Coverage, LineErrorKind, Tracking, ValueKind};

const P: &str = "/etc/clamav/clamd.conf";

fn parse(text: &str) -> Config {
    match Config::parse(text, P) {
        Ok(c) => c,
        Err(e) => panic!("unexpected error:\n{e}"),
    }
}

fn parse_err(text: &str) -> ConfigError {
    match Config::parse(text, P) {
        Ok(c) => panic!("expected an error, got {c:#?}"),
        Err(e) => e,
    }
}

/// The message of the only error.
fn err_msg(text: &str) -> String {
    let e = parse_err(text);
    assert_eq!(e.line_errors().len(), 1, "{e}");
    e.to_string()
}

#[test]
fn real_debian_clamd_conf_loads() {
    let path = Path::new("/etc/clamav/clamd.conf");
    if !path.exists() {
        println!(
            "skipped: {} is absent (install clamav-daemon)",
            path.display()
        );
        return;
    }
    let c = Config::load(path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.source(), Some(path));
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    // Debian's generated file sets these keys.
    let text = std::fs::read_to_string(path).unwrap();
    if text.contains("\nDatabaseDirectory /var/lib/clamav") {
        assert_eq!(c.database_directory, PathBuf::from("/var/lib/clamav"));
    }
    if text.contains("\nLocalSocket /var/run/clamav/clamd.ctl") {
        assert_eq!(
            c.local_socket.as_deref(),
            Some(Path::new("/var/run/clamav/clamd.ctl"))
        );
    }
    if text.contains("\nMaxFileSize 25M") {
        assert_eq!(c.max_file_size, Some(25 << 20));
    }
    if text.contains("\nScanPE true") {
        assert!(c
            .unused_keys()
            .iter()
            .any(|u| u.key == "ScanPE" && u.value == "true"));
    }
    // Every non-comment line is either used or listed as unused.
    let settings = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .count();
    let used = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|k| moat_config::key_info(k).is_some_and(|i| i.used))
        .count();
    assert_eq!(c.unused_keys().len() + used, settings);
}

#[test]
fn clamav_sample_file_is_refused_for_its_example_line() {
    let path = Path::new("/usr/share/doc/clamav-daemon/examples/clamd.conf.sample");
    if !path.exists() {
        println!("skipped: {} is absent", path.display());
        return;
    }
    let e = Config::load(path).unwrap_err();
    let errors = e.line_errors();
    assert_eq!(errors.len(), 1, "{e}");
    assert_eq!(errors[0].kind, LineErrorKind::ExampleLine);
    let text = std::fs::read_to_string(path).unwrap();
    let line = text.lines().position(|l| l == "Example").unwrap() + 1;
    assert_eq!(errors[0].line, line);
    assert!(e
        .to_string()
        .starts_with(&format!("{}:{line}: Example: ", path.display())));
    // With the Example line commented out, the sample loads.
    let edited = text.replace("\nExample\n", "\n#Example\n");
    Config::parse(&edited, path).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn defaults() {
    let c = parse("");
    let d = Config::default();
    assert_eq!(c.source(), Some(Path::new(P)));
    assert_eq!(d.source(), None);
    assert!(c.unused_keys().is_empty() && c.warnings().is_empty());

    assert!(d.on_access_include_paths.is_empty());
    assert!(d.on_access_exclude_paths.is_empty());
    assert!(d.on_access_mount_paths.is_empty());
    assert!(!d.on_access_disable_ddd);
    assert!(!d.on_access_prevention);
    assert!(!d.on_access_extra_scanning);
    assert!(!d.on_access_exclude_root_uid);
    assert!(d.on_access_exclude_uids.is_empty());
    assert!(d.on_access_exclude_unames.is_empty());
    assert_eq!(d.on_access_max_file_size, Some(5 * 1024 * 1024));
    assert_eq!(d.on_access_max_threads, 5);
    assert_eq!(d.on_access_curl_timeout, Duration::from_millis(5000));
    assert_eq!(d.on_access_retry_attempts, 0);
    assert!(!d.on_access_deny_on_error);
    assert_eq!(d.on_access_scan_timeout, Duration::from_secs(5));
    assert_eq!(d.on_access_coverage, Coverage::Filesystem);
    assert_eq!(d.database_directory, PathBuf::from("/var/lib/clamav"));
    assert_eq!(d.log_file, None);
    assert!(!d.log_verbose && !d.log_time && !d.log_syslog);
    assert_eq!(d.local_socket, None);
    assert_eq!(d.tcp_socket, None);
    assert!(d.tcp_addrs.is_empty());
    assert_eq!(d.stream_max_length, Some(100 << 20));
    assert_eq!(d.temporary_directory, None);
    assert_eq!(d.max_file_size, Some(100 << 20));
    assert_eq!(d.max_scan_size, Some(400 << 20));
    assert_eq!(d.max_recursion, 17);
    assert_eq!(d.max_files, 10_000);
    assert_eq!(d.max_script_normalize, Some(20 << 20));
    assert_eq!(d.virus_event, None);

    // Only comments and blank lines: the defaults too.
    let c2 = parse("# comment\n\n   \n\t# indented comment\n");
    assert_eq!(c2, c);
}

#[test]
fn every_used_key() {
    let c = parse(
        "OnAccessIncludePath /home\n\
         OnAccessExcludePath ^/home/[^/]+/\\.cache$\n\
         OnAccessMountPath /srv\n\
         OnAccessDisableDDD yes\n\
         OnAccessPrevention yes\n\
         OnAccessExtraScanning yes\n\
         OnAccessExcludeRootUID yes\n\
         OnAccessExcludeUID 1000\n\
         OnAccessExcludeUname backup\n\
         OnAccessMaxFileSize 10M\n\
         OnAccessMaxThreads 8\n\
         OnAccessCurlTimeout 2500\n\
         OnAccessRetryAttempts 2\n\
         OnAccessDenyOnError yes\n\
         OnAccessScanTimeout 1500ms\n\
         OnAccessCoverage directory\n\
         DatabaseDirectory /opt/db\n\
         LogFile /var/log/moat.log\n\
         LogVerbose yes\n\
         LogTime yes\n\
         LogSyslog yes\n\
         LocalSocket /run/clamd.sock\n\
         TCPSocket 3310\n\
         TCPAddr 127.0.0.1\n\
         StreamMaxLength 25M\n\
         TemporaryDirectory /var/tmp/moat\n\
         MaxFileSize 30M\n\
         MaxScanSize 1G\n\
         MaxRecursion 10\n\
         MaxFiles 500\n\
         MaxScriptNormalize 7K\n\
         VirusEvent /usr/local/bin/alert --name %v\n\
         MoatDetectionLog /var/log/moat/detections.jsonl\n",
    );
    assert_eq!(
        c.moat_detection_log,
        Some(PathBuf::from("/var/log/moat/detections.jsonl"))
    );
    assert!(c.unused_keys().iter().all(|k| k.key != "MoatDetectionLog"));
    assert_eq!(c.on_access_include_paths, [PathBuf::from("/home")]);
    assert_eq!(c.on_access_exclude_paths.len(), 1);
    assert_eq!(
        c.on_access_exclude_paths[0].as_str(),
        "^/home/[^/]+/\\.cache$"
    );
    assert!(c.on_access_exclude_paths[0].is_match(Path::new("/home/ann/.cache")));
    assert!(!c.on_access_exclude_paths[0].is_match(Path::new("/home/ann/xcache")));
    assert_eq!(c.on_access_mount_paths, [PathBuf::from("/srv")]);
    assert!(c.on_access_disable_ddd);
    assert!(c.on_access_prevention);
    assert!(c.on_access_extra_scanning);
    assert!(c.on_access_exclude_root_uid);
    assert_eq!(c.on_access_exclude_uids, [1000]);
    assert_eq!(c.on_access_exclude_unames, ["backup"]);
    assert_eq!(c.on_access_max_file_size, Some(10 << 20));
    assert_eq!(c.on_access_max_threads, 8);
    assert_eq!(c.on_access_curl_timeout, Duration::from_millis(2500));
    assert_eq!(c.on_access_retry_attempts, 2);
    assert!(c.on_access_deny_on_error);
    assert_eq!(c.on_access_scan_timeout, Duration::from_millis(1500));
    assert_eq!(c.on_access_coverage, Coverage::Directory);
    assert_eq!(c.database_directory, PathBuf::from("/opt/db"));
    assert_eq!(c.log_file, Some(PathBuf::from("/var/log/moat.log")));
    assert!(c.log_verbose && c.log_time && c.log_syslog);
    assert_eq!(c.local_socket, Some(PathBuf::from("/run/clamd.sock")));
    assert_eq!(c.tcp_socket, Some(3310));
    assert_eq!(c.tcp_addrs, ["127.0.0.1"]);
    assert_eq!(c.stream_max_length, Some(25 << 20));
    assert_eq!(c.temporary_directory, Some(PathBuf::from("/var/tmp/moat")));
    assert_eq!(c.max_file_size, Some(30 << 20));
    assert_eq!(c.max_scan_size, Some(1 << 30));
    assert_eq!(c.max_recursion, 10);
    assert_eq!(c.max_files, 500);
    assert_eq!(c.max_script_normalize, Some(7 << 10));
    assert_eq!(
        c.virus_event.as_deref(),
        Some("/usr/local/bin/alert --name %v")
    );
    assert!(c.unused_keys().is_empty());
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
}

#[test]
fn repeatable_keys_accumulate_in_order() {
    let c = parse(
        "OnAccessIncludePath /home\n\
         OnAccessIncludePath /srv/data files\n\
         OnAccessIncludePath /opt\n\
         OnAccessExcludePath /home/cache\n\
         OnAccessExcludePath ^/srv/tmp\n\
         OnAccessMountPath /mnt/a\n\
         OnAccessMountPath /mnt/b\n\
         OnAccessExcludeUID 1000\n\
         OnAccessExcludeUID 33\n\
         OnAccessExcludeUname www-data\n\
         OnAccessExcludeUname backup\n\
         TCPAddr 127.0.0.1\n\
         TCPAddr ::1\n\
         ExcludePath ^/proc/\n\
         ExcludePath ^/sys/\n",
    );
    assert_eq!(
        c.on_access_include_paths,
        [
            PathBuf::from("/home"),
            PathBuf::from("/srv/data files"),
            PathBuf::from("/opt")
        ]
    );
    let ex: Vec<_> = c
        .on_access_exclude_paths
        .iter()
        .map(|p| p.as_str())
        .collect();
    assert_eq!(ex, ["/home/cache", "^/srv/tmp"]);
    assert_eq!(
        c.on_access_mount_paths,
        [PathBuf::from("/mnt/a"), PathBuf::from("/mnt/b")]
    );
    assert_eq!(c.on_access_exclude_uids, [1000, 33]);
    assert_eq!(c.on_access_exclude_unames, ["www-data", "backup"]);
    assert_eq!(c.tcp_addrs, ["127.0.0.1", "::1"]);
    let excluded: Vec<&str> = c.exclude_paths.iter().map(|p| p.as_str()).collect();
    assert_eq!(excluded, ["^/proc/", "^/sys/"]);
    let unused: Vec<_> = c
        .unused_keys()
        .iter()
        .map(|u| (u.line, u.key.as_str(), u.value.as_str()))
        .collect();
    assert_eq!(unused, []);
    assert!(c.warnings().is_empty());
}

#[test]
fn repeated_single_key_keeps_the_first_value_like_clamd() {
    let c =
        parse("LogFile /x\nMaxThreads 3\nLogFile /y\nOnAccessMaxThreads 2\nOnAccessMaxThreads 9\n");
    assert_eq!(c.log_file, Some(PathBuf::from("/x")));
    assert_eq!(c.on_access_max_threads, 2);
    let w: Vec<String> = c.warnings().iter().map(|w| w.to_string()).collect();
    assert_eq!(
        w,
        [
            format!("{P}:3: LogFile: repeated; the value of line 1 is kept (clamd also keeps the first)"),
            format!("{P}:5: OnAccessMaxThreads: repeated; the value of line 4 is kept (clamd also keeps the first)"),
        ]
    );
    // A bad repeated value is still an error.
    let msg = err_msg("LogTime yes\nLogTime maybe\n");
    assert_eq!(
        msg,
        format!("{P}:2: LogTime: expected yes/no, true/false or 1/0, got \"maybe\"")
    );
}

#[test]
fn booleans_in_all_spellings() {
    let bool_keys: Vec<&str> = moat_config::known_keys()
        .iter()
        .filter(|k| k.kind == ValueKind::Bool)
        .map(|k| k.name)
        .collect();
    assert!(bool_keys.len() > 50);
    for (spelling, expected) in [
        ("yes", true),
        ("Yes", true),
        ("YES", true),
        ("true", true),
        ("True", true),
        ("TRUE", true),
        ("1", true),
        ("no", false),
        ("No", false),
        ("NO", false),
        ("false", false),
        ("False", false),
        ("FALSE", false),
        ("0", false),
    ] {
        let c = parse(&format!(
            "OnAccessPrevention {spelling}\nLogTime {spelling}\nScanPE {spelling}\n"
        ));
        assert_eq!(c.on_access_prevention, expected, "{spelling}");
        assert_eq!(c.log_time, expected, "{spelling}");
        assert_eq!(c.unused_keys()[0].value, spelling);
        // Every boolean key takes every spelling.
        let all: String = bool_keys
            .iter()
            .map(|k| format!("{k} {spelling}\n"))
            .collect();
        parse(&all);
    }
    for bad in ["on", "off", "y", "2", "enabled"] {
        let msg = err_msg(&format!("OnAccessDenyOnError {bad}\n"));
        assert_eq!(
            msg,
            format!(
                "{P}:1: OnAccessDenyOnError: expected yes/no, true/false or 1/0, got \"{bad}\""
            )
        );
    }
}

#[test]
fn sizes() {
    for (text, expected) in [
        ("1", Some(1)),
        ("4096", Some(4096)),
        ("10k", Some(10 << 10)),
        ("10K", Some(10 << 10)),
        ("5m", Some(5 << 20)),
        ("5M", Some(5 << 20)),
        ("2g", Some(2u64 << 30)),
        ("2G", Some(2u64 << 30)),
        ("5000M", Some(5000u64 << 20)),
        ("0", None),
        ("0M", None),
    ] {
        let c = parse(&format!("OnAccessMaxFileSize {text}\nMaxScanSize {text}\n"));
        assert_eq!(c.on_access_max_file_size, expected, "{text}");
        assert_eq!(c.max_scan_size, expected, "{text}");
    }
    // Overflow: clamd clamps to its maximum with a warning; moat: no limit, with a warning.
    let c = parse("MaxFileSize 99999999999999999999\n");
    assert_eq!(c.max_file_size, None);
    assert_eq!(c.warnings().len(), 1);
    assert!(c.warnings()[0]
        .to_string()
        .starts_with(&format!("{P}:1: MaxFileSize: ")));

    for bad in ["10X", "1.5M", "1T", "-1", "1 M", "1MB", "M"] {
        let msg = err_msg(&format!("\nStreamMaxLength {bad}\n"));
        assert_eq!(
            msg,
            format!(
                "{P}:2: StreamMaxLength: expected a size (bytes, or a number with a K, M or G suffix), got \"{bad}\""
            )
        );
    }
    // Unused size keys are checked too.
    assert!(err_msg("LogFileMaxSize lots\n").contains("LogFileMaxSize: expected a size"));
    // MaxScanTime is documented as SIZE but clamd only takes a number.
    assert!(err_msg("MaxScanTime 10M\n").contains("MaxScanTime: expected a number"));
}

#[test]
fn numbers() {
    let c = parse("OnAccessMaxThreads 010\nOnAccessRetryAttempts 4294967295\n");
    assert_eq!(c.on_access_max_threads, 10);
    assert_eq!(c.on_access_retry_attempts, u32::MAX);
    assert_eq!(
        err_msg("OnAccessMaxThreads many"),
        format!("{P}:1: OnAccessMaxThreads: expected a number, got \"many\"")
    );
    assert_eq!(
        err_msg("OnAccessMaxThreads 0"),
        format!("{P}:1: OnAccessMaxThreads: must be at least 1, got \"0\"")
    );
    assert_eq!(
        err_msg("MaxFiles 99999999999"),
        format!("{P}:1: MaxFiles: number too large (at most 4294967295), got \"99999999999\"")
    );
    for bad in ["-3", "+7", "0x10", "3x", "10M"] {
        assert!(err_msg(&format!("MaxRecursion {bad}")).contains("expected a number"));
    }
    assert_eq!(
        err_msg("TCPSocket 99999"),
        format!("{P}:1: TCPSocket: expected a port number (0 to 65535), got \"99999\"")
    );
}

#[test]
fn durations_and_coverage() {
    for (text, ms) in [("5000", 5000), ("250ms", 250), ("3s", 3000), ("3S", 3000)] {
        let c = parse(&format!("OnAccessScanTimeout {text}"));
        assert_eq!(
            c.on_access_scan_timeout,
            Duration::from_millis(ms),
            "{text}"
        );
    }
    assert!(err_msg("OnAccessScanTimeout 0").contains("greater than zero"));
    assert!(
        err_msg("OnAccessScanTimeout 1.5s").contains("OnAccessScanTimeout: expected a duration")
    );
    for (text, cov) in [
        ("filesystem", Coverage::Filesystem),
        ("Directory", Coverage::Directory),
    ] {
        assert_eq!(
            parse(&format!("OnAccessCoverage {text}")).on_access_coverage,
            cov
        );
    }
    assert_eq!(
        err_msg("OnAccessCoverage mount"),
        format!("{P}:1: OnAccessCoverage: expected \"filesystem\" or \"directory\", got \"mount\"")
    );
    let info = moat_config::key_info("OnAccessCoverage").unwrap();
    assert!(info.moat_extension && info.used);
    assert_eq!(Config::default().on_access_tracking, Tracking::Auto);
    for (text, t) in [
        ("auto", Tracking::Auto),
        ("FANOTIFY", Tracking::Fanotify),
        ("inotify", Tracking::Inotify),
    ] {
        assert_eq!(
            parse(&format!("OnAccessTracking {text}")).on_access_tracking,
            t
        );
    }
    assert_eq!(
        err_msg("OnAccessTracking dnotify"),
        format!(
            "{P}:1: OnAccessTracking: expected \"auto\", \"fanotify\" or \"inotify\", got \"dnotify\""
        )
    );
    let info = moat_config::key_info("OnAccessTracking").unwrap();
    assert!(info.moat_extension && info.used);
    assert!(
        !moat_config::key_info("OnAccessPrevention")
            .unwrap()
            .moat_extension
    );
}

#[test]
fn unknown_key_is_an_error_with_file_line_and_key() {
    assert_eq!(
        err_msg("LogTime yes\n\n# c\nBogus 1\n"),
        format!("{P}:4: Bogus: unknown option")
    );
    let e = parse_err("logtime yes\n");
    assert_eq!(e.line_errors()[0].kind, LineErrorKind::UnknownKey);
    assert_eq!(e.line_errors()[0].key.as_deref(), Some("logtime"));
    assert_eq!(
        e.to_string(),
        format!("{P}:1: logtime: unknown option (did you mean LogTime? option names are case-sensitive)")
    );
    // clamd has no Key=value form.
    assert!(err_msg("LogFile=/x").contains("LogFile=/x: unknown option"));
    // An old key clamd no longer knows at all.
    assert!(err_msg("ClamukoScanOnAccess yes").contains("unknown option"));
}

#[test]
fn example_line_is_an_error() {
    let msg = err_msg("##\n## Example config file\n##\n\n# Comment or remove the line below.\nExample\nLogTime yes\n");
    assert_eq!(
        msg,
        format!(
            "{P}:6: Example: this is ClamAV's unedited example file: review it and remove the \"Example\" line (clamd refuses to start with it too)"
        )
    );
    assert_eq!(
        parse_err("Example yes").line_errors()[0].kind,
        LineErrorKind::ExampleLine
    );
    // Commented out, it is fine.
    parse("#Example\n# Example\n");
}

#[test]
fn missing_value() {
    assert_eq!(
        err_msg("LogTime\n"),
        format!("{P}:1: LogTime: missing value")
    );
    assert_eq!(
        err_msg("  LogFile   \t \n"),
        format!("{P}:1: LogFile: missing value")
    );
}

#[test]
fn all_bad_lines_are_reported_in_order() {
    let e = parse_err("Bogus 1\nLogTime yes\nOnAccessMaxThreads many\nExample\nLogVerbose\n");
    let lines: Vec<(usize, LineErrorKind)> = e
        .line_errors()
        .iter()
        .map(|l| (l.line, l.kind.clone()))
        .collect();
    assert_eq!(
        lines,
        [
            (1, LineErrorKind::UnknownKey),
            (3, LineErrorKind::BadValue),
            (4, LineErrorKind::ExampleLine),
            (5, LineErrorKind::MissingValue),
        ]
    );
    let text = e.to_string();
    assert_eq!(text.lines().count(), 4);
    assert!(text.starts_with(&format!(
        "{P}:1: Bogus: unknown option\n{P}:3: OnAccessMaxThreads: "
    )));
}

#[test]
fn comments_are_whole_lines_only() {
    let c = parse("# LogTime yes\n   # LogVerbose yes\nLogSyslog yes\n");
    assert!(!c.log_time && !c.log_verbose && c.log_syslog);
    // A trailing "comment" is part of the value, as in clamd...
    let c = parse("LogFile /var/log/x.log # main log\n");
    assert_eq!(c.log_file, Some(PathBuf::from("/var/log/x.log # main log")));
    assert_eq!(c.warnings().len(), 1);
    assert!(c.warnings()[0].message.contains("no trailing comments"));
    // ...so it breaks typed values, and the message says why.
    assert_eq!(
        err_msg("LogTime yes # c"),
        format!(
            "{P}:1: LogTime: expected yes/no, true/false or 1/0, got \"yes # c\" (comments must be on a line of their own)"
        )
    );
    // A '#' inside a word is just a character.
    let c = parse("LogFile /var/log/a#b.log\n");
    assert_eq!(c.log_file, Some(PathBuf::from("/var/log/a#b.log")));
    assert!(c.warnings().is_empty());
}

#[test]
fn whitespace_tabs_and_trailing_blanks() {
    let c = parse(
        "  LogFile   /a/b  \t \n\
         LogTime\tyes\t\n\
         \t  DatabaseDirectory   /db dir  \n\
         OnAccessMaxThreads 7   \n",
    );
    assert_eq!(c.log_file, Some(PathBuf::from("/a/b")));
    assert!(c.log_time);
    assert_eq!(c.database_directory, PathBuf::from("/db dir"));
    assert_eq!(c.on_access_max_threads, 7);
}

#[test]
fn crlf_lines() {
    let c = parse("LogTime yes\r\nLogFile /var/log/x.log\r\n\r\n# comment\r\nOnAccessIncludePath /home\r\nOnAccessMaxFileSize 1M\r\n");
    assert!(c.log_time);
    assert_eq!(c.log_file, Some(PathBuf::from("/var/log/x.log")));
    assert_eq!(c.on_access_include_paths, [PathBuf::from("/home")]);
    assert_eq!(c.on_access_max_file_size, Some(1 << 20));
    // Line numbers are still right.
    assert_eq!(
        err_msg("LogTime yes\r\n\r\nBogus 1\r\n"),
        format!("{P}:3: Bogus: unknown option")
    );
    // No final newline.
    assert!(parse("LogTime yes").log_time);
}

#[test]
fn deprecated_keys_warn() {
    let c = parse("ScanOnAccess yes\nMailFollowURLs whatever\nLogTime yes\n");
    assert!(c.log_time);
    let w: Vec<(usize, &str)> = c
        .warnings()
        .iter()
        .map(|w| (w.line, w.key.as_str()))
        .collect();
    assert_eq!(w, [(1, "ScanOnAccess"), (2, "MailFollowURLs")]);
    assert!(c.warnings()[0].to_string().starts_with(&format!(
        "{P}:1: ScanOnAccess: deprecated since ClamAV 0.102 and ignored"
    )));
    assert!(c.unused_keys().is_empty());
    // Old keys clamd still type-checks are plain unused keys.
    let c = parse("AlgorithmicDetection no\nPreludeEnable no\nDevACOnly no\n");
    assert_eq!(c.unused_keys().len(), 3);
    assert!(err_msg("AlgorithmicDetection maybe").contains("AlgorithmicDetection: expected yes/no"));
}

#[test]
fn unused_keys_are_recorded_and_checked() {
    let c = parse("ScanPE yes\nPidFile /run/clamd.pid\nSelfCheck 12\nMaxEmbeddedPE 10M\nLogFacility LOG_LOCAL6\n");
    let got: Vec<_> = c
        .unused_keys()
        .iter()
        .map(|u| (u.line, u.key.as_str(), u.value.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (1, "ScanPE", "yes"),
            (2, "PidFile", "/run/clamd.pid"),
            (3, "SelfCheck", "12"),
            (4, "MaxEmbeddedPE", "10M"),
            (5, "LogFacility", "LOG_LOCAL6"),
        ]
    );
    assert_eq!(
        err_msg("ScanPE\tperhaps"),
        format!("{P}:1: ScanPE: expected yes/no, true/false or 1/0, got \"perhaps\"")
    );
}

#[test]
fn exclude_uid_zero_disables_the_option_like_clamav() {
    let c = parse("OnAccessExcludeUID 1000\nOnAccessExcludeUID 0\nOnAccessExcludeUID 33\n");
    assert!(c.on_access_exclude_uids.is_empty());
    assert_eq!(c.warnings().len(), 1);
    assert_eq!(c.warnings()[0].line, 2);
    assert!(c.warnings()[0].message.contains("OnAccessExcludeRootUID"));
}

#[test]
fn bad_exclude_regex() {
    let e = parse_err("OnAccessExcludePath /home/(cache\n");
    let l = &e.line_errors()[0];
    assert_eq!((l.line, l.kind.clone()), (1, LineErrorKind::BadValue));
    assert!(e.to_string().starts_with(&format!(
        "{P}:1: OnAccessExcludePath: invalid regular expression \"/home/(cache\""
    )));
}

#[test]
fn unames_are_not_resolved_while_parsing() {
    let c = parse("OnAccessExcludeUname no-such-user-moat\nOnAccessExcludeUname root\n");
    assert_eq!(c.on_access_exclude_unames, ["no-such-user-moat", "root"]);
    assert!(moat_config::resolve_unames(&c.on_access_exclude_unames[1..]).unwrap() == [0]);
    assert!(moat_config::resolve_unames(&c.on_access_exclude_unames).is_err());
}

#[test]
fn unreadable_file_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.conf");
    let e = Config::load(&missing).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }));
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!("cannot read {}: ", missing.display())),
        "{msg}"
    );
    assert!(e.line_errors().is_empty());
    // A directory is not a file.
    let e = Config::load(dir.path()).unwrap_err();
    assert!(e
        .to_string()
        .starts_with(&format!("cannot read {}: ", dir.path().display())));
}

#[test]
fn load_from_disk_and_non_utf8_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clamd.conf");
    std::fs::write(
        &path,
        b"LogTime yes\nLogFile /var/log/\xff.log\nOnAccessPrevention yes\n",
    )
    .unwrap();
    let e = Config::load(&path).unwrap_err();
    assert_eq!(e.line_errors().len(), 1);
    assert_eq!(e.line_errors()[0].kind, LineErrorKind::NotUtf8);
    assert_eq!(
        e.to_string(),
        format!(
            "{}:2: LogFile: the line is not valid UTF-8 (byte 18 of the line)",
            path.display()
        )
    );
    std::fs::write(&path, "OnAccessIncludePath /home\nOnAccessPrevention yes\n").unwrap();
    let c = Config::load(&path).unwrap();
    assert_eq!(c.source(), Some(path.as_path()));
    assert!(c.on_access_prevention);
}

#[test]
fn errors_and_warnings_are_send_sync_and_std_errors() {
    fn assert_traits<T: Send + Sync + std::error::Error + 'static>() {}
    assert_traits::<ConfigError>();
    assert_traits::<moat_config::UnameError>();
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Config>();
}

#[test]
fn server_keys_for_moat_serve() {
    let d = parse("");
    assert_eq!(
        (d.max_threads, d.max_queue, d.max_connection_queue_length),
        (10, 100, 200)
    );
    assert_eq!(d.read_timeout, std::time::Duration::from_secs(120));
    assert_eq!(d.send_buf_timeout, std::time::Duration::from_millis(500));
    assert!(d.fix_stale_socket && d.allow_all_match_scan && d.cross_filesystems);
    let c = parse(
        "LocalSocketMode 660\nLocalSocketGroup clamav\nFixStaleSocket no\nMaxThreads 3\n\
         MaxQueue 7\nCommandReadTimeout 4\nReadTimeout 9\nSendBufTimeout 250\nIdleTimeout 2\n\
         AllowAllMatchScan no\nFollowFileSymlinks yes\nMaxDirectoryRecursion 3\n",
    );
    assert_eq!(c.local_socket_mode, Some(0o660));
    assert_eq!(c.local_socket_group.as_deref(), Some("clamav"));
    assert!(!c.fix_stale_socket && !c.allow_all_match_scan && c.follow_file_symlinks);
    assert_eq!(
        (c.max_threads, c.max_queue, c.max_directory_recursion),
        (3, 7, 3)
    );
    assert_eq!(c.command_read_timeout, std::time::Duration::from_secs(4));
    assert_eq!(c.read_timeout, std::time::Duration::from_secs(9));
    assert_eq!(c.send_buf_timeout, std::time::Duration::from_millis(250));
    assert_eq!(c.idle_timeout, std::time::Duration::from_secs(2));
    assert!(c.unused_keys().is_empty());
    assert_eq!(
        err_msg("LocalSocketMode rw"),
        format!("{P}:1: LocalSocketMode: expected an octal mode such as 660, got \"rw\"")
    );
}

/// clamscan's `--detect-pua` and `--bytecode-unsigned` as clamd.conf keys (off by default,
/// as in clamd), read by `moat watch` and `moat serve` when they load the database.
#[test]
fn database_loading_keys() {
    let c = parse("LogTime yes\n");
    assert!(!c.detect_pua && !c.bytecode_unsigned);
    let c = parse("DetectPUA yes\nBytecodeUnsigned true\n");
    assert!(c.detect_pua && c.bytecode_unsigned);
    assert!(c.unused_keys().is_empty(), "{:?}", c.unused_keys());
    assert!(err_msg("DetectPUA maybe\n").contains("DetectPUA"));
}

#[test]
fn control_socket_and_metrics_address_are_moat_keys_off_by_default() {
    let d = Config::default();
    assert_eq!(
        (d.moat_control_socket, d.moat_metrics_address),
        (None, None)
    );
    let c = parse("MoatControlSocket /run/x/ctl.sock\nMoatMetricsAddress 127.0.0.1:9321\n");
    assert_eq!(
        c.moat_control_socket,
        Some(std::path::PathBuf::from("/run/x/ctl.sock"))
    );
    assert_eq!(c.moat_metrics_address.as_deref(), Some("127.0.0.1:9321"));
    for key in ["MoatControlSocket", "MoatMetricsAddress"] {
        let info = moat_config::key_info(key).unwrap();
        assert!(info.moat_extension && info.used, "{key}");
    }
}

#[test]
fn clamd_sockets_take_clamav_milters_syntax_and_bad_ones_name_the_line() {
    let c = parse("ClamdSocket unix:/run/clamav/clamd.ctl\nClamdSocket tcp:scan2.example:3311\n");
    assert_eq!(
        c.clamd_sockets,
        [
            moat_config::ClamdEndpoint::Unix(PathBuf::from("/run/clamav/clamd.ctl")),
            moat_config::ClamdEndpoint::Tcp {
                host: "scan2.example".into(),
                port: 3311
            }
        ]
    );
    assert!(Config::default().clamd_sockets.is_empty());
    let msg = err_msg("LogTime yes\nClamdSocket /run/clamav/clamd.ctl\n");
    assert!(
        msg.starts_with("/etc/clamav/clamd.conf:2: ClamdSocket: \"/run/clamav/clamd.ctl\": expected unix:PATH or tcp:HOST[:PORT]"),
        "{msg}"
    );
}

#[test]
fn enable_command_keys_of_clamd_1_5_default_to_yes() {
    let d = Config::default();
    assert!(
        d.enable_shutdown_command
            && d.enable_reload_command
            && d.enable_version_command
            && d.enable_stats_command
    );
    let c = parse(
        "EnableShutdownCommand no\nEnableReloadCommand no\nEnableVersionCommand no\n\
         EnableStatsCommand no\n",
    );
    assert!(
        !c.enable_shutdown_command
            && !c.enable_reload_command
            && !c.enable_version_command
            && !c.enable_stats_command
    );
    assert_eq!(
        err_msg("EnableStatsCommand maybe\n"),
        format!("{P}:1: EnableStatsCommand: expected yes/no, true/false or 1/0, got \"maybe\"")
    );
}

#[test]
fn on_access_events_lists_and_errors() {
    use moat_config::Events;
    let d = parse("").on_access_events;
    assert_eq!((d.open, d.exec, d.close), (true, true, false));
    assert_eq!(d.to_string(), "open,exec");
    let e: Events = parse("OnAccessEvents exec, Close").on_access_events;
    assert_eq!((e.open, e.exec, e.close), (false, true, true));
    assert_eq!(
        err_msg("OnAccessEvents open,read"),
        format!(
            "{P}:1: OnAccessEvents: expected a comma list of \"open\", \"exec\" and \"close\", got \"read\""
        )
    );
    assert!(err_msg("OnAccessEvents open,,exec").contains("got \"\""));
}

#[test]
fn on_access_exclude_exe_with_and_without_children() {
    let c = parse(
        "OnAccessExcludeExe /usr/bin/rsync\nOnAccessExcludeExe /opt/my backup/run +children\n",
    );
    let got: Vec<(PathBuf, bool)> = c
        .on_access_exclude_exes
        .iter()
        .map(|x| (x.path.clone(), x.children))
        .collect();
    assert_eq!(
        got,
        [
            (PathBuf::from("/usr/bin/rsync"), false),
            (PathBuf::from("/opt/my backup/run"), true)
        ]
    );
    // A path that merely ends in the word is a path.
    assert!(!parse("OnAccessExcludeExe /opt/x+children").on_access_exclude_exes[0].children);
    assert_eq!(
        err_msg("OnAccessExcludeExe rsync"),
        format!("{P}:1: OnAccessExcludeExe: expected an absolute path, got \"rsync\"")
    );
}
