//! Auto-push rule conditions through the API (INTERFACES §2 `auto_push`, §3.4): a rule's
//! `start_rule` and `end_rule` on custom `$variables` (`variable_add`) start and stop its
//! pushes, `inhibit` keeps a matching stream from getting one, and `push_start` to `#tag`
//! pushes every active stream carrying the tag. ffmpeg publishes, ffprobe reads what was
//! recorded.

mod common;

use common::{publish, serial, wait_stream, wait_until, Controller, TempDir};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// `(stream, state, bytes)` of every push in `push_list`.
fn pushes(c: &Controller) -> Vec<(String, String, u64)> {
    c.api(&json!({"push_list": true}))["push_list"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|p| {
            (
                p[1].as_str().unwrap_or("").to_string(),
                p[5]["state"].as_str().unwrap_or("").to_string(),
                p[5]["bytes"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// Seconds of media ffprobe finds in `file` (panics when it cannot read it).
fn duration(file: &Path) -> f64 {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .expect("ffprobe (scripts/test installs it)");
    assert!(
        out.status.success(),
        "ffprobe {file:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no duration for {file:?}"))
}

#[test]
fn start_rule_end_rule_inhibit_and_tag_pushes() {
    let _g = serial();
    let c = Controller::start_edited(json!({}), |cfg| {
        cfg["streams"]["live"]["tags"] = json!(["vip"]);
        cfg["push_settings"] = json!({"wait": 1, "maxspeed": 0});
    });
    let dir = TempDir::new("pushrules");
    let v = c.api(&json!({"variable_add": ["onair", "0"]}));
    assert_eq!(v["variable_list"]["onair"]["value"], "0", "{v}");
    let _a = publish(&c.publish_url("live+a"), "320x240", 90);
    let _b = publish(&c.publish_url("live+b"), "320x240", 90);
    wait_stream(&c, "live+a");
    wait_stream(&c, "live+b");

    // `#tag` in push_start: both streams of `live` carry `vip`; no stream carries `nope`.
    let tagged = format!("{}/tag/$wildcard.ts", dir.path().display());
    c.api(&json!({"push_start": ["#nope", tagged]}));
    let v = c.api(&json!({"push_start": ["#vip", tagged]}));
    assert!(v.get("push_start_error").is_none(), "{v}");
    wait_until("a tag push per stream", Duration::from_secs(20), || {
        let mut l = pushes(&c);
        l.sort();
        l.len() == 2
            && l[0].0 == "live+a"
            && l[1].0 == "live+b"
            && l.iter().all(|(_, st, b)| st == "active" && *b > 0)
    });
    c.api(&json!({"push_stop": ["live+a", "live+b"]}));
    wait_until("the tag pushes to end", Duration::from_secs(20), || {
        pushes(&c).iter().all(|(_, st, _)| st != "active")
    });
    for w in ["a", "b"] {
        let f = dir.path().join(format!("tag/{w}.ts"));
        assert!(duration(&f) > 0.5, "{f:?}");
    }

    // A rule that holds only while $onair is 1, stops when $halt is true, and never
    // records live+b.
    let target = format!("{}/rule/$wildcard.ts", dir.path().display());
    let v = c.api(&json!({"push_auto_add": {
        "stream": "live+", "target": target,
        "start_rule": ["onair", 2, "1"], "end_rule": ["halt", 0, ""], "inhibit": "live+b"
    }}));
    assert_eq!(v["auto_push"].as_object().unwrap().len(), 1, "{v}");
    // Several scans (twice a second, wait 1 s): the start rule does not hold, nothing starts.
    std::thread::sleep(Duration::from_secs(4));
    let l = pushes(&c);
    assert!(
        l.iter()
            .all(|(_, st, _)| st != "active" && st != "starting"),
        "{l:?}"
    );
    c.api(&json!({"variable_add": {"name": "onair", "value": "1"}}));
    wait_until("the rule's push of live+a", Duration::from_secs(20), || {
        pushes(&c)
            .iter()
            .any(|(s, st, b)| s == "live+a" && st == "active" && *b > 0)
    });
    std::thread::sleep(Duration::from_secs(2));
    let l = pushes(&c);
    assert!(
        !l.iter().any(|(s, st, _)| s == "live+b" && st == "active"),
        "inhibited: {l:?}"
    );
    // The end rule holds: the push stops and is not retried.
    c.api(&json!({"variable_add": ["halt", "yes"]}));
    wait_until("the push to stop", Duration::from_secs(20), || {
        !pushes(&c).iter().any(|(_, st, _)| st == "active")
    });
    let f = dir.path().join("rule/a.ts");
    assert!(duration(&f) > 0.5, "{f:?}");
    std::thread::sleep(Duration::from_secs(3));
    let l = pushes(&c);
    assert!(!l.iter().any(|(_, st, _)| st == "active"), "{l:?}");
    // The end rule gone: the rule records live+a again.
    let v = c.api(&json!({"variable_remove": "halt"}));
    assert!(v["variable_list"].get("halt").is_none(), "{v}");
    wait_until("the push to start again", Duration::from_secs(20), || {
        pushes(&c)
            .iter()
            .any(|(s, st, _)| s == "live+a" && st == "active")
    });
    let v: Value = c.api(&json!({"variable_list": true}));
    assert_eq!(v["variable_list"]["onair"]["value"], "1", "{v}");
}
