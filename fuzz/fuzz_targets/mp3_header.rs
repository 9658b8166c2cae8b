#![no_main]
//! MPEG audio frame headers and frame iteration; also the small Opus and AV1 header parsers.
use libfuzzer_sys::fuzz_target;
use mist_media::{av1, mp3, opus};

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = mp3::Header::parse(data) {
        assert!(h.frame_length >= 4 || h.layer == 1);
    }
    let (frames, rest) = mp3::frames(data);
    let used: usize = frames.iter().map(|(h, f)| {
        assert_eq!(h.frame_length, f.len());
        f.len()
    }).sum();
    assert!(used + rest.len() <= data.len());
    let _ = opus::packet_samples(data);
    if let Ok(h) = opus::OpusHead::parse(data) {
        let _ = opus::OpusHead::parse(&h.to_bytes()).expect("own OpusHead parses");
    }
    if let Some((s, obu)) = av1::find_sequence_header(data) {
        let _ = av1::build_av1c(&s, obu);
    }
});
