//! Hostile MP4 input must not make the reader allocate far beyond the input: a counting allocator
//! tracks the peak while malformed and mutated files are read. (Its own test binary, so that no
//! other test's allocations count.)

mod common;

use common::alloc::peak_of;
use std::path::Path;

use mist_media::mp4::{demux_segment, parse_moov, read_all};

#[global_allocator]
static A: common::alloc::Counting = common::alloc::Counting;

fn bx(typ: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
    v.extend_from_slice(typ);
    v.extend_from_slice(body);
    v
}

#[test]
fn hostile_input_allocates_little() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mp4");
    let frag = std::fs::read(dir.join("h264_aac_frag.mp4")).unwrap();
    let moov_at = frag.windows(4).position(|w| w == b"moov").unwrap() - 4;
    let moov_len = u32::from_be_bytes(frag[moov_at..moov_at + 4].try_into().unwrap()) as usize;
    let head = &frag[..moov_at + moov_len];
    let movie = parse_moov(&frag[moov_at + 8..moov_at + moov_len]).unwrap();

    // a moof of 64 truns with no per-sample fields claiming 2^32-1 samples each, and 64 claiming
    // the per-trun maximum: about 1.3 KB of input
    let mut traf = bx(b"tfhd", &[0, 2, 0, 0, 0, 0, 0, 1]);
    for _ in 0..64 {
        traf.extend(bx(b"trun", &[0, 0, 0, 0, 0, 0, 0x40, 0]));
    }
    let mut moof = bx(b"mfhd", &[0, 0, 0, 0, 0, 0, 0, 1]);
    moof.extend(bx(b"traf", &traf));
    let mut file = head.to_vec();
    file.extend(bx(b"moof", &moof));
    let p = peak_of(|| {
        let _ = read_all(&file);
        let _ = demux_segment(&movie, bx(b"moof", &moof), &mut [0, 0]);
    });
    assert!(p < 4 << 20, "peak {p} bytes for a {} byte moof", moof.len());

    // huge counts in stsz/stco/stts/stss/ctts/trun: each field set to 2^32-1 in turn
    let prog = std::fs::read(dir.join("h264_aac.mp4")).unwrap();
    for (src, name) in [
        (&prog, &b"stsz"[..]),
        (&prog, b"stco"),
        (&prog, b"stts"),
        (&prog, b"stss"),
        (&prog, b"ctts"),
        (&prog, b"stsc"),
        (&frag, b"trun"),
    ] {
        let i = src.windows(4).position(|w| w == name).unwrap();
        for at in [8, 12] {
            let mut d = src.clone();
            d[i + at..i + at + 4].copy_from_slice(&[0xff; 4]);
            let p = peak_of(|| {
                let _ = read_all(&d);
            });
            // the frames of the file itself are copied out (< 100 KB); the rest is index
            assert!(p < 1 << 20, "{}: peak {p}", String::from_utf8_lossy(name));
        }
    }

    // the counter counts: a valid file's frames are copied out
    assert!(peak_of(|| drop(read_all(&prog).unwrap())) > 40_000);

    // box sizes claiming 2^60 and 2^32-1 at every top-level and moov-level header
    for (i, _) in prog
        .windows(4)
        .enumerate()
        .filter(|(_, w)| matches!(*w, b"moov" | b"trak" | b"mdat" | b"stbl" | b"mdia"))
    {
        let mut d = prog.clone();
        d[i - 4..i].copy_from_slice(&[0xff; 4]);
        let p = peak_of(|| {
            let _ = read_all(&d);
        });
        assert!(p < 1 << 20, "peak {p}");
    }
}
