//! RTMP chunk decoder, message parser and server session on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mist_media::rtmp::{chunk::ChunkDecoder, message::Message, ServerEvent, ServerSession};

fuzz_target!(|data: &[u8]| {
    // 1. The chunk decoder alone, fed in pieces whose size the first byte picks.
    let step = data.first().map_or(1, |&b| b as usize + 1);
    let mut d = ChunkDecoder::new();
    'outer: for piece in data.chunks(step) {
        d.feed(piece);
        loop {
            match d.next_message() {
                Ok(Some(m)) => {
                    let _ = Message::parse(&m);
                }
                Ok(None) => break,
                Err(_) => break 'outer,
            }
        }
    }
    // 2. A server session after a valid simple handshake, accepting everything.
    let mut s = ServerSession::new(1);
    let mut hs = vec![3u8; 1537 + 1536];
    hs[5..9].copy_from_slice(&[0, 0, 0, 0]);
    s.feed(&hs);
    s.feed(data);
    while let Ok(Some(e)) = s.poll() {
        let _ = match e {
            ServerEvent::Connect { .. } => s.accept_connect(),
            ServerEvent::Publish { stream_id, name, .. } => s.accept_publish(stream_id, &name),
            ServerEvent::Play { stream_id, name } => s.accept_play(stream_id, &name),
            _ => Ok(()),
        };
        let _ = s.take_output();
    }
});
