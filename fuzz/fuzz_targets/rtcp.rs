//! RTCP compound packets: whatever parses must build again to packets that parse the same.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mist_media::rtp::rtcp::{self, RtcpPacket};

fuzz_target!(|data: &[u8]| {
    let Ok(packets) = rtcp::parse(data) else {
        return;
    };
    assert!(packets.len() <= 32);
    for p in packets {
        match p {
            RtcpPacket::SenderReport(sr) => {
                let again = rtcp::parse(&sr.build()).expect("our SR parses");
                assert_eq!(again, vec![RtcpPacket::SenderReport(sr)]);
            }
            RtcpPacket::ReceiverReport(rr) => {
                let again = rtcp::parse(&rr.build()).expect("our RR parses");
                assert_eq!(again, vec![RtcpPacket::ReceiverReport(rr)]);
            }
            _ => {}
        }
    }
});
