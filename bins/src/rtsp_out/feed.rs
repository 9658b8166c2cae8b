//! A played stream: one shared-memory reader, one packetiser per track, the packets since the
//! newest keyframe, and the viewers those packets go to.

use super::{pt_for, MTU, SR_EVERY};
use bytes::Bytes;
use mist_connector::ConnId;
use mist_core::debug;
use mist_media::rtp::{rtcp, PacketBuilder, Packetizer};
use mist_media::sdp::SessionDescription;
use mist_media::{Track, TrackKind};
use mist_shm::{ReadEvent, ReaderInfo, ShmError, StreamReader};
use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// Bytes of packets kept since the newest keyframe; beyond it new viewers wait for the next one.
const GOP_MAX: usize = 32 << 20;
/// Frames read from one stream per loop turn before others get a go.
const FRAMES_PER_TURN: usize = 2000;
/// How far ahead of real time a VoD feed sends.
const VOD_AHEAD_MS: i64 = 500;
/// A stream without viewers is dropped after this long (a PLAY may be on its way).
const LINGER: Duration = Duration::from_secs(5);

/// Hands packets to viewers: (viewers, track, packets, whether they are RTCP).
pub type Deliver<'a> = dyn FnMut(&[ConnId], u32, &[Bytes], bool) + 'a;

/// Where one set-up track's packets go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Out {
    /// Interleaved on the RTSP connection: (RTP channel, RTCP channel).
    Tcp(u8, u8),
    /// UDP unicast: (RTP address, RTCP address).
    Udp(SocketAddr, SocketAddr),
}

/// One playing connection.
pub struct Viewer {
    /// The feed (key of the app's feed table) this viewer is attached to.
    pub feed: String,
    outs: Vec<(u32, Out)>,
    /// A users-table slot, so the controller counts this viewer with its address.
    stats: Option<StreamReader>,
    bytes: u64,
    /// The viewer's address (the CONN_STOP payload).
    pub host: String,
}

impl Viewer {
    pub fn new(feed: &str, stream: &str, outs: Vec<(u32, Out)>, host: &str) -> Viewer {
        let stats = StreamReader::open(
            stream,
            ReaderInfo {
                connector: "RTSP".into(),
                host: host.into(),
            },
        )
        .ok();
        Viewer {
            feed: feed.to_string(),
            outs,
            stats,
            bytes: 0,
            host: host.to_string(),
        }
    }

    /// Sends `pkts` of `track` (RTP, or RTCP when `rtcp`) the way this viewer set the track up:
    /// interleaved frames through `tcp`, datagrams from the shared UDP pair. `framed` holds the
    /// `$`-framed packets per channel, built once and shared by every viewer of that channel.
    pub fn send(
        &mut self,
        track: u32,
        pkts: &[Bytes],
        rtcp: bool,
        udp: Option<&super::UdpPair>,
        framed: &mut Framed,
        tcp: &mut dyn FnMut(Bytes),
    ) {
        for (t, out) in &self.outs {
            if *t != track {
                continue;
            }
            if let Out::Tcp(a, b) = *out {
                let ch = if rtcp { b } else { a };
                for f in framed.get(ch, pkts) {
                    self.bytes += f.len() as u64;
                    tcp(f.clone());
                }
                continue;
            }
            for p in pkts {
                self.bytes += p.len() as u64;
                match *out {
                    Out::Tcp(..) => {}
                    Out::Udp(to_rtp, to_rtcp) => {
                        if let Some(u) = udp {
                            let (s, to): (&UdpSocket, _) = if rtcp {
                                (&u.rtcp, to_rtcp)
                            } else {
                                (&u.rtp, to_rtp)
                            };
                            // A full socket buffer drops the packet, as the network would.
                            let _ = s.send_to(p, to);
                        }
                    }
                }
            }
        }
    }

    pub fn report(&mut self) {
        if let Some(s) = &mut self.stats {
            s.report(self.bytes, 0);
        }
    }
}

/// Packets framed for interleaving (`$`, channel, length, packet), per channel, built on first
/// use for one batch of packets.
#[derive(Default)]
pub struct Framed(Vec<(u8, Vec<Bytes>)>);

impl Framed {
    fn get(&mut self, ch: u8, pkts: &[Bytes]) -> &[Bytes] {
        let i = match self.0.iter().position(|(c, _)| *c == ch) {
            Some(i) => i,
            None => {
                let v = pkts
                    .iter()
                    .filter_map(|p| {
                        let f = mist_media::rtsp::message::interleaved_frame(ch, p)?;
                        Some(Bytes::from(f))
                    })
                    .collect();
                self.0.push((ch, v));
                self.0.len() - 1
            }
        };
        &self.0[i].1
    }
}

/// The SSRC of a track of a stream in this process (the SETUP answer names it before the
/// packetiser exists).
pub fn ssrc_for(seed: u64, stream: &str, track: u32) -> u32 {
    // FNV-1a over the name, mixed with the process seed and the track id.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for b in stream.bytes().chain(track.to_le_bytes()) {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h ^ (h >> 32)) as u32
}

/// RTP time of `ms` in a `clock` Hz clock (wrapping, as RTP times do).
fn rtp_time(ms: i64, clock: u32) -> u32 {
    (ms as i128 * clock as i128 / 1000) as i64 as u32
}

struct TrackOut {
    pack: Packetizer,
    clock: u32,
    ssrc: u32,
    /// (ms, RTP time) of the last frame sent.
    last: Option<(i64, u32)>,
}

impl TrackOut {
    fn new(seed: u64, stream: &str, track: &Track) -> Option<TrackOut> {
        let m = mist_media::sdp::media_section(track, pt_for(track), "x").ok()?;
        let sdp = SessionDescription::parse(format!("v=0\r\n{m}").as_bytes()).ok()?;
        let rt = sdp.media.first()?.rtp_track(track.id).ok()?;
        let ssrc = ssrc_for(seed, stream, track.id);
        let first_seq = (ssrc_for(seed.rotate_left(17), stream, track.id) & 0x7fff) as u16;
        Some(TrackOut {
            pack: Packetizer::new(
                rt.encoding,
                PacketBuilder::new(rt.payload_type, ssrc, first_seq),
                MTU,
            ),
            clock: rt.clock_rate,
            ssrc,
            last: None,
        })
    }
}

/// A stream played by this process.
pub struct PlayStream {
    pub name: String,
    /// A live stream (shared by its viewers); VoD feeds are paced in real time.
    live: bool,
    /// VoD pacing: when the first frame was sent, and its time.
    clock: Option<(Instant, i64)>,
    /// A VoD frame that is not due yet.
    held: Option<mist_media::Frame>,
    seed: u64,
    reader: StreamReader,
    outs: HashMap<u32, TrackOut>,
    main: Option<u32>,
    /// Packets since the newest main-track keyframe, by track.
    gop: Vec<(u32, Vec<Bytes>)>,
    gop_bytes: usize,
    gop_ok: bool,
    pub viewers: Vec<ConnId>,
    /// Unix time (µs) of media time 0: one NTP timeline for all tracks.
    base_us: Option<i64>,
    next_sr: Instant,
    idle_since: Option<Instant>,
    pub ended: bool,
    /// After [`PlayStream::seek`]: waiting for the main track's first keyframe.
    seeking: bool,
    /// The presentation time (ms) of the main-track keyframe the last seek landed on.
    seek_start: Option<i64>,
}

fn unix_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

fn main_of(tracks: &[Track]) -> Option<u32> {
    tracks
        .iter()
        .find(|t| t.kind() == TrackKind::Video)
        .or(tracks.first())
        .map(|t| t.id)
}

impl PlayStream {
    pub fn open(name: &str, seed: u64) -> Result<PlayStream, ShmError> {
        let mut reader = StreamReader::open(
            name,
            ReaderInfo {
                connector: "RTSP-mux".into(),
                host: String::new(),
            },
        )?;
        let live = reader.is_live();
        if live {
            reader.seek_live();
        }
        let mut ps = PlayStream {
            name: name.to_string(),
            live,
            clock: None,
            held: None,
            seed,
            reader,
            outs: HashMap::new(),
            main: None,
            gop: Vec::new(),
            gop_bytes: 0,
            gop_ok: false,
            viewers: Vec::new(),
            base_us: None,
            next_sr: Instant::now() + SR_EVERY,
            idle_since: Some(Instant::now()),
            ended: false,
            seeking: false,
            seek_start: None,
        };
        ps.sync_tracks();
        Ok(ps)
    }

    pub fn tracks(&self) -> Vec<Track> {
        self.reader.tracks()
    }

    fn sync_tracks(&mut self) {
        let tracks = self.reader.tracks();
        for t in &tracks {
            if !self.outs.contains_key(&t.id) {
                if let Some(o) = TrackOut::new(self.seed, &self.name, t) {
                    self.outs.insert(t.id, o);
                }
            }
        }
        self.main = main_of(&tracks);
    }

    pub fn next_sr(&self) -> Instant {
        self.next_sr
    }

    /// Whether to keep the stream (it has viewers, or lost them only recently).
    pub fn keep(&mut self, now: Instant) -> bool {
        if !self.viewers.is_empty() {
            self.idle_since = None;
            return true;
        }
        let since = *self.idle_since.get_or_insert(now);
        !self.ended && now.duration_since(since) < LINGER
    }

    /// VoD: goes to the main track's keyframe at or before `ms`; what is sent next starts there
    /// (paced in real time from there). The packet numbering goes on.
    pub fn seek(&mut self, ms: u64) {
        self.reader.seek_ms(ms.min(i64::MAX as u64) as i64);
        self.clock = None;
        self.held = None;
        self.gop.clear();
        self.gop_bytes = 0;
        self.gop_ok = false;
        self.seeking = true;
        self.seek_start = None;
        for o in self.outs.values_mut() {
            // No sender report maps a time of before the seek.
            o.last = None;
        }
    }

    /// Where the last [`PlayStream::seek`] landed (presentation time of its keyframe, ms).
    pub fn seek_start(&self) -> Option<i64> {
        self.seek_start
    }

    /// The RTP time of media time `ms` in `track`'s clock.
    pub fn rtp_time_of(&self, track: u32, ms: i64) -> Option<u32> {
        self.outs.get(&track).map(|o| rtp_time(ms, o.clock))
    }

    /// Reads what is there without viewers (before a PLAY answer: fills the keyframe cache).
    pub fn pump_pending(&mut self) {
        let _ = self.pump(Instant::now(), &mut |_, _, _, _| {});
    }

    /// The first sequence number and RTP time a new viewer gets for `track`, if known.
    pub fn start_of(&self, track: u32) -> Option<(u16, u32)> {
        if !self.gop_ok {
            return None;
        }
        let (_, pkts) = self.gop.iter().find(|(t, _)| *t == track)?;
        let p = pkts.first()?;
        (p.len() >= 8).then(|| {
            (
                u16::from_be_bytes([p[2], p[3]]),
                u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
            )
        })
    }

    /// A sender report (with SDES CNAME) for each track sent so far.
    fn sender_reports(&self) -> Vec<(u32, Bytes)> {
        let Some(base) = self.base_us else {
            return Vec::new();
        };
        self.outs
            .iter()
            .filter_map(|(id, o)| {
                let (ms, rtp) = o.last?;
                let us = (base + ms * 1000).max(0) as u64;
                let sr = rtcp::SenderReport {
                    ssrc: o.ssrc,
                    ntp: rtcp::ntp_from_unix_micros(us),
                    rtp_time: rtp,
                    packets: o.pack.builder.packets,
                    octets: o.pack.builder.octets,
                    reports: Vec::new(),
                };
                let mut b = sr.build();
                b.extend(rtcp::sdes_cname(o.ssrc, "mist-rs"));
                Some((*id, Bytes::from(b)))
            })
            .collect()
    }

    /// Sends a new viewer the sender reports and the packets since the newest keyframe.
    pub fn start_viewer(
        &self,
        v: &mut Viewer,
        udp: Option<&super::UdpPair>,
        tcp: &mut dyn FnMut(Bytes),
    ) {
        for (track, sr) in self.sender_reports() {
            v.send(track, &[sr], true, udp, &mut Framed::default(), tcp);
        }
        if self.gop_ok {
            for (track, pkts) in &self.gop {
                v.send(*track, pkts, false, udp, &mut Framed::default(), tcp);
            }
        }
    }

    /// Reads new frames and hands their packets to `send(viewers, track, packets, is_rtcp)`;
    /// sends sender reports when due. Returns true when the stream ended.
    pub fn pump(&mut self, now: Instant, send: &mut Deliver<'_>) -> bool {
        if self.ended {
            return true;
        }
        for _ in 0..FRAMES_PER_TURN {
            let ev = match self.held.take() {
                Some(f) => ReadEvent::Frame(f),
                None => self.reader.next(),
            };
            match ev {
                ReadEvent::Frame(f) => {
                    if !self.live {
                        let (t0, ms0) = *self.clock.get_or_insert((now, f.dts));
                        let due = now.duration_since(t0).as_millis() as i64 + VOD_AHEAD_MS;
                        if f.dts - ms0 > due {
                            self.held = Some(f);
                            break;
                        }
                    }
                    let Some(o) = self.outs.get_mut(&f.track) else {
                        continue;
                    };
                    let ms = f.pts();
                    let ts = rtp_time(ms, o.clock);
                    let mut pkts = Vec::new();
                    if let Err(e) = o.pack.packetize(ts, &f.data, &mut pkts) {
                        debug!("{}: frame of track {} not sent: {e}", self.name, f.track);
                        continue;
                    }
                    o.last = Some((ms, ts));
                    if self.base_us.is_none() {
                        self.base_us = Some(unix_us() - ms.saturating_mul(1000));
                    }
                    if Some(f.track) == self.main && f.keyframe {
                        if self.seeking {
                            self.seeking = false;
                            self.seek_start = Some(ms);
                        }
                        self.gop.clear();
                        self.gop_bytes = 0;
                        self.gop_ok = true;
                    }
                    if self.gop_ok {
                        self.gop_bytes += pkts.iter().map(Bytes::len).sum::<usize>();
                        if self.gop_bytes > GOP_MAX {
                            self.gop.clear();
                            self.gop_ok = false;
                        } else {
                            match self.gop.iter_mut().find(|(t, _)| *t == f.track) {
                                Some((_, v)) => v.extend(pkts.iter().cloned()),
                                None => self.gop.push((f.track, pkts.clone())),
                            }
                        }
                    }
                    send(&self.viewers, f.track, &pkts, false);
                }
                ev @ (ReadEvent::TracksChanged | ReadEvent::Restarted) => {
                    self.sync_tracks();
                    if matches!(ev, ReadEvent::Restarted) {
                        self.gop.clear();
                        self.gop_bytes = 0;
                        self.gop_ok = false;
                    }
                }
                ReadEvent::Pending => break,
                ReadEvent::Ended => {
                    self.ended = true;
                    return true;
                }
            }
        }
        if now >= self.next_sr {
            self.next_sr = now + SR_EVERY;
            for (track, sr) in self.sender_reports() {
                send(&self.viewers, track, &[sr], true);
            }
        }
        false
    }
}
