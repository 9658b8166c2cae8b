//! Fixed binary layout of the segments (see the crate docs for the prose version).
//!
//! All integers are native-endian (the segments never leave the machine) and naturally aligned;
//! every shared field is accessed through an atomic of its size.

pub const VERSION: u32 = 1;
pub const MAGIC_META: u64 = u64::from_le_bytes(*b"MISTMETA");
pub const MAGIC_PAGE: u64 = u64::from_le_bytes(*b"MISTPAGE");
pub const MAGIC_USERS: u64 = u64::from_le_bytes(*b"MISTUSER");

/// Largest frame payload `push` accepts.
pub const MAX_FRAME: usize = 32 << 20;
/// Most tracks per stream.
pub const MAX_TRACKS: usize = 32;
/// Largest init data (avcC, AudioSpecificConfig …) per track.
pub const MAX_INIT: usize = 16 << 10;
/// Largest stream name kept in the metadata (longer names are truncated there).
pub const MAX_NAME: usize = 256;
/// Key index entries per track (a ring; older entries are overwritten).
pub const KEY_RING: usize = 4096;
/// Page index entries (a ring).
pub const PAGE_RING: usize = 4096;
/// User slots per stream.
pub const USER_SLOTS: usize = 4096;

// ---- metadata segment header ----
pub const M_MAGIC: usize = 0; // u64
pub const M_VERSION: usize = 8; // u32
pub const M_HDRSIZE: usize = 12; // u32 (sanity: META_HEADER)
pub const M_LIVE: usize = 16; // u32
pub const M_ENDED: usize = 20; // u32
pub const M_WRITER_PID: usize = 24; // u32, 0 = no writer; CAS'd to take the writer role
pub const M_BUFFER_PID: usize = 28; // u32, MistInBuffer's pid or 0
pub const M_HEARTBEAT: usize = 32; // u64 unix ms
pub const M_EPOCH: usize = 40; // u32
pub const M_FUTEX: usize = 44; // u32, bumped on every change
pub const M_WAITERS: usize = 48; // u32, number of threads blocked on M_FUTEX
pub const M_IDLE_MS: usize = 52; // u32, publisher-gone timeout readers use without a buffer process
pub const M_DVR: usize = 56; // u64
pub const M_TRACKS_GEN: usize = 64; // u64 seqlock generation (odd = being written)
pub const M_FIRST_PAGE: usize = 72; // u64 oldest page still on disk
pub const M_CUR_PAGE: usize = 80; // u64 page being written (== first_page-1 .. when none yet)
pub const M_EPOCH_FIRST_PAGE: usize = 88; // u64 first page id of the current epoch
pub const M_FIRST_MS: usize = 96; // i64
pub const M_LAST_MS: usize = 104; // i64
pub const M_NONCE: usize = 112; // u64 random per stream incarnation
pub const M_CREATED: usize = 120; // u64 unix ms
pub const M_NAME_LEN: usize = 128; // u32
pub const M_HAS_PAGE: usize = 132; // u32 1 once any page was created
pub const M_NAME: usize = 136; // [u8; MAX_NAME]
pub const M_BLOB_LEN: usize = M_NAME + MAX_NAME; // u64, inside the seqlock
pub const M_FRAMES: usize = M_BLOB_LEN + 8; // u64 frames pushed in total
pub const M_BYTES: usize = M_FRAMES + 8; // u64 payload bytes pushed in total
pub const M_COMPLETE: usize = M_BYTES + 8; // u32 VoD: every frame of the source is written
/// Source file of external frame records (VoD): path length (0 = none; stored last, Release),
/// its inode, size and device (M_SRC_DEV) when it was set, and the path bytes (8-byte words) from
/// M_SRC_PATH.
pub const M_SRC_LEN: usize = 424; // u32
pub const M_SRC_INO: usize = 432; // u64
pub const M_SRC_SIZE: usize = 440; // u64
/// DVR byte cap of the stream (its config's `dvr_bytes`, stored by the buffer process): 0 = not
/// set (the writer's own cap applies), `u64::MAX` = none.
pub const M_DVR_BYTES: usize = 448; // u64
/// Viewers (users-table slots) the stream admits at once (its input's `max_viewers`): 0 = as
/// many as there are slots.
pub const M_MAX_USERS: usize = 456; // u32
/// Device of the source file (with M_SRC_INO: the file readers may open).
pub const M_SRC_DEV: usize = 464; // u64
pub const M_SRC_PATH: usize = 512; // [u8; MAX_SRC_PATH]
/// Longest source file path the metadata holds.
pub const MAX_SRC_PATH: usize = 2048;
const _: () = assert!(M_COMPLETE + 4 <= M_SRC_LEN);
const _: () = assert!(M_SRC_SIZE + 8 <= M_DVR_BYTES);
const _: () = assert!(M_MAX_USERS + 4 <= M_SRC_DEV);
const _: () = assert!(M_SRC_DEV + 8 <= M_SRC_PATH);
const _: () = assert!(M_SRC_PATH + MAX_SRC_PATH <= META_HEADER);
pub const META_HEADER: usize = 4096;

const fn round4k(n: usize) -> usize {
    (n + 4095) & !4095
}

/// Track table: a serialized blob (see `meta::encode_tracks`), protected by M_TRACKS_GEN.
pub const TRACK_BLOB: usize = META_HEADER;
pub const TRACK_BLOB_SIZE: usize = round4k(MAX_TRACKS * (MAX_INIT + 256) + 64);

/// Page index ring: entry = id u64 (written last), first_ms i64, last_ms i64, bytes u64.
pub const PAGE_RING_OFF: usize = TRACK_BLOB + TRACK_BLOB_SIZE;
pub const PAGE_ENTRY: usize = 32;

/// Per track slot: key_count u64 at +0, then KEY_RING entries of KEY_ENTRY bytes from +64.
/// Entry: seq u64 (= key number + 1 when valid), dts i64, page u64, offset u32, frames u32.
pub const KEYS_OFF: usize = PAGE_RING_OFF + round4k(PAGE_RING * PAGE_ENTRY);
pub const KEY_ENTRY: usize = 32;
pub const KEY_TRACK_SIZE: usize = 64 + KEY_RING * KEY_ENTRY;
pub const META_SIZE: usize = KEYS_OFF + MAX_TRACKS * KEY_TRACK_SIZE;

// ---- data page ----
pub const P_MAGIC: usize = 0; // u64
pub const P_ID: usize = 8; // u64
pub const P_NONCE: usize = 16; // u64
pub const P_EPOCH: usize = 24; // u32
pub const P_FLAGS: usize = 28; // u32, bit 0 = sealed (no more frames will be appended)
pub const P_COMMITTED: usize = 32; // u64 end offset of the last complete record
pub const P_CAP: usize = 40; // u64 file size
pub const P_FIRST_MS: usize = 48; // i64
pub const PAGE_HDR: usize = 64;
pub const PAGE_SEALED: u32 = 1;
/// Default page capacity (files are sparse on tmpfs: unused capacity costs no memory).
pub const PAGE_CAP: usize = 16 << 20;
/// A page is closed at the next main-track keyframe once it holds this much media time…
pub const PAGE_TARGET_MS: i64 = 2000;
/// …or this many bytes.
pub const PAGE_SOFT_BYTES: usize = 4 << 20;

// ---- frame record (inside pages) ----
pub const R_DTS: usize = 0; // i64
pub const R_PTS_OFF: usize = 8; // i32
pub const R_TRACK: usize = 12; // u32
pub const R_FLAGS: usize = 16; // u32, bit 0 = keyframe, bit 1 = external
pub const R_LEN: usize = 20; // u32
pub const R_SEQ: usize = 24; // u64 frame number in the stream
pub const REC_HDR: usize = 32;
pub const REC_KEY: u32 = 1;
/// External record: the payload is `len` bytes at a file offset (u64, the record body) in the
/// stream's source file (`M_SRC_PATH`), not in the page.
pub const REC_EXT: u32 = 2;
/// Body size of an external record (the u64 file offset).
pub const REC_EXT_BODY: usize = 8;

pub const fn rec_size(len: usize) -> usize {
    (REC_HDR + len + 7) & !7
}

// ---- users segment ----
pub const U_MAGIC: usize = 0; // u64
pub const U_VERSION: usize = 8; // u32
pub const U_SLOTS: usize = 12; // u32
pub const U_HIGH: usize = 16; // u32 high-water mark of claimed slots (crate::slots::high_mark)
pub const U_BASE: usize = 64;
pub const SLOT_SIZE: usize = 256;
pub const S_STATE: usize = 0; // u32 0 free, 1 being claimed, 2 in use
pub const S_PID: usize = 4; // u32
pub const S_POS: usize = 8; // i64
pub const S_DOWN: usize = 16; // u64
pub const S_UP: usize = 24; // u64
pub const S_CONNECTED: usize = 32; // u64 unix s
pub const S_ACTIVE: usize = 40; // u64 unix s
pub const S_CONN_LEN: usize = 48; // u32
pub const S_HOST_LEN: usize = 52; // u32
pub const S_CONN: usize = 56; // [u8; 32]
pub const S_CONN_MAX: usize = 32;
pub const S_HOST: usize = 88; // [u8; 128]
pub const S_HOST_MAX: usize = 128;
pub const USERS_SIZE: usize = U_BASE + USER_SLOTS * SLOT_SIZE;

pub const SLOT_FREE: u32 = 0;
pub const SLOT_CLAIMING: u32 = 1;
pub const SLOT_USED: u32 = 2;
