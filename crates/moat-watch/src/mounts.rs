//! Which filesystems filesystem scope marks, and which mounts it can ignore.
//!
//! `OnAccessCoverage filesystem` puts one `FAN_MARK_FILESYSTEM` permission mark on every
//! filesystem an include path reaches: the one holding the include path, and the one of every
//! mount below it (an include path `/srv` covers a disk mounted at `/srv/data` too). The
//! policy then keeps only the accesses under the include paths.
//!
//! Such a mark also raises events for accesses through *other* mounts of the same filesystem
//! (bind mounts elsewhere). A mount whose mount point is neither inside an include path nor
//! above one can only ever reach paths outside the include paths, and `rename(2)` cannot move
//! a file from one mount to another (`EXDEV`), so an ignore mark on that mount is safe: it is
//! about *where* the access happens, and nothing can move into the include paths through it.
//! (An inode-level "outside the include paths" cache would not be: a rename of the file or of
//! a directory above it would carry it into the include paths with its mark.)
//!
//! The parser is hand-written: `/proc/self/mountinfo` is one documented line format
//! (proc(5)) and only four fields are needed; the `procfs` crate would bring in far more
//! than it saves, and libmount is a C library.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The mount's id (unique while it is mounted; follows the mount when it is moved).
    pub id: u32,
    /// The filesystem's device (`major:minor`): the same for every mount of one filesystem.
    pub dev: (u32, u32),
    /// The directory of the filesystem this mount shows at its mount point (`/` for a
    /// whole filesystem, the source directory for a bind mount).
    pub root: PathBuf,
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// The filesystem type (`ext4`, `tmpfs`...).
    pub fs_type: String,
}

/// Parses `/proc/self/mountinfo` text; lines that do not parse are skipped (and counted in
/// the second value) rather than failing the start.
pub fn parse(text: &str) -> (Vec<Mount>, usize) {
    let mut mounts = Vec::new();
    let mut bad = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match parse_line(line) {
            Some(m) => mounts.push(m),
            None => bad += 1,
        }
    }
    (mounts, bad)
}

/// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`
fn parse_line(line: &str) -> Option<Mount> {
    let mut fields = line.split(' ');
    let id = fields.next()?.parse().ok()?;
    let _parent = fields.next()?;
    let (major, minor) = fields.next()?.split_once(':')?;
    let root = unescape(fields.next()?);
    let mount_point = unescape(fields.next()?);
    // Optional fields end at the "-" separator; the filesystem type follows it.
    let fs_type = fields.by_ref().skip_while(|f| *f != "-").nth(1)?;
    Some(Mount {
        id,
        dev: (major.parse().ok()?, minor.parse().ok()?),
        root,
        mount_point,
        fs_type: fs_type.to_owned(),
    })
}

/// Undoes mountinfo's octal escapes (`\040` for a space, `\011`, `\012`, `\134`).
fn unescape(field: &str) -> PathBuf {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                let v = (d[0] - b'0') as u32 * 64 + (d[1] - b'0') as u32 * 8 + (d[2] - b'0') as u32;
                out.push(v as u8);
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    PathBuf::from(OsString::from_vec(out))
}

/// One filesystem to mark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filesystem {
    /// A path on it (an include path, or the mount point of a mount below one).
    pub path: PathBuf,
    /// Its type, for the log.
    pub fs_type: String,
    /// Its device (`None` without a mount table).
    pub dev: Option<(u32, u32)>,
}

/// What filesystem scope marks.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The filesystems to mark with `FAN_MARK_FILESYSTEM`, each once.
    pub filesystems: Vec<Filesystem>,
    /// Mounts of those filesystems that cannot reach an include path, ignored as a whole:
    /// `(mount id, mount point)`.
    pub ignored_mounts: Vec<(u32, PathBuf)>,
}

/// The plan for `roots` (canonical include paths) given the mount table. A root is reached
/// through the mount whose mount point is its longest prefix (the last such line: a later
/// mount on the same point hides the earlier one); mounts below a root are reached too.
pub fn plan(roots: &[PathBuf], mounts: &[Mount]) -> Plan {
    let mut plan = Plan::default();
    let mut devs: Vec<(u32, u32)> = Vec::new();
    let mut add = |plan: &mut Plan, dev: (u32, u32), path: &Path, fs_type: &str| {
        if !devs.contains(&dev) {
            devs.push(dev);
            plan.filesystems.push(Filesystem {
                path: path.to_owned(),
                fs_type: fs_type.to_owned(),
                dev: Some(dev),
            });
        }
    };
    for root in roots {
        let holder = mounts
            .iter()
            .filter(|m| root.starts_with(&m.mount_point))
            .max_by_key(|m| m.mount_point.components().count());
        match holder {
            Some(m) => add(&mut plan, m.dev, root, &m.fs_type),
            // No mount table (an unusual chroot): mark each root's filesystem anyway (the
            // kernel merges marks placed twice on one filesystem).
            None => plan.filesystems.push(Filesystem {
                path: root.clone(),
                fs_type: "?".into(),
                dev: None,
            }),
        }
        for m in mounts.iter().filter(|m| {
            m.mount_point.starts_with(root) && &m.mount_point != root && !is_pseudo(&m.fs_type)
        }) {
            add(&mut plan, m.dev, &m.mount_point, &m.fs_type);
        }
    }
    // Where each include path (and each mount below one) lives on its filesystem: the
    // mount's root plus the rest of the path. A mount of the same filesystem whose root
    // holds one of those places, or lies inside one, shows protected files (a bind mount of
    // the include path elsewhere): it must raise events. Only mounts that can show neither
    // an include path nor anything inside one are ignored.
    let places: Vec<((u32, u32), PathBuf)> = roots
        .iter()
        .filter_map(|r| place_on_fs(r, mounts))
        .chain(
            mounts
                .iter()
                .filter(|m| roots.iter().any(|r| m.mount_point.starts_with(r)))
                .map(|m| (m.dev, m.root.clone())),
        )
        .collect();
    for m in mounts {
        let related = roots
            .iter()
            .any(|r| r.starts_with(&m.mount_point) || m.mount_point.starts_with(r));
        let shows = places
            .iter()
            .any(|(dev, at)| *dev == m.dev && (at.starts_with(&m.root) || m.root.starts_with(at)));
        if devs.contains(&m.dev) && !related && !shows {
            plan.ignored_mounts.push((m.id, m.mount_point.clone()));
        }
    }
    plan
}

/// Kernel pseudo filesystems: no file content to scan, and a permission mark there breaks
/// the system: the kernel opens each event's file read-only, which write-only attributes
/// (sysfs `drivers_probe`, cgroupfs `cgroup.kill`) refuse, so root's writes to them would
/// fail with EPERM (review F8). Never marked when mounted below an include path (an include
/// path *on* one is marked as asked).
pub fn is_pseudo(fs_type: &str) -> bool {
    matches!(
        fs_type,
        "sysfs"
            | "proc"
            | "cgroup"
            | "cgroup2"
            | "debugfs"
            | "tracefs"
            | "securityfs"
            | "bpf"
            | "efivarfs"
            | "configfs"
            | "pstore"
            | "fusectl"
            | "devpts"
            | "mqueue"
            | "binfmt_misc"
            | "autofs"
            | "nsfs"
            | "rpc_pipefs"
            | "selinuxfs"
            | "hugetlbfs"
    )
}

/// Where `path` (canonical, in this namespace) lives on its filesystem: its device and its
/// path from the filesystem's root, through the mount that holds it (the deepest mount point
/// above it, the last such line).
fn place_on_fs(path: &Path, mounts: &[Mount]) -> Option<((u32, u32), PathBuf)> {
    let holder = mounts
        .iter()
        .filter(|m| path.starts_with(&m.mount_point))
        .max_by_key(|m| m.mount_point.components().count())?;
    let rest = path.strip_prefix(&holder.mount_point).ok()?;
    Some((holder.dev, holder.root.join(rest)))
}

/// The plan for this process's mount namespace; a mount table that cannot be read yields a
/// plan that marks the roots' filesystems and ignores nothing.
pub fn plan_here(roots: &[PathBuf]) -> Plan {
    match read_here() {
        Ok(mounts) => plan(roots, &mounts),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read /proc/self/mountinfo: marking the include paths' filesystems only");
            plan(roots, &[])
        }
    }
}

/// Where the mount table is read, and watched for changes.
pub const MOUNTINFO: &str = "/proc/self/mountinfo";

/// This process's mount table.
pub fn read_here() -> std::io::Result<Vec<Mount>> {
    let text = std::fs::read_to_string(MOUNTINFO)?;
    let (mounts, bad) = parse(&text);
    if bad > 0 {
        tracing::warn!(
            lines = bad,
            "unparsable lines in /proc/self/mountinfo were skipped"
        );
    }
    Ok(mounts)
}

/// What a change of the mount table asks of filesystem scope, given what is in place.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Update {
    /// Every filesystem reachable from an include path: marked (again; idempotent).
    pub mark: Vec<Filesystem>,
    /// Mounts newly unable to reach an include path: ignore them.
    pub ignore: Vec<(u32, PathBuf)>,
    /// Ignored mounts that can now reach an include path (moved with `mount --move`): stop
    /// ignoring them, at their new mount point.
    pub unignore: Vec<(u32, PathBuf)>,
    /// Ignored mounts that are gone: forget them.
    pub gone: Vec<u32>,
}

/// Compares the plan for `mounts` with what was done: `marked` devices (the new ones among
/// the plan's are logged by the caller), `ignored` mount ids. Marks are never removed (an
/// unmounted filesystem takes its mark along).
pub fn update(
    roots: &[PathBuf],
    mounts: &[Mount],
    marked: &[(u32, u32)],
    ignored: &[u32],
) -> Update {
    let now = plan(roots, mounts);
    // Every filesystem of the plan, marked or not before: a filesystem unmounted and mounted
    // again (same device number: a block device, or a recycled anonymous one such as tmpfs)
    // is a new superblock without a mark, and marking is idempotent (review F5).
    let mut u = Update {
        mark: now.filesystems,
        ..Update::default()
    };
    let _ = marked;
    u.ignore = now
        .ignored_mounts
        .iter()
        .filter(|(id, _)| !ignored.contains(id))
        .cloned()
        .collect();
    for id in ignored {
        if now.ignored_mounts.iter().any(|(i, _)| i == id) {
            continue;
        }
        match mounts.iter().find(|m| m.id == *id) {
            Some(m) => u.unignore.push((m.id, m.mount_point.clone())),
            None => u.gone.push(*id),
        }
    }
    u
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
23 22 0:21 / /proc rw,nosuid shared:5 - proc proc rw
24 22 8:2 / /srv/data rw shared:2 - xfs /dev/sda2 rw
25 22 8:1 /home/shared /mnt/bind rw shared:1 - ext4 /dev/sda1 rw
26 22 0:30 / /srv/odd\\040name rw shared:7 - tmpfs none rw,size=10k
27 22 8:1 /opt /srv/opt-bind rw shared:1 - ext4 /dev/sda1 rw
28 22 8:3 / /var rw - ext4 /dev/sda3 rw
";

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[test]
    fn parses_fields_escapes_and_optional_fields() {
        let (m, bad) = parse(TABLE);
        assert_eq!(bad, 0);
        assert_eq!(m.len(), 7);
        assert_eq!(
            m[2],
            Mount {
                id: 24,
                dev: (8, 2),
                root: p("/"),
                mount_point: p("/srv/data"),
                fs_type: "xfs".into()
            }
        );
        assert_eq!(m[4].mount_point, p("/srv/odd name"));
        assert_eq!(m[4].fs_type, "tmpfs");
        // No optional fields at all.
        assert_eq!(m[6].fs_type, "ext4");
        let (_, bad) = parse("garbage\n1 2 x:y / / rw - ext4 a b\n");
        assert_eq!(bad, 2);
    }

    #[test]
    fn marks_the_root_filesystem_and_mounts_below_it_once_each() {
        let (m, _) = parse(TABLE);
        let plan = plan(&[p("/srv")], &m);
        let marked: Vec<_> = plan.filesystems.iter().map(|f| f.path.clone()).collect();
        // /srv is on /dev/sda1; /srv/data (xfs) and the tmpfs are below it; the bind mount
        // /srv/opt-bind is sda1 again.
        assert_eq!(marked, vec![p("/srv"), p("/srv/data"), p("/srv/odd name")]);
        // Mounts of the marked filesystems that cannot reach /srv: /mnt/bind (sda1). Not /,
        // which holds /srv; not /srv/opt-bind, which is inside it; not /var (unmarked fs).
        assert_eq!(plan.ignored_mounts, vec![(25, p("/mnt/bind"))]);
    }

    #[test]
    fn the_deepest_mount_holds_a_root() {
        let (m, _) = parse(TABLE);
        let plan = plan(&[p("/var/lib/x")], &m);
        assert_eq!(
            plan.filesystems,
            vec![Filesystem {
                path: p("/var/lib/x"),
                fs_type: "ext4".into(),
                dev: Some((8, 3))
            }]
        );
        assert!(plan.ignored_mounts.is_empty());
        // Two roots on one filesystem: one mark. /srv/opt-bind is a bind mount of the
        // include path /opt: it shows protected files, so it is not ignored (review F1).
        let plan = super::plan(&[p("/home/a"), p("/opt")], &m);
        assert_eq!(plan.filesystems.len(), 1);
        assert_eq!(plan.ignored_mounts, vec![(25, p("/mnt/bind"))]);
        // A bind of the whole filesystem elsewhere shows every include path: not ignored.
        let (mut m, _) = parse(TABLE);
        m.push(parse_line("50 22 8:1 / /mnt/all rw - ext4 /dev/sda1 rw").unwrap());
        m.push(parse_line("51 22 8:1 /home/a/sub /mnt/sub rw - ext4 /dev/sda1 rw").unwrap());
        let plan = super::plan(&[p("/home/a")], &m);
        let ids: Vec<u32> = plan.ignored_mounts.iter().map(|i| i.0).collect();
        assert_eq!(ids, vec![25, 27]);
    }

    #[test]
    fn updates_mark_new_mounts_below_roots_and_follow_moved_mounts() {
        let (mut m, _) = parse(TABLE);
        let roots = [p("/srv")];
        let start = plan(&roots, &m);
        let marked: Vec<_> = start.filesystems.iter().filter_map(|f| f.dev).collect();
        let ignored: Vec<u32> = start.ignored_mounts.iter().map(|i| i.0).collect();
        // Nothing new, but every filesystem is marked again (a remount has a new superblock).
        let u = update(&roots, &m, &marked, &ignored);
        assert_eq!(u.mark, start.filesystems);
        assert!(u.ignore.is_empty() && u.unignore.is_empty() && u.gone.is_empty());
        // A disk mounted below the include path, a new bind mount elsewhere, and the old
        // bind mount moved into the include path.
        m.push(parse_line("40 22 8:9 / /srv/usb rw - vfat /dev/sdb1 rw").unwrap());
        m.push(parse_line("41 22 8:1 /x /mnt/other rw - ext4 /dev/sda1 rw").unwrap());
        m.iter_mut().find(|x| x.id == 25).unwrap().mount_point = p("/srv/moved");
        let u = update(&roots, &m, &marked, &ignored);
        assert_eq!(u.mark.len(), 4);
        assert_eq!(u.mark[3].path, p("/srv/usb"));
        assert_eq!(u.ignore, vec![(41, p("/mnt/other"))]);
        assert_eq!(u.unignore, vec![(25, p("/srv/moved"))]);
        // Unmounted: forgotten.
        m.retain(|x| x.id != 25);
        assert_eq!(update(&roots, &m, &marked, &ignored).gone, vec![25]);
    }

    #[test]
    fn pseudo_filesystems_below_a_root_are_not_marked() {
        let (mut m, _) = parse(TABLE);
        m.push(parse_line("60 22 0:22 / /srv/sys rw - sysfs sysfs rw").unwrap());
        m.push(parse_line("61 60 0:23 / /srv/sys/fs/cgroup rw - cgroup2 cgroup2 rw").unwrap());
        let plan = plan(&[p("/srv")], &m);
        assert!(plan.filesystems.iter().all(|f| !is_pseudo(&f.fs_type)));
        assert_eq!(plan.filesystems.len(), 3);
    }

    #[test]
    fn no_mount_table_still_marks_the_roots() {
        let plan = plan(&[p("/a"), p("/b")], &[]);
        assert_eq!(plan.filesystems.len(), 2);
        assert!(plan.ignored_mounts.is_empty());
    }
}
