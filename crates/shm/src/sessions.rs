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

use crate::seg::{now_ms, pid_alive, Seg};
use crate::ShmError;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering::*;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

const MAGIC: u64 = u64::from_le_bytes(*b"MISTSESS");
const VERSION: u32 = 1;
const H_MAGIC: usize = 0;
const H_VERSION: usize = 8;
const H_SLOTS: usize = 12;
const BASE: usize = 64;
/// Slots in the table (sessions served at once by all outputs).
pub const SLOTS: usize = 4096;
const SLOT: usize = 512;
const SIZE: usize = BASE + SLOTS * SLOT;

const S_STATE: usize = 0; // u32 0 free, 1 being claimed, 2 in use
const S_PID: usize = 4; // u32
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

const FREE: u32 = 0;
const CLAIMING: u32 = 1;
const USED: u32 = 2;

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

struct Table {
    seg: Seg,
}

fn path() -> PathBuf {
    // Not `mist-…`: the stale-segment cleanup removes orphaned `mist-` files.
    crate::shm_dir().join("mist_sessions")
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
                "bad sessions header".into(),
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

    fn claim(&self, k: &SessionKey) -> Option<usize> {
        // Scan from where the last claim of this process ended: a slot just freed is not
        // reused at once (the controller tells parts of sessions apart by slot and start).
        static HINT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let from = HINT.load(Relaxed);
        for pass in 0..2 {
            for i in (from..SLOTS).chain(0..from) {
                let st = self.seg.u32(slot(i) + S_STATE);
                if st.load(Relaxed) != FREE {
                    continue;
                }
                if st
                    .compare_exchange(FREE, CLAIMING, Acquire, Relaxed)
                    .is_ok()
                {
                    self.fill(i, k);
                    st.store(USED, Release);
                    HINT.store((i + 1) % SLOTS, Relaxed);
                    return Some(i);
                }
            }
            if pass == 0 && self.reclaim() == 0 {
                return None;
            }
        }
        None
    }

    fn fill(&self, i: usize, k: &SessionKey) {
        let b = slot(i);
        let s = &self.seg;
        let now = now_ms() / 1000;
        s.u32(b + S_PID).store(crate::seg::my_pid(), Relaxed);
        s.u32(b + S_CONNS).store(0, Relaxed);
        s.u32(b + S_KILL).store(0, Relaxed);
        s.u64(b + S_DOWN).store(0, Relaxed);
        s.u64(b + S_UP).store(0, Relaxed);
        s.u64(b + S_FIRST).store(now, Relaxed);
        s.u64(b + S_LAST).store(now, Relaxed);
        for (n, (text, (off, cap))) in [&k.sid, &k.stream, &k.connector, &k.host, &k.token]
            .into_iter()
            .zip(STRS)
            .enumerate()
        {
            let t = trunc(text, cap);
            s.write_words(b + off, t);
            s.u32(b + S_LENS + 4 * n).store(t.len() as u32, Relaxed);
        }
    }

    fn mine(&self, i: usize) -> bool {
        self.seg.u32(slot(i) + S_STATE).load(Acquire) == USED
            && self.seg.u32(slot(i) + S_PID).load(Relaxed) == crate::seg::my_pid()
    }

    fn release(&self, i: usize) {
        if self.mine(i) {
            self.seg.u32(slot(i) + S_STATE).store(FREE, Release);
        }
    }

    fn store(&self, i: usize, conns: u32, down: u64, up: u64, active: bool) {
        if !self.mine(i) {
            return;
        }
        let b = slot(i);
        self.seg.u32(b + S_CONNS).store(conns, Relaxed);
        self.seg.u64(b + S_DOWN).store(down, Relaxed);
        self.seg.u64(b + S_UP).store(up, Relaxed);
        if active {
            self.seg.u64(b + S_LAST).store(now_ms() / 1000, Relaxed);
        }
    }

    fn reclaim(&self) -> usize {
        let mut n = 0;
        for i in 0..SLOTS {
            let b = slot(i);
            let st = self.seg.u32(b + S_STATE);
            if st.load(Acquire) != USED {
                continue;
            }
            if !pid_alive(self.seg.u32(b + S_PID).load(Relaxed))
                && st.compare_exchange(USED, FREE, AcqRel, Relaxed).is_ok()
            {
                n += 1;
            }
        }
        n
    }

    fn read(&self, i: usize) -> Option<SessionRow> {
        let b = slot(i);
        let s = &self.seg;
        if s.u32(b + S_STATE).load(Acquire) != USED {
            return None;
        }
        let pid = s.u32(b + S_PID).load(Relaxed);
        let mut texts = Vec::with_capacity(5);
        for (n, (off, cap)) in STRS.into_iter().enumerate() {
            let l = (s.u32(b + S_LENS + 4 * n).load(Relaxed) as usize).min(cap);
            texts.push(String::from_utf8_lossy(&s.read_words(b + off, l)).into_owned());
        }
        let [sid, stream, connector, host, token]: [String; 5] = texts.try_into().ok()?;
        let row = SessionRow {
            slot: i,
            pid,
            alive: pid_alive(pid),
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

/// Every used slot (for the controller). Slots of dead processes are returned once more, then
/// freed.
pub fn rows() -> Vec<SessionRow> {
    let Ok(t) = Table::open() else {
        return Vec::new();
    };
    let out: Vec<SessionRow> = (0..SLOTS).filter_map(|i| t.read(i)).collect();
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
    for i in 0..SLOTS {
        if t.read(i).is_some_and(|r| r.sid == sid) {
            t.seg.u32(slot(i) + S_KILL).fetch_or(KILL, AcqRel);
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
    for i in 0..SLOTS {
        if t.read(i).is_some_and(|r| r.stream == stream) {
            t.seg.u32(slot(i) + S_KILL).fetch_or(INVALIDATE, AcqRel);
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
        let Some((_, e)) = self.by_sid.get_mut(sid) else {
            return;
        };
        if active {
            e.last = Instant::now();
        }
        let (d, u) = e
            .open
            .values()
            .fold(e.closed, |(d, u), (a, b)| (d + a, u + b));
        let (slot, conns) = (e.slot, e.open.len() as u32);
        if let (Some(i), Some(t)) = (slot, self.table.as_ref()) {
            t.store(i, conns, d, u, active);
        }
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
        let Some(sid) = l.conn_sid.get(&key).cloned() else {
            return;
        };
        let Some((_, e)) = l.by_sid.get_mut(&sid) else {
            return;
        };
        let changed = e.open.get(&key) != Some(&(down, up));
        e.open.insert(key, (down, up));
        l.publish(&sid, changed);
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
                let f = t.seg.u32(slot(i) + S_KILL);
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
