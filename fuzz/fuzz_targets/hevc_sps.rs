#![no_main]
//! HEVC SPS and hvcC parsing; a parsed hvcC must serialise and parse back to itself.
use libfuzzer_sys::fuzz_target;
use mist_media::hevc;

fuzz_target!(|data: &[u8]| {
    let _ = hevc::parse_sps(data);
    if let Ok(h) = hevc::Hvcc::parse(data) {
        let _ = h.codec_string();
        if h.other.iter().all(|(_, u)| !u.is_empty()) {
            let again = hevc::Hvcc::parse(&h.to_bytes()).expect("own hvcC parses");
            assert_eq!(again.sps, h.sps);
        }
    }
    // parameter sets cut out of an Annex B stream
    let nals: Vec<&[u8]> = mist_media::h264::annexb_nals(data).collect();
    let pick = |t: u8| nals.iter().copied().filter(|n| hevc::nal_type(n) == Some(t)).collect::<Vec<_>>();
    if let Ok(h) = hevc::Hvcc::from_parameter_sets(&pick(hevc::NAL_VPS), &pick(hevc::NAL_SPS), &pick(hevc::NAL_PPS)) {
        let _ = hevc::Hvcc::parse(&h.to_bytes()).expect("built hvcC parses");
    }
});
