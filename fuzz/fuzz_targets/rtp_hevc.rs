//! The hevc RTP depacketiser on a run of length-prefixed packets (see common/rtp.rs).
#![no_main]
use libfuzzer_sys::fuzz_target;
#[path = "common/rtp.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    common::run(mist_media::sdp::RtpEncoding::Hevc, data);
});
