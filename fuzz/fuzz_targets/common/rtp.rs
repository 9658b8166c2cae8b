//! Shared driver of the RTP depacketiser targets: the input is a run of datagrams, each behind a
//! 2-byte big-endian length, handled as MistOutRTSP handles a published UDP track: a datagram
//! whose second byte is an RTCP packet type (200–204, RFC 5761's rule) goes to `rtcp::parse` and
//! its sender reports to the `Timeline` and `Reception`; the others go through `Packet::parse`,
//! the `Reception` statistics, a small reorder buffer on a clock that moves 40 ms a datagram, and
//! the depacketiser, whose access units are put on the `Timeline`.
use bytes::Bytes;
use mist_media::rtp::rtcp::{self, unix_millis_from_ntp, RtcpPacket};
use mist_media::rtp::{Depacketizer, Packet, Reception, ReorderBuffer, Timeline, MAX_ACCESS_UNIT};
use mist_media::sdp::RtpEncoding;

pub fn run(encoding: RtpEncoding, data: &[u8]) {
    let clock_rate = match encoding {
        RtpEncoding::H264 | RtpEncoding::Hevc | RtpEncoding::Mpa => 90_000,
        RtpEncoding::AacGeneric { .. } | RtpEncoding::AacLatm => 44_100,
        RtpEncoding::Opus => 48_000,
        RtpEncoding::Pcma | RtpEncoding::Pcmu => 8_000,
    };
    let mut reorder = ReorderBuffer::new(8);
    let mut d = Depacketizer::new(encoding);
    let mut timeline = Timeline::new(clock_rate);
    let mut reception = Reception::new(clock_rate);
    let mut rest = data;
    let mut now_ms = 0u64;
    let check = |d: &mut Depacketizer, timeline: &mut Timeline| {
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
            let _ = timeline.millis(au.timestamp);
            let _ = timeline.wallclock(au.timestamp);
        }
    };
    let mut n_packets = 0u32;
    while rest.len() >= 2 {
        let n = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        let n = n.min(rest.len() - 2);
        let datagram = &rest[2..2 + n];
        rest = &rest[2 + n..];
        now_ms += 40;
        if datagram.len() >= 2 && (200..=204).contains(&datagram[1]) {
            if let Ok(list) = rtcp::parse(datagram) {
                for p in list {
                    if let RtcpPacket::SenderReport(sr) = p {
                        timeline.sender_report(sr.ntp, sr.rtp_time);
                        reception.sender_report(sr.ntp, now_ms * 1000);
                        // The report's own RTP time is at the report's wallclock.
                        assert_eq!(
                            timeline.wallclock(sr.rtp_time),
                            Some(unix_millis_from_ntp(sr.ntp))
                        );
                    }
                }
            }
            continue;
        }
        if let Ok(p) = Packet::parse(Bytes::copy_from_slice(datagram)) {
            reception.packet(p.ssrc, p.sequence, p.timestamp, now_ms * 1000);
            n_packets += 1;
            if n_packets % 16 == 0 {
                let b = reception
                    .report(now_ms * 1000)
                    .expect("a report after packets");
                assert_eq!(b.ssrc, p.ssrc);
            }
            reorder.push_at(p, now_ms);
            assert!(reorder.len() <= 8);
            while let Some(p) = reorder.pop_at(now_ms) {
                let _ = d.push(&p);
                check(&mut d, &mut timeline);
            }
        }
    }
    while let Some(p) = reorder.skip_gap() {
        let _ = d.push(&p);
        check(&mut d, &mut timeline);
    }
    d.flush();
    check(&mut d, &mut timeline);
}
