//! Static and dynamic MPDs with video and audio are well-formed XML with the structure dash.js reads
//! (checked with Python's xml.dom.minidom; skipped without python3).

use std::process::Command;

use bytes::Bytes;
use mist_media::dash::{mpd, LiveOptions, MpdOptions, UtcTiming};
use mist_media::segment::{Timeline, TimelineConfig, Window};
use mist_media::{Codec, Track};

const CHECK: &str = r#"
import sys, xml.dom.minidom as m
d = m.parse(sys.argv[1]).documentElement
assert d.tagName == "MPD", d.tagName
p = d.getElementsByTagName("Period")
assert len(p) == 1
sets = p[0].getElementsByTagName("AdaptationSet")
print(d.getAttribute("type"), len(sets), len(d.getElementsByTagName("S")), len(d.getElementsByTagName("Representation")), len(d.getElementsByTagName("UTCTiming")))
"#;

fn tracks() -> Vec<Track> {
    let mut v = Track::new(1, Codec::H264);
    v.init = Bytes::from_static(&[1, 0x4d, 0x40, 0x28]);
    v.width = 1920;
    v.height = 1080;
    v.fpks = 50_000;
    let mut v2 = v.clone();
    v2.id = 3;
    v2.width = 640;
    v2.height = 360;
    let mut a = Track::new(2, Codec::Aac);
    a.init = Bytes::from_static(&[0x11, 0x90]);
    a.rate = 48000;
    a.channels = 2;
    let mut b = a.clone();
    b.id = 4;
    b.lang = "nld".into();
    vec![v, a, v2, b]
}

/// The python3 checker's verdict on an MPD; panics when python3 does not run (scripts/test
/// installs it): a skipped check would pass silently.
fn check(mpd_text: &str) -> String {
    let f = std::env::temp_dir().join(format!(
        "mist-dash-xml-{}-{}.mpd",
        std::process::id(),
        mpd_text.len()
    ));
    std::fs::write(&f, mpd_text).unwrap();
    let o = Command::new("python3")
        .arg("-c")
        .arg(CHECK)
        .arg(&f)
        .output()
        .expect("run python3 (scripts/test installs it)");
    let _ = std::fs::remove_file(&f);
    assert!(
        o.status.success(),
        "{}\n{mpd_text}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn mpds_are_well_formed() {
    let tr = tracks();
    let cfg = TimelineConfig {
        target_ms: 2000,
        window: Window::Ms(8000),
        ..Default::default()
    };
    let mut tl = Timeline::new(cfg, &tr);
    for i in 0..1500i64 {
        tl.push(1, i * 20, i % 100 == 0, 4000);
        tl.push(3, i * 20, i % 100 == 0, 1000);
        if i % 2 == 0 {
            tl.push(2, i * 20, true, 300);
            tl.push(4, i * 20, true, 300);
        }
    }
    let mut live = MpdOptions::live(LiveOptions {
        availability_start_unix_ms: 1_764_000_000_000,
        publish_unix_ms: 1_764_000_030_000,
        minimum_update_period_ms: 2000,
        time_shift_buffer_ms: None,
        suggested_presentation_delay_ms: 6000,
        utc_timing: Some(UtcTiming::Direct(1_764_000_030_000)),
    });
    live.base_url = Some("https://cdn.test/cmaf/a&b/".into());
    let out = check(&mpd(&tr, &tl, &live));
    // video set + two audio languages, each with one compressed S run (t, d, r); 4 representations
    assert_eq!(out, "dynamic 3 3 4 1");
    tl.finish();
    let out = check(&mpd(&tr, &tl, &MpdOptions::vod()));
    assert_eq!(out, "static 3 3 4 0");
}
