//! Shared driver of the RTP depacketiser targets: the input is a run of packets, each behind a
//! 2-byte big-endian length; they go through a small reorder buffer into the depacketiser.
use bytes::Bytes;
use mist_media::rtp::{Depacketizer, Packet, ReorderBuffer, MAX_ACCESS_UNIT};
use mist_media::sdp::RtpEncoding;

pub fn run(encoding: RtpEncoding, data: &[u8]) {
    let mut reorder = ReorderBuffer::new(8);
    let mut d = Depacketizer::new(encoding);
    let mut rest = data;
    let check = |d: &mut Depacketizer| {
        while let Some(au) = d.pull() {
            assert!(au.data.len() <= MAX_ACCESS_UNIT);
            if matches!(encoding, RtpEncoding::H264 | RtpEncoding::Hevc) {
                // Output is whole 4-byte length-prefixed NAL units.
                let mut p = &au.data[..];
                while !p.is_empty() {
                    assert!(p.len() >= 4);
                    let n = u32::from_be_bytes([p[0], p[1], p[2], p[3]]) as usize;
                    assert!(n > 0 && p.len() >= 4 + n);
                    p = &p[4 + n..];
                }
            }
        }
    };
    while rest.len() >= 2 {
        let n = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        let n = n.min(rest.len() - 2);
        let pkt = Bytes::copy_from_slice(&rest[2..2 + n]);
        rest = &rest[2 + n..];
        if let Ok(p) = Packet::parse(pkt) {
            reorder.push(p);
            assert!(reorder.len() <= 8);
            while let Some(p) = reorder.pop() {
                let _ = d.push(&p);
                check(&mut d);
            }
        }
    }
    while let Some(p) = reorder.skip_gap() {
        let _ = d.push(&p);
        check(&mut d);
    }
    d.flush();
    check(&mut d);
}
