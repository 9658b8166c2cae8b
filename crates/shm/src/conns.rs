//! The owed-CONN_CLOSE table: viewer connections an output admitted and has not yet fired
//! CONN_CLOSE for (INTERFACES §5.3), so that the controller can fire it for the connections of
//! an output process that died (SIGKILL, crash) and every CONN_OPEN still gets its CONN_CLOSE.
//!
//! Segments of fixed slots (`mist_conns`, then `mist_conns.1` … in the shm directory), each slot
//! holding the owner's pid and the CONN_CLOSE payload (stream, peer, connector, URL). Output
//! side: [`register`] when a connection is admitted, [`release`] just before its own CONN_CLOSE
//! runs. Controller side: [`reap`] takes the slots of dead processes (each once: a
//! compare-and-swap claims it).
//!
//! **Size**: a segment has [`SLOTS`] slots (4 MiB); when every slot of the existing segments is
//! taken the next segment is created, up to [`MAX_SEGMENTS`] ([`MAX_CONNS`] connections at
//! once). tmpfs pages are only used once written, and a segment exists only once that many
//! connections were open. Past the last one [`register`] answers `None`: the connection is still
//! served and still gets its CONN_CLOSE from its own process, only not from the controller
//! should that process die (the caller logs it).

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
/// Slots in one segment (admitted viewer connections of all outputs at once, while a CONN_CLOSE
/// handler is configured).
pub const SLOTS: usize = 4096;
/// Segments at most; a connection that finds no free slot in any is not covered if its process
/// dies.
pub const MAX_SEGMENTS: usize = 16;
/// Connections covered at once, all segments together.
pub const MAX_CONNS: usize = SLOTS * MAX_SEGMENTS;
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

/// Segment `n`'s file: `mist_conns`, `mist_conns.1`, …
fn path(n: usize) -> PathBuf {
    // Not `mist-…`: the stale-segment cleanup removes orphaned `mist-` files.
    match n {
        0 => crate::shm_dir().join("mist_conns"),
        n => crate::shm_dir().join(format!("mist_conns.{n}")),
    }
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
    /// Where [`Table::claim`] looks first.
    hint: std::sync::atomic::AtomicUsize,
}

impl Table {
    fn open(n: usize) -> Result<Table, ShmError> {
        let p = path(n);
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
        Ok(Table::of(seg))
    }

    fn of(seg: Seg) -> Table {
        Table {
            seg,
            hint: Default::default(),
        }
    }

    fn create_or_open(n: usize) -> Result<Table, ShmError> {
        if let Ok(t) = Table::open(n) {
            return Ok(t);
        }
        let p = path(n);
        let _ = std::fs::create_dir_all(crate::shm_dir());
        let tmp = crate::tmp_name(&p);
        let seg = Seg::create(&tmp, SIZE)?;
        seg.u32(H_VERSION).store(VERSION, Relaxed);
        seg.u32(H_SLOTS).store(SLOTS as u32, Relaxed);
        seg.u64(H_MAGIC).store(MAGIC, Release);
        let r = std::fs::hard_link(&tmp, &p);
        let _ = std::fs::remove_file(&tmp);
        match r {
            Ok(()) => Ok(Table::of(seg.renamed(&p))),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Table::open(n),
            Err(e) => Err(crate::seg::io_err(&p, e)),
        }
    }

    fn claim(&self, texts: [&str; 4]) -> Option<usize> {
        let from = self.hint.load(Relaxed) % SLOTS;
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
                self.hint.store((i + 1) % SLOTS, Relaxed);
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

/// The segments this process has mapped, in order (a segment is mapped once and kept).
fn tables() -> &'static std::sync::Mutex<Vec<&'static Table>> {
    static T: OnceLock<std::sync::Mutex<Vec<&'static Table>>> = OnceLock::new();
    T.get_or_init(Default::default)
}

/// Segment `n`, mapped (the mapped ones are kept: a process maps each at most once). `create`:
/// make it when it does not exist. `None` when it cannot be had (reported once per process).
fn segment(n: usize, create: bool) -> Option<&'static Table> {
    let mut list = tables().lock().unwrap_or_else(|p| p.into_inner());
    if let Some(t) = list.get(n) {
        return Some(*t);
    }
    // Segments are mapped in order; the ones before `n` first.
    while list.len() <= n {
        let i = list.len();
        let t = if create {
            Table::create_or_open(i)
        } else {
            Table::open(i)
        };
        match t {
            // Leaked on purpose: a mapping lives as long as the process.
            Ok(t) => list.push(Box::leak(Box::new(t))),
            Err(e) => {
                if create {
                    static TOLD: std::sync::atomic::AtomicBool =
                        std::sync::atomic::AtomicBool::new(false);
                    if !TOLD.swap(true, Relaxed) {
                        eprintln!("CONN_CLOSE of a dying process's viewers cannot be owed: {e}");
                    }
                }
                return None;
            }
        }
    }
    list.get(n).copied()
}

/// Records that this process owes CONN_CLOSE (`stream`, `peer`, `connector`, `url`) for an
/// admitted connection; the slot for [`release`]. A new segment is made when the existing ones
/// are full; `None` when all [`MAX_SEGMENTS`] are, or the table is unusable.
pub fn register(stream: &str, peer: &str, connector: &str, url: &str) -> Option<usize> {
    // The segment of this process's last claim first, then the others it has mapped, and only
    // then the next ones (opened if another process made them, else made).
    static LAST: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let texts = [stream, peer, connector, url];
    let mapped = tables().lock().unwrap_or_else(|p| p.into_inner()).len();
    let last = LAST.load(Relaxed);
    let order = std::iter::once(last)
        .filter(|&n| n < mapped)
        .chain((0..mapped).filter(|&n| n != last))
        .chain(mapped..MAX_SEGMENTS);
    for n in order {
        let t = segment(n, true)?;
        if let Some(i) = t.claim(texts) {
            LAST.store(n, Relaxed);
            return Some(n * SLOTS + i);
        }
    }
    None
}

/// This process fires the CONN_CLOSE of `slot` itself: the controller must not.
pub fn release(slot_index: usize) {
    if slot_index >= MAX_CONNS {
        return;
    }
    let Some(t) = segment(slot_index / SLOTS, false) else {
        return;
    };
    let b = slot(slot_index % SLOTS);
    if t.seg.u32(b + S_STATE).load(Acquire) == USED
        && t.seg.u32(b + S_PID).load(Relaxed) == crate::seg::my_pid()
    {
        t.seg.u32(b + S_STATE).store(FREE, Release);
    }
}

/// Slots in use, all segments together (the ones this process can map).
pub fn used() -> usize {
    (0..MAX_SEGMENTS)
        .map_while(|n| segment(n, false))
        .map(|t| {
            (0..SLOTS)
                .filter(|&i| t.seg.u32(slot(i) + S_STATE).load(Relaxed) != FREE)
                .count()
        })
        .sum()
}

/// The owed CONN_CLOSEs of processes that died (controller): each slot is taken (and freed) by
/// exactly one caller.
pub fn reap() -> Vec<OwedClose> {
    let mut out = Vec::new();
    for n in 0..MAX_SEGMENTS {
        let Some(t) = segment(n, false) else {
            break;
        };
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
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owed_closes_of_a_dead_pid_are_reaped_once_and_the_table_grows() {
        crate::tests::setup();
        let mine = register("live", "1.2.3.4", "RTMP", "rtmp://h/live/live").unwrap();
        let gone = register("s", "::1", "HLS", &"u".repeat(2000)).unwrap();
        // Pretend the second one belongs to a dead process.
        let pid_of = |i: usize| {
            segment(i / SLOTS, false)
                .unwrap()
                .seg
                .u32(slot(i % SLOTS) + S_PID)
        };
        pid_of(gone).store(0, Relaxed);
        let r = reap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].stream, "s");
        assert_eq!(r[0].connector, "HLS");
        assert_eq!(r[0].url.len(), 776);
        assert!(reap().is_empty(), "reaped once");
        // Released by its owner: never reaped.
        release(mine);
        pid_of(mine).store(0, Relaxed);
        assert!(reap().is_empty());

        // A full segment: the next one is made, and its slots are reaped and released alike.
        let mut held = Vec::new();
        while held.len() <= SLOTS {
            held.push(register("g", "::1", "HTTP", "http://h/g.ts").expect("a slot"));
        }
        assert_eq!(used(), SLOTS + 1);
        let beyond = *held
            .iter()
            .find(|&&i| i >= SLOTS)
            .expect("a slot in segment 1");
        assert!(path(1).exists());
        pid_of(beyond).store(0, Relaxed);
        let r = reap();
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r[0].stream, "g");
        for i in held.into_iter().filter(|&i| i != beyond) {
            release(i);
        }
        assert_eq!(used(), 0);
        // Freed slots are used again: no third segment.
        let again: Vec<usize> = (0..SLOTS + 1)
            .map(|_| register("h", "::1", "HTTP", "u").expect("a slot"))
            .collect();
        assert!(!path(2).exists());
        for i in again {
            release(i);
        }
    }
}
