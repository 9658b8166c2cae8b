//! SPS, avcC and NAL framing on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mist_media::h264;

fuzz_target!(|data: &[u8]| {
    let _ = h264::Sps::parse(data);
    if let Ok(a) = h264::AvcC::parse(data) {
        let _ = a.parse_sps();
        if let Ok(b) = a.build() {
            assert_eq!(h264::AvcC::parse(&b).as_ref(), Ok(&a));
        }
        let _ = a.to_annexb();
    }
    for n in h264::annexb_nals(data) {
        assert!(!n.is_empty());
        if h264::nal_type(n) == Some(h264::nal::SPS) {
            let _ = h264::Sps::parse(n);
        }
    }
    let mut lp = Vec::new();
    h264::annexb_to_length(data, &mut lp);
    let mut back = Vec::new();
    h264::length_to_annexb(&lp, 4, &mut back).expect("our own length prefixes are valid");
    for size in 1..=4 {
        let _ = h264::is_keyframe(data, size);
        let _ = h264::length_to_annexb(data, size, &mut Vec::new());
    }
});
