//! Resolving `OnAccessExcludeUname` user names to uids.

use std::ffi::{CStr, CString};
use std::io;

/// Why a user name could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum UnameError {
    /// No such user in the password database.
    #[error("OnAccessExcludeUname: no user named {name:?}")]
    NotFound {
        /// The name that was looked up.
        name: String,
    },
    /// The name contains a NUL byte and cannot be looked up.
    #[error("OnAccessExcludeUname: invalid user name {name:?} (contains a NUL byte)")]
    InvalidName {
        /// The name that was looked up.
        name: String,
    },
    /// The lookup itself failed (NSS error, I/O error...).
    #[error("OnAccessExcludeUname: cannot look up user {name:?}: {error}")]
    Lookup {
        /// The name that was looked up.
        name: String,
        /// The error `getpwnam_r` returned.
        error: io::Error,
    },
}

/// Resolves user names to uids with `getpwnam_r`, in order (the result has one uid per name).
///
/// **Call at start and on reload only, never on the event path**: a lookup may go through NSS
/// (LDAP, sssd, ...) and block for seconds. ClamAV resolves the accessing uid with `getpwuid`
/// on every event and compares names by prefix (`OnAccessExcludeUname bob` also excludes
/// `bobby`); moat compares exact names, resolved once.
pub fn resolve_unames(names: &[String]) -> Result<Vec<u32>, UnameError> {
    names.iter().map(|name| resolve_uname(name)).collect()
}

/// Resolves one user name to its uid (see [`resolve_unames`]).
pub fn resolve_uname(name: &str) -> Result<u32, UnameError> {
    let c_name = CString::new(name).map_err(|_| UnameError::InvalidName {
        name: name.to_owned(),
    })?;
    // SAFETY: sysconf has no preconditions.
    let suggested = unsafe { libc::sysconf(libc::_SC_GETPW_R_SIZE_MAX) };
    let mut buf_len = usize::try_from(suggested)
        .ok()
        .filter(|&n| n > 0)
        .unwrap_or(1024);
    loop {
        let mut buf = vec![0 as libc::c_char; buf_len];
        // SAFETY: passwd is plain old data; getpwnam_r fills it in.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the duration of the call and buf_len is the real
        // length of buf.
        let rc = unsafe {
            libc::getpwnam_r(
                c_name.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf_len < (1 << 20) {
            buf_len *= 2;
            continue;
        }
        if rc != 0 {
            // glibc returns these for "not found" on some NSS backends.
            if matches!(rc, libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM) {
                return Err(UnameError::NotFound {
                    name: name.to_owned(),
                });
            }
            return Err(UnameError::Lookup {
                name: name.to_owned(),
                error: io::Error::from_raw_os_error(rc),
            });
        }
        if result.is_null() {
            return Err(UnameError::NotFound {
                name: name.to_owned(),
            });
        }
        // Sanity: the entry is for the name asked (pw_name is valid while buf lives).
        // SAFETY: result points at pwd, whose pw_name points into buf.
        let found = unsafe { CStr::from_ptr((*result).pw_name) };
        debug_assert_eq!(found.to_bytes(), c_name.as_bytes());
        return Ok(pwd.pw_uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_uid_zero() {
        assert_eq!(resolve_unames(&["root".to_owned()]).unwrap(), vec![0]);
    }

    #[test]
    fn unknown_user_is_named() {
        let err = resolve_unames(&["root".into(), "no-such-user-moat-test".into()]).unwrap_err();
        assert!(matches!(err, UnameError::NotFound { .. }), "{err:?}");
        assert!(err.to_string().contains("no-such-user-moat-test"));
    }

    #[test]
    fn nul_in_name() {
        let err = resolve_uname("ro\0ot").unwrap_err();
        assert!(matches!(err, UnameError::InvalidName { .. }));
    }
}
