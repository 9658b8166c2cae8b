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

use crate::slots::{Layout, SlotTable, FREE, S_PID, S_STATE};
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::*;
use std::sync::{Mutex, OnceLock};

/// Slots in one segment (admitted viewer connections of all outputs at once, while a CONN_CLOSE
/// handler is configured).
pub const SLOTS: usize = 4096;
/// Segments at most; a connection that finds no free slot in any is not covered if its process
/// dies.
pub const MAX_SEGMENTS: usize = 16;
/// Connections covered at once, all segments together.
pub const MAX_CONNS: usize = SLOTS * MAX_SEGMENTS;

static LAYOUT: Layout = Layout {
    name: "mist_conns",
    magic: u64::from_le_bytes(*b"MISTCONN"),
    version: 1,
    slots: SLOTS,
    slot: 1024,
    what: "connections",
};

// After the state and pid (`crate::slots`):
const S_LENS: usize = 8; // 4 × u32: stream, peer, connector, url
/// (offset, capacity) of the strings, in the order of `S_LENS`.
const STRS: [(usize, usize); 4] = [(24, 128), (152, 64), (216, 32), (248, 776)];

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

/// One mapped segment and where this process's next claim in it starts.
struct Table {
    t: SlotTable,
    hint: AtomicUsize,
}

fn read(t: &SlotTable, i: usize) -> OwedClose {
    let b = t.slot(i);
    let [stream, peer, connector, url] = t.read_strs(b, S_LENS, &STRS);
    OwedClose {
        pid: t.seg.u32(b + S_PID).load(Relaxed),
        stream,
        peer,
        connector,
        url,
    }
}

/// The segments this process has mapped, in order (a segment is mapped once and kept).
fn tables() -> &'static Mutex<Vec<&'static Table>> {
    static T: OnceLock<Mutex<Vec<&'static Table>>> = OnceLock::new();
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
            SlotTable::create_or_open_segment(&LAYOUT, i)
        } else {
            SlotTable::open_segment(&LAYOUT, i)
        };
        match t {
            // Leaked on purpose: a mapping lives as long as the process.
            Ok(t) => list.push(Box::leak(Box::new(Table {
                t,
                hint: AtomicUsize::new(0),
            }))),
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
    static LAST: AtomicUsize = AtomicUsize::new(0);
    let texts = [stream, peer, connector, url];
    let mapped = tables().lock().unwrap_or_else(|p| p.into_inner()).len();
    let last = LAST.load(Relaxed);
    let order = std::iter::once(last)
        .filter(|&n| n < mapped)
        .chain((0..mapped).filter(|&n| n != last))
        .chain(mapped..MAX_SEGMENTS);
    for n in order {
        let seg = segment(n, true)?;
        let t = &seg.t;
        if let Some(i) = t.claim(&seg.hint, |b| t.write_strs(b, S_LENS, &STRS, texts)) {
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
    if let Some(seg) = segment(slot_index / SLOTS, false) {
        seg.t.release(slot_index % SLOTS);
    }
}

/// Slots in use, all segments together (the ones this process can map).
pub fn used() -> usize {
    (0..MAX_SEGMENTS)
        .map_while(|n| segment(n, false))
        .map(|seg| {
            (0..seg.t.high())
                .filter(|&i| seg.t.seg.u32(seg.t.slot(i) + S_STATE).load(Relaxed) != FREE)
                .count()
        })
        .sum()
}

/// The owed CONN_CLOSEs of processes that died (controller): each slot is taken (and freed) by
/// exactly one caller.
pub fn reap() -> Vec<OwedClose> {
    let mut out = Vec::new();
    for n in 0..MAX_SEGMENTS {
        let Some(seg) = segment(n, false) else {
            break;
        };
        seg.t.reap_dead(|i| out.push(read(&seg.t, i)));
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
            let t = &segment(i / SLOTS, false).unwrap().t;
            t.seg.u32(t.slot(i % SLOTS) + S_PID)
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
        assert!(LAYOUT.path(1).exists());
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
        assert!(!LAYOUT.path(2).exists());
        for i in again {
            release(i);
        }
    }
}
