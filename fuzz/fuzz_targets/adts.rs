//! ADTS framing and AudioSpecificConfig on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mist_media::aac::{adts_frames, AdtsHeader, AudioSpecificConfig};

fuzz_target!(|data: &[u8]| {
    for f in adts_frames(data) {
        let Ok((h, payload)) = f else { break };
        assert!(payload.len() <= h.frame_length);
        if let Ok(built) = AdtsHeader::build(&h.asc(), payload.len()) {
            let again = AdtsHeader::parse(&built).expect("our own header parses");
            assert_eq!(
                (again.rate_index, again.channel_config, again.frame_length),
                (h.rate_index, h.channel_config, payload.len() + 7)
            );
        }
    }
    if let Ok(asc) = AudioSpecificConfig::parse(data) {
        let _ = asc.channels();
        if asc.object_type <= 30 && asc.ext_rate.is_none() {
            if let Ok(b) = AudioSpecificConfig::build(asc.object_type, asc.rate, asc.channels()) {
                let p = AudioSpecificConfig::parse(&b).expect("our own ASC parses");
                assert_eq!(
                    (p.object_type, p.rate, p.channels()),
                    (asc.object_type, asc.rate, asc.channels())
                );
            }
        }
    }
});
