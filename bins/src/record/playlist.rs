//! The playlist of a segmented HLS recording (INTERFACES §4.4 `m3u8`, `targetAge`, `maxEntries`,
//! `noendlist`, `append`): what it lists, what trimming removes, and its text. Pure: the
//! recorder gives the clock and does the file work (writing the text atomically, deleting the
//! segments that were trimmed off).
//!
//! * Every entry has `#EXT-X-PROGRAM-DATE-TIME` (the wall-clock start of the segment, which
//!   `targetAge` ages) and `#EXTINF` (the segment's media duration, up to the start of the next
//!   one, so the listed times have no gaps).
//! * A live recording without trimming is an `EVENT` playlist; with trimming (`maxEntries`,
//!   `targetAge`) a sliding window whose `EXT-X-MEDIA-SEQUENCE` (and
//!   `EXT-X-DISCONTINUITY-SEQUENCE`) counts what left it; a recording of a VoD stream is `VOD`
//!   once complete.
//! * `append`: the entries of an existing playlist stay, the first new one starts with
//!   `#EXT-X-DISCONTINUITY`, and `$segmentCounter` goes on after the old ones.

use std::collections::VecDeque;

/// One segment in the playlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// As written in the playlist (relative to it when the segment is below it).
    pub uri: String,
    /// Duration (ms), rounded up into `#EXTINF`.
    pub dur_ms: i64,
    /// Wall-clock start, unix ms (`#EXT-X-PROGRAM-DATE-TIME`).
    pub unix_ms: i64,
    /// `#EXT-X-DISCONTINUITY` before it.
    pub discontinuity: bool,
}

/// What the target's parameters ask of the playlist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Entries kept at most (0: all).
    pub max_entries: u64,
    /// Seconds an entry stays listed (0: for ever).
    pub target_age: u64,
    /// `#EXT-X-ENDLIST` at the end (not with `noendlist`).
    pub endlist: bool,
    /// The stream is live (else the finished playlist is `VOD`).
    pub live: bool,
    /// Seconds per segment asked for (`split`).
    pub split: u64,
}

/// An HLS media playlist kept as a recording writes its segments, rewritten after each one.
#[derive(Debug, Clone)]
pub struct Playlist {
    /// Segments listed, oldest first.
    pub entries: VecDeque<Entry>,
    /// `#EXT-X-MEDIA-SEQUENCE`: segments dropped from the front so far.
    pub media_seq: u64,
    /// `#EXT-X-DISCONTINUITY-SEQUENCE`: discontinuities dropped from the front so far.
    pub disc_seq: u64,
    opts: Options,
    /// The next entry starts with a discontinuity (after an append).
    next_discontinuity: bool,
}

/// `YYYY-MM-DDTHH:MM:SS[.mmm](Z|±hh:mm)` to unix ms.
pub fn parse_iso8601(s: &str) -> Option<i64> {
    let s = s.trim();
    let num = |a: usize, b: usize| s.get(a..b)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, sec) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if s.get(4..5)? != "-" || s.get(10..11)? != "T" || !(1..=12).contains(&mo) {
        return None;
    }
    let mut rest = &s[19..];
    let mut ms = 0;
    if let Some(r) = rest.strip_prefix('.') {
        let digits = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
        let frac = &r[..digits];
        ms = format!("{:0<3}", &frac[..frac.len().min(3)]).parse().ok()?;
        rest = &r[digits..];
    }
    let offset_min = match rest {
        "Z" | "" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) => {
            let v = o[1..3].parse::<i64>().ok()? * 60 + o[4..6].parse::<i64>().ok()?;
            if o.starts_with('-') {
                -v
            } else {
                v
            }
        }
        _ => return None,
    };
    // days_from_civil (H. Hinnant)
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + h * 3600 + mi * 60 + sec) - offset_min * 60) * 1000 + ms)
}

impl Playlist {
    /// An empty playlist with these options.
    pub fn new(opts: Options) -> Playlist {
        Playlist {
            entries: VecDeque::new(),
            media_seq: 0,
            disc_seq: 0,
            opts,
            next_discontinuity: false,
        }
    }

    /// Continues an existing playlist (`append`): its entries stay and the next one is marked
    /// as a discontinuity. A text that is not a media playlist starts a new one.
    pub fn resume(text: &str, opts: Options) -> Playlist {
        let mut p = Playlist::new(opts);
        if let Ok(mist_media::hls::Playlist::Media(m)) = mist_media::hls::parse(text.as_bytes()) {
            p.media_seq = m.media_sequence;
            p.disc_seq = m.discontinuity_sequence;
            for s in m.segments {
                p.entries.push_back(Entry {
                    unix_ms: s
                        .program_date_time
                        .as_deref()
                        .and_then(parse_iso8601)
                        .unwrap_or(0),
                    uri: s.uri,
                    dur_ms: s.duration_ms,
                    discontinuity: s.discontinuity,
                });
            }
            p.next_discontinuity = !p.entries.is_empty() || p.media_seq > 0;
        }
        p
    }

    /// The segment URIs an existing playlist lists (deleted when a recording replaces it).
    pub fn uris(text: &str) -> Vec<String> {
        match mist_media::hls::parse(text.as_bytes()) {
            Ok(mist_media::hls::Playlist::Media(m)) => {
                m.segments.into_iter().map(|s| s.uri).collect()
            }
            _ => Vec::new(),
        }
    }

    /// `$segmentCounter` of the next segment: one past every segment ever listed.
    pub fn next_counter(&self) -> u64 {
        self.media_seq + self.entries.len() as u64
    }

    /// The next segment starts with `#EXT-X-DISCONTINUITY` (the stream's tracks changed: a new
    /// codec, resolution or track set, which a player must reinitialise its decoders for).
    /// Marking twice before a segment is listed still gives one tag.
    pub fn mark_discontinuity(&mut self) {
        self.next_discontinuity = true;
    }

    /// Lists a finished segment; returns the URIs that trimming removed (at `now_ms`).
    pub fn push(&mut self, mut e: Entry, now_ms: i64) -> Vec<String> {
        e.discontinuity |= std::mem::take(&mut self.next_discontinuity);
        self.entries.push_back(e);
        self.trim(now_ms)
    }

    /// Drops entries past `maxEntries` or older than `targetAge`; the newest always stays.
    pub fn trim(&mut self, now_ms: i64) -> Vec<String> {
        let mut gone = Vec::new();
        while self.entries.len() > 1 {
            let front = &self.entries[0];
            let too_many =
                self.opts.max_entries > 0 && self.entries.len() as u64 > self.opts.max_entries;
            let too_old = self.opts.target_age > 0
                && front.unix_ms > 0
                && now_ms - front.unix_ms > self.opts.target_age as i64 * 1000;
            if !too_many && !too_old {
                break;
            }
            let e = self.entries.pop_front().expect("len > 1");
            self.media_seq += 1;
            // The tag goes with its segment: the count of those that left.
            if e.discontinuity {
                self.disc_seq += 1;
            }
            gone.push(e.uri);
        }
        gone
    }

    fn trimming(&self) -> bool {
        self.opts.max_entries > 0 || self.opts.target_age > 0
    }

    /// The playlist's text. `ended`: the recording is over (`#EXT-X-ENDLIST` unless
    /// `noendlist`).
    pub fn render(&self, ended: bool) -> String {
        let mut s = String::from("#EXTM3U\n#EXT-X-VERSION:3\n");
        if !self.opts.live && ended {
            s.push_str("#EXT-X-PLAYLIST-TYPE:VOD\n");
        } else if !self.trimming() {
            s.push_str("#EXT-X-PLAYLIST-TYPE:EVENT\n");
        }
        let longest = self
            .entries
            .iter()
            .map(|e| (e.dur_ms + 999) / 1000)
            .max()
            .unwrap_or(0);
        let target = (self.opts.split as i64).max(longest).max(1);
        s.push_str(&format!("#EXT-X-TARGETDURATION:{target}\n"));
        s.push_str(&format!("#EXT-X-MEDIA-SEQUENCE:{}\n", self.media_seq));
        if self.disc_seq > 0 {
            s.push_str(&format!(
                "#EXT-X-DISCONTINUITY-SEQUENCE:{}\n",
                self.disc_seq
            ));
        }
        for e in &self.entries {
            if e.discontinuity {
                s.push_str("#EXT-X-DISCONTINUITY\n");
            }
            if e.unix_ms > 0 {
                s.push_str(&format!(
                    "#EXT-X-PROGRAM-DATE-TIME:{}\n",
                    mist_media::hls::iso8601(e.unix_ms)
                ));
            }
            let d = e.dur_ms.max(0);
            s.push_str(&format!(
                "#EXTINF:{}.{:03},\n{}\n",
                d / 1000,
                d % 1000,
                e.uri
            ));
        }
        if ended && self.opts.endlist {
            s.push_str("#EXT-X-ENDLIST\n");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> Options {
        Options {
            endlist: true,
            live: true,
            split: 2,
            ..Options::default()
        }
    }

    fn entry(i: i64) -> Entry {
        Entry {
            uri: format!("seg{i}.ts"),
            dur_ms: 2040,
            unix_ms: 1_700_000_000_000 + i * 2040,
            discontinuity: false,
        }
    }

    #[test]
    fn dates_round_trip() {
        for ms in [0, 1_700_000_000_123, 951_782_400_000, 4_102_444_799_999] {
            assert_eq!(parse_iso8601(&mist_media::hls::iso8601(ms)), Some(ms));
        }
        assert_eq!(
            parse_iso8601("2024-01-05T13:45:07+01:00"),
            parse_iso8601("2024-01-05T12:45:07Z")
        );
        assert_eq!(
            parse_iso8601("2024-01-05T13:45:07.5Z").map(|m| m % 1000),
            Some(500)
        );
        assert!(parse_iso8601("yesterday").is_none());
    }

    #[test]
    fn event_playlist_ends_with_endlist() {
        let mut p = Playlist::new(opts());
        for i in 0..3 {
            assert!(p.push(entry(i), 0).is_empty());
        }
        let live = p.render(false);
        assert!(live.contains("#EXT-X-PLAYLIST-TYPE:EVENT\n"));
        assert!(live.contains("#EXT-X-TARGETDURATION:3\n"));
        assert!(live.contains("#EXTINF:2.040,\nseg2.ts\n"));
        assert!(!live.contains("ENDLIST"));
        assert!(p.render(true).ends_with("seg2.ts\n#EXT-X-ENDLIST\n"));
        let mut no = opts();
        no.endlist = false;
        let mut q = Playlist::new(no);
        q.push(entry(0), 0);
        assert!(!q.render(true).contains("ENDLIST"));
        let mut vod = opts();
        vod.live = false;
        let mut v = Playlist::new(vod);
        v.push(entry(0), 0);
        assert!(v.render(true).contains("#EXT-X-PLAYLIST-TYPE:VOD\n"));
        // Parsed back by the HLS parser.
        let mist_media::hls::Playlist::Media(m) =
            mist_media::hls::parse(p.render(true).as_bytes()).unwrap()
        else {
            panic!()
        };
        assert_eq!(m.segments.len(), 3);
        assert!(m.endlist);
    }

    #[test]
    fn max_entries_slides_the_window() {
        let mut o = opts();
        o.max_entries = 3;
        let mut p = Playlist::new(o);
        let mut gone = Vec::new();
        for i in 0..7 {
            gone.extend(p.push(entry(i), 0));
        }
        assert_eq!(gone, ["seg0.ts", "seg1.ts", "seg2.ts", "seg3.ts"]);
        assert_eq!(p.entries.len(), 3);
        assert_eq!(p.next_counter(), 7);
        let t = p.render(false);
        assert!(t.contains("#EXT-X-MEDIA-SEQUENCE:4\n"), "{t}");
        assert!(!t.contains("PLAYLIST-TYPE"), "{t}");
    }

    #[test]
    fn target_age_drops_old_entries() {
        let mut o = opts();
        o.target_age = 5;
        let mut p = Playlist::new(o);
        let now = 1_700_000_000_000 + 6 * 2040;
        for i in 0..6 {
            p.push(entry(i), now);
        }
        // Entries that started more than 5 s before `now` are gone.
        assert!(p.entries.iter().all(|e| now - e.unix_ms <= 5000));
        assert_eq!(p.entries.len(), 2);
        assert_eq!(p.media_seq, 4);
    }

    #[test]
    fn append_marks_a_discontinuity() {
        let mut p = Playlist::new(opts());
        p.push(entry(0), 0);
        p.push(entry(1), 0);
        let text = p.render(true);
        let mut q = Playlist::resume(&text, opts());
        assert_eq!(q.next_counter(), 2);
        assert_eq!(q.entries[0].unix_ms, entry(0).unix_ms);
        q.push(entry(2), 0);
        let t = q.render(true);
        assert_eq!(t.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{t}");
        assert!(t.contains("#EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME"));
        assert_eq!(t.matches("ENDLIST").count(), 1);
        assert_eq!(Playlist::uris(&text), ["seg0.ts", "seg1.ts"]);
        // Trimming the entry with the tag counts it in the discontinuity sequence.
        let mut o = opts();
        o.max_entries = 1;
        let mut r = Playlist::resume(&t, o);
        r.push(entry(3), 0);
        assert_eq!(r.disc_seq, 1);
        assert!(r
            .render(false)
            .contains("#EXT-X-DISCONTINUITY-SEQUENCE:1\n"));
        assert!(Playlist::resume("garbage", opts()).entries.is_empty());
    }

    #[test]
    fn track_change_marks_a_discontinuity() {
        let mut p = Playlist::new(opts());
        p.push(entry(0), 0);
        p.mark_discontinuity();
        p.mark_discontinuity();
        p.push(entry(1), 0);
        p.push(entry(2), 0);
        let t = p.render(true);
        assert_eq!(t.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{t}");
        let at = t.find("#EXT-X-DISCONTINUITY\n").unwrap();
        assert!(t[at..].find("seg1.ts") < t[at..].find("seg2.ts"), "{t}");
        assert!(!t[..at].contains("seg1.ts"), "{t}");
    }
}
