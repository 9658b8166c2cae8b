//! A mapped segment file and the small amount of `unsafe` needed to view it as atomics.

use crate::ShmError;
use memmap2::{MmapOptions, MmapRaw};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};

pub(crate) fn io_err(path: &Path, source: std::io::Error) -> ShmError {
    ShmError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A shared mapping of a whole segment file.
pub(crate) struct Seg {
    map: MmapRaw,
    len: usize,
    /// Kept for segments we created (the writer reserves memory for pages with fallocate).
    file: Option<File>,
    pub path: PathBuf,
    pub ino: u64,
    /// The SIGBUS guard's slot for this mapping (`crate::guard`).
    guard: Option<usize>,
}

impl Drop for Seg {
    fn drop(&mut self) {
        // Unguard before the mapping goes (the field is dropped after this).
        if let Some(slot) = self.guard.take() {
            crate::guard::unregister(slot);
        }
    }
}

/// Our effective uid: segments owned by anyone else are never opened.
fn my_uid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

/// The program name for log lines written from here.
fn prog() -> String {
    std::env::args()
        .next()
        .and_then(|a| a.rsplit('/').next().map(str::to_string))
        .unwrap_or_else(|| "mist".into())
}

/// File mode for new segments: 0600, or 0660 when `MIST_SHM_GROUP` is set.
fn seg_mode() -> u32 {
    if std::env::var_os("MIST_SHM_GROUP").is_some() {
        0o660
    } else {
        0o600
    }
}

/// `MIST_SHM_GROUP` as a gid: a number, or a group name looked up with getgrnam_r.
fn shm_group() -> Option<u32> {
    group_id(&std::env::var("MIST_SHM_GROUP").ok()?)
}

#[cfg(test)]
pub fn shm_group_for_test(g: &str) -> Option<u32> {
    group_id(g)
}

fn group_id(g: &str) -> Option<u32> {
    if let Ok(n) = g.parse::<u32>() {
        return Some(n);
    }
    let name = std::ffi::CString::new(g).ok()?;
    let mut buf = vec![0 as libc::c_char; 16 << 10];
    // SAFETY: an all-zero `struct group` is a valid value (null pointers, gid 0) for getgrnam_r
    // to overwrite.
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::group = std::ptr::null_mut();
    // SAFETY: all pointers are valid for the call: a NUL-terminated name, a writable group
    // struct, a writable buffer of the stated length and a writable result pointer.
    let r = unsafe {
        libc::getgrnam_r(
            name.as_ptr(),
            &mut grp,
            buf.as_mut_ptr(),
            buf.len(),
            &mut out,
        )
    };
    (r == 0 && !out.is_null()).then_some(grp.gr_gid)
}

fn apply_group(file: &File) {
    use std::os::fd::AsRawFd;
    if let Some(g) = shm_group() {
        // SAFETY: fchown on a file descriptor we own; failure is ignored (best effort).
        unsafe {
            libc::fchown(file.as_raw_fd(), u32::MAX, g);
        }
    }
}

impl Seg {
    /// Creates a new segment file of `len` bytes (zero-filled, sparse), failing if it exists.
    pub fn create(path: &Path, len: usize) -> Result<Seg, ShmError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .mode(seg_mode())
            .open(path)
            .map_err(|e| io_err(path, e))?;
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = file.set_permissions(std::fs::Permissions::from_mode(seg_mode()));
        }
        apply_group(&file);
        file.set_len(len as u64).map_err(|e| io_err(path, e))?;
        Self::map(file, path, len, true)
    }

    /// Opens an existing segment; `min_len` is the size the caller will access.
    pub fn open(path: &Path, min_len: usize, write: bool) -> Result<Seg, ShmError> {
        let file = OpenOptions::new()
            .read(true)
            .write(write)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| io_err(path, e))?;
        // Checked on the open file (fstat), before mapping: a file another user planted in the
        // shared-memory directory is never adopted.
        let meta = file.metadata().map_err(|e| io_err(path, e))?;
        if meta.uid() != my_uid() || !meta.is_file() {
            eprintln!(
                "WARN {}: refusing shared-memory file {} owned by uid {} (not ours, {})",
                prog(),
                path.display(),
                meta.uid(),
                my_uid()
            );
            return Err(ShmError::Corrupt(
                path.display().to_string(),
                format!("owned by uid {}, not by us ({})", meta.uid(), my_uid()),
            ));
        }
        let len = meta.len();
        if len < min_len as u64 || len > usize::MAX as u64 / 2 {
            return Err(ShmError::Corrupt(
                path.display().to_string(),
                format!("size {len} < {min_len}"),
            ));
        }
        Self::map(file, path, len as usize, write)
    }

    fn map(file: File, path: &Path, len: usize, write: bool) -> Result<Seg, ShmError> {
        let ino = file.metadata().map(|m| m.ino()).unwrap_or(0);
        let opts = {
            let mut o = MmapOptions::new();
            o.len(len);
            o
        };
        let map = if write {
            opts.map_raw(&file)
        } else {
            opts.map_raw_read_only(&file)
        }
        .map_err(|e| io_err(path, e))?;
        let guard = crate::guard::register(map.as_ptr() as usize, len);
        Ok(Seg {
            map,
            len,
            file: write.then_some(file),
            path: path.to_owned(),
            ino,
            guard,
        })
    }

    /// The same mapping, known under its final name (after a temp-name + link creation).
    pub fn renamed(mut self, path: &Path) -> Seg {
        self.path = path.to_owned();
        self
    }

    /// Reserves backing memory for `[off, off+len)` so that a full tmpfs is an ENOSPC error here
    /// instead of a SIGBUS when the mapping is written.
    pub fn reserve(&self, off: usize, len: usize) -> Result<(), ShmError> {
        use std::os::fd::AsRawFd;
        let Some(f) = &self.file else { return Ok(()) };
        let len = len.min(self.len.saturating_sub(off));
        if len == 0 {
            return Ok(());
        }
        // SAFETY: fallocate on a file descriptor we own, within the file's size (mode 0 never
        // shrinks or changes visible contents).
        let r =
            unsafe { libc::fallocate(f.as_raw_fd(), 0, off as libc::off_t, len as libc::off_t) };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            // File systems without fallocate: nothing to reserve with, carry on.
            if !matches!(
                e.raw_os_error(),
                Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS)
            ) {
                return Err(io_err(&self.path, e));
            }
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.len
    }

    fn check(&self, off: usize, size: usize) {
        // Offsets are either layout constants or validated against the segment size by the
        // caller; failing here is a bug in this crate, not a corrupt segment.
        assert!(
            off & (size - 1) == 0 && off.checked_add(size).is_some_and(|e| e <= self.len),
            "segment offset {off} out of range"
        );
    }

    pub fn u32(&self, off: usize) -> &AtomicU32 {
        self.check(off, 4);
        // SAFETY: the range is inside the live mapping (checked above) and 4-aligned (the mapping
        // is page aligned); the mapping lives as long as `self`. All access to shared words goes
        // through atomics, so concurrent access from other processes is not a data race.
        unsafe { &*(self.map.as_mut_ptr().add(off) as *const AtomicU32) }
    }

    pub fn u64(&self, off: usize) -> &AtomicU64 {
        self.check(off, 8);
        // SAFETY: as in `u32`, with 8-byte size and alignment.
        unsafe { &*(self.map.as_mut_ptr().add(off) as *const AtomicU64) }
    }

    pub fn i64(&self, off: usize) -> &AtomicI64 {
        self.check(off, 8);
        // SAFETY: as in `u64`; AtomicI64 has the same layout as AtomicU64.
        unsafe { &*(self.map.as_mut_ptr().add(off) as *const AtomicI64) }
    }

    /// Copies `len` bytes at `off` out with relaxed 8-byte atomic loads (for seqlock-protected
    /// regions that a writer may be changing concurrently). `off` must be 8-aligned.
    pub fn read_words(&self, off: usize, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        let words = len.div_ceil(8);
        for i in 0..words {
            out.extend_from_slice(&self.u64(off + i * 8).load(Ordering::Relaxed).to_ne_bytes());
        }
        out.truncate(len);
        out
    }

    /// Stores `data` at `off` (8-aligned) with relaxed 8-byte atomic stores.
    pub fn write_words(&self, off: usize, data: &[u8]) {
        for (i, chunk) in data.chunks(8).enumerate() {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.u64(off + i * 8)
                .store(u64::from_ne_bytes(w), Ordering::Relaxed);
        }
    }

    /// Copies `data` into the segment at `off` with a plain memcpy. Only for regions no other
    /// process reads until they are published with a Release store (page records).
    pub fn write_bytes(&self, off: usize, data: &[u8]) {
        assert!(
            off.checked_add(data.len()).is_some_and(|e| e <= self.len),
            "write out of range"
        );
        // SAFETY: in range (checked); the region is past the page's committed offset, so no reader
        // looks at it until the writer publishes it with a Release store of the committed offset;
        // only the single writer (holder of the writer lock) writes there.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.map.as_mut_ptr().add(off), data.len())
        }
    }

    /// A shared slice of published, immutable bytes.
    ///
    /// Callers must only ask for ranges below a committed offset they loaded with Acquire: those
    /// bytes are never written again (pages are append-only and never reused).
    pub fn published(&self, off: usize, len: usize) -> Option<&[u8]> {
        let end = off.checked_add(len)?;
        if end > self.len {
            return None;
        }
        // SAFETY: in range (checked); the bytes were published before the Acquire load the caller
        // did and nobody writes them again (append-only page), so the shared borrow is not aliased
        // by any writer for its lifetime; the mapping lives as long as `self`.
        Some(unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(off), len) })
    }
}

/// Sanitises a stream name into the part of a file name that carries it.
pub fn sanitise(stream: &str) -> String {
    let mut s: String = stream
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+' | '.' | '@') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.starts_with('.') {
        s.replace_range(0..1, "_");
    }
    if s.len() > 96 {
        // Keep names well under NAME_MAX; a hash of the full name keeps them distinct.
        let mut h: u64 = 0xcbf29ce484222325;
        for b in stream.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x100000001b3);
        }
        s.truncate(80);
        s.push_str(&format!("~{h:016x}"));
    }
    s
}

pub fn meta_name(stream: &str) -> String {
    format!("mist-{}-meta", sanitise(stream))
}
pub fn users_name(stream: &str) -> String {
    format!("mist-{}-users", sanitise(stream))
}
pub fn page_name(stream: &str, id: u64) -> String {
    format!("mist-{}-p{}", sanitise(stream), id)
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Whether a process with this pid exists (EPERM counts as alive).
pub fn pid_alive(pid: u32) -> bool {
    if pid == 0 || pid > i32::MAX as u32 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks for existence and permission; it sends nothing.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// This process's id, asked of the kernel once: `getpid` is a system call (glibc no longer
/// caches it), and slot ownership checks run per request. Our processes fork only to exec, so
/// the cached value never outlives the process it names.
pub fn my_pid() -> u32 {
    static PID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    match PID.load(std::sync::atomic::Ordering::Relaxed) {
        0 => {
            let pid = std::process::id();
            PID.store(pid, std::sync::atomic::Ordering::Relaxed);
            pid
        }
        pid => pid,
    }
}
