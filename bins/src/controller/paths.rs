//! Where the control socket lives.
//!
//! 1. `$MIST_CONTROL` when set (the same variable children read, so a test or a second instance can
//!    pick its own path);
//! 2. `/run/mist-rs/control.sock` when running as root;
//! 3. `$XDG_RUNTIME_DIR/mist-rs/control.sock` when that is set;
//! 4. `/tmp/mist-rs-<uid>/control.sock` otherwise.
//!
//! The directory is created with mode 0700 and must be owned by the controller's user (a directory
//! someone else owns is refused: they could swap the socket); the socket gets mode 0660.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub fn control_socket_path() -> PathBuf {
    if let Some(p) = std::env::var_os(mist_core::control::ENV_CONTROL).filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    // SAFETY: geteuid/getuid cannot fail.
    let (euid, uid) = unsafe { (libc::geteuid(), libc::getuid()) };
    if euid == 0 {
        return PathBuf::from("/run/mist-rs/control.sock");
    }
    if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
        return Path::new(&x).join("mist-rs/control.sock");
    }
    PathBuf::from(format!("/tmp/mist-rs-{uid}/control.sock"))
}

/// Creates the socket's directory (if missing) with mode 0700, and refuses one that is not a
/// directory of our own (another user could replace the socket in it).
pub fn prepare_dir(sock: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let Some(dir) = sock.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let meta = std::fs::symlink_metadata(dir)?;
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    if !meta.is_dir() || meta.uid() != me {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "{} is owned by uid {} (not us, {me}) or is no directory: refusing it",
                dir.display(),
                meta.uid()
            ),
        ));
    }
    Ok(())
}

pub fn set_socket_mode(sock: &Path) -> std::io::Result<()> {
    std::fs::set_permissions(sock, std::fs::Permissions::from_mode(0o660))
}
