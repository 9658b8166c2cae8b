//! The session interface: a protocol as a sans-IO state machine over one connection.
//!
//! The runtime reads bytes into the connection's input buffer and calls the session; the session
//! parses what it can, consumes it, and queues bytes out. It never touches a socket or a clock:
//! the current time comes in as [`Io::now`], and a session that wants to be called back later
//! sets a timer with [`Io::set_timer`]. [`Harness`] drives a session without sockets, with
//! simulated time, for tests.

use crate::transport::{OutQueue, Peer};
use bytes::Bytes;
use std::time::Instant;

/// Identifies a connection within one runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub usize);

/// Identifies a listener (TCP, Unix or UDP) within one runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerId(pub usize);

/// A protocol on one connection. `A` is the application state shared by all sessions of the
/// process (the controller, a stream table...), handed in on every call.
///
/// Every method runs inside `catch_unwind`: a panic closes this connection only, and is
/// logged with the peer address.
pub trait Session<A> {
    /// Bytes arrived: [`Io::input`] holds all unconsumed input. Consume what was parsed with
    /// [`Io::consume`]; what stays is kept for the next call (a partial message).
    fn on_read(&mut self, app: &mut A, io: &mut Io<'_>);
    /// The timer set with [`Io::set_timer`] expired.
    fn on_timer(&mut self, _app: &mut A, _io: &mut Io<'_>) {}
    /// Someone asked to wake this connection ([`crate::Ctl::wake`], [`crate::Remote::wake`]).
    fn on_wake(&mut self, _app: &mut A, _io: &mut Io<'_>) {}
    /// The output queue became empty after holding data (backpressure relief: produce more).
    fn on_drained(&mut self, _app: &mut A, _io: &mut Io<'_>) {}
    /// The connection is gone (peer closed, timeout, cut, or the session closed it).
    fn on_close(&mut self, _app: &mut A, _id: ConnId, _peer: Peer) {}
}

/// Per-connection state the runtime keeps apart from the socket.
#[derive(Default)]
pub(crate) struct ConnState {
    pub input: Vec<u8>,
    pub out: OutQueue,
    pub timer: Option<Instant>,
    /// Close once the output is written.
    pub closing: bool,
    /// Stop reading (the session waits for something else).
    pub read_paused: bool,
    /// Call `on_drained` once the output queue is empty, even if it never held data after a
    /// flush ([`Io::notify_drained`]).
    pub want_drained: bool,
}

/// What a session sees of its connection during one call.
pub struct Io<'a> {
    pub(crate) st: &'a mut ConnState,
    pub(crate) now: Instant,
    pub(crate) id: ConnId,
    pub(crate) peer: Peer,
    pub(crate) listener: ListenerId,
}

impl Io<'_> {
    /// The current time (real in the runtime, simulated in a [`Harness`]).
    pub fn now(&self) -> Instant {
        self.now
    }

    /// This connection.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// The remote end.
    pub fn peer(&self) -> Peer {
        self.peer
    }

    /// The listener the connection came in on.
    pub fn listener(&self) -> ListenerId {
        self.listener
    }

    /// Unconsumed input.
    pub fn input(&self) -> &[u8] {
        &self.st.input
    }

    /// Drops the first `n` input bytes (parsed).
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.st.input.len());
        self.st.input.drain(..n);
    }

    /// Drops all input.
    pub fn clear_input(&mut self) {
        self.st.input.clear();
    }

    /// Queues bytes out (copied).
    pub fn write(&mut self, b: &[u8]) {
        self.st.out.push(Bytes::copy_from_slice(b));
    }

    /// Queues a shared chunk out (not copied).
    pub fn send(&mut self, b: Bytes) {
        self.st.out.push(b);
    }

    /// Queues a file range out, sent with `sendfile(2)` where the stream allows it (not copied).
    pub fn send_file(&mut self, f: crate::file::FileRange) {
        self.st.out.push_file(f);
    }

    /// The connection's output queue.
    pub fn out(&mut self) -> &mut OutQueue {
        &mut self.st.out
    }

    /// Asks for [`Session::on_drained`] once everything queued so far is written, even when
    /// the first write takes it all (a body produced step by step, a file range).
    pub fn notify_drained(&mut self) {
        self.st.want_drained = true;
    }

    /// Bytes queued and not yet written (for backpressure decisions).
    pub fn backlog(&self) -> usize {
        self.st.out.len()
    }

    /// Closes the connection once queued output is written; no more input is read.
    pub fn close(&mut self) {
        self.st.closing = true;
    }

    /// Stops (true) or resumes (false) reading input, e.g. while waiting for an answer.
    pub fn pause_reading(&mut self, paused: bool) {
        self.st.read_paused = paused;
    }

    /// Calls [`Session::on_timer`] at `at` (replaces an earlier timer); None cancels.
    pub fn set_timer(&mut self, at: Option<Instant>) {
        self.st.timer = at;
    }
}

/// Drives one session without sockets: feed bytes and advance simulated time, read what it wrote.
pub struct Harness<S> {
    /// The session under test.
    pub session: S,
    st: ConnState,
    /// The peer the session is told about.
    pub peer: Peer,
}

impl<S> Harness<S> {
    /// A harness around `session`, as if connected from `peer`.
    pub fn new(session: S, peer: Peer) -> Harness<S> {
        Harness {
            session,
            st: ConnState::default(),
            peer,
        }
    }

    fn io(&mut self, now: Instant) -> (&mut S, Io<'_>) {
        (
            &mut self.session,
            Io {
                st: &mut self.st,
                now,
                id: ConnId(0),
                peer: self.peer,
                listener: ListenerId(0),
            },
        )
    }

    /// Feeds bytes at time `now` and returns what the session wrote.
    pub fn feed<A>(&mut self, app: &mut A, bytes: &[u8], now: Instant) -> Vec<u8>
    where
        S: Session<A>,
    {
        self.st.input.extend_from_slice(bytes);
        let (s, mut io) = self.io(now);
        s.on_read(app, &mut io);
        self.st.out.take_all()
    }

    /// Advances simulated time to `now`: fires the timer if due, returns what was written.
    pub fn advance<A>(&mut self, app: &mut A, now: Instant) -> Vec<u8>
    where
        S: Session<A>,
    {
        if self.st.timer.is_some_and(|t| t <= now) {
            self.st.timer = None;
            let (s, mut io) = self.io(now);
            s.on_timer(app, &mut io);
        }
        self.st.out.take_all()
    }

    /// Wakes the session at time `now` (as [`crate::Remote::wake`] would), returns what it wrote.
    pub fn wake<A>(&mut self, app: &mut A, now: Instant) -> Vec<u8>
    where
        S: Session<A>,
    {
        let (s, mut io) = self.io(now);
        s.on_wake(app, &mut io);
        self.st.out.take_all()
    }

    /// The timer the session has set.
    pub fn timer(&self) -> Option<Instant> {
        self.st.timer
    }

    /// The session asked to close.
    pub fn closing(&self) -> bool {
        self.st.closing
    }

    /// Unconsumed input.
    pub fn input(&self) -> &[u8] {
        &self.st.input
    }
}
