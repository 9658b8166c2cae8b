//! Real RTSP client exchanges replayed through our decoder and server session.
//!
//! The fixtures in `tests/fixtures/rtsp/` are the bytes ffmpeg 5.1 sent to a scripted server
//! (`fuzz/corpus/rtsp_message` holds the same captures behind a selector byte):
//! - `ffmpeg_publish_tcp.bin`: `ffmpeg -re -t 0.3 -i h264_aac.mp4 -c copy -f rtsp -rtsp_transport tcp`:
//!   OPTIONS, ANNOUNCE (H.264 + AAC SDP), two SETUPs with `interleaved=`, RECORD, `$` frames,
//!   TEARDOWN.
//! - `ffprobe_play_digest.bin`: `ffprobe -rtsp_transport tcp rtsp://u:p@…` answered with a Digest
//!   challenge (realm `mist`, nonce `abc123`): OPTIONS, DESCRIBE twice (the second with
//!   credentials), SETUP, PLAY, each signed for its own URI.

use std::path::Path;

use mist_media::rtp::{Depacketizer, Packet};
use mist_media::rtsp::{
    Answer, Ask, Authenticator, Decoder, Item, Limits, Message, PlayInfo, Request, ServerConfig,
    ServerSession, SessionEvent, Step,
};
use mist_media::sdp::{RtpEncoding, SessionDescription};
use mist_media::Codec;

fn capture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/rtsp")
            .join(name),
    )
    .unwrap()
}

/// Every item of a capture, decoded in 7-byte pieces (so every boundary is crossed).
fn items(data: &[u8]) -> Vec<Item> {
    let mut d = Decoder::new(Limits::default());
    let mut out = Vec::new();
    for piece in data.chunks(7) {
        d.push(piece);
        while let Some(i) = d.next_item().unwrap() {
            out.push(i);
        }
    }
    out
}

#[test]
fn ffmpeg_publish_over_tcp_is_recorded() {
    let mut s = ServerSession::new(ServerConfig {
        // The scripted server of the capture handed out this id.
        session_id: "12345678".into(),
        ..ServerConfig::default()
    });
    let mut sdp = None;
    let mut statuses = Vec::new();
    let mut video = Depacketizer::new(RtpEncoding::H264);
    let mut units = 0;
    let mut keyframes = 0;
    for item in items(&capture("ffmpeg_publish_tcp.bin")) {
        match item {
            Item::Message(Message::Request(req)) => {
                let resp = match s.handle(&req) {
                    Step::Reply(r) => r,
                    Step::Ask(Ask::Announce { path, sdp: body }) => {
                        assert_eq!(path, "/live/cam");
                        sdp = Some(SessionDescription::parse(&body).unwrap());
                        s.answer(Answer::Announce(Ok(())))
                    }
                    Step::Ask(Ask::Setup { transport, .. }) => {
                        s.answer(Answer::Setup(Ok(transport)))
                    }
                    Step::Ask(Ask::Record) => s.answer(Answer::Record(Ok(()))),
                    Step::Ask(other) => panic!("unexpected {other:?}"),
                };
                statuses.push((req.method.as_str().to_string(), resp.status));
            }
            Item::Message(Message::Response(r)) => panic!("a client sent a response: {r:?}"),
            Item::Interleaved { channel, data } => {
                let (track, rtcp) = s.channel(channel).expect("frame on a set-up channel");
                if track == 0 && !rtcp {
                    video.push(&Packet::parse(data).unwrap()).unwrap();
                    while let Some(au) = video.pull() {
                        units += 1;
                        keyframes += au.keyframe as usize;
                    }
                }
            }
        }
    }
    assert_eq!(
        statuses,
        [
            ("OPTIONS", 200),
            ("ANNOUNCE", 200),
            ("SETUP", 200),
            ("SETUP", 200),
            ("RECORD", 200),
            ("TEARDOWN", 200)
        ]
        .map(|(m, s)| (m.to_string(), s))
    );
    assert!(s.is_publishing());
    assert_eq!(s.poll_event(), Some(SessionEvent::Record));
    assert_eq!(s.poll_event(), Some(SessionEvent::Teardown));
    assert!(s.tracks().is_empty());
    let sdp = sdp.unwrap();
    let v = sdp.media[0].rtp_track(1).unwrap();
    let a = sdp.media[1].rtp_track(2).unwrap();
    assert_eq!((v.track.codec, a.track.codec), (Codec::H264, Codec::Aac));
    assert_eq!((v.track.width, v.track.height), (320, 240));
    assert!(
        units > 0 && keyframes > 0,
        "{units} units, {keyframes} keyframes"
    );
}

#[test]
fn ffprobe_digest_play() {
    let auth = Authenticator {
        user: "u".into(),
        password: "p".into(),
        realm: "mist".into(),
        nonce: "abc123".into(),
        allow_basic: false,
    };
    let mut s = ServerSession::new(ServerConfig {
        auth: Some(auth.clone()),
        session_id: "12345678".into(),
        ..ServerConfig::default()
    });
    let sdp = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\na=control:*\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:trackID=1\r\n";
    let mut statuses = Vec::new();
    for item in items(&capture("ffprobe_play_digest.bin")) {
        let Item::Message(Message::Request(req)) = item else {
            panic!("{item:?}")
        };
        let resp = match s.handle(&req) {
            Step::Reply(r) => r,
            Step::Ask(Ask::Describe { path }) => {
                assert_eq!(path, "/live/cam");
                s.answer(Answer::Describe(Ok(sdp.into())))
            }
            Step::Ask(Ask::Setup { track, transport }) => {
                assert_eq!(track, 0);
                assert_eq!(transport.interleaved, Some((0, 1)));
                s.answer(Answer::Setup(Ok(transport)))
            }
            Step::Ask(Ask::Play { range }) => {
                assert_eq!(range.as_deref(), Some("npt=0.000-"));
                s.answer(Answer::Play(Ok(PlayInfo {
                    range,
                    rtp_info: vec![(0, 1, 0)],
                })))
            }
            Step::Ask(other) => panic!("unexpected {other:?}"),
        };
        statuses.push((req.method.as_str().to_string(), resp.status));
    }
    assert_eq!(
        statuses,
        [
            ("OPTIONS", 200),
            ("DESCRIBE", 401),
            ("DESCRIBE", 200),
            ("SETUP", 200),
            ("PLAY", 200)
        ]
        .map(|(m, s)| (m.to_string(), s))
    );
    assert_eq!(s.poll_event(), Some(SessionEvent::Play));
    // The same requests with a wrong password are refused.
    let wrong = Authenticator {
        password: "q".into(),
        ..auth
    };
    let mut s = ServerSession::new(ServerConfig {
        auth: Some(wrong),
        ..ServerConfig::default()
    });
    for item in items(&capture("ffprobe_play_digest.bin")) {
        let Item::Message(Message::Request(req)) = item else {
            continue;
        };
        let req: Request = req;
        if let Step::Reply(r) = s.handle(&req) {
            if req.method.as_str() != "OPTIONS" {
                assert_eq!(r.status, 401, "{}", req.method.as_str());
            }
        } else {
            panic!("{} passed with a wrong password", req.method.as_str());
        }
    }
}

#[test]
fn hostile_streams_end_in_errors_not_growth() {
    // Huge Content-Length, 10 000 headers, an interleaved frame whose length lies.
    let mut d = Decoder::new(Limits::default());
    d.push(b"ANNOUNCE rtsp://h/x RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 4000000000\r\n\r\n");
    assert!(d.next_item().is_err());
    let mut d = Decoder::new(Limits::default());
    let mut many = b"OPTIONS * RTSP/1.0\r\n".to_vec();
    for i in 0..10_000 {
        many.extend_from_slice(format!("X-{i}: {i}\r\n").as_bytes());
    }
    let mut failed = false;
    for piece in many.chunks(512) {
        d.push(piece);
        if d.next_item().is_err() {
            failed = true;
            break;
        }
        assert!(d.buffered() <= Limits::default().max_head + 512);
    }
    assert!(failed);
    let mut d = Decoder::new(Limits::default());
    d.push(b"$\x00\xff\xff");
    d.push(&[0x80; 1000]);
    assert_eq!(d.next_item().unwrap(), None);
}
