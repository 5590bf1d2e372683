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
    /// The filesystem's device (`major:minor`): the same for every mount of one filesystem.
    pub dev: (u32, u32),
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
    let _id = fields.next()?;
    let _parent = fields.next()?;
    let (major, minor) = fields.next()?.split_once(':')?;
    let _root = fields.next()?;
    let mount_point = unescape(fields.next()?);
    // Optional fields end at the "-" separator; the filesystem type follows it.
    let fs_type = fields.by_ref().skip_while(|f| *f != "-").nth(1)?;
    Some(Mount {
        dev: (major.parse().ok()?, minor.parse().ok()?),
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

/// What filesystem scope marks.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    /// One path per filesystem to mark with `FAN_MARK_FILESYSTEM` (and its type, for the log).
    pub filesystems: Vec<(PathBuf, String)>,
    /// Mounts of those filesystems that cannot reach an include path: ignored as a whole.
    pub ignored_mounts: Vec<PathBuf>,
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
            plan.filesystems.push((path.to_owned(), fs_type.to_owned()));
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
            None => plan.filesystems.push((root.clone(), "?".into())),
        }
        for m in mounts
            .iter()
            .filter(|m| m.mount_point.starts_with(root) && &m.mount_point != root)
        {
            add(&mut plan, m.dev, &m.mount_point, &m.fs_type);
        }
    }
    for m in mounts {
        let related = roots
            .iter()
            .any(|r| r.starts_with(&m.mount_point) || m.mount_point.starts_with(r));
        if devs.contains(&m.dev) && !related && !plan.ignored_mounts.contains(&m.mount_point) {
            plan.ignored_mounts.push(m.mount_point.clone());
        }
    }
    plan
}

/// The plan for this process's mount namespace; a mount table that cannot be read yields a
/// plan that marks the roots' filesystems and ignores nothing.
pub fn plan_here(roots: &[PathBuf]) -> Plan {
    match std::fs::read_to_string("/proc/self/mountinfo") {
        Ok(text) => {
            let (mounts, bad) = parse(&text);
            if bad > 0 {
                tracing::warn!(
                    lines = bad,
                    "unparsable lines in /proc/self/mountinfo were skipped"
                );
            }
            plan(roots, &mounts)
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read /proc/self/mountinfo: marking the include paths' filesystems only");
            plan(roots, &[])
        }
    }
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
                dev: (8, 2),
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
        let marked: Vec<_> = plan.filesystems.iter().map(|f| f.0.clone()).collect();
        // /srv is on /dev/sda1; /srv/data (xfs) and the tmpfs are below it; the bind mount
        // /srv/opt-bind is sda1 again.
        assert_eq!(marked, vec![p("/srv"), p("/srv/data"), p("/srv/odd name")]);
        // Mounts of the marked filesystems that cannot reach /srv: /mnt/bind (sda1). Not /,
        // which holds /srv; not /srv/opt-bind, which is inside it; not /var (unmarked fs).
        assert_eq!(plan.ignored_mounts, vec![p("/mnt/bind")]);
    }

    #[test]
    fn the_deepest_mount_holds_a_root() {
        let (m, _) = parse(TABLE);
        let plan = plan(&[p("/var/lib/x")], &m);
        assert_eq!(
            plan.filesystems,
            vec![(p("/var/lib/x"), "ext4".to_string())]
        );
        assert!(plan.ignored_mounts.is_empty());
        // Two roots on one filesystem: one mark.
        let plan = super::plan(&[p("/home/a"), p("/opt")], &m);
        assert_eq!(plan.filesystems.len(), 1);
        assert_eq!(
            plan.ignored_mounts,
            vec![p("/mnt/bind"), p("/srv/opt-bind")]
        );
    }

    #[test]
    fn no_mount_table_still_marks_the_roots() {
        let plan = plan(&[p("/a"), p("/b")], &[]);
        assert_eq!(plan.filesystems.len(), 2);
        assert!(plan.ignored_mounts.is_empty());
    }
}
