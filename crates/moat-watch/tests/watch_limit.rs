//! Running out of inotify watches at start: the error names the number of directories the
//! tree holds and the sysctl to run; the fanotify tracking backend is not limited by it. Needs root: it lowers `fs.inotify.max_user_watches` for
//! a moment (restored on drop, also on panic). Alone in its test binary, since cargo runs
//! test binaries one at a time, so no other test of this workspace adds watches meanwhile.

use std::fs;
use std::sync::Arc;

use moat_fanotify::{Group, InitFlags, Mask};
use moat_guard::{Policy, PolicySettings};
use moat_watch::coverage::{Backend, CoverError, DirectoryCoverage, TrackingMode};

const SYSCTL: &str = "/proc/sys/fs/inotify/max_user_watches";

/// The tests of this binary lower the same sysctl: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A tempdir holding 61 directories: itself, 30 children, one grandchild each.
fn tree_of_61() -> (tempfile::TempDir, std::path::PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().canonicalize().unwrap();
    for i in 0..30 {
        fs::create_dir_all(root.join(format!("d{i}/sub"))).unwrap();
    }
    (t, root)
}

/// Restores the sysctl on drop.
struct Lowered(String);

impl Drop for Lowered {
    fn drop(&mut self) {
        fs::write(SYSCTL, &self.0).expect("restore fs.inotify.max_user_watches");
    }
}

#[test]
fn watch_limit_names_the_directories_needed_and_the_command() {
    if !moat_testkit::privileged() {
        return;
    }
    let (_t, root) = tree_of_61();
    let group = Arc::new(Group::init(InitFlags::CLASS_NOTIF | InitFlags::CLOEXEC, 0).unwrap());
    let policy = Arc::new(Policy::new(PolicySettings::default()).unwrap());
    let mut cov = DirectoryCoverage::new(
        group,
        Mask::OPEN | Mask::EVENT_ON_CHILD,
        vec![root.clone()],
        policy,
        TrackingMode::Inotify,
    )
    .unwrap();
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let _restore = Lowered(fs::read_to_string(SYSCTL).unwrap());
    fs::write(SYSCTL, "20").unwrap();
    let err = cov.cover().unwrap_err();
    drop(_restore);
    match &err {
        CoverError::WatchLimit { needed, limit } => {
            assert_eq!((*needed, *limit), (61, 20), "root + 30 + 30");
        }
        other => panic!("unexpected error {other}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("hold 61 directories"), "{msg}");
    assert!(
        msg.contains("`sysctl fs.inotify.max_user_watches=1085`"),
        "{msg}"
    );
}

/// fanotify (forced, and chosen by auto) covers 61 directories with the inotify limit at
/// 20; inotify stops with its message.
#[test]
fn fanotify_tracking_covers_a_tree_larger_than_the_inotify_limit() {
    if !moat_testkit::privileged() {
        return;
    }
    let (_t, root) = tree_of_61();
    let cov = |mode| {
        let group = Arc::new(Group::init(InitFlags::CLASS_NOTIF | InitFlags::CLOEXEC, 0).unwrap());
        let policy = Arc::new(Policy::new(PolicySettings::default()).unwrap());
        DirectoryCoverage::new(
            group,
            Mask::OPEN | Mask::EVENT_ON_CHILD,
            vec![root.clone()],
            policy,
            mode,
        )
        .unwrap()
    };
    let (mut fan, mut ino) = (cov(TrackingMode::Fanotify), cov(TrackingMode::Inotify));
    let mut auto = cov(TrackingMode::Auto);
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let _restore = Lowered(fs::read_to_string(SYSCTL).unwrap());
    fs::write(SYSCTL, "20").unwrap();
    let fan_result = fan.cover();
    let auto_result = auto.cover();
    let ino_result = ino.cover();
    drop(_restore);
    fan_result.unwrap();
    assert_eq!(fan.tracking().backend, Backend::Fanotify);
    assert_eq!(fan.len(), 61, "root + 30 + 30, past a limit of 20");
    assert_eq!(fan.counts().failed, 0);
    auto_result.unwrap();
    assert_eq!(
        auto.tracking().backend,
        Backend::Fanotify,
        "auto picks fanotify here"
    );
    assert_eq!(auto.len(), 61);
    assert!(matches!(
        ino_result,
        Err(CoverError::WatchLimit {
            needed: 61,
            limit: 20
        })
    ));
}
