//! Typed flag sets for `fanotify_init(2)` and `fanotify_mark(2)`.
//!
//! Values come from `libc` (which mirrors `include/uapi/linux/fanotify.h`); the few that
//! `libc` lacks are defined here with the UAPI value and a comment.

use std::fmt;
use std::ops::{BitAnd, BitOr, BitOrAssign, Not, Sub};

/// `FAN_PRE_ACCESS`: pre-content access hook (Linux 6.14+).
/// Not in `libc` 0.2.191; value from `include/uapi/linux/fanotify.h`:
/// `#define FAN_PRE_ACCESS 0x00100000`.
pub const FAN_PRE_ACCESS: u64 = 0x0010_0000;

macro_rules! flag_set {
    (
        $(#[$meta:meta])*
        $name:ident : $t:ty {
            $( $(#[$fmeta:meta])* $flag:ident = $value:expr; )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub struct $name($t);

        impl $name {
            $( $(#[$fmeta])* pub const $flag: $name = $name($value as $t); )*

            /// The empty set.
            pub const fn empty() -> Self {
                Self(0)
            }
            /// The raw bits passed to (or received from) the kernel.
            pub const fn bits(self) -> $t {
                self.0
            }
            /// Builds a set from raw bits, keeping bits this crate does not name.
            pub const fn from_bits_retain(bits: $t) -> Self {
                Self(bits)
            }
            /// True when every bit of `other` is set in `self`.
            pub const fn contains(self, other: Self) -> bool {
                self.0 & other.0 == other.0
            }
            /// True when `self` and `other` share at least one bit.
            pub const fn intersects(self, other: Self) -> bool {
                self.0 & other.0 != 0
            }
            /// True when no bit is set.
            pub const fn is_empty(self) -> bool {
                self.0 == 0
            }
            /// The union of both sets (usable in `const` contexts).
            pub const fn union(self, other: Self) -> Self {
                Self(self.0 | other.0)
            }
            /// Named single-bit flags, for `Debug`.
            const NAMED: &'static [(&'static str, $t)] = &[ $( (stringify!($flag), $value as $t), )* ];
        }

        impl BitOr for $name {
            type Output = Self;
            fn bitor(self, rhs: Self) -> Self {
                Self(self.0 | rhs.0)
            }
        }
        impl BitOrAssign for $name {
            fn bitor_assign(&mut self, rhs: Self) {
                self.0 |= rhs.0;
            }
        }
        impl BitAnd for $name {
            type Output = Self;
            fn bitand(self, rhs: Self) -> Self {
                Self(self.0 & rhs.0)
            }
        }
        impl Sub for $name {
            type Output = Self;
            fn sub(self, rhs: Self) -> Self {
                Self(self.0 & !rhs.0)
            }
        }
        impl Not for $name {
            type Output = Self;
            fn not(self) -> Self {
                Self(!self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut rest = self.0;
                let mut first = true;
                write!(f, "{}(", stringify!($name))?;
                for &(name, bit) in Self::NAMED {
                    if bit.count_ones() == 1 && self.0 & bit == bit {
                        if !first {
                            f.write_str(" | ")?;
                        }
                        f.write_str(name)?;
                        first = false;
                        rest &= !bit;
                    }
                }
                if rest != 0 || first {
                    if !first {
                        f.write_str(" | ")?;
                    }
                    write!(f, "{:#x}", rest)?;
                }
                f.write_str(")")
            }
        }
    };
}

flag_set! {
    /// Flags of `fanotify_init(2)`: the notification class plus behaviour and reporting
    /// flags. Exactly one class applies; `CLASS_NOTIF` is the zero value.
    ///
    /// Beware: the FID reporting flags (`REPORT_FID`, `REPORT_DIR_FID`, `REPORT_NAME`,
    /// `REPORT_TARGET_FID`) cannot be combined with `CLASS_CONTENT` or `CLASS_PRE_CONTENT`;
    /// the kernel answers `EINVAL`. Enforcement and directory-entry tracking need two groups.
    InitFlags: u32 {
        /// `FAN_CLASS_NOTIF`: notification only, no permission events (the default, 0).
        CLASS_NOTIF = libc::FAN_CLASS_NOTIF;
        /// `FAN_CLASS_CONTENT`: permission events, after the file content is final.
        CLASS_CONTENT = libc::FAN_CLASS_CONTENT;
        /// `FAN_CLASS_PRE_CONTENT`: permission events before content is final (HSM).
        CLASS_PRE_CONTENT = libc::FAN_CLASS_PRE_CONTENT;
        /// `FAN_CLOEXEC`: close-on-exec on the group fd.
        CLOEXEC = libc::FAN_CLOEXEC;
        /// `FAN_NONBLOCK`: `read` returns `WouldBlock` instead of waiting.
        NONBLOCK = libc::FAN_NONBLOCK;
        /// `FAN_UNLIMITED_QUEUE`: no queue limit. A full queue fails open, so the
        /// enforcement group must use this.
        UNLIMITED_QUEUE = libc::FAN_UNLIMITED_QUEUE;
        /// `FAN_UNLIMITED_MARKS`: no per-user mark limit.
        UNLIMITED_MARKS = libc::FAN_UNLIMITED_MARKS;
        /// `FAN_ENABLE_AUDIT`: allows `FAN_AUDIT` in responses.
        ENABLE_AUDIT = libc::FAN_ENABLE_AUDIT;
        /// `FAN_REPORT_PIDFD`: each event carries a pidfd info record.
        REPORT_PIDFD = libc::FAN_REPORT_PIDFD;
        /// `FAN_REPORT_TID`: report the thread id instead of the process id.
        REPORT_TID = libc::FAN_REPORT_TID;
        /// `FAN_REPORT_FID`: events carry a file handle instead of an fd.
        REPORT_FID = libc::FAN_REPORT_FID;
        /// `FAN_REPORT_DIR_FID`: events carry the parent directory's file handle.
        REPORT_DIR_FID = libc::FAN_REPORT_DIR_FID;
        /// `FAN_REPORT_NAME`: with `REPORT_DIR_FID`, also the entry name.
        REPORT_NAME = libc::FAN_REPORT_NAME;
        /// `FAN_REPORT_DFID_NAME` = `REPORT_DIR_FID | REPORT_NAME`.
        REPORT_DFID_NAME = libc::FAN_REPORT_DFID_NAME;
        /// `FAN_REPORT_TARGET_FID`: directory-entry events also carry the child's handle.
        REPORT_TARGET_FID = libc::FAN_REPORT_TARGET_FID;
        /// `FAN_REPORT_DFID_NAME_TARGET` = `REPORT_DFID_NAME | REPORT_FID | REPORT_TARGET_FID`.
        REPORT_DFID_NAME_TARGET = libc::FAN_REPORT_DFID_NAME_TARGET;
    }
}

impl InitFlags {
    /// The class bits of this set (`CLASS_NOTIF`, `CLASS_CONTENT` or `CLASS_PRE_CONTENT`).
    pub const fn class(self) -> InitFlags {
        InitFlags(self.0 & (libc::FAN_CLASS_CONTENT | libc::FAN_CLASS_PRE_CONTENT))
    }
    /// True when the class can receive permission events.
    pub const fn is_permission_class(self) -> bool {
        !self.class().is_empty()
    }
    /// True when any FID reporting flag is set (events then carry handles, not fds).
    pub const fn reports_fid(self) -> bool {
        self.0
            & (libc::FAN_REPORT_FID
                | libc::FAN_REPORT_DIR_FID
                | libc::FAN_REPORT_NAME
                | libc::FAN_REPORT_TARGET_FID)
            != 0
    }
}

flag_set! {
    /// Event mask of `fanotify_mark(2)` and of received events.
    Mask: u64 {
        /// `FAN_ACCESS`: file read.
        ACCESS = libc::FAN_ACCESS;
        /// `FAN_MODIFY`: file written.
        MODIFY = libc::FAN_MODIFY;
        /// `FAN_ATTRIB`: metadata changed (FID groups only).
        ATTRIB = libc::FAN_ATTRIB;
        /// `FAN_CLOSE_WRITE`: a file opened for writing was closed.
        CLOSE_WRITE = libc::FAN_CLOSE_WRITE;
        /// `FAN_CLOSE_NOWRITE`: a file opened read-only was closed.
        CLOSE_NOWRITE = libc::FAN_CLOSE_NOWRITE;
        /// `FAN_OPEN`: file or directory opened.
        OPEN = libc::FAN_OPEN;
        /// `FAN_MOVED_FROM`: entry moved out of a watched directory (FID groups only).
        MOVED_FROM = libc::FAN_MOVED_FROM;
        /// `FAN_MOVED_TO`: entry moved into a watched directory (FID groups only).
        MOVED_TO = libc::FAN_MOVED_TO;
        /// `FAN_CREATE`: entry created (FID groups only).
        CREATE = libc::FAN_CREATE;
        /// `FAN_DELETE`: entry deleted (FID groups only).
        DELETE = libc::FAN_DELETE;
        /// `FAN_DELETE_SELF`: the marked object itself was deleted (FID groups only).
        DELETE_SELF = libc::FAN_DELETE_SELF;
        /// `FAN_MOVE_SELF`: the marked object itself was moved (FID groups only).
        MOVE_SELF = libc::FAN_MOVE_SELF;
        /// `FAN_OPEN_EXEC`: file opened for execution.
        OPEN_EXEC = libc::FAN_OPEN_EXEC;
        /// `FAN_Q_OVERFLOW`: the event queue overflowed (received only).
        Q_OVERFLOW = libc::FAN_Q_OVERFLOW;
        /// `FAN_FS_ERROR`: filesystem error (filesystem marks, FID groups).
        FS_ERROR = libc::FAN_FS_ERROR;
        /// `FAN_OPEN_PERM`: permission to open (content classes).
        OPEN_PERM = libc::FAN_OPEN_PERM;
        /// `FAN_ACCESS_PERM`: permission to read; fires on every `read()`.
        ACCESS_PERM = libc::FAN_ACCESS_PERM;
        /// `FAN_OPEN_EXEC_PERM`: permission to open for execution (content classes).
        OPEN_EXEC_PERM = libc::FAN_OPEN_EXEC_PERM;
        /// `FAN_PRE_ACCESS`: pre-content access (6.14+, pre-content class only).
        PRE_ACCESS = FAN_PRE_ACCESS;
        /// `FAN_EVENT_ON_CHILD`: a directory mark also reports events on its children.
        EVENT_ON_CHILD = libc::FAN_EVENT_ON_CHILD;
        /// `FAN_RENAME`: one event per rename with old and new names (FID groups, 5.17+).
        /// Raised when either directory is marked; only the marked side's record is in the
        /// event (`OLD_DFID_NAME` for the source, `NEW_DFID_NAME` for the target; measured
        /// on 6.18), so a move out of or into a marked set shows as one record. Never merged.
        /// Directories need `ONDIR` in the mask.
        RENAME = libc::FAN_RENAME;
        /// `FAN_ONDIR`: also report events on directories (needed for `mkdir`/`rmdir`).
        ONDIR = libc::FAN_ONDIR;
        /// `FAN_CLOSE` = `CLOSE_WRITE | CLOSE_NOWRITE`.
        CLOSE = libc::FAN_CLOSE;
        /// `FAN_MOVE` = `MOVED_FROM | MOVED_TO`.
        MOVE = libc::FAN_MOVE;
    }
}

impl Mask {
    /// Every permission event bit (`OPEN_PERM`, `ACCESS_PERM`, `OPEN_EXEC_PERM`, `PRE_ACCESS`).
    pub const PERMISSION_EVENTS: Mask = Mask(
        libc::FAN_OPEN_PERM | libc::FAN_ACCESS_PERM | libc::FAN_OPEN_EXEC_PERM | FAN_PRE_ACCESS,
    );

    /// True when this mask holds a permission event (which must be answered).
    pub const fn is_permission(self) -> bool {
        self.intersects(Self::PERMISSION_EVENTS)
    }
}

/// The object a mark applies to (`FAN_MARK_INODE`, `FAN_MARK_MOUNT`, `FAN_MARK_FILESYSTEM`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MarkKind {
    /// The inode at the path (a file, or a directory with `EVENT_ON_CHILD` for its children).
    Inode,
    /// The whole mount holding the path. Directory-entry events are refused (`EINVAL`).
    Mount,
    /// The whole filesystem holding the path, every mount of it included.
    Filesystem,
}

impl MarkKind {
    pub(crate) const fn bits(self) -> u32 {
        match self {
            MarkKind::Inode => libc::FAN_MARK_INODE,
            MarkKind::Mount => libc::FAN_MARK_MOUNT,
            MarkKind::Filesystem => libc::FAN_MARK_FILESYSTEM,
        }
    }
}

flag_set! {
    /// Modifier flags of `fanotify_mark(2)` (the action and object kind are given separately).
    MarkFlags: u32 {
        /// `FAN_MARK_DONT_FOLLOW`: do not follow a final symlink.
        DONT_FOLLOW = libc::FAN_MARK_DONT_FOLLOW;
        /// `FAN_MARK_ONLYDIR`: fail with `ENOTDIR` unless the path is a directory.
        ONLYDIR = libc::FAN_MARK_ONLYDIR;
        /// `FAN_MARK_IGNORED_MASK`: the mask is an ignore mask (legacy form).
        IGNORED_MASK = libc::FAN_MARK_IGNORED_MASK;
        /// `FAN_MARK_IGNORED_SURV_MODIFY`: the ignore mask survives writes.
        IGNORED_SURV_MODIFY = libc::FAN_MARK_IGNORED_SURV_MODIFY;
        /// `FAN_MARK_EVICTABLE`: the mark does not pin the inode in memory.
        EVICTABLE = libc::FAN_MARK_EVICTABLE;
        /// `FAN_MARK_IGNORE`: the mask is an ignore mask (5.19+ form, strict on directories).
        IGNORE = libc::FAN_MARK_IGNORE;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_names_bits_and_keeps_unknown_ones() {
        let m = Mask::CREATE | Mask::ONDIR;
        assert_eq!(format!("{m:?}"), "Mask(CREATE | ONDIR)");
        assert_eq!(format!("{:?}", Mask::empty()), "Mask(0x0)");
        let odd = Mask::from_bits_retain(libc::FAN_OPEN_PERM | (1 << 40));
        assert_eq!(format!("{odd:?}"), "Mask(OPEN_PERM | 0x10000000000)");
    }

    #[test]
    fn set_operations() {
        let m = Mask::OPEN_PERM | Mask::OPEN_EXEC_PERM;
        assert!(m.contains(Mask::OPEN_PERM));
        assert!(!m.contains(Mask::OPEN_PERM | Mask::CREATE));
        assert!(m.is_permission());
        assert!(!(Mask::CREATE | Mask::ONDIR).is_permission());
        assert_eq!(m - Mask::OPEN_PERM, Mask::OPEN_EXEC_PERM);
        assert_eq!((m & Mask::OPEN_EXEC_PERM).bits(), libc::FAN_OPEN_EXEC_PERM);
        assert_eq!(Mask::PRE_ACCESS.bits(), 0x0010_0000);
    }

    #[test]
    fn init_flag_helpers() {
        let enforce = InitFlags::CLASS_CONTENT | InitFlags::UNLIMITED_QUEUE;
        assert!(enforce.is_permission_class());
        assert!(!enforce.reports_fid());
        assert_eq!(enforce.class(), InitFlags::CLASS_CONTENT);
        let track = InitFlags::CLASS_NOTIF | InitFlags::REPORT_DFID_NAME;
        assert!(!track.is_permission_class());
        assert!(track.reports_fid());
        assert_eq!(
            InitFlags::REPORT_DFID_NAME,
            InitFlags::REPORT_DIR_FID | InitFlags::REPORT_NAME
        );
    }
}
