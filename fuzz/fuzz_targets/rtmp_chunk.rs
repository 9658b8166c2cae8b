//! RTMP chunk decoder, message parser and server session on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mist_media::rtmp::{
    chunk::ChunkDecoder, message::Message, ClientMode, ClientSession, ServerEvent, ServerSession,
};

/// Messages decoded (and parsed) until the first error, and whether there was one.
fn decode(data: &[u8], step: usize) -> (Vec<mist_media::rtmp::chunk::RawMessage>, bool) {
    let mut d = ChunkDecoder::new();
    let mut out = Vec::new();
    for piece in data.chunks(step) {
        d.feed(piece);
        loop {
            match d.next_message() {
                Ok(Some(m)) => {
                    let _ = Message::parse(&m);
                    out.push(m);
                }
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}

fuzz_target!(|data: &[u8]| {
    // 1. The chunk decoder alone, fed at once and in pieces whose size the first byte picks: how
    //    the bytes are split must not change the messages (or where an error is found).
    let step = data.first().map_or(1, |&b| b as usize % 64 + 1);
    let whole = decode(data, data.len().max(1));
    let pieces = decode(data, step);
    assert_eq!(whole, pieces);
    // 2. A server session after a valid simple handshake, accepting everything.
    let mut s = ServerSession::new(1);
    let mut hs = vec![3u8; 1537 + 1536];
    hs[5..9].copy_from_slice(&[0, 0, 0, 0]);
    s.feed(&hs);
    s.feed(data);
    while let Ok(Some(e)) = s.poll() {
        let _ = match e {
            ServerEvent::Connect { .. } => s.accept_connect(),
            ServerEvent::Publish {
                stream_id, name, ..
            } => s.accept_publish(stream_id, &name),
            ServerEvent::Play { stream_id, name } => s.accept_play(stream_id, &name),
            _ => Ok(()),
        };
        let _ = s.take_output();
    }
    // 3. A playing client session after a valid S0 S1 S2, fed the bytes as server output.
    let mut c = ClientSession::new("app", "rtmp://h/app", "s", ClientMode::Play, 1);
    c.feed(&[3u8; 3073]);
    c.feed(data);
    while let Ok(Some(_)) = c.poll() {
        let _ = c.take_output();
    }
});
