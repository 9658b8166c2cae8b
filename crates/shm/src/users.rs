//! The users table: one segment of fixed slots per stream, claimed with atomics.

use crate::layout::*;
use crate::seg::{now_ms, pid_alive, Seg};
use crate::{ReaderInfo, ShmError, UserSlot};
use std::path::Path;
use std::sync::atomic::Ordering::*;
use std::sync::Arc;

/// A slot of this process in a stream's users table, with no reader attached: how a viewer that
/// shares another's reader (one reader per stream, many viewers) is counted, with its own address
/// and byte counts. Every [`StreamReader`](crate::StreamReader) holds one too. Freed on drop (and
/// reclaimed by others once this process is gone).
pub struct StreamUser {
    users: Arc<Users>,
    slot: usize,
}

impl StreamUser {
    /// Claims a slot in the users table of an existing stream. Fails with `NoStream` if the
    /// stream does not exist and `UsersFull` if every slot is taken by a live process.
    pub fn open(stream: &str, info: &ReaderInfo) -> Result<StreamUser, ShmError> {
        let dir = crate::shm_dir();
        let meta = crate::open_meta(&dir, stream)?;
        let users = crate::open_users(&dir, stream, true)?;
        let slot = users
            .claim(&info.connector, &info.host)
            .ok_or_else(|| ShmError::UsersFull(stream.to_owned()))?;
        let max = meta.seg.u32(M_MAX_USERS).load(Relaxed);
        if max > 0 && users.used_count() > max as usize {
            // Slots of dead processes do not count: free them and look again.
            users.reclaim();
            if users.used_count() > max as usize {
                users.release(slot);
                log_viewer_limit(stream, max);
                return Err(ShmError::ViewerLimit(stream.to_owned(), max));
            }
        }
        Ok(StreamUser { users, slot })
    }

    /// Sets the playback position shown for this user (ms).
    pub fn set_position(&mut self, ms: i64) {
        self.users.set_position(self.slot, ms)
    }

    /// Sets this user's cumulative byte counts and marks it active now.
    pub fn report(&mut self, bytes_down: u64, bytes_up: u64) {
        self.users.report(self.slot, bytes_down, bytes_up)
    }
}

impl Drop for StreamUser {
    fn drop(&mut self) {
        self.users.release(self.slot);
    }
}

/// Logs a refused viewer, at most every 10 s per process.
fn log_viewer_limit(stream: &str, max: u32) {
    use std::sync::atomic::AtomicU64;
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = now_ms();
    let last = LAST.load(Relaxed);
    if now.saturating_sub(last) >= 10_000
        && LAST.compare_exchange(last, now, Relaxed, Relaxed).is_ok()
    {
        eprintln!(
            "WARN mist-shm: stream {stream}: {max} viewers already (stream option max_viewers); refusing another"
        );
    }
}

pub(crate) struct Users {
    pub seg: Seg,
}

fn slot(i: usize) -> usize {
    U_BASE + i * SLOT_SIZE
}

impl Users {
    pub fn open(path: &Path) -> Result<Users, ShmError> {
        let seg = Seg::open(path, USERS_SIZE, true)?;
        if seg.u64(U_MAGIC).load(Acquire) != MAGIC_USERS
            || seg.u32(U_VERSION).load(Relaxed) != VERSION
            || seg.u32(U_SLOTS).load(Relaxed) as usize != USER_SLOTS
        {
            return Err(ShmError::Corrupt(
                path.display().to_string(),
                "bad users header".into(),
            ));
        }
        Ok(Users { seg })
    }

    /// Creates the users segment if missing (atomically: built under a temp name, then linked).
    pub fn create_or_open(path: &Path) -> Result<Users, ShmError> {
        if let Ok(u) = Users::open(path) {
            return Ok(u);
        }
        let tmp = crate::tmp_name(path);
        let seg = Seg::create(&tmp, USERS_SIZE)?;
        seg.u32(U_VERSION).store(VERSION, Relaxed);
        seg.u32(U_SLOTS).store(USER_SLOTS as u32, Relaxed);
        crate::slots::mark_new(&seg, U_HIGH);
        seg.u64(U_MAGIC).store(MAGIC_USERS, Release);
        let r = std::fs::hard_link(&tmp, path);
        let _ = std::fs::remove_file(&tmp);
        match r {
            Ok(()) => Ok(Users {
                seg: seg.renamed(path),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Users::open(path),
            Err(e) => Err(crate::seg::io_err(path, e)),
        }
    }

    /// Claims a free slot (reclaiming dead readers' slots if needed).
    pub fn claim(&self, connector: &str, host: &str) -> Option<usize> {
        for pass in 0..2 {
            for i in 0..USER_SLOTS {
                let st = self.seg.u32(slot(i) + S_STATE);
                if st.load(Relaxed) != SLOT_FREE {
                    continue;
                }
                if st
                    .compare_exchange(SLOT_FREE, SLOT_CLAIMING, Acquire, Relaxed)
                    .is_ok()
                {
                    crate::slots::mark_claimed(&self.seg, U_HIGH, i);
                    self.fill(i, connector, host);
                    st.store(SLOT_USED, Release);
                    return Some(i);
                }
            }
            if pass == 0 && self.reclaim() == 0 {
                return None;
            }
        }
        None
    }

    fn fill(&self, i: usize, connector: &str, host: &str) {
        let b = slot(i);
        let s = &self.seg;
        let now = now_ms() / 1000;
        s.u32(b + S_PID).store(crate::seg::my_pid(), Relaxed);
        s.i64(b + S_POS).store(0, Relaxed);
        s.u64(b + S_DOWN).store(0, Relaxed);
        s.u64(b + S_UP).store(0, Relaxed);
        s.u64(b + S_CONNECTED).store(now, Relaxed);
        s.u64(b + S_ACTIVE).store(now, Relaxed);
        let c = trunc(connector, S_CONN_MAX);
        let h = trunc(host, S_HOST_MAX);
        s.write_words(b + S_CONN, c);
        s.write_words(b + S_HOST, h);
        s.u32(b + S_CONN_LEN).store(c.len() as u32, Relaxed);
        s.u32(b + S_HOST_LEN).store(h.len() as u32, Relaxed);
    }

    /// Slots a scan reads: every used one is below.
    fn high(&self) -> usize {
        crate::slots::high_mark(&self.seg, U_HIGH, USER_SLOTS)
    }

    pub fn release(&self, i: usize) {
        let st = self.seg.u32(slot(i) + S_STATE);
        // Only free it if it is still ours (it might have been reclaimed and re-claimed).
        if st.load(Acquire) == SLOT_USED
            && self.seg.u32(slot(i) + S_PID).load(Relaxed) == crate::seg::my_pid()
        {
            st.store(SLOT_FREE, Release);
        }
    }

    pub fn set_position(&self, i: usize, ms: i64) {
        self.seg.i64(slot(i) + S_POS).store(ms, Relaxed);
    }

    pub fn report(&self, i: usize, down: u64, up: u64) {
        let b = slot(i);
        self.seg.u64(b + S_DOWN).store(down, Relaxed);
        self.seg.u64(b + S_UP).store(up, Relaxed);
        self.seg.u64(b + S_ACTIVE).store(now_ms() / 1000, Relaxed);
    }

    /// Frees slots of processes that no longer exist; returns how many.
    pub fn reclaim(&self) -> usize {
        let mut n = 0;
        for i in 0..self.high() {
            let b = slot(i);
            let st = self.seg.u32(b + S_STATE);
            if st.load(Acquire) != SLOT_USED {
                continue;
            }
            let pid = self.seg.u32(b + S_PID).load(Relaxed);
            if !pid_alive(pid)
                && st
                    .compare_exchange(SLOT_USED, SLOT_FREE, AcqRel, Relaxed)
                    .is_ok()
            {
                n += 1;
            }
        }
        n
    }

    pub fn list(&self) -> Vec<UserSlot> {
        let mut out = Vec::new();
        for i in 0..self.high() {
            let b = slot(i);
            let s = &self.seg;
            if s.u32(b + S_STATE).load(Acquire) != SLOT_USED {
                continue;
            }
            let pid = s.u32(b + S_PID).load(Relaxed);
            let cl = (s.u32(b + S_CONN_LEN).load(Relaxed) as usize).min(S_CONN_MAX);
            let hl = (s.u32(b + S_HOST_LEN).load(Relaxed) as usize).min(S_HOST_MAX);
            let u = UserSlot {
                pid,
                connector: String::from_utf8_lossy(&s.read_words(b + S_CONN, cl)).into_owned(),
                host: String::from_utf8_lossy(&s.read_words(b + S_HOST, hl)).into_owned(),
                position_ms: s.i64(b + S_POS).load(Relaxed),
                bytes_down: s.u64(b + S_DOWN).load(Relaxed),
                bytes_up: s.u64(b + S_UP).load(Relaxed),
                connected_unix: s.u64(b + S_CONNECTED).load(Relaxed),
                last_active_unix: s.u64(b + S_ACTIVE).load(Relaxed),
            };
            // Skip slots that changed hands while we read them.
            if s.u32(b + S_STATE).load(Acquire) == SLOT_USED
                && s.u32(b + S_PID).load(Relaxed) == pid
            {
                out.push(u);
            }
        }
        out
    }

    /// Slots in use (or being claimed), whether or not their process lives.
    pub fn used_count(&self) -> usize {
        (0..self.high())
            .filter(|&i| self.seg.u32(slot(i) + S_STATE).load(Acquire) != SLOT_FREE)
            .count()
    }

    /// Slots in use by living processes.
    pub fn live_count(&self) -> usize {
        (0..self.high())
            .filter(|&i| {
                self.seg.u32(slot(i) + S_STATE).load(Acquire) == SLOT_USED
                    && pid_alive(self.seg.u32(slot(i) + S_PID).load(Relaxed))
            })
            .count()
    }
}

fn trunc(s: &str, max: usize) -> &[u8] {
    let mut n = s.len().min(max);
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    &s.as_bytes()[..n]
}
