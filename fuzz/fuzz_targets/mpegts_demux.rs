#![no_main]
//! MPEG-TS demuxer on hostile bytes, in hostile chunking; whatever it yields is muxed again
//! (with 1–8 audio frames per PES, from the same first byte).
use libfuzzer_sys::fuzz_target;
use mist_media::mpegts::{DemuxEvent, Demuxer, Muxer, MuxerOptions};

fuzz_target!(|data: &[u8]| {
    let Some((&chunk_byte, data)) = data.split_first() else { return };
    let chunk = usize::from(chunk_byte) * 7 + 1;
    let mut d = Demuxer::new();
    let mut tracks = std::collections::BTreeMap::new();
    let mut frames = Vec::new();
    for c in data.chunks(chunk) {
        d.push(c);
        while let Some(ev) = d.poll() {
            match ev {
                DemuxEvent::Track(t) => {
                    tracks.insert(t.id, t);
                }
                DemuxEvent::Frame(f) => frames.push(f),
            }
        }
    }
    d.flush();
    while let Some(ev) = d.poll() {
        match ev {
            DemuxEvent::Track(t) => {
                tracks.insert(t.id, t);
            }
            DemuxEvent::Frame(f) => frames.push(f),
        }
    }
    let tracks: Vec<_> = tracks.into_values().collect();
    let opts = MuxerOptions { audio_frames_per_pes: usize::from(chunk_byte % 8) + 1, ..MuxerOptions::default() };
    if let Ok(mut m) = Muxer::new(&tracks, opts) {
        let mut out = Vec::new();
        m.start_segment(&mut out);
        for f in &frames {
            let _ = m.write_frame(f, &mut out);
        }
        m.flush(&mut out);
        assert_eq!(out.len() % 188, 0);
    }
});
