//! Demux and mux throughput per container, in memory:
//! `cargo run --release -p mist-media --example media_bench FILE.ts [RUNS]` (scripts/bench-media runs it).
//!
//! Demuxes the TS file (held in memory), muxes its frames into every output container, then
//! demuxes each result again. Each step runs RUNS times (default 5); the best run counts. MB/s are of
//! container bytes (the bytes read for demux, the bytes written for mux); 1 MB = 10^6 bytes.

use std::cell::RefCell;
use std::io::{Cursor, Seek, SeekFrom, Write};
use std::rc::Rc;
use std::time::Instant;

use mist_media::remux::{Demux, Event, Input, Mux, Output};
use mist_media::{Frame, Track};

/// An in-memory output the muxer writes (and seeks, for Matroska's patches) while we keep a handle.
#[derive(Clone, Default)]
struct Shared(Rc<RefCell<Cursor<Vec<u8>>>>);

impl Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().write(b)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Seek for Shared {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        self.0.borrow_mut().seek(to)
    }
}

fn demux(data: &Rc<Vec<u8>>, i: Input) -> (Vec<Track>, Vec<Frame>) {
    struct RcBuf(Rc<Vec<u8>>);
    impl AsRef<[u8]> for RcBuf {
        fn as_ref(&self) -> &[u8] {
            &self.0
        }
    }
    let mut d = Demux::new(Cursor::new(RcBuf(data.clone())), data.len() as u64, i);
    let mut tracks: Vec<Track> = Vec::new();
    let mut frames = Vec::new();
    while let Some(ev) = d.next_event().expect("demux") {
        match ev {
            Event::Track(t) => match tracks.iter_mut().find(|o| o.id == t.id) {
                Some(o) => *o = t,
                None => tracks.push(t),
            },
            Event::Frame(f) => frames.push(f),
            Event::TracksComplete => {}
        }
    }
    (tracks, frames)
}

fn best<T>(runs: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::MAX;
    let mut out = None;
    for _ in 0..runs {
        let t = Instant::now();
        let r = f();
        best = best.min(t.elapsed().as_secs_f64());
        out = Some(r);
    }
    (best, out.unwrap())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args.first().expect("usage: media_bench FILE.ts [RUNS]");
    let runs: usize = args.get(1).and_then(|r| r.parse().ok()).unwrap_or(5);
    let ts = Rc::new(std::fs::read(path).expect("read input"));
    let (secs, (tracks, mut frames)) = best(runs, || demux(&ts, Input::Ts));
    let payload: usize = frames.iter().map(|f| f.data.len()).sum();
    println!(
        "input {path}: {:.1} MB TS, {} tracks, {} frames, {:.1} MB payload",
        ts.len() as f64 / 1e6,
        tracks.len(),
        frames.len(),
        payload as f64 / 1e6
    );
    let mut rows = vec![(
        "TS".to_string(),
        ts.len(),
        ts.len() as f64 / 1e6 / secs,
        f64::NAN,
    )];
    frames.sort_by_key(|f| f.dts); // decode order across tracks, as remux interleaves
    let outputs = [
        (Output::Ts, Input::Ts, "TS"),
        (Output::Flv, Input::Flv, "FLV"),
        (Output::Mp4, Input::Mp4, "MP4 (progressive)"),
        (Output::Fmp4, Input::Mp4, "fMP4"),
        (Output::Mkv, Input::Mkv, "MKV"),
    ];
    for (o, i, name) in outputs {
        let (msecs, bytes) = best(runs, || {
            let buf = Shared::default();
            let mut m = Mux::new(o, &tracks, buf.clone()).expect("mux");
            for f in &frames {
                m.frame(f.clone()).expect("frame");
            }
            m.finish().expect("finish");
            buf.0.take().into_inner()
        });
        let bytes = Rc::new(bytes);
        let (dsecs, (_, back)) = best(runs, || demux(&bytes, i));
        assert_eq!(back.len(), frames.len(), "{name}: frames back");
        let mb = bytes.len() as f64 / 1e6;
        match rows.iter_mut().find(|r| r.0 == name) {
            Some(r) => r.3 = mb / msecs,
            None => rows.push((name.to_string(), bytes.len(), mb / dsecs, mb / msecs)),
        }
    }
    println!(
        "{:<18} {:>10} {:>12} {:>12}",
        "container", "MB", "demux MB/s", "mux MB/s"
    );
    for (name, len, d, m) in rows {
        println!(
            "{:<18} {:>10.1} {:>12.0} {:>12.0}",
            name,
            len as f64 / 1e6,
            d,
            m
        );
    }
}
