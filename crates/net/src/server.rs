//! An HTTP/1.1 server in one mio event loop, for outputs that serve many viewers.
//!
//! The [`Server`] owns the listener and the connections; an application implements [`Handler`]
//! and answers requests through [`Io`]:
//!
//! * [`Io::respond`]: a complete answer (static or generated body as one `Bytes`) with HEAD,
//!   single-range `Range` (206/416) and keep-alive handled here;
//! * [`Io::respond_body`]: a large body of known length produced on demand ([`Body`]: e.g. a
//!   progressive file made of headers and shared-memory payloads), pulled as the socket drains,
//!   with HEAD and single-range `Range` handled the same way;
//! * [`Io::start_stream`] + [`Io::send`] + [`Io::end_stream`]: a live body of unknown length,
//!   chunked for HTTP/1.1 clients and close-delimited for HTTP/1.0 ones;
//! * or nothing yet: the request stays pending (the connection reads no further request) until
//!   the handler answers later, e.g. when a stream becomes available.
//!
//! Bodies are queues of `bytes::Bytes` written with vectored writes, so bytes muxed once can be
//! queued on many connections without copies. Every connection is bounded: request head
//! ([`ServerConfig::max_head`], 431), request line ([`ServerConfig::max_line`], 414), unparsable
//! bytes (400, then close), bodies (413), `Transfer-Encoding` (501), idle keep-alive and
//! half-sent requests (timeouts), and the queued output ([`ServerConfig::max_backlog`]: a client
//! that does not read is dropped). Every answer carries `Access-Control-Allow-Origin: *`.

use crate::http::{self, HttpError, Limits, Request, Response};
use bytes::Bytes;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use mist_connector::OutQueue;
use std::collections::HashMap;
use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Identifies a connection for the lifetime of the server (ids are never reused).
pub type ConnId = usize;

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const FIRST_CONN: usize = 2;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Maximum request line plus headers (431 beyond).
    pub max_head: usize,
    /// Maximum request line (414 beyond).
    pub max_line: usize,
    /// Maximum request body (413 beyond).
    pub max_body: usize,
    /// Queued output per connection beyond which the client is dropped.
    pub max_backlog: usize,
    /// Keep-alive idle time between requests.
    pub idle_timeout: Duration,
    /// Time allowed to finish sending a request head/body once started.
    pub request_timeout: Duration,
    /// Time a connection with queued output may make no write progress.
    pub write_timeout: Duration,
    /// Maximum simultaneous connections (further ones are accepted and closed at once).
    pub max_conns: usize,
    /// How often [`Handler::tick`] runs.
    pub tick: Duration,
    /// Merged writes for fan-out ([`Io::send_all`]): a connection is written at most this often
    /// unless [`MERGE_BYTES`] are queued for it (zero: at once). Fewer, larger writes cost much less
    /// CPU per delivered byte, at the price of up to this much latency.
    pub merge: Duration,
}

/// Queued bytes at which a fan-out connection is written without waiting for the merge interval.
pub const MERGE_BYTES: usize = 256 << 10;

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_head: 16 * 1024,
            max_line: 8 * 1024,
            max_body: 64 * 1024,
            max_backlog: 8 << 20,
            idle_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
            max_conns: 10_000,
            tick: Duration::from_millis(100),
            merge: Duration::from_millis(100),
        }
    }
}

/// What the application does with requests.
pub trait Handler {
    /// A complete request arrived. Answer now or later through `io` (the connection handles no
    /// further request until then).
    fn request(&mut self, io: &mut Io, id: ConnId, req: Request);
    /// A connection was closed (by the peer, a timeout, a backlog overflow or the server).
    fn closed(&mut self, io: &mut Io, id: ConnId);
    /// The waker returned by [`Server::waker`] was woken.
    fn wake(&mut self, _io: &mut Io) {}
    /// Called every [`ServerConfig::tick`].
    fn tick(&mut self, _io: &mut Io) {}
    /// A live body's queued output fell below [`BODY_LOW`] after the socket took some of it:
    /// a sender that paces itself (a VoD file sent as fast as the viewer reads) can send more.
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
    /// The answer is queued; close once it is written.
    Closing,
    /// A [`Body`] is being sent; afterwards keep-alive (`true`) or close.
    Body { keep: bool },
}

/// A body of known length produced on demand ([`Io::respond_body`]): the server asks for the
/// next bytes whenever less than [`BODY_LOW`] bytes are queued, so a large answer never sits in
/// memory whole.
pub trait Body: Send {
    /// Total length in bytes.
    fn len(&self) -> u64;
    /// Whether the body is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Bytes from `offset` on, about `max` of them (more is cut off, fewer is fine; nothing
    /// before the end ends the answer and closes the connection).
    fn read(&mut self, offset: u64, max: usize) -> Vec<Bytes>;
    /// A body kept in a file is sent with `sendfile(2)` instead of [`read`](Body::read).
    fn file(&self) -> Option<&FileBody> {
        None
    }
}

/// A body kept in a file and sent with `sendfile(2)`: the kernel hands the file's pages to the
/// socket, with no copy through user space. Cheap to clone (the file is shared).
#[derive(Clone)]
pub struct FileBody {
    file: Arc<std::fs::File>,
    /// Bytes of the body (after the head, if any).
    len: u64,
    /// The answer whose head is stored in the file before the body (see [`FileBody::answer`]).
    head: Option<Arc<(Response, u64)>>,
}

impl FileBody {
    /// Copies `bytes` once into an anonymous in-memory file (`memfd_create`), to be sent to any
    /// number of sockets without further copies.
    pub fn from_bytes(name: &str, bytes: &[u8]) -> io::Result<FileBody> {
        let mut file = memfd(name)?;
        file.write_all(bytes)?;
        Ok(FileBody {
            file: Arc::new(file),
            len: bytes.len() as u64,
            head: None,
        })
    }

    /// Like [`from_bytes`](FileBody::from_bytes), with the whole keep-alive answer `resp` stored:
    /// its head before the body in the file. [`Io::respond_file`] then answers a plain GET with
    /// one `sendfile(2)` of head and body, and no per-request head to build or send.
    pub fn answer(name: &str, resp: Response, bytes: &[u8]) -> io::Result<FileBody> {
        // The stored head is only sent on keep-alive connections, so it must say so.
        let resp = resp.keep_alive(true);
        let head = standard_head(resp.clone(), 0, bytes.len() as u64);
        let mut file = memfd(name)?;
        file.write_all(&head)?;
        file.write_all(bytes)?;
        Ok(FileBody {
            file: Arc::new(file),
            len: bytes.len() as u64,
            head: Some(Arc::new((resp, head.len() as u64))),
        })
    }

    /// Sends body bytes `pos..end` to `sock` until done or the socket is full. Returns the
    /// bytes sent (0 with `WouldBlock` pending is an `Err`).
    fn send_to(&self, sock: &TcpStream, pos: u64, end: u64) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        let skip = self.head.as_ref().map_or(0, |h| h.1);
        let mut off = (pos + skip) as libc::off_t;
        let count = (end - pos).min(1 << 30) as usize;
        // SAFETY: both descriptors are open for the duration of the call (the socket is borrowed,
        // the file is held by `self`); `off` is a valid off_t the kernel updates.
        let n = unsafe { libc::sendfile(sock.as_raw_fd(), self.file.as_raw_fd(), &mut off, count) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// The stored head and body as one body (for [`Io::respond_file`]).
    fn whole(&self) -> Option<FileBody> {
        let h = self.head.as_ref()?;
        Some(FileBody {
            file: self.file.clone(),
            len: h.1 + self.len,
            head: None,
        })
    }
}

/// An anonymous in-memory file (`memfd_create`).
fn memfd(name: &str) -> io::Result<std::fs::File> {
    use std::os::fd::FromRawFd;
    let cname = std::ffi::CString::new(name.replace('\0', "_"))
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: memfd_create with a valid NUL-terminated name; the fd it returns is owned by
    // the File created right after (and only then).
    let fd = unsafe { libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    Ok(unsafe { std::fs::File::from_raw_fd(fd) })
}

/// The head of a [`Body`] answer: `resp` with the common headers, `Accept-Ranges` and a
/// `Content-Length` of `start..end`.
fn standard_head(resp: Response, start: u64, end: u64) -> Vec<u8> {
    let mut head = common_headers(resp).header("Accept-Ranges", "bytes");
    head.body = Vec::new();
    let mut h = head.head_bytes();
    let cl = format!("Content-Length: {}\r\n", end - start);
    if let Some(p) = find(&h, b"Content-Length: 0\r\n") {
        h.splice(p..p + 19, cl.bytes());
    }
    h
}

impl Body for FileBody {
    fn len(&self) -> u64 {
        self.len
    }
    fn read(&mut self, offset: u64, max: usize) -> Vec<Bytes> {
        use std::os::unix::fs::FileExt;
        let n = (self.len.saturating_sub(offset)).min(max as u64) as usize;
        let mut buf = vec![0; n];
        let skip = self.head.as_ref().map_or(0, |h| h.1);
        match self.file.read_exact_at(&mut buf, offset + skip) {
            Ok(()) => vec![Bytes::from(buf)],
            Err(_) => Vec::new(),
        }
    }
    fn file(&self) -> Option<&FileBody> {
        Some(self)
    }
}

/// `sendmsg(2)` of `slices` with `MSG_MORE` (more data follows at once).
fn send_more(sock: &TcpStream, slices: &[IoSlice]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    // SAFETY: a zeroed msghdr is valid; msg_iov points at `slices`, whose IoSlice layout is
    // guaranteed to match iovec, and it outlives the call.
    let n = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = slices.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = slices.len() as _;
        libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_MORE | libc::MSG_NOSIGNAL)
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Queued bytes below which a [`Body`] is asked for more.
pub const BODY_LOW: usize = 512 << 10;
/// How much is asked of a [`Body`] at once.
const BODY_STEP: usize = 256 << 10;

struct BodyState {
    body: Box<dyn Body>,
    pos: u64,
    end: u64,
}

struct Conn {
    sock: TcpStream,
    peer: SocketAddr,
    rbuf: Vec<u8>,
    out: OutQueue,
    state: State,
    /// Answer of the current request: HEAD, keep-alive, Range header.
    head_only: bool,
    keep_alive: bool,
    http10: bool,
    range: Option<String>,
    /// The [`Body`] being sent (state `Body`).
    body: Option<BodyState>,
    /// Last time a request byte arrived or an answer finished (idle timer).
    last_read: Instant,
    /// When the current partial request started (request timer).
    req_start: Option<Instant>,
    /// Last write progress while output is queued.
    last_write: Instant,
    peer_closed: bool,
    /// The socket may hold bytes we have not read: the last read stopped at the buffer cap.
    /// (Otherwise it ended short or with WouldBlock, and epoll reports any new bytes.)
    unread: bool,
}

/// The connections, for the handler to answer on.
pub struct Io {
    registry: Registry,
    conns: HashMap<ConnId, Conn>,
    closed: Vec<ConnId>,
    cfg: ServerConfig,
    /// Connections that became readable again (answer done) and may hold pipelined requests.
    resume: Vec<ConnId>,
    /// Fan-out connections with output waiting for the merge interval, and when it ends.
    merged: Vec<ConnId>,
    next_merge: Instant,
}

/// Common headers on every answer.
fn common_headers(r: Response) -> Response {
    r.header("Access-Control-Allow-Origin", "*")
        .header("Server", concat!("mist-rs/", env!("CARGO_PKG_VERSION")))
}

/// A `Range` that cannot be satisfied (416).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsatisfiable;

/// Parses a single `bytes=a-b` range against a body length: `Ok(None)` when absent or not a
/// single bytes range (answer 200), `Err(Unsatisfiable)` when unsatisfiable (416).
pub fn parse_range(h: &str, len: usize) -> Result<Option<(usize, usize)>, Unsatisfiable> {
    let Some(spec) = h.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(Unsatisfiable)?;
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = if a.is_empty() {
        let n: usize = b.parse().map_err(|_| Unsatisfiable)?;
        if n == 0 {
            return Err(Unsatisfiable);
        }
        (len.saturating_sub(n), len.saturating_sub(1))
    } else {
        let s: usize = a.parse().map_err(|_| Unsatisfiable)?;
        let e = if b.is_empty() {
            len.saturating_sub(1)
        } else {
            b.parse::<usize>()
                .map_err(|_| Unsatisfiable)?
                .min(len.saturating_sub(1))
        };
        (s, e)
    };
    if len == 0 || start >= len || end < start {
        return Err(Unsatisfiable);
    }
    Ok(Some((start, end)))
}

impl Io {
    pub fn config(&self) -> &ServerConfig {
        &self.cfg
    }

    /// Whether the connection is still open.
    pub fn is_open(&self, id: ConnId) -> bool {
        self.conns.contains_key(&id)
    }

    pub fn peer(&self, id: ConnId) -> Option<SocketAddr> {
        self.conns.get(&id).map(|c| c.peer)
    }

    /// Bytes queued for the connection and not yet written.
    pub fn backlog(&self, id: ConnId) -> usize {
        self.conns.get(&id).map_or(0, |c| c.out.len())
    }

    /// Number of open connections.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Answers the pending request with a complete body. HEAD gets the head only; a single
    /// `Range` on a 200 answer gets 206 (or 416). `resp.body` is ignored in favour of `body`.
    pub fn respond(&mut self, id: ConnId, resp: Response, body: Bytes) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if c.state != State::Pending {
            return;
        }
        let mut resp = common_headers(resp);
        let keep = resp.keep_alive && c.keep_alive && !c.peer_closed;
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
        let mut head = resp.clone();
        head.body = Vec::new();
        let mut h = head.head_bytes();
        let cl = format!("Content-Length: {}\r\n", body.len());
        if let Some(p) = find(&h, b"Content-Length: 0\r\n") {
            h.splice(p..p + 19, cl.bytes());
        }
        let head_only = c.head_only;
        c.state = if keep { State::Reading } else { State::Closing };
        push_out(c, Bytes::from(h));
        if !head_only && !body.is_empty() {
            push_out(c, body);
        }
        self.after_answer(id, keep);
    }

    /// Answers the pending request with a [`Body`] of known length, sent as the socket drains
    /// (`Content-Length`, `Accept-Ranges`; a single `Range` gets 206 with exactly those bytes,
    /// or 416; HEAD gets the head only). The connection handles no further request until the
    /// body is sent.
    pub fn respond_body(&mut self, id: ConnId, resp: Response, body: Box<dyn Body>) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if c.state != State::Pending {
            return;
        }
        let mut resp = resp;
        let keep = resp.keep_alive && c.keep_alive && !c.peer_closed;
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
        push_out(c, Bytes::from(standard_head(resp, start, end)));
        if c.head_only || start >= end {
            c.state = if keep { State::Reading } else { State::Closing };
            self.after_answer(id, keep);
            return;
        }
        c.state = State::Body { keep };
        c.body = Some(BodyState {
            body,
            pos: start,
            end,
        });
        self.flush(id);
    }

    /// Answers with a [`FileBody`] made by [`FileBody::answer`]: a plain GET on a keep-alive
    /// connection gets the stored head and body in one `sendfile(2)`; anything else (HEAD,
    /// Range, closing connections) is answered by [`respond_body`](Io::respond_body) with the
    /// stored answer (a body without one gets a bare 200).
    pub fn respond_file(&mut self, id: ConnId, file: FileBody) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if c.state != State::Pending {
            return;
        }
        let plain = !c.head_only && c.range.is_none() && c.keep_alive && !c.peer_closed;
        match (plain, file.whole()) {
            (true, Some(whole)) => {
                c.state = State::Body { keep: true };
                let end = whole.len;
                c.body = Some(BodyState {
                    body: Box::new(whole),
                    pos: 0,
                    end,
                });
                self.flush(id);
            }
            _ => {
                let resp = file
                    .head
                    .as_ref()
                    .map_or_else(|| Response::new(200), |h| h.0.clone());
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
        let Some(c) = self.conns.get_mut(&id) else {
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
            let keep = c.keep_alive && !c.peer_closed;
            h.push_str(if keep {
                "Connection: keep-alive\r\n\r\n"
            } else {
                "Connection: close\r\n\r\n"
            });
            c.state = if keep { State::Reading } else { State::Closing };
            push_out(c, Bytes::from(h));
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
        push_out(c, Bytes::from(h));
        self.flush(id);
        self.conns.contains_key(&id)
    }

    /// Queues body bytes of a live answer. Returns false (and drops the connection) when the
    /// client's backlog is over the bound, or when the connection is gone.
    pub fn send(&mut self, id: ConnId, chunks: &[Bytes]) -> bool {
        let max = self.cfg.max_backlog;
        let Some(c) = self.conns.get_mut(&id) else {
            return false;
        };
        let State::Streaming { chunked } = c.state else {
            return false;
        };
        let n: usize = chunks.iter().map(Bytes::len).sum();
        if n == 0 {
            return true;
        }
        if c.out.len() + n > max {
            self.drop_conn(id);
            return false;
        }
        if chunked {
            push_out(c, Bytes::from(format!("{n:x}\r\n")));
        }
        for b in chunks {
            if !b.is_empty() {
                push_out(c, b.clone());
            }
        }
        if chunked {
            push_out(c, Bytes::from_static(b"\r\n"));
        }
        self.flush(id);
        self.conns.contains_key(&id)
    }

    /// [`Io::send`] to many connections: the chunk framing is built once and shared, like the
    /// body bytes. Connections that were dropped are removed from `ids`.
    pub fn send_all(&mut self, ids: &mut Vec<ConnId>, chunks: &[Bytes]) {
        let n: usize = chunks.iter().map(Bytes::len).sum();
        if n == 0 {
            return;
        }
        let head = Bytes::from(format!("{n:x}\r\n"));
        let tail = Bytes::from_static(b"\r\n");
        let max = self.cfg.max_backlog;
        ids.retain(|&id| {
            let Some(c) = self.conns.get_mut(&id) else {
                return false;
            };
            let State::Streaming { chunked } = c.state else {
                return false;
            };
            if c.out.len() + n > max {
                self.drop_conn(id);
                return false;
            }
            if chunked {
                push_out(c, head.clone());
            }
            for b in chunks.iter().filter(|b| !b.is_empty()) {
                push_out(c, b.clone());
            }
            if chunked {
                push_out(c, tail.clone());
            }
            if self.cfg.merge.is_zero() || c.out.len() >= MERGE_BYTES {
                self.flush(id);
            } else {
                if self.merged.is_empty() {
                    self.next_merge = Instant::now() + self.cfg.merge;
                }
                self.merged.push(id);
            }
            self.conns.contains_key(&id)
        });
    }

    /// Writes the fan-out connections whose merge interval has ended.
    fn flush_merged(&mut self) {
        let mut ids = std::mem::take(&mut self.merged);
        ids.sort_unstable();
        ids.dedup();
        for &id in &ids {
            self.flush(id);
        }
        ids.clear();
        // Keep the allocation for the next round.
        self.merged = ids;
    }

    /// Ends a live answer cleanly (chunked terminator, or close for close-delimited bodies).
    pub fn end_stream(&mut self, id: ConnId) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let State::Streaming { chunked } = c.state else {
            return;
        };
        let keep = chunked && c.keep_alive && !c.peer_closed;
        if chunked {
            push_out(c, Bytes::from_static(b"0\r\n\r\n"));
        }
        c.state = if keep { State::Reading } else { State::Closing };
        self.after_answer(id, keep);
    }

    /// Closes a connection now (queued output is discarded).
    pub fn close(&mut self, id: ConnId) {
        self.drop_conn(id);
    }

    fn after_answer(&mut self, id: ConnId, keep: bool) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.last_read = Instant::now();
            c.range = None;
        }
        self.flush(id);
        if keep && self.conns.contains_key(&id) {
            self.resume.push(id);
        }
    }

    fn drop_conn(&mut self, id: ConnId) {
        if let Some(mut c) = self.conns.remove(&id) {
            let _ = self.registry.deregister(&mut c.sock);
            let _ = c.sock.shutdown(std::net::Shutdown::Both);
            self.closed.push(id);
        }
    }

    /// Writes as much queued output as the socket takes.
    fn flush(&mut self, id: ConnId) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let mut dead = false;
        let mut body_done = None;
        loop {
            if let Some(mut b) = c.body.take() {
                // A file body goes straight from the file to the socket once the head is out.
                if let (Some(f), true) = (b.body.file(), c.out.is_empty()) {
                    while b.pos < b.end {
                        match f.send_to(&c.sock, b.pos, b.end) {
                            Ok(0) => {
                                // The file is shorter than promised: close after this.
                                b.end = b.pos;
                                c.state = State::Closing;
                            }
                            Ok(n) => {
                                b.pos += n as u64;
                                c.last_write = Instant::now();
                            }
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(_) => {
                                dead = true;
                                break;
                            }
                        }
                    }
                    if dead {
                        break;
                    }
                    if b.pos < b.end {
                        c.body = Some(b);
                        break; // the socket is full: wait for writable
                    }
                    if let State::Body { keep } = c.state {
                        c.state = if keep { State::Reading } else { State::Closing };
                        body_done = Some(keep);
                    }
                    continue;
                }
                while c.out.len() < BODY_LOW && b.pos < b.end && b.body.file().is_none() {
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
                        if !ch.is_empty() {
                            push_out(c, ch);
                        }
                    }
                    if n == 0 {
                        // The body cannot give what it promised: close after what is queued.
                        b.end = b.pos;
                        c.state = State::Closing;
                        break;
                    }
                    b.pos += n as u64;
                }
                if b.pos >= b.end {
                    if let State::Body { keep } = c.state {
                        c.state = if keep { State::Reading } else { State::Closing };
                        body_done = Some(keep);
                    }
                } else {
                    c.body = Some(b);
                }
            }
            if c.out.is_empty() {
                break;
            }
            // A file body follows this head: MSG_MORE lets the kernel put the head into the
            // body's first packet instead of sending a small packet of its own.
            let more = c.body.as_ref().is_some_and(|b| b.body.file().is_some());
            let sock = &c.sock;
            let res = c.out.write_with(|slices| {
                if more {
                    send_more(sock, slices)
                } else {
                    let mut s: &TcpStream = sock;
                    s.write_vectored(slices)
                }
            });
            match res {
                Ok(0) => {
                    dead = true;
                    break;
                }
                Ok(_) => c.last_write = Instant::now(),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    dead = true;
                    break;
                }
            }
        }
        if dead || (c.out.is_empty() && c.state == State::Closing) {
            self.drop_conn(id);
            return;
        }
        if body_done == Some(true) {
            c.last_read = Instant::now();
            self.resume.push(id);
        }
    }

    /// Answers a framing error and closes.
    fn fail(&mut self, id: ConnId, status: u16, text: &str) {
        let Some(c) = self.conns.get_mut(&id) else {
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

fn push_out(c: &mut Conn, b: Bytes) {
    if c.out.is_empty() {
        c.last_write = Instant::now();
    }
    c.out.push(b);
}

fn find(h: &[u8], needle: &[u8]) -> Option<usize> {
    h.windows(needle.len()).position(|w| w == needle)
}

/// The listener and its event loop.
pub struct Server {
    poll: Poll,
    listener: TcpListener,
    io: Io,
    next_id: ConnId,
    waker: Arc<Waker>,
}

impl Server {
    pub fn bind(addr: SocketAddr, cfg: ServerConfig) -> io::Result<Server> {
        let poll = Poll::new()?;
        let mut listener = TcpListener::bind(addr)?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let registry = poll.registry().try_clone()?;
        Ok(Server {
            poll,
            listener,
            io: Io {
                registry,
                conns: HashMap::new(),
                closed: Vec::new(),
                cfg,
                resume: Vec::new(),
                merged: Vec::new(),
                next_merge: Instant::now(),
            },
            next_id: FIRST_CONN,
            waker,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Wakes the loop from another thread ([`Handler::wake`] runs).
    pub fn waker(&self) -> Arc<Waker> {
        self.waker.clone()
    }

    /// Runs until `stop` is set.
    pub fn run<H: Handler>(&mut self, h: &mut H, stop: &AtomicBool) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut next_tick = Instant::now() + self.io.cfg.tick;
        while !stop.load(Ordering::Relaxed) {
            let mut deadline = next_tick;
            if !self.io.merged.is_empty() {
                deadline = deadline.min(self.io.next_merge);
            }
            let timeout = deadline.saturating_duration_since(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept(),
                    WAKER => h.wake(&mut self.io),
                    Token(id) => {
                        if ev.is_writable() {
                            self.io.flush(id);
                            if self.io.conns.get(&id).is_some_and(|c| {
                                matches!(c.state, State::Streaming { .. }) && c.out.len() < BODY_LOW
                            }) {
                                h.drained(&mut self.io, id);
                            }
                        }
                        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                            self.read(id);
                        }
                        self.process(h, id);
                    }
                }
                self.drain(h);
            }
            if !self.io.merged.is_empty() && Instant::now() >= self.io.next_merge {
                self.io.flush_merged();
                self.drain(h);
            }
            if Instant::now() >= next_tick {
                next_tick = Instant::now() + self.io.cfg.tick;
                h.tick(&mut self.io);
                self.timeouts();
                self.drain(h);
            }
        }
        Ok(())
    }

    /// Reports closed connections and handles pipelined requests of finished answers.
    fn drain<H: Handler>(&mut self, h: &mut H) {
        loop {
            if !self.io.resume.is_empty() {
                for id in std::mem::take(&mut self.io.resume) {
                    if self.io.conns.get(&id).is_some_and(|c| c.unread) {
                        self.read(id);
                    }
                    self.process(h, id);
                }
                continue;
            }
            if !self.io.closed.is_empty() {
                for id in std::mem::take(&mut self.io.closed) {
                    h.closed(&mut self.io, id);
                }
                continue;
            }
            break;
        }
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((mut sock, peer)) => {
                    if self.io.conns.len() >= self.io.cfg.max_conns {
                        continue; // dropped: closes the socket
                    }
                    let id = self.next_id;
                    self.next_id += 1;
                    let _ = sock.set_nodelay(true);
                    if self
                        .io
                        .registry
                        .register(
                            &mut sock,
                            Token(id),
                            Interest::READABLE | Interest::WRITABLE,
                        )
                        .is_err()
                    {
                        continue;
                    }
                    let now = Instant::now();
                    self.io.conns.insert(
                        id,
                        Conn {
                            sock,
                            peer,
                            rbuf: Vec::new(),
                            out: OutQueue::default(),
                            state: State::Reading,
                            head_only: false,
                            keep_alive: true,
                            http10: false,
                            range: None,
                            body: None,
                            last_read: now,
                            req_start: None,
                            last_write: now,
                            peer_closed: false,
                            unread: true,
                        },
                    );
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break, // EMFILE and the like: try again on the next event
            }
        }
    }

    /// Reads what the socket has (bounded while an answer is in progress).
    fn read(&mut self, id: ConnId) {
        let cap = self.io.cfg.max_head + self.io.cfg.max_body + 4096;
        let Some(c) = self.io.conns.get_mut(&id) else {
            return;
        };
        let mut buf = [0u8; 16384];
        let mut gone = false;
        c.unread = false;
        loop {
            if c.rbuf.len() >= cap {
                c.unread = true;
                break;
            }
            match c.sock.read(&mut buf) {
                Ok(0) => {
                    c.peer_closed = true;
                    break;
                }
                Ok(n) => {
                    if c.state != State::Closing {
                        if c.req_start.is_none() && c.state == State::Reading {
                            c.req_start = Some(Instant::now());
                        }
                        c.rbuf.extend_from_slice(&buf[..n]);
                        c.last_read = Instant::now();
                    } // else: discard what follows a fatal error
                    if n < buf.len() {
                        // A short read emptied the socket: epoll (edge-triggered) reports the
                        // next bytes or the peer's close, so a read just to see WouldBlock (one
                        // more syscall per request) is not needed.
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    gone = true;
                    break;
                }
            }
        }
        if gone {
            self.io.drop_conn(id);
        }
    }

    /// Parses and dispatches requests while the connection is reading.
    fn process<H: Handler>(&mut self, h: &mut H, id: ConnId) {
        loop {
            let cfg = self.io.cfg.clone();
            let Some(c) = self.io.conns.get_mut(&id) else {
                return;
            };
            match c.state {
                State::Reading => {}
                State::Streaming { .. } | State::Pending | State::Body { .. } => {
                    if c.peer_closed {
                        // The viewer went away.
                        self.io.drop_conn(id);
                    }
                    return;
                }
                State::Closing => return,
            }
            if c.rbuf.is_empty() {
                if c.peer_closed {
                    self.io.drop_conn(id);
                }
                c_req_reset(&mut self.io, id);
                return;
            }
            let limits = Limits {
                max_head: cfg.max_head,
                max_headers: 100,
                max_body: cfg.max_body,
            };
            // A request line longer than the bound: 414 (before the head limit gives 431).
            let line_end = c.rbuf.iter().position(|&b| b == b'\n');
            if line_end.map_or(c.rbuf.len(), |p| p) > cfg.max_line {
                self.io.fail(id, 414, "URI too long");
                return;
            }
            match http::parse_request(&c.rbuf, &limits) {
                Ok(None) => {
                    if c.peer_closed {
                        self.io.drop_conn(id);
                    }
                    return;
                }
                Ok(Some((req, used))) => {
                    c.rbuf.drain(..used);
                    c.req_start = if c.rbuf.is_empty() {
                        None
                    } else {
                        Some(Instant::now())
                    };
                    c.head_only = req.method == "HEAD";
                    c.keep_alive = req.keep_alive();
                    c.http10 = req.version == 0;
                    c.range = req.header("range").map(str::to_owned);
                    c.state = State::Pending;
                    if req.method != "GET" && req.method != "HEAD" {
                        if req.method == "OPTIONS" {
                            let r = Response::new(204)
                                .header("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
                                .header("Access-Control-Allow-Headers", "*");
                            self.io.respond(id, r, Bytes::new());
                        } else {
                            let r = Response::new(405)
                                .header("Allow", "GET, HEAD, OPTIONS")
                                .header("Content-Type", "text/plain");
                            self.io
                                .respond(id, r, Bytes::from_static(b"method not allowed\n"));
                        }
                        continue;
                    }
                    // A bug in the application must cost this connection only.
                    let io = &mut self.io;
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        h.request(io, id, req)
                    }));
                    if r.is_err() {
                        if self
                            .io
                            .conns
                            .get(&id)
                            .is_some_and(|c| c.state == State::Pending)
                        {
                            self.io.fail(id, 500, "internal error");
                        } else {
                            self.io.drop_conn(id);
                        }
                        return;
                    }
                    // Answered at once (keep-alive)? Then go on with pipelined requests.
                    continue;
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
                    self.io.fail(id, status, &text);
                    return;
                }
            }
        }
    }

    fn timeouts(&mut self) {
        let now = Instant::now();
        let cfg = &self.io.cfg;
        let mut expired = Vec::new();
        for (&id, c) in &self.io.conns {
            let stalled_write =
                !c.out.is_empty() && now.duration_since(c.last_write) > cfg.write_timeout;
            let slow_request = c.state == State::Reading
                && c.req_start
                    .is_some_and(|t| now.duration_since(t) > cfg.request_timeout);
            let idle = c.state == State::Reading
                && c.out.is_empty()
                && c.rbuf.is_empty()
                && now.duration_since(c.last_read) > cfg.idle_timeout;
            let closing_stuck = c.state == State::Closing
                && now.duration_since(c.last_write) > Duration::from_secs(5);
            if stalled_write || slow_request || idle || closing_stuck {
                expired.push(id);
            }
        }
        for id in expired {
            self.io.drop_conn(id);
        }
    }
}

fn c_req_reset(io: &mut Io, id: ConnId) {
    if let Some(c) = io.conns.get_mut(&id) {
        c.req_start = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Ok(Some((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=50-500", 100), Ok(Some((50, 99))));
        assert_eq!(parse_range("bytes=100-", 100), Err(Unsatisfiable));
        assert_eq!(parse_range("bytes=5-2", 100), Err(Unsatisfiable));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ok(None));
        assert_eq!(parse_range("items=0-1", 100), Ok(None));
        assert_eq!(parse_range("bytes=x-1", 100), Err(Unsatisfiable));
    }

    struct Echo;
    impl Handler for Echo {
        fn request(&mut self, io: &mut Io, id: ConnId, req: Request) {
            match req.path.as_str() {
                "/live" => {
                    if io.start_stream(id, 200, &[("Content-Type", "text/plain")]) {
                        io.send(
                            id,
                            &[Bytes::from_static(b"abc"), Bytes::from_static(b"def")],
                        );
                        io.end_stream(id);
                    }
                }
                p if p.starts_with("/body/") => {
                    let n = p[6..].parse().unwrap();
                    io.respond_body(id, Response::new(200), Box::new(Pattern(n)));
                }
                p if p.starts_with("/file/") => {
                    let n = p[6..].parse().unwrap();
                    let f = FileBody::from_bytes("test", &pattern(0, n)).unwrap();
                    io.respond_body(id, Response::new(200), Box::new(f));
                }
                p if p.starts_with("/answer/") => {
                    // The whole answer stored in the file (one sendfile for a plain GET).
                    let n = p[8..].parse().unwrap();
                    let r = Response::new(200).header("Content-Type", "video/mp2t");
                    let f = FileBody::answer("test", r, &pattern(0, n)).unwrap();
                    io.respond_file(id, f);
                }
                p => io.respond(
                    id,
                    Response::new(200).header("Content-Type", "text/plain"),
                    Bytes::from(p.to_string()),
                ),
            }
        }
        fn closed(&mut self, _io: &mut Io, _id: ConnId) {}
    }

    /// A generated body: byte `i` is `i % 251`, produced in pieces of at most 1000 bytes.
    struct Pattern(u64);
    impl Body for Pattern {
        fn len(&self) -> u64 {
            self.0
        }
        fn read(&mut self, offset: u64, max: usize) -> Vec<Bytes> {
            let mut out = Vec::new();
            let mut at = offset;
            let end = self.0.min(offset + max as u64);
            while at < end {
                let n = (end - at).min(1000);
                out.push(Bytes::from(
                    (at..at + n).map(|i| (i % 251) as u8).collect::<Vec<u8>>(),
                ));
                at += n;
            }
            out
        }
    }

    fn pattern(a: u64, b: u64) -> Vec<u8> {
        (a..b).map(|i| (i % 251) as u8).collect()
    }

    /// Six pipelined requests on bodies under `prefix` (`/body/N`: generated, `/file/N`: a
    /// FileBody sent with sendfile): whole, a range, HEAD, a suffix range, an unsatisfiable
    /// range, then a plain answer.
    fn check_bodies(prefix: &str) {
        let big = 3_000_000u64;
        let req = format!(
            "GET {prefix}{big} HTTP/1.1\r\n\r\nGET {prefix}{big} HTTP/1.1\r\nRange: bytes=1000-1999\r\n\r\nHEAD {prefix}{big} HTTP/1.1\r\n\r\nGET {prefix}{big} HTTP/1.1\r\nRange: bytes=-700000\r\n\r\nGET {prefix}10 HTTP/1.1\r\nRange: bytes=10-\r\n\r\nGET /after HTTP/1.1\r\nConnection: close\r\n\r\n"
        );
        let out = exchange_bytes(req.as_bytes());
        // Split the answers by their Content-Length.
        let mut at = 0;
        let mut answers = Vec::new();
        while at < out.len() {
            let h = find(&out[at..], b"\r\n\r\n").expect("head") + at + 4;
            let head = String::from_utf8_lossy(&out[at..h]).into_owned();
            let n: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .unwrap()
                .parse()
                .unwrap();
            let body_len = if answers.len() == 2 { 0 } else { n };
            answers.push((head, out[h..h + body_len].to_vec()));
            at = h + body_len;
        }
        assert_eq!(answers.len(), 6, "{prefix}");
        assert!(answers[0].0.starts_with("HTTP/1.1 200"), "{}", answers[0].0);
        assert!(answers[0].0.contains("Accept-Ranges: bytes"));
        assert_eq!(answers[0].1, pattern(0, big));
        assert!(answers[1].0.starts_with("HTTP/1.1 206"));
        assert!(answers[1]
            .0
            .contains(&format!("Content-Range: bytes 1000-1999/{big}")));
        assert_eq!(answers[1].1, pattern(1000, 2000));
        assert!(answers[2].0.contains(&format!("Content-Length: {big}")));
        assert_eq!(answers[3].1, pattern(big - 700_000, big));
        assert!(answers[4].0.starts_with("HTTP/1.1 416"), "{}", answers[4].0);
        assert!(answers[4].0.contains("Content-Range: bytes */10"));
        assert_eq!(answers[5].1, b"/after");
    }

    #[test]
    fn generated_bodies_with_ranges_head_and_pipelining() {
        check_bodies("/body/");
    }

    #[test]
    fn file_bodies_by_sendfile_with_ranges_head_and_pipelining() {
        check_bodies("/file/");
        // The fallback read path gives the same bytes.
        let mut f = FileBody::from_bytes("x", b"hello world").unwrap();
        assert_eq!(f.read(6, 100), vec![Bytes::from_static(b"world")]);
    }

    #[test]
    fn stored_answers_with_ranges_head_and_pipelining() {
        check_bodies("/answer/");
        let mut f = FileBody::answer("x", Response::new(200), b"hello world").unwrap();
        assert_eq!(f.read(6, 100), vec![Bytes::from_static(b"world")]);
        // A plain GET gets exactly the head respond_body would have built, from the file.
        let end = "GET /end HTTP/1.1\r\nConnection: close\r\n\r\n";
        let stored = exchange(format!("GET /answer/5 HTTP/1.1\r\n\r\n{end}").as_bytes());
        let built = exchange(format!("GET /file/5 HTTP/1.1\r\n\r\n{end}").as_bytes());
        assert_eq!(
            stored.replace("Content-Type: video/mp2t\r\n", ""),
            built,
            "{stored}"
        );
        // A closing connection is answered with Connection: close, not the stored head.
        let close = exchange(b"GET /answer/5 HTTP/1.1\r\nConnection: close\r\n\r\n");
        assert!(close.contains("Connection: close\r\n"), "{close}");
        assert!(close.contains("Content-Type: video/mp2t\r\n"), "{close}");
    }

    fn exchange(req: &[u8]) -> String {
        String::from_utf8_lossy(&exchange_bytes(req)).into_owned()
    }

    fn exchange_bytes(req: &[u8]) -> Vec<u8> {
        let mut srv =
            Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default()).unwrap();
        let addr = srv.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let t = std::thread::spawn(move || srv.run(&mut Echo, &s2).unwrap());
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(req).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        stop.store(true, Ordering::Relaxed);
        t.join().unwrap();
        out
    }

    #[test]
    fn pipelining_head_range_chunked() {
        let out = exchange(b"GET /abcdef HTTP/1.1\r\n\r\nHEAD /xyz HTTP/1.1\r\n\r\nGET /0123456789 HTTP/1.1\r\nRange: bytes=2-4\r\n\r\nGET /live HTTP/1.1\r\nConnection: close\r\n\r\n");
        let parts: Vec<&str> = out.split("HTTP/1.1 ").skip(1).collect();
        assert_eq!(parts.len(), 4, "{out}");
        assert!(
            parts[0].starts_with("200") && parts[0].ends_with("\r\n\r\n/abcdef"),
            "{}",
            parts[0]
        );
        assert!(parts[0].contains("Access-Control-Allow-Origin: *"));
        assert!(
            parts[1].contains("Content-Length: 4\r\n") && parts[1].ends_with("\r\n\r\n"),
            "{}",
            parts[1]
        );
        assert!(
            parts[2].starts_with("206")
                && parts[2].contains("Content-Range: bytes 2-4/11")
                && parts[2].ends_with("\r\n\r\n123"),
            "{}",
            parts[2]
        );
        assert!(
            parts[3].contains("Transfer-Encoding: chunked")
                && parts[3].ends_with("\r\n\r\n6\r\nabcdef\r\n0\r\n\r\n"),
            "{}",
            parts[3]
        );
    }

    /// Streams 64 KiB chunks forever on every tick to `/flood`; records closed connections.
    struct Flood {
        viewers: Vec<ConnId>,
        closed: Arc<std::sync::Mutex<Vec<ConnId>>>,
    }
    impl Handler for Flood {
        fn request(&mut self, io: &mut Io, id: ConnId, _req: Request) {
            if io.start_stream(id, 200, &[]) {
                self.viewers.push(id);
            }
        }
        fn closed(&mut self, _io: &mut Io, id: ConnId) {
            self.viewers.retain(|&v| v != id);
            self.closed.lock().unwrap().push(id);
        }
        fn tick(&mut self, io: &mut Io) {
            let chunk = Bytes::from(vec![0u8; 64 << 10]);
            for &v in &self.viewers.clone() {
                for _ in 0..8 {
                    io.send(v, std::slice::from_ref(&chunk));
                }
            }
        }
    }

    #[test]
    fn a_client_that_does_not_read_is_dropped() {
        let cfg = ServerConfig {
            max_backlog: 1 << 20,
            tick: Duration::from_millis(10),
            ..ServerConfig::default()
        };
        let mut srv = Server::bind("127.0.0.1:0".parse().unwrap(), cfg).unwrap();
        let addr = srv.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let closed = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut h = Flood {
            viewers: Vec::new(),
            closed: closed.clone(),
        };
        let s2 = stop.clone();
        let t = std::thread::spawn(move || srv.run(&mut h, &s2).unwrap());
        let mut stuck = std::net::TcpStream::connect(addr).unwrap();
        stuck.write_all(b"GET /flood HTTP/1.1\r\n\r\n").unwrap();
        // A reading client on the same server keeps getting data meanwhile.
        let mut good = std::net::TcpStream::connect(addr).unwrap();
        good.write_all(b"GET /flood HTTP/1.1\r\n\r\n").unwrap();
        good.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let end = Instant::now() + Duration::from_secs(10);
        let mut got = 0usize;
        let mut buf = vec![0u8; 1 << 16];
        while closed.lock().unwrap().is_empty() && Instant::now() < end {
            got += good.read(&mut buf).unwrap();
        }
        assert_eq!(
            closed.lock().unwrap().len(),
            1,
            "the stuck client was not dropped"
        );
        assert!(got > 1 << 20, "the reading client got only {got} bytes");
        stop.store(true, Ordering::Relaxed);
        t.join().unwrap();
        drop(stuck);
    }

    #[test]
    fn hostile_requests() {
        assert!(exchange(b"\x00\x01\x02garbage\r\n\r\n").starts_with("HTTP/1.1 400"));
        let mut big = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..2000 {
            big.extend_from_slice(format!("X-H{i}: aaaaaaaaaaaaaaaaaaaa\r\n").as_bytes());
        }
        big.extend_from_slice(b"\r\n");
        assert!(exchange(&big).starts_with("HTTP/1.1 431"));
        let mut url = b"GET /".to_vec();
        url.extend(vec![b'a'; 100_000]);
        url.extend_from_slice(b" HTTP/1.1\r\n\r\n");
        assert!(exchange(&url).starts_with("HTTP/1.1 414"));
        assert!(
            exchange(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
                .starts_with("HTTP/1.1 501")
        );
        assert!(
            exchange(b"GET /x HTTP/1.1\r\nRange: bytes=10-\r\nConnection: close\r\n\r\n")
                .starts_with("HTTP/1.1 416")
        );
    }
}
