//! The TS muxer: [`Track`]s and [`Frame`]s in, TS packets appended to a caller's `Vec<u8>`.
//!
//! ```no_run
//! use mist_media::mpegts::{Muxer, MuxerOptions};
//! # fn run(tracks: Vec<mist_media::Track>, frames: Vec<mist_media::Frame>) -> Result<(), mist_media::MediaError> {
//! let mut mux = Muxer::new(&tracks, MuxerOptions::default())?;
//! let mut out = Vec::new();
//! mux.write_tables(&mut out); // PAT + PMT
//! for f in &frames {
//!     if mux.is_segment_start(f) {
//!         // an HLS segment boundary: finish `out`, hand it over and start the next segment
//!         mux.flush(&mut out);
//!         let segment = std::mem::take(&mut out);
//!         # drop(segment);
//!         mux.start_segment(&mut out);
//!     }
//!     mux.write_frame(f, &mut out)?;
//! }
//! mux.flush(&mut out);
//! # Ok(()) }
//! ```
//!
//! Every PES of the PCR track (the first video track, else the first track) carries a PCR 100 ms
//! behind its DTS (never below 0). H.264/HEVC frames get an AUD, and keyframes the parameter sets from the track's init
//! data, in Annex B form; AAC frames get ADTS headers; Opus frames the Opus-in-TS control header.

use super::psi::{build_pat, build_pmt, Pmt, PmtStream};
use super::{stream_type as st, PACKET_SIZE, PAT_PID, SYNC_BYTE, TICKS_PER_MS};
use crate::aac::{AdtsHeader, AudioSpecificConfig};
use crate::h264::{self, AvcC};
use crate::{hevc, opus, Codec, Frame, MediaError, Track, TrackKind};

/// How the muxer lays out the stream.
#[derive(Debug, Clone)]
pub struct MuxerOptions {
    /// `program_number` in the PAT and PMT.
    pub program: u16,
    /// PID the PMT is sent on.
    pub pmt_pid: u16,
    /// PID of the first track; the others follow in order.
    pub first_pid: u16,
    /// Write PAT/PMT before every keyframe of the PCR track (so any keyframe is a join point);
    /// without video, once a second.
    pub tables_before_keyframes: bool,
    /// Audio frames gathered into one PES (1 = one PES per frame, lowest latency). Small audio
    /// frames cost two TS packets each on their own; HLS segments are smaller with 4–8.
    pub audio_frames_per_pes: usize,
}

impl Default for MuxerOptions {
    fn default() -> Self {
        MuxerOptions {
            program: 1,
            pmt_pid: 0x1000,
            first_pid: 0x100,
            tables_before_keyframes: true,
            audio_frames_per_pes: 1,
        }
    }
}

struct MuxTrack {
    id: u32,
    pid: u16,
    codec: Codec,
    stream_type: u8,
    stream_id: u8,
    descriptors: Vec<u8>,
    cc: u8,
    /// Parameter sets as Annex B, for keyframes.
    parameter_sets: Vec<u8>,
    length_size: usize,
    asc: Option<AudioSpecificConfig>,
    /// Audio gathered for the next PES, when bundling.
    pending: Vec<u8>,
    pending_frames: usize,
    pending_pts: u64,
    pending_pcr: Option<u64>,
}

/// The MPEG-TS muxer for one program. See the module documentation for use.
pub struct Muxer {
    opts: MuxerOptions,
    tracks: Vec<MuxTrack>,
    pcr: usize,
    pat_cc: u8,
    pmt_cc: u8,
    version: u8,
    /// PAT/PMT were written and no frame since.
    fresh_tables: bool,
    /// DTS of the PCR track's frame after the last tables.
    last_tables_dts: Option<i64>,
    scratch: Vec<u8>,
}

fn mux_track(t: &Track, pid: u16) -> Result<MuxTrack, MediaError> {
    let mut m = MuxTrack {
        id: t.id,
        pid,
        codec: t.codec,
        stream_type: 0,
        stream_id: 0xC0,
        descriptors: Vec::new(),
        cc: 0,
        parameter_sets: Vec::new(),
        length_size: 4,
        asc: None,
        pending: Vec::new(),
        pending_frames: 0,
        pending_pts: 0,
        pending_pcr: None,
    };
    match t.codec {
        Codec::H264 => {
            m.stream_type = st::H264;
            m.stream_id = 0xE0;
            if !t.init.is_empty() {
                let a = AvcC::parse(&t.init)?;
                m.length_size = a.length_size as usize;
                m.parameter_sets = a.to_annexb();
            }
        }
        Codec::Hevc => {
            m.stream_type = st::HEVC;
            m.stream_id = 0xE0;
            if !t.init.is_empty() {
                let h = hevc::Hvcc::parse(&t.init)?;
                m.length_size = h.length_size as usize;
                for ps in h.parameter_sets() {
                    m.parameter_sets.extend_from_slice(&[0, 0, 0, 1]);
                    m.parameter_sets.extend_from_slice(ps);
                }
            }
        }
        Codec::Aac => {
            m.stream_type = st::AAC_ADTS;
            let asc = if t.init.is_empty() {
                AudioSpecificConfig {
                    object_type: 2,
                    rate: t.rate,
                    channel_config: t.channels as u8,
                    ext_rate: None,
                }
            } else {
                AudioSpecificConfig::parse(&t.init)?
            };
            if crate::aac::rate_index(asc.rate).is_none() {
                return Err(MediaError::unsupported(
                    "ADTS",
                    format!("rate {}", asc.rate),
                ));
            }
            m.asc = Some(asc);
        }
        Codec::Mp3 => {
            m.stream_type = if matches!(t.rate, 16000 | 22050 | 24000 | 8000 | 11025 | 12000) {
                st::MPEG2_AUDIO
            } else {
                st::MPEG1_AUDIO
            };
        }
        Codec::Ac3 => {
            m.stream_type = st::AC3;
            m.stream_id = 0xBD;
            m.descriptors.extend_from_slice(b"\x05\x04AC-3");
        }
        Codec::Opus => {
            m.stream_type = st::PRIVATE_PES;
            m.stream_id = 0xBD;
            let head = if t.init.is_empty() {
                opus::OpusHead::for_channels(t.channels.clamp(1, 8) as u8)?
            } else {
                opus::OpusHead::parse(&t.init)?
            };
            let code = head.ts_channel_config().ok_or_else(|| {
                MediaError::unsupported("Opus in TS", "channel mapping without a TS code")
            })?;
            m.descriptors.extend_from_slice(b"\x05\x04Opus\x7f\x02\x80");
            m.descriptors.push(code);
        }
        c => {
            return Err(MediaError::unsupported(
                "MPEG-TS muxer",
                c.mist_name().to_string(),
            ))
        }
    }
    if t.lang.len() == 3 && t.lang.is_ascii() && t.kind() == TrackKind::Audio {
        m.descriptors.extend_from_slice(&[0x0A, 4]);
        m.descriptors.extend_from_slice(t.lang.as_bytes());
        m.descriptors.push(0);
    }
    Ok(m)
}

fn write_timestamp(out: &mut Vec<u8>, prefix: u8, ticks: u64) {
    out.extend_from_slice(&[
        prefix << 4 | ((ticks >> 29) as u8 & 0x0E) | 1,
        (ticks >> 22) as u8,
        ((ticks >> 14) as u8 & 0xFE) | 1,
        (ticks >> 7) as u8,
        ((ticks << 1) as u8 & 0xFE) | 1,
    ]);
}

const TS_MASK: u64 = (1 << 33) - 1;

/// How far the PCR is behind the DTS of the PCR track's frames.
const PCR_LEAD_MS: i64 = 100;

fn ticks(ms: i64) -> u64 {
    (ms.wrapping_mul(TICKS_PER_MS) as u64) & TS_MASK
}

impl Muxer {
    /// A muxer for `tracks` (H.264, HEVC, AAC, MP3, AC-3, Opus); others are an error.
    pub fn new(tracks: &[Track], opts: MuxerOptions) -> Result<Muxer, MediaError> {
        if tracks.is_empty() {
            return Err(MediaError::malformed("MPEG-TS muxer", "no tracks"));
        }
        if tracks.len() > 0x1000 {
            return Err(MediaError::TooLarge {
                what: "MPEG-TS tracks",
                size: tracks.len() as u64,
                limit: 0x1000,
            });
        }
        let mut v = Vec::with_capacity(tracks.len());
        for (i, t) in tracks.iter().enumerate() {
            let pid = opts.first_pid.wrapping_add(i as u16);
            if !(0x10..0x1FFF).contains(&pid) || pid == opts.pmt_pid {
                return Err(MediaError::malformed(
                    "MPEG-TS muxer",
                    format!("PID {pid:#x} unusable"),
                ));
            }
            v.push(mux_track(t, pid)?);
        }
        let pcr = v
            .iter()
            .position(|t| t.codec.kind() == TrackKind::Video)
            .unwrap_or(0);
        Ok(Muxer {
            opts,
            tracks: v,
            pcr,
            pat_cc: 0,
            pmt_cc: 0,
            version: 0,
            fresh_tables: false,
            last_tables_dts: None,
            scratch: Vec::new(),
        })
    }

    /// The track whose PID carries the PCR (the first video track, else the first track):
    /// segments should start at its keyframes.
    pub fn pcr_track(&self) -> Option<u32> {
        self.tracks.get(self.pcr).map(|t| t.id)
    }

    /// True for the frames a segment may start at: keyframes of the PCR track (for audio-only
    /// streams, every frame of the first track: the caller picks by duration).
    pub fn is_segment_start(&self, f: &Frame) -> bool {
        f.keyframe && Some(f.track) == self.pcr_track()
    }

    /// The PID a track was given.
    pub fn pid_of(&self, track: u32) -> Option<u16> {
        self.tracks.iter().find(|t| t.id == track).map(|t| t.pid)
    }

    /// Replaces a track's description (new init data mid-stream); the PMT version is bumped.
    pub fn update_track(&mut self, t: &Track) -> Result<(), MediaError> {
        let i = self
            .tracks
            .iter()
            .position(|m| m.id == t.id)
            .ok_or_else(|| {
                MediaError::malformed("MPEG-TS muxer", format!("unknown track {}", t.id))
            })?;
        let mut m = mux_track(t, self.tracks[i].pid)?;
        m.cc = self.tracks[i].cc;
        m.pending = std::mem::take(&mut self.tracks[i].pending);
        m.pending_frames = self.tracks[i].pending_frames;
        m.pending_pts = self.tracks[i].pending_pts;
        m.pending_pcr = self.tracks[i].pending_pcr;
        self.tracks[i] = m;
        self.version = (self.version + 1) & 0x1F;
        Ok(())
    }

    /// Starts a new segment: writes PAT and PMT. Call it right before a keyframe of the PCR
    /// track; what follows then decodes without anything written earlier.
    pub fn start_segment(&mut self, out: &mut Vec<u8>) {
        self.write_tables(out);
    }

    /// Writes the PAT and the PMT.
    pub fn write_tables(&mut self, out: &mut Vec<u8>) {
        let pat = build_pat(1, self.version, &[(self.opts.program, self.opts.pmt_pid)]);
        let pmt = Pmt {
            program: self.opts.program,
            pcr_pid: self.tracks[self.pcr].pid,
            streams: self
                .tracks
                .iter()
                .map(|t| PmtStream {
                    stream_type: t.stream_type,
                    pid: t.pid,
                    descriptors: t.descriptors.clone(),
                })
                .collect(),
        };
        let pmt = build_pmt(&pmt, self.version);
        write_section(out, PAT_PID, &mut self.pat_cc, &pat);
        write_section(out, self.opts.pmt_pid, &mut self.pmt_cc, &pmt);
        self.fresh_tables = true;
    }

    /// Appends one frame as a PES in TS packets (audio may wait for more frames to fill a PES,
    /// see [`MuxerOptions::audio_frames_per_pes`]; [`Muxer::flush`] writes what waits).
    pub fn write_frame(&mut self, f: &Frame, out: &mut Vec<u8>) -> Result<(), MediaError> {
        let i = self
            .tracks
            .iter()
            .position(|t| t.id == f.track)
            .ok_or_else(|| {
                MediaError::malformed("MPEG-TS muxer", format!("unknown track {}", f.track))
            })?;
        let is_pcr = i == self.pcr;
        if is_pcr && f.keyframe && self.tracks[i].codec.kind() == TrackKind::Video {
            // audio waiting to fill a PES belongs before the keyframe (and its tables)
            self.flush(out);
            if self.opts.tables_before_keyframes && !self.fresh_tables {
                self.write_tables(out);
            }
        } else if is_pcr && self.opts.tables_before_keyframes && !self.fresh_tables {
            // no video: every audio frame is a keyframe, so repeat the tables once a second
            if !matches!(self.last_tables_dts, Some(t) if (0..1000).contains(&f.dts.wrapping_sub(t)))
            {
                self.flush(out);
                self.write_tables(out);
            }
        }
        if is_pcr && self.fresh_tables {
            self.last_tables_dts = Some(f.dts);
        }
        self.fresh_tables = false;
        let pts = ticks(f.dts.wrapping_add(i64::from(f.pts_offset)));
        let dts = ticks(f.dts);
        // the PCR runs a little behind the DTS so decoders have the PES before it is due
        let pcr = is_pcr.then(|| ticks(f.dts.saturating_sub(PCR_LEAD_MS).max(f.dts.min(0))));
        let bundle =
            self.opts.audio_frames_per_pes > 1 && self.tracks[i].codec.kind() == TrackKind::Audio;
        let t = &mut self.tracks[i];
        if bundle {
            if t.pending_frames == 0 {
                t.pending.clear();
                t.pending_pts = pts;
                t.pending_pcr = pcr;
            }
            let mut body = std::mem::take(&mut t.pending);
            let before = body.len();
            let r = frame_payload(t, f, &mut body);
            if r.is_err() {
                body.truncate(before);
            }
            t.pending = body;
            r?;
            t.pending_frames += 1;
            if t.pending_frames >= self.opts.audio_frames_per_pes
                || t.pending.len() >= MAX_AUDIO_PES
            {
                flush_track(t, out);
            }
            return Ok(());
        }
        let mut pes = std::mem::take(&mut self.scratch);
        pes.clear();
        pes_header(&mut pes, t.stream_id, pts, dts);
        let r = frame_payload(t, f, &mut pes);
        if r.is_ok() {
            set_pes_length(&mut pes, t.codec.kind());
            packetize(
                out,
                t.pid,
                &mut t.cc,
                &pes,
                pcr,
                f.keyframe && t.codec.kind() == TrackKind::Video,
            );
        }
        self.scratch = pes;
        r
    }

    /// Writes the audio that waits to fill a PES. Call it before handing a segment over.
    pub fn flush(&mut self, out: &mut Vec<u8>) {
        for t in &mut self.tracks {
            flush_track(t, out);
        }
    }
}

/// Bundled audio PES stay below this so that PES_packet_length can say their size.
const MAX_AUDIO_PES: usize = 0xFFFF - 64 - 8192;

fn flush_track(t: &mut MuxTrack, out: &mut Vec<u8>) {
    if t.pending_frames == 0 {
        return;
    }
    let mut pes = Vec::with_capacity(t.pending.len() + 20);
    pes_header(&mut pes, t.stream_id, t.pending_pts, t.pending_pts);
    pes.extend_from_slice(&t.pending);
    set_pes_length(&mut pes, t.codec.kind());
    packetize(out, t.pid, &mut t.cc, &pes, t.pending_pcr, false);
    t.pending.clear();
    t.pending_frames = 0;
}

fn pes_header(pes: &mut Vec<u8>, stream_id: u8, pts: u64, dts: u64) {
    // PES_packet_length is patched by set_pes_length
    pes.extend_from_slice(&[0, 0, 1, stream_id, 0, 0, 0x84]);
    if pts != dts {
        pes.extend_from_slice(&[0xC0, 10]);
        write_timestamp(pes, 3, pts);
        write_timestamp(pes, 1, dts);
    } else {
        pes.extend_from_slice(&[0x80, 5]);
        write_timestamp(pes, 2, pts);
    }
}

/// Video PES say 0 (unbounded); others their length when it fits.
fn set_pes_length(pes: &mut [u8], kind: TrackKind) {
    let plen = pes.len() - 6;
    if kind != TrackKind::Video && plen <= 0xFFFF {
        pes[4..6].copy_from_slice(&(plen as u16).to_be_bytes());
    }
}

/// Appends a frame's payload in TS form: Annex B with AUD (and parameter sets on keyframes) for
/// video, ADTS for AAC, the control header for Opus, as is otherwise.
fn frame_payload(t: &MuxTrack, f: &Frame, pes: &mut Vec<u8>) -> Result<(), MediaError> {
    match t.codec {
        Codec::H264 | Codec::Hevc => {
            let hevc = t.codec == Codec::Hevc;
            if hevc {
                pes.extend_from_slice(&[0, 0, 0, 1, hevc::NAL_AUD << 1, 1, 0x50]);
            } else {
                pes.extend_from_slice(&[0, 0, 0, 1, h264::nal::AUD, 0xF0]);
            }
            if f.keyframe {
                pes.extend_from_slice(&t.parameter_sets);
            }
            for nal in h264::length_nals(&f.data, t.length_size) {
                let nal = nal?;
                let aud = if hevc {
                    hevc::nal_type(nal) == Some(hevc::NAL_AUD)
                } else {
                    h264::nal_type(nal) == Some(h264::nal::AUD)
                };
                if !aud {
                    pes.extend_from_slice(&[0, 0, 0, 1]);
                    pes.extend_from_slice(nal);
                }
            }
        }
        Codec::Aac => {
            let asc = t
                .asc
                .as_ref()
                .ok_or_else(|| MediaError::malformed("ADTS", "no config"))?;
            pes.extend_from_slice(&AdtsHeader::build(asc, f.data.len())?);
            pes.extend_from_slice(&f.data);
        }
        Codec::Opus => {
            pes.extend_from_slice(&[0x7F, 0xE0]);
            let mut n = f.data.len();
            while n >= 0xFF {
                pes.push(0xFF);
                n -= 0xFF;
            }
            pes.push(n as u8);
            pes.extend_from_slice(&f.data);
        }
        _ => pes.extend_from_slice(&f.data),
    }
    Ok(())
}

fn write_section(out: &mut Vec<u8>, pid: u16, cc: &mut u8, section: &[u8]) {
    let mut data = Vec::with_capacity(section.len() + 1);
    data.push(0); // pointer_field
    data.extend_from_slice(section);
    let mut first = true;
    for chunk in data.chunks(PACKET_SIZE - 4) {
        out.extend_from_slice(&[
            SYNC_BYTE,
            u8::from(first) << 6 | (pid >> 8) as u8,
            pid as u8,
            0x10 | *cc,
        ]);
        out.extend_from_slice(chunk);
        out.resize(out.len() + (PACKET_SIZE - 4 - chunk.len()), 0xFF);
        *cc = (*cc + 1) & 0x0F;
        first = false;
    }
}

/// Splits a PES into TS packets, with the PCR and random access flag in the first one and
/// adaptation-field stuffing in the last.
fn packetize(
    out: &mut Vec<u8>,
    pid: u16,
    cc: &mut u8,
    pes: &[u8],
    pcr: Option<u64>,
    random_access: bool,
) {
    out.reserve((pes.len() / 184 + 2) * PACKET_SIZE);
    let mut rest = pes;
    let mut first = true;
    while !rest.is_empty() {
        let pcr = if first { pcr } else { None };
        let rai = first && random_access;
        // adaptation field bytes, length byte included
        let mut af = match (pcr.is_some(), rai) {
            (true, _) => 8,
            (false, true) => 2,
            _ => 0,
        };
        let take = rest.len().min(PACKET_SIZE - 4 - af);
        if take < PACKET_SIZE - 4 - af {
            af = PACKET_SIZE - 4 - take;
        }
        out.extend_from_slice(&[
            SYNC_BYTE,
            u8::from(first) << 6 | (pid >> 8) as u8 & 0x1F,
            pid as u8,
            if af > 0 { 0x30 } else { 0x10 } | *cc,
        ]);
        if af > 0 {
            out.push((af - 1) as u8);
            if af > 1 {
                out.push(u8::from(rai) << 6 | u8::from(pcr.is_some()) << 4);
                let mut used = 2;
                if let Some(base) = pcr {
                    out.extend_from_slice(&[
                        (base >> 25) as u8,
                        (base >> 17) as u8,
                        (base >> 9) as u8,
                        (base >> 1) as u8,
                        ((base & 1) as u8) << 7 | 0x7E,
                        0,
                    ]);
                    used += 6;
                }
                out.resize(out.len() + (af - used), 0xFF);
            }
        }
        out.extend_from_slice(&rest[..take]);
        rest = &rest[take..];
        *cc = (*cc + 1) & 0x0F;
        first = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mpegts::{DemuxEvent, Demuxer};
    use bytes::Bytes;

    #[test]
    fn extreme_times_do_not_overflow() {
        let t = Track::new(7, Codec::Mp3);
        let mut mux = Muxer::new(&[t], MuxerOptions::default()).unwrap();
        let mut out = Vec::new();
        for dts in [i64::MIN, -1, 0, i64::MAX] {
            let f = Frame {
                track: 7,
                dts,
                pts_offset: i32::MAX,
                keyframe: true,
                data: Bytes::from_static(b"x"),
            };
            mux.write_frame(&f, &mut out).unwrap();
        }
        assert!(mux
            .write_frame(
                &Frame {
                    track: 8,
                    dts: 0,
                    pts_offset: 0,
                    keyframe: true,
                    data: Bytes::new()
                },
                &mut out
            )
            .is_err());
        assert_eq!(out.len() % PACKET_SIZE, 0);
    }

    #[test]
    fn aac_round_trip_through_demuxer() {
        let mut t = Track::new(1, Codec::Aac);
        t.init = Bytes::from_static(&[0x11, 0x90]); // LC, 48 kHz, stereo
        let mut mux = Muxer::new(&[t], MuxerOptions::default()).unwrap();
        let mut out = Vec::new();
        mux.write_tables(&mut out);
        for n in 0..50i64 {
            let f = Frame {
                track: 1,
                dts: 1000 + n * 1024 * 1000 / 48000,
                pts_offset: 0,
                keyframe: true,
                data: Bytes::from(vec![n as u8; 10 + n as usize * 7]),
            };
            mux.write_frame(&f, &mut out).unwrap();
        }
        assert_eq!(out.len() % PACKET_SIZE, 0);
        let mut d = Demuxer::new();
        d.push(&out);
        d.flush();
        let mut frames = Vec::new();
        while let Some(ev) = d.poll() {
            match ev {
                DemuxEvent::Track(t) => assert_eq!((t.id, t.rate, t.channels), (0x100, 48000, 2)),
                DemuxEvent::Frame(f) => frames.push(f),
            }
        }
        assert_eq!(frames.len(), 50);
        for (n, f) in frames.iter().enumerate() {
            assert_eq!(f.data.len(), 10 + n * 7);
            assert!((f.dts - (1000 + n as i64 * 1024 * 1000 / 48000)).abs() <= 1);
        }
        assert_eq!(d.stats().continuity_errors, 0);
    }
}
