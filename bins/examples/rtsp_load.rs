//! RTSP play load generator for `scripts/bench-rtsp`: N viewers of one stream over RTSP with RTP
//! interleaved on the TCP connection, from one thread (mio), so the load costs little CPU next to
//! the server under test. Each viewer is a [`mist_media::rtsp::Client`] (OPTIONS, DESCRIBE, SETUP
//! per track, PLAY, keep-alives).
//!
//! Prints one JSON object as `rtmp_load` does: viewers asked, connected, stall_free, bytes received
//! in total (RTP and the 4-byte interleave headers), the median and 95th percentile time to first
//! video frame in ms, and the generator's own CPU seconds.
//!
//! A viewer stalls when its media (the RTP time of the video packets that end a frame) falls more
//! than `--stall-ms` behind the wall clock, or when it never gets a video frame.

#[path = "load_stats/mod.rs"]
mod load_stats;

use clap::Parser;
use load_stats::ViewerStats;
use mio::net::TcpStream;
use mist_media::rtp::Timeline;
use mist_media::rtsp::{Client, ClientEvent, RtspUrl};
use mist_media::TrackKind;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "RTSP (interleaved TCP) play load generator")]
struct Args {
    /// rtsp://HOST:PORT/STREAM
    #[arg(long)]
    url: String,
    #[command(flatten)]
    load: load_stats::LoadArgs,
}

struct Viewer {
    sock: Option<TcpStream>,
    client: Client,
    out: Vec<u8>,
    /// Media-section index and RTP clock of the video track.
    video: Option<(usize, Timeline)>,
    stats: ViewerStats,
    /// SO_RCVLOWAT is set (once the viewer plays).
    lowat: bool,
}

fn main() {
    let args = Args::parse();
    let url = RtspUrl::parse(&args.url).expect("rtsp://HOST:PORT/STREAM");
    let addr = load_stats::resolve((url.host.as_str(), url.port));
    let ua = "mist-rs rtsp_load";

    let load = &args.load;
    let mut run = load_stats::Run::new(load);
    let mut viewers: Vec<Viewer> = Vec::with_capacity(load.viewers);
    let mut next_tick = run.t0;

    while run.going() {
        // Open the connections spread over the ramp.
        let due = load.due(run.t0.elapsed());
        while viewers.len() < due {
            let i = viewers.len();
            let mut client = Client::new(url.clone(), ua);
            let mut out = Vec::new();
            while let Some(b) = client.poll_output() {
                out.extend_from_slice(&b);
            }
            let mut v = Viewer {
                sock: None,
                client,
                out,
                video: None,
                stats: ViewerStats::new(),
                lowat: false,
            };
            v.sock = load_stats::connect(&run.poll, addr, i);
            v.stats.failed = v.sock.is_none();
            viewers.push(v);
        }

        run.wait();
        let now = Instant::now();
        let now_ms = now.duration_since(run.t0).as_millis() as i64;
        let mut touched: Vec<usize> = run.events.iter().map(|e| e.token().0).collect();
        if now >= next_tick {
            // Keep-alives: every viewer once a second.
            next_tick = now + Duration::from_secs(1);
            for v in viewers.iter_mut().filter(|v| !v.stats.failed) {
                v.client.tick(now);
            }
            touched.extend(0..viewers.len());
        }
        for i in touched {
            let v = &mut viewers[i];
            if v.stats.failed {
                continue;
            }
            if let Some(sock) = v.sock.as_mut() {
                load_stats::read_available(sock, &mut run.buf, &mut v.stats, |d, _| {
                    v.client.feed(d, now).is_ok()
                });
            }
            while let Some(ev) = v.client.poll_event() {
                match ev {
                    ClientEvent::Described { tracks } => {
                        v.video = tracks
                            .iter()
                            .find(|(_, t)| t.track.kind() == TrackKind::Video)
                            .map(|(i, t)| (*i, Timeline::new(t.clock_rate)));
                    }
                    ClientEvent::Packet {
                        index,
                        rtcp: false,
                        data,
                    } => {
                        let Some((vi, tl)) = v.video.as_mut() else {
                            continue;
                        };
                        // The marker bit ends a video frame.
                        if *vi == index && data.len() >= 12 && data[1] & 0x80 != 0 {
                            let ts = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
                            let ms = tl.millis(ts);
                            v.stats.video_frame(now_ms, ms, load.stall_ms);
                        }
                    }
                    ClientEvent::Failed(_) => v.stats.failed = true,
                    _ => {}
                }
            }
            while let Some(b) = v.client.poll_output() {
                v.out.extend_from_slice(&b);
            }
            load_stats::send(&mut v.sock, &mut v.out, &mut v.stats);
            load_stats::settle(&mut v.sock, &v.stats, &mut v.lowat);
        }
    }
    run.report(load, viewers.iter().map(|v| &v.stats));
}
