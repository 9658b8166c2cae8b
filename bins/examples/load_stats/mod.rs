//! What `rtmp_load`, `http_load` and `rtsp_load` share: the options, the run's event loop and
//! clock ([`Run`]), reading and writing a viewer's socket, what they measure per viewer, and the
//! JSON line they print. Each generator keeps only its protocol.
//!
//! A viewer stalls when its media falls more than `stall_ms` behind the wall clock (measured from its
//! first video frame, relative to the least lag it had), or when it never gets a video frame.

// Included by every load generator (`#[path]`); each uses only part of it.
#![allow(dead_code)]

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// The options every generator takes besides the URL (`#[command(flatten)]`).
#[derive(clap::Args)]
pub struct LoadArgs {
    #[arg(long, default_value_t = 100)]
    pub viewers: usize,
    /// Seconds to keep the viewers connected.
    #[arg(long, default_value_t = 15)]
    pub duration: u64,
    /// Milliseconds over which the connections are opened.
    #[arg(long, default_value_t = 1000)]
    pub ramp_ms: u64,
    #[arg(long, default_value_t = 1500)]
    pub stall_ms: i64,
}

impl LoadArgs {
    /// How many viewers are connected `elapsed` into the run: the connections are opened spread
    /// over the ramp.
    pub fn due(&self, elapsed: Duration) -> usize {
        (elapsed.as_millis() as u64 * self.viewers as u64)
            .checked_div(self.ramp_ms)
            .map_or(self.viewers, |n| n.min(self.viewers as u64) as usize)
    }
}

/// The run: its poll, its clock and the read buffer every viewer shares (one thread, so one
/// buffer).
pub struct Run {
    pub poll: Poll,
    pub events: Events,
    pub t0: Instant,
    end: Instant,
    pub buf: Vec<u8>,
}

impl Run {
    /// A run of `load.duration` seconds from now.
    pub fn new(load: &LoadArgs) -> Run {
        let t0 = Instant::now();
        Run {
            poll: Poll::new().expect("poll"),
            events: Events::with_capacity(4096),
            t0,
            end: t0 + Duration::from_secs(load.duration),
            buf: vec![0u8; 256 * 1024],
        }
    }

    /// The run's duration is not over.
    pub fn going(&self) -> bool {
        Instant::now() < self.end
    }

    /// Waits for events (20 ms at most, so the ramp and the clock move on).
    pub fn wait(&mut self) {
        self.poll
            .poll(&mut self.events, Some(Duration::from_millis(20)))
            .expect("poll");
    }

    /// Opens the viewers due by now (spread over the ramp): each gets a socket connecting to
    /// `addr` (token: its index; `None` when the connection could not even be started), and
    /// `new` makes the viewer around it.
    pub fn open_due<V>(
        &self,
        load: &LoadArgs,
        addr: SocketAddr,
        viewers: &mut Vec<V>,
        mut new: impl FnMut(usize, Option<TcpStream>) -> V,
    ) {
        let due = load.due(self.t0.elapsed());
        while viewers.len() < due {
            let i = viewers.len();
            viewers.push(new(i, connect(&self.poll, addr, i)));
        }
    }

    /// Milliseconds since the run began.
    pub fn ms(&self) -> i64 {
        self.t0.elapsed().as_millis() as i64
    }

    /// Prints the summary (a viewer whose media stopped arriving before the end also stalled).
    pub fn report<'a>(&self, load: &LoadArgs, viewers: impl Iterator<Item = &'a ViewerStats>) {
        print_report(load.viewers, viewers, self.ms(), load.stall_ms);
    }
}

/// What every viewer has besides its protocol: its socket, the bytes waiting to go out, what
/// it measured, and whether `SO_RCVLOWAT` is set.
pub struct Peer<S> {
    pub sock: Option<S>,
    pub out: Vec<u8>,
    pub stats: ViewerStats,
    /// SO_RCVLOWAT is set (once the viewer plays).
    lowat: bool,
}

impl<S: Read + Write + AsRawFd> Peer<S> {
    /// A viewer on `sock` (`None`: the connection could not be started, the viewer failed)
    /// with `out` to send first.
    pub fn new(sock: Option<S>, out: Vec<u8>) -> Peer<S> {
        let mut stats = ViewerStats::new();
        stats.failed = sock.is_none();
        Peer {
            sock,
            out,
            stats,
            lowat: false,
        }
    }

    /// Reads what the socket holds until it would block, counting the bytes and handing each
    /// chunk (and the stats, for the frames it completes) to `data`. The viewer fails at end of
    /// stream, on an error, or when `data` answers false.
    pub fn read_available(
        &mut self,
        buf: &mut [u8],
        mut data: impl FnMut(&[u8], &mut ViewerStats) -> bool,
    ) {
        let Some(sock) = self.sock.as_mut() else {
            return;
        };
        let stats = &mut self.stats;
        loop {
            match sock.read(buf) {
                Ok(0) => {
                    stats.failed = true;
                    return;
                }
                Ok(n) => {
                    stats.bytes += n as u64;
                    if !data(&buf[..n], stats) {
                        stats.failed = true;
                        return;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(_) => {
                    stats.failed = true;
                    return;
                }
            }
        }
    }

    /// Writes what `out` holds (if anything) as far as the socket takes it; the viewer fails if
    /// the connection did.
    pub fn send(&mut self) {
        if self.out.is_empty() {
            return;
        }
        if let Some(s) = self.sock.as_mut() {
            if !write_out(s, &mut self.out) {
                self.stats.failed = true;
            }
        }
    }

    /// After the viewer's event: sets `SO_RCVLOWAT` once it plays, and drops the socket of a
    /// viewer that failed.
    pub fn settle(&mut self) {
        if !self.lowat && self.stats.playing() {
            if let Some(s) = self.sock.as_ref() {
                set_rcvlowat(s, RCVLOWAT);
                self.lowat = true;
            }
        }
        if self.stats.failed {
            self.sock = None;
        }
    }
}

/// The first address of HOST:PORT.
pub fn resolve(hostport: impl ToSocketAddrs) -> SocketAddr {
    hostport
        .to_socket_addrs()
        .expect("resolve")
        .next()
        .expect("address")
}

/// Connects viewer `i` and registers it for readable and writable events (token `i`); `None`
/// when the connection cannot even be started.
pub fn connect(poll: &Poll, addr: SocketAddr, i: usize) -> Option<TcpStream> {
    let mut s = TcpStream::connect(addr).ok()?;
    poll.registry()
        .register(&mut s, Token(i), Interest::READABLE | Interest::WRITABLE)
        .expect("register");
    Some(s)
}

/// Writes what `out` holds, as far as the socket takes it. False: the connection failed.
pub fn write_out(sock: &mut impl Write, out: &mut Vec<u8>) -> bool {
    match sock.write(out) {
        Ok(n) => {
            out.drain(..n);
            true
        }
        Err(e) => e.kind() == ErrorKind::WouldBlock,
    }
}

/// Receive low-water mark set once a viewer plays: the kernel wakes the generator when this much is
/// buffered (a few times a second per viewer) rather than on every message, so the receive work
/// charged to the machine is the generator's own and small, and the server is what saturates.
pub const RCVLOWAT: libc::c_int = 16 << 10;

/// Sets `SO_RCVLOWAT` on a socket (best effort: a kernel without it keeps waking per message).
pub fn set_rcvlowat(sock: &impl AsRawFd, bytes: libc::c_int) {
    // SAFETY: setsockopt on a socket we own, with a pointer to a c_int and its size.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            &bytes as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// CPU seconds (user + system) this process has used so far.
pub fn own_cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_SELF is always valid.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

pub struct ViewerStats {
    started: Instant,
    first_frame: Option<Duration>,
    /// (wall ms, media ms) of the first video frame.
    origin: Option<(i64, i64)>,
    min_lag: i64,
    last_lag: i64,
    /// Wall ms of the last video frame.
    last_frame_ms: i64,
    stalled: bool,
    pub bytes: u64,
    pub failed: bool,
}

impl ViewerStats {
    pub fn new() -> ViewerStats {
        ViewerStats {
            started: Instant::now(),
            first_frame: None,
            origin: None,
            min_lag: i64::MAX,
            last_lag: 0,
            last_frame_ms: 0,
            stalled: false,
            bytes: 0,
            failed: false,
        }
    }

    /// A video frame with media time `dts_ms` arrived at wall time `now_ms` (since the run began).
    pub fn playing(&self) -> bool {
        self.first_frame.is_some()
    }

    pub fn video_frame(&mut self, now_ms: i64, dts_ms: i64, stall_ms: i64) {
        if self.first_frame.is_none() {
            self.first_frame = Some(self.started.elapsed());
        }
        let (w0, m0) = *self.origin.get_or_insert((now_ms, dts_ms));
        let lag = (now_ms - w0) - (dts_ms - m0);
        self.min_lag = self.min_lag.min(lag);
        self.last_lag = lag;
        self.last_frame_ms = now_ms;
        if lag - self.min_lag > stall_ms {
            self.stalled = true;
        }
    }
}

/// Prints the run's summary as one JSON object.
pub fn print_report<'a>(
    asked: usize,
    viewers: impl Iterator<Item = &'a ViewerStats>,
    end_ms: i64,
    stall_ms: i64,
) {
    let mut ttff: Vec<f64> = Vec::new();
    let (mut connected, mut stall_free, mut bytes) = (0usize, 0usize, 0u64);
    for v in viewers {
        bytes += v.bytes;
        let Some(first) = v.first_frame else { continue };
        connected += 1;
        ttff.push(first.as_secs_f64() * 1000.0);
        // The lag keeps growing while nothing arrives after the last frame.
        let final_lag = v.last_lag + (end_ms - v.last_frame_ms);
        if !v.failed && !v.stalled && final_lag - v.min_lag <= stall_ms {
            stall_free += 1;
        }
    }
    ttff.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| {
        if ttff.is_empty() {
            0.0
        } else {
            ttff[((ttff.len() - 1) as f64 * p) as usize]
        }
    };
    println!(
        "{}",
        serde_json::json!({
            "viewers": asked,
            "connected": connected,
            "stall_free": stall_free,
            "bytes": bytes,
            "ttff_ms_median": pct(0.5),
            "ttff_ms_p95": pct(0.95),
            "loadgen_cpu_s": own_cpu_seconds(),
        })
    );
}
