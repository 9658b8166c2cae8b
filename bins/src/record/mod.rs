//! Recordings: one stream read from shared memory as a viewer and written to files that are
//! complete whatever happens.
//!
//! Used by the per-format outputs (`MistOutEBML -s live+alice --duration 3600 /rec/alice.mkv`)
//! whenever their target is a file whose extension names a recording format, and so by every
//! push to a file the controller starts.
//!
//! * Every unit (Matroska Cluster, FLV tag, TS packets, MP4 sample) is written whole with
//!   `pwrite` at the end of what is known to be on disk; a failed write is cut off at the close.
//! * 256 KiB past the end of the file is kept allocated (`fallocate` with `KEEP_SIZE`) and media
//!   never writes into it, so that the index (Cues, moov) still fits when the disk fills up, even
//!   with other writers taking every free block.
//! * Data is flushed to the disk (`fdatasync`) every 2 s, so a power loss keeps all but the
//!   last seconds.
//! * On SIGINT/SIGTERM, end of stream, `duration`/`recstop`, a track change, a split or a write
//!   error the file gets its tail and patches (Duration, Cues, SeekHead, moov, FLV metadata) and
//!   is fsync'd.
//! * `split=N`: a new file at the first keyframe of the main track N seconds after the start of
//!   the current one, its name from the target with the `$variables` evaluated again.
//! * Segmented HLS (INTERFACES §4.4): a `.ts` target with `m3u8=PLAYLIST` (MistServer's form:
//!   the playlist path relative to the target's directory), or a `.m3u8` target with
//!   parameters (`segment=` names the segments relative to it, default `$segmentCounter.ts`).
//!   The segment name must hold `$segmentCounter` or `$currentMediaTime` (the segment's start,
//!   media ms); `split` defaults to 60. After each segment the playlist ([`playlist`]) is
//!   written whole under a temporary name and renamed into place; `maxEntries`/`targetAge`
//!   trim it and delete the segments that left (not with `nounlink`); `noendlist` leaves the
//!   finished playlist open; `append` continues an existing playlist after an
//!   `#EXT-X-DISCONTINUITY`, else the segments an old playlist at the same path lists are
//!   deleted first. When the stream's tracks change (a new publisher with another codec or
//!   resolution), the segment in progress ends and the next one follows an
//!   `#EXT-X-DISCONTINUITY`.
//!
//! Exit codes: 0 the recording is complete (stream ended, duration/recstop reached, signal);
//! 1 the stream does not exist, cannot be recorded in this format, or ended before a keyframe;
//! 2 usage error; 3 the target cannot be opened; 4 a write failed (disk full, file size limit,
//! I/O error): the file was finalised up to the last complete unit.

pub mod mux;
pub mod playlist;

use crate::http_out::mux::{main_track, select};
use mist_core::push::{expand, LocalTime, PushParams, Vars};
use mist_media::{Frame, Track};
use mist_shm::{ReadEvent, ReaderInfo, StreamReader};
use mux::{FileMux, Kind};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Exit code: the target cannot be opened.
pub const EXIT_OPEN: i32 = 3;
/// Exit code: a write failed; the file was finalised up to its last complete unit.
pub const EXIT_WRITE: i32 = 4;

/// How often what was written is flushed to the disk (`fdatasync`).
const SYNC_EVERY: Duration = Duration::from_secs(2);

/// Bytes kept allocated past the end of the file for the index.
const RESERVE: u64 = 256 << 10;

/// Whether a push target is a recording file this module writes: not stdout, not a URL, not an
/// `*-exec:` command, and with a known extension (after the parameters are taken off).
pub fn is_file_target(target: &str) -> bool {
    let base = target.rsplit_once('?').map_or(target, |(b, _)| b);
    base != "-"
        && !base.contains("://")
        && !base.contains("-exec:")
        && (Kind::from_path(base).is_some() || is_hls_recording(target))
}

/// Whether a `.m3u8` target is a segmented HLS recording (it has Mist parameters) rather than
/// MistOutHLS's live-window mirror of a directory (no parameters).
pub fn is_hls_recording(target: &str) -> bool {
    target
        .rsplit_once('?')
        .is_some_and(|(b, q)| b.to_ascii_lowercase().ends_with(".m3u8") && !q.is_empty())
}

/// A segmented HLS recording: where its playlist and segments go, and the playlist.
struct Hls {
    /// The playlist file.
    path: std::path::PathBuf,
    /// Its directory: segment URIs are relative to it.
    dir: std::path::PathBuf,
    nounlink: bool,
    list: playlist::Playlist,
}

/// `rel` against `dir` (an absolute `rel` stays as is).
fn resolve(dir: &str, rel: &str) -> String {
    if rel.starts_with('/') || dir.is_empty() {
        rel.to_string()
    } else {
        format!("{}/{rel}", dir.trim_end_matches('/'))
    }
}

/// `a/./b/../c` → `a/c` (lexically; `..` above the start stays).
fn normalize(path: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." if out.last().is_some_and(|l| *l != "..") => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// How a playlist in `dir` refers to `path`: relative when both are absolute or both relative,
/// else `path` as is.
fn relative(dir: &str, path: &str) -> String {
    if dir.starts_with('/') != path.starts_with('/') {
        return path.to_string();
    }
    let (d, p) = (normalize(dir), normalize(path));
    let common = d.iter().zip(&p).take_while(|(a, b)| a == b).count();
    if d[common..].contains(&"..") {
        return path.to_string();
    }
    let mut parts: Vec<&str> = vec![".."; d.len() - common];
    parts.extend(&p[common..]);
    parts.join("/")
}

fn dir_of(path: &str) -> &str {
    path.rsplit_once('/')
        .map_or("", |(d, _)| if d.is_empty() { "/" } else { d })
}

/// The playlist and segment templates of a segmented recording, or `None` for a plain file:
/// `(playlist, segment)`.
fn hls_templates(
    base: &str,
    params: &std::collections::BTreeMap<String, String>,
) -> Option<(String, String)> {
    let seg = params.get("segment").filter(|s| !s.is_empty());
    if base.to_ascii_lowercase().ends_with(".m3u8") {
        let seg = seg.map_or("$segmentCounter.ts", |s| s.as_str());
        return Some((base.to_string(), resolve(dir_of(base), seg)));
    }
    let pl = params.get("m3u8").filter(|s| !s.is_empty())?;
    let seg = seg.map_or_else(|| base.to_string(), |s| resolve(dir_of(base), s));
    Some((resolve(dir_of(base), pl), seg))
}

impl Hls {
    /// Lists a closed segment, deletes what trimming removed, writes the playlist.
    fn add(&mut self, seg_path: &str, dur_ms: i64, unix_ms: i64, ended: bool) {
        let uri = relative(&self.dir.to_string_lossy(), seg_path);
        let entry = playlist::Entry {
            uri,
            dur_ms,
            unix_ms,
            discontinuity: false,
        };
        let gone = self.list.push(entry, unix_now() * 1000);
        if !self.nounlink {
            self.unlink(&gone);
        }
        self.write(ended);
    }

    /// Deletes segments by their playlist URIs (relative ones only).
    fn unlink(&self, uris: &[String]) {
        for u in uris {
            if u.starts_with('/') || u.contains("://") || u.contains('?') {
                continue;
            }
            let p = self.dir.join(u);
            match std::fs::remove_file(&p) {
                Ok(()) => mist_core::debug!("removed segment {}", p.display()),
                Err(e) => mist_core::warn!("removing segment {}: {e}", p.display()),
            }
        }
    }

    /// Writes the playlist whole under a temporary name and renames it into place.
    fn write(&self, ended: bool) {
        let text = self.list.render(ended);
        let tmp = self.path.with_extension("m3u8.tmp");
        let r = std::fs::write(&tmp, text).and_then(|_| std::fs::rename(&tmp, &self.path));
        if let Err(e) = r {
            mist_core::error!("writing playlist {}: {e}", self.path.display());
        }
    }
}

/// What a recording is told.
pub struct RecArgs {
    /// The recording binary (`MistOutEBML` …): its connector name goes into RECORDING_END.
    pub bin: String,
    /// Sanitised stream name.
    pub stream: String,
    /// The target as given: path template (with `$variables`) and parameters after the last `?`.
    pub target: String,
    /// Command line settings; the target's parameters win.
    pub params: PushParams,
    /// Seconds to wait for the stream.
    pub wait: u64,
    /// Set by SIGINT/SIGTERM: the recording finishes its file and ends.
    pub stop: Arc<AtomicBool>,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// An open recording file.
struct FileOut {
    f: File,
    path: String,
    /// Bytes known to be on disk (the end of the last complete unit).
    written: u64,
    /// Allocated up to here (`fallocate` with `KEEP_SIZE`); media never eats into the last
    /// [`RESERVE`] bytes of it, which are the index's.
    reserved_to: u64,
    /// The filesystem keeps allocations for us (`fallocate` worked at the open).
    reserving: bool,
    synced: Instant,
}

impl FileOut {
    fn open(path: &str, append: bool) -> std::io::Result<FileOut> {
        if let Some(dir) = std::path::Path::new(path).parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)?;
            }
        }
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(!append)
            .open(path)?;
        let written = if append { f.metadata()?.len() } else { 0 };
        let mut o = FileOut {
            f,
            path: path.to_string(),
            written,
            reserved_to: written,
            reserving: false,
            synced: Instant::now(),
        };
        // Best effort: a filesystem without fallocate records without a reserve.
        o.reserving = o.allocate(written + 2 * RESERVE);
        Ok(o)
    }

    /// Allocates the file's blocks up to `to` (past the end: `KEEP_SIZE`). False when the
    /// filesystem cannot (full, or no fallocate).
    fn allocate(&mut self, to: u64) -> bool {
        if to <= self.reserved_to {
            return true;
        }
        // SAFETY: fallocate on our own open descriptor; KEEP_SIZE changes no visible data.
        let r = unsafe {
            libc::fallocate(
                self.f.as_raw_fd(),
                libc::FALLOC_FL_KEEP_SIZE,
                self.reserved_to as libc::off_t,
                (to - self.reserved_to) as libc::off_t,
            )
        };
        if r == 0 {
            self.reserved_to = to;
        }
        r == 0
    }

    /// Writes one media unit whole. It must leave the whole [`RESERVE`] allocated behind it, so
    /// that on a full disk media stops (ENOSPC) before it eats the room the index needs. A unit
    /// that fails is cut off at the close (not here: truncating would free the reserve too).
    fn unit(&mut self, b: &[u8]) -> std::io::Result<()> {
        let end = self.written + b.len() as u64;
        if self.reserving
            && end + RESERVE > self.reserved_to
            && !self.allocate(end + 2 * RESERVE)
            && !self.allocate(end + RESERVE)
        {
            return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
        }
        self.write_unit(b)
    }

    /// Writes bytes at the end of what is known to be on disk, reserve or not.
    fn write_unit(&mut self, b: &[u8]) -> std::io::Result<()> {
        if b.is_empty() {
            return Ok(());
        }
        self.f.write_all_at(b, self.written)?;
        self.written += b.len() as u64;
        // What is written reaches the disk within a few seconds (power loss).
        if self.synced.elapsed() >= SYNC_EVERY {
            self.synced = Instant::now();
            // The unit is written; a failing flush shows in the next write or at the close.
            if let Err(e) = self.f.sync_data() {
                mist_core::warn!("{}: fdatasync: {e}", self.path);
            }
        }
        Ok(())
    }

    /// Tail, patches, release of the reserve, fsync.
    fn close(mut self, mux: &mut dyn FileMux, lost: bool) -> std::io::Result<u64> {
        let fin = mux.finish(lost);
        // The tail (index) goes into the reserve that media left for it.
        let tail_ok = self.write_unit(&fin.tail).is_ok();
        let patches = if tail_ok {
            fin.patches
        } else {
            mist_core::warn!(
                "{}: no room for the index; the file is kept without it",
                self.path
            );
            fin.patches_without_tail
        };
        let mut res = Ok(());
        for (at, bytes) in patches {
            if at + bytes.len() as u64 <= self.written {
                if let Err(e) = self.f.write_all_at(&bytes, at) {
                    res = Err(e);
                }
            }
        }
        if self.reserved_to > self.written {
            // SAFETY: as in `allocate`; frees the blocks kept past the end.
            unsafe {
                libc::fallocate(
                    self.f.as_raw_fd(),
                    libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                    self.written as libc::off_t,
                    (self.reserved_to - self.written) as libc::off_t,
                );
            }
        }
        let _ = self.f.set_len(self.written);
        self.f.sync_all()?;
        res.map(|_| self.written)
    }
}

/// One file being recorded.
struct Rec {
    out: FileOut,
    mux: Box<dyn FileMux>,
    first_ms: i64,
    last_ms: i64,
    start_unix: i64,
    start: Instant,
    /// Wall-clock start, unix ms (HLS `#EXT-X-PROGRAM-DATE-TIME`).
    start_unix_ms: i64,
    /// Where the media of this file ends: the first frame of the next split file.
    end_ms: Option<i64>,
    /// The last main-track frame and the interval before it (the duration of a last frame).
    prev_main: Option<i64>,
    gap_ms: i64,
}

/// Why a file ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    Done,
    Split,
    /// A write failed: why (as the OS said it, e.g. "No space left on device").
    WriteError(String),
}

/// The RECORDING_END payload (INTERFACES §5.3): every line, the last included, ends with `\n`.
#[allow(clippy::too_many_arguments)]
pub fn recording_end_payload(
    stream: &str,
    target: &str,
    connector: &str,
    bytes: u64,
    secs: u64,
    unix_start: i64,
    unix_stop: i64,
    first_ms: i64,
    last_ms: i64,
    code: i32,
    text: &str,
) -> String {
    let media = (last_ms - first_ms).max(0);
    let lines = [
        stream.to_string(),
        target.to_string(),
        connector.to_string(),
        bytes.to_string(),
        secs.to_string(),
        unix_start.to_string(),
        unix_stop.to_string(),
        media.to_string(),
        first_ms.to_string(),
        last_ms.to_string(),
        code.to_string(),
        text.replace('\n', " "),
    ];
    let mut s = String::new();
    for l in lines {
        s.push_str(&l);
        s.push('\n');
    }
    s
}

/// Tells the controller (if any) that a file is done, for RECORDING_END and push_list.
/// `stopping`: on SIGTERM (the controller may be shutting down and not answer), wait briefly.
fn report_end(stream: &str, payload: &str, stopping: bool) {
    if mist_core::control::socket_path().is_none() {
        return;
    }
    let req = mist_core::control::Request::Api {
        command: serde_json::json!({
            "recording_end": {"stream": stream, "payload": payload, "pid": std::process::id()}
        }),
    };
    let timeout = Duration::from_millis(if stopping { 500 } else { 5000 });
    if let Err(e) = mist_core::control::request(&req, timeout) {
        mist_core::debug!("recording end not reported: {e}");
    }
}

/// How often a push tells the controller how far it is.
const STATUS_EVERY: Duration = Duration::from_secs(5);

/// Tells the controller (if any) the file being written and how far it is (`push_list`).
fn report_status(path: &str, bytes: u64, media_ms: i64) {
    if mist_core::control::socket_path().is_none() {
        return;
    }
    let req = mist_core::control::Request::Api {
        command: serde_json::json!({
            "push_status_update": {
                "pid": std::process::id(), "target": path, "bytes": bytes, "media_ms": media_ms
            }
        }),
    };
    if let Err(e) = mist_core::control::request(&req, Duration::from_secs(2)) {
        mist_core::debug!("push status not reported: {e}");
    }
}

/// Records until done. Returns the exit code.
pub fn run(a: RecArgs) -> i32 {
    let connector = a.bin.trim_start_matches("MistOut").to_string();
    let (template, tp) = mist_core::push::split_target(&a.target, unix_now());
    let mut p = a.params.clone();
    // The target's parameters win over the command line.
    macro_rules! take {
        ($($f:ident),*) => { $( if tp.$f.is_some() { p.$f = tp.$f.clone(); } )* };
    }
    take!(video, audio, recstart, recstop, startunix, stopunix, duration, split);
    p.append |= tp.append;
    p.realtime |= tp.realtime;
    // A segmented HLS recording: segments named by their template, a playlist beside them.
    let hls_paths = hls_templates(&template, &tp.all);
    let template = match &hls_paths {
        Some((_, seg)) => {
            if !seg.contains("$segmentCounter") && !seg.contains("$currentMediaTime") {
                mist_core::error!(
                    "{seg}: a segmented recording needs $segmentCounter or $currentMediaTime in the segment name"
                );
                return 2;
            }
            if Kind::from_path(seg) != Some(Kind::Ts) {
                mist_core::error!("{seg}: HLS segments are recorded as .ts");
                return 2;
            }
            p.split = p.split.or(Some(60));
            seg.clone()
        }
        None => template,
    };
    let Some(kind) = Kind::from_path(&template) else {
        mist_core::error!("{template}: not a recording file extension");
        return 2;
    };
    // Appending continues the playlist; segments are new files.
    let append_playlist = hls_paths.is_some() && std::mem::take(&mut p.append);
    if p.append && !kind.appendable() {
        mist_core::warn!("{template}: append is only possible for .ts, .aac and .mp3; overwriting");
        p.append = false;
    }
    // Writes past RLIMIT_FSIZE fail with EFBIG instead of killing us.
    // SAFETY: setting a signal disposition to SIG_IGN has no memory-safety preconditions.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let name = a.stream.clone();
    let format = kind.format();
    // Wait for the stream.
    let deadline = Instant::now() + Duration::from_secs(a.wait);
    let mut reader = loop {
        if let Ok(s) = mist_shm::stream_status(&name) {
            if !s.ended {
                let info = ReaderInfo {
                    connector: connector.clone(),
                    host: "localhost".into(),
                };
                match StreamReader::open(&name, info) {
                    Ok(mut r) => {
                        if s.live {
                            r.seek_live();
                        }
                        break r;
                    }
                    Err(e) => mist_core::debug!("open {name}: {e}"),
                }
            }
        }
        if Instant::now() > deadline || a.stop.load(Ordering::Relaxed) {
            mist_core::error!("stream {name} not found");
            return 1;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // Wait for startunix.
    if let Some(at) = p.startunix {
        while unix_now() < at && !a.stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(200));
        }
        if matches!(mist_shm::stream_status(&name), Ok(s) if s.live) {
            reader.seek_live();
        }
    }
    // The playlist, now that the stream is known to be live or not.
    let hls = hls_paths.map(|(pl, _)| {
        let vars = Vars {
            stream: &name,
            custom: std::env::var("MIST_VARIABLES")
                .ok()
                .and_then(|v| serde_json::from_str(&v).ok())
                .unwrap_or_default(),
            ..Default::default()
        };
        let path = std::path::PathBuf::from(expand(&pl, &vars, &LocalTime::now()));
        let dir = path
            .parent()
            .map_or_else(|| std::path::PathBuf::from("."), |d| d.to_path_buf());
        let opts = playlist::Options {
            max_entries: tp
                .all
                .get("maxEntries")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            target_age: tp
                .all
                .get("targetAge")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            endlist: !tp.all.contains_key("noendlist"),
            live: mist_shm::stream_status(&name).is_ok_and(|s| s.live),
            split: p.split.unwrap_or(60),
        };
        let old = std::fs::read_to_string(&path).ok();
        let nounlink = tp.all.contains_key("nounlink");
        let list = match &old {
            Some(text) if append_playlist => {
                mist_core::info!("appending to playlist {}", path.display());
                playlist::Playlist::resume(text, opts)
            }
            _ => playlist::Playlist::new(opts),
        };
        let h = Hls {
            path,
            dir,
            nounlink,
            list,
        };
        if let (Some(text), false) = (&old, append_playlist) {
            mist_core::info!("replacing playlist {}", h.path.display());
            h.unlink(&playlist::Playlist::uris(text));
        }
        h
    });
    let hls = std::cell::RefCell::new(hls);
    let started = Instant::now();
    let selection = |r: &StreamReader| -> Vec<Track> {
        let table = r.tracks();
        select(
            &r.tracks_with_rates(),
            format,
            p.video.as_deref(),
            p.audio.as_deref(),
        )
        .iter()
        .filter_map(|s| table.iter().find(|t| t.id == s.id).cloned())
        .collect()
    };
    // Custom variables from the controller (config `variables`).
    let custom: std::collections::BTreeMap<String, String> = std::env::var("MIST_VARIABLES")
        .ok()
        .and_then(|v| serde_json::from_str(&v).ok())
        .unwrap_or_default();
    let vars_for = |_: ()| Vars {
        stream: &name,
        custom: custom.clone(),
        ..Default::default()
    };
    let mut last_status = Instant::now();
    let mut tracks: Vec<Track> = Vec::new();
    let mut main = None;
    let mut rec: Option<Rec> = None;
    let mut recheck = false;
    let mut code = 0;
    let mut files = 0u32;
    let mut rec_first: Option<i64> = None;
    // `realtime`: the wall clock and media time of the first frame read.
    let mut pace: Option<(Instant, i64)> = None;
    let finish_file = |rec: Rec, end: End, lost: bool, code: i32| {
        let Rec {
            out,
            mut mux,
            first_ms,
            last_ms,
            start_unix,
            start,
            start_unix_ms,
            end_ms,
            gap_ms,
            ..
        } = rec;
        let path = out.path.clone();
        // A muxer that buffers (Matroska) loses its buffered frames with the lost unit: the
        // payload says what the file holds.
        let last_ms = match mux.kept_ms() {
            Some(kept) if lost => last_ms.min(first_ms + kept),
            _ => last_ms,
        };
        let (bytes, text) = match out.close(mux.as_mut(), lost) {
            Ok(n) => (
                n,
                match &end {
                    End::WriteError(e) => {
                        format!("write error: {e}; finalised to the last complete frame")
                    }
                    End::Split => "split".to_string(),
                    End::Done => "completed".to_string(),
                },
            ),
            Err(e) => {
                mist_core::error!("{path}: finishing: {e}");
                (0, format!("finishing the file failed: {e}"))
            }
        };
        mist_core::info!(
            "stream {name}: recorded {path} ({bytes} bytes, {} ms)",
            last_ms - first_ms
        );
        let payload = recording_end_payload(
            &name,
            &path,
            &connector,
            bytes,
            start.elapsed().as_secs(),
            start_unix,
            unix_now(),
            first_ms,
            last_ms,
            code,
            &text,
        );
        report_end(&name, &payload, a.stop.load(Ordering::Relaxed));
        if let Some(h) = hls.borrow_mut().as_mut() {
            let dur = end_ms.unwrap_or(last_ms + gap_ms) - first_ms;
            h.add(&path, dur, start_unix_ms, end != End::Split);
        }
    };
    let open_file = |tracks: &[Track], start_ms: i64| -> Result<Rec, i32> {
        let mut vars = vars_for(());
        if let Some(h) = hls.borrow().as_ref() {
            vars.custom
                .insert("segmentCounter".into(), h.list.next_counter().to_string());
            vars.custom
                .insert("currentMediaTime".into(), start_ms.to_string());
        }
        let path = expand(&template, &vars, &LocalTime::now());
        let mux = mux::for_kind(kind, tracks).map_err(|e| {
            mist_core::error!("stream {name}: cannot record as {}: {e}", format.name());
            1
        })?;
        let out = FileOut::open(&path, p.append).map_err(|e| {
            mist_core::error!("cannot open recording target {path}: {e}");
            EXIT_OPEN
        })?;
        mist_core::info!("stream {name}: recording to {path}");
        report_status(&path, 0, 0);
        Ok(Rec {
            out,
            mux,
            first_ms: 0,
            last_ms: 0,
            start_unix: unix_now(),
            start: Instant::now(),
            start_unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
            end_ms: None,
            prev_main: None,
            gap_ms: 0,
        })
    };
    let limit_ms = p.duration.map(|d| d as i64 * 1000);
    loop {
        if a.stop.load(Ordering::Relaxed) {
            break;
        }
        if let Some(ms) = limit_ms {
            // Wall clock too, for a stream that stalls.
            if started.elapsed() >= Duration::from_millis(ms as u64 + 5000) {
                break;
            }
        }
        if p.stopunix.is_some_and(|t| unix_now() >= t) {
            break;
        }
        let f: Frame = match reader.next() {
            ReadEvent::Frame(f) => f,
            ReadEvent::TracksChanged | ReadEvent::Restarted => {
                recheck = true;
                continue;
            }
            ReadEvent::Pending => {
                reader.wait(Duration::from_millis(250));
                continue;
            }
            ReadEvent::Ended => break,
        };
        if std::mem::take(&mut recheck) && rec.is_some() && selection(&reader) != tracks {
            mist_core::info!("stream {name}: tracks changed; starting a new file");
            if let Some(r) = rec.take() {
                finish_file(r, End::Split, false, 0);
            }
            // A segmented recording: the next segment has other tracks.
            if let Some(h) = hls.borrow_mut().as_mut() {
                h.list.mark_discontinuity();
            }
        }
        if p.recstart.is_some_and(|s| f.dts < s) {
            continue;
        }
        if p.recstop.is_some_and(|s| f.dts > s) {
            break;
        }
        // `realtime`: no faster than playback speed (a VoD stream is otherwise read at once).
        if p.realtime {
            let (wall, media) = *pace.get_or_insert((Instant::now(), f.dts));
            let due = wall + Duration::from_millis((f.dts - media).max(0) as u64);
            while !a.stop.load(Ordering::Relaxed) {
                let now = Instant::now();
                if now >= due {
                    break;
                }
                std::thread::sleep((due - now).min(Duration::from_millis(100)));
            }
        }
        let is_main_key = |main: Option<u32>| Some(f.track) == main && f.keyframe;
        if rec.is_none() {
            let sel = selection(&reader);
            if sel.is_empty() {
                if !reader.tracks().is_empty() && reader.tracks().iter().any(|t| t.id == f.track) {
                    mist_core::error!(
                        "stream {name}: none of its tracks can be recorded as {}",
                        format.name()
                    );
                    return 1;
                }
                continue;
            }
            let m = main_track(&sel);
            if !is_main_key(m) {
                continue;
            }
            match open_file(&sel, f.dts) {
                Ok(mut r) => {
                    let h = r.mux.header();
                    if let Err(e) = r.out.unit(&h) {
                        mist_core::error!("{}: {e}", r.out.path);
                        finish_file(r, End::WriteError(e.to_string()), true, EXIT_WRITE);
                        return EXIT_WRITE;
                    }
                    r.mux.committed();
                    r.first_ms = f.dts;
                    r.last_ms = f.dts;
                    tracks = sel;
                    main = m;
                    files += 1;
                    rec = Some(r);
                }
                Err(c) => return c,
            }
        }
        if !tracks.iter().any(|t| t.id == f.track) {
            continue;
        }
        let Some(r) = rec.as_mut() else { continue };
        // `duration` counts from the first frame of the first file (over splits).
        let rec_first = *rec_first.get_or_insert(r.first_ms);
        if limit_ms.is_some_and(|ms| f.dts - rec_first >= ms) {
            break;
        }
        // Split at the first main keyframe past the split length.
        if let Some(split) = p.split {
            if is_main_key(main) && f.dts - r.first_ms >= split as i64 * 1000 {
                let mut old = rec.take().expect("open");
                old.end_ms = Some(f.dts);
                finish_file(old, End::Split, false, 0);
                match open_file(&tracks, f.dts) {
                    Ok(mut n) => {
                        let h = n.mux.header();
                        if let Err(e) = n.out.unit(&h) {
                            mist_core::error!("{}: {e}", n.out.path);
                            finish_file(n, End::WriteError(e.to_string()), true, EXIT_WRITE);
                            return EXIT_WRITE;
                        }
                        n.mux.committed();
                        n.first_ms = f.dts;
                        n.last_ms = f.dts;
                        files += 1;
                        rec = Some(n);
                    }
                    Err(c) => return c,
                }
            }
        }
        let Some(r) = rec.as_mut() else { continue };
        let unit = r.mux.frame(&f, is_main_key(main));
        match r.out.unit(&unit) {
            Ok(()) => {
                r.mux.committed();
                r.last_ms = r.last_ms.max(f.dts);
                if Some(f.track) == main {
                    if let Some(prev) = r.prev_main.filter(|p| f.dts > *p) {
                        r.gap_ms = f.dts - prev;
                    }
                    r.prev_main = Some(f.dts);
                }
                reader.report(r.out.written, 0);
                if last_status.elapsed() >= STATUS_EVERY {
                    last_status = Instant::now();
                    report_status(&r.out.path, r.out.written, r.last_ms - r.first_ms);
                }
            }
            Err(e) => {
                mist_core::error!("{}: write failed: {e}", r.out.path);
                code = EXIT_WRITE;
                let r = rec.take().expect("open");
                finish_file(r, End::WriteError(e.to_string()), true, code);
                break;
            }
        }
    }
    if let Some(r) = rec.take() {
        finish_file(r, End::Done, false, 0);
    }
    if files == 0 && code == 0 && !a.stop.load(Ordering::Relaxed) {
        mist_core::error!("stream {name}: nothing was recorded (no keyframe before its end)");
        return 1;
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_targets() {
        assert!(is_file_target("/rec/$stream.mkv"));
        assert!(is_file_target("/rec/a.ts?split=60&append"));
        assert!(!is_file_target("-"));
        assert!(!is_file_target("rtmp://h/app/key.flv"));
        assert!(!is_file_target("ts-exec:ffmpeg -i - x.ts"));
        assert!(!is_file_target("/rec/a.txt"));
        assert!(is_file_target("/rec/index.m3u8?split=6"));
        assert!(!is_file_target("/rec/index.m3u8"));
        assert!(is_hls_recording("/rec/$stream/index.m3u8?maxEntries=5"));
        assert!(!is_hls_recording("/rec/a.ts?m3u8=index.m3u8"));
    }

    #[test]
    fn relative_uris() {
        assert_eq!(relative("/r/x", "/r/x/0.ts"), "0.ts");
        assert_eq!(relative("/r/seg/..", "/r/seg/0.ts"), "seg/0.ts");
        assert_eq!(relative("/r/a", "/r/b/0.ts"), "../b/0.ts");
        assert_eq!(relative("rec", "/abs/0.ts"), "/abs/0.ts");
        assert_eq!(relative("rec/x", "rec/x/s/1.ts"), "s/1.ts");
    }

    #[test]
    fn hls_paths() {
        let no = std::collections::BTreeMap::new();
        assert_eq!(hls_templates("/r/a.ts", &no), None);
        assert_eq!(
            hls_templates("/r/x/index.m3u8", &no),
            Some(("/r/x/index.m3u8".into(), "/r/x/$segmentCounter.ts".into()))
        );
        let mut p = std::collections::BTreeMap::new();
        p.insert("m3u8".to_string(), "../list.m3u8".to_string());
        assert_eq!(
            hls_templates("/r/seg/$currentMediaTime.ts", &p),
            Some((
                "/r/seg/../list.m3u8".into(),
                "/r/seg/$currentMediaTime.ts".into()
            ))
        );
        p.insert("segment".to_string(), "s/$segmentCounter.ts".to_string());
        assert_eq!(
            hls_templates("/r/x.m3u8", &p),
            Some(("/r/x.m3u8".into(), "/r/s/$segmentCounter.ts".into()))
        );
    }

    #[test]
    fn recording_end_lines() {
        let p = recording_end_payload(
            "live+a", "/r/a.mkv", "EBML", 10, 2, 100, 102, 500, 2500, 0, "done\nx",
        );
        assert_eq!(
            p,
            "live+a\n/r/a.mkv\nEBML\n10\n2\n100\n102\n2000\n500\n2500\n0\ndone x\n"
        );
    }
}
