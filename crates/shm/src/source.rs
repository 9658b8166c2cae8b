//! Source files of external frame records: a VoD input writes records that point into the file it
//! serves (`StreamWriter::push_external`), and readers read those payloads with `pread`.
//!
//! The file is never mapped: a file truncated while mapped would turn a read into SIGBUS, while
//! `pread` past its end is a plain short read (an error, the frame is skipped).
//!
//! A path stored in shared memory makes readers (outputs, possibly running as another user than
//! whoever can publish) open a file, so it is honoured only when (docs/security.md):
//! - the stream is VoD (a live stream never names a source file);
//! - its writer is alive and, when the reader runs under a controller (`MIST_CONTROLLER_PID`), was
//!   started by that controller (is its child);
//! - the file found at the path has the inode *and* device the writer recorded, checked on the
//!   opened file (a name swapped for a link to another file is refused).

use crate::layout::*;
use crate::meta::Meta;
use bytes::Bytes;
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::*;
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// Why a stream's source file cannot be used ([`crate::StreamReader::source_file`]).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The stream's metadata names no source file.
    #[error("the stream has no source file")]
    NoSourceFile,
    /// The file is not the one the writer recorded (another inode, device or not a file).
    #[error("{}: replaced since the stream was loaded", .0.display())]
    Replaced(PathBuf),
    /// The stream may not name a file for this reader to open (a live stream, or a writer that
    /// is gone or was not started by this reader's controller).
    #[error("{}: source file not honoured: {reason}", path.display())]
    Untrusted {
        /// The path the stream names.
        path: PathBuf,
        /// Why it is not opened.
        reason: &'static str,
    },
    /// Examining or opening the file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operation gave.
        source: std::io::Error,
    },
    /// Reading a payload failed (the error names the file, the range and the cause).
    #[error("{0}")]
    Read(std::io::Error),
}

/// An open source file, shared by all readers of a process (one descriptor per file).
#[derive(Debug)]
pub struct SourceFile {
    file: File,
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl SourceFile {
    /// `len` bytes at `offset` (one copy into a new buffer). A short file is an error.
    pub fn read(&self, offset: u64, len: usize) -> std::io::Result<Bytes> {
        if len == 0 {
            return Ok(Bytes::new());
        }
        let mut v = vec![0u8; len];
        self.file.read_exact_at(&mut v, offset).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("{}: {len} bytes at {offset}: {e}", self.path.display()),
            )
        })?;
        Ok(Bytes::from(v))
    }

    /// Reads into `buf` (its length) at `offset`.
    pub fn read_into(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The source file recorded in a stream's metadata: (path, device, inode), if any.
pub(crate) fn source_of(meta: &Meta) -> Option<(PathBuf, u64, u64)> {
    let s = &meta.seg;
    let len = s.u32(M_SRC_LEN).load(Acquire) as usize;
    if len == 0 || len > MAX_SRC_PATH {
        return None;
    }
    let bytes = s.read_words(M_SRC_PATH, len);
    use std::os::unix::ffi::OsStrExt;
    let path = PathBuf::from(std::ffi::OsStr::from_bytes(&bytes));
    Some((
        path,
        s.u64(M_SRC_DEV).load(Relaxed),
        s.u64(M_SRC_INO).load(Relaxed),
    ))
}

/// Records `path` as the stream's source file (writer). Fails if the path is too long or the
/// file cannot be examined.
pub(crate) fn set_source(meta: &Meta, path: &Path) -> Result<(), crate::ShmError> {
    use std::os::unix::ffi::OsStrExt;
    // Readers in other processes (other working directories) open it by this path.
    let path = &std::fs::canonicalize(path).map_err(|e| crate::seg::io_err(path, e))?;
    let bytes = path.as_os_str().as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_SRC_PATH {
        return Err(crate::ShmError::SourcePath(format!(
            "{}: path of {} bytes (1..{MAX_SRC_PATH})",
            path.display(),
            bytes.len()
        )));
    }
    let md = std::fs::metadata(path).map_err(|e| crate::seg::io_err(path, e))?;
    let s = &meta.seg;
    s.u32(M_SRC_LEN).store(0, Release);
    s.write_words(M_SRC_PATH, bytes);
    s.u64(M_SRC_INO).store(md.ino(), Relaxed);
    s.u64(M_SRC_SIZE).store(md.len(), Relaxed);
    s.u64(M_SRC_DEV).store(md.dev(), Relaxed);
    s.u32(M_SRC_LEN).store(bytes.len() as u32, Release);
    Ok(())
}

/// Forgets the source file (a new writer's epoch).
pub(crate) fn clear_source(meta: &Meta) {
    meta.seg.u32(M_SRC_LEN).store(0, Release);
}

type Cache = Mutex<HashMap<(PathBuf, u64, u64), Weak<SourceFile>>>;
fn cache() -> &'static Cache {
    static C: OnceLock<Cache> = OnceLock::new();
    C.get_or_init(Default::default)
}

/// The controller this process runs under (`MIST_CONTROLLER_PID`, set for its children).
fn controller_pid() -> Option<u32> {
    std::env::var("MIST_CONTROLLER_PID")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|&p| p != 0)
}

/// The parent of a living process `pid` (from `/proc/PID/stat`).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid …`: comm may hold spaces and parentheses; the last ')' ends it.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Whether a stream written by process `writer` may name a source file for this process to open:
/// `writer` is alive, and when this process runs under a controller, it is this process or a child
/// of that controller. Without a controller (tools run by hand) any living writer will do: the
/// stream's files are owned by our own uid (checked when they are opened), so its writer runs as
/// we do and could open the file itself.
pub(crate) fn writer_trusted(writer: u32, controller: Option<u32>) -> Result<(), &'static str> {
    if writer == 0 || !crate::seg::pid_alive(writer) {
        return Err("its writer is gone");
    }
    let Some(c) = controller else {
        return Ok(());
    };
    if writer == std::process::id() {
        return Ok(());
    }
    match parent_of(writer) {
        Some(parent) if parent == c => Ok(()),
        Some(_) => Err("its writer was not started by the controller"),
        None => Err("its writer is gone"),
    }
}

/// Opens the stream's source file, sharing one descriptor per file and process. The stream must
/// be VoD with a writer this process trusts ([`writer_trusted`]), and the file must still be the
/// one the writer recorded (same device and inode, checked again on the opened file).
pub(crate) fn open_source(meta: &Meta) -> Result<Arc<SourceFile>, SourceError> {
    open_source_as(meta, controller_pid())
}

/// [`open_source`] for a process under `controller`.
pub(crate) fn open_source_as(
    meta: &Meta,
    controller: Option<u32>,
) -> Result<Arc<SourceFile>, SourceError> {
    let (path, dev, ino) = source_of(meta).ok_or(SourceError::NoSourceFile)?;
    if meta.live() {
        return Err(SourceError::Untrusted {
            path,
            reason: "a live stream names no source file",
        });
    }
    if let Err(reason) = writer_trusted(meta.writer_pid(), controller) {
        return Err(SourceError::Untrusted { path, reason });
    }
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source: std::io::Error| SourceError::Io { path, source }
    };
    let md = std::fs::metadata(&path).map_err(io(&path))?;
    // The recorded inode and device must match, always (a record without them names no file we
    // trust).
    if md.ino() != ino || md.dev() != dev {
        return Err(SourceError::Replaced(path));
    }
    let key = (path.clone(), dev, ino);
    let mut c = cache().lock().unwrap_or_else(|p| p.into_inner());
    if let Some(f) = c.get(&key).and_then(Weak::upgrade) {
        return Ok(f);
    }
    // The path is canonical (no links), and a FIFO swapped in must not block the open.
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path)
        .map_err(io(&path))?;
    let opened = file.metadata().map_err(io(&path))?;
    // Checked again on the open file: the name may have been swapped since the stat above.
    if opened.ino() != ino || opened.dev() != dev || !opened.is_file() {
        return Err(SourceError::Replaced(path));
    }
    let f = Arc::new(SourceFile {
        file,
        path,
        dev,
        ino,
    });
    if c.len() > 64 {
        c.retain(|_, w| w.strong_count() > 0);
    }
    c.insert((f.path.clone(), f.dev, f.ino), Arc::downgrade(&f));
    Ok(f)
}
