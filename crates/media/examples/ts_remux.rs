//! Demuxes a TS file and muxes it again:
//! `cargo run -p mist-media --example ts_remux IN.ts OUT.ts [AUDIO_FRAMES_PER_PES]`.
//! Prints the tracks and the demuxer's counters. Handy for checking the muxer with other tools.

use mist_media::mpegts::{DemuxEvent, Demuxer, Muxer, MuxerOptions};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 && args.len() != 4 {
        eprintln!("usage: ts_remux IN.ts OUT.ts [AUDIO_FRAMES_PER_PES]");
        std::process::exit(2);
    }
    let input = std::fs::read(&args[1]).expect("read input");
    let mut d = Demuxer::new();
    let mut tracks = std::collections::BTreeMap::new();
    let mut frames = Vec::new();
    for chunk in input.chunks(1 << 16) {
        d.push(chunk);
        drain(&mut d, &mut tracks, &mut frames);
    }
    d.flush();
    drain(&mut d, &mut tracks, &mut frames);
    for t in tracks.values() {
        eprintln!(
            "track {:#x}: {:?} {}x{} {} Hz {} ch, init {} bytes",
            t.id,
            t.codec,
            t.width,
            t.height,
            t.rate,
            t.channels,
            t.init.len()
        );
    }
    eprintln!("{:?}", d.stats());
    let tracks: Vec<_> = tracks.into_values().collect();
    let audio_frames_per_pes = args.get(3).map_or(1, |a| a.parse().expect("a number"));
    let opts = MuxerOptions {
        audio_frames_per_pes,
        ..MuxerOptions::default()
    };
    let mut mux = Muxer::new(&tracks, opts).expect("muxer");
    let mut out = Vec::new();
    mux.write_tables(&mut out);
    for f in &frames {
        mux.write_frame(f, &mut out).expect("frame");
    }
    mux.flush(&mut out);
    std::fs::write(&args[2], out).expect("write output");
}

fn drain(
    d: &mut Demuxer,
    tracks: &mut std::collections::BTreeMap<u32, mist_media::Track>,
    frames: &mut Vec<mist_media::Frame>,
) {
    while let Some(ev) = d.poll() {
        match ev {
            DemuxEvent::Track(t) => {
                tracks.insert(t.id, t);
            }
            DemuxEvent::Frame(f) => frames.push(f),
        }
    }
}
