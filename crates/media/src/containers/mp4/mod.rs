//! MP4 / ISO-BMFF: box parsing, a sans-IO progressive and fragmented reader with a compact sample
//! index, and writers for progressive files (moov first or at the end) and CMAF fragments.
//!
//! Times at the API are milliseconds (as in [`crate::Frame`]); inside files they are track ticks,
//! converted from absolute times so that nothing drifts. Payloads are MP4 samples as they are:
//! 4-byte length-prefixed NAL units for H.264/HEVC, raw AAC, Opus packets, AV1 OBUs.
//!
//! # Reading
//!
//! [`Mp4Reader`] never touches a file: [`Mp4Reader::need`] names the byte range it wants next and
//! [`Mp4Reader::feed`] (or [`Mp4Reader::feed_bytes`], zero-copy) takes it and may return a
//! [`crate::Frame`]. It reads top-level box headers (16 bytes each) until `moov`, reads the moov whole
//! (bounded by [`Limits`]), then asks for samples one at a time, interleaved across tracks by
//! decode time; for fragmented files it goes on box by box: each `moof`, then its samples.
//! [`demux_segment`] demuxes fragments already in memory (CMAF/HLS fMP4 segments) against an init
//! segment's [`Movie`]. [`Movie::samples`] lists a progressive file's samples (offset, size, times, keyframe) in the
//! same order without reading them. [`Mp4Reader::seek`] goes to the keyframe at or before a time (progressive: from the index;
//! fragmented: by scanning moofs only). [`read_all`] drives it over a buffer.
//!
//! The index ([`SampleTable`]) keeps the sample tables in their run-length form (stts, ctts, stsc,
//! chunk offsets, one u32 per sample size, sync sample list): about 10-20 bytes per sample, and a
//! [`movie::Cursor`] walks it incrementally or jumps to any sample by walking runs.
//!
//! Edit lists are applied as ffmpeg applies those it writes (an empty edit delays the track, a
//! media_time advances it), and negative `ctts` offsets shift decode times down as in ffmpeg, so
//! times match `ffprobe -show_packets`.
//!
//! # Writing
//!
//! * [`Mp4Writer`]: progressive. Moov at the end for recording ([`Mp4Writer::start`], payloads,
//!   [`Mp4Writer::finish`] + a [`Patch`] for the mdat size) or moov first after a first pass
//!   ([`Mp4Writer::header_moov_first`]). stco switches to co64 past 4 GB.
//! * [`FragmentWriter`]: CMAF init segment (ftyp iso6/cmfc, moov with mvex/trex and empty tables) and
//!   media segments or parts (`[styp]` moof(mfhd, traf(tfhd default-base-is-moof, tfdt, trun)) mdat).
//!   One writer for several tracks multiplexes; one writer per track gives CMAF's one track per file.
//!
//! Sample entries are built from [`crate::Track`]: avc1+avcC, hvc1+hvcC, av01+av1C, mp4a+esds (from
//! the AudioSpecificConfig), Opus+dOps (from the OpusHead).

pub mod boxes;
pub mod entry;
pub mod fragment;
pub mod moof;
pub mod movie;
pub mod reader;
pub mod writer;

pub use crate::time::{ms_to_ticks, ticks_to_ms};
pub use boxes::{BoxHeader, Boxes};
pub use fragment::{FragmentOptions, FragmentWriter};
pub use moof::{demux_segment, parse_moof, FragSample};
pub use movie::{parse_moov, IndexedSample, Limits, Movie, MovieTrack, SampleTable, Samples};
pub use reader::{read_all, Mp4Reader, Need};
pub use writer::{Mp4Writer, Patch};
