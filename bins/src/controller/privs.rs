//! Least privilege: `-u USER` (or the config's `controller.username`) makes a controller started as
//! root drop to that user once the API port and the control socket are bound. Children inherit
//! the unprivileged user; the control socket's directory and the socket are handed to it first so
//! the children can still connect.

use std::ffi::CString;
use std::path::{Path, PathBuf};

/// Why the controller could not run as the user it was told to.
#[derive(Debug, thiserror::Error)]
pub enum PrivsError {
    #[error("no such user {0:?}")]
    NoSuchUser(String),
    #[error("cannot switch to user {0:?}: not started as root")]
    NotRoot(String),
    #[error("cannot hand {} to {user}: {source}", .path.display())]
    Hand {
        path: PathBuf,
        user: String,
        source: std::io::Error,
    },
    #[error("cannot switch to user {user:?}: {source}")]
    Switch {
        user: String,
        source: std::io::Error,
    },
    #[error("still root after dropping privileges")]
    StillRoot,
}

/// A user's ids, from the password database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
}

/// Looks `user` up (a name, or a numeric uid with the same numeric gid).
pub fn lookup(user: &str) -> Option<Ids> {
    let name = CString::new(user).ok()?;
    let mut buf = vec![0 as libc::c_char; 16 << 10];
    // SAFETY: an all-zero `struct passwd` is a valid value for getpwnam_r to overwrite.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: valid NUL-terminated name, writable struct, buffer of the stated length and result
    // pointer, all alive for the call.
    let r = unsafe {
        libc::getpwnam_r(
            name.as_ptr(),
            &mut pw,
            buf.as_mut_ptr(),
            buf.len(),
            &mut out,
        )
    };
    if r == 0 && !out.is_null() {
        return Some(Ids {
            uid: pw.pw_uid,
            gid: pw.pw_gid,
        });
    }
    user.parse::<u32>().ok().map(|n| Ids { uid: n, gid: n })
}

fn chown(path: &Path, ids: Ids) -> std::io::Result<()> {
    std::os::unix::fs::lchown(path, Some(ids.uid), Some(ids.gid))
}

/// Drops to `user` when running as root; hands `owned` (the control socket and its directory) to
/// that user first. Not root: fine when `user` is who we are already, an error otherwise.
pub fn drop_to(user: &str, owned: &[&Path]) -> Result<(), PrivsError> {
    let ids = lookup(user).ok_or_else(|| PrivsError::NoSuchUser(user.to_string()))?;
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return if euid == ids.uid {
            Ok(())
        } else {
            Err(PrivsError::NotRoot(user.to_string()))
        };
    }
    if ids.uid == 0 {
        return Ok(());
    }
    for p in owned {
        chown(p, ids).map_err(|source| PrivsError::Hand {
            path: p.to_path_buf(),
            user: user.to_string(),
            source,
        })?;
    }
    let gid = ids.gid as libc::gid_t;
    // SAFETY: plain system calls with valid arguments (one supplementary group: the user's own).
    let ok = unsafe {
        libc::setgroups(1, &gid) == 0 && libc::setgid(ids.gid) == 0 && libc::setuid(ids.uid) == 0
    };
    if !ok {
        return Err(PrivsError::Switch {
            user: user.to_string(),
            source: std::io::Error::last_os_error(),
        });
    }
    // Must not be able to get root back.
    // SAFETY: plain system calls.
    let regained = unsafe { libc::setuid(0) == 0 || libc::geteuid() == 0 };
    if regained {
        return Err(PrivsError::StillRoot);
    }
    Ok(())
}

/// The controller's drop: `-u`, else the config's `controller.username`; nothing when neither.
pub fn drop_after_bind(
    opts: &super::Opts,
    cfg: &mist_core::config::Config,
    control: &Path,
) -> Result<(), PrivsError> {
    let user = opts
        .username
        .clone()
        .or_else(|| cfg.config.controller.username.clone())
        .filter(|u| !u.is_empty());
    let Some(user) = user else { return Ok(()) };
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        // Not root: nothing to drop; a different user cannot be had (and is not needed).
        if let Err(e) = drop_to(&user, &[]) {
            mist_core::warn!("{e}; running as the current user");
        }
        return Ok(());
    }
    let dir = control.parent().filter(|d| !d.as_os_str().is_empty());
    let owned: Vec<&Path> = dir.into_iter().chain([control]).collect();
    drop_to(&user, &owned)?;
    mist_core::info!("running as user {user}");
    Ok(())
}
