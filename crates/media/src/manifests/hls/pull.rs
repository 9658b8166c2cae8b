//! Following an HLS source (RFC 8216 §6.3), sans-IO: which media playlists a master names, which
//! segments of a reloaded media playlist are new, when to reload, and what kind of bytes a segment
//! holds. The caller does the HTTP and the demuxing; nothing here touches a socket or a clock
//! (times are the caller's milliseconds).
//!
//! * [`media_playlists`]: every variant and every rendition with a URI of a master playlist,
//!   resolved against the master's URL, without duplicates, at most [`MAX_FEEDS`].
//! * [`Follower`]: one media playlist. [`Follower::update`] takes each load and returns the
//!   segments not taken yet, in order. A live playlist is joined three segments before its end
//!   (§6.3.3); a finished one (`EXT-X-ENDLIST`) is taken whole. Segments that left the playlist
//!   before they were taken (the reload came too late) are counted as lost and the next segment is
//!   marked discontinuous, as is every `EXT-X-DISCONTINUITY`; a media sequence that goes back (the
//!   origin restarted) joins the new playlist at its live edge, discontinuous.
//! * [`Follower::reload_in_ms`]: the target duration after a load that brought new segments, half
//!   of it after one that did not (§6.3.4), clamped to [`MIN_RELOAD_MS`]..=[`MAX_RELOAD_MS`].
//! * [`resolve`]: RFC 3986 §5.2 reference resolution for the URLs playlists carry.

use super::{ByteRange, MasterPlaylist, MediaPlaylist};

/// Most media playlists followed for one source.
pub const MAX_FEEDS: usize = 16;
/// Segments before the end of a live playlist where following starts (RFC 8216 §6.3.3).
pub const LIVE_EDGE_SEGMENTS: usize = 3;
/// Shortest wait between two loads of a media playlist.
pub const MIN_RELOAD_MS: u64 = 200;
/// Longest wait between two loads of a live media playlist.
pub const MAX_RELOAD_MS: u64 = 30_000;
/// Most segments one update hands out (a hostile or huge playlist cannot queue more).
pub const MAX_NEW_SEGMENTS: usize = 10_000;

/// What a segment (or init section) holds, told from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentKind {
    /// MPEG-TS (sync byte 0x47 every 188 bytes).
    Ts,
    /// ISO BMFF: fMP4/CMAF (`ftyp`, `styp`, `moof`, `sidx`, `moov`, `emsg`, `prft`, `free` ...).
    Mp4,
    /// Packed audio (an ID3 tag first) or anything else: not supported.
    Other,
}

/// Tells TS from fMP4 by the first bytes of a segment.
pub fn segment_kind(data: &[u8]) -> SegmentKind {
    if data.first() == Some(&0x47) && (data.len() < 189 || data[188] == 0x47) {
        return SegmentKind::Ts;
    }
    if let Some(t) = data.get(4..8) {
        const BOXES: [&[u8; 4]; 9] = [
            b"ftyp", b"styp", b"moof", b"sidx", b"moov", b"emsg", b"prft", b"free", b"mdat",
        ];
        if BOXES.iter().any(|b| &t == b) {
            return SegmentKind::Mp4;
        }
    }
    SegmentKind::Other
}

/// A segment to fetch, with everything the caller needs to fetch and demux it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentJob {
    /// Absolute URL.
    pub url: String,
    /// Media sequence number.
    pub seq: u64,
    /// Its `EXTINF` duration, in ms.
    pub duration_ms: i64,
    /// The timeline may not continue from the segment before: an `EXT-X-DISCONTINUITY`, lost
    /// segments before this one, or an origin restart. Demuxer state (continuity counters,
    /// pending data) should be dropped.
    pub discontinuity: bool,
    /// The byte range to fetch (`Range: bytes=start-end`, inclusive), when the playlist gives one.
    pub range: Option<(u64, u64)>,
    /// The init section (`EXT-X-MAP`) in force: absolute URL and byte range.
    pub map: Option<(String, Option<(u64, u64)>)>,
    /// `EXT-X-KEY` METHOD in force other than `NONE`: the segment is encrypted.
    pub encrypted: Option<String>,
}

/// Counters of a [`Follower`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FollowStats {
    /// Playlist loads.
    pub loads: u64,
    /// Loads that brought no new segment.
    pub stale_loads: u64,
    /// Segments handed out to fetch.
    pub segments: u64,
    /// Segments that left the playlist before they were taken.
    pub lost_segments: u64,
    /// `EXT-X-DISCONTINUITY` tags, sequence gaps and restarts handed out as discontinuities.
    pub discontinuities: u64,
    /// Times the media sequence went back (the origin restarted).
    pub restarts: u64,
}

/// Follows one media playlist; see the module documentation.
#[derive(Debug, Clone)]
pub struct Follower {
    url: String,
    /// Sequence number of the last segment handed out.
    last_seq: Option<u64>,
    target_ms: u64,
    ended: bool,
    changed: bool,
    stats: FollowStats,
}

/// The inclusive byte range of `b`, continuing from `prev_end` (the end of the previous range of
/// the same resource) when it has no offset. `None` when it is empty or overflows.
fn range_of(b: &ByteRange, prev_end: Option<u64>) -> Option<(u64, u64)> {
    let start = b.offset.or(prev_end).unwrap_or(0);
    let end = start.checked_add(b.length)?.checked_sub(1)?;
    (b.length > 0).then_some((start, end))
}

impl Follower {
    /// Follows the media playlist at `url` (absolute).
    pub fn new(url: &str) -> Follower {
        Follower {
            url: url.to_string(),
            last_seq: None,
            target_ms: 0,
            ended: false,
            changed: true,
            stats: FollowStats::default(),
        }
    }

    /// The playlist's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The playlist said `EXT-X-ENDLIST`: no more reloads.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// The playlist's target duration in ms (0 before the first load).
    pub fn target_ms(&self) -> u64 {
        self.target_ms
    }

    /// What happened so far.
    pub fn stats(&self) -> &FollowStats {
        &self.stats
    }

    /// Takes a fresh load of the playlist; returns the segments not handed out before, in order.
    pub fn update(&mut self, pl: &MediaPlaylist) -> Vec<SegmentJob> {
        self.stats.loads += 1;
        self.target_ms = pl.target_duration.saturating_mul(1000);
        self.ended = pl.endlist;
        let segs = &pl.segments;
        let edge = segs.len().saturating_sub(LIVE_EDGE_SEGMENTS);
        let (start, mut disc) = match self.last_seq {
            None if pl.endlist => (0, false),
            None => (edge, false),
            Some(last) => {
                let newest = segs.last().map(|s| s.seq);
                let first = segs.first().map(|s| s.seq);
                match (first, newest) {
                    (_, None) => (0, false),
                    // The sequence went back: a new playlist (origin restart). Join at its edge
                    // unless the playlist is only missing what we already have (a stale cache).
                    (_, Some(n)) if n < last && last - n > segs.len() as u64 + 2 => {
                        self.stats.restarts += 1;
                        self.last_seq = None;
                        (if pl.endlist { 0 } else { edge }, true)
                    }
                    (Some(f), Some(_)) if f > last.saturating_add(1) => {
                        self.stats.lost_segments += f - last - 1;
                        (0, true)
                    }
                    _ => (segs.partition_point(|s| s.seq <= last), false),
                }
            }
        };
        let mut out = Vec::new();
        // Byte ranges without an offset continue the previous range of the same URI, which may
        // lie before `start`: walk them all.
        let mut prev: Option<(&str, u64)> = None;
        let mut prev_map: Option<(&str, u64)> = None;
        for (i, s) in segs.iter().enumerate() {
            let range = s.byterange.as_ref().and_then(|b| {
                let pe = prev.filter(|(u, _)| *u == s.uri).map(|(_, e)| e);
                range_of(b, pe)
            });
            prev = range.map(|(_, e)| (s.uri.as_str(), e + 1));
            let map = s.map.as_ref().map(|m| {
                let r = m.byterange.as_ref().and_then(|b| {
                    let pe = prev_map.filter(|(u, _)| *u == m.uri).map(|(_, e)| e);
                    range_of(b, pe)
                });
                (resolve(&self.url, &m.uri), r)
            });
            if let (Some(m), Some((_, Some((_, e))))) = (&s.map, &map) {
                prev_map = Some((m.uri.as_str(), e + 1));
            }
            if i < start
                || out.len() >= MAX_NEW_SEGMENTS
                || self.last_seq.is_some_and(|l| s.seq <= l)
            {
                continue;
            }
            let d = disc || (s.discontinuity && (self.last_seq.is_some() || !out.is_empty()));
            disc = false;
            if d {
                self.stats.discontinuities += 1;
            }
            out.push(SegmentJob {
                url: resolve(&self.url, &s.uri),
                seq: s.seq,
                duration_ms: s.duration_ms,
                discontinuity: d,
                range,
                map,
                encrypted: s
                    .key_method
                    .clone()
                    .filter(|k| !k.eq_ignore_ascii_case("NONE")),
            });
            self.last_seq = Some(s.seq);
        }
        self.changed = !out.is_empty();
        if out.is_empty() {
            self.stats.stale_loads += 1;
        }
        self.stats.segments += out.len() as u64;
        out
    }

    /// How long to wait before the next load (RFC 8216 §6.3.4); `None` once the playlist ended.
    pub fn reload_in_ms(&self) -> Option<u64> {
        if self.ended {
            return None;
        }
        let t = if self.changed {
            self.target_ms
        } else {
            self.target_ms / 2
        };
        Some(t.clamp(MIN_RELOAD_MS, MAX_RELOAD_MS))
    }
}

/// The media playlists of a master playlist at `base`: every variant, then every rendition with a
/// URI (audio, video; subtitles and closed captions are skipped), resolved, first occurrence
/// kept, at most [`MAX_FEEDS`].
pub fn media_playlists(master: &MasterPlaylist, base: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let renditions = master
        .renditions
        .iter()
        .filter(|r| matches!(r.media_type.as_str(), "AUDIO" | "VIDEO"))
        .filter_map(|r| r.uri.as_deref());
    for u in master
        .variants
        .iter()
        .map(|v| v.uri.as_str())
        .chain(renditions)
    {
        let u = resolve(base, u);
        if out.len() >= MAX_FEEDS {
            break;
        }
        if !out.contains(&u) {
            out.push(u);
        }
    }
    out
}

/// Splits an absolute URL into scheme (with `:`), authority (with `//`), path, and the rest
/// (`?query#fragment`).
fn split(url: &str) -> Option<(&str, &str, &str, &str)> {
    let colon = url.find(':')?;
    let scheme = &url[..colon];
    if scheme.is_empty()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    {
        return None;
    }
    let rest = &url[colon + 1..];
    let (auth, after) = match rest.strip_prefix("//") {
        Some(r) => {
            let end = r.find(['/', '?', '#']).unwrap_or(r.len());
            (&rest[..end + 2], &r[end..])
        }
        None => ("", rest),
    };
    let p = after.find(['?', '#']).unwrap_or(after.len());
    Some((&url[..colon + 1], auth, &after[..p], &after[p..]))
}

/// RFC 3986 §5.2.4.
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let abs = path.starts_with('/');
    let segs: Vec<&str> = path.split('/').collect();
    let n = segs.len();
    for (i, s) in segs.iter().enumerate() {
        if i == 0 && abs {
            continue;
        }
        match *s {
            "." => {
                if i == n - 1 {
                    out.push("");
                }
            }
            ".." => {
                out.pop();
                if i == n - 1 {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    let j = out.join("/");
    if abs {
        format!("/{j}")
    } else {
        j
    }
}

/// Resolves `reference` (as found in a playlist) against the absolute URL `base` (RFC 3986 §5.2).
/// An absolute reference is returned as it is; a `base` that is not an absolute URL gives
/// `reference` back.
pub fn resolve(base: &str, reference: &str) -> String {
    let reference = reference.trim();
    if split(reference).is_some_and(|(_, a, _, _)| !a.is_empty()) {
        return reference.to_string();
    }
    let Some((scheme, auth, path, _)) = split(base) else {
        return reference.to_string();
    };
    if reference.starts_with("//") {
        return format!("{scheme}{reference}");
    }
    let rp = reference.find(['?', '#']).unwrap_or(reference.len());
    let (rpath, rrest) = reference.split_at(rp);
    if rpath.is_empty() {
        let (_, _, _, brest) = split(base).unwrap_or_default();
        let rest = if rrest.is_empty() || rrest.starts_with('#') {
            let q = brest.find('#').unwrap_or(brest.len());
            format!("{}{rrest}", &brest[..q])
        } else {
            rrest.to_string()
        };
        return format!("{scheme}{auth}{path}{rest}");
    }
    let merged = if rpath.starts_with('/') {
        rpath.to_string()
    } else if !auth.is_empty() && path.is_empty() {
        format!("/{rpath}")
    } else {
        match path.rfind('/') {
            Some(i) => format!("{}{rpath}", &path[..=i]),
            None => rpath.to_string(),
        }
    };
    format!("{scheme}{auth}{}{rrest}", remove_dot_segments(&merged))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hls::{parse, Playlist};

    fn media(text: &str) -> MediaPlaylist {
        match parse(text.as_bytes()).unwrap() {
            Playlist::Media(m) => m,
            Playlist::Master(_) => panic!("a master"),
        }
    }

    /// A live playlist as ffmpeg writes it (`-f hls -hls_time 1 -hls_list_size 5`), sequence
    /// `first`, five segments.
    fn ffmpeg_live(first: u64, n: usize) -> String {
        let mut s = format!(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:{first}\n"
        );
        for i in 0..n as u64 {
            s += &format!("#EXTINF:1.000000,\nlive{}.ts\n", first + i);
        }
        s
    }

    /// Playlists ffmpeg wrote (`-f hls`: live with program date times, fMP4 VoD, a master of two
    /// variants from `-var_stream_map`), as in `fuzz/corpus/m3u8/`.
    #[test]
    fn real_ffmpeg_playlists() {
        let live = "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:3\n\
            #EXT-X-INDEPENDENT-SEGMENTS\n#EXTINF:1.000000,\n\
            #EXT-X-PROGRAM-DATE-TIME:2026-11-26T09:30:19.713+0000\nlive3.ts\n#EXTINF:1.000000,\n\
            #EXT-X-PROGRAM-DATE-TIME:2026-11-26T09:30:20.713+0000\nlive4.ts\n#EXTINF:1.000000,\n\
            #EXT-X-PROGRAM-DATE-TIME:2026-11-26T09:30:21.713+0000\nlive5.ts\n";
        let mut f = Follower::new("http://127.0.0.1:9/x/live.m3u8");
        let j = f.update(&media(live));
        assert_eq!(j.len(), 3);
        assert_eq!(j[2].url, "http://127.0.0.1:9/x/live5.ts");
        assert_eq!(f.reload_in_ms(), Some(1000));
        let vod = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n\
            #EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:1.440000,\nout0.m4s\n\
            #EXTINF:0.960000,\nout1.m4s\n#EXTINF:0.960000,\nout2.m4s\n#EXTINF:0.640000,\nout3.m4s\n\
            #EXT-X-ENDLIST\n";
        let mut f = Follower::new("http://h/v/index.m3u8");
        let j = f.update(&media(vod));
        assert_eq!(j.iter().map(|j| j.duration_ms).sum::<i64>(), 4000);
        assert!(j
            .iter()
            .all(|j| j.map == Some(("http://h/v/init.mp4".into(), None))));
        let master = "#EXTM3U\n#EXT-X-VERSION:3\n\
            #EXT-X-STREAM-INF:BANDWIDTH=70400,RESOLUTION=320x180,CODECS=\"avc1.64000c,mp4a.40.2\"\n\
            out_0.m3u8\n\n#EXT-X-STREAM-INF:BANDWIDTH=70400,RESOLUTION=160x90,CODECS=\"avc1.64000b,mp4a.40.2\"\n\
            out_1.m3u8\n";
        let Playlist::Master(m) = parse(master.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(
            media_playlists(&m, "http://h/m.m3u8"),
            vec!["http://h/out_0.m3u8", "http://h/out_1.m3u8"]
        );
    }

    #[test]
    fn resolution_rfc3986_examples() {
        let b = "http://a/b/c/d;p?q";
        for (r, want) in [
            ("g", "http://a/b/c/g"),
            ("./g", "http://a/b/c/g"),
            ("g/", "http://a/b/c/g/"),
            ("/g", "http://a/g"),
            ("//g", "http://g"),
            ("?y", "http://a/b/c/d;p?y"),
            ("g?y", "http://a/b/c/g?y"),
            ("#s", "http://a/b/c/d;p?q#s"),
            ("g#s", "http://a/b/c/g#s"),
            (";x", "http://a/b/c/;x"),
            ("", "http://a/b/c/d;p?q"),
            (".", "http://a/b/c/"),
            ("./", "http://a/b/c/"),
            ("..", "http://a/b/"),
            ("../", "http://a/b/"),
            ("../g", "http://a/b/g"),
            ("../..", "http://a/"),
            ("../../g", "http://a/g"),
            ("../../../g", "http://a/g"),
            ("/./g", "http://a/g"),
            ("/../g", "http://a/g"),
            ("g.", "http://a/b/c/g."),
            ("..g", "http://a/b/c/..g"),
            ("./../g", "http://a/b/g"),
            ("g/../h", "http://a/b/c/h"),
            ("https://x.example/seg.ts", "https://x.example/seg.ts"),
        ] {
            assert_eq!(resolve(b, r), want, "{r:?}");
        }
        assert_eq!(
            resolve("http://h:8080/live/index.m3u8?tok=1", "seg1.ts"),
            "http://h:8080/live/seg1.ts"
        );
        assert_eq!(resolve("http://h", "a.ts"), "http://h/a.ts");
        assert_eq!(resolve("not a url", "a.ts"), "a.ts");
    }

    #[test]
    fn live_playlist_is_joined_at_its_edge_and_followed() {
        let mut f = Follower::new("http://127.0.0.1:8000/hls/live.m3u8");
        let j = f.update(&media(&ffmpeg_live(10, 5)));
        assert_eq!(
            j.iter().map(|j| j.seq).collect::<Vec<_>>(),
            vec![12, 13, 14]
        );
        assert_eq!(j[0].url, "http://127.0.0.1:8000/hls/live12.ts");
        assert!(j.iter().all(|j| !j.discontinuity && j.range.is_none()));
        assert_eq!(f.reload_in_ms(), Some(1000));
        // Nothing new: reload at half the target duration.
        assert!(f.update(&media(&ffmpeg_live(10, 5))).is_empty());
        assert_eq!(f.reload_in_ms(), Some(500));
        // Two new segments.
        let j = f.update(&media(&ffmpeg_live(12, 5)));
        assert_eq!(j.iter().map(|j| j.seq).collect::<Vec<_>>(), vec![15, 16]);
        assert!(j.iter().all(|j| !j.discontinuity));
        // A late reload: 17..=19 left the playlist. Counted, and the next one is discontinuous.
        let j = f.update(&media(&ffmpeg_live(20, 5)));
        assert_eq!(j.len(), 5);
        assert!(j[0].discontinuity && !j[1].discontinuity);
        assert_eq!(f.stats().lost_segments, 3);
        // The origin restarts from sequence 0: joined at the new edge, discontinuous.
        let j = f.update(&media(&ffmpeg_live(0, 5)));
        assert_eq!(j.iter().map(|j| j.seq).collect::<Vec<_>>(), vec![2, 3, 4]);
        assert!(j[0].discontinuity);
        assert_eq!(f.stats().restarts, 1);
        assert_eq!(f.stats().segments, 3 + 2 + 5 + 3);
    }

    #[test]
    fn vod_playlist_is_taken_whole_then_ends() {
        let text = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-PLAYLIST-TYPE:VOD\n\
            #EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-MAP:URI=\"init.mp4\"\n\
            #EXTINF:2.002,\nseg0.m4s\n#EXTINF:2.002,\nseg1.m4s\n#EXT-X-DISCONTINUITY\n\
            #EXT-X-MAP:URI=\"init2.mp4\"\n#EXTINF:1.5,\nseg2.m4s\n#EXT-X-ENDLIST\n";
        let mut f = Follower::new("https://cdn.example/v/1/media.m3u8");
        let j = f.update(&media(text));
        assert_eq!(j.len(), 3);
        assert_eq!(
            j[0].map,
            Some(("https://cdn.example/v/1/init.mp4".into(), None))
        );
        assert_eq!(
            j[2].map.as_ref().unwrap().0,
            "https://cdn.example/v/1/init2.mp4"
        );
        assert_eq!(j[1].duration_ms, 2002);
        // The first segment taken starts our timeline; a discontinuity after it is flagged.
        assert!(!j[0].discontinuity && !j[1].discontinuity && j[2].discontinuity);
        assert!(f.ended());
        assert_eq!(f.reload_in_ms(), None);
    }

    #[test]
    fn discontinuity_tags_after_the_first_load_are_flagged() {
        let mut f = Follower::new("http://h/a.m3u8");
        f.update(&media(&ffmpeg_live(0, 3)));
        let text = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:1\n\
            #EXTINF:1,\nlive1.ts\n#EXTINF:1,\nlive2.ts\n#EXT-X-DISCONTINUITY\n#EXTINF:1,\nother3.ts\n";
        let j = f.update(&media(text));
        assert_eq!(j.len(), 1);
        assert!(j[0].discontinuity);
        assert_eq!(f.stats().discontinuities, 1);
    }

    #[test]
    fn byte_ranges_continue_and_encryption_is_reported() {
        let text = "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-VERSION:4\n\
            #EXT-X-MAP:URI=\"all.mp4\",BYTERANGE=\"700@0\"\n\
            #EXTINF:4,\n#EXT-X-BYTERANGE:1000@700\nall.mp4\n\
            #EXTINF:4,\n#EXT-X-BYTERANGE:500\nall.mp4\n\
            #EXT-X-KEY:METHOD=AES-128,URI=\"k\"\n#EXTINF:4,\n#EXT-X-BYTERANGE:10\nall.mp4\n#EXT-X-ENDLIST\n";
        let mut f = Follower::new("http://h/p/v.m3u8");
        let j = f.update(&media(text));
        assert_eq!(j[0].range, Some((700, 1699)));
        assert_eq!(j[1].range, Some((1700, 2199)));
        assert_eq!(j[2].range, Some((2200, 2209)));
        assert_eq!(
            j[0].map,
            Some(("http://h/p/all.mp4".into(), Some((0, 699))))
        );
        assert_eq!(j[0].encrypted, None);
        assert_eq!(j[2].encrypted.as_deref(), Some("AES-128"));
    }

    #[test]
    fn master_playlists_name_every_variant_and_rendition() {
        // As ffmpeg writes it with -master_pl_name and -var_stream_map "v:0,a:0 v:1,a:1".
        let text = "#EXTM3U\n#EXT-X-VERSION:3\n\
            #EXT-X-STREAM-INF:BANDWIDTH=1210000,RESOLUTION=1280x720,CODECS=\"avc1.64001f,mp4a.40.2\"\n\
            stream_0.m3u8\n\
            #EXT-X-STREAM-INF:BANDWIDTH=440000,RESOLUTION=640x360,CODECS=\"avc1.64001e,mp4a.40.2\"\n\
            stream_1.m3u8\n\
            #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"en\",URI=\"audio/en.m3u8\"\n\
            #EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"sub\",NAME=\"en\",URI=\"subs.m3u8\"\n\
            #EXT-X-STREAM-INF:BANDWIDTH=440000\nstream_1.m3u8\n";
        let Playlist::Master(m) = parse(text.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(
            media_playlists(&m, "http://h:1/live/master.m3u8"),
            vec![
                "http://h:1/live/stream_0.m3u8",
                "http://h:1/live/stream_1.m3u8",
                "http://h:1/live/audio/en.m3u8"
            ]
        );
    }

    #[test]
    fn segment_kinds() {
        let mut ts = vec![0u8; 376];
        ts[0] = 0x47;
        ts[188] = 0x47;
        assert_eq!(segment_kind(&ts), SegmentKind::Ts);
        assert_eq!(segment_kind(b"\0\0\0\x18stypmsdh"), SegmentKind::Mp4);
        assert_eq!(segment_kind(b"\0\0\0\x18ftypiso6"), SegmentKind::Mp4);
        assert_eq!(segment_kind(b"ID3\x04\0\0\0\0\0\0"), SegmentKind::Other);
        assert_eq!(segment_kind(b""), SegmentKind::Other);
        ts[188] = 0;
        assert_eq!(segment_kind(&ts), SegmentKind::Other);
    }
}
