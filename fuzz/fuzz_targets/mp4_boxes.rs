//! Whole MP4 files: box walk, moov parse, sans-IO reading with a seek, then writing what was read
//! back out (progressive and fragmented) and reading that again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mist_media::mp4::{
    boxes, read_all, FragmentOptions, FragmentWriter, Mp4Reader, Mp4Writer, Need,
};

fuzz_target!(|data: &[u8]| {
    let _ = boxes::walk(data, boxes::MAX_DEPTH, &mut |_, _, _| {});
    let Ok((tracks, frames)) = read_all(data) else {
        // also a seek on whatever moov parses
        return;
    };
    let mut r = Mp4Reader::new(data.len() as u64);
    let mut n = 0;
    while let Ok(Need::Read { offset, len }) = r.need() {
        if r.feed(offset, &data[offset as usize..(offset + len) as usize])
            .is_err()
        {
            break;
        }
        if r.has_moov() && n == 0 {
            let _ = r.seek(1000);
        }
        n += 1;
        if n > 10_000 {
            break;
        }
    }
    if let Ok(mut w) = Mp4Writer::new(tracks.clone()) {
        let mut out = w.start();
        let mut ok = true;
        for f in &frames {
            if w.add(f).is_err() {
                ok = false;
                break;
            }
            out.extend_from_slice(&f.data);
        }
        if ok {
            if let Ok((moov, patch)) = w.finish() {
                out.extend_from_slice(&moov);
                let at = patch.offset as usize;
                out[at..at + 8].copy_from_slice(&patch.bytes);
                let _ = read_all(&out);
            }
            let _ = w.header_moov_first();
        }
    }
    if let Ok(mut w) = FragmentWriter::new(
        tracks,
        FragmentOptions {
            styp: true,
            time_offset_ms: 0,
        },
    ) {
        let _ = w.init_segment();
        for chunk in frames.chunks(16) {
            let _ = w.media_segment(chunk, None);
        }
    }
});
