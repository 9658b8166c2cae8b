//! The standalone front end of the segmented formats: `MistOutHLS -s STREAM /var/www/live/index.m3u8`
//! writes the playlists and segments that MistOutHTTP serves under `/hls/STREAM/` into a directory
//! (and `MistOutCMAF` those of `/cmaf/STREAM/`, with the MPD), so any static web server can serve
//! them. The files are the answers of the same [`SegmentedStream`] MistOutHTTP uses, with the same
//! relative URLs, so the directory layout is the URL layout.
//!
//! * Every file is written whole under a temporary name and renamed into place, playlists after
//!   the segments they list, so a web server never serves a half-written file.
//! * Live: segments that left the playlists are deleted [`LINGER`] later (a player may still be
//!   fetching one). When the stream ends the playlists carry `#EXT-X-ENDLIST` and the program
//!   exits 0; on SIGINT/SIGTERM it adds `#EXT-X-ENDLIST` to the media playlists it wrote, so what
//!   is on disk plays as a finished recording of the window.
//! * VoD: every segment is written, then the program exits 0.
//!
//! A `.m3u8` target with Mist parameters (`/rec/live/index.m3u8?split=6`) is not a mirror but a
//! segmented recording that keeps its segments ([`crate::record`]).
//!
//! Exit codes: 0 the stream ended or SIGINT/SIGTERM; 1 the stream does not exist, cannot be
//! served in this format, or a file cannot be written; 2 usage error.

use super::segmented::{self, Answer, SegmentedStream};
use super::segmented_formats;
use super::standalone;
use crate::util::cli::InfoArgs;
use clap::Parser;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How long a segment that left every playlist stays on disk.
pub const LINGER: Duration = Duration::from_secs(30);
/// How often the stream is polled for new segments.
const TICK: Duration = Duration::from_millis(50);

#[derive(Parser, Debug)]
#[command(disable_version_flag = true)]
struct Args {
    /// Stream name
    #[arg(short = 's', long = "stream")]
    stream: Option<String>,
    /// The master playlist to write (e.g. /var/www/live/index.m3u8; MistOutCMAF: .m3u8 or
    /// .mpd), or a directory ending in / (index.m3u8 and index.mpd in it)
    target: Option<String>,
    /// How long to wait for the stream to appear, in seconds
    #[arg(long = "wait", default_value_t = 10)]
    wait: u64,
    /// Debug level (0-10)
    #[arg(short = 'g', long = "debug", default_value_t = 4)]
    debug: u8,
    #[command(flatten)]
    info: InfoArgs,
}

/// The capabilities of a segmented-format binary: served through MistOutHTTP (`deps: "HTTP"`),
/// and a push target ending in `.m3u8` (`.mpd`) writes to a directory.
pub fn capabilities(name: &str, desc: &str, url_match: &[&str], push_urls: &[&str]) -> Value {
    json!({
        "name": name,
        "desc": desc,
        "deps": "HTTP",
        "url_match": url_match,
        "url_rel": url_match.first().copied().unwrap_or("/$"),
        "push_urls": push_urls,
        "methods": [{"handler": "http", "type": "html5/application/vnd.apple.mpegurl", "hrn": name, "priority": 9}],
        "optional": {},
    })
}

/// Where the files go: the directory, and the names of the master playlist and (CMAF) the MPD.
fn layout(target: &str) -> (PathBuf, String, String) {
    let p = Path::new(target);
    if target.ends_with('/') || p.is_dir() {
        return (p.to_path_buf(), "index.m3u8".into(), "index.mpd".into());
    }
    let dir = p
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file = p
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| "index.m3u8".into());
    if file.ends_with(".mpd") {
        let stem = file.trim_end_matches(".mpd");
        (dir.to_path_buf(), format!("{stem}.m3u8"), file)
    } else {
        let stem = file.trim_end_matches(".m3u8");
        (dir.to_path_buf(), file.clone(), format!("{stem}.mpd"))
    }
}

/// URIs a playlist refers to: its non-comment lines and `URI="…"` attributes (EXT-X-MAP,
/// EXT-X-MEDIA). Only relative paths below the playlist are kept.
fn uris(playlist: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in playlist.lines().map(str::trim) {
        if line.is_empty() {
            continue;
        }
        if !line.starts_with('#') {
            out.push(line.to_string());
        } else if let Some(i) = line.find("URI=\"") {
            let rest = &line[i + 5..];
            if let Some(end) = rest.find('"') {
                out.push(rest[..end].to_string());
            }
        }
    }
    out.retain(|u| {
        !u.starts_with('/')
            && !u.contains("://")
            && !u.split('/').any(|c| c == ".." || c.is_empty())
            && !u.contains('?')
    });
    out
}

/// `a/b/index.m3u8` + `x.ts` → `a/b/x.ts`.
fn join(base: &str, rel: &str) -> String {
    match base.rsplit_once('/') {
        Some((dir, _)) => format!("{dir}/{rel}"),
        None => rel.to_string(),
    }
}

/// Writes `bytes` to `dir/rel` atomically (temporary name, then rename).
fn write_file(dir: &Path, rel: &str, bytes: &[u8]) -> std::io::Result<()> {
    let path = dir.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_file_name(format!(
        ".{}.tmp{}",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, &path)
}

/// The files of one segmented stream in a directory.
struct DirWriter {
    dir: PathBuf,
    master: String,
    mpd: Option<String>,
    /// Segments and init segments written (relative paths), and when they left the playlists.
    written: HashMap<String, Option<Instant>>,
    /// Media playlists written (relative path → last body).
    playlists: HashMap<String, String>,
    master_body: Option<Vec<u8>>,
}

/// One pass: what could not be done yet, or a fatal error.
enum Pass {
    /// Everything available is on disk.
    Done,
    /// The stream has nothing to list yet.
    Waiting,
}

/// Why writing a stream's files stopped.
#[derive(Debug, thiserror::Error)]
enum DirError {
    /// The stream answered a listed path with not found: the path and its message.
    #[error("{0}: {1}")]
    NotFound(String, String),
    /// Writing a file failed.
    #[error("{}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What the write gave.
        source: std::io::Error,
    },
}

impl DirWriter {
    fn fetch(s: &mut dyn SegmentedStream, rel: &str) -> Result<Option<bytes::Bytes>, DirError> {
        match s.answer(rel, "") {
            Answer::Ready { body, .. } => Ok(Some(body)),
            Answer::Cached(seg) => Ok(Some(seg.bytes)),
            Answer::Wait => Ok(None),
            Answer::NotFound(e) => Err(DirError::NotFound(rel.to_owned(), e)),
        }
    }

    /// Writes `bytes` to `rel` below the directory.
    fn write(&self, rel: &str, bytes: &[u8]) -> Result<(), DirError> {
        write_file(&self.dir, rel, bytes).map_err(|source| DirError::Write {
            path: self.dir.join(rel),
            source,
        })
    }

    /// Writes what is new: segments first, then media playlists, then the master (and MPD).
    fn pass(&mut self, s: &mut dyn SegmentedStream) -> Result<Pass, DirError> {
        let Some(master) = Self::fetch(s, "index.m3u8")? else {
            return Ok(Pass::Waiting);
        };
        let master_text = String::from_utf8_lossy(&master).into_owned();
        let mut listed: BTreeSet<String> = BTreeSet::new();
        let mut new_playlists = Vec::new();
        for media in uris(&master_text) {
            // A playlist that is not ready yet keeps its previous version on disk.
            let Some(body) = Self::fetch(s, &media)? else {
                if let Some(old) = self.playlists.get(&media) {
                    listed.extend(uris(old).iter().map(|u| join(&media, u)));
                }
                continue;
            };
            let text = String::from_utf8_lossy(&body).into_owned();
            for u in uris(&text) {
                let rel = join(&media, &u);
                if !self.written.contains_key(&rel) {
                    // Not available any more (left the window while we looked): skip it.
                    if let Some(seg) = Self::fetch(s, &rel).unwrap_or(None) {
                        self.write(&rel, &seg)?;
                        self.written.insert(rel.clone(), None);
                    }
                }
                listed.insert(rel);
            }
            if self.playlists.get(&media) != Some(&text) {
                new_playlists.push((media, text));
            }
        }
        for (media, text) in new_playlists {
            self.write(&media, text.as_bytes())?;
            self.playlists.insert(media, text);
        }
        if self.master_body.as_deref() != Some(&master[..]) {
            self.write(&self.master, &master)?;
            self.master_body = Some(master.to_vec());
        }
        if let Some(mpd) = self.mpd.clone() {
            if let Some(body) = Self::fetch(s, "index.mpd")? {
                self.write(&mpd, &body)?;
            }
        }
        // Segments no playlist lists any more go after LINGER.
        let now = Instant::now();
        let dir = &self.dir;
        self.written.retain(|rel, gone| {
            if listed.contains(rel) {
                *gone = None;
                return true;
            }
            let since = *gone.get_or_insert(now);
            if now.duration_since(since) < LINGER {
                return true;
            }
            let _ = std::fs::remove_file(dir.join(rel));
            false
        });
        Ok(Pass::Done)
    }

    /// Stopped while live: the media playlists on disk end with `#EXT-X-ENDLIST`.
    fn close_playlists(&self) {
        for (media, text) in &self.playlists {
            if !text.contains("#EXT-X-ENDLIST") {
                let mut t = text.trim_end().to_string();
                t.push_str("\n#EXT-X-ENDLIST\n");
                let _ = write_file(&self.dir, media, t.as_bytes());
            }
        }
    }
}

/// Runs a segmented-format binary (`kind` "hls" or "cmaf"). Returns the exit code.
pub fn main(bin: &str, kind: &str, caps: Value) -> i32 {
    let args: Args = match standalone::parse() {
        Ok(a) => a,
        Err(code) => return code,
    };
    let wait = args.wait;
    let common = standalone::Common {
        stream: args.stream,
        target: args.target,
        wait,
        debug: args.debug,
        info: args.info,
    };
    let usage = "a .m3u8 or .mpd file, or a directory ending in /";
    let standalone::Started { name, target, stop } =
        match standalone::start(bin, &caps, common, usage) {
            Ok(s) => s,
            Err(code) => return code,
        };
    // A .m3u8 target with parameters is a segmented HLS recording (crate::record).
    if kind == "hls" && crate::record::is_hls_recording(&target) {
        return crate::record::run(crate::record::RecArgs {
            bin: bin.to_string(),
            stream: name,
            target,
            params: mist_core::push::PushParams::default(),
            wait,
            stop,
        });
    }
    let (dir, master, mpd) = layout(&target);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        mist_core::error!("cannot create {}: {e}", dir.display());
        return 1;
    }
    let deadline = Instant::now() + Duration::from_secs(wait);
    let mut s: Box<dyn SegmentedStream> = loop {
        if matches!(mist_shm::stream_status(&name), Ok(st) if !st.ended) {
            match segmented_formats::open(kind, &name, "local") {
                Some(Ok(s)) => break s,
                Some(Err(e)) => mist_core::debug!("open {name}: {e}"),
                None => {
                    mist_core::error!("this build has no {kind} output");
                    return 1;
                }
            }
        }
        if Instant::now() > deadline || stop.load(Ordering::Relaxed) {
            mist_core::error!("stream {name} not found");
            return 1;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut w = DirWriter {
        dir,
        master,
        mpd: (kind == "cmaf").then_some(mpd),
        written: HashMap::new(),
        playlists: HashMap::new(),
        master_body: None,
    };
    // A live stream's first playlist can take two segment durations (and a VoD index a moment).
    let started = Instant::now();
    let mut first = true;
    loop {
        s.poll();
        match w.pass(s.as_mut()) {
            Ok(Pass::Done) if first => {
                mist_core::info!("stream {name}: writing to {}", w.dir.display());
                first = false;
            }
            Ok(_) => {}
            Err(e) => {
                mist_core::error!("stream {name}: {e}");
                return 1;
            }
        }
        let all_closed =
            !w.playlists.is_empty() && w.playlists.values().all(|t| t.contains("#EXT-X-ENDLIST"));
        if all_closed {
            // Ended live stream, or a VoD stream written whole.
            mist_core::info!(
                "stream {name}: complete; {} segment files in {}",
                w.written.len(),
                w.dir.display()
            );
            return 0;
        }
        if stop.load(Ordering::Relaxed) || (s.ended() && !first) {
            w.close_playlists();
            mist_core::info!("stream {name}: stopped; playlists closed");
            return 0;
        }
        if first && (s.ended() || started.elapsed() > segmented::WAIT) {
            mist_core::error!("stream {name}: no playlist to write");
            return 1;
        }
        std::thread::sleep(TICK);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn playlist_uris_and_layout() {
        let m = "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",URI=\"2/index.m3u8\"\n#EXT-X-STREAM-INF:BANDWIDTH=1\n1/index.m3u8\n";
        assert_eq!(uris(m), vec!["2/index.m3u8", "1/index.m3u8"]);
        let p = "#EXTM3U\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:2.0,\n0.m4s\n../x.ts\n/etc/passwd\nhttp://h/x\n";
        assert_eq!(uris(p), vec!["init.mp4", "0.m4s"]);
        assert_eq!(join("1_2/index.m3u8", "3_6000.ts"), "1_2/3_6000.ts");
        assert_eq!(join("index.m3u8", "a.ts"), "a.ts");
        let (d, m, mpd) = layout("/var/www/live/index.m3u8");
        assert_eq!(
            (d.to_str().unwrap(), &*m, &*mpd),
            ("/var/www/live", "index.m3u8", "index.mpd")
        );
        let (d, m, mpd) = layout("out/stream.mpd");
        assert_eq!(
            (d.to_str().unwrap(), &*m, &*mpd),
            ("out", "stream.m3u8", "stream.mpd")
        );
        let (d, m, _) = layout("/tmp/x/");
        assert_eq!((d.to_str().unwrap(), &*m), ("/tmp/x/", "index.m3u8"));
    }
}
