//! Directory coverage against the real kernel, observed through a *notification* group
//! (`FAN_OPEN`): whether opening a file raises an event tells whether its directory is
//! marked, and nothing can ever block. Needs root (fanotify); skipped otherwise unless
//! `MOAT_REQUIRE_PRIVILEGED=1`.
//!
//! The tracker thread is not running here: the tests change the tree behind the coverage's
//! back and then call its methods (or `resync`, the overflow path) directly.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use moat_fanotify::{EventBuffer, Group, InitFlags, Mask};
use moat_guard::{Policy, PolicySettings};
use moat_watch::coverage::DirectoryCoverage;

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
    )
    .unwrap();
    (t, root, g, cov)
}

#[test]
fn cover_marks_every_directory_but_excluded_ones() {
    if !moat_testkit::privileged() {
        return;
    }
    let (_t, root, g, mut cov) = setup(&["skip\\.d$"]);
    cov.cover().unwrap();
    // w, a, b, c (skip.d and skip.d/inner excluded).
    assert_eq!(cov.len(), 4);
    assert!(covered(&g, &root.join("a/b/c/f")));
    assert!(covered(&g, &root.join("a/f")));
    assert!(!covered(&g, &root.join("skip.d/inner/f")));
    assert_eq!(cov.counts().failed, 0);
}

#[test]
fn move_out_removes_marks_through_file_handles() {
    if !moat_testkit::privileged() {
        return;
    }
    let (t, root, g, mut cov) = setup(&[]);
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

#[test]
fn resync_reconciles_what_was_missed() {
    if !moat_testkit::privileged() {
        return;
    }
    let (t, root, g, mut cov) = setup(&[]);
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

#[test]
fn add_child_covers_a_whole_new_subtree_and_reports_its_files() {
    if !moat_testkit::privileged() {
        return;
    }
    let (_t, root, g, mut cov) = setup(&[]);
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
