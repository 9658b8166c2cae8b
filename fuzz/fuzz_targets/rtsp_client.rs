//! The RTSP pull client (`rtsp::Client`) against a hostile server: the input is what the server
//! sends, cut in chunks of a size the first byte picks (its bit 7 also asks for UDP, bit 6 gives
//! credentials); every 16 chunks time moves on by 7 s and keep-alives fall due. Whatever comes, the client
//! must not panic, its output queue stays bounded (at most a few requests per chunk), events are
//! well formed (packets only for described tracks), and once it failed it stays quiet.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mist_media::rtsp::{Client, ClientEvent, RtspUrl};
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let chunk = (sel as usize % 64) + 1;
    let url = if sel & 0x40 != 0 {
        "rtsp://u:p@127.0.0.1:8554/cam"
    } else {
        "rtsp://127.0.0.1:8554/cam"
    };
    let url = RtspUrl::parse(url).unwrap();
    let mut c = if sel & 0x80 != 0 {
        Client::with_udp(url, "fuzz", vec![(5000, 5001), (5002, 5003)])
    } else {
        Client::new(url, "fuzz")
    };
    let mut now = Instant::now();
    let mut described: Vec<usize> = Vec::new();
    let mut failed = false;
    for (i, piece) in rest.chunks(chunk).enumerate() {
        let r = c.feed(piece, now);
        // Time moves 7 s every 16 chunks: keep-alives fall due, without one per chunk.
        if i % 16 == 15 {
            now += Duration::from_secs(7);
            c.tick(now);
        }
        let mut out = 0;
        while let Some(b) = c.poll_output() {
            assert!(!b.is_empty());
            out += 1;
        }
        // Each response answers one request; a chunk holds at most `chunk` of them, and
        // requests from the server are answered one each.
        assert!(out <= chunk + 2, "{out} messages out of one chunk");
        let events: Vec<ClientEvent> = std::iter::from_fn(|| c.poll_event()).collect();
        failed |= events.iter().any(|e| matches!(e, ClientEvent::Failed(_)));
        for ev in events {
            match ev {
                ClientEvent::Described { tracks } => {
                    assert!(!tracks.is_empty());
                    described = tracks.iter().map(|t| t.0).collect();
                }
                ClientEvent::Packet { index, .. } => {
                    assert!(described.contains(&index), "packet of an undescribed track");
                }
                // Playing, unless a failure followed in the same chunk.
                ClientEvent::Playing => assert!(c.is_playing() || failed),
                ClientEvent::Failed(_) => {}
            }
        }
        if r.is_err() {
            assert!(failed);
            // After a failure the client sends nothing more, keep-alives included.
            assert_eq!(c.next_deadline(), None);
            return;
        }
    }
    c.teardown();
    assert_eq!(c.next_deadline(), None);
});
