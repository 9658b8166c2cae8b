//! MistInRTSP: pulls an RTSP camera (`rtsp://[user[:pass]@]host[:port]/path`) into a live stream.
//!
//! The protocol is [`mist_media::rtsp::Client`] (sans-IO); here it runs on the connector runtime
//! over one outgoing TCP connection ([`Runtime::adopt`]). Media comes either interleaved on that
//! connection or over UDP to port pairs this process binds once ([`Runtime::listen_udp`], one
//! pair per track, RTP through the reorder buffer of the [`Publisher`]).
//!
//! * Transport `auto` (the default) asks for UDP first and falls back to TCP for good when the
//!   server refuses it (SETUP not 200, or it wants TCP) or when no UDP packet arrives within
//!   [`UDP_WAIT`] of PLAY (a firewall or NAT in between). `tcp` and `udp` force one.
//! * Keep-alive: GET_PARAMETER (OPTIONS when refused) every half session timeout, by the client.
//! * RTCP receiver reports (RFC 3550: loss, jitter, last sender report) go to the camera every
//!   [`RR_EVERY`], for each track: over UDP to its RTCP port, over TCP interleaved on its RTCP
//!   channel (cameras that count receivers or time sessions out by RTCP see us either way); its
//!   sender reports put the tracks on one wallclock timeline.
//! * When the camera goes away the connection is made again, after 1 s, then 2, 4 … up to 30 s;
//!   while the stream is still up the wait is at most a quarter of the stream timeout (between
//!   250 ms and 2 s), so that a camera back within it is found in time.
//!   The stream stays up meanwhile (readers wait for more frames) for the stream timeout
//!   (`--timeout`, stream option `idleTime`); a camera back within it continues the same stream,
//!   its media time going on from where it stopped. No frame for that long ends the stream; a
//!   camera coming back later starts it again. The stream is written through the one
//!   [`crate::ingest::Ingest`] of every publisher (inside the [`Publisher`]).

use crate::rtsp_out::publish::{PublishError, Publisher};
use crate::rtsp_out::{register_signals, UdpPair, RR_EVERY};
use mist_connector::{App, ConnId, Ctl, Flow, Io, Limits, ListenerId, Peer, Runtime, Session};
use mist_core::{debug, error, info, warn};
use mist_media::rtsp::{Client, ClientError, ClientEvent, RtspUrl};
use mist_media::sdp::RtpTrack;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How media should reach us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TransportPref {
    /// UDP, falling back to interleaved TCP when UDP does not work.
    Auto,
    /// Interleaved on the RTSP connection only.
    Tcp,
    /// UDP only.
    Udp,
}

/// What [`run`] needs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The stream written.
    pub stream: String,
    /// The camera's `rtsp://` URL.
    pub url: String,
    /// DVR window of the live buffer.
    pub dvr_ms: u64,
    /// Whether a controller supervises us (its buffer keeps the stream between reconnects).
    pub controlled: bool,
    /// No frame for this long ends the stream (it stays up while reconnecting until then).
    pub timeout: Duration,
    /// UDP or TCP-interleaved media (some cameras and firewalls allow only one).
    pub transport: TransportPref,
}

/// Default stream timeout (ms).
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
const HEARTBEAT: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long TEARDOWN may take on shutdown.
const TEARDOWN_WAIT: Duration = Duration::from_secs(2);
/// From the connection to PLAY answered at most.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// A playing camera that sends nothing for this long is gone.
const MEDIA_TIMEOUT: Duration = Duration::from_secs(20);
/// After PLAY over UDP, the first packet must come within this, else we go to TCP.
pub const UDP_WAIT: Duration = Duration::from_secs(4);
/// UDP port pairs bound at first (video and audio); a camera with more tracks gets more.
const FIRST_PAIRS: usize = 2;
const MAX_PAIRS: usize = 16;

/// What the loop does after a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// Back off and try again.
    Retry,
    /// Try again now over TCP (UDP does not work with this camera).
    Tcp,
    /// Try again now with this many UDP port pairs.
    Pairs(usize),
}

struct PullApp {
    opts: Options,
    stop: Arc<AtomicBool>,
    conn: Option<ConnId>,
    closed: bool,
    played: bool,
    stopping: Option<Instant>,
    /// The stream being written; it outlives connections (see the module docs).
    publisher: Option<Publisher>,
    /// The tracks last described, to start the stream again after it timed out.
    tracks: Vec<(usize, RtpTrack)>,
    /// UDP listener → (pair position, is RTCP).
    udp_listeners: HashMap<ListenerId, (usize, bool)>,
    udp_pairs: Vec<UdpPair>,
    /// Media-section index of each pair position in the current session.
    udp_routes: Vec<Option<usize>>,
    /// Only the camera's address may send us media.
    server_ip: Option<IpAddr>,
    /// UDP packets of the current session.
    udp_packets: u64,
    /// Where receiver reports go, by pair position: the camera's RTCP port of that track.
    rtcp_dests: Vec<Option<SocketAddr>>,
    /// When the next receiver reports are due (sessions that play).
    next_rr: Option<Instant>,
    /// Interleaved sessions: receiver reports waiting for the connection to send them (on the
    /// RTCP channel of their track).
    tcp_rr: Vec<(usize, Vec<u8>)>,
    last_media: Instant,
    /// Set when the writer failed: the connection is closed.
    failed: bool,
    next: Next,
}

impl PullApp {
    /// One packet for the stream; (re)creates it when it had timed out.
    fn packet(&mut self, index: usize, rtcp: bool, data: bytes::Bytes, udp: bool, now: Instant) {
        self.last_media = now;
        if self.publisher.is_none() && !rtcp {
            if self.tracks.is_empty() {
                return;
            }
            match self.new_publisher(now) {
                Ok(p) => {
                    info!("{}: media again, stream started", self.opts.stream);
                    self.publisher = Some(p)
                }
                Err(e) => {
                    error!("{}: cannot write the stream: {e}", self.opts.stream);
                    self.failed = true;
                    return;
                }
            }
        }
        if let Some(p) = self.publisher.as_mut() {
            if let Err(e) = p.packet(index, rtcp, data, udp, now) {
                error!("{e}");
                self.failed = true;
            }
        }
    }

    /// The stream's writer (this process is its only input: nothing else keeps the buffer).
    fn new_publisher(&self, now: Instant) -> Result<Publisher, PublishError> {
        let o = &self.opts;
        Publisher::new(
            &o.stream,
            o.dvr_ms,
            o.controlled,
            o.timeout,
            &self.tracks,
            now,
        )
    }

    /// Heartbeats the stream, and ends it once no frame came for the stream timeout.
    fn keep_stream(&mut self, now: Instant) {
        let Some(p) = self.publisher.as_mut() else {
            return;
        };
        if p.tick(now) {
            return;
        }
        info!(
            "{}: no media for {} ms, stream ended",
            self.opts.stream,
            self.opts.timeout.as_millis()
        );
        if let Some(p) = self.publisher.take() {
            p.end();
        }
    }

    fn described(
        &mut self,
        tracks: Vec<(usize, RtpTrack)>,
        now: Instant,
    ) -> Result<(), PublishError> {
        if let Some(p) = self.publisher.as_mut() {
            match p.resume(&tracks, now) {
                Ok(()) => info!("{}: source back, stream continues", self.opts.stream),
                Err(e) => {
                    warn!("{e}: a new stream starts");
                    if let Some(p) = self.publisher.take() {
                        p.end();
                    }
                }
            }
        }
        self.tracks = tracks;
        if self.publisher.is_none() {
            self.publisher = Some(self.new_publisher(now)?);
        }
        Ok(())
    }

    /// The receiver reports that are due: over UDP each from our RTCP port of its track to the
    /// camera's; over TCP handed to the connection (woken), which frames them on the track's
    /// RTCP channel.
    fn send_receiver_reports(&mut self, now: Instant) -> bool {
        if self.next_rr.is_none_or(|t| now < t) {
            return false;
        }
        self.next_rr = Some(now + RR_EVERY);
        let Some(p) = self.publisher.as_mut() else {
            return false;
        };
        if self.udp_routes.is_empty() {
            self.tcp_rr = p.receiver_reports(now);
            return !self.tcp_rr.is_empty();
        }
        for (index, pkt) in p.receiver_reports(now) {
            let Some(pos) = self.udp_routes.iter().position(|r| *r == Some(index)) else {
                continue;
            };
            let (Some(pair), Some(Some(dest))) =
                (self.udp_pairs.get(pos), self.rtcp_dests.get(pos))
            else {
                continue;
            };
            if let Err(e) = pair.rtcp.send_to(&pkt, dest) {
                debug!("{}: receiver report to {dest}: {e}", self.opts.stream);
            }
        }
        false
    }
}

struct Pull {
    client: Client,
    connected: Instant,
    playing: Option<Instant>,
}

impl Pull {
    fn pump(&mut self, app: &mut PullApp, io: &mut Io<'_>) {
        let now = io.now();
        if app.stop.load(Ordering::Relaxed) && self.client.is_playing() {
            self.client.teardown();
        }
        while let Some(ev) = self.client.poll_event() {
            match ev {
                ClientEvent::Described { tracks } => {
                    if let Err(e) = app.described(tracks, now) {
                        error!("{}: cannot write the stream: {e}", app.opts.stream);
                        io.close();
                        return;
                    }
                    if self.client.is_udp() {
                        app.udp_routes = (0..app.udp_pairs.len())
                            .map(|i| self.client.track_index(i))
                            .collect();
                    }
                }
                ClientEvent::Playing => {
                    app.played = true;
                    app.last_media = now;
                    self.playing = Some(now);
                    if self.client.is_udp() {
                        let ip = app.server_ip;
                        app.rtcp_dests = (0..app.udp_pairs.len())
                            .map(|i| {
                                let (_, rtcp) = self.client.server_ports(i)?;
                                Some(SocketAddr::new(ip?, rtcp))
                            })
                            .collect();
                    }
                    // The first reports after half the interval (RFC 3550 6.2).
                    app.next_rr = Some(now + RR_EVERY / 2);
                    let how = if self.client.is_udp() { "UDP" } else { "TCP" };
                    info!("{}: playing {} over {how}", app.opts.stream, app.opts.url);
                }
                ClientEvent::Packet { index, rtcp, data } => {
                    app.packet(index, rtcp, data, false, now);
                }
                ClientEvent::Failed(e) => {
                    warn!("{}: {}: {e}", app.opts.stream, app.opts.url);
                    let auto = app.opts.transport == TransportPref::Auto;
                    match e {
                        ClientError::UdpRefused(_) | ClientError::NoInterleave
                            if self.client.is_udp() && auto =>
                        {
                            info!("{}: trying TCP", app.opts.stream);
                            app.next = Next::Tcp;
                        }
                        ClientError::NeedPorts(n) if n <= MAX_PAIRS => app.next = Next::Pairs(n),
                        ClientError::NeedPorts(_) if auto => app.next = Next::Tcp,
                        _ => {}
                    }
                    io.close();
                }
            }
        }
        if app.failed {
            io.close();
        }
        if self.client.is_playing() {
            for (index, pkt) in std::mem::take(&mut app.tcp_rr) {
                if !self.client.send_rtcp(index, &pkt) {
                    debug!("{}: no RTCP channel for track {index}", app.opts.stream);
                }
            }
        }
        while let Some(b) = self.client.poll_output() {
            io.write(&b);
        }
        if app.stop.load(Ordering::Relaxed) {
            io.close();
            return;
        }
        let beat = now + HEARTBEAT;
        let at = self.client.next_deadline().map_or(beat, |t| t.min(beat));
        io.set_timer(Some(at));
    }

    /// Timeouts of the handshake, of media, and of UDP that never came.
    fn check(&mut self, app: &mut PullApp, io: &mut Io<'_>) {
        let now = io.now();
        let Some(playing) = self.playing else {
            if now.duration_since(self.connected) >= HANDSHAKE_TIMEOUT {
                warn!(
                    "{}: {} did not start playing in {} s",
                    app.opts.stream,
                    app.opts.url,
                    HANDSHAKE_TIMEOUT.as_secs()
                );
                io.close();
            }
            return;
        };
        if self.client.is_udp() && app.udp_packets == 0 && now.duration_since(playing) >= UDP_WAIT {
            warn!(
                "{}: no UDP packet in {} s from {}",
                app.opts.stream,
                UDP_WAIT.as_secs(),
                app.opts.url
            );
            if app.opts.transport == TransportPref::Auto {
                info!("{}: trying TCP", app.opts.stream);
                app.next = Next::Tcp;
            }
            self.client.teardown();
            while let Some(b) = self.client.poll_output() {
                io.write(&b);
            }
            io.close();
            return;
        }
        if now.duration_since(app.last_media.max(playing)) >= MEDIA_TIMEOUT {
            warn!(
                "{}: no media for {} s from {}",
                app.opts.stream,
                MEDIA_TIMEOUT.as_secs(),
                app.opts.url
            );
            io.close();
        }
    }
}

impl Session<PullApp> for Pull {
    fn on_read(&mut self, app: &mut PullApp, io: &mut Io<'_>) {
        let data = io.input().to_vec();
        io.clear_input();
        let _ = self.client.feed(&data, io.now());
        self.pump(app, io);
    }
    fn on_wake(&mut self, app: &mut PullApp, io: &mut Io<'_>) {
        self.pump(app, io);
    }
    fn on_timer(&mut self, app: &mut PullApp, io: &mut Io<'_>) {
        self.client.tick(io.now());
        self.check(app, io);
        self.pump(app, io);
    }
    fn on_close(&mut self, app: &mut PullApp, _id: ConnId, peer: Peer) {
        app.closed = true;
        let frames = app.publisher.as_ref().map_or(0, |p| p.frames());
        info!("{}: {peer} gone ({frames} frames so far)", app.opts.stream);
    }
}

impl App for PullApp {
    type Session = Pull;
    fn accept(&mut self, _: ListenerId, _: Peer, _: Instant) -> Option<Pull> {
        None
    }
    fn datagram(
        &mut self,
        l: ListenerId,
        data: &[u8],
        from: SocketAddr,
        now: Instant,
    ) -> Option<Vec<u8>> {
        let &(pos, rtcp) = self.udp_listeners.get(&l)?;
        if self.server_ip.is_some_and(|ip| ip != from.ip()) {
            return None;
        }
        let index = self.udp_routes.get(pos).copied().flatten()?;
        self.udp_packets += 1;
        self.packet(index, rtcp, bytes::Bytes::copy_from_slice(data), true, now);
        None
    }
    fn turn(&mut self, ctl: &mut Ctl<'_, Self>, now: Instant) -> Flow {
        if self.closed {
            return Flow::Stop;
        }
        self.keep_stream(now);
        if self.send_receiver_reports(now) {
            if let Some(id) = self.conn {
                ctl.wake(id);
            }
        }
        if self.failed {
            if let Some(id) = self.conn {
                ctl.close(id);
            }
        }
        if self.stop.load(Ordering::Relaxed) {
            let since = *self.stopping.get_or_insert_with(|| {
                if let Some(id) = self.conn {
                    ctl.wake(id);
                }
                now
            });
            if now.duration_since(since) >= TEARDOWN_WAIT {
                return Flow::Stop;
            }
        }
        Flow::Continue
    }
}

fn limits() -> Limits {
    Limits {
        max_input: 4 << 20,
        // Over UDP the connection carries only keep-alives: the session checks media itself.
        idle_timeout: None,
        ..Limits::default()
    }
}

/// Binds UDP port pairs until there are `n`, each registered with the runtime.
fn bind_pairs(
    rt: &mut Runtime<PullApp>,
    app: &mut PullApp,
    n: usize,
    v6: bool,
) -> std::io::Result<()> {
    let ip = if v6 {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    };
    while app.udp_pairs.len() < n {
        let pos = app.udp_pairs.len();
        let pair = UdpPair::bind(ip, 0)?;
        for (s, rtcp) in [(&pair.rtp, false), (&pair.rtcp, true)] {
            s.set_nonblocking(true)?;
            let _ = socket_buffer(s);
            let what = if rtcp { "RTCP in" } else { "RTP in" };
            let l = rt.listen_udp(
                mist_connector::mio::net::UdpSocket::from_std(s.try_clone()?),
                what,
            )?;
            app.udp_listeners.insert(l, (pos, rtcp));
        }
        app.udp_pairs.push(pair);
    }
    Ok(())
}

/// A 4 MiB receive buffer: a keyframe burst of a high-rate camera must not overflow it.
fn socket_buffer(s: &std::net::UdpSocket) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let size: libc::c_int = 4 << 20;
    // SAFETY: setsockopt on a socket we own, with a pointer to a c_int that lives across the call.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Pulls until SIGINT/SIGTERM, reconnecting with backoff. Errors: bad URL, or the loop failed.
pub fn run(mut opts: Options) -> std::io::Result<()> {
    let url = RtspUrl::parse(&opts.url)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    // What the log shows: the URL without its credentials.
    opts.url = url.url.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let mut rt = Runtime::<PullApp>::new()?;
    rt.set_max_wait(Duration::from_millis(100));
    rt.watch(register_signals(&stop)?, "signals")?;
    let mut tcp = opts.transport == TransportPref::Tcp;
    let mut app = PullApp {
        opts,
        stop: stop.clone(),
        conn: None,
        closed: false,
        played: false,
        stopping: None,
        publisher: None,
        tracks: Vec::new(),
        udp_listeners: HashMap::new(),
        udp_pairs: Vec::new(),
        udp_routes: Vec::new(),
        server_ip: None,
        udp_packets: 0,
        rtcp_dests: Vec::new(),
        next_rr: None,
        tcp_rr: Vec::new(),
        last_media: Instant::now(),
        failed: false,
        next: Next::Retry,
    };
    let mut pairs = FIRST_PAIRS;
    let mut backoff = Duration::from_secs(1);
    while !stop.load(Ordering::Relaxed) {
        app.next = Next::Retry;
        match connect_beating(&url, &mut app) {
            Ok(sock) => {
                let peer_addr = sock.peer_addr()?;
                let mut ports = Vec::new();
                if !tcp {
                    match bind_pairs(&mut rt, &mut app, pairs, peer_addr.is_ipv6()) {
                        Ok(()) => {
                            ports = app.udp_pairs[..pairs]
                                .iter()
                                .map(|p| (p.port, p.port.wrapping_add(1)))
                                .collect()
                        }
                        Err(e) => {
                            warn!("{}: no UDP ports ({e}); using TCP", app.opts.stream);
                            tcp = true;
                        }
                    }
                }
                let ua = concat!("mist-rs/", env!("CARGO_PKG_VERSION"));
                let pull = Pull {
                    client: Client::with_udp(url.clone(), ua, ports),
                    connected: Instant::now(),
                    playing: None,
                };
                app.closed = false;
                app.played = false;
                app.failed = false;
                app.udp_routes.clear();
                app.udp_packets = 0;
                app.rtcp_dests.clear();
                app.next_rr = None;
                app.tcp_rr.clear();
                app.server_ip = Some(peer_addr.ip());
                let _ = sock.set_nodelay(true);
                let peer = Peer::Tcp(peer_addr);
                let id = rt.adopt(Box::new(sock), peer, "RTSP pull", limits(), pull)?;
                // The client speaks first: OPTIONS goes out from on_wake.
                rt.remote().wake(id);
                app.conn = Some(id);
                rt.run(&mut app)?;
                app.conn = None;
                app.udp_routes.clear();
                app.next_rr = None;
                if app.played {
                    backoff = Duration::from_secs(1);
                }
            }
            Err(e) => warn!("{}: cannot connect to {}: {e}", app.opts.stream, url.url),
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
        match app.next {
            Next::Tcp => {
                tcp = true;
                continue;
            }
            Next::Pairs(n) if n > pairs => {
                pairs = n;
                continue;
            }
            _ => {}
        }
        let wait = if app.publisher.is_some() {
            backoff.min(up_backoff(app.opts.timeout))
        } else {
            backoff
        };
        info!(
            "{}: reconnecting in {} ms",
            app.opts.stream,
            wait.as_millis()
        );
        let until = Instant::now() + wait;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            app.keep_stream(Instant::now());
            std::thread::sleep(Duration::from_millis(100));
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    if let Some(p) = app.publisher.take() {
        p.end();
    }
    Ok(())
}

/// The longest wait before a reconnect while the stream is still up: a quarter of the stream
/// timeout, between 250 ms and 2 s.
fn up_backoff(timeout: Duration) -> Duration {
    (timeout / 4).clamp(Duration::from_millis(250), Duration::from_secs(2))
}

/// Connects on a helper thread while this one keeps the stream's heartbeat.
fn connect_beating(
    url: &RtspUrl,
    app: &mut PullApp,
) -> std::io::Result<mist_connector::mio::net::TcpStream> {
    let (tx, rx) = std::sync::mpsc::channel();
    let u = url.clone();
    std::thread::spawn(move || {
        let _ = tx.send(connect(&u));
    });
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(r) => return r,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                app.keep_stream(Instant::now());
                if app.stop.load(Ordering::Relaxed) {
                    return Err(std::io::ErrorKind::Interrupted.into());
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(std::io::Error::other("connect thread died"))
            }
        }
    }
}

fn connect(url: &RtspUrl) -> std::io::Result<mist_connector::mio::net::TcpStream> {
    let mut last = None;
    for a in (url.host.as_str(), url.port).to_socket_addrs()? {
        match std::net::TcpStream::connect_timeout(&a, CONNECT_TIMEOUT) {
            Ok(s) => {
                s.set_nonblocking(true)?;
                return Ok(mist_connector::mio::net::TcpStream::from_std(s));
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address")))
}

/// The capabilities JSON the controller reads (`-j`): sources starting with `rtsp://`.
pub fn capabilities() -> serde_json::Value {
    serde_json::json!({
        "name": "RTSP",
        "desc": "Pulls a live stream from an RTSP server or IP camera (RTP over UDP with fallback to interleaved TCP; Digest and Basic authentication from the URL's user:password; keep-alive), reconnecting with backoff while the stream stays up for its timeout.",
        "source_match": ["rtsp://*"],
        "priority": 9,
        "always_match": true,
        "optional": {
            "DVR": {"name": "Buffer time (ms)", "help": "The live buffer (DVR window) in milliseconds.", "type": "uint", "default": 50000, "option": "--buffer"},
            "dvr_bytes": crate::access::dvr_bytes_capability(),
            "idleTime": {"name": "Source timeout (ms)", "help": "The stream ends after this long without media; while the camera reconnects within it, viewers keep the stream.", "type": "uint", "default": DEFAULT_TIMEOUT_MS, "option": "--timeout"},
            "transport": {"name": "Transport", "help": "How RTP comes: auto (UDP, falling back to TCP), tcp (interleaved) or udp.", "type": "select", "select": ["auto", "tcp", "udp"], "default": "auto", "option": "--transport"},
            "debug": {"name": "debug", "help": "The debug level at which messages need to be printed.", "type": "debug", "option": "--debug", "short": "g"}
        },
        "codecs": [[["H264", "HEVC"], ["AAC", "MP3", "opus", "ALAW", "ULAW"]]]
    })
}
