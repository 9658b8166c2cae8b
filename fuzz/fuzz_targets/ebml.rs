//! Matroska/WebM demuxer: arbitrary bytes in arbitrary chunking must not panic, and memory stays
//! bounded by the limits. Frames that come out are re-muxed (live and finalised) and read back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mist_media::ebml::element::Limits;
use mist_media::ebml::{Demuxer, DocType, MkvEvent, WriteMode, Writer, WriterOptions};

fuzz_target!(|data: &[u8]| {
    // First byte picks the chunk size, so split-point bugs are reachable.
    let (chunk, data) = match data.split_first() {
        Some((&c, rest)) => (c as usize * 7 + 1, rest),
        None => return,
    };
    let limit = 1 << 20;
    let mut d = Demuxer::with_limits(Limits {
        max_leaf: limit,
        max_depth: 16,
    });
    let mut tracks = Vec::new();
    let mut frames = Vec::new();
    let mut failed = false;
    'outer: for c in data.chunks(chunk) {
        d.push(c);
        loop {
            match d.poll() {
                Ok(Some(MkvEvent::Tracks(t))) => tracks = t,
                Ok(Some(MkvEvent::Frame(f))) => {
                    if frames.len() < 64 {
                        frames.push(f)
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => {
                    failed = true;
                    break 'outer;
                }
            }
        }
        assert!(d.buffered() as u64 <= limit + 64 + chunk as u64);
    }
    if !failed {
        d.finish();
        while let Ok(Some(_)) = d.poll() {}
    }
    // Seeking to any cue must not panic either.
    if let Some(off) = d.seek_offset(1000) {
        d.seek(off);
        d.push(
            data.get(off.min(data.len() as u64) as usize..)
                .unwrap_or(&[]),
        );
        d.finish();
        while let Ok(Some(_)) = d.poll() {}
    }
    // Whatever was read can be written again.
    for mode in [WriteMode::Live, WriteMode::Finalised] {
        let opts = WriterOptions {
            doc_type: DocType::Matroska,
            mode,
            ..Default::default()
        };
        let Ok(mut w) = Writer::new(&tracks, opts) else {
            break;
        };
        let mut out = Vec::new();
        for f in &frames {
            let _ = w.write_frame(f, &mut out);
        }
        let fin = w.finish();
        out.extend_from_slice(&fin.tail);
        for p in fin.patches {
            let o = p.offset as usize;
            out[o..o + p.bytes.len()].copy_from_slice(&p.bytes);
        }
        let mut r = Demuxer::new();
        r.push(&out);
        r.finish();
        while let Some(ev) = r.poll().expect("our own output reads back") {
            let _ = ev;
        }
    }
});
