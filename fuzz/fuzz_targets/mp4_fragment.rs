//! `moof` bodies and in-memory segments against the moov of a real fragmented file (ffmpeg's), and whole fragmented files
//! built from that moov followed by the input.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mist_media::mp4::{demux_segment, parse_moof, parse_moov, read_all, Movie};

static FRAG: &[u8] = include_bytes!("../../crates/media/tests/fixtures/mp4/h264_aac_frag.mp4");

fn moov_range() -> (usize, usize) {
    let i = FRAG.windows(4).position(|w| w == b"moov").unwrap() - 4;
    let len = u32::from_be_bytes(FRAG[i..i + 4].try_into().unwrap()) as usize;
    (i, i + len)
}

fn movie() -> &'static Movie {
    static M: OnceLock<Movie> = OnceLock::new();
    M.get_or_init(|| {
        let (a, b) = moov_range();
        parse_moov(&FRAG[a + 8..b]).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let m = movie();
    let mut next = vec![0i64; m.tracks.len()];
    let mut out = Vec::new();
    let _ = parse_moof(data, 0, m, &mut next, &mut out);
    // the input as an in-memory media segment
    let _ = demux_segment(m, data.to_vec(), &mut next);
    // the same bytes as the top-level boxes after ftyp+moov
    let (_, end) = moov_range();
    let mut file = FRAG[..end].to_vec();
    file.extend_from_slice(data);
    let _ = read_all(&file);
});
