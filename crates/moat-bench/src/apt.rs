//! Installing what a suite needs from Debian's packages when it is missing (as root only),
//! the way the `watch` suite installs ClamAV: `apt-get install -y`, logged to a file, with
//! one `apt-get update` and a retry when the first attempt fails (a stale package list).

use std::path::Path;
use std::process::{Command, Stdio};

/// Whether this process runs as root.
pub fn is_root() -> bool {
    // SAFETY: plain syscall.
    unsafe { libc::geteuid() == 0 }
}

fn apt_get(args: &[&str], log: &Path) -> Result<bool, String> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let status = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .status()
        .map_err(|e| format!("apt-get: {e}"))?;
    Ok(status.success())
}

/// Unless `present()` already holds, installs `packages` (root only) and checks again.
/// `why` names what is missing, for the messages.
pub fn ensure(
    present: impl Fn() -> bool,
    packages: &[&str],
    why: &str,
    log: &Path,
) -> Result<(), String> {
    if present() {
        return Ok(());
    }
    let list = packages.join(" ");
    if !is_root() {
        return Err(format!(
            "{why} missing (as root: apt-get install -y {list})"
        ));
    }
    if let Some(dir) = log.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    eprintln!(
        "moat-bench: {why} missing, running `apt-get install -y {list}` (log: {})",
        log.display()
    );
    let mut install = vec!["install", "-y"];
    install.extend_from_slice(packages);
    if !apt_get(&install, log)? || !present() {
        eprintln!("moat-bench: retrying after `apt-get update`");
        apt_get(&["update"], log)?;
        apt_get(&install, log)?;
    }
    if present() {
        Ok(())
    } else {
        Err(format!(
            "{why} still missing after `apt-get install -y {list}` (see {})",
            log.display()
        ))
    }
}

/// Resolves a program name like a shell would, also looking in the sbin directories that
/// a non-login root shell may lack in PATH.
pub fn find_program(name: &Path) -> Option<std::path::PathBuf> {
    if name.components().count() > 1 {
        return name.is_file().then(|| name.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(std::path::PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}
