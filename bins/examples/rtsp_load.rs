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
use load_stats::Peer;
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
    peer: Peer<TcpStream>,
    client: Client,
    /// Media-section index and RTP clock of the video track.
    video: Option<(usize, Timeline)>,
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
        run.open_due(load, addr, &mut viewers, |_, sock| {
            let mut client = Client::new(url.clone(), ua);
            let mut out = Vec::new();
            while let Some(b) = client.poll_output() {
                out.extend_from_slice(&b);
            }
            Viewer {
                peer: Peer::new(sock, out),
                client,
                video: None,
            }
        });

        run.wait();
        let now = Instant::now();
        let now_ms = now.duration_since(run.t0).as_millis() as i64;
        let mut touched: Vec<usize> = run.events.iter().map(|e| e.token().0).collect();
        if now >= next_tick {
            // Keep-alives: every viewer once a second.
            next_tick = now + Duration::from_secs(1);
            for v in viewers.iter_mut().filter(|v| !v.peer.stats.failed) {
                v.client.tick(now);
            }
            touched.extend(0..viewers.len());
        }
        for i in touched {
            let v = &mut viewers[i];
            if v.peer.stats.failed {
                continue;
            }
            v.peer
                .read_available(&mut run.buf, |d, _| v.client.feed(d, now).is_ok());
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
                            v.peer.stats.video_frame(now_ms, ms, load.stall_ms);
                        }
                    }
                    ClientEvent::Failed(_) => v.peer.stats.failed = true,
                    _ => {}
                }
            }
            while let Some(b) = v.client.poll_output() {
                v.peer.out.extend_from_slice(&b);
            }
            v.peer.send();
            v.peer.settle();
        }
    }
    run.report(load, viewers.iter().map(|v| &v.peer.stats));
}
