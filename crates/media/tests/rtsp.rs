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

mod common;

use std::path::Path;

use mist_media::rtp::{Depacketizer, Packet};
use mist_media::rtsp::{
    Answer, Ask, Authenticator, Decoder, Item, Limits, Message, PlayInfo, Request, RtspError,
    ServerConfig, ServerSession, SessionEvent, Step,
};
use mist_media::sdp::{RtpEncoding, SessionDescription};
use mist_media::Codec;

fn capture(name: &str) -> Vec<u8> {
    common::fixture_bytes(&format!("rtsp/{name}"))
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
    let r = d.next_item();
    assert!(matches!(r, Err(RtspError::BodyTooLarge { .. })), "{r:?}");
    let mut d = Decoder::new(Limits::default());
    let mut many = b"OPTIONS * RTSP/1.0\r\n".to_vec();
    for i in 0..10_000 {
        many.extend_from_slice(format!("X-{i}: {i}\r\n").as_bytes());
    }
    let mut failed = false;
    for piece in many.chunks(512) {
        d.push(piece);
        if let Err(e) = d.next_item() {
            assert!(matches!(e, RtspError::HeadTooLarge { .. }), "{e:?}");
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

/// The whole sans-IO stack as a server, with ffmpeg as the player: our decoder and session
/// answer ffmpeg's OPTIONS/DESCRIBE/SETUP/PLAY on a real TCP socket, the SDP comes from
/// `sdp::session_for_tracks`, and the frames of `h264_aac.mp4` go out interleaved through our
/// packetisers. ffmpeg's decoded pictures must be its decode of the file, its AAC packets the
/// file's.
#[test]
fn ffmpeg_plays_our_session_over_tcp() {
    use mist_media::rtp::{PacketBuilder, Packetizer};
    use mist_media::rtsp::message::interleaved_frame;
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};

    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mp4/h264_aac.mp4");
    let data = std::fs::read(&path).unwrap();
    let (tracks, mut frames) = mist_media::mp4::read_all(&data).unwrap();
    frames.sort_by_key(|f| f.dts);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = std::env::temp_dir().join(format!("mist-rtsp-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (vout, aout) = (dir.join("v.md5"), dir.join("a.md5"));
    let child = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-rtsp_transport",
            "tcp",
            "-i",
        ])
        .arg(format!("rtsp://127.0.0.1:{port}/live"))
        .args(["-map", "0:v", "-vsync", "0", "-f", "framemd5"])
        .arg(&vout)
        .args(["-map", "0:a", "-c:a", "copy", "-f", "framemd5"])
        .arg(&aout)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ffmpeg must be installed");
    // Wait for ffmpeg to connect, failing (not hanging) if it exits first.
    listener.set_nonblocking(true).unwrap();
    let mut child = child;
    let mut conn = loop {
        match listener.accept() {
            Ok((c, _)) => break c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if let Some(status) = child.try_wait().unwrap() {
                    panic!("ffmpeg exited before connecting: {status}");
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("{e}"),
        }
    };
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    let mut s = ServerSession::new(ServerConfig::default());
    let mut d = Decoder::new(Limits::default());
    let mut buf = vec![0u8; 4096];
    let mut playing = false;
    while !playing {
        let n = conn.read(&mut buf).unwrap();
        assert!(n > 0, "ffmpeg closed before PLAY");
        d.push(&buf[..n]);
        while let Some(item) = d.next_item().unwrap() {
            let Item::Message(Message::Request(req)) = item else {
                continue;
            };
            let resp = match s.handle(&req) {
                Step::Reply(r) => r,
                Step::Ask(Ask::Describe { path }) => {
                    assert_eq!(path, "/live");
                    let sdp = mist_media::sdp::session_for_tracks(&tracks, "live", "127.0.0.1");
                    s.answer(Answer::Describe(Ok(sdp)))
                }
                Step::Ask(Ask::Setup { transport, .. }) => {
                    assert!(transport.interleaved.is_some());
                    s.answer(Answer::Setup(Ok(transport)))
                }
                Step::Ask(Ask::Play { .. }) => {
                    let info = PlayInfo {
                        range: Some("npt=0.000-".into()),
                        rtp_info: (0..tracks.len()).map(|i| (i, 0, 0)).collect(),
                    };
                    s.answer(Answer::Play(Ok(info)))
                }
                Step::Ask(other) => panic!("unexpected {other:?}"),
            };
            assert_eq!(
                resp.status,
                200,
                "{} answered {resp:?}",
                req.method.as_str()
            );
            conn.write_all(&resp.to_bytes()).unwrap();
        }
        playing = s.poll_event() == Some(SessionEvent::Play) || playing;
    }
    // Media: each set-up track's frames through its packetiser, on its RTP channel.
    let mut out = Vec::new();
    let mut packers: Vec<_> = s
        .tracks()
        .iter()
        .map(|t| {
            let section =
                mist_media::sdp::media_section(&tracks[t.index], 96 + t.index as u8, "x").unwrap();
            let desc = SessionDescription::parse(format!("v=0\r\n{section}").as_bytes()).unwrap();
            let rt = desc.media[0].rtp_track(1).unwrap();
            let pb = PacketBuilder::new(rt.payload_type, 0x1000 + t.index as u32, 0);
            (
                tracks[t.index].id,
                t.transport.interleaved.unwrap().0,
                rt.clock_rate,
                Packetizer::new(rt.encoding, pb, 1400),
            )
        })
        .collect();
    for f in &frames {
        let Some((_, ch, rate, p)) = packers.iter_mut().find(|(id, ..)| *id == f.track) else {
            continue;
        };
        let mut pkts = Vec::new();
        p.packetize((f.pts() * *rate as i64 / 1000) as u32, &f.data, &mut pkts)
            .unwrap();
        for pkt in pkts {
            out.extend_from_slice(&interleaved_frame(*ch, &pkt).unwrap());
        }
    }
    conn.write_all(&out).unwrap();
    conn.shutdown(std::net::Shutdown::Write).unwrap();
    // Drain whatever ffmpeg still says (RTCP receiver reports) until it closes.
    while conn.read(&mut buf).map(|n| n > 0).unwrap_or(false) {}
    let result = child.wait_with_output().unwrap();
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let md5s = |text: &str| -> Vec<(String, String)> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let f: Vec<&str> = l.split(',').map(str::trim).collect();
                (f[4].to_string(), f[5].to_string())
            })
            .collect()
    };
    let reference = |args: &[&str]| {
        let o = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-i"])
            .arg(&path)
            .args(args)
            .args(["-f", "framemd5", "-"])
            .output()
            .unwrap();
        md5s(&String::from_utf8_lossy(&o.stdout))
    };
    let v = md5s(&std::fs::read_to_string(&vout).unwrap());
    let a = md5s(&std::fs::read_to_string(&aout).unwrap());
    assert_eq!(
        v,
        reference(&["-map", "0:v", "-vsync", "0"]),
        "decoded video differs"
    );
    assert_eq!(
        a,
        reference(&["-map", "0:a", "-c:a", "copy"]),
        "AAC packets differ"
    );
}
