//! Directory coverage against the real kernel, observed through a *notification* group
//! (`FAN_OPEN`): whether opening a file raises an event tells whether its directory is
//! marked, and nothing can ever block. Needs root (fanotify); skipped otherwise unless
//! `MOAT_REQUIRE_PRIVILEGED=1`.
//!
//! The tracker thread is not running here: the tests change the tree behind the coverage's
//! back and then call its methods (or `resync`, the overflow path) directly. Every test runs
//! with both tracking backends (`<test>::fanotify`, `<test>::inotify`); the last ones run
//! the tracker thread on the fanotify backend.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use moat_fanotify::{EventBuffer, Group, InitFlags, Mask};
use moat_guard::{Policy, PolicySettings};
use moat_watch::coverage::{Backend, DirectoryCoverage, TrackingMode};

/// Runs `$name(mode)` once per tracking backend, as `$name::fanotify` and `$name::inotify`.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn fanotify() {
                super::$name(moat_watch::coverage::TrackingMode::Fanotify)
            }
            #[test]
            fn inotify() {
                super::$name(moat_watch::coverage::TrackingMode::Inotify)
            }
        }
    )*};
}

both_backends!(
    cover_marks_every_directory_but_excluded_ones,
    move_out_removes_marks_through_file_handles,
    resync_reconciles_what_was_missed,
    add_child_covers_a_whole_new_subtree_and_reports_its_files,
    rename_inside_keeps_marks_and_paths,
    delete_forgets_the_subtree,
);

const MASK: Mask = Mask::OPEN.union(Mask::EVENT_ON_CHILD);

fn group() -> Arc<Group> {
    Arc::new(
        Group::init(
            InitFlags::CLASS_NOTIF | InitFlags::CLOEXEC | InitFlags::NONBLOCK,
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
        .unwrap(),
    )
}

fn policy(root: &Path, excludes: &[&str]) -> Arc<Policy> {
    Arc::new(
        Policy::new(PolicySettings {
            include_paths: vec![root.to_path_buf()],
            exclude_patterns: excludes.iter().map(|s| s.to_string()).collect(),
            own_pid: -1,
            ..Default::default()
        })
        .unwrap(),
    )
}

/// Opens `file` and reports whether the group saw an open event for it.
fn covered(group: &Group, file: &Path) -> bool {
    let mut buf = EventBuffer::new();
    // Drain anything older first.
    while group.read_events(&mut buf).is_ok_and(|e| e.len() > 0) {}
    drop(fs::File::open(file).unwrap());
    if !group.wait(Some(Duration::from_millis(200))).unwrap() {
        return false;
    }
    let want = file.canonicalize().unwrap();
    let seen = group
        .read_events(&mut buf)
        .unwrap()
        .any(|ev| ev.path().is_ok_and(|p| p == want));
    seen
}

fn touch(path: &Path) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, b"x").unwrap();
}

fn setup(
    excludes: &[&str],
    mode: TrackingMode,
) -> (
    tempfile::TempDir,
    std::path::PathBuf,
    Arc<Group>,
    DirectoryCoverage,
) {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().canonicalize().unwrap().join("w");
    touch(&root.join("a/b/c/f"));
    touch(&root.join("a/f"));
    touch(&root.join("skip.d/inner/f"));
    let g = group();
    let cov = DirectoryCoverage::new(
        Arc::clone(&g),
        MASK,
        vec![root.clone()],
        policy(&root, excludes),
        mode,
    )
    .unwrap();
    let want = match mode {
        TrackingMode::Fanotify => Backend::Fanotify,
        _ => Backend::Inotify,
    };
    assert_eq!(cov.tracking().backend, want);
    assert_eq!(cov.tracking().fallback, None);
    (t, root, g, cov)
}

fn cover_marks_every_directory_but_excluded_ones(mode: TrackingMode) {
    if !moat_testkit::privileged() {
        return;
    }
    let (_t, root, g, mut cov) = setup(&["skip\\.d$"], mode);
    cov.cover().unwrap();
    // w, a, b, c (skip.d and skip.d/inner excluded).
    assert_eq!(cov.len(), 4);
    assert!(covered(&g, &root.join("a/b/c/f")));
    assert!(covered(&g, &root.join("a/f")));
    assert!(!covered(&g, &root.join("skip.d/inner/f")));
    assert_eq!(cov.counts().failed, 0);
}

fn move_out_removes_marks_through_file_handles(mode: TrackingMode) {
    if !moat_testkit::privileged() {
        return;
    }
    let (t, root, g, mut cov) = setup(&[], mode);
    cov.cover().unwrap();
    let outside = t.path().join("outside");
    fs::rename(root.join("a"), &outside).unwrap();
    assert!(
        covered(&g, &outside.join("b/c/f")),
        "still marked before the event"
    );
    let top = wd_of(&cov, &root);
    cov.move_out(top, "a".as_ref());
    assert!(!covered(&g, &outside.join("b/c/f")));
    assert!(!covered(&g, &outside.join("f")));
    assert_eq!(cov.counts().unmarked, 3);
    assert_eq!(cov.len(), 3, "w, skip.d, inner");
}

fn resync_reconciles_what_was_missed(mode: TrackingMode) {
    if !moat_testkit::privileged() {
        return;
    }
    let (t, root, g, mut cov) = setup(&[], mode);
    cov.cover().unwrap();
    // Behind the tracker's back: a new subtree, a subtree moved out, a rename inside.
    touch(&root.join("new/x/y/f"));
    fs::rename(root.join("skip.d"), t.path().join("gone")).unwrap();
    fs::rename(root.join("a/b"), root.join("moved")).unwrap();
    assert!(!covered(&g, &root.join("new/x/y/f")));
    cov.resync();
    assert!(covered(&g, &root.join("new/x/y/f")));
    assert!(!covered(&g, &t.path().join("gone/inner/f")));
    assert!(covered(&g, &root.join("moved/c/f")));
    let c = wd_of(&cov, &root.join("moved/c"));
    assert_eq!(cov.path(c).unwrap(), root.join("moved/c"));
    assert_eq!(cov.counts().resyncs, 1);
    // w a moved c new x y
    assert_eq!(cov.len(), 7);
}

fn add_child_covers_a_whole_new_subtree_and_reports_its_files(mode: TrackingMode) {
    if !moat_testkit::privileged() {
        return;
    }
    let (_t, root, g, mut cov) = setup(&[], mode);
    cov.cover().unwrap();
    touch(&root.join("fresh/p/q/f"));
    touch(&root.join("fresh/g"));
    let mut files = Vec::new();
    cov.add_child(wd_of(&cov, &root), "fresh".as_ref(), &mut |p| {
        files.push(p.to_path_buf())
    });
    assert!(covered(&g, &root.join("fresh/p/q/f")));
    files.sort();
    assert_eq!(files, vec![root.join("fresh/g"), root.join("fresh/p/q/f")]);
}

/// The watch descriptor of a tracked directory, found through the coverage's own paths.
fn wd_of(cov: &DirectoryCoverage, dir: &Path) -> i32 {
    (1..100_000)
        .find(|&wd| cov.path(wd).as_deref() == Some(dir))
        .unwrap_or_else(|| panic!("{} not tracked", dir.display()))
}

fn rename_inside_keeps_marks_and_paths(mode: TrackingMode) {
    if !moat_testkit::privileged() {
        return;
    }
    let (_t, root, g, mut cov) = setup(&[], mode);
    cov.cover().unwrap();
    fs::rename(root.join("a/b"), root.join("skip.d/b2")).unwrap();
    let (a, s) = (
        wd_of(&cov, &root.join("a")),
        wd_of(&cov, &root.join("skip.d")),
    );
    cov.rename((a, "b".as_ref()), (s, "b2".as_ref()), &mut |_| {});
    let c = wd_of(&cov, &root.join("skip.d/b2/c"));
    assert_eq!(cov.path(c).unwrap(), root.join("skip.d/b2/c"));
    assert!(covered(&g, &root.join("skip.d/b2/c/f")));
    assert_eq!(cov.len(), 6);
    assert_eq!(cov.counts().unmarked, 0);
}

fn delete_forgets_the_subtree(mode: TrackingMode) {
    if !moat_testkit::privileged() {
        return;
    }
    let (_t, root, _g, mut cov) = setup(&[], mode);
    cov.cover().unwrap();
    fs::remove_dir_all(root.join("a")).unwrap();
    cov.deleted(wd_of(&cov, &root), "a".as_ref());
    assert_eq!(cov.len(), 3, "w, skip.d, inner");
    // Re-created under the same name: a new directory, covered again.
    touch(&root.join("a/f"));
    cov.add_child(wd_of(&cov, &root), "a".as_ref(), &mut |_| {});
    assert_eq!(cov.len(), 4);
}

/// The tracker thread on the fanotify backend, driven by the real kernel's events.
mod tracker_thread {
    use super::*;
    use moat_watch::Stop;

    /// Runs the tracker on a covered tree; `f` changes the tree and checks.
    fn with_tracker(f: impl FnOnce(&Path, &Path, &Group)) {
        if !moat_testkit::privileged() {
            return;
        }
        let (t, root, g, mut cov) = setup(&[], TrackingMode::Fanotify);
        cov.place_marks().unwrap();
        let stop = Arc::new(Stop::new().unwrap());
        let s = Arc::clone(&stop);
        let th = std::thread::spawn(move || moat_watch::tracker::run(cov, &s, None));
        f(&root, t.path(), &g);
        stop.trigger();
        let cov = th.join().unwrap();
        assert_eq!(cov.counts().failed, 0);
        assert_eq!(cov.counts().resyncs, 0);
    }

    /// Waits (bounded) until `file` is covered or not, as wanted.
    fn eventually(g: &Group, file: &Path, want: bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while covered(g, file) != want {
            assert!(
                std::time::Instant::now() < deadline,
                "{}: covered should be {want}",
                file.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn mkdir_rename_move_in_move_out_and_rmdir() {
        with_tracker(|root, tmp, g| {
            // Created after start.
            touch(&root.join("new/x/f"));
            eventually(g, &root.join("new/x/f"), true);
            // Renamed inside the tree: still covered at the new place.
            fs::rename(root.join("new"), root.join("a/renamed")).unwrap();
            touch(&root.join("a/renamed/x/g"));
            assert!(covered(g, &root.join("a/renamed/x/g")));
            // Moved out: released.
            fs::rename(root.join("a/renamed"), tmp.join("out")).unwrap();
            eventually(g, &tmp.join("out/x/f"), false);
            // Moved in: covered.
            touch(&tmp.join("in/y/f"));
            fs::rename(tmp.join("in"), root.join("in")).unwrap();
            eventually(g, &root.join("in/y/f"), true);
            // Deleted and re-created under the same name.
            fs::remove_dir_all(root.join("in")).unwrap();
            touch(&root.join("in/z/f"));
            eventually(g, &root.join("in/z/f"), true);
        });
    }
}
