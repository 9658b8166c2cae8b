//! The RFC 3640 AAC depacketiser: the first byte picks the AU header layout (13/3/3 as ffmpeg
//! and most cameras, or 16/0/0, or from the byte's bits), the rest is a run of packets.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mist_media::sdp::RtpEncoding;
#[path = "common/rtp.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let encoding = match sel % 4 {
        0 => RtpEncoding::AacGeneric {
            size_length: 13,
            index_length: 3,
            index_delta_length: 3,
        },
        1 => RtpEncoding::AacGeneric {
            size_length: 16,
            index_length: 0,
            index_delta_length: 0,
        },
        _ => RtpEncoding::AacGeneric {
            size_length: (sel >> 2) % 17,
            index_length: (sel >> 4) % 5,
            index_delta_length: (sel >> 6) % 4,
        },
    };
    common::run(encoding, rest);
});
