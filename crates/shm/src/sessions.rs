//! The viewer sessions table: what the outputs report about their viewers, read by the
//! controller to count sessions across processes and requests (INTERFACES §2.1, §3.4, §5.3).
//!
//! One segment (`mist_sessions` in the shm directory) of fixed slots. An output process holds
//! one slot per viewer session it serves (session id, stream, connector, host, token), with the
//! bytes of all its connections in that session and the time of their last activity; an HLS
//! player's playlist and segment requests land in one slot. The slot is kept a few seconds after
//! the session's last connection of this process closed ([`LINGER`]) so the controller, which
//! polls, sees the final counts. The controller merges slots with the same session id (one
//! session served by several processes) and decides when a session ended.
//!
//! Process side: [`conn_open`], [`conn_bytes`], [`conn_close`] for long connections (RTMP, HTTP
//! progressive), [`hit`] for one request, [`tick`] now and then. Controller side: [`rows`].

use crate::seg::{now_ms, pid_alive};
use crate::slots::{Layout, SlotTable, S_PID, S_STATE, USED};
use crate::ShmError;
use std::collections::HashMap;
use std::sync::atomic::Ordering::*;
use std::sync::atomic::{AtomicU32, AtomicUsize};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Slots in the table (sessions served at once by all outputs).
pub const SLOTS: usize = 4096;

static LAYOUT: Layout = Layout {
    name: "mist_sessions",
    magic: u64::from_le_bytes(*b"MISTSESS"),
    version: 1,
    slots: SLOTS,
    slot: 512,
    what: "sessions",
};

// After the state and pid (`crate::slots`):
const S_CONNS: usize = 8; // u32 open connections of this process in the session
const S_KILL: usize = 12; // u32 flags set by the controller: KILL (end it), INVALIDATE
const KILL: u32 = 1;
const INVALIDATE: u32 = 2;
const S_DOWN: usize = 16; // u64 bytes received from the viewer
const S_UP: usize = 24; // u64 bytes sent to the viewer
const S_FIRST: usize = 32; // u64 unix s
const S_LAST: usize = 40; // u64 unix s
const S_LENS: usize = 48; // 5 × u32: sid, stream, connector, host, token
/// (offset, capacity) of the strings, in the order of `S_LENS`.
const STRS: [(usize, usize); 5] = [(72, 64), (136, 128), (264, 32), (296, 64), (360, 128)];

/// How long a process keeps a session's slot after its last connection in it closed.
pub const LINGER: Duration = Duration::from_secs(5);

/// One slot as the controller reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    /// Slot index (with `pid` and `first_unix`, identifies one process's part of a session).
    pub slot: usize,
    /// The process that holds the slot.
    pub pid: u32,
    /// Whether the process is alive (a dead one's row is freed after this read).
    pub alive: bool,
    /// Session id.
    pub sid: String,
    /// The stream watched.
    pub stream: String,
    /// The connector (`HLS`, `RTMP` …).
    pub connector: String,
    /// The viewer's address.
    pub host: String,
    /// The viewer's token (`tkn`), if any.
    pub token: String,
    /// Open connections of the session in this process.
    pub conns: u32,
    /// Bytes sent.
    pub bytes_down: u64,
    /// Bytes received.
    pub bytes_up: u64,
    /// Unix time of the session's first connection in this process.
    pub first_unix: u64,
    /// Unix time of its last activity.
    pub last_unix: u64,
}

/// Identity of a session as an output reports it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionKey {
    /// Session id.
    pub sid: String,
    /// The stream watched.
    pub stream: String,
    /// The connector (`HLS`, `RTMP` …).
    pub connector: String,
    /// The viewer's address.
    pub host: String,
    /// The viewer's token (`tkn`), if any.
    pub token: String,
}

struct Table(SlotTable);

impl Table {
    fn open() -> Result<Table, ShmError> {
        SlotTable::open(&LAYOUT).map(Table)
    }

    fn create_or_open() -> Result<Table, ShmError> {
        SlotTable::create_or_open(&LAYOUT).map(Table)
    }

    fn claim(&self, k: &SessionKey) -> Option<usize> {
        // Scan from where the last claim of this process ended: a slot just freed is not
        // reused at once (the controller tells parts of sessions apart by slot and start).
        static HINT: AtomicUsize = AtomicUsize::new(0);
        if let Some(i) = self.0.claim(&HINT, |b| self.fill(b, k)) {
            return Some(i);
        }
        if self.reclaim() == 0 {
            return None;
        }
        self.0.claim(&HINT, |b| self.fill(b, k))
    }

    fn fill(&self, b: usize, k: &SessionKey) {
        let s = &self.0.seg;
        let now = now_ms() / 1000;
        s.u32(b + S_CONNS).store(0, Relaxed);
        s.u32(b + S_KILL).store(0, Relaxed);
        s.u64(b + S_DOWN).store(0, Relaxed);
        s.u64(b + S_UP).store(0, Relaxed);
        s.u64(b + S_FIRST).store(now, Relaxed);
        s.u64(b + S_LAST).store(now, Relaxed);
        let texts = [&k.sid, &k.stream, &k.connector, &k.host, &k.token];
        self.0
            .write_strs(b, S_LENS, &STRS, texts.map(String::as_str));
    }

    fn release(&self, i: usize) {
        self.0.release(i);
    }

    fn store(&self, i: usize, conns: u32, down: u64, up: u64, active: bool) {
        if !self.0.mine(i) {
            return;
        }
        let b = self.0.slot(i);
        let s = &self.0.seg;
        s.u32(b + S_CONNS).store(conns, Relaxed);
        s.u64(b + S_DOWN).store(down, Relaxed);
        s.u64(b + S_UP).store(up, Relaxed);
        if active {
            s.u64(b + S_LAST).store(now_ms() / 1000, Relaxed);
        }
    }

    fn reclaim(&self) -> usize {
        self.0.reap_dead(|_| {})
    }

    fn flags(&self, i: usize) -> &AtomicU32 {
        self.0.seg.u32(self.0.slot(i) + S_KILL)
    }

    fn read(&self, i: usize) -> Option<SessionRow> {
        self.read_with(i, &mut pid_alive)
    }

    /// [`read`](Self::read) asking `alive` whether the slot's process lives.
    fn read_with(&self, i: usize, alive: &mut impl FnMut(u32) -> bool) -> Option<SessionRow> {
        let b = self.0.slot(i);
        let s = &self.0.seg;
        if s.u32(b + S_STATE).load(Acquire) != USED {
            return None;
        }
        let pid = s.u32(b + S_PID).load(Relaxed);
        let [sid, stream, connector, host, token] = self.0.read_strs(b, S_LENS, &STRS);
        let row = SessionRow {
            slot: i,
            pid,
            alive: alive(pid),
            sid,
            stream,
            connector,
            host,
            token,
            conns: s.u32(b + S_CONNS).load(Relaxed),
            bytes_down: s.u64(b + S_DOWN).load(Relaxed),
            bytes_up: s.u64(b + S_UP).load(Relaxed),
            first_unix: s.u64(b + S_FIRST).load(Relaxed),
            last_unix: s.u64(b + S_LAST).load(Relaxed),
        };
        // Skip slots that changed hands while we read them.
        (s.u32(b + S_STATE).load(Acquire) == USED && s.u32(b + S_PID).load(Relaxed) == pid)
            .then_some(row)
    }
}

/// The table as [`rows`] reads it (once a second in the controller): mapped once and kept,
/// mapped again when the file was replaced (another inode; the kept mapping holds the old
/// inode, so its number is not reused meanwhile), let go when the file is gone.
fn polled_table() -> Option<std::sync::Arc<Table>> {
    use std::os::unix::fs::MetadataExt;
    static KEPT: Mutex<Option<std::sync::Arc<Table>>> = Mutex::new(None);
    let mut kept = KEPT.lock().unwrap_or_else(|p| p.into_inner());
    let path = LAYOUT.path(0);
    let Ok(ino) = std::fs::metadata(&path).map(|m| m.ino()) else {
        *kept = None;
        return None;
    };
    if let Some(t) = kept
        .as_ref()
        .filter(|t| t.0.seg.ino == ino && t.0.seg.path == path)
    {
        return Some(t.clone());
    }
    *kept = Table::open().ok().map(std::sync::Arc::new);
    kept.clone()
}

/// Every used slot (for the controller). Slots of dead processes are returned once more, then
/// freed.
pub fn rows() -> Vec<SessionRow> {
    let Some(t) = polled_table() else {
        return Vec::new();
    };
    // One liveness check per process, not per row (an output serves many sessions).
    let mut checked: Vec<(u32, bool)> = Vec::new();
    let mut alive = |pid: u32| match checked.iter().find(|(p, _)| *p == pid) {
        Some(&(_, a)) => a,
        None => {
            let a = pid_alive(pid);
            checked.push((pid, a));
            a
        }
    };
    let out: Vec<SessionRow> = (0..t.0.high())
        .filter_map(|i| t.read_with(i, &mut alive))
        .collect();
    if out.iter().any(|r| !r.alive) {
        t.reclaim();
    }
    out
}

/// Asks the process serving session `sid` to end it (`stop_sessid`); returns how many slots
/// were marked. The output closes the session's connections at its next [`tick`].
pub fn kill(sid: &str) -> usize {
    let Ok(t) = Table::open() else {
        return 0;
    };
    let mut n = 0;
    for i in 0..t.0.high() {
        if t.read(i).is_some_and(|r| r.sid == sid) {
            t.flags(i).fetch_or(KILL, AcqRel);
            n += 1;
        }
    }
    n
}

/// Asks the processes serving sessions of `stream` to decide them again (`invalidate_sessions`:
/// their next request runs USER_NEW again); returns how many slots were marked.
pub fn invalidate(stream: &str) -> usize {
    let Ok(t) = Table::open() else {
        return 0;
    };
    let mut n = 0;
    for i in 0..t.0.high() {
        if t.read(i).is_some_and(|r| r.stream == stream) {
            t.flags(i).fetch_or(INVALIDATE, AcqRel);
            n += 1;
        }
    }
    n
}

/// What the controller asked of this process's sessions ([`tick`]).
#[derive(Debug, Default, PartialEq)]
pub struct Asked {
    /// Sessions to end: close their connections.
    pub killed: Vec<String>,
    /// Sessions to decide again (each reported once).
    pub invalidated: Vec<String>,
}

/// A process's part of one session.
struct Entry {
    slot: Option<usize>,
    /// Open connections: key → (down, up) so far.
    open: HashMap<u64, (u64, u64)>,
    /// Bytes of the connections that closed.
    closed: (u64, u64),
    last: Instant,
}

#[derive(Default)]
struct Local {
    table: Option<Table>,
    failed: bool,
    by_sid: HashMap<String, (SessionKey, Entry)>,
    conn_sid: HashMap<u64, String>,
    next: u64,
}

fn local() -> &'static Mutex<Local> {
    static L: OnceLock<Mutex<Local>> = OnceLock::new();
    L.get_or_init(Default::default)
}

impl Local {
    fn table(&mut self) -> Option<&Table> {
        if self.table.is_none() && !self.failed {
            match Table::create_or_open() {
                Ok(t) => self.table = Some(t),
                Err(e) => {
                    self.failed = true;
                    eprintln!("viewer sessions are not reported: {e}");
                }
            }
        }
        self.table.as_ref()
    }

    fn entry(&mut self, k: &SessionKey) -> &mut Entry {
        if !self.by_sid.contains_key(&k.sid) {
            let slot = self.table().and_then(|t| t.claim(k));
            self.by_sid.insert(
                k.sid.clone(),
                (
                    k.clone(),
                    Entry {
                        slot,
                        open: HashMap::new(),
                        closed: (0, 0),
                        last: Instant::now(),
                    },
                ),
            );
        }
        &mut self.by_sid.get_mut(&k.sid).expect("inserted above").1
    }

    fn publish(&mut self, sid: &str, active: bool) {
        if let Some((_, e)) = self.by_sid.get_mut(sid) {
            publish(self.table.as_ref(), e, active);
        }
    }
}

/// Writes a process's part of a session (`e`) to its slot.
fn publish(table: Option<&Table>, e: &mut Entry, active: bool) {
    if active {
        e.last = Instant::now();
    }
    let (d, u) = e
        .open
        .values()
        .fold(e.closed, |(d, u), (a, b)| (d + a, u + b));
    if let (Some(i), Some(t)) = (e.slot, table) {
        t.store(i, e.open.len() as u32, d, u, active);
    }
}

fn with<T>(f: impl FnOnce(&mut Local) -> T) -> T {
    f(&mut local().lock().unwrap_or_else(|p| p.into_inner()))
}

/// A connection of session `k` opened; returns its key for [`conn_bytes`]/[`conn_close`].
pub fn conn_open(k: &SessionKey) -> u64 {
    with(|l| {
        l.next += 1;
        let key = l.next;
        l.entry(k).open.insert(key, (0, 0));
        l.conn_sid.insert(key, k.sid.clone());
        l.publish(&k.sid, true);
        key
    })
}

/// The bytes a connection received from (`down`) and sent to (`up`) its viewer so far.
pub fn conn_bytes(key: u64, down: u64, up: u64) {
    with(|l| {
        // Called for every answer on a kept-alive connection: one lookup by session id, no
        // copy of it.
        let Local {
            table,
            by_sid,
            conn_sid,
            ..
        } = l;
        let Some((_, e)) = conn_sid.get(&key).and_then(|sid| by_sid.get_mut(sid)) else {
            return;
        };
        let Some(bytes) = e.open.get_mut(&key) else {
            return;
        };
        let changed = *bytes != (down, up);
        *bytes = (down, up);
        publish(table.as_ref(), e, changed);
    })
}

/// A connection closed (its last [`conn_bytes`] counts).
pub fn conn_close(key: u64) {
    with(|l| {
        let Some(sid) = l.conn_sid.remove(&key) else {
            return;
        };
        if let Some((_, e)) = l.by_sid.get_mut(&sid) {
            if let Some((d, u)) = e.open.remove(&key) {
                e.closed.0 += d;
                e.closed.1 += u;
            }
        }
        l.publish(&sid, true);
    })
}

/// One request of session `k` that received `down` and sent `up` bytes (an HLS segment).
pub fn hit(k: &SessionKey, down: u64, up: u64) {
    with(|l| {
        let e = l.entry(k);
        e.closed.0 += down;
        e.closed.1 += up;
        l.publish(&k.sid, true);
    })
}

/// Frees the slots of sessions idle in this process for [`LINGER`]; returns what the
/// controller asked of its sessions (`stop_sessid`, `invalidate_sessions`).
pub fn tick() -> Asked {
    with(|l| {
        let mut gone = Vec::new();
        let mut asked = Asked::default();
        for (sid, (_, e)) in &l.by_sid {
            if let (Some(i), Some(t)) = (e.slot, l.table.as_ref()) {
                let f = t.flags(i);
                if f.load(Acquire) & INVALIDATE != 0 {
                    f.fetch_and(!INVALIDATE, AcqRel);
                    asked.invalidated.push(sid.clone());
                }
                if f.load(Acquire) & KILL != 0 {
                    asked.killed.push(sid.clone());
                    // The session is over here: its connections are closed by the caller, and
                    // a viewer that comes back starts a new one in a new slot.
                    gone.push(sid.clone());
                    continue;
                }
            }
            if e.open.is_empty() && e.last.elapsed() >= LINGER {
                gone.push(sid.clone());
            }
        }
        for sid in gone {
            if let Some((_, e)) = l.by_sid.remove(&sid) {
                if let (Some(i), Some(t)) = (e.slot, l.table.as_ref()) {
                    t.release(i);
                }
            }
        }
        asked
    })
}

/// The session of an open connection (to close the connections of a killed session).
pub fn conn_session(key: u64) -> Option<String> {
    with(|l| l.conn_sid.get(&key).cloned())
}
