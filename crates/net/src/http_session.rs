//! HTTP/1.1 as a sans-IO session on the connector runtime (`mist_connector`).
//!
//! The runtime owns the sockets, the output queues, the caps and the panic fences; this module
//! owns the HTTP framing of every connection ([`Conn`]: request parsing, HEAD, single `Range`,
//! keep-alive, chunked or close-delimited live bodies, pulled bodies, file bodies) and hands
//! complete requests to the application's [`Handler`].
//!
//! A handler answers any connection at any time (a pending request answered when its stream
//! starts, one muxed chunk queued on every viewer), while the runtime lets a session touch only
//! its own connection during its call. The [`Io`] handed to the handler therefore writes through
//! a sink: during a session call the session's own queue, or a staging queue for the other
//! connections, moved onto theirs at the next application turn (in order); during the turn
//! ([`Handler::tick`], [`Handler::wake`]) the runtime's queues directly ([`mist_connector::Ctl`]),
//! where fan-out writes wait for the merge interval.

use crate::body::{
    common_headers, find, parse_range, standard_head, Body, FileBody, Unsatisfiable, BODY_LOW,
    BODY_STEP,
};
use crate::config::{ServerConfig, MERGE_BYTES};
use crate::http::{self, HttpError, Limits as HttpLimits, Request, Response};
use bytes::Bytes;
use mist_connector::{self as rt, App, Ctl, FileRange, Flow, ListenerId, OutQueue, Peer};
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Identifies a connection for the lifetime of the server (the runtime's connection id).
pub type ConnId = usize;

/// What the application does with requests.
pub trait Handler {
    /// A complete request arrived. Answer now or later through `io` (the connection handles no
    /// further request until then).
    fn request(&mut self, io: &mut Io, id: ConnId, req: Request);
    /// A connection was closed (by the peer, a timeout, a backlog overflow or the server).
    fn closed(&mut self, io: &mut Io, id: ConnId);
    /// The waker returned by the server's `waker()` was woken.
    fn wake(&mut self, _io: &mut Io) {}
    /// Called every [`ServerConfig::tick`].
    fn tick(&mut self, _io: &mut Io) {}
    /// A live body's queued output was written: a sender that paces itself (a VoD file sent as
    /// fast as the viewer reads) can send more.
    fn drained(&mut self, _io: &mut Io, _id: ConnId) {}
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the next request.
    Reading,
    /// A request was handed to the handler; no answer yet.
    Pending,
    /// A live body is being sent.
    Streaming { chunked: bool },
    /// The answer is queued; the runtime closes once it is written.
    Closing,
    /// A [`Body`] is being sent; afterwards keep-alive (`true`) or close.
    Body { keep: bool },
}

struct BodyState {
    body: Box<dyn Body>,
    pos: u64,
    end: u64,
    /// A file body's range is queued (sent by the runtime with sendfile).
    file_queued: bool,
}

/// The HTTP state of one connection.
struct Conn {
    peer: SocketAddr,
    rbuf: Vec<u8>,
    state: State,
    head_only: bool,
    keep_alive: bool,
    http10: bool,
    range: Option<String>,
    body: Option<BodyState>,
    /// Last time a request arrived or an answer finished (idle timer).
    last_active: Instant,
    /// When the current partial request started (request timer).
    req_start: Option<Instant>,
}

/// What the handler queued on a connection while another connection's session ran.
#[derive(Default)]
struct Staged {
    out: OutQueue,
    flush: bool,
    close: bool,
    wake: bool,
    drained: bool,
}

/// The HTTP state of every connection.
pub(crate) struct HttpState {
    conns: mist_connector::IdMap<ConnId, Conn>,
    pub(crate) cfg: ServerConfig,
    /// Fan-out connections with output waiting for the merge interval, and when it ends.
    merged: Vec<ConnId>,
    next_merge: Instant,
    now: Instant,
}

/// Where the handler's output goes.
trait Sink {
    /// The output queue of `id` (None: gone).
    fn out(&mut self, id: ConnId) -> Option<&mut OutQueue>;
    /// Write `id` soon.
    fn flush(&mut self, id: ConnId);
    /// Close `id` once its queued output is written.
    fn close(&mut self, id: ConnId);
    /// Run `id`'s session (pipelined requests, body production).
    fn wake(&mut self, id: ConnId);
    /// The connection whose session runs (None: the application turn, or a close).
    fn own(&self) -> Option<ConnId>;
    /// Ask for `on_drained` of `id` once its queue is written.
    fn notify_drained(&mut self, id: ConnId);
    /// The application turn: fan-out writes may wait for the merge interval.
    fn in_turn(&self) -> bool;
}

struct SessionSink<'s, 'i> {
    own: Option<&'s mut rt::Io<'i>>,
    staged: &'s mut mist_connector::IdMap<ConnId, Staged>,
}

impl Sink for SessionSink<'_, '_> {
    fn out(&mut self, id: ConnId) -> Option<&mut OutQueue> {
        match &mut self.own {
            Some(io) if io.id().0 == id => Some(io.out()),
            _ => Some(&mut self.staged.entry(id).or_default().out),
        }
    }
    fn flush(&mut self, id: ConnId) {
        if self.own() != Some(id) {
            self.staged.entry(id).or_default().flush = true;
        }
    }
    fn close(&mut self, id: ConnId) {
        match &mut self.own {
            Some(io) if io.id().0 == id => io.close(),
            _ => self.staged.entry(id).or_default().close = true,
        }
    }
    fn wake(&mut self, id: ConnId) {
        if self.own() != Some(id) {
            self.staged.entry(id).or_default().wake = true;
        }
    }
    fn own(&self) -> Option<ConnId> {
        self.own.as_ref().map(|io| io.id().0)
    }
    fn notify_drained(&mut self, id: ConnId) {
        match &mut self.own {
            Some(io) if io.id().0 == id => io.notify_drained(),
            _ => self.staged.entry(id).or_default().drained = true,
        }
    }
    fn in_turn(&self) -> bool {
        false
    }
}

struct TurnSink<'s, 'c, A: App>(&'s mut Ctl<'c, A>);

impl<A: App> Sink for TurnSink<'_, '_, A> {
    fn out(&mut self, id: ConnId) -> Option<&mut OutQueue> {
        self.0.out(rt::ConnId(id))
    }
    fn flush(&mut self, id: ConnId) {
        self.0.flush(rt::ConnId(id));
    }
    fn close(&mut self, id: ConnId) {
        self.0.close(rt::ConnId(id));
    }
    fn wake(&mut self, id: ConnId) {
        self.0.wake(rt::ConnId(id));
    }
    fn own(&self) -> Option<ConnId> {
        None
    }
    fn notify_drained(&mut self, id: ConnId) {
        self.0.notify_drained(rt::ConnId(id));
    }
    fn in_turn(&self) -> bool {
        true
    }
}

/// The connections, for the handler to answer on.
pub struct Io<'a> {
    st: &'a mut HttpState,
    sink: &'a mut dyn Sink,
}

impl Io<'_> {
    /// The server's configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.st.cfg
    }

    /// Whether the connection is still open.
    pub fn is_open(&self, id: ConnId) -> bool {
        self.st.conns.contains_key(&id)
    }

    /// The connection's remote address.
    pub fn peer(&self, id: ConnId) -> Option<SocketAddr> {
        self.st.conns.get(&id).map(|c| c.peer)
    }

    /// Bytes queued for the connection and not yet written (for the connection whose session
    /// runs and during [`Handler::tick`]/[`Handler::wake`]: exact; otherwise what this turn
    /// queued).
    pub fn backlog(&mut self, id: ConnId) -> usize {
        if !self.is_open(id) {
            return 0;
        }
        self.sink.out(id).map_or(0, |q| q.len())
    }

    /// Number of open connections.
    pub fn len(&self) -> usize {
        self.st.conns.len()
    }

    /// No connection is open.
    pub fn is_empty(&self) -> bool {
        self.st.conns.is_empty()
    }

    fn push(&mut self, id: ConnId, b: Bytes) {
        if let Some(q) = self.sink.out(id) {
            q.push(b);
        }
    }

    /// Answers the pending request with a complete body. HEAD gets the head only; a single
    /// `Range` on a 200 answer gets 206 (or 416). `resp.body` is ignored in favour of `body`.
    pub fn respond(&mut self, id: ConnId, resp: Response, body: Bytes) {
        let Some(c) = self.st.conns.get_mut(&id) else {
            return;
        };
        if c.state != State::Pending {
            return;
        }
        let mut resp = common_headers(resp);
        let keep = resp.keep_alive && c.keep_alive;
        resp.keep_alive = keep;
        let mut body = body;
        if resp.status == 200 {
            resp = resp.header("Accept-Ranges", "bytes");
            if let Some(r) = c.range.take() {
                match parse_range(&r, body.len()) {
                    Ok(Some((s, e))) => {
                        resp.status = 206;
                        resp =
                            resp.header("Content-Range", &format!("bytes {s}-{e}/{}", body.len()));
                        body = body.slice(s..=e);
                    }
                    Ok(None) => {}
                    Err(Unsatisfiable) => {
                        let len = body.len();
                        resp.status = 416;
                        resp = resp.header("Content-Range", &format!("bytes */{len}"));
                        body = Bytes::new();
                    }
                }
            }
        }
        // Content-Length comes from `resp.body`: give it a body of the right length cheaply.
        let mut head = resp;
        head.body = Vec::new();
        let mut h = head.head_bytes();
        let cl = format!("Content-Length: {}\r\n", body.len());
        if let Some(p) = find(&h, b"Content-Length: 0\r\n") {
            h.splice(p..p + 19, cl.bytes());
        }
        let head_only = c.head_only;
        self.push(id, Bytes::from(h));
        if !head_only && !body.is_empty() {
            self.push(id, body);
        }
        self.after_answer(id, keep);
    }

    /// Answers the pending request with a [`Body`] of known length, sent as the socket drains
    /// (`Content-Length`, `Accept-Ranges`; a single `Range` gets 206 with exactly those bytes,
    /// or 416; HEAD gets the head only). The connection handles no further request until the
    /// body is sent.
    pub fn respond_body(&mut self, id: ConnId, resp: Response, body: Box<dyn Body>) {
        let Some(c) = self.st.conns.get_mut(&id) else {
            return;
        };
        if c.state != State::Pending {
            return;
        }
        let mut resp = resp;
        let keep = resp.keep_alive && c.keep_alive;
        resp.keep_alive = keep;
        let total = body.len();
        let (mut start, mut end) = (0u64, total);
        if let Some(r) = c.range.take() {
            match parse_range(&r, usize::try_from(total).unwrap_or(usize::MAX)) {
                Ok(Some((s, e))) => {
                    resp.status = 206;
                    resp = resp.header("Content-Range", &format!("bytes {s}-{e}/{total}"));
                    (start, end) = (s as u64, e as u64 + 1);
                }
                Ok(None) => {}
                Err(Unsatisfiable) => {
                    resp.status = 416;
                    resp = resp.header("Content-Range", &format!("bytes */{total}"));
                    (start, end) = (0, 0);
                }
            }
        }
        let head_only = c.head_only;
        self.push(id, Bytes::from(standard_head(resp, start, end)));
        if head_only || start >= end {
            self.after_answer(id, keep);
            return;
        }
        self.start_body(id, body, start, end, keep);
    }

    fn start_body(&mut self, id: ConnId, body: Box<dyn Body>, pos: u64, end: u64, keep: bool) {
        let Some(c) = self.st.conns.get_mut(&id) else {
            return;
        };
        c.state = State::Body { keep };
        c.body = Some(BodyState {
            body,
            pos,
            end,
            file_queued: false,
        });
        if self.sink.own() == Some(id) {
            self.pump(id);
        } else {
            self.sink.flush(id);
            self.sink.wake(id);
        }
    }

    /// Answers with a [`FileBody`] made by [`FileBody::answer`]:
    /// a plain GET on a keep-alive connection gets the stored head and body in one
    /// `sendfile(2)`; anything else (HEAD, Range, closing connections) is answered by
    /// [`respond_body`](Io::respond_body) with the stored answer (a body without one gets a
    /// bare 200).
    pub fn respond_file(&mut self, id: ConnId, file: FileBody) {
        let Some(c) = self.st.conns.get_mut(&id) else {
            return;
        };
        if c.state != State::Pending {
            return;
        }
        let plain = !c.head_only && c.range.is_none() && c.keep_alive;
        match (plain, file.whole()) {
            (true, Some(whole)) => {
                let end = whole.len();
                self.start_body(id, Box::new(whole), 0, end, true);
            }
            _ => {
                let resp = file.stored_response().unwrap_or_else(|| Response::new(200));
                self.respond_body(id, resp, Box::new(file))
            }
        }
    }

    /// Shortcut: a plain-text answer.
    pub fn respond_text(&mut self, id: ConnId, status: u16, text: &str) {
        let close = status >= 400 && status != 404 && status != 416;
        let r = Response::new(status)
            .header("Content-Type", "text/plain; charset=utf-8")
            .keep_alive(!close);
        self.respond(id, r, Bytes::from(format!("{text}\n")));
    }

    /// Starts a live body: chunked for HTTP/1.1, close-delimited for HTTP/1.0. For HEAD the head
    /// is sent and the answer ends at once (returns false: send nothing).
    pub fn start_stream(&mut self, id: ConnId, status: u16, headers: &[(&str, &str)]) -> bool {
        let Some(c) = self.st.conns.get_mut(&id) else {
            return false;
        };
        if c.state != State::Pending {
            return false;
        }
        let chunked = !c.http10;
        let mut h = format!("HTTP/1.1 {status} {}\r\n", http::reason(status));
        for (k, v) in headers {
            h.push_str(&format!("{k}: {}\r\n", v.replace(['\r', '\n'], " ")));
        }
        h.push_str("Access-Control-Allow-Origin: *\r\nCache-Control: no-cache\r\n");
        h.push_str(concat!(
            "Server: mist-rs/",
            env!("CARGO_PKG_VERSION"),
            "\r\n"
        ));
        if c.head_only {
            let keep = c.keep_alive;
            h.push_str(if keep {
                "Connection: keep-alive\r\n\r\n"
            } else {
                "Connection: close\r\n\r\n"
            });
            self.push(id, Bytes::from(h));
            self.after_answer(id, keep);
            return false;
        }
        if chunked {
            h.push_str("Transfer-Encoding: chunked\r\n");
            h.push_str(if c.keep_alive {
                "Connection: keep-alive\r\n\r\n"
            } else {
                "Connection: close\r\n\r\n"
            });
        } else {
            c.keep_alive = false;
            h.push_str("Connection: close\r\n\r\n");
        }
        c.state = State::Streaming { chunked };
        self.push(id, Bytes::from(h));
        self.sink.flush(id);
        true
    }

    /// Queues body bytes of a live answer. Returns false when the connection is gone or not
    /// streaming. (A client whose backlog grows over [`ServerConfig::max_backlog`] is cut by
    /// the runtime when its queue is written; [`Handler::closed`] follows.)
    pub fn send(&mut self, id: ConnId, chunks: &[Bytes]) -> bool {
        let Some(c) = self.st.conns.get(&id) else {
            return false;
        };
        let State::Streaming { chunked } = c.state else {
            return false;
        };
        let n: usize = chunks.iter().map(Bytes::len).sum();
        if n == 0 {
            return true;
        }
        let Some(q) = self.sink.out(id) else {
            return false;
        };
        if chunked {
            q.push(Bytes::from(format!("{n:x}\r\n")));
        }
        for b in chunks {
            q.push(b.clone());
        }
        if chunked {
            q.push(Bytes::from_static(b"\r\n"));
        }
        self.sink.flush(id);
        true
    }

    /// [`Io::send`] to many connections: the chunk framing is built once and shared, like the
    /// body bytes. Connections that are gone are removed from `ids`. During the application
    /// turn a connection is written at most every [`ServerConfig::merge`] unless
    /// [`MERGE_BYTES`] are queued for it.
    pub fn send_all(&mut self, ids: &mut Vec<ConnId>, chunks: &[Bytes]) {
        let n: usize = chunks.iter().map(Bytes::len).sum();
        if n == 0 {
            return;
        }
        // One shared buffer per frame and framing, built on first use: each viewer queues one
        // item per frame (a chunk header, the pieces and a trailer would be several), so a
        // merged write stays a few iovecs and a viewer's queue never outgrows its idle size.
        let mut framed: Option<Bytes> = None;
        let mut plain: Option<Bytes> = None;
        let merge = self.st.cfg.merge;
        let in_turn = self.sink.in_turn();
        let now = self.st.now;
        ids.retain(|&id| {
            let Some(c) = self.st.conns.get(&id) else {
                return false;
            };
            let State::Streaming { chunked } = c.state else {
                return false;
            };
            let Some(q) = self.sink.out(id) else {
                return false;
            };
            let b = if chunked {
                framed.get_or_insert_with(|| joined(chunks, Some(n)))
            } else {
                plain.get_or_insert_with(|| joined(chunks, None))
            };
            q.push(b.clone());
            if !in_turn || merge.is_zero() || q.len() >= MERGE_BYTES {
                self.sink.flush(id);
            } else {
                if self.st.merged.is_empty() {
                    self.st.next_merge = now + merge;
                }
                self.st.merged.push(id);
            }
            true
        });
    }

    /// Asks for [`Handler::drained`] of a live answer once what is queued on it is written,
    /// even if the first write takes it all: a sender that paces itself (a VoD file sent as fast
    /// as the viewer reads) calls this after each batch.
    pub fn notify_drained(&mut self, id: ConnId) {
        if self
            .st
            .conns
            .get(&id)
            .is_some_and(|c| matches!(c.state, State::Streaming { .. }))
        {
            self.sink.notify_drained(id);
        }
    }

    /// Ends a live answer cleanly (chunked terminator, or close for close-delimited bodies).
    pub fn end_stream(&mut self, id: ConnId) {
        let Some(c) = self.st.conns.get(&id) else {
            return;
        };
        let State::Streaming { chunked } = c.state else {
            return;
        };
        let keep = chunked && c.keep_alive;
        if chunked {
            self.push(id, Bytes::from_static(b"0\r\n\r\n"));
        }
        self.after_answer(id, keep);
    }

    /// Closes a connection now (queued output is discarded).
    pub fn close(&mut self, id: ConnId) {
        let Some(c) = self.st.conns.get_mut(&id) else {
            return;
        };
        c.state = State::Closing;
        c.body = None;
        if let Some(q) = self.sink.out(id) {
            q.clear();
        }
        self.sink.close(id);
    }

    /// The answer of the current request is queued: go on with the next request (keep-alive)
    /// or close once it is written.
    fn after_answer(&mut self, id: ConnId, keep: bool) {
        let now = self.st.now;
        let Some(c) = self.st.conns.get_mut(&id) else {
            return;
        };
        c.last_active = now;
        c.range = None;
        c.body = None;
        if keep {
            c.state = State::Reading;
            // Pipelined requests of another connection are handled by its session.
            self.sink.wake(id);
        } else {
            c.state = State::Closing;
            self.sink.close(id);
        }
        self.sink.flush(id);
    }

    /// Produces more of the own connection's [`Body`]: a file range for the runtime to send,
    /// or pulled bytes up to [`BODY_LOW`] queued.
    fn pump(&mut self, id: ConnId) {
        debug_assert_eq!(self.sink.own(), Some(id));
        let Some(c) = self.st.conns.get_mut(&id) else {
            return;
        };
        let State::Body { keep } = c.state else {
            return;
        };
        let Some(mut b) = c.body.take() else {
            return;
        };
        let Some(q) = self.sink.out(id) else {
            return;
        };
        if let Some(f) = b.body.file() {
            if b.file_queued {
                // Called when the queue drained: the range is sent.
                if q.is_empty() {
                    return self.after_answer(id, keep);
                }
            } else {
                q.push_file(FileRange {
                    src: Arc::new(f.clone()),
                    pos: b.pos,
                    end: b.end,
                });
                b.file_queued = true;
            }
            if let Some(c) = self.st.conns.get_mut(&id) {
                c.body = Some(b);
            }
            self.sink.notify_drained(id);
            return;
        }
        let mut failed = false;
        while q.len() < BODY_LOW && b.pos < b.end {
            let want = (b.end - b.pos).min(BODY_STEP as u64) as usize;
            let mut n = 0usize;
            for ch in b.body.read(b.pos, want) {
                if n >= want {
                    break;
                }
                let ch = if n + ch.len() > want {
                    ch.slice(..want - n)
                } else {
                    ch
                };
                n += ch.len();
                q.push(ch);
            }
            if n == 0 {
                failed = true;
                break;
            }
            b.pos += n as u64;
        }
        if failed {
            // The body cannot give what it promised: close after what is queued.
            return self.after_answer(id, false);
        }
        if b.pos >= b.end {
            return self.after_answer(id, keep);
        }
        if let Some(c) = self.st.conns.get_mut(&id) {
            c.body = Some(b);
        }
        self.sink.notify_drained(id);
    }

    /// Answers a framing error and closes.
    fn fail(&mut self, id: ConnId, status: u16, text: &str) {
        let Some(c) = self.st.conns.get_mut(&id) else {
            return;
        };
        c.state = State::Pending;
        c.keep_alive = false;
        c.head_only = false;
        c.range = None;
        c.rbuf.clear();
        let r = Response::new(status)
            .header("Content-Type", "text/plain; charset=utf-8")
            .keep_alive(false);
        self.respond(id, r, Bytes::from(format!("{text}\n")));
    }
}

/// The application of an HTTP `Server`: the HTTP state of every connection and the
/// handler.
pub(crate) struct HttpApp<H> {
    pub(crate) h: H,
    pub(crate) st: HttpState,
    staged: mist_connector::IdMap<ConnId, Staged>,
    next_tick: Instant,
    stop: Arc<AtomicBool>,
}

impl<H: Handler> HttpApp<H> {
    pub(crate) fn new(h: H, cfg: ServerConfig, stop: Arc<AtomicBool>) -> HttpApp<H> {
        let now = Instant::now();
        HttpApp {
            h,
            next_tick: now + cfg.tick,
            st: HttpState {
                conns: mist_connector::IdMap::default(),
                cfg,
                merged: Vec::new(),
                next_merge: now,
                now,
            },
            staged: mist_connector::IdMap::default(),
            stop,
        }
    }

    /// Runs `f` with an [`Io`] whose own connection is `cio`'s (after moving what other
    /// sessions staged for it onto its queue).
    fn in_session<R>(
        &mut self,
        cio: &mut rt::Io<'_>,
        f: impl FnOnce(&mut H, &mut Io<'_>) -> R,
    ) -> R {
        let id = cio.id().0;
        self.st.now = cio.now();
        if let Some(mut s) = self.staged.remove(&id) {
            cio.out().append(&mut s.out);
            if s.close {
                cio.close();
            }
        }
        let mut sink = SessionSink {
            own: Some(cio),
            staged: &mut self.staged,
        };
        let mut io = Io {
            st: &mut self.st,
            sink: &mut sink,
        };
        f(&mut self.h, &mut io)
    }

    /// Parses and dispatches the own connection's requests while it is reading.
    fn process(h: &mut H, io: &mut Io<'_>, id: ConnId) {
        loop {
            let cfg = &io.st.cfg;
            let (max_head, max_body, max_line) = (cfg.max_head, cfg.max_body, cfg.max_line);
            let now = io.st.now;
            let Some(c) = io.st.conns.get_mut(&id) else {
                return;
            };
            if c.state != State::Reading {
                return;
            }
            if c.rbuf.is_empty() {
                c.req_start = None;
                return;
            }
            let limits = HttpLimits {
                max_head,
                max_headers: 100,
                max_body,
            };
            // A request line longer than the bound: 414 (before the head limit gives 431).
            let line_end = c.rbuf.iter().position(|&b| b == b'\n');
            if line_end.map_or(c.rbuf.len(), |p| p) > max_line {
                io.fail(id, 414, "URI too long");
                return;
            }
            match http::parse_request(&c.rbuf, &limits) {
                Ok(None) => {
                    c.req_start.get_or_insert(now);
                    return;
                }
                Ok(Some((req, used))) => {
                    c.rbuf.drain(..used);
                    c.req_start = (!c.rbuf.is_empty()).then_some(now);
                    c.head_only = req.method == "HEAD";
                    c.keep_alive = req.keep_alive();
                    c.http10 = req.version == 0;
                    c.range = req.header("range").map(str::to_owned);
                    c.state = State::Pending;
                    c.last_active = now;
                    if req.method != "GET" && req.method != "HEAD" {
                        if req.method == "OPTIONS" {
                            let r = Response::new(204)
                                .header("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
                                .header("Access-Control-Allow-Headers", "*");
                            io.respond(id, r, Bytes::new());
                        } else {
                            let r = Response::new(405)
                                .header("Allow", "GET, HEAD, OPTIONS")
                                .header("Content-Type", "text/plain");
                            io.respond(id, r, Bytes::from_static(b"method not allowed\n"));
                        }
                        continue;
                    }
                    // A bug in the application must cost this connection only.
                    let r = catch_unwind(AssertUnwindSafe(|| h.request(io, id, req)));
                    if let Err(p) = r {
                        let peer = io.peer(id).map(|p| p.to_string()).unwrap_or_default();
                        mist_core::error!(
                            "HTTP request handler panicked for {peer}: {}; connection closed",
                            panic_text(&p)
                        );
                        if io
                            .st
                            .conns
                            .get(&id)
                            .is_some_and(|c| c.state == State::Pending)
                        {
                            io.fail(id, 500, "internal error");
                        } else {
                            io.close(id);
                        }
                        return;
                    }
                    // Answered at once (keep-alive)? Then go on with pipelined requests.
                }
                Err(e) => {
                    let (status, text) = match &e {
                        HttpError::HeadTooLarge => {
                            (431, "request header fields too large".to_string())
                        }
                        HttpError::BodyTooLarge => (413, "request body too large".to_string()),
                        HttpError::UnsupportedEncoding => {
                            (501, "transfer encoding not supported".to_string())
                        }
                        HttpError::Malformed(m) => (400, format!("bad request: {m}")),
                    };
                    io.fail(id, status, &text);
                    return;
                }
            }
        }
    }

    /// After a session call: reading paused while the request buffer is full; the timer of the
    /// idle keep-alive or the partial request.
    fn settle(&mut self, cio: &mut rt::Io<'_>) {
        let id = cio.id().0;
        let cfg = &self.st.cfg;
        let Some(c) = self.st.conns.get(&id) else {
            return;
        };
        let cap = cfg.max_head + cfg.max_body + 4096;
        cio.pause_reading(c.rbuf.len() >= cap && c.state != State::Closing);
        let at = match c.state {
            State::Reading => Some(match c.req_start {
                Some(t) if !c.rbuf.is_empty() => t + cfg.request_timeout,
                _ => c.last_active + cfg.idle_timeout,
            }),
            _ => None,
        };
        cio.set_timer(at);
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

/// One HTTP connection's session: its state lives in the application ([`HttpApp`]), keyed by
/// the runtime's connection id, so that the handler can answer it from anywhere.
pub(crate) struct HttpSession {
    peer: SocketAddr,
    registered: bool,
}

impl HttpSession {
    fn register<H>(&mut self, app: &mut HttpApp<H>, cio: &rt::Io<'_>) {
        if !self.registered {
            self.registered = true;
            app.st.conns.insert(
                cio.id().0,
                Conn {
                    peer: self.peer,
                    rbuf: Vec::new(),
                    state: State::Reading,
                    head_only: false,
                    keep_alive: true,
                    http10: false,
                    range: None,
                    body: None,
                    last_active: cio.now(),
                    req_start: None,
                },
            );
        }
    }
}

impl<H: Handler> rt::Session<HttpApp<H>> for HttpSession {
    fn on_read(&mut self, app: &mut HttpApp<H>, cio: &mut rt::Io<'_>) {
        self.register(app, cio);
        let id = cio.id().0;
        if let Some(c) = app.st.conns.get_mut(&id) {
            if c.state != State::Closing {
                if c.rbuf.is_empty() {
                    c.req_start = Some(cio.now());
                }
                c.rbuf.extend_from_slice(cio.input());
            }
        }
        cio.clear_input();
        app.in_session(cio, |h, io| HttpApp::process(h, io, id));
        app.settle(cio);
    }

    fn on_timer(&mut self, app: &mut HttpApp<H>, cio: &mut rt::Io<'_>) {
        self.register(app, cio);
        let id = cio.id().0;
        let now = cio.now();
        let cfg = &app.st.cfg;
        let expired = app.st.conns.get(&id).is_some_and(|c| {
            c.state == State::Reading
                && match c.req_start {
                    Some(t) if !c.rbuf.is_empty() => now >= t + cfg.request_timeout,
                    _ => now >= c.last_active + cfg.idle_timeout,
                }
        });
        if expired {
            app.in_session(cio, |_, io| io.close(id));
        }
        app.settle(cio);
    }

    fn on_wake(&mut self, app: &mut HttpApp<H>, cio: &mut rt::Io<'_>) {
        self.register(app, cio);
        let id = cio.id().0;
        app.in_session(cio, |h, io| {
            let body = io
                .st
                .conns
                .get(&id)
                .is_some_and(|c| c.body.as_ref().is_some_and(|b| !b.file_queued));
            if body {
                io.pump(id);
            }
            HttpApp::process(h, io, id);
        });
        app.settle(cio);
    }

    fn on_drained(&mut self, app: &mut HttpApp<H>, cio: &mut rt::Io<'_>) {
        self.register(app, cio);
        let id = cio.id().0;
        app.in_session(cio, |h, io| {
            match io.st.conns.get(&id).map(|c| c.state) {
                Some(State::Body { .. }) => io.pump(id),
                Some(State::Streaming { .. }) => h.drained(io, id),
                _ => {}
            }
            HttpApp::process(h, io, id);
        });
        app.settle(cio);
    }

    fn on_close(&mut self, app: &mut HttpApp<H>, id: rt::ConnId, _peer: Peer) {
        let id = id.0;
        app.staged.remove(&id);
        if app.st.conns.remove(&id).is_none() {
            return;
        }
        let mut sink = SessionSink {
            own: None,
            staged: &mut app.staged,
        };
        let mut io = Io {
            st: &mut app.st,
            sink: &mut sink,
        };
        app.h.closed(&mut io, id);
    }
}

impl<H: Handler> App for HttpApp<H> {
    type Session = HttpSession;

    fn accept(&mut self, _l: ListenerId, peer: Peer, _now: Instant) -> Option<HttpSession> {
        let peer = match peer {
            Peer::Tcp(a) => a,
            Peer::Unix => SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        Some(HttpSession {
            peer,
            registered: false,
        })
    }

    fn turn(&mut self, ctl: &mut Ctl<'_, Self>, now: Instant) -> Flow {
        self.st.now = now;
        // What sessions queued on other connections, in order, before anything newer.
        for (id, mut s) in self.staged.drain() {
            let rid = rt::ConnId(id);
            if let Some(q) = ctl.out(rid) {
                q.append(&mut s.out);
            }
            if s.flush || s.close {
                ctl.flush(rid);
            }
            if s.close {
                ctl.close(rid);
            }
            if s.wake {
                ctl.wake(rid);
            }
            if s.drained {
                ctl.notify_drained(rid);
            }
        }
        let woken = ctl.woken();
        let tick = now >= self.next_tick;
        if woken || tick {
            let mut sink = TurnSink(ctl);
            let mut io = Io {
                st: &mut self.st,
                sink: &mut sink,
            };
            if woken {
                self.h.wake(&mut io);
            }
            if tick {
                self.next_tick = now + io.st.cfg.tick;
                self.h.tick(&mut io);
            }
        }
        if !self.st.merged.is_empty() && now >= self.st.next_merge {
            let mut ids = std::mem::take(&mut self.st.merged);
            ids.sort_unstable();
            ids.dedup();
            for &id in &ids {
                ctl.flush(rt::ConnId(id));
            }
            ids.clear();
            self.st.merged = ids;
        }
        if self.stop.load(Ordering::Relaxed) {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        if !self.staged.is_empty() {
            return Some(self.st.now);
        }
        let mut t = self.next_tick;
        if !self.st.merged.is_empty() {
            t = t.min(self.st.next_merge);
        }
        Some(t)
    }
}

/// `chunks` as one buffer; with `Some(n)` (their total length) framed as one HTTP/1.1 chunk. A
/// single unframed piece is shared as it is.
fn joined(chunks: &[Bytes], chunk_len: Option<usize>) -> Bytes {
    if chunk_len.is_none() && chunks.len() == 1 {
        return chunks[0].clone();
    }
    let n: usize = chunks.iter().map(Bytes::len).sum();
    let mut v = Vec::with_capacity(n + 20);
    if let Some(len) = chunk_len {
        v.extend_from_slice(format!("{len:x}\r\n").as_bytes());
    }
    for c in chunks {
        v.extend_from_slice(c);
    }
    if chunk_len.is_some() {
        v.extend_from_slice(b"\r\n");
    }
    Bytes::from(v)
}
