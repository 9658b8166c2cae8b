//! `remux` on damaged input: every fixture, truncated and with bytes overwritten (deterministic
//! pseudo-random mutations), remuxed in memory to every output. Nothing may panic, and the peak of
//! allocated memory must stay within a fixed amount (the 1 MiB read buffer, MP4 read windows
//! clamped to the file, output buffers) plus a small multiple of the input. (Its own test binary, so
//! that no other test's allocations count.)

mod common;

use common::alloc::peak_of;
use std::io::Cursor;
use std::path::Path;

use mist_media::remux::{remux, Input, Output};
use mist_media::MediaError;

#[global_allocator]
static A: common::alloc::Counting = common::alloc::Counting;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const FIXTURES: &[(&str, Input)] = &[
    ("ts/h264_aac.ts", Input::Ts),
    ("ts/hevc_aac.ts", Input::Ts),
    ("flv/testsrc_320x240_1s.flv", Input::Flv),
    ("mp4/h264_aac.mp4", Input::Mp4),
    ("mp4/h264_aac_frag.mp4", Input::Mp4),
    ("mkv/h264_aac.mkv", Input::Mkv),
    ("mkv/vp9_opus.webm", Input::Mkv),
];

const OUTPUTS: &[Output] = &[
    Output::Ts,
    Output::Flv,
    Output::Mp4,
    Output::Fmp4,
    Output::Mkv,
    Output::Webm,
];

#[test]
fn damaged_input_never_panics_and_allocates_in_proportion() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut runs = 0;
    let mut worst = (0usize, String::new());
    for &(name, input) in FIXTURES {
        let orig = std::fs::read(dir.join(name)).unwrap();
        for round in 0..24 {
            let mut data = orig.clone();
            if round > 0 {
                // overwrite a few bytes (with 0xff runs: large lengths), sometimes truncate
                for _ in 0..1 + rng.below(8) {
                    let at = rng.below(data.len());
                    let n = 1 + rng.below(4);
                    let v = if rng.below(2) == 0 {
                        0xff
                    } else {
                        rng.next() as u8
                    };
                    for b in data.iter_mut().skip(at).take(n) {
                        *b = v;
                    }
                }
                if round % 3 == 0 {
                    data.truncate(rng.below(data.len()));
                }
            }
            for &o in OUTPUTS {
                let len = data.len() as u64;
                let d = data.clone();
                let mut result = None;
                let peak = peak_of(|| {
                    result = Some(remux(
                        Cursor::new(d),
                        len,
                        input,
                        Cursor::new(Vec::new()),
                        o,
                    ));
                });
                runs += 1;
                // In memory, every error is about the media: a MediaError inside; the undamaged
                // file fails only where the output can carry none of its codecs.
                if let Some(Err(e)) = &result {
                    let inner = e.get_ref().and_then(|i| i.downcast_ref::<MediaError>());
                    assert!(
                        inner.is_some(),
                        "{name} round {round} -> {o:?}: untyped error {e:?}"
                    );
                    assert!(
                        round > 0 || matches!(inner, Some(MediaError::Unsupported { .. })),
                        "{name} -> {o:?}: {e}"
                    );
                }
                // fixed: read buffer (1 MiB), Vec growth of the output and TS/MKV write buffers
                // (1 MiB + slack each); proportional: frames held, output, copies of the input
                let bound = (4 << 20) + 8 * data.len();
                assert!(
                    peak <= bound,
                    "{name} round {round} -> {o:?}: peak {peak} > {bound}"
                );
                if peak > worst.0 {
                    worst = (peak, format!("{name} round {round} -> {o:?}"));
                }
            }
        }
    }
    eprintln!(
        "{runs} remuxes of damaged input, worst peak {} bytes ({})",
        worst.0, worst.1
    );
}
