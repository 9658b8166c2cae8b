//! Element IDs of EBML and Matroska that this module reads or writes (marker bits included).

/// `EBML`: the header that starts every EBML document.
pub const EBML: u32 = 0x1A45_DFA3;
/// `EBMLVersion`.
pub const EBML_VERSION: u32 = 0x4286;
/// `EBMLReadVersion`.
pub const EBML_READ_VERSION: u32 = 0x42F7;
/// `EBMLMaxIDLength` (4 in Matroska).
pub const EBML_MAX_ID_LENGTH: u32 = 0x42F2;
/// `EBMLMaxSizeLength` (8 in Matroska).
pub const EBML_MAX_SIZE_LENGTH: u32 = 0x42F3;
/// `DocType`: `matroska` or `webm`, which decides the codecs allowed.
pub const DOC_TYPE: u32 = 0x4282;
/// `DocTypeVersion`.
pub const DOC_TYPE_VERSION: u32 = 0x4287;
/// `DocTypeReadVersion`.
pub const DOC_TYPE_READ_VERSION: u32 = 0x4285;

/// `Void`: padding, allowed anywhere, skipped.
pub const VOID: u32 = 0xEC;
/// `CRC-32` of its parent's other children, allowed anywhere; not checked.
pub const CRC32: u32 = 0xBF;

/// `Segment`: everything after the header.
pub const SEGMENT: u32 = 0x1853_8067;

/// `SeekHead`: where the top-level elements are (for seeking in files).
pub const SEEK_HEAD: u32 = 0x114D_9B74;
/// `Seek`: one entry of the SeekHead.
pub const SEEK: u32 = 0x4DBB;
/// `SeekID`: the ID of the element an entry points at.
pub const SEEK_ID: u32 = 0x53AB;
/// `SeekPosition`: its offset from the start of the Segment's data.
pub const SEEK_POSITION: u32 = 0x53AC;

/// `Info`: segment-wide information.
pub const INFO: u32 = 0x1549_A966;
/// `TimestampScale`: nanoseconds per timestamp unit (1 000 000: ms).
pub const TIMECODE_SCALE: u32 = 0x2A_D7B1;
/// `Duration`, a float in timestamp units.
pub const DURATION: u32 = 0x4489;
/// `MuxingApp`.
pub const MUXING_APP: u32 = 0x4D80;
/// `WritingApp`.
pub const WRITING_APP: u32 = 0x5741;

/// `Tracks`.
pub const TRACKS: u32 = 0x1654_AE6B;
/// `TrackEntry`: one track.
pub const TRACK_ENTRY: u32 = 0xAE;
/// `TrackNumber`: what blocks refer to.
pub const TRACK_NUMBER: u32 = 0xD7;
/// `TrackUID`.
pub const TRACK_UID: u32 = 0x73C5;
/// `TrackType`: 1 video, 2 audio, 17 subtitles …
pub const TRACK_TYPE: u32 = 0x83;
/// `FlagLacing`.
pub const FLAG_LACING: u32 = 0x9C;
/// `CodecID` (`V_MPEG4/ISO/AVC`, `A_OPUS` …).
pub const CODEC_ID: u32 = 0x86;
/// `CodecPrivate`: the codec's configuration (avcC, OpusHead …).
pub const CODEC_PRIVATE: u32 = 0x63A2;
/// `DefaultDuration`: ns per frame.
pub const DEFAULT_DURATION: u32 = 0x23_E383;
/// `Language`.
pub const LANGUAGE: u32 = 0x22_B59C;
/// `CodecDelay`: ns of decoder delay (Opus pre-skip).
pub const CODEC_DELAY: u32 = 0x56AA;
/// `SeekPreRoll`: ns to decode before a seek target (Opus).
pub const SEEK_PRE_ROLL: u32 = 0x56BB;
/// `ContentEncodings`: compression or encryption of the blocks. Header stripping is undone;
/// a track with any other encoding is marked, its frames could not be read as they are.
pub const CONTENT_ENCODINGS: u32 = 0x6D80;
/// `Video`: the video settings of a track.
pub const VIDEO: u32 = 0xE0;
/// `PixelWidth`.
pub const PIXEL_WIDTH: u32 = 0xB0;
/// `PixelHeight`.
pub const PIXEL_HEIGHT: u32 = 0xBA;
/// `Audio`: the audio settings of a track.
pub const AUDIO: u32 = 0xE1;
/// `SamplingFrequency`, a float in Hz.
pub const SAMPLING_FREQUENCY: u32 = 0xB5;
/// `Channels`.
pub const CHANNELS: u32 = 0x9F;
/// `BitDepth`.
pub const BIT_DEPTH: u32 = 0x6264;

/// `Cluster`: a run of blocks from one timestamp on.
pub const CLUSTER: u32 = 0x1F43_B675;
/// `Timestamp` of a Cluster: block times are relative to it.
pub const TIMECODE: u32 = 0xE7;
/// `Position` of a Cluster in the Segment.
pub const POSITION: u32 = 0xA7;
/// `PrevSize`: the size of the previous Cluster.
pub const PREV_SIZE: u32 = 0xAB;
/// `SimpleBlock`: one frame (or a lace) with its flags.
pub const SIMPLE_BLOCK: u32 = 0xA3;
/// `BlockGroup`: a Block with extra elements.
pub const BLOCK_GROUP: u32 = 0xA0;
/// `Block`: like a SimpleBlock, the keyframe flag is in its group.
pub const BLOCK: u32 = 0xA1;
/// `BlockDuration`.
pub const BLOCK_DURATION: u32 = 0x9B;
/// `ReferenceBlock`: present when the block is not a keyframe.
pub const REFERENCE_BLOCK: u32 = 0xFB;
/// `BlockAdditions`.
pub const BLOCK_ADDITIONS: u32 = 0x75A1;
/// `DiscardPadding`: ns of decoded audio to drop (Opus end trimming).
pub const DISCARD_PADDING: u32 = 0x75A2;
/// `EncryptedBlock` (obsolete).
pub const ENCRYPTED_BLOCK: u32 = 0xAF;

/// `Cues`: the seek index.
pub const CUES: u32 = 0x1C53_BB6B;
/// `CuePoint`: one entry of the index.
pub const CUE_POINT: u32 = 0xBB;
/// `CueTime`, in timestamp units.
pub const CUE_TIME: u32 = 0xB3;
/// `CueTrackPositions`.
pub const CUE_TRACK_POSITIONS: u32 = 0xB7;
/// `CueTrack`.
pub const CUE_TRACK: u32 = 0xF7;
/// `CueClusterPosition`: the Cluster's offset in the Segment.
pub const CUE_CLUSTER_POSITION: u32 = 0xF1;
/// `CueRelativePosition`: the block's offset in its Cluster.
pub const CUE_RELATIVE_POSITION: u32 = 0xF0;

/// `Chapters` (skipped).
pub const CHAPTERS: u32 = 0x1043_A770;
/// `Tags` (skipped).
pub const TAGS: u32 = 0x1254_C367;
/// `Attachments` (skipped).
pub const ATTACHMENTS: u32 = 0x1941_A469;

/// The parent a Matroska element must have, as far as this reader cares: used to end masters of
/// unknown size (a Cluster of unknown size ends where a Cluster or another Segment child starts).
/// `Some(0)` is the stream's top level; `None` means "anywhere" (Void, CRC-32, unknown IDs).
pub fn parent(id: u32) -> Option<u32> {
    Some(match id {
        EBML | SEGMENT => 0,
        SEEK_HEAD | INFO | TRACKS | CLUSTER | CUES | CHAPTERS | TAGS | ATTACHMENTS => SEGMENT,
        TIMECODE | SIMPLE_BLOCK | BLOCK_GROUP | POSITION | PREV_SIZE | ENCRYPTED_BLOCK => CLUSTER,
        BLOCK | BLOCK_DURATION | REFERENCE_BLOCK | BLOCK_ADDITIONS | DISCARD_PADDING => BLOCK_GROUP,
        TRACK_ENTRY => TRACKS,
        CUE_POINT => CUES,
        SEEK => SEEK_HEAD,
        _ => return None,
    })
}
