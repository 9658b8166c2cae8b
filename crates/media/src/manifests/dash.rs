//! DASH MPD writer (ISO/IEC 23009-1, isoff-live profile as dash.js plays it): static (VoD) and
//! dynamic (live) manifests with one SegmentTemplate + SegmentTimeline per AdaptationSet, built from
//! a [`Timeline`]. Times in the manifest use timescale 1000 (the timeline is in ms), so `$Time$` in a
//! media template is a segment's start in ms and `$Number$` its sequence number.

use std::fmt::Write as _;

use crate::frame::{Track, TrackKind};
use crate::hls::{codec_string, iso8601};
use crate::segment::{Segment, Timeline};

/// How clients learn the server's clock (the `UTCTiming` element).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UtcTiming {
    /// `urn:mpeg:dash:utc:http-iso:2014`: the URL answers with an ISO 8601 time.
    HttpIso(String),
    /// `urn:mpeg:dash:utc:http-xsdate:2014`.
    HttpXsDate(String),
    /// `urn:mpeg:dash:utc:direct:2014`: the time (Unix ms) written into the manifest.
    Direct(i64),
}

/// What a live (`dynamic`) MPD needs beyond the timeline: the wall-clock anchors players
/// compute the live edge from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveOptions {
    /// Unix ms that corresponds to media time 0 of the timeline.
    pub availability_start_unix_ms: i64,
    /// Unix ms at which this manifest is produced.
    pub publish_unix_ms: i64,
    /// How often players reload the MPD (`minimumUpdatePeriod`).
    pub minimum_update_period_ms: u32,
    /// Defaults to the media time spanned by the timeline's window. Never written below
    /// `suggested_presentation_delay_ms`: dash.js caps its live delay at timeShiftBufferDepth, so a
    /// smaller depth (a young stream's few segments) would start players closer to the live edge
    /// than the suggested delay.
    pub time_shift_buffer_ms: Option<u64>,
    /// How far behind the live edge players start (`suggestedPresentationDelay`).
    pub suggested_presentation_delay_ms: u32,
    /// Where players get the server's clock; without it they trust their own, and a skewed
    /// client clock asks for segments that do not exist yet.
    pub utc_timing: Option<UtcTiming>,
}

/// Whether the MPD describes a finished presentation or a live one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MpdType {
    /// A finished presentation (VoD, or a stream that ended): players may seek anywhere.
    Static,
    /// A live presentation that players reload.
    Dynamic(LiveOptions),
}

/// How an MPD is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpdOptions {
    /// Static (VoD) or dynamic (live).
    pub mpd_type: MpdType,
    /// Initialization template, e.g. `$RepresentationID$/init.mp4`.
    pub init_template: String,
    /// Media template, e.g. `$RepresentationID$/$Time$.m4s` or `chunk-$RepresentationID$-$Number%05d$.m4s`.
    /// With `$Number`, `startNumber` is the sequence number of the first segment in the window.
    pub media_template: String,
    /// `minBufferTime`: what a player buffers before it starts.
    pub min_buffer_ms: u32,
    /// Optional `BaseURL` element.
    pub base_url: Option<String>,
    /// Percent added to payload bitrates for container overhead.
    pub overhead_percent: u32,
}

impl MpdOptions {
    /// Options for a VoD MPD with the default templates.
    pub fn vod() -> Self {
        MpdOptions {
            mpd_type: MpdType::Static,
            init_template: "$RepresentationID$/init.mp4".into(),
            media_template: "$RepresentationID$/$Time$.m4s".into(),
            min_buffer_ms: 2000,
            base_url: None,
            overhead_percent: 3,
        }
    }

    /// Options for a live MPD; the templates are those of [`MpdOptions::vod`].
    pub fn live(live: LiveOptions) -> Self {
        MpdOptions {
            mpd_type: MpdType::Dynamic(live),
            ..MpdOptions::vod()
        }
    }
}

/// ISO 8601 duration with ms precision (`PT12.345S`).
pub fn xs_duration(ms: i64) -> String {
    let ms = ms.max(0);
    format!("PT{}.{:03}S", ms / 1000, ms % 1000)
}

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\t' => {}
            c => o.push(c),
        }
    }
    o
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn frame_rate(fpks: u32) -> String {
    let g = gcd(fpks as u64, 1000).max(1);
    let (n, d) = (fpks as u64 / g, 1000 / g);
    if d == 1 {
        n.to_string()
    } else {
        format!("{n}/{d}")
    }
}

/// The `S` runs of a SegmentTimeline: `(t, d, r)` with `t` present where the timeline is not
/// contiguous with the previous run.
pub fn timeline_runs<'a>(
    segments: impl IntoIterator<Item = &'a Segment>,
) -> Vec<(Option<i64>, i64, u32)> {
    let mut runs: Vec<(Option<i64>, i64, u32)> = Vec::new();
    let mut expect: Option<i64> = None;
    for s in segments {
        let d = s.duration_ms();
        let contiguous = expect == Some(s.start_ms);
        match runs.last_mut() {
            Some(last) if contiguous && last.1 == d && last.2 < u32::MAX => last.2 += 1,
            _ => runs.push((if contiguous { None } else { Some(s.start_ms) }, d, 0)),
        }
        expect = Some(s.start_ms.saturating_add(d));
    }
    runs
}

fn bandwidth(tl: &Timeline, t: &Track, pct: u32) -> u64 {
    let p = match tl.peak_bps(t.id) {
        0 => t.bps as u64 * 8,
        p => p,
    };
    (p.saturating_mul(100 + pct as u64) / 100).max(1)
}

/// Writes the MPD for `tracks` (meta tracks are skipped).
pub fn mpd(tracks: &[Track], tl: &Timeline, opts: &MpdOptions) -> String {
    let mut o = String::new();
    o.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    o.push_str(
        "<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" profiles=\"urn:mpeg:dash:profile:isoff-live:2011\"",
    );
    let span = tl.span_ms();
    let (first, last) = span.unwrap_or((0, 0));
    let live = match &opts.mpd_type {
        MpdType::Static => {
            let _ = write!(
                o,
                " type=\"static\" mediaPresentationDuration=\"{}\"",
                xs_duration(last - first)
            );
            None
        }
        MpdType::Dynamic(l) => {
            let _ = write!(
                o,
                " type=\"dynamic\" availabilityStartTime=\"{}\" publishTime=\"{}\"",
                iso8601(l.availability_start_unix_ms),
                iso8601(l.publish_unix_ms)
            );
            if tl.is_ended() {
                let _ = write!(o, " mediaPresentationDuration=\"{}\"", xs_duration(last));
            } else {
                let _ = write!(
                    o,
                    " minimumUpdatePeriod=\"{}\"",
                    xs_duration(l.minimum_update_period_ms as i64)
                );
            }
            let tsb = l
                .time_shift_buffer_ms
                .unwrap_or((last - first).max(0) as u64)
                .max(l.suggested_presentation_delay_ms as u64);
            let _ = write!(
                o,
                " timeShiftBufferDepth=\"{}\" suggestedPresentationDelay=\"{}\"",
                xs_duration(tsb.min(i64::MAX as u64) as i64),
                xs_duration(l.suggested_presentation_delay_ms as i64)
            );
            Some(l)
        }
    };
    let _ = writeln!(
        o,
        " minBufferTime=\"{}\">",
        xs_duration(opts.min_buffer_ms as i64)
    );
    if let Some(b) = &opts.base_url {
        let _ = writeln!(o, "  <BaseURL>{}</BaseURL>", esc(b));
    }
    // One Period per run of segments without a discontinuity. Live periods start at their
    // presentation time (0 = availabilityStartTime); static ones relative to the first segment.
    let segs: Vec<&Segment> = tl.segments().collect();
    let base = if live.is_none() {
        segs.first().map_or(0, |s| s.period_presentation_ms)
    } else {
        0
    };
    let mut groups: Vec<&[&Segment]> = Vec::new();
    let mut rest = &segs[..];
    while !rest.is_empty() {
        let n = rest
            .iter()
            .position(|s| s.period != rest[0].period)
            .unwrap_or(rest.len());
        groups.push(&rest[..n]);
        rest = &rest[n..];
    }
    if groups.is_empty() {
        groups.push(&[]);
    }
    for group in groups {
        let (period, period_start, pto, start_number) = match group.first() {
            Some(s) => (
                s.period,
                s.period_presentation_ms - base,
                s.period_start_ms,
                s.seq,
            ),
            None => (0, 0, 0, tl.media_sequence()),
        };
        let _ = writeln!(
            o,
            "  <Period id=\"{period}\" start=\"{}\">",
            xs_duration(period_start)
        );
        let runs = timeline_runs(group.iter().copied());
        let template = |o: &mut String| {
            let _ = write!(
                o,
                "      <SegmentTemplate timescale=\"1000\" initialization=\"{}\" media=\"{}\"",
                esc(&opts.init_template),
                esc(&opts.media_template)
            );
            if opts.media_template.contains("$Number") {
                let _ = write!(o, " startNumber=\"{start_number}\"");
            }
            if pto != 0 {
                let _ = write!(o, " presentationTimeOffset=\"{pto}\"");
            }
            o.push_str(">\n        <SegmentTimeline>\n");
            for (t, d, r) in &runs {
                o.push_str("          <S");
                if let Some(t) = t {
                    let _ = write!(o, " t=\"{t}\"");
                }
                let _ = write!(o, " d=\"{d}\"");
                if *r > 0 {
                    let _ = write!(o, " r=\"{r}\"");
                }
                o.push_str("/>\n");
            }
            o.push_str("        </SegmentTimeline>\n      </SegmentTemplate>\n");
        };

        let video: Vec<&Track> = tracks
            .iter()
            .filter(|t| t.kind() == TrackKind::Video)
            .collect();
        let mut set_id = 0;
        if !video.is_empty() {
            let max_w = video.iter().map(|t| t.width).max().unwrap_or(0);
            let max_h = video.iter().map(|t| t.height).max().unwrap_or(0);
            let _ = write!(
            o,
            "    <AdaptationSet id=\"{set_id}\" contentType=\"video\" mimeType=\"video/mp4\" segmentAlignment=\"true\" startWithSAP=\"1\""
        );
            if max_w > 0 && max_h > 0 {
                let _ = write!(o, " maxWidth=\"{max_w}\" maxHeight=\"{max_h}\"");
            }
            o.push_str(">\n");
            set_id += 1;
            template(&mut o);
            for v in &video {
                let _ = write!(
                    o,
                    "      <Representation id=\"{}\" bandwidth=\"{}\"",
                    v.id,
                    bandwidth(tl, v, opts.overhead_percent)
                );
                if let Some(c) = codec_string(v) {
                    let _ = write!(o, " codecs=\"{}\"", esc(&c));
                }
                if v.width > 0 && v.height > 0 {
                    let _ = write!(
                        o,
                        " width=\"{}\" height=\"{}\" sar=\"1:1\"",
                        v.width, v.height
                    );
                }
                if v.fpks > 0 {
                    let _ = write!(o, " frameRate=\"{}\"", frame_rate(v.fpks));
                }
                o.push_str("/>\n");
            }
            o.push_str("    </AdaptationSet>\n");
        }

        // One audio AdaptationSet per language.
        let mut langs: Vec<&str> = Vec::new();
        for t in tracks.iter().filter(|t| t.kind() == TrackKind::Audio) {
            if !langs.contains(&t.lang.as_str()) {
                langs.push(&t.lang);
            }
        }
        for lang in langs {
            let _ = write!(
            o,
            "    <AdaptationSet id=\"{set_id}\" contentType=\"audio\" mimeType=\"audio/mp4\" segmentAlignment=\"true\" startWithSAP=\"1\""
        );
            if !lang.is_empty() && lang != "und" {
                let _ = write!(o, " lang=\"{}\"", esc(lang));
            }
            o.push_str(">\n");
            set_id += 1;
            template(&mut o);
            for a in tracks
                .iter()
                .filter(|t| t.kind() == TrackKind::Audio && t.lang == lang)
            {
                let _ = write!(
                    o,
                    "      <Representation id=\"{}\" bandwidth=\"{}\"",
                    a.id,
                    bandwidth(tl, a, opts.overhead_percent)
                );
                if let Some(c) = codec_string(a) {
                    let _ = write!(o, " codecs=\"{}\"", esc(&c));
                }
                if a.rate > 0 {
                    let _ = write!(o, " audioSamplingRate=\"{}\"", a.rate);
                }
                if a.channels > 0 {
                    let _ = write!(
                    o,
                    ">\n        <AudioChannelConfiguration schemeIdUri=\"urn:mpeg:dash:23003:3:audio_channel_configuration:2011\" value=\"{}\"/>\n      </Representation>\n",
                    a.channels
                );
                } else {
                    o.push_str("/>\n");
                }
            }
            o.push_str("    </AdaptationSet>\n");
        }
        o.push_str("  </Period>\n");
    }
    if let Some(l) = live {
        match &l.utc_timing {
            Some(UtcTiming::HttpIso(u)) => {
                let _ = writeln!(
                    o,
                    "  <UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:http-iso:2014\" value=\"{}\"/>",
                    esc(u)
                );
            }
            Some(UtcTiming::HttpXsDate(u)) => {
                let _ = writeln!(
                    o,
                    "  <UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:http-xsdate:2014\" value=\"{}\"/>",
                    esc(u)
                );
            }
            Some(UtcTiming::Direct(ms)) => {
                let _ = writeln!(
                    o,
                    "  <UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:direct:2014\" value=\"{}\"/>",
                    iso8601(*ms)
                );
            }
            None => {}
        }
    }
    o.push_str("</MPD>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Codec;
    use crate::segment::{TimelineConfig, Window};
    use bytes::Bytes;

    fn tracks() -> Vec<Track> {
        let mut v = Track::new(1, Codec::H264);
        v.init = Bytes::from_static(&[1, 0x64, 0, 0x1f]);
        v.width = 1280;
        v.height = 720;
        v.fpks = 29_970;
        let mut a = Track::new(2, Codec::Aac);
        a.init = Bytes::from_static(&[0x11, 0x90]);
        a.rate = 48000;
        a.channels = 2;
        a.lang = "eng".into();
        vec![v, a]
    }

    fn feed(tl: &mut Timeline, from: i64, to: i64) {
        let mut a = (from * 48 + 1023) / 1024;
        for v in from / 40..to / 40 {
            tl.push(1, v * 40, v % 50 == 0, 3000);
            while a * 1024 / 48 < v * 40 + 40 {
                tl.push(2, a * 1024 / 48, true, 300);
                a += 1;
            }
        }
    }

    #[test]
    fn static_mpd() {
        let mut tl = Timeline::new(
            TimelineConfig {
                target_ms: 2000,
                ..TimelineConfig::vod()
            },
            &tracks(),
        );
        feed(&mut tl, 0, 9000);
        tl.finish();
        let m = mpd(&tracks(), &tl, &MpdOptions::vod());
        assert!(
            m.contains("type=\"static\" mediaPresentationDuration=\"PT9.000S\""),
            "{m}"
        );
        assert!(m.contains("<S t=\"0\" d=\"2000\" r=\"3\"/>"), "{m}");
        assert!(m.contains("<S d=\"1000\"/>"), "{m}");
        assert!(
            m.contains(
                "codecs=\"avc1.64001f\" width=\"1280\" height=\"720\" sar=\"1:1\" frameRate=\"2997/100\""
            ),
            "{m}"
        );
        assert!(m.contains("lang=\"eng\""));
        assert!(
            m.contains("codecs=\"mp4a.40.2\" audioSamplingRate=\"48000\">"),
            "{m}"
        );
        assert!(m.contains("value=\"2\"/>"));
        assert!(!m.contains("UTCTiming"));
    }

    #[test]
    fn dynamic_mpd() {
        let cfg = TimelineConfig {
            target_ms: 2000,
            window: Window::Segments(3),
            first_seq: 7,
            ..Default::default()
        };
        let mut tl = Timeline::new(cfg, &tracks());
        feed(&mut tl, 10_000, 22_000);
        let mut o = MpdOptions::live(LiveOptions {
            availability_start_unix_ms: 1_700_000_000_000,
            publish_unix_ms: 1_700_000_022_000,
            minimum_update_period_ms: 2000,
            time_shift_buffer_ms: None,
            suggested_presentation_delay_ms: 4000,
            utc_timing: Some(UtcTiming::HttpIso("https://x/time?a=1&b=2".into())),
        });
        o.media_template = "$RepresentationID$/$Number$.m4s".into();
        let m = mpd(&tracks(), &tl, &o);
        assert!(
            m.contains("type=\"dynamic\" availabilityStartTime=\"2023-11-14T22:13:20.000Z\""),
            "{m}"
        );
        assert!(m.contains("minimumUpdatePeriod=\"PT2.000S\""));
        assert!(m.contains("timeShiftBufferDepth=\"PT6.000S\""), "{m}");
        assert!(m.contains("<S t=\"14000\" d=\"2000\" r=\"2\"/>"), "{m}");
        assert!(m.contains("startNumber=\"9\""), "{m}");
        assert!(m.contains("value=\"https://x/time?a=1&amp;b=2\""));
        tl.finish();
        let m = mpd(&tracks(), &tl, &o);
        assert!(m.contains("mediaPresentationDuration"));
        assert!(!m.contains("minimumUpdatePeriod"));
    }

    /// A young stream (4 s of segments) with a 6 s suggested delay: the depth written covers the
    /// delay, or dash.js would start 4 s behind the live edge.
    #[test]
    fn time_shift_depth_covers_the_suggested_delay() {
        let mut tl = Timeline::new(
            TimelineConfig {
                target_ms: 2000,
                ..Default::default()
            },
            &tracks(),
        );
        feed(&mut tl, 0, 4100);
        let o = MpdOptions::live(LiveOptions {
            availability_start_unix_ms: 1_700_000_000_000,
            publish_unix_ms: 1_700_000_004_100,
            minimum_update_period_ms: 2000,
            time_shift_buffer_ms: None,
            suggested_presentation_delay_ms: 6000,
            utc_timing: None,
        });
        let m = mpd(&tracks(), &tl, &o);
        assert!(m.contains("<S t=\"0\" d=\"2000\" r=\"1\"/>"), "{m}");
        assert!(
            m.contains("timeShiftBufferDepth=\"PT6.000S\" suggestedPresentationDelay=\"PT6.000S\""),
            "{m}"
        );
    }

    #[test]
    fn discontinuity_opens_a_period() {
        let mut tl = Timeline::new(
            TimelineConfig {
                target_ms: 1000,
                ..TimelineConfig::vod()
            },
            &tracks()[..1],
        );
        for v in 0..50i64 {
            tl.push(1, 5000 + v * 40, v % 25 == 0, 10);
        }
        for v in 0..50i64 {
            tl.push(1, v * 40, v % 25 == 0, 10);
        }
        tl.finish();
        let m = mpd(&tracks()[..1], &tl, &MpdOptions::vod());
        assert!(m.contains("mediaPresentationDuration=\"PT4.000S\""), "{m}");
        assert!(m.contains("<Period id=\"0\" start=\"PT0.000S\">"), "{m}");
        assert!(m.contains("presentationTimeOffset=\"5000\""), "{m}");
        assert!(m.contains("<S t=\"5000\" d=\"1000\" r=\"1\"/>"), "{m}");
        assert!(m.contains("<Period id=\"1\" start=\"PT2.000S\">"), "{m}");
        assert!(m.contains("<S t=\"0\" d=\"1000\" r=\"1\"/>"), "{m}");
        assert_eq!(m.matches("<AdaptationSet").count(), 2);
    }

    #[test]
    fn runs_with_gap() {
        let mut tl = Timeline::new(
            TimelineConfig {
                target_ms: 1000,
                ..TimelineConfig::vod()
            },
            &tracks()[..1],
        );
        for v in 0..100i64 {
            let t = if v < 50 { v * 40 } else { v * 40 + 10_000 };
            tl.push(1, t, v % 25 == 0, 10);
        }
        tl.finish();
        let runs = timeline_runs(tl.segments());
        assert_eq!(runs[0], (Some(0), 1000, 0));
        assert_eq!(runs[1], (None, 11_000, 0));
        assert_eq!(runs[2], (None, 1000, 1));
    }
}
