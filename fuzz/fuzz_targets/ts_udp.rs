#![no_main]
//! TS over UDP reassembly (`mpegts::live::LiveTs`): the input is cut into datagrams (a 2-byte
//! length before each), fed as UDP payloads (plain TS or RTP), and every frame that comes out
//! must have a decode time no earlier than the last one of its track.
use libfuzzer_sys::fuzz_target;
use mist_media::mpegts::{live::LiveTs, DemuxEvent};

fuzz_target!(|data: &[u8]| {
    let mut l = LiveTs::new();
    let mut last = std::collections::HashMap::new();
    let mut rest = data;
    while rest.len() >= 2 {
        let n = usize::from(u16::from_be_bytes([rest[0], rest[1]])) % 1600;
        rest = &rest[2..];
        let (d, r) = rest.split_at(n.min(rest.len()));
        rest = r;
        l.push_datagram(d);
        while let Some(ev) = l.poll() {
            if let DemuxEvent::Frame(f) = ev {
                let prev = last.insert(f.track, f.dts);
                assert!(prev.is_none_or(|p| p <= f.dts), "time went back");
            }
        }
    }
    l.flush();
    while l.poll().is_some() {}
    let s = l.stats();
    assert!(s.bad_datagrams <= s.datagrams);
});
