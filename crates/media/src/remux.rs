//! Remuxing between containers: a driver over the sans-IO demuxers and muxers.
//!
//! [`remux`] reads the bytes of a reader the caller opened with the demuxer its [`Input`] names, and
//! writes the tracks and frames to a writer the caller opened with the muxer its [`Output`] names.
//! Opening files is the caller's part (a binary, an example, a test): this module touches no file.
//!
//! * Inputs: MPEG-TS, FLV, MP4 (progressive or fragmented), Matroska/WebM.
//! * Outputs: MPEG-TS, FLV, progressive MP4 (moov first), fragmented MP4 (a fragment at every
//!   keyframe of the first video track, or every second without video; empty moov, as ffmpeg's
//!   `-movflags frag_keyframe+empty_moov`), Matroska and WebM (finalised: Cues, Duration).
//!
//! Streaming: input is read in 1 MiB pieces (MP4: a few 2 MiB windows over the byte ranges the
//! reader asks for), output goes through a 1 MiB buffer, and memory stays bounded by the probe
//! window and the interleaving queue. Progressive MP4 output (moov first) needs the whole index
//! before the first payload byte: [`remux`] reads the input twice (index, then payloads) and holds
//! only the index; [`Mux`], which sees each frame once, holds the frames.
//!
//! Tracks: muxers need every track up front. Frames are held until the input has announced its
//! tracks (MP4, Matroska) and each has a frame, or until held frames span [`PROBE_MS`], then the muxer starts
//! with the tracks known then; frames of later tracks, and tracks the output cannot carry, are
//! dropped and counted in [`Stats`]. Frames are interleaved by decode time (a bounded queue per
//! track), and when the input starts at a negative time, every time is shifted up so that outputs
//! without negative times (TS, FLV, fragmented MP4, Matroska) start at 0.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::rc::Rc;

use bytes::Bytes;

use crate::{ebml, flv, mp4, mpegts, Codec, Frame, MediaError, Track, TrackKind};

/// Frames are held until they span this long (or the input names its tracks) before muxing starts.
pub const PROBE_MS: i64 = 1500;
/// The probe window also ends at this many held payload bytes (hostile timestamps must not make
/// it grow without bound).
pub const PROBE_MAX_BYTES: usize = 64 << 20;
/// A fragment is also cut (at any frame) when it holds this many payload bytes.
const FRAGMENT_MAX_BYTES: usize = 32 << 20;
/// At most this many frames wait in the interleaving queue.
pub const MAX_QUEUED: usize = 1024;
const READ_CHUNK: usize = 1 << 20;
const WRITE_BUF: usize = 1 << 20;

/// A container to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// MPEG-TS.
    Ts,
    /// FLV.
    Flv,
    /// MP4 (progressive or fragmented).
    Mp4,
    /// Matroska or WebM.
    Mkv,
}

impl Input {
    /// By file extension: `.ts`/`.m2ts`/`.mts`, `.flv`, `.mp4`/`.m4v`/`.m4a`/`.mov`/`.fmp4`/`.m4s`,
    /// `.mkv`/`.mka`/`.webm`.
    pub fn from_path(p: &Path) -> Option<Input> {
        Some(match ext(p).as_str() {
            "ts" | "m2ts" | "mts" => Input::Ts,
            "flv" => Input::Flv,
            "mp4" | "m4v" | "m4a" | "mov" | "fmp4" | "m4s" | "cmfv" => Input::Mp4,
            "mkv" | "mka" | "webm" => Input::Mkv,
            _ => return None,
        })
    }
}

/// A container to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// MPEG-TS.
    Ts,
    /// FLV.
    Flv,
    /// Progressive MP4, moov first.
    Mp4,
    /// Fragmented MP4: empty moov, a fragment per keyframe.
    Fmp4,
    /// Matroska, finalised (Cues, Duration).
    Mkv,
    /// WebM (VP8/VP9/AV1 and Opus only), finalised.
    Webm,
}

impl Output {
    /// By file extension: `.ts`, `.flv`, `.mp4`/`.m4v`/`.mov` (progressive, or fragmented when
    /// `frag`), `.fmp4`/`.m4s`/`.cmfv` (fragmented), `.mkv`/`.mka`, `.webm`.
    pub fn from_path(p: &Path, frag: bool) -> Option<Output> {
        Some(match ext(p).as_str() {
            "ts" | "m2ts" | "mts" => Output::Ts,
            "flv" => Output::Flv,
            "mp4" | "m4v" | "m4a" | "mov" if frag => Output::Fmp4,
            "mp4" | "m4v" | "m4a" | "mov" => Output::Mp4,
            "fmp4" | "m4s" | "cmfv" => Output::Fmp4,
            "mkv" | "mka" => Output::Mkv,
            "webm" => Output::Webm,
            _ => return None,
        })
    }

    fn carries(self, c: Codec) -> bool {
        match self {
            Output::Ts => matches!(
                c,
                Codec::H264 | Codec::Hevc | Codec::Aac | Codec::Mp3 | Codec::Opus | Codec::Ac3
            ),
            Output::Flv => matches!(
                c,
                Codec::H264 | Codec::Hevc | Codec::Av1 | Codec::Vp9 | Codec::Aac | Codec::Mp3
            ),
            Output::Mp4 | Output::Fmp4 => {
                matches!(
                    c,
                    Codec::H264 | Codec::Hevc | Codec::Av1 | Codec::Aac | Codec::Opus
                )
            }
            Output::Mkv => c != Codec::Meta,
            Output::Webm => matches!(c, Codec::Vp8 | Codec::Vp9 | Codec::Av1 | Codec::Opus),
        }
    }
}

fn ext(p: &Path) -> String {
    p.extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// What a remux did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// The tracks written.
    pub tracks: Vec<Track>,
    /// Frames written.
    pub frames: u64,
    /// Bytes read from the input.
    pub bytes_in: u64,
    /// Bytes written to the output.
    pub bytes_out: u64,
    /// Frames of tracks that were unknown when muxing started, or that the output cannot carry.
    pub frames_dropped: u64,
    /// Tracks the output cannot carry.
    pub tracks_dropped: Vec<Track>,
    /// Milliseconds added to every time (0 unless the input starts below 0).
    pub shift_ms: i64,
}

fn media(e: MediaError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// Remuxes `len` bytes of `input` (format `i`) into `out` (format `o`). `out` gets large writes;
/// wrap it in a `BufWriter` if it is a file. An error about the media (damaged or truncated
/// input, nothing the output can carry) holds a [`MediaError`] (`io::Error::get_ref`); the others
/// are the reader's and the writer's own.
pub fn remux<R: Read + Seek + 'static, W: Write + Seek + 'static>(
    input: R,
    len: u64,
    i: Input,
    out: W,
    o: Output,
) -> io::Result<Stats> {
    let mut src = Demux::new(input, len, i);
    if o == Output::Mp4 {
        return remux_progressive(src, len, i, out);
    }
    let mut out = Some(out);
    let mut stats = run(src.0.as_mut(), o, &mut |tracks| {
        make_sink(o, tracks, out.take().expect("one sink"))
    })?;
    stats.bytes_in = src.0.bytes_read();
    Ok(stats)
}

/// Progressive MP4 (moov first) in two passes over the input, so that only the sample index is
/// held: the first pass builds the moov from frame sizes and times, the second (the same demuxing
/// and interleaving from the start of the input again) writes the payloads after it.
fn remux_progressive<W: Write + Seek + 'static>(
    mut src: Demux,
    len: u64,
    i: Input,
    out: W,
) -> io::Result<Stats> {
    let index: SharedIndex = Rc::default();
    let mut first_tracks = Vec::new();
    let stats1 = run(src.0.as_mut(), Output::Mp4, &mut |tracks| {
        first_tracks = tracks.to_vec();
        *index.borrow_mut() = Some((
            mp4::Mp4Writer::new(tracks.to_vec()).map_err(media)?,
            Vec::new(),
        ));
        Ok(Box::new(Mp4IndexSink {
            index: index.clone(),
        }) as Box<dyn Sink>)
    })?;
    let read1 = src.0.bytes_read();
    let mut reader = src.0.into_reader();
    reader.seek(SeekFrom::Start(0))?;
    let (w, sizes) = index.borrow_mut().take().expect("index built");
    let mut out = Counting { w: out, n: 0 };
    out.put(&w.header_moov_first().map_err(media)?)?;
    drop(w);
    let mut src = Demux::from_reader(reader, len, i);
    let mut parts = Some((out, sizes));
    let mut stats = run(src.0.as_mut(), Output::Mp4, &mut |tracks| {
        if tracks != first_tracks.as_slice() {
            return Err(changed());
        }
        let (out, sizes) = parts.take().expect("one sink");
        Ok(Box::new(Mp4PayloadSink {
            out,
            sizes,
            next: 0,
        }) as Box<dyn Sink>)
    })?;
    if stats.frames != stats1.frames {
        return Err(changed());
    }
    stats.bytes_in += read1;
    stats.bytes_in += src.0.bytes_read();
    Ok(stats)
}

fn changed() -> io::Error {
    media(MediaError::malformed(
        "input",
        "it read differently the second time (progressive MP4 output)",
    ))
}

/// The MP4 index and the payload sizes of the first pass, shared with its sink.
type SharedIndex = Rc<RefCell<Option<(mp4::Mp4Writer, Vec<u32>)>>>;

/// First pass of progressive MP4 output: the index only.
struct Mp4IndexSink {
    index: SharedIndex,
}

impl Sink for Mp4IndexSink {
    fn frame(&mut self, f: Frame) -> io::Result<()> {
        let mut ix = self.index.borrow_mut();
        let (w, sizes) = ix.as_mut().expect("index");
        w.add(&f).map_err(media)?;
        sizes.push(f.data.len() as u32);
        Ok(())
    }
    fn finish(self: Box<Self>) -> io::Result<u64> {
        Ok(0)
    }
}

/// Second pass: payloads, checked against the first pass's sizes.
struct Mp4PayloadSink<W: Write> {
    out: Counting<W>,
    sizes: Vec<u32>,
    next: usize,
}

impl<W: Write> Sink for Mp4PayloadSink<W> {
    fn frame(&mut self, f: Frame) -> io::Result<()> {
        if self.sizes.get(self.next) != Some(&(f.data.len() as u32)) {
            return Err(changed());
        }
        self.next += 1;
        self.out.put(&f.data)
    }
    fn finish(mut self: Box<Self>) -> io::Result<u64> {
        if self.next != self.sizes.len() {
            return Err(changed());
        }
        self.out.w.flush()?;
        Ok(self.out.n)
    }
}

/// A demuxer over a reader: tracks and frames as the container gives them.
pub struct Demux(Box<dyn Source>);

impl Demux {
    /// A demuxer of `len` bytes of `input`, in the container `i`.
    pub fn new<R: Read + Seek + 'static>(input: R, len: u64, i: Input) -> Demux {
        Demux::from_reader(Box::new(input), len, i)
    }

    fn from_reader(file: Reader, len: u64, i: Input) -> Demux {
        Demux(match i {
            Input::Ts => Box::new(Fed::new(mpegts::Demuxer::new(), file)),
            Input::Flv => Box::new(Fed::new(flv::Demuxer::new(), file)),
            Input::Mp4 => Box::new(Mp4Source::new(file, len)),
            Input::Mkv => Box::new(Fed::new(ebml::Demuxer::new(), file)),
        })
    }

    /// The next event, `None` at the end of the input.
    pub fn next_event(&mut self) -> io::Result<Option<Event>> {
        self.0.next()
    }
}

/// A muxer over a writer; it takes every track up front.
pub struct Mux(Box<dyn Sink>);

impl Mux {
    /// A muxer writing `o` to `out`, with every track up front (the header is written now).
    pub fn new<W: Write + Seek + 'static>(o: Output, tracks: &[Track], out: W) -> io::Result<Mux> {
        make_sink(o, tracks, out).map(Mux)
    }
    /// Frames in decode order across tracks (as [`remux`] interleaves them).
    pub fn frame(&mut self, f: Frame) -> io::Result<()> {
        self.0.frame(f)
    }
    /// Ends the output (progressive MP4: writes everything); returns the bytes written.
    pub fn finish(self) -> io::Result<u64> {
        self.0.finish()
    }
}

/// What a demuxer yields.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A track was announced (again: its init data changed).
    Track(Track),
    /// Every track has been announced.
    TracksComplete,
    /// A frame, in the order the container holds them.
    Frame(Frame),
}

trait Source {
    fn next(&mut self) -> io::Result<Option<Event>>;
    fn bytes_read(&self) -> u64;
    fn into_reader(self: Box<Self>) -> Reader;
}

/// Any seekable byte source (a file, a `Cursor` over memory).
pub trait ReadSeek: Read + Seek {}
impl<T: Read + Seek> ReadSeek for T {}

type Reader = Box<dyn ReadSeek>;

fn read_full(file: &mut Reader, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The reading side of a demuxer fed in chunks: the file, read [`READ_CHUNK`] bytes at a time.
struct Chunks {
    file: Reader,
    buf: Vec<u8>,
    /// The end of the file was read.
    eof: bool,
    /// Bytes read so far.
    read: u64,
}

impl Chunks {
    fn new(file: Reader) -> Chunks {
        Chunks {
            file,
            buf: vec![0; READ_CHUNK],
            eof: false,
            read: 0,
        }
    }

    /// The next chunk of the file; `None` at its end (and `eof` from then on).
    fn next_chunk(&mut self) -> io::Result<Option<&[u8]>> {
        let n = read_full(&mut self.file, &mut self.buf)?;
        self.read += n as u64;
        if n == 0 {
            self.eof = true;
            return Ok(None);
        }
        Ok(Some(&self.buf[..n]))
    }
}

/// What a demuxer fed in chunks ([`Fed`]) has after one step.
enum Pulled {
    /// An event (queued, or passed over): ask again.
    Event,
    /// It needs more of the file.
    Hungry,
    /// The input ends here, whatever follows (a damaged tail).
    End,
}

/// A demuxer fed the file in chunks: TS, FLV and MKV.
trait ChunkDemux {
    /// Takes one step: queues what it yields in `out`. `eof`: the whole file was fed.
    fn pull(&mut self, out: &mut VecDeque<Event>, eof: bool) -> io::Result<Pulled>;
    /// The next chunk of the file.
    fn feed(&mut self, chunk: &[u8]);
    /// The file ended: give up what is held back.
    fn finish(&mut self);
}

impl ChunkDemux for mpegts::Demuxer {
    fn pull(&mut self, out: &mut VecDeque<Event>, _eof: bool) -> io::Result<Pulled> {
        Ok(match self.poll() {
            Some(mpegts::DemuxEvent::Track(t)) => {
                out.push_back(Event::Track(t));
                Pulled::Event
            }
            Some(mpegts::DemuxEvent::Frame(f)) => {
                out.push_back(Event::Frame(f));
                Pulled::Event
            }
            None => Pulled::Hungry,
        })
    }
    fn feed(&mut self, chunk: &[u8]) {
        self.push(chunk);
    }
    fn finish(&mut self) {
        self.flush();
    }
}

impl ChunkDemux for flv::Demuxer {
    fn pull(&mut self, out: &mut VecDeque<Event>, eof: bool) -> io::Result<Pulled> {
        match self.next_tag() {
            Ok(Some(tag)) => {
                out.extend(tag.converted.track.map(Event::Track));
                out.extend(tag.converted.frame.map(Event::Frame));
                Ok(Pulled::Event)
            }
            Ok(None) => Ok(Pulled::Hungry),
            // A damaged tail (a truncated recording) ends the input; damage before is an error.
            Err(_) if eof => Ok(Pulled::End),
            Err(e) => Err(media(e)),
        }
    }
    fn feed(&mut self, chunk: &[u8]) {
        flv::Demuxer::feed(self, chunk);
    }
    fn finish(&mut self) {}
}

impl ChunkDemux for ebml::Demuxer {
    fn pull(&mut self, out: &mut VecDeque<Event>, _eof: bool) -> io::Result<Pulled> {
        Ok(match self.poll().map_err(media)? {
            Some(ebml::MkvEvent::Tracks(ts)) => {
                out.extend(ts.into_iter().map(Event::Track));
                out.push_back(Event::TracksComplete);
                Pulled::Event
            }
            Some(ebml::MkvEvent::Frame(f)) => {
                out.push_back(Event::Frame(f));
                Pulled::Event
            }
            Some(_) => Pulled::Event,
            None => Pulled::Hungry,
        })
    }
    fn feed(&mut self, chunk: &[u8]) {
        self.push(chunk);
    }
    fn finish(&mut self) {
        ebml::Demuxer::finish(self);
    }
}

/// A [`Source`] that reads the file in chunks into a [`ChunkDemux`].
struct Fed<D> {
    d: D,
    src: Chunks,
    pending: VecDeque<Event>,
    /// `finish` was called (after the end of the file).
    finished: bool,
}

impl<D: ChunkDemux> Fed<D> {
    fn new(d: D, file: Reader) -> Fed<D> {
        Fed {
            d,
            src: Chunks::new(file),
            pending: VecDeque::new(),
            finished: false,
        }
    }
}

impl<D: ChunkDemux> Source for Fed<D> {
    fn next(&mut self) -> io::Result<Option<Event>> {
        loop {
            if let Some(ev) = self.pending.pop_front() {
                return Ok(Some(ev));
            }
            match self.d.pull(&mut self.pending, self.src.eof)? {
                Pulled::Event => continue,
                Pulled::End => return Ok(None),
                Pulled::Hungry => {}
            }
            if self.src.eof {
                if self.finished {
                    return Ok(None);
                }
                self.d.finish();
                self.finished = true;
                continue;
            }
            if let Some(chunk) = self.src.next_chunk()? {
                self.d.feed(chunk);
            }
        }
    }
    fn bytes_read(&self) -> u64 {
        self.src.read
    }
    fn into_reader(self: Box<Self>) -> Reader {
        self.src.file
    }
}

/// Reads the byte ranges an [`mp4::Mp4Reader`] asks for through a few cached windows, so that
/// interleaved and non-interleaved progressive files alike are read in large sequential pieces.
struct Mp4Source {
    r: mp4::Mp4Reader,
    file: Reader,
    len: u64,
    windows: Vec<(u64, Bytes, u64)>,
    tick: u64,
    announced: bool,
    pending: VecDeque<Event>,
    read: u64,
}

const MP4_WINDOW: u64 = 2 << 20;
const MP4_WINDOWS: usize = 4;

impl Mp4Source {
    fn new(file: Reader, len: u64) -> Mp4Source {
        Mp4Source {
            r: mp4::Mp4Reader::new(len),
            file,
            len,
            windows: Vec::new(),
            tick: 0,
            announced: false,
            pending: VecDeque::new(),
            read: 0,
        }
    }

    fn range(&mut self, offset: u64, len: u64) -> io::Result<Bytes> {
        self.tick += 1;
        let end = offset
            .checked_add(len)
            .filter(|&e| e <= self.len)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    MediaError::malformed("mp4", format!("{len} bytes at {offset} past the end")),
                )
            })?;
        for w in &mut self.windows {
            if w.0 <= offset && end <= w.0 + w.1.len() as u64 {
                w.2 = self.tick;
                return Ok(w.1.slice((offset - w.0) as usize..(end - w.0) as usize));
            }
        }
        let want = len.max(MP4_WINDOW.min(self.len - offset));
        let mut v = vec![0u8; want as usize];
        self.file.seek(SeekFrom::Start(offset))?;
        let n = read_full(&mut self.file, &mut v)?;
        self.read += n as u64;
        if (n as u64) < len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                MediaError::malformed("mp4", "the file shrank"),
            ));
        }
        v.truncate(n);
        let b = Bytes::from(v);
        let out = b.slice(0..len as usize);
        if len < MP4_WINDOW {
            if self.windows.len() >= MP4_WINDOWS {
                let old = (0..self.windows.len())
                    .min_by_key(|&i| self.windows[i].2)
                    .unwrap_or(0);
                self.windows.swap_remove(old);
            }
            self.windows.push((offset, b, self.tick));
        }
        Ok(out)
    }
}

impl Source for Mp4Source {
    fn next(&mut self) -> io::Result<Option<Event>> {
        loop {
            if let Some(ev) = self.pending.pop_front() {
                return Ok(Some(ev));
            }
            if !self.announced && self.r.has_moov() {
                self.announced = true;
                for t in self.r.tracks() {
                    self.pending.push_back(Event::Track(t));
                }
                self.pending.push_back(Event::TracksComplete);
                continue;
            }
            match self.r.need().map_err(media)? {
                mp4::Need::Done => return Ok(None),
                mp4::Need::Read { offset, len } => {
                    let b = self.range(offset, len)?;
                    if let Some(f) = self.r.feed_bytes(offset, b).map_err(media)? {
                        self.pending.push_back(Event::Frame(f));
                    }
                }
            }
        }
    }
    fn bytes_read(&self) -> u64 {
        self.read
    }
    fn into_reader(self: Box<Self>) -> Reader {
        self.file
    }
}

/// A muxer writing to `W`.
trait Sink {
    fn frame(&mut self, f: Frame) -> io::Result<()>;
    fn update_track(&mut self, _t: &Track) -> io::Result<()> {
        Ok(())
    }
    fn finish(self: Box<Self>) -> io::Result<u64>;
}

struct Counting<W> {
    w: W,
    n: u64,
}

impl<W: Write> Counting<W> {
    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        self.n += b.len() as u64;
        self.w.write_all(b)
    }
}

struct TsSink<W: Write> {
    mux: mpegts::Muxer,
    buf: Vec<u8>,
    out: Counting<W>,
}

impl<W: Write> Sink for TsSink<W> {
    fn frame(&mut self, f: Frame) -> io::Result<()> {
        self.mux.write_frame(&f, &mut self.buf).map_err(media)?;
        if self.buf.len() >= WRITE_BUF {
            self.out.put(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }
    fn update_track(&mut self, t: &Track) -> io::Result<()> {
        self.mux.update_track(t).map_err(media)
    }
    fn finish(mut self: Box<Self>) -> io::Result<u64> {
        self.mux.flush(&mut self.buf);
        let buf = std::mem::take(&mut self.buf);
        self.out.put(&buf)?;
        self.out.w.flush()?;
        Ok(self.out.n)
    }
}

struct FlvSink<W: Write> {
    tracks: Vec<Track>,
    out: Counting<W>,
}

impl<W: Write> FlvSink<W> {
    fn sequence_header(&mut self, t: &Track, time: u32) -> io::Result<()> {
        if let Some(body) = flv::sequence_header_body(t).map_err(media)? {
            let tag =
                flv::tag_bytes(flv::tag_type(t).map_err(media)?, time, &body).map_err(media)?;
            self.out.put(&tag)?;
        }
        Ok(())
    }
}

impl<W: Write> Sink for FlvSink<W> {
    fn frame(&mut self, f: Frame) -> io::Result<()> {
        let Some(t) = self.tracks.iter().find(|t| t.id == f.track) else {
            return Ok(());
        };
        let (head, body_len) = flv::frame_tag_head(t, &f).map_err(media)?;
        self.out.put(&head)?;
        self.out.put(&f.data)?;
        self.out.put(&flv::prev_tag_size(body_len))
    }
    fn update_track(&mut self, t: &Track) -> io::Result<()> {
        if let Some(old) = self.tracks.iter_mut().find(|o| o.id == t.id) {
            if old.init != t.init {
                *old = t.clone();
                let t = t.clone();
                self.sequence_header(&t, 0)?;
            }
        }
        Ok(())
    }
    fn finish(mut self: Box<Self>) -> io::Result<u64> {
        self.out.w.flush()?;
        Ok(self.out.n)
    }
}

/// Progressive MP4 for [`Mux`], which sees the frames only once: they are held until `finish`.
struct Mp4BufferSink<W: Write> {
    tracks: Vec<Track>,
    frames: Vec<Frame>,
    out: Counting<W>,
}

impl<W: Write> Sink for Mp4BufferSink<W> {
    fn frame(&mut self, f: Frame) -> io::Result<()> {
        self.frames.push(f);
        Ok(())
    }
    fn finish(mut self: Box<Self>) -> io::Result<u64> {
        let mut w = mp4::Mp4Writer::new(self.tracks.clone()).map_err(media)?;
        for f in &self.frames {
            w.add(f).map_err(media)?;
        }
        self.out.put(&w.header_moov_first().map_err(media)?)?;
        for f in std::mem::take(&mut self.frames) {
            self.out.put(&f.data)?;
        }
        self.out.w.flush()?;
        Ok(self.out.n)
    }
}

struct Fmp4Sink<W: Write> {
    fw: mp4::FragmentWriter,
    /// The track whose keyframes start fragments (the first video track).
    cut_track: Option<u32>,
    pending: Vec<Frame>,
    pending_bytes: usize,
    out: Counting<W>,
}

impl<W: Write> Fmp4Sink<W> {
    fn write_fragment(&mut self, end: Option<i64>) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let (head, payloads) = self
            .fw
            .media_segment_vectored(&self.pending, end)
            .map_err(media)?;
        self.out.put(&head)?;
        for p in payloads {
            self.out.put(&p)?;
        }
        self.pending.clear();
        self.pending_bytes = 0;
        Ok(())
    }
}

impl<W: Write> Sink for Fmp4Sink<W> {
    fn frame(&mut self, f: Frame) -> io::Result<()> {
        let cut = match self.cut_track {
            Some(v) => f.track == v && f.keyframe,
            None => self.pending.first().is_some_and(|p| f.dts - p.dts >= 1000),
        };
        if (cut || self.pending_bytes >= FRAGMENT_MAX_BYTES) && !self.pending.is_empty() {
            self.write_fragment(Some(f.dts))?;
        }
        self.pending_bytes += f.data.len();
        self.pending.push(f);
        Ok(())
    }
    fn finish(mut self: Box<Self>) -> io::Result<u64> {
        self.write_fragment(None)?;
        self.out.w.flush()?;
        Ok(self.out.n)
    }
}

struct MkvSink<W: Write + Seek> {
    w: ebml::Writer,
    buf: Vec<u8>,
    out: Counting<W>,
}

impl<W: Write + Seek> Sink for MkvSink<W> {
    fn frame(&mut self, f: Frame) -> io::Result<()> {
        self.w.write_frame(&f, &mut self.buf).map_err(media)?;
        if self.buf.len() >= WRITE_BUF {
            self.out.put(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }
    fn finish(mut self: Box<Self>) -> io::Result<u64> {
        let fin = self.w.finish();
        let buf = std::mem::take(&mut self.buf);
        self.out.put(&buf)?;
        self.out.put(&fin.tail)?;
        let end = self.out.n;
        for p in fin.patches {
            self.out.w.seek(SeekFrom::Start(p.offset))?;
            self.out.w.write_all(&p.bytes)?;
        }
        self.out.w.seek(SeekFrom::Start(end))?;
        self.out.w.flush()?;
        Ok(end)
    }
}

fn make_sink<W: Write + Seek + 'static>(
    o: Output,
    tracks: &[Track],
    w: W,
) -> io::Result<Box<dyn Sink>> {
    let mut out = Counting { w, n: 0 };
    Ok(match o {
        Output::Ts => {
            let mut mux =
                mpegts::Muxer::new(tracks, mpegts::MuxerOptions::default()).map_err(media)?;
            let mut buf = Vec::with_capacity(WRITE_BUF + 65536);
            mux.write_tables(&mut buf);
            Box::new(TsSink { mux, buf, out })
        }
        Output::Flv => {
            let has_audio = tracks.iter().any(|t| t.kind() == TrackKind::Audio);
            let has_video = tracks.iter().any(|t| t.kind() == TrackKind::Video);
            out.put(&flv::file_header(has_audio, has_video))?;
            let meta = flv::metadata_body(tracks);
            out.put(&flv::tag_bytes(flv::TAG_SCRIPT, 0, &meta).map_err(media)?)?;
            let mut s = FlvSink {
                tracks: tracks.to_vec(),
                out,
            };
            for t in tracks {
                s.sequence_header(t, 0)?;
            }
            Box::new(s)
        }
        Output::Mp4 => {
            // needs all frames before the first payload byte: buffered here ([`remux`] makes
            // two passes over the input instead)
            mp4::Mp4Writer::new(tracks.to_vec()).map_err(media)?;
            Box::new(Mp4BufferSink {
                tracks: tracks.to_vec(),
                frames: Vec::new(),
                out,
            })
        }
        Output::Fmp4 => {
            let fw = mp4::FragmentWriter::new(tracks.to_vec(), mp4::FragmentOptions::default())
                .map_err(media)?;
            out.put(&fw.init_segment().map_err(media)?)?;
            let cut_track = tracks
                .iter()
                .find(|t| t.kind() == TrackKind::Video)
                .map(|t| t.id);
            Box::new(Fmp4Sink {
                fw,
                cut_track,
                pending: Vec::new(),
                pending_bytes: 0,
                out,
            })
        }
        Output::Mkv | Output::Webm => {
            let doc_type = if o == Output::Webm {
                ebml::DocType::Webm
            } else {
                ebml::DocType::Matroska
            };
            let opts = ebml::WriterOptions {
                doc_type,
                mode: ebml::WriteMode::Finalised,
                ..Default::default()
            };
            let mut w = ebml::Writer::new(tracks, opts).map_err(media)?;
            let mut buf = Vec::with_capacity(WRITE_BUF + 65536);
            w.write_header(&mut buf);
            Box::new(MkvSink { w, buf, out })
        }
    })
}

/// The start of an input: every event is held until the tracks are known. Over when every track
/// the input announced has a frame (after it said its track list is complete: MP4, Matroska), or
/// the held frames span [`PROBE_MS`] or hold [`PROBE_MAX_BYTES`] of payload.
#[derive(Debug, Default)]
pub struct Probe {
    /// The tracks announced so far (announced again: the later one).
    pub tracks: Vec<Track>,
    /// The frames read so far, as the demuxer gave them.
    pub held: Vec<Frame>,
    first_dts: Option<i64>,
    last_dts: Option<i64>,
    complete: bool,
    held_bytes: usize,
}

impl Probe {
    /// Takes one event of the demuxer; true once the probe is over.
    pub fn event(&mut self, ev: Event) -> bool {
        match ev {
            Event::Track(t) => match self.tracks.iter_mut().find(|o| o.id == t.id) {
                Some(o) => *o = t,
                None => self.tracks.push(t),
            },
            Event::TracksComplete => self.complete = true,
            Event::Frame(f) => {
                self.first_dts = Some(self.first_dts.map_or(f.dts, |d| d.min(f.dts)));
                self.last_dts = Some(self.last_dts.map_or(f.dts, |d| d.max(f.dts)));
                self.held_bytes += f.data.len();
                self.held.push(f);
            }
        }
        let span = self.last_dts.zip(self.first_dts).map_or(0, |(l, f)| l - f);
        // every announced track has a frame (the first decode times are known: Matroska's rebuilt
        // H.264 times come after the audio's and may be lower), or the window is full
        let all_seen = self.complete
            && self
                .tracks
                .iter()
                .all(|t| self.held.iter().any(|f| f.track == t.id));
        all_seen || span >= PROBE_MS || self.held_bytes >= PROBE_MAX_BYTES
    }

    /// What to add to every time so that the earliest held decode time is not below 0.
    pub fn shift(&self) -> i64 {
        self.first_dts.map_or(0, |d| (-d).max(0))
    }
}

/// Per-track queues merged by decode time: a frame comes out once every track has one queued (or
/// [`MAX_QUEUED`] frames wait in all, or the caller drains), the lowest decode time first.
#[derive(Debug, Default)]
pub struct Interleaver {
    ids: Vec<u32>,
    queues: Vec<VecDeque<Frame>>,
    queued: usize,
}

impl Interleaver {
    /// An interleaver of the tracks `ids`.
    pub fn new(ids: impl IntoIterator<Item = u32>) -> Interleaver {
        let mut il = Interleaver::default();
        for id in ids {
            il.add_track(id);
        }
        il
    }

    /// Adds a track (nothing if it is there already).
    pub fn add_track(&mut self, id: u32) {
        if !self.ids.contains(&id) {
            self.ids.push(id);
            self.queues.push(VecDeque::new());
        }
    }

    /// Queues a frame; false (and the frame is dropped) if its track is not one of the interleaver's.
    pub fn push(&mut self, f: Frame) -> bool {
        match self.ids.iter().position(|&id| id == f.track) {
            Some(i) => {
                self.queues[i].push_back(f);
                self.queued += 1;
                true
            }
            None => false,
        }
    }

    /// The frame with the lowest decode time, once every track has one queued (or the queue is
    /// full, or `drain`).
    pub fn pop(&mut self, drain: bool) -> Option<Frame> {
        let all = self.queues.iter().all(|q| !q.is_empty());
        if !(all || drain || self.queued > MAX_QUEUED) {
            return None;
        }
        let i = (0..self.queues.len())
            .filter(|&i| !self.queues[i].is_empty())
            .min_by_key(|&i| self.queues[i].front().map(|f| f.dts))?;
        self.queued -= 1;
        self.queues[i].pop_front()
    }

    /// The tracks, in the order they were added.
    pub fn tracks(&self) -> &[u32] {
        &self.ids
    }

    /// How many frames wait.
    pub fn queued(&self) -> usize {
        self.queued
    }
}

type MakeSink<'a> = dyn FnMut(&[Track]) -> io::Result<Box<dyn Sink>> + 'a;

fn run(src: &mut dyn Source, o: Output, make: &mut MakeSink<'_>) -> io::Result<Stats> {
    let mut stats = Stats::default();
    let mut probe = Probe::default();
    let mut eof = true;
    while let Some(ev) = src.next()? {
        if probe.event(ev) {
            eof = false;
            break;
        }
    }
    let shift = if o == Output::Mp4 { 0 } else { probe.shift() };
    let Probe { tracks, held, .. } = probe;
    let (carried, dropped): (Vec<Track>, Vec<Track>) =
        tracks.into_iter().partition(|t| o.carries(t.codec));
    let mut tracks = carried;
    if o == Output::Flv {
        // FLV carries one video and one audio track
        let mut seen = Vec::new();
        let mut extra = Vec::new();
        tracks.retain(|t| {
            if seen.contains(&t.kind()) {
                extra.push(t.clone());
                false
            } else {
                seen.push(t.kind());
                true
            }
        });
        stats.tracks_dropped.extend(extra);
    }
    stats.tracks_dropped.extend(dropped);
    if tracks.is_empty() {
        return Err(media(MediaError::unsupported(
            "tracks",
            "none the output can carry",
        )));
    }
    stats.shift_ms = shift;
    let mut sink = make(&tracks)?;
    let mut il = Interleaver::new(tracks.iter().map(|t| t.id));
    let feed = |mut f: Frame,
                il: &mut Interleaver,
                stats: &mut Stats,
                sink: &mut Box<dyn Sink>|
     -> io::Result<()> {
        f.dts += shift;
        if !il.push(f) {
            stats.frames_dropped += 1;
            return Ok(());
        }
        while let Some(f) = il.pop(false) {
            stats.frames += 1;
            sink.frame(f)?;
        }
        Ok(())
    };
    for f in held {
        feed(f, &mut il, &mut stats, &mut sink)?;
    }
    if !eof {
        while let Some(ev) = src.next()? {
            match ev {
                Event::Frame(f) => feed(f, &mut il, &mut stats, &mut sink)?,
                Event::Track(t) => {
                    if let Some(o) = tracks.iter_mut().find(|o| o.id == t.id) {
                        if o.init != t.init {
                            sink.update_track(&t)?;
                        }
                        *o = t;
                    }
                }
                Event::TracksComplete => {}
            }
        }
    }
    while let Some(f) = il.pop(true) {
        stats.frames += 1;
        sink.frame(f)?;
    }
    stats.bytes_out = sink.finish()?;
    stats.tracks = tracks;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(track: u32, dts: i64) -> Frame {
        Frame {
            track,
            dts,
            pts_offset: 0,
            keyframe: true,
            data: Bytes::new(),
        }
    }

    #[test]
    fn interleaves_by_decode_time() {
        let mut il = Interleaver::new([1, 2]);
        let mut out = Vec::new();
        for f in [
            frame(1, 0),
            frame(1, 40),
            frame(1, 80),
            frame(2, 0),
            frame(2, 23),
        ] {
            il.push(f);
            while let Some(f) = il.pop(false) {
                out.push((f.track, f.dts));
            }
        }
        while let Some(f) = il.pop(true) {
            out.push((f.track, f.dts));
        }
        assert_eq!(out, vec![(1, 0), (2, 0), (2, 23), (1, 40), (1, 80)]);
        assert!(!il.push(frame(3, 0)));
        il.add_track(3);
        assert!(il.push(frame(3, 0)));
    }

    #[test]
    fn bounded_queue() {
        let mut il = Interleaver::new([1, 2]);
        let mut popped = 0;
        for i in 0..(MAX_QUEUED as i64 + 10) {
            il.push(frame(1, i));
            while il.pop(false).is_some() {
                popped += 1;
            }
        }
        assert!(il.queued() <= MAX_QUEUED + 1);
        assert!(popped >= 9);
    }

    #[test]
    fn probe_ends_when_every_announced_track_has_a_frame() {
        let mut p = Probe::default();
        let t = |id| Track::new(id, Codec::Aac);
        assert!(!p.event(Event::Track(t(1))));
        assert!(!p.event(Event::Track(t(2))));
        assert!(!p.event(Event::TracksComplete));
        assert!(!p.event(Event::Frame(frame(1, -40))));
        assert!(p.event(Event::Frame(frame(2, 0))));
        assert_eq!(p.shift(), 40);
    }

    #[test]
    fn probe_ends_at_its_window() {
        let mut p = Probe::default();
        assert!(!p.event(Event::Frame(frame(1, 0))));
        assert!(p.event(Event::Frame(frame(1, PROBE_MS))));
        assert_eq!(p.shift(), 0);
    }
}
