//! Viewer sessions across processes (INTERFACES §3.4, §5.3): the controller reads what the
//! outputs report in the shm sessions table (`mist_shm::sessions`), merges the rows of one
//! session id (an HLS player's many requests, or one session served by several processes),
//! keeps the byte counts of rows that went away, and ends a session once nothing of it was
//! active for [`timeout`]: USER_END with its 12 lines, then it is forgotten. A session whose
//! process died ends the same way (its rows' last counts are kept), and the CONN_CLOSE its
//! connections were owed is fired here (`mist_bins::conn_close`).
//!
//! Byte directions follow MistServer: `up` = sent to the viewer, `down` = received from it.

use super::shm_call;
use mist_core::triggers::{viewers, Engine};
use mist_shm::sessions::{self as shm_sessions, SessionRow};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// How long a session lives without activity: `MIST_SESSION_TIMEOUT` seconds, default 20
/// (longer than an HLS player's playlist refresh).
pub fn timeout() -> Duration {
    std::env::var("MIST_SESSION_TIMEOUT")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(Duration::from_secs(20), Duration::from_secs)
}

const POLL: Duration = Duration::from_secs(1);

/// Connectors whose users-table readers are one per viewer connection and that report no
/// sessions themselves: the controller makes their sessions from those rows. None today:
/// MistOutRTMP reports its viewers in the sessions table (so that a stopped session's
/// connections are closed) like MistOutHTTP. (Shared readers, e.g. `RTMP-mux` or MistOutHTTP's
/// feeds, are not viewers.)
const USERS_AS_SESSIONS: &[&str] = &[];

/// What the users tables held at one poll: per stream, whether its writer is alive, and its
/// readers.
type UsersRead = Vec<(String, bool, Vec<mist_shm::UserSlot>)>;

/// Reads every stream's users table (through the controller's kept mappings).
fn read_users(shm: &super::ShmView) -> UsersRead {
    let streams: Vec<(String, bool)> = shm
        .with_streams(|l| l.iter().map(|s| (s.name.clone(), s.writer_alive)).collect())
        .unwrap_or_default();
    streams
        .into_iter()
        .map(|(name, alive)| {
            let users = shm.users(&name);
            (name, alive, users)
        })
        .collect()
}

/// Session rows made from the users tables of [`USERS_AS_SESSIONS`] connectors. The session id
/// is the one the output gave USER_NEW (`viewers::session_id`, no token).
fn users_rows(read: &UsersRead) -> Vec<SessionRow> {
    let mut out = Vec::new();
    for (stream, _, users) in read {
        for u in users {
            if !USERS_AS_SESSIONS.contains(&u.connector.as_str()) {
                continue;
            }
            // A row has no index: a hash of what tells two viewers of one process apart.
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in u.host.bytes().chain(u.connected_unix.to_le_bytes()) {
                h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
            out.push(SessionRow {
                slot: h as usize | 1 << (usize::BITS - 1),
                pid: u.pid,
                alive: true,
                sid: mist_core::triggers::viewers::session_id(stream, &u.host, &u.connector, ""),
                stream: stream.clone(),
                connector: u.connector.clone(),
                host: u.host.clone(),
                token: String::new(),
                conns: 1,
                // The users table counts from the output's side: its `down` went to the viewer.
                bytes_down: u.bytes_up,
                bytes_up: u.bytes_down,
                first_unix: u.connected_unix,
                last_unix: u.last_active_unix,
            });
        }
    }
    out
}

/// How far back `clients` (`time`) and `totals` (`start`) look, in seconds (MistServer's
/// `STAT_CUTOFF`).
pub const HISTORY: u64 = 600;

/// A session's numbers at one poll.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Snap {
    /// Unix time of the poll.
    pub t: u64,
    pub down: u64,
    pub up: u64,
    pub downbps: u64,
    pub upbps: u64,
}

/// What else `totals` counts, per second: streams with a live input, and readers of processes
/// that report no sessions (stream, connector).
#[derive(Debug, Clone, Default)]
pub struct Second {
    pub t: u64,
    pub inputs: Vec<String>,
    pub outputs: Vec<(String, String)>,
}

/// One process's part of a session (one row of the table).
#[derive(Debug, Clone)]
struct Part {
    host: String,
    connector: String,
    stream: String,
    down: u64,
    up: u64,
    first: u64,
    last: u64,
    conns: u32,
    alive: bool,
    /// Seen in the last read.
    present: bool,
}

#[derive(Debug, Clone)]
pub struct Session {
    pub sid: String,
    pub token: String,
    parts: HashMap<(u32, usize, u64), Part>,
    pub tags: BTreeSet<String>,
    /// Byte totals at the previous poll and the rates since.
    prev: (u64, u64, Instant),
    pub downbps: u64,
    pub upbps: u64,
    /// Its numbers at each poll of the last [`HISTORY`] seconds.
    pub hist: std::collections::VecDeque<Snap>,
}

impl Session {
    pub fn down(&self) -> u64 {
        self.parts.values().map(|p| p.down).sum()
    }
    pub fn up(&self) -> u64 {
        self.parts.values().map(|p| p.up).sum()
    }
    pub fn first(&self) -> u64 {
        self.parts.values().map(|p| p.first).min().unwrap_or(0)
    }
    pub fn last(&self) -> u64 {
        self.parts.values().map(|p| p.last).max().unwrap_or(0)
    }
    /// Open connections in living processes.
    pub fn conns(&self) -> u32 {
        self.parts
            .values()
            .filter(|p| p.present && p.alive)
            .map(|p| p.conns)
            .sum()
    }
    fn names(&self, f: impl Fn(&Part) -> &str) -> Vec<String> {
        let s: BTreeSet<String> = self.parts.values().map(|p| f(p).to_string()).collect();
        s.into_iter().collect()
    }
    pub fn streams(&self) -> Vec<String> {
        self.names(|p| &p.stream)
    }
    pub fn connectors(&self) -> Vec<String> {
        self.names(|p| &p.connector)
    }
    pub fn hosts(&self) -> Vec<String> {
        self.names(|p| &p.host)
    }
    /// Seconds per value of `f` (first to last activity of the parts with that value).
    fn secs(&self, f: impl Fn(&Part) -> &str) -> String {
        let mut m: BTreeMap<String, u64> = BTreeMap::new();
        for p in self.parts.values() {
            *m.entry(f(p).to_string()).or_default() += p.last.saturating_sub(p.first);
        }
        m.values().map(u64::to_string).collect::<Vec<_>>().join(",")
    }

    /// Its numbers at unix second `t`: the last poll at or before `t` (at most 2 s before), if
    /// the session existed then.
    pub fn at(&self, t: u64) -> Option<Snap> {
        if self.first() > t {
            return None;
        }
        // The polls are in time order.
        let i = self.hist.partition_point(|s| s.t <= t);
        let s = self.hist.get(i.checked_sub(1)?)?;
        (t - s.t < 2).then_some(*s)
    }

    /// The 12 lines of USER_END (INTERFACES §5.3).
    pub fn user_end_lines(&self) -> Vec<String> {
        vec![
            self.token.clone(),
            self.streams().join(","),
            self.connectors().join(","),
            self.hosts().join(","),
            self.last().saturating_sub(self.first()).to_string(),
            self.up().to_string(),
            self.down().to_string(),
            self.tags.iter().cloned().collect::<Vec<_>>().join(","),
            self.secs(|p| &p.host),
            self.secs(|p| &p.connector),
            self.secs(|p| &p.stream),
            self.sid.clone(),
        ]
    }
}

/// What is remembered of an ended session, so that its rows do not start it again.
struct Tomb {
    last: u64,
    at: Instant,
    parts: std::collections::HashSet<(u32, usize, u64)>,
    /// Ended by a stop command: its rows are ignored while they last, active or not.
    stopped: bool,
}

#[derive(Default)]
pub struct Sessions {
    pub live: BTreeMap<String, Session>,
    /// Ended sessions: id → last activity, so their lingering rows do not start them again.
    ended: HashMap<String, Tomb>,
    last_poll: Option<Instant>,
    /// Sessions ended since the controller started, per stream (for the metrics).
    pub ended_total: BTreeMap<String, u64>,
    /// Bytes (up, down) of the sessions that ended, per stream (for the metrics).
    pub ended_bytes: BTreeMap<String, (u64, u64)>,
    /// Sessions that ended in the last [`HISTORY`] seconds (for `clients` `time`, `totals`).
    pub recent: std::collections::VecDeque<Session>,
    /// Inputs and other readers per second of the last [`HISTORY`] seconds (for `totals`).
    pub seconds: std::collections::VecDeque<Second>,
}

impl Sessions {
    /// Reads the table (at most once a second) and ends idle sessions.
    pub fn tick(&mut self, now_unix: u64, shm: &super::ShmView) {
        if self.last_poll.is_some_and(|t| t.elapsed() < POLL) {
            return;
        }
        self.last_poll = Some(Instant::now());
        // CONN_CLOSE of the viewer connections of outputs that died (issue 11).
        shm_call(mist_bins::conn_close::reap);
        let mut rows = shm_call(shm_sessions::rows).unwrap_or_default();
        let users = read_users(shm);
        rows.extend(users_rows(&users));
        self.merge(rows, now_unix);
        self.expire(now_unix, timeout());
        self.record(now_unix, &users);
    }

    /// Keeps this second's inputs and other readers, and forgets what is older than [`HISTORY`].
    fn record(&mut self, now_unix: u64, users: &UsersRead) {
        let mut sec = Second {
            t: now_unix,
            ..Second::default()
        };
        for (stream, writer, list) in users {
            if *writer {
                sec.inputs.push(stream.clone());
            }
            for u in list {
                if !self.reported(u.pid, stream) {
                    sec.outputs.push((stream.clone(), u.connector.clone()));
                }
            }
        }
        if self.seconds.back().is_some_and(|s| s.t == now_unix) {
            self.seconds.pop_back();
        }
        self.seconds.push_back(sec);
        let old = now_unix.saturating_sub(HISTORY);
        while self.seconds.front().is_some_and(|s| s.t < old) {
            self.seconds.pop_front();
        }
        while self.recent.front().is_some_and(|s| s.last() < old) {
            self.recent.pop_front();
        }
        // A bound on memory whatever the churn of sessions.
        while self.recent.len() > 100_000 {
            self.recent.pop_front();
        }
    }

    /// The sessions (current and recently ended) that existed at unix second `t`, with their
    /// numbers then.
    pub fn at(&self, t: u64) -> Vec<(&Session, Snap)> {
        self.live
            .values()
            .chain(self.recent.iter())
            .filter_map(|s| s.at(t).map(|n| (s, n)))
            .collect()
    }

    fn merge(&mut self, rows: Vec<SessionRow>, now_unix: u64) {
        self.ended
            .retain(|_, t| t.at.elapsed() < Duration::from_secs(600));
        for s in self.live.values_mut() {
            for p in s.parts.values_mut() {
                p.present = false;
            }
        }
        for r in rows {
            if r.sid.is_empty() {
                continue;
            }
            if let Some(t) = self.ended.get(&r.sid) {
                let old = t.parts.contains(&(r.pid, r.slot, r.first_unix));
                if !r.alive || (old && (t.stopped || (r.last_unix <= t.last && r.conns == 0))) {
                    continue; // what is left of a session that already ended
                }
                self.ended.remove(&r.sid);
            }
            let s = self.live.entry(r.sid.clone()).or_insert_with(|| Session {
                sid: r.sid.clone(),
                token: r.token.clone(),
                parts: HashMap::new(),
                tags: BTreeSet::new(),
                prev: (0, 0, Instant::now()),
                downbps: 0,
                upbps: 0,
                hist: Default::default(),
            });
            s.parts.insert(
                (r.pid, r.slot, r.first_unix),
                Part {
                    host: r.host,
                    connector: r.connector,
                    stream: r.stream,
                    down: r.bytes_down,
                    up: r.bytes_up,
                    first: r.first_unix,
                    // An open connection is activity now.
                    last: if r.conns > 0 && r.alive {
                        now_unix.max(r.last_unix)
                    } else {
                        r.last_unix
                    },
                    conns: r.conns,
                    alive: r.alive,
                    present: true,
                },
            );
        }
        for s in self.live.values_mut() {
            let (d, u) = (s.down(), s.up());
            let dt = s.prev.2.elapsed().as_secs_f64();
            if dt >= 0.5 {
                s.downbps = (d.saturating_sub(s.prev.0) as f64 / dt) as u64;
                s.upbps = (u.saturating_sub(s.prev.1) as f64 / dt) as u64;
                s.prev = (d, u, Instant::now());
            }
            if s.hist.back().is_some_and(|x| x.t >= now_unix) {
                s.hist.pop_back();
            }
            s.hist.push_back(Snap {
                t: now_unix,
                down: d,
                up: u,
                downbps: s.downbps,
                upbps: s.upbps,
            });
            let old = now_unix.saturating_sub(HISTORY);
            while s.hist.front().is_some_and(|x| x.t < old) {
                s.hist.pop_front();
            }
        }
    }

    fn expire(&mut self, now_unix: u64, timeout: Duration) {
        let idle: Vec<String> = self
            .live
            .values()
            .filter(|s| s.conns() == 0 && now_unix.saturating_sub(s.last()) >= timeout.as_secs())
            .map(|s| s.sid.clone())
            .collect();
        for sid in idle {
            self.end(&sid);
        }
    }

    /// Ends a session now: USER_END, forgotten. Returns whether it existed.
    pub fn end(&mut self, sid: &str) -> bool {
        self.end_as(sid, false)
    }

    fn end_as(&mut self, sid: &str, stopped: bool) -> bool {
        let Some(s) = self.live.remove(sid) else {
            return false;
        };
        let lines = s.user_end_lines();
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let first_stream = s.streams().into_iter().next();
        mist_core::info!(
            "session {} ended: {} on {} from {}, {} s, {} bytes up, {} down",
            s.sid,
            lines[1],
            lines[2],
            lines[3],
            lines[4],
            lines[5],
            lines[6]
        );
        // A segmented viewer (HLS, CMAF) plays as long as its session lives: its CONN_STOP,
        // once per stream, address and connector of the session, before the USER_END.
        let segmented: BTreeSet<(&str, &str, &str)> = s
            .parts
            .values()
            .filter(|p| viewers::SESSION_CONNECTORS.contains(&p.connector.as_str()))
            .map(|p| (p.stream.as_str(), p.host.as_str(), p.connector.as_str()))
            .collect();
        for (stream, host, connector) in segmented {
            viewers::stopped(stream, host, connector);
        }
        Engine::global().emit("USER_END", first_stream.as_deref(), &refs);
        for st in s.streams() {
            *self.ended_total.entry(st).or_default() += 1;
        }
        for p in s.parts.values() {
            let e = self.ended_bytes.entry(p.stream.clone()).or_default();
            e.0 += p.up;
            e.1 += p.down;
        }
        self.ended.insert(
            s.sid.clone(),
            Tomb {
                last: s.last(),
                at: Instant::now(),
                parts: s.parts.keys().copied().collect(),
                stopped,
            },
        );
        self.recent.push_back(s);
        true
    }

    /// Ends sessions (`stop_sessid`, `stop_tag`, `stop_sessions`): asks their processes to close
    /// them and fires USER_END. Returns how many ended.
    pub fn stop(&mut self, pred: impl Fn(&Session) -> bool) -> usize {
        let ids: Vec<String> = self
            .live
            .values()
            .filter(|s| pred(s))
            .map(|s| s.sid.clone())
            .collect();
        for sid in &ids {
            let id = sid.clone();
            shm_call(move || shm_sessions::kill(&id));
            self.end_as(sid, true);
        }
        ids.len()
    }

    /// Whether process `pid` reports sessions of `stream` (its users-table readers are then
    /// shared feeds, not viewers).
    pub fn reported(&self, pid: u32, stream: &str) -> bool {
        self.live.values().any(|s| {
            s.parts
                .iter()
                .any(|((p, _, _), x)| *p == pid && x.stream == stream)
        })
    }

    /// Current sessions that used `stream`.
    pub fn count(&self, stream: &str) -> usize {
        self.live
            .values()
            .filter(|s| s.parts.values().any(|p| p.stream == stream))
            .count()
    }

    /// Rows for `clients`: one per session and stream/connector/host it used.
    pub fn client_rows(&self) -> Vec<ClientRow<'_>> {
        let mut out = Vec::new();
        for s in self.live.values() {
            let mut by: BTreeMap<(&str, &str, &str), ClientRow<'_>> = BTreeMap::new();
            for p in s.parts.values() {
                let e = by
                    .entry((p.stream.as_str(), p.connector.as_str(), p.host.as_str()))
                    .or_insert_with(|| ClientRow {
                        session: s,
                        stream: &p.stream,
                        connector: &p.connector,
                        host: &p.host,
                        first: p.first,
                        last: p.last,
                        down: 0,
                        up: 0,
                    });
                e.first = e.first.min(p.first);
                e.last = e.last.max(p.last);
                e.down += p.down;
                e.up += p.up;
            }
            out.extend(by.into_values());
        }
        out
    }
}

/// Per stream: (current sessions per protocol, views = ended + current, bytes up, bytes down).
pub type StreamStats = BTreeMap<String, (BTreeMap<String, u64>, u64, u64, u64)>;

impl Sessions {
    pub fn stream_stats(&self) -> StreamStats {
        let mut m: StreamStats = BTreeMap::new();
        for (st, n) in &self.ended_total {
            m.entry(st.clone()).or_default().1 += n;
        }
        for (st, (u, d)) in &self.ended_bytes {
            let e = m.entry(st.clone()).or_default();
            e.2 += u;
            e.3 += d;
        }
        for s in self.live.values() {
            for st in s.streams() {
                let e = m.entry(st.clone()).or_default();
                e.1 += 1;
                for c in s.connectors() {
                    *e.0.entry(c).or_default() += 1;
                }
            }
            for p in s.parts.values() {
                let e = m.entry(p.stream.clone()).or_default();
                e.2 += p.up;
                e.3 += p.down;
            }
        }
        m
    }

    /// The session metrics in Prometheus text format 0.0.4 (appended to the controller's).
    pub fn metrics(&self) -> String {
        use std::fmt::Write;
        let esc = |s: &str| {
            s.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n")
        };
        let m = self.stream_stats();
        let mut o = String::new();
        let _ = writeln!(o, "# HELP mist_sessions Current viewer sessions per stream and protocol.\n# TYPE mist_sessions gauge");
        let total: usize = self.live.len();
        let _ = writeln!(o, "mist_sessions{{sessType=\"viewers\"}} {total}");
        for (st, (by, _, _, _)) in &m {
            for (c, n) in by {
                let _ = writeln!(
                    o,
                    "mist_sessions{{stream=\"{}\",protocol=\"{}\",sessType=\"viewers\"}} {n}",
                    esc(st),
                    esc(c)
                );
            }
        }
        let _ = writeln!(o, "# HELP mist_viewcount Viewer sessions per stream since the controller started.\n# TYPE mist_viewcount counter");
        for (st, (_, views, _, _)) in &m {
            let _ = writeln!(o, "mist_viewcount{{stream=\"{}\"}} {views}", esc(st));
        }
        let _ = writeln!(o, "# HELP mist_bw Bytes of viewer sessions per stream since the controller started (up = sent to viewers).\n# TYPE mist_bw counter");
        for (st, (_, _, up, down)) in &m {
            let _ = writeln!(o, "mist_bw{{stream=\"{}\",direction=\"up\"}} {up}", esc(st));
            let _ = writeln!(
                o,
                "mist_bw{{stream=\"{}\",direction=\"down\"}} {down}",
                esc(st)
            );
        }
        o
    }

    /// The same numbers as JSON (`/<prometheus path>.json`).
    pub fn metrics_json(&self) -> Value {
        let m = self.stream_stats();
        let streams: serde_json::Map<String, Value> = m
            .into_iter()
            .map(|(st, (by, views, up, down))| {
                (
                    st,
                    json!({"sessions": by.values().sum::<u64>(), "protocols": by, "viewcount": views, "up": up, "down": down}),
                )
            })
            .collect();
        json!({"sessions": self.live.len(), "streams": streams})
    }
}

pub struct ClientRow<'a> {
    pub session: &'a Session,
    pub stream: &'a str,
    pub connector: &'a str,
    pub host: &'a str,
    pub first: u64,
    pub last: u64,
    pub down: u64,
    pub up: u64,
}

/// `stop_sessions`: a stream name, `{stream: protocol}`, or `[protocol, …]` (all streams).
pub fn stop_sessions_matcher(arg: &Value) -> impl Fn(&Session) -> bool {
    let mut pairs: Vec<(Option<String>, Option<String>)> = Vec::new();
    match arg {
        Value::String(s) => pairs.push((Some(s.clone()), None)),
        Value::Array(a) => {
            for p in a.iter().filter_map(Value::as_str) {
                pairs.push((None, Some(p.to_string())));
            }
        }
        Value::Object(o) => {
            for (k, v) in o {
                pairs.push((Some(k.clone()), v.as_str().map(str::to_string)));
            }
        }
        _ => {}
    }
    move |s: &Session| {
        let (streams, conns) = (s.streams(), s.connectors());
        pairs.iter().any(|(st, pr)| {
            st.as_ref().is_none_or(|x| streams.contains(x))
                && pr
                    .as_ref()
                    .is_none_or(|x| conns.iter().any(|c| c.eq_ignore_ascii_case(x)))
        })
    }
}

/// The session commands: `stop_sessions`, `stop_sessid` (id or ids), `stop_tag` (tag or tags),
/// `tag_sessid` (`{sessid: tag | [tags]}`), `invalidate_sessions` (stream or streams: MistOutHTTP
/// runs USER_NEW again at the sessions' next request). Answers how many sessions were ended,
/// tagged or invalidated.
pub fn api(ctl: &mut super::Controller, cmd: &str, arg: &Value) -> Value {
    let n = match cmd {
        "stop_sessions" => {
            let m = stop_sessions_matcher(arg);
            ctl.sessions.stop(m)
        }
        "stop_sessid" => {
            let ids = strings(arg);
            ctl.sessions.stop(|s| ids.contains(&s.sid))
        }
        // mist-rs: a session id or a stream name, or an array of them (every session of a named
        // stream ends).
        "kill" => {
            let what = strings(arg);
            ctl.sessions
                .stop(|s| what.contains(&s.sid) || s.streams().iter().any(|st| what.contains(st)))
        }
        "stop_tag" => {
            let tags = strings(arg);
            ctl.sessions
                .stop(|s| tags.iter().any(|t| s.tags.contains(t)))
        }
        "invalidate_sessions" => strings(arg)
            .into_iter()
            .map(|st| shm_call(move || shm_sessions::invalidate(&st)).unwrap_or(0))
            .sum(),
        "tag_sessid" => {
            let mut n = 0;
            for (sid, tags) in arg.as_object().into_iter().flatten() {
                if let Some(s) = ctl.sessions.live.get_mut(sid) {
                    s.tags.extend(strings(tags));
                    n += 1;
                }
            }
            n
        }
        _ => 0,
    };
    json!(n)
}

/// Strings of a string-or-array argument.
pub fn strings(arg: &Value) -> Vec<String> {
    match arg {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// The `clients` value of one field for a row.
pub fn client_field(r: &ClientRow<'_>, f: &str, now: u64) -> Value {
    match f {
        "host" => json!(r.host),
        "stream" => json!(r.stream),
        "protocol" => json!(r.connector),
        "conntime" => json!(now.saturating_sub(r.first)),
        "lastactive" => json!(r.last),
        "position" => Value::Null,
        "down" => json!(r.down),
        "up" => json!(r.up),
        "downbps" => json!(r.session.downbps),
        "upbps" => json!(r.session.upbps),
        "sessid" | "sessId" => json!(r.session.sid),
        "tags" => json!(r.session.tags.iter().collect::<Vec<_>>()),
        "token" => json!(r.session.token),
        "pktcount" | "pktlost" | "pktretransmit" => json!(0),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(sid: &str, pid: u32, slot: usize, conns: u32, up: u64, last: u64) -> SessionRow {
        SessionRow {
            slot,
            pid,
            alive: true,
            sid: sid.into(),
            stream: "live".into(),
            connector: "HLS".into(),
            host: "127.0.0.1".into(),
            token: "tk".into(),
            conns,
            bytes_down: 10,
            bytes_up: up,
            first_unix: 100,
            last_unix: last,
        }
    }

    #[test]
    fn rows_of_one_id_are_one_session_that_ends_once() {
        let mut s = Sessions::default();
        s.merge(
            vec![row("a", 1, 0, 0, 500, 105), row("a", 2, 3, 1, 700, 106)],
            107,
        );
        assert_eq!(s.live.len(), 1);
        assert_eq!(s.live["a"].up(), 1200);
        s.expire(200, Duration::from_secs(20));
        assert_eq!(s.live.len(), 1, "an open connection keeps it");
        // The second process's connection closed; the row lingers, then goes.
        s.merge(vec![row("a", 2, 3, 0, 900, 110)], 111);
        s.expire(125, Duration::from_secs(20));
        assert_eq!(s.live.len(), 1);
        let lines = s.live["a"].user_end_lines();
        assert_eq!(lines.len(), 12);
        assert_eq!(lines[5], "1400");
        assert_eq!(lines[0], "tk");
        assert_eq!(lines[11], "a");
        s.merge(vec![], 131);
        s.expire(131, Duration::from_secs(20));
        assert!(s.live.is_empty());
        // A lingering row of the ended session does not bring it back.
        s.merge(vec![row("a", 2, 3, 0, 900, 110)], 132);
        assert!(s.live.is_empty());
        // New activity starts a new session.
        s.merge(vec![row("a", 2, 4, 1, 50, 140)], 140);
        assert_eq!(s.live.len(), 1);
        assert_eq!(s.ended_total["live"], 1);
    }

    #[test]
    fn history_keeps_each_poll_and_ended_sessions() {
        let mut s = Sessions::default();
        for t in 100..=105 {
            s.merge(vec![row("a", 1, 0, 1, 100 * (t - 99), t)], t);
        }
        let a = &s.live["a"];
        assert_eq!(a.at(99), None, "before it began");
        assert_eq!(a.at(103).map(|n| n.up), Some(400));
        assert_eq!(
            a.at(106).map(|n| n.t),
            Some(105),
            "one second late is still it"
        );
        assert_eq!(a.at(108), None, "nothing known then");
        assert!(s.end("a"));
        assert_eq!(s.at(102).len(), 1, "an ended session is kept for history");
        assert_eq!(s.at(102)[0].1.up, 300);
        // Forgotten after HISTORY seconds.
        s.record(105 + HISTORY + 1, &Vec::new());
        assert!(s.recent.is_empty());
        assert_eq!(s.seconds.len(), 1);
    }

    #[test]
    fn stop_sessions_arguments() {
        let mut s = Sessions::default();
        s.merge(vec![row("a", 1, 0, 1, 5, 105)], 105);
        assert!(!stop_sessions_matcher(&json!("other"))(&s.live["a"]));
        assert!(stop_sessions_matcher(&json!("live"))(&s.live["a"]));
        assert!(stop_sessions_matcher(&json!(["hls"]))(&s.live["a"]));
        assert!(!stop_sessions_matcher(&json!({"live": "RTMP"}))(
            &s.live["a"]
        ));
        assert!(stop_sessions_matcher(&json!({"live": "HLS"}))(&s.live["a"]));
    }
}
