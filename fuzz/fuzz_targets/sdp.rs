//! SDP: parse, read every media section as a track, and for each track we understand, our own
//! section for it must parse back to the same codec and configuration.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mist_media::sdp::{media_section, SessionDescription, MAX_MEDIA};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = SessionDescription::parse(data) else {
        return;
    };
    assert!(s.media.len() <= MAX_MEDIA);
    for (i, m) in s.media.iter().enumerate() {
        let Ok(t) = m.rtp_track(i as u32 + 1) else {
            continue;
        };
        let Ok(text) = media_section(&t.track, 96, "trackID=1") else {
            continue;
        };
        let again =
            SessionDescription::parse(format!("v=0\r\n{text}").as_bytes()).expect("our SDP parses");
        let back = again.media[0]
            .rtp_track(i as u32 + 1)
            .expect("our section reads as a track");
        assert_eq!(back.track.codec, t.track.codec);
        assert_eq!(back.track.init, t.track.init, "{text}");
    }
});
