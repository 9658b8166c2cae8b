//! MistInRTSP: pulls an RTSP camera (`rtsp://[user[:pass]@]host[:port]/path`) into a live stream.
//!
//! The protocol is [`mist_media::rtsp::Client`] (sans-IO); here it runs on the connector runtime
//! over one outgoing TCP connection ([`Runtime::adopt`]), with RTP interleaved on it. The
//! packets go through the same [`Publisher`] as an RTSP publish into MistOutRTSP. When the camera
//! goes away the connection is made again, after 1 s, then 2, 4 … up to 30 s.

use crate::rtsp_out::publish::Publisher;
use crate::rtsp_out::register_signals;
use mist_connector::{App, ConnId, Ctl, Flow, Io, Limits, ListenerId, Peer, Runtime, Session};
use mist_core::{error, info, warn};
use mist_media::rtsp::{Client, ClientEvent, RtspUrl};
use std::net::ToSocketAddrs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What [`run`] needs.
#[derive(Debug, Clone)]
pub struct Options {
    pub stream: String,
    pub url: String,
    /// DVR window of the live buffer.
    pub dvr_ms: u64,
    /// Whether a controller supervises us (its buffer keeps the stream between reconnects).
    pub controlled: bool,
}

const HEARTBEAT: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long TEARDOWN may take on shutdown.
const TEARDOWN_WAIT: Duration = Duration::from_secs(2);

struct PullApp {
    opts: Options,
    stop: Arc<AtomicBool>,
    conn: Option<ConnId>,
    closed: bool,
    played: bool,
    stopping: Option<Instant>,
}

struct Pull {
    client: Client,
    publisher: Option<Publisher>,
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
                    if let Some(p) = self.publisher.take() {
                        p.end(app.opts.controlled);
                    }
                    match Publisher::new(&app.opts.stream, app.opts.dvr_ms, &tracks) {
                        Ok(p) => self.publisher = Some(p),
                        Err(e) => {
                            error!("{}: cannot write the stream: {e}", app.opts.stream);
                            io.close();
                            return;
                        }
                    }
                }
                ClientEvent::Playing => {
                    app.played = true;
                    info!("{}: playing {}", app.opts.stream, app.opts.url);
                }
                ClientEvent::Packet { index, rtcp, data } => {
                    if let Some(p) = self.publisher.as_mut() {
                        if let Err(e) = p.packet(index, rtcp, data, false) {
                            error!("{e}");
                            io.close();
                            return;
                        }
                    }
                }
                ClientEvent::Failed(e) => {
                    warn!("{}: {}: {e}", app.opts.stream, app.opts.url);
                    io.close();
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
        if let Some(p) = self.publisher.as_mut() {
            p.heartbeat();
        }
        self.pump(app, io);
    }
    fn on_close(&mut self, app: &mut PullApp, _id: ConnId, peer: Peer) {
        app.closed = true;
        if let Some(p) = self.publisher.take() {
            info!("{}: {peer} gone after {} frames", app.opts.stream, p.frames);
            p.end(app.opts.controlled);
        }
    }
}

impl App for PullApp {
    type Session = Pull;
    fn accept(&mut self, _: ListenerId, _: Peer, _: Instant) -> Option<Pull> {
        None
    }
    fn turn(&mut self, ctl: &mut Ctl<'_, Self>, now: Instant) -> Flow {
        if self.closed {
            return Flow::Stop;
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
        // A camera that sends nothing for this long is gone.
        idle_timeout: Some(Duration::from_secs(20)),
        ..Limits::default()
    }
}

/// Pulls until SIGINT/SIGTERM, reconnecting with backoff. Errors: bad URL, or the loop failed.
pub fn run(opts: Options) -> std::io::Result<()> {
    let url = RtspUrl::parse(&opts.url)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut rt = Runtime::<PullApp>::new()?;
    rt.set_max_wait(Duration::from_millis(100));
    rt.watch(register_signals(&stop)?, "signals")?;
    let mut app = PullApp {
        opts,
        stop: stop.clone(),
        conn: None,
        closed: false,
        played: false,
        stopping: None,
    };
    let mut backoff = Duration::from_secs(1);
    while !stop.load(Ordering::Relaxed) {
        match connect(&url) {
            Ok(sock) => {
                let client =
                    Client::new(url.clone(), concat!("mist-rs/", env!("CARGO_PKG_VERSION")));
                let pull = Pull {
                    client,
                    publisher: None,
                };
                app.closed = false;
                app.played = false;
                let _ = sock.set_nodelay(true);
                let peer = Peer::Tcp(sock.peer_addr()?);
                let id = rt.adopt(Box::new(sock), peer, "RTSP pull", limits(), pull)?;
                // The client speaks first: OPTIONS goes out from on_wake.
                rt.remote().wake(id);
                app.conn = Some(id);
                rt.run(&mut app)?;
                if app.played {
                    backoff = Duration::from_secs(1);
                }
            }
            Err(e) => warn!("{}: cannot connect to {}: {e}", app.opts.stream, url.url),
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
        info!(
            "{}: reconnecting in {} s",
            app.opts.stream,
            backoff.as_secs()
        );
        let until = Instant::now() + backoff;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    Ok(())
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
        "desc": "Pulls a live stream from an RTSP server or IP camera (RTP interleaved over TCP; Digest and Basic authentication from the URL's user:password), reconnecting with backoff.",
        "source_match": ["rtsp://*"],
        "priority": 9,
        "always_match": true,
        "optional": {
            "DVR": {"name": "Buffer time (ms)", "help": "The live buffer (DVR window) in milliseconds.", "type": "uint", "default": 50000, "option": "--buffer"},
            "debug": {"name": "debug", "help": "The debug level at which messages need to be printed.", "type": "debug", "option": "--debug", "short": "g"}
        },
        "codecs": [[["H264", "HEVC"], ["AAC", "MP3", "opus", "ALAW", "ULAW"]]]
    })
}
