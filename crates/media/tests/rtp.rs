//! RTP interop with ffmpeg, both ways.
//!
//! ffmpeg → us: ffmpeg's RTP muxer sends a fixture's track to UDP sockets of this test and writes
//! the SDP; we parse that SDP, depacketise what arrived and compare every access unit, byte for
//! byte (MD5), with ffmpeg's own demux of the same file (`-c copy -f framemd5`).
//!
//! us → ffmpeg: we read a fixture with our MP4 reader, write the SDP and packetise the frames to
//! a UDP port ffmpeg listens on; ffmpeg decodes them, and every decoded picture / audio frame
//! must be identical to ffmpeg's decode of the original file.
//!
//! ffmpeg must be installed (scripts/test installs it); nothing is skipped without it.

mod common;

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use md5::{Digest, Md5};
use mist_media::rtp::rtcp::{self, RtcpPacket};
use mist_media::rtp::{Depacketizer, Packet, PacketBuilder, Packetizer, ReorderBuffer, Timeline};
use mist_media::sdp::{self, RtpEncoding, SessionDescription};
use mist_media::Codec;

fn fixture(dir: &str, name: &str) -> PathBuf {
    common::fixture(dir).join(name)
}

fn tmp(name: &str) -> PathBuf {
    common::tmp_dir("rtp-test").join(name)
}

fn md5_hex(d: &[u8]) -> String {
    Md5::digest(d).iter().map(|b| format!("{b:02x}")).collect()
}

/// (size, md5) of every packet (`-c copy`) or decoded frame of `map` in `input`, as ffmpeg's
/// framemd5 muxer reports them.
fn framemd5(args: &[&str]) -> Vec<(usize, String)> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error"])
        .args(args)
        .args(["-f", "framemd5", "-"])
        .output()
        .expect("ffmpeg must be installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split(',').map(str::trim).collect();
            (f[4].parse().unwrap(), f[5].to_string())
        })
        .collect()
}

/// Receives what ffmpeg's RTP muxer sends for `map` of `input` (with `extra` output options),
/// and returns the SDP it wrote, the RTP datagrams in arrival order and the RTCP ones.
fn ffmpeg_rtp(input: &Path, map: &str, extra: &[&str]) -> (String, Vec<Bytes>, Vec<Vec<u8>>) {
    let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let rtcp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = rtp.local_addr().unwrap().port();
    let rtcp_port = rtcp.local_addr().unwrap().port();
    rtp.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let sdp_path = tmp(&format!("ffmpeg-{port}.sdp"));
    let (done_tx, done_rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 65536];
        loop {
            match rtp.recv(&mut buf) {
                Ok(n) => got.push(Bytes::copy_from_slice(&buf[..n])),
                Err(_) => {
                    if done_rx.try_recv().is_ok() {
                        return got;
                    }
                }
            }
        }
    });
    let url = format!("rtp://127.0.0.1:{port}?rtcpport={rtcp_port}&pkt_size=1200");
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(input)
        .args(["-map", map, "-c", "copy"])
        .args(extra)
        .args(["-f", "rtp", "-sdp_file"])
        .arg(&sdp_path)
        .arg(url)
        .output()
        .expect("ffmpeg must be installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    done_tx.send(()).unwrap();
    let got = reader.join().unwrap();
    rtcp.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut reports = Vec::new();
    let mut buf = vec![0u8; 65536];
    while let Ok(n) = rtcp.recv(&mut buf) {
        reports.push(buf[..n].to_vec());
    }
    (std::fs::read_to_string(&sdp_path).unwrap(), got, reports)
}

/// ffmpeg sends `map` of `input` over RTP; our depacketised units must be ffmpeg's packets.
fn depacketise_matches_ffmpeg(input: &Path, map: &str, extra: &[&str], expect: RtpEncoding) {
    depacketise_matches_ffmpeg_but_tail(input, map, extra, expect, 0)
}

/// As above; ffmpeg's AAC and MPEG audio RTP muxers aggregate several frames per packet and do
/// not send what is still aggregated when the input ends, so the last `unsent` frames of its
/// demux may be missing from what we receive.
fn depacketise_matches_ffmpeg_but_tail(
    input: &Path,
    map: &str,
    extra: &[&str],
    expect: RtpEncoding,
    unsent: usize,
) {
    let (sdp_text, datagrams, reports) = ffmpeg_rtp(input, map, extra);
    // ffmpeg sends a sender report with its first packet: same SSRC, an RTP time of the stream.
    let first = Packet::parse(datagrams[0].clone()).unwrap();
    let srs: Vec<_> = reports
        .iter()
        .flat_map(|r| rtcp::parse(r).unwrap())
        .filter_map(|p| match p {
            RtcpPacket::SenderReport(sr) => Some(sr),
            _ => None,
        })
        .collect();
    assert!(!srs.is_empty(), "no RTCP sender report from ffmpeg");
    assert_eq!(srs[0].ssrc, first.ssrc);
    let mut timeline = Timeline::new(90_000);
    timeline.sender_report(srs[0].ntp, srs[0].rtp_time);
    assert!(timeline.wallclock(srs[0].rtp_time).is_some());
    let sdp = SessionDescription::parse(sdp_text.as_bytes()).unwrap();
    assert_eq!(sdp.media.len(), 1, "{sdp_text}");
    let track = sdp.media[0].rtp_track(1).unwrap();
    assert_eq!(track.encoding, expect, "{sdp_text}");
    let mut reorder = ReorderBuffer::new(64);
    let mut depack = Depacketizer::new(track.encoding);
    let mut units = Vec::new();
    let mut feed = |p: Packet, d: &mut Depacketizer| {
        d.push(&p).unwrap();
        while let Some(au) = d.pull() {
            units.push(au);
        }
    };
    for d in datagrams {
        reorder.push(Packet::parse(d).unwrap());
        while let Some(p) = reorder.pop() {
            feed(p, &mut depack);
        }
    }
    while let Some(p) = reorder.skip_gap() {
        feed(p, &mut depack);
    }
    depack.flush();
    while let Some(au) = depack.pull() {
        units.push(au);
    }
    assert_eq!(reorder.lost, 0, "UDP loss on loopback");
    let ours: Vec<(usize, String)> = units
        .iter()
        .map(|u| (u.data.len(), md5_hex(&u.data)))
        .collect();
    let input_s = input.to_str().unwrap();
    let theirs = framemd5(&["-i", input_s, "-map", map, "-c", "copy"]);
    assert!(!theirs.is_empty());
    assert!(
        ours.len() <= theirs.len() && ours.len() + unsent >= theirs.len(),
        "{} units, ffmpeg's demux has {}",
        ours.len(),
        theirs.len()
    );
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(a, b, "unit {i} differs from ffmpeg's demux");
    }
    // Timestamps: one per unit, never going backwards by more than the B-frame reorder depth.
    assert!(units.iter().any(|u| u.keyframe));
}

#[test]
fn h264_from_ffmpeg() {
    depacketise_matches_ffmpeg(
        &fixture("mp4", "h264_aac.mp4"),
        "0:v",
        &[],
        RtpEncoding::H264,
    );
}

#[test]
fn h264_fu_a_from_ffmpeg_small_packets() {
    // Small packets force FU-A on nearly every NAL unit.
    depacketise_matches_ffmpeg(
        &fixture("mp4", "h264_negcts.mp4"),
        "0:v",
        &["-payload_type", "97", "-packetsize", "300"],
        RtpEncoding::H264,
    );
}

#[test]
fn hevc_from_ffmpeg() {
    depacketise_matches_ffmpeg(
        &fixture("mp4", "hevc_aac.mp4"),
        "0:v",
        &[],
        RtpEncoding::Hevc,
    );
}

#[test]
fn aac_from_ffmpeg() {
    depacketise_matches_ffmpeg_but_tail(
        &fixture("mp4", "h264_aac.mp4"),
        "0:a",
        &[],
        RtpEncoding::AacGeneric {
            size_length: 13,
            index_length: 3,
            index_delta_length: 3,
        },
        5,
    );
}

#[test]
fn aac_latm_from_ffmpeg() {
    depacketise_matches_ffmpeg(
        &fixture("mp4", "h264_aac.mp4"),
        "0:a",
        &["-rtpflags", "latm"],
        RtpEncoding::AacLatm,
    );
}

#[test]
fn opus_from_ffmpeg() {
    depacketise_matches_ffmpeg(&fixture("mp4", "opus.mp4"), "0:a", &[], RtpEncoding::Opus);
}

#[test]
fn mp3_from_ffmpeg() {
    depacketise_matches_ffmpeg_but_tail(
        &fixture("ts", "h264_mp3.ts"),
        "0:a",
        &[],
        RtpEncoding::Mpa,
        5,
    );
}

/// Our packetiser → ffmpeg: the frames of `codec` in `mp4` are sent twice in a row (so the
/// decoder's reorder delay is covered without waiting for ffmpeg's input timeout). Video: the
/// first pass's decoded pictures must be ffmpeg's decode of the file. Audio: ffmpeg's demux of
/// our RTP (`-c copy`) must give the file's packets (decoded audio differs by the priming and
/// pre-skip the MP4 edit list removes, which RTP does not carry).
fn ffmpeg_decodes_ours(file: &str, codec: Codec, map: &str) {
    let (path, tracks, frames) = if file.ends_with(".ts") {
        // Through the remux demuxer (MPEG-TS), for codecs no MP4 fixture has.
        use mist_media::remux::{Demux, Event, Input};
        let path = fixture("ts", file);
        let f = std::fs::File::open(&path).unwrap();
        let len = f.metadata().unwrap().len();
        let mut d = Demux::new(f, len, Input::from_path(&path).unwrap());
        let (mut tracks, mut frames) = (Vec::new(), Vec::new());
        while let Some(e) = d.next_event().unwrap() {
            match e {
                Event::Track(t) => tracks.push(t),
                Event::Frame(f) => frames.push(f),
                Event::TracksComplete => {}
            }
        }
        (path, tracks, frames)
    } else {
        let path = fixture("mp4", file);
        let data = std::fs::read(&path).unwrap();
        let (tracks, frames) = mist_media::mp4::read_all(&data).unwrap();
        (path, tracks, frames)
    };
    let track = tracks.iter().find(|t| t.codec == codec).unwrap().clone();
    let frames: Vec<_> = frames.into_iter().filter(|f| f.track == track.id).collect();
    let port = {
        // A free even port pair for ffmpeg to listen on.
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port() & !1
    };
    let section = sdp::media_section(&track, 96, "trackID=1").unwrap();
    let desc = SessionDescription::parse(format!("v=0\r\n{section}").as_bytes()).unwrap();
    let rtp_track = desc.media[0].rtp_track(1).unwrap();
    let text = sdp::session_for_tracks(std::slice::from_ref(&track), "test", "127.0.0.1")
        .replace(" 0 RTP/AVP", &format!(" {port} RTP/AVP"))
        .replace("0.0.0.0", "127.0.0.1");
    let sdp_path = tmp(&format!("ours-{port}.sdp"));
    std::fs::write(&sdp_path, &text).unwrap();

    let video = codec.kind() == mist_media::TrackKind::Video;
    let copy: &[&str] = if video { &[] } else { &["-c", "copy"] };
    let mut args = vec!["-i", path.to_str().unwrap(), "-map", map];
    args.extend_from_slice(copy);
    let theirs = framemd5(&args);
    let frames_arg = if video { "-frames:v" } else { "-frames:a" };
    let mut child = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "debug",
            "-protocol_whitelist",
            "file,udp,rtp",
            "-i",
        ])
        .arg(&sdp_path)
        .args(["-map", "0"])
        .args(copy)
        .args([
            "-vsync",
            "0",
            frames_arg,
            &theirs.len().to_string(),
            "-f",
            "framemd5",
            "-",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ffmpeg must be installed");
    let stderr = child.stderr.take().unwrap();
    let (ready_tx, ready_rx) = mpsc::channel();
    let log = std::thread::spawn(move || {
        let mut opened = 0;
        let mut lines = Vec::new();
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            if l.contains("receive buffer size reported") {
                opened += 1;
                if opened == 2 {
                    let _ = ready_tx.send(());
                }
            }
            lines.push(l);
        }
        lines
    });
    // ffmpeg has opened its RTP and RTCP sockets once it says so; until then nothing is sent.
    ready_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("ffmpeg never opened its UDP ports");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut pack = Packetizer::new(
        rtp_track.encoding,
        PacketBuilder::new(rtp_track.payload_type, 0x4d495354, 1000),
        1200,
    );
    let rate = rtp_track.clock_rate as i64;
    let span = frames
        .last()
        .map(|f| f.pts() - frames[0].dts + 1000)
        .unwrap_or(1000);
    for pass in 0..2i64 {
        for f in &frames {
            let ts = ((f.pts() + pass * span) * rate / 1000) as u32;
            let mut pkts = Vec::new();
            pack.packetize(ts, &f.data, &mut pkts).unwrap();
            for p in pkts {
                sock.send_to(&p, ("127.0.0.1", port)).unwrap();
            }
            // Keep well under ffmpeg's socket buffer; a pause is not an assertion.
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let out = child.wait_with_output().unwrap();
    let log = log.join().unwrap();
    assert!(out.status.success(), "{}", log.join("\n"));
    let ours: Vec<(usize, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split(',').map(str::trim).collect();
            (f[4].parse().unwrap(), f[5].to_string())
        })
        .collect();
    assert_eq!(ours.len(), theirs.len());
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(a, b, "decoded frame {i} differs");
    }
}

#[test]
fn ffmpeg_decodes_our_h264() {
    ffmpeg_decodes_ours("h264_aac.mp4", Codec::H264, "0:v");
}

#[test]
fn ffmpeg_decodes_our_hevc() {
    ffmpeg_decodes_ours("hevc_aac.mp4", Codec::Hevc, "0:v");
}

#[test]
fn ffmpeg_decodes_our_aac() {
    ffmpeg_decodes_ours("h264_aac.mp4", Codec::Aac, "0:a");
}

#[test]
fn ffmpeg_decodes_our_mp3() {
    ffmpeg_decodes_ours("h264_mp3.ts", Codec::Mp3, "0:a");
}

#[test]
fn ffmpeg_decodes_our_opus() {
    ffmpeg_decodes_ours("opus.mp4", Codec::Opus, "0:a");
}

/// G.711 from ffmpeg: the samples we take out of its RTP are the bytes its encoder made.
fn g711_from_ffmpeg(encoder: &str, format: &str, expect: RtpEncoding) {
    let input = fixture("mp4", "h264_aac.mp4");
    let transcode = ["-c:a", encoder, "-ar", "8000", "-ac", "1"];
    let (sdp_text, datagrams, _) = ffmpeg_rtp(&input, "0:a", &transcode);
    let sdp = SessionDescription::parse(sdp_text.as_bytes()).unwrap();
    let track = sdp.media[0].rtp_track(1).unwrap();
    assert_eq!(
        (track.encoding, track.clock_rate),
        (expect, 8000),
        "{sdp_text}"
    );
    let mut depack = Depacketizer::new(track.encoding);
    let mut ours = Vec::new();
    let mut next_ts = None;
    for d in datagrams {
        depack.push(&Packet::parse(d).unwrap()).unwrap();
        while let Some(au) = depack.pull() {
            // One sample per byte: each packet starts where the previous one ended.
            if let Some(t) = next_ts {
                assert_eq!(au.timestamp, t);
            }
            next_ts = Some(au.timestamp.wrapping_add(au.data.len() as u32));
            ours.extend_from_slice(&au.data);
        }
    }
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(&input)
        .args(["-map", "0:a"])
        .args(transcode)
        .args(["-f", format, "-"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!ours.is_empty());
    assert_eq!(ours.len(), out.stdout.len());
    assert!(ours == out.stdout, "samples differ");
}

#[test]
fn pcma_from_ffmpeg() {
    g711_from_ffmpeg("pcm_alaw", "alaw", RtpEncoding::Pcma);
}

#[test]
fn pcmu_from_ffmpeg() {
    g711_from_ffmpeg("pcm_mulaw", "mulaw", RtpEncoding::Pcmu);
}
