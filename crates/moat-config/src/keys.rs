//! The table of every key clamd 1.4 accepts in clamd.conf, plus moat's own keys.
//!
//! The list and the value types were taken from `man 5 clamd.conf` of ClamAV 1.4.6 and checked
//! against Debian's clamd 1.4.6 binary (each key probed with values of every type). Where the man
//! page and the binary disagree, the binary wins: `MaxScanTime`, `MaxPartitions` and `MaxIconsPE`
//! are documented as SIZE but clamd only takes a plain NUMBER for them.

/// The type of value a key takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// `yes`/`no`, `true`/`false`, `1`/`0`, in any letter case.
    Bool,
    /// An unsigned decimal integer.
    Number,
    /// A byte count, optionally with a `K`, `M` or `G` suffix (binary multiples).
    Size,
    /// Free text up to the end of the line (may contain spaces).
    String,
    /// A duration: milliseconds, or a number with an `ms` or `s` suffix (moat extension).
    Duration,
    /// An old key clamd still accepts with any value, ignores and warns about.
    Deprecated,
    /// The `Example` line of ClamAV's sample file: always an error.
    Example,
}

/// Static facts about one configuration key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyInfo {
    /// The key as written in the file (keys are case-sensitive).
    pub name: &'static str,
    /// The type of its value.
    pub kind: ValueKind,
    /// Whether the key may appear on several lines, each adding a value.
    pub repeatable: bool,
    /// Whether moat reads the value (otherwise it is recorded as known but unused).
    pub used: bool,
    /// Whether the key is a moat extension that ClamAV does not know.
    pub moat_extension: bool,
}

const fn k(name: &'static str, kind: ValueKind) -> KeyInfo {
    KeyInfo {
        name,
        kind,
        repeatable: false,
        used: false,
        moat_extension: false,
    }
}

const fn rep(mut info: KeyInfo) -> KeyInfo {
    info.repeatable = true;
    info
}

const fn used(mut info: KeyInfo) -> KeyInfo {
    info.used = true;
    info
}

const fn moat(mut info: KeyInfo) -> KeyInfo {
    info.used = true;
    info.moat_extension = true;
    info
}

use ValueKind::{Bool, Deprecated, Duration, Example, Number, Size, String as Str};

/// Every key moat accepts, sorted by name.
pub static KEYS: &[KeyInfo] = &[
    k("AlertBrokenExecutables", Bool),
    k("AlertBrokenMedia", Bool),
    k("AlertEncrypted", Bool),
    k("AlertEncryptedArchive", Bool),
    k("AlertEncryptedDoc", Bool),
    used(k("AlertExceedsMax", Bool)),
    k("AlertOLE2Macros", Bool),
    k("AlertPartitionIntersection", Bool),
    k("AlertPhishingCloak", Bool),
    k("AlertPhishingSSLMismatch", Bool),
    k("AlgorithmicDetection", Bool),
    used(k("AllowAllMatchScan", Bool)),
    k("AllowSupplementaryGroups", Deprecated),
    k("ArchiveBlockEncrypted", Bool),
    k("ArchiveBlockMax", Deprecated),
    k("ArchiveLimitMemoryUsage", Deprecated),
    k("ArchiveMaxCompressionRatio", Deprecated),
    k("ArchiveMaxFiles", Deprecated),
    k("ArchiveMaxRecursion", Deprecated),
    k("ArchiveMaxScanSize", Deprecated),
    k("BlockMax", Bool),
    k("Bytecode", Bool),
    k("BytecodeMode", Str),
    k("BytecodeSecurity", Str),
    k("BytecodeTimeout", Number),
    used(k("BytecodeUnsigned", Bool)),
    k("CacheSize", Number),
    moat(rep(k("ClamdSocket", Str))),
    used(k("CommandReadTimeout", Number)),
    k("ConcurrentDatabaseReload", Bool),
    used(k("CrossFilesystems", Bool)),
    used(k("DatabaseDirectory", Str)),
    k("Debug", Bool),
    k("DetectBrokenExecutables", Deprecated),
    used(k("DetectPUA", Bool)),
    k("DevACDepth", Number),
    k("DevACOnly", Bool),
    k("DevLiblog", Bool),
    k("DevPerformance", Bool),
    used(k("DisableCache", Bool)),
    k("DisableCertCheck", Bool),
    // The four Enable*Command keys are clamd 1.5's (ClamAV PR #1502); clamd 1.4 refuses them.
    used(k("EnableReloadCommand", Bool)),
    used(k("EnableShutdownCommand", Bool)),
    used(k("EnableStatsCommand", Bool)),
    used(k("EnableVersionCommand", Bool)),
    k("Example", Example),
    rep(k("ExcludePUA", Str)),
    used(rep(k("ExcludePath", Str))),
    k("ExitOnOOM", Bool),
    k("ExtendedDetectionInfo", Bool),
    k("FailIfCvdOlderThan", Number),
    used(k("FixStaleSocket", Bool)),
    used(k("FollowDirectorySymlinks", Bool)),
    used(k("FollowFileSymlinks", Bool)),
    k("ForceToDisk", Bool),
    k("Foreground", Bool),
    k("GenerateMetadataJson", Bool),
    k("HeuristicAlerts", Bool),
    k("HeuristicScanPrecedence", Bool),
    used(k("IdleTimeout", Number)),
    rep(k("IncludePUA", Str)),
    k("LeaveTemporaryFiles", Bool),
    used(k("LocalSocket", Str)),
    used(k("LocalSocketGroup", Str)),
    used(k("LocalSocketMode", Str)),
    k("LogClean", Bool),
    k("LogFacility", Str),
    used(k("LogFile", Str)),
    k("LogFileMaxSize", Size),
    k("LogFileUnlock", Bool),
    k("LogRotate", Bool),
    used(k("LogSyslog", Bool)),
    used(k("LogTime", Bool)),
    used(k("LogVerbose", Bool)),
    k("MailFollowURLs", Deprecated),
    k("MailMaxRecursion", Deprecated),
    used(k("MaxConnectionQueueLength", Number)),
    moat(k("MaxConnections", Number)),
    used(k("MaxDirectoryRecursion", Number)),
    k("MaxEmbeddedPE", Size),
    used(k("MaxFileSize", Size)),
    used(k("MaxFiles", Number)),
    k("MaxHTMLNoTags", Size),
    k("MaxHTMLNormalize", Size),
    k("MaxIconsPE", Number),
    k("MaxPartitions", Number),
    used(k("MaxQueue", Number)),
    k("MaxRecHWP3", Number),
    used(k("MaxRecursion", Number)),
    used(k("MaxScanSize", Size)),
    k("MaxScanTime", Number),
    used(k("MaxScriptNormalize", Size)),
    used(k("MaxThreads", Number)),
    k("MaxZipTypeRcg", Size),
    moat(k("MoatClamdHealthInterval", Duration)),
    moat(k("MoatControlSocket", Str)),
    moat(k("MoatDetectionLog", Str)),
    moat(k("MoatMetricsAddress", Str)),
    k("OLE2BlockMacros", Bool),
    k("OfficialDatabaseOnly", Bool),
    moat(k("OnAccessCoverage", Str)),
    used(k("OnAccessCurlTimeout", Number)),
    used(k("OnAccessDenyOnError", Bool)),
    used(k("OnAccessDisableDDD", Bool)),
    moat(k("OnAccessEvents", Str)),
    moat(rep(k("OnAccessExcludeExe", Str))),
    used(rep(k("OnAccessExcludePath", Str))),
    used(k("OnAccessExcludeRootUID", Bool)),
    used(rep(k("OnAccessExcludeUID", Number))),
    used(rep(k("OnAccessExcludeUname", Str))),
    used(k("OnAccessExtraScanning", Bool)),
    used(rep(k("OnAccessIncludePath", Str))),
    used(k("OnAccessMaxFileSize", Size)),
    used(k("OnAccessMaxThreads", Number)),
    used(rep(k("OnAccessMountPath", Str))),
    used(k("OnAccessPrevention", Bool)),
    used(k("OnAccessRetryAttempts", Number)),
    moat(k("OnAccessScanTimeout", Duration)),
    moat(k("OnAccessTracking", Str)),
    k("PCREMatchLimit", Number),
    k("PCREMaxFileSize", Size),
    k("PCRERecMatchLimit", Number),
    k("PartitionIntersection", Bool),
    k("PhishingAlwaysBlockCloak", Bool),
    k("PhishingAlwaysBlockSSLMismatch", Bool),
    k("PhishingScanURLs", Bool),
    k("PhishingSignatures", Bool),
    k("PidFile", Str),
    k("PreludeAnalyzerName", Str),
    k("PreludeEnable", Bool),
    used(k("ReadTimeout", Number)),
    used(k("ScanArchive", Bool)),
    k("ScanELF", Bool),
    used(k("ScanHTML", Bool)),
    k("ScanHWP3", Bool),
    k("ScanImage", Bool),
    k("ScanImageFuzzyHash", Bool),
    used(k("ScanMail", Bool)),
    used(k("ScanOLE2", Bool)),
    k("ScanOnAccess", Deprecated),
    k("ScanOneNote", Bool),
    used(k("ScanPDF", Bool)),
    k("ScanPE", Bool),
    k("ScanPartialMessages", Bool),
    k("ScanSWF", Bool),
    k("ScanXMLDOCS", Bool),
    k("SelfCheck", Number),
    used(k("SendBufTimeout", Number)),
    used(k("StreamMaxLength", Size)),
    k("StreamMaxPort", Number),
    k("StreamMinPort", Number),
    k("StructuredCCOnly", Bool),
    k("StructuredDataDetection", Bool),
    k("StructuredMinCreditCardCount", Number),
    k("StructuredMinSSNCount", Number),
    k("StructuredSSNFormatNormal", Bool),
    k("StructuredSSNFormatStripped", Bool),
    used(rep(k("TCPAddr", Str))),
    used(k("TCPSocket", Number)),
    used(k("TemporaryDirectory", Str)),
    k("User", Str),
    used(k("VirusEvent", Str)),
];

/// Looks a key up by its exact (case-sensitive) name.
pub fn lookup(name: &str) -> Option<&'static KeyInfo> {
    KEYS.binary_search_by(|info| info.name.cmp(name))
        .ok()
        .map(|i| &KEYS[i])
}

/// Finds a key that differs from `name` only in letter case (for "did you mean" hints).
pub fn lookup_ignore_case(name: &str) -> Option<&'static KeyInfo> {
    KEYS.iter()
        .find(|info| info.name.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique() {
        for pair in KEYS.windows(2) {
            assert!(
                pair[0].name < pair[1].name,
                "{} !< {}",
                pair[0].name,
                pair[1].name
            );
        }
    }

    #[test]
    fn lookup_finds_every_key() {
        for info in KEYS {
            assert_eq!(lookup(info.name), Some(info));
        }
        assert_eq!(lookup("logtime"), None);
        assert_eq!(
            lookup_ignore_case("logtime").map(|i| i.name),
            Some("LogTime")
        );
    }
}
