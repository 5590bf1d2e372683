//! Tests against the real kernel. They need root (fanotify permission events); without it
//! they print `skipped: needs root (fanotify permission events)` and pass, unless
//! `MOAT_REQUIRE_PRIVILEGED=1`, where they fail.
//!
//! Safety: only directories created here (`tempfile::tempdir()`) are marked, with inode
//! marks; the responder thread never opens a watched file; every wait is bounded; a
//! child is killed and reaped on drop; dropping the group (also on panic) makes the kernel
//! allow whatever is still pending.

use std::fs;
use std::io::Write;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use moat_fanotify::{
    fd_path, FidKind, FileHandle, Fsid, Group, InitFlags, MarkKind, Mask, Response,
};
use moat_testkit::{
    exec_as_nobody, privileged, read_as_nobody, spawn_as, watched_dir, write_file, Action, NOBODY,
};

const ENFORCE: Mask = Mask::OPEN_PERM
    .union(Mask::OPEN_EXEC_PERM)
    .union(Mask::EVENT_ON_CHILD);
const IGNORE: Mask = Mask::OPEN_PERM.union(Mask::OPEN_EXEC_PERM);

fn content_group(dir: &Path) -> Arc<Group> {
    let g = Group::init(
        InitFlags::CLASS_CONTENT
            | InitFlags::UNLIMITED_QUEUE
            | InitFlags::CLOEXEC
            | InitFlags::NONBLOCK,
        libc::O_RDONLY | libc::O_CLOEXEC | libc::O_LARGEFILE,
    )
    .unwrap();
    g.add_mark(MarkKind::Inode, ENFORCE, dir).unwrap();
    Arc::new(g)
}

#[derive(Debug, Clone)]
struct Seen {
    mask: Mask,
    pid: i32,
    path: PathBuf,
}

/// Answers permission events on its own thread: names starting with `bad` are denied,
/// names starting with `clean` are allowed and get an ignore mark, the rest is allowed.
/// It never opens a watched file: the path comes from `/proc/self/fd`.
struct Responder {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Seen>>>,
    thread: Option<JoinHandle<()>>,
}

impl Responder {
    fn start(group: Arc<Group>) -> Responder {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (stop2, seen2) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = moat_fanotify::EventBuffer::new();
            while !stop2.load(Ordering::Relaxed) {
                if !group.wait(Some(Duration::from_millis(20))).unwrap() {
                    continue;
                }
                let events = match group.read_events(&mut buf) {
                    Ok(e) => e,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(e) => panic!("read_events: {e}"),
                };
                for ev in events {
                    let path = ev.path().unwrap();
                    let name = path.file_name().unwrap().to_string_lossy().into_owned();
                    // Recorded before answering, so a finished child's events are visible.
                    seen2.lock().unwrap().push(Seen {
                        mask: ev.mask(),
                        pid: ev.pid(),
                        path,
                    });
                    let pe = ev.into_permission().expect("permission event");
                    if name.starts_with("bad") {
                        pe.deny().unwrap();
                    } else {
                        if name.starts_with("clean") {
                            group.ignore_inode(pe.fd().unwrap(), IGNORE).unwrap();
                        }
                        pe.allow().unwrap();
                    }
                }
            }
        });
        Responder {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn seen_for(&self, pid: i32) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.pid == pid).collect()
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let r = t.join();
            if r.is_err() && !std::thread::panicking() {
                panic!("responder thread panicked");
            }
        }
    }
}

#[test]
fn deny_and_allow_open_as_nobody() {
    if !privileged() {
        return;
    }
    let (_tmp, dir) = watched_dir();
    write_file(&dir.join("bad"), b"evil", 0o644);
    write_file(&dir.join("good"), b"hello", 0o644);
    let group = content_group(&dir);
    let responder = Responder::start(group.clone());

    let (pid, code) = read_as_nobody(&dir.join("bad"), b"evil");
    assert_eq!(
        code,
        libc::EPERM,
        "open of a denied file must fail with EPERM"
    );
    let seen = responder.seen_for(pid);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].mask.contains(Mask::OPEN_PERM), "{seen:?}");
    assert_eq!(seen[0].path, dir.join("bad"));

    let (pid, code) = read_as_nobody(&dir.join("good"), b"hello");
    assert_eq!(code, 0, "allowed file must be readable with its content");
    let seen = responder.seen_for(pid);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].path, dir.join("good"));
    assert_eq!(seen[0].pid, pid);
}

#[test]
fn denied_exec_fails_with_eperm() {
    if !privileged() {
        return;
    }
    let (_tmp, dir) = watched_dir();
    let truebin = fs::read("/bin/true").unwrap();
    write_file(&dir.join("bad-true"), &truebin, 0o755);
    write_file(&dir.join("good-true"), &truebin, 0o755);
    write_file(&dir.join("bad-script"), b"#!/bin/sh\nexit 0\n", 0o755);
    write_file(&dir.join("good-script"), b"#!/bin/sh\nexit 7\n", 0o755);
    let group = content_group(&dir);
    let responder = Responder::start(group.clone());

    let (pid, code) = exec_as_nobody(&dir.join("bad-true"));
    assert_eq!(
        code,
        libc::EPERM,
        "exec of a denied binary must fail with EPERM"
    );
    let seen = responder.seen_for(pid);
    assert!(
        seen.iter()
            .any(|s| s.mask.contains(Mask::OPEN_EXEC_PERM) && s.path == dir.join("bad-true")),
        "{seen:?}"
    );

    let (_, code) = exec_as_nobody(&dir.join("bad-script"));
    assert_eq!(
        code,
        libc::EPERM,
        "exec of a denied script must fail with EPERM"
    );

    let (_, code) = exec_as_nobody(&dir.join("good-true"));
    assert_eq!(code, 0, "allowed binary runs");
    let (_, code) = exec_as_nobody(&dir.join("good-script"));
    assert_eq!(code, 7, "allowed script runs");
}

#[test]
fn ignore_mark_skips_events_until_the_file_is_written() {
    if !privileged() {
        return;
    }
    let (_tmp, dir) = watched_dir();
    let clean = dir.join("clean");
    let bad = dir.join("bad");
    write_file(&clean, b"v1", 0o644);
    write_file(&bad, b"evil", 0o644);
    let group = content_group(&dir);
    let responder = Responder::start(group.clone());
    let events_on_clean = || {
        let me = std::process::id() as i32;
        responder
            .seen()
            .iter()
            .filter(|s| s.path == clean && s.pid != me)
            .count()
    };

    // First open: an event; the responder allows it and sets the ignore mark.
    assert_eq!(read_as_nobody(&clean, b"v1").1, 0);
    assert_eq!(events_on_clean(), 1);
    // Second open: no event at all.
    assert_eq!(read_as_nobody(&clean, b"v1").1, 0);
    assert_eq!(events_on_clean(), 1, "ignore mark must suppress the event");

    // A write() (no truncate) drops the ignore mark (no SURV_MODIFY): the next open raises
    // an event. The writer's own open raises none: the inode is still ignored then.
    let mut w = fs::OpenOptions::new().write(true).open(&clean).unwrap();
    w.write_all(b"v2").unwrap();
    drop(w);
    assert_eq!(read_as_nobody(&clean, b"v2").1, 0);
    assert_eq!(events_on_clean(), 2, "a write must remove the ignore mark");
    assert_eq!(read_as_nobody(&clean, b"v2").1, 0);
    assert_eq!(events_on_clean(), 2);

    // Explicit removal.
    let f = fs::File::open(&clean).unwrap();
    assert!(group.unignore_inode(f.as_fd(), IGNORE).unwrap());
    assert!(!group.unignore_inode(f.as_fd(), IGNORE).unwrap());
    drop(f);
    assert_eq!(read_as_nobody(&clean, b"v2").1, 0);
    assert_eq!(
        events_on_clean(),
        3,
        "unignore_inode must remove the ignore mark"
    );

    // flush_ignores drops every inode mark (the directory mark too): re-add it, and the
    // clean file raises an event again while the bad one is still denied.
    group.flush_ignores().unwrap();
    group.add_mark(MarkKind::Inode, ENFORCE, &dir).unwrap();
    assert_eq!(read_as_nobody(&clean, b"v2").1, 0);
    assert_eq!(
        events_on_clean(),
        4,
        "flush_ignores must remove the ignore mark"
    );
    assert_eq!(read_as_nobody(&bad, b"evil").1, libc::EPERM);
}

#[test]
fn closing_the_group_with_a_pending_event_fails_open() {
    if !privileged() {
        return;
    }
    let (_tmp, dir) = watched_dir();
    write_file(&dir.join("file"), b"data", 0o644);
    let group = content_group(&dir);
    let mut child = spawn_as(NOBODY, &Action::read(&dir.join("file"), b"data"));
    assert!(
        group.wait(Some(Duration::from_secs(5))).unwrap(),
        "no permission event"
    );
    std::thread::sleep(Duration::from_millis(50));
    assert!(child.running(), "the opener must wait for a verdict");
    drop(group);
    assert_eq!(
        child.wait(),
        0,
        "closing the group must allow the pending open"
    );
}

#[test]
fn dropping_an_unanswered_permission_event_allows_it() {
    if !privileged() {
        return;
    }
    let (_tmp, dir) = watched_dir();
    write_file(&dir.join("bad"), b"data", 0o644);
    let group = content_group(&dir);
    let mut child = spawn_as(NOBODY, &Action::read(&dir.join("bad"), b"data"));
    assert!(group.wait(Some(Duration::from_secs(5))).unwrap());
    let mut buf = moat_fanotify::EventBuffer::new();
    let events: Vec<_> = group.read_events(&mut buf).unwrap().collect();
    assert_eq!(events.len(), 1);
    assert!(events[0].is_permission());
    assert_eq!(events[0].pid(), child.pid());
    assert_eq!(fd_path(events[0].fd().unwrap()).unwrap(), dir.join("bad"));
    drop(events);
    assert_eq!(child.wait(), 0);
    // Answering twice is refused by the kernel (ENOENT), never a second verdict.
    let mut child = spawn_as(NOBODY, &Action::read(&dir.join("bad"), b"data"));
    assert!(group.wait(Some(Duration::from_secs(5))).unwrap());
    let ev = group.read_events(&mut buf).unwrap().next().unwrap();
    group.respond(ev.fd().unwrap(), Response::Deny).unwrap();
    let err = group
        .respond(ev.fd().unwrap(), Response::Allow)
        .unwrap_err();
    assert_eq!(err.errno(), libc::ENOENT, "{err}");
    assert_eq!(child.wait(), libc::EPERM);
}

#[test]
fn dfid_name_group_reports_mkdir_and_renames() {
    if !privileged() {
        return;
    }
    let (_tmp, dir) = watched_dir();
    write_file(&dir.join("f1"), b"x", 0o644);
    let group = Group::init(
        InitFlags::CLASS_NOTIF
            | InitFlags::REPORT_DFID_NAME
            | InitFlags::CLOEXEC
            | InitFlags::NONBLOCK,
        libc::O_RDONLY | libc::O_CLOEXEC,
    )
    .unwrap();
    group
        .add_mark(
            MarkKind::Inode,
            Mask::CREATE
                | Mask::DELETE
                | Mask::MOVED_FROM
                | Mask::MOVED_TO
                | Mask::RENAME
                | Mask::ONDIR,
            &dir,
        )
        .unwrap();
    fs::create_dir(dir.join("sub")).unwrap();
    fs::rename(dir.join("f1"), dir.join("f2")).unwrap();

    let (dir_handle, _) = FileHandle::from_path(&dir, true).unwrap();
    let dir_fsid = Fsid::of_path(&dir).unwrap();
    // (mask, kind, name) of every file-identifier record.
    let mut got: Vec<(Mask, FidKind, String)> = Vec::new();
    let want_all = |got: &Vec<(Mask, FidKind, String)>| {
        let has = |m: Mask, k: FidKind, n: &str| {
            got.iter()
                .any(|(gm, gk, gn)| gm.contains(m) && *gk == k && gn == n)
        };
        has(Mask::CREATE | Mask::ONDIR, FidKind::DfidName, "sub")
            && has(Mask::MOVED_FROM, FidKind::DfidName, "f1")
            && has(Mask::MOVED_TO, FidKind::DfidName, "f2")
            && has(Mask::RENAME, FidKind::OldDfidName, "f1")
            && has(Mask::RENAME, FidKind::NewDfidName, "f2")
    };
    let mut buf = moat_fanotify::EventBuffer::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !want_all(&got) && Instant::now() < deadline {
        if !group.wait(Some(Duration::from_millis(100))).unwrap() {
            continue;
        }
        for ev in group.read_events(&mut buf).unwrap() {
            assert!(ev.fd().is_none(), "FID groups report no fd");
            assert!(!ev.is_permission());
            for fid in ev.fids() {
                assert_eq!(fid.handle, dir_handle, "the directory's handle");
                assert_eq!(fid.fsid, dir_fsid);
                let name = fid.name.as_ref().unwrap().to_string_lossy().into_owned();
                got.push((ev.mask(), fid.kind, name));
            }
        }
    }
    assert!(want_all(&got), "missing events, got {got:?}");
    // CREATE|ONDIR must not be reported for the plain file rename.
    assert!(!got
        .iter()
        .any(|(m, _, n)| m.contains(Mask::CREATE) && n != "sub"));

    // The directory handle resolves back to the directory.
    let mount_fd = fs::File::open(&dir).unwrap();
    assert_eq!(dir_handle.resolve_path(mount_fd.as_fd()).unwrap(), dir);
    let fd = dir_handle
        .open(mount_fd.as_fd(), libc::O_RDONLY | libc::O_DIRECTORY)
        .unwrap();
    assert_eq!(fd_path(fd.as_fd()).unwrap(), dir);
    assert_eq!(FileHandle::from_fd(fd.as_fd()).unwrap().0, dir_handle);
}

#[test]
fn content_class_with_fid_reporting_is_einval() {
    if !privileged() {
        return;
    }
    let err = Group::init(
        InitFlags::CLASS_CONTENT | InitFlags::REPORT_FID,
        libc::O_RDONLY,
    )
    .unwrap_err();
    assert_eq!(err.errno(), libc::EINVAL);
    assert_eq!(err.op(), "fanotify_init");
    assert!(
        err.to_string().contains("permission class"),
        "readable reason: {err}"
    );
    // Each half alone is fine.
    Group::init(
        InitFlags::CLASS_NOTIF | InitFlags::REPORT_FID,
        libc::O_RDONLY,
    )
    .unwrap();
    Group::init(InitFlags::CLASS_CONTENT, libc::O_RDONLY).unwrap();
}

#[test]
fn mark_errors_carry_errno_and_reason() {
    if !privileged() {
        return;
    }
    let (_tmp, dir) = watched_dir();
    let group = Group::init(
        InitFlags::CLASS_CONTENT | InitFlags::CLOEXEC,
        libc::O_RDONLY,
    )
    .unwrap();
    let err = group
        .add_mark(MarkKind::Inode, Mask::OPEN_PERM, &dir.join("missing"))
        .unwrap_err();
    assert_eq!(err.errno(), libc::ENOENT, "{err}");
    let err = group
        .remove_mark(MarkKind::Inode, Mask::OPEN_PERM, &dir)
        .unwrap_err();
    assert_eq!(err.errno(), libc::ENOENT, "{err}");
    // Directory-entry events need FID reporting.
    let err = group
        .add_mark(MarkKind::Inode, Mask::CREATE, &dir)
        .unwrap_err();
    assert_eq!(err.errno(), libc::EINVAL, "{err}");
    group
        .add_mark(MarkKind::Inode, Mask::OPEN_PERM, &dir)
        .unwrap();
    group
        .remove_mark(MarkKind::Inode, Mask::OPEN_PERM, &dir)
        .unwrap();
}
