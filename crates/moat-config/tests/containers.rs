//! The container keys moat reads: which kinds are opened, and AlertExceedsMax.

use std::path::Path;

use moat_config::Config;

#[test]
fn container_keys_are_read_with_clamd_defaults() {
    let d = Config::parse("", Path::new("clamd.conf")).unwrap();
    assert!(d.scan_archive && d.scan_mail && d.scan_ole2 && d.scan_pdf && d.scan_html);
    assert!(!d.alert_exceeds_max);
    let text =
        "ScanArchive no\nScanMail no\nScanOLE2 no\nScanPDF no\nScanHTML no\nAlertExceedsMax yes\n";
    let c = Config::parse(text, Path::new("clamd.conf")).unwrap();
    assert!(!(c.scan_archive || c.scan_mail || c.scan_ole2 || c.scan_pdf || c.scan_html));
    assert!(c.alert_exceeds_max);
    assert!(c.unused_keys().is_empty(), "{:?}", c.unused_keys());
}
