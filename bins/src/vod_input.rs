//! VoD file inputs: the code behind `MistInMP4`, `MistInTS`, `MistInFLV` and `MistInEBML`.
//!
//! One process serves one stream from one file:
//!
//! * It opens the file and demuxes it with [`mist_media::remux::Demux`] (read in 1 MiB pieces;
//!   MP4 through a few 2 MiB windows). Frames are held until every track is known (or they span
//!   [`mist_media::remux::PROBE_MS`]) by remux's [`Probe`]; only then is the stream created, so a
//!   file that is missing, unreadable or not of the input's container never leaves anything in
//!   shared memory.
//! * It creates the stream as VoD: [`StreamBuffer::open`] with `live: false` (this process owns the
//!   stream's lifetime, as MistInBuffer does for a live stream) and [`StreamWriter::create`]; sets
//!   every track, then pushes every frame **in decode-time order across tracks** (remux's
//!   [`Interleaver`]: a bounded queue per track, [`MAX_QUEUED`] frames in all) with times shifted
//!   so that the first is ≥ 0, and calls [`StreamWriter::complete`]. Viewers may start while it
//!   loads: a VoD reader starts at the first frame and waits for more, and gets `Ended` past the
//!   last frame once the stream is complete.
//! * Then it waits: it heartbeats the writer twice a second and ends the stream (removing its
//!   files) and exits 0 when no viewer has been connected for the input timeout (`-i SECONDS`,
//!   stream option `inputtimeout`, default [`DEFAULT_TIMEOUT_S`], counted from the end of the
//!   load), on SIGINT/SIGTERM, or when somebody else ended the stream.
//!
//! **Memory:** a progressive MP4 is not copied: only its box headers and `moov` are read, and
//! every sample becomes an *external* record (file offset and size, ~40 bytes of shared memory per
//! frame; [`StreamWriter::push_external`]); readers read payloads from the file. TS, FLV,
//! Matroska/WebM and fragmented MP4 files are streamed through and every frame's payload is
//! copied into the stream's shared-memory pages, so their whole payload stays in `/dev/shm`
//! (tmpfs, i.e. RAM) while the stream is active. Loading pages on demand (MistServer keeps only
//! the pages viewers need) is not built. A tmpfs that fills up while loading is a clear error
//! (exit [`EXIT_SHM`]) and the partial stream is removed.

use clap::{CommandFactory, FromArgMatches, Parser};
use mist_media::mp4::{Movie, Mp4Reader, Need};
pub use mist_media::remux::MAX_QUEUED;
use mist_media::remux::{Demux, Event, Input, Interleaver, Probe};
use mist_media::Track;
use mist_shm::{ShmError, StreamBuffer, StreamWriter, WriterOptions};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Seconds without a viewer (after loading) before the stream is ended.
pub const DEFAULT_TIMEOUT_S: u64 = 30;
/// Viewers (reader slots) a VoD stream admits at once by default (stream option `max_viewers`;
/// the users table has [`mist_shm::USER_SLOTS`]).
pub const DEFAULT_MAX_VIEWERS: u32 = 1000;

/// The capability entry of `max_viewers` (VoD inputs).
pub fn max_viewers_capability() -> serde_json::Value {
    json!({
        "name": "Viewer limit",
        "help": "Viewers of this VoD stream at once (each holds a reader slot); one more is refused and logged. 0: as many as there are slots (4096).",
        "type": "uint",
        "default": DEFAULT_MAX_VIEWERS,
        "option": "--max-viewers"
    })
}

/// Exit status: the stream ended normally (idle timeout, signal, ended by someone else).
pub const EXIT_OK: i32 = 0;
/// Exit status: the stream could not be created or was taken over while loading (another process
/// serves it, shared memory unusable).
pub const EXIT_STREAM: i32 = 1;
/// Exit status: usage error (bad or missing option, no stream name, no source).
pub const EXIT_USAGE: i32 = 2;
/// Exit status: the source file is missing, unreadable or not a regular file.
pub const EXIT_SOURCE: i32 = 3;
/// Exit status: the file is not of this input's container, or has no playable track.
pub const EXIT_FORMAT: i32 = 4;
/// Exit status: writing into shared memory failed while loading (a full tmpfs).
pub const EXIT_SHM: i32 = 5;

/// Which container an input binary reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// MP4 and QuickTime (`MistInMP4`).
    Mp4,
    /// MPEG-TS (`MistInTS`).
    Ts,
    /// FLV (`MistInFLV`).
    Flv,
    /// Matroska and WebM.
    Ebml,
}

impl Kind {
    /// The input's name as MistServer spells it (`MistIn<name>`, the `name` of `-j`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Mp4 => "MP4",
            Kind::Ts => "TS",
            Kind::Flv => "FLV",
            Kind::Ebml => "EBML",
        }
    }

    /// The input binary's name (what the controller starts for the source).
    pub fn binary(self) -> &'static str {
        match self {
            Kind::Mp4 => "MistInMP4",
            Kind::Ts => "MistInTS",
            Kind::Flv => "MistInFLV",
            Kind::Ebml => "MistInEBML",
        }
    }

    /// The `source_match` patterns of the binary's `-j` capabilities (the controller picks the input by them).
    pub fn source_match(self) -> &'static [&'static str] {
        match self {
            Kind::Mp4 => &["/*.mp4", "/*.mov", "/*.m4v", "/*.m4a"],
            Kind::Ts => &["/*.ts", "/*.m2ts", "/*.mts"],
            Kind::Flv => &["/*.flv"],
            Kind::Ebml => &["/*.mkv", "/*.mka", "/*.webm"],
        }
    }

    fn desc(self) -> &'static str {
        match self {
            Kind::Mp4 => "VoD input for MP4/MOV files (progressive or fragmented): indexes the file in shared memory for the outputs (progressive files: the payloads are read from the file, not copied).",
            Kind::Ts => "VoD input for MPEG-TS files: loads the file into shared memory for the outputs.",
            Kind::Flv => "VoD input for FLV files: loads the file into shared memory for the outputs.",
            Kind::Ebml => "VoD input for Matroska and WebM files: loads the file into shared memory for the outputs.",
        }
    }

    fn about(self) -> &'static str {
        match self {
            Kind::Mp4 => "VoD input: serves an MP4/MOV file as a stream",
            Kind::Ts => "VoD input: serves an MPEG-TS file as a stream",
            Kind::Flv => "VoD input: serves an FLV file as a stream",
            Kind::Ebml => "VoD input: serves a Matroska/WebM file as a stream",
        }
    }

    fn input(self) -> Input {
        match self {
            Kind::Mp4 => Input::Mp4,
            Kind::Ts => Input::Ts,
            Kind::Flv => Input::Flv,
            Kind::Ebml => Input::Mkv,
        }
    }
}

/// The capabilities JSON printed by `-j`.
pub fn capabilities(kind: Kind) -> serde_json::Value {
    json!({
        "name": kind.name(),
        "desc": kind.desc(),
        "source_match": kind.source_match(),
        "priority": 9,
        "optional": {
            "inputtimeout": {
                "name": "Input timeout (s)",
                "help": "How long the stream stays loaded without viewers, in seconds.",
                "type": "uint",
                "default": DEFAULT_TIMEOUT_S,
                "option": "--inputtimeout",
                "short": "i"
            },
            "max_viewers": max_viewers_capability()
        }
    })
}

#[derive(Parser, Debug)]
#[command(version, disable_version_flag = true)]
struct Args {
    /// Stream name
    #[arg(short = 's', long = "stream")]
    stream: Option<String>,
    /// Source file
    source: Option<PathBuf>,
    /// Seconds without viewers (after loading) before the stream is ended
    #[arg(short = 'i', long = "inputtimeout", default_value_t = DEFAULT_TIMEOUT_S)]
    inputtimeout: u64,
    /// Viewers of the stream at once (stream option max_viewers; 0 = as many as there are slots)
    #[arg(long = "max-viewers", default_value_t = DEFAULT_MAX_VIEWERS)]
    max_viewers: u32,
    #[command(flatten)]
    common: crate::util::cli::ProcessArgs,
}

/// What [`run`] needs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The container read.
    pub kind: Kind,
    /// The stream written.
    pub stream: String,
    /// The file.
    pub source: PathBuf,
    /// How long the stream stays without viewers after loading.
    pub timeout: Duration,
    /// Viewers at once (0: as many as there are slots).
    pub max_viewers: u32,
}

/// The whole `main` of an input binary: parses the command line, runs, exits.
pub fn main(kind: Kind) -> ! {
    let cmd = Args::command().name(kind.binary()).about(kind.about());
    let args = match Args::from_arg_matches(&cmd.get_matches()) {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    if args.common.printed_json(|| capabilities(kind)) {
        std::process::exit(EXIT_OK);
    }
    mist_core::log::init(kind.binary(), args.common.debug);
    let name = crate::util::cli::stream_arg(args.stream, EXIT_USAGE);
    let Some(source) = args.source else {
        mist_core::error!("no source file given");
        std::process::exit(EXIT_USAGE);
    };
    let stop = crate::util::cli::stop_on_signals();
    let opts = Options {
        kind,
        stream: name,
        source,
        timeout: Duration::from_secs(args.inputtimeout),
        max_viewers: args.max_viewers,
    };
    std::process::exit(run(&opts, stop))
}

/// Totals of a load, for the log.
#[derive(Default)]
struct Loaded {
    frames: u64,
    bytes: u64,
    skipped: u64,
}

impl Loaded {
    /// Counts the push of a frame (`frame`: track, decode time, bytes). A frame too large is
    /// skipped with a warning; a full shared memory (where `what` could not be done) or a stream
    /// taken away is logged and gives the exit status.
    fn count(
        &mut self,
        pushed: Result<(), ShmError>,
        (track, dts, bytes): (u32, i64, u64),
        stream: &str,
        what: &str,
    ) -> Result<(), i32> {
        match pushed {
            Ok(()) => {
                self.frames += 1;
                self.bytes += bytes;
                Ok(())
            }
            Err(ShmError::FrameTooLarge(n)) => {
                mist_core::warn!(
                    "stream {stream}: frame of {n} bytes (track {track}, {dts} ms) too large, skipped"
                );
                self.skipped += 1;
                Ok(())
            }
            Err(e @ ShmError::Io { .. }) => {
                mist_core::error!("stream {stream}: cannot {what} in shared memory (full?): {e}");
                Err(EXIT_SHM)
            }
            Err(e) => {
                mist_core::error!("stream {stream} taken away while loading: {e}");
                Err(EXIT_STREAM)
            }
        }
    }
}

/// Why loading stopped early.
enum Abort {
    /// SIGINT/SIGTERM.
    Stopped,
    /// Exit with this status (the error is logged).
    Exit(i32),
}

/// Opens the source: a readable regular file.
fn open_source(path: &Path) -> std::io::Result<(std::fs::File, u64)> {
    let f = std::fs::File::open(path)?;
    let md = f.metadata()?;
    if !md.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok((f, md.len()))
}

/// Creates the VoD stream (buffer role and writer) and sets the tracks shared memory can hold.
/// `Err(code)`: exit with it (the error is logged, nothing is left behind).
fn create_vod(
    opts: &Options,
    tracks: &[Track],
    path: &str,
) -> Result<(StreamBuffer, StreamWriter, Interleaver), i32> {
    let idle_ms = opts.timeout.as_millis().min(u32::MAX as u128) as u32;
    let buf = open_stream(&opts.stream, idle_ms)?;
    buf.set_max_viewers(opts.max_viewers);
    let mut w = match StreamWriter::create(
        &opts.stream,
        WriterOptions {
            live: false,
            dvr_ms: 0,
        },
    ) {
        Ok(w) => w,
        Err(e) => {
            mist_core::error!("cannot write stream {}: {e}", opts.stream);
            let _ = buf.end();
            return Err(EXIT_STREAM);
        }
    };
    let mut il = Interleaver::default();
    for t in tracks {
        set_track(&mut w, &mut il, t, &opts.stream);
    }
    if il.tracks().is_empty() {
        mist_core::error!("{path}: none of its tracks can be stored");
        let _ = buf.end();
        return Err(EXIT_FORMAT);
    }
    Ok((buf, w, il))
}

/// Creates the stream's buffer (as its owner). A leftover of an earlier run of this stream with
/// no live writer (a crashed input) is removed first, so that the new load starts clean instead of
/// continuing the old one's page numbers and times.
fn open_stream(stream: &str, idle_ms: u32) -> Result<StreamBuffer, i32> {
    let opts = WriterOptions {
        live: false,
        dvr_ms: 0,
    };
    let open = || {
        StreamBuffer::open(stream, opts.clone(), idle_ms).map_err(|e| {
            match e {
                ShmError::WriterAlive(_, pid) => mist_core::error!(
                    "stream {stream} is already served by another process (pid {pid})"
                ),
                e => mist_core::error!("cannot create stream {stream}: {e}"),
            }
            EXIT_STREAM
        })
    };
    let buf = open()?;
    let st = buf.status();
    if st.writer_alive {
        mist_core::error!(
            "stream {stream} already has a writer (pid {})",
            st.writer_pid
        );
        return Err(EXIT_STREAM);
    }
    if st.epoch != 0 || !st.tracks.is_empty() {
        mist_core::info!("removing the leftovers of an earlier stream {stream}");
        let _ = buf.end();
        return open();
    }
    Ok(buf)
}

/// Loads the file and serves it until idle; returns the exit status.
pub fn run(opts: &Options, stop: Arc<AtomicBool>) -> i32 {
    let path = opts.source.display().to_string();
    let kind = opts.kind;
    let (file, len) = match open_source(&opts.source) {
        Ok(f) => f,
        Err(e) => {
            mist_core::error!("cannot open {path}: {e}");
            return EXIT_SOURCE;
        }
    };
    let t0 = Instant::now();
    mist_core::info!("loading {path} ({len} bytes) as stream {}", opts.stream);
    if kind == Kind::Mp4 {
        if let Some(movie) = read_moov(&file, len) {
            return run_external(opts, &movie, len, t0, stop);
        }
        // Fragmented, or no readable moov: the copying path (which also reports the errors).
    }
    let mut demux = Demux::new(file, len, kind.input());

    // Probe: hold frames until every track is known and has a frame, or the window is full.
    let mut probe = Probe::default();
    let mut eof = false;
    loop {
        match demux.next_event() {
            Ok(Some(ev)) => {
                if probe.event(ev) {
                    break;
                }
            }
            Ok(None) => {
                eof = true;
                break;
            }
            Err(e) => {
                mist_core::error!("{path} is not a readable {} file: {e}", kind.name());
                return EXIT_FORMAT;
            }
        }
        if stop.load(Ordering::Relaxed) {
            return EXIT_OK;
        }
    }
    let shift = probe.shift();
    let Probe {
        mut tracks, held, ..
    } = probe;
    if tracks.is_empty() || !held.iter().any(|f| tracks.iter().any(|t| t.id == f.track)) {
        mist_core::error!(
            "{path}: no playable track found (not a {} file?)",
            kind.name()
        );
        return EXIT_FORMAT;
    }

    let (buf, mut w, mut il) = match create_vod(opts, &tracks, &path) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let mut loaded = Loaded::default();
    let result = (|| -> Result<(), Abort> {
        for mut f in held {
            f.dts += shift;
            if il.push(f) {
                flush(&mut w, &mut il, false, &mut loaded, opts, &stop)?;
            } else {
                loaded.skipped += 1;
            }
        }
        while !eof {
            match demux.next_event() {
                Ok(Some(Event::Frame(mut f))) => {
                    f.dts += shift;
                    if il.push(f) {
                        flush(&mut w, &mut il, false, &mut loaded, opts, &stop)?;
                    } else {
                        loaded.skipped += 1;
                    }
                }
                Ok(Some(Event::Track(t))) => {
                    let known = tracks.iter().position(|o| o.id == t.id);
                    if known.is_none_or(|i| tracks[i] != t) {
                        set_track(&mut w, &mut il, &t, &opts.stream);
                        match known {
                            Some(i) => tracks[i] = t,
                            None => tracks.push(t),
                        }
                    }
                }
                Ok(Some(Event::TracksComplete)) => {}
                Ok(None) => eof = true,
                Err(e) => {
                    // A damaged tail (a truncated file): serve what was read before it.
                    mist_core::warn!("{path}: read error, serving the frames before it: {e}");
                    eof = true;
                }
            }
        }
        flush(&mut w, &mut il, true, &mut loaded, opts, &stop)
    })();
    match result {
        Ok(()) => {}
        Err(Abort::Stopped) => {
            mist_core::info!("stopped while loading: ending stream {}", opts.stream);
            w.close();
            return end(buf, &opts.stream, EXIT_OK);
        }
        Err(Abort::Exit(code)) => {
            w.close();
            return end(buf, &opts.stream, code);
        }
    }
    let t = t0.elapsed();
    loaded_then_serve(opts, buf, w, &stop, t, &loaded, "bytes in shared memory")
}

/// Reads the moov of a progressive MP4 file (top-level box headers and the moov only, no sample
/// data). `None` for a fragmented file, a file without a readable moov or without tracks.
fn read_moov(file: &std::fs::File, len: u64) -> Option<Movie> {
    use std::os::unix::fs::FileExt;
    let mut r = Mp4Reader::new(len);
    while !r.has_moov() {
        match r.need().ok()? {
            Need::Done => return None,
            Need::Read { offset, len } => {
                let mut v = vec![0u8; usize::try_from(len).ok()?];
                file.read_exact_at(&mut v, offset).ok()?;
                r.feed(offset, &v).ok()?;
            }
        }
    }
    let m = r.movie()?;
    (!m.fragmented && !m.tracks.is_empty()).then(|| m.clone())
}

/// MP4 without copying payloads: every sample of the moov's tables becomes an *external* record
/// (file offset and size) in decode order across tracks, with the same times as the copying path
/// gives ([`Mp4Reader`] interleaves and times samples the same way). Readers read payloads from
/// the file when they need them, so shared memory holds about 40 bytes per frame.
fn run_external(
    opts: &Options,
    movie: &Movie,
    file_len: u64,
    t0: Instant,
    stop: Arc<AtomicBool>,
) -> i32 {
    let path = opts.source.display().to_string();
    // Readers open the file by this path from their own working directory.
    let abs = match std::fs::canonicalize(&opts.source) {
        Ok(p) => p,
        Err(e) => {
            mist_core::error!("cannot open {path}: {e}");
            return EXIT_SOURCE;
        }
    };
    let Some(first) = movie.samples().next() else {
        mist_core::error!("{path}: no playable track found (no samples)");
        return EXIT_FORMAT;
    };
    // The first sample has the lowest decode time (samples come in decode order).
    let shift = (-first.dts).max(0);
    let (buf, mut w, il) = match create_vod(opts, &movie.tracks(), &path) {
        Ok(v) => v,
        Err(code) => return code,
    };
    if let Err(e) = w.set_source_file(&abs) {
        mist_core::error!("stream {}: {e}", opts.stream);
        w.close();
        return end(buf, &opts.stream, EXIT_STREAM);
    }
    let mut loaded = Loaded::default();
    for s in movie.samples() {
        if loaded.frames.is_multiple_of(256) && stop.load(Ordering::Relaxed) {
            mist_core::info!("stopped while loading: ending stream {}", opts.stream);
            w.close();
            return end(buf, &opts.stream, EXIT_OK);
        }
        if !il.tracks().contains(&s.track) {
            loaded.skipped += 1;
            continue;
        }
        if s.offset
            .checked_add(s.size as u64)
            .is_none_or(|e| e > file_len)
        {
            // A truncated file: serve the samples before the first one past its end.
            mist_core::warn!(
                "{path}: sample of {} bytes at {} past the end of the file, serving the frames before it",
                s.size,
                s.offset
            );
            break;
        }
        let r = w.push_external(
            s.track,
            s.dts + shift,
            s.pts_offset,
            s.keyframe,
            s.offset,
            s.size,
        );
        let frame = (s.track, s.dts, s.size as u64);
        if let Err(code) = loaded.count(r, frame, &opts.stream, "write its index") {
            w.close();
            return end(buf, &opts.stream, code);
        }
    }
    let t = t0.elapsed();
    let place = format!("payload bytes left in {path}");
    loaded_then_serve(opts, buf, w, &stop, t, &loaded, &place)
}

/// Sets a track on the writer and the interleaver; a track shared memory cannot hold is skipped
/// (its frames are dropped) with a warning.
fn set_track(w: &mut StreamWriter, il: &mut Interleaver, t: &Track, stream: &str) {
    match w.set_track(t) {
        Ok(()) => il.add_track(t.id),
        Err(e) => mist_core::warn!(
            "stream {stream}: track {} ({}) skipped: {e}",
            t.id,
            t.codec.mist_name()
        ),
    }
}

/// Pushes the frames the interleaver releases.
fn flush(
    w: &mut StreamWriter,
    il: &mut Interleaver,
    drain: bool,
    loaded: &mut Loaded,
    opts: &Options,
    stop: &AtomicBool,
) -> Result<(), Abort> {
    while let Some(f) = il.pop(drain) {
        if loaded.frames.is_multiple_of(256) && stop.load(Ordering::Relaxed) {
            return Err(Abort::Stopped);
        }
        let frame = (f.track, f.dts, f.data.len() as u64);
        loaded
            .count(w.push(&f), frame, &opts.stream, "store the file")
            .map_err(Abort::Exit)?;
    }
    Ok(())
}

/// Keeps the loaded stream until no viewer has been connected for the timeout.
/// Marks the stream complete, logs what was loaded (`bytes_where`: what its byte count means),
/// and serves it until idle.
fn loaded_then_serve(
    opts: &Options,
    buf: StreamBuffer,
    mut w: StreamWriter,
    stop: &AtomicBool,
    took: std::time::Duration,
    loaded: &Loaded,
    bytes_where: &str,
) -> i32 {
    w.complete();
    let st = buf.status();
    mist_core::info!(
        "stream {} loaded in {} ms: {} tracks, {} frames, {} {bytes_where}, {}..{} ms{}",
        opts.stream,
        took.as_millis(),
        st.tracks.len(),
        loaded.frames,
        loaded.bytes,
        st.first_ms,
        st.last_ms,
        if loaded.skipped > 0 {
            format!(", {} frames skipped", loaded.skipped)
        } else {
            String::new()
        }
    );
    serve(opts, buf, w, stop)
}

fn serve(opts: &Options, buf: StreamBuffer, mut w: StreamWriter, stop: &AtomicBool) -> i32 {
    let mut idle_since = Some(Instant::now());
    let mut last_hb = Instant::now();
    let mut last_check: Option<Instant> = None;
    let mut viewers = 0usize;
    loop {
        if stop.load(Ordering::Relaxed) {
            mist_core::info!("stopping: ending stream {}", opts.stream);
            w.close();
            return end(buf, &opts.stream, EXIT_OK);
        }
        if buf.status().ended {
            mist_core::info!("stream {} was ended", opts.stream);
            w.close();
            return end(buf, &opts.stream, EXIT_OK);
        }
        if last_hb.elapsed() >= Duration::from_millis(500) {
            last_hb = Instant::now();
            w.heartbeat();
        }
        if last_check.is_none_or(|t| t.elapsed() >= Duration::from_millis(500)) {
            // Listing the users table also frees the slots of dead viewers.
            last_check = Some(Instant::now());
            let n = buf.viewers();
            if n != viewers {
                mist_core::debug!("stream {} has {n} viewer(s)", opts.stream);
                viewers = n;
            }
            if n > 0 {
                idle_since = None;
            } else {
                let since = *idle_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= opts.timeout {
                    mist_core::info!(
                        "no viewers of stream {} for {} s: ending it",
                        opts.stream,
                        opts.timeout.as_secs()
                    );
                    w.close();
                    return end(buf, &opts.stream, EXIT_OK);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Ends the stream (marks it ended, removes its files); returns `code`, or [`EXIT_STREAM`] if the
/// files could not be removed.
fn end(buf: StreamBuffer, stream: &str, code: i32) -> i32 {
    match buf.end() {
        Ok(()) | Err(ShmError::NoStream(_)) => {
            mist_core::info!("stream {stream} ended");
            code
        }
        Err(e) => {
            mist_core::error!("ending stream {stream}: {e}");
            if code == EXIT_OK {
                EXIT_STREAM
            } else {
                code
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps() {
        let c = capabilities(Kind::Ebml);
        assert_eq!(c["name"], "EBML");
        assert_eq!(c["source_match"][2], "/*.webm");
        assert_eq!(c["optional"]["inputtimeout"]["option"], "--inputtimeout");
    }
}
