//! RTMP play load generator for `scripts/bench`: N viewers of one stream from one thread (mio), so the
//! load costs little CPU next to the server under test.
//!
//! Prints one JSON object: viewers asked, connected, stall_free, bytes received in total, and the
//! median and 95th percentile time to first video frame in ms.
//!
//! A viewer stalls when its media falls more than `--stall-ms` behind the wall clock (measured from
//! its first video frame, relative to the least lag it had), or when it never gets a video frame.

#[path = "load_stats/mod.rs"]
mod load_stats;

use clap::Parser;
use load_stats::ViewerStats;
use mio::net::TcpStream;
use mio::{Events, Poll};
use mist_media::rtmp::{ClientEvent, ClientMode, ClientSession};
use mist_media::TrackKind;
use std::io::{ErrorKind, Read};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "RTMP play load generator")]
struct Args {
    /// rtmp://HOST:PORT/APP/STREAM
    #[arg(long)]
    url: String,
    #[command(flatten)]
    load: load_stats::LoadArgs,
}

struct Viewer {
    sock: Option<TcpStream>,
    session: ClientSession,
    out: Vec<u8>,
    video_track: Option<u32>,
    stats: ViewerStats,
    /// SO_RCVLOWAT is set (once the viewer plays).
    lowat: bool,
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
    let addr = load_stats::resolve(&hostport);
    let tc_url = format!("rtmp://{hostport}/{app}");

    let mut poll = Poll::new().expect("poll");
    let mut events = Events::with_capacity(4096);
    let t0 = Instant::now();
    let load = &args.load;
    let end = t0 + Duration::from_secs(load.duration);
    let mut viewers: Vec<Viewer> = Vec::with_capacity(load.viewers);
    let mut buf = vec![0u8; 256 * 1024];

    while Instant::now() < end {
        // Open the connections spread over the ramp.
        let due = load.due(t0.elapsed());
        while viewers.len() < due {
            let i = viewers.len();
            let mut session =
                ClientSession::new(app, &tc_url, stream, ClientMode::Play, i as u64 + 1);
            let out = session.take_output();
            let mut v = Viewer {
                sock: None,
                session,
                out,
                video_track: None,
                stats: ViewerStats::new(),
                lowat: false,
            };
            v.sock = load_stats::connect(&poll, addr, i);
            v.stats.failed = v.sock.is_none();
            viewers.push(v);
        }

        poll.poll(&mut events, Some(Duration::from_millis(20)))
            .expect("poll");
        let now_ms = t0.elapsed().as_millis() as i64;
        for ev in events.iter() {
            let v = &mut viewers[ev.token().0];
            if v.stats.failed {
                continue;
            }
            if ev.is_readable() {
                while let Some(sock) = v.sock.as_mut() {
                    match sock.read(&mut buf) {
                        Ok(0) => {
                            v.stats.failed = true;
                            break;
                        }
                        Ok(n) => {
                            v.stats.bytes += n as u64;
                            v.session.feed(&buf[..n]);
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(_) => {
                            v.stats.failed = true;
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
                            v.stats.video_frame(now_ms, f.dts, load.stall_ms);
                        }
                        Ok(Some(ClientEvent::Refused(_))) | Err(_) => {
                            v.stats.failed = true;
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
                    if !load_stats::write_out(sock, &mut v.out) {
                        v.stats.failed = true;
                    }
                }
            }
            if !v.lowat && v.stats.playing() {
                if let Some(sock) = v.sock.as_ref() {
                    load_stats::set_rcvlowat(sock, load_stats::RCVLOWAT);
                    v.lowat = true;
                }
            }
            if v.stats.failed {
                v.sock = None;
            }
        }
    }

    // A viewer whose media stopped arriving before the end also stalled.
    let end_ms = t0.elapsed().as_millis() as i64;
    load_stats::print_report(
        load.viewers,
        viewers.iter().map(|v| &v.stats),
        end_ms,
        load.stall_ms,
    );
}
