//! The owed-CONN_CLOSE table: viewer connections an output admitted and has not yet fired
//! CONN_CLOSE for (INTERFACES §5.3), so that the controller can fire it for the connections of
//! an output process that died (SIGKILL, crash) and every CONN_OPEN still gets its CONN_CLOSE.
//!
//! One segment (`mist_conns` in the shm directory) of fixed slots, each holding the owner's pid
//! and the CONN_CLOSE payload (stream, peer, connector, URL). Output side: [`register`] when a
//! connection is admitted, [`release`] just before its own CONN_CLOSE runs. Controller side:
//! [`reap`] takes the slots of dead processes (each once: a compare-and-swap claims it).

use crate::slots::{Layout, SlotTable, S_PID};
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::*;
use std::sync::OnceLock;

/// Slots in the table (admitted viewer connections of all outputs at once, while a CONN_CLOSE
/// handler is configured). A connection that finds no free slot is not covered if its process
/// dies.
pub const SLOTS: usize = 4096;

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

/// This process's table (opened once; `None` when it cannot be, reported once).
fn table() -> Option<&'static SlotTable> {
    static T: OnceLock<Option<SlotTable>> = OnceLock::new();
    T.get_or_init(|| match SlotTable::create_or_open(&LAYOUT) {
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
    static HINT: AtomicUsize = AtomicUsize::new(0);
    let t = table()?;
    t.claim(&HINT, |b| {
        t.write_strs(b, S_LENS, &STRS, [stream, peer, connector, url])
    })
}

/// This process fires the CONN_CLOSE of `slot` itself: the controller must not.
pub fn release(slot_index: usize) {
    if let Some(t) = table() {
        t.release(slot_index);
    }
}

/// The owed CONN_CLOSEs of processes that died (controller): each slot is taken (and freed) by
/// exactly one caller.
pub fn reap() -> Vec<OwedClose> {
    let Ok(t) = SlotTable::open(&LAYOUT) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    t.reap_dead(|i| out.push(read(&t, i)));
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
        t.seg.u32(t.slot(gone) + S_PID).store(0, Relaxed);
        let r = reap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].stream, "s");
        assert_eq!(r[0].connector, "HLS");
        assert_eq!(r[0].url.len(), 776);
        assert!(reap().is_empty(), "reaped once");
        // Released by its owner: never reaped.
        release(mine);
        t.seg.u32(t.slot(mine) + S_PID).store(0, Relaxed);
        assert!(reap().is_empty());
    }
}
