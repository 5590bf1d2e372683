//! The private filesystem every tree lives on, and the kernel limits a big tree needs.
//!
//! `OnAccessCoverage filesystem` marks a whole filesystem (`FAN_MARK_FILESYSTEM`), so the
//! watched tree must be on a filesystem nothing else uses: [`Tmpfs`] mounts a fresh tmpfs
//! under the run's temp dir and unmounts it on drop (every exit path: errors, Ctrl-C through
//! the signal flag, panics that unwind). [`check_private`] refuses a tree whose device is
//! not that mount's, or is the device of `/`, `/tmp`, `/work` or the source tree. Both
//! products watch the same tmpfs, so the comparison is fair. Mounts left by a run that was
//! killed outright are detached by [`detach_under`] before its temp dir is removed.
//!
//! [`Sysctls`] raises `fs.inotify.max_user_watches` and `fs.fanotify.max_user_marks` when a
//! tree needs more than the machine allows (clamonacc, and moat's directory scope with
//! inotify tracking, need one watch and one mark per directory), and restores the old value
//! on drop unless someone else changed it meanwhile.

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("paths have no NUL")
}

/// A tmpfs mounted by this run, unmounted on drop.
pub struct Tmpfs {
    /// The mount point (created by [`Tmpfs::mount`]).
    pub path: PathBuf,
    /// Its device number once mounted.
    pub dev: u64,
    /// The `-o` options used.
    pub options: String,
}

impl Tmpfs {
    /// Mounts a tmpfs with room for `inodes` inodes at `path` (created if missing).
    pub fn mount(path: &Path, inodes: u64) -> Result<Tmpfs, String> {
        fs::create_dir_all(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let below = fs::metadata(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .dev();
        let options = format!("size=2g,nr_inodes={inodes},mode=0755");
        let src = CString::new("moat-bench").expect("no NUL");
        let fstype = CString::new("tmpfs").expect("no NUL");
        let data = CString::new(options.clone()).expect("no NUL");
        let target = cpath(path);
        // SAFETY: valid C strings; mounting is what this guard is for.
        let rc = unsafe {
            libc::mount(
                src.as_ptr(),
                target.as_ptr(),
                fstype.as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                data.as_ptr().cast(),
            )
        };
        if rc != 0 {
            return Err(format!(
                "mount -t tmpfs -o {options} {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            ));
        }
        let mut m = Tmpfs {
            path: path.to_path_buf(),
            dev: 0,
            options,
        };
        m.dev = new_device(path, below)?;
        Ok(m)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        unmount_and_remove(&self.path);
    }
}

/// The device now at `path`, which must differ from `below` (the one before mounting):
/// otherwise the mount did not take and the tree would land on the parent filesystem.
fn new_device(path: &Path, below: u64) -> Result<u64, String> {
    let dev = fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .dev();
    if dev == below {
        return Err(format!(
            "{}: mounted, but the device did not change",
            path.display()
        ));
    }
    Ok(dev)
}

/// Unmounts our own mount at `path` (lazily if something still holds it, e.g. a daemon
/// being killed; a loop device is auto-cleared with it) and removes the mount point.
fn unmount_and_remove(path: &Path) {
    let target = cpath(path);
    // SAFETY: plain syscalls on a valid C string.
    unsafe {
        if libc::umount2(target.as_ptr(), 0) != 0 {
            libc::umount2(target.as_ptr(), libc::MNT_DETACH);
        }
    }
    let _ = fs::remove_dir(path);
}

/// Fails unless `dir` is on the filesystem of device `ours` (mounted by this run) and on
/// none of the shared filesystems a filesystem mark must never touch.
pub fn check_private(dir: &Path, ours: u64) -> Result<(), String> {
    let dev = |p: &Path| fs::metadata(p).map(|m| m.dev()).ok();
    let d = dev(dir).ok_or_else(|| format!("{}: cannot stat", dir.display()))?;
    if d != ours {
        return Err(format!(
            "refusing to watch {}: it is not on the filesystem this run mounted",
            dir.display()
        ));
    }
    let shared = [
        PathBuf::from("/"),
        PathBuf::from("/tmp"),
        PathBuf::from("/work"),
        crate::workspace_root(),
    ];
    for p in &shared {
        if dev(p) == Some(d) {
            return Err(format!(
                "refusing to watch {}: same filesystem as {}",
                dir.display(),
                p.display()
            ));
        }
    }
    Ok(())
}

/// An ext4 image file (sparse, kept between runs under the data dir) loop-mounted by this
/// run, unmounted on drop: the cold-cache coverage measurements need a real disk
/// filesystem whose pages `drop_caches` can evict (a tmpfs is never cold).
pub struct Ext4 {
    /// The mount point (created by [`Ext4::mount`]).
    pub path: PathBuf,
    /// Its device number once mounted.
    pub dev: u64,
    /// Seconds spent in mkfs when the image was (re)created, None when reused.
    pub mkfs_secs: Option<f64>,
}

/// Size of the sparse image file: room for 1,100,000+ directories of one 1 KiB block each.
pub const EXT4_IMAGE_BYTES: u64 = 6 << 30;
/// Inodes of the image (`mkfs.ext4 -N`): the 10k, 100k and 1M trees and their probes.
pub const EXT4_INODES: u64 = 1_300_000;

fn run_cmd(cmd: &mut std::process::Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Ext4 {
    /// Mounts `image` (created with mkfs.ext4 when missing) at `path` with `-o loop`.
    pub fn mount(image: &Path, path: &Path) -> Result<Ext4, String> {
        let mut mkfs_secs = None;
        if !image.exists() {
            if let Some(dir) = image.parent() {
                fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            }
            let t = std::time::Instant::now();
            let f = fs::File::create(image).map_err(|e| format!("{}: {e}", image.display()))?;
            f.set_len(EXT4_IMAGE_BYTES)
                .map_err(|e| format!("{}: {e}", image.display()))?;
            drop(f);
            eprintln!(
                "moat-bench: creating the ext4 image {} (sparse, {} GiB, {EXT4_INODES} inodes)...",
                image.display(),
                EXT4_IMAGE_BYTES >> 30
            );
            let r = run_cmd(
                std::process::Command::new("mkfs.ext4")
                    .args(["-q", "-F", "-b", "1024", "-I", "256", "-N"])
                    .arg(EXT4_INODES.to_string())
                    .arg(image),
            );
            if let Err(e) = r {
                let _ = fs::remove_file(image);
                return Err(e);
            }
            mkfs_secs = Some(t.elapsed().as_secs_f64());
        }
        fs::create_dir_all(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let below = fs::metadata(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .dev();
        run_cmd(
            std::process::Command::new("mount")
                .args(["-t", "ext4", "-o", "loop,noatime,nosuid,nodev"])
                .arg(image)
                .arg(path),
        )?;
        // From here on the guard unmounts, whatever fails next.
        let mut m = Ext4 {
            path: path.to_path_buf(),
            dev: 0,
            mkfs_secs,
        };
        m.dev = new_device(path, below)?;
        fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(m)
    }
}

impl Drop for Ext4 {
    fn drop(&mut self) {
        unmount_and_remove(&self.path);
    }
}

/// `sync; echo 3 > /proc/sys/vm/drop_caches`: page cache, dentries and inodes.
pub fn drop_caches() -> Result<(), String> {
    // SAFETY: plain syscall.
    unsafe { libc::sync() };
    fs::write("/proc/sys/vm/drop_caches", "3").map_err(|e| format!("drop_caches: {e}"))
}

/// Detaches every mount below `dir` (left by a run that was killed outright), deepest
/// first, so removing `dir` never descends into a mounted filesystem.
pub fn detach_under(dir: &Path) {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in points {
        let c = cpath(&p);
        // SAFETY: detaching a stale mount of ours.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

/// Whether anything is mounted below `dir`.
pub fn has_mounts_under(dir: &Path) -> bool {
    fs::read_to_string("/proc/self/mountinfo").is_ok_and(|info| {
        info.lines()
            .filter_map(|l| l.split(' ').nth(4))
            .any(|p| Path::new(p).starts_with(dir))
    })
}

/// Sysctls raised for the run, restored on drop.
#[derive(Default)]
pub struct Sysctls {
    /// `(path under /proc/sys, old value, value set)`.
    raised: Vec<(&'static str, u64, u64)>,
}

/// The sysctls a tree of N directories needs at N plus a margin.
pub const LIMITS: [&str; 2] = ["fs/inotify/max_user_watches", "fs/fanotify/max_user_marks"];

impl Sysctls {
    /// Raises each of [`LIMITS`] to at least `need` (when `allowed`); returns what it did
    /// or why not, for the report.
    pub fn ensure(&mut self, need: u64, allowed: bool) -> Vec<String> {
        let mut notes = Vec::new();
        for key in LIMITS {
            let Some(now) = super::daemon::sysctl(key) else {
                continue;
            };
            if now >= need {
                continue;
            }
            let dotted = key.replace('/', ".");
            if !allowed {
                notes.push(format!(
                    "{dotted} = {now} < {need}: left as is (--no-raise-limits); run `sysctl {dotted}={need}`"
                ));
                continue;
            }
            match fs::write(format!("/proc/sys/{key}"), need.to_string()) {
                Ok(()) => {
                    let old = self.raised.iter().find(|r| r.0 == key).map_or(now, |r| r.1);
                    self.raised.retain(|r| r.0 != key);
                    self.raised.push((key, old, need));
                    notes.push(format!(
                        "{dotted} raised from {now} to {need} for this run (restored at exit)"
                    ));
                }
                Err(e) => notes.push(format!("{dotted} = {now} < {need}, cannot raise: {e}")),
            }
        }
        notes
    }
}

impl Drop for Sysctls {
    fn drop(&mut self) {
        for &(key, old, set) in &self.raised {
            // Restore only what is still ours: another tool may have changed it meanwhile.
            if super::daemon::sysctl(key) == Some(set) {
                let _ = fs::write(format!("/proc/sys/{key}"), old.to_string());
            }
        }
    }
}
