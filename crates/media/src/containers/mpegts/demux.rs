//! The TS demuxer: bytes in, [`Track`]s and [`Frame`]s out.
//!
//! ```no_run
//! use mist_media::mpegts::{DemuxEvent, Demuxer};
//! let mut d = Demuxer::new();
//! # let chunks: Vec<Vec<u8>> = vec![];
//! for chunk in chunks {
//!     d.push(&chunk);
//!     while let Some(ev) = d.poll() {
//!         match ev {
//!             DemuxEvent::Track(t) => println!("track {} {:?} {}x{}", t.id, t.codec, t.width, t.height),
//!             DemuxEvent::Frame(f) => println!("frame {} dts {} ms", f.track, f.dts),
//!         }
//!     }
//! }
//! d.flush(); // end of input: emits the last PES of every track
//! while let Some(_ev) = d.poll() {}
//! println!("{:?}", d.stats());
//! ```
//!
//! Track ids are the elementary streams' PIDs. Frame times are milliseconds (floored from the
//! 90 kHz clock, which is kept internally), unwrapped across the 33-bit wrap per program.
//!
//! Within a track, frames come in decode order. Across tracks they come in the order their PES
//! packets end: a video PES without a length ends only when the next one starts, so video lags
//! audio by about one frame; interleave by `dts` downstream if needed.
//!
//! Damage is survived and counted in [`DemuxStats`]: a continuity error or transport error drops
//! the PES it hits; garbage between packets is skipped (two sync bytes 188 apart are required to
//! resync); PSI sections with a bad CRC are ignored. Memory is bounded by [`MAX_PES`] per PID,
//! [`MAX_BUFFERED`] overall and [`MAX_STREAMS`] streams and programs.

use std::collections::VecDeque;

use bytes::Bytes;

use super::psi::{self, Pmt, PmtStream, SectionAssembler};
use super::{
    stream_type as st, PacketHeader, NULL_PID, PACKET_SIZE, PAT_PID, SYNC_BYTE, TICKS_PER_MS,
};
use crate::aac::{AdtsHeader, AudioSpecificConfig};
use crate::h264::{self, AvcC};
use crate::time::Unwrapper;
use crate::{hevc, mp3, opus, Codec, Frame, MediaError, Track};

/// The largest PES we reassemble; a bigger one is dropped and counted.
pub const MAX_PES: usize = 16 << 20;
/// The most PES bytes buffered over all PIDs together.
pub const MAX_BUFFERED: usize = 64 << 20;
/// Most elementary streams followed at once.
pub const MAX_STREAMS: usize = 64;
/// Audio bytes kept between PES packets when a frame spans two of them.
const MAX_AUDIO_CARRY: usize = 16 << 10;

/// What the demuxer produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DemuxEvent {
    /// A track whose init data is now known. Sent once before its first frame, and again (same
    /// id) if the init data changes mid-stream (new SPS/PPS, new audio config).
    Track(Track),
    /// A frame of a track announced before.
    Frame(Frame),
}

/// Counters of what went wrong (and right); none of these stop the demuxer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DemuxStats {
    /// TS packets read (188 bytes each).
    pub packets: u64,
    /// Times the packet sync was lost, and the garbage bytes skipped to find it again.
    pub sync_losses: u64,
    /// Garbage bytes skipped while looking for the sync again (counted with `sync_losses`).
    pub bytes_skipped: u64,
    /// Packets with the transport error indicator set (the sender knew they were damaged).
    pub transport_errors: u64,
    /// Continuity-counter gaps: each is at least one lost packet.
    pub continuity_errors: u64,
    /// Packets whose adaptation field overruns the packet.
    pub malformed_packets: u64,
    /// PSI sections rejected (CRC, syntax).
    pub psi_errors: u64,
    /// PES packets dropped: broken by a continuity error, too large, or with a bad header.
    pub pes_dropped: u64,
    /// Elementary stream data that could not be parsed (bad parameter sets, audio garbage).
    pub es_errors: u64,
    /// Frames handed out.
    pub frames: u64,
    /// Frames dropped because their track's init data was not known yet.
    pub frames_before_init: u64,
}

/// What a PID carries; u16 indexes keep the 8192-entry table at 32 KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    None,
    Pat,
    Pmt(u16),
    Es(u16),
}

struct PmtState {
    program: u16,
    sections: SectionAssembler,
    cc: Option<u8>,
    pcr_pid: u16,
    clock: Unwrapper,
    pcr_clock: Unwrapper,
    pcr: Option<i64>,
    last: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    H264,
    Hevc,
    Aac,
    Mp3,
    Ac3,
    Opus,
}

struct Es {
    pid: u16,
    pmt: usize,
    kind: Kind,
    track: Track,
    announced: bool,
    cc: Option<u8>,
    pes: Vec<u8>,
    in_pes: bool,
    pes_expected: usize,
    /// The first packet of the PES had random_access_indicator set.
    random_access: bool,
    // video
    vps: Vec<Bytes>,
    sps: Vec<Bytes>,
    pps: Vec<Bytes>,
    last_dts: Option<i64>,
    // audio
    carry: Vec<u8>,
    next_ts: Option<i64>,
}

/// The MPEG-TS demuxer. See the module documentation for use.
pub struct Demuxer {
    carry: Vec<u8>,
    synced: bool,
    roles: Vec<Role>,
    pat: SectionAssembler,
    pat_cc: Option<u8>,
    pmts: Vec<PmtState>,
    es: Vec<Es>,
    buffered: usize,
    events: VecDeque<DemuxEvent>,
    stats: DemuxStats,
}

impl Default for Demuxer {
    fn default() -> Self {
        Self::new()
    }
}

enum Cc {
    Ok,
    Duplicate,
    Error,
}

fn check_cc(last: &mut Option<u8>, cc: u8, discontinuity: bool) -> Cc {
    let r = match *last {
        Some(l) if !discontinuity && cc == l => return Cc::Duplicate,
        Some(l) if !discontinuity && cc != (l + 1) & 0x0F => Cc::Error,
        _ => Cc::Ok,
    };
    *last = Some(cc);
    r
}

fn read_timestamp(b: &[u8]) -> u64 {
    (u64::from(b[0] >> 1) & 7) << 30
        | u64::from(b[1]) << 22
        | u64::from(b[2] >> 1) << 15
        | u64::from(b[3]) << 7
        | u64::from(b[4] >> 1)
}

/// A parsed PES header: (pts, dts, payload range).
fn parse_pes(d: &[u8]) -> Option<(Option<u64>, Option<u64>, std::ops::Range<usize>)> {
    if d.len() < 6 || d[..3] != [0, 0, 1] {
        return None;
    }
    let plen = usize::from(u16::from_be_bytes([d[4], d[5]]));
    let end = if plen > 0 {
        (6 + plen).min(d.len())
    } else {
        d.len()
    };
    if matches!(d[3], 0xBC | 0xBE | 0xBF | 0xF0 | 0xF1 | 0xF2 | 0xF8 | 0xFF) {
        return Some((None, None, 6..end));
    }
    if d.len() < 9 || d[6] & 0xC0 != 0x80 {
        return None;
    }
    let flags = d[7] >> 6;
    let hend = 9 + usize::from(d[8]);
    if hend > end {
        return None;
    }
    let h = &d[9..hend];
    let pts = (flags & 2 != 0 && h.len() >= 5).then(|| read_timestamp(&h[..5]));
    let dts = (flags == 3 && h.len() >= 10).then(|| read_timestamp(&h[5..10]));
    Some((pts, dts, hend..end))
}

fn ms(ticks: i64) -> i64 {
    ticks.div_euclid(TICKS_PER_MS)
}

/// One audio frame found in an elementary stream.
struct AudioFrame {
    len: usize,
    /// Bytes at the start that are framing, not payload (ADTS header, Opus control header).
    skip: usize,
    samples: u32,
    rate: u32,
    channels: u32,
    /// Init data this frame implies (AAC: the AudioSpecificConfig).
    init: Option<Vec<u8>>,
}

enum AudioParse {
    Frame(AudioFrame),
    NeedMore,
    Garbage,
}

const AC3_KBPS: [u32; 19] = [
    32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512, 576, 640,
];

/// Parses an AC-3 sync frame header: (frame bytes, rate, channels).
pub(crate) fn ac3_header(b: &[u8]) -> Result<(usize, u32, u32), MediaError> {
    if b.len() < 7 {
        return Err(MediaError::NeedMore);
    }
    if b[0] != 0x0B || b[1] != 0x77 {
        return Err(MediaError::malformed("AC-3", "no syncword"));
    }
    let fscod = b[4] >> 6;
    let frmsizecod = usize::from(b[4] & 0x3F);
    let bsid = b[5] >> 3;
    if fscod == 3 || frmsizecod >= 38 || bsid > 10 {
        return Err(MediaError::unsupported(
            "AC-3",
            "reserved rate/size or E-AC-3",
        ));
    }
    let rate = [48000, 44100, 32000][fscod as usize];
    let words = AC3_KBPS[frmsizecod / 2] * 96_000 / rate
        + if fscod == 1 {
            (frmsizecod & 1) as u32
        } else {
            0
        };
    let mut r = h264::BitReader::new(&b[6..]);
    let acmod = r.read_bits(3)?;
    if acmod & 1 != 0 && acmod != 1 {
        r.skip_bits(2)?;
    }
    if acmod & 4 != 0 {
        r.skip_bits(2)?;
    }
    if acmod == 2 {
        r.skip_bits(2)?;
    }
    let lfe = r.read_bits(1)?;
    let channels = [2, 1, 2, 3, 3, 4, 4, 5][acmod as usize] + lfe;
    Ok((words as usize * 2, rate, channels))
}

/// Parses an Opus-in-TS control header; returns (header length, packet length).
fn opus_control_header(b: &[u8]) -> Option<(usize, usize)> {
    if b.len() < 2 || b[0] != 0x7F || b[1] & 0xE0 != 0xE0 {
        return None;
    }
    let flags = b[1];
    let mut pos = 2;
    let mut size = 0usize;
    loop {
        let v = *b.get(pos)?;
        pos += 1;
        size += usize::from(v);
        if v != 0xFF {
            break;
        }
    }
    if flags & 0x10 != 0 {
        pos += 2;
    }
    if flags & 0x08 != 0 {
        pos += 2;
    }
    if flags & 0x04 != 0 {
        let n = *b.get(pos)?;
        pos += 1 + usize::from(n);
    }
    Some((pos, size))
}

impl Es {
    fn parse_audio(&self, b: &[u8]) -> AudioParse {
        match self.kind {
            Kind::Aac => match AdtsHeader::parse(b) {
                Err(MediaError::NeedMore) => AudioParse::NeedMore,
                Err(_) => AudioParse::Garbage,
                Ok(h) if h.frame_length > b.len() => AudioParse::NeedMore,
                Ok(h) => {
                    let asc = h.asc();
                    match AudioSpecificConfig::build(asc.object_type, asc.rate, asc.channels()) {
                        Ok(init) => AudioParse::Frame(AudioFrame {
                            len: h.frame_length,
                            skip: h.header_length,
                            samples: 1024 * u32::from(h.blocks),
                            rate: h.rate(),
                            channels: asc.channels(),
                            init: Some(init),
                        }),
                        Err(_) => AudioParse::Garbage,
                    }
                }
            },
            Kind::Mp3 => match mp3::Header::parse(b) {
                Err(MediaError::NeedMore) => AudioParse::NeedMore,
                Err(_) => AudioParse::Garbage,
                Ok(h) if h.frame_length > b.len() => AudioParse::NeedMore,
                Ok(h) => AudioParse::Frame(AudioFrame {
                    len: h.frame_length,
                    skip: 0,
                    samples: h.samples,
                    rate: h.rate,
                    channels: h.channels,
                    init: None,
                }),
            },
            Kind::Ac3 => match ac3_header(b) {
                Err(MediaError::NeedMore) => AudioParse::NeedMore,
                Err(_) => AudioParse::Garbage,
                Ok((len, _, _)) if len > b.len() => AudioParse::NeedMore,
                Ok((len, rate, channels)) => AudioParse::Frame(AudioFrame {
                    len,
                    skip: 0,
                    samples: 1536,
                    rate,
                    channels,
                    init: None,
                }),
            },
            Kind::Opus => match opus_control_header(b) {
                None if b.len() < 16 => AudioParse::NeedMore,
                None => AudioParse::Garbage,
                Some((hl, size)) if hl + size > b.len() => AudioParse::NeedMore,
                Some((hl, size)) => match opus::packet_samples(&b[hl..hl + size]) {
                    Some(samples) => AudioParse::Frame(AudioFrame {
                        len: hl + size,
                        skip: hl,
                        samples,
                        rate: 48000,
                        channels: self.track.channels,
                        init: None,
                    }),
                    None => AudioParse::Garbage,
                },
            },
            Kind::H264 | Kind::Hevc => AudioParse::Garbage,
        }
    }
}

fn codec_of(s: &PmtStream) -> Option<(Kind, Codec)> {
    Some(match s.stream_type {
        st::H264 => (Kind::H264, Codec::H264),
        st::HEVC => (Kind::Hevc, Codec::Hevc),
        st::AAC_ADTS => (Kind::Aac, Codec::Aac),
        st::MPEG1_AUDIO | st::MPEG2_AUDIO => (Kind::Mp3, Codec::Mp3),
        st::AC3 => (Kind::Ac3, Codec::Ac3),
        st::PRIVATE_PES => match s.registration().as_ref() {
            Some(b"Opus") => (Kind::Opus, Codec::Opus),
            Some(b"AC-3") => (Kind::Ac3, Codec::Ac3),
            _ if s.descriptor(0x6A).is_some() => (Kind::Ac3, Codec::Ac3),
            _ => return None,
        },
        _ => return None,
    })
}

impl Demuxer {
    /// A demuxer that knows only the PAT PID: the PMTs and their streams are learned from it.
    pub fn new() -> Demuxer {
        let mut roles = vec![Role::None; 8192];
        roles[PAT_PID as usize] = Role::Pat;
        Demuxer {
            carry: Vec::new(),
            synced: false,
            roles,
            pat: SectionAssembler::default(),
            pat_cc: None,
            pmts: Vec::new(),
            es: Vec::new(),
            buffered: 0,
            events: VecDeque::new(),
            stats: DemuxStats::default(),
        }
    }

    /// What went wrong so far; the demuxer never stops on bad input, so this is how to see it.
    pub fn stats(&self) -> &DemuxStats {
        &self.stats
    }

    /// Forgets the last continuity counter of every PID and any partial packet or PES: the
    /// byte stream restarts (a new sender process, a reconnect), so its first counters are not
    /// gaps. Tracks, programs and counters are kept.
    pub fn reset_continuity(&mut self) {
        self.carry.clear();
        self.synced = false;
        self.pat_cc = None;
        for p in &mut self.pmts {
            p.cc = None;
        }
        for e in &mut self.es {
            e.cc = None;
            e.in_pes = false;
            self.buffered -= e.pes.len();
            e.pes.clear();
        }
    }

    /// The next track or frame, if one is ready.
    pub fn poll(&mut self) -> Option<DemuxEvent> {
        self.events.pop_front()
    }

    /// The tracks announced so far.
    pub fn tracks(&self) -> impl Iterator<Item = &Track> {
        self.es.iter().filter(|e| e.announced).map(|e| &e.track)
    }

    /// Elementary streams listed in a PMT whose track is not announced yet (init data unknown).
    pub fn unannounced(&self) -> usize {
        self.es.iter().filter(|e| !e.announced).count()
    }

    /// The program numbers seen in the PAT, with their PMT PIDs.
    pub fn programs(&self) -> impl Iterator<Item = (u16, u16)> + '_ {
        self.roles
            .iter()
            .enumerate()
            .filter_map(|(pid, r)| match r {
                Role::Pmt(i) => Some((self.pmts[*i as usize].program, pid as u16)),
                _ => None,
            })
    }

    /// The program a track belongs to.
    pub fn program_of(&self, track: u32) -> Option<u16> {
        self.es
            .iter()
            .find(|e| u32::from(e.pid) == track)
            .map(|e| self.pmts[e.pmt].program)
    }

    /// The last PCR of `program` on the 27 MHz clock, unwrapped.
    pub fn pcr(&self, program: u16) -> Option<i64> {
        self.pmts
            .iter()
            .find(|p| p.program == program)
            .and_then(|p| p.pcr)
    }

    /// Feeds bytes in any chunking.
    pub fn push(&mut self, data: &[u8]) {
        if self.carry.is_empty() {
            let used = self.scan(data, false);
            self.carry.extend_from_slice(&data[used..]);
        } else {
            let mut buf = std::mem::take(&mut self.carry);
            buf.extend_from_slice(data);
            let used = self.scan(&buf, false);
            buf.drain(..used);
            self.carry = buf;
        }
    }

    /// Ends the input: processes what is buffered and emits every pending PES.
    pub fn flush(&mut self) {
        let buf = std::mem::take(&mut self.carry);
        let used = self.scan(&buf, true);
        self.stats.bytes_skipped += (buf.len() - used) as u64;
        for i in 0..self.es.len() {
            if self.es[i].in_pes {
                self.finish_pes(i);
            }
        }
    }

    fn scan(&mut self, d: &[u8], at_end: bool) -> usize {
        let mut i = 0;
        while d.len() - i >= PACKET_SIZE {
            if d[i] == SYNC_BYTE {
                let confirmed = self.synced
                    || match d.get(i + PACKET_SIZE) {
                        Some(&b) => b == SYNC_BYTE,
                        None if at_end => true,
                        None => return i,
                    };
                if confirmed {
                    self.synced = true;
                    self.packet(&d[i..i + PACKET_SIZE]);
                    i += PACKET_SIZE;
                    continue;
                }
            }
            if self.synced {
                self.synced = false;
                self.stats.sync_losses += 1;
            }
            let next = d[i + 1..]
                .iter()
                .position(|&b| b == SYNC_BYTE)
                .map_or(d.len(), |p| i + 1 + p);
            self.stats.bytes_skipped += (next - i) as u64;
            i = next;
        }
        i
    }

    fn packet(&mut self, p: &[u8]) {
        let Some(h) = PacketHeader::parse(p) else {
            return;
        };
        self.stats.packets += 1;
        if h.pid == NULL_PID {
            return;
        }
        let role = self.roles[h.pid as usize];

        if h.transport_error {
            self.stats.transport_errors += 1;
            if let Role::Es(i) = role {
                self.drop_pes(i as usize);
            }
            return;
        }
        let mut pos = 4;
        let mut discontinuity = false;
        let mut random_access = false;
        if h.has_adaptation {
            let len = usize::from(p[4]);
            pos = 5 + len;
            if pos > PACKET_SIZE {
                self.stats.malformed_packets += 1;
                return;
            }
            if len > 0 {
                let flags = p[5];
                discontinuity = flags & 0x80 != 0;
                random_access = flags & 0x40 != 0;
                if flags & 0x10 != 0 && len >= 7 {
                    let base = read_pcr_base(&p[6..11]);
                    let ext = (u64::from(p[10] & 1) << 8 | u64::from(p[11])) as i64;
                    for pm in self.pmts.iter_mut().filter(|pm| pm.pcr_pid == h.pid) {
                        pm.pcr = Some(pm.pcr_clock.unwrap(base) * 300 + ext);
                    }
                }
            }
        }
        if !h.has_payload {
            return;
        }
        let payload = &p[pos..];
        match role {
            Role::None => {}
            Role::Pat => match check_cc(&mut self.pat_cc, h.continuity_counter, discontinuity) {
                Cc::Duplicate => {}
                cc => {
                    if matches!(cc, Cc::Error) {
                        self.stats.continuity_errors += 1;
                        self.pat.reset();
                    }
                    let mut sections = Vec::new();
                    self.pat
                        .push(payload, h.payload_unit_start, |s| sections.push(s.to_vec()));
                    for s in sections {
                        self.on_pat(&s);
                    }
                }
            },
            Role::Pmt(i) => match check_cc(
                &mut self.pmts[i as usize].cc,
                h.continuity_counter,
                discontinuity,
            ) {
                Cc::Duplicate => {}
                cc => {
                    if matches!(cc, Cc::Error) {
                        self.stats.continuity_errors += 1;
                        self.pmts[i as usize].sections.reset();
                    }
                    let mut sections = Vec::new();
                    self.pmts[i as usize]
                        .sections
                        .push(payload, h.payload_unit_start, |s| sections.push(s.to_vec()));
                    for s in sections {
                        self.on_pmt(i as usize, &s);
                    }
                }
            },
            Role::Es(i) => {
                let i = i as usize;
                match check_cc(&mut self.es[i].cc, h.continuity_counter, discontinuity) {
                    Cc::Duplicate => return,
                    Cc::Error => {
                        self.stats.continuity_errors += 1;
                        self.drop_pes(i);
                    }
                    Cc::Ok => {}
                }
                self.es_payload(i, payload, h.payload_unit_start, random_access);
            }
        }
    }

    fn drop_pes(&mut self, i: usize) {
        let es = &mut self.es[i];
        if es.in_pes {
            self.stats.pes_dropped += 1;
            self.buffered -= es.pes.len();
            es.pes.clear();
            es.in_pes = false;
        }
        // a frame spanning the lost data cannot be completed
        es.carry.clear();
    }

    fn es_payload(&mut self, i: usize, payload: &[u8], unit_start: bool, random_access: bool) {
        if unit_start {
            if self.es[i].in_pes {
                self.finish_pes(i);
            }
            let es = &mut self.es[i];
            es.in_pes = true;
            es.random_access = random_access;
            es.pes_expected = 0;
            if payload.len() >= 6 && payload[..3] == [0, 0, 1] {
                let l = usize::from(u16::from_be_bytes([payload[4], payload[5]]));
                if l > 0 {
                    es.pes_expected = 6 + l;
                }
            }
        } else if !self.es[i].in_pes {
            return;
        }
        let es = &mut self.es[i];
        if es.pes.len() + payload.len() > MAX_PES || self.buffered + payload.len() > MAX_BUFFERED {
            self.drop_pes(i);
            return;
        }
        es.pes.extend_from_slice(payload);
        self.buffered += payload.len();
        if es.pes_expected > 0 && es.pes.len() >= es.pes_expected {
            self.finish_pes(i);
        }
    }

    fn on_pat(&mut self, sec: &[u8]) {
        let programs = match psi::parse_pat(sec) {
            Ok(p) => p,
            Err(_) => {
                self.stats.psi_errors += 1;
                return;
            }
        };
        for (program, pid) in programs {
            if pid == PAT_PID || pid == NULL_PID {
                continue;
            }
            match self.roles[pid as usize] {
                Role::Pmt(i) if self.pmts[i as usize].program == program => {}
                Role::None if self.pmts.len() < MAX_STREAMS => {
                    self.roles[pid as usize] = Role::Pmt(self.pmts.len() as u16);
                    self.pmts.push(PmtState {
                        program,
                        sections: SectionAssembler::default(),
                        cc: None,
                        pcr_pid: NULL_PID,
                        clock: Unwrapper::new(33),
                        pcr_clock: Unwrapper::new(33),
                        pcr: None,
                        last: None,
                    });
                }
                _ => {}
            }
        }
    }

    fn on_pmt(&mut self, i: usize, sec: &[u8]) {
        if self.pmts[i].last.as_deref() == Some(sec) {
            return;
        }
        let pmt: Pmt = match psi::parse_pmt(sec) {
            Ok(p) if p.program == self.pmts[i].program => p,
            Ok(_) => return,
            Err(_) => {
                self.stats.psi_errors += 1;
                return;
            }
        };
        self.pmts[i].last = Some(sec.to_vec());
        self.pmts[i].pcr_pid = pmt.pcr_pid;
        for s in &pmt.streams {
            let Some((kind, codec)) = codec_of(s) else {
                continue;
            };
            if s.pid == PAT_PID || s.pid == NULL_PID {
                continue;
            }
            match self.roles[s.pid as usize] {
                Role::Es(e) if self.es[e as usize].kind == kind => continue,
                Role::Es(e) => {
                    let e = e as usize;
                    // the PID changed codec: start over on it
                    self.drop_pes(e);
                    let es = &mut self.es[e];
                    *es = new_es(s, i, kind, codec);
                }
                Role::None if self.es.len() < MAX_STREAMS => {
                    self.roles[s.pid as usize] = Role::Es(self.es.len() as u16);
                    self.es.push(new_es(s, i, kind, codec));
                }
                _ => {}
            }
        }
    }

    fn finish_pes(&mut self, i: usize) {
        let es = &mut self.es[i];
        es.in_pes = false;
        let pes = std::mem::take(&mut es.pes);
        self.buffered -= pes.len();
        let Some((pts, dts, range)) = parse_pes(&pes) else {
            self.stats.pes_dropped += 1;
            return;
        };
        let clock = &mut self.pmts[es.pmt].clock;
        let dts = dts.or(pts).map(|d| clock.unwrap(d));
        let pts = pts.map(|p| clock.unwrap(p));
        match es.kind {
            Kind::H264 | Kind::Hevc => self.video(i, &pes[range], dts, pts),
            _ => self.audio(i, Bytes::from(pes).slice(range), pts),
        }
    }

    fn video(&mut self, i: usize, payload: &[u8], dts: Option<i64>, pts: Option<i64>) {
        let es = &mut self.es[i];
        let hevc = es.kind == Kind::Hevc;
        let mut out = Vec::with_capacity(payload.len() + 16);
        let (mut vps, mut sps, mut pps) = (Vec::new(), Vec::new(), Vec::new());
        let mut key = false;
        for nal in h264::annexb_nals(payload) {
            let parameter_set = if hevc {
                match hevc::nal_type(nal) {
                    Some(hevc::NAL_AUD) => continue,
                    Some(hevc::NAL_VPS) => Some(&mut vps),
                    Some(hevc::NAL_SPS) => Some(&mut sps),
                    Some(hevc::NAL_PPS) => Some(&mut pps),
                    Some(t) => {
                        key |= hevc::is_irap(t);
                        None
                    }
                    None => None,
                }
            } else {
                match h264::nal_type(nal) {
                    Some(h264::nal::AUD) => continue,
                    Some(h264::nal::SPS) => Some(&mut sps),
                    Some(h264::nal::PPS) => Some(&mut pps),
                    Some(t) => {
                        key |= t == h264::nal::IDR;
                        None
                    }
                    None => None,
                }
            };
            match parameter_set {
                // parameter sets go to the track's init data, not into frames
                Some(list) => list.push(nal),
                None => {
                    out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
                    out.extend_from_slice(nal);
                }
            }
        }
        // Streams without IDR/IRAP pictures (open GOP, recovery point SEI) still get keyframes
        // where the muxer flagged random access and put the parameter sets.
        key |= es.random_access && !sps.is_empty();
        let mut changed = false;
        for (have, new) in [(&mut es.vps, vps), (&mut es.sps, sps), (&mut es.pps, pps)] {
            if !new.is_empty()
                && (have.len() != new.len() || have.iter().zip(&new).any(|(a, b)| a != b))
            {
                *have = new.into_iter().map(Bytes::copy_from_slice).collect();
                changed = true;
            }
        }
        if changed && !es.sps.is_empty() && !es.pps.is_empty() && (!hevc || !es.vps.is_empty()) {
            let sps: Vec<&[u8]> = es.sps.iter().map(|b| &b[..]).collect();
            let pps: Vec<&[u8]> = es.pps.iter().map(|b| &b[..]).collect();
            let built = if hevc {
                let vps: Vec<&[u8]> = es.vps.iter().map(|b| &b[..]).collect();
                hevc::Hvcc::from_parameter_sets(&vps, &sps, &pps).and_then(|h| {
                    hevc::parse_sps(sps[0]).map(|s| (h.to_bytes(), s.width, s.height, 0))
                })
            } else {
                AvcC::from_parameter_sets(&sps, &pps)
                    .and_then(|a| a.build())
                    .and_then(|b| {
                        h264::Sps::parse(sps[0])
                            .map(|s| (Bytes::from(b), s.width, s.height, s.fpks()))
                    })
            };
            match built {
                Ok((init, w, h, fpks)) => {
                    if init != es.track.init || !es.announced {
                        es.track.init = init;
                        es.track.width = w;
                        es.track.height = h;
                        if fpks > 0 {
                            es.track.fpks = fpks;
                        }
                        es.announced = true;
                        self.events.push_back(DemuxEvent::Track(es.track.clone()));
                    }
                }
                Err(_) => self.stats.es_errors += 1,
            }
        }
        let Some(dts) = dts.or(es.last_dts) else {
            self.stats.pes_dropped += 1;
            return;
        };
        es.last_dts = Some(dts);
        let pts = pts.unwrap_or(dts);
        if out.is_empty() {
            return;
        }
        if !es.announced {
            self.stats.frames_before_init += 1;
            return;
        }
        let dts_ms = ms(dts);
        let off = (ms(pts) - dts_ms).clamp(i32::MIN as i64, i32::MAX as i64) as i32;
        self.stats.frames += 1;
        self.events.push_back(DemuxEvent::Frame(Frame {
            track: es.track.id,
            dts: dts_ms,
            pts_offset: off,
            keyframe: key,
            data: Bytes::from(out),
        }));
    }

    fn audio(&mut self, i: usize, payload: Bytes, pts: Option<i64>) {
        let es = &mut self.es[i];
        let had_carry = !es.carry.is_empty();
        let data = if had_carry {
            let mut d = std::mem::take(&mut es.carry);
            d.extend_from_slice(&payload);
            Bytes::from(d)
        } else {
            payload
        };
        let Some(start) = (if had_carry {
            es.next_ts.or(pts)
        } else {
            pts.or(es.next_ts)
        }) else {
            self.stats.pes_dropped += 1;
            return;
        };
        let mut pos = 0;
        // frame times: base + samples / rate, restarting the count when the rate changes
        let mut base = start;
        let mut samples: u64 = 0;
        let mut rate = 0u32;
        let mut garbage = false;
        while pos < data.len() {
            match es.parse_audio(&data[pos..]) {
                AudioParse::NeedMore => break,
                AudioParse::Garbage => {
                    garbage = true;
                    pos += 1;
                }
                AudioParse::Frame(f) => {
                    if f.rate == 0 || f.len == 0 {
                        pos += 1;
                        continue;
                    }
                    if rate != 0 && rate != f.rate {
                        base += (samples * 90_000 / u64::from(rate)) as i64;
                        samples = 0;
                    }
                    rate = f.rate;
                    let t = base + (samples * 90_000 / u64::from(rate)) as i64;
                    let init_changed = match &f.init {
                        Some(init) => es.track.init[..] != init[..],
                        None => false,
                    };
                    if !es.announced
                        || init_changed
                        || es.track.rate != f.rate
                        || es.track.channels != f.channels
                    {
                        if let Some(init) = f.init {
                            es.track.init = Bytes::from(init);
                        }
                        es.track.rate = f.rate;
                        es.track.timescale = f.rate;
                        es.track.channels = f.channels;
                        es.track.sample_size = 16;
                        es.announced = true;
                        self.events.push_back(DemuxEvent::Track(es.track.clone()));
                    }
                    self.stats.frames += 1;
                    self.events.push_back(DemuxEvent::Frame(Frame {
                        track: es.track.id,
                        dts: ms(t),
                        pts_offset: 0,
                        keyframe: true,
                        data: data.slice(pos + f.skip..pos + f.len),
                    }));
                    samples += u64::from(f.samples);
                    pos += f.len;
                }
            }
        }
        if garbage {
            self.stats.es_errors += 1;
        }
        if rate != 0 {
            es.next_ts = Some(base + (samples * 90_000 / u64::from(rate)) as i64);
        }
        let rest = &data[pos..];
        if rest.len() <= MAX_AUDIO_CARRY {
            es.carry.extend_from_slice(rest);
        }
    }
}

fn read_pcr_base(b: &[u8]) -> u64 {
    u64::from(b[0]) << 25
        | u64::from(b[1]) << 17
        | u64::from(b[2]) << 9
        | u64::from(b[3]) << 1
        | u64::from(b[4] >> 7)
}

fn new_es(s: &PmtStream, pmt: usize, kind: Kind, codec: Codec) -> Es {
    let mut track = Track::new(u32::from(s.pid), codec);
    if let Some(lang) = s.language() {
        track.lang = lang;
    }
    if kind == Kind::Opus {
        // channel_config_code from the DVB extension descriptor (tag 0x7F, extension 0x80)
        let code = psi::descriptors(&s.descriptors)
            .find(|(t, d)| *t == 0x7F && d.len() >= 2 && d[0] == 0x80)
            .map_or(2, |(_, d)| d[1]);
        let head = opus::OpusHead::from_ts_channel_config(code)
            .or_else(|_| opus::OpusHead::for_channels(2));
        if let Ok(head) = head {
            track.channels = u32::from(head.channels);
            track.init = Bytes::from(head.to_bytes());
        }
        track.rate = 48000;
    }
    Es {
        pid: s.pid,
        pmt,
        kind,
        track,
        announced: false,
        cc: None,
        pes: Vec::new(),
        in_pes: false,
        pes_expected: 0,
        random_access: false,
        vps: Vec::new(),
        sps: Vec::new(),
        pps: Vec::new(),
        last_dts: None,
        carry: Vec::new(),
        next_ts: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ac3_sizes() {
        // 48 kHz, 64 kbit/s (frmsizecod 8), acmod 2 (stereo), no LFE: 256 bytes
        let h = [0x0B, 0x77, 0, 0, 0x08, 0x40, 0x40];
        assert_eq!(ac3_header(&h).unwrap(), (256, 48000, 2));
        // 44.1 kHz, odd frmsizecod 9 → 70 words
        let h = [0x0B, 0x77, 0, 0, 0x49, 0x40, 0x40];
        assert_eq!(ac3_header(&h).unwrap().0, 280);
    }

    #[test]
    fn opus_control() {
        assert_eq!(
            opus_control_header(&[0x7F, 0xE0, 0xFF, 0x10]),
            Some((4, 0x10F))
        );
        assert_eq!(opus_control_header(&[0x7F, 0xF0, 0x05, 0, 0]), Some((5, 5)));
        assert_eq!(opus_control_header(&[0x7F, 0xE0, 0xFF]), None);
    }

    #[test]
    fn garbage_never_panics() {
        let mut d = Demuxer::new();
        let mut x: u32 = 1;
        let data: Vec<u8> = (0..100_000)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                if i % 188 == 0 {
                    0x47
                } else {
                    x as u8
                }
            })
            .collect();
        let mut events = 0;
        for c in data.chunks(1000) {
            d.push(c);
            while d.poll().is_some() {
                events += 1;
            }
        }
        d.flush();
        while d.poll().is_some() {
            events += 1;
        }
        let st = d.stats();
        assert!(st.packets > 400);
        // No PAT survives its CRC: nothing comes out, and the damage is counted as such.
        assert_eq!((events, st.frames), (0, 0), "{st:?}");
        assert!(
            st.transport_errors > 0 && st.malformed_packets > 0,
            "{st:?}"
        );
    }
}
