//! The one-packet-one-frame RTP depacketiser (Opus RFC 7587, PCMA/PCMU RFC 3551) on a run of
//! length-prefixed packets (see common/rtp.rs); the first byte picks the encoding.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mist_media::sdp::RtpEncoding;
#[path = "common/rtp.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let enc = match sel % 3 {
        0 => RtpEncoding::Opus,
        1 => RtpEncoding::Pcma,
        _ => RtpEncoding::Pcmu,
    };
    common::run(enc, rest);
});
