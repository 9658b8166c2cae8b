//! The owed-CONN_CLOSE table: viewer connections an output admitted and has not yet fired
//! CONN_CLOSE for (INTERFACES §5.3), so that the controller can fire it for the connections of
//! an output process that died (SIGKILL, crash) and every CONN_OPEN still gets its CONN_CLOSE.
//!
//! One segment (`mist_conns` in the shm directory) of fixed slots, each holding the owner's pid
//! and the CONN_CLOSE payload (stream, peer, connector, URL). Output side: [`register`] when a
//! connection is admitted, [`release`] just before its own CONN_CLOSE runs. Controller side:
//! [`reap`] takes the slots of dead processes (each once: a compare-and-swap claims it).

use crate::seg::{pid_alive, Seg};
use crate::ShmError;
use std::path::PathBuf;
use std::sync::atomic::Ordering::*;
use std::sync::OnceLock;

const MAGIC: u64 = u64::from_le_bytes(*b"MISTCONN");
const VERSION: u32 = 1;
const H_MAGIC: usize = 0;
const H_VERSION: usize = 8;
const H_SLOTS: usize = 12;
const BASE: usize = 64;
/// Slots in the table (admitted viewer connections of all outputs at once, while a CONN_CLOSE
/// handler is configured). A connection that finds no free slot is not covered if its process
/// dies.
pub const SLOTS: usize = 4096;
const SLOT: usize = 1024;
const SIZE: usize = BASE + SLOTS * SLOT;

const S_STATE: usize = 0; // u32 FREE, CLAIMING, USED
const S_PID: usize = 4; // u32
const S_LENS: usize = 8; // 4 × u32: stream, peer, connector, url
/// (offset, capacity) of the strings, in the order of `S_LENS`.
const STRS: [(usize, usize); 4] = [(24, 128), (152, 64), (216, 32), (248, 776)];

const FREE: u32 = 0;
const CLAIMING: u32 = 1;
const USED: u32 = 2;

/// The CONN_CLOSE payload of one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwedClose {
    /// The process that admitted the connection.
    pub pid: u32,
    /// The stream it played.
    pub stream: String,
    /// The viewer's address.
    pub peer: String,
    /// The connector (`RTMP`, `HLS` …).
    pub connector: String,
    /// The URL of its CONN_OPEN.
    pub url: String,
}

fn path() -> PathBuf {
    // Not `mist-…`: the stale-segment cleanup removes orphaned `mist-` files.
    crate::shm_dir().join("mist_conns")
}

fn slot(i: usize) -> usize {
    BASE + i * SLOT
}

fn trunc(s: &str, max: usize) -> &[u8] {
    let mut n = s.len().min(max);
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    &s.as_bytes()[..n]
}

struct Table {
    seg: Seg,
}

impl Table {
    fn open() -> Result<Table, ShmError> {
        let p = path();
        let seg = Seg::open(&p, SIZE, true)?;
        if seg.u64(H_MAGIC).load(Acquire) != MAGIC
            || seg.u32(H_VERSION).load(Relaxed) != VERSION
            || seg.u32(H_SLOTS).load(Relaxed) as usize != SLOTS
        {
            return Err(ShmError::Corrupt(
                p.display().to_string(),
                "bad connections header".into(),
            ));
        }
        Ok(Table { seg })
    }

    fn create_or_open() -> Result<Table, ShmError> {
        if let Ok(t) = Table::open() {
            return Ok(t);
        }
        let p = path();
        let _ = std::fs::create_dir_all(crate::shm_dir());
        let tmp = crate::tmp_name(&p);
        let seg = Seg::create(&tmp, SIZE)?;
        seg.u32(H_VERSION).store(VERSION, Relaxed);
        seg.u32(H_SLOTS).store(SLOTS as u32, Relaxed);
        seg.u64(H_MAGIC).store(MAGIC, Release);
        let r = std::fs::hard_link(&tmp, &p);
        let _ = std::fs::remove_file(&tmp);
        match r {
            Ok(()) => Ok(Table {
                seg: seg.renamed(&p),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Table::open(),
            Err(e) => Err(crate::seg::io_err(&p, e)),
        }
    }

    fn claim(&self, texts: [&str; 4]) -> Option<usize> {
        static HINT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let from = HINT.load(Relaxed);
        for i in (from..SLOTS).chain(0..from) {
            let st = self.seg.u32(slot(i) + S_STATE);
            if st.load(Relaxed) != FREE {
                continue;
            }
            if st
                .compare_exchange(FREE, CLAIMING, Acquire, Relaxed)
                .is_ok()
            {
                let b = slot(i);
                self.seg.u32(b + S_PID).store(crate::seg::my_pid(), Relaxed);
                for (n, (text, (off, cap))) in texts.into_iter().zip(STRS).enumerate() {
                    let t = trunc(text, cap);
                    self.seg.write_words(b + off, t);
                    self.seg
                        .u32(b + S_LENS + 4 * n)
                        .store(t.len() as u32, Relaxed);
                }
                st.store(USED, Release);
                HINT.store((i + 1) % SLOTS, Relaxed);
                return Some(i);
            }
        }
        None
    }

    fn read(&self, i: usize) -> OwedClose {
        let b = slot(i);
        let s = &self.seg;
        let mut texts = STRS.into_iter().enumerate().map(|(n, (off, cap))| {
            let l = (s.u32(b + S_LENS + 4 * n).load(Relaxed) as usize).min(cap);
            String::from_utf8_lossy(&s.read_words(b + off, l)).into_owned()
        });
        let mut next = || texts.next().unwrap_or_default();
        OwedClose {
            pid: s.u32(b + S_PID).load(Relaxed),
            stream: next(),
            peer: next(),
            connector: next(),
            url: next(),
        }
    }
}

/// This process's table (opened once; `None` when it cannot be, reported once).
fn table() -> Option<&'static Table> {
    static T: OnceLock<Option<Table>> = OnceLock::new();
    T.get_or_init(|| match Table::create_or_open() {
        Ok(t) => Some(t),
        Err(e) => {
            eprintln!("CONN_CLOSE of a dying process's viewers cannot be owed: {e}");
            None
        }
    })
    .as_ref()
}

/// Records that this process owes CONN_CLOSE (`stream`, `peer`, `connector`, `url`) for an
/// admitted connection; the slot for [`release`]. `None` when the table is full or unusable.
pub fn register(stream: &str, peer: &str, connector: &str, url: &str) -> Option<usize> {
    table()?.claim([stream, peer, connector, url])
}

/// This process fires the CONN_CLOSE of `slot` itself: the controller must not.
pub fn release(slot_index: usize) {
    let Some(t) = table() else { return };
    if slot_index >= SLOTS {
        return;
    }
    let b = slot(slot_index);
    if t.seg.u32(b + S_STATE).load(Acquire) == USED
        && t.seg.u32(b + S_PID).load(Relaxed) == crate::seg::my_pid()
    {
        t.seg.u32(b + S_STATE).store(FREE, Release);
    }
}

/// The owed CONN_CLOSEs of processes that died (controller): each slot is taken (and freed) by
/// exactly one caller.
pub fn reap() -> Vec<OwedClose> {
    let Ok(t) = Table::open() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for i in 0..SLOTS {
        let b = slot(i);
        let st = t.seg.u32(b + S_STATE);
        if st.load(Acquire) != USED || pid_alive(t.seg.u32(b + S_PID).load(Relaxed)) {
            continue;
        }
        if st.compare_exchange(USED, CLAIMING, AcqRel, Relaxed).is_ok() {
            out.push(t.read(i));
            st.store(FREE, Release);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owed_closes_of_a_dead_pid_are_reaped_once() {
        crate::tests::setup();
        let mine = register("live", "1.2.3.4", "RTMP", "rtmp://h/live/live").unwrap();
        let gone = register("s", "::1", "HLS", &"u".repeat(2000)).unwrap();
        // Pretend the second one belongs to a dead process.
        let t = table().unwrap();
        t.seg.u32(slot(gone) + S_PID).store(0, Relaxed);
        let r = reap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].stream, "s");
        assert_eq!(r[0].connector, "HLS");
        assert_eq!(r[0].url.len(), 776);
        assert!(reap().is_empty(), "reaped once");
        // Released by its owner: never reaped.
        release(mine);
        t.seg.u32(slot(mine) + S_PID).store(0, Relaxed);
        assert!(reap().is_empty());
    }
}
