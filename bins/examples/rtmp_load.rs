//! RTMP play load generator for `scripts/bench`: N viewers of one stream from one thread (mio), so the
//! load costs little CPU next to the server under test.
//!
//! Prints one JSON object: viewers asked, connected, stall_free, bytes received in total, and the
//! median and 95th percentile time to first video frame in ms.
//!
//! A viewer stalls when its media falls more than `--stall-ms` behind the wall clock (measured from
//! its first video frame, relative to the least lag it had), or when it never gets a video frame.

use clap::Parser;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use mist_media::rtmp::{ClientEvent, ClientMode, ClientSession};
use mist_media::TrackKind;
use std::io::{ErrorKind, Read, Write};
use std::net::ToSocketAddrs;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "RTMP play load generator")]
struct Args {
    /// rtmp://HOST:PORT/APP/STREAM
    #[arg(long)]
    url: String,
    #[arg(long, default_value_t = 100)]
    viewers: usize,
    /// Seconds to keep the viewers connected.
    #[arg(long, default_value_t = 15)]
    duration: u64,
    /// Milliseconds over which the connections are opened.
    #[arg(long, default_value_t = 1000)]
    ramp_ms: u64,
    #[arg(long, default_value_t = 1500)]
    stall_ms: i64,
}

struct Viewer {
    sock: Option<TcpStream>,
    session: ClientSession,
    out: Vec<u8>,
    started: Instant,
    first_frame: Option<Duration>,
    video_track: Option<u32>,
    /// (wall ms, media ms) of the first video frame.
    origin: Option<(i64, i64)>,
    min_lag: i64,
    last_lag: i64,
    /// Wall ms of the last video frame.
    last_frame_ms: i64,
    stalled: bool,
    bytes: u64,
    failed: bool,
}

fn main() {
    let args = Args::parse();
    let rest = args.url.strip_prefix("rtmp://").expect("rtmp:// URL");
    let (hostport, path) = rest.split_once('/').expect("rtmp://HOST/APP/STREAM");
    let (app, stream) = path.rsplit_once('/').expect("rtmp://HOST/APP/STREAM");
    let hostport = if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:1935")
    };
    let addr = hostport
        .to_socket_addrs()
        .expect("resolve")
        .next()
        .expect("address");
    let tc_url = format!("rtmp://{hostport}/{app}");

    let mut poll = Poll::new().expect("poll");
    let mut events = Events::with_capacity(4096);
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs(args.duration);
    let mut viewers: Vec<Viewer> = Vec::with_capacity(args.viewers);
    let mut buf = vec![0u8; 256 * 1024];

    while Instant::now() < end {
        // Open the connections spread over the ramp.
        let due = (t0.elapsed().as_millis() as u64 * args.viewers as u64)
            .checked_div(args.ramp_ms)
            .map_or(args.viewers, |n| n.min(args.viewers as u64) as usize);
        while viewers.len() < due {
            let i = viewers.len();
            let mut session =
                ClientSession::new(app, &tc_url, stream, ClientMode::Play, i as u64 + 1);
            let out = session.take_output();
            let mut v = Viewer {
                sock: None,
                session,
                out,
                started: Instant::now(),
                first_frame: None,
                video_track: None,
                origin: None,
                min_lag: i64::MAX,
                last_lag: 0,
                last_frame_ms: 0,
                stalled: false,
                bytes: 0,
                failed: false,
            };
            match TcpStream::connect(addr) {
                Ok(mut s) => {
                    poll.registry()
                        .register(&mut s, Token(i), Interest::READABLE | Interest::WRITABLE)
                        .expect("register");
                    v.sock = Some(s);
                }
                Err(_) => v.failed = true,
            }
            viewers.push(v);
        }

        poll.poll(&mut events, Some(Duration::from_millis(20)))
            .expect("poll");
        let now_ms = t0.elapsed().as_millis() as i64;
        for ev in events.iter() {
            let v = &mut viewers[ev.token().0];
            if v.failed {
                continue;
            }
            if ev.is_readable() {
                while let Some(sock) = v.sock.as_mut() {
                    match sock.read(&mut buf) {
                        Ok(0) => {
                            v.failed = true;
                            break;
                        }
                        Ok(n) => {
                            v.bytes += n as u64;
                            v.session.feed(&buf[..n]);
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(_) => {
                            v.failed = true;
                            break;
                        }
                    }
                }
                loop {
                    match v.session.poll() {
                        Ok(Some(ClientEvent::Track(t))) if t.kind() == TrackKind::Video => {
                            v.video_track = Some(t.id)
                        }
                        Ok(Some(ClientEvent::Frame(f))) if Some(f.track) == v.video_track => {
                            if v.first_frame.is_none() {
                                v.first_frame = Some(v.started.elapsed());
                            }
                            let (w0, m0) = *v.origin.get_or_insert((now_ms, f.dts));
                            let lag = (now_ms - w0) - (f.dts - m0);
                            v.min_lag = v.min_lag.min(lag);
                            v.last_lag = lag;
                            v.last_frame_ms = now_ms;
                            if lag - v.min_lag > args.stall_ms {
                                v.stalled = true;
                            }
                        }
                        Ok(Some(ClientEvent::Refused(_))) | Err(_) => {
                            v.failed = true;
                            break;
                        }
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                    }
                }
                let more = v.session.take_output();
                v.out.extend_from_slice(&more);
            }
            if !v.out.is_empty() {
                if let Some(sock) = v.sock.as_mut() {
                    match sock.write(&v.out) {
                        Ok(n) => {
                            v.out.drain(..n);
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                        Err(_) => v.failed = true,
                    }
                }
            }
            if v.failed {
                v.sock = None;
            }
        }
    }

    // A viewer whose media stopped arriving before the end also stalled.
    let end_ms = t0.elapsed().as_millis() as i64;
    let mut ttff: Vec<f64> = Vec::new();
    let (mut connected, mut stall_free, mut bytes) = (0usize, 0usize, 0u64);
    for v in &viewers {
        bytes += v.bytes;
        let Some(first) = v.first_frame else { continue };
        connected += 1;
        ttff.push(first.as_secs_f64() * 1000.0);
        // The lag keeps growing while nothing arrives after the last frame.
        let final_lag = v.last_lag + (end_ms - v.last_frame_ms);
        if !v.failed && !v.stalled && final_lag - v.min_lag <= args.stall_ms {
            stall_free += 1;
        }
    }
    ttff.sort_by(|a, b| a.partial_cmp(b).unwrap());
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
            "viewers": args.viewers,
            "connected": connected,
            "stall_free": stall_free,
            "bytes": bytes,
            "ttff_ms_median": pct(0.5),
            "ttff_ms_p95": pct(0.95),
        })
    );
}
