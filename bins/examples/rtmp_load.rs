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
use load_stats::Peer;
use mio::net::TcpStream;
use mist_media::rtmp::{ClientEvent, ClientMode, ClientSession};
use mist_media::TrackKind;

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
    peer: Peer<TcpStream>,
    session: ClientSession,
    video_track: Option<u32>,
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

    let load = &args.load;
    let mut run = load_stats::Run::new(load);
    let mut viewers: Vec<Viewer> = Vec::with_capacity(load.viewers);

    while run.going() {
        // Open the connections spread over the ramp.
        run.open_due(load, addr, &mut viewers, |i, sock| {
            let mut session =
                ClientSession::new(app, &tc_url, stream, ClientMode::Play, i as u64 + 1);
            let out = session.take_output();
            Viewer {
                peer: Peer::new(sock, out),
                session,
                video_track: None,
            }
        });

        run.wait();
        let now_ms = run.ms();
        for ev in run.events.iter() {
            let v = &mut viewers[ev.token().0];
            if v.peer.stats.failed {
                continue;
            }
            if ev.is_readable() {
                v.peer.read_available(&mut run.buf, |d, _| {
                    v.session.feed(d);
                    true
                });
                loop {
                    match v.session.poll() {
                        Ok(Some(ClientEvent::Track(t))) if t.kind() == TrackKind::Video => {
                            v.video_track = Some(t.id)
                        }
                        Ok(Some(ClientEvent::Frame(f))) if Some(f.track) == v.video_track => {
                            v.peer.stats.video_frame(now_ms, f.dts, load.stall_ms);
                        }
                        Ok(Some(ClientEvent::Refused(_))) | Err(_) => {
                            v.peer.stats.failed = true;
                            break;
                        }
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                    }
                }
                let more = v.session.take_output();
                v.peer.out.extend_from_slice(&more);
            }
            v.peer.send();
            v.peer.settle();
        }
    }
    run.report(load, viewers.iter().map(|v| &v.peer.stats));
}
