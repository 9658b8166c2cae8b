//! The event loop: listeners, connections, timers, wake-ups, and the panic fence around sessions.

use crate::limits::{Caps, Limits, Refusal};
use crate::session::{ConnId, ConnState, Io, ListenerId, Session};
use crate::tls::TlsConfigHandle;
use crate::transport::{OutQueue, Peer, Stream};
use bytes::Bytes;
use mio::net::{TcpListener, UdpSocket, UnixListener, UnixStream};
use mio::{Events, Interest, Poll, Token, Waker};
use mist_core::{debug, error, warn};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, ErrorKind, Read};
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Tokens below this are listeners; the waker sits just below.
const CONN_BASE: usize = 1 << 20;
const WAKER: Token = Token(CONN_BASE - 1);
/// Accepted connections (or datagrams) handled per listener per loop turn.
const ACCEPT_BUDGET: usize = 128;
/// How often timeouts are checked.
const SWEEP_EVERY: Duration = Duration::from_millis(250);
/// Read chunk size.
const READ_CHUNK: usize = 16 << 10;
/// Input capacity a connection keeps once everything it sent was consumed. A viewer sends a few
/// bytes now and then (RTMP acknowledgements): holding a read-sized buffer for each of thousands
/// of viewers would cost more memory than the viewer's share of the stream.
const IDLE_INPUT_CAP: usize = 4 << 10;
/// Input capacity kept whatever the reads look like (an acknowledgement fits).
const SMALL_INPUT_CAP: usize = 512;

/// What the application does besides its sessions: makes them, answers datagrams, and does its
/// own work once per loop turn.
pub trait App: Sized {
    /// The session type of this application's connections.
    type Session: Session<Self>;
    /// A connection arrived on `listener`; `None` refuses it.
    fn accept(&mut self, listener: ListenerId, peer: Peer, now: Instant) -> Option<Self::Session>;
    /// A datagram arrived on a UDP socket; the answer (if any) goes back to `from`.
    fn datagram(
        &mut self,
        _listener: ListenerId,
        _data: &[u8],
        _from: SocketAddr,
        _now: Instant,
    ) -> Option<Vec<u8>> {
        None
    }
    /// Once per loop turn, after the events: the application's own work (children, signals,
    /// answers that were waiting). Return [`Flow::Stop`] to leave the loop.
    fn turn(&mut self, _ctl: &mut Ctl<'_, Self>, _now: Instant) -> Flow {
        Flow::Continue
    }
    /// When [`App::turn`] wants to run next at the latest.
    fn next_deadline(&self) -> Option<Instant> {
        None
    }
}

/// Whether the loop goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep running.
    Continue,
    /// Write what is queued (best effort) and return from [`Runtime::run`].
    Stop,
}

enum Source {
    Tcp(TcpListener),
    Unix(UnixListener),
    Udp(UdpSocket),
    /// A pipe that only wakes the loop (e.g. signals); drained and otherwise ignored.
    Watch(UnixStream),
    /// No socket: the limits and name of streams handed in with [`Runtime::adopt`].
    Adopted,
}

struct Listener {
    src: Source,
    name: String,
    limits: Limits,
    caps: Caps,
    /// A TCP listener with this is a TLS listener.
    tls: Option<TlsConfigHandle>,
}

struct Conn<S> {
    stream: Box<dyn Stream>,
    session: S,
    st: ConnState,
    peer: Peer,
    listener: ListenerId,
    last_io: Instant,
    last_write: Instant,
    /// Since when unconsumed input (a partial message) waits.
    partial_since: Option<Instant>,
    /// The socket may hold unread bytes (budget hit or reading paused).
    unread: bool,
    /// The output queue held data at the last flush (for `on_drained`).
    had_output: bool,
}

/// Wakes the loop, or one connection, from another thread.
#[derive(Clone)]
pub struct Remote {
    waker: Arc<Waker>,
    wakes: Arc<Mutex<Vec<ConnId>>>,
}

impl Remote {
    /// Calls [`Session::on_wake`] of connection `id` on the loop thread.
    pub fn wake(&self, id: ConnId) {
        if let Ok(mut w) = self.wakes.lock() {
            w.push(id);
        }
        let _ = self.waker.wake();
    }

    /// Wakes the loop: [`App::turn`] runs soon.
    pub fn wake_loop(&self) {
        let _ = self.waker.wake();
    }

    /// The underlying mio waker.
    pub fn waker(&self) -> Arc<Waker> {
        self.waker.clone()
    }
}

/// The application's handle on the connections during [`App::turn`].
pub struct Ctl<'a, A: App> {
    conns: &'a mut crate::IdMap<ConnId, Box<Conn<A::Session>>>,
    wakes: &'a mut Vec<ConnId>,
    dirty: &'a mut Vec<ConnId>,
    /// The waker ([`Remote`]) woke the loop since the last turn.
    woken: bool,
}

impl<A: App> Ctl<'_, A> {
    /// Queues bytes on connection `id`. False if it is gone.
    pub fn send(&mut self, id: ConnId, b: Bytes) -> bool {
        let Some(c) = self.conns.get_mut(&id) else {
            return false;
        };
        c.st.out.push(b);
        self.dirty.push(id);
        true
    }

    /// Closes `id` once its output is written.
    pub fn close(&mut self, id: ConnId) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.st.closing = true;
            self.dirty.push(id);
        }
    }

    /// Calls [`Session::on_wake`] of `id` later in this turn.
    pub fn wake(&mut self, id: ConnId) {
        self.wakes.push(id);
    }

    /// The output queue of `id` (None if it is gone). What is queued here is written at the
    /// next write event or [`Ctl::flush`], not at once: callers merge writes this way.
    pub fn out(&mut self, id: ConnId) -> Option<&mut OutQueue> {
        self.conns.get_mut(&id).map(|c| &mut c.st.out)
    }

    /// Writes what is queued on `id` at the end of this turn.
    pub fn flush(&mut self, id: ConnId) {
        if self.conns.contains_key(&id) {
            self.dirty.push(id);
        }
    }

    /// Calls [`Session::on_drained`] of `id` once its queue is written, even when the next
    /// write takes it all (as [`Io::notify_drained`](crate::Io::notify_drained)).
    pub fn notify_drained(&mut self, id: ConnId) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.st.want_drained = true;
            self.dirty.push(id);
        }
    }

    /// Whether the waker ([`Remote`]) woke the loop since the last turn.
    pub fn woken(&self) -> bool {
        self.woken
    }

    /// Whether `id` is open.
    pub fn is_open(&self, id: ConnId) -> bool {
        self.conns.contains_key(&id)
    }

    /// Open connections.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// No connection is open.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }
}

/// Which session method ran (for the panic log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Read,
    Timer,
    Wake,
    Drained,
}

/// One mio event loop with its listeners and connections. `mio::Poll::new` lives here only.
pub struct Runtime<A: App> {
    poll: Poll,
    listeners: Vec<Listener>,
    /// Boxed: a table of thousands of inline connections would grow by powers of two of a
    /// kilobyte-sized entry, and its empty half would cost more than the connections.
    conns: crate::IdMap<ConnId, Box<Conn<A::Session>>>,
    next_id: usize,
    timers: BinaryHeap<Reverse<(Instant, ConnId)>>,
    /// Connections to read again this turn (budget hit, output drained).
    again: Vec<ConnId>,
    /// Listeners with more to accept.
    again_listeners: Vec<usize>,
    wakes: Vec<ConnId>,
    dirty: Vec<ConnId>,
    remote: Remote,
    /// The waker fired since the last turn ([`Ctl::woken`]).
    woken: bool,
    /// Connections whose asked-for `on_drained` runs in the next round.
    drained_soon: Vec<ConnId>,
    max_wait: Duration,
    next_sweep: Instant,
    /// Where reads land before they are appended to a connection's input: one buffer for the
    /// process, so a connection's input grows only by what its peer really sent.
    scratch: Box<[u8]>,
}

impl<A: App> Runtime<A> {
    /// A runtime with no listeners yet.
    pub fn new() -> io::Result<Runtime<A>> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        Ok(Runtime {
            poll,
            listeners: Vec::new(),
            conns: crate::IdMap::default(),
            next_id: CONN_BASE,
            timers: BinaryHeap::new(),
            again: Vec::new(),
            again_listeners: Vec::new(),
            wakes: Vec::new(),
            dirty: Vec::new(),
            remote: Remote {
                waker,
                wakes: Arc::new(Mutex::new(Vec::new())),
            },
            woken: false,
            drained_soon: Vec::new(),
            max_wait: Duration::from_millis(100),
            next_sweep: Instant::now(),
            scratch: vec![0u8; READ_CHUNK].into_boxed_slice(),
        })
    }

    /// The longest the loop sleeps without events (default 100 ms).
    pub fn set_max_wait(&mut self, d: Duration) {
        self.max_wait = d;
    }

    /// A handle for other threads.
    pub fn remote(&self) -> Remote {
        self.remote.clone()
    }

    fn add(&mut self, mut src: Source, name: &str, limits: Limits) -> io::Result<ListenerId> {
        let i = self.listeners.len();
        let t = Token(i);
        let r = self.poll.registry();
        match &mut src {
            Source::Tcp(l) => r.register(l, t, Interest::READABLE)?,
            Source::Unix(l) => r.register(l, t, Interest::READABLE)?,
            Source::Udp(l) => r.register(l, t, Interest::READABLE)?,
            Source::Watch(l) => r.register(l, t, Interest::READABLE)?,
            Source::Adopted => {}
        }
        self.listeners.push(Listener {
            src,
            name: name.to_string(),
            limits,
            caps: Caps::default(),
            tls: None,
        });
        Ok(ListenerId(i))
    }

    /// Listens on a bound TCP listener, under its own `limits`.
    pub fn listen_tcp(
        &mut self,
        l: TcpListener,
        name: &str,
        limits: Limits,
    ) -> io::Result<ListenerId> {
        self.add(Source::Tcp(l), name, limits)
    }

    /// Listens on a bound TCP listener as a TLS server ([`crate::tls`]): sessions see plaintext.
    pub fn listen_tcp_tls(
        &mut self,
        l: TcpListener,
        name: &str,
        limits: Limits,
        tls: TlsConfigHandle,
    ) -> io::Result<ListenerId> {
        let id = self.add(Source::Tcp(l), name, limits)?;
        self.listeners[id.0].tls = Some(tls);
        Ok(id)
    }

    /// Listens on a bound Unix listener, under its own `limits`.
    pub fn listen_unix(
        &mut self,
        l: UnixListener,
        name: &str,
        limits: Limits,
    ) -> io::Result<ListenerId> {
        self.add(Source::Unix(l), name, limits)
    }

    /// Receives datagrams on a bound UDP socket ([`App::datagram`]).
    pub fn listen_udp(&mut self, s: UdpSocket, name: &str) -> io::Result<ListenerId> {
        self.add(Source::Udp(s), name, Limits::default())
    }

    /// Wakes the loop when `s` becomes readable (its bytes are discarded): a signal pipe.
    pub fn watch(&mut self, s: UnixStream, name: &str) -> io::Result<ListenerId> {
        self.add(Source::Watch(s), name, Limits::default())
    }

    /// Runs `session` on a stream that is already open (a TCP connection this process made, a
    /// child's pipe), under `limits` as if it had been accepted on a listener called `name`.
    /// The session sees [`Session::on_close`] when the stream ends, as accepted ones do.
    pub fn adopt(
        &mut self,
        mut stream: Box<dyn Stream>,
        peer: Peer,
        name: &str,
        limits: Limits,
        session: A::Session,
    ) -> io::Result<ConnId> {
        let i = match self
            .listeners
            .iter()
            .position(|l| matches!(l.src, Source::Adopted) && l.name == name)
        {
            Some(i) => {
                self.listeners[i].limits = limits;
                i
            }
            None => self.add(Source::Adopted, name, limits)?.0,
        };
        let id = ConnId(self.next_id);
        self.next_id = self.next_id.wrapping_add(1).max(CONN_BASE);
        self.poll.registry().register(
            &mut stream,
            Token(id.0),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let now = Instant::now();
        let l = &mut self.listeners[i];
        let _ = l.caps.admit(&Limits::default(), peer.ip());
        self.conns.insert(
            id,
            Box::new(Conn {
                stream,
                session,
                st: ConnState::default(),
                peer,
                listener: ListenerId(i),
                last_io: now,
                last_write: now,
                partial_since: None,
                unread: false,
                had_output: false,
            }),
        );
        // Bytes may already wait (a pipe filled before registration): read them this turn.
        self.again.push(id);
        Ok(id)
    }

    /// Open connections.
    pub fn conn_count(&self) -> usize {
        self.conns.len()
    }

    /// Runs until [`App::turn`] answers [`Flow::Stop`].
    pub fn run(&mut self, app: &mut A) -> io::Result<()> {
        let mut events = Events::with_capacity(256);
        loop {
            let now = Instant::now();
            let mut wait = self.max_wait;
            let pending = !self.again.is_empty()
                || !self.again_listeners.is_empty()
                || !self.wakes.is_empty()
                || !self.drained_soon.is_empty();
            if pending {
                wait = Duration::ZERO;
            }
            // A timer set again (a publisher's tick, re-armed on every message) leaves its old
            // entry in the heap: drop those before taking the earliest, or the loop would wake
            // for each of them (once per message of every publisher, for nothing).
            while let Some(&Reverse(entry)) = self.timers.peek() {
                if self.timer_is_set(entry) {
                    break;
                }
                self.timers.pop();
            }
            if let Some(Reverse((t, _))) = self.timers.peek() {
                wait = wait.min(t.saturating_duration_since(now));
            }
            if let Some(t) = app.next_deadline() {
                wait = wait.min(t.saturating_duration_since(now));
            }
            if let Err(e) = self.poll.poll(&mut events, Some(wait)) {
                if e.kind() != ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            let now = Instant::now();
            for ev in events.iter() {
                let t = ev.token();
                if t == WAKER {
                    self.woken = true;
                    continue;
                }
                if t.0 < CONN_BASE {
                    self.listener_ready(app, t.0, now);
                    continue;
                }
                let id = ConnId(t.0);
                if ev.is_writable() || ev.is_write_closed() || ev.is_error() {
                    self.flush(app, id, now);
                }
                if ev.is_readable() || ev.is_read_closed() {
                    // Once the peer has closed, read on to the end: no later edge reports it.
                    let greedy = ev.is_read_closed() || ev.is_error();
                    self.read(app, id, now, greedy);
                }
            }
            for i in std::mem::take(&mut self.again_listeners) {
                self.listener_ready(app, i, now);
            }
            for id in std::mem::take(&mut self.again) {
                self.read(app, id, now, true);
            }
            if let Ok(mut w) = self.remote.wakes.lock() {
                self.wakes.append(&mut w);
            }
            for id in std::mem::take(&mut self.wakes) {
                self.call(app, id, Phase::Wake, now);
            }
            for id in std::mem::take(&mut self.drained_soon) {
                let Some(c) = self.conns.get_mut(&id) else {
                    continue;
                };
                if c.st.out.is_empty() {
                    self.call(app, id, Phase::Drained, now);
                } else {
                    c.st.want_drained = true;
                }
            }
            while let Some(Reverse((t, id))) = self.timers.peek().copied() {
                if t > now {
                    break;
                }
                self.timers.pop();
                if self.timer_is_set((t, id)) {
                    if let Some(c) = self.conns.get_mut(&id) {
                        c.st.timer = None;
                    }
                    self.call(app, id, Phase::Timer, now);
                }
            }
            if now >= self.next_sweep {
                self.next_sweep = now + SWEEP_EVERY;
                self.sweep(app, now);
            }
            let flow = {
                let mut ctl = Ctl {
                    conns: &mut self.conns,
                    wakes: &mut self.wakes,
                    dirty: &mut self.dirty,
                    woken: std::mem::take(&mut self.woken),
                };
                match catch_unwind(AssertUnwindSafe(|| app.turn(&mut ctl, now))) {
                    Ok(f) => f,
                    Err(p) => {
                        error!("application turn panicked: {}", panic_text(&p));
                        Flow::Continue
                    }
                }
            };
            // A fan-out sends many chunks to each viewer in one turn: one flush per connection.
            let mut dirty = std::mem::take(&mut self.dirty);
            dirty.sort_unstable();
            dirty.dedup();
            for id in dirty {
                self.flush(app, id, now);
            }
            if flow == Flow::Stop {
                for c in self.conns.values_mut() {
                    let _ = c.st.out.flush_stream(&mut *c.stream);
                    let _ = c.stream.flush();
                }
                return Ok(());
            }
        }
    }

    fn listener_ready(&mut self, app: &mut A, i: usize, now: Instant) {
        let Some(l) = self.listeners.get_mut(i) else {
            return;
        };
        let mut accepted: Vec<(Box<dyn Stream>, Peer)> = Vec::new();
        let more = match &mut l.src {
            Source::Watch(s) => {
                let mut buf = [0u8; 64];
                while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
                return;
            }
            Source::Adopted => return,
            Source::Udp(s) => {
                let mut buf = vec![0u8; 65536];
                for _ in 0..ACCEPT_BUDGET {
                    match s.recv_from(&mut buf) {
                        Ok((n, from)) => {
                            let data = &buf[..n];
                            let id = ListenerId(i);
                            match catch_unwind(AssertUnwindSafe(|| {
                                app.datagram(id, data, from, now)
                            })) {
                                Ok(Some(answer)) => {
                                    let _ = s.send_to(&answer, from);
                                }
                                Ok(None) => {}
                                Err(p) => error!(
                                    "{}: datagram from {from} panicked: {}",
                                    l.name,
                                    panic_text(&p)
                                ),
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(_) => return,
                    }
                }
                self.again_listeners.push(i);
                return;
            }
            Source::Tcp(s) => {
                for _ in 0..ACCEPT_BUDGET {
                    match s.accept() {
                        Ok((sock, peer)) => {
                            let _ = sock.set_nodelay(true);
                            let stream: Box<dyn Stream> = match &l.tls {
                                None => Box::new(sock),
                                Some(tls) => match tls.accept(sock, peer, &l.name) {
                                    Ok(s) => Box::new(s),
                                    Err(e) => {
                                        warn!("{}: TLS for {peer}: {e}", l.name);
                                        continue;
                                    }
                                },
                            };
                            accepted.push((stream, Peer::Tcp(peer)));
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e) => {
                            warn!("{} accept: {e}", l.name);
                            break;
                        }
                    }
                }
                accepted.len() == ACCEPT_BUDGET
            }
            Source::Unix(s) => {
                for _ in 0..ACCEPT_BUDGET {
                    match s.accept() {
                        Ok((sock, _)) => accepted.push((Box::new(sock), Peer::Unix)),
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e) => {
                            warn!("{} accept: {e}", l.name);
                            break;
                        }
                    }
                }
                accepted.len() == ACCEPT_BUDGET
            }
        };
        if more {
            self.again_listeners.push(i);
        }
        for (stream, peer) in accepted {
            self.admit(app, i, stream, peer, now);
        }
    }

    fn admit(
        &mut self,
        app: &mut A,
        i: usize,
        mut stream: Box<dyn Stream>,
        peer: Peer,
        now: Instant,
    ) {
        let l = &mut self.listeners[i];
        if let Err(why) = l.caps.admit(&l.limits, peer.ip()) {
            if let Some(n) = l.caps.refused(now) {
                match why {
                    Refusal::Listener => warn!(
                        "{}: connection cap ({}) reached; refused {n} connection(s), last from {peer}",
                        l.name, l.limits.max_conns
                    ),
                    Refusal::Address => warn!(
                        "{}: per-address cap ({}) reached; refused {n} connection(s), last from {peer}",
                        l.name, l.limits.max_per_ip
                    ),
                }
            }
            stream.shutdown();
            return;
        }
        let lid = ListenerId(i);
        let session = match catch_unwind(AssertUnwindSafe(|| app.accept(lid, peer, now))) {
            Ok(Some(s)) => s,
            Ok(None) => {
                l.caps.release(peer.ip());
                return;
            }
            Err(p) => {
                error!(
                    "{}: accepting {peer} panicked: {}; connection closed",
                    l.name,
                    panic_text(&p)
                );
                l.caps.release(peer.ip());
                return;
            }
        };
        let id = ConnId(self.next_id);
        self.next_id = self.next_id.wrapping_add(1).max(CONN_BASE);
        if let Err(e) = self.poll.registry().register(
            &mut stream,
            Token(id.0),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            warn!("{}: cannot register {peer}: {e}", l.name);
            l.caps.release(peer.ip());
            return;
        }
        self.conns.insert(
            id,
            Box::new(Conn {
                stream,
                session,
                st: ConnState::default(),
                peer,
                listener: lid,
                last_io: now,
                last_write: now,
                partial_since: None,
                unread: false,
                had_output: false,
            }),
        );
    }

    /// Reads what the budget allows and hands it to the session. Not `greedy`: called for a
    /// readable edge, a short read of a plain socket ends the loop (the socket is empty and the
    /// next bytes or the peer's close raise a new edge). Greedy: reads on to `WouldBlock`,
    /// for reads not started by an edge (after a pause or the budget) and once the peer closed.
    fn read(&mut self, app: &mut A, id: ConnId, now: Instant, greedy: bool) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let limits = &self.listeners[c.listener.0].limits;
        if c.st.closing {
            return;
        }
        if c.st.read_paused || c.st.out.len() >= limits.pause_output {
            c.unread = true;
            return;
        }
        let mut got = 0usize;
        let mut eof = false;
        c.unread = false;
        loop {
            if got >= limits.read_budget {
                c.unread = true;
                self.again.push(id);
                break;
            }
            match c.stream.read(&mut self.scratch) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    c.st.input.extend_from_slice(&self.scratch[..n]);
                    got += n;
                    if !greedy && n < self.scratch.len() && c.stream.short_read_drains() {
                        break;
                    }
                }
                Err(e) => match e.kind() {
                    ErrorKind::WouldBlock => break,
                    ErrorKind::Interrupted => {}
                    _ => {
                        eof = true;
                        break;
                    }
                },
            }
            if c.st.input.len() > limits.max_input {
                break;
            }
        }
        if got > 0 {
            c.last_io = now;
            self.call(app, id, Phase::Read, now);
        }
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        // A drained input gives back a large buffer, and also a buffer that a burst (an RTMP
        // handshake) left much larger than what the peer sends now.
        let cap = c.st.input.capacity();
        if c.st.input.is_empty()
            && (cap > IDLE_INPUT_CAP || (cap > SMALL_INPUT_CAP && got * 4 < cap))
        {
            c.st.input = Vec::new();
        }
        let limits = &self.listeners[c.listener.0].limits;
        if c.st.input.len() > limits.max_input {
            warn!(
                "{}: {} sent more than {} bytes without a complete message; closed",
                self.listeners[c.listener.0].name, c.peer, limits.max_input
            );
            self.drop_conn(app, id);
            return;
        }
        if eof {
            // A session waiting for an answer (reading paused) closes itself once answered.
            if !c.st.read_paused {
                c.st.closing = true;
            }
            if c.st.out.is_empty() && c.st.closing {
                self.drop_conn(app, id);
            }
        }
    }

    /// Runs one session method inside the panic fence, then flushes what it queued.
    fn call(&mut self, app: &mut A, id: ConnId, phase: Phase, now: Instant) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let timer_before = c.st.timer;
        let mut io = Io {
            st: &mut c.st,
            now,
            id,
            peer: c.peer,
            listener: c.listener,
        };
        let session = &mut c.session;
        let r = catch_unwind(AssertUnwindSafe(|| match phase {
            Phase::Read => session.on_read(app, &mut io),
            Phase::Timer => session.on_timer(app, &mut io),
            Phase::Wake => session.on_wake(app, &mut io),
            Phase::Drained => session.on_drained(app, &mut io),
        }));
        if let Err(p) = r {
            error!(
                "{}: session of {} panicked ({phase:?}): {}; connection closed",
                self.listeners[c.listener.0].name,
                c.peer,
                panic_text(&p)
            );
            self.drop_conn(app, id);
            return;
        }
        if c.st.input.is_empty() {
            c.partial_since = None;
        } else if c.partial_since.is_none() {
            c.partial_since = Some(now);
        }
        if let Some(t) = c.st.timer {
            if timer_before != Some(t) {
                self.timers.push(Reverse((t, id)));
            }
        }
        if c.unread && !c.st.read_paused && phase != Phase::Read {
            self.again.push(id);
        }
        self.flush(app, id, now);
    }

    /// Whether a timer heap entry is its connection's timer now (not replaced, not cancelled,
    /// the connection not gone).
    fn timer_is_set(&self, (t, id): (Instant, ConnId)) -> bool {
        self.conns.get(&id).is_some_and(|c| c.st.timer == Some(t))
    }

    /// Writes queued output; cuts slow peers; closes when done.
    fn flush(&mut self, app: &mut A, id: ConnId, now: Instant) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let l = &self.listeners[c.listener.0];
        match c.st.out.flush_stream(&mut *c.stream) {
            Ok(n) if n > 0 => {
                c.last_write = now;
                c.last_io = now;
            }
            Ok(_) => {}
            Err(_) => {
                self.drop_conn(app, id);
                return;
            }
        }
        // Then what the stream itself holds (TLS records): `held` while some is left.
        let held = match c.stream.flush() {
            Ok(()) => false,
            Err(e) if e.kind() == ErrorKind::WouldBlock => true,
            Err(_) => {
                self.drop_conn(app, id);
                return;
            }
        };
        if c.st.out.len() > l.limits.max_output {
            warn!(
                "{}: {} is too slow ({} bytes queued); cut",
                l.name,
                c.peer,
                c.st.out.len()
            );
            self.drop_conn(app, id);
            return;
        }
        if c.st.out.is_empty() && !held {
            c.st.out.release_idle();
            if c.st.closing {
                self.drop_conn(app, id);
                return;
            }
            let asked = std::mem::take(&mut c.st.want_drained);
            if std::mem::take(&mut c.had_output) {
                if c.unread && !c.st.read_paused {
                    self.again.push(id);
                }
                self.call(app, id, Phase::Drained, now);
            } else if asked {
                // Asked for (`Io::notify_drained`) and written at once: called in the next
                // round, not from here, so a session that produces on every drain does not
                // recurse for as long as the socket takes what it writes.
                self.drained_soon.push(id);
            }
        } else {
            if c.st.out.len() < l.limits.pause_output && c.unread && !c.st.read_paused {
                self.again.push(id);
            }
            c.had_output = true;
        }
    }

    fn sweep(&mut self, app: &mut A, now: Instant) {
        let mut cut = Vec::new();
        for (id, c) in &self.conns {
            let l = &self.listeners[c.listener.0];
            let lim = &l.limits;
            let why = if c.stream.deadline().is_some_and(|t| now >= t) {
                Some("TLS handshake timeout")
            } else if lim
                .header_timeout
                .zip(c.partial_since)
                .is_some_and(|(d, t)| now.duration_since(t) >= d)
            {
                Some("incomplete message timeout")
            } else if !c.st.out.is_empty()
                && lim
                    .write_timeout
                    .is_some_and(|d| now.duration_since(c.last_write) >= d)
            {
                Some("write stalled")
            } else if c.st.out.is_empty()
                && lim
                    .idle_timeout
                    .is_some_and(|d| now.duration_since(c.last_io) >= d)
            {
                Some("idle")
            } else {
                None
            };
            if let Some(why) = why {
                debug!("{}: closing {} ({why})", l.name, c.peer);
                cut.push(*id);
            }
        }
        for id in cut {
            self.drop_conn(app, id);
        }
    }

    fn drop_conn(&mut self, app: &mut A, id: ConnId) {
        let Some(mut c) = self.conns.remove(&id) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut c.stream);
        c.stream.shutdown();
        let l = &mut self.listeners[c.listener.0];
        l.caps.release(c.peer.ip());
        let peer = c.peer;
        let session = &mut c.session;
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| session.on_close(app, id, peer))) {
            error!(
                "{}: closing the session of {peer} panicked: {}",
                l.name,
                panic_text(&p)
            );
        }
    }
}

/// The message of a panic payload.
fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}
